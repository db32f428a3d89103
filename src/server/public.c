/* Plumbing shared by the public-life modules: see public.h. */
#include "server/public.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/utf8.h"
#include "server/blocks.h"
#include "server/graphs.h"
#include "server/media.h"
#include "server/worker.h"
#include "tessera/error.h"

#define ID_SHIFT 22

static const char *const vis_names[] = {"public", "followers", "close_friends"};

int pub_vis_parse(const char *s) {
  for (int i = 0; i < 3; i++)
    if (strcmp(s, vis_names[i]) == 0) return i;
  return -1;
}

const char *pub_vis_name(pub_vis v) { return vis_names[v]; }

int pub_app_parse(const char *seg) {
  int a = app_parse(seg);
  return a == APP_SOCIAL || a == APP_MESSENGER ? a : -1;
}

/* ---- ids ---------------------------------------------------------------- */

int pub_next_id(store_conn *c, const char *table, int64_t now_ms, int64_t *out) {
  /* Read inside the job's write transaction: workers are processes with
   * a writer each, serialised by the database's write lock, so the
   * largest id is the truth and no other writer can take it meanwhile.
   * An INTEGER PRIMARY KEY's maximum is one step down the table's b-tree. */
  char sql[80];
  snprintf(sql, sizeof sql, "SELECT MAX(id) FROM %s", table);
  store_stmt *s;
  int rc = store_conn_prepare(c, sql, &s);
  if (rc) return rc;
  rc = store_step(s);
  int64_t max = rc == STORE_ROW ? store_col_int64(s, 0) : 0;
  store_stmt_reset(s);
  if (rc < 0) return rc;
  int64_t id = now_ms << ID_SHIFT;
  *out = id > max ? id : max + 1;
  return 0;
}

bool pub_id_parse(const char *s, int64_t *out) {
  size_t n = strlen(s);
  if (n < 1 || n > 19) return false;
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (uint64_t)(s[i] - '0');
  }
  if (v == 0 || v > (uint64_t)INT64_MAX) return false;
  *out = (int64_t)v;
  return true;
}

void pub_write_id(json_writer *jw, int64_t id) {
  char t[PUB_ID_TEXT];
  snprintf(t, sizeof t, "%lld", (long long)id);
  json_write_string(jw, t);
}

void pub_write_id_or_null(json_writer *jw, int64_t id) {
  if (id)
    pub_write_id(jw, id);
  else
    json_write_null(jw);
}

void pub_write_hash(json_writer *jw, bytes_t h) {
  char t[MEDIA_ID_HEX + 1];
  if (h.len != MEDIA_HASH_BYTES) {
    json_write_null(jw);
    return;
  }
  media_id_text(h.ptr, t);
  json_write_string(jw, t);
}

void pub_write_col(json_writer *jw, const char *key, store_stmt *s, int col,
                   bool nullable) {
  json_write_key(jw, key);
  if (nullable && store_col_is_null(s, col)) {
    json_write_null(jw);
    return;
  }
  size_t n;
  const char *t = store_col_text(s, col, &n);
  json_write_string_n(jw, t, n);
}

/* ---- profiles and audiences -------------------------------------------- */

store_conn *pub_reader(store_conn *c) {
  if (!c && store_reader_get(worker_self->store, &c) != 0) return NULL;
  return c;
}

int pub_write_profile(json_writer *jw, store_conn *c, app_id app,
                      const uint8_t account[ACCOUNTS_ID_BYTES]) {
  store_stmt *s;
  if (!(c = pub_reader(c))) return TSR_EIO;
  int rc = store_conn_prepare(
      c, "SELECT handle, name FROM profiles WHERE account_id = ? AND app = ?", &s);
  if (rc) return rc;
  store_bind_blob(s, 1, BYTES(account, ACCOUNTS_ID_BYTES));
  store_bind_str(s, 2, app_name(app));
  rc = store_step(s);
  if (rc == STORE_ROW) {
    size_t hl, nl;
    const char *h = store_col_text(s, 0, &hl), *nm = store_col_text(s, 1, &nl);
    json_write_object_begin(jw);
    json_write_key(jw, "app");
    json_write_string(jw, app_name(app));
    json_write_key(jw, app == APP_SOCIAL ? "handle" : "username");
    json_write_string_n(jw, h, hl);
    json_write_key(jw, "name");
    json_write_string_n(jw, nm, nl);
    json_write_object_end(jw);
  } else {
    json_write_null(jw);
  }
  store_stmt_reset(s);
  return rc < 0 ? rc : 0;
}

int pub_private(store_conn *c, const uint8_t account[ACCOUNTS_ID_BYTES]) {
  store_stmt *s;
  if (!(c = pub_reader(c))) return TSR_EIO;
  int rc = store_conn_prepare(
      c, "SELECT private FROM profiles WHERE account_id = ? AND app = 'social'", &s);
  if (rc) return rc;
  store_bind_blob(s, 1, BYTES(account, ACCOUNTS_ID_BYTES));
  rc = store_step(s);
  int priv = rc == STORE_ROW && store_col_int64(s, 0) != 0;
  store_stmt_reset(s);
  return rc < 0 ? rc : priv;
}

