/* MLS key schedule (RFC 9420 §8): epoch secrets, GroupContext encoding,
 * PSK secret (§8.4), exporter (§8.5), epoch authenticator (§8.7),
 * confirmation tag and transcript hashes (§8.2), Welcome key (§12.4.3.1).
 *
 * Ownership: keysched_epoch is a plain caller-owned struct holding copies
 * of the epoch's secrets; release it with keysched_wipe (it owns no heap
 * memory). Inputs are views the caller keeps. Secrets that the deletion
 * schedule (§9.2) says are consumed by the derivation itself (the
 * epoch_secret and the intermediate extract outputs) never leave the
 * functions. joiner_secret and welcome_secret are kept because a committer
 * still needs them to build Welcome messages; callers that do not should
 * call keysched_forget_joiner once the epoch is installed.
 *
 * Every function is thread-safe on distinct structs. Functions return 0
 * or a negative TSR_E* code and zero their outputs on failure. */
#ifndef TSR_MLS_KEYSCHED_H
#define TSR_MLS_KEYSCHED_H

#include <stddef.h>
#include <stdint.h>

#include "common/bytes.h"
#include "mls/crypto.h"

/* All secrets are suite->hash_len (Nh) bytes long. */
typedef struct keysched_epoch {
  const mls_suite *suite;
  uint8_t joiner_secret[MLS_MAX_HASH];
  uint8_t welcome_secret[MLS_MAX_HASH];
  uint8_t sender_data_secret[MLS_MAX_HASH];
  uint8_t encryption_secret[MLS_MAX_HASH];
  uint8_t exporter_secret[MLS_MAX_HASH];
  uint8_t external_secret[MLS_MAX_HASH];
  uint8_t confirmation_key[MLS_MAX_HASH];
  uint8_t membership_key[MLS_MAX_HASH];
  uint8_t resumption_psk[MLS_MAX_HASH];
  uint8_t epoch_authenticator[MLS_MAX_HASH];
  uint8_t init_secret[MLS_MAX_HASH]; /* init_secret for the next epoch */
} keysched_epoch;

/* View of one Nh-byte member of ks, e.g. keysched_view(ks, ks->init_secret). */
static inline bytes_t keysched_view(const keysched_epoch *ks, const uint8_t *secret) {
  return BYTES(secret, ks->suite ? ks->suite->hash_len : 0);
}

/* Append the GroupContext (§8.1) encoding to out: version mls10,
 * cipher_suite, group_id<V>, epoch, tree_hash<V>,
 * confirmed_transcript_hash<V>, extensions<V>. extensions is the already
 * encoded body of the Extension vector (concatenated Extension structs,
 * empty for none); it is wrapped in its length header here. */
int keysched_group_context(buf_t *out, uint16_t cipher_suite, bytes_t group_id,
                           uint64_t epoch, bytes_t tree_hash,
                           bytes_t confirmed_transcript_hash, bytes_t extensions);

/* Derive an epoch from the previous epoch's init_secret, the commit_secret
 * and the psk_secret, with group_context the encoded GroupContext of the
 * new epoch. Each of the three secrets may be empty to mean the all-zero
 * Nh-byte vector (first epoch, commit without path, no PSKs); otherwise it
 * must be Nh bytes (TSR_EINVAL). */
int keysched_derive(keysched_epoch *ks, const mls_suite *s, bytes_t init_secret,
                    bytes_t commit_secret, bytes_t psk_secret, bytes_t group_context);

/* The same for a new member who learnt joiner_secret from a Welcome's
 * GroupSecrets (psk_secret empty = zero vector). */
int keysched_from_joiner(keysched_epoch *ks, const mls_suite *s, bytes_t joiner_secret,
                         bytes_t psk_secret, bytes_t group_context);

/* welcome_secret alone (a joiner needs it before it has the GroupContext)
 * and the Welcome AEAD key/nonce derived from it (§12.4.3.1):
 * key = ExpandWithLabel(welcome_secret, "key", "", Nk), likewise "nonce". */
int keysched_welcome_secret(const mls_suite *s, bytes_t joiner_secret, bytes_t psk_secret,
                            uint8_t out[MLS_MAX_HASH]);
int keysched_welcome_key(const mls_suite *s, bytes_t welcome_secret,
                         uint8_t key[MLS_MAX_AEAD_KEY], uint8_t nonce[MLS_MAX_NONCE]);

/* external_priv, external_pub = KEM.DeriveKeyPair(external_secret). sk may
 * be NULL when only the public key is wanted. */
int keysched_external_keypair(const keysched_epoch *ks, uint8_t sk[MLS_KEM_SK],
                              uint8_t pk[MLS_KEM_PK]);

/* MLS-Exporter(label, context, len) = ExpandWithLabel(DeriveSecret(
 * exporter_secret, label), "exported", Hash(context), len). label is an
 * arbitrary byte string (it may contain NUL bytes); len <= 255 * Nh. */
int keysched_export(const keysched_epoch *ks, bytes_t label, bytes_t context,
                    uint8_t *out, size_t len);

/* One PSK for psk_secret: id is the encoded PreSharedKeyID, value the PSK
 * itself (external PSK or a resumption_psk). */
typedef struct {
  bytes_t id;
  bytes_t value;
} keysched_psk;

/* psk_secret over psks[0..n) in order (§8.4); n == 0 gives the zero
 * vector. n must fit PSKLabel.count (uint16) else TSR_EINVAL. out: Nh. */
int keysched_psk_secret(const mls_suite *s, const keysched_psk *psks, size_t n,
                        uint8_t out[MLS_MAX_HASH]);

/* confirmation_tag = MAC(confirmation_key, confirmed_transcript_hash).
 * out: Nh bytes. */
int keysched_confirmation_tag(const keysched_epoch *ks, bytes_t confirmed_transcript_hash,
                              uint8_t out[MLS_MAX_HASH]);

/* Transcript hashes on already encoded inputs (§8.2):
 *   confirmed = Hash(interim_before || ConfirmedTranscriptHashInput)
 *   interim   = Hash(confirmed || InterimTranscriptHashInput)
 * out: Nh bytes. */
int keysched_confirmed_hash(const mls_suite *s, bytes_t interim_before, bytes_t input,
                            uint8_t out[MLS_MAX_HASH]);
int keysched_interim_hash(const mls_suite *s, bytes_t confirmed, bytes_t input,
                          uint8_t out[MLS_MAX_HASH]);

/* Wipe joiner_secret and welcome_secret once no Welcome will be built. */
void keysched_forget_joiner(keysched_epoch *ks);
/* Wipe every secret (the struct may be reused afterwards). */
void keysched_wipe(keysched_epoch *ks);

#endif
