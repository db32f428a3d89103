/* TreeKEM: private ratchet-tree state and UpdatePaths (RFC 9420 §7.4-7.6).
 * See treekem.h for the API contract. */
#include "mls/treekem.h"

#include <stdlib.h>
#include <string.h>

#include "mls/codec.h"
#include "mls/treemath.h"
#include "tessera/error.h"

#define TREEKEM_LABEL "UpdatePathNode"
#define TREEKEM_PRIV_VERSION 1

typedef struct {
  uint32_t node;
  uint8_t sk[MLS_KEM_SK];
  uint8_t pk[MLS_KEM_PK];
} treekem_key;

struct mls_tree_priv {
  const mls_suite *suite;
  uint32_t leaf;
  uint8_t leaf_sk[MLS_KEM_SK];
  uint8_t leaf_pk[MLS_KEM_PK];
  size_t n_keys;
  treekem_key keys[TREE_MAX_DEPTH];
  /* Our own pending UpdatePath (treekem_path_begin .. forget_path). */
  bool pending;
  size_t n_pending;
  uint32_t pending_nodes[TREE_MAX_DEPTH];
  uint8_t pending_secrets[TREE_MAX_DEPTH][MLS_MAX_HASH];
  uint8_t commit_secret[MLS_MAX_HASH];
};

/* --- Secret derivation (§7.4) ------------------------------------------ */

static int treekem_next_secret(const mls_suite *s, const uint8_t *in, uint8_t *out) {
  return mls_derive_secret(s, BYTES(in, s->hash_len), "path", out);
}

/* node_secret = DeriveSecret(path_secret, "node"); key pair from it. */
static int treekem_node_keypair(const mls_suite *s, const uint8_t *path_secret,
                                uint8_t sk[MLS_KEM_SK], uint8_t pk[MLS_KEM_PK]) {
  uint8_t node_secret[MLS_MAX_HASH];
  int rc = mls_derive_secret(s, BYTES(path_secret, s->hash_len), "node", node_secret);
  if (rc == 0) rc = mls_kem_derive_keypair(s, BYTES(node_secret, s->hash_len), sk, pk);
  secure_wipe(node_secret, sizeof node_secret);
  return rc;
}

/* --- Tree access helpers ----------------------------------------------- */

/* Public key the tree holds at node (leaf or parent); empty if blank. */
static bytes_t treekem_tree_key(const mls_tree *t, uint32_t node) {
  if (tm_is_leaf(node)) {
    const mls_leaf_node *l = tree_leaf(t, tm_node_to_leaf(node));
    return l ? l->encryption_key : BYTES_NONE;
  }
  const mls_parent_node *pn = tree_parent(t, node);
  return pn ? pn->encryption_key : BYTES_NONE;
}

static bool treekem_key_is(bytes_t tree_key, const uint8_t pk[MLS_KEM_PK]) {
  return tree_key.len == MLS_KEM_PK && memcmp(tree_key.ptr, pk, MLS_KEM_PK) == 0;
}

static int treekem_cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return (x > y) - (x < y);
}

/* Excluded leaves as a sorted array of node indices, so filtering a
 * resolution costs O(r log e) rather than O(r e). *out is NULL for e = 0. */
static int treekem_excluded_nodes(const uint32_t *excluded, size_t n, uint32_t **out) {
  *out = NULL;
  if (n == 0) return 0;
  if (!excluded) return TSR_EINVAL;
  uint32_t *v = malloc(n * sizeof *v);
  if (!v) return TSR_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    if (excluded[i] >= TM_MAX_LEAVES) {
      free(v);
      return TSR_EINVAL;
    }
    v[i] = tm_leaf_to_node(excluded[i]);
  }
  qsort(v, n, sizeof *v, treekem_cmp_u32);
  *out = v;
  return 0;
}

/* Resolution of node minus the excluded leaves, into res (tree_width
 * entries). */
static int treekem_resolution(const mls_tree *t, uint32_t node, const uint32_t *excl,
                              size_t n_excl, uint32_t *res, size_t cap, size_t *n) {
  size_t m = 0;
  int rc = tree_resolution(t, node, res, cap, &m);
  if (rc) return rc;
  size_t k = 0;
  for (size_t i = 0; i < m; i++) {
    if (n_excl && bsearch(&res[i], excl, n_excl, sizeof *excl, treekem_cmp_u32)) continue;
    res[k++] = res[i];
  }
  *n = k;
  return 0;
}

/* --- Undo log: the nodes a path touches (leaf + direct path) ----------- */

/* Saved copies let a failed merge/begin put the tree back in O(log n)
 * instead of cloning the whole tree up front. */
typedef struct {
  arena_t a;
  size_t n;
  uint32_t node[TREE_MAX_DEPTH + 1];
  uint8_t type[TREE_MAX_DEPTH + 1];
  mls_leaf_node leaf[TREE_MAX_DEPTH + 1];
  mls_parent_node parent[TREE_MAX_DEPTH + 1];
} treekem_undo;

