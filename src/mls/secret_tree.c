/* Secret tree and sender ratchets (RFC 9420 §9, §6.3.2). */
#include "mls/secret_tree.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "mls/codec.h"
#include "mls/treemath.h"
#include "tessera/error.h"

#define ST_FORMAT_VERSION 1
#define ST_GEN_END (UINT64_C(1) << 32) /* ratchet exhausted */
#define ST_EMPTY UINT32_MAX            /* free map slot (never a node/leaf index) */

/* --- A small uint32 -> pointer hash map ------------------------------- */

/* Open addressing with linear probing and backward-shift deletion, load at
 * most 1/2. Pointers stay put when the table grows, so values may be held
 * across inserts. */
struct st_map {
  uint32_t *keys;
  void **vals;
  size_t cap; /* 0 or a power of two */
  size_t count;
};

typedef struct {
  uint8_t secret[MLS_MAX_HASH];
} st_node;

typedef struct {
  uint64_t next;  /* generation `secret` belongs to; ST_GEN_END when used up */
  uint64_t floor; /* below this, a missing key was evicted (EWINDOW) */
  uint8_t secret[MLS_MAX_HASH];
  secret_tree_keys *kept; /* unconsumed keys, ascending generation */
  size_t n_kept, cap_kept;
} st_ratchet;

typedef struct {
  st_ratchet r[2]; /* indexed by secret_tree_type */
} st_leaf;

static size_t st_hash(uint32_t k, size_t cap) {
  k ^= k >> 16;
  k *= 0x85ebca6bu;
  k ^= k >> 13;
  k *= 0xc2b2ae35u;
  k ^= k >> 16;
  return k & (cap - 1);
}

