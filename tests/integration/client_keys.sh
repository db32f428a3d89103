#!/usr/bin/env bash
# `tessera keys` (libtessera's KeyPackages) against a real tesserad: status
# before anything, an upload reaching its target with a last resort, a
# second upload topping up only what is missing, more than 100 at once
# (two upload calls), suite 3 counted apart from suite 1 (its own target,
# its own last resort, the device limit on both together), the local
# private parts in status, two devices of one account each with their own,
# logout, and the refusals.
# Each device is its own state file; the server runs on a random loopback
# port, stopped by pid.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${TSR_BUILD:-$root/build/asan}
work=$(mktemp -d)
srv_pid=
trap '[[ -n $srv_pid ]] && kill "$srv_pid" 2>/dev/null && wait "$srv_pid"; rm -rf "$work"' EXIT
. "$root/tests/integration/lib.bash"

start_tesserad client_keys --workers 2

export TSR_PASSWORD='correct horse battery staple'
t() { "$build/tessera" --server "127.0.0.1:$port" --state "$work/$1.db" "${@:2}"; }
# keys NAME ARGS...: the --json answer of `keys ARGS` on device NAME, as
# "available last_resort local_secrets local_last_resort [uploaded
# last_resort_uploaded]".
keys() {
  t "$1" --json keys "${@:2}" |
    jq -r '[.available, .last_resort, .local_secrets, .local_last_resort,
            (if has("uploaded") then .uploaded, .last_resort_uploaded else empty end)]
           | map(tostring) | join(" ")'
}

check_fails "status before login" t a keys status
check "register" t a register --login alice --device-name laptop
check_eq "nothing yet" "0 false 0 false" "$(keys a status)"
check "status text" t a keys status

# A first upload reaches its target and brings a last resort.
check_eq "upload to 30" "30 true 31 true 30 true" "$(keys a upload --count 30)"
check_eq "status after upload" "30 true 31 true" "$(keys a status)"
# A second one makes only what is missing; a third none.
check_eq "top up to 50" "50 true 51 true 20 false" "$(keys a upload --count 50)"
check_eq "already full" "50 true 51 true 0 false" "$(keys a upload --count 50)"
check_eq "a lower target uploads nothing" "50 true 51 true 0 false" \
  "$(keys a upload --count 10)"
out=$(t a keys upload --count 60)
check_eq "upload text" "uploaded 10 KeyPackages of suite 1" "$(head -n 1 <<<"$out")"
check_eq "private parts per suite" "61 61 0" \
  "$(t a --json keys status | jq -r '"\(.local_secrets) \(.local_suite_1) \(.local_suite_3)"')"

# Suites are counted apart: after 60 of suite 1, a target of 60 for suite 3
# uploads 60 of suite 3 with a suite-3 last resort; suite 1's stays.
check_eq "top up suite 3 after suite 1" "60 true 122 true 60 true" \
  "$(keys a upload --suite 3 --count 60)"
by_suite() {
  t "$1" --json keys status | jq -r '[.available, .last_resort] + ([.by_suite["1", "3"] |
    .available, .last_resort, .local_secrets, .local_last_resort]) | map(tostring) | join(" ")'
}
check_eq "status per suite" "120 true 60 true 61 true 60 true 61 true" "$(by_suite a)"
out=$(t a keys status)
check_eq "status text, suite 1" \
  "suite 1: server 60 available, last resort yes; this device 61 private parts, last resort yes" \
  "$(grep '^suite 1:' <<<"$out")"
check_eq "status text, suite 3" \
  "suite 3: server 60 available, last resort yes; this device 61 private parts, last resort yes" \
  "$(grep '^suite 3:' <<<"$out")"
check_eq "suite 1 still at its target" "60 true 122 true 0 false" "$(keys a upload --count 60)"
# The device's limit (200) is on every suite together: 80 more fit.
check_eq "suite 3 up to the device limit" "140 true 202 true 80 false" \
  "$(keys a upload --suite 3 --count 150)"
check_eq "status at the limit" "200 true 60 true 61 true 140 true 141 true" "$(by_suite a)"

# A second device of the account: its own KeyPackages and private parts,
# the default target (100), suite 3.
key_b=$(t b device key)
cert_b=$(t a device certify "$key_b")
check "login second device" t b login --login alice --certificate "$cert_b" --device-name phone
check_eq "second device starts empty" "0 false 0 false" "$(keys b status)"
check_eq "default target, suite 3" "100 true 101 true 100 true" \
  "$(keys b upload --suite 3)"
check_eq "suite 3 private parts" "0 101" \
  "$(t b --json keys status | jq -r '"\(.local_suite_1) \(.local_suite_3)"')"
check_eq "first device unchanged" "200 true 202 true" "$(keys a status)"

# More than 100 missing: the server takes at most 100 per call.
check "register third account" t c register --login carol --device-name desk
check_eq "200 at once" "200 true 201 true 200 true" "$(keys c upload --count 200)"

# The private parts are in the state file, one per KeyPackage (the CLI
# exposes no claim; the C tests claim and join).
if command -v sqlite3 >/dev/null; then
  check_eq "state schema 5" 5 "$(sqlite3 "$work/a.db" 'PRAGMA user_version')"
  check_eq "rows of the first device" 202 "$(sqlite3 "$work/a.db" 'SELECT COUNT(*) FROM kp_secrets')"
else
  skip "sqlite3 not installed: state file not inspected"
  skip "sqlite3 not installed: state file not inspected"
fi

# Refusals.
check_fails "suite 2" t a keys upload --suite 2
check_fails "count over 200" t a keys upload --count 201
check_fails "count 0" t a keys upload --count 0
check_fails "unknown subcommand" t a keys claim
check_fails "stray argument" t a keys status now

# Logout forgets the device's private parts; the other device keeps its own.
check "logout second device" t b logout
check_fails "status after logout" t b keys status
check_eq "first device after the logout" "200 true 202 true" "$(keys a status)"
if command -v sqlite3 >/dev/null; then
  check_eq "no rows after logout" 0 "$(sqlite3 "$work/b.db" 'SELECT COUNT(*) FROM kp_secrets')"
else
  skip "sqlite3 not installed: state file not inspected"
fi

summary client_keys
