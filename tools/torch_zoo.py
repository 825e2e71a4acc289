#!/usr/bin/env python3
"""The zoo of `models` in PyTorch, built from Dive into Deep Learning's own
classes: the reference for keys and shapes, and for training recipes.

    pip install torch numpy

    # tests/fixtures/zoo_keys.json: every state_dict key and shape, in
    # order, of each zoo net and of D2L's full-size ResNet-18 (checked by
    # tests/tests/integration/zoo.rs; no weights are written)
    python3 tools/torch_zoo.py keys

    # `cnn train --net NAME`'s recipe in PyTorch, on the full Fashion-MNIST
    # (Debian's dataset-fashion-mnist): the test accuracy after each epoch
    python3 tools/torch_zoo.py train --net resnet --seed 0
    python3 tools/torch_zoo.py train --net lenet-bn --optimizer sgd --lr 0.1 --batch-size 128 --epochs 10

    # a training-speed check beside `cnn train --net resnet --epochs 1
    # --limit-train 5120 --limit-test 256 --threads 2`
    python3 tools/torch_zoo.py train --net resnet --epochs 1 --limit-train 5120 --limit-test 256

Each net's defaults are the recipe `cnn summary` prints for it. Weights are
initialised as `cnn train` does (D2L's `init_cnn`: Xavier uniform weights
for every Conv2d and Linear, PyTorch's default biases, batch norm at 1 and 0).
"""
import argparse
import gzip
import json
import os
import sys
import time

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_fixtures import (DenseBlockBN, Inception, InvertedResidual,  # noqa: E402
                          ResidualBN, transition_block)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = "/usr/share/datasets/fashion-mnist/"


def lenet(relu):
    """D2L 7.6's LeNet, or with ReLU and max pooling."""
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


def resnet():
    """`models::ResNet`: D2L 8.6's structure for 28x28, 16-32-64 channels."""
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU()),
        nn.Sequential(ResidualBN(16, 16), ResidualBN(16, 16)),
        nn.Sequential(ResidualBN(16, 32, use_1x1conv=True, strides=2), ResidualBN(32, 32)),
        nn.Sequential(ResidualBN(32, 64, use_1x1conv=True, strides=2), ResidualBN(64, 64)),
        nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10)))


def googlenet_small():
    """`models::GoogLeNetSmall`: D2L 8.4's Inception blocks, scaled down."""
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, stride=2, padding=1)),
        nn.Sequential(Inception(32, 16, (16, 32), (4, 8), 8), Inception(64, 32, (24, 48), (4, 8), 8),
                      nn.MaxPool2d(3, stride=2, padding=1)),
        nn.Sequential(Inception(96, 48, (24, 48), (8, 16), 16), Inception(128, 64, (32, 64), (8, 16), 16)),
        nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(160, 10)))


def densenet_small():
    """`models::DenseNetSmall`: D2L 8.7's DenseNet, scaled down."""
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2)),
        DenseBlockBN(4, 32, 16), transition_block(96, 48), DenseBlockBN(4, 48, 16),
        nn.BatchNorm2d(112), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(112, 10))


def mobilenet_small():
    """`models::MobileNetSmall`: MobileNetV2's inverted residuals."""
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU6()),
        InvertedResidual(16, 16, 1, 4), InvertedResidual(16, 24, 2, 4), InvertedResidual(24, 24, 1, 4),
        InvertedResidual(24, 32, 2, 4), InvertedResidual(32, 32, 1, 4),
        nn.Sequential(nn.Conv2d(32, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU6()),
        nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10)))


