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
# Receipts are messages too, so the seqs are not 1, 2, 3: every person must
# see each text at one and the same seq, in the same order.
group_lines() { grep -E $'^[0-9]+\t.*\t(hi both, from chat|hello from social|and from messenger)' "$work/out"; }
check_eq "three reads of the group, three texts each" 9 "$(group_lines | wc -l)"
check_eq "each text at one seq for everyone" 3 \
  "$(group_lines | awk -F'\t' '{sub(/ \(.*$/, "", $4); print $1 "\t" $4}' | sort -u | wc -l)"
check_eq "in the same order" "hi both, from chat|hello from social|and from messenger" \
  "$(group_lines | head -3 | awk -F'\t' '{sub(/ \(.*$/, "", $4); print $4}' | paste -sd'|')"
check_eq "the direct message arrives" 1 "$(grep -c $'^1\t.*\tjust us two' "$work/out")"
check_eq "the one by phone number arrives" 1 "$(grep -c $'^1\t.*\tgot your number' "$work/out")"
check_eq "no plaintext on the server" 0 "$(grep -c 'found plaintext' "$work/out")"
summary demo
