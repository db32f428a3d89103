/* Stories: see stories.h and docs/protocol.md. */
#include "server/stories.h"

#include <stdlib.h>
#include <string.h>

#include "server/clock.h"
#include "server/log.h"
#include "server/media.h"
#include "server/profiles.h"
#include "server/public.h"
#include "tessera/error.h"

#define CAPTION_MAX 500
#define ALT_MAX 500
#define HASH_BYTES MEDIA_HASH_BYTES
#define AUTHORS_MAX 100
#define STORIES_PER_READ 1000
#define SWEEP_MS 60000
#define SWEEP_BATCH 500

/* ---- the story object --------------------------------------------------- */

typedef struct {
  int64_t id, created, expires;
  uint8_t author[ACCOUNTS_ID_BYTES];
  uint32_t apps;
  pub_vis vis;
} story_head;

static int head_read(store_conn *c, int64_t id, story_head *h) {
  store_stmt *s;
  int rc = store_conn_prepare(c,
                              "SELECT author_id, apps, visibility, created_at, expires_at"
                              " FROM stories WHERE id = ?",
                              &s);
  if (rc) return rc;
  store_bind_int64(s, 1, id);
  rc = store_step(s);
  if (rc == STORE_ROW) {
    size_t n;
    bytes_t a = store_col_blob(s, 0);
    memset(h->author, 0, sizeof h->author);
    if (a.len == ACCOUNTS_ID_BYTES) memcpy(h->author, a.ptr, a.len);
    h->apps = (uint32_t)store_col_int64(s, 1);
    int v = pub_vis_parse(store_col_text(s, 2, &n));
    h->vis = v < 0 ? VIS_CLOSE_FRIENDS : (pub_vis)v;
    h->created = store_col_int64(s, 3);
    h->expires = store_col_int64(s, 4);
    h->id = id;
  }
  store_stmt_reset(s);
  return rc == STORE_ROW ? 1 : rc;
}

/* Live and visible to viewer through app. */
static bool visible(store_conn *c, app_id app, const story_head *h,
                    const uint8_t viewer[ACCOUNTS_ID_BYTES]) {
  if (h->expires <= clock_now_ms()) return false;
  pub_audience a = {h->author, h->apps, h->vis};
  return (h->apps & PUB_APP_BIT(app)) && pub_can_see(c, app, &a, viewer);
}