class ResNet18(nn.Module):
    """D2L 8.6's `ResNet` with `ResNet18`'s arch ((2, 64), (2, 128),
    (2, 256), (2, 512)), as the book builds it (`self.net` with `b1` at
    position 0, then `b2`..`b5` and `last` added by name), for [1, 96, 96]
    inputs and 10 classes; explicit input sizes instead of Lazy modules
    (the keys are the same)."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Sequential(
            nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3), nn.BatchNorm2d(64), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1)))
        in_c = 64
        for i, (num_residuals, c) in enumerate(((2, 64), (2, 128), (2, 256), (2, 512))):
            blk = []
            for j in range(num_residuals):
                if j == 0 and i != 0:
                    blk.append(ResidualBN(in_c, c, use_1x1conv=True, strides=2))
                else:
                    blk.append(ResidualBN(in_c, c))
                in_c = c
            self.net.add_module(f"b{i + 2}", nn.Sequential(*blk))
        self.net.add_module("last", nn.Sequential(nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(512, 10)))

    def forward(self, x):
        return self.net(x)


# name => (builder, input shape, recipe: optimizer, lr, batch size, epochs)
ZOO = {
    "lenet": (lambda: lenet(False), [1, 28, 28], ("sgd", 0.9, 256, 10)),
    "lenet-relu": (lambda: lenet(True), [1, 28, 28], ("sgd", 0.9, 256, 10)),
    "lenet-bn": (lenet_bn, [1, 28, 28], ("sgd", 0.1, 128, 10)),
    "resnet": (resnet, [1, 28, 28], ("adam", 0.002, 128, 4)),
    "googlenet-small": (googlenet_small, [1, 28, 28], ("adam", 0.002, 128, 5)),
    "densenet-small": (densenet_small, [1, 28, 28], ("adam", 0.002, 128, 5)),
    "mobilenet-small": (mobilenet_small, [1, 28, 28], ("adam", 0.002, 128, 3)),
}
# Keys and shapes only: 11.2M parameters, far too slow to train here.
KEYS_ONLY = {"resnet18": (ResNet18, [1, 96, 96])}


def keys(args):
    out = {}
    for name, (build, shape, *_) in list(ZOO.items()) + list(KEYS_ONLY.items()):
        net = build()
        net.eval()
        with torch.no_grad():
            y = net(torch.zeros([2] + shape))
        out[name] = {
            "input": shape,
            "output": list(y.shape[1:]),
            "params": sum(p.numel() for p in net.parameters()),
            "state": [[k, list(v.shape)] for k, v in net.state_dict().items()],
        }
        print(f"{name:<16} {out[name]['params']:>10} parameters, {len(out[name]['state'])} tensors")
    path = os.path.join(ROOT, "tests", "fixtures", "zoo_keys.json")
    text = json.dumps(out, separators=(",", ":")) + "\n"
    if args.check:
        if open(path).read() != text:
            sys.exit(f"{path} is out of date")
        print("up to date")
    else:
        open(path, "w").write(text)
        print(f"wrote {path}")


def images(name):
    raw = gzip.open(DATA + name).read()
    return torch.tensor(np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 1, 28, 28).astype(np.float32) / 255)


def labels(name):
    raw = gzip.open(DATA + name).read()
    return torch.tensor(np.frombuffer(raw, np.uint8, offset=8).astype(np.int64))


def train(args):
    build, _, (optimizer, lr, batch_size, epochs) = ZOO[args.net]
    optimizer = args.optimizer or optimizer
    lr = args.lr or lr
    batch_size = args.batch_size or batch_size
    epochs = args.epochs or epochs
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    xtr, ytr = images("train-images-idx3-ubyte.gz"), labels("train-labels-idx1-ubyte.gz")
    xte, yte = images("t10k-images-idx3-ubyte.gz"), labels("t10k-labels-idx1-ubyte.gz")
    if args.limit_train:  # the first N, as `cnn train --limit-train N`
        xtr, ytr = xtr[:args.limit_train], ytr[:args.limit_train]
    if args.limit_test:
        xte, yte = xte[:args.limit_test], yte[:args.limit_test]
    net = build()
    for m in net.modules():  # D2L's init_cnn
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(m.weight)
    if optimizer == "sgd":
        opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=args.momentum)
    else:
        opt = torch.optim.Adam(net.parameters(), lr=lr)
    print(f"{args.net}: {optimizer} lr {lr}, batch {batch_size}, {epochs} epochs, seed {args.seed}, "
          f"{args.threads} threads, torch {torch.__version__}", flush=True)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(1, epochs + 1):
        start = time.time()
        net.train()
        perm = torch.randperm(len(xtr))
        loss_sum, correct = 0.0, 0
        for i in range(0, len(xtr), batch_size):
            idx = perm[i:i + batch_size]
            opt.zero_grad()
            out = net(xtr[idx])
            loss = loss_fn(out, ytr[idx])
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(idx)
            correct += (out.argmax(1) == ytr[idx]).sum().item()
        seconds = time.time() - start
        net.eval()  # batch norm: the running statistics
        with torch.no_grad():
            acc = sum((net(xte[i:i + 1000]).argmax(1) == yte[i:i + 1000]).sum().item()
                      for i in range(0, len(xte), 1000)) / len(xte)
        print(f"epoch {epoch}: train loss {loss_sum / len(xtr):.4f}, train acc {correct / len(xtr):.4f}, "
              f"test acc {acc:.4f}, {len(xtr) / seconds:.0f} examples/s", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    k = sub.add_parser("keys", help="write tests/fixtures/zoo_keys.json")
    k.add_argument("--check", action="store_true", help="only compare with the file on disk")
    t = sub.add_parser("train", help="train a zoo net on the full Fashion-MNIST")
    t.add_argument("--net", choices=list(ZOO), default="lenet")
    t.add_argument("--optimizer", choices=["sgd", "adam"])
    t.add_argument("--lr", type=float)
    t.add_argument("--momentum", type=float, default=0.0)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--epochs", type=int)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--limit-train", type=int, help="train on the first N images only (a speed check)")
    t.add_argument("--limit-test", type=int, help="evaluate on the first N test images only")
    a = p.parse_args()
    keys(a) if a.command == "keys" else train(a)


if __name__ == "__main__":
    main()
