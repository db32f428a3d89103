/* The MLS KeyPackage directory: see keypackages.h and docs/protocol.md. */
#include "server/keypackages.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mls/crypto.h"
#include "mls/group.h"
#include "mls/messages.h"
#include "proto/base64.h"
#include "proto/json.h"
#include "server/accounts.h"
#include "server/blocks.h"
#include "server/log.h"
#include "server/profiles.h"
#include "server/ratelimit.h"
#include "server/reach.h"
#include "server/worker.h"
#include "tessera/error.h"

#define IDENTITY_BYTES (2 * ACCOUNTS_ID_BYTES) /* account_id || device_id */
#define STR_(x) #x
#define STR(x) STR_(x)

/* One uploaded KeyPackage, checked; its bytes are o->data[off, off + len). */
typedef struct {
  uint8_t ref[KP_REF_BYTES];
  uint16_t suite;
  int64_t not_after;
  size_t off, len;
} kp_item;

/* One device's answer to a claim: its KeyPackage in o->data[off, off +
 * len), or missing. */
typedef struct {
  uint8_t device[ACCOUNTS_ID_BYTES];
  bool found;
  size_t off, len;
} kp_claimed;

/* A device's live KeyPackages per suite: [0] suite 1, [1] suite 3. */
#define N_SUITES 2
static const uint16_t SUITES[N_SUITES] = {
    MLS_SUITE_X25519_AES128GCM_SHA256_ED25519,
    MLS_SUITE_X25519_CHACHA20POLY1305_SHA256_ED25519};

typedef struct {
  int64_t available[N_SUITES]; /* not last resort */
  bool last_resort[N_SUITES];
} kp_counts;

typedef struct kp_op kp_op;
typedef int (*kp_run_fn)(store_conn *c, kp_op *o);
typedef void (*kp_write_fn)(kp_op *o, json_writer *jw);

/* One deferred upload or claim. Heap; freed after it is answered. The loop
 * thread fills it, the run callback reads and fills it on the writer
 * thread, the completion reads it on the loop thread again; never touched
 * by two threads at once (the store's submit/complete hand it over). */
struct kp_op {
  store_job job;
  httpd_ticket ticket;
  kp_run_fn run;
  kp_write_fn write_ok;
  int64_t now;
  uint8_t account[ACCOUNTS_ID_BYTES], device[ACCOUNTS_ID_BYTES]; /* the caller */
  buf_t data; /* KeyPackage bytes: uploaded, or handed out */
  /* upload: items[0..n) regular, then the last resort when has_lr */
  kp_item *items;
  size_t n;
  bool has_lr;
  /* claim: the target account, or its profile (by_profile: key normalised) */
  uint8_t target[ACCOUNTS_ID_BYTES];
  bool by_profile;
  bool one_device;                 /* only this device of the target: */
  uint8_t only[ACCOUNTS_ID_BYTES]; /* ... e.g. one's own new device */
  app_id app;
  char key[PROFILES_KEY_MAX + 1];
  uint16_t suite;
  kp_claimed *res;
  size_t n_res, cap_res;
  /* answer */
  kp_counts counts;
  int fail_status; /* set by refuse */
  const char *fail_code;
  char fail_msg[160];
};

static int64_t wall_now(void) { return (int64_t)time(NULL); }

static bool path_is(const httpd_req *r, const char *s) {
  return r->req->path.len == strlen(s) &&
         memcmp(r->req->path.ptr, s, r->req->path.len) == 0;
}

static int busy(httpd_resp *resp) {
  return app_error(resp, 503, "busy", "server busy; retry later");
}

static void op_free(kp_op *o) {
  if (!o) return;
  buf_free(&o->data);
  free(o->items);
  free(o->res);
  free(o);
}

static kp_op *op_new(const uint8_t acc[ACCOUNTS_ID_BYTES],
                     const uint8_t dev[ACCOUNTS_ID_BYTES]) {
  kp_op *o = calloc(1, sizeof *o);
  if (!o) return NULL;
  o->now = wall_now();
  memcpy(o->account, acc, ACCOUNTS_ID_BYTES);
  memcpy(o->device, dev, ACCOUNTS_ID_BYTES);
  buf_init(&o->data);
  return o;
}

/* In a run callback: records the refusal and returns the code that rolls
 * the job back. code must be a static string; msg is copied. */
static int refuse(kp_op *o, int status, const char *code, const char *msg) {
  o->fail_status = status;
  o->fail_code = code;
  snprintf(o->fail_msg, sizeof o->fail_msg, "%s", msg);
  return TSR_ESTATE;
}

