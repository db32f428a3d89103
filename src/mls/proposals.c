/* Proposals (RFC 9420 §12.1-§12.3): sending, caching by reference,
 * individual validation, list validation and application. */
#define GROUP_INTERNAL
#include <stdlib.h>
#include <string.h>

#include "mls/codec.h"
#include "mls/group.h"
#include "tessera/error.h"

int proposal_ref(const mls_suite *s, bytes_t ac_encoded, uint8_t out[MLS_MAX_HASH]) {
  return mls_ref_hash(s, "MLS 1.0 Proposal Reference", ac_encoded, out);
}

/* Sender types allowed per proposal type (§12.1.8). */
static bool sender_allowed(uint16_t type, uint8_t sender_type) {
  switch (sender_type) {
  case MLS_SENDER_MEMBER: return type != MLS_PROPOSAL_EXTERNAL_INIT;
  case MLS_SENDER_EXTERNAL:
    return type == MLS_PROPOSAL_ADD || type == MLS_PROPOSAL_REMOVE ||
           type == MLS_PROPOSAL_PSK || type == MLS_PROPOSAL_REINIT ||
           type == MLS_PROPOSAL_GROUP_CONTEXT_EXTENSIONS;
  case MLS_SENDER_NEW_MEMBER_PROPOSAL: return type == MLS_PROPOSAL_ADD;
  case MLS_SENDER_NEW_MEMBER_COMMIT:
    return type == MLS_PROPOSAL_EXTERNAL_INIT || type == MLS_PROPOSAL_REMOVE ||
           type == MLS_PROPOSAL_PSK;
  default: return false;
  }
}

static int check_psk_id(const mls_group *g, const mls_psk_id *id, bool external_commit) {
  if (id->psk_nonce.len != g->suite->hash_len) return TSR_EPROTOCOL;
  if (id->psktype == MLS_PSK_RESUMPTION) {
    /* reinit / branch resumption PSKs only belong in a new group's Welcome. */
    if (id->usage != MLS_RESUMPTION_APPLICATION) return TSR_EPROTOCOL;
  } else if (id->psktype != MLS_PSK_EXTERNAL) {
    return TSR_EPROTOCOL;
  }
  (void)external_commit;
  bytes_t v;
  return group_find_psk(g, id, &v);
}

/* Every member supports the non-default extension types of ext, and the
 * required_capabilities in ext (§12.1.7, §11.1). */
static int check_gce(const mls_group *g, const mls_tree *t, const mls_extensions *ext,
                     arena_t *a) {
  (void)g;
  uint32_t n = tree_n_leaves(t);
  for (uint32_t i = 0; i < n; i++) {
    const mls_leaf_node *ln = tree_leaf(t, i);
    if (!ln) continue;
    for (size_t k = 0; k < ext->n; k++) {
      uint16_t type = ext->items[k].extension_type;
      if (type > 5 && !msg_u16_contains(ln->capabilities.extensions,
                                        ln->capabilities.n_extensions, type))
        return TSR_ECAPABILITY;
    }
    int rc = kp_check_required(ln, ext, a);
    if (rc) return rc;
  }
  const mls_extension *x = msg_find_extension(ext, MLS_EXT_EXTERNAL_SENDERS);
  if (x) {
    mls_external_senders es;
    if (msg_decode_external_senders(x->extension_data, a, &es)) return TSR_EPROTOCOL;
  }
  x = msg_find_extension(ext, MLS_EXT_REQUIRED_CAPABILITIES);
  if (x) {
    mls_required_capabilities rq;
    if (msg_decode_required_capabilities(x->extension_data, a, &rq)) return TSR_EPROTOCOL;
  }
  return 0;
}

