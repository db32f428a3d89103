/* Integration tests of reachability and message requests (server/reach.h):
 * each case talks to a real tesserad (two workers, random port, temporary
 * data dir) over HTTP, as docs/protocol.md describes the calls; the last
 * one calls reach_allowed on the stopped server's database. Every wait is
 * bounded by a deadline; nothing sleeps to synchronise. The process and
 * HTTP helpers are those of test_social_graph.c. */
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
#include "server/reach.h"
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
    snprintf(s->dir, sizeof s->dir, "/tmp/tsr-reach-XXXXXX");
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

static user ann = {.phone = "+15550301"}, ben = {.phone = "+15550302"},
            cat = {.phone = "+15550303"}, dan = {.phone = NULL},
            eve = {.phone = "+15550305"};

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

/* resp.json["from"][app] as a string, or "". */
static const char *rule_of(const char *app) {
  const cJSON *f = cJSON_GetObjectItemCaseSensitive(resp.json, "from");
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(f, app);
  return cJSON_IsString(v) ? v->valuestring : "";
}

static bool is_allowed(void) {
  return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(resp.json, "allowed"));
}

/* POST /v1/reach; returns the status. */
static int reach(const user *u, const char *from, const char *to, const char *key) {
  char body[256];
  snprintf(body, sizeof body, "{\"from_app\":\"%s\",\"to_app\":\"%s\",\"to\":\"%s\"}",
           from, to, key);
  return api("POST", "/v1/reach", u, body);
}

/* A reach that must end in a (new or existing) request; its id in out. */
static bool reach_request(const user *u, const char *from, const char *to,
                          const char *key, char out[32]) {
  if (reach(u, from, to, key) != 200 || is_allowed()) return false;
  snprintf(out, 32, "%s", jstr("request_id"));
  return strlen(out) == 22;
}

static bool reach_ok(const user *u, const char *from, const char *to, const char *key) {
  return reach(u, from, to, key) == 200 && is_allowed() &&
         cJSON_GetObjectItemCaseSensitive(resp.json, "request_id") == NULL;
}

/* The entry of list with id, or NULL. */
static const cJSON *entry(const char *list, const char *id) {
  const cJSON *e, *a = cJSON_GetObjectItemCaseSensitive(resp.json, list);
  cJSON_ArrayForEach(e, a) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, "id");
    if (cJSON_IsString(v) && strcmp(v->valuestring, id) == 0) return e;
  }
  return NULL;
}

static const char *estr(const cJSON *e, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, key);
  return cJSON_IsString(v) ? v->valuestring : "";
}

/* Profiles: ann, ben, cat in all three apps; dan social and messenger. */
static bool put_profiles(user *u, const char *chat_name, const char *social,
                         const char *messenger) {
  char body[256];
  if (chat_name) {
    snprintf(body, sizeof body, "{\"display_name\":\"%s\"}", chat_name);
    if (api("PUT", "/v1/apps/chat/profile", u, body) != 201) return false;
  }
  snprintf(body, sizeof body, "{\"handle\":\"%s\",\"name\":\"%s S\"}", social, social);
  if (api("PUT", "/v1/apps/social/profile", u, body) != 201) return false;
  snprintf(body, sizeof body, "{\"username\":\"%s\",\"name\":\"%s M\"}", messenger,
           messenger);
  return api("PUT", "/v1/apps/messenger/profile", u, body) == 201;
}

static void test_setup(void) {
  CHECK(make_user(&ann, "ann"));
  CHECK(make_user(&ben, "ben"));
  CHECK(make_user(&cat, "cat"));
  CHECK(make_user(&dan, "dan"));
  CHECK(put_profiles(&ann, "Ann", "ann", "ann.m"));
  CHECK(put_profiles(&ben, "Ben", "ben", "ben.m"));
  CHECK(put_profiles(&cat, "Cat", "cat", "cat.m"));
  CHECK(put_profiles(&dan, NULL, "dan", "dan.m"));
}

