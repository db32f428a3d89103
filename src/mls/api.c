/* The public MLS API (include/tessera/mls.h) on top of group.h.
 *
 * Public handles wrap the internal objects; buffers handed to the caller
 * are malloc'ed copies the caller releases with tsr_mls_free. */
#include <stdlib.h>
#include <string.h>

#include "mls/group.h"
#include "tessera/mls.h"

struct tsr_mls_identity {
  group_identity *id;
};

struct tsr_mls_group {
  mls_group *g;
};

int tsr_mls_init(void) { return crypto_init(); }

void tsr_mls_free(void *p, size_t len) {
  if (!p) return;
  secure_wipe(p, len);
  free(p);
}

/* Hands a buf_t's storage to the caller (no copy: the block is malloc'ed
 * and tsr_mls_free releases it); b is left empty. */
static int hand_out(buf_t *b, uint8_t **out, size_t *out_len) {
  if (b->err) return b->err;
  if (!b->ptr && buf_reserve(b, 1)) return b->err;
  /* tsr_mls_free wipes only len bytes: clear any slack now. */
  secure_wipe(b->ptr + b->len, b->cap - b->len);
  *out = b->ptr;
  *out_len = b->len;
  buf_init(b);
  return 0;
}

static void group_config_from(const tsr_mls_config *in, group_config *out) {
  memset(out, 0, sizeof *out);
  if (!in) return;
  out->max_generation_gap = in->max_generation_gap;
  out->max_skipped_keys = in->max_skipped_keys;
  out->padding_block = in->padding_block;
  out->encrypt_handshake = in->encrypt_handshake != 0;
}

static int wrap_group(mls_group *g, tsr_mls_group **out) {
  tsr_mls_group *h = malloc(sizeof *h);
  if (!h) {
    group_free(g);
    return TSR_ENOMEM;
  }
  h->g = g;
  *out = h;
  return 0;
}

/* --- Identity and key packages ---------------------------------------- */

static int wrap_identity(group_identity *id, tsr_mls_identity **out) {
  tsr_mls_identity *h = malloc(sizeof *h);
  if (!h) {
    group_identity_free(id);
    return TSR_ENOMEM;
  }
  h->id = id;
  *out = h;
  return 0;
}

int tsr_mls_identity_new(uint16_t suite, const uint8_t *name, size_t name_len,
                         tsr_mls_identity **out) {
  if (!out || (!name && name_len)) return TSR_EINVAL;
  group_identity *id;
  int rc = group_identity_new(suite, BYTES(name, name_len), &id);
  return rc ? rc : wrap_identity(id, out);
}

void tsr_mls_identity_free(tsr_mls_identity *id) {
  if (!id) return;
  group_identity_free(id->id);
  free(id);
}

uint16_t tsr_mls_identity_suite(const tsr_mls_identity *id) { return id->id->suite->id; }

int tsr_mls_identity_save(const tsr_mls_identity *id, uint8_t **out, size_t *out_len) {
  buf_t b;
  buf_init(&b);
  int rc = group_identity_encode(id->id, &b);
  if (!rc) rc = hand_out(&b, out, out_len);
  buf_free_secret(&b);
  return rc;
}

int tsr_mls_identity_load(const uint8_t *in, size_t len, tsr_mls_identity **out) {
  group_identity *id;
  int rc = group_identity_decode(BYTES(in, len), &id);
  return rc ? rc : wrap_identity(id, out);
}

int tsr_mls_key_package_new(const tsr_mls_identity *id, uint64_t lifetime_s, uint8_t **kp,
                            size_t *kp_len, uint8_t **secret, size_t *secret_len) {
  buf_t msg, enc;
  buf_init(&msg);
  buf_init(&enc);
  kp_secret *s = NULL;
  uint8_t *kp_out = NULL;
  int rc = kp_create(id->id, 0, lifetime_s, &msg, &s);
  if (!rc) rc = kp_secret_encode(s, &enc);
  if (!rc) rc = hand_out(&msg, &kp_out, kp_len);
  if (!rc) rc = hand_out(&enc, secret, secret_len);
  if (rc) {
    free(kp_out);
  } else {
    *kp = kp_out;
  }
  kp_secret_free(s);
  buf_free(&msg);
  buf_free_secret(&enc);
  return rc;
}

