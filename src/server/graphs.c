/* The apps' graphs: see graphs.h and docs/protocol.md. */
#include "server/graphs.h"

#include <stdlib.h>
#include <string.h>

#include "proto/json.h"
#include "server/blocks.h"
#include "server/clock.h"
#include "server/notify.h"
#include "server/posts.h"
#include "server/timelines.h"
#include "server/worker.h"
#include "tessera/error.h"

#define CONTACTS_MAX 1000 /* numbers in one address book upload */
#define NUMBER_BYTES 17

/* ---- store helpers (writer or reader) --------------------------------- */

/* Runs sql with the given account ids bound in order. */
static int run_ids(store_conn *c, const char *sql, const uint8_t *a, const uint8_t *b) {
  store_stmt *s;
  int rc = store_conn_prepare(c, sql, &s);
  if (rc) return rc;
  store_bind_blob(s, 1, BYTES(a, ACCOUNTS_ID_BYTES));
  if (b) store_bind_blob(s, 2, BYTES(b, ACCOUNTS_ID_BYTES));
  return store_stmt_run(s);
}

/* 1 when sql (ids bound in order) returns a row, 0 when not, or an error. */
static int exists_ids(store_conn *c, const char *sql, const uint8_t *const *ids, int n) {
  int rc = c ? 0 : store_reader_get(worker_self->store, &c);
  store_stmt *s;
  if (rc == 0) rc = store_conn_prepare(c, sql, &s);
  if (rc) return rc;
  for (int i = 0; i < n; i++) store_bind_blob(s, i + 1, BYTES(ids[i], ACCOUNTS_ID_BYTES));
  rc = store_step(s);
  store_stmt_reset(s);
  return rc == STORE_ROW ? 1 : rc;
}

/* Edge tables with (from, to) columns, removed both ways by a block. */
#define BETWEEN_TIMELINE(t)                                                              \
  "DELETE FROM " t " WHERE owner_id = ? AND post_id IN (SELECT id FROM posts WHERE"      \
  " author_id = ?)"
static const char *const between_sql[] = {
    "DELETE FROM social_follows WHERE follower_id = ? AND followee_id = ?",
    "DELETE FROM social_follow_requests WHERE requester_id = ? AND target_id = ?",
    "DELETE FROM messenger_friend_requests WHERE requester_id = ? AND target_id = ?",
    "DELETE FROM messenger_friends WHERE account_id = ? AND friend_id = ?",
    "DELETE FROM messenger_page_follows WHERE follower_id = ? AND page_id = ?",
    "DELETE FROM close_friends WHERE owner_id = ? AND friend_id = ?",
    TIMELINE_TABLES(BETWEEN_TIMELINE),
};

int graphs_remove_between(store_conn *c, const uint8_t a[ACCOUNTS_ID_BYTES],
                          const uint8_t b[ACCOUNTS_ID_BYTES]) {
  for (size_t i = 0; i < sizeof between_sql / sizeof between_sql[0]; i++) {
    int rc = run_ids(c, between_sql[i], a, b);
    if (rc == 0) rc = run_ids(c, between_sql[i], b, a);
    if (rc) return rc;
  }
  return 0;
}

int graphs_remove_page_followers(store_conn *c,
                                 const uint8_t account[ACCOUNTS_ID_BYTES]) {
  return run_ids(c, "DELETE FROM messenger_page_follows WHERE page_id = ?", account,
                 NULL);
}

int graphs_remove_app(store_conn *c, app_id app,
                      const uint8_t account[ACCOUNTS_ID_BYTES]) {
  static const char *const chat[] = {"DELETE FROM chat_contacts WHERE owner_id = ?",
                                     NULL};
  static const char *const social[] = {
      "DELETE FROM social_follows WHERE follower_id = ?",
      "DELETE FROM social_follows WHERE followee_id = ?",
      "DELETE FROM social_follow_requests WHERE requester_id = ?",
      "DELETE FROM social_follow_requests WHERE target_id = ?", NULL};
  static const char *const messenger[] = {
      "DELETE FROM messenger_friends WHERE account_id = ?",
      "DELETE FROM messenger_friends WHERE friend_id = ?",
      "DELETE FROM messenger_friend_requests WHERE requester_id = ?",
      "DELETE FROM messenger_friend_requests WHERE target_id = ?",
      "DELETE FROM messenger_page_follows WHERE follower_id = ?",
      "DELETE FROM messenger_page_follows WHERE page_id = ?",
      NULL};
  const char *const *l = app == APP_CHAT ? chat : app == APP_SOCIAL ? social : messenger;
  for (; *l; l++) {
    int rc = run_ids(c, *l, account, NULL);
    if (rc) return rc;
  }
  return app == APP_CHAT ? 0 : posts_drop_timeline(c, app, account);
}

