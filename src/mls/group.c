/* Group state: identities, creation, accessors, persistence, message
 * dispatch. See group.h for ownership and failure rules. */
#define GROUP_INTERNAL
#include "mls/group.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mls/codec.h"
#include "tessera/error.h"

#define IDENTITY_MAGIC "TSRI"
#define GROUP_MAGIC "TSRG"
/* 2: adds the committed ReInit (group and pending commit) at the end. */
#define GROUP_FORMAT_VERSION 2

/* --- Identity -------------------------------------------------------------- */

static int identity_alloc(uint16_t suite, group_identity **out) {
  const mls_suite *s = mls_suite_get(suite);
  if (!s) return TSR_EUNSUPPORTED;
  group_identity *id = calloc(1, sizeof *id);
  if (!id) return TSR_ENOMEM;
  id->suite = s;
  buf_init(&id->credential);
  buf_init(&id->name);
  *out = id;
  return 0;
}

int group_identity_new(uint16_t suite, bytes_t name, group_identity **out) {
  group_identity *id;
  int rc = identity_alloc(suite, &id);
  if (rc) return rc;
  rc = crypto_sig_generate(&id->sig);
  if (!rc) {
    mls_credential c = {.credential_type = MLS_CREDENTIAL_BASIC, .identity = name};
    msg_encode_credential(&id->credential, &c);
    buf_set(&id->name, name);
    rc = id->credential.err ? id->credential.err : id->name.err;
  }
  if (rc) {
    group_identity_free(id);
    return rc;
  }
  *out = id;
  return 0;
}

int group_identity_from_seed(uint16_t suite, bytes_t seed, bytes_t credential,
                             group_identity **out) {
  if (seed.len != MLS_SIG_SEED) return TSR_EINVAL;
  group_identity *id;
  int rc = identity_alloc(suite, &id);
  if (rc) return rc;
  rc = crypto_sig_from_seed(&id->sig, seed.ptr);
  arena_t a;
  arena_init(&a);
  if (!rc) {
    reader_t r;
    mls_credential c;
    rd_init(&r, credential);
    rc = msg_read_credential(&r, &a, &c);
    if (!rc) rc = rd_done(&r);
    if (!rc) rc = buf_set(&id->credential, credential);
    if (!rc && c.credential_type == MLS_CREDENTIAL_BASIC)
      rc = buf_set(&id->name, c.identity);
  }
  arena_free(&a);
  if (rc) {
    group_identity_free(id);
    return rc;
  }
  *out = id;
  return 0;
}

int group_identity_clone(const group_identity *src, group_identity **out) {
  return group_identity_from_seed(src->suite->id, BYTES(src->sig.seed, MLS_SIG_SEED),
                                  buf_view(&src->credential), out);
}

void group_identity_free(group_identity *id) {
  if (!id) return;
  crypto_sig_wipe(&id->sig);
  buf_free(&id->credential);
  buf_free(&id->name);
  free(id);
}

int group_identity_encode(const group_identity *id, buf_t *out) {
  wr_raw(out, BYTES(IDENTITY_MAGIC, 4));
  wr_u16(out, 1);
  wr_u16(out, id->suite->id);
  wr_opaque(out, BYTES(id->sig.seed, MLS_SIG_SEED));
  wr_opaque(out, buf_view(&id->credential));
  return out->err;
}

int group_identity_decode(bytes_t in, group_identity **out) {
  reader_t r;
  bytes_t magic, seed, cred;
  uint16_t ver = 0, suite = 0;
  rd_init(&r, in);
  rd_raw(&r, 4, &magic);
  rd_u16(&r, &ver);
  rd_u16(&r, &suite);
  rd_opaque(&r, &seed);
  rd_opaque(&r, &cred);
  if (rd_done(&r) || memcmp(magic.ptr, IDENTITY_MAGIC, 4) != 0) return TSR_EDECODE;
  if (ver != 1) return TSR_EUNSUPPORTED;
  int rc = group_identity_from_seed(suite, seed, cred, out);
  return rc == TSR_EINVAL ? TSR_EDECODE : rc;
}

/* --- Config, epochs ------------------------------------------------------- */

uint64_t group_now(const group_config *cfg) {
  if (cfg && cfg->now) return cfg->now;
  return (uint64_t)time(NULL);
}

void group_config_defaults(group_config *dst, const group_config *src) {
  memset(dst, 0, sizeof *dst);
  if (src) *dst = *src;
  if (!dst->max_generation_gap) dst->max_generation_gap = 1000;
  if (!dst->max_skipped_keys) dst->max_skipped_keys = 1000;
  if (!dst->padding_block) dst->padding_block = 32;
  if (dst->padding_block > FRAMING_MAX_PADDING_BLOCK)
    dst->padding_block = FRAMING_MAX_PADDING_BLOCK;
  if (!dst->max_resumption_psks) dst->max_resumption_psks = GROUP_DEFAULT_RESUMPTION;
}

void group_epoch_free(group_epoch_state *e) {
  buf_free(&e->ext_enc);
  arena_free(&e->ext_arena);
  buf_free(&e->gc);
  tree_free(e->tree);
  treekem_priv_free(e->priv);
  keysched_wipe(&e->ks);
  if (e->st_ready) secret_tree_free(&e->st);
  secure_wipe(e, sizeof *e);
}

int group_epoch_set_ext(group_epoch_state *e, const mls_extensions *ext) {
  buf_t enc;
  buf_init(&enc);
  mls_extensions none = {0};
  msg_encode_extensions(&enc, ext ? ext : &none);
  if (enc.err) {
    buf_free(&enc);
    return TSR_ENOMEM;
  }
  arena_t a;
  arena_init(&a);
  reader_t r;
  mls_extensions dec;
  rd_init(&r, buf_view(&enc));
  int rc = msg_read_extensions(&r, &a, &dec);
  if (!rc) rc = rd_done(&r);
  if (rc) {
    buf_free(&enc);
    arena_free(&a);
    return rc;
  }
  buf_free(&e->ext_enc);
  arena_free(&e->ext_arena);
  e->ext_enc = enc;
  e->ext_arena = a;
  e->ext = dec;
  return 0;
}

