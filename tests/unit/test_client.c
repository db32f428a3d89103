/* libtessera unit tests: the response-head parser, request encoding, the
 * state file, device certificates, the reconnect schedule (injected clock,
 * no sleeps) and one request/answer cycle against a scripted peer on a
 * loopback socket. Every wait is a poll on a descriptor with a deadline. */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client/client.h"
#include "proto/base64.h"
#include "proto/http_resp.h"
#include "tessera/tessera.h"
#include "test.h"

static char tmpdir[64];

static void path_in_tmp(char *out, size_t cap, const char *name) {
  snprintf(out, cap, "%s/%s", tmpdir, name);
}

/* ---- response parser ---------------------------------------------------- */

static const http_limits lim = {8192, 16, 0, 1 << 20};

static void test_resp_basic(void) {
  const char *s = "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
                  "Content-Length: 2\r\nRetry-After: 7\r\n\r\n{}";
  http_header h[16];
  http_response r = {.headers = h};
  int n = http_parse_response(s, strlen(s), &r, &lim);
  CHECK_INT(n, (int)strlen(s) - 2);
  CHECK_INT(r.status, 201);
  CHECK_INT(r.minor_version, 1);
  CHECK(r.reason.len == 7 && !memcmp(r.reason.ptr, "Created", 7));
  CHECK_INT(r.content_length, 2);
  CHECK(r.keep_alive);
  CHECK(!r.chunked);
  CHECK_INT(r.retry_after, 7);
  CHECK_INT(r.num_headers, 3);
  CHECK(r.content_type.len == 16);
  http_str v = http_response_header(&r, "content-length");
  CHECK(v.len == 1 && v.ptr[0] == '2');
  CHECK(http_response_header(&r, "x-none").ptr == NULL);
  CHECK_INT(http_response_body_kind(&r, false), HTTP_BODY_LENGTH);
  CHECK_INT(http_response_body_kind(&r, true), HTTP_BODY_NONE);
  /* Every strict prefix is incomplete, and never an error. */
  for (size_t i = 0; i < (size_t)n; i++) {
    http_response q = {.headers = h};
    CHECK_INT(http_parse_response(s, i, &q, &lim), HTTP_INCOMPLETE);
  }
}

static void test_resp_framing(void) {
  http_response r = {0};
  const char *ch = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  CHECK(http_parse_response(ch, strlen(ch), &r, &lim) > 0);
  CHECK(r.chunked);
  CHECK_INT(http_response_body_kind(&r, false), HTTP_BODY_CHUNKED);
  const char *cl = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n";
  CHECK(http_parse_response(cl, strlen(cl), &r, &lim) > 0);
  CHECK(!r.keep_alive);
  CHECK_INT(http_response_body_kind(&r, false), HTTP_BODY_UNTIL_CLOSE);
  const char *n204 = "HTTP/1.1 204 No Content\r\n\r\n";
  CHECK(http_parse_response(n204, strlen(n204), &r, &lim) > 0);
  CHECK_INT(http_response_body_kind(&r, false), HTTP_BODY_NONE);
  const char *h10 =
      "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n";
  CHECK(http_parse_response(h10, strlen(h10), &r, &lim) > 0);
  CHECK(r.keep_alive);
  CHECK_INT(r.minor_version, 0);
  const char *h10c = "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
  CHECK(http_parse_response(h10c, strlen(h10c), &r, &lim) > 0);
  CHECK(!r.keep_alive);
  const char *noreason = "HTTP/1.1 200\r\n\r\n";
  CHECK(http_parse_response(noreason, strlen(noreason), &r, &lim) > 0);
  CHECK_INT(r.status, 200);
  CHECK_INT(r.reason.len, 0);
}

