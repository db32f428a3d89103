#!/usr/bin/env bash
# The README walk-through "three people on three apps", run with the real
# tessera CLI against a real tesserad: Alice on chat (phone verified with
# the development sender's dev-sms.log), Bob on social (@bob, private),
# Carol on messenger (carol); they find each other, follow (request and
# approval), befriend, import contacts (mutual), and a block hides Carol
# from Alice in every app; Carol reaches Bob through a message request he
# accepts, and Alice's rule "nobody" refuses Bob. Every command below is
# the README's, in order;
# each person is a state file in the work directory (the current
# directory), the server's data dir is ./data; stopped by pid.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${TSR_BUILD:-$root/build/asan}
work=$(mktemp -d)
srv_pid=
trap '[[ -n $srv_pid ]] && kill "$srv_pid" 2>/dev/null && wait "$srv_pid"; rm -rf "$work"' EXIT
. "$root/tests/integration/lib.bash"
cd "$work" || exit 1

"$build/tesserad" --data-dir data --listen 127.0.0.1:0 --log-file log --workers 2 \
  </dev/null >/dev/null 2>&1 &
srv_pid=$!
port=
for _ in $(seq 500); do # the log names the port; poll it for up to 5 s
  port=$(grep -o 'listening on 127.0.0.1:[0-9]*' log 2>/dev/null | grep -o '[0-9]*$')
  [[ -n $port ]] && break
  sleep 0.01
done
if [[ -z $port ]]; then
  echo "walkthrough: tesserad did not start"
  exit 1
fi

export TSR_SERVER=127.0.0.1:$port
export TSR_PASSWORD='correct horse battery staple'
tessera() { "$build/tessera" "$@"; }
# The newest code the development sender wrote for a number.
sms_code() { awk -v p="$1" '$1 == p { c = $2 } END { print c }' data/dev-sms.log; }
# check_json NAME EXPECTED JQ CMD...: CMD --json must succeed and jq must give EXPECTED.
check_json() {
  local name=$1 want=$2 filter=$3 out
  shift 3
  if out=$("$@" 2>"$work/last.err"); then
    check_eq "$name" "$want" "$(jq -r "$filter" <<<"$out")"
  else
    failed=$((failed + 1))
    echo "  FAIL $name: $* -> $(head -c 300 "$work/last.err")"
  fi
}
# check_code NAME CODE CMD...: CMD must fail with "error: CODE: ...".
check_code() {
  local name=$1 code=$2
  shift 2
  check_fails "$name" "$@"
  check_eq "$name (code)" "$code" "$(sed -n 's/^error: \([a-z_]*\):.*/\1/p' "$work/last.err")"
}

# 1. Alice, on chat: an account with her phone, verified by SMS code.
check "alice registers" tessera --state alice.db register --login alice --phone +15550101
check "alice asks for a code" tessera --state alice.db phone code +15550101
code=$(sms_code +15550101)
check_eq "code has 6 digits" 1 "$(grep -cE '^[0-9]{6}$' <<<"$code")"
check "alice verifies" tessera --state alice.db phone verify +15550101 "$code"
check_json "alice chat profile" "+15550101" .profile.number \
  tessera --state alice.db --json profile set chat --name Alice --about "hi, it's Alice"

# 2. Bob, on social: @bob, a private account.
check "bob registers" tessera --state bob.db register --login bob
check_json "bob social profile" true .profile.private \
  tessera --state bob.db --json profile set social --handle bob --name Bob --bio "photos" --private on

# 3. Carol, on messenger: username carol.
check "carol registers" tessera --state carol.db register --login carol --phone +15550303
check_json "carol messenger profile" carol .profile.username \
  tessera --state carol.db --json profile set messenger --username carol --name Carol

# 4. Alice joins social too, finds Bob and asks to follow him.
check "alice social profile" tessera --state alice.db profile set social --handle alice --name Alice
check_json "alice finds bob" bob '.results[0].handle' tessera --state alice.db --json search social bo
check_json "bob is private" true .profile.private tessera --state alice.db --json profile show social bob
check "profile show (text)" tessera --state alice.db profile show social bob
check_json "alice follows bob" requested .state tessera --state alice.db --json follow bob
check_json "bob sees the request" alice '.incoming[0].handle' \
  tessera --state bob.db --json follow-requests
check_json "bob approves" approved .state tessera --state bob.db --json follow-requests approve alice
check_json "bob's followers" alice '.followers[0].handle' tessera --state bob.db --json followers
check_json "alice follows bob now" bob '.following[0].handle' tessera --state alice.db --json following
check "following (text)" tessera --state alice.db following

