#!/usr/bin/env python3
"""Generate the PyTorch parity fixtures in tests/fixtures/*.json.

Run from the repository root:

    python3 tools/gen_fixtures.py            # (re)writes tests/fixtures/<case>.json
    python3 tools/gen_fixtures.py --check    # regenerates in memory, fails if a file differs

Rerun it when a case is added or changed below, when the meaning of a DSL
layer changes, or when the fixture JSON schema changes. The output is
deterministic (fixed per-case seeds derived from the case name, one CPU
thread, deterministic algorithms), so rerunning with the same PyTorch version
reproduces byte-identical files; `git diff` after a rerun should be empty
unless a case changed. Needs python3 with torch and numpy.

For every case the script parses the net written in the `cnn_net!` DSL,
builds the equivalent `nn.Sequential` (one module per DSL layer, so state_dict
keys are "<layer index>.weight" / "<layer index>.bias"), initialises it with
PyTorch's default initialisers in float32, draws a float32 input batch and
integer labels, and then computes in float64 (model.double(), inputs widened
exactly from float32): the logits, the mean CrossEntropyLoss, and the gradient
of that loss with respect to every parameter and to the input.

JSON schema of tests/fixtures/<name>.json (keys in this order):

    name         string   case name (= file stem)
    net          string   the DSL text, "[C, H, W] => layer layer ..."
    batch        int      number of examples n
    input_shape  [C,H,W]  shape of one example
    output_len   int      logits per example
    weights      object   {"<state_dict key>": {"shape": [...], "data": [...]}}
                          in state_dict order; values are float32 (written so
                          that parsing them as f32, or as f64 then casting to
                          f32, gives the exact float32). This object alone is
                          a valid weights JSON file.
    input        [float]  n*C*H*W float32 values, NCHW row-major
    output       [float]  n*output_len float64 logits (row-major [n, out])
    labels       [int]    n class indices in [0, output_len)
    loss         float    float64 mean cross-entropy
    grads        object   same layout as "weights", float64 d loss / d param
    input_grad   [float]  float64 d loss / d input, same layout as "input"
    torch_version string  PyTorch version (without local "+cuXXX" suffix)

float64 values are written with Python's repr (shortest string that
round-trips the double).

Cases marked `weights_file=True` also get tests/fixtures/<name>.weights.json:
the "weights" object alone, which a test bakes into a net at compile time.
"""

import argparse
import json
import math
import os
import re
import sys
import zlib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "tests", "fixtures")

# ---------------------------------------------------------------------------
# DSL parser
# ---------------------------------------------------------------------------

TOKEN_RE = re.compile(
    r"\s*(?:(?P<arrow>=>)|(?P<num>-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)"
    r"|(?P<ident>[A-Za-z_][A-Za-z0-9_]*)|(?P<punct>[\[\](),=]))"
)


class DslError(Exception):
    pass


def tokenize(text):
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = TOKEN_RE.match(text, pos)
        if not m or m.end() == pos:
            raise DslError(f"unexpected character at {pos}: {text[pos:pos + 10]!r}")
        pos = m.end()
        kind = m.lastgroup
        val = m.group(kind)
        if kind == "num":
            val = float(val) if any(c in val for c in ".eE") else int(val)
        tokens.append((kind, val))
    return tokens


class Parser:
    def __init__(self, text):
        self.toks = tokenize(text)
        self.i = 0

    def peek(self):
        return self.toks[self.i] if self.i < len(self.toks) else (None, None)

    def next(self):
        tok = self.peek()
        if tok[0] is None:
            raise DslError("unexpected end of input")
        self.i += 1
        return tok

    def expect(self, val):
        kind, v = self.next()
        if v != val:
            raise DslError(f"expected {val!r}, got {v!r}")

    def int_(self):
        kind, v = self.next()
        if kind != "num" or not isinstance(v, int):
            raise DslError(f"expected integer, got {v!r}")
        return v

    def value(self):
        """int | float | '_' | true | false | '(' int ',' int ')'"""
        kind, v = self.peek()
        if v == "(":
            self.next()
            a = self.int_()
            self.expect(",")
            b = self.int_()
            self.expect(")")
            return (a, b)
        kind, v = self.next()
        if kind == "num":
            return v
        if kind == "ident" and v in ("_", "true", "false"):
            return {"_": None, "true": True, "false": False}[v]
        raise DslError(f"bad value {v!r}")

    def layer(self):
        kind, name = self.next()
        if kind != "ident":
            raise DslError(f"expected layer name, got {name!r}")
        pos, opts = [], {}
        if self.peek()[1] == "(":
            self.next()
            while True:
                k, v = self.peek()
                if k == "ident" and self.i + 1 < len(self.toks) and self.toks[self.i + 1][1] == "=":
                    self.next()
                    self.next()
                    if v in opts:
                        raise DslError(f"{name}: duplicate option {v}")
                    opts[v] = self.value()
                else:
                    if opts:
                        raise DslError(f"{name}: positional argument after option")
                    pos.append(self.value())
                k, v = self.next()
                if v == ")":
                    break
                if v != ",":
                    raise DslError(f"{name}: expected ',' or ')', got {v!r}")
        return {"name": name, "pos": pos, "opts": opts}

    def net(self):
        self.expect("[")
        shape = [self.int_()]
        for _ in range(2):
            self.expect(",")
            shape.append(self.int_())
        self.expect("]")
        self.expect("=>")
        layers = []
        while self.peek()[0] is not None:
            if self.peek()[1] == ",":
                self.next()
                continue
            layers.append(self.layer())
        if not layers:
            raise DslError("net has no layers")
        return shape, layers


def pair(v, what):
    if isinstance(v, tuple):
        return v
    if isinstance(v, int) and not isinstance(v, bool):
        return (v, v)
    raise DslError(f"{what}: expected int or (int, int), got {v!r}")


LAYER_SPEC = {
    # name: (number of positional args, allowed options)
    "conv": (3, {"stride", "pad", "bias", "groups"}),
    "maxpool": (1, {"stride", "pad"}),
    "avgpool": (1, {"stride", "pad"}),
    "global_avgpool": (0, set()),
    "global_maxpool": (0, set()),
    "flatten": (0, set()),
    "linear": (2, {"bias"}),
    "relu": (0, set()),
    "relu6": (0, set()),
    "sigmoid": (0, set()),
    "tanh": (0, set()),
    "dropout": (1, set()),
    "batchnorm": (None, {"eps", "momentum"}),
}


def pooled(n, k, s, p, what):
    out = (n + 2 * p - k) // s + 1
    if n + 2 * p < k or out < 1:
        raise DslError(f"{what}: window {k} (pad {p}) does not fit input extent {n}")
    return out


