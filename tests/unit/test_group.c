/* Group state machine: members creating, adding, joining, messaging,
 * updating, removing; commit races; external joins and senders;
 * persistence; refusals that leave the group working. */
#include <stdlib.h>
#include <string.h>

#include "mls/crypto.h"
#include "mls/group.h"
#include "test.h"

#define GID "test-group"

typedef struct {
  group_identity *id;
  mls_group *g;
} member;

static group_identity *ident(uint16_t suite, const char *name) {
  group_identity *id = NULL;
  CHECK_OK(group_identity_new(suite, BYTES(name, strlen(name)), &id));
  return id;
}

static void member_free(member *m) {
  group_free(m->g);
  group_identity_free(m->id);
  memset(m, 0, sizeof *m);
}

/* Same epoch and epoch authenticator. */
static bool in_sync(const mls_group *a, const mls_group *b) {
  uint8_t x[MLS_MAX_HASH], y[MLS_MAX_HASH];
  size_t xl, yl;
  group_epoch_authenticator(a, x, &xl);
  group_epoch_authenticator(b, y, &yl);
  return group_epoch(a) == group_epoch(b) && bytes_eq(BYTES(x, xl), BYTES(y, yl));
}

/* Creator adds a new member `name`: commit, merge, join from the Welcome. */
static int add_member(member *creator, member *joiner, uint16_t suite, const char *name,
                      buf_t *commit_out) {
  joiner->id = ident(suite, name);
  buf_t kp, commit, welcome;
  buf_init(&kp);
  buf_init(&commit);
  buf_init(&welcome);
  kp_secret *ks = NULL;
  int rc = kp_create(joiner->id, 0, 0, &kp, &ks);
  bytes_t kpv = buf_view(&kp);
  group_commit_params p = {.add_key_packages = &kpv, .n_adds = 1};
  if (!rc) rc = group_commit(creator->g, &p, &commit, &welcome);
  if (!rc) rc = group_merge_pending(creator->g);
  if (!rc)
    rc = group_join(joiner->id, NULL, &ks, 1, buf_view(&welcome), BYTES_NONE, NULL, 0,
                    NULL, NULL, &joiner->g);
  if (!rc && commit_out) rc = buf_set(commit_out, buf_view(&commit));
  kp_secret_free(ks);
  buf_free(&kp);
  buf_free(&commit);
  buf_free(&welcome);
  return rc;
}

/* from protects pt, to must get it back. */
static void check_message(member *from, member *to, const char *pt) {
  buf_t m;
  buf_init(&m);
  CHECK_OK(group_protect(from->g, BYTES(pt, strlen(pt)), BYTES("ad", 2), &m));
  group_event ev;
  group_event_init(&ev);
  CHECK_OK(group_process(to->g, buf_view(&m), &ev));
  CHECK_INT(ev.type, GROUP_EVENT_APPLICATION);
  CHECK_INT(ev.sender, group_own_leaf(from->g));
  CHECK_BYTES(buf_view(&ev.data), BYTES(pt, strlen(pt)));
  CHECK_BYTES(buf_view(&ev.authenticated_data), BYTES("ad", 2));
  group_event_clear(&ev);
  buf_free(&m);
}

static int deliver(member *to, const buf_t *msg, int want_type) {
  group_event ev;
  group_event_init(&ev);
  int rc = group_process(to->g, buf_view(msg), &ev);
  if (!rc && ev.type != want_type) rc = TSR_EPROTOCOL;
  group_event_clear(&ev);
  return rc;
}

