/* The kill test: a real tesserad (two workers and its delivery service,
 * on a fixed port) and three libtessera devices (ann, ben, cat; one
 * account each, state files in a temporary directory) in one group made
 * with tsr_chat. Ann and ben send continuously through tsr_send_text
 * (the outbox, client ids: a message every SEND_EVERY_MS each, also while
 * the server is down) while the whole server is killed with SIGKILL
 * (master and every child at once) and restarted on the same port and data
 * directory, ROUNDS times. The devices keep running across the kills and
 * reconnect by themselves; the test drives all of them in one thread with
 * the non-blocking API (client, session, tsr_chat_on_tick).
 *
 * Each round: both senders connected again, a random time of sending
 * (DELAY_MIN_MS..DELAY_MAX_MS), then the kill; in three rounds of four the
 * sessions first settle, each sender queues a burst and the kill comes
 * while the answer to a send sits unread in a sender's socket (so that an
 * answer given before the commit would be caught). Then a random time of
 * queueing while the server is down, and the restart.
 *
 * Recorded as it happens: every message's client_id (read from the
 * sender's outbox right after tsr_send_text), the seq its sender was told
 * (the send callback, or the row leaving the outbox for the messages table
 * when the outbox resent it), the messages still unacknowledged at each
 * kill (each must still be in its sender's outbox under its client_id),
 * and the delivery service's log as the kill left it (seq and client_id of
 * every row, read from its store while the server is down).
 *
 * After the last round everything drains (outboxes empty, every message
 * acknowledged, every device at the same last seq, nothing in flight;
 * bounded by DRAIN_MS), then:
 *   - no message is left in an outbox, and none left its outbox without a
 *     seq;
 *   - on every device seqs run 1, 2, 3, ... without a gap or a repeat, up
 *     to the number of messages queued, and the server's last seq is that
 *     number too;
 *   - every message is stored exactly once on every device, at the seq its
 *     sender was told, and no two messages were told the same seq (so the
 *     three devices hold the same messages in the same order); it was
 *     handed to on_message once on each receiving device, never on its
 *     sender's;
 *   - every message unacknowledged at a kill was delivered after the
 *     restart exactly once, and every log row seen in the delivery
 *     service's store carries the client_id its message was queued with,
 *     at the seq its sender was finally told (a resend under a new
 *     client_id, or an answer given before the commit, breaks these).
 * The per-round record (delay, acknowledged so far, unacknowledged at the
 * kill and how many of those the log already held, log rows, timings) and
 * the messages that failed a check are printed only when a check fails
 * (or with TSR_KILL_VERBOSE set); every run's server log is kept in the
 * test's directory, which is kept on failure. Set TSR_KILL_SEED to repeat
 * a sequence of delays (the timing of the rest still varies). */
#define _GNU_SOURCE /* memmem */
#include <cjson/cJSON.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client_harness.h"
#include "server_harness.h"
#include "tessera/tessera.h"
#include "test.h"

#define ROUNDS 12
#define DELAY_MIN_MS 50 /* of sending before a kill */
#define DELAY_MAX_MS 400
#define DOWN_MAX_MS 100  /* of queueing while the server is down */
#define SEND_EVERY_MS 8  /* a new message per sender this often ... */
#define MAX_UNACKED 40   /* ... while it has fewer unacknowledged */
#define BURST 12         /* messages queued at once before a kill at an answer */
#define SETTLE_MS 300    /* for the sessions to settle before a burst */
#define ACK_WAIT_MS 1000 /* for the answer that kill waits for */
#define MAX_MSGS 20000
#define DRAIN_MS 15000
#define NP 3 /* devices: ann, ben (senders) and cat */
#define NS 2 /* senders */

static server srv;
static char tmpdir[64];
static char alllog[128]; /* every run's server log, appended at each restart */
static uint16_t fixed_port;
static char conv[TSR_ID_B64_SIZE];
static uint64_t rng, seed0;

static uint32_t rnd(uint32_t lo, uint32_t hi) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return lo + (uint32_t)(rng % (hi - lo + 1));
}

/* ---- what happened -------------------------------------------------------------- */

typedef struct {
  char text[24];      /* "from A #17": unique */
  char cid[40];       /* client_id of its outbox row */
  int from;           /* 0 ann, 1 ben */
  uint64_t told;      /* seq the sender was told; 0 while unacknowledged */
  int told_by;        /* 1 send callback, 2 outbox row became a message */
  uint64_t logged;    /* seq of its client_id in the delivery service's log */
  int kill_round;     /* first kill that found it unacknowledged (0: none) */
  int stored_at_kill; /* ... and its row already in the log */
  int cb_calls;       /* send callbacks */
  char cb_code[24];   /* code of the last failed one */
  int got[NP];        /* on_message calls per device */
  bool bad;           /* some check failed for it: printed */
} msg;

static msg msgs[MAX_MSGS];
static int nmsgs;
static int by_sender[NS][MAX_MSGS]; /* number -> index in msgs */
static int nsent[NS];

