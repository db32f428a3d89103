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

# start_tesserad MODULE [ARGS...]: starts "$build/tesserad" with ARGS on a
# random loopback port, its data and log under $work; sets srv_pid (the
# script's trap stops it) and port (the log names it: polled for up to 5 s),
# or says so and exits.
start_tesserad() {
  local module=$1
  shift
  "$build/tesserad" --data-dir "$work/data" --listen 127.0.0.1:0 --log-file "$work/log" \
    "$@" </dev/null >/dev/null 2>&1 &
  srv_pid=$!
  port=
  for _ in $(seq 500); do
    port=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$work/log" 2>/dev/null | grep -o '[0-9]*$')
    [[ -n $port ]] && return 0
    sleep 0.01
  done
  echo "$module: tesserad did not start"
  exit 1
}
