/* Integration tests of WebSocket session authentication (docs/protocol.md,
 * "Realtime session"): each case talks to a real tesserad (random port,
 * temporary data dir). Accounts are registered over HTTP and the
 * WebSocket client (masked frames, one reader per connection) comes from
 * server_harness.h. Every wait is bounded by a
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
#include <sqlite3.h>
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
#include "proto/ws.h"
#include "server_harness.h"
#include "test.h"

static server two; /* 2 workers, default auth timeout */
static server one; /* 1 worker, ws_auth_timeout 0.4 s */
static server lim; /* 2 workers, small general request limits */

/* ---- accounts ---- */

/* Registers login with a first device (out) and logs in a second (out2). */
static bool make_account(int port, const char *login, session *out, session *out2) {
  identity id;
  crypto_sign_keypair(id.pk, id.sk);
  char dev[400], ik[64], body[2048];
  device_json(&id, "first", dev, sizeof dev);
  b64(id.pk, 32, ik);
  snprintf(body, sizeof body,
           "{\"login\":\"%s\",\"password\":\"%s\",\"identity_key\":\"%s\",\"device\":%s}",
           login, PW, ik, dev);
  if (call(port, "POST", "/v1/accounts", NULL, body) != 201 || !take_session(out))
    return false;
  if (!out2) return true;
  device_json(&id, "second", dev, sizeof dev);
  snprintf(body, sizeof body, "{\"login\":\"%s\",\"password\":\"%s\",\"device\":%s}",
           login, PW, dev);
  return call(port, "POST", "/v1/sessions", NULL, body) == 201 && take_session(out2);
}

static int revoke_device(int port, const session *by, const session *target) {
  char path[128];
  snprintf(path, sizeof path, "/v1/devices/%s", target->device_id);
  return call(port, "DELETE", path, by->token, NULL);
}

/* ---- WebSocket client ---- */

static ws_msg msg;

/* The next text reply, parsed (caller frees), or NULL (a close or nothing). */
static cJSON *ws_reply(reader *r) {
  uint64_t deadline = now_ms() + DEADLINE_MS;
  while (ws_recv_until(r, &msg, deadline)) {
    if (msg.opcode == WS_OP_TEXT) return cJSON_Parse(msg.data);
    if (msg.opcode == WS_OP_CLOSE) return NULL;
  }
  return NULL;
}

/* Sends one op and returns its reply's error code, "" for ok, or "none"
 * when no reply came; *ok gets the "ok" object's member key if wanted. */
static char last_ok[512];
static const char *ws_op(reader *r, const char *json) {
  static char code[64];
  last_ok[0] = '\0';
  if (!ws_text(r->fd, json)) return "none";
  cJSON *j = ws_reply(r);
  if (!j) return "none";
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
  const cJSON *ok = cJSON_GetObjectItemCaseSensitive(j, "ok");
  if (e)
    snprintf(code, sizeof code, "%s", json_str(e, "code"));
  else if (ok) {
    code[0] = '\0';
    char *s = cJSON_PrintUnformatted(ok);
    snprintf(last_ok, sizeof last_ok, "%s", s ? s : "");
    free(s);
  } else
    snprintf(code, sizeof code, "?");
  cJSON_Delete(j);
  return code;
}

/* The close code the server sends before deadline_ms (skipping other
 * frames), 0 when none came. */
static uint16_t ws_expect_close(reader *r, uint64_t ms) {
  uint64_t deadline = now_ms() + ms;
  while (ws_recv_until(r, &msg, deadline))
    if (msg.opcode == WS_OP_CLOSE) return msg.close_code;
  return 0;
}

static reader w1, w2, w3; /* big: keep off the stack */
static session al1, al2, bo1, bo2, ca1, ca2, da1, da2;

/* ---- cases ---- */

static void test_accounts_setup(void) {
  CHECK(make_account(two.port, "alice", &al1, &al2));
  CHECK(make_account(two.port, "bob", &bo1, &bo2));
  CHECK(make_account(one.port, "carol", &ca1, &ca2));
  CHECK(make_account(one.port, "dave", &da1, &da2));
}

