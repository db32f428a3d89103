/* Integration tests of the MLS KeyPackage directory (server/keypackages.h):
 * each case talks to a real tesserad (two workers, random port, temporary
 * data dir, the general request limits off so only the claim limit
 * counts) over HTTP, as docs/protocol.md describes the calls. KeyPackages
 * are real ones made with the MLS library from each device's own Ed25519
 * seed and a basic credential account_id || device_id. What is stored is
 * read from the SQLite file directly. Every wait is bounded by a deadline;
 * nothing sleeps to synchronise. */
#include <cjson/cJSON.h>
#include <signal.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mls/crypto.h"
#include "mls/group.h"
#include "mls/messages.h"
#include "proto/base64.h"
#include "server_harness.h"
#include "test.h"

#define KPB 2048 /* base64url of one KeyPackage, with room */
#define S1 MLS_SUITE_X25519_AES128GCM_SHA256_ED25519
#define S3 MLS_SUITE_X25519_CHACHA20POLY1305_SHA256_ED25519

static server srv;

/* ann has three devices: ann.s (first), ann2 and ann3. ben and cat claim;
 * dan is the rate limit's claimer; eve fills a device to its limit; fay
 * holds KeyPackages of both suites. */
static user ann, ben, cat, dan, eve, fay;
static session ann2, ann3;

/* ---- the database file ---- */

static long db_count(const char *sql) {
  char db[400];
  snprintf(db, sizeof db, "%s/tessera.db", srv.data);
  sqlite3 *h = NULL;
  sqlite3_stmt *st = NULL;
  long n = -1;
  if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
      sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW)
    n = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(h);
  return n;
}

/* Runs a write on the live database (the server's writers wait for it). */
static bool db_exec(const char *sql) {
  char db[400];
  snprintf(db, sizeof db, "%s/tessera.db", srv.data);
  sqlite3 *h = NULL;
  bool ok = sqlite3_open_v2(db, &h, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
            sqlite3_busy_timeout(h, DEADLINE_MS) == SQLITE_OK &&
            sqlite3_exec(h, sql, NULL, NULL, NULL) == SQLITE_OK;
  sqlite3_close(h);
  return ok;
}

/* base64url text -> X'hex' SQL literal. */
static void sql_blob(const char *b64s, char *out, size_t cap) {
  uint8_t raw[KPB];
  size_t got = 0;
  if (b64_decode(raw, sizeof raw, b64s, strlen(b64s), B64_MODE_URL_NOPAD, &got) != 0)
    got = 0;
  char hex[2 * KPB + 1];
  hex_encode(BYTES(raw, got), hex);
  snprintf(out, cap, "X'%s'", hex);
}

/* KeyPackage rows of a device: all (lr < 0), regular (0) or last resort (1). */
static long kp_rows(const session *s, int lr) {
  char dev[64], sql[256];
  sql_blob(s->device_id, dev, sizeof dev);
  snprintf(sql, sizeof sql, "SELECT count(*) FROM key_packages WHERE device_id = %s%s",
           dev,
           lr < 0    ? ""
           : lr == 0 ? " AND last_resort = 0"
                     : " AND last_resort = 1");
  return db_count(sql);
}

/* ---- KeyPackages made with the MLS library ---- */

static void enc(const uint8_t *p, size_t n, char *out, size_t cap) {
  size_t len = 0;
  if (b64_encode(out, cap, p, n, B64_MODE_URL_NOPAD, &len) != 0) len = 0;
  out[len] = '\0';
}

/* The MLSMessage(KeyPackage) bytes of a KeyPackage signed with seed for
 * the credential identity acc || dev (base64url ids), valid from now - 1 h
 * for lifetime seconds (0, 0: the library's defaults). */
static bool kp_raw(const uint8_t seed[32], const char *acc, const char *dev,
                   uint16_t suite, uint64_t now, uint64_t lifetime, buf_t *out) {
  uint8_t ident[32];
  size_t g1 = 0, g2 = 0;
  if (b64_decode(ident, 16, acc, strlen(acc), B64_MODE_URL_NOPAD, &g1) != 0 ||
      b64_decode(ident + 16, 16, dev, strlen(dev), B64_MODE_URL_NOPAD, &g2) != 0 ||
      g1 != 16 || g2 != 16)
    return false;
  mls_credential cred = {.credential_type = MLS_CREDENTIAL_BASIC,
                         .identity = BYTES(ident, 32)};
  buf_t cb;
  buf_init(&cb);
  msg_encode_credential(&cb, &cred);
  group_identity *id = NULL;
  kp_secret *sec = NULL;
  int rc = cb.err ? cb.err
                  : group_identity_from_seed(suite, BYTES(seed, 32), buf_view(&cb), &id);
  if (rc == 0) rc = kp_create(id, now, lifetime, out, &sec);
  kp_secret_free(sec);
  group_identity_free(id);
  buf_free(&cb);
  return rc == 0;
}

/* A good KeyPackage of session s's device, base64url into out (KPB). */
static void make_kp(const session *s, uint16_t suite, char *out) {
  buf_t b;
  buf_init(&b);
  out[0] = '\0';
  CHECK(kp_raw(s->device_seed, s->account_id, s->device_id, suite, 0, 0, &b));
  enc(b.ptr, b.len, out, KPB);
  buf_free(&b);
}

/* ---- calls ---- */

/* POST /v1/keypackages with kps[0..n) and an optional last resort. */
static int upload(const session *s, char (*kps)[KPB], size_t n, const char *lr) {
  buf_t b;
  buf_init(&b);
  buf_append(&b, "{\"key_packages\":[", 17);
  for (size_t i = 0; i < n; i++) {
    if (i) buf_append(&b, ",", 1);
    buf_append(&b, "\"", 1);
    buf_append(&b, kps[i], strlen(kps[i]));
    buf_append(&b, "\"", 1);
  }
  buf_append(&b, "]", 1);
  if (lr) {
    buf_append(&b, ",\"last_resort\":\"", 16);
    buf_append(&b, lr, strlen(lr));
    buf_append(&b, "\"", 1);
  }
  buf_append(&b, "}", 2); /* with the NUL */
  int st = b.err ? 0 : call(srv.port, "POST", "/v1/keypackages", s->token, (char *)b.ptr);
  buf_free(&b);
  return st;
}

/* The same with one KeyPackage given as raw JSON (any value). */
static int upload_json(const session *s, const char *body) {
  return call(srv.port, "POST", "/v1/keypackages", s->token, body);
}

static int claim(const session *s, const char *account_id, int suite) {
  char body[128];
  snprintf(body, sizeof body, "{\"account_id\":\"%s\",\"suite\":%d}", account_id, suite);
  return call(srv.port, "POST", "/v1/keypackages/claim", s->token, body);
}

static long num(const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(resp.json, key);
  return cJSON_IsNumber(v) ? (long)v->valuedouble : -1;
}

static int flag(const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(resp.json, key);
  return cJSON_IsBool(v) ? cJSON_IsTrue(v) : -1;
}

/* by_suite.<suite>.<key> of the last answer: a number, or -1. */
static long suite_num(int suite, const char *key) {
  char k[8];
  snprintf(k, sizeof k, "%d", suite);
  const cJSON *b = cJSON_GetObjectItemCaseSensitive(resp.json, "by_suite");
  const cJSON *v =
      cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(b, k), key);
  return cJSON_IsNumber(v) ? (long)v->valuedouble : -1;
}

