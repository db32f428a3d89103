/* What travels inside MLS application messages (src/client/content.c and
 * the receive and send paths of src/client/conv.c), three and four people
 * against a real tesserad:
 *
 *   - replies, edits, deletions for everyone, reactions and a rename reach
 *     the others and change what tsr_messages_local / tsr_reactions_local /
 *     tsr_conversations_local show; a deleted text is gone from the state
 *     file;
 *   - an edit or deletion forged by another member (the local check of the
 *     sender bypassed by changing its state file) is ignored by everyone;
 *   - delivery receipts are sent after a batch, read receipts by
 *     tsr_mark_read; receipts trigger no receipts; none from the recipient
 *     of a message request not accepted;
 *   - typing reaches an online device without taking a seq (transient);
 *   - the server's files hold neither reactions nor titles. */
#include <signal.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_harness.h"
#include "server_harness.h"
#include "tessera/tessera.h"
#include "test.h"

#define PW "correct horse battery"

static server srv;
static char tmpdir[64];

typedef struct {
  int messages, updates, typing, joined;
  int by_kind[TSR_KIND_UNSUPPORTED + 1]; /* updates per kind */
  tsr_message last;                      /* of on_message; strings copied below */
  tsr_message update;                    /* of on_update */
  char text[256], utext[256], uemoji[80], usender[TSR_ID_B64_SIZE];
  char typing_from[TSR_ID_B64_SIZE];
  int typing_on;
} seen;

static void on_message(void *arg, const tsr_message *m) {
  seen *s = arg;
  s->messages++;
  s->last = *m;
  snprintf(s->text, sizeof s->text, "%s", m->text);
}

static void on_update(void *arg, const tsr_message *m) {
  seen *s = arg;
  s->updates++;
  if (m->kind >= 0 && m->kind <= TSR_KIND_UNSUPPORTED) s->by_kind[m->kind]++;
  s->update = *m;
  snprintf(s->utext, sizeof s->utext, "%s", m->text);
  snprintf(s->uemoji, sizeof s->uemoji, "%.*s", (int)m->emoji_len, m->emoji);
  snprintf(s->usender, sizeof s->usender, "%s", m->sender_account);
}

static void on_typing(void *arg, const tsr_message *m) {
  seen *s = arg;
  s->typing++;
  s->typing_on = m->typing;
  snprintf(s->typing_from, sizeof s->typing_from, "%s", m->sender_account);
}

static void on_joined(void *arg, const char *c, const char *app, const char *kind) {
  (void)c;
  (void)app;
  (void)kind;
  ((seen *)arg)->joined++;
}

typedef struct {
  tsr_client *c;
  tsr_chat *h;
  tsr_session_info info;
  seen ev;
  char path[128];
} person;

static person ann, ben, cat, dan;
static char conv[TSR_ID_B64_SIZE], dconv[TSR_ID_B64_SIZE];
static char hex[25]; /* random, for markers that must not reach the server */

static bool make_person(person *p, const char *login, bool open) {
  snprintf(p->path, sizeof p->path, "%s/%s.db", tmpdir, login);
  p->c = test_client_open((uint16_t)srv.port, p->path, 5000);
  /* Not open: the default rule (only people they follow). */
  if (!test_social_person(p->c, login, open, 5, &p->info)) return false;
  tsr_chat_config cc = {.on_message = on_message,
                        .on_joined = on_joined,
                        .on_update = on_update,
                        .on_typing = on_typing,
                        .arg = &p->ev};
  CHECK_OK(tsr_chat_new(p->c, &cc, &p->h));
  return !test_failing();
}

/* Runs p's chat until *counter reaches n (bounded). */
static bool wait_for(person *p, const int *counter, int n) {
  uint64_t deadline = now_ms() + DEADLINE_MS;
  while (*counter < n && now_ms() < deadline) tsr_chat_run(p->h, 50, NULL, NULL);
  return *counter >= n;
}

/* Runs every chat for ms (lets receipts and acks settle). */
static void run_all(int ms) {
  person *all[4] = {&ann, &ben, &cat, &dan};
  uint64_t end = now_ms() + (uint64_t)ms;
  while (now_ms() < end)
    for (int i = 0; i < 4; i++)
      if (all[i]->h) tsr_chat_run(all[i]->h, 10, NULL, NULL);
}