def build(text):
    """Parse `text` and return (input_shape, nn.Sequential, per-layer rows).

    Shapes are walked analytically (with PyTorch's validity rules) and then
    confirmed by a dummy forward pass through every module; `_` inputs are
    filled from the walked shape.
    """
    shape, layers = Parser(text).net()
    cur = list(shape)  # [C, H, W] or [F]
    modules, rows = [], []
    for idx, l in enumerate(layers):
        name, pos, opts = l["name"], l["pos"], l["opts"]
        what = f"layer {idx} ({name})"
        if name not in LAYER_SPEC:
            raise DslError(f"{what}: unknown layer")
        npos, allowed = LAYER_SPEC[name]
        if npos is None:
            npos = min(len(pos), 1)  # batchnorm: channels optional
        if len(pos) != npos:
            raise DslError(f"{what}: expected {npos} positional args, got {len(pos)}")
        bad = set(opts) - allowed
        if bad:
            raise DslError(f"{what}: unknown options {sorted(bad)}")
        spatial = len(cur) == 3
        if name == "conv":
            cin, cout, k = pos
            if not spatial:
                raise DslError(f"{what}: needs a [C, H, W] input, got {cur}")
            if cin is None:
                cin = cur[0]
            if cin != cur[0]:
                raise DslError(f"{what}: in_channels {cin} but input has {cur[0]}")
            kh, kw = pair(k, what)
            sh, sw = pair(opts.get("stride", 1), what)
            ph, pw = pair(opts.get("pad", 0), what)
            bias = opts.get("bias", True)
            groups = opts.get("groups", 1)
            m = nn.Conv2d(cin, cout, (kh, kw), stride=(sh, sw), padding=(ph, pw), bias=bias, groups=groups)
            cur = [cout, pooled(cur[1], kh, sh, ph, what), pooled(cur[2], kw, sw, pw, what)]
        elif name in ("maxpool", "avgpool"):
            if not spatial:
                raise DslError(f"{what}: needs a [C, H, W] input, got {cur}")
            kh, kw = pair(pos[0], what)
            sh, sw = pair(opts.get("stride", (kh, kw)), what)
            ph, pw = pair(opts.get("pad", 0), what)
            if ph > kh // 2 or pw > kw // 2:
                raise DslError(f"{what}: pad must be at most half the kernel (PyTorch rule)")
            if name == "maxpool":
                m = nn.MaxPool2d((kh, kw), stride=(sh, sw), padding=(ph, pw))
            else:
                m = nn.AvgPool2d((kh, kw), stride=(sh, sw), padding=(ph, pw), count_include_pad=True)
            cur = [cur[0], pooled(cur[1], kh, sh, ph, what), pooled(cur[2], kw, sw, pw, what)]
        elif name in ("global_avgpool", "global_maxpool"):
            if not spatial:
                raise DslError(f"{what}: needs a [C, H, W] input, got {cur}")
            m = nn.AdaptiveAvgPool2d(1) if name == "global_avgpool" else nn.AdaptiveMaxPool2d(1)
            cur = [cur[0], 1, 1]
        elif name == "flatten":
            m = nn.Flatten()
            cur = [math.prod(cur)]
        elif name == "linear":
            fin, fout = pos
            if spatial:
                raise DslError(f"{what}: needs a flat input (add flatten), got {cur}")
            if fin is None:
                fin = cur[0]
            if fin != cur[0]:
                raise DslError(f"{what}: in_features {fin} but input has {cur[0]}")
            m = nn.Linear(fin, fout, bias=opts.get("bias", True))
            cur = [fout]
        elif name in ("relu", "relu6", "sigmoid", "tanh"):
            m = {"relu": nn.ReLU, "relu6": nn.ReLU6, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}[name]()
        elif name == "batchnorm":
            c = cur[0]
            if pos and pos[0] != c:
                raise DslError(f"{what}: {pos[0]} channels but input has {c}")
            kw = dict(eps=float(opts.get("eps", 1e-5)), momentum=float(opts.get("momentum", 0.1)))
            m = nn.BatchNorm2d(c, **kw) if spatial else nn.BatchNorm1d(c, **kw)
        elif name == "dropout":
            p = float(pos[0])
            if not 0.0 <= p < 1.0:
                raise DslError(f"{what}: p must be in [0, 1)")
            m = nn.Dropout(p)
        modules.append(m)
        rows.append((idx, name, type(m).__name__, tuple(cur),
                     sum(t.numel() for t in m.parameters())))
    if len(cur) != 1:
        raise DslError(f"net output must be flat for CrossEntropyLoss, got {cur}")
    model = nn.Sequential(*modules)
    # Confirm the analytic walk with a dummy forward pass.
    # (Two examples: BatchNorm1d refuses one in train mode.)
    with torch.no_grad():
        x = torch.zeros(2, *shape)
        for (idx, name, _, want, _), m in zip(rows, model):
            x = m(x)
            if tuple(x.shape[1:]) != want:
                raise DslError(f"layer {idx} ({name}): torch gives {tuple(x.shape[1:])}, walk gives {want}")
    return shape, model, rows


# ---------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------

