/* libFuzzer target for the Range parser (src/proto/range.c).
 *
 * The first 8 input bytes are the representation size (little endian,
 * reduced to 2^40 so that sizes near and far from the numbers occur), the
 * rest is the field value. Checks: the result is one of the three values;
 * RANGE_OK gives 1 <= len and first + len <= size without overflow; the
 * result does not depend on surrounding OWS; an empty representation is
 * never RANGE_OK. Nothing may crash for any input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/range.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                                    \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      fprintf(stderr, "fuzz_range: %s:%d: %s\n", __FILE__, __LINE__, #cond);             \
      abort();                                                                           \
    }                                                                                    \
  } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 8 || size > 4096) return 0;
  uint64_t rsize = 0;
  for (int i = 7; i >= 0; i--) rsize = rsize << 8 | data[i];
  rsize %= (uint64_t)1 << 40;
  const char *v = (const char *)data + 8;
  size_t n = size - 8;
  uint64_t first = 7, len = 7;
  int r = range_parse(v, n, rsize, &first, &len);
  REQUIRE(r == RANGE_IGNORE || r == RANGE_OK || r == RANGE_UNSATISFIABLE);
  if (r == RANGE_OK) {
    REQUIRE(len >= 1);
    REQUIRE(first < rsize);
    REQUIRE(len <= rsize - first);
  } else {
    REQUIRE(first == 7 && len == 7); /* untouched */
  }
  REQUIRE(range_parse(v, n, 0, &first, &len) != RANGE_OK);
  char *padded = malloc(n + 2);
  REQUIRE(padded != NULL);
  padded[0] = ' ';
  memcpy(padded + 1, v, n);
  padded[n + 1] = '\t';
  uint64_t f2 = 0, l2 = 0, f1 = 0, l1 = 0;
  int r1 = range_parse(v, n, rsize, &f1, &l1);
  int r2 = range_parse(padded, n + 2, rsize, &f2, &l2);
  REQUIRE(r1 == r2);
  if (r1 == RANGE_OK) REQUIRE(f1 == f2 && l1 == l2);
  free(padded);
  return 0;
}