static void lifecycle(uint16_t suite) {
  member a = {0}, b = {0}, c = {0};
  a.id = ident(suite, "alice");
  CHECK_OK(group_create(a.id, NULL, BYTES(GID, strlen(GID)), NULL, &a.g));
  CHECK_OK(add_member(&a, &b, suite, "bob", NULL));
  if (test_failing()) goto out;
  CHECK(in_sync(a.g, b.g));
  CHECK_INT(group_epoch(b.g), 1);
  check_message(&a, &b, "hello bob");
  check_message(&b, &a, "hello alice");

  /* Bob adds Carol; Alice follows the commit. */
  buf_t commit;
  buf_init(&commit);
  CHECK_OK(add_member(&b, &c, suite, "carol", &commit));
  CHECK_OK(deliver(&a, &commit, GROUP_EVENT_COMMIT));
  CHECK(in_sync(a.g, b.g) && in_sync(a.g, c.g));
  check_message(&c, &a, "hi from carol");

  /* Alice proposes an Update; Carol commits it by reference. */
  buf_t prop, welcome;
  buf_init(&prop);
  buf_init(&welcome);
  CHECK_OK(group_propose_update(a.g, &prop));
  CHECK_OK(deliver(&b, &prop, GROUP_EVENT_PROPOSAL));
  CHECK_OK(deliver(&c, &prop, GROUP_EVENT_PROPOSAL));
  buf_reset(&commit);
  CHECK_OK(group_commit(c.g, NULL, &commit, &welcome));
  CHECK_INT(welcome.len, 0);
  CHECK_OK(group_process(c.g, buf_view(&commit), NULL)); /* own commit merges */
  CHECK_OK(deliver(&a, &commit, GROUP_EVENT_COMMIT));
  CHECK_OK(deliver(&b, &commit, GROUP_EVENT_COMMIT));
  CHECK(in_sync(a.g, b.g) && in_sync(a.g, c.g));
  check_message(&a, &c, "after update");

  /* An empty commit (path required) by Bob. */
  buf_reset(&commit);
  CHECK_OK(group_commit(b.g, NULL, &commit, NULL));
  CHECK_OK(group_merge_pending(b.g));
  CHECK_OK(deliver(&a, &commit, GROUP_EVENT_COMMIT));
  CHECK_OK(deliver(&c, &commit, GROUP_EVENT_COMMIT));
  CHECK(in_sync(a.g, b.g) && in_sync(a.g, c.g));

  /* Alice removes Bob. */
  buf_reset(&commit);
  uint32_t leaf;
  CHECK_OK(group_find_member(a.g, BYTES("bob", 3), &leaf));
  group_commit_params rp = {.remove_leaves = &leaf, .n_removes = 1};
  CHECK_OK(group_commit(a.g, &rp, &commit, NULL));
  CHECK_OK(group_merge_pending(a.g));
  CHECK_OK(deliver(&b, &commit, GROUP_EVENT_REMOVED));
  CHECK(!group_is_active(b.g));
  CHECK_OK(deliver(&c, &commit, GROUP_EVENT_COMMIT));
  CHECK(in_sync(a.g, c.g));
  CHECK_ERR(group_find_member(c.g, BYTES("bob", 3), &leaf), TSR_ENOTFOUND);
  check_message(&c, &a, "bob is gone");
  uint8_t x1[32], x2[32];
  CHECK_OK(group_export(a.g, "label", BYTES("ctx", 3), x1, 32));
  CHECK_OK(group_export(c.g, "label", BYTES("ctx", 3), x2, 32));
  CHECK_BYTES(BYTES(x1, 32), BYTES(x2, 32));
  buf_free(&prop);
  buf_free(&welcome);
  buf_free(&commit);
out:
  member_free(&a);
  member_free(&b);
  member_free(&c);
}

static void test_lifecycle_suite1(void) {
  lifecycle(MLS_SUITE_X25519_AES128GCM_SHA256_ED25519);
}
static void test_lifecycle_suite3(void) {
  lifecycle(MLS_SUITE_X25519_CHACHA20POLY1305_SHA256_ED25519);
}

/* Two members commit in one epoch: the DS takes Alice's; Bob discards
 * his own and processes the winner. */
static void test_commit_race(void) {
  uint16_t suite = 1;
  member a = {0}, b = {0};
  a.id = ident(suite, "alice");
  CHECK_OK(group_create(a.id, NULL, BYTES(GID, strlen(GID)), NULL, &a.g));
  CHECK_OK(add_member(&a, &b, suite, "bob", NULL));
  if (test_failing()) goto out;
  buf_t ca, cb;
  buf_init(&ca);
  buf_init(&cb);
  CHECK_OK(group_commit(a.g, NULL, &ca, NULL));
  CHECK_OK(group_commit(b.g, NULL, &cb, NULL));
  CHECK_ERR(group_commit(b.g, NULL, &cb, NULL), TSR_ESTATE); /* one pending at a time */
  /* Messages still flow in the old epoch while commits are pending. */
  check_message(&a, &b, "still epoch 1");
  CHECK_OK(deliver(&b, &ca, GROUP_EVENT_COMMIT)); /* drops Bob's pending */
  CHECK(!group_has_pending(b.g));
  CHECK_OK(deliver(&a, &ca, GROUP_EVENT_COMMIT)); /* Alice's own: merges */
  CHECK(in_sync(a.g, b.g));
  CHECK_INT(group_epoch(a.g), 2);
  /* The loser's commit is now for an old epoch. */
  CHECK_ERR(deliver(&a, &cb, GROUP_EVENT_COMMIT), TSR_EEPOCH);
  check_message(&b, &a, "consistent");
  buf_free(&ca);
  buf_free(&cb);
out:
  member_free(&a);
  member_free(&b);
}

static void test_external_join(void) {
  uint16_t suite = 3;
  member a = {0}, b = {0}, c = {0};
  a.id = ident(suite, "alice");
  CHECK_OK(group_create(a.id, NULL, BYTES(GID, strlen(GID)), NULL, &a.g));
  CHECK_OK(add_member(&a, &b, suite, "bob", NULL));
  if (test_failing()) goto out;
  buf_t gi, commit;
  buf_init(&gi);
  buf_init(&commit);
  CHECK_OK(group_info(a.g, true, &gi));
  c.id = ident(suite, "carol");
  CHECK_OK(group_external_join(c.id, NULL, buf_view(&gi), BYTES_NONE, UINT32_MAX, NULL, 0,
                               &commit, &c.g));
  if (test_failing()) goto out2;
  CHECK_OK(deliver(&a, &commit, GROUP_EVENT_COMMIT));
  CHECK_OK(deliver(&b, &commit, GROUP_EVENT_COMMIT));
  CHECK(in_sync(a.g, c.g) && in_sync(b.g, c.g));
  check_message(&c, &b, "joined externally");
  check_message(&a, &c, "welcome carol");
  /* Carol rejoins externally, removing her old leaf. */
  member c2 = {0};
  buf_reset(&gi);
  buf_reset(&commit);
  CHECK_OK(group_info(b.g, true, &gi));
  CHECK_OK(group_identity_clone(c.id, &c2.id));
  CHECK_OK(group_external_join(c2.id, NULL, buf_view(&gi), BYTES_NONE,
                               group_own_leaf(c.g), NULL, 0, &commit, &c2.g));
  if (!test_failing()) {
    CHECK_OK(deliver(&a, &commit, GROUP_EVENT_COMMIT));
    CHECK_OK(deliver(&b, &commit, GROUP_EVENT_COMMIT));
    CHECK_OK(deliver(&c, &commit, GROUP_EVENT_REMOVED));
    CHECK(in_sync(a.g, c2.g));
    check_message(&c2, &a, "resynced");
  }
  member_free(&c2);
out2:
  buf_free(&gi);
  buf_free(&commit);
out:
  member_free(&a);
  member_free(&b);
  member_free(&c);
}

