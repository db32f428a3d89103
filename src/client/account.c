/* Accounts, sessions and devices (docs/protocol.md, "Accounts and
 * devices"): request bodies, keys and certificates, and what the state
 * file keeps of each answer. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client.h"
#include "proto/base64.h"
#include "proto/json.h"

/* ---- keys and certificates ------------------------------------------------ */

void device_cert_message(const uint8_t device_pk[32],
                         uint8_t out[TSR_DEVICE_CERT_MSG_LEN]) {
  static const char label[] = TSR_DEVICE_CERT_LABEL;
  memcpy(out, label, sizeof label - 1);
  out[sizeof label - 1] = 0x00;
  memcpy(out + sizeof label, device_pk, 32);
}

int device_cert_sign(const uint8_t identity_sk[64], const uint8_t device_pk[32],
                     uint8_t sig[64]) {
  uint8_t msg[TSR_DEVICE_CERT_MSG_LEN];
  device_cert_message(device_pk, msg);
  return crypto_sign_ed25519_detached(sig, NULL, msg, sizeof msg, identity_sk) == 0
             ? 0
             : TSR_ECRYPTO;
}

static void b64url(const uint8_t *in, size_t len, char *out, size_t cap) {
  size_t n = 0;
  if (b64_encode(out, cap - 1, in, len, B64_MODE_URL_NOPAD, &n) != 0) n = 0;
  out[n] = '\0';
}

/* Decodes exactly want bytes of base64url text. */
static int unb64url(const char *in, uint8_t *out, size_t want) {
  if (!in) return TSR_EINVAL;
  size_t len = strlen(in), n = 0;
  if (b64_decoded_max(len) != want) return TSR_EDECODE;
  int rc = b64_decode(out, want, in, len, B64_MODE_URL_NOPAD, &n);
  if (rc) return TSR_EDECODE;
  return n == want ? 0 : TSR_EDECODE;
}

/* Reads a key pair stored under pk_key/sk_key; TSR_ENOTFOUND if absent. */
static int load_pair(cstate *st, const char *pk_key, const char *sk_key, uint8_t pk[32],
                     uint8_t sk[64]) {
  buf_t a, b;
  buf_init(&a);
  buf_init(&b);
  int rc = cstate_get(st, pk_key, &a);
  if (rc == 0 && sk) rc = cstate_get(st, sk_key, &b);
  if (rc == 0 && (a.len != 32 || (sk && b.len != 64))) rc = TSR_EDECODE;
  if (rc == 0) {
    memcpy(pk, a.ptr, 32);
    if (sk) memcpy(sk, b.ptr, 64);
  }
  buf_free(&a);
  buf_free_secret(&b);
  return rc;
}

/* Loads the pair, or generates and stores a new one. */
static int ensure_pair(cstate *st, const char *pk_key, const char *sk_key, uint8_t pk[32],
                       uint8_t sk[64]) {
  int rc = load_pair(st, pk_key, sk_key, pk, sk);
  if (rc != TSR_ENOTFOUND) return rc;
  if (crypto_sign_ed25519_keypair(pk, sk) != 0) return TSR_ECRYPTO;
  if ((rc = cstate_begin(st))) return rc;
  rc = cstate_put(st, sk_key, BYTES(sk, 64));
  if (rc == 0) rc = cstate_put(st, pk_key, BYTES(pk, 32));
  if (rc == 0) rc = cstate_commit(st);
  if (rc) {
    cstate_rollback(st);
    sodium_memzero(sk, 64);
  }
  return rc;
}

static bool has_key(cstate *st, const char *key) {
  buf_t b;
  buf_init(&b);
  int rc = cstate_get(st, key, &b);
  buf_free_secret(&b);
  return rc == 0;
}

/* Text value of key into out (cap bytes, NUL-terminated); "" if absent. */
static void get_text(cstate *st, const char *key, char *out, size_t cap) {
  buf_t b;
  buf_init(&b);
  out[0] = '\0';
  if (cstate_get(st, key, &b) == 0 && b.len < cap) {
    memcpy(out, b.ptr, b.len);
    out[b.len] = '\0';
  }
  buf_free_secret(&b);
}

