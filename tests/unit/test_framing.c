/* Framing: PublicMessage / PrivateMessage protect and unprotect against
 * the message-protection vectors, transcript hashes, and the ways a
 * message must be refused (tampering, replay, wrong group or epoch,
 * truncation, non-zero padding, sender rules). */
#include <stdlib.h>

#include "mls/crypto.h"
#include "mls/framing.h"
#include "mls/keysched.h"
#include "mls/messages.h"
#include "mls/secret_tree.h"
#include "test.h"
#include "vectors.h"

#define SENDER_LEAF 1u

/* One message-protection vector entry, decoded. */
typedef struct {
  const mls_suite *suite;
  buf_t group_id, tree_hash, cth, sig_priv, sig_pub, enc_secret, sds, mkey;
  buf_t proposal, proposal_pub, proposal_priv;
  buf_t commit, commit_pub, commit_priv;
  buf_t application, application_priv;
  uint64_t epoch;
  buf_t gc;
  mls_sig_key key;
} mp_vec;

/* Sender keys the receiving side knows: member SENDER_LEAF and external
 * sender 0 (both with the vector's key); everything else is unknown. */
typedef struct {
  bytes_t member_pk;
  bytes_t external_pk;
} key_book;

static int lookup_key(void *arg, const mls_sender *sender, bytes_t *pk) {
  const key_book *kb = arg;
  if (sender->sender_type == MLS_SENDER_MEMBER && sender->index == SENDER_LEAF &&
      kb->member_pk.len) {
    *pk = kb->member_pk;
    return 0;
  }
  if (sender->sender_type == MLS_SENDER_EXTERNAL && sender->index == 0 &&
      kb->external_pk.len) {
    *pk = kb->external_pk;
    return 0;
  }
  return TSR_ESENDER;
}

static void mp_free(mp_vec *v) {
  buf_t *all[] = {
      &v->group_id,   &v->tree_hash,    &v->cth,           &v->sig_priv,
      &v->sig_pub,    &v->enc_secret,   &v->sds,           &v->mkey,
      &v->proposal,   &v->proposal_pub, &v->proposal_priv, &v->commit,
      &v->commit_pub, &v->commit_priv,  &v->application,   &v->application_priv,
      &v->gc};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) buf_free_secret(all[i]);
  crypto_sig_wipe(&v->key);
}

/* 0 if the entry loaded (suite supported), else nonzero. */
static int mp_load(const cJSON *e, mp_vec *v) {
  memset(v, 0, sizeof *v);
  v->suite = mls_suite_get((uint16_t)vec_int(e, "cipher_suite"));
  if (!v->suite) return 1;
  struct {
    const char *k;
    buf_t *b;
  } f[] = {{"group_id", &v->group_id},
           {"tree_hash", &v->tree_hash},
           {"confirmed_transcript_hash", &v->cth},
           {"signature_priv", &v->sig_priv},
           {"signature_pub", &v->sig_pub},
           {"encryption_secret", &v->enc_secret},
           {"sender_data_secret", &v->sds},
           {"membership_key", &v->mkey},
           {"proposal", &v->proposal},
           {"proposal_pub", &v->proposal_pub},
           {"proposal_priv", &v->proposal_priv},
           {"commit", &v->commit},
           {"commit_pub", &v->commit_pub},
           {"commit_priv", &v->commit_priv},
           {"application", &v->application},
           {"application_priv", &v->application_priv}};
  for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
    if (vec_hex(e, f[i].k, f[i].b) != 0) return -1;
  v->epoch = (uint64_t)vec_int(e, "epoch");
  if (keysched_group_context(&v->gc, v->suite->id, buf_view(&v->group_id), v->epoch,
                             buf_view(&v->tree_hash), buf_view(&v->cth), BYTES_NONE))
    return -1;
  if (v->sig_priv.len != MLS_SIG_SEED || crypto_sig_from_seed(&v->key, v->sig_priv.ptr))
    return -1;
  return 0;
}

static void mp_ctx(const mp_vec *v, secret_tree *st, key_book *kb, framing_ctx *ctx) {
  memset(ctx, 0, sizeof *ctx);
  ctx->suite = v->suite;
  ctx->group_id = buf_view(&v->group_id);
  ctx->epoch = v->epoch;
  ctx->group_context = buf_view(&v->gc);
  ctx->membership_key = buf_view(&v->mkey);
  ctx->sender_data_secret = buf_view(&v->sds);
  ctx->tree = st;
  ctx->own_leaf = SENDER_LEAF;
  ctx->sig_key = &v->key;
  ctx->padding_block = 0;
  ctx->sender_key = lookup_key;
  ctx->sender_key_arg = kb;
}

static int fresh_tree(const mp_vec *v, secret_tree *st) {
  return secret_tree_init(st, v->suite, buf_view(&v->enc_secret), 2, NULL);
}

/* The raw content of a result, encoded as the vector gives it. */
static void raw_content(const mls_framed_content *fc, buf_t *out) {
  buf_reset(out);
  switch (fc->content_type) {
  case MLS_CONTENT_PROPOSAL: msg_encode_proposal(out, &fc->proposal); break;
  case MLS_CONTENT_COMMIT: msg_encode_commit(out, &fc->commit); break;
  default: wr_raw(out, fc->application_data); break;
  }
}