/* The server (an external sender) proposes removing a device; a member
 * commits it. */
static void test_external_sender_remove(void) {
  uint16_t suite = 1;
  mls_sig_key server;
  CHECK_OK(crypto_sig_generate(&server));
  mls_external_sender es = {.signature_key = BYTES(server.pk, MLS_SIG_PK),
                            .credential = {.credential_type = MLS_CREDENTIAL_BASIC,
                                           .identity = BYTES("server", 6)}};
  mls_external_senders list = {.items = &es, .n = 1};
  buf_t esb;
  buf_init(&esb);
  msg_encode_external_senders(&esb, &list);
  mls_extension x = {.extension_type = MLS_EXT_EXTERNAL_SENDERS,
                     .extension_data = buf_view(&esb)};
  mls_extensions exts = {.items = &x, .n = 1};
  member a = {0}, b = {0}, c = {0};
  a.id = ident(suite, "alice");
  CHECK_OK(group_create(a.id, NULL, BYTES(GID, strlen(GID)), &exts, &a.g));
  CHECK_OK(add_member(&a, &b, suite, "bob", NULL));
  buf_t commit, prop;
  buf_init(&commit);
  buf_init(&prop);
  CHECK_OK(add_member(&a, &c, suite, "carol", &commit));
  if (test_failing()) goto out;
  CHECK_OK(deliver(&b, &commit, GROUP_EVENT_COMMIT));
  uint32_t carol;
  CHECK_OK(group_find_member(a.g, BYTES("carol", 5), &carol));
  CHECK_OK(group_external_propose_remove(group_suite(a.g), &server, 0, group_id(a.g),
                                         group_epoch(a.g), carol, &prop));
  CHECK_OK(deliver(&a, &prop, GROUP_EVENT_PROPOSAL));
  CHECK_OK(deliver(&b, &prop, GROUP_EVENT_PROPOSAL));
  CHECK_OK(deliver(&c, &prop, GROUP_EVENT_PROPOSAL));
  /* A proposal signed by someone else as sender 0 is refused. */
  mls_sig_key rogue;
  CHECK_OK(crypto_sig_generate(&rogue));
  buf_t bad;
  buf_init(&bad);
  CHECK_OK(group_external_propose_remove(group_suite(a.g), &rogue, 0, group_id(a.g),
                                         group_epoch(a.g), carol, &bad));
  CHECK_ERR(deliver(&a, &bad, GROUP_EVENT_PROPOSAL), TSR_EVERIFY);
  buf_free(&bad);
  crypto_sig_wipe(&rogue);
  buf_reset(&commit);
  CHECK_OK(group_commit(b.g, NULL, &commit, NULL));
  CHECK_OK(group_merge_pending(b.g));
  CHECK_OK(deliver(&a, &commit, GROUP_EVENT_COMMIT));
  CHECK_OK(deliver(&c, &commit, GROUP_EVENT_REMOVED));
  CHECK(in_sync(a.g, b.g));
  CHECK_INT(group_find_member(a.g, BYTES("carol", 5), &carol), TSR_ENOTFOUND);
  check_message(&a, &b, "server removed carol");
out:
  buf_free(&commit);
  buf_free(&prop);
  buf_free(&esb);
  crypto_sig_wipe(&server);
  member_free(&a);
  member_free(&b);
  member_free(&c);
}

static void test_save_load(void) {
  uint16_t suite = 1;
  member a = {0}, b = {0};
  a.id = ident(suite, "alice");
  CHECK_OK(group_create(a.id, NULL, BYTES(GID, strlen(GID)), NULL, &a.g));
  CHECK_OK(add_member(&a, &b, suite, "bob", NULL));
  if (test_failing()) goto out;
  check_message(&a, &b, "before save");
  buf_t prop, st, commit;
  buf_init(&prop);
  buf_init(&st);
  buf_init(&commit);
  /* State with a cached proposal and a used ratchet. */
  CHECK_OK(group_propose_update(b.g, &prop));
  CHECK_OK(deliver(&a, &prop, GROUP_EVENT_PROPOSAL));
  CHECK_OK(group_save(a.g, &st));
  mls_group *a2 = NULL;
  CHECK_OK(group_load(buf_view(&st), &a2));
  if (!a2) goto out2;
  buf_t st2;
  buf_init(&st2);
  CHECK_OK(group_save(a2, &st2));
  CHECK_BYTES(buf_view(&st), buf_view(&st2));
  buf_free_secret(&st2);
  CHECK(in_sync(a.g, a2));
  CHECK_INT(group_pending_proposals(a2), 1);
  /* Swap in the loaded state and carry on. */
  group_free(a.g);
  a.g = a2;
  check_message(&b, &a, "after load");
  CHECK_OK(group_commit(a.g, NULL, &commit, NULL));
  CHECK_OK(group_merge_pending(a.g));
  CHECK_OK(deliver(&b, &commit, GROUP_EVENT_COMMIT));
  CHECK(in_sync(a.g, b.g));
  check_message(&a, &b, "new epoch");
  /* Corrupt state is refused. */
  st.ptr[0] ^= 1;
  mls_group *bad = NULL;
  CHECK_ERR(group_load(buf_view(&st), &bad), TSR_EDECODE);
  st.ptr[0] ^= 1;
  CHECK_ERR(group_load(BYTES(st.ptr, st.len - 1), &bad), TSR_EDECODE);
out2:
  buf_free(&prop);
  buf_free_secret(&st);
  buf_free(&commit);
out:
  member_free(&a);
  member_free(&b);
}