# input kinds: "unit" = uniform [0, 1) like images, "signed" = uniform [-1, 1),
# "wide" = uniform [-20, 20) (activations past relu6's cap)
CASES = [
    dict(name="lenet", batch=4, input="unit",
         net="[1, 28, 28] => conv(1, 6, 5, pad = 2) sigmoid avgpool(2) conv(6, 16, 5) sigmoid avgpool(2) "
             "flatten linear(400, 120) sigmoid linear(120, 84) sigmoid linear(84, 10)"),
    dict(name="lenet_relu", batch=4, input="unit",
         net="[1, 28, 28] => conv(1, 6, 5, pad = 2) relu maxpool(2) conv(6, 16, 5) relu maxpool(2) "
             "flatten linear(400, 120) relu linear(120, 84) relu linear(84, 10)"),
    dict(name="strided_conv", batch=3, input="signed",
         net="[3, 13, 11] => conv(3, 4, 3, stride = 2) relu conv(4, 5, 3, stride = 2, pad = 1) tanh "
             "flatten linear(_, 5)"),
    dict(name="rect_kernels", batch=3, input="signed",
         net="[2, 9, 10] => conv(2, 3, (3, 5), pad = (1, 2)) tanh conv(3, 4, (5, 3), stride = (2, 1), "
             "pad = (0, 1)) sigmoid flatten linear(_, 6)"),
    dict(name="three_channel", batch=4, input="unit",
         net="[3, 16, 16] => conv(3, 8, 3, pad = 1) relu maxpool(2) conv(8, 8, 3) relu global_avgpool "
             "flatten linear(8, 4)"),
    dict(name="one_by_one", batch=3, input="signed",
         net="[4, 6, 6] => conv(4, 8, 1) relu conv(8, 2, 1) flatten linear(72, 3)"),
    # Adjusted from the original spec: the second pool was
    # `avgpool(3, stride = 2, pad = 1)`, which makes the later
    # `maxpool((2, 3), stride = (1, 2))` see a [3, 2, 2] input whose width 2
    # is smaller than the window width 3. stride = 1 keeps [2, 6, 6] and every
    # layer valid ([2,6,6] [2,6,6] [3,5,5] [3,4,2] [3,3,1] -> 9).
    dict(name="pools", batch=4, input="distinct",
         net="[2, 11, 11] => maxpool(3, stride = 2, pad = 1) avgpool(3, stride = 1, pad = 1) conv(2, 3, 2) "
             "maxpool((2, 3), stride = (1, 2)) avgpool(2, stride = 1) flatten linear(_, 4)"),
    dict(name="global_pools", batch=4, input="signed",
         net="[3, 7, 7] => conv(3, 6, 3) relu global_maxpool flatten linear(6, 4)"),
    dict(name="nin_style", batch=3, input="unit",
         net="[1, 16, 16] => conv(1, 8, 3, pad = 1) relu conv(8, 8, 1) relu maxpool(2) conv(8, 10, 3, pad = 1) "
             "relu conv(10, 10, 1) global_avgpool flatten"),
    dict(name="no_bias", batch=4, input="unit",
         net="[2, 8, 8] => conv(2, 4, 3, bias = false) relu avgpool(2) flatten linear(_, 5, bias = false)"),
    # Inputs scaled so that relu6 clips at both ends (values past 6 and below 0).
    dict(name="relu6_mlp", batch=5, input="wide",
         net="[1, 4, 4] => flatten linear(16, 24) relu6 linear(24, 12) relu6 linear(12, 3)"),
    # Grouped convolutions: two groups, then depthwise (groups = channels)
    # with a channel multiplier of 2 and a stride, then depthwise 1:1, as in
    # MobileNet's separable blocks.
    dict(name="grouped_conv", batch=3, input="signed",
         net="[4, 9, 9] => conv(4, 6, 3, pad = 1, groups = 2) relu6 conv(6, 12, 3, stride = 2, groups = 6) relu "
             "conv(12, 12, 3, pad = 1, groups = 12, bias = false) conv(12, 4, 1) relu6 flatten linear(_, 5)"),
    dict(name="tanh_mlp", batch=5, input="signed",
         net="[1, 4, 4] => flatten linear(16, 12) tanh linear(12, 7) sigmoid linear(7, 3)"),
    # Input with tied maxima; the first max in row-major window order wins.
    # No parameter sits before the pool, so only "input_grad" sees the routing.
    dict(name="maxpool_ties", batch=4, input="ties", allow_ties=True,
         net="[1, 4, 4] => maxpool(2, stride = 1) flatten linear(9, 2)"),
    # Extra case: ties whose receptive fields differ, so the routing changes
    # the conv weight gradient (see tie_conv_input).
    dict(name="maxpool_ties_conv", batch=4, input="tie_conv", allow_ties=True,
         net="[2, 4, 4] => conv(2, 1, 1, bias = false) maxpool(2, stride = 1) flatten linear(9, 2)"),
]


def zero_dropout(net):
    """`net` with every `dropout(p)` turned into `dropout(0.0)`: a mask with
    p > 0 is random and PyTorch's cannot be reproduced, while p = 0 must
    match exactly (the identity, in training mode too)."""
    return re.sub(r"dropout\(\s*[0-9.eE+-]+\s*\)", "dropout(0.0)", net)


# The model zoo of models/src/lib.rs, written exactly as declared there
# (tests/tests/integration/parity.rs checks that these strings still match the Rust
# declarations). NiN is small enough to be its own fixture; VGG-small
# (285,546 parameters) and AlexNet-small (694,058) would make fixtures of
# about 10 and 25 MB, so their fixtures use the same layer sequence with
# fewer channels and features. NiN's twelve ReLU layers need
# `init="kaiming"` (see generate).
ZOO_NIN = ("[1, 28, 28] => conv(1, 16, 5, pad = 2) relu conv(16, 16, 1) relu conv(16, 16, 1) relu "
           "maxpool(3, stride = 2) conv(16, 32, 3, pad = 1) relu conv(32, 32, 1) relu conv(32, 32, 1) relu "
           "maxpool(3, stride = 2) conv(32, 64, 3, pad = 1) relu conv(64, 64, 1) relu conv(64, 64, 1) relu "
           "maxpool(3, stride = 2) dropout(0.5) conv(64, 10, 3, pad = 1) relu conv(10, 10, 1) relu "
           "conv(10, 10, 1) global_avgpool flatten")

CASES += [
    dict(name="nin", batch=2, input="unit", init="kaiming", net=zero_dropout(ZOO_NIN)),
    # VggSmall with channels 16-32-64 -> 8-16-32 and 256 features -> 64.
    dict(name="vgg_small", batch=2, input="unit",
         net=zero_dropout("[1, 28, 28] => conv(1, 8, 3, pad = 1) relu maxpool(2) "
                          "conv(8, 16, 3, pad = 1) relu conv(16, 16, 3, pad = 1) relu maxpool(2) "
                          "conv(16, 32, 3, pad = 1) relu conv(32, 32, 3, pad = 1) relu maxpool(2) "
                          "flatten linear(288, 64) relu dropout(0.5) linear(64, 64) relu dropout(0.5) "
                          "linear(64, 10)")),
    # AlexNetSmall with channels 32-64-96-64 -> 8-16-24-16 and 512 features -> 64.
    dict(name="alexnet_small", batch=2, input="unit",
         net=zero_dropout("[1, 28, 28] => conv(1, 8, 7, stride = 2, pad = 3) relu "
                          "maxpool(3, stride = 2, pad = 1) conv(8, 16, 3, pad = 1) relu "
                          "conv(16, 24, 3, pad = 1) relu conv(24, 16, 3, pad = 1) relu "
                          "maxpool(3, stride = 2) flatten linear(144, 64) relu dropout(0.5) "
                          "linear(64, 64) relu dropout(0.5) linear(64, 10)")),
]


# ---------------------------------------------------------------------------
# Graph nets, built with Dive into Deep Learning's own module classes so the
# keys are checked by a real state_dict. Batch norm is not in the DSL yet:
# these are D2L's classes with their BatchNorm layers left out (the keys of
# the layers that remain are D2L's, except where a removed BatchNorm shifted
# a position, as in conv_block).
# ---------------------------------------------------------------------------

class Residual(nn.Module):
    """D2L 8.6's Residual without bn1/bn2."""

    def __init__(self, in_c, c, use_1x1conv=False, strides=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_c, c, 3, padding=1, stride=strides)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)
        self.conv3 = nn.Conv2d(in_c, c, 1, stride=strides) if use_1x1conv else None

    def forward(self, X):
        Y = F.relu(self.conv1(X))
        Y = self.conv2(Y)
        if self.conv3:
            X = self.conv3(X)
        Y += X
        return F.relu(Y)


