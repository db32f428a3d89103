/* Welcome (RFC 9420 §12.4.3.1), GroupInfo (§12.4.3) and external joins
 * (§12.4.3.2). */
#define GROUP_INTERNAL
#include <stdlib.h>
#include <string.h>

#include "mls/codec.h"
#include "mls/group.h"
#include "mls/hpke.h"
#include "tessera/error.h"

#define EXTERNAL_INIT_LABEL "MLS 1.0 external init secret"
#define MAX_GI_EXT 3

static void put_tree(buf_t *w, const void *tree) { tree_encode(tree, w); }

/* GroupInfo of epoch e, signed by us; arrays in a, signature in sig. Its
 * encoding is enc[*enc_off, enc->len): GroupInfoTBS is exactly the
 * GroupInfo encoding without the trailing signature, so it is encoded
 * once, with the ratchet tree written straight into it, signed in place
 * (the SignContent header goes into the scratch in front of it) and the
 * signature appended. With a large tree this saves several copies and a
 * second encoding. The ratchet_tree extension in gi has no data (only
 * enc carries it). */
static int build_group_info(const mls_group *g, const group_epoch_state *e,
                            bool with_tree, bool with_external_pub, arena_t *a,
                            uint8_t pub[MLS_KEM_PK], buf_t *pub_enc,
                            uint8_t sig[MLS_SIG_LEN], mls_group_info *gi, buf_t *enc,
                            size_t *enc_off) {
  size_t h = g->suite->hash_len;
  memset(gi, 0, sizeof *gi);
  gi->group_context = (mls_group_context){
      .version = MLS_VERSION_10,
      .cipher_suite = g->suite->id,
      .group_id = buf_view(&g->group_id),
      .epoch = e->epoch,
      .tree_hash = BYTES(e->tree_hash, h),
      .confirmed_transcript_hash = e->cth_empty ? BYTES_NONE : BYTES(e->confirmed_th, h),
      .extensions = e->ext};
  mls_extension *xs = arena_alloc(a, MAX_GI_EXT * sizeof *xs);
  if (!xs) return TSR_ENOMEM;
  size_t nx = 0;
  int rc = 0;
  if (with_external_pub) {
    rc = keysched_external_keypair(&e->ks, NULL, pub);
    if (rc) return rc;
    wr_opaque(pub_enc, BYTES(pub, MLS_KEM_PK));
    if (pub_enc->err) return pub_enc->err;
    xs[nx].extension_type = MLS_EXT_EXTERNAL_PUB;
    xs[nx++].extension_data = buf_view(pub_enc);
  }
  size_t tree_slot = SIZE_MAX;
  if (with_tree) {
    tree_slot = nx;
    xs[nx].extension_type = MLS_EXT_RATCHET_TREE;
    xs[nx++].extension_data = BYTES_NONE; /* put_tree writes it */
  }
  gi->extensions.items = xs;
  gi->extensions.n = nx;
  gi->confirmation_tag = BYTES(e->confirmation_tag, h);
  gi->signer = e->own_leaf;
  size_t off = mls_sign_prefix_len("GroupInfoTBS");
  buf_reset(enc);
  if (!buf_extend(enc, off)) return TSR_ENOMEM;
  msg_encode_group_info_tbs_with(enc, gi, tree_slot, put_tree, e->tree);
  rc = enc->err ? enc->err
                : mls_sign_with_label_at(g->suite, &g->id->sig, "GroupInfoTBS", enc->ptr,
                                         off, enc->len - off, sig);
  if (rc) return rc;
  gi->signature = BYTES(sig, MLS_SIG_LEN);
  wr_opaque(enc, gi->signature);
  *enc_off = off;
  return enc->err;
}

int welcome_group_info(const mls_group *g, const group_epoch_state *e, bool with_tree,
                       bool with_external_pub, buf_t *out) {
  arena_t a;
  arena_init(&a);
  buf_t pubenc, enc;
  buf_init(&pubenc);
  buf_init(&enc);
  uint8_t pub[MLS_KEM_PK], sig[MLS_SIG_LEN];
  mls_group_info gi;
  size_t before = out->len, off = 0;
  int rc = build_group_info(g, e, with_tree, with_external_pub, &a, pub, &pubenc, sig,
                            &gi, &enc, &off);
  if (!rc) { /* MLSMessage: version, wire_format, then the GroupInfo */
    wr_u16(out, MLS_VERSION_10);
    wr_u16(out, MLS_WIRE_GROUP_INFO);
    wr_raw(out, BYTES(enc.ptr + off, enc.len - off));
    rc = out->err;
  }
  if (rc) out->len = before;
  buf_free(&pubenc);
  buf_free(&enc);
  arena_free(&a);
  return rc;
}

