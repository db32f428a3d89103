#!/usr/bin/env bash
# Runs every unit test binary and integration script against a build dir
# and prints one closing line: "N passed, N failed, N skipped".
set -uo pipefail
build=${1:-build/asan}
root=$(cd "$(dirname "$0")/.." && pwd)
case $build in /*) export TSR_BUILD=$build ;; *) export TSR_BUILD=$root/$build ;; esac
passed=0 failed=0 skipped=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

count() { # reads "<module>: N passed, N failed, N skipped" lines from $log
  local line p f s
  line=$(grep -E '^[^ ]+: [0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$log" | tail -n 1)
  if [[ -z $line ]]; then
    echo "  (no summary line: counted as one failure)"
    failed=$((failed + 1))
    return
  fi
  read -r p f s < <(sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped/\1 \2 \3/' <<<"$line")
  passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
}

for t in "$TSR_BUILD"/tests/test_*; do
  [[ -x $t ]] || continue
  name=$(basename "$t")
  if "$t" >"$log" 2>&1; then rc=0; else rc=$?; fi
  grep -E '^(vectors |FAIL|  FAIL|  SKIP|skip )' "$log" | head -n 60
  tail -n 1 "$log"
  count
  if ((rc != 0)) && ! grep -qE ' [1-9][0-9]* failed' "$log"; then
    echo "  $name exited $rc"
    tail -n 20 "$log"
    failed=$((failed + 1))
  fi
done

for t in "$root"/tests/integration/*.sh; do
  [[ -f $t ]] || continue
  if bash "$t" >"$log" 2>&1; then rc=0; else rc=$?; fi
  tail -n 1 "$log"
  count
  if ((rc != 0)) && ! grep -qE ' [1-9][0-9]* failed' "$log"; then
    tail -n 20 "$log"
    failed=$((failed + 1))
  fi
done

echo "$passed passed, $failed failed, $skipped skipped"
((failed == 0))
