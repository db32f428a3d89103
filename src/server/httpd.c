#include "server/httpd.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

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
} route;

/* conn.spare bit: an answer of this HTTP connection is deferred. */
#define SPARE_DEFERRED 1u

static route routes[HTTPD_MAX_ROUTES];
static size_t nroutes;

int httpd_route_add(http_method method, const char *prefix, httpd_handler fn) {
  if (!prefix || prefix[0] != '/' || !fn) return TSR_EINVAL;
  if (nroutes == HTTPD_MAX_ROUTES) return TSR_ELIMIT;
  routes[nroutes++] = (route){method, prefix, strlen(prefix), fn};
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
  if (http_write_response_head(out, resp->status, NULL, hdrs, n, (int64_t)resp->body->len,
                               keep) != 0) {
    out->len = mark;
    log_warn("cannot write response head for status %d", resp->status);
    conn_kill(c);
    return;
  }
  if (!head_only) buf_append(out, resp->body->ptr, resp->body->len);
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
  if (!path_is(req->path, "/health") && !path_is(req->path, "/metrics")) {
    uint8_t key[16];
    size_t kn = conn_peer_key(c, key);
    uint32_t wait = ratelimit_take(RL_REQUEST_ADDR, key, kn, loop_now(&w->loop));
    if (wait) {
      httpd_resp_rate_limited(&resp, wait,
                              "too many requests from this address; retry later");
      write_response(c, &resp, keep, req->minor_version == 0, head_only);
      metrics_latency_us(now_us() - t0);
      return;
    }
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
    if (routes[i].method == m) found = &routes[i];
  }
  if (!found) {
    int st = path_known ? 405 : 404;
    httpd_resp_error(&resp, st, status_code_name(st),
                     st == 404 ? "no such resource" : "method not allowed here");
  } else {
    httpd_req hr = {.conn = c, .req = req, .body = body};
    int rc = found->fn(&hr, &resp);
    if (rc == HTTPD_DEFERRED && (c->spare & SPARE_DEFERRED)) return;
    if (rc != 0 || resp.body->err) {
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
    if (conn_pending(c) > w->cfg->max_write_buffer / 2 || (c->spare & SPARE_DEFERRED)) {
      conn_flags(c) |= CONN_F_PAUSED;
      break;
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
  if (!c || conn_state(c) != CONN_HTTP || !(c->spare & SPARE_DEFERRED)) return;
  c->spare &= ~SPARE_DEFERRED;
  worker *w = conn_worker(c);
  if (resp->body->err) {
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
  bool partial = (c->io && c->io->in.len > 0) || (c->spare & SPARE_DEFERRED);
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
    if (c->io) c->io->ck_active = false;
    httpd_fail(c, 408, "timeout", "request not received in time");
    if (c->io) c->io->in.len = 0; /* framing is lost */
    return;
  }
  conn_kill(c); /* idle keep-alive: nothing to say */
}

void httpd_drain(conn *c) {
  if (conn_state(c) != CONN_HTTP) return;
  bool partial = (c->io && c->io->in.len > 0) || (c->spare & SPARE_DEFERRED);
  if (partial) return; /* its response will carry Connection: close */
  if (conn_pending(c) > 0)
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
