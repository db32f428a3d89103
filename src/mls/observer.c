/* The Delivery Service's public view of a group (observer.h). It reuses
 * the member code for everything public — proposal validation and
 * application (proposals.c), the path merge with its LeafNode and parent
 * hash checks (treekem.c), tree hashes and the GroupContext (group.c) —
 * and skips what needs epoch secrets. */
#define GROUP_INTERNAL
#include "mls/observer.h"

#include <stdlib.h>
#include <string.h>

#include "mls/codec.h"
#include "tessera/error.h"

#define OBS_MAGIC "TSRO"
#define OBS_VERSION 1

static int obs_alloc(const mls_suite *s, const group_config *cfg, bytes_t group_id,
                     mls_group **out) {
  mls_group *g = calloc(1, sizeof *g);
  if (!g) return TSR_ENOMEM;
  g->suite = s;
  g->observer = true;
  group_config_defaults(&g->cfg, cfg);
  buf_init(&g->group_id);
  group_reinit_state_init(&g->reinit);
  arena_init(&g->ep.ext_arena);
  buf_init(&g->ep.ext_enc);
  buf_init(&g->ep.gc);
  g->ep.own_leaf = UINT32_MAX;
  int rc = buf_set(&g->group_id, group_id);
  if (!rc) {
    g->res = calloc(g->cfg.max_resumption_psks, sizeof *g->res);
    if (!g->res) rc = TSR_ENOMEM;
  }
  if (rc) {
    group_free(g);
    return rc;
  }
  *out = g;
  return 0;
}

/* interim_th of e from its confirmed hash and a confirmation tag (§8.2:
 * InterimTranscriptHashInput is the tag as an opaque<V>). */
static int obs_interim(const mls_suite *s, group_epoch_state *e, bytes_t tag) {
  size_t h = s->hash_len;
  if (tag.len != h) return TSR_EPROTOCOL;
  memcpy(e->confirmation_tag, tag.ptr, h);
  uint8_t in[1 + MLS_MAX_HASH];
  in[0] = (uint8_t)h; /* Nh < 64: a one-byte length */
  memcpy(in + 1, tag.ptr, h);
  return keysched_interim_hash(s, e->cth_empty ? BYTES_NONE : BYTES(e->confirmed_th, h),
                               BYTES(in, 1 + h), e->interim_th);
}

int observer_new(bytes_t group_info_msg, bytes_t tree, const group_config *cfg,
                 mls_group **out) {
  arena_t a;
  arena_init(&a);
  mls_message m;
  int rc = msg_decode_message(group_info_msg, &a, &m);
  if (!rc && m.wire_format != MLS_WIRE_GROUP_INFO) rc = TSR_EPROTOCOL;
  const mls_group_info *gi = rc ? NULL : &m.group_info;
  const mls_group_context *gc = gi ? &gi->group_context : NULL;
  const mls_suite *s = gc ? mls_suite_get(gc->cipher_suite) : NULL;
  if (!rc && (gc->version != MLS_VERSION_10 || !s)) rc = TSR_EUNSUPPORTED;
  /* Only a new group's epoch 0 has the zero-length confirmed hash. */
  size_t cth_len = rc ? 0 : gc->confirmed_transcript_hash.len;
  if (!rc && cth_len != s->hash_len && !(gc->epoch == 0 && cth_len == 0))
    rc = TSR_EPROTOCOL;
  mls_group *g = NULL;
  if (!rc) rc = obs_alloc(s, cfg, gc->group_id, &g);
  if (!rc) {
    const mls_extension *x = msg_find_extension(&gi->extensions, MLS_EXT_RATCHET_TREE);
    bytes_t body = x ? x->extension_data : tree;
    rc = body.len ? tree_decode(s, body, &g->ep.tree) : TSR_ETREE;
  }
  if (!rc) rc = tree_validate(g->ep.tree, gc->group_id, gc->tree_hash);
  const mls_leaf_node *signer = NULL;
  if (!rc && !(signer = tree_leaf(g->ep.tree, gi->signer))) rc = TSR_EPROTOCOL;
  if (!rc) rc = welcome_verify_group_info(s, gi, signer->signature_key);
  if (!rc) {
    g->ep.epoch = gc->epoch;
    g->ep.cth_empty = gc->confirmed_transcript_hash.len == 0;
    if (!g->ep.cth_empty)
      memcpy(g->ep.confirmed_th, gc->confirmed_transcript_hash.ptr, s->hash_len);
    rc = group_epoch_set_ext(&g->ep, &gc->extensions);
  }
  if (!rc) rc = obs_interim(s, &g->ep, gi->confirmation_tag);
  if (!rc) rc = group_epoch_encode_gc(g, &g->ep);
  arena_free(&a);
  if (rc) {
    group_free(g);
    return rc;
  }
  *out = g;
  return 0;
}

