/* Per-app profiles and the app modules' shared plumbing: see profiles.h and
 * docs/protocol.md. */
#include "server/profiles.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto/json.h"
#include "proto/utf8.h"
#include "server/blocks.h"
#include "server/graphs.h"
#include "server/log.h"
#include "server/posts.h"
#include "server/public.h"
#include "server/reach.h"
#include "server/worker.h"
#include "tessera/error.h"

/* Field limits in bytes of UTF-8. */
#define NAME_MAX_BYTES 100
#define BIO_MAX_BYTES 500
#define CATEGORY_MAX_BYTES 64
#define HOURS_MAX_BYTES 200
#define WEBSITE_MAX_BYTES 200
#define NUMBER_MAX 16
#define SEARCH_LIMIT_DEFAULT 20
#define SEARCH_LIMIT_MAX 50

static const char *const app_names[APP_COUNT] = {"chat", "social", "messenger"};

int app_parse(const char *s) {
  for (int i = 0; i < APP_COUNT; i++)
    if (strcmp(s, app_names[i]) == 0) return i;
  return -1;
}

const char *app_name(app_id a) { return a < APP_COUNT ? app_names[a] : "?"; }

/* ---- keys ------------------------------------------------------------- */

/* E.164: '+', then 3 to 15 digits, the first not 0 (as accounts.c). */
static bool valid_number(const char *s) {
  size_t n = strlen(s);
  if (n < 4 || n > NUMBER_MAX || s[0] != '+' || s[1] == '0') return false;
  for (size_t i = 1; i < n; i++)
    if (s[i] < '0' || s[i] > '9') return false;
  return true;
}

/* 3-30 of [a-z0-9._] after lower-casing, no leading or trailing '.', no "..". */
static bool handle_normalize(const char *in, char *out) {
  size_t n = strlen(in);
  if (n < 3 || n > PROFILES_KEY_MAX) return false;
  for (size_t i = 0; i < n; i++) {
    char c = in[i];
    if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_'))
      return false;
    if (c == '.' && (i == 0 || i == n - 1 || in[i - 1] == '.')) return false;
    out[i] = c;
  }
  out[n] = '\0';
  return true;
}

bool profiles_key_normalize(app_id app, const char *in, char *out) {
  if (app == APP_CHAT) {
    if (!valid_number(in)) return false;
    memcpy(out, in, strlen(in) + 1);
    return true;
  }
  return handle_normalize(in, out);
}

int profiles_resolve(store_conn *c, app_id app, const char *key,
                     uint8_t account[ACCOUNTS_ID_BYTES]) {
  int rc = c ? 0 : store_reader_get(worker_self->store, &c);
  store_stmt *s;
  if (rc == 0)
    rc = store_conn_prepare(
        c,
        app == APP_CHAT
            ? "SELECT p.account_id FROM accounts a JOIN profiles p ON p.account_id = a.id"
              " AND p.app = 'chat' WHERE a.phone = ? AND a.phone_verified = 1"
            : "SELECT account_id FROM profiles WHERE app = ? AND handle = ?",
        &s);
  if (rc) return rc;
  if (app == APP_CHAT) {
    store_bind_str(s, 1, key);
  } else {
    store_bind_str(s, 1, app_name(app));
    store_bind_str(s, 2, key);
  }
  rc = store_step(s);
  if (rc == STORE_ROW) {
    bytes_t id = store_col_blob(s, 0);
    if (id.len == ACCOUNTS_ID_BYTES)
      memcpy(account, id.ptr, ACCOUNTS_ID_BYTES);
    else
      rc = TSR_EIO;
  }
  store_stmt_reset(s);
  if (rc == STORE_ROW) return 0;
  return rc < 0 ? rc : TSR_ENOTFOUND;
}

int profiles_exists(store_conn *c, app_id app, const uint8_t account[ACCOUNTS_ID_BYTES]) {
  int rc = c ? 0 : store_reader_get(worker_self->store, &c);
  store_stmt *s;
  if (rc == 0)
    rc = store_conn_prepare(c, "SELECT 1 FROM profiles WHERE account_id = ? AND app = ?",
                            &s);
  if (rc) return rc;
  store_bind_blob(s, 1, BYTES(account, ACCOUNTS_ID_BYTES));
  store_bind_str(s, 2, app_name(app));
  rc = store_step(s);
  store_stmt_reset(s);
  return rc == STORE_ROW ? 1 : rc;
}

