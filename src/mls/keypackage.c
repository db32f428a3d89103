/* KeyPackages (RFC 9420 §10): creation, private part, validation, and the
 * LeafNode capability checks (§7.2, §7.3) shared with proposals. */
#define GROUP_INTERNAL
#include <stdlib.h>
#include <string.h>

#include "mls/codec.h"
#include "mls/group.h"
#include "tessera/error.h"

#define KP_SECRET_MAGIC "TSRK"
#define KP_DEFAULT_LIFETIME (90ull * 86400)
#define GREASE_VALUE 0x0a0a /* §13.5 reserved GREASE value */

/* Static capability lists: what this implementation supports. Default
 * proposal and extension types are implicit (§7.2); GREASE entries
 * exercise the peers' "ignore unknown values" rule. */
static uint16_t caps_versions[] = {MLS_VERSION_10};
static uint16_t caps_suites[] = {MLS_SUITE_X25519_AES128GCM_SHA256_ED25519,
                                 MLS_SUITE_X25519_CHACHA20POLY1305_SHA256_ED25519};
static uint16_t caps_extensions[] = {GREASE_VALUE};
static uint16_t caps_proposals[] = {GREASE_VALUE};
static uint16_t caps_credentials[] = {MLS_CREDENTIAL_BASIC, GREASE_VALUE};

void kp_default_capabilities(mls_capabilities *c) {
  c->versions = caps_versions;
  c->n_versions = 1;
  c->cipher_suites = caps_suites;
  c->n_cipher_suites = 2;
  c->extensions = caps_extensions;
  c->n_extensions = 1;
  c->proposals = caps_proposals;
  c->n_proposals = 1;
  c->credentials = caps_credentials;
  c->n_credentials = 2;
}

static bool default_extension(uint16_t t) { return t >= 1 && t <= 5; }
static bool default_proposal(uint16_t t) { return t >= 1 && t <= 7; }

int kp_check_leaf_caps(const mls_leaf_node *ln, const mls_extensions *group_ext) {
  (void)group_ext;
  const mls_capabilities *c = &ln->capabilities;
  for (size_t i = 0; i < ln->extensions.n; i++) {
    uint16_t t = ln->extensions.items[i].extension_type;
    if (!default_extension(t) && !msg_u16_contains(c->extensions, c->n_extensions, t))
      return TSR_ECAPABILITY;
  }
  if (!msg_u16_contains(c->credentials, c->n_credentials, ln->credential.credential_type))
    return TSR_ECAPABILITY;
  return 0;
}

int kp_check_required(const mls_leaf_node *ln, const mls_extensions *ext, arena_t *a) {
  const mls_extension *x = msg_find_extension(ext, MLS_EXT_REQUIRED_CAPABILITIES);
  if (!x) return 0;
  mls_required_capabilities rq;
  if (msg_decode_required_capabilities(x->extension_data, a, &rq)) return TSR_EPROTOCOL;
  const mls_capabilities *c = &ln->capabilities;
  for (size_t i = 0; i < rq.n_extension_types; i++)
    if (!default_extension(rq.extension_types[i]) &&
        !msg_u16_contains(c->extensions, c->n_extensions, rq.extension_types[i]))
      return TSR_ECAPABILITY;
  for (size_t i = 0; i < rq.n_proposal_types; i++)
    if (!default_proposal(rq.proposal_types[i]) &&
        !msg_u16_contains(c->proposals, c->n_proposals, rq.proposal_types[i]))
      return TSR_ECAPABILITY;
  for (size_t i = 0; i < rq.n_credential_types; i++)
    if (!msg_u16_contains(c->credentials, c->n_credentials, rq.credential_types[i]))
      return TSR_ECAPABILITY;
  return 0;
}

int kp_ref(const mls_suite *s, const mls_key_package *kp, uint8_t out[MLS_MAX_HASH]) {
  buf_t w;
  buf_init(&w);
  msg_encode_key_package(&w, kp);
  int rc =
      w.err ? w.err : mls_ref_hash(s, "MLS 1.0 KeyPackage Reference", buf_view(&w), out);
  buf_free(&w);
  return rc;
}

/* MLSMessage(KeyPackage) or a bare KeyPackage. */
static int kp_decode_any(bytes_t in, arena_t *a, mls_key_package *kp) {
  mls_message m;
  if (in.len >= 4 && in.ptr[0] == 0 && in.ptr[1] == MLS_VERSION_10 && in.ptr[2] == 0 &&
      in.ptr[3] == MLS_WIRE_KEY_PACKAGE && msg_decode_message(in, a, &m) == 0) {
    *kp = m.key_package;
    return 0;
  }
  return msg_decode_key_package(in, a, kp);
}

