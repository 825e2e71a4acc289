#!/usr/bin/env python3
"""Generate the int8 oracle fixtures in tests/fixtures/int8/*.json.

(One file per net below, the graph net residual_cat included (see "Graph
nets" at the end), plus activations.json: every int8 input of TFLM's
LOGISTIC and TANH for six input quantizations, see generate_activations; its
cases hold op, calibration_range, input_quant, output_quant, the three
input_* parameters as for a sigmoid/tanh layer below, input [256], TFLM's
output [256], and tflite_desktop_differing {reference_kernels,
default_kernels}: how many of the 256 outputs desktop TFLite computes
differently.)

Run from the repository root (about a minute on two cores):

    pip install -r tools/requirements-int8.txt
    nice -n 10 python3 tools/gen_int8_fixtures.py           # (re)writes tests/fixtures/int8/<net>.json
    nice -n 10 python3 tools/gen_int8_fixtures.py --check   # regenerates in memory, fails if a file differs
    python3 tools/gen_int8_fixtures.py --only strided --keep-tflite /tmp/int8

The oracle is TensorFlow Lite Micro's own interpreter (the `tflite_micro`
Python package, which runs TFLM's reference kernels) on models made by the
standard TensorFlow Lite converter. For every net below the script

1. trains the PyTorch net (NCHW, 1x28x28 -> 10 classes, `self.net` an
   `nn.Sequential`, so state_dict keys are `net.<index>.weight`) for a few
   hundred seeded Adam steps on the Fashion-MNIST sample in
   models/data/fashion-mnist-sample/ (pixels / 255, the first 5000 training
   images), so that activation ranges are those of a working net;
2. rebuilds it as a TensorFlow function over NHWC tensors with the same
   float32 weights (conv weights OIHW -> HWIO; PyTorch's padding as
   `SAME` where the two agree, else an explicit `tf.pad` before a `VALID`
   conv; the first linear layer's input dimension permuted from PyTorch's
   CHW flatten order to the HWC order of a NHWC reshape) and checks that
   its float outputs match PyTorch's;
3. converts it with `TFLiteConverter` (post-training full-integer
   quantization: `Optimize.DEFAULT`, a representative dataset of 200 seeded
   training images, `TFLITE_BUILTINS_INT8`, int8 input and output), i.e.
   TFLite's int8 scheme: per-output-channel symmetric int8 weights,
   per-tensor asymmetric int8 activations, int32 biases;
4. reads the .tflite flatbuffer back (ops, options, tensors, quantization,
   constant buffers), maps its ops onto the PyTorch layers, and converts every
   tensor to OUR layouts (NCHW activations, OIHW conv weights, linear weights
   `[out, in]` with the input in PyTorch's CHW flatten order);
5. runs TFLM (`InterpreterConfig.kPreserveAllTensors`, so the output of every
   op can be read back) on 16 real Fashion-MNIST test images plus an all-zero
   and an all-255 image, each quantized with the model's input scale and zero
   point exactly as TFLite's QUANTIZE op does (float32 `x / scale`, rounded
   half away from zero, plus the zero point, clamped);
6. writes the JSON described below.

Reproducibility: seeds are derived from the net's name (crc32), PyTorch runs
on one thread with deterministic algorithms, the calibration set and the
quantization are deterministic, so a rerun on the same machine with the
versions pinned in tools/requirements-int8.txt gives byte-identical files
(--check verifies that). A different CPU or PyTorch build can change the last
bits of the trained float weights and so everything downstream; the fixtures
stay self-consistent (the test only compares against what TFLM computed from
the stored int8 tensors).

JSON schema of tests/fixtures/int8/<name>.json (keys in this order):

    name           string  net name (= file stem)
    net            string  the net in the cnn_net! DSL, for information
    generator      string  "tools/gen_int8_fixtures.py"
    versions       object  {"torch", "tensorflow", "tflite_micro", "numpy"}
    input_shape    [C,H,W] [1, 28, 28]
    classes        int     10
    input_quant    object  {"scale": float32, "zero_point": int} of the model input
    output_quant   object  same, of the model output (the logits)
    layers         [layer] the int8 ops in execution order, see below
    images         [image] see below
    accuracy       object  {"images": n real images, "float": correct by
                           PyTorch, "int8": correct by TFLM, "agree": same
                           class from both, and the same three over the
                           first "test_set_size" images of the test sample:
                           "test_set_size", "test_float", "test_int8",
                           "test_agree"} (information only)
    tflite_desktop object  {"reference_kernels": {"outputs_differing": n,
                           "values_differing": n}, "default_kernels": {..}}:
                           how often desktop TFLite's interpreter (with its
                           reference kernels, and with its default ones,
                           XNNPACK) disagrees with TFLM on the final outputs
                           of the images (information only)

A layer is one TFLite op, or a PAD folded into the conv it feeds (TFLite
expresses padding other than SAME's as PAD + VALID conv; padding with the
zero point is what the conv kernel's skipped taps compute). Every layer has

    op             "conv" | "linear" | "maxpool" | "avgpool" | "sigmoid" |
                   "tanh" | "flatten"
    modules        [int]   the indices in `net` (nn.Sequential) this op
                           computes; a fused relu/relu6 adds its index
    tflite_ops     [str]   the TFLite builtin op(s) it came from
    in_shape       [..]    input shape of one example, OUR layout (CHW or [F])
    out_shape      [..]    output shape of one example
    input_quant    object  {"scale": float32, "zero_point": int}
    output_quant   object  {"scale": float32, "zero_point": int}

and, by op:

    conv           kernel [kh, kw], stride [sh, sw], pad [ph, pw] (each
                   side, symmetric), groups, activation "none"|"relu"|"relu6",
                   act_min, act_max (TFLM's clamp range), weight, bias,
                   multipliers [int], shifts [int] (TFLM's per-channel
                   requantization, QuantizeMultiplier of
                   double(in_scale) * double(w_scale[c]) / double(out_scale))
    linear         in_features, out_features, activation, act_min, act_max,
                   weight, bias, per_channel (bool), multipliers, shifts
                   (per-tensor weights use TFLite's legacy product
                   double(float(in_scale * w_scale)) / double(out_scale))
    maxpool/avgpool kernel, stride, pad, activation, act_min, act_max
    sigmoid/tanh   input_multiplier, input_shift, input_range_radius
                   (TFLM's LOGISTIC/TANH preparation)
    flatten        nothing more (TFLite's RESHAPE; CHW -> [C*H*W])

weight = {"key": "net.<i>.weight", "shape": [...], "data": [int8...],
"scales": [float32...] (one per output channel, or one), "zero_points": [...],
"per_channel": bool}; bias = {"key": "net.<i>.bias", "shape": [O],
"data": [int32...], "scales": [float32...]}. Conv weights are OIHW, linear
weights [out, in] with `in` in PyTorch's CHW flatten order.

An image is

    source         "fashion-mnist test #<i>" | "all-zero" | "all-255"
    label          int, or null for the synthetic images
    pixels         [784] uint8 pixels (row-major 28x28); the float input is
                   pixels / 255 in float32
    input          [784] int8, the quantized input (NCHW)
    output         [10] int8, TFLM's output
    float_logits   [10] PyTorch's float32 logits
    intermediates  [[int8...]] TFLM's output of every layer, NCHW, one list
                   per layer (the last equals "output"); only for the first
                   INTERMEDIATE_IMAGES real images and the synthetic ones,
                   else absent (to keep the files small)

float32 values are written as Python floats converted exactly from float32
(repr of the double), so parsing as f64 then casting to f32 is exact.

Graph nets. residual_cat is not a chain: its PyTorch module (ResidualCat,
state_dict keys `net.<path in the DSL>`, e.g. `net.2.conv1.weight`,
`net.4.a.weight`) and its TensorFlow rebuild (graph_plan: named steps that
read named tensors) are written by hand, and its TFLite ops are found by
what they read rather than by position (graph_layers_from_tflite). In the
DSL of cnn_net!:

    [1, 28, 28] => conv(1, 8, 3, stride = 2, pad = 1) relu                     # PAD + CONV_2D, 8x14x14
        add { conv1: conv(8, 8, 3, pad = 1) | identity } relu                   # CONV_2D; ADD (relu fused)
        cat { a: conv(8, 8, 3, stride = 2, pad = 1) relu                        # PAD + CONV_2D, 8x7x7
            | b: conv(8, 4, 1, stride = 2) relu }                               # CONV_2D 4x7x7; CONCATENATION
        add { global_avgpool | global_maxpool } flatten linear(12, 10)          # MEAN, REDUCE_MAX; ADD; FULLY_CONNECTED

The converter gives the residual ADD inputs of different quantizations (a
conv output and a relu output), ties the CONCATENATION's inputs and output
to one quantization (TFLM's int8 kernel requires it: a copy), keeps
REDUCE_MAX's (required too), and gives MEAN its own output scale. Its
"layers" are the ops in execution order, each a layer as above plus

    name           string  the op's output tensor, read by later ops
    inputs         [str]   the tensors it reads ("input" is the image), in
                           TFLite's operand order (ADD's input1, input2)

with `modules` the DSL paths of the layers it computes (strings), and by op:

    conv, linear   as above (one input: in_shape, input_quant)
    add            in_shapes, input_quants (one per input), activation,
                   act_min, act_max, and TFLM's CalculateOpDataAdd:
                   left_shift (20), input1_offset, input2_offset (-zero
                   points), output_offset, input{1,2}_multiplier/_shift
                   (scale_i / (2 max(scale1, scale2))), output_multiplier,
                   output_shift (2 max(scale1, scale2) / (2^20 out_scale)),
                   all QuantizeMultiplier of doubles of the float32 scales
    cat            in_shapes, input_quants, axis (0: channels of CHW),
                   equal_quant (true: TFLM's int8 CONCATENATION needs it)
    global_avgpool in_shape [C, H, W], out_shape [C, 1, 1], axes_nhwc
                   [1, 2], keep_dims, multiplier, shift (QuantizeMultiplier
                   of in_scale / out_scale, TFLM's PrepareMeanOrSumHelper),
                   count (H * W), mean_multiplier, mean_shift (the same with
                   1 / count folded in as QuantizedMeanOrSum does when it
                   runs: k = min(floor(log2 count), 32, 31 + shift),
                   (multiplier << k) // count, shift - k)
    global_maxpool in_shape, out_shape, axes_nhwc, keep_dims (no parameters:
                   TFLM's int8 REDUCE_MAX needs equal quantizations)

Its images keep "intermediates" (one list per op, in op order) for every
image, not only the first INTERMEDIATE_IMAGES.
"""