static bool close_friend(store_conn *c, const uint8_t owner[ACCOUNTS_ID_BYTES],
                         const uint8_t other[ACCOUNTS_ID_BYTES]) {
  store_stmt *s;
  if (store_conn_prepare(
          c, "SELECT 1 FROM close_friends WHERE owner_id = ? AND friend_id = ?", &s))
    return false;
  store_bind_blob(s, 1, BYTES(owner, ACCOUNTS_ID_BYTES));
  store_bind_blob(s, 2, BYTES(other, ACCOUNTS_ID_BYTES));
  int rc = store_step(s);
  store_stmt_reset(s);
  return rc == STORE_ROW;
}

bool pub_can_see(store_conn *c, app_id app, const pub_audience *a,
                 const uint8_t viewer[ACCOUNTS_ID_BYTES]) {
  if (memcmp(a->author, viewer, ACCOUNTS_ID_BYTES) == 0) return true;
  if (!(a->apps & PUB_APP_BIT(app))) return false;
  if (!(c = pub_reader(c))) return false;
  if (blocks_between(c, a->author, viewer)) return false;
  switch (a->vis) {
  case VIS_PUBLIC:
    if (app != APP_SOCIAL) return true;
    int priv = pub_private(c, a->author);
    if (priv == 0) return true;
    if (priv < 0) return false;
    return graph_in(c, app, viewer, a->author);
  case VIS_FOLLOWERS: return graph_in(c, app, viewer, a->author);
  case VIS_CLOSE_FRIENDS: return close_friend(c, a->author, viewer);
  }
  return false;
}

bool pub_is_admin(store_conn *c, const uint8_t me[ACCOUNTS_ID_BYTES]) {
  const char *list = worker_self->cfg->admins;
  if (!list[0] || !(c = pub_reader(c))) return false;
  store_stmt *s;
  if (store_conn_prepare(c, "SELECT login FROM accounts WHERE id = ?", &s)) return false;
  store_bind_blob(s, 1, BYTES(me, ACCOUNTS_ID_BYTES));
  bool ok = false;
  if (store_step(s) == STORE_ROW) {
    size_t n;
    const char *login = store_col_text(s, 0, &n);
    for (const char *p = list; *p && !ok;) {
      while (*p == ',' || *p == ' ') p++;
      const char *e = p;
      while (*e && *e != ',' && *e != ' ') e++;
      ok = (size_t)(e - p) == n && n > 0 && strncasecmp(p, login, n) == 0;
      p = e;
    }
  }
  store_stmt_reset(s);
  return ok;
}

/* ---- text ----------------------------------------------------------------- */

bool pub_text_ok(const char *s, bool multiline) {
  size_t n = strlen(s);
  if (!utf8_valid((const uint8_t *)s, n)) return false;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if ((c < 0x20 && !(multiline && c == '\n')) || c == 0x7f) return false;
    if (c == 0xc2 && i + 1 < n && (unsigned char)s[i + 1] >= 0x80 &&
        (unsigned char)s[i + 1] <= 0x9f)
      return false;
  }
  return true;
}

#define TAG_MAX 64

/* A tag character: ASCII letter, digit, '_', or any non-ASCII byte that is
 * part of a letter (we take every multi-byte sequence except the general
 * punctuation block U+2000-U+206F and U+3000-U+303F, which end a tag). */
static size_t tag_char(const unsigned char *p) {
  unsigned char c = p[0];
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
      c == '_')
    return 1;
  if (c < 0x80) return 0;
  size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
  for (size_t i = 1; i < len; i++)
    if ((p[i] & 0xc0) != 0x80) return 0;
  if (c == 0xe2 && p[1] == 0x80) return 0;                 /* U+2000-U+203F */
  if (c == 0xe2 && p[1] == 0x81 && p[2] <= 0xaf) return 0; /* U+2040-U+206F */
  if (c == 0xe3 && p[1] == 0x80) return 0;                 /* U+3000-U+303F */
  if (c == 0xc2 && p[1] < 0xc0) return 0;                  /* U+0080-U+00BF: symbols */
  if (c >= 0xf0) return 0;                                 /* emoji and the like */
  return len;
}

static bool name_char(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '_' || c == '.';
}

