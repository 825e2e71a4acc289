#!/usr/bin/env bash
# Side-by-side benchmark of the generated LeNet against PyTorch (default and
# with glibc malloc tuned), onnxruntime (and the cost of its Python binding,
# timed on a one-op Identity model), LiteRT with its XNNPACK delegate, and
# OpenVINO (Python API, and the batch-1 latency of its C++ benchmark_app):
# same weights, same inputs, every engine's logits checked against PyTorch's
# before it is timed, each measurement in a fresh process, systems
# interleaved, several rounds, at 1 and 2 threads. Prints a Markdown table
# (median, min-max, and the ratio vs ours of the same round, over rounds).
#
#   bench/compare.sh [ROUNDS] [SECONDS]      (defaults: 5 rounds, 2 s per metric)
#
# Needs python3 (>= 3.11, for the pinned packages) and cargo; creates or
# reuses bench/.venv (with the system site packages, so an installed torch or
# tensorflow-cpu is reused) and installs there, with pip, bench/requirements.txt
# (pinned versions) when any of it is missing or at another version.
# THREADS="1 2" overrides the thread counts. OPENBLAS_* variables are passed
# through untouched.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-5}
SECONDS_PER=${2:-2}
THREADS=${THREADS:-"1 2"}
VENV=bench/.venv
WORK=${BENCH_DIR:-target/bench-compare}
mkdir -p "$WORK"

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv --system-site-packages "$VENV"
fi
PY="$VENV/bin/python"
# pip takes seconds even to find everything installed: ask it only when a
# pinned version is not the one installed.
if ! "$PY" -c '
import sys
from importlib.metadata import version
for line in open(sys.argv[1]):
    name, _, pinned = line.split("#")[0].strip().partition("==")
    if name and version(name).split("+")[0] != pinned:
        sys.exit(1)
' bench/requirements.txt 2>/dev/null; then
    "$PY" -m pip install --quiet --disable-pip-version-check -r bench/requirements.txt
fi

cargo build --release --quiet -p models --example bench_net
OURS=(target/release/examples/bench_net --net lenet)

"$PY" bench/lenet.py prepare "$WORK"
"$PY" bench/peers.py prepare "$WORK"
"${OURS[@]}" --weights "$WORK/lenet.safetensors" --input "$WORK/input.f32" \
    --logits "$WORK/ours_logits.f32" --only none
"$PY" bench/lenet.py check "$WORK" "$WORK/ours_logits.f32"

TUNED=(env MALLOC_MMAP_THRESHOLD_=4000000000 MALLOC_TRIM_THRESHOLD_=4000000000 MALLOC_TOP_PAD_=536870912)
RESULTS="$WORK/results.jsonl"
: > "$RESULTS"

# record ROUND COMMAND...: runs COMMAND and appends its JSON lines to
# $RESULTS, each with "round": ROUND (bench/table.py compares each engine
# with ours of the same round).
record() {
    local round=$1
    shift
    "$@" | sed "s/}\$/,\"round\":$round}/" >> "$RESULTS"
}

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for round in $(seq 1 "$ROUNDS"); do
    for t in $THREADS; do
        echo "round $round/$ROUNDS, $t thread(s)" >&2
        export OMP_NUM_THREADS=$t
        ARGS=("$WORK" --threads "$t" --seconds "$SECONDS_PER")
        # Every system in its own fresh process, interleaved within a round.
        record "$round" "${OURS[@]}" --threads "$t" --seconds "$SECONDS_PER" \
            --weights "$WORK/lenet.safetensors" --input "$WORK/input.f32"
        record "$round" "$PY" bench/lenet.py torch "${ARGS[@]}"
        record "$round" "${TUNED[@]}" "$PY" bench/lenet.py torch "${ARGS[@]}" --system pytorch-tuned-malloc
        record "$round" "$PY" bench/lenet.py ort "${ARGS[@]}"
        record "$round" "$PY" bench/lenet.py ort-binding "${ARGS[@]}"
        record "$round" "$PY" bench/peers.py litert "${ARGS[@]}"
        record "$round" "$PY" bench/peers.py openvino "${ARGS[@]}"
        record "$round" "$PY" bench/peers.py openvino-app "${ARGS[@]}"
    done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

VERSIONS=$("$PY" -c 'from importlib.metadata import version
print(", ".join(f"{p} {version(p)}" for p in ["torch", "onnxruntime", "ai-edge-litert", "openvino", "tensorflow-cpu"]))')
echo
echo "$(date -u +%Y-%m-%d), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) ($(nproc) cores)," \
    "$(rustc --version | cut -d' ' -f1-2), $VERSIONS; $ROUNDS rounds of fresh processes, $SECONDS_PER s per metric"
"$PY" bench/table.py "$RESULTS"
