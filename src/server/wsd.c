#include "server/wsd.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "server/log.h"
#include "server/metrics.h"
#include "server/worker.h"
#include "tessera/error.h"

typedef struct {
  const char *op;
  size_t len;
  wsd_handler fn;
  bool pub; /* allowed before authentication */
} op_entry;

static op_entry ops[WSD_MAX_OPS];
static size_t nops;
static wsd_auth_hooks auth;

static int op_add(const char *op, wsd_handler fn, bool pub) {
  if (!op || !*op || !fn) return TSR_EINVAL;
  if (nops == WSD_MAX_OPS) return TSR_ELIMIT;
  ops[nops++] = (op_entry){op, strlen(op), fn, pub};
  return 0;
}

int wsd_op_add(const char *op, wsd_handler fn) { return op_add(op, fn, false); }
int wsd_op_add_public(const char *op, wsd_handler fn) { return op_add(op, fn, true); }

void wsd_set_auth(const wsd_auth_hooks *h) {
  if (h)
    auth = *h;
  else
    auth = (wsd_auth_hooks){0};
}

int wsd_call_error(wsd_call *call, const char *code, const char *fmt, ...) {
  call->err_code = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(call->err_msg, sizeof call->err_msg, fmt, ap);
  va_end(ap);
  return -1;
}

static uint64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Milliseconds on a wrapping 32-bit clock: the authentication deadline in
 * conn.spare (0: none). Compared by signed difference, so it is good for
 * deadlines up to ~24 days away. */
static uint32_t now_ms32(void) { return (uint32_t)(now_us() / 1000u); }

static bool auth_pending(const conn *c) {
  return auth.authorize && !c->session && c->spare;
}

/* Arms the idle timer: the ping interval, or sooner for the auth deadline. */
static void arm_idle(conn *c, uint32_t ms) {
  if (auth_pending(c)) {
    int32_t left = (int32_t)(c->spare - now_ms32());
    if (left < 1) left = 1;
    if ((uint32_t)left < ms) ms = (uint32_t)left;
  }
  conn_timer(c, ms);
}

void wsd_authenticated(conn *c) {
  c->spare = 0;
  if (conn_state(c) == CONN_WS && !(conn_flags(c) & CONN_F_PING_SENT))
    conn_timer(c, conn_worker(c)->cfg->ws_ping_interval_ms);
}

/* ---- output ---- */

static int send_frame(conn *c, uint8_t opcode, const void *p, size_t n) {
  uint8_t hdr[WS_MAX_HEADER];
  size_t hl = ws_write_frame_header(hdr, opcode, true, n, NULL);
  buf_t *out = conn_out(c);
  buf_append(out, hdr, hl);
  buf_append(out, p, n);
  if (out->err) {
    conn_kill(c);
    return TSR_ENOMEM;
  }
  if (opcode == WS_OP_TEXT) metrics_inc(M_WS_MSG_OUT);
  return 0;
}

int wsd_send_text(conn *c, const char *text, size_t len) {
  if (conn_state(c) != CONN_WS) return TSR_ESTATE;
  return send_frame(c, WS_OP_TEXT, text, len);
}

static void send_control(conn *c, const uint8_t *frame, size_t n) {
  if (n == 0 || buf_append(conn_out(c), frame, n) != 0) conn_kill(c);
}

void wsd_close(conn *c, uint16_t code, const char *reason) {
  if (conn_state(c) != CONN_WS) return;
  uint8_t f[WS_MAX_CONTROL_FRAME];
  send_control(c, f, ws_write_close(f, code, reason, reason ? strlen(reason) : 0, NULL));
  conn_state(c) = CONN_WS_CLOSING;
  conn_timer(c, conn_worker(c)->cfg->close_timeout_ms);
}

static void protocol_close(conn *c, uint16_t code, const char *reason) {
  metrics_inc(M_ERR_PROTOCOL);
  log_debug("fd %d: WebSocket close %u (%s)", c->h.fd, code, reason);
  wsd_close(c, code, reason);
}

/* {"id":<id>,"ok":<ok>} or {"id":<id>,"error":{"code":..,"message":..}} */
static void reply(conn *c, const char *id, size_t id_len, const char *ok, size_t ok_len,
                  const char *code, const char *msg) {
  worker *w = conn_worker(c);
  buf_t *r = &w->reply;
  buf_reset(r);
  buf_append(r, "{\"id\":", 6);
  buf_append(r, id, id_len);
  if (!code) {
    buf_append(r, ",\"ok\":", 6);
    buf_append(r, ok, ok_len);
  } else {
    buf_append(r, ",\"error\":", 9);
    json_writer jw;
    json_writer_init(&jw, r, 4);
    json_write_object_begin(&jw);
    json_write_key(&jw, "code");
    json_write_string(&jw, code);
    json_write_key(&jw, "message");
    json_write_string(&jw, msg ? msg : "");
    json_write_object_end(&jw);
    if (json_writer_finish(&jw) != 0) {
      conn_kill(c);
      return;
    }
  }
  buf_append(r, "}", 1);
  if (r->err) {
    conn_kill(c);
    return;
  }
  send_frame(c, WS_OP_TEXT, r->ptr, r->len);
  if (r->cap > 256 * 1024) buf_free(r);
}

