/* Secret tree and sender ratchets (RFC 9420 §9), plus the sender-data
 * key/nonce of §6.3.2.
 *
 * The tree starts from the epoch's encryption_secret at the root and is
 * derived lazily: asking for a leaf derives the node secrets on the way
 * down from the nearest stored ancestor, keeps the off-path children and
 * deletes each parent as soon as both its children exist (§9.2). A leaf's
 * secret is replaced by its handshake and application ratchets at once.
 * Memory is therefore proportional to the leaves actually used (about
 * log2(n) node secrets per used leaf at worst), never to the group size.
 *
 * Ratchets: each keeps the secret of its next unused generation. Sending
 * takes that generation (secret_tree_next). Receiving (secret_tree_get)
 * may jump ahead by at most max_ahead generations; the keys of the
 * generations jumped over are kept, at most max_skipped per ratchet
 * (oldest evicted first), for out-of-order messages. A key is deleted
 * when it is handed out, so asking again for it gives TSR_EREPLAY. A
 * receiver that must authenticate first uses secret_tree_peek, which
 * changes nothing, then secret_tree_consume, which makes exactly the
 * changes secret_tree_get would have made. Asking
 * for a generation older than every key that is still kept gives
 * TSR_EWINDOW when its key was evicted unused; a consumed key older than
 * an eviction also reports TSR_EWINDOW (the tree does not remember which).
 *
 * Ownership: secret_tree is a caller-owned struct; secret_tree_init or
 * secret_tree_deserialize fills it, and secret_tree_free wipes and frees
 * everything it owns (its fields are private). It copies the
 * encryption_secret; inputs are views the caller keeps. Keys returned in a
 * secret_tree_keys belong to the caller, who should secret_tree_keys_wipe
 * them after use. Serialized state contains secrets: release it with
 * buf_free_secret. Not thread-safe: one tree, one thread at a time.
 *
 * Functions return 0 or a negative TSR_E* code; on failure the tree is
 * unchanged and outputs are zeroed. */
#ifndef TSR_MLS_SECRET_TREE_H
#define TSR_MLS_SECRET_TREE_H

#include <stddef.h>
#include <stdint.h>

#include "common/bytes.h"
#include "mls/crypto.h"

/* Which ratchet of a leaf (handshake for proposals and commits). */
typedef enum {
  SECRET_TREE_HANDSHAKE = 0,
  SECRET_TREE_APPLICATION = 1,
} secret_tree_type;

#define SECRET_TREE_DEFAULT_MAX_AHEAD 1000u
#define SECRET_TREE_DEFAULT_MAX_SKIPPED 256u

typedef struct {
  /* Largest jump a receiver accepts: generation - next_unused_generation. */
  uint32_t max_ahead;
  /* Keys of skipped generations kept per ratchet (0 keeps none). */
  uint32_t max_skipped;
} secret_tree_config;

/* Key and nonce (suite->key_len / nonce_len bytes) for one generation. The
 * nonce is the key-schedule nonce, before the reuse guard is applied. */
typedef struct {
  uint32_t generation;
  uint8_t key[MLS_MAX_AEAD_KEY];
  uint8_t nonce[MLS_MAX_NONCE];
} secret_tree_keys;

typedef struct st_map st_map; /* private */

typedef struct {
  const mls_suite *suite;
  uint32_t n_leaves;
  secret_tree_config cfg;
  st_map *nodes;  /* node index -> tree node secret still held */
  st_map *leaves; /* leaf index -> its two ratchets */
} secret_tree;

/* n_leaves: the ratchet tree's leaf count (a power of two, >= 1).
 * encryption_secret: Nh bytes. cfg NULL means the defaults. */
int secret_tree_init(secret_tree *st, const mls_suite *s, bytes_t encryption_secret,
                     uint32_t n_leaves, const secret_tree_config *cfg);
void secret_tree_free(secret_tree *st); /* wipes; NULL-safe; re-init allowed */

/* Sender: key/nonce of the next unused generation of leaf's ratchet, which
 * is consumed. TSR_EINVAL for a leaf outside the tree, TSR_ELIMIT when the
 * generation counter is exhausted. */
int secret_tree_next(secret_tree *st, uint32_t leaf, secret_tree_type type,
                     secret_tree_keys *out);
/* Receiver: key/nonce of a given generation, consumed (deleted) on return.
 * TSR_EREPLAY if already consumed, TSR_EWINDOW if too far ahead or evicted. */
int secret_tree_get(secret_tree *st, uint32_t leaf, secret_tree_type type,
                    uint32_t generation, secret_tree_keys *out);
/* Two-phase receive, so that a message refused before it authenticated
 * changes nothing: peek computes the key/nonce secret_tree_get would
 * return, with the same errors, but leaves the tree exactly as it was (no
 * leaf derived, no ratchet advanced, nothing kept or evicted; a jump of k
 * generations costs k derivations each time). consume, once the message
 * authenticated, makes all the changes secret_tree_get would make (derive
 * the leaf, advance, keep skipped keys within max_skipped, delete the key)
 * and returns its errors: TSR_EREPLAY for a key already consumed,
 * TSR_EWINDOW for one too far ahead or evicted. */
int secret_tree_peek(secret_tree *st, uint32_t leaf, secret_tree_type type,
                     uint32_t generation, secret_tree_keys *out);
int secret_tree_consume(secret_tree *st, uint32_t leaf, secret_tree_type type,
                        uint32_t generation);

/* Next unused generation of a ratchet (0 for a leaf not yet derived). */
int secret_tree_next_generation(const secret_tree *st, uint32_t leaf,
                                secret_tree_type type, uint32_t *generation);

void secret_tree_keys_wipe(secret_tree_keys *k);

/* What the tree holds right now: node secrets, leaves with ratchets, and
 * kept (unconsumed skipped) keys over all ratchets. */
typedef struct {
  size_t node_secrets;
  size_t leaves;
  size_t kept_keys;
} secret_tree_stats;
void secret_tree_get_stats(const secret_tree *st, secret_tree_stats *out);

/* Append the whole state (suite, size, config, node secrets, ratchets and
 * kept keys) to out; errors are also left in out->err. */
int secret_tree_serialize(const secret_tree *st, buf_t *out);
/* Rebuild a tree from secret_tree_serialize output (st uninitialised or
 * freed). TSR_EDECODE for malformed input, TSR_EUNSUPPORTED for an
 * unknown suite or format version. */
int secret_tree_deserialize(secret_tree *st, bytes_t in);

/* §6.3.2: key = ExpandWithLabel(sender_data_secret, "key", sample, Nk),
 * nonce likewise with "nonce" and Nn, where sample is the first Nh bytes
 * of the content ciphertext (all of it if shorter). */
int secret_tree_sender_data_key(const mls_suite *s, bytes_t sender_data_secret,
                                bytes_t ciphertext, uint8_t key[MLS_MAX_AEAD_KEY],
                                uint8_t nonce[MLS_MAX_NONCE]);

#endif
