#!/usr/bin/env bash
# `tessera chat` (libtessera's end-to-end encrypted conversations) against a
# real tesserad: three people on three apps — alice on chat (phone verified
# through the development sender's dev-sms.log), bob on social, carol on
# messenger — each reachable by the others from every app. bob and carol
# upload KeyPackages; alice makes a group with both, naming them by profile
# (@bob at social, carol at messenger: account ids are never typed); each
# sends; each `chat read` shows every message in the same order; a direct
# conversation alice -> bob; `chat listen` in the background receives a
# message sent meanwhile; someone outside the rules cannot be named by
# profile (the claim would reveal their account id), and a message request
# (a direct conversation outside the recipient's rules, by account id) is
# declined and accepted; carol -> alice by phone number; refusals. Each device is its own state file; the server runs on a random
# loopback port, stopped by pid. Multi-device (a second device of an account
# joining) is not covered here.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${TSR_BUILD:-$root/build/asan}
work=$(mktemp -d)
srv_pid=
listen_pid=
trap '[[ -n $listen_pid ]] && kill "$listen_pid" 2>/dev/null;
      [[ -n $srv_pid ]] && kill "$srv_pid" 2>/dev/null && wait "$srv_pid"; rm -rf "$work"' EXIT
. "$root/tests/integration/lib.bash"

# The general per-account request limit is off: each `tessera chat` run makes
# a dozen or more calls (refresh, syncs, claims), and alice makes many runs
# in a row; a refusal must be the one checked, not rate_limited.
start_tesserad chat --workers 2 --rate-per-account 0

export TSR_PASSWORD='correct horse battery staple'
t() { "$build/tessera" --server "127.0.0.1:$port" --state "$work/$1.db" "${@:2}"; }
sms_code() { awk -v p="$1" '$1 == p { c = $2 } END { print c }' "$work/data/dev-sms.log"; }
# texts NAME CONV: the texts of `chat read` in order, "n:text" (n counts the
# messages shown: receipts take seqs in between).
texts() { t "$1" --json chat read "$2" | jq -r '.messages | to_entries[] | "\(.key + 1):\(.value.text)"' | paste -sd' '; }

# People.
check "alice registers" t alice register --login alice --phone +15550101
check "alice asks for a code" t alice phone code +15550101
check "alice verifies" t alice phone verify +15550101 "$(sms_code +15550101)"
check "alice chat profile" t alice profile set chat --name Alice
check "bob registers" t bob register --login bob
check "bob social profile" t bob profile set social --handle bob --name Bob
check "carol registers" t carol register --login carol
check "carol messenger profile" t carol profile set messenger --username carol --name Carol
for from in chat social messenger; do
  check "alice reachable from $from" t alice reachability chat set "$from" everyone
  check "bob reachable from $from" t bob reachability social set "$from" everyone
  check "carol reachable from $from" t carol reachability messenger set "$from" everyone
done
A=$(t alice --json whoami | jq -r .account_id)
B=$(t bob --json whoami | jq -r .account_id)
C=$(t carol --json whoami | jq -r .account_id)
check_eq "account ids" 3 "$(printf '%s\n' "$A" "$B" "$C" | grep -c '^[A-Za-z0-9_-]\{22\}$')"

# No KeyPackages yet: bob cannot be added.
out=$(t alice chat create --app chat --with @bob:social 2>&1)
check_eq "bob has no KeyPackages" "error: no_key_packages:" "$(cut -d' ' -f1,2 <<<"$out")"
check "bob uploads KeyPackages" t bob keys upload --count 10
check "carol uploads KeyPackages" t carol keys upload --count 10

# The group.
G=$(t alice chat create --app chat --with @bob:social --with carol:messenger)
check_eq "group id" 22 "${#G}"
check_eq "alice lists it" "$G chat group active" \
  "$(t alice --json chat list | jq -r '.conversations[0] | "\(.conversation) \(.app) \(.kind) \(.state)"')"
check_eq "bob joins on list" "$G 3" \
  "$(t bob --json chat list | jq -r '.conversations[0] | "\(.conversation) \(.devices)"')"
check_eq "carol joins on list" "$G" "$(t carol --json chat list | jq -r '.conversations[0].conversation')"
check_eq "alice sends" "sent, seq 1" "$(t alice chat send "$G" "hello from alice")"
check_eq "bob sends" "sent, seq" "$(t bob chat send "$G" "bob here" | cut -d' ' -f1,2)"
check_eq "carol sends" "sent, seq" "$(t carol chat send "$G" "carol too" | cut -d' ' -f1,2)"
check_eq "alice sends again" 1 "$(t alice --json chat send "$G" "see you" | jq '.seq > 3 | if . then 1 else 0 end')"
want="1:hello from alice 2:bob here 3:carol too 4:see you"
check_eq "alice reads" "$want" "$(texts alice "$G")"
check_eq "bob reads" "$want" "$(texts bob "$G")"
check_eq "carol reads" "$want" "$(texts carol "$G")"
check_eq "reading again changes nothing" "$want" "$(texts bob "$G")"
check_eq "senders" "$A $B $C $A" \
  "$(t carol --json chat read "$G" | jq -r '.messages[].sender_account' | paste -sd' ')"
out=$(t bob chat read "$G")
check_eq "read text: time, sender, text, read mark" "$B (you)	bob here (read)" \
  "$(sed -n 2p <<<"$out" | cut -f3,4)"

