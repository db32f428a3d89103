/* RFC 9420 §6 message framing. See framing.h for the contract.
 *
 * Buffers: every TBS / TBM / AuthenticatedContent is built once in a
 * heap buf_t in the order FramedContentTBS || FramedContentAuthData, so the
 * membership tag (over all of it), the signature (over the TBS prefix) and
 * the AuthenticatedContent encoding (wire_format || FramedContent || auth,
 * two slices of it) come from one encoding. Key material lives on the
 * stack and is wiped on every path out. */
#include "mls/framing.h"

#include <string.h>

#include "tessera/error.h"

#define FRAMING_LABEL "FramedContentTBS"

/* Offsets into a buffer holding FramedContentTBS || FramedContentAuthData.
 * TBS = version(2) || wire_format(2) || FramedContent || [GroupContext]. */
typedef struct {
  size_t fc_end;  /* end of FramedContent */
  size_t tbs_end; /* end of FramedContentTBS (= start of auth) */
  size_t sig_end; /* end of auth.signature<V> */
  size_t end;     /* end of auth */
} framing_layout;

static bool framing_signs_context(uint8_t sender_type) {
  return sender_type == MLS_SENDER_MEMBER || sender_type == MLS_SENDER_NEW_MEMBER_COMMIT;
}

static bool framing_valid_content_type(uint8_t t) {
  return t >= MLS_CONTENT_APPLICATION && t <= MLS_CONTENT_COMMIT;
}

/* Appends TBS || auth to w (w empty on entry) and records the layout. */
static int framing_build_tbs(const framing_ctx *ctx, uint16_t wire_format,
                             const mls_framed_content *fc, const mls_auth_data *auth,
                             buf_t *w, framing_layout *lay) {
  msg_encode_framed_content_tbs(w, wire_format, fc, ctx->group_context);
  lay->tbs_end = w->len;
  lay->fc_end = w->len;
  if (framing_signs_context(fc->sender.sender_type))
    lay->fc_end -= ctx->group_context.len;
  if (auth) {
    wr_opaque(w, auth->signature);
    lay->sig_end = w->len;
    if (fc->content_type == MLS_CONTENT_COMMIT) wr_opaque(w, auth->confirmation_tag);
  } else {
    lay->sig_end = w->len;
  }
  lay->end = w->len;
  return w->err;
}

/* Copies wire_format || FramedContent || auth out of a framing_build_tbs
 * buffer into the arena. */
static int framing_export(const buf_t *w, const framing_layout *lay, bool commit_or_prop,
                          arena_t *a, framing_result *out) {
  out->encoded = BYTES_NONE;
  out->confirmed_input = BYTES_NONE;
  if (!commit_or_prop) return 0;
  size_t fc_part = lay->fc_end - 2; /* skip the version */
  size_t auth_part = lay->end - lay->tbs_end;
  uint8_t *p = arena_alloc(a, fc_part + auth_part);
  if (!p) return TSR_ENOMEM;
  memcpy(p, w->ptr + 2, fc_part);
  memcpy(p + fc_part, w->ptr + lay->tbs_end, auth_part);
  out->encoded = BYTES(p, fc_part + auth_part);
  out->confirmed_input = BYTES(p, fc_part + (lay->sig_end - lay->tbs_end));
  return 0;
}

static int framing_check_ctx(const framing_ctx *ctx) {
  if (!ctx || !ctx->suite) return TSR_EINVAL;
  return 0;
}

/* Content produced by us must be for this group and epoch. */
static int framing_check_own(const framing_ctx *ctx, const mls_authenticated_content *ac,
                             uint16_t wire_format) {
  if (framing_check_ctx(ctx) || !ac || ac->wire_format != wire_format) return TSR_EINVAL;
  if (!bytes_eq(ac->content.group_id, ctx->group_id) || ac->content.epoch != ctx->epoch)
    return TSR_EINVAL;
  if (!framing_valid_content_type(ac->content.content_type)) return TSR_EINVAL;
  if (ac->auth.signature.len != MLS_SIG_LEN) return TSR_EINVAL; /* not signed yet */
  if (ac->content.content_type == MLS_CONTENT_COMMIT &&
      ac->auth.confirmation_tag.len != ctx->suite->hash_len)
    return TSR_EINVAL;
  return 0;
}

