/* Crypto provider: crypto-basics.json known answers for suites 1 and 3,
 * HKDF (RFC 5869 A.1), HMAC (RFC 4231), signatures on both sides of the
 * libsodium/OpenSSL size switch, and the error paths of AEAD, signatures
 * and EncryptWithLabel. */
#include <stdlib.h>
#include <string.h>

#include <sodium/crypto_sign_ed25519.h>

#include "mls/crypto.h"
#include "test.h"
#include "vectors.h"

static const cJSON *member(const cJSON *obj, const char *key) {
  return cJSON_GetObjectItemCaseSensitive(obj, key);
}

static const char *str(const cJSON *obj, const char *key) {
  const cJSON *v = member(obj, key);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Decodes hex member key of obj into out; a failed decode fails the case. */
static bytes_t hexm(const cJSON *obj, const char *key, buf_t *out) {
  int rc = vec_hex(obj, key, out);
  if (rc < 0) {
    fprintf(stderr, "  FAIL bad or missing hex member %s\n", key);
    CHECK(rc >= 0);
  }
  return buf_view(out);
}

static void check_ref_hash(const mls_suite *s, const cJSON *t) {
  buf_t value, out;
  buf_init(&value);
  buf_init(&out);
  const char *label = str(t, "label");
  CHECK(label != NULL);
  hexm(t, "value", &value);
  hexm(t, "out", &out);
  uint8_t got[MLS_MAX_HASH];
  if (label) {
    CHECK_OK(mls_ref_hash(s, label, buf_view(&value), got));
    CHECK_BYTES(BYTES(got, s->hash_len), buf_view(&out));
  }
  buf_free(&value);
  buf_free(&out);
}

static void check_expand_with_label(const mls_suite *s, const cJSON *t) {
  buf_t secret, context, out;
  buf_init(&secret);
  buf_init(&context);
  buf_init(&out);
  const char *label = str(t, "label");
  long long len = vec_int(t, "length");
  CHECK(label != NULL);
  CHECK(len >= 0 && len <= 1024);
  hexm(t, "secret", &secret);
  hexm(t, "context", &context);
  hexm(t, "out", &out);
  uint8_t got[1024];
  if (label && len >= 0 && len <= 1024) {
    CHECK_OK(mls_expand_with_label(s, buf_view(&secret), label, buf_view(&context), got,
                                   (size_t)len));
    CHECK_BYTES(BYTES(got, (size_t)len), buf_view(&out));
  }
  buf_free(&secret);
  buf_free(&context);
  buf_free(&out);
}

static void check_derive_secret(const mls_suite *s, const cJSON *t) {
  buf_t secret, out;
  buf_init(&secret);
  buf_init(&out);
  const char *label = str(t, "label");
  CHECK(label != NULL);
  hexm(t, "secret", &secret);
  hexm(t, "out", &out);
  uint8_t got[MLS_MAX_HASH];
  if (label) {
    CHECK_OK(mls_derive_secret(s, buf_view(&secret), label, got));
    CHECK_BYTES(BYTES(got, s->hash_len), buf_view(&out));
  }
  buf_free(&secret);
  buf_free(&out);
}

static void check_derive_tree_secret(const mls_suite *s, const cJSON *t) {
  buf_t secret, out;
  buf_init(&secret);
  buf_init(&out);
  const char *label = str(t, "label");
  long long gen = vec_int(t, "generation"), len = vec_int(t, "length");
  CHECK(label != NULL);
  CHECK(gen >= 0 && gen <= UINT32_MAX);
  CHECK(len >= 0 && len <= 1024);
  hexm(t, "secret", &secret);
  hexm(t, "out", &out);
  uint8_t got[1024];
  if (label && gen >= 0 && gen <= UINT32_MAX && len >= 0 && len <= 1024) {
    CHECK_OK(mls_derive_tree_secret(s, buf_view(&secret), label, (uint32_t)gen, got,
                                    (size_t)len));
    CHECK_BYTES(BYTES(got, (size_t)len), buf_view(&out));
  }
  buf_free(&secret);
  buf_free(&out);
}

static void check_sign_with_label(const mls_suite *s, const cJSON *t) {
  buf_t priv, pub, content, sig;
  buf_init(&priv);
  buf_init(&pub);
  buf_init(&content);
  buf_init(&sig);
  const char *label = str(t, "label");
  CHECK(label != NULL);
  hexm(t, "priv", &priv);
  hexm(t, "pub", &pub);
  hexm(t, "content", &content);
  hexm(t, "signature", &sig);
  CHECK_INT(priv.len, MLS_SIG_SEED);
  if (label && priv.len == MLS_SIG_SEED) {
    CHECK_OK(mls_verify_with_label(s, buf_view(&pub), label, buf_view(&content),
                                   buf_view(&sig)));
    mls_sig_key key;
    CHECK_OK(crypto_sig_from_seed(&key, priv.ptr));
    CHECK_BYTES(BYTES(key.pk, MLS_SIG_PK), buf_view(&pub));
    uint8_t mine[MLS_SIG_LEN];
    CHECK_OK(mls_sign_with_label(s, &key, label, buf_view(&content), mine));
    CHECK_OK(mls_verify_with_label(s, buf_view(&pub), label, buf_view(&content),
                                   BYTES(mine, sizeof mine)));
    /* Ed25519 is deterministic. */
    CHECK_BYTES(BYTES(mine, sizeof mine), buf_view(&sig));
    crypto_sig_wipe(&key);
  }
  buf_free(&priv);
  buf_free(&pub);
  buf_free(&content);
  buf_free(&sig);
}

static void check_encrypt_with_label(const mls_suite *s, const cJSON *t) {
  buf_t priv, pub, context, pt, kem_output, ct, got, ct2;
  buf_t *all[] = {&priv, &pub, &context, &pt, &kem_output, &ct, &got, &ct2};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) buf_init(all[i]);
  const char *label = str(t, "label");
  CHECK(label != NULL);
  hexm(t, "priv", &priv);
  hexm(t, "pub", &pub);
  hexm(t, "context", &context);
  hexm(t, "plaintext", &pt);
  hexm(t, "kem_output", &kem_output);
  hexm(t, "ciphertext", &ct);
  if (label) {
    CHECK_OK(mls_decrypt_with_label(s, buf_view(&priv), label, buf_view(&context),
                                    buf_view(&kem_output), buf_view(&ct), &got));
    CHECK_BYTES(buf_view(&got), buf_view(&pt));

    uint8_t kem2[MLS_KEM_PK];
    CHECK_OK(mls_encrypt_with_label(s, buf_view(&pub), label, buf_view(&context),
                                    buf_view(&pt), kem2, &ct2));
    CHECK_INT(ct2.len, pt.len + MLS_AEAD_TAG);
    buf_reset(&got);
    CHECK_OK(mls_decrypt_with_label(s, buf_view(&priv), label, buf_view(&context),
                                    BYTES(kem2, sizeof kem2), buf_view(&ct2), &got));
    CHECK_BYTES(buf_view(&got), buf_view(&pt));
  }
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) buf_free(all[i]);
}

