/* libtessera's conversations (src/client/conv.c, tsr_chat) against a real
 * tesserad: a group made by one device and joined by two others from
 * their Welcomes (one pushed, one listed), messages both ways through
 * pushes and sync, and the crash-safety pieces:
 *
 *   - a message delivered twice (push, then sync; and again after the
 *     stored last seq is moved back) is handed to the app once;
 *   - the outbox survives freeing and reopening the client: a message
 *     queued but never sent is sent after the reopen; a message whose
 *     answer was lost (the session freed after the frame was written and
 *     the server stored it, before the answer was read) is sent again with
 *     the same client_id and stored exactly once, at the server's seq. */
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client_harness.h"
#include "server_harness.h"
#include "tessera/tessera.h"
#include "test.h"

#define PW "correct horse battery"

static server srv;
static char tmpdir[64];

typedef struct {
  int messages, joined;
  char last_text[256];
  char last_sender[TSR_ID_B64_SIZE];
  uint64_t last_seq;
} seen;

static void on_message(void *arg, const tsr_message *m) {
  seen *s = arg;
  s->messages++;
  snprintf(s->last_text, sizeof s->last_text, "%s", m->text);
  snprintf(s->last_sender, sizeof s->last_sender, "%s", m->sender_account);
  s->last_seq = m->seq;
}

