/* libtessera's connection: one HTTP/1.1 keep-alive connection, plain or
 * TLS, carrying one request at a time from a FIFO queue.
 *
 * States: IDLE (no socket) -> CONNECTING -> [TLS] -> OPEN; after a
 * transport failure WAIT until retry_at (exponential backoff with jitter),
 * then IDLE again. Nothing happens on submit: the next on_tick (which
 * next_timeout asks for at once) starts the work, so a callback that
 * queues a request never re-enters the state machine.
 *
 * Retries: a request whose connection fails is sent again (up to
 * max_attempts failures) when that cannot act twice on the server: it is
 * a GET or DELETE, or none of its bytes were written, or it went out on a
 * reused keep-alive connection that closed without a byte of answer (the
 * server dropped an idle connection as we wrote). Otherwise it completes
 * with "network" / "timeout", since the server may have acted on it. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "client/client.h"
#include "mls/crypto.h"
#include "proto/http_resp.h"
#include "proto/json.h"

enum { CS_IDLE, CS_WAIT, CS_CONNECTING, CS_TLS, CS_OPEN };

#define MAX_BODY (1024 * 1024)
#define MAX_HEAD 16384

/* Invariants: fd >= 0 iff conn is CONNECTING, TLS or OPEN; ssl != NULL
 * only with a socket and TLS on; in_flight implies head != NULL and that
 * out holds (or held) head's encoding; resp_head > 0 only while in_flight. */
struct tsr_client {
  char *host;
  uint16_t port;
  bool tls;
  SSL_CTX *ctx;
  uint32_t connect_timeout_ms, request_timeout_ms, max_attempts;
  uint64_t (*clock_ms)(void *);
  uint32_t (*random_u32)(void *);
  void *hook_arg;
  cstate *st;

  creq *head, *tail;
  size_t pending;

  int conn;
  int fd;
  struct addrinfo *ai, *ai_next; /* the host's addresses; the next to try */
  SSL *ssl;
  bool ssl_want_write;
  bool reused;    /* this connection already carried an answer */
  bool in_flight; /* head is being sent or answered */
  buf_t out;
  size_t out_off;
  uint64_t stream_off; /* bytes of head's streamed body put into out so far */
  buf_t in;
  uint64_t conn_deadline, req_deadline, retry_at;
  backoff bo;

  /* answer being read */
  size_t resp_head; /* head length once parsed, else 0 */
  http_response resp;
  int body_kind;
  http_chunked_decoder dec;
  size_t dec_used; /* bytes of in after the head fed to dec */
  buf_t body;
};

/* ---- backoff ------------------------------------------------------------ */

void backoff_init(backoff *b, uint32_t initial_ms, uint32_t max_ms) {
  b->initial_ms = initial_ms ? initial_ms : 1;
  b->max_ms = max_ms < b->initial_ms ? b->initial_ms : max_ms;
  b->attempt = 0;
}

uint32_t backoff_next(backoff *b, uint32_t rnd) {
  uint64_t d = b->initial_ms;
  for (uint32_t i = 0; i < b->attempt && d < b->max_ms; i++) d *= 2;
  if (d > b->max_ms) d = b->max_ms;
  if (b->attempt < UINT32_MAX) b->attempt++;
  uint64_t half = d / 2;
  return (uint32_t)(d - half + rnd % (half + 1));
}

void backoff_reset(backoff *b) { b->attempt = 0; }

/* ---- requests ------------------------------------------------------------ */

static bool field_ok(const char *s) {
  for (; *s; s++)
    if (*s == '\r' || *s == '\n') return false;
  return true;
}

int client_encode_request(buf_t *out, const char *method, const char *host, uint16_t port,
                          bool tls, const char *path, const char *token, bytes_t *body) {
  return client_encode_request_ex(out, method, host, port, tls, path, token, body, NULL,
                                  NULL);
}

