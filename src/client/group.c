/* Group operations of conversations (tessera/tessera.h, "Conversations:
 * groups"; docs/protocol.md, "conversation.members", "conversation.leave",
 * "conversation.role"), and keeping every conversation's devices in step
 * with the accounts' devices:
 *
 *   - a new device of this account (it published KeyPackages: the server
 *     pushes "devices") is added to each of the account's conversations
 *     by one of the account's other devices;
 *   - devices waiting for removal (revoked, or of someone who left: the
 *     `conversations` answer lists them, a "roster" push announces them)
 *     are removed by a device of the same account, or by an admin.
 *
 * A commit is built after a sync (so the group is at the log's epoch),
 * stored with the group as pending (group_save keeps it), and sent with
 * conversation.members; the sync after the answer processes the log up to
 * the commit's seq with the old epoch and merges the commit there (our own
 * commit coming back). stale_epoch: the pending commit is dropped, the
 * winner synced, and the commit built again (3 rounds). A commit whose
 * answer was lost stays pending: the next sync merges it if the server
 * stored it, and the next build drops it otherwise.
 *
 * Ownership: jobs free themselves after their callback. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/chat.h"
#include "client/pj.h"
#include "proto/base64.h"
#include "proto/json.h"

#define GROUP_SUITE 1
#define GROUP_TRIES 3
#define GROUP_ADD_MAX 63
#define OWN_DEVICES_MAX 64

static bool id_ok(const char *id) {
  uint8_t raw[16];
  size_t got = 0;
  return id && strlen(id) == TSR_ID_B64_SIZE - 1 &&
         b64_decode(raw, sizeof raw, id, strlen(id), B64_MODE_URL_NOPAD, &got) == 0 &&
         got == 16;
}

static void b64_id(const uint8_t *raw, char out[TSR_ID_B64_SIZE]) {
  size_t n = 0;
  b64_encode(out, TSR_ID_B64_SIZE, raw, 16, B64_MODE_URL_NOPAD, &n);
  out[n] = '\0';
}

/* The account and device ids of leaf i (false for a blank leaf). */
static bool leaf_ids(const mls_group *g, uint32_t i, char acc[TSR_ID_B64_SIZE],
                     char dev[TSR_ID_B64_SIZE]) {
  bytes_t who;
  if (group_member(g, i, &who) != 0 || who.len != 32) return false;
  b64_id(who.ptr, acc);
  b64_id(who.ptr + 16, dev);
  return true;
}

/* ---- commits: add, remove, maintain ------------------------------------------- */

typedef enum { GJ_ADD, GJ_REMOVE, GJ_MAINTAIN } gj_kind;

typedef struct {
  char account[TSR_ID_B64_SIZE];
  char app[16];
  char key[72];                 /* ADD by profile ("" by account id) */
  char device[TSR_ID_B64_SIZE]; /* MAINTAIN: one of our devices to add */
} gj_member;

typedef struct {
  tsr_chat *h;
  gj_kind kind;
  char conv[TSR_ID_B64_SIZE];
  char me[TSR_ID_B64_SIZE]; /* our account */
  tsr_result_cb cb;
  void *arg;
  gj_member *m; /* ADD: people; MAINTAIN: our devices to add */
  size_t n_m, next;
  char (*del)[TSR_ID_B64_SIZE]; /* REMOVE: accounts; MAINTAIN: devices */
  size_t n_del;
  buf_t *kps; /* claimed KeyPackages, one per device added */
  size_t n_kps;
  char (*kp_dev)[TSR_ID_B64_SIZE]; /* ... and the device each is of */
  unsigned tries;
  char client_id[40];
  buf_t answer; /* the members answer, handed back after the last sync */
} gjob;

static void gj_free(gjob *j) {
  for (size_t i = 0; i < j->n_kps; i++) buf_free(&j->kps[i]);
  free(j->kps);
  free(j->kp_dev);
  free(j->m);
  free(j->del);
  buf_free(&j->answer);
  free(j);
}

