/* The Delivery Service's observer (mls/observer.h) follows real groups:
 * after every handshake message its GroupContext and interim transcript
 * hash must equal the members' (so it verifies the next signatures exactly
 * as they do), its roster must be theirs, and every refusal — forged
 * signature, wrong group or epoch, a second commit for an epoch, a
 * truncated message, a handshake hidden in a PrivateMessage — must leave
 * it byte-for-byte unchanged. */
#define GROUP_INTERNAL
#include <stdlib.h>
#include <string.h>

#include "mls/crypto.h"
#include "mls/group.h"
#include "mls/observer.h"
#include "test.h"

#define GID "observed-group"

typedef struct {
  group_identity *id;
  mls_group *g;
} member;

static void member_free(member *m) {
  group_free(m->g);
  group_identity_free(m->id);
  memset(m, 0, sizeof *m);
}

static group_identity *ident(uint16_t suite, const char *name) {
  group_identity *id = NULL;
  CHECK_OK(group_identity_new(suite, BYTES(name, strlen(name)), &id));
  return id;
}

/* The observer sees what member m sees of the current epoch. */
static bool same_view(const mls_group *o, const member *m) {
  size_t h = group_suite(m->g)->hash_len;
  return group_epoch(o) == group_epoch(m->g) &&
         bytes_eq(observer_group_context(o), buf_view(&m->g->ep.gc)) &&
         memcmp(o->ep.interim_th, m->g->ep.interim_th, h) == 0 &&
         group_leaf_count(o) == group_leaf_count(m->g);
}

static bool saved_equal(const mls_group *o, const buf_t *before) {
  buf_t now;
  buf_init(&now);
  bool eq = observer_save(o, &now) == 0 && bytes_eq(buf_view(&now), buf_view(before));
  buf_free(&now);
  return eq;
}

/* Processing msg must fail with want and change nothing. */
static void refused(mls_group *o, bytes_t msg, int want) {
  buf_t before;
  buf_init(&before);
  CHECK_OK(observer_save(o, &before));
  observer_event ev;
  CHECK_ERR(observer_process(o, msg, &ev), want);
  CHECK(saved_equal(o, &before));
  buf_free(&before);
}

static int process(mls_group *o, const buf_t *msg, uint8_t want_type) {
  observer_event ev;
  int rc = observer_process(o, buf_view(msg), &ev);
  if (!rc && ev.content_type != want_type) rc = TSR_EPROTOCOL;
  return rc;
}

/* creator commits an Add of a new member `name`, who joins. */
static int add(member *creator, member *joiner, uint16_t suite, const char *name,
               buf_t *commit) {
  joiner->id = ident(suite, name);
  buf_t kp, welcome;
  buf_init(&kp);
  buf_init(&welcome);
  kp_secret *ks = NULL;
  buf_reset(commit);
  int rc = kp_create(joiner->id, 0, 0, &kp, &ks);
  bytes_t kpv = buf_view(&kp);
  group_commit_params p = {.add_key_packages = &kpv, .n_adds = 1};
  if (!rc) rc = group_commit(creator->g, &p, commit, &welcome);
  if (!rc) rc = group_merge_pending(creator->g);
  if (!rc)
    rc = group_join(joiner->id, NULL, &ks, 1, buf_view(&welcome), BYTES_NONE, NULL, 0,
                    NULL, NULL, &joiner->g);
  kp_secret_free(ks);
  buf_free(&kp);
  buf_free(&welcome);
  return rc;
}

static int deliver(member *to, const buf_t *msg) {
  return group_process(to->g, buf_view(msg), NULL);
}

