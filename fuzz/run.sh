#!/usr/bin/env bash
# Builds every fuzz target (the loaders and the DSL) and runs each for SECONDS (default
# 60), one after another, on one core: bash fuzz/run.sh [SECONDS]
#
# New inputs go to fuzz/target/corpus/<target> (git-ignored); the committed
# corpus in fuzz/corpus/<target> (seeds and a minimised set of earlier finds)
# is only read. A crash stops the script; its
# input is in fuzz/artifacts/<target>/ and `cargo fuzz run <target> <file>`
# replays it.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
targets=(idx_raw idx_gzip weights_json weights_safetensors dsl)

if ! command -v cargo-fuzz >/dev/null; then
    cargo install --locked cargo-fuzz
fi
# cargo-fuzz passes nightly-only flags (-Z, -C passes=...); this lets a
# stable toolchain accept them.
export RUSTC_BOOTSTRAP=1
# AddressSanitizer if the toolchain ships its runtime, else none (the
# targets' own allocator still aborts on oversized allocations).
sysroot=$(rustc --print sysroot)
host=$(rustc -vV | sed -n 's/^host: //p')
if ls "$sysroot/lib/rustlib/$host/lib/"librustc-*_rt.asan.a >/dev/null 2>&1; then
    sanitizer=${FUZZ_SANITIZER:-address}
else
    sanitizer=${FUZZ_SANITIZER:-none}
fi

cargo fuzz build --fuzz-dir fuzz --sanitizer "$sanitizer"

logs=fuzz/target/logs
mkdir -p "$logs"
for target in "${targets[@]}"; do
    work=fuzz/target/corpus/$target
    mkdir -p "$work"
    echo "== $target: $seconds s (sanitizer: $sanitizer)"
    # -jobs=1 -workers=1: one process on one core; libFuzzer then writes its
    # output to fuzz-0.log in the working directory.
    status=0
    (cd "$logs" && cargo fuzz run --fuzz-dir ../.. --sanitizer "$sanitizer" "$target" \
        "../corpus/$target" "../../corpus/$target" -- \
        -max_total_time="$seconds" -jobs=1 -workers=1 -rss_limit_mb=2048 \
        -print_final_stats=1) >"$logs/$target.cargo.log" 2>&1 || status=$?
    log=$logs/$target.log
    mv "$logs/fuzz-0.log" "$log" 2>/dev/null || cp "$logs/$target.cargo.log" "$log"
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    secs=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    echo "   ${runs:-?} executions (${secs:-?}/s), corpus $(ls "$work" | wc -l) new + $(ls "fuzz/corpus/$target" | wc -l) committed"
    if ((status != 0)); then
        tail -40 "$log"
        echo "fuzz target $target failed (exit $status); see $log and fuzz/artifacts/$target/" >&2
        exit 1
    fi
done