/* The same for a boolean: 0, 1, or -1. */
static int suite_flag(int suite, const char *key) {
  char k[8];
  snprintf(k, sizeof k, "%d", suite);
  const cJSON *b = cJSON_GetObjectItemCaseSensitive(resp.json, "by_suite");
  const cJSON *v =
      cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(b, k), key);
  return cJSON_IsBool(v) ? cJSON_IsTrue(v) : -1;
}

/* Members of the last answer's top-level object. */
static int n_fields(void) { return cJSON_GetArraySize(resp.json); }

/* GET /v1/keypackages?suite=<q> (q NULL: without a query). */
static int get_counts(const session *s, const char *q) {
  char path[96];
  snprintf(path, sizeof path, "/v1/keypackages%s%s", q ? "?suite=" : "", q ? q : "");
  return call(srv.port, "GET", path, s->token, NULL);
}

static int n_claimed(void) {
  return cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(resp.json, "key_packages"));
}

static int n_missing(void) {
  return cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(resp.json, "missing"));
}

/* The KeyPackage the last claim handed out for device, or "". */
static const char *claimed_for(const char *device_id) {
  const cJSON *e;
  cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(resp.json, "key_packages")) {
    if (strcmp(json_str(e, "device_id"), device_id) == 0)
      return json_str(e, "key_package");
  }
  return "";
}

static bool is_missing(const char *device_id) {
  return count_in("missing", "", device_id) == 1;
}

static bool msg_has(const char *s) {
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(resp.json, "error");
  return strstr(json_str(e, "message"), s) != NULL;
}

/* ---- cases ---- */

static char ann2_kp[6][KPB], ann2_lr[KPB], ann3_kp[2][KPB];

static void test_setup(void) {
  CHECK(make_user(&srv, &ann, "ann"));
  CHECK(make_user(&srv, &ben, "ben"));
  CHECK(make_user(&srv, &cat, "cat"));
  CHECK(make_user(&srv, &dan, "dan"));
  CHECK(make_user(&srv, &eve, "eve"));
  CHECK(make_user(&srv, &fay, "fay"));
  CHECK_INT(do_login(srv.port, "ann", PW, &ann.id, &ann2), 201);
  CHECK_INT(do_login(srv.port, "ann", PW, &ann.id, &ann3), 201);
  /* The harness kept each device's seed: its public key is the device's. */
  CHECK_INT(call(srv.port, "GET", "/v1/devices", ann.s.token, NULL), 200);
  uint8_t pk[32], sk[64];
  crypto_sign_seed_keypair(pk, sk, ann2.device_seed);
  char k[64];
  enc(pk, 32, k, sizeof k);
  CHECK_INT(count_in("devices", "signature_key", k), 1);
}

static void test_upload_and_count(void) {
  CHECK_INT(call(srv.port, "GET", "/v1/keypackages", ann2.token, NULL), 200);
  CHECK_INT(num("available"), 0);
  CHECK_INT(flag("last_resort"), 0);
  for (int i = 0; i < 3; i++) make_kp(&ann2, S1, ann2_kp[i]);
  char first_lr[KPB];
  make_kp(&ann2, S1, first_lr);
  CHECK_INT(upload(&ann2, ann2_kp, 2, first_lr), 200);
  CHECK_INT(num("available"), 2);
  CHECK_INT(flag("last_resort"), 1);
  CHECK_INT(kp_rows(&ann2, 0), 2);
  CHECK_INT(kp_rows(&ann2, 1), 1);
  /* Duplicates, stored or within the call, are ignored. */
  char again[3][KPB];
  memcpy(again[0], ann2_kp[0], KPB);
  memcpy(again[1], ann2_kp[2], KPB);
  memcpy(again[2], ann2_kp[2], KPB);
  CHECK_INT(upload(&ann2, again, 3, NULL), 200);
  CHECK_INT(num("available"), 3);
  CHECK_INT(flag("last_resort"), 1);
  CHECK_INT(kp_rows(&ann2, 0), 3);
  /* A new last resort replaces the old one (a call may carry only that). */
  make_kp(&ann2, S1, ann2_lr);
  CHECK_INT(upload_json(&ann2, "{\"key_packages\":[]}"), 400);
  char body[KPB + 64];
  snprintf(body, sizeof body, "{\"last_resort\":\"%s\"}", ann2_lr);
  CHECK_INT(upload_json(&ann2, body), 200);
  CHECK_INT(num("available"), 3);
  CHECK_INT(flag("last_resort"), 1);
  CHECK_INT(kp_rows(&ann2, 1), 1);
  char sql[2 * KPB + 512], blob[2 * KPB + 8];
  sql_blob(ann2_lr, blob, sizeof blob);
  snprintf(sql, sizeof sql,
           "SELECT count(*) FROM key_packages WHERE last_resort = 1 AND body = %s", blob);
  CHECK_INT(db_count(sql), 1);
  /* The row holds what was uploaded, for that account, device and suite. */
  sql_blob(ann2_kp[1], blob, sizeof blob);
  char dev[64], acc[64];
  sql_blob(ann2.device_id, dev, sizeof dev);
  sql_blob(ann2.account_id, acc, sizeof acc);
  snprintf(sql, sizeof sql,
           "SELECT count(*) FROM key_packages WHERE body = %s AND device_id = %s AND"
           " account_id = %s AND suite = 1 AND length(ref) = 32 AND not_after > %lld",
           blob, dev, acc, (long long)time(NULL) + 80 * 86400);
  CHECK_INT(db_count(sql), 1);
  CHECK_INT(call(srv.port, "GET", "/v1/keypackages", ann2.token, NULL), 200);
  CHECK_INT(num("available"), 3);
  CHECK_INT(flag("last_resort"), 1);
  /* Another device's count is its own. */
  CHECK_INT(call(srv.port, "GET", "/v1/keypackages", ann3.token, NULL), 200);
  CHECK_INT(num("available"), 0);
  CHECK_INT(flag("last_resort"), 0);
}

