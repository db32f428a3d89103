/* libFuzzer target for message framing (src/mls/framing.c).
 *
 * One fixed group (suite 1, four members, fixed secrets). The first byte
 * picks how the rest reaches the unprotect functions:
 *   0: as an MLSMessage, unchanged (decoder, group/epoch checks, sender
 *      data AEAD, membership tag);
 *   1: as a PrivateMessageContent plaintext that the harness encrypts
 *      correctly (leaf, generation and reuse guard from the next bytes), so
 *      the content parser, padding check, sender lookup, secret-tree window
 *      and signature check see attacker-chosen plaintext;
 *   2: as a FramedContent + auth that the harness wraps in a PublicMessage
 *      with a valid membership tag, to reach the sender rules and the
 *      signature check.
 * Nothing may crash or leak; a result that claims success must carry
 * content consistent with the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mls/crypto.h"
#include "mls/framing.h"
#include "mls/messages.h"
#include "mls/secret_tree.h"
#include "tessera/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define N_LEAVES 4

static const uint8_t group_id[] = "fuzz-group";
static const uint8_t gc_bytes[] = {0x00, 0x01, 0x00, 0x01, 0x0a, 'f', 'u', 'z', 'z',
                                   '-',  'g',  'r',  'o',  'u',  'p', 0,   0,   0,
                                   0,    0,    0,    0,    0,    0,   0,   0};
static uint8_t secret[32], mkey[32], sds[32];
static mls_sig_key key;
static const mls_suite *suite;

static int lookup(void *arg, const mls_sender *s, bytes_t *pk) {
  (void)arg;
  if ((s->sender_type == MLS_SENDER_MEMBER && s->index < N_LEAVES && s->index != 2) ||
      (s->sender_type == MLS_SENDER_EXTERNAL && s->index == 0)) {
    *pk = BYTES(key.pk, MLS_SIG_PK);
    return 0;
  }
  return TSR_ESENDER;
}

static void setup(void) {
  if (suite) return;
  if (crypto_init()) abort();
  suite = mls_suite_get(MLS_SUITE_X25519_AES128GCM_SHA256_ED25519);
  uint8_t seed[MLS_SIG_SEED];
  for (int i = 0; i < 32; i++) {
    secret[i] = (uint8_t)i;
    mkey[i] = (uint8_t)(0x40 + i);
    sds[i] = (uint8_t)(0x80 + i);
    seed[i] = (uint8_t)(0xc0 + i);
  }
  if (!suite || crypto_sig_from_seed(&key, seed)) abort();
}

static void fill_ctx(framing_ctx *ctx, secret_tree *st) {
  memset(ctx, 0, sizeof *ctx);
  ctx->suite = suite;
  ctx->group_id = BYTES(group_id, sizeof group_id - 1);
  ctx->epoch = 0;
  ctx->group_context = BYTES(gc_bytes, sizeof gc_bytes);
  ctx->membership_key = BYTES(mkey, sizeof mkey);
  ctx->sender_data_secret = BYTES(sds, sizeof sds);
  ctx->tree = st;
  ctx->sig_key = &key;
  ctx->sender_key = lookup;
}

static void check_result(int rc, const framing_result *r) {
  if (rc) return;
  const mls_framed_content *fc = &r->ac.content;
  if (fc->epoch != 0 || fc->group_id.len != sizeof group_id - 1) abort();
  if (fc->content_type == MLS_CONTENT_APPLICATION &&
      r->ac.wire_format != MLS_WIRE_PRIVATE_MESSAGE)
    abort();
  if (r->confirmed_input.len > r->encoded.len) abort();
}

/* Mode 1: encrypt `pt` correctly as leaf/generation and unprotect it. */
static void run_private(const framing_ctx *ctx, const uint8_t *d, size_t n, arena_t *a) {
  if (n < 8) return;
  uint8_t content_type = (uint8_t)(1 + d[0] % 3);
  uint32_t leaf = d[1] % (N_LEAVES + 1); /* one past the end too */
  uint32_t gen = (uint32_t)(d[2] << 8 | d[3]) % 1100;
  const uint8_t *guard = d + 4;
  bytes_t pt = BYTES(d + 8, n - 8);

  /* The sender may run further ahead than the receiver's window. */
  secret_tree_config wide = {.max_ahead = 2000, .max_skipped = 0};
  secret_tree sender;
  if (secret_tree_init(&sender, suite, BYTES(secret, sizeof secret), N_LEAVES, &wide))
    return;
  secret_tree_keys k;
  secret_tree_type type = content_type == MLS_CONTENT_APPLICATION
                              ? SECRET_TREE_APPLICATION
                              : SECRET_TREE_HANDSHAKE;
  if (secret_tree_get(&sender, leaf < N_LEAVES ? leaf : 0, type, gen, &k)) {
    secret_tree_free(&sender);
    return;
  }
  for (int i = 0; i < 4; i++) k.nonce[i] ^= guard[i];
  buf_t aad, ct, msg;
  buf_init(&aad);
  buf_init(&ct);
  buf_init(&msg);
  wr_opaque(&aad, ctx->group_id);
  wr_u64(&aad, 0);
  wr_u8(&aad, content_type);
  size_t sd_aad = aad.len;
  wr_opaque(&aad, BYTES_NONE);
  uint8_t *c = buf_extend(&ct, pt.len + MLS_AEAD_TAG);
  uint8_t sd[12] = {0}, esd[12 + MLS_AEAD_TAG];
  uint8_t sk[MLS_MAX_AEAD_KEY], sn[MLS_MAX_NONCE];
  sd[3] = (uint8_t)leaf;
  sd[6] = (uint8_t)(gen >> 8);
  sd[7] = (uint8_t)gen;
  memcpy(sd + 8, guard, 4);
  if (c && !aad.err && !crypto_aead_seal(suite, k.key, k.nonce, buf_view(&aad), pt, c) &&
      !secret_tree_sender_data_key(suite, ctx->sender_data_secret, buf_view(&ct), sk,
                                   sn) &&
      !crypto_aead_seal(suite, sk, sn, BYTES(aad.ptr, sd_aad), BYTES(sd, 12), esd)) {
    mls_private_message pm = {.group_id = ctx->group_id,
                              .epoch = 0,
                              .content_type = content_type,
                              .authenticated_data = BYTES_NONE,
                              .encrypted_sender_data = BYTES(esd, sizeof esd),
                              .ciphertext = buf_view(&ct)};
    framing_result r;
    int rc = framing_unprotect_private(ctx, &pm, a, &r);
    check_result(rc, &r);
    /* Accepted once means refused the second time. */
    if (rc == 0 && framing_unprotect_private(ctx, &pm, a, &r) != TSR_EREPLAY) abort();
  }
  secret_tree_keys_wipe(&k);
  secret_tree_free(&sender);
  buf_free(&aad);
  buf_free(&ct);
  buf_free(&msg);
}

