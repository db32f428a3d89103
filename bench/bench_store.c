/* Store benchmark (make bench): durable jobs per second through the writer
 * thread, with 1, 10, 100 and 1000 jobs in flight from one event loop.
 *
 * A job is one INSERT of a 200-byte row into an append-only table keyed by
 * an integer the caller assigns; it counts when its completion (after the
 * fsynced COMMIT, synchronous=FULL) has been delivered on the submitter's
 * eventfd. Beside it, in the same run, raw SQLite on one connection with the
 * same rows and N rows per explicit transaction, as in DESIGN §6 — the
 * ceiling group commit can approach. Every figure is the median of several
 * runs. The directory must be on a real disk (tmpfs makes fsync free).
 *
 * Usage: bench_store [--quick] [--dir DIR] */
#include <errno.h>
#include <poll.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"
#include "tessera/error.h"

#include "bench_util.h"

#define BODY 200
#define RUNS 7

static const store_migration migs[] = {
    {"log", "CREATE TABLE log (id INTEGER PRIMARY KEY, body BLOB NOT NULL)"},
};

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void must(int rc, const char *what) {
  if (rc) {
    fprintf(stderr, "bench_store: %s: %s\n", what, tsr_errname(rc));
    exit(1);
  }
}

static void fill(uint8_t *body, int64_t id) {
  for (int i = 0; i < BODY; i++) body[i] = (uint8_t)(id * 31 + i);
}

/* ---- through the store ------------------------------------------------ */

typedef struct {
  store_job job; /* first: done casts back */
  int64_t id;
  uint8_t body[BODY];
} row_job;

static store_client *client;
static int64_t next_id; /* next id to assign */
static long to_submit;  /* jobs still to submit in this run */
static long failures;

static int insert_run(store_conn *c, void *arg) {
  row_job *j = arg;
  store_stmt *s;
  int rc = store_conn_prepare(c, "INSERT INTO log(id, body) VALUES(?, ?)", &s);
  if (rc) return rc;
  store_bind_int64(s, 1, j->id);
  store_bind_blob(s, 2, BYTES(j->body, sizeof j->body));
  return store_stmt_run(s);
}

static void submit(row_job *j) {
  j->id = next_id++;
  fill(j->body, j->id);
  must(store_submit(client, &j->job), "submit");
  to_submit--;
}

static void insert_done(store_job *job, int status) {
  if (status) failures++;
  if (to_submit > 0) submit((row_job *)job);
}

/* Jobs per second for `total` jobs with `inflight` outstanding. */
static double store_run(long total, int inflight, row_job *jobs) {
  to_submit = total;
  double t0 = now_s();
  for (int i = 0; i < inflight && to_submit > 0; i++) {
    jobs[i].job = (store_job){.run = insert_run, .done = insert_done, .arg = &jobs[i]};
    submit(&jobs[i]);
  }
  while (store_client_inflight(client)) {
    if (store_client_drain(client)) continue;
    struct pollfd p = {.fd = store_client_fd(client), .events = POLLIN};
    poll(&p, 1, -1);
  }
  return (double)total / (now_s() - t0);
}

/* ---- raw SQLite baseline ---------------------------------------------- */

static void sql_must(sqlite3 *db, int rc, const char *what) {
  if (rc != SQLITE_OK && rc != SQLITE_DONE) {
    fprintf(stderr, "bench_store: %s: %s\n", what, sqlite3_errmsg(db));
    exit(1);
  }
}

static double raw_run(sqlite3 *db, sqlite3_stmt *ins, long total, int per_commit,
                      int64_t *id) {
  uint8_t body[BODY];
  double t0 = now_s();
  for (long done = 0; done < total;) {
    sql_must(db, sqlite3_exec(db, "BEGIN", NULL, NULL, NULL), "begin");
    for (int k = 0; k < per_commit && done < total; k++, done++) {
      fill(body, *id);
      sqlite3_bind_int64(ins, 1, (*id)++);
      sqlite3_bind_blob(ins, 2, body, BODY, SQLITE_STATIC);
      sql_must(db, sqlite3_step(ins), "insert");
      sqlite3_reset(ins);
    }
    sql_must(db, sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), "commit");
  }
  return (double)total / (now_s() - t0);
}

