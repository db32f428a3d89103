/* Integration tests of tesserad's network core: each case talks to a real
 * tesserad process (random port, temporary data dir) over real sockets.
 * Every wait is a poll with a deadline; nothing sleeps to synchronise. */
#define _GNU_SOURCE /* memmem, strcasestr */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proto/ws.h"
#include "test.h"

#define DEADLINE_MS 5000

typedef struct {
  pid_t pid;
  int port;
  char dir[256];
  char log[300];
} server;

static char tesserad_path[PATH_MAX];
static server main_srv; /* shared by most cases */

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Waits on fd for events until the absolute deadline; true if ready. */
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

/* A deadline-bounded pause used only to poll external state (files,
 * process exit) that offers no descriptor to wait on. */
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
  *slash = '\0'; /* <build>/tests */
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

/* Polls the log until it contains needle. */
static bool log_has(const server *s, const char *needle, uint64_t deadline) {
  while (now_ms() < deadline) {
    char *t = read_file(s->log);
    bool ok = t && strstr(t, needle);
    free(t);
    if (ok) return true;
    tick();
  }
  return false;
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

/* Starts tesserad with extra "--key value" arguments (NULL-terminated). */
static bool server_start(server *s, const char *const *extra) {
  memset(s, 0, sizeof *s);
  snprintf(s->dir, sizeof s->dir, "/tmp/tsr-srv-XXXXXX");
  if (!mkdtemp(s->dir)) return false;
  snprintf(s->log, sizeof s->log, "%s/tesserad.log", s->dir);
  char data[300];
  snprintf(data, sizeof data, "%s/data", s->dir);
  const char *argv[64] = {tesserad_path, "--data-dir",  data,
                          "--listen",    "127.0.0.1:0", "--log-file",
                          s->log,        "--workers",   "2"};
  int n = 9;
  for (int i = 0; extra && extra[i] && n < 62; i++) argv[n++] = extra[i];
  argv[n] = NULL;
  s->pid = fork();
  if (s->pid == 0) {
    int devnull = open("/dev/null", O_RDWR);
    dup2(devnull, 0);
    dup2(devnull, 1);
    execv(tesserad_path, (char *const *)argv);
    _exit(127);
  }
  uint64_t deadline = now_ms() + DEADLINE_MS;
  while (now_ms() < deadline && !s->port) {
    char *t = read_file(s->log);
    const char *p = t ? strstr(t, "listening on 127.0.0.1:") : NULL;
    if (p) s->port = atoi(p + strlen("listening on 127.0.0.1:"));
    free(t);
    if (!s->port) tick();
  }
  if (!s->port) return false;
  /* Ready when both workers log ready (debug) or a connection works. */
  while (now_ms() < deadline) {
    int fd = tcp_connect(s->port);
    if (fd >= 0) {
      close(fd);
      return true;
    }
    tick();
  }
  return false;
}

/* Waits for the server to exit; returns its status or -1 on timeout. */
static int server_wait(server *s, uint64_t ms) {
  uint64_t deadline = now_ms() + ms;
  int status;
  while (now_ms() < deadline) {
    pid_t r = waitpid(s->pid, &status, WNOHANG);
    if (r == s->pid) {
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
      kill(s->pid, SIGKILL);
      waitpid(s->pid, NULL, 0);
    }
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

static bool send_str(int fd, const char *s) { return send_all(fd, s, strlen(s)); }

/* ---- HTTP client ---- */

typedef struct {
  int status;
  char head[4096];
  char body[65536];
  size_t body_len;
} http_resp;

/* Per-connection read-ahead so pipelined responses can be split. */
typedef struct {
  int fd;
  char buf[1 << 17];
  size_t len;
} reader;

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

static bool read_response(reader *r, http_resp *out) {
  uint64_t deadline = now_ms() + DEADLINE_MS;
  char *end;
  for (;;) {
    r->buf[r->len < sizeof r->buf ? r->len : sizeof r->buf - 1] = '\0';
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
  out->body_len = blen;
  consume(r, hl + blen);
  return true;
}

/* True when the peer closes (EOF or reset) before the deadline. */
static bool wait_closed(int fd, uint64_t ms) {
  uint64_t deadline = now_ms() + ms;
  char tmp[4096];
  while (wait_fd(fd, POLLIN, deadline)) {
    ssize_t k = recv(fd, tmp, sizeof tmp, 0);
    if (k == 0 || (k < 0 && errno == ECONNRESET)) return true;
    if (k < 0 && errno != EAGAIN && errno != EINTR) return true;
  }
  return false;
}

/* One request on a new connection. */
static bool http_once(int port, const char *req, http_resp *out) {
  int fd = tcp_connect(port);
  if (fd < 0) return false;
  static reader r;
  r.fd = fd;
  r.len = 0;
  bool ok = send_str(fd, req) && read_response(&r, out);
  close(fd);
  return ok;
}

/* ---- WebSocket client ---- */

static bool ws_open(int port, reader *r, const char *protocol, int *status) {
  r->fd = tcp_connect(port);
  r->len = 0;
  if (r->fd < 0) return false;
  char req[512];
  snprintf(req, sizeof req,
           "GET /v1/ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: %s\r\n\r\n",
           protocol);
  http_resp resp;
  if (!send_str(r->fd, req) || !read_response(r, &resp)) return false;
  *status = resp.status;
  return resp.status == 101 && strstr(resp.head, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") &&
         strstr(resp.head, "Sec-WebSocket-Protocol: tessera.v1");
}

static bool ws_send(int fd, uint8_t opcode, bool fin, const void *p, size_t n,
                    bool masked) {
  uint8_t hdr[WS_MAX_HEADER], mask[4] = {0x12, 0x34, 0x56, 0x78};
  size_t hl = ws_write_frame_header(hdr, opcode, fin, n, masked ? mask : NULL);
  uint8_t *copy = malloc(n + 1);
  memcpy(copy, p, n);
  if (masked) ws_unmask(copy, n, mask, 0);
  bool ok = hl && send_all(fd, hdr, hl) && send_all(fd, copy, n);
  free(copy);
  return ok;
}

static bool ws_text(int fd, const char *s) {
  return ws_send(fd, WS_OP_TEXT, true, s, strlen(s), true);
}

typedef struct {
  uint8_t opcode;
  uint16_t close_code;
  char data[65536];
  size_t len;
} ws_msg;

/* Reads one frame from the server (unmasked, unfragmented). */
static bool ws_recv(reader *r, ws_msg *m) {
  uint64_t deadline = now_ms() + DEADLINE_MS;
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

/* Reads frames until a text one (skipping pings). */
static bool ws_recv_text(reader *r, ws_msg *m) {
  for (int i = 0; i < 8; i++) {
    if (!ws_recv(r, m)) return false;
    if (m->opcode == WS_OP_TEXT) return true;
  }
  return false;
}

static uint16_t ws_expect_close(reader *r) {
  ws_msg m;
  for (int i = 0; i < 16; i++) {
    if (!ws_recv(r, &m)) return 0;
    if (m.opcode == WS_OP_CLOSE) return m.close_code;
  }
  return 0;
}

static reader rd, rd2; /* big: keep off the stack */
static http_resp resp;
static ws_msg msg;

/* ---- cases ---- */

static void test_health(void) {
  CHECK(http_once(main_srv.port, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n", &resp));
  CHECK_INT(resp.status, 200);
  CHECK(strcmp(resp.body, "{\"status\":\"ok\"}") == 0);
  CHECK(strstr(resp.head, "application/json") != NULL);
  /* HEAD: same head, no body. */
  int fd = tcp_connect(main_srv.port);
  rd.fd = fd;
  rd.len = 0;
  CHECK(send_str(
      fd,
      "HEAD /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n"));
  /* The HEAD response advertises 15 bytes that are not sent: read the head
   * alone, then the GET response must follow directly. */
  uint64_t dl = now_ms() + DEADLINE_MS;
  while (!memmem(rd.buf, rd.len, "\r\n\r\n", 4) && fill(&rd, dl)) {
  }
  char *e = memmem(rd.buf, rd.len, "\r\n\r\n", 4);
  CHECK(e != NULL);
  if (e) consume(&rd, (size_t)(e - rd.buf) + 4);
  CHECK(read_response(&rd, &resp));
  CHECK_INT(resp.status, 200);
  close(fd);
}

static void test_metrics(void) {
  CHECK(http_once(main_srv.port, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n", &resp));
  CHECK(http_once(main_srv.port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &resp));
  CHECK_INT(resp.status, 200);
  CHECK(strstr(resp.head, "text/plain; version=0.0.4") != NULL);
  CHECK(strstr(resp.body,
               "# TYPE tessera_connections_open gauge\ntessera_connections_open ") !=
        NULL);
  CHECK(strstr(resp.body, "tessera_connections_total ") != NULL);
  CHECK(strstr(resp.body, "tessera_request_duration_seconds_bucket{le=\"+Inf\"} ") !=
        NULL);
  const char *p = strstr(resp.body, "tessera_http_responses_total{class=\"2xx\"} ");
  CHECK(p && atol(p + strlen("tessera_http_responses_total{class=\"2xx\"} ")) >= 1);
  CHECK(strstr(resp.body, "tessera_errors_total{kind=\"slow_reader\"}") != NULL);
}

static void test_keepalive_pipelining(void) {
  int fd = tcp_connect(main_srv.port);
  rd.fd = fd;
  rd.len = 0;
  CHECK(send_str(fd,
                 "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
                 "GET /missing HTTP/1.1\r\nHost: x\r\n\r\n"
                 "POST /debug/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                 "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"));
  int want[] = {200, 404, 200, 200};
  for (int i = 0; i < 4; i++) {
    CHECK(read_response(&rd, &resp));
    CHECK_INT(resp.status, want[i]);
    if (i == 2) CHECK(strcmp(resp.body, "abc") == 0);
  }
  /* Still open (keep-alive): one more, sent byte by byte. */
  const char *req = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
  for (const char *c = req; *c; c++) CHECK(send_all(fd, c, 1));
  CHECK(read_response(&rd, &resp));
  CHECK_INT(resp.status, 200);
  /* Connection: close is honoured. */
  CHECK(send_str(fd, "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  CHECK(read_response(&rd, &resp));
  CHECK(strstr(resp.head, "Connection: close") != NULL);
  CHECK(wait_closed(fd, DEADLINE_MS));
  close(fd);
}

static void test_limits(void) {
  /* 431: a header section over max_header_bytes (8 KiB). */
  static char big[12000];
  int n = snprintf(big, sizeof big, "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ");
  memset(big + n, 'a', 9000);
  strcpy(big + n + 9000, "\r\n\r\n");
  int fd = tcp_connect(main_srv.port);
  rd.fd = fd;
  rd.len = 0;
  CHECK(send_str(fd, big));
  CHECK(read_response(&rd, &resp));
  CHECK_INT(resp.status, 431);
  CHECK(wait_closed(fd, DEADLINE_MS));
  close(fd);
  /* 413: Content-Length over max_body (64 KiB), refused before the body. */
  CHECK(http_once(
      main_srv.port,
      "POST /debug/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n", &resp));
  CHECK_INT(resp.status, 413);
  /* 400: malformed header line, and a missing Host. */
  CHECK(http_once(main_srv.port, "GET /health HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
                  &resp));
  CHECK_INT(resp.status, 400);
  CHECK(http_once(main_srv.port, "GET /health HTTP/1.1\r\n\r\n", &resp));
  CHECK_INT(resp.status, 400);
  CHECK(strstr(resp.body, "\"code\":\"bad_request\"") != NULL);
  /* 501: an unknown transfer coding. */
  CHECK(http_once(
      main_srv.port,
      "POST /debug/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", &resp));
  CHECK_INT(resp.status, 501);
}

static void test_chunked_and_continue(void) {
  int fd = tcp_connect(main_srv.port);
  rd.fd = fd;
  rd.len = 0;
  /* Chunked body split across writes, then a pipelined request. */
  CHECK(send_str(fd, "POST /debug/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
                     "chunked\r\n\r\n5\r\nhel"));
  CHECK(send_str(fd, "lo\r\n6;ext=1\r\n world\r\n"));
  CHECK(send_str(fd, "0\r\nTrailer: t\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n"));
  CHECK(read_response(&rd, &resp));
  CHECK_INT(resp.status, 200);
  CHECK(strcmp(resp.body, "hello world") == 0);
  CHECK(read_response(&rd, &resp));
  CHECK_INT(resp.status, 200);
  /* Expect: 100-continue gets the interim response before the body. */
  CHECK(send_str(fd, "POST /debug/echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                     "Content-Length: 4\r\n\r\n"));
  CHECK(read_response(&rd, &resp));
  CHECK_INT(resp.status, 100);
  CHECK(send_str(fd, "ping"));
  CHECK(read_response(&rd, &resp));
  CHECK_INT(resp.status, 200);
  CHECK(strcmp(resp.body, "ping") == 0);
  /* Chunked body over max_body: 413. */
  static char chunk[70000];
  int n = snprintf(chunk, sizeof chunk,
                   "POST /debug/echo HTTP/1.1\r\nHost: x\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n11000\r\n");
  memset(chunk + n, 'z',
         0x11000 > (int)sizeof chunk - n - 1 ? sizeof chunk - (size_t)n - 1 : 0x11000);
  CHECK(send_all(fd, chunk, sizeof chunk - 1));
  CHECK(read_response(&rd, &resp));
  CHECK_INT(resp.status, 413);
  close(fd);
}

static void test_timeouts(void) {
  server s;
  const char *extra[] = {"--http-idle-timeout", "0.3", "--request-timeout", "0.3", NULL};
  CHECK(server_start(&s, extra));
  /* Idle keep-alive connection is closed after the idle timeout. */
  int fd = tcp_connect(s.port);
  rd.fd = fd;
  rd.len = 0;
  CHECK(send_str(fd, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"));
  CHECK(read_response(&rd, &resp));
  uint64_t t0 = now_ms();
  CHECK(wait_closed(fd, 3000));
  CHECK(now_ms() - t0 >= 250);
  close(fd);
  /* A request that never completes gets 408. */
  fd = tcp_connect(s.port);
  rd.fd = fd;
  rd.len = 0;
  CHECK(send_str(fd, "GET /health HTTP/1.1\r\nHost:"));
  CHECK(read_response(&rd, &resp));
  CHECK_INT(resp.status, 408);
  close(fd);
  server_stop(&s);
}

static void test_ws_ops(void) {
  int st = 0;
  CHECK(ws_open(main_srv.port, &rd, "chat, tessera.v1", &st));
  CHECK(ws_text(rd.fd, "{\"op\":\"ping\",\"id\":1}"));
  CHECK(ws_recv_text(&rd, &msg));
  CHECK(strcmp(msg.data, "{\"id\":1,\"ok\":{}}") == 0);
  CHECK(ws_text(rd.fd, "{\"id\":\"a\\\"b\",\"op\":\"nope\",\"extra\":[1,2]}"));
  CHECK(ws_recv_text(&rd, &msg));
  CHECK(strcmp(msg.data, "{\"id\":\"a\\\"b\",\"error\":{\"code\":\"unknown_op\","
                         "\"message\":\"unknown op\"}}") == 0);
  CHECK(ws_text(rd.fd, "{\"op\":\"ping\",\"id\":"));
  CHECK(ws_recv_text(&rd, &msg));
  CHECK(strncmp(msg.data, "{\"id\":null,\"error\":{\"code\":\"bad_json\"", 37) == 0);
  CHECK(ws_text(rd.fd, "[1,2]"));
  CHECK(ws_recv_text(&rd, &msg));
  CHECK(strstr(msg.data, "\"code\":\"bad_request\"") != NULL);
  /* Fragmented message with a ping between the fragments. */
  CHECK(ws_send(rd.fd, WS_OP_TEXT, false, "{\"op\":\"pi", 9, true));
  CHECK(ws_send(rd.fd, WS_OP_PING, true, "hb", 2, true));
  CHECK(ws_send(rd.fd, WS_OP_CONT, true, "ng\",\"id\":7}", 11, true));
  CHECK(ws_recv(&rd, &msg));
  CHECK_INT(msg.opcode, WS_OP_PONG);
  CHECK(msg.len == 2 && memcmp(msg.data, "hb", 2) == 0);
  CHECK(ws_recv_text(&rd, &msg));
  CHECK(strcmp(msg.data, "{\"id\":7,\"ok\":{}}") == 0);
  /* Clean close: the server echoes the code and closes TCP. */
  uint8_t cl[2] = {0x03, 0xe8};
  CHECK(ws_send(rd.fd, WS_OP_CLOSE, true, cl, 2, true));
  CHECK_INT(ws_expect_close(&rd), 1000);
  CHECK(wait_closed(rd.fd, DEADLINE_MS));
  close(rd.fd);
}

static void test_ws_handshake_refusals(void) {
  int st = 0;
  CHECK(!ws_open(main_srv.port, &rd, "mqtt", &st));
  CHECK_INT(st, 400);
  close(rd.fd);
  CHECK(http_once(
      main_srv.port,
      "GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n"
      "Sec-WebSocket-Protocol: tessera.v1\r\n\r\n",
      &resp));
  CHECK_INT(resp.status, 426);
  CHECK(strstr(resp.head, "Sec-WebSocket-Version: 13") != NULL);
  CHECK(http_once(main_srv.port, "GET /v1/ws HTTP/1.1\r\nHost: x\r\n\r\n", &resp));
  CHECK_INT(resp.status, 426);
}

static void test_ws_protocol_errors(void) {
  int st = 0;
  /* Unmasked client frame: 1002. */
  CHECK(ws_open(main_srv.port, &rd, "tessera.v1", &st));
  CHECK(ws_send(rd.fd, WS_OP_TEXT, true, "{}", 2, false));
  CHECK_INT(ws_expect_close(&rd), 1002);
  close(rd.fd);
  /* Invalid UTF-8 in a text message: 1007. */
  CHECK(ws_open(main_srv.port, &rd, "tessera.v1", &st));
  CHECK(ws_send(rd.fd, WS_OP_TEXT, true, "{\"op\":\"\xc3\x28\"}", 10, true));
  CHECK_INT(ws_expect_close(&rd), 1007);
  close(rd.fd);
  /* Message over max_ws_message (16 KiB), in fragments: 1009. */
  CHECK(ws_open(main_srv.port, &rd, "tessera.v1", &st));
  static char frag[10000];
  memset(frag, ' ', sizeof frag);
  CHECK(ws_send(rd.fd, WS_OP_TEXT, false, frag, sizeof frag, true));
  CHECK(ws_send(rd.fd, WS_OP_CONT, false, frag, sizeof frag, true));
  CHECK_INT(ws_expect_close(&rd), 1009);
  close(rd.fd);
  /* Binary message: 1003. */
  CHECK(ws_open(main_srv.port, &rd, "tessera.v1", &st));
  CHECK(ws_send(rd.fd, WS_OP_BINARY, true, "\x01", 1, true));
  CHECK_INT(ws_expect_close(&rd), 1003);
  close(rd.fd);
  /* The server is fine afterwards. */
  CHECK(http_once(main_srv.port, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n", &resp));
  CHECK_INT(resp.status, 200);
}

static void test_slow_reader(void) {
  /* A client that sends requests and never reads its replies. */
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int small = 4096;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)main_srv.port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
  rd.fd = fd;
  rd.len = 0;
  const char *up =
      "GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
      "Sec-WebSocket-Protocol: tessera.v1\r\n\r\n";
  CHECK(send_str(fd, up));
  CHECK(read_response(&rd, &resp));
  CHECK_INT(resp.status, 101);
  static char req[1100];
  int n = snprintf(req, sizeof req, "{\"op\":\"ping\",\"id\":\"");
  memset(req + n, 'x', 1000);
  strcpy(req + n + 1000, "\"}");
  fcntl(fd, F_SETFL, O_NONBLOCK);
  bool dropped = false;
  uint64_t deadline = now_ms() + 20000;
  /* Each request earns a ~1 KiB reply; replies pile up in the server. */
  while (!dropped && now_ms() < deadline) {
    uint8_t hdr[WS_MAX_HEADER], mask[4] = {1, 2, 3, 4};
    size_t len = strlen(req);
    size_t hl = ws_write_frame_header(hdr, WS_OP_TEXT, true, len, mask);
    static uint8_t frame[1200];
    memcpy(frame, hdr, hl);
    memcpy(frame + hl, req, len);
    ws_unmask(frame + hl, len, mask, 0);
    size_t off = 0;
    while (off < hl + len && now_ms() < deadline) {
      ssize_t k = send(fd, frame + off, hl + len - off, MSG_NOSIGNAL);
      if (k > 0)
        off += (size_t)k;
      else if (errno == EAGAIN) {
        /* Our send buffer is full: has the server hung up? */
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        poll(&p, 1, 50);
        if (p.revents & (POLLHUP | POLLERR)) {
          dropped = true;
          break;
        }
      } else {
        dropped = true;
        break;
      }
    }
  }
  CHECK(dropped);
  close(fd);
  /* Other connections keep working. */
  CHECK(http_once(main_srv.port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &resp));
  CHECK_INT(resp.status, 200);
  const char *p = strstr(resp.body, "tessera_errors_total{kind=\"slow_reader\"} ");
  CHECK(p && atol(p + strlen("tessera_errors_total{kind=\"slow_reader\"} ")) >= 1);
}

static void test_sighup_reopens_log(void) {
  char moved[400];
  snprintf(moved, sizeof moved, "%s.1", main_srv.log);
  CHECK(rename(main_srv.log, moved) == 0);
  CHECK(kill(main_srv.pid, SIGHUP) == 0);
  uint64_t deadline = now_ms() + DEADLINE_MS;
  while (access(main_srv.log, F_OK) != 0 && now_ms() < deadline) tick();
  CHECK(access(main_srv.log, F_OK) == 0);
  CHECK(log_has(&main_srv, "log reopened", now_ms() + DEADLINE_MS));
}

static void test_sigterm_drains(void) {
  server s;
  /* One worker, so the 1001 below proves the drain has begun for both. */
  const char *extra[] = {"--workers", "1", NULL};
  CHECK(server_start(&s, extra));
  int st = 0;
  CHECK(ws_open(s.port, &rd, "tessera.v1", &st));
  /* An HTTP request in flight: the 100 Continue proves the server holds
   * its head while the body is still missing. */
  int fd = tcp_connect(s.port);
  rd2.fd = fd;
  rd2.len = 0;
  CHECK(send_str(fd, "POST /debug/echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                     "Content-Length: 2\r\n\r\n"));
  CHECK(read_response(&rd2, &resp));
  CHECK_INT(resp.status, 100);
  CHECK(kill(s.pid, SIGTERM) == 0);
  CHECK_INT(ws_expect_close(&rd), 1001);
  uint8_t cl[2] = {0x03, 0xe9};
  ws_send(rd.fd, WS_OP_CLOSE, true, cl, 2, true);
  /* The in-flight request still completes, with Connection: close. */
  CHECK(send_str(fd, "ok"));
  CHECK(read_response(&rd2, &resp));
  CHECK_INT(resp.status, 404); /* debug routes are off on this server */
  CHECK(strstr(resp.head, "Connection: close") != NULL);
  int status = server_wait(&s, 15000);
  CHECK(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
  /* New connections are refused once it is gone. */
  CHECK(tcp_connect(s.port) < 0);
  close(fd);
  close(rd.fd);
  server_stop(&s);
}

static void test_tls(void) {
  server s;
  char dir[] = "/tmp/tsr-cert-XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  char cmd[1024], cert[64], key[64];
  snprintf(cert, sizeof cert, "%s/cert.pem", dir);
  snprintf(key, sizeof key, "%s/key.pem", dir);
  snprintf(cmd, sizeof cmd,
           "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 "
           "-subj /CN=localhost -keyout %s -out %s >/dev/null 2>&1",
           key, cert);
  if (system(cmd) != 0) TEST_SKIP("openssl command-line tool not available");
  const char *extra[] = {"--tls-cert", cert, "--tls-key", key, NULL};
  CHECK(server_start(&s, extra));
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_load_verify_locations(ctx, cert, NULL);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  int fd = tcp_connect(s.port);
  SSL *ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  SSL_set_tlsext_host_name(ssl, "localhost");
  CHECK(SSL_connect(ssl) == 1);
  CHECK(SSL_version(ssl) == TLS1_3_VERSION);
  const char *req = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
  CHECK(SSL_write(ssl, req, (int)strlen(req)) == (int)strlen(req));
  char buf[1024];
  size_t len = 0;
  struct timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  while (len < sizeof buf - 1 && !strstr(buf, "{\"status\":\"ok\"}")) {
    int k = SSL_read(ssl, buf + len, (int)(sizeof buf - 1 - len));
    if (k <= 0) break;
    len += (size_t)k;
    buf[len] = '\0';
  }
  buf[len] = '\0';
  CHECK(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0);
  CHECK(strstr(buf, "{\"status\":\"ok\"}") != NULL);
  SSL_free(ssl);
  close(fd);
  /* A plain-text client gets no answer but does not disturb the server. */
  fd = tcp_connect(s.port);
  send_str(fd, req);
  CHECK(wait_closed(fd, DEADLINE_MS));
  close(fd);
  SSL_CTX_free(ctx);
  server_stop(&s);
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  CHECK(system(cmd) == 0);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  if (!find_binary()) {
    fprintf(stderr, "tesserad not found (set TSR_BUILD)\n");
    printf("server_core: 0 passed, 1 failed, 0 skipped\n");
    return 1;
  }
  const char *extra[] = {
      "--debug-routes",     "on",  "--max-body", "64k", "--max-ws-message", "16k",
      "--max-write-buffer", "64k", NULL};
  if (!server_start(&main_srv, extra)) {
    fprintf(stderr, "tesserad did not start; log %s\n", main_srv.log);
    printf("server_core: 0 passed, 1 failed, 0 skipped\n");
    return 1;
  }
  RUN(test_health);
  RUN(test_metrics);
  RUN(test_keepalive_pipelining);
  RUN(test_limits);
  RUN(test_chunked_and_continue);
  RUN(test_ws_ops);
  RUN(test_ws_handshake_refusals);
  RUN(test_ws_protocol_errors);
  RUN(test_slow_reader);
  RUN(test_sighup_reopens_log);
  RUN(test_timeouts);
  RUN(test_sigterm_drains);
  RUN(test_tls);
  kill(main_srv.pid, SIGTERM);
  int st = server_wait(&main_srv, 15000);
  if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    fprintf(stderr, "FAIL main server did not exit 0 on SIGTERM\n");
    test_failed_++;
  }
  server_stop(&main_srv);
  return test_report("server_core");
}
