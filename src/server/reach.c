/* Reachability and message requests: see reach.h and docs/protocol.md. */
#include "server/reach.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto/base64.h"
#include "proto/json.h"
#include "server/blocks.h"
#include "server/graphs.h"
#include "server/log.h"
#include "server/worker.h"
#include "tessera/error.h"

#define REQ_ID_BYTES 16
#define DAY_S 86400

typedef enum { RULE_EVERYONE, RULE_GRAPH, RULE_NOBODY, RULE_COUNT } rule_id;
static const char *const rule_names[RULE_COUNT] = {"everyone", "graph", "nobody"};

static int rule_parse(const char *s) {
  for (int i = 0; i < RULE_COUNT; i++)
    if (strcmp(s, rule_names[i]) == 0) return i;
  return -1;
}

static const char *own_profile_msg(app_id app) {
  return app == APP_CHAT     ? "create your chat profile first"
         : app == APP_SOCIAL ? "create your social profile first"
                             : "create your messenger profile first";
}

/* account's rule for senders from `from` to its profile in app: a rule_id
 * (the default when unset) or a store error. */
static int rule_get(store_conn *c, app_id app, app_id from,
                    const uint8_t acc[ACCOUNTS_ID_BYTES]) {
  store_stmt *s;
  int rc = store_conn_prepare(c,
                              "SELECT rule FROM reach_rules WHERE account_id = ? AND"
                              " app = ? AND from_app = ?",
                              &s);
  if (rc) return rc;
  store_bind_blob(s, 1, BYTES(acc, ACCOUNTS_ID_BYTES));
  store_bind_str(s, 2, app_name(app));
  store_bind_str(s, 3, app_name(from));
  rc = store_step(s);
  int out = RULE_GRAPH;
  if (rc == STORE_ROW) {
    size_t n = 0;
    const char *t = store_col_text(s, 0, &n);
    char buf[16];
    snprintf(buf, sizeof buf, "%.*s", (int)(n < 15 ? n : 15), t);
    int r = rule_parse(buf);
    out = r < 0 ? RULE_NOBODY : r; /* unknown: fail closed */
  }
  store_stmt_reset(s);
  return rc < 0 ? rc : out;
}

/* 1 when recipient accepted a request of sender's for this direction. */
static int accepted(store_conn *c, app_id from, app_id to,
                    const uint8_t sender[ACCOUNTS_ID_BYTES],
                    const uint8_t recipient[ACCOUNTS_ID_BYTES]) {
  store_stmt *s;
  int rc = store_conn_prepare(c,
                              "SELECT 1 FROM reach_accepted WHERE sender_id = ? AND"
                              " recipient_id = ? AND from_app = ? AND to_app = ?",
                              &s);
  if (rc) return rc;
  store_bind_blob(s, 1, BYTES(sender, ACCOUNTS_ID_BYTES));
  store_bind_blob(s, 2, BYTES(recipient, ACCOUNTS_ID_BYTES));
  store_bind_str(s, 3, app_name(from));
  store_bind_str(s, 4, app_name(to));
  rc = store_step(s);
  store_stmt_reset(s);
  return rc == STORE_ROW ? 1 : rc;
}

enum { D_REQUEST = 0, D_ALLOWED = 1, D_NOBODY = 2 };

/* The rule's verdict (profiles and blocks already checked): D_* or a store
 * error. */
static int decide(store_conn *c, app_id from, app_id to,
                  const uint8_t sender[ACCOUNTS_ID_BYTES],
                  const uint8_t recipient[ACCOUNTS_ID_BYTES]) {
  int r = rule_get(c, to, from, recipient);
  if (r < 0) return r;
  if (r == RULE_NOBODY) return D_NOBODY;
  if (r == RULE_EVERYONE) return D_ALLOWED;
  if (graph_in(c, to, recipient, sender)) return D_ALLOWED;
  int a = accepted(c, from, to, sender, recipient);
  if (a < 0) return a;
  return a ? D_ALLOWED : D_REQUEST;
}

