"""Reads the JSON lines of bench/compare.sh and prints the comparison table:
per metric and thread count, each system's median over rounds (min-max) and
our advantage (for latency: their time / ours; for rates: ours / theirs)."""

import collections
import json
import statistics
import sys

METRICS = [
    ("latency_us", "batch-1 latency (us, lower is better)", False),
    ("infer_img_s", "batch-256 inference (images/s)", True),
    ("train_ex_s", "training, batch 256, fwd+bwd+SGD (examples/s)", True),
]
ORDER = ["ours", "pytorch", "pytorch-tuned-malloc", "onnxruntime"]


def fmt(v, latency):
    return f"{v:,.1f}" if latency else f"{v:,.0f}"


def main(path):
    runs = collections.defaultdict(list)
    for line in open(path):
        line = line.strip()
        if line.startswith("{"):
            r = json.loads(line)
            runs[(r["metric"], r["threads"], r["system"])].append(r["value"])
    threads = sorted({t for (_, t, _) in runs})
    for metric, title, higher in METRICS:
        print(f"\n{title}\n")
        print("| threads | system | median (min-max) | ours is |")
        print("|---|---|---|---|")
        for t in threads:
            ours = runs.get((metric, t, "ours"))
            ours_med = statistics.median(ours) if ours else None
            for system in ORDER:
                values = runs.get((metric, t, system))
                if not values:
                    continue
                med = statistics.median(values)
                cell = f"{fmt(med, not higher)} ({fmt(min(values), not higher)}-{fmt(max(values), not higher)})"
                if system == "ours" or ours_med is None:
                    ratio = "-"
                else:
                    ratio = f"{(ours_med / med if higher else med / ours_med):.2f}x"
                print(f"| {t} | {system} | {cell} | {ratio} |")
        print()


if __name__ == "__main__":
    main(sys.argv[1])