typedef struct {
  uint32_t delay, down;
  int at_ack;          /* 1: killed with a send answer unread; -1: none came */
  int acked, queued;   /* so far, at the kill */
  int unacked, stored; /* at the kill; of those, rows already in the log */
  uint64_t log_last;   /* last seq in the log at the kill */
  int log_rows;        /* rows left in the log (acknowledged rows are swept) */
  uint64_t restart_ms; /* server_start */
  uint64_t kill_ms;    /* kill9 */
  uint64_t back_ms;    /* until both senders were connected again */
} round_rec;

static round_rec rounds[ROUNDS + 1];
static int nrounds;
static int unknown_texts, strange_cids, told_twice;
static bool kill_on_input; /* drive_once stops when a send answer waits unread */
static bool input_seen;    /* ... and sets this */

typedef struct {
  const char *login;
  char letter;
  int idx;
  char path[160];
  tsr_client *c;
  tsr_chat *h;
  tsr_session_info info;
  sqlite3 *db; /* a second connection to the state file: outbox client ids */
  int joined;
} person;

static person P[NP] = {{.login = "ann", .letter = 'A', .idx = 0},
                       {.login = "ben", .letter = 'B', .idx = 1},
                       {.login = "cat", .letter = 'C', .idx = 2}};

static int find_text(const char *text, size_t len) {
  char l;
  int n, k = 0;
  char t[32];
  if (len >= sizeof t) return -1;
  memcpy(t, text, len);
  t[len] = '\0';
  if (sscanf(t, "from %c #%d%n", &l, &n, &k) != 2 || (size_t)k != len) return -1;
  int s = l - 'A';
  if (s < 0 || s >= NS || n < 1 || n > nsent[s]) return -1;
  return by_sender[s][n - 1];
}

static void on_message(void *arg, const tsr_message *m) {
  person *p = arg;
  if (!m->conversation || strcmp(m->conversation, conv) != 0) return;
  int i = find_text(m->text, m->text_len);
  if (i < 0) {
    unknown_texts++;
    fprintf(stderr, "  %s got an unknown text at seq %llu: %.*s\n", p->login,
            (unsigned long long)m->seq, (int)m->text_len, m->text);
    return;
  }
  msgs[i].got[p->idx]++;
}

static void on_joined(void *arg, const char *c, const char *app, const char *kind) {
  (void)c;
  (void)app;
  (void)kind;
  ((person *)arg)->joined++;
}

/* Records seq as the one message i's sender was told; a different seq for
 * the same message is a failure. */
static void tell(int i, uint64_t seq, int by) {
  msg *m = &msgs[i];
  if (m->told && m->told != seq) {
    told_twice++;
    m->bad = true;
    fprintf(stderr, "  %s: told seq %llu, earlier %llu\n", m->text,
            (unsigned long long)seq, (unsigned long long)m->told);
    return;
  }
  if (!m->told) {
    m->told = seq;
    m->told_by = by;
  }
}

static void on_sent(void *arg, const tsr_result *res) {
  int i = (int)(intptr_t)arg;
  msg *m = &msgs[i];
  m->cb_calls++;
  if (res->err) {
    snprintf(m->cb_code, sizeof m->cb_code, "%s", res->code);
    return;
  }
  cJSON *j = cJSON_ParseWithLength(res->body, res->body_len);
  const cJSON *seq = cJSON_GetObjectItemCaseSensitive(j, "seq");
  const char *cid = json_str(j, "client_id");
  if (cJSON_IsNumber(seq) && seq->valuedouble >= 1) {
    tell(i, (uint64_t)seq->valuedouble, 1);
  } else {
    m->bad = true;
    fprintf(stderr, "  %s: answer without seq: %.*s\n", m->text, (int)res->body_len,
            res->body);
  }
  if (strcmp(cid, m->cid) != 0) {
    strange_cids++;
    m->bad = true;
    fprintf(stderr, "  %s: answered for client_id %s, queued as %s\n", m->text, cid,
            m->cid);
  }
  cJSON_Delete(j);
}

/* ---- driving -------------------------------------------------------------------- */

/* Whether the bytes waiting unread on fd hold the answer to a `send`
 * ({"id":N,"ok":{"seq":S,"duplicate":false}}, in an unmasked frame). */
static bool send_answer_waiting(int fd) {
  static char peek[1 << 16];
  ssize_t n = recv(fd, peek, sizeof peek, MSG_PEEK | MSG_DONTWAIT);
  return n > 0 && memmem(peek, (size_t)n, "\"duplicate\":", 12) != NULL;
}

/* One poll over every device's client and session (up to max_ms), after
 * their timers, then their handlers. With kill_on_input, returns before
 * handling anything when a sender's session has a send answer waiting. */
