#include "mls/codec.h"

#include <string.h>

#include "tessera/error.h"

/* buf_extend with the common case (room left, no error) inline: encoders
 * write many fields of a few bytes each, and a large ratchet tree is a
 * few hundred thousand of them. */
static inline uint8_t *room(buf_t *w, size_t n) {
  if (n && !w->err && w->cap - w->len >= n) {
    uint8_t *p = w->ptr + w->len;
    w->len += n;
    return p;
  }
  return buf_extend(w, n);
}

static void put_be(buf_t *w, uint64_t v, int n) {
  uint8_t *d = room(w, (size_t)n);
  if (!d) return;
  for (int i = n - 1; i >= 0; i--) {
    d[i] = (uint8_t)v;
    v >>= 8;
  }
}

void wr_u8(buf_t *w, uint8_t v) { put_be(w, v, 1); }
void wr_u16(buf_t *w, uint16_t v) { put_be(w, v, 2); }
void wr_u32(buf_t *w, uint32_t v) { put_be(w, v, 4); }
void wr_u64(buf_t *w, uint64_t v) { put_be(w, v, 8); }

void wr_raw(buf_t *w, bytes_t v) {
  if (!v.len) return;
  uint8_t *d = room(w, v.len);
  if (d) memcpy(d, v.ptr, v.len);
}

static int varint_size(uint32_t v) { return v < 0x40 ? 1 : v < 0x4000 ? 2 : 4; }

void wr_varint(buf_t *w, uint32_t v) {
  if (v > CODEC_VARINT_MAX) {
    w->err = TSR_ELIMIT;
    return;
  }
  switch (varint_size(v)) {
  case 1: put_be(w, v, 1); break;
  case 2: put_be(w, 0x4000u | v, 2); break;
  default: put_be(w, 0x80000000u | v, 4); break;
  }
}

void wr_opaque(buf_t *w, bytes_t v) {
  if (v.len > CODEC_VARINT_MAX) {
    w->err = TSR_ELIMIT;
    return;
  }
  wr_varint(w, (uint32_t)v.len);
  wr_raw(w, v);
}

/* Reserve the 4-byte maximum; wr_vec_end shrinks it to the minimum. */
size_t wr_vec_begin(buf_t *w) {
  size_t mark = w->len;
  buf_extend(w, 4);
  return mark;
}

void wr_vec_end(buf_t *w, size_t mark) {
  if (w->err) return;
  size_t body = w->len - mark - 4;
  if (body > CODEC_VARINT_MAX) {
    w->err = TSR_ELIMIT;
    return;
  }
  int hs = varint_size((uint32_t)body);
  uint8_t *h = w->ptr + mark;
  if (hs != 4) memmove(h + hs, h + 4, body);
  uint32_t v = (uint32_t)body;
  if (hs == 1) {
    h[0] = (uint8_t)v;
  } else if (hs == 2) {
    h[0] = (uint8_t)(0x40 | v >> 8);
    h[1] = (uint8_t)v;
  } else {
    h[0] = (uint8_t)(0x80 | v >> 24);
    h[1] = (uint8_t)(v >> 16);
    h[2] = (uint8_t)(v >> 8);
    h[3] = (uint8_t)v;
  }
  w->len = mark + (size_t)hs + body;
}

void rd_init(reader_t *r, bytes_t in) {
  static const uint8_t empty[1];
  /* An empty view may be NULL; NULL + 0 is undefined, so point elsewhere. */
  if (!in.ptr) in = (bytes_t){empty, 0};
  r->p = in.ptr;
  r->end = in.ptr + in.len;
  r->err = 0;
}

int rd_fail(reader_t *r) {
  r->err = TSR_EDECODE;
  r->p = r->end;
  return TSR_EDECODE;
}

static int get_be(reader_t *r, int n, uint64_t *v) {
  if (r->err || rd_left(r) < (size_t)n) return rd_fail(r);
  uint64_t x = 0;
  for (int i = 0; i < n; i++) x = x << 8 | r->p[i];
  r->p += n;
  *v = x;
  return 0;
}

int rd_u8(reader_t *r, uint8_t *v) {
  uint64_t x = 0;
  int rc = get_be(r, 1, &x);
  *v = (uint8_t)x;
  return rc;
}

int rd_u16(reader_t *r, uint16_t *v) {
  uint64_t x = 0;
  int rc = get_be(r, 2, &x);
  *v = (uint16_t)x;
  return rc;
}

int rd_u32(reader_t *r, uint32_t *v) {
  uint64_t x = 0;
  int rc = get_be(r, 4, &x);
  *v = (uint32_t)x;
  return rc;
}

int rd_u64(reader_t *r, uint64_t *v) { return get_be(r, 8, v); }

int rd_varint(reader_t *r, uint32_t *v) {
  *v = 0;
  if (r->err || rd_left(r) < 1) return rd_fail(r);
  int prefix = r->p[0] >> 6;
  if (prefix == 3) return rd_fail(r);
  int n = 1 << prefix;
  uint64_t x;
  if (get_be(r, n, &x)) return TSR_EDECODE;
  uint32_t val = (uint32_t)(x & (n == 1 ? 0x3f : n == 2 ? 0x3fff : 0x3fffffff));
  if (varint_size(val) != n) return rd_fail(r); /* not minimal */
  *v = val;
  return 0;
}

int rd_raw(reader_t *r, size_t n, bytes_t *out) {
  *out = BYTES_NONE;
  if (r->err || rd_left(r) < n) return rd_fail(r);
  *out = (bytes_t){r->p, n};
  r->p += n;
  return 0;
}

int rd_opaque(reader_t *r, bytes_t *out) {
  uint32_t n;
  *out = BYTES_NONE;
  if (rd_varint(r, &n)) return TSR_EDECODE;
  return rd_raw(r, n, out);
}

int rd_vec(reader_t *r, reader_t *sub) {
  bytes_t body;
  int rc = rd_opaque(r, &body);
  rd_init(sub, body);
  sub->err = rc;
  return rc;
}

int rd_optional(reader_t *r, bool *present) {
  uint8_t b;
  *present = false;
  if (rd_u8(r, &b)) return TSR_EDECODE;
  if (b > 1) return rd_fail(r);
  *present = b == 1;
  return 0;
}

int rd_done(reader_t *r) {
  if (r->err || r->p != r->end) return rd_fail(r);
  return 0;
}