static void maintain_done(tsr_chat *h);

static void gj_finish(gjob *j, const tsr_result *res) {
  tsr_chat *h = j->h;
  if (j->cb) j->cb(j->arg, res);
  bool maint = j->kind == GJ_MAINTAIN;
  gj_free(j);
  chat_job_ended(h);
  if (maint) maintain_done(h);
}

static void gj_fail(gjob *j, int err, const char *code, const char *msg) {
  tsr_result res = {err, 0, code, msg, "", 0};
  gj_finish(j, &res);
}

/* Drops a pending commit of ours from the stored group. */
static void drop_pending(tsr_chat *h, const char *conv) {
  mls_group *g = NULL;
  if (chat_group_load(h, conv, &g, NULL) == 0 && group_has_pending(g)) {
    group_discard_pending(g);
    chat_group_store(h, conv, g);
  }
  group_free(g);
}

static int gj_claim_next(gjob *j);
static int gj_build(gjob *j);

static void on_gj_claim(void *arg, const tsr_result *res) {
  gjob *j = NULL;
  if (!chat_ticket_take(arg, (void **)&j)) { /* the chat is gone */
    tsr_result gone = {TSR_ESTATE, 0, "cancelled", "the chat was freed", "", 0};
    if (j->cb) j->cb(j->arg, &gone);
    gj_free(j);
    return;
  }
  gj_member *m = &j->m[j->next];
  if (res->err && !(j->kind == GJ_MAINTAIN && res->status == 404)) {
    gj_finish(j, res);
    return;
  }
  pj p;
  size_t got = 0;
  int rc = res->err ? 0 : pj_parse(&p, res->body, res->body_len);
  if (rc) {
    gj_fail(j, TSR_EDECODE, "bad_response", "unexpected claim answer");
    return;
  }
  if (!res->err) {
    char acc[TSR_ID_B64_SIZE + 8] = "";
    pj_str(&p, 0, "account_id", acc, sizeof acc);
    char dev[TSR_ID_B64_SIZE + 8];
    int arr = pj_get(&p, 0, "key_packages");
    for (int e = arr >= 0 ? json_first_child(p.t, arr) : -1; e >= 0 && !rc;
         e = json_next_sibling(p.t, arr, e)) {
      const char *s;
      size_t sl;
      if (!pj_view(&p, e, "key_package", &s, &sl)) continue;
      if (!pj_str(&p, e, "device_id", dev, sizeof dev)) dev[0] = '\0';
      buf_t *nk = realloc(j->kps, (j->n_kps + 1) * sizeof *nk);
      if (nk) j->kps = nk;
      char(*na)[TSR_ID_B64_SIZE] =
          nk ? realloc(j->kp_dev, (j->n_kps + 1) * sizeof *na) : NULL;
      if (na) j->kp_dev = na;
      if (!nk || !na) {
        rc = TSR_ENOMEM;
        break;
      }
      buf_init(&j->kps[j->n_kps]);
      size_t cap = b64_decoded_max(sl) + 1, n = 0;
      uint8_t *d = buf_extend(&j->kps[j->n_kps], cap);
      if (!d || b64_decode(d, cap, s, sl, B64_MODE_URL_NOPAD, &n) != 0) {
        buf_free(&j->kps[j->n_kps]);
        rc = TSR_EDECODE;
        break;
      }
      j->kps[j->n_kps].len = n;
      if (!id_ok(dev)) dev[0] = '\0';
      memcpy(j->kp_dev[j->n_kps], dev, strlen(dev) + 1);
      j->n_kps++;
      got++;
    }
    if (!rc && j->kind == GJ_ADD && m->key[0]) {
      if (!id_ok(acc))
        rc = TSR_EDECODE;
      else if (!strcmp(acc, j->me))
        rc = TSR_EINVAL;
      for (size_t x = 0; !rc && x < j->n_m; x++)
        if (x != j->next && !strcmp(acc, j->m[x].account)) rc = TSR_EINVAL;
      if (!rc) memcpy(m->account, acc, TSR_ID_B64_SIZE);
    }
    pj_free(&p);
  }
  if (rc == TSR_EINVAL) {
    gj_fail(j, rc, "bad_member", "a profile named is your own or another member's");
    return;
  }
  if (rc) {
    gj_fail(j, rc, "bad_response", "a claimed KeyPackage does not decode");
    return;
  }
  if (got == 0 && j->kind == GJ_ADD) {
    gj_fail(j, TSR_ENOTFOUND, "no_key_packages",
            "a member has no device with a KeyPackage");
    return;
  }
  j->next++;
  rc = j->next < j->n_m ? gj_claim_next(j) : gj_build(j);
  if (rc) gj_fail(j, rc, "local", "the commit could not be made");
}