/* --- Groups ------------------------------------------------------------ */

int tsr_mls_group_create(const tsr_mls_identity *id, const tsr_mls_config *cfg,
                         const uint8_t *group_id, size_t group_id_len,
                         tsr_mls_group **out) {
  if (!id || !out || !group_id) return TSR_EINVAL;
  group_config c;
  group_config_from(cfg, &c);
  mls_group *g;
  int rc = group_create(id->id, &c, BYTES(group_id, group_id_len), NULL, &g);
  return rc ? rc : wrap_group(g, out);
}

int tsr_mls_group_join(const tsr_mls_identity *id, const tsr_mls_config *cfg,
                       const uint8_t *const *secrets, const size_t *secret_lens,
                       size_t n_secrets, const uint8_t *welcome, size_t welcome_len,
                       const uint8_t *tree, size_t tree_len, size_t *used,
                       tsr_mls_group **out) {
  if (!id || !out || !welcome || (n_secrets && (!secrets || !secret_lens)))
    return TSR_EINVAL;
  kp_secret **ks = calloc(n_secrets ? n_secrets : 1, sizeof *ks);
  if (!ks) return TSR_ENOMEM;
  int rc = 0;
  for (size_t i = 0; i < n_secrets && !rc; i++)
    rc = kp_secret_decode(BYTES(secrets[i], secret_lens[i]), &ks[i]);
  mls_group *g = NULL;
  group_config c;
  group_config_from(cfg, &c);
  if (!rc)
    rc = group_join(id->id, &c, ks, n_secrets, BYTES(welcome, welcome_len),
                    BYTES(tree, tree ? tree_len : 0), NULL, 0, NULL, used, &g);
  for (size_t i = 0; i < n_secrets; i++) kp_secret_free(ks[i]); /* NULL-safe */
  free(ks);
  return rc ? rc : wrap_group(g, out);
}

int tsr_mls_group_external_join(const tsr_mls_identity *id, const tsr_mls_config *cfg,
                                const uint8_t *group_info, size_t group_info_len,
                                uint8_t **commit, size_t *commit_len,
                                tsr_mls_group **out) {
  if (!id || !out || !group_info || !commit) return TSR_EINVAL;
  group_config c;
  group_config_from(cfg, &c);
  buf_t msg;
  buf_init(&msg);
  mls_group *g = NULL;
  int rc = group_external_join(id->id, &c, BYTES(group_info, group_info_len), BYTES_NONE,
                               UINT32_MAX, NULL, 0, &msg, &g);
  if (!rc) rc = hand_out(&msg, commit, commit_len);
  buf_free(&msg);
  if (rc) {
    group_free(g);
    return rc;
  }
  rc = wrap_group(g, out);
  if (rc) free(*commit);
  return rc;
}

void tsr_mls_group_free(tsr_mls_group *g) {
  if (!g) return;
  group_free(g->g);
  free(g);
}

int tsr_mls_group_save(const tsr_mls_group *g, uint8_t **out, size_t *out_len) {
  buf_t b;
  buf_init(&b);
  int rc = group_save(g->g, &b);
  if (!rc) rc = hand_out(&b, out, out_len);
  buf_free_secret(&b);
  return rc;
}

int tsr_mls_group_load(const uint8_t *in, size_t len, tsr_mls_group **out) {
  mls_group *g;
  int rc = group_load(BYTES(in, len), &g);
  return rc ? rc : wrap_group(g, out);
}

uint64_t tsr_mls_group_epoch(const tsr_mls_group *g) { return group_epoch(g->g); }
uint32_t tsr_mls_group_own_leaf(const tsr_mls_group *g) { return group_own_leaf(g->g); }

