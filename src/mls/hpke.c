/* RFC 9180 HPKE: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM or
 * ChaCha20Poly1305, modes base/psk/auth/auth_psk. Labelled KDF inputs are
 * passed to HKDF in pieces, so nothing here allocates. */
#include "mls/hpke.h"

#include <string.h>

#include "tessera/error.h"

#define HPKE_VERSION "HPKE-v1"
#define LIT(s) BYTES(s, sizeof(s) - 1)

/* suite_id: "KEM" || kem_id inside the KEM, "HPKE" || kem || kdf || aead
 * everywhere else (§4, §5.1). */
typedef struct {
  uint8_t b[10];
  size_t len;
} suite_id;

static void put16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

static suite_id kem_suite_id(const mls_suite *s) {
  suite_id id = {.b = {'K', 'E', 'M'}, .len = 5};
  put16(id.b + 3, s->kem_id);
  return id;
}

static suite_id hpke_suite_id(const mls_suite *s) {
  suite_id id = {.b = {'H', 'P', 'K', 'E'}, .len = 10};
  put16(id.b + 4, s->kem_id);
  put16(id.b + 6, s->kdf_id);
  put16(id.b + 8, s->aead_id);
  return id;
}

#define MAX_PIECES 3

/* LabeledExtract(salt, label, ikm) with ikm = concat(ikm[0..n)). */
static int labeled_extract(const mls_suite *s, const suite_id *id, bytes_t salt,
                           const char *label, const bytes_t *ikm, size_t n,
                           uint8_t *out) {
  bytes_t parts[3 + MAX_PIECES] = {LIT(HPKE_VERSION), BYTES(id->b, id->len),
                                   BYTES(label, strlen(label))};
  for (size_t i = 0; i < n; i++) parts[3 + i] = ikm[i];
  return crypto_kdf_extract_v(s, salt, parts, 3 + n, out);
}

/* LabeledExpand(prk, label, info, L) with info = concat(info[0..n)). */
static int labeled_expand(const mls_suite *s, const suite_id *id, bytes_t prk,
                          const char *label, const bytes_t *info, size_t n, uint8_t *out,
                          size_t len) {
  if (len > UINT16_MAX) return TSR_EINVAL;
  uint8_t l2[2];
  put16(l2, (uint16_t)len);
  bytes_t parts[4 + MAX_PIECES] = {BYTES(l2, 2), LIT(HPKE_VERSION), BYTES(id->b, id->len),
                                   BYTES(label, strlen(label))};
  for (size_t i = 0; i < n; i++) parts[4 + i] = info[i];
  return crypto_kdf_expand_v(s, prk, parts, 4 + n, out, len);
}

/* Only DHKEM(X25519, HKDF-SHA256) over the suites crypto.c implements. */
static bool suite_ok(const mls_suite *s) {
  return s && s->kem_id == HPKE_KEM_X25519_SHA256 &&
         hpke_suite_find(s->kem_id, s->kdf_id, s->aead_id) != NULL;
}

const mls_suite *hpke_suite_find(uint16_t kem_id, uint16_t kdf_id, uint16_t aead_id) {
  static const uint16_t ids[] = {MLS_SUITE_X25519_AES128GCM_SHA256_ED25519,
                                 MLS_SUITE_X25519_CHACHA20POLY1305_SHA256_ED25519};
  for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
    const mls_suite *s = mls_suite_get(ids[i]);
    if (s && s->kem_id == kem_id && s->kdf_id == kdf_id && s->aead_id == aead_id)
      return s;
  }
  return NULL;
}

/* --- KEM -------------------------------------------------------------- */

int hpke_derive_keypair(const mls_suite *s, bytes_t ikm, uint8_t sk[HPKE_NSK],
                        uint8_t pk[HPKE_NPK]) {
  if (!suite_ok(s) || !sk || !pk) return TSR_EINVAL;
  suite_id id = kem_suite_id(s);
  uint8_t prk[32];
  int rc = labeled_extract(s, &id, BYTES_NONE, "dkp_prk", &ikm, 1, prk);
  /* X25519 needs no rejection sampling: any 32 bytes are a key (§7.1.3). */
  if (!rc)
    rc = labeled_expand(s, &id, BYTES(prk, sizeof prk), "sk", NULL, 0, sk, HPKE_NSK);
  if (!rc) rc = crypto_dh_public(sk, pk);
  secure_wipe(prk, sizeof prk);
  if (rc) {
    secure_wipe(sk, HPKE_NSK);
    secure_wipe(pk, HPKE_NPK);
  }
  return rc;
}