int client_encode_request_ex(buf_t *out, const char *method, const char *host,
                             uint16_t port, bool tls, const char *path, const char *token,
                             bytes_t *body, const char *content_type, const char *extra) {
  if (!out || !method || !host || !path || path[0] != '/') return TSR_EINVAL;
  if (!field_ok(method) || !field_ok(host) || !field_ok(path) ||
      (token && !field_ok(token)) || strchr(path, ' ') || strchr(method, ' ') ||
      (content_type && !field_ok(content_type)) || (extra && !field_ok(extra)))
    return TSR_EINVAL;
  if (!content_type) content_type = "application/json";
  size_t mark = out->len;
  char line[512];
  bool v6 = strchr(host, ':') != NULL;
  bool default_port = port == (tls ? 443 : 80);
  char portbuf[8] = "";
  if (!default_port) snprintf(portbuf, sizeof portbuf, ":%u", (unsigned)port);
  buf_append(out, method, strlen(method));
  buf_append(out, " ", 1);
  buf_append(out, path, strlen(path));
  int n = snprintf(line, sizeof line, " HTTP/1.1\r\nHost: %s%s%s%s\r\n", v6 ? "[" : "",
                   host, v6 ? "]" : "", portbuf);
  if (n < 0 || (size_t)n >= sizeof line) {
    out->len = mark;
    return TSR_EINVAL;
  }
  buf_append(out, line, (size_t)n);
  if (token) {
    buf_append(out, "Authorization: Bearer ", 22);
    buf_append(out, token, strlen(token));
    buf_append(out, "\r\n", 2);
  }
  if (extra && extra[0]) {
    buf_append(out, extra, strlen(extra));
    buf_append(out, "\r\n", 2);
  }
  if (body) {
    n = snprintf(line, sizeof line, "Content-Type: %s\r\nContent-Length: %zu\r\n",
                 content_type, body->len);
    if (n < 0 || (size_t)n >= sizeof line) {
      out->len = mark;
      return TSR_EINVAL;
    }
    buf_append(out, line, (size_t)n);
  }
  buf_append(out, "\r\n", 2);
  if (body && body->len && body->ptr) buf_append(out, body->ptr, body->len);
  if (out->err) {
    out->len = mark;
    return TSR_ENOMEM;
  }
  return 0;
}

creq *client_req_new(const char *method, const char *path) {
  creq *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  snprintf(r->method, sizeof r->method, "%s", method);
  r->path = strdup(path);
  r->body_fd = -1;
  buf_init(&r->body);
  if (!r->path) {
    free(r);
    return NULL;
  }
  return r;
}

void client_req_free(creq *r) {
  if (!r) return;
  free(r->path);
  if (r->body_fd >= 0) close(r->body_fd);
  buf_free_secret(&r->body); /* may hold a password */
  sodium_memzero(r->aux2, sizeof r->aux2);
  free(r);
}

int client_submit(tsr_client *c, creq *r) {
  if (!c || !r) {
    client_req_free(r);
    return TSR_EINVAL;
  }
  r->next = NULL;
  if (c->tail)
    c->tail->next = r;
  else
    c->head = r;
  c->tail = r;
  c->pending++;
  return 0;
}

cstate *client_state(tsr_client *c) { return c->st; }

void client_net_settings_get(const tsr_client *c, client_net_settings *out) {
  *out = (client_net_settings){
      .host = c->host,
      .port = c->port,
      .tls = c->tls,
      .ctx = c->ctx,
      .connect_timeout_ms = c->connect_timeout_ms,
      .request_timeout_ms = c->request_timeout_ms,
      .max_attempts = c->max_attempts,
      .backoff_initial_ms = c->bo.initial_ms,
      .backoff_max_ms = c->bo.max_ms,
      .clock_ms = c->clock_ms,
      .random_u32 = c->random_u32,
      .hook_arg = c->hook_arg,
  };
}

/* ---- lifecycle ------------------------------------------------------------ */

int tsr_client_global_init(void) {
  if (sodium_init() < 0) return TSR_ECRYPTO;
  if (crypto_init() != 0) return TSR_ECRYPTO; /* MLS: KeyPackages (keys.c) */
  if (OPENSSL_init_ssl(0, NULL) != 1) return TSR_ECRYPTO;
  return 0;
}

