/* Commits (RFC 9420 §12.4): creation (held pending until merged or
 * discarded) and processing, including external commits (§12.4.3.2). */
#define GROUP_INTERNAL
#include <stdlib.h>
#include <string.h>

#include "mls/codec.h"
#include "mls/group.h"
#include "mls/hpke.h"
#include "tessera/error.h"

#define EXTERNAL_INIT_LABEL "MLS 1.0 external init secret"

/* init_secret of an external commit, receiver side: decapsulate with the
 * current epoch's external_priv and export (§8.3). */
static int external_init_recv(const mls_group *g, bytes_t kem_output,
                              uint8_t out[MLS_MAX_HASH]) {
  uint8_t sk[MLS_KEM_SK], pk[MLS_KEM_PK];
  int rc = keysched_external_keypair(&g->ep.ks, sk, pk);
  hpke_ctx ctx;
  memset(&ctx, 0, sizeof ctx);
  hpke_params hp = {.mode = HPKE_MODE_BASE, .info = BYTES_NONE};
  if (!rc)
    rc = hpke_setup_receiver(&ctx, g->suite, &hp, kem_output, BYTES(sk, MLS_KEM_SK));
  if (!rc)
    rc = hpke_export(&ctx, BYTES(EXTERNAL_INIT_LABEL, strlen(EXTERNAL_INIT_LABEL)), out,
                     g->suite->hash_len);
  hpke_ctx_wipe(&ctx);
  secure_wipe(sk, sizeof sk);
  return rc ? TSR_EDECRYPT : 0;
}

int commit_resolve_proposals(const mls_group *g, const mls_commit *cm,
                             const mls_sender *committer, arena_t *a,
                             proposal_item **out) {
  proposal_item *items = arena_alloc(a, (cm->n_proposals + 1) * sizeof *items);
  if (!items) return TSR_ENOMEM;
  for (size_t i = 0; i < cm->n_proposals; i++) {
    const mls_proposal_or_ref *por = &cm->proposals[i];
    if (por->type == MLS_POR_PROPOSAL) {
      items[i].p = por->proposal;
      items[i].sender = *committer;
      continue;
    }
    const group_cached_proposal *cp = NULL;
    for (size_t k = 0; k < g->n_props; k++)
      if (bytes_eq(por->reference, BYTES(g->props[k].ref, g->suite->hash_len))) {
        cp = &g->props[k];
        break;
      }
    if (!cp) return TSR_EPROTOCOL; /* unknown proposal reference */
    mls_authenticated_content ac;
    int rc = msg_decode_authenticated_content(buf_view(&cp->ac), a, &ac);
    if (rc) return rc;
    items[i].p = ac.content.proposal;
    items[i].sender = ac.content.sender;
    items[i].cached = cp;
  }
  *out = items;
  return 0;
}