bool reach_allowed(store_conn *c, app_id from_app, app_id to_app,
                   const uint8_t sender[ACCOUNTS_ID_BYTES],
                   const uint8_t recipient[ACCOUNTS_ID_BYTES]) {
  if (from_app >= APP_COUNT || to_app >= APP_COUNT ||
      memcmp(sender, recipient, ACCOUNTS_ID_BYTES) == 0)
    return false;
  if (!c && store_reader_get(worker_self->store, &c) != 0) return false;
  if (blocks_between(c, sender, recipient)) return false;
  if (profiles_exists(c, from_app, sender) != 1 ||
      profiles_exists(c, to_app, recipient) != 1)
    return false;
  return decide(c, from_app, to_app, sender, recipient) == D_ALLOWED;
}

/* ---- deferred writes -------------------------------------------------- */

typedef struct reach_op reach_op;
typedef int (*rop_run_fn)(store_conn *c, reach_op *o);
typedef void (*rop_write_fn)(reach_op *o, json_writer *jw);

/* Like profiles.h's app_op, plus a Retry-After for the daily cap. */
struct reach_op {
  store_job job;
  httpd_ticket ticket;
  rop_run_fn run;
  rop_write_fn write_ok;
  int64_t now;
  uint8_t me[ACCOUNTS_ID_BYTES], other[ACCOUNTS_ID_BYTES];
  uint8_t id[REQ_ID_BYTES];
  app_id app, from, to;
  char key[APP_SEG_BYTES];
  int fail_status;
  const char *fail_code, *fail_msg;
  int64_t retry_after; /* > 0: sent with a refusal */
  bool allowed;
  const char *state;
  int set[APP_COUNT];   /* PUT: rule_id to store, or -1 */
  int rules[APP_COUNT]; /* PUT: the rules after it */
};

static int refuse(reach_op *o, int status, const char *code, const char *msg) {
  o->fail_status = status;
  o->fail_code = code;
  o->fail_msg = msg;
  return TSR_ESTATE;
}

static void rop_done(store_job *job, int status) {
  reach_op *o = job->arg;
  httpd_resp resp;
  httpd_resp_init(&resp);
  if (status == 0) {
    json_writer jw;
    app_answer_begin(&jw, &resp, o->state);
    if (o->write_ok) o->write_ok(o, &jw);
    app_answer_end(&jw, &resp);
  } else if (o->fail_status) {
    httpd_resp_error(&resp, o->fail_status, o->fail_code, o->fail_msg);
    if (o->retry_after > 0) {
      snprintf(resp.hdr_store, sizeof resp.hdr_store, "%lld", (long long)o->retry_after);
      httpd_resp_header(&resp, "Retry-After", resp.hdr_store);
    }
  } else {
    log_warn("reach job failed: %s", tsr_errname(status));
    httpd_resp_error(&resp, 500, "internal", "internal error");
  }
  httpd_complete(&o->ticket, &resp);
  free(o);
}

static int rop_run(store_conn *c, void *arg) {
  reach_op *o = arg;
  o->fail_status = 0;
  o->retry_after = 0;
  return o->run(c, o);
}

static reach_op *rop_new(const uint8_t me[ACCOUNTS_ID_BYTES]) {
  reach_op *o = calloc(1, sizeof *o);
  if (o) {
    o->now = (int64_t)time(NULL);
    memcpy(o->me, me, ACCOUNTS_ID_BYTES);
  }
  return o;
}

static int rop_start(const httpd_req *r, httpd_resp *resp, reach_op *o) {
  o->job = (store_job){.run = rop_run, .done = rop_done, .arg = o};
  if (store_submit(worker_self->sc, &o->job) != 0) {
    free(o);
    return app_error(resp, 503, "busy", "server busy; retry later");
  }
  httpd_defer(r, &o->ticket);
  return HTTPD_DEFERRED;
}

/* ---- GET/PUT /v1/apps/{app}/reachability ------------------------------ */

static void write_rules(json_writer *jw, const int rules[APP_COUNT]) {
  json_write_key(jw, "from");
  json_write_object_begin(jw);
  for (int i = 0; i < APP_COUNT; i++) {
    json_write_key(jw, app_name((app_id)i));
    json_write_string(jw, rule_names[rules[i]]);
  }
  json_write_object_end(jw);
}

