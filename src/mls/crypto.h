/* Crypto provider for MLS cipher suites 0x0001 and 0x0003.
 *
 * Primitives come from libsodium (X25519, Ed25519, ChaCha20-Poly1305)
 * and OpenSSL libcrypto (SHA-256, AES-128-GCM, and Ed25519 signing of
 * large messages; crypto.c says why). HMAC (RFC 2104) is built over
 * SHA-256 and HKDF over HMAC as RFC 5869 defines it. On top sit the RFC 9420 §5
 * helpers (ExpandWithLabel, DeriveSecret, SignWithLabel, EncryptWithLabel,
 * RefHash) and RFC 9180 HPKE (see hpke.h).
 *
 * All functions are thread-safe (no shared mutable state) once
 * crypto_init() has returned 0. Output buffers are caller-owned and sized
 * by the suite's constants. Functions return 0 or a negative TSR_E* code;
 * on failure outputs are zeroed. */
#ifndef TSR_MLS_CRYPTO_H
#define TSR_MLS_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include "common/bytes.h"

enum {
  MLS_SUITE_X25519_AES128GCM_SHA256_ED25519 = 0x0001,
  MLS_SUITE_X25519_CHACHA20POLY1305_SHA256_ED25519 = 0x0003,
};

/* Largest sizes over every supported suite, for stack buffers. */
#define MLS_MAX_HASH 32
#define MLS_MAX_AEAD_KEY 32
#define MLS_MAX_NONCE 12
#define MLS_AEAD_TAG 16
#define MLS_KEM_PK 32   /* X25519 public key (and KEM enc) */
#define MLS_KEM_SK 32   /* X25519 private key */
#define MLS_SIG_PK 32   /* Ed25519 public key */
#define MLS_SIG_SEED 32 /* Ed25519 private key as MLS encodes it (RFC 8032 seed) */
#define MLS_SIG_LEN 64

/* Immutable description of a cipher suite. */
typedef struct mls_suite {
  uint16_t id;
  uint16_t kem_id;  /* HPKE KEM id: 0x0020 DHKEM(X25519, HKDF-SHA256) */
  uint16_t kdf_id;  /* HPKE KDF id: 0x0001 HKDF-SHA256 */
  uint16_t aead_id; /* HPKE AEAD id: 0x0001 AES-128-GCM, 0x0003 ChaCha20Poly1305 */
  size_t hash_len;  /* Nh = KDF.Nh */
  size_t key_len;   /* AEAD Nk */
  size_t nonce_len; /* AEAD Nn */
} mls_suite;

/* Must be called once before anything else (initialises libsodium). */
int crypto_init(void);

/* NULL if the suite is not supported. */
const mls_suite *mls_suite_get(uint16_t id);

/* --- Primitives ------------------------------------------------------ */

int crypto_random(void *out, size_t len);

/* out: hash_len bytes. */
int crypto_digest(const mls_suite *s, bytes_t data, uint8_t *out);
/* A reusable digest context for many small inputs (tree hashing): saves
 * crypto_digest's per-call context setup. One hasher must not be used
 * from two threads at once. NULL on allocation failure. */
typedef struct crypto_hasher crypto_hasher;
crypto_hasher *crypto_hasher_new(void);
void crypto_hasher_free(crypto_hasher *h); /* NULL is fine */
/* The same result as crypto_digest. */
int crypto_digest_with(crypto_hasher *h, const mls_suite *s, bytes_t data, uint8_t *out);
int crypto_hmac(const mls_suite *s, bytes_t key, bytes_t data, uint8_t *out);
/* HKDF-Extract: out is hash_len bytes. */
int crypto_kdf_extract(const mls_suite *s, bytes_t salt, bytes_t ikm, uint8_t *out);
/* HKDF-Expand: out_len <= 255 * hash_len. */
int crypto_kdf_expand(const mls_suite *s, bytes_t prk, bytes_t info, uint8_t *out,
                      size_t out_len);
/* The same with ikm / info given as the concatenation of n pieces, so
 * callers with labelled inputs (HPKE) need not build them in memory. */
int crypto_kdf_extract_v(const mls_suite *s, bytes_t salt, const bytes_t *ikm, size_t n,
                         uint8_t *out);
int crypto_kdf_expand_v(const mls_suite *s, bytes_t prk, const bytes_t *info, size_t n,
                        uint8_t *out, size_t out_len);

/* AEAD with the suite's algorithm. key: key_len, nonce: nonce_len.
 * seal writes pt.len + MLS_AEAD_TAG bytes to ct; open writes ct.len - 16
 * bytes to pt and returns TSR_EDECRYPT if the tag does not verify. ct and
 * pt may not overlap. */
int crypto_aead_seal(const mls_suite *s, const uint8_t *key, const uint8_t *nonce,
                     bytes_t aad, bytes_t pt, uint8_t *ct);
