/* Store engine: migrations, group commit, failure isolation, back-pressure,
 * readers, completion delivery and durability across kill -9. Every test
 * works in its own mkdtemp directory, removed afterwards. */
#include <dirent.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"
#include "test.h"

/* ---- fixtures --------------------------------------------------------- */

static const store_migration migs[] = {
    {"log", "CREATE TABLE log (id INTEGER PRIMARY KEY, who INTEGER NOT NULL,"
            " seq INTEGER NOT NULL, body BLOB)"},
    {"kv", "CREATE TABLE kv (k TEXT PRIMARY KEY, v BLOB NOT NULL)"},
    {"log_who", "CREATE INDEX log_who ON log(who, seq)"},
};
#define N_MIGS (sizeof migs / sizeof migs[0])

static char *tmpdir(void) {
  char *d = strdup("/tmp/tsr-store-XXXXXX");
  if (!d || !mkdtemp(d)) {
    perror("mkdtemp");
    exit(1);
  }
  return d;
}

static void rmtree(char *dir) {
  DIR *d = opendir(dir);
  if (d) {
    struct dirent *e;
    char p[512];
    while ((e = readdir(d))) {
      if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
      snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
      unlink(p);
    }
    closedir(d);
  }
  rmdir(dir);
  free(dir);
}

static store *open_n(const char *dir, size_t n, size_t queue_max) {
  char err[256] = "";
  store_opts o = {.migrations = migs,
                  .n_migrations = n,
                  .queue_max = queue_max,
                  .errbuf = err,
                  .errbuf_len = sizeof err};
  store *st = NULL;
  int rc = store_open(dir, &o, &st);
  if (rc) fprintf(stderr, "  store_open: %s: %s\n", tsr_errname(rc), err);
  return st;
}

/* One integer from a single-row query, on this thread's reader. */
static int64_t query_int(store *st, const char *sql) {
  store_conn *c;
  store_stmt *s;
  if (store_reader_get(st, &c) || store_conn_prepare(c, sql, &s)) return -1;
  int64_t v = store_step(s) == STORE_ROW ? store_col_int64(s, 0) : -2;
  store_stmt_reset(s);
  return v;
}

/* Inserts one log row; arg points to the id. */
static int insert_row(store_conn *c, void *arg) {
  int64_t id = *(int64_t *)arg;
  store_stmt *s;
  int rc = store_conn_prepare(c, "INSERT INTO log(id, who, seq) VALUES(?, 0, ?)", &s);
  if (rc) return rc;
  store_bind_int64(s, 1, id);
  store_bind_int64(s, 2, id);
  return store_stmt_run(s);
}

/* Waits (bounded, as a failure guard) for the client's eventfd and drains
 * until nothing is in flight. */
static void drain_all(store_client *cl) {
  while (store_client_inflight(cl)) {
    if (store_client_drain(cl)) continue;
    struct pollfd p = {.fd = store_client_fd(cl), .events = POLLIN};
    if (poll(&p, 1, 30000) <= 0) {
      fprintf(stderr, "  drain_all: no completion within 30 s\n");
      abort();
    }
  }
}

/* A job that holds the writer until released, so tests can decide what
 * lands in the next batch. Optionally inserts a row first. */
typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool started, released;
  int64_t insert_id; /* 0: none */
} blocker;

static void blocker_init(blocker *b, int64_t insert_id) {
  pthread_mutex_init(&b->mu, NULL);
  pthread_cond_init(&b->cv, NULL);
  b->started = b->released = false;
  b->insert_id = insert_id;
}

static int blocker_run(store_conn *c, void *arg) {
  blocker *b = arg;
  int rc = b->insert_id ? insert_row(c, &b->insert_id) : 0;
  pthread_mutex_lock(&b->mu);
  b->started = true;
  pthread_cond_broadcast(&b->cv);
  while (!b->released) pthread_cond_wait(&b->cv, &b->mu);
  pthread_mutex_unlock(&b->mu);
  return rc;
}

