/* Integration tests of profiles, the apps' graphs and blocks: each case
 * talks to a real tesserad (two workers, random port, temporary data dir)
 * over HTTP, as docs/protocol.md describes the calls. Every wait is bounded
 * by a deadline; nothing sleeps to synchronise. The process and HTTP
 * helpers are those of test_accounts.c. */
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
#include "server/blocks.h"
#include "server/graphs.h"
#include "server/worker.h"
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
    snprintf(s->dir, sizeof s->dir, "/tmp/tsr-graph-XXXXXX");
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

static const char *PW = "correct horse battery staple";

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

/* A registered account; phone verified when given. */
typedef struct {
  identity id;
  session s;
  const char *phone;
} user;

static user ann = {.phone = "+15550201"}, ben = {.phone = "+15550202"},
            cat = {.phone = "+15550203"}, dan = {.phone = NULL};

static bool make_user(user *u, const char *login) {
  identity_new(&u->id);
  if (do_register(srv.port, login, PW, NULL, &u->id, &u->s) != 201) return false;
  if (!u->phone) return true;
  char body[128], code[8] = "";
  snprintf(body, sizeof body, "{\"phone\":\"%s\"}", u->phone);
  if (call(srv.port, "POST", "/v1/phone/codes", u->s.token, body) != 200 ||
      !sms_code(u->phone, code))
    return false;
  snprintf(body, sizeof body, "{\"phone\":\"%s\",\"code\":\"%s\"}", u->phone, code);
  return call(srv.port, "POST", "/v1/phone/verify", u->s.token, body) == 200;
}

static int api(const char *method, const char *path, const user *u, const char *body) {
  return call(srv.port, method, path, u ? u->s.token : NULL, body);
}

static bool err_is(const char *code) { return strcmp(err_code(), code) == 0; }

/* resp.json["profile"][key] as a string, or "". */
static const char *pstr(const char *key) {
  const cJSON *p = cJSON_GetObjectItemCaseSensitive(resp.json, "profile");
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(p, key);
  return cJSON_IsString(v) ? v->valuestring : "";
}

/* Entries of array `list` of resp whose member key equals value. */
static int count_in(const char *list, const char *key, const char *value) {
  const cJSON *a = cJSON_GetObjectItemCaseSensitive(resp.json, list), *e;
  int n = 0;
  cJSON_ArrayForEach(e, a) {
    const cJSON *v = cJSON_IsString(e) ? e : cJSON_GetObjectItemCaseSensitive(e, key);
    if (cJSON_IsString(v) && strcmp(v->valuestring, value) == 0) n++;
  }
  return n;
}

static int list_len(const char *list) {
  return cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(resp.json, list));
}

/* Rows of a table, read from the database file directly. */
static long db_count(const char *sql) {
  char db[400];
  snprintf(db, sizeof db, "%s/tessera.db", srv.data);
  sqlite3 *h = NULL;
  sqlite3_stmt *st = NULL;
  long n = -1;
  if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
      sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW)
    n = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(h);
  return n;
}

/* ---- cases ---- */

static void test_setup(void) {
  CHECK(make_user(&ann, "ann"));
  CHECK(make_user(&ben, "ben"));
  CHECK(make_user(&cat, "cat"));
  CHECK(make_user(&dan, "dan"));
}

static void test_profiles(void) {
  /* chat needs a verified number */
  CHECK_INT(api("PUT", "/v1/apps/chat/profile", &dan, "{\"display_name\":\"Dan\"}"), 409);
  CHECK(err_is("phone_unverified"));
  CHECK_INT(api("GET", "/v1/apps/chat/profile", &dan, NULL), 404);
  CHECK_INT(api("PUT", "/v1/apps/chat/profile", &ann,
                "{\"display_name\":\"Ann\",\"about\":\"hi\\nthere\"}"),
            201);
  CHECK(strcmp(pstr("number"), ann.phone) == 0);
  CHECK_INT(api("PUT", "/v1/apps/chat/profile", &ann, "{\"display_name\":\"Ann A\"}"),
            200);
  CHECK_INT(api("GET", "/v1/apps/chat/profile", &ann, NULL), 200);
  CHECK(strcmp(pstr("display_name"), "Ann A") == 0);
  CHECK(strcmp(pstr("number"), ann.phone) == 0);
  CHECK_INT(api("PUT", "/v1/apps/chat/profile", &ben, "{\"display_name\":\"Ben\"}"), 201);
  CHECK_INT(api("PUT", "/v1/apps/chat/profile", &cat, "{}"), 201);
  /* social handles: lower-cased, unique case-insensitively within social */
  CHECK_INT(api("PUT", "/v1/apps/social/profile", &ann,
                "{\"handle\":\"Ann.S\",\"name\":\"Ann\",\"bio\":\"photos\"}"),
            201);
  CHECK(strcmp(pstr("handle"), "ann.s") == 0);
  CHECK_INT(api("PUT", "/v1/apps/social/profile", &ben, "{\"handle\":\"ANN.s\"}"), 409);
  CHECK(err_is("conflict"));
  CHECK_INT(api("GET", "/v1/apps/social/profile", &ben, NULL), 404);
  /* ... but not across apps */
  CHECK_INT(api("PUT", "/v1/apps/messenger/profile", &ben, "{\"username\":\"ann.s\"}"),
            201);
  CHECK_INT(api("PUT", "/v1/apps/social/profile", &ben,
                "{\"handle\":\"ben\",\"name\":\"Ben\",\"private\":true}"),
            201);
  CHECK_INT(api("PUT", "/v1/apps/social/profile", &cat, "{\"handle\":\"cat\"}"), 201);
  CHECK_INT(api("PUT", "/v1/apps/messenger/profile", &ann, "{\"username\":\"ann\"}"),
            201);
  CHECK_INT(api("PUT", "/v1/apps/messenger/profile", &cat,
                "{\"username\":\"catshop\",\"name\":\"Cat's bakery\",\"page\":true,"
                "\"category\":\"Bakery\",\"hours\":\"Mo-Fr 7-18\","
                "\"website\":\"https://cat.example/shop\"}"),
            201);
  CHECK(strcmp(pstr("website"), "https://cat.example/shop") == 0);
  /* a handle changes in place; the old one is free again */
  CHECK_INT(api("PUT", "/v1/apps/social/profile", &ann, "{\"handle\":\"ann.tmp\"}"), 200);
  CHECK_INT(api("GET", "/v1/apps/social/profiles/ann.s", &ben, NULL), 404);
  CHECK_INT(api("PUT", "/v1/apps/social/profile", &ann,
                "{\"handle\":\"ann.s\",\"name\":\"Ann\",\"bio\":\"photos\"}"),
            200);
}