/* Result invariants: encoded / confirmed_input agree with the codec. */
static void check_result_encodings(const framing_result *r) {
  if (r->ac.content.content_type == MLS_CONTENT_APPLICATION) {
    CHECK_INT(r->encoded.len, 0);
    return;
  }
  buf_t w;
  buf_init(&w);
  msg_encode_authenticated_content(&w, &r->ac);
  CHECK_BYTES(r->encoded, buf_view(&w));
  buf_reset(&w);
  framing_encode_confirmed_input(&w, &r->ac);
  CHECK_BYTES(r->confirmed_input, buf_view(&w));
  buf_free(&w);
}

/* Unprotects msg with a fresh receiver tree and compares the content. */
static void expect_unprotect(const mp_vec *v, bytes_t msg, uint8_t content_type,
                             uint16_t wire_format, bytes_t raw) {
  secret_tree st;
  key_book kb = {buf_view(&v->sig_pub), BYTES_NONE};
  framing_ctx ctx;
  CHECK_OK(fresh_tree(v, &st));
  mp_ctx(v, &st, &kb, &ctx);
  ctx.sig_key = NULL; /* receiving needs no private key */
  arena_t a;
  arena_init(&a);
  framing_result r;
  int rc = framing_unprotect(&ctx, msg, &a, &r);
  CHECK_OK(rc);
  if (rc == 0) {
    CHECK_INT(r.ac.wire_format, wire_format);
    CHECK_INT(r.ac.content.content_type, content_type);
    CHECK_INT(r.ac.content.sender.sender_type, MLS_SENDER_MEMBER);
    CHECK_INT(r.ac.content.sender.index, SENDER_LEAF);
    CHECK_INT(r.ac.content.epoch, v->epoch);
    CHECK_BYTES(r.ac.content.group_id, buf_view(&v->group_id));
    buf_t got;
    buf_init(&got);
    raw_content(&r.ac.content, &got);
    CHECK_BYTES(buf_view(&got), raw);
    buf_free(&got);
    check_result_encodings(&r);
  }
  arena_free(&a);
  secret_tree_free(&st);
}

/* Builds the AuthenticatedContent for raw (decoded into a). */
static int build_content(const mp_vec *v, uint8_t content_type, uint16_t wire_format,
                         bytes_t raw, arena_t *a, mls_authenticated_content *ac) {
  memset(ac, 0, sizeof *ac);
  ac->wire_format = wire_format;
  mls_framed_content *fc = &ac->content;
  fc->group_id = buf_view(&v->group_id);
  fc->epoch = v->epoch;
  fc->sender.sender_type = MLS_SENDER_MEMBER;
  fc->sender.index = SENDER_LEAF;
  fc->authenticated_data = BYTES("aad", 3);
  fc->content_type = content_type;
  switch (content_type) {
  case MLS_CONTENT_PROPOSAL: return msg_decode_proposal(raw, a, &fc->proposal);
  case MLS_CONTENT_COMMIT: return msg_decode_commit(raw, a, &fc->commit);
  default: fc->application_data = raw; return 0;
  }
}

static const uint8_t dummy_tag[32] = {0x5a, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};

/* Protects raw both ways and unprotects what came out. */
static void protect_roundtrip(const mp_vec *v, uint8_t content_type, bytes_t raw) {
  secret_tree st;
  key_book kb = {buf_view(&v->sig_pub), BYTES_NONE};
  framing_ctx ctx;
  CHECK_OK(fresh_tree(v, &st));
  mp_ctx(v, &st, &kb, &ctx);
  arena_t a;
  arena_init(&a);
  buf_t out;
  buf_init(&out);
  uint8_t sig[MLS_SIG_LEN];
  mls_authenticated_content ac;

  /* PublicMessage. */
  CHECK_OK(build_content(v, content_type, MLS_WIRE_PUBLIC_MESSAGE, raw, &a, &ac));
  CHECK_OK(framing_sign(&ctx, &ac, sig));
  if (content_type == MLS_CONTENT_COMMIT)
    ac.auth.confirmation_tag = BYTES(dummy_tag, v->suite->hash_len);
  if (content_type == MLS_CONTENT_APPLICATION) {
    CHECK_ERR(framing_protect_public(&ctx, &ac, &out), TSR_EPROTOCOL);
    CHECK_INT(out.len, 0);
  } else {
    CHECK_OK(framing_protect_public(&ctx, &ac, &out));
    expect_unprotect(v, buf_view(&out), content_type, MLS_WIRE_PUBLIC_MESSAGE, raw);
  }

  /* PrivateMessage, padded. */
  buf_reset(&out);
  ctx.padding_block = 32;
  CHECK_OK(build_content(v, content_type, MLS_WIRE_PRIVATE_MESSAGE, raw, &a, &ac));
  CHECK_OK(framing_sign(&ctx, &ac, sig));
  if (content_type == MLS_CONTENT_COMMIT)
    ac.auth.confirmation_tag = BYTES(dummy_tag, v->suite->hash_len);
  CHECK_OK(framing_protect_private(&ctx, &ac, &out));
  mls_message m;
  CHECK_OK(msg_decode_message(buf_view(&out), &a, &m));
  CHECK_INT(m.wire_format, MLS_WIRE_PRIVATE_MESSAGE);
  CHECK_INT((m.private_message.ciphertext.len - MLS_AEAD_TAG) % 32, 0);
  expect_unprotect(v, buf_view(&out), content_type, MLS_WIRE_PRIVATE_MESSAGE, raw);

  buf_free(&out);
  arena_free(&a);
  secret_tree_free(&st);
}