static void blocker_wait_started(blocker *b) {
  pthread_mutex_lock(&b->mu);
  while (!b->started) pthread_cond_wait(&b->cv, &b->mu);
  pthread_mutex_unlock(&b->mu);
}

static void blocker_release(blocker *b) {
  pthread_mutex_lock(&b->mu);
  b->released = true;
  pthread_cond_broadcast(&b->cv);
  pthread_mutex_unlock(&b->mu);
}

static void blocker_deinit(blocker *b) {
  pthread_mutex_destroy(&b->mu);
  pthread_cond_destroy(&b->cv);
}

/* A job with its result, for tests that inspect statuses. */
typedef struct {
  store_job job; /* first: the done callback casts back */
  int64_t id;
  int status, calls;
  pthread_t done_thread;
} tjob;

static void tjob_done(store_job *j, int status) {
  tjob *t = (tjob *)j;
  t->status = status;
  t->calls++;
  t->done_thread = pthread_self();
}

static void tjob_init(tjob *t, store_run_fn run, void *arg) {
  memset(t, 0, sizeof *t);
  t->job.run = run;
  t->job.done = tjob_done;
  t->job.arg = arg ? arg : &t->id;
  t->status = 1; /* not completed */
}

/* ---- migrations ------------------------------------------------------- */

static void test_migrate_fresh(void) {
  char *dir = tmpdir();
  store *st = open_n(dir, N_MIGS, 0);
  CHECK(st != NULL);
  if (st) {
    CHECK_INT(store_schema_version(st), N_MIGS);
    CHECK_INT(query_int(st, "SELECT count(*) FROM schema_version"), N_MIGS);
    CHECK_INT(query_int(st, "SELECT count(*) FROM sqlite_master WHERE name='log_who'"),
              1);
    store_conn *c;
    store_stmt *s;
    CHECK_OK(store_reader_get(st, &c));
    CHECK_OK(store_conn_prepare(c, "PRAGMA journal_mode", &s));
    CHECK_INT(store_step(s), STORE_ROW);
    CHECK(strcmp(store_col_text(s, 0, NULL), "wal") == 0);
    store_stmt_reset(s);
    store_close(st);
  }
  /* Reopening with the same list applies nothing again. */
  st = open_n(dir, N_MIGS, 0);
  CHECK(st != NULL);
  if (st) CHECK_INT(query_int(st, "SELECT count(*) FROM schema_version"), N_MIGS);
  store_close(st);
  rmtree(dir);
}

static void test_migrate_incremental(void) {
  char *dir = tmpdir();
  store *st = open_n(dir, 1, 0);
  CHECK(st != NULL);
  if (!st) goto out;
  CHECK_INT(store_schema_version(st), 1);
  int64_t id = 42;
  CHECK_OK(store_exec_sync(st, insert_row, &id));
  CHECK_INT(query_int(st, "SELECT count(*) FROM sqlite_master WHERE name='kv'"), 0);
  store_close(st);

  st = open_n(dir, N_MIGS, 0);
  CHECK(st != NULL);
  if (!st) goto out;
  CHECK_INT(store_schema_version(st), N_MIGS);
  CHECK_INT(query_int(st, "SELECT count(*) FROM log WHERE id=42"), 1);
  CHECK_INT(query_int(st, "SELECT count(*) FROM sqlite_master WHERE name='kv'"), 1);
  CHECK_INT(query_int(st, "SELECT max(version) FROM schema_version"), N_MIGS);
  store_close(st);
out:
  rmtree(dir);
}

