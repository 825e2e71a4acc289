#!/usr/bin/env bash
# Cortex-M firmware, built and run under QEMU, checked against the host.
#
#   bash tools/firmware.sh
#
# 1. Installs what is missing (as root, from Debian's packages): rustc-web,
#    cargo-web and rust-web-src (Rust 1.96 from bookworm-security; with
#    RUSTC_BOOTSTRAP=1 and -Zbuild-std=core it builds for any Cortex-M
#    target), binutils-arm-none-eabi (GNU ld: Debian has no rust-lld), and
#    bookworm's qemu-system-arm, unpacked into models/firmware/target/tools
#    with the libraries the machine lacks (installing it would remove the
#    machine's backported qemu-utils). Fast when everything is there.
# 2. Builds models/firmware (thumbv7em-none-eabihf) and tests/no-std for
#    thumbv6m-none-eabi (Cortex-M0: no atomics, no FPU).
# 3. Runs each firmware under QEMU with -icount shift=0 on a Cortex-M4F
#    (mps2-an386) and a Cortex-M7 (mps2-an500).
# 4. Checks with tests/examples/firmware_host.rs: the PyTorch fixture's
#    logits within 1e-5 relative or 1e-6 absolute of PyTorch's float64
#    outputs, classes equal to the host's, logits and training losses equal
#    to the host's std path within libm rounding, the same bits on both CPUs.
# 5. Prints flash, RAM and instructions per forward and per training step.
#
#   bash tools/firmware.sh --tools-only
#
# stops after step 1 (tools/microflow.sh uses it for the same toolchain and QEMU).
#
# Exits non-zero with a message naming the step if anything fails.
# FIRMWARE_HOST_TARGET_DIR sets the target dir of the host program (default:
# models/firmware/target/host; the main workspace's target/ reuses its build).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
fw=$root/models/firmware
target=$fw/target
tools=$target/tools
runs=$target/qemu
host_target=${FIRMWARE_HOST_TARGET_DIR:-$target/host}
start=$SECONDS
tools_only=
[[ ${1-} == --tools-only ]] && tools_only=1
# Rust 1.89 is the project's minimum; 1.96 is the version this was measured with.
min_rust=1.89

die() {
    printf '\ntools/firmware.sh: FAILED: %s\n' "$*" >&2
    exit 1
}
step() {
    printf '\n== %s (%d s so far)\n' "$*" "$((SECONDS - start))"
}
installed() {
    [[ $(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null) == "ii " ]]
}
apt_updated=
apt_update() {
    if [[ -z $apt_updated ]]; then
        apt-get update -q >/dev/null || die "apt-get update"
        apt_updated=1
    fi
}
version_ge() {
    [[ $(printf '%s\n%s\n' "$2" "$1" | sort -V | sed -n 1p) == "$2" ]]
}

# ---------------------------------------------------------------------------
step "tools"
missing=()
for pkg in rustc-web cargo-web rust-web-src binutils-arm-none-eabi; do
    installed "$pkg" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "installing ${missing[*]}"
    apt_update
    # --no-remove: never take a package off the machine (rustc-web conflicts
    # with Debian's own rustc package; that is reported, not resolved).
    apt-get install -y -q --no-install-recommends --no-remove "${missing[@]}" >/dev/null ||
        die "apt-get install ${missing[*]}"
fi

rustc_version=$(/usr/bin/rustc -V) || die "/usr/bin/rustc -V"
cargo_version=$(/usr/bin/cargo -V) || die "/usr/bin/cargo -V"
src_version=$(dpkg-query -W -f='${Version}' rust-web-src)
rv=$(awk '{print $2}' <<<"$rustc_version")
# rust-web-src is what -Zbuild-std compiles core from: it must be the
# compiler's own version (rustup's 1.95 with the 1.96 sources fails on lang
# items), and the security suite moves both, so check rather than assume.
[[ $src_version == "$rv"+* ]] ||
    die "rustc-web is $rv but rust-web-src is $src_version: they must be the same version (apt-get install rustc-web rust-web-src)"
[[ $(awk '{print $2}' <<<"$cargo_version") == "$rv" ]] || die "cargo-web ($cargo_version) and rustc-web ($rustc_version) differ"
version_ge "$rv" "$min_rust" || die "rustc-web is $rv; the project needs $min_rust or newer"
[[ -d /usr/lib/rustlib/src/rust/library/core ]] || die "rust-web-src is installed but /usr/lib/rustlib/src/rust/library/core is missing"
command -v arm-none-eabi-ld >/dev/null || die "arm-none-eabi-ld is missing (binutils-arm-none-eabi)"
echo "$rustc_version, $cargo_version, rust-web-src $src_version"
arm-none-eabi-ld --version | sed -n 1p

