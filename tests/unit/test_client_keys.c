/* libtessera's MLS identity and KeyPackages (src/client/keys.c) against a
 * real tesserad (one worker, random port, temporary data dir, general
 * request limits off): the state file's migration to schema 2, the
 * device identity, replenishing to a target (per suite, within the device
 * limit of all suites together), KeyPackages claimed through the server by
 * another account (raw HTTP, tests/unit/server_harness.h) whose private
 * parts are taken exactly once and open the Welcome another member made
 * for them (src/mls/group.h), the last resort, two devices of
 * one account, and logout. Every wait is bounded by a deadline. */
#include <cjson/cJSON.h>
#include <signal.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client.h"
#include "mls/crypto.h"
#include "mls/group.h"
#include "proto/base64.h"
#include "server_harness.h"
#include "tessera/tessera.h"
#include "test.h"

#define S1 MLS_SUITE_X25519_AES128GCM_SHA256_ED25519
#define S3 MLS_SUITE_X25519_CHACHA20POLY1305_SHA256_ED25519

static server srv;
static char tmpdir[64];
/* ann's two devices (libtessera), bob claims with raw HTTP. */
static tsr_client *ann1, *ann2;
static tsr_session_info ann1_info, ann2_info;
static user bob;

static tsr_client *new_client(const char *name) {
  char path[128];
  snprintf(path, sizeof path, "%s/%s", tmpdir, name);
  tsr_client_config cfg = {.port = (uint16_t)srv.port, .state_path = path};
  tsr_client *c = NULL;
  CHECK_OK(tsr_client_new(&cfg, &c));
  return c;
}

/* ---- answers ---- */

typedef struct {
  long available, uploaded, local, local1, local3;
  int last_resort, lr_uploaded, local_lr;
  /* by_suite: [0] suite 1, [1] suite 3 */
  long s_available[2], s_local[2];
  int s_last_resort[2], s_local_lr[2];
} counts;

static long num_of(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsNumber(v) ? (long)v->valuedouble : -1;
}

static int flag_of(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsBool(v) ? cJSON_IsTrue(v) : -1;
}

/* The counts of a replenish or status reply (cleared); -1 where absent. */
static counts read_counts(tsr_reply *r) {
  counts k;
  memset(&k, 0xff, sizeof k);
  cJSON *o = r->body ? cJSON_ParseWithLength(r->body, r->body_len) : NULL;
  CHECK(o != NULL);
  if (o) {
    k.available = num_of(o, "available");
    k.uploaded = num_of(o, "uploaded");
    k.local = num_of(o, "local_secrets");
    k.local1 = num_of(o, "local_suite_1");
    k.local3 = num_of(o, "local_suite_3");
    k.last_resort = flag_of(o, "last_resort");
    k.lr_uploaded = flag_of(o, "last_resort_uploaded");
    k.local_lr = flag_of(o, "local_last_resort");
    const cJSON *bs = cJSON_GetObjectItemCaseSensitive(o, "by_suite");
    for (int i = 0; i < 2; i++) {
      const cJSON *e = cJSON_GetObjectItemCaseSensitive(bs, i ? "3" : "1");
      k.s_available[i] = num_of(e, "available");
      k.s_local[i] = num_of(e, "local_secrets");
      k.s_last_resort[i] = flag_of(e, "last_resort");
      k.s_local_lr[i] = flag_of(e, "local_last_resort");
    }
  }
  cJSON_Delete(o);
  tsr_reply_clear(r);
  return k;
}

static counts replenish(tsr_client *c, uint16_t suite, unsigned target) {
  tsr_reply r = {0};
  CHECK_OK(tsr_keypackages_replenish_sync(c, suite, target, &r));
  if (r.err) fprintf(stderr, "  replenish: %s %s\n", r.code, r.message);
  return read_counts(&r);
}

static counts status(tsr_client *c) {
  tsr_reply r = {0};
  CHECK_OK(tsr_keypackages_status_sync(c, &r));
  return read_counts(&r);
}