static void test_migrate_refuses_newer(void) {
  char *dir = tmpdir();
  store *st = open_n(dir, N_MIGS, 0);
  CHECK(st != NULL);
  store_close(st);

  char err[256] = "";
  store_opts o = {.migrations = migs,
                  .n_migrations = N_MIGS - 1,
                  .errbuf = err,
                  .errbuf_len = sizeof err};
  st = (store *)1;
  CHECK_ERR(store_open(dir, &o, &st), TSR_EUNSUPPORTED);
  CHECK(st == (store *)1); /* untouched on failure */
  CHECK(strstr(err, "newer") != NULL);

  /* An edited list (same length, other name) is refused as well. */
  store_migration renamed[N_MIGS];
  memcpy(renamed, migs, sizeof renamed);
  renamed[1].name = "kv2";
  o.migrations = renamed;
  o.n_migrations = N_MIGS;
  CHECK_ERR(store_open(dir, &o, &st), TSR_ESTATE);
  CHECK(strstr(err, "kv2") != NULL);
  rmtree(dir);
}

static void test_migrate_failure_rolls_back(void) {
  char *dir = tmpdir();
  const store_migration bad[] = {
      migs[0],
      {"broken", "CREATE TABLE half (a INTEGER PRIMARY KEY); SELECT * FROM nowhere"},
  };
  char err[256] = "";
  store_opts o = {
      .migrations = bad, .n_migrations = 2, .errbuf = err, .errbuf_len = sizeof err};
  store *st = NULL;
  CHECK_ERR(store_open(dir, &o, &st), TSR_EINVAL);
  CHECK(strstr(err, "broken") != NULL);
  st = open_n(dir, 1, 0);
  CHECK(st != NULL);
  if (st) {
    CHECK_INT(store_schema_version(st), 1);
    CHECK_INT(query_int(st, "SELECT count(*) FROM sqlite_master WHERE name='half'"), 0);
  }
  store_close(st);
  rmtree(dir);
}

/* ---- typed helpers ---------------------------------------------------- */

typedef struct {
  int step_rc, dup_rc, syntax_rc, multi_rc;
  bool same_stmt;
  int64_t synchronous, foreign_keys;
} helper_out;

static int64_t pragma(store_conn *c, const char *sql) {
  store_stmt *s;
  if (store_conn_prepare(c, sql, &s)) return -1;
  int64_t v = store_step(s) == STORE_ROW ? store_col_int64(s, 0) : -2;
  store_stmt_reset(s);
  return v;
}

static int helpers_job(store_conn *c, void *arg) {
  helper_out *o = arg;
  store_stmt *s, *s2;
  o->synchronous = pragma(c, "PRAGMA synchronous");
  o->foreign_keys = pragma(c, "PRAGMA foreign_keys");
  int rc = store_conn_prepare(c, "INSERT INTO kv(k, v) VALUES(?, ?)", &s);
  if (rc) return rc;
  const uint8_t blob[] = {0, 1, 2, 0xff};
  store_bind_text(s, 1, "a\0b", 3); /* embedded NUL survives */
  store_bind_blob(s, 2, BYTES(blob, sizeof blob));
  if ((rc = store_stmt_run(s))) return rc;
  store_bind_str(s, 1, "empty");
  store_bind_blob(s, 2, BYTES_NONE); /* empty blob, not NULL (v is NOT NULL) */
  if ((rc = store_stmt_run(s))) return rc;
  o->step_rc = store_stmt_run(s); /* same key again */
  o->dup_rc = o->step_rc;
  CHECK_OK(store_conn_prepare(c, "INSERT INTO kv(k, v) VALUES(?, ?)", &s2));
  o->same_stmt = s == s2;
  o->syntax_rc = store_conn_prepare(c, "INSRT INTO kv VALUES(1)", &s2);
  o->multi_rc = store_conn_prepare(c, "SELECT 1; SELECT 2", &s2);
  return 0;
}

