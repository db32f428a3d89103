/* End-to-end encrypted conversations (tessera/tessera.h, "Conversations";
 * docs/protocol.md, "Conversations"): MLS groups of this device on a
 * realtime session, with the groups, the messages and the outbox in the
 * state file (tables of schema version 3, client.h).
 *
 * Nothing is cached in memory but what is in flight: each step loads the
 * group from the state file and stores it back, with the message it
 * produced, in one transaction. Multi-step operations (create, send,
 * sync, refresh) are chains of calls, as in keys.c: an internal callback
 * receives each answer and queues the next call, or calls the caller's
 * callback once. */
#include <errno.h>
#include <poll.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/chat.h"
#include "client/client.h"
#include "client/content.h"
#include "client/pj.h"
#include "mls/crypto.h"
#include "mls/group.h"
#include "proto/base64.h"
#include "proto/json.h"

#define CONV_SUITE 1        /* MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519 */
#define MAX_TEXT 60000      /* bytes of one text message */
#define MAX_MEMBERS 63      /* others at creation (docs/protocol.md) */
#define MEMBER_KEY_MAX 64   /* a member's profile key as given (before the @) */
#define SEND_TRIES 3        /* stale_epoch rounds per send */
#define SYNC_LIMIT 100      /* messages per sync call */
#define MAX_SYNC_ROUNDS 100 /* sync calls per tsr_conversation_sync */

struct tsr_chat {
  tsr_client *c;
  tsr_ws *ws;
  tsr_chat_config cfg;
  struct chat_groups *groups; /* group.c: devices kept in step */
  struct chat_trust *trust;   /* trust.c: member devices verified */
  chat_ticket *tickets;       /* HTTP calls in flight for the chat */
  size_t jobs;                /* chains in progress */
  char **inflight;            /* client_ids being sent */
  size_t n_inflight;
  bool refresh_running; /* a refresh chain is in progress */
  bool refresh_again;   /* ... and another was asked for meanwhile */
  /* A transient failure ("unavailable" while the server's delivery service
   * restarts, "network", "timeout") with the session still up: refresh and
   * resend the outbox again at retry_at (0: none), backing off. */
  uint64_t retry_at;
  uint32_t retry_ms;
  /* Delivery receipts due at the end of the batch being processed: per
   * conversation, the last text or attachment of another account. */
  struct receipt_due {
    char conv[TSR_ID_B64_SIZE];
    uint64_t up_to;
  } * due;
  size_t n_due;
};

/* ---- small helpers --------------------------------------------------------- */

#define RETRY_FIRST_MS 100
#define RETRY_MAX_MS 5000

static bool transient(const char *code) {
  return !strcmp(code, "unavailable") || !strcmp(code, "network") ||
         !strcmp(code, "timeout");
}

/* Schedules a refresh and an outbox flush (once; backing off). */
static void retry_later(tsr_chat *h) {
  if (h->retry_at) return;
  h->retry_ms = h->retry_ms ? h->retry_ms * 2 : RETRY_FIRST_MS;
  if (h->retry_ms > RETRY_MAX_MS) h->retry_ms = RETRY_MAX_MS;
  h->retry_at = tsr_client_now_ms(h->c) + h->retry_ms;
}

static sqlite3 *db_of(tsr_chat *h) { return cstate_db(client_state(h->c)); }

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int unb64(const char *s, size_t len, buf_t *out) {
  buf_reset(out);
  size_t cap = b64_decoded_max(len) + 1, got = 0;
  uint8_t *p = buf_extend(out, cap);
  if (!p) return TSR_ENOMEM;
  if (b64_decode(p, cap, s, len, B64_MODE_URL_NOPAD, &got)) return TSR_EDECODE;
  out->len = got;
  return 0;
}

static bool valid_id(const char *id) {
  uint8_t raw[16];
  size_t got = 0;
  return id && strlen(id) == TSR_ID_B64_SIZE - 1 &&
         b64_decode(raw, sizeof raw, id, strlen(id), B64_MODE_URL_NOPAD, &got) == 0 &&
         got == 16;
}

static bool valid_app(const char *a) {
  return a && (!strcmp(a, "chat") || !strcmp(a, "social") || !strcmp(a, "messenger"));
}

/* Sends op with the members of the JSON object in w's buffer (a whole
 * object "{...}"). */
static int ws_call_obj(tsr_chat *h, const char *op, json_writer *w, buf_t *b,
                       tsr_result_cb cb, void *arg) {
  if (json_writer_finish(w)) return TSR_ENOMEM;
  if (b->len < 2) return TSR_EINVAL;
  b->ptr[b->len - 1] = '\0'; /* the closing brace */
  return tsr_ws_call(h->ws, op, (const char *)b->ptr + 1, cb, arg);
}

static void result_local(tsr_result_cb cb, void *arg, int err, const char *code,
                         const char *msg) {
  tsr_result res = {err, 0, code, msg, "", 0};
  if (cb) cb(arg, &res);
}

static void result_ok(tsr_result_cb cb, void *arg, buf_t *body) {
  tsr_result res = {0, 101, "", "", (const char *)body->ptr, body->len};
  if (cb) cb(arg, &res);
}

static void ignore_result(void *arg, const tsr_result *res) {
  (void)arg;
  (void)res;
}

/* ---- the state file: conversations -------------------------------------------- */

typedef struct {
  char id[TSR_ID_B64_SIZE];
  char app[16], kind[8], state[16];
  uint64_t last_seq;
  buf_t grp; /* group_save's form */
} conv_row;

static void row_clear(conv_row *r) { buf_free_secret(&r->grp); }

static void col_text(sqlite3_stmt *st, int col, char *out, size_t cap) {
  const unsigned char *t = sqlite3_column_text(st, col);
  snprintf(out, cap, "%s", t ? (const char *)t : "");
}

/* Loads a conversation row. TSR_ENOTFOUND, TSR_EIO, TSR_ENOMEM. */
static int conv_get(sqlite3 *db, const char *id, conv_row *r) {
  memset(r, 0, sizeof *r);
  buf_init(&r->grp);
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db,
                         "SELECT app, kind, state, last_seq, grp FROM conversations"
                         " WHERE id = ?",
                         -1, &st, NULL) != SQLITE_OK)
    return TSR_EIO;
  sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    snprintf(r->id, sizeof r->id, "%s", id);
    col_text(st, 0, r->app, sizeof r->app);
    col_text(st, 1, r->kind, sizeof r->kind);
    col_text(st, 2, r->state, sizeof r->state);
    r->last_seq = (uint64_t)sqlite3_column_int64(st, 3);
    rc = buf_append(&r->grp, sqlite3_column_blob(st, 4),
                    (size_t)sqlite3_column_bytes(st, 4))
             ? TSR_ENOMEM
             : 0;
  } else {
    rc = rc == SQLITE_DONE ? TSR_ENOTFOUND : TSR_EIO;
  }
  sqlite3_finalize(st);
  return rc;
}

static int run_stmt(sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? 0 : TSR_EIO;
}

static int conv_insert(sqlite3 *db, const char *id, const char *app, const char *kind,
                       const char *state, uint64_t last_seq, bytes_t grp) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db,
                         "INSERT INTO conversations(id, app, kind, state, grp, last_seq,"
                         " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                         -1, &st, NULL) != SQLITE_OK)
    return TSR_EIO;
  sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, app, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, kind, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 4, state, -1, SQLITE_STATIC);
  sqlite3_bind_blob(st, 5, grp.ptr, (int)grp.len, SQLITE_STATIC);
  sqlite3_bind_int64(st, 6, (int64_t)last_seq);
  sqlite3_bind_int64(st, 7, wall_ms());
  return run_stmt(st);
}

/* Stores the group (grp not NULL) and/or last_seq (last_seq != 0). */
static int conv_update(sqlite3 *db, const char *id, const buf_t *grp, uint64_t last_seq) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db,
                         "UPDATE conversations SET grp = coalesce(?, grp),"
                         " last_seq = max(last_seq, ?) WHERE id = ?",
                         -1, &st, NULL) != SQLITE_OK)
    return TSR_EIO;
  if (grp)
    sqlite3_bind_blob(st, 1, grp->ptr, (int)grp->len, SQLITE_STATIC);
  else
    sqlite3_bind_null(st, 1);
  sqlite3_bind_int64(st, 2, (int64_t)last_seq);
  sqlite3_bind_text(st, 3, id, -1, SQLITE_STATIC);
  return run_stmt(st);
}

static int conv_set_state(sqlite3 *db, const char *id, const char *state) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, "UPDATE conversations SET state = ? WHERE id = ?", -1, &st,
                         NULL) != SQLITE_OK)
    return TSR_EIO;
  sqlite3_bind_text(st, 1, state, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
  return run_stmt(st);
}

/* Inserts a message; *added = 1 when it was new. */
static int msg_insert(sqlite3 *db, const tsr_message *m, int *added) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db,
                         "INSERT OR IGNORE INTO messages(conversation, seq,"
                         " sender_account, sender_device, own, text, at, kind, reply_to,"
                         " target, descriptor) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         -1, &st, NULL) != SQLITE_OK)
    return TSR_EIO;
  sqlite3_bind_int(st, 8, m->kind);
  sqlite3_bind_int64(st, 9, (int64_t)m->reply_to);
  sqlite3_bind_int64(st, 10, (int64_t)m->target);
  if (m->descriptor_len)
    sqlite3_bind_blob(st, 11, m->descriptor, (int)m->descriptor_len, SQLITE_STATIC);
  else
    sqlite3_bind_null(st, 11);
  sqlite3_bind_text(st, 1, m->conversation, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, (int64_t)m->seq);
  sqlite3_bind_text(st, 3, m->sender_account, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 4, m->sender_device, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 5, m->own);
  sqlite3_bind_blob(st, 6, m->text, (int)m->text_len, SQLITE_STATIC);
  sqlite3_bind_int64(st, 7, m->at_ms);
  int rc = sqlite3_step(st);
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) return TSR_EIO;
  if (added) *added = sqlite3_changes(db) > 0;
  return 0;
}

static bool msg_exists(sqlite3 *db, const char *conv, uint64_t seq) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, "SELECT 1 FROM messages WHERE conversation = ? AND seq = ?",
                         -1, &st, NULL) != SQLITE_OK)
    return false;
  sqlite3_bind_text(st, 1, conv, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, (int64_t)seq);
  bool found = sqlite3_step(st) == SQLITE_ROW;
  sqlite3_finalize(st);
  return found;
}

/* Moves last_seq over this device's own messages stored right after it
 * (the server does not push them back). The new last_seq into *last. */
static int advance_own(sqlite3 *db, const char *conv, uint64_t *last) {
  uint64_t l = *last;
  while (msg_exists(db, conv, l + 1)) l++;
  if (l == *last) return 0;
  int rc = conv_update(db, conv, NULL, l);
  if (rc == 0) *last = l;
  return rc;
}

/* ---- what application messages do (content.h) ------------------------------------ */

static bool shown_kind(int kind) {
  return kind == TSR_KIND_TEXT || kind == TSR_KIND_ATTACHMENT ||
         kind == TSR_KIND_UNSUPPORTED;
}

/* Runs one statement with parameters given by types: 't' a NUL-terminated
 * text, 'b' a blob (pointer, size_t length), 'i' an int64_t. */
static int sql_run(sqlite3 *db, const char *sql, const char *types, ...) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) return TSR_EIO;
  va_list ap;
  va_start(ap, types);
  for (int i = 0; types[i]; i++) {
    if (types[i] == 't') {
      sqlite3_bind_text(st, i + 1, va_arg(ap, const char *), -1, SQLITE_STATIC);
    } else if (types[i] == 'b') {
      const void *p = va_arg(ap, const void *);
      size_t n = va_arg(ap, size_t);
      sqlite3_bind_blob(st, i + 1, n ? p : "", (int)n, SQLITE_STATIC);
    } else {
      sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t));
    }
  }
  va_end(ap);
  return run_stmt(st);
}

/* The message at seq of conv: its sender account, kind and deleted flag.
 * TSR_ENOTFOUND, TSR_EIO. */
static int target_row(sqlite3 *db, const char *conv, uint64_t seq,
                      char acc[TSR_ID_B64_SIZE], int *kind, int *deleted) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db,
                         "SELECT sender_account, kind, deleted FROM messages"
                         " WHERE conversation = ? AND seq = ?",
                         -1, &st, NULL) != SQLITE_OK)
    return TSR_EIO;
  sqlite3_bind_text(st, 1, conv, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, (int64_t)seq);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    col_text(st, 0, acc, TSR_ID_B64_SIZE);
    *kind = sqlite3_column_int(st, 1);
    *deleted = sqlite3_column_int(st, 2);
    rc = 0;
  } else {
    rc = rc == SQLITE_DONE ? TSR_ENOTFOUND : TSR_EIO;
  }
  sqlite3_finalize(st);
  return rc;
}