/* §6.1 sender rules that depend only on the content. */
static int framing_check_sender(const mls_framed_content *fc) {
  switch (fc->sender.sender_type) {
  case MLS_SENDER_MEMBER: return 0;
  case MLS_SENDER_EXTERNAL:
    return fc->content_type == MLS_CONTENT_PROPOSAL ? 0 : TSR_ESENDER;
  case MLS_SENDER_NEW_MEMBER_COMMIT:
    return fc->content_type == MLS_CONTENT_COMMIT ? 0 : TSR_ESENDER;
  case MLS_SENDER_NEW_MEMBER_PROPOSAL:
    return fc->content_type == MLS_CONTENT_PROPOSAL &&
                   fc->proposal.proposal_type == MLS_PROPOSAL_ADD
               ? 0
               : TSR_ESENDER;
  default: return TSR_EDECODE;
  }
}

/* Signature key of the sender of fc. */
static int framing_sender_key(const framing_ctx *ctx, const mls_framed_content *fc,
                              bytes_t *pk) {
  *pk = BYTES_NONE;
  switch (fc->sender.sender_type) {
  case MLS_SENDER_NEW_MEMBER_COMMIT:
    /* An external commit always carries a path (§12.4.3.2). */
    if (!fc->commit.has_path) return TSR_EPROTOCOL;
    *pk = fc->commit.path.leaf_node.signature_key;
    return 0;
  case MLS_SENDER_NEW_MEMBER_PROPOSAL:
    *pk = fc->proposal.add.leaf_node.signature_key;
    return 0;
  default:
    if (!ctx->sender_key) return TSR_ESENDER;
    return ctx->sender_key(ctx->sender_key_arg, &fc->sender, pk);
  }
}

/* VerifyWithLabel over the TBS prefix of w. Any failure other than memory
 * is a forgery as far as the caller is concerned. */
static int framing_verify(const mls_suite *s, bytes_t pk, const buf_t *w,
                          const framing_layout *lay, bytes_t sig) {
  int rc = mls_verify_with_label(s, pk, FRAMING_LABEL, BYTES(w->ptr, lay->tbs_end), sig);
  return rc == 0 || rc == TSR_ENOMEM ? rc : TSR_EVERIFY;
}

/* MAC(membership_key, AuthenticatedContentTBM). */
static int framing_membership_tag(const framing_ctx *ctx, bytes_t tbm,
                                  uint8_t tag[MLS_MAX_HASH]) {
  if (ctx->membership_key.len != ctx->suite->hash_len) return TSR_EINVAL;
  return crypto_hmac(ctx->suite, ctx->membership_key, tbm, tag);
}

static void framing_put_u32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static uint32_t framing_get_u32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* PrivateContentAAD; its first sender_aad_len bytes are SenderDataAAD. */
static void framing_private_aad(buf_t *w, bytes_t group_id, uint64_t epoch,
                                uint8_t content_type, bytes_t authenticated_data,
                                size_t *sender_aad_len) {
  wr_opaque(w, group_id);
  wr_u64(w, epoch);
  wr_u8(w, content_type);
  *sender_aad_len = w->len;
  wr_opaque(w, authenticated_data);
}

static secret_tree_type framing_ratchet(uint8_t content_type) {
  return content_type == MLS_CONTENT_APPLICATION ? SECRET_TREE_APPLICATION
                                                 : SECRET_TREE_HANDSHAKE;
}

/* --- Sending ------------------------------------------------------------- */