static void test_helpers(void) {
  char *dir = tmpdir();
  store *st = open_n(dir, N_MIGS, 0);
  CHECK(st != NULL);
  if (!st) goto out;
  helper_out o = {0};
  CHECK_OK(store_exec_sync(st, helpers_job, &o));
  CHECK_ERR(o.dup_rc, TSR_ECONFLICT);
  CHECK_ERR(o.syntax_rc, TSR_EINVAL);
  CHECK_ERR(o.multi_rc, TSR_EINVAL);
  CHECK(o.same_stmt);
  CHECK_INT(o.synchronous, 2); /* FULL: kill -9 alone cannot tell it from OFF */
  CHECK_INT(o.foreign_keys, 1);

  store_conn *c;
  store_stmt *s;
  CHECK_OK(store_reader_get(st, &c));
  CHECK_OK(store_conn_prepare(c, "SELECT k, v, NULL FROM kv ORDER BY k", &s));
  CHECK_INT(store_step(s), STORE_ROW);
  size_t len;
  const char *k = store_col_text(s, 0, &len);
  CHECK(len == 3 && memcmp(k, "a\0b", 3) == 0);
  const uint8_t blob[] = {0, 1, 2, 0xff};
  CHECK_BYTES(store_col_blob(s, 1), BYTES(blob, sizeof blob));
  CHECK(store_col_is_null(s, 2));
  CHECK_INT(store_col_blob(s, 2).len, 0);
  CHECK_INT(store_step(s), STORE_ROW);
  CHECK(!store_col_is_null(s, 1)); /* empty blob stays a blob */
  CHECK_INT(store_col_blob(s, 1).len, 0);
  CHECK_INT(store_step(s), STORE_DONE);
  store_stmt_reset(s);
  /* Readers are query-only. */
  CHECK(store_conn_exec(c, "DELETE FROM kv") != 0);
  CHECK_INT(query_int(st, "SELECT count(*) FROM kv"), 2);
  CHECK_INT(store_map_error(19 /* SQLITE_CONSTRAINT */ | (6 << 8)), TSR_ECONFLICT);
  CHECK_INT(store_map_error(101 /* SQLITE_DONE */), 0);
  CHECK(strcmp(tsr_errname(TSR_ECONFLICT), "TSR_ECONFLICT") == 0);
  store_close(st);
out:
  rmtree(dir);
}

/* ---- group commit from several threads ------------------------------- */

#define GC_THREADS 4
#define GC_JOBS 3000
#define GC_WINDOW 200

typedef struct gc_thread gc_thread;
typedef struct {
  store_job job;
  gc_thread *t;
  int seq;
  int calls;
} gc_job;

struct gc_thread {
  store *st;
  int who;
  gc_job jobs[GC_JOBS];
  int next_done;     /* submitter side: next seq expected to complete */
  int errors;        /* done with a non-zero status or out of order */
  int writer_next;   /* writer side: next seq expected to run */
  int writer_errors; /* ran out of order */
};

static int gc_run(store_conn *c, void *arg) {
  gc_job *j = arg;
  /* Only the writer thread touches writer_*; runs are serial. */
  if (j->seq != j->t->writer_next++) j->t->writer_errors++;
  store_stmt *s;
  int rc = store_conn_prepare(c, "INSERT INTO log(id, who, seq) VALUES(?, ?, ?)", &s);
  if (rc) return rc;
  store_bind_int64(s, 1, (int64_t)j->t->who * 1000000 + j->seq);
  store_bind_int64(s, 2, j->t->who);
  store_bind_int64(s, 3, j->seq);
  return store_stmt_run(s);
}

static void gc_done(store_job *job, int status) {
  gc_job *j = (gc_job *)job;
  j->calls++;
  if (status != 0 || j->seq != j->t->next_done) j->t->errors++;
  j->t->next_done++;
}

static void *gc_main(void *arg) {
  gc_thread *t = arg;
  store_client *cl;
  if (store_client_new(t->st, &cl)) {
    t->errors++;
    return NULL;
  }
  int submitted = 0;
  while (t->next_done < GC_JOBS) {
    while (submitted < GC_JOBS && (int)store_client_inflight(cl) < GC_WINDOW) {
      gc_job *j = &t->jobs[submitted];
      j->job = (store_job){.run = gc_run, .done = gc_done, .arg = j};
      j->t = t;
      j->seq = submitted;
      if (store_submit(cl, &j->job)) break; /* full: wait for completions */
      submitted++;
    }
    struct pollfd p = {.fd = store_client_fd(cl), .events = POLLIN};
    if (poll(&p, 1, 30000) <= 0) {
      t->errors++;
      break;
    }
    store_client_drain(cl);
  }
  store_client_free(cl);
  return NULL;
}