bool graph_in(store_conn *c, app_id app, const uint8_t owner[ACCOUNTS_ID_BYTES],
              const uint8_t other[ACCOUNTS_ID_BYTES]) {
  const uint8_t *ids[4] = {owner, other, other, owner};
  int rc;
  switch (app) {
  case APP_CHAT:
    rc = exists_ids(c,
                    "SELECT 1 FROM chat_contacts c JOIN accounts a ON a.phone = c.number"
                    " AND a.phone_verified = 1 JOIN profiles p ON p.account_id = a.id AND"
                    " p.app = 'chat' WHERE c.owner_id = ? AND a.id = ?",
                    ids, 2);
    break;
  case APP_SOCIAL:
    rc = exists_ids(
        c, "SELECT 1 FROM social_follows WHERE follower_id = ? AND followee_id = ?", ids,
        2);
    break;
  case APP_MESSENGER:
    rc = exists_ids(
        c,
        "SELECT 1 FROM messenger_friends WHERE account_id = ? AND friend_id = ?"
        " UNION ALL SELECT 1 FROM messenger_page_follows p"
        " JOIN profiles o ON o.account_id = p.page_id AND o.app = 'messenger'"
        " AND o.page = 1 WHERE p.follower_id = ? AND p.page_id = ?",
        ids, 4);
    break;
  default: return false;
  }
  return rc == 1;
}

/* ---- writes ------------------------------------------------------------ */

static const char *need_profile_msg(app_id app) {
  return app == APP_CHAT     ? "create your chat profile first"
         : app == APP_SOCIAL ? "create your social profile first"
                             : "create your messenger profile first";
}

/* Resolves o->key in o->app into o->other after checking the caller's own
 * profile, self and (with check_block) blocks. 0 or the refusal. */
static int target(store_conn *c, app_op *o, bool check_block) {
  int rc = profiles_exists(c, o->app, o->me);
  if (rc < 0) return rc;
  if (rc == 0) return app_op_refuse(o, 403, "forbidden", need_profile_msg(o->app));
  rc = profiles_resolve(c, o->app, o->key, o->other);
  if (rc == TSR_ENOTFOUND) return app_op_refuse(o, 404, "not_found", "no such profile");
  if (rc) return rc;
  if (memcmp(o->me, o->other, ACCOUNTS_ID_BYTES) == 0)
    return app_op_refuse(o, 400, "bad_request", "that is your own profile");
  if (check_block && blocks_between(c, o->me, o->other))
    return app_op_refuse(o, 403, "forbidden", "blocked");
  return 0;
}

static int run_follow(store_conn *c, app_op *o) {
  int rc = target(c, o, true);
  if (rc) return rc;
  const uint8_t *ids[2] = {o->me, o->other};
  rc = exists_ids(
      c, "SELECT 1 FROM social_follows WHERE follower_id = ? AND followee_id = ?", ids,
      2);
  if (rc < 0) return rc;
  if (rc == 1) {
    o->state = "following";
    return 0;
  }
  rc = exists_ids(c,
                  "SELECT 1 FROM profiles WHERE account_id = ? AND app = 'social' AND"
                  " private = 1",
                  ids + 1, 1);
  if (rc < 0) return rc;
  bool priv = rc == 1;
  store_stmt *s;
  if ((rc = store_conn_prepare(
           c,
           priv
               ? "INSERT INTO social_follow_requests(requester_id, target_id, created_at)"
                 " VALUES(?,?,?) ON CONFLICT DO NOTHING"
               : "INSERT INTO social_follows(follower_id, followee_id, created_at)"
                 " VALUES(?,?,?) ON CONFLICT DO NOTHING",
           &s)) != 0)
    return rc;
  o->state = priv ? "requested" : "following";
  store_bind_blob(s, 1, BYTES(o->me, ACCOUNTS_ID_BYTES));
  store_bind_blob(s, 2, BYTES(o->other, ACCOUNTS_ID_BYTES));
  store_bind_int64(s, 3, o->now);
  if ((rc = store_stmt_run(s)) != 0 || store_conn_changes(c) != 1) return rc;
  if (!priv && (rc = posts_followed(c, APP_SOCIAL, o->me, o->other)) != 0) return rc;
  return notify_add(c, NULL, APP_SOCIAL, o->other, priv ? "follow_request" : "follow",
                    o->me, 0, 0, "", clock_now_ms());
}

