"""Python side of bench/zoo.sh: the zoo's graph nets `resnet` and
`mobilenet-small` (tools/torch_zoo.py) in PyTorch, onnxruntime, LiteRT with
XNNPACK and OpenVINO, timed and checked as bench/compare.sh does LeNet (the
engines and timing are lenet.py's and peers.py's, on NET's files).

    zoo.py prepare DIR --net NET        NET.safetensors: Xavier-initialised
                                        weights (D2L's init_cnn, as
                                        torch_zoo.py), every batch norm with
                                        non-trivial statistics and affine
                                        parameters (`initialised`);
                                        NET_input.f32: 256
                                        Fashion-MNIST test images (NCHW, raw
                                        f32); NET_torch_logits.f32: PyTorch's
                                        logits of them (eval mode); NET.onnx
                                        (dynamic batch), NET_identity.onnx;
                                        NET_b1.tflite, NET_b256.tflite: the net
                                        rebuilt in tf.keras (NHWC), float32
    zoo.py torch DIR --net NET --threads T [--system NAME]
                                        time PyTorch: batch-1 latency, batch-256
                                        inference, training at batch 256 (Adam,
                                        the recipe's lr)
    zoo.py ort | ort-binding | litert | openvino | openvino-app DIR --net NET --threads T
                                        time that engine's inference, as
                                        lenet.py / peers.py do for LeNet
    zoo.py check DIR --net NET FILE     compare FILE (our logits) with PyTorch's

Every engine's logits, ours included, are checked against PyTorch's before it
is timed, within lenet.py's TOLERANCE, 1e-4 absolute, as for LeNet. On these
weights and images the logits reach 3.9 (resnet) and 1.0 (mobilenet-small)
and vary by 0.1 to 0.3 between images; PyTorch's float32 logits are within
2e-6 of a float64 run (`prepare` prints that figure) and the engines' (batch
norm folded into the convolutions, other summation orders) within 2.5e-6 of
PyTorch's, so 1e-4 leaves a margin of 40x, yet catches TF's default
batch-norm epsilon (1e-3: logits off by 0.07 to 0.2), batch statistics
instead of the running ones (over 1), TF's "same" padding on the stride-2
convolutions (0.3 to 0.5), or one weight of a convolution moved by 0.01
(6e-4 to 8e-3 over the 256 images).
"""

import argparse
import copy
import json
import os
import struct
import sys
import warnings

import numpy as np

import lenet
import peers
from lenet import BATCH, data_path, inputs, onnx_path

NETS = ("resnet", "mobilenet-small")
FASHION_MNIST_TEST = "t10k-images-idx3-ubyte.gz"
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))


def torch_zoo():
    """tools/torch_zoo.py (imported when needed: it imports torch): the nets'
    builders, their blocks (from tools/gen_fixtures.py) and training
    recipes."""
    import torch_zoo

    return torch_zoo


def weights_path(directory, net):
    return os.path.join(directory, f"{net}.safetensors")


def read_safetensors(path):
    """The tensors of a safetensors file that lenet.write_safetensors wrote
    (F32 and I64), as numpy arrays."""
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
        data = f.read()
    layouts = {"F32": "<f4", "I64": "<i8"}
    tensors = {}
    for key, info in header.items():
        start, end = info["data_offsets"]
        tensors[key] = np.frombuffer(data[start:end], dtype=layouts[info["dtype"]]).reshape(info["shape"])
    return tensors


def load_model(directory, net):
    """NET in PyTorch holding DIR/NET.safetensors, in eval mode."""
    import torch

    model = torch_zoo().ZOO[net][0]()
    model.load_state_dict({k: torch.tensor(v) for k, v in read_safetensors(weights_path(directory, net)).items()})
    return model.eval()