/* ---- request bodies ----------------------------------------------------------- */

/* Writes "device": {name, signature_key, certificate?}. */
static void write_device(json_writer *w, const char *name, const uint8_t pk[32],
                         const uint8_t *cert) {
  json_write_key(w, "device");
  json_write_object_begin(w);
  json_write_key(w, "name");
  json_write_string(w, name);
  json_write_key(w, "signature_key");
  json_write_base64url(w, BYTES(pk, 32));
  if (cert) {
    json_write_key(w, "certificate");
    json_write_base64url(w, BYTES(cert, 64));
  }
  json_write_object_end(w);
}

static int finish_body(json_writer *w, creq *r) {
  int rc = json_writer_finish(w);
  if (rc) return rc == JSON_E_NOMEM ? TSR_ENOMEM : TSR_EINVAL;
  r->has_body = true;
  return 0;
}

static bool nonempty(const char *s) { return s && *s; }

static creq *new_req(const char *method, const char *path, int kind, bool auth) {
  creq *r = client_req_new(method, path);
  if (r) {
    r->kind = kind;
    r->auth = auth;
  }
  return r;
}

static int submit(tsr_client *c, creq *r, tsr_result_cb cb, void *arg) {
  r->cb = cb;
  r->cb_arg = arg;
  return client_submit(c, r);
}

/* ---- accounts and sessions --------------------------------------------------- */

int tsr_account_register(tsr_client *c, const tsr_register_params *p, tsr_result_cb cb,
                         void *arg) {
  if (!c || !p || !nonempty(p->login) || !nonempty(p->password) ||
      !nonempty(p->device_name) || strlen(p->login) >= TSR_LOGIN_SIZE)
    return TSR_EINVAL;
  cstate *st = client_state(c);
  if (has_key(st, K_TOKEN)) return TSR_ESTATE;
  char stored[TSR_LOGIN_SIZE];
  get_text(st, K_LOGIN, stored, sizeof stored);
  /* An identity key kept for another account must not be reused. */
  if (stored[0] && strcmp(stored, p->login) != 0 && has_key(st, K_IDENTITY_SK))
    return TSR_ECONFLICT;
  uint8_t id_pk[32], id_sk[64], dev_pk[32], dev_sk[64], cert[64];
  int rc = ensure_pair(st, K_IDENTITY_PK, K_IDENTITY_SK, id_pk, id_sk);
  if (rc == 0) rc = ensure_pair(st, K_DEVICE_PK, K_DEVICE_SK, dev_pk, dev_sk);
  if (rc == 0) rc = device_cert_sign(id_sk, dev_pk, cert);
  sodium_memzero(id_sk, sizeof id_sk);
  sodium_memzero(dev_sk, sizeof dev_sk);
  if (rc) return rc;
  creq *r = new_req("POST", "/v1/accounts", REQ_SESSION, false);
  if (!r) return TSR_ENOMEM;
  snprintf(r->aux2, sizeof r->aux2, "%s", p->login);
  json_writer w;
  json_writer_init(&w, &r->body, 0);
  json_write_object_begin(&w);
  json_write_key(&w, "login");
  json_write_string(&w, p->login);
  json_write_key(&w, "password");
  json_write_string(&w, p->password);
  if (nonempty(p->phone)) {
    json_write_key(&w, "phone");
    json_write_string(&w, p->phone);
  }
  if (nonempty(p->email)) {
    json_write_key(&w, "email");
    json_write_string(&w, p->email);
  }
  json_write_key(&w, "identity_key");
  json_write_base64url(&w, BYTES(id_pk, 32));
  write_device(&w, p->device_name, dev_pk, cert);
  json_write_object_end(&w);
  if ((rc = finish_body(&w, r))) {
    client_req_free(r);
    return rc;
  }
  return submit(c, r, cb, arg);
}