static void test_defaults(void) {
  const char *apps[] = {"chat", "social", "messenger"};
  for (int i = 0; i < 3; i++) {
    char path[64];
    snprintf(path, sizeof path, "/v1/apps/%s/reachability", apps[i]);
    CHECK_INT(api("GET", path, &ben, NULL), 200);
    for (int j = 0; j < 3; j++) CHECK(strcmp(rule_of(apps[j]), "graph") == 0);
  }
  /* no chat profile, no chat rules */
  CHECK_INT(api("GET", "/v1/apps/chat/reachability", &dan, NULL), 403);
  CHECK(err_is("forbidden"));
  CHECK_INT(api("GET", "/v1/apps/email/reachability", &ben, NULL), 404);
  CHECK_INT(db_count("SELECT count(*) FROM reach_rules"), 0);
}

/* Defaults are each app's graph of the recipient; the sender's app does
 * not matter, the graph is always the target profile's app's. */
static void test_default_graphs_cross_app(void) {
  char id[32];
  /* chat -> social: ben's social graph is whom he follows */
  CHECK(reach_request(&cat, "chat", "social", "ben", id));
  CHECK_INT(api("POST", "/v1/apps/social/follows/cat", &ben, NULL), 200);
  CHECK(reach_ok(&cat, "chat", "social", "ben"));
  CHECK(reach_ok(&cat, "messenger", "social", "ben"));
  /* ... and not the other way: cat does not follow ben */
  CHECK(reach_request(&ben, "social", "social", "cat", id));
  /* social -> messenger: friends */
  CHECK(reach_request(&cat, "social", "messenger", "ben.m", id));
  CHECK_INT(api("POST", "/v1/apps/messenger/friend-requests/ben.m", &cat, NULL), 200);
  CHECK(reach_request(&cat, "social", "messenger", "ben.m", id)); /* only asked */
  CHECK_INT(api("POST", "/v1/apps/messenger/friend-requests/cat.m/accept", &ben, NULL),
            200);
  CHECK(reach_ok(&cat, "social", "messenger", "ben.m"));
  CHECK(reach_ok(&ben, "chat", "messenger", "cat.m")); /* friendship is mutual */
  /* messenger -> chat: contacts (ben has cat's number) */
  CHECK(reach_request(&cat, "messenger", "chat", ben.phone, id));
  char body[64];
  snprintf(body, sizeof body, "{\"numbers\":[\"%s\"]}", cat.phone);
  CHECK_INT(api("POST", "/v1/apps/chat/contacts", &ben, body), 200);
  CHECK(reach_ok(&cat, "messenger", "chat", ben.phone));
  CHECK(reach_ok(&cat, "chat", "chat", ben.phone));
  /* dan has no chat profile: cannot reach from chat, can be reached */
  CHECK_INT(reach(&dan, "chat", "social", "ben"), 403);
  CHECK(err_is("forbidden"));
  CHECK_INT(reach(&ann, "social", "social", "nobody.here"), 404);
  CHECK(err_is("not_found"));
  CHECK_INT(reach(&ann, "social", "social", "ann"), 400);
}