static void test_resp_errors(void) {
  struct {
    const char *s;
    int err;
  } cases[] = {
      {"HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", HTTP_E_BARE_LF},
      {"HTTP/1.1 200 OK\rX: y\r\n\r\n", HTTP_E_BARE_CR},
      {"HTTX/1.1 200 OK\r\n\r\n", HTTP_E_VERSION},
      {"HTTP/2.0 200 OK\r\n\r\n", HTTP_E_VERSION_UNSUPPORTED},
      {"HTTP/1.1 2x0 OK\r\n\r\n", HTTP_E_TARGET},
      {"HTTP/1.1 099 OK\r\n\r\n", HTTP_E_TARGET},
      {"HTTP/1.1 200 OK\r\n folded\r\n\r\n", HTTP_E_OBS_FOLD},
      {"HTTP/1.1 200 OK\r\nBad Name: 1\r\n\r\n", HTTP_E_SPACE_BEFORE_COLON},
      {"HTTP/1.1 200 OK\r\n: 1\r\n\r\n", HTTP_E_HEADER_NAME},
      {"HTTP/1.1 200 OK\r\nX: a\x01\r\n\r\n", HTTP_E_HEADER_VALUE},
      {"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n", HTTP_E_CONTENT_LENGTH},
      {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
       HTTP_E_CL_CONFLICT},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n",
       HTTP_E_TE_AND_CL},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", HTTP_E_TE_UNSUPPORTED},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    http_response r = {.status = 42};
    int n = http_parse_response(cases[i].s, strlen(cases[i].s), &r, &lim);
    if (n != cases[i].err)
      fprintf(stderr, "  case %zu: got %s want %s\n", i, http_error_name(n),
              http_error_name(cases[i].err));
    CHECK_INT(n, cases[i].err);
    CHECK_INT(r.status, 42); /* untouched on failure */
  }
  /* Limits: header bytes and field count. */
  http_limits small = {32, 1, 0, 0};
  http_response r = {0};
  const char *big = "HTTP/1.1 200 OK\r\nX-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
  CHECK_INT(http_parse_response(big, strlen(big), &r, &small), HTTP_E_HEADERS_TOO_LARGE);
  http_limits one = {8192, 1, 0, 0};
  const char *two = "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n";
  CHECK_INT(http_parse_response(two, strlen(two), &r, &one), HTTP_E_TOO_MANY_HEADERS);
  CHECK_INT(http_parse_response(NULL, 0, &r, &lim), HTTP_E_INVALID_ARG);
}

/* ---- request encoding ------------------------------------------------------ */

static void test_request_encoding(void) {
  buf_t b;
  buf_init(&b);
  bytes_t body = BYTES("{\"a\":1}", 7);
  CHECK_OK(client_encode_request(&b, "POST", "example.org", 8080, false, "/v1/accounts",
                                 "tok_en", &body));
  const char *want = "POST /v1/accounts HTTP/1.1\r\nHost: example.org:8080\r\n"
                     "Authorization: Bearer tok_en\r\n"
                     "Content-Type: application/json\r\nContent-Length: 7\r\n\r\n"
                     "{\"a\":1}";
  CHECK_BYTES(buf_view(&b), BYTES(want, strlen(want)));
  /* The encoding is a request our own server-side parser accepts. */
  http_header h[16];
  http_request req = {.headers = h};
  http_limits l = HTTP_LIMITS_DEFAULT;
  int n = http_parse_request((const char *)b.ptr, b.len, &req, &l);
  CHECK_INT(n, (int)b.len - 7);
  CHECK(req.method == HTTP_POST);
  CHECK_INT(req.content_length, 7);
  CHECK(req.authorization.len == 13);

  buf_reset(&b);
  CHECK_OK(client_encode_request(&b, "GET", "::1", 443, true, "/v1/devices", NULL, NULL));
  const char *want2 = "GET /v1/devices HTTP/1.1\r\nHost: [::1]\r\n\r\n";
  CHECK_BYTES(buf_view(&b), BYTES(want2, strlen(want2)));

  buf_reset(&b);
  CHECK_ERR(client_encode_request(&b, "GET", "h", 80, false, "nopath", NULL, NULL),
            TSR_EINVAL);
  CHECK_ERR(client_encode_request(&b, "GET", "h", 80, false, "/x\r\nEvil: 1", NULL, NULL),
            TSR_EINVAL);
  CHECK_ERR(client_encode_request(&b, "GET", "h", 80, false, "/x", "t\r\nX: y", NULL),
            TSR_EINVAL);
  CHECK_INT(b.len, 0);
  buf_free(&b);
}

/* ---- state file ------------------------------------------------------------ */