static void test_vectors_crypto_basics(void) {
  const char *why = NULL;
  cJSON *j = vec_load("mls/crypto-basics.json", &why);
  if (!j) TEST_SKIP("%s", why);
  static const int wanted[] = {MLS_SUITE_X25519_AES128GCM_SHA256_ED25519,
                               MLS_SUITE_X25519_CHACHA20POLY1305_SHA256_ED25519};
  for (size_t w = 0; w < sizeof wanted / sizeof wanted[0]; w++) {
    const mls_suite *s = mls_suite_get((uint16_t)wanted[w]);
    CHECK(s != NULL);
    if (!s) continue;
    int count = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, j) {
      if (!vec_suite_is(e, wanted[w])) continue;
      static const char *parts[] = {"ref_hash",        "expand_with_label",
                                    "derive_secret",   "derive_tree_secret",
                                    "sign_with_label", "encrypt_with_label"};
      for (size_t p = 0; p < sizeof parts / sizeof parts[0]; p++)
        CHECK(cJSON_IsObject(member(e, parts[p])));
      int before = test_failing();
      check_ref_hash(s, member(e, "ref_hash"));
      check_expand_with_label(s, member(e, "expand_with_label"));
      check_derive_secret(s, member(e, "derive_secret"));
      check_derive_tree_secret(s, member(e, "derive_tree_secret"));
      check_sign_with_label(s, member(e, "sign_with_label"));
      check_encrypt_with_label(s, member(e, "encrypt_with_label"));
      if (!before && test_failing())
        fprintf(stderr, "  (in suite %d entry)\n", wanted[w]);
      count++;
    }
    vec_report("crypto-basics.json", wanted[w], count);
    CHECK(count > 0);
  }
  cJSON_Delete(j);
}