/* Sets m's kind fields from ct (m keeps pointing into ct). */
static void message_from(tsr_message *m, const content *ct) {
  m->kind = (int)ct->kind;
  m->text = ct->body ? ct->body : "";
  m->text_len = ct->body_len;
  m->reply_to = ct->reply_to;
  m->target = ct->target;
  m->emoji = ct->emoji ? ct->emoji : "";
  m->emoji_len = ct->emoji_len;
  m->remove = ct->remove;
  m->receipt = ct->receipt;
  m->typing = ct->on;
  m->descriptor = ct->descriptor ? ct->descriptor : "";
  m->descriptor_len = ct->descriptor_len;
}

/* Applies the content ct of the message m (conversation, seq, at, sender
 * and own set; its kind fields are set here) inside the caller's
 * transaction and stores its row. *keep = 1 when it is new and applied:
 * the app is to be told. An edit or deletion counts only from the
 * target's sender account, a reaction only to a message held here, and
 * none of them to a deleted message; what does not count is stored
 * nowhere, except this device's own message, whose row is kept so that
 * last_seq moves over it (advance_own). Typing is never stored. */
static int content_apply(sqlite3 *db, tsr_message *m, const content *ct, int *keep) {
  *keep = 0;
  message_from(m, ct);
  bool apply = ct->kind != CONTENT_TYPING;
  int rc = 0;
  if (ct->kind == CONTENT_EDIT || ct->kind == CONTENT_DELETE ||
      ct->kind == CONTENT_REACTION) {
    char acc[TSR_ID_B64_SIZE] = "";
    int kind = 0, deleted = 0;
    rc = target_row(db, m->conversation, ct->target, acc, &kind, &deleted);
    if (rc && rc != TSR_ENOTFOUND) return rc;
    apply = rc == 0 && ct->target < m->seq &&
            (kind == TSR_KIND_TEXT || kind == TSR_KIND_ATTACHMENT) && !deleted &&
            (ct->kind == CONTENT_REACTION || !strcmp(acc, m->sender_account));
    rc = 0;
  }
  if (!apply && (!m->own || ct->kind == CONTENT_TYPING)) return 0;
  tsr_message row = *m;
  if (!shown_kind(row.kind)) row.text_len = 0; /* its effect is stored instead */
  int added = 0;
  if ((rc = msg_insert(db, &row, &added)) || !added || !apply) return rc;
  const char *cv = m->conversation;
  int64_t tgt = (int64_t)ct->target;
  switch (ct->kind) {
  case CONTENT_EDIT:
    rc = sql_run(db,
                 "UPDATE messages SET text = ?, edited_at = ? WHERE conversation = ?"
                 " AND seq = ?",
                 "biti", ct->body, ct->body_len, m->at_ms, cv, tgt);
    break;
  case CONTENT_DELETE:
    /* secure_delete (state.c) overwrites the freed bytes in the file. */
    rc = sql_run(db,
                 "UPDATE messages SET text = x'', descriptor = NULL, deleted = 1"
                 " WHERE conversation = ? AND seq = ?",
                 "ti", cv, tgt);
    if (rc == 0)
      rc = sql_run(db, "DELETE FROM reactions WHERE conversation = ? AND target = ?",
                   "ti", cv, tgt);
    break;
  case CONTENT_REACTION:
    rc = ct->remove
             ? sql_run(db,
                       "DELETE FROM reactions WHERE conversation = ? AND target = ?"
                       " AND account = ? AND emoji = ?",
                       "titb", cv, tgt, m->sender_account, ct->emoji, ct->emoji_len)
             : sql_run(db,
                       "INSERT OR REPLACE INTO reactions(conversation, target,"
                       " account, emoji, seq) VALUES (?, ?, ?, ?, ?)",
                       "titbi", cv, tgt, m->sender_account, ct->emoji, ct->emoji_len,
                       (int64_t)m->seq);
    break;
  case CONTENT_RECEIPT: {
    /* Cumulative and never backwards; a receipt covers only earlier seqs. */
    int64_t up = tgt < (int64_t)m->seq ? tgt : (int64_t)m->seq - 1;
    rc = sql_run(db,
                 "INSERT INTO receipts(conversation, account, delivered_up_to,"
                 " read_up_to) VALUES (?, ?, ?, ?) ON CONFLICT(conversation, account)"
                 " DO UPDATE SET delivered_up_to = max(delivered_up_to,"
                 " excluded.delivered_up_to), read_up_to = max(read_up_to,"
                 " excluded.read_up_to)",
                 "ttii", cv, m->sender_account, up,
                 ct->receipt == CONTENT_READ ? up : (int64_t)0);
    break;
  }
  case CONTENT_TITLE:
    rc = sql_run(db, "UPDATE conversations SET title = CAST(? AS TEXT) WHERE id = ?",
                 "bt", ct->body, ct->body_len, cv);
    break;
  default: break;
  }
  if (rc == 0) *keep = 1;
  return rc;
}

/* Hands a stored message to the app's callback for its kind. */
static void hand_over(tsr_chat *h, const tsr_message *m) {
  if (shown_kind(m->kind)) {
    if (h->cfg.on_message) h->cfg.on_message(h->cfg.arg, m);
  } else if (h->cfg.on_update) {
    h->cfg.on_update(h->cfg.arg, m);
  }
}

/* ---- receipts -----------------------------------------------------------------------
 */

static int send_content(tsr_chat *h, const char *conv, const content *ct,
                        tsr_result_cb cb, void *arg);
static void own_ids(tsr_chat *h, char acc[TSR_ID_B64_SIZE], char dev[TSR_ID_B64_SIZE]);

/* Distinct accounts among the group's members; 0 when it does not load. */
static size_t member_accounts(const buf_t *grp) {
  mls_group *g = NULL;
  if (group_load(buf_view(grp), &g)) return 0;
  uint32_t leaves = group_leaf_count(g);
  uint8_t(*seen)[16] = calloc(leaves ? leaves : 1, sizeof *seen);
  size_t n = 0;
  for (uint32_t l = 0; seen && l < leaves; l++) {
    bytes_t ident;
    if (group_member(g, l, &ident) || ident.len < 16) continue;
    size_t k = 0;
    while (k < n && memcmp(seen[k], ident.ptr, 16)) k++;
    if (k == n) memcpy(seen[n++], ident.ptr, 16);
  }
  free(seen);
  group_free(g);
  return n;
}

/* Receipts go only into accepted conversations (not a message request
 * pending or declined: the sender sees no delivery or read state before
 * the recipient accepts) of at most TSR_RECEIPTS_MAX_ACCOUNTS accounts. */
static bool receipts_allowed(const conv_row *r) {
  size_t n = member_accounts(&r->grp);
  return !strcmp(r->state, "active") && n > 0 && n <= TSR_RECEIPTS_MAX_ACCOUNTS;
}

/* What this account's receipts in conv say (0, 0 when none). */
static void own_receipts(sqlite3 *db, const char *conv, const char *acc,
                         uint64_t *delivered, uint64_t *read) {
  *delivered = *read = 0;
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db,
                         "SELECT delivered_up_to, read_up_to FROM receipts"
                         " WHERE conversation = ? AND account = ?",
                         -1, &st, NULL) != SQLITE_OK)
    return;
  sqlite3_bind_text(st, 1, conv, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, acc, -1, SQLITE_STATIC);
  if (sqlite3_step(st) == SQLITE_ROW) {
    *delivered = (uint64_t)sqlite3_column_int64(st, 0);
    *read = (uint64_t)sqlite3_column_int64(st, 1);
  }
  sqlite3_finalize(st);
}

/* A text or attachment of sender account acc was stored at seq: a
 * delivery receipt is due at the end of the batch unless it is ours. */
static void receipt_note(tsr_chat *h, const char *conv, uint64_t seq, const char *acc) {
  if (h->cfg.no_delivery_receipts) return;
  char me[TSR_ID_B64_SIZE], dev[TSR_ID_B64_SIZE];
  own_ids(h, me, dev);
  if (!strcmp(acc, me)) return;
  for (size_t i = 0; i < h->n_due; i++)
    if (!strcmp(h->due[i].conv, conv)) {
      if (seq > h->due[i].up_to) h->due[i].up_to = seq;
      return;
    }
  struct receipt_due *n = realloc(h->due, (h->n_due + 1) * sizeof *n);
  if (!n) return; /* a receipt is best effort; the next batch covers it */
  h->due = n;
  snprintf(n[h->n_due].conv, sizeof n[0].conv, "%s", conv);
  n[h->n_due++].up_to = seq;
}

/* The end of a batch: one cumulative delivery receipt per conversation
 * that got others' texts or attachments (never for receipts themselves:
 * only those two kinds are noted). */
static void receipts_flush(tsr_chat *h) {
  size_t n = h->n_due;
  struct receipt_due *due = h->due;
  h->due = NULL;
  h->n_due = 0;
  char me[TSR_ID_B64_SIZE], dev[TSR_ID_B64_SIZE];
  if (n) own_ids(h, me, dev);
  for (size_t i = 0; i < n; i++) {
    conv_row r;
    uint64_t delivered, read;
    if (conv_get(db_of(h), due[i].conv, &r) == 0 && receipts_allowed(&r)) {
      own_receipts(db_of(h), due[i].conv, me, &delivered, &read);
      if (delivered < due[i].up_to) {
        content ct = {.kind = CONTENT_RECEIPT,
                      .receipt = CONTENT_DELIVERED,
                      .target = due[i].up_to};
        send_content(h, due[i].conv, &ct, ignore_result, NULL);
      }
    }
    row_clear(&r);
  }
  free(due);
}

/* ---- jobs -------------------------------------------------------------------------- */

static void job_started(tsr_chat *h) { h->jobs++; }
static void job_ended(tsr_chat *h) { h->jobs--; }

static bool inflight_has(tsr_chat *h, const char *cid) {
  for (size_t i = 0; i < h->n_inflight; i++)
    if (!strcmp(h->inflight[i], cid)) return true;
  return false;
}

static int inflight_add(tsr_chat *h, const char *cid) {
  char **n = realloc(h->inflight, (h->n_inflight + 1) * sizeof *n);
  if (!n) return TSR_ENOMEM;
  h->inflight = n;
  if (!(n[h->n_inflight] = strdup(cid))) return TSR_ENOMEM;
  h->n_inflight++;
  return 0;
}

static void inflight_del(tsr_chat *h, const char *cid) {
  for (size_t i = 0; i < h->n_inflight; i++)
    if (!strcmp(h->inflight[i], cid)) {
      free(h->inflight[i]);
      h->inflight[i] = h->inflight[--h->n_inflight];
      return;
    }
}

/* The own session ids (base64url), for own messages. */
static void own_ids(tsr_chat *h, char acc[TSR_ID_B64_SIZE], char dev[TSR_ID_B64_SIZE]) {
  tsr_session_info info;
  memset(&info, 0, sizeof info);
  tsr_client_session(h->c, &info);
  snprintf(acc, TSR_ID_B64_SIZE, "%s", info.account_id);
  snprintf(dev, TSR_ID_B64_SIZE, "%s", info.device_id);
}

static void send_ack(tsr_chat *h, const char *conv, uint64_t seq) {
  char f[96];
  snprintf(f, sizeof f, "\"conversation\":\"%s\",\"seq\":%llu", conv,
           (unsigned long long)seq);
  tsr_ws_call(h->ws, "ack", f, ignore_result, NULL);
}

/* ---- receiving -----------------------------------------------------------------------
 */

enum { PROC_DONE = 0, PROC_SKIPPED = 1, PROC_GAP = 2 };

static int outbox_del(sqlite3 *db, const char *cid);

/* A message of the log that is this device's own outbox ciphertext (its
 * answer was lost): stored as sent at seq and taken out of the outbox, in
 * the caller's transaction, so that it is not sent again — a resend after
 * this device acknowledged seq could meet a log whose row (and with it the
 * server's de-duplication key) was already deleted. 0 also when it is not
 * one of ours. */
