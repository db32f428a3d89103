/* Notifications of public life: see notify.h and docs/protocol.md. */
#include "server/notify.h"

#include <stdlib.h>
#include <string.h>

#include "proto/json.h"
#include "server/blocks.h"
#include "server/conv.h"
#include "server/public.h"
#include "server/worker.h"
#include "tessera/error.h"

#define LIST_DEFAULT 30
#define LIST_MAX 100

int notify_add(store_conn *c, notify_batch *batch, app_id app,
               const uint8_t to[ACCOUNTS_ID_BYTES], const char *kind,
               const uint8_t actor[ACCOUNTS_ID_BYTES], int64_t post, int64_t comment,
               const char *text, int64_t now_ms) {
  if (memcmp(to, actor, ACCOUNTS_ID_BYTES) == 0 || blocks_between(c, to, actor)) return 0;
  int64_t id;
  int rc = pub_next_id(c, "notifications", now_ms, &id);
  store_stmt *s;
  if (rc == 0)
    rc = store_conn_prepare(
        c,
        "INSERT INTO notifications(id, account_id, app, kind, actor_id,"
        " post_id, comment_id, text, created_at) VALUES(?,?,?,?,?,?,?,?,?)",
        &s);
  if (rc) return rc;
  store_bind_int64(s, 1, id);
  store_bind_blob(s, 2, BYTES(to, ACCOUNTS_ID_BYTES));
  store_bind_str(s, 3, app_name(app));
  store_bind_str(s, 4, kind);
  store_bind_blob(s, 5, BYTES(actor, ACCOUNTS_ID_BYTES));
  if (post)
    store_bind_int64(s, 6, post);
  else
    store_bind_null(s, 6);
  if (comment)
    store_bind_int64(s, 7, comment);
  else
    store_bind_null(s, 7);
  store_bind_str(s, 8, text ? text : "");
  store_bind_int64(s, 9, now_ms);
  if ((rc = store_stmt_run(s)) != 0) return rc;
  if (batch && batch->n < NOTIFY_PUSH_MAX) {
    batch->ids[batch->n] = id;
    memcpy(batch->to[batch->n], to, ACCOUNTS_ID_BYTES);
    batch->n++;
  }
  return 0;
}

static int forget(store_conn *c, const char *sql, int64_t id, const char *kind,
                  const uint8_t *actor) {
  store_stmt *s;
  int rc = store_conn_prepare(c, sql, &s);
  if (rc) return rc;
  store_bind_int64(s, 1, id);
  if (kind) {
    store_bind_str(s, 2, kind);
    store_bind_blob(s, 3, BYTES(actor, ACCOUNTS_ID_BYTES));
  }
  return store_stmt_run(s);
}

int notify_forget_post(store_conn *c, int64_t post) {
  return forget(c, "DELETE FROM notifications WHERE post_id = ?", post, NULL, NULL);
}

int notify_forget_comment(store_conn *c, int64_t comment) {
  return forget(c, "DELETE FROM notifications WHERE comment_id = ?", comment, NULL, NULL);
}

int notify_forget(store_conn *c, const char *kind, const uint8_t actor[ACCOUNTS_ID_BYTES],
                  int64_t post) {
  return forget(
      c, "DELETE FROM notifications WHERE post_id = ? AND kind = ? AND actor_id = ?",
      post, kind, actor);
}

/* Writes notification id (the object); 1, 0 when gone, or an error. */
static int write_one(json_writer *jw, store_conn *c, int64_t id) {
  store_stmt *s;
  int rc = store_conn_prepare(c,
                              "SELECT app, kind, actor_id, post_id, comment_id, text,"
                              " created_at, seen FROM notifications WHERE id = ?",
                              &s);
  if (rc) return rc;
  store_bind_int64(s, 1, id);
  if ((rc = store_step(s)) != STORE_ROW) {
    store_stmt_reset(s);
    return rc < 0 ? rc : 0;
  }
  size_t n;
  int app = app_parse(store_col_text(s, 0, &n));
  uint8_t actor[ACCOUNTS_ID_BYTES] = {0};
  bytes_t a = store_col_blob(s, 2);
  if (a.len == ACCOUNTS_ID_BYTES) memcpy(actor, a.ptr, a.len);
  json_write_object_begin(jw);
  json_write_key(jw, "id");
  pub_write_id(jw, id);
  pub_write_col(jw, "kind", s, 1, false);
  json_write_key(jw, "app");
  json_write_string(jw, app_name(app < 0 ? APP_SOCIAL : (app_id)app));
  json_write_key(jw, "post");
  pub_write_id_or_null(jw, store_col_int64(s, 3));
  json_write_key(jw, "comment");
  pub_write_id_or_null(jw, store_col_int64(s, 4));
  pub_write_col(jw, "text", s, 5, false);
  json_write_key(jw, "at");
  json_write_i64(jw, store_col_int64(s, 6));
  json_write_key(jw, "read");
  json_write_bool(jw, store_col_int64(s, 7) != 0);
  store_stmt_reset(s);
  json_write_key(jw, "actor");
  rc = pub_write_profile(jw, c, app < 0 ? APP_SOCIAL : (app_id)app, actor);
  json_write_object_end(jw);
  return rc ? rc : 1;
}

void notify_push(const notify_batch *batch) {
  store_conn *c;
  if (!batch || !batch->n || store_reader_get(worker_self->store, &c) != 0) return;
  for (int i = 0; i < batch->n; i++) {
    buf_t out;
    buf_init(&out);
    json_writer jw;
    json_writer_init(&jw, &out, 4);
    json_write_object_begin(&jw);
    json_write_key(&jw, "push");
    json_write_string(&jw, "notification");
    json_write_key(&jw, "notification");
    int rc = write_one(&jw, c, batch->ids[i]);
    json_write_object_end(&jw);
    if (rc == 1 && json_writer_finish(&jw) == 0)
      conv_notify(batch->to[i], (const char *)out.ptr, out.len);
    buf_free(&out);
  }
}