static int treekem_undo_save(treekem_undo *u, const mls_tree *t, uint32_t leaf) {
  arena_init(&u->a);
  u->n = 0;
  uint32_t dp[TM_MAX_PATH];
  int nd = tm_direct_path(tm_leaf_to_node(leaf), tree_n_leaves(t), dp);
  if (nd < 0) return nd;
  uint32_t nodes[TREE_MAX_DEPTH + 1];
  nodes[0] = tm_leaf_to_node(leaf);
  memcpy(nodes + 1, dp, (size_t)nd * sizeof *dp);
  for (size_t i = 0; i < (size_t)nd + 1; i++) {
    uint32_t x = nodes[i];
    u->node[i] = x;
    u->type[i] = tree_node_type(t, x);
    int rc = 0;
    if (u->type[i] == MLS_NODE_LEAF)
      rc = msg_copy_leaf_node(&u->a, tree_leaf(t, tm_node_to_leaf(x)), &u->leaf[i]);
    else if (u->type[i] == MLS_NODE_PARENT)
      rc = msg_copy_parent_node(&u->a, tree_parent(t, x), &u->parent[i]);
    if (rc) {
      arena_free(&u->a);
      return rc;
    }
    u->n = i + 1;
  }
  return 0;
}

static int treekem_undo_restore(treekem_undo *u, mls_tree *t) {
  int err = 0;
  for (size_t i = u->n; i-- > 0;) {
    int rc;
    if (u->type[i] == MLS_NODE_LEAF)
      rc = tree_set_leaf(t, tm_node_to_leaf(u->node[i]), &u->leaf[i]);
    else if (u->type[i] == MLS_NODE_PARENT)
      rc = tree_set_parent(t, u->node[i], &u->parent[i]);
    else
      rc = tree_blank_node(t, u->node[i]);
    if (rc && !err) err = rc;
  }
  return err;
}

static void treekem_undo_free(treekem_undo *u) { arena_free(&u->a); }

/* --- Private state ------------------------------------------------------ */

static void treekem_priv_wipe(mls_tree_priv *p) { secure_wipe(p, sizeof *p); }

/* Replace or add the key for node. */
static int treekem_keys_put(mls_tree_priv *p, uint32_t node, const uint8_t *sk,
                            const uint8_t *pk) {
  size_t i = 0;
  while (i < p->n_keys && p->keys[i].node != node) i++;
  if (i == p->n_keys) {
    if (p->n_keys == TREE_MAX_DEPTH) return TSR_ELIMIT;
    p->n_keys++;
  }
  p->keys[i].node = node;
  memcpy(p->keys[i].sk, sk, MLS_KEM_SK);
  memcpy(p->keys[i].pk, pk, MLS_KEM_PK);
  return 0;
}

static void treekem_keys_drop(mls_tree_priv *p, size_t i) {
  p->keys[i] = p->keys[p->n_keys - 1];
  secure_wipe(&p->keys[p->n_keys - 1], sizeof p->keys[0]);
  p->n_keys--;
}

/* Drop every key on the direct path of `leaf` (those nodes were replaced
 * or blanked by that leaf's UpdatePath). */
static void treekem_keys_drop_path_of(mls_tree_priv *p, uint32_t leaf) {
  uint32_t x = tm_leaf_to_node(leaf);
  for (size_t i = p->n_keys; i-- > 0;)
    if (p->keys[i].node != x && tm_is_ancestor(p->keys[i].node, x))
      treekem_keys_drop(p, i);
}

static void treekem_pending_clear(mls_tree_priv *p) {
  secure_wipe(p->pending_secrets, sizeof p->pending_secrets);
  secure_wipe(p->commit_secret, sizeof p->commit_secret);
  p->pending = false;
  p->n_pending = 0;
}

/* Private key usable for node: held, and its public key is the tree's. */
static const uint8_t *treekem_usable_key(const mls_tree_priv *p, const mls_tree *t,
                                         uint32_t node) {
  bytes_t tk = treekem_tree_key(t, node);
  if (node == tm_leaf_to_node(p->leaf))
    return treekem_key_is(tk, p->leaf_pk) ? p->leaf_sk : NULL;
  for (size_t i = 0; i < p->n_keys; i++)
    if (p->keys[i].node == node)
      return treekem_key_is(tk, p->keys[i].pk) ? p->keys[i].sk : NULL;
  return NULL;
}

int treekem_priv_new(const mls_suite *suite, uint32_t leaf, bytes_t leaf_sk,
                     mls_tree_priv **out) {
  *out = NULL;
  if (!suite || leaf >= TM_MAX_LEAVES || leaf_sk.len != MLS_KEM_SK) return TSR_EINVAL;
  mls_tree_priv *p = calloc(1, sizeof *p);
  if (!p) return TSR_ENOMEM;
  p->suite = suite;
  p->leaf = leaf;
  memcpy(p->leaf_sk, leaf_sk.ptr, MLS_KEM_SK);
  int rc = crypto_dh_public(p->leaf_sk, p->leaf_pk);
  if (rc) {
    treekem_priv_free(p);
    return rc;
  }
  *out = p;
  return 0;
}