static int own_from_outbox(tsr_chat *h, sqlite3 *db, const char *conv, uint64_t seq,
                           int64_t at, bytes_t msg) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db,
                         "SELECT client_id, plaintext FROM outbox WHERE conversation = ?"
                         " AND state = 1 AND ciphertext = ?",
                         -1, &st, NULL) != SQLITE_OK)
    return TSR_EIO;
  sqlite3_bind_text(st, 1, conv, -1, SQLITE_STATIC);
  sqlite3_bind_blob(st, 2, msg.ptr, (int)msg.len, SQLITE_STATIC);
  char cid[64] = "";
  content cn;
  int rc = sqlite3_step(st);
  if (rc != SQLITE_ROW) {
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : TSR_EIO;
  }
  const unsigned char *c = sqlite3_column_text(st, 0);
  snprintf(cid, sizeof cid, "%s", c ? (const char *)c : "");
  rc = content_decode(
      BYTES(sqlite3_column_blob(st, 1), (size_t)sqlite3_column_bytes(st, 1)), &cn);
  sqlite3_finalize(st);
  if (rc == TSR_ENOMEM) return rc;
  if (rc) cn = (content){.kind = CONTENT_UNSUPPORTED};
  char acc[TSR_ID_B64_SIZE], dev[TSR_ID_B64_SIZE];
  own_ids(h, acc, dev);
  tsr_message m = {.conversation = conv,
                   .seq = seq,
                   .at_ms = at,
                   .sender_account = acc,
                   .sender_device = dev,
                   .own = 1,
                   .text = ""};
  int kept = 0;
  rc = content_apply(db, &m, &cn, &kept);
  if (rc == 0) rc = outbox_del(db, cid);
  content_clear(&cn);
  return rc;
}

/* Processes the message at seq of conv (base64url MLSMessage), in order:
 * PROC_DONE (stored), PROC_SKIPPED (already had it, or it cannot be
 * processed: last_seq moves over it), PROC_GAP (messages before it are
 * missing: sync first), or a negative error (state file). */
static int process_one(tsr_chat *h, const char *conv, uint64_t seq, int64_t at,
                       const char *m64, size_t m64_len) {
  sqlite3 *db = db_of(h);
  conv_row r;
  int rc = conv_get(db, conv, &r);
  if (rc) {
    row_clear(&r);
    return rc == TSR_ENOTFOUND ? PROC_SKIPPED : rc;
  }
  uint64_t last = r.last_seq;
  if ((rc = advance_own(db, conv, &last))) goto out;
  if (seq <= last) {
    rc = PROC_SKIPPED;
    goto out;
  }
  if (seq > last + 1) {
    rc = PROC_GAP;
    goto out;
  }
  buf_t msg, saved;
  buf_init(&msg);
  buf_init(&saved);
  mls_group *g = NULL;
  group_event ev;
  group_event_init(&ev);
  int prc = unb64(m64, m64_len, &msg);
  if (prc == 0) prc = group_load(buf_view(&r.grp), &g);
  bool had_pending = prc == 0 && group_has_pending(g);
  if (prc == 0) prc = group_process(g, buf_view(&msg), &ev);
  /* Another member's commit won the epoch: a pending one of ours is void. */
  if (prc == 0 && had_pending && group_has_pending(g) && ev.type == GROUP_EVENT_COMMIT)
    group_discard_pending(g);
  /* New members' devices are checked against their identity keys. */
  if (prc == 0 && ev.type == GROUP_EVENT_COMMIT) trust_check(h, conv);
  /* Someone asked to leave: list again (the devices to remove come with it). */
  if (prc == 0 && ev.type == GROUP_EVENT_PROPOSAL) chat_refresh(h);
  tsr_message out = {0};
  char acc[TSR_ID_B64_SIZE] = "", dev[TSR_ID_B64_SIZE] = "";
  content ct = {0};
  if (prc == 0 && ev.type == GROUP_EVENT_APPLICATION) {
    bytes_t ident;
    if (group_member(g, ev.sender, &ident) == 0 && ident.len == 32) {
      size_t n = 0;
      b64_encode(acc, sizeof acc, ident.ptr, 16, B64_MODE_URL_NOPAD, &n);
      acc[n] = '\0';
      b64_encode(dev, sizeof dev, ident.ptr + 16, 16, B64_MODE_URL_NOPAD, &n);
      dev[n] = '\0';
    }
    /* Not a valid envelope: kept as an unsupported message. */
    int crc = content_decode(buf_view(&ev.data), &ct);
    if (crc == TSR_ENOMEM) prc = crc;
    if (crc) ct = (content){.kind = CONTENT_UNSUPPORTED};
    out = (tsr_message){.conversation = conv,
                        .seq = seq,
                        .at_ms = at,
                        .sender_account = acc,
                        .sender_device = dev,
                        .text = ""};
  }
  if (prc == 0) prc = group_save(g, &saved);
  int added = 0;
  rc = cstate_begin(client_state(h->c));
  if (rc == 0) {
    if (prc == 0) {
      /* The group and what it produced, together. */
      if (ev.type == GROUP_EVENT_APPLICATION) rc = content_apply(db, &out, &ct, &added);
      if (rc == 0) rc = conv_update(db, conv, &saved, seq);
      if (rc == 0 && ev.type == GROUP_EVENT_REMOVED)
        rc = conv_set_state(db, conv, "removed");
    } else {
      /* Not for us to read (our own message, another epoch, garbage):
       * the group stays as it was; move on. */
      rc = own_from_outbox(h, db, conv, seq, at, buf_view(&msg));
      if (rc == 0) rc = conv_update(db, conv, NULL, seq);
    }
    if (rc == 0)
      rc = cstate_commit(client_state(h->c));
    else
      cstate_rollback(client_state(h->c));
  }
  if (rc == 0 && added) {
    if (out.kind == TSR_KIND_TEXT || out.kind == TSR_KIND_ATTACHMENT)
      receipt_note(h, conv, seq, acc);
    hand_over(h, &out);
  }
  if (rc == 0) rc = prc == 0 ? PROC_DONE : PROC_SKIPPED;
  content_clear(&ct);
  group_event_clear(&ev);
  group_free(g);
  buf_free(&msg);
  buf_free_secret(&saved);
out:
  row_clear(&r);
  return rc;
}

/* Last seq processed of conv (0 when unknown). */
static uint64_t last_seq_of(tsr_chat *h, const char *conv) {
  conv_row r;
  uint64_t l = 0;
  if (conv_get(db_of(h), conv, &r) == 0) {
    l = r.last_seq;
    advance_own(db_of(h), conv, &l);
  }
  row_clear(&r);
  return l;
}

/* ---- sync -----------------------------------------------------------------------------
 */

typedef struct {
  tsr_chat *h;
  char conv[TSR_ID_B64_SIZE];
  tsr_result_cb cb;
  void *arg;
  unsigned rounds;
} sync_job;

static int sync_next(sync_job *j);

static void sync_finish(sync_job *j, const tsr_result *res) {
  tsr_chat *h = j->h;
  if (res) {
    if (j->cb) j->cb(j->arg, res);
  } else {
    uint64_t last = last_seq_of(h, j->conv);
    if (last) send_ack(h, j->conv, last);
    buf_t b;
    buf_init(&b);
    json_writer w;
    json_writer_init(&w, &b, 0);
    json_write_object_begin(&w);
    json_write_key(&w, "conversation");
    json_write_string(&w, j->conv);
    json_write_key(&w, "last_seq");
    json_write_u64(&w, last);
    json_write_object_end(&w);
    if (json_writer_finish(&w))
      result_local(j->cb, j->arg, TSR_ENOMEM, "local", "out of memory");
    else
      result_ok(j->cb, j->arg, &b);
    buf_free(&b);
  }
  free(j);
  job_ended(h);
}

static void on_sync(void *arg, const tsr_result *res) {
  sync_job *j = arg;
  if (res->err) {
    sync_finish(j, res);
    return;
  }
  pj p;
  if (pj_parse(&p, res->body, res->body_len)) {
    result_local(j->cb, j->arg, TSR_EDECODE, "bad_response", "unexpected sync answer");
    j->cb = NULL;
    sync_finish(j, res);
    return;
  }
  int arr = pj_get(&p, 0, "messages");
  bool more = false;
  int im = pj_get(&p, 0, "more");
  if (im >= 0) json_get_bool(p.t, im, &more);
  int rc = 0, n = 0;
  for (int e = arr >= 0 ? json_first_child(p.t, arr) : -1; e >= 0 && rc >= 0;
       e = json_next_sibling(p.t, arr, e)) {
    uint64_t seq = 0, at = 0;
    const char *m = NULL;
    size_t ml = 0;
    if (!pj_u64(&p, e, "seq", &seq) || !pj_view(&p, e, "message", &m, &ml)) continue;
    pj_u64(&p, e, "at", &at);
    rc = process_one(j->h, j->conv, seq, (int64_t)at, m, ml);
    if (rc == PROC_GAP) { /* sync never leaves gaps; older messages were deleted */
      conv_update(db_of(j->h), j->conv, NULL, seq - 1);
      rc = process_one(j->h, j->conv, seq, (int64_t)at, m, ml);
    }
    n++;
  }
  pj_free(&p);
  receipts_flush(j->h); /* a page is a batch */
  if (rc < 0) {
    result_local(j->cb, j->arg, rc, "state", "the state file could not be updated");
    j->cb = NULL;
    sync_finish(j, res);
    return;
  }
  if (more && n > 0 && ++j->rounds < MAX_SYNC_ROUNDS) {
    if ((rc = sync_next(j)) == 0) return;
    result_local(j->cb, j->arg, rc, "local", "sync could not be sent");
    j->cb = NULL;
    sync_finish(j, res);
    return;
  }
  sync_finish(j, NULL);
}

static int sync_next(sync_job *j) {
  char f[128];
  snprintf(f, sizeof f, "\"conversation\":\"%s\",\"after\":%llu,\"limit\":%d", j->conv,
           (unsigned long long)last_seq_of(j->h, j->conv), SYNC_LIMIT);
  return tsr_ws_call(j->h->ws, "sync", f, on_sync, j);
}

static int sync_start(tsr_chat *h, const char *conv, tsr_result_cb cb, void *arg) {
  sync_job *j = calloc(1, sizeof *j);
  if (!j) return TSR_ENOMEM;
  j->h = h;
  snprintf(j->conv, sizeof j->conv, "%s", conv);
  j->cb = cb;
  j->arg = arg;
  int rc = sync_next(j);
  if (rc) {
    free(j);
    return rc;
  }
  job_started(h);
  return 0;
}

int tsr_conversation_sync(tsr_chat *h, const char *conversation, tsr_result_cb cb,
                          void *arg) {
  if (!h || !valid_id(conversation)) return TSR_EINVAL;
  conv_row r;
  int rc = conv_get(db_of(h), conversation, &r);
  row_clear(&r);
  if (rc) return rc;
  return sync_start(h, conversation, cb, arg);
}

/* ---- pushes
 * ----------------------------------------------------------------------------- */

static int refresh_start(tsr_chat *h, tsr_result_cb cb, void *arg);

/* A transient message (docs/protocol.md, "send"): decrypted now, out of
 * seq order (the secret tree keeps the keys of the generations it jumps
 * over for the stored messages still to come), never stored, never
 * acknowledged. Only a typing indicator counts: its group state (the
 * ratchet moved, the key deleted) is saved, and it goes to on_typing.
 * Anything else, or what does not decrypt, is dropped without saving, so
 * that a stored message pushed as transient is still read at its seq. */
static void process_transient(tsr_chat *h, const char *conv, const char *m64,
                              size_t m64_len) {
  conv_row r;
  buf_t msg, saved;
  buf_init(&msg);
  buf_init(&saved);
  mls_group *g = NULL;
  group_event ev;
  group_event_init(&ev);
  content ct = {0};
  int rc = conv_get(db_of(h), conv, &r);
  if (rc == 0) rc = unb64(m64, m64_len, &msg);
  if (rc == 0) rc = group_load(buf_view(&r.grp), &g);
  if (rc == 0) rc = group_process(g, buf_view(&msg), &ev);
  if (rc == 0 && ev.type != GROUP_EVENT_APPLICATION) rc = TSR_EPROTOCOL;
  if (rc == 0) rc = content_decode(buf_view(&ev.data), &ct);
  if (rc == 0 && ct.kind != CONTENT_TYPING) rc = TSR_EPROTOCOL;
  if (rc == 0) rc = group_save(g, &saved);
  if (rc == 0) rc = conv_update(db_of(h), conv, &saved, 0);
  if (rc == 0 && h->cfg.on_typing) {
    char acc[TSR_ID_B64_SIZE] = "", dev[TSR_ID_B64_SIZE] = "";
    bytes_t ident;
    if (group_member(g, ev.sender, &ident) == 0 && ident.len == 32) {
      size_t n = 0;
      b64_encode(acc, sizeof acc, ident.ptr, 16, B64_MODE_URL_NOPAD, &n);
      acc[n] = '\0';
      b64_encode(dev, sizeof dev, ident.ptr + 16, 16, B64_MODE_URL_NOPAD, &n);
      dev[n] = '\0';
    }
    tsr_message m = {.conversation = conv,
                     .at_ms = wall_ms(),
                     .sender_account = acc,
                     .sender_device = dev,
                     .text = ""};
    message_from(&m, &ct);
    h->cfg.on_typing(h->cfg.arg, &m);
  }
  content_clear(&ct);
  group_event_clear(&ev);
  group_free(g);
  buf_free(&msg);
  buf_free_secret(&saved);
  row_clear(&r);
}