static void on_joined(void *arg, const char *conv, const char *app, const char *kind) {
  (void)conv;
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

static person ann, ben, cat;
static char conv[TSR_ID_B64_SIZE];

static tsr_client *open_client(const char *path) {
  return test_client_open((uint16_t)srv.port, path, 5000);
}

static void open_chat(person *p) {
  tsr_chat_config cfg = {.on_message = on_message, .on_joined = on_joined, .arg = &p->ev};
  CHECK_OK(tsr_chat_new(p->c, &cfg, &p->h));
}

static bool make_person(person *p, const char *login) {
  snprintf(p->path, sizeof p->path, "%s/%s.db", tmpdir, login);
  p->c = open_client(p->path);
  if (!test_social_person(p->c, login, true, 5, &p->info)) return false;
  open_chat(p);
  return !test_failing();
}

/* Runs p's chat until it has seen n messages in all (bounded). */
static bool wait_messages(person *p, int n) {
  uint64_t deadline = now_ms() + DEADLINE_MS;
  while (p->ev.messages < n && now_ms() < deadline) tsr_chat_run(p->h, 100, NULL, NULL);
  return p->ev.messages >= n;
}

/* Stored messages of conv in p's state file. */
typedef struct {
  int n;
  char texts[16][64];
  uint64_t seqs[16];
} stored;

static void collect(void *arg, const tsr_message *m) {
  stored *s = arg;
  if (s->n < 16) {
    snprintf(s->texts[s->n], sizeof s->texts[0], "%s", m->text);
    s->seqs[s->n] = m->seq;
  }
  s->n++;
}

static int count_text(const stored *s, const char *text) {
  int k = 0;
  for (int i = 0; i < s->n && i < 16; i++) k += !strcmp(s->texts[i], text);
  return k;
}

static uint64_t outbox_of(person *p) {
  tsr_conversation_info *v = NULL;
  size_t n = 0;
  uint64_t k = 0;
  if (tsr_conversations_local(p->c, &v, &n) == 0)
    for (size_t i = 0; i < n; i++) k += v[i].outbox;
  free(v);
  return k;
}

/* ---- tests ---- */

static void test_setup(void) {
  CHECK(make_person(&ann, "ann"));
  CHECK(make_person(&ben, "ben"));
  CHECK(make_person(&cat, "cat"));
}

static void test_create_and_join(void) {
  if (!ann.h || !ben.h || !cat.h) TEST_SKIP("no chats");
  /* Ben is online before the group exists: his Welcome is pushed. */
  CHECK_OK(tsr_conversations_refresh_sync(ben.h, NULL));
  tsr_member m[2] = {{ben.info.account_id, "social", NULL},
                     {cat.info.account_id, "social", NULL}};
  tsr_conversation_params p = {"social", "group", m, 2};
  tsr_reply r = {0};
  CHECK_OK(tsr_conversation_create_sync(ann.h, &p, &r));
  char *at = r.body ? strstr(r.body, "\"conversation\":\"") : NULL;
  CHECK(at != NULL);
  if (at) snprintf(conv, sizeof conv, "%.22s", at + 16);
  tsr_reply_clear(&r);
  /* Bad parameters are refused before anything is sent. */
  tsr_conversation_params bad = {"social", "direct", m, 2};
  CHECK_ERR(tsr_conversation_create(ann.h, &bad, NULL, NULL), TSR_EINVAL);
  uint64_t deadline = now_ms() + DEADLINE_MS;
  while (ben.ev.joined == 0 && now_ms() < deadline) tsr_chat_run(ben.h, 100, NULL, NULL);
  CHECK_INT(ben.ev.joined, 1);
  /* Cat was offline: the Welcome waits in the list. */
  CHECK_OK(tsr_conversations_refresh_sync(cat.h, NULL));
  CHECK_INT(cat.ev.joined, 1);
  tsr_conversation_info *v = NULL;
  size_t n = 0;
  CHECK_OK(tsr_conversations_local(cat.c, &v, &n));
  CHECK(n == 1 && v && !strcmp(v[0].id, conv) && !strcmp(v[0].kind, "group") &&
        v[0].members == 3);
  free(v);
  /* A second refresh joins nothing again. */
  CHECK_OK(tsr_conversations_refresh_sync(cat.h, NULL));
  CHECK_INT(cat.ev.joined, 1);
}

static void test_send_receive(void) {
  if (!conv[0]) TEST_SKIP("no conversation");
  tsr_reply r = {0};
  CHECK_OK(tsr_send_text_sync(ann.h, conv, "hello", &r));
  CHECK(r.body && strstr(r.body, "\"seq\":1") != NULL);
  tsr_reply_clear(&r);
  /* Ben is online: pushed. */
  CHECK(wait_messages(&ben, 1));
  CHECK(!strcmp(ben.ev.last_text, "hello") &&
        !strcmp(ben.ev.last_sender, ann.info.account_id));
  /* Cat syncs. */
  CHECK_OK(tsr_conversation_sync_sync(cat.h, conv, NULL));
  CHECK_INT(cat.ev.messages, 1);
  CHECK_OK(tsr_send_text_sync(ben.h, conv, "hi ann", NULL));
  CHECK_OK(tsr_send_text_sync(cat.h, conv, "hi all", NULL));
  CHECK(wait_messages(&ann, 2));
  CHECK(wait_messages(&ben, 2));
  CHECK_OK(tsr_conversation_sync_sync(cat.h, conv, NULL));
  CHECK_INT(cat.ev.messages, 2); /* her own is not handed back */
  /* Everyone stores the same three messages in the same order, at the
   * same seqs (delivery receipts take the seqs in between). */
  person *all[3] = {&ann, &ben, &cat};
  uint64_t seqs[3] = {0};
  for (int i = 0; i < 3; i++) {
    stored s = {0};
    CHECK_OK(tsr_messages_local(all[i]->c, conv, 0, collect, &s));
    CHECK_INT(s.n, 3);
    CHECK(!strcmp(s.texts[0], "hello") && !strcmp(s.texts[1], "hi ann") &&
          !strcmp(s.texts[2], "hi all"));
    CHECK(s.seqs[0] == 1 && s.seqs[1] > s.seqs[0] && s.seqs[2] > s.seqs[1]);
    if (i == 0) memcpy(seqs, s.seqs, sizeof seqs);
    CHECK(memcmp(seqs, s.seqs, sizeof seqs) == 0);
  }
  CHECK_ERR(tsr_send_text(ann.h, "AAAAAAAAAAAAAAAAAAAAAA", "x", NULL, NULL),
            TSR_ENOTFOUND);
  CHECK_ERR(tsr_send_text(ann.h, conv, "", NULL, NULL), TSR_EINVAL);
}

/* A message pushed and then returned by sync is handed over once; also
 * when the stored last seq is moved back (as if a crash had lost it). */
static void test_delivered_twice(void) {
  if (!conv[0]) TEST_SKIP("no conversation");
  int before = ben.ev.messages;
  CHECK_OK(tsr_send_text_sync(ann.h, conv, "twice", NULL));
  CHECK(wait_messages(&ben, before + 1));
  CHECK_OK(tsr_conversation_sync_sync(ben.h, conv, NULL));
  CHECK_INT(ben.ev.messages, before + 1);
  sqlite3 *db;
  CHECK(sqlite3_open(ben.path, &db) == SQLITE_OK);
  CHECK(sqlite3_exec(db, "UPDATE conversations SET last_seq = 0", NULL, NULL, NULL) ==
        SQLITE_OK);
  sqlite3_close(db);
  CHECK_OK(tsr_conversation_sync_sync(ben.h, conv, NULL));
  CHECK_INT(ben.ev.messages, before + 1);
  stored s = {0};
  CHECK_OK(tsr_messages_local(ben.c, conv, 0, collect, &s));
  CHECK_INT(count_text(&s, "twice"), 1);
  CHECK_INT(s.n, 4);
}

static void reopen(person *p) {
  tsr_chat_free(p->h);
  tsr_client_free(p->c);
  p->h = NULL;
  p->c = open_client(p->path);
  if (p->c) open_chat(p);
}

/* Queued, never sent, client freed: sent after the reopen. */
static void test_outbox_unsent(void) {
  if (!conv[0]) TEST_SKIP("no conversation");
  int before = ben.ev.messages;
  CHECK_OK(tsr_send_text(ann.h, conv, "queued", NULL, NULL));
  CHECK_INT((int)outbox_of(&ann), 1);
  reopen(&ann);
  if (!ann.h) return;
  CHECK_INT((int)outbox_of(&ann), 1);
  /* The connect sends the outbox. */
  CHECK_OK(tsr_conversations_refresh_sync(ann.h, NULL));
  CHECK_INT((int)outbox_of(&ann), 0);
  CHECK(wait_messages(&ben, before + 1));
  CHECK(!strcmp(ben.ev.last_text, "queued"));
  stored s = {0};
  CHECK_OK(tsr_messages_local(ann.c, conv, 0, collect, &s));
  CHECK_INT(count_text(&s, "queued"), 1);
}

/* Sent and stored by the server, the answer never read: sent again after
 * the reopen with the same client_id, stored once at the same seq. */
static void test_outbox_answer_lost(void) {
  if (!conv[0]) TEST_SKIP("no conversation");
  /* A settled, connected session. */
  CHECK_OK(tsr_conversations_refresh_sync(ann.h, NULL));
  CHECK_INT(tsr_ws_state(tsr_chat_ws(ann.h)), TSR_WS_CONNECTED);
  int before = ben.ev.messages;
  CHECK_OK(tsr_send_text(ann.h, conv, "lost answer", NULL, NULL));
  /* Write the frame without reading anything. */
  tsr_ws *ws = tsr_chat_ws(ann.h);
  tsr_ws_on_tick(ws, tsr_client_now_ms(ann.c)); /* frames the queued call */
  uint64_t deadline = now_ms() + DEADLINE_MS;
  while (tsr_ws_want_write(ws) && now_ms() < deadline) {
    struct pollfd pf = {tsr_ws_fd(ws), POLLOUT, 0};
    if (poll(&pf, 1, 100) > 0) tsr_ws_on_writable(ws);
  }
  CHECK(!tsr_ws_want_write(ws));
  /* The server stored it: Ben gets it. */
  CHECK(wait_messages(&ben, before + 1));
  CHECK(!strcmp(ben.ev.last_text, "lost answer"));
  uint64_t seq = ben.ev.last_seq;
  CHECK_INT((int)outbox_of(&ann), 1);
  reopen(&ann);
  if (!ann.h) return;
  CHECK_INT((int)outbox_of(&ann), 1);
  CHECK_OK(tsr_conversations_refresh_sync(ann.h, NULL));
  CHECK_INT((int)outbox_of(&ann), 0);
  stored s = {0};
  CHECK_OK(tsr_messages_local(ann.c, conv, 0, collect, &s));
  CHECK_INT(count_text(&s, "lost answer"), 1);
  for (int i = 0; i < s.n && i < 16; i++)
    if (!strcmp(s.texts[i], "lost answer")) CHECK(s.seqs[i] == seq);
  /* Not stored twice by the server: Ben sees nothing more. */
  CHECK_OK(tsr_conversation_sync_sync(ben.h, conv, NULL));
  CHECK_INT(ben.ev.messages, before + 1);
  /* And the conversation goes on. */
  CHECK_OK(tsr_send_text_sync(ann.h, conv, "after", NULL));
  CHECK(wait_messages(&ben, before + 2));
  CHECK(!strcmp(ben.ev.last_text, "after"));
}

static void test_schema(void) {
  sqlite3 *db;
  CHECK(sqlite3_open(ann.path, &db) == SQLITE_OK);
  sqlite3_stmt *st;
  CHECK(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK);
  CHECK(sqlite3_step(st) == SQLITE_ROW);
  CHECK_INT(sqlite3_column_int(st, 0), 5);
  sqlite3_finalize(st);
  /* (conversation, seq) is unique. */
  CHECK(sqlite3_exec(db,
                     "INSERT INTO messages(conversation, seq, sender_account,"
                     " sender_device, own, text, at) SELECT conversation, seq,"
                     " sender_account, sender_device, own, text, at FROM messages"
                     " LIMIT 1",
                     NULL, NULL, NULL) != SQLITE_OK);
  sqlite3_close(db);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  snprintf(tmpdir, sizeof tmpdir, "/tmp/tsr-cconv-XXXXXX");
  if (!mkdtemp(tmpdir) || tsr_client_global_init() != 0 || !find_binary()) {
    fprintf(stderr, "no temporary directory, crypto or tesserad (set TSR_BUILD)\n");
    printf("client_conv: 0 passed, 1 failed, 0 skipped\n");
    return 1;
  }
  static const char *extra[] = {"--rate-per-account", "0", "--rate-per-address", "0",
                                NULL};
  if (!server_start(&srv, "cconv", true, "2", extra)) {
    fprintf(stderr, "tesserad did not start; log %s\n", srv.log);
    printf("client_conv: 0 passed, 1 failed, 0 skipped\n");
    return 1;
  }
  RUN(test_setup);
  RUN(test_create_and_join);
  RUN(test_send_receive);
  RUN(test_delivered_twice);
  RUN(test_outbox_unsent);
  RUN(test_outbox_answer_lost);
  RUN(test_schema);
  person *all[3] = {&ann, &ben, &cat};
  for (int i = 0; i < 3; i++) {
    tsr_chat_free(all[i]->h);
    tsr_client_free(all[i]->c);
  }
  server_stop(&srv, true);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", tmpdir);
  return test_report("client_conv");
}
