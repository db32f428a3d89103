/* Accounts and devices: see accounts.h and docs/protocol.md. */
#include "server/accounts.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "proto/base64.h"
#include "proto/json.h"
#include "server/blocks.h"
#include "server/keypackages.h"
#include "server/log.h"
#include "server/ratelimit.h"
#include "server/seen.h"
#include "server/wsd.h"
#include "tessera/error.h"

/* argon2id cost. Measured here (2 cores, libsodium 1.0.18): t=2, m=64 MiB
 * takes ~87 ms per hash (t=3/64 MiB 94 ms, t=2/32 MiB 40 ms, t=1/64 MiB
 * 57 ms). These are libsodium's INTERACTIVE limits. */
#define PW_OPSLIMIT 2
#define PW_MEMLIMIT (64u << 20)
#define PW_MIN 8
#define PW_MAX 1024

#define KEY_BYTES 32 /* Ed25519 public keys */
#define SIG_BYTES 64
#define CERT_CONTEXT "tessera-device-cert-v1"
#define NAME_MAX_BYTES 64
#define LINK_CODE_DIGITS 8
#define PHONE_CODE_DIGITS 6
#define LAST_SEEN_STEP 60 /* seconds between last_seen_at updates */
/* Hashes waiting per worker before new ones are refused with 503: at ~90 ms
 * each, 64 is ~6 s of work, well inside request_timeout. */
#define HASH_QUEUE_MAX 64

/* ---- rate limits (ratelimit.h: shared by all workers) ----------------- */

static uint32_t rl_take(enum ratelimit_kind kind, const void *id, size_t n) {
  return ratelimit_take(kind, id, n, loop_now(&worker_self->loop));
}

static uint32_t rl_addr(const httpd_req *r, enum ratelimit_kind kind) {
  uint8_t k[16];
  size_t n = conn_peer_key(r->conn, k);
  return rl_take(kind, k, n);
}

static int too_many(httpd_resp *resp, uint32_t retry) {
  httpd_resp_rate_limited(resp, retry, "too many attempts; retry later");
  return 0;
}

/* Answers 429 for the account's general request bucket. */
static void too_many_requests(httpd_resp *resp, uint32_t retry) {
  httpd_resp_rate_limited(resp, retry, "too many requests; retry later");
}

/* ---- requests in flight ----------------------------------------------- */

enum op_kind { OP_REGISTER, OP_LOGIN, OP_WRITE };

typedef struct {
  char name[NAME_MAX_BYTES + 1];
  uint8_t sig_key[KEY_BYTES];
  uint8_t cert[SIG_BYTES];
} device_in;

/* One deferred request. Heap; freed by whoever answers it. Fields are set
 * on the loop thread before the op is handed on (to the hasher or the
 * store) and read there only until it comes back. */
typedef struct op {
  loop_task task; /* hasher -> loop */
  store_job job;
  httpd_ticket ticket;
  struct op *next; /* hasher queue */
  enum op_kind kind;
  int hash_rc;
  bool have_account, pw_ok, has_phone, has_email;
  int64_t now, expires;
  int ok_status; /* answer on success: 200 or 201 */
  void (*write_ok)(struct op *o, json_writer *jw);
  uint8_t account_id[ACCOUNTS_ID_BYTES];
  uint8_t device_id[ACCOUNTS_ID_BYTES];
  uint8_t target_id[ACCOUNTS_ID_BYTES];
  uint8_t token[ACCOUNTS_TOKEN_BYTES];
  uint8_t token_hash[crypto_hash_sha256_BYTES];
  uint8_t code_hash[crypto_hash_sha256_BYTES];
  uint8_t identity_key[KEY_BYTES];
  device_in dev;
  char login[33];
  char phone[17];
  char email[255];
  char code[LINK_CODE_DIGITS + 1];
  char pwhash[crypto_pwhash_STRBYTES];
  char password[PW_MAX + 1];
  size_t pw_len;
} op;

static void op_free(op *o) {
  if (!o) return;
  sodium_memzero(o, sizeof *o); /* token, password, hashes */
  free(o);
}

static int64_t wall_now(void) { return (int64_t)time(NULL); }

/* Answers o with an error and frees it. */
static void op_fail(op *o, int status, const char *code, const char *msg) {
  httpd_resp resp;
  httpd_resp_init(&resp);
  httpd_resp_error(&resp, status, code, msg);
  httpd_complete(&o->ticket, &resp);
  op_free(o);
}

static void op_ok(op *o) {
  httpd_resp resp;
  httpd_resp_init(&resp);
  resp.status = o->ok_status;
  json_writer jw;
  json_writer_init(&jw, resp.body, 4);
  json_write_object_begin(&jw);
  if (o->write_ok) o->write_ok(o, &jw);
  json_write_object_end(&jw);
  if (json_writer_finish(&jw) != 0) resp.body->err = TSR_ENOMEM;
  httpd_complete(&o->ticket, &resp);
  op_free(o);
}

static void write_session(op *o, json_writer *jw) {
  json_write_key(jw, "account_id");
  json_write_base64url(jw, BYTES(o->account_id, sizeof o->account_id));
  json_write_key(jw, "device_id");
  json_write_base64url(jw, BYTES(o->device_id, sizeof o->device_id));
  json_write_key(jw, "token");
  json_write_base64url(jw, BYTES(o->token, sizeof o->token));
}

static void write_expiry(op *o, json_writer *jw) {
  if (o->code[0]) {
    json_write_key(jw, "code");
    json_write_string(jw, o->code);
  }
  json_write_key(jw, "expires_at");
  json_write_i64(jw, o->expires);
}

/* Store completion: the answer. Job errors carry the protocol meaning. */
static void ws_device_revoked(const uint8_t device_id[ACCOUNTS_ID_BYTES]);
static int run_revoke(store_conn *c, void *arg);

static void op_done(store_job *job, int status) {
  op *o = job->arg;
  switch (status) {
  case 0:
    if (job->run == run_revoke) {
      ws_device_revoked(o->target_id);
      accounts_devices_changed(o->account_id, o->target_id);
    }
    op_ok(o);
    return;
  case TSR_ECONFLICT:
    op_fail(o, 409, "conflict",
            o->kind == OP_REGISTER ? "login or phone number already taken"
                                   : "phone number verified by another account");
    return;
  case TSR_EVERIFY:
    op_fail(o, 401, "unauthorized", "unknown, used or expired code");
    return;
  case TSR_EDECODE:
    op_fail(o, 400, "bad_request", "device certificate does not verify");
    return;
  case TSR_ENOTFOUND: op_fail(o, 404, "not_found", "no such device"); return;
  default:
    log_warn("accounts job failed: %s", tsr_errname(status));
    op_fail(o, 500, "internal", "internal error");
    return;
  }
}

static void op_submit(op *o, store_run_fn run) {
  o->job = (store_job){.run = run, .done = op_done, .arg = o};
  int rc = store_submit(worker_self->sc, &o->job);
  if (rc == TSR_ELIMIT)
    op_fail(o, 503, "busy", "server busy; retry later");
  else if (rc)
    op_fail(o, 500, "internal", "internal error");
}

/* ---- hashing thread --------------------------------------------------- */