static void run_message_protection(int suite) {
  const char *why = NULL;
  cJSON *j = vec_load("mls/message-protection.json", &why);
  if (!j) TEST_SKIP("%s", why);
  int count = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, j) {
    if (!vec_suite_is(e, suite)) continue;
    mp_vec v;
    int lr = mp_load(e, &v);
    CHECK_INT(lr, 0);
    if (lr == 0) {
      CHECK_BYTES(BYTES(v.key.pk, MLS_SIG_PK), buf_view(&v.sig_pub));
      expect_unprotect(&v, buf_view(&v.proposal_pub), MLS_CONTENT_PROPOSAL,
                       MLS_WIRE_PUBLIC_MESSAGE, buf_view(&v.proposal));
      expect_unprotect(&v, buf_view(&v.proposal_priv), MLS_CONTENT_PROPOSAL,
                       MLS_WIRE_PRIVATE_MESSAGE, buf_view(&v.proposal));
      expect_unprotect(&v, buf_view(&v.commit_pub), MLS_CONTENT_COMMIT,
                       MLS_WIRE_PUBLIC_MESSAGE, buf_view(&v.commit));
      expect_unprotect(&v, buf_view(&v.commit_priv), MLS_CONTENT_COMMIT,
                       MLS_WIRE_PRIVATE_MESSAGE, buf_view(&v.commit));
      expect_unprotect(&v, buf_view(&v.application_priv), MLS_CONTENT_APPLICATION,
                       MLS_WIRE_PRIVATE_MESSAGE, buf_view(&v.application));
      protect_roundtrip(&v, MLS_CONTENT_PROPOSAL, buf_view(&v.proposal));
      protect_roundtrip(&v, MLS_CONTENT_COMMIT, buf_view(&v.commit));
      protect_roundtrip(&v, MLS_CONTENT_APPLICATION, buf_view(&v.application));
      count++;
    }
    mp_free(&v);
  }
  vec_report("message-protection.json", suite, count);
  CHECK(count > 0);
  cJSON_Delete(j);
}

static void test_message_protection_suite1(void) { run_message_protection(1); }
static void test_message_protection_suite3(void) { run_message_protection(3); }

static void run_transcript_hashes(int suite) {
  const char *why = NULL;
  cJSON *j = vec_load("mls/transcript-hashes.json", &why);
  if (!j) TEST_SKIP("%s", why);
  int count = 0;
  buf_t ckey, acb, before, cth_after, ith_after, w;
  buf_init(&ckey);
  buf_init(&acb);
  buf_init(&before);
  buf_init(&cth_after);
  buf_init(&ith_after);
  buf_init(&w);
  const cJSON *e;
  cJSON_ArrayForEach(e, j) {
    if (!vec_suite_is(e, suite)) continue;
    const mls_suite *s = mls_suite_get((uint16_t)suite);
    CHECK(s != NULL);
    if (!s) break;
    CHECK_OK(vec_hex(e, "confirmation_key", &ckey));
    CHECK_OK(vec_hex(e, "authenticated_content", &acb));
    CHECK_OK(vec_hex(e, "interim_transcript_hash_before", &before));
    CHECK_OK(vec_hex(e, "confirmed_transcript_hash_after", &cth_after));
    CHECK_OK(vec_hex(e, "interim_transcript_hash_after", &ith_after));
    arena_t a;
    arena_init(&a);
    mls_authenticated_content ac;
    CHECK_OK(msg_decode_authenticated_content(buf_view(&acb), &a, &ac));
    CHECK_INT(ac.content.content_type, MLS_CONTENT_COMMIT);

    uint8_t cth[MLS_MAX_HASH], ith[MLS_MAX_HASH], tag[MLS_MAX_HASH];
    buf_reset(&w);
    framing_encode_confirmed_input(&w, &ac);
    CHECK_OK(w.err);
    CHECK_OK(keysched_confirmed_hash(s, buf_view(&before), buf_view(&w), cth));
    CHECK_BYTES(BYTES(cth, s->hash_len), buf_view(&cth_after));

    keysched_epoch ks;
    memset(&ks, 0, sizeof ks);
    ks.suite = s;
    CHECK_INT(ckey.len, s->hash_len);
    memcpy(ks.confirmation_key, ckey.ptr, ckey.len <= MLS_MAX_HASH ? ckey.len : 0);
    CHECK_OK(keysched_confirmation_tag(&ks, buf_view(&cth_after), tag));
    CHECK(bytes_eq_ct(BYTES(tag, s->hash_len), ac.auth.confirmation_tag));
    keysched_wipe(&ks);

    buf_reset(&w);
    wr_opaque(&w, ac.auth.confirmation_tag);
    CHECK_OK(keysched_interim_hash(s, BYTES(cth, s->hash_len), buf_view(&w), ith));
    CHECK_BYTES(BYTES(ith, s->hash_len), buf_view(&ith_after));
    arena_free(&a);
    count++;
  }
  vec_report("transcript-hashes.json", suite, count);
  CHECK(count > 0);
  buf_free(&ckey);
  buf_free(&acb);
  buf_free(&before);
  buf_free(&cth_after);
  buf_free(&ith_after);
  buf_free(&w);
  cJSON_Delete(j);
}

