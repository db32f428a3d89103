/* Integration tests of WebSocket session authentication (docs/protocol.md,
 * "Realtime session"): each case talks to a real tesserad (random port,
 * temporary data dir). Accounts are registered over HTTP as in
 * test_accounts.c; the WebSocket client is the one of test_server_core.c
 * (masked frames, one reader per connection). Every wait is bounded by a
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
#include "test.h"

#define DEADLINE_MS 10000

typedef struct {
  pid_t pid; /* also the process group of master and workers */
  int port;
  char dir[256];
  char log[300];
} server;

static char tesserad_path[PATH_MAX];
static server two; /* 2 workers, default auth timeout */
static server one; /* 1 worker, ws_auth_timeout 0.4 s */

/* ---- process and socket helpers ---- */

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static bool wait_fd(int fd, short events, uint64_t deadline) {
  for (;;) {
    uint64_t now = now_ms();
    if (now >= deadline) return false;
    struct pollfd p = {.fd = fd, .events = events};
    int n = poll(&p, 1, (int)(deadline - now));
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) return false;
  }
}

/* Bounded pause, only to poll external state without a descriptor. */
static void tick(void) { poll(NULL, 0, 10); }

static bool find_binary(void) {
  const char *b = getenv("TSR_BUILD");
  if (b) {
    snprintf(tesserad_path, sizeof tesserad_path, "%s/tesserad", b);
    if (access(tesserad_path, X_OK) == 0) return true;
  }
  char self[PATH_MAX - 16];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return false;
  self[n] = '\0';
  char *slash = strrchr(self, '/');
  if (!slash) return false;
  *slash = '\0';
  snprintf(tesserad_path, sizeof tesserad_path, "%s/../tesserad", self);
  return access(tesserad_path, X_OK) == 0;
}

static char *read_file(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) return NULL;
  size_t cap = 1 << 16, len = 0;
  char *s = malloc(cap + 1);
  size_t k;
  while (s && (k = fread(s + len, 1, cap - len, f)) > 0) {
    len += k;
    if (len == cap) {
      cap *= 2;
      s = realloc(s, cap + 1);
    }
  }
  fclose(f);
  if (s) s[len] = '\0';
  return s;
}

static int tcp_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    return -1;
  }
  int one_ = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one_, sizeof one_);
  return fd;
}

/* Starts tesserad with workers and extra "--key value" arguments. */
static bool server_start(server *s, const char *workers, const char *const *extra) {
  memset(s, 0, sizeof *s);
  snprintf(s->dir, sizeof s->dir, "/tmp/tsr-wsa-XXXXXX");
  if (!mkdtemp(s->dir)) return false;
  snprintf(s->log, sizeof s->log, "%s/tesserad.log", s->dir);
  char data[300];
  snprintf(data, sizeof data, "%s/data", s->dir);
  const char *argv[32] = {tesserad_path, "--data-dir",  data,
                          "--listen",    "127.0.0.1:0", "--log-file",
                          s->log,        "--workers",   workers};
  int n = 9;
  for (int i = 0; extra && extra[i] && n < 30; i++) argv[n++] = extra[i];
  argv[n] = NULL;
  s->pid = fork();
  if (s->pid == 0) {
    setpgid(0, 0);
    int devnull = open("/dev/null", O_RDWR);
    dup2(devnull, 0);
    dup2(devnull, 1);
    execv(tesserad_path, (char *const *)argv);
    _exit(127);
  }
  setpgid(s->pid, s->pid);
  uint64_t deadline = now_ms() + DEADLINE_MS;
  while (now_ms() < deadline && !s->port) {
    char *t = read_file(s->log);
    const char *p = t ? strstr(t, "listening on 127.0.0.1:") : NULL;
    if (p) s->port = atoi(p + strlen("listening on 127.0.0.1:"));
    free(t);
    if (!s->port) tick();
  }
  while (s->port && now_ms() < deadline) {
    int fd = tcp_connect(s->port);
    if (fd >= 0) {
      close(fd);
      return true;
    }
    tick();
  }
  return false;
}

