/* Tree math: tree-math.json and cross-checks of the path helpers. */
#include "mls/treemath.h"
#include "test.h"
#include "vectors.h"

/* Array member value at the current element: a number or null (TM_NONE). */
static uint32_t opt_u32(const cJSON *v) {
  return cJSON_IsNumber(v) ? (uint32_t)v->valuedouble : TM_NONE;
}

/* Walks one array member of the entry, checking fn(i) against each value. */
static int check_array(const cJSON *e, const char *key, uint32_t n_nodes, uint32_t n,
                       int which) {
  const cJSON *arr = cJSON_GetObjectItemCaseSensitive(e, key);
  CHECK(cJSON_IsArray(arr));
  if (!cJSON_IsArray(arr)) return 0;
  CHECK_INT(cJSON_GetArraySize(arr), n_nodes);
  uint32_t i = 0;
  int bad = 0;
  const cJSON *v;
  cJSON_ArrayForEach(v, arr) {
    uint32_t got = which == 0   ? tm_left(i)
                   : which == 1 ? tm_right(i)
                   : which == 2 ? tm_parent(i, n)
                                : tm_sibling(i, n);
    if (got != opt_u32(v)) {
      if (!bad) fprintf(stderr, "  %s[%u] n=%u: got %u\n", key, i, n, got);
      bad = 1;
    }
    i++;
  }
  CHECK(!bad);
  return !bad;
}

static void test_vectors_tree_math(void) {
  const char *why = NULL;
  cJSON *j = vec_load("mls/tree-math.json", &why);
  if (!j) TEST_SKIP("%s", why);
  int count = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, j) {
    uint32_t n = (uint32_t)vec_int(e, "n_leaves");
    uint32_t w = (uint32_t)vec_int(e, "n_nodes");
    CHECK_INT(tm_node_width(n), w);
    CHECK_INT(tm_root(n), vec_int(e, "root"));
    int ok = check_array(e, "left", w, n, 0);
    ok &= check_array(e, "right", w, n, 1);
    ok &= check_array(e, "parent", w, n, 2);
    ok &= check_array(e, "sibling", w, n, 3);
    if (ok) count++;
  }
  vec_report("tree-math.json", 0, count);
  CHECK(count > 0);
  CHECK_INT(count, cJSON_GetArraySize(j));
  cJSON_Delete(j);
}

static void test_basics(void) {
  CHECK_INT(tm_node_width(0), 0);
  CHECK_INT(tm_node_width(1), 1);
  CHECK_INT(tm_node_width(TM_MAX_LEAVES), UINT32_MAX);
  CHECK_INT(tm_node_width(TM_MAX_LEAVES + 1), 0);
  CHECK_INT(tm_root(0), TM_NONE);
  CHECK_INT(tm_root(1), 0);
  CHECK_INT(tm_root(8), 7);
  CHECK_INT(tm_root(TM_MAX_LEAVES), 0x7fffffffu);
  CHECK_INT(tm_level(0), 0);
  CHECK_INT(tm_level(7), 3);
  CHECK_INT(tm_level(11), 2);
  CHECK(tm_is_leaf(6));
  CHECK(!tm_is_leaf(5));
  CHECK_INT(tm_leaf_to_node(5), 10);
  CHECK_INT(tm_node_to_leaf(10), 5);
  CHECK_INT(tm_left(4), TM_NONE);
  CHECK_INT(tm_parent(0, 1), TM_NONE);
  CHECK_INT(tm_sibling(0, 1), TM_NONE);
  CHECK_INT(tm_parent(15, 8), TM_NONE); /* outside the tree */
  /* The widest tree: the last leaf's parent and the root's children. */
  CHECK_INT(tm_parent(UINT32_MAX - 1, TM_MAX_LEAVES), UINT32_MAX - 2);
  CHECK_INT(tm_left(0x7fffffffu), 0x3fffffffu);
  CHECK_INT(tm_right(0x7fffffffu), 0xbfffffffu);
  uint32_t p[TM_MAX_PATH];
  CHECK_INT(tm_direct_path(0, TM_MAX_LEAVES, p), 31);
  CHECK_INT(p[30], 0x7fffffffu);
  CHECK_INT(tm_copath(UINT32_MAX - 1, TM_MAX_LEAVES, p), 31);
  CHECK_INT(p[30], 0x3fffffffu);
  CHECK_ERR(tm_direct_path(15, 8, p), TSR_EINVAL);
}

/* Figure from RFC 9420 §4.1.2 style example: 8 leaves. */
static void test_paths_example(void) {
  uint32_t p[TM_MAX_PATH];
  CHECK_INT(tm_direct_path(4, 8, p), 3); /* leaf C */
  CHECK_INT(p[0], 5);
  CHECK_INT(p[1], 3);
  CHECK_INT(p[2], 7);
  CHECK_INT(tm_copath(4, 8, p), 3);
  CHECK_INT(p[0], 6);
  CHECK_INT(p[1], 1);
  CHECK_INT(p[2], 11);
  CHECK_INT(tm_direct_path(7, 8, p), 0);
  CHECK_INT(tm_copath(7, 8, p), 0);
  CHECK_INT(tm_common_ancestor(0, 6), 3);
  CHECK_INT(tm_common_ancestor(4, 6), 5);
  CHECK_INT(tm_common_ancestor(2, 12), 7);
  CHECK_INT(tm_common_ancestor(5, 4), 5);
  CHECK_INT(tm_common_ancestor(8, 8), 8);
}

/* Direct paths, copaths and common ancestors agree with their definitions
 * (parent chains and sibling sets) on every node pair of small trees. */
static void test_paths_cross(void) {
  for (uint32_t n = 1; n <= 64; n *= 2) {
    uint32_t w = tm_node_width(n), r = tm_root(n);
    for (uint32_t x = 0; x < w; x++) {
      uint32_t dp[TM_MAX_PATH], cp[TM_MAX_PATH];
      int nd = tm_direct_path(x, n, dp), nc = tm_copath(x, n, cp);
      CHECK_INT(nd, nc);
      uint32_t y = x;
      for (int i = 0; i < nd; i++) {
        CHECK_INT(cp[i], tm_sibling(y, n));
        y = tm_parent(y, n);
        CHECK_INT(dp[i], y);
        CHECK(tm_is_ancestor(dp[i], x));
        CHECK(cp[i] < w);
        CHECK(!tm_is_ancestor(cp[i], x));
      }
      CHECK_INT(y, r);
      CHECK_INT(tm_level(r) - tm_level(x), nd);
      for (uint32_t z = 0; z < w; z++) {
        /* Semantic definition: the first node of x's chain (x, then its
         * direct path) that is also in z's chain. */
        uint32_t zp[TM_MAX_PATH + 1];
        zp[0] = z;
        int nz = tm_direct_path(z, n, zp + 1) + 1;
        uint32_t a = TM_NONE;
        for (int i = -1; i < nd && a == TM_NONE; i++) {
          uint32_t c = i < 0 ? x : dp[i];
          for (int k = 0; k < nz; k++)
            if (zp[k] == c) a = c;
        }
        CHECK_INT(tm_common_ancestor(x, z), a);
        CHECK_INT(tm_common_ancestor(z, x), a);
        CHECK_INT(tm_is_ancestor(x, z), a == x);
      }
      if (test_failing()) return;
    }
  }
}

int main(void) {
  RUN(test_vectors_tree_math);
  RUN(test_basics);
  RUN(test_paths_example);
  RUN(test_paths_cross);
  return test_report("treemath");
}
