/* TreeKEM: treekem.json (suites 1 and 3), own UpdatePaths processed by
 * every member, Welcome path secrets, tamper rollback, persistence, and a
 * 1024-member cost check. */
#include <stdlib.h>
#include <time.h>

#include "mls/crypto.h"
#include "mls/messages.h"
#include "mls/tree.h"
#include "mls/treekem.h"
#include "mls/treemath.h"
#include "test.h"
#include "vectors.h"

/* One vector entry's state: the tree, each member's private state and
 * signing key, and the GroupContext template. */
typedef struct {
  const mls_suite *s;
  mls_tree *tree;
  uint32_t n_leaves;
  mls_tree_priv **priv;
  mls_sig_key *sig;
  bool *has_sig;
  buf_t group_id, cth;
  mls_group_context gc;
} tk_state;

static void tk_state_free(tk_state *st) {
  for (uint32_t i = 0; st->priv && i < st->n_leaves; i++) treekem_priv_free(st->priv[i]);
  for (uint32_t i = 0; st->sig && i < st->n_leaves; i++) crypto_sig_wipe(&st->sig[i]);
  free(st->priv);
  free(st->sig);
  free(st->has_sig);
  tree_free(st->tree);
  buf_free(&st->group_id);
  buf_free(&st->cth);
}

static int tk_hex(const cJSON *o, const char *key, buf_t *b) {
  int rc = vec_hex(o, key, b);
  return rc < 0 ? rc : 0;
}

/* Loads ratchet_tree and leaves_private; checks private/public agreement. */
static int tk_load(const cJSON *e, tk_state *st) {
  memset(st, 0, sizeof *st);
  buf_init(&st->group_id);
  buf_init(&st->cth);
  st->s = mls_suite_get((uint16_t)vec_int(e, "cipher_suite"));
  if (!st->s) return TSR_EUNSUPPORTED;
  buf_t rt, b;
  buf_init(&rt);
  buf_init(&b);
  int rc = tk_hex(e, "ratchet_tree", &rt);
  if (rc == 0) rc = tree_decode(st->s, buf_view(&rt), &st->tree);
  buf_free(&rt);
  if (rc == 0) rc = tk_hex(e, "group_id", &st->group_id);
  if (rc == 0) rc = tk_hex(e, "confirmed_transcript_hash", &st->cth);
  if (rc) return rc;
  st->n_leaves = tree_n_leaves(st->tree);
  st->priv = calloc(st->n_leaves, sizeof *st->priv);
  st->sig = calloc(st->n_leaves, sizeof *st->sig);
  st->has_sig = calloc(st->n_leaves, sizeof *st->has_sig);
  if (!st->priv || !st->sig || !st->has_sig) return TSR_ENOMEM;
  st->gc = (mls_group_context){
      .version = MLS_VERSION_10,
      .cipher_suite = st->s->id,
      .group_id = buf_view(&st->group_id),
      .epoch = (uint64_t)vec_int(e, "epoch"),
      .confirmed_transcript_hash = buf_view(&st->cth),
  };

  const cJSON *lp, *lps = cJSON_GetObjectItemCaseSensitive(e, "leaves_private");
  cJSON_ArrayForEach(lp, lps) {
    uint32_t idx = (uint32_t)vec_int(lp, "index");
    if (idx >= st->n_leaves) return TSR_EINVAL;
    rc = tk_hex(lp, "encryption_priv", &b);
    if (rc == 0) rc = treekem_priv_new(st->s, idx, buf_view(&b), &st->priv[idx]);
    if (rc == 0) rc = tk_hex(lp, "signature_priv", &b);
    if (rc == 0 && b.len != MLS_SIG_SEED) rc = TSR_EDECODE;
    if (rc == 0) rc = crypto_sig_from_seed(&st->sig[idx], b.ptr);
    if (rc) break;
    st->has_sig[idx] = true;
    const cJSON *ps, *pss = cJSON_GetObjectItemCaseSensitive(lp, "path_secrets");
    cJSON_ArrayForEach(ps, pss) {
      rc = tk_hex(ps, "path_secret", &b);
      if (rc == 0)
        rc = treekem_priv_install(st->priv[idx], st->tree, (uint32_t)vec_int(ps, "node"),
                                  buf_view(&b));
      if (rc) break;
    }
    if (rc == 0) rc = treekem_priv_check(st->priv[idx], st->tree);
    if (rc) break;
  }
  buf_free_secret(&b);
  return rc;
}

