/* Unhappy paths of the group state machine (RFC 9420 §6, §7.3, §10.1,
 * §12.1-§12.4): invalid proposals, commits, Welcomes and key packages sent
 * by members or outsiders are refused with one precise error code, the
 * receiving group is left exactly as it was (its saved state is byte for
 * byte the same), and genuine traffic goes through afterwards.
 *
 * Invalid messages are crafted with valid signatures and membership tags
 * (framing_sign, a membership tag from the epoch's membership_key) so
 * that only the rule under test is broken. Crafted commits carry a
 * placeholder confirmation tag: every rule is checked before the tag, so
 * a missing check shows up as TSR_EVERIFY instead of the expected code.
 * test_crafting_controls shows that the crafting itself is sound. */
#define GROUP_INTERNAL
#include <stdlib.h>
#include <string.h>

#include "mls/codec.h"
#include "mls/crypto.h"
#include "mls/group.h"
#include "mls/keysched.h"
#include "test.h"

#define GID "rules-group"
#define SUITE MLS_SUITE_X25519_AES128GCM_SHA256_ED25519
#define T0 1700000000ull /* the fixed clock of every group and key package */
#define DAY 86400ull
#define GREASE_EXT 0x0b0b /* an extension type nobody lists */

static const group_config CFG = {.now = T0};

typedef struct {
  group_identity *id;
  mls_group *g;
} member;

static group_identity *ident(const char *name) {
  group_identity *id = NULL;
  CHECK_OK(group_identity_new(SUITE, BYTES(name, strlen(name)), &id));
  return id;
}

static void member_free(member *m) {
  group_free(m->g);
  group_identity_free(m->id);
  memset(m, 0, sizeof *m);
}

static bool in_sync(const mls_group *a, const mls_group *b) {
  uint8_t x[MLS_MAX_HASH], y[MLS_MAX_HASH];
  size_t xl = 0, yl = 0;
  group_epoch_authenticator(a, x, &xl);
  group_epoch_authenticator(b, y, &yl);
  return group_epoch(a) == group_epoch(b) && bytes_eq(BYTES(x, xl), BYTES(y, yl));
}

static int deliver(member *to, bytes_t msg, int want_type) {
  group_event ev;
  group_event_init(&ev);
  int rc = group_process(to->g, msg, &ev);
  if (!rc && ev.type != want_type) rc = TSR_EPROTOCOL;
  group_event_clear(&ev);
  return rc;
}

/* Creator adds `name` (a fresh identity): commit, merge, join. */
static int add_member(member *creator, member *joiner, const char *name,
                      buf_t *commit_out) {
  joiner->id = ident(name);
  buf_t kp, commit, welcome;
  buf_init(&kp);
  buf_init(&commit);
  buf_init(&welcome);
  kp_secret *ks = NULL;
  int rc = joiner->id ? kp_create(joiner->id, T0, 0, &kp, &ks) : TSR_ENOMEM;
  bytes_t kpv = buf_view(&kp);
  group_commit_params p = {.add_key_packages = &kpv, .n_adds = 1};
  if (!rc) rc = group_commit(creator->g, &p, &commit, &welcome);
  if (!rc) rc = group_merge_pending(creator->g);
  if (!rc)
    rc = group_join(joiner->id, &CFG, &ks, 1, buf_view(&welcome), BYTES_NONE, NULL, 0,
                    NULL, NULL, &joiner->g);
  if (!rc && commit_out) rc = buf_set(commit_out, buf_view(&commit));
  kp_secret_free(ks);
  buf_free(&kp);
  buf_free(&commit);
  buf_free(&welcome);
  return rc;
}

/* Alice creates the group (with ext, may be NULL) and adds Bob, then
 * Carol: leaves 0, 1, 2 of a 4-leaf tree (leaf 3 blank), epoch 2. */
static int trio(member *a, member *b, member *c, const mls_extensions *ext) {
  a->id = ident("alice");
  int rc = group_create(a->id, &CFG, BYTES(GID, strlen(GID)), ext, &a->g);
  if (!rc) rc = add_member(a, b, "bob", NULL);
  buf_t commit;
  buf_init(&commit);
  if (!rc) rc = add_member(a, c, "carol", &commit);
  if (!rc) rc = deliver(b, buf_view(&commit), GROUP_EVENT_COMMIT);
  buf_free(&commit);
  return rc;
}

/* --- Refusal and liveness checks ------------------------------------------------ */

/* m refuses msg with exactly `want`, reports no event and its saved state
 * is unchanged. */
static bool refused(member *m, bytes_t msg, int want) {
  buf_t before, after;
  buf_init(&before);
  buf_init(&after);
  bool ok = group_save(m->g, &before) == 0;
  group_event ev;
  group_event_init(&ev);
  int rc = group_process(m->g, msg, &ev);
  if (rc != want) {
    fprintf(stderr, "    got %s, want %s\n", tsr_errname(rc), tsr_errname(want));
    ok = false;
  }
  if (ev.type != 0 || ev.data.len) ok = false;
  if (group_save(m->g, &after) || !bytes_eq(buf_view(&before), buf_view(&after))) {
    fprintf(stderr, "    state changed by a refused message\n");
    ok = false;
  }
  group_event_clear(&ev);
  buf_free_secret(&before);
  buf_free_secret(&after);
  return ok;
}

/* An API call on m failed with exactly `want` and changed nothing: same
 * saved state as `before`, nothing pending, out (if any) empty. */
static bool unchanged(const member *m, const buf_t *before, int rc, int want,
                      const buf_t *out) {
  bool ok = true;
  if (rc != want) {
    fprintf(stderr, "    got %s, want %s\n", tsr_errname(rc), tsr_errname(want));
    ok = false;
  }
  buf_t after;
  buf_init(&after);
  if (group_save(m->g, &after) || !bytes_eq(buf_view(before), buf_view(&after))) {
    fprintf(stderr, "    state changed by a refused call\n");
    ok = false;
  }
  buf_free_secret(&after);
  if (group_has_pending(m->g)) ok = false;
  if (out && out->len) ok = false;
  return ok;
}

static void save(const member *m, buf_t *st) {
  buf_free_secret(st);
  buf_init(st);
  CHECK_OK(group_save(m->g, st));
}

/* Genuine traffic still flows: ms[from] sends an application message to
 * every other member, then commits (path included) and the others follow
 * into the same epoch. */
static void still_works(member *const *ms, size_t n, size_t from) {
  member *f = ms[from];
  for (size_t i = 0; i < n; i++) {
    if (i == from) continue;
    buf_t m;
    buf_init(&m);
    CHECK_OK(group_protect(f->g, BYTES("still", 5), BYTES_NONE, &m));
    group_event ev;
    group_event_init(&ev);
    CHECK_OK(group_process(ms[i]->g, buf_view(&m), &ev));
    CHECK_INT(ev.type, GROUP_EVENT_APPLICATION);
    CHECK_BYTES(buf_view(&ev.data), BYTES("still", 5));
    group_event_clear(&ev);
    buf_free(&m);
  }
  buf_t commit;
  buf_init(&commit);
  group_commit_params p = {.force_path = true};
  CHECK_OK(group_commit(f->g, &p, &commit, NULL));
  CHECK_OK(group_merge_pending(f->g));
  for (size_t i = 0; i < n; i++) {
    if (i == from) continue;
    CHECK_OK(deliver(ms[i], buf_view(&commit), GROUP_EVENT_COMMIT));
    CHECK(in_sync(f->g, ms[i]->g));
  }
  buf_free(&commit);
}

/* --- Crafting --------------------------------------------------------------------- */

/* FramedContent of member m in its current epoch. */
static mls_framed_content content_of(const member *m, uint8_t content_type) {
  mls_framed_content fc;
  memset(&fc, 0, sizeof fc);
  fc.group_id = group_id(m->g);
  fc.epoch = group_epoch(m->g);
  fc.sender.sender_type = MLS_SENDER_MEMBER;
  fc.sender.index = group_own_leaf(m->g);
  fc.content_type = content_type;
  return fc;
}

/* fc as an MLSMessage(PublicMessage) signed with key over the epoch of g
 * (g's GroupContext); member senders get a membership tag from g's
 * membership_key. Commits carry `tag`, or a placeholder if it is empty.
 * Built by hand: the library's own send-side checks are not involved. */
static int seal_public(const mls_group *g, const mls_sig_key *key,
                       const mls_framed_content *fc, bytes_t tag, buf_t *out) {
  const mls_suite *s = g->suite;
  size_t h = s->hash_len;
  framing_ctx ctx;
  group_framing_ctx(g, &g->ep, &ctx);
  ctx.sig_key = key;
  mls_authenticated_content ac;
  memset(&ac, 0, sizeof ac);
  ac.wire_format = MLS_WIRE_PUBLIC_MESSAGE;
  ac.content = *fc;
  uint8_t sig[MLS_SIG_LEN], placeholder[MLS_MAX_HASH], mtag[MLS_MAX_HASH];
  memset(placeholder, 0x5a, sizeof placeholder);
  int rc = framing_sign(&ctx, &ac, sig);
  if (fc->content_type == MLS_CONTENT_COMMIT)
    ac.auth.confirmation_tag = tag.len ? tag : BYTES(placeholder, h);
  mls_message m;
  memset(&m, 0, sizeof m);
  m.version = MLS_VERSION_10;
  m.wire_format = MLS_WIRE_PUBLIC_MESSAGE;
  m.public_message.content = *fc;
  m.public_message.auth = ac.auth;
  if (!rc && fc->sender.sender_type == MLS_SENDER_MEMBER) {
    buf_t tbm;
    buf_init(&tbm);
    msg_encode_framed_content_tbs(&tbm, MLS_WIRE_PUBLIC_MESSAGE, fc, buf_view(&g->ep.gc));
    msg_encode_auth_data(&tbm, &ac.auth, fc->content_type);
    rc = tbm.err ? tbm.err
                 : crypto_hmac(s, keysched_view(&g->ep.ks, g->ep.ks.membership_key),
                               buf_view(&tbm), mtag);
    buf_free(&tbm);
    m.public_message.membership_tag = BYTES(mtag, h);
  }
  if (!rc) {
    msg_encode_message(out, &m);
    rc = out->err;
  }
  return rc;
}

/* Decodes an MLSMessage(PublicMessage); the bytes are copied into a. */
static int decode_public(bytes_t msg, arena_t *a, mls_public_message *pm) {
  bytes_t copy;
  mls_message m;
  int rc = arena_dup(a, msg, &copy);
  if (!rc) rc = msg_decode_message(copy, a, &m);
  if (!rc && m.wire_format != MLS_WIRE_PUBLIC_MESSAGE) rc = TSR_EINVAL;
  if (!rc) *pm = m.public_message;
  return rc;
}

/* A genuine UpdatePath of m for the current epoch (from a commit m makes
 * and discards), in a. */