static uint64_t mono_ms(void *arg) {
  (void)arg;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint32_t sodium_u32(void *arg) {
  (void)arg;
  return randombytes_random();
}

uint64_t tsr_client_now_ms(const tsr_client *c) { return c->clock_ms(c->hook_arg); }

int tsr_client_new(const tsr_client_config *cfg, tsr_client **out) {
  if (!cfg || !out || !cfg->state_path || !cfg->state_path[0]) return TSR_EINVAL;
  const char *host = cfg->host && cfg->host[0] ? cfg->host : "127.0.0.1";
  if (!field_ok(host) || strlen(host) > 253) return TSR_EINVAL;
  if (tsr_client_global_init()) return TSR_ECRYPTO;
  tsr_client *c = calloc(1, sizeof *c);
  if (!c) return TSR_ENOMEM;
  int rc = TSR_ENOMEM;
  c->fd = -1;
  c->host = strdup(host);
  if (!c->host) goto fail;
  c->port = cfg->port ? cfg->port : 8080;
  c->tls = cfg->use_tls != 0;
  c->connect_timeout_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms : 5000;
  c->request_timeout_ms = cfg->request_timeout_ms ? cfg->request_timeout_ms : 15000;
  c->max_attempts = cfg->max_attempts ? cfg->max_attempts : 4;
  backoff_init(&c->bo, cfg->backoff_initial_ms ? cfg->backoff_initial_ms : 250,
               cfg->backoff_max_ms ? cfg->backoff_max_ms : 30000);
  c->clock_ms = cfg->clock_ms ? cfg->clock_ms : mono_ms;
  c->random_u32 = cfg->random_u32 ? cfg->random_u32 : sodium_u32;
  c->hook_arg = cfg->hook_arg;
  buf_init(&c->out);
  buf_init(&c->in);
  buf_init(&c->body);
  if (c->tls) {
    rc = TSR_ECRYPTO;
    c->ctx = SSL_CTX_new(TLS_client_method());
    if (!c->ctx) goto fail;
    SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
    int ok = cfg->ca_file ? SSL_CTX_load_verify_locations(c->ctx, cfg->ca_file, NULL)
                          : SSL_CTX_set_default_verify_paths(c->ctx);
    if (ok != 1) goto fail;
  }
  if ((rc = cstate_open(cfg->state_path, &c->st))) goto fail;
  *out = c;
  return 0;
fail:
  SSL_CTX_free(c->ctx);
  free(c->host);
  free(c);
  return rc;
}

static void conn_close(tsr_client *c) {
  if (c->ai) freeaddrinfo(c->ai);
  c->ai = c->ai_next = NULL;
  if (c->ssl) SSL_free(c->ssl);
  c->ssl = NULL;
  if (c->fd >= 0) close(c->fd);
  c->fd = -1;
  c->conn = CS_IDLE;
  c->ssl_want_write = false;
  c->reused = false;
  c->in_flight = false;
  buf_free_secret(&c->out); /* may hold a password */
  c->out_off = 0;
  buf_reset(&c->in);
  buf_reset(&c->body);
  c->resp_head = 0;
}

/* Pops the head request and hands res to the account layer and the
 * caller's callback. */
static void complete_head(tsr_client *c, tsr_result *res) {
  creq *r = c->head;
  c->head = r->next;
  if (!c->head) c->tail = NULL;
  c->pending--;
  c->in_flight = false;
  account_complete(c, r, res);
  client_req_free(r);
}

static void complete_local(tsr_client *c, int err, const char *code, const char *msg) {
  tsr_result res = {err, 0, code, msg, "", 0};
  complete_head(c, &res);
}

void tsr_client_free(tsr_client *c) {
  if (!c) return;
  conn_close(c);
  while (c->head) complete_local(c, TSR_ESTATE, "cancelled", "client closed");
  buf_free(&c->in);
  buf_free(&c->body);
  cstate_close(c->st);
  SSL_CTX_free(c->ctx);
  free(c->host);
  free(c);
}

/* ---- transport failures ----------------------------------------------------- */

/* Closes the connection after a failure and decides the head's fate. */
static void conn_fail(tsr_client *c, uint64_t now, bool timeout) {
  bool was_in_flight = c->in_flight;
  bool stale = was_in_flight && c->reused && c->in.len == 0 && !timeout;
  bool wrote = was_in_flight && c->out_off > 0;
  conn_close(c);
  creq *r = c->head;
  if (r) {
    r->attempts++;
    bool idempotent = !strcmp(r->method, "GET") || !strcmp(r->method, "DELETE");
    bool safe = idempotent || !wrote || stale;
    if (!safe || r->attempts >= c->max_attempts)
      complete_local(c, TSR_EIO, timeout ? "timeout" : "network",
                     timeout ? "the server did not answer in time"
                             : "cannot reach the server");
  }
  if (stale) {
    c->retry_at = now; /* an idle-closed connection is no server trouble */
  } else {
    c->retry_at = now + backoff_next(&c->bo, c->random_u32(c->hook_arg));
  }
  c->conn = CS_WAIT;
}

/* ---- connecting ---------------------------------------------------------------- */

static void send_next(tsr_client *c, uint64_t now);

static void tls_step(tsr_client *c, uint64_t now) {
  ERR_clear_error();
  int r = SSL_connect(c->ssl);
  if (r == 1) {
    c->conn = CS_OPEN;
    c->ssl_want_write = false;
    send_next(c, now);
    return;
  }
  int e = SSL_get_error(c->ssl, r);
  if (e == SSL_ERROR_WANT_READ) {
    c->ssl_want_write = false;
  } else if (e == SSL_ERROR_WANT_WRITE) {
    c->ssl_want_write = true;
  } else {
    long v = SSL_get_verify_result(c->ssl);
    if (v != X509_V_OK) {
      /* Not a transport failure: trying again cannot help. */
      char msg[160];
      snprintf(msg, sizeof msg, "server certificate not accepted: %s",
               X509_verify_cert_error_string(v));
      conn_close(c);
      complete_local(c, TSR_EVERIFY, "tls", msg);
      c->retry_at = now + backoff_next(&c->bo, c->random_u32(c->hook_arg));
      c->conn = CS_WAIT;
      return;
    }
    conn_fail(c, now, false);
  }
}

SSL *client_tls_new(SSL_CTX *ctx, int fd, const char *host) {
  SSL *ssl = SSL_new(ctx);
  /* The certificate must name host (a DNS name, or an IP address for a
   * numeric host); SNI carries names only (RFC 6066). */
  struct in6_addr ip;
  bool numeric =
      inet_pton(AF_INET, host, &ip) == 1 || inet_pton(AF_INET6, host, &ip) == 1;
  if (!ssl || SSL_set_fd(ssl, fd) != 1 || SSL_set1_host(ssl, host) != 1 ||
      (!numeric && SSL_set_tlsext_host_name(ssl, host) != 1)) {
    SSL_free(ssl);
    return NULL;
  }
  return ssl;
}

int client_connect_next(struct addrinfo **next, bool *done) {
  while (*next) {
    struct addrinfo *a = *next;
    *next = a->ai_next;
    int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    a->ai_protocol);
    if (fd < 0) continue;
    int rc = connect(fd, a->ai_addr, a->ai_addrlen);
    if (rc != 0 && errno != EINPROGRESS) {
      close(fd);
      continue;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    *done = rc == 0;
    return fd;
  }
  return -1;
}

static void connected(tsr_client *c, uint64_t now) {
  if (!c->tls) {
    c->conn = CS_OPEN;
    send_next(c, now);
    return;
  }
  c->ssl = client_tls_new(c->ctx, c->fd, c->host);
  if (!c->ssl) {
    conn_fail(c, now, false);
    return;
  }
  c->conn = CS_TLS;
  tls_step(c, now);
}

/* Starts a connection to the next untried address of the host; false when
 * none is left. */
static bool try_next_address(tsr_client *c, uint64_t now) {
  bool done = false;
  int fd = client_connect_next(&c->ai_next, &done);
  if (fd < 0) return false;
  c->fd = fd;
  c->conn = CS_CONNECTING;
  c->conn_deadline = now + c->connect_timeout_ms;
  if (done) connected(c, now);
  return true;
}

/* Resolves the host and connects to its addresses in getaddrinfo's order,
 * moving to the next when one refuses (e.g. "localhost" as ::1 first with
 * the server on 127.0.0.1 only). */
static void start_connect(tsr_client *c, uint64_t now) {
  char port[8];
  snprintf(port, sizeof port, "%u", (unsigned)c->port);
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  if (getaddrinfo(c->host, port, &hints, &c->ai) != 0) {
    c->ai = NULL;
    conn_fail(c, now, false);
    return;
  }
  c->ai_next = c->ai;
  if (!try_next_address(c, now)) conn_fail(c, now, false);
}

static void check_connect(tsr_client *c, uint64_t now) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err == EINPROGRESS || err == EALREADY) return;
  if (err) {
    close(c->fd);
    c->fd = -1;
    if (!try_next_address(c, now)) conn_fail(c, now, false);
    return;
  }
  connected(c, now);
}