static void test_state_file(void) {
  char path[128];
  path_in_tmp(path, sizeof path, "state1.db");
  cstate *s;
  CHECK_OK(cstate_open(path, &s));
  if (test_failing()) return;
  struct stat sb;
  CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0600);
  CHECK_INT(cstate_version(s), CSTATE_SCHEMA_VERSION);
  buf_t v;
  buf_init(&v);
  CHECK_ERR(cstate_get(s, K_TOKEN, &v), TSR_ENOTFOUND);
  CHECK_OK(cstate_put(s, K_TOKEN, BYTES("abc", 3)));
  CHECK_OK(cstate_begin(s));
  CHECK_OK(cstate_put(s, K_LOGIN, BYTES("alice", 5)));
  cstate_rollback(s);
  cstate_close(s);

  chmod(path, 0644); /* reopening restores 0600 */
  CHECK_OK(cstate_open(path, &s));
  CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0600);
  CHECK_OK(cstate_get(s, K_TOKEN, &v));
  CHECK_BYTES(buf_view(&v), BYTES("abc", 3));
  CHECK_ERR(cstate_get(s, K_LOGIN, &v), TSR_ENOTFOUND); /* rolled back */
  CHECK_OK(cstate_del(s, K_TOKEN));
  CHECK_ERR(cstate_get(s, K_TOKEN, &v), TSR_ENOTFOUND);
  cstate_close(s);

  /* A file from a newer schema is refused; a non-database too. */
  sqlite3 *db;
  CHECK(sqlite3_open(path, &db) == SQLITE_OK);
  CHECK(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL) == SQLITE_OK);
  sqlite3_close(db);
  CHECK_ERR(cstate_open(path, &s), TSR_EUNSUPPORTED);
  char junk[128];
  path_in_tmp(junk, sizeof junk, "junk.db");
  FILE *f = fopen(junk, "w");
  fputs("this is not a database, just some text of reasonable length..........", f);
  fclose(f);
  CHECK_ERR(cstate_open(junk, &s), TSR_EDECODE);
  buf_free(&v);
}

/* ---- certificates ----------------------------------------------------------- */

static int cancelled;
static void count_cancel(void *arg, const tsr_result *res) {
  (void)arg;
  if (res->err == TSR_ESTATE && !strcmp(res->code, "cancelled")) cancelled++;
}