/* RFC 5869 A.1 (HKDF-SHA-256, basic case). */
static void test_hkdf_rfc5869(void) {
  const mls_suite *s = mls_suite_get(MLS_SUITE_X25519_AES128GCM_SHA256_ED25519);
  buf_t ikm, salt, info, prk, okm;
  buf_t *all[] = {&ikm, &salt, &info, &prk, &okm};
  for (size_t i = 0; i < 5; i++) buf_init(all[i]);
  CHECK_OK(hex_decode("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", &ikm));
  CHECK_OK(hex_decode("000102030405060708090a0b0c", &salt));
  CHECK_OK(hex_decode("f0f1f2f3f4f5f6f7f8f9", &info));
  CHECK_OK(hex_decode("077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
                      &prk));
  CHECK_OK(hex_decode("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
                      "34007208d5b887185865",
                      &okm));
  uint8_t p[32], o[42];
  CHECK_OK(crypto_kdf_extract(s, buf_view(&salt), buf_view(&ikm), p));
  CHECK_BYTES(BYTES(p, 32), buf_view(&prk));
  CHECK_OK(crypto_kdf_expand(s, BYTES(p, 32), buf_view(&info), o, sizeof o));
  CHECK_BYTES(BYTES(o, sizeof o), buf_view(&okm));
  /* The same info split into pieces. */
  bytes_t pieces[] = {BYTES(info.ptr, 3), BYTES_NONE, BYTES(info.ptr + 3, info.len - 3)};
  memset(o, 0, sizeof o);
  CHECK_OK(crypto_kdf_expand_v(s, BYTES(p, 32), pieces, 3, o, sizeof o));
  CHECK_BYTES(BYTES(o, sizeof o), buf_view(&okm));
  /* L > 255 * HashLen is refused. */
  static uint8_t big[255 * 32 + 1];
  CHECK_ERR(crypto_kdf_expand(s, BYTES(p, 32), BYTES_NONE, big, sizeof big), TSR_EINVAL);
  CHECK_OK(crypto_kdf_expand(s, BYTES(p, 32), BYTES_NONE, big, sizeof big - 1));
  for (size_t i = 0; i < 5; i++) buf_free(all[i]);
}

static void test_suites(void) {
  CHECK(mls_suite_get(0x0002) == NULL);
  CHECK(mls_suite_get(0) == NULL);
  const mls_suite *a = mls_suite_get(1), *c = mls_suite_get(3);
  CHECK(a && a->key_len == 16 && a->aead_id == 1 && a->hash_len == 32 &&
        a->nonce_len == 12);
  CHECK(c && c->key_len == 32 && c->aead_id == 3 && c->kem_id == 0x20 && c->kdf_id == 1);
  uint8_t out[32];
  CHECK_ERR(crypto_digest(NULL, BYTES_NONE, out), TSR_EINVAL);
}

