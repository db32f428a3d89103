/* Bad-input catalog against one real tesserad (two workers, random port,
 * temporary data dir), checked against docs/protocol.md. While a bystander
 * authenticated WebSocket session and a keep-alive HTTP connection stay
 * open, every bad input goes on its own fresh connection and must get the
 * exact documented answer; afterwards the bystanders still work and the
 * test account's stored data reads back byte for byte as before. Process,
 * HTTP and WebSocket helpers come from server_harness.h. Every wait is
 * bounded by a deadline. */
#include <cjson/cJSON.h>
#include <signal.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proto/ws.h"
#include "server_harness.h"
#include "test.h"

static server srv;

static reader rd_case, rd_keep, rd_ws; /* big: keep off the stack */

/* Sends raw bytes on a fresh connection and reads one answer; the status,
 * or 0 when no answer came. */
static int raw_once(const char *req, size_t n) { return call_raw(srv.port, req, n); }

/* One JSON call (body of n bytes, may hold NUL) on a fresh connection. */
static int call_n(const char *method, const char *path, const char *token,
                  const char *body, size_t n) {
  char auth[256] = "";
  if (token) snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", token);
  return call_hdr_n(srv.port, method, path, auth, body, n);
}

/* ---- accounts ---- */

/* The members of a valid registration body (no braces) for login. */
static void register_fields(const char *login, char *out, size_t cap) {
  identity id;
  identity_new(&id);
  char ik[64], dev[400];
  device_json(&id, "d", dev, sizeof dev);
  b64(id.pk, 32, ik);
  snprintf(out, cap,
           "\"login\":\"%s\",\"password\":\"%s\",\"identity_key\":\"%s\",\"device\":%s",
           login, PW, ik, dev);
}

static user ann = {.phone = "+15550501"}, ben = {.phone = "+15550502"};

/* ---- WebSocket client ---- */

/* A raw client frame: first byte b0 (FIN/RSV/opcode), masked when asked,
 * with a payload length field of len (the payload sent is n bytes). */
static bool ws_raw(int fd, uint8_t b0, bool masked, uint64_t len, const void *p,
                   size_t n) {
  uint8_t hdr[WS_MAX_HEADER], mask[4] = {0x12, 0x34, 0x56, 0x78};
  size_t h = 0;
  hdr[h++] = b0;
  uint8_t m = masked ? 0x80 : 0;
  if (len < 126) {
    hdr[h++] = (uint8_t)(m | len);
  } else if (len <= 0xffff) {
    hdr[h++] = m | 126;
    hdr[h++] = (uint8_t)(len >> 8);
    hdr[h++] = (uint8_t)len;
  } else {
    hdr[h++] = m | 127;
    for (int i = 7; i >= 0; i--) hdr[h++] = (uint8_t)(len >> (8 * i));
  }
  if (masked) {
    memcpy(hdr + h, mask, 4);
    h += 4;
  }
  uint8_t *copy = malloc(n + 1);
  if (n) memcpy(copy, p, n);
  if (masked)
    for (size_t i = 0; i < n; i++) copy[i] ^= mask[i % 4];
  bool ok = send_all(fd, hdr, h) && send_all(fd, copy, n);
  free(copy);
  return ok;
}

static ws_msg msg;

/* Next text message (answering server pings); false on anything else. */
static bool ws_recv_text(reader *r, ws_msg *m) {
  for (int i = 0; i < 8; i++) {
    if (!ws_recv_until(r, m, now_ms() + DEADLINE_MS)) return false;
    if (m->opcode == WS_OP_TEXT) return true;
    if (m->opcode == WS_OP_PING)
      ws_raw(r->fd, 0x80 | WS_OP_PONG, true, m->len, m->data, m->len);
    else if (m->opcode != WS_OP_PONG)
      return false;
  }
  return false;
}

