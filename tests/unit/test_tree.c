/* Public ratchet tree: official tree-validation / tree-operations vectors,
 * tampering, structural operations and hash-cache consistency. */
#include <stdlib.h>
#include <time.h>

#include "mls/crypto.h"
#include "mls/messages.h"
#include "mls/tree.h"
#include "mls/treemath.h"
#include "test.h"
#include "vectors.h"

/* Root hash of t computed afresh (re-decoded, so no cached hashes). */
static int fresh_root_hash(const mls_tree *t, uint8_t out[MLS_MAX_HASH]) {
  buf_t w;
  buf_init(&w);
  tree_encode(t, &w);
  mls_tree *c = NULL;
  int rc = w.err ? w.err : tree_decode(tree_suite(t), buf_view(&w), &c);
  if (rc == 0) rc = tree_root_hash(c, out);
  tree_free(c);
  buf_free(&w);
  return rc;
}

static bool tree_encodes_to(const mls_tree *t, bytes_t want) {
  buf_t w;
  buf_init(&w);
  tree_encode(t, &w);
  bool ok = !w.err && bytes_eq(buf_view(&w), want);
  buf_free(&w);
  return ok;
}

static void check_validation_entry(const cJSON *e, const mls_suite *s, int *reproduced) {
  buf_t tree, gid, h;
  buf_init(&tree);
  buf_init(&gid);
  buf_init(&h);
  mls_tree *t = NULL;
  CHECK_OK(vec_hex(e, "tree", &tree));
  CHECK_OK(vec_hex(e, "group_id", &gid));
  CHECK_OK(tree_decode(s, buf_view(&tree), &t));
  if (!t) goto out;
  CHECK(tree_encodes_to(t, buf_view(&tree)));

  const cJSON *hashes = cJSON_GetObjectItemCaseSensitive(e, "tree_hashes");
  const cJSON *res = cJSON_GetObjectItemCaseSensitive(e, "resolutions");
  CHECK_INT(cJSON_GetArraySize(hashes), tree_width(t));
  CHECK_INT(cJSON_GetArraySize(res), tree_width(t));
  uint32_t *r = malloc(tree_width(t) * sizeof *r);
  for (uint32_t i = 0; i < tree_width(t) && r; i++) {
    const cJSON *hj = cJSON_GetArrayItem(hashes, (int)i);
    uint8_t got[MLS_MAX_HASH];
    CHECK_OK(hex_decode(cJSON_IsString(hj) ? hj->valuestring : "", &h));
    CHECK_OK(tree_hash(t, i, got));
    CHECK_BYTES(BYTES(got, s->hash_len), buf_view(&h));

    size_t n = 0;
    CHECK_OK(tree_resolution(t, i, r, tree_width(t), &n));
    const cJSON *rj = cJSON_GetArrayItem(res, (int)i);
    CHECK_INT(n, cJSON_GetArraySize(rj));
    for (size_t k = 0; k < n && k < (size_t)cJSON_GetArraySize(rj); k++)
      CHECK_INT(r[k], cJSON_GetArrayItem(rj, (int)k)->valuedouble);
  }
  free(r);

  uint8_t root[MLS_MAX_HASH];
  CHECK_OK(tree_root_hash(t, root));
  CHECK_OK(tree_verify_parent_hashes(t));
  CHECK_OK(tree_validate(t, buf_view(&gid), BYTES(root, s->hash_len)));

  /* The parent-hash chain helper must reproduce the path of a committer
   * whose path is still intact (the last committer in these trees). */
  for (uint32_t l = 0; l < tree_n_leaves(t); l++) {
    const mls_leaf_node *lf = tree_leaf(t, l);
    if (!lf || lf->leaf_node_source != MLS_LEAF_SOURCE_COMMIT) continue;
    mls_tree *c = NULL;
    CHECK_OK(tree_clone(t, &c));
    if (!c) break;
    uint8_t ph[MLS_MAX_HASH];
    size_t phl = 0;
    /* EINVAL: a later commit blanked part of this leaf's path. */
    int rc = tree_set_path_parent_hashes(c, l, ph, &phl);
    CHECK(rc == 0 || rc == TSR_EINVAL);
    if (rc == 0 && tree_encodes_to(c, buf_view(&tree)) &&
        bytes_eq(BYTES(ph, phl), lf->parent_hash))
      (*reproduced)++;
    tree_free(c);
  }
out:
  tree_free(t);
  buf_free(&tree);
  buf_free(&gid);
  buf_free(&h);
}

