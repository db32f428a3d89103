/* SQLite backend of store.h: one writer thread with group commit, per-thread
 * readers, statement caches, migrations. See store.h for the contract. */
#include "store/store.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "tessera/error.h"

#define DB_FILE "tessera.db"
/* WAL pages after a commit that wake the checkpointer (SQLite's own
 * automatic checkpoint, which would run in the writer's commit, is off). */
#define CKPT_PAGES 250
#define STORE_CHUNK_BYTES (8 << 20)
#define CKPT_IDLE_MS 1000 /* ... and at least this often while anything is in it */

/* One cached statement. sql is an owned copy of the key; in_used says the
 * statement is on the connection's used list (reset at the job's end). */
typedef struct {
  uint64_t hash;
  char *sql;
  sqlite3_stmt *stmt;
  bool in_used;
} cache_entry;

/* A connection and its statement cache. Touched only by its owning thread
 * (the writer, or one reader thread). Invariant: the cache table is open
 * addressing over heap entries (stable addresses) with n < cap * 3 / 4, cap
 * a power of two or 0; used holds the entries handed out since the last
 * reset_used, each once. */
struct store_conn {
  sqlite3 *db;
  store *st;
  cache_entry **tab;
  size_t cap, n;
  cache_entry **used;
  size_t n_used, cap_used;
  store_conn *next; /* in st->readers, under st->readers_mu */
  store_conn **pprev;
};

/* Waiter of store_exec_sync; done and status are written under st->mu. */
struct store_sync {
  bool done;
  int status;
};

/* Completion queue of one submitting thread. done_head/done_tail are shared
 * with the writer under mu; inflight is touched only by the owning thread. */
struct store_client {
  store *st;
  int efd;
  pthread_mutex_t mu;
  store_job *done_head, *done_tail;
  size_t inflight;
  unsigned corked; /* owner only: > 0 defers waking the writer */
  bool wake;       /* owner only: a corked submit queued work */
};

/* The store. Under mu: the job queue, pending (jobs submitted and not yet
 * committed, including the batch the writer is running), stopping and the
 * waiter flags. The write connection belongs to the writer thread once it
 * runs (to the opener before). */
struct store {
  char *path;
  store_conn *w;
  sqlite3_stmt *begin, *commit, *rollback, *savepoint, *release, *rollback_to;
  pthread_t writer;
  bool writer_started;
  pthread_mutex_t mu;
  pthread_cond_t work_cv, room_cv, sync_cv;
  store_job *q_head, *q_tail;
  size_t pending, queue_max;
  size_t room_waiters;
  bool writer_waiting, stopping;
  unsigned version;
  int busy_ms;
  pthread_key_t reader_key;
  bool reader_key_ok;
  pthread_mutex_t readers_mu;
  store_conn *readers;
  atomic_size_t clients;
  atomic_uint_fast64_t commits, jobs_ok, jobs_err, max_batch;
  /* The checkpointer: its own connection copies the WAL into the database
   * (PASSIVE: it never blocks the writer, whose commits then wait for
   * one WAL fsync only, not for a checkpoint's writes and fsyncs). Under
   * ckpt_mu: ckpt_due, ckpt_stop. */
  pthread_t ckpt;
  bool ckpt_started;
  pthread_mutex_t ckpt_mu;
  pthread_cond_t ckpt_cv;
  bool ckpt_due, ckpt_stop;
  store_conn *ck;
};

/* ---- errors ----------------------------------------------------------- */

int store_map_error(int rc) {
  switch (rc & 0xff) {
  case SQLITE_OK:
  case SQLITE_ROW:
  case SQLITE_DONE: return 0;
  case SQLITE_CONSTRAINT: return TSR_ECONFLICT;
  case SQLITE_NOMEM: return TSR_ENOMEM;
  case SQLITE_TOOBIG: return TSR_ELIMIT;
  case SQLITE_NOTFOUND: return TSR_ENOTFOUND;
  case SQLITE_ERROR:
  case SQLITE_MISUSE:
  case SQLITE_RANGE:
  case SQLITE_MISMATCH:
  case SQLITE_AUTH: return TSR_EINVAL;
  default: return TSR_EIO; /* BUSY, LOCKED, IOERR, FULL, CORRUPT, READONLY... */
  }
}

static void set_err(const store_opts *o, const char *fmt, ...) {
  if (!o || !o->errbuf || !o->errbuf_len) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(o->errbuf, o->errbuf_len, fmt, ap);
  va_end(ap);
}

