/* libtessera's realtime session: one WebSocket connection (GET /v1/ws,
 * subprotocol tessera.v1), plain or TLS, carrying ops matched by id and
 * the server's pushes (tessera/tessera.h, "Realtime session").
 *
 * States: IDLE (no socket, connect at the next tick) -> CONNECTING ->
 * [TLS] -> UPGRADE (request written, waiting for the 101) -> OPEN; after
 * a failure or a close WAIT until retry_at (exponential backoff with
 * jitter, net.c's helpers), then IDLE again. Unlike the HTTP connection
 * the session reconnects whether or not calls are queued: it is there to
 * receive pushes. As in net.c nothing happens on submit: calls are
 * written by the next on_tick (next_timeout asks for it at once while
 * calls are queued and the session is open), so a callback that makes a
 * call never re-enters the state machine.
 *
 * Calls live in two FIFO lists: queued (not written yet) and in flight
 * (written, waiting for the answer with the same id). Ids count up from 1
 * for the session's whole life, so an answer that comes after its call
 * timed out matches nothing and is dropped. In-flight calls all have the
 * same timeout and are written in list order, so the head of the list
 * has the earliest deadline. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client/client.h"
#include "proto/base64.h"
#include "proto/http_resp.h"
#include "proto/json.h"
#include "proto/ws.h"

enum { WS_IDLE, WS_WAIT, WS_CONNECTING, WS_TLS, WS_UPGRADE, WS_OPEN };

#define MAX_HEAD 16384
#define READ_CHUNK 16384

typedef struct wcall {
  struct wcall *next;
  uint64_t id;
  buf_t text; /* the whole JSON message */
  tsr_result_cb cb;
  void *arg;
  uint32_t attempts; /* connection attempts that failed while it was queued */
  uint64_t deadline; /* in flight: when it times out */
} wcall;

typedef struct {
  wcall *head, *tail;
} wlist;

/* Invariants: fd >= 0 iff conn is CONNECTING, TLS, UPGRADE or OPEN; ssl
 * only with a socket and TLS on; fly is empty unless conn is OPEN;
 * ping_out only while OPEN; out[out_off..) is what remains to write. */
struct tsr_ws {
  tsr_client *client;
  client_net_settings net;
  void (*on_push)(void *, const char *, size_t);
  void (*on_state)(void *, int);
  void *arg;
  uint32_t ping_interval_ms, pong_timeout_ms, max_message;

  uint64_t next_id;
  wlist queue, fly;
  size_t pending;

  int conn;
  int fd;
  struct addrinfo *ai, *ai_next;
  SSL *ssl;
  bool ssl_want_write;
  buf_t out;
  size_t out_off;
  buf_t in;
  buf_t msg; /* the data message being reassembled */
  ws_assembler wsa;
  char accept[WS_ACCEPT_LEN + 1]; /* the Sec-WebSocket-Accept we expect */
  uint64_t conn_deadline, retry_at, last_rx, ping_sent_at;
  bool ping_out; /* a ping of ours waits for any frame */
  backoff bo;
};

/* ---- call lists ------------------------------------------------------- */

static void list_push(wlist *l, wcall *w) {
  w->next = NULL;
  if (l->tail)
    l->tail->next = w;
  else
    l->head = w;
  l->tail = w;
}

static wcall *list_pop(wlist *l) {
  wcall *w = l->head;
  if (w) {
    l->head = w->next;
    if (!l->head) l->tail = NULL;
    w->next = NULL;
  }
  return w;
}

/* Removes and returns the call with this id, or NULL. */
static wcall *list_take(wlist *l, uint64_t id) {
  wcall *prev = NULL;
  for (wcall *w = l->head; w; prev = w, w = w->next) {
    if (w->id != id) continue;
    if (prev)
      prev->next = w->next;
    else
      l->head = w->next;
    if (l->tail == w) l->tail = prev;
    w->next = NULL;
    return w;
  }
  return NULL;
}

static void call_free(wcall *w) {
  buf_free(&w->text);
  free(w);
}

/* Hands res to the call's callback and frees the call (already unlinked). */
static void call_done(tsr_ws *s, wcall *w, const tsr_result *res) {
  s->pending--;
  if (w->cb) w->cb(w->arg, res);
  call_free(w);
}

static void call_local(tsr_ws *s, wcall *w, int err, const char *code, const char *msg) {
  tsr_result res = {err, 0, code, msg, "", 0};
  call_done(s, w, &res);
}

/* Completes every call of list l with the same local result. Callbacks
 * may queue new calls (onto s->queue): when l is the queue, those stay. */
static void list_fail(tsr_ws *s, wlist *l, int err, const char *code, const char *msg) {
  wlist all = *l;
  l->head = l->tail = NULL;
  wcall *w;
  while ((w = list_pop(&all))) call_local(s, w, err, code, msg);
}

/* ---- lifecycle ---------------------------------------------------------- */