int group_info(const mls_group *g, bool with_tree, buf_t *out) {
  if (g->state != GROUP_ACTIVE || g->observer) return TSR_ESTATE;
  return welcome_group_info(g, &g->ep, with_tree, true, out);
}

int welcome_create(const mls_group *g, const group_epoch_state *next,
                   const proposal_effects *fx, bool with_tree, bool has_path, arena_t *a,
                   buf_t *out) {
  const mls_suite *s = g->suite;
  size_t h = s->hash_len;
  buf_t pubenc, gienc, egi, gs, ct;
  buf_init(&pubenc);
  buf_init(&gienc);
  buf_init(&egi);
  buf_init(&gs);
  buf_init(&ct);
  uint8_t pub[MLS_KEM_PK], sig[MLS_SIG_LEN], key[MLS_MAX_AEAD_KEY], nonce[MLS_MAX_NONCE];
  uint8_t path_secret[MLS_MAX_HASH];
  mls_group_info gi;
  size_t gi_off = 0;
  int rc = build_group_info(g, next, with_tree, false, a, pub, &pubenc, sig, &gi, &gienc,
                            &gi_off);
  if (!rc)
    rc = keysched_welcome_key(s, keysched_view(&next->ks, next->ks.welcome_secret), key,
                              nonce);
  uint8_t *egp = NULL;
  if (!rc) {
    bytes_t gib = BYTES(gienc.ptr + gi_off, gienc.len - gi_off);
    egp = buf_extend(&egi, gib.len + MLS_AEAD_TAG);
    rc = egp ? crypto_aead_seal(s, key, nonce, BYTES_NONE, gib, egp) : TSR_ENOMEM;
  }
  mls_welcome w;
  memset(&w, 0, sizeof w);
  w.cipher_suite = s->id;
  w.encrypted_group_info = buf_view(&egi);
  w.secrets = arena_alloc(a, (fx->n_added + 1) * sizeof *w.secrets);
  if (!rc && !w.secrets) rc = TSR_ENOMEM;
  for (size_t i = 0; !rc && i < fx->n_added; i++) {
    const mls_key_package *kp = fx->added_kps[i];
    mls_encrypted_group_secrets *es = &w.secrets[i];
    uint8_t *ref = arena_alloc(a, h);
    uint8_t *kem = arena_alloc(a, MLS_KEM_PK);
    if (!ref || !kem) {
      rc = TSR_ENOMEM;
      break;
    }
    rc = kp_ref(s, kp, ref);
    if (rc) break;
    es->new_member = BYTES(ref, h);
    mls_group_secrets sec = {.joiner_secret =
                                 keysched_view(&next->ks, next->ks.joiner_secret),
                             .psks = fx->psk_ids,
                             .n_psks = fx->n_psks};
    if (has_path) {
      rc = treekem_path_secret_for(next->priv, next->tree, fx->added[i], path_secret);
      if (rc) break;
      sec.has_path_secret = true;
      sec.path_secret = BYTES(path_secret, h);
    }
    buf_reset(&gs);
    msg_encode_group_secrets(&gs, &sec);
    buf_reset(&ct);
    rc = gs.err ? gs.err
                : mls_encrypt_with_label(s, kp->init_key, "Welcome", buf_view(&egi),
                                         buf_view(&gs), kem, &ct);
    if (!rc) rc = arena_dup(a, buf_view(&ct), &es->encrypted_group_secrets.ciphertext);
    es->encrypted_group_secrets.kem_output = BYTES(kem, MLS_KEM_PK);
    w.n_secrets++;
  }
  /* One allocation for the whole Welcome (the encrypted GroupInfo can be
   * most of a megabyte); a secret takes well under 256 bytes. */
  if (!rc) rc = buf_reserve(out, egi.len + 256 * (w.n_secrets + 1));
  if (!rc) rc = group_encode_message(MLS_WIRE_WELCOME, out, &w);
  secure_wipe(key, sizeof key);
  secure_wipe(nonce, sizeof nonce);
  secure_wipe(path_secret, sizeof path_secret);
  buf_free(&pubenc);
  buf_free(&gienc);
  buf_free(&egi);
  buf_free_secret(&gs);
  buf_free(&ct);
  return rc;
}

