"""PyTorch and onnxruntime side of bench/compare.sh (bench/peers.py has
LiteRT and OpenVINO; bench/zoo.py reuses both for the zoo's graph nets).

    lenet.py prepare DIR                weights (safetensors, Xavier init like
                                        D2L), 256 input images (raw f32), ONNX
                                        export, PyTorch logits of those inputs,
                                        a one-op Identity ONNX model
    lenet.py torch DIR --threads T      time PyTorch (one JSON line per metric)
    lenet.py ort DIR --threads T        time onnxruntime inference
    lenet.py ort-binding DIR --threads T
                                        time the Identity model through the same
                                        onnxruntime session setup and call: the
                                        cost of onnxruntime's Python binding
    lenet.py check DIR FILE             compare FILE (our logits) with PyTorch's

Every engine but PyTorch (the reference) has its logits checked against
PyTorch's (within TOLERANCE) before it is timed; a difference aborts the run.
Timing as in models/examples/bench_net.rs: a warm-up of at least 0.3 s,
then blocks of about 50 ms for --seconds, and the median block rate.

The helpers taking `net` (None here) read and write, for one of
bench/zoo.py's nets, that net's files (`data_path`, `onnx_path`) and add a "net"
field to the JSON lines.
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
# Largest |difference| from PyTorch's logits that an engine may show.
TOLERANCE = 1e-4


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


def data_path(directory, name, net=None):
    """DIR/name, a file of bench/compare.sh's LeNet, or DIR/NET_name, one of
    bench/zoo.py's `net`."""
    return os.path.join(directory, f"{net}_{name}" if net else name)


def onnx_path(directory, net=None):
    """DIR/lenet.onnx, or DIR/NET.onnx."""
    return os.path.join(directory, f"{net or 'lenet'}.onnx")


def write_safetensors(path, tensors):
    """The safetensors format by hand: header length, JSON header, raw data.
    Integer arrays (batch norm's num_batches_tracked) are stored as I64, as
    PyTorch saves them; the rest as F32."""
    header, blobs, offset = {}, [], 0
    for key, array in tensors.items():
        dtype, layout = ("I64", "<i8") if np.issubdtype(np.asarray(array).dtype, np.integer) else ("F32", "<f4")
        data = np.ascontiguousarray(array, dtype=layout).tobytes()
        header[key] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
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


def inputs(directory, net=None):
    return np.fromfile(data_path(directory, "input.f32", net), dtype="<f4").reshape(BATCH, 1, 28, 28)


def export_identity(directory, net=None):
    """identity.onnx: one Identity node, with lenet.onnx's input (name, shape,
    dynamic batch), IR version and opsets, so that onnxruntime runs it through
    exactly the call it runs LeNet through (for `net`: NET_identity.onnx,
    from NET.onnx)."""
    import onnx
    from onnx import TensorProto, helper

    lenet_onnx = onnx.load(onnx_path(directory, net))
    shape = ["n", 1, 28, 28]
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "identity",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
    )
    model = helper.make_model(graph, opset_imports=lenet_onnx.opset_import)
    model.ir_version = lenet_onnx.ir_version
    onnx.checker.check_model(model)
    onnx.save(model, data_path(directory, "identity.onnx", net))


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
    export_identity(directory)
    print(f"prepared {directory}: weights, {BATCH} inputs, ONNX exports", file=sys.stderr)


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


def emit(system, threads, metric, value, net=None):
    """One JSON line; with `net`, a "net" field after "system"."""
    line = {"system": system} | ({"net": net} if net else {})
    print(json.dumps(line | {"threads": threads, "metric": metric, "value": value}), flush=True)


def time_inference(system, threads, seconds, run_one, run_batch, net=None):
    """Emits the batch-1 latency of `run_one` and the batch-BATCH rate of
    `run_batch`, both argument-less calls."""
    emit(system, threads, "latency_us", 1e6 / rate(seconds, 1, run_one), net)
    emit(system, threads, "infer_img_s", rate(seconds, BATCH, run_batch), net)