static int write_story(json_writer *jw, store_conn *c, app_id app, const story_head *h,
                       const uint8_t viewer[ACCOUNTS_ID_BYTES]) {
  store_stmt *s;
  int rc = store_conn_prepare(c,
                              "SELECT s.hash, s.alt, s.caption, m.kind, m.mime, m.width,"
                              " m.height FROM stories s JOIN media m ON m.hash = s.hash"
                              " WHERE s.id = ?",
                              &s);
  if (rc) return rc;
  store_bind_int64(s, 1, h->id);
  if ((rc = store_step(s)) != STORE_ROW) {
    store_stmt_reset(s);
    return rc < 0 ? rc : 0;
  }
  bool mine = memcmp(h->author, viewer, ACCOUNTS_ID_BYTES) == 0;
  json_write_object_begin(jw);
  json_write_key(jw, "id");
  pub_write_id(jw, h->id);
  json_write_key(jw, "media");
  json_write_object_begin(jw);
  json_write_key(jw, "id");
  pub_write_hash(jw, store_col_blob(s, 0));
  pub_write_col(jw, "alt", s, 1, false);
  pub_write_col(jw, "kind", s, 3, false);
  pub_write_col(jw, "mime", s, 4, false);
  json_write_key(jw, "width");
  json_write_i64(jw, store_col_int64(s, 5));
  json_write_key(jw, "height");
  json_write_i64(jw, store_col_int64(s, 6));
  json_write_object_end(jw);
  pub_write_col(jw, "caption", s, 2, false);
  store_stmt_reset(s);
  json_write_key(jw, "visibility");
  json_write_string(jw, pub_vis_name(h->vis));
  json_write_key(jw, "apps");
  json_write_array_begin(jw);
  for (int a = 0; a < APP_COUNT; a++)
    if (h->apps & PUB_APP_BIT(a)) json_write_string(jw, app_name((app_id)a));
  json_write_array_end(jw);
  json_write_key(jw, "created_at");
  json_write_i64(jw, h->created);
  json_write_key(jw, "expires_at");
  json_write_i64(jw, h->expires);
  if ((rc =
           store_conn_prepare(c,
                              mine ? "SELECT COUNT(*) FROM story_views WHERE story_id = ?"
                                   : "SELECT COUNT(*) FROM story_views WHERE story_id = ?"
                                     " AND viewer_id = ?",
                              &s)) != 0)
    return rc;
  store_bind_int64(s, 1, h->id);
  if (!mine) store_bind_blob(s, 2, BYTES(viewer, ACCOUNTS_ID_BYTES));
  rc = store_step(s);
  int64_t v = rc == STORE_ROW ? store_col_int64(s, 0) : 0;
  store_stmt_reset(s);
  if (rc < 0) return rc;
  json_write_key(jw, mine ? "views" : "seen");
  if (mine)
    json_write_i64(jw, v);
  else
    json_write_bool(jw, v > 0);
  json_write_key(jw, "author");
  rc = pub_write_profile(jw, c, app, h->author);
  json_write_object_end(jw);
  return rc ? rc : 1;
}

/* ---- posting, viewing, deleting ------------------------------------------- */

typedef struct {
  int64_t id;
  uint8_t hash[HASH_BYTES];
  char alt[ALT_MAX + 1], caption[CAPTION_MAX + 1];
  pub_vis vis;
  uint32_t apps;
} story_in;

static int need_profile(store_conn *c, app_op *o, app_id app) {
  int rc = profiles_exists(c, app, o->me);
  if (rc < 0) return rc;
  return rc ? 0
            : app_op_refuse(o, 403, "no_profile",
                            "create your profile in that app first");
}

static int run_post(store_conn *c, app_op *o) {
  story_in *in = o->data;
  int rc = need_profile(c, o, o->app);
  for (int a = 0; rc == 0 && a < APP_COUNT; a++)
    if (in->apps & PUB_APP_BIT(a)) rc = need_profile(c, o, (app_id)a);
  if (rc) return rc;
  store_stmt *s;
  if ((rc = store_conn_prepare(c, "UPDATE media SET refs = refs + 1 WHERE hash = ?",
                               &s)) != 0)
    return rc;
  store_bind_blob(s, 1, BYTES(in->hash, HASH_BYTES));
  if ((rc = store_stmt_run(s)) != 0) return rc;
  if (store_conn_changes(c) != 1)
    return app_op_refuse(o, 404, "unknown_media", "no such media: upload it first");
  int64_t now = clock_now_ms();
  if ((rc = pub_next_id(c, "stories", now, &in->id)) != 0) return rc;
  if ((rc = store_conn_prepare(
           c,
           "INSERT INTO stories(id, author_id, app, hash, alt, caption,"
           " visibility, apps, created_at, expires_at)"
           " VALUES(?,?,?,?,?,?,?,?,?,?)",
           &s)) != 0)
    return rc;
  store_bind_int64(s, 1, in->id);
  store_bind_blob(s, 2, BYTES(o->me, ACCOUNTS_ID_BYTES));
  store_bind_str(s, 3, app_name(o->app));
  store_bind_blob(s, 4, BYTES(in->hash, HASH_BYTES));
  store_bind_str(s, 5, in->alt);
  store_bind_str(s, 6, in->caption);
  store_bind_str(s, 7, pub_vis_name(in->vis));
  store_bind_int64(s, 8, in->apps);
  store_bind_int64(s, 9, now);
  store_bind_int64(s, 10, now + STORIES_TTL_MS);
  o->ok_status = 201;
  return store_stmt_run(s);
}