static void rm_db(const char *dir) {
  const char *suffix[] = {"", "-wal", "-shm"};
  char p[4096];
  for (int i = 0; i < 3; i++)
    if (snprintf(p, sizeof p, "%s/tessera.db%s", dir, suffix[i]) < (int)sizeof p)
      unlink(p);
}

static sqlite3 *raw_open(const char *dir, sqlite3_stmt **ins) {
  char path[4096];
  if (snprintf(path, sizeof path, "%s/tessera.db", dir) >= (int)sizeof path) exit(2);
  sqlite3 *db;
  sql_must(NULL, sqlite3_open(path, &db), "open");
  sql_must(db,
           sqlite3_exec(db,
                        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                        "CREATE TABLE log (id INTEGER PRIMARY KEY, body BLOB NOT NULL)",
                        NULL, NULL, NULL),
           "setup");
  sql_must(
      db, sqlite3_prepare_v2(db, "INSERT INTO log(id, body) VALUES(?, ?)", -1, ins, NULL),
      "prepare");
  return db;
}

int main(int argc, char **argv) {
  bool quick = false;
  const char *base = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--quick"))
      quick = true;
    else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
      base = argv[++i];
    else {
      fprintf(stderr, "usage: bench_store [--quick] [--dir DIR]\n");
      return 2;
    }
  }
  char tmp[] = "/tmp/tsr-bench-store-XXXXXX";
  if (!base && !(base = mkdtemp(tmp))) {
    perror("mkdtemp");
    return 1;
  }
  /* Store and raw baseline in sibling directories, runs interleaved so a
   * shared disk's changing fsync latency hits both alike. */
  char sdir[2048], rdir[2048];
  if (strlen(base) > 1000) return 2;
  snprintf(sdir, sizeof sdir, "%s/store", base);
  snprintf(rdir, sizeof rdir, "%s/raw", base);
  if ((mkdir(sdir, 0700) && errno != EEXIST) || (mkdir(rdir, 0700) && errno != EEXIST)) {
    perror("mkdir");
    return 1;
  }
  const int levels[] = {1, 10, 100, 1000};
  const long totals[] = {1500, 10000, 40000, 120000};
  long div = quick ? 5 : 1;
  row_job *jobs = calloc(1000, sizeof *jobs);
  if (!jobs) return 1;

  printf("store: durable 200-byte inserts, WAL, synchronous=FULL, dir %s\n", base);
  printf("%-10s %14s %14s %8s %12s\n", "in flight", "store jobs/s", "raw rows/s", "ratio",
         "jobs/commit");
  for (size_t l = 0; l < sizeof levels / sizeof levels[0]; l++) {
    int k = levels[l];
    long total = totals[l] / div;
    double st_rate[RUNS], raw_rate[RUNS];

    rm_db(sdir);
    rm_db(rdir);
    store_opts o = {.migrations = migs, .n_migrations = 1, .queue_max = 4096};
    store *st;
    must(store_open(sdir, &o, &st), "store_open");
    must(store_client_new(st, &client), "client");
    sqlite3_stmt *ins;
    sqlite3 *db = raw_open(rdir, &ins);
    int64_t raw_id = 1;
    next_id = 1;
    failures = 0;
    store_run(total / 10 + 1, k, jobs); /* warm up both */
    raw_run(db, ins, total / 10 + 1, k, &raw_id);
    store_stats s0, s1;
    store_get_stats(st, &s0);
    for (int r = 0; r < RUNS; r++) {
      st_rate[r] = store_run(total, k, jobs);
      raw_rate[r] = raw_run(db, ins, total, k, &raw_id);
    }
    store_get_stats(st, &s1);
    store_client_free(client);
    store_close(st);
    sqlite3_finalize(ins);
    sqlite3_close(db);
    if (failures) {
      fprintf(stderr, "bench_store: %ld jobs failed\n", failures);
      return 1;
    }
    double ms = bench_median(st_rate, RUNS), mr = bench_median(raw_rate, RUNS);
    double per_commit =
        (double)(s1.jobs_ok - s0.jobs_ok) / (double)(s1.commits - s0.commits);
    printf("%-10d %14.0f %14.0f %8.2f %12.1f\n", k, ms, mr, ms / mr, per_commit);
    fflush(stdout);
  }
  rm_db(sdir);
  rm_db(rdir);
  rmdir(sdir);
  rmdir(rdir);
  if (base == tmp) rmdir(base);
  free(jobs);
  return 0;
}
