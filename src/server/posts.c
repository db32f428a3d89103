/* Posts, likes, timelines and feeds: see posts.h and docs/protocol.md. */
#include "server/posts.h"

#include <stdlib.h>
#include <string.h>

#include "server/blocks.h"
#include "server/clock.h"
#include "server/comments.h"
#include "server/graphs.h"
#include "server/log.h"
#include "server/media.h"
#include "server/notify.h"
#include "server/public.h"
#include "server/timelines.h"
#include "server/worker.h"
#include "tessera/error.h"

#define CAPTION_MAX 2200
#define LOCATION_MAX 100
#define ALT_MAX 500
#define MEDIA_MAX 10
#define TAGS_MAX 30
#define MENTIONS_MAX 20
#define HASH_BYTES MEDIA_HASH_BYTES
#define FEED_DEFAULT 20
#define FEED_MAX 50
#define BIG_MAX 500  /* fan-out-on-read authors one reader follows, merged */
#define ROUNDS_MAX 8 /* candidate batches per page before giving up */

/* ---- small store helpers ---------------------------------------------------- */

/* Runs sql with (id) or (id, account) bound. */
static int run_post_sql(store_conn *c, const char *sql, int64_t id, const uint8_t *acc) {
  store_stmt *s;
  int rc = store_conn_prepare(c, sql, &s);
  if (rc) return rc;
  store_bind_int64(s, 1, id);
  if (acc) store_bind_blob(s, 2, BYTES(acc, ACCOUNTS_ID_BYTES));
  return store_stmt_run(s);
}

int posts_head_read(store_conn *c, int64_t id, post_head *h) {
  store_stmt *s;
  int rc = store_conn_prepare(
      c, "SELECT author_id, apps, visibility, app FROM posts WHERE id = ?", &s);
  if (rc) return rc;
  store_bind_int64(s, 1, id);
  rc = store_step(s);
  if (rc == STORE_ROW) {
    bytes_t a = store_col_blob(s, 0);
    size_t n;
    if (a.len == ACCOUNTS_ID_BYTES) memcpy(h->author, a.ptr, ACCOUNTS_ID_BYTES);
    h->apps = (uint32_t)store_col_int64(s, 1);
    int v = pub_vis_parse(store_col_text(s, 2, &n));
    h->vis = v < 0 ? VIS_CLOSE_FRIENDS : (pub_vis)v;
    int ap = app_parse(store_col_text(s, 3, &n));
    h->app = ap < 0 ? APP_SOCIAL : (app_id)ap;
  }
  store_stmt_reset(s);
  return rc == STORE_ROW ? 1 : rc;
}

bool posts_visible(store_conn *c, app_id app, const post_head *h,
                   const uint8_t viewer[ACCOUNTS_ID_BYTES]) {
  pub_audience a = {h->author, h->apps, h->vis};
  if (!(h->apps & PUB_APP_BIT(app))) return false;
  return pub_can_see(c, app, &a, viewer);
}

/* ---- the post object ---------------------------------------------------------- */

static int write_media(json_writer *jw, store_conn *c, int64_t id) {
  store_stmt *s;
  int rc = store_conn_prepare(c,
                              "SELECT m.hash, m.kind, m.mime, m.width, m.height, p.alt"
                              " FROM post_media p JOIN media m ON m.hash = p.hash"
                              " WHERE p.post_id = ? ORDER BY p.idx",
                              &s);
  if (rc) return rc;
  store_bind_int64(s, 1, id);
  json_write_array_begin(jw);
  while ((rc = store_step(s)) == STORE_ROW) {
    json_write_object_begin(jw);
    json_write_key(jw, "id");
    pub_write_hash(jw, store_col_blob(s, 0));
    pub_write_col(jw, "kind", s, 1, false);
    pub_write_col(jw, "mime", s, 2, false);
    json_write_key(jw, "width");
    json_write_i64(jw, store_col_int64(s, 3));
    json_write_key(jw, "height");
    json_write_i64(jw, store_col_int64(s, 4));
    pub_write_col(jw, "alt", s, 5, false);
    json_write_object_end(jw);
  }
  store_stmt_reset(s);
  json_write_array_end(jw);
  return rc < 0 ? rc : 0;
}

/* Writes the strings sql (id bound to its nid parameters) returns in its
 * first column. */
static int write_strings(json_writer *jw, store_conn *c, const char *sql, int nid,
                         int64_t id) {
  store_stmt *s;
  int rc = store_conn_prepare(c, sql, &s);
  if (rc) return rc;
  for (int i = 1; i <= nid; i++) store_bind_int64(s, i, id);
  json_write_array_begin(jw);
  while ((rc = store_step(s)) == STORE_ROW) {
    size_t n;
    const char *t = store_col_text(s, 0, &n);
    json_write_string_n(jw, t, n);
  }
  store_stmt_reset(s);
  json_write_array_end(jw);
  return rc < 0 ? rc : 0;
}

static int cmp_name(const void *a, const void *b) {
  return strcmp((const char *)a, (const char *)b);
}

/* The names of the people post id mentions: their profiles in app (the
 * post's), in order. Each profile by its key (a join left to the planner
 * walked every profile of the app). */
static int write_mentions(json_writer *jw, store_conn *c, int64_t id, app_id app) {
  uint8_t acc[MENTIONS_MAX][ACCOUNTS_ID_BYTES];
  char names[MENTIONS_MAX][PROFILES_KEY_MAX + 1];
  int n = 0, k = 0;
  store_stmt *s;
  int rc = store_conn_prepare(
      c, "SELECT account_id FROM post_mentions WHERE post_id = ? LIMIT ?", &s);
  if (rc) return rc;
  store_bind_int64(s, 1, id);
  store_bind_int64(s, 2, MENTIONS_MAX);
  while ((rc = store_step(s)) == STORE_ROW) {
    bytes_t a = store_col_blob(s, 0);
    if (a.len == ACCOUNTS_ID_BYTES) memcpy(acc[n++], a.ptr, ACCOUNTS_ID_BYTES);
  }
  store_stmt_reset(s);
  if (rc < 0) return rc;
  for (int i = 0; i < n; i++) {
    if ((rc = store_conn_prepare(
             c, "SELECT handle FROM profiles WHERE account_id = ? AND app = ?", &s)) != 0)
      return rc;
    store_bind_blob(s, 1, BYTES(acc[i], ACCOUNTS_ID_BYTES));
    store_bind_str(s, 2, app_name(app));
    if ((rc = store_step(s)) == STORE_ROW) {
      size_t len;
      const char *t = store_col_text(s, 0, &len);
      if (len > PROFILES_KEY_MAX) len = PROFILES_KEY_MAX;
      memcpy(names[k], t, len);
      names[k++][len] = '\0';
    }
    store_stmt_reset(s);
    if (rc < 0) return rc;
  }
  qsort(names, (size_t)k, sizeof names[0], cmp_name);
  json_write_array_begin(jw);
  for (int i = 0; i < k; i++) json_write_string(jw, names[i]);
  json_write_array_end(jw);
  return 0;
}

static void write_apps(json_writer *jw, uint32_t apps) {
  json_write_array_begin(jw);
  for (int a = 0; a < APP_COUNT; a++)
    if (apps & PUB_APP_BIT(a)) json_write_string(jw, app_name((app_id)a));
  json_write_array_end(jw);
}

static int liked_by(store_conn *c, int64_t id, const uint8_t viewer[ACCOUNTS_ID_BYTES]) {
  store_stmt *s;
  int rc = store_conn_prepare(
      c, "SELECT 1 FROM likes WHERE post_id = ? AND account_id = ?", &s);
  if (rc) return rc;
  store_bind_int64(s, 1, id);
  store_bind_blob(s, 2, BYTES(viewer, ACCOUNTS_ID_BYTES));
  rc = store_step(s);
  store_stmt_reset(s);
  return rc == STORE_ROW ? 1 : rc;
}

