/* HTTP/1.1 on tesserad: request framing, the route table, built-in routes.
 *
 * Requests are parsed in place by proto/http.h, one after another from a
 * connection's input, and answered in order (pipelining). Bodies with
 * Content-Length or chunked coding are collected before the handler runs;
 * "Expect: 100-continue" gets its interim response when the body is
 * missing, or 413 straight away when it would be too large. Header, target
 * and body limits come from the configuration (431, 414, 413). A request
 * must arrive whole within request_timeout (else 408); an idle keep-alive
 * connection is closed after http_idle_timeout. While a connection's
 * pending output is over half of max_write_buffer, its further pipelined
 * requests stay unparsed (back-pressure) instead of growing the queue.
 *
 * Routes: method + path prefix -> handler. A prefix matches the path itself
 * and anything below it ("/v1/users" matches "/v1/users/7", not
 * "/v1/usersx"). Registered before the workers start (from main), read-only
 * afterwards, so every worker shares the table. HEAD is served by the GET
 * route without a body.
 *
 * Streamed bodies (uploads): a route added with httpd_route_add_stream gets
 * its body piece by piece as it arrives, never collected in memory, so its
 * size limit is the route's own, not max_body. It needs Content-Length
 * (411 otherwise). The route sees the head before any body byte and may
 * refuse it (e.g. 413 for a body over its limit, 401): the answer goes out
 * at once and the connection closes after it, its body unread. An accepted
 * upload must make progress: the request timer restarts at every piece, so
 * a body that stalls for request_timeout gets 408 and aborts the upload.
 *
 * File bodies (downloads): a handler may answer with a region of a file
 * (httpd_resp.file_*) instead of body; it is read in bounded pieces as the
 * socket drains (conn_send_file).
 *
 * Deferred answers: a handler that must wait (for a store commit, a
 * password hash) calls httpd_defer, keeps the ticket and returns
 * HTTPD_DEFERRED; later, on the same loop thread, httpd_complete sends the
 * answer. Until then the connection parses nothing more (its pipelined
 * requests wait in its input buffer, and it is not read), so answers stay in
 * request order. If the connection closes meanwhile, the completion is
 * dropped. A deferred request counts as a request in progress: it is held
 * to request_timeout (then the connection is closed, there is no way to
 * answer in order) and draining lets it finish (answer with "Connection:
 * close").
 *
 * Threads: everything runs on the connection's loop thread. */
#ifndef TSR_SERVER_HTTPD_H
#define TSR_SERVER_HTTPD_H

#include <stddef.h>
#include <stdint.h>

#include "common/bytes.h"
#include "proto/http.h"
#include "server/conn.h"

#define HTTPD_MAX_ROUTES 128
#define HTTPD_MAX_RESP_HEADERS 8

/* What a handler sees. Views point into the connection's input and are
 * valid only during the call. */
typedef struct {
  conn *conn;
  const http_request *req;
  bytes_t body; /* decoded body (empty when none) */
} httpd_req;

/* What a handler fills. status defaults to 200 and content_type to
 * "application/json"; body is a worker scratch buffer already reset. Header
 * names and values must outlive the call (static strings) or live in
 * hdr_store. */
typedef struct {
  int status;
  const char *content_type;
  buf_t *body;
  http_header headers[HTTPD_MAX_RESP_HEADERS];
  size_t n_headers;
  char hdr_store[256];
  /* With has_file the body is file_len bytes of file_fd from file_off
   * instead of `body`; httpd owns file_fd once the handler returns (it is
   * closed on every path, also for HEAD and errors). */
  bool has_file;
  int file_fd;
  uint64_t file_off, file_len;
} httpd_resp;

#define HTTPD_DEFERRED 1 /* handler result: the answer comes via httpd_complete */

/* Returns 0 when resp is the answer, HTTPD_DEFERRED after httpd_defer (resp
 * is then ignored), or a negative value for a 500. */
typedef int (*httpd_handler)(const httpd_req *req, httpd_resp *resp);

