"""Writes the fixtures read by the tests of cnn-runtime/src/weights.rs.

A tiny PyTorch net (conv(1, 2, 3) -> relu -> flatten -> linear(8, 3), for
1x4x4 inputs) with PyTorch's default initialisation from a fixed seed, saved
as PyTorch users would:

- tiny_torch.safetensors: safetensors.torch.save_file(model.state_dict(), ...)
- tiny_torch.json: {key: {"shape": [...], "data": [flat values]}} via json.dump
  (Python floats: the exact f64 widening of each f32)

Run: python3 make_tiny_torch.py (in this directory).
"""
import json

import safetensors.torch
import torch

torch.manual_seed(0)
model = torch.nn.Sequential(
    torch.nn.Conv2d(1, 2, 3),
    torch.nn.ReLU(),
    torch.nn.Flatten(),
    torch.nn.Linear(8, 3),
)
state = model.state_dict()
safetensors.torch.save_file(state, "tiny_torch.safetensors")
with open("tiny_torch.json", "w") as f:
    json.dump(
        {k: {"shape": list(v.shape), "data": v.flatten().tolist()} for k, v in state.items()},
        f,
    )
for k, v in state.items():
    print(k, list(v.shape), v.flatten()[:2].tolist())
print("torch", torch.__version__, "safetensors", safetensors.__version__)