/* ---- shared plumbing -------------------------------------------------- */

bool app_path_split(const httpd_req *r, app_path *p) {
  http_str rest = r->req->path, seg;
  p->n = 0;
  while (http_path_next(&rest, &seg)) {
    size_t len = 0;
    if (p->n == APP_PATH_SEGS ||
        http_pct_decode(seg, false, p->seg[p->n], APP_SEG_BYTES, &len) != 0)
      return false;
    p->n++;
  }
  return true;
}

int app_error(httpd_resp *resp, int status, const char *code, const char *msg) {
  httpd_resp_error(resp, status, code, msg);
  return 0;
}

bool app_auth(const httpd_req *r, httpd_resp *resp, uint8_t me[ACCOUNTS_ID_BYTES]) {
  uint8_t dev[ACCOUNTS_ID_BYTES];
  return accounts_auth_or_refuse(r, resp, me, dev);
}

bool app_body_parse(const httpd_req *r, app_body *b) {
  b->buf = (const char *)r->body.ptr;
  b->t = worker_self->toks;
  if (!r->body.len) return false;
  int n = json_parse(b->buf, r->body.len, worker_self->toks, WORKER_MAX_TOKENS, NULL);
  return n > 0 && b->t[0].type == JSON_OBJECT;
}

int app_body_str(const app_body *b, int obj, const char *key, char *out, size_t cap) {
  int i = json_object_get(b->buf, b->t, obj, key);
  if (i < 0 || json_is_null(b->t, i)) return 0;
  if (b->t[i].type != JSON_STRING || b->t[i].size >= cap ||
      json_get_string(b->buf, b->t, i, out, cap, NULL, 0) != 0)
    return -1;
  return 1;
}

app_op *app_op_new(app_id app) {
  app_op *o = calloc(1, sizeof *o);
  if (o) {
    o->app = app;
    o->now = (int64_t)time(NULL);
    o->ok_status = 200;
  }
  return o;
}

void app_op_free(app_op *o) {
  if (!o) return;
  free(o->data);
  free(o);
}

int app_op_refuse(app_op *o, int status, const char *code, const char *msg) {
  o->fail_status = status;
  o->fail_code = code;
  o->fail_msg = msg;
  return TSR_ESTATE;
}

void app_answer_begin(json_writer *jw, httpd_resp *resp, const char *state) {
  json_writer_init(jw, resp->body, 8);
  json_write_object_begin(jw);
  if (state) {
    json_write_key(jw, "state");
    json_write_string(jw, state);
  }
}

void app_answer_end(json_writer *jw, httpd_resp *resp) {
  json_write_object_end(jw);
  if (json_writer_finish(jw) != 0)
    httpd_resp_error(resp, 500, "internal", "internal error");
}

static void op_done(store_job *job, int status) {
  app_op *o = job->arg;
  httpd_resp resp;
  httpd_resp_init(&resp);
  if (status == 0) {
    resp.status = o->ok_status;
    json_writer jw;
    app_answer_begin(&jw, &resp, o->state);
    if (o->write_ok) o->write_ok(o, &jw);
    app_answer_end(&jw, &resp);
  } else if (o->fail_status) {
    httpd_resp_error(&resp, o->fail_status, o->fail_code, o->fail_msg);
  } else if (status == TSR_ECONFLICT) {
    httpd_resp_error(&resp, 409, "conflict", "already taken");
  } else {
    log_warn("%s job failed: %s", app_name(o->app), tsr_errname(status));
    httpd_resp_error(&resp, 500, "internal", "internal error");
  }
  httpd_complete(&o->ticket, &resp);
  app_op_free(o);
}

static int op_run(store_conn *c, void *arg) {
  app_op *o = arg;
  o->fail_status = 0;
  return o->run(c, o);
}

