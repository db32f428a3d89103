/* Helpers shared by the tests that start a real tesserad; see
 * server_harness.h. */
#define _GNU_SOURCE /* memmem, strcasestr */
#include "server_harness.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proto/base64.h"
#include "proto/ws.h"
#include "test.h"

static char tesserad_path[PATH_MAX];

http_resp resp;
const char *PW = "correct horse battery staple";

/* ---- time and descriptors ---- */

uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

bool wait_fd(int fd, short events, uint64_t deadline) {
  for (;;) {
    uint64_t now = now_ms();
    if (now >= deadline) return false;
    struct pollfd p = {.fd = fd, .events = events};
    int n = poll(&p, 1, (int)(deadline - now));
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) return false;
  }
}

void tick(void) { poll(NULL, 0, 10); }

char *read_file(const char *path) {
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

static uint32_t source_addr; /* host order; 0: the kernel's choice */

void set_source_address(uint32_t addr) { source_addr = addr; }

int tcp_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  struct sockaddr_in src = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(source_addr)};
  if ((source_addr && bind(fd, (struct sockaddr *)&src, sizeof src) != 0) ||
      connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

bool send_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n) {
    ssize_t k = send(fd, c, n, MSG_NOSIGNAL);
    if (k <= 0) return false;
    c += k;
    n -= (size_t)k;
  }
  return true;
}

bool send_str(int fd, const char *s) { return send_all(fd, s, strlen(s)); }

bool wait_closed(int fd, uint64_t ms, size_t *got) {
  uint64_t deadline = now_ms() + ms;
  char tmp[4096];
  while (wait_fd(fd, POLLIN, deadline)) {
    ssize_t k = recv(fd, tmp, sizeof tmp, 0);
    if (k == 0 || (k < 0 && errno == ECONNRESET)) return true;
    if (k < 0 && errno != EAGAIN && errno != EINTR) return true;
    if (k > 0 && got) *got += (size_t)k;
  }
  return false;
}

/* ---- the server process ---- */