/* §7.3 checks of an Update's LeafNode for `leaf` against tree t. */
static int check_update_leaf(const mls_group *g, const mls_tree *t,
                             const mls_extensions *ext, const mls_leaf_node *ln,
                             uint32_t leaf, arena_t *a) {
  const mls_leaf_node *cur = tree_leaf(t, leaf);
  if (!cur) return TSR_EPROTOCOL;
  if (ln->leaf_node_source != MLS_LEAF_SOURCE_UPDATE) return TSR_EPROTOCOL;
  if (bytes_eq(ln->encryption_key, cur->encryption_key)) return TSR_EPROTOCOL;
  if (tree_verify_leaf_signature(g->suite, ln, buf_view(&g->group_id), leaf))
    return TSR_EVERIFY;
  int rc = kp_check_leaf_caps(ln, ext);
  if (!rc) rc = kp_check_required(ln, ext, a);
  if (!rc) rc = tree_check_new_leaf(t, ln, leaf);
  return rc;
}

int proposal_validate_one(const mls_group *g, const mls_proposal *p,
                          const mls_sender *sender, const mls_extensions *ext,
                          arena_t *a) {
  if (!sender_allowed(p->proposal_type, sender->sender_type)) return TSR_ESENDER;
  const mls_tree *t = g->ep.tree;
  int rc = 0;
  switch (p->proposal_type) {
  case MLS_PROPOSAL_ADD:
    rc = kp_validate(g->suite, &p->add, group_now(&g->cfg));
    if (!rc) rc = kp_check_required(&p->add.leaf_node, ext, a);
    break;
  case MLS_PROPOSAL_UPDATE:
    if (sender->sender_type != MLS_SENDER_MEMBER) return TSR_ESENDER;
    rc = check_update_leaf(g, t, ext, &p->update, sender->index, a);
    break;
  case MLS_PROPOSAL_REMOVE:
    if (tree_leaf_is_blank(t, p->remove) || p->remove >= tree_n_leaves(t))
      rc = TSR_EPROTOCOL;
    break;
  case MLS_PROPOSAL_PSK: rc = check_psk_id(g, &p->psk, false); break;
  case MLS_PROPOSAL_REINIT:
    if (p->reinit.version < MLS_VERSION_10) rc = TSR_EPROTOCOL;
    break;
  case MLS_PROPOSAL_EXTERNAL_INIT:
    if (p->external_init.len != MLS_KEM_PK) rc = TSR_EPROTOCOL;
    break;
  case MLS_PROPOSAL_GROUP_CONTEXT_EXTENSIONS: rc = check_gce(g, t, &p->gce, a); break;
  default: rc = TSR_EUNSUPPORTED;
  }
  return rc;
}

/* §12.2: an Add of a client already in the group (same signature key or
 * same credential as a member) is invalid unless the list also removes
 * that member. */
static bool add_of_member(const mls_group *g, const proposal_item *items, size_t n,
                          const mls_leaf_node *ln) {
  const mls_tree *t = g->ep.tree;
  uint32_t nl = t ? tree_n_leaves(t) : 0;
  for (uint32_t l = 0; l < nl; l++) {
    const mls_leaf_node *m = tree_leaf(t, l);
    if (!m || (!bytes_eq(m->signature_key, ln->signature_key) &&
               !group_same_client(&m->credential, &ln->credential)))
      continue;
    bool removed = false;
    for (size_t k = 0; k < n && !removed; k++)
      removed = items[k].p.proposal_type == MLS_PROPOSAL_REMOVE && items[k].p.remove == l;
    if (!removed) return true;
  }
  return false;
}