/* An answer owed later. Plain value owned by whoever completes it. */
typedef struct {
  conn_ref ref;   /* weak: the connection may be gone */
  uint64_t t0_us; /* for the latency histogram */
  bool keep;      /* the request allowed keep-alive */
  bool http10;
  bool head_only;
} httpd_ticket;

/* Fills t for the request being handled; the handler then returns
 * HTTPD_DEFERRED. Call at most once per request. */
void httpd_defer(const httpd_req *req, httpd_ticket *t);
/* Prepares resp for httpd_complete: status 200, JSON, the worker's scratch
 * body (reset). Loop thread only; valid until the next request is handled. */
void httpd_resp_init(httpd_resp *resp);
/* Sends the deferred answer and resumes the connection's input. Dropped
 * when the connection is gone. Loop thread only, never from inside a
 * handler of the same connection. */
void httpd_complete(const httpd_ticket *t, httpd_resp *resp);

/* Whether r's path (without the query) is exactly s. Routes match by
 * prefix; a handler of one exact path checks with this. */
bool httpd_path_is(const httpd_req *r, const char *s);

/* Adds a route. Returns 0, TSR_ELIMIT (table full) or TSR_EINVAL. Call
 * before the workers start. prefix must be static storage. */
int httpd_route_add(http_method method, const char *prefix, httpd_handler fn);

/* A route whose request body is streamed (see above). The callbacks run on
 * the loop thread; ctx is the route's per-request state. */
typedef struct httpd_stream {
  /* The head arrived, no body byte yet; length is its Content-Length.
   * Returns 0 with *ctx set to take the body, nonzero with resp set to
   * refuse it (negative: a 500). req's views are valid during the call. */
  int (*begin)(const httpd_req *req, uint64_t length, httpd_resp *resp, void **ctx);
  /* The next body bytes (in order, length bytes in all). Nonzero: the
   * upload failed (500, connection closed); abort follows. */
  int (*data)(void *ctx, const uint8_t *p, size_t n);
  /* The whole body arrived: answer like a handler (0, HTTPD_DEFERRED or
   * negative). ctx belongs to end from here on. req carries method,
   * version and keep-alive only (no path, headers or body). */
  int (*end)(void *ctx, const httpd_req *req, httpd_resp *resp);
  /* The connection closed or timed out before the body's end, or data
   * failed: release ctx and whatever it made. */
  void (*abort)(void *ctx);
} httpd_stream;

/* Adds a streamed-body route (method + prefix as httpd_route_add). s must
 * be static storage. */
int httpd_route_add_stream(http_method method, const char *prefix, const httpd_stream *s);

/* Registers /health and /metrics (and /debug/echo when enabled). */
int httpd_builtin_routes(bool debug_routes);

/* Sets resp to a JSON error {"error":{"code":code,"message":msg}}. */
void httpd_resp_error(httpd_resp *resp, int status, const char *code, const char *msg);
/* Appends a header to resp (strings must outlive the call). */
void httpd_resp_header(httpd_resp *resp, const char *name, const char *value);
/* Sets resp to 429 "rate_limited" with msg and Retry-After: retry seconds
 * (kept in resp->hdr_store). */
void httpd_resp_rate_limited(httpd_resp *resp, uint32_t retry, const char *msg);

/* Called by conn.c: parses and answers requests from p[0..n) and returns
 * the bytes used (a partial request stays for later). */
size_t httpd_input(conn *c, uint8_t *p, size_t n);
/* Timer fired in the HTTP state: 408 for a partial request, or close. */
void httpd_on_timeout(conn *c);
/* Re-arms the request or idle timer after input was processed. */
void httpd_arm_timer(conn *c);
/* Writes a whole response with a JSON error body and marks the conn to
 * close after it (used for framing errors, where the rest is unreadable). */
void httpd_fail(conn *c, int status, const char *code, const char *msg);

/* Called by conn.c when a conn closes during a streamed upload: aborts it. */
void httpd_on_close(conn *c);

/* Draining: a conn with no partial request is closed now; others get
 * "Connection: close" on their next response. */
void httpd_drain(conn *c);

#endif