static void test_auth_by_op(void) {
  CHECK_INT(ws_open(two.port, &w1, NULL, NULL, NULL), 101);
  /* Before auth: ping works, other ops are refused, unknown ops unknown. */
  CHECK(strcmp(ws_op(&w1, "{\"op\":\"ping\",\"id\":1}"), "") == 0);
  CHECK(strcmp(ws_op(&w1, "{\"op\":\"whoami\",\"id\":2}"), "unauthorized") == 0);
  CHECK(strcmp(ws_op(&w1, "{\"op\":\"nope\",\"id\":3}"), "unknown_op") == 0);
  /* Wrong tokens: unknown, malformed, missing, not a string. */
  uint8_t rnd[32];
  char fake[64], req[256];
  randombytes_buf(rnd, sizeof rnd);
  b64(rnd, sizeof rnd, fake);
  snprintf(req, sizeof req, "{\"op\":\"auth\",\"id\":4,\"token\":\"%s\"}", fake);
  CHECK(strcmp(ws_op(&w1, req), "unauthorized") == 0);
  CHECK(strcmp(ws_op(&w1, "{\"op\":\"auth\",\"id\":5,\"token\":\"abc\"}"),
               "unauthorized") == 0);
  CHECK(strcmp(ws_op(&w1, "{\"op\":\"auth\",\"id\":6}"), "bad_request") == 0);
  CHECK(strcmp(ws_op(&w1, "{\"op\":\"auth\",\"id\":7,\"token\":7}"), "bad_request") == 0);
  CHECK(strcmp(ws_op(&w1, "{\"op\":\"whoami\",\"id\":8}"), "unauthorized") == 0);
  /* The right token. */
  snprintf(req, sizeof req, "{\"op\":\"auth\",\"id\":\"a\",\"token\":\"%s\"}", al1.token);
  CHECK(strcmp(ws_op(&w1, req), "") == 0);
  CHECK(strstr(last_ok, al1.account_id) && strstr(last_ok, al1.device_id));
  CHECK(strcmp(ws_op(&w1, "{\"op\":\"whoami\",\"id\":9}"), "") == 0);
  CHECK(strstr(last_ok, al1.device_id) != NULL);
  /* Once only, even with another valid token. */
  snprintf(req, sizeof req, "{\"op\":\"auth\",\"id\":10,\"token\":\"%s\"}", bo1.token);
  CHECK(strcmp(ws_op(&w1, req), "already_authenticated") == 0);
  CHECK(strcmp(ws_op(&w1, "{\"op\":\"whoami\",\"id\":11}"), "") == 0);
  CHECK(strstr(last_ok, al1.device_id) != NULL);
  close(w1.fd);
}