/* ---- connections and the statement cache ------------------------------ */

static uint64_t hash_sql(const char *s) {
  uint64_t h = 0xcbf29ce484222325u; /* FNV-1a */
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001b3u;
  return h;
}

static void conn_close(store_conn *c) {
  if (!c) return;
  for (size_t i = 0; i < c->cap; i++) {
    if (!c->tab[i]) continue;
    sqlite3_finalize(c->tab[i]->stmt);
    free(c->tab[i]->sql);
    free(c->tab[i]);
  }
  free(c->tab);
  free(c->used);
  sqlite3_close(c->db);
  free(c);
}

static int conn_open(store *st, bool reader, store_conn **out) {
  store_conn *c = calloc(1, sizeof *c);
  if (!c) return TSR_ENOMEM;
  c->st = st;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
  if (!reader) flags |= SQLITE_OPEN_CREATE;
  int rc = sqlite3_open_v2(st->path, &c->db, flags, NULL);
  if (rc != SQLITE_OK) {
    conn_close(c);
    return rc == SQLITE_NOMEM ? TSR_ENOMEM : TSR_EIO;
  }
  sqlite3_extended_result_codes(c->db, 1);
  sqlite3_busy_timeout(c->db, st->busy_ms);
  const char *pragmas = reader ? "PRAGMA query_only=ON;"
                               : "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;";
  rc = sqlite3_exec(c->db, pragmas, NULL, NULL, NULL);
  if (rc != SQLITE_OK) {
    conn_close(c);
    return store_map_error(rc);
  }
  *out = c;
  return 0;
}

static void reset_used(store_conn *c) {
  for (size_t i = 0; i < c->n_used; i++) {
    sqlite3_reset(c->used[i]->stmt);
    c->used[i]->in_used = false;
  }
  c->n_used = 0;
}

static int cache_grow(store_conn *c) {
  size_t ncap = c->cap ? c->cap * 2 : 32;
  cache_entry **nt = calloc(ncap, sizeof *nt);
  if (!nt) return TSR_ENOMEM;
  for (size_t i = 0; i < c->cap; i++) {
    if (!c->tab[i]) continue;
    size_t j = c->tab[i]->hash & (ncap - 1);
    while (nt[j]) j = (j + 1) & (ncap - 1);
    nt[j] = c->tab[i];
  }
  free(c->tab);
  c->tab = nt;
  c->cap = ncap;
  return 0;
}

static int mark_used(store_conn *c, cache_entry *e) {
  if (e->in_used) return 0;
  if (c->n_used == c->cap_used) {
    size_t ncap = c->cap_used ? c->cap_used * 2 : 16;
    cache_entry **nu = realloc(c->used, ncap * sizeof *nu);
    if (!nu) return TSR_ENOMEM;
    c->used = nu;
    c->cap_used = ncap;
  }
  c->used[c->n_used++] = e;
  e->in_used = true;
  return 0;
}

static bool only_space(const char *s) {
  for (; *s; s++)
    if (*s != ' ' && *s != '\n' && *s != '\t' && *s != '\r' && *s != ';') return false;
  return true;
}

int store_conn_prepare(store_conn *c, const char *sql, store_stmt **out) {
  if (!c || !sql || !out) return TSR_EINVAL;
  uint64_t h = hash_sql(sql);
  size_t i = 0;
  if (c->cap) {
    for (i = h & (c->cap - 1); c->tab[i]; i = (i + 1) & (c->cap - 1)) {
      cache_entry *e = c->tab[i];
      if (e->hash == h && strcmp(e->sql, sql) == 0) {
        int rc = mark_used(c, e);
        if (rc) return rc;
        sqlite3_reset(e->stmt);
        sqlite3_clear_bindings(e->stmt);
        *out = (store_stmt *)e->stmt;
        return 0;
      }
    }
  }
  sqlite3_stmt *stmt = NULL;
  const char *tail = NULL;
  int rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, &tail);
  if (rc != SQLITE_OK) return store_map_error(rc);
  if (!stmt || (tail && !only_space(tail))) { /* empty, or several statements */
    sqlite3_finalize(stmt);
    return TSR_EINVAL;
  }
  cache_entry *e = malloc(sizeof *e);
  char *key = strdup(sql);
  if (!e || !key || ((c->n + 1) * 4 > c->cap * 3 && cache_grow(c))) {
    free(e);
    free(key);
    sqlite3_finalize(stmt);
    return TSR_ENOMEM;
  }
  *e = (cache_entry){h, key, stmt, false};
  for (i = h & (c->cap - 1); c->tab[i]; i = (i + 1) & (c->cap - 1)) {
  }
  c->tab[i] = e;
  c->n++;
  rc = mark_used(c, e);
  if (rc) return rc; /* stays cached; nothing to undo */
  *out = (store_stmt *)stmt;
  return 0;
}