static int read_rules(store_conn *c, app_id app, const uint8_t me[ACCOUNTS_ID_BYTES],
                      int rules[APP_COUNT]) {
  for (int i = 0; i < APP_COUNT; i++) {
    int r = rule_get(c, app, (app_id)i, me);
    if (r < 0) return r;
    rules[i] = r;
  }
  return 0;
}

static void write_put(reach_op *o, json_writer *jw) { write_rules(jw, o->rules); }

static int run_put_rules(store_conn *c, reach_op *o) {
  int rc = profiles_exists(c, o->app, o->me);
  if (rc < 0) return rc;
  if (rc == 0) return refuse(o, 403, "forbidden", own_profile_msg(o->app));
  store_stmt *s;
  for (int i = 0; i < APP_COUNT; i++) {
    if (o->set[i] < 0) continue;
    if ((rc =
             store_conn_prepare(c,
                                "INSERT INTO reach_rules(account_id, app, from_app, rule,"
                                " updated_at) VALUES(?,?,?,?,?) ON CONFLICT(account_id,"
                                " app, from_app) DO UPDATE SET rule = excluded.rule,"
                                " updated_at = excluded.updated_at",
                                &s)) != 0)
      return rc;
    store_bind_blob(s, 1, BYTES(o->me, ACCOUNTS_ID_BYTES));
    store_bind_str(s, 2, app_name(o->app));
    store_bind_str(s, 3, app_name((app_id)i));
    store_bind_str(s, 4, rule_names[o->set[i]]);
    store_bind_int64(s, 5, o->now);
    if ((rc = store_stmt_run(s)) != 0) return rc;
  }
  return read_rules(c, o->app, o->me, o->rules);
}

static const char PUT_ERR[] =
    "body must be {\"from\": {app: \"everyone\"|\"graph\"|\"nobody\", …}} with apps"
    " chat, social, messenger";

static int h_reachability(const httpd_req *r, httpd_resp *resp, app_id app,
                          const uint8_t me[ACCOUNTS_ID_BYTES]) {
  http_method m = r->req->method == HTTP_HEAD ? HTTP_GET : r->req->method;
  if (m == HTTP_GET) {
    store_conn *c;
    int rules[APP_COUNT];
    int rc = store_reader_get(worker_self->store, &c);
    if (rc == 0) rc = profiles_exists(c, app, me);
    if (rc < 0) return -1;
    if (rc == 0) return app_error(resp, 403, "forbidden", own_profile_msg(app));
    if (read_rules(c, app, me, rules) != 0) return -1;
    json_writer jw;
    json_writer_init(&jw, resp->body, 8);
    json_write_object_begin(&jw);
    write_rules(&jw, rules);
    json_write_object_end(&jw);
    return json_writer_finish(&jw) == 0 ? 0 : -1;
  }
  app_body b;
  int f;
  if (!app_body_parse(r, &b) || (f = json_object_get(b.buf, b.t, 0, "from")) < 0 ||
      b.t[f].type != JSON_OBJECT)
    return app_error(resp, 400, "bad_request", PUT_ERR);
  int set[APP_COUNT] = {-1, -1, -1};
  for (int k = json_first_child(b.t, f); k >= 0;) {
    int v = json_next_sibling(b.t, f, k);
    char name[16], val[16];
    if (v < 0 || json_get_string(b.buf, b.t, k, name, sizeof name, NULL, 0) != 0 ||
        b.t[v].type != JSON_STRING ||
        json_get_string(b.buf, b.t, v, val, sizeof val, NULL, 0) != 0)
      return app_error(resp, 400, "bad_request", PUT_ERR);
    int a = app_parse(name), rl = rule_parse(val);
    if (a < 0 || rl < 0) return app_error(resp, 400, "bad_request", PUT_ERR);
    set[a] = rl;
    k = json_next_sibling(b.t, f, v);
  }
  reach_op *o = rop_new(me);
  if (!o) return app_error(resp, 503, "busy", "server busy; retry later");
  o->app = app;
  memcpy(o->set, set, sizeof set);
  o->run = run_put_rules;
  o->write_ok = write_put;
  return rop_start(r, resp, o);
}

/* ---- POST /v1/reach --------------------------------------------------- */

