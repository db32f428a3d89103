#include "proto/range.h"

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }
static int is_digit(int c) { return c >= '0' && c <= '9'; }
static int is_ows(int c) { return c == ' ' || c == '\t'; }

/* Reads 1*DIGIT at v[*i..n); saturates at UINT64_MAX. Returns 0 when no
 * digit is there. */
static int number(const char *v, size_t n, size_t *i, uint64_t *out) {
  size_t start = *i;
  uint64_t x = 0;
  while (*i < n && is_digit((unsigned char)v[*i])) {
    unsigned d = (unsigned)(v[*i] - '0');
    x = x > (UINT64_MAX - d) / 10 ? UINT64_MAX : x * 10 + d;
    (*i)++;
  }
  *out = x;
  return *i > start;
}

int range_parse(const char *v, size_t n, uint64_t size, uint64_t *first, uint64_t *len) {
  if (!v || !first || !len) return RANGE_IGNORE;
  while (n > 0 && is_ows((unsigned char)v[n - 1])) n--;
  size_t i = 0;
  while (i < n && is_ows((unsigned char)v[i])) i++;
  static const char unit[] = "bytes=";
  for (size_t k = 0; k < sizeof unit - 1; k++, i++)
    if (i >= n || lower((unsigned char)v[i]) != unit[k]) return RANGE_IGNORE;
  while (i < n && is_ows((unsigned char)v[i])) i++;
  uint64_t a = 0, b = 0;
  int have_a = number(v, n, &i, &a);
  if (i >= n || v[i] != '-') return RANGE_IGNORE;
  i++;
  int have_b = number(v, n, &i, &b);
  if (i != n) return RANGE_IGNORE; /* a list (',') or trailing junk */
  if (!have_a && !have_b) return RANGE_IGNORE;
  if (!have_a) { /* suffix: the last b bytes */
    if (b == 0 || size == 0) return RANGE_UNSATISFIABLE;
    uint64_t k = b < size ? b : size;
    *first = size - k;
    *len = k;
    return RANGE_OK;
  }
  if (have_b && b < a) return RANGE_IGNORE;
  if (a >= size) return RANGE_UNSATISFIABLE;
  uint64_t last = have_b && b < size - 1 ? b : size - 1;
  *first = a;
  *len = last - a + 1;
  return RANGE_OK;
}
