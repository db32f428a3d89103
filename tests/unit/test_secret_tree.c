/* Secret tree: secret-tree.json (suites 1 and 3), out-of-order delivery,
 * replay, window, eviction, persistence. */
#include <stdlib.h>

#include "mls/codec.h"
#include "mls/crypto.h"
#include "mls/secret_tree.h"
#include "test.h"
#include "vectors.h"

static const int suites[] = {MLS_SUITE_X25519_AES128GCM_SHA256_ED25519,
                             MLS_SUITE_X25519_CHACHA20POLY1305_SHA256_ED25519};

static bytes_t hexv(const cJSON *obj, const char *key, buf_t *b) {
  int rc = vec_hex(obj, key, b);
  if (rc < 0) fprintf(stderr, "  missing or bad vector field %s\n", key);
  CHECK(rc >= 0);
  return buf_view(b);
}

static void check_keys(const mls_suite *s, const secret_tree_keys *k, const cJSON *g,
                       const char *kname, const char *nname, buf_t *b) {
  CHECK_BYTES(BYTES(k->key, s->key_len), hexv(g, kname, b));
  CHECK_BYTES(BYTES(k->nonce, s->nonce_len), hexv(g, nname, b));
}

/* Checks every listed generation of every leaf on tree t. If only_gen is
 * >= 0, entries with another generation are skipped. */
static void check_leaves(const mls_suite *s, secret_tree *t, const cJSON *leaves,
                         long long only_gen, buf_t *b) {
  uint32_t leaf = 0;
  const cJSON *l;
  cJSON_ArrayForEach(l, leaves) {
    const cJSON *g;
    cJSON_ArrayForEach(g, l) {
      long long gen = vec_int(g, "generation");
      if (only_gen >= 0 && gen != only_gen) continue;
      secret_tree_keys k;
      CHECK_OK(secret_tree_get(t, leaf, SECRET_TREE_HANDSHAKE, (uint32_t)gen, &k));
      CHECK_INT(k.generation, gen);
      check_keys(s, &k, g, "handshake_key", "handshake_nonce", b);
      CHECK_OK(secret_tree_get(t, leaf, SECRET_TREE_APPLICATION, (uint32_t)gen, &k));
      check_keys(s, &k, g, "application_key", "application_nonce", b);
      /* Consumed: a second request is a replay. */
      CHECK_ERR(secret_tree_get(t, leaf, SECRET_TREE_APPLICATION, (uint32_t)gen, &k),
                TSR_EREPLAY);
      secret_tree_keys_wipe(&k);
    }
    leaf++;
  }
}

/* The same keys as a sender walking its ratchets in order. */
static void check_leaves_sender(const mls_suite *s, secret_tree *t, const cJSON *leaves,
                                buf_t *b) {
  uint32_t leaf = 0;
  const cJSON *l;
  cJSON_ArrayForEach(l, leaves) {
    const cJSON *g;
    cJSON_ArrayForEach(g, l) {
      long long gen = vec_int(g, "generation");
      secret_tree_keys hk = {0}, ak = {0};
      uint32_t next = 0;
      CHECK_OK(secret_tree_next_generation(t, leaf, SECRET_TREE_HANDSHAKE, &next));
      while (!test_failing() && (long long)next <= gen) {
        CHECK_OK(secret_tree_next(t, leaf, SECRET_TREE_HANDSHAKE, &hk));
        CHECK_OK(secret_tree_next(t, leaf, SECRET_TREE_APPLICATION, &ak));
        CHECK_INT(hk.generation, next);
        next++;
      }
      CHECK_INT(hk.generation, gen);
      CHECK_INT(ak.generation, gen);
      check_keys(s, &hk, g, "handshake_key", "handshake_nonce", b);
      check_keys(s, &ak, g, "application_key", "application_nonce", b);
    }
    leaf++;
  }
}

