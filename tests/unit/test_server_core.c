/* Integration tests of tesserad's network core: each case talks to a real
 * tesserad process (random port, temporary data dir) over real sockets.
 * Every wait is a poll with a deadline; nothing sleeps to synchronise. */
#define _GNU_SOURCE /* memmem */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
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
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

/* This file's own waits; the harness keeps its default. */
#define DEADLINE_MS 5000

#include "proto/ws.h"
#include "server_harness.h"
#include "test.h"

static server main_srv; /* shared by most cases */

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

/* One request on a new connection; the answer is in resp. */
static bool http_once(int port, const char *req) {
  return call_raw(port, req, strlen(req)) != 0;
}

/* ---- WebSocket client ---- */

/* Opens a session offering protocol; true when the upgrade succeeds with
 * the right accept key and tessera.v1 chosen. *status: the answer's. */
static bool ws_open_checked(int port, reader *r, const char *protocol, int *status) {
  static http_resp up;
  int st = ws_open(port, r, NULL, protocol, &up);
  cJSON_Delete(up.json);
  up.json = NULL;
  if (!st) return false;
  *status = st;
  return st == 101 && strstr(up.head, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") &&
         strstr(up.head, "Sec-WebSocket-Protocol: tessera.v1");
}

/* Reads one frame from the server (unmasked, unfragmented). */
static bool ws_recv(reader *r, ws_msg *m) {
  return ws_recv_until(r, m, now_ms() + DEADLINE_MS);
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
  static ws_msg m;
  for (int i = 0; i < 16; i++) {
    if (!ws_recv(r, &m)) return 0;
    if (m.opcode == WS_OP_CLOSE) return m.close_code;
  }
  return 0;
}

static reader rd, rd2; /* big: keep off the stack */
static ws_msg msg;
/* ---- cases ---- */

static void test_health(void) {
  CHECK(http_once(main_srv.port, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"));
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
  while (!memmem(rd.buf, rd.len, "\r\n\r\n", 4) && reader_fill(&rd, dl)) {
  }
  char *e = memmem(rd.buf, rd.len, "\r\n\r\n", 4);
  CHECK(e != NULL);
  if (e) reader_consume(&rd, (size_t)(e - rd.buf) + 4);
  CHECK(read_response(&rd, &resp));
  CHECK_INT(resp.status, 200);
  close(fd);
}

static void test_metrics(void) {
  CHECK(http_once(main_srv.port, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"));
  CHECK(http_once(main_srv.port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"));
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
  CHECK(wait_closed(fd, DEADLINE_MS, NULL));
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
  CHECK(wait_closed(fd, DEADLINE_MS, NULL));
  close(fd);
  /* 413: Content-Length over max_body (64 KiB), refused before the body. */
  CHECK(http_once(
      main_srv.port,
      "POST /debug/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"));
  CHECK_INT(resp.status, 413);
  /* 400: malformed header line, and a missing Host. */
  CHECK(
      http_once(main_srv.port, "GET /health HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n"));
  CHECK_INT(resp.status, 400);
  CHECK(http_once(main_srv.port, "GET /health HTTP/1.1\r\n\r\n"));
  CHECK_INT(resp.status, 400);
  CHECK(strstr(resp.body, "\"code\":\"bad_request\"") != NULL);
  /* 501: an unknown transfer coding. */
  CHECK(http_once(
      main_srv.port,
      "POST /debug/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"));
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
  CHECK(server_start(&s, "srv", true, "2", extra));
  /* Idle keep-alive connection is closed after the idle timeout. */
  int fd = tcp_connect(s.port);
  rd.fd = fd;
  rd.len = 0;
  CHECK(send_str(fd, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"));
  CHECK(read_response(&rd, &resp));
  uint64_t t0 = now_ms();
  CHECK(wait_closed(fd, 3000, NULL));
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
  server_stop(&s, false);
}

static void test_ws_ops(void) {
  int st = 0;
  CHECK(ws_open_checked(main_srv.port, &rd, "chat, tessera.v1", &st));
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
  CHECK(wait_closed(rd.fd, DEADLINE_MS, NULL));
  close(rd.fd);
}

static void test_ws_handshake_refusals(void) {
  int st = 0;
  CHECK(!ws_open_checked(main_srv.port, &rd, "mqtt", &st));
  CHECK_INT(st, 400);
  close(rd.fd);
  CHECK(http_once(
      main_srv.port,
      "GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n"
      "Sec-WebSocket-Protocol: tessera.v1\r\n\r\n"));
  CHECK_INT(resp.status, 426);
  CHECK(strstr(resp.head, "Sec-WebSocket-Version: 13") != NULL);
  CHECK(http_once(main_srv.port, "GET /v1/ws HTTP/1.1\r\nHost: x\r\n\r\n"));
  CHECK_INT(resp.status, 426);
}

static void test_ws_protocol_errors(void) {
  int st = 0;
  /* Unmasked client frame: 1002. */
  CHECK(ws_open_checked(main_srv.port, &rd, "tessera.v1", &st));
  CHECK(ws_send(rd.fd, WS_OP_TEXT, true, "{}", 2, false));
  CHECK_INT(ws_expect_close(&rd), 1002);
  close(rd.fd);
  /* Invalid UTF-8 in a text message: 1007. */
  CHECK(ws_open_checked(main_srv.port, &rd, "tessera.v1", &st));
  CHECK(ws_send(rd.fd, WS_OP_TEXT, true, "{\"op\":\"\xc3\x28\"}", 10, true));
  CHECK_INT(ws_expect_close(&rd), 1007);
  close(rd.fd);
  /* Message over max_ws_message (16 KiB), in fragments: 1009. */
  CHECK(ws_open_checked(main_srv.port, &rd, "tessera.v1", &st));
  static char frag[10000];
  memset(frag, ' ', sizeof frag);
  CHECK(ws_send(rd.fd, WS_OP_TEXT, false, frag, sizeof frag, true));
  CHECK(ws_send(rd.fd, WS_OP_CONT, false, frag, sizeof frag, true));
  CHECK_INT(ws_expect_close(&rd), 1009);
  close(rd.fd);
  /* Binary message: 1003. */
  CHECK(ws_open_checked(main_srv.port, &rd, "tessera.v1", &st));
  CHECK(ws_send(rd.fd, WS_OP_BINARY, true, "\x01", 1, true));
  CHECK_INT(ws_expect_close(&rd), 1003);
  close(rd.fd);
  /* The server is fine afterwards. */
  CHECK(http_once(main_srv.port, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"));
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
  CHECK(http_once(main_srv.port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"));
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
  CHECK(server_start(&s, "srv", true, "2", extra));
  int st = 0;
  CHECK(ws_open_checked(s.port, &rd, "tessera.v1", &st));
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
  server_stop(&s, false);
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
  CHECK(server_start(&s, "srv", true, "2", extra));
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
  CHECK(wait_closed(fd, DEADLINE_MS, NULL));
  close(fd);
  SSL_CTX_free(ctx);
  server_stop(&s, false);
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
  if (!server_start(&main_srv, "srv", true, "2", extra)) {
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
  cJSON_Delete(resp.json);
  resp.json = NULL;
  /* Counts a failure unless the main server exits 0 on SIGTERM. */
  server_stop(&main_srv, true);
  return test_report("server_core");
}