int posts_write(json_writer *jw, store_conn *c, app_id app, int64_t id,
                const uint8_t viewer[ACCOUNTS_ID_BYTES]) {
  post_head h;
  if (!(c = pub_reader(c))) return TSR_EIO;
  int rc = posts_head_read(c, id, &h);
  if (rc <= 0) return rc;
  if (!posts_visible(c, app, &h, viewer)) return 0;
  store_stmt *s;
  if ((rc = store_conn_prepare(c,
                               "SELECT caption, location, likes, comments, views,"
                               " created_at, edited_at FROM posts WHERE id = ?",
                               &s)) != 0)
    return rc;
  store_bind_int64(s, 1, id);
  if ((rc = store_step(s)) != STORE_ROW) {
    store_stmt_reset(s);
    return rc < 0 ? rc : 0;
  }
  json_write_object_begin(jw);
  json_write_key(jw, "id");
  pub_write_id(jw, id);
  pub_write_col(jw, "caption", s, 0, false);
  pub_write_col(jw, "location", s, 1, false);
  static const char *const counters[] = {"likes", "comments", "views"};
  for (int i = 0; i < 3; i++) {
    json_write_key(jw, counters[i]);
    json_write_i64(jw, store_col_int64(s, 2 + i));
  }
  json_write_key(jw, "created_at");
  json_write_i64(jw, store_col_int64(s, 5));
  json_write_key(jw, "edited_at");
  json_write_i64(jw, store_col_int64(s, 6));
  store_stmt_reset(s);
  json_write_key(jw, "visibility");
  json_write_string(jw, pub_vis_name(h.vis));
  json_write_key(jw, "apps");
  write_apps(jw, h.apps);
  json_write_key(jw, "author");
  if ((rc = pub_write_profile(jw, c, app, h.author)) != 0) return rc;
  json_write_key(jw, "media");
  if ((rc = write_media(jw, c, id)) != 0) return rc;
  json_write_key(jw, "tags");
  if ((rc = write_strings(jw, c,
                          "SELECT tag FROM post_tags WHERE post_id = ? ORDER BY tag", 1,
                          id)) != 0)
    return rc;
  json_write_key(jw, "mentions");
  if ((rc = write_mentions(jw, c, id, h.app)) != 0) return rc;
  if ((rc = liked_by(c, id, viewer)) < 0) return rc;
  json_write_key(jw, "liked");
  json_write_bool(jw, rc == 1);
  json_write_object_end(jw);
  return 1;
}

/* ---- creating ------------------------------------------------------------------ */

typedef struct {
  uint8_t hash[HASH_BYTES];
  char alt[ALT_MAX + 1];
} media_in;

typedef struct {
  char caption[CAPTION_MAX + 1];
  char location[LOCATION_MAX + 1];
  int nmedia;
  media_in media[MEDIA_MAX];
  pub_vis vis;
  uint32_t apps;
  int64_t id;
  notify_batch nb;
} post_in;

/* Parses "media": [{"id", "alt"}]. NULL or the 400 message. */
static const char *parse_media(const app_body *b, post_in *p) {
  int arr = json_object_get(b->buf, b->t, 0, "media");
  if (arr < 0 || json_is_null(b->t, arr)) return NULL;
  if (b->t[arr].type != JSON_ARRAY) return "field 'media' must be an array";
  if (b->t[arr].size > MEDIA_MAX) return "at most ten media per post";
  int k = 0;
  for (int el = json_first_child(b->t, arr); el >= 0;
       el = json_next_sibling(b->t, arr, el), k++) {
    char hex[2 * HASH_BYTES + 2];
    if (b->t[el].type != JSON_OBJECT || app_body_str(b, el, "id", hex, sizeof hex) != 1 ||
        !media_id_parse(hex, p->media[k].hash))
      return "each media item must be an object with an 'id' from POST /v1/media";
    int rc = app_body_str(b, el, "alt", p->media[k].alt, sizeof p->media[k].alt);
    if (rc == 0) p->media[k].alt[0] = '\0';
    if (rc < 0 || !pub_text_ok(p->media[k].alt, false))
      return "field 'alt' must be a string of at most 500 bytes of UTF-8 without control"
             " characters";
    for (int j = 0; j < k; j++)
      if (memcmp(p->media[j].hash, p->media[k].hash, HASH_BYTES) == 0)
        return "the same media twice in one post";
    p->nmedia = k + 1;
  }
  return NULL;
}

static const char *parse_vis(const app_body *b, pub_vis *vis) {
  char v[16];
  int rc = app_body_str(b, 0, "visibility", v, sizeof v);
  *vis = VIS_PUBLIC;
  if (rc == 0) return NULL;
  int x = rc > 0 ? pub_vis_parse(v) : -1;
  if (x < 0) return "field 'visibility' must be 'public', 'followers' or 'close_friends'";
  *vis = (pub_vis)x;
  return NULL;
}

static const char *parse_text(const app_body *b, const char *key, char *out, size_t cap,
                              bool multiline, const char *err) {
  int rc = app_body_str(b, 0, key, out, cap);
  if (rc == 0) out[0] = '\0';
  return rc < 0 || !pub_text_ok(out, multiline) ? err : NULL;
}

static const char *parse_post(const app_body *b, app_id app, post_in *p) {
  const char *err;
  if ((err = parse_text(b, "caption", p->caption, sizeof p->caption, true,
                        "field 'caption' must be a string of at most 2200 bytes of UTF-8"
                        " without control characters other than newline")) ||
      (err = parse_text(b, "location", p->location, sizeof p->location, false,
                        "field 'location' must be a string of at most 100 bytes of UTF-8"
                        " without control characters")) ||
      (err = parse_media(b, p)) || (err = parse_vis(b, &p->vis)) ||
      (err = pub_parse_apps(b, app, &p->apps)))
    return err;
  if (!p->caption[0] && !p->nmedia) return "a post needs a caption or media";
  return NULL;
}

typedef struct {
  store_conn *c;
  int64_t id;
  int n;
  bool open;
  int rc;
} tag_ctx;

static bool add_tag(char kind, const char *word, void *arg) {
  tag_ctx *t = arg;
  if (kind != '#') return true;
  if (t->n == TAGS_MAX) return false;
  store_stmt *s;
  int rc = store_conn_prepare(t->c,
                              "INSERT INTO post_tags(tag, post_id, open) VALUES(?,?,?)"
                              " ON CONFLICT DO NOTHING",
                              &s);
  if (rc == 0) {
    store_bind_str(s, 1, word);
    store_bind_int64(s, 2, t->id);
    store_bind_int64(s, 3, t->open);
    rc = store_stmt_run(s);
  }
  if (rc) t->rc = rc;
  t->n += store_conn_changes(t->c) == 1;
  return rc == 0;
}

/* Writes the post's tags from its caption (replacing any). */
static int write_tags(store_conn *c, int64_t id, const char *caption, pub_vis vis,
                      const uint8_t author[ACCOUNTS_ID_BYTES]) {
  int rc = run_post_sql(c, "DELETE FROM post_tags WHERE post_id = ?", id, NULL);
  if (rc) return rc;
  int priv = pub_private(c, author);
  if (priv < 0) return priv;
  tag_ctx t = {c, id, 0, vis == VIS_PUBLIC && !priv, 0};
  pub_scan_words(caption, add_tag, &t);
  return t.rc;
}

typedef struct {
  store_conn *c;
  int64_t id, comment, now;
  app_id app;
  const post_head *h;
  const uint8_t *actor;
  notify_batch *nb;
  int n, rc;
} mention_ctx;

/* A post's mention is recorded (post_mentions) and notified once; a
 * comment's is notified. Only people who may see the post are notified. */