static int run_entry(const mls_suite *s, const cJSON *e) {
  int before = test_failing();
  buf_t b, sds, ct, enc;
  buf_init(&b);
  buf_init(&sds);
  buf_init(&ct);
  buf_init(&enc);
  const cJSON *sd = cJSON_GetObjectItemCaseSensitive(e, "sender_data");
  CHECK(sd != NULL);
  if (sd) {
    uint8_t key[MLS_MAX_AEAD_KEY], nonce[MLS_MAX_NONCE];
    CHECK_OK(secret_tree_sender_data_key(s, hexv(sd, "sender_data_secret", &sds),
                                         hexv(sd, "ciphertext", &ct), key, nonce));
    CHECK_BYTES(BYTES(key, s->key_len), hexv(sd, "key", &b));
    CHECK_BYTES(BYTES(nonce, s->nonce_len), hexv(sd, "nonce", &b));
  }
  bytes_t es = hexv(e, "encryption_secret", &enc);
  const cJSON *leaves = cJSON_GetObjectItemCaseSensitive(e, "leaves");
  uint32_t n = (uint32_t)cJSON_GetArraySize(leaves);
  CHECK(n > 0);

  /* Receiver, all generations in order given (0 then a jump to 15). */
  secret_tree t;
  CHECK_OK(secret_tree_init(&t, s, es, n, NULL));
  if (!test_failing()) check_leaves(s, &t, leaves, -1, &b);
  secret_tree_free(&t);

  /* Sender side. */
  CHECK_OK(secret_tree_init(&t, s, es, n, NULL));
  if (!test_failing()) check_leaves_sender(s, &t, leaves, &b);
  secret_tree_free(&t);

  /* Generation 0 everywhere, persist and restore, then the rest. */
  CHECK_OK(secret_tree_init(&t, s, es, n, NULL));
  if (!test_failing()) {
    check_leaves(s, &t, leaves, 0, &b);
    buf_t ser;
    buf_init(&ser);
    CHECK_OK(secret_tree_serialize(&t, &ser));
    secret_tree_free(&t);
    secret_tree r;
    CHECK_OK(secret_tree_deserialize(&r, buf_view(&ser)));
    if (!test_failing()) {
      check_leaves(s, &r, leaves, 15, &b);
      secret_tree_free(&r);
    }
    buf_free_secret(&ser);
  }
  secret_tree_free(&t);
  buf_free(&b);
  buf_free(&sds);
  buf_free(&ct);
  buf_free(&enc);
  return !before && !test_failing();
}

static void test_vectors_secret_tree(void) {
  const char *why = NULL;
  cJSON *j = vec_load("mls/secret-tree.json", &why);
  if (!j) TEST_SKIP("%s", why);
  for (size_t si = 0; si < sizeof suites / sizeof suites[0]; si++) {
    const mls_suite *s = mls_suite_get((uint16_t)suites[si]);
    CHECK(s != NULL);
    if (!s) continue;
    int count = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, j) {
      if (vec_suite_is(e, suites[si])) count += run_entry(s, e);
    }
    vec_report("secret-tree.json", suites[si], count);
    CHECK(count > 0);
  }
  cJSON_Delete(j);
}

/* --- Behaviour ---------------------------------------------------------- */