static void test_rules(void) {
  long reqs = db_count("SELECT count(*) FROM reach_requests");
  /* partial update: messenger keeps its default */
  CHECK_INT(api("PUT", "/v1/apps/social/reachability", &ann,
                "{\"from\":{\"chat\":\"everyone\",\"social\":\"nobody\"}}"),
            200);
  CHECK(strcmp(rule_of("chat"), "everyone") == 0);
  CHECK(strcmp(rule_of("social"), "nobody") == 0);
  CHECK(strcmp(rule_of("messenger"), "graph") == 0);
  CHECK_INT(api("GET", "/v1/apps/social/reachability", &ann, NULL), 200);
  CHECK(strcmp(rule_of("chat"), "everyone") == 0);
  CHECK(strcmp(rule_of("social"), "nobody") == 0);
  /* other apps' rules are their own */
  CHECK_INT(api("GET", "/v1/apps/messenger/reachability", &ann, NULL), 200);
  CHECK(strcmp(rule_of("chat"), "graph") == 0);
  /* everyone */
  CHECK(reach_ok(&cat, "chat", "social", "ann"));
  /* nobody: refused, no request made, even from someone in her graph */
  CHECK_INT(reach(&dan, "social", "social", "ann"), 403);
  CHECK(err_is("forbidden"));
  CHECK_INT(api("POST", "/v1/apps/social/follows/dan", &ann, NULL), 200);
  CHECK_INT(reach(&dan, "social", "social", "ann"), 403);
  /* a client that skips its own checks and claims more is still refused */
  CHECK_INT(api("POST", "/v1/reach", &dan,
                "{\"from_app\":\"social\",\"to_app\":\"social\",\"to\":\"ann\","
                "\"allowed\":true,\"rule\":\"everyone\",\"force\":true}"),
            403);
  CHECK_INT(db_count("SELECT count(*) FROM reach_requests"), reqs);
  /* graph from messenger: ann follows dan now */
  CHECK(reach_ok(&dan, "messenger", "social", "ann"));
  CHECK_INT(api("DELETE", "/v1/apps/social/follows/dan", &ann, NULL), 200);
  char id[32];
  CHECK(reach_request(&dan, "messenger", "social", "ann", id));
  reqs++;
  /* back to graph */
  CHECK_INT(api("PUT", "/v1/apps/social/reachability", &ann,
                "{\"from\":{\"social\":\"graph\"}}"),
            200);
  CHECK(strcmp(rule_of("chat"), "everyone") == 0);
  CHECK(strcmp(rule_of("social"), "graph") == 0);
  CHECK(reach_request(&dan, "social", "social", "ann", id));
  reqs++;
  /* bad input: 400, nothing stored */
  long rules = db_count("SELECT count(*) FROM reach_rules");
  const char *bad_put[] = {"{\"from\":{\"chat\":\"friends\"}}",
                           "{\"from\":{\"email\":\"everyone\"}}",
                           "{\"from\":{\"chat\":1}}",
                           "{\"from\":{\"chat\":null}}",
                           "{\"from\":\"everyone\"}",
                           "{\"chat\":\"everyone\"}",
                           "{\"from\":{\"messenger\":\"nobody\",\"chat\":\"Everyone\"}}",
                           "[]",
                           "",
                           "{",
                           NULL};
  for (int i = 0; bad_put[i]; i++) {
    CHECK_INT(api("PUT", "/v1/apps/social/reachability", &ann, bad_put[i]), 400);
    CHECK(err_is("bad_request"));
  }
  CHECK_INT(db_count("SELECT count(*) FROM reach_rules"), rules);
  CHECK_INT(api("GET", "/v1/apps/social/reachability", &ann, NULL), 200);
  CHECK(strcmp(rule_of("messenger"), "graph") == 0);
  CHECK_INT(api("PUT", "/v1/apps/chat/reachability", &dan, "{\"from\":{}}"), 403);
  const char *bad_reach[] = {
      "{\"from_app\":\"social\",\"to_app\":\"social\"}",
      "{\"from_app\":\"email\",\"to_app\":\"social\",\"to\":\"ann\"}",
      "{\"from_app\":\"social\",\"to_app\":\"fax\",\"to\":\"ann\"}",
      "{\"from_app\":\"social\",\"to_app\":\"social\",\"to\":\"a\"}",
      "{\"from_app\":\"social\",\"to_app\":\"chat\",\"to\":\"ann\"}",
      "{\"from_app\":\"social\",\"to_app\":\"social\",\"to\":7}",
      "{\"from_app\":1,\"to_app\":\"social\",\"to\":\"ann\"}",
      "[\"social\"]",
      "",
      NULL};
  for (int i = 0; bad_reach[i]; i++) {
    CHECK_INT(api("POST", "/v1/reach", &cat, bad_reach[i]), 400);
    CHECK(err_is("bad_request"));
  }
  CHECK_INT(db_count("SELECT count(*) FROM reach_requests"), reqs);
}