static void drive_once(int max_ms) {
  struct pollfd pf[2 * NP];
  int who[2 * NP], ws[2 * NP], np = 0;
  int64_t wait = max_ms;
  for (int k = 0; k < NP; k++) {
    tsr_client *c = P[k].c;
    tsr_ws *s = tsr_chat_ws(P[k].h);
    uint64_t now = tsr_client_now_ms(c);
    tsr_client_on_tick(c, now);
    tsr_ws_on_tick(s, now);
    tsr_chat_on_tick(P[k].h, now);
    int64_t t = tsr_client_next_timeout(c, now);
    if (t >= 0 && t < wait) wait = t;
    t = tsr_ws_next_timeout(s, now);
    if (t >= 0 && t < wait) wait = t;
    t = tsr_chat_next_timeout(P[k].h, now);
    if (t >= 0 && t < wait) wait = t;
    int fd = tsr_client_fd(c);
    if (fd >= 0) {
      pf[np] = (struct pollfd){
          fd, (short)(POLLIN | (tsr_client_want_write(c) ? POLLOUT : 0)), 0};
      who[np] = k;
      ws[np++] = 0;
    }
    fd = tsr_ws_fd(s);
    if (fd >= 0) {
      pf[np] =
          (struct pollfd){fd, (short)(POLLIN | (tsr_ws_want_write(s) ? POLLOUT : 0)), 0};
      who[np] = k;
      ws[np++] = 1;
    }
  }
  if (poll(pf, (nfds_t)np, (int)wait) <= 0) return;
  for (int i = 0; kill_on_input && i < np; i++)
    if (ws[i] && who[i] < NS && (pf[i].revents & POLLIN) &&
        send_answer_waiting(pf[i].fd)) {
      input_seen = true; /* left unread for the kill */
      return;
    }
  for (int i = 0; i < np; i++) {
    if (!pf[i].revents) continue;
    person *p = &P[who[i]];
    if (ws[i]) {
      tsr_ws *s = tsr_chat_ws(p->h);
      if (tsr_ws_fd(s) != pf[i].fd) continue; /* reconnected meanwhile */
      if (pf[i].revents & POLLOUT) tsr_ws_on_writable(s);
      if (pf[i].revents & (POLLIN | POLLHUP | POLLERR)) tsr_ws_on_readable(s);
    } else {
      if (tsr_client_fd(p->c) != pf[i].fd) continue;
      if (pf[i].revents & POLLOUT) tsr_client_on_writable(p->c);
      if (pf[i].revents & (POLLIN | POLLHUP | POLLERR)) tsr_client_on_readable(p->c);
    }
  }
}

static int unacked_of(int s) {
  int n = 0;
  for (int k = 0; k < nsent[s]; k++) n += msgs[by_sender[s][k]].told == 0;
  return n;
}

/* The client_id of the outbox row holding text (in its text envelope,
 * docs/protocol.md "What is inside the MLS messages"), read from the
 * state file. */
static bool outbox_cid(person *p, const char *text, char out[40]) {
  sqlite3_stmt *st;
  bool ok = false;
  if (sqlite3_prepare_v2(p->db,
                         "SELECT client_id FROM outbox WHERE json_extract(CAST(plaintext"
                         " AS TEXT), '$.body') = ?",
                         -1, &st, NULL) != SQLITE_OK)
    return false;
  sqlite3_bind_text(st, 1, text, (int)strlen(text), SQLITE_STATIC);
  if (sqlite3_step(st) == SQLITE_ROW) {
    snprintf(out, 40, "%s", (const char *)sqlite3_column_text(st, 0));
    ok = true;
  }
  sqlite3_finalize(st);
  return ok;
}

static bool queue_one(int s) {
  if (nmsgs >= MAX_MSGS) return false;
  int i = nmsgs;
  msg *m = &msgs[i];
  memset(m, 0, sizeof *m);
  m->from = s;
  snprintf(m->text, sizeof m->text, "from %c #%d", P[s].letter, nsent[s] + 1);
  int rc = tsr_send_text(P[s].h, conv, m->text, on_sent, (void *)(intptr_t)i);
  if (rc != 0) {
    fprintf(stderr, "  FAIL tsr_send_text(%s) -> %s\n", m->text, tsr_errname(rc));
    test_case_failed_ = 1;
    return false;
  }
  by_sender[s][nsent[s]++] = i;
  nmsgs++;
  if (!outbox_cid(&P[s], m->text, m->cid)) {
    fprintf(stderr, "  FAIL %s: no outbox row right after tsr_send_text\n", m->text);
    m->bad = true;
    test_case_failed_ = 1;
  }
  return true;
}

/* Each sender queues a message every SEND_EVERY_MS, whatever the state of
 * the connection, unless MAX_UNACKED of its messages wait for an answer. */
static uint64_t next_send[NS];

static void top_up(void) {
  uint64_t now = now_ms();
  for (int s = 0; s < NS; s++) {
    if (now < next_send[s]) continue;
    next_send[s] = now + SEND_EVERY_MS;
    if (unacked_of(s) < MAX_UNACKED) queue_one(s);
  }
}

