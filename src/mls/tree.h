/* Public ratchet tree (RFC 9420 §4.1, §7, §12.1.1-12.1.3, §12.3).
 *
 * Ownership: an mls_tree is a heap object owned by whoever created it
 * (tree_new / tree_from_ratchet_tree / tree_decode / tree_clone) and
 * released with tree_free. Every node holds an immutable deep copy of its
 * content, shared with clones (reference counted, atomically, so clones
 * may be used from different threads) and replaced, never edited, when
 * the node changes. Pointers returned by tree_leaf / tree_parent stay
 * valid until that node is next changed (set, blanked, updated, removed,
 * truncated away) or the tree is freed; changing one node never
 * invalidates pointers to other nodes. Setters copy their input before
 * releasing the old node (so passing an edited copy of the node's own
 * view is fine); the caller keeps ownership of what it passes in.
 *
 * Invariants:
 *  - The array is always a full left-balanced tree: tree_width() is
 *    2 * tree_n_leaves() - 1 and tree_n_leaves() is a power of two (or
 *    both are 0 for a freshly created empty tree). Node indices are the
 *    RFC's array indices (leaf L is node 2L); they do not move when the
 *    tree is extended or truncated.
 *  - Even indices hold leaf nodes or blanks, odd indices parent nodes or
 *    blanks (enforced on decode and by the setters).
 *  - Each node caches its tree hash (§7.8); a change to a node drops the
 *    cached hash of that node and of its direct path, nothing else.
 *    Because hashing fills the cache, functions that hash take a const
 *    tree but still write to it: a tree must not be used from two threads
 *    at once, even by "read-only" calls.
 *
 * Nothing here checks lifetimes or required_capabilities of the group;
 * that is the caller's (group.h) choice. Functions return 0 or a negative
 * TSR_E* code and leave the tree unchanged on failure, except where noted. */
#ifndef TSR_MLS_TREE_H
#define TSR_MLS_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/bytes.h"
#include "mls/crypto.h"
#include "mls/messages.h"

/* Longest possible direct path (node indices are uint32). Arrays sized
 * TREE_MAX_DEPTH always hold a (filtered) direct path or copath. */
#define TREE_MAX_DEPTH 32

/* Marker for "no leaf / no node". */
#define TREE_NONE UINT32_MAX

typedef struct mls_tree mls_tree;

/* --- Lifetime ---------------------------------------------------------- */

/* Empty tree (0 leaves) for suite; add the creator with tree_add_leaf. */
int tree_new(const mls_suite *suite, mls_tree **out);
/* Deep copy of a decoded ratchet_tree extension body. Checks structure
 * only (leaf/parent parity, last node non-blank, sizes); call
 * tree_validate for the cryptographic checks. TSR_ETREE if malformed. */
int tree_from_ratchet_tree(const mls_suite *suite, const mls_ratchet_tree *rt,
                           mls_tree **out);
/* Decode the ratchet_tree extension body and build the tree from it.
 * TSR_EDECODE for bad encoding, TSR_ETREE for a malformed tree. */
int tree_decode(const mls_suite *suite, bytes_t ext_body, mls_tree **out);
int tree_clone(const mls_tree *t, mls_tree **out);
void tree_free(mls_tree *t); /* NULL is fine */

/* Append the ratchet_tree extension body (msg_encode_ratchet_tree form:
 * trailing blank nodes omitted). A decoded tree re-encodes byte-exactly.
 * Errors are reported in w->err. */
void tree_encode(const mls_tree *t, buf_t *w);

/* --- Accessors --------------------------------------------------------- */