static void write_posted(app_op *o, json_writer *jw) {
  story_in *in = o->data;
  store_conn *c;
  story_head h;
  json_write_key(jw, "story");
  if (store_reader_get(worker_self->store, &c) != 0 || head_read(c, in->id, &h) != 1 ||
      write_story(jw, c, o->app, &h, o->me) != 1)
    json_write_null(jw);
}

/* Deletes story id with its views and media reference. */
static int delete_story(store_conn *c, int64_t id) {
  store_stmt *s;
  uint8_t hash[HASH_BYTES];
  int rc = store_conn_prepare(c, "SELECT hash FROM stories WHERE id = ?", &s);
  if (rc) return rc;
  store_bind_int64(s, 1, id);
  rc = store_step(s);
  bytes_t b = rc == STORE_ROW ? store_col_blob(s, 0) : BYTES_NONE;
  bool has = b.len == HASH_BYTES;
  if (has) memcpy(hash, b.ptr, HASH_BYTES);
  store_stmt_reset(s);
  if (rc < 0) return rc;
  if (has && (rc = media_ref(c, hash, -1)) != 0 && rc != TSR_ENOTFOUND) return rc;
  static const char *const sql[] = {
      "DELETE FROM story_views WHERE story_id = ?",
      "DELETE FROM stories WHERE id = ?",
  };
  for (size_t i = 0; i < sizeof sql / sizeof sql[0]; i++) {
    if ((rc = store_conn_prepare(c, sql[i], &s)) != 0) return rc;
    store_bind_int64(s, 1, id);
    if ((rc = store_stmt_run(s)) != 0) return rc;
  }
  return 0;
}

static int load(store_conn *c, app_op *o, story_head *h, bool own) {
  int64_t id = ((story_in *)o->data)->id;
  int rc = head_read(c, id, h);
  if (rc < 0) return rc;
  if (rc == 0 || !visible(c, o->app, h, o->me))
    return app_op_refuse(o, 404, "not_found", "no such story");
  if (own && memcmp(h->author, o->me, ACCOUNTS_ID_BYTES) != 0)
    return app_op_refuse(o, 403, "forbidden", "only its author may do that");
  return 0;
}

static int run_delete(store_conn *c, app_op *o) {
  story_head h;
  int rc = load(c, o, &h, true);
  return rc ? rc : delete_story(c, h.id);
}

static int run_view(store_conn *c, app_op *o) {
  story_head h;
  int rc = load(c, o, &h, false);
  if (rc || memcmp(h.author, o->me, ACCOUNTS_ID_BYTES) == 0) return rc;
  store_stmt *s;
  if ((rc = store_conn_prepare(c,
                               "INSERT INTO story_views(story_id, viewer_id, app, at)"
                               " VALUES(?,?,?,?) ON CONFLICT DO NOTHING",
                               &s)) != 0)
    return rc;
  store_bind_int64(s, 1, h.id);
  store_bind_blob(s, 2, BYTES(o->me, ACCOUNTS_ID_BYTES));
  store_bind_str(s, 3, app_name(o->app));
  store_bind_int64(s, 4, clock_now_ms());
  o->state = "seen";
  return store_stmt_run(s);
}

/* ---- reading ---------------------------------------------------------------- */

