#!/usr/bin/env bash
# `tessera chat` (the interactive mode, src/cli/cli_tui.c) against a real
# tesserad: alice and bob on social, one direct conversation. bob runs the
# interactive mode with its input on a FIFO; the script types commands and
# text into it while alice uses the one-shot commands, and waits (with a
# timeout, never a fixed sleep) for what must show up in bob's output:
# the joined conversation in the live list, its history on /open, alice's
# message pushed while it is open, a notice for a message in another
# conversation, bob's line sent (and read by alice), refusals of a line
# that is not UTF-8 or too long, reconnecting after a server restart (a
# Welcome and a message pushed afterwards), /new by profile and by account
# id (a message request, which carol answers with /accept from piped
# input), and /quit, end of input and SIGINT each ending it with status 0.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${TSR_BUILD:-$root/build/asan}
work=$(mktemp -d)
srv_pid=
tui_pid=
trap '[[ -n $tui_pid ]] && kill "$tui_pid" 2>/dev/null;
      [[ -n $srv_pid ]] && kill "$srv_pid" 2>/dev/null && wait "$srv_pid"; rm -rf "$work"' EXIT
. "$root/tests/integration/lib.bash"

# start_server LOG [PORT]: tesserad on PORT (0: a random one); sets srv_pid, port.
start_server() {
  "$build/tesserad" --data-dir "$work/data" --listen "127.0.0.1:${2:-0}" --log-file "$1" \
    --workers 2 --rate-per-account 0 </dev/null >/dev/null 2>&1 &
  srv_pid=$!
  port=
  for _ in $(seq 500); do # the log names the port; poll it for up to 5 s
    port=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$1" 2>/dev/null | grep -o '[0-9]*$')
    [[ -n $port ]] && return 0
    sleep 0.01
  done
  echo "chat_tui: tesserad did not start"
  exit 1
}
start_server "$work/log"

export TSR_PASSWORD='correct horse battery staple'
t() { "$build/tessera" --server "127.0.0.1:$port" --state "$work/$1.db" "${@:2}"; }
# tx: t in place of this (sub)shell, so that $! is tessera's own pid.
tx() { exec "$build/tessera" --server "127.0.0.1:$port" --state "$work/$1.db" "${@:2}"; }
texts() { t "$1" --json chat read "$2" | jq -r '.messages[] | .text' | paste -sd'|'; }

out=$work/tui.out
mark=0
# since: remember where the output is now; wait_for looks only after it.
since() { mark=$(stat -c %s "$out"); }
# wait_for NAME TEXT: TEXT appears in the output after the mark within 10 s.
wait_for() {
  for _ in $(seq 200); do
    if tail -c +$((mark + 1)) "$out" | grep -qF -- "$2"; then
      passed=$((passed + 1))
      return 0
    fi
    sleep 0.05
  done
  failed=$((failed + 1))
  echo "  FAIL $1: no '$2' in the output; its end:"
  tail -n 8 "$out" | sed 's/^/    /'
  return 1
}
# ends NAME PID: PID exits within 10 s, with status 0.
ends() {
  local rc=timeout
  for _ in $(seq 200); do
    if ! kill -0 "$2" 2>/dev/null; then
      wait "$2"
      rc=$?
      break
    fi
    sleep 0.05
  done
  check_eq "$1" 0 "$rc"
}
type_line() { printf '%s\n' "$1" >&3; }

for who in alice bob; do
  check "$who registers" t "$who" register --login "$who"
  check "$who social profile" t "$who" profile set social --handle "$who"
  check "$who reachable" t "$who" reachability social set social everyone
  check "$who uploads KeyPackages" t "$who" keys upload --count 5
done
# carol keeps the default rules: a conversation with her is a message request.
check "carol registers" t carol register --login carol
check "carol social profile" t carol profile set social --handle carol
check "carol uploads KeyPackages" t carol keys upload --count 5
A=$(t alice --json whoami | jq -r .account_id)
C=$(t carol --json whoami | jq -r .account_id)
D=$(t alice chat create --app social --with @bob:social)
check_eq "conversation id" 22 "${#D}"
check "alice writes first" t alice chat send "$D" "before you came"

# bob's interactive mode; fd 3 stays open so that input does not end.
mkfifo "$work/in"
tx bob chat <"$work/in" >"$out" 2>"$work/tui.err" &
tui_pid=$!
exec 3>"$work/in"
wait_for "online" "-- online"
wait_for "joins the conversation from its Welcome" "joined [1] social direct"
wait_for "the list shows the waiting message" "1 unread  ${A:0:8}: before you came"
since
type_line "/list"
wait_for "/list" "[1] social direct active"
since
type_line "/open 1"
wait_for "history" "${A:0:8}: before you came"
since
check "alice sends while bob looks" t alice chat send "$D" "live from alice"
wait_for "pushed message shown live" " ${A:0:8}: live from alice"
since
type_line "hi alice"
wait_for "sending" "sending… #1"
wait_for "sent" "sent #1, seq "
check_eq "alice reads bob's line" "before you came|live from alice|hi alice" \
  "$(texts alice "$D")"