/* --- Joining ---------------------------------------------------------------------- */

int welcome_verify_group_info(const mls_suite *s, const mls_group_info *gi,
                              bytes_t signer_pk) {
  buf_t tbs;
  buf_init(&tbs);
  msg_encode_group_info_tbs(&tbs, gi);
  int rc = tbs.err ? tbs.err
                   : mls_verify_with_label(s, signer_pk, "GroupInfoTBS", buf_view(&tbs),
                                           gi->signature);
  buf_free(&tbs);
  return rc ? (rc == TSR_ENOMEM ? rc : TSR_EVERIFY) : 0;
}

int welcome_open(const kp_secret *ks, const mls_welcome *w, const group_psk *psks,
                 size_t n_psks, const mls_group *resume_from, arena_t *a,
                 mls_group_secrets *gs, mls_group_info *gi,
                 uint8_t psk_secret[MLS_MAX_HASH]) {
  const mls_suite *s = ks->suite;
  size_t h = s->hash_len;
  if (w->cipher_suite != s->id) return TSR_EUNSUPPORTED;
  mls_key_package kp;
  uint8_t ref[MLS_MAX_HASH];
  int rc = kp_secret_key_package(ks, a, &kp);
  if (!rc) rc = kp_ref(s, &kp, ref);
  if (rc) return rc;
  const mls_encrypted_group_secrets *es = NULL;
  for (size_t i = 0; i < w->n_secrets; i++)
    if (bytes_eq(w->secrets[i].new_member, BYTES(ref, h))) es = &w->secrets[i];
  if (!es) return TSR_ENOTFOUND;
  buf_t pt;
  buf_init(&pt);
  rc = mls_decrypt_with_label(s, BYTES(ks->init_sk, MLS_KEM_SK), "Welcome",
                              w->encrypted_group_info,
                              es->encrypted_group_secrets.kem_output,
                              es->encrypted_group_secrets.ciphertext, &pt);
  if (rc) rc = rc == TSR_ENOMEM ? rc : TSR_EDECRYPT;
  bytes_t gsb = BYTES_NONE;
  if (!rc) rc = arena_dup(a, buf_view(&pt), &gsb);
  buf_free_secret(&pt);
  if (!rc) rc = msg_decode_group_secrets(gsb, a, gs);
  if (!rc && gs->joiner_secret.len != h) rc = TSR_EPROTOCOL;
  if (!rc && gs->has_path_secret && gs->path_secret.len != h) rc = TSR_EPROTOCOL;
  if (rc) return rc;
  /* PSKs named by the GroupSecrets, in order: external ones from psks,
   * resumption ones from resume_from; at most one reinit/branch. */
  keysched_psk *list = arena_alloc(a, (gs->n_psks + 1) * sizeof *list);
  if (!list) return TSR_ENOMEM;
  size_t n_link = 0;
  for (size_t i = 0; i < gs->n_psks; i++) {
    const mls_psk_id *id = &gs->psks[i];
    if (id->psk_nonce.len != h) return TSR_EPROTOCOL;
    bytes_t value = BYTES_NONE;
    if (id->psktype == MLS_PSK_EXTERNAL) {
      size_t k = 0;
      while (k < n_psks && !bytes_eq(psks[k].id, id->psk_id)) k++;
      if (k == n_psks) return TSR_ENOTFOUND;
      value = psks[k].secret;
    } else if (id->psktype == MLS_PSK_RESUMPTION) {
      if (id->usage == MLS_RESUMPTION_REINIT || id->usage == MLS_RESUMPTION_BRANCH) {
        if (++n_link > 1) return TSR_EPROTOCOL;
      } else if (id->usage != MLS_RESUMPTION_APPLICATION) {
        return TSR_EPROTOCOL;
      }
      if (!resume_from || group_find_psk(resume_from, id, &value)) return TSR_ENOTFOUND;
    } else {
      return TSR_EPROTOCOL;
    }
    buf_t idb;
    buf_init(&idb);
    msg_encode_psk_id(&idb, id);
    rc = idb.err ? idb.err : arena_dup(a, buf_view(&idb), &list[i].id);
    buf_free(&idb);
    if (rc) return rc;
    list[i].value = value;
  }
  rc = keysched_psk_secret(s, list, gs->n_psks, psk_secret);
  uint8_t wsec[MLS_MAX_HASH], key[MLS_MAX_AEAD_KEY], nonce[MLS_MAX_NONCE];
  if (!rc)
    rc = keysched_welcome_secret(s, gs->joiner_secret,
                                 gs->n_psks ? BYTES(psk_secret, h) : BYTES_NONE, wsec);
  if (!rc) rc = keysched_welcome_key(s, BYTES(wsec, h), key, nonce);
  uint8_t *gip = NULL;
  size_t egl = w->encrypted_group_info.len;
  if (!rc && egl < MLS_AEAD_TAG) rc = TSR_EDECODE;
  if (!rc) {
    gip = arena_alloc(a, egl - MLS_AEAD_TAG + 1);
    if (!gip) rc = TSR_ENOMEM;
  }
  if (!rc) rc = crypto_aead_open(s, key, nonce, BYTES_NONE, w->encrypted_group_info, gip);
  if (!rc) rc = msg_decode_group_info(BYTES(gip, egl - MLS_AEAD_TAG), a, gi);
  secure_wipe(wsec, sizeof wsec);
  secure_wipe(key, sizeof key);
  secure_wipe(nonce, sizeof nonce);
  return rc;
}

