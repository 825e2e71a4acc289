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
WORK=${BENCH_DIR:-target/bench-compare}
mkdir -p "$WORK"

source bench/common.sh

cargo build --release --quiet -p models --example bench_net
OURS=(target/release/examples/bench_net --net lenet)

"$PY" bench/lenet.py prepare "$WORK"
"$PY" bench/peers.py prepare "$WORK"
"${OURS[@]}" --weights "$WORK/lenet.safetensors" --input "$WORK/input.f32" \
    --logits "$WORK/ours_logits.f32" --only none
"$PY" bench/lenet.py check "$WORK" "$WORK/ours_logits.f32"

RESULTS="$WORK/results.jsonl"
: > "$RESULTS"

machine_line >&2
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

echo
header "$ROUNDS" "$SECONDS_PER"
"$PY" bench/table.py "$RESULTS"