int hpke_generate_keypair(const mls_suite *s, uint8_t sk[HPKE_NSK],
                          uint8_t pk[HPKE_NPK]) {
  if (!suite_ok(s) || !sk || !pk) return TSR_EINVAL;
  crypto_random(sk, HPKE_NSK);
  int rc = crypto_dh_public(sk, pk);
  if (rc) secure_wipe(sk, HPKE_NSK);
  return rc;
}

/* ExtractAndExpand(dh, kem_context), both given in pieces. */
static int extract_and_expand(const mls_suite *s, const bytes_t *dh, size_t ndh,
                              const bytes_t *kem_context, size_t nctx,
                              uint8_t shared_secret[HPKE_NSECRET]) {
  suite_id id = kem_suite_id(s);
  uint8_t prk[32];
  int rc = labeled_extract(s, &id, BYTES_NONE, "eae_prk", dh, ndh, prk);
  if (!rc)
    rc = labeled_expand(s, &id, BYTES(prk, sizeof prk), "shared_secret", kem_context,
                        nctx, shared_secret, HPKE_NSECRET);
  secure_wipe(prk, sizeof prk);
  return rc;
}

int hpke_encap(const mls_suite *s, bytes_t pkR, bytes_t skS, bytes_t ikmE,
               uint8_t shared_secret[HPKE_NSECRET], uint8_t enc[HPKE_NENC]) {
  if (!suite_ok(s) || !shared_secret || !enc || pkR.len != HPKE_NPK ||
      (skS.len != 0 && skS.len != HPKE_NSK))
    return TSR_EINVAL;
  bool auth = skS.len != 0;
  uint8_t skE[HPKE_NSK], dh[64], pkS[HPKE_NPK];
  int rc = ikmE.len ? hpke_derive_keypair(s, ikmE, skE, enc)
                    : hpke_generate_keypair(s, skE, enc);
  if (!rc) rc = crypto_dh(skE, pkR.ptr, dh);
  if (!rc && auth) rc = crypto_dh(skS.ptr, pkR.ptr, dh + 32);
  if (!rc && auth) rc = crypto_dh_public(skS.ptr, pkS);
  if (!rc) {
    const bytes_t dhp[] = {BYTES(dh, auth ? 64 : 32)};
    const bytes_t ctx[] = {BYTES(enc, HPKE_NENC), pkR, BYTES(pkS, HPKE_NPK)};
    rc = extract_and_expand(s, dhp, 1, ctx, auth ? 3 : 2, shared_secret);
  }
  secure_wipe(skE, sizeof skE);
  secure_wipe(dh, sizeof dh);
  if (rc) {
    secure_wipe(shared_secret, HPKE_NSECRET);
    secure_wipe(enc, HPKE_NENC);
  }
  return rc;
}

int hpke_decap(const mls_suite *s, bytes_t enc, bytes_t skR, bytes_t pkS,
               uint8_t shared_secret[HPKE_NSECRET]) {
  if (!suite_ok(s) || !shared_secret || enc.len != HPKE_NENC || skR.len != HPKE_NSK ||
      (pkS.len != 0 && pkS.len != HPKE_NPK))
    return TSR_EINVAL;
  bool auth = pkS.len != 0;
  uint8_t dh[64], pkR[HPKE_NPK];
  int rc = crypto_dh(skR.ptr, enc.ptr, dh);
  if (!rc && auth) rc = crypto_dh(skR.ptr, pkS.ptr, dh + 32);
  if (!rc) rc = crypto_dh_public(skR.ptr, pkR);
  if (!rc) {
    const bytes_t dhp[] = {BYTES(dh, auth ? 64 : 32)};
    const bytes_t ctx[] = {enc, BYTES(pkR, HPKE_NPK), pkS};
    rc = extract_and_expand(s, dhp, 1, ctx, auth ? 3 : 2, shared_secret);
  }
  secure_wipe(dh, sizeof dh);
  if (rc) secure_wipe(shared_secret, HPKE_NSECRET);
  return rc;
}