/* Drives everything for ms, sending when send is set. */
static void run_for(uint64_t ms, bool send) {
  uint64_t end = now_ms() + ms;
  for (uint64_t now; (now = now_ms()) < end;) {
    if (send) top_up();
    uint64_t left = end - now;
    drive_once((int)(send && left > SEND_EVERY_MS ? SEND_EVERY_MS
                     : left < 20                  ? left
                                                  : 20));
  }
}

static int acked_count(void) {
  int n = 0;
  for (int i = 0; i < nmsgs; i++) n += msgs[i].told != 0;
  return n;
}

/* Messages of this device's own sending stored in its state file: rows
 * that left the outbox with a seq (the resends of the outbox report to
 * nobody else). */
static void scan_own_each(void *arg, const tsr_message *m) {
  int s = *(int *)arg;
  if (!m->own) return;
  int i = find_text(m->text, m->text_len);
  if (i < 0 || msgs[i].from != s) {
    unknown_texts++;
    fprintf(stderr, "  %s stores an own message it did not send at seq %llu: %.*s\n",
            P[s].login, (unsigned long long)m->seq, (int)m->text_len, m->text);
    return;
  }
  tell(i, m->seq, 2);
}

static void scan_own(void) {
  for (int s = 0; s < NS; s++)
    CHECK_OK(tsr_messages_local(P[s].c, conv, 0, scan_own_each, &s));
}

/* server_kill9 (kill -9 of the master and every child at once, then wait
 * until the whole process group is gone), reaping the children itself:
 * this process is their subreaper (main), so the workers and the delivery
 * service, orphaned by the master's death, are gone as soon as they are
 * reaped here, not whenever the system's init gets to them (seconds in
 * some containers). */
static void kill9(server *s) {
  pid_t pg = s->pid;
  kill(-pg, SIGKILL);
  uint64_t deadline = now_ms() + DEADLINE_MS;
  while (kill(-pg, 0) == 0 && now_ms() < deadline)
    if (waitpid(-1, NULL, WNOHANG) <= 0) tick();
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
  s->pid = 0;
}

/* ---- the delivery service's log, read while the server is down ------------------ */

static int find_cid(const char *cid, size_t len) {
  for (int i = nmsgs - 1; i >= 0; i--)
    if (strlen(msgs[i].cid) == len && memcmp(msgs[i].cid, cid, len) == 0) return i;
  return -1;
}

/* Reads every log row (seq, client_id): each must carry a client_id one of
 * the messages was queued with, always at the same seq; the rows are
 * contiguous. */
static void read_log(round_rec *r) {
  char path[400];
  snprintf(path, sizeof path, "%s/ds/tessera.db", srv.data);
  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL;
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(db, "SELECT seq, client_id FROM log ORDER BY pos", -1, &st,
                         NULL) != SQLITE_OK) {
    fprintf(stderr, "  FAIL cannot read %s: %s\n", path, db ? sqlite3_errmsg(db) : "");
    test_case_failed_ = 1;
    sqlite3_close(db);
    return;
  }
  uint64_t prev = 0;
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    uint64_t seq = (uint64_t)sqlite3_column_int64(st, 0);
    const char *cid = sqlite3_column_blob(st, 1);
    size_t len = (size_t)sqlite3_column_bytes(st, 1);
    if (prev && seq != prev + 1) {
      fprintf(stderr, "  FAIL log at kill %d: seq %llu after %llu\n", nrounds,
              (unsigned long long)seq, (unsigned long long)prev);
      test_case_failed_ = 1;
    }
    prev = seq;
    r->log_rows++;
    r->log_last = seq;
    int i = cid ? find_cid(cid, len) : -1;
    if (i < 0) {
      if (strange_cids++ < 5)
        fprintf(stderr,
                "  FAIL log at kill %d: seq %llu has client_id '%.*s' never queued\n",
                nrounds, (unsigned long long)seq, (int)len, cid ? cid : "");
      test_case_failed_ = 1;
      continue;
    }
    msg *m = &msgs[i];
    if (m->logged && m->logged != seq) {
      m->bad = true;
      fprintf(stderr, "  FAIL log at kill %d: %s (%s) at seq %llu, earlier at %llu\n",
              nrounds, m->text, m->cid, (unsigned long long)seq,
              (unsigned long long)m->logged);
      test_case_failed_ = 1;
    }
    if (!m->logged) m->logged = seq;
    if (m->kill_round == nrounds && !m->told) {
      m->stored_at_kill = 1;
      r->stored++;
    }
  }
  if (rc != SQLITE_DONE) {
    fprintf(stderr, "  FAIL reading the log: %s\n", sqlite3_errmsg(db));
    test_case_failed_ = 1;
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
}

/* Appends the server's log of the run that just ended to alllog (the
 * restart truncates it). */
static void keep_log(int round) {
  char *t = read_file(srv.log);
  FILE *f = fopen(alllog, "a");
  if (f) {
    fprintf(f, "==== run ending at kill %d\n%s", round, t ? t : "");
    fclose(f);
  }
  free(t);
}

