#!/usr/bin/env bash
# Benchmark (not run by the tests): `nobase push` against `skopeo copy` for one large
# image to the same local docker-registry, each run into a freshly emptied registry,
# and `nobase pull` against `skopeo copy docker:// oci:` back. Prints median seconds and
# the ratio nobase/skopeo (below 1.00 means nobase is faster).
#
#   benches/push.sh [RUNS]        default 3 runs of each
#
# The image: the largest input this machine has (a terraform provider plugin of
# ~700 MB, else /usr/local/bin/terraform), else 700 MB of generated data. Needs
# docker-registry and skopeo (scripts/setup installs both); builds nobase --release.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
for tool in docker-registry skopeo curl python3; do
  command -v "$tool" >/dev/null || { echo "benches/push.sh: $tool is not installed (scripts/setup)" >&2; exit 2; }
done

cargo build --release --quiet
NOBASE=$PWD/target/release/nobase
WORK=$(mktemp -d /tmp/nobase-bench-push.XXXXXX)
REG_PID=""
cleanup() {
  [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null && wait "$REG_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
export NOBASE_STORE=$WORK/store XDG_CACHE_HOME=$WORK/cache

# The input.
INPUT=$(find / -xdev -name 'terraform-provider-*' -size +300M -print -quit 2>/dev/null || true)
if [ -z "$INPUT" ] && [ -x /usr/local/bin/terraform ]; then INPUT=/usr/local/bin/terraform; fi
if [ -z "$INPUT" ]; then
  INPUT=$WORK/big-static
  cp "$(command -v busybox 2>/dev/null || echo /bin/true)" "$INPUT"
  head -c 700000000 /dev/urandom > "$WORK/payload"
  ADD=(--add "$WORK/payload:/data/payload")
else
  ADD=()
fi
echo "input: $INPUT ($(du -h "$INPUT" | cut -f1))"
"$NOBASE" build "$INPUT" -t big:1 "${ADD[@]}" --bundle never -q >/dev/null \
  || "$NOBASE" build "$INPUT" -t big:1 "${ADD[@]}" -q >/dev/null
echo "image: $("$NOBASE" images | awk '$1=="big"{print $5, $6}')"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
start_registry() {
  [ -n "$REG_PID" ] && { kill "$REG_PID" 2>/dev/null; wait "$REG_PID" 2>/dev/null || true; }
  rm -rf "$WORK/registry"
  cat > "$WORK/registry.yml" <<EOF
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $WORK/registry}}
http: {addr: 127.0.0.1:$PORT}
EOF
  docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
  REG_PID=$!
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$PORT/v2/" >/dev/null && return 0
    sleep 0.1
  done
  echo "docker-registry did not start" >&2; exit 3
}

seconds() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); awk -v s="$s" -v e="$e" 'BEGIN {printf "%.3f", e - s}'; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

declare -a NB_PUSH SK_PUSH NB_PULL SK_PULL
for i in $(seq "$RUNS"); do
  start_registry
  NB_PUSH+=("$(seconds "$NOBASE" push big:1 "docker://127.0.0.1:$PORT/bench/big:1")")
  rm -rf "$WORK/pulled"
  NB_PULL+=("$(seconds env NOBASE_STORE="$WORK/pulled" "$NOBASE" pull "docker://127.0.0.1:$PORT/bench/big:1")")
  start_registry
  SK_PUSH+=("$(seconds skopeo copy --dest-tls-verify=false "oci:$NOBASE_STORE:big:1" "docker://127.0.0.1:$PORT/bench/big:1")")
  rm -rf "$WORK/skopeo-out"
  SK_PULL+=("$(seconds skopeo copy --src-tls-verify=false "docker://127.0.0.1:$PORT/bench/big:1" "oci:$WORK/skopeo-out:big")")
  echo "run $i: push nobase ${NB_PUSH[-1]}s skopeo ${SK_PUSH[-1]}s; pull nobase ${NB_PULL[-1]}s skopeo ${SK_PULL[-1]}s"
done

nbp=$(printf '%s\n' "${NB_PUSH[@]}" | median); skp=$(printf '%s\n' "${SK_PUSH[@]}" | median)
nbl=$(printf '%s\n' "${NB_PULL[@]}" | median); skl=$(printf '%s\n' "${SK_PULL[@]}" | median)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}'; }
printf 'push  nobase %.2fs  skopeo %.2fs  ratio %s\n' "$nbp" "$skp" "$(ratio "$nbp" "$skp")"
printf 'pull  nobase %.2fs  skopeo %.2fs  ratio %s\n' "$nbl" "$skl" "$(ratio "$nbl" "$skl")"
