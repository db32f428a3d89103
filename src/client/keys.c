/* The device's MLS identity and its KeyPackages (docs/protocol.md,
 * "KeyPackages"): the identity is built from the device signature key and
 * the ids the server assigned; KeyPackages are generated here, uploaded
 * in batches, and their private parts kept in the state file (table
 * kp_secrets) until a Welcome is opened with them.
 *
 * Multi-step calls (replenish, status) are chains of requests: an internal
 * callback receives each answer and queues the next request, or calls the
 * caller's callback once with the final result. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/client.h"
#include "mls/crypto.h"
#include "mls/group.h"
#include "mls/messages.h"
#include "proto/base64.h"
#include "proto/json.h"

#define KP_PER_CALL 100            /* key_packages entries per upload (server limit) */
#define KP_PER_DEVICE 200          /* stored per device besides the last resort */
#define KP_DEFAULT_TARGET 100      /* tsr_keypackages_replenish with target 0 */
#define KP_PRUNE_GRACE (7 * 86400) /* keep a secret this long past its not_after */
#define KP_MAX_BATCHES 4           /* uploads per replenish: 200 / 100, plus slack */

_Static_assert(TSR_KEYPACKAGE_REF_SIZE == CSTATE_KP_REF_BYTES, "KeyPackageRef size");
_Static_assert(TSR_KEYPACKAGE_REF_SIZE == MLS_MAX_HASH, "KeyPackageRef size");

/* ---- the device's identity ----------------------------------------------- */

/* Decodes the base64url id stored under key (16 bytes). */
static int load_id(cstate *st, const char *key, uint8_t out[16]) {
  buf_t b;
  buf_init(&b);
  int rc = cstate_get(st, key, &b);
  if (rc == TSR_ENOTFOUND) rc = TSR_ESTATE;
  size_t got = 0;
  if (rc == 0 &&
      (b.len != TSR_ID_B64_SIZE - 1 ||
       b64_decode(out, 16, (const char *)b.ptr, b.len, B64_MODE_URL_NOPAD, &got) != 0 ||
       got != 16))
    rc = TSR_EDECODE;
  buf_free(&b);
  return rc;
}

int tsr_device_mls_credential(tsr_client *c, uint8_t out[TSR_MLS_IDENTITY_SIZE]) {
  if (!c || !out) return TSR_EINVAL;
  uint8_t ident[TSR_MLS_IDENTITY_SIZE];
  int rc = load_id(client_state(c), K_ACCOUNT_ID, ident);
  if (rc == 0) rc = load_id(client_state(c), K_DEVICE_ID, ident + 16);
  if (rc == 0) memcpy(out, ident, sizeof ident);
  return rc;
}

int client_mls_identity(tsr_client *c, uint16_t suite, group_identity **out) {
  if (!c || !out) return TSR_EINVAL;
  if (suite != MLS_SUITE_X25519_AES128GCM_SHA256_ED25519 &&
      suite != MLS_SUITE_X25519_CHACHA20POLY1305_SHA256_ED25519)
    return TSR_EINVAL;
  cstate *st = client_state(c);
  uint8_t ident[TSR_MLS_IDENTITY_SIZE];
  int rc = tsr_device_mls_credential(c, ident);
  if (rc) return rc;
  buf_t sk, pk, cred;
  buf_init(&sk);
  buf_init(&pk);
  buf_init(&cred);
  rc = cstate_get(st, K_DEVICE_SK, &sk);
  if (rc == 0) rc = cstate_get(st, K_DEVICE_PK, &pk);
  if (rc == TSR_ENOTFOUND) rc = TSR_ESTATE;
  if (rc == 0 && (sk.len != 64 || pk.len != MLS_SIG_PK)) rc = TSR_EDECODE;
  group_identity *id = NULL;
  if (rc == 0) {
    mls_credential cr = {.credential_type = MLS_CREDENTIAL_BASIC,
                         .identity = BYTES(ident, sizeof ident)};
    msg_encode_credential(&cred, &cr);
    rc = cred.err;
  }
  /* libsodium's Ed25519 secret key is seed || public key; MLS keeps the
   * seed. */
  if (rc == 0)
    rc = group_identity_from_seed(suite, BYTES(sk.ptr, MLS_SIG_SEED), buf_view(&cred),
                                  &id);
  if (rc == 0 && !bytes_eq(BYTES(id->sig.pk, MLS_SIG_PK), buf_view(&pk)))
    rc = TSR_EDECODE;
  buf_free_secret(&sk);
  buf_free(&pk);
  buf_free(&cred);
  if (rc) {
    group_identity_free(id);
    return rc;
  }
  *out = id;
  return 0;
}