static int gj_claim_next(gjob *j) {
  const gj_member *m = &j->m[j->next];
  buf_t b;
  buf_init(&b);
  json_writer w;
  json_writer_init(&w, &b, 0);
  json_write_object_begin(&w);
  if (m->key[0]) {
    json_write_key(&w, "app");
    json_write_string(&w, m->app);
    json_write_key(&w, "key");
    json_write_string(&w, m->key);
  } else {
    json_write_key(&w, "account_id");
    json_write_string(&w, j->kind == GJ_MAINTAIN ? j->me : m->account);
  }
  if (j->kind == GJ_MAINTAIN) {
    json_write_key(&w, "device_id");
    json_write_string(&w, m->device);
  }
  json_write_key(&w, "suite");
  json_write_u64(&w, GROUP_SUITE);
  json_write_object_end(&w);
  int rc = json_writer_finish(&w) || buf_append(&b, "", 1) ? TSR_ENOMEM : 0;
  if (!rc)
    rc = chat_http(j->h, "POST", "/v1/keypackages/claim", (const char *)b.ptr,
                   on_gj_claim, j);
  buf_free(&b);
  return rc;
}

static void on_gj_synced_final(void *arg, const tsr_result *res) {
  gjob *j = arg;
  (void)res; /* the commit is stored; a failed sync is redone at the next one */
  tsr_result ok = {0, 200, "", "", (const char *)j->answer.ptr, j->answer.len};
  gj_finish(j, &ok);
}

static int gj_start_round(gjob *j);

static void on_gj_members(void *arg, const tsr_result *res) {
  gjob *j = arg;
  if (res->err == 0) {
    buf_append(&j->answer, res->body, res->body_len);
    /* The log up to our commit, then the commit itself: merged there. */
    if (chat_sync(j->h, j->conv, on_gj_synced_final, j) != 0) on_gj_synced_final(j, res);
    return;
  }
  bool lost = !strcmp(res->code, "network") || !strcmp(res->code, "timeout") ||
              !strcmp(res->code, "cancelled") || !strcmp(res->code, "unavailable");
  if (!lost) drop_pending(j->h, j->conv);
  if (!strcmp(res->code, "stale_epoch") && ++j->tries < GROUP_TRIES) {
    int rc = gj_start_round(j);
    if (rc == 0) return;
  }
  gj_finish(j, res);
}