/* The seq in a send result body. */
static uint64_t seq_of(const tsr_reply *r) {
  const char *at = r->body ? strstr(r->body, "\"seq\":") : NULL;
  return at ? strtoull(at + 6, NULL, 10) : 0;
}

static uint64_t send_text(person *p, const char *text) {
  tsr_reply r = {0};
  CHECK_OK(tsr_send_text_sync(p->h, conv, text, &r));
  uint64_t s = seq_of(&r);
  tsr_reply_clear(&r);
  return s;
}

/* The stored state of one message of conv for p. */
typedef struct {
  uint64_t seq;
  int found, deleted, kind;
  int64_t edited;
  uint64_t reply_to;
  char text[256];
} shown;

static void find_msg(void *arg, const tsr_message *m) {
  shown *s = arg;
  if (m->seq != s->seq) return;
  s->found = 1;
  s->deleted = m->deleted;
  s->kind = m->kind;
  s->edited = m->edited_at_ms;
  s->reply_to = m->reply_to;
  snprintf(s->text, sizeof s->text, "%s", m->text);
}

static shown local(person *p, uint64_t seq) {
  shown s = {.seq = seq};
  CHECK_OK(tsr_messages_local(p->c, conv, 0, find_msg, &s));
  return s;
}

/* Whether file (or any file under dir) contains needle. */
static bool found_in(const char *path, const char *needle) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "grep -rqaF -- '%s' '%s'", needle, path);
  return system(cmd) == 0;
}

/* Rows of kind in p's messages table of c (own only, or all). */
static int rows_of(person *p, const char *c, int kind, bool own_only) {
  sqlite3 *db;
  int n = -1;
  if (sqlite3_open(p->path, &db) != SQLITE_OK) return -1;
  char sql[200];
  snprintf(sql, sizeof sql,
           "SELECT COUNT(*) FROM messages WHERE conversation = '%s' AND kind = %d%s", c,
           kind, own_only ? " AND own = 1" : "");
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW)
    n = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return n;
}

/* ---- tests ----------------------------------------------------------------------- */

static void test_setup(void) {
  CHECK(make_person(&ann, "ann", true));
  CHECK(make_person(&ben, "ben", true));
  CHECK(make_person(&cat, "cat", true));
  CHECK(make_person(&dan, "dan", false));
  if (test_failing()) return;
  CHECK_OK(tsr_conversations_refresh_sync(ben.h, NULL));
  tsr_member m[2] = {{ben.info.account_id, "social", NULL},
                     {cat.info.account_id, "social", NULL}};
  tsr_conversation_params p = {"social", "group", m, 2};
  tsr_reply r = {0};
  CHECK_OK(tsr_conversation_create_sync(ann.h, &p, &r));
  char *at = r.body ? strstr(r.body, "\"conversation\":\"") : NULL;
  if (at) snprintf(conv, sizeof conv, "%.22s", at + 16);
  tsr_reply_clear(&r);
  CHECK(wait_for(&ben, &ben.ev.joined, 1));
  CHECK_OK(tsr_conversations_refresh_sync(cat.h, NULL));
  CHECK_INT(cat.ev.joined, 1);
}