static int tk_gc_encode(const tk_state *st, const mls_tree *t, buf_t *w) {
  uint8_t th[MLS_MAX_HASH];
  int rc = tree_root_hash(t, th);
  if (rc) return rc;
  mls_group_context g = st->gc;
  g.tree_hash = BYTES(th, st->s->hash_len);
  buf_reset(w);
  msg_encode_group_context(w, &g);
  return w->err;
}

static bytes_t tk_root(const mls_tree *t, uint8_t out[MLS_MAX_HASH]) {
  if (tree_root_hash(t, out)) return BYTES_NONE;
  return BYTES(out, tree_suite(t)->hash_len);
}

/* The vector's update_path: merged once, decrypted by every receiver. */
static void tk_check_vector_path(tk_state *st, const cJSON *u) {
  const mls_suite *s = st->s;
  uint32_t sender = (uint32_t)vec_int(u, "sender");
  buf_t raw, want_cs, want_th, want_ps, gc;
  buf_init(&raw);
  buf_init(&want_cs);
  buf_init(&want_th);
  buf_init(&want_ps);
  buf_init(&gc);
  arena_t a;
  arena_init(&a);
  mls_update_path up;
  mls_tree *t = NULL;
  CHECK_OK(tk_hex(u, "update_path", &raw));
  CHECK_OK(tk_hex(u, "commit_secret", &want_cs));
  CHECK_OK(tk_hex(u, "tree_hash_after", &want_th));
  CHECK_OK(msg_decode_update_path(buf_view(&raw), &a, &up));
  CHECK_OK(tree_clone(st->tree, &t));
  if (test_failing()) goto out;

  /* Merge (parent-hash validity) and tree hash after. */
  CHECK_OK(treekem_merge_path(t, sender, &up, buf_view(&st->group_id)));
  uint8_t th[MLS_MAX_HASH];
  CHECK_BYTES(tk_root(t, th), buf_view(&want_th));
  CHECK_OK(tk_gc_encode(st, t, &gc));
  if (test_failing()) goto out;

  const cJSON *pss = cJSON_GetObjectItemCaseSensitive(u, "path_secrets");
  for (uint32_t j = 0; j < st->n_leaves; j++) {
    if (j == sender || tree_leaf_is_blank(st->tree, j)) continue;
    CHECK(st->priv[j] != NULL);
    if (!st->priv[j]) continue;
    const cJSON *psj = cJSON_GetArrayItem(pss, (int)j);
    CHECK(cJSON_IsString(psj));
    if (cJSON_IsString(psj)) CHECK_OK(hex_decode(psj->valuestring, &want_ps));

    mls_tree_priv *pj = NULL;
    CHECK_OK(treekem_priv_clone(st->priv[j], &pj));
    uint8_t cs[MLS_MAX_HASH], ps[MLS_MAX_HASH];
    CHECK_OK(treekem_decrypt_path(pj, t, sender, &up, buf_view(&gc), NULL, 0, cs, ps));
    CHECK_BYTES(BYTES(cs, s->hash_len), buf_view(&want_cs));
    CHECK_BYTES(BYTES(ps, s->hash_len), buf_view(&want_ps));
    CHECK_OK(treekem_priv_check(pj, t));
    treekem_priv_free(pj);

    /* One-shot form on a fresh copy gives the same result. */
    mls_tree *t2 = NULL;
    CHECK_OK(tree_clone(st->tree, &t2));
    CHECK_OK(treekem_priv_clone(st->priv[j], &pj));
    if (t2 && pj) {
      CHECK_OK(treekem_apply(pj, t2, sender, &up, &st->gc, NULL, 0, cs, NULL));
      CHECK_BYTES(BYTES(cs, s->hash_len), buf_view(&want_cs));
      CHECK_BYTES(tk_root(t2, th), buf_view(&want_th));
    }
    treekem_priv_free(pj);
    tree_free(t2);
  }
out:
  tree_free(t);
  arena_free(&a);
  buf_free(&raw);
  buf_free(&want_cs);
  buf_free(&want_th);
  buf_free_secret(&want_ps);
  buf_free(&gc);
}

/* Our own UpdatePath from `sender`: every other member decrypts it, agrees
 * on commit_secret and tree hash, and a joiner-style install from the
 * Welcome path secret yields a consistent private state. */
