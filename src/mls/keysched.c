/* MLS key schedule (RFC 9420 §8). */
#include "mls/keysched.h"

#include <string.h>

#include "mls/codec.h"
#include "tessera/error.h"

static const uint8_t ks_zero[MLS_MAX_HASH];

/* An empty view stands for the all-zero Nh vector; anything else must be
 * exactly Nh bytes. */
static int ks_secret_or_zero(const mls_suite *s, bytes_t in, bytes_t *out) {
  if (in.len == 0) {
    *out = BYTES(ks_zero, s->hash_len);
    return 0;
  }
  if (in.len != s->hash_len || !in.ptr) return TSR_EINVAL;
  *out = in;
  return 0;
}

int keysched_group_context(buf_t *out, uint16_t cipher_suite, bytes_t group_id,
                           uint64_t epoch, bytes_t tree_hash,
                           bytes_t confirmed_transcript_hash, bytes_t extensions) {
  if (!out) return TSR_EINVAL;
  if (group_id.len > CODEC_VARINT_MAX || tree_hash.len > CODEC_VARINT_MAX ||
      confirmed_transcript_hash.len > CODEC_VARINT_MAX ||
      extensions.len > CODEC_VARINT_MAX)
    return TSR_EINVAL;
  size_t start = out->len;
  wr_u16(out, 1); /* ProtocolVersion mls10 */
  wr_u16(out, cipher_suite);
  wr_opaque(out, group_id);
  wr_u64(out, epoch);
  wr_opaque(out, tree_hash);
  wr_opaque(out, confirmed_transcript_hash);
  wr_opaque(out, extensions); /* a vector's header is the same as opaque's */
  if (out->err) {
    if (out->len > start) out->len = start;
    return out->err;
  }
  return 0;
}

/* Every secret derived from epoch_secret by DeriveSecret. */
static int ks_epoch_outputs(keysched_epoch *ks, bytes_t epoch_secret) {
  const mls_suite *s = ks->suite;
  static const struct {
    const char *label;
    size_t off;
  } outs[] = {
      {"sender data", offsetof(keysched_epoch, sender_data_secret)},
      {"encryption", offsetof(keysched_epoch, encryption_secret)},
      {"exporter", offsetof(keysched_epoch, exporter_secret)},
      {"external", offsetof(keysched_epoch, external_secret)},
      {"confirm", offsetof(keysched_epoch, confirmation_key)},
      {"membership", offsetof(keysched_epoch, membership_key)},
      {"resumption", offsetof(keysched_epoch, resumption_psk)},
      {"authentication", offsetof(keysched_epoch, epoch_authenticator)},
      {"init", offsetof(keysched_epoch, init_secret)},
  };
  for (size_t i = 0; i < sizeof outs / sizeof outs[0]; i++) {
    int rc =
        mls_derive_secret(s, epoch_secret, outs[i].label, (uint8_t *)ks + outs[i].off);
    if (rc) return rc;
  }
  return 0;
}

/* Shared tail of both entry points: from joiner_secret onwards. */
static int ks_from_joiner(keysched_epoch *ks, const mls_suite *s, bytes_t joiner,
                          bytes_t psk_secret, bytes_t group_context) {
  bytes_t psk;
  int rc = ks_secret_or_zero(s, psk_secret, &psk);
  if (rc) return rc;
  size_t nh = s->hash_len;
  uint8_t member[MLS_MAX_HASH], epoch_secret[MLS_MAX_HASH];
  ks->suite = s;
  if (joiner.ptr != ks->joiner_secret) memcpy(ks->joiner_secret, joiner.ptr, nh);
  rc = crypto_kdf_extract(s, BYTES(ks->joiner_secret, nh), psk, member);
  if (!rc) rc = mls_derive_secret(s, BYTES(member, nh), "welcome", ks->welcome_secret);
  if (!rc)
    rc = mls_expand_with_label(s, BYTES(member, nh), "epoch", group_context, epoch_secret,
                               nh);
  if (!rc) rc = ks_epoch_outputs(ks, BYTES(epoch_secret, nh));
  secure_wipe(member, sizeof member);
  secure_wipe(epoch_secret, sizeof epoch_secret);
  return rc;
}