static struct {
  pthread_t th;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  op *head, *tail;
  unsigned queued; /* ops in head..tail */
  bool stop, running;
  loop_t *loop;
  /* A hash to verify against for unknown logins, so they cost the same. */
  char dummy[crypto_pwhash_STRBYTES];
} hasher = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void *hasher_main(void *arg) {
  (void)arg;
  uint8_t pw[16];
  randombytes_buf(pw, sizeof pw);
  if (crypto_pwhash_str_alg(hasher.dummy, (const char *)pw, sizeof pw, PW_OPSLIMIT,
                            PW_MEMLIMIT, crypto_pwhash_ALG_ARGON2ID13) != 0)
    hasher.dummy[0] = '\0';
  pthread_mutex_lock(&hasher.mu);
  for (;;) {
    while (!hasher.head && !hasher.stop) pthread_cond_wait(&hasher.cv, &hasher.mu);
    if (hasher.stop) break;
    op *o = hasher.head;
    hasher.head = o->next;
    if (!hasher.head) hasher.tail = NULL;
    hasher.queued--;
    pthread_mutex_unlock(&hasher.mu);
    if (o->kind == OP_REGISTER) {
      o->hash_rc = crypto_pwhash_str_alg(o->pwhash, o->password, o->pw_len, PW_OPSLIMIT,
                                         PW_MEMLIMIT, crypto_pwhash_ALG_ARGON2ID13);
    } else {
      const char *h = o->have_account ? o->pwhash : hasher.dummy;
      o->pw_ok =
          crypto_pwhash_str_verify(h, o->password, o->pw_len) == 0 && o->have_account;
    }
    sodium_memzero(o->password, sizeof o->password);
    loop_post(hasher.loop, &o->task);
    pthread_mutex_lock(&hasher.mu);
  }
  pthread_mutex_unlock(&hasher.mu);
  return NULL;
}

static void after_hash(loop_t *l, loop_task *t);

/* Queues o for hashing; false (o untouched) when the queue is full. */
static bool hasher_push(op *o) {
  o->next = NULL;
  o->task.fn = after_hash;
  pthread_mutex_lock(&hasher.mu);
  if (hasher.queued >= HASH_QUEUE_MAX) {
    pthread_mutex_unlock(&hasher.mu);
    return false;
  }
  hasher.queued++;
  if (hasher.tail)
    hasher.tail->next = o;
  else
    hasher.head = o;
  hasher.tail = o;
  pthread_cond_signal(&hasher.cv);
  pthread_mutex_unlock(&hasher.mu);
  return true;
}

/* ---- request parsing -------------------------------------------------- */

/* A parsed JSON body. err holds the message for a 400. */
typedef struct {
  const char *buf;
  const json_token *t;
  const char *err;
} body;

static bool parse_body(const httpd_req *r, body *b) {
  b->buf = (const char *)r->body.ptr;
  b->t = worker_self->toks;
  b->err = "body must be a JSON object";
  if (!r->body.len) return false;
  int n = json_parse(b->buf, r->body.len, worker_self->toks, WORKER_MAX_TOKENS, NULL);
  return n > 0 && b->t[0].type == JSON_OBJECT;
}

/* String member key of obj into out (NUL-terminated), with a length in
 * [min, max] bytes. Returns 1, 0 when absent (and !required), or -1 with
 * b->err set. */
static int get_str(body *b, int obj, const char *key, char *out, size_t max, size_t min,
                   bool required, const char *err) {
  int i = json_object_get(b->buf, b->t, obj, key);
  if (i < 0 && !required) return 0;
  size_t len = 0;
  if (i < 0 || b->t[i].type != JSON_STRING || b->t[i].size > max ||
      json_get_string(b->buf, b->t, i, out, max + 1, &len, 0) != 0 || len < min) {
    b->err = err;
    return -1;
  }
  return 1;
}

/* base64url member decoding to exactly n bytes. */
static bool get_b64(body *b, int obj, const char *key, uint8_t *out, size_t n,
                    const char *err) {
  int i = json_object_get(b->buf, b->t, obj, key);
  const char *p;
  size_t len, got = 0;
  if (i < 0 || json_get_string_view(b->buf, b->t, i, &p, &len) != 0 ||
      len != b64_encoded_len(n, B64_MODE_URL_NOPAD) ||
      b64_decode(out, n, p, len, B64_MODE_URL_NOPAD, &got) != 0 || got != n) {
    b->err = err;
    return false;
  }
  return true;
}

static bool valid_login(char *s) {
  size_t n = strlen(s);
  if (n < 3 || n > 32) return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (c >= 'A' && c <= 'Z') c = s[i] = (char)(c - 'A' + 'a');
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
          c == '-'))
      return false;
  }
  return true;
}

/* E.164: '+', then 3 to 15 digits, the first not 0. */
static bool valid_phone(const char *s) {
  size_t n = strlen(s);
  if (n < 4 || n > 16 || s[0] != '+' || s[1] == '0') return false;
  for (size_t i = 1; i < n; i++)
    if (s[i] < '0' || s[i] > '9') return false;
  return true;
}

static bool valid_email(const char *s) {
  const char *at = strchr(s, '@');
  if (!at || at == s || !at[1] || strchr(at + 1, '@')) return false;
  for (const char *p = s; *p; p++)
    if ((unsigned char)*p <= ' ') return false;
  return true;
}

static bool all_digits(const char *s, size_t n) {
  if (strlen(s) != n) return false;
  for (size_t i = 0; i < n; i++)
    if (s[i] < '0' || s[i] > '9') return false;
  return true;
}

static bool get_device(body *b, device_in *d) {
  int obj = json_object_get(b->buf, b->t, 0, "device");
  if (obj < 0 || b->t[obj].type != JSON_OBJECT) {
    b->err = "field 'device' must be an object";
    return false;
  }
  if (get_str(b, obj, "name", d->name, NAME_MAX_BYTES, 1, true,
              "field 'device.name' must be a string of 1-64 bytes") < 0)
    return false;
  return get_b64(b, obj, "signature_key", d->sig_key, KEY_BYTES,
                 "field 'device.signature_key' must be 32 bytes of base64url") &&
         get_b64(b, obj, "certificate", d->cert, SIG_BYTES,
                 "field 'device.certificate' must be 64 bytes of base64url");
}

/* Ed25519 by the identity key over "tessera-device-cert-v1" 0x00 key. */
static bool cert_ok(const uint8_t identity_key[KEY_BYTES], const device_in *d) {
  uint8_t msg[sizeof CERT_CONTEXT + KEY_BYTES]; /* sizeof counts the 0x00 */
  memcpy(msg, CERT_CONTEXT, sizeof CERT_CONTEXT);
  memcpy(msg + sizeof CERT_CONTEXT, d->sig_key, KEY_BYTES);
  return crypto_sign_verify_detached(d->cert, msg, sizeof msg, identity_key) == 0;
}

static int bad_request(httpd_resp *resp, const char *msg) {
  httpd_resp_error(resp, 400, "bad_request", msg);
  return 0;
}

static int not_found(httpd_resp *resp) {
  httpd_resp_error(resp, 404, "not_found", "no such resource");
  return 0;
}

static op *op_new(enum op_kind kind) {
  op *o = calloc(1, sizeof *o);
  if (o) {
    o->kind = kind;
    o->now = wall_now();
    o->ok_status = 200;
  }
  return o;
}

static void new_session(op *o) {
  randombytes_buf(o->device_id, sizeof o->device_id);
  randombytes_buf(o->token, sizeof o->token);
  crypto_hash_sha256(o->token_hash, o->token, sizeof o->token);
  o->ok_status = 201;
  o->write_ok = write_session;
}

/* ---- store jobs (writer thread) --------------------------------------- */

static int insert_device(store_conn *c, op *o) {
  store_stmt *s;
  int rc = store_conn_prepare(
      c,
      "INSERT INTO devices(id, account_id, name, signature_key, certificate, token_hash,"
      " created_at, last_seen_at, revoked) VALUES(?,?,?,?,?,?,?,?,0)",
      &s);
  if (rc) return rc;
  store_bind_blob(s, 1, BYTES(o->device_id, sizeof o->device_id));
  store_bind_blob(s, 2, BYTES(o->account_id, sizeof o->account_id));
  store_bind_str(s, 3, o->dev.name);
  store_bind_blob(s, 4, BYTES(o->dev.sig_key, KEY_BYTES));
  store_bind_blob(s, 5, BYTES(o->dev.cert, SIG_BYTES));
  store_bind_blob(s, 6, BYTES(o->token_hash, sizeof o->token_hash));
  store_bind_int64(s, 7, o->now);
  store_bind_int64(s, 8, o->now);
  return store_stmt_run(s);
}