/* Every KeyPackage is in: the commit, stored pending, then sent. */
static int gj_build(gjob *j) {
  tsr_chat *h = j->h;
  mls_group *g = NULL;
  char state[16] = "";
  int rc = chat_group_load(h, j->conv, &g, state);
  if (rc) return rc;
  if (group_has_pending(g)) group_discard_pending(g); /* not stored by the server */
  uint32_t n = group_leaf_count(g);
  uint32_t *rm = calloc(n + 1, sizeof *rm);
  bytes_t *views = calloc(j->n_kps + 1, sizeof *views);
  size_t n_rm = 0, n_add = 0;
  if (!rm || !views) rc = TSR_ENOMEM;
  for (uint32_t i = 0; !rc && i < n; i++) {
    char acc[TSR_ID_B64_SIZE], dev[TSR_ID_B64_SIZE];
    if (!leaf_ids(g, i, acc, dev) || i == group_own_leaf(g)) continue;
    for (size_t k = 0; k < j->n_del; k++)
      if (!strcmp(j->kind == GJ_REMOVE ? acc : dev, j->del[k])) {
        rm[n_rm++] = i;
        break;
      }
  }
  /* Everyone named for removal is in the group. */
  for (size_t k = 0; !rc && j->kind == GJ_REMOVE && k < j->n_del; k++) {
    bool in = false;
    for (uint32_t i = 0; i < n && !in; i++) {
      char acc[TSR_ID_B64_SIZE], dev[TSR_ID_B64_SIZE];
      in = leaf_ids(g, i, acc, dev) && !strcmp(acc, j->del[k]);
    }
    if (!in) rc = TSR_ENOTFOUND;
  }
  /* Our devices someone added meanwhile are not added twice. */
  for (size_t k = 0; !rc && k < j->n_kps; k++) {
    bool present = false;
    for (uint32_t i = 0; j->kind == GJ_MAINTAIN && i < n && !present; i++) {
      char acc[TSR_ID_B64_SIZE], dev[TSR_ID_B64_SIZE];
      present = leaf_ids(g, i, acc, dev) && !strcmp(dev, j->kp_dev[k]);
    }
    if (!present) views[n_add++] = buf_view(&j->kps[k]);
  }
  buf_t commit, welcome, body;
  buf_init(&commit);
  buf_init(&welcome);
  buf_init(&body);
  bool nothing = !rc && n_rm == 0 && n_add == 0 && group_pending_proposals(g) == 0;
  if (!rc && !nothing) {
    group_commit_params cp = {.add_key_packages = views,
                              .n_adds = n_add,
                              .remove_leaves = rm,
                              .n_removes = n_rm};
    rc = group_commit(g, &cp, &commit, &welcome);
  }
  if (!rc && !nothing) rc = chat_group_store(h, j->conv, g);
  if (!rc && !nothing) {
    uint8_t rnd[12];
    randombytes_buf(rnd, sizeof rnd);
    memcpy(j->client_id, "g-", 2);
    size_t cl = 0;
    b64_encode(j->client_id + 2, sizeof j->client_id - 2, rnd, sizeof rnd,
               B64_MODE_URL_NOPAD, &cl);
    json_writer w;
    json_writer_init(&w, &body, 0);
    json_write_object_begin(&w);
    json_write_key(&w, "conversation");
    json_write_string(&w, j->conv);
    json_write_key(&w, "client_id");
    json_write_string(&w, j->client_id);
    if (j->kind == GJ_ADD) {
      json_write_key(&w, "add");
      json_write_array_begin(&w);
      for (size_t i = 0; i < j->n_m; i++) {
        json_write_object_begin(&w);
        json_write_key(&w, "account");
        json_write_string(&w, j->m[i].account);
        json_write_key(&w, "app");
        json_write_string(&w, j->m[i].app);
        json_write_object_end(&w);
      }
      json_write_array_end(&w);
    }
    if (j->kind == GJ_REMOVE) {
      json_write_key(&w, "remove");
      json_write_array_begin(&w);
      for (size_t i = 0; i < j->n_del; i++) json_write_string(&w, j->del[i]);
      json_write_array_end(&w);
    }
    json_write_key(&w, "commit");
    json_write_base64url(&w, buf_view(&commit));
    if (welcome.len) {
      json_write_key(&w, "welcome");
      json_write_base64url(&w, buf_view(&welcome));
    }
    json_write_object_end(&w);
    rc = json_writer_finish(&w) ? TSR_ENOMEM : 0;
    if (!rc && body.len >= 2) {
      body.ptr[body.len - 1] = '\0'; /* the fields without the braces */
      rc = tsr_ws_call(tsr_chat_ws(h), "conversation.members", (const char *)body.ptr + 1,
                       on_gj_members, j);
    }
    if (rc) drop_pending(h, j->conv);
  }
  free(rm);
  free(views);
  group_free(g);
  buf_free(&commit);
  buf_free(&welcome);
  buf_free(&body);
  if (!rc && nothing) {
    static const char none[] = "{\"nothing\":true}";
    tsr_result ok = {0, 200, "", "", none, sizeof none - 1};
    gj_finish(j, &ok);
  }
  return rc;
}