int framing_sign(const framing_ctx *ctx, mls_authenticated_content *ac,
                 uint8_t sig[MLS_SIG_LEN]) {
  if (framing_check_ctx(ctx) || !ac || !sig || !ctx->sig_key) return TSR_EINVAL;
  if (ac->wire_format != MLS_WIRE_PUBLIC_MESSAGE &&
      ac->wire_format != MLS_WIRE_PRIVATE_MESSAGE)
    return TSR_EINVAL;
  buf_t w;
  buf_init(&w);
  framing_layout lay;
  int rc = framing_build_tbs(ctx, ac->wire_format, &ac->content, NULL, &w, &lay);
  if (!rc)
    rc = mls_sign_with_label(ctx->suite, ctx->sig_key, FRAMING_LABEL, buf_view(&w), sig);
  buf_free_secret(&w);
  if (rc) return rc;
  ac->auth.signature = BYTES(sig, MLS_SIG_LEN);
  return 0;
}

int framing_protect_public(const framing_ctx *ctx, const mls_authenticated_content *ac,
                           buf_t *out) {
  int rc = framing_check_own(ctx, ac, MLS_WIRE_PUBLIC_MESSAGE);
  if (rc || !out || out->err) return rc ? rc : TSR_EINVAL;
  /* §6.2: application data is only ever sent encrypted. */
  if (ac->content.content_type == MLS_CONTENT_APPLICATION) return TSR_EPROTOCOL;
  if (framing_check_sender(&ac->content)) return TSR_EINVAL;

  mls_public_message pm = {.content = ac->content, .auth = ac->auth};
  uint8_t tag[MLS_MAX_HASH];
  buf_t w;
  buf_init(&w);
  if (ac->content.sender.sender_type == MLS_SENDER_MEMBER) {
    framing_layout lay;
    rc = framing_build_tbs(ctx, MLS_WIRE_PUBLIC_MESSAGE, &ac->content, &ac->auth, &w,
                           &lay);
    if (!rc) rc = framing_membership_tag(ctx, buf_view(&w), tag);
    pm.membership_tag = BYTES(tag, ctx->suite->hash_len);
  }
  buf_free(&w);
  if (rc) return rc;

  size_t mark = out->len;
  wr_u16(out, MLS_VERSION_10);
  wr_u16(out, MLS_WIRE_PUBLIC_MESSAGE);
  msg_encode_public_message(out, &pm);
  rc = out->err;
  if (rc) {
    out->len = mark; /* out was healthy on entry: undo our part */
    out->err = 0;
  }
  return rc;
}

/* PrivateMessageContent: content body || auth || zero padding. */
static int framing_encode_private_content(const framing_ctx *ctx,
                                          const mls_authenticated_content *ac,
                                          buf_t *pt) {
  const mls_framed_content *fc = &ac->content;
  switch (fc->content_type) {
  case MLS_CONTENT_APPLICATION: wr_opaque(pt, fc->application_data); break;
  case MLS_CONTENT_PROPOSAL: msg_encode_proposal(pt, &fc->proposal); break;
  default: msg_encode_commit(pt, &fc->commit); break;
  }
  msg_encode_auth_data(pt, &ac->auth, fc->content_type);
  uint32_t block = ctx->padding_block;
  if (block > 1 && pt->len % block) {
    size_t pad = block - pt->len % block;
    uint8_t *p = buf_extend(pt, pad);
    if (p) memset(p, 0, pad);
  }
  return pt->err;
}