class Inception(nn.Module):
    """D2L 8.4's Inception block (with explicit input channels instead of
    LazyConv2d; the keys are the same)."""

    def __init__(self, in_c, c1, c2, c3, c4):
        super().__init__()
        self.b1_1 = nn.Conv2d(in_c, c1, kernel_size=1)
        self.b2_1 = nn.Conv2d(in_c, c2[0], kernel_size=1)
        self.b2_2 = nn.Conv2d(c2[0], c2[1], kernel_size=3, padding=1)
        self.b3_1 = nn.Conv2d(in_c, c3[0], kernel_size=1)
        self.b3_2 = nn.Conv2d(c3[0], c3[1], kernel_size=5, padding=2)
        self.b4_1 = nn.MaxPool2d(kernel_size=3, stride=1, padding=1)
        self.b4_2 = nn.Conv2d(in_c, c4, kernel_size=1)

    def forward(self, x):
        b1 = F.relu(self.b1_1(x))
        b2 = F.relu(self.b2_2(F.relu(self.b2_1(x))))
        b3 = F.relu(self.b3_2(F.relu(self.b3_1(x))))
        b4 = F.relu(self.b4_2(self.b4_1(x)))
        return torch.cat((b1, b2, b3, b4), dim=1)


def conv_block(in_c, c):
    """D2L 8.7's conv_block without its BatchNorm2d."""
    return nn.Sequential(nn.ReLU(), nn.Conv2d(in_c, c, kernel_size=3, padding=1))


class DenseBlock(nn.Module):
    """D2L 8.7's DenseBlock."""

    def __init__(self, num_convs, in_c, c):
        super().__init__()
        self.net = nn.Sequential(*[conv_block(in_c + i * c, c) for i in range(num_convs)])

    def forward(self, X):
        for blk in self.net:
            Y = blk(X)
            X = torch.cat((X, Y), dim=1)
        return X


class ResidualBN(nn.Module):
    """D2L 8.6's Residual, exactly (explicit input channels instead of
    LazyConv2d/LazyBatchNorm2d; the keys are the same)."""

    def __init__(self, in_c, num_channels, use_1x1conv=False, strides=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_c, num_channels, kernel_size=3, padding=1, stride=strides)
        self.conv2 = nn.Conv2d(num_channels, num_channels, kernel_size=3, padding=1)
        if use_1x1conv:
            self.conv3 = nn.Conv2d(in_c, num_channels, kernel_size=1, stride=strides)
        else:
            self.conv3 = None
        self.bn1 = nn.BatchNorm2d(num_channels)
        self.bn2 = nn.BatchNorm2d(num_channels)

    def forward(self, X):
        Y = F.relu(self.bn1(self.conv1(X)))
        Y = self.bn2(self.conv2(Y))
        if self.conv3:
            X = self.conv3(X)
        Y += X
        return F.relu(Y)


def resnet_bn():
    return [1, 12, 12], nn.Sequential(
        nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2)),
        nn.Sequential(ResidualBN(4, 4), ResidualBN(4, 4)),
        nn.Sequential(ResidualBN(4, 8, use_1x1conv=True, strides=2), ResidualBN(8, 8)),
        nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10)))


def conv_block_bn(in_c, c):
    """D2L 8.7's conv_block, exactly."""
    return nn.Sequential(nn.BatchNorm2d(in_c), nn.ReLU(), nn.Conv2d(in_c, c, kernel_size=3, padding=1))


class DenseBlockBN(nn.Module):
    """D2L 8.7's DenseBlock, exactly."""

    def __init__(self, num_convs, in_c, c):
        super().__init__()
        self.net = nn.Sequential(*[conv_block_bn(in_c + i * c, c) for i in range(num_convs)])

    def forward(self, X):
        for blk in self.net:
            Y = blk(X)
            X = torch.cat((X, Y), dim=1)
        return X


def transition_block(in_c, c):
    """D2L 8.7's transition_block, exactly."""
    return nn.Sequential(nn.BatchNorm2d(in_c), nn.ReLU(), nn.Conv2d(in_c, c, kernel_size=1),
                         nn.AvgPool2d(kernel_size=2, stride=2))


def densenet_bn():
    return [1, 12, 12], nn.Sequential(
        nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2)),
        DenseBlockBN(2, 8, 4), transition_block(16, 8), DenseBlockBN(2, 8, 4),
        nn.BatchNorm2d(16), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))


class InvertedResidual(nn.Module):
    """MobileNetV2's inverted residual (torchvision's layout): 1x1 expansion,
    3x3 depthwise, 1x1 projection, batch norms, ReLU6; the input added when
    the stride is 1 and the channels are kept."""

    def __init__(self, inp, oup, stride, expand_ratio):
        super().__init__()
        hidden = inp * expand_ratio
        self.use_res_connect = stride == 1 and inp == oup
        self.conv = nn.Sequential(
            nn.Conv2d(inp, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(),
            nn.Conv2d(hidden, oup, 1, bias=False), nn.BatchNorm2d(oup))

    def forward(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


def mobilenet_small():
    return [3, 16, 16], nn.Sequential(
        nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU6()),
        InvertedResidual(8, 8, 1, 2), InvertedResidual(8, 12, 2, 3), InvertedResidual(12, 12, 1, 3),
        nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(12, 10)))


def resnet_small():
    return [1, 12, 12], nn.Sequential(
        nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)),
        nn.Sequential(Residual(4, 4), Residual(4, 4)),
        nn.Sequential(Residual(4, 8, use_1x1conv=True, strides=2), Residual(8, 8)),
        nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10)))


def googlenet_small():
    return [1, 16, 16], nn.Sequential(
        nn.Sequential(nn.Conv2d(1, 8, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, stride=2, padding=1)),
        nn.Sequential(Inception(8, 4, (4, 6), (2, 3), 3), Inception(16, 4, (4, 6), (2, 3), 3),
                      nn.MaxPool2d(3, stride=2, padding=1)),
        nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10)))


def densenet_small():
    return [1, 12, 12], nn.Sequential(
        nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.MaxPool2d(2)),
        DenseBlock(2, 8, 4),
        nn.Sequential(nn.ReLU(), nn.Conv2d(16, 8, 1), nn.AvgPool2d(2, 2)),
        DenseBlock(2, 8, 4),
        nn.Sequential(nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10)))


RESIDUAL = ("add {{ conv1: conv({i}, {c}, 3, pad = 1{s}) relu conv2: conv({c}, {c}, 3, pad = 1) | {short} }} relu")
INCEPTION = ("cat {{ b1_1: conv({i}, 4, 1) relu | b2_1: conv({i}, 4, 1) relu b2_2: conv(4, 6, 3, pad = 1) relu "
             "| b3_1: conv({i}, 2, 1) relu b3_2: conv(2, 3, 5, pad = 2) relu "
             "| b4_1: maxpool(3, stride = 1, pad = 1) b4_2: conv({i}, 3, 1) relu }}")