# Edits, reactions and typing of the open conversation, one line each.
since
LIVE=$(t alice --json chat read "$D" --no-receipt | jq -r '.messages[] | select(.text == "live from alice") | .seq')
check "alice edits her message" t alice chat edit "$D" "$LIVE" "live, edited"
wait_for "an edit shown live" "${A:0:8} edited #$LIVE: live, edited"
check "alice reacts" t alice chat react "$D" "$LIVE" "+1"
wait_for "a reaction shown live" "${A:0:8} reacted +1 to #$LIVE"

# A message in another conversation: a notice with its number.
G=$(t alice chat create --app social --with @bob:social --group)
wait_for "joins a new group live" "joined [2] social group"
since
check "alice writes in the group" t alice chat send "$G" "elsewhere"
wait_for "notice for another conversation" "-- [2] ${A:0:8}: elsewhere  (/open 2)"

# Refusals: nothing is sent.
since
printf 'bad \xff\xfe bytes\n' >&3
wait_for "invalid UTF-8 refused" "not valid UTF-8: not sent"
head -c 60001 /dev/zero | tr '\0' x >&3
printf '\n' >&3
wait_for "long line refused" "line too long (60001 bytes, at most 60000): not sent"
type_line "/nonsense"
wait_for "unknown command" "unknown command /nonsense"
check_eq "nothing more arrived" "before you came|live, edited|hi alice" \
  "$(texts alice "$D")"
since
type_line "/back"
wait_for "back to the list, with the unread one" "[2] social group active  1 unread"

# The server restarts: offline, online again, and pushes flow again.
since
kill "$srv_pid"
wait "$srv_pid"
srv_pid=
wait_for "offline shown" "offline — reconnecting"
start_server "$work/log2" "$port"
# The delivery service answers a little after the port opens: wait for a
# sync to pass, so that alice's send below is not refused as unavailable.
ready=0
for _ in $(seq 100); do
  t alice ws call sync "\"conversation\":\"$D\",\"after\":0" >/dev/null 2>&1 && ready=1 && break
  sleep 0.05
done
check_eq "delivery service back" 1 "$ready"
wait_for "online again" "-- online"
# A new conversation (not D: see the note on seqs at the end), its Welcome
# and a message pushed to the reconnected session; bob is in the list view.
since
G2=$(t alice chat create --app social --with @bob:social --group)
wait_for "a Welcome pushed after reconnecting" "joined [3] social group"
since
check "alice sends after the restart" t alice chat send "$G2" "after the restart"
wait_for "pushed after reconnecting" "[3] social group active  1 unread  ${A:0:8}: after the restart"

# New conversations from the interactive mode: by profile, and a request
# by account id, which carol answers with /accept (her input piped).
since
type_line "/new social @alice:social"
wait_for "/new by profile opens it" "== [4] social direct active"
type_line "/new social --account $C:social"
wait_for "/new by account id opens it" "== [5] social direct"
since
type_line "may I?"
wait_for "sent into the request" "sent #2, seq"
got=$(printf '/open 1\n/accept\n' | t carol chat 2>&1)
check_eq "carol sees the request" 1 "$(grep -cm1 '^\[1\] social direct request' <<<"$got")"
check_eq "carol sees its message" 1 "$(grep -c ' #[0-9]* [^ ]*: may I?$' <<<"$got")"
check_eq "carol accepts with /accept" 1 "$(grep -c '^-- the conversation is now active' <<<"$got")"
check_eq "carol's list says active" active \
  "$(t carol --json chat list | jq -r '.conversations[0].state')"
check_eq "alice sees the conversation bob made" 4 \
  "$(t alice --json chat list | jq '.conversations | length')"

since
type_line "/quit"
ends "/quit exits 0" "$tui_pid"
tui_pid=
exec 3>&-
check_eq "nothing on stderr" 0 "$(wc -c <"$work/tui.err")"

# End of input quits too, once the line typed before it is sent.
printf 'via a pipe\n' | t bob chat open "$G2" >"$work/pipe.out" 2>&1
check_eq "end of input: exit 0" 0 "$?"
check_eq "the piped line was sent" 1 "$(grep -c '^-- sent #1, seq' "$work/pipe.out")"
check_eq "alice reads it" "after the restart|via a pipe" "$(texts alice "$G2")"
got=$(printf '/open 9\n' | t bob chat 2>&1)
check_eq "no such conversation" 1 "$(grep -c '^!! no conversation 9' <<<"$got")"
check_fails "not logged in" t nobody chat </dev/null

# SIGINT quits cleanly.
mkfifo "$work/in2"
out=$work/int.out
mark=0
tx bob chat <"$work/in2" >"$out" 2>&1 &
tui_pid=$!
exec 4>"$work/in2"
wait_for "online (second run)" "-- online"
kill -INT "$tui_pid"
ends "SIGINT exits 0" "$tui_pid"
tui_pid=
exec 4>&-

# Note: messages after the restart go to a conversation made after it. In
# a conversation whose log the server swept (every device acknowledged)
# before a restart, the delivery service starts its seqs at 1 again, and
# clients drop the new messages as already stored (a server bug, seen with
# slow clients under valgrind); this test is about the CLI.
summary chat_tui