static void on_gj_synced(void *arg, const tsr_result *res) {
  gjob *j = arg;
  if (res->err) {
    gj_finish(j, res);
    return;
  }
  /* Claims once; a later round reuses them. */
  int rc = j->next < j->n_m ? gj_claim_next(j) : gj_build(j);
  if (rc == TSR_ENOTFOUND)
    gj_fail(j, rc, "not_found", "someone named is not a member of this conversation");
  else if (rc)
    gj_fail(j, rc, "local", "the commit could not be made");
}

static int gj_start_round(gjob *j) { return chat_sync(j->h, j->conv, on_gj_synced, j); }

static gjob *gj_new(tsr_chat *h, gj_kind kind, const char *conv, tsr_result_cb cb,
                    void *arg) {
  tsr_session_info info;
  if (!h || !id_ok(conv) || tsr_client_session(chat_client(h), &info) != 0 ||
      !info.logged_in || !info.account_id[0])
    return NULL;
  mls_group *g = NULL;
  char state[16] = "";
  if (chat_group_load(h, conv, &g, state) != 0) return NULL;
  group_free(g);
  if (strcmp(state, "active")) return NULL;
  gjob *j = calloc(1, sizeof *j);
  if (!j) return NULL;
  j->h = h;
  j->kind = kind;
  j->cb = cb;
  j->arg = arg;
  snprintf(j->conv, sizeof j->conv, "%s", conv);
  snprintf(j->me, sizeof j->me, "%s", info.account_id);
  buf_init(&j->answer);
  return j;
}

static int gj_go(gjob *j) {
  int rc = gj_start_round(j);
  if (rc) {
    gj_free(j);
    return rc;
  }
  chat_job_started(j->h);
  return 0;
}

int tsr_conversation_add(tsr_chat *h, const char *conversation, const tsr_member *members,
                         size_t n, tsr_result_cb cb, void *arg) {
  if (!members || n == 0 || n > GROUP_ADD_MAX) return TSR_EINVAL;
  gjob *j = gj_new(h, GJ_ADD, conversation, cb, arg);
  if (!j) return TSR_EINVAL;
  j->m = calloc(n, sizeof *j->m);
  if (!j->m) {
    gj_free(j);
    return TSR_ENOMEM;
  }
  j->n_m = n;
  for (size_t i = 0; i < n; i++) {
    const tsr_member *m = &members[i];
    gj_member *x = &j->m[i];
    const char *k = m->key && m->key[0] == '@' && m->app && strcmp(m->app, "chat")
                        ? m->key + 1
                        : m->key;
    bool ok = m->app && (!strcmp(m->app, "chat") || !strcmp(m->app, "social") ||
                         !strcmp(m->app, "messenger"));
    if (ok && m->account)
      ok = id_ok(m->account) && strcmp(m->account, j->me) != 0;
    else if (ok)
      ok = k && k[0] && strlen(k) < sizeof x->key;
    if (!ok) {
      gj_free(j);
      return TSR_EINVAL;
    }
    snprintf(x->app, sizeof x->app, "%s", m->app);
    if (m->account)
      snprintf(x->account, sizeof x->account, "%s", m->account);
    else
      snprintf(x->key, sizeof x->key, "%s", k);
  }
  return gj_go(j);
}

