/* Array-based tree math (RFC 9420 Appendix C). */
#include "mls/treemath.h"

#include "tessera/error.h"

/* Exponent of the largest power of two <= x (0 for x == 0). */
static uint32_t tm_log2(uint32_t x) {
  uint32_t k = 0;
  while (x >> 1) {
    x >>= 1;
    k++;
  }
  return k;
}

/* Parent in the infinite tree, ignoring the tree size. Callers make sure
 * x is below level 31, so no shift reaches 32. */
static uint32_t tm_parent_step(uint32_t x) {
  uint32_t k = tm_level(x);
  uint32_t b = (x >> (k + 1)) & 1u;
  return (x | (UINT32_C(1) << k)) ^ (b << (k + 1));
}

uint32_t tm_root(uint32_t n) {
  uint32_t w = tm_node_width(n);
  if (w == 0) return TM_NONE;
  return (UINT32_C(1) << tm_log2(w)) - 1;
}

uint32_t tm_left(uint32_t x) {
  uint32_t k = tm_level(x);
  if (k == 0 || k >= 32) return TM_NONE;
  return x ^ (UINT32_C(1) << (k - 1));
}

uint32_t tm_right(uint32_t x) {
  uint32_t k = tm_level(x);
  if (k == 0 || k >= 32) return TM_NONE;
  return x ^ (UINT32_C(3) << (k - 1));
}

uint32_t tm_parent(uint32_t x, uint32_t n) {
  uint32_t w = tm_node_width(n);
  if (x >= w || x == tm_root(n)) return TM_NONE;
  return tm_parent_step(x);
}

uint32_t tm_sibling(uint32_t x, uint32_t n) {
  uint32_t p = tm_parent(x, n);
  if (p == TM_NONE) return TM_NONE;
  return x < p ? tm_right(p) : tm_left(p);
}

int tm_direct_path(uint32_t x, uint32_t n, uint32_t out[TM_MAX_PATH]) {
  if (x >= tm_node_width(n)) return TSR_EINVAL;
  uint32_t r = tm_root(n);
  int len = 0;
  while (x != r && len < TM_MAX_PATH) {
    x = tm_parent_step(x);
    out[len++] = x;
  }
  return len;
}

int tm_copath(uint32_t x, uint32_t n, uint32_t out[TM_MAX_PATH]) {
  if (x >= tm_node_width(n)) return TSR_EINVAL;
  uint32_t r = tm_root(n);
  int len = 0;
  while (x != r && len < TM_MAX_PATH) {
    out[len++] = tm_sibling(x, n);
    x = tm_parent_step(x);
  }
  return len;
}

bool tm_is_ancestor(uint32_t a, uint32_t x) {
  uint32_t k = tm_level(a);
  if (k >= 32) return false;
  /* a spans the nodes a - (2^k - 1) .. a + (2^k - 1). */
  uint64_t half = (UINT64_C(1) << k) - 1;
  return (uint64_t)x + half >= a && (uint64_t)x <= (uint64_t)a + half;
}

uint32_t tm_common_ancestor(uint32_t x, uint32_t y) {
  uint32_t a = x;
  while (!tm_is_ancestor(a, y)) {
    if (tm_level(a) >= 31) return TM_NONE;
    a = tm_parent_step(a);
  }
  return a;
}
