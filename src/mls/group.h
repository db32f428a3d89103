/* MLS member state machine (RFC 9420 §8, §10-§14): identities, key
 * packages, group creation, proposals, commits, Welcome, external joins,
 * application messages, persistence.
 *
 * Ownership: group_identity, kp_secret and mls_group are heap objects
 * owned by their creator and released with their _free function, which
 * wipes every secret they hold. Functions that produce bytes append to a
 * caller-owned buf_t (use buf_free_secret for anything that holds keys:
 * identity and key-package secret encodings, saved group state).
 * Inputs (bytes_t) are only read during the call; nothing keeps a pointer
 * to them.
 *
 * Failure atomicity: every function returns 0 or a negative TSR_E* code
 * and, on failure, leaves the group exactly as it was (processing and
 * commit creation work on a staged copy that is swapped in on success).
 *
 * Commits: group_commit builds a commit and keeps it pending; the group
 * stays in its epoch until group_merge_pending (the delivery service took
 * it) or group_discard_pending (another commit won the epoch; process the
 * winner next). Processing one's own pending commit merges it. While a
 * commit is pending, application messages still use the current epoch.
 *
 * Threads: no shared mutable state; an object may be used from any thread
 * but by one thread at a time (even const accessors: tree hashes are
 * cached lazily). */
#ifndef TSR_MLS_GROUP_H
#define TSR_MLS_GROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/bytes.h"
#include "mls/crypto.h"
#include "mls/messages.h"

/* --- Identity ------------------------------------------------------------ */

/* A member's signing key and credential. Invariant: credential is the
 * encoded Credential (basic: identity), sig.pk matches sig.seed. */
typedef struct group_identity {
  const mls_suite *suite;
  mls_sig_key sig;
  buf_t credential; /* encoded Credential */
  buf_t name;       /* basic credential identity (empty for other types) */
} group_identity;

/* Fresh Ed25519 key and a basic credential carrying name. */
int group_identity_new(uint16_t suite, bytes_t name, group_identity **out);
/* From an existing signing seed and an encoded Credential (test vectors,
 * restored devices). */
int group_identity_from_seed(uint16_t suite, bytes_t seed, bytes_t credential,
                             group_identity **out);
int group_identity_clone(const group_identity *id, group_identity **out);
void group_identity_free(group_identity *id); /* NULL is fine */
/* Versioned persistable form (holds the private key). */
int group_identity_encode(const group_identity *id, buf_t *out);
int group_identity_decode(bytes_t in, group_identity **out);

/* --- Key packages (keypackage.c, §10) ------------------------------------- */

/* Private half of a KeyPackage: what a joiner needs to open a Welcome. */
typedef struct kp_secret {
  const mls_suite *suite;
  buf_t key_package; /* the MLSMessage(KeyPackage) as published */
  uint8_t init_sk[MLS_KEM_SK];
  uint8_t leaf_sk[MLS_KEM_SK]; /* leaf encryption_key's private key */
} kp_secret;

/* Creates a KeyPackage valid over [now - 1h, now + lifetime_s] (lifetime
 * 0: 90 days); `now` 0 means the wall clock. The MLSMessage goes to
 * kp_msg, the private part to *secret (caller frees). Capabilities list
 * both supported suites, every proposal type and the extensions we
 * implement, plus a GREASE value (§13.5). */
int kp_create(const group_identity *id, uint64_t now, uint64_t lifetime_s, buf_t *kp_msg,
              kp_secret **secret);
void kp_secret_free(kp_secret *s);
/* Versioned persistable form of the private part (holds private keys). */
int kp_secret_encode(const kp_secret *s, buf_t *out);
int kp_secret_decode(bytes_t in, kp_secret **out);
/* Builds a kp_secret from its raw parts (test vectors). kp is the
 * MLSMessage(KeyPackage) or a bare KeyPackage encoding. */