static void tk_check_own_path(tk_state *st, uint32_t sender) {
  const mls_suite *s = st->s;
  if (!st->priv[sender] || !st->has_sig[sender]) {
    CHECK(!"sender has no private state");
    return;
  }
  mls_tree *t = NULL;
  mls_tree_priv *p = NULL;
  arena_t a;
  arena_init(&a);
  buf_t enc;
  buf_init(&enc);
  CHECK_OK(tree_clone(st->tree, &t));
  CHECK_OK(treekem_priv_clone(st->priv[sender], &p));
  if (test_failing()) goto out;

  treekem_leaf_params lp = {
      .leaf = tree_leaf(t, sender), /* points into the tree being changed */
      .sig = &st->sig[sender],
      .group_id = buf_view(&st->group_id),
  };
  mls_update_path up;
  uint8_t cs[MLS_MAX_HASH], th[MLS_MAX_HASH], th2[MLS_MAX_HASH];
  CHECK_OK(treekem_path_create(p, t, &lp, &st->gc, NULL, 0, &a, &up, cs));
  CHECK_OK(treekem_priv_check(p, t));
  if (test_failing()) goto out;
  /* Over the wire and back. */
  msg_encode_update_path(&enc, &up);
  CHECK_OK(enc.err);
  mls_update_path up2;
  CHECK_OK(msg_decode_update_path(buf_view(&enc), &a, &up2));
  bytes_t root = tk_root(t, th);

  for (uint32_t j = 0; j < st->n_leaves && !test_failing(); j++) {
    if (j == sender || tree_leaf_is_blank(st->tree, j) || !st->priv[j]) continue;
    mls_tree *tj = NULL;
    mls_tree_priv *pj = NULL;
    uint8_t csj[MLS_MAX_HASH], psj[MLS_MAX_HASH], want_ps[MLS_MAX_HASH];
    CHECK_OK(tree_clone(st->tree, &tj));
    CHECK_OK(treekem_priv_clone(st->priv[j], &pj));
    if (!tj || !pj) break;
    CHECK_OK(treekem_apply(pj, tj, sender, &up2, &st->gc, NULL, 0, csj, psj));
    CHECK_BYTES(BYTES(csj, s->hash_len), BYTES(cs, s->hash_len));
    CHECK_BYTES(tk_root(tj, th2), root);
    CHECK_OK(treekem_priv_check(pj, tj));
    /* What the committer would put in j's GroupSecrets. */
    CHECK_OK(treekem_path_secret_for(p, t, j, want_ps));
    CHECK_BYTES(BYTES(psj, s->hash_len), BYTES(want_ps, s->hash_len));
    /* Joiner: only the leaf key plus the Welcome path secret. */
    uint8_t lsk[MLS_KEM_SK];
    mls_tree_priv *joined = NULL;
    CHECK_OK(treekem_priv_node_key(st->priv[j], tm_leaf_to_node(j), lsk));
    CHECK_OK(treekem_priv_new(s, j, BYTES(lsk, MLS_KEM_SK), &joined));
    if (joined) {
      CHECK_OK(treekem_priv_join(joined, tj, sender, BYTES(want_ps, s->hash_len)));
      CHECK_OK(treekem_priv_check(joined, tj));
      /* The joiner can decrypt the next commit from the committer too:
       * it holds the same keys above the common ancestor as pj. */
      uint32_t lca = tm_common_ancestor(tm_leaf_to_node(j), tm_leaf_to_node(sender));
      uint8_t k1[MLS_KEM_SK], k2[MLS_KEM_SK];
      CHECK_OK(treekem_priv_node_key(joined, lca, k1));
      CHECK_OK(treekem_priv_node_key(pj, lca, k2));
      CHECK_BYTES(BYTES(k1, MLS_KEM_SK), BYTES(k2, MLS_KEM_SK));
    }
    secure_wipe(lsk, sizeof lsk);
    treekem_priv_free(joined);
    treekem_priv_free(pj);
    tree_free(tj);
  }
  treekem_priv_forget_path(p);
  uint8_t tmp[MLS_MAX_HASH];
  CHECK_ERR(treekem_path_secret_for(p, t, sender == 0 ? 1 : 0, tmp), TSR_ESTATE);
out:
  buf_free(&enc);
  arena_free(&a);
  treekem_priv_free(p);
  tree_free(t);
}

static void tk_run_suite(int suite) {
  const char *why = NULL;
  cJSON *j = vec_load("mls/treekem.json", &why);
  if (!j) TEST_SKIP("%s", why);
  int count = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, j) {
    if (!vec_suite_is(e, suite)) continue;
    tk_state st;
    int rc = tk_load(e, &st);
    CHECK_OK(rc);
    if (rc == 0) {
      const cJSON *u, *ups = cJSON_GetObjectItemCaseSensitive(e, "update_paths");
      cJSON_ArrayForEach(u, ups) {
        tk_check_vector_path(&st, u);
        tk_check_own_path(&st, (uint32_t)vec_int(u, "sender"));
      }
    }
    tk_state_free(&st);
    if (test_failing()) break;
    count++;
  }
  cJSON_Delete(j);
  vec_report("treekem.json", suite, count);
  CHECK(count > 0);
}

