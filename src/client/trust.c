/* Who the people in a conversation are (tessera/tessera.h, "Notices"):
 * every member device's MLS signature key must be a device key certified
 * by its account's identity key, and an account's identity key must stay
 * the one first seen here.
 *
 * After each list of the conversations and after a commit, the chat walks
 * its groups; an account with a leaf whose key it has not verified in
 * this run is fetched (GET /v1/accounts/{id}/keys, one at a time), its
 * device certificates checked with the identity key, and the identity key
 * compared with the one stored (table identities: trust on first use).
 * A changed identity key adds a notice "identity_changed" to every
 * conversation the account is in; a member device without a valid
 * certificate of the current identity key adds "unverified_device". A
 * notice is stored once (table notices) and handed to on_notice. The
 * server could swap keys; this is how people learn of it, and the safety
 * number (tsr_safety_number) is how they check.
 *
 * Threads: the chat's. Memory: the verified keys of this run only. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/chat.h"
#include "proto/base64.h"
#include "proto/json.h"

#define TRUST_KEYS_MAX 64 /* certified device keys kept per account */

typedef struct {
  char account[TSR_ID_B64_SIZE];
  uint8_t identity[32];
  uint8_t (*keys)[32]; /* device keys with a valid certificate */
  size_t n_keys;
  bool fetched; /* in this round: a leaf whose key is not in keys is unverified */
} known;

struct chat_trust {
  known *v;
  size_t n;
  char (*todo)[TSR_ID_B64_SIZE]; /* accounts to fetch this round */
  size_t n_todo, next;
  bool running, again;
};

static struct chat_trust *trust_of(tsr_chat *h) {
  struct chat_trust **slot = chat_trust_slot(h);
  if (!*slot) *slot = calloc(1, sizeof **slot);
  return *slot;
}

void trust_free(tsr_chat *h) {
  struct chat_trust **slot = chat_trust_slot(h);
  struct chat_trust *t = *slot;
  if (!t) return;
  for (size_t i = 0; i < t->n; i++) free(t->v[i].keys);
  free(t->v);
  free(t->todo);
  free(t);
  *slot = NULL;
}

static known *known_find(struct chat_trust *t, const char *acc) {
  for (size_t i = 0; i < t->n; i++)
    if (!strcmp(t->v[i].account, acc)) return &t->v[i];
  return NULL;
}

static bool has_key(const known *k, const uint8_t key[32]) {
  for (size_t i = 0; k && i < k->n_keys; i++)
    if (sodium_memcmp(k->keys[i], key, 32) == 0) return true;
  return false;
}

static sqlite3 *db(tsr_chat *h) { return cstate_db(client_state(chat_client(h))); }

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Stores a notice once (same conversation, kind, account and text) and
 * hands it over. */