int kp_secret_from_parts(bytes_t kp, bytes_t init_sk, bytes_t leaf_sk, kp_secret **out);
/* KeyPackageRef = RefHash("MLS 1.0 KeyPackage Reference", KeyPackage). */
int kp_ref(const mls_suite *s, const mls_key_package *kp, uint8_t out[MLS_MAX_HASH]);
/* §10.1 checks of a received KeyPackage: version, suite == s, signature,
 * leaf source key_package, lifetime contains now (0: wall clock; skipped
 * when now == UINT64_MAX), init_key != encryption_key, capabilities
 * include the suite and version, every extension is listed in the leaf's
 * capabilities. TSR_EVERIFY, TSR_EEXPIRED, TSR_EPROTOCOL, TSR_EUNSUPPORTED,
 * TSR_ECAPABILITY. */
int kp_validate(const mls_suite *s, const mls_key_package *kp, uint64_t now);
/* Decodes an MLSMessage(KeyPackage) (or a bare KeyPackage) and validates
 * it; *kp points into `in` and arena a. */
int kp_decode_validate(const mls_suite *s, bytes_t in, arena_t *a, uint64_t now,
                       mls_key_package *kp);

/* --- Groups ----------------------------------------------------------------- */

typedef struct mls_group mls_group;

/* Tunables; zero fields take the defaults noted. */
typedef struct {
  uint32_t max_generation_gap;  /* out-of-order window per sender; 1000 */
  uint32_t max_skipped_keys;    /* kept keys of skipped generations; 1000 */
  uint32_t padding_block;       /* PrivateMessage padding block; 32 */
  bool encrypt_handshake;       /* proposals/commits as PrivateMessage */
  uint32_t max_resumption_psks; /* past epochs' resumption_psk kept; 8 */
  uint64_t now;                 /* fixed clock (seconds) for tests; 0: wall clock */
} group_config;

/* An external PSK known to this member. */
typedef struct {
  bytes_t id;
  bytes_t secret;
} group_psk;

/* A new one-member group at epoch 0 with the given GroupContext
 * extensions (NULL: none), e.g. external_senders or
 * required_capabilities. cfg may be NULL. */
int group_create(const group_identity *id, const group_config *cfg, bytes_t group_id,
                 const mls_extensions *extensions, mls_group **out);

/* Joins from a Welcome (an MLSMessage or bare Welcome). The secret whose
 * KeyPackageRef appears in the Welcome is used (*used gets its index;
 * optional). tree is the ratchet_tree extension body when the Welcome
 * carries none (empty view otherwise). psks: external PSKs the Welcome
 * may reference; they are also registered in the group.
 *
 * resume_from (may be NULL): our state of the group that resumption PSKs
 * in the Welcome refer to (the old group of a ReInit, the parent of a
 * branch, or any group for usage application); it is only read. A
 * Welcome naming a PSK we cannot resolve is TSR_ENOTFOUND. With a
 * resumption PSK of usage reinit or branch (at most one, §12.4.3.1) the
 * new group must be at epoch 1 and, for reinit, resume_from must have
 * committed a ReInit whose group_id, version, cipher_suite and
 * extensions the new GroupContext matches, at the PSK's epoch (its final
 * one), with every old member in the new group; for branch, same version
 * and suite as resume_from and every new member an old member (members
 * match by credential). Violations are TSR_EPROTOCOL. */
int group_join(const group_identity *id, const group_config *cfg,
               kp_secret *const *secrets, size_t n_secrets, bytes_t welcome, bytes_t tree,
               const group_psk *psks, size_t n_psks, const mls_group *resume_from,
               size_t *used, mls_group **out);

/* External join (§12.4.3.2) from a GroupInfo MLSMessage carrying
 * external_pub (and ratchet_tree, else `tree`). The commit to send goes
 * to commit_msg; the returned group is already in the new epoch. If
 * remove_leaf != UINT32_MAX the commit also removes that (our old) leaf. */
int group_external_join(const group_identity *id, const group_config *cfg,
                        bytes_t group_info, bytes_t tree, uint32_t remove_leaf,
                        const group_psk *psks, size_t n_psks, buf_t *commit_msg,
                        mls_group **out);

void group_free(mls_group *g); /* NULL is fine */
/* Independent deep copy (goes through the persisted form). */
int group_clone(const mls_group *g, mls_group **out);

/* Versioned persistable form of everything needed to resume (secrets
 * included): "TSRG" magic, version, then state. load is strict. */