int keysched_derive(keysched_epoch *ks, const mls_suite *s, bytes_t init_secret,
                    bytes_t commit_secret, bytes_t psk_secret, bytes_t group_context) {
  if (!ks || !s) return TSR_EINVAL;
  bytes_t init, commit, psk;
  int rc = ks_secret_or_zero(s, init_secret, &init);
  if (!rc) rc = ks_secret_or_zero(s, commit_secret, &commit);
  if (!rc) rc = ks_secret_or_zero(s, psk_secret, &psk);
  if (rc) return rc;
  /* init_secret may alias ks->init_secret (advancing in place): finish
   * with it before ks is overwritten. */
  size_t nh = s->hash_len;
  keysched_epoch next = {.suite = s};
  uint8_t prk[MLS_MAX_HASH];
  rc = crypto_kdf_extract(s, init, commit, prk);
  if (!rc)
    rc = mls_expand_with_label(s, BYTES(prk, nh), "joiner", group_context,
                               next.joiner_secret, nh);
  secure_wipe(prk, sizeof prk);
  if (!rc)
    rc = ks_from_joiner(&next, s, BYTES(next.joiner_secret, nh), psk, group_context);
  if (!rc) {
    keysched_wipe(ks);
    *ks = next;
  }
  keysched_wipe(&next);
  return rc;
}

int keysched_from_joiner(keysched_epoch *ks, const mls_suite *s, bytes_t joiner_secret,
                         bytes_t psk_secret, bytes_t group_context) {
  if (!ks || !s) return TSR_EINVAL;
  if (joiner_secret.len != s->hash_len || !joiner_secret.ptr) return TSR_EINVAL;
  keysched_epoch next = {.suite = s};
  int rc = ks_from_joiner(&next, s, joiner_secret, psk_secret, group_context);
  if (!rc) {
    keysched_wipe(ks);
    *ks = next;
  }
  keysched_wipe(&next);
  return rc;
}

int keysched_welcome_secret(const mls_suite *s, bytes_t joiner_secret, bytes_t psk_secret,
                            uint8_t out[MLS_MAX_HASH]) {
  if (!s || !out) return TSR_EINVAL;
  if (joiner_secret.len != s->hash_len || !joiner_secret.ptr) return TSR_EINVAL;
  bytes_t psk;
  int rc = ks_secret_or_zero(s, psk_secret, &psk);
  if (rc) return rc;
  uint8_t member[MLS_MAX_HASH];
  rc = crypto_kdf_extract(s, joiner_secret, psk, member);
  if (!rc) rc = mls_derive_secret(s, BYTES(member, s->hash_len), "welcome", out);
  secure_wipe(member, sizeof member);
  if (rc) secure_wipe(out, s->hash_len);
  return rc;
}

int keysched_welcome_key(const mls_suite *s, bytes_t welcome_secret,
                         uint8_t key[MLS_MAX_AEAD_KEY], uint8_t nonce[MLS_MAX_NONCE]) {
  if (!s || !key || !nonce) return TSR_EINVAL;
  if (welcome_secret.len != s->hash_len || !welcome_secret.ptr) return TSR_EINVAL;
  int rc = mls_expand_with_label(s, welcome_secret, "key", BYTES_NONE, key, s->key_len);
  if (!rc)
    rc = mls_expand_with_label(s, welcome_secret, "nonce", BYTES_NONE, nonce,
                               s->nonce_len);
  if (rc) {
    secure_wipe(key, s->key_len);
    secure_wipe(nonce, s->nonce_len);
  }
  return rc;
}

int keysched_external_keypair(const keysched_epoch *ks, uint8_t sk[MLS_KEM_SK],
                              uint8_t pk[MLS_KEM_PK]) {
  if (!ks || !ks->suite || !pk) return TSR_EINVAL;
  uint8_t priv[MLS_KEM_SK];
  int rc =
      mls_kem_derive_keypair(ks->suite, keysched_view(ks, ks->external_secret), priv, pk);
  if (!rc && sk) memcpy(sk, priv, MLS_KEM_SK);
  secure_wipe(priv, sizeof priv);
  return rc;
}

/* ExpandWithLabel with a label given as bytes, which the crypto helper
 * (NUL-terminated labels) cannot take: exporter labels are arbitrary. */
static int ks_expand_label_bytes(const mls_suite *s, bytes_t secret, bytes_t label,
                                 bytes_t context, uint8_t *out, size_t len) {
  static const char prefix[] = "MLS 1.0 ";
  if (len > UINT16_MAX || label.len > CODEC_VARINT_MAX - (sizeof prefix - 1))
    return TSR_EINVAL;
  buf_t info;
  buf_init(&info);
  wr_u16(&info, (uint16_t)len);
  wr_varint(&info, (uint32_t)(sizeof prefix - 1 + label.len));
  wr_raw(&info, BYTES(prefix, sizeof prefix - 1));
  wr_raw(&info, label);
  wr_opaque(&info, context);
  int rc = info.err;
  if (!rc) rc = crypto_kdf_expand(s, secret, buf_view(&info), out, len);
  buf_free(&info);
  return rc;
}

