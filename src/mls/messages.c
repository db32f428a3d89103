/* RFC 9420 wire structures: encoders, strict decoders and deep copies.
 *
 * Decoders lean on the reader's sticky error: a function issues its reads
 * in order and looks at the reader once at the end. Only arena exhaustion
 * needs its own path (TSR_ENOMEM), so functions that allocate report their
 * first failure through an `int rc` that callers keep (first one wins).
 * No structure in the grammar is recursive, so nesting depth is bounded
 * by the grammar itself (about ten levels: MLSMessage -> PublicMessage
 * -> Commit -> Proposal -> KeyPackage -> LeafNode -> Credential -> ...)
 * and no explicit depth counter is needed.
 *
 * Encoders write whatever they are given; a discriminator with no defined
 * body (unknown proposal type, blank node, ...) makes the buffer fail with
 * TSR_EINVAL, since there is nothing correct to write. */
#include "mls/messages.h"

#include <string.h>

#include "tessera/error.h"

/* --- Shared helpers ----------------------------------------------------- */

static int keep(int rc, int next) { return rc ? rc : next; }

static void set_rc(int *rc, int err) {
  if (!*rc) *rc = err;
}

/* Result of a reader-based function: the first recorded failure (which
 * may be TSR_ENOMEM), else the reader's own state. */
static int rd_status(const reader_t *r, int rc) {
  return rc ? rc : r->err ? TSR_EDECODE : 0;
}

static void wr_bad(buf_t *w) {
  if (!w->err) w->err = TSR_EINVAL;
}

/* Enums without an extension point: the value must be in [1, max]. */
static void rd_enum8(reader_t *r, uint8_t max, uint8_t *v) {
  if (rd_u8(r, v) == 0 && (*v < 1 || *v > max)) rd_fail(r);
}

static void rd_enum16(reader_t *r, uint16_t max, uint16_t *v) {
  if (rd_u16(r, v) == 0 && (*v < 1 || *v > max)) rd_fail(r);
}

/* rd_vec without handing rd_init a NULL view on failure (NULL + 0 is
 * undefined behaviour in C and trips UBSan): a failed sub-reader is empty
 * at the parent's end. */
static int rd_sub(reader_t *r, reader_t *sub) {
  bytes_t body;
  if (rd_opaque(r, &body) == 0) {
    rd_init(sub, body);
    return 0;
  }
  *sub = (reader_t){r->p, r->p, TSR_EDECODE};
  return TSR_EDECODE;
}

/* Vector of uint16 or uint32. The count follows from the byte length of
 * the body, so the array is never larger than the input it came from. */
static void *rd_int_vec(reader_t *r, arena_t *a, size_t width, size_t *n, int *rc) {
  reader_t sub;
  *n = 0;
  if (rd_sub(r, &sub)) {
    set_rc(rc, TSR_EDECODE);
    return NULL;
  }
  size_t len = rd_left(&sub);
  if (len % width) {
    set_rc(rc, rd_fail(r));
    return NULL;
  }
  if (len == 0) return NULL;
  uint8_t *p = arena_alloc(a, len);
  if (!p) {
    rd_fail(r);
    set_rc(rc, TSR_ENOMEM);
    return NULL;
  }
  for (size_t i = 0; i < len / width; i++) {
    if (width == 2)
      rd_u16(&sub, (uint16_t *)p + i);
    else
      rd_u32(&sub, (uint32_t *)p + i);
  }
  *n = len / width;
  return p;
}

static uint16_t *rd_u16_vec(reader_t *r, arena_t *a, size_t *n, int *rc) {
  return rd_int_vec(r, a, 2, n, rc);
}

static uint32_t *rd_u32_vec(reader_t *r, arena_t *a, size_t *n, int *rc) {
  return rd_int_vec(r, a, 4, n, rc);
}

static void wr_u16_vec(buf_t *w, const uint16_t *v, size_t n) {
  size_t mark = wr_vec_begin(w);
  for (size_t i = 0; i < n; i++) wr_u16(w, v[i]);
  wr_vec_end(w, mark);
}

static void wr_u32_vec(buf_t *w, const uint32_t *v, size_t n) {
  size_t mark = wr_vec_begin(w);
  for (size_t i = 0; i < n; i++) wr_u32(w, v[i]);
  wr_vec_end(w, mark);
}

/* How to encode and decode one structure type through a void pointer:
 * drives vectors of structs, whole-object decoding and deep copies. */
typedef struct {
  size_t size;
  void (*enc)(buf_t *w, const void *v);
  int (*dec)(reader_t *r, arena_t *a, void *v);
} wire_ops;

