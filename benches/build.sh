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

# --- measurement helpers ----------------------------------------------------------------
# t CMD… : runs CMD, appends "wall_s max_rss_kb" to $work/last
t() { /usr/bin/time -f "%e %M" -o "$work/last" "$@" >/dev/null 2>"$work/err" || { cat "$work/err"; exit 1; }; cat "$work/last"; }

umoci_build() { # INPUT LAYOUT
  rm -rf "$2"
  umoci init --layout "$2" && umoci new --image "$2:t" \
    && umoci insert --image "$2:t" "$1" /app/bin && umoci config --image "$2:t" --config.entrypoint /app/bin
}
export -f umoci_build

bench() { # LABEL INPUT
  local label=$1 in=$2 sz
  sz=$(stat -c %s "$in")
  : > "$work/res"
  for i in $(seq "$RUNS"); do
    echo "umoci $(t bash -c "umoci_build '$in' '$work/L'")" >> "$work/res"
    usize=$(du -sb "$work/L" | cut -f1)
    rm -rf "$work/S"
    echo "gzip $(t env NOBASE_STORE="$work/S" "$NOBASE" build -q "$in" -t b:1)" >> "$work/res"
    gsize=$(du -sb --exclude=.nobase-cache "$work/S" | cut -f1)
    echo "rebuild $(t env NOBASE_STORE="$work/S" "$NOBASE" build -q "$in" -t b:2)" >> "$work/res"
    rm -rf "$work/Z"
    echo "zstd $(t env NOBASE_STORE="$work/Z" "$NOBASE" build -q --compression zstd "$in" -t b:1)" >> "$work/res"
    zsize=$(du -sb --exclude=.nobase-cache "$work/Z" | cut -f1)
  done
  python3 - "$label" "$sz" "$usize" "$gsize" "$zsize" "$work/res" <<'PY'
import statistics, sys
label, size, usize, gsize, zsize, res = sys.argv[1], *map(int, sys.argv[2:6]), sys.argv[6]
rows = {}
for line in open(res):
    k, wall, rss = line.split()
    rows.setdefault(k, []).append((float(wall), int(rss)))
med = {k: statistics.median(w for w, _ in v) for k, v in rows.items()}
rss = {k: max(r for _, r in v) for k, v in rows.items()}
u = med["umoci"]
print(f"\n{label}: {size/1e6:.1f} MB input, {len(rows['umoci'])} runs each (median wall, peak RSS)")
print(f"  umoci  gzip  {u:7.3f} s  {rss['umoci']/1024:6.1f} MiB   layout {usize/1e6:7.2f} MB")
print(f"  nobase gzip  {med['gzip']:7.3f} s  {rss['gzip']/1024:6.1f} MiB   layout {gsize/1e6:7.2f} MB   wall {med['gzip']/u:.2f}x umoci, layout {gsize/usize:.3f}x")
print(f"  nobase zstd  {med['zstd']:7.3f} s  {rss['zstd']/1024:6.1f} MiB   layout {zsize/1e6:7.2f} MB   wall {med['zstd']/u:.2f}x umoci gzip")
print(f"  rebuild      {med['rebuild']:7.3f} s  {rss['rebuild']/1024:6.1f} MiB   (same store, nothing changed) {med['rebuild']/med['gzip']:.2f}x cold gzip")
PY
}

startup() {
  : > "$work/res"
  for i in $(seq $((RUNS * 3))); do
    echo "umoci $(t bash -c "umoci_build '$work/hello' '$work/L'")" >> "$work/res"
    rm -rf "$work/S"
    echo "nobase $(t env NOBASE_STORE="$work/S" "$NOBASE" build -q "$work/hello" -t h:1)" >> "$work/res"
  done
  python3 - "$work/res" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    k, wall, _ = line.split()
    rows.setdefault(k, []).append(float(wall))
u, n = statistics.median(rows["umoci"]), statistics.median(rows["nobase"])
print(f"\nstartup (static hello world, {len(rows['umoci'])} runs): umoci {u:.3f} s, nobase {n:.3f} s = {n/u:.2f}x umoci")
PY
}

echo "nobase $("$NOBASE" --version | cut -d' ' -f2), umoci $(umoci --version | awk '{print $3}'), $(nproc) cores"
startup
bench "90 MB static Go ($TF)" "$TF"
bench "700 MB static Go ($BIG)" "$BIG"