static void test_profile_bad_input(void) {
  const char *bad[] = {"{\"handle\":\"ab\"}",
                       "{\"handle\":\".dan\"}",
                       "{\"handle\":\"dan.\"}",
                       "{\"handle\":\"d..an\"}",
                       "{\"handle\":\"dan-x\"}",
                       "{\"handle\":\"dan x\"}",
                       "{\"handle\":\"d\\u00e4n\"}",
                       "{\"handle\":\"abcdefghijabcdefghijabcdefghija\"}", /* 31 */
                       "{\"handle\":7}",
                       "{\"name\":\"no handle\"}",
                       "{\"handle\":\"dan\",\"name\":\"a\\u0001b\"}",
                       "{\"handle\":\"dan\",\"name\":\"a\\u0085b\"}",
                       "{\"handle\":\"dan\",\"name\":\"line\\nbreak\"}",
                       "{\"handle\":\"dan\",\"name\":[1]}",
                       "{\"handle\":\"dan\",\"private\":\"yes\"}",
                       "{\"handle\":\"dan\",\"bio\":12}",
                       "[\"dan\"]",
                       "not json",
                       "",
                       NULL};
  for (int i = 0; bad[i]; i++) {
    int st = api("PUT", "/v1/apps/social/profile", &dan, bad[i]);
    if (st != 400) fprintf(stderr, "  body #%d -> %d\n", i, st);
    CHECK_INT(st, 400);
    CHECK(err_is("bad_request"));
  }
  char big[700];
  snprintf(big, sizeof big, "{\"handle\":\"dan\",\"bio\":\"%0501d\"}", 0);
  CHECK_INT(api("PUT", "/v1/apps/social/profile", &dan, big), 400);
  const char *badm[] = {
      "{\"username\":\"dan\",\"page\":true,\"website\":\"ftp://x.org\"}",
      "{\"username\":\"dan\",\"page\":true,\"website\":\"https://\"}",
      "{\"username\":\"dan\",\"page\":true,\"website\":\"http://a b\"}",
      "{\"username\":\"dan\",\"page\":1}", NULL};
  for (int i = 0; badm[i]; i++)
    CHECK_INT(api("PUT", "/v1/apps/messenger/profile", &dan, badm[i]), 400);
  /* nothing was stored */
  CHECK_INT(api("GET", "/v1/apps/social/profile", &dan, NULL), 404);
  CHECK_INT(api("GET", "/v1/apps/messenger/profile", &dan, NULL), 404);
  CHECK_INT(db_count("SELECT count(*) FROM profiles WHERE handle LIKE 'd%'"), 0);
  /* bad app names */
  CHECK_INT(api("PUT", "/v1/apps/photos/profile", &dan, "{\"handle\":\"dan\"}"), 404);
  CHECK(err_is("not_found"));
  CHECK_INT(api("GET", "/v1/apps/Chat/profile", &dan, NULL), 404);
  CHECK_INT(api("GET", "/v1/apps/photos/profiles/dan", &dan, NULL), 404);
  CHECK_INT(api("POST", "/v1/apps/social/profile", &dan, "{\"handle\":\"dan\"}"), 405);
  /* a profile can be deleted and made again */
  CHECK_INT(api("PUT", "/v1/apps/social/profile", &dan, "{\"handle\":\"dan\"}"), 201);
  CHECK_INT(api("DELETE", "/v1/apps/social/profile", &dan, NULL), 200);
  CHECK_INT(api("DELETE", "/v1/apps/social/profile", &dan, NULL), 404);
  CHECK_INT(api("GET", "/v1/apps/social/profiles/dan", &ann, NULL), 404);
}