const mls_suite *tree_suite(const mls_tree *t);
uint32_t tree_n_leaves(const mls_tree *t); /* power of two, or 0 */
uint32_t tree_width(const mls_tree *t);    /* node count = 2*n_leaves - 1 */
/* 0 = blank (or out of range), else enum mls_node_type. */
uint8_t tree_node_type(const mls_tree *t, uint32_t node);
bool tree_leaf_is_blank(const mls_tree *t, uint32_t leaf);
/* NULL if blank or out of range. leaf is a leaf index, node a node index. */
const mls_leaf_node *tree_leaf(const mls_tree *t, uint32_t leaf);
const mls_parent_node *tree_parent(const mls_tree *t, uint32_t node);
/* Number of non-blank leaves. */
uint32_t tree_member_count(const mls_tree *t);

/* --- Raw mutation (copy in; invalidate hashes on the direct path) ----- */

/* leaf < tree_n_leaves(t); TSR_EINVAL otherwise. */
int tree_set_leaf(mls_tree *t, uint32_t leaf, const mls_leaf_node *v);
/* node must be an odd index < tree_width(t). */
int tree_set_parent(mls_tree *t, uint32_t node, const mls_parent_node *v);
int tree_blank_node(mls_tree *t, uint32_t node);
/* Blank every node on the direct path of leaf (not the leaf itself). */
int tree_blank_direct_path(mls_tree *t, uint32_t leaf);

/* --- Proposal application (§12.1.1-12.1.3) --------------------------- */

/* Add: put v into the leftmost blank leaf, or extend the tree (doubling
 * it) when there is none; then append the new leaf index to the
 * unmerged_leaves of every non-blank parent on its direct path.
 * *leaf_out gets the new leaf index. */
int tree_add_leaf(mls_tree *t, const mls_leaf_node *v, uint32_t *leaf_out);
/* Update: replace the leaf and blank its direct path. */
int tree_update_leaf(mls_tree *t, uint32_t leaf, const mls_leaf_node *v);
/* Remove: blank the leaf and its direct path, then truncate: while the
 * right half of the tree has no non-blank leaf, drop it (never below one
 * leaf). TSR_EINVAL if leaf is out of range or already blank. */
int tree_remove_leaf(mls_tree *t, uint32_t leaf);
/* The truncation step alone (after several removals, for instance). */
void tree_truncate(mls_tree *t);

/* --- Structure (§4.1, §7.4-7.7) -------------------------------------- */

/* Resolution of node into out[0..*n) in the RFC's order (left to right; a
 * non-blank parent first, then its unmerged leaves as listed, as node
 * indices). cap >= tree_width(t) always suffices for a tree that passed
 * tree_validate; TSR_EINVAL if out would overflow. */
int tree_resolution(const mls_tree *t, uint32_t node, uint32_t *out, size_t cap,
                    size_t *n);
/* Filtered direct path of leaf (§4.1.2), bottom-up: path[i] is a parent
 * node whose child on the copath side, copath[i], has a non-empty
 * resolution. Either output may be NULL. Arrays of TREE_MAX_DEPTH. */
int tree_filtered_direct_path(const mls_tree *t, uint32_t leaf,
                              uint32_t path[TREE_MAX_DEPTH],
                              uint32_t copath[TREE_MAX_DEPTH], size_t *n);

/* --- Tree hash (§7.8) ------------------------------------------------ */

/* Tree hash of the subtree rooted at node; out gets hash_len bytes. */
int tree_hash(const mls_tree *t, uint32_t node, uint8_t out[MLS_MAX_HASH]);
/* Tree hash of the root (what GroupContext.tree_hash holds). TSR_ETREE
 * for an empty tree. */
int tree_root_hash(const mls_tree *t, uint8_t out[MLS_MAX_HASH]);

/* --- Parent hash (§7.9) ---------------------------------------------- */

/* ParentHash of parent node p as seen from descendant d (any node under
 * p): H(ParentHashInput{p.encryption_key, p.parent_hash, tree hash of the
 * child of p that is not an ancestor of d, computed with p's unmerged
 * leaves removed}). TSR_EINVAL if p is blank or d is not under p. */