static void *map_get(const st_map *m, uint32_t key) {
  if (!m->cap) return NULL;
  for (size_t i = st_hash(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
    if (m->keys[i] == ST_EMPTY) return NULL;
    if (m->keys[i] == key) return m->vals[i];
  }
}

static void map_put_nogrow(st_map *m, uint32_t key, void *val) {
  size_t i = st_hash(key, m->cap);
  while (m->keys[i] != ST_EMPTY && m->keys[i] != key) i = (i + 1) & (m->cap - 1);
  if (m->keys[i] == ST_EMPTY) m->count++;
  m->keys[i] = key;
  m->vals[i] = val;
}

/* Room for `extra` more entries without failing later. */
static int map_reserve(st_map *m, size_t extra) {
  size_t need = m->count + extra;
  if (need <= m->cap / 2) return 0;
  size_t cap = m->cap ? m->cap : 16;
  while (cap / 2 < need) {
    if (cap > SIZE_MAX / 4) return TSR_ENOMEM;
    cap *= 2;
  }
  uint32_t *keys = malloc(cap * sizeof *keys);
  void **vals = malloc(cap * sizeof *vals);
  if (!keys || !vals) {
    free(keys);
    free(vals);
    return TSR_ENOMEM;
  }
  for (size_t i = 0; i < cap; i++) keys[i] = ST_EMPTY;
  st_map grown = {keys, vals, cap, 0};
  for (size_t i = 0; i < m->cap; i++)
    if (m->keys[i] != ST_EMPTY) map_put_nogrow(&grown, m->keys[i], m->vals[i]);
  free(m->keys);
  free(m->vals);
  *m = grown;
  return 0;
}

/* Removes key and returns its value (NULL if absent). */
static void *map_del(st_map *m, uint32_t key) {
  if (!m->cap) return NULL;
  size_t mask = m->cap - 1, i = st_hash(key, m->cap);
  while (m->keys[i] != key) {
    if (m->keys[i] == ST_EMPTY) return NULL;
    i = (i + 1) & mask;
  }
  void *val = m->vals[i];
  /* Backward shift: move later members of the probe run into the hole
   * when their home slot does not lie cyclically in (hole, j]. */
  size_t hole = i;
  for (size_t j = (i + 1) & mask; m->keys[j] != ST_EMPTY; j = (j + 1) & mask) {
    size_t home = st_hash(m->keys[j], m->cap);
    bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
    if (stays) continue;
    m->keys[hole] = m->keys[j];
    m->vals[hole] = m->vals[j];
    hole = j;
  }
  m->keys[hole] = ST_EMPTY;
  m->count--;
  return val;
}

static void map_free(st_map *m) {
  free(m->keys);
  free(m->vals);
  *m = (st_map){0};
}

/* Sorted keys of a map (caller frees), for deterministic serialisation. */
static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

static int map_sorted_keys(const st_map *m, uint32_t **out) {
  *out = NULL;
  if (!m->count) return 0;
  uint32_t *k = malloc(m->count * sizeof *k);
  if (!k) return TSR_ENOMEM;
  size_t n = 0;
  for (size_t i = 0; i < m->cap; i++)
    if (m->keys[i] != ST_EMPTY) k[n++] = m->keys[i];
  qsort(k, n, sizeof *k, cmp_u32);
  *out = k;
  return 0;
}

/* --- Tree state ------------------------------------------------------- */

static st_map *nodes_of(const secret_tree *st) { return st->nodes; }
static st_map *leaves_of(const secret_tree *st) { return st->leaves; }

static void node_free(st_node *n) {
  if (!n) return;
  secure_wipe(n, sizeof *n);
  free(n);
}

static void ratchet_clear(st_ratchet *r) {
  if (r->kept) {
    secure_wipe(r->kept, r->cap_kept * sizeof *r->kept);
    free(r->kept);
  }
  secure_wipe(r, sizeof *r);
}

static void leaf_free(st_leaf *l) {
  if (!l) return;
  ratchet_clear(&l->r[0]);
  ratchet_clear(&l->r[1]);
  free(l);
}

void secret_tree_keys_wipe(secret_tree_keys *k) {
  if (k) secure_wipe(k, sizeof *k);
}

void secret_tree_free(secret_tree *st) {
  if (!st) return;
  st_map *nm = nodes_of(st), *lm = leaves_of(st);
  if (nm) {
    for (size_t i = 0; i < nm->cap; i++)
      if (nm->keys[i] != ST_EMPTY) node_free(nm->vals[i]);
    map_free(nm);
    free(nm);
  }
  if (lm) {
    for (size_t i = 0; i < lm->cap; i++)
      if (lm->keys[i] != ST_EMPTY) leaf_free(lm->vals[i]);
    map_free(lm);
    free(lm);
  }
  *st = (secret_tree){0};
}

/* Empty tree shell with both maps allocated. */
static int st_alloc(secret_tree *st, const mls_suite *s, uint32_t n_leaves,
                    const secret_tree_config *cfg) {
  *st = (secret_tree){0};
  st_map *nm = calloc(1, sizeof *nm), *lm = calloc(1, sizeof *lm);
  if (!nm || !lm) {
    free(nm);
    free(lm);
    return TSR_ENOMEM;
  }
  st->suite = s;
  st->n_leaves = n_leaves;
  st->cfg = cfg ? *cfg
                : (secret_tree_config){SECRET_TREE_DEFAULT_MAX_AHEAD,
                                       SECRET_TREE_DEFAULT_MAX_SKIPPED};
  st->nodes = nm;
  st->leaves = lm;
  return 0;
}

void secret_tree_get_stats(const secret_tree *st, secret_tree_stats *out) {
  *out = (secret_tree_stats){0};
  if (!st || !st->nodes) return;
  out->node_secrets = st->nodes->count;
  out->leaves = st->leaves->count;
  for (size_t i = 0; i < st->leaves->cap; i++) {
    if (st->leaves->keys[i] == ST_EMPTY) continue;
    const st_leaf *l = st->leaves->vals[i];
    out->kept_keys += l->r[0].n_kept + l->r[1].n_kept;
  }
}

static bool leaves_ok(uint32_t n) {
  return n >= 1 && n <= TM_MAX_LEAVES && !(n & (n - 1));
}

int secret_tree_init(secret_tree *st, const mls_suite *s, bytes_t encryption_secret,
                     uint32_t n_leaves, const secret_tree_config *cfg) {
  if (!st || !s) return TSR_EINVAL;
  if (!leaves_ok(n_leaves) || encryption_secret.len != s->hash_len ||
      !encryption_secret.ptr)
    return TSR_EINVAL;
  int rc = st_alloc(st, s, n_leaves, cfg);
  if (rc) return rc;
  st_node *root = calloc(1, sizeof *root);
  if (!root || (rc = map_reserve(nodes_of(st), 1))) {
    free(root);
    secret_tree_free(st);
    return rc ? rc : TSR_ENOMEM;
  }
  memcpy(root->secret, encryption_secret.ptr, s->hash_len);
  map_put_nogrow(nodes_of(st), tm_root(n_leaves), root);
  return 0;
}

/* Secrets on the way from the nearest stored ancestor down to a leaf,
 * computed on the stack without touching the tree: the off-path children
 * that derivation would keep, and the leaf's two ratchet secrets. Callers
 * wipe it after use. */
typedef struct {
  uint32_t top;   /* stored ancestor the derivation starts from */
  uint32_t depth; /* levels from top down to the leaf */
  uint32_t kid_idx[TM_MAX_PATH];
  uint8_t kid[TM_MAX_PATH][MLS_MAX_HASH];
  uint8_t ratchet[2][MLS_MAX_HASH]; /* indexed by secret_tree_type */
} st_path;

static int st_path_compute(const secret_tree *st, uint32_t leaf, st_path *p) {
  const mls_suite *s = st->suite;
  size_t nh = s->hash_len;
  const st_map *nm = nodes_of(st);
  uint32_t x = tm_leaf_to_node(leaf), top = x;
  const st_node *start;
  while (!(start = map_get(nm, top))) {
    top = tm_parent(top, st->n_leaves);
    if (top == TM_NONE) return TSR_ESTATE; /* leaf secret already gone */
  }
  p->top = top;
  p->depth = tm_level(top);
  uint8_t cur[MLS_MAX_HASH], left[MLS_MAX_HASH], right[MLS_MAX_HASH];
  memcpy(cur, start->secret, nh);
  uint32_t node = top;
  int rc = 0;
  for (uint32_t i = 0; i < p->depth && !rc; i++) {
    rc = mls_expand_with_label(s, BYTES(cur, nh), "tree", BYTES("left", 4), left, nh);
    if (!rc)
      rc = mls_expand_with_label(s, BYTES(cur, nh), "tree", BYTES("right", 5), right, nh);
    if (rc) break;
    uint32_t l = tm_left(node), r = tm_right(node);
    bool go_left = x < node;
    p->kid_idx[i] = go_left ? r : l;
    memcpy(p->kid[i], go_left ? right : left, nh);
    memcpy(cur, go_left ? left : right, nh);
    node = go_left ? l : r;
  }
  if (!rc)
    rc = mls_expand_with_label(s, BYTES(cur, nh), "handshake", BYTES_NONE,
                               p->ratchet[SECRET_TREE_HANDSHAKE], nh);
  if (!rc)
    rc = mls_expand_with_label(s, BYTES(cur, nh), "application", BYTES_NONE,
                               p->ratchet[SECRET_TREE_APPLICATION], nh);
  secure_wipe(cur, sizeof cur);
  secure_wipe(left, sizeof left);
  secure_wipe(right, sizeof right);
  if (rc) secure_wipe(p, sizeof *p);
  return rc;
}

/* Allocates the leaf and the off-path nodes of p, and room for them in
 * the maps, so that st_leaf_commit cannot fail. Nothing is inserted. */
static int st_leaf_prepare(secret_tree *st, const st_path *p, st_leaf **out,
                           st_node *kids[TM_MAX_PATH]) {
  size_t nh = st->suite->hash_len;
  for (uint32_t i = 0; i < p->depth; i++) kids[i] = NULL;
  st_leaf *nl = calloc(1, sizeof *nl);
  int rc = nl ? 0 : TSR_ENOMEM;
  for (uint32_t i = 0; i < p->depth && !rc; i++)
    if (!(kids[i] = calloc(1, sizeof *kids[i]))) rc = TSR_ENOMEM;
  if (!rc) rc = map_reserve(nodes_of(st), p->depth);
  if (!rc) rc = map_reserve(leaves_of(st), 1);
  if (rc) {
    for (uint32_t i = 0; i < p->depth; i++) free(kids[i]); /* still all zero */
    free(nl);
    return rc;
  }
  for (uint32_t i = 0; i < p->depth; i++) memcpy(kids[i]->secret, p->kid[i], nh);
  memcpy(nl->r[SECRET_TREE_HANDSHAKE].secret, p->ratchet[SECRET_TREE_HANDSHAKE], nh);
  memcpy(nl->r[SECRET_TREE_APPLICATION].secret, p->ratchet[SECRET_TREE_APPLICATION], nh);
  *out = nl;
  return 0;
}

/* Inserts a prepared leaf (§9.2): the starting ancestor's secret is
 * deleted, the off-path children are kept. */
static void st_leaf_commit(secret_tree *st, uint32_t leaf, const st_path *p, st_leaf *nl,
                           st_node *kids[TM_MAX_PATH]) {
  st_map *nm = nodes_of(st);
  node_free(map_del(nm, p->top));
  for (uint32_t i = 0; i < p->depth; i++) map_put_nogrow(nm, p->kid_idx[i], kids[i]);
  map_put_nogrow(leaves_of(st), leaf, nl);
}

static void st_leaf_abort(const st_path *p, st_leaf *nl, st_node *kids[TM_MAX_PATH]) {
  for (uint32_t i = 0; i < p->depth; i++) node_free(kids[i]);
  leaf_free(nl);
}

static int st_check_args(const secret_tree *st, uint32_t leaf, secret_tree_type type) {
  if (!st || !st->suite || leaf >= st->n_leaves) return TSR_EINVAL;
  if (type != SECRET_TREE_HANDSHAKE && type != SECRET_TREE_APPLICATION) return TSR_EINVAL;
  return 0;
}

/* --- Ratchets ----------------------------------------------------------- */

static const secret_tree_keys *ratchet_find(const st_ratchet *r, uint32_t gen,
                                            size_t *pos) {
  size_t lo = 0, hi = r->n_kept;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (r->kept[mid].generation < gen)
      lo = mid + 1;
    else
      hi = mid;
  }
  *pos = lo;
  return lo < r->n_kept && r->kept[lo].generation == gen ? &r->kept[lo] : NULL;
}