static void test_lookup_and_search(void) {
  CHECK_INT(api("GET", "/v1/apps/social/profiles/BEN", &ann, NULL), 200);
  CHECK(strcmp(pstr("handle"), "ben") == 0);
  const cJSON *p = cJSON_GetObjectItemCaseSensitive(resp.json, "profile");
  CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "private")));
  CHECK(strstr(resp.body, "account") == NULL); /* no account id: apps stay unlinked */
  CHECK_INT(api("GET", "/v1/apps/social/profiles/nobody", &ann, NULL), 404);
  CHECK_INT(api("GET", "/v1/apps/social/profiles/a", &ann, NULL), 400);
  CHECK(err_is("bad_request"));
  CHECK_INT(api("GET", "/v1/apps/chat/profiles/+15550202", &ann, NULL), 200);
  CHECK(strcmp(pstr("display_name"), "Ben") == 0);
  CHECK_INT(api("GET", "/v1/apps/chat/profiles/%2B15550202", &ann, NULL), 200);
  CHECK_INT(api("GET", "/v1/apps/chat/profiles/+15550299", &ann, NULL), 404);
  CHECK_INT(api("GET", "/v1/apps/chat/profiles/ben", &ann, NULL), 400);
  CHECK_INT(api("GET", "/v1/apps/messenger/profiles/catshop", &ann, NULL), 200);
  CHECK(strcmp(pstr("category"), "Bakery") == 0);
  /* the same name in another app is another profile */
  CHECK_INT(api("GET", "/v1/apps/messenger/profiles/ann.s", &cat, NULL), 200);
  CHECK(strcmp(pstr("username"), "ann.s") == 0);
  CHECK_INT(api("GET", "/v1/apps/messenger/profiles/ben", &cat, NULL), 404);
  /* search: prefixes in social and messenger; private accounts are found */
  CHECK_INT(api("GET", "/v1/apps/social/search?q=An", &ben, NULL), 200);
  CHECK_INT(list_len("results"), 1);
  CHECK_INT(count_in("results", "handle", "ann.s"), 1);
  CHECK_INT(api("GET", "/v1/apps/social/search?q=b", &cat, NULL), 200);
  CHECK_INT(count_in("results", "handle", "ben"), 1);
  CHECK_INT(api("GET", "/v1/apps/messenger/search?q=ann&limit=1", &cat, NULL), 200);
  CHECK_INT(list_len("results"), 1);
  CHECK_INT(count_in("results", "username", "ann"), 1);
  CHECK_INT(api("GET", "/v1/apps/messenger/search?q=ann&limit=50", &cat, NULL), 200);
  CHECK_INT(list_len("results"), 2);
  CHECK_INT(api("GET", "/v1/apps/social/search?q=zzz", &cat, NULL), 200);
  CHECK_INT(list_len("results"), 0);
  /* chat: exact number only */
  CHECK_INT(api("GET", "/v1/apps/chat/search?q=%2B15550203", &ann, NULL), 200);
  CHECK_INT(count_in("results", "number", cat.phone), 1);
  CHECK_INT(api("GET", "/v1/apps/chat/search?q=%2B1555020", &ann, NULL), 200);
  CHECK_INT(list_len("results"), 0);
  CHECK_INT(api("GET", "/v1/apps/chat/search?q=ben", &ann, NULL), 400);
  const char *badq[] = {"/v1/apps/social/search",
                        "/v1/apps/social/search?q=",
                        "/v1/apps/social/search?q=a-b",
                        "/v1/apps/social/search?q=an&limit=0",
                        "/v1/apps/social/search?q=an&limit=51",
                        "/v1/apps/social/search?q=an&limit=x",
                        NULL};
  for (int i = 0; badq[i]; i++) {
    CHECK_INT(api("GET", badq[i], &ann, NULL), 400);
    CHECK(err_is("bad_request"));
  }
}