RESIDUAL_BN = ("add {{ conv1: conv({i}, {c}, 3, pad = 1{s}) bn1: batchnorm relu conv2: conv({c}, {c}, 3, pad = 1) "
               "bn2: batchnorm | {short} }} relu")
DENSE = ("cat {{ identity | net.0: [relu conv({i}, 4, 3, pad = 1)] }} "
         "cat {{ identity | net.1: [relu conv({j}, 4, 3, pad = 1)] }}")

# Batch norm: "output" is eval mode (running statistics), "loss" and
# "grads" train mode (batch statistics), and "after_sgd" the state after two
# SGD steps in train mode. Batches of 40 and 80 are larger than the
# runtime's 32-example micro-batch and split into shares at 2 threads
# (LeNet's batch is the smaller one to keep its fixture near 2 MB).
CASES += [
    dict(name="lenet_bn", batch=40, input="unit", batchnorm=True,
         net="[1, 28, 28] => conv(1, 6, 5) batchnorm sigmoid avgpool(2, stride = 2) conv(6, 16, 5) batchnorm "
             "sigmoid avgpool(2, stride = 2) flatten linear(256, 120) batchnorm sigmoid linear(120, 84) "
             "batchnorm sigmoid linear(84, 10)"),
    dict(name="resnet_bn", batch=80, input="unit", batchnorm=True, module=resnet_bn, weights_file=True,
         net="[1, 12, 12] => [conv(1, 4, 3, pad = 1) batchnorm relu maxpool(2)] "
             "[[" + RESIDUAL_BN.format(i=4, c=4, s="", short="identity") + "] "
             "[" + RESIDUAL_BN.format(i=4, c=4, s="", short="identity") + "]] "
             "[[" + RESIDUAL_BN.format(i=4, c=8, s=", stride = 2", short="conv3: conv(4, 8, 1, stride = 2)") + "] "
             "[" + RESIDUAL_BN.format(i=8, c=8, s="", short="identity") + "]] "
             "[global_avgpool flatten linear(8, 10)]"),
]

DENSE_BN = ("cat {{ identity | net.0: [batchnorm relu conv({i}, 4, 3, pad = 1)] }} "
            "cat {{ identity | net.1: [batchnorm relu conv({j}, 4, 3, pad = 1)] }}")
# The DSL of mobilenet_small: blocks, as a user would write MobileNetV2.
MOBILENET = ("block Body(inp, hidden, oup, stride = 1) => conv(inp, hidden, 1, bias = false) batchnorm relu6 "
             "conv(hidden, hidden, 3, stride = stride, pad = 1, groups = hidden, bias = false) batchnorm relu6 "
             "conv(hidden, oup, 1, bias = false) batchnorm; "
             "block InvertedResidual(inp, hidden, oup, stride = 1, res = false) => "
             "if res { add { identity | conv: Body(inp, hidden, oup, stride) } } "
             "else { conv: Body(inp, hidden, oup, stride) }; "
             "pub Net: [3, 16, 16] => [conv(3, 8, 3, stride = 2, pad = 1, bias = false) batchnorm relu6] "
             "InvertedResidual(8, 16, 8, res = true) InvertedResidual(8, 24, 12, stride = 2) "
             "InvertedResidual(12, 36, 12, res = true) [global_avgpool flatten linear(12, 10)]")

CASES += [
    dict(name="densenet_bn", batch=80, input="unit", batchnorm=True, module=densenet_bn,
         net="[1, 12, 12] => [conv(1, 8, 3, pad = 1) batchnorm relu maxpool(2)] [" + DENSE_BN.format(i=8, j=12)
             + "] [batchnorm relu conv(16, 8, 1) avgpool(2, stride = 2)] [" + DENSE_BN.format(i=8, j=12)
             + "] batchnorm relu global_avgpool flatten linear(16, 10)"),
    dict(name="mobilenet_small", batch=40, input="signed", batchnorm=True, module=mobilenet_small, net=MOBILENET),
]

CASES += [
    dict(name="resnet_small", batch=5, input="unit", module=resnet_small,
         net="[1, 12, 12] => [conv(1, 4, 3, pad = 1) relu maxpool(2)] "
             "[[" + RESIDUAL.format(i=4, c=4, s="", short="identity") + "] "
             "[" + RESIDUAL.format(i=4, c=4, s="", short="identity") + "]] "
             "[[" + RESIDUAL.format(i=4, c=8, s=", stride = 2", short="conv3: conv(4, 8, 1, stride = 2)") + "] "
             "[" + RESIDUAL.format(i=8, c=8, s="", short="identity") + "]] "
             "[global_avgpool flatten linear(8, 10)]"),
    dict(name="googlenet_small", batch=4, input="unit", module=googlenet_small,
         net="[1, 16, 16] => [conv(1, 8, 5, pad = 2) relu maxpool(3, stride = 2, pad = 1)] "
             "[[" + INCEPTION.format(i=8) + "] [" + INCEPTION.format(i=16) + "] maxpool(3, stride = 2, pad = 1)] "
             "[global_avgpool flatten linear(16, 10)]"),
    dict(name="densenet_small", batch=5, input="unit", module=densenet_small,
         net="[1, 12, 12] => [conv(1, 8, 3, pad = 1) maxpool(2)] [" + DENSE.format(i=8, j=12) + "] "
             "[relu conv(16, 8, 1) avgpool(2)] [" + DENSE.format(i=8, j=12) + "] "
             "[relu global_avgpool flatten linear(16, 10)]"),
]


def ties_input(gen):
    """Four [1, 4, 4] examples with tied maxima in max-pool windows."""
    x = torch.empty(4, 1, 4, 4)
    x[0] = 0.5  # every window is a 4-way tie
    checker = (torch.arange(4)[:, None] + torch.arange(4)[None, :]) % 2
    x[1, 0] = torch.where(checker == 0, 0.75, 0.25)  # diagonal 2-way ties
    x[2, 0] = torch.tensor([0.1, 0.6, 0.3, 0.9])[:, None].expand(4, 4)  # row-constant: horizontal ties
    x[3, 0] = torch.rand(4, 4, generator=gen) * 0.5 - 0.25  # random background, below 0.9
    x[3, 0, 1:3, 1:3] = 0.9  # central 2x2 plateau: overlapping windows tie
    x[3, 0, 0, 3] = 0.9  # a tie between a plateau cell and a corner cell
    return x