int tree_parent_hash(const mls_tree *t, uint32_t p, uint32_t d,
                     uint8_t out[MLS_MAX_HASH]);
/* Set the parent_hash fields along leaf's filtered direct path, top-down:
 * the topmost node gets an empty parent_hash, each lower node gets the
 * ParentHash of the node above it; the value the leaf's own LeafNode must
 * carry is written to leaf_ph (hash_len bytes; empty path gives an empty
 * value, *leaf_ph_len = 0). The caller has already placed the new parent
 * nodes (tree_set_parent: fresh encryption_key, no unmerged leaves) and
 * blanked the rest of the direct path. Used by the committer before it
 * signs its LeafNode and by receivers to check the LeafNode. TSR_EINVAL
 * if a node of the filtered direct path is blank; t unchanged on failure. */
int tree_set_path_parent_hashes(mls_tree *t, uint32_t leaf, uint8_t leaf_ph[MLS_MAX_HASH],
                                size_t *leaf_ph_len);
/* §7.9.2: every non-blank parent node is parent-hash valid (chains to
 * exactly one descendant through parent_hash). TSR_ETREE otherwise. */
int tree_verify_parent_hashes(const mls_tree *t);

/* --- Lookups --------------------------------------------------------- */

/* Leaf index whose LeafNode has this signature key; TSR_ENOTFOUND. */
int tree_find_signature_key(const mls_tree *t, bytes_t key, uint32_t *leaf);
/* Node index (leaf or parent) holding this encryption key; TSR_ENOTFOUND. */
int tree_find_encryption_key(const mls_tree *t, bytes_t key, uint32_t *node);
/* Whether any of keys[0..n) is the encryption key of some node: one pass
 * over the tree however many keys (a path brings one per level).
 * TSR_ENOTFOUND if none is; else 0 and, if non-NULL, *which is the index
 * in keys of one found and *node where. */
int tree_find_encryption_keys(const mls_tree *t, const bytes_t *keys, size_t n,
                              size_t *which, uint32_t *node);

/* --- Validation (§7.3, §7.9.2, §12.4.3.1) ---------------------------- */

/* Verify a LeafNode's signature over LeafNodeTBS. group_id and leaf_index
 * are used for the update and commit sources only. TSR_EVERIFY. */
int tree_verify_leaf_signature(const mls_suite *suite, const mls_leaf_node *v,
                               bytes_t group_id, uint32_t leaf_index);
/* Checks of §7.3 for a LeafNode about to enter the tree (Add, Update,
 * commit path) at leaf `at` (TREE_NONE for a new leaf): its encryption
 * key is not already in the tree, its signature key is not in another
 * leaf, its credential type is supported by every other member, its
 * capabilities support every credential type in use, and its own
 * capabilities list its credential type and its non-default extensions.
 * The leaf at `at` is excluded from the signature-key and credential
 * comparisons but not from the encryption-key one (a replacement must
 * bring a fresh key), so call this before installing v. TSR_ETREE for a
 * duplicate key, TSR_ECAPABILITY for a capability mismatch, TSR_EINVAL
 * for `at` out of range. Does not verify the signature. */
int tree_check_new_leaf(const mls_tree *t, const mls_leaf_node *v, uint32_t at);
/* Whole-tree validation for a joiner (§12.4.3.1): structure, parent
 * hashes, every leaf's signature (group_id for update/commit sources),
 * encryption key uniqueness over all nodes, signature key uniqueness over
 * leaves, unmerged leaves consistency (sorted, non-blank descendants,
 * present in every non-blank node in between), every credential type in
 * use supported by every leaf, each leaf's own credential type and
 * non-default extensions listed in its capabilities. If
 * expected_tree_hash.len > 0 the root tree hash must equal it. Lifetimes
 * are not checked. TSR_ETREE, or TSR_EVERIFY for a bad leaf signature. */
int tree_validate(const mls_tree *t, bytes_t group_id, bytes_t expected_tree_hash);

#endif