static void reply_error(conn *c, const char *id, size_t id_len, const char *code,
                        const char *msg) {
  reply(c, id, id_len, NULL, 0, code, msg);
}

#define ID_NULL "null", 4

/* ---- dispatch ---- */

static void dispatch(conn *c, const uint8_t *data, size_t len) {
  worker *w = conn_worker(c);
  const char *text = (const char *)data;
  uint64_t t0 = now_us();
  metrics_inc(M_WS_MSG_IN);
  size_t eoff = 0;
  int ntok = json_parse_ex(text, len, w->toks, WORKER_MAX_TOKENS, NULL, &eoff);
  if (ntok < 0) {
    char msg[128];
    reply_error(c, ID_NULL, "bad_json", json_describe_error(ntok, eoff, msg, sizeof msg));
    goto done;
  }
  const json_token *t = w->toks;
  if (t[0].type != JSON_OBJECT) {
    reply_error(c, ID_NULL, "bad_request", "a frame must be a JSON object");
    goto done;
  }
  int idi = json_object_get(text, t, 0, "id");
  const char *id;
  size_t id_len;
  if (idi < 0) {
    reply_error(c, ID_NULL, "bad_request", "missing id");
    goto done;
  }
  if (t[idi].type == JSON_STRING) {
    id = text + t[idi].start - 1; /* with its quotes: already valid JSON */
    id_len = t[idi].end - t[idi].start + 2;
  } else if (t[idi].type == JSON_NUMBER && (t[idi].flags & JSON_TOKF_INTEGER)) {
    id = text + t[idi].start;
    id_len = t[idi].end - t[idi].start;
  } else {
    reply_error(c, ID_NULL, "bad_request", "id must be a string or an integer");
    goto done;
  }
  if (id_len > WSD_ID_MAX) {
    reply_error(c, ID_NULL, "bad_request", "id too long");
    goto done;
  }
  uint32_t wait = auth.limit ? auth.limit(c) : 0;
  if (wait) {
    char msg[80];
    snprintf(msg, sizeof msg, "too many requests; retry in %u s", wait);
    reply_error(c, id, id_len, "rate_limited", msg);
    goto done;
  }
  int opi = json_object_get(text, t, 0, "op");
  if (opi < 0 || t[opi].type != JSON_STRING) {
    reply_error(c, id, id_len, "bad_request", "missing op");
    goto done;
  }
  const op_entry *e = NULL;
  for (size_t i = 0; i < nops && !e; i++)
    if (json_string_eq(text, t, opi, ops[i].op, ops[i].len)) e = &ops[i];
  if (!e) {
    reply_error(c, id, id_len, "unknown_op", "unknown op");
    goto done;
  }
  if (auth.authorize && !e->pub) {
    int a = c->session ? auth.authorize(c) : WSD_AUTH_NONE;
    if (a == WSD_AUTH_REVOKED) {
      reply_error(c, id, id_len, "unauthorized", "device revoked");
      wsd_close(c, WS_CLOSE_POLICY, "device revoked");
      goto done;
    }
    if (a != WSD_AUTH_OK) {
      reply_error(c, id, id_len, "unauthorized", "authenticate first (op auth)");
      goto done;
    }
  }
  buf_reset(&w->body);
  json_writer jw;
  json_writer_init(&jw, &w->body, 32);
  json_write_object_begin(&jw);
  wsd_call call = {.conn = c,
                   .text = text,
                   .len = len,
                   .toks = t,
                   .ntoks = ntok,
                   .id = id,
                   .id_len = id_len,
                   .ok = &jw};
  int rc = e->fn(&call);
  if (rc == WSD_DEFERRED) goto done;
  if (rc == 0) {
    json_write_object_end(&jw);
    if (json_writer_finish(&jw) == 0)
      reply(c, id, id_len, (const char *)w->body.ptr, w->body.len, NULL, NULL);
    else
      reply_error(c, id, id_len, "internal", "reply could not be encoded");
  } else {
    reply_error(c, id, id_len, call.err_code ? call.err_code : "internal",
                call.err_code ? call.err_msg : "internal error");
  }
done:
  metrics_latency_us(now_us() - t0);
}

