/* Reports of posts and comments, and the admin API: see reports.h. */
#include "server/reports.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/clock.h"
#include "server/comments.h"
#include "server/posts.h"
#include "server/public.h"
#include "server/timelines.h"
#include "server/worker.h"
#include "tessera/error.h"

#define NOTE_MAX 500
#define LIST_MAX 100

static const char *const reasons[] = {"spam",     "harassment", "nudity",
                                      "violence", "hate",       "other"};

typedef struct {
  int64_t id, post, comment;
  char reason[16];
  char note[NOTE_MAX + 1];
  char action[16];
  int64_t advance;
  notify_batch nb;
} report_in;

/* ---- reporting ------------------------------------------------------------ */

static int run_report(store_conn *c, app_op *o) {
  report_in *in = o->data;
  int64_t post = in->post;
  int rc;
  bool shown = true;
  if (in->comment) {
    store_stmt *s;
    if ((rc = store_conn_prepare(c,
                                 "SELECT post_id, verdict, author_id FROM comments"
                                 " WHERE id = ?",
                                 &s)) != 0)
      return rc;
    store_bind_int64(s, 1, in->comment);
    rc = store_step(s);
    shown = false;
    if (rc == STORE_ROW) {
      size_t n;
      bytes_t a = store_col_blob(s, 2);
      post = store_col_int64(s, 0);
      shown = strcmp(store_col_text(s, 1, &n), "ham") == 0 ||
              (a.len == ACCOUNTS_ID_BYTES && memcmp(a.ptr, o->me, a.len) == 0);
    }
    store_stmt_reset(s);
    if (rc < 0) return rc;
    if (rc != STORE_ROW) return app_op_refuse(o, 404, "not_found", "no such comment");
  }
  post_head h;
  if ((rc = posts_head_read(c, post, &h)) < 0) return rc;
  /* A hidden comment is seen by its author and the post's author only. */
  if (in->comment && !shown &&
      (rc == 0 || memcmp(h.author, o->me, ACCOUNTS_ID_BYTES) != 0))
    return app_op_refuse(o, 404, "not_found", "no such comment");
  if (rc == 0 || !posts_visible(c, o->app, &h, o->me))
    return app_op_refuse(o, 404, "not_found",
                         in->comment ? "no such comment" : "no such post");
  int64_t now = clock_now_ms();
  if ((rc = pub_next_id(c, "reports", now, &in->id)) != 0) return rc;
  store_stmt *s;
  if ((rc = store_conn_prepare(c,
                               "INSERT INTO reports(id, reporter_id, post_id, comment_id,"
                               " reason, note, state, created_at) VALUES(?,?,?,?,?,?,"
                               "'open',?)",
                               &s)) != 0)
    return rc;
  store_bind_int64(s, 1, in->id);
  store_bind_blob(s, 2, BYTES(o->me, ACCOUNTS_ID_BYTES));
  store_bind_int64(s, 3, in->comment ? 0 : in->post);
  store_bind_int64(s, 4, in->comment);
  store_bind_str(s, 5, in->reason);
  store_bind_str(s, 6, in->note);
  store_bind_int64(s, 7, now);
  rc = store_stmt_run(s);
  if (rc == TSR_ECONFLICT)
    return app_op_refuse(o, 409, "already_reported", "you reported that already");
  o->ok_status = 201;
  return rc;
}

static void write_report(app_op *o, json_writer *jw) {
  report_in *in = o->data;
  json_write_key(jw, "report");
  json_write_object_begin(jw);
  json_write_key(jw, "id");
  pub_write_id(jw, in->id);
  json_write_key(jw, "state");
  json_write_string(jw, "open");
  json_write_object_end(jw);
}

/* ---- admin ---------------------------------------------------------------------- */

/* Writes the reported item as an admin sees it (any app: its own). */
static int write_item(json_writer *jw, store_conn *c, int64_t post, int64_t comment,
                      const uint8_t me[ACCOUNTS_ID_BYTES]) {
  if (comment) {
    json_write_key(jw, "comment");
    pub_write_id(jw, comment);
    json_write_key(jw, "item");
    int rc = comments_write(jw, c, comment);
    if (rc == 0) json_write_null(jw);
    return rc < 0 ? rc : 0;
  }
  json_write_key(jw, "post");
  pub_write_id(jw, post);
  json_write_key(jw, "item");
  post_head h;
  int rc = posts_head_read(c, post, &h);
  if (rc == 1) {
    /* Written through its first app, as its author sees it. */
    app_id app = h.apps & PUB_APP_BIT(APP_SOCIAL) ? APP_SOCIAL : APP_MESSENGER;
    rc = posts_write(jw, c, app, post, h.author);
  }
  (void)me;
  if (rc == 0) json_write_null(jw);
  return rc < 0 ? rc : 0;
}