static void test_vectors_suite1(void) {
  tk_run_suite(MLS_SUITE_X25519_AES128GCM_SHA256_ED25519);
}
static void test_vectors_suite3(void) {
  tk_run_suite(MLS_SUITE_X25519_CHACHA20POLY1305_SHA256_ED25519);
}

/* First suite-1 entry with at least 4 leaves, loaded. */
static int tk_load_first(tk_state *st, cJSON **json, const cJSON **entry) {
  const char *why = NULL;
  *json = vec_load("mls/treekem.json", &why);
  if (!*json) return TSR_ENOTFOUND;
  const cJSON *e;
  cJSON_ArrayForEach(e, *json) {
    if (!vec_suite_is(e, 1)) continue;
    const cJSON *lps = cJSON_GetObjectItemCaseSensitive(e, "leaves_private");
    if (cJSON_GetArraySize(lps) < 4) continue;
    *entry = e;
    return tk_load(e, st);
  }
  return TSR_ENOTFOUND;
}

static void tk_snapshot(const mls_tree *t, const mls_tree_priv *p, buf_t *out) {
  buf_reset(out);
  tree_encode(t, out);
  treekem_priv_serialize(p, out);
}

/* A tampered ciphertext / key / context fails and changes nothing. */
static void test_tamper_rollback(void) {
  tk_state st;
  cJSON *json = NULL;
  const cJSON *e = NULL;
  int rc = tk_load_first(&st, &json, &e);
  if (rc == TSR_ENOTFOUND && !json) TEST_SKIP("treekem.json not found");
  CHECK_OK(rc);
  const cJSON *u =
      cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(e, "update_paths"), 0);
  uint32_t sender = (uint32_t)vec_int(u, "sender");
  uint32_t recv = sender == 0 ? 1 : 0;
  while (recv < st.n_leaves && (!st.priv[recv] || tree_leaf_is_blank(st.tree, recv)))
    recv++;
  buf_t raw, before, after;
  buf_init(&raw);
  buf_init(&before);
  buf_init(&after);
  arena_t a;
  arena_init(&a);
  mls_update_path up;
  CHECK_OK(tk_hex(u, "update_path", &raw));
  CHECK_OK(msg_decode_update_path(buf_view(&raw), &a, &up));
  CHECK(recv < st.n_leaves);
  if (test_failing()) goto out;

  mls_tree_priv *p = st.priv[recv];
  uint8_t cs[MLS_MAX_HASH];
  tk_snapshot(st.tree, p, &before);

  /* Flip a byte of every ciphertext (the receiver's one among them). */
  for (size_t i = 0; i < up.n_nodes; i++)
    for (size_t k = 0; k < up.nodes[i].n_encrypted_path_secret; k++) {
      uint8_t *c = (uint8_t *)up.nodes[i].encrypted_path_secret[k].ciphertext.ptr;
      c[0] ^= 1;
    }
  CHECK_ERR(treekem_apply(p, st.tree, sender, &up, &st.gc, NULL, 0, cs, NULL),
            TSR_EDECRYPT);
  tk_snapshot(st.tree, p, &after);
  CHECK_BYTES(buf_view(&after), buf_view(&before));
  for (size_t i = 0; i < up.n_nodes; i++)
    for (size_t k = 0; k < up.nodes[i].n_encrypted_path_secret; k++) {
      uint8_t *c = (uint8_t *)up.nodes[i].encrypted_path_secret[k].ciphertext.ptr;
      c[0] ^= 1;
    }

  /* Wrong GroupContext (another epoch): HPKE fails, nothing changes. */
  mls_group_context gc = st.gc;
  gc.epoch++;
  CHECK_ERR(treekem_apply(p, st.tree, sender, &up, &gc, NULL, 0, cs, NULL), TSR_EDECRYPT);
  tk_snapshot(st.tree, p, &after);
  CHECK_BYTES(buf_view(&after), buf_view(&before));

  /* A changed path public key breaks the parent-hash chain. */
  if (up.n_nodes) {
    uint8_t *k = (uint8_t *)up.nodes[up.n_nodes - 1].encryption_key.ptr;
    k[5] ^= 0x40;
    rc = treekem_apply(p, st.tree, sender, &up, &st.gc, NULL, 0, cs, NULL);
    CHECK(rc == TSR_ETREE || rc == TSR_EVERIFY);
    k[5] ^= 0x40;
    tk_snapshot(st.tree, p, &after);
    CHECK_BYTES(buf_view(&after), buf_view(&before));
  }
  /* A different leaf signature. */
  ((uint8_t *)up.leaf_node.signature.ptr)[3] ^= 1;
  CHECK_ERR(treekem_apply(p, st.tree, sender, &up, &st.gc, NULL, 0, cs, NULL),
            TSR_EVERIFY);
  ((uint8_t *)up.leaf_node.signature.ptr)[3] ^= 1;
  /* Excluding our own leaf as if newly added: ciphertext count mismatch. */
  CHECK_ERR(treekem_apply(p, st.tree, sender, &up, &st.gc, &recv, 1, cs, NULL),
            TSR_EPROTOCOL);
  /* The sender cannot process its own path. */
  CHECK_ERR(
      treekem_apply(st.priv[sender], st.tree, sender, &up, &st.gc, NULL, 0, cs, NULL),
      TSR_EINVAL);
  tk_snapshot(st.tree, p, &after);
  CHECK_BYTES(buf_view(&after), buf_view(&before));
  /* And the untampered path still applies. */
  CHECK_OK(treekem_apply(p, st.tree, sender, &up, &st.gc, NULL, 0, cs, NULL));