int app_op_start(const httpd_req *r, httpd_resp *resp, app_op *o) {
  o->job = (store_job){.run = op_run, .done = op_done, .arg = o};
  int rc = store_submit(worker_self->sc, &o->job);
  if (rc) {
    app_op_free(o);
    return app_error(resp, 503, "busy", "server busy; retry later");
  }
  httpd_defer(r, &o->ticket);
  return HTTPD_DEFERRED;
}

/* ---- profiles --------------------------------------------------------- */

/* A profile's fields, as given in a PUT or read from a row. chat keeps
 * display_name in name and about in bio. */
typedef struct {
  char handle[PROFILES_KEY_MAX + 1];
  char number[NUMBER_MAX + 1];
  char name[NAME_MAX_BYTES + 1];
  char bio[BIO_MAX_BYTES + 1];
  char category[CATEGORY_MAX_BYTES + 1];
  char hours[HOURS_MAX_BYTES + 1];
  char website[WEBSITE_MAX_BYTES + 1];
  bool priv, page;
} prof;

/* http:// or https://, a host, printable ASCII without spaces. */
static bool website_ok(const char *s) {
  const char *rest;
  if (strncmp(s, "https://", 8) == 0)
    rest = s + 8;
  else if (strncmp(s, "http://", 7) == 0)
    rest = s + 7;
  else
    return false;
  if (!*rest || *rest == '/' || *rest == ':' || *rest == '?' || *rest == '#')
    return false;
  for (const char *p = s; *p; p++)
    if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) return false;
  return true;
}

/* Reads a text member: absent -> "", wrong type or too long or bad text
 * -> false with *err set. */
static bool get_text(const app_body *b, const char *key, char *out, size_t cap,
                     bool multiline, const char *err, const char **errp) {
  int rc = app_body_str(b, 0, key, out, cap);
  if (rc == 0) out[0] = '\0';
  if (rc < 0 || !pub_text_ok(out, multiline)) {
    *errp = err;
    return false;
  }
  return true;
}

static bool get_flag(const app_body *b, const char *key, bool *out, const char *err,
                     const char **errp) {
  int i = json_object_get(b->buf, b->t, 0, key);
  *out = false;
  if (i < 0 || json_is_null(b->t, i)) return true;
  if (json_get_bool(b->t, i, out) != 0) {
    *errp = err;
    return false;
  }
  return true;
}

/* Parses a PUT body for app into p. Returns NULL or the 400 message. */
static const char *parse_profile(app_id app, const app_body *b, prof *p) {
  const char *err = NULL;
  memset(p, 0, sizeof *p);
  if (app == APP_CHAT) {
    if (!get_text(b, "display_name", p->name, sizeof p->name, false,
                  "field 'display_name' must be a string of at most 100 bytes of UTF-8"
                  " without control characters",
                  &err) ||
        !get_text(b, "about", p->bio, sizeof p->bio, true,
                  "field 'about' must be a string of at most 500 bytes of UTF-8 without"
                  " control characters other than newline",
                  &err))
      return err;
    return NULL;
  }
  const char *kname = app == APP_SOCIAL ? "handle" : "username";
  const char *kerr =
      app == APP_SOCIAL
          ? "field 'handle' must be 3-30 characters [a-z0-9._], not starting"
            " or ending with '.', without '..'"
          : "field 'username' must be 3-30 characters [a-z0-9._], not"
            " starting or ending with '.', without '..'";
  char raw[APP_SEG_BYTES];
  if (app_body_str(b, 0, kname, raw, sizeof raw) != 1 ||
      !handle_normalize(raw, p->handle))
    return kerr;
  if (!get_text(b, "name", p->name, sizeof p->name, false,
                "field 'name' must be a string of at most 100 bytes of UTF-8 without"
                " control characters",
                &err))
    return err;
  if (app == APP_SOCIAL) {
    if (!get_text(b, "bio", p->bio, sizeof p->bio, true,
                  "field 'bio' must be a string of at most 500 bytes of UTF-8 without"
                  " control characters other than newline",
                  &err) ||
        !get_flag(b, "private", &p->priv, "field 'private' must be true or false", &err))
      return err;
    return NULL;
  }
  if (!get_flag(b, "page", &p->page, "field 'page' must be true or false", &err) ||
      !get_text(b, "category", p->category, sizeof p->category, false,
                "field 'category' must be a string of at most 64 bytes of UTF-8 without"
                " control characters",
                &err) ||
      !get_text(b, "hours", p->hours, sizeof p->hours, false,
                "field 'hours' must be a string of at most 200 bytes of UTF-8 without"
                " control characters",
                &err))
    return err;
  int w = app_body_str(b, 0, "website", p->website, sizeof p->website);
  if (w < 0 || (w > 0 && p->website[0] && !website_ok(p->website)))
    return "field 'website' must be an http:// or https:// URL of at most 200 bytes";
  if (w == 0) p->website[0] = '\0';
  if (!p->page) p->category[0] = p->hours[0] = p->website[0] = '\0';
  return NULL;
}