/* ---- setup ---------------------------------------------------------------------- */

static bool make_person(person *p) {
  snprintf(p->path, sizeof p->path, "%s/%s.db", tmpdir, p->login);
  p->c = test_client_open(fixed_port, p->path, 5000);
  if (!test_social_person(p->c, p->login, true, 3, &p->info)) return false;
  /* Only the texts sent here take seqs: no automatic delivery receipts. */
  tsr_chat_config cc = {.on_message = on_message,
                        .on_joined = on_joined,
                        .arg = p,
                        .no_delivery_receipts = 1};
  CHECK_OK(tsr_chat_new(p->c, &cc, &p->h));
  CHECK(sqlite3_open_v2(p->path, &p->db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK);
  if (p->db) sqlite3_busy_timeout(p->db, 5000);
  return !test_failing();
}

static int all_joined(void *arg) {
  (void)arg;
  return P[1].joined && P[2].joined;
}

static void test_setup(void) {
  for (int k = 0; k < NP; k++)
    if (!make_person(&P[k])) return;
  tsr_member m[2] = {{.account = P[1].info.account_id, .app = "social"},
                     {.account = P[2].info.account_id, .app = "social"}};
  tsr_conversation_params cp = {
      .app = "social", .kind = "group", .members = m, .n_members = 2};
  tsr_reply r = {0};
  CHECK_OK(tsr_conversation_create_sync(P[0].h, &cp, &r));
  const char *at = r.body ? strstr(r.body, "\"conversation\":\"") : NULL;
  if (at) snprintf(conv, sizeof conv, "%.22s", at + 16);
  tsr_reply_clear(&r);
  CHECK(strlen(conv) == 22);
  for (int k = 1; k < NP; k++) {
    CHECK_OK(tsr_conversations_refresh_sync(P[k].h, NULL));
    CHECK_INT(P[k].joined, 1);
  }
  if (!all_joined(NULL)) conv[0] = '\0';
}

/* ---- the rounds ----------------------------------------------------------------- */

static int senders_connected(void) {
  return tsr_ws_state(tsr_chat_ws(P[0].h)) == TSR_WS_CONNECTED &&
         tsr_ws_state(tsr_chat_ws(P[1].h)) == TSR_WS_CONNECTED;
}

static void print_rounds(void) {
  fprintf(stderr,
          "  seed %llu; per round: ms of sending (+ a burst and a kill at its first "
          "answer), ms of queueing while down, acknowledged/queued at the kill, "
          "unacknowledged at the kill (of which the log held), log rows (last seq), "
          "ms of restart, of kill9, of reconnecting\n",
          (unsigned long long)seed0);
  for (int k = 1; k <= nrounds; k++) {
    round_rec *r = &rounds[k];
    fprintf(stderr,
            "  round %2d: delay %3u%s, down %3u, acked %4d/%4d, unacked %d (%d), "
            "log %d (%llu), restart %llu, kill %llu, back %llu\n",
            k, r->delay,
            r->at_ack > 0   ? " + burst, killed at an answer"
            : r->at_ack < 0 ? " + burst, no answer"
                            : "",
            r->down, r->acked, r->queued, r->unacked, r->stored, r->log_rows,
            (unsigned long long)r->log_last, (unsigned long long)r->restart_ms,
            (unsigned long long)r->kill_ms, (unsigned long long)r->back_ms);
  }
}

static void test_rounds(void) {
  if (!conv[0]) TEST_SKIP("no conversation");
  for (int k = 1; k <= ROUNDS; k++) {
    round_rec *r = &rounds[k];
    nrounds = k;
    /* Both senders back (bounded), then a random time of sending. */
    uint64_t t0 = now_ms(), deadline = t0 + DEADLINE_MS;
    while (!senders_connected() && now_ms() < deadline) {
      top_up();
      drive_once(20);
    }
    CHECK(senders_connected());
    r->back_ms = now_ms() - t0;
    r->delay = rnd(DELAY_MIN_MS, DELAY_MAX_MS);
    run_for(r->delay, true);
    if (k % 4 != 0) {
      /* Three rounds in four, the senders' sessions settle (no call in
       * flight, bounded), each sender queues a burst (the delivery
       * service's writer then has a backlog), and the kill comes as soon
       * as the answer to a send reaches a sender's socket, before it is
       * read: the device reads it after the kill. An answer given before
       * the commit would then tell a seq the server loses. */
      uint64_t end = now_ms() + SETTLE_MS;
      while (
          (tsr_ws_pending(tsr_chat_ws(P[0].h)) || tsr_ws_pending(tsr_chat_ws(P[1].h))) &&
          now_ms() < end)
        drive_once(SEND_EVERY_MS);
      for (int s = 0; s < NS; s++)
        for (int b = 0; b < BURST && unacked_of(s) < MAX_UNACKED; b++) queue_one(s);
      end = now_ms() + ACK_WAIT_MS;
      kill_on_input = true;
      input_seen = false;
      while (!input_seen && now_ms() < end) drive_once(SEND_EVERY_MS);
      kill_on_input = false;
      r->at_ack = input_seen ? 1 : -1;
    }
    t0 = now_ms();
    kill9(&srv);
    r->kill_ms = now_ms() - t0;
    keep_log(k);
    /* What the kill left: acknowledgements seen so far (the callbacks and
     * the rows that left the outbox), the unacknowledged, and the log. */
    scan_own();
    r->queued = nmsgs;
    r->acked = acked_count();
    for (int i = 0; i < nmsgs; i++)
      if (!msgs[i].told) {
        r->unacked++;
        if (!msgs[i].kill_round) msgs[i].kill_round = k;
        char cid[40];
        if (!msgs[i].bad && (!outbox_cid(&P[msgs[i].from], msgs[i].text, cid) ||
                             strcmp(cid, msgs[i].cid))) {
          fprintf(stderr, "  FAIL kill %d: %s unacknowledged, not in the outbox as %s\n",
                  k, msgs[i].text, msgs[i].cid);
          msgs[i].bad = true;
          test_case_failed_ = 1;
        }
      }
    read_log(r);
    /* The devices notice, reconnect in vain, and go on queueing. */
    r->down = rnd(0, DOWN_MAX_MS);
    run_for(r->down, true);
    t0 = now_ms();
    bool up = server_start(&srv, NULL, false, NULL, NULL) && srv.port == fixed_port;
    r->restart_ms = now_ms() - t0;
    if (!up) {
      fprintf(stderr, "  FAIL tesserad did not restart on port %u (round %d)\n",
              (unsigned)fixed_port, k);
      test_case_failed_ = 1;
      break;
    }
  }
  if (test_failing() || getenv("TSR_KILL_VERBOSE")) print_rounds();
}

/* ---- drain and the checks ------------------------------------------------------- */

static uint64_t last_seq_of(person *p, uint64_t *outbox) {
  tsr_conversation_info *v = NULL;
  size_t n = 0;
  uint64_t last = 0;
  *outbox = 0;
  if (tsr_conversations_local(p->c, &v, &n) == 0)
    for (size_t i = 0; i < n; i++)
      if (!strcmp(v[i].id, conv)) {
        last = v[i].last_seq;
        *outbox = v[i].outbox;
      }
  free(v);
  return last;
}

static uint64_t max_told(void) {
  uint64_t m = 0;
  for (int i = 0; i < nmsgs; i++)
    if (msgs[i].told > m) m = msgs[i].told;
  return m;
}

/* Outboxes empty, every message acknowledged, every device at the same
 * last seq (at least the highest told), nothing in flight. */
static bool drained(char *why, size_t cap) {
  scan_own();
  uint64_t top = max_told(), last[NP], ob[NP];
  for (int k = 0; k < NP; k++) last[k] = last_seq_of(&P[k], &ob[k]);
  int unacked = nmsgs - acked_count();
  snprintf(why, cap,
           "unacked %d, outbox %llu/%llu, last seq %llu/%llu/%llu, highest told %llu, "
           "pending %zu/%zu/%zu",
           unacked, (unsigned long long)ob[0], (unsigned long long)ob[1],
           (unsigned long long)last[0], (unsigned long long)last[1],
           (unsigned long long)last[2], (unsigned long long)top, tsr_chat_pending(P[0].h),
           tsr_chat_pending(P[1].h), tsr_chat_pending(P[2].h));
  if (unacked || ob[0] || ob[1]) return false;
  for (int k = 0; k < NP; k++)
    if (last[k] < top || last[k] != last[0] || tsr_chat_pending(P[k].h)) return false;
  return true;
}

typedef struct {
  size_t n;
  uint64_t seq[MAX_MSGS + 64];
  int idx[MAX_MSGS + 64]; /* -1: not one of ours */
  int own[MAX_MSGS + 64];
} stored;

static stored st_of[NP];

static void collect(void *arg, const tsr_message *m) {
  stored *s = arg;
  if (s->n >= MAX_MSGS + 64) return;
  s->seq[s->n] = m->seq;
  s->idx[s->n] = find_text(m->text, m->text_len);
  s->own[s->n] = m->own;
  s->n++;
}

typedef struct {
  int done, err;
  uint64_t last_seq, cursor;
} conv_answer;

static void on_conversations(void *arg, const tsr_result *res) {
  conv_answer *a = arg;
  a->done = 1;
  a->err = res->err;
  cJSON *j = cJSON_ParseWithLength(res->body, res->body_len), *e;
  cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "conversations")) {
    if (strcmp(json_str(e, "conversation"), conv) != 0) continue;
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(e, "last_seq");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "cursor");
    if (cJSON_IsNumber(l)) a->last_seq = (uint64_t)l->valuedouble;
    if (cJSON_IsNumber(c)) a->cursor = (uint64_t)c->valuedouble;
  }
  cJSON_Delete(j);
}