int treekem_priv_clone(const mls_tree_priv *p, mls_tree_priv **out) {
  *out = NULL;
  mls_tree_priv *c = malloc(sizeof *c);
  if (!c) return TSR_ENOMEM;
  memcpy(c, p, sizeof *c);
  *out = c;
  return 0;
}

void treekem_priv_free(mls_tree_priv *p) {
  if (!p) return;
  treekem_priv_wipe(p);
  free(p);
}

uint32_t treekem_priv_leaf(const mls_tree_priv *p) { return p->leaf; }

int treekem_priv_set_leaf_key(mls_tree_priv *p, bytes_t leaf_sk) {
  if (leaf_sk.len != MLS_KEM_SK) return TSR_EINVAL;
  uint8_t sk[MLS_KEM_SK], pk[MLS_KEM_PK];
  memcpy(sk, leaf_sk.ptr, MLS_KEM_SK);
  int rc = crypto_dh_public(sk, pk);
  if (rc == 0) {
    memcpy(p->leaf_sk, sk, MLS_KEM_SK);
    memcpy(p->leaf_pk, pk, MLS_KEM_PK);
  }
  secure_wipe(sk, sizeof sk);
  return rc;
}

int treekem_priv_node_key(const mls_tree_priv *p, uint32_t node, uint8_t sk[MLS_KEM_SK]) {
  if (node == tm_leaf_to_node(p->leaf)) {
    memcpy(sk, p->leaf_sk, MLS_KEM_SK);
    return 0;
  }
  for (size_t i = 0; i < p->n_keys; i++)
    if (p->keys[i].node == node) {
      memcpy(sk, p->keys[i].sk, MLS_KEM_SK);
      return 0;
    }
  return TSR_ENOTFOUND;
}

/* Derive the key pair of `node` from its path secret, check it against
 * the tree and store it in p. */
static int treekem_install_one(mls_tree_priv *p, const mls_tree *t, uint32_t node,
                               const uint8_t *path_secret) {
  uint8_t sk[MLS_KEM_SK], pk[MLS_KEM_PK];
  int rc = treekem_node_keypair(p->suite, path_secret, sk, pk);
  if (rc == 0 && !treekem_key_is(treekem_tree_key(t, node), pk)) rc = TSR_ETREE;
  if (rc == 0) rc = treekem_keys_put(p, node, sk, pk);
  secure_wipe(sk, sizeof sk);
  return rc;
}

int treekem_priv_install(mls_tree_priv *p, const mls_tree *t, uint32_t node,
                         bytes_t path_secret) {
  uint32_t me = tm_leaf_to_node(p->leaf);
  if (tree_suite(t) != p->suite || path_secret.len != p->suite->hash_len ||
      tm_is_leaf(node) || !tm_is_ancestor(node, me) || node >= tree_width(t))
    return TSR_EINVAL;
  return treekem_install_one(p, t, node, path_secret.ptr);
}

int treekem_priv_join(mls_tree_priv *p, const mls_tree *t, uint32_t sender,
                      bytes_t path_secret) {
  const mls_suite *s = p->suite;
  if (tree_suite(t) != s || path_secret.len != s->hash_len || sender == p->leaf ||
      sender >= tree_n_leaves(t) || p->leaf >= tree_n_leaves(t))
    return TSR_EINVAL;
  uint32_t fdp[TREE_MAX_DEPTH];
  size_t n = 0;
  int rc = tree_filtered_direct_path(t, sender, fdp, NULL, &n);
  if (rc) return rc;
  uint32_t lca = tm_common_ancestor(tm_leaf_to_node(p->leaf), tm_leaf_to_node(sender));
  size_t i = 0;
  while (i < n && fdp[i] != lca) i++;
  if (i == n) return TSR_EPROTOCOL;

  /* Work on a copy so a key mismatch half-way leaves p untouched. */
  mls_tree_priv *st = malloc(sizeof *st);
  if (!st) return TSR_ENOMEM;
  memcpy(st, p, sizeof *st);
  uint8_t secret[MLS_MAX_HASH];
  memcpy(secret, path_secret.ptr, s->hash_len);
  for (; rc == 0 && i < n; i++) {
    rc = treekem_install_one(st, t, fdp[i], secret);
    if (rc == 0) rc = treekem_next_secret(s, secret, secret);
  }
  if (rc == 0) memcpy(p, st, sizeof *p);
  secure_wipe(secret, sizeof secret);
  treekem_priv_free(st);
  return rc;
}

int treekem_priv_check(const mls_tree_priv *p, const mls_tree *t) {
  if (tree_suite(t) != p->suite) return TSR_EINVAL;
  if (!treekem_key_is(treekem_tree_key(t, tm_leaf_to_node(p->leaf)), p->leaf_pk))
    return TSR_ETREE;
  for (size_t i = 0; i < p->n_keys; i++)
    if (!treekem_key_is(treekem_tree_key(t, p->keys[i].node), p->keys[i].pk))
      return TSR_ETREE;
  return 0;
}