/* Bob claims KeyPackages of ann's account (suite 1); 200 expected. */
static int claim_ann(void) {
  char body[128];
  snprintf(body, sizeof body, "{\"account_id\":\"%s\",\"suite\":1}",
           ann1_info.account_id);
  return call(srv.port, "POST", "/v1/keypackages/claim", bob.s.token, body);
}

/* The KeyPackage of the last claim for device_id, decoded into out. */
static bool claimed_kp(const char *device_id, buf_t *out) {
  const cJSON *e;
  cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(resp.json, "key_packages")) {
    if (strcmp(json_str(e, "device_id"), device_id) != 0) continue;
    const char *s = json_str(e, "key_package");
    size_t n = strlen(s), got = 0;
    buf_reset(out);
    uint8_t *p = buf_extend(out, b64_decoded_max(n) + 1);
    if (!p || b64_decode(p, b64_decoded_max(n) + 1, s, n, B64_MODE_URL_NOPAD, &got) != 0)
      return false;
    out->len = got;
    return true;
  }
  return false;
}

/* A one-member group of bob's that adds the KeyPackage kp: the Welcome
 * goes into welcome; the group (commit merged) is returned. */
static mls_group *bob_adds(bytes_t kp, buf_t *welcome) {
  group_identity *bid = NULL;
  mls_group *g = NULL;
  buf_t commit;
  buf_init(&commit);
  CHECK_OK(group_identity_new(S1, BYTES("bob", 3), &bid));
  if (bid) CHECK_OK(group_create(bid, NULL, BYTES("conv-1", 6), NULL, &g));
  if (g) {
    group_commit_params p = {.add_key_packages = &kp, .n_adds = 1};
    CHECK_OK(group_commit(g, &p, &commit, welcome));
    CHECK_OK(group_merge_pending(g));
  }
  group_identity_free(bid);
  buf_free(&commit);
  return g;
}

/* ann's device c joins from welcome with the private part secret; checks
 * it reaches bob's epoch and secrets, and holds the leaf of its own
 * credential. */
static void join_and_compare(tsr_client *c, bytes_t secret, bytes_t welcome,
                             const mls_group *bg) {
  kp_secret *ks = NULL;
  group_identity *id = NULL;
  mls_group *g = NULL;
  CHECK_OK(kp_secret_decode(secret, &ks));
  CHECK_OK(client_mls_identity(c, S1, &id));
  if (ks && id) {
    size_t used = 99;
    CHECK_OK(group_join(id, NULL, &ks, 1, welcome, BYTES_NONE, NULL, 0, NULL, &used, &g));
    CHECK_INT(used, 0);
  }
  if (g) {
    CHECK_INT(group_epoch(g), group_epoch(bg));
    uint8_t a[32], b[32];
    CHECK_OK(group_export(g, "test", BYTES_NONE, a, sizeof a));
    CHECK_OK(group_export(bg, "test", BYTES_NONE, b, sizeof b));
    CHECK(memcmp(a, b, sizeof a) == 0);
    uint32_t leaf = 99;
    CHECK_OK(group_find_member(g, buf_view(&id->name), &leaf));
    CHECK_INT(leaf, group_own_leaf(g));
  }
  group_free(g);
  group_identity_free(id);
  kp_secret_free(ks);
}

/* ---- tests ---- */