int group_save(const mls_group *g, buf_t *out);
int group_load(bytes_t in, mls_group **out);

/* Accessors. Views are valid until the group next changes or is freed. */
const mls_suite *group_suite(const mls_group *g);
uint64_t group_epoch(const mls_group *g);
uint32_t group_own_leaf(const mls_group *g);
bytes_t group_id(const mls_group *g);
/* Group is over: we were removed, or a ReInit was committed. */
bool group_is_active(const mls_group *g);
/* resumption_psk (§8.6) of `epoch`: the current one or one of the last
 * cfg.max_resumption_psks. out: MLS_MAX_HASH bytes; *out_len gets
 * hash_len. Works on an inactive group too (the final epoch of a ReInit
 * stays available). TSR_ENOTFOUND if not kept. */
int group_resumption_psk(const mls_group *g, uint64_t epoch, uint8_t *out,
                         size_t *out_len);
bool group_has_pending(const mls_group *g);
/* out: MLS_MAX_HASH bytes; *out_len gets hash_len. */
int group_epoch_authenticator(const mls_group *g, uint8_t *out, size_t *out_len);
/* MLS-Exporter(label, context, len). */
int group_export(const mls_group *g, const char *label, bytes_t context, uint8_t *out,
                 size_t len);
uint32_t group_leaf_count(const mls_group *g);
/* Basic-credential identity of a leaf; TSR_ENOTFOUND if blank. */
int group_member(const mls_group *g, uint32_t leaf, bytes_t *identity);
int group_find_member(const mls_group *g, bytes_t identity, uint32_t *leaf);
/* The signature public key of a leaf; TSR_ENOTFOUND if blank. */
int group_member_signature_key(const mls_group *g, uint32_t leaf, bytes_t *key);
/* The current GroupContext extensions (view into the group). */
const mls_extensions *group_extensions(const mls_group *g);
/* Signed GroupInfo MLSMessage with external_pub (and ratchet_tree when
 * with_tree) for external joiners. */
int group_info(const mls_group *g, bool with_tree, buf_t *out);
/* The ratchet_tree extension body of the current epoch. */
int group_ratchet_tree(const mls_group *g, buf_t *out);

/* External PSKs this member knows (copied; replaces an equal id). */
int group_add_external_psk(mls_group *g, bytes_t id, bytes_t secret);

/* --- Reinitialization and branching (§11.2, §11.3) ---------------------- */

/* Parameters of a ReInit proposal (§12.1.5). version 0 means MLS 1.0;
 * extensions NULL means none. */
typedef struct {
  bytes_t group_id;
  uint16_t version;
  uint16_t cipher_suite;
  const mls_extensions *extensions;
} group_reinit_params;

/* The ReInit committed in this group's last commit (state after the
 * commit: not active). Views into g, valid until it changes or is freed.
 * TSR_ESTATE if no ReInit was committed; TSR_ENOTFOUND if the group was
 * loaded from a format-1 save that predates keeping the parameters. */
int group_reinit_info(const mls_group *g, group_reinit_params *out);

/* Successor of a group whose ReInit was committed (§11.2 step 3): a new
 * group with the ReInit's group_id, cipher suite and extensions, created
 * by `id` (whose suite must be the ReInit's: TSR_EINVAL otherwise), that
 * at once commits Adds of key_packages (one per other old member, each
 * for the new suite; they must match the old members by credential,
 * TSR_EINVAL otherwise) and a PreSharedKey of type resumption, usage
 * reinit, for the old group's final epoch. The returned group is at
 * epoch 1; welcome gets the Welcome for the others, who join it with
 * group_join(..., resume_from = their old group, ...). cfg NULL: the
 * old group's. TSR_ESTATE if old has no committed ReInit;
 * TSR_EUNSUPPORTED for a version or suite we do not implement. */
int group_reinit_create(const mls_group *old, const group_identity *id,
                        const group_config *cfg, const bytes_t *key_packages,
                        size_t n_kps, buf_t *welcome, mls_group **out);