static int run_unfollow(store_conn *c, app_op *o) {
  int rc = target(c, o, false);
  if (rc) return rc;
  o->state = "none";
  rc = run_ids(c, between_sql[0], o->me, o->other);
  if (rc == 0) rc = run_ids(c, between_sql[1], o->me, o->other);
  return rc ? rc : posts_unfollowed(c, APP_SOCIAL, o->me, o->other);
}

/* Removes the request other -> me from table (follow or friend requests);
 * refuses with 404 when there was none. */
static int take_request(store_conn *c, app_op *o, const char *sql, const char *none) {
  int rc = target(c, o, false);
  if (rc) return rc;
  if ((rc = run_ids(c, sql, o->other, o->me)) != 0) return rc;
  if (store_conn_changes(c) != 1) return app_op_refuse(o, 404, "not_found", none);
  return 0;
}

static int run_follow_approve(store_conn *c, app_op *o) {
  int rc = take_request(c, o, between_sql[1], "no follow request from that account");
  if (rc) return rc;
  store_stmt *s;
  if ((rc = store_conn_prepare(c,
                               "INSERT INTO social_follows(follower_id, followee_id,"
                               " created_at) VALUES(?,?,?) ON CONFLICT DO NOTHING",
                               &s)) != 0)
    return rc;
  store_bind_blob(s, 1, BYTES(o->other, ACCOUNTS_ID_BYTES));
  store_bind_blob(s, 2, BYTES(o->me, ACCOUNTS_ID_BYTES));
  store_bind_int64(s, 3, o->now);
  o->state = "approved";
  if ((rc = store_stmt_run(s)) != 0) return rc;
  return posts_followed(c, APP_SOCIAL, o->other, o->me);
}

static int run_follow_decline(store_conn *c, app_op *o) {
  o->state = "declined";
  return take_request(c, o, between_sql[1], "no follow request from that account");
}

static int befriend(store_conn *c, app_op *o) {
  store_stmt *s;
  for (int dir = 0; dir < 2; dir++) {
    int rc = store_conn_prepare(c,
                                "INSERT INTO messenger_friends(account_id, friend_id,"
                                " created_at) VALUES(?,?,?) ON CONFLICT DO NOTHING",
                                &s);
    if (rc) return rc;
    store_bind_blob(s, 1, BYTES(dir ? o->other : o->me, ACCOUNTS_ID_BYTES));
    store_bind_blob(s, 2, BYTES(dir ? o->me : o->other, ACCOUNTS_ID_BYTES));
    store_bind_int64(s, 3, o->now);
    if ((rc = store_stmt_run(s)) != 0) return rc;
  }
  o->state = "friends";
  int rc = posts_followed(c, APP_MESSENGER, o->me, o->other);
  return rc ? rc : posts_followed(c, APP_MESSENGER, o->other, o->me);
}

static int run_friend_request(store_conn *c, app_op *o) {
  int rc = target(c, o, true);
  if (rc) return rc;
  const uint8_t *ids[2] = {o->me, o->other};
  rc = exists_ids(
      c, "SELECT 1 FROM messenger_friends WHERE account_id = ? AND friend_id = ?", ids,
      2);
  if (rc < 0) return rc;
  if (rc == 1) {
    o->state = "friends";
    return 0;
  }
  /* They asked us already: this request accepts theirs. */
  if ((rc = run_ids(c, between_sql[2], o->other, o->me)) != 0) return rc;
  if (store_conn_changes(c) == 1) return befriend(c, o);
  store_stmt *s;
  if ((rc = store_conn_prepare(
           c,
           "INSERT INTO messenger_friend_requests(requester_id,"
           " target_id, created_at) VALUES(?,?,?) ON CONFLICT DO NOTHING",
           &s)) != 0)
    return rc;
  store_bind_blob(s, 1, BYTES(o->me, ACCOUNTS_ID_BYTES));
  store_bind_blob(s, 2, BYTES(o->other, ACCOUNTS_ID_BYTES));
  store_bind_int64(s, 3, o->now);
  o->state = "requested";
  return store_stmt_run(s);
}

