#include "common/bytes.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "tessera/error.h"

void buf_init(buf_t *b) { *b = (buf_t){0}; }

void buf_free(buf_t *b) {
  free(b->ptr);
  *b = (buf_t){0};
}

void buf_free_secret(buf_t *b) {
  if (b->ptr) secure_wipe(b->ptr, b->cap);
  buf_free(b);
}

void buf_reset(buf_t *b) {
  b->len = 0;
  b->err = 0;
}

int buf_reserve(buf_t *b, size_t extra) {
  if (b->err) return b->err;
  if (extra > SIZE_MAX - b->len) return b->err = TSR_ENOMEM;
  size_t need = b->len + extra;
  if (need <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  uint8_t *p = malloc(cap);
  if (!p) return b->err = TSR_ENOMEM;
  if (b->len) memcpy(p, b->ptr, b->len);
  if (b->ptr) {
    /* The old block may hold key material: never leave it behind. */
    secure_wipe(b->ptr, b->cap);
    free(b->ptr);
  }
  b->ptr = p;
  b->cap = cap;
  return 0;
}

uint8_t *buf_extend(buf_t *b, size_t n) {
  /* Reserve at least one byte so the result is never NULL + 0. */
  if (buf_reserve(b, n ? n : 1)) return NULL;
  uint8_t *p = b->ptr + b->len;
  b->len += n;
  return p;
}

int buf_append(buf_t *b, const void *p, size_t n) {
  if (n == 0) return b->err;
  uint8_t *d = buf_extend(b, n);
  if (!d) return b->err;
  memcpy(d, p, n);
  return 0;
}

int buf_set(buf_t *b, bytes_t v) {
  b->len = 0;
  b->err = 0;
  return buf_append(b, v.ptr, v.len);
}

bool bytes_eq_ct(bytes_t a, bytes_t b) {
  if (a.len != b.len) return false;
  if (a.len == 0) return true;
  return sodium_memcmp(a.ptr, b.ptr, a.len) == 0;
}

bool bytes_eq(bytes_t a, bytes_t b) {
  return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

void secure_wipe(void *p, size_t n) {
  if (p && n) sodium_memzero(p, n);
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int hex_decode(const char *hex, buf_t *out) {
  size_t n = strlen(hex);
  if (n % 2) return TSR_EDECODE;
  buf_t tmp;
  buf_init(&tmp);
  uint8_t *d = buf_extend(&tmp, n / 2);
  if (n && !d) return TSR_ENOMEM;
  for (size_t i = 0; i < n / 2; i++) {
    int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      buf_free(&tmp);
      return TSR_EDECODE;
    }
    d[i] = (uint8_t)(hi << 4 | lo);
  }
  buf_free(out);
  *out = tmp;
  return 0;
}

void hex_encode(bytes_t in, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < in.len; i++) {
    out[2 * i] = digits[in.ptr[i] >> 4];
    out[2 * i + 1] = digits[in.ptr[i] & 15];
  }
  out[2 * in.len] = '\0';
}

/* Chunks are allocated with the payload following the header. */
struct arena_chunk {
  arena_chunk *next;
  size_t cap;
  size_t used;
  _Alignas(16) uint8_t data[];
};

enum { ARENA_CHUNK = 4096 };

void arena_init(arena_t *a) { a->head = NULL; }

void *arena_alloc(arena_t *a, size_t n) {
  n = (n + 15) & ~(size_t)15;
  if (n == 0) n = 16;
  arena_chunk *c = a->head;
  if (!c || c->cap - c->used < n) {
    size_t cap = n > ARENA_CHUNK ? n : ARENA_CHUNK;
    c = calloc(1, sizeof *c + cap);
    if (!c) return NULL;
    c->cap = cap;
    if (a->head && n > ARENA_CHUNK) {
      /* Big one-off block: keep the current chunk on top for small ones. */
      c->next = a->head->next;
      a->head->next = c;
      c->used = n;
      return c->data;
    }
    c->next = a->head;
    a->head = c;
  }
  void *p = c->data + c->used;
  c->used += n;
  return p;
}

int arena_dup(arena_t *a, bytes_t in, bytes_t *out) {
  if (in.len == 0) {
    *out = (bytes_t){NULL, 0};
    return 0;
  }
  uint8_t *p = arena_alloc(a, in.len);
  if (!p) return TSR_ENOMEM;
  memcpy(p, in.ptr, in.len);
  *out = (bytes_t){p, in.len};
  return 0;
}

void arena_free(arena_t *a) {
  arena_chunk *c = a->head;
  while (c) {
    arena_chunk *next = c->next;
    secure_wipe(c->data, c->used);
    free(c);
    c = next;
  }
  a->head = NULL;
}