int commit_process(mls_group *g, const framing_result *res, group_event *ev) {
  const mls_suite *s = g->suite;
  size_t h = s->hash_len;
  const mls_framed_content *c = &res->ac.content;
  const mls_commit *cm = &c->commit;
  bool external = c->sender.sender_type == MLS_SENDER_NEW_MEMBER_COMMIT;
  if (!external && c->sender.sender_type != MLS_SENDER_MEMBER) return TSR_ESENDER;
  /* Our own commit that is not the pending one (replayed or discarded). */
  if (!external && c->sender.index == g->ep.own_leaf) return TSR_ESENDER;
  if (external && !cm->has_path) return TSR_EPROTOCOL;
  /* An external joiner cannot judge proposals sent within the group: none
   * by reference (§12.4.3.2). */
  for (size_t i = 0; external && i < cm->n_proposals; i++)
    if (cm->proposals[i].type != MLS_POR_PROPOSAL) return TSR_EPROTOCOL;
  uint32_t committer = external ? UINT32_MAX : c->sender.index;

  arena_t a;
  arena_init(&a);
  group_epoch_state next;
  memset(&next, 0, sizeof next);
  proposal_item *items = NULL;
  proposal_effects fx;
  memset(&fx, 0, sizeof fx);
  uint8_t commit_secret[MLS_MAX_HASH], psk_secret[MLS_MAX_HASH],
      init_secret[MLS_MAX_HASH];
  bool have_commit_secret = false;
  int rc = commit_resolve_proposals(g, cm, &c->sender, &a, &items);
  if (!rc)
    rc = proposal_validate_list(g, items, cm->n_proposals, committer, external, &a);
  /* An external joiner may only remove an old leaf of its own (§12.2):
   * same credential as the path's new LeafNode. */
  for (size_t i = 0; !rc && external && i < cm->n_proposals; i++) {
    if (items[i].p.proposal_type != MLS_PROPOSAL_REMOVE) continue;
    const mls_leaf_node *old = tree_leaf(g->ep.tree, items[i].p.remove);
    if (!old || !group_same_client(&old->credential, &cm->path.leaf_node.credential))
      rc = TSR_EPROTOCOL;
  }
  if (!rc) rc = group_epoch_fork(&g->ep, &next);
  if (!rc)
    rc = proposal_apply_list(g, &next, items, cm->n_proposals, committer, NULL, &a, &fx);
  if (!rc && fx.path_required && !cm->has_path) rc = TSR_EPROTOCOL;
  if (!rc && external && !fx.has_external_init) rc = TSR_EPROTOCOL;
  uint32_t sender = committer;
  if (!rc && external) rc = group_free_leaf(next.tree, &cm->path.leaf_node, &sender);
  if (!rc) next.epoch = g->ep.epoch + 1;
  /* The path's LeafNode meets the group's required capabilities (§7.3). */
  if (!rc && cm->has_path) rc = kp_check_required(&cm->path.leaf_node, &next.ext, &a);
  /* Removed: the path is not for us, but it must still be valid (§12.4.2)
   * before we give up the group. */
  if (!rc && fx.removes_own && cm->has_path)
    rc = treekem_merge_path(next.tree, sender, &cm->path, buf_view(&g->group_id));
  if (!rc && fx.removes_own) {
    /* We cannot follow into the next epoch: the path is not for us. */
    arena_free(&a);
    group_epoch_free(&next);
    g->state = GROUP_REMOVED;
    ev->type = GROUP_EVENT_REMOVED;
    return 0;
  }
  if (!rc && cm->has_path) {
    /* Provisional GroupContext: new epoch, tree hash and extensions, old
     * confirmed transcript hash (§12.4.2). */
    mls_group_context gc = {.version = MLS_VERSION_10,
                            .cipher_suite = s->id,
                            .group_id = buf_view(&g->group_id),
                            .epoch = next.epoch,
                            .confirmed_transcript_hash =
                                next.cth_empty ? BYTES_NONE : BYTES(next.confirmed_th, h),
                            .extensions = next.ext};
    rc = treekem_apply(next.priv, next.tree, sender, &cm->path, &gc, fx.added, fx.n_added,
                       commit_secret, NULL);
    have_commit_secret = rc == 0;
  }
  if (!rc) {
    rc = keysched_confirmed_hash(s, BYTES(g->ep.interim_th, h), res->confirmed_input,
                                 next.confirmed_th);
    next.cth_empty = false;
  }
  if (!rc) rc = keysched_psk_secret(s, fx.psks, fx.n_psks, psk_secret);
  if (!rc) {
    if (external)
      rc = external_init_recv(g, fx.kem_output, init_secret);
    else
      memcpy(init_secret, g->ep.ks.init_secret, h);
  }
  if (!rc)
    rc = group_epoch_finish(g, &next, BYTES(init_secret, h),
                            have_commit_secret ? BYTES(commit_secret, h) : BYTES_NONE,
                            fx.n_psks ? BYTES(psk_secret, h) : BYTES_NONE,
                            res->ac.auth.confirmation_tag);
  if (!rc) {
    keysched_forget_joiner(&next.ks);
    treekem_priv_prune(next.priv, next.tree);
  }
  /* Keep the ReInit for the successor group (§11.2). */
  group_reinit_state ri;
  group_reinit_state_init(&ri);
  if (!rc && fx.has_reinit) rc = proposal_reinit_state(items, cm->n_proposals, &ri);
  secure_wipe(commit_secret, sizeof commit_secret);
  secure_wipe(psk_secret, sizeof psk_secret);
  secure_wipe(init_secret, sizeof init_secret);
  arena_free(&a);
  if (rc) {
    group_reinit_state_free(&ri);
    group_epoch_free(&next);
    return rc;
  }
  group_install_epoch(g, &next);
  if (fx.has_reinit) {
    g->state = GROUP_REINIT;
    group_reinit_state_free(&g->reinit);
    g->reinit = ri;
  }
  ev->type = GROUP_EVENT_COMMIT;
  return 0;
}