static int run_friend_accept(store_conn *c, app_op *o) {
  int rc = take_request(c, o, between_sql[2], "no friend request from that account");
  return rc ? rc : befriend(c, o);
}

static int run_friend_decline(store_conn *c, app_op *o) {
  o->state = "declined";
  return take_request(c, o, between_sql[2], "no friend request from that account");
}

static int run_unfriend(store_conn *c, app_op *o) {
  int rc = target(c, o, false);
  if (rc) return rc;
  if ((rc = run_ids(c, between_sql[3], o->me, o->other)) != 0) return rc;
  if (store_conn_changes(c) != 1)
    return app_op_refuse(o, 404, "not_found", "not friends with that account");
  o->state = "none";
  if ((rc = run_ids(c, between_sql[3], o->other, o->me)) != 0 ||
      (rc = posts_unfollowed(c, APP_MESSENGER, o->me, o->other)) != 0)
    return rc;
  return posts_unfollowed(c, APP_MESSENGER, o->other, o->me);
}

static int run_page_follow(store_conn *c, app_op *o) {
  int rc = target(c, o, true);
  if (rc) return rc;
  const uint8_t *ids[1] = {o->other};
  rc = exists_ids(c,
                  "SELECT 1 FROM profiles WHERE account_id = ? AND app = 'messenger' AND"
                  " page = 1",
                  ids, 1);
  if (rc < 0) return rc;
  if (rc == 0) return app_op_refuse(o, 404, "not_found", "no such page");
  store_stmt *s;
  if ((rc = store_conn_prepare(c,
                               "INSERT INTO messenger_page_follows(follower_id, page_id,"
                               " created_at) VALUES(?,?,?) ON CONFLICT DO NOTHING",
                               &s)) != 0)
    return rc;
  store_bind_blob(s, 1, BYTES(o->me, ACCOUNTS_ID_BYTES));
  store_bind_blob(s, 2, BYTES(o->other, ACCOUNTS_ID_BYTES));
  store_bind_int64(s, 3, o->now);
  o->state = "following";
  if ((rc = store_stmt_run(s)) != 0 || store_conn_changes(c) != 1) return rc;
  if ((rc = posts_followed(c, APP_MESSENGER, o->me, o->other)) != 0) return rc;
  return notify_add(c, NULL, APP_MESSENGER, o->other, "follow", o->me, 0, 0, "",
                    clock_now_ms());
}

static int run_page_unfollow(store_conn *c, app_op *o) {
  int rc = target(c, o, false);
  if (rc) return rc;
  o->state = "none";
  rc = run_ids(c, between_sql[4], o->me, o->other);
  return rc ? rc : posts_unfollowed(c, APP_MESSENGER, o->me, o->other);
}

/* ---- chat contacts ---------------------------------------------------- */

/* Invariant: n <= CONTACTS_MAX, num[0..n) valid E.164 and distinct. */
typedef struct {
  int n;
  char num[CONTACTS_MAX][NUMBER_BYTES];
  bool registered[CONTACTS_MAX];
} contacts_in;

static int run_contacts(store_conn *c, app_op *o) {
  contacts_in *in = o->data;
  int rc = profiles_exists(c, APP_CHAT, o->me);
  if (rc < 0) return rc;
  if (rc == 0) return app_op_refuse(o, 403, "forbidden", need_profile_msg(APP_CHAT));
  if ((rc = run_ids(c, "DELETE FROM chat_contacts WHERE owner_id = ?", o->me, NULL)) != 0)
    return rc;
  for (int i = 0; i < in->n; i++) {
    store_stmt *s;
    if ((rc = store_conn_prepare(c,
                                 "INSERT INTO chat_contacts(owner_id, number) VALUES(?,?)"
                                 " ON CONFLICT DO NOTHING",
                                 &s)) != 0)
      return rc;
    store_bind_blob(s, 1, BYTES(o->me, ACCOUNTS_ID_BYTES));
    store_bind_str(s, 2, in->num[i]);
    if ((rc = store_stmt_run(s)) != 0) return rc;
    uint8_t acc[ACCOUNTS_ID_BYTES];
    rc = profiles_resolve(c, APP_CHAT, in->num[i], acc);
    if (rc && rc != TSR_ENOTFOUND) return rc;
    in->registered[i] =
        rc == 0 && memcmp(acc, o->me, sizeof acc) != 0 && !blocks_between(c, o->me, acc);
  }
  return 0;
}