int framing_protect_private(const framing_ctx *ctx, const mls_authenticated_content *ac,
                            buf_t *out) {
  int rc = framing_check_own(ctx, ac, MLS_WIRE_PRIVATE_MESSAGE);
  if (rc || !out || out->err) return rc ? rc : TSR_EINVAL;
  const mls_suite *s = ctx->suite;
  const mls_framed_content *fc = &ac->content;
  /* §6.3.2: only members send PrivateMessage; we only send as ourselves. */
  if (fc->sender.sender_type != MLS_SENDER_MEMBER || fc->sender.index != ctx->own_leaf)
    return TSR_EINVAL;
  if (!ctx->tree || ctx->sender_data_secret.len != s->hash_len ||
      ctx->padding_block > FRAMING_MAX_PADDING_BLOCK)
    return TSR_EINVAL;

  buf_t pt, ct, aad;
  buf_init(&pt);
  buf_init(&ct);
  buf_init(&aad);
  secret_tree_keys keys;
  memset(&keys, 0, sizeof keys);
  uint8_t sd[FRAMING_SENDER_DATA_LEN];
  uint8_t sd_ct[FRAMING_SENDER_DATA_LEN + MLS_AEAD_TAG];
  uint8_t sd_key[MLS_MAX_AEAD_KEY], sd_nonce[MLS_MAX_NONCE];
  size_t sd_aad_len = 0, mark = out->len;
  mls_private_message pm;

  rc = framing_encode_private_content(ctx, ac, &pt);
  if (rc) goto done;
  framing_private_aad(&aad, fc->group_id, fc->epoch, fc->content_type,
                      fc->authenticated_data, &sd_aad_len);
  if (!buf_extend(&ct, pt.len + MLS_AEAD_TAG) || aad.err) {
    rc = aad.err ? aad.err : TSR_ENOMEM;
    goto done;
  }
  /* Everything that can fail for lack of memory is done: take the key. */
  rc = secret_tree_next(ctx->tree, ctx->own_leaf, framing_ratchet(fc->content_type),
                        &keys);
  if (rc) goto done;
  rc = crypto_random(sd + 8, 4);
  if (rc) goto done;
  framing_put_u32(sd, ctx->own_leaf);
  framing_put_u32(sd + 4, keys.generation);
  for (int i = 0; i < 4; i++) keys.nonce[i] ^= sd[8 + i];
  rc = crypto_aead_seal(s, keys.key, keys.nonce, buf_view(&aad), buf_view(&pt), ct.ptr);
  if (rc) goto done;

  rc = secret_tree_sender_data_key(s, ctx->sender_data_secret, buf_view(&ct), sd_key,
                                   sd_nonce);
  if (!rc)
    rc = crypto_aead_seal(s, sd_key, sd_nonce, BYTES(aad.ptr, sd_aad_len),
                          BYTES(sd, sizeof sd), sd_ct);
  if (rc) goto done;

  pm = (mls_private_message){
      .group_id = fc->group_id,
      .epoch = fc->epoch,
      .content_type = fc->content_type,
      .authenticated_data = fc->authenticated_data,
      .encrypted_sender_data = BYTES(sd_ct, sizeof sd_ct),
      .ciphertext = buf_view(&ct),
  };
  wr_u16(out, MLS_VERSION_10);
  wr_u16(out, MLS_WIRE_PRIVATE_MESSAGE);
  msg_encode_private_message(out, &pm);
  rc = out->err;
  if (rc) {
    out->len = mark; /* out was healthy on entry: undo our part */
    out->err = 0;
  }

done:
  secret_tree_keys_wipe(&keys);
  secure_wipe(sd, sizeof sd);
  secure_wipe(sd_key, sizeof sd_key);
  secure_wipe(sd_nonce, sizeof sd_nonce);
  buf_free_secret(&pt);
  buf_free(&ct);
  buf_free(&aad);
  return rc;
}

void framing_encode_confirmed_input(buf_t *out, const mls_authenticated_content *ac) {
  wr_u16(out, ac->wire_format);
  msg_encode_framed_content(out, &ac->content);
  wr_opaque(out, ac->auth.signature);
}

/* --- Receiving ----------------------------------------------------------- */