int store_conn_exec(store_conn *c, const char *sql) {
  if (!c || !sql) return TSR_EINVAL;
  return store_map_error(sqlite3_exec(c->db, sql, NULL, NULL, NULL));
}

int64_t store_conn_changes(store_conn *c) { return sqlite3_changes64(c->db); }
int64_t store_conn_last_rowid(store_conn *c) { return sqlite3_last_insert_rowid(c->db); }
const char *store_conn_errmsg(store_conn *c) { return sqlite3_errmsg(c->db); }
struct sqlite3 *store_conn_sqlite(store_conn *c) {
  return c->db;
}

/* ---- statement helpers ------------------------------------------------ */

#define RAW(s) ((sqlite3_stmt *)(s))

int store_bind_int64(store_stmt *s, int idx, int64_t v) {
  return store_map_error(sqlite3_bind_int64(RAW(s), idx, v));
}

int store_bind_text(store_stmt *s, int idx, const char *p, size_t len) {
  if (len > INT_MAX) return TSR_ELIMIT;
  if (!p && len) return TSR_EINVAL;
  return store_map_error(
      sqlite3_bind_text(RAW(s), idx, p ? p : "", (int)len, SQLITE_STATIC));
}

int store_bind_str(store_stmt *s, int idx, const char *str) {
  if (!str) return TSR_EINVAL;
  return store_bind_text(s, idx, str, strlen(str));
}

int store_bind_blob(store_stmt *s, int idx, bytes_t v) {
  if (v.len > INT_MAX) return TSR_ELIMIT;
  if (!v.ptr && v.len) return TSR_EINVAL;
  if (!v.len) /* a NULL pointer would bind SQL NULL, not an empty blob */
    return store_map_error(sqlite3_bind_zeroblob(RAW(s), idx, 0));
  return store_map_error(
      sqlite3_bind_blob(RAW(s), idx, v.ptr, (int)v.len, SQLITE_STATIC));
}

int store_bind_null(store_stmt *s, int idx) {
  return store_map_error(sqlite3_bind_null(RAW(s), idx));
}

int store_step(store_stmt *s) {
  int rc = sqlite3_step(RAW(s));
  if (rc == SQLITE_ROW) return STORE_ROW;
  if (rc == SQLITE_DONE) return STORE_DONE;
  return store_map_error(rc);
}

int store_stmt_run(store_stmt *s) {
  int rc;
  while ((rc = store_step(s)) == STORE_ROW) {
  }
  sqlite3_reset(RAW(s));
  return rc;
}

void store_stmt_reset(store_stmt *s) { sqlite3_reset(RAW(s)); }

int store_col_is_null(store_stmt *s, int col) {
  return sqlite3_column_type(RAW(s), col) == SQLITE_NULL;
}

int64_t store_col_int64(store_stmt *s, int col) {
  return sqlite3_column_int64(RAW(s), col);
}

bytes_t store_col_blob(store_stmt *s, int col) {
  const void *p = sqlite3_column_blob(RAW(s), col);
  int n = sqlite3_column_bytes(RAW(s), col);
  return p && n > 0 ? BYTES(p, (size_t)n) : BYTES_NONE;
}

const char *store_col_text(store_stmt *s, int col, size_t *len) {
  const unsigned char *p = sqlite3_column_text(RAW(s), col);
  int n = sqlite3_column_bytes(RAW(s), col);
  if (len) *len = p ? (size_t)n : 0;
  return p ? (const char *)p : "";
}

/* ---- migrations ------------------------------------------------------- */

static int step_once(sqlite3_stmt *s) {
  int rc = sqlite3_step(s);
  sqlite3_reset(s);
  return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : store_map_error(rc);
}