import argparse
import gzip
import json
import math
import os
import sys
import zlib

import numpy as np
import torch
# torch.optim imports torch._dynamo, which loads triton's LLVM; loaded after
# TensorFlow's, LLVM aborts ("Option ... registered more than once"). Loading
# it first works.
import torch._dynamo  # noqa: F401
import torch.nn as nn

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf  # noqa: E402
from tflite_micro.python.tflite_micro import runtime as tflm  # noqa: E402
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "models", "data", "fashion-mnist-sample")
OUT_DIR = os.path.join(ROOT, "tests", "fixtures", "int8")

TRAIN_STEPS = 400
BATCH = 64
CALIBRATION_IMAGES = 200
TEST_IMAGES = 16
INTERMEDIATE_IMAGES = 4
ACCURACY_IMAGES = 1000


# ---------------------------------------------------------------------------
# Nets
# ---------------------------------------------------------------------------

class Net(nn.Module):
    def __init__(self, layers):
        super().__init__()
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


def lenet(act, pool):
    return [nn.Conv2d(1, 6, 5, padding=2), act(), pool(2), nn.Conv2d(6, 16, 5), act(), pool(2),
            nn.Flatten(), nn.Linear(400, 120), act(), nn.Linear(120, 84), act(), nn.Linear(84, 10)]


NETS = [
    dict(name="lenet_sigmoid",
         net="[1, 28, 28] => conv(1, 6, 5, pad = 2) sigmoid avgpool(2) conv(6, 16, 5) sigmoid avgpool(2) "
             "flatten linear(400, 120) sigmoid linear(120, 84) sigmoid linear(84, 10)",
         layers=lambda: lenet(nn.Sigmoid, nn.AvgPool2d)),
    dict(name="lenet_relu",
         net="[1, 28, 28] => conv(1, 6, 5, pad = 2) relu maxpool(2) conv(6, 16, 5) relu maxpool(2) "
             "flatten linear(400, 120) relu linear(120, 84) relu linear(84, 10)",
         layers=lambda: lenet(nn.ReLU, nn.MaxPool2d)),
    # Strided, padded convs whose padding TFLite cannot express as SAME
    # (SAME would pad bottom/right only), a relu6 clamp, and the converter's
    # per-tensor quantization of dense weights (TFLite's legacy
    # FULLY_CONNECTED path, whose multiplier is prepared differently).
    dict(name="strided", per_tensor_dense=True,
         net="[1, 28, 28] => conv(1, 8, 3, stride = 2, pad = 1) relu conv(8, 16, 3, stride = 2, pad = 1) relu6 "
             "flatten linear(784, 10)",
         layers=lambda: [nn.Conv2d(1, 8, 3, stride=2, padding=1), nn.ReLU(),
                         nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU6(),
                         nn.Flatten(), nn.Linear(784, 10)]),
    dict(name="one_by_one",
         net="[1, 28, 28] => conv(1, 8, 3) relu conv(8, 4, 1) tanh maxpool(2) flatten linear(676, 10)",
         layers=lambda: [nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 1), nn.Tanh(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(676, 10)]),
    # The model of the side-by-side with MicroFlow (tools/microflow.sh):
    # MicroFlow has neither max pooling nor a sigmoid, and its
    # FULLY_CONNECTED takes per-tensor weights only (per-channel ones are a
    # type error in its generated code: "expected `1`, found `120`"), so the
    # dense layers are per tensor; its .tflite is committed too
    # (--keep-tflite tests/fixtures/int8).
    dict(name="lenet_relu_avg", per_tensor_dense=True,
         net="[1, 28, 28] => conv(1, 6, 5, pad = 2) relu avgpool(2) conv(6, 16, 5) relu avgpool(2) "
             "flatten linear(400, 120) relu linear(120, 84) relu linear(84, 10)",
         layers=lambda: lenet(nn.ReLU, nn.AvgPool2d)),
    # A graph (see graph_plan): a residual ADD of branches with different
    # quantizations and a fused relu, a channel CONCATENATION, MEAN and
    # REDUCE_MAX over H and W, and an ADD of the two pools.
    dict(name="residual_cat",
         net="[1, 28, 28] => conv(1, 8, 3, stride = 2, pad = 1) relu "
             "add { conv1: conv(8, 8, 3, pad = 1) | identity } relu "
             "cat { a: conv(8, 8, 3, stride = 2, pad = 1) relu | b: conv(8, 4, 1, stride = 2) relu } "
             "add { global_avgpool | global_maxpool } flatten linear(12, 10)",
         module=lambda: ResidualCat(), intermediate_images=TEST_IMAGES),
]


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------