/* TSR_ECONFLICT when another account verified phone. */
static int phone_taken(store_conn *c, const char *phone, const uint8_t *self) {
  store_stmt *s;
  int rc = store_conn_prepare(
      c, "SELECT id FROM accounts WHERE phone = ? AND phone_verified = 1 AND id <> ?",
      &s);
  if (rc) return rc;
  store_bind_str(s, 1, phone);
  store_bind_blob(s, 2, BYTES(self, ACCOUNTS_ID_BYTES));
  rc = store_step(s);
  store_stmt_reset(s);
  return rc == STORE_ROW ? TSR_ECONFLICT : rc;
}

static int run_register(store_conn *c, void *arg) {
  op *o = arg;
  int rc;
  if (o->has_phone && (rc = phone_taken(c, o->phone, o->account_id)) != 0) return rc;
  store_stmt *s;
  rc = store_conn_prepare(c,
                          "INSERT INTO accounts(id, login, password_hash, phone,"
                          " phone_verified, email, identity_key, created_at)"
                          " VALUES(?,?,?,?,0,?,?,?)",
                          &s);
  if (rc) return rc;
  store_bind_blob(s, 1, BYTES(o->account_id, sizeof o->account_id));
  store_bind_str(s, 2, o->login);
  store_bind_str(s, 3, o->pwhash);
  if (o->has_phone)
    store_bind_str(s, 4, o->phone);
  else
    store_bind_null(s, 4);
  if (o->has_email)
    store_bind_str(s, 5, o->email);
  else
    store_bind_null(s, 5);
  store_bind_blob(s, 6, BYTES(o->identity_key, KEY_BYTES));
  store_bind_int64(s, 7, o->now);
  if ((rc = store_stmt_run(s)) != 0) return rc;
  return insert_device(c, o);
}

static int run_add_device(store_conn *c, void *arg) { return insert_device(c, arg); }

/* Revokes target_id if it is a live device of account_id, and deletes its
 * KeyPackages in the same transaction. */
static int run_revoke(store_conn *c, void *arg) {
  op *o = arg;
  store_stmt *s;
  int rc = store_conn_prepare(c,
                              "UPDATE devices SET revoked = 1"
                              " WHERE id = ? AND account_id = ? AND revoked = 0",
                              &s);
  if (rc) return rc;
  store_bind_blob(s, 1, BYTES(o->target_id, sizeof o->target_id));
  store_bind_blob(s, 2, BYTES(o->account_id, sizeof o->account_id));
  if ((rc = store_stmt_run(s)) != 0) return rc;
  if (store_conn_changes(c) != 1) return TSR_ENOTFOUND;
  return keypackages_remove_device(c, o->target_id);
}

static void hash_code(const char *code, uint8_t out[crypto_hash_sha256_BYTES]) {
  crypto_hash_sha256(out, (const uint8_t *)code, strlen(code));
}

static int run_link_code(store_conn *c, void *arg) {
  op *o = arg;
  store_stmt *s;
  int rc = store_conn_prepare(c, "DELETE FROM link_codes WHERE expires_at < ?", &s);
  if (rc) return rc;
  store_bind_int64(s, 1, o->now);
  if ((rc = store_stmt_run(s)) != 0) return rc;
  /* A collision with a live code of someone else: draw again. */
  for (int tries = 0; tries < 4; tries++) {
    snprintf(o->code, sizeof o->code, "%08u", (unsigned)randombytes_uniform(100000000u));
    hash_code(o->code, o->code_hash);
    rc = store_conn_prepare(c,
                            "INSERT INTO link_codes(code_hash, account_id, created_by,"
                            " expires_at, used) VALUES(?,?,?,?,0)",
                            &s);
    if (rc) return rc;
    store_bind_blob(s, 1, BYTES(o->code_hash, sizeof o->code_hash));
    store_bind_blob(s, 2, BYTES(o->account_id, sizeof o->account_id));
    store_bind_blob(s, 3, BYTES(o->device_id, sizeof o->device_id));
    store_bind_int64(s, 4, o->expires);
    rc = store_stmt_run(s);
    if (rc != TSR_ECONFLICT) return rc;
  }
  return TSR_EIO;
}

/* Redeems the code (single use, in this transaction) and adds the device. */
static int run_link(store_conn *c, void *arg) {
  op *o = arg;
  store_stmt *s;
  int rc = store_conn_prepare(c,
                              "SELECT l.code_hash, l.account_id, l.expires_at, l.used,"
                              " a.identity_key FROM link_codes l"
                              " JOIN accounts a ON a.id = l.account_id"
                              " WHERE l.code_hash = ?",
                              &s);
  if (rc) return rc;
  store_bind_blob(s, 1, BYTES(o->code_hash, sizeof o->code_hash));
  rc = store_step(s);
  if (rc != STORE_ROW) {
    store_stmt_reset(s);
    return rc < 0 ? rc : TSR_EVERIFY;
  }
  bytes_t h = store_col_blob(s, 0), acc = store_col_blob(s, 1), ik = store_col_blob(s, 4);
  bool ok = bytes_eq_ct(h, BYTES(o->code_hash, sizeof o->code_hash)) &&
            store_col_int64(s, 2) >= o->now && store_col_int64(s, 3) == 0 &&
            acc.len == ACCOUNTS_ID_BYTES && ik.len == KEY_BYTES;
  if (ok) {
    memcpy(o->account_id, acc.ptr, ACCOUNTS_ID_BYTES);
    memcpy(o->identity_key, ik.ptr, KEY_BYTES);
  }
  store_stmt_reset(s);
  if (!ok) return TSR_EVERIFY;
  if (!cert_ok(o->identity_key, &o->dev)) return TSR_EDECODE;
  rc = store_conn_prepare(
      c, "UPDATE link_codes SET used = 1 WHERE code_hash = ? AND used = 0", &s);
  if (rc) return rc;
  store_bind_blob(s, 1, BYTES(o->code_hash, sizeof o->code_hash));
  if ((rc = store_stmt_run(s)) != 0) return rc;
  if (store_conn_changes(c) != 1) return TSR_EVERIFY;
  return insert_device(c, o);
}

static int run_phone_code(store_conn *c, void *arg) {
  op *o = arg;
  int rc = phone_taken(c, o->phone, o->account_id);
  if (rc) return rc;
  store_stmt *s;
  rc = store_conn_prepare(
      c,
      "INSERT INTO phone_codes(account_id, phone, code_hash, expires_at)"
      " VALUES(?,?,?,?) ON CONFLICT(account_id, phone) DO UPDATE SET"
      " code_hash = excluded.code_hash, expires_at = excluded.expires_at",
      &s);
  if (rc) return rc;
  store_bind_blob(s, 1, BYTES(o->account_id, sizeof o->account_id));
  store_bind_str(s, 2, o->phone);
  store_bind_blob(s, 3, BYTES(o->code_hash, sizeof o->code_hash));
  store_bind_int64(s, 4, o->expires);
  return store_stmt_run(s);
}

