/* The envelope of MLS application messages (content.h). */
#include "client/content.h"

#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/json.h"
#include "proto/utf8.h"
#include "tessera/error.h"

/* An envelope has few members; newer clients' extra members fit too. A
 * document needing more tokens is refused. */
#define MAX_TOKENS 96
#define SEQ_MAX ((uint64_t)INT64_MAX) /* seqs are stored as SQLite integers */

static const char *const kind_names[] = {
    [CONTENT_TEXT] = "text",
    [CONTENT_EDIT] = "edit",
    [CONTENT_DELETE] = "delete",
    [CONTENT_REACTION] = "reaction",
    [CONTENT_RECEIPT] = "receipt",
    [CONTENT_TYPING] = "typing",
    [CONTENT_ATTACHMENT] = "attachment",
    [CONTENT_TITLE] = "title",
    [CONTENT_UNSUPPORTED] = "unsupported",
};

const char *content_kind_name(content_kind k) {
  return (unsigned)k <= CONTENT_UNSUPPORTED ? kind_names[k] : "unsupported";
}

/* ---- checks shared by both directions ------------------------------------ */

static bool good_str(const char *s, size_t len, size_t min, size_t max) {
  if (len < min || len > max) return false;
  if (len == 0) return true;
  return s && !memchr(s, 0, len) && utf8_valid((const uint8_t *)s, len);
}

static bool good_seq(uint64_t s, bool optional) {
  return s <= SEQ_MAX && (optional || s > 0);
}

int content_check(const content *c) {
  if (!c) return TSR_EINVAL;
  bool ok = false;
  switch (c->kind) {
  case CONTENT_TEXT:
    ok = good_str(c->body, c->body_len, 1, CONTENT_MAX_BODY) &&
         good_seq(c->reply_to, true);
    break;
  case CONTENT_EDIT:
    ok =
        good_seq(c->target, false) && good_str(c->body, c->body_len, 1, CONTENT_MAX_BODY);
    break;
  case CONTENT_DELETE: ok = good_seq(c->target, false); break;
  case CONTENT_REACTION:
    ok = good_seq(c->target, false) &&
         good_str(c->emoji, c->emoji_len, 1, CONTENT_MAX_EMOJI);
    break;
  case CONTENT_RECEIPT:
    ok = (c->receipt == CONTENT_DELIVERED || c->receipt == CONTENT_READ) &&
         good_seq(c->target, false);
    break;
  case CONTENT_TYPING: ok = true; break;
  case CONTENT_ATTACHMENT:
    ok = good_str(c->descriptor, c->descriptor_len, 1, CONTENT_MAX_DESCRIPTOR) &&
         good_str(c->body, c->body_len, 0, CONTENT_MAX_BODY) &&
         good_seq(c->reply_to, true);
    break;
  case CONTENT_TITLE: ok = good_str(c->body, c->body_len, 0, CONTENT_MAX_TITLE); break;
  default: ok = false; break;
  }
  return ok ? 0 : TSR_EINVAL;
}

/* ---- encoding -------------------------------------------------------------- */

static void put_str(json_writer *w, const char *key, const char *s, size_t len) {
  json_write_key(w, key);
  json_write_string_n(w, len ? s : "", len);
}

static void put_u64(json_writer *w, const char *key, uint64_t v) {
  json_write_key(w, key);
  json_write_u64(w, v);
}

int content_encode(const content *c, buf_t *out) {
  if (!out || content_check(c)) return TSR_EINVAL;
  size_t mark = out->len;
  json_writer w;
  json_writer_init(&w, out, 2);
  json_write_object_begin(&w);
  put_u64(&w, "v", CONTENT_VERSION);
  json_write_key(&w, "kind");
  json_write_string(&w, content_kind_name(c->kind));
  switch (c->kind) {
  case CONTENT_TEXT:
    put_str(&w, "body", c->body, c->body_len);
    if (c->reply_to) put_u64(&w, "reply_to", c->reply_to);
    break;
  case CONTENT_EDIT:
    put_u64(&w, "target", c->target);
    put_str(&w, "body", c->body, c->body_len);
    break;
  case CONTENT_DELETE: put_u64(&w, "target", c->target); break;
  case CONTENT_REACTION:
    put_u64(&w, "target", c->target);
    put_str(&w, "emoji", c->emoji, c->emoji_len);
    if (c->remove) {
      json_write_key(&w, "remove");
      json_write_bool(&w, true);
    }
    break;
  case CONTENT_RECEIPT:
    json_write_key(&w, "receipt");
    json_write_string(&w, c->receipt == CONTENT_READ ? "read" : "delivered");
    put_u64(&w, "up_to", c->target);
    break;
  case CONTENT_TYPING:
    json_write_key(&w, "on");
    json_write_bool(&w, c->on);
    break;
  case CONTENT_ATTACHMENT:
    put_str(&w, "descriptor", c->descriptor, c->descriptor_len);
    if (c->body_len) put_str(&w, "caption", c->body, c->body_len);
    if (c->reply_to) put_u64(&w, "reply_to", c->reply_to);
    break;
  case CONTENT_TITLE: put_str(&w, "title", c->body, c->body_len); break;
  default: break;
  }
  json_write_object_end(&w);
  int rc = json_writer_finish(&w);
  if (rc) {
    out->len = mark;
    return rc == JSON_E_NOMEM ? TSR_ENOMEM : TSR_EINVAL;
  }
  return 0;
}

/* ---- decoding -------------------------------------------------------------- */

typedef struct {
  const char *b;
  const json_token *t;
  char *mem; /* decoded strings, each NUL-terminated */
  size_t used, cap;
} dec;

/* Member key of the top object: absent (false, *ok untouched), or its
 * value's index. */