/* Subgroup branch (§11.3): a new group `new_group_id` with g's suite,
 * identity and GroupContext extensions, at once committing Adds of
 * key_packages (fresh ones of some current members of g: TSR_EINVAL if a
 * credential is not g's) and a PreSharedKey of type resumption, usage
 * branch, for g's current epoch. Returned at epoch 1; welcome for the
 * others, who join with resume_from = their state of g. g is unchanged.
 * cfg NULL: g's. TSR_ESTATE if g is not active. */
int group_branch(const mls_group *g, const group_config *cfg, bytes_t new_group_id,
                 const bytes_t *key_packages, size_t n_kps, buf_t *welcome,
                 mls_group **out);

/* --- Proposals (proposals.c) -------------------------------------------- */

/* Standalone proposals (MLSMessage). The sender caches its own proposal
 * so the next commit includes it by reference. */
int group_propose_add(mls_group *g, bytes_t key_package, buf_t *msg);
int group_propose_remove(mls_group *g, uint32_t leaf, buf_t *msg);
int group_propose_update(mls_group *g, buf_t *msg);
int group_propose_psk(mls_group *g, bytes_t external_psk_id, buf_t *msg);
int group_propose_gce(mls_group *g, const mls_extensions *ext, buf_t *msg);
/* ReInit (§12.1.5) to a new group_id, version (0: MLS 1.0) and suite,
 * with the given GroupContext extensions (NULL: none).
 * TSR_EUNSUPPORTED for a version or suite we do not implement. A commit
 * covering it holds nothing else (§12.2): group_commit leaves a cached
 * ReInit out while other proposals are pending. */
int group_propose_reinit(mls_group *g, bytes_t new_group_id, uint16_t version,
                         uint16_t cipher_suite, const mls_extensions *ext, buf_t *msg);
/* Number of cached proposals for the current epoch. */
size_t group_pending_proposals(const mls_group *g);

/* Proposal from an external sender (§12.1.8.1): a PublicMessage signed
 * with `signer`, whose public key is entry `sender_index` of the group's
 * external_senders extension. Only Remove (and Add/PSK/ReInit/GCE in
 * principle) may be sent this way; this helper builds a Remove. */
int group_external_propose_remove(const mls_suite *s, const mls_sig_key *signer,
                                  uint32_t sender_index, bytes_t group_id, uint64_t epoch,
                                  uint32_t leaf, buf_t *msg);

/* --- Commits (commit.c) -------------------------------------------------- */

typedef struct {
  const bytes_t *add_key_packages; /* MLSMessage(KeyPackage) each */
  size_t n_adds;
  const uint32_t *remove_leaves;
  size_t n_removes;
  const bytes_t *psk_ids; /* external PSK ids (registered with the group) */
  size_t n_psks;
  const mls_extensions *gce; /* new GroupContext extensions, or NULL */
  bool force_path;           /* UpdatePath even when not required */
  bool omit_tree;            /* Welcome without the ratchet_tree extension */
  /* A ReInit by value: the commit then holds only it (cached proposals
   * are left out, §12.2); TSR_EINVAL with any other by-value proposal. */
  const group_reinit_params *reinit;
} group_commit_params;

/* Builds a commit with the given proposals by value plus every cached
 * proposal (by reference) that keeps the list valid (§12.2: a cached
 * proposal removing us or conflicting with another is left out, Removes
 * and the latest Update preferred); a cached ReInit only when nothing
 * else is committed (others are preferred, the first ReInit otherwise).
 * commit_msg gets the MLSMessage; welcome_msg (may be NULL if no adds)
 * gets the Welcome when members are added (it is left empty otherwise).
 * The commit stays pending. TSR_ESTATE if a commit is already pending.
 * Once a commit with a ReInit is merged or processed the group is no
 * longer active (group_reinit_info, group_reinit_create). */
int group_commit(mls_group *g, const group_commit_params *p, buf_t *commit_msg,
                 buf_t *welcome_msg);
/* Moves to the pending commit's epoch. TSR_ESTATE if none is pending. */
int group_merge_pending(mls_group *g);
void group_discard_pending(mls_group *g);

/* --- Messages ---------------------------------------------------------------- */