static void on_push(void *arg, const char *json, size_t len) {
  tsr_chat *h = arg;
  pj p;
  if (pj_parse(&p, json, len)) return;
  char kind[16] = "", conv[TSR_ID_B64_SIZE] = "";
  pj_str(&p, 0, "push", kind, sizeof kind);
  pj_str(&p, 0, "conversation", conv, sizeof conv);
  bool tr = false;
  int ti = pj_get(&p, 0, "transient");
  if (ti >= 0) json_get_bool(p.t, ti, &tr);
  const char *tm = NULL;
  size_t tml = 0;
  if (!strcmp(kind, "welcome") || !strcmp(kind, "roster") || !strcmp(kind, "devices")) {
    refresh_start(h, NULL, NULL);
  } else if (!strcmp(kind, "message") && valid_id(conv) && tr) {
    if (pj_view(&p, 0, "message", &tm, &tml)) process_transient(h, conv, tm, tml);
  } else if (!strcmp(kind, "message") && valid_id(conv)) {
    uint64_t seq = 0, at = 0;
    const char *m = NULL;
    size_t ml = 0;
    if (pj_u64(&p, 0, "seq", &seq) && pj_view(&p, 0, "message", &m, &ml)) {
      pj_u64(&p, 0, "at", &at);
      int rc = process_one(h, conv, seq, (int64_t)at, m, ml);
      if (rc == PROC_GAP)
        sync_start(h, conv, NULL, NULL);
      else if (rc == PROC_DONE || rc == PROC_SKIPPED)
        send_ack(h, conv, last_seq_of(h, conv));
      receipts_flush(h);
    }
  }
  pj_free(&p);
}

static void on_state(void *arg, int state) {
  tsr_chat *h = arg;
  if (state != TSR_WS_CONNECTED) return;
  refresh_start(h, NULL, NULL);
  tsr_outbox_flush(h);
}

/* ---- joining and refresh
 * ------------------------------------------------------------------ */

/* Joins conv from a Welcome (base64url); stores the group with last_seq
 * joined_seq - 1 and acknowledges seq 0. */
static int join(tsr_chat *h, const char *conv, const char *app, const char *kind,
                const char *state, uint64_t joined_seq, const char *w64, size_t w64_len) {
  buf_t w, saved;
  buf_init(&w);
  buf_init(&saved);
  uint8_t *sec = NULL;
  size_t sec_len = 0;
  kp_secret *ks = NULL;
  group_identity *id = NULL;
  mls_group *g = NULL;
  int rc = unb64(w64, w64_len, &w);
  if (rc == 0)
    rc = tsr_keypackage_secret_take_welcome(h->c, w.ptr, w.len, &sec, &sec_len);
  if (rc == 0) rc = kp_secret_decode(BYTES(sec, sec_len), &ks);
  if (rc == 0) rc = client_mls_identity(h->c, ks->suite->id, &id);
  if (rc == 0)
    rc = group_join(id, NULL, &ks, 1, buf_view(&w), BYTES_NONE, NULL, 0, NULL, NULL, &g);
  if (rc == 0) rc = group_save(g, &saved);
  if (rc == 0)
    rc = conv_insert(db_of(h), conv, app, kind, state, joined_seq ? joined_seq - 1 : 0,
                     buf_view(&saved));
  if (rc == 0) {
    send_ack(h, conv, 0);
    if (h->cfg.on_joined) h->cfg.on_joined(h->cfg.arg, conv, app, kind);
    trust_check(h, conv);
  }
  tsr_secret_free(sec, sec_len);
  kp_secret_free(ks);
  group_identity_free(id);
  group_free(g);
  buf_free(&w);
  buf_free_secret(&saved);
  return rc;
}

typedef struct {
  tsr_chat *h;
  tsr_result_cb cb;
  void *arg;
  size_t syncs; /* syncs in flight */
  buf_t body;   /* the conversations answer */
  int status;
} refresh_job;

static void refresh_done(refresh_job *j) {
  tsr_chat *h = j->h;
  if (j->status) groups_refreshed(h); /* listed: devices to add or remove */
  result_ok(j->cb, j->arg, &j->body);
  buf_free(&j->body);
  free(j);
  job_ended(h);
  h->refresh_running = false;
  if (h->refresh_again) {
    h->refresh_again = false;
    refresh_start(h, NULL, NULL);
  }
}

static void on_refresh_sync(void *arg, const tsr_result *res) {
  refresh_job *j = arg;
  if (res->err && transient(res->code)) retry_later(j->h);
  if (--j->syncs == 0) refresh_done(j);
}

static void on_conversations(void *arg, const tsr_result *res) {
  refresh_job *j = arg;
  tsr_chat *h = j->h;
  if (res->err) {
    if (transient(res->code)) retry_later(h);
    if (j->cb) j->cb(j->arg, res);
    j->cb = NULL;
    refresh_done(j);
    return;
  }
  h->retry_ms = 0; /* the delivery service answers again */
  buf_append(&j->body, res->body, res->body_len);
  pj p;
  if (pj_parse(&p, res->body, res->body_len) == 0) {
    int arr = pj_get(&p, 0, "conversations");
    for (int e = arr >= 0 ? json_first_child(p.t, arr) : -1; e >= 0;
         e = json_next_sibling(p.t, arr, e)) {
      char conv[TSR_ID_B64_SIZE] = "", app[16] = "", kind[8] = "", state[16] = "";
      uint64_t joined = 0;
      pj_str(&p, e, "conversation", conv, sizeof conv);
      pj_str(&p, e, "app", app, sizeof app);
      pj_str(&p, e, "kind", kind, sizeof kind);
      pj_str(&p, e, "state", state, sizeof state);
      pj_u64(&p, e, "joined_seq", &joined);
      if (!valid_id(conv)) continue;
      char role[8] = "";
      pj_str(&p, e, "role", role, sizeof role);
      const char *stale[64];
      char ids[64][TSR_ID_B64_SIZE];
      size_t n_stale = 0;
      int ra = pj_get(&p, e, "remove");
      for (int x = ra >= 0 ? json_first_child(p.t, ra) : -1; x >= 0 && n_stale < 64;
           x = json_next_sibling(p.t, ra, x))
        if (json_get_string(p.b, p.t, x, ids[n_stale], TSR_ID_B64_SIZE, NULL, 0) == 0) {
          stale[n_stale] = ids[n_stale];
          n_stale++;
        }
      groups_note(h, conv, !strcmp(role, "admin"), stale, n_stale);
      conv_row r;
      int rc = conv_get(db_of(h), conv, &r);
      row_clear(&r);
      const char *w = NULL;
      size_t wl = 0;
      if (rc == TSR_ENOTFOUND && pj_view(&p, e, "welcome", &w, &wl)) {
        rc = join(h, conv, app, kind, state[0] ? state : "active", joined, w, wl);
      } else if (rc == 0) {
        if (state[0] && strcmp(r.state, "removed")) conv_set_state(db_of(h), conv, state);
        if (pj_view(&p, e, "welcome", &w, &wl)) send_ack(h, conv, 0);
      }
      if (rc == 0 && sync_start(h, conv, on_refresh_sync, j) == 0) j->syncs++;
    }
    pj_free(&p);
  }
  j->status = res->status;
  if (j->syncs == 0) refresh_done(j);
}

static int refresh_start(tsr_chat *h, tsr_result_cb cb, void *arg) {
  if (!cb && h->refresh_running) {
    h->refresh_again = true;
    return 0;
  }
  refresh_job *j = calloc(1, sizeof *j);
  if (!j) return TSR_ENOMEM;
  j->h = h;
  j->cb = cb;
  j->arg = arg;
  buf_init(&j->body);
  int rc = tsr_ws_call(h->ws, "conversations", NULL, on_conversations, j);
  if (rc) {
    free(j);
    return rc;
  }
  h->refresh_running = true;
  job_started(h);
  return 0;
}

int tsr_conversations_refresh(tsr_chat *h, tsr_result_cb cb, void *arg) {
  if (!h) return TSR_EINVAL;
  return refresh_start(h, cb ? cb : ignore_result, arg);
}

/* ---- sending
 * ---------------------------------------------------------------------------- */

typedef struct {
  tsr_chat *h;
  char conv[TSR_ID_B64_SIZE];
  char client_id[40];
  tsr_result_cb cb;
  void *arg;
  unsigned tries;
} send_job;

static void send_finish(send_job *j, const tsr_result *res) {
  tsr_chat *h = j->h;
  inflight_del(h, j->client_id);
  if (j->cb) j->cb(j->arg, res);
  free(j);
  job_ended(h);
}

static void send_fail(send_job *j, int err, const char *code, const char *msg) {
  tsr_result res = {err, 0, code, msg, "", 0};
  send_finish(j, &res);
}

static int send_go(send_job *j);

/* The outbox row: plaintext, and the ciphertext of epoch *epoch when
 * state is 1. TSR_ENOTFOUND when gone (sent meanwhile). */
static int outbox_get(sqlite3 *db, const char *cid, buf_t *pt, buf_t *ct, int *state,
                      uint64_t *epoch) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db,
                         "SELECT plaintext, state, ciphertext, epoch FROM outbox"
                         " WHERE client_id = ?",
                         -1, &st, NULL) != SQLITE_OK)
    return TSR_EIO;
  sqlite3_bind_text(st, 1, cid, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    rc = buf_append(pt, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0));
    *state = sqlite3_column_int(st, 1);
    if (rc == 0 && *state == 1)
      rc =
          buf_append(ct, sqlite3_column_blob(st, 2), (size_t)sqlite3_column_bytes(st, 2));
    *epoch = (uint64_t)sqlite3_column_int64(st, 3);
    rc = rc ? TSR_ENOMEM : 0;
  } else {
    rc = rc == SQLITE_DONE ? TSR_ENOTFOUND : TSR_EIO;
  }
  sqlite3_finalize(st);
  return rc;
}

static int outbox_del(sqlite3 *db, const char *cid) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, "DELETE FROM outbox WHERE client_id = ?", -1, &st, NULL) !=
      SQLITE_OK)
    return TSR_EIO;
  sqlite3_bind_text(st, 1, cid, -1, SQLITE_STATIC);
  return run_stmt(st);
}

static void on_stale_synced(void *arg, const tsr_result *res) {
  send_job *j = arg;
  int rc = res->err ? res->err : send_go(j);
  if (rc)
    send_fail(j, rc, res->err ? res->code : "local",
              "the message could not be sent again");
}

