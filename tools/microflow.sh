#!/usr/bin/env bash
# cnn-aot beside MicroFlow and TensorFlow Lite Micro: the same int8 model,
# the same inputs, the same emulated Cortex-M4F.
#
#   bash tools/microflow.sh
#
# The model is tests/fixtures/int8/lenet_relu_avg.tflite (LeNet with ReLU
# and average pooling: MicroFlow has neither max pooling nor a sigmoid),
# made by tools/gen_int8_fixtures.py with TensorFlow Lite's converter; the
# fixture beside it holds TFLite Micro's int8 outputs.
#
# 1. Installs what is missing with `bash tools/firmware.sh --tools-only`
#    (as root, from Debian's packages: rustc-web 1.96 with rust-web-src for
#    -Zbuild-std=core, arm-none-eabi binutils, QEMU 7.2 unpacked under
#    models/firmware/target/tools).
# 2. Builds tools/microflow (its own workspace and target dir) for
#    thumbv7em-none-eabihf: `lenet-microflow` (MicroFlow 0.1.3's #[model]
#    compiles the .tflite) and `lenet-cnn` (cnn_net! compiles the same
#    model's parameters, tests/fixtures/int8/lenet_relu_avg.safetensors).
# 3. Runs both under QEMU on a Cortex-M4F (-M mps2-an386 -cpu cortex-m4,
#    -icount shift=0): each classifies the fixture's first 8 int8 inputs.
# 4. Prints flash (.text + .rodata), RAM (.bss + .data + the stack's painted
#    high-water mark), instructions per inference, and how many of the 8
#    outputs equal TFLite Micro's bit for bit (and the largest difference
#    in int8 steps); then TFLite Micro's smallest tensor arena for the same
#    model, measured by tools/tflm_arena.py when its Python packages are
#    installed (pip install -r tools/requirements-int8.txt), else the
#    number measured when this script was written.
#
# Fails with a message naming the step if a step fails, or if cnn-aot's
# outputs are not TFLite Micro's on all 8 inputs. MicroFlow's may differ
# (it requantizes in f32, TFLite Micro in fixed point): reported, not failed.
# Not run by CI. From nothing: the toolchain's install, then about 5 minutes
# of build on two cores.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bench=$root/tools/microflow
target=$bench/target
elf_dir=$target/thumbv7em-none-eabihf/release
runs=$target/qemu
fixture=$root/tests/fixtures/int8/lenet_relu_avg.json
tools=$root/models/firmware/target/tools
bins=(lenet-cnn lenet-microflow)
images=8
# TFLite Micro's smallest arena for the model and the planned (head) part of
# it, from `python3 tools/tflm_arena.py --only lenet_relu_avg` (x86_64,
# tflite-micro 0.dev20261023182759, 2026-11-30): printed when Python cannot
# measure them again.
committed_arena=8520
committed_arena_head=5888
start=$SECONDS

die() {
    printf '\ntools/microflow.sh: FAILED: %s\n' "$*" >&2
    exit 1
}
step() {
    printf '\n== %s (%d s so far)\n' "$*" "$((SECONDS - start))"
}

# ---------------------------------------------------------------------------
step "tools (bash tools/firmware.sh --tools-only)"
bash "$root/tools/firmware.sh" --tools-only || die "installing the toolchain and QEMU (tools/firmware.sh --tools-only)"
# The QEMU firmware.sh chose: the machine's if it has the MPS2 boards, else its unpacked copy.
qemu_ok() {
    "$@" -M help 2>/dev/null | grep -q '^mps2-an386 '
}
if command -v qemu-system-arm >/dev/null && qemu_ok qemu-system-arm; then
    qemu=(qemu-system-arm)
else
    qemu=(env "LD_LIBRARY_PATH=$tools/qemu/usr/lib/x86_64-linux-gnu:$tools/qemu/lib/x86_64-linux-gnu"
        "$tools/qemu/usr/bin/qemu-system-arm")
    qemu_ok "${qemu[@]}" || die "no qemu-system-arm with the mps2-an386 board (tools/firmware.sh --tools-only should have unpacked one into $tools/qemu)"