int tsr_ws_new(tsr_client *c, const tsr_ws_config *cfg, tsr_ws **out) {
  if (!c || !out) return TSR_EINVAL;
  tsr_session_info info;
  int rc = tsr_client_session(c, &info);
  if (rc) return rc;
  if (!info.logged_in) return TSR_ESTATE;
  tsr_ws_config d = {0};
  if (!cfg) cfg = &d;
  tsr_ws *s = calloc(1, sizeof *s);
  if (!s) return TSR_ENOMEM;
  s->client = c;
  client_net_settings_get(c, &s->net);
  if (cfg->connect_timeout_ms) s->net.connect_timeout_ms = cfg->connect_timeout_ms;
  if (cfg->request_timeout_ms) s->net.request_timeout_ms = cfg->request_timeout_ms;
  if (cfg->max_attempts) s->net.max_attempts = cfg->max_attempts;
  backoff_init(&s->bo,
               cfg->backoff_initial_ms ? cfg->backoff_initial_ms
                                       : s->net.backoff_initial_ms,
               cfg->backoff_max_ms ? cfg->backoff_max_ms : s->net.backoff_max_ms);
  s->on_push = cfg->on_push;
  s->on_state = cfg->on_state;
  s->arg = cfg->arg;
  s->ping_interval_ms = cfg->ping_interval_ms ? cfg->ping_interval_ms : 30000;
  s->pong_timeout_ms = cfg->pong_timeout_ms ? cfg->pong_timeout_ms : 15000;
  s->max_message = cfg->max_message ? cfg->max_message : 1024 * 1024;
  s->next_id = 1;
  s->conn = WS_IDLE;
  s->fd = -1;
  buf_init(&s->out);
  buf_init(&s->in);
  buf_init(&s->msg);
  *out = s;
  return 0;
}

static uint64_t now_of(const tsr_ws *s) { return s->net.clock_ms(s->net.hook_arg); }

/* Drops the socket and every per-connection buffer; calls stay where they
 * are. */
static void conn_close(tsr_ws *s) {
  if (s->ai) freeaddrinfo(s->ai);
  s->ai = s->ai_next = NULL;
  if (s->ssl) SSL_free(s->ssl);
  s->ssl = NULL;
  if (s->fd >= 0) close(s->fd);
  s->fd = -1;
  s->conn = WS_IDLE;
  s->ssl_want_write = false;
  s->ping_out = false;
  buf_free_secret(&s->out); /* the upgrade request holds the token */
  s->out_off = 0;
  buf_reset(&s->in);
  buf_reset(&s->msg);
}

/* ---- writing ------------------------------------------------------------ */

/* Writes what is pending; false after a failure (the caller drops the
 * connection). */
static bool flush_out(tsr_ws *s) {
  while (s->out_off < s->out.len) {
    size_t n = s->out.len - s->out_off;
    const uint8_t *p = s->out.ptr + s->out_off;
    if (s->ssl) {
      ERR_clear_error();
      int k = SSL_write(s->ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
      if (k <= 0) {
        int e = SSL_get_error(s->ssl, k);
        if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
          s->ssl_want_write = e == SSL_ERROR_WANT_WRITE;
          return true;
        }
        return false;
      }
      s->out_off += (size_t)k;
    } else {
      ssize_t k = send(s->fd, p, n, MSG_NOSIGNAL);
      if (k < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
        if (errno == EINTR) continue;
        return false;
      }
      s->out_off += (size_t)k;
    }
  }
  s->ssl_want_write = false;
  if (s->out_off && s->out_off == s->out.len) { /* all written: reuse the space */
    buf_reset(&s->out);
    s->out_off = 0;
  }
  return true;
}

/* Appends one masked frame (a fresh random masking key, RFC 6455 §5.3). */
static int append_frame(tsr_ws *s, uint8_t opcode, const uint8_t *p, size_t n) {
  uint8_t mask[4], hdr[WS_MAX_HEADER];
  randombytes_buf(mask, sizeof mask);
  size_t hl = ws_write_frame_header(hdr, opcode, true, n, mask);
  if (!hl) return TSR_EINVAL;
  if (buf_append(&s->out, hdr, hl)) return TSR_ENOMEM;
  uint8_t *dst = buf_extend(&s->out, n);
  if (!dst && n) {
    s->out.len -= hl;
    return TSR_ENOMEM;
  }
  if (n) {
    memcpy(dst, p, n);
    ws_unmask(dst, n, mask, 0);
  }
  return 0;
}

/* ---- failures and reconnects ----------------------------------------------- */

/* The connection is gone (or never came up): in-flight calls complete
 * with "network" (or "timeout"), a session that was up reports
 * disconnected, and the next attempt waits for the backoff. A failed
 * attempt (not up yet) counts against every queued call. */
