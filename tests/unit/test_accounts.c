/* Integration tests of accounts and devices: each case talks to a real
 * tesserad (two workers, random port, temporary data dir) over HTTP, as
 * docs/protocol.md describes the calls. Every wait is bounded by a
 * deadline; nothing sleeps to synchronise. */
#define _GNU_SOURCE /* memmem, strcasestr */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proto/base64.h"
#include "server_harness.h"
#include "test.h"

static server srv;

/* ---- identities, devices, sessions ---- */

/* The devices array of GET /v1/devices (in resp), or NULL. */
static const cJSON *devices_of(const char *token) {
  if (call(srv.port, "GET", "/v1/devices", token, NULL) != 200) return NULL;
  const cJSON *d = cJSON_GetObjectItemCaseSensitive(resp.json, "devices");
  return cJSON_IsArray(d) ? d : NULL;
}

/* current flag of device_id in the list, -1 when absent. */
static int current_flag(const cJSON *devs, const char *device_id) {
  const cJSON *d;
  cJSON_ArrayForEach(d, devs) {
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(d, "device_id");
    if (cJSON_IsString(id) && strcmp(id->valuestring, device_id) == 0)
      return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d, "current"));
  }
  return -1;
}

#define TSR_CERT_MSG_LEN 55 /* label, 0x00, 32-byte key */
static identity alice_id, bob_id;
static session alice1, alice2, bob1;

/* ---- cases ---- */

static void test_register_and_auth(void) {
  identity_new(&alice_id);
  identity_new(&bob_id);
  CHECK_INT(do_register(srv.port, "alice", PW, NULL, &alice_id, &alice1), 201);
  CHECK_INT(do_register(srv.port, "bob", PW, NULL, &bob_id, &bob1), 201);
  const cJSON *d = devices_of(alice1.token);
  CHECK(d != NULL);
  CHECK_INT(cJSON_GetArraySize(d), 1);
  CHECK_INT(current_flag(d, alice1.device_id), 1);
  /* duplicate login, compared case-insensitively */
  identity other;
  identity_new(&other);
  CHECK_INT(do_register(srv.port, "ALICE", PW, NULL, &other, NULL), 409);
  CHECK(strcmp(err_code(), "conflict") == 0);
}

/* GET /v1/accounts/{id}/keys: the identity key and each live device's
 * signature key with its certificate (which verifies under that identity
 * key). */
static void test_account_keys(void) {
  char path[128], ik[64];
  snprintf(path, sizeof path, "/v1/accounts/%s/keys", bob1.account_id);
  CHECK_INT(call(srv.port, "GET", path, NULL, NULL), 401);
  CHECK_INT(call(srv.port, "GET", path, alice1.token, NULL), 200);
  b64(bob_id.pk, 32, ik);
  CHECK(strcmp(jstr("account_id"), bob1.account_id) == 0);
  CHECK(strcmp(jstr("identity_key"), ik) == 0);
  const cJSON *ds = cJSON_GetObjectItemCaseSensitive(resp.json, "devices");
  const cJSON *d0 = cJSON_GetArrayItem(ds, 0);
  CHECK_INT(cJSON_GetArraySize(ds), 1);
  CHECK(strcmp(json_str(d0, "device_id"), bob1.device_id) == 0);
  CHECK(cJSON_GetObjectItemCaseSensitive(d0, "name") == NULL); /* names stay private */
  uint8_t key[32], cert[64], msg[TSR_CERT_MSG_LEN];
  size_t g1 = 0, g2 = 0;
  const char *k = json_str(d0, "signature_key"), *c = json_str(d0, "certificate");
  CHECK(b64_decode(key, sizeof key, k, strlen(k), B64_MODE_URL_NOPAD, &g1) == 0 &&
        g1 == 32);
  CHECK(b64_decode(cert, sizeof cert, c, strlen(c), B64_MODE_URL_NOPAD, &g2) == 0 &&
        g2 == 64);
  memcpy(msg, "tessera-device-cert-v1", 22);
  msg[22] = 0;
  memcpy(msg + 23, key, 32);
  CHECK(crypto_sign_verify_detached(cert, msg, sizeof msg, bob_id.pk) == 0);
  /* unknown or malformed ids */
  CHECK_INT(call(srv.port, "GET", "/v1/accounts/AAAAAAAAAAAAAAAAAAAAAA/keys",
                 alice1.token, NULL),
            404);
  CHECK_INT(call(srv.port, "GET", "/v1/accounts/nope/keys", alice1.token, NULL), 404);
  snprintf(path, sizeof path, "/v1/accounts/%s/other", bob1.account_id);
  CHECK_INT(call(srv.port, "GET", path, alice1.token, NULL), 404);
}