int framing_unprotect_public(const framing_ctx *ctx, const mls_public_message *pm,
                             arena_t *a, framing_result *out) {
  if (framing_check_ctx(ctx) || !pm || !a || !out) return TSR_EINVAL;
  memset(out, 0, sizeof *out);
  const mls_framed_content *fc = &pm->content;
  if (!bytes_eq(fc->group_id, ctx->group_id)) return TSR_EGROUP;
  if (fc->epoch != ctx->epoch) return TSR_EEPOCH;
  if (!framing_valid_content_type(fc->content_type)) return TSR_EDECODE;
  if (fc->content_type == MLS_CONTENT_APPLICATION) return TSR_EPROTOCOL;
  int rc = framing_check_sender(fc);
  if (rc) return rc;

  buf_t w;
  buf_init(&w);
  framing_layout lay;
  bytes_t pk;
  uint8_t tag[MLS_MAX_HASH];
  rc = framing_build_tbs(ctx, MLS_WIRE_PUBLIC_MESSAGE, fc, &pm->auth, &w, &lay);
  if (rc) goto done;
  if (fc->sender.sender_type == MLS_SENDER_MEMBER && !ctx->no_membership_key) {
    rc = framing_membership_tag(ctx, buf_view(&w), tag);
    if (rc) goto done;
    if (!bytes_eq_ct(BYTES(tag, ctx->suite->hash_len), pm->membership_tag)) {
      rc = TSR_EVERIFY;
      goto done;
    }
  }
  rc = framing_sender_key(ctx, fc, &pk);
  if (rc) goto done;
  rc = framing_verify(ctx->suite, pk, &w, &lay, pm->auth.signature);
  if (rc) goto done;
  rc = framing_export(&w, &lay, true, a, out);
  if (rc) goto done;
  out->ac.wire_format = MLS_WIRE_PUBLIC_MESSAGE;
  out->ac.content = *fc;
  out->ac.auth = pm->auth;

done:
  buf_free(&w);
  if (rc) memset(out, 0, sizeof *out);
  return rc;
}

/* Decodes PrivateMessageContent for content_type into fc / auth; the
 * padding (whatever follows) must be all zero (§6.3.1). */
static int framing_parse_private_content(bytes_t pt, uint8_t content_type, arena_t *a,
                                         mls_framed_content *fc, mls_auth_data *auth) {
  reader_t r;
  rd_init(&r, pt);
  int rc = 0;
  switch (content_type) {
  case MLS_CONTENT_APPLICATION: rc = rd_opaque(&r, &fc->application_data); break;
  case MLS_CONTENT_PROPOSAL: rc = msg_read_proposal(&r, a, &fc->proposal); break;
  default: rc = msg_read_commit(&r, a, &fc->commit); break;
  }
  if (rc) return rc;
  rc = msg_read_auth_data(&r, content_type, auth);
  if (rc) return rc;
  /* Padding is plaintext the sender chose; no need for constant time. */
  uint8_t acc = 0;
  for (const uint8_t *p = rd_pos(&r); p < r.end; p++) acc |= *p;
  return acc ? TSR_EDECODE : 0;
}

