#include "server/httpd.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proto/json.h"
#include "server/log.h"
#include "server/metrics.h"
#include "server/ratelimit.h"
#include "server/worker.h"
#include "server/wsd.h"
#include "tessera/error.h"

typedef struct {
  http_method method;
  const char *prefix;
  size_t len;
  httpd_handler fn;
  const httpd_stream *stream; /* set for streamed-body routes (fn NULL) */
} route;

/* conn.spare bit: an answer of this HTTP connection is deferred. */
#define SPARE_DEFERRED 1u

static route routes[HTTPD_MAX_ROUTES];
static size_t nroutes;

int httpd_route_add(http_method method, const char *prefix, httpd_handler fn) {
  if (!prefix || prefix[0] != '/' || !fn) return TSR_EINVAL;
  if (nroutes == HTTPD_MAX_ROUTES) return TSR_ELIMIT;
  routes[nroutes++] = (route){method, prefix, strlen(prefix), fn, NULL};
  return 0;
}

int httpd_route_add_stream(http_method method, const char *prefix,
                           const httpd_stream *s) {
  if (!prefix || prefix[0] != '/' || !s || !s->begin || !s->data || !s->end || !s->abort)
    return TSR_EINVAL;
  if (nroutes == HTTPD_MAX_ROUTES) return TSR_ELIMIT;
  routes[nroutes++] = (route){method, prefix, strlen(prefix), NULL, s};
  return 0;
}

static uint64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void httpd_resp_header(httpd_resp *resp, const char *name, const char *value) {
  if (resp->n_headers < HTTPD_MAX_RESP_HEADERS)
    resp->headers[resp->n_headers++] =
        (http_header){{name, strlen(name)}, {value, strlen(value)}};
}

bool httpd_path_is(const httpd_req *r, const char *s) {
  return r->req->path.len == strlen(s) &&
         memcmp(r->req->path.ptr, s, r->req->path.len) == 0;
}

void httpd_resp_error(httpd_resp *resp, int status, const char *code, const char *msg) {
  resp->status = status;
  resp->content_type = "application/json";
  buf_reset(resp->body);
  json_writer jw;
  json_writer_init(&jw, resp->body, 4);
  json_write_object_begin(&jw);
  json_write_key(&jw, "error");
  json_write_object_begin(&jw);
  json_write_key(&jw, "code");
  json_write_string(&jw, code);
  json_write_key(&jw, "message");
  json_write_string(&jw, msg);
  json_write_object_end(&jw);
  json_write_object_end(&jw);
}

/* Stable error codes for the statuses the framing layer produces. */
static const char *status_code_name(int status) {
  switch (status) {
  case 400: return "bad_request";
  case 404: return "not_found";
  case 405: return "method_not_allowed";
  case 408: return "timeout";
  case 411: return "length_required";
  case 413: return "too_large";
  case 414: return "uri_too_long";
  case 416: return "range_not_satisfiable";
  case 417: return "expectation_failed";
  case 426: return "upgrade_required";
  case 431: return "headers_too_large";
  case 501: return "not_implemented";
  case 503: return "unavailable";
  case 505: return "version_not_supported";
  default: return "internal";
  }
}

/* Queues the response; marks the conn to close after it unless keep. */
static void write_response(conn *c, httpd_resp *resp, bool keep, bool http10,
                           bool head_only) {
  http_header hdrs[HTTPD_MAX_RESP_HEADERS + 2];
  size_t n = 0;
  if (resp->content_type)
    hdrs[n++] = (http_header){HTTP_STR("Content-Type"),
                              {resp->content_type, strlen(resp->content_type)}};
  for (size_t i = 0; i < resp->n_headers; i++) hdrs[n++] = resp->headers[i];
  if (keep && http10) hdrs[n++] = HTTP_HEADER("Connection", "keep-alive");
  buf_t *out = conn_out(c);
  size_t mark = out->len;
  int64_t clen = resp->has_file ? (int64_t)resp->file_len : (int64_t)resp->body->len;
  /* 204 and 304 have no content; a 304's Content-Length would have to be
   * the 200's (RFC 9110 §8.6), so it is left out. */
  bool bodiless = resp->status == 204 || resp->status == 304;
  if (bodiless) clen = -1;
  if (http_write_response_head(out, resp->status, NULL, hdrs, n, clen, keep) != 0) {
    out->len = mark;
    log_warn("cannot write response head for status %d", resp->status);
    if (resp->has_file) close(resp->file_fd);
    resp->has_file = false;
    conn_kill(c);
    return;
  }
  if (resp->has_file) {
    resp->has_file = false;
    if (head_only)
      close(resp->file_fd);
    else
      conn_send_file(c, resp->file_fd, resp->file_off, resp->file_len);
  } else if (!head_only && !bodiless) {
    buf_append(out, resp->body->ptr, resp->body->len);
  }
  metrics_http_status(resp->status);
  if (!keep) conn_flags(c) |= CONN_F_CLOSE_AFTER;
}