static void test_refusals(void) {
  uint16_t suite = 1;
  member a = {0}, b = {0}, e = {0};
  a.id = ident(suite, "alice");
  CHECK_OK(group_create(a.id, NULL, BYTES(GID, strlen(GID)), NULL, &a.g));
  CHECK_OK(add_member(&a, &b, suite, "bob", NULL));
  if (test_failing()) goto out;
  buf_t m, old, commit;
  buf_init(&m);
  buf_init(&old);
  buf_init(&commit);
  /* Replay. */
  CHECK_OK(group_protect(a.g, BYTES("x", 1), BYTES_NONE, &m));
  CHECK_OK(deliver(&b, &m, GROUP_EVENT_APPLICATION));
  CHECK_ERR(deliver(&b, &m, GROUP_EVENT_APPLICATION), TSR_EREPLAY);
  check_message(&a, &b, "after replay");
  /* Forged ciphertext. */
  buf_reset(&m);
  CHECK_OK(group_protect(a.g, BYTES("y", 1), BYTES_NONE, &m));
  m.ptr[m.len - 1] ^= 1;
  CHECK_ERR(deliver(&b, &m, GROUP_EVENT_APPLICATION), TSR_EDECRYPT);
  m.ptr[m.len - 1] ^= 1;
  CHECK_OK(deliver(&b, &m, GROUP_EVENT_APPLICATION)); /* key was not burnt */
  /* Truncated. */
  CHECK_ERR(group_process(b.g, BYTES(m.ptr, m.len - 5), NULL), TSR_EDECODE);
  /* Forged signature on a PublicMessage commit. */
  CHECK_OK(group_commit(a.g, NULL, &commit, NULL));
  buf_t forged;
  buf_init(&forged);
  CHECK_OK(buf_set(&forged, buf_view(&commit)));
  /* Flip a byte inside the UpdatePath's leaf signature area (near the
   * end, before the confirmation tag and membership tag). */
  forged.ptr[forged.len - 2 * 33 - 10] ^= 0x40;
  int rc = deliver(&b, &forged, GROUP_EVENT_COMMIT);
  CHECK(rc == TSR_EVERIFY);
  buf_free(&forged);
  CHECK_INT(group_epoch(b.g), 1);
  buf_reset(&old);
  CHECK_OK(group_protect(b.g, BYTES("old", 3), BYTES_NONE, &old)); /* epoch 1 */
  CHECK_OK(deliver(&b, &commit, GROUP_EVENT_COMMIT));
  CHECK_OK(group_merge_pending(a.g));
  CHECK(in_sync(a.g, b.g));
  /* Wrong epoch: Bob's epoch-1 message arrives after the commit. */
  CHECK_ERR(deliver(&a, &old, GROUP_EVENT_APPLICATION), TSR_EEPOCH);
  check_message(&b, &a, "after wrong epoch");
  /* Wrong group. */
  member o = {0};
  o.id = ident(suite, "other");
  CHECK_OK(group_create(o.id, NULL, BYTES("other-group", 11), NULL, &o.g));
  buf_reset(&m);
  CHECK_OK(group_protect(o.g, BYTES("z", 1), BYTES_NONE, &m));
  CHECK_ERR(deliver(&a, &m, GROUP_EVENT_APPLICATION), TSR_EGROUP);
  member_free(&o);
  check_message(&b, &a, "after wrong group");
  /* A commit from a non-member: Eve runs a group with the same id up to
   * our epoch and commits as leaf 0. */
  e.id = ident(suite, "eve");
  CHECK_OK(group_create(e.id, NULL, BYTES(GID, strlen(GID)), NULL, &e.g));
  while (!test_failing() && group_epoch(e.g) < group_epoch(a.g)) {
    buf_reset(&commit);
    CHECK_OK(group_commit(e.g, NULL, &commit, NULL));
    CHECK_OK(group_merge_pending(e.g));
  }
  buf_reset(&commit);
  CHECK_OK(group_commit(e.g, NULL, &commit, NULL));
  rc = deliver(&a, &commit, GROUP_EVENT_COMMIT);
  CHECK(rc == TSR_EVERIFY || rc == TSR_ESENDER);
  check_message(&b, &a, "after non-member commit");
  /* Add of an expired KeyPackage. */
  group_identity *dave = ident(suite, "dave");
  kp_secret *ks = NULL;
  buf_t kp;
  buf_init(&kp);
  CHECK_OK(kp_create(dave, 100000, 10, &kp, &ks));
  bytes_t kpv = buf_view(&kp);
  group_commit_params p = {.add_key_packages = &kpv, .n_adds = 1};
  buf_reset(&commit);
  buf_t w;
  buf_init(&w);
  CHECK_ERR(group_commit(a.g, &p, &commit, &w), TSR_EEXPIRED);
  CHECK_ERR(group_propose_add(a.g, kpv, &commit), TSR_EEXPIRED);
  CHECK(!group_has_pending(a.g));
  check_message(&a, &b, "after expired add");
  kp_secret_free(ks);
  group_identity_free(dave);
  buf_free(&kp);
  buf_free(&w);
  buf_free(&m);
  buf_free(&old);
  buf_free(&commit);
out:
  member_free(&a);
  member_free(&b);
  member_free(&e);
}