static void ratchet_drop(st_ratchet *r, size_t pos) {
  secure_wipe(&r->kept[pos], sizeof r->kept[pos]);
  memmove(&r->kept[pos], &r->kept[pos + 1], (r->n_kept - pos - 1) * sizeof *r->kept);
  r->n_kept--;
  secure_wipe(&r->kept[r->n_kept], sizeof r->kept[r->n_kept]);
}

static int ratchet_reserve(st_ratchet *r, size_t extra) {
  if (r->n_kept + extra <= r->cap_kept) return 0;
  size_t cap = r->n_kept + extra;
  secret_tree_keys *k = calloc(cap, sizeof *k);
  if (!k) return TSR_ENOMEM;
  if (r->n_kept) memcpy(k, r->kept, r->n_kept * sizeof *k);
  if (r->kept) {
    secure_wipe(r->kept, r->cap_kept * sizeof *r->kept);
    free(r->kept);
  }
  r->kept = k;
  r->cap_kept = cap;
  return 0;
}

/* From generation gen's ratchet secret: its key and nonce into keys
 * (unless NULL) and the next generation's secret into next (unless NULL),
 * with one keyed HMAC. DeriveTreeSecret's context is the generation,
 * big-endian. */
static int ratchet_derive(const mls_suite *s, const uint8_t *secret, uint32_t gen,
                          secret_tree_keys *keys, uint8_t *next) {
  const uint8_t ctx[4] = {(uint8_t)(gen >> 24), (uint8_t)(gen >> 16), (uint8_t)(gen >> 8),
                          (uint8_t)gen};
  mls_expand_req req[3];
  size_t n = 0;
  if (keys) {
    *keys = (secret_tree_keys){.generation = gen}; /* unused tail bytes stay zero */
    req[n++] = (mls_expand_req){"key", BYTES(ctx, sizeof ctx), keys->key, s->key_len};
    req[n++] =
        (mls_expand_req){"nonce", BYTES(ctx, sizeof ctx), keys->nonce, s->nonce_len};
  }
  if (next)
    req[n++] = (mls_expand_req){"secret", BYTES(ctx, sizeof ctx), next, s->hash_len};
  return mls_expand_with_labels(s, BYTES(secret, s->hash_len), req, n);
}

