# Sourced by bench/compare.sh and bench/zoo.sh (from the repository root):
# the Python environment and the result recording both share.
#
# PY: bench/.venv's python. The venv is created with the system site
# packages (so an installed torch or tensorflow-cpu is reused) when missing,
# and bench/requirements.txt (pinned versions) installed there with pip when
# any of it is missing or at another version.
VENV=bench/.venv
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

# glibc malloc tuned as PyTorch's performance guide suggests.
TUNED=(env MALLOC_MMAP_THRESHOLD_=4000000000 MALLOC_TRIM_THRESHOLD_=4000000000 MALLOC_TOP_PAD_=536870912)

# record ROUND COMMAND...: runs COMMAND and appends its JSON lines to
# $RESULTS, each with "round": ROUND (bench/table.py compares each engine
# with ours of the same round).
record() {
    local round=$1
    shift
    "$@" | sed "s/}\$/,\"round\":$round}/" >> "$RESULTS"
}

# machine_line: the CPU, its core count and the load average, for stderr.
machine_line() {
    echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg)"
}

# header ROUNDS SECONDS: the table's first line: date, CPU, rustc and the
# Python packages' versions.
header() {
    local versions
    versions=$("$PY" -c 'from importlib.metadata import version
print(", ".join(f"{p} {version(p)}" for p in ["torch", "onnxruntime", "ai-edge-litert", "openvino", "tensorflow-cpu"]))')
    echo "$(date -u +%Y-%m-%d), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) ($(nproc) cores)," \
        "$(rustc --version | cut -d' ' -f1-2), $versions; $1 rounds of fresh processes, $2 s per metric"
}
