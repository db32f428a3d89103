/* Public ratchet tree (RFC 9420 §4.1, §7, §12.1.1-12.1.3). See tree.h.
 *
 * Representation: a flat array of tree_node in the RFC's array order.
 * A non-blank node owns one malloc'd record holding its decoded view
 * followed by every byte and array the view points to (a compact deep
 * copy), so replacing or blanking a node frees exactly one block and a
 * 4096-member tree costs a few hundred bytes per node rather than an
 * arena chunk each.
 *
 * Hash cache invariant: if a node's cached tree hash is valid, so are the
 * caches of all its descendants (a hash is only computed after its
 * children's). Every change invalidates the changed node and its whole
 * direct path, which keeps the invariant; extension adds nodes with no
 * valid hash and truncation drops a root whose left subtree is untouched.
 */
#include "mls/tree.h"

#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "mls/codec.h"
#include "mls/treemath.h"
#include "tessera/error.h"

typedef struct {
  void *rec;    /* tree_rec, NULL when blank */
  uint8_t type; /* 0 blank, MLS_NODE_LEAF, MLS_NODE_PARENT */
  bool hash_ok;
  uint8_t hash[MLS_MAX_HASH];
} tree_node;

/* Node record: a reference count, the view, then its payload. Records
 * are immutable once built (every change installs a new one), so clones
 * share them: tree_clone copies the node array and counts references,
 * which makes forking a large tree per commit cheap. The count is atomic
 * because clones may live in different threads. */
typedef struct {
  atomic_size_t refs;
  uint32_t payload; /* bytes after the view: a bound for its encoding */
  union {
    mls_leaf_node leaf;
    mls_parent_node parent;
    max_align_t align_;
  };
} tree_rec;

static void tree_rec_release(void *p) {
  tree_rec *r = p;
  if (r && atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) == 1) free(r);
}

struct mls_tree {
  const mls_suite *suite;
  uint32_t width; /* 0 or 2^(d+1) - 1 */
  uint32_t cap;   /* allocated entries in nodes */
  tree_node *nodes;
  /* Digest context reused by tree hashing (thousands of small inputs
   * when a large tree is extended); created on first use, not shared by
   * clones. */
  crypto_hasher *hasher;
};

/* --- Compact deep copy ------------------------------------------------ */

/* Two passes over the same code: with base == NULL it only measures. */
typedef struct {
  uint8_t *base;
  size_t used;
} tree_cp;

static void *tree_cp_take(tree_cp *c, size_t n, size_t align) {
  c->used = (c->used + align - 1) & ~(align - 1);
  void *p = c->base ? c->base + c->used : NULL;
  c->used += n;
  return p;
}

static bytes_t tree_cp_bytes(tree_cp *c, bytes_t in) {
  if (in.len == 0) return BYTES_NONE;
  uint8_t *p = tree_cp_take(c, in.len, 1);
  if (p) memcpy(p, in.ptr, in.len);
  return BYTES(p, in.len);
}

static void *tree_cp_array(tree_cp *c, const void *in, size_t n, size_t size,
                           size_t align) {
  if (n == 0) return NULL;
  void *p = tree_cp_take(c, n * size, align);
  if (p) memcpy(p, in, n * size);
  return p;
}

#define TREE_CP_U16(c, in, n)                                                            \
  tree_cp_array((c), (in), (n), sizeof(uint16_t), alignof(uint16_t))

static void tree_cp_leaf(tree_cp *c, const mls_leaf_node *in, mls_leaf_node *out) {
  *out = *in; /* scalars; every pointer is replaced below */
  out->encryption_key = tree_cp_bytes(c, in->encryption_key);
  out->signature_key = tree_cp_bytes(c, in->signature_key);
  out->credential.identity = tree_cp_bytes(c, in->credential.identity);
  size_t nc = in->credential.n_certificates;
  bytes_t *certs = nc ? tree_cp_take(c, nc * sizeof(bytes_t), alignof(bytes_t)) : NULL;
  for (size_t i = 0; i < nc; i++) {
    bytes_t b = tree_cp_bytes(c, in->credential.certificates[i]);
    if (certs) certs[i] = b;
  }
  out->credential.certificates = certs;
  const mls_capabilities *ci = &in->capabilities;
  mls_capabilities *co = &out->capabilities;
  co->versions = TREE_CP_U16(c, ci->versions, ci->n_versions);
  co->cipher_suites = TREE_CP_U16(c, ci->cipher_suites, ci->n_cipher_suites);
  co->extensions = TREE_CP_U16(c, ci->extensions, ci->n_extensions);
  co->proposals = TREE_CP_U16(c, ci->proposals, ci->n_proposals);
  co->credentials = TREE_CP_U16(c, ci->credentials, ci->n_credentials);
  out->parent_hash = tree_cp_bytes(c, in->parent_hash);
  size_t ne = in->extensions.n;
  mls_extension *ext =
      ne ? tree_cp_take(c, ne * sizeof(mls_extension), alignof(mls_extension)) : NULL;
  for (size_t i = 0; i < ne; i++) {
    mls_extension e = {in->extensions.items[i].extension_type,
                       tree_cp_bytes(c, in->extensions.items[i].extension_data)};
    if (ext) ext[i] = e;
  }
  out->extensions.items = ext;
  out->signature = tree_cp_bytes(c, in->signature);
}

static void tree_cp_parent(tree_cp *c, const mls_parent_node *in, mls_parent_node *out) {
  *out = *in;
  out->encryption_key = tree_cp_bytes(c, in->encryption_key);
  out->parent_hash = tree_cp_bytes(c, in->parent_hash);
  out->unmerged_leaves = tree_cp_array(c, in->unmerged_leaves, in->n_unmerged_leaves,
                                       sizeof(uint32_t), alignof(uint32_t));
}