void httpd_fail(conn *c, int status, const char *code, const char *msg) {
  worker *w = conn_worker(c);
  httpd_resp resp = {.body = &w->body};
  httpd_resp_error(&resp, status, code ? code : status_code_name(status), msg);
  write_response(c, &resp, false, false, false);
}

void httpd_resp_rate_limited(httpd_resp *resp, uint32_t retry, const char *msg) {
  httpd_resp_error(resp, 429, "rate_limited", msg);
  snprintf(resp->hdr_store, sizeof resp->hdr_store, "%u", retry);
  httpd_resp_header(resp, "Retry-After", resp->hdr_store);
}

static bool prefix_match(const route *r, http_str path) {
  if (path.len < r->len || memcmp(path.ptr, r->prefix, r->len) != 0) return false;
  return path.len == r->len || r->prefix[r->len - 1] == '/' || path.ptr[r->len] == '/';
}

static bool path_is(http_str path, const char *s) {
  return path.len == strlen(s) && memcmp(path.ptr, s, path.len) == 0;
}

/* Takes a token of the address's request bucket (ratelimit.h); false with
 * resp set to the 429 when there is none. */
static bool address_allowed(conn *c, const http_request *req, httpd_resp *resp) {
  if (path_is(req->path, "/health") || path_is(req->path, "/metrics")) return true;
  worker *w = conn_worker(c);
  uint8_t key[16];
  size_t kn = conn_peer_key(c, key);
  uint32_t wait = ratelimit_take(RL_REQUEST_ADDR, key, kn, loop_now(&w->loop));
  if (!wait) return true;
  httpd_resp_rate_limited(resp, wait, "too many requests from this address; retry later");
  return false;
}

static void drop_file(httpd_resp *resp) {
  if (resp->has_file) close(resp->file_fd);
  resp->has_file = false;
}

static void handle_request(conn *c, const http_request *req, bytes_t body) {
  worker *w = conn_worker(c);
  uint64_t t0 = now_us();
  buf_reset(&w->body);
  httpd_resp resp = {.status = 200, .content_type = "application/json", .body = &w->body};
  bool keep = req->keep_alive && !w->draining;
  bool head_only = req->method == HTTP_HEAD;
  /* Every request but the monitoring ones takes a token of its address's
   * bucket (ratelimit.h); authenticated ones also take their account's
   * (accounts_auth_or_refuse). */
  if (!address_allowed(c, req, &resp)) {
    write_response(c, &resp, keep, req->minor_version == 0, head_only);
    metrics_latency_us(now_us() - t0);
    return;
  }
  if (path_is(req->path, "/v1/ws")) {
    if (wsd_handshake(c, req, body, &resp) == 1) {
      metrics_http_status(101);
      metrics_latency_us(now_us() - t0);
      return;
    }
    write_response(c, &resp, keep, req->minor_version == 0, head_only);
    metrics_latency_us(now_us() - t0);
    return;
  }
  http_method m = head_only ? HTTP_GET : req->method;
  const route *found = NULL;
  bool path_known = false;
  for (size_t i = 0; i < nroutes && !found; i++) {
    if (!prefix_match(&routes[i], req->path)) continue;
    path_known = true;
    if (routes[i].method == m && routes[i].fn) found = &routes[i];
  }
  if (!found) {
    int st = path_known ? 405 : 404;
    httpd_resp_error(&resp, st, status_code_name(st),
                     st == 404 ? "no such resource" : "method not allowed here");
  } else {
    httpd_req hr = {.conn = c, .req = req, .body = body};
    int rc = found->fn(&hr, &resp);
    if (rc == HTTPD_DEFERRED && (c->spare & SPARE_DEFERRED)) {
      drop_file(&resp);
      return;
    }
    if (rc != 0 || resp.body->err) {
      drop_file(&resp);
      resp.n_headers = 0;
      httpd_resp_error(&resp, 500, "internal", "internal error");
    }
  }
  write_response(c, &resp, keep, req->minor_version == 0, head_only);
  metrics_latency_us(now_us() - t0);
}