enum group_event_type {
  GROUP_EVENT_APPLICATION = 1, /* data: the plaintext */
  GROUP_EVENT_PROPOSAL = 2,    /* cached for the next commit */
  GROUP_EVENT_COMMIT = 3,      /* the group moved to a new epoch */
  GROUP_EVENT_REMOVED = 4,     /* a commit removed us: group is over */
};

/* What processing a message produced. Owned by the caller: clear with
 * group_event_clear (wipes data). sender is the leaf index for member
 * senders, the external_senders index for external ones. */
typedef struct {
  int type;
  uint8_t sender_type; /* enum mls_sender_type */
  uint32_t sender;
  buf_t data;
  buf_t authenticated_data;
} group_event;

void group_event_init(group_event *ev);
void group_event_clear(group_event *ev);

/* Application data as a PrivateMessage MLSMessage. */
int group_protect(mls_group *g, bytes_t pt, bytes_t aad, buf_t *msg);
/* Processes an MLSMessage (PublicMessage or PrivateMessage) for this
 * group. Distinct codes: TSR_EREPLAY, TSR_EVERIFY / TSR_EDECRYPT,
 * TSR_EEPOCH, TSR_EGROUP, TSR_EDECODE, TSR_ESENDER, TSR_EPROTOCOL. ev may
 * be NULL. On failure the group (and ev) are unchanged. */
int group_process(mls_group *g, bytes_t msg, group_event *ev);

/* --- Internal (group.c, keypackage.c, proposals.c, commit.c, welcome.c) ----
 * Nothing below is for callers outside those files: the layout may change
 * at any time. */
#ifdef GROUP_INTERNAL

#include "mls/framing.h"
#include "mls/keysched.h"
#include "mls/secret_tree.h"
#include "mls/tree.h"
#include "mls/treekem.h"

#define GROUP_DEFAULT_RESUMPTION 8

enum { GROUP_ACTIVE = 0, GROUP_REMOVED = 1, GROUP_REINIT = 2 };

/* One epoch's public and private state. Owns everything it points to;
 * group_epoch_free wipes it. */
typedef struct group_epoch_state {
  uint64_t epoch;
  buf_t ext_enc;      /* encoded Extension vector (with its header) */
  arena_t ext_arena;  /* holds the decoded ext arrays */
  mls_extensions ext; /* views into ext_enc */
  uint8_t tree_hash[MLS_MAX_HASH];
  uint8_t confirmed_th[MLS_MAX_HASH];
  bool cth_empty; /* confirmed hash is the zero-length string (epoch 0) */
  uint8_t interim_th[MLS_MAX_HASH];
  uint8_t confirmation_tag[MLS_MAX_HASH];
  buf_t gc; /* encoded GroupContext of this epoch */
  mls_tree *tree;
  mls_tree_priv *priv; /* NULL once removed */
  uint32_t own_leaf;
  keysched_epoch ks;
  secret_tree st;
  bool st_ready;
} group_epoch_state;

/* A proposal received (or sent) in the current epoch. */
typedef struct {
  buf_t ac; /* encoded AuthenticatedContent */
  uint8_t ref[MLS_MAX_HASH];
  mls_sender sender;
  uint16_t type;
  bool has_sk; /* our own Update: new leaf private key */
  uint8_t update_sk[MLS_KEM_SK];
} group_cached_proposal;

typedef struct {
  uint64_t epoch;
  uint8_t secret[MLS_MAX_HASH];
} group_resumption;

typedef struct {
  buf_t id;
  buf_t secret;
} group_ext_psk;

/* A committed ReInit: its encoded body (empty: none) and a decoded view
 * (proposal_type MLS_PROPOSAL_REINIT, views into enc and arena). */
typedef struct {
  buf_t enc;
  arena_t arena;
  mls_proposal p;
} group_reinit_state;

/* A commit we created, waiting for merge or discard. */
typedef struct {
  group_epoch_state next;
  buf_t msg;                 /* the commit MLSMessage as sent */
  int next_state;            /* GROUP_ACTIVE or GROUP_REINIT */
  bool has_update_sk;        /* leaf key replaced by the path: already in next */
  group_reinit_state reinit; /* next_state GROUP_REINIT: the ReInit */
} group_pending;