static void test_aead_tamper(void) {
  const uint16_t ids[] = {1, 3};
  for (size_t i = 0; i < 2; i++) {
    const mls_suite *s = mls_suite_get(ids[i]);
    uint8_t key[MLS_MAX_AEAD_KEY], nonce[MLS_MAX_NONCE];
    crypto_random(key, sizeof key);
    crypto_random(nonce, sizeof nonce);
    const uint8_t msg[] = "attack at dawn";
    const uint8_t aad[] = "hdr";
    uint8_t ct[sizeof msg + MLS_AEAD_TAG], pt[sizeof msg];
    bytes_t a = BYTES(aad, 3), m = BYTES(msg, sizeof msg), c = BYTES(ct, sizeof ct);
    CHECK_OK(crypto_aead_seal(s, key, nonce, a, m, ct));
    CHECK_OK(crypto_aead_open(s, key, nonce, a, c, pt));
    CHECK_BYTES(BYTES(pt, sizeof pt), m);

    ct[sizeof ct - 1] ^= 1; /* tag */
    CHECK_ERR(crypto_aead_open(s, key, nonce, a, c, pt), TSR_EDECRYPT);
    /* No unauthenticated plaintext is released. */
    static const uint8_t zero[sizeof msg];
    CHECK_BYTES(BYTES(pt, sizeof pt), BYTES(zero, sizeof zero));
    ct[sizeof ct - 1] ^= 1;
    ct[0] ^= 0x80; /* body */
    CHECK_ERR(crypto_aead_open(s, key, nonce, a, c, pt), TSR_EDECRYPT);
    ct[0] ^= 0x80;
    CHECK_ERR(crypto_aead_open(s, key, nonce, BYTES("hdx", 3), c, pt), TSR_EDECRYPT);
    nonce[0] ^= 1;
    CHECK_ERR(crypto_aead_open(s, key, nonce, a, c, pt), TSR_EDECRYPT);
    nonce[0] ^= 1;
    CHECK_ERR(crypto_aead_open(s, key, nonce, a, BYTES(ct, MLS_AEAD_TAG - 1), pt),
              TSR_EDECRYPT);

    /* Empty plaintext and aad, NULL views included. */
    uint8_t tag[MLS_AEAD_TAG];
    CHECK_OK(crypto_aead_seal(s, key, nonce, BYTES_NONE, BYTES_NONE, tag));
    CHECK_OK(crypto_aead_open(s, key, nonce, BYTES_NONE, BYTES(tag, sizeof tag), NULL));
    tag[3] ^= 4;
    CHECK_ERR(crypto_aead_open(s, key, nonce, BYTES_NONE, BYTES(tag, sizeof tag), NULL),
              TSR_EDECRYPT);
  }
}

static void test_sig_tamper(void) {
  mls_sig_key key;
  CHECK_OK(crypto_sig_generate(&key));
  const mls_suite *s = mls_suite_get(1);
  bytes_t content = BYTES("content", 7), pk = BYTES(key.pk, MLS_SIG_PK);
  uint8_t sig[MLS_SIG_LEN];
  CHECK_OK(mls_sign_with_label(s, &key, "Test", content, sig));
  CHECK_OK(mls_verify_with_label(s, pk, "Test", content, BYTES(sig, sizeof sig)));
  /* Wrong label, content, key; tampered signature; bad lengths. */
  CHECK_ERR(mls_verify_with_label(s, pk, "Tesu", content, BYTES(sig, sizeof sig)),
            TSR_EVERIFY);
  CHECK_ERR(
      mls_verify_with_label(s, pk, "Test", BYTES("contenu", 7), BYTES(sig, sizeof sig)),
      TSR_EVERIFY);
  sig[10] ^= 1;
  CHECK_ERR(mls_verify_with_label(s, pk, "Test", content, BYTES(sig, sizeof sig)),
            TSR_EVERIFY);
  sig[10] ^= 1;
  CHECK_ERR(mls_verify_with_label(s, pk, "Test", content, BYTES(sig, sizeof sig - 1)),
            TSR_EVERIFY);
  CHECK_ERR(mls_verify_with_label(s, BYTES(key.pk, 31), "Test", content,
                                  BYTES(sig, sizeof sig)),
            TSR_EVERIFY);
  mls_sig_key other;
  CHECK_OK(crypto_sig_generate(&other));
  CHECK_ERR(mls_verify_with_label(s, BYTES(other.pk, MLS_SIG_PK), "Test", content,
                                  BYTES(sig, sizeof sig)),
            TSR_EVERIFY);
  /* The raw primitive as well. */
  CHECK_OK(crypto_sig_sign(&key, content, sig));
  CHECK_OK(crypto_sig_verify(pk, content, BYTES(sig, sizeof sig)));
  sig[63] ^= 0x10;
  CHECK_ERR(crypto_sig_verify(pk, content, BYTES(sig, sizeof sig)), TSR_EVERIFY);
  /* A key rebuilt from its seed signs identically. */
  mls_sig_key again;
  CHECK_OK(crypto_sig_from_seed(&again, key.seed));
  CHECK_BYTES(BYTES(again.pk, MLS_SIG_PK), pk);
  crypto_sig_wipe(&key);
  crypto_sig_wipe(&other);
  crypto_sig_wipe(&again);
}