out:
  arena_free(&a);
  buf_free(&raw);
  buf_free_secret(&before);
  buf_free_secret(&after);
  tk_state_free(&st);
  cJSON_Delete(json);
}

/* A leaf added in the same commit is excluded from the resolutions (no
 * ciphertext for it), the others still decrypt, and the new member joins
 * from the Welcome path secret. */
static void test_excluded_leaves(void) {
  tk_state st;
  cJSON *json = NULL;
  const cJSON *e = NULL;
  int rc = tk_load_first(&st, &json, &e);
  if (rc == TSR_ENOTFOUND && !json) TEST_SKIP("treekem.json not found");
  CHECK_OK(rc);
  if (rc) goto out0;
  uint32_t sender = 0;
  while (sender < st.n_leaves && !st.priv[sender]) sender++;
  mls_tree *t = NULL;
  mls_tree_priv *p = NULL, *pn = NULL;
  arena_t a;
  arena_init(&a);
  buf_t gc;
  buf_init(&gc);
  CHECK_OK(tree_clone(st.tree, &t));
  CHECK_OK(treekem_priv_clone(st.priv[sender], &p));
  if (test_failing()) goto out;

  /* The Add: a copy of the sender's leaf with fresh keys. */
  uint8_t nsk[MLS_KEM_SK], npk[MLS_KEM_PK], ikm[4] = {1, 2, 3, 4};
  mls_sig_key nsig;
  CHECK_OK(crypto_sig_generate(&nsig));
  CHECK_OK(mls_kem_derive_keypair(st.s, BYTES(ikm, sizeof ikm), nsk, npk));
  mls_leaf_node nl = *tree_leaf(st.tree, sender);
  nl.encryption_key = BYTES(npk, MLS_KEM_PK);
  nl.signature_key = BYTES(nsig.pk, MLS_SIG_PK);
  nl.leaf_node_source = MLS_LEAF_SOURCE_KEY_PACKAGE;
  uint32_t added = TREE_NONE;
  CHECK_OK(tree_add_leaf(t, &nl, &added));
  mls_tree *t0 = NULL; /* the receivers' view: proposals applied */
  CHECK_OK(tree_clone(t, &t0));
  if (test_failing()) goto out;

  treekem_leaf_params lp = {tree_leaf(st.tree, sender), &st.sig[sender],
                            buf_view(&st.group_id), BYTES_NONE};
  mls_update_path up, up_all;
  uint8_t cs[MLS_MAX_HASH], cs2[MLS_MAX_HASH], ps[MLS_MAX_HASH];
  CHECK_OK(treekem_path_create(p, t, &lp, &st.gc, &added, 1, &a, &up, cs));
  /* Same keys without the exclusion: exactly one more ciphertext. */
  CHECK_OK(tk_gc_encode(&st, t, &gc));
  CHECK_OK(treekem_path_encrypt(p, t, buf_view(&gc), NULL, 0, &a, &up_all, cs2));
  CHECK_BYTES(BYTES(cs, st.s->hash_len), BYTES(cs2, st.s->hash_len));
  size_t n1 = 0, n2 = 0;
  for (size_t i = 0; i < up.n_nodes; i++) n1 += up.nodes[i].n_encrypted_path_secret;
  for (size_t i = 0; i < up_all.n_nodes; i++)
    n2 += up_all.nodes[i].n_encrypted_path_secret;
  CHECK_INT(n1 + 1, n2);
  for (uint32_t j = 0; j < st.n_leaves && !test_failing(); j++) {
    if (j == sender || !st.priv[j] || tree_leaf_is_blank(st.tree, j)) continue;
    mls_tree *tj = NULL;
    mls_tree_priv *pj = NULL;
    CHECK_OK(tree_clone(t0, &tj));
    CHECK_OK(treekem_priv_clone(st.priv[j], &pj));
    uint8_t csj[MLS_MAX_HASH];
    CHECK_OK(treekem_apply(pj, tj, sender, &up, &st.gc, &added, 1, csj, NULL));
    CHECK_BYTES(BYTES(csj, st.s->hash_len), BYTES(cs, st.s->hash_len));
    /* Without the exclusion the ciphertext counts do not match. */
    treekem_priv_free(pj);
    CHECK_OK(treekem_priv_clone(st.priv[j], &pj));
    tree_free(tj);
    CHECK_OK(tree_clone(t0, &tj));
    rc = treekem_apply(pj, tj, sender, &up, &st.gc, NULL, 0, csj, NULL);
    uint32_t lca_j = tm_common_ancestor(tm_leaf_to_node(j), tm_leaf_to_node(sender));
    uint32_t lca_a = tm_common_ancestor(tm_leaf_to_node(added), tm_leaf_to_node(sender));
    CHECK_INT(rc, lca_j == lca_a ? TSR_EPROTOCOL : 0); /* same copath node or not */
    treekem_priv_free(pj);
    tree_free(tj);
  }
  /* The joiner: leaf key + GroupSecrets.path_secret on the new tree. */
  CHECK_OK(treekem_path_secret_for(p, t, added, ps));
  CHECK_OK(treekem_priv_new(st.s, added, BYTES(nsk, MLS_KEM_SK), &pn));
  if (pn) {
    CHECK_OK(treekem_priv_join(pn, t, sender, BYTES(ps, st.s->hash_len)));
    CHECK_OK(treekem_priv_check(pn, t));
    /* A wrong path secret is refused and changes nothing. */
    ps[0] ^= 1;
    mls_tree_priv *pn2 = NULL;
    CHECK_OK(treekem_priv_new(st.s, added, BYTES(nsk, MLS_KEM_SK), &pn2));
    if (pn2)
      CHECK_ERR(treekem_priv_join(pn2, t, sender, BYTES(ps, st.s->hash_len)), TSR_ETREE);
    treekem_priv_free(pn2);
  }
  crypto_sig_wipe(&nsig);
  secure_wipe(nsk, sizeof nsk);
  tree_free(t0);
out:
  buf_free(&gc);
  arena_free(&a);
  treekem_priv_free(p);
  treekem_priv_free(pn);
  tree_free(t);
out0:
  tk_state_free(&st);
  cJSON_Delete(json);
}