static void test_contacts(void) {
  CHECK_INT(api("POST", "/v1/apps/chat/contacts", &ann,
                "{\"numbers\":[\"+15550202\",\"+15550203\",\"+15559999\",\"+15550202\","
                "\"+15550201\"]}"),
            200);
  CHECK_INT(list_len("registered"), 2);
  CHECK_INT(count_in("registered", NULL, ben.phone), 1);
  CHECK_INT(count_in("registered", NULL, cat.phone), 1);
  CHECK_INT(api("GET", "/v1/apps/chat/contacts", &ann, NULL), 200);
  CHECK_INT(list_len("contacts"), 2);
  const cJSON *e =
      cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(resp.json, "contacts"), 0);
  CHECK(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(e, "mutual")));
  /* ben has ann too: mutual */
  CHECK_INT(api("POST", "/v1/apps/chat/contacts", &ben, "{\"numbers\":[\"+15550201\"]}"),
            200);
  CHECK_INT(count_in("registered", NULL, ann.phone), 1);
  CHECK_INT(api("GET", "/v1/apps/chat/contacts", &ann, NULL), 200);
  const cJSON *c, *list = cJSON_GetObjectItemCaseSensitive(resp.json, "contacts");
  int mutual = 0, seen = 0;
  cJSON_ArrayForEach(c, list) {
    const char *num = cJSON_GetObjectItemCaseSensitive(c, "number")->valuestring;
    bool m = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "mutual"));
    seen++;
    if (strcmp(num, ben.phone) == 0) mutual += m;
    if (strcmp(num, cat.phone) == 0) CHECK(!m);
  }
  CHECK_INT(seen, 2);
  CHECK_INT(mutual, 1);
  /* each list is its owner's */
  CHECK_INT(api("GET", "/v1/apps/chat/contacts", &cat, NULL), 200);
  CHECK_INT(list_len("contacts"), 0);
  /* bad input: nothing stored, the old address book stays */
  static char many[24000];
  size_t n = (size_t)snprintf(many, sizeof many, "{\"numbers\":[");
  for (int i = 0; i < 1001; i++)
    n += (size_t)snprintf(many + n, sizeof many - n, "%s\"+1666%07d\"", i ? "," : "", i);
  snprintf(many + n, sizeof many - n, "]}");
  CHECK_INT(api("POST", "/v1/apps/chat/contacts", &ann, many), 400);
  CHECK(err_is("too_many_contacts"));
  const char *bad[] = {"{\"numbers\":[\"x\"]}",
                       "{\"numbers\":[15550202]}",
                       "{\"numbers\":\"+15550202\"}",
                       "{\"nums\":[]}",
                       "[]",
                       NULL};
  for (int i = 0; bad[i]; i++) {
    CHECK_INT(api("POST", "/v1/apps/chat/contacts", &ann, bad[i]), 400);
    CHECK(err_is("bad_request"));
  }
  CHECK_INT(db_count("SELECT count(*) FROM chat_contacts WHERE number LIKE '+1666%'"), 0);
  CHECK_INT(api("GET", "/v1/apps/chat/contacts", &ann, NULL), 200);
  CHECK_INT(list_len("contacts"), 2);
  /* no chat profile, no address book */
  CHECK_INT(api("POST", "/v1/apps/chat/contacts", &dan, "{\"numbers\":[]}"), 403);
  CHECK(err_is("forbidden"));
}

static void test_follows(void) {
  CHECK_INT(api("POST", "/v1/apps/social/follows/cat", &ann, NULL), 200);
  CHECK(strcmp(jstr("state"), "following") == 0);
  CHECK_INT(api("GET", "/v1/apps/social/followers", &cat, NULL), 200);
  CHECK_INT(count_in("followers", "handle", "ann.s"), 1);
  CHECK_INT(api("GET", "/v1/apps/social/following", &ann, NULL), 200);
  CHECK_INT(count_in("following", "handle", "cat"), 1);
  /* a private account: a request, declined, then approved */
  CHECK_INT(api("POST", "/v1/apps/social/follows/ben", &ann, NULL), 200);
  CHECK(strcmp(jstr("state"), "requested") == 0);
  CHECK_INT(api("GET", "/v1/apps/social/followers", &ben, NULL), 200);
  CHECK_INT(list_len("followers"), 0);
  CHECK_INT(api("GET", "/v1/apps/social/follow-requests", &ben, NULL), 200);
  CHECK_INT(count_in("incoming", "handle", "ann.s"), 1);
  CHECK_INT(api("GET", "/v1/apps/social/follow-requests", &ann, NULL), 200);
  CHECK_INT(count_in("outgoing", "handle", "ben"), 1);
  CHECK_INT(api("POST", "/v1/apps/social/follow-requests/ann.s/decline", &ben, NULL),
            200);
  CHECK_INT(api("GET", "/v1/apps/social/follow-requests", &ben, NULL), 200);
  CHECK_INT(list_len("incoming"), 0);
  CHECK_INT(api("POST", "/v1/apps/social/follow-requests/ann.s/approve", &ben, NULL),
            404);
  CHECK_INT(api("POST", "/v1/apps/social/follows/ben", &ann, NULL), 200);
  /* only the target approves: ann cannot approve her own request */
  CHECK_INT(api("POST", "/v1/apps/social/follow-requests/ben/approve", &ann, NULL), 404);
  CHECK_INT(api("POST", "/v1/apps/social/follow-requests/ann.s/approve", &ben, NULL),
            200);
  CHECK_INT(api("GET", "/v1/apps/social/followers", &ben, NULL), 200);
  CHECK_INT(count_in("followers", "handle", "ann.s"), 1);
  CHECK_INT(api("POST", "/v1/apps/social/follows/ben", &ann, NULL), 200);
  CHECK(strcmp(jstr("state"), "following") == 0);
  /* ben follows ann (public) */
  CHECK_INT(api("POST", "/v1/apps/social/follows/ann.s", &ben, NULL), 200);
  CHECK(strcmp(jstr("state"), "following") == 0);
  /* unfollow */
  CHECK_INT(api("DELETE", "/v1/apps/social/follows/cat", &ann, NULL), 200);
  CHECK_INT(api("GET", "/v1/apps/social/followers", &cat, NULL), 200);
  CHECK_INT(list_len("followers"), 0);
  /* refusals */
  CHECK_INT(api("POST", "/v1/apps/social/follows/ann.s", &ann, NULL), 400);
  CHECK_INT(api("POST", "/v1/apps/social/follows/nobody", &ann, NULL), 404);
  CHECK_INT(api("POST", "/v1/apps/social/follows/b", &ann, NULL), 400);
  CHECK_INT(api("POST", "/v1/apps/social/follows/cat", &dan, NULL), 403);
  CHECK(err_is("forbidden"));
  CHECK_INT(api("POST", "/v1/apps/social/follow-requests/ann.s/maybe", &ben, NULL), 404);
}