void treekem_priv_prune(mls_tree_priv *p, const mls_tree *t) {
  for (size_t i = p->n_keys; i-- > 0;)
    if (!treekem_key_is(treekem_tree_key(t, p->keys[i].node), p->keys[i].pk))
      treekem_keys_drop(p, i);
}

void treekem_priv_forget_path(mls_tree_priv *p) { treekem_pending_clear(p); }

/* Layout (version 1):
 *   u8 version, u16 suite, u32 leaf, opaque leaf_sk<V>,
 *   struct { u32 node; opaque sk<V>; } keys<V>,
 *   optional<struct { u32 nodes<V>; opaque secrets<V>; opaque commit<V>; }>
 * Public keys are recomputed on restore. */
void treekem_priv_serialize(const mls_tree_priv *p, buf_t *w) {
  wr_u8(w, TREEKEM_PRIV_VERSION);
  wr_u16(w, p->suite->id);
  wr_u32(w, p->leaf);
  wr_opaque(w, BYTES(p->leaf_sk, MLS_KEM_SK));
  size_t m = wr_vec_begin(w);
  for (size_t i = 0; i < p->n_keys; i++) {
    wr_u32(w, p->keys[i].node);
    wr_opaque(w, BYTES(p->keys[i].sk, MLS_KEM_SK));
  }
  wr_vec_end(w, m);
  wr_optional(w, p->pending);
  if (p->pending) {
    m = wr_vec_begin(w);
    for (size_t i = 0; i < p->n_pending; i++) wr_u32(w, p->pending_nodes[i]);
    wr_vec_end(w, m);
    m = wr_vec_begin(w);
    for (size_t i = 0; i < p->n_pending; i++)
      wr_opaque(w, BYTES(p->pending_secrets[i], p->suite->hash_len));
    wr_vec_end(w, m);
    wr_opaque(w, BYTES(p->commit_secret, p->suite->hash_len));
  }
}

int treekem_priv_restore(bytes_t in, mls_tree_priv **out) {
  *out = NULL;
  reader_t r, sub;
  rd_init(&r, in);
  uint8_t version = 0;
  uint16_t suite_id = 0;
  uint32_t leaf = 0;
  bytes_t sk;
  rd_u8(&r, &version);
  rd_u16(&r, &suite_id);
  rd_u32(&r, &leaf);
  if (rd_opaque(&r, &sk)) return TSR_EDECODE;
  if (version != TREEKEM_PRIV_VERSION) return TSR_EUNSUPPORTED;
  const mls_suite *s = mls_suite_get(suite_id);
  if (!s) return TSR_EUNSUPPORTED;
  if (sk.len != MLS_KEM_SK || leaf >= TM_MAX_LEAVES) return TSR_EDECODE;
  mls_tree_priv *p = NULL;
  int rc = treekem_priv_new(s, leaf, sk, &p);
  if (rc) return rc;

  rc = rd_vec(&r, &sub);
  while (rc == 0 && rd_more(&sub)) {
    uint32_t node = 0;
    bytes_t ksk;
    rd_u32(&sub, &node);
    rc = rd_opaque(&sub, &ksk);
    if (rc) break;
    uint8_t pk[MLS_KEM_PK];
    bool dup = false;
    for (size_t i = 0; i < p->n_keys; i++) dup |= p->keys[i].node == node;
    /* Only parent nodes above our leaf, each at most once. */
    if (ksk.len != MLS_KEM_SK || tm_is_leaf(node) ||
        !tm_is_ancestor(node, tm_leaf_to_node(leaf)) || dup) {
      rc = TSR_EDECODE;
      break;
    }
    uint8_t tmp[MLS_KEM_SK];
    memcpy(tmp, ksk.ptr, MLS_KEM_SK);
    rc = crypto_dh_public(tmp, pk);
    if (rc == 0) rc = treekem_keys_put(p, node, tmp, pk);
    secure_wipe(tmp, sizeof tmp);
    if (rc) rc = TSR_EDECODE;
  }
  bool pending = false;
  if (rc == 0) rc = rd_optional(&r, &pending);
  if (rc == 0 && pending) {
    p->pending = true;
    rc = rd_vec(&r, &sub);
    while (rc == 0 && rd_more(&sub)) {
      if (p->n_pending == TREE_MAX_DEPTH) {
        rc = TSR_EDECODE;
        break;
      }
      rc = rd_u32(&sub, &p->pending_nodes[p->n_pending++]);
    }
    size_t k = 0;
    if (rc == 0) rc = rd_vec(&r, &sub);
    while (rc == 0 && rd_more(&sub)) {
      bytes_t ps;
      rc = rd_opaque(&sub, &ps);
      if (rc == 0 && (ps.len != s->hash_len || k == p->n_pending)) rc = TSR_EDECODE;
      if (rc == 0) memcpy(p->pending_secrets[k++], ps.ptr, ps.len);
    }
    if (rc == 0 && k != p->n_pending) rc = TSR_EDECODE;
    bytes_t cs;
    if (rc == 0) rc = rd_opaque(&r, &cs);
    if (rc == 0 && cs.len != s->hash_len) rc = TSR_EDECODE;
    if (rc == 0) memcpy(p->commit_secret, cs.ptr, cs.len);
  }
  if (rc == 0) rc = rd_done(&r);
  if (rc) {
    treekem_priv_free(p);
    return rc == TSR_ENOMEM ? rc : TSR_EDECODE;
  }
  *out = p;
  return 0;
}