static void test_login(void) {
  CHECK_INT(do_login(srv.port, "alice", "wrong password!", &alice_id, NULL), 401);
  CHECK(strcmp(err_code(), "unauthorized") == 0);
  CHECK_INT(do_login(srv.port, "nobody", PW, &alice_id, NULL), 401);
  CHECK(strcmp(err_code(), "unauthorized") == 0);
  /* a certificate by another identity key is refused */
  CHECK_INT(do_login(srv.port, "alice", PW, &bob_id, NULL), 400);
  CHECK_INT(do_login(srv.port, "Alice", PW, &alice_id, &alice2), 201);
  CHECK(strcmp(alice2.account_id, alice1.account_id) == 0);
  const cJSON *d = devices_of(alice1.token);
  CHECK(d && cJSON_GetArraySize(d) == 2);
  CHECK_INT(current_flag(d, alice1.device_id), 1);
  CHECK_INT(current_flag(d, alice2.device_id), 0);
  d = devices_of(alice2.token);
  CHECK(d && cJSON_GetArraySize(d) == 2);
  CHECK_INT(current_flag(d, alice1.device_id), 0);
  CHECK_INT(current_flag(d, alice2.device_id), 1);
}

static void test_revoke_and_logout(void) {
  char path[128];
  /* another account's device: not found, and it keeps working */
  snprintf(path, sizeof path, "/v1/devices/%s", bob1.device_id);
  CHECK_INT(call(srv.port, "DELETE", path, alice1.token, NULL), 404);
  CHECK_INT(call(srv.port, "GET", "/v1/devices", bob1.token, NULL), 200);
  CHECK_INT(call(srv.port, "DELETE", "/v1/devices/not-an-id", alice1.token, NULL), 404);
  snprintf(path, sizeof path, "/v1/devices/%s", alice2.device_id);
  CHECK_INT(call(srv.port, "DELETE", path, alice1.token, NULL), 200);
  /* at once, whichever worker answers */
  for (int i = 0; i < 4; i++) {
    CHECK_INT(call(srv.port, "GET", "/v1/devices", alice2.token, NULL), 401);
    CHECK_INT(call(srv.port, "GET", "/v1/devices", alice1.token, NULL), 200);
  }
  CHECK_INT(call(srv.port, "DELETE", path, alice1.token, NULL), 404);
  const cJSON *d = devices_of(alice1.token);
  CHECK(d && cJSON_GetArraySize(d) == 1);
  /* logout of a third device */
  session s3;
  CHECK_INT(do_login(srv.port, "alice", PW, &alice_id, &s3), 201);
  CHECK_INT(call(srv.port, "DELETE", "/v1/sessions/current", s3.token, NULL), 200);
  CHECK_INT(call(srv.port, "GET", "/v1/devices", s3.token, NULL), 401);
  CHECK_INT(call(srv.port, "DELETE", "/v1/sessions/current", s3.token, NULL), 401);
  CHECK_INT(call(srv.port, "GET", "/v1/devices", alice1.token, NULL), 200);
}

static int expire_link_codes(void) {
  return server_db_long(&srv, "UPDATE link_codes SET expires_at = 1 WHERE used = 0",
                        true) == -1
             ? -1
             : 0;
}