static void on_send(void *arg, const tsr_result *res) {
  send_job *j = arg;
  tsr_chat *h = j->h;
  sqlite3 *db = db_of(h);
  if (res->err) {
    if (!strcmp(res->code, "stale_epoch") && ++j->tries < SEND_TRIES) {
      /* Sync (the winning commit), then encrypt again in the new epoch. */
      if (sync_start(h, j->conv, on_stale_synced, j) == 0) return;
    }
    if (transient(res->code))
      retry_later(h); /* kept; sent again soon (same client id) */
    else if (strcmp(res->code, "cancelled") && strcmp(res->code, "stale_epoch"))
      outbox_del(db, j->client_id); /* refused for good */
    send_finish(j, res);
    return;
  }
  pj p;
  uint64_t seq = 0;
  bool dup = false;
  if (pj_parse(&p, res->body, res->body_len) == 0) {
    pj_u64(&p, 0, "seq", &seq);
    int d = pj_get(&p, 0, "duplicate");
    if (d >= 0) json_get_bool(p.t, d, &dup);
    pj_free(&p);
  }
  if (seq == 0) {
    send_fail(j, TSR_EDECODE, "bad_response", "send answer without seq");
    return;
  }
  buf_t pt, ct;
  buf_init(&pt);
  buf_init(&ct);
  int state = 0;
  uint64_t epoch = 0;
  char acc[TSR_ID_B64_SIZE], dev[TSR_ID_B64_SIZE];
  own_ids(h, acc, dev);
  int rc = outbox_get(db, j->client_id, &pt, &ct, &state, &epoch);
  if (rc == 0) {
    /* Stored and applied here as the receivers do. */
    content cn;
    rc = content_decode(buf_view(&pt), &cn);
    if (rc != TSR_ENOMEM) {
      if (rc) cn = (content){.kind = CONTENT_UNSUPPORTED};
      tsr_message m = {.conversation = j->conv,
                       .seq = seq,
                       .at_ms = wall_ms(),
                       .sender_account = acc,
                       .sender_device = dev,
                       .own = 1,
                       .text = ""};
      int kept = 0;
      rc = cstate_begin(client_state(h->c));
      if (rc == 0) {
        rc = content_apply(db, &m, &cn, &kept);
        if (rc == 0) rc = outbox_del(db, j->client_id);
        if (rc == 0)
          rc = cstate_commit(client_state(h->c));
        else
          cstate_rollback(client_state(h->c));
      }
      content_clear(&cn);
    }
  } else if (rc == TSR_ENOTFOUND) {
    rc = 0; /* stored by another send of the same row */
  }
  buf_free_secret(&pt);
  buf_free(&ct);
  if (rc) {
    send_fail(j, rc, "state", "the state file could not be updated");
    return;
  }
  uint64_t last = last_seq_of(h, j->conv);
  if (last >= seq) send_ack(h, j->conv, last);
  buf_t b;
  buf_init(&b);
  json_writer w;
  json_writer_init(&w, &b, 0);
  json_write_object_begin(&w);
  json_write_key(&w, "conversation");
  json_write_string(&w, j->conv);
  json_write_key(&w, "seq");
  json_write_u64(&w, seq);
  json_write_key(&w, "client_id");
  json_write_string(&w, j->client_id);
  json_write_key(&w, "duplicate");
  json_write_bool(&w, dup);
  json_write_object_end(&w);
  if (json_writer_finish(&w)) {
    buf_free(&b);
    send_fail(j, TSR_ENOMEM, "local", "out of memory");
    return;
  }
  tsr_result ok = {0, res->status, "", "", (const char *)b.ptr, b.len};
  send_finish(j, &ok);
  buf_free(&b);
}

/* Encrypts the outbox row (unless its ciphertext is of the current
 * epoch), storing the group and the ciphertext in one transaction, and
 * sends it. */
static int send_go(send_job *j) {
  tsr_chat *h = j->h;
  sqlite3 *db = db_of(h);
  conv_row r;
  buf_t pt, ct, saved, body;
  buf_init(&pt);
  buf_init(&ct);
  buf_init(&saved);
  buf_init(&body);
  mls_group *g = NULL;
  int state = 0;
  uint64_t epoch = 0;
  int rc = conv_get(db, j->conv, &r);
  if (rc == 0) rc = outbox_get(db, j->client_id, &pt, &ct, &state, &epoch);
  if (rc == 0) rc = group_load(buf_view(&r.grp), &g);
  if (rc == 0 && (state != 1 || epoch != group_epoch(g))) {
    buf_reset(&ct);
    rc = group_protect(g, buf_view(&pt), BYTES_NONE, &ct);
    if (rc == 0) rc = group_save(g, &saved);
    if (rc == 0 && (rc = cstate_begin(client_state(h->c))) == 0) {
      sqlite3_stmt *st;
      rc = sqlite3_prepare_v2(db,
                              "UPDATE outbox SET state = 1, ciphertext = ?, epoch = ?"
                              " WHERE client_id = ?",
                              -1, &st, NULL) == SQLITE_OK
               ? 0
               : TSR_EIO;
      if (rc == 0) {
        sqlite3_bind_blob(st, 1, ct.ptr, (int)ct.len, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (int64_t)group_epoch(g));
        sqlite3_bind_text(st, 3, j->client_id, -1, SQLITE_STATIC);
        rc = run_stmt(st);
      }
      if (rc == 0) rc = conv_update(db, j->conv, &saved, 0);
      if (rc == 0) /* a stored message follows the typing messages */
        rc = sql_run(db, "UPDATE conversations SET transient_run = 0 WHERE id = ?", "t",
                     j->conv);
      if (rc == 0)
        rc = cstate_commit(client_state(h->c));
      else
        cstate_rollback(client_state(h->c));
    }
  }
  if (rc == 0) {
    json_writer w;
    json_writer_init(&w, &body, 0);
    json_write_object_begin(&w);
    json_write_key(&w, "conversation");
    json_write_string(&w, j->conv);
    json_write_key(&w, "client_id");
    json_write_string(&w, j->client_id);
    json_write_key(&w, "message");
    json_write_base64url(&w, buf_view(&ct));
    json_write_object_end(&w);
    rc = ws_call_obj(h, "send", &w, &body, on_send, j);
  }
  group_free(g);
  row_clear(&r);
  buf_free_secret(&pt);
  buf_free(&ct);
  buf_free_secret(&saved);
  buf_free(&body);
  return rc;
}

/* Starts sending the outbox row client_id. */
static int send_start(tsr_chat *h, const char *conv, const char *cid, tsr_result_cb cb,
                      void *arg) {
  send_job *j = calloc(1, sizeof *j);
  if (!j) return TSR_ENOMEM;
  j->h = h;
  snprintf(j->conv, sizeof j->conv, "%s", conv);
  snprintf(j->client_id, sizeof j->client_id, "%s", cid);
  j->cb = cb;
  j->arg = arg;
  int rc = inflight_add(h, cid);
  if (rc == 0) rc = send_go(j);
  if (rc) {
    inflight_del(h, cid);
    free(j);
    return rc;
  }
  job_started(h);
  return 0;
}

/* Puts the envelope of ct in the outbox and starts sending it (the rules
 * of tsr_send_text). */
static int send_content(tsr_chat *h, const char *conversation, const content *ct,
                        tsr_result_cb cb, void *arg) {
  if (!h || !valid_id(conversation) || content_check(ct)) return TSR_EINVAL;
  sqlite3 *db = db_of(h);
  conv_row r;
  int rc = conv_get(db, conversation, &r);
  row_clear(&r);
  if (rc) return rc;
  buf_t pt;
  buf_init(&pt);
  if ((rc = content_encode(ct, &pt))) return rc;
  uint8_t raw[16];
  randombytes_buf(raw, sizeof raw);
  char cid[40] = "m-";
  size_t n = 0;
  b64_encode(cid + 2, sizeof cid - 2, raw, sizeof raw, B64_MODE_URL_NOPAD, &n);
  cid[2 + n] = '\0';
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db,
                         "INSERT INTO outbox(conversation, client_id, plaintext,"
                         " created_at) VALUES (?, ?, ?, ?)",
                         -1, &st, NULL) != SQLITE_OK) {
    buf_free_secret(&pt);
    return TSR_EIO;
  }
  sqlite3_bind_text(st, 1, conversation, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, cid, -1, SQLITE_STATIC);
  sqlite3_bind_blob(st, 3, pt.ptr, (int)pt.len, SQLITE_STATIC);
  sqlite3_bind_int64(st, 4, wall_ms());
  rc = run_stmt(st);
  buf_free_secret(&pt);
  if (rc) return rc;
  rc = send_start(h, conversation, cid, cb, arg);
  if (rc == TSR_ENOMEM) outbox_del(db, cid);
  /* Other failures (state file, MLS): the row stays for the next flush. */
  return rc == TSR_ENOMEM ? rc : 0;
}

int tsr_send_text(tsr_chat *h, const char *conversation, const char *text,
                  tsr_result_cb cb, void *arg) {
  return tsr_send_reply(h, conversation, text, 0, cb, arg);
}

int tsr_send_reply(tsr_chat *h, const char *conversation, const char *text,
                   uint64_t reply_to, tsr_result_cb cb, void *arg) {
  if (!text) return TSR_EINVAL;
  content ct = {
      .kind = CONTENT_TEXT, .body = text, .body_len = strlen(text), .reply_to = reply_to};
  return send_content(h, conversation, &ct, cb, arg);
}

/* One's own text or attachment at target, not deleted (tsr_send_edit). */
static int own_target(tsr_chat *h, const char *conv, uint64_t target) {
  char acc[TSR_ID_B64_SIZE], me[TSR_ID_B64_SIZE], dev[TSR_ID_B64_SIZE];
  int kind = 0, deleted = 0;
  int rc = target_row(db_of(h), conv, target, acc, &kind, &deleted);
  if (rc) return rc;
  if (kind != TSR_KIND_TEXT && kind != TSR_KIND_ATTACHMENT) return TSR_ENOTFOUND;
  own_ids(h, me, dev);
  if (strcmp(acc, me)) return TSR_ESENDER;
  return deleted ? TSR_ESTATE : 0;
}

int tsr_send_edit(tsr_chat *h, const char *conversation, uint64_t target,
                  const char *text, tsr_result_cb cb, void *arg) {
  if (!h || !valid_id(conversation) || !text || target == 0) return TSR_EINVAL;
  content ct = {
      .kind = CONTENT_EDIT, .target = target, .body = text, .body_len = strlen(text)};
  if (content_check(&ct)) return TSR_EINVAL;
  int rc = own_target(h, conversation, target);
  return rc ? rc : send_content(h, conversation, &ct, cb, arg);
}

int tsr_send_delete(tsr_chat *h, const char *conversation, uint64_t target,
                    tsr_result_cb cb, void *arg) {
  if (!h || !valid_id(conversation) || target == 0) return TSR_EINVAL;
  int rc = own_target(h, conversation, target);
  content ct = {.kind = CONTENT_DELETE, .target = target};
  return rc ? rc : send_content(h, conversation, &ct, cb, arg);
}

int tsr_send_reaction(tsr_chat *h, const char *conversation, uint64_t target,
                      const char *emoji, int remove, tsr_result_cb cb, void *arg) {
  if (!h || !valid_id(conversation) || !emoji || target == 0) return TSR_EINVAL;
  content ct = {.kind = CONTENT_REACTION,
                .target = target,
                .emoji = emoji,
                .emoji_len = strlen(emoji),
                .remove = remove != 0};
  if (content_check(&ct)) return TSR_EINVAL;
  char acc[TSR_ID_B64_SIZE];
  int kind = 0, deleted = 0;
  int rc = target_row(db_of(h), conversation, target, acc, &kind, &deleted);
  if (rc == 0 && ((kind != TSR_KIND_TEXT && kind != TSR_KIND_ATTACHMENT) || deleted))
    rc = TSR_ENOTFOUND;
  return rc ? rc : send_content(h, conversation, &ct, cb, arg);
}

int tsr_send_attachment(tsr_chat *h, const char *conversation, const char *descriptor,
                        const char *caption, uint64_t reply_to, tsr_result_cb cb,
                        void *arg) {
  if (!descriptor) return TSR_EINVAL;
  content ct = {.kind = CONTENT_ATTACHMENT,
                .descriptor = descriptor,
                .descriptor_len = strlen(descriptor),
                .body = caption ? caption : "",
                .body_len = caption ? strlen(caption) : 0,
                .reply_to = reply_to};
  return send_content(h, conversation, &ct, cb, arg);
}

int tsr_conversation_rename(tsr_chat *h, const char *conversation, const char *title,
                            tsr_result_cb cb, void *arg) {
  if (!title) return TSR_EINVAL;
  content ct = {.kind = CONTENT_TITLE, .body = title, .body_len = strlen(title)};
  return send_content(h, conversation, &ct, cb, arg);
}

int tsr_mark_read(tsr_chat *h, const char *conversation, uint64_t up_to, tsr_result_cb cb,
                  void *arg) {
  if (!h || !valid_id(conversation) || up_to == 0) return TSR_EINVAL;
  conv_row r;
  int rc = conv_get(db_of(h), conversation, &r);
  bool allowed = rc == 0 && receipts_allowed(&r);
  row_clear(&r);
  if (rc) return rc;
  if (!allowed) return 1;
  uint64_t last = last_seq_of(h, conversation);
  if (up_to > last) up_to = last;
  char me[TSR_ID_B64_SIZE], dev[TSR_ID_B64_SIZE];
  uint64_t delivered, read;
  own_ids(h, me, dev);
  own_receipts(db_of(h), conversation, me, &delivered, &read);
  if (up_to == 0 || up_to <= read) return 1;
  content ct = {.kind = CONTENT_RECEIPT, .receipt = CONTENT_READ, .target = up_to};
  return send_content(h, conversation, &ct, cb, arg);
}

/* ---- typing (transient) ---------------------------------------------------------------
 */

typedef struct {
  tsr_chat *h;
  tsr_result_cb cb;
  void *arg;
} typing_job;

static void on_typing_sent(void *arg, const tsr_result *res) {
  typing_job *j = arg;
  tsr_chat *h = j->h;
  if (j->cb) j->cb(j->arg, res);
  free(j);
  job_ended(h);
}