static void test_transcript_hashes_suite1(void) { run_transcript_hashes(1); }
static void test_transcript_hashes_suite3(void) { run_transcript_hashes(3); }

/* --- Negative tests on suite 1's first vector entry ------------------------ */

/* Loads the first suite-1 entry; returns false (and skips) if absent. */
static bool first_vec(mp_vec *v) {
  const char *why = NULL;
  cJSON *j = vec_load("mls/message-protection.json", &why);
  if (!j) return false;
  bool ok = false;
  const cJSON *e;
  cJSON_ArrayForEach(e, j) {
    if (!vec_suite_is(e, 1)) continue;
    ok = mp_load(e, v) == 0;
    if (!ok) mp_free(v);
    break;
  }
  cJSON_Delete(j);
  return ok;
}

/* One sender and one receiver, sharing the vector's secrets. */
typedef struct {
  mp_vec v;
  secret_tree send_st, recv_st;
  key_book kb;
  framing_ctx tx, rx;
  arena_t a;
} duo;

static bool duo_init(duo *d) {
  memset(d, 0, sizeof *d);
  if (!first_vec(&d->v)) return false;
  if (fresh_tree(&d->v, &d->send_st) || fresh_tree(&d->v, &d->recv_st)) return false;
  d->kb.member_pk = buf_view(&d->v.sig_pub);
  mp_ctx(&d->v, &d->send_st, &d->kb, &d->tx);
  mp_ctx(&d->v, &d->recv_st, &d->kb, &d->rx);
  d->rx.sig_key = NULL;
  arena_init(&d->a);
  return true;
}

static void duo_free(duo *d) {
  arena_free(&d->a);
  secret_tree_free(&d->send_st);
  secret_tree_free(&d->recv_st);
  mp_free(&d->v);
}

/* Appends a freshly protected message of content_type to out. */
static int duo_send(duo *d, uint8_t content_type, uint16_t wire_format, bytes_t raw,
                    buf_t *out) {
  mls_authenticated_content ac;
  uint8_t sig[MLS_SIG_LEN];
  int rc = build_content(&d->v, content_type, wire_format, raw, &d->a, &ac);
  if (!rc) rc = framing_sign(&d->tx, &ac, sig);
  if (rc) return rc;
  if (content_type == MLS_CONTENT_COMMIT)
    ac.auth.confirmation_tag = BYTES(dummy_tag, d->v.suite->hash_len);
  return wire_format == MLS_WIRE_PUBLIC_MESSAGE
             ? framing_protect_public(&d->tx, &ac, out)
             : framing_protect_private(&d->tx, &ac, out);
}

static int duo_recv(duo *d, bytes_t msg) {
  framing_result r;
  return framing_unprotect(&d->rx, msg, &d->a, &r);
}

static void test_tamper_private(void) {
  duo d;
  if (!duo_init(&d)) TEST_SKIP("message-protection.json suite 1 unavailable");
  buf_t msg, bad;
  buf_init(&msg);
  buf_init(&bad);
  CHECK_OK(duo_send(&d, MLS_CONTENT_APPLICATION, MLS_WIRE_PRIVATE_MESSAGE,
                    BYTES("hello", 5), &msg));
  /* Every single-bit flip in the content ciphertext tail and in the
   * encrypted sender data is refused; the last 16 bytes are the tag. */
  size_t n_flips = 0;
  for (size_t i = msg.len - 40; i < msg.len; i++) {
    buf_set(&bad, buf_view(&msg));
    bad.ptr[i] ^= 0x01;
    int rc = duo_recv(&d, buf_view(&bad));
    CHECK(rc == TSR_EDECRYPT || rc == TSR_EVERIFY);
    n_flips++;
  }
  CHECK(n_flips == 40);
  mls_message m;
  CHECK_OK(msg_decode_message(buf_view(&msg), &d.a, &m));
  size_t esd_off = (size_t)(m.private_message.encrypted_sender_data.ptr - msg.ptr);
  for (size_t i = 0; i < m.private_message.encrypted_sender_data.len; i++) {
    buf_set(&bad, buf_view(&msg));
    bad.ptr[esd_off + i] ^= 0x80;
    CHECK_ERR(duo_recv(&d, buf_view(&bad)), TSR_EDECRYPT);
  }
  /* The authenticated_data is in the AAD of both layers. */
  size_t ad_off = (size_t)(m.private_message.authenticated_data.ptr - msg.ptr);
  buf_set(&bad, buf_view(&msg));
  bad.ptr[ad_off] ^= 0x01;
  CHECK_ERR(duo_recv(&d, buf_view(&bad)), TSR_EDECRYPT);

  /* Nothing was consumed: the untouched message still decrypts, once. */
  CHECK_OK(duo_recv(&d, buf_view(&msg)));
  CHECK_ERR(duo_recv(&d, buf_view(&msg)), TSR_EREPLAY);
  buf_free(&msg);
  buf_free(&bad);
  duo_free(&d);
}

