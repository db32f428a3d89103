/* The Delivery Service's view of an MLS group (RFC 9420 §16.8, §12.4):
 * the public state only — ratchet tree (public keys, leaves, credentials),
 * GroupContext, transcript hashes, the epoch's proposals — and no secret.
 *
 * The server follows every handshake message of a conversation with it:
 * a PublicMessage proposal or commit is verified as a member would verify
 * it (the sender's signature over the FramedContent and this epoch's
 * GroupContext, proposal and commit validity, the UpdatePath's LeafNode
 * signature and parent hashes, the tree after the commit) and then
 * applied, so the roster and the epoch the server knows are exactly the
 * members'. What it cannot check without secrets: the membership tag, the
 * confirmation tag (both keyed by epoch secrets), PSK values, and the
 * path secrets encrypted to members. A commit valid in everything public
 * but wrong in those (a member lying in ciphertext) fails at the members,
 * not here.
 *
 * PrivateMessage (application data, never handshake: handshakes must be
 * public so the server can track them) is only checked for group and
 * epoch; its sender is encrypted.
 *
 * An observer is an mls_group with `observer` set: the group.h accessors
 * (group_epoch, group_leaf_count, group_member, group_find_member,
 * group_extensions, group_is_active, group_free) work on it; nothing that
 * needs secrets does (TSR_ESTATE).
 *
 * Ownership: the returned group is the caller's (group_free). Inputs are
 * copied. Threads: none shared; one observer per thread at a time. */
#ifndef TSR_MLS_OBSERVER_H
#define TSR_MLS_OBSERVER_H

#include <stdint.h>

#include "common/bytes.h"
#include "mls/group.h"

/* What a processed message was. */
typedef struct {
  uint16_t wire_format; /* MLS_WIRE_PUBLIC_MESSAGE or MLS_WIRE_PRIVATE_MESSAGE */
  uint8_t content_type; /* MLS_CONTENT_APPLICATION / _PROPOSAL / _COMMIT */
  uint64_t epoch;       /* the epoch the message was sent in */
  /* Public messages: the sender as in the message (leaf index for
   * members, external_senders index, or for a new_member_commit the leaf
   * the joiner took). Private messages: 0 (encrypted). */
  uint8_t sender_type;
  uint32_t sender;
  uint16_t proposal_type; /* proposals */
  uint32_t removed;       /* a Remove proposal: the leaf it removes */
} observer_event;

/* Starts following a group from a signed GroupInfo MLSMessage (with the
 * ratchet_tree extension, else `tree` is its body): the tree must be
 * valid and hash to the GroupContext's tree_hash, and the GroupInfo must
 * be signed by its signer leaf. Epoch 0 (a new group's creator) is
 * accepted with its empty confirmed transcript hash. cfg may be NULL
 * (cfg->now fixes the clock for KeyPackage lifetimes in tests). */
int observer_new(bytes_t group_info_msg, bytes_t tree, const group_config *cfg,
                 mls_group **out);

/* Processes one MLSMessage for the current epoch. On success ev (may be
 * NULL) says what it was; a commit moved the observer to the next epoch, a
 * proposal was remembered for this epoch's commit. Errors (the observer is
 * then unchanged): TSR_EDECODE malformed or truncated, TSR_EGROUP another
 * group, TSR_EEPOCH another epoch (including a second commit for an epoch
 * already committed), TSR_EVERIFY bad signature, TSR_ESENDER sender not
 * allowed (blank leaf, unknown external sender, wrong type for the
 * content), TSR_EPROTOCOL invalid proposal or commit, or a handshake in a
 * PrivateMessage, TSR_ETREE invalid path, TSR_ESTATE group over (removed
 * everyone / ReInit committed). */
int observer_process(mls_group *g, bytes_t msg, observer_event *ev);

/* Strict versioned persistence ("TSRO"). No secrets are in it. */
int observer_save(const mls_group *g, buf_t *out);
int observer_load(bytes_t in, mls_group **out);

/* The encoded GroupContext of the current epoch (view, valid until the
 * observer changes): what every member signs over in this epoch. */
bytes_t observer_group_context(const mls_group *g);

#endif