/* ---- KeyPackageRefs -------------------------------------------------------- */

/* Decodes an MLSMessage(KeyPackage) or a bare KeyPackage. */
static int decode_kp(bytes_t in, arena_t *a, mls_key_package *kp) {
  if (in.len >= 4 && in.ptr[0] == 0 && in.ptr[1] == MLS_VERSION_10 && in.ptr[2] == 0 &&
      in.ptr[3] == MLS_WIRE_KEY_PACKAGE) {
    mls_message m;
    int rc = msg_decode_message(in, a, &m);
    if (rc == 0) *kp = m.key_package;
    return rc ? TSR_EDECODE : 0;
  }
  return msg_decode_key_package(in, a, kp) ? TSR_EDECODE : 0;
}

/* KeyPackageRef, suite and end of lifetime of an encoded KeyPackage. */
static int kp_info(bytes_t in, uint8_t ref[TSR_KEYPACKAGE_REF_SIZE], uint16_t *suite,
                   uint64_t *not_after) {
  arena_t a;
  arena_init(&a);
  mls_key_package kp;
  int rc = decode_kp(in, &a, &kp);
  const mls_suite *s = rc ? NULL : mls_suite_get(kp.cipher_suite);
  if (rc == 0 && (!s || s->hash_len != TSR_KEYPACKAGE_REF_SIZE)) rc = TSR_EUNSUPPORTED;
  if (rc == 0) rc = kp_ref(s, &kp, ref);
  if (rc == 0 && suite) *suite = kp.cipher_suite;
  if (rc == 0 && not_after) *not_after = kp.leaf_node.lifetime.not_after;
  arena_free(&a);
  return rc;
}

int tsr_keypackage_ref(const uint8_t *kp, size_t kp_len,
                       uint8_t out[TSR_KEYPACKAGE_REF_SIZE]) {
  if (!kp || !out) return TSR_EINVAL;
  uint8_t ref[TSR_KEYPACKAGE_REF_SIZE];
  int rc = kp_info(BYTES(kp, kp_len), ref, NULL, NULL);
  if (rc == 0) memcpy(out, ref, sizeof ref);
  return rc;
}

/* ---- taking a secret ---------------------------------------------------------- */

void tsr_secret_free(void *p, size_t len) {
  if (!p) return;
  sodium_memzero(p, len);
  free(p);
}

/* Hands the secret in b to the caller as a malloc'ed copy; wipes b. */
static int hand_out(buf_t *b, uint8_t **secret, size_t *secret_len) {
  uint8_t *p = malloc(b->len ? b->len : 1);
  if (!p) return TSR_ENOMEM;
  if (b->len) memcpy(p, b->ptr, b->len);
  *secret = p;
  *secret_len = b->len;
  buf_free_secret(b);
  return 0;
}

/* Takes the first of the n refs (each TSR_KEYPACKAGE_REF_SIZE bytes) that
 * has a secret, in one transaction. */