# 5. Bob joins messenger; Bob and Carol become friends.
check "bob messenger profile" tessera --state bob.db profile set messenger --username bob --name Bob
check_json "bob finds carol" carol '.results[0].username' \
  tessera --state bob.db --json search messenger car
check_json "bob asks carol" requested .state tessera --state bob.db --json friend request carol
check_json "carol sees it" bob '.incoming[0].username' tessera --state carol.db --json friend-requests
check_json "carol accepts" friends .state tessera --state carol.db --json friend accept bob
check_json "carol's friends" bob '.friends[0].username' tessera --state carol.db --json friends
check_json "bob's friends" carol '.friends[0].username' tessera --state bob.db --json friends

# 6. Carol joins chat; Alice and Carol import each other's numbers.
check "carol asks for a code" tessera --state carol.db phone code +15550303
check "carol verifies" tessera --state carol.db phone verify +15550303 "$(sms_code +15550303)"
check "carol chat profile" tessera --state carol.db profile set chat --name Carol
check_json "alice finds carol's number" Carol '.results[0].display_name' \
  tessera --state alice.db --json search chat +15550303
check_json "alice imports carol" +15550303 '.registered[0]' \
  tessera --state alice.db --json contacts import +15550303 +15550999
check_json "not mutual yet" false '.contacts[0].mutual' tessera --state alice.db --json contacts
echo +15550101 >carol-contacts.txt
check "carol imports alice" tessera --state carol.db contacts import --file carol-contacts.txt
check_json "mutual now" true '.contacts[0].mutual' tessera --state alice.db --json contacts
check "contacts (text)" tessera --state alice.db contacts

# 7. Carol blocks Alice: Alice no longer sees Carol in any app.
check_json "carol blocks alice" blocked .state tessera --state carol.db --json block chat +15550101
check_json "carol's blocks" +15550101 '.blocks[0].target' tessera --state carol.db --json blocks
check_code "chat profile hidden" not_found tessera --state alice.db profile show chat +15550303
check_code "messenger profile hidden" not_found tessera --state alice.db profile show messenger carol
check_json "absent from search" 0 '.results | length' tessera --state alice.db --json search messenger car
check_json "absent from contacts" 0 '.contacts | length' tessera --state alice.db --json contacts
check "blocks (text)" tessera --state carol.db blocks
check_code "alice may not reach carol" not_found tessera --state alice.db reach social messenger carol
check_code "nor carol alice (a block holds both ways)" not_found \
  tessera --state carol.db reach messenger social alice
check_json "bob still sees carol" carol .profile.username \
  tessera --state bob.db --json profile show messenger carol

# 8. Reachability: Carol asks to reach Bob on social from messenger; Bob's
#    default rule is graph (people he follows), so it becomes a message request.
req=$(tessera --state carol.db --json reach messenger social bob 2>"$work/last.err" |
  jq -r 'select(.allowed == false) | .request_id // empty')
check_eq "carol reaches bob: request" 1 "$([[ -n $req ]] && echo 1)"
check_json "carol's outgoing request" "$req bob" '.outgoing[0] | "\(.id) \(.to)"' \
  tessera --state carol.db --json requests
check_json "asking again: same request" "$req" .request_id \
  tessera --state carol.db --json reach messenger social bob
check_eq "reach (text)" "request sent: $req" \
  "$(tessera --state carol.db reach messenger social bob 2>&1)"
check_json "bob's incoming request" "$req carol messenger social" \
  '.incoming[0] | "\(.id) \(.from) \(.from_app) \(.to_app)"' tessera --state bob.db --json requests
check "requests (text)" tessera --state bob.db requests
check_json "bob accepts" accepted .state tessera --state bob.db --json requests accept "$req"
check_json "no request left" 0 '.incoming | length' tessera --state bob.db --json requests
check_json "carol may reach bob" true .allowed \
  tessera --state carol.db --json reach messenger social bob
check_eq "allowed (text)" allowed "$(tessera --state carol.db reach messenger social bob 2>&1)"

# 9. Alice lets nobody from social start a chat with her: Bob is refused.
check_json "alice's default rule" graph .from.social tessera --state alice.db --json reachability chat
check_json "alice sets social to nobody" nobody .from.social \
  tessera --state alice.db --json reachability chat set social nobody
check "reachability (text)" tessera --state alice.db reachability chat
check_code "bob may not reach alice" forbidden tessera --state bob.db reach social chat +15550101
check_eq "not reachable" 1 "$(grep -c 'not reachable' "$work/last.err")"

summary walkthrough