static int run_upload(store_conn *c, kp_op *o);

static void op_done(store_job *job, int status) {
  kp_op *o = job->arg;
  httpd_resp resp;
  httpd_resp_init(&resp);
  if (status == 0) {
    json_writer jw;
    app_answer_begin(&jw, &resp, NULL);
    o->write_ok(o, &jw);
    app_answer_end(&jw, &resp);
    /* A device with KeyPackages can be added to its account's conversations. */
    if (o->run == run_upload) accounts_devices_changed(o->account, NULL);
  } else if (o->fail_status) {
    httpd_resp_error(&resp, o->fail_status, o->fail_code, o->fail_msg);
    if (o->fail_status == 401) httpd_resp_header(&resp, "WWW-Authenticate", "Bearer");
  } else {
    log_warn("keypackages job failed: %s", tsr_errname(status));
    httpd_resp_error(&resp, 500, "internal", "internal error");
  }
  httpd_complete(&o->ticket, &resp);
  op_free(o);
}

static int op_run(store_conn *c, void *arg) {
  kp_op *o = arg;
  o->fail_status = 0;
  return o->run(c, o);
}

/* Submits o and defers the request: HTTPD_DEFERRED, or 0 with resp set to
 * 503 (queue full) and o freed. */
static int op_start(const httpd_req *r, httpd_resp *resp, kp_op *o) {
  o->job = (store_job){.run = op_run, .done = op_done, .arg = o};
  if (store_submit(worker_self->sc, &o->job) != 0) {
    op_free(o);
    return busy(resp);
  }
  httpd_defer(r, &o->ticket);
  return HTTPD_DEFERRED;
}

/* ---- queries shared by the calls -------------------------------------- */

/* Deletes device's KeyPackages whose lifetime ended before now. */
static int delete_expired(store_conn *c, const uint8_t device[ACCOUNTS_ID_BYTES],
                          int64_t now) {
  store_stmt *s;
  int rc = store_conn_prepare(
      c, "DELETE FROM key_packages WHERE device_id = ? AND not_after < ?", &s);
  if (rc) return rc;
  store_bind_blob(s, 1, BYTES(device, ACCOUNTS_ID_BYTES));
  store_bind_int64(s, 2, now);
  return store_stmt_run(s);
}

/* The index of suite in SUITES, or -1. */
static int suite_index(int64_t suite) {
  for (int i = 0; i < N_SUITES; i++)
    if (suite == SUITES[i]) return i;
  return -1;
}

/* device's live KeyPackages per suite: available (not last resort) and
 * whether it has a last resort one. */
static int count_live(store_conn *c, const uint8_t device[ACCOUNTS_ID_BYTES], int64_t now,
                      kp_counts *out) {
  memset(out, 0, sizeof *out);
  store_stmt *s;
  int rc =
      store_conn_prepare(c,
                         "SELECT suite, COALESCE(SUM(CASE WHEN last_resort = 0 THEN 1"
                         " ELSE 0 END), 0), COALESCE(SUM(last_resort), 0)"
                         " FROM key_packages WHERE device_id = ? AND not_after >= ?"
                         " GROUP BY suite",
                         &s);
  if (rc) return rc;
  store_bind_blob(s, 1, BYTES(device, ACCOUNTS_ID_BYTES));
  store_bind_int64(s, 2, now);
  while ((rc = store_step(s)) == STORE_ROW) {
    int i = suite_index(store_col_int64(s, 0));
    if (i < 0) continue; /* only suites 1 and 3 are ever stored */
    out->available[i] = store_col_int64(s, 1);
    out->last_resort[i] = store_col_int64(s, 2) > 0;
  }
  store_stmt_reset(s);
  return rc < 0 ? rc : 0;
}

/* Every suite together: the regular ones and whether any last resort. */
static int64_t total_available(const kp_counts *k) {
  int64_t n = 0;
  for (int i = 0; i < N_SUITES; i++) n += k->available[i];
  return n;
}

static bool any_last_resort(const kp_counts *k) {
  for (int i = 0; i < N_SUITES; i++)
    if (k->last_resort[i]) return true;
  return false;
}

static void write_counts_v(json_writer *jw, int64_t available, bool last_resort) {
  json_write_key(jw, "available");
  json_write_i64(jw, available);
  json_write_key(jw, "last_resort");
  json_write_bool(jw, last_resort);
}

