"""Reads the JSON lines of bench/compare.sh or bench/zoo.sh and prints the
comparison table: per metric and thread count, each system's median over
rounds (min-max), and how ours compares: within each round, the engine's
figure against ours of that same round (for latency: their time / ours; for
rates: ours / theirs), then the median (min-max) of those ratios over rounds.
Lines with a "net" field (bench/zoo.sh's) get one set of tables per net,
under its name; their training is with Adam, LeNet's (no "net" field) with
SGD.

Besides the measured systems, one row is derived within each round:
onnxruntime-engine, onnxruntime minus onnxruntime-binding (its per-call cost,
timed on a one-op Identity model), an estimate of onnxruntime's time spent in
the graph itself."""

import collections
import json
import statistics
import sys

METRICS = [
    ("latency_us", "batch-1 latency (us, lower is better)", False),
    ("infer_img_s", "batch-256 inference (images/s)", True),
    ("train_ex_s", "training, batch 256, fwd+bwd+{optimizer} (examples/s)", True),
]
ORDER = [
    "ours", "ours-unpacked", "ours-no-heap", "pytorch", "pytorch-tuned-malloc", "onnxruntime", "onnxruntime-binding", "onnxruntime-engine",
    "litert-xnnpack", "openvino", "openvino-benchmark_app",
]
# Rows that are not an engine running the net, so get no ratio to ours.
NOT_COMPARED = {"ours", "ours-unpacked", "ours-no-heap", "onnxruntime-binding"}
NOTES = """\
ours: train::Packed::forward_batch (the batched kernels, their workspace kept by the thread, on weights packed once as
the engines pack theirs at load: batch norms folded, Winograd filters transformed); ours-unpacked: forward_batch, which
folds and transforms on every call; ours-no-heap: the same image through forward_with (no heap: the scratch the caller gives, each conv's kernel scratch on the stack, up to
192 KiB, and no batch-norm folding).
onnxruntime-binding: a one-op Identity ONNX model with LeNet's input, through the same onnxruntime session setup and
call (the cost of the Python binding; its output is the whole input, so at batch 256 it overstates that cost).
onnxruntime-engine: onnxruntime minus onnxruntime-binding, per round. litert-xnnpack: LiteRT's Python interpreter with
its default XNNPACK delegate (set_tensor + invoke + get_tensor). openvino: CPU plugin, fp32, latency hint, one stream,
Python synchronous infer. openvino-benchmark_app: the same model and configuration, the median of the per-inference
latencies OpenVINO's benchmark_app times in C++ (no Python call)."""


def fmt(v, latency):
    return f"{v:,.1f}" if latency else f"{v:,.0f}"


def spread(values, show):
    """'median (min-max)' of values, each formatted by show."""
    return f"{show(statistics.median(values))} ({show(min(values))}-{show(max(values))})"


def load(path):
    """{(net, metric, threads, system): {round: value}} from the JSON lines
    in path, in the order of the lines; net is None for LeNet's (lines
    without one, or ours with "lenet")."""
    runs = collections.defaultdict(dict)
    for line in open(path):
        line = line.strip()
        if line.startswith("{"):
            r = json.loads(line)
            # bench/compare.sh's LeNet: ours says "lenet", the Python engines nothing.
            net = None if r.get("net") == "lenet" else r.get("net")
            runs[(net, r["metric"], r["threads"], r["system"])][r["round"]] = r["value"]
    return runs


def add_onnxruntime_engine(runs):
    """Adds onnxruntime-engine: per round, onnxruntime's time per image less
    onnxruntime-binding's, in the metric's unit."""
    for (net, metric, threads, system), raw in list(runs.items()):
        binding = runs.get((net, metric, threads, "onnxruntime-binding"))
        if system != "onnxruntime" or not binding:
            continue
        engine = runs[(net, metric, threads, "onnxruntime-engine")]
        for rnd in raw.keys() & binding.keys():
            if metric == "latency_us":
                engine[rnd] = raw[rnd] - binding[rnd]
            else:
                engine[rnd] = 1 / (1 / raw[rnd] - 1 / binding[rnd])


def print_tables(runs, net):
    """The tables of one net (None: LeNet, bench/compare.sh's)."""
    threads = sorted({t for (n, _, t, _) in runs if n == net})
    for metric, title, higher in METRICS:
        print(f"\n{title.format(optimizer='SGD' if net is None else 'Adam')}\n")
        print("| threads | system | median (min-max) | ours is (per round: median, min-max) |")
        print("|---|---|---|---|")
        for t in threads:
            ours = runs.get((net, metric, t, "ours"), {})
            for system in ORDER:
                values = runs.get((net, metric, t, system))
                if not values:
                    continue
                cell = spread(list(values.values()), lambda v: fmt(v, not higher))
                rounds = values.keys() & ours.keys()
                if system in NOT_COMPARED or not rounds:
                    ratio = "-"
                else:
                    ratios = [ours[r] / values[r] if higher else values[r] / ours[r] for r in rounds]
                    ratio = spread(ratios, lambda v: f"{v:.2f}x")
                print(f"| {t} | {system} | {cell} | {ratio} |")
        print()


def main(path):
    runs = load(path)
    add_onnxruntime_engine(runs)
    for net in dict.fromkeys(net for (net, *_) in runs):  # in the order of the lines
        if net is not None:
            print(f"\n### {net}")
        print_tables(runs, net)
    print(NOTES)


if __name__ == "__main__":
    main(sys.argv[1])
