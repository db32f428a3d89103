/* Crypto provider: libsodium primitives, AES-128-GCM from OpenSSL, HKDF
 * over HMAC, and the RFC 9420 §5 labelled helpers. */
#include "mls/crypto.h"

#include <limits.h>
#include <openssl/evp.h>
#include <stdatomic.h>
#include <string.h>

/* Not <sodium.h>: its crypto_digest() and crypto_sig_sign() clash with the names
 * crypto.h declares, so pull in only the headers used here. */
#include <sodium/core.h>
#include <sodium/crypto_aead_chacha20poly1305.h>
#include <sodium/crypto_auth_hmacsha256.h>
#include <sodium/crypto_hash_sha256.h>
#include <sodium/crypto_scalarmult.h>
#include <sodium/crypto_sign_ed25519.h>
#include <sodium/randombytes.h>
#include <sodium/utils.h>

#include "mls/codec.h"
#include "mls/hpke.h"
#include "tessera/error.h"

static const mls_suite suites[] = {
    {
        .id = MLS_SUITE_X25519_AES128GCM_SHA256_ED25519,
        .kem_id = 0x0020,
        .kdf_id = 0x0001,
        .aead_id = 0x0001,
        .hash_len = 32,
        .key_len = 16,
        .nonce_len = 12,
    },
    {
        .id = MLS_SUITE_X25519_CHACHA20POLY1305_SHA256_ED25519,
        .kem_id = 0x0020,
        .kdf_id = 0x0001,
        .aead_id = 0x0003,
        .hash_len = 32,
        .key_len = 32,
        .nonce_len = 12,
    },
};

/* Fetched once: implicit fetches inside every EVP_EncryptInit_ex are a
 * measurable cost on the per-message path. Immutable after crypto_init. */
static _Atomic(EVP_CIPHER *) aes128gcm;

/* libsodium and OpenSSL dislike NULL pointers even with zero lengths. */
static const uint8_t empty_byte[1];
static inline const uint8_t *nz(bytes_t b) { return b.ptr ? b.ptr : empty_byte; }

int crypto_init(void) {
  if (sodium_init() < 0) return TSR_ECRYPTO;
  if (!atomic_load(&aes128gcm)) {
    EVP_CIPHER *c = EVP_CIPHER_fetch(NULL, "AES-128-GCM", NULL);
    if (!c) return TSR_ECRYPTO;
    EVP_CIPHER *expected = NULL;
    /* Another thread may have won the race; keep one. */
    if (!atomic_compare_exchange_strong(&aes128gcm, &expected, c)) EVP_CIPHER_free(c);
  }
  return 0;
}

const mls_suite *mls_suite_get(uint16_t id) {
  for (size_t i = 0; i < sizeof suites / sizeof suites[0]; i++)
    if (suites[i].id == id) return &suites[i];
  return NULL;
}

/* Only suites with SHA-256 everywhere are supported; rejects caller-built
 * descriptors we do not implement. */
static bool suite_ok(const mls_suite *s) {
  return s && s->hash_len == 32 && s->kdf_id == 0x0001 && s->nonce_len == 12 &&
         ((s->aead_id == 0x0001 && s->key_len == 16) ||
          (s->aead_id == 0x0003 && s->key_len == 32));
}

/* --- Primitives ------------------------------------------------------ */

int crypto_random(void *out, size_t len) {
  if (len) randombytes_buf(out, len);
  return 0;
}

int crypto_digest(const mls_suite *s, bytes_t data, uint8_t *out) {
  if (!suite_ok(s)) return TSR_EINVAL;
  crypto_hash_sha256(out, nz(data), data.len);
  return 0;
}

typedef crypto_auth_hmacsha256_state hmac_state;

static void hmac_init(hmac_state *st, bytes_t key) {
  crypto_auth_hmacsha256_init(st, nz(key), key.len);
}

int crypto_hmac(const mls_suite *s, bytes_t key, bytes_t data, uint8_t *out) {
  if (!suite_ok(s)) return TSR_EINVAL;
  hmac_state st;
  hmac_init(&st, key);
  crypto_auth_hmacsha256_update(&st, nz(data), data.len);
  crypto_auth_hmacsha256_final(&st, out);
  secure_wipe(&st, sizeof st);
  return 0;
}

