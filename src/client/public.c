/* Public life (tessera.h "Public life"; docs/protocol.md "Public life"): posts,
 * likes, comments, feeds, stories, close friends, notifications, reports
 * and follows as typed forms of tsr_call, and the media upload, the one
 * binary request (it goes through the request queue like blobs.c). */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client/client.h"
#include "client/pj.h"
#include "proto/json.h"

#define KEY_MAX 200                  /* handles, usernames, tags before escaping */
#define ID_DIGITS 20                 /* a 64-bit id in decimal */
#define PATH_CAP (160 + 3 * KEY_MAX) /* every path built here fits */

/* ---- checks ---------------------------------------------------------------- */

static bool pub_app(const char *app) {
  return app && (!strcmp(app, "social") || !strcmp(app, "messenger"));
}

static bool valid_id(const char *id) {
  size_t n = id ? strlen(id) : 0;
  if (n == 0 || n > ID_DIGITS) return false;
  for (size_t i = 0; i < n; i++)
    if (id[i] < '0' || id[i] > '9') return false;
  return true;
}

static bool none(const char *s) { return !s || !s[0]; }

/* An optional cursor: absent, or an id. */
static bool valid_cursor(const char *s) { return none(s) || valid_id(s); }

static bool valid_visibility(const char *v) {
  return !v || !strcmp(v, "public") || !strcmp(v, "followers") ||
         !strcmp(v, "close_friends");
}

static bool valid_apps(const char *const *apps, size_t n) {
  if (n > 2 || (n && !apps)) return false;
  for (size_t i = 0; i < n; i++)
    if (!pub_app(apps[i])) return false;
  return true;
}

/* key without a leading '@', escaped into out (3 * KEY_MAX + 1 bytes). */
static int escape_key(const char *key, char *out, size_t cap) {
  if (none(key)) return TSR_EINVAL;
  if (key[0] == '@') key++;
  if (!key[0]) return TSR_EINVAL;
  if (strlen(key) > KEY_MAX) return TSR_ELIMIT;
  int n = tsr_path_escape(key, out, cap);
  return n < 0 ? n : 0;
}

/* ---- requests ---------------------------------------------------------------- */