/* Each KeyPackage is handed out once, oldest first; then the last resort,
 * again and again. */
static void test_claim_once(void) {
  /* Six stored; make their age explicit, against the upload order:
   * ann2_kp[5] oldest, ..., [0] newest (a wrong order passes by chance
   * once in 720 runs). */
  for (int i = 3; i < 6; i++) make_kp(&ann2, S1, ann2_kp[i]);
  CHECK_INT(upload(&ann2, ann2_kp + 3, 3, NULL), 200);
  CHECK_INT(num("available"), 6);
  for (int i = 0; i < 6; i++) {
    char sql[2 * KPB + 128], blob[2 * KPB + 8];
    sql_blob(ann2_kp[i], blob, sizeof blob);
    snprintf(sql, sizeof sql, "UPDATE key_packages SET created_at = %d WHERE body = %s",
             1000 - i, blob);
    CHECK(db_exec(sql));
  }
  for (int i = 5; i >= 0; i--) {
    CHECK_INT(claim(&ben.s, ann.s.account_id, S1), 200);
    CHECK(strcmp(claimed_for(ann2.device_id), ann2_kp[i]) == 0);
    CHECK_INT(kp_rows(&ann2, 0), i);
    /* ann's other devices have nothing: missing; the answer has all three. */
    CHECK(is_missing(ann.s.device_id));
    CHECK(is_missing(ann3.device_id));
    CHECK_INT(n_claimed(), 1);
    CHECK_INT(n_missing(), 2);
  }
  for (int i = 0; i < 3; i++) {
    CHECK_INT(claim(&ben.s, ann.s.account_id, S1), 200);
    CHECK(strcmp(claimed_for(ann2.device_id), ann2_lr) == 0);
    CHECK_INT(kp_rows(&ann2, 1), 1);
  }
  CHECK_INT(call(srv.port, "GET", "/v1/keypackages", ann2.token, NULL), 200);
  CHECK_INT(num("available"), 0);
  CHECK_INT(flag("last_resort"), 1);
  /* Bad claims. */
  CHECK_INT(claim(&ben.s, ann.s.account_id, 2), 400);
  CHECK(err_is("bad_request"));
  CHECK_INT(claim(&ben.s, "not-an-id", 1), 400);
  CHECK_INT(call(srv.port, "POST", "/v1/keypackages/claim", ben.s.token,
                 "{\"account_id\":\"AAAAAAAAAAAAAAAAAAAAAA\",\"suite\":\"1\"}"),
            400);
  CHECK_INT(claim(&ben.s, "AAAAAAAAAAAAAAAAAAAAAA", 1), 404);
  CHECK(err_is("not_found"));
  CHECK_INT(call(srv.port, "POST", "/v1/keypackages/other", ben.s.token, "{}"), 404);
  CHECK_INT(call(srv.port, "DELETE", "/v1/keypackages", ben.s.token, NULL), 405);
}

/* A device adds its account's other devices: never itself. */
static void test_claim_own_account(void) {
  char kp[1][KPB];
  make_kp(&ann.s, S1, kp[0]);
  CHECK_INT(upload(&ann.s, kp, 1, NULL), 200);
  CHECK_INT(claim(&ann.s, ann.s.account_id, S1), 200);
  CHECK(strcmp(claimed_for(ann.s.device_id), "") == 0);
  CHECK(!is_missing(ann.s.device_id));
  CHECK(strcmp(claimed_for(ann2.device_id), ann2_lr) == 0);
  CHECK(is_missing(ann3.device_id));
  CHECK_INT(n_claimed() + n_missing(), 2);
  CHECK_INT(kp_rows(&ann.s, 0), 1);
  /* ann2 claiming gets ann's first device's KeyPackage. */
  CHECK_INT(claim(&ann2, ann.s.account_id, S1), 200);
  CHECK(strcmp(claimed_for(ann.s.device_id), kp[0]) == 0);
  CHECK(strcmp(claimed_for(ann2.device_id), "") == 0);
  CHECK_INT(kp_rows(&ann.s, 0), 0);
}

static void test_suite_filter(void) {
  for (int i = 0; i < 2; i++) make_kp(&ann3, S3, ann3_kp[i]);
  CHECK_INT(upload(&ann3, ann3_kp, 2, NULL), 200);
  CHECK_INT(num("available"), 2);
  CHECK_INT(claim(&ben.s, ann.s.account_id, S1), 200);
  CHECK(is_missing(ann3.device_id)); /* it has suite 3 only */
  CHECK_INT(kp_rows(&ann3, 0), 2);
  CHECK_INT(claim(&ben.s, ann.s.account_id, S3), 200);
  CHECK(strcmp(claimed_for(ann3.device_id), "") != 0);
  CHECK(strcmp(claimed_for(ann3.device_id), ann3_kp[0]) == 0 ||
        strcmp(claimed_for(ann3.device_id), ann3_kp[1]) == 0);
  CHECK(is_missing(ann2.device_id)); /* its last resort is suite 1 */
  CHECK_INT(kp_rows(&ann3, 0), 1);
  CHECK_INT(kp_rows(&ann2, 1), 1);
}

/* Rows of session s's device of one suite that hold the KeyPackage kp
 * (base64url) as a last resort (lr 1) or a regular one (0). */
static long kp_stored(const session *s, int suite, const char *kp, int lr) {
  char dev[64], blob[2 * KPB + 8], sql[2 * KPB + 256];
  sql_blob(s->device_id, dev, sizeof dev);
  sql_blob(kp, blob, sizeof blob);
  snprintf(sql, sizeof sql,
           "SELECT count(*) FROM key_packages WHERE device_id = %s AND suite = %d AND"
           " last_resort = %d AND body = %s",
           dev, suite, lr, blob);
  return db_count(sql);
}

/* Counts per suite (GET ?suite=N, and by_suite without it, and in the
 * upload's answer); one last resort per suite, replaced only in its suite. */