int proposal_validate_list(const mls_group *g, const proposal_item *items, size_t n,
                           uint32_t committer, bool external, arena_t *a) {
  size_t n_gce = 0, n_reinit = 0, n_einit = 0, n_remove = 0;
  for (size_t i = 0; i < n; i++) {
    const mls_proposal *p = &items[i].p;
    uint16_t t = p->proposal_type;
    if (external) {
      if (t != MLS_PROPOSAL_EXTERNAL_INIT && t != MLS_PROPOSAL_REMOVE &&
          t != MLS_PROPOSAL_PSK)
        return TSR_EPROTOCOL;
    } else if (t == MLS_PROPOSAL_EXTERNAL_INIT) {
      return TSR_EPROTOCOL;
    }
    if (t == MLS_PROPOSAL_GROUP_CONTEXT_EXTENSIONS) n_gce++;
    if (t == MLS_PROPOSAL_REINIT) n_reinit++;
    if (t == MLS_PROPOSAL_EXTERNAL_INIT) n_einit++;
    if (t == MLS_PROPOSAL_REMOVE) n_remove++;
    if (!external) {
      if (t == MLS_PROPOSAL_UPDATE && items[i].sender.sender_type == MLS_SENDER_MEMBER &&
          items[i].sender.index == committer)
        return TSR_EPROTOCOL;
      if (t == MLS_PROPOSAL_REMOVE && p->remove == committer) return TSR_EPROTOCOL;
      if (t == MLS_PROPOSAL_ADD && add_of_member(g, items, n, &p->add.leaf_node))
        return TSR_EPROTOCOL;
    }
    /* Pairwise rules; lists are short. */
    for (size_t j = 0; j < i; j++) {
      const mls_proposal *q = &items[j].p;
      uint32_t li = t == MLS_PROPOSAL_UPDATE ? items[i].sender.index : p->remove;
      uint32_t lj =
          q->proposal_type == MLS_PROPOSAL_UPDATE ? items[j].sender.index : q->remove;
      bool ui = t == MLS_PROPOSAL_UPDATE || t == MLS_PROPOSAL_REMOVE;
      bool uj = q->proposal_type == MLS_PROPOSAL_UPDATE ||
                q->proposal_type == MLS_PROPOSAL_REMOVE;
      if (ui && uj && li == lj) return TSR_EPROTOCOL;
      if (t == MLS_PROPOSAL_ADD && q->proposal_type == MLS_PROPOSAL_ADD &&
          (bytes_eq(p->add.leaf_node.signature_key, q->add.leaf_node.signature_key) ||
           bytes_eq(p->add.init_key, q->add.init_key) ||
           group_same_client(&p->add.leaf_node.credential, &q->add.leaf_node.credential)))
        return TSR_EPROTOCOL;
      if (t == MLS_PROPOSAL_PSK && q->proposal_type == MLS_PROPOSAL_PSK) {
        buf_t x, y;
        buf_init(&x);
        buf_init(&y);
        msg_encode_psk_id(&x, &p->psk);
        msg_encode_psk_id(&y, &q->psk);
        bool same = bytes_eq(buf_view(&x), buf_view(&y));
        int err = x.err | y.err;
        buf_free(&x);
        buf_free(&y);
        if (err) return TSR_ENOMEM;
        if (same) return TSR_EPROTOCOL;
      }
    }
  }
  (void)a;
  if (n_gce > 1) return TSR_EPROTOCOL;
  if (n_reinit && n > 1) return TSR_EPROTOCOL;
  if (external && (n_einit != 1 || n_remove > 1)) return TSR_EPROTOCOL;
  return 0;
}

