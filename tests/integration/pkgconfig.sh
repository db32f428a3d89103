#!/usr/bin/env bash
# libtessera as a third party uses it: installed into a temporary prefix,
# found with pkg-config (tessera.pc, relocatable), a program compiled and
# linked against it alone, run against a real tesserad: it registers a
# device and reads who it is.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${TSR_BUILD:-$root/build/asan}
work=$(mktemp -d)
srv_pid=
trap '[[ -n $srv_pid ]] && kill "$srv_pid" 2>/dev/null && wait "$srv_pid"; rm -rf "$work"' EXIT
. "$root/tests/integration/lib.bash"

check "install into a prefix" cmake --install "$build" --prefix "$work/prefix"
pc=$(find "$work/prefix" -name tessera.pc | head -n 1)
check_eq "tessera.pc installed" 1 "$([[ -f $pc ]] && echo 1)"
export PKG_CONFIG_PATH=$(dirname "$pc")
check_eq "pkg-config finds it" 1 "$(pkg-config --exists tessera && echo 1)"
check_eq "include dir inside the prefix" "$(realpath "$work/prefix/include")" \
  "$(realpath "$(pkg-config --variable=includedir tessera)")"

cat >"$work/app.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tessera/tessera.h>

int main(int argc, char **argv) {
  if (argc != 3 || tsr_client_global_init() != 0) return 2;
  tsr_client_config cfg = {.port = (uint16_t)atoi(argv[1]), .state_path = argv[2]};
  tsr_client *c;
  int rc = tsr_client_new(&cfg, &c);
  if (rc) {
    fprintf(stderr, "new: %s\n", tsr_strerror(rc));
    return 1;
  }
  tsr_reply r = {0};
  tsr_register_params p = {
      .login = "pkgapp", .password = "correct horse battery staple", .device_name = "app"};
  rc = tsr_account_register_sync(c, &p, &r);
  if (rc == 0) rc = r.err;
  printf("register %s\n", rc ? tsr_strerror(rc) : "ok");
  tsr_reply_clear(&r);
  tsr_session_info info;
  if (rc == 0 && tsr_client_session(c, &info) == 0) printf("login %s\n", info.login);
  tsr_client_free(c);
  return rc ? 1 : 0;
}
C
# A sanitizer build's libraries need the sanitizer runtimes at link time.
extra=
grep -qs 'fsanitize=address' "$build/build.ninja" && extra="-fsanitize=address,undefined"
check "compile and link with pkg-config alone" \
  cc -std=c17 -Wall -Wextra -Werror $extra -o "$work/app" "$work/app.c" \
  $(pkg-config --cflags --libs tessera)

"$build/tesserad" --data-dir "$work/data" --listen 127.0.0.1:0 --log-file "$work/log" \
  --workers 1 </dev/null >/dev/null 2>&1 &
srv_pid=$!
port=
for _ in $(seq 500); do
  port=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$work/log" 2>/dev/null | grep -o '[0-9]*$')
  [[ -n $port ]] && break
  sleep 0.01
done
check_eq "the program registers and knows its login" "register ok
login pkgapp" "$("$work/app" "$port" "$work/app.db" 2>&1)"

summary pkgconfig
