/* Generic authenticated calls, app profiles and search (docs/protocol.md,
 * "Apps: profiles"). Graph and block calls go through tsr_call. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client.h"
#include "proto/json.h"

#define KEY_MAX 200 /* longest key accepted before escaping */

static bool logged_in(tsr_client *c) {
  buf_t b;
  buf_init(&b);
  int rc = cstate_get(client_state(c), K_TOKEN, &b);
  buf_free_secret(&b);
  return rc == 0;
}

static bool valid_app(const char *app) {
  return app &&
         (!strcmp(app, "chat") || !strcmp(app, "social") || !strcmp(app, "messenger"));
}

static bool valid_method(const char *m) {
  static const char *const ok[] = {"GET", "POST", "PUT", "PATCH", "DELETE"};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
    if (m && !strcmp(m, ok[i])) return true;
  return false;
}

static bool valid_path(const char *p) {
  if (!p || p[0] != '/') return false;
  for (; *p; p++)
    if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) return false;
  return true;
}

int tsr_path_escape(const char *in, char *out, size_t cap) {
  static const char hex[] = "0123456789ABCDEF";
  if (!in || !out || cap == 0) return TSR_EINVAL;
  size_t n = 0;
  for (const unsigned char *s = (const unsigned char *)in; *s; s++) {
    unsigned char ch = *s;
    bool plain = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                 (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' ||
                 ch == '~';
    size_t need = plain ? 1 : 3;
    if (n + need >= cap || n + need > (size_t)0x7fffffff) {
      out[0] = '\0';
      return TSR_ELIMIT;
    }
    if (plain) {
      out[n++] = (char)ch;
    } else {
      out[n++] = '%';
      out[n++] = hex[ch >> 4];
      out[n++] = hex[ch & 15];
    }
  }
  out[n] = '\0';
  return (int)n;
}

/* Queues an authenticated request with body (may be NULL). */
static int queue(tsr_client *c, const char *method, const char *path, const char *body,
                 size_t body_len, tsr_result_cb cb, void *arg) {
  if (!logged_in(c)) return TSR_ESTATE;
  creq *r = client_req_new(method, path);
  if (!r) return TSR_ENOMEM;
  r->kind = REQ_PLAIN;
  r->auth = true;
  if (body) {
    if (buf_append(&r->body, body, body_len)) {
      client_req_free(r);
      return TSR_ENOMEM;
    }
    r->has_body = true;
  }
  r->cb = cb;
  r->cb_arg = arg;
  return client_submit(c, r);
}

int tsr_call(tsr_client *c, const char *method, const char *path, const char *json_body,
             tsr_result_cb cb, void *arg) {
  if (!c || !valid_method(method) || !valid_path(path)) return TSR_EINVAL;
  return queue(c, method, path, json_body, json_body ? strlen(json_body) : 0, cb, arg);
}

static void put_text(json_writer *w, const char *key, const char *value) {
  json_write_key(w, key);
  json_write_string(w, value ? value : "");
}

int tsr_profile_put(tsr_client *c, const char *app, const tsr_profile *p,
                    tsr_result_cb cb, void *arg) {
  if (!c || !valid_app(app) || !p) return TSR_EINVAL;
  bool chat = !strcmp(app, "chat"), social = !strcmp(app, "social");
  if (!chat && (!p->key || !p->key[0])) return TSR_EINVAL;
  buf_t body;
  buf_init(&body);
  json_writer w;
  json_writer_init(&w, &body, 0);
  json_write_object_begin(&w);
  if (chat) {
    put_text(&w, "display_name", p->name);
    put_text(&w, "about", p->about);
  } else if (social) {
    put_text(&w, "handle", p->key);
    put_text(&w, "name", p->name);
    put_text(&w, "bio", p->about);
    json_write_key(&w, "private");
    json_write_bool(&w, p->private_account != 0);
  } else {
    put_text(&w, "username", p->key);
    put_text(&w, "name", p->name);
    json_write_key(&w, "page");
    json_write_bool(&w, p->page != 0);
    if (p->page) {
      put_text(&w, "category", p->category);
      put_text(&w, "hours", p->hours);
      put_text(&w, "website", p->website);
    }
  }
  json_write_object_end(&w);
  int rc = json_writer_finish(&w);
  if (rc) {
    buf_free(&body);
    return rc == JSON_E_NOMEM ? TSR_ENOMEM : TSR_EINVAL;
  }
  char path[64];
  snprintf(path, sizeof path, "/v1/apps/%s/profile", app);
  rc = queue(c, "PUT", path, (const char *)body.ptr, body.len, cb, arg);
  buf_free(&body);
  return rc;
}

int tsr_profile_get(tsr_client *c, const char *app, const char *key, tsr_result_cb cb,
                    void *arg) {
  if (!c || !valid_app(app)) return TSR_EINVAL;
  char path[64 + 3 * KEY_MAX], esc[3 * KEY_MAX + 1];
  if (!key || !key[0]) {
    snprintf(path, sizeof path, "/v1/apps/%s/profile", app);
  } else {
    if (strlen(key) > KEY_MAX) return TSR_ELIMIT;
    int n = tsr_path_escape(key, esc, sizeof esc);
    if (n < 0) return n;
    snprintf(path, sizeof path, "/v1/apps/%s/profiles/%s", app, esc);
  }
  return queue(c, "GET", path, NULL, 0, cb, arg);
}

int tsr_search(tsr_client *c, const char *app, const char *prefix, unsigned limit,
               tsr_result_cb cb, void *arg) {
  if (!c || !valid_app(app) || !prefix || !prefix[0] || limit > 50) return TSR_EINVAL;
  if (strlen(prefix) > KEY_MAX) return TSR_ELIMIT;
  char path[96 + 3 * KEY_MAX], esc[3 * KEY_MAX + 1];
  int n = tsr_path_escape(prefix, esc, sizeof esc);
  if (n < 0) return n;
  if (limit)
    snprintf(path, sizeof path, "/v1/apps/%s/search?q=%s&limit=%u", app, esc, limit);
  else
    snprintf(path, sizeof path, "/v1/apps/%s/search?q=%s", app, esc);
  return queue(c, "GET", path, NULL, 0, cb, arg);
}

/* ---- blocking forms ---------------------------------------------------- */

int tsr_call_sync(tsr_client *c, const char *method, const char *path,
                  const char *json_body, tsr_reply *out) {
  SYNC(tsr_call(c, method, path, json_body, client_reply_cb, r_));
}
int tsr_profile_put_sync(tsr_client *c, const char *app, const tsr_profile *p,
                         tsr_reply *out) {
  SYNC(tsr_profile_put(c, app, p, client_reply_cb, r_));
}
int tsr_profile_get_sync(tsr_client *c, const char *app, const char *key,
                         tsr_reply *out) {
  SYNC(tsr_profile_get(c, app, key, client_reply_cb, r_));
}
int tsr_search_sync(tsr_client *c, const char *app, const char *prefix, unsigned limit,
                    tsr_reply *out) {
  SYNC(tsr_search(c, app, prefix, limit, client_reply_cb, r_));
}
