#!/usr/bin/env bash
# Three people on three apps talking end-to-end encrypted: Alice on chat
# (phone number), Bob on social (@bob), Carol on messenger (username carol).
# They open a group across the three apps and direct conversations, naming
# each other by profile (number, @handle, username; never by account id),
# and each reads the same messages in the same order. Every message is an MLS
# (RFC 9420) message made on the sender's device; the server only orders
# and delivers ciphertext.
#
# Usage: scripts/demo.sh            starts its own tesserad (temporary data,
#                                   random port) and stops it at the end
#        TSR_SERVER=127.0.0.1:8080 scripts/demo.sh
#                                   uses a running server (e.g. `make run`;
#                                   then it needs its data dir for SMS codes:
#                                   TSR_DATA=./data)
# Builds with `make` first if needed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${TSR_BIN:-$root/build/release}
[[ -x $bin/tessera && -x $bin/tesserad ]] || make -C "$root" >/dev/null
work=$(mktemp -d)
srv_pid=
trap '[[ -n $srv_pid ]] && kill "$srv_pid" 2>/dev/null && wait "$srv_pid" 2>/dev/null; rm -rf "$work"' EXIT

if [[ -z ${TSR_SERVER:-} ]]; then
  "$bin/tesserad" --data-dir "$work/data" --listen 127.0.0.1:0 --log-file "$work/log" \
    </dev/null >/dev/null 2>&1 &
  srv_pid=$!
  for _ in $(seq 500); do
    port=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$work/log" 2>/dev/null | grep -o '[0-9]*$' || true)
    [[ -n ${port:-} ]] && break
    sleep 0.01
  done
  [[ -n ${port:-} ]] || { echo "demo: tesserad did not start" >&2; exit 1; }
  TSR_SERVER=127.0.0.1:$port
  data=$work/data
else
  data=${TSR_DATA:-$root/data}
fi
export TSR_SERVER TSR_PASSWORD='correct horse battery staple'
say() { printf '\n\033[1m%s\033[0m\n' "$*"; }
run() { printf '$ tessera %s\n' "${*:2}"; "$bin/tessera" --state "$work/$1.db" "${@:2}"; }
q() { "$bin/tessera" --state "$work/$1.db" "${@:2}"; } # quiet: for ids
sms_code() { awk -v p="$1" '$1 == p { c = $2 } END { print c }' "$data/dev-sms.log"; }
n=$RANDOM # fresh names on a shared server

say "Alice joins chat with her phone number"
run alice register --login "alice$n" --phone "+1555$n"01 >/dev/null
q alice phone code "+1555$n"01 >/dev/null
run alice phone verify "+1555$n"01 "$(sms_code "+1555$n"01)"
run alice profile set chat --name Alice >/dev/null
say "Bob joins social as @bob$n, Carol joins messenger as carol$n"
run bob register --login "bob$n" >/dev/null
run bob profile set social --handle "bob$n" --name Bob >/dev/null
run carol register --login "carol$n" >/dev/null
run carol profile set messenger --username "carol$n" --name Carol >/dev/null
say "Each lets the others start conversations from any app"
for from in chat social messenger; do
  q alice reachability chat set "$from" everyone >/dev/null
  q bob reachability social set "$from" everyone >/dev/null
  q carol reachability messenger set "$from" everyone >/dev/null
done
run bob reachability social
say "Each device publishes MLS KeyPackages (its keys for being added)"
for p in alice bob carol; do run $p keys upload --count 10; done

say "Alice (chat) opens a group with @bob$n (social) and carol$n (messenger)"
printf '$ tessera chat create --app chat --with @bob%s:social --with carol%s:messenger\n' "$n" "$n"
G=$(q alice chat create --app chat --with "@bob$n:social" --with "carol$n:messenger")
echo "group $G"
say "Bob and Carol join it (their devices open the Welcome)"
run bob chat list
run carol chat list
run alice chat send "$G" "hi both, from chat"
run bob chat send "$G" "hello from social"
run carol chat send "$G" "and from messenger"
say "Everyone reads the same messages in the same order"
for p in alice bob carol; do echo "-- $p"; run $p chat read "$G"; done

say "Carol (messenger) writes to Bob (social) directly"
printf '$ tessera chat create --app messenger --with @bob%s:social\n' "$n"
D=$(q carol chat create --app messenger --with "@bob$n:social")
run carol chat send "$D" "just us two"
run bob chat list >/dev/null
run bob chat read "$D"
say "Bob (social) finds Alice (chat) by her phone number"
printf '$ tessera chat create --app social --with +1555%s01:chat\n' "$n"
P=$(q bob chat create --app social --with "+1555${n}01:chat")
run bob chat send "$P" "got your number"
run alice chat list >/dev/null
run alice chat read "$P"
say "Done: the server stored only ciphertext (no plaintext in its files)."
if [[ -n $srv_pid ]] && grep -rqaF -- "hi both, from chat" "$work/data" "$work/log"; then
  echo "demo: found plaintext on the server!" >&2
  exit 1
fi