static void test_per_suite_counts(void) {
  const session *f = &fay.s;
  CHECK_INT(get_counts(f, NULL), 200);
  CHECK_INT(num("available"), 0);
  CHECK_INT(flag("last_resort"), 0);
  CHECK_INT(suite_num(1, "available"), 0);
  CHECK_INT(suite_flag(1, "last_resort"), 0);
  CHECK_INT(suite_num(3, "available"), 0);
  CHECK_INT(suite_flag(3, "last_resort"), 0);
  CHECK_INT(get_counts(f, "3"), 200);
  CHECK_INT(num("available"), 0);
  CHECK_INT(flag("last_resort"), 0);
  CHECK_INT(n_fields(), 2); /* no by_suite for one suite */

  /* Three of suite 1 with a suite-1 last resort, then two of suite 3. */
  char kp1[3][KPB], kp3[2][KPB], lr1[KPB], lr1b[KPB], lr3[KPB], lr3b[KPB];
  for (int i = 0; i < 3; i++) make_kp(f, S1, kp1[i]);
  for (int i = 0; i < 2; i++) make_kp(f, S3, kp3[i]);
  make_kp(f, S1, lr1);
  make_kp(f, S1, lr1b);
  make_kp(f, S3, lr3);
  make_kp(f, S3, lr3b);
  CHECK_INT(upload(f, kp1, 3, lr1), 200);
  CHECK_INT(num("available"), 3);
  CHECK_INT(flag("last_resort"), 1);
  CHECK_INT(suite_num(1, "available"), 3);
  CHECK_INT(suite_flag(1, "last_resort"), 1);
  CHECK_INT(suite_num(3, "available"), 0);
  CHECK_INT(suite_flag(3, "last_resort"), 0);
  CHECK_INT(upload(f, kp3, 2, NULL), 200);
  CHECK_INT(num("available"), 5); /* every suite together */
  CHECK_INT(flag("last_resort"), 1);
  CHECK_INT(suite_num(1, "available"), 3);
  CHECK_INT(suite_num(3, "available"), 2);
  CHECK_INT(suite_flag(3, "last_resort"), 0);
  CHECK_INT(get_counts(f, "1"), 200);
  CHECK_INT(num("available"), 3);
  CHECK_INT(flag("last_resort"), 1);
  CHECK_INT(get_counts(f, "3"), 200);
  CHECK_INT(num("available"), 2);
  CHECK_INT(flag("last_resort"), 0);
  CHECK_INT(get_counts(f, NULL), 200);
  CHECK_INT(num("available"), 5);
  CHECK_INT(flag("last_resort"), 1);
  CHECK_INT(suite_num(1, "available"), 3);
  CHECK_INT(suite_flag(1, "last_resort"), 1);
  CHECK_INT(suite_num(3, "available"), 2);
  CHECK_INT(suite_flag(3, "last_resort"), 0);
  /* Other parameters are ignored; a bad suite is refused. */
  CHECK_INT(call(srv.port, "GET", "/v1/keypackages?x=3", f->token, NULL), 200);
  CHECK_INT(num("available"), 5);
  CHECK_INT(suite_num(3, "available"), 2);
  const char *bad[] = {"2", "", "x", "01", "13", "1%00", "+1", "-3"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    CHECK_INT(get_counts(f, bad[i]), 400);
    CHECK(err_is("bad_request"));
  }

  /* A suite-3 last resort joins the suite-1 one. */
  char body[2 * KPB];
  snprintf(body, sizeof body, "{\"last_resort\":\"%s\"}", lr3);
  CHECK_INT(upload_json(f, body), 200);
  CHECK_INT(suite_flag(1, "last_resort"), 1);
  CHECK_INT(suite_flag(3, "last_resort"), 1);
  CHECK_INT(kp_rows(f, 1), 2);
  CHECK_INT(kp_stored(f, 1, lr1, 1), 1);
  CHECK_INT(kp_stored(f, 3, lr3, 1), 1);
  /* A new suite-3 one replaces only the suite-3 one. */
  snprintf(body, sizeof body, "{\"last_resort\":\"%s\"}", lr3b);
  CHECK_INT(upload_json(f, body), 200);
  CHECK_INT(kp_rows(f, 1), 2);
  CHECK_INT(kp_stored(f, 3, lr3, 1), 0);
  CHECK_INT(kp_stored(f, 3, lr3b, 1), 1);
  CHECK_INT(kp_stored(f, 1, lr1, 1), 1);
  /* And a new suite-1 one only the suite-1 one. */
  CHECK_INT(upload(f, NULL, 0, lr1b), 200);
  CHECK_INT(suite_flag(1, "last_resort"), 1);
  CHECK_INT(suite_flag(3, "last_resort"), 1);
  CHECK_INT(kp_rows(f, 1), 2);
  CHECK_INT(kp_stored(f, 1, lr1, 1), 0);
  CHECK_INT(kp_stored(f, 1, lr1b, 1), 1);
  CHECK_INT(kp_stored(f, 3, lr3b, 1), 1);
  CHECK_INT(kp_rows(f, 0), 5); /* the regular ones untouched */
  CHECK_INT(get_counts(f, "3"), 200);
  CHECK_INT(num("available"), 2);
  CHECK_INT(flag("last_resort"), 1);

  /* Claims of suite 3 while suite 1 has plenty: its two regular ones, then
   * its suite-3 last resort, again and again; suite 1 is not touched. */
  for (int i = 0; i < 2; i++) {
    CHECK_INT(claim(&ben.s, f->account_id, S3), 200);
    const char *got = claimed_for(f->device_id);
    CHECK(strcmp(got, kp3[0]) == 0 || strcmp(got, kp3[1]) == 0);
  }
  CHECK_INT(kp_rows(f, 0), 3);
  for (int i = 0; i < 2; i++) {
    CHECK_INT(claim(&ben.s, f->account_id, S3), 200);
    CHECK(!is_missing(f->device_id));
    CHECK(strcmp(claimed_for(f->device_id), lr3b) == 0);
  }
  CHECK_INT(kp_stored(f, 3, lr3b, 1), 1);
  CHECK_INT(get_counts(f, NULL), 200);
  CHECK_INT(num("available"), 3);
  CHECK_INT(suite_num(1, "available"), 3);
  CHECK_INT(suite_num(3, "available"), 0);
  CHECK_INT(suite_flag(3, "last_resort"), 1);
  /* A suite-1 claim still gets a regular suite-1 one, not a last resort. */
  CHECK_INT(claim(&ben.s, f->account_id, S1), 200);
  const char *got = claimed_for(f->device_id);
  CHECK(strcmp(got, kp1[0]) == 0 || strcmp(got, kp1[1]) == 0 || strcmp(got, kp1[2]) == 0);
  CHECK_INT(get_counts(f, "1"), 200);
  CHECK_INT(num("available"), 2);
  CHECK_INT(flag("last_resort"), 1);
}