/* The close code the server sends (0 when none came). */
static uint16_t ws_expect_close(reader *r) {
  ws_msg *m = &msg;
  for (int i = 0; i < 16; i++) {
    if (!ws_recv_until(r, m, now_ms() + DEADLINE_MS)) return 0;
    if (m->opcode == WS_OP_CLOSE) return m->close_code;
  }
  return 0;
}

/* The answer to one text message on a fresh session, parsed. */
static cJSON *ws_once(const char *text) {
  if (ws_open(srv.port, &rd_case, NULL, NULL, NULL) != 101) return NULL;
  cJSON *j = NULL;
  if (ws_text(rd_case.fd, text) && ws_recv_text(&rd_case, &msg))
    j = cJSON_Parse(msg.data);
  return j;
}

static const char *ws_err(const cJSON *j) {
  const cJSON *c = cJSON_GetObjectItemCaseSensitive(
      cJSON_GetObjectItemCaseSensitive(j, "error"), "code");
  return cJSON_IsString(c) ? c->valuestring : "";
}

/* The session answers a ping after j (id 99) and is still open. */
static bool ws_still_open(reader *r) {
  return ws_text(r->fd, "{\"op\":\"ping\",\"id\":99}") && ws_recv_text(r, &msg) &&
         strcmp(msg.data, "{\"id\":99,\"ok\":{}}") == 0;
}

/* ---- the fixture ---- */

static const char *SOCIAL = "\"handle\":\"ann.s\",\"name\":\"Ann\",\"bio\":\"photos\","
                            "\"private\":false";
static const char *BLOCK = "\"app\":\"social\",\"target\":\"ben\"";
static const char *CONTACTS = "\"numbers\":[\"+15550502\"]";

/* Snapshot of the test account's data as JSON bodies. */
enum { N_SNAP = 8 };
static const char *snap_paths[N_SNAP] = {"/v1/apps/chat/profile",
                                         "/v1/apps/social/profile",
                                         "/v1/apps/messenger/profile",
                                         "/v1/devices",
                                         "/v1/blocks",
                                         "/v1/apps/chat/contacts",
                                         "/v1/apps/social/reachability",
                                         "/v1/apps/social/following"};
static char *snap_before[N_SNAP];

static void snapshot(char **out) {
  for (int i = 0; i < N_SNAP; i++) {
    CHECK_INT(call(srv.port, "GET", snap_paths[i], ann.s.token, NULL), 200);
    out[i] = strdup(resp.body);
  }
}