static int run_phone_verify(store_conn *c, void *arg) {
  op *o = arg;
  store_stmt *s;
  int rc = store_conn_prepare(
      c,
      "SELECT code_hash, expires_at FROM phone_codes WHERE account_id = ? AND phone = ?",
      &s);
  if (rc) return rc;
  store_bind_blob(s, 1, BYTES(o->account_id, sizeof o->account_id));
  store_bind_str(s, 2, o->phone);
  rc = store_step(s);
  bool ok = rc == STORE_ROW &&
            bytes_eq_ct(store_col_blob(s, 0), BYTES(o->code_hash, sizeof o->code_hash)) &&
            store_col_int64(s, 1) >= o->now;
  store_stmt_reset(s);
  if (rc < 0) return rc;
  if (!ok) return TSR_EVERIFY;
  if ((rc = phone_taken(c, o->phone, o->account_id)) != 0) return rc;
  rc = store_conn_prepare(
      c, "UPDATE accounts SET phone = ?, phone_verified = 1 WHERE id = ?", &s);
  if (rc) return rc;
  store_bind_str(s, 1, o->phone);
  store_bind_blob(s, 2, BYTES(o->account_id, sizeof o->account_id));
  if ((rc = store_stmt_run(s)) != 0) return rc;
  rc = store_conn_prepare(c, "DELETE FROM phone_codes WHERE account_id = ? AND phone = ?",
                          &s);
  if (rc) return rc;
  store_bind_blob(s, 1, BYTES(o->account_id, sizeof o->account_id));
  store_bind_str(s, 2, o->phone);
  return store_stmt_run(s);
}

/* ---- authentication --------------------------------------------------- */

int accounts_authenticate(const httpd_req *req, uint8_t account_id[ACCOUNTS_ID_BYTES],
                          uint8_t device_id[ACCOUNTS_ID_BYTES]) {
  http_str a = req->req->authorization;
  static const char bearer[] = "Bearer ";
  size_t bl = sizeof bearer - 1;
  if (!a.ptr || a.len < bl || strncasecmp(a.ptr, bearer, bl) != 0) return TSR_ENOTFOUND;
  return accounts_authenticate_token(a.ptr + bl, a.len - bl, account_id, device_id);
}

int accounts_authenticate_token(const char *b64, size_t len,
                                uint8_t account_id[ACCOUNTS_ID_BYTES],
                                uint8_t device_id[ACCOUNTS_ID_BYTES]) {
  size_t want = b64_encoded_len(ACCOUNTS_TOKEN_BYTES, B64_MODE_URL_NOPAD);
  if (!b64 || len != want) return TSR_ENOTFOUND;
  uint8_t token[ACCOUNTS_TOKEN_BYTES], th[crypto_hash_sha256_BYTES];
  size_t got = 0;
  if (b64_decode(token, sizeof token, b64, want, B64_MODE_URL_NOPAD, &got) != 0 ||
      got != sizeof token)
    return TSR_ENOTFOUND;
  crypto_hash_sha256(th, token, sizeof token);
  sodium_memzero(token, sizeof token);
  store_conn *rc_conn;
  store_stmt *s;
  int rc = store_reader_get(worker_self->store, &rc_conn);
  if (rc == 0)
    rc = store_conn_prepare(rc_conn,
                            "SELECT token_hash, account_id, id, last_seen_at FROM devices"
                            " WHERE token_hash = ? AND revoked = 0",
                            &s);
  if (rc) return TSR_EIO;
  store_bind_blob(s, 1, BYTES(th, sizeof th));
  rc = store_step(s);
  if (rc != STORE_ROW) {
    store_stmt_reset(s);
    return rc < 0 ? TSR_EIO : TSR_ENOTFOUND;
  }
  bytes_t h = store_col_blob(s, 0), acc = store_col_blob(s, 1),
          dev = store_col_blob(s, 2);
  bool ok = bytes_eq_ct(h, BYTES(th, sizeof th)) && acc.len == ACCOUNTS_ID_BYTES &&
            dev.len == ACCOUNTS_ID_BYTES;
  int64_t seen = store_col_int64(s, 3);
  if (ok) {
    memcpy(account_id, acc.ptr, ACCOUNTS_ID_BYTES);
    memcpy(device_id, dev.ptr, ACCOUNTS_ID_BYTES);
  }
  store_stmt_reset(s);
  if (!ok) return TSR_ENOTFOUND;
  int64_t now = wall_now();
  if (now - seen >= LAST_SEEN_STEP) seen_note(device_id, now);
  return 0;
}

bool accounts_auth_or_refuse(const httpd_req *r, httpd_resp *resp,
                             uint8_t acc[ACCOUNTS_ID_BYTES],
                             uint8_t dev[ACCOUNTS_ID_BYTES]) {
  int rc = accounts_authenticate(r, acc, dev);
  if (rc == 0) {
    uint32_t wait = rl_take(RL_REQUEST_ACCOUNT, acc, ACCOUNTS_ID_BYTES);
    if (wait == 0) return true;
    too_many_requests(resp, wait);
    return false;
  }
  if (rc == TSR_ENOTFOUND) {
    httpd_resp_error(resp, 401, "unauthorized", "missing, unknown or revoked token");
    httpd_resp_header(resp, "WWW-Authenticate", "Bearer");
  } else {
    httpd_resp_error(resp, 500, "internal", "internal error");
  }
  return false;
}

/* ---- handlers (loop thread) ------------------------------------------- */

static int no_memory(httpd_resp *resp) {
  httpd_resp_error(resp, 503, "busy", "server busy; retry later");
  return 0;
}

/* Gives o a new session, hands it to the hashing thread and defers the
 * request; on a full queue frees o and answers 503. */
static int hash_and_defer(const httpd_req *r, httpd_resp *resp, op *o) {
  new_session(o);
  if (!hasher_push(o)) {
    op_free(o);
    return no_memory(resp);
  }
  httpd_defer(r, &o->ticket);
  return HTTPD_DEFERRED;
}

static int h_register(const httpd_req *r, httpd_resp *resp) {
  if (!httpd_path_is(r, "/v1/accounts")) return not_found(resp);
  uint32_t wait = rl_addr(r, RL_REGISTER_ADDR);
  if (wait) return too_many(resp, wait);
  body b;
  if (!parse_body(r, &b)) return bad_request(resp, b.err);
  op *o = op_new(OP_REGISTER);
  if (!o) return no_memory(resp);
  int ph = 0, em = 0;
  bool ok = get_str(&b, 0, "login", o->login, 32, 3, true,
                    "field 'login' must be 3-32 characters [a-z0-9._-]") > 0 &&
            valid_login(o->login) &&
            get_str(&b, 0, "password", o->password, PW_MAX, PW_MIN, true,
                    "field 'password' must be a string of 8-1024 bytes") > 0 &&
            (ph = get_str(&b, 0, "phone", o->phone, sizeof o->phone - 1, 1, false,
                          "field 'phone' must be an E.164 number")) >= 0 &&
            (ph == 0 || valid_phone(o->phone)) &&
            (em = get_str(&b, 0, "email", o->email, sizeof o->email - 1, 3, false,
                          "field 'email' must be an e-mail address")) >= 0 &&
            (em == 0 || valid_email(o->email)) &&
            get_b64(&b, 0, "identity_key", o->identity_key, KEY_BYTES,
                    "field 'identity_key' must be 32 bytes of base64url") &&
            get_device(&b, &o->dev);
  if (!ok) {
    if (o->login[0] && !valid_login(o->login))
      b.err = "field 'login' must be 3-32 characters [a-z0-9._-]";
    else if (ph > 0 && !valid_phone(o->phone))
      b.err = "field 'phone' must be an E.164 number";
    else if (em > 0 && !valid_email(o->email))
      b.err = "field 'email' must be an e-mail address";
    op_free(o);
    return bad_request(resp, b.err);
  }
  if (!cert_ok(o->identity_key, &o->dev)) {
    op_free(o);
    return bad_request(resp, "device certificate does not verify");
  }
  o->has_phone = ph > 0;
  o->has_email = em > 0;
  o->pw_len = strlen(o->password);
  randombytes_buf(o->account_id, sizeof o->account_id);
  return hash_and_defer(r, resp, o);
}