/* Mode 2: FramedContent || auth || (tag computed here) as PublicMessage. */
static void run_public(const framing_ctx *ctx, const uint8_t *d, size_t n, arena_t *a) {
  reader_t r;
  rd_init(&r, BYTES(d, n));
  mls_public_message pm;
  memset(&pm, 0, sizeof pm);
  if (msg_read_framed_content(&r, a, &pm.content)) return;
  if (msg_read_auth_data(&r, pm.content.content_type, &pm.auth)) return;
  buf_t tbm, msg;
  buf_init(&tbm);
  buf_init(&msg);
  uint8_t tag[MLS_MAX_HASH];
  msg_encode_framed_content_tbs(&tbm, MLS_WIRE_PUBLIC_MESSAGE, &pm.content,
                                ctx->group_context);
  msg_encode_auth_data(&tbm, &pm.auth, pm.content.content_type);
  if (!tbm.err && !crypto_hmac(suite, ctx->membership_key, buf_view(&tbm), tag)) {
    pm.membership_tag = BYTES(tag, suite->hash_len);
    wr_u16(&msg, MLS_VERSION_10);
    wr_u16(&msg, MLS_WIRE_PUBLIC_MESSAGE);
    msg_encode_public_message(&msg, &pm);
    if (!msg.err) {
      framing_result res;
      check_result(framing_unprotect(ctx, buf_view(&msg), a, &res), &res);
    }
  }
  buf_free(&tbm);
  buf_free(&msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  setup();
  if (size < 1) return 0;
  secret_tree st;
  if (secret_tree_init(&st, suite, BYTES(secret, sizeof secret), N_LEAVES, NULL)) abort();
  framing_ctx ctx;
  fill_ctx(&ctx, &st);
  arena_t a;
  arena_init(&a);
  switch (data[0] % 3) {
  case 0: {
    framing_result r;
    check_result(framing_unprotect(&ctx, BYTES(data + 1, size - 1), &a, &r), &r);
    break;
  }
  case 1: run_private(&ctx, data + 1, size - 1, &a); break;
  default: run_public(&ctx, data + 1, size - 1, &a); break;
  }
  arena_free(&a);
  secret_tree_free(&st);
  return 0;
}