/* The answer without ?suite: every suite together, then "by_suite". */
static void write_all_counts(json_writer *jw, const kp_counts *k) {
  write_counts_v(jw, total_available(k), any_last_resort(k));
  json_write_key(jw, "by_suite");
  json_write_object_begin(jw);
  for (int i = 0; i < N_SUITES; i++) {
    char key[8];
    snprintf(key, sizeof key, "%u", (unsigned)SUITES[i]);
    json_write_key(jw, key);
    json_write_object_begin(jw);
    write_counts_v(jw, k->available[i], k->last_resort[i]);
    json_write_object_end(jw);
  }
  json_write_object_end(jw);
}

static void write_counts(kp_op *o, json_writer *jw) { write_all_counts(jw, &o->counts); }

int keypackages_remove_device(store_conn *c, const uint8_t device_id[ACCOUNTS_ID_BYTES]) {
  store_stmt *s;
  int rc = store_conn_prepare(c, "DELETE FROM key_packages WHERE device_id = ?", &s);
  if (rc) return rc;
  store_bind_blob(s, 1, BYTES(device_id, ACCOUNTS_ID_BYTES));
  return store_stmt_run(s);
}

/* ---- GET /v1/keypackages ---------------------------------------------- */

static int h_get(const httpd_req *r, httpd_resp *resp) {
  uint8_t acc[ACCOUNTS_ID_BYTES], dev[ACCOUNTS_ID_BYTES];
  if (!accounts_auth_or_refuse(r, resp, acc, dev)) return 0;
  if (!path_is(r, "/v1/keypackages"))
    return app_error(resp, 404, "not_found", "no such resource");
  /* ?suite=1 or 3: that suite's counts only; without it every suite. */
  char sv[8];
  size_t sl = 0;
  int si = -1;
  int hs = http_query_get(r->req->query, "suite", sv, sizeof sv, &sl);
  if (hs == 1 && sl == 1) si = suite_index(sv[0] - '0'); /* exactly "1" or "3" */
  if (hs < 0 || (hs == 1 && si < 0))
    return app_error(resp, 400, "bad_request", "suite must be 1 or 3");
  store_conn *c;
  kp_counts k;
  if (store_reader_get(worker_self->store, &c) != 0 ||
      count_live(c, dev, wall_now(), &k) != 0)
    return -1;
  json_writer jw;
  app_answer_begin(&jw, resp, NULL);
  if (si >= 0)
    write_counts_v(&jw, k.available[si], k.last_resort[si]);
  else
    write_all_counts(&jw, &k);
  app_answer_end(&jw, resp);
  return 0;
}

/* ---- POST /v1/keypackages --------------------------------------------- */

/* The calling device's registered signature key, read on this thread's
 * reader. 1 when found (live), 0 when gone (revoked since the token
 * check), or a store error. */
static int device_key(const uint8_t acc[ACCOUNTS_ID_BYTES],
                      const uint8_t dev[ACCOUNTS_ID_BYTES], uint8_t key[MLS_SIG_PK]) {
  store_conn *c;
  store_stmt *s;
  int rc = store_reader_get(worker_self->store, &c);
  if (rc == 0)
    rc = store_conn_prepare(c,
                            "SELECT signature_key FROM devices WHERE id = ? AND"
                            " account_id = ? AND revoked = 0",
                            &s);
  if (rc) return rc;
  store_bind_blob(s, 1, BYTES(dev, ACCOUNTS_ID_BYTES));
  store_bind_blob(s, 2, BYTES(acc, ACCOUNTS_ID_BYTES));
  rc = store_step(s);
  int out = rc < 0 ? rc : 0;
  if (rc == STORE_ROW) {
    bytes_t k = store_col_blob(s, 0);
    out = k.len == MLS_SIG_PK ? 1 : TSR_EIO;
    if (out == 1) memcpy(key, k.ptr, MLS_SIG_PK);
  }
  store_stmt_reset(s);
  return out;
}

static const char *validate_reason(int rc) {
  switch (rc) {
  case TSR_EVERIFY: return "a signature does not verify";
  case TSR_EEXPIRED: return "its lifetime does not cover the current time";
  case TSR_ECAPABILITY:
    return "its capabilities lack its version, suite, credential type or an extension";
  case TSR_EUNSUPPORTED: return "unsupported protocol version or cipher suite";
  default: return "invalid leaf node or init key";
  }
}