static void test_key_package(void) {
  group_identity *id = ident(1, "kp");
  kp_secret *ks = NULL;
  buf_t kp, enc;
  buf_init(&kp);
  buf_init(&enc);
  CHECK_OK(kp_create(id, 0, 0, &kp, &ks));
  arena_t a;
  arena_init(&a);
  mls_key_package k;
  CHECK_OK(kp_decode_validate(id->suite, buf_view(&kp), &a, 0, &k));
  CHECK_ERR(kp_decode_validate(mls_suite_get(3), buf_view(&kp), &a, 0, &k),
            TSR_EUNSUPPORTED);
  CHECK_OK(kp_secret_encode(ks, &enc));
  kp_secret *ks2 = NULL;
  CHECK_OK(kp_secret_decode(buf_view(&enc), &ks2));
  CHECK(ks2 && memcmp(ks2->init_sk, ks->init_sk, MLS_KEM_SK) == 0);
  kp.ptr[kp.len - 3] ^= 1; /* signature */
  CHECK_ERR(kp_decode_validate(id->suite, buf_view(&kp), &a, 0, &k), TSR_EVERIFY);
  arena_free(&a);
  kp_secret_free(ks);
  kp_secret_free(ks2);
  buf_free(&kp);
  buf_free_secret(&enc);
  group_identity_free(id);
}

/* --- Reinitialization and branching (§11.2, §11.3) ------------------------------ */

/* Alice creates a group and adds Bob and Carol (all in suite). */
static int three_members(member *a, member *b, member *c, uint16_t suite) {
  a->id = ident(suite, "alice");
  int rc = group_create(a->id, NULL, BYTES(GID, strlen(GID)), NULL, &a->g);
  if (!rc) rc = add_member(a, b, suite, "bob", NULL);
  buf_t commit;
  buf_init(&commit);
  if (!rc) rc = add_member(a, c, suite, "carol", &commit);
  if (!rc) rc = deliver(b, &commit, GROUP_EVENT_COMMIT);
  buf_free(&commit);
  return rc;
}

/* The same signing key and credential as id, for another suite. */
static group_identity *ident_for_suite(const group_identity *id, uint16_t suite) {
  group_identity *out = NULL;
  CHECK_OK(group_identity_from_seed(suite, BYTES(id->sig.seed, MLS_SIG_SEED),
                                    buf_view(&id->credential), &out));
  return out;
}

static bool exports_agree(const mls_group *x, const mls_group *y) {
  uint8_t ex[32], ey[32];
  if (group_export(x, "reinit", BYTES("ctx", 3), ex, 32) ||
      group_export(y, "reinit", BYTES("ctx", 3), ey, 32))
    return false;
  return memcmp(ex, ey, 32) == 0;
}

/* Index of the only occurrence of needle in hay, or SIZE_MAX. */
static size_t find_once(bytes_t hay, bytes_t needle) {
  size_t at = SIZE_MAX, count = 0;
  for (size_t i = 0; i + needle.len <= hay.len; i++)
    if (memcmp(hay.ptr + i, needle.ptr, needle.len) == 0) {
      at = i;
      count++;
    }
  return count == 1 ? at : SIZE_MAX;
}

#define NEW_GID "reinit-group-v2"