/* ---- writing ------------------------------------------------------------------ */

#define STREAM_PIECE (64 * 1024) /* bytes of a streamed body read at a time */

/* Refills the drained out with the next piece of head's streamed body.
 * True when there is more to send; false when the body is all out (or
 * the request failed locally: the file changed). */
static bool refill(tsr_client *c, uint64_t now) {
  creq *r = c->head;
  if (!c->in_flight || !r || r->body_fd < 0 || c->stream_off >= r->body_len) return false;
  size_t want = r->body_len - c->stream_off > STREAM_PIECE
                    ? STREAM_PIECE
                    : (size_t)(r->body_len - c->stream_off);
  buf_reset(&c->out);
  c->out_off = 0;
  ssize_t k = buf_reserve(&c->out, want) == 0
                  ? pread(r->body_fd, c->out.ptr, want, (off_t)c->stream_off)
                  : -1;
  if (k <= 0) { /* shorter than it was: nothing sensible can follow */
    conn_fail(c, now, false);
    return false;
  }
  c->out.len = (size_t)k;
  c->stream_off += (uint64_t)k;
  return true;
}

/* Writes what is pending; false after a failure (connection closed). */
static bool flush(tsr_client *c, uint64_t now) {
  while (c->out_off < c->out.len || (c->fd >= 0 && refill(c, now))) {
    size_t n = c->out.len - c->out_off;
    const uint8_t *p = c->out.ptr + c->out_off;
    if (c->ssl) {
      ERR_clear_error();
      int k = SSL_write(c->ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
      if (k <= 0) {
        int e = SSL_get_error(c->ssl, k);
        if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
          c->ssl_want_write = e == SSL_ERROR_WANT_WRITE;
          return true;
        }
        conn_fail(c, now, false);
        return false;
      }
      c->out_off += (size_t)k;
    } else {
      ssize_t k = send(c->fd, p, n, MSG_NOSIGNAL);
      if (k < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
        if (errno == EINTR) continue;
        conn_fail(c, now, false);
        return false;
      }
      c->out_off += (size_t)k;
    }
  }
  c->ssl_want_write = false;
  return true;
}