/* The checks of one decoded MLSMessage m (see check_one). */
static const char *check_kp(const mls_message *m, int64_t now, kp_item *it,
                            const uint8_t dev_key[MLS_SIG_PK],
                            const uint8_t ident[IDENTITY_BYTES]) {
  const mls_key_package *kp = &m->key_package;
  const mls_suite *s = NULL;
  if ((kp->cipher_suite != MLS_SUITE_X25519_AES128GCM_SHA256_ED25519 &&
       kp->cipher_suite != MLS_SUITE_X25519_CHACHA20POLY1305_SHA256_ED25519) ||
      !(s = mls_suite_get(kp->cipher_suite)))
    return "cipher suite not supported (only 1 and 3 are)";
  /* kp_decode_validate's checks (RFC 9420 §10.1) on the strictly decoded
   * MLSMessage. */
  int rc = kp_validate(s, kp, (uint64_t)now);
  if (rc) return validate_reason(rc);
  const mls_leaf_node *ln = &kp->leaf_node;
  if (!bytes_eq(ln->signature_key, BYTES(dev_key, MLS_SIG_PK)))
    return "its leaf signature key is not this device's key";
  if (ln->credential.credential_type != MLS_CREDENTIAL_BASIC ||
      !bytes_eq(ln->credential.identity, BYTES(ident, IDENTITY_BYTES)))
    return "its credential is not basic with identity account_id || device_id of this"
           " device";
  if (s->hash_len != KP_REF_BYTES || kp_ref(s, kp, it->ref) != 0)
    return "cannot compute its KeyPackageRef";
  it->suite = kp->cipher_suite;
  it->not_after = ln->lifetime.not_after > (uint64_t)INT64_MAX
                      ? INT64_MAX
                      : (int64_t)ln->lifetime.not_after;
  return NULL;
}

/* Checks one uploaded KeyPackage it (its bytes are o->data[it->off, +len))
 * for the device with signature key dev_key and credential identity ident.
 * Fills ref, suite and not_after. NULL when it is fine, else the reason (a
 * static string). Reads only its inputs: runs on the loop thread. */
static const char *check_one(const kp_op *o, kp_item *it,
                             const uint8_t dev_key[MLS_SIG_PK],
                             const uint8_t ident[IDENTITY_BYTES]) {
  bytes_t in = BYTES(o->data.ptr + it->off, it->len);
  /* An MLSMessage (version mls10, wire_format mls_key_package); a bare
   * KeyPackage is refused. */
  if (in.len < 4 || in.ptr[0] != 0 || in.ptr[1] != MLS_VERSION_10 || in.ptr[2] != 0 ||
      in.ptr[3] != MLS_WIRE_KEY_PACKAGE)
    return "not an MLSMessage carrying a KeyPackage";
  arena_t a;
  arena_init(&a);
  mls_message m;
  const char *why =
      msg_decode_message(in, &a, &m) != 0
          ? "not an MLSMessage carrying a KeyPackage (does not decode strictly)"
          : check_kp(&m, o->now, it, dev_key, ident);
  arena_free(&a);
  return why;
}

/* base64url text -> o->data, recorded in it. NULL or the reason. */
static const char *take_bytes(kp_op *o, kp_item *it, const app_body *b, int tok) {
  const char *p;
  size_t len;
  if (b->t[tok].type != JSON_STRING ||
      json_get_string_view(b->buf, b->t, tok, &p, &len) != 0)
    return "not a base64url string";
  if (len > b64_encoded_len(KP_MAX_BYTES, B64_MODE_URL_NOPAD))
    return "over " STR(KP_MAX_BYTES) " bytes";
  size_t got = 0, off = o->data.len;
  uint8_t *dst = buf_extend(&o->data, b64_decoded_max(len));
  if (!dst) return NULL; /* o->data.err: answered 503 by the caller */
  if (b64_decode(dst, b64_decoded_max(len), p, len, B64_MODE_URL_NOPAD, &got) != 0) {
    o->data.len = off;
    return "not base64url (unpadded)";
  }
  o->data.len = off + got;
  it->off = off;
  it->len = got;
  return NULL;
}

static int insert_kp(store_conn *c, const kp_op *o, const kp_item *it, bool last_resort) {
  store_stmt *s;
  int rc =
      store_conn_prepare(c,
                         "INSERT INTO key_packages(ref, device_id, account_id, suite,"
                         " body, last_resort, created_at, not_after)"
                         " VALUES(?,?,?,?,?,?,?,?) ON CONFLICT(ref) DO NOTHING",
                         &s);
  if (rc) return rc;
  store_bind_blob(s, 1, BYTES(it->ref, KP_REF_BYTES));
  store_bind_blob(s, 2, BYTES(o->device, ACCOUNTS_ID_BYTES));
  store_bind_blob(s, 3, BYTES(o->account, ACCOUNTS_ID_BYTES));
  store_bind_int64(s, 4, it->suite);
  store_bind_blob(s, 5, BYTES(o->data.ptr + it->off, it->len));
  store_bind_int64(s, 6, last_resort ? 1 : 0);
  store_bind_int64(s, 7, o->now);
  store_bind_int64(s, 8, it->not_after);
  return store_stmt_run(s);
}