static int server_wait(server *s, uint64_t ms) {
  uint64_t deadline = now_ms() + ms;
  int status;
  while (now_ms() < deadline) {
    if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
      s->pid = 0;
      return status;
    }
    tick();
  }
  return -1;
}

/* SIGTERM (must exit 0), then removes the directory. */
static void server_stop(server *s) {
  if (s->pid > 0) {
    kill(s->pid, SIGTERM);
    int st = server_wait(s, 15000);
    if (st < 0) {
      kill(-s->pid, SIGKILL);
      waitpid(s->pid, NULL, 0);
    }
    if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      fprintf(stderr, "FAIL server did not exit 0 on SIGTERM\n");
      test_failed_++;
    }
  }
  if (test_failed_ || test_case_failed_) {
    char *t = read_file(s->log);
    fprintf(stderr, "---- %s\n%s----\n", s->log, t ? t : "(no log)\n");
    free(t);
  }
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->dir);
  if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", s->dir);
}

static bool send_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n) {
    ssize_t k = send(fd, c, n, MSG_NOSIGNAL);
    if (k <= 0) return false;
    c += k;
    n -= (size_t)k;
  }
  return true;
}

/* ---- HTTP client ---- */

/* Per-connection read-ahead (HTTP head, then WebSocket frames). */
typedef struct {
  int fd;
  char buf[1 << 17];
  size_t len;
} reader;

typedef struct {
  int status;
  char head[4096];
  char body[65536];
  cJSON *json; /* parsed body, or NULL */
} http_resp;

static http_resp resp;

static bool fill(reader *r, uint64_t deadline) {
  if (r->len == sizeof r->buf) return false;
  if (!wait_fd(r->fd, POLLIN, deadline)) return false;
  ssize_t k = recv(r->fd, r->buf + r->len, sizeof r->buf - r->len, 0);
  if (k <= 0) return false;
  r->len += (size_t)k;
  return true;
}

static void consume(reader *r, size_t n) {
  memmove(r->buf, r->buf + n, r->len - n);
  r->len -= n;
}

/* Reads one response (Content-Length framed) into out. */
static bool read_response(reader *r, http_resp *out) {
  uint64_t deadline = now_ms() + DEADLINE_MS;
  char *end;
  for (;;) {
    end = r->len ? memmem(r->buf, r->len, "\r\n\r\n", 4) : NULL;
    if (end) break;
    if (!fill(r, deadline)) return false;
  }
  size_t hl = (size_t)(end - r->buf) + 4;
  if (hl >= sizeof out->head) return false;
  memcpy(out->head, r->buf, hl);
  out->head[hl] = '\0';
  out->status = atoi(out->head + 9);
  const char *cl = strcasestr(out->head, "\r\nContent-Length:");
  size_t blen = cl ? (size_t)atol(cl + 17) : 0;
  if (blen >= sizeof out->body) return false;
  while (r->len < hl + blen)
    if (!fill(r, deadline)) return false;
  memcpy(out->body, r->buf + hl, blen);
  out->body[blen] = '\0';
  consume(r, hl + blen);
  cJSON_Delete(out->json);
  out->json = cJSON_Parse(out->body);
  return true;
}

static reader hr; /* big: keep off the stack */

/* One call on a new connection; token and body may be NULL. Returns the
 * status (0 when no answer came); the answer is in resp. */