/* Checks the recorded migrations against the list; sets *have. */
static int read_versions(store *st, const store_opts *o, unsigned *have) {
  sqlite3_stmt *s = NULL;
  int rc = sqlite3_prepare_v2(st->w->db,
                              "SELECT version, name FROM schema_version ORDER BY version",
                              -1, &s, NULL);
  if (rc != SQLITE_OK) return store_map_error(rc);
  unsigned n = 0;
  int err = 0;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    int64_t v = sqlite3_column_int64(s, 0);
    const char *name = (const char *)sqlite3_column_text(s, 1);
    if (v != (int64_t)n + 1) {
      set_err(o, "schema_version: gap before version %" PRId64, v);
      err = TSR_ESTATE;
      break;
    }
    n++;
    if (n > o->n_migrations) continue;
    const char *want = o->migrations[n - 1].name ? o->migrations[n - 1].name : "";
    if (strcmp(name ? name : "", want) != 0) {
      set_err(o, "schema_version %u is '%s' on disk but '%s' in this build", n,
              name ? name : "", want);
      err = TSR_ESTATE;
      break;
    }
  }
  if (!err && rc != SQLITE_ROW && rc != SQLITE_DONE) err = store_map_error(rc);
  sqlite3_finalize(s);
  if (err) return err;
  if (n > o->n_migrations) {
    set_err(o,
            "database schema version %u is newer than this build knows (%zu); "
            "upgrade tesserad",
            n, o->n_migrations);
    return TSR_EUNSUPPORTED;
  }
  *have = n;
  return 0;
}

static int migrate(store *st, const store_opts *o) {
  sqlite3 *db = st->w->db;
  int rc = sqlite3_exec(db,
                        "CREATE TABLE IF NOT EXISTS schema_version ("
                        " version INTEGER PRIMARY KEY, name TEXT NOT NULL)",
                        NULL, NULL, NULL);
  if (rc != SQLITE_OK) {
    set_err(o, "schema_version: %s", sqlite3_errmsg(db));
    return store_map_error(rc);
  }
  unsigned have = 0;
  for (;;) {
    /* Read inside the write lock so a concurrent opener cannot apply the
     * same migration twice. */
    if ((rc = step_once(st->begin)) != 0) {
      set_err(o, "begin: %s", sqlite3_errmsg(db));
      return rc;
    }
    int err = read_versions(st, o, &have);
    if (err || have == o->n_migrations) {
      step_once(err ? st->rollback : st->commit);
      if (!err) st->version = have;
      return err;
    }
    const store_migration *m = &o->migrations[have];
    sqlite3_stmt *ins = NULL;
    rc = sqlite3_exec(db, m->sql ? m->sql : "", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
      set_err(o, "migration %u '%s': %s", have + 1, m->name ? m->name : "",
              sqlite3_errmsg(db));
    } else {
      rc = sqlite3_prepare_v2(db, "INSERT INTO schema_version(version, name) VALUES(?,?)",
                              -1, &ins, NULL);
      if (rc == SQLITE_OK) {
        sqlite3_bind_int64(ins, 1, have + 1);
        sqlite3_bind_text(ins, 2, m->name ? m->name : "", -1, SQLITE_STATIC);
        rc = sqlite3_step(ins);
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
      }
      sqlite3_finalize(ins);
      if (rc != SQLITE_OK) set_err(o, "schema_version: %s", sqlite3_errmsg(db));
    }
    if (rc == SQLITE_OK && (err = step_once(st->commit)) != 0) {
      set_err(o, "commit of migration %u: %s", have + 1, sqlite3_errmsg(db));
      rc = SQLITE_IOERR;
    }
    if (rc != SQLITE_OK) {
      if (!sqlite3_get_autocommit(db)) step_once(st->rollback);
      return err ? err : store_map_error(rc);
    }
  }
}

/* ---- writer ----------------------------------------------------------- */

/* Runs one job in its savepoint and leaves its status in the job. Returns
 * false when the transaction itself was lost (SQLite rolled it back). */
static bool run_job(store *st, store_job *j) {
  store_conn *w = st->w;
  int rc = step_once(st->savepoint);
  if (rc) {
    j->status_ = rc;
    return !sqlite3_get_autocommit(w->db);
  }
  rc = j->run(w, j->arg);
  reset_used(w);               /* a half-stepped statement must not outlive its job */
  if (rc > 0) rc = TSR_EINVAL; /* only 0 and negative codes are statuses */
  j->status_ = rc;
  if (sqlite3_get_autocommit(w->db)) return false;
  if (rc) step_once(st->rollback_to);
  return step_once(st->release) == 0 || !sqlite3_get_autocommit(w->db);
}

