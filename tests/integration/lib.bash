# Helpers for integration scripts: check counting and a closing summary line.
# Source it, call `check NAME CMD...` / `check_eq NAME A B`, end with `summary MODULE`.
passed=0 failed=0 skipped=0

check() { # check NAME CMD...: CMD must succeed
  local name=$1
  shift
  if "$@" >/dev/null 2>"$work/last.err"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "  FAIL $name: $* -> $(head -c 300 "$work/last.err")"
  fi
}

check_fails() { # check_fails NAME CMD...: CMD must fail with "error: ..."
  local name=$1
  shift
  if "$@" >/dev/null 2>"$work/last.err"; then
    failed=$((failed + 1))
    echo "  FAIL $name: succeeded but should have failed: $*"
  elif grep -q '^error: ' "$work/last.err"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "  FAIL $name: failed without an error line: $*"
  fi
}

check_eq() { # check_eq NAME A B
  if [[ -n $2 && $2 == "$3" ]]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "  FAIL $1: '$2' != '$3'"
  fi
}

skip() {
  skipped=$((skipped + 1))
  echo "  SKIP $*"
}

summary() {
  echo "$1: $passed passed, $failed failed, $skipped skipped"
  ((failed == 0))
}