static void test_link(void) {
  CHECK_INT(call(srv.port, "POST", "/v1/devices/link-codes", alice1.token, "{}"), 201);
  char code[16];
  snprintf(code, sizeof code, "%s", jstr("code"));
  CHECK_INT((int)strlen(code), 8);
  const cJSON *exp = cJSON_GetObjectItemCaseSensitive(resp.json, "expires_at");
  CHECK(cJSON_IsNumber(exp) && exp->valuedouble > (double)time(NULL) + 200);
  char dev[400], body[1024];
  /* a certificate not made by alice's identity key: refused, code kept */
  device_json(&bob_id, "linked", dev, sizeof dev);
  snprintf(body, sizeof body, "{\"code\":\"%s\",\"device\":%s}", code, dev);
  CHECK_INT(call(srv.port, "POST", "/v1/devices/link", NULL, body), 400);
  device_json(&alice_id, "linked", dev, sizeof dev);
  snprintf(body, sizeof body, "{\"code\":\"%s\",\"device\":%s}", code, dev);
  CHECK_INT(call(srv.port, "POST", "/v1/devices/link", NULL, body), 201);
  session linked;
  CHECK(take_session(&linked));
  CHECK(strcmp(linked.account_id, alice1.account_id) == 0);
  CHECK_INT(call(srv.port, "GET", "/v1/devices", linked.token, NULL), 200);
  /* used */
  CHECK_INT(call(srv.port, "POST", "/v1/devices/link", NULL, body), 401);
  CHECK(strcmp(err_code(), "unauthorized") == 0);
  /* unknown */
  snprintf(body, sizeof body, "{\"code\":\"%08d\",\"device\":%s}",
           (atoi(code) + 1) % 100000000, dev);
  CHECK_INT(call(srv.port, "POST", "/v1/devices/link", NULL, body), 401);
  /* expired */
  CHECK_INT(call(srv.port, "POST", "/v1/devices/link-codes", alice1.token, NULL), 201);
  snprintf(code, sizeof code, "%s", jstr("code"));
  CHECK_INT(expire_link_codes(), 0);
  snprintf(body, sizeof body, "{\"code\":\"%s\",\"device\":%s}", code, dev);
  CHECK_INT(call(srv.port, "POST", "/v1/devices/link", NULL, body), 401);
  /* malformed */
  snprintf(body, sizeof body, "{\"code\":\"12ab5678\",\"device\":%s}", dev);
  CHECK_INT(call(srv.port, "POST", "/v1/devices/link", NULL, body), 400);
  snprintf(body, sizeof body, "{\"code\":12345678,\"device\":%s}", dev);
  CHECK_INT(call(srv.port, "POST", "/v1/devices/link", NULL, body), 400);
  CHECK_INT(call(srv.port, "DELETE", "/v1/sessions/current", linked.token, NULL), 200);
}

static void test_phone(void) {
  const char *req = "{\"phone\":\"+15550100\"}";
  CHECK_INT(call(srv.port, "POST", "/v1/phone/codes", alice1.token, req), 200);
  char code[8] = "";
  CHECK(sms_code(srv.data, "+15550100", code));
  char body[256], wrong[8];
  snprintf(wrong, sizeof wrong, "%06d", (atoi(code) + 1) % 1000000);
  snprintf(body, sizeof body, "{\"phone\":\"+15550100\",\"code\":\"%s\"}", wrong);
  CHECK_INT(call(srv.port, "POST", "/v1/phone/verify", alice1.token, body), 401);
  /* the code belongs to alice's request: bob cannot use it */
  snprintf(body, sizeof body, "{\"phone\":\"+15550100\",\"code\":\"%s\"}", code);
  CHECK_INT(call(srv.port, "POST", "/v1/phone/verify", bob1.token, body), 401);
  CHECK_INT(call(srv.port, "POST", "/v1/phone/verify", alice1.token, body), 200);
  /* used once */
  CHECK_INT(call(srv.port, "POST", "/v1/phone/verify", alice1.token, body), 401);
  /* the number is alice's now */
  CHECK_INT(call(srv.port, "POST", "/v1/phone/codes", bob1.token, req), 409);
  identity x;
  identity_new(&x);
  CHECK_INT(do_register(srv.port, "carol", PW, "+15550100", &x, NULL), 409);
  CHECK_INT(do_register(srv.port, "carol", PW, "+15550101", &x, NULL), 201);
  /* malformed */
  CHECK_INT(
      call(srv.port, "POST", "/v1/phone/codes", alice1.token, "{\"phone\":\"555\"}"),
      400);
  CHECK_INT(call(srv.port, "POST", "/v1/phone/verify", alice1.token,
                 "{\"phone\":\"+15550100\",\"code\":123456}"),
            400);
}