def read_idx(name):
    with gzip.open(os.path.join(DATA, name), "rb") as f:
        raw = f.read()
    magic = int.from_bytes(raw[0:4], "big")
    if magic == 0x00000803:
        n, h, w = (int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(3))
        return np.frombuffer(raw, np.uint8, offset=16).reshape(n, h, w)
    if magic == 0x00000801:
        n = int.from_bytes(raw[4:8], "big")
        return np.frombuffer(raw, np.uint8, offset=8).reshape(n)
    raise ValueError(f"{name}: bad magic {magic:#x}")


def to_float(pixels):
    """uint8 pixels [n, 28, 28] -> float32 NCHW [n, 1, 28, 28], pixels / 255 in float32."""
    return (pixels.astype(np.float32) / np.float32(255.0))[:, None, :, :]


# ---------------------------------------------------------------------------
# TFLite's arithmetic, for the values we record (the Rust side derives them
# again and compares)
# ---------------------------------------------------------------------------

def round_half_away(x):
    """C's round(): half away from zero (numpy's round is half to even)."""
    return math.copysign(math.floor(abs(x) + 0.5), x)


def quantize_multiplier(real):
    """TFLite's QuantizeMultiplier (double rounding build): (multiplier, shift)."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = int(round_half_away(q * (1 << 31)))
    assert q_fixed <= (1 << 31)
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift, q_fixed = 0, 0
    return q_fixed, shift


def f32(x):
    return np.float32(x)


def quantize_value(scale, zero_point, value):
    """kernel_util's Quantize(): zero_point + int(roundf(value / scale)) in float32."""
    return zero_point + int(round_half_away(float(f32(value) / f32(scale))))


def activation_range(act, scale, zero_point):
    """CalculateActivationRangeQuantized for int8."""
    lo, hi = -128, 127
    if act == "relu":
        lo = max(lo, quantize_value(scale, zero_point, 0.0))
    elif act == "relu6":
        lo = max(lo, quantize_value(scale, zero_point, 0.0))
        hi = min(hi, quantize_value(scale, zero_point, 6.0))
    elif act != "none":
        raise ValueError(act)
    return lo, hi


def transcendental_params(in_scale):
    """TFLM's LOGISTIC/TANH int8 preparation (4 integer bits of input)."""
    real = float(f32(in_scale)) * float(1 << (31 - 4))
    q, shift = math.frexp(real)
    multiplier = int(round_half_away(q * (1 << 31)))
    radius = math.floor(1.0 * ((1 << 4) - 1) * (1 << (31 - 4)) / (1 << shift))
    return multiplier, shift, radius


def quantize_input(x, scale, zero_point):
    """TFLite's QUANTIZE op on float32 input: clamp(round(x / scale) + zp)."""
    q = (x.astype(np.float32) / np.float32(scale)).astype(np.float32)
    q = np.sign(q) * np.floor(np.abs(q) + np.float32(0.5))
    return np.clip(q.astype(np.int64) + zero_point, -128, 127).astype(np.int8)


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------

def train(spec, train_x, train_y):
    seed = zlib.crc32(spec["name"].encode())
    torch.manual_seed(seed)
    model = spec["module"]() if "module" in spec else Net(spec["layers"]())
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(seed)
    x_all = torch.from_numpy(train_x)
    y_all = torch.from_numpy(train_y.astype(np.int64))
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    step = 0
    while step < TRAIN_STEPS:
        perm = torch.randperm(len(x_all), generator=gen)
        for i in range(0, len(perm) - BATCH + 1, BATCH):
            idx = perm[i:i + BATCH]
            opt.zero_grad()
            loss = loss_fn(model(x_all[idx]), y_all[idx])
            loss.backward()
            opt.step()
            step += 1
            if step == TRAIN_STEPS:
                break
    model.eval()
    return model, loss.item()


# ---------------------------------------------------------------------------
# The same net in TensorFlow (NHWC), and the plan of the int8 ops we expect
# ---------------------------------------------------------------------------

ACTS = {nn.ReLU: "relu", nn.ReLU6: "relu6"}