const uint8_t *tsr_mls_group_id(const tsr_mls_group *g, size_t *len) {
  bytes_t id = group_id(g->g);
  *len = id.len;
  return id.ptr;
}

int tsr_mls_group_epoch_authenticator(const tsr_mls_group *g, uint8_t *out,
                                      size_t *out_len) {
  if (*out_len < group_suite(g->g)->hash_len) return TSR_EINVAL;
  uint8_t tmp[MLS_MAX_HASH];
  size_t n;
  int rc = group_epoch_authenticator(g->g, tmp, &n);
  if (!rc) {
    memcpy(out, tmp, n);
    *out_len = n;
  }
  secure_wipe(tmp, sizeof tmp);
  return rc;
}

int tsr_mls_group_export(const tsr_mls_group *g, const char *label,
                         const uint8_t *context, size_t context_len, uint8_t *out,
                         size_t len) {
  if (!label || !out || (!context && context_len)) return TSR_EINVAL;
  return group_export(g->g, label, BYTES(context, context_len), out, len);
}

uint32_t tsr_mls_group_leaf_count(const tsr_mls_group *g) {
  return group_leaf_count(g->g);
}

int tsr_mls_group_member(const tsr_mls_group *g, uint32_t leaf, const uint8_t **identity,
                         size_t *identity_len) {
  bytes_t id;
  int rc = group_member(g->g, leaf, &id);
  if (rc) return rc;
  *identity = id.ptr;
  *identity_len = id.len;
  return 0;
}

int tsr_mls_group_find_member(const tsr_mls_group *g, const uint8_t *identity,
                              size_t identity_len, uint32_t *leaf) {
  return group_find_member(g->g, BYTES(identity, identity_len), leaf);
}

int tsr_mls_group_info(const tsr_mls_group *g, uint8_t **out, size_t *out_len) {
  buf_t b;
  buf_init(&b);
  int rc = group_info(g->g, true, &b);
  if (!rc) rc = hand_out(&b, out, out_len);
  buf_free(&b);
  return rc;
}

/* --- Proposals and commits ---------------------------------------------- */

/* Runs a proposal builder and hands its message out. */
static int hand_out_msg(int rc, buf_t *b, uint8_t **msg, size_t *msg_len) {
  if (!rc) rc = hand_out(b, msg, msg_len);
  buf_free(b);
  return rc;
}

int tsr_mls_group_propose_add(tsr_mls_group *g, const uint8_t *kp, size_t kp_len,
                              uint8_t **msg, size_t *msg_len) {
  buf_t b;
  buf_init(&b);
  return hand_out_msg(group_propose_add(g->g, BYTES(kp, kp_len), &b), &b, msg, msg_len);
}

int tsr_mls_group_propose_remove(tsr_mls_group *g, uint32_t leaf, uint8_t **msg,
                                 size_t *msg_len) {
  buf_t b;
  buf_init(&b);
  return hand_out_msg(group_propose_remove(g->g, leaf, &b), &b, msg, msg_len);
}

int tsr_mls_group_propose_update(tsr_mls_group *g, uint8_t **msg, size_t *msg_len) {
  buf_t b;
  buf_init(&b);
  return hand_out_msg(group_propose_update(g->g, &b), &b, msg, msg_len);
}

/* Views over the caller's arrays of (pointer, length) pairs. */
static bytes_t *views(const uint8_t *const *p, const size_t *lens, size_t n) {
  bytes_t *v = calloc(n ? n : 1, sizeof *v);
  if (v)
    for (size_t i = 0; i < n; i++) v[i] = BYTES(p[i], lens[i]);
  return v;
}