static void test_bad_input(void) {
  char dev[400], ik[64], body[2048];
  device_json(&alice_id, "d", dev, sizeof dev);
  b64(alice_id.pk, 32, ik);
  const char *bad[] = {"",
                       "not json",
                       "[1,2]",
                       "{\"login\":\"dave\"",
                       "{\"login\":\"dave\",\"login\":\"eve\"}",
                       NULL};
  /* Every attempt counts against the address's link limit, which test_link
   * used up: these come from an address of their own. */
  set_source_address(0x7f000003);
  for (int i = 0; bad[i]; i++) {
    CHECK_INT(call(srv.port, "POST", "/v1/accounts", NULL, bad[i]), 400);
    CHECK(strcmp(err_code(), "bad_request") == 0);
    CHECK_INT(call(srv.port, "POST", "/v1/sessions", NULL, bad[i]), 400);
    CHECK_INT(call(srv.port, "POST", "/v1/devices/link", NULL, bad[i]), 400);
  }
  set_source_address(0);
  const char *fmt[] = {
      "{\"login\":7,\"password\":\"%1$s\",\"identity_key\":\"%2$s\",\"device\":%3$s}",
      "{\"login\":\"dave\",\"pw\":\"%1$s\",\"identity_key\":\"%2$s\",\"device\":%3$s}",
      "{\"login\":\"dave\",\"password\":\"short\",\"pw\":\"%1$s\",\"identity_key\":\"%2$"
      "s\","
      "\"device\":%3$s}",
      "{\"login\":\"da "
      "ve\",\"password\":\"%1$s\",\"identity_key\":\"%2$s\",\"device\":%3$s}",
      "{\"login\":\"dv\",\"password\":\"%1$s\",\"identity_key\":\"%2$s\",\"device\":%3$"
      "s}",
      "{\"login\":\"dave\",\"password\":\"%1$s\",\"ik\":\"%2$s\",\"identity_key\":"
      "\"AAAA\","
      "\"device\":%3$s}",
      "{\"login\":\"dave\",\"password\":\"%1$s\",\"identity_key\":\"%2$s\",\"dev\":%3$s}",
      "{\"login\":\"dave\",\"password\":\"%1$s\",\"identity_key\":\"%2$s\",\"device\":"
      "\"x\","
      "\"dev\":%3$s}",
      "{\"login\":\"dave\",\"password\":\"%1$s\",\"identity_key\":\"%2$s\",\"device\":%3$"
      "s,"
      "\"phone\":\"12345\"}",
      "{\"login\":\"dave\",\"password\":\"%1$s\",\"identity_key\":\"%2$s\",\"device\":%3$"
      "s,"
      "\"email\":true}",
      "{\"login\":\"dave\",\"password\":\"%1$s\",\"identity_key\":\"%2$s\",\"dev\":%3$s,"
      "\"device\":{\"name\":\"d\",\"signature_key\":\"AAAA\",\"certificate\":\"AAAA\"}}",
      NULL};
  for (int i = 0; fmt[i]; i++) {
    snprintf(body, sizeof body, fmt[i], PW, ik, dev);
    CHECK_INT(call(srv.port, "POST", "/v1/accounts", NULL, body), 400);
  }
  /* a certificate by another identity key */
  identity other;
  identity_new(&other);
  device_json(&other, "d", dev, sizeof dev);
  snprintf(
      body, sizeof body,
      "{\"login\":\"dave\",\"password\":\"%s\",\"identity_key\":\"%s\",\"device\":%s}",
      PW, ik, dev);
  CHECK_INT(call(srv.port, "POST", "/v1/accounts", NULL, body), 400);
  /* unknown fields are ignored */
  device_json(&alice_id, "d", dev, sizeof dev);
  snprintf(
      body, sizeof body,
      "{\"login\":\"dave\",\"password\":\"%s\",\"identity_key\":\"%s\",\"device\":%s,"
      "\"future\":[1,{\"x\":null}]}",
      PW, ik, dev);
  CHECK_INT(call(srv.port, "POST", "/v1/accounts", NULL, body), 201);
  CHECK_INT(call(srv.port, "PUT", "/v1/accounts", NULL, body), 405);
}