static int h_login(const httpd_req *r, httpd_resp *resp) {
  if (!httpd_path_is(r, "/v1/sessions")) return not_found(resp);
  uint32_t wait = rl_addr(r, RL_LOGIN_ADDR);
  if (wait) return too_many(resp, wait);
  body b;
  if (!parse_body(r, &b)) return bad_request(resp, b.err);
  op *o = op_new(OP_LOGIN);
  if (!o) return no_memory(resp);
  /* A login that is not a valid name cannot exist: checked like a wrong
   * password below (401), not refused as malformed. */
  bool ok = get_str(&b, 0, "login", o->login, 32, 1, true,
                    "field 'login' must be a string") > 0 &&
            get_str(&b, 0, "password", o->password, PW_MAX, 0, true,
                    "field 'password' must be a string of at most 1024 bytes") > 0 &&
            get_device(&b, &o->dev);
  if (!ok) {
    op_free(o);
    return bad_request(resp, b.err);
  }
  bool name_ok = valid_login(o->login);
  if ((wait = rl_take(RL_LOGIN_ACCOUNT, o->login, strlen(o->login))) != 0) {
    op_free(o);
    return too_many(resp, wait);
  }
  if (name_ok) {
    store_conn *rc_conn;
    store_stmt *s;
    int rc = store_reader_get(worker_self->store, &rc_conn);
    if (rc == 0)
      rc = store_conn_prepare(
          rc_conn, "SELECT id, password_hash, identity_key FROM accounts WHERE login = ?",
          &s);
    if (rc) {
      op_free(o);
      return -1;
    }
    store_bind_str(s, 1, o->login);
    rc = store_step(s);
    if (rc == STORE_ROW) {
      bytes_t id = store_col_blob(s, 0), ik = store_col_blob(s, 2);
      size_t hl = 0;
      const char *h = store_col_text(s, 1, &hl);
      if (id.len == ACCOUNTS_ID_BYTES && ik.len == KEY_BYTES && hl < sizeof o->pwhash) {
        memcpy(o->account_id, id.ptr, ACCOUNTS_ID_BYTES);
        memcpy(o->identity_key, ik.ptr, KEY_BYTES);
        memcpy(o->pwhash, h, hl);
        o->have_account = true;
      }
    }
    store_stmt_reset(s);
    if (rc < 0) {
      op_free(o);
      return -1;
    }
  }
  o->pw_len = strlen(o->password);
  return hash_and_defer(r, resp, o);
}

/* A password hash or check is done: continue on the loop thread. */
static void after_hash(loop_t *l, loop_task *t) {
  (void)l;
  op *o = (op *)((char *)t - offsetof(op, task));
  if (o->kind == OP_REGISTER) {
    if (o->hash_rc != 0) {
      log_error("argon2id failed (out of memory?)");
      op_fail(o, 503, "busy", "server busy; retry later");
      return;
    }
    op_submit(o, run_register);
    return;
  }
  if (!o->pw_ok) {
    op_fail(o, 401, "unauthorized", "wrong login or password");
    return;
  }
  if (!cert_ok(o->identity_key, &o->dev)) {
    op_fail(o, 400, "bad_request", "device certificate does not verify");
    return;
  }
  op_submit(o, run_add_device);
}

/* Starts an authenticated write: o gets the caller's ids, the request is
 * deferred and the job submitted. */
static int auth_write(const httpd_req *r, httpd_resp *resp, op **out) {
  op *o = op_new(OP_WRITE);
  if (!o) return no_memory(resp);
  if (!accounts_auth_or_refuse(r, resp, o->account_id, o->device_id)) {
    op_free(o);
    return 0;
  }
  *out = o;
  return 1;
}

/* Takes one attempt of kind for o's account: true, or false with o freed
 * and resp set to 429. */
static bool account_limit(httpd_resp *resp, op *o, enum ratelimit_kind kind) {
  uint32_t wait = rl_take(kind, o->account_id, sizeof o->account_id);
  if (!wait) return true;
  op_free(o);
  too_many(resp, wait);
  return false;
}

static int h_logout(const httpd_req *r, httpd_resp *resp) {
  if (!httpd_path_is(r, "/v1/sessions/current")) return not_found(resp);
  op *o;
  int rc = auth_write(r, resp, &o);
  if (rc <= 0) return rc;
  memcpy(o->target_id, o->device_id, sizeof o->target_id);
  httpd_defer(r, &o->ticket);
  op_submit(o, run_revoke);
  return HTTPD_DEFERRED;
}

static int h_revoke(const httpd_req *r, httpd_resp *resp) {
  static const char pre[] = "/v1/devices/";
  http_str p = r->req->path;
  size_t pl = sizeof pre - 1;
  if (p.len <= pl || memcmp(p.ptr, pre, pl) != 0) return not_found(resp);
  op *o;
  int rc = auth_write(r, resp, &o);
  if (rc <= 0) return rc;
  size_t got = 0;
  if (b64_decode(o->target_id, sizeof o->target_id, p.ptr + pl, p.len - pl,
                 B64_MODE_URL_NOPAD, &got) != 0 ||
      got != sizeof o->target_id) {
    op_free(o);
    httpd_resp_error(resp, 404, "not_found", "no such device");
    return 0;
  }
  httpd_defer(r, &o->ticket);
  op_submit(o, run_revoke);
  return HTTPD_DEFERRED;
}

/* Writes member "devices": the live devices of account, oldest first, each
 * with its id, signature key and certificate; with me (the caller's device,
 * listing its own account) also name, times and "current". Returns 0 or -1. */
static int write_devices(store_conn *c, json_writer *jw,
                         const uint8_t account[ACCOUNTS_ID_BYTES], const uint8_t *me) {
  store_stmt *s;
  if (store_conn_prepare(c,
                         "SELECT id, signature_key, certificate, name, created_at,"
                         " last_seen_at FROM devices WHERE account_id = ? AND revoked = 0"
                         " ORDER BY created_at, id",
                         &s))
    return -1;
  store_bind_blob(s, 1, BYTES(account, ACCOUNTS_ID_BYTES));
  json_write_key(jw, "devices");
  json_write_array_begin(jw);
  int rc;
  while ((rc = store_step(s)) == STORE_ROW) {
    bytes_t id = store_col_blob(s, 0);
    json_write_object_begin(jw);
    json_write_key(jw, "device_id");
    json_write_base64url(jw, id);
    if (me) {
      size_t nl = 0;
      const char *name = store_col_text(s, 3, &nl);
      json_write_key(jw, "name");
      json_write_string_n(jw, name, nl);
    }
    json_write_key(jw, "signature_key");
    json_write_base64url(jw, store_col_blob(s, 1));
    json_write_key(jw, "certificate");
    json_write_base64url(jw, store_col_blob(s, 2));
    if (me) {
      json_write_key(jw, "created_at");
      json_write_i64(jw, store_col_int64(s, 4));
      json_write_key(jw, "last_seen_at");
      json_write_i64(jw, store_col_int64(s, 5));
      json_write_key(jw, "current");
      json_write_bool(jw, bytes_eq(id, BYTES(me, ACCOUNTS_ID_BYTES)));
    }
    json_write_object_end(jw);
  }
  store_stmt_reset(s);
  json_write_array_end(jw);
  return rc < 0 ? -1 : 0;
}

static int h_devices(const httpd_req *r, httpd_resp *resp) {
  if (!httpd_path_is(r, "/v1/devices")) return not_found(resp);
  uint8_t acc[ACCOUNTS_ID_BYTES], me[ACCOUNTS_ID_BYTES];
  if (!accounts_auth_or_refuse(r, resp, acc, me)) return 0;
  store_conn *c;
  if (store_reader_get(worker_self->store, &c)) return -1;
  json_writer jw;
  json_writer_init(&jw, resp->body, 4);
  json_write_object_begin(&jw);
  if (write_devices(c, &jw, acc, me)) return -1;
  json_write_object_end(&jw);
  return json_writer_finish(&jw) == 0 ? 0 : -1;
}