static void conn_fail(tsr_ws *s, uint64_t now, bool timeout) {
  bool was_open = s->conn == WS_OPEN;
  conn_close(s);
  s->conn = WS_WAIT;
  s->retry_at = now + backoff_next(&s->bo, s->net.random_u32(s->net.hook_arg));
  if (was_open) {
    list_fail(s, &s->fly, TSR_EIO, "network",
              "the connection was lost before the answer came");
    if (s->on_state) s->on_state(s->arg, TSR_WS_DISCONNECTED);
    return;
  }
  /* Count the failed attempt; calls that reached max_attempts complete. */
  wlist keep = {0}, all = s->queue;
  s->queue.head = s->queue.tail = NULL;
  wcall *w;
  while ((w = list_pop(&all))) {
    if (++w->attempts >= s->net.max_attempts) {
      call_local(s, w, TSR_EIO, timeout ? "timeout" : "network",
                 timeout ? "the server did not answer in time"
                         : "cannot reach the server");
    } else {
      list_push(&keep, w);
    }
  }
  /* Calls queued by those callbacks go after the ones kept. */
  all = s->queue;
  s->queue = keep;
  while ((w = list_pop(&all))) list_push(&s->queue, w);
}

/* The server refused the session (or the upgrade answer was wrong):
 * trying again soon cannot help, so every queued call completes with res;
 * the session still reconnects after the backoff. */
static void conn_refused(tsr_ws *s, uint64_t now, const tsr_result *res) {
  conn_close(s);
  s->conn = WS_WAIT;
  s->retry_at = now + backoff_next(&s->bo, s->net.random_u32(s->net.hook_arg));
  wlist all = s->queue;
  s->queue.head = s->queue.tail = NULL;
  wcall *w;
  while ((w = list_pop(&all))) call_done(s, w, res);
}

static void refuse_local(tsr_ws *s, uint64_t now, int err, const char *code,
                         const char *msg) {
  tsr_result res = {err, 0, code, msg, "", 0};
  conn_refused(s, now, &res);
}

/* Sends a Close with code (best effort) and drops the connection. */
static void close_with(tsr_ws *s, uint64_t now, uint16_t code, const char *why) {
  uint8_t fr[WS_MAX_CONTROL_FRAME], mask[4];
  randombytes_buf(mask, sizeof mask);
  size_t n = ws_write_close(fr, code, why, why ? strlen(why) : 0, mask);
  if (n && buf_append(&s->out, fr, n) == 0) flush_out(s);
  conn_fail(s, now, false);
}

/* ---- connecting ---------------------------------------------------------------- */

/* The upgrade request with a fresh key; remembers the Accept we expect. */
static int write_upgrade(tsr_ws *s) {
  uint8_t raw[16];
  char key[WS_KEY_LEN + 1];
  size_t klen = 0;
  randombytes_buf(raw, sizeof raw);
  if (b64_encode(key, sizeof key, raw, sizeof raw, B64_MODE_STD, &klen) != 0)
    return TSR_EINVAL;
  key[klen] = '\0';
  int rc = ws_accept_key(key, klen, s->accept);
  if (rc) return rc;
  buf_t tok;
  buf_init(&tok);
  rc = cstate_get(client_state(s->client), K_TOKEN, &tok);
  if (rc == 0 && (tok.len == 0 || memchr(tok.ptr, '\r', tok.len) ||
                  memchr(tok.ptr, '\n', tok.len) || memchr(tok.ptr, 0, tok.len)))
    rc = TSR_EDECODE;
  if (rc) {
    buf_free_secret(&tok);
    return rc == TSR_ENOTFOUND ? TSR_ESTATE : rc;
  }
  bool v6 = strchr(s->net.host, ':') != NULL;
  char portbuf[8] = "";
  if (s->net.port != (s->net.tls ? 443 : 80))
    snprintf(portbuf, sizeof portbuf, ":%u", (unsigned)s->net.port);
  char head[512];
  int n = snprintf(head, sizeof head,
                   "GET /v1/ws HTTP/1.1\r\nHost: %s%s%s%s\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                   "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: " WS_SUBPROTOCOL
                   "\r\nAuthorization: Bearer ",
                   v6 ? "[" : "", s->net.host, v6 ? "]" : "", portbuf, key);
  if (n < 0 || (size_t)n >= sizeof head) {
    buf_free_secret(&tok);
    return TSR_EINVAL;
  }
  buf_free_secret(&s->out);
  s->out_off = 0;
  buf_append(&s->out, head, (size_t)n);
  buf_append(&s->out, tok.ptr, tok.len);
  buf_append(&s->out, "\r\n\r\n", 4);
  buf_free_secret(&tok);
  return s->out.err ? TSR_ENOMEM : 0;
}

