/* Array-based tree math (RFC 9420 §4, Appendix C).
 *
 * Nodes are numbered in the flat array form: leaf L is node 2L, parent
 * nodes are odd. n is the number of leaves of the tree; RFC 9420 trees are
 * always full, so n is expected to be a power of two (1 .. 2^31). All
 * functions are pure and thread-safe. Instead of failing they return
 * TM_NONE where the relation does not exist (a leaf's children, the root's
 * parent and sibling) or the node lies outside the tree. */
#ifndef TSR_MLS_TREEMATH_H
#define TSR_MLS_TREEMATH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* "No such node" (never a valid index: the widest tree ends at 2^32-2). */
#define TM_NONE UINT32_MAX
/* Largest supported leaf count, and the longest direct path / copath. */
#define TM_MAX_LEAVES (UINT32_C(1) << 31)
#define TM_MAX_PATH 32

static inline bool tm_is_leaf(uint32_t x) { return (x & 1u) == 0; }
static inline uint32_t tm_leaf_to_node(uint32_t leaf) { return leaf << 1; }
/* Only meaningful for leaf nodes (even x). */
static inline uint32_t tm_node_to_leaf(uint32_t x) { return x >> 1; }

/* Level of a node: 0 for leaves, number of trailing one bits otherwise. */
static inline uint32_t tm_level(uint32_t x) {
  uint32_t k = 0;
  while (k < 32 && ((x >> k) & 1u)) k++;
  return k;
}

/* Number of nodes in a tree with n leaves (0 for n == 0, or n too big). */
static inline uint32_t tm_node_width(uint32_t n) {
  if (n == 0 || n > TM_MAX_LEAVES) return 0;
  return 2 * (n - 1) + 1;
}

/* Root of a tree with n leaves; TM_NONE for n == 0 or n too big. */
uint32_t tm_root(uint32_t n);
/* Children of a parent node; TM_NONE for a leaf. */
uint32_t tm_left(uint32_t x);
uint32_t tm_right(uint32_t x);
/* Parent / sibling of x in a tree of n leaves; TM_NONE for the root or a
 * node outside the tree. */
uint32_t tm_parent(uint32_t x, uint32_t n);
uint32_t tm_sibling(uint32_t x, uint32_t n);

/* Direct path (parent, grandparent, ... root) and copath (siblings of x
 * and of each direct-path node except the root), both ordered from the
 * leaf side to the root. out must hold TM_MAX_PATH entries. Returns the
 * number of entries (0 for the root) or TSR_EINVAL if x is outside the
 * tree. */
int tm_direct_path(uint32_t x, uint32_t n, uint32_t out[TM_MAX_PATH]);
int tm_copath(uint32_t x, uint32_t n, uint32_t out[TM_MAX_PATH]);

/* Lowest node that is x or y or an ancestor of both. */
uint32_t tm_common_ancestor(uint32_t x, uint32_t y);
/* True if a is x or an ancestor of x (independent of the tree size). */
bool tm_is_ancestor(uint32_t a, uint32_t x);

#endif