int group_epoch_encode_gc(const mls_group *g, group_epoch_state *e) {
  size_t h = g->suite->hash_len;
  int rc = tree_root_hash(e->tree, e->tree_hash);
  if (rc) return rc;
  mls_group_context gc = {.version = MLS_VERSION_10,
                          .cipher_suite = g->suite->id,
                          .group_id = buf_view(&g->group_id),
                          .epoch = e->epoch,
                          .tree_hash = BYTES(e->tree_hash, h),
                          /* epoch 0: the zero-length hash of §8.2 */
                          .confirmed_transcript_hash =
                              e->cth_empty ? BYTES_NONE : BYTES(e->confirmed_th, h),
                          .extensions = e->ext};
  buf_reset(&e->gc);
  msg_encode_group_context(&e->gc, &gc);
  return e->gc.err;
}

int group_epoch_init_secret_tree(const mls_group *g, group_epoch_state *e) {
  secret_tree_config sc = {.max_ahead = g->cfg.max_generation_gap,
                           .max_skipped = g->cfg.max_skipped_keys};
  if (e->st_ready) secret_tree_free(&e->st);
  e->st_ready = false;
  int rc =
      secret_tree_init(&e->st, g->suite, keysched_view(&e->ks, e->ks.encryption_secret),
                       tree_n_leaves(e->tree), &sc);
  if (!rc) e->st_ready = true;
  return rc;
}

/* framing_key_fn: signature keys of members and external senders. */
int group_sender_key(void *arg, const mls_sender *sender, bytes_t *pk) {
  const group_epoch_state *e = arg;
  if (sender->sender_type == MLS_SENDER_MEMBER) {
    const mls_leaf_node *ln = tree_leaf(e->tree, sender->index);
    if (!ln) return TSR_ESENDER;
    *pk = ln->signature_key;
    return 0;
  }
  if (sender->sender_type == MLS_SENDER_EXTERNAL) {
    const mls_extension *x = msg_find_extension(&e->ext, MLS_EXT_EXTERNAL_SENDERS);
    if (!x) return TSR_ESENDER;
    /* Walk the encoding directly: no arena needed for one key. */
    reader_t r, sub;
    rd_init(&r, x->extension_data);
    if (rd_vec(&r, &sub)) return TSR_ESENDER;
    for (uint32_t i = 0; rd_more(&sub); i++) {
      bytes_t key;
      uint16_t ct;
      bytes_t body;
      rd_opaque(&sub, &key);
      rd_u16(&sub, &ct);
      if (ct == MLS_CREDENTIAL_BASIC) {
        rd_opaque(&sub, &body);
      } else if (ct == MLS_CREDENTIAL_X509) {
        reader_t certs;
        rd_vec(&sub, &certs);
      } else {
        return TSR_ESENDER;
      }
      if (sub.err) return TSR_ESENDER;
      if (i == sender->index) {
        *pk = key;
        return 0;
      }
    }
    return TSR_ESENDER;
  }
  return TSR_ESENDER;
}

void group_framing_ctx(const mls_group *g, const group_epoch_state *e, framing_ctx *ctx) {
  memset(ctx, 0, sizeof *ctx);
  ctx->suite = g->suite;
  ctx->group_id = buf_view(&g->group_id);
  ctx->epoch = e->epoch;
  ctx->group_context = buf_view(&e->gc);
  ctx->membership_key = keysched_view(&e->ks, e->ks.membership_key);
  ctx->sender_data_secret = keysched_view(&e->ks, e->ks.sender_data_secret);
  ctx->tree = (secret_tree *)&e->st;
  ctx->own_leaf = e->own_leaf;
  ctx->sig_key = &g->id->sig;
  ctx->padding_block = g->cfg.padding_block;
  ctx->sender_key = group_sender_key;
  ctx->sender_key_arg = (void *)e;
}