static void upgrade_start(tsr_ws *s, uint64_t now) {
  int rc = write_upgrade(s);
  if (rc == TSR_ESTATE) {
    refuse_local(s, now, TSR_ESTATE, "state", "not logged in");
    return;
  }
  if (rc) {
    refuse_local(s, now, rc, "state", "the session token cannot be read");
    return;
  }
  s->conn = WS_UPGRADE;
  buf_reset(&s->in);
  if (!flush_out(s)) conn_fail(s, now, false);
}

static void tls_step(tsr_ws *s, uint64_t now) {
  ERR_clear_error();
  int r = SSL_connect(s->ssl);
  if (r == 1) {
    s->ssl_want_write = false;
    upgrade_start(s, now);
    return;
  }
  int e = SSL_get_error(s->ssl, r);
  if (e == SSL_ERROR_WANT_READ) {
    s->ssl_want_write = false;
  } else if (e == SSL_ERROR_WANT_WRITE) {
    s->ssl_want_write = true;
  } else {
    long v = SSL_get_verify_result(s->ssl);
    if (v != X509_V_OK) {
      char msg[160];
      snprintf(msg, sizeof msg, "server certificate not accepted: %s",
               X509_verify_cert_error_string(v));
      refuse_local(s, now, TSR_EVERIFY, "tls", msg);
      return;
    }
    conn_fail(s, now, false);
  }
}

static void connected(tsr_ws *s, uint64_t now) {
  if (!s->net.tls) {
    upgrade_start(s, now);
    return;
  }
  s->ssl = client_tls_new(s->net.ctx, s->fd, s->net.host);
  if (!s->ssl) {
    conn_fail(s, now, false);
    return;
  }
  /* Frames are appended to out while a write may be pending. */
  SSL_set_mode(s->ssl,
               SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_ENABLE_PARTIAL_WRITE);
  s->conn = WS_TLS;
  tls_step(s, now);
}

static bool try_next_address(tsr_ws *s, uint64_t now) {
  bool done = false;
  int fd = client_connect_next(&s->ai_next, &done);
  if (fd < 0) return false;
  s->fd = fd;
  s->conn = WS_CONNECTING;
  s->conn_deadline = now + s->net.connect_timeout_ms;
  if (done) connected(s, now);
  return true;
}

static void start_connect(tsr_ws *s, uint64_t now) {
  char port[8];
  snprintf(port, sizeof port, "%u", (unsigned)s->net.port);
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  if (getaddrinfo(s->net.host, port, &hints, &s->ai) != 0) {
    s->ai = NULL;
    conn_fail(s, now, false);
    return;
  }
  s->ai_next = s->ai;
  if (!try_next_address(s, now)) conn_fail(s, now, false);
}

static void check_connect(tsr_ws *s, uint64_t now) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err == EINPROGRESS || err == EALREADY) return;
  if (err) {
    close(s->fd);
    s->fd = -1;
    if (!try_next_address(s, now)) conn_fail(s, now, false);
    return;
  }
  connected(s, now);
}

/* ---- the upgrade answer -------------------------------------------------------- */

static bool token_in(http_str v, const char *tok) {
  size_t n = strlen(tok), i = 0;
  while (i < v.len) {
    while (i < v.len && (v.ptr[i] == ' ' || v.ptr[i] == '\t' || v.ptr[i] == ',')) i++;
    size_t j = i;
    while (j < v.len && v.ptr[j] != ',') j++;
    size_t e = j;
    while (e > i && (v.ptr[e - 1] == ' ' || v.ptr[e - 1] == '\t')) e--;
    if (e - i == n && strncasecmp(v.ptr + i, tok, n) == 0) return true;
    i = j;
  }
  return false;
}

static bool str_eq(http_str v, const char *lit, bool nocase) {
  size_t n = strlen(lit);
  return v.ptr && v.len == n &&
         (nocase ? strncasecmp(v.ptr, lit, n) == 0 : memcmp(v.ptr, lit, n) == 0);
}

static void process_frames(tsr_ws *s, uint64_t now);