void wsd_defer(const wsd_call *call, wsd_ticket *t) {
  t->ref = conn_ref_of(call->conn);
  t->id_len = (uint8_t)call->id_len;
  memcpy(t->id, call->id, call->id_len);
}

void wsd_complete(const wsd_ticket *t, const char *ok_json, size_t ok_len,
                  const char *err_code, const char *err_msg) {
  conn *c = conn_ref_get(t->ref);
  if (!c || conn_state(c) != CONN_WS) return;
  if (err_code)
    reply_error(c, t->id, t->id_len, err_code, err_msg);
  else
    reply(c, t->id, t->id_len, ok_json, ok_len, NULL, NULL);
  conn_settle(c);
}

/* ---- frames ---- */

size_t wsd_input(conn *c, uint8_t *p, size_t n) {
  worker *w = conn_worker(c);
  size_t off = 0;
  bool any = false;
  while (off < n && !(conn_flags(c) & CONN_F_DEAD)) {
    uint8_t st = conn_state(c);
    if (st != CONN_WS && st != CONN_WS_CLOSING) break;
    ws_frame f;
    int h = ws_parse_frame(p + off, n - off, &f, &w->wlim);
    if (h == WS_INCOMPLETE) break;
    if (h < 0) {
      if (st == CONN_WS_CLOSING)
        conn_kill(c);
      else
        protocol_close(c, ws_close_code_for(h),
                       h == WS_ETOOBIG ? "too big" : "protocol error");
      return n;
    }
    if (n - off - (size_t)h < f.payload_len) break;
    uint8_t *pl = p + off + h;
    size_t plen = (size_t)f.payload_len;
    ws_unmask(pl, plen, f.mask, 0);
    off += (size_t)h + plen;
    any = true;
    if (st == CONN_WS_CLOSING) {
      if (f.opcode == WS_OP_CLOSE) conn_kill(c); /* handshake complete */
      continue;
    }
    ws_assembler *a = &w->wsa_scratch;
    if (c->io)
      a = &c->io->wsa;
    else
      ws_assembler_init(a); /* no conn_io: no message is open */
    ws_event ev;
    int rc = ws_assembler_feed(a, &f, pl, &w->wlim, &ev);
    if (rc < 0) {
      protocol_close(c, ws_close_code_for(rc),
                     rc == WS_EBADDATA  ? "invalid UTF-8"
                     : rc == WS_ETOOBIG ? "too big"
                                        : "protocol error");
      return n;
    }
    if (a == &w->wsa_scratch && ws_assembler_in_message(a)) {
      conn_io *io = conn_io_get(c);
      if (!io) {
        conn_kill(c);
        return n;
      }
      io->wsa = *a;
    }
    switch (ev.opcode) {
    case WS_OP_TEXT:
      if (ev.first && ev.fin) {
        dispatch(c, ev.data, ev.len);
      } else {
        conn_io *io = conn_io_get(c);
        if (!io || buf_append(&io->msg, ev.data, ev.len) != 0) {
          conn_kill(c);
          return n;
        }
        if (ev.fin) {
          dispatch(c, io->msg.ptr, io->msg.len);
          io->msg.len = 0;
        }
      }
      break;
    case WS_OP_BINARY:
      protocol_close(c, WS_CLOSE_UNSUPPORTED, "binary messages are not supported");
      return n;
    case WS_OP_PING: {
      uint8_t fr[WS_MAX_CONTROL_FRAME];
      send_control(c, fr, ws_write_pong(fr, ev.data, ev.len, NULL));
      break;
    }
    case WS_OP_PONG: break; /* any frame proves life (below) */
    case WS_OP_CLOSE: {
      uint8_t fr[WS_MAX_CONTROL_FRAME];
      uint16_t code = ev.close_code == WS_CLOSE_NO_STATUS ? 0 : ev.close_code;
      send_control(c, fr, ws_write_close(fr, code, NULL, 0, NULL));
      conn_state(c) = CONN_WS_CLOSING;
      conn_flags(c) |= CONN_F_CLOSE_AFTER; /* shut TCP once our Close is out */
      return n;
    }
    default: break;
    }
  }
  if (any && conn_state(c) == CONN_WS) {
    conn_flags(c) &= (uint8_t)~CONN_F_PING_SENT;
    arm_idle(c, w->cfg->ws_ping_interval_ms);
  }
  return off;
}