int framing_unprotect_private(const framing_ctx *ctx, const mls_private_message *pm,
                              arena_t *a, framing_result *out) {
  if (framing_check_ctx(ctx) || !pm || !a || !out) return TSR_EINVAL;
  memset(out, 0, sizeof *out);
  const mls_suite *s = ctx->suite;
  if (!bytes_eq(pm->group_id, ctx->group_id)) return TSR_EGROUP;
  if (pm->epoch != ctx->epoch) return TSR_EEPOCH;
  if (!framing_valid_content_type(pm->content_type)) return TSR_EDECODE;
  if (!ctx->tree || ctx->sender_data_secret.len != s->hash_len) return TSR_EINVAL;
  if (pm->encrypted_sender_data.len != FRAMING_SENDER_DATA_LEN + MLS_AEAD_TAG ||
      pm->ciphertext.len < MLS_AEAD_TAG)
    return TSR_EDECRYPT;

  buf_t aad, w;
  buf_init(&aad);
  buf_init(&w);
  secret_tree_keys keys;
  memset(&keys, 0, sizeof keys);
  uint8_t sd[FRAMING_SENDER_DATA_LEN];
  uint8_t sd_key[MLS_MAX_AEAD_KEY], sd_nonce[MLS_MAX_NONCE];
  size_t sd_aad_len = 0, pt_len = 0;
  uint32_t generation = 0;
  uint8_t *pt = NULL;
  secret_tree_type type = framing_ratchet(pm->content_type);
  mls_framed_content fc;
  mls_auth_data auth;
  memset(&fc, 0, sizeof fc);
  memset(&auth, 0, sizeof auth);
  framing_layout lay;
  bytes_t pk;

  framing_private_aad(&aad, pm->group_id, pm->epoch, pm->content_type,
                      pm->authenticated_data, &sd_aad_len);
  int rc = aad.err;
  if (rc) goto done;

  /* Sender data first: it names the leaf and generation. */
  rc = secret_tree_sender_data_key(s, ctx->sender_data_secret, pm->ciphertext, sd_key,
                                   sd_nonce);
  if (rc) goto done;
  rc = crypto_aead_open(s, sd_key, sd_nonce, BYTES(aad.ptr, sd_aad_len),
                        pm->encrypted_sender_data, sd);
  if (rc) goto done;
  fc.sender.sender_type = MLS_SENDER_MEMBER;
  fc.sender.index = framing_get_u32(sd);
  generation = framing_get_u32(sd + 4);
  /* The leaf must be a member (§6.3.2) before we touch its ratchet. */
  rc = framing_sender_key(ctx, &fc, &pk);
  if (rc) goto done;

  /* Peek, not get: a forged content ciphertext must not burn the key. */
  rc = secret_tree_peek(ctx->tree, fc.sender.index, type, generation, &keys);
  if (rc == TSR_EINVAL) rc = TSR_ESENDER; /* leaf outside the tree */
  if (rc) goto done;
  for (int i = 0; i < 4; i++) keys.nonce[i] ^= sd[8 + i];
  pt_len = pm->ciphertext.len - MLS_AEAD_TAG;
  pt = arena_alloc(a, pt_len ? pt_len : 1);
  if (!pt) {
    rc = TSR_ENOMEM;
    goto done;
  }
  rc = crypto_aead_open(s, keys.key, keys.nonce, buf_view(&aad), pm->ciphertext, pt);
  if (rc) goto done;

  fc.group_id = pm->group_id;
  fc.epoch = pm->epoch;
  fc.authenticated_data = pm->authenticated_data;
  fc.content_type = pm->content_type;
  rc = framing_parse_private_content(BYTES(pt, pt_len), pm->content_type, a, &fc, &auth);
  if (rc) goto done;

  rc = framing_build_tbs(ctx, MLS_WIRE_PRIVATE_MESSAGE, &fc, &auth, &w, &lay);
  if (rc) goto done;
  rc = framing_verify(s, pk, &w, &lay, auth.signature);
  if (rc) goto done;
  rc = framing_export(&w, &lay, pm->content_type != MLS_CONTENT_APPLICATION, a, out);
  if (rc) goto done;
  /* Authenticated: now the key may go (§9.2). */
  rc = secret_tree_consume(ctx->tree, fc.sender.index, type, generation);
  if (rc) goto done;
  out->ac.wire_format = MLS_WIRE_PRIVATE_MESSAGE;
  out->ac.content = fc;
  out->ac.auth = auth;
  out->generation = generation;

done:
  secret_tree_keys_wipe(&keys);
  secure_wipe(sd, sizeof sd);
  secure_wipe(sd_key, sizeof sd_key);
  secure_wipe(sd_nonce, sizeof sd_nonce);
  buf_free(&aad);
  buf_free_secret(&w);
  if (rc) {
    if (pt) secure_wipe(pt, pt_len); /* refused plaintext: gone now, not at arena_free */
    memset(out, 0, sizeof *out);
  }
  return rc;
}

int framing_unprotect(const framing_ctx *ctx, bytes_t msg, arena_t *a,
                      framing_result *out) {
  if (framing_check_ctx(ctx) || !a || !out) return TSR_EINVAL;
  memset(out, 0, sizeof *out);
  mls_message m;
  memset(&m, 0, sizeof m);
  int rc = msg_decode_message(msg, a, &m);
  if (rc) return rc;
  if (m.version != MLS_VERSION_10) return TSR_EUNSUPPORTED;
  switch (m.wire_format) {
  case MLS_WIRE_PUBLIC_MESSAGE:
    return framing_unprotect_public(ctx, &m.public_message, a, out);
  case MLS_WIRE_PRIVATE_MESSAGE:
    return framing_unprotect_private(ctx, &m.private_message, a, out);
  default: return TSR_EPROTOCOL;
  }
}