bool find_binary(void) {
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

bool server_start(server *s, const char *tag, bool fresh, const char *workers,
                  const char *const *extra) {
  if (fresh) {
    memset(s, 0, sizeof *s);
    snprintf(s->dir, sizeof s->dir, "/tmp/tsr-%s-XXXXXX", tag);
    if (!mkdtemp(s->dir)) return false;
    snprintf(s->log, sizeof s->log, "%s/tesserad.log", s->dir);
    snprintf(s->data, sizeof s->data, "%s/data", s->dir);
    s->workers = workers;
    s->extra = extra;
  }
  s->port = 0;
  if (!fresh && truncate(s->log, 0) != 0) return false;
  const char *argv[32] = {tesserad_path, "--data-dir",  s->data,
                          "--listen",    "127.0.0.1:0", "--log-file",
                          s->log,        "--workers",   s->workers};
  int n = 9;
  for (int i = 0; s->extra && s->extra[i] && n < 30; i++) argv[n++] = s->extra[i];
  argv[n] = NULL;
  s->pid = fork();
  if (s->pid == 0) {
    setpgid(0, 0);
    /* A test that dies (an ASan abort, a crash) takes its server along:
     * SIGTERM makes it stop its workers and delivery service. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
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

int server_wait(server *s, uint64_t ms) {
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

void server_kill9(server *s) {
  pid_t pg = s->pid;
  kill(-pg, SIGKILL);
  waitpid(pg, NULL, 0);
  s->pid = 0;
  /* The workers are gone when no process of the group is left. */
  uint64_t deadline = now_ms() + DEADLINE_MS;
  while (kill(-pg, 0) == 0 && now_ms() < deadline) tick();
}

void server_stop(server *s, bool check_exit) {
  if (s->pid > 0) {
    kill(s->pid, SIGTERM);
    int st = server_wait(s, 15000);
    if (st < 0) {
      kill(-s->pid, SIGKILL);
      waitpid(s->pid, NULL, 0);
    }
    if (check_exit && (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)) {
      fprintf(stderr, "FAIL server did not exit 0 on SIGTERM\n");
      test_failed_++;
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

/* ---- HTTP client ---- */

bool reader_fill(reader *r, uint64_t deadline) {
  if (r->len == sizeof r->buf) return false;
  if (!wait_fd(r->fd, POLLIN, deadline)) return false;
  ssize_t k = recv(r->fd, r->buf + r->len, sizeof r->buf - r->len, 0);
  if (k <= 0) return false;
  r->len += (size_t)k;
  return true;
}

void reader_consume(reader *r, size_t n) {
  memmove(r->buf, r->buf + n, r->len - n);
  r->len -= n;
}

bool read_response(reader *r, http_resp *out) {
  uint64_t deadline = now_ms() + DEADLINE_MS;
  char *end;
  for (;;) {
    end = r->len ? memmem(r->buf, r->len, "\r\n\r\n", 4) : NULL;
    if (end) break;
    if (!reader_fill(r, deadline)) return false;
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
    if (!reader_fill(r, deadline)) return false;
  memcpy(out->body, r->buf + hl, blen);
  out->body[blen] = '\0';
  reader_consume(r, hl + blen);
  cJSON_Delete(out->json);
  out->json = cJSON_Parse(out->body);
  return true;
}

static reader hr; /* big: keep off the stack */

int call_raw(int port, const char *req, size_t n) {
  cJSON_Delete(resp.json);
  memset(&resp, 0, sizeof resp);
  hr.fd = tcp_connect(port);
  hr.len = 0;
  if (hr.fd < 0) return 0;
  bool ok = send_all(hr.fd, req, n) && read_response(&hr, &resp);
  close(hr.fd);
  if (!ok) {
    /* As if nothing came: no status, no parsed body. */
    cJSON_Delete(resp.json);
    resp.json = NULL;
    resp.status = 0;
    return 0;
  }
  return resp.status;
}

int call_hdr_n(int port, const char *method, const char *path, const char *hdr,
               const char *body, size_t n) {
  static char req[1 << 16];
  int h = snprintf(req, sizeof req,
                   "%s %s HTTP/1.1\r\nHost: t\r\n%sContent-Type: application/json\r\n"
                   "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                   method, path, hdr, n);
  if (h <= 0 || (size_t)h + n >= sizeof req) {
    cJSON_Delete(resp.json);
    memset(&resp, 0, sizeof resp);
    return 0;
  }
  if (n) memcpy(req + h, body, n);
  return call_raw(port, req, (size_t)h + n);
}

int call_hdr(int port, const char *method, const char *path, const char *hdr,
             const char *body) {
  return call_hdr_n(port, method, path, hdr, body, body ? strlen(body) : 0);
}

int call(int port, const char *method, const char *path, const char *token,
         const char *body) {
  char auth[256] = "";
  if (token) snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", token);
  return call_hdr(port, method, path, auth, body);
}

const char *json_str(const cJSON *o, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  return cJSON_IsString(v) ? v->valuestring : "";
}

const char *jstr(const char *key) { return json_str(resp.json, key); }

const char *err_code(void) {
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(resp.json, "error");
  return json_str(e, "code");
}

bool err_is(const char *code) { return strcmp(err_code(), code) == 0; }

int count_in(const char *list, const char *key, const char *value) {
  const cJSON *a = cJSON_GetObjectItemCaseSensitive(resp.json, list), *e;
  int n = 0;
  cJSON_ArrayForEach(e, a) {
    const cJSON *v = cJSON_IsString(e) ? e : cJSON_GetObjectItemCaseSensitive(e, key);
    if (cJSON_IsString(v) && strcmp(v->valuestring, value) == 0) n++;
  }
  return n;
}

/* ---- identities, devices, sessions ---- */

void b64(const uint8_t *p, size_t n, char *out) {
  size_t len = 0;
  b64_encode(out, 200, p, n, B64_MODE_URL_NOPAD, &len);
  out[len] = '\0';
}

void identity_new(identity *id) { crypto_sign_keypair(id->pk, id->sk); }

void device_json(const identity *signer, const char *name, char *out, size_t cap) {
  device_json_seed(signer, name, out, cap, NULL);
}

void device_json_seed(const identity *signer, const char *name, char *out, size_t cap,
                      uint8_t seed[crypto_sign_SEEDBYTES]) {
  uint8_t pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
  crypto_sign_keypair(pk, sk);
  if (seed) crypto_sign_ed25519_sk_to_seed(seed, sk);
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

bool take_session(session *s) {
  snprintf(s->account_id, sizeof s->account_id, "%s", jstr("account_id"));
  snprintf(s->device_id, sizeof s->device_id, "%s", jstr("device_id"));
  snprintf(s->token, sizeof s->token, "%s", jstr("token"));
  return strlen(s->account_id) == 22 && strlen(s->device_id) == 22 &&
         strlen(s->token) == 43;
}

int do_register(int port, const char *login, const char *pw, const char *phone,
                const identity *id, session *out) {
  char dev[400], ik[64], body[2048], ph[64] = "";
  uint8_t seed[crypto_sign_SEEDBYTES];
  device_json_seed(id, "first", dev, sizeof dev, seed);
  b64(id->pk, 32, ik);
  if (phone) snprintf(ph, sizeof ph, "\"phone\":\"%s\",", phone);
  snprintf(body, sizeof body,
           "{\"login\":\"%s\",\"password\":\"%s\",%s\"email\":\"x@example.org\","
           "\"identity_key\":\"%s\",\"device\":%s}",
           login, pw, ph, ik, dev);
  int st = call(port, "POST", "/v1/accounts", NULL, body);
  if (st == 201 && out) {
    CHECK(take_session(out));
    memcpy(out->device_seed, seed, sizeof seed);
  }
  return st;
}

int do_login(int port, const char *login, const char *pw, const identity *id,
             session *out) {
  char dev[400], body[2048];
  uint8_t seed[crypto_sign_SEEDBYTES];
  device_json_seed(id, "another", dev, sizeof dev, seed);
  snprintf(body, sizeof body, "{\"login\":\"%s\",\"password\":\"%s\",\"device\":%s}",
           login, pw, dev);
  int st = call(port, "POST", "/v1/sessions", NULL, body);
  if (st == 201 && out) {
    CHECK(take_session(out));
    memcpy(out->device_seed, seed, sizeof seed);
  }
  return st;
}

bool sms_code(const char *data_dir, const char *phone, char out[8]) {
  char path[400];
  snprintf(path, sizeof path, "%s/dev-sms.log", data_dir);
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

bool make_user(const server *s, user *u, const char *login) {
  identity_new(&u->id);
  if (do_register(s->port, login, PW, NULL, &u->id, &u->s) != 201) return false;
  if (!u->phone) return true;
  char body[128], code[8] = "";
  snprintf(body, sizeof body, "{\"phone\":\"%s\"}", u->phone);
  if (call(s->port, "POST", "/v1/phone/codes", u->s.token, body) != 200 ||
      !sms_code(s->data, u->phone, code))
    return false;
  snprintf(body, sizeof body, "{\"phone\":\"%s\",\"code\":\"%s\"}", u->phone, code);
  return call(s->port, "POST", "/v1/phone/verify", u->s.token, body) == 200;
}

/* ---- WebSocket client (transport) ---- */

int ws_open(int port, reader *r, const char *token, const char *protocol,
            http_resp *out) {
  r->fd = tcp_connect(port);
  r->len = 0;
  if (r->fd < 0) return 0;
  char req[512], auth[128] = "";
  if (token) snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", token);
  snprintf(req, sizeof req,
           "GET /v1/ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: %s\r\n%s\r\n",
           protocol ? protocol : "tessera.v1", auth);
  http_resp *h = out ? out : calloc(1, sizeof *h);
  int st = 0;
  if (h && send_str(r->fd, req) && read_response(r, h)) st = h->status;
  if (h && !out) {
    cJSON_Delete(h->json);
    free(h);
  }
  return st;
}

bool ws_send(int fd, uint8_t opcode, bool fin, const void *p, size_t n, bool masked) {
  uint8_t hdr[WS_MAX_HEADER], mask[4] = {0x12, 0x34, 0x56, 0x78};
  size_t hl = ws_write_frame_header(hdr, opcode, fin, n, masked ? mask : NULL);
  uint8_t *copy = malloc(n + 1);
  if (!copy) return false;
  if (n) memcpy(copy, p, n);
  if (masked) ws_unmask(copy, n, mask, 0);
  bool ok = hl && send_all(fd, hdr, hl) && send_all(fd, copy, n);
  free(copy);
  return ok;
}

bool ws_text(int fd, const char *s) {
  return ws_send(fd, WS_OP_TEXT, true, s, strlen(s), true);
}

bool ws_recv_until(reader *r, ws_msg *m, uint64_t deadline) {
  ws_limits lim = {
      .max_frame = sizeof m->data - 1, .max_message = sizeof m->data - 1, .client = true};
  ws_frame f;
  int h;
  for (;;) {
    h = r->len ? ws_parse_frame((uint8_t *)r->buf, r->len, &f, &lim) : WS_INCOMPLETE;
    if (h < 0) return false;
    if (h > 0 && r->len >= (size_t)h + f.payload_len) break;
    if (!reader_fill(r, deadline)) return false;
  }
  m->opcode = f.opcode;
  m->len = (size_t)f.payload_len;
  memcpy(m->data, r->buf + h, m->len);
  m->data[m->len] = '\0';
  m->close_code = 0;
  if (f.opcode == WS_OP_CLOSE && m->len >= 2)
    m->close_code = (uint16_t)((uint8_t)m->data[0] << 8 | (uint8_t)m->data[1]);
  reader_consume(r, (size_t)h + m->len);
  return true;
}

/* ---- binary HTTP ---- */

void answer_free(answer *a) {
  free(a->body);
  memset(a, 0, sizeof *a);
}

bool read_answer(int fd, bool head_req, answer *a, uint8_t *pre, size_t *pre_len) {
  uint64_t deadline = now_ms() + DEADLINE_MS;
  size_t cap = 1 << 16, len = 0;
  uint8_t *b = malloc(cap);
  if (!b) return false;
  if (pre && *pre_len) {
    memcpy(b, pre, *pre_len);
    len = *pre_len;
    *pre_len = 0;
  }
  size_t hl = 0, need = SIZE_MAX;
  for (;;) {
    if (!hl) {
      uint8_t *e = len ? memmem(b, len, "\r\n\r\n", 4) : NULL;
      if (e) {
        hl = (size_t)(e - b) + 4;
        if (hl >= sizeof a->head) break;
        memcpy(a->head, b, hl);
        a->head[hl] = '\0';
        a->status = atoi(a->head + 9);
        const char *cl = strcasestr(a->head, "\r\nContent-Length:");
        size_t blen = cl && !head_req && a->status != 304 ? (size_t)atol(cl + 17) : 0;
        need = hl + blen;
      }
    }
    if (hl && len >= need) {
      a->len = need - hl;
      a->body = malloc(a->len + 1);
      if (!a->body) break;
      memcpy(a->body, b + hl, a->len);
      a->body[a->len] = 0;
      if (pre && len > need) {
        memcpy(pre, b + need, len - need);
        *pre_len = len - need;
      }
      free(b);
      return true;
    }
    if (len == cap) {
      uint8_t *nb = realloc(b, cap * 2);
      if (!nb) break;
      b = nb;
      cap *= 2;
    }
    if (!wait_fd(fd, POLLIN, deadline)) break;
    ssize_t k = recv(fd, b + len, cap - len, 0);
    if (k <= 0) break;
    len += (size_t)k;
  }
  free(b);
  return false;
}

int raw_request(int port, const char *method, const char *path, const char *token,
                const char *hdrs, const char *ctype, const uint8_t *body, size_t n,
                answer *a) {
  memset(a, 0, sizeof *a);
  int fd = tcp_connect(port);
  if (fd < 0) return 0;
  char head[2048], auth[128] = "", cl[160] = "";
  if (token) snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", token);
  if (body)
    snprintf(cl, sizeof cl, "Content-Type: %s\r\nContent-Length: %zu\r\n", ctype, n);
  snprintf(head, sizeof head,
           "%s %s HTTP/1.1\r\nHost: t\r\n%s%s%sConnection: close\r\n\r\n", method, path,
           auth, cl, hdrs);
  bool ok = send_str(fd, head) && (!body || send_all(fd, body, n)) &&
            read_answer(fd, !strcmp(method, "HEAD"), a, NULL, NULL);
  close(fd);
  return ok ? a->status : 0;
}

bool has_header(const answer *a, const char *line) {
  char want[256];
  snprintf(want, sizeof want, "\r\n%s\r\n", line);
  return strcasestr(a->head, want) != NULL;
}

long server_db_long(const server *s, const char *sql, bool write) {
  char db[400];
  snprintf(db, sizeof db, "%s/tessera.db", s->data);
  sqlite3 *h = NULL;
  long v = 0;
  if (sqlite3_open_v2(db, &h, write ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY,
                      NULL) != SQLITE_OK) {
    v = -1;
  } else {
    sqlite3_busy_timeout(h, 5000);
    const char *tail = sql;
    while (tail && *tail) {
      sqlite3_stmt *st = NULL;
      if (sqlite3_prepare_v2(h, tail, -1, &st, &tail) != SQLITE_OK) {
        v = -1;
        break;
      }
      if (!st) break;
      int rc = sqlite3_step(st);
      if (rc == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
      sqlite3_finalize(st);
      if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        v = -1;
        break;
      }
    }
  }
  sqlite3_close(h);
  return v;
}
