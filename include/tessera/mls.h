/* tessera MLS: end-to-end encrypted groups (RFC 9420) for clients.
 *
 * Cipher suites 0x0001 (X25519, AES-128-GCM, SHA-256, Ed25519) and 0x0003
 * (X25519, ChaCha20-Poly1305, SHA-256, Ed25519). Every message in and out
 * of this API is a TLS-serialised MLSMessage.
 *
 * Objects: a tsr_mls_identity is one member's signing key and basic
 * credential; a tsr_mls_group is one member's view of one group. Both are
 * opaque heap objects freed with their _free function, which wipes every
 * secret they hold.
 *
 * Threads: no global state besides tsr_mls_init(); an object may be used
 * from any thread but by one thread at a time.
 *
 * Errors: functions return 0 or a negative TSR_E* code (tessera/error.h)
 * and change nothing observable on failure — a group whose process call
 * failed is exactly as before the call.
 *
 * Buffers returned through uint8_t ** are allocated with malloc and owned
 * by the caller (free them with tsr_mls_free). */
#ifndef TESSERA_MLS_H
#define TESSERA_MLS_H

#include <stddef.h>
#include <stdint.h>

#include "tessera/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TSR_MLS_SUITE_1 0x0001
#define TSR_MLS_SUITE_3 0x0003

/* Initialises the crypto libraries. Call once before anything else. */
int tsr_mls_init(void);

/* Frees a buffer returned by this API, wiping it first. */
void tsr_mls_free(void *p, size_t len);

/* --- Identity and key packages ---------------------------------------- */

typedef struct tsr_mls_identity tsr_mls_identity;

/* New signing key for `suite` with a basic credential carrying `name`. */
int tsr_mls_identity_new(uint16_t suite, const uint8_t *name, size_t name_len,
                         tsr_mls_identity **out);
void tsr_mls_identity_free(tsr_mls_identity *id);
uint16_t tsr_mls_identity_suite(const tsr_mls_identity *id);
/* Persistable form (contains the private key: store it protected). */
int tsr_mls_identity_save(const tsr_mls_identity *id, uint8_t **out, size_t *out_len);
int tsr_mls_identity_load(const uint8_t *in, size_t len, tsr_mls_identity **out);

/* Creates a KeyPackage (as an MLSMessage) valid from now for
 * `lifetime_s` seconds (0: 90 days). `secret` receives the private part
 * (init and leaf encryption keys) to keep until a Welcome for this key
 * package arrives, and to discard afterwards. */
int tsr_mls_key_package_new(const tsr_mls_identity *id, uint64_t lifetime_s, uint8_t **kp,
                            size_t *kp_len, uint8_t **secret, size_t *secret_len);

/* --- Groups ------------------------------------------------------------ */

typedef struct tsr_mls_group tsr_mls_group;

/* Tunables; zero fields take the defaults noted. */
typedef struct {
  uint32_t max_generation_gap; /* out-of-order window per sender; default 1000 */
  uint32_t max_skipped_keys;   /* kept keys of skipped generations; default 1000 */
  uint32_t padding_block;      /* PrivateMessage padding block; default 32 */
  uint8_t encrypt_handshake;   /* 1: proposals/commits as PrivateMessage; default 0 */
} tsr_mls_config;

/* A new one-member group at epoch 0. */
int tsr_mls_group_create(const tsr_mls_identity *id, const tsr_mls_config *cfg,
                         const uint8_t *group_id, size_t group_id_len,
                         tsr_mls_group **out);

/* Joins from a Welcome. `secrets` are the key-package secrets the caller
 * holds (tsr_mls_key_package_new); the matching one is used. The ratchet
 * tree comes from the Welcome's ratchet_tree extension, or from `tree`
 * (the extension body) when the Welcome has none. `*used` (optional) gets
 * the index of the secret that matched. */
int tsr_mls_group_join(const tsr_mls_identity *id, const tsr_mls_config *cfg,
                       const uint8_t *const *secrets, const size_t *secret_lens,
                       size_t n_secrets, const uint8_t *welcome, size_t welcome_len,
                       const uint8_t *tree, size_t tree_len, size_t *used,
                       tsr_mls_group **out);

/* Joins by external commit from a GroupInfo (with external_pub and
 * ratchet_tree extensions). `commit` is the commit to send to the group;
 * the returned group is already in the new epoch. */
int tsr_mls_group_external_join(const tsr_mls_identity *id, const tsr_mls_config *cfg,
                                const uint8_t *group_info, size_t group_info_len,
                                uint8_t **commit, size_t *commit_len,
                                tsr_mls_group **out);

void tsr_mls_group_free(tsr_mls_group *g);

/* Persistable, versioned form of the whole member state (secrets
 * included); load restores it exactly. */
int tsr_mls_group_save(const tsr_mls_group *g, uint8_t **out, size_t *out_len);
int tsr_mls_group_load(const uint8_t *in, size_t len, tsr_mls_group **out);

