/* TreeKEM (RFC 9420 §7.4-7.6, §12.4): the private side of the ratchet
 * tree and the creation / application of UpdatePaths.
 *
 * The public tree lives in tree.h; this module holds what one member knows
 * privately (mls_tree_priv) and moves both forward together.
 *
 * Ownership: an mls_tree_priv is a heap object owned by its creator
 * (treekem_priv_new / _clone / _restore) and released with
 * treekem_priv_free, which wipes every secret in it. It never points into
 * a tree; the tree is passed to each call.
 *
 * Invariants of mls_tree_priv:
 *  - It belongs to one suite and one leaf index (fixed for its lifetime).
 *  - It holds the leaf's HPKE private key and at most one private key per
 *    node of that leaf's direct path (TREE_MAX_DEPTH entries at most),
 *    each stored with its public key. A key is only used when its public
 *    key equals the one the tree holds at that node, so keys made stale by
 *    proposals (removes, updates) are harmless; treekem_priv_prune drops
 *    them.
 *  - Between treekem_path_begin and treekem_priv_forget_path it also
 *    holds the path secrets of its own pending UpdatePath and the pending
 *    commit_secret (needed by treekem_path_encrypt and for Welcomes).
 *
 * Creating a commit with a path (§12.4.1), on provisional copies of the
 * tree and private state (tree_clone / treekem_priv_clone):
 *   1. apply the proposals to the tree (tree.h);
 *   2. treekem_path_begin: new leaf secret, path key pairs, public keys and
 *      parent hashes installed in the tree, new LeafNode signed and set;
 *   3. caller computes tree_root_hash and encodes the provisional
 *      GroupContext;
 *   4. treekem_path_encrypt: the UpdatePath and the commit_secret;
 *   5. treekem_path_secret_for for each new member's GroupSecrets;
 *   6. treekem_priv_forget_path once the Welcomes are built.
 * treekem_path_create does 2-4 from a GroupContext template.
 *
 * Processing a commit with a path (§12.4.2), after applying proposals:
 *   1. treekem_merge_path: validates the path's LeafNode and parent-hash
 *      chain and merges the public keys (tree unchanged on failure);
 *   2. caller computes the provisional GroupContext;
 *   3. treekem_decrypt_path: decrypts, derives, checks the derived public
 *      keys and updates the private state (unchanged on failure).
 * treekem_apply does 1-3 from a GroupContext template and rolls the tree
 * back if step 3 fails.
 *
 * LeafNode checks done here for a received path: leaf_node_source is
 * commit, the signature (LeafNodeTBS with group_id and the sender's leaf
 * index), the encryption key differs from the sender's current one, the
 * tree checks of tree_check_new_leaf (key uniqueness, credential
 * support), every path public key is new to the tree, and the parent
 * hash. NOT done here (the caller's job): lifetime (not applicable to the
 * commit source), the group's required_capabilities, and that the
 * credential is acceptable to the application / unchanged identity.
 *
 * Functions return 0 or a negative TSR_E* code; secrets that pass through
 * local buffers are wiped before returning. */
#ifndef TSR_MLS_TREEKEM_H
#define TSR_MLS_TREEKEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/bytes.h"
#include "mls/crypto.h"
#include "mls/messages.h"
#include "mls/tree.h"

typedef struct mls_tree_priv mls_tree_priv;

/* --- Private state ---------------------------------------------------- */

/* New private state for `leaf` holding only the leaf's HPKE private key
 * (from the member's KeyPackage, or from the vectors). */
int treekem_priv_new(const mls_suite *suite, uint32_t leaf, bytes_t leaf_sk,
                     mls_tree_priv **out);
int treekem_priv_clone(const mls_tree_priv *p, mls_tree_priv **out);
void treekem_priv_free(mls_tree_priv *p); /* wipes; NULL is fine */

uint32_t treekem_priv_leaf(const mls_tree_priv *p);
/* Replace the leaf key (after our own Update proposal is committed). */
int treekem_priv_set_leaf_key(mls_tree_priv *p, bytes_t leaf_sk);
/* The HPKE private key this state holds for node (own leaf node or a
 * direct-path parent) into sk, or TSR_ENOTFOUND. Whether it still matches
 * the tree is not checked (see treekem_priv_check). */
int treekem_priv_node_key(const mls_tree_priv *p, uint32_t node, uint8_t sk[MLS_KEM_SK]);

/* Set the private key of `node` (own leaf's direct path) from its path
 * secret: node_secret = DeriveSecret(path_secret, "node"), key pair =
 * DeriveKeyPair(node_secret). The derived public key must equal the
 * tree's key at node (TSR_ETREE otherwise). */
int treekem_priv_install(mls_tree_priv *p, const mls_tree *t, uint32_t node,
                         bytes_t path_secret);
/* Joining from a Welcome (§12.4.3.1): path_secret is the secret of the
 * lowest common ancestor of our leaf and the committer's (`sender`) leaf;
 * installs it and every secret derived from it for the rest of the
 * committer's filtered direct path, checking each public key (TSR_ETREE).
 * Unchanged on failure. */
int treekem_priv_join(mls_tree_priv *p, const mls_tree *t, uint32_t sender,
                      bytes_t path_secret);
/* Every key held matches the tree (own leaf included): 0 or TSR_ETREE. */
int treekem_priv_check(const mls_tree_priv *p, const mls_tree *t);
/* Drop (and wipe) parent keys the tree no longer holds (blank, changed,
 * or off our direct path after truncation). */