/* Key and nonce of generation gen from that generation's ratchet secret. */
static int ratchet_keys(const mls_suite *s, const uint8_t *secret, uint32_t gen,
                        secret_tree_keys *out) {
  return ratchet_derive(s, secret, gen, out, NULL);
}

/* Key of generation gen without changing r: a kept key is copied, a
 * future one is derived from a stack copy of the ratchet secret. */
static int ratchet_peek(const secret_tree *st, const st_ratchet *r, uint32_t gen,
                        secret_tree_keys *out) {
  const mls_suite *s = st->suite;
  size_t nh = s->hash_len;
  if (gen < r->next) {
    size_t pos;
    const secret_tree_keys *k = ratchet_find(r, gen, &pos);
    if (!k) return gen < r->floor ? TSR_EWINDOW : TSR_EREPLAY;
    *out = *k;
    return 0;
  }
  if (gen - r->next > st->cfg.max_ahead) return TSR_EWINDOW;
  uint8_t cur[MLS_MAX_HASH], nxt[MLS_MAX_HASH];
  memcpy(cur, r->secret, nh);
  int rc = 0;
  for (uint64_t g = r->next; g < gen && !rc; g++) {
    rc = mls_derive_tree_secret(s, BYTES(cur, nh), "secret", (uint32_t)g, nxt, nh);
    if (!rc) memcpy(cur, nxt, nh);
  }
  if (!rc) rc = ratchet_keys(s, cur, gen, out);
  secure_wipe(cur, sizeof cur);
  secure_wipe(nxt, sizeof nxt);
  return rc;
}