uint64_t tsr_mls_group_epoch(const tsr_mls_group *g);
uint32_t tsr_mls_group_own_leaf(const tsr_mls_group *g);
/* Group id: a view valid until the group changes or is freed. */
const uint8_t *tsr_mls_group_id(const tsr_mls_group *g, size_t *len);
int tsr_mls_group_epoch_authenticator(const tsr_mls_group *g, uint8_t *out,
                                      size_t *out_len);
/* MLS-Exporter(label, context, length). */
int tsr_mls_group_export(const tsr_mls_group *g, const char *label,
                         const uint8_t *context, size_t context_len, uint8_t *out,
                         size_t len);

/* Members: leaves are numbered 0..n_leaves-1; blank leaves are skipped
 * by tsr_mls_group_member (returns TSR_ENOTFOUND). identity is a view
 * valid until the group changes. */
uint32_t tsr_mls_group_leaf_count(const tsr_mls_group *g);
int tsr_mls_group_member(const tsr_mls_group *g, uint32_t leaf, const uint8_t **identity,
                         size_t *identity_len);
/* Leaf of the member with this basic-credential identity, or TSR_ENOTFOUND. */
int tsr_mls_group_find_member(const tsr_mls_group *g, const uint8_t *identity,
                              size_t identity_len, uint32_t *leaf);

/* GroupInfo (MLSMessage) for external joiners: signed, with the
 * external_pub and ratchet_tree extensions. */
int tsr_mls_group_info(const tsr_mls_group *g, uint8_t **out, size_t *out_len);

/* --- Proposals and commits --------------------------------------------- */

/* Proposals sent as standalone messages; they are cached by every member
 * (including the sender) and included by reference in the next commit. */
int tsr_mls_group_propose_add(tsr_mls_group *g, const uint8_t *kp, size_t kp_len,
                              uint8_t **msg, size_t *msg_len);
int tsr_mls_group_propose_remove(tsr_mls_group *g, uint32_t leaf, uint8_t **msg,
                                 size_t *msg_len);
int tsr_mls_group_propose_update(tsr_mls_group *g, uint8_t **msg, size_t *msg_len);

/* A commit request: proposals by value, plus every cached proposal. */
typedef struct {
  const uint8_t *const *add_key_packages; /* MLSMessage KeyPackages */
  const size_t *add_key_package_lens;
  size_t n_adds;
  const uint32_t *remove_leaves;
  size_t n_removes;
  const uint8_t *const *psk_ids; /* external PSK ids (registered below) */
  const size_t *psk_id_lens;
  size_t n_psks;
  uint8_t force_path; /* include an UpdatePath even when not required */
} tsr_mls_commit_params;

/* Creates a commit. The group stays in its epoch with the commit pending
 * until tsr_mls_group_merge_pending (the delivery service accepted it) or
 * tsr_mls_group_discard_pending (another commit won the epoch). `welcome`
 * is set (else NULL/0) when members were added; it carries the
 * ratchet_tree extension. */
int tsr_mls_group_commit(tsr_mls_group *g, const tsr_mls_commit_params *p,
                         uint8_t **commit, size_t *commit_len, uint8_t **welcome,
                         size_t *welcome_len);
int tsr_mls_group_merge_pending(tsr_mls_group *g);
void tsr_mls_group_discard_pending(tsr_mls_group *g);

/* External pre-shared keys this member knows, by id. */
int tsr_mls_group_add_external_psk(tsr_mls_group *g, const uint8_t *id, size_t id_len,
                                   const uint8_t *psk, size_t psk_len);

/* --- Messages ------------------------------------------------------------ */

/* Encrypts application data as a PrivateMessage. */
int tsr_mls_group_protect(tsr_mls_group *g, const uint8_t *pt, size_t pt_len,
                          const uint8_t *aad, size_t aad_len, uint8_t **msg,
                          size_t *msg_len);

enum tsr_mls_event_type {
  TSR_MLS_EVENT_APPLICATION = 1, /* data/len: the plaintext */
  TSR_MLS_EVENT_PROPOSAL = 2,    /* cached for the next commit */
  TSR_MLS_EVENT_COMMIT = 3,      /* the group moved to a new epoch */
  TSR_MLS_EVENT_REMOVED = 4,     /* a commit removed this member: group is over */
};

typedef struct {
  int type;        /* enum tsr_mls_event_type */
  uint32_t sender; /* leaf index of a member sender */
  uint8_t *data;   /* application data; caller frees (tsr_mls_free) */
  size_t len;
  uint8_t *authenticated_data; /* caller frees */
  size_t authenticated_data_len;
} tsr_mls_event;

/* Processes a PublicMessage or PrivateMessage for this group. On error the
 * group is unchanged; distinct codes for replayed (TSR_EREPLAY), forged
 * (TSR_EVERIFY / TSR_EDECRYPT), wrong-epoch (TSR_EEPOCH), wrong-group
 * (TSR_EGROUP) and truncated (TSR_EDECODE) input. Processing our own
 * pending commit merges it. */
int tsr_mls_group_process(tsr_mls_group *g, const uint8_t *msg, size_t msg_len,
                          tsr_mls_event *ev);
void tsr_mls_event_clear(tsr_mls_event *ev);

#ifdef __cplusplus
}
#endif
#endif