static void test_requests(void) {
  char id[32], again[32];
  /* dan -> cat in social: a request, the same one when asked again */
  CHECK(reach_request(&dan, "social", "social", "cat", id));
  CHECK(reach_request(&dan, "social", "social", "cat", again));
  CHECK(strcmp(id, again) == 0);
  CHECK_INT(api("GET", "/v1/requests", &cat, NULL), 200);
  const cJSON *e = entry("incoming", id);
  CHECK(e != NULL);
  CHECK(strcmp(estr(e, "from_app"), "social") == 0);
  CHECK(strcmp(estr(e, "to_app"), "social") == 0);
  CHECK(strcmp(estr(e, "from"), "dan") == 0);
  CHECK(strcmp(estr(e, "name"), "dan S") == 0);
  CHECK(entry("outgoing", id) == NULL);
  CHECK_INT(api("GET", "/v1/requests", &dan, NULL), 200);
  e = entry("outgoing", id);
  CHECK(e != NULL);
  CHECK(strcmp(estr(e, "to"), "cat") == 0);
  CHECK(strcmp(estr(e, "state"), "pending") == 0);
  CHECK(entry("incoming", id) == NULL);
  /* only the recipient answers */
  char path[128];
  snprintf(path, sizeof path, "/v1/requests/%s/accept", id);
  CHECK_INT(api("POST", path, &dan, NULL), 404);
  CHECK_INT(api("POST", path, &ann, NULL), 404);
  CHECK_INT(api("POST", path, &cat, NULL), 200);
  CHECK(strcmp(jstr("state"), "accepted") == 0);
  CHECK_INT(api("POST", path, &cat, NULL), 404);
  CHECK(reach_ok(&dan, "social", "social", "cat"));
  /* only that direction */
  CHECK(reach_request(&dan, "messenger", "social", "cat", again));
  CHECK(strcmp(id, again) != 0);
  CHECK_INT(api("GET", "/v1/requests", &cat, NULL), 200);
  CHECK(entry("incoming", id) == NULL);
  CHECK(entry("incoming", again) != NULL);
  /* decline: gone from the recipient's list, still "pending" to the sender,
   * and asking again within 30 days is the same, silent request */
  snprintf(path, sizeof path, "/v1/requests/%s/decline", again);
  CHECK_INT(api("POST", path, &cat, NULL), 200);
  CHECK(strcmp(jstr("state"), "declined") == 0);
  CHECK_INT(api("POST", path, &cat, NULL), 404);
  CHECK_INT(api("GET", "/v1/requests", &cat, NULL), 200);
  CHECK(entry("incoming", again) == NULL);
  CHECK_INT(api("GET", "/v1/requests", &dan, NULL), 200);
  CHECK(strcmp(estr(entry("outgoing", again), "state"), "pending") == 0);
  CHECK(reach_request(&dan, "messenger", "social", "cat", id));
  CHECK(strcmp(id, again) == 0);
  CHECK_INT(api("GET", "/v1/requests", &cat, NULL), 200);
  CHECK(entry("incoming", again) == NULL);
  snprintf(path, sizeof path, "/v1/requests/%s/accept", again);
  CHECK_INT(api("POST", path, &cat, NULL), 404);
  /* bad ids and actions */
  CHECK_INT(api("POST", "/v1/requests/nope/accept", &cat, NULL), 404);
  CHECK_INT(api("POST", "/v1/requests/AAAAAAAAAAAAAAAAAAAAAA/accept", &cat, NULL), 404);
  snprintf(path, sizeof path, "/v1/requests/%s/maybe", again);
  CHECK_INT(api("POST", path, &cat, NULL), 404);
}