/* Hand out generation gen and delete it: a kept key is dropped, a future
 * one advances the ratchet past it, keeping the keys of the newest
 * max_skipped jumped-over generations and evicting the oldest kept keys
 * beyond that bound. With out NULL (consume after peek) gen's own key and
 * nonce are not derived. On failure r is unchanged. */
static int ratchet_take(const secret_tree *st, st_ratchet *r, uint32_t gen,
                        secret_tree_keys *out) {
  const mls_suite *s = st->suite;
  size_t nh = s->hash_len;
  if (gen < r->next) {
    size_t pos;
    const secret_tree_keys *k = ratchet_find(r, gen, &pos);
    if (!k) return gen < r->floor ? TSR_EWINDOW : TSR_EREPLAY;
    if (out) *out = *k;
    ratchet_drop(r, pos);
    return 0;
  }
  uint64_t gap = gen - r->next; /* generations jumped over */
  if (gap > st->cfg.max_ahead) return TSR_EWINDOW;
  uint64_t limit = st->cfg.max_skipped;
  /* Only the newest max_skipped of the jumped generations could be kept,
   * so only those get keys; the rest are merely ratcheted past. */
  uint64_t keep_new = gap < limit ? gap : limit;
  size_t add = (size_t)keep_new;
  int rc = ratchet_reserve(r, add);
  if (rc) return rc;

  uint8_t cur[MLS_MAX_HASH], nxt[MLS_MAX_HASH];
  memcpy(cur, r->secret, nh);
  secret_tree_keys *slot = add ? r->kept + r->n_kept : NULL; /* reserved, not yet live */
  secret_tree_keys want = {0};
  uint64_t first_kept = (uint64_t)gen - keep_new;
  for (uint64_t g = r->next; g <= gen && !rc; g++) {
    secret_tree_keys *keys = g == gen          ? (out ? &want : NULL)
                             : g >= first_kept ? slot++
                                               : NULL;
    rc = ratchet_derive(s, cur, (uint32_t)g, keys, nxt);
    if (!rc) memcpy(cur, nxt, nh);
  }
  secure_wipe(nxt, sizeof nxt);
  if (rc) {
    if (add) secure_wipe(r->kept + r->n_kept, add * sizeof *r->kept);
    secure_wipe(cur, sizeof cur);
    secure_wipe(&want, sizeof want);
    return rc;
  }
  /* Commit: the old ratchet secret is replaced by the next one. */
  memcpy(r->secret, cur, nh);
  secure_wipe(cur, sizeof cur);
  r->next = (uint64_t)gen + 1;
  if (keep_new < gap && first_kept > r->floor) r->floor = first_kept;
  r->n_kept += add;
  while (r->n_kept > limit) { /* evict the oldest */
    uint64_t past = (uint64_t)r->kept[0].generation + 1;
    if (past > r->floor) r->floor = past;
    ratchet_drop(r, 0);
  }
  if (out) *out = want;
  secure_wipe(&want, sizeof want);
  return 0;
}

/* --- Receiving and sending -------------------------------------------- */

/* ratchet_take on leaf's ratchet. A leaf not derived yet is derived into
 * a detached leaf first, which enters the tree (deleting the ancestor it
 * came from) only if the take succeeded: on failure nothing changed. */
static int st_take(secret_tree *st, uint32_t leaf, secret_tree_type type, uint32_t gen,
                   secret_tree_keys *out) {
  st_leaf *l = map_get(leaves_of(st), leaf);
  if (l) return ratchet_take(st, &l->r[type], gen, out);
  st_path p;
  st_node *kids[TM_MAX_PATH];
  int rc = st_path_compute(st, leaf, &p);
  if (!rc) rc = st_leaf_prepare(st, &p, &l, kids);
  if (rc) {
    secure_wipe(&p, sizeof p);
    return rc;
  }
  rc = ratchet_take(st, &l->r[type], gen, out);
  if (rc)
    st_leaf_abort(&p, l, kids);
  else
    st_leaf_commit(st, leaf, &p, l, kids);
  secure_wipe(&p, sizeof p);
  return rc;
}

