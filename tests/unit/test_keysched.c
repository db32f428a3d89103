/* Key schedule: key-schedule.json, psk_secret.json, transcript-hashes.json
 * (suites 1 and 3) and argument handling. */
#include <stdlib.h>

#include "mls/codec.h"
#include "mls/crypto.h"
#include "mls/keysched.h"
#include "test.h"
#include "vectors.h"

static const int suites[] = {MLS_SUITE_X25519_AES128GCM_SHA256_ED25519,
                             MLS_SUITE_X25519_CHACHA20POLY1305_SHA256_ED25519};

/* Decodes hex member key of obj into b; fails the case when absent. */
static bytes_t hexv(const cJSON *obj, const char *key, buf_t *b) {
  int rc = vec_hex(obj, key, b);
  if (rc < 0) fprintf(stderr, "  missing or bad vector field %s\n", key);
  CHECK(rc >= 0);
  return buf_view(b);
}

#define NBUF 24

static void check_epoch(const mls_suite *s, const cJSON *ep, bytes_t group_id,
                        uint64_t epoch, keysched_epoch *ks, buf_t *h) {
  size_t nh = s->hash_len;
  bytes_t tree_hash = hexv(ep, "tree_hash", &h[0]);
  bytes_t commit = hexv(ep, "commit_secret", &h[1]);
  bytes_t psk = hexv(ep, "psk_secret", &h[2]);
  bytes_t cth = hexv(ep, "confirmed_transcript_hash", &h[3]);
  bytes_t want_gc = hexv(ep, "group_context", &h[4]);
  buf_t gc;
  buf_init(&gc);
  CHECK_OK(
      keysched_group_context(&gc, s->id, group_id, epoch, tree_hash, cth, BYTES_NONE));
  CHECK_BYTES(buf_view(&gc), want_gc);

  /* init_secret is the previous epoch's, read from ks itself: this also
   * exercises advancing a schedule in place. */
  keysched_epoch joiner_side = {0};
  CHECK_OK(keysched_derive(ks, s, keysched_view(ks, ks->init_secret), commit, psk,
                           buf_view(&gc)));
  static const struct {
    const char *name;
    size_t off;
  } fields[] = {
      {"joiner_secret", offsetof(keysched_epoch, joiner_secret)},
      {"welcome_secret", offsetof(keysched_epoch, welcome_secret)},
      {"init_secret", offsetof(keysched_epoch, init_secret)},
      {"sender_data_secret", offsetof(keysched_epoch, sender_data_secret)},
      {"encryption_secret", offsetof(keysched_epoch, encryption_secret)},
      {"exporter_secret", offsetof(keysched_epoch, exporter_secret)},
      {"epoch_authenticator", offsetof(keysched_epoch, epoch_authenticator)},
      {"external_secret", offsetof(keysched_epoch, external_secret)},
      {"confirmation_key", offsetof(keysched_epoch, confirmation_key)},
      {"membership_key", offsetof(keysched_epoch, membership_key)},
      {"resumption_psk", offsetof(keysched_epoch, resumption_psk)},
  };
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
    bytes_t want = hexv(ep, fields[i].name, &h[5]);
    bytes_t got = BYTES((const uint8_t *)ks + fields[i].off, nh);
    if (!bytes_eq(got, want))
      fprintf(stderr, "  epoch %llu: %s differs\n", (unsigned long long)epoch,
              fields[i].name);
    CHECK_BYTES(got, want);
  }

  /* A joiner from the Welcome reaches the same epoch. */
  CHECK_OK(keysched_from_joiner(&joiner_side, s, keysched_view(ks, ks->joiner_secret),
                                psk, buf_view(&gc)));
  CHECK(memcmp(&joiner_side, ks, sizeof *ks) == 0);
  uint8_t ws[MLS_MAX_HASH];
  CHECK_OK(keysched_welcome_secret(s, keysched_view(ks, ks->joiner_secret), psk, ws));
  CHECK_BYTES(BYTES(ws, nh), keysched_view(ks, ks->welcome_secret));
  keysched_wipe(&joiner_side);

  uint8_t pk[MLS_KEM_PK], sk[MLS_KEM_SK], pk2[MLS_KEM_PK];
  CHECK_OK(keysched_external_keypair(ks, sk, pk));
  CHECK_BYTES(BYTES(pk, MLS_KEM_PK), hexv(ep, "external_pub", &h[5]));
  CHECK_OK(crypto_dh_public(sk, pk2));
  CHECK_BYTES(BYTES(pk2, MLS_KEM_PK), BYTES(pk, MLS_KEM_PK));

  const cJSON *ex = cJSON_GetObjectItemCaseSensitive(ep, "exporter");
  CHECK(ex != NULL);
  if (ex) {
    /* The label is a plain string (it happens to look like hex). */
    const cJSON *lv = cJSON_GetObjectItemCaseSensitive(ex, "label");
    CHECK(cJSON_IsString(lv));
    const char *lstr = cJSON_IsString(lv) ? lv->valuestring : "";
    bytes_t label = BYTES(lstr, strlen(lstr));
    bytes_t ctx = hexv(ex, "context", &h[7]);
    bytes_t want = hexv(ex, "secret", &h[8]);
    long long len = vec_int(ex, "length");
    CHECK(len > 0 && len <= 1024);
    uint8_t out[1024];
    if (len > 0 && len <= 1024) {
      CHECK_OK(keysched_export(ks, label, ctx, out, (size_t)len));
      CHECK_BYTES(BYTES(out, (size_t)len), want);
    }
  }
  buf_free(&gc);
}