static void test_migration(void) {
  char path[128];
  snprintf(path, sizeof path, "%s/v1.db", tmpdir);
  sqlite3 *db;
  CHECK(sqlite3_open(path, &db) == SQLITE_OK);
  CHECK(sqlite3_exec(db,
                     "CREATE TABLE kv(key TEXT PRIMARY KEY, value BLOB NOT NULL);"
                     "INSERT INTO kv VALUES('login', 'old');"
                     "PRAGMA user_version = 1;",
                     NULL, NULL, NULL) == SQLITE_OK);
  sqlite3_close(db);
  cstate *s = NULL;
  CHECK_OK(cstate_open(path, &s));
  if (!s) return;
  CHECK_INT(cstate_version(s), CSTATE_SCHEMA_VERSION);
  buf_t v;
  buf_init(&v);
  CHECK_OK(cstate_get(s, K_LOGIN, &v)); /* version 1 data kept */
  CHECK_BYTES(buf_view(&v), BYTES("old", 3));
  cstate_kp_counts k = {.total = 9};
  CHECK_OK(cstate_kp_count(s, &k));
  CHECK_INT(k.total, 0);
  cstate_kp row = {.suite = S1, .created_at = 1, .not_after = 2};
  memset(row.ref, 7, sizeof row.ref);
  CHECK_OK(cstate_kp_put(s, &row, BYTES("secret", 6)));
  cstate_close(s);
  CHECK_OK(cstate_open(path, &s)); /* reopening a migrated file changes nothing */
  if (!s) return;
  CHECK_INT(cstate_version(s), CSTATE_SCHEMA_VERSION);
  CHECK_OK(cstate_kp_count(s, &k));
  CHECK_INT(k.total, 1);
  CHECK_INT(k.suite1, 1);
  cstate_kp got;
  CHECK_OK(cstate_kp_get(s, row.ref, &v, &got));
  CHECK_BYTES(buf_view(&v), BYTES("secret", 6));
  CHECK_INT(got.not_after, 2);
  CHECK_OK(cstate_kp_prune(s, 3)); /* expired */
  CHECK_ERR(cstate_kp_get(s, row.ref, &v, NULL), TSR_ENOTFOUND);
  buf_free(&v);
  cstate_close(s);
}

static void test_setup(void) {
  ann1 = new_client("ann1.db");
  ann2 = new_client("ann2.db");
  if (!ann1 || !ann2) return;
  tsr_register_params p = {.login = "ann", .password = PW, .device_name = "laptop"};
  CHECK_OK(tsr_account_register_sync(ann1, &p, NULL));
  char key[TSR_KEY_B64_SIZE], cert[TSR_CERT_B64_SIZE];
  CHECK_OK(tsr_device_key(ann2, key));
  CHECK_OK(tsr_device_certify(ann1, key, cert));
  CHECK_OK(tsr_session_login_sync(ann2, "ann", PW, "phone", cert, NULL));
  CHECK_OK(tsr_client_session(ann1, &ann1_info));
  CHECK_OK(tsr_client_session(ann2, &ann2_info));
  CHECK(make_user(&srv, &bob, "bob"));
}

static void test_identity(void) {
  if (!ann1 || !ann2) TEST_SKIP("no clients");
  /* The credential is account_id || device_id, raw. */
  uint8_t want[32], got[32], pk[32];
  size_t n = 0;
  CHECK_OK(b64_decode(want, 16, ann1_info.account_id, 22, B64_MODE_URL_NOPAD, &n));
  CHECK_OK(b64_decode(want + 16, 16, ann1_info.device_id, 22, B64_MODE_URL_NOPAD, &n));
  CHECK_OK(b64_decode(pk, 32, ann1_info.device_key, 43, B64_MODE_URL_NOPAD, &n));
  CHECK_OK(tsr_device_mls_credential(ann1, got));
  CHECK(memcmp(got, want, 32) == 0);
  for (int i = 0; i < 2; i++) {
    group_identity *id = NULL;
    CHECK_OK(client_mls_identity(ann1, i ? S3 : S1, &id));
    if (!id) continue;
    CHECK_INT(id->suite->id, i ? S3 : S1);
    CHECK_BYTES(buf_view(&id->name), BYTES(want, 32));
    CHECK_BYTES(BYTES(id->sig.pk, 32), BYTES(pk, 32)); /* the device key */
    group_identity_free(id);
  }
  group_identity *bad = NULL;
  CHECK_ERR(client_mls_identity(ann1, 2, &bad), TSR_EINVAL);
  /* The second device: same account, its own device id and key. */
  uint8_t other[32];
  CHECK_OK(tsr_device_mls_credential(ann2, other));
  CHECK(memcmp(other, want, 16) == 0);
  CHECK(memcmp(other + 16, want + 16, 16) != 0);
  /* Not logged in: no identity, no calls. */
  tsr_client *x = new_client("nobody.db");
  if (!x) return;
  CHECK_ERR(tsr_device_mls_credential(x, got), TSR_ESTATE);
  CHECK_ERR(client_mls_identity(x, S1, &bad), TSR_ESTATE);
  CHECK_ERR(tsr_keypackages_replenish(x, S1, 0, NULL, NULL), TSR_ESTATE);
  CHECK_ERR(tsr_keypackages_status(x, NULL, NULL), TSR_ESTATE);
  tsr_client_free(x);
}