static void test_reply_edit_delete(void) {
  if (!conv[0]) TEST_SKIP("no conversation");
  char secret[64];
  snprintf(secret, sizeof secret, "EDITED-%s", hex);
  uint64_t s1 = send_text(&ann, "hello");
  CHECK(wait_for(&ben, &ben.ev.messages, 1));
  CHECK(ben.ev.last.kind == TSR_KIND_TEXT && !strcmp(ben.ev.text, "hello"));
  /* A reply. */
  tsr_reply r = {0};
  CHECK_OK(tsr_send_reply_sync(ben.h, conv, "re: hello", s1, &r));
  uint64_t s2 = seq_of(&r);
  tsr_reply_clear(&r);
  CHECK(wait_for(&ann, &ann.ev.messages, 1));
  CHECK(ann.ev.last.seq == s2 && ann.ev.last.reply_to == s1 &&
        !strcmp(ann.ev.text, "re: hello"));
  CHECK_INT(local(&ann, s2).reply_to, s1);
  /* Only one's own messages, checked here first. */
  CHECK_ERR(tsr_send_edit(ben.h, conv, s1, "mine now", NULL, NULL), TSR_ESENDER);
  CHECK_ERR(tsr_send_delete(ben.h, conv, s1, NULL, NULL), TSR_ESENDER);
  CHECK_ERR(tsr_send_edit(ann.h, conv, 999, "x", NULL, NULL), TSR_ENOTFOUND);
  /* An edit, seen by an online and by a syncing member. */
  int u = ben.ev.by_kind[TSR_KIND_EDIT];
  CHECK_OK(tsr_send_edit_sync(ann.h, conv, s1, secret, NULL));
  CHECK(wait_for(&ben, &ben.ev.by_kind[TSR_KIND_EDIT], u + 1));
  CHECK(ben.ev.update.kind == TSR_KIND_EDIT && ben.ev.update.target == s1 &&
        !strcmp(ben.ev.utext, secret));
  CHECK_OK(tsr_conversation_sync_sync(cat.h, conv, NULL));
  shown sh = local(&cat, s1);
  CHECK(sh.found && !strcmp(sh.text, secret) && sh.edited > 0 && !sh.deleted);
  sh = local(&ann, s1);
  CHECK(!strcmp(sh.text, secret) && sh.edited > 0);
  /* Deleted for everyone: the text leaves every state file. */
  u = ben.ev.by_kind[TSR_KIND_DELETE];
  CHECK_OK(tsr_send_delete_sync(ann.h, conv, s1, NULL));
  CHECK(wait_for(&ben, &ben.ev.by_kind[TSR_KIND_DELETE], u + 1));
  CHECK(ben.ev.update.kind == TSR_KIND_DELETE && ben.ev.update.target == s1);
  CHECK_OK(tsr_conversation_sync_sync(cat.h, conv, NULL));
  person *all[3] = {&ann, &ben, &cat};
  for (int i = 0; i < 3; i++) {
    sh = local(all[i], s1);
    CHECK(sh.found && sh.deleted && sh.text[0] == '\0');
    CHECK(!found_in(all[i]->path, secret));
  }
  /* Nothing more happens to a deleted message. */
  CHECK_ERR(tsr_send_edit(ann.h, conv, s1, "again", NULL, NULL), TSR_ESTATE);
  CHECK_ERR(tsr_send_reaction(ben.h, conv, s1, "x", 0, NULL, NULL), TSR_ENOTFOUND);
}

/* Ben's state file is changed so that his local check lets him edit and
 * delete Ann's message: the receivers still refuse. */
static void test_forged(void) {
  if (!conv[0]) TEST_SKIP("no conversation");
  int m = ben.ev.messages;
  uint64_t s = send_text(&ann, "original");
  CHECK(wait_for(&ben, &ben.ev.messages, m + 1));
  CHECK_OK(tsr_conversation_sync_sync(cat.h, conv, NULL));
  sqlite3 *db;
  CHECK(sqlite3_open(ben.path, &db) == SQLITE_OK);
  char sql[200];
  snprintf(sql, sizeof sql, "UPDATE messages SET sender_account = '%s' WHERE seq = %llu",
           ben.info.account_id, (unsigned long long)s);
  CHECK(sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK);
  sqlite3_close(db);
  int ua = ann.ev.by_kind[TSR_KIND_EDIT] + ann.ev.by_kind[TSR_KIND_DELETE];
  int uc = cat.ev.by_kind[TSR_KIND_EDIT] + cat.ev.by_kind[TSR_KIND_DELETE];
  CHECK_OK(tsr_send_edit_sync(ben.h, conv, s, "forged", NULL));
  CHECK_OK(tsr_send_delete_sync(ben.h, conv, s, NULL));
  /* A marker after them: once it arrived, so had they. */
  int ma = ann.ev.messages;
  CHECK_OK(tsr_send_text_sync(ben.h, conv, "after the forgery", NULL));
  CHECK(wait_for(&ann, &ann.ev.messages, ma + 1));
  CHECK_OK(tsr_conversation_sync_sync(cat.h, conv, NULL));
  /* neither was handed over */
  CHECK_INT(ann.ev.by_kind[TSR_KIND_EDIT] + ann.ev.by_kind[TSR_KIND_DELETE], ua);
  CHECK_INT(cat.ev.by_kind[TSR_KIND_EDIT] + cat.ev.by_kind[TSR_KIND_DELETE], uc);
  shown sa = local(&ann, s), sc = local(&cat, s);
  CHECK(!strcmp(sa.text, "original") && !sa.deleted && sa.edited == 0);
  CHECK(!strcmp(sc.text, "original") && !sc.deleted && sc.edited == 0);
  CHECK_INT(rows_of(&ann, conv, TSR_KIND_EDIT, false), 1); /* Ann's own edit only */
  CHECK_INT(rows_of(&ann, conv, TSR_KIND_DELETE, false), 1);
}