static void test_device_certificate(void) {
  char pa[128], pb[128];
  path_in_tmp(pa, sizeof pa, "cert-a.db");
  path_in_tmp(pb, sizeof pb, "cert-b.db");
  tsr_client *a, *b;
  CHECK_OK(tsr_client_new(&(tsr_client_config){.state_path = pa, .port = 1}, &a));
  CHECK_OK(tsr_client_new(&(tsr_client_config){.state_path = pb, .port = 1}, &b));
  if (test_failing()) return;
  /* Registration makes the identity key at once; the request itself is
   * never run, and freeing the client cancels it. */
  tsr_register_params p = {
      .login = "alice", .password = "correct horse", .device_name = "laptop"};
  CHECK_OK(tsr_account_register(a, &p, count_cancel, NULL));
  CHECK_INT(tsr_client_pending(a), 1);
  char keyb[TSR_KEY_B64_SIZE], cert[TSR_CERT_B64_SIZE];
  CHECK_OK(tsr_device_key(b, keyb));
  CHECK_INT(strlen(keyb), 43);
  CHECK_ERR(tsr_device_certify(b, keyb, cert), TSR_ESTATE); /* b has no identity */
  CHECK_ERR(tsr_device_certify(a, "not-a-key", cert), TSR_EDECODE);
  CHECK_OK(tsr_device_certify(a, keyb, cert));
  CHECK_INT(strlen(cert), 86);
  tsr_session_info ia;
  CHECK_OK(tsr_client_session(a, &ia));
  CHECK(ia.has_identity_key && !ia.logged_in);

  /* Verify independently: the protocol's 55 bytes, libsodium's verify. */
  uint8_t idpk[32], devpk[32], sig[64], msg[55];
  size_t n;
  CHECK_OK(b64_decode(idpk, 32, ia.identity_key, 43, B64_MODE_URL_NOPAD, &n));
  CHECK_OK(b64_decode(devpk, 32, keyb, 43, B64_MODE_URL_NOPAD, &n));
  CHECK_OK(b64_decode(sig, 64, cert, 86, B64_MODE_URL_NOPAD, &n));
  memcpy(msg, "tessera-device-cert-v1", 22);
  msg[22] = 0x00;
  memcpy(msg + 23, devpk, 32);
  CHECK(crypto_sign_ed25519_verify_detached(sig, msg, 55, idpk) == 0);
  uint8_t internal[TSR_DEVICE_CERT_MSG_LEN];
  device_cert_message(devpk, internal);
  CHECK_BYTES(BYTES(internal, 55), BYTES(msg, 55));
  msg[22] = 0x01; /* any other byte string does not verify */
  CHECK(crypto_sign_ed25519_verify_detached(sig, msg, 55, idpk) != 0);

  /* Keys survive a reopen of the state file. */
  cancelled = 0;
  tsr_client_free(a);
  CHECK_INT(cancelled, 1);
  CHECK_OK(tsr_client_new(&(tsr_client_config){.state_path = pa, .port = 1}, &a));
  tsr_session_info ia2;
  CHECK_OK(tsr_client_session(a, &ia2));
  CHECK(!strcmp(ia.identity_key, ia2.identity_key));
  char cert2[TSR_CERT_B64_SIZE];
  CHECK_OK(tsr_device_certify(a, keyb, cert2));
  CHECK(!strcmp(cert, cert2)); /* Ed25519 is deterministic */
  /* Registering another login on this state file is refused only once a
   * login is stored; not logged in yet, so calls needing a session fail. */
  CHECK_ERR(tsr_devices_list(a, NULL, NULL), TSR_ESTATE);
  CHECK_ERR(tsr_link_code_create(a, keyb, NULL, NULL), TSR_ESTATE);
  tsr_client_free(a);
  tsr_client_free(b);
}

/* ---- backoff ------------------------------------------------------------------ */

static void test_backoff_schedule(void) {
  backoff b;
  backoff_init(&b, 100, 1000);
  const uint32_t lo[] = {50, 100, 200, 400, 500, 500, 500};
  for (size_t i = 0; i < 7; i++) CHECK_INT(backoff_next(&b, 0), lo[i]);
  backoff_reset(&b);
  const uint32_t hi[] = {100, 200, 400, 800, 1000, 1000};
  for (size_t i = 0; i < 6; i++) CHECK_INT(backoff_next(&b, hi[i] / 2), hi[i]);
  /* Every delay lies in [d - d/2, d] whatever the random value. */
  backoff_reset(&b);
  for (int i = 0; i < 40; i++) {
    uint32_t d = i < 4 ? 100u << i : 1000u;
    uint32_t v = backoff_next(&b, randombytes_random());
    CHECK(v >= d - d / 2 && v <= d);
  }
  CHECK_INT(b.attempt, 40);
}

static uint64_t fake_now;
static uint64_t fake_clock(void *arg) {
  (void)arg;
  return fake_now;
}
static uint32_t zero_rng(void *arg) {
  (void)arg;
  return 0;
}

static int got_err, got_calls;
static char got_code[64];
static void record(void *arg, const tsr_result *res) {
  (void)arg;
  got_err = res->err;
  got_calls++;
  snprintf(got_code, sizeof got_code, "%s", res->code);
}

/* A loopback port where nothing listens. */
static int closed_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  bind(fd, (struct sockaddr *)&a, sizeof a);
  getsockname(fd, (struct sockaddr *)&a, &len);
  close(fd);
  return ntohs(a.sin_port);
}

/* Lets a pending connect attempt finish (refused) by waiting on its fd. */
static void settle_connect(tsr_client *c) {
  int fd = tsr_client_fd(c);
  if (fd < 0) return;
  struct pollfd p = {.fd = fd, .events = POLLOUT | POLLIN};
  CHECK(poll(&p, 1, 2000) == 1);
  tsr_client_on_writable(c);
}