int tsr_conversation_remove(tsr_chat *h, const char *conversation,
                            const char *const *accounts, size_t n, tsr_result_cb cb,
                            void *arg) {
  if (!accounts || n == 0 || n > GROUP_ADD_MAX) return TSR_EINVAL;
  gjob *j = gj_new(h, GJ_REMOVE, conversation, cb, arg);
  if (!j) return TSR_EINVAL;
  j->del = calloc(n, sizeof *j->del);
  if (!j->del) {
    gj_free(j);
    return TSR_ENOMEM;
  }
  for (size_t i = 0; i < n; i++) {
    if (!id_ok(accounts[i]) || !strcmp(accounts[i], j->me)) {
      gj_free(j);
      return TSR_EINVAL;
    }
    snprintf(j->del[i], TSR_ID_B64_SIZE, "%s", accounts[i]);
  }
  j->n_del = n;
  return gj_go(j);
}

/* ---- leave, roles, info ---------------------------------------------------------- */

typedef struct {
  tsr_chat *h;
  char conv[TSR_ID_B64_SIZE];
  char client_id[40];
  tsr_result_cb cb;
  void *arg;
  unsigned tries;
} leave_job;

static void leave_finish(leave_job *j, const tsr_result *res) {
  tsr_chat *h = j->h;
  if (j->cb) j->cb(j->arg, res);
  free(j);
  chat_job_ended(h);
}

static void on_leave_synced(void *arg, const tsr_result *res);

static void on_left(void *arg, const tsr_result *res) {
  leave_job *j = arg;
  if (res->err == 0) {
    chat_set_state(j->h, j->conv, "left");
  } else if (!strcmp(res->code, "stale_epoch") && ++j->tries < GROUP_TRIES &&
             chat_sync(j->h, j->conv, on_leave_synced, j) == 0) {
    return;
  }
  leave_finish(j, res);
}

/* Synced: the Remove proposal of our own leaf, for the current epoch. */
static void on_leave_synced(void *arg, const tsr_result *res) {
  leave_job *j = arg;
  if (res->err) {
    leave_finish(j, res);
    return;
  }
  mls_group *g = NULL;
  buf_t prop, body;
  buf_init(&prop);
  buf_init(&body);
  int rc = chat_group_load(j->h, j->conv, &g, NULL);
  if (!rc) rc = group_propose_remove(g, group_own_leaf(g), &prop);
  if (!rc) {
    json_writer w;
    json_writer_init(&w, &body, 0);
    json_write_object_begin(&w);
    json_write_key(&w, "conversation");
    json_write_string(&w, j->conv);
    json_write_key(&w, "client_id");
    json_write_string(&w, j->client_id);
    json_write_key(&w, "proposal");
    json_write_base64url(&w, buf_view(&prop));
    json_write_object_end(&w);
    rc = json_writer_finish(&w) ? TSR_ENOMEM : 0;
    if (!rc) {
      body.ptr[body.len - 1] = '\0';
      rc = tsr_ws_call(tsr_chat_ws(j->h), "conversation.leave",
                       (const char *)body.ptr + 1, on_left, j);
    }
  }
  group_free(g); /* the proposal is not kept: we commit nothing more here */
  buf_free(&prop);
  buf_free(&body);
  if (rc) {
    tsr_result r = {rc, 0, "local", "the proposal could not be made", "", 0};
    leave_finish(j, &r);
  }
}

