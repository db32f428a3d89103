/* Home timelines' write buffer: see timelines.h. */
#include "server/timelines.h"

#include <stdlib.h>
#include <string.h>

#include "server/accounts.h"
#include "server/log.h"
#include "tessera/error.h"

#define RETRY_MS 1000 /* after a failed merge */
#define START_MS 100  /* worker 0's merge of what a stopped server left */

static struct {
  worker *w;
  loop_timer timer;
  bool running; /* a merge job is in the store's hands */
  bool again;   /* kicked while running: merge once more after it */
} tl;

typedef struct {
  store_job job;
  bool full; /* moved TIMELINES_MERGE_ROWS rows: more may be left */
} merge_op;

#define KEY_ORDER " ORDER BY owner_id, app, post_id"
#define UPTO " WHERE (owner_id, app, post_id) <= (?, ?, ?)"

/* The last key of the next merge: the TIMELINES_MERGE_ROWS-th row in key
 * order, else the buffer's last. 1 and the key, 0 when the buffer is
 * empty, or a TSR_E* code. */
static int merge_bound(store_conn *c, bool *full, uint8_t owner[ACCOUNTS_ID_BYTES],
                       int64_t *app, int64_t *post) {
  static const char *const sql[] = {
      "SELECT owner_id, app, post_id FROM timeline_buffer" KEY_ORDER " LIMIT 1 OFFSET ?",
      "SELECT owner_id, app, post_id FROM timeline_buffer ORDER BY owner_id DESC,"
      " app DESC, post_id DESC LIMIT 1",
  };
  for (int i = 0; i < 2; i++) {
    store_stmt *s;
    int rc = store_conn_prepare(c, sql[i], &s);
    if (rc) return rc;
    if (i == 0) store_bind_int64(s, 1, TIMELINES_MERGE_ROWS - 1);
    rc = store_step(s);
    if (rc == STORE_ROW) {
      bytes_t o = store_col_blob(s, 0);
      if (o.len != ACCOUNTS_ID_BYTES) {
        store_stmt_reset(s);
        return TSR_EINVAL;
      }
      memcpy(owner, o.ptr, ACCOUNTS_ID_BYTES);
      *app = store_col_int64(s, 1);
      *post = store_col_int64(s, 2);
      *full = i == 0;
    }
    store_stmt_reset(s);
    if (rc == STORE_ROW) return 1;
    if (rc < 0) return rc;
  }
  return 0;
}

/* Runs sql binding a timeline key (owner_id, app, post_id). */
static int run_key(store_conn *c, const char *sql, const uint8_t owner[ACCOUNTS_ID_BYTES],
                   int64_t app, int64_t post) {
  store_stmt *s;
  int rc = store_conn_prepare(c, sql, &s);
  if (rc) return rc;
  store_bind_blob(s, 1, BYTES(owner, ACCOUNTS_ID_BYTES));
  store_bind_int64(s, 2, app);
  store_bind_int64(s, 3, post);
  return store_stmt_run(s);
}

/* Removes the timeline rows of up to TIMELINES_MERGE_ROWS purge rows (in
 * key order) from both tables. 1 when there were purge rows, 0 when none,
 * or a TSR_E* code. */
static int purge_step(store_conn *c, bool *full) {
  static struct {
    int64_t app, post;
    uint8_t owner[ACCOUNTS_ID_BYTES];
  } rows[TIMELINES_MERGE_ROWS]; /* the writer thread's only */
  store_stmt *s;
  int n = 0,
      rc = store_conn_prepare(
          c, "SELECT owner_id, app, post_id FROM timeline_purge" KEY_ORDER " LIMIT ?",
          &s);
  if (rc) return rc;
  store_bind_int64(s, 1, TIMELINES_MERGE_ROWS);
  while ((rc = store_step(s)) == STORE_ROW) {
    bytes_t o = store_col_blob(s, 0);
    if (o.len != ACCOUNTS_ID_BYTES) continue; /* never written so; the range drops it */
    memcpy(rows[n].owner, o.ptr, ACCOUNTS_ID_BYTES);
    rows[n].app = store_col_int64(s, 1);
    rows[n].post = store_col_int64(s, 2);
    n++;
  }
  store_stmt_reset(s);
  if (rc < 0) return rc;
  if (n == 0) return 0;
#define PURGE_SQL(t) "DELETE FROM " t " WHERE owner_id = ? AND app = ? AND post_id = ?"
  static const char *const sql[] = {TIMELINE_TABLES(PURGE_SQL)};
  for (int i = 0; i < n; i++)
    for (int t = 0; t < TIMELINE_TABLES_N; t++)
      if ((rc = run_key(c, sql[t], rows[i].owner, rows[i].app, rows[i].post)) != 0)
        return rc;
  *full = n == TIMELINES_MERGE_ROWS;
  rc = run_key(c, "DELETE FROM timeline_purge" UPTO, rows[n - 1].owner, rows[n - 1].app,
               rows[n - 1].post);
  return rc ? rc : 1;
}

/* One job: a purge step if deleted posts left rows, else a merge step. */
static int merge_run(store_conn *c, void *arg) {
  merge_op *o = arg;
  int rc = purge_step(c, &o->full);
  if (rc != 0) return rc < 0 ? rc : 0;
  uint8_t owner[ACCOUNTS_ID_BYTES];
  int64_t app = 0, post = 0;
  rc = merge_bound(c, &o->full, owner, &app, &post);
  if (rc <= 0) return rc;
  static const char *const sql[] = {
      "INSERT INTO timelines(owner_id, app, post_id) SELECT owner_id, app, post_id"
      " FROM timeline_buffer" UPTO KEY_ORDER " ON CONFLICT DO NOTHING",
      "DELETE FROM timeline_buffer" UPTO,
  };
  for (int i = 0; i < 2; i++)
    if ((rc = run_key(c, sql[i], owner, app, post)) != 0) return rc;
  return 0;
}

static void merge_start(void);

static void merge_done(store_job *job, int status) {
  merge_op *o = job->arg;
  bool more = status == 0 && (o->full || tl.again);
  free(o);
  tl.running = false;
  tl.again = false;
  if (status) log_warn("timelines: merge failed: %s", tsr_errname(status));
  if (!tl.w) return;
  if (status)
    loop_timer_start(&tl.w->loop, &tl.timer, RETRY_MS);
  else if (more)
    merge_start(); /* behind the jobs queued meanwhile */
}

/* Hands a merge job to the store writer (one at a time). */
static void merge_start(void) {
  if (tl.running) {
    tl.again = true;
    return;
  }
  merge_op *o = calloc(1, sizeof *o);
  if (o) {
    o->job = (store_job){.run = merge_run, .done = merge_done, .arg = o};
    if (store_submit(tl.w->sc, &o->job) == 0) {
      tl.running = true;
      return;
    }
  }
  free(o);
  loop_timer_start(&tl.w->loop, &tl.timer, RETRY_MS);
}

static void on_timer(loop_t *l, loop_timer *t) {
  (void)l, (void)t;
  if (tl.w) merge_start();
}

void timelines_kick(void) {
  if (tl.w) merge_start();
}

int timelines_worker_start(worker *w) {
  tl.w = w;
  tl.running = tl.again = false;
  tl.timer.kind = TIMER_TIMELINES;
  loop_set_timer_cb(&w->loop, TIMER_TIMELINES, on_timer);
  if (w->index == 0) loop_timer_start(&w->loop, &tl.timer, START_MS);
  return 0;
}

void timelines_worker_stop(worker *w) {
  loop_timer_stop(&w->loop, &tl.timer);
  tl.w = NULL;
}