static void notice(tsr_chat *h, const char *conv, const char *kind, const char *acc,
                   const char *text) {
  sqlite3 *d = db(h);
  sqlite3_stmt *st = NULL;
  bool exists = false;
  if (sqlite3_prepare_v2(d,
                         "SELECT 1 FROM notices WHERE conversation = ? AND kind = ?"
                         " AND account = ? AND text = ?",
                         -1, &st, NULL) == SQLITE_OK) {
    sqlite3_bind_text(st, 1, conv, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, acc, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, text, -1, SQLITE_STATIC);
    exists = sqlite3_step(st) == SQLITE_ROW;
  }
  sqlite3_finalize(st);
  if (exists) return;
  uint64_t after = 0;
  if (sqlite3_prepare_v2(d, "SELECT last_seq FROM conversations WHERE id = ?", -1, &st,
                         NULL) == SQLITE_OK) {
    sqlite3_bind_text(st, 1, conv, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) after = (uint64_t)sqlite3_column_int64(st, 0);
  }
  sqlite3_finalize(st);
  int64_t at = now_ms();
  int rc = SQLITE_ERROR;
  if (sqlite3_prepare_v2(d,
                         "INSERT INTO notices(conversation, after_seq, at, kind, account,"
                         " text) VALUES (?, ?, ?, ?, ?, ?)",
                         -1, &st, NULL) == SQLITE_OK) {
    sqlite3_bind_text(st, 1, conv, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (int64_t)after);
    sqlite3_bind_int64(st, 3, at);
    sqlite3_bind_text(st, 4, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, acc, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, text, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
  }
  sqlite3_finalize(st);
  const tsr_chat_config *cfg = chat_config(h);
  if (rc == SQLITE_DONE && cfg->on_notice) {
    tsr_notice n = {conv, after, at, kind, acc, text};
    cfg->on_notice(cfg->arg, &n);
  }
}

/* Calls fn for every leaf of another account in conversation only (NULL:
 * in every conversation held here, not left or removed). */
static void each_leaf(tsr_chat *h, const char *only,
                      void (*fn)(tsr_chat *h, const char *conv, const char *acc,
                                 const uint8_t key[32], void *arg),
                      void *arg) {
  tsr_session_info me;
  if (tsr_client_session(chat_client(h), &me) != 0) return;
  tsr_conversation_info *v = NULL;
  size_t n = 0;
  if (tsr_conversations_local(chat_client(h), &v, &n) != 0) return;
  for (size_t i = 0; i < n; i++) {
    if (!strcmp(v[i].state, "left") || !strcmp(v[i].state, "removed")) continue;
    if (only && strcmp(v[i].id, only)) continue;
    mls_group *g = NULL;
    if (chat_group_load(h, v[i].id, &g, NULL) != 0) continue;
    uint32_t leaves = group_leaf_count(g);
    for (uint32_t l = 0; l < leaves; l++) {
      bytes_t who, key;
      if (group_member(g, l, &who) != 0 || who.len != 32 ||
          group_member_signature_key(g, l, &key) != 0 || key.len != 32)
        continue;
      char acc[TSR_ID_B64_SIZE];
      size_t an = 0;
      b64_encode(acc, sizeof acc, who.ptr, 16, B64_MODE_URL_NOPAD, &an);
      acc[an] = '\0';
      if (!strcmp(acc, me.account_id)) continue;
      fn(h, v[i].id, acc, key.ptr, arg);
    }
    group_free(g);
  }
  free(v);
}

static void want(tsr_chat *h, const char *conv, const char *acc, const uint8_t key[32],
                 void *arg) {
  (void)conv;
  (void)arg;
  struct chat_trust *t = trust_of(h);
  known *k = known_find(t, acc);
  if (k && has_key(k, key)) return;
  if (k && k->fetched) return; /* fetched this round: judged in judge() */
  for (size_t i = 0; i < t->n_todo; i++)
    if (!strcmp(t->todo[i], acc)) return;
  char(*nt)[TSR_ID_B64_SIZE] = realloc(t->todo, (t->n_todo + 1) * sizeof *nt);
  if (!nt) return;
  t->todo = nt;
  memcpy(t->todo[t->n_todo++], acc, TSR_ID_B64_SIZE);
}

static void judge(tsr_chat *h, const char *conv, const char *acc, const uint8_t key[32],
                  void *arg) {
  (void)arg;
  known *k = known_find(trust_of(h), acc);
  if (!k || !k->fetched || has_key(k, key)) return;
  char text[200], hex[17];
  sodium_bin2hex(hex, sizeof hex, key, 8);
  snprintf(text, sizeof text,
           "a device of %s (key %s...) is not certified by their identity key", acc, hex);
  notice(h, conv, "unverified_device", acc, text);
}

/* The account's identity key against the stored one; a change is noticed
 * in every conversation the account is in. */
static void in_conv(tsr_chat *h, const char *conv, const char *acc, const uint8_t key[32],
                    void *arg) {
  (void)key;
  if (strcmp(acc, arg)) return;
  char text[200];
  snprintf(text, sizeof text,
           "the identity key of %s changed: compare your safety number again"
           " (tessera safety-number %s)",
           acc, acc);
  notice(h, conv, "identity_changed", acc, text);
}

static void compare_identity(tsr_chat *h, const char *acc, const uint8_t identity[32]) {
  sqlite3 *d = db(h);
  sqlite3_stmt *st = NULL;
  int found = 0;
  bool same = false;
  if (sqlite3_prepare_v2(d, "SELECT identity_key FROM identities WHERE account = ?", -1,
                         &st, NULL) == SQLITE_OK) {
    sqlite3_bind_text(st, 1, acc, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
      found = 1;
      same = sqlite3_column_bytes(st, 0) == 32 &&
             sodium_memcmp(sqlite3_column_blob(st, 0), identity, 32) == 0;
    }
  }
  sqlite3_finalize(st);
  if (found && same) return;
  if (sqlite3_prepare_v2(
          d,
          "INSERT INTO identities(account, identity_key, first_seen, changed_at)"
          " VALUES (?1, ?2, ?3, 0) ON CONFLICT(account) DO UPDATE SET"
          " identity_key = ?2, changed_at = ?3",
          -1, &st, NULL) == SQLITE_OK) {
    sqlite3_bind_text(st, 1, acc, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, identity, 32, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, now_ms());
    sqlite3_step(st);
  }
  sqlite3_finalize(st);
  if (found) each_leaf(h, NULL, in_conv, (void *)acc);
}

static int fetch_next(tsr_chat *h);

/* One account's keys: its certified devices and identity key. */
static void on_keys(void *arg, const tsr_result *res) {
  char *acc = NULL;
  tsr_chat *h = chat_ticket_take(arg, (void **)&acc);
  if (!h) {
    free(acc);
    return;
  }
  chat_job_ended(h);
  struct chat_trust *t = trust_of(h);
  size_t cap = res->body_len / 2 + 16;
  json_token *tok = res->err == 0 ? malloc(cap * sizeof *tok) : NULL;
  uint8_t identity[32];
  size_t got = 0;
  int ik = -1, arr = -1;
  const char *s;
  size_t sl;
  if (tok && json_parse(res->body, res->body_len, tok, cap, NULL) > 0) {
    ik = json_object_get(res->body, tok, 0, "identity_key");
    arr = json_object_get(res->body, tok, 0, "devices");
  }
  if (t && ik >= 0 && json_get_string_view(res->body, tok, ik, &s, &sl) == 0 &&
      b64_decode(identity, sizeof identity, s, sl, B64_MODE_URL_NOPAD, &got) == 0 &&
      got == 32) {
    known *k = known_find(t, acc);
    if (!k) {
      known *nv = realloc(t->v, (t->n + 1) * sizeof *nv);
      if (nv) {
        t->v = nv;
        k = &t->v[t->n++];
        memset(k, 0, sizeof *k);
        memcpy(k->account, acc, TSR_ID_B64_SIZE);
      }
    }
    if (k) {
      free(k->keys);
      k->keys = calloc(TRUST_KEYS_MAX, 32);
      k->n_keys = 0;
      k->fetched = true;
      memcpy(k->identity, identity, 32);
      for (int e = arr >= 0 ? json_first_child(tok, arr) : -1;
           e >= 0 && k->keys && k->n_keys < TRUST_KEYS_MAX;
           e = json_next_sibling(tok, arr, e)) {
        uint8_t key[32], cert[64], msg[TSR_DEVICE_CERT_MSG_LEN];
        size_t kn = 0, cn = 0;
        int ki = json_object_get(res->body, tok, e, "signature_key");
        int ci = json_object_get(res->body, tok, e, "certificate");
        const char *ks, *cs;
        size_t kl, cl;
        if (ki < 0 || ci < 0 || json_get_string_view(res->body, tok, ki, &ks, &kl) ||
            json_get_string_view(res->body, tok, ci, &cs, &cl) ||
            b64_decode(key, sizeof key, ks, kl, B64_MODE_URL_NOPAD, &kn) || kn != 32 ||
            b64_decode(cert, sizeof cert, cs, cl, B64_MODE_URL_NOPAD, &cn) || cn != 64)
          continue;
        device_cert_message(key, msg);
        if (crypto_sign_ed25519_verify_detached(cert, msg, sizeof msg, identity) == 0)
          memcpy(k->keys[k->n_keys++], key, 32);
      }
      compare_identity(h, acc, identity);
    }
  }
  free(tok);
  free(acc);
  if (fetch_next(h) != 0 && t) {
    /* Every account of this round is in: judge the leaves. */
    each_leaf(h, NULL, judge, NULL);
    for (size_t i = 0; i < t->n; i++) t->v[i].fetched = false;
    t->running = false;
    if (t->again) {
      t->again = false;
      trust_check(h, NULL);
    }
  }
}

/* Fetches the next account of the round; nonzero when none is left. */
static int fetch_next(tsr_chat *h) {
  struct chat_trust *t = trust_of(h);
  while (t && t->next < t->n_todo) {
    const char *acc = t->todo[t->next++];
    char path[96];
    snprintf(path, sizeof path, "/v1/accounts/%s/keys", acc);
    char *job = strdup(acc);
    if (job && chat_http(h, "GET", path, NULL, on_keys, job) == 0) {
      chat_job_started(h);
      return 0;
    }
    free(job);
  }
  return 1;
}

void trust_check(tsr_chat *h, const char *conv) {
  struct chat_trust *t = trust_of(h);
  if (!t) return;
  if (t->running) {
    t->again = true;
    return;
  }
  t->n_todo = t->next = 0;
  each_leaf(h, conv, want, NULL);
  if (t->n_todo == 0) return;
  t->running = true;
  if (fetch_next(h) != 0) t->running = false;
}

/* ---- the notices held here ---- */

int tsr_notices_local(tsr_client *c, const char *conversation,
                      void (*each)(void *arg, const tsr_notice *n), void *arg) {
  if (!c || !conversation || !each) return TSR_EINVAL;
  sqlite3 *d = cstate_db(client_state(c));
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(d,
                         "SELECT after_seq, at, kind, account, text FROM notices"
                         " WHERE conversation = ? ORDER BY n",
                         -1, &st, NULL) != SQLITE_OK)
    return TSR_EIO;
  sqlite3_bind_text(st, 1, conversation, -1, SQLITE_STATIC);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    tsr_notice n = {conversation,
                    (uint64_t)sqlite3_column_int64(st, 0),
                    sqlite3_column_int64(st, 1),
                    (const char *)sqlite3_column_text(st, 2),
                    (const char *)sqlite3_column_text(st, 3),
                    (const char *)sqlite3_column_text(st, 4)};
    each(arg, &n);
  }
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? 0 : TSR_EIO;
}