/* Reads the answer to the upgrade; eof when the peer closed. */
static void process_upgrade(tsr_ws *s, bool eof, uint64_t now) {
  http_header hdrs[64];
  http_response r = {.headers = hdrs};
  http_limits lim = {MAX_HEAD, 64, 0, 0};
  int n = http_parse_response((const char *)s->in.ptr, s->in.len, &r, &lim);
  if (n == HTTP_INCOMPLETE) {
    if (eof) conn_fail(s, now, false);
    return;
  }
  if (n < 0) {
    refuse_local(s, now, TSR_EDECODE, "bad_response", http_error_name(n));
    return;
  }
  if (r.status == 101) {
    if (!str_eq(http_response_header(&r, "upgrade"), "websocket", true) ||
        !token_in(http_response_header(&r, "connection"), "upgrade") ||
        !str_eq(http_response_header(&r, "sec-websocket-accept"), s->accept, false) ||
        !str_eq(http_response_header(&r, "sec-websocket-protocol"), WS_SUBPROTOCOL,
                false)) {
      refuse_local(s, now, TSR_EDECODE, "bad_response",
                   "the upgrade answer does not match the request");
      return;
    }
    memmove(s->in.ptr, s->in.ptr + n, s->in.len - (size_t)n);
    s->in.len -= (size_t)n;
    buf_free_secret(&s->out); /* the request with the token is written */
    s->out_off = 0;
    s->conn = WS_OPEN;
    ws_assembler_init(&s->wsa);
    buf_reset(&s->msg);
    s->last_rx = now;
    s->ping_out = false;
    backoff_reset(&s->bo);
    if (s->on_state) s->on_state(s->arg, TSR_WS_CONNECTED);
    if (s->conn == WS_OPEN) process_frames(s, now);
    return;
  }
  if (r.status < 200) { /* another interim answer: skip it */
    memmove(s->in.ptr, s->in.ptr + n, s->in.len - (size_t)n);
    s->in.len -= (size_t)n;
    process_upgrade(s, eof, now);
    return;
  }
  /* A refusal, e.g. 401 for a revoked token: wait for its JSON body. */
  size_t avail = s->in.len - (size_t)n, blen = avail;
  if (r.content_length >= 0 && avail >= (size_t)r.content_length)
    blen = (size_t)r.content_length;
  else if (!eof && avail < 65536)
    return; /* the rest of the body (of the first 64 KiB) is on its way */
  const char *body = (const char *)s->in.ptr + n;
  char code[64] = "", message[256] = "";
  json_token t[16];
  int nt = json_parse(body, blen, t, 16, NULL);
  int e = nt > 0 ? json_object_get(body, t, 0, "error") : -1;
  int ic = e >= 0 ? json_object_get(body, t, e, "code") : -1;
  int im = e >= 0 ? json_object_get(body, t, e, "message") : -1;
  if (ic < 0 || json_get_string(body, t, ic, code, sizeof code, NULL, 0) != 0)
    snprintf(code, sizeof code, "http_%d", r.status);
  if (im < 0 || json_get_string(body, t, im, message, sizeof message, NULL, 0) != 0)
    snprintf(message, sizeof message, "upgrade refused with HTTP %d", r.status);
  if (r.status >= 500) { /* shedding load or restarting: an ordinary retry */
    conn_fail(s, now, false);
    return;
  }
  tsr_result res = {client_error_code(code), r.status, code, message, body, blen};
  conn_refused(s, now, &res);
}

/* ---- messages -------------------------------------------------------------------- */

/* One complete text message from the server. */
static void dispatch(tsr_ws *s, const char *txt, size_t len) {
  json_token small[256];
  json_token *t = small;
  int nt = json_parse(txt, len, t, 256, NULL);
  if (nt == JSON_E_TOKENS) {
    size_t cap = len / 2 + 4;
    t = malloc(cap * sizeof *t);
    nt = t ? json_parse(txt, len, t, cap, NULL) : JSON_E_NOMEM;
  }
  if (nt <= 0 || t[0].type != JSON_OBJECT) goto out; /* not ours to judge */
  if (json_object_get(txt, t, 0, "push") >= 0) {
    if (s->on_push) s->on_push(s->arg, txt, len);
    goto out;
  }
  int iid = json_object_get(txt, t, 0, "id");
  uint64_t id;
  if (iid < 0 || json_get_u64(txt, t, iid, &id) != 0) goto out;
  wcall *w = list_take(&s->fly, id);
  if (!w) goto out; /* timed out already, or not ours */
  int ok = json_object_get(txt, t, 0, "ok");
  if (ok >= 0) {
    tsr_result res = {0, 101, "", "", txt + t[ok].start, t[ok].end - t[ok].start};
    call_done(s, w, &res);
    goto out;
  }
  char code[64] = "", message[512] = "";
  int e = json_object_get(txt, t, 0, "error");
  int ic = e >= 0 ? json_object_get(txt, t, e, "code") : -1;
  int im = e >= 0 ? json_object_get(txt, t, e, "message") : -1;
  if (ic < 0 || json_get_string(txt, t, ic, code, sizeof code, NULL, 0) != 0) {
    tsr_result res = {TSR_EDECODE, 101, "bad_response", "an answer without ok or error",
                      txt,         len};
    call_done(s, w, &res);
    goto out;
  }
  if (im < 0 || json_get_string(txt, t, im, message, sizeof message, NULL, 0) != 0)
    snprintf(message, sizeof message, "%s", code);
  tsr_result res = {client_error_code(code), 101, code, message, txt, len};
  call_done(s, w, &res);
out:
  if (t != small) free(t);
}