# QEMU: the machine's own qemu-system-arm if it has one with both boards,
# else bookworm's, unpacked into $tools/qemu (no package installed, none
# removed). Its libraries the machine lacks come along, found by following
# the Depends of each package that is not installed.
qemu_ok() {
    local boards
    boards=$("$@" -M help 2>/dev/null) || return 1
    grep -q '^mps2-an386 ' <<<"$boards" && grep -q '^mps2-an500 ' <<<"$boards"
}
qemu_libs=$tools/qemu/usr/lib/x86_64-linux-gnu:$tools/qemu/lib/x86_64-linux-gnu
if command -v qemu-system-arm >/dev/null && qemu_ok qemu-system-arm; then
    qemu=(qemu-system-arm)
else
    qemu=(env "LD_LIBRARY_PATH=$qemu_libs" "$tools/qemu/usr/bin/qemu-system-arm")
    if ! qemu_ok "${qemu[@]}"; then
        echo "unpacking qemu-system-arm into $tools/qemu"
        apt_update
        rm -rf "$tools/qemu" "$tools/debs"
        mkdir -p "$tools/debs"
        want=()
        seen=" "
        visit() {
            local pkg=$1 dep
            [[ $seen == *" $pkg "* ]] && return
            seen+="$pkg "
            # Firmware blobs and helpers that an MPS2 board without display needs none of.
            case $pkg in qemu-system-common | qemu-system-data) return ;; esac
            if [[ $pkg != qemu-system-arm ]] && installed "$pkg"; then return; fi
            want+=("$pkg")
            for dep in $(apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks \
                --no-replaces --no-enhances "$pkg" | awk '$1 ~ /^\|?(Pre)?Depends:$/ && $2 !~ /^</ {print $2}'); do
                visit "$dep"
            done
        }
        visit qemu-system-arm
        echo "downloading ${want[*]}"
        (cd "$tools/debs" && apt-get download -q -o APT::Sandbox::User=root "${want[@]}" >/dev/null) ||
            die "apt-get download ${want[*]}"
        for deb in "$tools/debs"/*.deb; do
            dpkg-deb -x "$deb" "$tools/qemu"
        done
        # The shared libraries' soname links (ldconfig makes them on install).
        for dir in "$tools/qemu/usr/lib/x86_64-linux-gnu" "$tools/qemu/lib/x86_64-linux-gnu"; do
            [[ -d $dir ]] && ldconfig -n "$dir"
        done
        unresolved=$(LD_LIBRARY_PATH=$qemu_libs ldd "$tools/qemu/usr/bin/qemu-system-arm" | grep 'not found' || true)
        [[ -z $unresolved ]] || die "qemu-system-arm in $tools/qemu lacks libraries: $unresolved"
        qemu_ok "${qemu[@]}" || die "qemu-system-arm in $tools/qemu does not run or lacks the mps2-an386/mps2-an500 boards"
    fi
fi
qemu_version=$("${qemu[@]}" --version | sed -n 1p)
echo "$qemu_version"
if [[ -n $tools_only ]]; then
    echo "tools/firmware.sh --tools-only: the toolchain and QEMU are ready"
    exit 0
fi

# ---------------------------------------------------------------------------
# Debian's toolchain for the embedded builds; nothing from the environment
# may replace the firmware's rustflags (linker script, linker flavour).
embedded_cargo() {
    env -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS -u CARGO_BUILD_TARGET \
        RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$target" /usr/bin/cargo "$@"
}

step "build models/firmware (thumbv7em-none-eabihf, Cortex-M4F and M7)"
# In its folder, so cargo reads its .cargo/config.toml (target, build-std, linker).
(cd "$fw" && embedded_cargo build --release --locked --manifest-path "$fw/Cargo.toml") || die "building models/firmware"
bins=(lenet lenet-train residual lenet-int8 residual-int8)
elf_dir=$target/thumbv7em-none-eabihf/release

step "build tests/no-std for thumbv6m-none-eabi (Cortex-M0)"
# Through the firmware's workspace (tests/no-std is one of its dependencies),
# so the proc-macro and its syn are the ones just built, not built again.
(cd "$fw" && embedded_cargo build --release --locked --manifest-path "$fw/Cargo.toml" -p cnn-no-std \
    --target thumbv6m-none-eabi) || die "tests/no-std does not build for thumbv6m-none-eabi (Cortex-M0)"

# ---------------------------------------------------------------------------
step "run under QEMU (-icount shift=0: the timer counts instructions)"
cpus=("m4f mps2-an386 cortex-m4" "m7 mps2-an500 cortex-m7")
rm -rf "$runs"
mkdir -p "$runs"
for cpu in "${cpus[@]}"; do
    read -r name machine core <<<"$cpu"
    for bin in "${bins[@]}"; do
        log=$runs/$name-$bin.out
        status=0
        timeout 120 "${qemu[@]}" -M "$machine" -cpu "$core" -icount shift=0 \
            -semihosting-config enable=on,target=native -display none -serial null -monitor none \
            -kernel "$elf_dir/$bin" </dev/null >"$log" 2>&1 || status=$?
        if ((status != 0)); then
            tail -5 "$log" >&2
            die "$bin on $name ($machine) exited with status $status (124: timed out); output in $log"
        fi
        echo "$bin on $name: $(grep -c . "$log") lines, exit status 0"
    done
done

step "check against PyTorch and the host (tests/examples/firmware_host.rs)"
# The main workspace's toolchain (rustup's), the std path. `--workspace`
# resolves features as `cargo test --workspace` does (the runtime's
# `default` feature included), so after the tests nothing is rebuilt.
cargo build --quiet --manifest-path "$root/Cargo.toml" --workspace --example firmware_host \
    --target-dir "$host_target" || die "building the host program tests/examples/firmware_host.rs"
"$host_target/debug/examples/firmware_host" "$runs"/*.out ||
    die "the firmware does not match the host or PyTorch (see the FAILED lines above)"

# ---------------------------------------------------------------------------
step "sizes and instruction counts"
# Sum of the given sections' sizes in an ELF.
section_sum() {
    local elf=$1
    shift
    arm-none-eabi-size -A "$elf" | awk -v want=" $* " 'index(want, " " $1 " ") {s += $2} END {print s + 0}'
}
# From a run's output: instructions per call of a kind, the stack's high-water mark.
per_call() {
    awk -v kind="$2" '$1 == "instr" && $2 == kind {printf "%d", $4 / $3; found = 1} END {if (!found) printf "-"}' "$1"
}
stack_max() {
    awk '$1 == "stack" && $3 > m {m = $3} END {print m + 0}' "$1"
}
calib=$(awk '$1 == "calib" {print $2 / $3; exit}' "$runs/m4f-lenet.out")
printf '\n%s; Debian %s; %s instructions per timer tick (checked in every run)\n\n' \
    "$qemu_version" "$rv" "$calib"
fmt='%-13s %-4s %10s %10s %8s %8s %9s %14s %16s\n'
printf "$fmt" firmware cpu "flash" ".text" ".rodata" "RAM" "stack" "instr/forward" "instr/train step"
for cpu in "${cpus[@]}"; do
    read -r name _ <<<"$cpu"
    for bin in "${bins[@]}"; do
        elf=$elf_dir/$bin
        log=$runs/$name-$bin.out
        text=$(section_sum "$elf" .text)
        rodata=$(section_sum "$elf" .rodata)
        statics=$(section_sum "$elf" .bss .data .uninit)
        stack=$(stack_max "$log")
        printf "$fmt" "$bin" "$name" "$((text + rodata))" "$text" "$rodata" "$((statics + stack))" "$stack" \
            "$(per_call "$log" forward)" "$(per_call "$log" train)"
    done
done
# The int8 LeNet's budget on the Cortex-M4F: 128 KiB of flash, 32 KiB of RAM.
elf=$elf_dir/lenet-int8
int8_flash=$(($(section_sum "$elf" .text .rodata) + 1024))
int8_ram=$(($(section_sum "$elf" .bss .data .uninit) + $(stack_max "$runs/m4f-lenet-int8.out")))
((int8_flash <= 128 * 1024 && int8_ram <= 32 * 1024)) ||
    die "the int8 LeNet firmware needs $int8_flash bytes of flash and $int8_ram of RAM: over its 128 KiB / 32 KiB budget"
echo
echo "int8 LeNet on the M4F: $int8_flash bytes of flash (vector table included), $int8_ram of RAM: within 128 KiB / 32 KiB"
cat <<EOF

flash = .text + .rodata (plus the 1,024-byte vector table); RAM = .bss + .data
+ the stack's high-water mark (stack column: painted, then scanned, in every run).
instructions: QEMU's virtual clock with -icount shift=0 read through the CMSDK
timer 0 (25 MHz: 40 instructions a tick), averaged over the calls of each run.

tools/firmware.sh: all checks passed in $((SECONDS - start)) s
EOF