/* A message whose AEAD is fine but whose signature is not must not burn
 * the generation either. */
static void test_bad_signature_private(void) {
  duo d;
  if (!duo_init(&d)) TEST_SKIP("message-protection.json suite 1 unavailable");
  mls_sig_key other;
  CHECK_OK(crypto_sig_generate(&other));
  secret_tree forger_st;
  CHECK_OK(fresh_tree(&d.v, &forger_st));
  framing_ctx forger = d.tx;
  forger.tree = &forger_st;
  forger.sig_key = &other;

  buf_t forged, good;
  buf_init(&forged);
  buf_init(&good);
  mls_authenticated_content ac;
  uint8_t sig[MLS_SIG_LEN];
  CHECK_OK(build_content(&d.v, MLS_CONTENT_APPLICATION, MLS_WIRE_PRIVATE_MESSAGE,
                         BYTES("forged", 6), &d.a, &ac));
  CHECK_OK(framing_sign(&forger, &ac, sig));
  CHECK_OK(framing_protect_private(&forger, &ac, &forged));
  CHECK_OK(duo_send(&d, MLS_CONTENT_APPLICATION, MLS_WIRE_PRIVATE_MESSAGE,
                    BYTES("genuine", 7), &good));
  /* Both use generation 0 of leaf 1's application ratchet. */
  CHECK_ERR(duo_recv(&d, buf_view(&forged)), TSR_EVERIFY);
  framing_result r;
  CHECK_OK(framing_unprotect(&d.rx, buf_view(&good), &d.a, &r));
  CHECK_INT(r.generation, 0);
  CHECK_BYTES(r.ac.content.application_data, BYTES("genuine", 7));
  CHECK_ERR(duo_recv(&d, buf_view(&forged)), TSR_EREPLAY);

  /* A signature made for PublicMessage does not verify as private (the
   * wire format is signed). */
  buf_reset(&forged);
  CHECK_OK(build_content(&d.v, MLS_CONTENT_PROPOSAL, MLS_WIRE_PUBLIC_MESSAGE,
                         buf_view(&d.v.proposal), &d.a, &ac));
  CHECK_OK(framing_sign(&d.tx, &ac, sig));
  ac.wire_format = MLS_WIRE_PRIVATE_MESSAGE;
  CHECK_OK(framing_protect_private(&d.tx, &ac, &forged));
  CHECK_ERR(duo_recv(&d, buf_view(&forged)), TSR_EVERIFY);

  crypto_sig_wipe(&other);
  secret_tree_free(&forger_st);
  buf_free(&forged);
  buf_free(&good);
  duo_free(&d);
}

static void test_replay_and_order(void) {
  duo d;
  if (!duo_init(&d)) TEST_SKIP("message-protection.json suite 1 unavailable");
  buf_t m[3];
  for (int i = 0; i < 3; i++) {
    buf_init(&m[i]);
    CHECK_OK(duo_send(&d, MLS_CONTENT_APPLICATION, MLS_WIRE_PRIVATE_MESSAGE,
                      BYTES("x", 1), &m[i]));
  }
  /* Out of order within the window is fine; each exactly once. */
  framing_result r;
  CHECK_OK(framing_unprotect(&d.rx, buf_view(&m[2]), &d.a, &r));
  CHECK_INT(r.generation, 2);
  CHECK_OK(framing_unprotect(&d.rx, buf_view(&m[0]), &d.a, &r));
  CHECK_INT(r.generation, 0);
  CHECK_ERR(duo_recv(&d, buf_view(&m[2])), TSR_EREPLAY);
  CHECK_ERR(duo_recv(&d, buf_view(&m[0])), TSR_EREPLAY);
  CHECK_OK(duo_recv(&d, buf_view(&m[1])));
  CHECK_ERR(duo_recv(&d, buf_view(&m[1])), TSR_EREPLAY);
  /* Handshake and application ratchets are separate. */
  buf_t p;
  buf_init(&p);
  CHECK_OK(duo_send(&d, MLS_CONTENT_PROPOSAL, MLS_WIRE_PRIVATE_MESSAGE,
                    buf_view(&d.v.proposal), &p));
  CHECK_OK(framing_unprotect(&d.rx, buf_view(&p), &d.a, &r));
  CHECK_INT(r.generation, 0);
  for (int i = 0; i < 3; i++) buf_free(&m[i]);
  buf_free(&p);
  duo_free(&d);
}