def tie_conv_input(gen, model):
    """[2, 4, 4] examples for conv(2, 1, 1, bias = false) with weight (w0, w1).

    A cell "P" holds (x0, x1) = (w1, 0) and a cell "Q" holds (0, w0); both
    give the conv output w0*w1 exactly (commutative product plus exact zero,
    in any precision and any summation order), yet d out / d w differs: P
    contributes to d w0, Q to d w1. Background cells hold
    -u * (sign w0, sign w1) with distinct u in [0.5, 1), so their outputs
    -u (|w0| + |w1|) are distinct and below w0*w1 (|w| <= 1/sqrt(2)).
    Which of P/Q a window routes to therefore shows in the weight gradient.
    """
    w = model[0].weight.detach().reshape(2)
    w0, w1 = float(w[0]), float(w[1])
    layouts = [
        ["....", ".PQ.", "....", "...."],
        ["....", ".Q..", "..P.", "...."],
        ["PQ..", "QP..", "....", "...Q"],
        ["PQPQ", "QPQP", "PQPQ", "QPQP"],
    ]
    x = torch.empty(4, 2, 4, 4)
    for n, rows in enumerate(layouts):
        u = 0.5 + 0.5 * torch.randperm(16, generator=gen).float() / 16  # distinct
        for i in range(4):
            for j in range(4):
                c = rows[i][j]
                if c == "P":
                    x[n, :, i, j] = torch.tensor([w1, 0.0])
                elif c == "Q":
                    x[n, :, i, j] = torch.tensor([0.0, w0])
                else:
                    x[n, :, i, j] = -u[i * 4 + j] * torch.tensor([math.copysign(1, w0), math.copysign(1, w1)])
    return x


def make_input(case, shape, gen, model):
    n = case["batch"]
    kind = case["input"]
    if kind == "unit":
        return torch.rand(n, *shape, generator=gen)
    if kind == "signed":
        return torch.rand(n, *shape, generator=gen) * 2 - 1
    if kind == "wide":
        return torch.rand(n, *shape, generator=gen) * 40 - 20
    if kind == "distinct":
        # uniform [0, 1) but all distinct within each example: no ties in any pool window
        numel = math.prod(shape)
        perm = torch.stack([torch.randperm(numel, generator=gen) for _ in range(n)]).float()
        jitter = torch.rand(n, numel, generator=gen)
        return ((perm + jitter) / numel).reshape(n, *shape).clamp_max(0.99999994)
    if kind == "ties":
        return ties_input(gen)
    if kind == "tie_conv":
        return tie_conv_input(gen, model)
    raise ValueError(kind)


# ---------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------

def pool_windows(x, m):
    """[N, C, L, K] windows of the max-pool module m applied to x (pad = -inf)."""
    if isinstance(m, nn.AdaptiveMaxPool2d):
        return x.flatten(2).unsqueeze(2)
    kh, kw = m.kernel_size
    sh, sw = m.stride
    ph, pw = m.padding
    xp = F.pad(x, (pw, pw, ph, ph), value=-math.inf)
    n, c = x.shape[:2]
    cols = F.unfold(xp.reshape(n * c, 1, *xp.shape[2:]), (kh, kw), stride=(sh, sw))
    return cols.reshape(n, c, kh * kw, -1).transpose(2, 3)