static tree_rec *tree_rec_leaf(const mls_leaf_node *in) {
  mls_leaf_node dummy;
  tree_cp c = {NULL, sizeof(tree_rec)};
  tree_cp_leaf(&c, in, &dummy);
  tree_rec *r = malloc(c.used);
  if (!r) return NULL;
  atomic_init(&r->refs, 1);
  r->payload = (uint32_t)(c.used - sizeof(tree_rec));
  c = (tree_cp){(uint8_t *)r, sizeof(tree_rec)};
  tree_cp_leaf(&c, in, &r->leaf);
  return r;
}

static tree_rec *tree_rec_parent(const mls_parent_node *in) {
  mls_parent_node dummy;
  tree_cp c = {NULL, sizeof(tree_rec)};
  tree_cp_parent(&c, in, &dummy);
  tree_rec *r = malloc(c.used);
  if (!r) return NULL;
  atomic_init(&r->refs, 1);
  r->payload = (uint32_t)(c.used - sizeof(tree_rec));
  c = (tree_cp){(uint8_t *)r, sizeof(tree_rec)};
  tree_cp_parent(&c, in, &r->parent);
  return r;
}

/* --- Small internals -------------------------------------------------- */

static uint32_t tree_nl(const mls_tree *t) { return t->width ? (t->width + 1) / 2 : 0; }

static const mls_leaf_node *tree_leaf_at(const mls_tree *t, uint32_t x) {
  const tree_node *n = &t->nodes[x];
  return n->type == MLS_NODE_LEAF ? &((const tree_rec *)n->rec)->leaf : NULL;
}

static const mls_parent_node *tree_parent_at(const mls_tree *t, uint32_t x) {
  const tree_node *n = &t->nodes[x];
  return n->type == MLS_NODE_PARENT ? &((const tree_rec *)n->rec)->parent : NULL;
}

static bytes_t tree_enc_key_at(const mls_tree *t, uint32_t x) {
  const tree_node *n = &t->nodes[x];
  if (n->type == MLS_NODE_LEAF) return ((const tree_rec *)n->rec)->leaf.encryption_key;
  if (n->type == MLS_NODE_PARENT)
    return ((const tree_rec *)n->rec)->parent.encryption_key;
  return BYTES_NONE;
}

static void tree_invalidate(mls_tree *t, uint32_t x) {
  uint32_t nl = tree_nl(t);
  for (; x != TM_NONE; x = tm_parent(x, nl)) t->nodes[x].hash_ok = false;
}

/* Install rec (or blank when rec is NULL) at x, freeing the old record. */
static void tree_put(mls_tree *t, uint32_t x, uint8_t type, tree_rec *rec) {
  tree_rec_release(t->nodes[x].rec);
  t->nodes[x].rec = rec;
  t->nodes[x].type = rec ? type : 0;
  tree_invalidate(t, x);
}

static int tree_reserve(mls_tree *t, uint32_t width) {
  if (width <= t->cap) return 0;
  tree_node *n = realloc(t->nodes, (size_t)width * sizeof *n);
  if (!n) return TSR_ENOMEM;
  memset(n + t->cap, 0, (size_t)(width - t->cap) * sizeof *n);
  t->nodes = n;
  t->cap = width;
  return 0;
}

static bool tree_u32_sorted_has(const uint32_t *v, size_t n, uint32_t x) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (v[mid] == x) return true;
    if (v[mid] < x)
      lo = mid + 1;
    else
      hi = mid;
  }
  return false;
}

static bool tree_u32_strictly_sorted(const uint32_t *v, size_t n) {
  for (size_t i = 1; i < n; i++)
    if (v[i - 1] >= v[i]) return false;
  return true;
}

/* True if some node of the subtree under x is non-blank, i.e. the
 * resolution of x is not empty. */
static bool tree_subtree_nonblank(const mls_tree *t, uint32_t x) {
  if (t->nodes[x].type != 0) return true;
  if (tm_is_leaf(x)) return false;
  return tree_subtree_nonblank(t, tm_left(x)) || tree_subtree_nonblank(t, tm_right(x));
}

static int tree_check_unmerged(const mls_tree *t);

/* --- Lifetime --------------------------------------------------------- */

int tree_new(const mls_suite *suite, mls_tree **out) {
  if (!suite || !out) return TSR_EINVAL;
  mls_tree *t = calloc(1, sizeof *t);
  if (!t) return TSR_ENOMEM;
  t->suite = suite;
  *out = t;
  return 0;
}

void tree_free(mls_tree *t) {
  if (!t) return;
  for (uint32_t i = 0; i < t->cap; i++) tree_rec_release(t->nodes[i].rec);
  free(t->nodes);
  crypto_hasher_free(t->hasher);
  free(t);
}

int tree_from_ratchet_tree(const mls_suite *suite, const mls_ratchet_tree *rt,
                           mls_tree **out) {
  if (!suite || !rt || !out) return TSR_EINVAL;
  size_t n = rt->n_nodes;
  if (n == 0 || n > tm_node_width(TM_MAX_LEAVES) || rt->nodes[n - 1].node_type == 0)
    return TSR_ETREE;
  uint64_t nl = 1;
  while (2 * nl - 1 < n) nl *= 2;
  for (size_t i = 0; i < n; i++) {
    uint8_t ty = rt->nodes[i].node_type;
    if (ty != 0 && ty != ((i & 1) ? MLS_NODE_PARENT : MLS_NODE_LEAF)) return TSR_ETREE;
  }
  mls_tree *t;
  int rc = tree_new(suite, &t);
  if (rc) return rc;
  uint32_t width = (uint32_t)(2 * nl - 1);
  if ((rc = tree_reserve(t, width)) != 0) goto fail;
  t->width = width;
  for (size_t i = 0; i < n; i++) {
    const mls_node *src = &rt->nodes[i];
    if (src->node_type == 0) continue;
    tree_rec *r = src->node_type == MLS_NODE_LEAF ? tree_rec_leaf(&src->leaf)
                                                  : tree_rec_parent(&src->parent);
    if (!r) {
      rc = TSR_ENOMEM;
      goto fail;
    }
    t->nodes[i].rec = r;
    t->nodes[i].type = src->node_type;
  }
  *out = t;
  return 0;
fail:
  tree_free(t);
  return rc;
}

