#!/usr/bin/env python3
"""The D2L LeNet training recipe in PyTorch, to calibrate `cnn train`.

Trains the same nets as `cnn train --net lenet|lenet-relu|lenet-bn` on the full
Fashion-MNIST (Debian's dataset-fashion-mnist) with the same recipe and
prints the test accuracy after each epoch, so our accuracy can be compared
with the reference framework's rather than with a number from memory.

    pip install torch numpy
    python3 tools/torch_lenet_recipe.py --net lenet-relu --lr 0.1 --seed 0
    python3 tools/torch_lenet_recipe.py --net lenet-bn --lr 0.1 --batch-size 128
"""
import argparse
import gzip

import numpy as np
import torch
from torch import nn

DATA = "/usr/share/datasets/fashion-mnist/"


def images(name):
    raw = gzip.open(DATA + name).read()
    return torch.tensor(np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 1, 28, 28).astype(np.float32) / 255)


def labels(name):
    raw = gzip.open(DATA + name).read()
    return torch.tensor(np.frombuffer(raw, np.uint8, offset=8).astype(np.int64))


def lenet(relu):
    act, pool = (nn.ReLU, nn.MaxPool2d) if relu else (nn.Sigmoid, nn.AvgPool2d)
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), act(), pool(2),
        nn.Conv2d(6, 16, 5), act(), pool(2), nn.Flatten(),
        nn.Linear(400, 120), act(), nn.Linear(120, 84), act(), nn.Linear(84, 10))


def lenet_bn():
    """D2L 8.5's BNLeNet (LazyConv2d and friends with explicit sizes)."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.BatchNorm2d(6), nn.Sigmoid(), nn.AvgPool2d(2, 2),
        nn.Conv2d(6, 16, 5), nn.BatchNorm2d(16), nn.Sigmoid(), nn.AvgPool2d(2, 2), nn.Flatten(),
        nn.Linear(256, 120), nn.BatchNorm1d(120), nn.Sigmoid(),
        nn.Linear(120, 84), nn.BatchNorm1d(84), nn.Sigmoid(), nn.Linear(84, 10))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--net", choices=["lenet", "lenet-relu", "lenet-bn"], default="lenet")
    p.add_argument("--lr", type=float, default=0.9)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init", choices=["xavier", "default"], default="xavier")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    xtr, ytr = images("train-images-idx3-ubyte.gz"), labels("train-labels-idx1-ubyte.gz")
    xte, yte = images("t10k-images-idx3-ubyte.gz"), labels("t10k-labels-idx1-ubyte.gz")
    net = lenet_bn() if a.net == "lenet-bn" else lenet(a.net == "lenet-relu")
    if a.init == "xavier":  # D2L's init_cnn
        for m in net:
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                nn.init.xavier_uniform_(m.weight)
    opt = torch.optim.SGD(net.parameters(), lr=a.lr)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(1, a.epochs + 1):
        net.train()
        perm = torch.randperm(len(xtr))
        for i in range(0, len(xtr), a.batch_size):
            idx = perm[i:i + a.batch_size]
            opt.zero_grad()
            loss = loss_fn(net(xtr[idx]), ytr[idx])
            loss.backward()
            opt.step()
        net.eval()  # batch norm: the running statistics
        with torch.no_grad():
            acc = (net(xte).argmax(1) == yte).float().mean().item()
        print(f"epoch {epoch}: test acc {acc:.4f}", flush=True)


if __name__ == "__main__":
    main()