static bool add_mention(char kind, const char *word, void *arg) {
  mention_ctx *m = arg;
  if (kind != '@') return true;
  if (m->n == MENTIONS_MAX) return false;
  uint8_t acc[ACCOUNTS_ID_BYTES];
  int rc = profiles_resolve(m->c, m->app, word, acc);
  if (rc == TSR_ENOTFOUND || (rc == 0 && memcmp(acc, m->actor, sizeof acc) == 0))
    return true;
  store_stmt *s;
  if (rc == 0 && !m->comment)
    rc = store_conn_prepare(m->c,
                            "INSERT INTO post_mentions(post_id, account_id) VALUES(?,?)"
                            " ON CONFLICT DO NOTHING",
                            &s);
  if (rc == 0 && !m->comment) {
    store_bind_int64(s, 1, m->id);
    store_bind_blob(s, 2, BYTES(acc, sizeof acc));
    rc = store_stmt_run(s);
  }
  if (rc == 0 && (m->comment || store_conn_changes(m->c) == 1)) {
    m->n++;
    if (posts_visible(m->c, m->app, m->h, acc))
      rc = notify_add(m->c, m->nb, m->app, acc, "mention", m->actor, m->id, m->comment,
                      "", m->now);
  }
  m->rc = rc;
  return rc == 0;
}

int posts_mentions(store_conn *c, notify_batch *nb, app_id app, const post_head *h,
                   int64_t post, int64_t comment, const uint8_t actor[ACCOUNTS_ID_BYTES],
                   const char *text, int64_t now) {
  mention_ctx m = {c, post, comment, now, app, h, actor, nb, 0, 0};
  pub_scan_words(text, add_mention, &m);
  return m.rc;
}

static int bind_author(store_stmt *s, int from, app_id app, const uint8_t *author) {
  int n = app == APP_MESSENGER ? 2 : 1;
  for (int i = 0; i < n; i++)
    store_bind_blob(s, from + i, BYTES(author, ACCOUNTS_ID_BYTES));
  return from + n;
}

/* 1 when author's posts in app are read at feed time, 0 when written out,
 * or an error; marks the author when they passed the threshold. */
static int read_path(store_conn *c, app_id app, const uint8_t author[ACCOUNTS_ID_BYTES],
                     int64_t now) {
  store_stmt *s;
  int rc = store_conn_prepare(
      c, "SELECT 1 FROM fanout_read WHERE account_id = ? AND app = ?", &s);
  if (rc) return rc;
  store_bind_blob(s, 1, BYTES(author, ACCOUNTS_ID_BYTES));
  store_bind_int64(s, 2, app);
  rc = store_step(s);
  store_stmt_reset(s);
  if (rc != STORE_DONE) return rc == STORE_ROW ? 1 : rc;
  static const char *const count_sql[APP_COUNT] = {
      [APP_SOCIAL] = "SELECT COUNT(*) FROM (SELECT follower_id FROM social_follows"
                     " WHERE followee_id = ? LIMIT ?) t",
      [APP_MESSENGER] = "SELECT COUNT(*) FROM (SELECT friend_id FROM messenger_friends"
                        " WHERE account_id = ? UNION SELECT follower_id FROM"
                        " messenger_page_follows WHERE page_id = ? LIMIT ?) t",
  };
  uint32_t threshold = worker_self->cfg->fanout_threshold;
  if ((rc = store_conn_prepare(c, count_sql[app], &s)) != 0) return rc;
  int i = bind_author(s, 1, app, author);
  store_bind_int64(s, i, (int64_t)threshold + 1);
  rc = store_step(s);
  int64_t n = rc == STORE_ROW ? store_col_int64(s, 0) : 0;
  store_stmt_reset(s);
  if (rc < 0) return rc;
  if (n <= threshold) return 0;
  if ((rc = store_conn_prepare(c,
                               "INSERT INTO fanout_read(account_id, app, since)"
                               " VALUES(?,?,?) ON CONFLICT DO NOTHING",
                               &s)) != 0)
    return rc;
  store_bind_blob(s, 1, BYTES(author, ACCOUNTS_ID_BYTES));
  store_bind_int64(s, 2, app);
  store_bind_int64(s, 3, now);
  rc = store_stmt_run(s);
  return rc ? rc : 1;
}

/* Writes post id into the timelines of its audience in app (through the
 * buffer: timelines.h). */
static int fan_out(store_conn *c, app_id app, const post_head *h, int64_t id,
                   int64_t now) {
  store_stmt *s;
  int rc;
  if (h->vis == VIS_CLOSE_FRIENDS) {
    if ((rc = store_conn_prepare(c,
                                 "INSERT INTO timeline_buffer(owner_id, app,"
                                 " post_id) SELECT friend_id, ?, ? FROM close_friends"
                                 " WHERE owner_id = ?",
                                 &s)) != 0)
      return rc;
    store_bind_int64(s, 1, app);
    store_bind_int64(s, 2, id);
    store_bind_blob(s, 3, BYTES(h->author, ACCOUNTS_ID_BYTES));
    return store_stmt_run(s);
  }
  if ((rc = read_path(c, app, h->author, now)) != 0) return rc < 0 ? rc : 0;
  static const char *const sql[APP_COUNT] = {
      [APP_SOCIAL] = "INSERT INTO timeline_buffer(owner_id, app, post_id) SELECT"
                     " follower_id, ?, ? FROM social_follows WHERE followee_id = ?",
      [APP_MESSENGER] =
          "INSERT INTO timeline_buffer(owner_id, app, post_id) SELECT f, ?, ?"
          " FROM (SELECT friend_id AS f FROM messenger_friends WHERE"
          " account_id = ? UNION SELECT follower_id FROM"
          " messenger_page_follows WHERE page_id = ?) t",
  };
  if ((rc = store_conn_prepare(c, sql[app], &s)) != 0) return rc;
  store_bind_int64(s, 1, app);
  store_bind_int64(s, 2, id);
  bind_author(s, 3, app, h->author);
  return store_stmt_run(s);
}

static int need_profiles(store_conn *c, app_op *o, uint32_t apps) {
  for (int a = 0; a < APP_COUNT; a++) {
    if (!(apps & PUB_APP_BIT(a))) continue;
    int rc = profiles_exists(c, (app_id)a, o->me);
    if (rc < 0) return rc;
    if (rc == 0)
      return app_op_refuse(o, 403, "no_profile",
                           a == APP_SOCIAL ? "create your social profile first"
                                           : "create your messenger profile first");
  }
  return 0;
}

static int attach_media(store_conn *c, app_op *o, post_in *p) {
  int videos = 0;
  for (int k = 0; k < p->nmedia; k++) {
    media_info mi;
    int rc = media_describe(c, p->media[k].hash, &mi);
    if (rc == TSR_ENOTFOUND)
      return app_op_refuse(o, 404, "unknown_media", "no such media: upload it first");
    if (rc) return rc;
    videos += mi.kind == MEDIA_VIDEO;
  }
  if (videos && p->nmedia > 1)
    return app_op_refuse(o, 400, "bad_request",
                         "a post has up to ten images or one video");
  for (int k = 0; k < p->nmedia; k++) {
    store_stmt *s;
    int rc = store_conn_prepare(
        c, "INSERT INTO post_media(post_id, idx, hash, alt) VALUES(?,?,?,?)", &s);
    if (rc) return rc;
    store_bind_int64(s, 1, p->id);
    store_bind_int64(s, 2, k);
    store_bind_blob(s, 3, BYTES(p->media[k].hash, HASH_BYTES));
    store_bind_str(s, 4, p->media[k].alt);
    if ((rc = store_stmt_run(s)) != 0) return rc;
    rc = media_ref(c, p->media[k].hash, +1);
    if (rc == TSR_ENOTFOUND)
      return app_op_refuse(o, 404, "unknown_media", "no such media: upload it first");
    if (rc) return rc;
  }
  return 0;
}

