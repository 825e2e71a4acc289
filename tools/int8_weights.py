#!/usr/bin/env python3
"""Write each int8 fixture's TFLite parameters as a cnn-int8 weights file.

    python3 tools/int8_weights.py            # (re)writes tests/fixtures/int8/<name>.safetensors
    python3 tools/int8_weights.py --check    # fails if a file differs

For every tests/fixtures/int8/<name>.json (written by tools/gen_int8_fixtures.py
from TensorFlow Lite's converter and TensorFlow Lite Micro), this writes the
int8 weights, int32 biases, weight scales and activation quantization that
TFLite chose, in the format `cnn_net!` bakes (`weights = "...safetensors"`;
the format is documented in cnn-compiler/src/int8.rs):

    "__metadata__": {"cnn.format": "int8", ...}
    input.scale F32 [], input.zero_point I32 []
    K.weight I8 (OIHW / [out, in]), K.bias I32 [out], K.weight_scale F32 [out] or [1],
    K.output_scale F32 [], K.output_zero_point I32 []      for each conv and linear K
    points.scale F32 [P], points.zero_point I32 [P]        the output quantization of each
                                                           ADD and MEAN (add, global_avgpool),
                                                           in program order, if there are any

so the tests can compile each fixture's net with TFLite's own parameters and
compare its outputs with TFLite Micro's. Needs only numpy; deterministic
(sorted keys, no timestamps).
"""

import argparse
import glob
import json
import os
import struct
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "int8")

DTYPES = {"I8": np.int8, "I32": np.int32, "F32": np.float32}


def safetensors_bytes(tensors, metadata):
    """A safetensors file of `tensors` ({key: (dtype, shape, values)})."""
    header = {"__metadata__": metadata}
    blobs, offset = [], 0
    for key in sorted(tensors):
        dtype, shape, values = tensors[key]
        data = np.asarray(values, dtype=DTYPES[dtype]).reshape(shape).astype("<" + np.dtype(DTYPES[dtype]).str[1:])
        raw = data.tobytes()
        header[key] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def convert(fixture):
    tensors = {
        "input.scale": ("F32", [], [fixture["input_quant"]["scale"]]),
        "input.zero_point": ("I32", [], [fixture["input_quant"]["zero_point"]]),
    }
    for layer in fixture["layers"]:
        if "weight" not in layer:
            continue
        w = layer["weight"]
        key = w["key"][: -len(".weight")]
        assert all(z == 0 for z in w["zero_points"]), f"{key}: int8 weights must be symmetric"
        tensors[f"{key}.weight"] = ("I8", w["shape"], w["data"])
        tensors[f"{key}.weight_scale"] = ("F32", [len(w["scales"])], w["scales"])
        if "bias" in layer:
            b = layer["bias"]
            tensors[f"{key}.bias"] = ("I32", b["shape"], b["data"])
        tensors[f"{key}.output_scale"] = ("F32", [], [layer["output_quant"]["scale"]])
        tensors[f"{key}.output_zero_point"] = ("I32", [], [layer["output_quant"]["zero_point"]])
    # The fixture lists its ops in program order, as the net's points are.
    points = [layer["output_quant"] for layer in fixture["layers"] if layer["op"] in ("add", "global_avgpool")]
    if points:
        tensors["points.scale"] = ("F32", [len(points)], [q["scale"] for q in points])
        tensors["points.zero_point"] = ("I32", [len(points)], [q["zero_point"] for q in points])
    metadata = {"cnn.format": "int8", "cnn.source": "tools/int8_weights.py", "cnn.fixture": fixture["name"]}
    return safetensors_bytes(tensors, metadata)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="only compare with the files on disk")
    args = ap.parse_args()
    stale = []
    for path in sorted(glob.glob(os.path.join(FIXTURES, "*.json"))):
        fixture = json.load(open(path))
        if "layers" not in fixture:
            continue  # not a net (e.g. the activation tables)
        data = convert(fixture)
        out = path[: -len(".json")] + ".safetensors"
        if args.check:
            if not os.path.exists(out) or open(out, "rb").read() != data:
                stale.append(out)
        else:
            with open(out, "wb") as f:
                f.write(data)
        print(f"{os.path.relpath(out, ROOT)}: {len(data)} bytes")
    if stale:
        print("out of date:", *stale, sep="\n  ")
        sys.exit(1)


if __name__ == "__main__":
    main()