def initialised(net, images, seed=0):
    """NET in PyTorch, seeded, initialised with D2L's init_cnn (Xavier
    uniform weights for every Conv2d and Linear, PyTorch's default biases),
    then with non-trivial batch norms: random affine
    parameters (weight in [0.5, 1.5], bias in [-0.5, 0.5]), running
    statistics those of `images` at that layer (so the activations stay of
    order 1 and the logits depend on the image) moved off them (mean by up
    to half a standard deviation, variance scaled by 0.5 to 2: batch
    statistics used instead of the running ones show), and a step count.
    In eval mode."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    model = torch_zoo().ZOO[net][0]()
    generator = torch.Generator().manual_seed(seed)

    def uniform(like, low, high):
        return torch.empty_like(like).uniform_(low, high, generator=generator)

    batch_norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
        for bn in batch_norms:
            bn.weight.copy_(uniform(bn.weight, 0.5, 1.5))
            bn.bias.copy_(uniform(bn.bias, -0.5, 0.5))
            bn.momentum = None  # a cumulative average: after one batch, that batch's statistics
            bn.reset_running_stats()
        model.train()(torch.from_numpy(images))  # each batch norm's statistics: its input's
        for i, bn in enumerate(batch_norms):
            bn.momentum = 0.1
            bn.running_mean += bn.running_var.sqrt() * uniform(bn.running_mean, -0.5, 0.5)
            bn.running_var *= uniform(bn.running_var, 0.5, 2.0)
            bn.num_batches_tracked.fill_(100 + i)
    return model.eval()


def test_images():
    """The first BATCH Fashion-MNIST test images in [0, 1] (NCHW), or, when
    the dataset is not installed, seeded uniform [0, 1) images."""
    zoo = torch_zoo()
    if os.path.exists(zoo.DATA + FASHION_MNIST_TEST):
        return zoo.images(FASHION_MNIST_TEST)[:BATCH].numpy()
    print(f"{zoo.DATA + FASHION_MNIST_TEST} not found: random input images", file=sys.stderr)
    return np.random.default_rng(0).random((BATCH, 1, 28, 28), dtype=np.float32)


def same_padding(size, kernel, stride):
    """TF's "same" padding of one spatial dimension: (before, after), the
    odd pixel after."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def keras_conv(conv, x):
    """A PyTorch Conv2d (plain, or depthwise: groups = channels) applied to
    the NHWC Keras tensor x. PyTorch pads symmetrically; TF's "same" puts an
    odd padding pixel after (a 3x3 stride-2 convolution of an even input is
    padded bottom and right only): where "same" is not PyTorch's padding,
    an explicit ZeroPadding2D and a "valid" convolution."""
    import tensorflow as tf

    layers = tf.keras.layers
    (ph, pw), stride, kernel = conv.padding, conv.stride, conv.kernel_size
    if conv.padding_mode != "zeros" or conv.dilation != (1, 1):
        sys.exit(f"zoo.py: no tf.keras translation of {conv}")
    if (ph, pw) == (0, 0):
        padding = "valid"
    elif [same_padding(x.shape[1 + d], kernel[d], stride[d]) for d in (0, 1)] == [(ph, ph), (pw, pw)]:
        padding = "same"
    else:
        x, padding = layers.ZeroPadding2D(((ph, ph), (pw, pw)))(x), "valid"
    weight = conv.weight.detach().numpy()
    use_bias = conv.bias is not None
    if conv.groups == 1:
        layer = layers.Conv2D(conv.out_channels, kernel, stride, padding, use_bias=use_bias)
        kernel_weights = weight.transpose(2, 3, 1, 0)  # (out, in, h, w) -> (h, w, in, out)
    elif conv.groups == conv.in_channels == conv.out_channels:
        layer = layers.DepthwiseConv2D(kernel, stride, padding, use_bias=use_bias)
        kernel_weights = weight.transpose(2, 3, 0, 1)  # (channels, 1, h, w) -> (h, w, channels, 1)
    else:
        sys.exit(f"zoo.py: no tf.keras translation of {conv}")
    y = layer(x)
    layer.set_weights([kernel_weights] + ([conv.bias.detach().numpy()] if use_bias else []))
    return y