int tree_decode(const mls_suite *suite, bytes_t ext_body, mls_tree **out) {
  if (!suite || !out) return TSR_EINVAL;
  arena_t a;
  arena_init(&a);
  mls_ratchet_tree rt;
  int rc = msg_decode_ratchet_tree(ext_body, &a, &rt);
  if (rc == 0) rc = tree_from_ratchet_tree(suite, &rt, out);
  arena_free(&a);
  return rc;
}

int tree_clone(const mls_tree *t, mls_tree **out) {
  if (!t || !out) return TSR_EINVAL;
  mls_tree *c;
  int rc = tree_new(t->suite, &c);
  if (rc) return rc;
  if ((rc = tree_reserve(c, t->width)) != 0) goto fail;
  c->width = t->width;
  if (t->width) memcpy(c->nodes, t->nodes, (size_t)t->width * sizeof *c->nodes);
  for (uint32_t i = 0; i < t->width; i++)
    if (c->nodes[i].rec)
      atomic_fetch_add_explicit(&((tree_rec *)c->nodes[i].rec)->refs, 1,
                                memory_order_relaxed);
  *out = c;
  return 0;
fail:
  tree_free(c);
  return rc;
}

void tree_encode(const mls_tree *t, buf_t *w) {
  uint32_t end = t->width;
  while (end > 0 && t->nodes[end - 1].type == 0) end--;
  /* Reserve once: growing a buffer of most of a megabyte by doubling
   * copies and wipes it several times. A node encodes to its payload plus
   * a few dozen bytes of headers and fixed fields. */
  size_t want = 8;
  for (uint32_t i = 0; i < end; i++)
    want += 1 + (t->nodes[i].rec ? ((const tree_rec *)t->nodes[i].rec)->payload + 64 : 0);
  if (buf_reserve(w, want)) return;
  size_t mark = wr_vec_begin(w);
  for (uint32_t i = 0; i < end; i++) {
    const tree_node *n = &t->nodes[i];
    wr_optional(w, n->type != 0);
    if (n->type == 0) continue;
    mls_node tmp;
    memset(&tmp, 0, sizeof tmp);
    tmp.node_type = n->type;
    if (n->type == MLS_NODE_LEAF)
      tmp.leaf = *tree_leaf_at(t, i);
    else
      tmp.parent = *tree_parent_at(t, i);
    msg_encode_node(w, &tmp);
  }
  wr_vec_end(w, mark);
}

/* --- Accessors -------------------------------------------------------- */

const mls_suite *tree_suite(const mls_tree *t) { return t->suite; }
uint32_t tree_n_leaves(const mls_tree *t) { return tree_nl(t); }
uint32_t tree_width(const mls_tree *t) { return t->width; }

uint8_t tree_node_type(const mls_tree *t, uint32_t node) {
  return node < t->width ? t->nodes[node].type : 0;
}

bool tree_leaf_is_blank(const mls_tree *t, uint32_t leaf) {
  return tree_leaf(t, leaf) == NULL;
}

const mls_leaf_node *tree_leaf(const mls_tree *t, uint32_t leaf) {
  if (leaf >= tree_nl(t)) return NULL;
  return tree_leaf_at(t, tm_leaf_to_node(leaf));
}

const mls_parent_node *tree_parent(const mls_tree *t, uint32_t node) {
  if (node >= t->width) return NULL;
  return tree_parent_at(t, node);
}

uint32_t tree_member_count(const mls_tree *t) {
  uint32_t c = 0;
  for (uint32_t x = 0; x < t->width; x += 2) c += t->nodes[x].type != 0;
  return c;
}

/* --- Raw mutation ----------------------------------------------------- */

int tree_set_leaf(mls_tree *t, uint32_t leaf, const mls_leaf_node *v) {
  if (!v || leaf >= tree_nl(t)) return TSR_EINVAL;
  tree_rec *r = tree_rec_leaf(v);
  if (!r) return TSR_ENOMEM;
  tree_put(t, tm_leaf_to_node(leaf), MLS_NODE_LEAF, r);
  return 0;
}

int tree_set_parent(mls_tree *t, uint32_t node, const mls_parent_node *v) {
  if (!v || node >= t->width || tm_is_leaf(node)) return TSR_EINVAL;
  tree_rec *r = tree_rec_parent(v);
  if (!r) return TSR_ENOMEM;
  tree_put(t, node, MLS_NODE_PARENT, r);
  return 0;
}

int tree_blank_node(mls_tree *t, uint32_t node) {
  if (node >= t->width) return TSR_EINVAL;
  tree_put(t, node, 0, NULL);
  return 0;
}

int tree_blank_direct_path(mls_tree *t, uint32_t leaf) {
  uint32_t dp[TM_MAX_PATH];
  int n = tm_direct_path(tm_leaf_to_node(leaf), tree_nl(t), dp);
  if (n < 0 || leaf >= tree_nl(t)) return TSR_EINVAL;
  for (int i = 0; i < n; i++) tree_put(t, dp[i], 0, NULL);
  return 0;
}

/* --- Proposal application --------------------------------------------- */

/* Copy of parent node v with leaf inserted into its sorted unmerged list. */
static tree_rec *tree_rec_with_unmerged(const mls_parent_node *v, uint32_t leaf) {
  size_t n = v->n_unmerged_leaves;
  if (tree_u32_sorted_has(v->unmerged_leaves, n, leaf)) return tree_rec_parent(v);
  uint32_t *u = malloc((n + 1) * sizeof *u);
  if (!u) return NULL;
  size_t k = 0;
  while (k < n && v->unmerged_leaves[k] < leaf) k++;
  if (k) memcpy(u, v->unmerged_leaves, k * sizeof *u);
  u[k] = leaf;
  if (n > k) memcpy(u + k + 1, v->unmerged_leaves + k, (n - k) * sizeof *u);
  mls_parent_node p = *v;
  p.unmerged_leaves = u;
  p.n_unmerged_leaves = n + 1;
  tree_rec *r = tree_rec_parent(&p);
  free(u);
  return r;
}