int group_alloc(const group_identity *id, const group_config *cfg, bytes_t group_id,
                mls_group **out) {
  mls_group *g = calloc(1, sizeof *g);
  if (!g) return TSR_ENOMEM;
  g->suite = id->suite;
  group_config_defaults(&g->cfg, cfg);
  buf_init(&g->group_id);
  group_reinit_state_init(&g->reinit);
  int rc = group_identity_clone(id, &g->id);
  if (!rc) rc = buf_set(&g->group_id, group_id);
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

void group_clear_proposals(mls_group *g) {
  for (size_t i = 0; i < g->n_props; i++) {
    buf_free(&g->props[i].ac);
    secure_wipe(&g->props[i], sizeof g->props[i]);
  }
  g->n_props = 0;
}

static void pending_free(group_pending *p) {
  if (!p) return;
  group_epoch_free(&p->next);
  buf_free(&p->msg);
  group_reinit_state_free(&p->reinit);
  free(p);
}

void group_reinit_state_init(group_reinit_state *r) {
  memset(r, 0, sizeof *r);
  buf_init(&r->enc);
  arena_init(&r->arena);
}

void group_reinit_state_free(group_reinit_state *r) {
  buf_free(&r->enc);
  arena_free(&r->arena);
  group_reinit_state_init(r);
}

int group_reinit_state_set(group_reinit_state *r, bytes_t enc) {
  group_reinit_state t;
  group_reinit_state_init(&t);
  int rc = buf_set(&t.enc, enc);
  if (!rc) {
    reader_t rd;
    rd_init(&rd, buf_view(&t.enc));
    t.p.proposal_type = MLS_PROPOSAL_REINIT;
    rc = msg_read_proposal_body(&rd, &t.arena, MLS_PROPOSAL_REINIT, &t.p);
    if (!rc) rc = rd_done(&rd);
    if (rc && rc != TSR_ENOMEM) rc = TSR_EDECODE;
  }
  if (rc) {
    group_reinit_state_free(&t);
    return rc;
  }
  group_reinit_state_free(r);
  *r = t;
  return 0;
}

bool group_same_client(const mls_credential *a, const mls_credential *b) {
  if (a->credential_type != b->credential_type) return false;
  if (a->credential_type == MLS_CREDENTIAL_BASIC)
    return bytes_eq(a->identity, b->identity);
  /* x509: the same end-entity certificate. */
  return a->n_certificates > 0 && b->n_certificates > 0 &&
         bytes_eq(a->certificates[0], b->certificates[0]);
}

void group_install_epoch(mls_group *g, group_epoch_state *next) {
  /* Keep the outgoing epoch's resumption PSK (§8.6) for later PSK proposals. */
  if (g->ep.ks.suite) {
    if (g->n_res == g->cfg.max_resumption_psks && g->n_res > 0) {
      secure_wipe(&g->res[0], sizeof g->res[0]);
      memmove(g->res, g->res + 1, (g->n_res - 1) * sizeof *g->res);
      g->n_res--;
    }
    if (g->n_res < g->cfg.max_resumption_psks) {
      g->res[g->n_res].epoch = g->ep.epoch;
      memcpy(g->res[g->n_res].secret, g->ep.ks.resumption_psk, g->suite->hash_len);
      g->n_res++;
    }
  }
  group_epoch_free(&g->ep);
  g->ep = *next;
  memset(next, 0, sizeof *next);
  group_clear_proposals(g);
  pending_free(g->pending);
  g->pending = NULL;
}

int group_find_psk(const mls_group *g, const mls_psk_id *id, bytes_t *value) {
  if (g->observer) {
    /* The Delivery Service knows no PSK: it cannot judge them, and needs
     * no value (it derives no secret). */
    *value = BYTES_NONE;
    return 0;
  }
  if (id->psktype == MLS_PSK_EXTERNAL) {
    for (size_t i = 0; i < g->n_psks; i++)
      if (bytes_eq(buf_view(&g->psks[i].id), id->psk_id)) {
        *value = buf_view(&g->psks[i].secret);
        return 0;
      }
    return TSR_ENOTFOUND;
  }
  if (id->psktype == MLS_PSK_RESUMPTION) {
    if (!bytes_eq(id->psk_group_id, buf_view(&g->group_id))) return TSR_ENOTFOUND;
    if (id->psk_epoch == g->ep.epoch && g->ep.ks.suite) {
      *value = keysched_view(&g->ep.ks, g->ep.ks.resumption_psk);
      return 0;
    }
    for (size_t i = 0; i < g->n_res; i++)
      if (g->res[i].epoch == id->psk_epoch) {
        *value = BYTES(g->res[i].secret, g->suite->hash_len);
        return 0;
      }
    return TSR_ENOTFOUND;
  }
  return TSR_EPROTOCOL;
}

int group_encode_message(uint16_t wire_format, buf_t *out, const void *body) {
  mls_message m;
  memset(&m, 0, sizeof m);
  m.version = MLS_VERSION_10;
  m.wire_format = wire_format;
  switch (wire_format) {
  case MLS_WIRE_PUBLIC_MESSAGE:
    m.public_message = *(const mls_public_message *)body;
    break;
  case MLS_WIRE_PRIVATE_MESSAGE:
    m.private_message = *(const mls_private_message *)body;
    break;
  case MLS_WIRE_WELCOME: m.welcome = *(const mls_welcome *)body; break;
  case MLS_WIRE_GROUP_INFO: m.group_info = *(const mls_group_info *)body; break;
  case MLS_WIRE_KEY_PACKAGE: m.key_package = *(const mls_key_package *)body; break;
  default: return TSR_EINVAL;
  }
  msg_encode_message(out, &m);
  return out->err;
}

int group_epoch_fork(const group_epoch_state *e, group_epoch_state *out) {
  memset(out, 0, sizeof *out);
  arena_init(&out->ext_arena);
  buf_init(&out->ext_enc);
  buf_init(&out->gc);
  out->epoch = e->epoch;
  out->own_leaf = e->own_leaf;
  out->cth_empty = e->cth_empty;
  memcpy(out->tree_hash, e->tree_hash, sizeof out->tree_hash);
  memcpy(out->confirmed_th, e->confirmed_th, sizeof out->confirmed_th);
  memcpy(out->interim_th, e->interim_th, sizeof out->interim_th);
  int rc = group_epoch_set_ext(out, &e->ext);
  if (!rc) rc = tree_clone(e->tree, &out->tree);
  if (!rc && e->priv) rc = treekem_priv_clone(e->priv, &out->priv);
  if (rc) group_epoch_free(out);
  return rc;
}

int group_free_leaf(mls_tree *t, const mls_leaf_node *filler, uint32_t *leaf) {
  uint32_t n = tree_n_leaves(t);
  for (uint32_t i = 0; i < n; i++)
    if (tree_leaf_is_blank(t, i)) {
      *leaf = i;
      return 0;
    }
  int rc = tree_add_leaf(t, filler, leaf);
  if (!rc) rc = tree_blank_node(t, 2 * *leaf);
  return rc;
}

int group_epoch_finish(const mls_group *g, group_epoch_state *e, bytes_t init_secret,
                       bytes_t commit_secret, bytes_t psk_secret, bytes_t tag_in) {
  const mls_suite *s = g->suite;
  int rc = group_epoch_encode_gc(g, e);
  if (!rc)
    rc = keysched_derive(&e->ks, s, init_secret, commit_secret, psk_secret,
                         buf_view(&e->gc));
  if (!rc) rc = group_epoch_confirm(e, tag_in);
  if (!rc) rc = group_epoch_init_secret_tree(g, e);
  return rc;
}

int group_epoch_confirm(group_epoch_state *e, bytes_t tag_in) {
  const mls_suite *s = e->ks.suite;
  size_t h = s->hash_len;
  uint8_t tag[MLS_MAX_HASH];
  int rc = keysched_confirmation_tag(&e->ks, BYTES(e->confirmed_th, h), tag);
  if (!rc && tag_in.len && !bytes_eq_ct(tag_in, BYTES(tag, h))) rc = TSR_EVERIFY;
  if (rc) return rc;
  memcpy(e->confirmation_tag, tag, h);
  /* InterimTranscriptHashInput is the tag as an opaque<V>: Nh < 64, so
   * its header is the single byte Nh. */
  uint8_t in[1 + MLS_MAX_HASH];
  in[0] = (uint8_t)h;
  memcpy(in + 1, tag, h);
  return keysched_interim_hash(s, BYTES(e->confirmed_th, h), BYTES(in, 1 + h),
                               e->interim_th);
}

void group_member_content(const mls_group *g, uint8_t content_type,
                          mls_authenticated_content *ac) {
  memset(ac, 0, sizeof *ac);
  ac->wire_format =
      g->cfg.encrypt_handshake ? MLS_WIRE_PRIVATE_MESSAGE : MLS_WIRE_PUBLIC_MESSAGE;
  ac->content.group_id = buf_view(&g->group_id);
  ac->content.epoch = g->ep.epoch;
  ac->content.sender.sender_type = MLS_SENDER_MEMBER;
  ac->content.sender.index = g->ep.own_leaf;
  ac->content.content_type = content_type;
}

/* --- Creation ---------------------------------------------------------------- */

int group_create(const group_identity *id, const group_config *cfg, bytes_t group_id,
                 const mls_extensions *extensions, mls_group **out) {
  mls_group *g;
  int rc = group_alloc(id, cfg, group_id, &g);
  if (rc) return rc;
  group_epoch_state *e = &g->ep;
  arena_init(&e->ext_arena);
  buf_init(&e->ext_enc);
  buf_init(&e->gc);
  uint8_t leaf_sk[MLS_KEM_SK], leaf_pk[MLS_KEM_PK], sig[MLS_SIG_LEN];
  arena_t a;
  arena_init(&a);
  buf_t tbs;
  buf_init(&tbs);
  rc = group_epoch_set_ext(e, extensions);
  if (!rc) rc = crypto_random(leaf_sk, sizeof leaf_sk);
  if (!rc) rc = crypto_dh_public(leaf_sk, leaf_pk);
  if (!rc) rc = tree_new(g->suite, &e->tree);
  mls_leaf_node ln;
  memset(&ln, 0, sizeof ln);
  if (!rc) {
    reader_t r;
    rd_init(&r, buf_view(&g->id->credential));
    rc = msg_read_credential(&r, &a, &ln.credential);
  }
  if (!rc) {
    ln.encryption_key = BYTES(leaf_pk, MLS_KEM_PK);
    ln.signature_key = BYTES(g->id->sig.pk, MLS_SIG_PK);
    kp_default_capabilities(&ln.capabilities);
    ln.leaf_node_source = MLS_LEAF_SOURCE_KEY_PACKAGE;
    uint64_t now = group_now(&g->cfg);
    ln.lifetime.not_before = now > 3600 ? now - 3600 : 0;
    ln.lifetime.not_after = now + 90ull * 86400;
    rc = kp_check_required(&ln, &e->ext, &a);
  }
  if (!rc) {
    msg_encode_leaf_node_tbs(&tbs, &ln, group_id, 0);
    rc = tbs.err;
  }
  if (!rc)
    rc = mls_sign_with_label(g->suite, &g->id->sig, "LeafNodeTBS", buf_view(&tbs), sig);
  if (!rc) {
    ln.signature = BYTES(sig, MLS_SIG_LEN);
    uint32_t leaf;
    rc = tree_add_leaf(e->tree, &ln, &leaf);
  }
  if (!rc) rc = treekem_priv_new(g->suite, 0, BYTES(leaf_sk, MLS_KEM_SK), &e->priv);
  if (!rc) {
    /* §11: epoch 0, empty transcript, random init_secret (so the first
     * epoch secret is unpredictable), no commit secret, no PSK. */
    uint8_t init[MLS_MAX_HASH];
    e->epoch = 0;
    e->own_leaf = 0;
    e->cth_empty = true;
    rc = crypto_random(init, g->suite->hash_len);
    if (!rc) rc = group_epoch_encode_gc(g, e);
    if (!rc)
      rc = keysched_derive(&e->ks, g->suite, BYTES(init, g->suite->hash_len), BYTES_NONE,
                           BYTES_NONE, buf_view(&e->gc));
    secure_wipe(init, sizeof init);
  }
  if (!rc) {
    keysched_forget_joiner(&e->ks);
    /* interim_transcript_hash_0 = Hash("" || confirmation_tag) with the
     * tag computed over the empty confirmed hash (§8.2, §11). */
    uint8_t tag[MLS_MAX_HASH];
    rc = keysched_confirmation_tag(&e->ks, BYTES_NONE, tag);
    if (!rc) {
      memcpy(e->confirmation_tag, tag, g->suite->hash_len);
      buf_t in;
      buf_init(&in);
      wr_opaque(&in, BYTES(tag, g->suite->hash_len));
      rc = in.err ? in.err
                  : keysched_interim_hash(g->suite, BYTES_NONE, buf_view(&in),
                                          e->interim_th);
      buf_free(&in);
    }
  }
  if (!rc) rc = group_epoch_init_secret_tree(g, e);
  secure_wipe(leaf_sk, sizeof leaf_sk);
  buf_free(&tbs);
  arena_free(&a);
  if (rc) {
    group_free(g);
    return rc;
  }
  *out = g;
  return 0;
}

void group_free(mls_group *g) {
  if (!g) return;
  group_epoch_free(&g->ep);
  group_clear_proposals(g);
  free(g->props);
  if (g->res) {
    secure_wipe(g->res, g->cfg.max_resumption_psks * sizeof *g->res);
    free(g->res);
  }
  for (size_t i = 0; i < g->n_psks; i++) {
    buf_free(&g->psks[i].id);
    buf_free_secret(&g->psks[i].secret);
  }
  free(g->psks);
  pending_free(g->pending);
  group_reinit_state_free(&g->reinit);
  group_identity_free(g->id);
  buf_free(&g->group_id);
  secure_wipe(g, sizeof *g);
  free(g);
}

/* --- Accessors ------------------------------------------------------------------ */

const mls_suite *group_suite(const mls_group *g) { return g->suite; }
uint64_t group_epoch(const mls_group *g) { return g->ep.epoch; }
uint32_t group_own_leaf(const mls_group *g) { return g->ep.own_leaf; }
bytes_t group_id(const mls_group *g) { return buf_view(&g->group_id); }
bool group_is_active(const mls_group *g) { return g->state == GROUP_ACTIVE; }
bool group_has_pending(const mls_group *g) { return g->pending != NULL; }
const mls_extensions *group_extensions(const mls_group *g) { return &g->ep.ext; }
size_t group_pending_proposals(const mls_group *g) { return g->n_props; }

int group_resumption_psk(const mls_group *g, uint64_t epoch, uint8_t *out,
                         size_t *out_len) {
  mls_psk_id id;
  memset(&id, 0, sizeof id);
  id.psktype = MLS_PSK_RESUMPTION;
  id.usage = MLS_RESUMPTION_APPLICATION;
  id.psk_group_id = buf_view(&g->group_id);
  id.psk_epoch = epoch;
  bytes_t v;
  int rc = group_find_psk(g, &id, &v);
  if (rc) return rc;
  memcpy(out, v.ptr, v.len);
  *out_len = v.len;
  return 0;
}

int group_reinit_info(const mls_group *g, group_reinit_params *out) {
  if (g->state != GROUP_REINIT) return TSR_ESTATE;
  if (!g->reinit.enc.len) return TSR_ENOTFOUND;
  out->group_id = g->reinit.p.reinit.group_id;
  out->version = g->reinit.p.reinit.version;
  out->cipher_suite = g->reinit.p.reinit.cipher_suite;
  out->extensions = &g->reinit.p.reinit.extensions;
  return 0;
}

int group_epoch_authenticator(const mls_group *g, uint8_t *out, size_t *out_len) {
  if (g->observer) return TSR_ESTATE;
  memcpy(out, g->ep.ks.epoch_authenticator, g->suite->hash_len);
  *out_len = g->suite->hash_len;
  return 0;
}

int group_export(const mls_group *g, const char *label, bytes_t context, uint8_t *out,
                 size_t len) {
  if (g->state != GROUP_ACTIVE || g->observer) return TSR_ESTATE;
  return keysched_export(&g->ep.ks, BYTES(label, strlen(label)), context, out, len);
}

uint32_t group_leaf_count(const mls_group *g) { return tree_n_leaves(g->ep.tree); }

int group_member(const mls_group *g, uint32_t leaf, bytes_t *identity) {
  const mls_leaf_node *ln = tree_leaf(g->ep.tree, leaf);
  if (!ln) return TSR_ENOTFOUND;
  *identity = ln->credential.credential_type == MLS_CREDENTIAL_BASIC
                  ? ln->credential.identity
                  : BYTES_NONE;
  return 0;
}

int group_member_signature_key(const mls_group *g, uint32_t leaf, bytes_t *key) {
  const mls_leaf_node *ln = tree_leaf(g->ep.tree, leaf);
  if (!ln) return TSR_ENOTFOUND;
  *key = ln->signature_key;
  return 0;
}

int group_find_member(const mls_group *g, bytes_t identity, uint32_t *leaf) {
  uint32_t n = tree_n_leaves(g->ep.tree);
  for (uint32_t i = 0; i < n; i++) {
    const mls_leaf_node *ln = tree_leaf(g->ep.tree, i);
    if (ln && ln->credential.credential_type == MLS_CREDENTIAL_BASIC &&
        bytes_eq(ln->credential.identity, identity)) {
      *leaf = i;
      return 0;
    }
  }
  return TSR_ENOTFOUND;
}

int group_ratchet_tree(const mls_group *g, buf_t *out) {
  tree_encode(g->ep.tree, out);
  return out->err;
}

int group_add_external_psk(mls_group *g, bytes_t id, bytes_t secret) {
  for (size_t i = 0; i < g->n_psks; i++)
    if (bytes_eq(buf_view(&g->psks[i].id), id)) {
      buf_t s;
      buf_init(&s);
      if (buf_set(&s, secret)) return TSR_ENOMEM;
      buf_free_secret(&g->psks[i].secret);
      g->psks[i].secret = s;
      return 0;
    }
  group_ext_psk *np = realloc(g->psks, (g->n_psks + 1) * sizeof *np);
  if (!np) return TSR_ENOMEM;
  g->psks = np;
  group_ext_psk *e = &g->psks[g->n_psks];
  buf_init(&e->id);
  buf_init(&e->secret);
  if (buf_set(&e->id, id) || buf_set(&e->secret, secret)) {
    buf_free(&e->id);
    buf_free_secret(&e->secret);
    return TSR_ENOMEM;
  }
  g->n_psks++;
  return 0;
}

/* --- Events, application messages, dispatch ------------------------------------ */

void group_event_init(group_event *ev) {
  memset(ev, 0, sizeof *ev);
  buf_init(&ev->data);
  buf_init(&ev->authenticated_data);
}

void group_event_clear(group_event *ev) {
  buf_free_secret(&ev->data);
  buf_free(&ev->authenticated_data);
  group_event_init(ev);
}

int group_protect(mls_group *g, bytes_t pt, bytes_t aad, buf_t *msg) {
  if (g->state != GROUP_ACTIVE || g->observer) return TSR_ESTATE;
  framing_ctx ctx;
  group_framing_ctx(g, &g->ep, &ctx);
  mls_authenticated_content ac;
  group_member_content(g, MLS_CONTENT_APPLICATION, &ac);
  ac.wire_format = MLS_WIRE_PRIVATE_MESSAGE; /* application data is never public */
  ac.content.authenticated_data = aad;
  ac.content.application_data = pt;
  uint8_t sig[MLS_SIG_LEN];
  int rc = framing_sign(&ctx, &ac, sig);
  size_t before = msg->len;
  if (!rc) rc = framing_protect_private(&ctx, &ac, msg);
  if (rc) msg->len = before;
  return rc;
}

int group_process(mls_group *g, bytes_t msg, group_event *ev) {
  if (g->state != GROUP_ACTIVE || g->observer) return TSR_ESTATE;
  group_event tmp;
  group_event_init(&tmp);
  /* Our own commit coming back from the delivery service: merge it. */
  if (g->pending && bytes_eq(msg, buf_view(&g->pending->msg))) {
    tmp.type = GROUP_EVENT_COMMIT;
    tmp.sender_type = MLS_SENDER_MEMBER;
    tmp.sender = g->ep.own_leaf;
    int rc = group_merge_pending(g);
    if (!rc && ev) *ev = tmp;
    return rc;
  }
  arena_t a;
  arena_init(&a);
  mls_message m;
  int rc = msg_decode_message(msg, &a, &m);
  if (rc) {
    arena_free(&a);
    return rc;
  }
  if (m.wire_format != MLS_WIRE_PUBLIC_MESSAGE &&
      m.wire_format != MLS_WIRE_PRIVATE_MESSAGE) {
    arena_free(&a);
    return TSR_EPROTOCOL;
  }
  /* A handshake PrivateMessage advances the secret tree inside framing;
   * keep a snapshot so a commit refused later leaves no trace. */
  buf_t snap;
  buf_init(&snap);
  bool private_hs = m.wire_format == MLS_WIRE_PRIVATE_MESSAGE &&
                    m.private_message.content_type != MLS_CONTENT_APPLICATION;
  if (private_hs) {
    rc = secret_tree_serialize(&g->ep.st, &snap);
    if (rc) {
      buf_free_secret(&snap);
      arena_free(&a);
      return rc;
    }
  }
  framing_ctx ctx;
  group_framing_ctx(g, &g->ep, &ctx);
  framing_result res;
  if (m.wire_format == MLS_WIRE_PUBLIC_MESSAGE)
    rc = framing_unprotect_public(&ctx, &m.public_message, &a, &res);
  else
    rc = framing_unprotect_private(&ctx, &m.private_message, &a, &res);
  if (!rc) {
    const mls_framed_content *c = &res.ac.content;
    tmp.sender_type = c->sender.sender_type;
    tmp.sender = c->sender.index;
    if (c->content_type == MLS_CONTENT_APPLICATION) {
      tmp.type = GROUP_EVENT_APPLICATION;
      if (buf_set(&tmp.data, c->application_data) ||
          buf_set(&tmp.authenticated_data, c->authenticated_data))
        rc = TSR_ENOMEM;
    } else if (c->content_type == MLS_CONTENT_PROPOSAL) {
      rc = proposal_process(g, &res, &tmp);
    } else {
      rc = commit_process(g, &res, &tmp);
    }
  }
  if (rc && private_hs && snap.len) {
    secret_tree restored;
    if (secret_tree_deserialize(&restored, buf_view(&snap)) == 0) {
      secret_tree_free(&g->ep.st);
      g->ep.st = restored;
    }
  }
  buf_free_secret(&snap);
  arena_free(&a);
  if (rc) {
    group_event_clear(&tmp);
    return rc;
  }
  if (ev)
    *ev = tmp;
  else
    group_event_clear(&tmp);
  return 0;
}

/* --- Persistence ----------------------------------------------------------------- */

static void wr_secret(buf_t *w, const uint8_t *s, size_t n) { wr_opaque(w, BYTES(s, n)); }

static int epoch_save(const mls_group *g, const group_epoch_state *e, buf_t *w) {
  size_t h = g->suite->hash_len;
  wr_u64(w, e->epoch);
  wr_opaque(w, buf_view(&e->ext_enc));
  wr_secret(w, e->confirmed_th, h);
  wr_secret(w, e->interim_th, h);
  wr_secret(w, e->confirmation_tag, h);
  size_t m = wr_vec_begin(w);
  tree_encode(e->tree, w);
  wr_vec_end(w, m);
  wr_u32(w, e->own_leaf);
  wr_optional(w, e->priv != NULL);
  if (e->priv) {
    m = wr_vec_begin(w);
    treekem_priv_serialize(e->priv, w);
    wr_vec_end(w, m);
  }
  const keysched_epoch *k = &e->ks;
  const uint8_t *secrets[] = {
      k->joiner_secret,       k->welcome_secret,  k->sender_data_secret,
      k->encryption_secret,   k->exporter_secret, k->external_secret,
      k->confirmation_key,    k->membership_key,  k->resumption_psk,
      k->epoch_authenticator, k->init_secret};
  for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++)
    wr_secret(w, secrets[i], h);
  m = wr_vec_begin(w);
  if (e->st_ready) secret_tree_serialize(&e->st, w);
  wr_vec_end(w, m);
  return w->err;
}