/* Counts one new request against the sender's daily cap, or refuses. */
static int take_daily(store_conn *c, reach_op *o) {
  int64_t day = o->now / DAY_S;
  store_stmt *s;
  int rc = store_conn_prepare(
      c, "DELETE FROM reach_daily WHERE sender_id = ? AND day < ?", &s);
  if (rc) return rc;
  store_bind_blob(s, 1, BYTES(o->me, ACCOUNTS_ID_BYTES));
  store_bind_int64(s, 2, day);
  if ((rc = store_stmt_run(s)) != 0) return rc;
  if ((rc = store_conn_prepare(
           c, "SELECT n FROM reach_daily WHERE sender_id = ? AND day = ?", &s)) != 0)
    return rc;
  store_bind_blob(s, 1, BYTES(o->me, ACCOUNTS_ID_BYTES));
  store_bind_int64(s, 2, day);
  rc = store_step(s);
  int64_t n = rc == STORE_ROW ? store_col_int64(s, 0) : 0;
  store_stmt_reset(s);
  if (rc < 0) return rc;
  if (n >= REACH_DAILY_CAP) {
    o->retry_after = (day + 1) * DAY_S - o->now;
    return refuse(o, 429, "rate_limited",
                  "too many message requests today; retry tomorrow");
  }
  if ((rc = store_conn_prepare(
           c,
           "INSERT INTO reach_daily(sender_id, day, n) VALUES(?,?,1)"
           " ON CONFLICT(sender_id, day) DO UPDATE SET n = reach_daily.n + 1",
           &s)) != 0)
    return rc;
  store_bind_blob(s, 1, BYTES(o->me, ACCOUNTS_ID_BYTES));
  store_bind_int64(s, 2, day);
  return store_stmt_run(s);
}

static int run_reach(store_conn *c, reach_op *o) {
  int rc = profiles_exists(c, o->from, o->me);
  if (rc < 0) return rc;
  if (rc == 0) return refuse(o, 403, "forbidden", own_profile_msg(o->from));
  rc = profiles_resolve(c, o->to, o->key, o->other);
  if (rc == TSR_ENOTFOUND) return refuse(o, 404, "not_found", "no such profile");
  if (rc) return rc;
  if (memcmp(o->me, o->other, ACCOUNTS_ID_BYTES) == 0)
    return refuse(o, 400, "bad_request", "that is your own profile");
  if (blocks_between(c, o->me, o->other))
    return refuse(o, 404, "not_found", "no such profile");
  int d = decide(c, o->from, o->to, o->me, o->other);
  if (d < 0) return d;
  if (d == D_NOBODY) return refuse(o, 403, "forbidden", "not reachable");
  if (d == D_ALLOWED) {
    o->allowed = true;
    return 0;
  }
  store_stmt *s;
  if ((rc = store_conn_prepare(c,
                               "SELECT id, state, updated_at FROM reach_requests WHERE"
                               " sender_id = ? AND recipient_id = ? AND from_app = ? AND"
                               " to_app = ?",
                               &s)) != 0)
    return rc;
  store_bind_blob(s, 1, BYTES(o->me, ACCOUNTS_ID_BYTES));
  store_bind_blob(s, 2, BYTES(o->other, ACCOUNTS_ID_BYTES));
  store_bind_str(s, 3, app_name(o->from));
  store_bind_str(s, 4, app_name(o->to));
  rc = store_step(s);
  bool found = false, quiet = false;
  if (rc == STORE_ROW) {
    bytes_t id = store_col_blob(s, 0);
    size_t n = 0;
    const char *st = store_col_text(s, 1, &n);
    found = id.len == REQ_ID_BYTES;
    if (found) memcpy(o->id, id.ptr, REQ_ID_BYTES);
    quiet = (n == 7 && memcmp(st, "pending", 7) == 0) ||
            o->now - store_col_int64(s, 2) < REACH_DECLINE_QUIET_S;
  }
  store_stmt_reset(s);
  if (rc < 0) return rc;
  /* Pending, or declined less than 30 days ago: the same request, silently. */
  if (found && quiet) return 0;
  if ((rc = take_daily(c, o)) != 0) return rc;
  if (found) {
    /* Declined long ago: pending again, notified as new. */
    if ((rc = store_conn_prepare(
             c,
             "UPDATE reach_requests SET state = 'pending', created_at = ?,"
             " updated_at = ? WHERE id = ?",
             &s)) != 0)
      return rc;
    store_bind_int64(s, 1, o->now);
    store_bind_int64(s, 2, o->now);
    store_bind_blob(s, 3, BYTES(o->id, REQ_ID_BYTES));
    return store_stmt_run(s);
  }
  randombytes_buf(o->id, sizeof o->id);
  if ((rc = store_conn_prepare(c,
                               "INSERT INTO reach_requests(id, sender_id, recipient_id,"
                               " from_app, to_app, state, created_at, updated_at)"
                               " VALUES(?,?,?,?,?,'pending',?,?)",
                               &s)) != 0)
    return rc;
  store_bind_blob(s, 1, BYTES(o->id, REQ_ID_BYTES));
  store_bind_blob(s, 2, BYTES(o->me, ACCOUNTS_ID_BYTES));
  store_bind_blob(s, 3, BYTES(o->other, ACCOUNTS_ID_BYTES));
  store_bind_str(s, 4, app_name(o->from));
  store_bind_str(s, 5, app_name(o->to));
  store_bind_int64(s, 6, o->now);
  store_bind_int64(s, 7, o->now);
  return store_stmt_run(s);
}