int tree_add_leaf(mls_tree *t, const mls_leaf_node *v, uint32_t *leaf_out) {
  if (!v) return TSR_EINVAL;
  uint32_t nl = tree_nl(t), leaf = nl;
  for (uint32_t i = 0; i < nl; i++)
    if (t->nodes[tm_leaf_to_node(i)].type == 0) {
      leaf = i;
      break;
    }
  /* Extending doubles the leaf count (an empty tree gets its first leaf). */
  uint32_t new_nl = nl;
  if (leaf == nl) {
    if (nl >= TM_MAX_LEAVES) return TSR_ELIMIT;
    new_nl = nl ? 2 * nl : 1;
  }
  uint32_t new_width = tm_node_width(new_nl);
  int rc = tree_reserve(t, new_width);
  if (rc) return rc;

  /* Build every new record before touching the tree, so failure leaves
   * it unchanged. */
  uint32_t dp[TM_MAX_PATH];
  tree_rec *recs[TM_MAX_PATH] = {0};
  int n = tm_direct_path(tm_leaf_to_node(leaf), new_nl, dp);
  tree_rec *lr = tree_rec_leaf(v);
  if (n < 0 || !lr) {
    free(lr);
    return n < 0 ? TSR_EINVAL : TSR_ENOMEM;
  }
  for (int i = 0; i < n; i++) {
    /* Nodes beyond the old width are new, hence blank. */
    if (dp[i] >= t->width || t->nodes[dp[i]].type == 0) continue;
    recs[i] = tree_rec_with_unmerged(tree_parent_at(t, dp[i]), leaf);
    if (!recs[i]) {
      for (int j = 0; j < i; j++) free(recs[j]);
      free(lr);
      return TSR_ENOMEM;
    }
  }
  t->width = new_width;
  tree_put(t, tm_leaf_to_node(leaf), MLS_NODE_LEAF, lr);
  for (int i = 0; i < n; i++)
    if (recs[i]) tree_put(t, dp[i], MLS_NODE_PARENT, recs[i]);
  if (leaf_out) *leaf_out = leaf;
  return 0;
}

int tree_update_leaf(mls_tree *t, uint32_t leaf, const mls_leaf_node *v) {
  if (!v || leaf >= tree_nl(t) || tree_leaf_is_blank(t, leaf)) return TSR_EINVAL;
  tree_rec *r = tree_rec_leaf(v);
  if (!r) return TSR_ENOMEM;
  tree_blank_direct_path(t, leaf);
  tree_put(t, tm_leaf_to_node(leaf), MLS_NODE_LEAF, r);
  return 0;
}

void tree_truncate(mls_tree *t) {
  uint32_t nl = tree_nl(t);
  while (nl > 1) {
    for (uint32_t i = nl / 2; i < nl; i++)
      if (t->nodes[tm_leaf_to_node(i)].type != 0) return;
    /* Drop the root (node nl - 1) and the right subtree. */
    uint32_t root = nl - 1;
    for (uint32_t x = root; x < t->width; x++) {
      tree_rec_release(t->nodes[x].rec);
      memset(&t->nodes[x], 0, sizeof t->nodes[x]);
    }
    t->width = root;
    nl /= 2;
  }
}

int tree_remove_leaf(mls_tree *t, uint32_t leaf) {
  if (leaf >= tree_nl(t) || tree_leaf_is_blank(t, leaf)) return TSR_EINVAL;
  tree_put(t, tm_leaf_to_node(leaf), 0, NULL);
  tree_blank_direct_path(t, leaf);
  tree_truncate(t);
  return 0;
}

/* --- Structure -------------------------------------------------------- */

static int tree_res_rec(const mls_tree *t, uint32_t x, uint32_t *out, size_t cap,
                        size_t *n) {
  const tree_node *nd = &t->nodes[x];
  if (nd->type == 0) {
    if (tm_is_leaf(x)) return 0;
    int rc = tree_res_rec(t, tm_left(x), out, cap, n);
    return rc ? rc : tree_res_rec(t, tm_right(x), out, cap, n);
  }
  if (*n >= cap) return TSR_EINVAL;
  out[(*n)++] = x;
  if (nd->type == MLS_NODE_PARENT) {
    const mls_parent_node *p = tree_parent_at(t, x);
    for (size_t i = 0; i < p->n_unmerged_leaves; i++) {
      if (*n >= cap) return TSR_EINVAL;
      out[(*n)++] = tm_leaf_to_node(p->unmerged_leaves[i]);
    }
  }
  return 0;
}

int tree_resolution(const mls_tree *t, uint32_t node, uint32_t *out, size_t cap,
                    size_t *n) {
  if (!n || node >= t->width) return TSR_EINVAL;
  *n = 0;
  return tree_res_rec(t, node, out, cap, n);
}

int tree_filtered_direct_path(const mls_tree *t, uint32_t leaf,
                              uint32_t path[TREE_MAX_DEPTH],
                              uint32_t copath[TREE_MAX_DEPTH], size_t *n) {
  if (!n) return TSR_EINVAL;
  *n = 0;
  uint32_t nl = tree_nl(t), x = tm_leaf_to_node(leaf);
  if (leaf >= nl) return TSR_EINVAL;
  uint32_t dp[TM_MAX_PATH], cp[TM_MAX_PATH];
  int nd = tm_direct_path(x, nl, dp);
  int nc = tm_copath(x, nl, cp);
  if (nd < 0 || nc != nd) return TSR_EINVAL;
  size_t k = 0;
  for (int i = 0; i < nd; i++) {
    if (!tree_subtree_nonblank(t, cp[i])) continue;
    if (path) path[k] = dp[i];
    if (copath) copath[k] = cp[i];
    k++;
  }
  *n = k;
  return 0;
}