/* A reinit/branch resumption PSK that only the commit creating a new
 * group may carry (its value comes from the old group). */
typedef struct {
  mls_psk_id id;
  bytes_t value;
} group_init_psk;

struct mls_group {
  const mls_suite *suite;
  group_config cfg;
  group_identity *id;
  buf_t group_id;
  int state;
  group_epoch_state ep;
  group_cached_proposal *props;
  size_t n_props, cap_props;
  group_resumption *res; /* oldest first, at most cfg.max_resumption_psks */
  size_t n_res;
  group_ext_psk *psks;
  size_t n_psks;
  group_pending *pending;
  group_reinit_state reinit; /* state GROUP_REINIT: the committed ReInit */
  bool observer;             /* the Delivery Service's public view (observer.c): no id,
                                no secrets, no private tree */
};

/* A proposal in a commit's list, resolved. */
typedef struct {
  mls_proposal p;
  mls_sender sender;
  const group_cached_proposal *cached; /* NULL if by value */
} proposal_item;

/* What applying a proposal list produced (arrays in the arena). */
typedef struct {
  uint32_t *added; /* new leaf indices, in order */
  const mls_key_package **added_kps;
  size_t n_added;
  keysched_psk *psks;
  mls_psk_id *psk_ids;
  size_t n_psks;
  bool path_required;
  bool removes_own; /* our leaf is removed */
  bool has_gce;
  bool has_reinit;
  bool has_external_init;
  bytes_t kem_output;            /* ExternalInit */
  uint32_t removed_for_external; /* leaf the external joiner removes, or UINT32_MAX */
} proposal_effects;

/* group.c */
uint64_t group_now(const group_config *cfg);
void group_config_defaults(group_config *dst, const group_config *src);
void group_epoch_free(group_epoch_state *e);
/* Sets ext (encoded + decoded copy) of e. */
int group_epoch_set_ext(group_epoch_state *e, const mls_extensions *ext);
/* Re-encodes e->gc from the fields (tree_hash must be current). */
int group_epoch_encode_gc(const mls_group *g, group_epoch_state *e);
/* Secret tree for e from e->ks.encryption_secret and the tree size. */
int group_epoch_init_secret_tree(const mls_group *g, group_epoch_state *e);
void group_framing_ctx(const mls_group *g, const group_epoch_state *e, framing_ctx *ctx);
/* framing_key_fn over a group_epoch_state (arg): a member's leaf key or an
 * external_senders entry. */
int group_sender_key(void *arg, const mls_sender *sender, bytes_t *pk);
/* Empty group shell (id, suite, config); no epoch. */
int group_alloc(const group_identity *id, const group_config *cfg, bytes_t group_id,
                mls_group **out);
/* Installs next as the current epoch (old one wiped, resumption PSK of
 * the old epoch kept, proposals cleared). */
void group_install_epoch(mls_group *g, group_epoch_state *next);
int group_find_psk(const mls_group *g, const mls_psk_id *id, bytes_t *value);
void group_reinit_state_init(group_reinit_state *r);
void group_reinit_state_free(group_reinit_state *r);
/* Fills r (initialised, empty) from an encoded ReInit body. */
int group_reinit_state_set(group_reinit_state *r, bytes_t enc);
/* Same client according to the application: equal credentials. */
bool group_same_client(const mls_credential *a, const mls_credential *b);
void group_clear_proposals(mls_group *g);
int group_encode_message(uint16_t wire_format, buf_t *out, const void *body);

/* Deep copy of e's public state and private tree state (no key
 * schedule, no secret tree) as the start of the next epoch. */
int group_epoch_fork(const group_epoch_state *e, group_epoch_state *out);
/* Leftmost blank leaf of t, extending t when there is none (the slot an
 * external joiner takes, §12.4.3.2). */
int group_free_leaf(mls_tree *t, const mls_leaf_node *filler, uint32_t *leaf);
/* Finishes a next epoch from the key-schedule inputs: derives secrets
 * (init_secret, commit_secret may be empty), checks or computes the
 * confirmation tag, interim hash and secret tree. tag_in: tag to check
 * (empty: compute into e->confirmation_tag only). */
