/* Byte views, growable buffers and a bump arena.
 *
 * bytes_t is a view: it never owns what it points to. buf_t owns its
 * storage (free with buf_free, or buf_free_secret for key material). An
 * arena owns every block allocated from it; arena_free releases and wipes
 * them all at once, so decoded structures that point into an arena live
 * exactly as long as it. None of these types is thread-safe. */
#ifndef TSR_COMMON_BYTES_H
#define TSR_COMMON_BYTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
  const uint8_t *ptr;
  size_t len;
} bytes_t;

#define BYTES(p, n) ((bytes_t){(const uint8_t *)(p), (n)})
#define BYTES_NONE ((bytes_t){NULL, 0})

/* Growable owned buffer. Invariant: len <= cap; ptr is NULL iff cap == 0.
 * err is sticky: after the first allocation failure every append is a
 * no-op and err stays TSR_ENOMEM, so callers may check once at the end. */
typedef struct {
  uint8_t *ptr;
  size_t len;
  size_t cap;
  int err;
} buf_t;

void buf_init(buf_t *b);
void buf_free(buf_t *b);
/* Wipes the contents before releasing them. */
void buf_free_secret(buf_t *b);
void buf_reset(buf_t *b); /* len = 0, keeps storage, clears err */
int buf_reserve(buf_t *b, size_t extra);
int buf_append(buf_t *b, const void *p, size_t n);
/* Appends n bytes and returns a pointer to them (uninitialised), or NULL. */
uint8_t *buf_extend(buf_t *b, size_t n);
/* Duplicate of a view into a new owned buffer. */
int buf_set(buf_t *b, bytes_t v);
static inline bytes_t buf_view(const buf_t *b) { return (bytes_t){b->ptr, b->len}; }

/* Constant-time equality of two views (lengths are not secret). */
bool bytes_eq_ct(bytes_t a, bytes_t b);
/* Ordinary equality, for public data. */
bool bytes_eq(bytes_t a, bytes_t b);
/* Zero memory in a way the compiler cannot remove. */
void secure_wipe(void *p, size_t n);

/* Hex: decode accepts upper and lower case, rejects odd lengths and
 * non-hex characters. Returns 0 or TSR_EDECODE / TSR_ENOMEM. */
int hex_decode(const char *hex, buf_t *out);
/* Writes 2*len+1 bytes (NUL-terminated) into out. */
void hex_encode(bytes_t in, char *out);

/* Bump allocator. Blocks are 16-byte aligned and zero-initialised. */
typedef struct arena_chunk arena_chunk;
typedef struct {
  arena_chunk *head;
} arena_t;

void arena_init(arena_t *a);
void *arena_alloc(arena_t *a, size_t n);
/* Copy of a view into the arena (NULL view for len 0 is fine). */
int arena_dup(arena_t *a, bytes_t in, bytes_t *out);
/* Frees (and wipes) every block. The arena may be reused afterwards. */
void arena_free(arena_t *a);

#endif