/* ---- routes ------------------------------------------------------------------ */

static int list(const httpd_req *r, httpd_resp *resp,
                const uint8_t me[ACCOUNTS_ID_BYTES]) {
  int limit;
  int64_t before;
  char a[16] = "";
  size_t al = 0;
  int app = -1;
  if (!pub_query_limit(r, LIST_DEFAULT, LIST_MAX, &limit) ||
      !pub_query_id(r, "before", &before) ||
      http_query_get(r->req->query, "app", a, sizeof a, &al) < 0 ||
      (al && (app = pub_app_parse(a)) < 0))
    return app_error(resp, 400, "bad_request",
                     "limit must be 1-100, before a notification id, app social or"
                     " messenger");
  store_conn *c;
  store_stmt *s;
  if (store_reader_get(worker_self->store, &c) != 0 ||
      store_conn_prepare(c,
                         app < 0 ? "SELECT id FROM notifications WHERE account_id = ? AND"
                                   " id < ? AND ? = ? ORDER BY id DESC LIMIT ?"
                                 : "SELECT id FROM notifications WHERE account_id = ? AND"
                                   " id < ? AND app = ? ORDER BY id DESC LIMIT ?",
                         &s))
    return -1;
  int i = 1;
  store_bind_blob(s, i++, BYTES(me, ACCOUNTS_ID_BYTES));
  store_bind_int64(s, i++, before ? before : INT64_MAX);
  if (app < 0) {
    store_bind_str(s, i++, "x");
    store_bind_str(s, i++, "x");
  } else {
    store_bind_str(s, i++, app_name((app_id)app));
  }
  store_bind_int64(s, i, (int64_t)limit + 1);
  int64_t ids[LIST_MAX + 1];
  int n = 0, rc;
  while ((rc = store_step(s)) == STORE_ROW && n <= limit)
    ids[n++] = store_col_int64(s, 0);
  store_stmt_reset(s);
  if (rc < 0) return -1;
  bool more = n > limit;
  if (more) n = limit;
  int64_t unread = 0;
  if (store_conn_prepare(c,
                         app < 0
                             ? "SELECT COUNT(*) FROM notifications WHERE account_id = ?"
                               " AND seen = 0"
                             : "SELECT COUNT(*) FROM notifications WHERE account_id = ?"
                               " AND seen = 0 AND app = ?",
                         &s))
    return -1;
  store_bind_blob(s, 1, BYTES(me, ACCOUNTS_ID_BYTES));
  if (app >= 0) store_bind_str(s, 2, app_name((app_id)app));
  if (store_step(s) == STORE_ROW) unread = store_col_int64(s, 0);
  store_stmt_reset(s);
  json_writer jw;
  json_writer_init(&jw, resp->body, 8);
  json_write_object_begin(&jw);
  json_write_key(&jw, "notifications");
  json_write_array_begin(&jw);
  for (int k = 0; k < n; k++)
    if (write_one(&jw, c, ids[k]) < 0) return -1;
  json_write_array_end(&jw);
  json_write_key(&jw, "next");
  pub_write_id_or_null(&jw, more ? ids[n - 1] : 0);
  json_write_key(&jw, "unread");
  json_write_i64(&jw, unread);
  json_write_object_end(&jw);
  return json_writer_finish(&jw) ? -1 : 0;
}

static int run_read(store_conn *c, app_op *o) {
  int64_t up_to = *(int64_t *)o->data;
  store_stmt *s;
  int rc = store_conn_prepare(c,
                              "UPDATE notifications SET seen = 1 WHERE account_id = ? AND"
                              " id <= ? AND seen = 0",
                              &s);
  if (rc) return rc;
  store_bind_blob(s, 1, BYTES(o->me, ACCOUNTS_ID_BYTES));
  store_bind_int64(s, 2, up_to);
  return store_stmt_run(s);
}

static int h_notifications(const httpd_req *r, httpd_resp *resp) {
  uint8_t me[ACCOUNTS_ID_BYTES];
  if (!app_auth(r, resp, me)) return 0;
  app_path p;
  if (!app_path_split(r, &p))
    return app_error(resp, 404, "not_found", "no such resource");
  http_method m = r->req->method == HTTP_HEAD ? HTTP_GET : r->req->method;
  if (p.n == 2 && m == HTTP_GET) return list(r, resp, me);
  if (p.n != 3 || strcmp(p.seg[2], "read") != 0 || m != HTTP_POST)
    return app_error(resp, 404, "not_found", "no such resource");
  app_body b;
  char v[PUB_ID_TEXT + 1];
  int64_t up_to;
  if (!app_body_parse(r, &b) || app_body_str(&b, 0, "up_to", v, sizeof v) != 1 ||
      !pub_id_parse(v, &up_to))
    return app_error(resp, 400, "bad_request", "body must be {\"up_to\": \"<id>\"}");
  app_op *o = app_op_new(APP_SOCIAL);
  int64_t *d = malloc(sizeof *d);
  if (!o || !d) {
    free(d);
    app_op_free(o);
    return app_error(resp, 503, "busy", "server busy; retry later");
  }
  *d = up_to;
  o->data = d;
  memcpy(o->me, me, ACCOUNTS_ID_BYTES);
  o->run = run_read;
  return app_op_start(r, resp, o);
}

int notify_routes(void) {
  int rc = httpd_route_add(HTTP_GET, "/v1/notifications", h_notifications);
  return rc ? rc : httpd_route_add(HTTP_POST, "/v1/notifications", h_notifications);
}