/* Drops the post's references to its media. */
static int release_media(store_conn *c, int64_t id) {
  uint8_t h[MEDIA_MAX][HASH_BYTES];
  int n = 0;
  store_stmt *s;
  int rc = store_conn_prepare(c, "SELECT hash FROM post_media WHERE post_id = ?", &s);
  if (rc) return rc;
  store_bind_int64(s, 1, id);
  while ((rc = store_step(s)) == STORE_ROW && n < MEDIA_MAX) {
    bytes_t b = store_col_blob(s, 0);
    if (b.len == HASH_BYTES) memcpy(h[n++], b.ptr, HASH_BYTES);
  }
  store_stmt_reset(s);
  if (rc < 0) return rc;
  for (int i = 0; i < n; i++)
    if ((rc = media_ref(c, h[i], -1)) != 0 && rc != TSR_ENOTFOUND) return rc;
  return 0;
}

static int run_create(store_conn *c, app_op *o) {
  post_in *p = o->data;
  int64_t now = clock_now_ms();
  int rc = need_profiles(c, o, p->apps | PUB_APP_BIT(o->app));
  if (rc) return rc;
  if ((rc = pub_next_id(c, "posts", now, &p->id)) != 0) return rc;
  store_stmt *s;
  if ((rc = store_conn_prepare(c,
                               "INSERT INTO posts(id, author_id, app, caption, location,"
                               " visibility, apps, created_at) VALUES(?,?,?,?,?,?,?,?)",
                               &s)) != 0)
    return rc;
  store_bind_int64(s, 1, p->id);
  store_bind_blob(s, 2, BYTES(o->me, ACCOUNTS_ID_BYTES));
  store_bind_str(s, 3, app_name(o->app));
  store_bind_str(s, 4, p->caption);
  store_bind_str(s, 5, p->location);
  store_bind_str(s, 6, pub_vis_name(p->vis));
  store_bind_int64(s, 7, p->apps);
  store_bind_int64(s, 8, now);
  if ((rc = store_stmt_run(s)) != 0) return rc;
  if ((rc = attach_media(c, o, p)) != 0) return rc;
  post_head h = {.apps = p->apps, .vis = p->vis, .app = o->app};
  memcpy(h.author, o->me, ACCOUNTS_ID_BYTES);
  if ((rc = write_tags(c, p->id, p->caption, p->vis, o->me)) != 0 ||
      (rc = posts_mentions(c, &p->nb, o->app, &h, p->id, 0, o->me, p->caption, now)) != 0)
    return rc;
  for (int a = 0; a < APP_COUNT; a++)
    if ((p->apps & PUB_APP_BIT(a)) && (rc = fan_out(c, (app_id)a, &h, p->id, now)) != 0)
      return rc;
  o->ok_status = 201;
  return 0;
}

static void write_created(app_op *o, json_writer *jw) {
  post_in *p = o->data;
  json_write_key(jw, "post");
  if (posts_write(jw, NULL, o->app, p->id, o->me) != 1) json_write_null(jw);
  notify_push(&p->nb);
  timelines_kick();
}

/* ---- editing, deleting ------------------------------------------------------------ */

typedef struct {
  int64_t id;
  char caption[CAPTION_MAX + 1];
  notify_batch nb;
  bool liked;
  int64_t likes;
} post_op;

/* Loads o's post into h and checks the caller is its author (own) or may
 * see it through o->app. 0 or the refusal. */
static int load_post(store_conn *c, app_op *o, int64_t id, post_head *h, bool own) {
  int rc = posts_head_read(c, id, h);
  if (rc < 0) return rc;
  if (rc == 0 || !posts_visible(c, o->app, h, o->me))
    return app_op_refuse(o, 404, "not_found", "no such post");
  if (own && memcmp(h->author, o->me, ACCOUNTS_ID_BYTES) != 0)
    return app_op_refuse(o, 403, "forbidden", "only its author may do that");
  return 0;
}

static int run_edit(store_conn *c, app_op *o) {
  post_op *p = o->data;
  post_head h;
  int64_t now = clock_now_ms();
  int rc = load_post(c, o, p->id, &h, true);
  if (rc) return rc;
  if ((rc = run_post_sql(c, "DELETE FROM post_tags WHERE post_id = ?", p->id, NULL)) != 0)
    return rc;
  store_stmt *s;
  if ((rc = store_conn_prepare(
           c, "UPDATE posts SET caption = ?, edited_at = ? WHERE id = ?", &s)) != 0)
    return rc;
  store_bind_str(s, 1, p->caption);
  store_bind_int64(s, 2, now);
  store_bind_int64(s, 3, p->id);
  if ((rc = store_stmt_run(s)) != 0) return rc;
  if ((rc = write_tags(c, p->id, p->caption, h.vis, h.author)) != 0) return rc;
  return posts_mentions(c, &p->nb, h.app, &h, p->id, 0, o->me, p->caption, now);
}

static void write_edited(app_op *o, json_writer *jw) {
  post_op *p = o->data;
  json_write_key(jw, "post");
  if (posts_write(jw, NULL, o->app, p->id, o->me) != 1) json_write_null(jw);
  notify_push(&p->nb);
}

/* A deleted post's timeline rows: one purge row per member of its author's
 * audience in an app, removed by the timelines job (timelines.h). */
static const char *const purge_sql[APP_COUNT] = {
    [APP_SOCIAL] =
        "INSERT INTO timeline_purge(owner_id, app, post_id) SELECT f, ?, ? FROM"
        " (SELECT follower_id AS f FROM social_follows WHERE followee_id = ?"
        " UNION SELECT friend_id FROM close_friends WHERE owner_id = ?) t",
    [APP_MESSENGER] = "INSERT INTO timeline_purge(owner_id, app, post_id) SELECT f, ?, ?"
                      " FROM (SELECT friend_id AS f FROM messenger_friends WHERE"
                      " account_id = ? UNION SELECT follower_id FROM"
                      " messenger_page_follows WHERE page_id = ? UNION SELECT friend_id"
                      " FROM close_friends WHERE owner_id = ?) t",
};

int posts_delete(store_conn *c, int64_t id) {
  post_head h;
  int rc = posts_head_read(c, id, &h);
  if (rc <= 0) return rc < 0 ? rc : TSR_ENOTFOUND;
  for (int a = 0; a < APP_COUNT; a++) {
    if (!(h.apps & PUB_APP_BIT(a))) continue;
    store_stmt *s;
    if ((rc = store_conn_prepare(c, purge_sql[a], &s)) != 0) return rc;
    store_bind_int64(s, 1, a);
    store_bind_int64(s, 2, id);
    int i = bind_author(s, 3, (app_id)a, h.author);
    store_bind_blob(s, i, BYTES(h.author, ACCOUNTS_ID_BYTES));
    if ((rc = store_stmt_run(s)) != 0) return rc;
  }
  int64_t now = clock_now_ms();
  store_stmt *s;
  if ((rc = store_conn_prepare(
           c,
           "UPDATE reports SET state = 'closed', action = 'deleted',"
           " closed_at = ? WHERE state = 'open' AND (post_id = ? OR"
           " comment_id IN (SELECT id FROM comments WHERE post_id = ?))",
           &s)) != 0)
    return rc;
  store_bind_int64(s, 1, now);
  store_bind_int64(s, 2, id);
  store_bind_int64(s, 3, id);
  if ((rc = store_stmt_run(s)) != 0) return rc;
  if ((rc = release_media(c, id)) != 0) return rc;
  static const char *const cleanup[] = {
      "DELETE FROM post_media WHERE post_id = ?",
      "DELETE FROM post_tags WHERE post_id = ?",
      "DELETE FROM post_mentions WHERE post_id = ?",
      "DELETE FROM post_views WHERE post_id = ?",
      "DELETE FROM likes WHERE post_id = ?",
      "DELETE FROM comments WHERE post_id = ?",
      "DELETE FROM posts WHERE id = ?",
  };
  for (size_t i = 0; i < sizeof cleanup / sizeof cleanup[0]; i++)
    if ((rc = run_post_sql(c, cleanup[i], id, NULL)) != 0) return rc;
  return notify_forget_post(c, id);
}