static void test_window(void) {
  duo d;
  if (!duo_init(&d)) TEST_SKIP("message-protection.json suite 1 unavailable");
  secret_tree_free(&d.recv_st);
  secret_tree_config cfg = {.max_ahead = 2, .max_skipped = 4};
  CHECK_OK(secret_tree_init(&d.recv_st, d.v.suite, buf_view(&d.v.enc_secret), 2, &cfg));
  buf_t m;
  buf_init(&m);
  for (int i = 0; i < 4; i++) {
    buf_reset(&m);
    CHECK_OK(duo_send(&d, MLS_CONTENT_APPLICATION, MLS_WIRE_PRIVATE_MESSAGE,
                      BYTES("w", 1), &m));
  }
  /* Generation 3 is three ahead of the receiver's 0: outside the window. */
  CHECK_ERR(duo_recv(&d, buf_view(&m)), TSR_EWINDOW);
  buf_free(&m);
  duo_free(&d);
}

static void test_wrong_group_epoch_truncated(void) {
  duo d;
  if (!duo_init(&d)) TEST_SKIP("message-protection.json suite 1 unavailable");
  buf_t priv, pub;
  buf_init(&priv);
  buf_init(&pub);
  CHECK_OK(duo_send(&d, MLS_CONTENT_APPLICATION, MLS_WIRE_PRIVATE_MESSAGE, BYTES("hi", 2),
                    &priv));
  CHECK_OK(duo_send(&d, MLS_CONTENT_PROPOSAL, MLS_WIRE_PUBLIC_MESSAGE,
                    buf_view(&d.v.proposal), &pub));
  bytes_t msgs[2] = {buf_view(&priv), buf_view(&pub)};
  for (int i = 0; i < 2; i++) {
    framing_ctx saved = d.rx;
    d.rx.epoch = d.v.epoch + 1;
    CHECK_ERR(duo_recv(&d, msgs[i]), TSR_EEPOCH);
    d.rx = saved;
    d.rx.group_id = BYTES("another group", 13);
    CHECK_ERR(duo_recv(&d, msgs[i]), TSR_EGROUP);
    d.rx = saved;
    /* Every strict prefix fails to decode. */
    int bad = 0;
    for (size_t n = 0; n < msgs[i].len; n++)
      if (duo_recv(&d, BYTES(msgs[i].ptr, n)) != TSR_EDECODE) bad++;
    CHECK_INT(bad, 0);
    /* ... and so does trailing garbage. */
    buf_t longer;
    buf_init(&longer);
    buf_set(&longer, msgs[i]);
    wr_u8(&longer, 0);
    CHECK_ERR(duo_recv(&d, buf_view(&longer)), TSR_EDECODE);
    buf_free(&longer);
  }
  /* Still intact after all that. */
  CHECK_OK(duo_recv(&d, msgs[0]));
  CHECK_OK(duo_recv(&d, msgs[1]));
  buf_free(&priv);
  buf_free(&pub);
  duo_free(&d);
}

static void test_public_tampering(void) {
  duo d;
  if (!duo_init(&d)) TEST_SKIP("message-protection.json suite 1 unavailable");
  buf_t pub, bad;
  buf_init(&pub);
  buf_init(&bad);
  CHECK_OK(duo_send(&d, MLS_CONTENT_COMMIT, MLS_WIRE_PUBLIC_MESSAGE,
                    buf_view(&d.v.commit), &pub));
  CHECK_OK(duo_recv(&d, buf_view(&pub)));
  /* Last byte: membership tag. */
  buf_set(&bad, buf_view(&pub));
  bad.ptr[bad.len - 1] ^= 1;
  CHECK_ERR(duo_recv(&d, buf_view(&bad)), TSR_EVERIFY);
  /* Wrong membership key. */
  framing_ctx saved = d.rx;
  uint8_t other_key[32] = {1};
  d.rx.membership_key = BYTES(other_key, 32);
  CHECK_ERR(duo_recv(&d, buf_view(&pub)), TSR_EVERIFY);
  d.rx = saved;
  /* A different GroupContext (signed for members) breaks tag and signature. */
  buf_t gc;
  buf_init(&gc);
  CHECK_OK(keysched_group_context(&gc, d.v.suite->id, buf_view(&d.v.group_id), d.v.epoch,
                                  buf_view(&d.v.tree_hash), BYTES("x", 1), BYTES_NONE));
  d.rx.group_context = buf_view(&gc);
  CHECK_ERR(duo_recv(&d, buf_view(&pub)), TSR_EVERIFY);
  d.rx = saved;
  /* Unknown sender: the callback's code comes back. */
  key_book none = {BYTES_NONE, BYTES_NONE};
  d.rx.sender_key_arg = &none;
  CHECK_ERR(duo_recv(&d, buf_view(&pub)), TSR_ESENDER);
  d.rx = saved;

  /* Application data as PublicMessage: built by hand, refused. */
  mls_public_message pm;
  memset(&pm, 0, sizeof pm);
  pm.content.group_id = buf_view(&d.v.group_id);
  pm.content.epoch = d.v.epoch;
  pm.content.sender.sender_type = MLS_SENDER_MEMBER;
  pm.content.sender.index = SENDER_LEAF;
  pm.content.content_type = MLS_CONTENT_APPLICATION;
  pm.content.application_data = BYTES("pub", 3);
  uint8_t zeros[64] = {0};
  pm.auth.signature = BYTES(zeros, 64);
  pm.membership_tag = BYTES(zeros, 32);
  buf_reset(&bad);
  wr_u16(&bad, MLS_VERSION_10);
  wr_u16(&bad, MLS_WIRE_PUBLIC_MESSAGE);
  msg_encode_public_message(&bad, &pm);
  CHECK_ERR(duo_recv(&d, buf_view(&bad)), TSR_EPROTOCOL);

  buf_free(&gc);
  buf_free(&pub);
  buf_free(&bad);
  duo_free(&d);
}