static int take_first(tsr_client *c, const bytes_t *refs, size_t n, uint8_t **secret,
                      size_t *secret_len) {
  cstate *st = client_state(c);
  buf_t b;
  buf_init(&b);
  int rc = cstate_begin(st);
  if (rc) return rc;
  const uint8_t *hit = NULL;
  for (size_t i = 0; i < n && !hit; i++) {
    if (refs[i].len != TSR_KEYPACKAGE_REF_SIZE) continue;
    int r = cstate_kp_get(st, refs[i].ptr, &b, NULL);
    if (r == 0) {
      hit = refs[i].ptr;
    } else if (r != TSR_ENOTFOUND) {
      rc = r;
      break;
    }
  }
  if (rc == 0 && !hit) rc = TSR_ENOTFOUND;
  if (rc == 0) rc = cstate_kp_consume(st, hit);
  uint8_t *p = NULL;
  size_t len = 0;
  if (rc == 0) rc = hand_out(&b, &p, &len);
  if (rc == 0) rc = cstate_commit(st);
  if (rc) {
    cstate_rollback(st);
    tsr_secret_free(p, len);
  } else {
    *secret = p;
    *secret_len = len;
  }
  buf_free_secret(&b);
  return rc;
}

int tsr_keypackage_secret_take(tsr_client *c, const uint8_t ref[TSR_KEYPACKAGE_REF_SIZE],
                               uint8_t **secret, size_t *secret_len) {
  if (!c || !ref || !secret || !secret_len) return TSR_EINVAL;
  bytes_t r = BYTES(ref, TSR_KEYPACKAGE_REF_SIZE);
  return take_first(c, &r, 1, secret, secret_len);
}

int tsr_keypackage_secret_take_welcome(tsr_client *c, const uint8_t *welcome,
                                       size_t welcome_len, uint8_t **secret,
                                       size_t *secret_len) {
  if (!c || !welcome || !secret || !secret_len) return TSR_EINVAL;
  bytes_t in = BYTES(welcome, welcome_len);
  arena_t a;
  arena_init(&a);
  mls_welcome w;
  memset(&w, 0, sizeof w);
  int rc;
  if (in.len >= 4 && in.ptr[0] == 0 && in.ptr[1] == MLS_VERSION_10 && in.ptr[2] == 0 &&
      in.ptr[3] == MLS_WIRE_WELCOME) {
    mls_message m;
    rc = msg_decode_message(in, &a, &m);
    if (rc == 0) w = m.welcome;
  } else {
    rc = msg_decode_welcome(in, &a, &w);
  }
  bytes_t *refs = NULL;
  if (rc) rc = TSR_EDECODE;
  if (rc == 0 && !(refs = calloc(w.n_secrets ? w.n_secrets : 1, sizeof *refs)))
    rc = TSR_ENOMEM;
  if (rc == 0) {
    for (size_t i = 0; i < w.n_secrets; i++) refs[i] = w.secrets[i].new_member;
    rc = take_first(c, refs, w.n_secrets, secret, secret_len);
  }
  free(refs);
  arena_free(&a);
  return rc;
}

/* ---- requests ------------------------------------------------------------------ */

/* The server's counts of the device's live KeyPackages, per suite:
 * [0] suite 1, [1] suite 3. */
#define N_SUITES 2
typedef struct {
  int64_t available[N_SUITES]; /* besides the last resort */
  bool last_resort[N_SUITES];
} srv_counts;

static int suite_index(uint16_t suite) {
  return suite == MLS_SUITE_X25519_AES128GCM_SHA256_ED25519          ? 0
         : suite == MLS_SUITE_X25519_CHACHA20POLY1305_SHA256_ED25519 ? 1
                                                                     : -1;
}

static int64_t srv_total(const srv_counts *k) {
  int64_t n = 0;
  for (int i = 0; i < N_SUITES; i++) n += k->available[i];
  return n;
}

/* One replenish or status call in progress. Owned by the chain of
 * requests: freed when the caller's callback has been called. */
typedef struct {
  tsr_client *c;
  tsr_result_cb cb;
  void *arg;
  uint16_t suite;
  int si; /* suite_index(suite) */
  unsigned target;
  srv_counts srv; /* the server's last answer */
  unsigned uploaded, batches;
  bool lr_uploaded;
  buf_t refs;      /* refs of the batch in flight (CSTATE_KP_REF_BYTES each) */
  bool batch_lr;   /* the batch in flight carries a last resort: its ref is last */
  int64_t last_at; /* the suite's available count before the batch in flight */
} kp_job;