static int genuine_path(member *m, arena_t *a, mls_update_path *path) {
  buf_t commit;
  buf_init(&commit);
  group_commit_params p = {.force_path = true};
  int rc = group_commit(m->g, &p, &commit, NULL);
  group_discard_pending(m->g);
  mls_public_message pm = {0};
  if (!rc) rc = decode_public(buf_view(&commit), a, &pm);
  if (!rc) *path = pm.content.commit.path;
  buf_free(&commit);
  return rc;
}

/* A commit by member m holding pors (by value or reference), with a
 * genuine path of m when with_path; sealed over the epoch of m. */
static int craft_commit(member *m, const mls_proposal_or_ref *pors, size_t n,
                        bool with_path, arena_t *a, buf_t *out) {
  mls_framed_content fc = content_of(m, MLS_CONTENT_COMMIT);
  fc.commit.proposals = (mls_proposal_or_ref *)pors;
  fc.commit.n_proposals = n;
  int rc = 0;
  if (with_path) {
    fc.commit.has_path = true;
    rc = genuine_path(m, a, &fc.commit.path);
  }
  if (!rc) rc = seal_public(m->g, &m->id->sig, &fc, BYTES_NONE, out);
  return rc;
}

/* A proposal by member m, sealed over its epoch. */
static int craft_proposal(const member *m, const mls_proposal *p, buf_t *out) {
  mls_framed_content fc = content_of(m, MLS_CONTENT_PROPOSAL);
  fc.proposal = *p;
  return seal_public(m->g, &m->id->sig, &fc, BYTES_NONE, out);
}

static mls_proposal_or_ref by_value(mls_proposal p) {
  mls_proposal_or_ref r;
  memset(&r, 0, sizeof r);
  r.type = MLS_POR_PROPOSAL;
  r.proposal = p;
  return r;
}

/* Reference to the proposal m cached last (copied into a). */
static mls_proposal_or_ref by_ref_last(const member *m, arena_t *a) {
  mls_proposal_or_ref r;
  memset(&r, 0, sizeof r);
  r.type = MLS_POR_REFERENCE;
  size_t h = m->g->suite->hash_len;
  if (!m->g->n_props) return r;
  CHECK_OK(arena_dup(a, BYTES(m->g->props[m->g->n_props - 1].ref, h), &r.reference));
  return r;
}

static mls_proposal prop_remove(uint32_t leaf) {
  mls_proposal p;
  memset(&p, 0, sizeof p);
  p.proposal_type = MLS_PROPOSAL_REMOVE;
  p.remove = leaf;
  return p;
}

static mls_proposal prop_gce(const mls_extensions *ext) {
  mls_proposal p;
  memset(&p, 0, sizeof p);
  p.proposal_type = MLS_PROPOSAL_GROUP_CONTEXT_EXTENSIONS;
  if (ext) p.gce = *ext;
  return p;
}

static mls_proposal prop_reinit(void) {
  mls_proposal p;
  memset(&p, 0, sizeof p);
  p.proposal_type = MLS_PROPOSAL_REINIT;
  p.reinit.group_id = BYTES("next", 4);
  p.reinit.version = MLS_VERSION_10;
  p.reinit.cipher_suite = SUITE;
  return p;
}

static mls_proposal prop_external_init(const uint8_t kem[MLS_KEM_PK]) {
  mls_proposal p;
  memset(&p, 0, sizeof p);
  p.proposal_type = MLS_PROPOSAL_EXTERNAL_INIT;
  p.external_init = BYTES(kem, MLS_KEM_PK);
  return p;
}

/* Add of an MLSMessage(KeyPackage), decoded without validation into a. */
static mls_proposal prop_add(bytes_t kp_msg, arena_t *a) {
  mls_proposal p;
  memset(&p, 0, sizeof p);
  p.proposal_type = MLS_PROPOSAL_ADD;
  bytes_t copy;
  mls_message m;
  CHECK_OK(arena_dup(a, kp_msg, &copy));
  CHECK_OK(msg_decode_message(copy, a, &m));
  CHECK_INT(m.wire_format, MLS_WIRE_KEY_PACKAGE);
  p.add = m.key_package;
  return p;
}

/* Signs ln (LeafNodeTBS for group_id / leaf) with key into sig. */
static int resign_leaf(const mls_sig_key *key, mls_leaf_node *ln, bytes_t group_id,
                       uint32_t leaf, uint8_t sig[MLS_SIG_LEN]) {
  buf_t tbs;
  buf_init(&tbs);
  msg_encode_leaf_node_tbs(&tbs, ln, group_id, leaf);
  int rc = tbs.err ? tbs.err
                   : mls_sign_with_label(mls_suite_get(SUITE), key, "LeafNodeTBS",
                                         buf_view(&tbs), sig);
  buf_free(&tbs);
  if (!rc) ln->signature = BYTES(sig, MLS_SIG_LEN);
  return rc;
}

/* A required_capabilities (or any) extension list with one entry. */
typedef struct {
  buf_t body;
  mls_extension x;
  mls_extensions list;
} one_ext;

static void one_ext_required(one_ext *e, uint16_t ext_type) {
  buf_init(&e->body);
  uint16_t types[1] = {ext_type};
  mls_required_capabilities rq = {.extension_types = types, .n_extension_types = 1};
  msg_encode_required_capabilities(&e->body, &rq);
  e->x.extension_type = MLS_EXT_REQUIRED_CAPABILITIES;
  e->x.extension_data = buf_view(&e->body);
  e->list.items = &e->x;
  e->list.n = 1;
}

static void one_ext_senders(one_ext *e, const mls_sig_key *server) {
  buf_init(&e->body);
  mls_external_sender es = {.signature_key = BYTES(server->pk, MLS_SIG_PK),
                            .credential = {.credential_type = MLS_CREDENTIAL_BASIC,
                                           .identity = BYTES("server", 6)}};
  mls_external_senders list = {.items = &es, .n = 1};
  msg_encode_external_senders(&e->body, &list);
  e->x.extension_type = MLS_EXT_EXTERNAL_SENDERS;
  e->x.extension_data = buf_view(&e->body);
  e->list.items = &e->x;
  e->list.n = 1;
}

/* --- Controls: the crafting machinery produces acceptable messages ------------ */

static void test_crafting_controls(void) {
  member a = {0}, b = {0}, c = {0};
  arena_t ar;
  arena_init(&ar);
  buf_t msg, genuine;
  buf_init(&msg);
  buf_init(&genuine);
  CHECK_OK(trio(&a, &b, &c, NULL));
  if (test_failing()) goto out;
  /* A crafted, valid proposal is accepted. */
  mls_proposal rm = prop_remove(2);
  CHECK_OK(craft_proposal(&b, &rm, &msg));
  CHECK_OK(deliver(&a, buf_view(&msg), GROUP_EVENT_PROPOSAL));
  CHECK_OK(deliver(&b, buf_view(&msg), GROUP_EVENT_PROPOSAL));
  CHECK_OK(deliver(&c, buf_view(&msg), GROUP_EVENT_PROPOSAL));
  /* A genuine commit re-sealed by hand (real confirmation tag) is
   * accepted: seal_public matches the library's framing exactly. */
  CHECK_OK(group_commit(b.g, NULL, &genuine, NULL));
  mls_public_message pm = {0};
  CHECK_OK(decode_public(buf_view(&genuine), &ar, &pm));
  buf_reset(&msg);
  CHECK_OK(seal_public(b.g, &b.id->sig, &pm.content, pm.auth.confirmation_tag, &msg));
  CHECK_BYTES(buf_view(&msg), buf_view(&genuine));
  /* With the placeholder tag only the confirmation tag is wrong. */
  buf_reset(&msg);
  CHECK_OK(seal_public(b.g, &b.id->sig, &pm.content, BYTES_NONE, &msg));
  CHECK(refused(&a, buf_view(&msg), TSR_EVERIFY));
  CHECK_OK(deliver(&a, buf_view(&genuine), GROUP_EVENT_COMMIT));
  CHECK_OK(deliver(&c, buf_view(&genuine), GROUP_EVENT_REMOVED));
  CHECK_OK(group_merge_pending(b.g));
  CHECK(in_sync(a.g, b.g));
  member *ms[] = {&a, &b};
  still_works(ms, 2, 0);
out:
  arena_free(&ar);
  buf_free(&msg);
  buf_free(&genuine);
  member_free(&a);
  member_free(&b);
  member_free(&c);
}

/* --- Add rules (§12.2) ---------------------------------------------------------- */

static void test_duplicate_add(void) {
  member a = {0}, b = {0}, c = {0};
  arena_t ar;
  arena_init(&ar);
  buf_t st, msg, out, kp1, kp2;
  buf_init(&st);
  buf_init(&msg);
  buf_init(&out);
  buf_init(&kp1);
  buf_init(&kp2);
  buf_t kp3;
  buf_init(&kp3);
  kp_secret *ks1 = NULL, *ks2 = NULL, *ks3 = NULL;
  group_identity *dave = ident("dave"), *dave_other_key = ident("dave");
  CHECK_OK(trio(&a, &b, &c, NULL));
  CHECK_OK(kp_create(dave, T0, 0, &kp1, &ks1));
  CHECK_OK(kp_create(dave, T0, 0, &kp2, &ks2));           /* same client, new keys */
  CHECK_OK(kp_create(dave_other_key, T0, 0, &kp3, &ks3)); /* same credential */
  if (test_failing()) goto out;
  /* The same key package twice, two key packages of one signature key,
   * and two of one credential (the application's notion of a client). */
  bytes_t same[2] = {buf_view(&kp1), buf_view(&kp1)};
  bytes_t client[2] = {buf_view(&kp1), buf_view(&kp2)};
  bytes_t cred[2] = {buf_view(&kp1), buf_view(&kp3)};
  const bytes_t *lists[3] = {same, client, cred};
  for (size_t k = 0; k < 3; k++) {
    save(&a, &st);
    group_commit_params p = {.add_key_packages = lists[k], .n_adds = 2};
    CHECK(unchanged(&a, &st, group_commit(a.g, &p, &out, &msg), TSR_EPROTOCOL, &out));
    mls_proposal_or_ref pors[2] = {by_value(prop_add(lists[k][0], &ar)),
                                   by_value(prop_add(lists[k][1], &ar))};
    buf_reset(&msg);
    CHECK_OK(craft_commit(&b, pors, 2, false, &ar, &msg));
    CHECK(refused(&a, buf_view(&msg), TSR_EPROTOCOL));
  }
  /* Both as cached proposals committed by reference. */
  buf_t p1, p2;
  buf_init(&p1);
  buf_init(&p2);
  CHECK_OK(group_propose_add(c.g, buf_view(&kp1), &p1));
  CHECK_OK(group_propose_add(c.g, buf_view(&kp2), &p2));
  CHECK_OK(deliver(&a, buf_view(&p1), GROUP_EVENT_PROPOSAL));
  mls_proposal_or_ref r1 = by_ref_last(&a, &ar);
  CHECK_OK(deliver(&a, buf_view(&p2), GROUP_EVENT_PROPOSAL));
  mls_proposal_or_ref r2 = by_ref_last(&a, &ar);
  CHECK_OK(deliver(&b, buf_view(&p1), GROUP_EVENT_PROPOSAL));
  CHECK_OK(deliver(&b, buf_view(&p2), GROUP_EVENT_PROPOSAL));
  mls_proposal_or_ref refs[2] = {r1, r2};
  buf_reset(&msg);
  CHECK_OK(craft_commit(&b, refs, 2, false, &ar, &msg));
  CHECK(refused(&a, buf_view(&msg), TSR_EPROTOCOL));
  /* The same reference twice. */
  mls_proposal_or_ref twice[2] = {r1, r1};
  buf_reset(&msg);
  CHECK_OK(craft_commit(&b, twice, 2, false, &ar, &msg));
  CHECK(refused(&a, buf_view(&msg), TSR_EPROTOCOL));
  /* Bob has both cached: his commit takes the first and leaves the
   * second out (§12.2), so one bad proposal cannot block the epoch. */
  buf_reset(&out);
  buf_t welcome;
  buf_init(&welcome);
  CHECK_OK(group_commit(b.g, NULL, &out, &welcome));
  CHECK_OK(group_merge_pending(b.g));
  CHECK_OK(deliver(&a, buf_view(&out), GROUP_EVENT_COMMIT));
  CHECK_OK(deliver(&c, buf_view(&out), GROUP_EVENT_COMMIT));
  member d = {0};
  CHECK_OK(group_identity_clone(dave, &d.id));
  kp_secret *both[2] = {ks2, ks1};
  size_t used = 9;
  CHECK_OK(group_join(d.id, &CFG, both, 2, buf_view(&welcome), BYTES_NONE, NULL, 0, NULL,
                      &used, &d.g));
  CHECK_INT(used, 1); /* the first proposal's key package */
  CHECK_INT(group_leaf_count(a.g), 4);
  buf_free(&welcome);
  buf_free(&p1);
  buf_free(&p2);
  if (!test_failing()) {
    member *ms[] = {&a, &b, &c, &d};
    still_works(ms, 4, 3);
  }
  member_free(&d);
out:
  arena_free(&ar);
  buf_free_secret(&st);
  buf_free(&msg);
  buf_free(&out);
  buf_free(&kp1);
  buf_free(&kp2);
  buf_free(&kp3);
  kp_secret_free(ks1);
  kp_secret_free(ks2);
  kp_secret_free(ks3);
  group_identity_free(dave);
  group_identity_free(dave_other_key);
  member_free(&a);
  member_free(&b);
  member_free(&c);
}