static int member(const dec *d, const char *key) {
  return json_object_get(d->b, d->t, 0, key);
}

/* A string member decoded into d->mem; absent: optional decides. */
static bool get_str(dec *d, const char *key, bool optional, size_t min, size_t max,
                    const char **s, size_t *len) {
  int i = member(d, key);
  if (i < 0) {
    *s = NULL;
    *len = 0;
    return optional && min == 0;
  }
  if (d->t[i].type != JSON_STRING || d->t[i].size < min || d->t[i].size > max)
    return false;
  size_t n = 0;
  char *at = d->mem + d->used;
  if (json_get_string(d->b, d->t, i, at, d->cap - d->used, &n, 0) != 0) return false;
  *s = at;
  *len = n;
  d->used += n + 1;
  return true;
}

static bool get_seq(dec *d, const char *key, bool optional, uint64_t *v) {
  int i = member(d, key);
  if (i < 0) return optional;
  uint64_t x = 0;
  if (json_get_u64(d->b, d->t, i, &x) != 0 || x == 0 || x > SEQ_MAX) return false;
  *v = x;
  return true;
}

static bool get_bool(dec *d, const char *key, bool optional, bool *v) {
  int i = member(d, key);
  if (i < 0) return optional;
  return json_get_bool(d->t, i, v) == 0;
}

static content_kind kind_of(const char *s, size_t n) {
  for (int k = 0; k < CONTENT_UNSUPPORTED; k++)
    if (strlen(kind_names[k]) == n && memcmp(kind_names[k], s, n) == 0)
      return (content_kind)k;
  return CONTENT_UNSUPPORTED;
}

/* The members of kind c->kind. */
static bool decode_kind(dec *d, content *c) {
  const char *s = NULL;
  size_t n = 0;
  switch (c->kind) {
  case CONTENT_TEXT:
    return get_str(d, "body", false, 1, CONTENT_MAX_BODY, &c->body, &c->body_len) &&
           get_seq(d, "reply_to", true, &c->reply_to);
  case CONTENT_EDIT:
    return get_seq(d, "target", false, &c->target) &&
           get_str(d, "body", false, 1, CONTENT_MAX_BODY, &c->body, &c->body_len);
  case CONTENT_DELETE: return get_seq(d, "target", false, &c->target);
  case CONTENT_REACTION:
    return get_seq(d, "target", false, &c->target) &&
           get_str(d, "emoji", false, 1, CONTENT_MAX_EMOJI, &c->emoji, &c->emoji_len) &&
           get_bool(d, "remove", true, &c->remove);
  case CONTENT_RECEIPT:
    if (!get_str(d, "receipt", false, 1, 16, &s, &n)) return false;
    if (n == 9 && !memcmp(s, "delivered", 9))
      c->receipt = CONTENT_DELIVERED;
    else if (n == 4 && !memcmp(s, "read", 4))
      c->receipt = CONTENT_READ;
    else
      return false;
    return get_seq(d, "up_to", false, &c->target);
  case CONTENT_TYPING: return get_bool(d, "on", false, &c->on);
  case CONTENT_ATTACHMENT:
    return get_str(d, "descriptor", false, 1, CONTENT_MAX_DESCRIPTOR, &c->descriptor,
                   &c->descriptor_len) &&
           get_str(d, "caption", true, 0, CONTENT_MAX_BODY, &c->body, &c->body_len) &&
           get_seq(d, "reply_to", true, &c->reply_to);
  case CONTENT_TITLE:
    return get_str(d, "title", false, 0, CONTENT_MAX_TITLE, &c->body, &c->body_len);
  default: return true; /* unsupported: nothing more is read */
  }
}

int content_decode(bytes_t in, content *out) {
  if (!out) return TSR_EINVAL;
  memset(out, 0, sizeof *out);
  if (in.len > CONTENT_MAX_ENCODED) return TSR_ELIMIT;
  /* One object and nothing around it, not even white space. */
  if (in.len < 2 || in.ptr[0] != '{' || in.ptr[in.len - 1] != '}') return TSR_EDECODE;
  json_token t[MAX_TOKENS];
  json_limits lim = {8, 32};
  const char *b = (const char *)in.ptr;
  int nt = json_parse(b, in.len, t, MAX_TOKENS, &lim);
  if (nt <= 0 || t[0].type != JSON_OBJECT) return TSR_EDECODE;
  int vi = json_object_get(b, t, 0, "v"), ki = json_object_get(b, t, 0, "kind");
  uint64_t v = 0;
  if (vi < 0 || json_get_u64(b, t, vi, &v) != 0 || v != CONTENT_VERSION)
    return TSR_EDECODE;
  char kind[CONTENT_MAX_KIND + 1];
  size_t kn = 0;
  if (ki < 0 || json_get_string(b, t, ki, kind, sizeof kind, &kn, 0) != 0 || kn == 0)
    return TSR_EDECODE;
  content c = {0};
  c.kind = kind_of(kind, kn);
  if (c.kind == CONTENT_UNSUPPORTED) {
    *out = c;
    return 0;
  }
  /* Room for every decoded string member: the input length bounds them. */
  dec d = {b, t, malloc(in.len + 8), 0, in.len + 8};
  if (!d.mem) return TSR_ENOMEM;
  if (!decode_kind(&d, &c)) {
    sodium_memzero(d.mem, d.cap);
    free(d.mem);
    return TSR_EDECODE;
  }
  c.mem_ = d.mem;
  c.mem_len_ = d.cap;
  *out = c;
  return 0;
}

void content_clear(content *c) {
  if (!c) return;
  if (c->mem_) {
    sodium_memzero(c->mem_, c->mem_len_);
    free(c->mem_);
  }
  memset(c, 0, sizeof *c);
}