static void test_friends_and_pages(void) {
  /* ben's messenger username is "ann.s" */
  CHECK_INT(api("POST", "/v1/apps/messenger/friend-requests/ann.s", &ann, NULL), 200);
  CHECK(strcmp(jstr("state"), "requested") == 0);
  CHECK_INT(api("GET", "/v1/apps/messenger/friend-requests", &ben, NULL), 200);
  CHECK_INT(count_in("incoming", "username", "ann"), 1);
  CHECK_INT(api("GET", "/v1/apps/messenger/friend-requests", &ann, NULL), 200);
  CHECK_INT(count_in("outgoing", "username", "ann.s"), 1);
  CHECK_INT(api("POST", "/v1/apps/messenger/friend-requests/ann/accept", &ben, NULL),
            200);
  CHECK(strcmp(jstr("state"), "friends") == 0);
  CHECK_INT(api("GET", "/v1/apps/messenger/friends", &ann, NULL), 200);
  CHECK_INT(count_in("friends", "username", "ann.s"), 1);
  CHECK_INT(api("GET", "/v1/apps/messenger/friends", &ben, NULL), 200);
  CHECK_INT(count_in("friends", "username", "ann"), 1);
  CHECK_INT(api("POST", "/v1/apps/messenger/friend-requests/ann/accept", &ben, NULL),
            404);
  /* decline */
  CHECK_INT(api("POST", "/v1/apps/messenger/friend-requests/catshop", &ann, NULL), 200);
  CHECK_INT(api("POST", "/v1/apps/messenger/friend-requests/ann/decline", &cat, NULL),
            200);
  CHECK_INT(api("GET", "/v1/apps/messenger/friend-requests", &cat, NULL), 200);
  CHECK_INT(list_len("incoming"), 0);
  CHECK_INT(api("GET", "/v1/apps/messenger/friends", &cat, NULL), 200);
  CHECK_INT(list_len("friends"), 0);
  /* crossing requests make friends */
  CHECK_INT(api("POST", "/v1/apps/messenger/friend-requests/ann", &cat, NULL), 200);
  CHECK_INT(api("POST", "/v1/apps/messenger/friend-requests/catshop", &ann, NULL), 200);
  CHECK(strcmp(jstr("state"), "friends") == 0);
  /* unfriend */
  CHECK_INT(api("DELETE", "/v1/apps/messenger/friends/catshop", &ann, NULL), 200);
  CHECK_INT(api("DELETE", "/v1/apps/messenger/friends/catshop", &ann, NULL), 404);
  CHECK_INT(api("GET", "/v1/apps/messenger/friends", &cat, NULL), 200);
  CHECK_INT(list_len("friends"), 0);
  /* pages */
  CHECK_INT(api("POST", "/v1/apps/messenger/pages/catshop/follow", &ann, NULL), 200);
  CHECK(strcmp(jstr("state"), "following") == 0);
  CHECK_INT(api("POST", "/v1/apps/messenger/pages/catshop/follow", &ben, NULL), 200);
  CHECK_INT(api("GET", "/v1/apps/messenger/pages/catshop/followers", &cat, NULL), 200);
  CHECK_INT(list_len("followers"), 2);
  CHECK_INT(count_in("followers", "username", "ann"), 1);
  CHECK_INT(api("GET", "/v1/apps/messenger/pages/catshop/followers", &ann, NULL), 403);
  CHECK(err_is("forbidden"));
  CHECK_INT(api("POST", "/v1/apps/messenger/pages/ann.s/follow", &ann, NULL), 404);
  CHECK_INT(api("DELETE", "/v1/apps/messenger/pages/catshop/follow", &ben, NULL), 200);
  CHECK_INT(api("GET", "/v1/apps/messenger/pages/catshop/followers", &cat, NULL), 200);
  CHECK_INT(list_len("followers"), 1);
  CHECK_INT(api("POST", "/v1/apps/messenger/friend-requests/ann", &dan, NULL), 403);
}