/* Add of a client already in the group: its own signature key, or the
 * same credential with a new key, unless the same commit removes it. */
static void test_add_existing_member(void) {
  member a = {0}, b = {0}, c = {0}, b2 = {0};
  arena_t ar;
  arena_init(&ar);
  buf_t st, msg, out, kp_same_key, kp_same_cred, welcome;
  buf_init(&st);
  buf_init(&msg);
  buf_init(&out);
  buf_init(&kp_same_key);
  buf_init(&kp_same_cred);
  buf_init(&welcome);
  kp_secret *ks1 = NULL, *ks2 = NULL;
  CHECK_OK(trio(&a, &b, &c, NULL));
  if (test_failing()) goto out;
  b2.id = ident("bob"); /* Bob's new device state: same credential, new key */
  CHECK_OK(kp_create(b.id, T0, 0, &kp_same_key, &ks1));
  CHECK_OK(kp_create(b2.id, T0, 0, &kp_same_cred, &ks2));
  if (test_failing()) goto out;
  bytes_t kps[2] = {buf_view(&kp_same_key), buf_view(&kp_same_cred)};
  for (size_t k = 0; k < 2; k++) {
    save(&a, &st);
    group_commit_params p = {.add_key_packages = &kps[k], .n_adds = 1};
    buf_reset(&msg);
    CHECK(unchanged(&a, &st, group_commit(a.g, &p, &out, &msg), TSR_EPROTOCOL, &out));
    CHECK_INT(msg.len, 0);
    mls_proposal_or_ref por = by_value(prop_add(kps[k], &ar));
    buf_reset(&msg);
    CHECK_OK(craft_commit(&c, &por, 1, false, &ar, &msg));
    CHECK(refused(&a, buf_view(&msg), TSR_EPROTOCOL));
  }
  {
    member *ms[] = {&a, &b, &c};
    still_works(ms, 3, 2);
  }
  /* Allowed when the same commit removes the old Bob. */
  uint32_t bob = group_own_leaf(b.g);
  group_commit_params p = {
      .add_key_packages = &kps[1], .n_adds = 1, .remove_leaves = &bob, .n_removes = 1};
  buf_reset(&out);
  buf_reset(&welcome);
  CHECK_OK(group_commit(a.g, &p, &out, &welcome));
  CHECK_OK(group_merge_pending(a.g));
  CHECK_OK(deliver(&c, buf_view(&out), GROUP_EVENT_COMMIT));
  CHECK_OK(deliver(&b, buf_view(&out), GROUP_EVENT_REMOVED));
  CHECK_OK(group_join(b2.id, &CFG, &ks2, 1, buf_view(&welcome), BYTES_NONE, NULL, 0, NULL,
                      NULL, &b2.g));
  if (test_failing()) goto out;
  {
    member *ms[] = {&a, &b2, &c};
    still_works(ms, 3, 1);
  }
out:
  arena_free(&ar);
  buf_free_secret(&st);
  buf_free(&msg);
  buf_free(&out);
  buf_free(&kp_same_key);
  buf_free(&kp_same_cred);
  buf_free(&welcome);
  kp_secret_free(ks1);
  kp_secret_free(ks2);
  member_free(&a);
  member_free(&b);
  member_free(&c);
  member_free(&b2);
}

/* --- Update / Remove rules ------------------------------------------------------ */

static void test_update_and_remove_same_leaf(void) {
  member a = {0}, b = {0}, c = {0};
  arena_t ar;
  arena_init(&ar);
  buf_t msg, upd;
  buf_init(&msg);
  buf_init(&upd);
  CHECK_OK(trio(&a, &b, &c, NULL));
  if (test_failing()) goto out;
  uint32_t carol = group_own_leaf(c.g);
  CHECK_OK(group_propose_update(c.g, &upd));
  CHECK_OK(deliver(&a, buf_view(&upd), GROUP_EVENT_PROPOSAL));
  CHECK_OK(deliver(&b, buf_view(&upd), GROUP_EVENT_PROPOSAL));
  /* Update (by reference) and Remove of Carol. */
  mls_proposal_or_ref pors[2] = {by_ref_last(&b, &ar), by_value(prop_remove(carol))};
  CHECK_OK(craft_commit(&b, pors, 2, true, &ar, &msg));
  CHECK(refused(&a, buf_view(&msg), TSR_EPROTOCOL));
  /* Two Removes of Carol. */
  mls_proposal_or_ref two[2] = {by_value(prop_remove(carol)),
                                by_value(prop_remove(carol))};
  buf_reset(&msg);
  CHECK_OK(craft_commit(&b, two, 2, true, &ar, &msg));
  CHECK(refused(&a, buf_view(&msg), TSR_EPROTOCOL));
  /* The same Update referenced twice. */
  mls_proposal_or_ref twice[2] = {pors[0], pors[0]};
  buf_reset(&msg);
  CHECK_OK(craft_commit(&b, twice, 2, true, &ar, &msg));
  CHECK(refused(&a, buf_view(&msg), TSR_EPROTOCOL));
  /* Bob commits Carol's Update by reference; everyone follows. */
  {
    member *ms[] = {&a, &b, &c};
    still_works(ms, 3, 1);
  }
  /* Next epoch: Carol's new Update is cached, Alice removes Carol by
   * value: the commit prefers the Remove and leaves the Update out. */
  buf_reset(&upd);
  CHECK_OK(group_propose_update(c.g, &upd));
  CHECK_OK(deliver(&a, buf_view(&upd), GROUP_EVENT_PROPOSAL));
  CHECK_OK(deliver(&b, buf_view(&upd), GROUP_EVENT_PROPOSAL));
  group_commit_params rp = {.remove_leaves = &carol, .n_removes = 1};
  buf_reset(&msg);
  CHECK_OK(group_commit(a.g, &rp, &msg, NULL));
  CHECK_OK(group_merge_pending(a.g));
  CHECK_OK(deliver(&b, buf_view(&msg), GROUP_EVENT_COMMIT));
  CHECK_OK(deliver(&c, buf_view(&msg), GROUP_EVENT_REMOVED));
  {
    member *ms[] = {&a, &b};
    still_works(ms, 2, 1);
  }
out:
  arena_free(&ar);
  buf_free(&msg);
  buf_free(&upd);
  member_free(&a);
  member_free(&b);
  member_free(&c);
}

/* Remove of a blank leaf (leaf 3 of the trio) or one past the tree. */
static void test_remove_blank_or_out_of_range(void) {
  member a = {0}, b = {0}, c = {0};
  arena_t ar;
  arena_init(&ar);
  buf_t st, msg, out;
  buf_init(&st);
  buf_init(&msg);
  buf_init(&out);
  CHECK_OK(trio(&a, &b, &c, NULL));
  if (test_failing()) goto out;
  CHECK_INT(group_leaf_count(a.g), 4);
  const uint32_t bad[] = {3, 4, 1000, UINT32_MAX};
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    mls_proposal rm = prop_remove(bad[k]);
    /* As a commit by value, and as a standalone proposal. */
    mls_proposal_or_ref por = by_value(rm);
    buf_reset(&msg);
    CHECK_OK(craft_commit(&b, &por, 1, true, &ar, &msg));
    CHECK(refused(&a, buf_view(&msg), TSR_EPROTOCOL));
    buf_reset(&msg);
    CHECK_OK(craft_proposal(&b, &rm, &msg));
    CHECK(refused(&a, buf_view(&msg), TSR_EPROTOCOL));
    /* Our own API refuses the caller's mistake. */
    save(&a, &st);
    buf_reset(&out);
    CHECK(
        unchanged(&a, &st, group_propose_remove(a.g, bad[k], &out), TSR_ENOTFOUND, &out));
    group_commit_params p = {.remove_leaves = &bad[k], .n_removes = 1};
    CHECK(unchanged(&a, &st, group_commit(a.g, &p, &out, NULL), TSR_ENOTFOUND, &out));
  }
  {
    member *ms[] = {&a, &b, &c};
    still_works(ms, 3, 0);
  }
out:
  arena_free(&ar);
  buf_free_secret(&st);
  buf_free(&msg);
  buf_free(&out);
  member_free(&a);
  member_free(&b);
  member_free(&c);
}