static int run_delete(store_conn *c, app_op *o) {
  post_op *p = o->data;
  post_head h;
  int rc = load_post(c, o, p->id, &h, true);
  return rc ? rc : posts_delete(c, p->id);
}

static void write_deleted(app_op *o, json_writer *jw) {
  (void)o, (void)jw;
  timelines_kick();
}

/* ---- likes --------------------------------------------------------------- */

static int like_count(store_conn *c, post_op *p) {
  store_stmt *s;
  int rc = store_conn_prepare(c, "SELECT likes FROM posts WHERE id = ?", &s);
  if (rc) return rc;
  store_bind_int64(s, 1, p->id);
  rc = store_step(s);
  p->likes = rc == STORE_ROW ? store_col_int64(s, 0) : 0;
  store_stmt_reset(s);
  return rc < 0 ? rc : 0;
}

static int run_like(store_conn *c, app_op *o) {
  post_op *p = o->data;
  post_head h;
  int rc = load_post(c, o, p->id, &h, false);
  if (rc == 0) rc = need_profiles(c, o, PUB_APP_BIT(o->app));
  if (rc) return rc;
  store_stmt *s;
  if ((rc = store_conn_prepare(c,
                               "INSERT INTO likes(post_id, account_id, app, created_at)"
                               " VALUES(?,?,?,?) ON CONFLICT DO NOTHING",
                               &s)) != 0)
    return rc;
  int64_t now = clock_now_ms();
  store_bind_int64(s, 1, p->id);
  store_bind_blob(s, 2, BYTES(o->me, ACCOUNTS_ID_BYTES));
  store_bind_str(s, 3, app_name(o->app));
  store_bind_int64(s, 4, now);
  if ((rc = store_stmt_run(s)) != 0) return rc;
  p->liked = true;
  if (store_conn_changes(c) == 1) {
    if ((rc = run_post_sql(c, "UPDATE posts SET likes = likes + 1 WHERE id = ?", p->id,
                           NULL)) != 0 ||
        (rc = notify_add(c, &p->nb, o->app, h.author, "like", o->me, p->id, 0, "",
                         now)) != 0)
      return rc;
  }
  return like_count(c, p);
}

static int run_unlike(store_conn *c, app_op *o) {
  post_op *p = o->data;
  post_head h;
  int rc = load_post(c, o, p->id, &h, false);
  if (rc) return rc;
  if ((rc = run_post_sql(c, "DELETE FROM likes WHERE post_id = ? AND account_id = ?",
                         p->id, o->me)) != 0)
    return rc;
  p->liked = false;
  if (store_conn_changes(c) == 1 &&
      ((rc = run_post_sql(c, "UPDATE posts SET likes = likes - 1 WHERE id = ?", p->id,
                          NULL)) != 0 ||
       (rc = notify_forget(c, "like", o->me, p->id)) != 0))
    return rc;
  return like_count(c, p);
}

static void write_liked(app_op *o, json_writer *jw) {
  post_op *p = o->data;
  json_write_key(jw, "liked");
  json_write_bool(jw, p->liked);
  json_write_key(jw, "likes");
  json_write_i64(jw, p->likes);
  notify_push(&p->nb);
}

static int list_likes(const httpd_req *r, httpd_resp *resp, app_id app, int64_t id,
                      const uint8_t me[ACCOUNTS_ID_BYTES]) {
  int limit;
  int64_t before;
  if (!pub_query_limit(r, FEED_DEFAULT, FEED_MAX, &limit) ||
      !pub_query_id(r, "before", &before))
    return app_error(resp, 400, "bad_request", "limit must be 1-50, before a cursor");
  store_conn *c = pub_reader(NULL);
  post_head h;
  if (!c) return -1;
  int rc = posts_head_read(c, id, &h);
  if (rc < 0) return -1;
  if (rc == 0 || !posts_visible(c, app, &h, me))
    return app_error(resp, 404, "not_found", "no such post");
  store_stmt *s;
  if (store_conn_prepare(c,
                         "SELECT account_id, app, created_at FROM likes WHERE post_id = ?"
                         " AND created_at < ? ORDER BY created_at DESC LIMIT ?",
                         &s))
    return -1;
  store_bind_int64(s, 1, id);
  store_bind_int64(s, 2, before ? before : INT64_MAX);
  store_bind_int64(s, 3, limit + 1);
  json_writer jw;
  json_writer_init(&jw, resp->body, 8);
  json_write_object_begin(&jw);
  json_write_key(&jw, "likes");
  json_write_array_begin(&jw);
  int n = 0;
  bool more = false;
  while ((rc = store_step(s)) == STORE_ROW) {
    if (n == limit) {
      more = true;
      break;
    }
    n++;
    bytes_t acc = store_col_blob(s, 0);
    size_t al;
    int la = app_parse(store_col_text(s, 1, &al));
    int64_t at = store_col_int64(s, 2);
    if (acc.len != ACCOUNTS_ID_BYTES || la < 0 || blocks_between(c, me, acc.ptr))
      continue;
    json_write_object_begin(&jw);
    json_write_key(&jw, "profile");
    if (pub_write_profile(&jw, c, (app_id)la, acc.ptr) != 0) break;
    json_write_key(&jw, "at");
    json_write_i64(&jw, at);
    json_write_key(&jw, "cursor");
    pub_write_id(&jw, at);
    json_write_object_end(&jw);
  }
  store_stmt_reset(s);
  json_write_array_end(&jw);
  json_write_key(&jw, "more");
  json_write_bool(&jw, more);
  json_write_object_end(&jw);
  return rc < 0 || json_writer_finish(&jw) ? -1 : 0;
}

/* ---- views
 * ------------------------------------------------------------------------------ */

typedef struct {
  store_job job;
  int64_t id;
  uint8_t me[ACCOUNTS_ID_BYTES];
} view_job;

static int view_run(store_conn *c, void *arg) {
  view_job *v = arg;
  store_stmt *s;
  int rc;
  if ((rc = store_conn_prepare(c,
                               "INSERT INTO post_views(post_id, account_id) SELECT id, ?"
                               " FROM posts WHERE id = ? ON CONFLICT DO NOTHING",
                               &s)) != 0)
    return rc;
  store_bind_blob(s, 1, BYTES(v->me, ACCOUNTS_ID_BYTES));
  store_bind_int64(s, 2, v->id);
  if ((rc = store_stmt_run(s)) != 0) return rc;
  if (store_conn_changes(c) != 1) return 0;
  return run_post_sql(c, "UPDATE posts SET views = views + 1 WHERE id = ?", v->id, NULL);
}

static void view_done(store_job *job, int status) {
  if (status) log_debug("post view not counted: %s", tsr_errname(status));
  free(job->arg);
}

/* Counts me as a viewer of id, after the answer (best effort: a full
 * queue loses the view, never the read). */
static void count_view(int64_t id, const uint8_t me[ACCOUNTS_ID_BYTES]) {
  view_job *v = calloc(1, sizeof *v);
  if (!v) return;
  v->id = id;
  memcpy(v->me, me, ACCOUNTS_ID_BYTES);
  v->job = (store_job){.run = view_run, .done = view_done, .arg = v};
  if (store_submit(worker_self->sc, &v->job) != 0) free(v);
}