static void count_reaction(void *arg, const tsr_reaction *r) {
  char *out = arg;
  snprintf(out, 200, "%llu %s %s", (unsigned long long)r->target, r->account, r->emoji);
}

static void test_reaction_and_rename(void) {
  if (!conv[0]) TEST_SKIP("no conversation");
  char emoji[32], title[64];
  snprintf(emoji, sizeof emoji, "\xf0\x9f\x91\x8d%s", hex); /* thumbs up + marker */
  snprintf(title, sizeof title, "Trip-%s", hex);
  int m = cat.ev.messages;
  uint64_t s = send_text(&ann, "react to me");
  CHECK_OK(tsr_conversation_sync_sync(cat.h, conv, NULL));
  CHECK(cat.ev.messages > m);
  int u = ann.ev.by_kind[TSR_KIND_REACTION];
  tsr_reply r = {0};
  CHECK_OK(tsr_send_reaction_sync(cat.h, conv, s, emoji, 0, &r));
  char visible[48] = "";
  const char *cid = r.body ? strstr(r.body, "\"client_id\":\"") : NULL;
  if (cid) snprintf(visible, sizeof visible, "%.24s", cid + 13);
  tsr_reply_clear(&r);
  CHECK(wait_for(&ann, &ann.ev.by_kind[TSR_KIND_REACTION], u + 1));
  CHECK(ann.ev.update.kind == TSR_KIND_REACTION && ann.ev.update.target == s &&
        !strcmp(ann.ev.uemoji, emoji) && !ann.ev.update.remove);
  char got[200] = "", want[200];
  snprintf(want, sizeof want, "%llu %s %s", (unsigned long long)s, cat.info.account_id,
           emoji);
  CHECK_OK(tsr_reactions_local(ann.c, conv, count_reaction, got));
  CHECK(!strcmp(got, want));
  got[0] = '\0';
  CHECK_OK(tsr_reactions_local(cat.c, conv, count_reaction, got));
  CHECK(!strcmp(got, want));
  /* Taken back. */
  CHECK_OK(tsr_send_reaction_sync(cat.h, conv, s, emoji, 1, NULL));
  CHECK(wait_for(&ann, &ann.ev.by_kind[TSR_KIND_REACTION], u + 2));
  CHECK(ann.ev.update.kind == TSR_KIND_REACTION && ann.ev.update.remove);
  got[0] = '\0';
  CHECK_OK(tsr_reactions_local(ann.c, conv, count_reaction, got));
  CHECK(got[0] == '\0');
  /* A rename. */
  int ub = ben.ev.by_kind[TSR_KIND_TITLE];
  CHECK_OK(tsr_conversation_rename_sync(ann.h, conv, title, NULL));
  CHECK(wait_for(&ben, &ben.ev.by_kind[TSR_KIND_TITLE], ub + 1));
  CHECK(ben.ev.update.kind == TSR_KIND_TITLE && !strcmp(ben.ev.utext, title));
  CHECK_OK(tsr_conversation_sync_sync(cat.h, conv, NULL));
  person *all[3] = {&ann, &ben, &cat};
  for (int i = 0; i < 3; i++) {
    tsr_conversation_info *v = NULL;
    size_t n = 0;
    CHECK_OK(tsr_conversations_local(all[i]->c, &v, &n));
    CHECK(n >= 1 && v && !strcmp(v[0].title, title));
    free(v);
  }
  CHECK_ERR(tsr_conversation_rename(ann.h, conv, NULL, NULL, NULL), TSR_EINVAL);
  /* Neither the reaction nor the title is in any of the server's files,
   * though what the server does store (a client id) is found. */
  CHECK(visible[0] && found_in(srv.dir, visible));
  CHECK(!found_in(srv.dir, hex));
}

typedef struct {
  const char *account;
  uint64_t delivered, read;
} rstate;