int kp_validate(const mls_suite *s, const mls_key_package *kp, uint64_t now) {
  if (kp->version != MLS_VERSION_10) return TSR_EUNSUPPORTED;
  if (kp->cipher_suite != s->id) return TSR_EUNSUPPORTED;
  const mls_leaf_node *ln = &kp->leaf_node;
  if (ln->leaf_node_source != MLS_LEAF_SOURCE_KEY_PACKAGE) return TSR_EPROTOCOL;
  if (ln->encryption_key.len != MLS_KEM_PK || kp->init_key.len != MLS_KEM_PK)
    return TSR_EPROTOCOL;
  if (bytes_eq(ln->encryption_key, kp->init_key)) return TSR_EPROTOCOL;
  int rc = tree_verify_leaf_signature(s, ln, BYTES_NONE, 0);
  if (rc) return TSR_EVERIFY;
  buf_t tbs;
  buf_init(&tbs);
  msg_encode_key_package_tbs(&tbs, kp);
  rc = tbs.err ? tbs.err
               : mls_verify_with_label(s, ln->signature_key, "KeyPackageTBS",
                                       buf_view(&tbs), kp->signature);
  buf_free(&tbs);
  if (rc) return TSR_EVERIFY;
  if (!msg_u16_contains(ln->capabilities.versions, ln->capabilities.n_versions,
                        MLS_VERSION_10) ||
      !msg_u16_contains(ln->capabilities.cipher_suites, ln->capabilities.n_cipher_suites,
                        s->id))
    return TSR_ECAPABILITY;
  rc = kp_check_leaf_caps(ln, NULL);
  if (rc) return rc;
  if (now != UINT64_MAX) {
    if (now == 0) now = group_now(NULL);
    if (now < ln->lifetime.not_before || now > ln->lifetime.not_after)
      return TSR_EEXPIRED;
  }
  return 0;
}

int kp_decode_validate(const mls_suite *s, bytes_t in, arena_t *a, uint64_t now,
                       mls_key_package *kp) {
  int rc = kp_decode_any(in, a, kp);
  if (rc) return rc;
  return kp_validate(s, kp, now);
}

/* --- Creation and the private part --------------------------------------------- */

static kp_secret *secret_alloc(const mls_suite *s) {
  kp_secret *k = calloc(1, sizeof *k);
  if (!k) return NULL;
  k->suite = s;
  buf_init(&k->key_package);
  return k;
}

void kp_secret_free(kp_secret *s) {
  if (!s) return;
  buf_free(&s->key_package);
  secure_wipe(s, sizeof *s);
  free(s);
}

int kp_create(const group_identity *id, uint64_t now, uint64_t lifetime_s, buf_t *kp_msg,
              kp_secret **secret) {
  const mls_suite *s = id->suite;
  if (!now) now = group_now(NULL);
  if (!lifetime_s) lifetime_s = KP_DEFAULT_LIFETIME;
  kp_secret *k = secret_alloc(s);
  if (!k) return TSR_ENOMEM;
  uint8_t init_pk[MLS_KEM_PK], leaf_pk[MLS_KEM_PK], lsig[MLS_SIG_LEN], ksig[MLS_SIG_LEN];
  arena_t a;
  arena_init(&a);
  buf_t tbs;
  buf_init(&tbs);
  int rc = crypto_random(k->init_sk, MLS_KEM_SK);
  if (!rc) rc = crypto_dh_public(k->init_sk, init_pk);
  if (!rc) rc = crypto_random(k->leaf_sk, MLS_KEM_SK);
  if (!rc) rc = crypto_dh_public(k->leaf_sk, leaf_pk);
  mls_key_package kp;
  memset(&kp, 0, sizeof kp);
  if (!rc) {
    reader_t r;
    rd_init(&r, buf_view(&id->credential));
    rc = msg_read_credential(&r, &a, &kp.leaf_node.credential);
  }
  if (!rc) {
    mls_leaf_node *ln = &kp.leaf_node;
    ln->encryption_key = BYTES(leaf_pk, MLS_KEM_PK);
    ln->signature_key = BYTES(id->sig.pk, MLS_SIG_PK);
    kp_default_capabilities(&ln->capabilities);
    ln->leaf_node_source = MLS_LEAF_SOURCE_KEY_PACKAGE;
    /* An hour of slack for clocks that run behind ours. */
    ln->lifetime.not_before = now > 3600 ? now - 3600 : 0;
    ln->lifetime.not_after = now + lifetime_s;
    msg_encode_leaf_node_tbs(&tbs, ln, BYTES_NONE, 0);
    rc = tbs.err ? tbs.err
                 : mls_sign_with_label(s, &id->sig, "LeafNodeTBS", buf_view(&tbs), lsig);
  }
  if (!rc) {
    kp.leaf_node.signature = BYTES(lsig, MLS_SIG_LEN);
    kp.version = MLS_VERSION_10;
    kp.cipher_suite = s->id;
    kp.init_key = BYTES(init_pk, MLS_KEM_PK);
    buf_reset(&tbs);
    msg_encode_key_package_tbs(&tbs, &kp);
    rc = tbs.err
             ? tbs.err
             : mls_sign_with_label(s, &id->sig, "KeyPackageTBS", buf_view(&tbs), ksig);
  }
  if (!rc) {
    kp.signature = BYTES(ksig, MLS_SIG_LEN);
    rc = group_encode_message(MLS_WIRE_KEY_PACKAGE, &k->key_package, &kp);
  }
  size_t before = kp_msg->len;
  if (!rc) rc = buf_append(kp_msg, k->key_package.ptr, k->key_package.len);
  buf_free(&tbs);
  arena_free(&a);
  if (rc) {
    kp_msg->len = before;
    kp_secret_free(k);
    return rc;
  }
  *secret = k;
  return 0;
}