/* --- Creation ------------------------------------------------------------------- */

/* The committer's own Update is superseded by its path (§12.2). */
static bool own_update(const mls_group *g, const group_cached_proposal *cp) {
  return cp->type == MLS_PROPOSAL_UPDATE && cp->sender.sender_type == MLS_SENDER_MEMBER &&
         cp->sender.index == g->ep.own_leaf;
}

/* §12.2: the committer leaves out cached proposals that would make its
 * list invalid (a Remove of itself, a second Update/Remove of a leaf, an
 * Add of a client already added or in the group, a repeated PSK, a
 * second GCE), so that one bad or conflicting proposal cannot stop every
 * commit of the epoch. Other types are decided first and Updates last,
 * newest first (Removes and the latest Update are preferred); the order
 * of the list is kept. By-value proposals (the caller's) always stay. */
static int drop_conflicting(const mls_group *g, arena_t *a, proposal_item *items,
                            mls_proposal_or_ref *pors, size_t *n) {
  size_t total = *n;
  bool *keep = arena_alloc(a, (total + 1) * sizeof *keep);
  proposal_item *tmp = arena_alloc(a, (total + 1) * sizeof *tmp);
  if (!keep || !tmp) return TSR_ENOMEM;
  for (size_t i = 0; i < total; i++) keep[i] = !items[i].cached;
  for (int pass = 0; pass < 2; pass++)
    for (size_t k = 0; k < total; k++) {
      size_t i = pass ? total - 1 - k : k;
      bool upd = items[i].p.proposal_type == MLS_PROPOSAL_UPDATE;
      if (!items[i].cached || upd != (pass == 1)) continue;
      size_t m = 0;
      for (size_t j = 0; j < total; j++)
        if (keep[j] || j == i) tmp[m++] = items[j];
      int rc = proposal_validate_list(g, tmp, m, g->ep.own_leaf, false, a);
      if (rc == TSR_ENOMEM) return rc;
      keep[i] = rc == 0;
    }
  size_t m = 0;
  for (size_t i = 0; i < total; i++)
    if (keep[i]) {
      items[m] = items[i];
      pors[m] = pors[i];
      m++;
    }
  *n = m;
  return 0;
}

/* Fills items/pors from the cache and the by-value request (plus the
 * new group's resumption PSK init_psk, if any). */