/* Tree for a joiner: the ratchet_tree extension, else the given body. */
static int joiner_tree(const mls_suite *s, const mls_group_info *gi, bytes_t tree,
                       mls_tree **out) {
  const mls_extension *x = msg_find_extension(&gi->extensions, MLS_EXT_RATCHET_TREE);
  bytes_t body = x ? x->extension_data : tree;
  if (!body.len) return TSR_ETREE;
  int rc = tree_decode(s, body, out);
  if (rc) return rc;
  rc = tree_validate(*out, gi->group_context.group_id, gi->group_context.tree_hash);
  if (rc) {
    tree_free(*out);
    *out = NULL;
  }
  return rc;
}

static int check_context(const mls_suite *s, const mls_group_context *gc) {
  if (gc->version != MLS_VERSION_10 || gc->cipher_suite != s->id) return TSR_EUNSUPPORTED;
  if (gc->confirmed_transcript_hash.len != s->hash_len) return TSR_EPROTOCOL;
  return 0;
}

/* MLSMessage of the given wire format, or the bare structure. */
static int decode_welcome(bytes_t in, arena_t *a, mls_welcome *w) {
  mls_message m;
  if (in.len >= 4 && in.ptr[0] == 0 && in.ptr[1] == MLS_VERSION_10 && in.ptr[2] == 0 &&
      in.ptr[3] == MLS_WIRE_WELCOME && msg_decode_message(in, a, &m) == 0) {
    *w = m.welcome;
    return 0;
  }
  return msg_decode_welcome(in, a, w);
}

static int decode_group_info(bytes_t in, arena_t *a, mls_group_info *gi) {
  mls_message m;
  if (in.len >= 4 && in.ptr[0] == 0 && in.ptr[1] == MLS_VERSION_10 && in.ptr[2] == 0 &&
      in.ptr[3] == MLS_WIRE_GROUP_INFO && msg_decode_message(in, a, &m) == 0) {
    *gi = m.group_info;
    return 0;
  }
  return msg_decode_group_info(in, a, gi);
}

/* Some non-blank leaf of t holds the same client as cred. */
static bool tree_has_client(const mls_tree *t, const mls_credential *cred) {
  uint32_t n = tree_n_leaves(t);
  for (uint32_t i = 0; i < n; i++) {
    const mls_leaf_node *ln = tree_leaf(t, i);
    if (ln && group_same_client(&ln->credential, cred)) return true;
  }
  return false;
}

/* Every non-blank leaf of sub holds a client that is in super. */
static bool clients_subset(const mls_tree *sub, const mls_tree *super) {
  uint32_t n = tree_n_leaves(sub);
  for (uint32_t i = 0; i < n; i++) {
    const mls_leaf_node *ln = tree_leaf(sub, i);
    if (ln && !tree_has_client(super, &ln->credential)) return false;
  }
  return true;
}

/* §12.4.3.1: a Welcome with a reinit or branch resumption PSK must
 * create the group that the referenced (old) group announced. t is the
 * new group's (validated) tree; old resolved the PSK (same group_id). */
