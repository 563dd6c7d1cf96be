#!/usr/bin/env bash
# Benchmark: nobase build vs umoci (init + new + insert + config) on the same inputs, in
# one run, interleaved, reporting medians and ratios (the machine is shared: only ratios
# measured together mean anything). Not part of the test suite.
#
#   benches/build.sh [RUNS]          (default 5 runs per measurement)
#
# Inputs: a ~90 MB static Go binary (/usr/local/bin/terraform if present) and a ~700 MB
# one (a terraform provider plugin if present); when absent, a static hello world with a
# generated payload of the same size stands in (said in the output).
set -euo pipefail
cd "$(dirname "$0")/.."
HERE=$PWD/benches
RUNS=${1:-5}
cargo build --release --locked -q
NOBASE=$PWD/target/release/nobase
command -v umoci >/dev/null || { echo "umoci is needed (apt-get install umoci)"; exit 1; }
work=$(mktemp -d /var/tmp/nobase-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

# --- inputs ---------------------------------------------------------------------------
printf '#include <stdio.h>\nint main(void){puts("hello world");return 0;}\n' > "$work/hello.c"
gcc -static -O2 -o "$work/hello" "$work/hello.c"
pick() { # NAME SIZE_MB CANDIDATE...
  local name=$1 size=$2; shift 2
  for c in "$@"; do [ -n "$c" ] && [ -f "$c" ] && { echo "$c"; return; }; done
  # Stand-in: the hello binary followed by pseudo-random and repetitive data, so that
  # compression has realistic work (about 3:1).
  python3 - "$work/$name" "$size" <<'PY'
import os, sys
path, mb = sys.argv[1], int(sys.argv[2])
with open(path, "wb") as f:
    f.write(open(os.path.join(os.path.dirname(path), "hello"), "rb").read())
    seed = 0x12345678
    chunk = bytearray()
    while f.tell() < mb << 20:
        seed = (seed * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        chunk = os.urandom(1 << 16) + (b"text %d " % seed) * 20000
        f.write(chunk)
os.chmod(path, 0o755)
PY
  echo "$work/$name"
}
TF=$(pick tf90 90 /usr/local/bin/terraform)
BIG=$(pick big700 700 "$(find / -xdev -name 'terraform-provider-*' -size +300M -print -quit 2>/dev/null || true)")

echo "nobase $("$NOBASE" --version | cut -d' ' -f2), umoci $(umoci --version | awk '{print $3}'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
python3 "$HERE/build.py" "$NOBASE" "$RUNS" "$work" "$TF" "$BIG" "$work/hello"
