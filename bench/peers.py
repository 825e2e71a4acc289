"""LiteRT (XNNPACK) and OpenVINO side of bench/compare.sh, on the weights,
inputs and ONNX export that `lenet.py prepare` wrote to DIR.

    peers.py prepare DIR                 lenet_b1.tflite, lenet_b256.tflite:
                                         the LeNet rebuilt in tf.keras (NHWC)
                                         from those weights, converted to
                                         float32 TFLite, one per batch size
    peers.py litert DIR --threads T      time LiteRT (its default XNNPACK
                                         delegate, T threads)
    peers.py openvino DIR --threads T    time OpenVINO's CPU plugin on
                                         lenet.onnx (fp32, latency hint, one
                                         stream, T threads), Python API
    peers.py openvino-app DIR --threads T
                                         the same model and configuration,
                                         batch-1 latency as OpenVINO's C++-timed
                                         benchmark_app reports it (median)

Each engine's logits are checked against PyTorch's before it is timed, and
the timing is lenet.py's (one JSON line per metric). bench/zoo.py runs the
same engines on a zoo net's files (`net`, None here, as in lenet.py).
"""

import argparse
import contextlib
import io
import json
import os
import re
import subprocess
import sys

import numpy as np

from lenet import BATCH, agree, data_path, emit, inputs, onnx_path, time_inference

# The batch sizes timed: batch-1 latency and batch-BATCH throughput. A TFLite
# model's batch is fixed at conversion (a batch-1 model does not resize
# through its flatten), and OpenVINO runs a static shape fastest, so each
# engine gets one model per batch size.
BATCHES = (1, BATCH)


def tflite_path(directory, batch, net=None):
    return os.path.join(directory, f"{net or 'lenet'}_b{batch}.tflite")


def nhwc(images):
    """NCHW images (as lenet.py writes them) in the NHWC layout TFLite uses."""
    return np.ascontiguousarray(images.transpose(0, 2, 3, 1))


def keras_lenet(batch, weights):
    """lenet.py's LeNet in tf.keras for a fixed `batch`, NHWC, holding the
    PyTorch state_dict `weights`."""
    import tensorflow as tf

    layers = tf.keras.layers
    model = tf.keras.Sequential([
        tf.keras.Input((28, 28, 1), batch_size=batch),
        layers.Conv2D(6, 5, padding="same", activation="sigmoid"),  # "same" = PyTorch's padding 2 here
        layers.AveragePooling2D(2),
        layers.Conv2D(16, 5, activation="sigmoid"),
        layers.AveragePooling2D(2),
        layers.Flatten(),
        layers.Dense(120, activation="sigmoid"),
        layers.Dense(84, activation="sigmoid"),
        layers.Dense(10),
    ])
    conv1, conv2, fc1, fc2, fc3 = (layer for layer in model.layers if layer.weights)

    def hwio(key):
        """A PyTorch conv weight (out, in, h, w) as Keras's (h, w, in, out)."""
        return weights[key].transpose(2, 3, 1, 0)

    conv1.set_weights([hwio("0.weight"), weights["0.bias"]])
    conv2.set_weights([hwio("3.weight"), weights["3.bias"]])
    # PyTorch flattens (channel, row, column), Keras (row, column, channel):
    # the first linear layer's inputs are reordered to match.
    fc1_kernel = weights["7.weight"].reshape(120, 16, 5, 5).transpose(2, 3, 1, 0).reshape(16 * 5 * 5, 120)
    fc1.set_weights([fc1_kernel, weights["7.bias"]])
    fc2.set_weights([weights["9.weight"].T, weights["9.bias"]])
    fc3.set_weights([weights["11.weight"].T, weights["11.bias"]])
    return model


def prepare(directory):
    weights = np.load(os.path.join(directory, "weights.npz"))
    write_tflite(directory, lambda batch: keras_lenet(batch, weights))


def write_tflite(directory, keras_model, net=None):
    """Converts `keras_model(batch)` to a float32 TFLite model for each of
    BATCHES."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    for batch in BATCHES:
        converter = tf.lite.TFLiteConverter.from_keras_model(keras_model(batch))
        # The converter prints where it saved its intermediate model.
        with contextlib.redirect_stdout(io.StringIO()):
            tflite = converter.convert()
        with open(tflite_path(directory, batch, net), "wb") as f:
            f.write(tflite)
    print(f"prepared {directory}: {net + ' ' if net else ''}float32 TFLite models, "
          f"batch {' and '.join(map(str, BATCHES))}", file=sys.stderr)


def require_whole_graph_delegated(interpreter, engine):
    """Exits unless the XNNPACK delegate (the only one the interpreter was
    given: its default) took the whole graph, i.e. the plan is one DELEGATE
    node from the model's input to its output. `_get_ops_details` is the
    interpreter's (private) listing of the nodes, delegate nodes included."""
    delegates = [op for op in interpreter._get_ops_details() if op["op_name"] == "DELEGATE"]
    model_in = interpreter.get_input_details()[0]["index"]
    model_out = interpreter.get_output_details()[0]["index"]
    if len(delegates) != 1 or model_in not in delegates[0]["inputs"] or list(delegates[0]["outputs"]) != [model_out]:
        sys.exit(f"{engine}: XNNPACK did not take the whole graph (delegate nodes: {delegates}); aborting")


