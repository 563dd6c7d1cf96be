#!/usr/bin/env bash
# Fuzzing nobase's parsers with cargo-fuzz (libFuzzer). Needs `cargo install cargo-fuzz`.
# On a stable toolchain, RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its nightly flags.
#
#   fuzz/run.sh smoke          every target, a fixed seed and a fixed number of runs (CI)
#   fuzz/run.sh long [SECS]    every target for SECS seconds each (default 3600)
#   fuzz/run.sh TARGET [ARGS]  one target with libFuzzer arguments
#
# Seed corpora are generated here (compiled hello worlds, references, documents) into
# fuzz/corpus/TARGET, which git ignores; crashes land in fuzz/artifacts/TARGET and become
# regression tests in the crate once fixed.
set -euo pipefail
cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1
TARGETS=$(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^nobase-fuzz$')

seed() {
  mkdir -p corpus/elf corpus/refs corpus/documents
  local c=corpus/elf
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
    printf '%s' "$r" > "corpus/refs/$(printf '%s' "$r" | sha256sum | cut -c1-16)"
  done
  printf '%s' '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:'"$(printf '%064d' 1)"'","size":2},"layers":[]}' > corpus/documents/manifest
  printf '%s' '{"architecture":"amd64","os":"linux","config":{"Env":["A=b"],"Entrypoint":["/app/x"],"Labels":{"a":"b"}},"rootfs":{"type":"layers","diff_ids":[]},"history":[{"created_by":"x","empty_layer":true}]}' > corpus/documents/config
  printf '%s' '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:'"$(printf '%064d' 2)"'","size":3,"platform":{"architecture":"arm64","os":"linux"}}]}' > corpus/documents/index
}

case "${1:-smoke}" in
  smoke)
    seed
    for t in $TARGETS; do
      mkdir -p "corpus/$t"
      cargo fuzz run -O "$t" "corpus/$t" -- -runs=20000 -seed=1 -rss_limit_mb=1024 -max_len=65536
    done ;;
  long)
    seed
    for t in $TARGETS; do
      mkdir -p "corpus/$t"
      cargo fuzz run -O "$t" "corpus/$t" -- -max_total_time="${2:-3600}" -rss_limit_mb=1024 -max_len=1048576
    done ;;
  *)
    seed
    t=$1; shift
    mkdir -p "corpus/$t"
    cargo fuzz run -O "$t" "corpus/$t" -- "$@" ;;
esac