int crypto_kdf_extract_v(const mls_suite *s, bytes_t salt, const bytes_t *ikm, size_t n,
                         uint8_t *out) {
  if (!suite_ok(s)) return TSR_EINVAL;
  /* RFC 5869: an absent salt is HashLen zeros, which HMAC pads to the
   * same block as an empty key. */
  hmac_state st;
  hmac_init(&st, salt);
  for (size_t i = 0; i < n; i++)
    if (ikm[i].len) crypto_auth_hmacsha256_update(&st, ikm[i].ptr, ikm[i].len);
  crypto_auth_hmacsha256_final(&st, out);
  secure_wipe(&st, sizeof st);
  return 0;
}

int crypto_kdf_extract(const mls_suite *s, bytes_t salt, bytes_t ikm, uint8_t *out) {
  return crypto_kdf_extract_v(s, salt, &ikm, 1, out);
}

int crypto_kdf_expand_v(const mls_suite *s, bytes_t prk, const bytes_t *info, size_t n,
                        uint8_t *out, size_t out_len) {
  if (!suite_ok(s)) return TSR_EINVAL;
  if (out_len > 255 * s->hash_len) return TSR_EINVAL;
  /* Key the HMAC once and clone the state per block. */
  hmac_state keyed, st;
  hmac_init(&keyed, prk);
  uint8_t t[32];
  size_t done = 0;
  for (uint8_t i = 1; done < out_len; i++) {
    st = keyed;
    if (i > 1) crypto_auth_hmacsha256_update(&st, t, sizeof t);
    for (size_t j = 0; j < n; j++)
      if (info[j].len) crypto_auth_hmacsha256_update(&st, info[j].ptr, info[j].len);
    crypto_auth_hmacsha256_update(&st, &i, 1);
    crypto_auth_hmacsha256_final(&st, t);
    size_t take = out_len - done < sizeof t ? out_len - done : sizeof t;
    memcpy(out + done, t, take);
    done += take;
  }
  secure_wipe(t, sizeof t);
  secure_wipe(&keyed, sizeof keyed);
  secure_wipe(&st, sizeof st);
  return 0;
}

int crypto_kdf_expand(const mls_suite *s, bytes_t prk, bytes_t info, uint8_t *out,
                      size_t out_len) {
  return crypto_kdf_expand_v(s, prk, &info, 1, out, out_len);
}

/* --- AEAD ------------------------------------------------------------- */

static EVP_CIPHER *gcm_cipher(void) {
  EVP_CIPHER *c = atomic_load(&aes128gcm);
  /* crypto_init not called: the legacy handle still works, just slower. */
  return c ? c : (EVP_CIPHER *)EVP_aes_128_gcm();
}

static int gcm_seal(const uint8_t *key, const uint8_t *nonce, bytes_t aad, bytes_t pt,
                    uint8_t *ct) {
  if (aad.len > INT_MAX || pt.len > INT_MAX) return TSR_EINVAL;
  EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
  if (!c) return TSR_ENOMEM;
  int ok = 0, n;
  if (EVP_EncryptInit_ex(c, gcm_cipher(), NULL, key, nonce) != 1) goto out;
  if (aad.len && EVP_EncryptUpdate(c, NULL, &n, aad.ptr, (int)aad.len) != 1) goto out;
  if (pt.len && EVP_EncryptUpdate(c, ct, &n, pt.ptr, (int)pt.len) != 1) goto out;
  if (EVP_EncryptFinal_ex(c, ct + pt.len, &n) != 1) goto out;
  if (EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, MLS_AEAD_TAG, ct + pt.len) != 1)
    goto out;
  ok = 1;
out:
  EVP_CIPHER_CTX_free(c);
  return ok ? 0 : TSR_ECRYPTO;
}

static int gcm_open(const uint8_t *key, const uint8_t *nonce, bytes_t aad, bytes_t ct,
                    uint8_t *pt) {
  size_t len = ct.len - MLS_AEAD_TAG;
  if (aad.len > INT_MAX || len > INT_MAX) return TSR_EINVAL;
  EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
  if (!c) return TSR_ENOMEM;
  int rc = TSR_ECRYPTO, n;
  uint8_t tag[MLS_AEAD_TAG];
  memcpy(tag, ct.ptr + len, sizeof tag);
  if (EVP_DecryptInit_ex(c, gcm_cipher(), NULL, key, nonce) != 1) goto out;
  if (aad.len && EVP_DecryptUpdate(c, NULL, &n, aad.ptr, (int)aad.len) != 1) goto out;
  if (len && EVP_DecryptUpdate(c, pt, &n, ct.ptr, (int)len) != 1) goto out;
  if (EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, MLS_AEAD_TAG, tag) != 1) goto out;
  /* OpenSSL compares the tag in constant time here. */
  rc = EVP_DecryptFinal_ex(c, pt + len, &n) == 1 ? 0 : TSR_EDECRYPT;