static void test_committer_removes_itself(void) {
  member a = {0}, b = {0}, c = {0};
  arena_t ar;
  arena_init(&ar);
  buf_t st, msg, out, prop;
  buf_init(&st);
  buf_init(&msg);
  buf_init(&out);
  buf_init(&prop);
  CHECK_OK(trio(&a, &b, &c, NULL));
  if (test_failing()) goto out;
  uint32_t bob = group_own_leaf(b.g);
  /* By value. */
  mls_proposal_or_ref por = by_value(prop_remove(bob));
  CHECK_OK(craft_commit(&b, &por, 1, true, &ar, &msg));
  CHECK(refused(&a, buf_view(&msg), TSR_EPROTOCOL));
  save(&b, &st);
  group_commit_params p = {.remove_leaves = &bob, .n_removes = 1};
  CHECK(unchanged(&b, &st, group_commit(b.g, &p, &out, NULL), TSR_EPROTOCOL, &out));
  /* By reference to Carol's proposal to remove Bob. */
  CHECK_OK(group_propose_remove(c.g, bob, &prop));
  CHECK_OK(deliver(&a, buf_view(&prop), GROUP_EVENT_PROPOSAL));
  CHECK_OK(deliver(&b, buf_view(&prop), GROUP_EVENT_PROPOSAL));
  mls_proposal_or_ref ref = by_ref_last(&b, &ar);
  buf_reset(&msg);
  CHECK_OK(craft_commit(&b, &ref, 1, true, &ar, &msg));
  CHECK(refused(&a, buf_view(&msg), TSR_EPROTOCOL));
  /* Bob's own commit leaves that proposal out instead of failing. */
  buf_reset(&out);
  CHECK_OK(group_commit(b.g, NULL, &out, NULL));
  mls_public_message pm = {0};
  CHECK_OK(decode_public(buf_view(&out), &ar, &pm));
  CHECK_INT(pm.content.commit.n_proposals, 0);
  group_discard_pending(b.g);
  /* Alice commits Carol's proposal: Bob is out, the rest goes on. */
  buf_reset(&out);
  CHECK_OK(group_commit(a.g, NULL, &out, NULL));
  CHECK_OK(group_merge_pending(a.g));
  CHECK_OK(deliver(&b, buf_view(&out), GROUP_EVENT_REMOVED));
  CHECK_OK(deliver(&c, buf_view(&out), GROUP_EVENT_COMMIT));
  {
    member *ms[] = {&a, &c};
    still_works(ms, 2, 1);
  }
out:
  arena_free(&ar);
  buf_free_secret(&st);
  buf_free(&msg);
  buf_free(&out);
  buf_free(&prop);
  member_free(&a);
  member_free(&b);
  member_free(&c);
}

/* The committer's own Update, by reference (by value it is also its own). */
static void test_committer_own_update(void) {
  member a = {0}, b = {0}, c = {0};
  arena_t ar;
  arena_init(&ar);
  buf_t msg, upd, out;
  buf_init(&msg);
  buf_init(&upd);
  buf_init(&out);
  CHECK_OK(trio(&a, &b, &c, NULL));
  if (test_failing()) goto out;
  CHECK_OK(group_propose_update(b.g, &upd));
  CHECK_OK(deliver(&a, buf_view(&upd), GROUP_EVENT_PROPOSAL));
  CHECK_OK(deliver(&c, buf_view(&upd), GROUP_EVENT_PROPOSAL));
  mls_proposal_or_ref ref = by_ref_last(&a, &ar);
  CHECK_OK(craft_commit(&b, &ref, 1, true, &ar, &msg));
  CHECK(refused(&a, buf_view(&msg), TSR_EPROTOCOL));
  /* By value: an Update whose sender is the committer. */
  mls_public_message pm = {0};
  CHECK_OK(decode_public(buf_view(&upd), &ar, &pm));
  mls_proposal_or_ref val = by_value(pm.content.proposal);
  buf_reset(&msg);
  CHECK_OK(craft_commit(&b, &val, 1, true, &ar, &msg));
  CHECK(refused(&a, buf_view(&msg), TSR_EPROTOCOL));
  /* The library's own commit leaves its Update out; all follow. */
  {
    member *ms[] = {&a, &b, &c};
    still_works(ms, 3, 1);
  }
out:
  arena_free(&ar);
  buf_free(&msg);
  buf_free(&upd);
  buf_free(&out);
  member_free(&a);
  member_free(&b);
  member_free(&c);
}

/* --- GroupContextExtensions, ReInit, ExternalInit -------------------------------- */

static void test_two_gce(void) {
  member a = {0}, b = {0}, c = {0};
  arena_t ar;
  arena_init(&ar);
  buf_t msg;
  buf_init(&msg);
  CHECK_OK(trio(&a, &b, &c, NULL));
  if (test_failing()) goto out;
  mls_proposal_or_ref pors[2] = {by_value(prop_gce(NULL)), by_value(prop_gce(NULL))};
  CHECK_OK(craft_commit(&b, pors, 2, true, &ar, &msg));
  CHECK(refused(&a, buf_view(&msg), TSR_EPROTOCOL));
  /* One by value, one by reference from Carol. */
  buf_t prop;
  buf_init(&prop);
  const mls_extensions none = {0};
  CHECK_OK(group_propose_gce(c.g, &none, &prop));
  CHECK_OK(deliver(&a, buf_view(&prop), GROUP_EVENT_PROPOSAL));
  CHECK_OK(deliver(&b, buf_view(&prop), GROUP_EVENT_PROPOSAL));
  pors[1] = by_ref_last(&b, &ar);
  buf_reset(&msg);
  CHECK_OK(craft_commit(&b, pors, 2, true, &ar, &msg));
  CHECK(refused(&a, buf_view(&msg), TSR_EPROTOCOL));
  buf_free(&prop);
  {
    member *ms[] = {&a, &b, &c};
    still_works(ms, 3, 1);
  }
out:
  arena_free(&ar);
  buf_free(&msg);
  member_free(&a);
  member_free(&b);
  member_free(&c);
}

/* A GCE requiring a capability (or adding an extension type) that the
 * members do not list. */
static void test_gce_missing_capability(void) {
  member a = {0}, b = {0}, c = {0};
  arena_t ar;
  arena_init(&ar);
  buf_t st, msg, out;
  buf_init(&st);
  buf_init(&msg);
  buf_init(&out);
  one_ext req;
  one_ext_required(&req, GREASE_EXT);
  mls_extension unknown = {.extension_type = GREASE_EXT, .extension_data = BYTES_NONE};
  mls_extensions unknown_list = {.items = &unknown, .n = 1};
  CHECK_OK(trio(&a, &b, &c, NULL));
  if (test_failing()) goto out;
  const mls_extensions *cases[2] = {&req.list, &unknown_list};
  for (size_t k = 0; k < 2; k++) {
    save(&a, &st);
    buf_reset(&out);
    CHECK(unchanged(&a, &st, group_propose_gce(a.g, cases[k], &out), TSR_ECAPABILITY,
                    &out));
    group_commit_params p = {.gce = cases[k]};
    CHECK(unchanged(&a, &st, group_commit(a.g, &p, &out, NULL), TSR_ECAPABILITY, &out));
    mls_proposal gce = prop_gce(cases[k]);
    buf_reset(&msg);
    CHECK_OK(craft_proposal(&b, &gce, &msg));
    CHECK(refused(&a, buf_view(&msg), TSR_ECAPABILITY));
    mls_proposal_or_ref por = by_value(gce);
    buf_reset(&msg);
    CHECK_OK(craft_commit(&b, &por, 1, true, &ar, &msg));
    CHECK(refused(&a, buf_view(&msg), TSR_ECAPABILITY));
  }
  {
    member *ms[] = {&a, &b, &c};
    still_works(ms, 3, 0);
  }
out:
  arena_free(&ar);
  buf_free_secret(&st);
  buf_free(&msg);
  buf_free(&out);
  buf_free(&req.body);
  member_free(&a);
  member_free(&b);
  member_free(&c);
}

static void test_reinit_with_others(void) {
  member a = {0}, b = {0}, c = {0};
  arena_t ar;
  arena_init(&ar);
  buf_t msg;
  buf_init(&msg);
  CHECK_OK(trio(&a, &b, &c, NULL));
  if (test_failing()) goto out;
  mls_proposal_or_ref with_remove[2] = {by_value(prop_reinit()),
                                        by_value(prop_remove(2))};
  CHECK_OK(craft_commit(&b, with_remove, 2, true, &ar, &msg));
  CHECK(refused(&a, buf_view(&msg), TSR_EPROTOCOL));
  mls_proposal_or_ref two[2] = {by_value(prop_reinit()), by_value(prop_reinit())};
  buf_reset(&msg);
  CHECK_OK(craft_commit(&b, two, 2, false, &ar, &msg));
  CHECK(refused(&a, buf_view(&msg), TSR_EPROTOCOL));
  mls_proposal_or_ref with_gce[2] = {by_value(prop_gce(NULL)), by_value(prop_reinit())};
  buf_reset(&msg);
  CHECK_OK(craft_commit(&b, with_gce, 2, true, &ar, &msg));
  CHECK(refused(&a, buf_view(&msg), TSR_EPROTOCOL));
  {
    member *ms[] = {&a, &b, &c};
    still_works(ms, 3, 2);
  }
out:
  arena_free(&ar);
  buf_free(&msg);
  member_free(&a);
  member_free(&b);
  member_free(&c);
}

static void test_external_init_from_member(void) {
  member a = {0}, b = {0}, c = {0};
  arena_t ar;
  arena_init(&ar);
  buf_t msg;
  buf_init(&msg);
  uint8_t kem[MLS_KEM_PK];
  CHECK_OK(crypto_random(kem, sizeof kem));
  CHECK_OK(trio(&a, &b, &c, NULL));
  if (test_failing()) goto out;
  mls_proposal ei = prop_external_init(kem);
  mls_proposal_or_ref por = by_value(ei);
  CHECK_OK(craft_commit(&b, &por, 1, true, &ar, &msg));
  CHECK(refused(&a, buf_view(&msg), TSR_EPROTOCOL));
  /* Nor as a member's standalone proposal. */
  buf_reset(&msg);
  CHECK_OK(craft_proposal(&b, &ei, &msg));
  CHECK(refused(&a, buf_view(&msg), TSR_ESENDER));
  {
    member *ms[] = {&a, &b, &c};
    still_works(ms, 3, 1);
  }
out:
  arena_free(&ar);
  buf_free(&msg);
  member_free(&a);
  member_free(&b);
  member_free(&c);
}

/* --- External commits (§12.4.3.2) -------------------------------------------------- */

/* Carol rejoins the trio externally (resync: her commit removes her old
 * leaf 2); variants of her genuine commit, re-signed by her, each break
 * one rule. */
