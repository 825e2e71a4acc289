"""PyTorch and onnxruntime side of bench/compare.sh.

    lenet.py prepare DIR            weights (safetensors, Xavier init like D2L),
                                    256 input images (raw f32), ONNX export,
                                    PyTorch logits of those inputs
    lenet.py torch DIR --threads T  time PyTorch (one JSON line per metric)
    lenet.py ort DIR --threads T    time onnxruntime inference
    lenet.py check DIR FILE         compare FILE (our logits) with PyTorch's

Timing as in models/examples/bench_lenet.rs: a warm-up of at least 0.3 s,
then blocks of about 50 ms for --seconds, and the median block rate.
"""

import argparse
import json
import os
import struct
import sys
import time
import warnings

import numpy as np

BATCH = 256


def lenet():
    import torch.nn as nn

    # D2L 7.6, the net `cnn_net!` compiles as models::LeNet.
    return nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5), nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.Sigmoid(),
        nn.Linear(120, 84), nn.Sigmoid(),
        nn.Linear(84, 10),
    )


def write_safetensors(path, tensors):
    """The safetensors format by hand: header length, JSON header, raw data."""
    header, blobs, offset = {}, [], 0
    for key, array in tensors.items():
        data = np.ascontiguousarray(array, dtype="<f4").tobytes()
        header[key] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def load_model(directory):
    import torch

    model = lenet()
    state = np.load(os.path.join(directory, "weights.npz"))
    model.load_state_dict({k: torch.from_numpy(state[k]) for k in state.files})
    return model


def inputs(directory):
    return np.fromfile(os.path.join(directory, "input.f32"), dtype="<f4").reshape(BATCH, 1, 28, 28)


def prepare(directory):
    import torch

    os.makedirs(directory, exist_ok=True)
    torch.manual_seed(0)
    model = lenet()
    for m in model:
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            torch.nn.init.xavier_uniform_(m.weight)
    state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    np.savez(os.path.join(directory, "weights.npz"), **state)
    write_safetensors(os.path.join(directory, "lenet.safetensors"), state)
    x = np.random.default_rng(0).random((BATCH, 1, 28, 28), dtype=np.float32)
    x.astype("<f4").tofile(os.path.join(directory, "input.f32"))
    with torch.no_grad():
        logits = model(torch.from_numpy(x)).numpy()
    logits.astype("<f4").tofile(os.path.join(directory, "torch_logits.f32"))
    model.eval()
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    torch.onnx.export(
        model, (torch.from_numpy(x[:1]),), os.path.join(directory, "lenet.onnx"),
        input_names=["x"], output_names=["logits"], dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}},
        dynamo=False,
    )
    print(f"prepared {directory}: weights, {BATCH} inputs, ONNX export", file=sys.stderr)


def rate(seconds, items, f):
    start, calls = time.perf_counter(), 0
    while time.perf_counter() - start < 0.3 or calls < 3:
        f()
        calls += 1
    per_call = (time.perf_counter() - start) / calls
    block = max(1, int(0.05 / per_call))
    rates, start = [], time.perf_counter()
    while time.perf_counter() - start < seconds or len(rates) < 5:
        t = time.perf_counter()
        for _ in range(block):
            f()
        rates.append(block * items / (time.perf_counter() - t))
    rates.sort()
    return rates[len(rates) // 2]


def emit(system, threads, metric, value):
    print(json.dumps({"system": system, "threads": threads, "metric": metric, "value": value}), flush=True)


def bench_torch(directory, threads, seconds, system):
    import torch

    torch.set_num_threads(threads)
    model = load_model(directory)
    x = torch.from_numpy(inputs(directory))
    one = x[:1].clone()
    with torch.inference_mode():
        model.eval()
        emit(system, threads, "latency_us", 1e6 / rate(seconds, 1, lambda: model(one)))
        emit(system, threads, "infer_img_s", rate(seconds, BATCH, lambda: model(x)))
    model.train()
    labels = torch.from_numpy(np.arange(BATCH) * 7 % 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad()
        loss = loss_fn(model(x), labels)
        loss.backward()
        opt.step()

    emit(system, threads, "train_ex_s", rate(seconds, BATCH, step))


def bench_ort(directory, threads, seconds):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(
        os.path.join(directory, "lenet.onnx"), options, providers=["CPUExecutionProvider"]
    )
    x = inputs(directory)
    one = np.ascontiguousarray(x[:1])
    logits = session.run(None, {"x": x})[0]
    torch_logits = np.fromfile(os.path.join(directory, "torch_logits.f32"), dtype="<f4").reshape(BATCH, -1)
    if np.max(np.abs(logits - torch_logits)) > 1e-4:
        sys.exit(f"onnxruntime logits differ from PyTorch by {np.max(np.abs(logits - torch_logits))}")
    emit("onnxruntime", threads, "latency_us", 1e6 / rate(seconds, 1, lambda: session.run(None, {"x": one})))
    emit("onnxruntime", threads, "infer_img_s", rate(seconds, BATCH, lambda: session.run(None, {"x": x})))


def check(directory, ours_path):
    theirs = np.fromfile(os.path.join(directory, "torch_logits.f32"), dtype="<f4").reshape(BATCH, -1)
    ours = np.fromfile(ours_path, dtype="<f4").reshape(BATCH, -1)
    diff = float(np.max(np.abs(ours - theirs)))
    ok = diff <= 1e-4
    print(f"logits, ours vs PyTorch, {BATCH} images: max |difference| {diff:.2e} "
          f"({'within' if ok else 'OUTSIDE'} 1e-4)")
    return ok


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["prepare", "torch", "ort", "check"])
    parser.add_argument("dir")
    parser.add_argument("file", nargs="?")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--system", default="pytorch")
    args = parser.parse_args()
    if args.command == "prepare":
        prepare(args.dir)
    elif args.command == "torch":
        bench_torch(args.dir, args.threads, args.seconds, args.system)
    elif args.command == "ort":
        bench_ort(args.dir, args.threads, args.seconds)
    elif not check(args.dir, args.file):
        sys.exit(1)


if __name__ == "__main__":
    main()
