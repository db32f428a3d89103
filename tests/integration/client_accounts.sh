#!/usr/bin/env bash
# The tessera CLI (libtessera) against a real tesserad: register, a second
# device logging in with the password and a certificate from the first, a
# third linked with a code, device list, revoke, whoami failing after the
# revoke, logout, and the error lines of refused calls. Each device is its
# own state file; the server runs on a random loopback port, stopped by pid.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${TSR_BUILD:-$root/build/asan}
work=$(mktemp -d)
srv_pid=
trap '[[ -n $srv_pid ]] && kill "$srv_pid" 2>/dev/null && wait "$srv_pid"; rm -rf "$work"' EXIT
. "$root/tests/integration/lib.bash"

start_tesserad client_accounts --workers 2

export TSR_PASSWORD='correct horse battery staple'
t() { "$build/tessera" --server "127.0.0.1:$port" --state "$work/$1.db" "${@:2}"; }
json() { jq -r "$1"; }

check "register" t a register --login alice --phone +15550100 --email a@example.org --device-name laptop
check_eq "state file mode" "600" "$(stat -c %a "$work/a.db")"
check "whoami a" t a whoami
acc=$(t a --json whoami | json .account_id)
dev_a=$(t a --json whoami | json .device_id)
check_eq "account id length" 22 "${#acc}"
check_fails "register twice on one state" t a register --login alice
check_fails "register a taken login" t x register --login alice

# Second device: password + certificate made by the first device.
check_fails "login without certificate" t b login --login alice --device-name phone
key_b=$(t b device key)
cert_b=$(t a device certify "$key_b")
TSR_PASSWORD=wrong-password check_fails "login with a wrong password" \
  t b login --login alice --certificate "$cert_b" --device-name phone
grep -q '^error: unauthorized: ' "$work/last.err" && passed=$((passed + 1)) ||
  { failed=$((failed + 1)); echo "  FAIL wrong password code: $(cat "$work/last.err")"; }
check "login with certificate" t b login --login alice --certificate "$cert_b" --device-name phone
check_eq "same account" "$acc" "$(t b --json whoami | json .account_id)"
dev_b=$(t b --json whoami | json .device_id)

# Third device: a link code and certificate from the first device.
key_c=$(t c device key)
out=$(t a --json device link-code --for "$key_c")
code=$(json .code <<<"$out")
cert_c=$(json .certificate <<<"$out")
check_eq "code is 8 digits" 1 "$(grep -cE '^[0-9]{8}$' <<<"$code")"
check "link" t c device link "$code" "$cert_c" --device-name tablet
check_eq "linked account" "$acc" "$(t c --json whoami | json .account_id)"
check_fails "link code used twice" t d device link "$code" "$cert_c"

check_eq "three devices" 3 "$(t a --json devices | json '.devices | length')"
check_eq "current flag" "$dev_a" "$(t a --json devices | json '.devices[] | select(.current) | .device_id')"
check "devices text" t a devices

# Revoke the second device from the first: its session is dead at once.
check "revoke" t a device revoke "$dev_b"
check_fails "whoami after revoke" t b whoami
grep -q '^error: unauthorized: ' "$work/last.err" && passed=$((passed + 1)) ||
  { failed=$((failed + 1)); echo "  FAIL revoked code: $(cat "$work/last.err")"; }
check_eq "two devices" 2 "$(t a --json devices | json '.devices | length')"
check_fails "revoke unknown device" t a device revoke AAAAAAAAAAAAAAAAAAAAAA

# Logout of the third device; it can no longer call, the others can.
check "logout" t c logout
check_fails "whoami after logout" t c whoami
check "whoami a still" t a whoami
check_eq "one device" 1 "$(t a --json devices | json '.devices | length')"

# The same library over TLS 1.3: a second tesserad with a self-signed
# certificate for 127.0.0.1 and localhost, trusted with --ca.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -subj /CN=localhost -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
  -keyout "$work/key.pem" -out "$work/cert.pem" >/dev/null 2>&1
"$build/tesserad" --data-dir "$work/tdata" --listen 127.0.0.1:0 --log-file "$work/tlog" \
  --workers 1 --tls-cert "$work/cert.pem" --tls-key "$work/key.pem" </dev/null >/dev/null 2>&1 &
tls_pid=$!
trap '[[ -n $srv_pid ]] && kill "$srv_pid" 2>/dev/null && wait "$srv_pid"; kill "$tls_pid" 2>/dev/null && wait "$tls_pid"; rm -rf "$work"' EXIT
tport=
for _ in $(seq 500); do
  tport=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$work/tlog" 2>/dev/null | grep -o '[0-9]*$')
  [[ -n $tport ]] && break
  sleep 0.01
done
tt() { "$build/tessera" --server "$1:$tport" --state "$work/$2.db" --tls "${@:3}"; }
check "tls register" tt 127.0.0.1 ta --ca "$work/cert.pem" register --login tina
check_eq "tls whoami" tina "$(tt 127.0.0.1 ta --ca "$work/cert.pem" --json whoami | json .login)"
check "tls by host name" tt localhost ta --ca "$work/cert.pem" whoami
check_fails "tls without trusting the certificate" tt 127.0.0.1 ta whoami
grep -q '^error: tls: server certificate not accepted: self-signed' "$work/last.err" &&
  passed=$((passed + 1)) || { failed=$((failed + 1)); echo "  FAIL tls error: $(cat "$work/last.err")"; }
check_fails "plain client to a tls server" "$build/tessera" --server "127.0.0.1:$tport" \
  --state "$work/ta.db" whoami
check_fails "tls client to a plain server" "$build/tessera" --server "127.0.0.1:$port" \
  --state "$work/a.db" --tls --ca "$work/cert.pem" whoami

summary client_accounts
