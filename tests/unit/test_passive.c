/* Group state machine against the official vectors: Welcome and the
 * passive-client scenarios (join, then follow every epoch). */
#define GROUP_INTERNAL
#include <stdlib.h>
#include <string.h>

#include "mls/crypto.h"
#include "mls/group.h"
#include "mls/keysched.h"
#include "test.h"
#include "vectors.h"

static int hex_of(const cJSON *o, const char *k, buf_t *b) {
  buf_reset(b);
  int rc = vec_hex(o, k, b);
  return rc < 0 ? rc : 0;
}

/* welcome.json: decrypt, verify the signature and the confirmation tag. */
static void run_welcome(int suite) {
  const char *why = NULL;
  cJSON *j = vec_load("mls/welcome.json", &why);
  if (!j) TEST_SKIP("%s", why);
  int count = 0;
  buf_t init_priv, signer_pub, kpb, wb;
  buf_init(&init_priv);
  buf_init(&signer_pub);
  buf_init(&kpb);
  buf_init(&wb);
  const cJSON *e;
  cJSON_ArrayForEach(e, j) {
    if (!vec_suite_is(e, suite)) continue;
    const mls_suite *s = mls_suite_get((uint16_t)suite);
    CHECK_OK(hex_of(e, "init_priv", &init_priv));
    CHECK_OK(hex_of(e, "signer_pub", &signer_pub));
    CHECK_OK(hex_of(e, "key_package", &kpb));
    CHECK_OK(hex_of(e, "welcome", &wb));
    if (test_failing()) break;
    kp_secret ks;
    memset(&ks, 0, sizeof ks);
    ks.suite = s;
    buf_init(&ks.key_package);
    CHECK_OK(buf_set(&ks.key_package, buf_view(&kpb)));
    memcpy(ks.init_sk, init_priv.ptr, MLS_KEM_SK);
    arena_t a;
    arena_init(&a);
    mls_message m;
    CHECK_OK(msg_decode_message(buf_view(&wb), &a, &m));
    mls_group_secrets gs;
    mls_group_info gi;
    uint8_t psk[MLS_MAX_HASH];
    int rc = welcome_open(&ks, &m.welcome, NULL, 0, NULL, &a, &gs, &gi, psk);
    CHECK_OK(rc);
    if (!rc) {
      CHECK_OK(welcome_verify_group_info(s, &gi, buf_view(&signer_pub)));
      buf_t gc;
      buf_init(&gc);
      msg_encode_group_context(&gc, &gi.group_context);
      keysched_epoch ke;
      CHECK_OK(keysched_from_joiner(&ke, s, gs.joiner_secret, BYTES_NONE, buf_view(&gc)));
      uint8_t tag[MLS_MAX_HASH];
      CHECK_OK(keysched_confirmation_tag(&ke, gi.group_context.confirmed_transcript_hash,
                                         tag));
      CHECK_BYTES(BYTES(tag, s->hash_len), gi.confirmation_tag);
      keysched_wipe(&ke);
      buf_free(&gc);
    }
    buf_free(&ks.key_package);
    arena_free(&a);
    if (test_failing()) break;
    count++;
  }
  buf_free(&init_priv);
  buf_free(&signer_pub);
  buf_free(&kpb);
  buf_free(&wb);
  cJSON_Delete(j);
  vec_report("mls/welcome.json", suite, count);
  CHECK(count > 0);
}

