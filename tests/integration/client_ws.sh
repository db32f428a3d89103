#!/usr/bin/env bash
# The tessera CLI's realtime session (libtessera's tsr_ws) against a real
# tesserad: `ws call whoami` with the device's ids, `ws call conversations`,
# ping, the error line of an unknown op and of malformed fields, `ws listen
# --seconds 1` ending on time, refusals without a login, with a revoked
# device and with no server, and the session over TLS 1.3. Each device is
# its own state file; the servers run on random loopback ports, stopped by pid.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${TSR_BUILD:-$root/build/asan}
work=$(mktemp -d)
srv_pid= tls_pid=
trap '[[ -n $srv_pid ]] && kill "$srv_pid" 2>/dev/null && wait "$srv_pid"
[[ -n $tls_pid ]] && kill "$tls_pid" 2>/dev/null && wait "$tls_pid"; rm -rf "$work"' EXIT
. "$root/tests/integration/lib.bash"

start_server() { # start_server LOG [ARGS...]: prints the port
  local p=
  for _ in $(seq 500); do # the log names the port; poll it for up to 5 s
    p=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$1" 2>/dev/null | grep -o '[0-9]*$')
    [[ -n $p ]] && break
    sleep 0.01
  done
  echo "$p"
}

"$build/tesserad" --data-dir "$work/data" --listen 127.0.0.1:0 --log-file "$work/log" \
  --workers 2 </dev/null >/dev/null 2>&1 &
srv_pid=$!
port=$(start_server "$work/log")
if [[ -z $port ]]; then
  echo "client_ws: tesserad did not start"
  exit 1
fi

export TSR_PASSWORD='correct horse battery staple'
t() { "$build/tessera" --server "127.0.0.1:$port" --state "$work/$1.db" "${@:2}"; }
json() { jq -r "$1"; }
ms() { date +%s%3N; }

check "register" t a register --login alice --device-name laptop
acc=$(t a --json whoami | json .account_id)
dev=$(t a --json whoami | json .device_id)
check "ws call whoami" t a ws call whoami
check_eq "ws whoami account" "$acc" "$(t a --json ws call whoami | json .account_id)"
check_eq "ws whoami device" "$dev" "$(t a --json ws call whoami | json .device_id)"
check_eq "ws whoami text" "account_id: $acc" "$(t a ws call whoami | grep '^account_id: ')"
check_eq "ws call conversations" 0 "$(t a --json ws call conversations | json '.conversations | length')"
check_eq "ws call ping" "{}" "$(t a --json ws call ping)"
check_fails "ws call with fields" t a ws call sync '"conversation":"AAAAAAAAAAAAAAAAAAAAAA","after":0'
grep -q '^error: not_found: ' "$work/last.err" && passed=$((passed + 1)) ||
  { failed=$((failed + 1)); echo "  FAIL sync unknown conversation: $(cat "$work/last.err")"; }

check_fails "unknown op" t a ws call no.such.op
grep -q '^error: unknown_op: ' "$work/last.err" && passed=$((passed + 1)) ||
  { failed=$((failed + 1)); echo "  FAIL unknown op code: $(cat "$work/last.err")"; }
check_fails "malformed fields" t a ws call ping '"a":'
grep -q '^error: usage: ' "$work/last.err" && passed=$((passed + 1)) ||
  { failed=$((failed + 1)); echo "  FAIL malformed fields code: $(cat "$work/last.err")"; }
check_fails "ws call without arguments" t a ws call
check_fails "ws call not logged in" t nobody ws call whoami
grep -q '^error: state: ' "$work/last.err" && passed=$((passed + 1)) ||
  { failed=$((failed + 1)); echo "  FAIL not logged in code: $(cat "$work/last.err")"; }

# listen: no conversations, so no pushes; it ends after about one second.
t0=$(ms)
out=$(t a ws listen --seconds 1 2>"$work/listen.err")
rc=$? el=$(($(ms) - t0))
check_eq "ws listen exit" 0 "$rc"
[[ -z $out && ! -s $work/listen.err ]] && passed=$((passed + 1)) ||
  { failed=$((failed + 1)); echo "  FAIL ws listen output: '$out' $(cat "$work/listen.err")"; }
((el >= 1000 && el < 5000)) && passed=$((passed + 1)) ||
  { failed=$((failed + 1)); echo "  FAIL ws listen took $el ms"; }
check_fails "ws listen bad seconds" t a ws listen --seconds x

# A second device revoked: its sessions are refused with unauthorized.
key_b=$(t b device key)
cert_b=$(t a device certify "$key_b")
check "login b" t b login --login alice --certificate "$cert_b" --device-name phone
dev_b=$(t b --json whoami | json .device_id)
check_eq "ws whoami b" "$dev_b" "$(t b --json ws call whoami | json .device_id)"
check "revoke b" t a device revoke "$dev_b"
check_fails "ws call revoked" t b ws call whoami
grep -q '^error: unauthorized: ' "$work/last.err" && passed=$((passed + 1)) ||
  { failed=$((failed + 1)); echo "  FAIL revoked code: $(cat "$work/last.err")"; }
check_fails "ws listen revoked" t b ws listen --seconds 1

# The session over TLS 1.3 (a self-signed certificate trusted with --ca).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -subj /CN=localhost -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
  -keyout "$work/key.pem" -out "$work/cert.pem" >/dev/null 2>&1
"$build/tesserad" --data-dir "$work/tdata" --listen 127.0.0.1:0 --log-file "$work/tlog" \
  --workers 1 --tls-cert "$work/cert.pem" --tls-key "$work/key.pem" </dev/null >/dev/null 2>&1 &
tls_pid=$!
tport=$(start_server "$work/tlog")
tt() { "$build/tessera" --server "127.0.0.1:$tport" --state "$work/$1.db" --tls "${@:2}"; }
check "tls register" tt ta --ca "$work/cert.pem" register --login tina
tacc=$(tt ta --ca "$work/cert.pem" --json whoami | json .account_id)
check_eq "tls ws whoami" "$tacc" "$(tt ta --ca "$work/cert.pem" --json ws call whoami | json .account_id)"
check "tls ws listen" tt ta --ca "$work/cert.pem" ws listen --seconds 1
check_fails "tls ws untrusted" tt ta ws call whoami
grep -q '^error: tls: ' "$work/last.err" && passed=$((passed + 1)) ||
  { failed=$((failed + 1)); echo "  FAIL tls error: $(cat "$work/last.err")"; }

# No server: the call gives up after the client's attempts.
kill "$srv_pid" && wait "$srv_pid"
srv_pid=
check_fails "ws call without a server" t a ws call whoami
grep -q '^error: network: ' "$work/last.err" && passed=$((passed + 1)) ||
  { failed=$((failed + 1)); echo "  FAIL no server code: $(cat "$work/last.err")"; }

summary client_ws
