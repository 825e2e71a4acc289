#!/usr/bin/env bash
# Side-by-side benchmark of the generated LeNet against PyTorch (default and
# with glibc malloc tuned) and onnxruntime: same weights, same inputs, each
# measurement in a fresh process, systems interleaved, several rounds, at 1
# and 2 threads. Prints a Markdown table (median, min-max, ratio vs ours).
#
#   bench/compare.sh [ROUNDS] [SECONDS]      (defaults: 5 rounds, 2 s per metric)
#
# Needs python3 (>= 3.9) and cargo; creates or reuses bench/.venv (with the
# system site packages, so an installed torch is reused) and installs torch,
# numpy, onnx, onnxruntime there if missing. THREADS="1 2" overrides the
# thread counts. OPENBLAS_* variables are passed through untouched.
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
if ! "$PY" -c "import torch, numpy, onnx, onnxruntime, onnxscript" 2>/dev/null; then
    "$PY" -m pip install --quiet torch numpy onnx onnxruntime onnxscript
fi

cargo build --release --quiet -p models --example bench_lenet
OURS=target/release/examples/bench_lenet

"$PY" bench/lenet.py prepare "$WORK"
"$OURS" --weights "$WORK/lenet.safetensors" --input "$WORK/input.f32" \
    --logits "$WORK/ours_logits.f32" --only none
"$PY" bench/lenet.py check "$WORK" "$WORK/ours_logits.f32"

TUNED=(env MALLOC_MMAP_THRESHOLD_=4000000000 MALLOC_TRIM_THRESHOLD_=4000000000 MALLOC_TOP_PAD_=536870912)
RESULTS="$WORK/results.jsonl"
: > "$RESULTS"
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for round in $(seq 1 "$ROUNDS"); do
    for t in $THREADS; do
        echo "round $round/$ROUNDS, $t thread(s)" >&2
        # Every system in its own fresh process, interleaved within a round.
        OMP_NUM_THREADS=$t "$OURS" --threads "$t" --seconds "$SECONDS_PER" \
            --weights "$WORK/lenet.safetensors" --input "$WORK/input.f32" >> "$RESULTS"
        OMP_NUM_THREADS=$t "$PY" bench/lenet.py torch "$WORK" --threads "$t" --seconds "$SECONDS_PER" >> "$RESULTS"
        OMP_NUM_THREADS=$t "${TUNED[@]}" "$PY" bench/lenet.py torch "$WORK" --threads "$t" \
            --seconds "$SECONDS_PER" --system pytorch-tuned-malloc >> "$RESULTS"
        OMP_NUM_THREADS=$t "$PY" bench/lenet.py ort "$WORK" --threads "$t" --seconds "$SECONDS_PER" >> "$RESULTS"
    done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

echo
echo "$(date -u +%Y-%m-%d), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) ($(nproc) cores)," \
    "$(rustc --version | cut -d' ' -f1-2), torch $("$PY" -c 'import torch; print(torch.__version__)')," \
    "onnxruntime $("$PY" -c 'import onnxruntime; print(onnxruntime.__version__)'); $ROUNDS rounds of fresh processes"
"$PY" bench/table.py "$RESULTS"