/* One refused upload: [a good one, bad] is 400 naming index 1 and stores
 * nothing. */
static void refused(const char *bad, const char *why) {
  long before = kp_rows(&ann2, -1);
  char kps[2][KPB];
  make_kp(&ann2, S1, kps[0]);
  snprintf(kps[1], KPB, "%s", bad);
  CHECK_INT(upload(&ann2, kps, 2, NULL), 400);
  CHECK(err_is("bad_request"));
  CHECK(msg_has("key_packages[1]"));
  if (!msg_has(why)) fprintf(stderr, "  (message: %s)\n", resp.body);
  CHECK(msg_has(why));
  CHECK_INT(kp_rows(&ann2, -1), before);
}

/* Raw bytes -> base64url into out (KPB). */
static void raw_b64(const buf_t *b, char *out) { enc(b->ptr, b->len, out, KPB); }

static void test_upload_refusals(void) {
  char bad[KPB];
  buf_t b;
  buf_init(&b);
  uint8_t other_seed[32];
  randombytes_buf(other_seed, sizeof other_seed);
  /* Signed by another key (self-consistent, but not the device's). */
  CHECK(kp_raw(other_seed, ann2.account_id, ann2.device_id, S1, 0, 0, &b));
  raw_b64(&b, bad);
  refused(bad, "signature key");
  /* The device's key, but the credential of another device, or account. */
  buf_reset(&b);
  CHECK(kp_raw(ann2.device_seed, ann2.account_id, ann3.device_id, S1, 0, 0, &b));
  raw_b64(&b, bad);
  refused(bad, "credential");
  buf_reset(&b);
  CHECK(kp_raw(ann2.device_seed, ben.s.account_id, ann2.device_id, S1, 0, 0, &b));
  raw_b64(&b, bad);
  refused(bad, "credential");
  /* Expired, and not valid yet. */
  uint64_t now = (uint64_t)time(NULL);
  buf_reset(&b);
  CHECK(kp_raw(ann2.device_seed, ann2.account_id, ann2.device_id, S1, now - 10 * 86400,
               86400, &b));
  raw_b64(&b, bad);
  refused(bad, "lifetime");
  buf_reset(&b);
  CHECK(kp_raw(ann2.device_seed, ann2.account_id, ann2.device_id, S1, now + 10 * 86400,
               86400, &b));
  raw_b64(&b, bad);
  refused(bad, "lifetime");
  /* A good one altered: signature, truncation, suite 2, bare KeyPackage. */
  buf_reset(&b);
  CHECK(kp_raw(ann2.device_seed, ann2.account_id, ann2.device_id, S1, 0, 0, &b));
  CHECK(b.len > 100 && b.ptr[6] == 0 && b.ptr[7] == 1); /* MLSMessage, suite 1 */
  b.ptr[b.len - 1] ^= 1;
  raw_b64(&b, bad);
  refused(bad, "signature does not verify");
  b.ptr[b.len - 1] ^= 1;
  enc(b.ptr, b.len - 10, bad, KPB);
  refused(bad, "MLSMessage");
  b.ptr[7] = 2;
  raw_b64(&b, bad);
  refused(bad, "cipher suite");
  b.ptr[7] = 1;
  enc(b.ptr + 4, b.len - 4, bad, KPB);
  refused(bad, "MLSMessage");
  /* Garbage, bad base64url, base64 with padding, too large. */
  uint8_t junk[300];
  randombytes_buf(junk, sizeof junk);
  enc(junk, sizeof junk, bad, KPB);
  refused(bad, "MLSMessage");
  refused("not*base64", "base64url");
  refused("", "MLSMessage");
  raw_b64(&b, bad);
  strcat(bad, "==");
  refused(bad, "base64url");
  buf_free(&b);

  /* Other shapes, nothing stored either. */
  long before = kp_rows(&ann2, -1);
  char good[KPB], body[2 * KPB];
  make_kp(&ann2, S1, good);
  snprintf(body, sizeof body, "{\"key_packages\":[\"%s\", 7]}", good);
  CHECK_INT(upload_json(&ann2, body), 400);
  CHECK(msg_has("key_packages[1]"));
  snprintf(body, sizeof body, "{\"key_packages\":[\"%s\"],\"last_resort\":\"AAAA\"}",
           good);
  CHECK_INT(upload_json(&ann2, body), 400);
  CHECK(msg_has("last_resort"));
  snprintf(body, sizeof body, "{\"key_packages\":\"%s\"}", good);
  CHECK_INT(upload_json(&ann2, body), 400);
  CHECK_INT(upload_json(&ann2, "{}"), 400);
  CHECK_INT(upload_json(&ann2, "{\"key_packages\":["), 400);
  CHECK_INT(upload_json(&ann2, NULL), 400);
  CHECK_INT(kp_rows(&ann2, -1), before);

  /* More than 100 in one call, every one of them good. */
  static char many[101][KPB];
  for (int i = 0; i < 101; i++) make_kp(&ann2, S1, many[i]);
  CHECK_INT(upload(&ann2, many, 101, NULL), 400);
  CHECK(msg_has("at most 100"));
  CHECK_INT(kp_rows(&ann2, -1), before);
  CHECK_INT(upload(&ann2, many, 100, NULL), 200); /* 100 is fine */
  CHECK_INT(num("available"), 100);
  CHECK_INT(kp_rows(&ann2, 0), 100);
}