def first_max_input_grad(x, m, gout):
    """d/dx of a max pool routing each window's gradient to its FIRST max."""
    win = pool_windows(x, m)  # [N, C, L, K]
    first = win.argmax(dim=-1)  # torch.argmax returns the first max
    if isinstance(m, nn.AdaptiveMaxPool2d):
        kh, kw, sh, sw, ph, pw = x.shape[2], x.shape[3], 1, 1, 0, 0
        ow = 1
    else:
        (kh, kw), (sh, sw), (ph, pw) = m.kernel_size, m.stride, m.padding
        ow = (x.shape[3] + 2 * pw - kw) // sw + 1
    gx = torch.zeros_like(x)
    g = gout.flatten(2)
    N, C, L = first.shape
    for a in range(N):
        for c in range(C):
            for l in range(L):
                k = int(first[a, c, l])
                i = (l // ow) * sh + k // kw - ph
                j = (l % ow) * sw + k % kw - pw
                gx[a, c, i, j] += g[a, c, l]
    return gx


class SelectMaxPool(nn.Module):
    """Differentiable max pool (unfold + gather) routing each window's
    gradient to its first or its last maximum."""

    def __init__(self, m, last):
        super().__init__()
        self.m, self.last = m, last

    def forward(self, x):
        win = pool_windows(x, self.m)  # [N, C, L, K]
        if self.last:
            idx = win.shape[-1] - 1 - win.flip(-1).argmax(dim=-1)
        else:
            idx = win.argmax(dim=-1)
        out = win.gather(-1, idx.unsqueeze(-1)).squeeze(-1)
        if isinstance(self.m, nn.AdaptiveMaxPool2d):
            return out.reshape(x.shape[0], x.shape[1], 1, 1)
        (kh, kw), (sh, sw), (ph, pw) = self.m.kernel_size, self.m.stride, self.m.padding
        oh = (x.shape[2] + 2 * ph - kh) // sh + 1
        ow = (x.shape[3] + 2 * pw - kw) // sw + 1
        return out.reshape(x.shape[0], x.shape[1], oh, ow)


def grads_with_routing(model, x, labels, last):
    seq = nn.Sequential(*[SelectMaxPool(m, last) if isinstance(m, (nn.MaxPool2d, nn.AdaptiveMaxPool2d)) else m
                          for m in model])
    xd = x.double().requires_grad_(True)
    loss = nn.CrossEntropyLoss()(seq(xd), labels)
    params = list(model.parameters())
    return torch.autograd.grad(loss, params + [xd])


def check_model(case, model, x, labels):
    """Run the float64 model; check that no ReLU sees an exact 0 and that,
    unless the case is about ties, the gradients do not depend on how max
    pools break ties (recomputed with first-max and last-max routing)."""
    problems, tie_windows = [], 0

    def hook(idx):
        def f(m, inp, out):
            nonlocal tie_windows
            xin = inp[0].detach()
            if isinstance(m, (nn.MaxPool2d, nn.AdaptiveMaxPool2d)):
                win = pool_windows(xin, m)
                tie_windows += int(((win == win.max(dim=-1, keepdim=True).values).sum(-1) > 1).sum())
            if isinstance(m, nn.ReLU) and bool((xin == 0).any()):
                problems.append(f"layer {idx}: ReLU input exactly 0")
        return f

    handles = [m.register_forward_hook(hook(i)) for i, m in enumerate(model)]
    xd = x.double().requires_grad_(True)
    out = model(xd)
    loss = nn.CrossEntropyLoss()(out, labels)
    model.zero_grad()
    loss.backward()
    for h in handles:
        h.remove()
    torch_g = [p.grad for p in model.parameters()] + [xd.grad]
    routing_diff = 0.0
    if tie_windows:
        first = grads_with_routing(model, x, labels, last=False)
        last = grads_with_routing(model, x, labels, last=True)
        scale = max(float(g.abs().max()) for g in torch_g)
        err_first = max(float((a - b).abs().max()) for a, b in zip(torch_g, first))
        routing_diff = max(float((a - b).abs().max()) for a, b in zip(first, last))
        if err_first > 1e-14 * scale:
            problems.append(f"unfold max pool disagrees with torch by {err_first}")
        if not case.get("allow_ties") and routing_diff > 1e-14 * scale:
            problems.append(f"{tie_windows} max-pool windows with ties that change the gradients "
                            f"(first vs last max differ by {routing_diff})")
    if problems:
        raise SystemExit(f"{case['name']}: " + "; ".join(problems))
    return out, loss, xd.grad, (tie_windows, routing_diff)


def verify_tie_routing(case, model, x, labels, out, grads, input_grad):
    """Recompute the gradients by hand with first-max routing (and, to show
    the fixture is sensitive to it, with last-max routing)."""
    xd = x.double()
    lin = model[-1]
    with torch.no_grad():
        p = torch.softmax(out, dim=1)
        dout = (p - F.one_hot(labels, out.shape[1]).double()) / out.shape[0]
        # flatten -> linear: d pooled = dout @ W
        if case["name"] == "maxpool_ties":
            pool, pre = model[0], xd
        else:
            pool, pre = model[1], model[0](xd)
        pooled = pool(pre)
        gpool = (dout @ lin.weight).reshape(pooled.shape)
        g_first = first_max_input_grad(pre, pool, gpool)
        g_last = first_max_input_grad(pre.flip(-1, -2), pool, gpool.flip(-1, -2)).flip(-1, -2)
        if case["name"] == "maxpool_ties":
            want, want_last, got = g_first, g_last, input_grad
        else:
            # d conv weight[0, c] = sum over cells of d pre * x[:, c]
            want = (g_first * xd).sum(dim=(0, 2, 3)).reshape(1, 2, 1, 1)
            want_last = (g_last * xd).sum(dim=(0, 2, 3)).reshape(1, 2, 1, 1)
            got = grads["0.weight"]
        err = float((got - want).abs().max())
        diff_last = float((want_last - want).abs().max())
        if err > 1e-15:
            raise SystemExit(f"{case['name']}: torch grads differ from first-max routing by {err}")
        if diff_last < 1e-6:
            raise SystemExit(f"{case['name']}: fixture does not distinguish first-max from last-max routing")
        return err, diff_last


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------

def f32_str(v):
    """Shortest decimal that gives the float32 `v` both when parsed as f32 and
    when parsed as f64 (even one ulp off, as serde_json may be) then rounded
    to f32; falls back to the exact float64 repr."""
    f = np.float32(v)
    s = str(f)  # numpy: shortest round-trip repr for float32
    if s in ("inf", "-inf", "nan"):
        raise ValueError("non-finite value")
    d = float(s)
    if all(np.float32(c) == f for c in (d, np.nextafter(d, -np.inf), np.nextafter(d, np.inf))):
        return s.replace("e+", "e")
    return repr(float(f))


def f64_str(v):
    v = float(v)
    if not math.isfinite(v):
        raise ValueError("non-finite value")
    return repr(v)


def arr(values, fmt):
    return "[" + ",".join(fmt(v) for v in values) + "]"


def tensors_obj(items, fmt):
    parts = []
    for k, t in items:
        flat = t.detach().reshape(-1).tolist()
        # Integer tensors (batch norm's num_batches_tracked) stay integers.
        data = arr(flat, str) if not t.is_floating_point() else arr(flat, fmt)
        parts.append(json.dumps(k) + ':{"shape":' + json.dumps(list(t.shape)).replace(" ", "")
                     + ',"data":' + data + "}")
    return "{" + ",".join(parts) + "}"


def module_rows(model, shape):
    """Summary rows of a module case: each parameterised module's output."""
    rows = []
    with torch.no_grad():
        out = model(torch.zeros(2, *shape))
    for key, m in model.named_modules():
        n = sum(t.numel() for t in m.parameters(recurse=False))
        if n:
            rows.append((key, "", type(m).__name__, (), n))
    rows.append(("out", "", "", tuple(out.shape[1:]), 0))
    return rows


def generate_module(case):
    """A graph case: D2L's module classes, float64, no hooks (their ReLUs
    are functional; with uniform random inputs no pre-activation is
    exactly 0 and no max window ties except among ReLU zeros, whose
    gradient the ReLU stops whichever way a pool routes it)."""
    name = case["name"]
    seed = zlib.crc32(name.encode())
    torch.manual_seed(seed)
    shape, model = case["module"]()
    rows = module_rows(model, shape)
    gen = torch.Generator().manual_seed(seed + 1)
    x = make_input(case, shape, gen, model).float().contiguous()
    out_len = rows[-1][3][0]
    labels = torch.randint(0, out_len, (case["batch"],), generator=gen)
    weights = [(k, v.clone()) for k, v in model.state_dict().items()]
    model = model.double()
    model.train()
    xd = x.double().requires_grad_(True)
    out = model(xd)
    loss = nn.CrossEntropyLoss()(out, labels)
    loss.backward()
    grads = {k: p.grad for k, p in model.named_parameters()}
    assert list(grads) == [k for k, _ in weights]
    return finish(case, shape, x, out, labels, loss, weights, grads, xd.grad, rows, "")


def randomize_batchnorm(model, gen):
    """Batch norm's scale, shift and running statistics away from their
    starting values (1, 0, 0, 1), so the fixture tells them apart."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.copy_(torch.rand(m.bias.shape, generator=gen) * 0.4 - 0.2)
                m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=gen) * 0.6 - 0.3)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) * 1.5 + 0.5)
                m.num_batches_tracked.fill_(3)


SGD_LR = 0.1


def generate_batchnorm(case):
    """A batch-norm case: "output" in eval mode (running statistics), "loss"
    and "grads" in train mode (the whole batch's statistics), and
    "after_sgd": every parameter and buffer after two SGD steps (lr 0.1) in
    train mode on the batch, as `optimizer.step()` and the training forward
    pass's running-statistics update leave them."""
    import copy
    name = case["name"]
    seed = zlib.crc32(name.encode())
    torch.manual_seed(seed)
    if "module" in case:
        shape, model = case["module"]()
        rows = module_rows(model, shape)
    else:
        shape, model, rows = build(case["net"])
    gen = torch.Generator().manual_seed(seed + 1)
    randomize_batchnorm(model, gen)
    x = make_input(case, shape, gen, model).float().contiguous()
    out_len = rows[-1][3][0]
    labels = torch.randint(0, out_len, (case["batch"],), generator=gen)
    weights = [(k, v.clone()) for k, v in model.state_dict().items()]
    model = model.double()
    model.eval()
    with torch.no_grad():
        out = model(x.double())
    train = copy.deepcopy(model)
    train.train()
    xd = x.double().requires_grad_(True)
    loss = nn.CrossEntropyLoss()(train(xd), labels)
    loss.backward()
    grads = {k: p.grad for k, p in train.named_parameters()}
    stepped = copy.deepcopy(model)
    stepped.train()
    opt = torch.optim.SGD(stepped.parameters(), lr=SGD_LR)
    for _ in range(2):
        opt.zero_grad()
        nn.CrossEntropyLoss()(stepped(x.double()), labels).backward()
        opt.step()
    after = list(stepped.state_dict().items())
    extra = ['"after_sgd":{"lr":' + f64_str(SGD_LR) + ',"steps":2,"state":' + tensors_obj(after, f32_str) + "}"]
    return finish(case, shape, x, out, labels, loss, weights, grads, xd.grad, rows, "", extra)


def generate(case):
    if case.get("batchnorm"):
        return generate_batchnorm(case)
    if "module" in case:
        return generate_module(case)
    name = case["name"]
    seed = zlib.crc32(name.encode())
    torch.manual_seed(seed)
    shape, model, rows = build(case["net"])  # float32 default init, seeded
    if case.get("init") == "kaiming":
        # A deep ReLU stack under the default init shrinks the signal layer
        # by layer, leaving first-layer gradients near the tests' absolute
        # tolerance (1e-6); He init keeps them well above it. The last layer
        # is then scaled by 0.1 so the logits stay O(0.1) like the other
        # cases': f32 rounding grows with the activations, and a logit near 0
        # must still be within 1e-6 absolute.
        layers = [m for m in model if isinstance(m, (nn.Conv2d, nn.Linear))]
        with torch.no_grad():
            for m in layers:
                nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")
            for p in layers[-1].parameters():
                p.mul_(0.1)
    gen = torch.Generator().manual_seed(seed + 1)
    x = make_input(case, shape, gen, model).float().contiguous()
    out_len = rows[-1][3][0]
    labels = torch.randint(0, out_len, (case["batch"],), generator=gen)

    weights = [(k, v.clone()) for k, v in model.state_dict().items()]
    for _, v in weights:
        assert v.dtype == torch.float32
    model = model.double()
    model.train()
    for m in model:
        if isinstance(m, nn.Dropout) and m.p != 0:
            raise SystemExit(f"{name}: dropout with p > 0 is random, not usable in a fixture")

    out, loss, input_grad, (tie_windows, routing_diff) = check_model(case, model, x, labels)
    grads = {k: p.grad for k, p in model.named_parameters()}
    assert list(grads) == [k for k, _ in weights]
    tie_note = ""
    if tie_windows:
        tie_note = (f"{tie_windows} max-pool windows with ties; gradients with first- vs last-max "
                    f"routing differ by {routing_diff:.2e}")
    if case.get("allow_ties"):
        err, diff = verify_tie_routing(case, model, x, labels, out.detach(), grads, input_grad)
        tie_note += f"; hand-computed first-max routing matches torch (err {err:.1e})"
    return finish(case, shape, x, out, labels, loss, weights, grads, input_grad, rows, tie_note)


def finish(case, shape, x, out, labels, loss, weights, grads, input_grad, rows, tie_note, extra=()):
    """The fixture's JSON text, checked by parsing it back."""
    name = case["name"]
    out_len = out.shape[1]
    weights_text = tensors_obj(weights, f32_str)
    # The weights object alone, for the cases that also bake it at compile
    # time (`weights = "fixtures/<name>.weights.json"`); main() writes it.
    case["weights_text"] = weights_text
    parts = [
        '"name":' + json.dumps(name),
        '"net":' + json.dumps(case["net"]),
        '"batch":' + str(case["batch"]),
        '"input_shape":' + json.dumps(shape).replace(" ", ""),
        '"output_len":' + str(out_len),
        '"weights":' + weights_text,
        '"input":' + arr(x.reshape(-1).tolist(), f32_str),
        '"output":' + arr(out.detach().reshape(-1).tolist(), f64_str),
        '"labels":' + json.dumps(labels.tolist()).replace(" ", ""),
        '"loss":' + f64_str(loss.item()),
        '"grads":' + tensors_obj(list(grads.items()), f64_str),
        '"input_grad":' + arr(input_grad.reshape(-1).tolist(), f64_str),
        *extra,
        '"torch_version":' + json.dumps(torch.__version__.split("+")[0]),
    ]
    text = "{" + ",".join(parts) + "}\n"
    self_check(text, weights, x, out, grads)
    return text, shape, rows, sum(v.numel() for _, v in weights), loss.item(), tie_note


def self_check(text, weights, x, out, grads):
    """Parse the JSON back and compare bit-for-bit with the tensors."""
    j = json.loads(text)
    assert list(j["weights"]) == [k for k, _ in weights]
    for k, v in weights:
        got = np.array(j["weights"][k]["data"], dtype=np.float64).astype(np.float32)
        assert j["weights"][k]["shape"] == list(v.shape)
        assert np.array_equal(got, v.reshape(-1).numpy()), k
        assert set(j["weights"][k]) == {"shape", "data"}
    assert np.array_equal(np.array(j["input"], dtype=np.float32), x.reshape(-1).numpy())
    assert np.array_equal(np.array(j["output"]), out.detach().reshape(-1).numpy())
    for k, g in grads.items():
        assert np.array_equal(np.array(j["grads"][k]["data"]), g.reshape(-1).numpy()), k


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="only compare with the files on disk")
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.set_default_dtype(torch.float32)
    os.makedirs(OUT_DIR, exist_ok=True)

    stale, total = [], 0
    print(f"{'case':<18} {'params':>7} {'batch':>5}  {'input':<12} {'out':>3}  {'loss':>8}  bytes")
    for case in CASES:
        text, shape, rows, nparams, loss, tie_note = generate(case)
        outputs = [(os.path.join(OUT_DIR, case["name"] + ".json"), text.encode())]
        if case.get("weights_file"):
            outputs.append((os.path.join(OUT_DIR, case["name"] + ".weights.json"),
                            (case["weights_text"] + "\n").encode()))
        for path, data in outputs:
            total += len(data)
            if args.check:
                old = open(path, "rb").read() if os.path.exists(path) else None
                if old != data:
                    stale.append(path)
            else:
                with open(path, "wb") as f:
                    f.write(data)
        print(f"{case['name']:<18} {nparams:>7} {case['batch']:>5}  {str(shape):<12} {rows[-1][3][0]:>3}"
              f"  {loss:8.5f}  {len(outputs[0][1])}")
        for idx, kw, tname, oshape, np_ in rows:
            print(f"    {idx:>2} {kw:<15} {tname:<18} -> {str(list(oshape)):<14} params {np_}")
        if tie_note:
            print(f"    {tie_note}")
    print(f"total {total} bytes, torch {torch.__version__}")
    if args.check:
        if stale:
            print("out of date:", *stale, sep="\n  ")
            sys.exit(1)
        print("all fixtures up to date")


if __name__ == "__main__":
    main()