static void test_reinit(void) {
  const uint16_t s1 = MLS_SUITE_X25519_AES128GCM_SHA256_ED25519;
  const uint16_t s3 = MLS_SUITE_X25519_CHACHA20POLY1305_SHA256_ED25519;
  member a = {0}, b = {0}, c = {0}, a2 = {0}, b2 = {0}, c2 = {0};
  kp_secret *ksb = NULL, *ksc = NULL;
  mls_group *bad = NULL, *x = NULL, *cload = NULL;
  buf_t prop, commit, kpb, kpc, welcome, bad_welcome, st;
  buf_init(&prop);
  buf_init(&commit);
  buf_init(&kpb);
  buf_init(&kpc);
  buf_init(&welcome);
  buf_init(&bad_welcome);
  buf_init(&st);
  CHECK_OK(three_members(&a, &b, &c, s1));
  if (test_failing()) goto out;
  bytes_t new_gid = BYTES(NEW_GID, strlen(NEW_GID));
  CHECK_ERR(group_propose_reinit(a.g, new_gid, 0, 0x7777, NULL, &prop), TSR_EUNSUPPORTED);
  CHECK_ERR(group_propose_reinit(a.g, new_gid, 2, s3, NULL, &prop), TSR_EUNSUPPORTED);
  CHECK_INT(prop.len, 0);
  /* Alice proposes, Bob commits (the ReInit alone), everybody follows. */
  CHECK_OK(group_propose_reinit(a.g, new_gid, 0, s3, NULL, &prop));
  CHECK_OK(deliver(&b, &prop, GROUP_EVENT_PROPOSAL));
  CHECK_OK(deliver(&c, &prop, GROUP_EVENT_PROPOSAL));
  group_reinit_params rp;
  CHECK_ERR(group_reinit_info(b.g, &rp), TSR_ESTATE);
  CHECK_OK(group_commit(b.g, NULL, &commit, NULL));
  CHECK(group_is_active(b.g)); /* pending until merged */
  CHECK_OK(group_process(b.g, buf_view(&commit), NULL));
  CHECK_OK(deliver(&a, &commit, GROUP_EVENT_COMMIT));
  CHECK_OK(deliver(&c, &commit, GROUP_EVENT_COMMIT));
  if (test_failing()) goto out;
  CHECK(in_sync(a.g, b.g) && in_sync(a.g, c.g));
  uint64_t final_epoch = group_epoch(a.g);
  CHECK_INT(final_epoch, 3);
  member *old[] = {&a, &b, &c};
  for (size_t i = 0; i < 3; i++) {
    mls_group *g = old[i]->g;
    CHECK(!group_is_active(g));
    CHECK_OK(group_reinit_info(g, &rp));
    CHECK_BYTES(rp.group_id, new_gid);
    CHECK_INT(rp.cipher_suite, s3);
    CHECK_INT(rp.version, 1);
    CHECK_INT(rp.extensions->n, 0);
  }
  /* The old group is over. */
  buf_t m;
  buf_init(&m);
  CHECK_ERR(group_protect(a.g, BYTES("x", 1), BYTES_NONE, &m), TSR_ESTATE);
  CHECK_ERR(group_commit(c.g, NULL, &m, NULL), TSR_ESTATE);
  CHECK_ERR(group_propose_update(c.g, &m), TSR_ESTATE);
  CHECK_INT(m.len, 0);
  buf_free(&m);
  uint8_t r1[MLS_MAX_HASH], r2[MLS_MAX_HASH];
  size_t r1l = 0, r2l = 0;
  CHECK_OK(group_resumption_psk(a.g, final_epoch, r1, &r1l));
  CHECK_OK(group_resumption_psk(c.g, final_epoch, r2, &r2l));
  CHECK_BYTES(BYTES(r1, r1l), BYTES(r2, r2l));
  CHECK_ERR(group_resumption_psk(a.g, final_epoch + 1, r1, &r1l), TSR_ENOTFOUND);

  /* New identities and key packages for suite 3. */
  a2.id = ident_for_suite(a.id, s3);
  b2.id = ident_for_suite(b.id, s3);
  c2.id = ident_for_suite(c.id, s3);
  if (test_failing()) goto out;
  CHECK_OK(kp_create(b2.id, 0, 0, &kpb, &ksb));
  CHECK_OK(kp_create(c2.id, 0, 0, &kpc, &ksc));
  if (test_failing()) goto out;
  bytes_t kps[2] = {buf_view(&kpb), buf_view(&kpc)};
  /* Refusals before anything is created. */
  CHECK_ERR(group_reinit_create(a.g, a.id, NULL, kps, 2, &welcome, &x), TSR_EINVAL);
  CHECK_ERR(group_reinit_create(a.g, a2.id, NULL, kps, 1, &welcome, &x), TSR_EINVAL);
  CHECK_INT(welcome.len, 0);
  CHECK(x == NULL);

  /* A Welcome whose group does not match the ReInit: a copy of Alice's
   * old state with another group_id in its saved ReInit. */
  CHECK_OK(group_save(a.g, &st));
  size_t at = find_once(buf_view(&st), new_gid);
  CHECK(at != SIZE_MAX);
  if (test_failing()) goto out;
  st.ptr[at] ^= 1;
  CHECK_OK(group_load(buf_view(&st), &bad));
  if (test_failing()) goto out;
  CHECK_OK(group_reinit_create(bad, a2.id, NULL, kps, 2, &bad_welcome, &x));
  CHECK_ERR(group_join(b2.id, NULL, &ksb, 1, buf_view(&bad_welcome), BYTES_NONE, NULL, 0,
                       b.g, NULL, &b2.g),
            TSR_EPROTOCOL);
  CHECK(b2.g == NULL);
  group_free(x);
  x = NULL;

  /* The real successor. */
  CHECK_OK(group_reinit_create(a.g, a2.id, NULL, kps, 2, &welcome, &a2.g));
  if (test_failing()) goto out;
  CHECK_INT(group_epoch(a2.g), 1);
  CHECK_INT(group_suite(a2.g)->id, s3);
  CHECK_BYTES(group_id(a2.g), new_gid);
  /* Without the old group the PSK cannot be resolved. */
  CHECK_ERR(group_join(c2.id, NULL, &ksc, 1, buf_view(&welcome), BYTES_NONE, NULL, 0,
                       NULL, NULL, &x),
            TSR_ENOTFOUND);
  /* Nor with a group that is not the referenced one. */
  CHECK_ERR(group_join(c2.id, NULL, &ksc, 1, buf_view(&welcome), BYTES_NONE, NULL, 0,
                       a2.g, NULL, &x),
            TSR_ENOTFOUND);
  CHECK(x == NULL);
  CHECK_OK(group_join(b2.id, NULL, &ksb, 1, buf_view(&welcome), BYTES_NONE, NULL, 0, b.g,
                      NULL, &b2.g));
  /* Carol's old state went through save/load: the ReInit is kept. */
  CHECK_OK(group_clone(c.g, &cload));
  if (test_failing()) goto out;
  CHECK_OK(group_reinit_info(cload, &rp));
  CHECK_BYTES(rp.group_id, new_gid);
  CHECK_OK(group_join(c2.id, NULL, &ksc, 1, buf_view(&welcome), BYTES_NONE, NULL, 0,
                      cload, NULL, &c2.g));
  if (test_failing()) goto out;
  CHECK(in_sync(a2.g, b2.g) && in_sync(a2.g, c2.g));
  CHECK_INT(group_epoch(b2.g), 1);
  CHECK_INT(group_suite(c2.g)->id, s3);
  CHECK(exports_agree(a2.g, b2.g) && exports_agree(a2.g, c2.g));
  CHECK(!exports_agree(a2.g, a.g)); /* old group exports nothing */
  check_message(&a2, &b2, "new suite");
  check_message(&b2, &c2, "hi carol");
  check_message(&c2, &a2, "hi alice");
  /* The new group carries on normally. */
  buf_reset(&commit);
  CHECK_OK(group_commit(c2.g, NULL, &commit, NULL));
  CHECK_OK(group_merge_pending(c2.g));
  CHECK_OK(deliver(&a2, &commit, GROUP_EVENT_COMMIT));
  CHECK_OK(deliver(&b2, &commit, GROUP_EVENT_COMMIT));
  CHECK(in_sync(a2.g, b2.g) && in_sync(a2.g, c2.g));
out:
  kp_secret_free(ksb);
  kp_secret_free(ksc);
  group_free(bad);
  group_free(x);
  group_free(cload);
  buf_free(&prop);
  buf_free(&commit);
  buf_free(&kpb);
  buf_free(&kpc);
  buf_free(&welcome);
  buf_free(&bad_welcome);
  buf_free_secret(&st);
  member_free(&a);
  member_free(&b);
  member_free(&c);
  member_free(&a2);
  member_free(&b2);
  member_free(&c2);
}