static void job_free(kp_job *j) {
  if (!j) return;
  buf_free(&j->refs);
  free(j);
}

static bool logged_in(cstate *st) {
  buf_t b;
  buf_init(&b);
  int rc = cstate_get(st, K_TOKEN, &b);
  buf_free_secret(&b);
  return rc == 0;
}

/* Queues an authenticated request whose answer goes to cb(j). */
static int queue(kp_job *j, const char *method, const char *path, buf_t *body,
                 tsr_result_cb cb) {
  creq *r = client_req_new(method, path);
  if (!r) return TSR_ENOMEM;
  r->kind = REQ_PLAIN;
  r->auth = true;
  if (body) {
    if (buf_append(&r->body, body->ptr, body->len)) {
      client_req_free(r);
      return TSR_ENOMEM;
    }
    r->has_body = true;
  }
  r->cb = cb;
  r->cb_arg = j;
  return client_submit(j->c, r);
}

/* Calls the caller's callback with res and frees j. */
static void job_finish(kp_job *j, const tsr_result *res) {
  if (j->cb) j->cb(j->arg, res);
  job_free(j);
}

/* Finishes j with a local failure rc: code "bad_response" for an answer
 * that does not parse, "state" for the state file, "local" otherwise
 * (KeyPackages could not be made). */
static void job_fail(kp_job *j, int rc) {
  char msg[128];
  const char *code;
  if (rc == TSR_EDECODE) {
    code = "bad_response";
    snprintf(msg, sizeof msg, "unexpected answer from the server");
  } else if (rc == TSR_EIO || rc == TSR_ESTATE) {
    code = "state";
    snprintf(msg, sizeof msg, "the state file could not be read or updated");
  } else {
    code = "local";
    snprintf(msg, sizeof msg, "KeyPackages could not be made: %s", tsr_strerror(rc));
  }
  tsr_result res = {rc, 0, code, msg, "", 0};
  job_finish(j, &res);
}

/* "available" and "last_resort" of the object at token obj. */
static int parse_pair(const char *body, const json_token *t, int obj, int64_t *available,
                      bool *last_resort) {
  if (obj < 0 || t[obj].type != JSON_OBJECT) return TSR_EDECODE;
  int ia = json_object_get(body, t, obj, "available");
  int il = json_object_get(body, t, obj, "last_resort");
  if (ia < 0 || il < 0 || json_get_i64(body, t, ia, available) != 0 ||
      json_get_bool(t, il, last_resort) != 0 || *available < 0)
    return TSR_EDECODE;
  return 0;
}

/* The per-suite counts of a server answer to GET or POST /v1/keypackages
 * (without ?suite): its "by_suite". */
static int parse_counts(const tsr_result *res, srv_counts *out) {
  json_token t[48];
  if (json_parse(res->body, res->body_len, t, 48, NULL) <= 0 || t[0].type != JSON_OBJECT)
    return TSR_EDECODE;
  int bs = json_object_get(res->body, t, 0, "by_suite");
  if (bs < 0 || t[bs].type != JSON_OBJECT) return TSR_EDECODE;
  srv_counts k;
  for (int i = 0; i < N_SUITES; i++) {
    int o = json_object_get(res->body, t, bs, i == 0 ? "1" : "3");
    int rc = parse_pair(res->body, t, o, &k.available[i], &k.last_resort[i]);
    if (rc) return rc;
  }
  *out = k;
  return 0;
}

/* Writes the local counts into w (an object being written); k is filled. */
static void write_local(json_writer *w, const cstate_kp_counts *k) {
  json_write_key(w, "local_secrets");
  json_write_u64(w, k->total);
  json_write_key(w, "local_suite_1");
  json_write_u64(w, k->suite1);
  json_write_key(w, "local_suite_3");
  json_write_u64(w, k->suite3);
  json_write_key(w, "local_last_resort");
  json_write_bool(w, k->last_resort_unused > 0);
}