static int run_upload(store_conn *c, kp_op *o) {
  /* Revoked since the token check: its KeyPackages are gone and stay so. */
  store_stmt *s;
  int rc = store_conn_prepare(
      c, "SELECT 1 FROM devices WHERE id = ? AND account_id = ? AND revoked = 0", &s);
  if (rc) return rc;
  store_bind_blob(s, 1, BYTES(o->device, ACCOUNTS_ID_BYTES));
  store_bind_blob(s, 2, BYTES(o->account, ACCOUNTS_ID_BYTES));
  rc = store_step(s);
  store_stmt_reset(s);
  if (rc < 0) return rc;
  if (rc != STORE_ROW)
    return refuse(o, 401, "unauthorized", "missing, unknown or revoked token");
  if ((rc = delete_expired(c, o->device, o->now)) != 0) return rc;
  /* Duplicates (of stored rows or within the call) are ignored. */
  for (size_t i = 0; i < o->n; i++)
    if ((rc = insert_kp(c, o, &o->items[i], false)) != 0) return rc;
  if (o->has_lr) {
    const kp_item *lr = &o->items[o->n];
    /* Replaces the previous last resort of its suite (one per suite); the
     * same KeyPackage stored as a regular one becomes the last resort. */
    if ((rc = store_conn_prepare(c,
                                 "DELETE FROM key_packages WHERE device_id = ? AND"
                                 " ((last_resort = 1 AND suite = ?) OR ref = ?)",
                                 &s)) != 0)
      return rc;
    store_bind_blob(s, 1, BYTES(o->device, ACCOUNTS_ID_BYTES));
    store_bind_int64(s, 2, lr->suite);
    store_bind_blob(s, 3, BYTES(lr->ref, KP_REF_BYTES));
    if ((rc = store_stmt_run(s)) != 0) return rc;
    if ((rc = insert_kp(c, o, lr, true)) != 0) return rc;
  }
  if ((rc = count_live(c, o->device, o->now, &o->counts)) != 0) return rc;
  /* The limit is per device, every suite together. */
  int64_t total = total_available(&o->counts);
  if (total > KP_MAX_PER_DEVICE) {
    char msg[160];
    snprintf(msg, sizeof msg,
             "a device holds at most %d KeyPackages of all suites (besides its last"
             " resorts); this upload would make %lld",
             KP_MAX_PER_DEVICE, (long long)total);
    return refuse(o, 409, "too_many_key_packages", msg);
  }
  return 0;
}

static const char UPLOAD_ERR[] =
    "body must be {\"key_packages\": [base64url, …], \"last_resort\": base64url}"
    " with 1 to " STR(KP_MAX_PER_CALL) " key_packages (or only a last_resort)";

static int h_upload(const httpd_req *r, httpd_resp *resp,
                    const uint8_t acc[ACCOUNTS_ID_BYTES],
                    const uint8_t dev[ACCOUNTS_ID_BYTES]) {
  app_body b;
  if (!app_body_parse(r, &b)) return app_error(resp, 400, "bad_request", UPLOAD_ERR);
  int arr = json_object_get(b.buf, b.t, 0, "key_packages");
  int lr = json_object_get(b.buf, b.t, 0, "last_resort");
  if (arr >= 0 && json_is_null(b.t, arr)) arr = -1;
  if (lr >= 0 && json_is_null(b.t, lr)) lr = -1;
  if (arr >= 0 && b.t[arr].type != JSON_ARRAY)
    return app_error(resp, 400, "bad_request", UPLOAD_ERR);
  size_t n = arr >= 0 ? b.t[arr].size : 0;
  if (n > KP_MAX_PER_CALL)
    return app_error(resp, 400, "bad_request",
                     "at most " STR(KP_MAX_PER_CALL) " key_packages per call");
  if (n == 0 && lr < 0) return app_error(resp, 400, "bad_request", UPLOAD_ERR);
  uint8_t key[MLS_SIG_PK];
  int rc = device_key(acc, dev, key);
  if (rc < 0) return -1;
  if (rc == 0) {
    httpd_resp_error(resp, 401, "unauthorized", "missing, unknown or revoked token");
    httpd_resp_header(resp, "WWW-Authenticate", "Bearer");
    return 0;
  }
  uint8_t ident[IDENTITY_BYTES];
  memcpy(ident, acc, ACCOUNTS_ID_BYTES);
  memcpy(ident + ACCOUNTS_ID_BYTES, dev, ACCOUNTS_ID_BYTES);
  kp_op *o = op_new(acc, dev);
  if (!o || !(o->items = calloc(n + 1, sizeof *o->items))) {
    op_free(o);
    return busy(resp);
  }
  o->n = n;
  o->has_lr = lr >= 0;
  /* Every entry is checked; the first refusal answers, nothing is stored. */
  const char *why = NULL;
  char where[32] = "";
  int tok = arr >= 0 ? json_first_child(b.t, arr) : -1;
  for (size_t i = 0; i < n + o->has_lr && !why; i++) {
    kp_item *it = &o->items[i];
    int t = i < n ? tok : lr;
    if (i < n) {
      snprintf(where, sizeof where, "key_packages[%zu]", i);
      tok = json_next_sibling(b.t, arr, tok);
    } else {
      snprintf(where, sizeof where, "last_resort");
    }
    why = take_bytes(o, it, &b, t);
    if (!why && o->data.err) break;
    if (!why) why = check_one(o, it, key, ident);
  }
  if (o->data.err) {
    op_free(o);
    return busy(resp);
  }
  if (why) {
    char msg[256];
    snprintf(msg, sizeof msg, "%s: %s", where, why);
    op_free(o);
    return app_error(resp, 400, "bad_request", msg);
  }
  o->run = run_upload;
  o->write_ok = write_counts;
  return op_start(r, resp, o);
}