static void send_continue(conn *c, const http_request *req) {
  if (!req->expect_continue || req->minor_version == 0) return;
  conn_io *io = conn_io_get(c);
  if (!io || io->continue_sent) return;
  static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
  buf_append(conn_out(c), cont, sizeof cont - 1);
  io->continue_sent = true;
}

/* ---- streamed bodies ---- */

static const route *stream_route(const http_request *req) {
  for (size_t i = 0; i < nroutes; i++)
    if (routes[i].stream && routes[i].method == req->method &&
        prefix_match(&routes[i], req->path))
      return &routes[i];
  return NULL;
}

/* The body has fully arrived: the route answers. */
static void stream_finish(conn *c) {
  conn_io *io = c->io;
  const httpd_stream *st = io->up;
  void *ctx = io->up_ctx;
  http_request req = io->up_req;
  io->up = NULL;
  io->up_ctx = NULL;
  io->continue_sent = false;
  worker *w = conn_worker(c);
  uint64_t t0 = now_us();
  buf_reset(&w->body);
  httpd_resp resp = {.status = 200, .content_type = "application/json", .body = &w->body};
  httpd_req hr = {.conn = c, .req = &req, .body = BYTES_NONE};
  int rc = st->end(ctx, &hr, &resp);
  if (rc == HTTPD_DEFERRED && (c->spare & SPARE_DEFERRED)) {
    drop_file(&resp);
    return;
  }
  if (rc != 0 || resp.body->err) {
    drop_file(&resp);
    resp.n_headers = 0;
    httpd_resp_error(&resp, 500, "internal", "internal error");
  }
  write_response(c, &resp, req.keep_alive && !w->draining, req.minor_version == 0, false);
  metrics_latency_us(now_us() - t0);
}

/* A streamed route's head: the route accepts the body or answers at once
 * (and the connection closes, the body unread). Returns false when the
 * connection is to close. */
static bool stream_start(conn *c, const http_request *req, const route *r) {
  worker *w = conn_worker(c);
  uint64_t t0 = now_us();
  buf_reset(&w->body);
  httpd_resp resp = {.status = 200, .content_type = "application/json", .body = &w->body};
  void *ctx = NULL;
  int rc = 1;
  if (!address_allowed(c, req, &resp)) {
    rc = 1;
  } else if (req->chunked || req->content_length < 0) {
    httpd_resp_error(&resp, 411, "length_required", "this call needs a Content-Length");
  } else {
    httpd_req hr = {.conn = c, .req = req, .body = BYTES_NONE};
    rc = r->stream->begin(&hr, (uint64_t)req->content_length, &resp, &ctx);
    if (rc < 0 || (rc == 0 && resp.body->err)) {
      if (rc == 0) r->stream->abort(ctx);
      rc = 1;
      resp.n_headers = 0;
      httpd_resp_error(&resp, 500, "internal", "internal error");
    }
  }
  conn_io *io = rc == 0 ? conn_io_get(c) : NULL;
  if (rc == 0 && !io) {
    r->stream->abort(ctx);
    conn_kill(c);
    return false;
  }
  if (rc != 0) {
    drop_file(&resp);
    write_response(c, &resp, false, req->minor_version == 0, false);
    metrics_latency_us(now_us() - t0);
    return false;
  }
  io->up = r->stream;
  io->up_ctx = ctx;
  io->up_left = (uint64_t)req->content_length;
  io->up_req = (http_request){.method = req->method,
                              .minor_version = req->minor_version,
                              .keep_alive = req->keep_alive,
                              .content_length = req->content_length};
  send_continue(c, req);
  conn_flags(c) |= CONN_F_REQ_TIMER;
  conn_timer(c, w->cfg->request_timeout_ms);
  if (io->up_left == 0) stream_finish(c);
  return true;
}

/* Hands body bytes to the streamed route; returns the bytes used (all of n
 * after a failure, when the rest is moot). */
