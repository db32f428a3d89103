/* TLS presentation language codec as used by RFC 9420 (§2.1).
 *
 * Integers are big-endian. Variable-length vectors carry the RFC 9420
 * variable-size length header (1, 2 or 4 bytes, prefix bits 00/01/10);
 * the decoder refuses the reserved prefix 11 and any header that is not
 * the shortest encoding, as the RFC requires.
 *
 * Writer: appends to a buf_t; errors are sticky in buf_t.err.
 * Reader: a cursor over caller-owned bytes. Every rd_* returns 0 or
 * TSR_EDECODE; after the first failure the reader stays failed (err set)
 * and every later call fails too, so decoders may check once at the end.
 * Views returned by the reader point into the input and live as long as
 * it does. */
#ifndef TSR_MLS_CODEC_H
#define TSR_MLS_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/bytes.h"

/* Largest length a header can carry: 2^30 - 1. */
#define CODEC_VARINT_MAX 0x3fffffffu

void wr_u8(buf_t *w, uint8_t v);
void wr_u16(buf_t *w, uint16_t v);
void wr_u32(buf_t *w, uint32_t v);
void wr_u64(buf_t *w, uint64_t v);
/* Raw bytes, no header. */
void wr_raw(buf_t *w, bytes_t v);
/* Length header only (minimal encoding). */
void wr_varint(buf_t *w, uint32_t v);
/* opaque<V>: header followed by the bytes. */
void wr_opaque(buf_t *w, bytes_t v);
/* Nested vectors of structs: remember the position with wr_vec_begin,
 * write the elements, then wr_vec_end inserts the minimal header. */
size_t wr_vec_begin(buf_t *w);
void wr_vec_end(buf_t *w, size_t mark);
/* optional<T>: writes the presence byte. */
static inline void wr_optional(buf_t *w, bool present) { wr_u8(w, present ? 1 : 0); }

typedef struct {
  const uint8_t *p;
  const uint8_t *end;
  int err;
} reader_t;

void rd_init(reader_t *r, bytes_t in);
int rd_u8(reader_t *r, uint8_t *v);
int rd_u16(reader_t *r, uint16_t *v);
int rd_u32(reader_t *r, uint32_t *v);
int rd_u64(reader_t *r, uint64_t *v);
int rd_varint(reader_t *r, uint32_t *v);
/* n raw bytes as a view. */
int rd_raw(reader_t *r, size_t n, bytes_t *out);
/* opaque<V> as a view of the body. */
int rd_opaque(reader_t *r, bytes_t *out);
/* Vector body as a sub-reader; the parent advances past it. */
int rd_vec(reader_t *r, reader_t *sub);
/* optional<T> presence byte (must be 0 or 1). */
int rd_optional(reader_t *r, bool *present);
/* Bytes left, and whether all were consumed without error. */
static inline size_t rd_left(const reader_t *r) { return (size_t)(r->end - r->p); }
static inline bool rd_more(const reader_t *r) { return !r->err && r->p < r->end; }
/* 0 if fully consumed and no error, else TSR_EDECODE. */
int rd_done(reader_t *r);
/* Marks the reader failed (for semantic errors found by a decoder). */
int rd_fail(reader_t *r);
/* Position helpers for decoders that must hash the exact bytes read. */
static inline const uint8_t *rd_pos(const reader_t *r) { return r->p; }

#endif