static int run_key_schedule(const cJSON *j, int suite) {
  const mls_suite *s = mls_suite_get((uint16_t)suite);
  CHECK(s != NULL);
  if (!s) return 0;
  int entries = 0, epochs = 0;
  buf_t h[NBUF];
  for (int i = 0; i < NBUF; i++) buf_init(&h[i]);
  const cJSON *e;
  cJSON_ArrayForEach(e, j) {
    if (!vec_suite_is(e, suite)) continue;
    buf_t gid, init;
    buf_init(&gid);
    buf_init(&init);
    bytes_t group_id = hexv(e, "group_id", &gid);
    bytes_t init0 = hexv(e, "initial_init_secret", &init);
    CHECK_INT(init0.len, s->hash_len);
    keysched_epoch ks = {.suite = s};
    if (init0.len == s->hash_len) memcpy(ks.init_secret, init0.ptr, init0.len);
    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(e, "epochs");
    CHECK(cJSON_IsArray(eps) && cJSON_GetArraySize(eps) > 0);
    uint64_t epoch = 0;
    const cJSON *ep;
    int before = test_failing();
    cJSON_ArrayForEach(ep, eps) {
      check_epoch(s, ep, group_id, epoch++, &ks, h);
      if (!test_failing()) epochs++;
    }
    if (!before && !test_failing()) entries++;
    keysched_wipe(&ks);
    buf_free(&gid);
    buf_free_secret(&init);
  }
  for (int i = 0; i < NBUF; i++) buf_free(&h[i]);
  printf("  key-schedule.json suite %d: %d epochs\n", suite, epochs);
  return entries;
}

static void test_vectors_key_schedule(void) {
  const char *why = NULL;
  cJSON *j = vec_load("mls/key-schedule.json", &why);
  if (!j) TEST_SKIP("%s", why);
  for (size_t i = 0; i < sizeof suites / sizeof suites[0]; i++) {
    int count = run_key_schedule(j, suites[i]);
    vec_report("key-schedule.json", suites[i], count);
    CHECK(count > 0);
  }
  cJSON_Delete(j);
}

/* PreSharedKeyID with psktype external (1). */
static void encode_external_psk_id(buf_t *w, bytes_t psk_id, bytes_t nonce) {
  wr_u8(w, 1);
  wr_opaque(w, psk_id);
  wr_opaque(w, nonce);
}