static void send_next(tsr_client *c, uint64_t now) {
  if (c->conn != CS_OPEN || c->in_flight || !c->head) return;
  creq *r = c->head;
  buf_t token;
  buf_init(&token);
  char *tok = NULL;
  if (r->auth && cstate_get(c->st, K_TOKEN, &token) == 0 &&
      buf_append(&token, "", 1) == 0)
    tok = (char *)token.ptr;
  buf_free_secret(&c->out);
  c->out_off = 0;
  bytes_t body = buf_view(&r->body);
  if (r->body_fd >= 0) body = (bytes_t){NULL, (size_t)r->body_len}; /* bytes follow */
  c->stream_off = 0;
  int rc = client_encode_request_ex(&c->out, r->method, c->host, c->port, c->tls, r->path,
                                    tok, r->has_body ? &body : NULL, r->content_type,
                                    r->extra_header);
  buf_free_secret(&token);
  if (rc) {
    complete_local(c, rc, "bad_request", "request could not be encoded");
    send_next(c, now);
    return;
  }
  c->in_flight = true;
  c->req_deadline = now + c->request_timeout_ms;
  buf_reset(&c->in);
  buf_reset(&c->body);
  c->resp_head = 0;
  flush(c, now);
}

/* ---- reading ------------------------------------------------------------------ */