/* GET /v1/accounts/{account_id}/keys: the account's identity key and its
 * live devices' signature keys with their certificates, so a client can
 * check the devices in its conversations and compute safety numbers. Not
 * found for an unknown account and for a block either way (the same
 * answer). */
static int h_account_keys(const httpd_req *r, httpd_resp *resp) {
  static const char prefix[] = "/v1/accounts/", suffix[] = "/keys";
  size_t idlen = b64_encoded_len(ACCOUNTS_ID_BYTES, B64_MODE_URL_NOPAD);
  http_str path = r->req->path;
  uint8_t me[ACCOUNTS_ID_BYTES], dev[ACCOUNTS_ID_BYTES], who[ACCOUNTS_ID_BYTES];
  if (!accounts_auth_or_refuse(r, resp, me, dev)) return 0;
  size_t got = 0;
  if (path.len != strlen(prefix) + idlen + strlen(suffix) ||
      memcmp(path.ptr, prefix, strlen(prefix)) != 0 ||
      memcmp(path.ptr + strlen(prefix) + idlen, suffix, strlen(suffix)) != 0 ||
      b64_decode(who, sizeof who, path.ptr + strlen(prefix), idlen, B64_MODE_URL_NOPAD,
                 &got) != 0 ||
      got != ACCOUNTS_ID_BYTES)
    return not_found(resp);
  if (memcmp(who, me, sizeof me) != 0 && blocks_between(NULL, me, who))
    return not_found(resp);
  store_conn *c;
  store_stmt *s;
  int rc = store_reader_get(worker_self->store, &c);
  if (rc == 0)
    rc = store_conn_prepare(c, "SELECT identity_key FROM accounts WHERE id = ?", &s);
  if (rc) return -1;
  store_bind_blob(s, 1, BYTES(who, sizeof who));
  rc = store_step(s);
  if (rc != STORE_ROW) {
    store_stmt_reset(s);
    return rc < 0 ? -1 : not_found(resp);
  }
  json_writer jw;
  json_writer_init(&jw, resp->body, 4);
  json_write_object_begin(&jw);
  json_write_key(&jw, "account_id");
  json_write_base64url(&jw, BYTES(who, sizeof who));
  json_write_key(&jw, "identity_key");
  json_write_base64url(&jw, store_col_blob(s, 0));
  store_stmt_reset(s);
  if (write_devices(c, &jw, who, NULL)) return -1;
  json_write_object_end(&jw);
  return json_writer_finish(&jw) == 0 ? 0 : -1;
}

static int h_link_code(const httpd_req *r, httpd_resp *resp) {
  if (!httpd_path_is(r, "/v1/devices/link-codes")) return not_found(resp);
  op *o;
  int rc = auth_write(r, resp, &o);
  if (rc <= 0) return rc;
  if (!account_limit(resp, o, RL_LINK_CODE_ACCOUNT)) return 0;
  o->expires = o->now + ACCOUNTS_LINK_CODE_TTL;
  o->ok_status = 201;
  o->write_ok = write_expiry;
  httpd_defer(r, &o->ticket);
  op_submit(o, run_link_code);
  return HTTPD_DEFERRED;
}

static int h_link(const httpd_req *r, httpd_resp *resp) {
  if (!httpd_path_is(r, "/v1/devices/link")) return not_found(resp);
  uint32_t wait = rl_addr(r, RL_LINK_ADDR);
  if (wait) return too_many(resp, wait);
  body b;
  if (!parse_body(r, &b)) return bad_request(resp, b.err);
  op *o = op_new(OP_WRITE);
  if (!o) return no_memory(resp);
  const char *cerr = "field 'code' must be a string of 8 digits";
  if (get_str(&b, 0, "code", o->code, LINK_CODE_DIGITS, LINK_CODE_DIGITS, true, cerr) <
          0 ||
      !all_digits(o->code, LINK_CODE_DIGITS)) {
    op_free(o);
    return bad_request(resp, cerr);
  }
  if (!get_device(&b, &o->dev)) {
    op_free(o);
    return bad_request(resp, b.err);
  }
  hash_code(o->code, o->code_hash);
  o->code[0] = '\0';
  new_session(o);
  httpd_defer(r, &o->ticket);
  op_submit(o, run_link);
  return HTTPD_DEFERRED;
}

/* ---- phone verification ----------------------------------------------- */

static int dev_sms_send(void *ctx, const char *phone, const char *code) {
  (void)ctx;
  char path[CFG_PATH_MAX + 16], line[64];
  snprintf(path, sizeof path, "%s/dev-sms.log", worker_self->cfg->data_dir);
  int n = snprintf(line, sizeof line, "%s %s\n", phone, code);
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return TSR_EIO;
  /* One write with O_APPEND: lines of several workers do not interleave. */
  ssize_t k = write(fd, line, (size_t)n);
  close(fd);
  return k == n ? 0 : TSR_EIO;
}

static accounts_sms_sender sms = {dev_sms_send, NULL};

void accounts_set_sms_sender(const accounts_sms_sender *s) {
  if (s && s->send) sms = *s;
}

/* After the code is stored: send it, then answer. */
static void phone_code_done(store_job *job, int status) {
  op *o = job->arg;
  if (status == 0) {
    char code[PHONE_CODE_DIGITS + 1];
    memcpy(code, o->code, sizeof code);
    o->code[0] = '\0'; /* not echoed in the answer */
    int rc = sms.send(sms.ctx, o->phone, code);
    sodium_memzero(code, sizeof code);
    if (rc) {
      log_warn("sending a phone code failed: %s", tsr_errname(rc));
      op_fail(o, 503, "busy", "cannot send the code now; retry later");
      return;
    }
  }
  op_done(job, status);
}

static bool phone_body(const httpd_req *r, httpd_resp *resp, op *o, bool with_code) {
  body b;
  if (!parse_body(r, &b)) {
    bad_request(resp, b.err);
    return false;
  }
  const char *perr = "field 'phone' must be an E.164 number";
  if (get_str(&b, 0, "phone", o->phone, sizeof o->phone - 1, 1, true, perr) < 0 ||
      !valid_phone(o->phone)) {
    bad_request(resp, perr);
    return false;
  }
  const char *cerr = "field 'code' must be a string of 6 digits";
  if (with_code && (get_str(&b, 0, "code", o->code, PHONE_CODE_DIGITS, PHONE_CODE_DIGITS,
                            true, cerr) < 0 ||
                    !all_digits(o->code, PHONE_CODE_DIGITS))) {
    bad_request(resp, cerr);
    return false;
  }
  return true;
}

/* auth_write, then the phone body and one attempt of kind for the
 * account: 1 with *out, else what a handler returns, nothing held. */
static int phone_start(const httpd_req *r, httpd_resp *resp, op **out, bool with_code,
                       enum ratelimit_kind kind) {
  op *o;
  int rc = auth_write(r, resp, &o);
  if (rc <= 0) return rc;
  if (!phone_body(r, resp, o, with_code)) {
    op_free(o);
    return 0;
  }
  if (!account_limit(resp, o, kind)) return 0;
  *out = o;
  return 1;
}

static int h_phone_code(const httpd_req *r, httpd_resp *resp) {
  if (!httpd_path_is(r, "/v1/phone/codes")) return not_found(resp);
  op *o;
  int rc = phone_start(r, resp, &o, false, RL_PHONE_SEND_ACCOUNT);
  if (rc <= 0) return rc;
  snprintf(o->code, sizeof o->code, "%06u", (unsigned)randombytes_uniform(1000000u));
  hash_code(o->code, o->code_hash);
  o->expires = o->now + ACCOUNTS_PHONE_CODE_TTL;
  o->write_ok = write_expiry;
  o->job = (store_job){.run = run_phone_code, .done = phone_code_done, .arg = o};
  httpd_defer(r, &o->ticket);
  rc = store_submit(worker_self->sc, &o->job);
  if (rc)
    op_fail(o, rc == TSR_ELIMIT ? 503 : 500, rc == TSR_ELIMIT ? "busy" : "internal",
            "cannot store the code now");
  return HTTPD_DEFERRED;
}