/* "by_suite": per suite the server's counts and the state file's. */
static void write_by_suite(json_writer *w, const srv_counts *srv,
                           const cstate_kp_counts *k) {
  json_write_key(w, "by_suite");
  json_write_object_begin(w);
  for (int i = 0; i < N_SUITES; i++) {
    json_write_key(w, i == 0 ? "1" : "3");
    json_write_object_begin(w);
    json_write_key(w, "available");
    json_write_i64(w, srv->available[i]);
    json_write_key(w, "last_resort");
    json_write_bool(w, srv->last_resort[i]);
    json_write_key(w, "local_secrets");
    json_write_u64(w, i == 0 ? k->suite1 : k->suite3);
    json_write_key(w, "local_last_resort");
    json_write_bool(w, (i == 0 ? k->last_resort_unused1 : k->last_resort_unused3) > 0);
    json_write_object_end(w);
  }
  json_write_object_end(w);
}

/* Delivers a success built from the server counts plus local ones: the
 * top-level "available" and "last_resort" are the replenished suite's, or
 * every suite's together for status. */
static void job_done(kp_job *j, int status, bool replenish) {
  cstate_kp_counts k;
  int rc = cstate_kp_count(client_state(j->c), &k);
  if (rc) {
    job_fail(j, rc);
    return;
  }
  buf_t body;
  buf_init(&body);
  json_writer w;
  json_writer_init(&w, &body, 0);
  json_write_object_begin(&w);
  bool any_lr = false;
  for (int i = 0; i < N_SUITES; i++) any_lr = any_lr || j->srv.last_resort[i];
  json_write_key(&w, "available");
  json_write_i64(&w, replenish ? j->srv.available[j->si] : srv_total(&j->srv));
  json_write_key(&w, "last_resort");
  json_write_bool(&w, replenish ? j->srv.last_resort[j->si] : any_lr);
  if (replenish) {
    json_write_key(&w, "suite");
    json_write_u64(&w, j->suite);
    json_write_key(&w, "uploaded");
    json_write_u64(&w, j->uploaded);
    json_write_key(&w, "last_resort_uploaded");
    json_write_bool(&w, j->lr_uploaded);
  }
  write_by_suite(&w, &j->srv, &k);
  write_local(&w, &k);
  json_write_object_end(&w);
  if (json_writer_finish(&w)) {
    buf_free(&body);
    job_fail(j, TSR_ENOMEM);
    return;
  }
  tsr_result res = {0, status, "", "", (const char *)body.ptr, body.len};
  job_finish(j, &res);
  buf_free(&body);
}

/* ---- status ----------------------------------------------------------------------- */

static void on_status(void *arg, const tsr_result *res) {
  kp_job *j = arg;
  if (res->err) {
    job_finish(j, res);
    return;
  }
  int rc = parse_counts(res, &j->srv);
  if (rc) {
    job_fail(j, rc);
    return;
  }
  job_done(j, res->status, false);
}

static kp_job *job_new(tsr_client *c, tsr_result_cb cb, void *arg) {
  kp_job *j = calloc(1, sizeof *j);
  if (!j) return NULL;
  j->c = c;
  j->cb = cb;
  j->arg = arg;
  buf_init(&j->refs);
  return j;
}

int tsr_keypackages_status(tsr_client *c, tsr_result_cb cb, void *arg) {
  if (!c) return TSR_EINVAL;
  if (!logged_in(client_state(c))) return TSR_ESTATE;
  kp_job *j = job_new(c, cb, arg);
  if (!j) return TSR_ENOMEM;
  int rc = queue(j, "GET", "/v1/keypackages", NULL, on_status);
  if (rc) job_free(j);
  return rc;
}

/* ---- replenish --------------------------------------------------------------------- */

/* Makes one KeyPackage: its MLSMessage goes into w (as base64url), its
 * private part into the state file (inside the caller's transaction), its
 * ref appended to j->refs. */
