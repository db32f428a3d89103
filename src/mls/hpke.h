/* RFC 9180 HPKE for the MLS cipher suites: KEM 0x0020 DHKEM(X25519,
 * HKDF-SHA256), KDF 0x0001 HKDF-SHA256, AEAD 0x0001 AES-128-GCM or 0x0003
 * ChaCha20Poly1305. All four modes are supported.
 *
 * An HPKE suite is named by the mls_suite carrying its three ids (see
 * hpke_suite_find). Contexts are plain structs owned by the caller: set one
 * up with hpke_setup_sender / hpke_setup_receiver, use it, and always end
 * with hpke_ctx_wipe. Functions return 0 or a negative TSR_E* code; on
 * failure outputs are zeroed (a failed setup leaves the context wiped). */
#ifndef TSR_MLS_HPKE_H
#define TSR_MLS_HPKE_H

#include <stddef.h>
#include <stdint.h>

#include "common/bytes.h"
#include "mls/crypto.h"

enum {
  HPKE_KEM_X25519_SHA256 = 0x0020,
  HPKE_KDF_HKDF_SHA256 = 0x0001,
  HPKE_AEAD_AES128GCM = 0x0001,
  HPKE_AEAD_CHACHA20POLY1305 = 0x0003,
};

typedef enum {
  HPKE_MODE_BASE = 0,
  HPKE_MODE_PSK = 1,
  HPKE_MODE_AUTH = 2,
  HPKE_MODE_AUTH_PSK = 3,
} hpke_mode;

#define HPKE_NENC 32 /* encapsulated key (an X25519 public key) */
#define HPKE_NPK 32
#define HPKE_NSK 32
#define HPKE_NSECRET 32 /* KEM shared secret */

/* Setup inputs besides the keys. Zero-initialise and fill what the mode
 * needs: psk and psk_id (both non-empty) for the PSK modes; the sender's
 * private key (sender side) or public key (receiver side) for the auth
 * modes. PSK or auth inputs given to a mode that does not use them are
 * refused with TSR_EINVAL (RFC 9180 §5.1); senders ignore auth_pk and
 * receivers ignore auth_sk. */
typedef struct {
  hpke_mode mode;
  bytes_t info;
  /* Optional: the info is info_prefix || info, so callers with a large
   * labelled info (MLS EncryptContext) need not build it in memory. */
  bytes_t info_prefix;
  bytes_t psk;
  bytes_t psk_id;
  bytes_t auth_sk; /* auth modes, sender side: skS */
  bytes_t auth_pk; /* auth modes, receiver side: pkS */
} hpke_params;

enum { HPKE_ROLE_NONE = 0, HPKE_ROLE_SENDER = 1, HPKE_ROLE_RECEIVER = 2 };

/* Encryption context. The fields are readable (tests check them against
 * the RFC vectors) but only these functions should write them; seq may be
 * set directly to resynchronise with a peer. */
typedef struct {
  const mls_suite *suite;
  uint64_t seq;
  int role;
  uint8_t key[MLS_MAX_AEAD_KEY];
  uint8_t base_nonce[MLS_MAX_NONCE];
  uint8_t exporter_secret[MLS_MAX_HASH];
} hpke_ctx;

/* The supported suite with these HPKE ids, or NULL. */
const mls_suite *hpke_suite_find(uint16_t kem_id, uint16_t kdf_id, uint16_t aead_id);

/* DeriveKeyPair (§7.1.3) and GenerateKeyPair for the suite's KEM. */
int hpke_derive_keypair(const mls_suite *s, bytes_t ikm, uint8_t sk[HPKE_NSK],
                        uint8_t pk[HPKE_NPK]);
int hpke_generate_keypair(const mls_suite *s, uint8_t sk[HPKE_NSK], uint8_t pk[HPKE_NPK]);

/* KEM. skS / pkS empty for Encap / Decap, set for AuthEncap / AuthDecap.
 * ikmE empty draws a random ephemeral key; otherwise it is derived from
 * ikmE (deterministic, for known-answer tests). Decap failures (bad
 * lengths, low-order enc) return TSR_ECRYPTO or TSR_EINVAL. */
int hpke_encap(const mls_suite *s, bytes_t pkR, bytes_t skS, bytes_t ikmE,
               uint8_t shared_secret[HPKE_NSECRET], uint8_t enc[HPKE_NENC]);
int hpke_decap(const mls_suite *s, bytes_t enc, bytes_t skR, bytes_t pkS,
               uint8_t shared_secret[HPKE_NSECRET]);

/* KeySchedule (§5.1) from a KEM shared secret; role is HPKE_ROLE_*. */
int hpke_key_schedule(hpke_ctx *ctx, const mls_suite *s, const hpke_params *p,
                      const uint8_t shared_secret[HPKE_NSECRET], int role);

/* Setup<Mode>S: random ephemeral key, enc is written for the receiver. */
int hpke_setup_sender(hpke_ctx *ctx, const mls_suite *s, const hpke_params *p,
                      bytes_t pkR, uint8_t enc[HPKE_NENC]);
/* The same with the ephemeral key derived from ikmE (test vectors). */
int hpke_setup_sender_derand(hpke_ctx *ctx, const mls_suite *s, const hpke_params *p,
                             bytes_t pkR, bytes_t ikmE, uint8_t enc[HPKE_NENC]);
/* Setup<Mode>R. */
int hpke_setup_receiver(hpke_ctx *ctx, const mls_suite *s, const hpke_params *p,
                        bytes_t enc, bytes_t skR);

/* Seal (sender only) writes pt.len + MLS_AEAD_TAG bytes to ct; Open
 * (receiver only) writes ct.len - MLS_AEAD_TAG bytes to pt and returns
 * TSR_EDECRYPT if the tag does not verify. Each success consumes one
 * sequence number; a failed Open does not. TSR_ESTATE for the wrong
 * role, TSR_ELIMIT when the sequence number is exhausted. */
int hpke_seal(hpke_ctx *ctx, bytes_t aad, bytes_t pt, uint8_t *ct);
int hpke_open(hpke_ctx *ctx, bytes_t aad, bytes_t ct, uint8_t *pt);

/* Export (§5.3): len <= 255 * hash_len. Either role. */
int hpke_export(const hpke_ctx *ctx, bytes_t exporter_context, uint8_t *out, size_t len);

void hpke_ctx_wipe(hpke_ctx *ctx);

#endif