static void test_auth_by_header(void) {
  CHECK_INT(ws_open(two.port, &w1, bo1.token, NULL, NULL), 101);
  CHECK(strcmp(ws_op(&w1, "{\"op\":\"whoami\",\"id\":1}"), "") == 0);
  CHECK(strstr(last_ok, bo1.account_id) && strstr(last_ok, bo1.device_id));
  /* The header wins: a later auth op is refused, the identity stays. */
  char req[256];
  snprintf(req, sizeof req, "{\"op\":\"auth\",\"id\":2,\"token\":\"%s\"}", al1.token);
  CHECK(strcmp(ws_op(&w1, req), "already_authenticated") == 0);
  CHECK(strcmp(ws_op(&w1, "{\"op\":\"whoami\",\"id\":3}"), "") == 0);
  CHECK(strstr(last_ok, bo1.device_id) != NULL);
  close(w1.fd);
  /* A bad token in the header: no session at all. */
  CHECK_INT(
      ws_open(two.port, &w2, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", NULL, NULL),
      401);
  close(w2.fd);
  CHECK_INT(ws_open(two.port, &w2, "short", NULL, NULL), 401);
  close(w2.fd);
}

static void test_auth_timeout(void) {
  /* Server "one" has ws_auth_timeout 0.4 s. Activity does not extend it. */
  uint64_t t0 = now_ms();
  CHECK_INT(ws_open(one.port, &w1, NULL, NULL, NULL), 101);
  CHECK(strcmp(ws_op(&w1, "{\"op\":\"ping\",\"id\":1}"), "") == 0);
  CHECK_INT(ws_expect_close(&w1, 5000), 1008);
  CHECK(now_ms() - t0 >= 350);
  close(w1.fd);
  /* Authenticated sessions (by op and by header) outlive the deadline. */
  CHECK_INT(ws_open(one.port, &w1, NULL, NULL, NULL), 101);
  char req[256];
  snprintf(req, sizeof req, "{\"op\":\"auth\",\"id\":1,\"token\":\"%s\"}", ca1.token);
  CHECK(strcmp(ws_op(&w1, req), "") == 0);
  CHECK_INT(ws_open(one.port, &w2, ca1.token, NULL, NULL), 101);
  CHECK_INT(ws_expect_close(&w1, 800), 0);
  CHECK(strcmp(ws_op(&w1, "{\"op\":\"whoami\",\"id\":2}"), "") == 0);
  CHECK(strcmp(ws_op(&w2, "{\"op\":\"whoami\",\"id\":2}"), "") == 0);
  close(w1.fd);
  close(w2.fd);
}

static void test_revoke_same_worker(void) {
  /* One worker: the revoking worker holds the sessions; they close at once,
   * without sending anything. Two sessions share ca2's device. */
  char req[256];
  CHECK_INT(ws_open(one.port, &w1, NULL, NULL, NULL), 101);
  snprintf(req, sizeof req, "{\"op\":\"auth\",\"id\":1,\"token\":\"%s\"}", ca2.token);
  CHECK(strcmp(ws_op(&w1, req), "") == 0);
  CHECK_INT(ws_open(one.port, &w2, ca2.token, NULL, NULL), 101);
  CHECK_INT(ws_open(one.port, &w3, ca1.token, NULL, NULL), 101);
  CHECK_INT(revoke_device(one.port, &ca1, &ca2), 200);
  CHECK_INT(ws_expect_close(&w1, 5000), 1008);
  CHECK_INT(ws_expect_close(&w2, 5000), 1008);
  /* Another device of the account keeps its session. */
  CHECK(strcmp(ws_op(&w3, "{\"op\":\"whoami\",\"id\":1}"), "") == 0);
  close(w1.fd);
  close(w2.fd);
  close(w3.fd);
  /* The revoked token is refused both ways. */
  CHECK_INT(ws_open(one.port, &w1, ca2.token, NULL, NULL), 401);
  close(w1.fd);
  CHECK_INT(ws_open(one.port, &w1, NULL, NULL, NULL), 101);
  CHECK(strcmp(ws_op(&w1, req), "unauthorized") == 0);
  close(w1.fd);
}

/* Sends whoami every 100 ms until the session is closed; returns the close
 * code (0: none within ms). Replies before the close must be ok or
 * unauthorized. */
static uint16_t poke_until_closed(reader *r, uint64_t ms) {
  uint64_t deadline = now_ms() + ms;
  while (now_ms() < deadline) {
    if (!ws_text(r->fd, "{\"op\":\"whoami\",\"id\":9}")) break;
    uint64_t until = now_ms() + 100;
    while (ws_recv_until(r, &msg, until)) {
      if (msg.opcode == WS_OP_CLOSE) return msg.close_code;
      if (msg.opcode == WS_OP_TEXT && !strstr(msg.data, "\"ok\""))
        CHECK(strstr(msg.data, "\"unauthorized\"") != NULL);
    }
  }
  return 0;
}

static void test_revoke_any_worker(void) {
  /* Two workers: the revocation may land on the other worker; then the
   * session's next op after the re-check interval (1 s) is refused and the
   * session closed with 1008. Either way the session ends with 1008. */
  CHECK_INT(ws_open(two.port, &w1, bo2.token, NULL, NULL), 101);
  CHECK(strcmp(ws_op(&w1, "{\"op\":\"whoami\",\"id\":1}"), "") == 0);
  CHECK_INT(revoke_device(two.port, &bo1, &bo2), 200);
  CHECK_INT(poke_until_closed(&w1, 5000), 1008);
  close(w1.fd);
  /* Logout revokes the caller's own device: its sessions end the same way. */
  CHECK_INT(ws_open(two.port, &w2, al2.token, NULL, NULL), 101);
  CHECK(strcmp(ws_op(&w2, "{\"op\":\"whoami\",\"id\":1}"), "") == 0);
  CHECK_INT(call(two.port, "DELETE", "/v1/sessions/current", al2.token, NULL), 200);
  CHECK_INT(poke_until_closed(&w2, 5000), 1008);
  close(w2.fd);
}

static void test_revoke_seen_by_recheck(void) {
  /* A revocation this worker did not commit (written straight into the
   * database, as another worker would): the next op after the re-check
   * interval is refused with 1008, and the device's other session on the
   * worker is closed too without having to speak. */
  char req[256];
  CHECK_INT(ws_open(one.port, &w1, da2.token, NULL, NULL), 101);
  CHECK_INT(ws_open(one.port, &w2, NULL, NULL, NULL), 101);
  snprintf(req, sizeof req, "{\"op\":\"auth\",\"id\":1,\"token\":\"%s\"}", da2.token);
  CHECK(strcmp(ws_op(&w2, req), "") == 0);
  CHECK(strcmp(ws_op(&w1, "{\"op\":\"whoami\",\"id\":1}"), "") == 0);
  uint8_t id[16];
  size_t got = 0;
  CHECK(b64_decode(id, sizeof id, da2.device_id, strlen(da2.device_id),
                   B64_MODE_URL_NOPAD, &got) == 0 &&
        got == 16);
  char db[400];
  snprintf(db, sizeof db, "%s/data/tessera.db", one.dir);
  sqlite3 *h = NULL;
  sqlite3_stmt *st = NULL;
  CHECK(sqlite3_open(db, &h) == SQLITE_OK);
  sqlite3_busy_timeout(h, 5000);
  CHECK(sqlite3_prepare_v2(h, "UPDATE devices SET revoked = 1 WHERE id = ?", -1, &st,
                           NULL) == SQLITE_OK);
  sqlite3_bind_blob(st, 1, id, 16, SQLITE_STATIC);
  CHECK(sqlite3_step(st) == SQLITE_DONE);
  CHECK(sqlite3_changes(h) == 1);
  sqlite3_finalize(st);
  sqlite3_close(h);
  CHECK_INT(poke_until_closed(&w1, 5000), 1008);
  CHECK_INT(ws_expect_close(&w2, 2000), 1008);
  close(w1.fd);
  close(w2.fd);
}

/* Server "lim": per address burst 40, per account burst 15, both refilling
 * 1 per second; 2 workers, and each call is a new connection, so the
 * kernel spreads them over both: the bounds below hold only if the workers
 * share one bucket (with one bucket per worker, up to twice as many get
 * through). */
static void test_request_limits(void) {
  session e1, e2;
  CHECK(make_account(lim.port, "erin", &e1, &e2)); /* 2 address tokens */
  int ok = 0, st = 0;
  for (int i = 0;
       i < 40 && (st = call(lim.port, "GET", "/v1/devices", e1.token, NULL)) == 200; i++)
    ok++;
  CHECK_INT(st, 429);
  CHECK(err_is("rate_limited"));
  CHECK(strcasestr(resp.head, "\r\nRetry-After: ") != NULL);
  if (ok < 15 || ok > 18) fprintf(stderr, "  %d authenticated calls before 429\n", ok);
  CHECK(ok >= 15 && ok <= 18);
  /* The bucket is the account's: its other device is limited too. */
  CHECK_INT(call(lim.port, "GET", "/v1/devices", e2.token, NULL), 429);
  /* WebSocket: before auth the address pays; after it the account, whose
   * bucket is empty: ops are refused, the session stays open. */
  CHECK_INT(ws_open(lim.port, &w1, NULL, NULL, NULL), 101);
  CHECK(strcmp(ws_op(&w1, "{\"op\":\"ping\",\"id\":1}"), "") == 0);
  char req[256];
  snprintf(req, sizeof req, "{\"op\":\"auth\",\"id\":2,\"token\":\"%s\"}", e1.token);
  CHECK(strcmp(ws_op(&w1, req), "") == 0);
  CHECK(strcmp(ws_op(&w1, "{\"op\":\"whoami\",\"id\":3}"), "rate_limited") == 0);
  CHECK(strcmp(ws_op(&w1, "{\"op\":\"ping\",\"id\":4}"), "rate_limited") == 0);
  close(w1.fd);
  /* The address: ~24 tokens spent so far of 40; unauthenticated calls
   * spend the rest. /health and /metrics are exempt. */
  int more = 0;
  for (int i = 0; i < 60 && (st = call(lim.port, "GET", "/nope", NULL, NULL)) == 404; i++)
    more++;
  CHECK_INT(st, 429);
  CHECK(err_is("rate_limited"));
  if (more < 10 || more > 24) fprintf(stderr, "  %d more calls before 429\n", more);
  CHECK(more >= 10 && more <= 24);
  CHECK_INT(call(lim.port, "GET", "/health", NULL, NULL), 200);
  CHECK_INT(call(lim.port, "GET", "/metrics", NULL, NULL), 200);
  /* Another address has its own bucket. */
  set_source_address(0x7f000002);
  CHECK_INT(call(lim.port, "GET", "/nope", NULL, NULL), 404);
  set_source_address(0);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  if (sodium_init() < 0 || !find_binary()) {
    fprintf(stderr, "tesserad not found (set TSR_BUILD)\n");
    printf("ws_auth: 0 passed, 1 failed, 0 skipped\n");
    return 1;
  }
  const char *quick[] = {"--ws-auth-timeout", "0.4", NULL};
  const char *limits[] = {"--rate-per-address",
                          "1",
                          "--burst-per-address",
                          "40",
                          "--rate-per-account",
                          "1",
                          "--burst-per-account",
                          "15",
                          NULL};
  if (!server_start(&two, "wsa", true, "2", NULL) ||
      !server_start(&one, "wsa", true, "1", quick) ||
      !server_start(&lim, "wsa", true, "2", limits)) {
    fprintf(stderr, "tesserad did not start; logs %s %s %s\n", two.log, one.log, lim.log);
    printf("ws_auth: 0 passed, 1 failed, 0 skipped\n");
    return 1;
  }
  RUN(test_accounts_setup);
  RUN(test_auth_by_op);
  RUN(test_auth_by_header);
  RUN(test_auth_timeout);
  RUN(test_revoke_same_worker);
  RUN(test_revoke_any_worker);
  RUN(test_revoke_seen_by_recheck);
  RUN(test_request_limits);
  cJSON_Delete(resp.json);
  resp.json = NULL;
  server_stop(&two, true);
  server_stop(&one, true);
  server_stop(&lim, true);
  return test_report("ws_auth");
}