int proposal_apply_list(const mls_group *g, group_epoch_state *next,
                        const proposal_item *items, size_t n, uint32_t committer,
                        const group_init_psk *init_psk, arena_t *a,
                        proposal_effects *fx) {
  memset(fx, 0, sizeof *fx);
  fx->removed_for_external = UINT32_MAX;
  fx->path_required = n == 0;
  size_t n_add = 0, n_psk = 0;
  for (size_t i = 0; i < n; i++) {
    uint16_t t = items[i].p.proposal_type;
    if (t == MLS_PROPOSAL_UPDATE || t == MLS_PROPOSAL_REMOVE ||
        t == MLS_PROPOSAL_EXTERNAL_INIT || t == MLS_PROPOSAL_GROUP_CONTEXT_EXTENSIONS)
      fx->path_required = true;
    if (t == MLS_PROPOSAL_ADD) n_add++;
    if (t == MLS_PROPOSAL_PSK) n_psk++;
  }
  fx->added = arena_alloc(a, (n_add + 1) * sizeof *fx->added);
  fx->added_kps = arena_alloc(a, (n_add + 1) * sizeof *fx->added_kps);
  fx->psks = arena_alloc(a, (n_psk + 1) * sizeof *fx->psks);
  fx->psk_ids = arena_alloc(a, (n_psk + 1) * sizeof *fx->psk_ids);
  if (!fx->added || !fx->added_kps || !fx->psks || !fx->psk_ids) return TSR_ENOMEM;
  int rc;
  /* 1. GroupContextExtensions: the new extensions govern the rest. */
  for (size_t i = 0; i < n; i++) {
    if (items[i].p.proposal_type != MLS_PROPOSAL_GROUP_CONTEXT_EXTENSIONS) continue;
    if (!sender_allowed(MLS_PROPOSAL_GROUP_CONTEXT_EXTENSIONS,
                        items[i].sender.sender_type))
      return TSR_ESENDER;
    rc = check_gce(g, next->tree, &items[i].p.gce, a);
    if (!rc) rc = group_epoch_set_ext(next, &items[i].p.gce);
    if (rc) return rc;
    fx->has_gce = true;
  }
  const mls_extensions *ext = &next->ext;
  /* 2. Updates. */
  for (size_t i = 0; i < n; i++) {
    const proposal_item *it = &items[i];
    if (it->p.proposal_type != MLS_PROPOSAL_UPDATE) continue;
    if (it->sender.sender_type != MLS_SENDER_MEMBER) return TSR_ESENDER;
    rc = check_update_leaf(g, next->tree, ext, &it->p.update, it->sender.index, a);
    if (!rc) rc = tree_update_leaf(next->tree, it->sender.index, &it->p.update);
    if (rc) return rc;
    if (next->priv && it->sender.index == next->own_leaf) {
      /* Our own Update, committed by someone else: switch to its key. */
      if (!it->cached || !it->cached->has_sk) return TSR_EPROTOCOL;
      rc =
          treekem_priv_set_leaf_key(next->priv, BYTES(it->cached->update_sk, MLS_KEM_SK));
      if (rc) return rc;
    }
  }
  /* 3. Removes. */
  for (size_t i = 0; i < n; i++) {
    const proposal_item *it = &items[i];
    if (it->p.proposal_type != MLS_PROPOSAL_REMOVE) continue;
    if (!sender_allowed(MLS_PROPOSAL_REMOVE, it->sender.sender_type)) return TSR_ESENDER;
    uint32_t leaf = it->p.remove;
    if (leaf >= tree_n_leaves(next->tree) || tree_leaf_is_blank(next->tree, leaf))
      return TSR_EPROTOCOL;
    if (committer == UINT32_MAX) fx->removed_for_external = leaf;
    if (next->priv && leaf == next->own_leaf) fx->removes_own = true;
    rc = tree_remove_leaf(next->tree, leaf);
    if (rc) return rc;
  }
  /* 4. Adds, in order. */
  uint64_t now = group_now(&g->cfg);
  for (size_t i = 0; i < n; i++) {
    const proposal_item *it = &items[i];
    if (it->p.proposal_type != MLS_PROPOSAL_ADD) continue;
    if (!sender_allowed(MLS_PROPOSAL_ADD, it->sender.sender_type)) return TSR_ESENDER;
    const mls_key_package *kp = &it->p.add;
    rc = kp_validate(g->suite, kp, now);
    if (!rc) rc = kp_check_required(&kp->leaf_node, ext, a);
    if (!rc) rc = tree_check_new_leaf(next->tree, &kp->leaf_node, TREE_NONE);
    uint32_t leaf;
    if (!rc) rc = tree_add_leaf(next->tree, &kp->leaf_node, &leaf);
    if (rc) return rc;
    fx->added_kps[fx->n_added] = kp;
    fx->added[fx->n_added++] = leaf;
  }
  /* 5. PSKs, in order. */
  for (size_t i = 0; i < n; i++) {
    const proposal_item *it = &items[i];
    if (it->p.proposal_type != MLS_PROPOSAL_PSK) continue;
    buf_t idb, initb;
    buf_init(&idb);
    buf_init(&initb);
    msg_encode_psk_id(&idb, &it->p.psk);
    if (init_psk) msg_encode_psk_id(&initb, &init_psk->id);
    rc = idb.err ? idb.err : initb.err;
    bytes_t v = BYTES_NONE;
    bool is_init = !rc && init_psk && committer != UINT32_MAX &&
                   it->sender.sender_type == MLS_SENDER_MEMBER &&
                   it->sender.index == committer &&
                   bytes_eq(buf_view(&idb), buf_view(&initb));
    buf_free(&initb);
    if (!rc && is_init) {
      if (it->p.psk.psk_nonce.len != g->suite->hash_len) rc = TSR_EPROTOCOL;
      v = init_psk->value;
    } else if (!rc) {
      rc = check_psk_id(g, &it->p.psk, committer == UINT32_MAX);
      if (!rc) rc = group_find_psk(g, &it->p.psk, &v);
    }
    bytes_t idv = BYTES_NONE, vv = BYTES_NONE;
    if (!rc) rc = arena_dup(a, buf_view(&idb), &idv);
    if (!rc) rc = arena_dup(a, v, &vv);
    buf_free(&idb);
    if (rc) return rc;
    fx->psk_ids[fx->n_psks] = it->p.psk;
    fx->psks[fx->n_psks].id = idv;
    fx->psks[fx->n_psks].value = vv;
    fx->n_psks++;
  }
  /* 6./7. ExternalInit and ReInit. */
  for (size_t i = 0; i < n; i++) {
    const proposal_item *it = &items[i];
    if (it->p.proposal_type == MLS_PROPOSAL_EXTERNAL_INIT) {
      if (it->p.external_init.len != MLS_KEM_PK) return TSR_EPROTOCOL;
      fx->has_external_init = true;
      fx->kem_output = it->p.external_init;
    } else if (it->p.proposal_type == MLS_PROPOSAL_REINIT) {
      if (it->p.reinit.version < MLS_VERSION_10) return TSR_EPROTOCOL;
      fx->has_reinit = true;
    }
  }
  return 0;
}