/* snprintf into path[PATH_CAP]; false when it did not fit. */
static bool fmt_path(char *path, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static bool fmt_path(char *path, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(path, PATH_CAP, fmt, ap);
  va_end(ap);
  return n >= 0 && n < PATH_CAP;
}

/* Appends "?name=cursor&limit=N" (each part only when given) to path. */
static bool add_page(char *path, const char *name, const char *cursor, unsigned limit) {
  size_t n = strlen(path);
  char sep = strchr(path, '?') ? '&' : '?';
  int k = 0;
  if (!none(cursor)) {
    k = snprintf(path + n, PATH_CAP - n, "%c%s=%s", sep, name, cursor);
    if (k < 0 || (size_t)k >= PATH_CAP - n) return false;
    n += (size_t)k;
    sep = '&';
  }
  if (limit) {
    k = snprintf(path + n, PATH_CAP - n, "%climit=%u", sep, limit);
    if (k < 0 || (size_t)k >= PATH_CAP - n) return false;
  }
  return true;
}

/* Finishes the writer's JSON (NUL-terminated) and queues it with tsr_call;
 * frees the buffer either way. */
static int call_body(tsr_client *c, const char *method, const char *path, json_writer *w,
                     buf_t *b, tsr_result_cb cb, void *arg) {
  int rc = json_writer_finish(w);
  if (rc == 0 && buf_append(b, "", 1) != 0) rc = JSON_E_NOMEM;
  if (rc == 0)
    rc = tsr_call(c, method, path, (const char *)b->ptr, cb, arg);
  else
    rc = rc == JSON_E_NOMEM ? TSR_ENOMEM : TSR_EINVAL;
  buf_free(b);
  return rc;
}

/* Writes "key": value when value is neither NULL nor "". */
static void put_opt(json_writer *w, const char *key, const char *value) {
  if (none(value)) return;
  json_write_key(w, key);
  json_write_string(w, value);
}

static void put_apps(json_writer *w, const char *const *apps, size_t n) {
  if (n == 0) return;
  json_write_key(w, "apps");
  json_write_array_begin(w);
  for (size_t i = 0; i < n; i++) json_write_string(w, apps[i]);
  json_write_array_end(w);
}

/* ---- media ---------------------------------------------------------------------- */

/* Opens the regular file at path for a streamed upload: its fd and size. */
static int open_upload(const char *path, int *fd, uint64_t *size) {
  *fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (*fd < 0 || fstat(*fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
    return TSR_EIO;
  }
  if ((uint64_t)st.st_size > TSR_MEDIA_MAX) {
    close(*fd);
    *fd = -1;
    return TSR_ELIMIT;
  }
  *size = (uint64_t)st.st_size;
  return 0;
}

static bool logged_in(tsr_client *c) {
  buf_t b;
  buf_init(&b);
  int rc = cstate_get(client_state(c), K_TOKEN, &b);
  buf_free_secret(&b);
  return rc == 0;
}

int tsr_media_upload(tsr_client *c, const char *path, tsr_result_cb cb, void *arg) {
  if (!c || !path) return TSR_EINVAL;
  if (!logged_in(c)) return TSR_ESTATE;
  creq *r = client_req_new("POST", "/v1/media");
  if (!r) return TSR_ENOMEM;
  int rc = open_upload(path, &r->body_fd, &r->body_len);
  if (rc) {
    client_req_free(r);
    return rc;
  }
  r->has_body = true;
  r->content_type = "application/octet-stream";
  r->kind = REQ_PLAIN;
  r->auth = true;
  r->cb = cb;
  r->cb_arg = arg;
  return client_submit(c, r);
}

/* Fills *out from a {"media": {...}} answer. */
static int media_parse(const char *body, size_t len, tsr_media *out) {
  pj p;
  int rc = pj_parse(&p, body, len);
  if (rc) return rc;
  tsr_media m;
  memset(&m, 0, sizeof m);
  uint64_t w = 0, h = 0;
  int o = pj_get(&p, 0, "media");
  rc = TSR_EDECODE;
  if (o >= 0 && p.t[o].type == JSON_OBJECT && pj_str(&p, o, "id", m.id, sizeof m.id) &&
      strlen(m.id) == TSR_MEDIA_ID_SIZE - 1 &&
      pj_str(&p, o, "kind", m.kind, sizeof m.kind) &&
      pj_str(&p, o, "mime", m.mime, sizeof m.mime) && pj_u64(&p, o, "size", &m.size) &&
      pj_u64(&p, o, "width", &w) && pj_u64(&p, o, "height", &h) && w <= UINT32_MAX &&
      h <= UINT32_MAX) {
    m.width = (uint32_t)w;
    m.height = (uint32_t)h;
    *out = m;
    rc = 0;
  }
  pj_free(&p);
  return rc;
}

int tsr_media_upload_sync(tsr_client *c, const char *path, tsr_media *out,
                          tsr_reply *reply) {
  tsr_reply local;
  tsr_reply *r = reply ? reply : &local;
  memset(r, 0, sizeof *r); /* as SYNC: out is overwritten, not freed */
  int rc = client_sync_wait(c, tsr_media_upload(c, path, client_reply_cb, r), r, false);
  tsr_media m;
  if (rc == 0 && out && (rc = media_parse(r->body, r->body_len, &m)) != 0) {
    /* Uploaded, but the answer is not what it should be. */
    int status = r->status;
    tsr_reply_clear(r);
    tsr_result res = {rc,
                      status,
                      rc == TSR_EDECODE ? "bad_response" : "local",
                      rc == TSR_EDECODE ? "unexpected answer from the server"
                                        : "out of memory",
                      "",
                      0};
    client_reply_cb(r, &res);
  } else if (rc == 0 && out) {
    *out = m;
  }
  if (!reply) tsr_reply_clear(&local);
  return rc;
}

/* ---- posts ----------------------------------------------------------------------- */

int tsr_post_create(tsr_client *c, const char *app, const tsr_post_params *p,
                    tsr_result_cb cb, void *arg) {
  if (!c || !pub_app(app) || !p || !valid_visibility(p->visibility) ||
      !valid_apps(p->apps, p->n_apps) || p->n_media > TSR_POST_MEDIA_MAX ||
      (p->n_media && !p->media) || (none(p->caption) && p->n_media == 0))
    return TSR_EINVAL;
  for (size_t i = 0; i < p->n_media; i++)
    if (none(p->media[i].id)) return TSR_EINVAL;
  char path[PATH_CAP];
  if (!fmt_path(path, "/v1/apps/%s/posts", app)) return TSR_EINVAL;
  buf_t b;
  buf_init(&b);
  json_writer w;
  json_writer_init(&w, &b, 0);
  json_write_object_begin(&w);
  put_opt(&w, "caption", p->caption);
  put_opt(&w, "location", p->location);
  if (p->n_media) {
    json_write_key(&w, "media");
    json_write_array_begin(&w);
    for (size_t i = 0; i < p->n_media; i++) {
      json_write_object_begin(&w);
      json_write_key(&w, "id");
      json_write_string(&w, p->media[i].id);
      put_opt(&w, "alt", p->media[i].alt);
      json_write_object_end(&w);
    }
    json_write_array_end(&w);
  }
  put_opt(&w, "visibility", p->visibility);
  put_apps(&w, p->apps, p->n_apps);
  json_write_object_end(&w);
  return call_body(c, "POST", path, &w, &b, cb, arg);
}

/* METHOD /v1/apps/{app}/{what}/{id}{tail} without a body. */
static int id_call(tsr_client *c, const char *method, const char *app, const char *what,
                   const char *id, const char *tail, tsr_result_cb cb, void *arg) {
  if (!c || !pub_app(app) || !valid_id(id)) return TSR_EINVAL;
  char path[PATH_CAP];
  if (!fmt_path(path, "/v1/apps/%s/%s/%s%s", app, what, id, tail)) return TSR_EINVAL;
  bool body = !strcmp(method, "POST") || !strcmp(method, "PUT");
  return tsr_call(c, method, path, body ? "{}" : NULL, cb, arg);
}

int tsr_post_get(tsr_client *c, const char *app, const char *id, tsr_result_cb cb,
                 void *arg) {
  return id_call(c, "GET", app, "posts", id, "", cb, arg);
}

int tsr_post_edit(tsr_client *c, const char *app, const char *id, const char *caption,
                  tsr_result_cb cb, void *arg) {
  if (!c || !pub_app(app) || !valid_id(id) || !caption) return TSR_EINVAL;
  char path[PATH_CAP];
  if (!fmt_path(path, "/v1/apps/%s/posts/%s", app, id)) return TSR_EINVAL;
  buf_t b;
  buf_init(&b);
  json_writer w;
  json_writer_init(&w, &b, 0);
  json_write_object_begin(&w);
  json_write_key(&w, "caption");
  json_write_string(&w, caption);
  json_write_object_end(&w);
  return call_body(c, "PATCH", path, &w, &b, cb, arg);
}

int tsr_post_delete(tsr_client *c, const char *app, const char *id, tsr_result_cb cb,
                    void *arg) {
  return id_call(c, "DELETE", app, "posts", id, "", cb, arg);
}

int tsr_post_like(tsr_client *c, const char *app, const char *id, int like,
                  tsr_result_cb cb, void *arg) {
  return id_call(c, like ? "POST" : "DELETE", app, "posts", id, "/like", cb, arg);
}

int tsr_post_likes(tsr_client *c, const char *app, const char *id, const char *before,
                   unsigned limit, tsr_result_cb cb, void *arg) {
  if (!c || !pub_app(app) || !valid_id(id) || !valid_cursor(before) || limit > 50)
    return TSR_EINVAL;
  char path[PATH_CAP];
  if (!fmt_path(path, "/v1/apps/%s/posts/%s/likes", app, id) ||
      !add_page(path, "before", before, limit))
    return TSR_EINVAL;
  return tsr_call(c, "GET", path, NULL, cb, arg);
}

/* ---- comments -------------------------------------------------------------------- */

int tsr_comment_create(tsr_client *c, const char *app, const char *post, const char *text,
                       const char *reply_to, tsr_result_cb cb, void *arg) {
  if (!c || !pub_app(app) || !valid_id(post) || none(text) || !valid_cursor(reply_to))
    return TSR_EINVAL;
  char path[PATH_CAP];
  if (!fmt_path(path, "/v1/apps/%s/posts/%s/comments", app, post)) return TSR_EINVAL;
  buf_t b;
  buf_init(&b);
  json_writer w;
  json_writer_init(&w, &b, 0);
  json_write_object_begin(&w);
  json_write_key(&w, "text");
  json_write_string(&w, text);
  put_opt(&w, "reply_to", reply_to);
  json_write_object_end(&w);
  return call_body(c, "POST", path, &w, &b, cb, arg);
}

int tsr_comments_list(tsr_client *c, const char *app, const char *post, const char *after,
                      unsigned limit, int hidden, tsr_result_cb cb, void *arg) {
  if (!c || !pub_app(app) || !valid_id(post) || !valid_cursor(after) || limit > 100)
    return TSR_EINVAL;
  char path[PATH_CAP];
  if (!fmt_path(path, "/v1/apps/%s/posts/%s/comments%s", app, post,
                hidden ? "?hidden=true" : "") ||
      !add_page(path, "after", after, limit))
    return TSR_EINVAL;
  return tsr_call(c, "GET", path, NULL, cb, arg);
}

int tsr_comment_delete(tsr_client *c, const char *app, const char *id, tsr_result_cb cb,
                       void *arg) {
  return id_call(c, "DELETE", app, "comments", id, "", cb, arg);
}

int tsr_comment_appeal(tsr_client *c, const char *app, const char *id, const char *note,
                       tsr_result_cb cb, void *arg) {
  if (!c || !pub_app(app) || !valid_id(id)) return TSR_EINVAL;
  char path[PATH_CAP];
  if (!fmt_path(path, "/v1/apps/%s/comments/%s/appeal", app, id)) return TSR_EINVAL;
  buf_t b;
  buf_init(&b);
  json_writer w;
  json_writer_init(&w, &b, 0);
  json_write_object_begin(&w);
  put_opt(&w, "note", note);
  json_write_object_end(&w);
  return call_body(c, "POST", path, &w, &b, cb, arg);
}

/* ---- feeds ------------------------------------------------------------------------ */

/* GET /v1/apps/{app}/{middle}?before=&limit=; middle is already escaped. */
static int page_call(tsr_client *c, const char *app, const char *middle,
                     const char *before, unsigned limit, tsr_result_cb cb, void *arg) {
  if (!c || !pub_app(app) || !valid_cursor(before) || limit > 50) return TSR_EINVAL;
  char path[PATH_CAP];
  if (!fmt_path(path, "/v1/apps/%s/%s", app, middle) ||
      !add_page(path, "before", before, limit))
    return TSR_EINVAL;
  return tsr_call(c, "GET", path, NULL, cb, arg);
}

int tsr_feed_home(tsr_client *c, const char *app, const char *before, unsigned limit,
                  tsr_result_cb cb, void *arg) {
  return page_call(c, app, "feed", before, limit, cb, arg);
}

int tsr_feed_profile(tsr_client *c, const char *app, const char *key, const char *before,
                     unsigned limit, tsr_result_cb cb, void *arg) {
  char esc[3 * KEY_MAX + 1], middle[3 * KEY_MAX + 32];
  int rc = escape_key(key, esc, sizeof esc);
  if (rc) return rc;
  snprintf(middle, sizeof middle, "profiles/%s/posts", esc);
  return page_call(c, app, middle, before, limit, cb, arg);
}

int tsr_feed_tag(tsr_client *c, const char *app, const char *tag, const char *before,
                 unsigned limit, tsr_result_cb cb, void *arg) {
  if (tag && tag[0] == '#') tag++;
  char esc[3 * KEY_MAX + 1], middle[3 * KEY_MAX + 32];
  int rc = escape_key(tag, esc, sizeof esc);
  if (rc) return rc;
  snprintf(middle, sizeof middle, "tags/%s", esc);
  return page_call(c, app, middle, before, limit, cb, arg);
}

/* ---- stories ---------------------------------------------------------------------- */

int tsr_story_post(tsr_client *c, const char *app, const tsr_story_params *p,
                   tsr_result_cb cb, void *arg) {
  if (!c || !pub_app(app) || !p || none(p->media) || !valid_visibility(p->visibility) ||
      !valid_apps(p->apps, p->n_apps))
    return TSR_EINVAL;
  char path[PATH_CAP];
  if (!fmt_path(path, "/v1/apps/%s/stories", app)) return TSR_EINVAL;
  buf_t b;
  buf_init(&b);
  json_writer w;
  json_writer_init(&w, &b, 0);
  json_write_object_begin(&w);
  json_write_key(&w, "media");
  json_write_object_begin(&w);
  json_write_key(&w, "id");
  json_write_string(&w, p->media);
  put_opt(&w, "alt", p->alt);
  json_write_object_end(&w);
  put_opt(&w, "caption", p->caption);
  put_opt(&w, "visibility", p->visibility);
  put_apps(&w, p->apps, p->n_apps);
  json_write_object_end(&w);
  return call_body(c, "POST", path, &w, &b, cb, arg);
}

int tsr_stories_tray(tsr_client *c, const char *app, tsr_result_cb cb, void *arg) {
  return page_call(c, app, "stories", NULL, 0, cb, arg);
}

int tsr_story_view(tsr_client *c, const char *app, const char *id, tsr_result_cb cb,
                   void *arg) {
  return id_call(c, "POST", app, "stories", id, "/view", cb, arg);
}

int tsr_story_viewers(tsr_client *c, const char *app, const char *id, tsr_result_cb cb,
                      void *arg) {
  return id_call(c, "GET", app, "stories", id, "/viewers", cb, arg);
}

int tsr_story_delete(tsr_client *c, const char *app, const char *id, tsr_result_cb cb,
                     void *arg) {
  return id_call(c, "DELETE", app, "stories", id, "", cb, arg);
}

/* ---- close friends, notifications, reports, follows ------------------------------ */

int tsr_close_friend_set(tsr_client *c, const char *handle, int add, tsr_result_cb cb,
                         void *arg) {
  if (!c) return TSR_EINVAL;
  char esc[3 * KEY_MAX + 1], path[PATH_CAP];
  int rc = escape_key(handle, esc, sizeof esc);
  if (rc) return rc;
  if (!fmt_path(path, "/v1/apps/social/close-friends/%s", esc)) return TSR_EINVAL;
  return tsr_call(c, add ? "PUT" : "DELETE", path, add ? "{}" : NULL, cb, arg);
}

int tsr_close_friends_list(tsr_client *c, tsr_result_cb cb, void *arg) {
  return page_call(c, "social", "close-friends", NULL, 0, cb, arg);
}

int tsr_notifications_list(tsr_client *c, const char *app, const char *before,
                           unsigned limit, tsr_result_cb cb, void *arg) {
  if (!c || (app && !pub_app(app)) || !valid_cursor(before) || limit > 100)
    return TSR_EINVAL;
  char path[PATH_CAP];
  if (!fmt_path(path, "/v1/notifications%s%s", app ? "?app=" : "", app ? app : "") ||
      !add_page(path, "before", before, limit))
    return TSR_EINVAL;
  return tsr_call(c, "GET", path, NULL, cb, arg);
}

int tsr_notifications_read(tsr_client *c, const char *up_to, tsr_result_cb cb,
                           void *arg) {
  if (!c || !valid_id(up_to)) return TSR_EINVAL;
  buf_t b;
  buf_init(&b);
  json_writer w;
  json_writer_init(&w, &b, 0);
  json_write_object_begin(&w);
  json_write_key(&w, "up_to");
  json_write_string(&w, up_to);
  json_write_object_end(&w);
  return call_body(c, "POST", "/v1/notifications/read", &w, &b, cb, arg);
}

static bool valid_reason(const char *r) {
  static const char *const ok[] = {"spam",     "harassment", "nudity",
                                   "violence", "hate",       "other"};
  for (size_t i = 0; r && i < sizeof ok / sizeof ok[0]; i++)
    if (!strcmp(r, ok[i])) return true;
  return false;
}

int tsr_report(tsr_client *c, const char *app, const char *post, const char *comment,
               const char *reason, const char *note, tsr_result_cb cb, void *arg) {
  if (!c || !pub_app(app) || none(post) == none(comment) || !valid_cursor(post) ||
      !valid_cursor(comment) || !valid_reason(reason))
    return TSR_EINVAL;
  char path[PATH_CAP];
  if (!fmt_path(path, "/v1/apps/%s/reports", app)) return TSR_EINVAL;
  buf_t b;
  buf_init(&b);
  json_writer w;
  json_writer_init(&w, &b, 0);
  json_write_object_begin(&w);
  put_opt(&w, "post", post);
  put_opt(&w, "comment", comment);
  json_write_key(&w, "reason");
  json_write_string(&w, reason);
  put_opt(&w, "note", note);
  json_write_object_end(&w);
  return call_body(c, "POST", path, &w, &b, cb, arg);
}

int tsr_follow(tsr_client *c, const char *app, const char *key, int follow,
               tsr_result_cb cb, void *arg) {
  if (!c || !pub_app(app)) return TSR_EINVAL;
  char esc[3 * KEY_MAX + 1], path[PATH_CAP];
  int rc = escape_key(key, esc, sizeof esc);
  if (rc) return rc;
  bool ok = !strcmp(app, "social")
                ? fmt_path(path, "/v1/apps/social/follows/%s", esc)
                : fmt_path(path, "/v1/apps/messenger/pages/%s/follow", esc);
  if (!ok) return TSR_EINVAL;
  return tsr_call(c, follow ? "POST" : "DELETE", path, follow ? "{}" : NULL, cb, arg);
}

/* ---- blocking forms ------------------------------------------------------------- */

int tsr_post_create_sync(tsr_client *c, const char *app, const tsr_post_params *p,
                         tsr_reply *out) {
  SYNC(tsr_post_create(c, app, p, client_reply_cb, r_));
}
int tsr_post_get_sync(tsr_client *c, const char *app, const char *id, tsr_reply *out) {
  SYNC(tsr_post_get(c, app, id, client_reply_cb, r_));
}
int tsr_post_edit_sync(tsr_client *c, const char *app, const char *id,
                       const char *caption, tsr_reply *out) {
  SYNC(tsr_post_edit(c, app, id, caption, client_reply_cb, r_));
}
int tsr_post_delete_sync(tsr_client *c, const char *app, const char *id, tsr_reply *out) {
  SYNC(tsr_post_delete(c, app, id, client_reply_cb, r_));
}
int tsr_post_like_sync(tsr_client *c, const char *app, const char *id, int like,
                       tsr_reply *out) {
  SYNC(tsr_post_like(c, app, id, like, client_reply_cb, r_));
}
int tsr_post_likes_sync(tsr_client *c, const char *app, const char *id,
                        const char *before, unsigned limit, tsr_reply *out) {
  SYNC(tsr_post_likes(c, app, id, before, limit, client_reply_cb, r_));
}
int tsr_comment_create_sync(tsr_client *c, const char *app, const char *post,
                            const char *text, const char *reply_to, tsr_reply *out) {
  SYNC(tsr_comment_create(c, app, post, text, reply_to, client_reply_cb, r_));
}
int tsr_comments_list_sync(tsr_client *c, const char *app, const char *post,
                           const char *after, unsigned limit, int hidden,
                           tsr_reply *out) {
  SYNC(tsr_comments_list(c, app, post, after, limit, hidden, client_reply_cb, r_));
}
int tsr_comment_delete_sync(tsr_client *c, const char *app, const char *id,
                            tsr_reply *out) {
  SYNC(tsr_comment_delete(c, app, id, client_reply_cb, r_));
}
int tsr_comment_appeal_sync(tsr_client *c, const char *app, const char *id,
                            const char *note, tsr_reply *out) {
  SYNC(tsr_comment_appeal(c, app, id, note, client_reply_cb, r_));
}
int tsr_feed_home_sync(tsr_client *c, const char *app, const char *before, unsigned limit,
                       tsr_reply *out) {
  SYNC(tsr_feed_home(c, app, before, limit, client_reply_cb, r_));
}
int tsr_feed_profile_sync(tsr_client *c, const char *app, const char *key,
                          const char *before, unsigned limit, tsr_reply *out) {
  SYNC(tsr_feed_profile(c, app, key, before, limit, client_reply_cb, r_));
}
int tsr_feed_tag_sync(tsr_client *c, const char *app, const char *tag, const char *before,
                      unsigned limit, tsr_reply *out) {
  SYNC(tsr_feed_tag(c, app, tag, before, limit, client_reply_cb, r_));
}
int tsr_story_post_sync(tsr_client *c, const char *app, const tsr_story_params *p,
                        tsr_reply *out) {
  SYNC(tsr_story_post(c, app, p, client_reply_cb, r_));
}
int tsr_stories_tray_sync(tsr_client *c, const char *app, tsr_reply *out) {
  SYNC(tsr_stories_tray(c, app, client_reply_cb, r_));
}
int tsr_story_view_sync(tsr_client *c, const char *app, const char *id, tsr_reply *out) {
  SYNC(tsr_story_view(c, app, id, client_reply_cb, r_));
}
int tsr_story_viewers_sync(tsr_client *c, const char *app, const char *id,
                           tsr_reply *out) {
  SYNC(tsr_story_viewers(c, app, id, client_reply_cb, r_));
}
int tsr_story_delete_sync(tsr_client *c, const char *app, const char *id,
                          tsr_reply *out) {
  SYNC(tsr_story_delete(c, app, id, client_reply_cb, r_));
}
int tsr_close_friend_set_sync(tsr_client *c, const char *handle, int add,
                              tsr_reply *out) {
  SYNC(tsr_close_friend_set(c, handle, add, client_reply_cb, r_));
}
int tsr_close_friends_list_sync(tsr_client *c, tsr_reply *out) {
  SYNC(tsr_close_friends_list(c, client_reply_cb, r_));
}
int tsr_notifications_list_sync(tsr_client *c, const char *app, const char *before,
                                unsigned limit, tsr_reply *out) {
  SYNC(tsr_notifications_list(c, app, before, limit, client_reply_cb, r_));
}
int tsr_notifications_read_sync(tsr_client *c, const char *up_to, tsr_reply *out) {
  SYNC(tsr_notifications_read(c, up_to, client_reply_cb, r_));
}
int tsr_report_sync(tsr_client *c, const char *app, const char *post, const char *comment,
                    const char *reason, const char *note, tsr_reply *out) {
  SYNC(tsr_report(c, app, post, comment, reason, note, client_reply_cb, r_));
}
int tsr_follow_sync(tsr_client *c, const char *app, const char *key, int follow,
                    tsr_reply *out) {
  SYNC(tsr_follow(c, app, key, follow, client_reply_cb, r_));
}