/* --- Key schedule ----------------------------------------------------- */

static bool mode_has_psk(hpke_mode m) {
  return m == HPKE_MODE_PSK || m == HPKE_MODE_AUTH_PSK;
}
static bool mode_has_auth(hpke_mode m) {
  return m == HPKE_MODE_AUTH || m == HPKE_MODE_AUTH_PSK;
}

/* VerifyPSKInputs (§5.1) plus a known mode. */
static int check_params(const hpke_params *p) {
  if (!p || (unsigned)p->mode > HPKE_MODE_AUTH_PSK) return TSR_EINVAL;
  bool got_psk = p->psk.len != 0, got_id = p->psk_id.len != 0;
  if (got_psk != got_id || got_psk != mode_has_psk(p->mode)) return TSR_EINVAL;
  return 0;
}

int hpke_key_schedule(hpke_ctx *ctx, const mls_suite *s, const hpke_params *p,
                      const uint8_t shared_secret[HPKE_NSECRET], int role) {
  if (!ctx) return TSR_EINVAL;
  hpke_ctx_wipe(ctx);
  int rc = suite_ok(s) && shared_secret &&
                   (role == HPKE_ROLE_SENDER || role == HPKE_ROLE_RECEIVER)
               ? check_params(p)
               : TSR_EINVAL;
  if (rc) return rc;
  suite_id id = hpke_suite_id(s);
  /* key_schedule_context = mode || psk_id_hash || info_hash */
  uint8_t ksc[1 + 2 * 32], secret[32];
  ksc[0] = (uint8_t)p->mode;
  rc = labeled_extract(s, &id, BYTES_NONE, "psk_id_hash", &p->psk_id, 1, ksc + 1);
  if (!rc)
    rc = labeled_extract(s, &id, BYTES_NONE, "info_hash",
                         (const bytes_t[]){p->info_prefix, p->info}, 2, ksc + 33);
  if (!rc)
    rc = labeled_extract(s, &id, BYTES(shared_secret, HPKE_NSECRET), "secret", &p->psk, 1,
                         secret);
  const bytes_t kscv = BYTES(ksc, sizeof ksc), sec = BYTES(secret, sizeof secret);
  if (!rc) rc = labeled_expand(s, &id, sec, "key", &kscv, 1, ctx->key, s->key_len);
  if (!rc)
    rc = labeled_expand(s, &id, sec, "base_nonce", &kscv, 1, ctx->base_nonce,
                        s->nonce_len);
  if (!rc)
    rc = labeled_expand(s, &id, sec, "exp", &kscv, 1, ctx->exporter_secret, s->hash_len);
  secure_wipe(secret, sizeof secret);
  if (rc) {
    hpke_ctx_wipe(ctx);
    return rc;
  }
  ctx->suite = s;
  ctx->seq = 0;
  ctx->role = role;
  return 0;
}

/* --- Setup ------------------------------------------------------------ */

static int setup_sender(hpke_ctx *ctx, const mls_suite *s, const hpke_params *p,
                        bytes_t pkR, bytes_t ikmE, uint8_t enc[HPKE_NENC]) {
  if (!ctx) return TSR_EINVAL;
  hpke_ctx_wipe(ctx);
  int rc = check_params(p);
  if (rc) return rc;
  /* The sender's key must be there exactly in the auth modes. */
  if ((p->auth_sk.len != 0) != mode_has_auth(p->mode)) return TSR_EINVAL;
  uint8_t ss[HPKE_NSECRET];
  rc = hpke_encap(s, pkR, p->auth_sk, ikmE, ss, enc);
  if (!rc) rc = hpke_key_schedule(ctx, s, p, ss, HPKE_ROLE_SENDER);
  secure_wipe(ss, sizeof ss);
  if (rc && enc) secure_wipe(enc, HPKE_NENC);
  return rc;
}