static void put_str(json_writer *jw, const char *key, const char *val) {
  json_write_key(jw, key);
  json_write_string(jw, val);
}

static void write_prof(json_writer *jw, app_id app, const prof *p) {
  json_write_object_begin(jw);
  put_str(jw, "app", app_name(app));
  switch (app) {
  case APP_CHAT:
    put_str(jw, "number", p->number);
    put_str(jw, "display_name", p->name);
    put_str(jw, "about", p->bio);
    break;
  case APP_SOCIAL:
    put_str(jw, "handle", p->handle);
    put_str(jw, "name", p->name);
    put_str(jw, "bio", p->bio);
    json_write_key(jw, "private");
    json_write_bool(jw, p->priv);
    break;
  default:
    put_str(jw, "username", p->handle);
    put_str(jw, "name", p->name);
    json_write_key(jw, "page");
    json_write_bool(jw, p->page);
    if (p->page) {
      put_str(jw, "category", p->category);
      put_str(jw, "hours", p->hours);
      put_str(jw, "website", p->website);
    }
    break;
  }
  json_write_object_end(jw);
}

/* Columns every profile read selects, in this order. */
#define PROF_COLS                                                                        \
  "p.handle, p.name, p.bio, p.private, p.page, p.category, p.hours, p.website, a.phone"

static void col_copy(store_stmt *s, int col, char *out, size_t cap) {
  size_t n = 0;
  const char *t = store_col_text(s, col, &n);
  if (n >= cap) n = cap - 1;
  memcpy(out, t, n);
  out[n] = '\0';
}

static void prof_from_row(store_stmt *s, int first, prof *p) {
  col_copy(s, first + 0, p->handle, sizeof p->handle);
  col_copy(s, first + 1, p->name, sizeof p->name);
  col_copy(s, first + 2, p->bio, sizeof p->bio);
  p->priv = store_col_int64(s, first + 3) != 0;
  p->page = store_col_int64(s, first + 4) != 0;
  col_copy(s, first + 5, p->category, sizeof p->category);
  col_copy(s, first + 6, p->hours, sizeof p->hours);
  col_copy(s, first + 7, p->website, sizeof p->website);
  col_copy(s, first + 8, p->number, sizeof p->number);
}

/* Reads account's profile in app. 1 found, 0 not, or a store error. */
static int prof_read(app_id app, const uint8_t acc[ACCOUNTS_ID_BYTES], prof *p) {
  store_conn *c;
  store_stmt *s;
  int rc = store_reader_get(worker_self->store, &c);
  if (rc == 0)
    rc =
        store_conn_prepare(c,
                           "SELECT " PROF_COLS " FROM profiles p JOIN accounts a"
                           " ON a.id = p.account_id WHERE p.account_id = ? AND p.app = ?",
                           &s);
  if (rc) return rc;
  store_bind_blob(s, 1, BYTES(acc, ACCOUNTS_ID_BYTES));
  store_bind_str(s, 2, app_name(app));
  rc = store_step(s);
  if (rc == STORE_ROW) prof_from_row(s, 0, p);
  store_stmt_reset(s);
  return rc == STORE_ROW ? 1 : rc;
}