/* External sender: proposal accepted without membership tag; a commit
 * from an external sender is refused. */
static void test_external_sender(void) {
  duo d;
  if (!duo_init(&d)) TEST_SKIP("message-protection.json suite 1 unavailable");
  mls_sig_key ext;
  CHECK_OK(crypto_sig_generate(&ext));
  d.kb.external_pk = BYTES(ext.pk, MLS_SIG_PK);
  framing_ctx tx = d.tx;
  tx.sig_key = &ext;
  tx.membership_key = BYTES_NONE; /* an external sender does not have it */

  mls_authenticated_content ac;
  uint8_t sig[MLS_SIG_LEN];
  buf_t out;
  buf_init(&out);
  CHECK_OK(build_content(&d.v, MLS_CONTENT_PROPOSAL, MLS_WIRE_PUBLIC_MESSAGE,
                         buf_view(&d.v.proposal), &d.a, &ac));
  ac.content.sender.sender_type = MLS_SENDER_EXTERNAL;
  ac.content.sender.index = 0;
  CHECK_OK(framing_sign(&tx, &ac, sig));
  CHECK_OK(framing_protect_public(&tx, &ac, &out));
  framing_result r;
  CHECK_OK(framing_unprotect(&d.rx, buf_view(&out), &d.a, &r));
  CHECK_INT(r.ac.content.sender.sender_type, MLS_SENDER_EXTERNAL);
  check_result_encodings(&r);
  /* Not via PrivateMessage. */
  buf_reset(&out);
  ac.wire_format = MLS_WIRE_PRIVATE_MESSAGE;
  CHECK_ERR(framing_protect_private(&tx, &ac, &out), TSR_EINVAL);

  /* External commit: refused on the way out and on the way in. */
  CHECK_OK(build_content(&d.v, MLS_CONTENT_COMMIT, MLS_WIRE_PUBLIC_MESSAGE,
                         buf_view(&d.v.commit), &d.a, &ac));
  ac.content.sender.sender_type = MLS_SENDER_EXTERNAL;
  ac.content.sender.index = 0;
  CHECK_OK(framing_sign(&tx, &ac, sig));
  ac.auth.confirmation_tag = BYTES(dummy_tag, 32);
  buf_reset(&out);
  CHECK_ERR(framing_protect_public(&tx, &ac, &out), TSR_EINVAL);
  mls_public_message pm = {.content = ac.content, .auth = ac.auth};
  wr_u16(&out, MLS_VERSION_10);
  wr_u16(&out, MLS_WIRE_PUBLIC_MESSAGE);
  msg_encode_public_message(&out, &pm);
  CHECK_ERR(duo_recv(&d, buf_view(&out)), TSR_ESENDER);

  crypto_sig_wipe(&ext);
  buf_free(&out);
  duo_free(&d);
}

/* Hand-built PrivateMessage with chosen padding, to reach the padding
 * check (framing itself only ever pads with zeros). */