/* ---- feeds --------------------------------------------------------------- */

typedef struct {
  int64_t *v;
  int n, cap;
} idlist;

static bool idlist_push(idlist *l, int64_t id) {
  if (l->n == l->cap) {
    int cap = l->cap ? 2 * l->cap : 64;
    int64_t *v = realloc(l->v, (size_t)cap * sizeof *v);
    if (!v) return false;
    l->v = v;
    l->cap = cap;
  }
  l->v[l->n++] = id;
  return true;
}

/* Appends up to max ids sql returns (bound: blob a, [int app,] before,
 * max); sets *full when it returned max (more may follow). */
static int collect(store_conn *c, const char *sql, const uint8_t *a, int app,
                   int64_t before, int max, idlist *out, bool *full) {
  store_stmt *s;
  int rc = store_conn_prepare(c, sql, &s);
  if (rc) return rc;
  int i = 1;
  store_bind_blob(s, i++, BYTES(a, ACCOUNTS_ID_BYTES));
  if (app >= 0) store_bind_int64(s, i++, app);
  store_bind_int64(s, i++, before);
  store_bind_int64(s, i, max);
  int n = 0;
  while ((rc = store_step(s)) == STORE_ROW) {
    if (!idlist_push(out, store_col_int64(s, 0))) {
      rc = TSR_ENOMEM;
      break;
    }
    n++;
  }
  store_stmt_reset(s);
  if (n == max) *full = true;
  return rc < 0 ? rc : 0;
}

#define AUTHOR_POSTS_SQL                                                                 \
  "SELECT id FROM posts WHERE author_id = ? AND (apps & ?) <> 0 AND id < ?"              \
  " ORDER BY id DESC LIMIT ?"
/* A fan-out-on-read author's posts in a home feed: their close-friends
 * posts reach feeds through timelines only (always written out), so both
 * paths give the same feed. */
#define BIG_POSTS_SQL                                                                    \
  "SELECT id FROM posts WHERE author_id = ? AND (apps & ?) <> 0 AND id < ? AND"          \
  " visibility <> 'close_friends' ORDER BY id DESC LIMIT ?"

/* The fan-out-on-read authors me follows in app. */
static int big_followees(store_conn *c, app_id app, const uint8_t me[ACCOUNTS_ID_BYTES],
                         uint8_t (*out)[ACCOUNTS_ID_BYTES], int *n) {
  static const char *const sql[APP_COUNT] = {
      [APP_SOCIAL] = "SELECT f.followee_id FROM social_follows f JOIN fanout_read r ON"
                     " r.account_id = f.followee_id AND r.app = ? WHERE f.follower_id = ?"
                     " LIMIT ?",
      [APP_MESSENGER] =
          "SELECT x.a FROM (SELECT friend_id AS a FROM messenger_friends"
          " WHERE account_id = ? UNION SELECT page_id FROM"
          " messenger_page_follows WHERE follower_id = ?) x JOIN fanout_read"
          " r ON r.account_id = x.a AND r.app = ? LIMIT ?",
  };
  store_stmt *s;
  int rc = store_conn_prepare(c, sql[app], &s);
  if (rc) return rc;
  if (app == APP_SOCIAL) {
    store_bind_int64(s, 1, app);
    store_bind_blob(s, 2, BYTES(me, ACCOUNTS_ID_BYTES));
    store_bind_int64(s, 3, BIG_MAX);
  } else {
    store_bind_blob(s, 1, BYTES(me, ACCOUNTS_ID_BYTES));
    store_bind_blob(s, 2, BYTES(me, ACCOUNTS_ID_BYTES));
    store_bind_int64(s, 3, app);
    store_bind_int64(s, 4, BIG_MAX);
  }
  *n = 0;
  while ((rc = store_step(s)) == STORE_ROW) {
    bytes_t a = store_col_blob(s, 0);
    if (a.len == ACCOUNTS_ID_BYTES) memcpy(out[(*n)++], a.ptr, ACCOUNTS_ID_BYTES);
  }
  store_stmt_reset(s);
  return rc < 0 ? rc : 0;
}

static int cmp_desc(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? 1 : x > y ? -1 : 0;
}

/* One page of a feed: the sources' ids below before, merged newest first,
 * written while visible; *next is the last written id when more may
 * follow. kind: 'h' home (me's timeline, own posts, big followees), 'g'
 * grid (author's posts), 't' tag (tag's open posts). */
typedef struct {
  char kind;
  app_id app;
  const uint8_t *me;
  const uint8_t *author; /* grid */
  const char *tag;       /* tag */
  int limit;
} feed_q;

static int gather(store_conn *c, const feed_q *q, int64_t before, int want, idlist *ids,
                  bool *full, uint8_t (*big)[ACCOUNTS_ID_BYTES], int nbig) {
  int rc = 0;
  int bit = (int)PUB_APP_BIT(q->app);
  if (q->kind == 'g')
    return collect(c, AUTHOR_POSTS_SQL, q->author, bit, before, want, ids, full);
  if (q->kind == 't') {
    store_stmt *s;
    if ((rc =
             store_conn_prepare(c,
                                "SELECT post_id FROM post_tags WHERE tag = ? AND open = 1"
                                " AND post_id < ? ORDER BY post_id DESC LIMIT ?",
                                &s)) != 0)
      return rc;
    store_bind_str(s, 1, q->tag);
    store_bind_int64(s, 2, before);
    store_bind_int64(s, 3, want);
    int n = 0;
    while ((rc = store_step(s)) == STORE_ROW && idlist_push(ids, store_col_int64(s, 0)))
      n++;
    store_stmt_reset(s);
    if (n == want) *full = true;
    return rc < 0 ? rc : 0;
  }
#define TIMELINE_SQL(t)                                                                  \
  "SELECT post_id FROM " t " WHERE owner_id = ? AND app = ? AND post_id < ? ORDER BY"    \
  " post_id DESC LIMIT ?"
  static const char *const timeline_sql[] = {TIMELINE_TABLES(TIMELINE_SQL)};
  for (int t = 0; t < TIMELINE_TABLES_N; t++)
    if ((rc = collect(c, timeline_sql[t], q->me, q->app, before, want, ids, full)) != 0)
      return rc;
  if ((rc = collect(c, AUTHOR_POSTS_SQL, q->me, bit, before, want, ids, full)) != 0)
    return rc;
  for (int i = 0; i < nbig; i++)
    if ((rc = collect(c, BIG_POSTS_SQL, big[i], bit, before, want, ids, full)) != 0)
      return rc;
  return 0;
}

static int feed_page(store_conn *c, const feed_q *q, int64_t before, json_writer *jw,
                     int64_t *next) {
  static uint8_t big[BIG_MAX][ACCOUNTS_ID_BYTES]; /* the loop thread's only */
  int nbig = 0, rc = 0, written = 0;
  if (q->kind == 'h' && (rc = big_followees(c, q->app, q->me, big, &nbig)) != 0)
    return rc;
  idlist ids = {0};
  *next = 0;
  if (!before) before = INT64_MAX;
  for (int round = 0; round < ROUNDS_MAX; round++) {
    bool full = false;
    ids.n = 0;
    int want = q->limit + 1;
    if ((rc = gather(c, q, before, want, &ids, &full, big, nbig)) != 0) break;
    if (ids.n) qsort(ids.v, (size_t)ids.n, sizeof *ids.v, cmp_desc);
    /* Past the want-th newest distinct id a full source may be missing
     * ids: take no more than want of the merged list this round. */
    int take = ids.n, distinct = 0;
    for (int i = 0; i < ids.n; i++) {
      if (i && ids.v[i] == ids.v[i - 1]) continue;
      if (++distinct > want) {
        take = i;
        break;
      }
    }
    bool below = full || take < ids.n; /* candidates may exist below this round's */
    for (int i = 0; i < take; i++) {
      if (i && ids.v[i] == ids.v[i - 1]) continue;
      if (written == q->limit) { /* the page is full and a candidate is left */
        *next = before;
        goto out;
      }
      int w = posts_write(jw, c, q->app, ids.v[i], q->me);
      if (w < 0) {
        rc = w;
        goto out;
      }
      written += w;
      before = ids.v[i];
    }
    if (!below) goto out; /* every source is exhausted: no next page */
    if (written == q->limit) {
      *next = before;
      goto out;
    }
  }
  /* Rounds spent on posts the reader may not see: let them go on. */
  *next = before == INT64_MAX ? 0 : before;
out:
  free(ids.v);
  return rc;
}

