#!/usr/bin/env bash
# Runs every benchmark binary of a build dir. Figures: docs/benchmarks.md.
set -euo pipefail
build=${1:-build/release}
for b in "$build"/bench/bench_*; do
  [[ -x $b ]] || continue
  echo "== $(basename "$b")"
  "$b" ${BENCH_ARGS:-}
done