static int h_phone_verify(const httpd_req *r, httpd_resp *resp) {
  if (!httpd_path_is(r, "/v1/phone/verify")) return not_found(resp);
  op *o;
  int rc = phone_start(r, resp, &o, true, RL_PHONE_VERIFY_ACCOUNT);
  if (rc <= 0) return rc;
  hash_code(o->code, o->code_hash);
  o->code[0] = '\0';
  httpd_defer(r, &o->ticket);
  op_submit(o, run_phone_verify);
  return HTTPD_DEFERRED;
}

/* ---- WebSocket sessions ------------------------------------------------
 *
 * An authenticated session's conn->session points at a ws_dev: one entry
 * per device with open sessions on this worker, shared by all of them and
 * reference counted (a hash table keyed by device id). A session therefore
 * costs no memory beyond its 64-byte conn; a device costs one 56-byte
 * entry plus a bucket pointer.
 *
 * Revocation: the worker that commits a revocation closes the device's
 * sessions at once (1008), scanning its conns (revocations are rare, a
 * worker holds under 20,000 conns). Sessions of the device on other
 * workers are caught by a re-check of the device row on this worker's
 * store reader, done before an op (or at a server ping) when the entry's
 * last check is older than ACCOUNTS_WS_RECHECK_MS; the check is shared by
 * every session of the device on the worker, and when it finds the device
 * revoked it closes all of them. */

typedef struct ws_dev {
  struct ws_dev *next; /* hash chain */
  uint8_t account_id[ACCOUNTS_ID_BYTES];
  uint8_t device_id[ACCOUNTS_ID_BYTES];
  uint32_t refs;
  uint32_t checked_ms; /* wrapping ms clock of the last check */
  bool revoked;
  uint32_t nsess, capsess;
  conn **sess; /* its open sessions on this worker, for pushes */
} ws_dev;

static void (*presence_hook)(const uint8_t acc[ACCOUNTS_ID_BYTES],
                             const uint8_t dev[ACCOUNTS_ID_BYTES], bool online);

static struct {
  ws_dev **b;
  size_t nb, n;
  worker *w;
} wsd_devs;

static uint32_t ms32(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint32_t)((uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u);
}

static size_t dev_bucket(const uint8_t id[ACCOUNTS_ID_BYTES], size_t nb) {
  uint64_t h; /* device ids are random */
  memcpy(&h, id, sizeof h);
  return (size_t)(h & (nb - 1));
}

static ws_dev *dev_find(const uint8_t id[ACCOUNTS_ID_BYTES]) {
  if (!wsd_devs.b) return NULL;
  for (ws_dev *d = wsd_devs.b[dev_bucket(id, wsd_devs.nb)]; d; d = d->next)
    if (memcmp(d->device_id, id, ACCOUNTS_ID_BYTES) == 0) return d;
  return NULL;
}

static bool dev_grow(void) {
  size_t nb = wsd_devs.nb ? wsd_devs.nb * 2 : 1024;
  ws_dev **b = calloc(nb, sizeof *b);
  if (!b) return false;
  for (size_t i = 0; i < wsd_devs.nb; i++)
    for (ws_dev *d = wsd_devs.b[i], *nx; d; d = nx) {
      nx = d->next;
      size_t k = dev_bucket(d->device_id, nb);
      d->next = b[k];
      b[k] = d;
    }
  free(wsd_devs.b);
  wsd_devs.b = b;
  wsd_devs.nb = nb;
  return true;
}

static bool sess_add(ws_dev *d, conn *c) {
  if (d->nsess == d->capsess) {
    uint32_t cap = d->capsess ? 2 * d->capsess : 2;
    conn **v = realloc(d->sess, cap * sizeof *v);
    if (!v) return false;
    d->sess = v;
    d->capsess = cap;
  }
  d->sess[d->nsess++] = c;
  return true;
}

static void sess_del(ws_dev *d, conn *c) {
  for (uint32_t i = 0; i < d->nsess; i++)
    if (d->sess[i] == c) {
      d->sess[i] = d->sess[--d->nsess];
      return;
    }
}

/* A reference to the live entry of the device (made when missing) for
 * session c. */
static ws_dev *dev_ref(const uint8_t acc[ACCOUNTS_ID_BYTES],
                       const uint8_t dev[ACCOUNTS_ID_BYTES], conn *c) {
  ws_dev *d = dev_find(dev);
  if (d && !d->revoked) {
    if (!sess_add(d, c)) return NULL;
    d->refs++;
    d->checked_ms = ms32(); /* the caller has just read the row */
    return d;
  }
  if (wsd_devs.n >= wsd_devs.nb && !dev_grow()) return NULL;
  d = calloc(1, sizeof *d);
  if (!d) return NULL;
  memcpy(d->account_id, acc, ACCOUNTS_ID_BYTES);
  memcpy(d->device_id, dev, ACCOUNTS_ID_BYTES);
  d->refs = 1;
  d->checked_ms = ms32();
  if (!sess_add(d, c)) {
    free(d);
    return NULL;
  }
  size_t k = dev_bucket(dev, wsd_devs.nb);
  d->next = wsd_devs.b[k]; /* ahead of a revoked entry of the same id */
  wsd_devs.b[k] = d;
  wsd_devs.n++;
  if (presence_hook) presence_hook(acc, dev, true);
  return d;
}

static void dev_unref(ws_dev *d, conn *c) {
  if (c) sess_del(d, c);
  if (--d->refs) return;
  if (presence_hook && !d->revoked) presence_hook(d->account_id, d->device_id, false);
  free(d->sess);
  ws_dev **p = &wsd_devs.b[dev_bucket(d->device_id, wsd_devs.nb)];
  while (*p != d) p = &(*p)->next;
  *p = d->next;
  wsd_devs.n--;
  free(d);
}

/* Is the device still live? On this thread's store reader. */
static int device_live(const ws_dev *d) {
  store_conn *c;
  store_stmt *s;
  int rc = store_reader_get(worker_self->store, &c);
  if (rc == 0)
    rc = store_conn_prepare(
        c, "SELECT 1 FROM devices WHERE id = ? AND account_id = ? AND revoked = 0", &s);
  if (rc) return TSR_EIO;
  store_bind_blob(s, 1, BYTES(d->device_id, ACCOUNTS_ID_BYTES));
  store_bind_blob(s, 2, BYTES(d->account_id, ACCOUNTS_ID_BYTES));
  rc = store_step(s);
  store_stmt_reset(s);
  return rc == STORE_ROW ? 0 : rc < 0 ? TSR_EIO : TSR_ENOTFOUND;
}

/* Marks d revoked and starts closing its sessions on this worker with 1008,
 * except skip (the conn whose event is running: its caller closes it). */
static void dev_revoke(ws_dev *d, conn *skip) {
  d->revoked = true;
  if (!wsd_devs.w) return;
  uint32_t left = d->refs;
  d->refs++; /* a close below may drop the last session's reference */
  for (conn_chunk *ch = wsd_devs.w->chunks; ch && left; ch = ch->next)
    for (size_t i = 0; i < WORKER_SLAB_CHUNK && left; i++) {
      conn *c = &ch->conns[i];
      if (c->session != d) continue;
      left--;
      if (c == skip || conn_state(c) != CONN_WS) continue;
      wsd_close(c, WS_CLOSE_POLICY, "device revoked");
      conn_settle(c);
    }
  if (presence_hook) presence_hook(d->account_id, d->device_id, false);
  dev_unref(d, NULL);
}

static void ws_device_revoked(const uint8_t device_id[ACCOUNTS_ID_BYTES]) {
  ws_dev *d = dev_find(device_id);
  if (d && !d->revoked) dev_revoke(d, NULL);
}

