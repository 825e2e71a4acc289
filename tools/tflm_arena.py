#!/usr/bin/env python3
"""Measure TensorFlow Lite Micro's tensor-arena size for the int8 fixture nets.

Run from the repository root (same Python packages as the int8 generator,
tools/requirements-int8.txt; about half a minute on two cores):

    nice -n 10 python3 tools/tflm_arena.py
    nice -n 10 python3 tools/tflm_arena.py --keep-tflite /tmp/int8   # also write the .tflite files
    python3 tools/tflm_arena.py --only lenet_relu_avg                 # one net (a few seconds)

Method:

1. The .tflite models are rebuilt exactly as tools/gen_int8_fixtures.py
   builds them (imported as a module: same training seeds, same TensorFlow
   rebuild, same calibration images, same TFLiteConverter settings), for
   lenet_sigmoid and lenet_relu; lenet_relu_avg's .tflite is committed
   (tests/fixtures/int8/lenet_relu_avg.tflite, the model MicroFlow compiles
   in tools/microflow.sh) and is read, not rebuilt. To make sure they ARE
   the fixture models, TFLM's output on every image of
   tests/fixtures/int8/<net>.json ("input") must equal the stored "output".
2. TFLM's Python interpreter (`tflite_micro.runtime.Interpreter.from_bytes(
   flat, arena_size=N)`, default config kAllocationRecording: a
   RecordingMicroAllocator with TFLM's greedy memory planner, as on a
   device) is built with a large arena, invoked once, and its
   `print_allocations()` report (written by C++ to stderr; captured here by
   redirecting file descriptor 2) gives the bytes it used: total = head
   (non-persistent: the planned activation tensors and kernel scratch
   buffers) + tail (persistent: TfLiteEvalTensor structs, node/registration
   structs, per-op data such as per-channel multipliers, the allocator and
   memory-planner objects themselves). The API exposes no getter for these
   numbers, only this printout.
3. The minimum arena is then found by bisection on `arena_size`: a size
   "works" when the interpreter is constructed (AllocateTensors succeeds)
   and `invoke()` gives, on every fixture image, the same int8 outputs as
   the large arena. The bisection result N is confirmed by checking that N
   works and that every size in [N - 64, N - 1] fails (sizes are not
   assumed to behave monotonically beyond that window).

Caveats printed with the table: the arena is TFLM's on THIS host (x86_64,
64-bit pointers: the persistent structs are larger than on a 32-bit MCU),
and it holds the model's input and output tensors (784 + 10 bytes here),
whereas our generated nets' INFER_SCRATCH_BYTES does not (forward_with
takes the input and output buffers from the caller).
"""

import argparse
import contextlib
import json
import os
import re
import sys
import tempfile
import time
import zlib

T_START = time.time()

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# Imports torch (and torch._dynamo) before tensorflow, as it must.
import gen_int8_fixtures as g  # noqa: E402

np, torch, tf, tflm = g.np, g.torch, g.tf, g.tflm

NETS = ["lenet_sigmoid", "lenet_relu", "lenet_relu_avg"]
# Our generated int8 nets' Net::INFER_SCRATCH_BYTES, as asserted in
# tests/tests/integration/int8_nets.rs `int8_constants` (== the float net's
# INFER_SCRATCH_LEN); 5,880 bytes for the three LeNets (lenet_relu_avg:
# tools/microflow's lenet-cnn, whose static scratch is that size).
OUR_SCRATCH = {"lenet_sigmoid": 5880, "lenet_relu": 5880, "lenet_relu_avg": 5880}
IO_BYTES = (784, 10)  # int8 input [1,28,28,1] and output [1,10]
LARGE_ARENA = 1 << 20


@contextlib.contextmanager
def captured_fd2():
    """Redirects the process's file descriptor 2 (C++ MicroPrintf) into a buffer."""
    sys.stderr.flush()
    saved = os.dup(2)
    out = {"text": ""}
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield out
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            out["text"] = tmp.read().decode(errors="replace")


def build_tflite(spec, train_x, train_y):
    """The same steps as g.generate() up to the conversion."""
    model, _ = g.train(spec, train_x, train_y)
    _, steps = g.tf_plan(model)
    tf_net = g.TfNet(steps)
    rng = np.random.default_rng(zlib.crc32(spec["name"].encode()))
    calib = train_x[np.sort(rng.choice(len(train_x), g.CALIBRATION_IMAGES, replace=False))]
    calib_nhwc = calib.transpose(0, 2, 3, 1)
    with torch.no_grad():
        ref = model(torch.from_numpy(calib[:8])).numpy()
    got = np.concatenate([tf_net(calib_nhwc[i:i + 1]).numpy() for i in range(8)])
    assert np.abs(got - ref).max() < 1e-4
    return g.convert(tf_net, calib_nhwc, spec.get("per_tensor_dense", False))


def run_all(flat, arena_size, inputs):
    """Outputs of TFLM with this arena on every input, or None if it fails."""
    try:
        with captured_fd2():
            it = tflm.Interpreter.from_bytes(flat, arena_size=arena_size)
            outs = []
            for x in inputs:
                it.set_input(x, 0)
                it.invoke()
                outs.append(np.asarray(it.get_output(0)).reshape(-1).copy())
        return outs
    except (RuntimeError, ValueError):
        return None


