/* Comments, verdicts and appeals: see comments.h and docs/protocol.md. */
#include "server/comments.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/utf8.h"
#include "server/blocks.h"
#include "server/clock.h"
#include "server/graphs.h"
#include "server/posts.h"
#include "server/public.h"
#include "server/spam.h"
#include "server/worker.h"
#include "tessera/error.h"

#define TEXT_MAX 2200
#define NOTE_MAX 500
#define LIST_DEFAULT 50
#define LIST_MAX 100
#define SNIPPET 80 /* bytes of a comment quoted in its notification */

typedef struct {
  int64_t id, post, reply_to, top;
  char text[TEXT_MAX + 1];
  char note[NOTE_MAX + 1];
  spam_result verdict;
  notify_batch nb;
} comment_in;

/* A comment's row. */
typedef struct {
  int64_t post, reply_to;
  uint8_t author[ACCOUNTS_ID_BYTES];
  char verdict[8];
  char appeal[12];
} comment_row;

static int row_read(store_conn *c, int64_t id, comment_row *r) {
  store_stmt *s;
  int rc = store_conn_prepare(c,
                              "SELECT post_id, reply_to, author_id, verdict, appeal FROM"
                              " comments WHERE id = ?",
                              &s);
  if (rc) return rc;
  store_bind_int64(s, 1, id);
  rc = store_step(s);
  if (rc == STORE_ROW) {
    size_t n;
    const char *t;
    r->post = store_col_int64(s, 0);
    r->reply_to = store_col_int64(s, 1);
    bytes_t a = store_col_blob(s, 2);
    memset(r->author, 0, sizeof r->author);
    if (a.len == ACCOUNTS_ID_BYTES) memcpy(r->author, a.ptr, a.len);
    t = store_col_text(s, 3, &n);
    snprintf(r->verdict, sizeof r->verdict, "%.*s", (int)n, t);
    t = store_col_text(s, 4, &n);
    snprintf(r->appeal, sizeof r->appeal, "%.*s", (int)n, t);
  }
  store_stmt_reset(s);
  return rc == STORE_ROW ? 1 : rc;
}

int comments_write(json_writer *jw, store_conn *c, int64_t id) {
  store_stmt *s;
  if (!(c = pub_reader(c))) return TSR_EIO;
  int rc = store_conn_prepare(c,
                              "SELECT post_id, reply_to, author_id, app, text, verdict,"
                              " appeal, created_at, reason FROM comments WHERE id = ?",
                              &s);
  if (rc) return rc;
  store_bind_int64(s, 1, id);
  if ((rc = store_step(s)) != STORE_ROW) {
    store_stmt_reset(s);
    return rc < 0 ? rc : 0;
  }
  size_t n;
  uint8_t author[ACCOUNTS_ID_BYTES] = {0};
  bytes_t a = store_col_blob(s, 2);
  if (a.len == ACCOUNTS_ID_BYTES) memcpy(author, a.ptr, a.len);
  int app = app_parse(store_col_text(s, 3, &n));
  json_write_object_begin(jw);
  json_write_key(jw, "id");
  pub_write_id(jw, id);
  json_write_key(jw, "post");
  pub_write_id(jw, store_col_int64(s, 0));
  json_write_key(jw, "reply_to");
  pub_write_id_or_null(jw, store_col_int64(s, 1));
  pub_write_col(jw, "text", s, 4, false);
  pub_write_col(jw, "verdict", s, 5, false);
  pub_write_col(jw, "appeal", s, 6, true);
  json_write_key(jw, "created_at");
  json_write_i64(jw, store_col_int64(s, 7));
  pub_write_col(jw, "reason", s, 8, false);
  store_stmt_reset(s);
  json_write_key(jw, "author");
  rc = pub_write_profile(jw, c, app < 0 ? APP_SOCIAL : app, author);
  json_write_object_end(jw);
  return rc ? rc : 1;
}

/* ---- writing a comment ----------------------------------------------------- */

/* COUNT(*) of sql with (acc, a[, b]) bound (b when has_b). */
static int64_t count_sql(store_conn *c, const char *sql, const uint8_t *acc, int64_t a,
                         bool has_b, int64_t b, int *err) {
  store_stmt *s;
  int rc = store_conn_prepare(c, sql, &s);
  if (rc) {
    *err = rc;
    return 0;
  }
  store_bind_blob(s, 1, BYTES(acc, ACCOUNTS_ID_BYTES));
  store_bind_int64(s, 2, a);
  if (has_b) store_bind_int64(s, 3, b);
  rc = store_step(s);
  int64_t v = rc == STORE_ROW ? store_col_int64(s, 0) : 0;
  store_stmt_reset(s);
  if (rc < 0) *err = rc;
  return v;
}