static void test_blocks(void) {
  /* edges between ann and ben now: follows both ways (social), friends
   * (messenger), contacts both ways (chat). ben blocks ann by her number. */
  CHECK_INT(
      api("POST", "/v1/blocks", &ben, "{\"app\":\"chat\",\"target\":\"+15550201\"}"),
      200);
  CHECK(strcmp(jstr("state"), "blocked") == 0);
  /* hidden both ways in every app */
  const struct {
    const user *who;
    const char *path;
  } hidden[] = {
      {&ann, "/v1/apps/social/profiles/ben"},
      {&ben, "/v1/apps/social/profiles/ann.s"},
      {&ann, "/v1/apps/messenger/profiles/ann.s"},
      {&ben, "/v1/apps/messenger/profiles/ann"},
      {&ann, "/v1/apps/chat/profiles/+15550202"},
      {&ben, "/v1/apps/chat/profiles/+15550201"},
  };
  for (size_t i = 0; i < sizeof hidden / sizeof hidden[0]; i++) {
    CHECK_INT(api("GET", hidden[i].path, hidden[i].who, NULL), 404);
    CHECK(err_is("not_found"));
  }
  CHECK_INT(api("GET", "/v1/apps/social/profiles/ben", &cat, NULL), 200);
  CHECK_INT(api("GET", "/v1/apps/social/search?q=be", &ann, NULL), 200);
  CHECK_INT(list_len("results"), 0);
  CHECK_INT(api("GET", "/v1/apps/messenger/search?q=ann", &ben, NULL), 200);
  CHECK_INT(count_in("results", "username", "ann"), 0);
  CHECK_INT(count_in("results", "username", "ann.s"), 1);
  CHECK_INT(api("GET", "/v1/apps/chat/search?q=%2B15550201", &ben, NULL), 200);
  CHECK_INT(list_len("results"), 0);
  CHECK_INT(api("GET", "/v1/apps/chat/contacts", &ann, NULL), 200);
  CHECK_INT(count_in("contacts", "number", ben.phone), 0);
  CHECK_INT(count_in("contacts", "number", cat.phone), 1);
  /* every edge between them is gone */
  CHECK_INT(api("GET", "/v1/apps/social/followers", &ben, NULL), 200);
  CHECK_INT(list_len("followers"), 0);
  CHECK_INT(api("GET", "/v1/apps/social/followers", &ann, NULL), 200);
  CHECK_INT(list_len("followers"), 0);
  CHECK_INT(api("GET", "/v1/apps/messenger/friends", &ann, NULL), 200);
  CHECK_INT(list_len("friends"), 0);
  CHECK_INT(api("GET", "/v1/apps/messenger/friends", &ben, NULL), 200);
  CHECK_INT(list_len("friends"), 0);
  /* new ones are refused, both ways */
  CHECK_INT(api("POST", "/v1/apps/social/follows/ben", &ann, NULL), 403);
  CHECK(err_is("forbidden"));
  CHECK_INT(api("POST", "/v1/apps/social/follows/ann.s", &ben, NULL), 403);
  CHECK_INT(api("POST", "/v1/apps/messenger/friend-requests/ann.s", &ann, NULL), 403);
  CHECK_INT(api("POST", "/v1/apps/messenger/friend-requests/ann", &ben, NULL), 403);
  CHECK_INT(db_count("SELECT count(*) FROM social_follow_requests"), 0);
  CHECK_INT(db_count("SELECT count(*) FROM messenger_friend_requests"), 0);
  /* a pending request is removed by a block too */
  CHECK_INT(api("POST", "/v1/apps/social/follows/ben", &cat, NULL), 200);
  CHECK(strcmp(jstr("state"), "requested") == 0);
  CHECK_INT(api("POST", "/v1/blocks", &cat, "{\"app\":\"social\",\"target\":\"BEN\"}"),
            200);
  CHECK_INT(api("GET", "/v1/apps/social/follow-requests", &ben, NULL), 200);
  CHECK_INT(list_len("incoming"), 0);
  CHECK_INT(api("POST", "/v1/apps/messenger/pages/catshop/follow", &ben, NULL), 403);
  /* the lists */
  CHECK_INT(api("GET", "/v1/blocks", &ben, NULL), 200);
  CHECK_INT(list_len("blocks"), 1);
  CHECK_INT(count_in("blocks", "target", ann.phone), 1);
  CHECK_INT(api("GET", "/v1/blocks", &ann, NULL), 200);
  CHECK_INT(list_len("blocks"), 0);
  /* refusals */
  CHECK_INT(api("POST", "/v1/blocks", &ben, "{\"app\":\"social\",\"target\":\"ben\"}"),
            400);
  CHECK_INT(api("POST", "/v1/blocks", &ben, "{\"app\":\"social\",\"target\":\"nobody\"}"),
            404);
  CHECK_INT(api("POST", "/v1/blocks", &ben, "{\"app\":\"photos\",\"target\":\"cat\"}"),
            400);
  CHECK(err_is("bad_request"));
  CHECK_INT(api("POST", "/v1/blocks", &ben, "{\"app\":\"social\",\"target\":7}"), 400);
  CHECK_INT(api("POST", "/v1/blocks", &ben, "{\"app\":\"social\"}"), 400);
  CHECK_INT(api("POST", "/v1/blocks", &ben, "{\"app\":\"social\",\"target\":\"c..t\"}"),
            400);
  CHECK_INT(db_count("SELECT count(*) FROM blocks"), 2);
  /* ann cannot lift ben's block */
  CHECK_INT(api("DELETE", "/v1/blocks/social/ben", &ann, NULL), 404);
  /* unblock by another of her names: the account is unblocked */
  CHECK_INT(api("DELETE", "/v1/blocks/social/ann.s", &ben, NULL), 200);
  CHECK_INT(api("DELETE", "/v1/blocks/chat/+15550201", &ben, NULL), 404);
  CHECK_INT(api("GET", "/v1/apps/social/profiles/ben", &ann, NULL), 200);
  CHECK_INT(api("GET", "/v1/apps/chat/profiles/+15550201", &ben, NULL), 200);
  /* removed edges stay removed; new ones work */
  CHECK_INT(api("GET", "/v1/apps/messenger/friends", &ann, NULL), 200);
  CHECK_INT(list_len("friends"), 0);
  CHECK_INT(api("POST", "/v1/apps/social/follows/ann.s", &ben, NULL), 200);
  CHECK(strcmp(jstr("state"), "following") == 0);
  CHECK_INT(api("DELETE", "/v1/blocks/social/ben", &cat, NULL), 200);
  CHECK_INT(api("DELETE", "/v1/blocks/photos/ben", &cat, NULL), 404);
}