static int viewers(httpd_resp *resp, app_id app, int64_t id,
                   const uint8_t me[ACCOUNTS_ID_BYTES]) {
  store_conn *c;
  story_head h;
  if (store_reader_get(worker_self->store, &c) != 0) return -1;
  int rc = head_read(c, id, &h);
  if (rc < 0) return -1;
  if (rc == 0 || !visible(c, app, &h, me))
    return app_error(resp, 404, "not_found", "no such story");
  if (memcmp(h.author, me, ACCOUNTS_ID_BYTES) != 0)
    return app_error(resp, 403, "forbidden", "only its author sees who viewed it");
  store_stmt *s;
  if (store_conn_prepare(c,
                         "SELECT viewer_id, app, at FROM story_views WHERE story_id = ?"
                         " ORDER BY at DESC",
                         &s))
    return -1;
  store_bind_int64(s, 1, id);
  json_writer jw;
  json_writer_init(&jw, resp->body, 8);
  json_write_object_begin(&jw);
  json_write_key(&jw, "viewers");
  json_write_array_begin(&jw);
  while ((rc = store_step(s)) == STORE_ROW) {
    bytes_t v = store_col_blob(s, 0);
    size_t n;
    int va = app_parse(store_col_text(s, 1, &n));
    if (v.len != ACCOUNTS_ID_BYTES || va < 0) continue;
    json_write_object_begin(&jw);
    json_write_key(&jw, "profile");
    if (pub_write_profile(&jw, c, (app_id)va, v.ptr) != 0) break;
    json_write_key(&jw, "at");
    json_write_i64(&jw, store_col_int64(s, 2));
    json_write_object_end(&jw);
  }
  store_stmt_reset(s);
  json_write_array_end(&jw);
  json_write_object_end(&jw);
  return rc < 0 || json_writer_finish(&jw) ? -1 : 0;
}

/* The live stories of the people me follows in app, me's own and those of
 * people who have me as a close friend; grouped by author, authors with
 * the newest story first. */
static int tray(httpd_resp *resp, app_id app, const uint8_t me[ACCOUNTS_ID_BYTES]) {
  static const char *const sql[APP_COUNT] = {
      [APP_SOCIAL] =
          "SELECT id, author_id FROM stories WHERE expires_at > ? AND"
          " (apps & ?) <> 0 AND (author_id = ? OR author_id IN (SELECT"
          " followee_id FROM social_follows WHERE follower_id = ?) OR author_id"
          " IN (SELECT owner_id FROM close_friends WHERE friend_id = ?))"
          " ORDER BY id DESC LIMIT ?",
      [APP_MESSENGER] =
          "SELECT id, author_id FROM stories WHERE expires_at > ? AND"
          " (apps & ?) <> 0 AND (author_id = ? OR author_id IN (SELECT"
          " friend_id FROM messenger_friends WHERE account_id = ? UNION"
          " SELECT page_id FROM messenger_page_follows WHERE follower_id = ?"
          " UNION SELECT owner_id FROM close_friends WHERE friend_id = ?))"
          " ORDER BY id DESC LIMIT ?",
  };
  store_conn *c;
  store_stmt *s;
  if (store_reader_get(worker_self->store, &c) != 0 || store_read_begin(c) != 0)
    return -1;
  if (store_conn_prepare(c, sql[app], &s)) {
    store_read_end(c);
    return -1;
  }
  int i = 1;
  store_bind_int64(s, i++, clock_now_ms());
  store_bind_int64(s, i++, PUB_APP_BIT(app));
  for (int k = 0; k < (app == APP_SOCIAL ? 3 : 4); k++)
    store_bind_blob(s, i++, BYTES(me, ACCOUNTS_ID_BYTES));
  store_bind_int64(s, i, STORIES_PER_READ);
  /* Newest first: the order authors first appear in is the tray's order. */
  struct {
    int64_t id;
    int author;
  } *v = calloc(STORIES_PER_READ, sizeof *v);
  uint8_t(*authors)[ACCOUNTS_ID_BYTES] = calloc(AUTHORS_MAX, ACCOUNTS_ID_BYTES);
  int n = 0, na = 0, rc;
  while (v && authors && (rc = store_step(s)) == STORE_ROW) {
    bytes_t a = store_col_blob(s, 1);
    if (a.len != ACCOUNTS_ID_BYTES) continue;
    int k = 0;
    while (k < na && memcmp(authors[k], a.ptr, ACCOUNTS_ID_BYTES) != 0) k++;
    if (k == na) {
      if (na == AUTHORS_MAX) continue;
      memcpy(authors[na++], a.ptr, ACCOUNTS_ID_BYTES);
    }
    v[n].id = store_col_int64(s, 0);
    v[n++].author = k;
  }
  store_stmt_reset(s);
  json_writer jw;
  json_writer_init(&jw, resp->body, 8);
  json_write_object_begin(&jw);
  json_write_key(&jw, "authors");
  json_write_array_begin(&jw);
  rc = v && authors ? 0 : -1;
  for (int k = 0; rc == 0 && k < na; k++) {
    bool open = false;
    /* Oldest first within an author, as they are watched. */
    for (int j = n - 1; rc == 0 && j >= 0; j--) {
      story_head h;
      if (v[j].author != k) continue;
      if (head_read(c, v[j].id, &h) != 1 || !visible(c, app, &h, me)) continue;
      if (!open) {
        json_write_object_begin(&jw);
        json_write_key(&jw, "profile");
        if (pub_write_profile(&jw, c, app, authors[k]) != 0) rc = -1;
        json_write_key(&jw, "stories");
        json_write_array_begin(&jw);
        open = true;
      }
      if (write_story(&jw, c, app, &h, me) < 0) rc = -1;
    }
    if (open) {
      json_write_array_end(&jw);
      json_write_object_end(&jw);
    }
  }
  store_read_end(c);
  free(v);
  free(authors);
  json_write_array_end(&jw);
  json_write_object_end(&jw);
  return rc || json_writer_finish(&jw) ? -1 : 0;
}