static int list_reports(const httpd_req *r, httpd_resp *resp, store_conn *c,
                        const uint8_t me[ACCOUNTS_ID_BYTES]) {
  char st[16] = "open";
  size_t n = 0;
  if (http_query_get(r->req->query, "state", st, sizeof st, &n) < 0 ||
      (strcmp(st, "open") != 0 && strcmp(st, "closed") != 0))
    return app_error(resp, 400, "bad_request", "state must be open or closed");
  store_stmt *s;
  if (store_conn_prepare(
          c,
          "SELECT id, post_id, comment_id, reason, note, created_at, action,"
          " (SELECT COUNT(*) FROM reports x WHERE x.state = r.state AND"
          " x.post_id = r.post_id AND x.comment_id = r.comment_id) FROM"
          " reports r WHERE state = ? ORDER BY id LIMIT ?",
          &s))
    return -1;
  store_bind_str(s, 1, st);
  store_bind_int64(s, 2, LIST_MAX);
  typedef struct {
    int64_t id, post, comment, at, reporters;
    char reason[16], note[NOTE_MAX + 1], action[16];
  } row;
  row *rows = calloc(LIST_MAX, sizeof *rows);
  int k = 0, rc;
  while (rows && (rc = store_step(s)) == STORE_ROW && k < LIST_MAX) {
    size_t l;
    const char *t;
    rows[k].id = store_col_int64(s, 0);
    rows[k].post = store_col_int64(s, 1);
    rows[k].comment = store_col_int64(s, 2);
    t = store_col_text(s, 3, &l);
    snprintf(rows[k].reason, sizeof rows[k].reason, "%.*s", (int)l, t);
    t = store_col_text(s, 4, &l);
    snprintf(rows[k].note, sizeof rows[k].note, "%.*s", (int)l, t);
    rows[k].at = store_col_int64(s, 5);
    t = store_col_text(s, 6, &l);
    snprintf(rows[k].action, sizeof rows[k].action, "%.*s", (int)l, t);
    rows[k].reporters = store_col_int64(s, 7);
    k++;
  }
  store_stmt_reset(s);
  if (!rows) return -1;
  json_writer jw;
  json_writer_init(&jw, resp->body, 8);
  json_write_object_begin(&jw);
  json_write_key(&jw, "reports");
  json_write_array_begin(&jw);
  rc = 0;
  for (int i = 0; i < k && rc == 0; i++) {
    json_write_object_begin(&jw);
    json_write_key(&jw, "id");
    pub_write_id(&jw, rows[i].id);
    json_write_key(&jw, "reason");
    json_write_string(&jw, rows[i].reason);
    json_write_key(&jw, "note");
    json_write_string(&jw, rows[i].note);
    json_write_key(&jw, "at");
    json_write_i64(&jw, rows[i].at);
    json_write_key(&jw, "state");
    json_write_string(&jw, st);
    json_write_key(&jw, "action");
    json_write_string(&jw, rows[i].action);
    json_write_key(&jw, "reporters");
    json_write_i64(&jw, rows[i].reporters);
    rc = write_item(&jw, c, rows[i].post, rows[i].comment, me);
    json_write_object_end(&jw);
  }
  free(rows);
  json_write_array_end(&jw);
  json_write_object_end(&jw);
  return rc || json_writer_finish(&jw) ? -1 : 0;
}