int tsr_send_typing(tsr_chat *h, const char *conversation, int on, tsr_result_cb cb,
                    void *arg) {
  if (!h || !valid_id(conversation)) return TSR_EINVAL;
  sqlite3 *db = db_of(h);
  conv_row r;
  int rc = conv_get(db, conversation, &r);
  if (rc) {
    row_clear(&r);
    return rc;
  }
  if (strcmp(r.state, "active")) {
    row_clear(&r);
    return !strcmp(r.state, "removed") ? TSR_ESTATE : 1;
  }
  int64_t run = 0;
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, "SELECT transient_run FROM conversations WHERE id = ?", -1,
                         &st, NULL) == SQLITE_OK) {
    sqlite3_bind_text(st, 1, conversation, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) run = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
  }
  if (run >= TSR_TYPING_MAX_RUN) {
    row_clear(&r);
    return TSR_ELIMIT;
  }
  content ct = {.kind = CONTENT_TYPING, .on = on != 0};
  buf_t pt, msg, saved, body;
  buf_init(&pt);
  buf_init(&msg);
  buf_init(&saved);
  buf_init(&body);
  mls_group *g = NULL;
  typing_job *j = calloc(1, sizeof *j);
  rc = j ? content_encode(&ct, &pt) : TSR_ENOMEM;
  if (rc == 0) rc = group_load(buf_view(&r.grp), &g);
  if (rc == 0) rc = group_protect(g, buf_view(&pt), BYTES_NONE, &msg);
  if (rc == 0) rc = group_save(g, &saved);
  /* The generation is spent before the message leaves: never reused. */
  if (rc == 0 && (rc = cstate_begin(client_state(h->c))) == 0) {
    rc = conv_update(db, conversation, &saved, 0);
    if (rc == 0)
      rc = sql_run(db,
                   "UPDATE conversations SET transient_run = transient_run + 1"
                   " WHERE id = ?",
                   "t", conversation);
    if (rc == 0)
      rc = cstate_commit(client_state(h->c));
    else
      cstate_rollback(client_state(h->c));
  }
  if (rc == 0) {
    j->h = h;
    j->cb = cb;
    j->arg = arg;
    json_writer w;
    json_writer_init(&w, &body, 0);
    json_write_object_begin(&w);
    json_write_key(&w, "conversation");
    json_write_string(&w, conversation);
    json_write_key(&w, "transient");
    json_write_bool(&w, true);
    json_write_key(&w, "message");
    json_write_base64url(&w, buf_view(&msg));
    json_write_object_end(&w);
    rc = ws_call_obj(h, "send", &w, &body, on_typing_sent, j);
  }
  if (rc == 0)
    job_started(h);
  else
    free(j);
  group_free(g);
  row_clear(&r);
  buf_free(&pt);
  buf_free(&msg);
  buf_free_secret(&saved);
  buf_free(&body);
  return rc;
}

int tsr_outbox_flush(tsr_chat *h) {
  if (!h) return TSR_EINVAL;
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db_of(h),
                         "SELECT conversation, client_id FROM outbox ORDER BY n", -1, &st,
                         NULL) != SQLITE_OK)
    return TSR_EIO;
  /* Collect first: sending changes the table. */
  char(*rows)[2][40] = NULL;
  size_t n = 0;
  while (sqlite3_step(st) == SQLITE_ROW) {
    void *p = realloc(rows, (n + 1) * sizeof *rows);
    if (!p) break;
    rows = p;
    col_text(st, 0, rows[n][0], sizeof rows[n][0]);
    col_text(st, 1, rows[n][1], sizeof rows[n][1]);
    n++;
  }
  sqlite3_finalize(st);
  int started = 0;
  for (size_t i = 0; i < n; i++)
    if (!inflight_has(h, rows[i][1]) &&
        send_start(h, rows[i][0], rows[i][1], ignore_result, NULL) == 0)
      started++;
  free(rows);
  return started;
}

/* ---- creating
 * ------------------------------------------------------------------------------ */

typedef struct {
  tsr_chat *h;
  tsr_result_cb cb;
  void *arg;
  char app[16], kind[8];
  size_t n_members;
  char (*accounts)[TSR_ID_B64_SIZE]; /* members, then our own account last;
                                        filled by the claim for members given
                                        by profile */
  char (*apps)[16];
  char (*keys)[MEMBER_KEY_MAX + 1]; /* profile key, or "" when given by id */
  size_t next;                      /* account being claimed */
  buf_t *kps;                       /* claimed KeyPackages (MLSMessage) */
  size_t n_kps;
  mls_group *g;
  char conv[TSR_ID_B64_SIZE];
} create_job;

static void create_free(create_job *j) {
  for (size_t i = 0; i < j->n_kps; i++) buf_free(&j->kps[i]);
  free(j->kps);
  free(j->accounts);
  free(j->apps);
  free(j->keys);
  group_free(j->g);
  free(j);
}

static void create_finish(create_job *j, const tsr_result *res) {
  tsr_chat *h = j->h;
  if (j->cb) j->cb(j->arg, res);
  create_free(j);
  job_ended(h);
}

static void create_fail(create_job *j, int err, const char *code, const char *msg) {
  tsr_result res = {err, 0, code, msg, "", 0};
  create_finish(j, &res);
}

static int claim_next(create_job *j);

static void on_created(void *arg, const tsr_result *res) {
  create_job *j = arg;
  if (res->err) {
    create_finish(j, res);
    return;
  }
  uint64_t next_seq = 1;
  pj p;
  if (pj_parse(&p, res->body, res->body_len) == 0) {
    pj_u64(&p, 0, "next_seq", &next_seq);
    pj_free(&p);
  }
  buf_t saved;
  buf_init(&saved);
  int rc = group_merge_pending(j->g);
  if (rc == 0) rc = group_save(j->g, &saved);
  if (rc == 0)
    rc = conv_insert(db_of(j->h), j->conv, j->app, j->kind, "active",
                     next_seq ? next_seq - 1 : 0, buf_view(&saved));
  buf_free_secret(&saved);
  if (rc) {
    create_fail(j, rc, "state", "the conversation could not be stored");
    return;
  }
  buf_t b;
  buf_init(&b);
  json_writer w;
  json_writer_init(&w, &b, 0);
  json_write_object_begin(&w);
  json_write_key(&w, "conversation");
  json_write_string(&w, j->conv);
  json_write_key(&w, "app");
  json_write_string(&w, j->app);
  json_write_key(&w, "kind");
  json_write_string(&w, j->kind);
  json_write_key(&w, "next_seq");
  json_write_u64(&w, next_seq);
  json_write_object_end(&w);
  if (json_writer_finish(&w)) {
    buf_free(&b);
    create_fail(j, TSR_ENOMEM, "local", "out of memory");
    return;
  }
  trust_check(j->h, j->conv); /* the members met here: devices against their keys */
  tsr_result ok = {0, res->status, "", "", (const char *)b.ptr, b.len};
  create_finish(j, &ok);
  buf_free(&b);
}

/* Every KeyPackage is in: makes the group, commits and sends. */
static int create_send(create_job *j) {
  group_identity *id = NULL;
  uint8_t gid[16];
  randombytes_buf(gid, sizeof gid);
  size_t n = 0;
  b64_encode(j->conv, sizeof j->conv, gid, sizeof gid, B64_MODE_URL_NOPAD, &n);
  j->conv[n] = '\0';
  buf_t gi, commit, welcome, body;
  buf_init(&gi);
  buf_init(&commit);
  buf_init(&welcome);
  buf_init(&body);
  bytes_t *views = calloc(j->n_kps ? j->n_kps : 1, sizeof *views);
  int rc = views ? client_mls_identity(j->h->c, CONV_SUITE, &id) : TSR_ENOMEM;
  if (rc == 0) rc = group_create(id, NULL, BYTES(gid, sizeof gid), NULL, &j->g);
  if (rc == 0) rc = group_info(j->g, true, &gi);
  for (size_t i = 0; rc == 0 && i < j->n_kps; i++) views[i] = buf_view(&j->kps[i]);
  group_commit_params cp = {.add_key_packages = views, .n_adds = j->n_kps};
  if (rc == 0) rc = group_commit(j->g, &cp, &commit, &welcome);
  if (rc == 0) {
    json_writer w;
    json_writer_init(&w, &body, 0);
    json_write_object_begin(&w);
    json_write_key(&w, "app");
    json_write_string(&w, j->app);
    json_write_key(&w, "kind");
    json_write_string(&w, j->kind);
    json_write_key(&w, "members");
    json_write_array_begin(&w);
    for (size_t i = 0; i < j->n_members; i++) {
      json_write_object_begin(&w);
      json_write_key(&w, "account");
      json_write_string(&w, j->accounts[i]);
      json_write_key(&w, "app");
      json_write_string(&w, j->apps[i]);
      json_write_object_end(&w);
    }
    json_write_array_end(&w);
    json_write_key(&w, "group_info");
    json_write_base64url(&w, buf_view(&gi));
    json_write_key(&w, "commit");
    json_write_base64url(&w, buf_view(&commit));
    json_write_key(&w, "welcome");
    json_write_base64url(&w, buf_view(&welcome));
    json_write_object_end(&w);
    rc = ws_call_obj(j->h, "conversation.create", &w, &body, on_created, j);
  }
  free(views);
  group_identity_free(id);
  buf_free(&gi);
  buf_free(&commit);
  buf_free(&welcome);
  buf_free(&body);
  return rc;
}

/* A member given by profile: the account the claim answered, which must be
 * neither ours nor another member's. Fails the job (and returns nonzero)
 * otherwise. */
static int take_account(create_job *j, const tsr_result *res) {
  char id[TSR_ID_B64_SIZE + 8] = "";
  pj p;
  if (pj_parse(&p, res->body, res->body_len) == 0) {
    pj_str(&p, 0, "account_id", id, sizeof id);
    pj_free(&p);
  }
  if (!valid_id(id)) {
    create_fail(j, TSR_EDECODE, "bad_response", "the claim answer has no account_id");
    return TSR_EDECODE;
  }
  const char *why = !strcmp(id, j->accounts[j->n_members]) ? "is your own" : NULL;
  for (size_t k = 0; !why && k < j->n_members; k++)
    if (k != j->next && !strcmp(id, j->accounts[k])) why = "is another member's";
  if (why) {
    char msg[128];
    snprintf(msg, sizeof msg, "the profile %s:%s %s", j->keys[j->next], j->apps[j->next],
             why);
    create_fail(j, TSR_EINVAL, "bad_member", msg);
    return TSR_EINVAL;
  }
  memcpy(j->accounts[j->next], id, sizeof j->accounts[0]); /* valid_id: 22 + NUL */
  return 0;
}

static void on_claim(void *arg, const tsr_result *res) {
  create_job *j = NULL;
  if (!chat_ticket_take(arg, (void **)&j)) { /* the chat is gone */
    tsr_result gone = {TSR_ESTATE, 0, "cancelled", "the chat was freed", "", 0};
    if (j->cb) j->cb(j->arg, &gone);
    create_free(j);
    return;
  }
  if (res->err) {
    create_finish(j, res);
    return;
  }
  pj p;
  if (pj_parse(&p, res->body, res->body_len)) {
    create_fail(j, TSR_EDECODE, "bad_response", "unexpected claim answer");
    return;
  }
  int arr = pj_get(&p, 0, "key_packages");
  size_t got = 0;
  int rc = 0;
  for (int e = arr >= 0 ? json_first_child(p.t, arr) : -1; e >= 0 && rc == 0;
       e = json_next_sibling(p.t, arr, e)) {
    const char *k = NULL;
    size_t kl = 0;
    if (!pj_view(&p, e, "key_package", &k, &kl)) continue;
    buf_t *nk = realloc(j->kps, (j->n_kps + 1) * sizeof *nk);
    if (!nk) {
      rc = TSR_ENOMEM;
      break;
    }
    j->kps = nk;
    buf_init(&j->kps[j->n_kps]);
    rc = unb64(k, kl, &j->kps[j->n_kps]);
    j->n_kps++;
    got++;
  }
  pj_free(&p);
  if (rc) {
    create_fail(j, rc, "bad_response", "a claimed KeyPackage does not decode");
    return;
  }
  bool own = j->next == j->n_members;
  if (!own && j->keys[j->next][0] && (rc = take_account(j, res)) != 0) return;
  if (got == 0 && !own) {
    char msg[128];
    if (j->keys[j->next][0])
      snprintf(msg, sizeof msg, "%s:%s has no device with a KeyPackage", j->keys[j->next],
               j->apps[j->next]);
    else
      snprintf(msg, sizeof msg, "account %s has no device with a KeyPackage",
               j->accounts[j->next]);
    create_fail(j, TSR_ENOTFOUND, "no_key_packages", msg);
    return;
  }
  j->next++;
  rc = j->next <= j->n_members ? claim_next(j) : create_send(j);
  if (rc) create_fail(j, rc, "local", "the conversation could not be made");
}