static int ws_authorize(conn *c) {
  ws_dev *d = c->session;
  if (d->revoked) return WSD_AUTH_REVOKED;
  uint32_t now = ms32();
  if (now - d->checked_ms < ACCOUNTS_WS_RECHECK_MS) return WSD_AUTH_OK;
  int rc = device_live(d);
  if (rc == TSR_ENOTFOUND) {
    dev_revoke(d, c); /* revoked on another worker: close the rest here too */
    return WSD_AUTH_REVOKED;
  }
  if (rc == 0) d->checked_ms = now;
  return WSD_AUTH_OK; /* a read error: keep the session, retry next time */
}

/* Every message of a session takes a token: its account's bucket once
 * authenticated, its address's before. */
static uint32_t ws_limit(conn *c) {
  ws_dev *d = c->session;
  if (d) return rl_take(RL_REQUEST_ACCOUNT, d->account_id, ACCOUNTS_ID_BYTES);
  uint8_t k[16];
  size_t n = conn_peer_key(c, k);
  return rl_take(RL_REQUEST_ADDR, k, n);
}

static void ws_closed(conn *c) { dev_unref(c->session, c); }

static int ws_upgrade(conn *c, const http_request *req, httpd_resp *resp) {
  if (!req->authorization.ptr) return 0; /* authenticates with op "auth" */
  httpd_req hr = {.conn = c, .req = req};
  uint8_t acc[ACCOUNTS_ID_BYTES], dev[ACCOUNTS_ID_BYTES];
  if (!accounts_auth_or_refuse(&hr, resp, acc, dev)) return -1;
  c->session = dev_ref(acc, dev, c);
  if (!c->session) {
    httpd_resp_error(resp, 503, "busy", "server busy; retry later");
    return -1;
  }
  return 0;
}

static void write_ids(json_writer *jw, const ws_dev *d) {
  json_write_key(jw, "account_id");
  json_write_base64url(jw, BYTES(d->account_id, ACCOUNTS_ID_BYTES));
  json_write_key(jw, "device_id");
  json_write_base64url(jw, BYTES(d->device_id, ACCOUNTS_ID_BYTES));
}

static int op_auth(wsd_call *call) {
  conn *c = call->conn;
  if (c->session)
    return wsd_call_error(call, "already_authenticated", "session already authenticated");
  int ti = json_object_get(call->text, call->toks, 0, "token");
  if (ti < 0 || call->toks[ti].type != JSON_STRING)
    return wsd_call_error(call, "bad_request", "token (base64url string) required");
  uint8_t acc[ACCOUNTS_ID_BYTES], dev[ACCOUNTS_ID_BYTES];
  const json_token *t = &call->toks[ti];
  int rc =
      accounts_authenticate_token(call->text + t->start, t->end - t->start, acc, dev);
  if (rc == TSR_ENOTFOUND)
    return wsd_call_error(call, "unauthorized", "unknown or revoked token");
  if (rc) return wsd_call_error(call, "internal", "internal error");
  ws_dev *d = dev_ref(acc, dev, c);
  if (!d) return wsd_call_error(call, "busy", "server busy; retry later");
  c->session = d;
  wsd_authenticated(c);
  write_ids(call->ok, d);
  return 0;
}

static int op_whoami(wsd_call *call) {
  write_ids(call->ok, call->conn->session);
  return 0;
}

void accounts_session_ids(const conn *c, uint8_t acc[ACCOUNTS_ID_BYTES],
                          uint8_t dev[ACCOUNTS_ID_BYTES]) {
  const ws_dev *d = c->session;
  memcpy(acc, d->account_id, ACCOUNTS_ID_BYTES);
  memcpy(dev, d->device_id, ACCOUNTS_ID_BYTES);
}

void accounts_each_session(const uint8_t dev[ACCOUNTS_ID_BYTES],
                           void (*fn)(conn *c, void *arg), void *arg) {
  ws_dev *d = dev_find(dev);
  if (!d || d->revoked) return;
  d->refs++; /* fn may close a session */
  for (uint32_t i = d->nsess; i-- > 0;)
    if (i < d->nsess) fn(d->sess[i], arg);
  dev_unref(d, NULL);
}

void accounts_set_presence_hook(void (*fn)(const uint8_t acc[ACCOUNTS_ID_BYTES],
                                           const uint8_t dev[ACCOUNTS_ID_BYTES],
                                           bool online)) {
  presence_hook = fn;
}

static void (*devices_hook)(const uint8_t acc[ACCOUNTS_ID_BYTES], const uint8_t *revoked);

void accounts_set_devices_hook(void (*fn)(const uint8_t acc[ACCOUNTS_ID_BYTES],
                                          const uint8_t *revoked)) {
  devices_hook = fn;
}

void accounts_devices_changed(const uint8_t acc[ACCOUNTS_ID_BYTES],
                              const uint8_t *revoked) {
  if (devices_hook) devices_hook(acc, revoked);
}

void accounts_each_online(void (*fn)(const uint8_t acc[ACCOUNTS_ID_BYTES],
                                     const uint8_t dev[ACCOUNTS_ID_BYTES], void *arg),
                          void *arg) {
  for (size_t i = 0; i < wsd_devs.nb; i++)
    for (ws_dev *d = wsd_devs.b[i]; d; d = d->next)
      if (!d->revoked) fn(d->account_id, d->device_id, arg);
}

/* ---- setup ------------------------------------------------------------ */

int accounts_routes(void) {
  if (sodium_init() < 0) return TSR_ECRYPTO;
  static const struct {
    http_method m;
    const char *prefix;
    httpd_handler fn;
  } t[] = {
      {HTTP_POST, "/v1/accounts", h_register},
      {HTTP_GET, "/v1/accounts", h_account_keys},
      {HTTP_POST, "/v1/sessions", h_login},
      {HTTP_DELETE, "/v1/sessions", h_logout},
      {HTTP_GET, "/v1/devices", h_devices},
      {HTTP_DELETE, "/v1/devices", h_revoke},
      {HTTP_POST, "/v1/devices/link-codes", h_link_code},
      {HTTP_POST, "/v1/devices/link", h_link},
      {HTTP_POST, "/v1/phone/codes", h_phone_code},
      {HTTP_POST, "/v1/phone/verify", h_phone_verify},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    int rc = httpd_route_add(t[i].m, t[i].prefix, t[i].fn);
    if (rc) return rc;
  }
  wsd_auth_hooks h = {.upgrade = ws_upgrade,
                      .authorize = ws_authorize,
                      .limit = ws_limit,
                      .close = ws_closed};
  wsd_set_auth(&h);
  int rc = wsd_op_add_public("auth", op_auth);
  return rc ? rc : wsd_op_add("whoami", op_whoami);
}

int accounts_worker_start(worker *w) {
  wsd_devs.w = w;
  hasher.loop = &w->loop;
  hasher.stop = false;
  if (pthread_create(&hasher.th, NULL, hasher_main, NULL) != 0) return TSR_ENOMEM;
  hasher.running = true;
  return 0;
}

void accounts_worker_stop(worker *w) {
  (void)w;
  if (hasher.running) {
    pthread_mutex_lock(&hasher.mu);
    hasher.stop = true;
    pthread_cond_broadcast(&hasher.cv);
    pthread_mutex_unlock(&hasher.mu);
    pthread_join(hasher.th, NULL);
    hasher.running = false;
  }
  /* Requests never hashed: their conns are closed, so just free them. */
  while (hasher.head) {
    op *o = hasher.head;
    hasher.head = o->next;
    op_free(o);
  }
  hasher.tail = NULL;
  hasher.queued = 0;
  /* Every conn is closed by now, so every entry was released. */
  free(wsd_devs.b);
  wsd_devs.b = NULL;
  wsd_devs.nb = wsd_devs.n = 0;
  wsd_devs.w = NULL;
}