int keysched_export(const keysched_epoch *ks, bytes_t label, bytes_t context,
                    uint8_t *out, size_t len) {
  if (!ks || !ks->suite || (!out && len)) return TSR_EINVAL;
  const mls_suite *s = ks->suite;
  size_t nh = s->hash_len;
  if (len > 255 * nh || len > UINT16_MAX) return TSR_EINVAL;
  uint8_t derived[MLS_MAX_HASH], ctx_hash[MLS_MAX_HASH];
  int rc = ks_expand_label_bytes(s, keysched_view(ks, ks->exporter_secret), label,
                                 BYTES_NONE, derived, nh);
  if (!rc) rc = crypto_digest(s, context, ctx_hash);
  if (!rc)
    rc = mls_expand_with_label(s, BYTES(derived, nh), "exported", BYTES(ctx_hash, nh),
                               out, len);
  secure_wipe(derived, sizeof derived);
  if (rc && out) secure_wipe(out, len);
  return rc;
}

int keysched_psk_secret(const mls_suite *s, const keysched_psk *psks, size_t n,
                        uint8_t out[MLS_MAX_HASH]) {
  if (!s || !out || (n && !psks)) return TSR_EINVAL;
  if (n > UINT16_MAX) return TSR_EINVAL;
  size_t nh = s->hash_len;
  uint8_t acc[MLS_MAX_HASH] = {0}, extracted[MLS_MAX_HASH], input[MLS_MAX_HASH];
  buf_t label;
  buf_init(&label);
  int rc = 0;
  for (size_t i = 0; i < n && !rc; i++) {
    if (psks[i].id.len > CODEC_VARINT_MAX - 4) {
      rc = TSR_EINVAL;
      break;
    }
    /* PSKLabel: PreSharedKeyID id (already encoded); uint16 index, count. */
    buf_reset(&label);
    wr_raw(&label, psks[i].id);
    wr_u16(&label, (uint16_t)i);
    wr_u16(&label, (uint16_t)n);
    rc = label.err;
    if (!rc) rc = crypto_kdf_extract(s, BYTES(ks_zero, nh), psks[i].value, extracted);
    if (!rc)
      rc = mls_expand_with_label(s, BYTES(extracted, nh), "derived psk", buf_view(&label),
                                 input, nh);
    /* psk_secret_[i+1] = Extract(salt = psk_input_[i], ikm = psk_secret_[i]) */
    if (!rc) rc = crypto_kdf_extract(s, BYTES(input, nh), BYTES(acc, nh), extracted);
    if (!rc) memcpy(acc, extracted, nh); /* no in-place extract: inputs may not alias */
  }
  if (!rc)
    memcpy(out, acc, nh);
  else
    secure_wipe(out, nh);
  secure_wipe(acc, sizeof acc);
  secure_wipe(extracted, sizeof extracted);
  secure_wipe(input, sizeof input);
  buf_free_secret(&label);
  return rc;
}

int keysched_confirmation_tag(const keysched_epoch *ks, bytes_t confirmed_transcript_hash,
                              uint8_t out[MLS_MAX_HASH]) {
  if (!ks || !ks->suite || !out) return TSR_EINVAL;
  return crypto_hmac(ks->suite, keysched_view(ks, ks->confirmation_key),
                     confirmed_transcript_hash, out);
}

/* Hash(a || b) without caring how the provider streams. */
static int ks_hash2(const mls_suite *s, bytes_t a, bytes_t b, uint8_t *out) {
  if (!s || !out) return TSR_EINVAL;
  buf_t cat;
  buf_init(&cat);
  buf_reserve(&cat, a.len + b.len);
  if (a.len) buf_append(&cat, a.ptr, a.len);
  if (b.len) buf_append(&cat, b.ptr, b.len);
  int rc = cat.err;
  if (!rc) rc = crypto_digest(s, buf_view(&cat), out);
  buf_free(&cat);
  return rc;
}

int keysched_confirmed_hash(const mls_suite *s, bytes_t interim_before, bytes_t input,
                            uint8_t out[MLS_MAX_HASH]) {
  return ks_hash2(s, interim_before, input, out);
}

int keysched_interim_hash(const mls_suite *s, bytes_t confirmed, bytes_t input,
                          uint8_t out[MLS_MAX_HASH]) {
  return ks_hash2(s, confirmed, input, out);
}

void keysched_forget_joiner(keysched_epoch *ks) {
  if (!ks) return;
  secure_wipe(ks->joiner_secret, sizeof ks->joiner_secret);
  secure_wipe(ks->welcome_secret, sizeof ks->welcome_secret);
}

void keysched_wipe(keysched_epoch *ks) {
  if (!ks) return;
  secure_wipe(ks, sizeof *ks);
  ks->suite = NULL;
}