static void test_tree_validation_vectors(void) {
  const char *why = NULL;
  cJSON *j = vec_load("mls/tree-validation.json", &why);
  if (!j) TEST_SKIP("%s", why);
  const int suites[] = {1, 3};
  for (size_t si = 0; si < 2; si++) {
    const mls_suite *s = mls_suite_get((uint16_t)suites[si]);
    CHECK(s != NULL);
    if (!s) continue;
    int count = 0, reproduced = 0, missed = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, j) {
      if (!vec_suite_is(e, suites[si])) continue;
      int before = reproduced;
      check_validation_entry(e, s, &reproduced);
      if (reproduced == before) missed++;
      count++;
    }
    /* Every tree but the Figure 20 one (built from overlapping partial
     * commits, so no committer's path is intact) keeps its last
     * committer's path: the chain helper must reproduce it exactly. */
    CHECK(missed <= 1);
    vec_report("mls/tree-validation.json", suites[si], count);
    CHECK(count > 0);
  }
  cJSON_Delete(j);
}

static void test_tree_operations_vectors(void) {
  const char *why = NULL;
  cJSON *j = vec_load("mls/tree-operations.json", &why);
  if (!j) TEST_SKIP("%s", why);
  const mls_suite *s = mls_suite_get(1);
  CHECK(s != NULL);
  int count = 0;
  const cJSON *e;
  buf_t before, after, prop, hb, ha;
  buf_init(&before);
  buf_init(&after);
  buf_init(&prop);
  buf_init(&hb);
  buf_init(&ha);
  cJSON_ArrayForEach(e, j) {
    if (!s || !vec_suite_is(e, 1)) continue;
    CHECK_OK(vec_hex(e, "tree_before", &before));
    CHECK_OK(vec_hex(e, "tree_after", &after));
    CHECK_OK(vec_hex(e, "proposal", &prop));
    CHECK_OK(vec_hex(e, "tree_hash_before", &hb));
    CHECK_OK(vec_hex(e, "tree_hash_after", &ha));
    uint32_t sender = (uint32_t)vec_int(e, "proposal_sender");
    mls_tree *t = NULL;
    CHECK_OK(tree_decode(s, buf_view(&before), &t));
    if (!t) continue;
    uint8_t h[MLS_MAX_HASH];
    CHECK_OK(tree_root_hash(t, h));
    CHECK_BYTES(BYTES(h, s->hash_len), buf_view(&hb));

    arena_t a;
    arena_init(&a);
    mls_proposal p;
    CHECK_OK(msg_decode_proposal(buf_view(&prop), &a, &p));
    uint32_t leaf = 0;
    switch (p.proposal_type) {
    case MLS_PROPOSAL_ADD:
      CHECK_OK(tree_check_new_leaf(t, &p.add.leaf_node, TREE_NONE));
      CHECK_OK(tree_add_leaf(t, &p.add.leaf_node, &leaf));
      CHECK(tree_leaf(t, leaf) != NULL);
      break;
    case MLS_PROPOSAL_UPDATE:
      CHECK_OK(tree_check_new_leaf(t, &p.update, sender));
      CHECK_OK(tree_update_leaf(t, sender, &p.update));
      break;
    case MLS_PROPOSAL_REMOVE: CHECK_OK(tree_remove_leaf(t, p.remove)); break;
    default: CHECK(p.proposal_type <= MLS_PROPOSAL_REMOVE); /* only these occur */
    }
    CHECK(tree_encodes_to(t, buf_view(&after)));
    CHECK_OK(tree_root_hash(t, h));
    CHECK_BYTES(BYTES(h, s->hash_len), buf_view(&ha));
    arena_free(&a);
    tree_free(t);
    count++;
  }
  buf_free(&before);
  buf_free(&after);
  buf_free(&prop);
  buf_free(&hb);
  buf_free(&ha);
  vec_report("mls/tree-operations.json", 1, count);
  CHECK(count > 0);
  cJSON_Delete(j);
}