static void write_contacts(app_op *o, json_writer *jw) {
  contacts_in *in = o->data;
  json_write_key(jw, "registered");
  json_write_array_begin(jw);
  for (int i = 0; i < in->n; i++)
    if (in->registered[i]) json_write_string(jw, in->num[i]);
  json_write_array_end(jw);
}

static int post_contacts(const httpd_req *r, httpd_resp *resp, app_op *o) {
  static const char *err = "body must be {\"numbers\": [up to 1000 E.164 numbers]}";
  app_body b;
  int arr = -1;
  if (app_body_parse(r, &b)) arr = json_object_get(b.buf, b.t, 0, "numbers");
  if (arr < 0 || b.t[arr].type != JSON_ARRAY) {
    app_op_free(o);
    return app_error(resp, 400, "bad_request", err);
  }
  if (b.t[arr].size > CONTACTS_MAX) {
    app_op_free(o);
    return app_error(resp, 400, "too_many_contacts",
                     "at most 1000 numbers in one upload");
  }
  contacts_in *in = calloc(1, sizeof *in);
  o->data = in;
  if (!in) {
    app_op_free(o);
    return app_error(resp, 503, "busy", "server busy; retry later");
  }
  for (int i = json_first_child(b.t, arr); i >= 0; i = json_next_sibling(b.t, arr, i)) {
    char *num = in->num[in->n];
    if (b.t[i].type != JSON_STRING || b.t[i].size >= NUMBER_BYTES ||
        json_get_string(b.buf, b.t, i, num, NUMBER_BYTES, NULL, 0) != 0 ||
        !profiles_key_normalize(APP_CHAT, num, num)) {
      app_op_free(o);
      return app_error(resp, 400, "bad_request",
                       "every entry of 'numbers' must be an E.164 number");
    }
    bool dup = false;
    for (int k = 0; k < in->n && !dup; k++) dup = strcmp(in->num[k], num) == 0;
    if (!dup) in->n++;
  }
  o->run = run_contacts;
  o->write_ok = write_contacts;
  return app_op_start(r, resp, o);
}

/* ---- reads ------------------------------------------------------------ */

/* Writes "<name>": [{"<keyname>", "name", "since"}] from sql, whose columns
 * are handle, name, created_at and whose parameters are n copies of id. */
static int write_list(json_writer *jw, const char *name, const char *keyname,
                      const char *sql, const uint8_t *id, int n) {
  store_conn *c;
  store_stmt *s;
  int rc = store_reader_get(worker_self->store, &c);
  if (rc == 0) rc = store_conn_prepare(c, sql, &s);
  if (rc) return rc;
  for (int i = 1; i <= n; i++) store_bind_blob(s, i, BYTES(id, ACCOUNTS_ID_BYTES));
  json_write_key(jw, name);
  json_write_array_begin(jw);
  while ((rc = store_step(s)) == STORE_ROW) {
    size_t hl = 0, nl = 0;
    const char *h = store_col_text(s, 0, &hl), *nm = store_col_text(s, 1, &nl);
    json_write_object_begin(jw);
    json_write_key(jw, keyname);
    json_write_string_n(jw, h, hl);
    json_write_key(jw, keyname[0] == 'n' ? "display_name" : "name");
    json_write_string_n(jw, nm, nl);
    if (keyname[0] != 'n') {
      json_write_key(jw, "since");
      json_write_i64(jw, store_col_int64(s, 2));
    } else {
      json_write_key(jw, "mutual");
      json_write_bool(jw, store_col_int64(s, 3) != 0);
    }
    json_write_object_end(jw);
  }
  store_stmt_reset(s);
  json_write_array_end(jw);
  return rc < 0 ? rc : 0;
}

#define LIST(table, who, whom, app)                                                      \
  "SELECT p.handle, p.name, e.created_at FROM " table " e JOIN profiles p"               \
  " ON p.account_id = e." who " AND p.app = '" app "' WHERE e." whom " = ?"              \
  " ORDER BY p.handle"