/* Large messages are signed by OpenSSL, small ones by libsodium: around
 * the switch both must give libsodium's (deterministic) signature, and
 * signing in place must equal SignWithLabel. */
static void test_sig_large(void) {
  mls_sig_key key;
  CHECK_OK(crypto_sig_generate(&key));
  const mls_suite *s = mls_suite_get(1);
  const size_t sizes[] = {100, 16383, 16384, 100000};
  size_t pre = mls_sign_prefix_len("GroupInfoTBS");
  uint8_t *buf = malloc(pre + 100000);
  CHECK(buf != NULL);
  for (size_t i = 0; buf && i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i];
    uint8_t *msg = buf + pre;
    for (size_t j = 0; j < n; j++) msg[j] = (uint8_t)(j * 7 + i);
    uint8_t mine[MLS_SIG_LEN], ref[MLS_SIG_LEN];
    CHECK_OK(crypto_sig_sign(&key, BYTES(msg, n), mine));
    CHECK(crypto_sign_ed25519_detached(ref, NULL, msg, n, key.sk) == 0);
    CHECK_BYTES(BYTES(mine, sizeof mine), BYTES(ref, sizeof ref));
    CHECK_OK(crypto_sig_verify(BYTES(key.pk, MLS_SIG_PK), BYTES(msg, n),
                               BYTES(mine, sizeof mine)));
    CHECK_OK(mls_sign_with_label(s, &key, "GroupInfoTBS", BYTES(msg, n), ref));
    CHECK_OK(mls_sign_with_label_at(s, &key, "GroupInfoTBS", buf, pre, n, mine));
    CHECK_BYTES(BYTES(mine, sizeof mine), BYTES(ref, sizeof ref));
    CHECK_OK(mls_verify_with_label(s, BYTES(key.pk, MLS_SIG_PK), "GroupInfoTBS",
                                   BYTES(msg, n), BYTES(mine, sizeof mine)));
  }
  free(buf);
  crypto_sig_wipe(&key);
}

/* RFC 4231 test cases 2 (short key) and 6 (key longer than a block). */
static void test_hmac_rfc4231(void) {
  const mls_suite *s = mls_suite_get(1);
  uint8_t out[32], key[131];
  buf_t want;
  buf_init(&want);
  const char *d2 = "what do ya want for nothing?";
  CHECK_OK(crypto_hmac(s, BYTES("Jefe", 4), BYTES(d2, strlen(d2)), out));
  CHECK_OK(hex_decode("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
                      &want));
  CHECK_BYTES(BYTES(out, sizeof out), buf_view(&want));
  memset(key, 0xaa, sizeof key);
  const char *d6 = "Test Using Larger Than Block-Size Key - Hash Key First";
  CHECK_OK(crypto_hmac(s, BYTES(key, sizeof key), BYTES(d6, strlen(d6)), out));
  buf_free(&want);
  buf_init(&want);
  CHECK_OK(hex_decode("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
                      &want));
  CHECK_BYTES(BYTES(out, sizeof out), buf_view(&want));
  buf_free(&want);
}