/* A device holds at most 200 regular KeyPackages; the last resort is apart. */
static void test_device_limit(void) {
  static char kps[100][KPB];
  for (int round = 0; round < 2; round++) {
    for (int i = 0; i < 100; i++) make_kp(&eve.s, S1, kps[i]);
    CHECK_INT(upload(&eve.s, kps, 100, NULL), 200);
    CHECK_INT(num("available"), 100 * (round + 1));
  }
  char one[2][KPB], lr[KPB];
  make_kp(&eve.s, S1, one[0]);
  make_kp(&eve.s, S1, one[1]);
  CHECK_INT(upload(&eve.s, one, 1, NULL), 409);
  CHECK(err_is("too_many_key_packages"));
  CHECK_INT(kp_rows(&eve.s, 0), 200);
  /* Duplicates only: nothing new, fine. */
  CHECK_INT(upload(&eve.s, kps, 3, NULL), 200);
  CHECK_INT(num("available"), 200);
  /* A last resort does not count; with one more regular one it is refused
   * as a whole. */
  make_kp(&eve.s, S1, lr);
  CHECK_INT(upload(&eve.s, one, 1, lr), 409);
  CHECK_INT(kp_rows(&eve.s, 1), 0);
  CHECK_INT(upload(&eve.s, NULL, 0, lr), 200);
  CHECK_INT(flag("last_resort"), 1);
  CHECK_INT(kp_rows(&eve.s, -1), 201);
  /* One claimed: room for one again. */
  CHECK_INT(claim(&ben.s, eve.s.account_id, S1), 200);
  CHECK_INT(upload(&eve.s, one, 2, NULL), 409);
  CHECK_INT(upload(&eve.s, one, 1, NULL), 200);
  CHECK_INT(num("available"), 200);
  /* The limit is per device, every suite together: no room for suite 3
   * either, but a suite-3 last resort is apart too. */
  char s3[1][KPB], lr3[KPB];
  make_kp(&eve.s, S3, s3[0]);
  make_kp(&eve.s, S3, lr3);
  CHECK_INT(upload(&eve.s, s3, 1, NULL), 409);
  CHECK(err_is("too_many_key_packages"));
  CHECK_INT(upload(&eve.s, NULL, 0, lr3), 200);
  CHECK_INT(num("available"), 200);
  CHECK_INT(suite_num(1, "available"), 200);
  CHECK_INT(suite_num(3, "available"), 0);
  CHECK_INT(suite_flag(3, "last_resort"), 1);
  CHECK_INT(kp_rows(&eve.s, 1), 2);
}

/* Claims racing on both workers still hand each KeyPackage out once. */
static void test_concurrent_claims(void) {
  enum { N = 16 };
  static reader rd[N];
  static http_resp out[N];
  long before = kp_rows(&eve.s, 0);
  CHECK(before >= N);
  char body[128], req[512];
  snprintf(body, sizeof body, "{\"account_id\":\"%s\",\"suite\":1}", eve.s.account_id);
  snprintf(
      req, sizeof req,
      "POST /v1/keypackages/claim HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n"
      "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
      ben.s.token, strlen(body), body);
  for (int i = 0; i < N; i++) {
    rd[i].len = 0;
    rd[i].fd = tcp_connect(srv.port);
    CHECK(rd[i].fd >= 0);
  }
  for (int i = 0; i < N; i++) CHECK(send_str(rd[i].fd, req));
  for (int i = 0; i < N; i++) {
    CHECK(read_response(&rd[i], &out[i]));
    CHECK_INT(out[i].status, 200);
    close(rd[i].fd);
  }
  for (int i = 0; i < N; i++) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(out[i].json, "key_packages");
    CHECK_INT(cJSON_GetArraySize(a), 1);
    const char *kp = json_str(cJSON_GetArrayItem(a, 0), "key_package");
    CHECK(strlen(kp) > 100);
    for (int j = 0; j < i; j++) {
      const cJSON *b = cJSON_GetObjectItemCaseSensitive(out[j].json, "key_packages");
      CHECK(strcmp(kp, json_str(cJSON_GetArrayItem(b, 0), "key_package")) != 0);
    }
  }
  for (int i = 0; i < N; i++) {
    cJSON_Delete(out[i].json);
    out[i].json = NULL;
  }
  CHECK_INT(kp_rows(&eve.s, 0), before - N);
}

/* Past its not_after a KeyPackage is not counted nor handed out, and it is
 * deleted when the device is next claimed from. */
static void test_expired(void) {
  char kps[2][KPB], lr[KPB];
  make_kp(&cat.s, S1, kps[0]);
  make_kp(&cat.s, S1, kps[1]);
  make_kp(&cat.s, S1, lr);
  CHECK_INT(upload(&cat.s, kps, 2, lr), 200);
  char dev[64], sql[256];
  sql_blob(cat.s.device_id, dev, sizeof dev);
  /* kps[0] and the last resort expire (the clock moved past them). */
  char blob[2 * KPB + 8], upd[2 * KPB + 128];
  sql_blob(kps[0], blob, sizeof blob);
  snprintf(upd, sizeof upd,
           "UPDATE key_packages SET not_after = 1000, created_at = 1 WHERE body = %s",
           blob);
  CHECK(db_exec(upd));
  snprintf(upd, sizeof upd,
           "UPDATE key_packages SET not_after = 1000 WHERE last_resort = 1 AND"
           " device_id = %s",
           dev);
  CHECK(db_exec(upd));
  CHECK_INT(call(srv.port, "GET", "/v1/keypackages", cat.s.token, NULL), 200);
  CHECK_INT(num("available"), 1);
  CHECK_INT(flag("last_resort"), 0);
  /* The older one is expired: the newer one is handed out. */
  CHECK_INT(claim(&ben.s, cat.s.account_id, S1), 200);
  CHECK(strcmp(claimed_for(cat.s.device_id), kps[1]) == 0);
  snprintf(sql, sizeof sql, "SELECT count(*) FROM key_packages WHERE device_id = %s",
           dev);
  CHECK_INT(db_count(sql), 0); /* the expired rows went too */
  CHECK_INT(claim(&ben.s, cat.s.account_id, S1), 200);
  CHECK(is_missing(cat.s.device_id));
  /* An upload deletes the device's expired rows as well. */
  CHECK_INT(upload(&cat.s, kps, 2, NULL), 200); /* kps[1] was claimed: back */
  snprintf(upd, sizeof upd,
           "UPDATE key_packages SET not_after = 1000 WHERE device_id = %s", dev);
  CHECK(db_exec(upd));
  char fresh[1][KPB];
  make_kp(&cat.s, S1, fresh[0]);
  CHECK_INT(upload(&cat.s, fresh, 1, NULL), 200);
  CHECK_INT(num("available"), 1);
  CHECK_INT(db_count(sql), 1);
}

static bool put_handle(const user *u, const char *handle) {
  char body[128];
  snprintf(body, sizeof body, "{\"handle\":\"%s\"}", handle);
  int st = call(srv.port, "PUT", "/v1/apps/social/profile", u->s.token, body);
  return st == 201 || st == 200;
}