/* Receive side of get and consume; out may be NULL. */
static int st_receive(secret_tree *st, uint32_t leaf, secret_tree_type type, uint32_t gen,
                      secret_tree_keys *out) {
  secret_tree_keys tmp = {0};
  int rc = st_check_args(st, leaf, type);
  if (!rc) rc = st_take(st, leaf, type, gen, out ? &tmp : NULL);
  if (out) *out = tmp;
  secure_wipe(&tmp, sizeof tmp);
  if (rc && out) secret_tree_keys_wipe(out);
  return rc;
}

int secret_tree_next(secret_tree *st, uint32_t leaf, secret_tree_type type,
                     secret_tree_keys *out) {
  if (!out) return TSR_EINVAL;
  int rc = st_check_args(st, leaf, type);
  uint64_t gen = 0;
  if (!rc) {
    const st_leaf *l = map_get(leaves_of(st), leaf);
    if (l) gen = l->r[type].next;
    if (gen >= ST_GEN_END) rc = TSR_ELIMIT;
  }
  if (rc) {
    secret_tree_keys_wipe(out);
    return rc;
  }
  return st_receive(st, leaf, type, (uint32_t)gen, out);
}

int secret_tree_get(secret_tree *st, uint32_t leaf, secret_tree_type type,
                    uint32_t generation, secret_tree_keys *out) {
  if (!out) return TSR_EINVAL;
  return st_receive(st, leaf, type, generation, out);
}

int secret_tree_peek(secret_tree *st, uint32_t leaf, secret_tree_type type,
                     uint32_t generation, secret_tree_keys *out) {
  if (!out) return TSR_EINVAL;
  secret_tree_keys tmp = {0};
  int rc = st_check_args(st, leaf, type);
  if (!rc) {
    const st_leaf *l = map_get(leaves_of(st), leaf);
    if (l) {
      rc = ratchet_peek(st, &l->r[type], generation, &tmp);
    } else {
      /* What deriving the leaf would give, without deriving it. */
      st_path p;
      st_ratchet r = {0};
      rc = st_path_compute(st, leaf, &p);
      if (!rc) {
        memcpy(r.secret, p.ratchet[type], st->suite->hash_len);
        rc = ratchet_peek(st, &r, generation, &tmp);
      }
      secure_wipe(&p, sizeof p);
      secure_wipe(&r, sizeof r);
    }
  }
  *out = tmp;
  secure_wipe(&tmp, sizeof tmp);
  if (rc) secret_tree_keys_wipe(out);
  return rc;
}

int secret_tree_consume(secret_tree *st, uint32_t leaf, secret_tree_type type,
                        uint32_t generation) {
  return st_receive(st, leaf, type, generation, NULL);
}

int secret_tree_next_generation(const secret_tree *st, uint32_t leaf,
                                secret_tree_type type, uint32_t *generation) {
  if (!st || !st->suite || !generation || leaf >= st->n_leaves) return TSR_EINVAL;
  if (type != SECRET_TREE_HANDSHAKE && type != SECRET_TREE_APPLICATION) return TSR_EINVAL;
  const st_leaf *l = map_get(leaves_of(st), leaf);
  if (l && l->r[type].next >= ST_GEN_END) return TSR_ELIMIT;
  *generation = l ? (uint32_t)l->r[type].next : 0;
  return 0;
}

/* --- Persistence ------------------------------------------------------ */

/* Format (version 1), integers big-endian, vectors with MLS headers:
 *   u8 version, u16 suite, u32 n_leaves, u32 max_ahead, u32 max_skipped,
 *   { u32 node, secret[Nh] }<V>   node secrets, ascending node index
 *   { u32 leaf, Ratchet hs, Ratchet app }<V>   ascending leaf index
 *   Ratchet = u64 next, u64 floor, secret[Nh],
 *             { u32 generation, key[Nk], nonce[Nn] }<V> ascending */