/* Every authenticated call refuses no token, a garbage token and a revoked one. */
static void test_authorization_matrix(void) {
  session gone;
  CHECK_INT(do_login(srv.port, "bob", PW, &bob_id, &gone), 201);
  CHECK_INT(call(srv.port, "DELETE", "/v1/sessions/current", gone.token, NULL), 200);
  char path[128];
  snprintf(path, sizeof path, "/v1/devices/%s", bob1.device_id);
  const struct {
    const char *method, *path, *body;
  } calls[] = {
      {"GET", "/v1/devices", NULL},
      {"DELETE", "/v1/sessions/current", NULL},
      {"DELETE", path, NULL},
      {"POST", "/v1/devices/link-codes", "{}"},
      {"POST", "/v1/phone/codes", "{\"phone\":\"+15550199\"}"},
      {"POST", "/v1/phone/verify", "{\"phone\":\"+15550199\",\"code\":\"123456\"}"},
  };
  const char *tokens[] = {NULL, "", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "abc",
                          gone.token};
  for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++)
    for (size_t k = 0; k < sizeof tokens / sizeof tokens[0]; k++) {
      int st = call(srv.port, calls[i].method, calls[i].path, tokens[k], calls[i].body);
      if (st != 401)
        fprintf(stderr, "  %s %s token#%zu -> %d\n", calls[i].method, calls[i].path, k,
                st);
      CHECK_INT(st, 401);
      CHECK(strcmp(err_code(), "unauthorized") == 0);
    }
  /* bob's own device still works after all that */
  CHECK_INT(call(srv.port, "GET", "/v1/devices", bob1.token, NULL), 200);
}

/* last_seen_at is refreshed at most once a minute, in batches a worker
 * writes once a second (server/seen.h): after every device's last_seen_at
 * is set far back, the one device making requests (three of them: noted
 * once) has it refreshed, and no other device does. */
static void test_last_seen(void) {
  CHECK(server_db_long(&srv, "UPDATE devices SET last_seen_at = 1; SELECT changes()",
                       true) > 1);
  for (int i = 0; i < 3; i++) CHECK(devices_of(bob1.token) != NULL);
  uint64_t deadline = now_ms() + 10000;
  long seen;
  while ((seen = server_db_long(&srv, "SELECT MAX(last_seen_at) FROM devices", false)) <=
             1 &&
         now_ms() < deadline)
    tick();
  CHECK(seen >= (long)time(NULL) - 60);
  CHECK_INT(
      server_db_long(&srv, "SELECT COUNT(*) FROM devices WHERE last_seen_at > 1", false),
      1);
  /* the list shows it, on the current device */
  const cJSON *d;
  int fresh = 0, current = 0;
  cJSON_ArrayForEach(d, devices_of(bob1.token)) {
    const cJSON *ls = cJSON_GetObjectItemCaseSensitive(d, "last_seen_at");
    if (cJSON_IsNumber(ls) && ls->valuedouble >= (double)seen) {
      fresh++;
      current += cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d, "current"));
    }
  }
  CHECK_INT(current, 1);
  CHECK_INT(fresh, 1);
}