static void test_block_from_request(void) {
  char id[32];
  CHECK(reach_request(&dan, "messenger", "chat", ben.phone, id));
  char path[128];
  snprintf(path, sizeof path, "/v1/requests/%s/block", id);
  CHECK_INT(api("POST", path, &ben, NULL), 200);
  CHECK(strcmp(jstr("state"), "blocked") == 0);
  CHECK_INT(api("GET", "/v1/blocks", &ben, NULL), 200);
  CHECK_INT(count_in("blocks", "target", "dan.m"), 1);
  CHECK_INT(api("GET", "/v1/requests", &ben, NULL), 200);
  CHECK(entry("incoming", id) == NULL);
  CHECK_INT(api("GET", "/v1/requests", &dan, NULL), 200);
  CHECK(entry("outgoing", id) == NULL);
  CHECK_INT(db_count("SELECT count(*) FROM reach_requests r JOIN blocks b ON"
                     " b.blocked_id = r.sender_id AND b.blocker_id = r.recipient_id"),
            0);
  /* hidden both ways, in every app; reach is 404 from every app to every
   * app, both ways */
  const char *ben_keys[] = {ben.phone, "ben", "ben.m"};
  const char *dan_keys[] = {NULL, "dan", "dan.m"};
  const char *apps[] = {"chat", "social", "messenger"};
  for (int t = 0; t < 3; t++) {
    snprintf(path, sizeof path, "/v1/apps/%s/profiles/%s", apps[t], ben_keys[t]);
    CHECK_INT(api("GET", path, &dan, NULL), 404);
    for (int f = 1; f < 3; f++) {
      CHECK_INT(reach(&dan, apps[f], apps[t], ben_keys[t]), 404);
      CHECK(err_is("not_found"));
    }
    if (!dan_keys[t]) continue;
    snprintf(path, sizeof path, "/v1/apps/%s/profiles/%s", apps[t], dan_keys[t]);
    CHECK_INT(api("GET", path, &ben, NULL), 404);
    for (int f = 0; f < 3; f++)
      CHECK_INT(reach(&ben, apps[f], apps[t], dan_keys[t]), 404);
  }
  /* everyone does not lift a block */
  CHECK_INT(api("PUT", "/v1/apps/social/reachability", &ben,
                "{\"from\":{\"social\":\"everyone\",\"messenger\":\"everyone\"}}"),
            200);
  CHECK_INT(reach(&dan, "social", "social", "ben"), 404);
  CHECK(reach_ok(&cat, "social", "social", "ben"));
}

static void test_daily_cap(void) {
  /* eve asks 6 directions (3 source apps x social, messenger) of each of
   * nine fresh accounts: the 51st new request is refused. */
  CHECK(make_user(&eve, "eve"));
  CHECK(put_profiles(&eve, "Eve", "eve", "eve.m"));
  const char *from[] = {"chat", "social", "messenger"};
  int made = 0;
  char id[32], first[32] = "";
  for (int i = 0; i < 9 && made < REACH_DAILY_CAP; i++) {
    user t = {.phone = NULL};
    char login[32], s[32], m[32];
    snprintf(login, sizeof login, "target%d", i);
    snprintf(s, sizeof s, "target%d", i);
    snprintf(m, sizeof m, "target%d.m", i);
    CHECK(make_user(&t, login));
    CHECK(put_profiles(&t, NULL, s, m));
    for (int f = 0; f < 3 && made < REACH_DAILY_CAP; f++)
      for (int a = 0; a < 2 && made < REACH_DAILY_CAP; a++) {
        CHECK(reach_request(&eve, from[f], a ? "messenger" : "social", a ? m : s, id));
        if (!first[0]) snprintf(first, sizeof first, "%s", id);
        made++;
      }
  }
  CHECK_INT(made, REACH_DAILY_CAP);
  long reqs = db_count("SELECT count(*) FROM reach_requests");
  CHECK_INT(reach(&eve, "chat", "social", "cat"), 429);
  CHECK(err_is("rate_limited"));
  const char *ra = strcasestr(resp.head, "\r\nRetry-After: ");
  CHECK(ra != NULL);
  long secs = ra ? atol(ra + 15) : 0;
  CHECK(secs >= 1 && secs <= 86400);
  CHECK_INT(db_count("SELECT count(*) FROM reach_requests"), reqs);
  /* asking again for an existing request is not a new one */
  CHECK(reach_request(&eve, "chat", "social", "target0", id));
  CHECK(strcmp(id, first) == 0);
  /* allowed reaches are not requests */
  CHECK_INT(api("PUT", "/v1/apps/messenger/reachability", &cat,
                "{\"from\":{\"social\":\"everyone\"}}"),
            200);
  CHECK(reach_ok(&eve, "social", "messenger", "cat.m"));
  /* the cap is per sender */
  CHECK(reach_request(&ann, "chat", "social", "target0", id));
}