def keras_apply(module, x):
    """`module` (a PyTorch module of the zoo's graph nets) applied to the
    NHWC Keras tensor x, with its weights and running statistics; exits on a
    module it has no translation for."""
    import tensorflow as tf
    from torch import nn

    layers = tf.keras.layers
    zoo = torch_zoo()

    def with_weights(layer, x, weights):
        y = layer(x)
        layer.set_weights([w.detach().numpy() for w in weights])
        return y

    if isinstance(module, nn.Sequential):
        for child in module:
            x = keras_apply(child, x)
        return x
    if isinstance(module, nn.Conv2d):
        return keras_conv(module, x)
    if isinstance(module, nn.BatchNorm2d):
        return with_weights(layers.BatchNormalization(epsilon=module.eps), x,
                            [module.weight, module.bias, module.running_mean, module.running_var])
    if isinstance(module, nn.ReLU):
        return layers.ReLU()(x)
    if isinstance(module, nn.ReLU6):
        return layers.ReLU(max_value=6)(x)
    if isinstance(module, nn.AdaptiveAvgPool2d) and module.output_size in (1, (1, 1)):
        return layers.GlobalAveragePooling2D()(x)  # (batch, channels): PyTorch's pooling then Flatten
    if isinstance(module, nn.Flatten) and len(x.shape) == 2:
        return x  # after the global pooling
    if isinstance(module, nn.Linear):
        return with_weights(layers.Dense(module.out_features), x, [module.weight.T, module.bias])
    if isinstance(module, zoo.ResidualBN):
        y = layers.ReLU()(keras_apply(module.bn1, keras_conv(module.conv1, x)))
        y = keras_apply(module.bn2, keras_conv(module.conv2, y))
        shortcut = keras_conv(module.conv3, x) if module.conv3 else x
        return layers.ReLU()(layers.Add()([y, shortcut]))
    if isinstance(module, zoo.InvertedResidual):
        y = keras_apply(module.conv, x)
        return layers.Add()([x, y]) if module.use_res_connect else y
    sys.exit(f"zoo.py: no tf.keras translation of {module}")


def keras_net(model, batch):
    """The PyTorch `model` (eval mode) in tf.keras for a fixed `batch`, NHWC,
    with its weights and batch-norm statistics."""
    import tensorflow as tf

    x = tf.keras.Input((28, 28, 1), batch_size=batch)
    return tf.keras.Model(x, keras_apply(model, x))


def prepare(directory, net):
    import torch

    os.makedirs(directory, exist_ok=True)
    x = test_images()
    x.astype("<f4").tofile(data_path(directory, "input.f32", net))
    state = initialised(net, x).state_dict()
    lenet.write_safetensors(weights_path(directory, net), {k: v.numpy() for k, v in state.items()})
    model = load_model(directory, net)  # every engine's weights from that file
    with torch.no_grad():
        logits = model(torch.from_numpy(x)).numpy()
        logits64 = copy.deepcopy(model).double()(torch.from_numpy(x).double()).numpy()
    logits.astype("<f4").tofile(data_path(directory, "torch_logits.f32", net))
    print(f"{net}: PyTorch's logits up to {np.abs(logits).max():.2f} in magnitude, float32 within "
          f"{np.abs(logits - logits64).max():.1e} of float64", file=sys.stderr)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    torch.onnx.export(
        model, (torch.from_numpy(x[:1]),), onnx_path(directory, net),
        input_names=["x"], output_names=["logits"], dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}},
        dynamo=False,
    )
    lenet.export_identity(directory, net)
    peers.write_tflite(directory, lambda batch: keras_net(model, batch), net)
    print(f"prepared {directory}: {net} weights, {BATCH} inputs, ONNX exports", file=sys.stderr)


def bench_torch(directory, net, threads, seconds, system):
    """lenet.py's PyTorch timing, training with Adam at the net's recipe's
    learning rate (torch_zoo.py; 0.002 for both nets)."""
    import torch

    lr = torch_zoo().ZOO[net][2][1]
    lenet.time_torch(system, threads, seconds, load_model(directory, net), inputs(directory, net),
                     lambda parameters: torch.optim.Adam(parameters, lr=lr), net)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    engines = {
        "ort": lenet.bench_ort, "ort-binding": lenet.bench_ort_binding, "litert": peers.bench_litert,
        "openvino": peers.bench_openvino, "openvino-app": peers.bench_openvino_app,
    }
    parser.add_argument("command", choices=["prepare", "torch", *engines, "check"])
    parser.add_argument("dir")
    parser.add_argument("file", nargs="?")
    parser.add_argument("--net", choices=NETS, required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--system", default="pytorch")
    args = parser.parse_intermixed_args()
    if args.command == "prepare":
        prepare(args.dir, args.net)
    elif args.command == "torch":
        bench_torch(args.dir, args.net, args.threads, args.seconds, args.system)
    elif args.command == "check":
        lenet.check(args.dir, args.file, args.net)
    else:
        engines[args.command](args.dir, args.threads, args.seconds, args.net)


if __name__ == "__main__":
    main()