/* serialize -> restore -> serialize is stable, and the restored state
 * works; malformed encodings are refused. */
static void test_persist(void) {
  tk_state st;
  cJSON *json = NULL;
  const cJSON *e = NULL;
  int rc = tk_load_first(&st, &json, &e);
  if (rc == TSR_ENOTFOUND && !json) TEST_SKIP("treekem.json not found");
  CHECK_OK(rc);
  if (rc) goto out;
  for (uint32_t j = 0; j < st.n_leaves; j++) {
    if (!st.priv[j]) continue;
    buf_t w1, w2;
    buf_init(&w1);
    buf_init(&w2);
    treekem_priv_serialize(st.priv[j], &w1);
    CHECK_OK(w1.err);
    mls_tree_priv *r = NULL;
    CHECK_OK(treekem_priv_restore(buf_view(&w1), &r));
    if (r) {
      treekem_priv_serialize(r, &w2);
      CHECK_BYTES(buf_view(&w2), buf_view(&w1));
      CHECK_OK(treekem_priv_check(r, st.tree));
      CHECK_INT(treekem_priv_leaf(r), j);
    }
    treekem_priv_free(r);
    /* Truncations and trailing garbage. */
    for (size_t cut = 0; cut < w1.len; cut += 7) {
      CHECK(treekem_priv_restore(BYTES(w1.ptr, cut), &r) < 0);
      CHECK(r == NULL);
    }
    buf_append(&w1, "x", 1);
    CHECK_ERR(treekem_priv_restore(buf_view(&w1), &r), TSR_EDECODE);
    w1.ptr[0] = 9;
    CHECK_ERR(treekem_priv_restore(buf_view(&w1), &r), TSR_EUNSUPPORTED);
    buf_free_secret(&w1);
    buf_free_secret(&w2);
  }
  /* A pending path survives persistence too. */
  uint32_t sender = 0;
  while (!st.priv[sender]) sender++;
  mls_tree *t = NULL;
  mls_tree_priv *p = NULL, *r = NULL;
  CHECK_OK(tree_clone(st.tree, &t));
  CHECK_OK(treekem_priv_clone(st.priv[sender], &p));
  treekem_leaf_params lp = {tree_leaf(st.tree, sender), &st.sig[sender],
                            buf_view(&st.group_id), BYTES_NONE};
  CHECK_OK(treekem_path_begin(p, t, &lp));
  buf_t w;
  buf_init(&w);
  treekem_priv_serialize(p, &w);
  CHECK_OK(treekem_priv_restore(buf_view(&w), &r));
  uint32_t other = sender + 1;
  while (other < st.n_leaves && tree_leaf_is_blank(t, other)) other++;
  uint8_t a1[MLS_MAX_HASH], a2[MLS_MAX_HASH];
  if (r && other < st.n_leaves) {
    CHECK_OK(treekem_path_secret_for(p, t, other, a1));
    CHECK_OK(treekem_path_secret_for(r, t, other, a2));
    CHECK_BYTES(BYTES(a1, st.s->hash_len), BYTES(a2, st.s->hash_len));
  }
  buf_free_secret(&w);
  treekem_priv_free(r);
  treekem_priv_free(p);
  tree_free(t);
out:
  tk_state_free(&st);
  cJSON_Delete(json);
}