/* Claims for member j->next (by account id or by profile), or for our own
 * account's other devices once every member is done. */
static int claim_next(create_job *j) {
  buf_t b;
  buf_init(&b);
  json_writer w;
  json_writer_init(&w, &b, 0);
  json_write_object_begin(&w);
  if (j->next < j->n_members && j->keys[j->next][0]) {
    json_write_key(&w, "app");
    json_write_string(&w, j->apps[j->next]);
    json_write_key(&w, "key");
    json_write_string(&w, j->keys[j->next]);
  } else {
    json_write_key(&w, "account_id");
    json_write_string(&w, j->accounts[j->next]);
  }
  json_write_key(&w, "suite");
  json_write_u64(&w, CONV_SUITE);
  json_write_object_end(&w);
  int rc = json_writer_finish(&w) || buf_append(&b, "", 1) ? TSR_ENOMEM : 0;
  if (rc == 0)
    rc = chat_http(j->h, "POST", "/v1/keypackages/claim", (const char *)b.ptr, on_claim,
                   j);
  buf_free(&b);
  return rc;
}

/* The profile key of member m as the server takes it (a leading '@' of a
 * handle or username dropped) into out; false when m has none or it
 * cannot be one (empty, too long, control characters). */
static bool member_key(const tsr_member *m, char out[MEMBER_KEY_MAX + 1]) {
  const char *k = m->key;
  if (!k) return false;
  if (k[0] == '@' && strcmp(m->app, "chat")) k++;
  size_t n = strlen(k);
  if (n == 0 || n > MEMBER_KEY_MAX) return false;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)k[i] < 0x20 || k[i] == 0x7f) return false;
  memcpy(out, k, n + 1);
  return true;
}

/* Two keys of one app naming the same profile (handles and usernames
 * compare case-insensitively). */
static bool same_key(const char *a, const char *b) {
  for (; *a && *b; a++, b++) {
    char x = *a >= 'A' && *a <= 'Z' ? (char)(*a - 'A' + 'a') : *a;
    char y = *b >= 'A' && *b <= 'Z' ? (char)(*b - 'A' + 'a') : *b;
    if (x != y) return false;
  }
  return *a == *b;
}

int tsr_conversation_create(tsr_chat *h, const tsr_conversation_params *p,
                            tsr_result_cb cb, void *arg) {
  if (!h || !p || !valid_app(p->app) || !p->kind || !p->members || p->n_members == 0 ||
      p->n_members > MAX_MEMBERS)
    return TSR_EINVAL;
  if (strcmp(p->kind, "direct") && strcmp(p->kind, "group")) return TSR_EINVAL;
  if (!strcmp(p->kind, "direct") && p->n_members != 1) return TSR_EINVAL;
  tsr_session_info info;
  int rc = tsr_client_session(h->c, &info);
  if (rc) return rc;
  if (!info.logged_in || !info.account_id[0]) return TSR_ESTATE;
  /* Each member by account id, else by profile key. */
  for (size_t i = 0; i < p->n_members; i++) {
    const tsr_member *m = &p->members[i];
    char k[MEMBER_KEY_MAX + 1], k2[MEMBER_KEY_MAX + 1];
    if (!valid_app(m->app)) return TSR_EINVAL;
    if (m->account ? !valid_id(m->account) : !member_key(m, k)) return TSR_EINVAL;
    if (m->account && !strcmp(m->account, info.account_id)) return TSR_EINVAL;
    for (size_t x = 0; x < i; x++) {
      const tsr_member *o = &p->members[x];
      if (m->account ? o->account && !strcmp(m->account, o->account)
                     : !o->account && !strcmp(m->app, o->app) && member_key(o, k2) &&
                           same_key(k, k2))
        return TSR_EINVAL;
    }
  }
  create_job *j = calloc(1, sizeof *j);
  if (!j) return TSR_ENOMEM;
  j->h = h;
  j->cb = cb;
  j->arg = arg;
  snprintf(j->app, sizeof j->app, "%s", p->app);
  snprintf(j->kind, sizeof j->kind, "%s", p->kind);
  j->n_members = p->n_members;
  j->accounts = calloc(p->n_members + 1, sizeof *j->accounts);
  j->apps = calloc(p->n_members + 1, sizeof *j->apps);
  j->keys = calloc(p->n_members + 1, sizeof *j->keys);
  if (!j->accounts || !j->apps || !j->keys) {
    create_free(j);
    return TSR_ENOMEM;
  }
  for (size_t i = 0; i < p->n_members; i++) {
    if (p->members[i].account)
      snprintf(j->accounts[i], sizeof j->accounts[i], "%s", p->members[i].account);
    else
      member_key(&p->members[i], j->keys[i]);
    snprintf(j->apps[i], sizeof j->apps[i], "%s", p->members[i].app);
  }
  snprintf(j->accounts[p->n_members], sizeof j->accounts[0], "%s", info.account_id);
  if ((rc = claim_next(j))) {
    create_free(j);
    return rc;
  }
  job_started(h);
  return 0;
}

/* ---- accept / decline
 * --------------------------------------------------------------------- */

typedef struct {
  tsr_chat *h;
  char conv[TSR_ID_B64_SIZE];
  tsr_result_cb cb;
  void *arg;
} answer_job;

static void on_answer(void *arg, const tsr_result *res) {
  answer_job *j = arg;
  tsr_chat *h = j->h;
  if (res->err == 0) {
    pj p;
    char state[16] = "";
    if (pj_parse(&p, res->body, res->body_len) == 0) {
      pj_str(&p, 0, "state", state, sizeof state);
      pj_free(&p);
    }
    if (state[0]) conv_set_state(db_of(h), j->conv, state);
  }
  if (j->cb) j->cb(j->arg, res);
  free(j);
  job_ended(h);
}

int tsr_conversation_answer(tsr_chat *h, const char *conversation, int accept,
                            tsr_result_cb cb, void *arg) {
  if (!h || !valid_id(conversation)) return TSR_EINVAL;
  answer_job *j = calloc(1, sizeof *j);
  if (!j) return TSR_ENOMEM;
  j->h = h;
  snprintf(j->conv, sizeof j->conv, "%s", conversation);
  j->cb = cb;
  j->arg = arg;
  char f[64];
  snprintf(f, sizeof f, "\"conversation\":\"%s\"", conversation);
  int rc = tsr_ws_call(h->ws, accept ? "conversation.accept" : "conversation.decline", f,
                       on_answer, j);
  if (rc) {
    free(j);
    return rc;
  }
  job_started(h);
  return 0;
}

/* ---- the chat object and driving
 * ------------------------------------------------------------ */

int tsr_chat_new(tsr_client *c, const tsr_chat_config *cfg, tsr_chat **out) {
  if (!c || !out) return TSR_EINVAL;
  tsr_chat *h = calloc(1, sizeof *h);
  if (!h) return TSR_ENOMEM;
  h->c = c;
  if (cfg) h->cfg = *cfg;
  tsr_ws_config wc = {0};
  if (cfg && cfg->ws) wc = *cfg->ws;
  wc.on_push = on_push;
  wc.on_state = on_state;
  wc.arg = h;
  int rc = tsr_ws_new(c, &wc, &h->ws);
  if (rc) {
    free(h);
    return rc;
  }
  *out = h;
  return 0;
}

void tsr_chat_free(tsr_chat *h) {
  if (!h) return;
  tsr_ws_free(h->ws); /* completes what is in flight ("cancelled") */
  /* HTTP calls outlive the chat: their tickets say it is gone. */
  for (chat_ticket *t = h->tickets; t; t = t->next) t->h = NULL;
  groups_free(h);
  trust_free(h);
  for (size_t i = 0; i < h->n_inflight; i++) free(h->inflight[i]);
  free(h->inflight);
  free(h->due);
  free(h);
}

tsr_ws *tsr_chat_ws(tsr_chat *h) { return h ? h->ws : NULL; }

size_t tsr_chat_pending(const tsr_chat *h) { return h ? h->jobs : 0; }

int tsr_chat_on_tick(tsr_chat *h, uint64_t now) {
  if (!h) return TSR_EINVAL;
  if (h->retry_at && now >= h->retry_at && tsr_ws_state(h->ws) == TSR_WS_CONNECTED) {
    h->retry_at = 0;
    refresh_start(h, NULL, NULL);
    tsr_outbox_flush(h);
  }
  return 0;
}

int64_t tsr_chat_next_timeout(const tsr_chat *h, uint64_t now) {
  if (!h || !h->retry_at) return -1;
  return h->retry_at > now ? (int64_t)(h->retry_at - now) : 0;
}

int tsr_chat_run(tsr_chat *h, int timeout_ms, int (*until)(void *arg), void *arg) {
  if (!h) return TSR_EINVAL;
  tsr_client *c = h->c;
  uint64_t start = tsr_client_now_ms(c);
  for (;;) {
    if (until && until(arg)) return 0;
    uint64_t now = tsr_client_now_ms(c);
    if (timeout_ms >= 0 && now - start >= (uint64_t)timeout_ms) return 1;
    tsr_client_on_tick(c, now);
    tsr_ws_on_tick(h->ws, now);
    tsr_chat_on_tick(h, now);
    if (until && until(arg)) return 0;
    struct pollfd pf[2];
    int np = 0, ci = -1, wi = -1;
    int fd = tsr_client_fd(c);
    if (fd >= 0) {
      pf[np] = (struct pollfd){
          fd, (short)(POLLIN | (tsr_client_want_write(c) ? POLLOUT : 0)), 0};
      ci = np++;
    }
    fd = tsr_ws_fd(h->ws);
    if (fd >= 0) {
      pf[np] = (struct pollfd){
          fd, (short)(POLLIN | (tsr_ws_want_write(h->ws) ? POLLOUT : 0)), 0};
      wi = np++;
    }
    int64_t wait = 1000;
    int64_t t = tsr_client_next_timeout(c, now);
    if (t >= 0 && t < wait) wait = t;
    t = tsr_ws_next_timeout(h->ws, now);
    if (t >= 0 && t < wait) wait = t;
    t = tsr_chat_next_timeout(h, now);
    if (t >= 0 && t < wait) wait = t;
    if (timeout_ms >= 0) {
      int64_t left = (int64_t)timeout_ms - (int64_t)(now - start);
      if (left < wait) wait = left < 0 ? 0 : left;
    }
    int n = poll(pf, (nfds_t)np, (int)wait);
    if (n < 0) {
      if (errno == EINTR) continue;
      return TSR_EIO;
    }
    if (ci >= 0 && pf[ci].revents) {
      if (pf[ci].revents & POLLOUT) tsr_client_on_writable(c);
      if (pf[ci].revents & (POLLIN | POLLHUP | POLLERR)) tsr_client_on_readable(c);
    }
    if (wi >= 0 && pf[wi].revents) {
      if (pf[wi].revents & POLLOUT) tsr_ws_on_writable(h->ws);
      if (pf[wi].revents & (POLLIN | POLLHUP | POLLERR)) tsr_ws_on_readable(h->ws);
    }
  }
}

/* ---- blocking forms
 * ---------------------------------------------------------------------------- */

typedef struct {
  tsr_chat *h;
  tsr_reply *r;
} sync_wait;

/* The reply is filled and nothing of the chat is in flight any more (so
 * that the acks and syncs it started are sent before a CLI exits). */
static int settled(void *arg) {
  sync_wait *s = arg;
  return s->r->done && s->h->jobs == 0 && tsr_ws_pending(s->h->ws) == 0 &&
         tsr_client_pending(s->h->c) == 0;
}

static int chat_sync_wait(tsr_chat *h, int rc, tsr_reply *r, bool discard) {
  if (rc) {
    if (discard) tsr_reply_clear(r);
    return rc;
  }
  sync_wait s = {h, r};
  int wrc = tsr_chat_run(h, -1, settled, &s);
  rc = wrc < 0 ? wrc : r->err;
  if (discard) tsr_reply_clear(r);
  return rc;
}

#define CHAT_SYNC(call)                                                                  \
  tsr_reply local_;                                                                      \
  tsr_reply *r_ = out ? out : &local_;                                                   \
  memset(r_, 0, sizeof *r_);                                                             \
  return chat_sync_wait(h, (call), r_, out == NULL)