/* Runs a batch in one transaction and commits it. Every job gets a status. */
static void run_batch(store *st, store_job *batch, size_t n) {
  uint64_t ok = 0;
  int rc = step_once(st->begin);
  if (rc == 0) {
    store_job *j = batch;
    for (; j; j = j->next_)
      if (!run_job(st, j)) break;
    if (j) { /* transaction lost: nothing of this batch is kept */
      rc = j->status_ ? j->status_ : TSR_EIO;
    } else {
      rc = step_once(st->commit);
    }
    if (rc && !sqlite3_get_autocommit(st->w->db)) step_once(st->rollback);
  }
  for (store_job *j = batch; j; j = j->next_) {
    if (rc && !j->status_) j->status_ = TSR_EIO; /* its changes were not kept */
    ok += j->status_ == 0;
  }
  if (rc == 0) atomic_fetch_add(&st->commits, 1);
  atomic_fetch_add(&st->jobs_ok, ok);
  atomic_fetch_add(&st->jobs_err, n - ok);
  uint64_t mb = atomic_load(&st->max_batch);
  if (n > mb) atomic_store(&st->max_batch, n); /* single writer */
}

/* Hands a chain of completed jobs (all of one client, in order) over. */
static void deliver(store_client *cl, store_job *head, store_job *tail) {
  tail->next_ = NULL;
  pthread_mutex_lock(&cl->mu);
  bool was_empty = cl->done_head == NULL;
  if (was_empty)
    cl->done_head = head;
  else
    cl->done_tail->next_ = head;
  cl->done_tail = tail;
  /* Written under mu: once it is released the client may drain, free
   * itself and close efd (store_client_free takes mu before closing). */
  if (was_empty) {
    uint64_t one = 1;
    ssize_t w;
    do w = write(cl->efd, &one, sizeof one);
    while (w < 0 && errno == EINTR);
    /* EAGAIN: the counter is already non-zero, the client will wake. */
  }
  pthread_mutex_unlock(&cl->mu);
}

static void *writer_main(void *arg) {
  store *st = arg;
  for (;;) {
    pthread_mutex_lock(&st->mu);
    while (!st->q_head && !st->stopping) {
      st->writer_waiting = true;
      pthread_cond_wait(&st->work_cv, &st->mu);
      st->writer_waiting = false;
    }
    store_job *batch = st->q_head;
    st->q_head = st->q_tail = NULL;
    pthread_mutex_unlock(&st->mu);
    if (!batch) break; /* stopping and drained */

    size_t n = 0;
    for (store_job *j = batch; j; j = j->next_) n++;
    run_batch(st, batch, n);

    /* Settle: sync waiters under mu, client jobs collected in order. */
    store_job *chead = NULL, *ctail = NULL;
    bool any_sync = false;
    pthread_mutex_lock(&st->mu);
    st->pending -= n;
    for (store_job *j = batch, *next; j; j = next) {
      next = j->next_;
      if (j->sync_) {
        j->sync_->status = j->status_;
        j->sync_->done = true; /* j may vanish once mu is released */
        any_sync = true;
      } else {
        j->next_ = NULL;
        if (ctail)
          ctail->next_ = j;
        else
          chead = j;
        ctail = j;
      }
    }
    if (any_sync) pthread_cond_broadcast(&st->sync_cv);
    if (st->room_waiters) pthread_cond_broadcast(&st->room_cv);
    pthread_mutex_unlock(&st->mu);

    /* Completions go out after the commit, grouped per run of one client. */
    while (chead) {
      store_job *end = chead;
      while (end->next_ && end->next_->client_ == chead->client_) end = end->next_;
      store_job *rest = end->next_;
      deliver(chead->client_, chead, end);
      chead = rest;
    }
  }
  return NULL;
}

/* Appends a job; caller holds st->mu and has checked room. */
static void enqueue(store *st, store_job *job, bool wake) {
  job->next_ = NULL;
  if (st->q_tail)
    st->q_tail->next_ = job;
  else
    st->q_head = job;
  st->q_tail = job;
  st->pending++;
  if (wake && st->writer_waiting) pthread_cond_signal(&st->work_cv);
}

int store_submit(store_client *cl, store_job *job) {
  if (!cl || !job || !job->run) return TSR_EINVAL;
  store *st = cl->st;
  pthread_mutex_lock(&st->mu);
  int rc = 0;
  if (st->stopping)
    rc = TSR_ESTATE;
  else if (st->pending >= st->queue_max)
    rc = TSR_ELIMIT;
  if (rc) {
    pthread_mutex_unlock(&st->mu);
    return rc;
  }
  job->client_ = cl;
  job->sync_ = NULL;
  job->status_ = 0;
  enqueue(st, job, !cl->corked);
  pthread_mutex_unlock(&st->mu);
  cl->inflight++;
  if (cl->corked) cl->wake = true;
  return 0;
}