static int feed_answer(const httpd_req *r, httpd_resp *resp, const feed_q *q0) {
  feed_q q = *q0;
  int64_t before;
  if (!pub_query_limit(r, FEED_DEFAULT, FEED_MAX, &q.limit) ||
      !pub_query_id(r, "before", &before))
    return app_error(resp, 400, "bad_request", "limit must be 1-50, before a post id");
  store_conn *c = pub_reader(NULL);
  if (!c || store_read_begin(c) != 0) return -1;
  json_writer jw;
  json_writer_init(&jw, resp->body, 8);
  json_write_object_begin(&jw);
  json_write_key(&jw, "posts");
  json_write_array_begin(&jw);
  int64_t next = 0;
  int rc = feed_page(c, &q, before, &jw, &next);
  store_read_end(c);
  if (rc) return -1;
  json_write_array_end(&jw);
  json_write_key(&jw, "next");
  pub_write_id_or_null(&jw, next);
  json_write_object_end(&jw);
  return json_writer_finish(&jw) ? -1 : 0;
}

int posts_grid(const httpd_req *r, httpd_resp *resp, app_id app, const char *key,
               const uint8_t me[ACCOUNTS_ID_BYTES]) {
  char k[APP_SEG_BYTES];
  uint8_t author[ACCOUNTS_ID_BYTES];
  if (pub_app_parse(app_name(app)) < 0)
    return app_error(resp, 404, "not_found", "chat has no posts");
  if (pub_need_profile(resp, app, me) != 0) return 0;
  if (!profiles_key_normalize(app, key, k))
    return app_error(resp, 400, "bad_request", "not a valid handle or username");
  int rc = profiles_resolve(NULL, app, k, author);
  if (rc == TSR_ENOTFOUND || (rc == 0 && blocks_between(NULL, me, author)))
    return app_error(resp, 404, "not_found", "no such profile");
  if (rc) return -1;
  feed_q q = {.kind = 'g', .app = app, .me = me, .author = author};
  return feed_answer(r, resp, &q);
}

/* ---- follows
 * ------------------------------------------------------------------------------ */

int posts_followed(store_conn *c, app_id app, const uint8_t follower[ACCOUNTS_ID_BYTES],
                   const uint8_t followee[ACCOUNTS_ID_BYTES]) {
  store_stmt *s;
  int rc =
      store_conn_prepare(c,
                         "INSERT INTO timelines(owner_id, app, post_id) SELECT ?, ?, id"
                         " FROM posts WHERE author_id = ? AND (apps & ?) <> 0 AND"
                         " visibility <> 'close_friends' ORDER BY id DESC LIMIT ?"
                         " ON CONFLICT DO NOTHING",
                         &s);
  if (rc) return rc;
  store_bind_blob(s, 1, BYTES(follower, ACCOUNTS_ID_BYTES));
  store_bind_int64(s, 2, app);
  store_bind_blob(s, 3, BYTES(followee, ACCOUNTS_ID_BYTES));
  store_bind_int64(s, 4, PUB_APP_BIT(app));
  store_bind_int64(s, 5, POSTS_BACKFILL);
  return store_stmt_run(s);
}

#define UNFOLLOW_SQL(t)                                                                  \
  "DELETE FROM " t                                                                       \
  " WHERE owner_id = ? AND app = ? AND post_id IN (SELECT id FROM posts"                 \
  " WHERE author_id = ? AND visibility <> 'close_friends')"
#define DROP_SQL(t) "DELETE FROM " t " WHERE owner_id = ? AND app = ?"

/* Runs one of each table's statements binding owner, app and maybe author. */
static int delete_timeline_rows(store_conn *c, const char *const sql[TIMELINE_TABLES_N],
                                app_id app, const uint8_t owner[ACCOUNTS_ID_BYTES],
                                const uint8_t *author) {
  for (int t = 0; t < TIMELINE_TABLES_N; t++) {
    store_stmt *s;
    int rc = store_conn_prepare(c, sql[t], &s);
    if (rc) return rc;
    store_bind_blob(s, 1, BYTES(owner, ACCOUNTS_ID_BYTES));
    store_bind_int64(s, 2, app);
    if (author) store_bind_blob(s, 3, BYTES(author, ACCOUNTS_ID_BYTES));
    if ((rc = store_stmt_run(s)) != 0) return rc;
  }
  return 0;
}

int posts_unfollowed(store_conn *c, app_id app, const uint8_t follower[ACCOUNTS_ID_BYTES],
                     const uint8_t followee[ACCOUNTS_ID_BYTES]) {
  if (graph_in(c, app, follower, followee)) return 0;
  static const char *const sql[] = {TIMELINE_TABLES(UNFOLLOW_SQL)};
  return delete_timeline_rows(c, sql, app, follower, followee);
}

int posts_drop_timeline(store_conn *c, app_id app,
                        const uint8_t account[ACCOUNTS_ID_BYTES]) {
  static const char *const sql[] = {TIMELINE_TABLES(DROP_SQL)};
  return delete_timeline_rows(c, sql, app, account, NULL);
}

/* ---- close friends
 * ---------------------------------------------------------------------- */

static int run_close_friend(store_conn *c, app_op *o) {
  int rc = need_profiles(c, o, PUB_APP_BIT(APP_SOCIAL));
  if (rc) return rc;
  rc = profiles_resolve(c, APP_SOCIAL, o->key, o->other);
  if (rc == TSR_ENOTFOUND || (rc == 0 && blocks_between(c, o->me, o->other)))
    return app_op_refuse(o, 404, "not_found", "no such profile");
  if (rc) return rc;
  if (memcmp(o->me, o->other, ACCOUNTS_ID_BYTES) == 0)
    return app_op_refuse(o, 400, "bad_request", "that is your own profile");
  bool add = o->state[0] == 'c';
  store_stmt *s;
  if ((rc = store_conn_prepare(
           c,
           add ? "INSERT INTO close_friends(owner_id, friend_id, created_at)"
                 " VALUES(?,?,?) ON CONFLICT DO NOTHING"
               : "DELETE FROM close_friends WHERE owner_id = ? AND friend_id = ?",
           &s)) != 0)
    return rc;
  store_bind_blob(s, 1, BYTES(o->me, ACCOUNTS_ID_BYTES));
  store_bind_blob(s, 2, BYTES(o->other, ACCOUNTS_ID_BYTES));
  if (add) store_bind_int64(s, 3, clock_now_ms());
  return store_stmt_run(s);
}