def tf_plan(model):
    """Walks the nn.Sequential and returns (plan, steps): plan is the list of
    expected int8 layers (op kind, module indices, attributes), steps the
    TensorFlow computation as closures over constants."""
    mods = list(model.net)
    plan, steps = [], []
    shape = (1, 28, 28)  # C, H, W
    i = 0
    while i < len(mods):
        m = mods[i]
        act = ACTS.get(type(mods[i + 1])) if i + 1 < len(mods) else None
        if isinstance(m, nn.Conv2d):
            assert m.groups == 1 and m.dilation == (1, 1)
            w = m.weight.detach().numpy().transpose(2, 3, 1, 0).copy()  # OIHW -> HWIO
            b = m.bias.detach().numpy().copy()
            (kh, kw), (sh, sw), (ph, pw) = m.kernel_size, m.stride, m.padding
            c, h, wd = shape
            oh, ow = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
            same = (sh, sw) == (1, 1) and kh % 2 == 1 and kw % 2 == 1 and (ph, pw) == (kh // 2, kw // 2)
            if (ph, pw) == (0, 0):
                padding, explicit = "VALID", None
            elif same:
                padding, explicit = "SAME", None
            else:
                padding, explicit = "VALID", [[0, 0], [ph, ph], [pw, pw], [0, 0]]

            def step(x, w=tf.constant(w), b=tf.constant(b), s=(sh, sw), padding=padding, explicit=explicit,
                     act=act):
                if explicit is not None:
                    x = tf.pad(x, explicit)
                y = tf.nn.bias_add(tf.nn.conv2d(x, w, strides=[1, s[0], s[1], 1], padding=padding), b)
                return {"relu": tf.nn.relu, "relu6": tf.nn.relu6, None: lambda v: v}[act](y)
            steps.append(step)
            plan.append(dict(op="conv", modules=[i] + ([i + 1] if act else []), key=f"net.{i}",
                             in_shape=list(shape), out_shape=[m.out_channels, oh, ow],
                             kernel=[kh, kw], stride=[sh, sw], pad=[ph, pw], groups=1,
                             activation=act or "none", explicit_pad=explicit is not None))
            shape = (m.out_channels, oh, ow)
        elif isinstance(m, nn.Linear):
            w = m.weight.detach().numpy()
            b = m.bias.detach().numpy().copy()
            if len(plan) and plan[-1]["op"] == "flatten" and len(plan[-1]["in_shape"]) == 3:
                c, h, wd = plan[-1]["in_shape"]
                # y = W x_chw = W' x_hwc with W'[o, (h, w, c)] = W[o, (c, h, w)].
                w_hwc = w.reshape(m.out_features, c, h, wd).transpose(0, 2, 3, 1).reshape(m.out_features, -1)
            else:
                w_hwc = w
            wt = np.ascontiguousarray(w_hwc.T)

            def step(x, w=tf.constant(wt), b=tf.constant(b), act=act):
                y = tf.matmul(x, w) + b
                return {"relu": tf.nn.relu, "relu6": tf.nn.relu6, None: lambda v: v}[act](y)
            steps.append(step)
            plan.append(dict(op="linear", modules=[i] + ([i + 1] if act else []), key=f"net.{i}",
                             in_shape=[m.in_features], out_shape=[m.out_features],
                             in_features=m.in_features, out_features=m.out_features,
                             activation=act or "none"))
            shape = (m.out_features,)
        elif isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
            k, s, p = m.kernel_size, m.stride, m.padding
            k = (k, k) if isinstance(k, int) else tuple(k)
            s = (s, s) if isinstance(s, int) else tuple(s)
            assert p == 0
            c, h, wd = shape
            oh, ow = (h - k[0]) // s[0] + 1, (wd - k[1]) // s[1] + 1
            kind = "maxpool" if isinstance(m, nn.MaxPool2d) else "avgpool"
            fn = tf.nn.max_pool2d if kind == "maxpool" else tf.nn.avg_pool2d
            steps.append(lambda x, fn=fn, k=k, s=s: fn(x, ksize=list(k), strides=list(s), padding="VALID"))
            plan.append(dict(op=kind, modules=[i], in_shape=list(shape), out_shape=[c, oh, ow],
                             kernel=list(k), stride=list(s), pad=[0, 0], activation="none"))
            shape = (c, oh, ow)
            act = None
        elif isinstance(m, nn.Flatten):
            steps.append(lambda x: tf.reshape(x, [1, -1]))
            plan.append(dict(op="flatten", modules=[i], in_shape=list(shape), out_shape=[int(np.prod(shape))]))
            shape = (int(np.prod(shape)),)
            act = None
        elif isinstance(m, (nn.Sigmoid, nn.Tanh)):
            kind = "sigmoid" if isinstance(m, nn.Sigmoid) else "tanh"
            steps.append(tf.sigmoid if kind == "sigmoid" else tf.tanh)
            plan.append(dict(op=kind, modules=[i], in_shape=list(shape), out_shape=list(shape)))
            act = None
        else:
            raise ValueError(f"module {i}: {m} cannot be placed (a relu must follow a conv or linear)")
        i += 2 if act else 1
    return plan, steps


class TfNet(tf.Module):
    def __init__(self, steps):
        super().__init__()
        self.steps = steps

    @tf.function(input_signature=[tf.TensorSpec([1, 28, 28, 1], tf.float32)])
    def __call__(self, x):
        for step in self.steps:
            x = step(x)
        return x


def convert(tf_net, calibration, per_tensor_dense=False):
    fn = tf_net.__call__.get_concrete_function()
    conv = tf.lite.TFLiteConverter.from_concrete_functions([fn], tf_net)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if per_tensor_dense:
        conv._experimental_disable_per_channel_quantization_for_dense_layers = True

    def representative():
        for x in calibration:
            yield [x[None]]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return conv.convert()


# ---------------------------------------------------------------------------
# Reading the .tflite back into our layers
# ---------------------------------------------------------------------------

OP_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
ACT_NAMES = {schema.ActivationFunctionType.NONE: "none", schema.ActivationFunctionType.RELU: "relu",
             schema.ActivationFunctionType.RELU6: "relu6"}
NP_TYPES = {schema.TensorType.INT8: np.int8, schema.TensorType.INT32: np.int32,
            schema.TensorType.FLOAT32: np.float32, schema.TensorType.INT64: np.int64}


def quant_of(t):
    q = t.quantization
    scales = [float(f32(s)) for s in q.scale]
    zps = [int(z) for z in q.zeroPoint]
    return scales, zps, int(q.quantizedDimension)


def act_quant(t):
    scales, zps, _ = quant_of(t)
    assert len(scales) == 1 and len(zps) == 1, f"{t.name}: not per-tensor"
    return {"scale": scales[0], "zero_point": zps[0]}


class Model:
    def __init__(self, flatbuffer):
        self.m = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(flatbuffer, 0))
        assert len(self.m.subgraphs) == 1
        self.g = self.m.subgraphs[0]

    def tensor(self, i):
        return self.g.tensors[i]

    def const(self, i):
        t = self.tensor(i)
        data = self.m.buffers[t.buffer].data
        assert data is not None, f"tensor {i} ({t.name}) is not constant"
        return np.frombuffer(np.asarray(data, np.uint8).tobytes(), NP_TYPES[t.type]).reshape(list(t.shape))

    def ops(self):
        for op in self.g.operators:
            code = self.m.operatorCodes[op.opcodeIndex]
            yield OP_NAMES[max(code.builtinCode, code.deprecatedBuiltinCode)], op


def conv_fields(model, op, p, in_q, out_q):
    """The JSON fields of a conv layer: CONV_2D `op`, planned as `p`."""
    o = op.builtinOptions
    want_pad = schema.Padding.SAME if (p["pad"] != [0, 0] and not p["explicit_pad"]) else schema.Padding.VALID
    assert o.padding == want_pad and [o.strideH, o.strideW] == p["stride"]
    assert (o.dilationHFactor, o.dilationWFactor) == (1, 1)
    act = ACT_NAMES[o.fusedActivationFunction]
    assert act == p["activation"], (act, p["activation"])
    w = model.const(op.inputs[1])  # OHWI
    b = model.const(op.inputs[2])
    w_scales, w_zps, qdim = quant_of(model.tensor(op.inputs[1]))
    assert qdim == 0 and all(z == 0 for z in w_zps)
    b_scales, b_zps, _ = quant_of(model.tensor(op.inputs[2]))
    assert all(z == 0 for z in b_zps)
    lo, hi = activation_range(act, out_q["scale"], out_q["zero_point"])
    mults = [quantize_multiplier(float(f32(in_q["scale"])) * float(f32(ws)) / float(f32(out_q["scale"])))
             for ws in (w_scales if len(w_scales) > 1 else w_scales * w.shape[0])]
    return dict(kernel=p["kernel"], stride=p["stride"], pad=p["pad"], groups=1, activation=act,
                act_min=lo, act_max=hi,
                weight={"key": p["key"] + ".weight", "shape": [w.shape[0], w.shape[3], w.shape[1], w.shape[2]],
                        "data": w.transpose(0, 3, 1, 2).reshape(-1).tolist(), "scales": w_scales,
                        "zero_points": w_zps, "per_channel": len(w_scales) > 1},
                bias={"key": p["key"] + ".bias", "shape": [int(b.shape[0])], "data": b.tolist(),
                      "scales": b_scales},
                multipliers=[m for m, _ in mults], shifts=[s for _, s in mults])


def linear_fields(model, op, p, in_q, out_q, prev):
    """The JSON fields of a linear layer: FULLY_CONNECTED `op`, planned as `p`,
    after the planned layer `prev` (or None)."""
    o = op.builtinOptions
    act = ACT_NAMES[o.fusedActivationFunction]
    assert act == p["activation"] and o.weightsFormat == 0
    w = model.const(op.inputs[1])  # [out, in], in in the order of the TFLite input
    b = model.const(op.inputs[2])
    w_scales, w_zps, qdim = quant_of(model.tensor(op.inputs[1]))
    assert qdim == 0 and all(z == 0 for z in w_zps)
    b_scales, _, _ = quant_of(model.tensor(op.inputs[2]))
    if prev is not None and prev["op"] == "flatten" and len(prev["in_shape"]) == 3:
        c, h, wd = prev["in_shape"]
        w = w.reshape(w.shape[0], h, wd, c).transpose(0, 3, 1, 2).reshape(w.shape[0], -1)
    per_channel = len(w_scales) > 1
    if per_channel:
        mults = [quantize_multiplier(float(f32(in_q["scale"])) * float(f32(ws)) / float(f32(out_q["scale"])))
                 for ws in w_scales]
    else:
        # GetQuantizedConvolutionMultipler: the product in float32.
        prod = float(f32(in_q["scale"]) * f32(w_scales[0]))
        mults = [quantize_multiplier(prod / float(f32(out_q["scale"])))]
    lo, hi = activation_range(act, out_q["scale"], out_q["zero_point"])
    return dict(in_features=p["in_features"], out_features=p["out_features"], activation=act,
                act_min=lo, act_max=hi,
                weight={"key": p["key"] + ".weight", "shape": list(w.shape),
                        "data": w.reshape(-1).tolist(), "scales": w_scales, "zero_points": w_zps,
                        "per_channel": per_channel},
                bias={"key": p["key"] + ".bias", "shape": [int(b.shape[0])], "data": b.tolist(),
                      "scales": b_scales},
                per_channel=per_channel,
                multipliers=[m for m, _ in mults], shifts=[s for _, s in mults])