/* One passive-client entry; returns 0 when every epoch matched. */
static int run_passive_entry(const cJSON *e, int index) {
  int suite = (int)vec_int(e, "cipher_suite");
  const mls_suite *s = mls_suite_get((uint16_t)suite);
  buf_t kpb, sig_priv, enc_priv, init_priv, wb, tree, auth, msg;
  buf_init(&kpb);
  buf_init(&sig_priv);
  buf_init(&enc_priv);
  buf_init(&init_priv);
  buf_init(&wb);
  buf_init(&tree);
  buf_init(&auth);
  buf_init(&msg);
  group_identity *id = NULL;
  kp_secret *ks = NULL;
  mls_group *g = NULL;
  group_psk psks[16];
  buf_t psk_bufs[32];
  size_t n_psks = 0;
  int rc = 0;
  const char *stage = "inputs";
  arena_t a;
  arena_init(&a);
  if (hex_of(e, "key_package", &kpb) || hex_of(e, "signature_priv", &sig_priv) ||
      hex_of(e, "encryption_priv", &enc_priv) || hex_of(e, "init_priv", &init_priv) ||
      hex_of(e, "welcome", &wb) || hex_of(e, "ratchet_tree", &tree) ||
      hex_of(e, "initial_epoch_authenticator", &auth))
    rc = TSR_EDECODE;
  const cJSON *ps = cJSON_GetObjectItemCaseSensitive(e, "external_psks");
  const cJSON *p;
  cJSON_ArrayForEach(p, ps) {
    if (n_psks == 16) break;
    buf_init(&psk_bufs[2 * n_psks]);
    buf_init(&psk_bufs[2 * n_psks + 1]);
    hex_of(p, "psk_id", &psk_bufs[2 * n_psks]);
    hex_of(p, "psk", &psk_bufs[2 * n_psks + 1]);
    psks[n_psks].id = buf_view(&psk_bufs[2 * n_psks]);
    psks[n_psks].secret = buf_view(&psk_bufs[2 * n_psks + 1]);
    n_psks++;
  }
  /* Identity from the signing key and the KeyPackage's credential. */
  mls_message m;
  if (!rc) rc = msg_decode_message(buf_view(&kpb), &a, &m);
  buf_t cred;
  buf_init(&cred);
  if (!rc) {
    msg_encode_credential(&cred, &m.key_package.leaf_node.credential);
    stage = "identity";
    rc = group_identity_from_seed((uint16_t)suite, buf_view(&sig_priv), buf_view(&cred),
                                  &id);
  }
  if (!rc) {
    stage = "kp secret";
    rc = kp_secret_from_parts(buf_view(&kpb), buf_view(&init_priv), buf_view(&enc_priv),
                              &ks);
  }
  group_config cfgv;
  memset(&cfgv, 0, sizeof cfgv);
  if (!rc) {
    stage = "join";
    rc = group_join(id, &cfgv, &ks, 1, buf_view(&wb), buf_view(&tree), psks, n_psks, NULL,
                    NULL, &g);
  }
  uint8_t ea[MLS_MAX_HASH];
  size_t ea_len = 0;
  if (!rc) {
    group_epoch_authenticator(g, ea, &ea_len);
    if (!bytes_eq(BYTES(ea, ea_len), buf_view(&auth))) {
      stage = "initial epoch authenticator";
      rc = TSR_EVERIFY;
    }
  }
  const cJSON *epochs = cJSON_GetObjectItemCaseSensitive(e, "epochs");
  int ei = 0;
  const cJSON *ep;
  cJSON_ArrayForEach(ep, epochs) {
    if (rc) break;
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(ep, "proposals");
    const cJSON *pr;
    cJSON_ArrayForEach(pr, props) {
      if (rc) break;
      buf_reset(&msg);
      if (!cJSON_IsString(pr) || hex_decode(pr->valuestring, &msg)) {
        rc = TSR_EDECODE;
        break;
      }
      group_event ev;
      group_event_init(&ev);
      stage = "proposal";
      rc = group_process(g, buf_view(&msg), &ev);
      group_event_clear(&ev);
    }
    if (rc) break;
    stage = "commit";
    if (hex_of(ep, "commit", &msg)) rc = TSR_EDECODE;
    group_event ev;
    group_event_init(&ev);
    if (!rc) rc = group_process(g, buf_view(&msg), &ev);
    if (!rc && ev.type != GROUP_EVENT_COMMIT) rc = TSR_EPROTOCOL;
    group_event_clear(&ev);
    if (!rc && hex_of(ep, "epoch_authenticator", &auth)) rc = TSR_EDECODE;
    if (!rc) {
      group_epoch_authenticator(g, ea, &ea_len);
      if (!bytes_eq(BYTES(ea, ea_len), buf_view(&auth))) {
        stage = "epoch authenticator";
        rc = TSR_EVERIFY;
      }
    }
    if (!rc) ei++;
  }
  if (rc)
    fprintf(stderr, "  entry %d (suite %d): %s at %s, epoch %d\n", index, suite,
            tsr_errname(rc), stage, ei);
  (void)s;
  group_free(g);
  kp_secret_free(ks);
  group_identity_free(id);
  for (size_t i = 0; i < 2 * n_psks; i++) buf_free(&psk_bufs[i]);
  buf_free(&cred);
  buf_free(&kpb);
  buf_free(&sig_priv);
  buf_free(&enc_priv);
  buf_free(&init_priv);
  buf_free(&wb);
  buf_free(&tree);
  buf_free(&auth);
  buf_free(&msg);
  arena_free(&a);
  return rc;
}

static void run_passive(const char *file, int suite) {
  const char *why = NULL;
  cJSON *j = vec_load(file, &why);
  if (!j) TEST_SKIP("%s", why);
  int count = 0, failed = 0, index = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, j) {
    if (vec_suite_is(e, suite)) {
      if (run_passive_entry(e, index) == 0)
        count++;
      else
        failed++;
    }
    index++;
  }
  cJSON_Delete(j);
  vec_report(file, suite, count);
  CHECK_INT(failed, 0);
  CHECK(count > 0);
}

static void test_welcome_suite1(void) { run_welcome(1); }
static void test_welcome_suite3(void) { run_welcome(3); }
static void test_passive_welcome_suite1(void) {
  run_passive("mls/passive-client-welcome.json", 1);
}
static void test_passive_welcome_suite3(void) {
  run_passive("mls/passive-client-welcome.json", 3);
}
static void test_passive_commit_suite1(void) {
  run_passive("mls/passive-client-handling-commit.json", 1);
}
static void test_passive_commit_suite3(void) {
  run_passive("mls/passive-client-handling-commit.json", 3);
}
static void test_passive_random_suite1(void) {
  run_passive("mls/passive-client-random.json", 1);
}

int main(void) {
  if (crypto_init() != 0) return 1;
  RUN(test_welcome_suite1);
  RUN(test_welcome_suite3);
  RUN(test_passive_welcome_suite1);
  RUN(test_passive_welcome_suite3);
  RUN(test_passive_commit_suite1);
  RUN(test_passive_commit_suite3);
  RUN(test_passive_random_suite1);
  return test_report("passive");
}