int tsr_session_login(tsr_client *c, const char *login, const char *password,
                      const char *device_name, const char *certificate_b64,
                      tsr_result_cb cb, void *arg) {
  if (!c || !nonempty(login) || !nonempty(password) || !nonempty(device_name) ||
      strlen(login) >= TSR_LOGIN_SIZE)
    return TSR_EINVAL;
  uint8_t dev_pk[32], dev_sk[64], cert[64];
  int rc;
  if (certificate_b64 && (rc = unb64url(certificate_b64, cert, sizeof cert))) return rc;
  cstate *st = client_state(c);
  if (has_key(st, K_TOKEN)) return TSR_ESTATE;
  if (!certificate_b64) {
    /* Certify ourselves, only with this account's identity key. */
    char stored[TSR_LOGIN_SIZE];
    get_text(st, K_LOGIN, stored, sizeof stored);
    if (strcmp(stored, login) != 0 || !has_key(st, K_IDENTITY_SK)) return TSR_ESTATE;
  }
  rc = ensure_pair(st, K_DEVICE_PK, K_DEVICE_SK, dev_pk, dev_sk);
  sodium_memzero(dev_sk, sizeof dev_sk);
  if (rc) return rc;
  if (!certificate_b64) {
    uint8_t id_pk[32], id_sk[64];
    rc = load_pair(st, K_IDENTITY_PK, K_IDENTITY_SK, id_pk, id_sk);
    if (rc == 0) rc = device_cert_sign(id_sk, dev_pk, cert);
    sodium_memzero(id_sk, sizeof id_sk);
    if (rc) return rc;
  }
  creq *r = new_req("POST", "/v1/sessions", REQ_SESSION, false);
  if (!r) return TSR_ENOMEM;
  snprintf(r->aux2, sizeof r->aux2, "%s", login);
  json_writer w;
  json_writer_init(&w, &r->body, 0);
  json_write_object_begin(&w);
  json_write_key(&w, "login");
  json_write_string(&w, login);
  json_write_key(&w, "password");
  json_write_string(&w, password);
  write_device(&w, device_name, dev_pk, cert);
  json_write_object_end(&w);
  if ((rc = finish_body(&w, r))) {
    client_req_free(r);
    return rc;
  }
  return submit(c, r, cb, arg);
}

int tsr_session_logout(tsr_client *c, tsr_result_cb cb, void *arg) {
  if (!c) return TSR_EINVAL;
  if (!has_key(client_state(c), K_TOKEN)) return TSR_ESTATE;
  creq *r = new_req("DELETE", "/v1/sessions/current", REQ_LOGOUT, true);
  if (!r) return TSR_ENOMEM;
  return submit(c, r, cb, arg);
}

/* ---- devices ---------------------------------------------------------------- */

int tsr_devices_list(tsr_client *c, tsr_result_cb cb, void *arg) {
  if (!c) return TSR_EINVAL;
  if (!has_key(client_state(c), K_TOKEN)) return TSR_ESTATE;
  creq *r = new_req("GET", "/v1/devices", REQ_PLAIN, true);
  if (!r) return TSR_ENOMEM;
  return submit(c, r, cb, arg);
}

static bool b64url_text(const char *s, size_t max) {
  size_t n = strlen(s);
  if (n == 0 || n > max) return false;
  for (; *s; s++) {
    char ch = *s;
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
          (ch >= '0' && ch <= '9') || ch == '-' || ch == '_'))
      return false;
  }
  return true;
}

int tsr_device_revoke(tsr_client *c, const char *device_id, tsr_result_cb cb, void *arg) {
  if (!c || !device_id || !b64url_text(device_id, 64)) return TSR_EINVAL;
  if (!has_key(client_state(c), K_TOKEN)) return TSR_ESTATE;
  char path[96];
  snprintf(path, sizeof path, "/v1/devices/%s", device_id);
  creq *r = new_req("DELETE", path, REQ_REVOKE, true);
  if (!r) return TSR_ENOMEM;
  snprintf(r->aux, sizeof r->aux, "%s", device_id);
  return submit(c, r, cb, arg);
}