/* The largest suite-1 validation tree (most parents and leaves). */
static mls_tree *load_big_tree(buf_t *gid) {
  const char *why = NULL;
  cJSON *j = vec_load("mls/tree-validation.json", &why);
  if (!j) return NULL;
  const cJSON *e, *best = NULL;
  size_t best_len = 0;
  cJSON_ArrayForEach(e, j) {
    const cJSON *tj = cJSON_GetObjectItemCaseSensitive(e, "tree");
    if (vec_suite_is(e, 1) && cJSON_IsString(tj) && strlen(tj->valuestring) > best_len) {
      best = e;
      best_len = strlen(tj->valuestring);
    }
  }
  mls_tree *t = NULL;
  buf_t tree;
  buf_init(&tree);
  if (best && vec_hex(best, "tree", &tree) == 0 && vec_hex(best, "group_id", gid) == 0)
    tree_decode(mls_suite_get(1), buf_view(&tree), &t);
  buf_free(&tree);
  cJSON_Delete(j);
  return t;
}

static void test_tree_tampering(void) {
  buf_t gid;
  buf_init(&gid);
  mls_tree *t = load_big_tree(&gid);
  if (!t) {
    buf_free(&gid);
    TEST_SKIP("tree-validation.json not available");
  }
  const mls_suite *s = tree_suite(t);
  CHECK_OK(tree_validate(t, buf_view(&gid), BYTES_NONE));

  /* Wrong expected tree hash. */
  uint8_t zero[MLS_MAX_HASH] = {0};
  CHECK_ERR(tree_validate(t, buf_view(&gid), BYTES(zero, s->hash_len)), TSR_ETREE);
  /* Wrong group_id changes LeafNodeTBS of update/commit leaves. */
  CHECK_ERR(tree_validate(t, BYTES("x", 1), BYTES_NONE), TSR_EVERIFY);

  /* Tampered leaf signature. */
  mls_tree *c = NULL;
  CHECK_OK(tree_clone(t, &c));
  mls_leaf_node lf = *tree_leaf(c, 1);
  uint8_t sig[256];
  CHECK(lf.signature.len <= sizeof sig);
  memcpy(sig, lf.signature.ptr, lf.signature.len);
  sig[5] ^= 1;
  lf.signature = BYTES(sig, lf.signature.len);
  CHECK_OK(tree_set_leaf(c, 1, &lf));
  CHECK_ERR(tree_validate(c, buf_view(&gid), BYTES_NONE), TSR_EVERIFY);
  tree_free(c);

  /* Tampered parent hash in each non-blank parent that has one. */
  int tampered = 0;
  for (uint32_t x = 1; x < tree_width(t); x += 2) {
    const mls_parent_node *pn = tree_parent(t, x);
    if (!pn || pn->parent_hash.len == 0) continue;
    CHECK_OK(tree_clone(t, &c));
    mls_parent_node p = *pn;
    uint8_t ph[MLS_MAX_HASH];
    memcpy(ph, p.parent_hash.ptr, p.parent_hash.len);
    ph[0] ^= 0x80;
    p.parent_hash = BYTES(ph, p.parent_hash.len);
    CHECK_OK(tree_set_parent(c, x, &p));
    CHECK_ERR(tree_verify_parent_hashes(c), TSR_ETREE);
    CHECK_ERR(tree_validate(c, buf_view(&gid), BYTES_NONE), TSR_ETREE);
    tree_free(c);
    tampered++;
  }
  CHECK(tampered > 0);

  /* Tampered parent encryption key breaks the chain below it too. */
  CHECK_OK(tree_clone(t, &c));
  uint32_t root = tm_root(tree_n_leaves(c));
  mls_parent_node p = *tree_parent(c, root);
  uint8_t ek[MLS_KEM_PK];
  memcpy(ek, p.encryption_key.ptr, sizeof ek);
  ek[31] ^= 1;
  p.encryption_key = BYTES(ek, sizeof ek);
  CHECK_OK(tree_set_parent(c, root, &p));
  CHECK_ERR(tree_validate(c, buf_view(&gid), BYTES_NONE), TSR_ETREE);
  tree_free(c);

  /* Duplicate encryption key (a leaf's key copied into another leaf). */
  CHECK_OK(tree_clone(t, &c));
  lf = *tree_leaf(t, 2); /* views into t: stay valid while c changes */
  lf.encryption_key = tree_leaf(t, 0)->encryption_key;
  CHECK_OK(tree_set_leaf(c, 2, &lf));
  CHECK_ERR(tree_validate(c, buf_view(&gid), BYTES_NONE), TSR_ETREE);
  CHECK_ERR(tree_check_new_leaf(t, &lf, 2), TSR_ETREE);
  tree_free(c);

  /* Unmerged leaf that is not a descendant. */
  CHECK_OK(tree_clone(t, &c));
  p = *tree_parent(c, 1);
  uint32_t bad = tree_n_leaves(c) - 1;
  p.unmerged_leaves = &bad;
  p.n_unmerged_leaves = 1;
  CHECK_OK(tree_set_parent(c, 1, &p));
  CHECK_ERR(tree_validate(c, buf_view(&gid), BYTES_NONE), TSR_ETREE);
  tree_free(c);

  tree_free(t);
  buf_free(&gid);
}