def agree(engine, logits, directory, net=None):
    """Returns the largest |difference| between `logits` (for the first
    len(logits) input images) and PyTorch's; exits, naming `engine`, when it
    is above TOLERANCE."""
    torch_logits = np.fromfile(data_path(directory, "torch_logits.f32", net), dtype="<f4").reshape(BATCH, -1)
    diff = float(np.max(np.abs(np.asarray(logits) - torch_logits[: len(logits)])))
    if not diff <= TOLERANCE:
        sys.exit(f"{engine}{f' ({net})' if net else ''}: logits of {len(logits)} image(s) differ from PyTorch's "
                 f"by up to {diff:.2e} (tolerance {TOLERANCE:.0e}); aborting")
    return diff


def bench_torch(directory, threads, seconds, system):
    import torch

    time_torch(system, threads, seconds, load_model(directory), inputs(directory),
               lambda parameters: torch.optim.SGD(parameters, lr=0.9))


def time_torch(system, threads, seconds, model, images, optimizer, net=None):
    """Times `model` on `threads` threads: batch-1 latency and batch-BATCH
    inference in eval mode, then training steps in train mode on the BATCH
    `images` (forward, cross-entropy, backward, and a step of
    `optimizer(parameters)`)."""
    import torch

    torch.set_num_threads(threads)
    x = torch.from_numpy(images)
    one = x[:1].clone()
    with torch.inference_mode():
        model.eval()
        time_inference(system, threads, seconds, lambda: model(one), lambda: model(x), net)
    model.train()
    labels = torch.from_numpy(np.arange(BATCH) * 7 % 10)
    opt = optimizer(model.parameters())
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad()
        loss = loss_fn(model(x), labels)
        loss.backward()
        opt.step()

    emit(system, threads, "train_ex_s", rate(seconds, BATCH, step), net)


def ort_session(path, threads):
    """An onnxruntime CPU session with `threads` intra-op threads, run sequentially."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def bench_ort(directory, threads, seconds, net=None):
    session = ort_session(onnx_path(directory, net), threads)
    x = inputs(directory, net)
    one = np.ascontiguousarray(x[:1])
    agree("onnxruntime", session.run(None, {"x": one})[0], directory, net)
    agree("onnxruntime", session.run(None, {"x": x})[0], directory, net)
    time_inference("onnxruntime", threads, seconds,
                   lambda: session.run(None, {"x": one}), lambda: session.run(None, {"x": x}), net)


def bench_ort_binding(directory, threads, seconds, net=None):
    """Times identity.onnx as bench_ort times LeNet: what a session.run costs
    around the graph (Python call, input binding, output allocation). Its
    output is the whole input (784 values an image, LeNet's is 10), so at
    batch 256 it is an upper bound of that cost."""
    session = ort_session(data_path(directory, "identity.onnx", net), threads)
    x = inputs(directory, net)
    one = np.ascontiguousarray(x[:1])
    if not np.array_equal(session.run(None, {"x": x})[0], x):
        sys.exit("onnxruntime-binding: the Identity model's output is not its input; aborting")
    time_inference("onnxruntime-binding", threads, seconds,
                   lambda: session.run(None, {"x": one}), lambda: session.run(None, {"x": x}), net)


def check(directory, ours_path, net=None):
    """Exits unless our logits (in ours_path) agree with PyTorch's."""
    ours = np.fromfile(ours_path, dtype="<f4").reshape(BATCH, -1)
    diff = agree("ours", ours, directory, net)
    print(f"{net + ' ' if net else ''}logits, ours vs PyTorch, {BATCH} images: "
          f"max |difference| {diff:.2e} (within {TOLERANCE:.0e})")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["prepare", "torch", "ort", "ort-binding", "check"])
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
    elif args.command == "ort-binding":
        bench_ort_binding(args.dir, args.threads, args.seconds)
    else:
        check(args.dir, args.file)


if __name__ == "__main__":
    main()