/* ReInit alone (§12.2): by value, and a cached one yielding to others. */
static void test_reinit_commit_rules(void) {
  member a = {0}, b = {0}, c = {0};
  buf_t prop, upd, commit, kp;
  buf_init(&prop);
  buf_init(&upd);
  buf_init(&commit);
  buf_init(&kp);
  kp_secret *ks = NULL;
  CHECK_OK(three_members(&a, &b, &c, 1));
  if (test_failing()) goto out;
  /* Cached ReInit and an Update: the commit takes the Update only. */
  CHECK_OK(group_propose_reinit(a.g, BYTES("n", 1), 0, 1, NULL, &prop));
  CHECK_OK(group_propose_update(c.g, &upd));
  CHECK_OK(deliver(&b, &prop, GROUP_EVENT_PROPOSAL));
  CHECK_OK(deliver(&b, &upd, GROUP_EVENT_PROPOSAL));
  CHECK_OK(deliver(&a, &upd, GROUP_EVENT_PROPOSAL));
  CHECK_OK(deliver(&c, &prop, GROUP_EVENT_PROPOSAL));
  CHECK_OK(group_commit(b.g, NULL, &commit, NULL));
  CHECK_OK(group_merge_pending(b.g));
  CHECK_OK(deliver(&a, &commit, GROUP_EVENT_COMMIT));
  CHECK_OK(deliver(&c, &commit, GROUP_EVENT_COMMIT));
  CHECK(group_is_active(a.g) && group_is_active(b.g) && group_is_active(c.g));
  CHECK(in_sync(a.g, b.g) && in_sync(a.g, c.g));
  /* By value: nothing else may come along. */
  group_identity *d = ident(1, "dave");
  CHECK_OK(kp_create(d, 0, 0, &kp, &ks));
  bytes_t kpv = buf_view(&kp);
  group_reinit_params rp = {.group_id = BYTES("n2", 2), .cipher_suite = 1};
  group_commit_params bad = {.reinit = &rp, .add_key_packages = &kpv, .n_adds = 1};
  buf_reset(&commit);
  CHECK_ERR(group_commit(a.g, &bad, &commit, NULL), TSR_EINVAL);
  group_reinit_params rq = {.group_id = BYTES("n2", 2), .cipher_suite = 9};
  group_commit_params unsup = {.reinit = &rq};
  CHECK_ERR(group_commit(a.g, &unsup, &commit, NULL), TSR_EUNSUPPORTED);
  CHECK(!group_has_pending(a.g));
  CHECK_INT(commit.len, 0);
  group_commit_params good = {.reinit = &rp};
  CHECK_OK(group_commit(a.g, &good, &commit, NULL));
  /* Save/load keeps the pending ReInit. */
  mls_group *copy = NULL;
  CHECK_OK(group_clone(a.g, &copy));
  if (copy) {
    group_free(a.g);
    a.g = copy;
  }
  CHECK_OK(group_process(a.g, buf_view(&commit), NULL));
  CHECK_OK(deliver(&b, &commit, GROUP_EVENT_COMMIT));
  CHECK_OK(deliver(&c, &commit, GROUP_EVENT_COMMIT));
  CHECK(!group_is_active(a.g) && !group_is_active(b.g) && !group_is_active(c.g));
  group_reinit_params got;
  CHECK_OK(group_reinit_info(a.g, &got));
  CHECK_BYTES(got.group_id, BYTES("n2", 2));
  CHECK_OK(group_reinit_info(c.g, &got));
  CHECK_INT(got.cipher_suite, 1);
  group_identity_free(d);
out:
  kp_secret_free(ks);
  buf_free(&prop);
  buf_free(&upd);
  buf_free(&commit);
  buf_free(&kp);
  member_free(&a);
  member_free(&b);
  member_free(&c);
}