static void test_external_commit_rules(void) {
  member a = {0}, b = {0}, c = {0}, c2 = {0};
  arena_t ar;
  arena_init(&ar);
  buf_t gi, commit, msg, kp, prop;
  buf_init(&gi);
  buf_init(&commit);
  buf_init(&msg);
  buf_init(&kp);
  buf_init(&prop);
  kp_secret *ks = NULL;
  group_identity *dave = ident("dave");
  CHECK_OK(trio(&a, &b, &c, NULL));
  CHECK_OK(kp_create(dave, T0, 0, &kp, &ks));
  if (test_failing()) goto out;
  uint32_t carol = group_own_leaf(c.g);
  /* Bob proposes removing Carol's old leaf; Alice caches it (a target
   * for a reference, which an external commit may not hold). */
  CHECK_OK(group_propose_remove(b.g, carol, &prop));
  CHECK_OK(deliver(&a, buf_view(&prop), GROUP_EVENT_PROPOSAL));
  mls_proposal_or_ref cached_ref = by_ref_last(&a, &ar);
  CHECK_OK(group_info(a.g, true, &gi));
  CHECK_OK(group_identity_clone(c.id, &c2.id));
  CHECK_OK(group_external_join(c2.id, &CFG, buf_view(&gi), BYTES_NONE, carol, NULL, 0,
                               &commit, &c2.g));
  if (test_failing()) goto out;
  mls_public_message pm = {0};
  CHECK_OK(decode_public(buf_view(&commit), &ar, &pm));
  CHECK_INT(pm.content.commit.n_proposals, 2);
  if (test_failing()) goto out;
  mls_proposal_or_ref ei = pm.content.commit.proposals[0];
  mls_proposal_or_ref rm_old = pm.content.commit.proposals[1];
  CHECK_INT(ei.proposal.proposal_type, MLS_PROPOSAL_EXTERNAL_INIT);
  CHECK_INT(rm_old.proposal.proposal_type, MLS_PROPOSAL_REMOVE);
  uint8_t kem2[MLS_KEM_PK];
  CHECK_OK(crypto_random(kem2, sizeof kem2));
  struct {
    mls_proposal_or_ref pors[3];
    size_t n;
  } cases[] = {
      {{ei, rm_old, by_value(prop_external_init(kem2))}, 3},     /* two ExternalInit */
      {{ei, ei, rm_old}, 3},                                     /* the same one twice */
      {{ei, rm_old, by_value(prop_add(buf_view(&kp), &ar))}, 3}, /* an Add */
      {{ei, by_value(prop_remove(1))}, 2},         /* removes Bob, not an old Carol */
      {{ei, rm_old, by_value(prop_remove(1))}, 3}, /* two Removes */
      {{ei, rm_old, rm_old}, 3},                   /* the same Remove twice */
      {{ei, by_value(prop_remove(3))}, 2},         /* a blank leaf */
      {{ei, rm_old, by_value(prop_gce(NULL))}, 3}, /* a GCE */
      {{ei, by_value(prop_reinit())}, 2},          /* a ReInit */
      {{ei, cached_ref}, 2},                       /* by reference */
      {{rm_old}, 1},                               /* no ExternalInit */
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    mls_framed_content fc = pm.content;
    fc.commit.proposals = cases[k].pors;
    fc.commit.n_proposals = cases[k].n;
    buf_reset(&msg);
    CHECK_OK(seal_public(a.g, &c2.id->sig, &fc, BYTES_NONE, &msg));
    if (!refused(&a, buf_view(&msg), TSR_EPROTOCOL)) {
      fprintf(stderr, "    external commit case %zu\n", k);
      CHECK(0);
    }
  }
  /* Without a path. */
  mls_framed_content nopath = pm.content;
  nopath.commit.has_path = false;
  buf_reset(&msg);
  CHECK_OK(seal_public(a.g, &c2.id->sig, &nopath, BYTES_NONE, &msg));
  CHECK(refused(&a, buf_view(&msg), TSR_EPROTOCOL));
  /* Dave cannot resync as Carol: his path's credential is not hers. */
  member d = {0};
  d.id = dave;
  dave = NULL;
  buf_t dcommit;
  buf_init(&dcommit);
  CHECK_OK(group_external_join(d.id, &CFG, buf_view(&gi), BYTES_NONE, UINT32_MAX, NULL, 0,
                               &dcommit, &d.g));
  mls_public_message dpm;
  CHECK_OK(decode_public(buf_view(&dcommit), &ar, &dpm));
  mls_proposal_or_ref steal[2] = {dpm.content.commit.proposals[0], rm_old};
  dpm.content.commit.proposals = steal;
  dpm.content.commit.n_proposals = 2;
  buf_reset(&msg);
  CHECK_OK(seal_public(a.g, &d.id->sig, &dpm.content, BYTES_NONE, &msg));
  CHECK(refused(&a, buf_view(&msg), TSR_EPROTOCOL));
  buf_free(&dcommit);
  member_free(&d);
  /* The genuine one goes through. */
  CHECK_OK(deliver(&a, buf_view(&commit), GROUP_EVENT_COMMIT));
  CHECK_OK(deliver(&b, buf_view(&commit), GROUP_EVENT_COMMIT));
  CHECK_OK(deliver(&c, buf_view(&commit), GROUP_EVENT_REMOVED));
  CHECK(in_sync(a.g, c2.g) && in_sync(b.g, c2.g));
  {
    member *ms[] = {&a, &b, &c2};
    still_works(ms, 3, 2);
  }
out:
  arena_free(&ar);
  buf_free(&gi);
  buf_free(&commit);
  buf_free(&msg);
  buf_free(&kp);
  buf_free(&prop);
  kp_secret_free(ks);
  group_identity_free(dave);
  member_free(&a);
  member_free(&b);
  member_free(&c);
  member_free(&c2);
}

/* --- Path requirements and the path's LeafNode (§12.4.2, §7.3) ----------------- */

static void test_path_required(void) {
  member a = {0}, b = {0}, c = {0};
  arena_t ar;
  arena_init(&ar);
  buf_t msg, upd;
  buf_init(&msg);
  buf_init(&upd);
  CHECK_OK(trio(&a, &b, &c, NULL));
  if (test_failing()) goto out;
  /* Empty. */
  CHECK_OK(craft_commit(&b, NULL, 0, false, &ar, &msg));
  CHECK(refused(&a, buf_view(&msg), TSR_EPROTOCOL));
  /* Remove, GCE, Update by reference: each needs a path. */
  CHECK_OK(group_propose_update(c.g, &upd));
  CHECK_OK(deliver(&a, buf_view(&upd), GROUP_EVENT_PROPOSAL));
  CHECK_OK(deliver(&b, buf_view(&upd), GROUP_EVENT_PROPOSAL));
  mls_proposal_or_ref cases[3] = {by_value(prop_remove(2)), by_value(prop_gce(NULL)),
                                  by_ref_last(&b, &ar)};
  for (size_t k = 0; k < 3; k++) {
    buf_reset(&msg);
    CHECK_OK(craft_commit(&b, &cases[k], 1, false, &ar, &msg));
    CHECK(refused(&a, buf_view(&msg), TSR_EPROTOCOL));
  }
  {
    member *ms[] = {&a, &b, &c};
    still_works(ms, 3, 1);
  }
out:
  arena_free(&ar);
  buf_free(&msg);
  buf_free(&upd);
  member_free(&a);
  member_free(&b);
  member_free(&c);
}

enum path_edit {
  EDIT_SOURCE_UPDATE,
  EDIT_SOURCE_KEY_PACKAGE,
  EDIT_BAD_SIGNATURE,
  EDIT_OWN_OLD_KEY,
  EDIT_OTHER_MEMBER_KEY,
  EDIT_OTHER_SIGNATURE_KEY,
  EDIT_PATH_NODE_KEY_REUSED,
  EDIT_MISSING_REQUIRED,
};

/* Bob's genuine commit (removing `victim` when not UINT32_MAX) with its
 * path LeafNode edited; Alice must refuse it with want. */
static void path_case(enum path_edit edit, uint32_t victim, int want) {
  member a = {0}, b = {0}, c = {0};
  arena_t ar;
  arena_init(&ar);
  buf_t genuine, msg, req_body;
  buf_init(&genuine);
  buf_init(&msg);
  buf_init(&req_body);
  /* For EDIT_MISSING_REQUIRED the group requires the GREASE extension
   * type that every kp_create LeafNode lists. */
  one_ext req;
  one_ext_required(&req, 0x0a0a);
  CHECK_OK(trio(&a, &b, &c, edit == EDIT_MISSING_REQUIRED ? &req.list : NULL));
  if (test_failing()) goto out;
  group_commit_params p = {.force_path = true};
  if (victim != UINT32_MAX) {
    p.remove_leaves = &victim;
    p.n_removes = 1;
  }
  CHECK_OK(group_commit(b.g, &p, &genuine, NULL));
  mls_public_message pm = {0};
  CHECK_OK(decode_public(buf_view(&genuine), &ar, &pm));
  if (test_failing()) goto out;
  mls_framed_content fc = pm.content;
  mls_leaf_node *ln = &fc.commit.path.leaf_node;
  bytes_t gid = group_id(b.g);
  uint32_t bob = group_own_leaf(b.g);
  uint8_t sig[MLS_SIG_LEN];
  switch (edit) {
  case EDIT_SOURCE_UPDATE:
    ln->leaf_node_source = MLS_LEAF_SOURCE_UPDATE;
    ln->parent_hash = BYTES_NONE;
    CHECK_OK(resign_leaf(&b.id->sig, ln, gid, bob, sig));
    break;
  case EDIT_SOURCE_KEY_PACKAGE:
    ln->leaf_node_source = MLS_LEAF_SOURCE_KEY_PACKAGE;
    ln->parent_hash = BYTES_NONE;
    ln->lifetime.not_before = T0 - DAY;
    ln->lifetime.not_after = T0 + DAY;
    CHECK_OK(resign_leaf(&b.id->sig, ln, BYTES_NONE, 0, sig));
    break;
  case EDIT_BAD_SIGNATURE:
    memcpy(sig, ln->signature.ptr, MLS_SIG_LEN);
    sig[7] ^= 0x10;
    ln->signature = BYTES(sig, MLS_SIG_LEN);
    break;
  case EDIT_OWN_OLD_KEY:
    ln->encryption_key = tree_leaf(b.g->ep.tree, bob)->encryption_key;
    CHECK_OK(resign_leaf(&b.id->sig, ln, gid, bob, sig));
    break;
  case EDIT_OTHER_MEMBER_KEY:
    ln->encryption_key = tree_leaf(b.g->ep.tree, 2)->encryption_key; /* Carol's */
    CHECK_OK(resign_leaf(&b.id->sig, ln, gid, bob, sig));
    break;
  case EDIT_OTHER_SIGNATURE_KEY:
    /* Carol's signature key (and Carol's signature on the leaf). */
    ln->signature_key = BYTES(c.id->sig.pk, MLS_SIG_PK);
    CHECK_OK(resign_leaf(&c.id->sig, ln, gid, bob, sig));
    break;
  case EDIT_PATH_NODE_KEY_REUSED:
    CHECK(fc.commit.path.n_nodes > 0);
    if (fc.commit.path.n_nodes)
      fc.commit.path.nodes[0].encryption_key = tree_leaf(b.g->ep.tree, 2)->encryption_key;
    break;
  case EDIT_MISSING_REQUIRED:
    ln->capabilities.n_extensions = 0;
    CHECK_OK(resign_leaf(&b.id->sig, ln, gid, bob, sig));
    break;
  }
  buf_reset(&msg);
  CHECK_OK(seal_public(b.g, &b.id->sig, &fc, BYTES_NONE, &msg));
  if (!refused(&a, buf_view(&msg), want)) {
    fprintf(stderr, "    path edit %d victim %u\n", (int)edit, victim);
    CHECK(0);
  }
  group_discard_pending(b.g);
  {
    member *ms[] = {&a, &b, &c};
    still_works(ms, 3, 1);
  }
out:
  arena_free(&ar);
  buf_free(&genuine);
  buf_free(&msg);
  buf_free(&req_body);
  buf_free(&req.body);
  member_free(&a);
  member_free(&b);
  member_free(&c);
}