static void test_vectors_psk_secret(void) {
  const char *why = NULL;
  cJSON *j = vec_load("mls/psk_secret.json", &why);
  if (!j) TEST_SKIP("%s", why);
  for (size_t si = 0; si < sizeof suites / sizeof suites[0]; si++) {
    const mls_suite *s = mls_suite_get((uint16_t)suites[si]);
    CHECK(s != NULL);
    if (!s) continue;
    int count = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, j) {
      if (!vec_suite_is(e, suites[si])) continue;
      const cJSON *arr = cJSON_GetObjectItemCaseSensitive(e, "psks");
      size_t n = (size_t)cJSON_GetArraySize(arr);
      buf_t *ids = calloc(n + 1, sizeof *ids), *vals = calloc(n + 1, sizeof *vals);
      keysched_psk *psks = calloc(n + 1, sizeof *psks);
      CHECK(ids && vals && psks);
      if (!ids || !vals || !psks) {
        free(ids);
        free(vals);
        free(psks);
        break;
      }
      buf_t id, nonce, want;
      buf_init(&id);
      buf_init(&nonce);
      buf_init(&want);
      size_t i = 0;
      const cJSON *p;
      cJSON_ArrayForEach(p, arr) {
        encode_external_psk_id(&ids[i], hexv(p, "psk_id", &id),
                               hexv(p, "psk_nonce", &nonce));
        psks[i].id = buf_view(&ids[i]);
        psks[i].value = hexv(p, "psk", &vals[i]);
        i++;
      }
      uint8_t out[MLS_MAX_HASH];
      int before = test_failing();
      CHECK_OK(keysched_psk_secret(s, psks, n, out));
      CHECK_BYTES(BYTES(out, s->hash_len), hexv(e, "psk_secret", &want));
      if (!before && !test_failing()) count++;
      for (i = 0; i < n; i++) {
        buf_free(&ids[i]);
        buf_free(&vals[i]);
      }
      free(ids);
      free(vals);
      free(psks);
      buf_free(&id);
      buf_free(&nonce);
      buf_free(&want);
    }
    vec_report("psk_secret.json", suites[si], count);
    CHECK(count > 0);
  }
  cJSON_Delete(j);
}

/* transcript-hashes.json: AuthenticatedContent of a commit ends with its
 * confirmation_tag<V> (Nh bytes, one-byte header); everything before it is
 * the ConfirmedTranscriptHashInput, the tag vector the Interim input. */
static void test_vectors_transcript(void) {
  const char *why = NULL;
  cJSON *j = vec_load("mls/transcript-hashes.json", &why);
  if (!j) TEST_SKIP("%s", why);
  for (size_t si = 0; si < sizeof suites / sizeof suites[0]; si++) {
    const mls_suite *s = mls_suite_get((uint16_t)suites[si]);
    if (!s) continue;
    size_t nh = s->hash_len;
    int count = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, j) {
      if (!vec_suite_is(e, suites[si])) continue;
      buf_t b[5];
      for (int i = 0; i < 5; i++) buf_init(&b[i]);
      bytes_t ck = hexv(e, "confirmation_key", &b[0]);
      bytes_t ac = hexv(e, "authenticated_content", &b[1]);
      bytes_t interim0 = hexv(e, "interim_transcript_hash_before", &b[2]);
      bytes_t want_c = hexv(e, "confirmed_transcript_hash_after", &b[3]);
      bytes_t want_i = hexv(e, "interim_transcript_hash_after", &b[4]);
      int before = test_failing();
      CHECK(ac.len > nh + 1 && ac.ptr[ac.len - nh - 1] == nh);
      if (ac.len > nh + 1) {
        bytes_t cin = BYTES(ac.ptr, ac.len - nh - 1);
        bytes_t iin = BYTES(ac.ptr + cin.len, nh + 1);
        uint8_t c[MLS_MAX_HASH], in[MLS_MAX_HASH], tag[MLS_MAX_HASH];
        CHECK_OK(keysched_confirmed_hash(s, interim0, cin, c));
        CHECK_BYTES(BYTES(c, nh), want_c);
        CHECK_OK(keysched_interim_hash(s, BYTES(c, nh), iin, in));
        CHECK_BYTES(BYTES(in, nh), want_i);
        keysched_epoch ks = {.suite = s};
        CHECK_INT(ck.len, nh);
        if (ck.len == nh) memcpy(ks.confirmation_key, ck.ptr, nh);
        CHECK_OK(keysched_confirmation_tag(&ks, BYTES(c, nh), tag));
        CHECK_BYTES(BYTES(tag, nh), BYTES(iin.ptr + 1, nh));
        keysched_wipe(&ks);
      }
      if (!before && !test_failing()) count++;
      for (int i = 0; i < 5; i++) buf_free(&b[i]);
    }
    vec_report("transcript-hashes.json", suites[si], count);
    CHECK(count > 0);
  }
  cJSON_Delete(j);
}