/* --- Creating an UpdatePath --------------------------------------------- */

/* Phase 1 with the undo log kept for the caller (treekem_path_create rolls
 * back after a later failure). On failure the tree is already restored. */
static int treekem_begin(mls_tree_priv *p, mls_tree *t, const treekem_leaf_params *lp,
                         treekem_undo *u) {
  const mls_suite *s = p->suite;
  if (!lp || !lp->leaf || !lp->sig || tree_suite(t) != s || p->leaf >= tree_n_leaves(t))
    return TSR_EINVAL;
  if (!bytes_eq(lp->leaf->signature_key, BYTES(lp->sig->pk, MLS_SIG_PK)))
    return TSR_EINVAL;
  if (lp->leaf_secret.len != 0 && lp->leaf_secret.len != s->hash_len) return TSR_EINVAL;

  uint32_t fdp[TREE_MAX_DEPTH];
  size_t n = 0;
  int rc = tree_filtered_direct_path(t, p->leaf, fdp, NULL, &n);
  if (rc) return rc;

  /* Stage the new private state; p changes only on success. */
  mls_tree_priv *st = malloc(sizeof *st);
  if (!st) return TSR_ENOMEM;
  memcpy(st, p, sizeof *st);
  treekem_pending_clear(st);

  /* Chain: c0 = leaf_secret, c(k+1) = DeriveSecret(ck, "path");
   * leaf key from c0, path_secret[j] = c(j+1), commit_secret = c(n+1). */
  uint8_t secret[MLS_MAX_HASH];
  uint8_t pks[TREE_MAX_DEPTH][MLS_KEM_PK];
  uint8_t sk[MLS_KEM_SK];
  if (lp->leaf_secret.len)
    memcpy(secret, lp->leaf_secret.ptr, s->hash_len);
  else
    rc = crypto_random(secret, s->hash_len);
  if (rc == 0) rc = treekem_node_keypair(s, secret, st->leaf_sk, st->leaf_pk);
  st->n_keys = 0; /* every node of our direct path is replaced or blanked */
  secure_wipe(st->keys, sizeof st->keys);
  for (size_t j = 0; rc == 0 && j < n; j++) {
    rc = treekem_next_secret(s, secret, secret);
    if (rc == 0) rc = treekem_node_keypair(s, secret, sk, pks[j]);
    if (rc == 0) rc = treekem_keys_put(st, fdp[j], sk, pks[j]);
    memcpy(st->pending_secrets[j], secret, s->hash_len);
    st->pending_nodes[j] = fdp[j];
  }
  if (rc == 0) rc = treekem_next_secret(s, secret, st->commit_secret);
  st->n_pending = n;
  st->pending = true;
  secure_wipe(secret, sizeof secret);
  secure_wipe(sk, sizeof sk);

  bool saved = false;
  if (rc == 0) rc = treekem_undo_save(u, t, p->leaf);
  if (rc == 0) {
    saved = true;
    rc = tree_blank_direct_path(t, p->leaf);
  }
  for (size_t j = 0; rc == 0 && j < n; j++) {
    mls_parent_node pn = {.encryption_key = BYTES(pks[j], MLS_KEM_PK)};
    rc = tree_set_parent(t, fdp[j], &pn);
  }
  uint8_t ph[MLS_MAX_HASH];
  size_t ph_len = 0;
  if (rc == 0) rc = tree_set_path_parent_hashes(t, p->leaf, ph, &ph_len);

  /* The new LeafNode: template fields plus what §7.5 step 4 prescribes.
   * The template is copied first: it may point into our own leaf in t,
   * which tree_set_leaf replaces. */
  mls_leaf_node leaf = {0};
  arena_t la;
  arena_init(&la);
  if (rc == 0) rc = msg_copy_leaf_node(&la, lp->leaf, &leaf);
  uint8_t sig[MLS_SIG_LEN];
  leaf.encryption_key = BYTES(st->leaf_pk, MLS_KEM_PK);
  leaf.leaf_node_source = MLS_LEAF_SOURCE_COMMIT;
  leaf.lifetime = (mls_lifetime){0, 0};
  leaf.parent_hash = BYTES(ph, ph_len);
  leaf.signature = BYTES_NONE;
  buf_t tbs;
  buf_init(&tbs);
  if (rc == 0) {
    msg_encode_leaf_node_tbs(&tbs, &leaf, lp->group_id, p->leaf);
    rc = tbs.err;
  }
  if (rc == 0) rc = mls_sign_with_label(s, lp->sig, "LeafNodeTBS", buf_view(&tbs), sig);
  buf_free(&tbs);
  leaf.signature = BYTES(sig, MLS_SIG_LEN);
  if (rc == 0) rc = tree_set_leaf(t, p->leaf, &leaf);
  arena_free(&la);

  if (rc == 0) {
    memcpy(p, st, sizeof *p);
  } else if (saved) {
    treekem_undo_restore(u, t);
    treekem_undo_free(u);
  }
  treekem_priv_free(st);
  return rc;
}