int proposal_reinit_state(const proposal_item *items, size_t n, group_reinit_state *r) {
  for (size_t i = 0; i < n; i++) {
    if (items[i].p.proposal_type != MLS_PROPOSAL_REINIT) continue;
    buf_t enc;
    buf_init(&enc);
    msg_encode_proposal_body(&enc, &items[i].p);
    int rc = enc.err ? enc.err : group_reinit_state_set(r, buf_view(&enc));
    buf_free(&enc);
    return rc;
  }
  return TSR_ENOTFOUND;
}

/* --- Cache ----------------------------------------------------------------- */

int proposal_cache(mls_group *g, const framing_result *res, const uint8_t *update_sk) {
  uint8_t ref[MLS_MAX_HASH];
  int rc = proposal_ref(g->suite, res->encoded, ref);
  if (rc) return rc;
  for (size_t i = 0; i < g->n_props; i++)
    if (memcmp(g->props[i].ref, ref, g->suite->hash_len) == 0) return 0; /* echo */
  if (g->n_props == g->cap_props) {
    size_t cap = g->cap_props ? 2 * g->cap_props : 8;
    group_cached_proposal *np = realloc(g->props, cap * sizeof *np);
    if (!np) return TSR_ENOMEM;
    g->props = np;
    g->cap_props = cap;
  }
  group_cached_proposal *p = &g->props[g->n_props];
  memset(p, 0, sizeof *p);
  buf_init(&p->ac);
  if (buf_set(&p->ac, res->encoded)) return TSR_ENOMEM;
  memcpy(p->ref, ref, g->suite->hash_len);
  p->sender = res->ac.content.sender;
  p->type = res->ac.content.proposal.proposal_type;
  if (update_sk) {
    p->has_sk = true;
    memcpy(p->update_sk, update_sk, MLS_KEM_SK);
  }
  g->n_props++;
  return 0;
}

int proposal_process(mls_group *g, const framing_result *res, group_event *ev) {
  arena_t a;
  arena_init(&a);
  const mls_framed_content *c = &res->ac.content;
  int rc = proposal_validate_one(g, &c->proposal, &c->sender, &g->ep.ext, &a);
  arena_free(&a);
  if (rc) return rc;
  /* A member does not send an Update for someone else; our own Update
   * echoed back has no private key here, so it cannot be applied. */
  if (c->sender.sender_type == MLS_SENDER_MEMBER && c->sender.index == g->ep.own_leaf) {
    uint8_t ref[MLS_MAX_HASH];
    rc = proposal_ref(g->suite, res->encoded, ref);
    if (rc) return rc;
    for (size_t i = 0; i < g->n_props; i++)
      if (memcmp(g->props[i].ref, ref, g->suite->hash_len) == 0) goto done;
    if (c->proposal.proposal_type == MLS_PROPOSAL_UPDATE) return TSR_ESENDER;
  }
  rc = proposal_cache(g, res, NULL);
  if (rc) return rc;
done:
  ev->type = GROUP_EVENT_PROPOSAL;
  return 0;
}