static void test_replenish(void) {
  if (!ann1 || !ann2) TEST_SKIP("no clients");
  CHECK_ERR(tsr_keypackages_replenish(ann1, 2, 0, NULL, NULL), TSR_EINVAL);
  CHECK_ERR(tsr_keypackages_replenish(ann1, S1, TSR_KEYPACKAGES_MAX + 1, NULL, NULL),
            TSR_EINVAL);
  counts k = status(ann1);
  CHECK_INT(k.available, 0);
  CHECK_INT(k.last_resort, 0);
  CHECK_INT(k.local, 0);
  CHECK_INT(k.local_lr, 0);
  k = replenish(ann1, S1, 3);
  CHECK_INT(k.available, 3);
  CHECK_INT(k.last_resort, 1);
  CHECK_INT(k.uploaded, 3);
  CHECK_INT(k.lr_uploaded, 1);
  CHECK_INT(k.local, 4); /* three and the last resort */
  CHECK_INT(k.local1, 4);
  CHECK_INT(k.local_lr, 1);
  /* Topping up makes only what is missing, and no second last resort. */
  k = replenish(ann1, S1, 5);
  CHECK_INT(k.available, 5);
  CHECK_INT(k.uploaded, 2);
  CHECK_INT(k.lr_uploaded, 0);
  CHECK_INT(k.local, 6);
  k = replenish(ann1, S1, 5);
  CHECK_INT(k.uploaded, 0);
  CHECK_INT(k.local, 6);
  /* The other device has its own stock and its own private parts. */
  k = replenish(ann2, S1, 2);
  CHECK_INT(k.available, 2);
  CHECK_INT(k.uploaded, 2);
  CHECK_INT(k.local, 3);
  k = status(ann1);
  CHECK_INT(k.available, 5);
  CHECK_INT(k.last_resort, 1);
  CHECK_INT(k.local, 6);
  CHECK_INT(k.local3, 0);
}

/* More than 100 missing: two uploads (the server takes 100 per call). */
static void test_batches(void) {
  tsr_client *c = new_client("cat.db");
  if (!c) return;
  tsr_register_params p = {.login = "cat", .password = PW, .device_name = "desk"};
  CHECK_OK(tsr_account_register_sync(c, &p, NULL));
  counts k = replenish(c, S3, 0); /* default target 100 */
  CHECK_INT(k.available, 100);
  CHECK_INT(k.uploaded, 100);
  k = replenish(c, S3, TSR_KEYPACKAGES_MAX);
  CHECK_INT(k.available, 200);
  CHECK_INT(k.uploaded, 100);
  CHECK_INT(k.local, 201);
  CHECK_INT(k.local3, 201);
  CHECK_INT(k.local1, 0);
  tsr_client_free(c);
}

/* The last-resort ref of suite in the state file at path (one expected). */
static bool lr_ref(const char *path, int suite, uint8_t ref[32]) {
  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL;
  bool ok = false;
  char sql[128];
  snprintf(sql, sizeof sql,
           "SELECT ref FROM kp_secrets WHERE last_resort = 1 AND suite = %d", suite);
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
      sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) == 32) {
    memcpy(ref, sqlite3_column_blob(st, 0), 32);
    ok = sqlite3_step(st) == SQLITE_DONE;
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return ok;
}

/* Counts and last resorts per suite: topping up suite 3 after suite 1
 * uploads suite 3's amount; the per-device limit (all suites together)
 * caps it; a last resort per suite, here and on the server. */