int treekem_path_begin(mls_tree_priv *p, mls_tree *t, const treekem_leaf_params *lp) {
  treekem_undo u;
  int rc = treekem_begin(p, t, lp, &u);
  if (rc == 0) treekem_undo_free(&u);
  return rc;
}

int treekem_path_encrypt(const mls_tree_priv *p, const mls_tree *t, bytes_t group_context,
                         const uint32_t *excluded, size_t n_excluded, arena_t *a,
                         mls_update_path *out, uint8_t commit_secret[MLS_MAX_HASH]) {
  const mls_suite *s = p->suite;
  memset(out, 0, sizeof *out);
  if (tree_suite(t) != s) return TSR_EINVAL;
  if (!p->pending) return TSR_ESTATE;
  uint32_t fdp[TREE_MAX_DEPTH], cop[TREE_MAX_DEPTH];
  size_t n = 0;
  int rc = tree_filtered_direct_path(t, p->leaf, fdp, cop, &n);
  if (rc) return rc;
  if (n != p->n_pending || memcmp(fdp, p->pending_nodes, n * sizeof *fdp) != 0)
    return TSR_ESTATE;
  const mls_leaf_node *leaf = tree_leaf(t, p->leaf);
  if (!leaf || !treekem_key_is(leaf->encryption_key, p->leaf_pk)) return TSR_ESTATE;

  uint32_t *excl = NULL;
  rc = treekem_excluded_nodes(excluded, n_excluded, &excl);
  if (rc) return rc;
  size_t cap = tree_width(t);
  uint32_t *res = malloc(cap * sizeof *res);
  buf_t ct;
  buf_init(&ct);
  mls_update_path up = {0};
  if (!res) rc = TSR_ENOMEM;
  if (rc == 0) rc = msg_copy_leaf_node(a, leaf, &up.leaf_node);
  if (rc == 0 && n) {
    up.nodes = arena_alloc(a, n * sizeof *up.nodes);
    if (!up.nodes) rc = TSR_ENOMEM;
  }
  up.n_nodes = n;
  for (size_t j = 0; rc == 0 && j < n; j++) {
    mls_update_path_node *un = &up.nodes[j];
    size_t nr = 0;
    rc = arena_dup(a, treekem_tree_key(t, fdp[j]), &un->encryption_key);
    if (rc == 0) rc = treekem_resolution(t, cop[j], excl, n_excluded, res, cap, &nr);
    if (rc == 0 && nr) {
      un->encrypted_path_secret = arena_alloc(a, nr * sizeof *un->encrypted_path_secret);
      if (!un->encrypted_path_secret) rc = TSR_ENOMEM;
    }
    un->n_encrypted_path_secret = nr;
    for (size_t k = 0; rc == 0 && k < nr; k++) {
      uint8_t kem[MLS_KEM_PK];
      mls_hpke_ciphertext *hc = &un->encrypted_path_secret[k];
      buf_reset(&ct);
      rc = mls_encrypt_with_label(s, treekem_tree_key(t, res[k]), TREEKEM_LABEL,
                                  group_context,
                                  BYTES(p->pending_secrets[j], s->hash_len), kem, &ct);
      if (rc == 0) rc = arena_dup(a, BYTES(kem, MLS_KEM_PK), &hc->kem_output);
      if (rc == 0) rc = arena_dup(a, buf_view(&ct), &hc->ciphertext);
    }
  }
  buf_free(&ct);
  free(res);
  free(excl);
  if (rc) return rc;
  *out = up;
  memcpy(commit_secret, p->commit_secret, s->hash_len);
  return 0;
}

int treekem_path_secret_for(const mls_tree_priv *p, const mls_tree *t, uint32_t joiner,
                            uint8_t out[MLS_MAX_HASH]) {
  if (!p->pending) return TSR_ESTATE;
  if (joiner == p->leaf || joiner >= tree_n_leaves(t)) return TSR_EINVAL;
  uint32_t lca = tm_common_ancestor(tm_leaf_to_node(p->leaf), tm_leaf_to_node(joiner));
  for (size_t i = 0; i < p->n_pending; i++)
    if (p->pending_nodes[i] == lca) {
      memcpy(out, p->pending_secrets[i], p->suite->hash_len);
      return 0;
    }
  return TSR_ENOTFOUND;
}

/* Encoded GroupContext: gc with tree_hash set to t's root hash. */
static int treekem_group_context(const mls_tree *t, const mls_group_context *gc,
                                 buf_t *w) {
  uint8_t th[MLS_MAX_HASH];
  int rc = tree_root_hash(t, th);
  if (rc) return rc;
  mls_group_context g = *gc;
  g.tree_hash = BYTES(th, tree_suite(t)->hash_len);
  msg_encode_group_context(w, &g);
  return w->err;
}