/* Consumes the complete frames buffered in in. */
static void process_frames(tsr_ws *s, uint64_t now) {
  ws_limits lim = {
      .max_frame = s->max_message, .max_message = s->max_message, .client = true};
  size_t off = 0;
  while (s->conn == WS_OPEN) {
    size_t avail = s->in.len - off;
    if (!avail) break;
    ws_frame f;
    const uint8_t *p = s->in.ptr + off;
    int h = ws_parse_frame(p, avail, &f, &lim);
    if (h == WS_INCOMPLETE) break;
    if (h < 0) {
      close_with(s, now, ws_close_code_for(h), NULL);
      return;
    }
    if (avail - (size_t)h < f.payload_len) break;
    ws_event ev;
    int rc = ws_assembler_feed(&s->wsa, &f, f.payload_len ? p + h : NULL, &lim, &ev);
    if (rc < 0) {
      close_with(s, now, ws_close_code_for(rc), NULL);
      return;
    }
    off += (size_t)h + (size_t)f.payload_len;
    s->last_rx = now;
    s->ping_out = false;
    switch (ev.opcode) {
    case WS_OP_TEXT:
      if (ev.first) buf_reset(&s->msg);
      if (ev.len && buf_append(&s->msg, ev.data, ev.len)) {
        close_with(s, now, WS_CLOSE_INTERNAL, NULL);
        return;
      }
      if (ev.fin) {
        /* The callbacks may queue calls, which never touch in or msg. */
        dispatch(s, s->msg.len ? (const char *)s->msg.ptr : "", s->msg.len);
        buf_reset(&s->msg);
      }
      break;
    case WS_OP_BINARY: close_with(s, now, WS_CLOSE_UNSUPPORTED, NULL); return;
    case WS_OP_PING: {
      uint8_t fr[WS_MAX_CONTROL_FRAME], mask[4];
      randombytes_buf(mask, sizeof mask);
      size_t n = ws_write_pong(fr, ev.data, ev.len, mask);
      if (!n || buf_append(&s->out, fr, n)) {
        close_with(s, now, WS_CLOSE_INTERNAL, NULL);
        return;
      }
      break;
    }
    case WS_OP_PONG: break;
    case WS_OP_CLOSE: {
      /* Answer with the same code (none for an empty Close) and drop: the
       * client may close once Close went both ways (RFC 6455 §7.1.1). */
      uint16_t code = ev.close_code == WS_CLOSE_NO_STATUS ? 0 : ev.close_code;
      close_with(s, now, code, NULL);
      return;
    }
    default: break;
    }
  }
  if (s->conn != WS_OPEN) return;
  if (off) {
    memmove(s->in.ptr, s->in.ptr + off, s->in.len - off);
    s->in.len -= off;
  }
  if (s->out_off < s->out.len && !flush_out(s)) conn_fail(s, now, false);
}

static void process_input(tsr_ws *s, bool eof, uint64_t now) {
  if (s->conn == WS_UPGRADE) {
    process_upgrade(s, eof, now);
  } else if (s->conn == WS_OPEN) {
    process_frames(s, now);
  }
  if (eof && s->fd >= 0) conn_fail(s, now, false);
}

static void read_some(tsr_ws *s, uint64_t now) {
  for (;;) {
    if (s->in.len > (size_t)s->max_message + MAX_HEAD + 2 * WS_MAX_HEADER) {
      close_with(s, now, WS_CLOSE_TOO_BIG, NULL);
      return;
    }
    uint8_t *dst = buf_extend(&s->in, READ_CHUNK);
    if (!dst) {
      conn_fail(s, now, false);
      return;
    }
    s->in.len -= READ_CHUNK;
    ssize_t k;
    if (s->ssl) {
      ERR_clear_error();
      int r = SSL_read(s->ssl, dst, READ_CHUNK);
      if (r > 0) {
        k = r;
      } else {
        int e = SSL_get_error(s->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
          s->ssl_want_write = e == SSL_ERROR_WANT_WRITE;
          process_input(s, false, now);
          return;
        }
        k = e == SSL_ERROR_ZERO_RETURN ? 0 : -1;
      }
    } else {
      k = recv(s->fd, dst, READ_CHUNK, 0);
      if (k < 0 && errno == EINTR) continue;
      if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        process_input(s, false, now);
        return;
      }
    }
    if (k < 0) {
      conn_fail(s, now, false);
      return;
    }
    if (k == 0) {
      process_input(s, true, now);
      return;
    }
    s->in.len += (size_t)k;
    /* Hand over what came so far before reading on: frames are processed
     * in order, and a large burst does not pile up unbounded. */
    if (s->in.len >= READ_CHUNK) {
      process_input(s, false, now);
      if (s->fd < 0 || (s->conn != WS_OPEN && s->conn != WS_UPGRADE)) return;
    }
  }
}

/* ---- calls ------------------------------------------------------------------------- */

/* Writes the queued calls (session open). */
static void send_queued(tsr_ws *s, uint64_t now) {
  if (s->conn != WS_OPEN || !s->queue.head) return;
  wcall *w;
  while ((w = list_pop(&s->queue))) {
    int rc = append_frame(s, WS_OP_TEXT, w->text.ptr, w->text.len);
    if (rc) {
      call_local(s, w, rc, "local", "the call could not be framed");
      continue;
    }
    w->deadline = now + s->net.request_timeout_ms;
    list_push(&s->fly, w);
  }
  if (!flush_out(s)) conn_fail(s, now, false);
}