int tsr_device_key(tsr_client *c, char out[TSR_KEY_B64_SIZE]) {
  if (!c || !out) return TSR_EINVAL;
  uint8_t pk[32], sk[64];
  int rc = ensure_pair(client_state(c), K_DEVICE_PK, K_DEVICE_SK, pk, sk);
  sodium_memzero(sk, sizeof sk);
  if (rc) return rc;
  b64url(pk, 32, out, TSR_KEY_B64_SIZE);
  return 0;
}

int tsr_device_certify(tsr_client *c, const char *device_key_b64,
                       char out[TSR_CERT_B64_SIZE]) {
  if (!c || !device_key_b64 || !out) return TSR_EINVAL;
  uint8_t key[32], id_pk[32], id_sk[64], sig[64];
  int rc = unb64url(device_key_b64, key, sizeof key);
  if (rc) return rc;
  rc = load_pair(client_state(c), K_IDENTITY_PK, K_IDENTITY_SK, id_pk, id_sk);
  if (rc == TSR_ENOTFOUND) return TSR_ESTATE;
  if (rc == 0) rc = device_cert_sign(id_sk, key, sig);
  sodium_memzero(id_sk, sizeof id_sk);
  if (rc) return rc;
  b64url(sig, sizeof sig, out, TSR_CERT_B64_SIZE);
  return 0;
}

int tsr_link_code_create(tsr_client *c, const char *device_key_b64, tsr_result_cb cb,
                         void *arg) {
  if (!c || !device_key_b64) return TSR_EINVAL;
  char cert[TSR_CERT_B64_SIZE];
  int rc = tsr_device_certify(c, device_key_b64, cert);
  if (rc) return rc;
  if (!has_key(client_state(c), K_TOKEN)) return TSR_ESTATE;
  creq *r = new_req("POST", "/v1/devices/link-codes", REQ_LINKCODE, true);
  if (!r) return TSR_ENOMEM;
  snprintf(r->aux, sizeof r->aux, "%s", device_key_b64);
  snprintf(r->aux2, sizeof r->aux2, "%s", cert);
  if (buf_append(&r->body, "{}", 2)) {
    client_req_free(r);
    return TSR_ENOMEM;
  }
  r->has_body = true;
  return submit(c, r, cb, arg);
}

int tsr_device_link(tsr_client *c, const char *code, const char *certificate_b64,
                    const char *device_name, tsr_result_cb cb, void *arg) {
  if (!c || !nonempty(code) || !certificate_b64 || !nonempty(device_name) ||
      strlen(code) > 64)
    return TSR_EINVAL;
  uint8_t cert[64], dev_pk[32], dev_sk[64];
  int rc = unb64url(certificate_b64, cert, sizeof cert);
  if (rc) return rc;
  cstate *st = client_state(c);
  if (has_key(st, K_TOKEN)) return TSR_ESTATE;
  rc = ensure_pair(st, K_DEVICE_PK, K_DEVICE_SK, dev_pk, dev_sk);
  sodium_memzero(dev_sk, sizeof dev_sk);
  if (rc) return rc;
  creq *r = new_req("POST", "/v1/devices/link", REQ_SESSION, false);
  if (!r) return TSR_ENOMEM;
  json_writer w;
  json_writer_init(&w, &r->body, 0);
  json_write_object_begin(&w);
  json_write_key(&w, "code");
  json_write_string(&w, code);
  write_device(&w, device_name, dev_pk, cert);
  json_write_object_end(&w);
  if ((rc = finish_body(&w, r))) {
    client_req_free(r);
    return rc;
  }
  return submit(c, r, cb, arg);
}

/* ---- answers ---------------------------------------------------------------- */

/* Removes the session (and the device key, which the server no longer
 * accepts, with the private parts of the device's KeyPackages, which the
 * server deleted); the identity key and login stay. */
static int clear_session(cstate *st) {
  static const char *const keys[] = {K_TOKEN, K_ACCOUNT_ID, K_DEVICE_ID, K_DEVICE_PK,
                                     K_DEVICE_SK};
  int rc = cstate_begin(st);
  for (size_t i = 0; rc == 0 && i < sizeof keys / sizeof keys[0]; i++)
    rc = cstate_del(st, keys[i]);
  if (rc == 0) rc = cstate_kp_clear(st);
  if (rc == 0) rc = cstate_commit(st);
  if (rc) cstate_rollback(st);
  return rc;
}