def bench_litert(directory, threads, seconds, net=None):
    """Times set_tensor + invoke + get_tensor, the interpreter's full call."""
    from ai_edge_litert.interpreter import Interpreter

    x = nhwc(inputs(directory, net))
    runs = {}
    for batch in BATCHES:
        engine = f"litert-xnnpack (batch {batch})"
        interpreter = Interpreter(model_path=tflite_path(directory, batch, net), num_threads=threads)
        interpreter.allocate_tensors()
        require_whole_graph_delegated(interpreter, engine)

        # The defaults bind this batch's interpreter, images and tensors.
        def run(interpreter=interpreter, images=x[:batch],
                model_in=interpreter.get_input_details()[0]["index"],
                model_out=interpreter.get_output_details()[0]["index"]):
            interpreter.set_tensor(model_in, images)
            interpreter.invoke()
            return interpreter.get_tensor(model_out)

        agree(engine, run(), directory, net)
        runs[batch] = run
    time_inference("litert-xnnpack", threads, seconds, runs[1], runs[BATCH], net)


def openvino_config(threads):
    """fp32 forced (no bf16 on CPUs that have it), latency hint, one stream."""
    return {
        "INFERENCE_PRECISION_HINT": "f32",
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": "1",
        "INFERENCE_NUM_THREADS": str(threads),
    }


def bench_openvino(directory, threads, seconds, net=None):
    """Times the synchronous infer of a reused infer request, input and output
    shared with numpy (no copies), on lenet.onnx (NET.onnx) reshaped to each
    batch."""
    import openvino as ov

    core = ov.Core()
    x = inputs(directory, net)
    runs = {}
    for batch in BATCHES:
        model = core.read_model(onnx_path(directory, net))
        model.reshape([batch, 1, 28, 28])
        request = core.compile_model(model, "CPU", openvino_config(threads)).create_infer_request()

        # The defaults bind this batch's request and images.
        def run(request=request, images=x[:batch]):
            return request.infer({0: images}, share_inputs=True, share_outputs=True)[0]

        agree(f"openvino (batch {batch})", run(), directory, net)
        runs[batch] = run
    time_inference("openvino", threads, seconds, runs[1], runs[BATCH], net)


def bench_openvino_app(directory, threads, seconds, net=None):
    """Batch-1 latency from OpenVINO's benchmark_app (installed with the
    openvino package): synchronous API, the median of the per-inference
    latencies it times in C++, so without Python's call cost. Its inputs are
    random; the model and configuration are bench_openvino's, which checks
    their logits."""
    config = data_path(directory, f"openvino_{threads}t.json", net)
    with open(config, "w") as f:
        json.dump({"CPU": openvino_config(threads)}, f)
    app = os.path.join(os.path.dirname(sys.executable), "benchmark_app")
    command = [app, "-m", onnx_path(directory, net), "-d", "CPU", "-api", "sync",
               "-shape", "[1,1,28,28]", "-load_config", config, "-t", str(max(1, round(seconds)))]
    result = subprocess.run(command, capture_output=True, text=True)
    median = re.search(r"Median:\s+([0-9.]+) (us|ms)", result.stdout)
    if result.returncode != 0 or not median:
        sys.exit(f"openvino benchmark_app failed ({' '.join(command)}):\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    latency_us = float(median[1]) * (1000 if median[2] == "ms" else 1)
    emit("openvino-benchmark_app", threads, "latency_us", latency_us, net)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["prepare", "litert", "openvino", "openvino-app"])
    parser.add_argument("dir")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    if args.command == "prepare":
        prepare(args.dir)
    elif args.command == "litert":
        bench_litert(args.dir, args.threads, args.seconds)
    elif args.command == "openvino":
        bench_openvino(args.dir, args.threads, args.seconds)
    else:
        bench_openvino_app(args.dir, args.threads, args.seconds)


if __name__ == "__main__":
    main()