static void test_reconnect_schedule(void) {
  char path[128];
  path_in_tmp(path, sizeof path, "backoff.db");
  tsr_client_config cfg = {.state_path = path,
                           .port = (uint16_t)closed_port(),
                           .backoff_initial_ms = 100,
                           .backoff_max_ms = 1000,
                           .max_attempts = 3,
                           .clock_ms = fake_clock,
                           .random_u32 = zero_rng};
  fake_now = 1000;
  tsr_client *c;
  CHECK_OK(tsr_client_new(&cfg, &c));
  if (test_failing()) return;
  CHECK_INT(tsr_client_next_timeout(c, fake_now), -1); /* nothing to do */
  tsr_register_params p = {.login = "bob", .password = "password1", .device_name = "d"};
  got_calls = 0;
  CHECK_OK(tsr_account_register(c, &p, record, NULL));
  CHECK_INT(tsr_client_next_timeout(c, fake_now), 0); /* work right away */
  /* Attempt 1 fails; retry after 50 ms (equal jitter, random 0). */
  tsr_client_on_tick(c, fake_now);
  settle_connect(c);
  CHECK_INT(tsr_client_fd(c), -1);
  CHECK_INT(tsr_client_next_timeout(c, fake_now), 50);
  CHECK_INT(tsr_client_next_timeout(c, fake_now + 20), 30);
  tsr_client_on_tick(c, fake_now + 49); /* too early: nothing happens */
  CHECK_INT(tsr_client_fd(c), -1);
  CHECK_INT(got_calls, 0);
  fake_now += 50;
  tsr_client_on_tick(c, fake_now); /* attempt 2 */
  settle_connect(c);
  CHECK_INT(tsr_client_next_timeout(c, fake_now), 100);
  fake_now += 100;
  tsr_client_on_tick(c, fake_now); /* attempt 3: the last one */
  settle_connect(c);
  CHECK_INT(got_calls, 1);
  CHECK_INT(got_err, TSR_EIO);
  CHECK(!strcmp(got_code, "network"));
  CHECK_INT(tsr_client_pending(c), 0);
  CHECK_INT(tsr_client_next_timeout(c, fake_now), -1);
  tsr_client_free(c);
}

/* ---- one exchange with a scripted peer -------------------------------------- */

static int listen_any(int *port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  if (bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 4) ||
      getsockname(fd, (struct sockaddr *)&a, &len)) {
    close(fd);
    return -1;
  }
  *port = ntohs(a.sin_port);
  return fd;
}

/* Drives c until the peer socket has a full request head + body; returns
 * the bytes read (NUL-terminated) in buf. */
static size_t pump_request(tsr_client *c, int peer, char *buf, size_t cap) {
  size_t got = 0;
  for (int rounds = 0; rounds < 200; rounds++) {
    tsr_client_on_tick(c, tsr_client_now_ms(c));
    struct pollfd p[2] = {{.fd = peer, .events = POLLIN},
                          {.fd = tsr_client_fd(c),
                           .events = (short)(tsr_client_want_write(c) ? POLLOUT : 0)}};
    if (poll(p, 2, 2000) <= 0) break;
    if (p[1].revents & POLLOUT) tsr_client_on_writable(c);
    if (p[0].revents & POLLIN) {
      ssize_t k = recv(peer, buf + got, cap - 1 - got, 0);
      if (k <= 0) break;
      got += (size_t)k;
      buf[got] = '\0';
      char *end = strstr(buf, "\r\n\r\n");
      const char *cl = strstr(buf, "Content-Length: ");
      size_t need =
          end ? (size_t)(end + 4 - buf) + (cl ? strtoul(cl + 16, NULL, 10) : 0) : 0;
      if (end && got >= need) return got;
    }
  }
  return got;
}