/* --- Sending ------------------------------------------------------------------ */

/* Frames, signs, protects and caches one of our proposals. */
static int send_proposal(mls_group *g, const mls_proposal *p, const uint8_t *update_sk,
                         buf_t *msg) {
  if (g->state != GROUP_ACTIVE || g->observer) return TSR_ESTATE;
  framing_ctx ctx;
  group_framing_ctx(g, &g->ep, &ctx);
  mls_authenticated_content ac;
  group_member_content(g, MLS_CONTENT_PROPOSAL, &ac);
  ac.content.proposal = *p;
  uint8_t sig[MLS_SIG_LEN];
  buf_t enc;
  buf_init(&enc);
  size_t before = msg->len;
  int rc = framing_sign(&ctx, &ac, sig);
  if (!rc) {
    msg_encode_authenticated_content(&enc, &ac);
    rc = enc.err;
  }
  /* Cache first (a failure there leaves the ratchet untouched), then
   * protect; undo the cache entry if protection fails. */
  framing_result fr;
  memset(&fr, 0, sizeof fr);
  fr.ac = ac;
  fr.encoded = buf_view(&enc);
  size_t n_before = g->n_props;
  if (!rc) rc = proposal_cache(g, &fr, update_sk);
  if (!rc) {
    if (ac.wire_format == MLS_WIRE_PUBLIC_MESSAGE)
      rc = framing_protect_public(&ctx, &ac, msg);
    else
      rc = framing_protect_private(&ctx, &ac, msg);
    if (rc && g->n_props > n_before) {
      g->n_props--;
      buf_free(&g->props[g->n_props].ac);
      secure_wipe(&g->props[g->n_props], sizeof g->props[g->n_props]);
    }
  }
  if (rc) msg->len = before;
  buf_free(&enc);
  return rc;
}

int group_propose_add(mls_group *g, bytes_t key_package, buf_t *msg) {
  arena_t a;
  arena_init(&a);
  mls_proposal p;
  memset(&p, 0, sizeof p);
  p.proposal_type = MLS_PROPOSAL_ADD;
  int rc = kp_decode_validate(g->suite, key_package, &a, group_now(&g->cfg), &p.add);
  if (!rc) rc = kp_check_required(&p.add.leaf_node, &g->ep.ext, &a);
  if (!rc) rc = send_proposal(g, &p, NULL, msg);
  arena_free(&a);
  return rc;
}

int group_propose_remove(mls_group *g, uint32_t leaf, buf_t *msg) {
  if (leaf >= tree_n_leaves(g->ep.tree) || tree_leaf_is_blank(g->ep.tree, leaf))
    return TSR_ENOTFOUND;
  mls_proposal p;
  memset(&p, 0, sizeof p);
  p.proposal_type = MLS_PROPOSAL_REMOVE;
  p.remove = leaf;
  return send_proposal(g, &p, NULL, msg);
}

int group_propose_psk(mls_group *g, bytes_t external_psk_id, buf_t *msg) {
  mls_proposal p;
  memset(&p, 0, sizeof p);
  uint8_t nonce[MLS_MAX_HASH];
  p.proposal_type = MLS_PROPOSAL_PSK;
  p.psk.psktype = MLS_PSK_EXTERNAL;
  p.psk.psk_id = external_psk_id;
  p.psk.psk_nonce = BYTES(nonce, g->suite->hash_len);
  bytes_t v;
  int rc = group_find_psk(g, &p.psk, &v);
  if (!rc) rc = crypto_random(nonce, g->suite->hash_len);
  if (!rc) rc = send_proposal(g, &p, NULL, msg);
  return rc;
}