out:
  EVP_CIPHER_CTX_free(c);
  /* OpenSSL decrypts before it authenticates: never release unverified
   * plaintext. */
  if (rc) secure_wipe(pt, len);
  return rc;
}

int crypto_aead_seal(const mls_suite *s, const uint8_t *key, const uint8_t *nonce,
                     bytes_t aad, bytes_t pt, uint8_t *ct) {
  if (!suite_ok(s) || !key || !nonce || !ct || pt.len > SIZE_MAX - MLS_AEAD_TAG)
    return TSR_EINVAL;
  int rc;
  if (s->aead_id == 0x0003) {
    if (pt.len > crypto_aead_chacha20poly1305_ietf_MESSAGEBYTES_MAX) return TSR_EINVAL;
    unsigned long long clen;
    rc = crypto_aead_chacha20poly1305_ietf_encrypt(ct, &clen, nz(pt), pt.len, nz(aad),
                                                   aad.len, NULL, nonce, key) == 0
             ? 0
             : TSR_ECRYPTO;
  } else {
    rc = gcm_seal(key, nonce, aad, pt, ct);
  }
  if (rc) secure_wipe(ct, pt.len + MLS_AEAD_TAG);
  return rc;
}

int crypto_aead_open(const mls_suite *s, const uint8_t *key, const uint8_t *nonce,
                     bytes_t aad, bytes_t ct, uint8_t *pt) {
  if (!suite_ok(s) || !key || !nonce) return TSR_EINVAL;
  /* Shorter than a tag cannot be authentic: it is a forgery, not misuse. */
  if (ct.len < MLS_AEAD_TAG) return TSR_EDECRYPT;
  size_t len = ct.len - MLS_AEAD_TAG;
  if (len && !pt) return TSR_EINVAL;
  uint8_t scratch[1];
  if (!pt) pt = scratch; /* empty plaintext: libraries want a pointer */
  if (s->aead_id == 0x0003) {
    unsigned long long mlen;
    /* libsodium verifies the tag (constant time) before decrypting. */
    if (crypto_aead_chacha20poly1305_ietf_decrypt(pt, &mlen, NULL, ct.ptr, ct.len,
                                                  nz(aad), aad.len, nonce, key) != 0) {
      secure_wipe(pt, len);
      return TSR_EDECRYPT;
    }
    return 0;
  }
  return gcm_open(key, nonce, aad, ct, pt);
}

/* --- X25519 ----------------------------------------------------------- */

int crypto_dh(const uint8_t sk[MLS_KEM_SK], const uint8_t pk[MLS_KEM_PK],
              uint8_t out[32]) {
  /* libsodium refuses low-order points (all-zero output); check anyway so
   * the guarantee does not depend on the library build. */
  if (crypto_scalarmult(out, sk, pk) != 0 || sodium_is_zero(out, 32)) {
    secure_wipe(out, 32);
    return TSR_ECRYPTO;
  }
  return 0;
}

int crypto_dh_public(const uint8_t sk[MLS_KEM_SK], uint8_t pk[MLS_KEM_PK]) {
  if (crypto_scalarmult_base(pk, sk) != 0) {
    secure_wipe(pk, MLS_KEM_PK);
    return TSR_ECRYPTO;
  }
  return 0;
}

/* --- Ed25519 ---------------------------------------------------------- */

int crypto_sig_from_seed(mls_sig_key *key, const uint8_t seed[MLS_SIG_SEED]) {
  if (!key || !seed) return TSR_EINVAL;
  memmove(key->seed, seed, MLS_SIG_SEED); /* seed may alias key->seed */
  if (crypto_sign_ed25519_seed_keypair(key->pk, key->sk, key->seed) != 0) {
    crypto_sig_wipe(key);
    return TSR_ECRYPTO;
  }
  return 0;
}

int crypto_sig_generate(mls_sig_key *key) {
  if (!key) return TSR_EINVAL;
  uint8_t seed[MLS_SIG_SEED];
  randombytes_buf(seed, sizeof seed);
  int rc = crypto_sig_from_seed(key, seed);
  secure_wipe(seed, sizeof seed);
  return rc;
}

