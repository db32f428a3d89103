/* tessera store: the storage engine every server module writes through.
 *
 * One writer, many readers. Writes are jobs: a callback that runs SQL on the
 * single write connection. A writer thread takes every queued job, runs them
 * in one transaction (group commit) with each job inside its own savepoint,
 * commits (fsync, synchronous=FULL) and only then completes them. So a job's
 * completion with status 0 means its changes are durable (DESIGN §4
 * invariant 1). A failing job is rolled back alone and reports its own error;
 * the other jobs of its batch commit. Reads run on per-thread read
 * connections and never wait for the writer (WAL snapshots).
 *
 * Backend neutrality. A PostgreSQL backend is to implement this same header
 * later, so the parts domain code relies on are kept neutral:
 *   - neutral: store_open/close, migrations as an ordered list of plain SQL
 *     scripts, store_client, store_job, store_submit, store_exec_sync, the
 *     completion rules, store_conn_prepare (statements keyed by SQL text),
 *     the bind/step/column helpers, store_read_begin/end, errors as TSR_E*.
 *     SQL given to them must be plain SQL both engines run: explicit primary
 *     keys, '?' parameters (the PostgreSQL backend rewrites them to $n), no
 *     triggers as logic, no AUTOINCREMENT or server sequences on hot tables,
 *     RETURNING instead of last-insert-rowid.
 *   - SQLite-specific: the file <dir>/tessera.db, WAL and the PRAGMAs set by
 *     store_open, store_conn_sqlite (escape hatch; avoid in domain code),
 *     store_conn_last_rowid, and the busy timeout option.
 *
 * Threads:
 *   - store_open, store_close: one controlling thread; store_close only after
 *     every client is freed and no other thread uses the store.
 *   - store_client_*: a client belongs to the thread that created it (its
 *     event loop). store_submit and store_client_drain only on that thread;
 *     completion callbacks run there, inside store_client_drain, never on
 *     the writer thread.
 *   - store_exec_sync: any thread except the writer (never from inside a job).
 *   - store_reader_get: any thread; the connection it returns belongs to the
 *     calling thread and must not be handed to another one.
 *   - job run callbacks execute on the writer thread with the write
 *     connection; they must not block on anything but SQL, and must not call
 *     store_exec_sync or touch a reader.
 *   - store_conn_* / store_stmt_* helpers: only on the thread that owns the
 *     connection (the writer inside a job, or the reader's thread).
 *
 * Ownership: the store owns its connections, statements and threads. Jobs
 * are caller storage (embed a store_job in a request struct, libuv style):
 * it must stay valid and untouched from store_submit until its completion
 * callback has been called. Strings and blobs bound to a statement are not
 * copied: they must stay valid until the statement is stepped to the end or
 * reset. Column views point into the statement and are valid until the next
 * step or reset. */
#ifndef TSR_STORE_STORE_H
#define TSR_STORE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "common/bytes.h"

typedef struct store store;
typedef struct store_conn store_conn;
typedef struct store_client store_client;
typedef struct store_job store_job;
typedef struct store_stmt store_stmt;

/* One schema migration. Migration i of the array (0-based) brings the
 * database from version i to version i + 1. The list is owned by the domain
 * layer and only ever appended to; names are recorded and compared on open,
 * so a reordered or edited list is refused. sql may hold several statements
 * but no BEGIN/COMMIT: store_open runs each migration in its own transaction
 * together with its schema_version row. */
typedef struct {
  const char *name;
  const char *sql;
} store_migration;

#define STORE_QUEUE_DEFAULT 4096
#define STORE_BUSY_TIMEOUT_DEFAULT 5000

/* Options of store_open. Zeroed fields take the defaults. */
typedef struct {
  const store_migration *migrations; /* ordered; may be NULL if n is 0 */
  size_t n_migrations;
  /* Most jobs submitted and not yet committed; store_submit returns
   * TSR_ELIMIT beyond it. Default STORE_QUEUE_DEFAULT. */
  size_t queue_max;
  int busy_timeout_ms; /* SQLite only; default STORE_BUSY_TIMEOUT_DEFAULT */
  /* Optional: on failure store_open writes a one-line reason here. */
  char *errbuf;
  size_t errbuf_len;
} store_opts;