static size_t stream_feed(conn *c, const uint8_t *p, size_t n) {
  conn_io *io = c->io;
  size_t k = n < io->up_left ? n : (size_t)io->up_left;
  if (k && io->up->data(io->up_ctx, p, k) != 0) {
    httpd_on_close(c);
    httpd_fail(c, 500, "internal", "the upload could not be stored");
    return n;
  }
  io->up_left -= k;
  /* Progress restarts the request timer: a stalled upload times out. */
  conn_timer(c, conn_worker(c)->cfg->request_timeout_ms);
  if (io->up_left == 0) stream_finish(c);
  return k;
}

void httpd_on_close(conn *c) {
  conn_io *io = c->io;
  if (!io || !io->up) return;
  const httpd_stream *st = io->up;
  void *ctx = io->up_ctx;
  io->up = NULL;
  io->up_ctx = NULL;
  st->abort(ctx);
}

static void framing_error(conn *c, int err) {
  int st = http_error_status(err);
  metrics_inc(M_ERR_PROTOCOL);
  log_debug("fd %d: HTTP %s", c->h.fd, http_error_name(err));
  httpd_fail(c, st, NULL, http_error_name(err));
}

size_t httpd_input(conn *c, uint8_t *p, size_t n) {
  worker *w = conn_worker(c);
  size_t off = 0;
  while (off < n && conn_state(c) == CONN_HTTP) {
    if (conn_flags(c) & (CONN_F_DEAD | CONN_F_CLOSE_AFTER)) return n; /* rest is moot */
    if (conn_pending(c) > w->cfg->max_write_buffer / 2 || (c->spare & SPARE_DEFERRED) ||
        conn_sending_file(c)) {
      conn_flags(c) |= CONN_F_PAUSED;
      break;
    }
    if (c->io && c->io->up) {
      off += stream_feed(c, p + off, n - off);
      continue;
    }
    char *base = (char *)p + off;
    size_t avail = n - off;
    http_request req;
    req.headers = w->hdrs;
    int h = http_parse_request(base, avail, &req, &w->hlim);
    if (h == HTTP_INCOMPLETE) break;
    if (h < 0) {
      framing_error(c, h);
      return n;
    }
    const route *sr = stream_route(&req);
    if (sr) {
      if (!stream_start(c, &req, sr)) return n;
      off += (size_t)h;
      continue;
    }
    size_t blen = 0, missing = 0, total = (size_t)h;
    int fr = http_body_need(&req, &w->hlim, avail - (size_t)h, &blen, &missing);
    if (fr < 0) {
      framing_error(c, fr);
      return n;
    }
    bytes_t body = BYTES_NONE;
    if (fr == HTTP_BODY_LENGTH) {
      if (missing) {
        send_continue(c, &req);
        break;
      }
      body = BYTES(base + h, blen);
      total += blen;
    } else if (fr == HTTP_BODY_CHUNKED) {
      /* Decoded in place: the body grows right after the head while the
       * raw chunks ahead of it are consumed; offsets are relative to the
       * request start, which stays at the front of the conn's buffer. */
      conn_io *io = conn_io_get(c);
      if (!io) {
        conn_kill(c);
        return n;
      }
      if (!io->ck_active) {
        http_chunked_init(&io->ck, &w->hlim);
        io->ck_active = true;
        io->ck_raw = (uint32_t)h;
        io->ck_body = 0;
      }
      size_t used = 0, outl = 0;
      size_t raw_avail = avail - io->ck_raw;
      int rc = http_chunked_decode(&io->ck, base + io->ck_raw, raw_avail,
                                   base + h + io->ck_body, raw_avail, &used, &outl);
      io->ck_body += (uint32_t)outl;
      io->ck_raw += (uint32_t)used;
      if (rc < 0) {
        io->ck_active = false;
        framing_error(c, rc);
        return n;
      }
      if (rc == HTTP_CHUNKED_MORE) {
        send_continue(c, &req);
        break;
      }
      body = BYTES(base + h, io->ck_body);
      total = io->ck_raw;
      io->ck_active = false;
    }
    if (c->io) c->io->continue_sent = false;
    handle_request(c, &req, body);
    off += total;
  }
  return off;
}