int tsr_ws_call(tsr_ws *s, const char *op, const char *json_fields, tsr_result_cb cb,
                void *arg) {
  if (!s || !op || !op[0]) return TSR_EINVAL;
  wcall *w = calloc(1, sizeof *w);
  if (!w) return TSR_ENOMEM;
  buf_init(&w->text);
  w->id = s->next_id;
  json_writer jw;
  json_writer_init(&jw, &w->text, 0);
  json_write_object_begin(&jw);
  json_write_key(&jw, "op");
  json_write_string(&jw, op);
  json_write_key(&jw, "id");
  json_write_u64(&jw, w->id);
  json_write_object_end(&jw);
  int rc = json_writer_finish(&jw);
  if (rc == 0 && json_fields && json_fields[0]) {
    size_t fl = strlen(json_fields);
    w->text.len--; /* the closing brace */
    buf_append(&w->text, ",", 1);
    buf_append(&w->text, json_fields, fl);
    buf_append(&w->text, "}", 1);
  }
  if (rc == 0 && w->text.err) rc = JSON_E_NOMEM;
  if (rc) {
    call_free(w);
    return rc == JSON_E_NOMEM ? TSR_ENOMEM : TSR_EINVAL;
  }
  if (w->text.len > s->max_message) {
    call_free(w);
    return TSR_ELIMIT;
  }
  /* The whole message must be one valid object: no stray text, no
   * duplicate "op" or "id" among the fields. */
  json_token small[64];
  json_token *t = small;
  const char *txt = (const char *)w->text.ptr;
  int nt = json_parse(txt, w->text.len, t, 64, NULL);
  if (nt == JSON_E_TOKENS) {
    size_t cap = w->text.len / 2 + 4;
    t = malloc(cap * sizeof *t);
    nt = t ? json_parse(txt, w->text.len, t, cap, NULL) : JSON_E_NOMEM;
  }
  if (t != small) free(t);
  if (nt <= 0) {
    call_free(w);
    return nt == JSON_E_NOMEM ? TSR_ENOMEM : TSR_EINVAL;
  }
  s->next_id++;
  w->cb = cb;
  w->arg = arg;
  list_push(&s->queue, w);
  s->pending++;
  return 0;
}

/* ---- driving ------------------------------------------------------------------------
 */

void tsr_ws_free(tsr_ws *s) {
  if (!s) return;
  if (s->conn == WS_OPEN) { /* a polite goodbye, without waiting */
    uint8_t fr[WS_MAX_CONTROL_FRAME], mask[4];
    randombytes_buf(mask, sizeof mask);
    size_t n = ws_write_close(fr, WS_CLOSE_NORMAL, NULL, 0, mask);
    if (n && buf_append(&s->out, fr, n) == 0) flush_out(s);
  }
  conn_close(s);
  s->conn = WS_WAIT;
  list_fail(s, &s->fly, TSR_ESTATE, "cancelled", "session closed");
  while (s->queue.head)
    list_fail(s, &s->queue, TSR_ESTATE, "cancelled", "session closed");
  buf_free(&s->out);
  buf_free(&s->in);
  buf_free(&s->msg);
  free(s);
}

int tsr_ws_fd(const tsr_ws *s) { return s ? s->fd : -1; }

int tsr_ws_want_write(const tsr_ws *s) {
  if (!s || s->fd < 0) return 0;
  if (s->conn == WS_CONNECTING || s->ssl_want_write) return 1;
  return s->out_off < s->out.len;
}

int tsr_ws_state(const tsr_ws *s) {
  return s && s->conn == WS_OPEN ? TSR_WS_CONNECTED : TSR_WS_DISCONNECTED;
}

size_t tsr_ws_pending(const tsr_ws *s) { return s ? s->pending : 0; }

int tsr_ws_on_writable(tsr_ws *s) {
  if (!s) return TSR_EINVAL;
  uint64_t now = now_of(s);
  switch (s->conn) {
  case WS_CONNECTING: check_connect(s, now); break;
  case WS_TLS: tls_step(s, now); break;
  case WS_UPGRADE:
  case WS_OPEN:
    if (s->ssl && s->ssl_want_write && s->out_off >= s->out.len) {
      read_some(s, now); /* SSL_read wanted to write */
    } else if (!flush_out(s)) {
      conn_fail(s, now, false);
    }
    break;
  default: break;
  }
  return 0;
}