int client_error_code(const char *code) {
  static const struct {
    const char *code;
    int err;
  } map[] = {
      {"bad_request", TSR_EINVAL},  {"unauthorized", TSR_EVERIFY},
      {"forbidden", TSR_ESENDER},   {"not_found", TSR_ENOTFOUND},
      {"conflict", TSR_ECONFLICT},  {"too_large", TSR_ELIMIT},
      {"rate_limited", TSR_ELIMIT}, {"busy", TSR_ELIMIT},
  };
  for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
    if (!strcmp(map[i].code, code)) return map[i].err;
  return TSR_EPROTOCOL;
}

/* The answer is complete: body[0..len). Builds the result and completes the
 * head request. */
static void finish_answer(tsr_client *c, const char *body, size_t len, uint64_t now) {
  int status = c->resp.status;
  bool keep = c->resp.keep_alive && c->body_kind != HTTP_BODY_UNTIL_CLOSE;
  char code[64] = "", message[512] = "";
  tsr_result res = {0, status, code, message, body, len};
  /* A raw answer's 2xx body is bytes, not JSON: not parsed at all. */
  bool raw = c->head && c->head->raw_answer && status >= 200 && status < 300;
  size_t cap = raw ? 1 : len / 2 + 4;
  json_token *toks = malloc(cap * sizeof *toks);
  int nt = toks && !raw ? json_parse(body, len, toks, cap, NULL) : JSON_E_NOMEM;
  bool object = nt > 0 && toks[0].type == JSON_OBJECT;
  if (status >= 200 && status < 300) {
    if (!object && !raw) {
      res.err = TSR_EDECODE;
      snprintf(code, sizeof code, "bad_response");
      snprintf(message, sizeof message, "the answer is not a JSON object");
    }
  } else {
    int e = object ? json_object_get(body, toks, 0, "error") : -1;
    int ic = e >= 0 ? json_object_get(body, toks, e, "code") : -1;
    int im = e >= 0 ? json_object_get(body, toks, e, "message") : -1;
    if (ic < 0 || json_get_string(body, toks, ic, code, sizeof code, NULL, 0) != 0)
      snprintf(code, sizeof code, "http_%d", status);
    if (im < 0 || json_get_string(body, toks, im, message, sizeof message, NULL, 0) != 0)
      snprintf(message, sizeof message, "HTTP %d %.*s", status, (int)c->resp.reason.len,
               c->resp.reason.ptr ? c->resp.reason.ptr : "");
    res.err = client_error_code(code);
  }
  free(toks);
  backoff_reset(&c->bo);
  c->reused = true;
  /* The callback may queue requests but never touches the connection. */
  complete_head(c, &res);
  buf_reset(&c->in);
  buf_reset(&c->body);
  c->resp_head = 0;
  if (!keep) {
    conn_close(c);
  } else {
    send_next(c, now);
  }
}

static void bad_answer(tsr_client *c, const char *why) {
  conn_close(c);
  if (c->head) complete_local(c, TSR_EDECODE, "bad_response", why);
}