/* A block either way answers like an unknown account. */
static void test_blocks(void) {
  CHECK(put_handle(&ben, "ben.kp"));
  CHECK(put_handle(&cat, "cat.kp"));
  char kps[1][KPB];
  make_kp(&cat.s, S1, kps[0]);
  CHECK_INT(upload(&cat.s, kps, 1, NULL), 200);
  long rows = kp_rows(&cat.s, -1);
  CHECK_INT(claim(&ben.s, "AAAAAAAAAAAAAAAAAAAAAA", S1), 404);
  static char unknown[sizeof resp.body];
  memcpy(unknown, resp.body, sizeof unknown);
  CHECK_INT(call(srv.port, "POST", "/v1/blocks", cat.s.token,
                 "{\"app\":\"social\",\"target\":\"ben.kp\"}"),
            200);
  /* cat blocked ben: neither may claim the other's. */
  CHECK_INT(claim(&ben.s, cat.s.account_id, S1), 404);
  CHECK(err_is("not_found"));
  CHECK(strcmp(resp.body, unknown) == 0);
  CHECK_INT(claim(&cat.s, ben.s.account_id, S1), 404);
  CHECK(strcmp(resp.body, unknown) == 0);
  CHECK_INT(kp_rows(&cat.s, -1), rows);
  /* Others still may; lifting the block restores claiming. */
  CHECK_INT(claim(&dan.s, cat.s.account_id, S1), 200);
  CHECK(strcmp(claimed_for(cat.s.device_id), "") != 0);
  CHECK_INT(call(srv.port, "DELETE", "/v1/blocks/social/ben.kp", cat.s.token, NULL), 200);
  CHECK_INT(claim(&ben.s, cat.s.account_id, S1), 200);
  CHECK_INT(claim(&cat.s, ben.s.account_id, S1), 200);
  CHECK(is_missing(ben.s.device_id));
}

/* POST /v1/keypackages/claim by profile: {"app", "key", "suite"}. The
 * answer names the account; only someone the profile lets start a
 * conversation may claim; unknown profiles and blocks either way answer
 * the same 404; nothing is handed out on a refusal. */
static int claim_profile(const session *s, const char *app, const char *key, int suite) {
  char body[160];
  snprintf(body, sizeof body, "{\"app\":\"%s\",\"key\":\"%s\",\"suite\":%d}", app, key,
           suite);
  return call(srv.port, "POST", "/v1/keypackages/claim", s->token, body);
}

static void test_claim_by_profile(void) {
  /* fay: a messenger profile with one regular suite-1 KeyPackage on top. */
  CHECK_INT(call(srv.port, "PUT", "/v1/apps/messenger/profile", fay.s.token,
                 "{\"username\":\"fay.kp\"}"),
            201);
  char kps[1][KPB];
  make_kp(&fay.s, S1, kps[0]);
  CHECK_INT(upload(&fay.s, kps, 1, NULL), 200);
  long rows = kp_rows(&fay.s, -1);
  /* The answer to a claim by account id names the account too. */
  CHECK_INT(claim(&ben.s, cat.s.account_id, S1), 200);
  CHECK(strcmp(jstr("account_id"), cat.s.account_id) == 0);

  /* Under fay's default rules (graph) ben (social, not her friend) may
   * not: the claim would tell him her account id. */
  CHECK_INT(claim_profile(&ben.s, "messenger", "fay.kp", S1), 403);
  CHECK(err_is("forbidden"));
  CHECK(msg_has("not reachable"));
  CHECK_INT(kp_rows(&fay.s, -1), rows);
  /* Everyone from social: ben may, by any spelling of the username. */
  CHECK_INT(call(srv.port, "PUT", "/v1/apps/messenger/reachability", fay.s.token,
                 "{\"from\":{\"social\":\"everyone\"}}"),
            200);
  CHECK_INT(claim_profile(&ben.s, "messenger", "Fay.KP", S1), 200);
  CHECK(strcmp(jstr("account_id"), fay.s.account_id) == 0);
  CHECK_INT(n_claimed(), 1);
  CHECK(strcmp(claimed_for(fay.s.device_id), "") != 0);
  /* The oldest regular one of suite 1 went (not a last resort). */
  CHECK_INT(kp_rows(&fay.s, -1), rows - 1);
  /* eve has no profile at all: reachable from none of her apps. */
  CHECK_INT(claim_profile(&eve.s, "messenger", "fay.kp", S1), 403);
  CHECK(err_is("forbidden"));
  /* One's own profile: allowed, one's own device left out as ever. */
  CHECK_INT(claim_profile(&fay.s, "messenger", "fay.kp", S1), 200);
  CHECK(strcmp(jstr("account_id"), fay.s.account_id) == 0);
  CHECK_INT(n_claimed() + n_missing(), 0);

  /* Unknown profile: 404; a block either way answers exactly the same. */
  CHECK_INT(claim_profile(&cat.s, "messenger", "nobody.kp", S1), 404);
  CHECK(err_is("not_found"));
  static char unknown[sizeof resp.body];
  memcpy(unknown, resp.body, sizeof unknown);
  CHECK_INT(claim_profile(&cat.s, "social", "nobody.kp", S1), 404);
  CHECK(strcmp(resp.body, unknown) == 0);
  CHECK_INT(claim_profile(&cat.s, "messenger", "fay.kp", S1), 200); /* before */
  rows = kp_rows(&fay.s, -1);
  CHECK_INT(call(srv.port, "PUT", "/v1/apps/social/reachability", cat.s.token,
                 "{\"from\":{\"messenger\":\"everyone\"}}"),
            200);
  CHECK_INT(claim_profile(&fay.s, "social", "cat.kp", S1), 200);
  CHECK(strcmp(jstr("account_id"), cat.s.account_id) == 0);
  CHECK_INT(call(srv.port, "POST", "/v1/blocks", fay.s.token,
                 "{\"app\":\"social\",\"target\":\"cat.kp\"}"),
            200);
  CHECK_INT(claim_profile(&cat.s, "messenger", "fay.kp", S1), 404);
  CHECK(strcmp(resp.body, unknown) == 0);
  CHECK_INT(claim_profile(&fay.s, "social", "cat.kp", S1), 404);
  CHECK(strcmp(resp.body, unknown) == 0);
  CHECK_INT(kp_rows(&fay.s, -1), rows);
  CHECK_INT(call(srv.port, "DELETE", "/v1/blocks/social/cat.kp", fay.s.token, NULL), 200);
  CHECK_INT(claim_profile(&cat.s, "messenger", "fay.kp", S1), 200);
  CHECK(strcmp(jstr("account_id"), fay.s.account_id) == 0);

  /* Malformed: both forms, a key breaking the rules, an unknown app, a key
   * without its app, a wrong suite. */
  char body[160];
  snprintf(body, sizeof body,
           "{\"account_id\":\"%s\",\"app\":\"messenger\",\"key\":\"fay.kp\","
           "\"suite\":1}",
           fay.s.account_id);
  CHECK_INT(call(srv.port, "POST", "/v1/keypackages/claim", ben.s.token, body), 400);
  CHECK(err_is("bad_request"));
  CHECK_INT(claim_profile(&ben.s, "messenger", "f", S1), 400);
  CHECK_INT(claim_profile(&ben.s, "chat", "5550101", S1), 400);
  CHECK_INT(claim_profile(&ben.s, "mail", "fay.kp", S1), 400);
  CHECK_INT(call(srv.port, "POST", "/v1/keypackages/claim", ben.s.token,
                 "{\"key\":\"fay.kp\",\"suite\":1}"),
            400);
  CHECK_INT(claim_profile(&ben.s, "messenger", "fay.kp", 2), 400);
}

