/* Blocks: see blocks.h and docs/protocol.md. */
#include "server/blocks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/json.h"
#include "server/graphs.h"
#include "server/profiles.h"
#include "server/worker.h"
#include "tessera/error.h"

bool blocks_between(store_conn *c, const uint8_t a[ACCOUNTS_ID_BYTES],
                    const uint8_t b[ACCOUNTS_ID_BYTES]) {
  int rc = c ? 0 : store_reader_get(worker_self->store, &c);
  store_stmt *s;
  if (rc == 0)
    rc = store_conn_prepare(
        c,
        "SELECT 1 FROM blocks WHERE blocker_id = ? AND blocked_id = ?"
        " UNION ALL"
        " SELECT 1 FROM blocks WHERE blocker_id = ? AND blocked_id = ?",
        &s);
  if (rc) return true;
  store_bind_blob(s, 1, BYTES(a, ACCOUNTS_ID_BYTES));
  store_bind_blob(s, 2, BYTES(b, ACCOUNTS_ID_BYTES));
  store_bind_blob(s, 3, BYTES(b, ACCOUNTS_ID_BYTES));
  store_bind_blob(s, 4, BYTES(a, ACCOUNTS_ID_BYTES));
  rc = store_step(s);
  store_stmt_reset(s);
  return rc != STORE_DONE; /* a row, or an error: fail closed */
}

/* Blocks the account behind (app, key) and removes every edge between the
 * two accounts, in one job. */
static int run_block(store_conn *c, app_op *o) {
  int rc = profiles_resolve(c, o->app, o->key, o->other);
  if (rc == TSR_ENOTFOUND) return app_op_refuse(o, 404, "not_found", "no such profile");
  if (rc) return rc;
  if (memcmp(o->me, o->other, ACCOUNTS_ID_BYTES) == 0)
    return app_op_refuse(o, 400, "bad_request", "you cannot block yourself");
  if ((rc = blocks_add(c, o->me, o->other, app_name(o->app), o->key, o->now)) != 0)
    return rc;
  o->state = "blocked";
  return 0;
}

int blocks_add(store_conn *c, const uint8_t blocker[ACCOUNTS_ID_BYTES],
               const uint8_t blocked[ACCOUNTS_ID_BYTES], const char *app,
               const char *target, int64_t now) {
  store_stmt *s;
  int rc = store_conn_prepare(c,
                              "INSERT INTO blocks(blocker_id, blocked_id, app, target,"
                              " created_at) VALUES(?,?,?,?,?) ON CONFLICT DO NOTHING",
                              &s);
  if (rc) return rc;
  store_bind_blob(s, 1, BYTES(blocker, ACCOUNTS_ID_BYTES));
  store_bind_blob(s, 2, BYTES(blocked, ACCOUNTS_ID_BYTES));
  store_bind_str(s, 3, app);
  store_bind_str(s, 4, target);
  store_bind_int64(s, 5, now);
  if ((rc = store_stmt_run(s)) != 0) return rc;
  return graphs_remove_between(c, blocker, blocked);
}

/* By the name the block was made with, else by the account now behind it. */
static int run_unblock(store_conn *c, app_op *o) {
  store_stmt *s;
  int rc = store_conn_prepare(
      c, "DELETE FROM blocks WHERE blocker_id = ? AND app = ? AND target = ?", &s);
  if (rc) return rc;
  store_bind_blob(s, 1, BYTES(o->me, ACCOUNTS_ID_BYTES));
  store_bind_str(s, 2, app_name(o->app));
  store_bind_str(s, 3, o->key);
  if ((rc = store_stmt_run(s)) != 0) return rc;
  o->state = "unblocked";
  if (store_conn_changes(c) > 0) return 0;
  rc = profiles_resolve(c, o->app, o->key, o->other);
  if (rc && rc != TSR_ENOTFOUND) return rc;
  if (rc == 0) {
    rc = store_conn_prepare(
        c, "DELETE FROM blocks WHERE blocker_id = ? AND blocked_id = ?", &s);
    if (rc) return rc;
    store_bind_blob(s, 1, BYTES(o->me, ACCOUNTS_ID_BYTES));
    store_bind_blob(s, 2, BYTES(o->other, ACCOUNTS_ID_BYTES));
    if ((rc = store_stmt_run(s)) != 0) return rc;
    if (store_conn_changes(c) > 0) return 0;
  }
  return app_op_refuse(o, 404, "not_found", "no such block");
}