static int make_one(kp_job *j, const group_identity *id, bool last_resort, int64_t now,
                    json_writer *w) {
  buf_t msg, enc;
  buf_init(&msg);
  buf_init(&enc);
  kp_secret *sec = NULL;
  cstate_kp row = {.suite = j->suite, .last_resort = last_resort, .created_at = now};
  uint64_t not_after = 0;
  int rc = kp_create(id, 0, 0, &msg, &sec);
  if (rc == 0) rc = kp_info(buf_view(&msg), row.ref, NULL, &not_after);
  if (rc == 0) {
    row.not_after = not_after > INT64_MAX ? INT64_MAX : (int64_t)not_after;
    rc = kp_secret_encode(sec, &enc);
  }
  if (rc == 0) rc = cstate_kp_put(client_state(j->c), &row, buf_view(&enc));
  if (rc == 0) rc = buf_append(&j->refs, row.ref, sizeof row.ref);
  if (rc == 0) json_write_base64url(w, buf_view(&msg));
  buf_free_secret(&enc);
  buf_free(&msg);
  kp_secret_free(sec);
  return rc;
}

static void on_upload(void *arg, const tsr_result *res);

/* Makes and queues the next upload: n KeyPackages plus a last resort when
 * lr. The private parts are stored before the upload, so that an answer
 * lost on the way still leaves every uploaded KeyPackage usable. */
static int send_batch(kp_job *j, unsigned n, bool lr) {
  group_identity *id = NULL;
  int rc = client_mls_identity(j->c, j->suite, &id);
  if (rc) return rc;
  cstate *st = client_state(j->c);
  buf_t body;
  buf_init(&body);
  buf_reset(&j->refs);
  int64_t now = (int64_t)time(NULL);
  json_writer w;
  json_writer_init(&w, &body, 0);
  json_write_object_begin(&w);
  json_write_key(&w, "key_packages");
  json_write_array_begin(&w);
  rc = cstate_begin(st);
  for (unsigned i = 0; rc == 0 && i < n; i++) rc = make_one(j, id, false, now, &w);
  json_write_array_end(&w);
  if (rc == 0 && lr) {
    json_write_key(&w, "last_resort");
    rc = make_one(j, id, true, now, &w);
  }
  json_write_object_end(&w);
  if (rc == 0 && json_writer_finish(&w)) rc = TSR_ENOMEM;
  if (rc == 0) rc = cstate_commit(st);
  if (rc) cstate_rollback(st); /* no-op when begin failed */
  group_identity_free(id);
  if (rc == 0) {
    j->batch_lr = lr;
    j->last_at = j->srv.available[j->si];
    j->batches++;
    rc = queue(j, "POST", "/v1/keypackages", &body, on_upload);
    if (rc) { /* nothing was sent: forget the batch */
      for (size_t off = 0; off < j->refs.len; off += CSTATE_KP_REF_BYTES)
        cstate_kp_del(st, j->refs.ptr + off);
    }
  }
  buf_free(&body);
  return rc;
}

/* What is missing of the suite after the server's last count: uploads the
 * next batch, or finishes. */
static void next_step(kp_job *j, int status) {
  int64_t have = j->srv.available[j->si];
  unsigned need = have < (int64_t)j->target ? j->target - (unsigned)have : 0;
  if (need > KP_PER_CALL) need = KP_PER_CALL;
  /* The server's limit is per device, every suite together: what the
   * other suite holds leaves less room for this one. */
  int64_t room = KP_PER_DEVICE - srv_total(&j->srv);
  if ((int64_t)need > room) need = room > 0 ? (unsigned)room : 0;
  cstate_kp_counts k;
  int rc = cstate_kp_count(client_state(j->c), &k);
  if (rc) {
    job_fail(j, rc);
    return;
  }
  /* A new last resort of the suite (one per suite) when the server has
   * none, when we lost its secret, or when ours was handed to a joiner
   * already (RFC 9420 §16.8: replace it soon). At most one per call. */
  uint64_t lr_unused = j->si == 0 ? k.last_resort_unused1 : k.last_resort_unused3;
  bool lr = !j->lr_uploaded && (!j->srv.last_resort[j->si] || lr_unused == 0);
  /* Stop when a batch made no progress (nothing to gain from a loop). */
  bool stuck = j->batches > 0 && have <= j->last_at && !j->batch_lr;
  if ((need == 0 && !lr) || stuck || j->batches >= KP_MAX_BATCHES) {
    job_done(j, status, true);
    return;
  }
  if ((rc = send_batch(j, need, lr))) job_fail(j, rc);
}