static void test_exchange(void) {
  int port, lfd = listen_any(&port);
  CHECK(lfd >= 0);
  if (lfd < 0) return;
  char path[128];
  path_in_tmp(path, sizeof path, "exchange.db");
  tsr_client *c;
  CHECK_OK(tsr_client_new(
      &(tsr_client_config){.state_path = path, .port = (uint16_t)port}, &c));
  if (test_failing()) return;
  tsr_register_params p = {.login = "carol",
                           .password = "pass word!",
                           .phone = "+15550100",
                           .device_name = "phone"};
  got_calls = 0;
  CHECK_OK(tsr_account_register(c, &p, record, NULL));
  tsr_client_on_tick(c, tsr_client_now_ms(c));
  struct pollfd lp = {.fd = lfd, .events = POLLIN};
  CHECK(poll(&lp, 1, 2000) == 1);
  int peer = accept(lfd, NULL, NULL);
  char req[8192];
  size_t n = pump_request(c, peer, req, sizeof req);
  CHECK(n > 0 && !strncmp(req, "POST /v1/accounts HTTP/1.1\r\n", 28));
  CHECK(strstr(req, "\"login\":\"carol\"") && strstr(req, "\"phone\":\"+15550100\""));
  CHECK(strstr(req, "\"identity_key\":\"") && strstr(req, "\"certificate\":\""));
  CHECK(!strstr(req, "Authorization:"));
  /* Answer in two chunks, the head split from the body. */
  const char *a1 = "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n";
  const char *parts[] = {"{\"account_id\":\"", "AAAAAAAAAAAAAAAAAAAAAA\",\"device_id\":",
                         "\"BBBB\",\"token\":\"tok1\"}"};
  char a2[512];
  size_t off = 0;
  for (int i = 0; i < 3; i++)
    off += (size_t)snprintf(a2 + off, sizeof a2 - off, "%zx\r\n%s\r\n", strlen(parts[i]),
                            parts[i]);
  snprintf(a2 + off, sizeof a2 - off, "0\r\n\r\n");
  CHECK(send(peer, a1, strlen(a1), 0) == (ssize_t)strlen(a1));
  CHECK(send(peer, a2, strlen(a2), 0) == (ssize_t)strlen(a2));
  for (int i = 0; i < 100 && got_calls == 0; i++) {
    struct pollfd cp = {.fd = tsr_client_fd(c), .events = POLLIN};
    if (poll(&cp, 1, 2000) != 1) break;
    tsr_client_on_readable(c);
  }
  CHECK_INT(got_calls, 1);
  CHECK_INT(got_err, 0);
  tsr_session_info s;
  CHECK_OK(tsr_client_session(c, &s));
  CHECK(s.logged_in);
  CHECK(!strcmp(s.account_id, "AAAAAAAAAAAAAAAAAAAAAA"));
  CHECK(!strcmp(s.device_id, "BBBB"));
  CHECK(!strcmp(s.login, "carol"));
  CHECK_ERR(tsr_account_register(c, &p, record, NULL), TSR_ESTATE);

  /* Same connection (keep-alive), token sent; an error answer maps. */
  CHECK_OK(tsr_devices_list(c, record, NULL));
  n = pump_request(c, peer, req, sizeof req);
  CHECK(n > 0 && !strncmp(req, "GET /v1/devices HTTP/1.1\r\n", 26));
  CHECK(strstr(req, "Authorization: Bearer tok1\r\n") != NULL);
  const char *e = "HTTP/1.1 401 Unauthorized\r\nContent-Length: 59\r\n\r\n"
                  "{\"error\":{\"code\":\"unauthorized\",\"message\":\"token revoked\"}}";
  CHECK(send(peer, e, strlen(e), 0) == (ssize_t)strlen(e));
  for (int i = 0; i < 100 && got_calls == 1; i++) {
    struct pollfd cp = {.fd = tsr_client_fd(c), .events = POLLIN};
    if (poll(&cp, 1, 2000) != 1) break;
    tsr_client_on_readable(c);
  }
  CHECK_INT(got_calls, 2);
  CHECK_INT(got_err, TSR_EVERIFY);
  CHECK(!strcmp(got_code, "unauthorized"));
  close(peer);
  close(lfd);
  tsr_client_free(c);
}

int main(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/tsr-client-XXXXXX");
  if (!mkdtemp(tmpdir) || tsr_client_global_init() != 0) return 1;
  RUN(test_resp_basic);
  RUN(test_resp_framing);
  RUN(test_resp_errors);
  RUN(test_request_encoding);
  RUN(test_state_file);
  RUN(test_device_certificate);
  RUN(test_backoff_schedule);
  RUN(test_reconnect_schedule);
  RUN(test_exchange);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", tmpdir);
  return test_report("client");
}