static void find_receipt(void *arg, const tsr_receipt_state *r) {
  rstate *s = arg;
  if (strcmp(r->account, s->account)) return;
  s->delivered = r->delivered_up_to;
  s->read = r->read_up_to;
}

static rstate receipts_of(person *p, const char *c, const char *account) {
  rstate s = {account, 0, 0};
  CHECK_OK(tsr_receipts_local(p->c, c, find_receipt, &s));
  return s;
}

static void test_receipts(void) {
  if (!conv[0]) TEST_SKIP("no conversation");
  run_all(300); /* earlier receipts settle */
  int u = ann.ev.updates;
  uint64_t s = send_text(&ann, "did you get this");
  /* Ben is online: he gets it and answers with a delivery receipt. */
  uint64_t deadline = now_ms() + DEADLINE_MS;
  while (receipts_of(&ann, conv, ben.info.account_id).delivered < s &&
         now_ms() < deadline)
    run_all(50);
  rstate b = receipts_of(&ann, conv, ben.info.account_id);
  CHECK(b.delivered >= s && b.read < s);
  CHECK(ann.ev.updates > u);
  /* Cat gets it when she syncs; her receipt follows. */
  CHECK_OK(tsr_conversation_sync_sync(cat.h, conv, NULL));
  deadline = now_ms() + DEADLINE_MS;
  while (receipts_of(&ann, conv, cat.info.account_id).delivered < s &&
         now_ms() < deadline)
    run_all(50);
  CHECK(receipts_of(&ann, conv, cat.info.account_id).delivered >= s);
  /* Read. Receipts trigger no receipts: Ann sends none for them. */
  int own_before = rows_of(&ann, conv, TSR_KIND_RECEIPT, true);
  CHECK_OK(tsr_mark_read_sync(ben.h, conv, s, NULL));
  deadline = now_ms() + DEADLINE_MS;
  while (receipts_of(&ann, conv, ben.info.account_id).read < s && now_ms() < deadline)
    run_all(50);
  CHECK(receipts_of(&ann, conv, ben.info.account_id).read >= s);
  CHECK(ann.ev.update.kind == TSR_KIND_RECEIPT &&
        ann.ev.update.receipt == TSR_RECEIPT_READ);
  run_all(300);
  CHECK_INT(rows_of(&ann, conv, TSR_KIND_RECEIPT, true), own_before);
  /* Already read: nothing is sent again. */
  CHECK_INT(tsr_mark_read_sync(ben.h, conv, s, NULL), 1);
}

static void test_request_no_receipts(void) {
  if (!dan.h) TEST_SKIP("no dan");
  tsr_member m[1] = {{dan.info.account_id, "social", NULL}};
  tsr_conversation_params p = {"social", "direct", m, 1};
  tsr_reply r = {0};
  CHECK_OK(tsr_conversation_create_sync(ann.h, &p, &r));
  char *at = r.body ? strstr(r.body, "\"conversation\":\"") : NULL;
  if (at) snprintf(dconv, sizeof dconv, "%.22s", at + 16);
  tsr_reply_clear(&r);
  if (!dconv[0]) return;
  CHECK_OK(tsr_conversations_refresh_sync(dan.h, NULL));
  tsr_conversation_info *v = NULL;
  size_t n = 0;
  CHECK_OK(tsr_conversations_local(dan.c, &v, &n));
  CHECK(n == 1 && v && !strcmp(v[0].state, "request"));
  free(v);
  int md = dan.ev.messages;
  CHECK_OK(tsr_send_text_sync(ann.h, dconv, "hi dan", NULL));
  CHECK(wait_for(&dan, &dan.ev.messages, md + 1));
  CHECK_INT(tsr_mark_read_sync(dan.h, dconv, 1000, NULL), 1);
  CHECK_INT(tsr_send_typing_sync(dan.h, dconv, 1, NULL), 1);
  run_all(500);
  CHECK_INT(rows_of(&dan, dconv, TSR_KIND_RECEIPT, false), 0);
  CHECK_OK(tsr_conversation_sync_sync(ann.h, dconv, NULL));
  rstate d = receipts_of(&ann, dconv, dan.info.account_id);
  CHECK(d.delivered == 0 && d.read == 0);
  /* Accepted: receipts flow. */
  CHECK_OK(tsr_conversation_answer_sync(dan.h, dconv, 1, NULL));
  CHECK_OK(tsr_send_text_sync(ann.h, dconv, "welcome in", NULL));
  CHECK(wait_for(&dan, &dan.ev.messages, md + 2));
  uint64_t deadline = now_ms() + DEADLINE_MS;
  while (receipts_of(&ann, dconv, dan.info.account_id).delivered == 0 &&
         now_ms() < deadline)
    run_all(50);
  CHECK(receipts_of(&ann, dconv, dan.info.account_id).delivered > 0);
}