static int build_padded(duo *d, secret_tree *st, uint8_t pad_byte, buf_t *out) {
  mls_authenticated_content ac;
  uint8_t sig[MLS_SIG_LEN];
  int rc = build_content(&d->v, MLS_CONTENT_APPLICATION, MLS_WIRE_PRIVATE_MESSAGE,
                         BYTES("pad", 3), &d->a, &ac);
  if (!rc) rc = framing_sign(&d->tx, &ac, sig);
  if (rc) return rc;
  const mls_suite *s = d->v.suite;
  buf_t pt, aad, ct;
  buf_init(&pt);
  buf_init(&aad);
  buf_init(&ct);
  wr_opaque(&pt, ac.content.application_data);
  msg_encode_auth_data(&pt, &ac.auth, MLS_CONTENT_APPLICATION);
  for (int i = 0; i < 7; i++) wr_u8(&pt, 0);
  wr_u8(&pt, pad_byte);
  wr_opaque(&aad, ac.content.group_id);
  wr_u64(&aad, ac.content.epoch);
  wr_u8(&aad, MLS_CONTENT_APPLICATION);
  size_t sd_aad = aad.len;
  wr_opaque(&aad, ac.content.authenticated_data);
  secret_tree_keys k;
  rc = secret_tree_next(st, SENDER_LEAF, SECRET_TREE_APPLICATION, &k);
  uint8_t *c = buf_extend(&ct, pt.len + MLS_AEAD_TAG);
  if (!rc && c)
    rc = crypto_aead_seal(s, k.key, k.nonce, buf_view(&aad), buf_view(&pt), c);
  uint8_t sd[12] = {0, 0, 0, SENDER_LEAF, 0, 0, 0, 0, 0, 0, 0, 0};
  sd[7] = (uint8_t)k.generation;
  uint8_t sdk[MLS_MAX_AEAD_KEY], sdn[MLS_MAX_NONCE], esd[12 + MLS_AEAD_TAG];
  if (!rc)
    rc = secret_tree_sender_data_key(s, buf_view(&d->v.sds), buf_view(&ct), sdk, sdn);
  if (!rc) rc = crypto_aead_seal(s, sdk, sdn, BYTES(aad.ptr, sd_aad), BYTES(sd, 12), esd);
  mls_private_message pm = {.group_id = ac.content.group_id,
                            .epoch = ac.content.epoch,
                            .content_type = MLS_CONTENT_APPLICATION,
                            .authenticated_data = ac.content.authenticated_data,
                            .encrypted_sender_data = BYTES(esd, sizeof esd),
                            .ciphertext = buf_view(&ct)};
  wr_u16(out, MLS_VERSION_10);
  wr_u16(out, MLS_WIRE_PRIVATE_MESSAGE);
  msg_encode_private_message(out, &pm);
  secret_tree_keys_wipe(&k);
  buf_free(&pt);
  buf_free(&aad);
  buf_free(&ct);
  return rc ? rc : out->err;
}

static void test_padding(void) {
  duo d;
  if (!duo_init(&d)) TEST_SKIP("message-protection.json suite 1 unavailable");
  buf_t zero, nonzero;
  buf_init(&zero);
  buf_init(&nonzero);
  CHECK_OK(build_padded(&d, &d.send_st, 0x00, &zero));
  CHECK_OK(build_padded(&d, &d.send_st, 0x01, &nonzero));
  CHECK_OK(duo_recv(&d, buf_view(&zero)));
  CHECK_ERR(duo_recv(&d, buf_view(&nonzero)), TSR_EDECODE);
  /* Malformed, so not consumed: still TSR_EDECODE, never TSR_EREPLAY. */
  CHECK_ERR(duo_recv(&d, buf_view(&nonzero)), TSR_EDECODE);

  /* Sizes: padding_block 64 pads content+auth to a multiple of 64. */
  d.tx.padding_block = 64;
  buf_t m;
  buf_init(&m);
  CHECK_OK(duo_send(&d, MLS_CONTENT_APPLICATION, MLS_WIRE_PRIVATE_MESSAGE,
                    BYTES("abc", 3), &m));
  mls_message mm;
  CHECK_OK(msg_decode_message(buf_view(&m), &d.a, &mm));
  CHECK_INT(mm.private_message.ciphertext.len, 128 + MLS_AEAD_TAG);
  CHECK_OK(duo_recv(&d, buf_view(&m)));
  d.tx.padding_block = FRAMING_MAX_PADDING_BLOCK + 1;
  buf_reset(&m);
  CHECK_ERR(duo_send(&d, MLS_CONTENT_APPLICATION, MLS_WIRE_PRIVATE_MESSAGE,
                     BYTES("abc", 3), &m),
            TSR_EINVAL);
  buf_free(&m);
  buf_free(&zero);
  buf_free(&nonzero);
  duo_free(&d);
}

/* Sender data naming a blank / unknown leaf stops before the secret tree. */
static void test_unknown_leaf(void) {
  duo d;
  if (!duo_init(&d)) TEST_SKIP("message-protection.json suite 1 unavailable");
  buf_t m;
  buf_init(&m);
  CHECK_OK(duo_send(&d, MLS_CONTENT_APPLICATION, MLS_WIRE_PRIVATE_MESSAGE,
                    BYTES("who", 3), &m));
  key_book none = {BYTES_NONE, BYTES_NONE};
  framing_ctx saved = d.rx;
  d.rx.sender_key_arg = &none;
  CHECK_ERR(duo_recv(&d, buf_view(&m)), TSR_ESENDER);
  d.rx.sender_key = NULL;
  CHECK_ERR(duo_recv(&d, buf_view(&m)), TSR_ESENDER);
  d.rx = saved;
  CHECK_OK(duo_recv(&d, buf_view(&m)));
  buf_free(&m);
  duo_free(&d);
}

int main(void) {
  if (crypto_init() != 0) {
    fprintf(stderr, "crypto_init failed\n");
    return 1;
  }
  RUN(test_message_protection_suite1);
  RUN(test_message_protection_suite3);
  RUN(test_transcript_hashes_suite1);
  RUN(test_transcript_hashes_suite3);
  RUN(test_tamper_private);
  RUN(test_bad_signature_private);
  RUN(test_replay_and_order);
  RUN(test_window);
  RUN(test_wrong_group_epoch_truncated);
  RUN(test_public_tampering);
  RUN(test_external_sender);
  RUN(test_padding);
  RUN(test_unknown_leaf);
  return test_report("framing");
}