/* --- Tree hash -------------------------------------------------------- */

static void tree_th_input_leaf(buf_t *w, uint32_t leaf, const mls_leaf_node *v) {
  wr_u8(w, MLS_NODE_LEAF);
  wr_u32(w, leaf);
  wr_optional(w, v != NULL);
  if (v) msg_encode_leaf_node(w, v);
}

static void tree_th_input_parent(buf_t *w, const mls_parent_node *v, bytes_t lh,
                                 bytes_t rh) {
  wr_u8(w, MLS_NODE_PARENT);
  wr_optional(w, v != NULL);
  if (v) msg_encode_parent_node(w, v);
  wr_opaque(w, lh);
  wr_opaque(w, rh);
}

static int tree_hash_buf(mls_tree *t, buf_t *w, uint8_t *out) {
  if (w->err) return w->err;
  /* Without a hasher (allocation failed) crypto_digest_with falls back
   * to crypto_digest. */
  if (!t->hasher) t->hasher = crypto_hasher_new();
  return crypto_digest_with(t->hasher, t->suite, buf_view(w), out);
}

/* Fill the cache of x (and of its descendants as needed). scratch is
 * reused; recursion depth is at most 32. */
static int tree_th_fill(mls_tree *t, uint32_t x, buf_t *scratch) {
  tree_node *nd = &t->nodes[x];
  if (nd->hash_ok) return 0;
  size_t hl = t->suite->hash_len;
  int rc;
  buf_reset(scratch);
  if (tm_is_leaf(x)) {
    tree_th_input_leaf(scratch, tm_node_to_leaf(x), tree_leaf_at(t, x));
  } else {
    uint32_t l = tm_left(x), r = tm_right(x);
    if ((rc = tree_th_fill(t, l, scratch)) || (rc = tree_th_fill(t, r, scratch)))
      return rc;
    buf_reset(scratch);
    tree_th_input_parent(scratch, tree_parent_at(t, x), BYTES(t->nodes[l].hash, hl),
                         BYTES(t->nodes[r].hash, hl));
  }
  if ((rc = tree_hash_buf(t, scratch, nd->hash)) != 0) return rc;
  nd->hash_ok = true;
  return 0;
}

/* Does the subtree under x contain one of leaves[]? With a sorted list
 * (the normal case: unmerged_leaves) this is a range search over the
 * subtree's leftmost and rightmost leaves, so large unmerged lists on a
 * joiner's tree stay cheap. */
static bool tree_subtree_has_leaf(uint32_t x, const uint32_t *leaves, size_t n,
                                  bool sorted) {
  if (n == 0) return false;
  if (!sorted) {
    for (size_t i = 0; i < n; i++)
      if (leaves[i] < TM_MAX_LEAVES && tm_is_ancestor(x, tm_leaf_to_node(leaves[i])))
        return true;
    return false;
  }
  uint32_t lo = x, hi = x;
  while (!tm_is_leaf(lo)) lo = tm_left(lo);
  while (!tm_is_leaf(hi)) hi = tm_right(hi);
  uint32_t first = tm_node_to_leaf(lo), last = tm_node_to_leaf(hi);
  size_t a = 0, b = n; /* lower bound of first */
  while (a < b) {
    size_t mid = a + (b - a) / 2;
    if (leaves[mid] < first)
      a = mid + 1;
    else
      b = mid;
  }
  return a < n && leaves[a] <= last;
}

static bool tree_u32_has(const uint32_t *v, size_t n, uint32_t x, bool sorted) {
  if (sorted) return tree_u32_sorted_has(v, n, x);
  for (size_t i = 0; i < n; i++)
    if (v[i] == x) return true;
  return false;
}

/* Tree hash of x in the tree where the leaves ex[] are blanked and
 * removed from every unmerged_leaves list (§7.9 original sibling tree
 * hash). Subtrees without any of them come from the cache. */
static int tree_th_excl(mls_tree *t, uint32_t x, const uint32_t *ex, size_t nex,
                        bool sorted, buf_t *scratch, uint8_t *out) {
  size_t hl = t->suite->hash_len;
  int rc;
  if (!tree_subtree_has_leaf(x, ex, nex, sorted)) {
    if ((rc = tree_th_fill(t, x, scratch)) != 0) return rc;
    memcpy(out, t->nodes[x].hash, hl);
    return 0;
  }
  if (tm_is_leaf(x)) {
    buf_reset(scratch);
    tree_th_input_leaf(scratch, tm_node_to_leaf(x), NULL);
    return tree_hash_buf(t, scratch, out);
  }
  uint8_t lh[MLS_MAX_HASH], rh[MLS_MAX_HASH];
  if ((rc = tree_th_excl(t, tm_left(x), ex, nex, sorted, scratch, lh)) ||
      (rc = tree_th_excl(t, tm_right(x), ex, nex, sorted, scratch, rh)))
    return rc;
  const mls_parent_node *p = tree_parent_at(t, x);
  mls_parent_node tmp;
  uint32_t *u = NULL;
  if (p) {
    tmp = *p;
    if (p->n_unmerged_leaves) {
      u = malloc(p->n_unmerged_leaves * sizeof *u);
      if (!u) return TSR_ENOMEM;
      size_t k = 0;
      for (size_t i = 0; i < p->n_unmerged_leaves; i++)
        if (!tree_u32_has(ex, nex, p->unmerged_leaves[i], sorted))
          u[k++] = p->unmerged_leaves[i];
      tmp.unmerged_leaves = u;
      tmp.n_unmerged_leaves = k;
    }
  }
  buf_reset(scratch);
  tree_th_input_parent(scratch, p ? &tmp : NULL, BYTES(lh, hl), BYTES(rh, hl));
  free(u);
  return tree_hash_buf(t, scratch, out);
}