static const char contacts_sql[] =
    "SELECT a.phone, p.name, 0 AS since,"
    " EXISTS (SELECT 1 FROM chat_contacts m WHERE m.owner_id = a.id AND m.number ="
    " (SELECT phone FROM accounts WHERE id = ? AND phone_verified = 1))"
    " FROM chat_contacts c JOIN accounts a ON a.phone = c.number AND a.phone_verified = 1"
    " JOIN profiles p ON p.account_id = a.id AND p.app = 'chat'"
    " WHERE c.owner_id = ? AND a.id <> ? AND NOT EXISTS (SELECT 1 FROM blocks b WHERE"
    " (b.blocker_id = ? AND b.blocked_id = a.id) OR (b.blocker_id = a.id AND"
    " b.blocked_id = ?)) ORDER BY a.phone";

/* One GET list answer: the lists named by which. */
static int get_lists(httpd_resp *resp, const uint8_t *me, const char *which) {
  json_writer jw;
  json_writer_init(&jw, resp->body, 8);
  json_write_object_begin(&jw);
  int rc = 0;
  if (strcmp(which, "contacts") == 0) {
    rc = write_list(&jw, "contacts", "number", contacts_sql, me, 5);
  } else if (strcmp(which, "followers") == 0) {
    rc =
        write_list(&jw, "followers", "handle",
                   LIST("social_follows", "follower_id", "followee_id", "social"), me, 1);
  } else if (strcmp(which, "following") == 0) {
    rc =
        write_list(&jw, "following", "handle",
                   LIST("social_follows", "followee_id", "follower_id", "social"), me, 1);
  } else if (strcmp(which, "follow-requests") == 0) {
    rc = write_list(&jw, "incoming", "handle",
                    LIST("social_follow_requests", "requester_id", "target_id", "social"),
                    me, 1);
    if (rc == 0)
      rc = write_list(
          &jw, "outgoing", "handle",
          LIST("social_follow_requests", "target_id", "requester_id", "social"), me, 1);
  } else if (strcmp(which, "friend-requests") == 0) {
    rc = write_list(
        &jw, "incoming", "username",
        LIST("messenger_friend_requests", "requester_id", "target_id", "messenger"), me,
        1);
    if (rc == 0)
      rc = write_list(
          &jw, "outgoing", "username",
          LIST("messenger_friend_requests", "target_id", "requester_id", "messenger"), me,
          1);
  } else if (strcmp(which, "friends") == 0) {
    rc = write_list(&jw, "friends", "username",
                    LIST("messenger_friends", "friend_id", "account_id", "messenger"), me,
                    1);
  } else { /* page followers; me is the page */
    rc = write_list(&jw, "followers", "username",
                    LIST("messenger_page_follows", "follower_id", "page_id", "messenger"),
                    me, 1);
  }
  json_write_object_end(&jw);
  if (rc) return -1;
  return json_writer_finish(&jw) == 0 ? 0 : -1;
}

/* ---- routing ---------------------------------------------------------- */

static int start(const httpd_req *r, httpd_resp *resp, app_op *o, app_run_fn run,
                 const char *key) {
  if (!profiles_key_normalize(o->app, key, o->key)) {
    bool social = o->app == APP_SOCIAL;
    app_op_free(o);
    return app_error(resp, 400, "bad_request",
                     social ? "not a valid handle" : "not a valid username");
  }
  o->run = run;
  return app_op_start(r, resp, o);
}