/* Synthetic leaf: only the keys matter for these structural checks. */
static mls_leaf_node fake_leaf(uint8_t keybuf[2][32], uint32_t i) {
  static uint16_t cred[] = {MLS_CREDENTIAL_BASIC};
  memset(keybuf, 0, 64);
  keybuf[0][0] = (uint8_t)i;
  keybuf[0][1] = (uint8_t)(i >> 8);
  keybuf[0][2] = 'e';
  keybuf[1][0] = (uint8_t)i;
  keybuf[1][1] = (uint8_t)(i >> 8);
  keybuf[1][2] = 's';
  mls_leaf_node l;
  memset(&l, 0, sizeof l);
  l.encryption_key = BYTES(keybuf[0], 32);
  l.signature_key = BYTES(keybuf[1], 32);
  l.credential.credential_type = MLS_CREDENTIAL_BASIC;
  l.credential.identity = BYTES("id", 2);
  l.capabilities.credentials = cred;
  l.capabilities.n_credentials = 1;
  l.leaf_node_source = MLS_LEAF_SOURCE_KEY_PACKAGE;
  l.lifetime.not_after = UINT64_MAX;
  l.signature = BYTES(keybuf[1], 32); /* not verified here */
  return l;
}

static void check_cache(const mls_tree *t) {
  uint8_t a[MLS_MAX_HASH], b[MLS_MAX_HASH];
  CHECK_OK(tree_root_hash(t, a));
  CHECK_OK(fresh_root_hash(t, b));
  CHECK(memcmp(a, b, tree_suite(t)->hash_len) == 0);
}