static void write_put(app_op *o, json_writer *jw) {
  json_write_key(jw, "profile");
  write_prof(jw, o->app, o->data);
}

static int run_put(store_conn *c, app_op *o) {
  prof *p = o->data;
  store_stmt *s;
  int rc;
  if (o->app == APP_CHAT) {
    rc = store_conn_prepare(
        c, "SELECT phone FROM accounts WHERE id = ? AND phone_verified = 1", &s);
    if (rc) return rc;
    store_bind_blob(s, 1, BYTES(o->me, sizeof o->me));
    rc = store_step(s);
    if (rc == STORE_ROW) col_copy(s, 0, p->number, sizeof p->number);
    store_stmt_reset(s);
    if (rc < 0) return rc;
    if (rc != STORE_ROW)
      return app_op_refuse(o, 409, "phone_unverified",
                           "a chat profile needs a verified phone number: verify one with"
                           " POST /v1/phone/codes and /v1/phone/verify first");
  }
  if ((rc = profiles_exists(c, o->app, o->me)) < 0) return rc;
  o->ok_status = rc == 1 ? 200 : 201;
  rc = store_conn_prepare(
      c,
      "INSERT INTO profiles(account_id, app, handle, name, bio, private, page, category,"
      " hours, website, created_at, updated_at) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)"
      " ON CONFLICT(account_id, app) DO UPDATE SET handle = excluded.handle,"
      " name = excluded.name, bio = excluded.bio, private = excluded.private,"
      " page = excluded.page, category = excluded.category, hours = excluded.hours,"
      " website = excluded.website, updated_at = excluded.updated_at",
      &s);
  if (rc) return rc;
  store_bind_blob(s, 1, BYTES(o->me, sizeof o->me));
  store_bind_str(s, 2, app_name(o->app));
  if (o->app == APP_CHAT)
    store_bind_null(s, 3);
  else
    store_bind_str(s, 3, p->handle);
  store_bind_str(s, 4, p->name);
  store_bind_str(s, 5, p->bio);
  store_bind_int64(s, 6, p->priv);
  store_bind_int64(s, 7, p->page);
  store_bind_str(s, 8, p->category);
  store_bind_str(s, 9, p->hours);
  store_bind_str(s, 10, p->website);
  store_bind_int64(s, 11, o->now);
  store_bind_int64(s, 12, o->now);
  rc = store_stmt_run(s);
  if (rc == TSR_ECONFLICT)
    return app_op_refuse(o, 409, "conflict",
                         o->app == APP_SOCIAL ? "handle already taken in social"
                                              : "username already taken in messenger");
  if (rc) return rc;
  /* No longer a page: it has no followers. */
  if (o->app == APP_MESSENGER && !p->page) return graphs_remove_page_followers(c, o->me);
  return 0;
}

static int run_delete(store_conn *c, app_op *o) {
  store_stmt *s;
  int rc =
      store_conn_prepare(c, "DELETE FROM profiles WHERE account_id = ? AND app = ?", &s);
  if (rc) return rc;
  store_bind_blob(s, 1, BYTES(o->me, sizeof o->me));
  store_bind_str(s, 2, app_name(o->app));
  if ((rc = store_stmt_run(s)) != 0) return rc;
  if (store_conn_changes(c) != 1)
    return app_op_refuse(o, 404, "not_found", "you have no profile in this app");
  if ((rc = graphs_remove_app(c, o->app, o->me)) != 0) return rc;
  return reach_remove_app(c, o->app, o->me);
}