static void obs_ctx(const mls_group *g, framing_ctx *ctx) {
  memset(ctx, 0, sizeof *ctx);
  ctx->suite = g->suite;
  ctx->group_id = buf_view(&g->group_id);
  ctx->epoch = g->ep.epoch;
  ctx->group_context = buf_view(&g->ep.gc);
  ctx->own_leaf = UINT32_MAX;
  ctx->sender_key = group_sender_key;
  ctx->sender_key_arg = (void *)&g->ep;
  ctx->no_membership_key = true;
}

static int obs_proposal(mls_group *g, const framing_result *res) {
  arena_t a;
  arena_init(&a);
  const mls_framed_content *c = &res->ac.content;
  int rc = proposal_validate_one(g, &c->proposal, &c->sender, &g->ep.ext, &a);
  arena_free(&a);
  return rc ? rc : proposal_cache(g, res, NULL);
}

/* commit_process without secrets: the same checks and tree changes, the
 * path merged (not decrypted), the transcript hashes carried on from the
 * commit's confirmation tag. */
static int obs_commit(mls_group *g, const framing_result *res, uint32_t *joiner) {
  const mls_suite *s = g->suite;
  size_t h = s->hash_len;
  const mls_framed_content *c = &res->ac.content;
  const mls_commit *cm = &c->commit;
  bool external = c->sender.sender_type == MLS_SENDER_NEW_MEMBER_COMMIT;
  if (!external && c->sender.sender_type != MLS_SENDER_MEMBER) return TSR_ESENDER;
  if (external && !cm->has_path) return TSR_EPROTOCOL;
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
  int rc = commit_resolve_proposals(g, cm, &c->sender, &a, &items);
  if (!rc)
    rc = proposal_validate_list(g, items, cm->n_proposals, committer, external, &a);
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
  if (!rc && cm->has_path) rc = kp_check_required(&cm->path.leaf_node, &next.ext, &a);
  if (!rc && cm->has_path)
    rc = treekem_merge_path(next.tree, sender, &cm->path, buf_view(&g->group_id));
  if (!rc) {
    rc = keysched_confirmed_hash(s, BYTES(g->ep.interim_th, h), res->confirmed_input,
                                 next.confirmed_th);
    next.cth_empty = false;
  }
  if (!rc) rc = obs_interim(s, &next, res->ac.auth.confirmation_tag);
  if (!rc) rc = group_epoch_encode_gc(g, &next);
  group_reinit_state ri;
  group_reinit_state_init(&ri);
  if (!rc && fx.has_reinit) rc = proposal_reinit_state(items, cm->n_proposals, &ri);
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
  *joiner = sender;
  return 0;
}

int observer_process(mls_group *g, bytes_t msg, observer_event *ev) {
  if (!g || !g->observer) return TSR_EINVAL;
  if (g->state != GROUP_ACTIVE) return TSR_ESTATE;
  observer_event tmp;
  memset(&tmp, 0, sizeof tmp);
  arena_t a;
  arena_init(&a);
  mls_message m;
  int rc = msg_decode_message(msg, &a, &m);
  if (!rc && m.wire_format == MLS_WIRE_PRIVATE_MESSAGE) {
    const mls_private_message *pm = &m.private_message;
    tmp.wire_format = MLS_WIRE_PRIVATE_MESSAGE;
    tmp.content_type = pm->content_type;
    tmp.epoch = pm->epoch;
    if (!bytes_eq(pm->group_id, buf_view(&g->group_id)))
      rc = TSR_EGROUP;
    else if (pm->epoch != g->ep.epoch)
      rc = TSR_EEPOCH;
    else if (pm->content_type != MLS_CONTENT_APPLICATION)
      rc = TSR_EPROTOCOL; /* handshakes must be public for the server */
  } else if (!rc && m.wire_format == MLS_WIRE_PUBLIC_MESSAGE) {
    framing_ctx ctx;
    obs_ctx(g, &ctx);
    framing_result res;
    rc = framing_unprotect_public(&ctx, &m.public_message, &a, &res);
    if (!rc) {
      const mls_framed_content *c = &res.ac.content;
      tmp.wire_format = MLS_WIRE_PUBLIC_MESSAGE;
      tmp.content_type = c->content_type;
      tmp.epoch = c->epoch;
      tmp.sender_type = c->sender.sender_type;
      tmp.sender = c->sender.index;
      if (c->content_type == MLS_CONTENT_PROPOSAL) {
        tmp.proposal_type = c->proposal.proposal_type;
        if (tmp.proposal_type == MLS_PROPOSAL_REMOVE) tmp.removed = c->proposal.remove;
        rc = obs_proposal(g, &res);
      } else {
        rc = obs_commit(g, &res, &tmp.sender);
      }
    }
  } else if (!rc) {
    rc = TSR_EPROTOCOL;
  }
  arena_free(&a);
  if (!rc && ev) *ev = tmp;
  return rc;
}

bytes_t observer_group_context(const mls_group *g) { return buf_view(&g->ep.gc); }

/* --- Persistence ------------------------------------------------------------- */