static void test_tree_structure(void) {
  const mls_suite *s = mls_suite_get(1);
  mls_tree *t = NULL;
  CHECK_OK(tree_new(s, &t));
  if (!t) return;
  CHECK_INT(tree_n_leaves(t), 0);
  uint8_t kb[2][32];
  uint32_t leaf = 99;
  for (uint32_t i = 0; i < 5; i++) {
    mls_leaf_node l = fake_leaf(kb, i);
    CHECK_OK(tree_add_leaf(t, &l, &leaf));
    CHECK_INT(leaf, i);
    check_cache(t);
  }
  CHECK_INT(tree_n_leaves(t), 8);
  CHECK_INT(tree_width(t), 15);
  CHECK_INT(tree_member_count(t), 5);

  /* Give the root and node 1 keys, then add into a hole: unmerged lists
   * must stay sorted and only non-blank parents get the entry. */
  mls_parent_node p;
  memset(&p, 0, sizeof p);
  uint8_t pk[32] = {0xaa};
  p.encryption_key = BYTES(pk, 32);
  uint32_t um[] = {4};
  p.unmerged_leaves = um;
  p.n_unmerged_leaves = 1;
  CHECK_OK(tree_set_parent(t, 7, &p));
  pk[0] = 0xbb;
  p.n_unmerged_leaves = 0;
  CHECK_OK(tree_set_parent(t, 1, &p));
  check_cache(t);
  CHECK_OK(tree_remove_leaf(t, 4)); /* blanks 8, 9, 11, 7 -> shrinks */
  CHECK_INT(tree_n_leaves(t), 4);
  CHECK(tree_parent(t, 1) != NULL);
  check_cache(t);
  CHECK_OK(tree_set_parent(t, 3, &p));
  pk[0] = 0xcc;
  CHECK_OK(tree_set_parent(t, 1, &p));
  CHECK_OK(tree_remove_leaf(t, 1));
  CHECK(tree_parent(t, 1) == NULL && tree_parent(t, 3) == NULL);
  pk[0] = 0xdd;
  CHECK_OK(tree_set_parent(t, 3, &p));
  pk[0] = 0xee;
  CHECK_OK(tree_set_parent(t, 5, &p));
  mls_leaf_node l = fake_leaf(kb, 100);
  CHECK_OK(tree_check_new_leaf(t, &l, TREE_NONE));
  CHECK_OK(tree_add_leaf(t, &l, &leaf));
  CHECK_INT(leaf, 1);
  CHECK(tree_parent(t, 3)->n_unmerged_leaves == 1 &&
        tree_parent(t, 3)->unmerged_leaves[0] == 1);
  CHECK(tree_parent(t, 5)->n_unmerged_leaves == 0);
  check_cache(t);

  uint32_t r[16];
  size_t n = 0;
  CHECK_OK(tree_resolution(t, 3, r, 16, &n));
  CHECK(n == 2 && r[0] == 3 && r[1] == 2);
  CHECK_ERR(tree_resolution(t, 3, r, 1, &n), TSR_EINVAL);

  uint32_t path[TREE_MAX_DEPTH], cop[TREE_MAX_DEPTH];
  CHECK_OK(tree_filtered_direct_path(t, 3, path, cop, &n));
  CHECK(n == 2 && path[0] == 5 && cop[0] == 4 && path[1] == 3 && cop[1] == 1);

  uint32_t found = 0;
  CHECK_OK(tree_find_signature_key(t, l.signature_key, &found));
  CHECK_INT(found, 1);
  CHECK_OK(tree_find_encryption_key(t, BYTES(pk, 32), &found));
  CHECK_INT(found, 5);
  CHECK_ERR(tree_find_encryption_key(t, BYTES("nope", 4), &found), TSR_ENOTFOUND);
  CHECK_ERR(tree_check_new_leaf(t, &l, TREE_NONE), TSR_ETREE);

  /* Update blanks the path; clone is independent. */
  mls_tree *c = NULL;
  CHECK_OK(tree_clone(t, &c));
  mls_leaf_node u = fake_leaf(kb, 200);
  CHECK_OK(tree_update_leaf(t, 2, &u));
  CHECK(tree_parent(t, 5) == NULL && tree_parent(t, 3) == NULL);
  CHECK(tree_parent(c, 5) != NULL);
  check_cache(t);
  check_cache(c);
  tree_free(c);

  /* Remove everything but leaf 0: back to a single leaf. */
  for (uint32_t i = 1; i < tree_n_leaves(t); i++)
    if (!tree_leaf_is_blank(t, i)) CHECK_OK(tree_remove_leaf(t, i));
  CHECK_INT(tree_n_leaves(t), 1);
  CHECK_ERR(tree_remove_leaf(t, 3), TSR_EINVAL);
  check_cache(t);
  tree_free(t);
}

/* tree_set_path_parent_hashes output must verify as a chain. */
static void test_tree_path_chain(void) {
  buf_t gid;
  buf_init(&gid);
  mls_tree *t = load_big_tree(&gid);
  buf_free(&gid);
  if (!t) TEST_SKIP("tree-validation.json not available");
  uint32_t leaf = tree_n_leaves(t) / 2 - 1;
  while (leaf > 0 && tree_leaf_is_blank(t, leaf)) leaf--;
  /* Emulate a committer: blank the path, set fresh keys on the filtered
   * path, chain the parent hashes, put the hash into the leaf. */
  CHECK_OK(tree_blank_direct_path(t, leaf));
  uint32_t path[TREE_MAX_DEPTH];
  size_t n = 0;
  CHECK_OK(tree_filtered_direct_path(t, leaf, path, NULL, &n));
  CHECK(n > 0);
  uint8_t keys[TREE_MAX_DEPTH][32];
  for (size_t i = 0; i < n; i++) {
    mls_parent_node p;
    memset(&p, 0, sizeof p);
    memset(keys[i], 0x40 + (int)i, 32);
    p.encryption_key = BYTES(keys[i], 32);
    CHECK_OK(tree_set_parent(t, path[i], &p));
  }
  uint8_t ph[MLS_MAX_HASH];
  size_t phl = 0;
  CHECK_OK(tree_set_path_parent_hashes(t, leaf, ph, &phl));
  CHECK_INT(phl, tree_suite(t)->hash_len);
  CHECK_INT(tree_parent(t, path[n - 1])->parent_hash.len, 0);
  /* Without the leaf's hash the lowest path node has no chain. */
  CHECK_ERR(tree_verify_parent_hashes(t), TSR_ETREE);
  mls_leaf_node lf = *tree_leaf(t, leaf);
  lf.leaf_node_source = MLS_LEAF_SOURCE_COMMIT;
  lf.parent_hash = BYTES(ph, phl);
  CHECK_OK(tree_set_leaf(t, leaf, &lf));
  CHECK_OK(tree_verify_parent_hashes(t));
  check_cache(t);
  tree_free(t);
}