static int rd_secret(reader_t *r, uint8_t *out, size_t n) {
  bytes_t v;
  if (rd_opaque(r, &v)) return TSR_EDECODE;
  if (v.len != n) return rd_fail(r);
  memcpy(out, v.ptr, n);
  return 0;
}

static int epoch_load(mls_group *g, reader_t *r, group_epoch_state *e) {
  size_t h = g->suite->hash_len;
  bytes_t ext, tree, priv = BYTES_NONE, st;
  bool has_priv = false;
  memset(e, 0, sizeof *e);
  arena_init(&e->ext_arena);
  buf_init(&e->ext_enc);
  buf_init(&e->gc);
  rd_u64(r, &e->epoch);
  rd_opaque(r, &ext);
  rd_secret(r, e->confirmed_th, h);
  rd_secret(r, e->interim_th, h);
  rd_secret(r, e->confirmation_tag, h);
  rd_opaque(r, &tree);
  rd_u32(r, &e->own_leaf);
  rd_optional(r, &has_priv);
  if (has_priv) rd_opaque(r, &priv);
  keysched_epoch *k = &e->ks;
  k->suite = g->suite;
  uint8_t *secrets[] = {k->joiner_secret,       k->welcome_secret,  k->sender_data_secret,
                        k->encryption_secret,   k->exporter_secret, k->external_secret,
                        k->confirmation_key,    k->membership_key,  k->resumption_psk,
                        k->epoch_authenticator, k->init_secret};
  for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++)
    rd_secret(r, secrets[i], h);
  rd_opaque(r, &st);
  if (r->err) return TSR_EDECODE;
  e->cth_empty = e->epoch == 0; /* only a creator's epoch 0 has none */
  /* Extensions: decode through set_ext from a decoded view. */
  arena_t a;
  arena_init(&a);
  mls_extensions x;
  reader_t xr;
  rd_init(&xr, ext);
  int rc = msg_read_extensions(&xr, &a, &x);
  if (!rc) rc = rd_done(&xr);
  if (!rc) rc = group_epoch_set_ext(e, &x);
  arena_free(&a);
  if (!rc) rc = tree_decode(g->suite, tree, &e->tree);
  if (!rc && has_priv) rc = treekem_priv_restore(priv, &e->priv);
  if (!rc && st.len) {
    rc = secret_tree_deserialize(&e->st, st);
    if (!rc) e->st_ready = true;
  }
  if (!rc) rc = group_epoch_encode_gc(g, e);
  return rc == TSR_ENOMEM ? rc : (rc ? TSR_EDECODE : 0);
}