/* ---- routing -------------------------------------------------------------------- */

static const char *parse_story(const app_body *b, app_id app, story_in *in) {
  int m = json_object_get(b->buf, b->t, 0, "media");
  char hex[2 * HASH_BYTES + 2];
  if (m < 0 || b->t[m].type != JSON_OBJECT ||
      app_body_str(b, m, "id", hex, sizeof hex) != 1)
    return "field 'media' must be an object with an 'id' from POST /v1/media";
  if (!media_id_parse(hex, in->hash))
    return "field 'media' must be an object with an 'id' from POST /v1/media";
  int rc = app_body_str(b, m, "alt", in->alt, sizeof in->alt);
  if (rc < 0 || (rc == 1 && !pub_text_ok(in->alt, false)))
    return "field 'alt' must be at most 500 bytes of UTF-8 without control characters";
  rc = app_body_str(b, 0, "caption", in->caption, sizeof in->caption);
  if (rc < 0 || (rc == 1 && !pub_text_ok(in->caption, true)))
    return "field 'caption' must be at most 500 bytes of UTF-8";
  char v[16];
  rc = app_body_str(b, 0, "visibility", v, sizeof v);
  int vis = rc == 0 ? VIS_FOLLOWERS : rc > 0 ? pub_vis_parse(v) : -1;
  if (vis < 0)
    return "field 'visibility' must be 'public', 'followers' or 'close_friends'";
  in->vis = (pub_vis)vis;
  return pub_parse_apps(b, app, &in->apps);
}