/* Every new call refuses no token, a garbage token and a revoked one. */
static void test_authorization(void) {
  user gone;
  session keep = dan.s;
  CHECK_INT(do_login(srv.port, "dan", PW, &dan.id, &gone.s), 201);
  CHECK_INT(api("DELETE", "/v1/sessions/current", &gone, NULL), 200);
  const struct {
    const char *method, *path, *body;
  } calls[] = {
      {"PUT", "/v1/apps/social/profile", "{\"handle\":\"zed\"}"},
      {"GET", "/v1/apps/social/profile", NULL},
      {"DELETE", "/v1/apps/social/profile", NULL},
      {"GET", "/v1/apps/social/profiles/ann.s", NULL},
      {"GET", "/v1/apps/social/search?q=a", NULL},
      {"GET", "/v1/apps/photos/profile", NULL},
      {"POST", "/v1/apps/chat/contacts", "{\"numbers\":[]}"},
      {"GET", "/v1/apps/chat/contacts", NULL},
      {"POST", "/v1/apps/social/follows/ann.s", NULL},
      {"DELETE", "/v1/apps/social/follows/ann.s", NULL},
      {"GET", "/v1/apps/social/follow-requests", NULL},
      {"POST", "/v1/apps/social/follow-requests/ann.s/approve", NULL},
      {"POST", "/v1/apps/social/follow-requests/ann.s/decline", NULL},
      {"GET", "/v1/apps/social/followers", NULL},
      {"GET", "/v1/apps/social/following", NULL},
      {"POST", "/v1/apps/messenger/friend-requests/ann", NULL},
      {"GET", "/v1/apps/messenger/friend-requests", NULL},
      {"POST", "/v1/apps/messenger/friend-requests/ann/accept", NULL},
      {"POST", "/v1/apps/messenger/friend-requests/ann/decline", NULL},
      {"DELETE", "/v1/apps/messenger/friends/ann", NULL},
      {"GET", "/v1/apps/messenger/friends", NULL},
      {"POST", "/v1/apps/messenger/pages/catshop/follow", NULL},
      {"DELETE", "/v1/apps/messenger/pages/catshop/follow", NULL},
      {"GET", "/v1/apps/messenger/pages/catshop/followers", NULL},
      {"POST", "/v1/blocks", "{\"app\":\"social\",\"target\":\"cat\"}"},
      {"GET", "/v1/blocks", NULL},
      {"DELETE", "/v1/blocks/social/cat", NULL},
  };
  const char *tokens[] = {NULL, "", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "abc",
                          gone.s.token};
  for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++)
    for (size_t k = 0; k < sizeof tokens / sizeof tokens[0]; k++) {
      int st = call(srv.port, calls[i].method, calls[i].path, tokens[k], calls[i].body);
      if (st != 401)
        fprintf(stderr, "  %s %s token#%zu -> %d\n", calls[i].method, calls[i].path, k,
                st);
      CHECK_INT(st, 401);
      CHECK(err_is("unauthorized"));
    }
  CHECK_INT(db_count("SELECT count(*) FROM profiles WHERE handle = 'zed'"), 0);
  CHECK_INT(db_count("SELECT count(*) FROM blocks"), 0);
  dan.s = keep;
  CHECK_INT(api("GET", "/v1/blocks", &dan, NULL), 200);
}