static void test_path_leaf_node(void) {
  const uint32_t none = UINT32_MAX;
  path_case(EDIT_SOURCE_UPDATE, none, TSR_EPROTOCOL);
  path_case(EDIT_SOURCE_KEY_PACKAGE, none, TSR_EPROTOCOL);
  path_case(EDIT_BAD_SIGNATURE, none, TSR_EVERIFY);
  path_case(EDIT_OWN_OLD_KEY, none, TSR_EPROTOCOL);
  path_case(EDIT_OTHER_MEMBER_KEY, none, TSR_ETREE);
  path_case(EDIT_OTHER_SIGNATURE_KEY, none, TSR_ETREE);
  path_case(EDIT_PATH_NODE_KEY_REUSED, none, TSR_ETREE);
  path_case(EDIT_MISSING_REQUIRED, none, TSR_ECAPABILITY);
  /* A commit removing the receiver is validated like any other: a bad
   * path must not make Alice believe she was removed. */
  path_case(EDIT_BAD_SIGNATURE, 0, TSR_EVERIFY);
  path_case(EDIT_SOURCE_UPDATE, 0, TSR_EPROTOCOL);
  path_case(EDIT_OTHER_SIGNATURE_KEY, 0, TSR_ETREE);
  path_case(EDIT_PATH_NODE_KEY_REUSED, 0, TSR_ETREE);
  path_case(EDIT_MISSING_REQUIRED, 0, TSR_ECAPABILITY);
}

/* --- References, senders ---------------------------------------------------------- */

static void test_unknown_reference(void) {
  member a = {0}, b = {0}, c = {0};
  arena_t ar;
  arena_init(&ar);
  buf_t msg, prop, out;
  buf_init(&msg);
  buf_init(&prop);
  buf_init(&out);
  CHECK_OK(trio(&a, &b, &c, NULL));
  if (test_failing()) goto out;
  uint8_t ref[MLS_MAX_HASH];
  CHECK_OK(crypto_random(ref, sizeof ref));
  mls_proposal_or_ref por = {.type = MLS_POR_REFERENCE,
                             .reference = BYTES(ref, group_suite(a.g)->hash_len)};
  CHECK_OK(craft_commit(&b, &por, 1, true, &ar, &msg));
  CHECK(refused(&a, buf_view(&msg), TSR_EPROTOCOL));
  /* A proposal Alice never received (only Bob has it). */
  CHECK_OK(group_propose_remove(c.g, 2, &prop));
  CHECK_OK(deliver(&b, buf_view(&prop), GROUP_EVENT_PROPOSAL));
  mls_proposal_or_ref unseen = by_ref_last(&b, &ar);
  buf_reset(&msg);
  CHECK_OK(craft_commit(&b, &unseen, 1, true, &ar, &msg));
  CHECK(refused(&a, buf_view(&msg), TSR_EPROTOCOL));
  /* A proposal of the previous epoch. */
  buf_reset(&prop);
  CHECK_OK(group_propose_remove(c.g, 2, &prop));
  CHECK_OK(deliver(&a, buf_view(&prop), GROUP_EVENT_PROPOSAL));
  CHECK_OK(deliver(&b, buf_view(&prop), GROUP_EVENT_PROPOSAL));
  mls_proposal_or_ref old = by_ref_last(&a, &ar);
  group_clear_proposals(a.g);
  group_clear_proposals(b.g);
  group_clear_proposals(c.g);
  {
    member *ms[] = {&a, &b, &c};
    still_works(ms, 3, 0);
  }
  buf_reset(&msg);
  CHECK_OK(craft_commit(&b, &old, 1, true, &ar, &msg));
  CHECK(refused(&a, buf_view(&msg), TSR_EPROTOCOL));
  {
    member *ms[] = {&a, &b, &c};
    still_works(ms, 3, 1);
  }
out:
  arena_free(&ar);
  buf_free(&msg);
  buf_free(&prop);
  buf_free(&out);
  member_free(&a);
  member_free(&b);
  member_free(&c);
}

static void test_external_sender_rules(void) {
  member a = {0}, b = {0}, c = {0};
  arena_t ar;
  arena_init(&ar);
  buf_t msg;
  buf_init(&msg);
  mls_sig_key server, rogue;
  CHECK_OK(crypto_sig_generate(&server));
  CHECK_OK(crypto_sig_generate(&rogue));
  one_ext es;
  one_ext_senders(&es, &server);
  CHECK_OK(trio(&a, &b, &c, &es.list));
  if (test_failing()) goto out;
  mls_framed_content fc = content_of(&a, MLS_CONTENT_PROPOSAL);
  fc.sender.sender_type = MLS_SENDER_EXTERNAL;
  fc.sender.index = 0;
  /* Types an external sender may not send: Update, ExternalInit. */
  mls_proposal up;
  memset(&up, 0, sizeof up);
  up.proposal_type = MLS_PROPOSAL_UPDATE;
  up.update = *tree_leaf(a.g->ep.tree, 2);
  uint8_t kem[MLS_KEM_PK];
  CHECK_OK(crypto_random(kem, sizeof kem));
  mls_proposal bad_types[2] = {up, prop_external_init(kem)};
  for (size_t k = 0; k < 2; k++) {
    fc.proposal = bad_types[k];
    buf_reset(&msg);
    CHECK_OK(seal_public(a.g, &server, &fc, BYTES_NONE, &msg));
    CHECK(refused(&a, buf_view(&msg), TSR_ESENDER));
  }
  /* Sender index past the external_senders list. */
  fc.proposal = prop_remove(2);
  fc.sender.index = 1;
  buf_reset(&msg);
  CHECK_OK(seal_public(a.g, &server, &fc, BYTES_NONE, &msg));
  CHECK(refused(&a, buf_view(&msg), TSR_ESENDER));
  fc.sender.index = UINT32_MAX;
  buf_reset(&msg);
  CHECK_OK(seal_public(a.g, &server, &fc, BYTES_NONE, &msg));
  CHECK(refused(&a, buf_view(&msg), TSR_ESENDER));
  /* Signed by someone else as sender 0. */
  fc.sender.index = 0;
  buf_reset(&msg);
  CHECK_OK(seal_public(a.g, &rogue, &fc, BYTES_NONE, &msg));
  CHECK(refused(&a, buf_view(&msg), TSR_EVERIFY));
  /* An external sender may not commit. */
  mls_framed_content cm = content_of(&a, MLS_CONTENT_COMMIT);
  cm.sender.sender_type = MLS_SENDER_EXTERNAL;
  mls_proposal_or_ref por = by_value(prop_remove(2));
  cm.commit.proposals = &por;
  cm.commit.n_proposals = 1;
  buf_reset(&msg);
  CHECK_OK(seal_public(a.g, &server, &cm, BYTES_NONE, &msg));
  CHECK(refused(&a, buf_view(&msg), TSR_ESENDER));
  /* new_member_proposal is for Add only. */
  mls_framed_content nm = fc;
  nm.sender.sender_type = MLS_SENDER_NEW_MEMBER_PROPOSAL;
  nm.sender.index = 0;
  buf_reset(&msg);
  CHECK_OK(seal_public(a.g, &rogue, &nm, BYTES_NONE, &msg));
  CHECK(refused(&a, buf_view(&msg), TSR_ESENDER));
  /* The genuine Remove from the server is accepted and committed. */
  buf_reset(&msg);
  CHECK_OK(group_external_propose_remove(group_suite(a.g), &server, 0, group_id(a.g),
                                         group_epoch(a.g), 2, &msg));
  CHECK_OK(deliver(&a, buf_view(&msg), GROUP_EVENT_PROPOSAL));
  CHECK_OK(deliver(&b, buf_view(&msg), GROUP_EVENT_PROPOSAL));
  CHECK_OK(deliver(&c, buf_view(&msg), GROUP_EVENT_PROPOSAL));
  buf_reset(&msg);
  CHECK_OK(group_commit(b.g, NULL, &msg, NULL));
  CHECK_OK(group_merge_pending(b.g));
  CHECK_OK(deliver(&a, buf_view(&msg), GROUP_EVENT_COMMIT));
  CHECK_OK(deliver(&c, buf_view(&msg), GROUP_EVENT_REMOVED));
  {
    member *ms[] = {&a, &b};
    still_works(ms, 2, 0);
  }
out:
  arena_free(&ar);
  buf_free(&msg);
  buf_free(&es.body);
  crypto_sig_wipe(&server);
  crypto_sig_wipe(&rogue);
  member_free(&a);
  member_free(&b);
  member_free(&c);
}

/* External senders in a group without the external_senders extension. */
static void test_external_sender_without_extension(void) {
  member a = {0}, b = {0}, c = {0};
  buf_t msg;
  buf_init(&msg);
  mls_sig_key server;
  CHECK_OK(crypto_sig_generate(&server));
  CHECK_OK(trio(&a, &b, &c, NULL));
  if (test_failing()) goto out;
  CHECK_OK(group_external_propose_remove(group_suite(a.g), &server, 0, group_id(a.g),
                                         group_epoch(a.g), 2, &msg));
  CHECK(refused(&a, buf_view(&msg), TSR_ESENDER));
  {
    member *ms[] = {&a, &b, &c};
    still_works(ms, 3, 2);
  }
out:
  buf_free(&msg);
  crypto_sig_wipe(&server);
  member_free(&a);
  member_free(&b);
  member_free(&c);
}

/* Member senders at a blank leaf (leaf 3 of the trio) or past the tree,
 * with a valid membership tag. */
static void test_blank_leaf_sender(void) {
  member a = {0}, b = {0}, c = {0};
  buf_t msg;
  buf_init(&msg);
  group_identity *eve = ident("eve");
  CHECK_OK(trio(&a, &b, &c, NULL));
  if (test_failing()) goto out;
  const uint32_t senders[] = {3, 4, 77};
  for (size_t k = 0; k < 3; k++) {
    mls_framed_content fc = content_of(&a, MLS_CONTENT_PROPOSAL);
    fc.sender.index = senders[k];
    fc.proposal = prop_remove(2);
    buf_reset(&msg);
    CHECK_OK(seal_public(a.g, &eve->sig, &fc, BYTES_NONE, &msg));
    CHECK(refused(&b, buf_view(&msg), TSR_ESENDER));
    mls_framed_content cm = content_of(&a, MLS_CONTENT_COMMIT);
    cm.sender.index = senders[k];
    buf_reset(&msg);
    CHECK_OK(seal_public(a.g, &eve->sig, &cm, BYTES_NONE, &msg));
    CHECK(refused(&b, buf_view(&msg), TSR_ESENDER));
  }
  /* A removed member's leaf is blank too: Carol, after Alice removes
   * her, still has the old epoch's keys but that epoch is gone. */
  {
    member *ms[] = {&a, &b, &c};
    still_works(ms, 3, 0);
  }
out:
  buf_free(&msg);
  group_identity_free(eve);
  member_free(&a);
  member_free(&b);
  member_free(&c);
}

