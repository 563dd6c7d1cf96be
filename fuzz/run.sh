#!/usr/bin/env bash
# Fuzzing nobase's parsers and readers with cargo-fuzz (libFuzzer); HARDENING.md says
# more. Needs `cargo install cargo-fuzz`; on a stable toolchain RUSTC_BOOTSTRAP=1 lets
# cargo-fuzz pass its nightly flags.
#
#   fuzz/run.sh smoke          every target from its seeds, fixed seed and run count (CI)
#   fuzz/run.sh long [SECS]    every target for SECS seconds each (default 3600)
#   fuzz/run.sh TARGET [ARGS]  one target with libFuzzer arguments
#
# Seeds are generated into fuzz/seeds/TARGET (compiled hello worlds, references,
# documents, hostile layers and archives, ld.so.cache files, Dockerfiles). `long` and
# single runs grow fuzz/corpus/TARGET; the smoke run starts from the seeds alone every
# time, so it sees the same inputs everywhere. Crashes land in fuzz/artifacts/TARGET and
# become regression tests in the crate once fixed. All three directories are ignored.
#
# Every build checks arithmetic overflow and debug assertions (-a). The smoke run
# builds without a sanitizer (safe Rust needs none to find panics, and the build is half
# as long) in its own target directory; the other modes use AddressSanitizer.
set -euo pipefail
cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1
export LSAN_OPTIONS="suppressions=$PWD/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
TARGETS=$(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^nobase-fuzz$')

seed() {
  mkdir -p seeds/elf seeds/refs seeds/documents
  local c=seeds/elf
  if [ ! -f $c/hello-static ]; then
    printf '#include <stdio.h>\nint main(void){puts("hi");return 0;}\n' > /tmp/nobase-fuzz-hello.c
    gcc -static -Os -o $c/hello-static /tmp/nobase-fuzz-hello.c
    gcc -Os -o $c/hello-dynamic /tmp/nobase-fuzz-hello.c
    gcc -static-pie -Os -o $c/hello-static-pie /tmp/nobase-fuzz-hello.c
    command -v musl-gcc >/dev/null && musl-gcc -Os -o $c/hello-musl /tmp/nobase-fuzz-hello.c
    command -v aarch64-linux-gnu-gcc >/dev/null && aarch64-linux-gnu-gcc -Os -o $c/hello-arm64 /tmp/nobase-fuzz-hello.c
    printf '#!/bin/sh\necho hi\n' > $c/script
  fi
  for r in hello hello:1 team/hello:1 localhost:5000/a/b:c oci:/tmp/x:ref oci-archive:a.tar \
           docker-archive:x.tar:hello:1 docker://127.0.0.1:5000/a/b:1 \
           "docker://r.example/a@sha256:$(printf '%064d' 0)" linux/arm64/v8 /app/../x; do
    printf '%s' "$r" > "seeds/refs/$(printf '%s' "$r" | sha256sum | cut -c1-16)"
  done
  python3 seeds.py seeds
  printf '%s' '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:'"$(printf '%064d' 1)"'","size":2},"layers":[]}' > seeds/documents/manifest
  printf '%s' '{"architecture":"amd64","os":"linux","config":{"Env":["A=b"],"Entrypoint":["/app/x"],"Labels":{"a":"b"}},"rootfs":{"type":"layers","diff_ids":[]},"history":[{"created_by":"x","empty_layer":true}]}' > seeds/documents/config
  printf '%s' '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:'"$(printf '%064d' 2)"'","size":3,"platform":{"architecture":"arm64","os":"linux"}}]}' > seeds/documents/index
}

# Runs per target in the smoke: the slow targets (each input builds a filesystem, a
# directory tree or a store) get fewer.
smoke_runs() {
  case "$1" in
    dockerfile) echo 3000 ;;
    layer|extract) echo 5000 ;;
    ldcache) echo 20000 ;;
    *) echo 50000 ;;
  esac
}

case "${1:-smoke}" in
  smoke)
    # Built for a short run: opt-level 1 and 16 codegen units compile in two thirds of
    # the time and run the smoke's inputs as fast (measured: HARDENING.md).
    export CARGO_PROFILE_RELEASE_OPT_LEVEL=1
    smoke=(-O -a -s none --codegen-units 16 --target-dir target/smoke)
    seed
    cargo fuzz build "${smoke[@]}"
    for t in $TARGETS; do
      out=$(mktemp -d)
      cargo fuzz run "${smoke[@]}" "$t" "$out" "seeds/$t" -- \
        -runs="$(smoke_runs "$t")" -seed=1 -rss_limit_mb=2048 -max_len=65536 -timeout=60
      rm -rf "$out"
    done ;;
  long)
    seed
    for t in $TARGETS; do
      mkdir -p "corpus/$t"
      cargo fuzz run -O -a "$t" "corpus/$t" "seeds/$t" -- -max_total_time="${2:-3600}" \
        -rss_limit_mb=2048 -max_len=262144 -timeout=60
    done ;;
  *)
    seed
    t=$1; shift
    mkdir -p "corpus/$t"
    cargo fuzz run -O -a "$t" "corpus/$t" "seeds/$t" -- "$@" ;;
esac