static void test_group_commit_threads(void) {
  char *dir = tmpdir();
  store *st = open_n(dir, N_MIGS, GC_THREADS * GC_WINDOW); /* never ELIMIT */
  CHECK(st != NULL);
  if (!st) goto out;
  static gc_thread th[GC_THREADS];
  pthread_t tid[GC_THREADS];
  for (int i = 0; i < GC_THREADS; i++) {
    memset(&th[i], 0, sizeof th[i]);
    th[i].st = st;
    th[i].who = i + 1;
    CHECK_INT(pthread_create(&tid[i], NULL, gc_main, &th[i]), 0);
  }
  for (int i = 0; i < GC_THREADS; i++) pthread_join(tid[i], NULL);
  for (int i = 0; i < GC_THREADS; i++) {
    CHECK_INT(th[i].errors, 0);
    CHECK_INT(th[i].writer_errors, 0);
    CHECK_INT(th[i].next_done, GC_JOBS);
    int once = 0;
    for (int k = 0; k < GC_JOBS; k++) once += th[i].jobs[k].calls == 1;
    CHECK_INT(once, GC_JOBS);
  }
  CHECK_INT(query_int(st, "SELECT count(*) FROM log"), GC_THREADS * GC_JOBS);
  store_stats s;
  store_get_stats(st, &s);
  CHECK_INT(s.jobs_ok, GC_THREADS * GC_JOBS);
  CHECK_INT(s.jobs_err, 0);
  CHECK(s.commits < (uint64_t)GC_THREADS * GC_JOBS / 4); /* jobs were grouped */
  CHECK(s.max_batch > 1);
  store_close(st);
out:
  rmtree(dir);
}

/* ---- one failing job in a batch -------------------------------------- */

/* Inserts its own row, then a duplicate of row 1: fails with a conflict
 * after a partial write that must be rolled back. */
static int insert_then_conflict(store_conn *c, void *arg) {
  int rc = insert_row(c, arg);
  if (rc) return rc;
  int64_t one = 1;
  return insert_row(c, &one);
}

static void test_failing_job_isolated(void) {
  char *dir = tmpdir();
  store *st = open_n(dir, N_MIGS, 0);
  store_client *cl = NULL;
  CHECK(st != NULL);
  if (!st) goto out;
  CHECK_OK(store_client_new(st, &cl));
  blocker b;
  blocker_init(&b, 0);
  tjob hold, a, bad, c;
  tjob_init(&hold, blocker_run, &b);
  tjob_init(&a, insert_row, NULL);
  tjob_init(&bad, insert_then_conflict, NULL);
  tjob_init(&c, insert_row, NULL);
  a.id = 1, bad.id = 2, c.id = 3;
  CHECK_OK(store_submit(cl, &hold.job));
  blocker_wait_started(&b);
  store_stats before;
  store_get_stats(st, &before);
  CHECK_OK(store_submit(cl, &a.job));
  CHECK_OK(store_submit(cl, &bad.job));
  CHECK_OK(store_submit(cl, &c.job));
  blocker_release(&b);
  drain_all(cl);
  CHECK_INT(hold.status, 0);
  CHECK_INT(a.status, 0);
  CHECK_ERR(bad.status, TSR_ECONFLICT);
  CHECK_INT(c.status, 0);
  CHECK_INT(a.calls + bad.calls + c.calls, 3);
  store_stats after;
  store_get_stats(st, &after);
  CHECK_INT(after.commits - before.commits, 2); /* the hold, then a+bad+c */
  CHECK(after.max_batch >= 3);
  CHECK_INT(after.jobs_err - before.jobs_err, 1);
  CHECK_INT(query_int(st, "SELECT count(*) FROM log WHERE id IN (1, 3)"), 2);
  CHECK_INT(query_int(st, "SELECT count(*) FROM log WHERE id = 2"), 0);
  blocker_deinit(&b);
  store_client_free(cl);
  store_close(st);
out:
  rmtree(dir);
}