static int run_resolve(store_conn *c, app_op *o) {
  report_in *in = o->data;
  store_stmt *s;
  int rc = store_conn_prepare(
      c, "SELECT post_id, comment_id, state FROM reports WHERE id = ?", &s);
  if (rc) return rc;
  store_bind_int64(s, 1, in->id);
  rc = store_step(s);
  bool open = false;
  if (rc == STORE_ROW) {
    size_t n;
    in->post = store_col_int64(s, 0);
    in->comment = store_col_int64(s, 1);
    open = strcmp(store_col_text(s, 2, &n), "open") == 0;
  }
  store_stmt_reset(s);
  if (rc < 0) return rc;
  if (rc != STORE_ROW) return app_op_refuse(o, 404, "not_found", "no such report");
  if (!open) return app_op_refuse(o, 409, "closed", "that report is closed already");
  bool remove = strcmp(in->action, "remove") == 0;
  /* Every open report of the item closes with this decision. */
  if ((rc = store_conn_prepare(
           c,
           "UPDATE reports SET state = 'closed', action = ?, closed_at = ?"
           " WHERE state = 'open' AND post_id = ? AND comment_id = ?",
           &s)) != 0)
    return rc;
  store_bind_str(s, 1, remove ? "removed" : "dismissed");
  store_bind_int64(s, 2, clock_now_ms());
  store_bind_int64(s, 3, in->post);
  store_bind_int64(s, 4, in->comment);
  if ((rc = store_stmt_run(s)) != 0) return rc;
  if (!remove) return 0;
  rc = in->comment ? comments_delete(c, in->comment) : posts_delete(c, in->post);
  return rc == TSR_ENOTFOUND ? 0 : rc;
}

static int list_review(const httpd_req *r, httpd_resp *resp, store_conn *c) {
  char st[16] = "held";
  size_t n = 0;
  if (http_query_get(r->req->query, "state", st, sizeof st, &n) < 0 ||
      (strcmp(st, "held") != 0 && strcmp(st, "appealed") != 0))
    return app_error(resp, 400, "bad_request", "state must be held or appealed");
  bool held = strcmp(st, "held") == 0;
  store_stmt *s;
  if (store_conn_prepare(
          c,
          held ? "SELECT id FROM comments WHERE verdict = 'held' AND"
                 " (appeal IS NULL OR appeal <> 'pending') ORDER BY id LIMIT ?"
               : "SELECT id FROM comments WHERE appeal = 'pending' ORDER BY"
                 " id LIMIT ?",
          &s))
    return -1;
  store_bind_int64(s, 1, LIST_MAX);
  int64_t ids[LIST_MAX];
  int k = 0, rc;
  while ((rc = store_step(s)) == STORE_ROW && k < LIST_MAX)
    ids[k++] = store_col_int64(s, 0);
  store_stmt_reset(s);
  if (rc < 0) return -1;
  json_writer jw;
  json_writer_init(&jw, resp->body, 8);
  json_write_object_begin(&jw);
  json_write_key(&jw, "comments");
  json_write_array_begin(&jw);
  for (int i = 0; i < k; i++)
    if (comments_write(&jw, c, ids[i]) < 0) return -1;
  json_write_array_end(&jw);
  json_write_object_end(&jw);
  return json_writer_finish(&jw) ? -1 : 0;
}

/* A removed post left timeline rows to purge. */
static void write_resolved(app_op *o, json_writer *jw) {
  (void)o, (void)jw;
  timelines_kick();
}

static int run_decide(store_conn *c, app_op *o) {
  report_in *in = o->data;
  int rc = comments_decide(c, in->id, in->action, &in->nb);
  if (rc == TSR_ENOTFOUND) return app_op_refuse(o, 404, "not_found", "no such comment");
  return rc;
}

static void write_decided(app_op *o, json_writer *jw) {
  report_in *in = o->data;
  json_write_key(jw, "comment");
  if (comments_write(jw, NULL, in->id) != 1) json_write_null(jw);
  notify_push(&in->nb);
}

static int run_clock(store_conn *c, app_op *o) {
  (void)c;
  report_in *in = o->data;
  clock_advance(in->advance);
  return 0;
}

static void write_clock(app_op *o, json_writer *jw) {
  (void)o;
  json_write_key(jw, "now");
  json_write_i64(jw, clock_now_ms());
}

/* ---- routing ------------------------------------------------------------- */

static bool reason_ok(const char *s) {
  for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
    if (strcmp(s, reasons[i]) == 0) return true;
  return false;
}