/* Copies the string member key of the object at 0 into out. */
static int member(const char *body, const json_token *t, const char *key, char *out,
                  size_t cap) {
  int i = json_object_get(body, t, 0, key);
  if (i < 0 || json_get_string(body, t, i, out, cap, NULL, 0) != 0 || !out[0])
    return TSR_EDECODE;
  return 0;
}

static int keep_session(cstate *st, const tsr_result *res, const char *login) {
  json_token t[64];
  char acc[64], dev[64], tok[128];
  if (json_parse(res->body, res->body_len, t, 64, NULL) <= 0 ||
      t[0].type != JSON_OBJECT || member(res->body, t, "account_id", acc, sizeof acc) ||
      member(res->body, t, "device_id", dev, sizeof dev) ||
      member(res->body, t, "token", tok, sizeof tok))
    return TSR_EDECODE;
  int rc = cstate_begin(st);
  /* A new device id: KeyPackage secrets of an earlier one are useless. */
  if (rc == 0) rc = cstate_kp_clear(st);
  if (rc == 0) rc = cstate_put(st, K_ACCOUNT_ID, BYTES(acc, strlen(acc)));
  if (rc == 0) rc = cstate_put(st, K_DEVICE_ID, BYTES(dev, strlen(dev)));
  if (rc == 0) rc = cstate_put(st, K_TOKEN, BYTES(tok, strlen(tok)));
  if (rc == 0 && login[0]) rc = cstate_put(st, K_LOGIN, BYTES(login, strlen(login)));
  if (rc == 0) rc = cstate_commit(st);
  if (rc) cstate_rollback(st);
  sodium_memzero(tok, sizeof tok);
  return rc;
}

/* Rewrites a link-code answer to carry the certificate made here. */
static int linkcode_body(const creq *r, const tsr_result *res, buf_t *out) {
  json_token t[64];
  if (json_parse(res->body, res->body_len, t, 64, NULL) <= 0 || t[0].type != JSON_OBJECT)
    return TSR_EDECODE;
  char code[64];
  if (member(res->body, t, "code", code, sizeof code)) return TSR_EDECODE;
  int ie = json_object_get(res->body, t, 0, "expires_at");
  json_writer w;
  json_writer_init(&w, out, 0);
  json_write_object_begin(&w);
  json_write_key(&w, "code");
  json_write_string(&w, code);
  if (ie >= 0 && t[ie].type == JSON_NUMBER) {
    json_write_key(&w, "expires_at");
    json_write_number(&w, res->body + t[ie].start, t[ie].end - t[ie].start);
  }
  json_write_key(&w, "certificate");
  json_write_string(&w, r->aux2);
  json_write_key(&w, "signature_key");
  json_write_string(&w, r->aux);
  json_write_object_end(&w);
  return json_writer_finish(&w) ? TSR_EDECODE : 0;
}

void account_complete(tsr_client *c, creq *r, tsr_result *res) {
  cstate *st = client_state(c);
  tsr_result local = *res;
  buf_t body;
  buf_init(&body);
  int rc = 0;
  if (res->err == 0) {
    switch (r->kind) {
    case REQ_SESSION: rc = keep_session(st, res, r->aux2); break;
    case REQ_LOGOUT: rc = clear_session(st); break;
    case REQ_REVOKE: {
      char mine[64];
      get_text(st, K_DEVICE_ID, mine, sizeof mine);
      if (!strcmp(mine, r->aux)) rc = clear_session(st);
      break;
    }
    case REQ_LINKCODE:
      rc = linkcode_body(r, res, &body);
      if (rc == 0) {
        local.body = (const char *)body.ptr;
        local.body_len = body.len;
      }
      break;
    default: break;
    }
  } else if (r->kind == REQ_LOGOUT && !strcmp(res->code, "unauthorized")) {
    /* The token is already dead (revoked elsewhere): forget it too. */
    clear_session(st);
  }
  if (rc) {
    local.err = rc;
    local.code = rc == TSR_EDECODE ? "bad_response" : "state";
    local.message = rc == TSR_EDECODE ? "unexpected answer from the server"
                                      : "the state file could not be updated";
  }
  if (r->cb) r->cb(r->cb_arg, &local);
  buf_free(&body);
}