static int call(int port, const char *method, const char *path, const char *token,
                const char *body) {
  resp.status = 0;
  hr.fd = tcp_connect(port);
  hr.len = 0;
  if (hr.fd < 0) return 0;
  static char req[1 << 14];
  char auth[256] = "";
  if (token) snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", token);
  size_t bl = body ? strlen(body) : 0;
  int n = snprintf(req, sizeof req,
                   "%s %s HTTP/1.1\r\nHost: t\r\n%sContent-Type: application/json\r\n"
                   "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                   method, path, auth, bl, body ? body : "");
  bool ok = n > 0 && (size_t)n < sizeof req && send_all(hr.fd, req, (size_t)n) &&
            read_response(&hr, &resp);
  close(hr.fd);
  return ok ? resp.status : 0;
}

static const char *jstr(const cJSON *o, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  return cJSON_IsString(v) ? v->valuestring : "";
}

/* ---- accounts ---- */

typedef struct {
  uint8_t pk[crypto_sign_PUBLICKEYBYTES];
  uint8_t sk[crypto_sign_SECRETKEYBYTES];
} identity;

typedef struct {
  char account_id[32];
  char device_id[32];
  char token[64];
} session;

static void b64(const uint8_t *p, size_t n, char *out) {
  size_t len = 0;
  b64_encode(out, 200, p, n, B64_MODE_URL_NOPAD, &len);
  out[len] = '\0';
}

/* A "device" JSON object with a fresh signature key certified by signer. */
static void device_json(const identity *signer, const char *name, char *out, size_t cap) {
  uint8_t pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
  crypto_sign_keypair(pk, sk);
  uint8_t msg[55], sig[64];
  memcpy(msg, "tessera-device-cert-v1", 22);
  msg[22] = 0;
  memcpy(msg + 23, pk, 32);
  crypto_sign_detached(sig, NULL, msg, sizeof msg, signer->sk);
  char k[64], c[128];
  b64(pk, 32, k);
  b64(sig, 64, c);
  snprintf(out, cap, "{\"name\":\"%s\",\"signature_key\":\"%s\",\"certificate\":\"%s\"}",
           name, k, c);
}

static bool take_session(session *s) {
  snprintf(s->account_id, sizeof s->account_id, "%s", jstr(resp.json, "account_id"));
  snprintf(s->device_id, sizeof s->device_id, "%s", jstr(resp.json, "device_id"));
  snprintf(s->token, sizeof s->token, "%s", jstr(resp.json, "token"));
  return strlen(s->account_id) == 22 && strlen(s->device_id) == 22 &&
         strlen(s->token) == 43;
}

static const char *PW = "correct horse battery staple";

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

/* Opens a session; token (may be NULL) goes into Authorization. Returns
 * the upgrade's status (101 on success), 0 when no answer came. */
static int ws_open(int port, reader *r, const char *token) {
  r->fd = tcp_connect(port);
  r->len = 0;
  if (r->fd < 0) return 0;
  char req[512], auth[128] = "";
  if (token) snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", token);
  snprintf(req, sizeof req,
           "GET /v1/ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: tessera.v1\r\n%s\r\n",
           auth);
  http_resp *h = calloc(1, sizeof *h);
  int st = 0;
  if (h && send_all(r->fd, req, strlen(req)) && read_response(r, h)) st = h->status;
  if (h) cJSON_Delete(h->json);
  free(h);
  return st;
}

static bool ws_text(int fd, const char *s) {
  size_t n = strlen(s);
  uint8_t hdr[WS_MAX_HEADER], mask[4] = {0x12, 0x34, 0x56, 0x78};
  size_t hl = ws_write_frame_header(hdr, WS_OP_TEXT, true, n, mask);
  uint8_t *copy = malloc(n + 1);
  memcpy(copy, s, n);
  ws_unmask(copy, n, mask, 0);
  bool ok = send_all(fd, hdr, hl) && send_all(fd, copy, n);
  free(copy);
  return ok;
}

typedef struct {
  uint8_t opcode;
  uint16_t close_code;
  char data[4096];
  size_t len;
} ws_msg;

static ws_msg msg;

/* Reads one frame (unmasked, unfragmented) before deadline. */
static bool ws_recv_until(reader *r, ws_msg *m, uint64_t deadline) {
  ws_limits lim = {
      .max_frame = sizeof m->data - 1, .max_message = sizeof m->data - 1, .client = true};
  ws_frame f;
  int h;
  for (;;) {
    h = r->len ? ws_parse_frame((uint8_t *)r->buf, r->len, &f, &lim) : WS_INCOMPLETE;
    if (h < 0) return false;
    if (h > 0 && r->len >= (size_t)h + f.payload_len) break;
    if (!fill(r, deadline)) return false;
  }
  m->opcode = f.opcode;
  m->len = (size_t)f.payload_len;
  memcpy(m->data, r->buf + h, m->len);
  m->data[m->len] = '\0';
  m->close_code = 0;
  if (f.opcode == WS_OP_CLOSE && m->len >= 2)
    m->close_code = (uint16_t)((uint8_t)m->data[0] << 8 | (uint8_t)m->data[1]);
  consume(r, (size_t)h + m->len);
  return true;
}

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
    snprintf(code, sizeof code, "%s", jstr(e, "code"));
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
  CHECK_INT(ws_open(two.port, &w1, NULL), 101);
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
  CHECK_INT(ws_open(two.port, &w1, bo1.token), 101);
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
  CHECK_INT(ws_open(two.port, &w2, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), 401);
  close(w2.fd);
  CHECK_INT(ws_open(two.port, &w2, "short"), 401);
  close(w2.fd);
}