fi
qemu_version=$("${qemu[@]}" --version | sed -n 1p)
rustc_version=$(/usr/bin/rustc -V)
[[ -f $fixture ]] || die "$fixture is missing"
[[ -f $root/tests/fixtures/int8/lenet_relu_avg.tflite ]] || die "tests/fixtures/int8/lenet_relu_avg.tflite is missing"

# ---------------------------------------------------------------------------
step "build tools/microflow (thumbv7em-none-eabihf)"
# In its folder, so cargo reads its .cargo/config.toml (target, build-std,
# linker) and rustc runs there (MicroFlow's #[model] reads the .tflite
# relative to that directory); Debian's toolchain, as tools/firmware.sh.
(cd "$bench" && env -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS -u CARGO_BUILD_TARGET \
    RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$target" \
    /usr/bin/cargo build --release --locked --manifest-path "$bench/Cargo.toml") ||
    die "building tools/microflow"
microflow_version=$(awk '$1 == "name" && $3 == "\"microflow\"" {getline; print $3; exit}' "$bench/Cargo.lock" | tr -d '"')

# ---------------------------------------------------------------------------
step "run under QEMU (mps2-an386, Cortex-M4F, -icount shift=0)"
rm -rf "$runs"
mkdir -p "$runs"
for bin in "${bins[@]}"; do
    log=$runs/$bin.out
    status=0
    timeout 300 "${qemu[@]}" -M mps2-an386 -cpu cortex-m4 -icount shift=0 \
        -semihosting-config enable=on,target=native -display none -serial null -monitor none \
        -kernel "$elf_dir/$bin" </dev/null >"$log" 2>&1 || status=$?
    if ((status != 0)) || [[ $(tail -1 "$log") != ok ]]; then
        tail -5 "$log" >&2
        die "$bin exited with status $status (124: timed out) or without its final 'ok'; output in $log"
    fi
    [[ $(grep -c '^int8 ' "$log") == "$images" ]] || die "$bin printed no $images int8 outputs; output in $log"
    echo "$bin: exit status 0, output in ${log#"$root"/}"
done

# ---------------------------------------------------------------------------
step "compare with TensorFlow Lite Micro's outputs ($(basename "$fixture"))"
# The fixture's images in order; each one's TFLM output is on one line,
# `"output": [a,b,...]` (tools/gen_int8_fixtures.py writes lists of numbers
# on one line).
tflm=$runs/tflm.txt
awk '/^ *"output": \[/ {sub(/^ *"output": \[/, ""); sub(/\],?$/, ""); gsub(/,/, " "); print}' "$fixture" |
    head -n "$images" >"$tflm"
[[ $(wc -l <"$tflm") == "$images" ]] || die "fewer than $images outputs in $fixture"
awk 'NF != 10 {exit 1}' "$tflm" || die "an output in $fixture does not have 10 values"
# Prints each input whose outputs differ from TFLM's, then "SAME MAXDIFF":
# the inputs whose 10 outputs all equal TFLM's, the largest |difference|.
agreement() {
    awk 'NR == FNR {tflm[FNR - 1] = $0; next}
        $1 == "int8" {
            split(tflm[$2], want, " ")
            same = 1
            for (k = 1; k <= 10; k++) {
                d = $(k + 4) - want[k]
                if (d < 0) d = -d
                if (d) same = 0
                if (d > max) max = d
            }
            all += same
            if (!same) {
                printf "    input %d:", $2
                for (k = 5; k <= NF; k++) printf " %s", $k
                printf "\n    TFLM:    %s\n", tflm[$2]
            }
        }
        END {print all + 0, max + 0}' "$tflm" "$1"
}
declare -A same maxdiff
for bin in "${bins[@]}"; do
    result=$(agreement "$runs/$bin.out")
    read -r same[$bin] maxdiff[$bin] <<<"$(tail -1 <<<"$result")"
    echo "$bin: ${same[$bin]} of $images outputs equal TFLite Micro's (largest difference: ${maxdiff[$bin]} int8 steps)"
    sed '$d' <<<"$result"
done
[[ ${same[lenet-cnn]} == "$images" ]] || die "cnn-aot's outputs differ from TensorFlow Lite Micro's (see above)"

# ---------------------------------------------------------------------------
step "TensorFlow Lite Micro's tensor arena for the same model"
arena=$committed_arena
arena_head=$committed_arena_head
arena_source="committed: measured 2026-11-30 by tools/tflm_arena.py (x86_64, tflite-micro 0.dev20261023182759)"
if command -v python3 >/dev/null && python3 -c 'import tflite_micro, tensorflow, torch' 2>/dev/null; then
    arena_log=$runs/tflm_arena.txt
    if nice -n 10 python3 "$root/tools/tflm_arena.py" --only lenet_relu_avg >"$arena_log" 2>"$runs/tflm_arena.err"; then
        arena=$(awk '/^lenet_relu_avg: minimum arena/ {print $4; exit}' "$arena_log")
        arena_head=$(awk '/Arena allocation head/ {print $(NF - 1); exit}' "$arena_log")
        [[ -n $arena && -n $arena_head ]] || die "could not read the arena from $arena_log"
        arena_source="measured now by tools/tflm_arena.py on $(uname -m), $(grep -o 'tflite-micro [^,]*' "$arena_log")"
    else
        tail -5 "$runs/tflm_arena.err" >&2
        die "python3 tools/tflm_arena.py --only lenet_relu_avg failed (log in $runs)"
    fi
else
    echo "python3 with tflite_micro, tensorflow and torch is not installed (pip install -r tools/requirements-int8.txt): the committed numbers"
fi
echo "$arena_source"

# ---------------------------------------------------------------------------
step "sizes and instruction counts"
section_sum() {
    local elf=$1
    shift
    arm-none-eabi-size -A "$elf" | awk -v want=" $* " 'index(want, " " $1 " ") {s += $2} END {print s + 0}'
}
calib=$(awk '$1 == "calib" {print $2 / $3; exit}' "$runs/lenet-cnn.out")
scratch=$(awk '$1 == "scratch" {print $2; exit}' "$runs/lenet-cnn.out")
[[ -n $scratch ]] || die "lenet-cnn printed no scratch line"
printf '\n%s; %s; MicroFlow %s; %s instructions per timer tick (checked in every run)\n\n' \
    "$qemu_version" "$rustc_version" "$microflow_version" "$calib"
fmt='%-16s %8s %8s %8s %7s %7s %7s %14s %18s\n'
printf "$fmt" "engine" "flash" ".text" ".rodata" "RAM" ".bss" "stack" "instr/inference" "equal to TFLM"
for bin in "${bins[@]}"; do
    elf=$elf_dir/$bin
    log=$runs/$bin.out
    text=$(section_sum "$elf" .text)
    rodata=$(section_sum "$elf" .rodata)
    statics=$(section_sum "$elf" .bss .data .uninit)
    stack=$(awk '$1 == "stack" {print $3; exit}' "$log")
    per=$(awk '$1 == "instr" && $2 == "forward" {printf "%d", $4 / $3}' "$log")
    case $bin in lenet-cnn) engine="cnn-aot" ;; lenet-microflow) engine="MicroFlow $microflow_version" ;; esac
    printf "$fmt" "$engine" "$((text + rodata))" "$text" "$rodata" "$((statics + stack))" "$statics" "$stack" \
        "$per" "${same[$bin]}/$images (max diff ${maxdiff[$bin]})"
done
cat <<EOF

TensorFlow Lite Micro, same .tflite: smallest tensor arena $arena bytes, of which
$arena_head are its planned activations (the head; the tail is TFLM's persistent
structs, with 64-bit pointers on this host); $arena_source.
cnn-aot's int8 scratch (INFER_SCRATCH_BYTES, in .bss above): $scratch bytes; its input
(784 B, .bss) and output (10 B, stack) are the caller's.

flash = .text + .rodata (the 1,024-byte vector table left out; .rodata holds the
8 inputs, 6,272 bytes, in both); RAM = .bss + .data + the stack's high-water mark
(painted, then scanned). instructions: QEMU's virtual clock with -icount shift=0
read through the CMSDK timer 0 (40 instructions a tick), averaged over 8 inferences.
MicroFlow's tensors are values on the stack (its .bss is semihosting's 8 bytes).

tools/microflow.sh: done in $((SECONDS - start)) s
EOF