int tsr_conversation_leave(tsr_chat *h, const char *conversation, tsr_result_cb cb,
                           void *arg) {
  if (!h || !id_ok(conversation)) return TSR_EINVAL;
  mls_group *g = NULL;
  char state[16] = "";
  int rc = chat_group_load(h, conversation, &g, state);
  group_free(g);
  if (rc) return rc;
  if (!strcmp(state, "left") || !strcmp(state, "removed")) return TSR_ESTATE;
  leave_job *j = calloc(1, sizeof *j);
  if (!j) return TSR_ENOMEM;
  j->h = h;
  j->cb = cb;
  j->arg = arg;
  snprintf(j->conv, sizeof j->conv, "%s", conversation);
  uint8_t rnd[12];
  randombytes_buf(rnd, sizeof rnd);
  memcpy(j->client_id, "l-", 2);
  size_t cl = 0;
  b64_encode(j->client_id + 2, sizeof j->client_id - 2, rnd, sizeof rnd,
             B64_MODE_URL_NOPAD, &cl);
  if ((rc = chat_sync(h, conversation, on_leave_synced, j)) != 0) {
    free(j);
    return rc;
  }
  chat_job_started(h);
  return 0;
}

int tsr_conversation_set_role(tsr_chat *h, const char *conversation, const char *account,
                              int admin, tsr_result_cb cb, void *arg) {
  if (!h || !id_ok(conversation) || !id_ok(account)) return TSR_EINVAL;
  char f[160];
  snprintf(f, sizeof f, "\"conversation\":\"%s\",\"account\":\"%s\",\"role\":\"%s\"",
           conversation, account, admin ? "admin" : "member");
  return tsr_ws_call(tsr_chat_ws(h), "conversation.role", f, cb, arg);
}

int tsr_conversation_details(tsr_chat *h, const char *conversation, tsr_result_cb cb,
                             void *arg) {
  if (!h || !id_ok(conversation)) return TSR_EINVAL;
  char f[80];
  snprintf(f, sizeof f, "\"conversation\":\"%s\"", conversation);
  return tsr_ws_call(tsr_chat_ws(h), "conversation.info", f, cb, arg);
}

/* ---- keeping devices in step ------------------------------------------------------ */

typedef struct {
  char conv[TSR_ID_B64_SIZE];
  bool admin;
  char (*stale)[TSR_ID_B64_SIZE];
  size_t n_stale;
  bool tried; /* in this round */
} gnote;

struct chat_groups {
  gnote *v;
  size_t n;
  char own[OWN_DEVICES_MAX][TSR_ID_B64_SIZE]; /* our live devices (last fetched) */
  size_t n_own;
  bool fetching, running;
};

static struct chat_groups *groups_of(tsr_chat *h) {
  struct chat_groups **slot = chat_groups_slot(h);
  if (!*slot) *slot = calloc(1, sizeof **slot);
  return *slot;
}

void groups_free(tsr_chat *h) {
  struct chat_groups **slot = chat_groups_slot(h);
  struct chat_groups *s = *slot;
  if (!s) return;
  for (size_t i = 0; i < s->n; i++) free(s->v[i].stale);
  free(s->v);
  free(s);
  *slot = NULL;
}

void groups_note(tsr_chat *h, const char *conv, bool admin, const char *const *stale,
                 size_t n) {
  struct chat_groups *s = groups_of(h);
  if (!s || !id_ok(conv)) return;
  gnote *x = NULL;
  for (size_t i = 0; i < s->n && !x; i++)
    if (!strcmp(s->v[i].conv, conv)) x = &s->v[i];
  if (!x) {
    gnote *nv = realloc(s->v, (s->n + 1) * sizeof *nv);
    if (!nv) return;
    s->v = nv;
    x = &s->v[s->n++];
    memset(x, 0, sizeof *x);
    snprintf(x->conv, sizeof x->conv, "%s", conv);
  }
  free(x->stale);
  x->stale = n ? calloc(n, sizeof *x->stale) : NULL;
  x->n_stale = 0;
  for (size_t i = 0; x->stale && i < n; i++)
    if (id_ok(stale[i]))
      snprintf(x->stale[x->n_stale++], TSR_ID_B64_SIZE, "%s", stale[i]);
  x->admin = admin;
  x->tried = false;
}

/* The next conversation whose devices need a commit from us: our live
 * devices missing from it (added by us), or devices waiting for removal
 * when one is ours or we administer it. Starts one maintenance job. */