void pub_scan_words(const char *text, pub_word_fn fn, void *arg) {
  const unsigned char *p = (const unsigned char *)text;
  while (*p) {
    bool start = p == (const unsigned char *)text || !name_char(p[-1]);
    if ((*p == '#' || *p == '@') && start) {
      char kind = (char)*p++;
      char w[TAG_MAX + 1];
      size_t n = 0, k;
      bool fits = true;
      if (kind == '#') {
        while ((k = tag_char(p)) != 0) {
          if (n + k > TAG_MAX) fits = false;
          for (size_t i = 0; i < k; i++, p++)
            if (fits) w[n++] = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
        }
      } else {
        while (name_char(*p)) {
          if (n + 1 > PROFILES_KEY_MAX) fits = false;
          if (fits) w[n++] = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
          p++;
        }
        while (n && w[n - 1] == '.') n--; /* a sentence's full stop */
        if (n < 3) fits = false;
      }
      w[n] = '\0';
      if (fits && n && !fn(kind, w, arg)) return;
      continue;
    }
    p++;
  }
}

/* ---- queries ---------------------------------------------------------------- */

bool pub_query_limit(const httpd_req *r, int def, int max, int *out) {
  char v[16];
  size_t n = 0;
  int rc = http_query_get(r->req->query, "limit", v, sizeof v, &n);
  *out = def;
  if (rc == 0) return true;
  if (rc < 0 || !n) return false;
  char *end;
  long l = strtol(v, &end, 10);
  if (*end || l < 1 || l > max) return false;
  *out = (int)l;
  return true;
}

bool pub_query_id(const httpd_req *r, const char *name, int64_t *out) {
  char v[PUB_ID_TEXT + 1];
  size_t n = 0;
  int rc = http_query_get(r->req->query, name, v, sizeof v, &n);
  *out = 0;
  if (rc == 0) return true;
  return rc > 0 && pub_id_parse(v, out);
}

const char *pub_parse_apps(const app_body *b, app_id app, uint32_t *apps) {
  static const char err[] = "field 'apps' must be a list of 'social' and/or 'messenger'";
  int arr = json_object_get(b->buf, b->t, 0, "apps");
  *apps = PUB_APP_BIT(app);
  if (arr < 0 || json_is_null(b->t, arr)) return NULL;
  if (b->t[arr].type != JSON_ARRAY || b->t[arr].size < 1 || b->t[arr].size > 2)
    return err;
  *apps = 0;
  for (int el = json_first_child(b->t, arr); el >= 0;
       el = json_next_sibling(b->t, arr, el)) {
    char name[16];
    int a = -1;
    if (b->t[el].type == JSON_STRING && b->t[el].size < sizeof name &&
        json_get_string(b->buf, b->t, el, name, sizeof name, NULL, 0) == 0)
      a = pub_app_parse(name);
    if (a < 0) return err;
    *apps |= PUB_APP_BIT(a);
  }
  return NULL;
}

int pub_need_profile(httpd_resp *resp, app_id app, const uint8_t me[ACCOUNTS_ID_BYTES]) {
  int rc = profiles_exists(NULL, app, me);
  if (rc == 1) return 0;
  if (rc < 0)
    app_error(resp, 500, "internal", "internal error");
  else
    app_error(resp, 403, "no_profile",
              app == APP_SOCIAL ? "create your social profile first"
                                : "create your messenger profile first");
  return -1;
}

bool pub_begin(const httpd_req *r, httpd_resp *resp, int min, app_path *p, app_id *app,
               uint8_t me[ACCOUNTS_ID_BYTES]) {
  if (!app_auth(r, resp, me)) return false;
  int a;
  if (!app_path_split(r, p) || p->n < min || (a = pub_app_parse(p->seg[2])) < 0) {
    app_error(resp, 404, "not_found", "no such resource");
    return false;
  }
  *app = (app_id)a;
  return pub_need_profile(resp, *app, me) == 0;
}

int pub_op_start(const httpd_req *r, httpd_resp *resp, app_id app,
                 const uint8_t me[ACCOUNTS_ID_BYTES], void *data, app_run_fn run,
                 app_write_fn write) {
  app_op *o = app_op_new(app);
  if (!o) {
    free(data);
    return app_error(resp, 503, "busy", "server busy; retry later");
  }
  o->data = data;
  memcpy(o->me, me, ACCOUNTS_ID_BYTES);
  o->run = run;
  o->write_ok = write;
  return app_op_start(r, resp, o);
}

int pub_routes_add(const char *name, const http_method *methods, size_t n,
                   httpd_handler fn) {
  /* httpd keeps the prefix pointers: they live here. */
  static char prefixes[24][48];
  static size_t used;
  for (int a = APP_SOCIAL; a <= APP_MESSENGER; a++) {
    if (used == sizeof prefixes / sizeof prefixes[0]) return TSR_ELIMIT;
    char *p = prefixes[used++];
    if ((size_t)snprintf(p, sizeof prefixes[0], "/v1/apps/%s/%s", app_name((app_id)a),
                         name) >= sizeof prefixes[0])
      return TSR_EINVAL;
    for (size_t i = 0; i < n; i++) {
      int rc = httpd_route_add(methods[i], p, fn);
      if (rc) return rc;
    }
  }
  return 0;
}