static void test_typing(void) {
  if (!conv[0]) TEST_SKIP("no conversation");
  run_all(300);
  int t = ben.ev.typing, mb = ben.ev.messages;
  CHECK_OK(tsr_conversation_sync_sync(ben.h, conv, NULL));
  tsr_conversation_info *v = NULL;
  size_t n = 0;
  CHECK_OK(tsr_conversations_local(ann.c, &v, &n));
  uint64_t last = n ? v[0].last_seq : 0;
  free(v);
  tsr_reply r = {0};
  CHECK_OK(tsr_send_typing_sync(ann.h, conv, 1, &r));
  CHECK(r.body && strstr(r.body, "\"transient\":true") && !strstr(r.body, "seq"));
  tsr_reply_clear(&r);
  CHECK(wait_for(&ben, &ben.ev.typing, t + 1));
  CHECK(ben.ev.typing_on == 1 && !strcmp(ben.ev.typing_from, ann.info.account_id));
  CHECK_OK(tsr_send_typing_sync(ann.h, conv, 0, NULL));
  CHECK(wait_for(&ben, &ben.ev.typing, t + 2));
  CHECK_INT(ben.ev.typing_on, 0);
  /* Not stored: a sync brings nothing, and the next message takes the
   * next seq. */
  CHECK_OK(tsr_conversation_sync_sync(ben.h, conv, NULL));
  CHECK_INT(ben.ev.messages, mb);
  CHECK_INT(ben.ev.by_kind[TSR_KIND_TYPING], 0);
  CHECK_INT(rows_of(&ben, conv, TSR_KIND_TYPING, false), 0);
  uint64_t s = send_text(&ann, "done typing");
  CHECK_INT(s, last + 1);
  CHECK(wait_for(&ben, &ben.ev.messages, mb + 1));
  CHECK(!strcmp(ben.ev.text, "done typing"));
  /* Cat's chat was not driven meanwhile: the pushes wait in her session
   * and she reads them, the typing too, when she syncs. */
  int tc = cat.ev.typing;
  CHECK_OK(tsr_conversation_sync_sync(cat.h, conv, NULL));
  CHECK_INT(cat.ev.typing, tc + 2);
  CHECK(!strcmp(cat.ev.text, "done typing"));
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  snprintf(tmpdir, sizeof tmpdir, "/tmp/tsr-ccontent-XXXXXX");
  if (!mkdtemp(tmpdir) || tsr_client_global_init() != 0 || !find_binary()) {
    fprintf(stderr, "no temporary directory, crypto or tesserad (set TSR_BUILD)\n");
    printf("client_content: 0 passed, 1 failed, 0 skipped\n");
    return 1;
  }
  uint8_t rnd[12];
  randombytes_buf(rnd, sizeof rnd);
  for (size_t i = 0; i < sizeof rnd; i++) snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
  static const char *extra[] = {"--rate-per-account", "0", "--rate-per-address", "0",
                                NULL};
  if (!server_start(&srv, "ccontent", true, "2", extra)) {
    fprintf(stderr, "tesserad did not start; log %s\n", srv.log);
    printf("client_content: 0 passed, 1 failed, 0 skipped\n");
    return 1;
  }
  RUN(test_setup);
  RUN(test_reply_edit_delete);
  RUN(test_forged);
  RUN(test_reaction_and_rename);
  RUN(test_receipts);
  RUN(test_request_no_receipts);
  RUN(test_typing);
  person *all[4] = {&ann, &ben, &cat, &dan};
  for (int i = 0; i < 4; i++) {
    tsr_chat_free(all[i]->h);
    tsr_client_free(all[i]->c);
  }
  server_stop(&srv, true);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", tmpdir);
  return test_report("client_content");
}