static void maintain_next(tsr_chat *h) {
  struct chat_groups *s = groups_of(h);
  if (!s || s->running) return;
  tsr_session_info info;
  if (tsr_client_session(chat_client(h), &info) != 0 || !info.account_id[0]) return;
  for (size_t i = 0; i < s->n; i++) {
    gnote *x = &s->v[i];
    if (x->tried) continue;
    x->tried = true;
    mls_group *g = NULL;
    char state[16] = "";
    if (chat_group_load(h, x->conv, &g, state) != 0) continue;
    if (strcmp(state, "active")) {
      group_free(g);
      continue;
    }
    uint32_t n = group_leaf_count(g);
    gjob *j = NULL;
    bool act = false;
    /* Removals due: devices still in the group. */
    char(*del)[TSR_ID_B64_SIZE] = calloc(x->n_stale + 1, sizeof *del);
    size_t n_del = 0;
    for (uint32_t l = 0; del && l < n; l++) {
      char acc[TSR_ID_B64_SIZE], dev[TSR_ID_B64_SIZE];
      if (!leaf_ids(g, l, acc, dev)) continue;
      for (size_t k = 0; k < x->n_stale; k++)
        if (!strcmp(dev, x->stale[k])) {
          memcpy(del[n_del++], dev, TSR_ID_B64_SIZE);
          act |= x->admin || !strcmp(acc, info.account_id);
        }
    }
    /* Our devices not in it. */
    gj_member *add = calloc(s->n_own + 1, sizeof *add);
    size_t n_add = 0;
    for (size_t k = 0; add && k < s->n_own; k++) {
      bool present = false;
      for (uint32_t l = 0; l < n && !present; l++) {
        char acc[TSR_ID_B64_SIZE], dev[TSR_ID_B64_SIZE];
        present = leaf_ids(g, l, acc, dev) && !strcmp(dev, s->own[k]);
      }
      if (!present) memcpy(add[n_add++].device, s->own[k], TSR_ID_B64_SIZE);
    }
    act |= n_add > 0;
    group_free(g);
    if (act && del && add) j = gj_new(h, GJ_MAINTAIN, x->conv, NULL, NULL);
    if (j) {
      j->del = del;
      j->n_del = n_del;
      j->m = add;
      j->n_m = n_add;
      del = NULL;
      add = NULL;
    }
    free(del);
    free(add);
    if (j && gj_go(j) == 0) {
      s->running = true;
      return;
    }
  }
}

static void maintain_done(tsr_chat *h) {
  struct chat_groups *s = groups_of(h);
  if (!s) return;
  s->running = false;
  maintain_next(h);
}

static void on_own_devices(void *arg, const tsr_result *res) {
  tsr_chat *h = chat_ticket_take(arg, NULL);
  if (!h) return; /* the chat is gone */
  chat_job_ended(h);
  struct chat_groups *s = groups_of(h);
  if (!s) return;
  s->fetching = false;
  pj p;
  if (res->err == 0 && pj_parse(&p, res->body, res->body_len) == 0) {
    s->n_own = 0;
    int arr = pj_get(&p, 0, "devices");
    for (int e = arr >= 0 ? json_first_child(p.t, arr) : -1;
         e >= 0 && s->n_own < OWN_DEVICES_MAX; e = json_next_sibling(p.t, arr, e)) {
      char id[TSR_ID_B64_SIZE + 8];
      if (pj_str(&p, e, "device_id", id, sizeof id) && id_ok(id))
        memcpy(s->own[s->n_own++], id, TSR_ID_B64_SIZE);
    }
    pj_free(&p);
  }
  maintain_next(h);
}

void groups_refreshed(tsr_chat *h) {
  trust_check(h, NULL);
  struct chat_groups *s = groups_of(h);
  if (!s || s->fetching) return;
  if (chat_http(h, "GET", "/v1/devices", NULL, on_own_devices, NULL) == 0) {
    s->fetching = true;
    chat_job_started(h);
  }
}