static void test_drain_and_check(void) {
  if (!conv[0] || !nmsgs) TEST_SKIP("no conversation or no messages");
  char why[256] = "";
  uint64_t t0 = now_ms();
  bool ok = false;
  while (!(ok = drained(why, sizeof why)) && now_ms() - t0 < DRAIN_MS)
    run_for(100, false);
  if (!ok) {
    fprintf(stderr, "  FAIL not drained after %d ms: %s\n", DRAIN_MS, why);
    test_case_failed_ = 1;
  }
  uint64_t drain_ms = now_ms() - t0;
  /* What the server says: its last seq, and each device's cursor. */
  conv_answer ans[NP] = {{0}};
  for (int k = 0; k < NP; k++)
    CHECK_OK(tsr_ws_call(tsr_chat_ws(P[k].h), "conversations", NULL, on_conversations,
                         &ans[k]));
  uint64_t end = now_ms() + DEADLINE_MS;
  while (!(ans[0].done && ans[1].done && ans[2].done) && now_ms() < end) drive_once(20);
  for (int k = 0; k < NP; k++) {
    CHECK(ans[k].done && ans[k].err == 0);
    CHECK_INT(ans[k].last_seq, nmsgs);
  }
  /* Every device: seqs 1..nmsgs, each message once at its told seq. */
  int lost = 0, doubled = 0, misplaced = 0, gaps = 0, dropped = 0, stuck = 0;
  int resent_bad = 0, app_bad = 0, seq_shared = 0;
  static int count[NP][MAX_MSGS], told_to[MAX_MSGS + 1];
  static uint64_t where[NP][MAX_MSGS];
  static bool in_outbox[MAX_MSGS];
  for (int k = 0; k < NP; k++) {
    stored *s = &st_of[k];
    memset(s, 0, sizeof *s);
    CHECK_OK(tsr_messages_local(P[k].c, conv, 0, collect, s));
    memset(count[k], 0, sizeof count[k]);
    for (size_t j = 0; j < s->n; j++) {
      if (s->seq[j] != j + 1) {
        if (gaps++ < 10)
          fprintf(stderr, "  FAIL %s: entry %zu has seq %llu\n", P[k].login, j + 1,
                  (unsigned long long)s->seq[j]);
      }
      int i = s->idx[j];
      if (i < 0) {
        unknown_texts++;
        continue;
      }
      count[k][i]++;
      where[k][i] = s->seq[j];
      if (s->own[j] != (msgs[i].from == k)) {
        misplaced++;
        msgs[i].bad = true;
      }
    }
    CHECK_INT(s->n, nmsgs);
  }
  memset(told_to, 0, sizeof told_to);
  for (int i = 0; i < nmsgs; i++) {
    msg *m = &msgs[i];
    char cid[40];
    in_outbox[i] = outbox_cid(&P[m->from], m->text, cid);
    if (in_outbox[i]) {
      stuck++; /* never sent again after its last failure */
      m->bad = true;
      continue;
    }
    if (!m->told) {
      dropped++; /* left the outbox without a seq */
      m->bad = true;
    } else if (m->told <= (uint64_t)MAX_MSGS) {
      if (told_to[m->told]) {
        seq_shared++; /* two messages told the same seq */
        m->bad = msgs[told_to[m->told] - 1].bad = true;
      }
      told_to[m->told] = i + 1;
    }
    if (m->logged && m->logged != m->told) {
      resent_bad++;
      m->bad = true;
    }
    for (int k = 0; k < NP; k++) {
      if (count[k][i] == 0) {
        lost++;
        m->bad = true;
      } else if (count[k][i] > 1) {
        doubled++;
        m->bad = true;
      } else if (m->told && where[k][i] != m->told) {
        misplaced++;
        m->bad = true;
      }
      if (m->got[k] != (m->from == k ? 0 : 1)) {
        app_bad++;
        m->bad = true;
      }
    }
  }
  int pending_at_kill = 0, stored_at_kill = 0, pending_bad = 0;
  for (int i = 0; i < nmsgs; i++) {
    if (!msgs[i].kill_round) continue;
    pending_at_kill++;
    stored_at_kill += msgs[i].stored_at_kill;
    pending_bad += msgs[i].bad;
  }
  CHECK_INT(stuck, 0);
  CHECK_INT(dropped, 0);
  CHECK_INT(lost, 0);
  CHECK_INT(doubled, 0);
  CHECK_INT(misplaced, 0);
  CHECK_INT(seq_shared, 0);
  CHECK_INT(gaps, 0);
  CHECK_INT(resent_bad, 0);
  CHECK_INT(app_bad, 0);
  CHECK_INT(unknown_texts, 0);
  CHECK_INT(strange_cids, 0);
  CHECK_INT(told_twice, 0);
  CHECK_INT(pending_bad, 0);
  /* The kills did hit messages in flight. */
  CHECK(pending_at_kill > 0);
  if (getenv("TSR_KILL_VERBOSE"))
    fprintf(stderr,
            "  %d messages, %d unacknowledged at a kill (%d of them already stored); "
            "drained in %llu ms\n",
            nmsgs, pending_at_kill, stored_at_kill, (unsigned long long)drain_ms);
  if (!test_failing()) return;
  print_rounds();
  fprintf(stderr,
          "  %d messages, %d unacknowledged at a kill (%d already stored), %d still in "
          "the outboxes\n",
          nmsgs, pending_at_kill, stored_at_kill, stuck);
  /* The messages that failed a check, those still in an outbox last. */
  int shown = 0;
  for (int pass = 0; pass < 2; pass++)
    for (int i = 0; i < nmsgs; i++) {
      msg *m = &msgs[i];
      if (!m->bad || in_outbox[i] != (pass == 1) || shown++ >= 30) continue;
      fprintf(stderr,
              "  %s cid %s%s: told %llu (by %s), logged %llu, unacked at kill %d%s, "
              "callbacks %d%s%s; on ann/ben/cat: count %d/%d/%d seq %llu/%llu/%llu, "
              "on_message %d/%d/%d\n",
              m->text, m->cid, in_outbox[i] ? " (still in the outbox)" : "",
              (unsigned long long)m->told,
              m->told_by == 1   ? "callback"
              : m->told_by == 2 ? "outbox"
                                : "-",
              (unsigned long long)m->logged, m->kill_round,
              m->stored_at_kill ? " (already stored)" : "", m->cb_calls,
              m->cb_code[0] ? ", last error " : "", m->cb_code, count[0][i], count[1][i],
              count[2][i], (unsigned long long)where[0][i],
              (unsigned long long)where[1][i], (unsigned long long)where[2][i], m->got[0],
              m->got[1], m->got[2]);
    }
  if (shown > 30) fprintf(stderr, "  ... %d more\n", shown - 30);
  fprintf(stderr, "  server logs of every run: %s (kept)\n", alllog);
}