int crypto_aead_open(const mls_suite *s, const uint8_t *key, const uint8_t *nonce,
                     bytes_t aad, bytes_t ct, uint8_t *pt);

/* X25519. dh returns TSR_ECRYPTO for an all-zero shared secret. */
int crypto_dh(const uint8_t sk[MLS_KEM_SK], const uint8_t pk[MLS_KEM_PK],
              uint8_t out[32]);
int crypto_dh_public(const uint8_t sk[MLS_KEM_SK], uint8_t pk[MLS_KEM_PK]);

/* Ed25519. A signing key is the 32-byte seed plus its expanded form, so
 * signing does not recompute the public key each time. */
typedef struct {
  uint8_t seed[MLS_SIG_SEED];
  uint8_t pk[MLS_SIG_PK];
  uint8_t sk[64]; /* libsodium's expanded secret key (seed || pk) */
} mls_sig_key;

int crypto_sig_generate(mls_sig_key *key);
int crypto_sig_from_seed(mls_sig_key *key, const uint8_t seed[MLS_SIG_SEED]);
void crypto_sig_wipe(mls_sig_key *key);
/* sig: MLS_SIG_LEN bytes. */
int crypto_sig_sign(const mls_sig_key *key, bytes_t msg, uint8_t sig[MLS_SIG_LEN]);
/* TSR_EVERIFY on a bad signature or malformed key/signature length. */
int crypto_sig_verify(bytes_t pk, bytes_t msg, bytes_t sig);

/* --- RFC 9420 §5 helpers --------------------------------------------- */

/* ExpandWithLabel(secret, label, context, length); "MLS 1.0 " is prefixed
 * to label here. */
int mls_expand_with_label(const mls_suite *s, bytes_t secret, const char *label,
                          bytes_t context, uint8_t *out, size_t len);
/* Several ExpandWithLabel outputs from one secret, keying the HMAC once
 * (the secret tree derives key, nonce and next secret per generation).
 * On failure every out is zeroed. */
typedef struct {
  const char *label;
  bytes_t context;
  uint8_t *out;
  size_t len;
} mls_expand_req;
int mls_expand_with_labels(const mls_suite *s, bytes_t secret, const mls_expand_req *req,
                           size_t n);
/* DeriveSecret(secret, label): hash_len bytes. */
int mls_derive_secret(const mls_suite *s, bytes_t secret, const char *label,
                      uint8_t *out);
/* DeriveTreeSecret(secret, label, generation, length). */
int mls_derive_tree_secret(const mls_suite *s, bytes_t secret, const char *label,
                           uint32_t generation, uint8_t *out, size_t len);
/* RefHash(label, value): hash_len bytes. label is used as given (callers
 * pass e.g. "MLS 1.0 KeyPackage Reference"). */
int mls_ref_hash(const mls_suite *s, const char *label, bytes_t value, uint8_t *out);
/* SignWithLabel / VerifyWithLabel; "MLS 1.0 " is prefixed to label. */
int mls_sign_with_label(const mls_suite *s, const mls_sig_key *key, const char *label,
                        bytes_t content, uint8_t sig[MLS_SIG_LEN]);
int mls_verify_with_label(const mls_suite *s, bytes_t pk, const char *label,
                          bytes_t content, bytes_t sig);
/* SignWithLabel over content the caller has already encoded in place, so
 * a large content (a GroupInfo with its ratchet tree) is not copied: the
 * content is buf[off, off + len) and buf[0, off) is scratch of at least
 * mls_sign_prefix_len(label) bytes, which the SignContent header
 * overwrites. */
size_t mls_sign_prefix_len(const char *label);
int mls_sign_with_label_at(const mls_suite *s, const mls_sig_key *key, const char *label,
                           uint8_t *buf, size_t off, size_t len,
                           uint8_t sig[MLS_SIG_LEN]);
/* EncryptWithLabel(public_key, label, context, plaintext) -> (kem_output,
 * ciphertext): HPKE base mode, info = EncryptContext. kem_output is
 * MLS_KEM_PK bytes; ct gets pt.len + MLS_AEAD_TAG bytes appended. */
int mls_encrypt_with_label(const mls_suite *s, bytes_t pk, const char *label,
                           bytes_t context, bytes_t pt, uint8_t kem_output[MLS_KEM_PK],
                           buf_t *ct);
/* DecryptWithLabel: pt gets ct.len - MLS_AEAD_TAG bytes appended. */
int mls_decrypt_with_label(const mls_suite *s, bytes_t sk, const char *label,
                           bytes_t context, bytes_t kem_output, bytes_t ct, buf_t *pt);
/* HPKE DeriveKeyPair for the suite's KEM (RFC 9180 §7.1.3). */
int mls_kem_derive_keypair(const mls_suite *s, bytes_t ikm, uint8_t sk[MLS_KEM_SK],
                           uint8_t pk[MLS_KEM_PK]);

#endif