int treekem_path_create(mls_tree_priv *p, mls_tree *t, const treekem_leaf_params *lp,
                        const mls_group_context *gc, const uint32_t *excluded,
                        size_t n_excluded, arena_t *a, mls_update_path *out,
                        uint8_t commit_secret[MLS_MAX_HASH]) {
  mls_tree_priv *old = NULL;
  int rc = treekem_priv_clone(p, &old);
  if (rc) return rc;
  treekem_undo u;
  rc = treekem_begin(p, t, lp, &u);
  if (rc) {
    treekem_priv_free(old);
    return rc;
  }
  buf_t w;
  buf_init(&w);
  rc = treekem_group_context(t, gc, &w);
  if (rc == 0)
    rc = treekem_path_encrypt(p, t, buf_view(&w), excluded, n_excluded, a, out,
                              commit_secret);
  buf_free(&w);
  if (rc) {
    treekem_undo_restore(&u, t);
    memcpy(p, old, sizeof *p);
  }
  treekem_undo_free(&u);
  treekem_priv_free(old);
  return rc;
}

/* --- Applying an UpdatePath ---------------------------------------------- */

/* Checks that need no tree mutation (§12.4.2 "validate it"). */
static int treekem_check_path(const mls_tree *t, uint32_t sender,
                              const mls_update_path *path, bytes_t group_id,
                              size_t n_fdp) {
  const mls_suite *s = tree_suite(t);
  const mls_leaf_node *nl = &path->leaf_node;
  if (nl->leaf_node_source != MLS_LEAF_SOURCE_COMMIT) return TSR_EPROTOCOL;
  if (path->n_nodes != n_fdp) return TSR_EPROTOCOL;
  if (nl->encryption_key.len != MLS_KEM_PK) return TSR_EPROTOCOL;
  for (size_t i = 0; i < path->n_nodes; i++)
    if (path->nodes[i].encryption_key.len != MLS_KEM_PK) return TSR_EPROTOCOL;
  int rc = tree_verify_leaf_signature(s, nl, group_id, sender);
  if (rc) return rc;
  const mls_leaf_node *old = tree_leaf(t, sender);
  if (old && bytes_eq(old->encryption_key, nl->encryption_key)) return TSR_EPROTOCOL;
  rc = tree_check_new_leaf(t, nl, sender);
  if (rc) return rc;
  /* Path keys must be new to the tree and distinct from each other and
   * from the leaf key (tree_check_new_leaf covered the leaf key). The
   * tree is searched once for all of them. */
  bytes_t keys[TREE_MAX_DEPTH];
  for (size_t i = 0; i < path->n_nodes; i++) keys[i] = path->nodes[i].encryption_key;
  if (tree_find_encryption_keys(t, keys, path->n_nodes, NULL, NULL) == 0)
    return TSR_ETREE;
  for (size_t i = 0; i < path->n_nodes; i++) {
    bytes_t k = path->nodes[i].encryption_key;
    if (bytes_eq(k, nl->encryption_key)) return TSR_ETREE;
    for (size_t j = 0; j < i; j++)
      if (bytes_eq(k, path->nodes[j].encryption_key)) return TSR_ETREE;
  }
  return 0;
}

/* Merge keeping the undo log (u valid on success only). */
static int treekem_merge(mls_tree *t, uint32_t sender, const mls_update_path *path,
                         bytes_t group_id, treekem_undo *u) {
  if (!path || sender >= tree_n_leaves(t)) return TSR_EINVAL;
  uint32_t fdp[TREE_MAX_DEPTH];
  size_t n = 0;
  int rc = tree_filtered_direct_path(t, sender, fdp, NULL, &n);
  if (rc == 0) rc = treekem_check_path(t, sender, path, group_id, n);
  if (rc) return rc;

  rc = treekem_undo_save(u, t, sender);
  if (rc) return rc;
  rc = tree_blank_direct_path(t, sender);
  for (size_t i = 0; rc == 0 && i < n; i++) {
    mls_parent_node pn = {.encryption_key = path->nodes[i].encryption_key};
    rc = tree_set_parent(t, fdp[i], &pn);
  }
  uint8_t ph[MLS_MAX_HASH];
  size_t ph_len = 0;
  if (rc == 0) rc = tree_set_path_parent_hashes(t, sender, ph, &ph_len);
  if (rc == 0 && !bytes_eq(BYTES(ph, ph_len), path->leaf_node.parent_hash))
    rc = TSR_ETREE;
  if (rc == 0) rc = tree_set_leaf(t, sender, &path->leaf_node);
  if (rc) {
    treekem_undo_restore(u, t);
    treekem_undo_free(u);
  }
  return rc;
}

int treekem_merge_path(mls_tree *t, uint32_t sender, const mls_update_path *path,
                       bytes_t group_id) {
  treekem_undo u;
  int rc = treekem_merge(t, sender, path, group_id, &u);
  if (rc == 0) treekem_undo_free(&u);
  return rc;
}