static int gather(mls_group *g, const group_commit_params *p,
                  const group_init_psk *init_psk, arena_t *a, proposal_item **out_items,
                  mls_proposal_or_ref **out_pors, size_t *out_n) {
  size_t by_value =
      p->n_adds + p->n_removes + p->n_psks + (p->gce ? 1 : 0) + (init_psk ? 1 : 0);
  if (p->reinit && by_value) return TSR_EINVAL;
  size_t cap = g->n_props + by_value + 2;
  proposal_item *items = arena_alloc(a, cap * sizeof *items);
  mls_proposal_or_ref *pors = arena_alloc(a, cap * sizeof *pors);
  if (!items || !pors) return TSR_ENOMEM;
  mls_sender me = {.sender_type = MLS_SENDER_MEMBER, .index = g->ep.own_leaf};
  size_t n = 0;
  int rc = 0;
  /* A ReInit goes alone (§12.2): cached ones only when nothing else is
   * committed, and then only the first. */
  size_t others = by_value;
  for (size_t i = 0; i < g->n_props; i++)
    if (!own_update(g, &g->props[i]) && g->props[i].type != MLS_PROPOSAL_REINIT) others++;
  bool take_reinit = !p->reinit && others == 0;
  for (size_t i = 0; i < g->n_props && !p->reinit; i++) {
    const group_cached_proposal *cp = &g->props[i];
    if (own_update(g, cp)) continue;
    if (cp->type == MLS_PROPOSAL_REINIT) {
      if (!take_reinit) continue;
      take_reinit = false;
    }
    mls_authenticated_content ac;
    rc = msg_decode_authenticated_content(buf_view(&cp->ac), a, &ac);
    if (rc) return rc;
    items[n].p = ac.content.proposal;
    items[n].sender = ac.content.sender;
    items[n].cached = cp;
    pors[n].type = MLS_POR_REFERENCE;
    pors[n].reference = BYTES(cp->ref, g->suite->hash_len);
    n++;
  }
  uint64_t now = group_now(&g->cfg);
  for (size_t i = 0; i < p->n_adds; i++) {
    mls_proposal *q = &items[n].p;
    memset(q, 0, sizeof *q);
    q->proposal_type = MLS_PROPOSAL_ADD;
    rc = kp_decode_validate(g->suite, p->add_key_packages[i], a, now, &q->add);
    if (rc) return rc;
    items[n].sender = me;
    n++;
  }
  for (size_t i = 0; i < p->n_removes; i++) {
    mls_proposal *q = &items[n].p;
    memset(q, 0, sizeof *q);
    q->proposal_type = MLS_PROPOSAL_REMOVE;
    q->remove = p->remove_leaves[i];
    if (q->remove >= tree_n_leaves(g->ep.tree) ||
        tree_leaf_is_blank(g->ep.tree, q->remove))
      return TSR_ENOTFOUND;
    items[n].sender = me;
    n++;
  }
  for (size_t i = 0; i < p->n_psks; i++) {
    mls_proposal *q = &items[n].p;
    memset(q, 0, sizeof *q);
    uint8_t *nonce = arena_alloc(a, g->suite->hash_len);
    if (!nonce) return TSR_ENOMEM;
    rc = crypto_random(nonce, g->suite->hash_len);
    if (rc) return rc;
    q->proposal_type = MLS_PROPOSAL_PSK;
    q->psk.psktype = MLS_PSK_EXTERNAL;
    q->psk.psk_id = p->psk_ids[i];
    q->psk.psk_nonce = BYTES(nonce, g->suite->hash_len);
    items[n].sender = me;
    n++;
  }
  if (p->gce) {
    mls_proposal *q = &items[n].p;
    memset(q, 0, sizeof *q);
    q->proposal_type = MLS_PROPOSAL_GROUP_CONTEXT_EXTENSIONS;
    q->gce = *p->gce;
    items[n].sender = me;
    n++;
  }
  if (init_psk) {
    mls_proposal *q = &items[n].p;
    memset(q, 0, sizeof *q);
    q->proposal_type = MLS_PROPOSAL_PSK;
    q->psk = init_psk->id;
    items[n].sender = me;
    n++;
  }
  if (p->reinit) {
    const group_reinit_params *r = p->reinit;
    uint16_t version = r->version ? r->version : MLS_VERSION_10;
    if (version != MLS_VERSION_10 || !mls_suite_get(r->cipher_suite))
      return TSR_EUNSUPPORTED;
    mls_proposal *q = &items[n].p;
    memset(q, 0, sizeof *q);
    q->proposal_type = MLS_PROPOSAL_REINIT;
    q->reinit.group_id = r->group_id;
    q->reinit.version = version;
    q->reinit.cipher_suite = r->cipher_suite;
    if (r->extensions) q->reinit.extensions = *r->extensions;
    items[n].sender = me;
    n++;
  }
  for (size_t i = 0; i < n; i++) {
    if (items[i].cached) continue;
    pors[i].type = MLS_POR_PROPOSAL;
    pors[i].proposal = items[i].p;
  }
  rc = drop_conflicting(g, a, items, pors, &n);
  if (rc) return rc;
  *out_items = items;
  *out_pors = pors;
  *out_n = n;
  return 0;
}