/* §6.2: application data only as PrivateMessage. */
static void test_public_application_message(void) {
  member a = {0}, b = {0}, c = {0};
  buf_t msg;
  buf_init(&msg);
  CHECK_OK(trio(&a, &b, &c, NULL));
  if (test_failing()) goto out;
  mls_framed_content fc = content_of(&b, MLS_CONTENT_APPLICATION);
  fc.application_data = BYTES("in the clear", 12);
  CHECK_OK(seal_public(b.g, &b.id->sig, &fc, BYTES_NONE, &msg));
  CHECK(refused(&a, buf_view(&msg), TSR_EPROTOCOL));
  CHECK(refused(&c, buf_view(&msg), TSR_EPROTOCOL));
  {
    member *ms[] = {&a, &b, &c};
    still_works(ms, 3, 1);
  }
out:
  buf_free(&msg);
  member_free(&a);
  member_free(&b);
  member_free(&c);
}

/* PreSharedKey rules (§12.1.4, §12.2): duplicates, unknown, wrong usage,
 * wrong nonce length. */
static void test_psk_rules(void) {
  member a = {0}, b = {0}, c = {0};
  arena_t ar;
  arena_init(&ar);
  buf_t msg;
  buf_init(&msg);
  CHECK_OK(trio(&a, &b, &c, NULL));
  if (test_failing()) goto out;
  member *ms[] = {&a, &b, &c};
  for (size_t i = 0; i < 3; i++)
    CHECK_OK(group_add_external_psk(ms[i]->g, BYTES("psk1", 4), BYTES("secret-1", 8)));
  uint8_t nonce[MLS_MAX_HASH];
  CHECK_OK(crypto_random(nonce, sizeof nonce));
  size_t h = group_suite(a.g)->hash_len;
  mls_proposal psk;
  memset(&psk, 0, sizeof psk);
  psk.proposal_type = MLS_PROPOSAL_PSK;
  psk.psk.psktype = MLS_PSK_EXTERNAL;
  psk.psk.psk_id = BYTES("psk1", 4);
  psk.psk.psk_nonce = BYTES(nonce, h);
  mls_proposal_or_ref dup[2] = {by_value(psk), by_value(psk)};
  CHECK_OK(craft_commit(&b, dup, 2, false, &ar, &msg));
  CHECK(refused(&a, buf_view(&msg), TSR_EPROTOCOL));
  /* Unknown PSK. */
  mls_proposal unknown = psk;
  unknown.psk.psk_id = BYTES("nope", 4);
  mls_proposal_or_ref por = by_value(unknown);
  buf_reset(&msg);
  CHECK_OK(craft_commit(&b, &por, 1, false, &ar, &msg));
  CHECK(refused(&a, buf_view(&msg), TSR_ENOTFOUND));
  /* Nonce of the wrong length. */
  mls_proposal short_nonce = psk;
  short_nonce.psk.psk_nonce = BYTES(nonce, h - 1);
  por = by_value(short_nonce);
  buf_reset(&msg);
  CHECK_OK(craft_commit(&b, &por, 1, false, &ar, &msg));
  CHECK(refused(&a, buf_view(&msg), TSR_EPROTOCOL));
  buf_reset(&msg);
  CHECK_OK(craft_proposal(&b, &short_nonce, &msg));
  CHECK(refused(&a, buf_view(&msg), TSR_EPROTOCOL));
  /* Resumption PSKs of usage reinit / branch outside a new group. */
  const uint8_t usages[2] = {MLS_RESUMPTION_REINIT, MLS_RESUMPTION_BRANCH};
  for (size_t k = 0; k < 2; k++) {
    mls_proposal res = psk;
    res.psk.psktype = MLS_PSK_RESUMPTION;
    res.psk.psk_id = BYTES_NONE;
    res.psk.usage = usages[k];
    res.psk.psk_group_id = group_id(a.g);
    res.psk.psk_epoch = group_epoch(a.g) - 1;
    por = by_value(res);
    buf_reset(&msg);
    CHECK_OK(craft_commit(&b, &por, 1, false, &ar, &msg));
    CHECK(refused(&a, buf_view(&msg), TSR_EPROTOCOL));
    buf_reset(&msg);
    CHECK_OK(craft_proposal(&b, &res, &msg));
    CHECK(refused(&a, buf_view(&msg), TSR_EPROTOCOL));
  }
  still_works(ms, 3, 1);
out:
  arena_free(&ar);
  buf_free(&msg);
  member_free(&a);
  member_free(&b);
  member_free(&c);
}

/* --- Welcome (§12.4.3.1) ------------------------------------------------------------ */

typedef struct {
  int kind;
  const mls_sig_key *alice, *bob;
  bytes_t stale_tree;
  uint8_t sig[MLS_SIG_LEN];
} gi_edit;

enum { GI_FLIP_SIG, GI_SIGNED_BY_OTHER, GI_STALE_TREE, GI_BLANK_SIGNER };

static int sign_group_info(const mls_sig_key *key, mls_group_info *gi,
                           uint8_t sig[MLS_SIG_LEN]) {
  buf_t tbs;
  buf_init(&tbs);
  msg_encode_group_info_tbs(&tbs, gi);
  int rc = tbs.err ? tbs.err
                   : mls_sign_with_label(mls_suite_get(SUITE), key, "GroupInfoTBS",
                                         buf_view(&tbs), sig);
  buf_free(&tbs);
  if (!rc) gi->signature = BYTES(sig, MLS_SIG_LEN);
  return rc;
}

static int edit_group_info(mls_group_info *gi, gi_edit *e) {
  switch (e->kind) {
  case GI_FLIP_SIG:
    memcpy(e->sig, gi->signature.ptr, MLS_SIG_LEN);
    e->sig[0] ^= 1;
    gi->signature = BYTES(e->sig, MLS_SIG_LEN);
    return 0;
  case GI_SIGNED_BY_OTHER: return sign_group_info(e->bob, gi, e->sig);
  case GI_STALE_TREE:
    for (size_t i = 0; i < gi->extensions.n; i++)
      if (gi->extensions.items[i].extension_type == MLS_EXT_RATCHET_TREE)
        gi->extensions.items[i].extension_data = e->stale_tree;
    return sign_group_info(e->alice, gi, e->sig);
  case GI_BLANK_SIGNER: gi->signer = 3; return sign_group_info(e->alice, gi, e->sig);
  default: return TSR_EINVAL;
  }
}

/* Opens the Welcome for ks, edits its GroupInfo and seals it again: the
 * GroupInfo under the same welcome key, the GroupSecrets to the key
 * package's init key (the encrypted GroupInfo is their context). */
static int reseal_welcome(const kp_secret *ks, bytes_t welcome, gi_edit *e, buf_t *out) {
  const mls_suite *s = ks->suite;
  size_t h = s->hash_len;
  arena_t a;
  arena_init(&a);
  buf_t gienc, egi, gsenc, ct;
  buf_init(&gienc);
  buf_init(&egi);
  buf_init(&gsenc);
  buf_init(&ct);
  mls_message m;
  mls_group_secrets gs;
  mls_group_info gi;
  mls_key_package kp;
  uint8_t psk_secret[MLS_MAX_HASH], wsec[MLS_MAX_HASH], key[MLS_MAX_AEAD_KEY],
      nonce[MLS_MAX_NONCE], ref[MLS_MAX_HASH], kem[MLS_KEM_PK];
  bytes_t copy;
  int rc = arena_dup(&a, welcome, &copy);
  if (!rc) rc = msg_decode_message(copy, &a, &m);
  if (!rc) rc = welcome_open(ks, &m.welcome, NULL, 0, NULL, &a, &gs, &gi, psk_secret);
  if (!rc && gs.n_psks) rc = TSR_EINVAL; /* not needed here */
  if (!rc) rc = edit_group_info(&gi, e);
  if (!rc) {
    msg_encode_group_info(&gienc, &gi);
    rc = gienc.err;
  }
  if (!rc) rc = keysched_welcome_secret(s, gs.joiner_secret, BYTES_NONE, wsec);
  if (!rc) rc = keysched_welcome_key(s, BYTES(wsec, h), key, nonce);
  uint8_t *p = rc ? NULL : buf_extend(&egi, gienc.len + MLS_AEAD_TAG);
  if (!rc && !p) rc = TSR_ENOMEM;
  if (!rc) rc = crypto_aead_seal(s, key, nonce, BYTES_NONE, buf_view(&gienc), p);
  if (!rc) {
    msg_encode_group_secrets(&gsenc, &gs);
    rc = gsenc.err;
  }
  if (!rc) rc = kp_secret_key_package(ks, &a, &kp);
  if (!rc) rc = kp_ref(s, &kp, ref);
  if (!rc)
    rc = mls_encrypt_with_label(s, kp.init_key, "Welcome", buf_view(&egi),
                                buf_view(&gsenc), kem, &ct);
  for (size_t i = 0; !rc && i < m.welcome.n_secrets; i++)
    if (bytes_eq(m.welcome.secrets[i].new_member, BYTES(ref, h))) {
      m.welcome.secrets[i].encrypted_group_secrets.kem_output = BYTES(kem, MLS_KEM_PK);
      m.welcome.secrets[i].encrypted_group_secrets.ciphertext = buf_view(&ct);
    }
  m.welcome.encrypted_group_info = buf_view(&egi);
  if (!rc) rc = group_encode_message(MLS_WIRE_WELCOME, out, &m.welcome);
  secure_wipe(wsec, sizeof wsec);
  secure_wipe(key, sizeof key);
  secure_wipe(psk_secret, sizeof psk_secret);
  buf_free(&gienc);
  buf_free(&egi);
  buf_free_secret(&gsenc);
  buf_free(&ct);
  arena_free(&a);
  return rc;
}