static void test_rate_limit(void) {
  identity id;
  identity_new(&id);
  CHECK_INT(do_register(srv.port, "erin", PW, NULL, &id, NULL), 201);
  int st = 0, n = 0;
  for (n = 0; n < 40; n++) {
    st = do_login(srv.port, "erin", "not the password", &id, NULL);
    if (st != 401) break;
  }
  CHECK_INT(st, 429);
  CHECK(strcmp(err_code(), "rate_limited") == 0);
  CHECK(strcasestr(resp.head, "\r\nRetry-After: ") != NULL);
  /* 10, shared by both worker processes (at most one refilled meanwhile) */
  if (n < 10 || n > 11) fprintf(stderr, "  %d failed logins before 429\n", n);
  CHECK(n >= 10 && n <= 11);
  /* the right password is limited too while the bucket is empty */
  int limited = 0;
  for (int i = 0; i < 4; i++) limited += do_login(srv.port, "erin", PW, &id, NULL) == 429;
  CHECK(limited > 0);
}

static void test_durability(void) {
  server s;
  if (!server_start(&s, "acc", true, "2", NULL)) {
    CHECK(!"server start");
    server_stop(&s, false);
    return;
  }
  identity id;
  identity_new(&id);
  session a;
  CHECK_INT(do_register(s.port, "frank", PW, NULL, &id, &a), 201);
  server_kill9(&s);
  CHECK(server_start(&s, "acc", false, NULL, NULL));
  session b;
  CHECK_INT(do_login(s.port, "frank", PW, &id, &b), 201);
  CHECK(strcmp(a.account_id, b.account_id) == 0);
  CHECK_INT(call(s.port, "GET", "/v1/devices", a.token, NULL), 200);
  CHECK_INT(call(s.port, "GET", "/v1/devices", b.token, NULL), 200);
  server_stop(&s, false);
}

/* Pipelined requests are answered in order even when the first waits for
 * a password hash and a commit. */
static void test_pipelined_deferred(void) {
  int fd = tcp_connect(srv.port);
  CHECK(fd >= 0);
  char dev[400], body[1024], req[4096];
  device_json(&bob_id, "pipe", dev, sizeof dev);
  snprintf(body, sizeof body, "{\"login\":\"bob\",\"password\":\"%s\",\"device\":%s}", PW,
           dev);
  int n =
      snprintf(req, sizeof req,
               "POST /v1/sessions HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n%s"
               "GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
               strlen(body), body);
  CHECK(send_all(fd, req, (size_t)n));
  static char buf[1 << 16];
  size_t len = 0;
  uint64_t deadline = now_ms() + DEADLINE_MS;
  while (wait_fd(fd, POLLIN, deadline)) {
    ssize_t k = recv(fd, buf + len, sizeof buf - 1 - len, 0);
    if (k <= 0) break;
    len += (size_t)k;
  }
  buf[len] = '\0';
  close(fd);
  char *first = strstr(buf, "HTTP/1.1 201"), *second = strstr(buf, "HTTP/1.1 200");
  CHECK(first && second && first < second);
  CHECK(strstr(buf, "\"status\":\"ok\"") != NULL);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  if (sodium_init() < 0 || !find_binary()) {
    fprintf(stderr, "tesserad not found (set TSR_BUILD)\n");
    printf("accounts: 0 passed, 1 failed, 0 skipped\n");
    return 1;
  }
  if (!server_start(&srv, "acc", true, "2", NULL)) {
    fprintf(stderr, "tesserad did not start; log %s\n", srv.log);
    printf("accounts: 0 passed, 1 failed, 0 skipped\n");
    return 1;
  }
  RUN(test_register_and_auth);
  RUN(test_account_keys);
  RUN(test_login);
  RUN(test_revoke_and_logout);
  RUN(test_link);
  RUN(test_phone);
  RUN(test_bad_input);
  RUN(test_authorization_matrix);
  RUN(test_pipelined_deferred);
  RUN(test_last_seen);
  RUN(test_rate_limit);
  RUN(test_durability);
  cJSON_Delete(resp.json);
  resp.json = NULL;
  kill(srv.pid, SIGTERM);
  int st = server_wait(&srv, 15000);
  if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    fprintf(stderr, "FAIL server did not exit 0 on SIGTERM\n");
    test_failed_++;
  }
  server_stop(&srv, false);
  return test_report("accounts");
}