int tree_hash(const mls_tree *ct, uint32_t node, uint8_t out[MLS_MAX_HASH]) {
  mls_tree *t = (mls_tree *)ct; /* only the cache changes */
  if (node >= t->width) return TSR_EINVAL;
  buf_t s;
  buf_init(&s);
  int rc = tree_th_fill(t, node, &s);
  buf_free(&s);
  if (rc == 0) memcpy(out, t->nodes[node].hash, t->suite->hash_len);
  return rc;
}

int tree_root_hash(const mls_tree *t, uint8_t out[MLS_MAX_HASH]) {
  if (t->width == 0) return TSR_ETREE;
  return tree_hash(t, tm_root(tree_nl(t)), out);
}

/* --- Parent hash ------------------------------------------------------ */

/* ParentHash of parent p seen from descendant d, with p's parent_hash
 * field taken as `field` (so callers can hash a node before rewriting
 * it). */
static int tree_ph_with(mls_tree *t, uint32_t p, uint32_t d, bytes_t field, buf_t *s,
                        uint8_t *out) {
  const mls_parent_node *pn = tree_parent_at(t, p);
  if (!pn || p == d || !tm_is_ancestor(p, d)) return TSR_EINVAL;
  uint32_t l = tm_left(p), r = tm_right(p);
  uint32_t sib = tm_is_ancestor(l, d) ? r : l;
  uint8_t osth[MLS_MAX_HASH];
  bool sorted = tree_u32_strictly_sorted(pn->unmerged_leaves, pn->n_unmerged_leaves);
  int rc =
      tree_th_excl(t, sib, pn->unmerged_leaves, pn->n_unmerged_leaves, sorted, s, osth);
  if (rc) return rc;
  buf_reset(s);
  wr_opaque(s, pn->encryption_key);
  wr_opaque(s, field);
  wr_opaque(s, BYTES(osth, t->suite->hash_len));
  return tree_hash_buf(t, s, out);
}

int tree_parent_hash(const mls_tree *ct, uint32_t p, uint32_t d,
                     uint8_t out[MLS_MAX_HASH]) {
  mls_tree *t = (mls_tree *)ct;
  if (p >= t->width || d >= t->width || !tree_parent_at(t, p)) return TSR_EINVAL;
  buf_t s;
  buf_init(&s);
  int rc = tree_ph_with(t, p, d, tree_parent_at(t, p)->parent_hash, &s, out);
  buf_free(&s);
  return rc;
}

int tree_set_path_parent_hashes(mls_tree *t, uint32_t leaf, uint8_t leaf_ph[MLS_MAX_HASH],
                                size_t *leaf_ph_len) {
  uint32_t path[TREE_MAX_DEPTH];
  size_t n;
  int rc = tree_filtered_direct_path(t, leaf, path, NULL, &n);
  if (rc) return rc;
  for (size_t i = 0; i < n; i++)
    if (!tree_parent_at(t, path[i])) return TSR_EINVAL;
  size_t hl = t->suite->hash_len;
  /* field[i] is the new parent_hash of path[i]; the sibling subtrees used
   * below never contain path nodes, so computing all before writing any
   * is the same as rewriting top-down. */
  uint8_t field[TREE_MAX_DEPTH][MLS_MAX_HASH], cur[MLS_MAX_HASH];
  size_t cur_len = 0;
  tree_rec *recs[TREE_MAX_DEPTH] = {0};
  buf_t s;
  buf_init(&s);
  for (size_t k = n; k-- > 0;) {
    memcpy(field[k], cur, cur_len);
    uint32_t below = k > 0 ? path[k - 1] : tm_leaf_to_node(leaf);
    if ((rc = tree_ph_with(t, path[k], below, BYTES(field[k], cur_len), &s, cur)) != 0)
      goto out;
    mls_parent_node pn = *tree_parent_at(t, path[k]);
    pn.parent_hash = BYTES(field[k], cur_len);
    if (!(recs[k] = tree_rec_parent(&pn))) {
      rc = TSR_ENOMEM;
      goto out;
    }
    cur_len = hl;
  }
  for (size_t k = 0; k < n; k++) {
    tree_put(t, path[k], MLS_NODE_PARENT, recs[k]);
    recs[k] = NULL;
  }
  if (leaf_ph) memcpy(leaf_ph, cur, cur_len);
  if (leaf_ph_len) *leaf_ph_len = cur_len;
out:
  for (size_t k = 0; k < n; k++) free(recs[k]);
  buf_free(&s);
  return rc;
}

/* Is p's parent hash valid with respect to some node on the side of
 * child c (§7.9.2)? res and mark are scratch (width entries, n_leaves
 * bytes, mark all zero on entry and on return). */
static int tree_ph_side_ok(mls_tree *t, uint32_t p, uint32_t c, uint32_t *res,
                           uint8_t *mark, buf_t *s, bool *ok) {
  const mls_parent_node *pn = tree_parent_at(t, p);
  uint32_t nl = tree_nl(t);
  size_t n = 0;
  *ok = false;
  if (tree_res_rec(t, c, res, t->width, &n) != 0) return 0; /* malformed: not ok */
  for (size_t i = 0; i < n; i++) /* unmerged entries pointing nowhere */
    if (res[i] >= t->width || t->nodes[res[i]].type == 0) return 0;
  uint32_t d = TM_NONE;
  bool single = true;
  for (size_t i = 0; i < n; i++) {
    uint32_t x = res[i];
    if (tm_is_leaf(x) && tree_u32_sorted_has(pn->unmerged_leaves, pn->n_unmerged_leaves,
                                             tm_node_to_leaf(x))) {
      mark[tm_node_to_leaf(x)] = 1;
    } else if (d == TM_NONE) {
      d = x;
    } else {
      single = false;
    }
  }
  /* Every unmerged leaf of p under c must be in the resolution of c. */
  bool covered = true;
  for (size_t i = 0; i < pn->n_unmerged_leaves; i++) {
    uint32_t u = pn->unmerged_leaves[i];
    if (u < nl && tm_is_ancestor(c, tm_leaf_to_node(u)) && !mark[u]) covered = false;
  }
  for (size_t i = 0; i < n; i++)
    if (tm_is_leaf(res[i])) mark[tm_node_to_leaf(res[i])] = 0;
  if (!single || !covered || d == TM_NONE) return 0;

  bytes_t dph = t->nodes[d].type == MLS_NODE_LEAF ? tree_leaf_at(t, d)->parent_hash
                                                  : tree_parent_at(t, d)->parent_hash;
  uint8_t ph[MLS_MAX_HASH];
  int rc = tree_ph_with(t, p, d, pn->parent_hash, s, ph);
  if (rc) return rc;
  *ok = bytes_eq(dph, BYTES(ph, t->suite->hash_len));
  return 0;
}