static void test_setup(void) {
  CHECK(make_user(&srv, &ann, "ann"));
  CHECK(make_user(&srv, &ben, "ben"));
  char b[512];
  CHECK_INT(call(srv.port, "PUT", "/v1/apps/chat/profile", ann.s.token,
                 "{\"display_name\":\"Ann\",\"about\":\"hi\"}"),
            201);
  snprintf(b, sizeof b, "{%s}", SOCIAL);
  CHECK_INT(call(srv.port, "PUT", "/v1/apps/social/profile", ann.s.token, b), 201);
  CHECK_INT(call(srv.port, "PUT", "/v1/apps/messenger/profile", ann.s.token,
                 "{\"username\":\"annshop\",\"name\":\"Ann's\",\"page\":true,"
                 "\"category\":\"Bakery\"}"),
            201);
  CHECK_INT(call(srv.port, "PUT", "/v1/apps/chat/profile", ben.s.token,
                 "{\"display_name\":\"Ben\"}"),
            201);
  CHECK_INT(call(srv.port, "PUT", "/v1/apps/social/profile", ben.s.token,
                 "{\"handle\":\"ben\"}"),
            201);
  CHECK_INT(call(srv.port, "POST", "/v1/apps/social/follows/ben", ann.s.token, NULL),
            200);
  snprintf(b, sizeof b, "{%s}", CONTACTS);
  CHECK_INT(call(srv.port, "POST", "/v1/apps/chat/contacts", ann.s.token, b), 200);
  CHECK_INT(call(srv.port, "PUT", "/v1/apps/social/reachability", ann.s.token,
                 "{\"from\":{\"chat\":\"nobody\"}}"),
            200);
  /* A block of a third account, so the block list is not empty. */
  user cy = {.phone = "+15550503"};
  CHECK(make_user(&srv, &cy, "cyd"));
  CHECK_INT(call(srv.port, "PUT", "/v1/apps/social/profile", cy.s.token,
                 "{\"handle\":\"cyd\"}"),
            201);
  CHECK_INT(call(srv.port, "POST", "/v1/blocks", ann.s.token,
                 "{\"app\":\"social\",\"target\":\"cyd\"}"),
            200);
  snapshot(snap_before);

  /* The bystanders: an authenticated session and a keep-alive connection. */
  CHECK(ws_open(srv.port, &rd_ws, NULL, NULL, NULL) == 101);
  snprintf(b, sizeof b, "{\"op\":\"auth\",\"id\":1,\"token\":\"%s\"}", ann.s.token);
  CHECK(ws_text(rd_ws.fd, b));
  CHECK(ws_recv_text(&rd_ws, &msg));
  CHECK(strstr(msg.data, "\"account_id\"") != NULL);
  rd_keep.fd = tcp_connect(srv.port);
  rd_keep.len = 0;
  CHECK(send_str(rd_keep.fd, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"));
  CHECK(read_response(&rd_keep, &resp));
  CHECK_INT(resp.status, 200);
}

/* ---- HTTP framing ---- */

static void expect_status(const char *what, const char *req, int status,
                          const char *code) {
  int st = raw_once(req, strlen(req));
  if (st != status || (code && strcmp(err_code(), code) != 0)) {
    fprintf(stderr, "  FAIL %s: got %d %s, want %d %s\n", what, st, resp.body, status,
            code ? code : "");
    test_case_failed_ = 1;
  }
}

static void test_http_framing(void) {
  /* A truncated request line, then the client closes its side: no answer,
   * and the server closes too. */
  int fd = tcp_connect(srv.port);
  CHECK(send_str(fd, "GET /hea"));
  shutdown(fd, SHUT_WR);
  size_t got = 0;
  CHECK(wait_closed(fd, DEADLINE_MS, &got));
  CHECK_INT(got, 0);
  close(fd);

  static char big[12000];
  int n = snprintf(big, sizeof big, "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ");
  memset(big + n, 'a', 9000);
  strcpy(big + n + 9000, "\r\n\r\n");
  expect_status("header bytes", big, 431, NULL);
  n = snprintf(big, sizeof big, "GET /health HTTP/1.1\r\nHost: x\r\n");
  for (int i = 0; i < 70; i++)
    n += snprintf(big + n, sizeof big - (size_t)n, "X-%d: 1\r\n", i);
  snprintf(big + n, sizeof big - (size_t)n, "\r\n");
  expect_status("header fields", big, 431, NULL);

  char req[512];
#define POST_HEAD "POST /v1/blocks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
  snprintf(req, sizeof req, POST_HEAD "Content-Length: 2000000\r\n\r\n", ann.s.token);
  expect_status("body over 1 MiB", req, 413, "too_large");
  const char *bad_cl[] = {"Content-Length: abc\r\n",
                          "Content-Length: -1\r\n",
                          "Content-Length: 1x\r\n",
                          "Content-Length: 2, 3\r\n",
                          "Content-Length: 2\r\nContent-Length: 3\r\n",
                          "Content-Length: 99999999999999999999999\r\n",
                          "Content-Length: 2\r\nTransfer-Encoding: chunked\r\n",
                          "Transfer-Encoding: chunked\r\nContent-Length: 2\r\n"};
  for (size_t i = 0; i < sizeof bad_cl / sizeof *bad_cl; i++) {
    snprintf(req, sizeof req, POST_HEAD "%s\r\n{}", ann.s.token, bad_cl[i]);
    expect_status(bad_cl[i], req, 400, "bad_request");
  }
  snprintf(req, sizeof req, POST_HEAD "Transfer-Encoding: gzip\r\n\r\n", ann.s.token);
  expect_status("TE gzip", req, 501, NULL);
  snprintf(req, sizeof req, POST_HEAD "Transfer-Encoding: gzip, chunked\r\n\r\n",
           ann.s.token);
  expect_status("TE gzip, chunked", req, 501, NULL);
#undef POST_HEAD
}

/* ---- malformed JSON bodies ---- */

/* Sends body (n bytes) and wants 400 bad_request. */
static void expect_bad(const char *what, const char *method, const char *path,
                       const char *token, const char *body, size_t n) {
  int st = call_n(method, path, token, body, n);
  if (st != 400 || strcmp(err_code(), "bad_request") != 0) {
    fprintf(stderr, "  FAIL %s %s [%s]: got %d %s\n", method, path, what, st, resp.body);
    test_case_failed_ = 1;
  }
}

static char deep[4200];

/* Malformations that hold whatever the endpoint: fields are the members of a
 * valid body (which alone would succeed). */
static void generic_bad(const char *method, const char *path, const char *token,
                        const char *fields) {
  static char b[8192];
  struct {
    const char *what, *fmt;
  } cases[] = {
      {"truncated", "{%s"},
      {"truncated in a string", "{%s,\"x\":\"ab"},
      {"trailing garbage", "{%s}xyz"},
      {"two objects", "{%s}{}"},
      {"array body", "[{%s}]"},
      {"1e400", "{%s,\"x\":1e400}"},
      {"2^66", "{%s,\"x\":99999999999999999999}"},
      {"invalid UTF-8", "{%s,\"x\":\"a\xff\xfe\"}"},
      {"overlong UTF-8", "{%s,\"x\":\"\xc0\xaf\"}"},
      {"lone high surrogate", "{%s,\"x\":\"\\ud800\"}"},
      {"lone low surrogate", "{%s,\"x\":\"\\udc00x\"}"},
      {"duplicate key", "{%s,\"x\":1,\"x\":1}"},
      {"single quotes", "{%s,'x':1}"},
      {"trailing comma", "{%s,}"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    int n = snprintf(b, sizeof b, cases[i].fmt, fields);
    expect_bad(cases[i].what, method, path, token, b, (size_t)n);
  }
  /* A raw NUL byte inside a string (unescaped control character). */
  int n = snprintf(b, sizeof b, "{%s,\"x\":\"a", fields);
  b[n++] = '\0';
  n += snprintf(b + n, sizeof b - (size_t)n, "b\"}");
  expect_bad("raw NUL", method, path, token, b, (size_t)n);
  expect_bad("empty body", method, path, token, "", 0);
  expect_bad("depth 1000 body", method, path, token, deep, strlen(deep));
}

/* Unknown fields are ignored: the call succeeds with status want. */
static void expect_ignored(const char *method, const char *path, const char *token,
                           const char *fields, int want) {
  static char b[8192];
  snprintf(b, sizeof b,
           "{\"zz_unknown\":{\"a\":[1,2,{\"b\":null}]},%s,\"yy\":\"x\",\"n\":-3}",
           fields);
  int st = call(srv.port, method, path, token, b);
  if (st != want) {
    fprintf(stderr, "  FAIL unknown fields %s %s: got %d %s, want %d\n", method, path, st,
            resp.body, want);
    test_case_failed_ = 1;
  }
}

static void test_json_profile(void) {
  const char *P = "/v1/apps/social/profile";
  generic_bad("PUT", P, ann.s.token, SOCIAL);
  const char *typed[][2] = {
      {"number for a string", "{\"handle\":123}"},
      {"number for a string (name)", "{\"handle\":\"ann.s\",\"name\":5}"},
      {"string for a bool", "{\"handle\":\"ann.s\",\"private\":\"true\"}"},
      {"number for a bool", "{\"handle\":\"ann.s\",\"private\":1}"},
      {"array for a string", "{\"handle\":[\"ann.s\"]}"},
      {"object for a string", "{\"handle\":\"ann.s\",\"bio\":{\"a\":1}}"},
      {"huge number in a field", "{\"handle\":\"ann.s\",\"private\":1e400}"},
      {"invalid UTF-8 in name", "{\"handle\":\"ann.s\",\"name\":\"\xc3\x28\"}"},
      {"lone surrogate in name", "{\"handle\":\"ann.s\",\"name\":\"A\\udbff\"}"},
      {"duplicate handle", "{\"handle\":\"ann.s\",\"handle\":\"other.one\"}"},
      {"duplicate name", "{\"handle\":\"ann.s\",\"name\":\"A\",\"name\":\"B\"}"},
      {"escaped NUL in name", "{\"handle\":\"ann.s\",\"name\":\"A\\u0000B\"}"},
      {"escaped NUL in handle", "{\"handle\":\"ann.s\\u0000\"}"},
  };
  for (size_t i = 0; i < sizeof typed / sizeof *typed; i++)
    expect_bad(typed[i][0], "PUT", P, ann.s.token, typed[i][1], strlen(typed[i][1]));
  static char b[8192];
  int n = snprintf(b, sizeof b, "{\"handle\":%s}", deep);
  expect_bad("depth 1000 handle", "PUT", P, ann.s.token, b, (size_t)n);
  /* Messenger: string for the page flag, number for category. */
  const char *M = "/v1/apps/messenger/profile";
  const char *mb[] = {"{\"username\":\"annshop\",\"page\":\"yes\"}",
                      "{\"username\":\"annshop\",\"page\":true,\"category\":7}",
                      "{\"username\":\"annshop\",\"page\":null,\"page\":true}"};
  for (size_t i = 0; i < 3; i++)
    expect_bad(mb[i], "PUT", M, ann.s.token, mb[i], strlen(mb[i]));
  expect_ignored("PUT", P, ann.s.token, SOCIAL, 200);
}

static void test_json_graph(void) {
  generic_bad("POST", "/v1/blocks", ann.s.token, BLOCK);
  generic_bad("POST", "/v1/apps/chat/contacts", ann.s.token, CONTACTS);
  const char *blocks[] = {"{\"app\":\"social\",\"target\":123}",
                          "{\"app\":true,\"target\":\"ben\"}",
                          "{\"app\":[\"social\"],\"target\":\"ben\"}",
                          "{\"app\":\"social\",\"target\":\"be\\u0000n\"}",
                          "{\"app\":\"social\",\"target\":\"\\ud83d\"}",
                          "{\"app\":\"social\",\"target\":\"ben\",\"target\":\"cyd\"}"};
  for (size_t i = 0; i < sizeof blocks / sizeof *blocks; i++)
    expect_bad(blocks[i], "POST", "/v1/blocks", ann.s.token, blocks[i],
               strlen(blocks[i]));
  const char *contacts[] = {"{\"numbers\":\"+15550502\"}",
                            "{\"numbers\":{\"a\":\"+15550502\"}}",
                            "{\"numbers\":[15550502]}",
                            "{\"numbers\":[\"+15550502\",true]}",
                            "{\"numbers\":[\"+1555\\u00000502\"]}",
                            "{\"numbers\":[],\"numbers\":[\"+15550502\"]}"};
  for (size_t i = 0; i < sizeof contacts / sizeof *contacts; i++)
    expect_bad(contacts[i], "POST", "/v1/apps/chat/contacts", ann.s.token, contacts[i],
               strlen(contacts[i]));
  static char b[8192];
  int n = snprintf(b, sizeof b, "{\"numbers\":%s}", deep);
  expect_bad("depth 1000 numbers", "POST", "/v1/apps/chat/contacts", ann.s.token, b,
             (size_t)n);
  const char *reach[] = {"{\"from\":[]}", "{\"from\":\"graph\"}",
                         "{\"from\":{\"chat\":1}}",
                         "{\"from\":{\"chat\":\"graph\",\"chat\":\"everyone\"}}"};
  for (size_t i = 0; i < 4; i++)
    expect_bad(reach[i], "PUT", "/v1/apps/social/reachability", ann.s.token, reach[i],
               strlen(reach[i]));
  expect_ignored("POST", "/v1/blocks", ann.s.token,
                 "\"app\":\"social\",\"target\":\"cyd\"", 200);
  expect_ignored("POST", "/v1/apps/chat/contacts", ann.s.token, CONTACTS, 200);
}

/* Registration: a subset (each attempt counts against the per-address
 * bucket of 30). A refused body must not create the account: the same
 * login registers afterwards. */
static void test_json_accounts(void) {
  static char f[1024], b[4096];
  register_fields("zed", f, sizeof f);
  const char *fmts[][2] = {
      {"truncated", "{%s"},
      {"trailing garbage", "{%s}]"},
      {"1e400", "{%s,\"x\":1e400}"},
      {"lone surrogate", "{%s,\"x\":\"\\udfff\"}"},
      {"duplicate key", "{%s,\"login\":\"zed2\"}"},
      {"invalid UTF-8", "{%s,\"x\":\"\xed\xa0\x80\"}"},
      {"array for the device object", "{\"device\":[],%s}"},
  };
  for (size_t i = 0; i < sizeof fmts / sizeof *fmts; i++) {
    int n = snprintf(b, sizeof b, fmts[i][1], f);
    expect_bad(fmts[i][0], "POST", "/v1/accounts", NULL, b, (size_t)n);
  }
  const char *typed[] = {"{\"login\":123,\"password\":\"correct horse\"}",
                         "{\"login\":\"zed\",\"password\":true}"};
  for (size_t i = 0; i < 2; i++)
    expect_bad(typed[i], "POST", "/v1/accounts", NULL, typed[i], strlen(typed[i]));
  expect_bad("depth 1000", "POST", "/v1/accounts", NULL, deep, strlen(deep));
  expect_ignored("POST", "/v1/accounts", NULL, f, 201);
}

/* ---- WebSocket ---- */

static void expect_ws_close(const char *what, uint16_t want) {
  uint16_t got = ws_expect_close(&rd_case);
  if (got != want) {
    fprintf(stderr, "  FAIL ws %s: close %u, want %u\n", what, got, want);
    test_case_failed_ = 1;
  }
  close(rd_case.fd);
}

static void test_ws_frames(void) {
  /* A truncated frame header, then the client closes its side. */
  CHECK(ws_open(srv.port, &rd_case, NULL, NULL, NULL) == 101);
  const uint8_t part[] = {0x81, 0xfe, 0x01};
  CHECK(send_all(rd_case.fd, part, sizeof part));
  shutdown(rd_case.fd, SHUT_WR);
  CHECK(wait_closed(rd_case.fd, DEADLINE_MS, NULL));
  close(rd_case.fd);
  /* A truncated payload, then close. */
  CHECK(ws_open(srv.port, &rd_case, NULL, NULL, NULL) == 101);
  CHECK(ws_raw(rd_case.fd, 0x81, true, 20, "{\"op\":", 6));
  shutdown(rd_case.fd, SHUT_WR);
  CHECK(wait_closed(rd_case.fd, DEADLINE_MS, NULL));
  close(rd_case.fd);

  const char *ping = "{\"op\":\"ping\",\"id\":1}";
  CHECK(ws_open(srv.port, &rd_case, NULL, NULL, NULL) == 101);
  CHECK(ws_raw(rd_case.fd, 0x81, false, strlen(ping), ping, strlen(ping)));
  expect_ws_close("unmasked", 1002);
  const uint8_t ops[] = {0x83, 0x87, 0x8b, 0x8f};
  for (size_t i = 0; i < sizeof ops; i++) {
    CHECK(ws_open(srv.port, &rd_case, NULL, NULL, NULL) == 101);
    CHECK(ws_raw(rd_case.fd, ops[i], true, 2, "{}", 2));
    expect_ws_close("reserved opcode", 1002);
  }
  CHECK(ws_open(srv.port, &rd_case, NULL, NULL, NULL) == 101);
  CHECK(ws_raw(rd_case.fd, 0xc1, true, strlen(ping), ping, strlen(ping)));
  expect_ws_close("RSV1 set", 1002);
  CHECK(ws_open(srv.port, &rd_case, NULL, NULL, NULL) == 101);
  CHECK(ws_raw(rd_case.fd, 0x81, true, 10, "{\"op\":\"\xc3\x28\"}", 10));
  expect_ws_close("invalid UTF-8", 1007);
  CHECK(ws_open(srv.port, &rd_case, NULL, NULL, NULL) == 101);
  CHECK(ws_raw(rd_case.fd, 0x81, true, 11, "{\"x\":\"\xed\xa0\x80\"}", 11));
  expect_ws_close("UTF-8 surrogate", 1007);
  CHECK(ws_open(srv.port, &rd_case, NULL, NULL, NULL) == 101);
  CHECK(ws_raw(rd_case.fd, 0x81, true, 2u << 20, "", 0));
  expect_ws_close("2 MiB frame header", 1009);
  CHECK(ws_open(srv.port, &rd_case, NULL, NULL, NULL) == 101);
  CHECK(ws_raw(rd_case.fd, 0x09, true, 2, "hb", 2));
  expect_ws_close("fragmented ping", 1002);
  CHECK(ws_open(srv.port, &rd_case, NULL, NULL, NULL) == 101);
  CHECK(ws_raw(rd_case.fd, 0x80 | WS_OP_PING, true, 126, deep, 126));
  expect_ws_close("ping payload over 125", 1002);
  CHECK(ws_open(srv.port, &rd_case, NULL, NULL, NULL) == 101);
  CHECK(ws_raw(rd_case.fd, 0x80 | WS_OP_CONT, true, 2, "{}", 2));
  expect_ws_close("continuation without a start", 1002);
}

static void test_ws_messages(void) {
  cJSON *j;
  /* Non-JSON text: bad_json with id null, session stays open. */
  const char *nonjson[] = {"hello", "{\"op\":\"ping\",\"id\":1", "{\"op\":\"ping\"}x",
                           "{\"op\":\"ping\",\"id\":1,\"id\":2}"};
  for (size_t i = 0; i < 4; i++) {
    j = ws_once(nonjson[i]);
    CHECK(j != NULL);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
    if (!cJSON_IsNull(id) || strcmp(ws_err(j), "bad_json") != 0) {
      fprintf(stderr, "  FAIL ws [%s]: %s\n", nonjson[i], msg.data);
      test_case_failed_ = 1;
    }
    cJSON_Delete(j);
    CHECK(ws_still_open(&rd_case));
    close(rd_case.fd);
  }
  /* JSON without op: an error answer for the same id. */
  j = ws_once("{\"id\":5}");
  CHECK(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(j, "id")) == 5);
  CHECK(cJSON_GetObjectItemCaseSensitive(j, "error") != NULL);
  CHECK(cJSON_GetObjectItemCaseSensitive(j, "ok") == NULL);
  fprintf(stderr, "  note: op missing -> %s\n", msg.data);
  cJSON_Delete(j);
  CHECK(ws_still_open(&rd_case));
  close(rd_case.fd);
  /* Unknown op. */
  j = ws_once("{\"op\":\"drop_tables\",\"id\":6}");
  CHECK(strcmp(ws_err(j), "unknown_op") == 0);
  CHECK(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(j, "id")) == 6);
  cJSON_Delete(j);
  CHECK(ws_still_open(&rd_case));
  close(rd_case.fd);
  /* Wrong field types: an error answer, session open. */
  const char *typed[] = {"{\"op\":\"auth\",\"id\":7,\"token\":123}",
                         "{\"op\":\"auth\",\"id\":7,\"token\":[\"x\"]}",
                         "{\"op\":7,\"id\":7}", "{\"op\":[\"ping\"],\"id\":7}",
                         "{\"op\":\"ping\",\"id\":{\"a\":1}}"};
  for (size_t i = 0; i < sizeof typed / sizeof *typed; i++) {
    j = ws_once(typed[i]);
    CHECK(j != NULL);
    const char *c = ws_err(j);
    bool ok = cJSON_GetObjectItemCaseSensitive(j, "ok") == NULL && c[0] != '\0';
    if (i < 2) ok = ok && strcmp(c, "bad_request") == 0;
    if (!ok) {
      fprintf(stderr, "  FAIL ws [%s]: %s\n", typed[i], msg.data);
      test_case_failed_ = 1;
    } else {
      fprintf(stderr, "  note: [%s] -> %s\n", typed[i], msg.data);
    }
    cJSON_Delete(j);
    CHECK(ws_still_open(&rd_case));
    close(rd_case.fd);
  }
}

/* ---- afterwards ---- */

static void test_bystanders_and_data(void) {
  CHECK(ws_text(rd_ws.fd, "{\"op\":\"ping\",\"id\":\"after\"}"));
  CHECK(ws_recv_text(&rd_ws, &msg));
  CHECK(strcmp(msg.data, "{\"id\":\"after\",\"ok\":{}}") == 0);
  CHECK(ws_text(rd_ws.fd, "{\"op\":\"whoami\",\"id\":2}"));
  CHECK(ws_recv_text(&rd_ws, &msg));
  CHECK(strstr(msg.data, "\"device_id\"") != NULL);
  CHECK(send_str(rd_keep.fd, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"));
  CHECK(read_response(&rd_keep, &resp));
  CHECK_INT(resp.status, 200);
  CHECK(strcmp(resp.body, "{\"status\":\"ok\"}") == 0);
  char *after[N_SNAP];
  snapshot(after);
  for (int i = 0; i < N_SNAP; i++) {
    if (!after[i] || !snap_before[i] || strcmp(after[i], snap_before[i]) != 0) {
      fprintf(stderr, "  FAIL %s changed:\n    before %s\n    after  %s\n", snap_paths[i],
              snap_before[i] ? snap_before[i] : "", after[i] ? after[i] : "");
      test_case_failed_ = 1;
    }
    free(after[i]);
    free(snap_before[i]);
  }
  close(rd_ws.fd);
  close(rd_keep.fd);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  for (int i = 0; i < 1000; i++) {
    deep[i] = '[';
    deep[1000 + i] = ']';
  }
  deep[2000] = '\0';
  if (sodium_init() < 0 || !find_binary()) {
    fprintf(stderr, "tesserad not found (set TSR_BUILD)\n");
    printf("bad_input: 0 passed, 1 failed, 0 skipped\n");
    return 1;
  }
  if (!server_start(&srv, "bad", true, "2", NULL)) {
    fprintf(stderr, "tesserad did not start; log %s\n", srv.log);
    printf("bad_input: 0 passed, 1 failed, 0 skipped\n");
    return 1;
  }
  RUN(test_setup);
  RUN(test_http_framing);
  RUN(test_json_profile);
  RUN(test_json_graph);
  RUN(test_json_accounts);
  RUN(test_ws_frames);
  RUN(test_ws_messages);
  RUN(test_bystanders_and_data);
  cJSON_Delete(resp.json);
  resp.json = NULL;
  server_stop(&srv, false);
  return test_report("bad_input");
}