int observer_save(const mls_group *g, buf_t *out) {
  if (!g || !g->observer) return TSR_EINVAL;
  size_t h = g->suite->hash_len, start = out->len;
  const group_epoch_state *e = &g->ep;
  wr_raw(out, BYTES(OBS_MAGIC, 4));
  wr_u16(out, OBS_VERSION);
  wr_u16(out, g->suite->id);
  wr_u64(out, g->cfg.now);
  wr_opaque(out, buf_view(&g->group_id));
  wr_u8(out, (uint8_t)g->state);
  wr_u64(out, e->epoch);
  wr_opaque(out, buf_view(&e->ext_enc));
  wr_opaque(out, e->cth_empty ? BYTES_NONE : BYTES(e->confirmed_th, h));
  wr_opaque(out, BYTES(e->interim_th, h));
  wr_opaque(out, BYTES(e->confirmation_tag, h));
  size_t mark = wr_vec_begin(out);
  tree_encode(e->tree, out);
  wr_vec_end(out, mark);
  wr_u32(out, (uint32_t)g->n_props);
  for (size_t i = 0; i < g->n_props; i++) wr_opaque(out, buf_view(&g->props[i].ac));
  wr_opaque(out, buf_view(&g->reinit.enc));
  if (out->err) {
    int rc = out->err;
    out->len = start;
    return rc;
  }
  return 0;
}

static int rd_hash(reader_t *r, size_t h, uint8_t *out, bool allow_empty, bool *empty) {
  bytes_t v;
  if (rd_opaque(r, &v)) return TSR_EDECODE;
  if (allow_empty && v.len == 0) {
    *empty = true;
    return 0;
  }
  if (v.len != h) return rd_fail(r);
  memcpy(out, v.ptr, h);
  return 0;
}

int observer_load(bytes_t in, mls_group **out) {
  reader_t r;
  rd_init(&r, in);
  bytes_t magic, gid, ext, tree, reinit;
  uint16_t ver = 0, suite_id = 0;
  group_config cfg;
  memset(&cfg, 0, sizeof cfg);
  uint8_t state = 0;
  uint64_t epoch = 0;
  rd_raw(&r, 4, &magic);
  if (r.err || memcmp(magic.ptr, OBS_MAGIC, 4) != 0) return TSR_EDECODE;
  rd_u16(&r, &ver);
  if (!r.err && ver != OBS_VERSION) return TSR_EUNSUPPORTED;
  rd_u16(&r, &suite_id);
  rd_u64(&r, &cfg.now);
  rd_opaque(&r, &gid);
  rd_u8(&r, &state);
  rd_u64(&r, &epoch);
  rd_opaque(&r, &ext);
  const mls_suite *s = mls_suite_get(suite_id);
  if (r.err || !s || state > GROUP_REINIT) return TSR_EDECODE;
  mls_group *g;
  int rc = obs_alloc(s, &cfg, gid, &g);
  if (rc) return rc;
  group_epoch_state *e = &g->ep;
  g->state = state;
  e->epoch = epoch;
  size_t h = s->hash_len;
  bool empty = false;
  rd_hash(&r, h, e->confirmed_th, epoch == 0, &empty);
  e->cth_empty = empty;
  rd_hash(&r, h, e->interim_th, false, NULL);
  rd_hash(&r, h, e->confirmation_tag, false, NULL);
  rd_opaque(&r, &tree);
  uint32_t n = 0;
  rd_u32(&r, &n);
  if (r.err) rc = TSR_EDECODE;
  arena_t a;
  arena_init(&a);
  if (!rc) {
    reader_t xr;
    mls_extensions x;
    rd_init(&xr, ext);
    rc = msg_read_extensions(&xr, &a, &x);
    if (!rc) rc = rd_done(&xr);
    if (!rc) rc = group_epoch_set_ext(e, &x);
  }
  if (!rc) rc = tree_decode(s, tree, &e->tree);
  for (uint32_t i = 0; !rc && i < n; i++) {
    bytes_t ac;
    mls_authenticated_content dec;
    if (rd_opaque(&r, &ac) || msg_decode_authenticated_content(ac, &a, &dec) ||
        dec.content.content_type != MLS_CONTENT_PROPOSAL) {
      rc = TSR_EDECODE;
      break;
    }
    framing_result fr;
    memset(&fr, 0, sizeof fr);
    fr.ac = dec;
    fr.encoded = ac;
    rc = proposal_cache(g, &fr, NULL);
  }
  if (!rc && rd_opaque(&r, &reinit)) rc = TSR_EDECODE;
  if (!rc && reinit.len) rc = group_reinit_state_set(&g->reinit, reinit);
  if (!rc && rd_done(&r)) rc = TSR_EDECODE;
  if (!rc) rc = group_epoch_encode_gc(g, e);
  arena_free(&a);
  if (rc) {
    group_free(g);
    return rc == TSR_ENOMEM ? rc : TSR_EDECODE;
  }
  *out = g;
  return 0;
}