int tsr_ws_on_readable(tsr_ws *s) {
  if (!s) return TSR_EINVAL;
  uint64_t now = now_of(s);
  switch (s->conn) {
  case WS_CONNECTING: check_connect(s, now); break;
  case WS_TLS: tls_step(s, now); break;
  case WS_UPGRADE:
  case WS_OPEN:
    if (s->ssl && s->ssl_want_write && s->out_off < s->out.len) {
      if (!flush_out(s)) conn_fail(s, now, false); /* SSL_write wanted to read */
    } else {
      read_some(s, now);
    }
    break;
  default: break;
  }
  return 0;
}

int tsr_ws_on_tick(tsr_ws *s, uint64_t now) {
  if (!s) return TSR_EINVAL;
  if (s->conn == WS_CONNECTING && now >= s->conn_deadline) {
    close(s->fd); /* a silent address: the next one, if any */
    s->fd = -1;
    if (!try_next_address(s, now)) conn_fail(s, now, true);
  }
  if ((s->conn == WS_TLS || s->conn == WS_UPGRADE) && now >= s->conn_deadline)
    conn_fail(s, now, true);
  if (s->conn == WS_OPEN) {
    /* Calls without an answer in time; the connection stays. */
    while (s->fly.head && now >= s->fly.head->deadline)
      call_local(s, list_pop(&s->fly), TSR_EIO, "timeout",
                 "the server did not answer in time");
    if (s->ping_out && now >= s->ping_sent_at + s->pong_timeout_ms) {
      conn_fail(s, now, false); /* nothing came back: the connection is dead */
    } else if (!s->ping_out && now >= s->last_rx + s->ping_interval_ms) {
      uint8_t fr[WS_MAX_CONTROL_FRAME], mask[4];
      randombytes_buf(mask, sizeof mask);
      size_t n = ws_write_control(fr, WS_OP_PING, NULL, 0, mask);
      if (buf_append(&s->out, fr, n) == 0) {
        s->ping_out = true;
        s->ping_sent_at = now;
        if (!flush_out(s)) conn_fail(s, now, false);
      }
    }
  }
  if (s->conn == WS_WAIT && now >= s->retry_at) s->conn = WS_IDLE;
  if (s->conn == WS_IDLE) start_connect(s, now);
  if (s->conn == WS_OPEN) send_queued(s, now);
  return 0;
}

static uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }

int64_t tsr_ws_next_timeout(const tsr_ws *s, uint64_t now) {
  if (!s) return -1;
  uint64_t at;
  switch (s->conn) {
  case WS_IDLE: return 0;
  case WS_WAIT: at = s->retry_at; break;
  case WS_CONNECTING:
  case WS_TLS:
  case WS_UPGRADE: at = s->conn_deadline; break;
  default:
    if (s->queue.head) return 0;
    at = s->ping_out ? s->ping_sent_at + s->pong_timeout_ms
                     : s->last_rx + s->ping_interval_ms;
    if (s->fly.head) at = min_u64(at, s->fly.head->deadline);
  }
  return at > now ? (int64_t)(at - now) : 0;
}

int tsr_ws_run(tsr_ws *s, int timeout_ms, int (*until)(void *arg), void *arg) {
  if (!s) return TSR_EINVAL;
  uint64_t start = now_of(s);
  for (;;) {
    if (until && until(arg)) return 0;
    uint64_t now = now_of(s);
    if (timeout_ms >= 0 && now - start >= (uint64_t)timeout_ms) return 1;
    tsr_ws_on_tick(s, now);
    if (until && until(arg)) return 0;
    now = now_of(s);
    int64_t wait = tsr_ws_next_timeout(s, now);
    if (timeout_ms >= 0) {
      int64_t left = (int64_t)(start + (uint64_t)timeout_ms) - (int64_t)now;
      if (left < 0) left = 0;
      if (wait < 0 || wait > left) wait = left;
    }
    if (wait > 60000 || wait < 0) wait = 60000;
    struct pollfd p = {.fd = s->fd, .events = POLLIN};
    if (tsr_ws_want_write(s)) p.events |= POLLOUT;
    int n = poll(s->fd >= 0 ? &p : NULL, s->fd >= 0 ? 1 : 0, (int)wait);
    if (n < 0 && errno != EINTR) return TSR_EIO;
    if (n > 0) {
      if (p.revents & (POLLIN | POLLHUP | POLLERR)) tsr_ws_on_readable(s);
      if ((p.revents & POLLOUT) && s->fd == p.fd) tsr_ws_on_writable(s);
    }
  }
}

static int reply_done(void *arg) { return ((const tsr_reply *)arg)->done; }

int tsr_ws_call_sync(tsr_ws *s, const char *op, const char *json_fields, tsr_reply *out) {
  tsr_reply local;
  tsr_reply *r = out ? out : &local;
  memset(r, 0, sizeof *r);
  int rc = tsr_ws_call(s, op, json_fields, client_reply_cb, r);
  if (rc == 0) rc = tsr_ws_run(s, -1, reply_done, r);
  if (rc == 0) rc = r->err;
  if (!out) tsr_reply_clear(r);
  return rc;
}