/* Creates or opens <dir>/tessera.db (dir must exist), applies the
 * migrations the database lacks (each in its own transaction, recorded in
 * table schema_version) and starts the writer thread. Refuses with
 * TSR_EUNSUPPORTED a database whose version is newer than the migration
 * list, and with TSR_ESTATE one whose recorded migration names differ.
 * Returns 0 and *out, or TSR_EINVAL / TSR_EIO / TSR_ENOMEM / the error of a
 * failing migration (nothing of that migration is applied). */
int store_open(const char *dir, const store_opts *opts, store **out);

/* Stops accepting jobs, lets the writer commit and complete everything
 * queued, joins it and closes every connection. Completions of jobs from
 * clients still go to their queues, so free clients first. NULL is a no-op. */
void store_close(store *st);

/* Schema version of the open database (= n_migrations after store_open). */
unsigned store_schema_version(const store *st);

/* Counters for tests and metrics; read at any time from any thread. */
typedef struct {
  uint64_t commits;   /* transactions committed by the writer */
  uint64_t jobs_ok;   /* jobs committed */
  uint64_t jobs_err;  /* jobs rolled back (their own error or a failed commit) */
  uint64_t max_batch; /* most jobs in one transaction */
} store_stats;
void store_get_stats(store *st, store_stats *out);

/* ---- jobs and completion ---------------------------------------------- */

/* Runs on the writer thread, inside a transaction and a savepoint of its
 * own. Returns 0 to keep its changes, or a negative TSR_E* code to have them
 * rolled back; that code becomes the job's status. It must not run BEGIN,
 * COMMIT, ROLLBACK or SAVEPOINT itself (the batch owns the transaction), and
 * statements it leaves half-stepped are reset when it returns. */
typedef int (*store_run_fn)(store_conn *c, void *arg);
/* Runs on the submitter's thread once the job is settled: status 0 means
 * committed and durable; otherwise the job's error, or TSR_EIO when the
 * whole transaction failed to commit. The job may be freed or reused here. */
typedef void (*store_done_fn)(store_job *job, int status);

/* A job. Set run, done and arg; the fields after them are the store's. */
struct store_job {
  store_run_fn run;
  store_done_fn done; /* may be NULL */
  void *arg;
  /* private */
  store_client *client_;
  struct store_sync *sync_;
  store_job *next_;
  int status_;
};

/* Creates a completion client bound to the calling thread, with its own
 * eventfd. Returns 0 / TSR_ENOMEM / TSR_EIO. */
int store_client_new(store *st, store_client **out);

/* Completes every job still in flight (waiting for the writer and calling
 * their done callbacks on this thread), closes the eventfd and frees the
 * client. NULL is a no-op. */
void store_client_free(store_client *cl);

/* The client's eventfd (non-blocking): readable when completions are
 * waiting. Register it in the loop's epoll set; do not read or close it. */
int store_client_fd(const store_client *cl);

/* Jobs submitted by this client and not yet delivered by a drain. */
size_t store_client_inflight(const store_client *cl);

/* Calls the done callback of every completed job of this client, in
 * submission order, on the calling thread. Returns how many ran. Jobs the
 * callbacks submit are corked until the drain ends. */
size_t store_client_drain(store_client *cl);

/* Cork: jobs submitted until the matching uncork are queued without waking
 * the writer, so a loop iteration's jobs share one commit instead of the
 * first one committing alone. Nests. Uncork wakes the writer if needed.
 * Keep corks short (one loop iteration): corked jobs wait. */
void store_client_cork(store_client *cl);
void store_client_uncork(store_client *cl);