static void test_per_suite(void) {
  tsr_client *c = new_client("dora.db");
  if (!c) return;
  tsr_register_params p = {.login = "dora", .password = PW, .device_name = "tab"};
  CHECK_OK(tsr_account_register_sync(c, &p, NULL));
  counts k = replenish(c, S1, 150);
  CHECK_INT(k.available, 150);
  CHECK_INT(k.uploaded, 150);
  CHECK_INT(k.lr_uploaded, 1);
  /* Suite 3 has none yet: its target is reached with its own uploads. */
  k = replenish(c, S3, 30);
  CHECK_INT(k.available, 30);
  CHECK_INT(k.last_resort, 1);
  CHECK_INT(k.uploaded, 30);
  CHECK_INT(k.lr_uploaded, 1); /* a last resort of suite 3 as well */
  CHECK_INT(k.s_available[0], 150);
  CHECK_INT(k.s_available[1], 30);
  CHECK_INT(k.local1, 151);
  CHECK_INT(k.local3, 31);
  /* Both last resorts stay, on the server and here. */
  cstate_kp_counts lk = {0};
  CHECK_OK(cstate_kp_count(client_state(c), &lk));
  CHECK_INT(lk.last_resort, 2);
  CHECK_INT(lk.last_resort_unused1, 1);
  CHECK_INT(lk.last_resort_unused3, 1);
  k = status(c);
  CHECK_INT(k.available, 180); /* every suite together */
  CHECK_INT(k.last_resort, 1);
  CHECK_INT(k.s_available[0], 150);
  CHECK_INT(k.s_last_resort[0], 1);
  CHECK_INT(k.s_local[0], 151);
  CHECK_INT(k.s_local_lr[0], 1);
  CHECK_INT(k.s_available[1], 30);
  CHECK_INT(k.s_last_resort[1], 1);
  CHECK_INT(k.s_local[1], 31);
  CHECK_INT(k.s_local_lr[1], 1);
  CHECK_INT(k.local, 182);
  /* Suite 1 again: at target, nothing to do. */
  k = replenish(c, S1, 150);
  CHECK_INT(k.available, 150);
  CHECK_INT(k.uploaded, 0);
  CHECK_INT(k.lr_uploaded, 0);
  /* 150 of suite 3 would pass the device's 200: only the room (20) goes. */
  k = replenish(c, S3, 150);
  CHECK_INT(k.available, 50);
  CHECK_INT(k.uploaded, 20);
  CHECK_INT(k.lr_uploaded, 0);
  CHECK_INT(k.s_available[0], 150);
  /* A used suite-3 last resort is replaced in suite 3 only. */
  char path[128];
  snprintf(path, sizeof path, "%s/dora.db", tmpdir);
  uint8_t ref3[32], ref1[32], ref3b[32], ref1b[32];
  CHECK(lr_ref(path, S1, ref1));
  CHECK(lr_ref(path, S3, ref3));
  uint8_t *sec = NULL;
  size_t len = 0;
  CHECK_OK(tsr_keypackage_secret_take(c, ref3, &sec, &len));
  tsr_secret_free(sec, len);
  k = status(c);
  CHECK_INT(k.s_local_lr[0], 1);
  CHECK_INT(k.s_local_lr[1], 0);
  k = replenish(c, S1, 150); /* suite 1's own last resort is unused: kept */
  CHECK_INT(k.lr_uploaded, 0);
  k = replenish(c, S3, 50);
  CHECK_INT(k.uploaded, 0);
  CHECK_INT(k.lr_uploaded, 1);
  CHECK_INT(k.s_local_lr[0], 1);
  CHECK_INT(k.s_local_lr[1], 1);
  CHECK_INT(k.s_last_resort[0], 1);
  CHECK_INT(k.s_last_resort[1], 1);
  CHECK(lr_ref(path, S1, ref1b));
  CHECK(lr_ref(path, S3, ref3b));
  CHECK(memcmp(ref1, ref1b, 32) == 0);
  CHECK(memcmp(ref3, ref3b, 32) != 0);
  tsr_client_free(c);
}