int group_save(const mls_group *g, buf_t *out) {
  if (g->observer) return TSR_ESTATE; /* observer_save */
  size_t start = out->len;
  wr_raw(out, BYTES(GROUP_MAGIC, 4));
  wr_u16(out, GROUP_FORMAT_VERSION);
  wr_u16(out, g->suite->id);
  wr_u32(out, g->cfg.max_generation_gap);
  wr_u32(out, g->cfg.max_skipped_keys);
  wr_u32(out, g->cfg.padding_block);
  wr_u8(out, g->cfg.encrypt_handshake ? 1 : 0);
  wr_u32(out, g->cfg.max_resumption_psks);
  wr_u64(out, g->cfg.now);
  size_t m = wr_vec_begin(out);
  group_identity_encode(g->id, out);
  wr_vec_end(out, m);
  wr_opaque(out, buf_view(&g->group_id));
  wr_u8(out, (uint8_t)g->state);
  epoch_save(g, &g->ep, out);
  wr_u32(out, (uint32_t)g->n_props);
  for (size_t i = 0; i < g->n_props; i++) {
    const group_cached_proposal *p = &g->props[i];
    wr_opaque(out, buf_view(&p->ac));
    wr_secret(out, p->ref, g->suite->hash_len);
    wr_u8(out, p->sender.sender_type);
    wr_u32(out, p->sender.index);
    wr_u16(out, p->type);
    wr_optional(out, p->has_sk);
    if (p->has_sk) wr_secret(out, p->update_sk, MLS_KEM_SK);
  }
  wr_u32(out, (uint32_t)g->n_res);
  for (size_t i = 0; i < g->n_res; i++) {
    wr_u64(out, g->res[i].epoch);
    wr_secret(out, g->res[i].secret, g->suite->hash_len);
  }
  wr_u32(out, (uint32_t)g->n_psks);
  for (size_t i = 0; i < g->n_psks; i++) {
    wr_opaque(out, buf_view(&g->psks[i].id));
    wr_opaque(out, buf_view(&g->psks[i].secret));
  }
  wr_optional(out, g->pending != NULL);
  if (g->pending) {
    epoch_save(g, &g->pending->next, out);
    wr_opaque(out, buf_view(&g->pending->msg));
    wr_u8(out, (uint8_t)g->pending->next_state);
  }
  /* Format 2. */
  wr_opaque(out, buf_view(&g->reinit.enc));
  if (g->pending) wr_opaque(out, buf_view(&g->pending->reinit.enc));
  if (out->err) {
    int rc = out->err;
    if (out->ptr) secure_wipe(out->ptr + start, out->len - start);
    out->len = start;
    return rc;
  }
  return 0;
}