static int own_profile(const httpd_req *r, httpd_resp *resp, app_id app,
                       const uint8_t me[ACCOUNTS_ID_BYTES]) {
  http_method m = r->req->method == HTTP_HEAD ? HTTP_GET : r->req->method;
  if (m == HTTP_GET) {
    prof p;
    int rc = prof_read(app, me, &p);
    if (rc < 0) return -1;
    if (rc == 0)
      return app_error(resp, 404, "not_found", "you have no profile in this app");
    json_writer jw;
    json_writer_init(&jw, resp->body, 8);
    json_write_object_begin(&jw);
    json_write_key(&jw, "profile");
    write_prof(&jw, app, &p);
    json_write_object_end(&jw);
    return json_writer_finish(&jw) == 0 ? 0 : -1;
  }
  app_op *o = app_op_new(app);
  if (!o) return app_error(resp, 503, "busy", "server busy; retry later");
  memcpy(o->me, me, sizeof o->me);
  if (m == HTTP_DELETE) {
    o->run = run_delete;
    return app_op_start(r, resp, o);
  }
  if (m != HTTP_PUT) {
    app_op_free(o);
    return app_error(resp, 405, "method_not_allowed", "use GET, PUT or DELETE");
  }
  app_body b;
  prof *p = calloc(1, sizeof *p);
  o->data = p;
  if (!p) {
    app_op_free(o);
    return app_error(resp, 503, "busy", "server busy; retry later");
  }
  const char *err = "body must be a JSON object";
  if (!app_body_parse(r, &b) || (err = parse_profile(app, &b, p)) != NULL) {
    app_op_free(o);
    return app_error(resp, 400, "bad_request", err);
  }
  o->run = run_put;
  o->write_ok = write_put;
  return app_op_start(r, resp, o);
}

static int lookup(httpd_resp *resp, app_id app, const char *key,
                  const uint8_t me[ACCOUNTS_ID_BYTES]) {
  char k[APP_SEG_BYTES];
  if (!profiles_key_normalize(app, key, k))
    return app_error(resp, 400, "bad_request",
                     app == APP_CHAT ? "not an E.164 number"
                                     : "not a valid handle or username");
  uint8_t acc[ACCOUNTS_ID_BYTES];
  int rc = profiles_resolve(NULL, app, k, acc);
  if (rc == TSR_ENOTFOUND || (rc == 0 && blocks_between(NULL, me, acc)))
    return app_error(resp, 404, "not_found", "no such profile");
  if (rc) return -1;
  prof p;
  rc = prof_read(app, acc, &p);
  if (rc < 0) return -1;
  if (rc == 0) return app_error(resp, 404, "not_found", "no such profile");
  json_writer jw;
  json_writer_init(&jw, resp->body, 8);
  json_write_object_begin(&jw);
  json_write_key(&jw, "profile");
  write_prof(&jw, app, &p);
  json_write_object_end(&jw);
  return json_writer_finish(&jw) == 0 ? 0 : -1;
}

/* Hides profiles of accounts blocked either way by the caller (bound
 * twice). Plain '?' parameters only: the PostgreSQL backend rewrites them. */
#define NOT_BLOCKED                                                                      \
  " AND NOT EXISTS (SELECT 1 FROM blocks b WHERE (b.blocker_id = ? AND"                  \
  " b.blocked_id = p.account_id) OR (b.blocker_id = p.account_id AND b.blocked_id = ?))"