int group_epoch_finish(const mls_group *g, group_epoch_state *e, bytes_t init_secret,
                       bytes_t commit_secret, bytes_t psk_secret, bytes_t tag_in);
/* The confirmation step shared by commits and joins, once e->ks holds the
 * epoch's secrets: computes the confirmation tag (and checks it equals
 * tag_in unless tag_in is empty: TSR_EVERIFY), stores it and derives the
 * interim transcript hash. */
int group_epoch_confirm(group_epoch_state *e, bytes_t tag_in);
/* Fills the FramedContent header of content sent by this member in the
 * current epoch (handshake wire format from the configuration). */
void group_member_content(const mls_group *g, uint8_t content_type,
                          mls_authenticated_content *ac);

/* keypackage.c */
/* LeafNode template with our capabilities (views into static data and id). */
void kp_default_capabilities(mls_capabilities *c);
int kp_check_leaf_caps(const mls_leaf_node *ln, const mls_extensions *group_ext);
/* The KeyPackage of a secret, decoded into a (views into s). */
int kp_secret_key_package(const kp_secret *s, arena_t *a, mls_key_package *kp);
/* Required capabilities of ext (if any) satisfied by ln's capabilities. */
int kp_check_required(const mls_leaf_node *ln, const mls_extensions *ext, arena_t *a);

/* proposals.c */
int proposal_ref(const mls_suite *s, bytes_t ac_encoded, uint8_t out[MLS_MAX_HASH]);
/* Individual validity (§12.1) of a proposal against the current epoch. */
int proposal_validate_one(const mls_group *g, const mls_proposal *p,
                          const mls_sender *sender, const mls_extensions *ext,
                          arena_t *a);
/* §12.2 list rules. committer: leaf index, or UINT32_MAX for external. */
int proposal_validate_list(const mls_group *g, const proposal_item *items, size_t n,
                           uint32_t committer, bool external, arena_t *a);
/* §12.3 applies the list to next (tree and extensions). init_psk (may be
 * NULL): the one reinit/branch resumption PSK a new group's first commit
 * may use (any other is refused as in a PreSharedKey proposal). */
int proposal_apply_list(const mls_group *g, group_epoch_state *next,
                        const proposal_item *items, size_t n, uint32_t committer,
                        const group_init_psk *init_psk, arena_t *a, proposal_effects *fx);
/* The encoded body of the (single) ReInit among items into r. */
int proposal_reinit_state(const proposal_item *items, size_t n, group_reinit_state *r);
/* Caches a verified proposal (framing result) for the current epoch. */
int proposal_cache(mls_group *g, const framing_result *res, const uint8_t *update_sk);
int proposal_process(mls_group *g, const framing_result *res, group_event *ev);

/* commit.c */
int commit_process(mls_group *g, const framing_result *res, group_event *ev);
/* Resolves a commit's ProposalOrRef list against the proposal cache
 * (items in a; TSR_EPROTOCOL for an unknown reference). */
int commit_resolve_proposals(const mls_group *g, const mls_commit *cm,
                             const mls_sender *committer, arena_t *a,
                             proposal_item **out);

/* welcome.c */
/* Welcome for the new members of a commit being created. */
int welcome_create(const mls_group *g, const group_epoch_state *next,
                   const proposal_effects *fx, bool with_tree, bool has_path, arena_t *a,
                   buf_t *out);
/* GroupInfo (encoded MLSMessage) of epoch e. */
int welcome_group_info(const mls_group *g, const group_epoch_state *e, bool with_tree,
                       bool with_external_pub, buf_t *out);
/* Decrypts a Welcome for kp secret s: GroupSecrets and GroupInfo (views
 * into the arena). Used by join and by the Welcome vectors. */
int welcome_open(const kp_secret *s, const mls_welcome *w, const group_psk *psks,
                 size_t n_psks, const mls_group *resume_from, arena_t *a,
                 mls_group_secrets *gs, mls_group_info *gi,
                 uint8_t psk_secret[MLS_MAX_HASH]);
int welcome_verify_group_info(const mls_suite *s, const mls_group_info *gi,
                              bytes_t signer_pk);

#endif /* GROUP_INTERNAL */

#endif