static void follow(uint16_t suite) {
  member a = {0}, b = {0}, c = {0}, d = {0};
  mls_group *o = NULL, *o2 = NULL;
  buf_t gi, commit, other, prop, saved;
  buf_init(&gi);
  buf_init(&commit);
  buf_init(&other);
  buf_init(&prop);
  buf_init(&saved);
  a.id = ident(suite, "alice");
  CHECK_OK(group_create(a.id, NULL, BYTES(GID, strlen(GID)), NULL, &a.g));
  /* The creator hands the server its epoch-0 GroupInfo. */
  CHECK_OK(group_info(a.g, true, &gi));
  CHECK_OK(observer_new(buf_view(&gi), BYTES_NONE, NULL, &o));
  if (test_failing()) goto out;
  CHECK(same_view(o, &a));

  /* Alice adds Bob; Bob adds Carol; Alice follows. */
  CHECK_OK(add(&a, &b, suite, "bob", &commit));
  CHECK_OK(process(o, &commit, MLS_CONTENT_COMMIT));
  CHECK(same_view(o, &a) && same_view(o, &b));
  CHECK_OK(add(&b, &c, suite, "carol", &commit));
  CHECK_OK(deliver(&a, &commit));
  observer_event ev;
  CHECK_OK(observer_process(o, buf_view(&commit), &ev));
  CHECK_INT(ev.sender, group_own_leaf(b.g));
  CHECK_INT(ev.epoch, 1);
  CHECK(same_view(o, &c));
  uint32_t leaf;
  CHECK_OK(group_find_member(o, BYTES("carol", 5), &leaf));
  CHECK_INT(leaf, group_own_leaf(c.g));
  if (test_failing()) goto out;

  /* Application data: checked for group and epoch only. */
  buf_reset(&other);
  CHECK_OK(group_protect(c.g, BYTES("hi", 2), BYTES_NONE, &other));
  CHECK_OK(observer_process(o, buf_view(&other), &ev));
  CHECK_INT(ev.wire_format, MLS_WIRE_PRIVATE_MESSAGE);
  CHECK_INT(ev.content_type, MLS_CONTENT_APPLICATION);
  CHECK_INT(ev.epoch, 2);

  /* An Update proposal, committed by reference by Carol. */
  CHECK_OK(group_propose_update(a.g, &prop));
  CHECK_OK(observer_process(o, buf_view(&prop), &ev));
  CHECK_INT(ev.proposal_type, MLS_PROPOSAL_UPDATE);
  CHECK_INT(ev.sender, group_own_leaf(a.g));
  CHECK_OK(deliver(&b, &prop));
  CHECK_OK(deliver(&c, &prop));
  buf_reset(&commit);
  CHECK_OK(group_commit(c.g, NULL, &commit, NULL));
  CHECK_OK(group_merge_pending(c.g));
  CHECK_OK(deliver(&a, &commit));
  CHECK_OK(deliver(&b, &commit));
  CHECK_OK(process(o, &commit, MLS_CONTENT_COMMIT));
  CHECK(same_view(o, &a) && same_view(o, &c));
  /* The old epoch's application message is now refused. */
  refused(o, buf_view(&other), TSR_EEPOCH);

  /* Two commits for one epoch: the first wins, the second is stale. */
  buf_reset(&commit);
  buf_reset(&other);
  CHECK_OK(group_commit(b.g, NULL, &commit, NULL));
  CHECK_OK(group_commit(c.g, NULL, &other, NULL));
  CHECK_OK(process(o, &commit, MLS_CONTENT_COMMIT));
  refused(o, buf_view(&other), TSR_EEPOCH);
  CHECK_OK(group_merge_pending(b.g));
  group_discard_pending(c.g);
  CHECK_OK(deliver(&a, &commit));
  CHECK_OK(deliver(&c, &commit));
  CHECK(same_view(o, &a) && same_view(o, &c));
  refused(o, buf_view(&commit), TSR_EEPOCH); /* replayed */

  /* Forged and broken commits for the current epoch. */
  buf_reset(&commit);
  CHECK_OK(group_commit(a.g, NULL, &commit, NULL));
  size_t h = group_suite(a.g)->hash_len;
  /* ... || signature<V> (64) || confirmation_tag<V> || membership_tag<V> */
  size_t sig_at = commit.len - 2 * (1 + h) - 20;
  commit.ptr[sig_at] ^= 0x40;
  refused(o, buf_view(&commit), TSR_EVERIFY);
  commit.ptr[sig_at] ^= 0x40;
  refused(o, BYTES(commit.ptr, commit.len - 5), TSR_EDECODE);
  refused(o, BYTES(commit.ptr, 3), TSR_EDECODE);
  refused(o, BYTES("\x00\x01\x00\x05garbage", 11), TSR_EDECODE);
  /* The intact commit still goes through after all that. */
  CHECK_OK(process(o, &commit, MLS_CONTENT_COMMIT));
  CHECK_OK(group_merge_pending(a.g));
  CHECK_OK(deliver(&b, &commit));
  CHECK_OK(deliver(&c, &commit));
  CHECK(same_view(o, &b));

  /* Persistence: a reloaded observer goes on following. */
  CHECK_OK(observer_save(o, &saved));
  CHECK_OK(observer_load(buf_view(&saved), &o2));
  if (test_failing()) goto out;
  CHECK(same_view(o2, &a));
  CHECK_ERR(observer_load(BYTES(saved.ptr, saved.len - 1), &o2), TSR_EDECODE);

  /* Alice removes Bob: the roster follows. */
  buf_reset(&commit);
  CHECK_OK(group_find_member(a.g, BYTES("bob", 3), &leaf));
  group_commit_params rp = {.remove_leaves = &leaf, .n_removes = 1};
  CHECK_OK(group_commit(a.g, &rp, &commit, NULL));
  CHECK_OK(group_merge_pending(a.g));
  CHECK_OK(deliver(&c, &commit));
  CHECK_OK(process(o2, &commit, MLS_CONTENT_COMMIT));
  CHECK(same_view(o2, &c));
  CHECK_ERR(group_find_member(o2, BYTES("bob", 3), &leaf), TSR_ENOTFOUND);

  /* Dave joins by external commit; the observer learns his leaf. */
  buf_reset(&gi);
  buf_reset(&commit);
  CHECK_OK(group_info(c.g, true, &gi));
  d.id = ident(suite, "dave");
  CHECK_OK(group_external_join(d.id, NULL, buf_view(&gi), BYTES_NONE, UINT32_MAX, NULL, 0,
                               &commit, &d.g));
  if (test_failing()) goto out;
  CHECK_OK(observer_process(o2, buf_view(&commit), &ev));
  CHECK_INT(ev.sender_type, MLS_SENDER_NEW_MEMBER_COMMIT);
  CHECK_INT(ev.sender, group_own_leaf(d.g));
  CHECK_OK(deliver(&a, &commit));
  CHECK(same_view(o2, &d) && same_view(o2, &a));
  bytes_t who;
  CHECK_OK(group_member(o2, ev.sender, &who));
  CHECK_BYTES(who, BYTES("dave", 4));

  /* A message for another group. */
  member x = {0};
  x.id = ident(suite, "xavier");
  CHECK_OK(group_create(x.id, NULL, BYTES("elsewhere", 9), NULL, &x.g));
  buf_reset(&other);
  CHECK_OK(group_commit(x.g, NULL, &other, NULL));
  refused(o2, buf_view(&other), TSR_EGROUP);
  member_free(&x);
  /* An observer answers TSR_ESTATE to member operations, never crashes. */
  buf_reset(&other);
  CHECK_ERR(group_protect(o2, BYTES("x", 1), BYTES_NONE, &other), TSR_ESTATE);
  CHECK_ERR(group_commit(o2, NULL, &other, NULL), TSR_ESTATE);
  CHECK_ERR(group_process(o2, buf_view(&commit), NULL), TSR_ESTATE);
out:
  group_free(o);
  group_free(o2);
  buf_free(&gi);
  buf_free(&commit);
  buf_free(&other);
  buf_free(&prop);
  buf_free(&saved);
  member_free(&a);
  member_free(&b);
  member_free(&c);
  member_free(&d);
}