static void write_reach(reach_op *o, json_writer *jw) {
  json_write_key(jw, "allowed");
  json_write_bool(jw, o->allowed);
  if (!o->allowed) {
    json_write_key(jw, "request_id");
    json_write_base64url(jw, BYTES(o->id, REQ_ID_BYTES));
  }
}

static const char REACH_ERR[] =
    "body must be {\"from_app\": app, \"to_app\": app, \"to\": number, handle or"
    " username}, apps chat, social or messenger";

static int h_reach(const httpd_req *r, httpd_resp *resp,
                   const uint8_t me[ACCOUNTS_ID_BYTES]) {
  app_body b;
  char fa[16], ta[16], to[APP_SEG_BYTES];
  if (!app_body_parse(r, &b) || app_body_str(&b, 0, "from_app", fa, sizeof fa) != 1 ||
      app_body_str(&b, 0, "to_app", ta, sizeof ta) != 1 ||
      app_body_str(&b, 0, "to", to, sizeof to) != 1)
    return app_error(resp, 400, "bad_request", REACH_ERR);
  int from = app_parse(fa), dest = app_parse(ta);
  if (from < 0 || dest < 0) return app_error(resp, 400, "bad_request", REACH_ERR);
  reach_op *o = rop_new(me);
  if (!o) return app_error(resp, 503, "busy", "server busy; retry later");
  o->from = (app_id)from;
  o->to = (app_id)dest;
  if (!profiles_key_normalize(o->to, to, o->key)) {
    free(o);
    return app_error(resp, 400, "bad_request",
                     dest == APP_CHAT ? "to must be an E.164 number"
                                      : "to must be a valid handle or username");
  }
  o->run = run_reach;
  o->write_ok = write_reach;
  return rop_start(r, resp, o);
}

/* ---- /v1/requests ----------------------------------------------------- */