/* Queues a job (never blocks). Jobs of one client run and complete in the
 * order submitted. Returns 0, TSR_ELIMIT when queue_max jobs are already
 * waiting for a commit (answer "busy"), TSR_ESTATE when the store is closing,
 * TSR_EINVAL without a run callback. On error the job is untouched. */
int store_submit(store_client *cl, store_job *job);

/* Runs one job and waits for its commit, for setup code, tests and CLI
 * tools. Waits for room instead of failing with TSR_ELIMIT. Returns the
 * job's status (0 = committed and durable). */
int store_exec_sync(store *st, store_run_fn run, void *arg);

/* ---- reading ---------------------------------------------------------- */

/* The calling thread's read connection, opened on first use (query only).
 * Each statement sees the latest commit when it starts; for several
 * statements over one snapshot wrap them in store_read_begin/end. Reset
 * every statement after use: an unreset read statement pins its snapshot.
 * Returns 0 and *out, or TSR_EIO / TSR_ENOMEM / TSR_ESTATE. */
int store_reader_get(store *st, store_conn **out);

/* Opens / ends a read transaction (one snapshot) on a reader connection. */
int store_read_begin(store_conn *c);
int store_read_end(store_conn *c);

/* ---- statements ------------------------------------------------------- */

/* The connection's cached statement for this SQL text (compiled on first
 * use, keyed by the text), reset and with its bindings cleared. The store
 * owns it; it lives as long as the connection. Returns 0 and *out, or
 * TSR_EINVAL (SQL error) / TSR_ENOMEM. */
int store_conn_prepare(store_conn *c, const char *sql, store_stmt **out);

/* Runs SQL that returns no rows (may hold several statements), uncached. */
int store_conn_exec(store_conn *c, const char *sql);

/* Rows changed by the last INSERT/UPDATE/DELETE on this connection. */
int64_t store_conn_changes(store_conn *c);
/* SQLite-specific: rowid of the last INSERT (use RETURNING in neutral code). */
int64_t store_conn_last_rowid(store_conn *c);
/* Message of the connection's last error; valid until its next call. */
const char *store_conn_errmsg(store_conn *c);
/* SQLite-specific escape hatch: the underlying sqlite3 handle. */
struct sqlite3 *store_conn_sqlite(store_conn *c);

/* Parameters are numbered from 1. Text and blobs are not copied (see the
 * ownership note above). Return 0 / TSR_EINVAL (bad index) / TSR_ELIMIT. */
int store_bind_int64(store_stmt *s, int idx, int64_t v);
int store_bind_text(store_stmt *s, int idx, const char *p, size_t len);
int store_bind_str(store_stmt *s, int idx, const char *nul_terminated);
int store_bind_blob(store_stmt *s, int idx, bytes_t v);
int store_bind_null(store_stmt *s, int idx);

#define STORE_ROW 1
#define STORE_DONE 0
/* Steps the statement: STORE_ROW with a row available, STORE_DONE at the
 * end, or a negative code (TSR_ECONFLICT for a constraint violation, see
 * store_map_error). After STORE_DONE or an error, reset before reuse. */
int store_step(store_stmt *s);
/* Steps to the end and resets: for INSERT/UPDATE/DELETE. */
int store_stmt_run(store_stmt *s);
/* Resets the statement (keeps bindings); releases its snapshot. */
void store_stmt_reset(store_stmt *s);

/* Column views of the current row; columns are numbered from 0. NULL reads
 * as 0 / empty view / "" with length 0. */
int store_col_is_null(store_stmt *s, int col);
int64_t store_col_int64(store_stmt *s, int col);
bytes_t store_col_blob(store_stmt *s, int col);
const char *store_col_text(store_stmt *s, int col, size_t *len);

/* Maps an SQLite result code (primary or extended) to a TSR_E* code:
 * constraint violations → TSR_ECONFLICT, SQL and misuse errors →
 * TSR_EINVAL, busy/locked/I/O/full/corrupt → TSR_EIO, too big → TSR_ELIMIT,
 * out of memory → TSR_ENOMEM, success codes → 0. */
int store_map_error(int sqlite_rc);

#endif