static int h_graphs(const httpd_req *r, httpd_resp *resp) {
  uint8_t me[ACCOUNTS_ID_BYTES];
  if (!app_auth(r, resp, me)) return 0;
  app_path p;
  if (!app_path_split(r, &p) || p.n < 4)
    return app_error(resp, 404, "not_found", "no such resource");
  app_id app = (app_id)app_parse(p.seg[2]);
  const char *what = p.seg[3];
  http_method m = r->req->method == HTTP_HEAD ? HTTP_GET : r->req->method;
  int n = p.n;
  if (m == HTTP_GET) {
    bool ok = n == 4 && ((app == APP_CHAT && strcmp(what, "contacts") == 0) ||
                         (app == APP_SOCIAL && (strcmp(what, "followers") == 0 ||
                                                strcmp(what, "following") == 0 ||
                                                strcmp(what, "follow-requests") == 0)) ||
                         (app == APP_MESSENGER && (strcmp(what, "friend-requests") == 0 ||
                                                   strcmp(what, "friends") == 0)));
    if (ok) return get_lists(resp, me, what);
    if (app == APP_MESSENGER && n == 6 && strcmp(what, "pages") == 0 &&
        strcmp(p.seg[5], "followers") == 0) {
      char k[APP_SEG_BYTES];
      uint8_t page[ACCOUNTS_ID_BYTES];
      if (!profiles_key_normalize(app, p.seg[4], k))
        return app_error(resp, 400, "bad_request", "not a valid username");
      int rc = profiles_resolve(NULL, app, k, page);
      if (rc == TSR_ENOTFOUND || (rc == 0 && blocks_between(NULL, me, page)))
        return app_error(resp, 404, "not_found", "no such page");
      if (rc) return -1;
      if (memcmp(page, me, sizeof me) != 0)
        return app_error(resp, 403, "forbidden",
                         "only the page's owner sees its followers");
      return get_lists(resp, me, "page-followers");
    }
    return app_error(resp, 404, "not_found", "no such resource");
  }
  app_op *o = app_op_new(app);
  if (!o) return app_error(resp, 503, "busy", "server busy; retry later");
  memcpy(o->me, me, sizeof o->me);
  if (m == HTTP_POST && app == APP_CHAT && n == 4 && strcmp(what, "contacts") == 0)
    return post_contacts(r, resp, o); /* owns o */
  app_run_fn run = NULL;
  if (app == APP_SOCIAL && n == 5 && strcmp(what, "follows") == 0)
    run = m == HTTP_POST ? run_follow : run_unfollow;
  else if (app == APP_SOCIAL && n == 6 && m == HTTP_POST &&
           strcmp(what, "follow-requests") == 0)
    run = strcmp(p.seg[5], "approve") == 0   ? run_follow_approve
          : strcmp(p.seg[5], "decline") == 0 ? run_follow_decline
                                             : NULL;
  else if (app == APP_MESSENGER && m == HTTP_POST && strcmp(what, "friend-requests") == 0)
    run = n == 5                                       ? run_friend_request
          : n == 6 && strcmp(p.seg[5], "accept") == 0  ? run_friend_accept
          : n == 6 && strcmp(p.seg[5], "decline") == 0 ? run_friend_decline
                                                       : NULL;
  else if (app == APP_MESSENGER && m == HTTP_DELETE && n == 5 &&
           strcmp(what, "friends") == 0)
    run = run_unfriend;
  else if (app == APP_MESSENGER && n == 6 && strcmp(what, "pages") == 0 &&
           strcmp(p.seg[5], "follow") == 0)
    run = m == HTTP_POST ? run_page_follow : run_page_unfollow;
  if (!run) {
    app_op_free(o);
    return app_error(resp, 404, "not_found", "no such resource");
  }
  return start(r, resp, o, run, p.seg[4]);
}

int graphs_routes(void) {
  static const struct {
    http_method m;
    const char *prefix;
  } t[] = {
      {HTTP_GET, "/v1/apps/chat/contacts"},
      {HTTP_POST, "/v1/apps/chat/contacts"},
      {HTTP_POST, "/v1/apps/social/follows"},
      {HTTP_DELETE, "/v1/apps/social/follows"},
      {HTTP_GET, "/v1/apps/social/follow-requests"},
      {HTTP_POST, "/v1/apps/social/follow-requests"},
      {HTTP_GET, "/v1/apps/social/followers"},
      {HTTP_GET, "/v1/apps/social/following"},
      {HTTP_GET, "/v1/apps/messenger/friend-requests"},
      {HTTP_POST, "/v1/apps/messenger/friend-requests"},
      {HTTP_GET, "/v1/apps/messenger/friends"},
      {HTTP_DELETE, "/v1/apps/messenger/friends"},
      {HTTP_GET, "/v1/apps/messenger/pages"},
      {HTTP_POST, "/v1/apps/messenger/pages"},
      {HTTP_DELETE, "/v1/apps/messenger/pages"},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    int rc = httpd_route_add(t[i].m, t[i].prefix, h_graphs);
    if (rc) return rc;
  }
  return 0;
}