int tsr_conversation_create_sync(tsr_chat *h, const tsr_conversation_params *p,
                                 tsr_reply *out) {
  CHAT_SYNC(tsr_conversation_create(h, p, client_reply_cb, r_));
}
int tsr_send_text_sync(tsr_chat *h, const char *conversation, const char *text,
                       tsr_reply *out) {
  CHAT_SYNC(tsr_send_text(h, conversation, text, client_reply_cb, r_));
}
int tsr_send_reply_sync(tsr_chat *h, const char *conversation, const char *text,
                        uint64_t reply_to, tsr_reply *out) {
  CHAT_SYNC(tsr_send_reply(h, conversation, text, reply_to, client_reply_cb, r_));
}
int tsr_send_edit_sync(tsr_chat *h, const char *conversation, uint64_t target,
                       const char *text, tsr_reply *out) {
  CHAT_SYNC(tsr_send_edit(h, conversation, target, text, client_reply_cb, r_));
}
int tsr_send_delete_sync(tsr_chat *h, const char *conversation, uint64_t target,
                         tsr_reply *out) {
  CHAT_SYNC(tsr_send_delete(h, conversation, target, client_reply_cb, r_));
}
int tsr_send_reaction_sync(tsr_chat *h, const char *conversation, uint64_t target,
                           const char *emoji, int remove, tsr_reply *out) {
  CHAT_SYNC(
      tsr_send_reaction(h, conversation, target, emoji, remove, client_reply_cb, r_));
}
int tsr_send_attachment_sync(tsr_chat *h, const char *conversation,
                             const char *descriptor, const char *caption,
                             uint64_t reply_to, tsr_reply *out) {
  CHAT_SYNC(tsr_send_attachment(h, conversation, descriptor, caption, reply_to,
                                client_reply_cb, r_));
}
int tsr_conversation_rename_sync(tsr_chat *h, const char *conversation, const char *title,
                                 tsr_reply *out) {
  CHAT_SYNC(tsr_conversation_rename(h, conversation, title, client_reply_cb, r_));
}
int tsr_mark_read_sync(tsr_chat *h, const char *conversation, uint64_t up_to,
                       tsr_reply *out) {
  CHAT_SYNC(tsr_mark_read(h, conversation, up_to, client_reply_cb, r_));
}
int tsr_send_typing_sync(tsr_chat *h, const char *conversation, int on, tsr_reply *out) {
  CHAT_SYNC(tsr_send_typing(h, conversation, on, client_reply_cb, r_));
}
int tsr_conversations_refresh_sync(tsr_chat *h, tsr_reply *out) {
  CHAT_SYNC(tsr_conversations_refresh(h, client_reply_cb, r_));
}
int tsr_conversation_sync_sync(tsr_chat *h, const char *conversation, tsr_reply *out) {
  CHAT_SYNC(tsr_conversation_sync(h, conversation, client_reply_cb, r_));
}
int tsr_conversation_answer_sync(tsr_chat *h, const char *conversation, int accept,
                                 tsr_reply *out) {
  CHAT_SYNC(tsr_conversation_answer(h, conversation, accept, client_reply_cb, r_));
}

/* ---- local reads
 * ----------------------------------------------------------------------------------- */

int tsr_conversations_local(tsr_client *c, tsr_conversation_info **out, size_t *n) {
  if (!c || !out || !n) return TSR_EINVAL;
  sqlite3 *db = cstate_db(client_state(c));
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db,
                         "SELECT id, app, kind, state, last_seq, grp,"
                         " (SELECT COUNT(*) FROM outbox o WHERE o.conversation = c.id),"
                         " title FROM conversations c ORDER BY created_at, id",
                         -1, &st, NULL) != SQLITE_OK)
    return TSR_EIO;
  tsr_conversation_info *v = NULL;
  size_t k = 0;
  int rc = 0, step;
  while ((step = sqlite3_step(st)) == SQLITE_ROW) {
    tsr_conversation_info *nv = realloc(v, (k + 1) * sizeof *nv);
    if (!nv) {
      rc = TSR_ENOMEM;
      break;
    }
    v = nv;
    tsr_conversation_info *e = &v[k++];
    memset(e, 0, sizeof *e);
    col_text(st, 0, e->id, sizeof e->id);
    col_text(st, 1, e->app, sizeof e->app);
    col_text(st, 2, e->kind, sizeof e->kind);
    col_text(st, 3, e->state, sizeof e->state);
    e->last_seq = (uint64_t)sqlite3_column_int64(st, 4);
    mls_group *g = NULL;
    if (group_load(BYTES(sqlite3_column_blob(st, 5), (size_t)sqlite3_column_bytes(st, 5)),
                   &g) == 0) {
      uint32_t leaves = group_leaf_count(g);
      for (uint32_t l = 0; l < leaves; l++) {
        bytes_t ident;
        if (group_member(g, l, &ident) == 0) e->members++;
      }
    }
    group_free(g);
    e->outbox = (uint64_t)sqlite3_column_int64(st, 6);
    col_text(st, 7, e->title, sizeof e->title);
  }
  if (rc == 0 && step != SQLITE_DONE) rc = TSR_EIO;
  sqlite3_finalize(st);
  if (rc) {
    free(v);
    return rc;
  }
  *out = v;
  *n = k;
  return 0;
}

int tsr_messages_local(tsr_client *c, const char *conversation, uint64_t after,
                       void (*each)(void *arg, const tsr_message *m), void *arg) {
  if (!c || !valid_id(conversation) || !each) return TSR_EINVAL;
  sqlite3 *db = cstate_db(client_state(c));
  conv_row r;
  int rc = conv_get(db, conversation, &r);
  row_clear(&r);
  if (rc) return rc;
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db,
                         "SELECT seq, at, sender_account, sender_device, own, text,"
                         " kind, reply_to, descriptor, edited_at, deleted FROM messages"
                         " WHERE conversation = ? AND seq > ? AND kind IN (0, 6, 8)"
                         " ORDER BY seq",
                         -1, &st, NULL) != SQLITE_OK)
    return TSR_EIO;
  sqlite3_bind_text(st, 1, conversation, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, (int64_t)after);
  int step;
  while ((step = sqlite3_step(st)) == SQLITE_ROW) {
    size_t len = (size_t)sqlite3_column_bytes(st, 5);
    const void *p = sqlite3_column_blob(st, 5);
    char *text = malloc(len + 1);
    if (!text) {
      sqlite3_finalize(st);
      return TSR_ENOMEM;
    }
    if (len) memcpy(text, p, len);
    text[len] = '\0';
    tsr_message m = {.conversation = conversation,
                     .seq = (uint64_t)sqlite3_column_int64(st, 0),
                     .at_ms = sqlite3_column_int64(st, 1),
                     .sender_account = (const char *)sqlite3_column_text(st, 2),
                     .sender_device = (const char *)sqlite3_column_text(st, 3),
                     .own = sqlite3_column_int(st, 4),
                     .text = text,
                     .text_len = len};
    m.kind = sqlite3_column_int(st, 6);
    m.reply_to = (uint64_t)sqlite3_column_int64(st, 7);
    m.emoji = "";
    /* The descriptor is JSON text without NUL bytes (content.c). */
    const unsigned char *d = sqlite3_column_text(st, 8);
    m.descriptor = d ? (const char *)d : "";
    m.descriptor_len = d ? (size_t)sqlite3_column_bytes(st, 8) : 0;
    m.edited_at_ms = sqlite3_column_int64(st, 9);
    m.deleted = sqlite3_column_int(st, 10);
    each(arg, &m);
    sodium_memzero(text, len);
    free(text);
  }
  sqlite3_finalize(st);
  return step == SQLITE_DONE ? 0 : TSR_EIO;
}

/* Prepares sql with the conversation as parameter 1 after checking it is
 * known here. */
static int local_query(tsr_client *c, const char *conversation, const char *sql,
                       sqlite3_stmt **st) {
  if (!c || !valid_id(conversation)) return TSR_EINVAL;
  sqlite3 *db = cstate_db(client_state(c));
  conv_row r;
  int rc = conv_get(db, conversation, &r);
  row_clear(&r);
  if (rc) return rc;
  if (sqlite3_prepare_v2(db, sql, -1, st, NULL) != SQLITE_OK) return TSR_EIO;
  sqlite3_bind_text(*st, 1, conversation, -1, SQLITE_STATIC);
  return 0;
}

int tsr_reactions_local(tsr_client *c, const char *conversation,
                        void (*each)(void *arg, const tsr_reaction *r), void *arg) {
  if (!each) return TSR_EINVAL;
  sqlite3_stmt *st;
  int rc = local_query(c, conversation,
                       "SELECT target, account, CAST(emoji AS TEXT), seq FROM reactions"
                       " WHERE conversation = ? ORDER BY target, seq",
                       &st);
  if (rc) return rc;
  int step;
  while ((step = sqlite3_step(st)) == SQLITE_ROW) {
    const unsigned char *e = sqlite3_column_text(st, 2);
    tsr_reaction r = {conversation, (uint64_t)sqlite3_column_int64(st, 0),
                      (const char *)sqlite3_column_text(st, 1), e ? (const char *)e : "",
                      (uint64_t)sqlite3_column_int64(st, 3)};
    each(arg, &r);
  }
  sqlite3_finalize(st);
  return step == SQLITE_DONE ? 0 : TSR_EIO;
}

int tsr_receipts_local(tsr_client *c, const char *conversation,
                       void (*each)(void *arg, const tsr_receipt_state *r), void *arg) {
  if (!each) return TSR_EINVAL;
  sqlite3_stmt *st;
  int rc = local_query(c, conversation,
                       "SELECT account, delivered_up_to, read_up_to FROM receipts"
                       " WHERE conversation = ? ORDER BY account",
                       &st);
  if (rc) return rc;
  int step;
  while ((step = sqlite3_step(st)) == SQLITE_ROW) {
    tsr_receipt_state r = {conversation, (const char *)sqlite3_column_text(st, 0),
                           (uint64_t)sqlite3_column_int64(st, 1),
                           (uint64_t)sqlite3_column_int64(st, 2)};
    /* A read receipt says delivered too. */
    if (r.read_up_to > r.delivered_up_to) r.delivered_up_to = r.read_up_to;
    each(arg, &r);
  }
  sqlite3_finalize(st);
  return step == SQLITE_DONE ? 0 : TSR_EIO;
}

/* ---- for group.c (chat.h) ---------------------------------------------------------- */

tsr_client *chat_client(tsr_chat *h) { return h->c; }
void chat_job_started(tsr_chat *h) { job_started(h); }
void chat_job_ended(tsr_chat *h) { job_ended(h); }
int chat_sync(tsr_chat *h, const char *conv, tsr_result_cb cb, void *arg) {
  return sync_start(h, conv, cb, arg);
}
void chat_refresh(tsr_chat *h) { refresh_start(h, NULL, NULL); }
struct chat_groups **chat_groups_slot(tsr_chat *h) {
  return &h->groups;
}
struct chat_trust **chat_trust_slot(tsr_chat *h) {
  return &h->trust;
}
const tsr_chat_config *chat_config(tsr_chat *h) { return &h->cfg; }

int chat_group_load(tsr_chat *h, const char *conv, mls_group **out, char state[16]) {
  conv_row r;
  int rc = conv_get(db_of(h), conv, &r);
  if (rc == 0 && state) memcpy(state, r.state, 16);
  if (rc == 0) rc = group_load(buf_view(&r.grp), out);
  row_clear(&r);
  return rc;
}

int chat_group_store(tsr_chat *h, const char *conv, const mls_group *g) {
  conv_row r;
  buf_t saved;
  buf_init(&saved);
  int rc = conv_get(db_of(h), conv, &r);
  if (rc == 0) rc = group_save(g, &saved);
  if (rc == 0) rc = conv_update(db_of(h), conv, &saved, r.last_seq);
  buf_free_secret(&saved);
  row_clear(&r);
  return rc;
}

int chat_set_state(tsr_chat *h, const char *conv, const char *state) {
  return conv_set_state(db_of(h), conv, state);
}

chat_ticket *chat_ticket_new(tsr_chat *h, void *job) {
  chat_ticket *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->h = h;
  t->job = job;
  t->next = h->tickets;
  h->tickets = t;
  return t;
}

tsr_chat *chat_ticket_take(chat_ticket *t, void **job) {
  tsr_chat *h = t->h;
  if (job) *job = t->job;
  if (h)
    for (chat_ticket **pp = &h->tickets; *pp; pp = &(*pp)->next)
      if (*pp == t) {
        *pp = t->next;
        break;
      }
  free(t);
  return h;
}

int chat_http(tsr_chat *h, const char *method, const char *path, const char *body,
              tsr_result_cb cb, void *job) {
  chat_ticket *t = chat_ticket_new(h, job);
  if (!t) return TSR_ENOMEM;
  int rc = tsr_call(h->c, method, path, body, cb, t);
  if (rc) chat_ticket_take(t, NULL);
  return rc;
}