static void test_follow_suite1(void) {
  follow(MLS_SUITE_X25519_AES128GCM_SHA256_ED25519);
}
static void test_follow_suite3(void) { follow(3); }

/* Handshakes hidden in PrivateMessage cannot be tracked: refused. */
static void test_private_handshake_refused(void) {
  uint16_t suite = 1;
  member a = {0}, b = {0};
  mls_group *o = NULL;
  group_config cfg = {.encrypt_handshake = true};
  buf_t gi, commit;
  buf_init(&gi);
  buf_init(&commit);
  a.id = ident(suite, "alice");
  CHECK_OK(group_create(a.id, &cfg, BYTES(GID, strlen(GID)), NULL, &a.g));
  CHECK_OK(group_info(a.g, true, &gi));
  CHECK_OK(observer_new(buf_view(&gi), BYTES_NONE, NULL, &o));
  CHECK_OK(add(&a, &b, suite, "bob", &commit));
  if (!test_failing()) refused(o, buf_view(&commit), TSR_EPROTOCOL);
  group_free(o);
  buf_free(&gi);
  buf_free(&commit);
  member_free(&a);
  member_free(&b);
}

/* A GroupInfo that does not verify starts nothing. */
static void test_bad_group_info(void) {
  member a = {0};
  mls_group *o = NULL;
  buf_t gi;
  buf_init(&gi);
  a.id = ident(1, "alice");
  CHECK_OK(group_create(a.id, NULL, BYTES(GID, strlen(GID)), NULL, &a.g));
  CHECK_OK(group_info(a.g, true, &gi));
  gi.ptr[gi.len - 10] ^= 1; /* inside the signature */
  CHECK_ERR(observer_new(buf_view(&gi), BYTES_NONE, NULL, &o), TSR_EVERIFY);
  CHECK(o == NULL);
  CHECK_ERR(observer_new(BYTES(gi.ptr, gi.len / 2), BYTES_NONE, NULL, &o), TSR_EDECODE);
  buf_reset(&gi);
  CHECK_OK(group_info(a.g, false, &gi)); /* no tree, none given */
  CHECK_ERR(observer_new(buf_view(&gi), BYTES_NONE, NULL, &o), TSR_ETREE);
  buf_free(&gi);
  member_free(&a);
}

int main(void) {
  if (crypto_init() != 0) return 1;
  RUN(test_follow_suite1);
  RUN(test_follow_suite3);
  RUN(test_private_handshake_refused);
  RUN(test_bad_group_info);
  return test_report("observer");
}