static int list_blocks(httpd_resp *resp, const uint8_t me[ACCOUNTS_ID_BYTES]) {
  store_conn *c;
  store_stmt *s;
  int rc = store_reader_get(worker_self->store, &c);
  if (rc == 0)
    rc = store_conn_prepare(c,
                            "SELECT app, target, created_at FROM blocks"
                            " WHERE blocker_id = ? ORDER BY created_at, app, target",
                            &s);
  if (rc) return -1;
  store_bind_blob(s, 1, BYTES(me, ACCOUNTS_ID_BYTES));
  json_writer jw;
  json_writer_init(&jw, resp->body, 8);
  json_write_object_begin(&jw);
  json_write_key(&jw, "blocks");
  json_write_array_begin(&jw);
  while ((rc = store_step(s)) == STORE_ROW) {
    size_t al = 0, tl = 0;
    const char *a = store_col_text(s, 0, &al), *t = store_col_text(s, 1, &tl);
    json_write_object_begin(&jw);
    json_write_key(&jw, "app");
    json_write_string_n(&jw, a, al);
    json_write_key(&jw, "target");
    json_write_string_n(&jw, t, tl);
    json_write_key(&jw, "since");
    json_write_i64(&jw, store_col_int64(s, 2));
    json_write_object_end(&jw);
  }
  store_stmt_reset(s);
  json_write_array_end(&jw);
  json_write_object_end(&jw);
  if (rc < 0) return -1;
  return json_writer_finish(&jw) == 0 ? 0 : -1;
}

static int h_blocks(const httpd_req *r, httpd_resp *resp) {
  uint8_t me[ACCOUNTS_ID_BYTES];
  if (!app_auth(r, resp, me)) return 0;
  app_path p;
  if (!app_path_split(r, &p) || p.n < 2)
    return app_error(resp, 404, "not_found", "no such resource");
  http_method m = r->req->method == HTTP_HEAD ? HTTP_GET : r->req->method;
  if (m == HTTP_GET) {
    if (p.n != 2) return app_error(resp, 404, "not_found", "no such resource");
    return list_blocks(resp, me);
  }
  char app_s[16] = "", target[APP_SEG_BYTES] = "";
  const char *err =
      "body must be {\"app\": \"chat\"|\"social\"|\"messenger\", \"target\":"
      " handle, username or number}";
  if (m == HTTP_POST) {
    app_body b;
    if (p.n != 2) return app_error(resp, 404, "not_found", "no such resource");
    if (!app_body_parse(r, &b) || app_body_str(&b, 0, "app", app_s, sizeof app_s) != 1 ||
        app_body_str(&b, 0, "target", target, sizeof target) != 1)
      return app_error(resp, 400, "bad_request", err);
  } else {
    if (p.n != 4) return app_error(resp, 404, "not_found", "no such block");
    snprintf(app_s, sizeof app_s, "%.15s", p.seg[2]);
    memcpy(target, p.seg[3], sizeof target);
  }
  int app = app_parse(app_s);
  if (app < 0)
    return app_error(resp, m == HTTP_POST ? 400 : 404,
                     m == HTTP_POST ? "bad_request" : "not_found",
                     "no such app (chat, social or messenger)");
  app_op *o = app_op_new((app_id)app);
  if (!o) return app_error(resp, 503, "busy", "server busy; retry later");
  memcpy(o->me, me, sizeof o->me);
  if (!profiles_key_normalize((app_id)app, target, o->key)) {
    app_op_free(o);
    return app_error(resp, 400, "bad_request",
                     app == APP_CHAT ? "target must be an E.164 number"
                                     : "target must be a valid handle or username");
  }
  o->run = m == HTTP_POST ? run_block : run_unblock;
  return app_op_start(r, resp, o);
}

int blocks_routes(void) {
  static const http_method ms[] = {HTTP_GET, HTTP_POST, HTTP_DELETE};
  for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
    int rc = httpd_route_add(ms[i], "/v1/blocks", h_blocks);
    if (rc) return rc;
  }
  return 0;
}