/* POST /v1/apps/{app}/reports */
static int h_report(const httpd_req *r, httpd_resp *resp) {
  uint8_t me[ACCOUNTS_ID_BYTES];
  app_path p;
  app_id app;
  if (!pub_begin(r, resp, 4, &p, &app, me)) return 0;
  if (p.n != 4) return app_error(resp, 404, "not_found", "no such resource");
  report_in *in = calloc(1, sizeof *in);
  if (!in) return app_error(resp, 503, "busy", "server busy; retry later");
  app_body b;
  char post[PUB_ID_TEXT + 1], comment[PUB_ID_TEXT + 1];
  int hp = 0, hc = 0, nr;
  const char *err = NULL;
  if (!app_body_parse(r, &b))
    err = "body must be a JSON object";
  else if ((hp = app_body_str(&b, 0, "post", post, sizeof post)) < 0 ||
           (hc = app_body_str(&b, 0, "comment", comment, sizeof comment)) < 0 ||
           hp + hc != 1 || (hp && !pub_id_parse(post, &in->post)) ||
           (hc && !pub_id_parse(comment, &in->comment)))
    err = "name exactly one of 'post' or 'comment' (an id)";
  else if (app_body_str(&b, 0, "reason", in->reason, sizeof in->reason) != 1 ||
           !reason_ok(in->reason))
    err = "field 'reason' must be spam, harassment, nudity, violence, hate or other";
  else if ((nr = app_body_str(&b, 0, "note", in->note, sizeof in->note)) < 0 ||
           !pub_text_ok(in->note, true))
    err = "field 'note' must be at most 500 bytes of UTF-8";
  if (err) {
    free(in);
    return app_error(resp, 400, "bad_request", err);
  }
  return pub_op_start(r, resp, app, me, in, run_report, write_report);
}

/* /v1/admin/reports[/{id}], /v1/admin/comments[/{id}], /v1/admin/clock */
static int h_admin(const httpd_req *r, httpd_resp *resp) {
  uint8_t me[ACCOUNTS_ID_BYTES];
  if (!app_auth(r, resp, me)) return 0;
  store_conn *c;
  if (store_reader_get(worker_self->store, &c) != 0) return -1;
  if (!pub_is_admin(c, me)) return app_error(resp, 403, "forbidden", "admins only");
  app_path p;
  if (!app_path_split(r, &p) || p.n < 3)
    return app_error(resp, 404, "not_found", "no such resource");
  http_method m = r->req->method == HTTP_HEAD ? HTTP_GET : r->req->method;
  const char *what = p.seg[2];
  if (m == HTTP_GET && p.n == 3 && strcmp(what, "reports") == 0)
    return list_reports(r, resp, c, me);
  if (m == HTTP_GET && p.n == 3 && strcmp(what, "comments") == 0)
    return list_review(r, resp, c);
  if (m != HTTP_POST) return app_error(resp, 404, "not_found", "no such resource");
  report_in *in = calloc(1, sizeof *in);
  if (!in) return app_error(resp, 503, "busy", "server busy; retry later");
  app_body b;
  bool body = app_body_parse(r, &b);
  if (p.n == 3 && strcmp(what, "clock") == 0) {
    int i = body ? json_object_get(b.buf, b.t, 0, "advance_ms") : -1;
    if (!worker_self->cfg->test_clock) {
      free(in);
      return app_error(resp, 403, "forbidden", "the server does not run with test_clock");
    }
    if (i < 0 || json_get_i64(b.buf, b.t, i, &in->advance) != 0 || in->advance <= 0) {
      free(in);
      return app_error(resp, 400, "bad_request", "body must be {\"advance_ms\": N > 0}");
    }
    return pub_op_start(r, resp, APP_SOCIAL, me, in, run_clock, write_clock);
  }
  if (p.n == 4 && pub_id_parse(p.seg[3], &in->id) && body) {
    if (strcmp(what, "reports") == 0 &&
        app_body_str(&b, 0, "action", in->action, sizeof in->action) == 1 &&
        (strcmp(in->action, "remove") == 0 || strcmp(in->action, "dismiss") == 0))
      return pub_op_start(r, resp, APP_SOCIAL, me, in, run_resolve, write_resolved);
    if (strcmp(what, "comments") == 0 &&
        app_body_str(&b, 0, "verdict", in->action, sizeof in->action) == 1 &&
        (strcmp(in->action, "ham") == 0 || strcmp(in->action, "spam") == 0))
      return pub_op_start(r, resp, APP_SOCIAL, me, in, run_decide, write_decided);
    free(in);
    return app_error(resp, 400, "bad_request",
                     "reports take {\"action\": \"remove\"|\"dismiss\"}, comments"
                     " {\"verdict\": \"ham\"|\"spam\"}");
  }
  free(in);
  return app_error(resp, 404, "not_found", "no such resource");
}

int reports_routes(void) {
  int rc = httpd_route_add(HTTP_POST, "/v1/apps/social/reports", h_report);
  if (!rc) rc = httpd_route_add(HTTP_POST, "/v1/apps/messenger/reports", h_report);
  if (!rc) rc = httpd_route_add(HTTP_GET, "/v1/admin", h_admin);
  if (!rc) rc = httpd_route_add(HTTP_POST, "/v1/admin", h_admin);
  return rc;
}