/* ---- POST /v1/keypackages/claim --------------------------------------- */

static kp_claimed *claimed_add(kp_op *o) {
  if (o->n_res == o->cap_res) {
    size_t cap = o->cap_res ? 2 * o->cap_res : 8;
    kp_claimed *p = realloc(o->res, cap * sizeof *p);
    if (!p) return NULL;
    o->res = p;
    o->cap_res = cap;
  }
  kp_claimed *d = &o->res[o->n_res++];
  memset(d, 0, sizeof *d);
  return d;
}

/* Copies the body in column col of s's row into o->data for d. */
static int take_body(kp_op *o, kp_claimed *d, store_stmt *s, int col) {
  bytes_t body = store_col_blob(s, col);
  d->off = o->data.len;
  d->len = body.len;
  d->found = true;
  return buf_append(&o->data, body.ptr, body.len);
}

/* Hands out one KeyPackage of device d->device in o->suite: the oldest live
 * regular one (deleted here), else its live last resort one (kept). */
static int claim_one(store_conn *c, kp_op *o, kp_claimed *d) {
  int rc = delete_expired(c, d->device, o->now);
  if (rc) return rc;
  store_stmt *s;
  if ((rc = store_conn_prepare(c,
                               "SELECT ref, body FROM key_packages WHERE device_id = ?"
                               " AND suite = ? AND last_resort = 0 AND not_after >= ?"
                               " ORDER BY created_at, ref LIMIT 1",
                               &s)) != 0)
    return rc;
  store_bind_blob(s, 1, BYTES(d->device, ACCOUNTS_ID_BYTES));
  store_bind_int64(s, 2, o->suite);
  store_bind_int64(s, 3, o->now);
  uint8_t ref[KP_REF_BYTES];
  rc = store_step(s);
  if (rc == STORE_ROW) {
    bytes_t rb = store_col_blob(s, 0);
    if (rb.len != KP_REF_BYTES) rc = TSR_EIO;
    if (rc == STORE_ROW) memcpy(ref, rb.ptr, KP_REF_BYTES);
    if (rc == STORE_ROW && take_body(o, d, s, 1) != 0) rc = TSR_ENOMEM;
  }
  store_stmt_reset(s);
  if (rc < 0) return rc;
  if (rc == STORE_ROW) {
    if ((rc = store_conn_prepare(c, "DELETE FROM key_packages WHERE ref = ?", &s)) != 0)
      return rc;
    store_bind_blob(s, 1, BYTES(ref, KP_REF_BYTES));
    return store_stmt_run(s);
  }
  if ((rc = store_conn_prepare(c,
                               "SELECT body FROM key_packages WHERE device_id = ? AND"
                               " suite = ? AND last_resort = 1 AND not_after >= ?"
                               " ORDER BY created_at, ref LIMIT 1",
                               &s)) != 0)
    return rc;
  store_bind_blob(s, 1, BYTES(d->device, ACCOUNTS_ID_BYTES));
  store_bind_int64(s, 2, o->suite);
  store_bind_int64(s, 3, o->now);
  rc = store_step(s);
  if (rc == STORE_ROW && take_body(o, d, s, 0) != 0) rc = TSR_ENOMEM;
  store_stmt_reset(s);
  return rc < 0 ? rc : 0;
}

