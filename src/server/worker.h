/* A worker: one process, one epoll loop, its own SO_REUSEPORT listening
 * socket on the shared port, and the connections the kernel hands it.
 *
 * Why processes and not threads: each process may hold at most 20,000 open
 * files here, so a million idle sessions need ~50+ processes anyway; with
 * one loop per process nothing is shared, nothing is locked, and a crash
 * takes down one worker, which the master restarts. The master (main.c)
 * binds the port once without listening (so port 0 resolves and the port
 * stays reserved), then forks `workers` children; each binds its own
 * socket to the same address with SO_REUSEPORT and listens, and the kernel
 * spreads new connections over the listening sockets. Cross-thread work
 * (store completions) still reaches a loop through loop_post.
 *
 * The store: the master migrates it once before forking
 * (worker_prepare_store); each worker then opens it after the fork (SQLite
 * handles must not cross a fork), so each has its own writer thread; SQLite's file lock
 * serialises the workers' transactions. The worker's store_client eventfd
 * sits in its loop and completions are drained there, on the loop thread.
 *
 * Ownership: the worker owns its conns, their buffers and its scratch
 * space; the cfg and SSL_CTX are the master's, inherited read-only.
 * Threads: everything here runs on the worker's loop thread. */
#ifndef TSR_SERVER_WORKER_H
#define TSR_SERVER_WORKER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "proto/http.h"
#include "proto/json.h"
#include "proto/ws.h"
#include "server/config.h"
#include "server/conn.h"
#include "server/loop.h"
#include "store/store.h"

#define WORKER_READ_SCRATCH (64 * 1024)
#define WORKER_IO_POOL 64 /* idle conn_io structs kept for reuse */
#define WORKER_SLAB_CHUNK 1024
#define WORKER_MAX_TOKENS 4096 /* JSON tokens per WebSocket message */
#define KIND_STORE 4 /* loop handle kind of the store_client eventfd (after conn.h's) */

/* The server's ordered schema migrations (schema.c), applied by store_open. */
extern const store_migration server_schema[];
extern const size_t server_schema_len;

typedef struct conn_chunk {
  struct conn_chunk *next;
  conn conns[WORKER_SLAB_CHUNK];
} conn_chunk;

typedef struct worker {
  loop_t loop;
  const cfg *cfg;
  int index;
  SSL_CTX *tls;
  loop_handle listener;
  loop_handle sig;
  loop_timer drain_timer;
  loop_timer accept_timer;
  loop_timer stats_timer; /* publishes heap usage to the metrics slot */
  store *store;           /* opened in this process, after the fork */
  store_client *sc;       /* completions of this loop's jobs */
  loop_handle store_h;    /* sc's eventfd */
  bool draining;
  bool hook_started; /* on_start succeeded: on_stop is owed */
  uint32_t nconns;

  conn_chunk *chunks; /* the slab; never shrinks */
  conn *free_conns;   /* linked through conn.io */
  conn_io *io_pool;
  uint32_t io_pool_n;

  uint8_t *rscratch; /* WORKER_READ_SCRATCH bytes */
  buf_t out;         /* gathered output of out_owner */
  conn *out_owner;
  buf_t body;  /* HTTP response body scratch */
  buf_t reply; /* WebSocket reply scratch */
  ws_assembler wsa_scratch;
  json_token *toks;
  http_header *hdrs;
  http_limits hlim;
  ws_limits wlim;
  /* Batch output (conn_batch_begin/end): while set, output goes to each
   * conn's own buffer and is written once per conn at the end. */
  bool batch;
  conn_ref *touched;
  size_t ntouched, captouched;
} worker;

typedef struct {
  struct sockaddr_storage addr;
  socklen_t addrlen;
} worker_addr;

/* The worker of this process (set by worker_main), for code that has a
 * conn and needs its worker without storing 8 more bytes per conn. */
extern worker *worker_self;

/* Runs worker index until SIGTERM/SIGINT has drained it. Returns the
 * process exit status: 0 after a drain, 2 when it could not start. */
int worker_main(const cfg *c, int index, const worker_addr *addr, SSL_CTX *tls);

/* Master, before the fork: creates or opens the store, switches it to WAL
 * and applies the migrations, then closes it (no SQLite handle or thread
 * survives into the workers). Workers opening a prepared database at once
 * do not race for the journal-mode change. Returns 0 or a TSR_E* code
 * (logged). */
int worker_prepare_store(const cfg *c);

/* Hooks for domain modules, set from main before the workers start:
 * on_start runs in each worker once its loop and store are up (nonzero
 * return: the worker cannot start); on_stop runs after the loop ended and
 * every conn is closed, before the store client is freed. */
void worker_set_hooks(int (*on_start)(worker *w), void (*on_stop)(worker *w));

/* SIGTERM: stop accepting, finish requests in flight, close WebSockets with
 * 1001, stop the loop when the last conn is gone or drain_timeout passes. */
void worker_drain(worker *w);

/* Slab: a zeroed conn (state CONN_FREE) or NULL; and its return. */
conn *worker_conn_alloc(worker *w);
void worker_conn_free(worker *w, conn *c);

#endif
