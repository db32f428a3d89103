/* HTTP Range requests (RFC 9110 §14): the single byte range a server
 * answers with 206.
 *
 * A pure function in the habit of proto/http.h: no callbacks, no
 * allocation, no state; reentrant. What tesserad does with each result is
 * in docs/protocol.md ("Attachments (blobs)"): RANGE_IGNORE is answered
 * with the whole representation (200), which RFC 9110 §14.2 allows for a
 * Range it does not support (several ranges) or cannot parse. */
#ifndef TSR_PROTO_RANGE_H
#define TSR_PROTO_RANGE_H

#include <stddef.h>
#include <stdint.h>

enum {
  RANGE_IGNORE = 0,        /* malformed, another unit, or several ranges */
  RANGE_OK = 1,            /* one satisfiable range: *first, *len set */
  RANGE_UNSATISFIABLE = 2, /* one well-formed range that selects nothing (416) */
};

/* Parses the Range field value v[0..n) (leading and trailing OWS allowed)
 * for a representation of size bytes. Accepted forms, unit "bytes" in any
 * case: "a-b" (b clamped to size - 1), "a-" (to the end), "-n" (the last n
 * bytes, all of them when n >= size). "a-b" with b < a is malformed. "a-"
 * or "a-b" with a >= size, "-0", and any range of an empty representation
 * are unsatisfiable. Numbers too large for 64 bits saturate (so they mean
 * "past the end"). *first and *len are written only for RANGE_OK; len is
 * then >= 1 and first + len <= size. */
int range_parse(const char *v, size_t n, uint64_t size, uint64_t *first, uint64_t *len);

#endif