/* ---- back-pressure ---------------------------------------------------- */

static void test_backpressure(void) {
  char *dir = tmpdir();
  store *st = open_n(dir, N_MIGS, 4);
  store_client *cl = NULL;
  CHECK(st != NULL);
  if (!st) goto out;
  CHECK_OK(store_client_new(st, &cl));
  blocker b;
  blocker_init(&b, 0);
  tjob hold, j[4];
  tjob_init(&hold, blocker_run, &b);
  CHECK_OK(store_submit(cl, &hold.job));
  blocker_wait_started(&b);
  for (int i = 0; i < 4; i++) {
    tjob_init(&j[i], insert_row, NULL);
    j[i].id = 100 + i;
  }
  /* The running hold counts: 3 more fill the queue of 4. */
  for (int i = 0; i < 3; i++) CHECK_OK(store_submit(cl, &j[i].job));
  CHECK_ERR(store_submit(cl, &j[3].job), TSR_ELIMIT);
  CHECK_INT(store_client_inflight(cl), 4);
  blocker_release(&b);
  drain_all(cl);
  CHECK_INT(j[3].calls, 0); /* the refused job never ran */
  CHECK_OK(store_submit(cl, &j[3].job));
  drain_all(cl);
  for (int i = 0; i < 4; i++) CHECK_INT(j[i].status, 0);
  CHECK_INT(query_int(st, "SELECT count(*) FROM log"), 4);
  blocker_deinit(&b);
  store_client_free(cl);
  store_close(st);
out:
  rmtree(dir);
}

/* ---- readers ---------------------------------------------------------- */

typedef struct {
  store *st;
  store_conn *conn;
  int64_t count;
} reader_arg;

static void *reader_main(void *arg) {
  reader_arg *r = arg;
  if (store_reader_get(r->st, &r->conn)) return NULL;
  r->count = query_int(r->st, "SELECT count(*) FROM log");
  return NULL;
}

static void test_readers(void) {
  char *dir = tmpdir();
  store *st = open_n(dir, N_MIGS, 0);
  store_client *cl = NULL;
  CHECK(st != NULL);
  if (!st) goto out;
  CHECK_OK(store_client_new(st, &cl));
  blocker b;
  blocker_init(&b, 7); /* inserts row 7, then holds the transaction open */
  tjob hold;
  tjob_init(&hold, blocker_run, &b);
  CHECK_OK(store_submit(cl, &hold.job));
  blocker_wait_started(&b);
  /* The writer is mid-transaction: a reader neither waits nor sees it. */
  CHECK_INT(query_int(st, "SELECT count(*) FROM log"), 0);
  blocker_release(&b);
  drain_all(cl);
  CHECK_INT(hold.status, 0);
  /* Acked means visible to every reader. */
  CHECK_INT(query_int(st, "SELECT count(*) FROM log WHERE id=7"), 1);
  store_conn *c1, *c2;
  CHECK_OK(store_reader_get(st, &c1));
  CHECK_OK(store_reader_get(st, &c2));
  CHECK(c1 == c2);
  reader_arg r = {st, NULL, -1};
  pthread_t t;
  CHECK_INT(pthread_create(&t, NULL, reader_main, &r), 0);
  pthread_join(t, NULL);
  CHECK(r.conn != NULL && r.conn != c1);
  CHECK_INT(r.count, 1);
  /* A read transaction keeps its snapshot while the writer commits. */
  CHECK_OK(store_read_begin(c1));
  CHECK_INT(query_int(st, "SELECT count(*) FROM log"), 1);
  int64_t id = 8;
  CHECK_OK(store_exec_sync(st, insert_row, &id));
  CHECK_INT(query_int(st, "SELECT count(*) FROM log"), 1);
  CHECK_OK(store_read_end(c1));
  CHECK_INT(query_int(st, "SELECT count(*) FROM log"), 2);
  blocker_deinit(&b);
  store_client_free(cl);
  store_close(st);
out:
  rmtree(dir);
}