int secret_tree_serialize(const secret_tree *st, buf_t *out) {
  if (!st || !st->suite || !out) return TSR_EINVAL;
  const mls_suite *s = st->suite;
  size_t nh = s->hash_len;
  uint32_t *nk = NULL, *lk = NULL;
  int rc = map_sorted_keys(nodes_of(st), &nk);
  if (!rc) rc = map_sorted_keys(leaves_of(st), &lk);
  if (rc) {
    free(nk);
    return rc;
  }
  size_t start = out->len;
  wr_u8(out, ST_FORMAT_VERSION);
  wr_u16(out, s->id);
  wr_u32(out, st->n_leaves);
  wr_u32(out, st->cfg.max_ahead);
  wr_u32(out, st->cfg.max_skipped);
  size_t mark = wr_vec_begin(out);
  for (size_t i = 0; i < nodes_of(st)->count; i++) {
    const st_node *n = map_get(nodes_of(st), nk[i]);
    wr_u32(out, nk[i]);
    wr_raw(out, BYTES(n->secret, nh));
  }
  wr_vec_end(out, mark);
  mark = wr_vec_begin(out);
  for (size_t i = 0; i < leaves_of(st)->count; i++) {
    const st_leaf *l = map_get(leaves_of(st), lk[i]);
    wr_u32(out, lk[i]);
    for (int t = 0; t < 2; t++) {
      const st_ratchet *r = &l->r[t];
      wr_u64(out, r->next);
      wr_u64(out, r->floor);
      wr_raw(out, BYTES(r->secret, nh));
      size_t km = wr_vec_begin(out);
      for (size_t j = 0; j < r->n_kept; j++) {
        wr_u32(out, r->kept[j].generation);
        wr_raw(out, BYTES(r->kept[j].key, s->key_len));
        wr_raw(out, BYTES(r->kept[j].nonce, s->nonce_len));
      }
      wr_vec_end(out, km);
    }
  }
  wr_vec_end(out, mark);
  free(nk);
  free(lk);
  if (out->err) {
    if (out->len > start) {
      secure_wipe(out->ptr + start, out->len - start);
      out->len = start;
    }
    return out->err;
  }
  return 0;
}

/* rd_vec, but a failed read leaves sub as a failed reader over an empty
 * (non-NULL) range rather than a NULL one. */
static int st_rd_vec(reader_t *r, reader_t *sub) {
  static const uint8_t none[1];
  uint32_t n;
  bytes_t body = BYTES(none, 0);
  int rc = rd_varint(r, &n);
  if (!rc) rc = rd_raw(r, n, &body);
  if (rc) body = BYTES(none, 0);
  rd_init(sub, body);
  sub->err = rc;
  return rc;
}

static int ratchet_decode(reader_t *r, const secret_tree *st, st_ratchet *rt) {
  const mls_suite *s = st->suite;
  bytes_t sec;
  reader_t kr;
  rd_u64(r, &rt->next);
  rd_u64(r, &rt->floor);
  rd_raw(r, s->hash_len, &sec);
  st_rd_vec(r, &kr);
  if (r->err || rt->next > ST_GEN_END || rt->floor > rt->next) return TSR_EDECODE;
  memcpy(rt->secret, sec.ptr, s->hash_len);
  size_t each = 4 + s->key_len + s->nonce_len;
  if (rd_left(&kr) % each) return TSR_EDECODE;
  size_t n = rd_left(&kr) / each;
  /* One key under max_skipped 0 is tolerated: states written before peek
   * became side-effect free could hold a peeked key there. */
  size_t limit = st->cfg.max_skipped ? st->cfg.max_skipped : 1;
  if (n > limit) return TSR_EDECODE;
  if (n && ratchet_reserve(rt, n)) return TSR_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    secret_tree_keys *k = &rt->kept[i];
    bytes_t key, nonce;
    rd_u32(&kr, &k->generation);
    rd_raw(&kr, s->key_len, &key);
    rd_raw(&kr, s->nonce_len, &nonce);
    if (kr.err) return TSR_EDECODE;
    if (k->generation < rt->floor || k->generation >= rt->next ||
        (i && k->generation <= rt->kept[i - 1].generation))
      return TSR_EDECODE;
    memcpy(k->key, key.ptr, s->key_len);
    memcpy(k->nonce, nonce.ptr, s->nonce_len);
    rt->n_kept = i + 1;
  }
  return rd_done(&kr);
}

/* Each leaf must get its secret exactly once: no stored node may sit on
 * the path above another stored node or above a derived leaf. */
static int st_check_invariant(const secret_tree *st) {
  const st_map *nm = nodes_of(st), *lm = leaves_of(st);
  for (size_t i = 0; i < nm->cap; i++) {
    if (nm->keys[i] == ST_EMPTY) continue;
    for (uint32_t a = tm_parent(nm->keys[i], st->n_leaves); a != TM_NONE;
         a = tm_parent(a, st->n_leaves))
      if (map_get(nm, a)) return TSR_EDECODE;
  }
  for (size_t i = 0; i < lm->cap; i++) {
    if (lm->keys[i] == ST_EMPTY) continue;
    for (uint32_t a = tm_leaf_to_node(lm->keys[i]); a != TM_NONE;
         a = tm_parent(a, st->n_leaves))
      if (map_get(nm, a)) return TSR_EDECODE;
  }
  return 0;
}

