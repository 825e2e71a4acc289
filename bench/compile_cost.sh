#!/usr/bin/env bash
# Compile cost of the generated networks. From a clean target directory:
#   1. `cnn-runtime` alone (with its `cnn-macros` proc-macro crate and the
#      parsers it needs: syn, quote, proc-macro2);
#   2. then, on top of it, the `models` library without the CLI feature:
#      every net of the zoo (the float nets, their int8 twins, ResNet18),
#      i.e. macro expansion plus compiling the generated code;
#   3. then the whole `cnn` binary (clap, indicatif, plotters);
# and finally the `models` library crate by itself (touched and rebuilt).
#
#   bench/compile_cost.sh [ROUNDS]     (default 1; each round starts clean)
#
# Uses its own target directory (target/compile-cost), so the normal one is
# untouched.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-1}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/compile-cost}
secs() {
    local s e
    s=$(date +%s.%N)
    "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; exit 1; }
    e=$(date +%s.%N)
    echo "$e - $s" | bc
}
echo >&2 "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores;" \
    "$(rustc --version | cut -d' ' -f1-2); load: $(cut -d' ' -f1-3 /proc/loadavg)"
cargo fetch --quiet
for round in $(seq 1 "$ROUNDS"); do
    rm -rf "$CARGO_TARGET_DIR"
    # The feature set `models` asks for (std without the `default` marker),
    # so step 2 reuses this build instead of compiling the runtime again.
    rt=$(secs cargo build --release -p cnn-runtime --no-default-features --features std)
    nets=$(secs cargo build --release -p models --lib --no-default-features)
    bin=$(secs cargo build --release -p models)
    touch models/src/lib.rs
    own=$(secs cargo build --release -p models --lib --no-default-features)
    printf 'round %s: cnn-runtime alone %.1f s; + the zoo nets (models lib, no CLI) %.1f s;' "$round" "$rt" "$nets"
    printf ' + cnn binary %.1f s; models lib crate by itself %.1f s\n' "$bin" "$own"
done