/* ---- completion on the submitter's eventfd --------------------------- */

static pthread_t writer_thread;
static int record_writer(store_conn *c, void *arg) {
  (void)c, (void)arg;
  writer_thread = pthread_self();
  return 0;
}

static void test_completion_on_eventfd(void) {
  char *dir = tmpdir();
  store *st = open_n(dir, N_MIGS, 0);
  store_client *cl = NULL;
  CHECK(st != NULL);
  if (!st) goto out;
  CHECK_OK(store_client_new(st, &cl));
  tjob j;
  tjob_init(&j, record_writer, NULL);
  CHECK_OK(store_submit(cl, &j.job));
  struct pollfd p = {.fd = store_client_fd(cl), .events = POLLIN};
  CHECK_INT(poll(&p, 1, 30000), 1);
  CHECK(p.revents & POLLIN);
  CHECK_INT(j.calls, 0); /* committed, but delivered only by a drain */
  CHECK_INT(store_client_drain(cl), 1);
  CHECK_INT(j.calls, 1);
  CHECK_INT(j.status, 0);
  CHECK(pthread_equal(j.done_thread, pthread_self()));
  CHECK(!pthread_equal(j.done_thread, writer_thread));
  /* The counter was consumed: nothing more to read. */
  CHECK_INT(poll(&p, 1, 0), 0);
  CHECK_INT(store_client_drain(cl), 0);

  /* Corked submits share one commit; store_client_free completes what is
   * still in flight. */
  store_stats s0, s1;
  store_get_stats(st, &s0);
  tjob more[10];
  store_client_cork(cl);
  for (int i = 0; i < 10; i++) {
    tjob_init(&more[i], insert_row, NULL);
    more[i].id = i + 1;
    CHECK_OK(store_submit(cl, &more[i].job));
  }
  store_client_uncork(cl);
  store_client_free(cl);
  store_get_stats(st, &s1);
  CHECK_INT(s1.commits - s0.commits, 1);
  CHECK_INT(s1.max_batch, 10);
  for (int i = 0; i < 10; i++) CHECK_INT(more[i].status, 0);
  store_close(st);
out:
  rmtree(dir);
}

/* ---- acknowledged means durable: kill -9 ----------------------------- */

#define K9_WINDOW 64
#define K9_MAX_JOBS 1000000

typedef struct {
  store_job job;
  int64_t id;
  uint8_t body[200];
} k9_job;

static int k9_pipe = -1;
static int64_t k9_next_id;
static store_client *k9_client;

static int k9_run(store_conn *c, void *arg) {
  k9_job *j = arg;
  store_stmt *s;
  int rc =
      store_conn_prepare(c, "INSERT INTO log(id, who, seq, body) VALUES(?, 0, ?, ?)", &s);
  if (rc) return rc;
  store_bind_int64(s, 1, j->id);
  store_bind_int64(s, 2, j->id);
  store_bind_blob(s, 3, BYTES(j->body, sizeof j->body));
  return store_stmt_run(s);
}

static void k9_done(store_job *job, int status) {
  k9_job *j = (k9_job *)job;
  if (status != 0) _exit(3);
  /* 8-byte writes to a pipe are atomic. */
  if (write(k9_pipe, &j->id, sizeof j->id) != sizeof j->id) _exit(4);
  if (k9_next_id > K9_MAX_JOBS) return;
  j->id = k9_next_id++;
  memset(j->body, (int)(j->id & 0xff), sizeof j->body);
  if (store_submit(k9_client, &j->job)) _exit(5);
}