/* The spam filter's behaviour signals for me commenting on h's post. */
static int classify(store_conn *c, app_op *o, const post_head *h, comment_in *in,
                    int64_t now, uint64_t *fp) {
  int err = 0;
  spam_input si = {.text = in->text, .len = strlen(in->text)};
  *fp = spam_fingerprint(in->text, si.len);
  store_stmt *s;
  int rc = store_conn_prepare(c, "SELECT created_at FROM accounts WHERE id = ?", &s);
  if (rc) return rc;
  store_bind_blob(s, 1, BYTES(o->me, ACCOUNTS_ID_BYTES));
  rc = store_step(s);
  int64_t created = rc == STORE_ROW ? store_col_int64(s, 0) : now / 1000;
  store_stmt_reset(s);
  if (rc < 0) return rc;
  si.account_age_s = now / 1000 - created;
  if (si.account_age_s < 0) si.account_age_s = 0;
  si.is_author = memcmp(o->me, h->author, ACCOUNTS_ID_BYTES) == 0;
  si.follows_author = !si.is_author && graph_in(c, o->app, o->me, h->author);
  static const char recent[] =
      "SELECT COUNT(*) FROM comments WHERE author_id = ? AND created_at > ?";
  si.recent_1m = (uint32_t)count_sql(c, recent, o->me, now - 60000, false, 0, &err);
  si.recent_1h = (uint32_t)count_sql(c, recent, o->me, now - 3600000, false, 0, &err);
  si.same_text_24h =
      (uint32_t)count_sql(c,
                          "SELECT COUNT(*) FROM comments WHERE author_id = ?"
                          " AND created_at > ? AND fingerprint = ?",
                          o->me, now - 86400000, true, (int64_t)*fp, &err);
  if (err) return err;
  spam_classify(&si, &in->verdict);
  return 0;
}

static int run_comment(store_conn *c, app_op *o) {
  comment_in *in = o->data;
  post_head h;
  int64_t now = clock_now_ms();
  int rc = posts_head_read(c, in->post, &h);
  if (rc < 0) return rc;
  if (rc == 0 || !posts_visible(c, o->app, &h, o->me))
    return app_op_refuse(o, 404, "not_found", "no such post");
  if ((rc = profiles_exists(c, o->app, o->me)) <= 0)
    return rc < 0 ? rc
                  : app_op_refuse(o, 403, "no_profile",
                                  "create your profile in this app first");
  comment_row parent = {0};
  if (in->reply_to) {
    rc = row_read(c, in->reply_to, &parent);
    if (rc < 0) return rc;
    if (rc == 0 || parent.post != in->post)
      return app_op_refuse(o, 400, "bad_request",
                           "reply_to must be a comment of this post");
    in->top = parent.reply_to ? parent.reply_to : in->reply_to;
  }
  uint64_t fp;
  if ((rc = classify(c, o, &h, in, now, &fp)) != 0) return rc;
  if ((rc = pub_next_id(c, "comments", now, &in->id)) != 0) return rc;
  static const char *const verdicts[] = {"ham", "held", "spam"};
  const char *v = verdicts[in->verdict.verdict];
  store_stmt *s;
  if ((rc = store_conn_prepare(
           c,
           "INSERT INTO comments(id, post_id, author_id, app, reply_to,"
           " text, verdict, reason, fingerprint, created_at)"
           " VALUES(?,?,?,?,?,?,?,?,?,?)",
           &s)) != 0)
    return rc;
  store_bind_int64(s, 1, in->id);
  store_bind_int64(s, 2, in->post);
  store_bind_blob(s, 3, BYTES(o->me, ACCOUNTS_ID_BYTES));
  store_bind_str(s, 4, app_name(o->app));
  if (in->top)
    store_bind_int64(s, 5, in->top);
  else
    store_bind_null(s, 5);
  store_bind_str(s, 6, in->text);
  store_bind_str(s, 7, v);
  store_bind_str(s, 8, in->verdict.reason);
  store_bind_int64(s, 9, (int64_t)fp);
  store_bind_int64(s, 10, now);
  if ((rc = store_stmt_run(s)) != 0) return rc;
  o->ok_status = 201;
  if (in->verdict.verdict != SPAM_HAM) return 0;
  return comments_decide(c, in->id, NULL, &in->nb);
}