static int close_friends(const httpd_req *r, httpd_resp *resp, const app_path *p,
                         const uint8_t me[ACCOUNTS_ID_BYTES]) {
  http_method m = r->req->method;
  if (p->n == 4 && m == HTTP_GET) {
    store_conn *c = pub_reader(NULL);
    store_stmt *s;
    if (!c || store_conn_prepare(c,
                                 "SELECT friend_id FROM close_friends WHERE owner_id = ?"
                                 " ORDER BY created_at",
                                 &s))
      return -1;
    store_bind_blob(s, 1, BYTES(me, ACCOUNTS_ID_BYTES));
    json_writer jw;
    json_writer_init(&jw, resp->body, 8);
    json_write_object_begin(&jw);
    json_write_key(&jw, "close_friends");
    json_write_array_begin(&jw);
    int rc;
    while ((rc = store_step(s)) == STORE_ROW) {
      bytes_t a = store_col_blob(s, 0);
      if (a.len == ACCOUNTS_ID_BYTES && pub_write_profile(&jw, c, APP_SOCIAL, a.ptr))
        break;
    }
    store_stmt_reset(s);
    json_write_array_end(&jw);
    json_write_object_end(&jw);
    return rc < 0 || json_writer_finish(&jw) ? -1 : 0;
  }
  if (p->n != 5 || (m != HTTP_PUT && m != HTTP_DELETE))
    return app_error(resp, 404, "not_found", "no such resource");
  app_op *o = app_op_new(APP_SOCIAL);
  if (!o) return app_error(resp, 503, "busy", "server busy; retry later");
  memcpy(o->me, me, ACCOUNTS_ID_BYTES);
  if (!profiles_key_normalize(APP_SOCIAL, p->seg[4], o->key)) {
    app_op_free(o);
    return app_error(resp, 400, "bad_request", "not a valid handle");
  }
  o->state = m == HTTP_PUT ? "close_friend" : "none";
  o->run = run_close_friend;
  return app_op_start(r, resp, o);
}

/* ---- routing
 * ----------------------------------------------------------------------------- */

static int start_post_op(const httpd_req *r, httpd_resp *resp, app_id app,
                         const uint8_t me[ACCOUNTS_ID_BYTES], int64_t id, app_run_fn run,
                         app_write_fn write) {
  post_op *p = calloc(1, sizeof *p);
  if (!p) return app_error(resp, 503, "busy", "server busy; retry later");
  p->id = id;
  if (run == run_edit) {
    app_body b;
    const char *err = "body must be a JSON object with a 'caption'";
    if (!app_body_parse(r, &b) ||
        (err = parse_text(&b, "caption", p->caption, sizeof p->caption, true,
                          "field 'caption' must be a string of at most 2200 bytes of"
                          " UTF-8 without control characters other than newline"))) {
      free(p);
      return app_error(resp, 400, "bad_request", err);
    }
  }
  return pub_op_start(r, resp, app, me, p, run, write);
}

static int create(const httpd_req *r, httpd_resp *resp, app_id app,
                  const uint8_t me[ACCOUNTS_ID_BYTES]) {
  app_body b;
  post_in *p = calloc(1, sizeof *p);
  app_op *o = app_op_new(app);
  if (!o || !p) {
    free(p);
    app_op_free(o);
    return app_error(resp, 503, "busy", "server busy; retry later");
  }
  o->data = p;
  const char *err = "body must be a JSON object";
  if (!app_body_parse(r, &b) || (err = parse_post(&b, app, p)) != NULL) {
    app_op_free(o);
    return app_error(resp, 400, "bad_request", err);
  }
  memcpy(o->me, me, ACCOUNTS_ID_BYTES);
  o->run = run_create;
  o->write_ok = write_created;
  return app_op_start(r, resp, o);
}

static int get_post(httpd_resp *resp, app_id app, int64_t id,
                    const uint8_t me[ACCOUNTS_ID_BYTES]) {
  json_writer jw;
  json_writer_init(&jw, resp->body, 8);
  json_write_object_begin(&jw);
  json_write_key(&jw, "post");
  int rc = posts_write(&jw, NULL, app, id, me);
  if (rc < 0) return -1;
  if (rc == 0) return app_error(resp, 404, "not_found", "no such post");
  json_write_object_end(&jw);
  if (json_writer_finish(&jw)) return -1;
  count_view(id, me);
  return 0;
}

/* /v1/apps/{app}/posts[/{id}[/like|/likes|/comments]] */
static int posts_path(const httpd_req *r, httpd_resp *resp, app_id app, const app_path *p,
                      const uint8_t me[ACCOUNTS_ID_BYTES]) {
  http_method m = r->req->method == HTTP_HEAD ? HTTP_GET : r->req->method;
  if (p->n == 4) {
    if (m == HTTP_POST) return create(r, resp, app, me);
    return app_error(resp, 405, "method_not_allowed", "use POST");
  }
  int64_t id;
  if (!pub_id_parse(p->seg[4], &id))
    return app_error(resp, 404, "not_found", "no such post");
  if (p->n == 5) {
    if (m == HTTP_GET) return get_post(resp, app, id, me);
    if (m == HTTP_PATCH)
      return start_post_op(r, resp, app, me, id, run_edit, write_edited);
    if (m == HTTP_DELETE)
      return start_post_op(r, resp, app, me, id, run_delete, write_deleted);
    return app_error(resp, 405, "method_not_allowed", "use GET, PATCH or DELETE");
  }
  if (p->n == 6 && strcmp(p->seg[5], "like") == 0) {
    if (m == HTTP_POST) return start_post_op(r, resp, app, me, id, run_like, write_liked);
    if (m == HTTP_DELETE)
      return start_post_op(r, resp, app, me, id, run_unlike, write_liked);
    return app_error(resp, 405, "method_not_allowed", "use POST or DELETE");
  }
  if (p->n == 6 && strcmp(p->seg[5], "likes") == 0 && m == HTTP_GET)
    return list_likes(r, resp, app, id, me);
  if (p->n == 6 && strcmp(p->seg[5], "comments") == 0)
    return comments_on_post(r, resp, app, id, me);
  return app_error(resp, 404, "not_found", "no such resource");
}

static int h_public(const httpd_req *r, httpd_resp *resp) {
  uint8_t me[ACCOUNTS_ID_BYTES];
  app_path p;
  app_id app;
  if (!pub_begin(r, resp, 4, &p, &app, me)) return 0;
  http_method m = r->req->method == HTTP_HEAD ? HTTP_GET : r->req->method;
  if (strcmp(p.seg[3], "posts") == 0) return posts_path(r, resp, app, &p, me);
  if (strcmp(p.seg[3], "feed") == 0 && p.n == 4 && m == HTTP_GET) {
    feed_q q = {.kind = 'h', .app = app, .me = me};
    return feed_answer(r, resp, &q);
  }
  if (strcmp(p.seg[3], "tags") == 0 && p.n == 5 && m == HTTP_GET) {
    char tag[APP_SEG_BYTES];
    size_t n = strlen(p.seg[4]);
    for (size_t i = 0; i <= n; i++)
      tag[i] = (char)(p.seg[4][i] >= 'A' && p.seg[4][i] <= 'Z' ? p.seg[4][i] + 32
                                                               : p.seg[4][i]);
    feed_q q = {.kind = 't', .app = app, .me = me, .tag = tag};
    return feed_answer(r, resp, &q);
  }
  if (strcmp(p.seg[3], "close-friends") == 0 && app == APP_SOCIAL)
    return close_friends(r, resp, &p, me);
  return app_error(resp, 404, "not_found", "no such resource");
}

int posts_routes(void) {
  static const http_method all[] = {HTTP_GET, HTTP_POST, HTTP_PATCH, HTTP_DELETE};
  static const http_method get[] = {HTTP_GET};
  static const http_method cf[] = {HTTP_GET, HTTP_PUT, HTTP_DELETE};
  int rc = pub_routes_add("posts", all, 4, h_public);
  if (!rc) rc = pub_routes_add("feed", get, 1, h_public);
  if (!rc) rc = pub_routes_add("tags", get, 1, h_public);
  /* messenger has no close friends: its path answers 404 (h_public) */
  if (!rc) rc = pub_routes_add("close-friends", cf, 3, h_public);
  return rc;
}