static void test_welcome_rules(void) {
  member a = {0}, b = {0}, d = {0};
  buf_t kp, commit, welcome, bad, stale, welcome_no_tree;
  buf_init(&kp);
  buf_init(&commit);
  buf_init(&welcome);
  buf_init(&bad);
  buf_init(&stale);
  buf_init(&welcome_no_tree);
  kp_secret *ks = NULL;
  a.id = ident("alice");
  d.id = ident("dave");
  CHECK_OK(group_create(a.id, &CFG, BYTES(GID, strlen(GID)), NULL, &a.g));
  CHECK_OK(add_member(&a, &b, "bob", NULL));
  CHECK_OK(kp_create(d.id, T0, 0, &kp, &ks));
  if (test_failing()) goto out;
  CHECK_OK(group_ratchet_tree(a.g, &stale)); /* the tree before Dave */
  bytes_t kpv = buf_view(&kp);
  group_commit_params p = {.add_key_packages = &kpv, .n_adds = 1};
  CHECK_OK(group_commit(a.g, &p, &commit, &welcome));
  /* The same commit without the tree in the Welcome (kept pending only
   * to get the Welcome; the first one wins). */
  mls_group *a2 = NULL;
  CHECK_OK(group_clone(a.g, &a2));
  if (test_failing() || !a2) goto out;
  group_discard_pending(a2);
  buf_t c2;
  buf_init(&c2);
  group_commit_params p2 = p;
  p2.omit_tree = true;
  CHECK_OK(group_commit(a2, &p2, &c2, &welcome_no_tree));
  group_free(a2);
  buf_free(&c2);
  CHECK_OK(group_merge_pending(a.g));
  CHECK_OK(deliver(&b, buf_view(&commit), GROUP_EVENT_COMMIT));
  if (test_failing()) goto out;

  gi_edit edits[] = {{.kind = GI_FLIP_SIG},
                     {.kind = GI_SIGNED_BY_OTHER},
                     {.kind = GI_STALE_TREE},
                     {.kind = GI_BLANK_SIGNER}};
  const int want[] = {TSR_EVERIFY, TSR_EVERIFY, TSR_ETREE, TSR_EPROTOCOL};
  for (size_t k = 0; k < sizeof edits / sizeof edits[0]; k++) {
    edits[k].alice = &a.id->sig;
    edits[k].bob = &b.id->sig;
    edits[k].stale_tree = buf_view(&stale);
    buf_reset(&bad);
    CHECK_OK(reseal_welcome(ks, buf_view(&welcome), &edits[k], &bad));
    mls_group *g = NULL;
    int rc = group_join(d.id, &CFG, &ks, 1, buf_view(&bad), BYTES_NONE, NULL, 0, NULL,
                        NULL, &g);
    if (rc != want[k]) {
      fprintf(stderr, "    welcome edit %zu: got %s, want %s\n", k, tsr_errname(rc),
              tsr_errname(want[k]));
      CHECK(0);
    }
    CHECK(g == NULL);
    group_free(g);
  }
  /* Tree given out of band: a stale one does not match the tree hash. */
  mls_group *g = NULL;
  CHECK_ERR(group_join(d.id, &CFG, &ks, 1, buf_view(&welcome_no_tree), buf_view(&stale),
                       NULL, 0, NULL, NULL, &g),
            TSR_ETREE);
  CHECK(g == NULL);
  /* The genuine Welcome still works with the same key package. */
  CHECK_OK(group_join(d.id, &CFG, &ks, 1, buf_view(&welcome), BYTES_NONE, NULL, 0, NULL,
                      NULL, &d.g));
  if (test_failing()) goto out;
  CHECK(in_sync(a.g, d.g));
  {
    member *ms[] = {&a, &b, &d};
    still_works(ms, 3, 2);
  }
out:
  kp_secret_free(ks);
  buf_free(&kp);
  buf_free(&commit);
  buf_free(&welcome);
  buf_free(&bad);
  buf_free(&stale);
  buf_free(&welcome_no_tree);
  member_free(&a);
  member_free(&b);
  member_free(&d);
}

/* --- Key packages (§10.1, §7.3) ------------------------------------------------------
 */

enum kp_edit {
  KP_NONE,
  KP_INIT_IS_ENCRYPTION,
  KP_NO_OWN_SUITE,
  KP_NO_VERSION,
  KP_UNLISTED_EXTENSION,
  KP_OTHER_SUITE,
  KP_SOURCE_UPDATE,
  KP_SIGNED_BY_OTHER,
};

/* kp_create's key package for id at `now`, edited and re-signed (leaf and
 * package) with id's key (or other's for KP_SIGNED_BY_OTHER). */
static int make_kp(const group_identity *id, uint64_t now, enum kp_edit edit,
                   const group_identity *other, buf_t *out) {
  const mls_suite *s = id->suite;
  arena_t a;
  arena_init(&a);
  buf_t raw, tbs;
  buf_init(&raw);
  buf_init(&tbs);
  kp_secret *ks = NULL;
  mls_message m;
  int rc = kp_create(id, now, 0, &raw, &ks);
  if (!rc) rc = msg_decode_message(buf_view(&raw), &a, &m);
  mls_key_package *kp = &m.key_package;
  mls_leaf_node *ln = &kp->leaf_node;
  static uint16_t suite3[] = {MLS_SUITE_X25519_CHACHA20POLY1305_SHA256_ED25519};
  static uint16_t v2[] = {2};
  static mls_extension grease_ext = {.extension_type = GREASE_EXT};
  const mls_sig_key *key = &id->sig;
  if (!rc) switch (edit) {
    case KP_NONE: break;
    case KP_INIT_IS_ENCRYPTION: kp->init_key = ln->encryption_key; break;
    case KP_NO_OWN_SUITE:
      ln->capabilities.cipher_suites = suite3;
      ln->capabilities.n_cipher_suites = 1;
      break;
    case KP_NO_VERSION:
      ln->capabilities.versions = v2;
      ln->capabilities.n_versions = 1;
      break;
    case KP_UNLISTED_EXTENSION:
      ln->extensions.items = &grease_ext;
      ln->extensions.n = 1;
      break;
    case KP_OTHER_SUITE: kp->cipher_suite = suite3[0]; break;
    case KP_SOURCE_UPDATE: ln->leaf_node_source = MLS_LEAF_SOURCE_UPDATE; break;
    case KP_SIGNED_BY_OTHER: key = &other->sig; break;
    }
  uint8_t lsig[MLS_SIG_LEN], ksig[MLS_SIG_LEN];
  if (!rc) {
    msg_encode_leaf_node_tbs(&tbs, ln, BYTES_NONE, 0);
    rc = tbs.err ? tbs.err
                 : mls_sign_with_label(s, key, "LeafNodeTBS", buf_view(&tbs), lsig);
    ln->signature = BYTES(lsig, MLS_SIG_LEN);
  }
  if (!rc) {
    buf_reset(&tbs);
    msg_encode_key_package_tbs(&tbs, kp);
    rc = tbs.err ? tbs.err
                 : mls_sign_with_label(s, key, "KeyPackageTBS", buf_view(&tbs), ksig);
    kp->signature = BYTES(ksig, MLS_SIG_LEN);
  }
  if (!rc) rc = group_encode_message(MLS_WIRE_KEY_PACKAGE, out, kp);
  kp_secret_free(ks);
  buf_free(&raw);
  buf_free(&tbs);
  arena_free(&a);
  return rc;
}

static void test_key_package_rules(void) {
  member a = {0}, b = {0}, c = {0};
  arena_t ar;
  arena_init(&ar);
  buf_t st, msg, out, w, kp;
  buf_init(&st);
  buf_init(&msg);
  buf_init(&out);
  buf_init(&w);
  buf_init(&kp);
  group_identity *dave = ident("dave"), *eve = ident("eve");
  CHECK_OK(trio(&a, &b, &c, NULL));
  if (test_failing()) goto out;
  struct {
    uint64_t now;
    enum kp_edit edit;
    int want;
  } cases[] = {
      {T0 - 100 * DAY, KP_NONE, TSR_EEXPIRED}, /* expired (90-day lifetime) */
      {T0 + 2 * DAY, KP_NONE, TSR_EEXPIRED},   /* not yet valid */
      {T0, KP_INIT_IS_ENCRYPTION, TSR_EPROTOCOL},
      {T0, KP_NO_OWN_SUITE, TSR_ECAPABILITY},
      {T0, KP_NO_VERSION, TSR_ECAPABILITY},
      {T0, KP_UNLISTED_EXTENSION, TSR_ECAPABILITY},
      {T0, KP_OTHER_SUITE, TSR_EUNSUPPORTED},
      {T0, KP_SOURCE_UPDATE, TSR_EPROTOCOL},
      {T0, KP_SIGNED_BY_OTHER, TSR_EVERIFY},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    buf_reset(&kp);
    CHECK_OK(make_kp(dave, cases[k].now, cases[k].edit, eve, &kp));
    int want = cases[k].want;
    bool ok = true;
    mls_key_package dec;
    ok &= kp_decode_validate(group_suite(a.g), buf_view(&kp), &ar, T0, &dec) == want;
    /* Our own API refuses it and changes nothing. */
    save(&a, &st);
    bytes_t kpv = buf_view(&kp);
    group_commit_params p = {.add_key_packages = &kpv, .n_adds = 1};
    buf_reset(&out);
    ok &= unchanged(&a, &st, group_commit(a.g, &p, &out, &w), want, &out);
    ok &= w.len == 0;
    ok &= unchanged(&a, &st, group_propose_add(a.g, kpv, &out), want, &out);
    /* Received from Bob as a proposal and inside a commit. */
    mls_proposal add = prop_add(kpv, &ar);
    buf_reset(&msg);
    CHECK_OK(craft_proposal(&b, &add, &msg));
    ok &= refused(&a, buf_view(&msg), want);
    mls_proposal_or_ref por = by_value(add);
    buf_reset(&msg);
    CHECK_OK(craft_commit(&b, &por, 1, false, &ar, &msg));
    ok &= refused(&a, buf_view(&msg), want);
    if (!ok) {
      fprintf(stderr, "    key package case %zu\n", k);
      CHECK(0);
    }
  }
  /* The control: the same construction without an edit is accepted. */
  buf_reset(&kp);
  CHECK_OK(make_kp(dave, T0, KP_NONE, eve, &kp));
  mls_key_package dec;
  CHECK_OK(kp_decode_validate(group_suite(a.g), buf_view(&kp), &ar, T0, &dec));
  {
    member *ms[] = {&a, &b, &c};
    still_works(ms, 3, 0);
  }
out:
  arena_free(&ar);
  buf_free_secret(&st);
  buf_free(&msg);
  buf_free(&out);
  buf_free(&w);
  buf_free(&kp);
  group_identity_free(dave);
  group_identity_free(eve);
  member_free(&a);
  member_free(&b);
  member_free(&c);
}

int main(void) {
  if (crypto_init() != 0) return 1;
  RUN(test_crafting_controls);
  RUN(test_duplicate_add);
  RUN(test_add_existing_member);
  RUN(test_update_and_remove_same_leaf);
  RUN(test_remove_blank_or_out_of_range);
  RUN(test_committer_removes_itself);
  RUN(test_committer_own_update);
  RUN(test_two_gce);
  RUN(test_gce_missing_capability);
  RUN(test_reinit_with_others);
  RUN(test_external_init_from_member);
  RUN(test_external_commit_rules);
  RUN(test_path_required);
  RUN(test_path_leaf_node);
  RUN(test_unknown_reference);
  RUN(test_external_sender_rules);
  RUN(test_external_sender_without_extension);
  RUN(test_blank_leaf_sender);
  RUN(test_public_application_message);
  RUN(test_psk_rules);
  RUN(test_welcome_rules);
  RUN(test_key_package_rules);
  return test_report("group_rules");
}