/* A claim by profile: the account behind o->app / o->key into o->target.
 * An unknown profile and a block either way give the same answer; someone
 * the profile's owner does not let start a conversation (reach_allowed from
 * none of the claimer's apps) is refused, since the answer (and each
 * KeyPackage's credential) reveals the account id, which would link the
 * owner's profiles across apps. Claiming one's own profile is allowed. */
static int resolve_target(store_conn *c, kp_op *o) {
  int rc = profiles_resolve(c, o->app, o->key, o->target);
  if (rc == TSR_ENOTFOUND) return refuse(o, 404, "not_found", "no such profile");
  if (rc) return rc;
  if (memcmp(o->target, o->account, ACCOUNTS_ID_BYTES) == 0) return 0;
  if (blocks_between(c, o->account, o->target))
    return refuse(o, 404, "not_found", "no such profile");
  for (int from = 0; from < APP_COUNT; from++)
    if (reach_allowed(c, (app_id)from, o->app, o->account, o->target)) return 0;
  return refuse(o, 403, "forbidden",
                "not reachable: that profile does not let you start a conversation"
                " (POST /v1/reach makes a message request)");
}

static int run_claim(store_conn *c, kp_op *o) {
  buf_reset(&o->data);
  o->n_res = 0;
  store_stmt *s;
  int rc;
  if (o->by_profile) {
    if ((rc = resolve_target(c, o)) != 0) return rc;
  } else {
    if ((rc = store_conn_prepare(c, "SELECT 1 FROM accounts WHERE id = ?", &s)) != 0)
      return rc;
    store_bind_blob(s, 1, BYTES(o->target, ACCOUNTS_ID_BYTES));
    rc = store_step(s);
    store_stmt_reset(s);
    if (rc < 0) return rc;
    /* A block either way answers like an unknown account. */
    if (rc != STORE_ROW || blocks_between(c, o->account, o->target))
      return refuse(o, 404, "not_found", "no such account");
  }
  if ((rc = store_conn_prepare(c,
                               "SELECT id FROM devices WHERE account_id = ? AND"
                               " revoked = 0 ORDER BY created_at, id",
                               &s)) != 0)
    return rc;
  store_bind_blob(s, 1, BYTES(o->target, ACCOUNTS_ID_BYTES));
  while ((rc = store_step(s)) == STORE_ROW) {
    bytes_t id = store_col_blob(s, 0);
    if (id.len != ACCOUNTS_ID_BYTES || memcmp(id.ptr, o->device, ACCOUNTS_ID_BYTES) == 0)
      continue; /* the caller's own device is never a target */
    if (o->one_device && memcmp(id.ptr, o->only, ACCOUNTS_ID_BYTES) != 0) continue;
    kp_claimed *d = claimed_add(o);
    if (!d) {
      rc = TSR_ENOMEM;
      break;
    }
    memcpy(d->device, id.ptr, ACCOUNTS_ID_BYTES);
  }
  store_stmt_reset(s);
  if (rc < 0) return rc;
  for (size_t i = 0; i < o->n_res; i++)
    if ((rc = claim_one(c, o, &o->res[i])) != 0) return rc;
  return 0;
}

static void write_claim(kp_op *o, json_writer *jw) {
  json_write_key(jw, "account_id");
  json_write_base64url(jw, BYTES(o->target, ACCOUNTS_ID_BYTES));
  json_write_key(jw, "key_packages");
  json_write_array_begin(jw);
  for (size_t i = 0; i < o->n_res; i++) {
    const kp_claimed *d = &o->res[i];
    if (!d->found) continue;
    json_write_object_begin(jw);
    json_write_key(jw, "device_id");
    json_write_base64url(jw, BYTES(d->device, ACCOUNTS_ID_BYTES));
    json_write_key(jw, "key_package");
    json_write_base64url(jw, BYTES(o->data.ptr + d->off, d->len));
    json_write_object_end(jw);
  }
  json_write_array_end(jw);
  json_write_key(jw, "missing");
  json_write_array_begin(jw);
  for (size_t i = 0; i < o->n_res; i++)
    if (!o->res[i].found)
      json_write_base64url(jw, BYTES(o->res[i].device, ACCOUNTS_ID_BYTES));
  json_write_array_end(jw);
}

static const char CLAIM_ERR[] =
    "body must be {\"account_id\": base64url of 16 bytes, \"suite\": 1 or 3,"
    " optional \"device_id\": one of its devices} or"
    " {\"app\": app, \"key\": number, handle or username, \"suite\": 1 or 3}";