/* The child: submits jobs forever (K9_WINDOW in flight), reporting each
 * acknowledged id on the pipe, until it is killed. */
static void k9_child(const char *dir, int fd) {
  k9_pipe = fd;
  store *st = open_n(dir, N_MIGS, 0);
  if (!st || store_client_new(st, &k9_client)) _exit(2);
  static k9_job jobs[K9_WINDOW];
  k9_next_id = 1;
  for (int i = 0; i < K9_WINDOW; i++) {
    jobs[i].job = (store_job){.run = k9_run, .done = k9_done, .arg = &jobs[i]};
    jobs[i].id = k9_next_id++;
    if (store_submit(k9_client, &jobs[i].job)) _exit(5);
  }
  for (;;) {
    struct pollfd p = {.fd = store_client_fd(k9_client), .events = POLLIN};
    if (poll(&p, 1, -1) < 0) _exit(6);
    store_client_drain(k9_client);
    if (!store_client_inflight(k9_client)) _exit(0);
  }
}

static void test_kill9_durability(void) {
  unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
  srand(seed);
  for (int round = 0; round < 4; round++) {
    char *dir = tmpdir();
    int fds[2];
    CHECK_INT(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
      close(fds[0]);
      k9_child(dir, fds[1]);
      _exit(7);
    }
    close(fds[1]);
    CHECK(pid > 0);
    size_t target = 1 + (size_t)rand() % 4000, n = 0, cap = 8192;
    int64_t *acked = malloc(cap * sizeof *acked);
    uint8_t buf[4096];
    size_t have = 0;
    bool killed = false;
    for (;;) {
      ssize_t r = read(fds[0], buf + have, sizeof buf - have);
      if (r <= 0) break; /* EOF: the child is gone */
      have += (size_t)r;
      size_t whole = have / 8 * 8;
      for (size_t off = 0; off < whole; off += 8) {
        if (n == cap) acked = realloc(acked, (cap *= 2) * sizeof *acked);
        memcpy(&acked[n++], buf + off, 8);
      }
      memmove(buf, buf + whole, have - whole);
      have -= whole;
      if (!killed && n >= target) {
        kill(pid, SIGKILL);
        killed = true;
      }
    }
    close(fds[0]);
    int ws = 0;
    waitpid(pid, &ws, 0);
    CHECK(killed);
    CHECK(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL);

    store *st = open_n(dir, N_MIGS, 0);
    CHECK(st != NULL);
    if (st) {
      store_conn *c;
      store_stmt *s;
      size_t missing = 0;
      CHECK_OK(store_reader_get(st, &c));
      CHECK_OK(store_conn_prepare(c, "SELECT length(body) FROM log WHERE id=?", &s));
      for (size_t i = 0; i < n; i++) {
        store_bind_int64(s, 1, acked[i]);
        if (store_step(s) != STORE_ROW || store_col_int64(s, 0) != 200) missing++;
        store_stmt_reset(s);
      }
      int64_t rows = query_int(st, "SELECT count(*) FROM log");
      CHECK_INT(missing, 0);
      CHECK(rows >= (int64_t)n);
      fprintf(stderr,
              "  kill -9 round %d (seed %u): %zu acked, %" PRId64 " rows, %zu lost\n",
              round, seed, n, rows, missing);
      store_close(st);
    }
    free(acked);
    rmtree(dir);
  }
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  RUN(test_migrate_fresh);
  RUN(test_migrate_incremental);
  RUN(test_migrate_refuses_newer);
  RUN(test_migrate_failure_rolls_back);
  RUN(test_helpers);
  RUN(test_group_commit_threads);
  RUN(test_failing_job_isolated);
  RUN(test_backpressure);
  RUN(test_readers);
  RUN(test_completion_on_eventfd);
  RUN(test_kill9_durability);
  return test_report("store");
}