void store_client_cork(store_client *cl) { cl->corked++; }

void store_client_uncork(store_client *cl) {
  if (!cl->corked || --cl->corked || !cl->wake) return;
  cl->wake = false;
  store *st = cl->st;
  pthread_mutex_lock(&st->mu);
  if (st->writer_waiting && st->q_head) pthread_cond_signal(&st->work_cv);
  pthread_mutex_unlock(&st->mu);
}

int store_exec_sync(store *st, store_run_fn run, void *arg) {
  if (!st || !run) return TSR_EINVAL;
  if (st->writer_started && pthread_equal(pthread_self(), st->writer)) return TSR_ESTATE;
  struct store_sync sync = {false, 0};
  store_job job = {.run = run, .arg = arg, .sync_ = &sync};
  pthread_mutex_lock(&st->mu);
  while (st->pending >= st->queue_max && !st->stopping) {
    st->room_waiters++;
    pthread_cond_wait(&st->room_cv, &st->mu);
    st->room_waiters--;
  }
  if (st->stopping) {
    pthread_mutex_unlock(&st->mu);
    return TSR_ESTATE;
  }
  enqueue(st, &job, true);
  while (!sync.done) pthread_cond_wait(&st->sync_cv, &st->mu);
  pthread_mutex_unlock(&st->mu);
  return sync.status;
}

/* ---- clients ---------------------------------------------------------- */

int store_client_new(store *st, store_client **out) {
  if (!st || !out) return TSR_EINVAL;
  store_client *cl = calloc(1, sizeof *cl);
  if (!cl) return TSR_ENOMEM;
  cl->st = st;
  cl->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (cl->efd < 0) {
    free(cl);
    return TSR_EIO;
  }
  pthread_mutex_init(&cl->mu, NULL);
  atomic_fetch_add(&st->clients, 1);
  *out = cl;
  return 0;
}

int store_client_fd(const store_client *cl) { return cl->efd; }
size_t store_client_inflight(const store_client *cl) { return cl->inflight; }

size_t store_client_drain(store_client *cl) {
  uint64_t v;
  ssize_t r;
  do r = read(cl->efd, &v, sizeof v);
  while (r < 0 && errno == EINTR);
  pthread_mutex_lock(&cl->mu);
  store_job *j = cl->done_head;
  cl->done_head = cl->done_tail = NULL;
  pthread_mutex_unlock(&cl->mu);
  size_t n = 0;
  /* Jobs resubmitted by the callbacks reach the writer as one batch. */
  store_client_cork(cl);
  for (store_job *next; j; j = next) {
    next = j->next_; /* done may free or resubmit j */
    cl->inflight--;
    n++;
    if (j->done) j->done(j, j->status_);
  }
  store_client_uncork(cl);
  return n;
}

void store_client_free(store_client *cl) {
  if (!cl) return;
  while (cl->inflight) {
    if (store_client_drain(cl)) continue;
    struct pollfd p = {.fd = cl->efd, .events = POLLIN};
    poll(&p, 1, -1);
  }
  /* The writer may still be inside deliver() for our last jobs. */
  pthread_mutex_lock(&cl->mu);
  pthread_mutex_unlock(&cl->mu);
  atomic_fetch_sub(&cl->st->clients, 1);
  close(cl->efd);
  pthread_mutex_destroy(&cl->mu);
  free(cl);
}

/* ---- readers ---------------------------------------------------------- */

static void reader_unlink(store_conn *c) {
  *c->pprev = c->next;
  if (c->next) c->next->pprev = c->pprev;
}

/* Thread-exit destructor of a reader connection. */
static void reader_destroy(void *p) {
  store_conn *c = p;
  pthread_mutex_lock(&c->st->readers_mu);
  reader_unlink(c);
  pthread_mutex_unlock(&c->st->readers_mu);
  conn_close(c);
}

int store_reader_get(store *st, store_conn **out) {
  if (!st || !out) return TSR_EINVAL;
  if (!st->reader_key_ok) return TSR_ESTATE;
  store_conn *c = pthread_getspecific(st->reader_key);
  if (!c) {
    int rc = conn_open(st, true, &c);
    if (rc) return rc;
    if (pthread_setspecific(st->reader_key, c) != 0) {
      conn_close(c);
      return TSR_ENOMEM;
    }
    pthread_mutex_lock(&st->readers_mu);
    c->next = st->readers;
    if (c->next) c->next->pprev = &c->next;
    c->pprev = &st->readers;
    st->readers = c;
    pthread_mutex_unlock(&st->readers_mu);
  }
  *out = c;
  return 0;
}