/* ---- main ----------------------------------------------------------------------- */

static int listen_any(uint16_t *port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof a;
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
      getsockname(fd, (struct sockaddr *)&a, &al) != 0) {
    if (fd >= 0) close(fd);
    return -1;
  }
  *port = ntohs(a.sin_port);
  return fd;
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  prctl(PR_SET_CHILD_SUBREAPER, 1); /* for kill9 */
  const char *seed = getenv("TSR_KILL_SEED");
  rng = seed ? strtoull(seed, NULL, 10) : (now_ms() ^ ((uint64_t)getpid() << 20));
  if (!rng) rng = 1;
  seed0 = rng;
  snprintf(tmpdir, sizeof tmpdir, "/tmp/tsr-kill-XXXXXX");
  if (!mkdtemp(tmpdir) || tsr_client_global_init() != 0 || !find_binary()) {
    fprintf(stderr, "no temporary directory, crypto or tesserad (set TSR_BUILD)\n");
    printf("kill: 0 passed, 1 failed, 0 skipped\n");
    return 1;
  }
  snprintf(alllog, sizeof alllog, "%s/tesserad-all.log", tmpdir);
  /* A port of our own, kept across restarts. */
  int pfd = listen_any(&fixed_port);
  if (pfd >= 0) close(pfd);
  static char listen_arg[32];
  snprintf(listen_arg, sizeof listen_arg, "127.0.0.1:%u", (unsigned)fixed_port);
  static const char *extra[] = {
      "--rate-per-account", "0", "--rate-per-address", "0", "--listen", listen_arg, NULL};
  if (pfd < 0 || !server_start(&srv, "kill", true, "2", extra) ||
      srv.port != fixed_port) {
    fprintf(stderr, "tesserad did not start on port %u; log %s\n", fixed_port, srv.log);
    printf("kill: 0 passed, 1 failed, 0 skipped\n");
    return 1;
  }
  uint64_t t[4] = {now_ms()};
  RUN(test_setup);
  t[1] = now_ms();
  RUN(test_rounds);
  t[2] = now_ms();
  RUN(test_drain_and_check);
  t[3] = now_ms();
  if (getenv("TSR_KILL_VERBOSE"))
    fprintf(stderr, "  setup %llu ms, rounds %llu ms, drain and checks %llu ms\n",
            (unsigned long long)(t[1] - t[0]), (unsigned long long)(t[2] - t[1]),
            (unsigned long long)(t[3] - t[2]));
  bool failed = test_failed_ > 0;
  if (failed) fprintf(stderr, "  seed %llu (TSR_KILL_SEED)\n", (unsigned long long)seed0);
  for (int k = 0; k < NP; k++) {
    tsr_chat_free(P[k].h);
    sqlite3_close(P[k].db);
    tsr_client_free(P[k].c);
  }
  cJSON_Delete(resp.json);
  resp.json = NULL;
  server_stop(&srv, true);
  if (!failed) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", tmpdir);
  } else {
    fprintf(stderr, "  kept %s\n", tmpdir);
  }
  return test_report("kill");
}