void treekem_priv_prune(mls_tree_priv *p, const mls_tree *t);
/* Wipe the pending path secrets and commit_secret of treekem_path_begin. */
void treekem_priv_forget_path(mls_tree_priv *p);

/* Persisted form (opaque, versioned; contains secrets: store it as such).
 * Appends to w (errors in w->err). restore checks the encoding and that
 * each private key yields its public key: TSR_EDECODE, TSR_EUNSUPPORTED
 * for an unknown suite/version. */
void treekem_priv_serialize(const mls_tree_priv *p, buf_t *w);
int treekem_priv_restore(bytes_t in, mls_tree_priv **out);

/* --- Creating an UpdatePath (§7.4, §7.5, §12.4.1) ---------------------- */

/* What goes into the committer's new LeafNode. Only credential,
 * capabilities and extensions are taken from `leaf`; signature_key must
 * equal sig->pk. encryption_key, leaf_node_source (commit), parent_hash
 * and signature are filled in. */
typedef struct {
  const mls_leaf_node *leaf; /* template */
  const mls_sig_key *sig;
  bytes_t group_id;
  bytes_t leaf_secret; /* empty: random; else hash_len bytes (tests) */
} treekem_leaf_params;

/* Phase 1 on tree t (proposals already applied): blank our direct path,
 * derive the leaf and path key pairs (path_secret[0] = DeriveSecret(
 * leaf_secret, "path"), then as §7.4), set the new parent nodes with
 * parent hashes, sign and set the new LeafNode. p keeps the new private
 * keys, path secrets and commit_secret. Both t and p unchanged on
 * failure. */
int treekem_path_begin(mls_tree_priv *p, mls_tree *t, const treekem_leaf_params *lp);
/* Phase 2: encrypt each path secret under the provisional GroupContext
 * (encoded, `group_context`) to the resolution of its copath child minus
 * the leaves in excluded[] (leaf indices added by this commit). *out gets
 * the UpdatePath (every array and view allocated in a); commit_secret
 * gets hash_len bytes. TSR_ESTATE if begin was not called or the tree's
 * filtered direct path changed since. */
int treekem_path_encrypt(const mls_tree_priv *p, const mls_tree *t, bytes_t group_context,
                         const uint32_t *excluded, size_t n_excluded, arena_t *a,
                         mls_update_path *out, uint8_t commit_secret[MLS_MAX_HASH]);
/* Path secret for a new member at leaf `joiner` (GroupSecrets.path_secret):
 * the pending secret at the lowest common ancestor of our leaf and it.
 * out gets hash_len bytes. TSR_ESTATE without a pending path,
 * TSR_ENOTFOUND if that ancestor is not on our filtered direct path. */
int treekem_path_secret_for(const mls_tree_priv *p, const mls_tree *t, uint32_t joiner,
                            uint8_t out[MLS_MAX_HASH]);
/* begin + tree_root_hash + GroupContext (gc with tree_hash replaced by
 * the new root hash) + encrypt. On failure t and p are unchanged. */
int treekem_path_create(mls_tree_priv *p, mls_tree *t, const treekem_leaf_params *lp,
                        const mls_group_context *gc, const uint32_t *excluded,
                        size_t n_excluded, arena_t *a, mls_update_path *out,
                        uint8_t commit_secret[MLS_MAX_HASH]);

/* --- Applying an UpdatePath (§7.5, §7.6, §12.4.2) ---------------------- */

/* Validate `path` from leaf `sender` (see the LeafNode checks above) and
 * merge it into t: blank the sender's direct path, set the filtered
 * direct path's public keys with empty unmerged_leaves, check the parent
 * hash chain against the LeafNode's parent_hash, set the LeafNode.
 * TSR_EPROTOCOL (wrong node count, source), TSR_EVERIFY (signature),
 * TSR_ETREE (parent hash, duplicate keys). t unchanged on failure. */
int treekem_merge_path(mls_tree *t, uint32_t sender, const mls_update_path *path,
                       bytes_t group_id);
/* After the merge: decrypt the path secret addressed to us (p's leaf,
 * which must not be the sender) under the provisional GroupContext, with
 * excluded[] as the committer used it, derive the secrets up to the root,
 * check each derived public key against the path (TSR_ETREE), then
 * replace p's keys on the sender's direct path. commit_secret gets
 * hash_len bytes; path_secret (may be NULL) the decrypted secret.
 * TSR_EDECRYPT for a bad ciphertext, TSR_EPROTOCOL for a malformed
 * path. p unchanged on failure. */
int treekem_decrypt_path(mls_tree_priv *p, const mls_tree *t, uint32_t sender,
                         const mls_update_path *path, bytes_t group_context,
                         const uint32_t *excluded, size_t n_excluded,
                         uint8_t commit_secret[MLS_MAX_HASH],
                         uint8_t path_secret[MLS_MAX_HASH]);
/* merge + tree_root_hash + GroupContext (gc with tree_hash replaced) +
 * decrypt; on any failure t and p are exactly as before. */
int treekem_apply(mls_tree_priv *p, mls_tree *t, uint32_t sender,
                  const mls_update_path *path, const mls_group_context *gc,
                  const uint32_t *excluded, size_t n_excluded,
                  uint8_t commit_secret[MLS_MAX_HASH], uint8_t path_secret[MLS_MAX_HASH]);

#endif