static const uint8_t secret32[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11,
                                     12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
                                     23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

static bool same_keys(const secret_tree_keys *a, const secret_tree_keys *b) {
  return a->generation == b->generation && memcmp(a->key, b->key, sizeof a->key) == 0 &&
         memcmp(a->nonce, b->nonce, sizeof a->nonce) == 0;
}

/* Reference keys from an in-order sender. */
static void reference_keys(const mls_suite *s, uint32_t n, uint32_t leaf, uint32_t count,
                           secret_tree_keys *out) {
  secret_tree t;
  CHECK_OK(secret_tree_init(&t, s, BYTES(secret32, 32), n, NULL));
  for (uint32_t i = 0; i < count; i++)
    CHECK_OK(secret_tree_next(&t, leaf, SECRET_TREE_APPLICATION, &out[i]));
  secret_tree_free(&t);
}

static void test_out_of_order_and_replay(void) {
  const mls_suite *s = mls_suite_get(1);
  secret_tree_keys ref[12], k;
  reference_keys(s, 4, 3, 12, ref);
  secret_tree t;
  CHECK_OK(secret_tree_init(&t, s, BYTES(secret32, 32), 4, NULL));
  const uint32_t order[] = {5, 3, 4, 0, 11, 2, 1, 6, 10, 7, 9, 8};
  for (size_t i = 0; i < 12; i++) {
    CHECK_OK(secret_tree_get(&t, 3, SECRET_TREE_APPLICATION, order[i], &k));
    CHECK(same_keys(&k, &ref[order[i]]));
  }
  for (uint32_t g = 0; g < 12; g++)
    CHECK_ERR(secret_tree_get(&t, 3, SECRET_TREE_APPLICATION, g, &k), TSR_EREPLAY);
  /* Failure zeroes the output. */
  uint8_t zero[sizeof k] = {0};
  CHECK(memcmp(&k, zero, sizeof k) == 0);
  secret_tree_stats st;
  secret_tree_get_stats(&t, &st);
  CHECK_INT(st.kept_keys, 0);
  /* The handshake ratchet of the same leaf is independent. */
  CHECK_OK(secret_tree_get(&t, 3, SECRET_TREE_HANDSHAKE, 0, &k));
  CHECK(!same_keys(&k, &ref[0]));
  /* Sending continues after the last received generation. */
  CHECK_OK(secret_tree_next(&t, 3, SECRET_TREE_APPLICATION, &k));
  CHECK_INT(k.generation, 12);
  CHECK_ERR(secret_tree_get(&t, 4, SECRET_TREE_APPLICATION, 0, &k), TSR_EINVAL);
  CHECK_ERR(secret_tree_get(&t, 0, (secret_tree_type)2, 0, &k), TSR_EINVAL);
  secret_tree_free(&t);
}

static void test_window(void) {
  const mls_suite *s = mls_suite_get(3);
  secret_tree_config cfg = {.max_ahead = 10, .max_skipped = 100};
  secret_tree t;
  secret_tree_keys k;
  CHECK_OK(secret_tree_init(&t, s, BYTES(secret32, 32), 2, &cfg));
  CHECK_ERR(secret_tree_get(&t, 1, SECRET_TREE_HANDSHAKE, 11, &k), TSR_EWINDOW);
  CHECK_OK(secret_tree_get(&t, 1, SECRET_TREE_HANDSHAKE, 10, &k)); /* next = 11 */
  CHECK_ERR(secret_tree_get(&t, 1, SECRET_TREE_HANDSHAKE, 22, &k), TSR_EWINDOW);
  CHECK_ERR(secret_tree_get(&t, 1, SECRET_TREE_HANDSHAKE, UINT32_MAX, &k), TSR_EWINDOW);
  CHECK_OK(secret_tree_get(&t, 1, SECRET_TREE_HANDSHAKE, 21, &k));
  secret_tree_stats st;
  secret_tree_get_stats(&t, &st);
  CHECK_INT(st.kept_keys, 20); /* 0..9 and 11..20 */
  secret_tree_free(&t);

  /* Default window is 1000. */
  CHECK_OK(secret_tree_init(&t, s, BYTES(secret32, 32), 2, NULL));
  CHECK_ERR(secret_tree_get(&t, 0, SECRET_TREE_APPLICATION, 1001, &k), TSR_EWINDOW);
  CHECK_OK(secret_tree_get(&t, 0, SECRET_TREE_APPLICATION, 1000, &k));
  secret_tree_get_stats(&t, &st);
  CHECK_INT(st.kept_keys, SECRET_TREE_DEFAULT_MAX_SKIPPED);
  secret_tree_free(&t);
}

static void test_eviction(void) {
  const mls_suite *s = mls_suite_get(1);
  secret_tree_keys ref[16], k;
  reference_keys(s, 8, 5, 16, ref);
  secret_tree_config cfg = {.max_ahead = 1000, .max_skipped = 3};
  secret_tree t;
  CHECK_OK(secret_tree_init(&t, s, BYTES(secret32, 32), 8, &cfg));
  CHECK_OK(secret_tree_get(&t, 5, SECRET_TREE_APPLICATION, 10, &k)); /* keeps 7, 8, 9 */
  CHECK(same_keys(&k, &ref[10]));
  CHECK_ERR(secret_tree_get(&t, 5, SECRET_TREE_APPLICATION, 6, &k), TSR_EWINDOW);
  CHECK_ERR(secret_tree_get(&t, 5, SECRET_TREE_APPLICATION, 0, &k), TSR_EWINDOW);
  CHECK_OK(secret_tree_get(&t, 5, SECRET_TREE_APPLICATION, 8, &k));
  CHECK(same_keys(&k, &ref[8]));
  CHECK_ERR(secret_tree_get(&t, 5, SECRET_TREE_APPLICATION, 8, &k), TSR_EREPLAY);
  CHECK_ERR(secret_tree_get(&t, 5, SECRET_TREE_APPLICATION, 10, &k), TSR_EREPLAY);
  /* 15 keeps 12, 13, 14 and evicts 7 and 9 (and skips 11 outright). */
  CHECK_OK(secret_tree_get(&t, 5, SECRET_TREE_APPLICATION, 15, &k));
  CHECK_ERR(secret_tree_get(&t, 5, SECRET_TREE_APPLICATION, 7, &k), TSR_EWINDOW);
  CHECK_ERR(secret_tree_get(&t, 5, SECRET_TREE_APPLICATION, 9, &k), TSR_EWINDOW);
  CHECK_ERR(secret_tree_get(&t, 5, SECRET_TREE_APPLICATION, 11, &k), TSR_EWINDOW);
  CHECK_OK(secret_tree_get(&t, 5, SECRET_TREE_APPLICATION, 13, &k));
  CHECK(same_keys(&k, &ref[13]));
  CHECK_OK(secret_tree_get(&t, 5, SECRET_TREE_APPLICATION, 12, &k));
  CHECK(same_keys(&k, &ref[12]));
  CHECK_ERR(secret_tree_get(&t, 5, SECRET_TREE_APPLICATION, 13, &k), TSR_EREPLAY);
  secret_tree_free(&t);

  /* max_skipped 0: strictly in-order receiving plus jumps. */
  cfg.max_skipped = 0;
  CHECK_OK(secret_tree_init(&t, s, BYTES(secret32, 32), 8, &cfg));
  CHECK_OK(secret_tree_get(&t, 5, SECRET_TREE_APPLICATION, 3, &k));
  CHECK(same_keys(&k, &ref[3]));
  CHECK_ERR(secret_tree_get(&t, 5, SECRET_TREE_APPLICATION, 2, &k), TSR_EWINDOW);
  secret_tree_stats st;
  secret_tree_get_stats(&t, &st);
  CHECK_INT(st.kept_keys, 0);
  secret_tree_free(&t);
}

static void test_peek_consume(void) {
  const mls_suite *s = mls_suite_get(1);
  secret_tree_keys ref[4], a, b;
  reference_keys(s, 2, 0, 4, ref);
  secret_tree t;
  CHECK_OK(secret_tree_init(&t, s, BYTES(secret32, 32), 2, NULL));
  CHECK_OK(secret_tree_peek(&t, 0, SECRET_TREE_APPLICATION, 2, &a));
  CHECK_OK(secret_tree_peek(&t, 0, SECRET_TREE_APPLICATION, 2, &b));
  CHECK(same_keys(&a, &b));
  CHECK(same_keys(&a, &ref[2]));
  CHECK_OK(secret_tree_consume(&t, 0, SECRET_TREE_APPLICATION, 2));
  CHECK_ERR(secret_tree_consume(&t, 0, SECRET_TREE_APPLICATION, 2), TSR_EREPLAY);
  CHECK_ERR(secret_tree_get(&t, 0, SECRET_TREE_APPLICATION, 2, &a), TSR_EREPLAY);
  CHECK_OK(secret_tree_get(&t, 0, SECRET_TREE_APPLICATION, 1, &a));
  CHECK(same_keys(&a, &ref[1]));
  /* consume does what get does: on a leaf never peeked it derives and
   * consumes; the second time it is a replay. */
  CHECK_OK(secret_tree_consume(&t, 1, SECRET_TREE_APPLICATION, 0));
  CHECK_ERR(secret_tree_consume(&t, 1, SECRET_TREE_APPLICATION, 0), TSR_EREPLAY);
  CHECK_ERR(secret_tree_consume(&t, 1, SECRET_TREE_APPLICATION, 1002), TSR_EWINDOW);
  secret_tree_free(&t);
}

/* Serialised state, for comparing trees byte for byte. */
static void snapshot(const secret_tree *t, buf_t *b) {
  buf_reset(b);
  CHECK_OK(secret_tree_serialize(t, b));
}

/* peek on t must leave it byte-identical and agree with get on the twin u
 * (same rc, same key), which is done on u only if commit is set: then
 * consume on t must bring both to the same state. Returns peek's rc. */
static int peek_then(secret_tree *t, secret_tree *u, uint32_t leaf, secret_tree_type type,
                     uint32_t gen, bool commit, buf_t *x, buf_t *y) {
  secret_tree_keys pk, gk;
  snapshot(t, x);
  int rc = secret_tree_peek(t, leaf, type, gen, &pk);
  snapshot(t, y);
  CHECK_BYTES(buf_view(y), buf_view(x));
  if (rc) {
    /* Refused: get refuses alike and changes nothing either. */
    snapshot(u, x);
    CHECK_ERR(secret_tree_get(u, leaf, type, gen, &gk), rc);
    snapshot(u, y);
    CHECK_BYTES(buf_view(y), buf_view(x));
    if (commit) CHECK_ERR(secret_tree_consume(t, leaf, type, gen), rc);
  } else if (commit) {
    CHECK_OK(secret_tree_consume(t, leaf, type, gen));
    CHECK_OK(secret_tree_get(u, leaf, type, gen, &gk));
    CHECK(same_keys(&pk, &gk));
    CHECK_INT(pk.generation, gen);
    CHECK_ERR(secret_tree_consume(t, leaf, type, gen), TSR_EREPLAY);
    CHECK_ERR(secret_tree_get(t, leaf, type, gen, &gk), TSR_EREPLAY);
    CHECK_ERR(secret_tree_peek(t, leaf, type, gen, &gk), TSR_EREPLAY);
    CHECK_ERR(secret_tree_get(u, leaf, type, gen, &gk), TSR_EREPLAY);
  }
  snapshot(t, x);
  snapshot(u, y);
  CHECK_BYTES(buf_view(x), buf_view(y));
  secret_tree_keys_wipe(&pk);
  secret_tree_keys_wipe(&gk);
  return rc;
}

/* A refused message changes nothing: peek leaves the tree byte-identical
 * for an underived leaf, a far jump and a skipped key, and consume then
 * gives exactly the state get would have given. */
static void test_peek_no_side_effects(void) {
  const mls_suite *s = mls_suite_get(1);
  secret_tree_keys ref[8], k;
  reference_keys(s, 8, 5, 8, ref);
  secret_tree_config cfg = {.max_ahead = 1000, .max_skipped = 3};
  secret_tree t, u;
  buf_t x, y;
  buf_init(&x);
  buf_init(&y);
  secret_tree_stats st;
  CHECK_OK(secret_tree_init(&t, s, BYTES(secret32, 32), 8, &cfg));
  CHECK_OK(secret_tree_init(&u, s, BYTES(secret32, 32), 8, &cfg));

  /* (a) Leaf 5 not derived yet: peek derives nothing, deletes nothing. */
  CHECK_OK(peek_then(&t, &u, 5, SECRET_TREE_APPLICATION, 2, false, &x, &y));
  CHECK_OK(secret_tree_peek(&t, 5, SECRET_TREE_APPLICATION, 2, &k));
  CHECK(same_keys(&k, &ref[2]));
  secret_tree_get_stats(&t, &st);
  CHECK_INT(st.node_secrets, 1);
  CHECK_INT(st.leaves, 0);
  CHECK_ERR(peek_then(&t, &u, 5, SECRET_TREE_APPLICATION, 1001, true, &x, &y),
            TSR_EWINDOW);
  secret_tree_get_stats(&t, &st);
  CHECK_INT(st.leaves, 0); /* a refused get derives nothing either */
  CHECK_OK(peek_then(&t, &u, 5, SECRET_TREE_APPLICATION, 4, true, &x, &y));
  secret_tree_get_stats(&t, &st);
  CHECK_INT(st.node_secrets, 3); /* copath of leaf 5 */
  CHECK_INT(st.leaves, 1);
  CHECK_INT(st.kept_keys, 3); /* 1, 2, 3 */

  /* (b) Far ahead: no advance, no skipped keys, no eviction of 1, 2, 3. */
  CHECK_OK(peek_then(&t, &u, 5, SECRET_TREE_APPLICATION, 900, false, &x, &y));
  CHECK_ERR(peek_then(&t, &u, 5, SECRET_TREE_APPLICATION, 1006, false, &x, &y),
            TSR_EWINDOW);
  CHECK_OK(peek_then(&t, &u, 5, SECRET_TREE_APPLICATION, 7, false, &x, &y));
  CHECK_OK(secret_tree_peek(&t, 5, SECRET_TREE_APPLICATION, 7, &k));
  CHECK(same_keys(&k, &ref[7]));
  secret_tree_get_stats(&t, &st);
  CHECK_INT(st.kept_keys, 3);

  /* (c) A skipped generation stays kept until consumed. */
  CHECK_OK(peek_then(&t, &u, 5, SECRET_TREE_APPLICATION, 2, false, &x, &y));
  CHECK_OK(secret_tree_peek(&t, 5, SECRET_TREE_APPLICATION, 2, &k));
  CHECK(same_keys(&k, &ref[2]));
  CHECK_OK(peek_then(&t, &u, 5, SECRET_TREE_APPLICATION, 2, true, &x, &y));
  CHECK_ERR(peek_then(&t, &u, 5, SECRET_TREE_APPLICATION, 4, true, &x, &y), TSR_EREPLAY);

  /* Consuming the far jump now keeps 897..899 and evicts 1 and 3. */
  CHECK_OK(peek_then(&t, &u, 5, SECRET_TREE_APPLICATION, 900, true, &x, &y));
  CHECK_ERR(peek_then(&t, &u, 5, SECRET_TREE_APPLICATION, 3, true, &x, &y), TSR_EWINDOW);
  CHECK_OK(peek_then(&t, &u, 5, SECRET_TREE_APPLICATION, 898, true, &x, &y));
  secret_tree_get_stats(&t, &st);
  CHECK_INT(st.kept_keys, 2);
  CHECK_OK(peek_then(&t, &u, 5, SECRET_TREE_HANDSHAKE, 0, true, &x, &y));
  CHECK_ERR(peek_then(&t, &u, 8, SECRET_TREE_HANDSHAKE, 0, true, &x, &y), TSR_EINVAL);
  secret_tree_free(&t);
  secret_tree_free(&u);

  /* Scripted mix, also with max_skipped 0: every peek leaves t unchanged,
   * and peek + consume always equals get. */
  for (uint32_t ms = 0; ms < 5 && !test_failing(); ms += 4) {
    cfg = (secret_tree_config){.max_ahead = 20, .max_skipped = ms};
    CHECK_OK(secret_tree_init(&t, s, BYTES(secret32, 32), 8, &cfg));
    CHECK_OK(secret_tree_init(&u, s, BYTES(secret32, 32), 8, &cfg));
    uint32_t seed = 7 + ms;
    for (int i = 0; i < 400 && !test_failing(); i++) {
      seed = seed * 1103515245u + 12345u;
      uint32_t leaf = (seed >> 8) % 8, type = (seed >> 4) & 1;
      uint32_t gen = (seed >> 12) % 48;
      peek_then(&t, &u, leaf, (secret_tree_type)type, gen, (seed >> 20) % 3 != 0, &x, &y);
    }
    secret_tree_free(&t);
    secret_tree_free(&u);
  }
  secret_tree_keys_wipe(&k);
  buf_free_secret(&x);
  buf_free_secret(&y);
}

/* Lazy derivation: memory follows the leaves used, and parents go away. */
static void test_large_tree(void) {
  const mls_suite *s = mls_suite_get(1);
  const uint32_t n = 4096;
  secret_tree t;
  secret_tree_stats st;
  secret_tree_keys k;
  CHECK_OK(secret_tree_init(&t, s, BYTES(secret32, 32), n, NULL));
  secret_tree_get_stats(&t, &st);
  CHECK_INT(st.node_secrets, 1);
  CHECK_OK(secret_tree_get(&t, 1234, SECRET_TREE_APPLICATION, 0, &k));
  secret_tree_get_stats(&t, &st);
  CHECK_INT(st.node_secrets, 12); /* the copath of leaf 1234 */
  CHECK_INT(st.leaves, 1);
  CHECK_OK(secret_tree_get(&t, 1235, SECRET_TREE_APPLICATION, 0, &k));
  secret_tree_get_stats(&t, &st);
  CHECK_INT(st.node_secrets, 11);
  CHECK_INT(st.leaves, 2);
  for (uint32_t l = 0; l < n; l++) {
    if (secret_tree_next(&t, l, SECRET_TREE_HANDSHAKE, &k) != 0) {
      CHECK(0);
      break;
    }
  }
  secret_tree_get_stats(&t, &st);
  CHECK_INT(st.node_secrets, 0); /* every tree secret consumed */
  CHECK_INT(st.leaves, n);
  /* Same keys as a fresh tree that derives the leaf directly. */
  secret_tree u;
  secret_tree_keys k2;
  CHECK_OK(secret_tree_init(&u, s, BYTES(secret32, 32), n, NULL));
  CHECK_OK(secret_tree_get(&u, 4000, SECRET_TREE_HANDSHAKE, 1, &k2));
  CHECK_OK(secret_tree_get(&t, 4000, SECRET_TREE_HANDSHAKE, 1, &k));
  CHECK(same_keys(&k, &k2));
  secret_tree_free(&u);
  secret_tree_free(&t);
  secret_tree_free(&t); /* idempotent */
}

static void test_init_errors(void) {
  const mls_suite *s = mls_suite_get(1);
  secret_tree t;
  CHECK_ERR(secret_tree_init(&t, s, BYTES(secret32, 32), 0, NULL), TSR_EINVAL);
  CHECK_ERR(secret_tree_init(&t, s, BYTES(secret32, 32), 3, NULL), TSR_EINVAL);
  CHECK_ERR(secret_tree_init(&t, s, BYTES(secret32, 16), 4, NULL), TSR_EINVAL);
  CHECK_OK(secret_tree_init(&t, s, BYTES(secret32, 32), 1, NULL));
  secret_tree_keys k;
  CHECK_OK(secret_tree_get(&t, 0, SECRET_TREE_HANDSHAKE, 0, &k));
  secret_tree_free(&t);
}

/* Sender data key: the sample is the first Nh bytes, or all of a short
 * ciphertext. */
static void test_sender_data_sample(void) {
  const mls_suite *s = mls_suite_get(1);
  uint8_t ct[40], k1[MLS_MAX_AEAD_KEY], n1[MLS_MAX_NONCE], k2[MLS_MAX_AEAD_KEY],
      n2[MLS_MAX_NONCE];
  for (int i = 0; i < 40; i++) ct[i] = (uint8_t)i;
  CHECK_OK(secret_tree_sender_data_key(s, BYTES(secret32, 32), BYTES(ct, 40), k1, n1));
  CHECK_OK(secret_tree_sender_data_key(s, BYTES(secret32, 32), BYTES(ct, 32), k2, n2));
  CHECK(memcmp(k1, k2, s->key_len) == 0 && memcmp(n1, n2, s->nonce_len) == 0);
  CHECK_OK(secret_tree_sender_data_key(s, BYTES(secret32, 32), BYTES(ct, 5), k2, n2));
  uint8_t want[MLS_MAX_AEAD_KEY];
  CHECK_OK(mls_expand_with_label(s, BYTES(secret32, 32), "key", BYTES(ct, 5), want,
                                 s->key_len));
  CHECK(memcmp(k2, want, s->key_len) == 0);
  CHECK_ERR(secret_tree_sender_data_key(s, BYTES(secret32, 31), BYTES(ct, 5), k2, n2),
            TSR_EINVAL);
}

/* A scripted mix of operations; results are logged to compare trees. */
static void drive(secret_tree *t, uint32_t seed, buf_t *log) {
  for (int i = 0; i < 200; i++) {
    seed = seed * 1103515245u + 12345u;
    uint32_t leaf = (seed >> 8) % 16, type = (seed >> 4) & 1, op = (seed >> 20) % 4;
    uint32_t gen = (seed >> 12) % 40;
    secret_tree_keys k = {0};
    int rc;
    if (op == 0)
      rc = secret_tree_next(t, leaf, (secret_tree_type)type, &k);
    else if (op == 1)
      rc = secret_tree_peek(t, leaf, (secret_tree_type)type, gen, &k);
    else if (op == 2)
      rc = secret_tree_consume(t, leaf, (secret_tree_type)type, gen);
    else
      rc = secret_tree_get(t, leaf, (secret_tree_type)type, gen, &k);
    wr_u32(log, (uint32_t)rc);
    wr_raw(log, BYTES(&k, sizeof k));
  }
}

static void test_serialize_roundtrip(void) {
  const mls_suite *s = mls_suite_get(3);
  secret_tree_config cfg = {.max_ahead = 30, .max_skipped = 7};
  secret_tree a, b;
  CHECK_OK(secret_tree_init(&a, s, BYTES(secret32, 32), 16, &cfg));
  buf_t la, lb, sa, sb;
  buf_init(&la);
  buf_init(&lb);
  buf_init(&sa);
  buf_init(&sb);
  drive(&a, 1, &la);
  buf_reset(&la);
  CHECK_OK(secret_tree_serialize(&a, &sa));
  CHECK_OK(secret_tree_deserialize(&b, buf_view(&sa)));
  CHECK_INT(b.cfg.max_ahead, 30);
  CHECK_INT(b.cfg.max_skipped, 7);
  CHECK_OK(secret_tree_serialize(&b, &sb));
  CHECK_BYTES(buf_view(&sb), buf_view(&sa)); /* canonical */
  secret_tree_stats x, y;
  secret_tree_get_stats(&a, &x);
  secret_tree_get_stats(&b, &y);
  CHECK(x.kept_keys > 0);
  CHECK(memcmp(&x, &y, sizeof x) == 0);
  /* Both behave identically from here on. */
  drive(&a, 2, &la);
  drive(&b, 2, &lb);
  CHECK_BYTES(buf_view(&la), buf_view(&lb));

  /* Every truncation and trailing garbage are refused. */
  secret_tree c;
  for (size_t len = 0; len < sa.len; len++)
    CHECK_ERR(secret_tree_deserialize(&c, BYTES(sa.ptr, len)), TSR_EDECODE);
  buf_append(&sa, "x", 1);
  CHECK_ERR(secret_tree_deserialize(&c, buf_view(&sa)), TSR_EDECODE);
  sa.len--;
  sa.ptr[0] = 9;
  CHECK_ERR(secret_tree_deserialize(&c, buf_view(&sa)), TSR_EUNSUPPORTED);
  sa.ptr[0] = 1;
  sa.ptr[2] = 0x77; /* suite */
  CHECK_ERR(secret_tree_deserialize(&c, buf_view(&sa)), TSR_EUNSUPPORTED);

  secret_tree_free(&a);
  secret_tree_free(&b);
  buf_free_secret(&la);
  buf_free_secret(&lb);
  buf_free_secret(&sa);
  buf_free_secret(&sb);
}

/* Hand-made state: one leaf whose handshake ratchet is at the last
 * generation, optionally with the root secret still present. */
static void make_state(buf_t *w, bool with_root, uint64_t next) {
  wr_u8(w, 1);
  wr_u16(w, 1);
  wr_u32(w, 1); /* one leaf: node 0 is leaf and root */
  wr_u32(w, 10);
  wr_u32(w, 10);
  size_t m = wr_vec_begin(w);
  if (with_root) {
    wr_u32(w, 0);
    wr_raw(w, BYTES(secret32, 32));
  }
  wr_vec_end(w, m);
  m = wr_vec_begin(w);
  wr_u32(w, 0);
  for (int t = 0; t < 2; t++) {
    wr_u64(w, t == 0 ? next : 0);
    wr_u64(w, 0);
    wr_raw(w, BYTES(secret32, 32));
    size_t km = wr_vec_begin(w);
    wr_vec_end(w, km);
  }
  wr_vec_end(w, m);
}

static void test_crafted_states(void) {
  buf_t w;
  buf_init(&w);
  secret_tree t;
  secret_tree_keys k;
  make_state(&w, false, UINT32_MAX);
  CHECK_OK(secret_tree_deserialize(&t, buf_view(&w)));
  CHECK_OK(secret_tree_next(&t, 0, SECRET_TREE_HANDSHAKE, &k));
  CHECK_INT(k.generation, UINT32_MAX);
  CHECK_ERR(secret_tree_next(&t, 0, SECRET_TREE_HANDSHAKE, &k), TSR_ELIMIT);
  CHECK_ERR(secret_tree_get(&t, 0, SECRET_TREE_HANDSHAKE, UINT32_MAX, &k), TSR_EREPLAY);
  uint32_t g;
  CHECK_ERR(secret_tree_next_generation(&t, 0, SECRET_TREE_HANDSHAKE, &g), TSR_ELIMIT);
  buf_t again;
  buf_init(&again);
  CHECK_OK(secret_tree_serialize(&t, &again));
  secret_tree_free(&t);
  CHECK_OK(secret_tree_deserialize(&t, buf_view(&again)));
  CHECK_ERR(secret_tree_next(&t, 0, SECRET_TREE_HANDSHAKE, &k), TSR_ELIMIT);
  secret_tree_free(&t);
  buf_free_secret(&again);
  /* A leaf with ratchets under a still-present node secret would hand out
   * its keys twice: refused. */
  buf_reset(&w);
  make_state(&w, true, 0);
  CHECK_ERR(secret_tree_deserialize(&t, buf_view(&w)), TSR_EDECODE);
  buf_reset(&w);
  make_state(&w, false, (UINT64_C(1) << 32) + 1);
  CHECK_ERR(secret_tree_deserialize(&t, buf_view(&w)), TSR_EDECODE);
  buf_free_secret(&w);
}

int main(void) {
  if (crypto_init() != 0) {
    fprintf(stderr, "crypto_init failed\n");
    return 1;
  }
  RUN(test_vectors_secret_tree);
  RUN(test_out_of_order_and_replay);
  RUN(test_window);
  RUN(test_eviction);
  RUN(test_peek_consume);
  RUN(test_peek_no_side_effects);
  RUN(test_large_tree);
  RUN(test_init_errors);
  RUN(test_sender_data_sample);
  RUN(test_serialize_roundtrip);
  RUN(test_crafted_states);
  return test_report("secret_tree");
}