static void test_auth_timeout(void) {
  /* Server "one" has ws_auth_timeout 0.4 s. Activity does not extend it. */
  uint64_t t0 = now_ms();
  CHECK_INT(ws_open(one.port, &w1, NULL), 101);
  CHECK(strcmp(ws_op(&w1, "{\"op\":\"ping\",\"id\":1}"), "") == 0);
  CHECK_INT(ws_expect_close(&w1, 5000), 1008);
  CHECK(now_ms() - t0 >= 350);
  close(w1.fd);
  /* Authenticated sessions (by op and by header) outlive the deadline. */
  CHECK_INT(ws_open(one.port, &w1, NULL), 101);
  char req[256];
  snprintf(req, sizeof req, "{\"op\":\"auth\",\"id\":1,\"token\":\"%s\"}", ca1.token);
  CHECK(strcmp(ws_op(&w1, req), "") == 0);
  CHECK_INT(ws_open(one.port, &w2, ca1.token), 101);
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
  CHECK_INT(ws_open(one.port, &w1, NULL), 101);
  snprintf(req, sizeof req, "{\"op\":\"auth\",\"id\":1,\"token\":\"%s\"}", ca2.token);
  CHECK(strcmp(ws_op(&w1, req), "") == 0);
  CHECK_INT(ws_open(one.port, &w2, ca2.token), 101);
  CHECK_INT(ws_open(one.port, &w3, ca1.token), 101);
  CHECK_INT(revoke_device(one.port, &ca1, &ca2), 200);
  CHECK_INT(ws_expect_close(&w1, 5000), 1008);
  CHECK_INT(ws_expect_close(&w2, 5000), 1008);
  /* Another device of the account keeps its session. */
  CHECK(strcmp(ws_op(&w3, "{\"op\":\"whoami\",\"id\":1}"), "") == 0);
  close(w1.fd);
  close(w2.fd);
  close(w3.fd);
  /* The revoked token is refused both ways. */
  CHECK_INT(ws_open(one.port, &w1, ca2.token), 401);
  close(w1.fd);
  CHECK_INT(ws_open(one.port, &w1, NULL), 101);
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
  CHECK_INT(ws_open(two.port, &w1, bo2.token), 101);
  CHECK(strcmp(ws_op(&w1, "{\"op\":\"whoami\",\"id\":1}"), "") == 0);
  CHECK_INT(revoke_device(two.port, &bo1, &bo2), 200);
  CHECK_INT(poke_until_closed(&w1, 5000), 1008);
  close(w1.fd);
  /* Logout revokes the caller's own device: its sessions end the same way. */
  CHECK_INT(ws_open(two.port, &w2, al2.token), 101);
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
  CHECK_INT(ws_open(one.port, &w1, da2.token), 101);
  CHECK_INT(ws_open(one.port, &w2, NULL), 101);
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

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  if (sodium_init() < 0 || !find_binary()) {
    fprintf(stderr, "tesserad not found (set TSR_BUILD)\n");
    printf("ws_auth: 0 passed, 1 failed, 0 skipped\n");
    return 1;
  }
  const char *quick[] = {"--ws-auth-timeout", "0.4", NULL};
  if (!server_start(&two, "2", NULL) || !server_start(&one, "1", quick)) {
    fprintf(stderr, "tesserad did not start; logs %s %s\n", two.log, one.log);
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
  cJSON_Delete(resp.json);
  resp.json = NULL;
  server_stop(&two);
  server_stop(&one);
  return test_report("ws_auth");
}