int store_read_begin(store_conn *c) { return store_conn_exec(c, "BEGIN"); }

int store_read_end(store_conn *c) {
  reset_used(c);
  if (sqlite3_get_autocommit(c->db)) return 0;
  return store_conn_exec(c, "COMMIT");
}

/* ---- open / close ----------------------------------------------------- */

static int prepare_raw(store *st, const char *sql, sqlite3_stmt **s) {
  int rc = sqlite3_prepare_v3(st->w->db, sql, -1, SQLITE_PREPARE_PERSISTENT, s, NULL);
  return store_map_error(rc);
}

/* Stops the checkpointer (the last connection to close checkpoints the
 * rest). */
static void ckpt_stop(store *st) {
  if (!st->ckpt_started) return;
  pthread_mutex_lock(&st->ckpt_mu);
  st->ckpt_stop = true;
  pthread_cond_signal(&st->ckpt_cv);
  pthread_mutex_unlock(&st->ckpt_mu);
  pthread_join(st->ckpt, NULL);
  st->ckpt_started = false;
}

static void free_store(store *st) {
  sqlite3_stmt *raws[] = {st->begin,     st->commit,  st->rollback,
                          st->savepoint, st->release, st->rollback_to};
  for (size_t i = 0; i < sizeof raws / sizeof raws[0]; i++) sqlite3_finalize(raws[i]);
  if (st->reader_key_ok) pthread_key_delete(st->reader_key);
  while (st->readers) {
    store_conn *c = st->readers;
    reader_unlink(c);
    conn_close(c);
  }
  ckpt_stop(st);
  conn_close(st->ck);
  conn_close(st->w);
  pthread_mutex_destroy(&st->ckpt_mu);
  pthread_cond_destroy(&st->ckpt_cv);
  pthread_mutex_destroy(&st->mu);
  pthread_mutex_destroy(&st->readers_mu);
  pthread_cond_destroy(&st->work_cv);
  pthread_cond_destroy(&st->room_cv);
  pthread_cond_destroy(&st->sync_cv);
  free(st->path);
  free(st);
}

/* After each commit of the writer: wakes the checkpointer once the WAL
 * holds CKPT_PAGES pages. */
static int wal_hook(void *arg, sqlite3 *db, const char *name, int pages) {
  (void)db;
  (void)name;
  store *st = arg;
  if (pages >= CKPT_PAGES) {
    pthread_mutex_lock(&st->ckpt_mu);
    if (!st->ckpt_due) {
      st->ckpt_due = true;
      pthread_cond_signal(&st->ckpt_cv);
    }
    pthread_mutex_unlock(&st->ckpt_mu);
  }
  return SQLITE_OK;
}