void crypto_sig_wipe(mls_sig_key *key) {
  if (key) secure_wipe(key, sizeof *key);
}

int crypto_sig_sign(const mls_sig_key *key, bytes_t msg, uint8_t sig[MLS_SIG_LEN]) {
  if (!key || !sig) return TSR_EINVAL;
  if (crypto_sign_ed25519_detached(sig, NULL, nz(msg), msg.len, key->sk) != 0) {
    secure_wipe(sig, MLS_SIG_LEN);
    return TSR_ECRYPTO;
  }
  return 0;
}

int crypto_sig_verify(bytes_t pk, bytes_t msg, bytes_t sig) {
  if (pk.len != MLS_SIG_PK || sig.len != MLS_SIG_LEN) return TSR_EVERIFY;
  return crypto_sign_ed25519_verify_detached(sig.ptr, nz(msg), msg.len, pk.ptr) == 0
             ? 0
             : TSR_EVERIFY;
}

/* --- RFC 9420 §5 helpers ---------------------------------------------- */

#define MLS_LABEL_PREFIX "MLS 1.0 "

/* opaque label<V> = "MLS 1.0 " + label */
static void wr_mls_label(buf_t *w, const char *label) {
  size_t n = strlen(label);
  if (n > CODEC_VARINT_MAX - (sizeof MLS_LABEL_PREFIX - 1)) {
    if (!w->err) w->err = TSR_EINVAL;
    return;
  }
  wr_varint(w, (uint32_t)(sizeof MLS_LABEL_PREFIX - 1 + n));
  wr_raw(w, BYTES(MLS_LABEL_PREFIX, sizeof MLS_LABEL_PREFIX - 1));
  wr_raw(w, BYTES(label, n));
}

/* wr_opaque with the length checked, since codec cannot report it. */
static void wr_opaque_checked(buf_t *w, bytes_t v) {
  if (v.len > CODEC_VARINT_MAX) {
    if (!w->err) w->err = TSR_EINVAL;
    return;
  }
  wr_opaque(w, v);
}

int mls_expand_with_label(const mls_suite *s, bytes_t secret, const char *label,
                          bytes_t context, uint8_t *out, size_t len) {
  if (!suite_ok(s) || !label || len > UINT16_MAX) return TSR_EINVAL;
  buf_t info;
  buf_init(&info);
  wr_u16(&info, (uint16_t)len);
  wr_mls_label(&info, label);
  wr_opaque_checked(&info, context);
  int rc = info.err ? info.err : crypto_kdf_expand(s, secret, buf_view(&info), out, len);
  buf_free(&info);
  return rc;
}

int mls_derive_secret(const mls_suite *s, bytes_t secret, const char *label,
                      uint8_t *out) {
  if (!suite_ok(s)) return TSR_EINVAL;
  return mls_expand_with_label(s, secret, label, BYTES_NONE, out, s->hash_len);
}

int mls_derive_tree_secret(const mls_suite *s, bytes_t secret, const char *label,
                           uint32_t generation, uint8_t *out, size_t len) {
  const uint8_t ctx[4] = {(uint8_t)(generation >> 24), (uint8_t)(generation >> 16),
                          (uint8_t)(generation >> 8), (uint8_t)generation};
  return mls_expand_with_label(s, secret, label, BYTES(ctx, sizeof ctx), out, len);
}

int mls_ref_hash(const mls_suite *s, const char *label, bytes_t value, uint8_t *out) {
  if (!suite_ok(s) || !label) return TSR_EINVAL;
  buf_t in;
  buf_init(&in);
  wr_opaque_checked(&in, BYTES(label, strlen(label)));
  wr_opaque_checked(&in, value);
  int rc = in.err ? in.err : crypto_digest(s, buf_view(&in), out);
  buf_free(&in);
  return rc;
}

/* SignContent: label<V> = "MLS 1.0 " + label, content<V>. */
static int sign_content(buf_t *w, const char *label, bytes_t content) {
  wr_mls_label(w, label);
  wr_opaque_checked(w, content);
  return w->err;
}

int mls_sign_with_label(const mls_suite *s, const mls_sig_key *key, const char *label,
                        bytes_t content, uint8_t sig[MLS_SIG_LEN]) {
  if (!suite_ok(s) || !key || !label) return TSR_EINVAL;
  buf_t tbs;
  buf_init(&tbs);
  int rc = sign_content(&tbs, label, content);
  if (!rc) rc = crypto_sig_sign(key, buf_view(&tbs), sig);
  buf_free(&tbs);
  if (rc) secure_wipe(sig, MLS_SIG_LEN);
  return rc;
}