static int search(const httpd_req *r, httpd_resp *resp, app_id app,
                  const uint8_t me[ACCOUNTS_ID_BYTES]) {
  char q[APP_SEG_BYTES], lim[16], k[APP_SEG_BYTES], upper[APP_SEG_BYTES + 1];
  size_t ql = 0, ll = 0;
  int64_t limit = SEARCH_LIMIT_DEFAULT;
  int hq = http_query_get(r->req->query, "q", q, sizeof q, &ql);
  int hl = http_query_get(r->req->query, "limit", lim, sizeof lim, &ll);
  if (hl < 0) return app_error(resp, 400, "bad_request", "limit must be 1-50");
  if (hl == 1) {
    char *end = NULL;
    limit = strtoll(lim, &end, 10);
    if (!ll || *end || limit < 1 || limit > SEARCH_LIMIT_MAX)
      return app_error(resp, 400, "bad_request", "limit must be 1-50");
  }
  bool ok = hq == 1;
  if (ok && app == APP_CHAT) {
    ok = valid_number(q);
    if (ok) memcpy(k, q, ql + 1);
  } else if (ok) {
    /* A prefix: 1-30 characters of the handle alphabet. */
    ok = ql >= 1 && ql <= PROFILES_KEY_MAX;
    for (size_t i = 0; ok && i < ql; i++) {
      char c = q[i];
      if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
      ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_';
      k[i] = c;
    }
    k[ql] = '\0';
    memcpy(upper, k, ql);
    upper[ql] = 0x7f;
    upper[ql + 1] = '\0';
  }
  if (!ok)
    return app_error(resp, 400, "bad_request",
                     app == APP_CHAT ? "q must be an E.164 number (exact match)"
                                     : "q must be 1-30 characters [a-z0-9._]");
  store_conn *c;
  store_stmt *s;
  int rc = store_reader_get(worker_self->store, &c);
  if (rc == 0)
    rc = store_conn_prepare(
        c,
        app == APP_CHAT
            ? "SELECT " PROF_COLS
              " FROM accounts a JOIN profiles p ON p.account_id = a.id"
              " AND p.app = 'chat' WHERE a.phone = ? AND a.phone_verified = 1" NOT_BLOCKED
              " LIMIT ?"
            /* [k, k 0x7f): every handle starting with k (all of its
             * characters sort below 0x7f), in the index's order. */
            : "SELECT " PROF_COLS
              " FROM profiles p JOIN accounts a ON a.id = p.account_id"
              " WHERE p.app = ? AND p.handle >= ? AND p.handle < ?" NOT_BLOCKED
              " ORDER BY p.handle LIMIT ?",
        &s);
  if (rc) return -1;
  int i = 1;
  if (app != APP_CHAT) store_bind_str(s, i++, app_name(app));
  store_bind_str(s, i++, k);
  if (app != APP_CHAT) store_bind_str(s, i++, upper);
  store_bind_blob(s, i++, BYTES(me, ACCOUNTS_ID_BYTES));
  store_bind_blob(s, i++, BYTES(me, ACCOUNTS_ID_BYTES));
  store_bind_int64(s, i, limit);
  json_writer jw;
  json_writer_init(&jw, resp->body, 8);
  json_write_object_begin(&jw);
  json_write_key(&jw, "results");
  json_write_array_begin(&jw);
  prof p;
  while ((rc = store_step(s)) == STORE_ROW) {
    prof_from_row(s, 0, &p);
    write_prof(&jw, app, &p);
  }
  store_stmt_reset(s);
  json_write_array_end(&jw);
  json_write_object_end(&jw);
  if (rc < 0) return -1;
  return json_writer_finish(&jw) == 0 ? 0 : -1;
}

/* /v1/apps/{app}/profile | /profiles/{key} | /search */
static int h_apps(const httpd_req *r, httpd_resp *resp) {
  uint8_t me[ACCOUNTS_ID_BYTES];
  if (!app_auth(r, resp, me)) return 0;
  app_path p;
  if (!app_path_split(r, &p) || p.n < 4)
    return app_error(resp, 404, "not_found", "no such resource");
  int app = app_parse(p.seg[2]);
  if (app < 0)
    return app_error(resp, 404, "not_found", "no such app (chat, social or messenger)");
  http_method m = r->req->method == HTTP_HEAD ? HTTP_GET : r->req->method;
  if (p.n == 4 && strcmp(p.seg[3], "profile") == 0) return own_profile(r, resp, app, me);
  if (m == HTTP_GET && p.n == 5 && strcmp(p.seg[3], "profiles") == 0)
    return lookup(resp, app, p.seg[4], me);
  if (m == HTTP_GET && p.n == 6 && strcmp(p.seg[3], "profiles") == 0 &&
      strcmp(p.seg[5], "posts") == 0)
    return posts_grid(r, resp, app, p.seg[4], me);
  if (m == HTTP_GET && p.n == 4 && strcmp(p.seg[3], "search") == 0)
    return search(r, resp, app, me);
  return app_error(resp, 404, "not_found", "no such resource");
}

int profiles_routes(void) {
  static const http_method ms[] = {HTTP_GET, HTTP_PUT, HTTP_DELETE, HTTP_POST};
  for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
    int rc = httpd_route_add(ms[i], "/v1/apps", h_apps);
    if (rc) return rc;
  }
  return 0;
}