def works(flat, arena_size, inputs, want):
    outs = run_all(flat, arena_size, inputs)
    return outs is not None and all(np.array_equal(a, b) for a, b in zip(outs, want))


def allocations(flat, inputs):
    it = tflm.Interpreter.from_bytes(flat, arena_size=LARGE_ARENA)
    it.set_input(inputs[0], 0)
    it.invoke()
    with captured_fd2() as cap:
        it.print_allocations()
    text = cap["text"]
    nums = {k: int(re.search(rf"Arena allocation {k} (\d+) bytes", text).group(1))
            for k in ("total", "head", "tail")}
    return nums, text


def activations(flat):
    """The model input and every op's output with its size, in execution order."""
    m = g.Model(flat)
    size = lambda i: int(np.prod(m.tensor(i).shape))  # noqa: E731
    parts = [f"input {size(m.g.inputs[0])}"]
    parts += [f"{name} {size(op.outputs[0])}" for name, op in m.ops()]
    return ", ".join(parts)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keep-tflite", metavar="DIR", help="also write the .tflite models to DIR")
    ap.add_argument("--only", action="append", choices=NETS, help="measure only this net (repeatable)")
    args = ap.parse_args()
    t0 = time.time()

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    train_x = g.to_float(g.read_idx("train-images-idx3-ubyte.gz"))
    train_y = g.read_idx("train-labels-idx1-ubyte.gz")

    rows = []
    for name in NETS:
        if args.only and name not in args.only:
            continue
        spec = next(s for s in g.NETS if s["name"] == name)
        committed = os.path.join(g.OUT_DIR, name + ".tflite")
        if os.path.exists(committed):
            with open(committed, "rb") as f:
                flat = f.read()
            print(f"{name}: read {os.path.relpath(committed, g.ROOT)}")
        else:
            flat = build_tflite(spec, train_x, train_y)
        if args.keep_tflite:
            os.makedirs(args.keep_tflite, exist_ok=True)
            with open(os.path.join(args.keep_tflite, name + ".tflite"), "wb") as f:
                f.write(flat)
        with open(os.path.join(g.OUT_DIR, name + ".json")) as f:
            fixture = json.load(f)
        inputs = [np.array(img["input"], np.int8).reshape(1, 28, 28, 1) for img in fixture["images"]]
        want = [np.array(img["output"], np.int8) for img in fixture["images"]]

        big = run_all(flat, LARGE_ARENA, inputs)
        assert big is not None, f"{name}: TFLM fails with a {LARGE_ARENA}-byte arena"
        same = all(np.array_equal(a, b) for a, b in zip(big, want))
        assert same, f"{name}: the rebuilt model's TFLM outputs differ from {name}.json; not the fixture model"

        nums, report = allocations(flat, inputs)

        lo, hi = 0, LARGE_ARENA  # lo fails, hi works
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if works(flat, mid, inputs, want):
                hi = mid
            else:
                lo = mid
        minimum = hi
        assert works(flat, minimum, inputs, want)
        window_fails = all(not works(flat, n, inputs, want) for n in range(max(0, minimum - 64), minimum))

        rows.append(dict(name=name, tflite=len(flat), minimum=minimum, window_fails=window_fails,
                         ours=OUR_SCRATCH[name], images=len(inputs), **nums))
        print(f"--- {name}: {len(flat)}-byte .tflite, TFLM outputs == {name}.json on {len(inputs)} images")
        print("    activation tensors (bytes, int8): " + activations(flat))
        print(f"    print_allocations() with a {LARGE_ARENA}-byte arena:")
        for line in report.strip().splitlines():
            print("    " + line.strip())
        print(flush=True)

    hdr = ("model", ".tflite B", "TFLM min arena B", "TFLM used (head+tail)", "our scratch B",
           "our scratch+in+out B")
    table = [hdr] + [(r["name"], str(r["tflite"]), str(r["minimum"]),
                      f"{r['total']} ({r['head']}+{r['tail']})", str(r["ours"]),
                      str(r["ours"] + sum(IO_BYTES))) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(hdr))]
    for k, row in enumerate(table):
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if k == 0:
            print("  ".join("-" * w for w in widths))
    print()
    for r in rows:
        print(f"{r['name']}: minimum arena {r['minimum']} B works, and every size in "
              f"[{r['minimum'] - 64}, {r['minimum'] - 1}] {'fails' if r['window_fails'] else 'does NOT all fail'}"
              f" (works = constructs, invokes, same outputs on {r['images']} fixture images)")
    print(f"TFLM's arena includes the int8 input ({IO_BYTES[0]} B) and output ({IO_BYTES[1]} B) tensors; "
          f"our INFER_SCRATCH_BYTES excludes them (forward_with takes caller buffers).")
    print(f"TFLM measured on this host ({os.uname().machine}, 64-bit pointers), kAllocationRecording config; "
          f"tflite-micro {g.versions()['tflite_micro']}, tensorflow {tf.__version__}.")
    print(f"elapsed {time.time() - t0:.1f} s in main() ({time.time() - T_START:.1f} s with the imports)")


if __name__ == "__main__":
    main()