/* /v1/apps/{app}/stories[/{id}[/view|/viewers]] */
static int h_stories(const httpd_req *r, httpd_resp *resp) {
  uint8_t me[ACCOUNTS_ID_BYTES];
  app_path p;
  app_id app;
  if (!pub_begin(r, resp, 4, &p, &app, me)) return 0;
  http_method m = r->req->method == HTTP_HEAD ? HTTP_GET : r->req->method;
  if (p.n == 4 && m == HTTP_GET) return tray(resp, app, me);
  story_in *in = calloc(1, sizeof *in);
  if (!in) return app_error(resp, 503, "busy", "server busy; retry later");
  if (p.n == 4 && m == HTTP_POST) {
    app_body b;
    const char *err = "body must be a JSON object";
    if (!app_body_parse(r, &b) || (err = parse_story(&b, app, in)) != NULL) {
      free(in);
      return app_error(resp, 400, "bad_request", err);
    }
    return pub_op_start(r, resp, app, me, in, run_post, write_posted);
  }
  if (p.n < 5 || !pub_id_parse(p.seg[4], &in->id)) {
    free(in);
    return app_error(resp, 404, "not_found", "no such story");
  }
  if (p.n == 5 && m == HTTP_DELETE)
    return pub_op_start(r, resp, app, me, in, run_delete, NULL);
  if (p.n == 6 && m == HTTP_POST && strcmp(p.seg[5], "view") == 0)
    return pub_op_start(r, resp, app, me, in, run_view, NULL);
  int64_t id = in->id;
  free(in);
  if (p.n == 6 && m == HTTP_GET && strcmp(p.seg[5], "viewers") == 0)
    return viewers(resp, app, id, me);
  return app_error(resp, 404, "not_found", "no such resource");
}

int stories_routes(void) {
  static const http_method ms[] = {HTTP_GET, HTTP_POST, HTTP_DELETE};
  return pub_routes_add("stories", ms, 3, h_stories);
}

/* ---- the sweep ------------------------------------------------------------------- */

static struct {
  worker *w;
  loop_timer timer;
  bool running;
} sw;

typedef struct {
  store_job job;
  int64_t now;
  int deleted;
} sweep_op;

static int sweep_run(store_conn *c, void *arg) {
  sweep_op *o = arg;
  store_stmt *s;
  int64_t ids[SWEEP_BATCH];
  int n = 0;
  int rc = store_conn_prepare(c,
                              "SELECT id FROM stories WHERE expires_at <= ? ORDER BY"
                              " expires_at LIMIT ?",
                              &s);
  if (rc) return rc;
  store_bind_int64(s, 1, o->now);
  store_bind_int64(s, 2, SWEEP_BATCH);
  while ((rc = store_step(s)) == STORE_ROW) ids[n++] = store_col_int64(s, 0);
  store_stmt_reset(s);
  if (rc < 0) return rc;
  for (int i = 0; i < n; i++)
    if ((rc = delete_story(c, ids[i])) != 0) return rc;
  o->deleted = n;
  return 0;
}

static void sweep_done(store_job *job, int status) {
  sweep_op *o = job->arg;
  if (status) log_warn("stories: sweep failed: %s", tsr_errname(status));
  bool more = status == 0 && o->deleted == SWEEP_BATCH;
  free(o);
  sw.running = false;
  if (sw.w) loop_timer_start(&sw.w->loop, &sw.timer, more ? 10 : SWEEP_MS);
}

static void on_sweep(loop_t *l, loop_timer *t) {
  (void)t;
  sweep_op *o = calloc(1, sizeof *o);
  if (!o || sw.running) {
    free(o);
    loop_timer_start(l, &sw.timer, SWEEP_MS);
    return;
  }
  o->now = clock_now_ms();
  o->job = (store_job){.run = sweep_run, .done = sweep_done, .arg = o};
  if (store_submit(sw.w->sc, &o->job) != 0) {
    free(o);
    loop_timer_start(l, &sw.timer, SWEEP_MS);
    return;
  }
  sw.running = true;
}

int stories_worker_start(worker *w) {
  sw.w = w;
  sw.running = false;
  sw.timer.kind = TIMER_STORIES;
  loop_set_timer_cb(&w->loop, TIMER_STORIES, on_sweep);
  if (w->index == 0) loop_timer_start(&w->loop, &sw.timer, SWEEP_MS);
  return 0;
}

void stories_worker_stop(worker *w) {
  loop_timer_stop(&w->loop, &sw.timer);
  sw.w = NULL;
}