static int list_side(json_writer *jw, store_conn *c, const uint8_t me[ACCOUNTS_ID_BYTES],
                     bool incoming) {
  store_stmt *s;
  int rc = store_conn_prepare(
      c,
      incoming
          ? "SELECT r.id, r.from_app, r.to_app, r.created_at, p.name,"
            " CASE WHEN r.from_app = 'chat' THEN a.phone ELSE p.handle END"
            " FROM reach_requests r JOIN profiles p ON p.account_id = r.sender_id"
            " AND p.app = r.from_app JOIN accounts a ON a.id = r.sender_id"
            " JOIN profiles q ON q.account_id = r.recipient_id AND q.app = r.to_app"
            " WHERE r.recipient_id = ? AND r.state = 'pending' AND NOT EXISTS (SELECT 1"
            " FROM blocks b WHERE (b.blocker_id = ? AND b.blocked_id = r.sender_id) OR"
            " (b.blocker_id = r.sender_id AND b.blocked_id = ?))"
            " ORDER BY r.created_at, r.id"
          : "SELECT r.id, r.from_app, r.to_app, r.created_at, p.name,"
            " CASE WHEN r.to_app = 'chat' THEN a.phone ELSE p.handle END"
            " FROM reach_requests r JOIN profiles p ON p.account_id = r.recipient_id"
            " AND p.app = r.to_app JOIN accounts a ON a.id = r.recipient_id"
            " JOIN profiles q ON q.account_id = r.sender_id AND q.app = r.from_app"
            " WHERE r.sender_id = ? AND NOT EXISTS (SELECT 1"
            " FROM blocks b WHERE (b.blocker_id = ? AND b.blocked_id = r.recipient_id) OR"
            " (b.blocker_id = r.recipient_id AND b.blocked_id = ?))"
            " ORDER BY r.created_at, r.id",
      &s);
  if (rc) return rc;
  for (int i = 1; i <= 3; i++) store_bind_blob(s, i, BYTES(me, ACCOUNTS_ID_BYTES));
  json_write_key(jw, incoming ? "incoming" : "outgoing");
  json_write_array_begin(jw);
  while ((rc = store_step(s)) == STORE_ROW) {
    size_t fl = 0, tl = 0, nl = 0, kl = 0;
    bytes_t id = store_col_blob(s, 0);
    const char *f = store_col_text(s, 1, &fl), *t = store_col_text(s, 2, &tl);
    const char *name = store_col_text(s, 4, &nl), *key = store_col_text(s, 5, &kl);
    json_write_object_begin(jw);
    json_write_key(jw, "id");
    json_write_base64url(jw, id);
    json_write_key(jw, "from_app");
    json_write_string_n(jw, f, fl);
    json_write_key(jw, "to_app");
    json_write_string_n(jw, t, tl);
    json_write_key(jw, incoming ? "from" : "to");
    json_write_string_n(jw, key, kl);
    json_write_key(jw, "name");
    json_write_string_n(jw, name, nl);
    /* The sender is never told about a decline. */
    json_write_key(jw, "state");
    json_write_string(jw, "pending");
    json_write_key(jw, "since");
    json_write_i64(jw, store_col_int64(s, 3));
    json_write_object_end(jw);
  }
  store_stmt_reset(s);
  json_write_array_end(jw);
  return rc < 0 ? rc : 0;
}

static int list_requests(httpd_resp *resp, const uint8_t me[ACCOUNTS_ID_BYTES]) {
  store_conn *c;
  if (store_reader_get(worker_self->store, &c) != 0) return -1;
  json_writer jw;
  json_writer_init(&jw, resp->body, 8);
  json_write_object_begin(&jw);
  if (list_side(&jw, c, me, true) != 0 || list_side(&jw, c, me, false) != 0) return -1;
  json_write_object_end(&jw);
  return json_writer_finish(&jw) == 0 ? 0 : -1;
}

enum { ACT_ACCEPT, ACT_DECLINE, ACT_BLOCK };

/* o->me blocks o->other, named by o->key in app: the row POST /v1/blocks
 * writes, and the edges removed with graphs_remove_between as blocks.c
 * does. blocks.h exports no "add a block" function yet; this belongs there
 * (blocks_add) once blocks.c may be changed. */