void wsd_on_timeout(conn *c) {
  worker *w = conn_worker(c);
  if (auth_pending(c) && (int32_t)(c->spare - now_ms32()) <= 0) {
    metrics_inc(M_ERR_TIMEOUT);
    log_debug("fd %d: not authenticated in time", c->h.fd);
    wsd_close(c, WS_CLOSE_POLICY, "authentication timeout");
    return;
  }
  if (auth.authorize && c->session && auth.authorize(c) == WSD_AUTH_REVOKED) {
    wsd_close(c, WS_CLOSE_POLICY, "device revoked");
    return;
  }
  if (conn_flags(c) & CONN_F_PING_SENT) {
    metrics_inc(M_ERR_TIMEOUT);
    conn_kill(c);
    return;
  }
  uint8_t fr[WS_MAX_CONTROL_FRAME];
  send_control(c, fr, ws_write_control(fr, WS_OP_PING, NULL, 0, NULL));
  conn_flags(c) |= CONN_F_PING_SENT;
  arm_idle(c, w->cfg->ws_pong_timeout_ms);
}

void wsd_on_close(conn *c) {
  if (auth.close && c->session) auth.close(c);
  c->session = NULL;
  c->spare = 0;
  metrics_add(M_WS_OPEN, -1);
}

/* ---- handshake ---- */

static bool str_is(http_str s, const char *lit) {
  return s.ptr && s.len == strlen(lit) && memcmp(s.ptr, lit, s.len) == 0;
}

int wsd_handshake(conn *c, const http_request *req, bytes_t body, httpd_resp *resp) {
  worker *w = conn_worker(c);
  if (req->method != HTTP_GET) {
    httpd_resp_error(resp, 405, "method_not_allowed", "use GET to open a WebSocket");
    return 0;
  }
  if (!req->upgrade_websocket || req->minor_version != 1) {
    httpd_resp_error(resp, 426, "upgrade_required", "WebSocket upgrade required");
    httpd_resp_header(resp, "Upgrade", "websocket");
    return 0;
  }
  if (!str_is(req->ws_version, "13")) {
    httpd_resp_error(resp, 426, "upgrade_required", "Sec-WebSocket-Version 13 required");
    httpd_resp_header(resp, "Sec-WebSocket-Version", "13");
    return 0;
  }
  if (req->content_length > 0 || req->chunked || body.len) {
    httpd_resp_error(resp, 400, "bad_request", "an upgrade request has no body");
    return 0;
  }
  bool offered = false;
  for (size_t i = 0; req->headers && i < req->num_headers; i++) {
    http_str nm = req->headers[i].name;
    if (nm.len != 22 || strncasecmp(nm.ptr, "Sec-WebSocket-Protocol", 22) != 0) continue;
    int rc = ws_find_subprotocol(req->headers[i].value.ptr, req->headers[i].value.len,
                                 WS_SUBPROTOCOL);
    if (rc == 1) offered = true;
  }
  if (!offered) {
    httpd_resp_error(resp, 400, "bad_request", "subprotocol tessera.v1 required");
    httpd_resp_header(resp, "Sec-WebSocket-Protocol", WS_SUBPROTOCOL);
    return 0;
  }
  char accept[WS_ACCEPT_LEN + 1];
  if (!req->ws_key.ptr || ws_accept_key(req->ws_key.ptr, req->ws_key.len, accept) != 0) {
    httpd_resp_error(resp, 400, "bad_request", "invalid Sec-WebSocket-Key");
    return 0;
  }
  if (w->draining) {
    httpd_resp_error(resp, 503, "unavailable", "server is shutting down");
    return 0;
  }
  if (auth.upgrade && auth.upgrade(c, req, resp) != 0) return 0;
  http_header hdrs[] = {
      HTTP_HEADER("Upgrade", "websocket"),
      HTTP_HEADER("Connection", "Upgrade"),
      {HTTP_STR("Sec-WebSocket-Accept"), {accept, WS_ACCEPT_LEN}},
      HTTP_HEADER("Sec-WebSocket-Protocol", WS_SUBPROTOCOL),
  };
  buf_t *out = conn_out(c);
  if (http_write_response_head(out, 101, NULL, hdrs, 4, -1, true) != 0) {
    if (auth.close && c->session) auth.close(c);
    c->session = NULL;
    conn_kill(c);
    return 1;
  }
  conn_state(c) = CONN_WS;
  conn_flags(c) &= (uint8_t) ~(CONN_F_REQ_TIMER | CONN_F_PING_SENT);
  if (c->io) ws_assembler_init(&c->io->wsa);
  metrics_inc(M_WS_OPEN);
  metrics_inc(M_WS_TOTAL);
  c->spare = 0;
  if (auth.authorize && !c->session) {
    c->spare = now_ms32() + w->cfg->ws_auth_timeout_ms;
    if (!c->spare) c->spare = 1;
  }
  arm_idle(c, w->cfg->ws_ping_interval_ms);
  return 1;
}

/* ---- built-in ops ---- */

static int op_ping(wsd_call *call) {
  (void)call;
  return 0;
}

int wsd_builtin_ops(void) { return wsd_op_add_public("ping", op_ping); }