int mls_verify_with_label(const mls_suite *s, bytes_t pk, const char *label,
                          bytes_t content, bytes_t sig) {
  if (!suite_ok(s) || !label) return TSR_EINVAL;
  if (pk.len != MLS_SIG_PK || sig.len != MLS_SIG_LEN) return TSR_EVERIFY;
  buf_t tbs;
  buf_init(&tbs);
  int rc = sign_content(&tbs, label, content);
  if (!rc) rc = crypto_sig_verify(pk, buf_view(&tbs), sig);
  buf_free(&tbs);
  return rc;
}

/* EncryptContext: label<V> = "MLS 1.0 " + label, context<V>. */
static int encrypt_context(buf_t *w, const char *label, bytes_t context) {
  wr_mls_label(w, label);
  wr_opaque_checked(w, context);
  return w->err;
}

int mls_encrypt_with_label(const mls_suite *s, bytes_t pk, const char *label,
                           bytes_t context, bytes_t pt, uint8_t kem_output[MLS_KEM_PK],
                           buf_t *ct) {
  if (!suite_ok(s) || !label || !ct || !kem_output || pk.len != MLS_KEM_PK ||
      pt.len > SIZE_MAX - MLS_AEAD_TAG)
    return TSR_EINVAL;
  size_t old_len = ct->len;
  int old_err = ct->err;
  buf_t info;
  buf_init(&info);
  hpke_ctx hc;
  int rc = encrypt_context(&info, label, context);
  if (!rc)
    rc = hpke_setup_sender(
        &hc, s, &(hpke_params){.mode = HPKE_MODE_BASE, .info = buf_view(&info)}, pk,
        kem_output);
  if (!rc) {
    uint8_t *dst = buf_extend(ct, pt.len + MLS_AEAD_TAG);
    rc = dst ? hpke_seal(&hc, BYTES_NONE, pt, dst) : TSR_ENOMEM;
    if (rc && dst) secure_wipe(dst, pt.len + MLS_AEAD_TAG);
  }
  if (rc) { /* leave ct as it was */
    ct->len = old_len;
    ct->err = old_err;
  }
  hpke_ctx_wipe(&hc);
  buf_free(&info);
  if (rc) secure_wipe(kem_output, MLS_KEM_PK);
  return rc;
}

int mls_decrypt_with_label(const mls_suite *s, bytes_t sk, const char *label,
                           bytes_t context, bytes_t kem_output, bytes_t ct, buf_t *pt) {
  if (!suite_ok(s) || !label || !pt || sk.len != MLS_KEM_SK) return TSR_EINVAL;
  /* kem_output and ct come from the wire: malformed ones are forgeries. */
  if (kem_output.len != MLS_KEM_PK || ct.len < MLS_AEAD_TAG) return TSR_EDECRYPT;
  size_t old_len = pt->len, n = ct.len - MLS_AEAD_TAG;
  int old_err = pt->err;
  buf_t info;
  buf_init(&info);
  hpke_ctx hc;
  int rc = encrypt_context(&info, label, context);
  if (!rc) {
    rc = hpke_setup_receiver(
        &hc, s, &(hpke_params){.mode = HPKE_MODE_BASE, .info = buf_view(&info)},
        kem_output, sk);
    if (rc == TSR_ECRYPTO) rc = TSR_EDECRYPT; /* low-order kem_output */
  }
  if (!rc) {
    uint8_t scratch[1];
    /* buf_extend(pt, 0) on an empty buffer would offset a NULL pointer. */
    uint8_t *dst = n ? buf_extend(pt, n) : scratch;
    rc = dst ? hpke_open(&hc, BYTES_NONE, ct, dst) : TSR_ENOMEM;
  }
  if (rc) { /* hpke_open wiped any unverified plaintext */
    pt->len = old_len;
    pt->err = old_err;
  }
  hpke_ctx_wipe(&hc);
  buf_free(&info);
  return rc;
}

int mls_kem_derive_keypair(const mls_suite *s, bytes_t ikm, uint8_t sk[MLS_KEM_SK],
                           uint8_t pk[MLS_KEM_PK]) {
  return hpke_derive_keypair(s, ikm, sk, pk);
}