static void *ckpt_main(void *arg) {
  store *st = arg;
  pthread_mutex_lock(&st->ckpt_mu);
  while (!st->ckpt_stop) {
    if (!st->ckpt_due) {
      struct timespec until;
      clock_gettime(CLOCK_REALTIME, &until);
      until.tv_sec += CKPT_IDLE_MS / 1000;
      pthread_cond_timedwait(&st->ckpt_cv, &st->ckpt_mu, &until);
    }
    if (st->ckpt_stop) break;
    st->ckpt_due = false;
    pthread_mutex_unlock(&st->ckpt_mu);
    /* Busy (another process's checkpoint, a reader on an old snapshot at
     * the WAL's end): tried again at the next wake. */
    int log = 0, done = 0;
    sqlite3_wal_checkpoint_v2(st->ck->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
    pthread_mutex_lock(&st->ckpt_mu);
  }
  pthread_mutex_unlock(&st->ckpt_mu);
  return NULL;
}

int store_open(const char *dir, const store_opts *opts, store **out) {
  store_opts none = {0};
  const store_opts *o = opts ? opts : &none;
  if (!dir || !out || (o->n_migrations && !o->migrations)) {
    set_err(o, "store_open: invalid argument");
    return TSR_EINVAL;
  }
  store *st = calloc(1, sizeof *st);
  size_t plen = strlen(dir) + sizeof "/" DB_FILE;
  if (!st || !(st->path = malloc(plen))) {
    free(st);
    return TSR_ENOMEM;
  }
  snprintf(st->path, plen, "%s/" DB_FILE, dir);
  st->queue_max = o->queue_max ? o->queue_max : STORE_QUEUE_DEFAULT;
  st->busy_ms = o->busy_timeout_ms > 0 ? o->busy_timeout_ms : STORE_BUSY_TIMEOUT_DEFAULT;
  pthread_mutex_init(&st->mu, NULL);
  pthread_mutex_init(&st->readers_mu, NULL);
  pthread_cond_init(&st->work_cv, NULL);
  pthread_cond_init(&st->room_cv, NULL);
  pthread_cond_init(&st->sync_cv, NULL);
  pthread_mutex_init(&st->ckpt_mu, NULL);
  pthread_cond_init(&st->ckpt_cv, NULL);

  int rc = conn_open(st, false, &st->w);
  if (rc) {
    set_err(o, "cannot open %s: %s", st->path, tsr_strerror(rc));
    goto fail;
  }
  sqlite3_stmt *jm = NULL;
  rc = prepare_raw(st, "PRAGMA journal_mode=WAL", &jm);
  if (!rc) {
    int r = sqlite3_step(jm);
    const char *mode = r == SQLITE_ROW ? (const char *)sqlite3_column_text(jm, 0) : NULL;
    rc = mode && strcmp(mode, "wal") == 0 ? 0
         : r == SQLITE_ROW                ? TSR_EIO
                                          : store_map_error(r);
    sqlite3_finalize(jm);
  }
  if (rc) {
    set_err(o, "cannot use WAL on %s: %s", st->path, sqlite3_errmsg(st->w->db));
    goto fail;
  }
  if ((rc = prepare_raw(st, "BEGIN IMMEDIATE", &st->begin)) ||
      (rc = prepare_raw(st, "COMMIT", &st->commit)) ||
      (rc = prepare_raw(st, "ROLLBACK", &st->rollback)) ||
      (rc = prepare_raw(st, "SAVEPOINT job", &st->savepoint)) ||
      (rc = prepare_raw(st, "RELEASE job", &st->release)) ||
      (rc = prepare_raw(st, "ROLLBACK TO job", &st->rollback_to))) {
    set_err(o, "prepare: %s", sqlite3_errmsg(st->w->db));
    goto fail;
  }
  if ((rc = migrate(st, o))) goto fail;
  /* Checkpoints on their own thread and connection (ckpt_main). */
  if ((rc = conn_open(st, false, &st->ck)) != 0 ||
      sqlite3_exec(st->w->db, "PRAGMA wal_autocheckpoint=0", NULL, NULL, NULL) !=
          SQLITE_OK) {
    set_err(o, "cannot open the checkpoint connection to %s", st->path);
    rc = rc ? rc : TSR_EIO;
    goto fail;
  }
  sqlite3_wal_hook(st->w->db, wal_hook, st);
  /* The database file grows in chunks: an append that extends the file
   * makes the next fsync commit the file system's metadata too, and that
   * is what makes commits slow while a store grows. */
  int chunk = STORE_CHUNK_BYTES;
  sqlite3_file_control(st->w->db, "main", SQLITE_FCNTL_CHUNK_SIZE, &chunk);
  sqlite3_file_control(st->ck->db, "main", SQLITE_FCNTL_CHUNK_SIZE, &chunk);
  if (pthread_create(&st->ckpt, NULL, ckpt_main, st) != 0) {
    set_err(o, "cannot start the checkpoint thread");
    rc = TSR_ENOMEM;
    goto fail;
  }
  st->ckpt_started = true;
  if (pthread_key_create(&st->reader_key, reader_destroy) != 0) {
    rc = TSR_ENOMEM;
    goto fail;
  }
  st->reader_key_ok = true;
  if (pthread_create(&st->writer, NULL, writer_main, st) != 0) {
    set_err(o, "cannot start the writer thread");
    rc = TSR_ENOMEM;
    goto fail;
  }
  st->writer_started = true;
  *out = st;
  return 0;
fail:
  free_store(st);
  return rc;
}

void store_close(store *st) {
  if (!st) return;
  pthread_mutex_lock(&st->mu);
  st->stopping = true;
  pthread_cond_broadcast(&st->work_cv);
  pthread_cond_broadcast(&st->room_cv);
  pthread_mutex_unlock(&st->mu);
  pthread_join(st->writer, NULL);
  free_store(st);
}

unsigned store_schema_version(const store *st) { return st->version; }

void store_get_stats(store *st, store_stats *out) {
  out->commits = atomic_load(&st->commits);
  out->jobs_ok = atomic_load(&st->jobs_ok);
  out->jobs_err = atomic_load(&st->jobs_err);
  out->max_batch = atomic_load(&st->max_batch);
}
