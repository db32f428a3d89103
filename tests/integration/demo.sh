#!/usr/bin/env bash
# scripts/demo.sh, as the README tells people to run it, against the build
# under test: it must finish, every person must read the group's three
# messages in the same order, and the server's files must hold no plaintext
# (the demo checks that itself and fails if it finds any).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${TSR_BUILD:-$root/build/asan}
. "$root/tests/integration/lib.bash"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
TSR_BIN=$build "$root/scripts/demo.sh" >"$work/out" 2>&1
check_eq "demo exits 0" 0 "$?"
check_eq "three reads of the group, same order" 3 \
  "$(grep -c $'^3\t.*\tand from messenger$' "$work/out")"
check_eq "the direct message arrives" 1 "$(grep -c $'^1\t.*\tjust us two$' "$work/out")"
check_eq "the one by phone number arrives" 1 "$(grep -c $'^1\t.*\tgot your number$' "$work/out")"
check_eq "no plaintext on the server" 0 "$(grep -c 'found plaintext' "$work/out")"
summary demo