/* ---- local session -------------------------------------------------------------- */

int tsr_client_session(tsr_client *c, tsr_session_info *out) {
  if (!c || !out) return TSR_EINVAL;
  cstate *st = client_state(c);
  tsr_session_info s;
  memset(&s, 0, sizeof s);
  s.logged_in = has_key(st, K_TOKEN);
  s.has_identity_key = has_key(st, K_IDENTITY_SK);
  get_text(st, K_LOGIN, s.login, sizeof s.login);
  get_text(st, K_ACCOUNT_ID, s.account_id, sizeof s.account_id);
  get_text(st, K_DEVICE_ID, s.device_id, sizeof s.device_id);
  uint8_t pk[32];
  if (load_pair(st, K_DEVICE_PK, NULL, pk, NULL) == 0)
    b64url(pk, 32, s.device_key, sizeof s.device_key);
  if (load_pair(st, K_IDENTITY_PK, NULL, pk, NULL) == 0)
    b64url(pk, 32, s.identity_key, sizeof s.identity_key);
  *out = s;
  return 0;
}

/* ---- blocking forms ------------------------------------------------------------- */

static char *dup_n(const char *s, size_t n) {
  char *d = malloc(n + 1);
  if (d) {
    if (n) memcpy(d, s, n);
    d[n] = '\0';
  }
  return d;
}

void client_reply_cb(void *arg, const tsr_result *res) {
  tsr_reply *r = arg;
  r->err = res->err;
  r->status = res->status;
  r->code = dup_n(res->code, strlen(res->code));
  r->message = dup_n(res->message, strlen(res->message));
  r->body = dup_n(res->body, res->body_len);
  r->body_len = res->body_len;
  if (!r->code || !r->message || !r->body) r->err = TSR_ENOMEM;
  r->done = 1;
}

void tsr_reply_clear(tsr_reply *r) {
  if (!r) return;
  free(r->code);
  free(r->message);
  if (r->body) sodium_memzero(r->body, r->body_len); /* may hold a token */
  free(r->body);
  memset(r, 0, sizeof *r);
}

int client_sync_wait(tsr_client *c, int rc, tsr_reply *r, bool discard) {
  if (rc == 0) rc = client_wait(c, &r->done);
  if (rc == 0) rc = r->err;
  if (discard) tsr_reply_clear(r);
  return rc;
}

int tsr_account_register_sync(tsr_client *c, const tsr_register_params *p,
                              tsr_reply *out) {
  SYNC(tsr_account_register(c, p, client_reply_cb, r_));
}
int tsr_session_login_sync(tsr_client *c, const char *login, const char *password,
                           const char *device_name, const char *certificate_b64,
                           tsr_reply *out) {
  SYNC(tsr_session_login(c, login, password, device_name, certificate_b64,
                         client_reply_cb, r_));
}
int tsr_session_logout_sync(tsr_client *c, tsr_reply *out) {
  SYNC(tsr_session_logout(c, client_reply_cb, r_));
}
int tsr_devices_list_sync(tsr_client *c, tsr_reply *out) {
  SYNC(tsr_devices_list(c, client_reply_cb, r_));
}
int tsr_device_revoke_sync(tsr_client *c, const char *device_id, tsr_reply *out) {
  SYNC(tsr_device_revoke(c, device_id, client_reply_cb, r_));
}
int tsr_link_code_create_sync(tsr_client *c, const char *device_key_b64, tsr_reply *out) {
  SYNC(tsr_link_code_create(c, device_key_b64, client_reply_cb, r_));
}
int tsr_device_link_sync(tsr_client *c, const char *code, const char *certificate_b64,
                         const char *device_name, tsr_reply *out) {
  SYNC(tsr_device_link(c, code, certificate_b64, device_name, client_reply_cb, r_));
}