static int commit_create(mls_group *g, const group_commit_params *p,
                         const group_init_psk *init_psk, buf_t *commit_msg,
                         buf_t *welcome_msg) {
  if (g->state != GROUP_ACTIVE) return TSR_ESTATE;
  if (g->pending) return TSR_ESTATE;
  const group_commit_params none = {0};
  if (!p) p = &none;
  const mls_suite *s = g->suite;
  size_t h = s->hash_len;
  arena_t a;
  arena_init(&a);
  proposal_item *items = NULL;
  mls_proposal_or_ref *pors = NULL;
  size_t n = 0;
  group_epoch_state next;
  memset(&next, 0, sizeof next);
  proposal_effects fx;
  memset(&fx, 0, sizeof fx);
  uint8_t commit_secret[MLS_MAX_HASH], psk_secret[MLS_MAX_HASH];
  bool has_path = false;
  mls_update_path up;
  memset(&up, 0, sizeof up);
  buf_t input, out, wel;
  buf_init(&input);
  buf_init(&out);
  buf_init(&wel);
  group_pending *pend = NULL;
  group_reinit_state ri;
  group_reinit_state_init(&ri);

  int rc = gather(g, p, init_psk, &a, &items, &pors, &n);
  if (!rc) rc = proposal_validate_list(g, items, n, g->ep.own_leaf, false, &a);
  if (!rc) rc = group_epoch_fork(&g->ep, &next);
  if (!rc)
    rc = proposal_apply_list(g, &next, items, n, g->ep.own_leaf, init_psk, &a, &fx);
  if (!rc && fx.has_reinit) rc = proposal_reinit_state(items, n, &ri);
  if (!rc) {
    next.epoch = g->ep.epoch + 1;
    has_path = fx.path_required || p->force_path;
  }
  if (!rc && has_path) {
    const mls_leaf_node *tmpl = tree_leaf(next.tree, next.own_leaf);
    mls_leaf_node copy;
    rc = tmpl ? msg_copy_leaf_node(&a, tmpl, &copy) : TSR_ESTATE;
    treekem_leaf_params lp = {
        .leaf = &copy, .sig = &g->id->sig, .group_id = buf_view(&g->group_id)};
    if (!rc) rc = treekem_path_begin(next.priv, next.tree, &lp);
    if (!rc) rc = group_epoch_encode_gc(g, &next); /* provisional: old confirmed hash */
    if (!rc)
      rc = treekem_path_encrypt(next.priv, next.tree, buf_view(&next.gc), fx.added,
                                fx.n_added, &a, &up, commit_secret);
  }
  mls_authenticated_content ac;
  memset(&ac, 0, sizeof ac);
  uint8_t sig[MLS_SIG_LEN];
  framing_ctx ctx;
  group_framing_ctx(g, &g->ep, &ctx);
  if (!rc) {
    group_member_content(g, MLS_CONTENT_COMMIT, &ac);
    ac.content.commit.proposals = pors;
    ac.content.commit.n_proposals = n;
    ac.content.commit.has_path = has_path;
    ac.content.commit.path = up;
    rc = framing_sign(&ctx, &ac, sig);
  }
  if (!rc) {
    framing_encode_confirmed_input(&input, &ac);
    rc = input.err ? input.err
                   : keysched_confirmed_hash(s, BYTES(g->ep.interim_th, h),
                                             buf_view(&input), next.confirmed_th);
    next.cth_empty = false;
  }
  if (!rc) rc = keysched_psk_secret(s, fx.psks, fx.n_psks, psk_secret);
  if (!rc)
    rc = group_epoch_finish(g, &next, keysched_view(&g->ep.ks, g->ep.ks.init_secret),
                            has_path ? BYTES(commit_secret, h) : BYTES_NONE,
                            fx.n_psks ? BYTES(psk_secret, h) : BYTES_NONE, BYTES_NONE);
  if (!rc) {
    ac.auth.confirmation_tag = BYTES(next.confirmation_tag, h);
    if (fx.n_added && welcome_msg)
      rc = welcome_create(g, &next, &fx, !p->omit_tree, has_path, &a, &wel);
  }
  if (!rc) {
    pend = calloc(1, sizeof *pend);
    if (!pend) rc = TSR_ENOMEM;
  }
  /* Protect last: for a PrivateMessage it consumes a ratchet generation. */
  if (!rc) {
    if (ac.wire_format == MLS_WIRE_PUBLIC_MESSAGE)
      rc = framing_protect_public(&ctx, &ac, &out);
    else
      rc = framing_protect_private(&ctx, &ac, &out);
  }
  if (!rc) rc = buf_append(commit_msg, out.ptr, out.len);
  if (!rc && wel.len) {
    rc = buf_append(welcome_msg, wel.ptr, wel.len);
    if (rc) commit_msg->len -= out.len;
  }
  secure_wipe(commit_secret, sizeof commit_secret);
  secure_wipe(psk_secret, sizeof psk_secret);
  buf_free(&input);
  buf_free(&wel);
  arena_free(&a);
  if (rc) {
    free(pend);
    buf_free(&out);
    group_reinit_state_free(&ri);
    group_epoch_free(&next);
    return rc;
  }
  if (next.priv) treekem_priv_forget_path(next.priv);
  keysched_forget_joiner(&next.ks);
  treekem_priv_prune(next.priv, next.tree);
  pend->next = next;
  pend->msg = out;
  pend->next_state = fx.has_reinit ? GROUP_REINIT : GROUP_ACTIVE;
  pend->reinit = ri;
  g->pending = pend;
  return 0;
}