/* Deleting a profile removes its edges in that app only. */
static void test_profile_delete_edges(void) {
  CHECK_INT(api("GET", "/v1/apps/social/followers", &ann, NULL), 200);
  CHECK_INT(count_in("followers", "handle", "ben"), 1);
  CHECK_INT(api("DELETE", "/v1/apps/social/profile", &ben, NULL), 200);
  CHECK_INT(api("GET", "/v1/apps/social/followers", &ann, NULL), 200);
  CHECK_INT(list_len("followers"), 0);
  CHECK_INT(db_count("SELECT count(*) FROM social_follows"), 0);
  /* messenger untouched */
  CHECK_INT(api("GET", "/v1/apps/messenger/profile", &ben, NULL), 200);
  CHECK_INT(api("GET", "/v1/apps/messenger/pages/catshop/followers", &cat, NULL), 200);
  CHECK_INT(count_in("followers", "username", "ann"), 1);
  /* a page that stops being a page loses its followers */
  CHECK_INT(api("PUT", "/v1/apps/messenger/profile", &cat, "{\"username\":\"catshop\"}"),
            200);
  CHECK_INT(api("GET", "/v1/apps/messenger/pages/catshop/followers", &cat, NULL), 200);
  CHECK_INT(list_len("followers"), 0);
  /* edges for test_graph_in */
  CHECK_INT(api("PUT", "/v1/apps/messenger/profile", &cat,
                "{\"username\":\"catshop\",\"page\":true}"),
            200);
  CHECK_INT(api("POST", "/v1/apps/messenger/pages/catshop/follow", &ben, NULL), 200);
  CHECK_INT(api("POST", "/v1/apps/messenger/friend-requests/catshop", &ann, NULL), 200);
  CHECK_INT(api("POST", "/v1/apps/messenger/friend-requests/ann/accept", &cat, NULL),
            200);
  CHECK_INT(api("POST", "/v1/apps/social/follows/ann.s", &cat, NULL), 200);
  CHECK_INT(api("POST", "/v1/blocks", &dan, "{\"app\":\"social\",\"target\":\"cat\"}"),
            200);
}

/* graph_in and blocks_between, the functions other modules use, on the
 * stopped server's database. */
typedef struct {
  uint8_t ann[16], ben[16], cat[16], dan[16];
  int got[12];
} graph_probe;

static int probe_run(store_conn *c, void *arg) {
  graph_probe *p = arg;
  int i = 0;
  p->got[i++] = graph_in(c, APP_CHAT, p->ann, p->ben);   /* ann has ben's number */
  p->got[i++] = graph_in(c, APP_CHAT, p->cat, p->ann);   /* cat has no contacts */
  p->got[i++] = graph_in(c, APP_SOCIAL, p->cat, p->ann); /* cat follows ann */
  p->got[i++] = graph_in(c, APP_SOCIAL, p->ann, p->cat);
  p->got[i++] = graph_in(c, APP_MESSENGER, p->ann, p->cat); /* friends */
  p->got[i++] = graph_in(c, APP_MESSENGER, p->cat, p->ann);
  p->got[i++] = graph_in(c, APP_MESSENGER, p->cat, p->ben); /* ben follows cat's page */
  p->got[i++] = graph_in(c, APP_MESSENGER, p->ben, p->cat);
  p->got[i++] = graph_in(c, APP_CHAT, p->ben, p->cat); /* ben's book: only ann */
  p->got[i++] = blocks_between(c, p->dan, p->cat);
  p->got[i++] = blocks_between(c, p->cat, p->dan);
  p->got[i++] = blocks_between(c, p->ann, p->cat);
  return 0;
}

static bool id_of(const user *u, uint8_t out[16]) {
  size_t got = 0;
  return b64_decode(out, 16, u->s.account_id, strlen(u->s.account_id), B64_MODE_URL_NOPAD,
                    &got) == 0 &&
         got == 16;
}

static void test_graph_in(void) {
  graph_probe p = {0};
  CHECK(id_of(&ann, p.ann) && id_of(&ben, p.ben) && id_of(&cat, p.cat) &&
        id_of(&dan, p.dan));
  store_opts o = {.migrations = server_schema, .n_migrations = server_schema_len};
  store *st = NULL;
  CHECK_OK(store_open(srv.data, &o, &st));
  if (!st) return;
  CHECK_OK(store_exec_sync(st, probe_run, &p));
  store_close(st);
  const int want[12] = {1, 0, 1, 0, 1, 1, 1, 0, 0, 1, 1, 0};
  for (int i = 0; i < 12; i++) {
    if (p.got[i] != want[i]) fprintf(stderr, "  probe %d\n", i);
    CHECK_INT(p.got[i], want[i]);
  }
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  if (sodium_init() < 0 || !find_binary()) {
    fprintf(stderr, "tesserad not found (set TSR_BUILD)\n");
    printf("social_graph: 0 passed, 1 failed, 0 skipped\n");
    return 1;
  }
  if (!server_start(&srv, true)) {
    fprintf(stderr, "tesserad did not start; log %s\n", srv.log);
    printf("social_graph: 0 passed, 1 failed, 0 skipped\n");
    return 1;
  }
  RUN(test_setup);
  RUN(test_profiles);
  RUN(test_profile_bad_input);
  RUN(test_lookup_and_search);
  RUN(test_contacts);
  RUN(test_follows);
  RUN(test_friends_and_pages);
  RUN(test_blocks);
  RUN(test_authorization);
  RUN(test_profile_delete_edges);
  cJSON_Delete(resp.json);
  resp.json = NULL;
  kill(srv.pid, SIGTERM);
  int st = server_wait(&srv, 15000);
  if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    fprintf(stderr, "FAIL server did not exit 0 on SIGTERM\n");
    test_failed_++;
  }
  RUN(test_graph_in);
  server_stop(&srv);
  return test_report("social_graph");
}