int group_propose_gce(mls_group *g, const mls_extensions *ext, buf_t *msg) {
  arena_t a;
  arena_init(&a);
  int rc = check_gce(g, g->ep.tree, ext, &a);
  arena_free(&a);
  if (rc) return rc;
  mls_proposal p;
  memset(&p, 0, sizeof p);
  p.proposal_type = MLS_PROPOSAL_GROUP_CONTEXT_EXTENSIONS;
  p.gce = *ext;
  return send_proposal(g, &p, NULL, msg);
}

int group_propose_reinit(mls_group *g, bytes_t new_group_id, uint16_t version,
                         uint16_t cipher_suite, const mls_extensions *ext, buf_t *msg) {
  if (!version) version = MLS_VERSION_10;
  if (version != MLS_VERSION_10 || !mls_suite_get(cipher_suite)) return TSR_EUNSUPPORTED;
  const mls_extensions none = {0};
  mls_proposal p;
  memset(&p, 0, sizeof p);
  p.proposal_type = MLS_PROPOSAL_REINIT;
  p.reinit.group_id = new_group_id;
  p.reinit.version = version;
  p.reinit.cipher_suite = cipher_suite;
  p.reinit.extensions = ext ? *ext : none;
  return send_proposal(g, &p, NULL, msg);
}

int group_propose_update(mls_group *g, buf_t *msg) {
  if (g->observer) return TSR_ESTATE;
  const mls_leaf_node *cur = tree_leaf(g->ep.tree, g->ep.own_leaf);
  if (!cur) return TSR_ESTATE;
  uint8_t sk[MLS_KEM_SK], pk[MLS_KEM_PK], sig[MLS_SIG_LEN];
  mls_proposal p;
  memset(&p, 0, sizeof p);
  p.proposal_type = MLS_PROPOSAL_UPDATE;
  p.update = *cur;
  p.update.leaf_node_source = MLS_LEAF_SOURCE_UPDATE;
  p.update.lifetime.not_before = p.update.lifetime.not_after = 0;
  p.update.parent_hash = BYTES_NONE;
  buf_t tbs;
  buf_init(&tbs);
  int rc = crypto_random(sk, sizeof sk);
  if (!rc) rc = crypto_dh_public(sk, pk);
  if (!rc) {
    p.update.encryption_key = BYTES(pk, MLS_KEM_PK);
    msg_encode_leaf_node_tbs(&tbs, &p.update, buf_view(&g->group_id), g->ep.own_leaf);
    rc = tbs.err ? tbs.err
                 : mls_sign_with_label(g->suite, &g->id->sig, "LeafNodeTBS",
                                       buf_view(&tbs), sig);
  }
  if (!rc) {
    p.update.signature = BYTES(sig, MLS_SIG_LEN);
    rc = send_proposal(g, &p, sk, msg);
  }
  buf_free(&tbs);
  secure_wipe(sk, sizeof sk);
  return rc;
}

int group_external_propose_remove(const mls_suite *s, const mls_sig_key *signer,
                                  uint32_t sender_index, bytes_t group_id, uint64_t epoch,
                                  uint32_t leaf, buf_t *msg) {
  framing_ctx ctx;
  memset(&ctx, 0, sizeof ctx);
  ctx.suite = s;
  ctx.group_id = group_id;
  ctx.epoch = epoch;
  ctx.sig_key = signer;
  mls_authenticated_content ac;
  memset(&ac, 0, sizeof ac);
  ac.wire_format = MLS_WIRE_PUBLIC_MESSAGE;
  ac.content.group_id = group_id;
  ac.content.epoch = epoch;
  ac.content.sender.sender_type = MLS_SENDER_EXTERNAL;
  ac.content.sender.index = sender_index;
  ac.content.content_type = MLS_CONTENT_PROPOSAL;
  ac.content.proposal.proposal_type = MLS_PROPOSAL_REMOVE;
  ac.content.proposal.remove = leaf;
  uint8_t sig[MLS_SIG_LEN];
  size_t before = msg->len;
  int rc = framing_sign(&ctx, &ac, sig);
  if (!rc) rc = framing_protect_public(&ctx, &ac, msg);
  if (rc) msg->len = before;
  return rc;
}