int treekem_decrypt_path(mls_tree_priv *p, const mls_tree *t, uint32_t sender,
                         const mls_update_path *path, bytes_t group_context,
                         const uint32_t *excluded, size_t n_excluded,
                         uint8_t commit_secret[MLS_MAX_HASH],
                         uint8_t path_secret[MLS_MAX_HASH]) {
  const mls_suite *s = p->suite;
  if (!path || tree_suite(t) != s || sender == p->leaf || sender >= tree_n_leaves(t) ||
      p->leaf >= tree_n_leaves(t))
    return TSR_EINVAL;
  uint32_t fdp[TREE_MAX_DEPTH], cop[TREE_MAX_DEPTH];
  size_t n = 0;
  int rc = tree_filtered_direct_path(t, sender, fdp, cop, &n);
  if (rc) return rc;
  if (n != path->n_nodes) return TSR_EPROTOCOL;

  /* The copath child whose subtree holds our leaf: its parent is the
   * lowest common ancestor, where our part of the path starts. */
  uint32_t me = tm_leaf_to_node(p->leaf);
  size_t i = 0;
  while (i < n && !tm_is_ancestor(cop[i], me)) i++;
  if (i == n) return TSR_ENOTFOUND;

  uint32_t *excl = NULL;
  rc = treekem_excluded_nodes(excluded, n_excluded, &excl);
  if (rc) return rc;
  size_t cap = tree_width(t), nr = 0;
  uint32_t *res = malloc(cap * sizeof *res);
  if (!res) rc = TSR_ENOMEM;
  if (rc == 0) rc = treekem_resolution(t, cop[i], excl, n_excluded, res, cap, &nr);
  const mls_update_path_node *un = &path->nodes[i];
  if (rc == 0 && nr != un->n_encrypted_path_secret) rc = TSR_EPROTOCOL;
  /* The resolution entry we hold a private key for picks the ciphertext. */
  const uint8_t *sk = NULL;
  size_t k = 0;
  for (; rc == 0 && k < nr; k++)
    if ((sk = treekem_usable_key(p, t, res[k])) != NULL) break;
  if (rc == 0 && !sk) rc = TSR_ENOTFOUND;
  free(res);
  free(excl);
  if (rc) return rc;

  buf_t pt;
  buf_init(&pt);
  const mls_hpke_ciphertext *hc = &un->encrypted_path_secret[k];
  rc = mls_decrypt_with_label(s, BYTES(sk, MLS_KEM_SK), TREEKEM_LABEL, group_context,
                              hc->kem_output, hc->ciphertext, &pt);
  if (rc == 0 && pt.len != s->hash_len) rc = TSR_EPROTOCOL;
  uint8_t secret[MLS_MAX_HASH];
  if (rc == 0) {
    memcpy(secret, pt.ptr, s->hash_len);
    if (path_secret) memcpy(path_secret, secret, s->hash_len);
  }
  buf_free_secret(&pt);
  if (rc) return rc;

  mls_tree_priv *st = malloc(sizeof *st);
  if (!st) {
    secure_wipe(secret, sizeof secret);
    return TSR_ENOMEM;
  }
  memcpy(st, p, sizeof *st);
  treekem_keys_drop_path_of(st, sender);
  treekem_pending_clear(st); /* another member's commit supersedes ours */
  for (size_t j = i; rc == 0 && j < n; j++) {
    /* The tree holds the path's keys after the merge; checking against the
     * tree also catches a path that was not merged. */
    rc = treekem_install_one(st, t, fdp[j], secret);
    if (rc == 0 && !bytes_eq(treekem_tree_key(t, fdp[j]), path->nodes[j].encryption_key))
      rc = TSR_ETREE;
    if (rc == 0) rc = treekem_next_secret(s, secret, secret);
  }
  if (rc == 0) {
    memcpy(commit_secret, secret, s->hash_len);
    memcpy(p, st, sizeof *p);
  } else if (path_secret) {
    secure_wipe(path_secret, s->hash_len);
  }
  secure_wipe(secret, sizeof secret);
  treekem_priv_free(st);
  return rc;
}

int treekem_apply(mls_tree_priv *p, mls_tree *t, uint32_t sender,
                  const mls_update_path *path, const mls_group_context *gc,
                  const uint32_t *excluded, size_t n_excluded,
                  uint8_t commit_secret[MLS_MAX_HASH],
                  uint8_t path_secret[MLS_MAX_HASH]) {
  if (tree_suite(t) != p->suite || !gc) return TSR_EINVAL;
  treekem_undo u;
  int rc = treekem_merge(t, sender, path, gc->group_id, &u);
  if (rc) return rc;
  buf_t w;
  buf_init(&w);
  rc = treekem_group_context(t, gc, &w);
  if (rc == 0)
    rc = treekem_decrypt_path(p, t, sender, path, buf_view(&w), excluded, n_excluded,
                              commit_secret, path_secret);
  buf_free(&w);
  if (rc) treekem_undo_restore(&u, t);
  treekem_undo_free(&u);
  return rc;
}