int group_load(bytes_t in, mls_group **out) {
  reader_t r;
  bytes_t magic, idenc, gid;
  uint16_t ver = 0, suite = 0;
  group_config cfg;
  memset(&cfg, 0, sizeof cfg);
  uint8_t eh = 0, state = 0;
  rd_init(&r, in);
  rd_raw(&r, 4, &magic);
  if (r.err || memcmp(magic.ptr, GROUP_MAGIC, 4) != 0) return TSR_EDECODE;
  rd_u16(&r, &ver);
  if (!r.err && ver != 1 && ver != GROUP_FORMAT_VERSION) return TSR_EUNSUPPORTED;
  rd_u16(&r, &suite);
  rd_u32(&r, &cfg.max_generation_gap);
  rd_u32(&r, &cfg.max_skipped_keys);
  rd_u32(&r, &cfg.padding_block);
  rd_u8(&r, &eh);
  rd_u32(&r, &cfg.max_resumption_psks);
  rd_u64(&r, &cfg.now);
  rd_opaque(&r, &idenc);
  rd_opaque(&r, &gid);
  rd_u8(&r, &state);
  if (r.err || state > GROUP_REINIT || cfg.max_resumption_psks == 0 ||
      cfg.max_resumption_psks > 1024)
    return TSR_EDECODE;
  cfg.encrypt_handshake = eh != 0;
  group_identity *id;
  int rc = group_identity_decode(idenc, &id);
  if (rc) return rc;
  if (id->suite->id != suite) {
    group_identity_free(id);
    return TSR_EDECODE;
  }
  mls_group *g;
  rc = group_alloc(id, &cfg, gid, &g);
  group_identity_free(id);
  if (rc) return rc;
  g->state = state;
  rc = epoch_load(g, &r, &g->ep);
  uint32_t n = 0;
  if (!rc && rd_u32(&r, &n)) rc = TSR_EDECODE;
  for (uint32_t i = 0; !rc && i < n; i++) {
    if (rd_left(&r) < 8) {
      rc = TSR_EDECODE;
      break;
    }
    if (g->n_props == g->cap_props) {
      size_t cap = g->cap_props ? 2 * g->cap_props : 8;
      group_cached_proposal *np = realloc(g->props, cap * sizeof *np);
      if (!np) {
        rc = TSR_ENOMEM;
        break;
      }
      g->props = np;
      g->cap_props = cap;
    }
    group_cached_proposal *p = &g->props[g->n_props];
    memset(p, 0, sizeof *p);
    buf_init(&p->ac);
    bytes_t ac;
    bool has_sk = false;
    rd_opaque(&r, &ac);
    rd_secret(&r, p->ref, g->suite->hash_len);
    rd_u8(&r, &p->sender.sender_type);
    rd_u32(&r, &p->sender.index);
    rd_u16(&r, &p->type);
    rd_optional(&r, &has_sk);
    if (has_sk) rd_secret(&r, p->update_sk, MLS_KEM_SK);
    p->has_sk = has_sk;
    if (r.err)
      rc = TSR_EDECODE;
    else if (buf_set(&p->ac, ac))
      rc = TSR_ENOMEM;
    else
      g->n_props++;
  }
  if (!rc && rd_u32(&r, &n)) rc = TSR_EDECODE;
  if (!rc && n > g->cfg.max_resumption_psks) rc = TSR_EDECODE;
  for (uint32_t i = 0; !rc && i < n; i++) {
    rd_u64(&r, &g->res[i].epoch);
    rd_secret(&r, g->res[i].secret, g->suite->hash_len);
    if (r.err)
      rc = TSR_EDECODE;
    else
      g->n_res++;
  }
  if (!rc && rd_u32(&r, &n)) rc = TSR_EDECODE;
  for (uint32_t i = 0; !rc && i < n; i++) {
    bytes_t pid, ps;
    rd_opaque(&r, &pid);
    rd_opaque(&r, &ps);
    if (r.err)
      rc = TSR_EDECODE;
    else
      rc = group_add_external_psk(g, pid, ps);
  }
  bool has_pending = false;
  if (!rc && rd_optional(&r, &has_pending)) rc = TSR_EDECODE;
  if (!rc && has_pending) {
    g->pending = calloc(1, sizeof *g->pending);
    if (!g->pending) rc = TSR_ENOMEM;
    if (!rc) {
      buf_init(&g->pending->msg);
      group_reinit_state_init(&g->pending->reinit);
      rc = epoch_load(g, &r, &g->pending->next);
    }
    bytes_t pm;
    uint8_t ns = 0;
    if (!rc) {
      rd_opaque(&r, &pm);
      rd_u8(&r, &ns);
      if (r.err || ns > GROUP_REINIT)
        rc = TSR_EDECODE;
      else
        rc = buf_set(&g->pending->msg, pm);
      g->pending->next_state = ns;
    }
  }
  /* Format 2: the committed ReInit, ours then the pending commit's. */
  for (int k = 0; !rc && ver >= 2 && k < (has_pending ? 2 : 1); k++) {
    group_reinit_state *rs = k == 0 ? &g->reinit : &g->pending->reinit;
    int st = k == 0 ? g->state : g->pending->next_state;
    bytes_t enc;
    if (rd_opaque(&r, &enc))
      rc = TSR_EDECODE;
    else if (enc.len && st != GROUP_REINIT)
      rc = TSR_EDECODE;
    else if (enc.len)
      rc = group_reinit_state_set(rs, enc);
  }
  if (!rc && rd_done(&r)) rc = TSR_EDECODE;
  if (rc) {
    group_free(g);
    return rc;
  }
  *out = g;
  return 0;
}

int group_clone(const mls_group *g, mls_group **out) {
  /* Through the persisted form: one code path to keep complete. */
  buf_t st;
  buf_init(&st);
  int rc = group_save(g, &st);
  if (!rc) rc = group_load(buf_view(&st), out);
  buf_free_secret(&st);
  return rc;
}
