#!/usr/bin/env bash
# Runs each libFuzzer target of a build dir for a bounded time, starting
# from its seed corpus in tests/fuzz/corpus/<name> when there is one.
set -euo pipefail
build=${1:-build/fuzz}
secs=${2:-20}
root=$(cd "$(dirname "$0")/.." && pwd)
status=0
for f in "$build"/fuzz/fuzz_*; do
  [[ -x $f ]] || continue
  name=$(basename "$f")
  seeds=$root/tests/fuzz/corpus/${name#fuzz_}
  run=$(mktemp -d)
  [[ -d $seeds ]] && cp -r "$seeds"/. "$run"/
  echo "== $name (${secs}s)"
  if ! "$f" -max_total_time="$secs" -print_final_stats=1 "$run" 2>"$run.log"; then
    status=1
    tail -n 40 "$run.log"
  else
    grep -E '^(stat::number_of_executed_units|#[0-9]+ *DONE)' "$run.log" || true
  fi
  rm -rf "$run" "$run.log"
done
exit $status