/* Consumes buffered input; eof when the peer closed. */
static void process_input(tsr_client *c, bool eof, uint64_t now) {
  if (!c->in_flight) { /* nothing asked: an idle close, or junk */
    conn_close(c);
    return;
  }
  while (c->resp_head == 0) {
    http_limits lim = {MAX_HEAD, 64, 0, MAX_BODY};
    int n = http_parse_response((const char *)c->in.ptr, c->in.len, &c->resp, &lim);
    if (n == HTTP_INCOMPLETE) {
      if (eof) conn_fail(c, now, false);
      return;
    }
    if (n < 0) {
      bad_answer(c, http_error_name(n));
      return;
    }
    if (c->resp.status < 200) { /* interim (100 Continue): drop it */
      memmove(c->in.ptr, c->in.ptr + n, c->in.len - (size_t)n);
      c->in.len -= (size_t)n;
      continue;
    }
    c->resp_head = (size_t)n;
    c->body_kind = http_response_body_kind(&c->resp, false);
    if (c->body_kind == HTTP_BODY_LENGTH && c->resp.content_length > MAX_BODY) {
      bad_answer(c, "answer body too large");
      return;
    }
    if (c->body_kind == HTTP_BODY_CHUNKED) http_chunked_init(&c->dec, &lim);
    c->dec_used = 0;
  }
  const char *b = (const char *)c->in.ptr + c->resp_head;
  size_t avail = c->in.len - c->resp_head;
  switch (c->body_kind) {
  case HTTP_BODY_NONE: finish_answer(c, "", 0, now); return;
  case HTTP_BODY_LENGTH:
    if (avail >= (size_t)c->resp.content_length) {
      finish_answer(c, b, (size_t)c->resp.content_length, now);
    } else if (eof) {
      conn_fail(c, now, false);
    }
    return;
  case HTTP_BODY_CHUNKED: {
    size_t in_len = avail - c->dec_used, used = 0, got = 0;
    uint8_t *dst = buf_extend(&c->body, in_len + 1);
    if (!dst) {
      bad_answer(c, "out of memory");
      return;
    }
    int r = http_chunked_decode(&c->dec, b + c->dec_used, in_len, (char *)dst, in_len + 1,
                                &used, &got);
    c->body.len -= in_len + 1 - got;
    c->dec_used += used;
    if (r == HTTP_CHUNKED_DONE) {
      finish_answer(c, c->body.len ? (const char *)c->body.ptr : "", c->body.len, now);
    } else if (r < 0) {
      bad_answer(c, http_error_name(r));
    } else if (eof) {
      conn_fail(c, now, false);
    }
    return;
  }
  default: /* until close */
    if (avail > MAX_BODY) {
      bad_answer(c, "answer body too large");
    } else if (eof) {
      finish_answer(c, avail ? b : "", avail, now);
    }
    return;
  }
}

static void read_some(tsr_client *c, uint64_t now) {
  for (;;) {
    if (c->in.len > MAX_HEAD + MAX_BODY + 4096) {
      bad_answer(c, "answer too large");
      return;
    }
    uint8_t *dst = buf_extend(&c->in, 16384);
    if (!dst) {
      bad_answer(c, "out of memory");
      return;
    }
    c->in.len -= 16384;
    ssize_t k;
    if (c->ssl) {
      ERR_clear_error();
      int r = SSL_read(c->ssl, dst, 16384);
      if (r > 0) {
        k = r;
      } else {
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
          c->ssl_want_write = e == SSL_ERROR_WANT_WRITE;
          if (c->in_flight) process_input(c, false, now);
          return;
        }
        k = e == SSL_ERROR_ZERO_RETURN ? 0 : -1;
      }
    } else {
      k = recv(c->fd, dst, 16384, 0);
      if (k < 0 && errno == EINTR) continue;
      if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (c->in_flight) process_input(c, false, now);
        return;
      }
    }
    if (k < 0) {
      if (c->in_flight)
        conn_fail(c, now, false);
      else
        conn_close(c);
      return;
    }
    if (k == 0) {
      process_input(c, true, now);
      if (c->fd >= 0 && !c->in_flight) conn_close(c);
      return;
    }
    c->in.len += (size_t)k;
  }
}

/* ---- driving ------------------------------------------------------------------ */

int tsr_client_fd(const tsr_client *c) { return c ? c->fd : -1; }

int tsr_client_want_write(const tsr_client *c) {
  if (!c || c->fd < 0) return 0;
  if (c->conn == CS_CONNECTING) return 1;
  if (c->ssl_want_write) return 1;
  return c->conn == CS_OPEN && c->in_flight && c->out_off < c->out.len;
}

int tsr_client_on_writable(tsr_client *c) {
  if (!c) return TSR_EINVAL;
  uint64_t now = tsr_client_now_ms(c);
  switch (c->conn) {
  case CS_CONNECTING: check_connect(c, now); break;
  case CS_TLS: tls_step(c, now); break;
  case CS_OPEN:
    if (c->ssl_want_write && c->out_off >= c->out.len)
      read_some(c, now); /* SSL_read wanted to write */
    else
      flush(c, now);
    break;
  default: break;
  }
  return 0;
}