static void on_count(void *arg, const tsr_result *res) {
  kp_job *j = arg;
  if (res->err) {
    job_finish(j, res);
    return;
  }
  int rc = parse_counts(res, &j->srv);
  /* Private parts of KeyPackages long expired: no Welcome can use them. */
  if (rc == 0)
    rc = cstate_kp_prune(client_state(j->c), (int64_t)time(NULL) - KP_PRUNE_GRACE);
  if (rc) {
    job_fail(j, rc);
    return;
  }
  next_step(j, res->status);
}

static void on_upload(void *arg, const tsr_result *res) {
  kp_job *j = arg;
  cstate *st = client_state(j->c);
  size_t n = j->refs.len / CSTATE_KP_REF_BYTES;
  if (res->err) {
    /* Refused by the server: nothing was stored there. Without an answer
     * the server may hold them: the secrets stay (pruned after expiry). */
    if (res->status >= 400 && cstate_begin(st) == 0) {
      for (size_t i = 0; i < n; i++)
        cstate_kp_del(st, j->refs.ptr + i * CSTATE_KP_REF_BYTES);
      if (cstate_commit(st)) cstate_rollback(st);
    }
    job_finish(j, res);
    return;
  }
  int rc = parse_counts(res, &j->srv);
  if (rc) {
    job_fail(j, rc);
    return;
  }
  j->uploaded += (unsigned)(n - (j->batch_lr ? 1 : 0));
  if (j->batch_lr) {
    /* The server replaced its last resort of the suite with ours: older
     * ones of the suite are no longer handed out. */
    j->lr_uploaded = true;
    rc = cstate_kp_drop_last_resort(st, j->suite,
                                    j->refs.ptr + (n - 1) * CSTATE_KP_REF_BYTES);
    if (rc) {
      job_fail(j, rc);
      return;
    }
  }
  next_step(j, res->status);
}

int tsr_keypackages_replenish(tsr_client *c, uint16_t suite, unsigned target,
                              tsr_result_cb cb, void *arg) {
  if (!c || target > TSR_KEYPACKAGES_MAX) return TSR_EINVAL;
  if (suite != MLS_SUITE_X25519_AES128GCM_SHA256_ED25519 &&
      suite != MLS_SUITE_X25519_CHACHA20POLY1305_SHA256_ED25519)
    return TSR_EINVAL;
  cstate *st = client_state(c);
  if (!logged_in(st)) return TSR_ESTATE;
  /* Fail now, not after the first answer, when no identity can be made. */
  group_identity *id = NULL;
  int rc = client_mls_identity(c, suite, &id);
  group_identity_free(id);
  if (rc) return rc;
  kp_job *j = job_new(c, cb, arg);
  if (!j) return TSR_ENOMEM;
  j->suite = suite;
  j->si = suite_index(suite);
  j->target = target ? target : KP_DEFAULT_TARGET;
  /* Without ?suite: the answer has this suite's counts (by_suite) and
   * every suite's, which the per-device limit needs. */
  rc = queue(j, "GET", "/v1/keypackages", NULL, on_count);
  if (rc) job_free(j);
  return rc;
}

/* ---- blocking forms ------------------------------------------------------------------
 */

int tsr_keypackages_replenish_sync(tsr_client *c, uint16_t suite, unsigned target,
                                   tsr_reply *out) {
  SYNC(tsr_keypackages_replenish(c, suite, target, client_reply_cb, r_));
}
int tsr_keypackages_status_sync(tsr_client *c, tsr_reply *out) {
  SYNC(tsr_keypackages_status(c, client_reply_cb, r_));
}