static int check_resumption(const mls_group_secrets *gs, const mls_group_info *gi,
                            const mls_tree *t, const mls_group *old) {
  const mls_psk_id *link = NULL;
  for (size_t i = 0; i < gs->n_psks; i++)
    if (gs->psks[i].psktype == MLS_PSK_RESUMPTION &&
        (gs->psks[i].usage == MLS_RESUMPTION_REINIT ||
         gs->psks[i].usage == MLS_RESUMPTION_BRANCH))
      link = &gs->psks[i];
  if (!link) return 0;
  const mls_group_context *gc = &gi->group_context;
  if (gc->epoch != 1) return TSR_EPROTOCOL;
  if (link->usage == MLS_RESUMPTION_BRANCH) {
    if (gc->version != MLS_VERSION_10 || gc->cipher_suite != old->suite->id)
      return TSR_EPROTOCOL;
    return clients_subset(t, old->ep.tree) ? 0 : TSR_EPROTOCOL;
  }
  /* reinit: the last commit of old held a ReInit, and the PSK is for the
   * epoch that commit created. */
  if (old->state != GROUP_REINIT || !old->reinit.enc.len ||
      link->psk_epoch != old->ep.epoch)
    return TSR_EPROTOCOL;
  const mls_proposal *r = &old->reinit.p;
  if (!bytes_eq(gc->group_id, r->reinit.group_id) || gc->version != r->reinit.version ||
      gc->cipher_suite != r->reinit.cipher_suite)
    return TSR_EPROTOCOL;
  buf_t x, y;
  buf_init(&x);
  buf_init(&y);
  msg_encode_extensions(&x, &gc->extensions);
  msg_encode_extensions(&y, &r->reinit.extensions);
  int rc = x.err ? x.err : y.err;
  if (!rc && !bytes_eq(buf_view(&x), buf_view(&y))) rc = TSR_EPROTOCOL;
  buf_free(&x);
  buf_free(&y);
  if (!rc && !clients_subset(old->ep.tree, t)) rc = TSR_EPROTOCOL;
  return rc;
}

int group_join(const group_identity *id, const group_config *cfg,
               kp_secret *const *secrets, size_t n_secrets, bytes_t welcome, bytes_t tree,
               const group_psk *psks, size_t n_psks, const mls_group *resume_from,
               size_t *used, mls_group **out) {
  arena_t a;
  arena_init(&a);
  mls_welcome w;
  int rc = decode_welcome(welcome, &a, &w);
  if (rc) {
    arena_free(&a);
    return rc;
  }
  /* The secret whose KeyPackageRef the Welcome names. */
  const kp_secret *ks = NULL;
  size_t idx = 0;
  mls_key_package kp;
  for (size_t i = 0; i < n_secrets && !ks; i++) {
    if (secrets[i]->suite->id != w.cipher_suite) continue;
    uint8_t ref[MLS_MAX_HASH];
    if (kp_secret_key_package(secrets[i], &a, &kp) || kp_ref(secrets[i]->suite, &kp, ref))
      continue;
    for (size_t k = 0; k < w.n_secrets; k++)
      if (bytes_eq(w.secrets[k].new_member, BYTES(ref, secrets[i]->suite->hash_len))) {
        ks = secrets[i];
        idx = i;
        break;
      }
  }
  if (!ks) {
    arena_free(&a);
    return TSR_ENOTFOUND;
  }
  const mls_suite *s = ks->suite;
  size_t h = s->hash_len;
  if (id->suite != s) {
    arena_free(&a);
    return TSR_EUNSUPPORTED;
  }
  mls_group_secrets gs;
  mls_group_info gi;
  uint8_t psk_secret[MLS_MAX_HASH];
  mls_group *g = NULL;
  mls_tree *t = NULL;
  rc = welcome_open(ks, &w, psks, n_psks, resume_from, &a, &gs, &gi, psk_secret);
  if (!rc) rc = check_context(s, &gi.group_context);
  if (!rc) rc = joiner_tree(s, &gi, tree, &t);
  const mls_leaf_node *signer = NULL;
  if (!rc && !(signer = tree_leaf(t, gi.signer))) rc = TSR_EPROTOCOL;
  if (!rc) rc = welcome_verify_group_info(s, &gi, signer->signature_key);
  if (!rc) rc = check_resumption(&gs, &gi, t, resume_from);
  /* Our leaf: the one holding our KeyPackage's LeafNode. */
  uint32_t node = 0, own = 0;
  if (!rc && tree_find_encryption_key(t, kp.leaf_node.encryption_key, &node))
    rc = TSR_ETREE;
  if (!rc) {
    own = node / 2;
    const mls_leaf_node *ln = tree_leaf(t, own);
    if ((node & 1) || !ln || !bytes_eq(ln->signature_key, kp.leaf_node.signature_key))
      rc = TSR_ETREE;
  }
  if (!rc) rc = group_alloc(id, cfg, gi.group_context.group_id, &g);
  for (size_t i = 0; !rc && i < n_psks; i++)
    rc = group_add_external_psk(g, psks[i].id, psks[i].secret);
  group_epoch_state *e = g ? &g->ep : NULL;
  if (!rc) {
    arena_init(&e->ext_arena);
    buf_init(&e->ext_enc);
    buf_init(&e->gc);
    e->tree = t;
    t = NULL;
    e->own_leaf = own;
    e->epoch = gi.group_context.epoch;
    memcpy(e->confirmed_th, gi.group_context.confirmed_transcript_hash.ptr, h);
    rc = group_epoch_set_ext(e, &gi.group_context.extensions);
  }
  if (!rc) rc = kp_check_required(&kp.leaf_node, &e->ext, &a);
  if (!rc) rc = treekem_priv_new(s, own, BYTES(ks->leaf_sk, MLS_KEM_SK), &e->priv);
  if (!rc && gs.has_path_secret)
    rc = treekem_priv_join(e->priv, e->tree, gi.signer, gs.path_secret);
  if (!rc) rc = group_epoch_encode_gc(g, e);
  if (!rc)
    rc = keysched_from_joiner(&e->ks, s, gs.joiner_secret,
                              gs.n_psks ? BYTES(psk_secret, h) : BYTES_NONE,
                              buf_view(&e->gc));
  /* An empty tag would skip the check: a GroupInfo must carry one. */
  if (!rc && gi.confirmation_tag.len != h) rc = TSR_EVERIFY;
  if (!rc) rc = group_epoch_confirm(e, gi.confirmation_tag);
  if (!rc) {
    keysched_forget_joiner(&e->ks);
    rc = group_epoch_init_secret_tree(g, e);
  }
  secure_wipe(psk_secret, sizeof psk_secret);
  tree_free(t);
  arena_free(&a);
  if (rc) {
    group_free(g);
    return rc;
  }
  if (used) *used = idx;
  *out = g;
  return 0;
}