static void test_unauthenticated(void) {
  CHECK_INT(call(srv.port, "GET", "/v1/keypackages", NULL, NULL), 401);
  CHECK(err_is("unauthorized"));
  CHECK(strstr(resp.head, "WWW-Authenticate: Bearer") != NULL);
  char kps[1][KPB];
  make_kp(&ann3, S3, kps[0]);
  char body[KPB + 64];
  snprintf(body, sizeof body, "{\"key_packages\":[\"%s\"]}", kps[0]);
  CHECK_INT(call(srv.port, "POST", "/v1/keypackages", NULL, body), 401);
  CHECK_INT(call(srv.port, "POST", "/v1/keypackages", "bm90IGEgdG9rZW4", body), 401);
  snprintf(body, sizeof body, "{\"account_id\":\"%s\",\"suite\":1}", ann.s.account_id);
  CHECK_INT(call(srv.port, "POST", "/v1/keypackages/claim", NULL, body), 401);
  CHECK(err_is("unauthorized"));
  CHECK_INT(kp_rows(&ann3, -1), 1);
}

/* Revocation (DELETE /v1/devices/{id}, and logout) deletes the device's
 * KeyPackages in the same write. */
static void test_revoke(void) {
  CHECK_INT(kp_rows(&ann3, -1), 1);
  CHECK(kp_rows(&ann2, -1) > 0);
  char path[128];
  snprintf(path, sizeof path, "/v1/devices/%s", ann3.device_id);
  CHECK_INT(call(srv.port, "DELETE", path, ann.s.token, NULL), 200);
  CHECK_INT(kp_rows(&ann3, -1), 0);
  CHECK_INT(claim(&ben.s, ann.s.account_id, S3), 200);
  CHECK(strcmp(claimed_for(ann3.device_id), "") == 0);
  CHECK(!is_missing(ann3.device_id));
  CHECK(is_missing(ann.s.device_id));
  CHECK(is_missing(ann2.device_id));
  char kps[1][KPB];
  make_kp(&ann3, S3, kps[0]);
  CHECK_INT(upload(&ann3, kps, 1, NULL), 401);
  CHECK_INT(kp_rows(&ann3, -1), 0);
  /* Logout of ann2. */
  CHECK_INT(call(srv.port, "DELETE", "/v1/sessions/current", ann2.token, NULL), 200);
  CHECK_INT(kp_rows(&ann2, -1), 0);
  CHECK_INT(claim(&ben.s, ann.s.account_id, S1), 200);
  CHECK_INT(n_claimed(), 0);
  CHECK_INT(n_missing(), 1);
  CHECK(is_missing(ann.s.device_id));
  CHECK_INT(db_count("SELECT count(*) FROM key_packages k JOIN devices d ON"
                     " d.id = k.device_id WHERE d.revoked = 1"),
            0);
}

/* Claims per claiming account: burst 200, then 429 with Retry-After. */
static void test_rate_limit(void) {
  int first = 0;
  uint64_t t0 = now_ms();
  for (int i = 1; i <= 260 && !first; i++) {
    int st = claim(&dan.s, dan.s.account_id, S1);
    if (st == 429)
      first = i;
    else if (st != 200) {
      CHECK_INT(st, 200);
      break;
    }
  }
  /* dan claimed once before (test_blocks), and 2 per second come back. */
  uint64_t secs = (now_ms() - t0) / 1000 + 1;
  CHECK(first >= 200 && (uint64_t)first <= 200 + 2 * secs);
  CHECK(err_is("rate_limited"));
  CHECK(msg_has("claims"));
  CHECK(strstr(resp.head, "Retry-After: ") != NULL);
  /* Other calls of dan are not limited by it; other claimers neither. */
  CHECK_INT(call(srv.port, "GET", "/v1/keypackages", dan.s.token, NULL), 200);
  CHECK_INT(claim(&ben.s, dan.s.account_id, S1), 200);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  if (crypto_init() != 0 || !find_binary()) {
    fprintf(stderr, "tesserad not found (set TSR_BUILD)\n");
    printf("keypackages: 0 passed, 1 failed, 0 skipped\n");
    return 1;
  }
  static const char *const extra[] = {"--rate-per-account", "0", "--rate-per-address",
                                      "0", NULL};
  if (!server_start(&srv, "keypackages", true, "2", extra)) {
    fprintf(stderr, "tesserad did not start; log %s\n", srv.log);
    printf("keypackages: 0 passed, 1 failed, 0 skipped\n");
    return 1;
  }
  RUN(test_setup);
  RUN(test_upload_and_count);
  RUN(test_claim_once);
  RUN(test_claim_own_account);
  RUN(test_suite_filter);
  RUN(test_per_suite_counts);
  RUN(test_upload_refusals);
  RUN(test_device_limit);
  RUN(test_concurrent_claims);
  RUN(test_expired);
  RUN(test_blocks);
  RUN(test_claim_by_profile);
  RUN(test_unauthenticated);
  RUN(test_revoke);
  RUN(test_rate_limit);
  cJSON_Delete(resp.json);
  resp.json = NULL;
  server_stop(&srv, true);
  return test_report("keypackages");
}
