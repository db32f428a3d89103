#!/usr/bin/env bash
# Group commands of `tessera chat` against a real tesserad, the way a user
# types them: alice (social) makes a group with bob, adds carol with
# `chat add`, `chat members` shows who administers it; bob (no admin) may
# not remove carol until alice promotes him; carol leaves and an admin's
# device commits her removal; bob links a second device, which joins the
# group when one of his devices runs a chat command, and reads what is
# sent after it joined (not before). Each device is its own state file; the
# server runs on a random loopback port, stopped by pid.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${TSR_BUILD:-$root/build/asan}
work=$(mktemp -d)
srv_pid=
trap '[[ -n $srv_pid ]] && kill "$srv_pid" 2>/dev/null && wait "$srv_pid"; rm -rf "$work"' EXIT
. "$root/tests/integration/lib.bash"

start_tesserad chat_groups --workers 2 --rate-per-account 0

export TSR_PASSWORD='correct horse battery staple'
t() { "$build/tessera" --server "127.0.0.1:$port" --state "$work/$1.db" "${@:2}"; }
texts() { t "$1" --json chat read "$2" --no-receipt | jq -r '[.messages[].text] | join("|")'; }

for p in alice bob carol; do
  check "$p registers" t $p register --login $p
  check "$p social profile" t $p profile set social --handle $p
  check "$p reachable" t $p reachability social set social everyone
  check "$p keys" t $p keys upload
done
B=$(t bob --json whoami | jq -r .account_id)
C=$(t carol --json whoami | jq -r .account_id)

G=$(t alice chat create --app social --title "Trip" --with @bob:social)
check_eq "group made" 22 "${#G}"
check_eq "its title, from inside MLS" 1 \
  "$(t bob --json chat list | jq --arg g "$G" '[.conversations[] | select(.id == $g and .title == "Trip")] | length')"
check "alice adds carol" t alice chat add "$G" @carol:social
check "carol sees the group" t carol chat list
check "carol writes" t carol chat send "$G" "carol here"
check_eq "bob reads carol" "carol here" "$(texts bob "$G")"
members=$(t alice chat members "$G")
check_eq "three members" 3 "$(grep -c $'\t' <<<"$members")"
check_eq "alice is the admin" 1 "$(grep -c $'\tadmin$' <<<"$members")"

out=$(t bob chat remove "$G" "$C" 2>&1)
check_eq "bob may not remove carol" 1 "$(grep -c '^error: forbidden' <<<"$out")"
check "alice promotes bob" t alice chat promote "$G" "$B"
check_eq "two admins" 2 "$(t alice chat members "$G" | grep -c $'\tadmin$')"

check "carol leaves" t carol chat leave "$G"
out=$(t carol chat send "$G" "still here?" 2>&1)
check_eq "carol sends nothing more" 1 "$(grep -c '^error:' <<<"$out")"
check "bob (admin) catches up" t bob chat list
check_eq "carol is gone" 2 "$(t alice chat members "$G" | grep -c $'\t')"
check_eq "two devices left" "2 devices" "$(t alice chat members "$G" | tail -1)"
check "bob writes" t bob chat send "$G" "without carol"
check_eq "alice reads it" "carol here|without carol" "$(texts alice "$G")"

# bob's second device.
K=$(t bob2 device key)
link=$(t bob --json device link-code --for "$K")
check "bob2 links" t bob2 device link "$(jq -r .code <<<"$link")" "$(jq -r .certificate <<<"$link")"
check "bob2 keys" t bob2 keys upload
check "bob's first device adds it" t bob chat list
check "bob2 joins" t bob2 chat list
check_eq "three devices" "3 devices" "$(t alice chat members "$G" | tail -1)"
check "alice writes" t alice chat send "$G" "hello both devices"
check_eq "bob2 reads from when it joined" "hello both devices" "$(texts bob2 "$G")"
check_eq "bob reads everything" "carol here|without carol|hello both devices" "$(texts bob "$G")"
summary chat_groups