static void test_claim_take_join(void) {
  if (!ann1 || !ann2) TEST_SKIP("no clients");
  buf_t kp1, kp2, welcome;
  buf_init(&kp1);
  buf_init(&kp2);
  buf_init(&welcome);
  /* One KeyPackage per device of ann's. */
  CHECK_INT(claim_ann(), 200);
  CHECK(claimed_kp(ann1_info.device_id, &kp1));
  CHECK(claimed_kp(ann2_info.device_id, &kp2));
  uint8_t ref1[32], ref2[32];
  CHECK_OK(tsr_keypackage_ref(kp1.ptr, kp1.len, ref1));
  CHECK_OK(tsr_keypackage_ref(kp2.ptr, kp2.len, ref2));
  CHECK(memcmp(ref1, ref2, 32) != 0);
  uint8_t *sec = NULL, *again = NULL;
  size_t len = 0, len2 = 0;
  /* A device holds only its own private parts. */
  CHECK_ERR(tsr_keypackage_secret_take(ann2, ref1, &sec, &len), TSR_ENOTFOUND);
  CHECK_ERR(tsr_keypackage_secret_take(ann1, ref2, &sec, &len), TSR_ENOTFOUND);
  CHECK(sec == NULL);

  /* Bob adds ann's first device; its private part is taken once. */
  mls_group *bg = bob_adds(buf_view(&kp1), &welcome);
  CHECK_OK(tsr_keypackage_secret_take(ann1, ref1, &sec, &len));
  CHECK_ERR(tsr_keypackage_secret_take(ann1, ref1, &again, &len2), TSR_ENOTFOUND);
  CHECK_ERR(
      tsr_keypackage_secret_take_welcome(ann1, welcome.ptr, welcome.len, &again, &len2),
      TSR_ENOTFOUND);
  CHECK(again == NULL);
  if (sec && bg) join_and_compare(ann1, BYTES(sec, len), buf_view(&welcome), bg);
  tsr_secret_free(sec, len);
  sec = NULL;
  group_free(bg);
  counts k = status(ann1);
  CHECK_INT(k.available, 4); /* one claimed */
  CHECK_INT(k.local, 5);     /* one taken */

  /* The second device finds its private part from the Welcome itself. */
  buf_reset(&welcome);
  bg = bob_adds(buf_view(&kp2), &welcome);
  CHECK_OK(
      tsr_keypackage_secret_take_welcome(ann2, welcome.ptr, welcome.len, &sec, &len));
  CHECK_ERR(
      tsr_keypackage_secret_take_welcome(ann2, welcome.ptr, welcome.len, &again, &len2),
      TSR_ENOTFOUND);
  CHECK_ERR(tsr_keypackage_secret_take(ann2, ref2, &again, &len2), TSR_ENOTFOUND);
  if (sec && bg) join_and_compare(ann2, BYTES(sec, len), buf_view(&welcome), bg);
  tsr_secret_free(sec, len);
  group_free(bg);
  k = status(ann2);
  CHECK_INT(k.available, 1);
  CHECK_INT(k.local, 2);

  /* Not a Welcome; a ref nobody has. */
  CHECK_ERR(
      tsr_keypackage_secret_take_welcome(ann1, (const uint8_t *)"junk", 4, &sec, &len),
      TSR_EDECODE);
  uint8_t zero[32] = {0};
  CHECK_ERR(tsr_keypackage_secret_take(ann1, zero, &sec, &len), TSR_ENOTFOUND);
  buf_free(&kp1);
  buf_free(&kp2);
  buf_free(&welcome);
}

