#!/usr/bin/env bash
# bench/compare.sh for the zoo's graph nets: our generated ResNet and
# MobileNetSmall (models/examples/bench_net.rs) against PyTorch (default and
# with glibc malloc tuned), onnxruntime (and the cost of its Python binding),
# LiteRT with its XNNPACK delegate, and OpenVINO (Python API, and the batch-1
# latency of its C++ benchmark_app). Per net, bench/zoo.py writes the weights
# (Xavier init, every batch norm with non-trivial statistics), 256
# Fashion-MNIST test images, the ONNX export and the tf.keras-rebuilt TFLite
# models; our logits and every engine's are checked against PyTorch's before
# anything is timed; then rounds of fresh processes, systems interleaved, at
# 1 and 2 threads. Prints a Markdown table per net (median, min-max, and the
# ratio vs ours of the same round, over rounds).
#
#   bench/zoo.sh [ROUNDS] [SECONDS]      (defaults: 5 rounds, 2 s per metric)
#
# NETS="resnet mobilenet-small" and THREADS="1 2" override the nets and the
# thread counts; BENCH_DIR (default target/bench-zoo) the working directory.
# Python environment as bench/compare.sh: bench/.venv, created with the
# system site packages when missing, bench/requirements.txt installed there
# when any pinned version is not the one installed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-5}
SECONDS_PER=${2:-2}
NETS=${NETS:-"resnet mobilenet-small"}
THREADS=${THREADS:-"1 2"}
WORK=${BENCH_DIR:-target/bench-zoo}
mkdir -p "$WORK"

source bench/common.sh

cargo build --release --quiet -p models --example bench_net
OURS=target/release/examples/bench_net

RESULTS="$WORK/results.jsonl"
: > "$RESULTS"

machine_line >&2
for net in $NETS; do
    WEIGHTS=(--weights "$WORK/$net.safetensors" --input "$WORK/${net}_input.f32")
    "$PY" bench/zoo.py prepare "$WORK" --net "$net"
    "$OURS" --net "$net" "${WEIGHTS[@]}" --logits "$WORK/${net}_ours_logits.f32" --only none
    "$PY" bench/zoo.py check "$WORK" --net "$net" "$WORK/${net}_ours_logits.f32"
    for round in $(seq 1 "$ROUNDS"); do
        for t in $THREADS; do
            echo "$net: round $round/$ROUNDS, $t thread(s)" >&2
            export OMP_NUM_THREADS=$t
            ARGS=("$WORK" --net "$net" --threads "$t" --seconds "$SECONDS_PER")
            # Every system in its own fresh process, interleaved within a round.
            record "$round" "$OURS" --net "$net" --threads "$t" --seconds "$SECONDS_PER" "${WEIGHTS[@]}"
            record "$round" "$PY" bench/zoo.py torch "${ARGS[@]}"
            record "$round" "${TUNED[@]}" "$PY" bench/zoo.py torch "${ARGS[@]}" --system pytorch-tuned-malloc
            record "$round" "$PY" bench/zoo.py ort "${ARGS[@]}"
            record "$round" "$PY" bench/zoo.py ort-binding "${ARGS[@]}"
            record "$round" "$PY" bench/zoo.py litert "${ARGS[@]}"
            record "$round" "$PY" bench/zoo.py openvino "${ARGS[@]}"
            record "$round" "$PY" bench/zoo.py openvino-app "${ARGS[@]}"
        done
    done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

echo
header "$ROUNDS" "$SECONDS_PER"
"$PY" bench/table.py "$RESULTS"