# A direct conversation.
D=$(t alice chat create --app chat --with @Bob:social)
check_eq "direct id" 22 "${#D}"
check_eq "direct kind" direct "$(t alice --json chat list | jq -r --arg d "$D" '.conversations[] | select(.conversation == $d) | .kind')"
check "alice writes bob" t alice chat send "$D" "just us"
check_eq "bob reads the direct one" "1:just us" "$(texts bob "$D")"
check "bob answers" t bob chat send "$D" "ok"
check_eq "alice reads the answer" "1:just us 2:ok" "$(texts alice "$D")"
check_eq "carol does not have it" 1 "$(t carol --json chat list | jq '.conversations | length')"

# listen in the background receives a message sent meanwhile.
t carol chat listen --seconds 4 >"$work/listen.out" 2>"$work/listen.err" &
listen_pid=$!
sleep 1.5
check "bob sends while carol listens" t bob chat send "$G" "live"
wait "$listen_pid"
rc=$?
listen_pid=
check_eq "listen exits 0" 0 "$rc"
check_eq "listen printed the message" "$G	$B	live" \
  "$(grep 'live' "$work/listen.out" | cut -f1,4,5)"
check_eq "live message stored once" 1 \
  "$(t carol --json chat read "$G" | jq '[.messages[] | select(.text == "live")] | length')"

# A message request: dave (social) is not reachable under the default rules.
check "dave registers" t dave register --login dave
check "dave social profile" t dave profile set social --handle dave
check "dave uploads KeyPackages" t dave keys upload --count 5
E=$(t dave --json whoami | jq -r .account_id)
# By profile alice cannot: the claim would tell her dave's account id.
out=$(t alice chat create --app chat --with @dave:social 2>&1)
check_eq "dave by profile: not reachable" "error: forbidden:" "$(cut -d' ' -f1,2 <<<"$out")"
# Someone who knows his account id (e.g. from a group) makes a request.
R=$(t alice chat create --app chat --with-account "$E:social")
check_eq "request id" 22 "${#R}"
check_eq "dave sees a request" request \
  "$(t dave --json chat list | jq -r '.conversations[0].state')"
check "alice writes dave" t alice chat send "$R" "may I?"
check_eq "dave can read the request" "1:may I?" "$(texts dave "$R")"
out=$(t dave chat send "$R" "nope" 2>&1)
check_eq "dave cannot answer before accepting" "error: request_pending:" "$(cut -d' ' -f1,2 <<<"$out")"
check_eq "declined" declined "$(t dave --json chat decline "$R" | jq -r .state)"
check_eq "accepted" active "$(t dave --json chat accept "$R" | jq -r .state)"
check "dave answers" t dave chat send "$R" "sure"
check_eq "alice reads dave" "1:may I? 2:sure" "$(texts alice "$R")"
check "dave lets chat people in" t dave reachability social set chat everyone
R2=$(t alice chat create --app chat --with dave:social)
check_eq "then by profile: an active direct one" "$R2 direct active" \
  "$(t dave --json chat list | jq -r --arg d "$R2" '.conversations[] | select(.conversation == $d) | "\(.conversation) \(.kind) \(.state)"')"

# carol (messenger) -> alice (chat) by phone number.
N=$(t carol chat create --app messenger --with +15550101:chat)
check "carol writes alice" t carol chat send "$N" "found you by number"
check_eq "alice reads carol" "1:found you by number" "$(texts alice "$N")"
check_eq "alice's member is carol" "$C" \
  "$(t alice --json chat read "$N" | jq -r '.messages[0].sender_account')"

# Refusals.
check_fails "unknown conversation" t alice chat send AAAAAAAAAAAAAAAAAAAAAA "x"
check_fails "empty text" t alice chat send "$G" ""
out=$(t alice chat create --app chat --with @nobody:social 2>&1)
check_eq "unknown profile" "error: not_found:" "$(cut -d' ' -f1,2 <<<"$out")"
# refused: CODE NAME ARGS...: `tessera ARGS` (as alice) fails with that code.
refused() {
  local code=$1 name=$2 out
  shift 2
  out=$(t alice "$@" 2>&1)
  check_eq "$name" "error: $code:" "$(cut -d' ' -f1,2 <<<"$out")"
}
refused bad_request "bad handle" chat create --app chat --with "n:social"
refused bad_request "not a number" chat create --app chat --with "5550101:chat"
refused usage "bad account id" chat create --app chat --with-account "nobody:social"
refused bad_member "yourself" chat create --app chat --with "+15550101:chat"
refused usage "twice" chat create --app chat --with @bob:social --with BOB:social
refused bad_member "twice, by profile and by id" chat create --app chat \
  --with @bob:social --with-account "$B:social"
check_fails "bad app" t alice chat create --app mail --with @bob:social
check_fails "no member" t alice chat create --app chat
check_fails "not logged in" t nobody chat list

# Safety numbers: the same for both people, different for another pair,
# 60 digits in groups of five.
sab=$(t alice --json safety-number "$B" | jq -r .safety_number)
sba=$(t bob --json safety-number "$A" | jq -r .safety_number)
sac=$(t alice --json safety-number "$C" | jq -r .safety_number)
check_eq "safety number: 12 groups of 5 digits" 1 \
  "$(grep -cE '^[0-9]{5}( [0-9]{5}){11}$' <<<"$sab")"
check_eq "safety number: alice and bob see the same" "$sab" "$sba"
check_eq "safety number: another pair differs" 1 "$([[ $sab != "$sac" ]] && echo 1)"
check "safety number (text)" t alice safety-number "$B"
check_fails "safety number of a malformed id" t alice safety-number nope

summary chat