static void test_dh(void) {
  uint8_t a[32], b[32], pa[32], pb[32], s1[32], s2[32];
  crypto_random(a, 32);
  crypto_random(b, 32);
  CHECK_OK(crypto_dh_public(a, pa));
  CHECK_OK(crypto_dh_public(b, pb));
  CHECK_OK(crypto_dh(a, pb, s1));
  CHECK_OK(crypto_dh(b, pa, s2));
  CHECK_BYTES(BYTES(s1, 32), BYTES(s2, 32));
  /* Low-order points give an all-zero secret, which must be refused. */
  static const uint8_t zero[32], one[32] = {1};
  CHECK_ERR(crypto_dh(a, zero, s1), TSR_ECRYPTO);
  CHECK_ERR(crypto_dh(a, one, s1), TSR_ECRYPTO);
  CHECK_BYTES(BYTES(s1, 32), BYTES(zero, 32));
}

static void test_encrypt_with_label_errors(void) {
  const mls_suite *s = mls_suite_get(3);
  uint8_t sk[MLS_KEM_SK], pk[MLS_KEM_PK], kem[MLS_KEM_PK];
  CHECK_OK(
      mls_kem_derive_keypair(s, BYTES("some ikm of enough length......", 31), sk, pk));
  buf_t ct, pt;
  buf_init(&ct);
  buf_init(&pt);
  bytes_t ctx = BYTES("ctx", 3), msg = BYTES("secret", 6);
  CHECK_ERR(mls_encrypt_with_label(s, BYTES(pk, 31), "L", ctx, msg, kem, &ct),
            TSR_EINVAL);
  CHECK_INT(ct.len, 0);
  CHECK_OK(mls_encrypt_with_label(s, BYTES(pk, 32), "L", ctx, msg, kem, &ct));
  CHECK_ERR(mls_decrypt_with_label(s, BYTES(sk, 31), "L", ctx, BYTES(kem, 32),
                                   buf_view(&ct), &pt),
            TSR_EINVAL);
  CHECK_ERR(mls_decrypt_with_label(s, BYTES(sk, 32), "M", ctx, BYTES(kem, 32),
                                   buf_view(&ct), &pt),
            TSR_EDECRYPT);
  CHECK_ERR(mls_decrypt_with_label(s, BYTES(sk, 32), "L", BYTES("ctY", 3), BYTES(kem, 32),
                                   buf_view(&ct), &pt),
            TSR_EDECRYPT);
  ct.ptr[ct.len - 1] ^= 1;
  CHECK_ERR(mls_decrypt_with_label(s, BYTES(sk, 32), "L", ctx, BYTES(kem, 32),
                                   buf_view(&ct), &pt),
            TSR_EDECRYPT);
  ct.ptr[ct.len - 1] ^= 1;
  static const uint8_t zero[32];
  CHECK_ERR(mls_decrypt_with_label(s, BYTES(sk, 32), "L", ctx, BYTES(zero, 32),
                                   buf_view(&ct), &pt),
            TSR_EDECRYPT);
  CHECK_INT(pt.len, 0);
  /* Appends after existing content. */
  buf_append(&pt, "xy", 2);
  CHECK_OK(mls_decrypt_with_label(s, BYTES(sk, 32), "L", ctx, BYTES(kem, 32),
                                  buf_view(&ct), &pt));
  CHECK_BYTES(buf_view(&pt), BYTES("xysecret", 8));
  /* Empty plaintext round trip. */
  buf_reset(&ct);
  buf_free(&pt);
  CHECK_OK(mls_encrypt_with_label(s, BYTES(pk, 32), "L", ctx, BYTES_NONE, kem, &ct));
  CHECK_INT(ct.len, MLS_AEAD_TAG);
  CHECK_OK(mls_decrypt_with_label(s, BYTES(sk, 32), "L", ctx, BYTES(kem, 32),
                                  buf_view(&ct), &pt));
  CHECK_INT(pt.len, 0);
  buf_free(&ct);
  buf_free(&pt);
}

int main(void) {
  if (crypto_init() != 0) {
    fprintf(stderr, "crypto_init failed\n");
    return 1;
  }
  RUN(test_suites);
  RUN(test_hkdf_rfc5869);
  RUN(test_vectors_crypto_basics);
  RUN(test_aead_tamper);
  RUN(test_sig_tamper);
  RUN(test_sig_large);
  RUN(test_hmac_rfc4231);
  RUN(test_dh);
  RUN(test_encrypt_with_label_errors);
  return test_report("crypto");
}