int group_commit(mls_group *g, const group_commit_params *p, buf_t *commit_msg,
                 buf_t *welcome_msg) {
  if (g->observer) return TSR_ESTATE;
  return commit_create(g, p, NULL, commit_msg, welcome_msg);
}

int group_merge_pending(mls_group *g) {
  if (!g->pending) return TSR_ESTATE;
  int state = g->pending->next_state;
  group_reinit_state ri = g->pending->reinit;
  group_reinit_state_init(&g->pending->reinit);
  group_install_epoch(g, &g->pending->next);
  g->state = state;
  if (state == GROUP_REINIT) {
    group_reinit_state_free(&g->reinit);
    g->reinit = ri;
  } else {
    group_reinit_state_free(&ri);
  }
  return 0;
}

void group_discard_pending(mls_group *g) {
  if (!g->pending) return;
  group_epoch_free(&g->pending->next);
  buf_free(&g->pending->msg);
  group_reinit_state_free(&g->pending->reinit);
  free(g->pending);
  g->pending = NULL;
}

/* --- Reinitialization and branching (§11.2, §11.3) ----------------------------- */

/* The key packages of a new group against the old group's members: each
 * is an old member other than us; with all, every other old member has
 * one. TSR_EINVAL otherwise. */
static int check_members(const mls_group *old, const mls_suite *s, const bytes_t *kps,
                         size_t n, bool all, uint64_t now) {
  arena_t a;
  arena_init(&a);
  mls_key_package *dec = arena_alloc(&a, (n + 1) * sizeof *dec);
  int rc = dec ? 0 : TSR_ENOMEM;
  for (size_t i = 0; !rc && i < n; i++)
    rc = kp_decode_validate(s, kps[i], &a, now, &dec[i]);
  const mls_tree *t = old->ep.tree;
  uint32_t nl = tree_n_leaves(t);
  for (size_t i = 0; !rc && i < n; i++) {
    bool found = false;
    for (uint32_t l = 0; l < nl && !found; l++) {
      const mls_leaf_node *ln = tree_leaf(t, l);
      found = l != old->ep.own_leaf && ln &&
              group_same_client(&ln->credential, &dec[i].leaf_node.credential);
    }
    if (!found) rc = TSR_EINVAL;
  }
  for (uint32_t l = 0; !rc && all && l < nl; l++) {
    const mls_leaf_node *ln = tree_leaf(t, l);
    if (!ln || l == old->ep.own_leaf) continue;
    bool found = false;
    for (size_t i = 0; i < n && !found; i++)
      found = group_same_client(&ln->credential, &dec[i].leaf_node.credential);
    if (!found) rc = TSR_EINVAL;
  }
  arena_free(&a);
  return rc;
}