def layers_from_tflite(model, plan):
    """Matches the TFLite ops against the plan; returns (layers, output tensor
    index of each layer, TFLite input tensor, TFLite output tensor)."""
    ops = list(model.ops())
    layers, outs = [], []
    k = 0
    for pi, p in enumerate(plan):
        layer = {key: p[key] for key in ("op", "modules")}
        names = []
        name, op = ops[k]
        pad = None
        if p["op"] == "conv" and p["explicit_pad"]:
            assert name == "PAD", f"expected PAD before the conv of module {p['modules'][0]}, got {name}"
            pad = model.const(op.inputs[1]).tolist()
            assert pad == [[0, 0], [p["pad"][0]] * 2, [p["pad"][1]] * 2, [0, 0]], pad
            assert act_quant(model.tensor(op.inputs[0])) == act_quant(model.tensor(op.outputs[0])), \
                "PAD changed the quantization"
            pad_input = op.inputs[0]
            names.append(name)
            k += 1
            name, op = ops[k]
        expected = {"conv": "CONV_2D", "linear": "FULLY_CONNECTED", "maxpool": "MAX_POOL_2D",
                    "avgpool": "AVERAGE_POOL_2D", "sigmoid": "LOGISTIC", "tanh": "TANH",
                    "flatten": "RESHAPE"}[p["op"]]
        assert name == expected, f"modules {p['modules']}: expected {expected}, got {name}"
        names.append(name)
        k += 1
        x_t = model.tensor(pad_input if pad is not None else op.inputs[0])
        y_t = model.tensor(op.outputs[0])
        layer["tflite_ops"] = names
        layer["in_shape"] = p["in_shape"]
        layer["out_shape"] = p["out_shape"]
        layer["input_quant"] = act_quant(x_t)
        layer["output_quant"] = act_quant(y_t)
        in_q, out_q = layer["input_quant"], layer["output_quant"]
        if p["op"] == "conv":
            layer.update(conv_fields(model, op, p, in_q, out_q))
        elif p["op"] == "linear":
            layer.update(linear_fields(model, op, p, in_q, out_q, plan[pi - 1] if pi > 0 else None))
        elif p["op"] in ("maxpool", "avgpool"):
            o = op.builtinOptions
            assert o.padding == schema.Padding.VALID
            assert [o.filterHeight, o.filterWidth] == p["kernel"] and [o.strideH, o.strideW] == p["stride"]
            act = ACT_NAMES[o.fusedActivationFunction]
            assert in_q == out_q, f"{p['op']} requantizes: {in_q} -> {out_q}"
            lo, hi = activation_range(act, out_q["scale"], out_q["zero_point"])
            layer.update(kernel=p["kernel"], stride=p["stride"], pad=p["pad"], activation=act, act_min=lo,
                         act_max=hi)
        elif p["op"] in ("sigmoid", "tanh"):
            want = {"sigmoid": (1.0 / 256, -128), "tanh": (1.0 / 128, 0)}[p["op"]]
            assert (out_q["scale"], out_q["zero_point"]) == want, (p["op"], out_q)
            mult, shift, radius = transcendental_params(in_q["scale"])
            layer.update(input_multiplier=mult, input_shift=shift, input_range_radius=radius)
        elif p["op"] == "flatten":
            assert in_q == out_q
        layers.append(layer)
        outs.append(op.outputs[0])
    assert k == len(ops), f"unexpected trailing ops {[n for n, _ in ops[k:]]}"
    return layers, outs, model.g.inputs[0], model.g.outputs[0]


# ---------------------------------------------------------------------------
# A graph net (residual_cat): branches that add and concatenate, global pools
# ---------------------------------------------------------------------------

class Branches(nn.Module):
    """The labelled layers of an `add { .. }` or `cat { .. }`, as attributes
    (in cnn_net! a branch adds no key level)."""

    def __init__(self, **layers):
        super().__init__()
        for key, m in layers.items():
            self.add_module(key, m)


class ResidualCat(nn.Module):
    """residual_cat in PyTorch; its state_dict keys are `net.<DSL path>`, as the
    chains' are `net.<index>`."""

    def __init__(self):
        super().__init__()
        self.net = nn.Module()
        self.net.add_module("0", nn.Conv2d(1, 8, 3, stride=2, padding=1))
        self.net.add_module("2", Branches(conv1=nn.Conv2d(8, 8, 3, padding=1)))
        self.net.add_module("4", Branches(a=nn.Conv2d(8, 8, 3, stride=2, padding=1),
                                          b=nn.Conv2d(8, 4, 1, stride=2)))
        self.net.add_module("7", nn.Linear(12, 10))

    def forward(self, x):
        m = dict(self.net.named_children())
        stem = torch.relu(m["0"](x))
        res = torch.relu(m["2"].conv1(stem) + stem)
        cat = torch.cat((torch.relu(m["4"].a(res)), torch.relu(m["4"].b(res))), dim=1)
        pooled = nn.functional.adaptive_avg_pool2d(cat, 1) + nn.functional.adaptive_max_pool2d(cat, 1)
        return m["7"](torch.flatten(pooled, 1))