static void test_tree_decode_rejects(void) {
  const mls_suite *s = mls_suite_get(1);
  uint8_t kb[2][32];
  mls_node nodes[3];
  memset(nodes, 0, sizeof nodes);
  nodes[0].node_type = MLS_NODE_LEAF;
  nodes[0].leaf = fake_leaf(kb, 1);
  mls_ratchet_tree rt = {nodes, 1};
  mls_tree *t = NULL;
  CHECK_OK(tree_from_ratchet_tree(s, &rt, &t));
  tree_free(t);
  t = NULL;
  rt.n_nodes = 2; /* trailing blank */
  CHECK_ERR(tree_from_ratchet_tree(s, &rt, &t), TSR_ETREE);
  nodes[1].node_type = MLS_NODE_LEAF; /* leaf at an odd index */
  nodes[1].leaf = nodes[0].leaf;
  CHECK_ERR(tree_from_ratchet_tree(s, &rt, &t), TSR_ETREE);
  rt.n_nodes = 0;
  CHECK_ERR(tree_from_ratchet_tree(s, &rt, &t), TSR_ETREE);
  /* Two nodes (leaf, parent) pad to three and re-encode as given. */
  nodes[1].node_type = MLS_NODE_PARENT;
  nodes[1].parent.encryption_key = BYTES(kb[0], 32);
  rt.n_nodes = 2;
  CHECK_OK(tree_from_ratchet_tree(s, &rt, &t));
  if (t) {
    CHECK_INT(tree_width(t), 3);
    buf_t a, b;
    buf_init(&a);
    buf_init(&b);
    msg_encode_ratchet_tree(&a, &rt);
    tree_encode(t, &b);
    CHECK_BYTES(buf_view(&a), buf_view(&b));
    buf_free(&a);
    buf_free(&b);
  }
  tree_free(t);
}

/* 4096 members: full hash once, then one leaf change costs a path. */
static void test_tree_large(void) {
  const mls_suite *s = mls_suite_get(1);
  mls_tree *t = NULL;
  CHECK_OK(tree_new(s, &t));
  if (!t) return;
  uint8_t kb[2][32];
  for (uint32_t i = 0; i < 4096 && !test_failing(); i++) {
    mls_leaf_node l = fake_leaf(kb, i);
    uint32_t leaf;
    CHECK_OK(tree_add_leaf(t, &l, &leaf));
  }
  CHECK_INT(tree_n_leaves(t), 4096);
  struct timespec t0, t1, t2;
  uint8_t h[MLS_MAX_HASH];
  clock_gettime(CLOCK_MONOTONIC, &t0);
  CHECK_OK(tree_root_hash(t, h));
  clock_gettime(CLOCK_MONOTONIC, &t1);
  mls_leaf_node u = fake_leaf(kb, 5000);
  CHECK_OK(tree_update_leaf(t, 1234, &u));
  CHECK_OK(tree_root_hash(t, h));
  clock_gettime(CLOCK_MONOTONIC, &t2);
  double full =
      (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
  double upd =
      (double)(t2.tv_sec - t1.tv_sec) * 1e3 + (double)(t2.tv_nsec - t1.tv_nsec) / 1e6;
  printf("tree 4096 leaves: full tree hash %.2f ms, after one update %.3f ms\n", full,
         upd);
  check_cache(t);
  mls_tree *c = NULL;
  CHECK_OK(tree_clone(t, &c));
  CHECK_OK(tree_remove_leaf(c, 4095));
  CHECK_INT(tree_n_leaves(c), 4096);
  for (uint32_t i = 2048; i < 4095; i++) CHECK_OK(tree_remove_leaf(c, i));
  CHECK_INT(tree_n_leaves(c), 2048);
  check_cache(c);
  tree_free(c);
  tree_free(t);
}

int main(void) {
  if (crypto_init() != 0) return 1;
  RUN(test_tree_validation_vectors);
  RUN(test_tree_operations_vectors);
  RUN(test_tree_tampering);
  RUN(test_tree_structure);
  RUN(test_tree_path_chain);
  RUN(test_tree_decode_rejects);
  RUN(test_tree_large);
  return test_report("tree");
}