int tree_verify_parent_hashes(const mls_tree *ct) {
  mls_tree *t = (mls_tree *)ct;
  uint32_t nl = tree_nl(t);
  if (t->width == 0) return 0;
  uint32_t *res = malloc((size_t)t->width * sizeof *res);
  uint8_t *mark = calloc(nl, 1);
  buf_t s;
  buf_init(&s);
  int rc = (res && mark) ? 0 : TSR_ENOMEM;
  /* The side checks index by unmerged entries: make sure they are sane. */
  if (rc == 0) rc = tree_check_unmerged(t);
  for (uint32_t p = 1; rc == 0 && p < t->width; p += 2) {
    const mls_parent_node *pn = tree_parent_at(t, p);
    if (!pn) continue;
    /* Exactly one child side may carry the link (top-down check). */
    bool okl = false, okr = false;
    if ((rc = tree_ph_side_ok(t, p, tm_left(p), res, mark, &s, &okl)) ||
        (rc = tree_ph_side_ok(t, p, tm_right(p), res, mark, &s, &okr)))
      break;
    if (okl == okr) rc = TSR_ETREE;
  }
  free(res);
  free(mark);
  buf_free(&s);
  return rc;
}

/* --- Lookups ---------------------------------------------------------- */

int tree_find_signature_key(const mls_tree *t, bytes_t key, uint32_t *leaf) {
  for (uint32_t x = 0; x < t->width; x += 2) {
    const mls_leaf_node *l = tree_leaf_at(t, x);
    if (l && bytes_eq(l->signature_key, key)) {
      if (leaf) *leaf = tm_node_to_leaf(x);
      return 0;
    }
  }
  return TSR_ENOTFOUND;
}

int tree_find_encryption_key(const mls_tree *t, bytes_t key, uint32_t *node) {
  return tree_find_encryption_keys(t, &key, 1, NULL, node);
}

/* First 8 bytes of a key (zero-padded), to rule most keys out without a
 * memcmp call. */
static uint64_t tree_key_prefix(bytes_t k) {
  uint64_t v = 0;
  if (k.len) memcpy(&v, k.ptr, k.len < sizeof v ? k.len : sizeof v);
  return v;
}

int tree_find_encryption_keys(const mls_tree *t, const bytes_t *keys, size_t n,
                              size_t *which, uint32_t *node) {
  enum { BATCH = 64 };
  uint64_t pre[BATCH];
  /* Larger sets go in batches; a path has at most TREE_MAX_DEPTH keys. */
  for (size_t base = 0; base < n; base += BATCH) {
    size_t m = n - base < BATCH ? n - base : BATCH;
    for (size_t i = 0; i < m; i++) pre[i] = tree_key_prefix(keys[base + i]);
    for (uint32_t x = 0; x < t->width; x++) {
      if (t->nodes[x].type == 0) continue;
      bytes_t k = tree_enc_key_at(t, x);
      uint64_t kp = tree_key_prefix(k);
      for (size_t i = 0; i < m; i++) {
        if (pre[i] != kp || !bytes_eq(k, keys[base + i])) continue;
        if (which) *which = base + i;
        if (node) *node = x;
        return 0;
      }
    }
  }
  return TSR_ENOTFOUND;
}

/* --- Validation ------------------------------------------------------- */

int tree_verify_leaf_signature(const mls_suite *suite, const mls_leaf_node *v,
                               bytes_t group_id, uint32_t leaf_index) {
  buf_t tbs;
  buf_init(&tbs);
  msg_encode_leaf_node_tbs(&tbs, v, group_id, leaf_index);
  int rc = tbs.err;
  if (rc == 0)
    rc = mls_verify_with_label(suite, v->signature_key, "LeafNodeTBS", buf_view(&tbs),
                               v->signature);
  buf_free(&tbs);
  /* Any failure to verify (malformed key included) means "forged". */
  return rc == TSR_ENOMEM ? rc : rc ? TSR_EVERIFY : 0;
}

/* §7.2: the credential type and non-default extensions must be listed in
 * the leaf's own capabilities. */
static bool tree_leaf_self_consistent(const mls_leaf_node *v) {
  const mls_capabilities *c = &v->capabilities;
  if (!msg_u16_contains(c->credentials, c->n_credentials, v->credential.credential_type))
    return false;
  for (size_t i = 0; i < v->extensions.n; i++) {
    uint16_t ty = v->extensions.items[i].extension_type;
    bool dflt = ty >= MLS_EXT_APPLICATION_ID && ty <= MLS_EXT_EXTERNAL_SENDERS;
    if (!dflt && !msg_u16_contains(c->extensions, c->n_extensions, ty)) return false;
  }
  return true;
}