int tsr_mls_group_commit(tsr_mls_group *g, const tsr_mls_commit_params *p,
                         uint8_t **commit, size_t *commit_len, uint8_t **welcome,
                         size_t *welcome_len) {
  static const tsr_mls_commit_params none = {0};
  if (!p) p = &none;
  if (!commit || !welcome ||
      (p->n_adds && (!p->add_key_packages || !p->add_key_package_lens)) ||
      (p->n_removes && !p->remove_leaves) ||
      (p->n_psks && (!p->psk_ids || !p->psk_id_lens)))
    return TSR_EINVAL;
  bytes_t *adds = views(p->add_key_packages, p->add_key_package_lens, p->n_adds);
  bytes_t *psks = views(p->psk_ids, p->psk_id_lens, p->n_psks);
  buf_t c, w;
  buf_init(&c);
  buf_init(&w);
  uint8_t *c_out = NULL, *w_out = NULL;
  size_t c_len = 0, w_len = 0;
  int rc = TSR_ENOMEM;
  if (adds && psks) {
    group_commit_params gp = {.add_key_packages = adds,
                              .n_adds = p->n_adds,
                              .remove_leaves = p->remove_leaves,
                              .n_removes = p->n_removes,
                              .psk_ids = psks,
                              .n_psks = p->n_psks,
                              .force_path = p->force_path != 0};
    rc = group_commit(g->g, &gp, &c, &w);
  }
  if (!rc) rc = hand_out(&c, &c_out, &c_len);
  if (!rc && w.len) rc = hand_out(&w, &w_out, &w_len);
  if (rc) {
    if (c_out) group_discard_pending(g->g);
    free(c_out);
  } else {
    *commit = c_out;
    *commit_len = c_len;
    *welcome = w_out;
    *welcome_len = w_len;
  }
  buf_free(&c);
  buf_free_secret(&w);
  free(adds);
  free(psks);
  return rc;
}

int tsr_mls_group_merge_pending(tsr_mls_group *g) { return group_merge_pending(g->g); }
void tsr_mls_group_discard_pending(tsr_mls_group *g) { group_discard_pending(g->g); }

int tsr_mls_group_add_external_psk(tsr_mls_group *g, const uint8_t *id, size_t id_len,
                                   const uint8_t *psk, size_t psk_len) {
  if (!id || !psk) return TSR_EINVAL;
  return group_add_external_psk(g->g, BYTES(id, id_len), BYTES(psk, psk_len));
}

/* --- Messages -------------------------------------------------------------- */

int tsr_mls_group_protect(tsr_mls_group *g, const uint8_t *pt, size_t pt_len,
                          const uint8_t *aad, size_t aad_len, uint8_t **msg,
                          size_t *msg_len) {
  if ((!pt && pt_len) || (!aad && aad_len) || !msg) return TSR_EINVAL;
  buf_t b;
  buf_init(&b);
  return hand_out_msg(group_protect(g->g, BYTES(pt, pt_len), BYTES(aad, aad_len), &b), &b,
                      msg, msg_len);
}

int tsr_mls_group_process(tsr_mls_group *g, const uint8_t *msg, size_t msg_len,
                          tsr_mls_event *ev) {
  if (!msg || !ev) return TSR_EINVAL;
  memset(ev, 0, sizeof *ev);
  group_event e;
  group_event_init(&e);
  int rc = group_process(g->g, BYTES(msg, msg_len), &e);
  if (!rc && e.data.len) rc = hand_out(&e.data, &ev->data, &ev->len);
  if (!rc && e.authenticated_data.len)
    rc = hand_out(&e.authenticated_data, &ev->authenticated_data,
                  &ev->authenticated_data_len);
  if (!rc) {
    ev->type = e.type;
    ev->sender = e.sender;
  } else {
    /* The group already moved on; only the copy to the caller failed. */
    tsr_mls_event_clear(ev);
  }
  group_event_clear(&e);
  return rc;
}

void tsr_mls_event_clear(tsr_mls_event *ev) {
  if (!ev) return;
  tsr_mls_free(ev->data, ev->len);
  tsr_mls_free(ev->authenticated_data, ev->authenticated_data_len);
  memset(ev, 0, sizeof *ev);
}