def conv_step(m, shape, act):
    """A PyTorch conv as a TensorFlow NHWC step (as tf_plan does it) and its
    plan attributes; `shape` is its input's (C, H, W)."""
    assert m.groups == 1 and m.dilation == (1, 1)
    w = tf.constant(m.weight.detach().numpy().transpose(2, 3, 1, 0).copy())  # OIHW -> HWIO
    b = tf.constant(m.bias.detach().numpy().copy())
    (kh, kw), (sh, sw), (ph, pw) = m.kernel_size, m.stride, m.padding
    c, h, wd = shape
    oh, ow = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    same = (sh, sw) == (1, 1) and kh % 2 == 1 and kw % 2 == 1 and (ph, pw) == (kh // 2, kw // 2)
    if (ph, pw) == (0, 0):
        padding, explicit = "VALID", None
    elif same:
        padding, explicit = "SAME", None
    else:
        padding, explicit = "VALID", [[0, 0], [ph, ph], [pw, pw], [0, 0]]

    def step(x):
        if explicit is not None:
            x = tf.pad(x, explicit)
        y = tf.nn.bias_add(tf.nn.conv2d(x, w, strides=[1, sh, sw, 1], padding=padding), b)
        return tf.nn.relu(y) if act == "relu" else y
    attrs = dict(in_shape=list(shape), out_shape=[m.out_channels, oh, ow], kernel=[kh, kw], stride=[sh, sw],
                 pad=[ph, pw], groups=1, activation=act, explicit_pad=explicit is not None)
    return step, attrs


class TfGraph(tf.Module):
    """A graph of steps `(name, input names, fn)` in execution order over
    named tensors ("input" is the image); returns the last step's output."""

    def __init__(self, steps):
        super().__init__()
        self.steps = steps

    @tf.function(input_signature=[tf.TensorSpec([1, 28, 28, 1], tf.float32)])
    def __call__(self, x):
        t = {"input": x}
        for name, inputs, fn in self.steps:
            t[name] = fn(*[t[i] for i in inputs])
        return t[self.steps[-1][0]]


def graph_plan(model):
    """residual_cat's expected int8 ops in execution order, each reading named
    tensors ("input" is the image), and the same function in TensorFlow:
    returns (plan, TfGraph)."""
    m = dict(model.net.named_children())
    plan, steps = [], []

    def add(name, inputs, modules, fn, **attrs):
        plan.append(dict(name=name, inputs=inputs, modules=modules, **attrs))
        steps.append((name, inputs, fn))

    def conv(name, inputs, modules, mod, key, shape, act):
        step, attrs = conv_step(mod, shape, act)
        add(name, inputs, modules, step, op="conv", key=key, **attrs)

    conv("stem", ["input"], ["0", "1"], m["0"], "net.0", (1, 28, 28), "relu")
    conv("conv1", ["stem"], ["2.conv1"], m["2"].conv1, "net.2.conv1", (8, 14, 14), "none")
    add("res", ["conv1", "stem"], ["2", "3"], lambda a, b: tf.nn.relu(a + b), op="add",
        in_shapes=[[8, 14, 14]] * 2, out_shape=[8, 14, 14], activation="relu")
    conv("a", ["res"], ["4.a", "4.a:relu"], m["4"].a, "net.4.a", (8, 14, 14), "relu")
    conv("b", ["res"], ["4.b", "4.b:relu"], m["4"].b, "net.4.b", (8, 14, 14), "relu")
    add("cat", ["a", "b"], ["4"], lambda a, b: tf.concat([a, b], axis=3), op="cat",
        in_shapes=[[8, 7, 7], [4, 7, 7]], out_shape=[12, 7, 7], axis=0)
    add("gap", ["cat"], ["5.global_avgpool"], lambda x: tf.reduce_mean(x, axis=[1, 2]), op="global_avgpool",
        in_shape=[12, 7, 7], out_shape=[12, 1, 1])
    add("gmp", ["cat"], ["5.global_maxpool"], lambda x: tf.reduce_max(x, axis=[1, 2]), op="global_maxpool",
        in_shape=[12, 7, 7], out_shape=[12, 1, 1])
    add("pooled", ["gap", "gmp"], ["5"], lambda a, b: a + b, op="add",
        in_shapes=[[12, 1, 1]] * 2, out_shape=[12, 1, 1], activation="none")
    fc = m["7"]
    wt = tf.constant(np.ascontiguousarray(fc.weight.detach().numpy().T))
    fb = tf.constant(fc.bias.detach().numpy().copy())
    # [C, 1, 1] flattens to the same order in CHW and HWC: no permutation, and
    # TensorFlow's [1, C] needs no reshape (PyTorch's flatten, module 6, is free).
    add("fc", ["pooled"], ["6", "7"], lambda x: tf.matmul(x, wt) + fb, op="linear", key="net.7",
        in_shape=[12], out_shape=[10], in_features=12, out_features=10, activation="none")
    return plan, TfGraph(steps)


def add_params(q1, q2, qo, act):
    """TFLM's ADD preparation for int8 (CalculateOpDataAdd): input offsets,
    left shift 20, and the three multipliers from doubles of the float32
    scales; every multiplier below one (QuantizeMultiplierSmallerThanOneExp)."""
    s1, s2, so = float(f32(q1["scale"])), float(f32(q2["scale"])), float(f32(qo["scale"]))
    left_shift = 20
    twice_max_input_scale = 2 * max(s1, s2)
    reals = [s1 / twice_max_input_scale, s2 / twice_max_input_scale,
             twice_max_input_scale / ((1 << left_shift) * so)]
    (m1, sh1), (m2, sh2), (mo, sho) = [quantize_multiplier(r) for r in reals]
    assert all(0 < r < 1 for r in reals) and max(sh1, sh2, sho) <= 0, reals
    lo, hi = activation_range(act, qo["scale"], qo["zero_point"])
    return dict(activation=act, act_min=lo, act_max=hi, left_shift=left_shift,
                input1_offset=-q1["zero_point"], input2_offset=-q2["zero_point"], output_offset=qo["zero_point"],
                input1_multiplier=m1, input1_shift=sh1, input2_multiplier=m2, input2_shift=sh2,
                output_multiplier=mo, output_shift=sho)


def mean_params(in_q, out_q, count):
    """TFLM's int8 MEAN (reduce_common.cc, QuantizedMeanOrSum): the
    multiplier of in_scale / out_scale (QuantizeMultiplier of doubles), then,
    when it runs, 1 / count folded in: shift = min(floor(log2(count)), 32,
    31 + shift0), multiplier = (multiplier0 << shift) // count (int64),
    exponent shift0 - shift."""
    m0, s0 = quantize_multiplier(float(f32(in_q["scale"])) / float(f32(out_q["scale"])))
    shift = min(count.bit_length() - 1, 32, 31 + s0)
    m = (m0 << shift) // count
    assert 0 < m < (1 << 31)
    return dict(multiplier=m0, shift=s0, count=count, mean_multiplier=m, mean_shift=s0 - shift)


def graph_layers_from_tflite(model, plan):
    """Finds each planned op of a graph net in the TFLite model by what it
    reads (a PAD folded into the conv it feeds); returns (layers, output
    tensor of each layer, TFLite input tensor, TFLite output tensor). Every
    TFLite op must be accounted for (no requantizing QUANTIZE in between)."""
    ops = list(model.ops())
    used = set()
    tensor = {"input": model.g.inputs[0]}
    name_of = {model.g.inputs[0]: "input"}

    def find(kind, pred):
        hits = [k for k, (n, op) in enumerate(ops) if k not in used and n == kind and pred(op)]
        assert len(hits) == 1, f"{len(hits)} unused {kind} ops match; the model has {[n for n, _ in ops]}"
        used.add(hits[0])
        return ops[hits[0]][1]

    layers, outs = [], []
    for pi, p in enumerate(plan):
        want = [tensor[i] for i in p["inputs"]]
        names = []
        src = want[0]
        if p["op"] == "conv" and p["explicit_pad"]:
            pad_op = find("PAD", lambda op: op.inputs[0] == want[0])
            pad = model.const(pad_op.inputs[1]).tolist()
            assert pad == [[0, 0], [p["pad"][0]] * 2, [p["pad"][1]] * 2, [0, 0]], pad
            assert act_quant(model.tensor(pad_op.inputs[0])) == act_quant(model.tensor(pad_op.outputs[0])), \
                "PAD changed the quantization"
            names.append("PAD")
            src = pad_op.outputs[0]
        kind = {"conv": "CONV_2D", "linear": "FULLY_CONNECTED", "add": "ADD", "cat": "CONCATENATION",
                "global_avgpool": "MEAN", "global_maxpool": "REDUCE_MAX"}[p["op"]]
        if p["op"] == "add":
            op = find(kind, lambda op: sorted(op.inputs) == sorted(want))
        elif p["op"] == "cat":
            op = find(kind, lambda op: list(op.inputs) == want)
        else:
            op = find(kind, lambda op: op.inputs[0] == src)
        names.append(kind)
        layer = {"op": p["op"], "name": p["name"],
                 "inputs": [name_of[t] for t in op.inputs] if p["op"] in ("add", "cat") else p["inputs"],
                 "modules": p["modules"], "tflite_ops": names}
        out_q = act_quant(model.tensor(op.outputs[0]))
        if p["op"] in ("add", "cat"):
            # In TFLite's operand order (the kernel's input1 and input2).
            order = [p["inputs"].index(n) for n in layer["inputs"]]
            layer["in_shapes"] = [p["in_shapes"][i] for i in order]
            layer["out_shape"] = p["out_shape"]
            layer["input_quants"] = [act_quant(model.tensor(t)) for t in op.inputs]
            layer["output_quant"] = out_q
            o = op.builtinOptions
            act = ACT_NAMES[o.fusedActivationFunction]
            if p["op"] == "add":
                assert act == p["activation"], (act, p["activation"])
                q1, q2 = layer["input_quants"]
                layer.update(add_params(q1, q2, out_q, act))
            else:
                # TFLM's int8 CONCATENATION requires every input's scale and
                # zero point to equal the output's: the converter ties them.
                assert act == "none" and o.axis in (3, -1), (act, o.axis)
                equal = all(q == out_q for q in layer["input_quants"])
                assert equal, f"CONCATENATION requantizes: {layer['input_quants']} -> {out_q}"
                layer.update(axis=p["axis"], equal_quant=equal)
        else:
            in_q = act_quant(model.tensor(src))
            layer["in_shape"] = p["in_shape"]
            layer["out_shape"] = p["out_shape"]
            layer["input_quant"] = in_q
            layer["output_quant"] = out_q
            if p["op"] == "conv":
                layer.update(conv_fields(model, op, p, in_q, out_q))
            elif p["op"] == "linear":
                layer.update(linear_fields(model, op, p, in_q, out_q, None))
            else:
                axes = sorted(int(a) for a in model.const(op.inputs[1]).reshape(-1))
                assert axes == [1, 2], axes
                keep_dims = bool(op.builtinOptions.keepDims)
                c, h, wd = p["in_shape"]
                layer.update(axes_nhwc=axes, keep_dims=keep_dims)
                if p["op"] == "global_avgpool":
                    layer.update(mean_params(in_q, out_q, h * wd))
                else:
                    # TFLM's int8 REDUCE_MAX requires equal quantizations.
                    assert in_q == out_q, f"REDUCE_MAX requantizes: {in_q} -> {out_q}"
        layers.append(layer)
        outs.append(op.outputs[0])
        tensor[p["name"]] = op.outputs[0]
        name_of[op.outputs[0]] = p["name"]
    left = [ops[k][0] for k in range(len(ops)) if k not in used]
    assert not left, f"unexpected TFLite ops {left}"
    assert outs[-1] == model.g.outputs[0]
    return layers, outs, model.g.inputs[0], model.g.outputs[0]


def to_ours(arr, shape):
    """A TFLite activation (NHWC, batch 1) as a flat list in OUR layout."""
    a = np.asarray(arr).reshape(-1)
    if len(shape) == 3:
        c, h, w = shape
        a = a.reshape(h, w, c).transpose(2, 0, 1).reshape(-1)
    return a.astype(np.int64).tolist()


# ---------------------------------------------------------------------------
# One net
# ---------------------------------------------------------------------------

def float32_list(a):
    return [float(v) for v in np.asarray(a, np.float32).reshape(-1)]


def generate(spec, data, keep_tflite=None):
    train_x, train_y, test_pixels, test_y = data
    model, loss = train(spec, train_x, train_y)
    if "module" in spec:
        plan, tf_net = graph_plan(model)
    else:
        plan, steps = tf_plan(model)
        tf_net = TfNet(steps)

    rng = np.random.default_rng(zlib.crc32(spec["name"].encode()))
    calib = train_x[np.sort(rng.choice(len(train_x), CALIBRATION_IMAGES, replace=False))]
    calib_nhwc = calib.transpose(0, 2, 3, 1)

    # The TensorFlow rebuild must compute PyTorch's function.
    with torch.no_grad():
        ref = model(torch.from_numpy(calib[:8])).numpy()
    got = np.concatenate([tf_net(calib_nhwc[i:i + 1]).numpy() for i in range(8)])
    err = np.abs(got - ref).max()
    assert err < 1e-4, f"{spec['name']}: TensorFlow rebuild differs from PyTorch by {err}"

    flat = convert(tf_net, calib_nhwc, spec.get("per_tensor_dense", False))
    if keep_tflite:
        os.makedirs(keep_tflite, exist_ok=True)
        with open(os.path.join(keep_tflite, spec["name"] + ".tflite"), "wb") as f:
            f.write(flat)
    tfl = Model(flat)
    layers, outs, in_idx, out_idx = (graph_layers_from_tflite if "module" in spec else layers_from_tflite)(tfl, plan)
    in_q = act_quant(tfl.tensor(in_idx))
    out_q = act_quant(tfl.tensor(out_idx))
    assert outs[-1] == out_idx

    micro = tflm.Interpreter.from_bytes(flat, intrepreter_config=tflm.InterpreterConfig.kPreserveAllTensors)
    desktops = {kind: tf.lite.Interpreter(model_content=flat, experimental_op_resolver_type=resolver)
                for kind, resolver in (("reference_kernels", tf.lite.experimental.OpResolverType.BUILTIN_REF),
                                       ("default_kernels", tf.lite.experimental.OpResolverType.AUTO))}
    for d in desktops.values():
        d.allocate_tensors()

    def run(pixels, with_intermediates):
        x = quantize_input(to_float(pixels[None])[0], in_q["scale"], in_q["zero_point"])  # [1, 28, 28]
        nhwc = x.reshape(1, 28, 28, 1)
        micro.set_input(nhwc, 0)
        micro.invoke()
        out = np.asarray(micro.get_output(0)).reshape(-1)
        inter = None
        if with_intermediates:
            # RESHAPE flattens NHWC (HWC order): permute as its 3-D input.
            inter = [to_ours(micro.GetTensor(t, 0)["tensor_data"],
                             l["in_shape"] if l["op"] == "flatten" else l["out_shape"])
                     for t, l in zip(outs, layers)]
            assert inter[-1] == out.astype(np.int64).tolist()
        d = {}
        for kind, it in desktops.items():
            it.set_tensor(it.get_input_details()[0]["index"], nhwc)
            it.invoke()
            d[kind] = it.get_tensor(it.get_output_details()[0]["index"]).reshape(-1)
        return x, out, inter, d

    sources = [(f"fashion-mnist test #{i}", int(test_y[i]), test_pixels[i]) for i in range(TEST_IMAGES)]
    sources += [("all-zero", None, np.zeros((28, 28), np.uint8)),
                ("all-255", None, np.full((28, 28), 255, np.uint8))]
    images = []
    desktop = {kind: {"outputs_differing": 0, "values_differing": 0} for kind in desktops}
    correct_f = correct_q = agree = 0
    for n, (source, label, pixels) in enumerate(sources):
        keep = n < spec.get("intermediate_images", INTERMEDIATE_IMAGES) or label is None
        x, out, inter, d = run(pixels, keep)
        with torch.no_grad():
            logits = model(torch.from_numpy(to_float(pixels[None]))).numpy()[0]
        for kind, dk in d.items():
            if not np.array_equal(dk, out):
                desktop[kind]["outputs_differing"] += 1
                desktop[kind]["values_differing"] += int((dk != out).sum())
        if label is not None:
            correct_f += int(np.argmax(logits) == label)
            correct_q += int(np.argmax(out) == label)
            agree += int(np.argmax(logits) == np.argmax(out))
        img = {"source": source, "label": label, "pixels": pixels.reshape(-1).astype(int).tolist(),
               "input": x.reshape(-1).astype(int).tolist(), "output": out.astype(int).tolist(),
               "float_logits": float32_list(logits)}
        if keep:
            img["intermediates"] = inter
        images.append(img)

    # Accuracy over a larger slice of the test sample, for information.
    with torch.no_grad():
        logits_all = model(torch.from_numpy(to_float(test_pixels[:ACCURACY_IMAGES]))).numpy()
    t_f = t_q = t_a = 0
    for i in range(ACCURACY_IMAGES):
        _, out, _, _ = run(test_pixels[i], False)
        pf, pq = int(np.argmax(logits_all[i])), int(np.argmax(out))
        t_f += int(pf == test_y[i])
        t_q += int(pq == test_y[i])
        t_a += int(pf == pq)

    fixture = {
        "name": spec["name"],
        "net": spec["net"],
        "generator": "tools/gen_int8_fixtures.py",
        "versions": versions(),
        "input_shape": [1, 28, 28],
        "classes": 10,
        "input_quant": in_q,
        "output_quant": out_q,
        "layers": layers,
        "images": images,
        "accuracy": {"images": TEST_IMAGES, "float": correct_f, "int8": correct_q, "agree": agree,
                     "test_set_size": ACCURACY_IMAGES, "test_float": t_f, "test_int8": t_q, "test_agree": t_a},
        "tflite_desktop": desktop,
    }
    summary = (f"{spec['name']}: train loss {loss:.3f}; accuracy float {t_f}/{ACCURACY_IMAGES}, "
               f"int8 {t_q}/{ACCURACY_IMAGES}, agree {t_a}; desktop TFLite differs on "
               + ", ".join(f"{v['outputs_differing']}/{len(sources)} outputs ({k})" for k, v in desktop.items())
               + "; weights "
               + ", ".join(f"{l['op']}:{'per-channel' if l['weight']['per_channel'] else 'per-tensor'}"
                           for l in layers if "weight" in l))
    return fixture, summary


# ---------------------------------------------------------------------------
# Every int8 input of LOGISTIC and TANH, for several input quantizations
# ---------------------------------------------------------------------------

ACTIVATION_RANGES = [(-8.0, 8.0), (-20.0, 4.0), (-2.5, 12.0), (-1.0, 1.0), (-0.05, 30.0), (-200.0, 100.0)]


class Elementwise(tf.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    @tf.function(input_signature=[tf.TensorSpec([1, 256], tf.float32)])
    def __call__(self, x):
        return self.fn(x)


def generate_activations():
    """tests/fixtures/int8/activations.json: single-op LOGISTIC / TANH models
    whose input quantization comes from calibrating on [lo, hi], run by TFLM
    on all 256 int8 inputs."""
    cases = []
    lines = []
    for op, fn in (("sigmoid", tf.sigmoid), ("tanh", tf.tanh)):
        for lo, hi in ACTIVATION_RANGES:
            net = Elementwise(fn)
            calib = [np.linspace(lo, hi, 256, dtype=np.float32)]
            flat = convert(net, calib)
            model = Model(flat)
            names = [n for n, _ in model.ops()]
            assert names == [{"sigmoid": "LOGISTIC", "tanh": "TANH"}[op]], names
            in_q = act_quant(model.tensor(model.g.inputs[0]))
            out_q = act_quant(model.tensor(model.g.outputs[0]))
            x = np.arange(-128, 128, dtype=np.int8).reshape(1, 256)
            micro = tflm.Interpreter.from_bytes(flat)
            micro.set_input(x, 0)
            micro.invoke()
            out = np.asarray(micro.get_output(0)).reshape(-1)
            differing = {}
            for kind, resolver in (("reference_kernels", tf.lite.experimental.OpResolverType.BUILTIN_REF),
                                   ("default_kernels", tf.lite.experimental.OpResolverType.AUTO)):
                it = tf.lite.Interpreter(model_content=flat, experimental_op_resolver_type=resolver)
                it.allocate_tensors()
                it.set_tensor(it.get_input_details()[0]["index"], x)
                it.invoke()
                d_out = it.get_tensor(it.get_output_details()[0]["index"]).reshape(-1)
                differing[kind] = int((d_out != out).sum())
            mult, shift, radius = transcendental_params(in_q["scale"])
            cases.append({"op": op, "calibration_range": [lo, hi], "input_quant": in_q, "output_quant": out_q,
                          "input_multiplier": mult, "input_shift": shift, "input_range_radius": radius,
                          "input": x.reshape(-1).astype(int).tolist(), "output": out.astype(int).tolist(),
                          "tflite_desktop_differing": differing})
            lines.append(f"{op} on [{lo}, {hi}]: desktop TFLite differs from TFLM on "
                         f"{differing['reference_kernels']}/256 inputs with reference kernels, "
                         f"{differing['default_kernels']}/256 with default kernels")
    fixture = {"name": "activations", "generator": "tools/gen_int8_fixtures.py", "versions": versions(),
               "cases": cases}
    return fixture, "activations: " + "; ".join(lines)


def versions():
    import importlib.metadata as md
    return {"torch": torch.__version__.split("+")[0], "tensorflow": tf.__version__,
            "tflite_micro": md.version("tflite-micro"), "numpy": np.__version__}


def dumps(fixture):
    """Indented JSON, but each list of numbers on one line."""
    def enc(v, indent):
        pad = "  " * indent
        if isinstance(v, dict):
            items = [f'{pad}  {json.dumps(k)}: {enc(x, indent + 1)}' for k, x in v.items()]
            return "{\n" + ",\n".join(items) + "\n" + pad + "}"
        if isinstance(v, list) and v and all(isinstance(x, (dict, list)) for x in v):
            items = [pad + "  " + enc(x, indent + 1) for x in v]
            return "[\n" + ",\n".join(items) + "\n" + pad + "]"
        return json.dumps(v, separators=(",", ":"))
    return enc(fixture, 0) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="regenerate in memory and compare with the files")
    ap.add_argument("--only", action="append", help="generate only this net (repeatable)")
    ap.add_argument("--keep-tflite", metavar="DIR", help="also write the .tflite models to DIR")
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    train_x = to_float(read_idx("train-images-idx3-ubyte.gz"))
    train_y = read_idx("train-labels-idx1-ubyte.gz")
    test_pixels = read_idx("t10k-images-idx3-ubyte.gz")
    test_y = read_idx("t10k-labels-idx1-ubyte.gz")
    data = (train_x, train_y, test_pixels, test_y)

    os.makedirs(OUT_DIR, exist_ok=True)
    stale = []
    jobs = [(spec["name"], lambda spec=spec: generate(spec, data, args.keep_tflite)) for spec in NETS]
    jobs.append(("activations", generate_activations))
    for name, job in jobs:
        if args.only and name not in args.only:
            continue
        fixture, summary = job()
        print(summary, flush=True)
        text = dumps(fixture)
        path = os.path.join(OUT_DIR, name + ".json")
        if args.check:
            old = open(path).read() if os.path.exists(path) else None
            if old != text:
                stale.append(path)
        else:
            with open(path, "w") as f:
                f.write(text)
            print(f"  wrote {os.path.relpath(path, ROOT)} ({len(text)} bytes)", flush=True)
    if stale:
        print("out of date: " + ", ".join(os.path.relpath(p, ROOT) for p in stale), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