static void write_comment(app_op *o, json_writer *jw) {
  comment_in *in = o->data;
  json_write_key(jw, "comment");
  if (comments_write(jw, NULL, in->id) != 1) json_write_null(jw);
  notify_push(&in->nb);
}

/* Counts a comment that became ham and notifies the post's author, the
 * parent's author and the people it mentions. */
static int counted(store_conn *c, int64_t id, const comment_row *r, notify_batch *nb) {
  post_head h;
  int rc = posts_head_read(c, r->post, &h);
  if (rc <= 0) return rc;
  store_stmt *s;
  if ((rc = store_conn_prepare(c, "UPDATE posts SET comments = comments + 1 WHERE id = ?",
                               &s)) != 0)
    return rc;
  store_bind_int64(s, 1, r->post);
  if ((rc = store_stmt_run(s)) != 0) return rc;
  if ((rc = store_conn_prepare(c, "SELECT app, text FROM comments WHERE id = ?", &s)) !=
      0)
    return rc;
  store_bind_int64(s, 1, id);
  char text[TEXT_MAX + 1] = "", snip[SNIPPET + 1];
  int app = APP_SOCIAL;
  if (store_step(s) == STORE_ROW) {
    size_t n;
    app = app_parse(store_col_text(s, 0, &n));
    const char *t = store_col_text(s, 1, &n);
    snprintf(text, sizeof text, "%.*s", (int)n, t);
  }
  store_stmt_reset(s);
  if (app < 0) app = APP_SOCIAL;
  size_t sn = utf8_valid_prefix((const uint8_t *)text,
                                strlen(text) > SNIPPET ? SNIPPET : strlen(text));
  memcpy(snip, text, sn);
  snip[sn] = '\0';
  int64_t now = clock_now_ms();
  if ((rc = notify_add(c, nb, app, h.author, "comment", r->author, r->post, id, snip,
                       now)) != 0)
    return rc;
  if (r->reply_to) {
    comment_row parent;
    if ((rc = row_read(c, r->reply_to, &parent)) < 0) return rc;
    if (rc == 1 && memcmp(parent.author, h.author, ACCOUNTS_ID_BYTES) != 0 &&
        posts_visible(c, app, &h, parent.author) &&
        (rc = notify_add(c, nb, app, parent.author, "reply", r->author, r->post, id, snip,
                         now)) != 0)
      return rc;
  }
  return posts_mentions(c, nb, app, &h, r->post, id, r->author, text, now);
}

int comments_decide(store_conn *c, int64_t id, const char *verdict, notify_batch *nb) {
  comment_row r;
  int rc = row_read(c, id, &r);
  if (rc <= 0) return rc < 0 ? rc : TSR_ENOTFOUND;
  bool was_ham = strcmp(r.verdict, "ham") == 0;
  if (!verdict) return counted(c, id, &r, nb); /* a new ham comment */
  bool ham = strcmp(verdict, "ham") == 0;
  store_stmt *s;
  if ((rc = store_conn_prepare(c,
                               "UPDATE comments SET verdict = ?, reason = 'review',"
                               " appeal = CASE WHEN appeal = 'pending' THEN ? ELSE appeal"
                               " END WHERE id = ?",
                               &s)) != 0)
    return rc;
  store_bind_str(s, 1, ham ? "ham" : "spam");
  store_bind_str(s, 2, ham ? "upheld" : "rejected");
  store_bind_int64(s, 3, id);
  if ((rc = store_stmt_run(s)) != 0) return rc;
  if (ham && !was_ham) return counted(c, id, &r, nb);
  if (!ham && was_ham) {
    if ((rc = store_conn_prepare(
             c, "UPDATE posts SET comments = comments - 1 WHERE id = ?", &s)) != 0)
      return rc;
    store_bind_int64(s, 1, r.post);
    if ((rc = store_stmt_run(s)) != 0) return rc;
    return notify_forget_comment(c, id);
  }
  return 0;
}

/* ---- deleting, appealing ---------------------------------------------------------- */