static int h_claim(const httpd_req *r, httpd_resp *resp,
                   const uint8_t acc[ACCOUNTS_ID_BYTES],
                   const uint8_t dev[ACCOUNTS_ID_BYTES]) {
  /* Every attempt counts, well-formed or not. */
  uint32_t wait = ratelimit_take(RL_KP_CLAIM_ACCOUNT, acc, ACCOUNTS_ID_BYTES,
                                 loop_now(&worker_self->loop));
  if (wait) {
    httpd_resp_rate_limited(resp, wait, "too many KeyPackage claims; retry later");
    return 0;
  }
  app_body b;
  char id[32], app[16], key[64];
  int st;
  int64_t suite = 0;
  uint8_t target[ACCOUNTS_ID_BYTES];
  size_t got = 0;
  if (!app_body_parse(r, &b) || (st = json_object_get(b.buf, b.t, 0, "suite")) < 0 ||
      json_get_i64(b.buf, b.t, st, &suite) != 0)
    return app_error(resp, 400, "bad_request", CLAIM_ERR);
  /* Either an account id, or a profile (app and key); not both. */
  int has_id = app_body_str(&b, 0, "account_id", id, sizeof id);
  int has_app = app_body_str(&b, 0, "app", app, sizeof app);
  int has_key = app_body_str(&b, 0, "key", key, sizeof key);
  char one[32];
  uint8_t only[ACCOUNTS_ID_BYTES];
  int has_dev = app_body_str(&b, 0, "device_id", one, sizeof one);
  bool by_profile = has_id == 0 && has_app == 1 && has_key == 1;
  if (has_dev < 0 || (has_dev == 1 && (by_profile ||
                                       b64_decode(only, sizeof only, one, strlen(one),
                                                  B64_MODE_URL_NOPAD, &got) != 0 ||
                                       got != ACCOUNTS_ID_BYTES)))
    return app_error(resp, 400, "bad_request", CLAIM_ERR);
  if (!by_profile &&
      (has_id != 1 || has_app != 0 || has_key != 0 ||
       strlen(id) != b64_encoded_len(ACCOUNTS_ID_BYTES, B64_MODE_URL_NOPAD) ||
       b64_decode(target, sizeof target, id, strlen(id), B64_MODE_URL_NOPAD, &got) != 0 ||
       got != ACCOUNTS_ID_BYTES))
    return app_error(resp, 400, "bad_request", CLAIM_ERR);
  int a = by_profile ? app_parse(app) : 0;
  if (a < 0) return app_error(resp, 400, "bad_request", "unknown app");
  char norm[PROFILES_KEY_MAX + 1];
  if (by_profile && !profiles_key_normalize((app_id)a, key, norm))
    return app_error(resp, 400, "bad_request",
                     "key breaks the app's key rules (number, handle or username)");
  if (suite != MLS_SUITE_X25519_AES128GCM_SHA256_ED25519 &&
      suite != MLS_SUITE_X25519_CHACHA20POLY1305_SHA256_ED25519)
    return app_error(resp, 400, "bad_request", "suite must be 1 or 3");
  kp_op *o = op_new(acc, dev);
  if (!o) return busy(resp);
  o->by_profile = by_profile;
  if (by_profile) {
    o->app = (app_id)a;
    memcpy(o->key, norm, strlen(norm) + 1);
  } else {
    memcpy(o->target, target, ACCOUNTS_ID_BYTES);
  }
  o->one_device = has_dev == 1;
  if (o->one_device) memcpy(o->only, only, ACCOUNTS_ID_BYTES);
  o->suite = (uint16_t)suite;
  o->run = run_claim;
  o->write_ok = write_claim;
  return op_start(r, resp, o);
}

static int h_post(const httpd_req *r, httpd_resp *resp) {
  uint8_t acc[ACCOUNTS_ID_BYTES], dev[ACCOUNTS_ID_BYTES];
  if (!accounts_auth_or_refuse(r, resp, acc, dev)) return 0;
  if (path_is(r, "/v1/keypackages")) return h_upload(r, resp, acc, dev);
  if (path_is(r, "/v1/keypackages/claim")) return h_claim(r, resp, acc, dev);
  return app_error(resp, 404, "not_found", "no such resource");
}

int keypackages_routes(void) {
  /* Loads the hash used for KeyPackageRefs (and libsodium) once, before
   * the fork. */
  int rc = crypto_init();
  if (rc == 0) rc = httpd_route_add(HTTP_GET, "/v1/keypackages", h_get);
  if (rc == 0) rc = httpd_route_add(HTTP_POST, "/v1/keypackages", h_post);
  return rc;
}
