/* WebSocket sessions on tesserad (RFC 6455, subprotocol "tessera.v1").
 *
 * Handshake: GET /v1/ws with Upgrade/Connection, Sec-WebSocket-Version 13
 * (else 426 naming version 13), a valid Sec-WebSocket-Key (else 400) and
 * "tessera.v1" among the offered subprotocols (else 400: a client that does
 * not speak our protocol must not get a session). No request body.
 *
 * Frames: client frames must be masked (else close 1002); fragmentation and
 * interleaved control frames are handled; text must be valid UTF-8 across
 * fragments (else close 1007); a message over max_ws_message closes with
 * 1009; binary messages close with 1003 (tessera frames are JSON text).
 *
 * Messages: each text message is one JSON object {"op": "...", "id": ...,
 * ...}. It is dispatched by op to the handler table and gets exactly one
 * reply, {"id":<id>,"ok":{...}} or {"id":<id>,"error":{"code":"...",
 * "message":"..."}}, where <id> is the request's id echoed verbatim (a
 * string or an integer). A message that is not JSON, is not an object, or
 * lacks a usable id gets an error reply with "id":null (codes bad_json,
 * bad_request) and the session stays open: garbage costs the sender one
 * reply, and keeping the session makes client bugs visible instead of
 * turning them into reconnect loops. Unknown op: error "unknown_op".
 *
 * Liveness: the server pings. A session silent for ws_ping_interval gets a
 * Ping; if nothing at all arrives within ws_pong_timeout after it, the
 * connection is dropped. Any frame from the client counts as life, so
 * clients need not ping (they may). Server-side pings keep the cost of
 * liveness on one timer per session and need no client cooperation.
 *
 * Authentication (when wsd_set_auth installed hooks; accounts.c does): a
 * session is authenticated once c->session is set, either at the upgrade
 * (Authorization: Bearer on the request; a bad token there is refused with
 * 401 before any session exists) or by a public op ("auth"). Until then
 * only ops registered with wsd_op_add_public run; any other known op gets
 * error "unauthorized" (an unknown op still gets "unknown_op"). A session
 * still unauthenticated ws_auth_timeout after the 101 is closed with 1008.
 * The deadline lives in conn.spare (free in CONN_WS: httpd uses it only in
 * CONN_HTTP), so the gate costs no memory per session. Before each
 * non-public op, and at each server ping, the authorize hook re-validates
 * the session; a revoked one is closed with 1008.
 *
 * Closing: the server answers a Close with a Close (echoing the code) and
 * then shuts the TCP connection; a Close we start (errors, SIGTERM with
 * 1001) waits close_timeout for the peer's Close.
 *
 * Threads: handlers, replies and hooks run on the session's loop thread.
 * Op tables and hooks are set before the workers start. */
#ifndef TSR_SERVER_WSD_H
#define TSR_SERVER_WSD_H

#include <stddef.h>
#include <stdint.h>

#include "proto/json.h"
#include "server/conn.h"
#include "server/httpd.h"

#define WSD_MAX_OPS 128
#define WSD_ID_MAX 128 /* bytes of the id as JSON text */
#define WSD_DEFERRED 1 /* handler result: the reply comes later (wsd_complete_*) */

/* One request being handled. Views point into the message and are valid
 * only during the handler call. */
typedef struct {
  conn *conn;
  const char *text; /* the whole message */
  size_t len;
  const json_token *toks; /* json_parse result; toks[0] is the root object */
  int ntoks;
  const char *id; /* the id as JSON text (string with quotes, or integer) */
  size_t id_len;
  json_writer *ok;      /* inside the "ok" object: write members only */
  const char *err_code; /* set via wsd_call_error */
  char err_msg[160];
} wsd_call;

/* Returns 0 (reply ok with what was written to call->ok), WSD_DEFERRED
 * (after wsd_defer), or a negative value (reply with the error set by
 * wsd_call_error, or "internal"). */
typedef int (*wsd_handler)(wsd_call *call);

/* Registers op (static storage). Returns 0, TSR_EINVAL or TSR_ELIMIT. */
int wsd_op_add(const char *op, wsd_handler fn);
/* Same, for an op allowed before the session is authenticated. */
int wsd_op_add_public(const char *op, wsd_handler fn);
/* Registers the built-in ops: "ping" -> ok {} (public). */
int wsd_builtin_ops(void);

/* Sets the error of call and returns -1, for `return wsd_call_error(...)`.
 * code is a stable snake_case word (static storage). */
int wsd_call_error(wsd_call *call, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A reply owed later: the session (weakly) and the request id. Plain value
 * owned by whoever completes it. */
typedef struct {
  conn_ref ref;
  uint8_t id_len;
  char id[WSD_ID_MAX];
} wsd_ticket;

/* Fills t for the current call; the handler then returns WSD_DEFERRED. */
void wsd_defer(const wsd_call *call, wsd_ticket *t);
/* Sends the deferred reply, on the session's loop thread. ok_json is one
 * JSON object; or, when err_code is not NULL, an error. Dropped silently
 * when the session has gone. */
void wsd_complete(const wsd_ticket *t, const char *ok_json, size_t ok_len,
                  const char *err_code, const char *err_msg);

/* authorize results */
#define WSD_AUTH_OK 0
#define WSD_AUTH_NONE 1    /* not authenticated: error "unauthorized" */
#define WSD_AUTH_REVOKED 2 /* no longer valid: error "unauthorized", close 1008 */

/* Session hooks for the accounts module (conn->session is theirs; a
 * session is authenticated when it is not NULL):
 *   upgrade: after every handshake check, before the 101; returns 0 to
 *     accept (it may set c->session) or nonzero with the refusal in resp;
 *   authorize: before each non-public op of an authenticated session and at
 *     each server ping; returns WSD_AUTH_*;
 *   limit: before each message is dispatched; returns 0, or the seconds to
 *     wait (the message is answered with error "rate_limited");
 *   close: exactly once when a session ends (also after a failed 101).
 * With authorize NULL (the default) sessions need no authentication. */
typedef struct {
  int (*upgrade)(conn *c, const http_request *req, httpd_resp *resp);
  int (*authorize)(conn *c);
  uint32_t (*limit)(conn *c);
  void (*close)(conn *c);
} wsd_auth_hooks;
void wsd_set_auth(const wsd_auth_hooks *h);

/* The session c just authenticated (c->session set by a public op): clears
 * the authentication deadline. */
void wsd_authenticated(conn *c);

/* Sends one server-initiated text message (a push). Returns 0, or TSR_ENOMEM
 * (the conn is then closing). The slow-reader limit applies. */
int wsd_send_text(conn *c, const char *text, size_t len);

/* Starts the closing handshake with code and reason (UTF-8, <= 123 bytes). */
void wsd_close(conn *c, uint16_t code, const char *reason);

/* Called by httpd for GET /v1/ws: returns 1 when the 101 response was
 * queued and the conn is now a session, 0 when resp holds the refusal. */
int wsd_handshake(conn *c, const http_request *req, bytes_t body, httpd_resp *resp);
/* Called by conn.c: parses frames from p[0..n), returns bytes used. */
size_t wsd_input(conn *c, uint8_t *p, size_t n);
/* Timer fired in CONN_WS: ping, or drop after an unanswered ping. */
void wsd_on_timeout(conn *c);
/* The session is ending (conn leaves CONN_WS/CONN_WS_CLOSING). */
void wsd_on_close(conn *c);

#endif