static int run_answer(store_conn *c, reach_op *o, int act) {
  store_stmt *s;
  int rc = store_conn_prepare(c,
                              "SELECT sender_id, from_app, to_app FROM reach_requests"
                              " WHERE id = ? AND recipient_id = ? AND state = 'pending'",
                              &s);
  if (rc) return rc;
  store_bind_blob(s, 1, BYTES(o->id, REQ_ID_BYTES));
  store_bind_blob(s, 2, BYTES(o->me, ACCOUNTS_ID_BYTES));
  rc = store_step(s);
  int from = -1, to = -1;
  if (rc == STORE_ROW) {
    bytes_t sid = store_col_blob(s, 0);
    char buf[16];
    size_t n = 0;
    const char *t = store_col_text(s, 1, &n);
    snprintf(buf, sizeof buf, "%.*s", (int)(n < 15 ? n : 15), t);
    from = app_parse(buf);
    t = store_col_text(s, 2, &n);
    snprintf(buf, sizeof buf, "%.*s", (int)(n < 15 ? n : 15), t);
    to = app_parse(buf);
    if (sid.len == ACCOUNTS_ID_BYTES)
      memcpy(o->other, sid.ptr, ACCOUNTS_ID_BYTES);
    else
      from = -1;
  }
  store_stmt_reset(s);
  if (rc < 0) return rc;
  if (rc != STORE_ROW || from < 0 || to < 0 || blocks_between(c, o->me, o->other))
    return refuse(o, 404, "not_found", "no such request");
  if (act == ACT_DECLINE) {
    if ((rc = store_conn_prepare(c,
                                 "UPDATE reach_requests SET state = 'declined',"
                                 " updated_at = ? WHERE id = ?",
                                 &s)) != 0)
      return rc;
    store_bind_int64(s, 1, o->now);
    store_bind_blob(s, 2, BYTES(o->id, REQ_ID_BYTES));
    o->state = "declined";
    return store_stmt_run(s);
  }
  if (act == ACT_ACCEPT) {
    if ((rc = store_conn_prepare(c,
                                 "INSERT INTO reach_accepted(sender_id, recipient_id,"
                                 " from_app, to_app, created_at) VALUES(?,?,?,?,?)"
                                 " ON CONFLICT DO NOTHING",
                                 &s)) != 0)
      return rc;
    store_bind_blob(s, 1, BYTES(o->other, ACCOUNTS_ID_BYTES));
    store_bind_blob(s, 2, BYTES(o->me, ACCOUNTS_ID_BYTES));
    store_bind_str(s, 3, app_name((app_id)from));
    store_bind_str(s, 4, app_name((app_id)to));
    store_bind_int64(s, 5, o->now);
    if ((rc = store_stmt_run(s)) != 0) return rc;
    if ((rc = store_conn_prepare(c, "DELETE FROM reach_requests WHERE id = ?", &s)) != 0)
      return rc;
    store_bind_blob(s, 1, BYTES(o->id, REQ_ID_BYTES));
    o->state = "accepted";
    return store_stmt_run(s);
  }
  /* Block: named by the sender's key in from_app, as POST /v1/blocks would
   * record it. */
  if ((rc = store_conn_prepare(
           c,
           "SELECT CASE WHEN p.app = 'chat' THEN a.phone ELSE p.handle"
           " END FROM profiles p JOIN accounts a ON a.id = p.account_id"
           " WHERE p.account_id = ? AND p.app = ?",
           &s)) != 0)
    return rc;
  store_bind_blob(s, 1, BYTES(o->other, ACCOUNTS_ID_BYTES));
  store_bind_str(s, 2, app_name((app_id)from));
  rc = store_step(s);
  if (rc == STORE_ROW) {
    size_t n = 0;
    const char *k = store_col_text(s, 0, &n);
    snprintf(o->key, sizeof o->key, "%.*s",
             (int)(n < sizeof o->key - 1 ? n : sizeof o->key - 1), k);
  }
  store_stmt_reset(s);
  if (rc < 0) return rc;
  if (rc != STORE_ROW || !o->key[0])
    return refuse(o, 404, "not_found", "no such request");
  if ((rc = blocks_add(c, o->me, o->other, app_name((app_id)from), o->key, o->now)) != 0)
    return rc;
  if ((rc = store_conn_prepare(
           c,
           "DELETE FROM reach_requests WHERE (sender_id = ? AND"
           " recipient_id = ?) OR (sender_id = ? AND recipient_id = ?)",
           &s)) != 0)
    return rc;
  store_bind_blob(s, 1, BYTES(o->other, ACCOUNTS_ID_BYTES));
  store_bind_blob(s, 2, BYTES(o->me, ACCOUNTS_ID_BYTES));
  store_bind_blob(s, 3, BYTES(o->me, ACCOUNTS_ID_BYTES));
  store_bind_blob(s, 4, BYTES(o->other, ACCOUNTS_ID_BYTES));
  o->state = "blocked";
  return store_stmt_run(s);
}

static int run_accept(store_conn *c, reach_op *o) { return run_answer(c, o, ACT_ACCEPT); }
static int run_decline(store_conn *c, reach_op *o) {
  return run_answer(c, o, ACT_DECLINE);
}
static int run_block(store_conn *c, reach_op *o) { return run_answer(c, o, ACT_BLOCK); }