void httpd_defer(const httpd_req *req, httpd_ticket *t) {
  conn *c = req->conn;
  c->spare |= SPARE_DEFERRED;
  *t = (httpd_ticket){.ref = conn_ref_of(c),
                      .t0_us = now_us(),
                      .keep = req->req->keep_alive,
                      .http10 = req->req->minor_version == 0,
                      .head_only = req->req->method == HTTP_HEAD};
}

void httpd_resp_init(httpd_resp *resp) {
  worker *w = worker_self;
  buf_reset(&w->body);
  *resp =
      (httpd_resp){.status = 200, .content_type = "application/json", .body = &w->body};
}

void httpd_complete(const httpd_ticket *t, httpd_resp *resp) {
  conn *c = conn_ref_get(t->ref);
  if (!c || conn_state(c) != CONN_HTTP || !(c->spare & SPARE_DEFERRED)) {
    drop_file(resp);
    return;
  }
  c->spare &= ~SPARE_DEFERRED;
  worker *w = conn_worker(c);
  if (resp->body->err) {
    drop_file(resp);
    resp->n_headers = 0;
    httpd_resp_error(resp, 500, "internal", "internal error");
  }
  write_response(c, resp, t->keep && !w->draining, t->http10, t->head_only);
  metrics_latency_us(now_us() - t->t0_us);
  /* Parse what was held back: conn_settle resumes a paused conn. */
  conn_flags(c) |= CONN_F_PAUSED;
  conn_settle(c);
}

void httpd_arm_timer(conn *c) {
  worker *w = conn_worker(c);
  bool partial =
      (c->io && (c->io->in.len > 0 || c->io->up)) || (c->spare & SPARE_DEFERRED);
  if (partial) {
    if (!(conn_flags(c) & CONN_F_REQ_TIMER)) {
      conn_flags(c) |= CONN_F_REQ_TIMER;
      conn_timer(c, w->cfg->request_timeout_ms);
    }
    return;
  }
  conn_flags(c) &= (uint8_t)~CONN_F_REQ_TIMER;
  conn_timer(c, w->cfg->http_idle_timeout_ms);
}

void httpd_on_timeout(conn *c) {
  if (c->spare & SPARE_DEFERRED) {
    /* The answer is late; anything sent now would be out of order. */
    metrics_inc(M_ERR_TIMEOUT);
    log_warn("fd %d: deferred answer not ready within request_timeout", c->h.fd);
    conn_kill(c);
    return;
  }
  if (conn_flags(c) & CONN_F_REQ_TIMER) {
    metrics_inc(M_ERR_TIMEOUT);
    httpd_on_close(c); /* a stalled upload is dropped */
    if (c->io) c->io->ck_active = false;
    httpd_fail(c, 408, "timeout", "request not received in time");
    if (c->io) c->io->in.len = 0; /* framing is lost */
    return;
  }
  conn_kill(c); /* idle keep-alive: nothing to say */
}

void httpd_drain(conn *c) {
  if (conn_state(c) != CONN_HTTP) return;
  bool partial =
      (c->io && (c->io->in.len > 0 || c->io->up)) || (c->spare & SPARE_DEFERRED);
  if (partial) return; /* its response will carry Connection: close */
  if (conn_pending(c) > 0 || conn_sending_file(c))
    conn_flags(c) |= CONN_F_CLOSE_AFTER;
  else
    conn_kill(c);
}

/* ---- built-in routes ---- */

static int route_health(const httpd_req *r, httpd_resp *resp) {
  (void)r;
  static const char ok[] = "{\"status\":\"ok\"}";
  return buf_append(resp->body, ok, sizeof ok - 1);
}

static int route_metrics(const httpd_req *r, httpd_resp *resp) {
  (void)r;
  resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
  return metrics_render(resp->body);
}

static int route_echo(const httpd_req *r, httpd_resp *resp) {
  resp->content_type = "application/octet-stream";
  return buf_append(resp->body, r->body.ptr, r->body.len);
}

int httpd_builtin_routes(bool debug_routes) {
  int rc = httpd_route_add(HTTP_GET, "/health", route_health);
  if (rc == 0) rc = httpd_route_add(HTTP_GET, "/metrics", route_metrics);
  if (rc == 0 && debug_routes) rc = httpd_route_add(HTTP_POST, "/debug/echo", route_echo);
  return rc;
}