int hpke_setup_sender(hpke_ctx *ctx, const mls_suite *s, const hpke_params *p,
                      bytes_t pkR, uint8_t enc[HPKE_NENC]) {
  return setup_sender(ctx, s, p, pkR, BYTES_NONE, enc);
}

int hpke_setup_sender_derand(hpke_ctx *ctx, const mls_suite *s, const hpke_params *p,
                             bytes_t pkR, bytes_t ikmE, uint8_t enc[HPKE_NENC]) {
  /* Empty ikmE would silently fall back to a random key. */
  if (ikmE.len == 0) {
    if (ctx) hpke_ctx_wipe(ctx);
    return TSR_EINVAL;
  }
  return setup_sender(ctx, s, p, pkR, ikmE, enc);
}

int hpke_setup_receiver(hpke_ctx *ctx, const mls_suite *s, const hpke_params *p,
                        bytes_t enc, bytes_t skR) {
  if (!ctx) return TSR_EINVAL;
  hpke_ctx_wipe(ctx);
  int rc = check_params(p);
  if (rc) return rc;
  if ((p->auth_pk.len != 0) != mode_has_auth(p->mode)) return TSR_EINVAL;
  uint8_t ss[HPKE_NSECRET];
  rc = hpke_decap(s, enc, skR, p->auth_pk, ss);
  if (!rc) rc = hpke_key_schedule(ctx, s, p, ss, HPKE_ROLE_RECEIVER);
  secure_wipe(ss, sizeof ss);
  return rc;
}

/* --- Encryption context ----------------------------------------------- */

/* nonce = base_nonce XOR I2OSP(seq, Nn) */
static void compute_nonce(const hpke_ctx *ctx, uint8_t nonce[MLS_MAX_NONCE]) {
  size_t nn = ctx->suite->nonce_len;
  memcpy(nonce, ctx->base_nonce, nn);
  for (size_t i = 0; i < 8; i++) nonce[nn - 1 - i] ^= (uint8_t)(ctx->seq >> (8 * i));
}

/* seq is 64 bits, so it is exhausted long before the 96-bit nonce space. */
static int check_ctx(const hpke_ctx *ctx, int role) {
  if (!ctx || !ctx->suite) return TSR_EINVAL;
  if (ctx->role != role) return TSR_ESTATE;
  if (ctx->seq == UINT64_MAX) return TSR_ELIMIT;
  return 0;
}

int hpke_seal(hpke_ctx *ctx, bytes_t aad, bytes_t pt, uint8_t *ct) {
  int rc = check_ctx(ctx, HPKE_ROLE_SENDER);
  if (rc) return rc;
  uint8_t nonce[MLS_MAX_NONCE];
  compute_nonce(ctx, nonce);
  rc = crypto_aead_seal(ctx->suite, ctx->key, nonce, aad, pt, ct);
  if (!rc) ctx->seq++;
  return rc;
}

int hpke_open(hpke_ctx *ctx, bytes_t aad, bytes_t ct, uint8_t *pt) {
  int rc = check_ctx(ctx, HPKE_ROLE_RECEIVER);
  if (rc) return rc;
  uint8_t nonce[MLS_MAX_NONCE];
  compute_nonce(ctx, nonce);
  rc = crypto_aead_open(ctx->suite, ctx->key, nonce, aad, ct, pt);
  if (!rc) ctx->seq++;
  return rc;
}

int hpke_export(const hpke_ctx *ctx, bytes_t exporter_context, uint8_t *out, size_t len) {
  if (!ctx || !ctx->suite || (len && !out)) return TSR_EINVAL;
  suite_id id = hpke_suite_id(ctx->suite);
  return labeled_expand(ctx->suite, &id,
                        BYTES(ctx->exporter_secret, ctx->suite->hash_len), "sec",
                        &exporter_context, 1, out, len);
}

void hpke_ctx_wipe(hpke_ctx *ctx) {
  if (ctx) secure_wipe(ctx, sizeof *ctx);
}