/* ---- routing ---------------------------------------------------------- */

static int h_all(const httpd_req *r, httpd_resp *resp) {
  uint8_t me[ACCOUNTS_ID_BYTES];
  if (!app_auth(r, resp, me)) return 0;
  app_path p;
  if (!app_path_split(r, &p) || p.n < 2)
    return app_error(resp, 404, "not_found", "no such resource");
  http_method m = r->req->method == HTTP_HEAD ? HTTP_GET : r->req->method;
  if (strcmp(p.seg[1], "apps") == 0) {
    int app = p.n == 4 ? app_parse(p.seg[2]) : -1;
    if (app < 0 || strcmp(p.seg[3], "reachability") != 0)
      return app_error(resp, 404, "not_found", "no such resource");
    return h_reachability(r, resp, (app_id)app, me);
  }
  if (strcmp(p.seg[1], "reach") == 0) {
    if (p.n != 2) return app_error(resp, 404, "not_found", "no such resource");
    return h_reach(r, resp, me);
  }
  /* /v1/requests[/{id}/{accept|decline|block}] */
  if (m == HTTP_GET) {
    if (p.n != 2) return app_error(resp, 404, "not_found", "no such resource");
    return list_requests(resp, me);
  }
  rop_run_fn run = NULL;
  if (p.n == 4) {
    if (strcmp(p.seg[3], "accept") == 0) run = run_accept;
    if (strcmp(p.seg[3], "decline") == 0) run = run_decline;
    if (strcmp(p.seg[3], "block") == 0) run = run_block;
  }
  if (!run) return app_error(resp, 404, "not_found", "no such resource");
  uint8_t id[REQ_ID_BYTES];
  size_t got = 0;
  if (strlen(p.seg[2]) != b64_encoded_len(REQ_ID_BYTES, B64_MODE_URL_NOPAD) ||
      b64_decode(id, sizeof id, p.seg[2], strlen(p.seg[2]), B64_MODE_URL_NOPAD, &got) !=
          0 ||
      got != REQ_ID_BYTES)
    return app_error(resp, 404, "not_found", "no such request");
  reach_op *o = rop_new(me);
  if (!o) return app_error(resp, 503, "busy", "server busy; retry later");
  memcpy(o->id, id, sizeof id);
  o->run = run;
  return rop_start(r, resp, o);
}

int reach_routes(void) {
  static const struct {
    http_method m;
    const char *prefix;
  } t[] = {
      {HTTP_GET, "/v1/apps/chat/reachability"},
      {HTTP_PUT, "/v1/apps/chat/reachability"},
      {HTTP_GET, "/v1/apps/social/reachability"},
      {HTTP_PUT, "/v1/apps/social/reachability"},
      {HTTP_GET, "/v1/apps/messenger/reachability"},
      {HTTP_PUT, "/v1/apps/messenger/reachability"},
      {HTTP_POST, "/v1/reach"},
      {HTTP_GET, "/v1/requests"},
      {HTTP_POST, "/v1/requests"},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    int rc = httpd_route_add(t[i].m, t[i].prefix, h_all);
    if (rc) return rc;
  }
  return 0;
}

int reach_remove_app(store_conn *c, app_id app,
                     const uint8_t account[ACCOUNTS_ID_BYTES]) {
  static const char *const sql[] = {
      "DELETE FROM reach_rules WHERE account_id = ? AND app = ?",
      "DELETE FROM reach_requests WHERE recipient_id = ? AND to_app = ?",
      "DELETE FROM reach_requests WHERE sender_id = ? AND from_app = ?",
      "DELETE FROM reach_accepted WHERE recipient_id = ? AND to_app = ?",
      "DELETE FROM reach_accepted WHERE sender_id = ? AND from_app = ?",
  };
  for (size_t i = 0; i < sizeof sql / sizeof sql[0]; i++) {
    store_stmt *s;
    int rc = store_conn_prepare(c, sql[i], &s);
    if (rc) return rc;
    store_bind_blob(s, 1, BYTES(account, ACCOUNTS_ID_BYTES));
    store_bind_str(s, 2, app_name(app));
    if ((rc = store_stmt_run(s)) != 0) return rc;
  }
  return 0;
}