int kp_secret_encode(const kp_secret *s, buf_t *out) {
  wr_raw(out, BYTES(KP_SECRET_MAGIC, 4));
  wr_u16(out, 1);
  wr_u16(out, s->suite->id);
  wr_opaque(out, buf_view(&s->key_package));
  wr_opaque(out, BYTES(s->init_sk, MLS_KEM_SK));
  wr_opaque(out, BYTES(s->leaf_sk, MLS_KEM_SK));
  return out->err;
}

int kp_secret_from_parts(bytes_t kpb, bytes_t init_sk, bytes_t leaf_sk, kp_secret **out) {
  if (init_sk.len != MLS_KEM_SK || leaf_sk.len != MLS_KEM_SK) return TSR_EINVAL;
  arena_t a;
  arena_init(&a);
  mls_key_package kp;
  int rc = kp_decode_any(kpb, &a, &kp);
  const mls_suite *s = rc ? NULL : mls_suite_get(kp.cipher_suite);
  if (!rc && !s) rc = TSR_EUNSUPPORTED;
  kp_secret *k = NULL;
  if (!rc && !(k = secret_alloc(s))) rc = TSR_ENOMEM;
  if (!rc) {
    memcpy(k->init_sk, init_sk.ptr, MLS_KEM_SK);
    memcpy(k->leaf_sk, leaf_sk.ptr, MLS_KEM_SK);
    rc = buf_set(&k->key_package, kpb);
  }
  if (!rc) {
    /* The private keys must belong to this key package. */
    uint8_t pk[MLS_KEM_PK];
    if (crypto_dh_public(k->init_sk, pk) || !bytes_eq(BYTES(pk, MLS_KEM_PK), kp.init_key))
      rc = TSR_EINVAL;
    else if (crypto_dh_public(k->leaf_sk, pk) ||
             !bytes_eq(BYTES(pk, MLS_KEM_PK), kp.leaf_node.encryption_key))
      rc = TSR_EINVAL;
  }
  arena_free(&a);
  if (rc) {
    kp_secret_free(k);
    return rc;
  }
  *out = k;
  return 0;
}

int kp_secret_decode(bytes_t in, kp_secret **out) {
  reader_t r;
  bytes_t magic, kpb, isk, lsk;
  uint16_t ver = 0, suite = 0;
  rd_init(&r, in);
  rd_raw(&r, 4, &magic);
  rd_u16(&r, &ver);
  rd_u16(&r, &suite);
  rd_opaque(&r, &kpb);
  rd_opaque(&r, &isk);
  rd_opaque(&r, &lsk);
  if (rd_done(&r) || memcmp(magic.ptr, KP_SECRET_MAGIC, 4) != 0) return TSR_EDECODE;
  if (ver != 1) return TSR_EUNSUPPORTED;
  int rc = kp_secret_from_parts(kpb, isk, lsk, out);
  if (rc == TSR_EINVAL) return TSR_EDECODE;
  if (!rc && (*out)->suite->id != suite) {
    kp_secret_free(*out);
    *out = NULL;
    return TSR_EDECODE;
  }
  return rc;
}

int kp_secret_key_package(const kp_secret *s, arena_t *a, mls_key_package *kp) {
  return kp_decode_any(buf_view(&s->key_package), a, kp);
}