static void test_branch(void) {
  member a = {0}, b = {0}, c = {0}, ab = {0}, bb = {0};
  kp_secret *ksb = NULL, *ksd = NULL;
  mls_group *x = NULL;
  group_identity *d = NULL;
  buf_t kpb, kpd, welcome, commit;
  buf_init(&kpb);
  buf_init(&kpd);
  buf_init(&welcome);
  buf_init(&commit);
  CHECK_OK(three_members(&a, &b, &c, 1));
  if (test_failing()) goto out;
  uint64_t epoch = group_epoch(a.g);
  uint8_t auth_c[MLS_MAX_HASH];
  size_t auth_len;
  group_epoch_authenticator(c.g, auth_c, &auth_len);
  CHECK_OK(kp_create(b.id, 0, 0, &kpb, &ksb));
  d = ident(1, "dave");
  CHECK_OK(kp_create(d, 0, 0, &kpd, &ksd));
  if (test_failing()) goto out;
  bytes_t kpv = buf_view(&kpb), kdv = buf_view(&kpd);
  bytes_t bgid = BYTES("branch", 6);
  /* Only current members may be branched off. */
  CHECK_ERR(group_branch(a.g, NULL, bgid, &kdv, 1, &welcome, &x), TSR_EINVAL);
  CHECK_INT(welcome.len, 0);
  CHECK_OK(group_branch(a.g, NULL, bgid, &kpv, 1, &welcome, &ab.g));
  if (test_failing()) goto out;
  CHECK_INT(group_epoch(ab.g), 1);
  CHECK_BYTES(group_id(ab.g), bgid);
  CHECK_INT(group_leaf_count(ab.g), 2);
  CHECK_ERR(group_join(b.id, NULL, &ksb, 1, buf_view(&welcome), BYTES_NONE, NULL, 0, NULL,
                       NULL, &x),
            TSR_ENOTFOUND);
  CHECK_OK(group_join(b.id, NULL, &ksb, 1, buf_view(&welcome), BYTES_NONE, NULL, 0, b.g,
                      NULL, &bb.g));
  if (test_failing()) goto out;
  CHECK(in_sync(ab.g, bb.g));
  CHECK(exports_agree(ab.g, bb.g));
  check_message(&ab, &bb, "just us");
  check_message(&bb, &ab, "indeed");
  uint32_t leaf;
  CHECK_ERR(group_find_member(bb.g, BYTES("carol", 5), &leaf), TSR_ENOTFOUND);
  /* The parent group is untouched and goes on. */
  CHECK(group_is_active(a.g) && group_is_active(b.g) && group_is_active(c.g));
  CHECK_INT(group_epoch(a.g), epoch);
  uint8_t auth_a[MLS_MAX_HASH];
  group_epoch_authenticator(a.g, auth_a, &auth_len);
  CHECK_BYTES(BYTES(auth_a, auth_len), BYTES(auth_c, auth_len));
  CHECK(in_sync(a.g, b.g) && in_sync(a.g, c.g));
  CHECK(!exports_agree(ab.g, a.g));
  check_message(&c, &a, "still here");
  check_message(&b, &c, "me too");
  CHECK_OK(group_commit(c.g, NULL, &commit, NULL));
  CHECK_OK(group_merge_pending(c.g));
  CHECK_OK(deliver(&a, &commit, GROUP_EVENT_COMMIT));
  CHECK_OK(deliver(&b, &commit, GROUP_EVENT_COMMIT));
  CHECK(in_sync(a.g, b.g) && in_sync(a.g, c.g));
out:
  kp_secret_free(ksb);
  kp_secret_free(ksd);
  group_identity_free(d);
  group_free(x);
  buf_free(&kpb);
  buf_free(&kpd);
  buf_free(&welcome);
  buf_free(&commit);
  member_free(&a);
  member_free(&b);
  member_free(&c);
  member_free(&ab);
  member_free(&bb);
}

int main(void) {
  if (crypto_init() != 0) return 1;
  RUN(test_key_package);
  RUN(test_lifecycle_suite1);
  RUN(test_lifecycle_suite3);
  RUN(test_commit_race);
  RUN(test_external_join);
  RUN(test_external_sender_remove);
  RUN(test_save_load);
  RUN(test_refusals);
  RUN(test_reinit);
  RUN(test_reinit_commit_rules);
  RUN(test_branch);
  return test_report("group");
}
