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
#include "test.h"

#define DEADLINE_MS 10000

typedef struct {
  pid_t pid; /* also the process group of master and workers */
  int port;
  char dir[256];
  char data[300];
  char log[300];
} server;

static char tesserad_path[PATH_MAX];
static server srv;

/* ---- process and socket helpers (as in test_server_core.c) ---- */

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
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

/* Starts tesserad on dir (made when empty), in its own process group. */
static bool server_start(server *s, bool fresh) {
  if (fresh) {
    memset(s, 0, sizeof *s);
    snprintf(s->dir, sizeof s->dir, "/tmp/tsr-acc-XXXXXX");
    if (!mkdtemp(s->dir)) return false;
    snprintf(s->log, sizeof s->log, "%s/tesserad.log", s->dir);
    snprintf(s->data, sizeof s->data, "%s/data", s->dir);
  }
  s->port = 0;
  if (!fresh && truncate(s->log, 0) != 0) return false;
  const char *argv[] = {tesserad_path, "--data-dir", s->data, "--listen",
                        "127.0.0.1:0", "--log-file", s->log,  "--workers",
                        "2",           NULL};
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

/* kill -9 of the master and every worker at once. */
static void server_kill9(server *s) {
  pid_t pg = s->pid;
  kill(-pg, SIGKILL);
  waitpid(pg, NULL, 0);
  s->pid = 0;
  /* The workers are gone when no process of the group is left. */
  uint64_t deadline = now_ms() + DEADLINE_MS;
  while (kill(-pg, 0) == 0 && now_ms() < deadline) tick();
}

static void server_stop(server *s) {
  if (s->pid > 0) {
    kill(s->pid, SIGTERM);
    if (server_wait(s, 15000) < 0) {
      kill(-s->pid, SIGKILL);
      waitpid(s->pid, NULL, 0);
    }
  }
  if (test_failed_ || test_case_failed_) {
    /* Show the server's side of a failure. */
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

typedef struct {
  int status;
  char head[4096];
  char body[65536];
  cJSON *json; /* parsed body, or NULL */
} http_resp;

static http_resp resp;

/* Reads one response from fd (Content-Length framed). */
static bool read_response(int fd, http_resp *out) {
  static char buf[1 << 17];
  size_t len = 0;
  uint64_t deadline = now_ms() + DEADLINE_MS;
  char *end = NULL;
  size_t hl = 0, blen = 0;
  for (;;) {
    if (!end && (end = len ? memmem(buf, len, "\r\n\r\n", 4) : NULL)) {
      hl = (size_t)(end - buf) + 4;
      if (hl >= sizeof out->head) return false;
      memcpy(out->head, buf, hl);
      out->head[hl] = '\0';
      const char *cl = strcasestr(out->head, "\r\nContent-Length:");
      blen = cl ? (size_t)atol(cl + 17) : 0;
      if (blen >= sizeof out->body) return false;
    }
    if (end && len >= hl + blen) break;
    if (len == sizeof buf || !wait_fd(fd, POLLIN, deadline)) return false;
    ssize_t k = recv(fd, buf + len, sizeof buf - len, 0);
    if (k <= 0) return false;
    len += (size_t)k;
  }
  out->status = atoi(out->head + 9);
  memcpy(out->body, buf + hl, blen);
  out->body[blen] = '\0';
  return true;
}

/* One call on a new connection. token and body may be NULL. Returns the
 * status (0 when no answer came); the answer is in resp. */
static int call(int port, const char *method, const char *path, const char *token,
                const char *body) {
  cJSON_Delete(resp.json);
  memset(&resp, 0, sizeof resp);
  int fd = tcp_connect(port);
  if (fd < 0) return 0;
  static char req[1 << 16];
  char auth[256] = "";
  if (token) snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", token);
  size_t bl = body ? strlen(body) : 0;
  int n = snprintf(req, sizeof req,
                   "%s %s HTTP/1.1\r\nHost: t\r\n%sContent-Type: application/json\r\n"
                   "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                   method, path, auth, bl, body ? body : "");
  bool ok = n > 0 && (size_t)n < sizeof req && send_all(fd, req, (size_t)n) &&
            read_response(fd, &resp);
  close(fd);
  if (!ok) return 0;
  resp.json = cJSON_Parse(resp.body);
  return resp.status;
}

static const char *jstr(const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(resp.json, key);
  return cJSON_IsString(v) ? v->valuestring : "";
}

static const char *err_code(void) {
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(resp.json, "error");
  const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "code");
  return cJSON_IsString(c) ? c->valuestring : "";
}

/* ---- identities, devices, sessions ---- */

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

static void identity_new(identity *id) { crypto_sign_keypair(id->pk, id->sk); }

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
  snprintf(s->account_id, sizeof s->account_id, "%s", jstr("account_id"));
  snprintf(s->device_id, sizeof s->device_id, "%s", jstr("device_id"));
  snprintf(s->token, sizeof s->token, "%s", jstr("token"));
  return strlen(s->account_id) == 22 && strlen(s->device_id) == 22 &&
         strlen(s->token) == 43;
}

static int do_register(int port, const char *login, const char *pw, const char *phone,
                       const identity *id, session *out) {
  char dev[400], ik[64], body[2048], ph[64] = "";
  device_json(id, "first", dev, sizeof dev);
  b64(id->pk, 32, ik);
  if (phone) snprintf(ph, sizeof ph, "\"phone\":\"%s\",", phone);
  snprintf(body, sizeof body,
           "{\"login\":\"%s\",\"password\":\"%s\",%s\"email\":\"x@example.org\","
           "\"identity_key\":\"%s\",\"device\":%s}",
           login, pw, ph, ik, dev);
  int st = call(port, "POST", "/v1/accounts", NULL, body);
  if (st == 201 && out) CHECK(take_session(out));
  return st;
}

static int do_login(int port, const char *login, const char *pw, const identity *id,
                    session *out) {
  char dev[400], body[2048];
  device_json(id, "another", dev, sizeof dev);
  snprintf(body, sizeof body, "{\"login\":\"%s\",\"password\":\"%s\",\"device\":%s}",
           login, pw, dev);
  int st = call(port, "POST", "/v1/sessions", NULL, body);
  if (st == 201 && out) CHECK(take_session(out));
  return st;
}

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

static const char *PW = "correct horse battery staple";
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
  char db[400];
  snprintf(db, sizeof db, "%s/tessera.db", srv.data);
  sqlite3 *h = NULL;
  int rc = sqlite3_open(db, &h);
  if (rc == SQLITE_OK) {
    sqlite3_busy_timeout(h, 5000);
    rc = sqlite3_exec(h, "UPDATE link_codes SET expires_at = 1 WHERE used = 0", NULL,
                      NULL, NULL);
  }
  sqlite3_close(h);
  return rc;
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
  CHECK_INT(expire_link_codes(), SQLITE_OK);
  snprintf(body, sizeof body, "{\"code\":\"%s\",\"device\":%s}", code, dev);
  CHECK_INT(call(srv.port, "POST", "/v1/devices/link", NULL, body), 401);
  /* malformed */
  snprintf(body, sizeof body, "{\"code\":\"12ab5678\",\"device\":%s}", dev);
  CHECK_INT(call(srv.port, "POST", "/v1/devices/link", NULL, body), 400);
  snprintf(body, sizeof body, "{\"code\":12345678,\"device\":%s}", dev);
  CHECK_INT(call(srv.port, "POST", "/v1/devices/link", NULL, body), 400);
  CHECK_INT(call(srv.port, "DELETE", "/v1/sessions/current", linked.token, NULL), 200);
}

/* The last code the development sender wrote for phone. */
static bool sms_code(const char *phone, char out[8]) {
  char path[400];
  snprintf(path, sizeof path, "%s/dev-sms.log", srv.data);
  char *t = read_file(path);
  bool found = false;
  for (char *line = t ? strtok(t, "\n") : NULL; line; line = strtok(NULL, "\n")) {
    size_t pl = strlen(phone);
    if (strncmp(line, phone, pl) == 0 && line[pl] == ' ' && strlen(line + pl + 1) == 6) {
      memcpy(out, line + pl + 1, 7);
      found = true;
    }
  }
  free(t);
  return found;
}

static void test_phone(void) {
  const char *req = "{\"phone\":\"+15550100\"}";
  CHECK_INT(call(srv.port, "POST", "/v1/phone/codes", alice1.token, req), 200);
  char code[8] = "";
  CHECK(sms_code("+15550100", code));
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
  for (int i = 0; bad[i]; i++) {
    CHECK_INT(call(srv.port, "POST", "/v1/accounts", NULL, bad[i]), 400);
    CHECK(strcmp(err_code(), "bad_request") == 0);
    CHECK_INT(call(srv.port, "POST", "/v1/sessions", NULL, bad[i]), 400);
    CHECK_INT(call(srv.port, "POST", "/v1/devices/link", NULL, bad[i]), 400);
  }
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
  /* 10 per worker process, two workers */
  CHECK(n >= 10 && n <= 20);
  /* the right password is limited too while the bucket is empty */
  int limited = 0;
  for (int i = 0; i < 4; i++) limited += do_login(srv.port, "erin", PW, &id, NULL) == 429;
  CHECK(limited > 0);
}

static void test_durability(void) {
  server s;
  if (!server_start(&s, true)) {
    CHECK(!"server start");
    server_stop(&s);
    return;
  }
  identity id;
  identity_new(&id);
  session a;
  CHECK_INT(do_register(s.port, "frank", PW, NULL, &id, &a), 201);
  server_kill9(&s);
  CHECK(server_start(&s, false));
  session b;
  CHECK_INT(do_login(s.port, "frank", PW, &id, &b), 201);
  CHECK(strcmp(a.account_id, b.account_id) == 0);
  CHECK_INT(call(s.port, "GET", "/v1/devices", a.token, NULL), 200);
  CHECK_INT(call(s.port, "GET", "/v1/devices", b.token, NULL), 200);
  server_stop(&s);
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
  if (!server_start(&srv, true)) {
    fprintf(stderr, "tesserad did not start; log %s\n", srv.log);
    printf("accounts: 0 passed, 1 failed, 0 skipped\n");
    return 1;
  }
  RUN(test_register_and_auth);
  RUN(test_login);
  RUN(test_revoke_and_logout);
  RUN(test_link);
  RUN(test_phone);
  RUN(test_bad_input);
  RUN(test_authorization_matrix);
  RUN(test_pipelined_deferred);
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
  server_stop(&srv);
  return test_report("accounts");
}
