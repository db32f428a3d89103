/* RFC 9420 §6 message framing: signing FramedContent, PublicMessage
 * (membership tag) and PrivateMessage (content and sender-data
 * encryption), in both directions.
 *
 * Sending is two steps so that a commit's confirmation tag, which depends
 * on the signature, can be filled in between:
 *   ac.wire_format = ...; ac.content = ...;
 *   framing_sign(ctx, &ac, sig);             // ac.auth.signature = sig
 *   ac.auth.confirmation_tag = tag;          // commits only
 *   framing_protect_public / framing_protect_private(ctx, &ac, &out);
 * Receiving is one call, framing_unprotect (or the _public / _private
 * variants on an already decoded message). It checks group and epoch,
 * membership tag, decrypts, checks padding and the signature; the sender's
 * signature key comes from the ctx callback. The confirmation tag of a
 * commit is parsed but not checked here: it needs the next epoch's
 * confirmation key, which the caller derives from the result.
 *
 * Ownership: framing_ctx only borrows (secrets, secret tree, signing key,
 * callback state); everything it points to must outlive each call. Results
 * are views into the input message bytes and into the arena passed in, so
 * they live as long as both do. Plaintext copied into the arena is wiped
 * by arena_free.
 *
 * Threads: no global state. A ctx may be shared by threads only if its
 * secret tree is not used concurrently (protect_private and
 * unprotect_private change the tree).
 *
 * Output buffers: protect_* append one MLSMessage to `out`, which must not
 * carry a sticky error on entry (TSR_EINVAL); on failure out is left
 * exactly as it was.
 *
 * Errors: 0 or a negative TSR_E*. A received message consumes its key in
 * the secret tree only once it fully authenticated (secret_tree_peek, then
 * secret_tree_consume). Sending takes the ratchet's next generation only
 * after the plaintext is built; a later failure (AEAD, RNG) leaves that
 * generation burnt, never reusable, and out unchanged. */
#ifndef TSR_MLS_FRAMING_H
#define TSR_MLS_FRAMING_H

#include <stdbool.h>
#include <stdint.h>

#include "common/bytes.h"
#include "mls/crypto.h"
#include "mls/messages.h"
#include "mls/secret_tree.h"

/* Sender data: leaf_index(4) || generation(4) || reuse_guard(4). */
#define FRAMING_SENDER_DATA_LEN 12
/* Largest padding block accepted in framing_ctx.padding_block. */
#define FRAMING_MAX_PADDING_BLOCK 4096

/* Signature public key of a sender (member: the leaf's signature_key;
 * external: the external_senders entry). Only called for member and
 * external senders; new_member_commit / new_member_proposal keys come from
 * the content itself (the commit path's leaf node / the Add's key
 * package). For PrivateMessage it is called right after sender-data
 * decryption and before any content key is derived, so it is also the
 * "leaf in range and non-blank" check (§6.3.2). Return 0 with *pk set to a
 * view valid for the rest of the call, or TSR_ESENDER (blank / unknown
 * sender) or another TSR_E* code, which is passed back to the caller. */
typedef int (*framing_key_fn)(void *arg, const mls_sender *sender, bytes_t *pk);

/* Per-epoch state, filled by the caller. Fields a direction does not use
 * may be left zero: receiving needs no sig_key, PublicMessage needs no
 * tree or sender_data_secret, PrivateMessage needs no membership_key. */
typedef struct framing_ctx {
  const mls_suite *suite;
  bytes_t group_id;
  uint64_t epoch;
  bytes_t group_context;      /* encoded GroupContext of this epoch */
  bytes_t membership_key;     /* Nh bytes */
  bytes_t sender_data_secret; /* Nh bytes */
  secret_tree *tree;          /* this epoch's secret tree (PrivateMessage) */
  uint32_t own_leaf;          /* our leaf index (sending PrivateMessage) */
  const mls_sig_key *sig_key; /* our signing key (sending) */
  uint32_t padding_block;     /* pad PrivateMessageContent to a multiple; 0/1: none */
  framing_key_fn sender_key;  /* receiving */
  void *sender_key_arg;
  /* Receiving as the Delivery Service (mls/observer.h), which holds no
   * epoch secret: a PublicMessage's membership tag is not checked (the
   * signature still is). */
  bool no_membership_key;
} framing_ctx;

/* What framing_unprotect returns. */
typedef struct framing_result {
  mls_authenticated_content ac;
  /* Encoded AuthenticatedContent (arena), as needed for a ProposalRef
   * (RFC 9420 §5.2) and the transcript hash. Empty for application
   * messages, which need neither. */
  bytes_t encoded;
  /* ConfirmedTranscriptHashInput = wire_format || FramedContent ||
   * signature<V>: a prefix of `encoded` (commits and proposals). */
  bytes_t confirmed_input;
  /* PrivateMessage: the ratchet generation the message used. */
  uint32_t generation;
} framing_result;

/* Signs ac->content with ctx->sig_key for ac->wire_format (SignWithLabel
 * "FramedContentTBS"; the GroupContext is covered for member and
 * new_member_commit senders). Sets ac->auth.signature to a view of sig. */
int framing_sign(const framing_ctx *ctx, mls_authenticated_content *ac,
                 uint8_t sig[MLS_SIG_LEN]);

/* Appends an MLSMessage(PublicMessage) for a signed ac (wire_format must
 * be public message) to out, with the membership tag for member senders.
 * Application content is refused with TSR_EPROTOCOL (§6.2). */
int framing_protect_public(const framing_ctx *ctx, const mls_authenticated_content *ac,
                           buf_t *out);

/* Appends an MLSMessage(PrivateMessage) for a signed ac (wire_format must
 * be private message, sender the member ctx->own_leaf) to out. Uses the
 * next generation of our handshake or application ratchet, a random reuse
 * guard, and zero padding up to a multiple of ctx->padding_block. */
int framing_protect_private(const framing_ctx *ctx, const mls_authenticated_content *ac,
                            buf_t *out);

/* Processes an MLSMessage holding a PublicMessage or PrivateMessage
 * (other wire formats: TSR_EPROTOCOL). Errors: TSR_EDECODE malformed,
 * TSR_EGROUP / TSR_EEPOCH another group / epoch, TSR_EPROTOCOL application
 * data in a PublicMessage, TSR_ESENDER sender type not allowed for the
 * content, TSR_EVERIFY bad membership tag or signature, TSR_EDECRYPT AEAD
 * failure, TSR_EREPLAY / TSR_EWINDOW from the secret tree. */
int framing_unprotect(const framing_ctx *ctx, bytes_t msg, arena_t *a,
                      framing_result *out);
int framing_unprotect_public(const framing_ctx *ctx, const mls_public_message *pm,
                             arena_t *a, framing_result *out);
int framing_unprotect_private(const framing_ctx *ctx, const mls_private_message *pm,
                              arena_t *a, framing_result *out);

/* Appends ConfirmedTranscriptHashInput (wire_format || FramedContent ||
 * signature<V>) of ac to out; errors in out->err. For the sender of a
 * commit, which has no framing_result. */
void framing_encode_confirmed_input(buf_t *out, const mls_authenticated_content *ac);

#endif