int comments_delete(store_conn *c, int64_t id) {
  comment_row r;
  int rc = row_read(c, id, &r);
  if (rc <= 0) return rc < 0 ? rc : TSR_ENOTFOUND;
  /* The ham ones among the comment and its replies leave the counter. */
  store_stmt *s;
  if ((rc = store_conn_prepare(
           c,
           "UPDATE posts SET comments = comments - (SELECT COUNT(*) FROM"
           " comments WHERE (id = ? OR reply_to = ?) AND verdict = 'ham')"
           " WHERE id = ?",
           &s)) != 0)
    return rc;
  store_bind_int64(s, 1, id);
  store_bind_int64(s, 2, id);
  store_bind_int64(s, 3, r.post);
  if ((rc = store_stmt_run(s)) != 0) return rc;
  static const char *const sql[] = {
      ("DELETE FROM notifications WHERE comment_id IN"
       " (SELECT id FROM comments WHERE id = ? OR reply_to = ?)"),
      ("UPDATE reports SET state = 'closed', action = 'deleted' WHERE state = 'open' AND"
       " comment_id IN (SELECT id FROM comments WHERE id = ? OR reply_to = ?)"),
      "DELETE FROM comments WHERE id = ? OR reply_to = ?",
  };
  for (size_t i = 0; i < sizeof sql / sizeof sql[0]; i++) {
    if ((rc = store_conn_prepare(c, sql[i], &s)) != 0) return rc;
    store_bind_int64(s, 1, id);
    store_bind_int64(s, 2, id);
    if ((rc = store_stmt_run(s)) != 0) return rc;
  }
  return 0;
}

/* The commenter, or the post's author (mine: the caller may act). */
static int load_own(store_conn *c, app_op *o, int64_t id, comment_row *r) {
  int rc = row_read(c, id, r);
  if (rc < 0) return rc;
  post_head h;
  int hr = rc == 1 ? posts_head_read(c, r->post, &h) : 0;
  if (hr < 0) return hr;
  if (rc == 0 || hr == 0) return app_op_refuse(o, 404, "not_found", "no such comment");
  if (memcmp(r->author, o->me, ACCOUNTS_ID_BYTES) != 0 &&
      memcmp(h.author, o->me, ACCOUNTS_ID_BYTES) != 0)
    return app_op_refuse(o, 404, "not_found", "no such comment");
  return 0;
}

static int run_delete(store_conn *c, app_op *o) {
  comment_in *in = o->data;
  comment_row r;
  int rc = load_own(c, o, in->id, &r);
  return rc ? rc : comments_delete(c, in->id);
}

static int run_appeal(store_conn *c, app_op *o) {
  comment_in *in = o->data;
  comment_row r;
  int rc = load_own(c, o, in->id, &r);
  if (rc) return rc;
  if (strcmp(r.verdict, "ham") == 0)
    return app_op_refuse(o, 409, "not_hidden", "that comment is not hidden");
  if (r.appeal[0])
    return app_op_refuse(o, 409, "already_appealed", "that comment was appealed already");
  store_stmt *s;
  if ((rc = store_conn_prepare(c,
                               "UPDATE comments SET appeal = 'pending', appeal_note = ?"
                               " WHERE id = ?",
                               &s)) != 0)
    return rc;
  store_bind_str(s, 1, in->note);
  store_bind_int64(s, 2, in->id);
  return store_stmt_run(s);
}

/* ---- reading ---------------------------------------------------------------------- */

static int list(const httpd_req *r, httpd_resp *resp, app_id app, int64_t post,
                const uint8_t me[ACCOUNTS_ID_BYTES]) {
  int limit;
  int64_t after;
  char hid[8] = "";
  size_t hl = 0;
  if (!pub_query_limit(r, LIST_DEFAULT, LIST_MAX, &limit) ||
      !pub_query_id(r, "after", &after) ||
      http_query_get(r->req->query, "hidden", hid, sizeof hid, &hl) < 0)
    return app_error(resp, 400, "bad_request", "limit must be 1-100, after a comment id");
  bool hidden = strcmp(hid, "true") == 0;
  store_conn *c;
  if (store_reader_get(worker_self->store, &c) != 0) return -1;
  post_head h;
  int rc = posts_head_read(c, post, &h);
  if (rc < 0) return -1;
  if (rc == 0 || !posts_visible(c, app, &h, me))
    return app_error(resp, 404, "not_found", "no such post");
  bool author = memcmp(h.author, me, ACCOUNTS_ID_BYTES) == 0;
  if (hidden && !author)
    return app_error(resp, 403, "forbidden",
                     "only the post's author sees hidden comments");
  store_stmt *s;
  if (store_conn_prepare(
          c,
          "SELECT id, author_id, verdict FROM comments WHERE post_id = ? AND"
          " id > ? ORDER BY id LIMIT ?",
          &s))
    return -1;
  store_bind_int64(s, 1, post);
  store_bind_int64(s, 2, after);
  store_bind_int64(s, 3, (int64_t)limit + 1);
  int64_t ids[LIST_MAX + 1];
  int n = 0;
  bool more = false;
  while ((rc = store_step(s)) == STORE_ROW) {
    if (n == limit) {
      more = true;
      break;
    }
    int64_t id = store_col_int64(s, 0);
    bytes_t a = store_col_blob(s, 1);
    size_t vl;
    bool ham = strcmp(store_col_text(s, 2, &vl), "ham") == 0;
    bool mine = a.len == ACCOUNTS_ID_BYTES && memcmp(a.ptr, me, ACCOUNTS_ID_BYTES) == 0;
    ids[n] = 0;
    if (a.len == ACCOUNTS_ID_BYTES && (hidden ? !ham : (ham || mine)) &&
        (mine || !blocks_between(c, me, a.ptr)))
      ids[n] = id;
    after = id;
    n++;
  }
  store_stmt_reset(s);
  if (rc < 0) return -1;
  json_writer jw;
  json_writer_init(&jw, resp->body, 8);
  json_write_object_begin(&jw);
  json_write_key(&jw, "comments");
  json_write_array_begin(&jw);
  for (int i = 0; i < n; i++)
    if (ids[i] && comments_write(&jw, c, ids[i]) < 0) return -1;
  json_write_array_end(&jw);
  json_write_key(&jw, "next");
  pub_write_id_or_null(&jw, more ? after : 0);
  json_write_object_end(&jw);
  return json_writer_finish(&jw) ? -1 : 0;
}