/* A new group whose first commit adds kps and injects old's resumption
 * PSK of the current epoch with the given usage. */
static int resume_create(const mls_group *old, const group_identity *id,
                         const group_config *cfg, bytes_t group_id,
                         const mls_extensions *ext, uint8_t usage, const bytes_t *kps,
                         size_t n, buf_t *welcome, mls_group **out) {
  if (n && !kps) return TSR_EINVAL;
  if (!cfg) cfg = &old->cfg;
  uint8_t nonce[MLS_MAX_HASH];
  mls_group *g = NULL;
  group_init_psk ip;
  memset(&ip, 0, sizeof ip);
  buf_t cm;
  buf_init(&cm);
  int rc = check_members(old, id->suite, kps, n, usage == MLS_RESUMPTION_REINIT,
                         group_now(cfg));
  if (!rc) rc = group_create(id, cfg, group_id, ext, &g);
  if (!rc) {
    ip.id.psktype = MLS_PSK_RESUMPTION;
    ip.id.usage = usage;
    ip.id.psk_group_id = buf_view(&old->group_id);
    ip.id.psk_epoch = old->ep.epoch;
    ip.id.psk_nonce = BYTES(nonce, g->suite->hash_len);
    rc = crypto_random(nonce, g->suite->hash_len);
  }
  if (!rc) rc = group_find_psk(old, &ip.id, &ip.value);
  group_commit_params p = {.add_key_packages = kps, .n_adds = n};
  size_t before = welcome ? welcome->len : 0;
  if (!rc) rc = commit_create(g, &p, &ip, &cm, welcome);
  if (!rc) rc = group_merge_pending(g);
  buf_free(&cm);
  if (rc) {
    if (welcome) welcome->len = before;
    group_free(g);
    return rc;
  }
  *out = g;
  return 0;
}

int group_reinit_create(const mls_group *old, const group_identity *id,
                        const group_config *cfg, const bytes_t *key_packages,
                        size_t n_kps, buf_t *welcome, mls_group **out) {
  if (!old || !id || !out) return TSR_EINVAL;
  if (old->state != GROUP_REINIT) return TSR_ESTATE;
  if (!old->reinit.enc.len) return TSR_ENOTFOUND;
  const mls_proposal *r = &old->reinit.p;
  if (r->reinit.version != MLS_VERSION_10 || !mls_suite_get(r->reinit.cipher_suite))
    return TSR_EUNSUPPORTED;
  if (id->suite->id != r->reinit.cipher_suite) return TSR_EINVAL;
  return resume_create(old, id, cfg, r->reinit.group_id, &r->reinit.extensions,
                       MLS_RESUMPTION_REINIT, key_packages, n_kps, welcome, out);
}

int group_branch(const mls_group *g, const group_config *cfg, bytes_t new_group_id,
                 const bytes_t *key_packages, size_t n_kps, buf_t *welcome,
                 mls_group **out) {
  if (!g || !out) return TSR_EINVAL;
  if (g->state != GROUP_ACTIVE) return TSR_ESTATE;
  return resume_create(g, g->id, cfg, new_group_id, &g->ep.ext, MLS_RESUMPTION_BRANCH,
                       key_packages, n_kps, welcome, out);
}