static void test_last_resort(void) {
  if (!ann1 || !ann2) TEST_SKIP("no clients");
  buf_t kp, lr, welcome;
  buf_init(&kp);
  buf_init(&lr);
  buf_init(&welcome);
  /* ann2 has one regular KeyPackage left, then only its last resort. */
  CHECK_INT(claim_ann(), 200);
  CHECK(claimed_kp(ann2_info.device_id, &kp));
  CHECK_INT(claim_ann(), 200);
  CHECK(claimed_kp(ann2_info.device_id, &lr));
  uint8_t ref[32];
  CHECK_OK(tsr_keypackage_ref(lr.ptr, lr.len, ref));
  counts k = status(ann2);
  CHECK_INT(k.available, 0);
  CHECK_INT(k.last_resort, 1);
  CHECK_INT(k.local_lr, 1);
  /* The last resort's private part serves every joiner until replaced. */
  uint8_t *a = NULL, *b = NULL;
  size_t la = 0, lb = 0;
  CHECK_OK(tsr_keypackage_secret_take(ann2, ref, &a, &la));
  CHECK_OK(tsr_keypackage_secret_take(ann2, ref, &b, &lb));
  CHECK(a && b && la == lb && memcmp(a, b, la) == 0);
  mls_group *bg = bob_adds(buf_view(&lr), &welcome);
  if (a && bg) join_and_compare(ann2, BYTES(a, la), buf_view(&welcome), bg);
  group_free(bg);
  tsr_secret_free(a, la);
  tsr_secret_free(b, lb);
  k = status(ann2);
  CHECK_INT(k.local_lr, 0); /* used */
  /* Replenishing replaces a used last resort, here and on the server. */
  k = replenish(ann2, S1, 1);
  CHECK_INT(k.uploaded, 1);
  CHECK_INT(k.lr_uploaded, 1);
  CHECK_INT(k.local_lr, 1);
  /* the new one, the new last resort, and the regular one claimed above
   * (no Welcome for it yet); the old last resort is gone */
  CHECK_INT(k.local, 3);
  CHECK_ERR(tsr_keypackage_secret_take(ann2, ref, &a, &la), TSR_ENOTFOUND);
  CHECK_INT(claim_ann(), 200); /* the regular one */
  CHECK_INT(claim_ann(), 200); /* the new last resort */
  CHECK(claimed_kp(ann2_info.device_id, &kp));
  uint8_t ref_new[32];
  CHECK_OK(tsr_keypackage_ref(kp.ptr, kp.len, ref_new));
  CHECK(memcmp(ref_new, ref, 32) != 0);
  CHECK_OK(tsr_keypackage_secret_take(ann2, ref_new, &a, &la));
  tsr_secret_free(a, la);
  buf_free(&kp);
  buf_free(&lr);
  buf_free(&welcome);
}

static void test_logout(void) {
  if (!ann2) TEST_SKIP("no client");
  cstate_kp_counts k = {0};
  CHECK_OK(cstate_kp_count(client_state(ann2), &k));
  CHECK(k.total > 0);
  CHECK_OK(tsr_session_logout_sync(ann2, NULL));
  CHECK_OK(cstate_kp_count(client_state(ann2), &k));
  CHECK_INT(k.total, 0);
  CHECK_ERR(tsr_keypackages_status(ann2, NULL, NULL), TSR_ESTATE);
  /* The server forgot the device's KeyPackages too. */
  CHECK_INT(claim_ann(), 200);
  CHECK_INT(
      cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(resp.json, "key_packages")), 1);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  snprintf(tmpdir, sizeof tmpdir, "/tmp/tsr-ckeys-XXXXXX");
  if (!mkdtemp(tmpdir) || tsr_client_global_init() != 0 || !find_binary()) {
    fprintf(stderr, "no temporary directory, crypto or tesserad (set TSR_BUILD)\n");
    printf("client_keys: 0 passed, 1 failed, 0 skipped\n");
    return 1;
  }
  static const char *const extra[] = {"--rate-per-account", "0", "--rate-per-address",
                                      "0", NULL};
  if (!server_start(&srv, "ckeys", true, "1", extra)) {
    fprintf(stderr, "tesserad did not start; log %s\n", srv.log);
    printf("client_keys: 0 passed, 1 failed, 0 skipped\n");
    return 1;
  }
  RUN(test_migration);
  RUN(test_setup);
  RUN(test_identity);
  RUN(test_replenish);
  RUN(test_batches);
  RUN(test_per_suite);
  RUN(test_claim_take_join);
  RUN(test_last_resort);
  RUN(test_logout);
  tsr_client_free(ann1);
  tsr_client_free(ann2);
  cJSON_Delete(resp.json);
  resp.json = NULL;
  server_stop(&srv, true);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", tmpdir);
  return test_report("client_keys");
}