int tree_check_new_leaf(const mls_tree *t, const mls_leaf_node *v, uint32_t at) {
  if (!v || (at != TREE_NONE && at >= tree_nl(t))) return TSR_EINVAL;
  if (!tree_leaf_self_consistent(v)) return TSR_ECAPABILITY;
  if (tree_find_encryption_keys(t, &v->encryption_key, 1, NULL, NULL) == 0)
    return TSR_ETREE;
  uint64_t sig_pre = tree_key_prefix(v->signature_key);
  for (uint32_t x = 0; x < t->width; x += 2) {
    const mls_leaf_node *l = tree_leaf_at(t, x);
    if (!l || tm_node_to_leaf(x) == at) continue;
    if (tree_key_prefix(l->signature_key) == sig_pre &&
        bytes_eq(l->signature_key, v->signature_key))
      return TSR_ETREE;
    const mls_capabilities *lc = &l->capabilities, *vc = &v->capabilities;
    if (!msg_u16_contains(lc->credentials, lc->n_credentials,
                          v->credential.credential_type) ||
        !msg_u16_contains(vc->credentials, vc->n_credentials,
                          l->credential.credential_type))
      return TSR_ECAPABILITY;
  }
  return 0;
}

static int tree_bytes_cmp(const void *a, const void *b) {
  const bytes_t *x = a, *y = b;
  if (x->len != y->len) return x->len < y->len ? -1 : 1;
  return x->len ? memcmp(x->ptr, y->ptr, x->len) : 0;
}

/* True if the keys (sorted in place) contain a duplicate. */
static bool tree_has_duplicate(bytes_t *keys, size_t n) {
  if (n > 1) qsort(keys, n, sizeof *keys, tree_bytes_cmp);
  for (size_t i = 1; i < n; i++)
    if (tree_bytes_cmp(&keys[i - 1], &keys[i]) == 0) return true;
  return false;
}

/* Encryption keys unique over all nodes, signature keys over leaves. */
static int tree_check_unique_keys(const mls_tree *t) {
  bytes_t *keys = malloc((size_t)t->width * sizeof *keys);
  if (!keys) return TSR_ENOMEM;
  size_t n = 0;
  for (uint32_t x = 0; x < t->width; x++)
    if (t->nodes[x].type != 0) keys[n++] = tree_enc_key_at(t, x);
  int rc = tree_has_duplicate(keys, n) ? TSR_ETREE : 0;
  n = 0;
  for (uint32_t x = 0; x < t->width; x += 2)
    if (t->nodes[x].type != 0) keys[n++] = tree_leaf_at(t, x)->signature_key;
  if (rc == 0 && tree_has_duplicate(keys, n)) rc = TSR_ETREE;
  free(keys);
  return rc;
}

/* §12.4.3.1: each unmerged leaf is a non-blank descendant and is listed by
 * every non-blank node between it and the parent; lists are sorted. */
static int tree_check_unmerged(const mls_tree *t) {
  uint32_t nl = tree_nl(t);
  for (uint32_t p = 1; p < t->width; p += 2) {
    const mls_parent_node *pn = tree_parent_at(t, p);
    if (!pn) continue;
    if (!tree_u32_strictly_sorted(pn->unmerged_leaves, pn->n_unmerged_leaves))
      return TSR_ETREE;
    for (size_t i = 0; i < pn->n_unmerged_leaves; i++) {
      uint32_t u = pn->unmerged_leaves[i];
      if (u >= nl || !tm_is_ancestor(p, tm_leaf_to_node(u)) ||
          t->nodes[tm_leaf_to_node(u)].type == 0)
        return TSR_ETREE;
      for (uint32_t q = tm_parent(tm_leaf_to_node(u), nl); q != p; q = tm_parent(q, nl)) {
        const mls_parent_node *qn = tree_parent_at(t, q);
        if (qn && !tree_u32_sorted_has(qn->unmerged_leaves, qn->n_unmerged_leaves, u))
          return TSR_ETREE;
      }
    }
  }
  return 0;
}

/* Every credential type in use is supported by every leaf. */
static int tree_check_credentials(const mls_tree *t) {
  uint16_t types[16];
  size_t nt = 0;
  for (uint32_t x = 0; x < t->width; x += 2) {
    const mls_leaf_node *l = tree_leaf_at(t, x);
    if (!l) continue;
    uint16_t ty = l->credential.credential_type;
    if (msg_u16_contains(types, nt, ty)) continue;
    /* More distinct types than this is no real group: refuse. */
    if (nt == sizeof types / sizeof types[0]) return TSR_ETREE;
    types[nt++] = ty;
  }
  for (uint32_t x = 0; x < t->width; x += 2) {
    const mls_leaf_node *l = tree_leaf_at(t, x);
    if (!l) continue;
    for (size_t i = 0; i < nt; i++)
      if (!msg_u16_contains(l->capabilities.credentials, l->capabilities.n_credentials,
                            types[i]))
        return TSR_ETREE;
  }
  return 0;
}

int tree_validate(const mls_tree *t, bytes_t group_id, bytes_t expected_tree_hash) {
  if (t->width == 0 || tree_member_count(t) == 0) return TSR_ETREE;
  int rc;
  if (expected_tree_hash.len > 0) {
    uint8_t h[MLS_MAX_HASH];
    if ((rc = tree_root_hash(t, h)) != 0) return rc;
    if (!bytes_eq(expected_tree_hash, BYTES(h, t->suite->hash_len))) return TSR_ETREE;
  }
  if ((rc = tree_check_unmerged(t)) || (rc = tree_check_unique_keys(t)) ||
      (rc = tree_check_credentials(t)))
    return rc;
  for (uint32_t x = 0; x < t->width; x += 2) {
    const mls_leaf_node *l = tree_leaf_at(t, x);
    if (l && !tree_leaf_self_consistent(l)) return TSR_ETREE;
  }
  /* Signatures before parent hashes: a forged leaf also breaks the
   * original sibling tree hashes above it, and TSR_EVERIFY says more. */
  for (uint32_t x = 0; x < t->width; x += 2) {
    const mls_leaf_node *l = tree_leaf_at(t, x);
    if (l && (rc = tree_verify_leaf_signature(t->suite, l, group_id, tm_node_to_leaf(x))))
      return rc;
  }
  return tree_verify_parent_hashes(t);
}