static void test_authorization(void) {
  CHECK_INT(api("GET", "/v1/apps/social/reachability", NULL, NULL), 401);
  CHECK(err_is("unauthorized"));
  CHECK_INT(api("PUT", "/v1/apps/social/reachability", NULL,
                "{\"from\":{\"chat\":\"everyone\"}}"),
            401);
  CHECK_INT(api("POST", "/v1/reach", NULL,
                "{\"from_app\":\"social\",\"to_app\":\"social\",\"to\":\"ann\"}"),
            401);
  CHECK_INT(api("GET", "/v1/requests", NULL, NULL), 401);
  CHECK_INT(api("POST", "/v1/requests/AAAAAAAAAAAAAAAAAAAAAA/accept", NULL, NULL), 401);
  CHECK_INT(call(srv.port, "GET", "/v1/requests", "bm90IGEgdG9rZW4", NULL), 401);
  CHECK_INT(api("GET", "/v1/reach", &ann, NULL), 405);
}

/* reach_allowed, the function the delivery service uses, on the stopped
 * server's database. */
typedef struct {
  uint8_t ann[16], ben[16], cat[16], dan[16];
  int got[8];
} reach_probe;

static int probe_run(store_conn *c, void *arg) {
  reach_probe *p = arg;
  int i = 0;
  p->got[i++] = reach_allowed(c, APP_SOCIAL, APP_SOCIAL, p->dan, p->cat); /* accepted */
  p->got[i++] =
      reach_allowed(c, APP_MESSENGER, APP_SOCIAL, p->dan, p->cat);      /* declined */
  p->got[i++] = reach_allowed(c, APP_CHAT, APP_SOCIAL, p->cat, p->ann); /* everyone */
  p->got[i++] =
      reach_allowed(c, APP_SOCIAL, APP_SOCIAL, p->dan, p->ann); /* graph, none */
  p->got[i++] = reach_allowed(c, APP_SOCIAL, APP_SOCIAL, p->dan, p->ben);  /* blocked */
  p->got[i++] = reach_allowed(c, APP_CHAT, APP_SOCIAL, p->dan, p->cat);    /* no chat */
  p->got[i++] = reach_allowed(c, APP_MESSENGER, APP_CHAT, p->cat, p->ben); /* contact */
  p->got[i++] = reach_allowed(c, APP_SOCIAL, APP_SOCIAL, p->ann, p->ann);  /* self */
  return 0;
}

static bool id_of(const user *u, uint8_t out[16]) {
  size_t got = 0;
  return b64_decode(out, 16, u->s.account_id, strlen(u->s.account_id), B64_MODE_URL_NOPAD,
                    &got) == 0 &&
         got == 16;
}

static void test_reach_allowed(void) {
  reach_probe p = {0};
  CHECK(id_of(&ann, p.ann) && id_of(&ben, p.ben) && id_of(&cat, p.cat) &&
        id_of(&dan, p.dan));
  store_opts o = {.migrations = server_schema, .n_migrations = server_schema_len};
  store *st = NULL;
  CHECK_OK(store_open(srv.data, &o, &st));
  if (!st) return;
  CHECK_OK(store_exec_sync(st, probe_run, &p));
  store_close(st);
  const int want[8] = {1, 0, 1, 0, 0, 0, 1, 0};
  for (int i = 0; i < 8; i++) {
    if (p.got[i] != want[i]) fprintf(stderr, "  probe %d\n", i);
    CHECK_INT(p.got[i], want[i]);
  }
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  if (sodium_init() < 0 || !find_binary()) {
    fprintf(stderr, "tesserad not found (set TSR_BUILD)\n");
    printf("reach: 0 passed, 1 failed, 0 skipped\n");
    return 1;
  }
  if (!server_start(&srv, true)) {
    fprintf(stderr, "tesserad did not start; log %s\n", srv.log);
    printf("reach: 0 passed, 1 failed, 0 skipped\n");
    return 1;
  }
  RUN(test_setup);
  RUN(test_defaults);
  RUN(test_default_graphs_cross_app);
  RUN(test_rules);
  RUN(test_requests);
  RUN(test_block_from_request);
  RUN(test_daily_cap);
  RUN(test_authorization);
  cJSON_Delete(resp.json);
  resp.json = NULL;
  kill(srv.pid, SIGTERM);
  int st = server_wait(&srv, 15000);
  if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    fprintf(stderr, "FAIL server did not exit 0 on SIGTERM\n");
    test_failed_++;
  }
  RUN(test_reach_allowed);
  server_stop(&srv);
  return test_report("reach");
}