/* --- A 1024-member group: cost of one commit with a path ----------------- */

static double tk_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_large_group(void) {
  enum { N = 1024 };
  const mls_suite *s = mls_suite_get(MLS_SUITE_X25519_AES128GCM_SHA256_ED25519);
  mls_tree *t = NULL;
  CHECK_OK(tree_new(s, &t));
  mls_sig_key *sig = calloc(N, sizeof *sig);
  uint8_t(*esk)[MLS_KEM_SK] = calloc(N, MLS_KEM_SK);
  CHECK(sig && esk && t);
  if (test_failing()) goto out;
  const uint8_t group_id[] = "large group";
  uint16_t versions[] = {MLS_VERSION_10};
  uint16_t suites[] = {s->id};
  uint16_t creds[] = {MLS_CREDENTIAL_BASIC};
  for (uint32_t i = 0; i < N && !test_failing(); i++) {
    uint8_t epk[MLS_KEM_PK], ikm[8] = {0};
    memcpy(ikm, &i, sizeof i);
    char name[16];
    snprintf(name, sizeof name, "m%u", i);
    CHECK_OK(crypto_sig_generate(&sig[i]));
    CHECK_OK(mls_kem_derive_keypair(s, BYTES(ikm, sizeof ikm), esk[i], epk));
    mls_leaf_node ln = {
        .encryption_key = BYTES(epk, MLS_KEM_PK),
        .signature_key = BYTES(sig[i].pk, MLS_SIG_PK),
        .credential = {.credential_type = MLS_CREDENTIAL_BASIC,
                       .identity = BYTES(name, strlen(name))},
        .capabilities = {.versions = versions,
                         .n_versions = 1,
                         .cipher_suites = suites,
                         .n_cipher_suites = 1,
                         .credentials = creds,
                         .n_credentials = 1},
        .leaf_node_source = MLS_LEAF_SOURCE_KEY_PACKAGE,
        .lifetime = {0, UINT64_MAX},
    };
    uint32_t at = 0;
    CHECK_OK(tree_add_leaf(t, &ln, &at));
    CHECK_INT(at, i);
  }
  /* Populate every parent node, as a long-lived group's tree would be,
   * from per-node secrets; members N-1 and 0 get their path keys. */
  mls_tree_priv *p0 = NULL, *p1 = NULL;
  CHECK_OK(treekem_priv_new(s, 0, BYTES(esk[0], MLS_KEM_SK), &p0));
  CHECK_OK(treekem_priv_new(s, N - 1, BYTES(esk[N - 1], MLS_KEM_SK), &p1));
  for (uint32_t x = 1; x < 2 * N - 1 && !test_failing(); x += 2) {
    uint8_t ps[MLS_MAX_HASH] = {0}, ns[MLS_MAX_HASH], sk[MLS_KEM_SK], pk[MLS_KEM_PK];
    memcpy(ps, &x, sizeof x);
    CHECK_OK(mls_derive_secret(s, BYTES(ps, s->hash_len), "node", ns));
    CHECK_OK(mls_kem_derive_keypair(s, BYTES(ns, s->hash_len), sk, pk));
    mls_parent_node pn = {.encryption_key = BYTES(pk, MLS_KEM_PK)};
    CHECK_OK(tree_set_parent(t, x, &pn));
    if (tm_is_ancestor(x, 0))
      CHECK_OK(treekem_priv_install(p0, t, x, BYTES(ps, s->hash_len)));
    if (tm_is_ancestor(x, 2 * (N - 1)))
      CHECK_OK(treekem_priv_install(p1, t, x, BYTES(ps, s->hash_len)));
  }
  mls_group_context gc = {.version = MLS_VERSION_10,
                          .cipher_suite = s->id,
                          .group_id = BYTES(group_id, sizeof group_id - 1),
                          .epoch = 1};
  arena_t a, ta;
  arena_init(&a);
  arena_init(&ta);
  mls_update_path up;
  mls_tree *recv = NULL;
  uint8_t cs[MLS_MAX_HASH], cs1[MLS_MAX_HASH];
  mls_leaf_node tmpl0, tmpl1;
  CHECK_OK(msg_copy_leaf_node(&ta, tree_leaf(t, 0), &tmpl0));
  CHECK_OK(msg_copy_leaf_node(&ta, tree_leaf(t, N - 1), &tmpl1));
  CHECK_OK(tree_clone(t, &recv));
  if (test_failing()) goto out2;
  treekem_leaf_params lp0 = {&tmpl0, &sig[0], gc.group_id, BYTES_NONE};
  treekem_leaf_params lp1 = {&tmpl1, &sig[N - 1], gc.group_id, BYTES_NONE};
  uint8_t h0[MLS_MAX_HASH], h1[MLS_MAX_HASH];
  /* Warm the tree-hash caches as a live group state would have them. */
  CHECK(tk_root(t, h0).len && tk_root(recv, h1).len);

  double t0 = tk_now();
  CHECK_OK(treekem_path_create(p0, t, &lp0, &gc, NULL, 0, &a, &up, cs));
  double t1 = tk_now();
  CHECK_OK(treekem_apply(p1, recv, 0, &up, &gc, NULL, 0, cs1, NULL));
  double t2 = tk_now();
  CHECK_BYTES(BYTES(cs1, s->hash_len), BYTES(cs, s->hash_len));
  size_t enc = 0;
  for (size_t i = 0; i < up.n_nodes; i++) enc += up.nodes[i].n_encrypted_path_secret;
  CHECK_INT(up.n_nodes, 10);
  CHECK_INT(enc, 10);
  treekem_priv_forget_path(p0);
  arena_free(&a);

  /* And back from the other side. */
  gc.epoch++;
  double t3 = tk_now();
  CHECK_OK(treekem_path_create(p1, recv, &lp1, &gc, NULL, 0, &a, &up, cs1));
  double t4 = tk_now();
  CHECK_OK(treekem_apply(p0, t, N - 1, &up, &gc, NULL, 0, cs, NULL));
  double t5 = tk_now();
  CHECK_BYTES(BYTES(cs1, s->hash_len), BYTES(cs, s->hash_len));
  enc = 0;
  for (size_t i = 0; i < up.n_nodes; i++) enc += up.nodes[i].n_encrypted_path_secret;
  CHECK_INT(enc, 10);
  CHECK_BYTES(tk_root(t, h0), tk_root(recv, h1));
  CHECK_OK(treekem_priv_check(p0, t));
  CHECK_OK(treekem_priv_check(p1, recv));
  printf("treekem %d members: commit 0 create %.2f ms apply %.2f ms; "
         "commit %d create %.2f ms apply %.2f ms (%zu HPKE each)\n",
         N, (t1 - t0) * 1e3, (t2 - t1) * 1e3, N - 1, (t4 - t3) * 1e3, (t5 - t4) * 1e3,
         enc);
out2:
  arena_free(&a);
  arena_free(&ta);
  tree_free(recv);
  treekem_priv_free(p0);
  treekem_priv_free(p1);
out:
  for (uint32_t i = 0; sig && i < N; i++) crypto_sig_wipe(&sig[i]);
  free(sig);
  if (esk) secure_wipe(esk, (size_t)N * MLS_KEM_SK);
  free(esk);
  tree_free(t);
}

int main(void) {
  if (crypto_init() != 0) return 1;
  RUN(test_vectors_suite1);
  RUN(test_vectors_suite3);
  RUN(test_tamper_rollback);
  RUN(test_excluded_leaves);
  RUN(test_persist);
  RUN(test_large_group);
  return test_report("treekem");
}