/* ---- routing ----------------------------------------------------------------------- */

int comments_on_post(const httpd_req *r, httpd_resp *resp, app_id app, int64_t post,
                     const uint8_t me[ACCOUNTS_ID_BYTES]) {
  http_method m = r->req->method == HTTP_HEAD ? HTTP_GET : r->req->method;
  if (m == HTTP_GET) return list(r, resp, app, post, me);
  if (m != HTTP_POST)
    return app_error(resp, 405, "method_not_allowed", "use GET or POST");
  comment_in *in = calloc(1, sizeof *in);
  if (!in) return app_error(resp, 503, "busy", "server busy; retry later");
  in->post = post;
  app_body b;
  char rt[PUB_ID_TEXT + 1];
  int k;
  const char *err = NULL;
  if (!app_body_parse(r, &b))
    err = "body must be a JSON object";
  else if (app_body_str(&b, 0, "text", in->text, sizeof in->text) != 1 || !in->text[0] ||
           !pub_text_ok(in->text, true))
    err = "field 'text' must be 1-2200 bytes of UTF-8 without control characters other"
          " than newline";
  else if ((k = app_body_str(&b, 0, "reply_to", rt, sizeof rt)) < 0 ||
           (k == 1 && !pub_id_parse(rt, &in->reply_to)))
    err = "field 'reply_to' must be a comment id";
  if (err) {
    free(in);
    return app_error(resp, 400, "bad_request", err);
  }
  return pub_op_start(r, resp, app, me, in, run_comment, write_comment);
}

static void write_appealed(app_op *o, json_writer *jw) {
  comment_in *in = o->data;
  json_write_key(jw, "comment");
  if (comments_write(jw, NULL, in->id) != 1) json_write_null(jw);
}

/* /v1/apps/{app}/comments/{id}[/appeal] */
static int h_comments(const httpd_req *r, httpd_resp *resp) {
  uint8_t me[ACCOUNTS_ID_BYTES];
  app_path p;
  app_id app;
  int64_t id;
  if (!pub_begin(r, resp, 5, &p, &app, me)) return 0;
  if (!pub_id_parse(p.seg[4], &id))
    return app_error(resp, 404, "not_found", "no such comment");
  comment_in *in = calloc(1, sizeof *in);
  if (!in) return app_error(resp, 503, "busy", "server busy; retry later");
  in->id = id;
  if (p.n == 5 && r->req->method == HTTP_DELETE)
    return pub_op_start(r, resp, app, me, in, run_delete, NULL);
  if (p.n == 6 && strcmp(p.seg[5], "appeal") == 0 && r->req->method == HTTP_POST) {
    app_body b;
    int k = 0;
    if (r->body.len &&
        (!app_body_parse(r, &b) ||
         (k = app_body_str(&b, 0, "note", in->note, sizeof in->note)) < 0 ||
         !pub_text_ok(in->note, true))) {
      free(in);
      return app_error(resp, 400, "bad_request",
                       "field 'note' must be at most 500 bytes of UTF-8");
    }
    return pub_op_start(r, resp, app, me, in, run_appeal, write_appealed);
  }
  free(in);
  return app_error(resp, 404, "not_found", "no such resource");
}

int comments_routes(void) {
  static const http_method ms[] = {HTTP_DELETE, HTTP_POST};
  return pub_routes_add("comments", ms, 2, h_comments);
}