/* Adapts typed encoder/reader functions to wire_ops. */
#define WIRE_OPS(name, type, encode, read)                                               \
  static void name##_enc(buf_t *w, const void *v) { encode(w, (const type *)v); }        \
  static int name##_dec(reader_t *r, arena_t *a, void *v) {                              \
    return read(r, a, (type *)v);                                                        \
  }                                                                                      \
  static const wire_ops name = {sizeof(type), name##_enc, name##_dec}

static void wr_svec(buf_t *w, const wire_ops *ops, const void *items, size_t n) {
  const uint8_t *p = items;
  size_t mark = wr_vec_begin(w);
  for (size_t i = 0; i < n; i++) ops->enc(w, p + i * ops->size);
  wr_vec_end(w, mark);
}

/* Grows an arena array by doubling, never past `limit` elements. */
static int grow(arena_t *a, size_t size, size_t limit, uint8_t **arr, size_t *cap) {
  size_t ncap = *cap ? *cap * 2 : 4;
  if (ncap > limit) ncap = limit;
  if (ncap > SIZE_MAX / size) return TSR_ENOMEM;
  uint8_t *p = arena_alloc(a, ncap * size);
  if (!p) return TSR_ENOMEM;
  if (*cap) memcpy(p, *arr, *cap * size);
  *arr = p;
  *cap = ncap;
  return 0;
}

/* Vector of structs. The count is never read from the wire: elements are
 * decoded one by one and each takes at least one byte, so the array size
 * is bounded by the bytes actually present. */
static void *rd_svec(reader_t *r, arena_t *a, const wire_ops *ops, size_t *n, int *rc) {
  reader_t sub;
  uint8_t *arr = NULL;
  size_t cap = 0, cnt = 0;
  int err = 0;
  *n = 0;
  rd_sub(r, &sub);
  while (!err && rd_more(&sub)) {
    if (cnt == cap) err = grow(a, ops->size, cnt + rd_left(&sub), &arr, &cap);
    if (err) break;
    const uint8_t *before = rd_pos(&sub);
    err = ops->dec(&sub, a, arr + cnt * ops->size);
    if (!err && rd_pos(&sub) == before) err = rd_fail(&sub); /* no progress */
    cnt++;
  }
  err = keep(err, sub.err ? TSR_EDECODE : 0);
  if (err) {
    rd_fail(r);
    set_rc(rc, err);
    return NULL;
  }
  *n = cnt;
  return arr;
}

/* Decodes one object that must span all of `in`. *out is written only on
 * success; the scratch copy lives in the arena. */
static int decode_whole(bytes_t in, arena_t *a, const wire_ops *ops, void *out) {
  static const uint8_t empty[1];
  reader_t r;
  rd_init(&r, in.ptr ? in : BYTES(empty, 0)); /* no NULL + 0 in rd_init */
  void *tmp = arena_alloc(a, ops->size);
  if (!tmp) return TSR_ENOMEM;
  int rc = ops->dec(&r, a, tmp);
  if (!rc) rc = rd_done(&r);
  if (!rc) memcpy(out, tmp, ops->size);
  return rc;
}

/* Deep copy by round trip: encode, keep the encoding in the arena, decode
 * views into it. Always consistent with the codec, at the cost of one
 * encode and one decode. */
static int copy_via_wire(arena_t *a, const wire_ops *ops, const void *in, void *out) {
  buf_t w;
  buf_init(&w);
  ops->enc(&w, in);
  bytes_t enc = BYTES_NONE;
  int rc = w.err;
  if (!rc) rc = arena_dup(a, buf_view(&w), &enc);
  buf_free(&w);
  if (!rc) rc = decode_whole(enc, a, ops, out);
  return rc == TSR_EDECODE ? TSR_EINVAL : rc;
}

/* --- Credential, extensions, capabilities -------------------------------- */

static void enc_certificate(buf_t *w, const void *v) {
  wr_opaque(w, *(const bytes_t *)v);
}

static int dec_certificate(reader_t *r, arena_t *a, void *v) {
  (void)a;
  return rd_opaque(r, v);
}

static const wire_ops certificate_ops = {sizeof(bytes_t), enc_certificate,
                                         dec_certificate};

void msg_encode_credential(buf_t *w, const mls_credential *v) {
  wr_u16(w, v->credential_type);
  if (v->credential_type == MLS_CREDENTIAL_BASIC)
    wr_opaque(w, v->identity);
  else if (v->credential_type == MLS_CREDENTIAL_X509)
    wr_svec(w, &certificate_ops, v->certificates, v->n_certificates);
  else
    wr_bad(w);
}

/* Only basic and x509 have a defined body; anything else (GREASE
 * included) cannot be delimited, so it is a decode error. */
int msg_read_credential(reader_t *r, arena_t *a, mls_credential *v) {
  memset(v, 0, sizeof *v); /* fields of other variants stay zero */
  int rc = 0;
  rd_enum16(r, MLS_CREDENTIAL_X509, &v->credential_type);
  if (v->credential_type == MLS_CREDENTIAL_BASIC)
    rd_opaque(r, &v->identity);
  else if (v->credential_type == MLS_CREDENTIAL_X509)
    v->certificates = rd_svec(r, a, &certificate_ops, &v->n_certificates, &rc);
  return rd_status(r, rc);
}

static void encode_extension(buf_t *w, const mls_extension *v) {
  wr_u16(w, v->extension_type);
  wr_opaque(w, v->extension_data);
}

static int read_extension(reader_t *r, arena_t *a, mls_extension *v) {
  (void)a;
  rd_u16(r, &v->extension_type);
  rd_opaque(r, &v->extension_data);
  return rd_status(r, 0);
}

WIRE_OPS(extension_ops, mls_extension, encode_extension, read_extension);

void msg_encode_extensions(buf_t *w, const mls_extensions *v) {
  wr_svec(w, &extension_ops, v->items, v->n);
}

int msg_read_extensions(reader_t *r, arena_t *a, mls_extensions *v) {
  int rc = 0;
  v->items = rd_svec(r, a, &extension_ops, &v->n, &rc);
  return rd_status(r, rc);
}

WIRE_OPS(extensions_ops, mls_extensions, msg_encode_extensions, msg_read_extensions);

void msg_encode_capabilities(buf_t *w, const mls_capabilities *v) {
  wr_u16_vec(w, v->versions, v->n_versions);
  wr_u16_vec(w, v->cipher_suites, v->n_cipher_suites);
  wr_u16_vec(w, v->extensions, v->n_extensions);
  wr_u16_vec(w, v->proposals, v->n_proposals);
  wr_u16_vec(w, v->credentials, v->n_credentials);
}

/* Values are not checked: capabilities may list GREASE and unknown types. */
int msg_read_capabilities(reader_t *r, arena_t *a, mls_capabilities *v) {
  int rc = 0;
  v->versions = rd_u16_vec(r, a, &v->n_versions, &rc);
  v->cipher_suites = rd_u16_vec(r, a, &v->n_cipher_suites, &rc);
  v->extensions = rd_u16_vec(r, a, &v->n_extensions, &rc);
  v->proposals = rd_u16_vec(r, a, &v->n_proposals, &rc);
  v->credentials = rd_u16_vec(r, a, &v->n_credentials, &rc);
  return rd_status(r, rc);
}

/* --- LeafNode, KeyPackage ------------------------------------------------ */

/* Fields shared by LeafNode and LeafNodeTBS. */
static void wr_leaf_node_content(buf_t *w, const mls_leaf_node *v) {
  wr_opaque(w, v->encryption_key);
  wr_opaque(w, v->signature_key);
  msg_encode_credential(w, &v->credential);
  msg_encode_capabilities(w, &v->capabilities);
  wr_u8(w, v->leaf_node_source);
  if (v->leaf_node_source == MLS_LEAF_SOURCE_KEY_PACKAGE) {
    wr_u64(w, v->lifetime.not_before);
    wr_u64(w, v->lifetime.not_after);
  } else if (v->leaf_node_source == MLS_LEAF_SOURCE_COMMIT) {
    wr_opaque(w, v->parent_hash);
  } else if (v->leaf_node_source != MLS_LEAF_SOURCE_UPDATE) {
    wr_bad(w);
  }
  msg_encode_extensions(w, &v->extensions);
}

void msg_encode_leaf_node(buf_t *w, const mls_leaf_node *v) {
  wr_leaf_node_content(w, v);
  wr_opaque(w, v->signature);
}

void msg_encode_leaf_node_tbs(buf_t *w, const mls_leaf_node *v, bytes_t group_id,
                              uint32_t leaf_index) {
  wr_leaf_node_content(w, v);
  if (v->leaf_node_source == MLS_LEAF_SOURCE_UPDATE ||
      v->leaf_node_source == MLS_LEAF_SOURCE_COMMIT) {
    wr_opaque(w, group_id);
    wr_u32(w, leaf_index);
  }
}

int msg_read_leaf_node(reader_t *r, arena_t *a, mls_leaf_node *v) {
  memset(v, 0, sizeof *v); /* fields of other variants stay zero */
  rd_opaque(r, &v->encryption_key);
  rd_opaque(r, &v->signature_key);
  int rc = msg_read_credential(r, a, &v->credential);
  rc = keep(rc, msg_read_capabilities(r, a, &v->capabilities));
  rd_enum8(r, MLS_LEAF_SOURCE_COMMIT, &v->leaf_node_source);
  if (v->leaf_node_source == MLS_LEAF_SOURCE_KEY_PACKAGE) {
    rd_u64(r, &v->lifetime.not_before);
    rd_u64(r, &v->lifetime.not_after);
  } else if (v->leaf_node_source == MLS_LEAF_SOURCE_COMMIT) {
    rd_opaque(r, &v->parent_hash);
  }
  rc = keep(rc, msg_read_extensions(r, a, &v->extensions));
  rd_opaque(r, &v->signature);
  return rd_status(r, rc);
}

WIRE_OPS(leaf_node_ops, mls_leaf_node, msg_encode_leaf_node, msg_read_leaf_node);

void msg_encode_key_package_tbs(buf_t *w, const mls_key_package *v) {
  wr_u16(w, v->version);
  wr_u16(w, v->cipher_suite);
  wr_opaque(w, v->init_key);
  msg_encode_leaf_node(w, &v->leaf_node);
  msg_encode_extensions(w, &v->extensions);
}

void msg_encode_key_package(buf_t *w, const mls_key_package *v) {
  msg_encode_key_package_tbs(w, v);
  wr_opaque(w, v->signature);
}

/* The version is not checked here: §10.1 makes that a validation step. */
int msg_read_key_package(reader_t *r, arena_t *a, mls_key_package *v) {
  rd_u16(r, &v->version);
  rd_u16(r, &v->cipher_suite);
  rd_opaque(r, &v->init_key);
  int rc = msg_read_leaf_node(r, a, &v->leaf_node);
  rc = keep(rc, msg_read_extensions(r, a, &v->extensions));
  rd_opaque(r, &v->signature);
  return rd_status(r, rc);
}

WIRE_OPS(key_package_ops, mls_key_package, msg_encode_key_package, msg_read_key_package);

/* --- Ratchet tree -------------------------------------------------------- */

void msg_encode_parent_node(buf_t *w, const mls_parent_node *v) {
  wr_opaque(w, v->encryption_key);
  wr_opaque(w, v->parent_hash);
  wr_u32_vec(w, v->unmerged_leaves, v->n_unmerged_leaves);
}

int msg_read_parent_node(reader_t *r, arena_t *a, mls_parent_node *v) {
  int rc = 0;
  rd_opaque(r, &v->encryption_key);
  rd_opaque(r, &v->parent_hash);
  v->unmerged_leaves = rd_u32_vec(r, a, &v->n_unmerged_leaves, &rc);
  return rd_status(r, rc);
}

WIRE_OPS(parent_node_ops, mls_parent_node, msg_encode_parent_node, msg_read_parent_node);

void msg_encode_node(buf_t *w, const mls_node *v) {
  wr_u8(w, v->node_type);
  if (v->node_type == MLS_NODE_LEAF)
    msg_encode_leaf_node(w, &v->leaf);
  else if (v->node_type == MLS_NODE_PARENT)
    msg_encode_parent_node(w, &v->parent);
  else
    wr_bad(w);
}

/* One ratchet_tree entry: optional<Node>, blank = node_type 0. */
static void encode_tree_entry(buf_t *w, const mls_node *v) {
  wr_optional(w, v->node_type != 0);
  if (v->node_type != 0) msg_encode_node(w, v);
}

static int read_tree_entry(reader_t *r, arena_t *a, mls_node *v) {
  bool present = false;
  int rc = 0;
  rd_optional(r, &present);
  if (present) {
    rd_enum8(r, MLS_NODE_PARENT, &v->node_type);
    if (v->node_type == MLS_NODE_LEAF)
      rc = msg_read_leaf_node(r, a, &v->leaf);
    else if (v->node_type == MLS_NODE_PARENT)
      rc = msg_read_parent_node(r, a, &v->parent);
  }
  return rd_status(r, rc);
}

WIRE_OPS(tree_entry_ops, mls_node, encode_tree_entry, read_tree_entry);

void msg_encode_ratchet_tree(buf_t *w, const mls_ratchet_tree *v) {
  wr_svec(w, &tree_entry_ops, v->nodes, v->n_nodes);
}

/* §12.4.3.3: the last entry must be non-blank (so the tree is non-empty).
 * Whether leaves and parents sit at the right positions is left to the
 * tree code, which reports it as TSR_ETREE. */
static int read_ratchet_tree(reader_t *r, arena_t *a, mls_ratchet_tree *v) {
  int rc = 0;
  v->nodes = rd_svec(r, a, &tree_entry_ops, &v->n_nodes, &rc);
  if (!rc && (v->n_nodes == 0 || v->nodes[v->n_nodes - 1].node_type == 0))
    set_rc(&rc, rd_fail(r));
  return rd_status(r, rc);
}

WIRE_OPS(ratchet_tree_ops, mls_ratchet_tree, msg_encode_ratchet_tree, read_ratchet_tree);

/* --- UpdatePath ---------------------------------------------------------- */

void msg_encode_hpke_ciphertext(buf_t *w, const mls_hpke_ciphertext *v) {
  wr_opaque(w, v->kem_output);
  wr_opaque(w, v->ciphertext);
}

static int read_hpke_ciphertext(reader_t *r, arena_t *a, mls_hpke_ciphertext *v) {
  (void)a;
  rd_opaque(r, &v->kem_output);
  rd_opaque(r, &v->ciphertext);
  return rd_status(r, 0);
}

WIRE_OPS(hpke_ciphertext_ops, mls_hpke_ciphertext, msg_encode_hpke_ciphertext,
         read_hpke_ciphertext);

static void encode_update_path_node(buf_t *w, const mls_update_path_node *v) {
  wr_opaque(w, v->encryption_key);
  wr_svec(w, &hpke_ciphertext_ops, v->encrypted_path_secret, v->n_encrypted_path_secret);
}

static int read_update_path_node(reader_t *r, arena_t *a, mls_update_path_node *v) {
  int rc = 0;
  rd_opaque(r, &v->encryption_key);
  v->encrypted_path_secret =
      rd_svec(r, a, &hpke_ciphertext_ops, &v->n_encrypted_path_secret, &rc);
  return rd_status(r, rc);
}

WIRE_OPS(update_path_node_ops, mls_update_path_node, encode_update_path_node,
         read_update_path_node);

void msg_encode_update_path(buf_t *w, const mls_update_path *v) {
  msg_encode_leaf_node(w, &v->leaf_node);
  wr_svec(w, &update_path_node_ops, v->nodes, v->n_nodes);
}

int msg_read_update_path(reader_t *r, arena_t *a, mls_update_path *v) {
  int rc = msg_read_leaf_node(r, a, &v->leaf_node);
  v->nodes = rd_svec(r, a, &update_path_node_ops, &v->n_nodes, &rc);
  return rd_status(r, rc);
}

WIRE_OPS(update_path_ops, mls_update_path, msg_encode_update_path, msg_read_update_path);

/* --- Proposals and Commit ------------------------------------------------ */

void msg_encode_psk_id(buf_t *w, const mls_psk_id *v) {
  wr_u8(w, v->psktype);
  if (v->psktype == MLS_PSK_EXTERNAL) {
    wr_opaque(w, v->psk_id);
  } else if (v->psktype == MLS_PSK_RESUMPTION) {
    wr_u8(w, v->usage);
    wr_opaque(w, v->psk_group_id);
    wr_u64(w, v->psk_epoch);
  } else {
    wr_bad(w);
  }
  wr_opaque(w, v->psk_nonce);
}

int msg_read_psk_id(reader_t *r, arena_t *a, mls_psk_id *v) {
  memset(v, 0, sizeof *v); /* fields of other variants stay zero */
  (void)a;
  rd_enum8(r, MLS_PSK_RESUMPTION, &v->psktype);
  if (v->psktype == MLS_PSK_EXTERNAL) {
    rd_opaque(r, &v->psk_id);
  } else if (v->psktype == MLS_PSK_RESUMPTION) {
    rd_enum8(r, MLS_RESUMPTION_BRANCH, &v->usage);
    rd_opaque(r, &v->psk_group_id);
    rd_u64(r, &v->psk_epoch);
  }
  rd_opaque(r, &v->psk_nonce);
  return rd_status(r, 0);
}

WIRE_OPS(psk_id_ops, mls_psk_id, msg_encode_psk_id, msg_read_psk_id);

void msg_encode_proposal_body(buf_t *w, const mls_proposal *v) {
  switch (v->proposal_type) {
  case MLS_PROPOSAL_ADD: msg_encode_key_package(w, &v->add); break;
  case MLS_PROPOSAL_UPDATE: msg_encode_leaf_node(w, &v->update); break;
  case MLS_PROPOSAL_REMOVE: wr_u32(w, v->remove); break;
  case MLS_PROPOSAL_PSK: msg_encode_psk_id(w, &v->psk); break;
  case MLS_PROPOSAL_REINIT:
    wr_opaque(w, v->reinit.group_id);
    wr_u16(w, v->reinit.version);
    wr_u16(w, v->reinit.cipher_suite);
    msg_encode_extensions(w, &v->reinit.extensions);
    break;
  case MLS_PROPOSAL_EXTERNAL_INIT: wr_opaque(w, v->external_init); break;
  case MLS_PROPOSAL_GROUP_CONTEXT_EXTENSIONS: msg_encode_extensions(w, &v->gce); break;
  default: wr_bad(w); break;
  }
}

void msg_encode_proposal(buf_t *w, const mls_proposal *v) {
  wr_u16(w, v->proposal_type);
  msg_encode_proposal_body(w, v);
}

int msg_read_proposal_body(reader_t *r, arena_t *a, uint16_t type, mls_proposal *v) {
  memset(v, 0, sizeof *v); /* fields of other variants stay zero */
  int rc = 0;
  v->proposal_type = type;
  switch (type) {
  case MLS_PROPOSAL_ADD: rc = msg_read_key_package(r, a, &v->add); break;
  case MLS_PROPOSAL_UPDATE: rc = msg_read_leaf_node(r, a, &v->update); break;
  case MLS_PROPOSAL_REMOVE: rd_u32(r, &v->remove); break;
  case MLS_PROPOSAL_PSK: rc = msg_read_psk_id(r, a, &v->psk); break;
  case MLS_PROPOSAL_REINIT:
    rd_opaque(r, &v->reinit.group_id);
    rd_u16(r, &v->reinit.version);
    rd_u16(r, &v->reinit.cipher_suite);
    rc = msg_read_extensions(r, a, &v->reinit.extensions);
    break;
  case MLS_PROPOSAL_EXTERNAL_INIT: rd_opaque(r, &v->external_init); break;
  case MLS_PROPOSAL_GROUP_CONTEXT_EXTENSIONS:
    rc = msg_read_extensions(r, a, &v->gce);
    break;
  default: rc = rd_fail(r); break; /* unknown bodies cannot be delimited */
  }
  return rd_status(r, rc);
}

int msg_read_proposal(reader_t *r, arena_t *a, mls_proposal *v) {
  uint16_t type = 0;
  if (rd_u16(r, &type)) return TSR_EDECODE;
  return msg_read_proposal_body(r, a, type, v);
}

WIRE_OPS(proposal_ops, mls_proposal, msg_encode_proposal, msg_read_proposal);

static void encode_proposal_or_ref(buf_t *w, const mls_proposal_or_ref *v) {
  wr_u8(w, v->type);
  if (v->type == MLS_POR_PROPOSAL)
    msg_encode_proposal(w, &v->proposal);
  else if (v->type == MLS_POR_REFERENCE)
    wr_opaque(w, v->reference);
  else
    wr_bad(w);
}

static int read_proposal_or_ref(reader_t *r, arena_t *a, mls_proposal_or_ref *v) {
  int rc = 0;
  rd_enum8(r, MLS_POR_REFERENCE, &v->type);
  if (v->type == MLS_POR_PROPOSAL)
    rc = msg_read_proposal(r, a, &v->proposal);
  else if (v->type == MLS_POR_REFERENCE)
    rd_opaque(r, &v->reference);
  return rd_status(r, rc);
}

WIRE_OPS(proposal_or_ref_ops, mls_proposal_or_ref, encode_proposal_or_ref,
         read_proposal_or_ref);

void msg_encode_commit(buf_t *w, const mls_commit *v) {
  wr_svec(w, &proposal_or_ref_ops, v->proposals, v->n_proposals);
  wr_optional(w, v->has_path);
  if (v->has_path) msg_encode_update_path(w, &v->path);
}

int msg_read_commit(reader_t *r, arena_t *a, mls_commit *v) {
  memset(v, 0, sizeof *v); /* fields of other variants stay zero */
  int rc = 0;
  v->proposals = rd_svec(r, a, &proposal_or_ref_ops, &v->n_proposals, &rc);
  rd_optional(r, &v->has_path);
  if (v->has_path) rc = keep(rc, msg_read_update_path(r, a, &v->path));
  return rd_status(r, rc);
}

WIRE_OPS(commit_ops, mls_commit, msg_encode_commit, msg_read_commit);

/* --- Framing ------------------------------------------------------------- */

void msg_encode_sender(buf_t *w, const mls_sender *v) {
  wr_u8(w, v->sender_type);
  if (v->sender_type == MLS_SENDER_MEMBER || v->sender_type == MLS_SENDER_EXTERNAL)
    wr_u32(w, v->index);
  else if (v->sender_type != MLS_SENDER_NEW_MEMBER_PROPOSAL &&
           v->sender_type != MLS_SENDER_NEW_MEMBER_COMMIT)
    wr_bad(w);
}

static void read_sender(reader_t *r, mls_sender *v) {
  rd_enum8(r, MLS_SENDER_NEW_MEMBER_COMMIT, &v->sender_type);
  if (v->sender_type == MLS_SENDER_MEMBER || v->sender_type == MLS_SENDER_EXTERNAL)
    rd_u32(r, &v->index);
}

void msg_encode_framed_content(buf_t *w, const mls_framed_content *v) {
  wr_opaque(w, v->group_id);
  wr_u64(w, v->epoch);
  msg_encode_sender(w, &v->sender);
  wr_opaque(w, v->authenticated_data);
  wr_u8(w, v->content_type);
  switch (v->content_type) {
  case MLS_CONTENT_APPLICATION: wr_opaque(w, v->application_data); break;
  case MLS_CONTENT_PROPOSAL: msg_encode_proposal(w, &v->proposal); break;
  case MLS_CONTENT_COMMIT: msg_encode_commit(w, &v->commit); break;
  default: wr_bad(w); break;
  }
}

int msg_read_framed_content(reader_t *r, arena_t *a, mls_framed_content *v) {
  memset(v, 0, sizeof *v); /* fields of other variants stay zero */
  int rc = 0;
  rd_opaque(r, &v->group_id);
  rd_u64(r, &v->epoch);
  read_sender(r, &v->sender);
  rd_opaque(r, &v->authenticated_data);
  rd_enum8(r, MLS_CONTENT_COMMIT, &v->content_type);
  if (v->content_type == MLS_CONTENT_APPLICATION)
    rd_opaque(r, &v->application_data);
  else if (v->content_type == MLS_CONTENT_PROPOSAL)
    rc = msg_read_proposal(r, a, &v->proposal);
  else if (v->content_type == MLS_CONTENT_COMMIT)
    rc = msg_read_commit(r, a, &v->commit);
  return rd_status(r, rc);
}

void msg_encode_auth_data(buf_t *w, const mls_auth_data *v, uint8_t content_type) {
  wr_opaque(w, v->signature);
  if (content_type == MLS_CONTENT_COMMIT) wr_opaque(w, v->confirmation_tag);
}

int msg_read_auth_data(reader_t *r, uint8_t content_type, mls_auth_data *v) {
  memset(v, 0, sizeof *v); /* fields of other variants stay zero */
  rd_opaque(r, &v->signature);
  if (content_type == MLS_CONTENT_COMMIT) rd_opaque(r, &v->confirmation_tag);
  return rd_status(r, 0);
}

static bool sender_signs_context(uint8_t sender_type) {
  return sender_type == MLS_SENDER_MEMBER || sender_type == MLS_SENDER_NEW_MEMBER_COMMIT;
}

void msg_encode_framed_content_tbs(buf_t *w, uint16_t wire_format,
                                   const mls_framed_content *v, bytes_t group_context) {
  wr_u16(w, MLS_VERSION_10);
  wr_u16(w, wire_format);
  msg_encode_framed_content(w, v);
  if (sender_signs_context(v->sender.sender_type)) wr_raw(w, group_context);
}

void msg_encode_authenticated_content(buf_t *w, const mls_authenticated_content *v) {
  wr_u16(w, v->wire_format);
  msg_encode_framed_content(w, &v->content);
  msg_encode_auth_data(w, &v->auth, v->content.content_type);
}

/* AuthenticatedContent only exists for framed messages, so wire_format is
 * public or private message. */
static int read_authenticated_content(reader_t *r, arena_t *a,
                                      mls_authenticated_content *v) {
  rd_enum16(r, MLS_WIRE_PRIVATE_MESSAGE, &v->wire_format);
  int rc = msg_read_framed_content(r, a, &v->content);
  msg_read_auth_data(r, v->content.content_type, &v->auth);
  return rd_status(r, rc);
}

WIRE_OPS(authenticated_content_ops, mls_authenticated_content,
         msg_encode_authenticated_content, read_authenticated_content);

void msg_encode_public_message(buf_t *w, const mls_public_message *v) {
  msg_encode_framed_content(w, &v->content);
  msg_encode_auth_data(w, &v->auth, v->content.content_type);
  if (v->content.sender.sender_type == MLS_SENDER_MEMBER) wr_opaque(w, v->membership_tag);
}

static int read_public_message(reader_t *r, arena_t *a, mls_public_message *v) {
  int rc = msg_read_framed_content(r, a, &v->content);
  msg_read_auth_data(r, v->content.content_type, &v->auth);
  if (v->content.sender.sender_type == MLS_SENDER_MEMBER)
    rd_opaque(r, &v->membership_tag);
  return rd_status(r, rc);
}

WIRE_OPS(public_message_ops, mls_public_message, msg_encode_public_message,
         read_public_message);

void msg_encode_private_message(buf_t *w, const mls_private_message *v) {
  wr_opaque(w, v->group_id);
  wr_u64(w, v->epoch);
  wr_u8(w, v->content_type);
  wr_opaque(w, v->authenticated_data);
  wr_opaque(w, v->encrypted_sender_data);
  wr_opaque(w, v->ciphertext);
}

static int read_private_message(reader_t *r, arena_t *a, mls_private_message *v) {
  (void)a;
  rd_opaque(r, &v->group_id);
  rd_u64(r, &v->epoch);
  rd_enum8(r, MLS_CONTENT_COMMIT, &v->content_type);
  rd_opaque(r, &v->authenticated_data);
  rd_opaque(r, &v->encrypted_sender_data);
  rd_opaque(r, &v->ciphertext);
  return rd_status(r, 0);
}

WIRE_OPS(private_message_ops, mls_private_message, msg_encode_private_message,
         read_private_message);

/* --- GroupContext, GroupInfo, Welcome ------------------------------------ */

void msg_encode_group_context(buf_t *w, const mls_group_context *v) {
  wr_u16(w, v->version);
  wr_u16(w, v->cipher_suite);
  wr_opaque(w, v->group_id);
  wr_u64(w, v->epoch);
  wr_opaque(w, v->tree_hash);
  wr_opaque(w, v->confirmed_transcript_hash);
  msg_encode_extensions(w, &v->extensions);
}

/* The syntax fixes `version = mls10` (§8.1), so anything else is malformed. */
int msg_read_group_context(reader_t *r, arena_t *a, mls_group_context *v) {
  if (rd_u16(r, &v->version) == 0 && v->version != MLS_VERSION_10) rd_fail(r);
  rd_u16(r, &v->cipher_suite);
  rd_opaque(r, &v->group_id);
  rd_u64(r, &v->epoch);
  rd_opaque(r, &v->tree_hash);
  rd_opaque(r, &v->confirmed_transcript_hash);
  return rd_status(r, msg_read_extensions(r, a, &v->extensions));
}

WIRE_OPS(group_context_ops, mls_group_context, msg_encode_group_context,
         msg_read_group_context);

void msg_encode_group_info_tbs_with(buf_t *w, const mls_group_info *v, size_t slot,
                                    void (*fill)(buf_t *w, const void *ctx),
                                    const void *ctx) {
  msg_encode_group_context(w, &v->group_context);
  /* msg_encode_extensions, with one body produced in place. */
  size_t mark = wr_vec_begin(w);
  for (size_t i = 0; i < v->extensions.n; i++) {
    const mls_extension *x = &v->extensions.items[i];
    if (i != slot || !fill) {
      encode_extension(w, x);
      continue;
    }
    wr_u16(w, x->extension_type);
    size_t body = wr_vec_begin(w); /* opaque extension_data<V> */
    fill(w, ctx);
    wr_vec_end(w, body);
  }
  wr_vec_end(w, mark);
  wr_opaque(w, v->confirmation_tag);
  wr_u32(w, v->signer);
}

void msg_encode_group_info_tbs(buf_t *w, const mls_group_info *v) {
  msg_encode_group_info_tbs_with(w, v, SIZE_MAX, NULL, NULL);
}

void msg_encode_group_info(buf_t *w, const mls_group_info *v) {
  msg_encode_group_info_tbs(w, v);
  wr_opaque(w, v->signature);
}

static int read_group_info(reader_t *r, arena_t *a, mls_group_info *v) {
  int rc = msg_read_group_context(r, a, &v->group_context);
  rc = keep(rc, msg_read_extensions(r, a, &v->extensions));
  rd_opaque(r, &v->confirmation_tag);
  rd_u32(r, &v->signer);
  rd_opaque(r, &v->signature);
  return rd_status(r, rc);
}

WIRE_OPS(group_info_ops, mls_group_info, msg_encode_group_info, read_group_info);

void msg_encode_group_secrets(buf_t *w, const mls_group_secrets *v) {
  wr_opaque(w, v->joiner_secret);
  wr_optional(w, v->has_path_secret);
  if (v->has_path_secret) wr_opaque(w, v->path_secret);
  wr_svec(w, &psk_id_ops, v->psks, v->n_psks);
}

static int read_group_secrets(reader_t *r, arena_t *a, mls_group_secrets *v) {
  int rc = 0;
  rd_opaque(r, &v->joiner_secret);
  rd_optional(r, &v->has_path_secret);
  if (v->has_path_secret) rd_opaque(r, &v->path_secret);
  v->psks = rd_svec(r, a, &psk_id_ops, &v->n_psks, &rc);
  return rd_status(r, rc);
}

WIRE_OPS(group_secrets_ops, mls_group_secrets, msg_encode_group_secrets,
         read_group_secrets);

static void encode_encrypted_group_secrets(buf_t *w,
                                           const mls_encrypted_group_secrets *v) {
  wr_opaque(w, v->new_member);
  msg_encode_hpke_ciphertext(w, &v->encrypted_group_secrets);
}

static int read_encrypted_group_secrets(reader_t *r, arena_t *a,
                                        mls_encrypted_group_secrets *v) {
  rd_opaque(r, &v->new_member);
  return read_hpke_ciphertext(r, a, &v->encrypted_group_secrets);
}

WIRE_OPS(encrypted_group_secrets_ops, mls_encrypted_group_secrets,
         encode_encrypted_group_secrets, read_encrypted_group_secrets);

void msg_encode_welcome(buf_t *w, const mls_welcome *v) {
  wr_u16(w, v->cipher_suite);
  wr_svec(w, &encrypted_group_secrets_ops, v->secrets, v->n_secrets);
  wr_opaque(w, v->encrypted_group_info);
}

static int read_welcome(reader_t *r, arena_t *a, mls_welcome *v) {
  int rc = 0;
  rd_u16(r, &v->cipher_suite);
  v->secrets = rd_svec(r, a, &encrypted_group_secrets_ops, &v->n_secrets, &rc);
  rd_opaque(r, &v->encrypted_group_info);
  return rd_status(r, rc);
}

WIRE_OPS(welcome_ops, mls_welcome, msg_encode_welcome, read_welcome);

/* --- MLSMessage ---------------------------------------------------------- */

void msg_encode_message(buf_t *w, const mls_message *v) {
  wr_u16(w, v->version);
  wr_u16(w, v->wire_format);
  switch (v->wire_format) {
  case MLS_WIRE_PUBLIC_MESSAGE: msg_encode_public_message(w, &v->public_message); break;
  case MLS_WIRE_PRIVATE_MESSAGE:
    msg_encode_private_message(w, &v->private_message);
    break;
  case MLS_WIRE_WELCOME: msg_encode_welcome(w, &v->welcome); break;
  case MLS_WIRE_GROUP_INFO: msg_encode_group_info(w, &v->group_info); break;
  case MLS_WIRE_KEY_PACKAGE: msg_encode_key_package(w, &v->key_package); break;
  default: wr_bad(w); break;
  }
}

/* A readable version other than mls10 is reported as TSR_EUNSUPPORTED:
 * the rest of the message follows another version's grammar. */
static int read_message(reader_t *r, arena_t *a, mls_message *v) {
  if (rd_u16(r, &v->version)) return TSR_EDECODE;
  if (v->version != MLS_VERSION_10) {
    rd_fail(r);
    return TSR_EUNSUPPORTED;
  }
  rd_enum16(r, MLS_WIRE_KEY_PACKAGE, &v->wire_format);
  int rc = 0;
  switch (v->wire_format) {
  case MLS_WIRE_PUBLIC_MESSAGE: rc = read_public_message(r, a, &v->public_message); break;
  case MLS_WIRE_PRIVATE_MESSAGE:
    rc = read_private_message(r, a, &v->private_message);
    break;
  case MLS_WIRE_WELCOME: rc = read_welcome(r, a, &v->welcome); break;
  case MLS_WIRE_GROUP_INFO: rc = read_group_info(r, a, &v->group_info); break;
  case MLS_WIRE_KEY_PACKAGE: rc = msg_read_key_package(r, a, &v->key_package); break;
  default: break;
  }
  return rd_status(r, rc);
}

WIRE_OPS(message_ops, mls_message, msg_encode_message, read_message);

/* --- GroupContext extensions --------------------------------------------- */

void msg_encode_required_capabilities(buf_t *w, const mls_required_capabilities *v) {
  wr_u16_vec(w, v->extension_types, v->n_extension_types);
  wr_u16_vec(w, v->proposal_types, v->n_proposal_types);
  wr_u16_vec(w, v->credential_types, v->n_credential_types);
}

static int read_required_capabilities(reader_t *r, arena_t *a,
                                      mls_required_capabilities *v) {
  int rc = 0;
  v->extension_types = rd_u16_vec(r, a, &v->n_extension_types, &rc);
  v->proposal_types = rd_u16_vec(r, a, &v->n_proposal_types, &rc);
  v->credential_types = rd_u16_vec(r, a, &v->n_credential_types, &rc);
  return rd_status(r, rc);
}

WIRE_OPS(required_capabilities_ops, mls_required_capabilities,
         msg_encode_required_capabilities, read_required_capabilities);

static void encode_external_sender(buf_t *w, const mls_external_sender *v) {
  wr_opaque(w, v->signature_key);
  msg_encode_credential(w, &v->credential);
}

static int read_external_sender(reader_t *r, arena_t *a, mls_external_sender *v) {
  rd_opaque(r, &v->signature_key);
  return msg_read_credential(r, a, &v->credential);
}

WIRE_OPS(external_sender_ops, mls_external_sender, encode_external_sender,
         read_external_sender);

void msg_encode_external_senders(buf_t *w, const mls_external_senders *v) {
  wr_svec(w, &external_sender_ops, v->items, v->n);
}

static int read_external_senders(reader_t *r, arena_t *a, mls_external_senders *v) {
  int rc = 0;
  v->items = rd_svec(r, a, &external_sender_ops, &v->n, &rc);
  return rd_status(r, rc);
}

WIRE_OPS(external_senders_ops, mls_external_senders, msg_encode_external_senders,
         read_external_senders);

/* --- Whole-object decoders ----------------------------------------------- */

int msg_decode_leaf_node(bytes_t in, arena_t *a, mls_leaf_node *v) {
  return decode_whole(in, a, &leaf_node_ops, v);
}

int msg_decode_key_package(bytes_t in, arena_t *a, mls_key_package *v) {
  return decode_whole(in, a, &key_package_ops, v);
}

int msg_decode_ratchet_tree(bytes_t in, arena_t *a, mls_ratchet_tree *v) {
  return decode_whole(in, a, &ratchet_tree_ops, v);
}

int msg_decode_update_path(bytes_t in, arena_t *a, mls_update_path *v) {
  return decode_whole(in, a, &update_path_ops, v);
}

int msg_decode_proposal(bytes_t in, arena_t *a, mls_proposal *v) {
  return decode_whole(in, a, &proposal_ops, v);
}

int msg_decode_commit(bytes_t in, arena_t *a, mls_commit *v) {
  return decode_whole(in, a, &commit_ops, v);
}

int msg_decode_authenticated_content(bytes_t in, arena_t *a,
                                     mls_authenticated_content *v) {
  return decode_whole(in, a, &authenticated_content_ops, v);
}

int msg_decode_public_message(bytes_t in, arena_t *a, mls_public_message *v) {
  return decode_whole(in, a, &public_message_ops, v);
}

int msg_decode_private_message(bytes_t in, arena_t *a, mls_private_message *v) {
  return decode_whole(in, a, &private_message_ops, v);
}

int msg_decode_group_context(bytes_t in, arena_t *a, mls_group_context *v) {
  return decode_whole(in, a, &group_context_ops, v);
}

int msg_decode_group_info(bytes_t in, arena_t *a, mls_group_info *v) {
  return decode_whole(in, a, &group_info_ops, v);
}

int msg_decode_group_secrets(bytes_t in, arena_t *a, mls_group_secrets *v) {
  return decode_whole(in, a, &group_secrets_ops, v);
}

int msg_decode_welcome(bytes_t in, arena_t *a, mls_welcome *v) {
  return decode_whole(in, a, &welcome_ops, v);
}

int msg_decode_message(bytes_t in, arena_t *a, mls_message *v) {
  return decode_whole(in, a, &message_ops, v);
}

int msg_decode_required_capabilities(bytes_t in, arena_t *a,
                                     mls_required_capabilities *v) {
  return decode_whole(in, a, &required_capabilities_ops, v);
}

int msg_decode_external_senders(bytes_t in, arena_t *a, mls_external_senders *v) {
  return decode_whole(in, a, &external_senders_ops, v);
}

/* --- Deep copies ----------------------------------------------------------- */

int msg_copy_leaf_node(arena_t *a, const mls_leaf_node *in, mls_leaf_node *out) {
  return copy_via_wire(a, &leaf_node_ops, in, out);
}

int msg_copy_parent_node(arena_t *a, const mls_parent_node *in, mls_parent_node *out) {
  return copy_via_wire(a, &parent_node_ops, in, out);
}

int msg_copy_key_package(arena_t *a, const mls_key_package *in, mls_key_package *out) {
  return copy_via_wire(a, &key_package_ops, in, out);
}

int msg_copy_extensions(arena_t *a, const mls_extensions *in, mls_extensions *out) {
  return copy_via_wire(a, &extensions_ops, in, out);
}

int msg_copy_psk_id(arena_t *a, const mls_psk_id *in, mls_psk_id *out) {
  return copy_via_wire(a, &psk_id_ops, in, out);
}

int msg_copy_proposal(arena_t *a, const mls_proposal *in, mls_proposal *out) {
  return copy_via_wire(a, &proposal_ops, in, out);
}

/* --- Small helpers ------------------------------------------------------- */

const mls_extension *msg_find_extension(const mls_extensions *v, uint16_t type) {
  for (size_t i = 0; i < v->n; i++)
    if (v->items[i].extension_type == type) return &v->items[i];
  return NULL;
}

bool msg_u16_contains(const uint16_t *list, size_t n, uint16_t value) {
  for (size_t i = 0; i < n; i++)
    if (list[i] == value) return true;
  return false;
}