static void test_zero_defaults(void) {
  const mls_suite *s = mls_suite_get(1);
  size_t nh = s->hash_len;
  uint8_t zero[MLS_MAX_HASH] = {0};
  const uint8_t gc[] = {1, 2, 3};
  keysched_epoch a = {0}, b = {0};
  CHECK_OK(keysched_derive(&a, s, BYTES_NONE, BYTES_NONE, BYTES_NONE, BYTES(gc, 3)));
  CHECK_OK(keysched_derive(&b, s, BYTES(zero, nh), BYTES(zero, nh), BYTES(zero, nh),
                           BYTES(gc, 3)));
  CHECK(memcmp(&a, &b, sizeof a) == 0);
  uint8_t psk[MLS_MAX_HASH] = {1};
  CHECK_OK(keysched_psk_secret(s, NULL, 0, psk));
  CHECK_BYTES(BYTES(psk, nh), BYTES(zero, nh));
  /* Wrong secret sizes are refused and leave the schedule untouched. */
  CHECK_ERR(keysched_derive(&a, s, BYTES(zero, 5), BYTES_NONE, BYTES_NONE, BYTES(gc, 3)),
            TSR_EINVAL);
  CHECK(memcmp(&a, &b, sizeof a) == 0);
  CHECK_ERR(keysched_from_joiner(&a, s, BYTES_NONE, BYTES_NONE, BYTES(gc, 3)),
            TSR_EINVAL);
  keysched_wipe(&a);
  CHECK(a.suite == NULL);
  CHECK_BYTES(BYTES(a.init_secret, nh), BYTES(zero, nh));
  keysched_forget_joiner(&b);
  CHECK_BYTES(BYTES(b.joiner_secret, nh), BYTES(zero, nh));
  CHECK_BYTES(BYTES(b.welcome_secret, nh), BYTES(zero, nh));
  keysched_wipe(&b);
}

static void test_group_context_extensions(void) {
  buf_t gc;
  buf_init(&gc);
  const uint8_t ext[] = {0x00, 0x0a, 0x02, 0xaa, 0xbb}; /* one Extension */
  CHECK_OK(keysched_group_context(&gc, 3, BYTES("g", 1), 0x0102030405060708ull,
                                  BYTES_NONE, BYTES_NONE, BYTES(ext, sizeof ext)));
  const uint8_t want[] = {0, 1, 0, 3, 1, 'g', 1,    2,    3,    4,    5,
                          6, 7, 8, 0, 0, 5,   0x00, 0x0a, 0x02, 0xaa, 0xbb};
  CHECK_BYTES(buf_view(&gc), BYTES(want, sizeof want));
  buf_free(&gc);
}

static void test_exporter_labels(void) {
  const mls_suite *s = mls_suite_get(3);
  keysched_epoch ks = {0};
  CHECK_OK(keysched_derive(&ks, s, BYTES_NONE, BYTES_NONE, BYTES_NONE, BYTES("x", 1)));
  uint8_t a[64], b[64], c[64];
  /* Labels are bytes: an embedded NUL must matter. */
  CHECK_OK(keysched_export(&ks, BYTES("a\0b", 3), BYTES_NONE, a, sizeof a));
  CHECK_OK(keysched_export(&ks, BYTES("a", 1), BYTES_NONE, b, sizeof b));
  CHECK_OK(keysched_export(&ks, BYTES("a\0b", 3), BYTES("ctx", 3), c, sizeof c));
  CHECK(memcmp(a, b, sizeof a) != 0);
  CHECK(memcmp(a, c, sizeof a) != 0);
  uint8_t big[1];
  CHECK_ERR(keysched_export(&ks, BYTES("a", 1), BYTES_NONE, big, 255 * 32 + 1),
            TSR_EINVAL);
  uint8_t key[MLS_MAX_AEAD_KEY], nonce[MLS_MAX_NONCE];
  CHECK_OK(keysched_welcome_key(s, keysched_view(&ks, ks.welcome_secret), key, nonce));
  keysched_wipe(&ks);
}

int main(void) {
  if (crypto_init() != 0) {
    fprintf(stderr, "crypto_init failed\n");
    return 1;
  }
  RUN(test_vectors_key_schedule);
  RUN(test_vectors_psk_secret);
  RUN(test_vectors_transcript);
  RUN(test_zero_defaults);
  RUN(test_group_context_extensions);
  RUN(test_exporter_labels);
  return test_report("keysched");
}