int tsr_client_on_readable(tsr_client *c) {
  if (!c) return TSR_EINVAL;
  uint64_t now = tsr_client_now_ms(c);
  switch (c->conn) {
  case CS_CONNECTING: check_connect(c, now); break;
  case CS_TLS: tls_step(c, now); break;
  case CS_OPEN:
    if (c->ssl && c->ssl_want_write && c->out_off < c->out.len)
      flush(c, now); /* SSL_write wanted to read */
    else
      read_some(c, now);
    break;
  default: break;
  }
  return 0;
}

int tsr_client_on_tick(tsr_client *c, uint64_t now) {
  if (!c) return TSR_EINVAL;
  if (c->conn == CS_WAIT && now >= c->retry_at) c->conn = CS_IDLE;
  if (c->conn == CS_CONNECTING && now >= c->conn_deadline) {
    close(c->fd); /* a silent address: the next one, if any */
    c->fd = -1;
    if (!try_next_address(c, now)) conn_fail(c, now, true);
  }
  if (c->conn == CS_TLS && now >= c->conn_deadline) conn_fail(c, now, true);
  if (c->conn == CS_OPEN && c->in_flight && now >= c->req_deadline)
    conn_fail(c, now, true);
  if (c->conn == CS_WAIT && now >= c->retry_at) c->conn = CS_IDLE;
  if (c->conn == CS_IDLE && c->head) start_connect(c, now);
  if (c->conn == CS_OPEN) send_next(c, now);
  return 0;
}

int64_t tsr_client_next_timeout(const tsr_client *c, uint64_t now) {
  if (!c) return -1;
  uint64_t at;
  switch (c->conn) {
  case CS_IDLE: return c->head ? 0 : -1;
  case CS_WAIT:
    if (!c->head) return -1;
    at = c->retry_at;
    break;
  case CS_CONNECTING:
  case CS_TLS: at = c->conn_deadline; break;
  default:
    if (c->in_flight) {
      at = c->req_deadline;
    } else {
      return c->head ? 0 : -1;
    }
  }
  return at > now ? (int64_t)(at - now) : 0;
}

size_t tsr_client_pending(const tsr_client *c) { return c ? c->pending : 0; }

/* The poll loop behind run_until_idle and the _sync calls. */
static int run(tsr_client *c, const int *done, int timeout_ms) {
  uint64_t start = tsr_client_now_ms(c);
  for (;;) {
    if (done ? *done : c->pending == 0) return 0;
    if (done && c->pending == 0) return TSR_ESTATE; /* cannot happen */
    uint64_t now = tsr_client_now_ms(c);
    if (timeout_ms >= 0 && now - start >= (uint64_t)timeout_ms) return 1;
    tsr_client_on_tick(c, now);
    if (done ? *done : c->pending == 0) return 0;
    now = tsr_client_now_ms(c);
    int64_t wait = tsr_client_next_timeout(c, now);
    if (timeout_ms >= 0) {
      int64_t left = (int64_t)(start + (uint64_t)timeout_ms) - (int64_t)now;
      if (left < 0) left = 0;
      if (wait < 0 || wait > left) wait = left;
    }
    if (wait > 60000 || wait < 0) wait = 60000;
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    if (tsr_client_want_write(c)) p.events |= POLLOUT;
    int n = poll(c->fd >= 0 ? &p : NULL, c->fd >= 0 ? 1 : 0, (int)wait);
    if (n < 0 && errno != EINTR) return TSR_EIO;
    if (n > 0) {
      if (p.revents & (POLLIN | POLLHUP | POLLERR)) tsr_client_on_readable(c);
      if ((p.revents & POLLOUT) && c->fd == p.fd) tsr_client_on_writable(c);
    }
  }
}

int tsr_client_run_until_idle(tsr_client *c, int timeout_ms) {
  if (!c) return TSR_EINVAL;
  return run(c, NULL, timeout_ms);
}

int client_wait(tsr_client *c, const int *done) { return run(c, done, -1); }