int secret_tree_deserialize(secret_tree *st, bytes_t in) {
  if (!st) return TSR_EINVAL;
  reader_t r, vr;
  rd_init(&r, in);
  uint8_t version;
  uint16_t suite_id;
  uint32_t n_leaves;
  secret_tree_config cfg;
  rd_u8(&r, &version);
  rd_u16(&r, &suite_id);
  rd_u32(&r, &n_leaves);
  rd_u32(&r, &cfg.max_ahead);
  rd_u32(&r, &cfg.max_skipped);
  if (r.err) return TSR_EDECODE;
  if (version != ST_FORMAT_VERSION) return TSR_EUNSUPPORTED;
  const mls_suite *s = mls_suite_get(suite_id);
  if (!s) return TSR_EUNSUPPORTED;
  if (!leaves_ok(n_leaves)) return TSR_EDECODE;
  secret_tree t;
  int rc = st_alloc(&t, s, n_leaves, &cfg);
  if (rc) return rc;
  uint32_t width = tm_node_width(n_leaves);
  size_t nh = s->hash_len;

  int64_t prev = -1;
  if (st_rd_vec(&r, &vr)) rc = TSR_EDECODE;
  while (!rc && rd_more(&vr)) {
    uint32_t idx;
    bytes_t sec;
    rd_u32(&vr, &idx);
    rd_raw(&vr, nh, &sec);
    if (vr.err || idx >= width || (int64_t)idx <= prev) {
      rc = TSR_EDECODE;
      break;
    }
    prev = idx;
    st_node *n = calloc(1, sizeof *n);
    if (!n || (rc = map_reserve(nodes_of(&t), 1))) {
      free(n);
      rc = rc ? rc : TSR_ENOMEM;
      break;
    }
    memcpy(n->secret, sec.ptr, nh);
    map_put_nogrow(nodes_of(&t), idx, n);
  }
  if (!rc && vr.err) rc = TSR_EDECODE;

  prev = -1;
  if (!rc && st_rd_vec(&r, &vr)) rc = TSR_EDECODE;
  while (!rc && rd_more(&vr)) {
    uint32_t leaf;
    rd_u32(&vr, &leaf);
    if (vr.err || leaf >= n_leaves || (int64_t)leaf <= prev) {
      rc = TSR_EDECODE;
      break;
    }
    prev = leaf;
    st_leaf *l = calloc(1, sizeof *l);
    if (!l || (rc = map_reserve(leaves_of(&t), 1))) {
      free(l);
      rc = rc ? rc : TSR_ENOMEM;
      break;
    }
    rc = ratchet_decode(&vr, &t, &l->r[0]);
    if (!rc) rc = ratchet_decode(&vr, &t, &l->r[1]);
    if (rc) {
      leaf_free(l);
      break;
    }
    map_put_nogrow(leaves_of(&t), leaf, l);
  }
  if (!rc && vr.err) rc = TSR_EDECODE;
  if (!rc) rc = rd_done(&r);
  if (!rc) rc = st_check_invariant(&t);
  if (rc) {
    secret_tree_free(&t);
    return rc;
  }
  *st = t;
  return 0;
}

/* --- Sender data ------------------------------------------------------ */

int secret_tree_sender_data_key(const mls_suite *s, bytes_t sender_data_secret,
                                bytes_t ciphertext, uint8_t key[MLS_MAX_AEAD_KEY],
                                uint8_t nonce[MLS_MAX_NONCE]) {
  if (!s || !key || !nonce) return TSR_EINVAL;
  if (sender_data_secret.len != s->hash_len || !sender_data_secret.ptr) return TSR_EINVAL;
  bytes_t sample = ciphertext;
  if (sample.len > s->hash_len) sample.len = s->hash_len;
  const mls_expand_req req[] = {{"key", sample, key, s->key_len},
                                {"nonce", sample, nonce, s->nonce_len}};
  int rc = mls_expand_with_labels(s, sender_data_secret, req, 2);
  if (rc) {
    secure_wipe(key, s->key_len);
    secure_wipe(nonce, s->nonce_len);
  }
  return rc;
}