/* --- External join -------------------------------------------------------------------
 */

int group_external_join(const group_identity *id, const group_config *cfg,
                        bytes_t group_info_msg, bytes_t tree, uint32_t remove_leaf,
                        const group_psk *psks, size_t n_psks, buf_t *commit_msg,
                        mls_group **out) {
  const mls_suite *s = id->suite;
  size_t h = s->hash_len;
  arena_t a;
  arena_init(&a);
  mls_group_info gi;
  mls_tree *t = NULL;
  mls_group *g = NULL;
  int rc = decode_group_info(group_info_msg, &a, &gi);
  if (!rc) rc = check_context(s, &gi.group_context);
  if (!rc) rc = joiner_tree(s, &gi, tree, &t);
  const mls_leaf_node *signer = NULL;
  if (!rc && !(signer = tree_leaf(t, gi.signer))) rc = TSR_EPROTOCOL;
  if (!rc) rc = welcome_verify_group_info(s, &gi, signer->signature_key);
  const mls_extension *xp =
      rc ? NULL : msg_find_extension(&gi.extensions, MLS_EXT_EXTERNAL_PUB);
  bytes_t ext_pub = BYTES_NONE;
  if (!rc) {
    reader_t r;
    if (!xp)
      rc = TSR_EPROTOCOL;
    else {
      rd_init(&r, xp->extension_data);
      if (rd_opaque(&r, &ext_pub) || rd_done(&r) || ext_pub.len != MLS_KEM_PK)
        rc = TSR_EDECODE;
    }
  }
  /* init_secret from a fresh HPKE context to external_pub (§8.3). */
  uint8_t kem[MLS_KEM_PK], init_secret[MLS_MAX_HASH], commit_secret[MLS_MAX_HASH];
  uint8_t psk_secret[MLS_MAX_HASH];
  if (!rc) {
    hpke_ctx hc;
    memset(&hc, 0, sizeof hc);
    hpke_params hp = {.mode = HPKE_MODE_BASE, .info = BYTES_NONE};
    rc = hpke_setup_sender(&hc, s, &hp, ext_pub, kem);
    if (!rc)
      rc = hpke_export(&hc, BYTES(EXTERNAL_INIT_LABEL, strlen(EXTERNAL_INIT_LABEL)),
                       init_secret, h);
    hpke_ctx_wipe(&hc);
  }
  if (!rc) rc = group_alloc(id, cfg, gi.group_context.group_id, &g);
  for (size_t i = 0; !rc && i < n_psks; i++)
    rc = group_add_external_psk(g, psks[i].id, psks[i].secret);
  group_epoch_state next;
  memset(&next, 0, sizeof next);
  arena_init(&next.ext_arena);
  buf_init(&next.ext_enc);
  buf_init(&next.gc);
  /* Proposals by value: ExternalInit, optionally Remove of our old leaf,
   * and each external PSK given. */
  proposal_item items[2 + 16];
  mls_proposal_or_ref pors[2 + 16];
  size_t n = 0;
  memset(items, 0, sizeof items);
  memset(pors, 0, sizeof pors);
  mls_sender me = {.sender_type = MLS_SENDER_NEW_MEMBER_COMMIT};
  if (!rc && n_psks > 16) rc = TSR_ELIMIT;
  if (!rc) {
    next.tree = t;
    t = NULL;
    next.epoch = gi.group_context.epoch;
    memcpy(next.confirmed_th, gi.group_context.confirmed_transcript_hash.ptr, h);
    rc = group_epoch_set_ext(&next, &gi.group_context.extensions);
    items[n].p.proposal_type = MLS_PROPOSAL_EXTERNAL_INIT;
    items[n].p.external_init = BYTES(kem, MLS_KEM_PK);
    items[n++].sender = me;
    if (remove_leaf != UINT32_MAX) {
      items[n].p.proposal_type = MLS_PROPOSAL_REMOVE;
      items[n].p.remove = remove_leaf;
      items[n++].sender = me;
    }
    for (size_t i = 0; !rc && i < n_psks; i++) {
      uint8_t *nonce = arena_alloc(&a, h);
      if (!nonce)
        rc = TSR_ENOMEM;
      else
        rc = crypto_random(nonce, h);
      items[n].p.proposal_type = MLS_PROPOSAL_PSK;
      items[n].p.psk.psktype = MLS_PSK_EXTERNAL;
      items[n].p.psk.psk_id = psks[i].id;
      items[n].p.psk.psk_nonce = BYTES(nonce, h);
      items[n++].sender = me;
    }
    for (size_t i = 0; i < n; i++) {
      pors[i].type = MLS_POR_PROPOSAL;
      pors[i].proposal = items[i].p;
    }
  }
  /* The old epoch's GroupContext and interim hash, for signing and the
   * transcript. */
  buf_t old_gc, input, msg;
  buf_init(&old_gc);
  buf_init(&input);
  buf_init(&msg);
  uint8_t old_interim[MLS_MAX_HASH];
  if (!rc) {
    msg_encode_group_context(&old_gc, &gi.group_context);
    buf_t tagin;
    buf_init(&tagin);
    wr_opaque(&tagin, gi.confirmation_tag);
    rc = old_gc.err | tagin.err;
    if (!rc)
      rc = keysched_interim_hash(s, gi.group_context.confirmed_transcript_hash,
                                 buf_view(&tagin), old_interim);
    buf_free(&tagin);
  }
  if (!rc) {
    /* Validation works against the group's current tree: borrow it. */
    g->ep.tree = next.tree;
    g->ep.epoch = next.epoch;
    g->ep.own_leaf = UINT32_MAX;
    rc = proposal_validate_list(g, items, n, UINT32_MAX, true, &a);
    proposal_effects fx;
    if (!rc) rc = proposal_apply_list(g, &next, items, n, UINT32_MAX, NULL, &a, &fx);
    g->ep.tree = NULL;
  }
  /* Our leaf: a LeafNode template, placed in the leftmost free slot. */
  uint8_t leaf_sk[MLS_KEM_SK], leaf_pk[MLS_KEM_PK];
  mls_leaf_node ln;
  memset(&ln, 0, sizeof ln);
  uint32_t own = 0;
  if (!rc) rc = crypto_random(leaf_sk, sizeof leaf_sk);
  if (!rc) rc = crypto_dh_public(leaf_sk, leaf_pk);
  if (!rc) {
    reader_t r;
    rd_init(&r, buf_view(&g->id->credential));
    rc = msg_read_credential(&r, &a, &ln.credential);
    ln.encryption_key = BYTES(leaf_pk, MLS_KEM_PK);
    ln.signature_key = BYTES(g->id->sig.pk, MLS_SIG_PK);
    kp_default_capabilities(&ln.capabilities);
    ln.leaf_node_source = MLS_LEAF_SOURCE_COMMIT;
    ln.signature = BYTES(leaf_pk, MLS_KEM_PK); /* placeholder until signed */
  }
  if (!rc) rc = kp_check_required(&ln, &next.ext, &a);
  if (!rc) rc = tree_check_new_leaf(next.tree, &ln, TREE_NONE);
  if (!rc) rc = group_free_leaf(next.tree, &ln, &own);
  if (!rc) rc = treekem_priv_new(s, own, BYTES(leaf_sk, MLS_KEM_SK), &next.priv);
  secure_wipe(leaf_sk, sizeof leaf_sk);
  mls_update_path up;
  memset(&up, 0, sizeof up);
  if (!rc) {
    next.own_leaf = own;
    next.epoch = gi.group_context.epoch + 1;
    treekem_leaf_params lp = {
        .leaf = &ln, .sig = &g->id->sig, .group_id = buf_view(&g->group_id)};
    rc = treekem_path_begin(next.priv, next.tree, &lp);
    if (!rc) rc = group_epoch_encode_gc(g, &next);
    if (!rc)
      rc = treekem_path_encrypt(next.priv, next.tree, buf_view(&next.gc), NULL, 0, &a,
                                &up, commit_secret);
  }
  mls_authenticated_content ac;
  memset(&ac, 0, sizeof ac);
  uint8_t sig[MLS_SIG_LEN];
  framing_ctx ctx;
  memset(&ctx, 0, sizeof ctx);
  if (!rc) {
    ctx.suite = s;
    ctx.group_id = buf_view(&g->group_id);
    ctx.epoch = gi.group_context.epoch;
    ctx.group_context = buf_view(&old_gc);
    ctx.sig_key = &g->id->sig;
    ac.wire_format = MLS_WIRE_PUBLIC_MESSAGE;
    ac.content.group_id = buf_view(&g->group_id);
    ac.content.epoch = gi.group_context.epoch;
    ac.content.sender = me;
    ac.content.content_type = MLS_CONTENT_COMMIT;
    ac.content.commit.proposals = pors;
    ac.content.commit.n_proposals = n;
    ac.content.commit.has_path = true;
    ac.content.commit.path = up;
    rc = framing_sign(&ctx, &ac, sig);
  }
  if (!rc) {
    framing_encode_confirmed_input(&input, &ac);
    rc = input.err ? input.err
                   : keysched_confirmed_hash(s, BYTES(old_interim, h), buf_view(&input),
                                             next.confirmed_th);
  }
  /* PSK values in list order. */
  keysched_psk plist[16];
  for (size_t i = 0; !rc && i < n_psks; i++) {
    buf_t idb;
    buf_init(&idb);
    msg_encode_psk_id(&idb, &items[n - n_psks + i].p.psk);
    rc = idb.err ? idb.err : arena_dup(&a, buf_view(&idb), &plist[i].id);
    plist[i].value = psks[i].secret;
    buf_free(&idb);
  }
  if (!rc) rc = keysched_psk_secret(s, plist, n_psks, psk_secret);
  if (!rc)
    rc = group_epoch_finish(g, &next, BYTES(init_secret, h), BYTES(commit_secret, h),
                            n_psks ? BYTES(psk_secret, h) : BYTES_NONE, BYTES_NONE);
  if (!rc) {
    ac.auth.confirmation_tag = BYTES(next.confirmation_tag, h);
    rc = framing_protect_public(&ctx, &ac, &msg);
  }
  if (!rc) rc = buf_append(commit_msg, msg.ptr, msg.len);
  secure_wipe(init_secret, sizeof init_secret);
  secure_wipe(commit_secret, sizeof commit_secret);
  secure_wipe(psk_secret, sizeof psk_secret);
  buf_free(&old_gc);
  buf_free(&input);
  buf_free(&msg);
  arena_free(&a);
  tree_free(t);
  if (rc) {
    group_epoch_free(&next);
    group_free(g);
    return rc;
  }
  treekem_priv_forget_path(next.priv);
  keysched_forget_joiner(&next.ks);
  group_install_epoch(g, &next);
  *out = g;
  return 0;
}
