/* The delivery service process (ds.h). */
#include "server/ds.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <sqlite3.h>

#include "mls/codec.h"
#include "mls/messages.h"
#include "mls/observer.h"
#include "server/dsproto.h"
#include "server/ipc.h"
#include "server/log.h"
#include "server/loop.h"
#include "store/store.h"
#include "tessera/error.h"

#define MAX_WORKERS 256
#define KIND_LISTEN 1
#define KIND_WORKER 2
#define KIND_SIGNAL 3
#define KIND_STORE 4
#define TIMER_FLUSH 1
#define FLUSH_MS 1000 /* cursors reach the store this often */
#define TIMER_SWEEP 2

/* ---- schema ------------------------------------------------------------
 *
 * conversations: one per MLS group; gid is the MLS group_id (16 bytes);
 * observer is the saved observer (mls/observer.h) after the last commit.
 * members: accounts in it (role 1 = admin). devices: member devices with
 * the seq they joined at and their acknowledged cursor. log: every
 * message, append-only, pos in arrival order, no other index (the
 * per-conversation index is in memory). welcomes / mailbox: a Welcome
 * stored once and the devices it is for, until each acknowledges. */
static const char ds_v1[] = "CREATE TABLE conversations ("
                            " id INTEGER PRIMARY KEY,"
                            " gid BLOB NOT NULL UNIQUE,"
                            " app INTEGER NOT NULL,"
                            " kind INTEGER NOT NULL,"
                            " state INTEGER NOT NULL,"
                            " request_account BLOB,"
                            " created_by BLOB NOT NULL,"
                            " created_at INTEGER NOT NULL,"
                            " observer BLOB NOT NULL);"
                            "CREATE TABLE members ("
                            " conv INTEGER NOT NULL,"
                            " account BLOB NOT NULL,"
                            " role INTEGER NOT NULL,"
                            " PRIMARY KEY (conv, account)) WITHOUT ROWID;"
                            "CREATE TABLE devices ("
                            " conv INTEGER NOT NULL,"
                            " device BLOB NOT NULL,"
                            " account BLOB NOT NULL,"
                            " joined_seq INTEGER NOT NULL,"
                            " cursor INTEGER NOT NULL,"
                            " PRIMARY KEY (conv, device)) WITHOUT ROWID;"
                            "CREATE TABLE log ("
                            " pos INTEGER PRIMARY KEY,"
                            " conv INTEGER NOT NULL,"
                            " seq INTEGER NOT NULL,"
                            " sender BLOB NOT NULL,"
                            " client_id BLOB NOT NULL,"
                            " at INTEGER NOT NULL,"
                            " body BLOB NOT NULL);"
                            "CREATE TABLE welcomes ("
                            " id INTEGER PRIMARY KEY,"
                            " body BLOB NOT NULL);"
                            "CREATE TABLE mailbox ("
                            " device BLOB NOT NULL,"
                            " conv INTEGER NOT NULL,"
                            " welcome INTEGER NOT NULL,"
                            " PRIMARY KEY (device, conv)) WITHOUT ROWID;";

/* first_seq: the seq of the first message kept; every message before it
 * was deleted (so a conversation whose log is empty keeps counting). */
static const char ds_v2[] =
    "ALTER TABLE conversations ADD COLUMN first_seq INTEGER NOT NULL DEFAULT 1;";

static const store_migration ds_schema[] = {{"ds-v1", ds_v1}, {"ds-v2", ds_v2}};

/* ---- in memory ---------------------------------------------------------- */

typedef struct {
  uint8_t account[DSP_ID];
  uint8_t role; /* DSP_ROLE_*: member, admin, or left (devices not yet removed) */
} member;

typedef struct {
  uint8_t device[DSP_ID];
  uint8_t account[DSP_ID];
  uint64_t joined_seq;
  uint64_t cursor;
  bool dirty;   /* cursor not yet in the store */
  bool welcome; /* a Welcome waits in its mailbox */
  bool stale;   /* revoked, or its account left: any member may commit its removal */
} cdev;

/* Hashes (SipHash, a per-process key) of the PrivateMessages accepted in a
 * conversation's current epoch: the same ciphertext sent again is a replay.
 * Cleared when the epoch moves (older epochs are refused anyway); open
 * addressing, 0 = empty. In memory only: after a restart the members'
 * MLS reuse guard is what catches a replay of an earlier message. */
typedef struct {
  uint64_t *v;
  size_t cap, n;
  uint64_t epoch;
} seenset;

typedef struct conv {
  int64_t row;
  seenset seen;
  uint8_t gid[DSP_ID];
  uint8_t app, kind, state;
  uint8_t request_account[DSP_ID];
  uint64_t next_seq;  /* seq of the next message */
  uint64_t first_seq; /* seq of pos[0] */
  int64_t *pos;       /* log rows of first_seq .. next_seq - 1 */
  uint32_t *at_s;     /* ... their storing times (Unix seconds), for retention */
  struct dedup **ddp; /* ... their de-duplication entries (or NULL) */
  size_t npos, cappos;
  mls_group *obs;
  uint64_t block_checked_ms; /* direct: when blocks were last read */
  bool blocked;              /* direct: a block between its two people */
  member *m;
  size_t nm;
  cdev *d;
  size_t nd;
} conv;

/* A hash map from 16-byte random ids to pointers (chained). */
typedef struct idnode {
  struct idnode *next;
  uint8_t key[DSP_ID];
  void *val;
} idnode;

typedef struct {
  idnode **b;
  size_t nb, n;
} idmap;

static size_t id_hash(const uint8_t *k, size_t nb) {
  uint64_t h;
  memcpy(&h, k, sizeof h);
  h ^= h >> 29;
  h *= 0xbf58476d1ce4e5b9ull;
  return (size_t)(h ^ (h >> 32)) & (nb - 1);
}

static void *idmap_get(const idmap *m, const uint8_t *k) {
  if (!m->nb) return NULL;
  for (idnode *x = m->b[id_hash(k, m->nb)]; x; x = x->next)
    if (memcmp(x->key, k, DSP_ID) == 0) return x->val;
  return NULL;
}

static int idmap_put(idmap *m, const uint8_t *k, void *val) {
  if (m->n >= m->nb) {
    size_t nb = m->nb ? 2 * m->nb : 1024;
    idnode **b = calloc(nb, sizeof *b);
    if (!b) return TSR_ENOMEM;
    for (size_t i = 0; i < m->nb; i++)
      for (idnode *x = m->b[i], *nx; x; x = nx) {
        nx = x->next;
        size_t h = id_hash(x->key, nb);
        x->next = b[h];
        b[h] = x;
      }
    free(m->b);
    m->b = b;
    m->nb = nb;
  }
  idnode **p = &m->b[id_hash(k, m->nb)];
  for (idnode *x = *p; x; x = x->next)
    if (memcmp(x->key, k, DSP_ID) == 0) {
      x->val = val;
      return 0;
    }
  idnode *x = malloc(sizeof *x);
  if (!x) return TSR_ENOMEM;
  memcpy(x->key, k, DSP_ID);
  x->val = val;
  x->next = *p;
  *p = x;
  m->n++;
  return 0;
}

static void *idmap_del(idmap *m, const uint8_t *k) {
  if (!m->nb) return NULL;
  for (idnode **p = &m->b[id_hash(k, m->nb)]; *p; p = &(*p)->next)
    if (memcmp((*p)->key, k, DSP_ID) == 0) {
      idnode *x = *p;
      void *v = x->val;
      *p = x->next;
      free(x);
      m->n--;
      return v;
    }
  return NULL;
}

static void idmap_free(idmap *m, void (*free_val)(void *)) {
  for (size_t i = 0; i < m->nb; i++)
    for (idnode *x = m->b[i], *nx; x; x = nx) {
      nx = x->next;
      if (free_val) free_val(x->val);
      free(x);
    }
  free(m->b);
  memset(m, 0, sizeof *m);
}

/* The conversations of a device. */
typedef struct {
  conv **v;
  size_t n, cap;
} convlist;

/* Where a device is online: a bit per worker. */
typedef struct {
  uint64_t bits[MAX_WORKERS / 64];
} presence;

/* Sends remembered for de-duplication: (device, client id) -> seq. */
typedef struct dedup {
  struct dedup *next;
  uint64_t h; /* dd_hash of device and client id */
  uint8_t device[DSP_ID];
  uint8_t len;
  uint8_t client_id[DSP_CLIENT_ID_MAX];
  uint64_t seq;
} dedup;

typedef struct {
  ipc_conn ipc;
  int index; /* -1 until HELLO */
} wconn;

static struct {
  const cfg *cfg;
  loop_t loop;
  loop_handle listener, sig, store_h;
  loop_timer flush_timer;
  loop_timer sweep_timer;
  store *st;
  store_client *sc;
  wconn *workers[MAX_WORKERS]; /* by index, after HELLO */
  idmap convs;                 /* gid -> conv */
  idmap by_device;             /* device -> convlist */
  idmap online;                /* device -> presence */
  dedup **dd;
  size_t ddn, ddnb;
  dedup **dd_old; /* while growing: the table being moved into dd */
  size_t dd_oldnb, dd_mig;
  bool stopping;
  sqlite3 *accounts_db; /* the workers' store, read-only: blocks */
  sqlite3_stmt *block_stmt;
  sqlite3_stmt *device_stmt;
  uint8_t seen_key[crypto_shorthash_KEYBYTES];
  char sock_path[CFG_PATH_MAX + 16];
  size_t inflight;
} ds;

/* Retention sweeps: every 5 s, or more often under a short retention. */
static uint32_t sweep_interval(void) {
  uint64_t q = ds.cfg->message_retention_ms / 4;
  return (uint32_t)(q < 200 ? 200 : q > 5000 ? 5000 : q);
}

static uint64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- small helpers -------------------------------------------------------- */

static cdev *conv_device(conv *cv, const uint8_t *dev) {
  for (size_t i = 0; i < cv->nd; i++)
    if (memcmp(cv->d[i].device, dev, DSP_ID) == 0) return &cv->d[i];
  return NULL;
}

static int convlist_add(const uint8_t *dev, conv *cv) {
  convlist *l = idmap_get(&ds.by_device, dev);
  if (!l) {
    l = calloc(1, sizeof *l);
    if (!l || idmap_put(&ds.by_device, dev, l)) {
      free(l);
      return TSR_ENOMEM;
    }
  }
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 4;
    conv **v = realloc(l->v, cap * sizeof *v);
    if (!v) return TSR_ENOMEM;
    l->v = v;
    l->cap = cap;
  }
  l->v[l->n++] = cv;
  return 0;
}

static void convlist_remove(const uint8_t *dev, const conv *cv) {
  convlist *l = idmap_get(&ds.by_device, dev);
  for (size_t i = 0; l && i < l->n; i++)
    if (l->v[i] == cv) {
      l->v[i] = l->v[--l->n];
      return;
    }
}

static void convlist_free(void *p) {
  convlist *l = p;
  if (l) free(l->v);
  free(l);
}

static void conv_free(void *p) {
  conv *cv = p;
  if (!cv) return;
  group_free(cv->obs);
  free(cv->seen.v);
  free(cv->pos);
  free(cv->at_s);
  free(cv->ddp);
  free(cv->m);
  free(cv->d);
  free(cv);
}

static int conv_push_pos(conv *cv, int64_t pos, uint64_t at_ms, struct dedup *dd) {
  if (cv->npos == cv->cappos) {
    size_t cap = cv->cappos ? 2 * cv->cappos : 16;
    int64_t *p = realloc(cv->pos, cap * sizeof *p);
    if (p) cv->pos = p;
    uint32_t *t = realloc(cv->at_s, cap * sizeof *t);
    if (t) cv->at_s = t;
    struct dedup **d = realloc(cv->ddp, cap * sizeof *d);
    if (d) cv->ddp = d;
    if (!p || !t || !d) return TSR_ENOMEM;
    cv->cappos = cap;
  }
  cv->pos[cv->npos] = pos;
  cv->at_s[cv->npos] = (uint32_t)(at_ms / 1000);
  cv->ddp[cv->npos++] = dd;
  return 0;
}

static uint64_t dd_hash(const uint8_t *dev, bytes_t cid) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < DSP_ID; i++) h = (h ^ dev[i]) * 1099511628211ull;
  for (size_t i = 0; i < cid.len; i++) h = (h ^ cid.ptr[i]) * 1099511628211ull;
  return h;
}

/* The chain an entry of hash h is in. While the table grows, the old
 * table's buckets move to the new one in order (dd_migrate): those before
 * dd_mig have moved. */
static dedup **dd_slot(uint64_t h) {
  if (ds.dd_old && (h & (ds.dd_oldnb - 1)) >= ds.dd_mig)
    return &ds.dd_old[h & (ds.dd_oldnb - 1)];
  return &ds.dd[h & (ds.ddnb - 1)];
}

/* Moves up to k buckets of the old table (a doubling is spread over the
 * adds that follow it, instead of stalling one of them for the whole
 * rehash: at a million entries that took a few hundred milliseconds). */
static void dd_migrate(size_t k) {
  while (ds.dd_old && k--) {
    if (ds.dd_mig == ds.dd_oldnb) {
      free(ds.dd_old);
      ds.dd_old = NULL;
      break;
    }
    for (dedup *x = ds.dd_old[ds.dd_mig], *nx; x; x = nx) {
      nx = x->next;
      dedup **b = &ds.dd[x->h & (ds.ddnb - 1)];
      x->next = *b;
      *b = x;
    }
    ds.dd_old[ds.dd_mig++] = NULL;
  }
}

static dedup *dd_find(const uint8_t *dev, bytes_t cid) {
  if (!ds.ddnb || !cid.len) return NULL;
  uint64_t h = dd_hash(dev, cid);
  for (dedup *x = *dd_slot(h); x; x = x->next)
    if (x->h == h && x->len == cid.len && memcmp(x->device, dev, DSP_ID) == 0 &&
        memcmp(x->client_id, cid.ptr, cid.len) == 0)
      return x;
  return NULL;
}

#define DD_MIGRATE 64 /* old buckets moved per add while the table grows */

static int dd_add(const uint8_t *dev, bytes_t cid, uint64_t seq, dedup **out) {
  *out = NULL;
  if (!cid.len || cid.len > DSP_CLIENT_ID_MAX) return 0;
  if (ds.ddn >= ds.ddnb && !ds.dd_old) {
    size_t nb = ds.ddnb ? 2 * ds.ddnb : 4096;
    dedup **b = calloc(nb, sizeof *b);
    if (!b) return TSR_ENOMEM;
    ds.dd_old = ds.dd; /* NULL at the first allocation: nothing to move */
    ds.dd_oldnb = ds.ddnb;
    ds.dd_mig = 0;
    ds.dd = b;
    ds.ddnb = nb;
  }
  dd_migrate(DD_MIGRATE);
  dedup *x = malloc(sizeof *x);
  if (!x) return TSR_ENOMEM;
  memcpy(x->device, dev, DSP_ID);
  x->len = (uint8_t)cid.len;
  memcpy(x->client_id, cid.ptr, cid.len);
  x->seq = seq;
  x->h = dd_hash(dev, cid);
  dedup **slot = dd_slot(x->h);
  x->next = *slot;
  *slot = x;
  ds.ddn++;
  *out = x;
  return 0;
}

static void dd_remove(dedup *x) {
  dedup **p = dd_slot(x->h);
  while (*p && *p != x) p = &(*p)->next;
  if (*p) *p = x->next;
  ds.ddn--;
  free(x);
}

/* The observer of cv, loaded from the store on first use. */
static int conv_observer(conv *cv, mls_group **out) {
  if (cv->obs) {
    *out = cv->obs;
    return 0;
  }
  store_conn *c;
  store_stmt *s;
  int rc = store_reader_get(ds.st, &c);
  if (!rc)
    rc = store_conn_prepare(c, "SELECT observer FROM conversations WHERE id = ?", &s);
  if (rc) return TSR_EIO;
  store_bind_int64(s, 1, cv->row);
  rc = store_step(s);
  if (rc == STORE_ROW)
    rc = observer_load(store_col_blob(s, 0), &cv->obs);
  else
    rc = TSR_EIO;
  store_stmt_reset(s);
  if (rc) {
    log_error("conversation %lld: observer state unreadable (%s)", (long long)cv->row,
              tsr_errname(rc));
    return TSR_EIO;
  }
  *out = cv->obs;
  return 0;
}

/* ---- blocks -------------------------------------------------------------------
 *
 * A block between the two people of a direct conversation freezes it: no
 * one sends into it while the block stands. Blocks live in the workers'
 * store; the delivery service reads them there (read-only) at most once a
 * second per conversation, so a block holds in conversations within a
 * second of being acknowledged, and a crash between the block and any
 * notification cannot leave a conversation open. */

#define BLOCK_RECHECK_MS 1000

/* The workers' store, read-only, with its two questions prepared. */
static bool accounts_open(void) {
  if (ds.accounts_db) return true;
  char path[CFG_PATH_MAX + 16];
  snprintf(path, sizeof path, "%s/tessera.db", ds.cfg->data_dir);
  if (sqlite3_open_v2(path, &ds.accounts_db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(
          ds.accounts_db,
          "SELECT 1 FROM blocks WHERE (blocker_id = ?1 AND blocked_id = ?2)"
          " OR (blocker_id = ?2 AND blocked_id = ?1)",
          -1, &ds.block_stmt, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(ds.accounts_db,
                         "SELECT revoked FROM devices WHERE id = ?1 AND account_id = ?2",
                         -1, &ds.device_stmt, NULL) != SQLITE_OK) {
    sqlite3_finalize(ds.block_stmt);
    ds.block_stmt = NULL;
    sqlite3_close(ds.accounts_db);
    ds.accounts_db = NULL;
    return false;
  }
  sqlite3_busy_timeout(ds.accounts_db, 1000);
  return true;
}

/* True when the store says the device is revoked or unknown; false when
 * it is live or the store cannot answer (a live device is never taken for
 * revoked). */
static bool device_revoked(const uint8_t *dev, const uint8_t *acc) {
  if (!accounts_open()) return false;
  sqlite3_bind_blob(ds.device_stmt, 1, dev, DSP_ID, SQLITE_STATIC);
  sqlite3_bind_blob(ds.device_stmt, 2, acc, DSP_ID, SQLITE_STATIC);
  int rc = sqlite3_step(ds.device_stmt);
  bool revoked =
      rc == SQLITE_DONE || (rc == SQLITE_ROW && sqlite3_column_int(ds.device_stmt, 0));
  sqlite3_reset(ds.device_stmt);
  return revoked;
}

/* True when the store says a blocks b or b blocks a; fails closed. */
static bool blocked_between(const uint8_t *a, const uint8_t *b) {
  if (!accounts_open()) return true;
  sqlite3_bind_blob(ds.block_stmt, 1, a, DSP_ID, SQLITE_STATIC);
  sqlite3_bind_blob(ds.block_stmt, 2, b, DSP_ID, SQLITE_STATIC);
  int rc = sqlite3_step(ds.block_stmt);
  sqlite3_reset(ds.block_stmt);
  return rc != SQLITE_DONE;
}

/* Whether cv (direct) is frozen by a block now. */
static bool conv_blocked(conv *cv, uint64_t now) {
  if (cv->kind != DSP_KIND_DIRECT || cv->nm != 2) return false;
  if (cv->block_checked_ms && now - cv->block_checked_ms < BLOCK_RECHECK_MS)
    return cv->blocked;
  cv->blocked = blocked_between(cv->m[0].account, cv->m[1].account);
  cv->block_checked_ms = now;
  return cv->blocked;
}

/* ---- answers --------------------------------------------------------------- */

static buf_t *result_begin(wconn *w, uint32_t id, int status, const char *code,
                           const char *msg) {
  buf_t *b = ipc_begin(&w->ipc, DSP_RESULT, id);
  wr_u32(b, (uint32_t)status);
  wr_opaque(b, BYTES(code, strlen(code)));
  wr_opaque(b, BYTES(msg, strlen(msg)));
  return b;
}

static void refuse(wconn *w, uint32_t id, int status, const char *code, const char *msg) {
  if (!w || w->ipc.closed) return;
  result_begin(w, id, status, code, msg);
  ipc_end(&w->ipc);
}

static wconn *worker_by_index(int index) {
  return index >= 0 && index < MAX_WORKERS ? ds.workers[index] : NULL;
}

/* Pushes one message to the online devices of cv but `skip`, one frame per
 * worker holding any of them. */
static void push(conv *cv, uint8_t kind, uint64_t seq, uint64_t at, bytes_t body,
                 const uint8_t *skip, const cdev *only, size_t n_only) {
  const cdev *list = only ? only : cv->d;
  size_t n = only ? n_only : cv->nd;
  for (int wi = 0; wi < MAX_WORKERS; wi++) {
    wconn *w = ds.workers[wi];
    if (!w || w->ipc.closed) continue;
    buf_t *b = NULL;
    size_t mark = 0;
    for (size_t i = 0; i < n; i++) {
      if (skip && memcmp(list[i].device, skip, DSP_ID) == 0) continue;
      if (list[i].stale) continue; /* left or revoked */
      if (cv->state == DSP_STATE_DECLINED &&
          memcmp(list[i].account, cv->request_account, DSP_ID) == 0)
        continue; /* a declined request is not pushed */
      const presence *p = idmap_get(&ds.online, list[i].device);
      if (!p || !(p->bits[wi / 64] >> (wi % 64) & 1)) continue;
      if (!b) {
        b = ipc_begin(&w->ipc, DSP_PUSH, 0);
        wr_u8(b, kind);
        wr_raw(b, BYTES(cv->gid, DSP_ID));
        wr_u64(b, seq);
        wr_u64(b, at);
        wr_opaque(b, body);
        mark = wr_vec_begin(b);
      }
      wr_raw(b, BYTES(list[i].device, DSP_ID));
    }
    if (b) {
      wr_vec_end(b, mark);
      ipc_end(&w->ipc);
    }
  }
}

/* ---- jobs -------------------------------------------------------------------- */

typedef struct dsjob {
  store_job job;
  int worker; /* index of the asking worker */
  uint32_t id;
  conv *cv;
  uint8_t device[DSP_ID];
  uint8_t account[DSP_ID];
  uint64_t seq, at;
  int64_t pos;
  buf_t body;      /* the message (SEND) or the observer (CREATE) */
  buf_t client_id; /* SEND */
  buf_t welcome;   /* CREATE */
  buf_t observer;  /* SEND of a commit: the observer after it */
  bool is_commit;
  bool save_observer; /* a proposal: the observer remembers it for the commit */
  /* Role changes stored with the message (a leave; the last admin's
   * successor). */
  member set_m[2];
  size_t n_set_m;
  /* A membership change (MEMBERS): rows to add and remove, and who got the
   * conversation before it (the commit is pushed to them). */
  member *add_m;
  size_t n_add_m;
  uint8_t (*del_m)[DSP_ID];
  size_t n_del_m;
  cdev *add_d;
  size_t n_add_d;
  uint8_t (*del_d)[DSP_ID];
  size_t n_del_d;
  cdev *old_d;
  size_t n_old_d;
  dedup *dd; /* the message's de-duplication entry */
} dsjob;

static dsjob *job_new(wconn *w, uint32_t id) {
  dsjob *j = calloc(1, sizeof *j);
  if (!j) return NULL;
  j->worker = w ? w->index : -1;
  j->id = id;
  buf_init(&j->body);
  buf_init(&j->client_id);
  buf_init(&j->welcome);
  buf_init(&j->observer);
  j->job.arg = j;
  return j;
}

static void job_free(dsjob *j) {
  free(j->add_m);
  free(j->del_m);
  free(j->add_d);
  free(j->del_d);
  free(j->old_d);
  buf_free(&j->body);
  buf_free(&j->client_id);
  buf_free(&j->welcome);
  buf_free(&j->observer);
  free(j);
}

/* A store failure after the seq or epoch moved on in memory: memory and
 * store disagree, so the process stops and its restart reloads from the
 * store (nothing unacknowledged was promised). */
static void fatal_store(int status) {
  log_error("delivery service store failed (%s): restarting", tsr_errname(status));
  _exit(1);
}

static int submit(dsjob *j) {
  int rc = store_submit(ds.sc, &j->job);
  if (!rc) ds.inflight++;
  return rc;
}

/* ---- SEND ------------------------------------------------------------------------ */

/* The roster rows of a membership change, in its commit's transaction. */
static int run_roster(store_conn *c, dsjob *j) {
  int64_t row = j->cv->row;
  store_stmt *s;
  int rc = 0;
  for (size_t i = 0; !rc && i < j->n_del_m; i++) {
    rc = store_conn_prepare(c, "DELETE FROM members WHERE conv = ? AND account = ?", &s);
    if (rc) break;
    store_bind_int64(s, 1, row);
    store_bind_blob(s, 2, BYTES(j->del_m[i], DSP_ID));
    rc = store_stmt_run(s);
  }
  for (size_t i = 0; !rc && i < j->n_add_m; i++) {
    rc = store_conn_prepare(
        c, "INSERT INTO members(conv, account, role) VALUES (?, ?, ?)", &s);
    if (rc) break;
    store_bind_int64(s, 1, row);
    store_bind_blob(s, 2, BYTES(j->add_m[i].account, DSP_ID));
    store_bind_int64(s, 3, j->add_m[i].role);
    rc = store_stmt_run(s);
  }
  for (size_t i = 0; !rc && i < j->n_del_d; i++) {
    static const char *const del[] = {
        "DELETE FROM devices WHERE conv = ? AND device = ?",
        "DELETE FROM mailbox WHERE conv = ? AND device = ?"};
    for (size_t k = 0; !rc && k < 2; k++) {
      rc = store_conn_prepare(c, del[k], &s);
      if (rc) break;
      store_bind_int64(s, 1, row);
      store_bind_blob(s, 2, BYTES(j->del_d[i], DSP_ID));
      rc = store_stmt_run(s);
    }
  }
  for (size_t i = 0; !rc && i < j->n_set_m; i++) {
    rc = store_conn_prepare(
        c, "UPDATE members SET role = ? WHERE conv = ? AND account = ?", &s);
    if (rc) break;
    store_bind_int64(s, 1, j->set_m[i].role);
    store_bind_int64(s, 2, row);
    store_bind_blob(s, 3, BYTES(j->set_m[i].account, DSP_ID));
    rc = store_stmt_run(s);
  }
  int64_t welcome = 0;
  if (!rc && j->n_add_d) {
    rc = store_conn_prepare(c, "INSERT INTO welcomes(body) VALUES (?)", &s);
    if (!rc) {
      store_bind_blob(s, 1, buf_view(&j->welcome));
      rc = store_stmt_run(s);
      welcome = store_conn_last_rowid(c);
    }
  }
  for (size_t i = 0; !rc && i < j->n_add_d; i++) {
    rc = store_conn_prepare(
        c,
        "INSERT INTO devices(conv, device, account, joined_seq, cursor)"
        " VALUES (?, ?, ?, ?, ?)",
        &s);
    if (rc) break;
    store_bind_int64(s, 1, row);
    store_bind_blob(s, 2, BYTES(j->add_d[i].device, DSP_ID));
    store_bind_blob(s, 3, BYTES(j->add_d[i].account, DSP_ID));
    store_bind_int64(s, 4, (int64_t)j->add_d[i].joined_seq);
    store_bind_int64(s, 5, (int64_t)j->add_d[i].cursor);
    if ((rc = store_stmt_run(s)) != 0) break;
    rc = store_conn_prepare(
        c, "INSERT INTO mailbox(device, conv, welcome) VALUES (?, ?, ?)", &s);
    if (rc) break;
    store_bind_blob(s, 1, BYTES(j->add_d[i].device, DSP_ID));
    store_bind_int64(s, 2, row);
    store_bind_int64(s, 3, welcome);
    rc = store_stmt_run(s);
  }
  return rc;
}

static int run_send(store_conn *c, void *arg) {
  dsjob *j = arg;
  store_stmt *s;
  int rc = store_conn_prepare(c,
                              "INSERT INTO log(conv, seq, sender, client_id, at, body)"
                              " VALUES (?, ?, ?, ?, ?, ?)",
                              &s);
  if (rc) return rc;
  store_bind_int64(s, 1, j->cv->row);
  store_bind_int64(s, 2, (int64_t)j->seq);
  store_bind_blob(s, 3, BYTES(j->device, DSP_ID));
  store_bind_blob(s, 4, buf_view(&j->client_id));
  store_bind_int64(s, 5, (int64_t)j->at);
  store_bind_blob(s, 6, buf_view(&j->body));
  if ((rc = store_stmt_run(s)) != 0) return rc;
  j->pos = store_conn_last_rowid(c);
  if (!j->is_commit && !j->save_observer) return 0;
  rc = store_conn_prepare(c, "UPDATE conversations SET observer = ? WHERE id = ?", &s);
  if (rc) return rc;
  store_bind_blob(s, 1, buf_view(&j->observer));
  store_bind_int64(s, 2, j->cv->row);
  if ((rc = store_stmt_run(s)) != 0) return rc;
  return run_roster(c, j);
}

static void done_send(store_job *job, int status) {
  dsjob *j = job->arg;
  ds.inflight--;
  if (status) fatal_store(status);
  conv *cv = j->cv;
  /* Positions are recorded in seq order: jobs complete in submission order. */
  if (conv_push_pos(cv, j->pos, j->at, j->dd) != 0) fatal_store(TSR_ENOMEM);
  wconn *w = worker_by_index(j->worker);
  if (w && !w->ipc.closed) {
    buf_t *b = result_begin(w, j->id, 0, "", "");
    wr_u64(b, j->seq);
    wr_u8(b, 0);
    ipc_end(&w->ipc);
  }
  if (j->old_d) {
    /* A membership change: the commit goes to everyone who was in the
     * conversation (the removed learn it so), the Welcome to who joined. */
    push(cv, DSP_PUSH_MESSAGE, j->seq, j->at, buf_view(&j->body), j->device, j->old_d,
         j->n_old_d);
    if (j->n_add_d)
      push(cv, DSP_PUSH_WELCOME, j->seq + 1, j->at, buf_view(&j->welcome), NULL, j->add_d,
           j->n_add_d);
  } else {
    push(cv, DSP_PUSH_MESSAGE, j->seq, j->at, buf_view(&j->body), j->device, NULL, 0);
  }
  job_free(j);
}

/* A send or membership change repeated with a client id already stored:
 * answered with the first one's seq, nothing stored. */
static bool answered_as_duplicate(wconn *w, uint32_t id, const uint8_t *dev,
                                  bytes_t cid) {
  dedup *dd = dd_find(dev, cid);
  if (!dd) return false;
  buf_t *b = result_begin(w, id, 0, "", "");
  wr_u64(b, dd->seq);
  wr_u8(b, 1);
  ipc_end(&w->ipc);
  return true;
}

/* A refused handshake leaves the observer as it was before (its saved
 * form in before, freed here). */
static void observer_restore(conv *cv, buf_t *before) {
  mls_group *back;
  if (before->len && observer_load(buf_view(before), &back) == 0) {
    group_free(cv->obs);
    cv->obs = back;
  }
  buf_free(before);
}

/* Takes the next seq of cv for j's message and submits its store job. The
 * seq is then spent: if anything fails the process stops, so memory and
 * store never part. */
static void submit_message(dsjob *j, conv *cv, const uint8_t *acc, const uint8_t *dev,
                           bytes_t msg, bytes_t cid, bytes_t welcome) {
  j->cv = cv;
  memcpy(j->device, dev, DSP_ID);
  memcpy(j->account, acc, DSP_ID);
  j->at = wall_ms();
  j->seq = cv->next_seq++;
  j->job.run = run_send;
  j->job.done = done_send;
  if (buf_set(&j->body, msg) || buf_set(&j->client_id, cid) ||
      (welcome.len && buf_set(&j->welcome, welcome)) ||
      dd_add(dev, cid, j->seq, &j->dd) || submit(j) != 0)
    fatal_store(TSR_ENOMEM);
}

/* The member leaf of a PublicMessage's sender must be this device: the
 * server binds what a message claims to who sent it. */
static int check_public_sender(mls_group *obs, bytes_t msg, const uint8_t *acc,
                               const uint8_t *dev) {
  arena_t a;
  arena_init(&a);
  mls_message m;
  int rc = msg_decode_message(msg, &a, &m);
  if (!rc && m.wire_format == MLS_WIRE_PUBLIC_MESSAGE) {
    const mls_sender *snd = &m.public_message.content.sender;
    if (snd->sender_type != MLS_SENDER_MEMBER) {
      rc = TSR_ESENDER;
    } else {
      bytes_t who;
      uint8_t want[2 * DSP_ID];
      memcpy(want, acc, DSP_ID);
      memcpy(want + DSP_ID, dev, DSP_ID);
      if (group_member(obs, snd->index, &who) != 0 ||
          !bytes_eq(who, BYTES(want, 2 * DSP_ID)))
        rc = TSR_ESENDER;
    }
  }
  arena_free(&a);
  return rc;
}

/* The observer's members are exactly cv's devices. */
static bool same_roster(const conv *cv, const mls_group *obs) {
  if (!group_is_active(obs)) return false; /* a ReInit ends the conversation */
  size_t members = 0;
  uint32_t n = group_leaf_count(obs);
  for (uint32_t i = 0; i < n; i++) {
    bytes_t who;
    if (group_member(obs, i, &who) != 0) continue;
    members++;
    size_t k = 0;
    while (k < cv->nd &&
           !(who.len == 2 * DSP_ID && memcmp(who.ptr, cv->d[k].account, DSP_ID) == 0 &&
             memcmp(who.ptr + DSP_ID, cv->d[k].device, DSP_ID) == 0))
      k++;
    if (k == cv->nd) return false;
  }
  return members == cv->nd;
}

static const char *mls_code(int rc) {
  switch (rc) {
  case TSR_EEPOCH: return "stale_epoch";
  case TSR_EGROUP: return "wrong_group";
  case TSR_ESENDER: return "forbidden";
  case TSR_EVERIFY: return "bad_signature";
  default: return "bad_message";
  }
}

/* Whether msg was accepted before in cv's epoch; remembers it if not (a
 * failure to grow forgets nothing and lets it through). */
static bool seen_before(conv *cv, uint64_t epoch, bytes_t msg) {
  seenset *ss = &cv->seen;
  if (ss->epoch != epoch) {
    if (ss->v) memset(ss->v, 0, ss->cap * sizeof *ss->v);
    ss->n = 0;
    ss->epoch = epoch;
  }
  uint64_t h;
  crypto_shorthash((uint8_t *)&h, msg.ptr, msg.len, ds.seen_key);
  if (!h) h = 1;
  if (2 * (ss->n + 1) > ss->cap) {
    size_t nc = ss->cap ? 2 * ss->cap : 64;
    uint64_t *nv = calloc(nc, sizeof *nv);
    if (!nv) return false;
    for (size_t i = 0; i < ss->cap; i++)
      if (ss->v[i])
        for (size_t k = ss->v[i] & (nc - 1);; k = (k + 1) & (nc - 1))
          if (!nv[k]) {
            nv[k] = ss->v[i];
            break;
          }
    free(ss->v);
    ss->v = nv;
    ss->cap = nc;
  }
  for (size_t k = h & (ss->cap - 1);; k = (k + 1) & (ss->cap - 1)) {
    if (ss->v[k] == h) return true;
    if (!ss->v[k]) {
      ss->v[k] = h;
      ss->n++;
      return false;
    }
  }
}

/* A refused handshake: rc from the observer (or TSR_ENOMEM), why when a
 * rule of ours refused it (bad_request), what for the default message. */
static void refuse_mls(wconn *w, uint32_t id, int rc, const char *why, const char *what) {
  refuse(w, id, rc,
         rc == TSR_ENOMEM ? "busy"
         : why            ? "bad_request"
                          : mls_code(rc),
         why                ? why
         : rc == TSR_EEPOCH ? "not for the conversation's current epoch"
                            : what);
}

/* A device's request about one of its conversations. */
typedef struct {
  bytes_t acc, dev, gid, cid, msg;
  conv *cv;
  cdev *me;
} convreq;

/* Reads id16 account, id16 device, id16 conversation, then (with_cid) an
 * opaque client id, then an opaque message, and finds the device in the
 * conversation. false after refusing (bad_request, not_found). */
static bool read_convreq(wconn *w, uint32_t id, reader_t *r, bool with_cid,
                         const char *what, convreq *q) {
  memset(q, 0, sizeof *q);
  rd_raw(r, DSP_ID, &q->acc);
  rd_raw(r, DSP_ID, &q->dev);
  rd_raw(r, DSP_ID, &q->gid);
  if (with_cid) rd_opaque(r, &q->cid);
  rd_opaque(r, &q->msg);
  if (rd_done(r) || q->cid.len > DSP_CLIENT_ID_MAX) {
    char m[48];
    snprintf(m, sizeof m, "malformed %s", what);
    refuse(w, id, TSR_EDECODE, "bad_request", m);
    return false;
  }
  q->cv = idmap_get(&ds.convs, q->gid.ptr);
  q->me = q->cv ? conv_device(q->cv, q->dev.ptr) : NULL;
  if (!q->me) {
    refuse(w, id, TSR_ENOTFOUND, "not_found", "no such conversation");
    return false;
  }
  return true;
}

/* Whether the device may send into its conversation now; refuses
 * otherwise (request_pending, blocked, forbidden). */
static bool may_send(wconn *w, uint32_t id, conv *cv, const cdev *me) {
  if ((cv->state == DSP_STATE_REQUEST || cv->state == DSP_STATE_DECLINED) &&
      memcmp(me->account, cv->request_account, DSP_ID) == 0) {
    refuse(w, id, TSR_ESTATE, "request_pending", "accept the message request first");
    return false;
  }
  if (conv_blocked(cv, loop_now(&ds.loop))) {
    refuse(w, id, TSR_ESENDER, "blocked", "a block stands between the two of you");
    return false;
  }
  if (me->stale) {
    refuse(w, id, TSR_ESENDER, "forbidden", "this device left the conversation");
    return false;
  }
  return true;
}

static void op_send(wconn *w, uint32_t id, reader_t *r) {
  convreq q;
  if (!read_convreq(w, id, r, true, "SEND", &q)) return;
  bytes_t acc = q.acc, dev = q.dev, cid = q.cid, msg = q.msg;
  conv *cv = q.cv;
  if (!may_send(w, id, cv, q.me) || answered_as_duplicate(w, id, dev.ptr, cid)) return;
  mls_group *obs;
  if (conv_observer(cv, &obs)) {
    refuse(w, id, TSR_EIO, "internal", "conversation state unavailable");
    return;
  }
  int rc = check_public_sender(obs, msg, acc.ptr, dev.ptr);
  if (rc) {
    refuse(w, id, rc, mls_code(rc),
           rc == TSR_ESENDER ? "the message claims another sender"
                             : "not an MLS message");
    return;
  }
  /* Membership changes have their own calls: a commit sent here must leave
   * the roster (the set of member devices) as it was, and the only
   * proposal accepted is an Update of one's own leaf. The observer is
   * saved first so a refused message leaves it untouched. */
  buf_t before;
  buf_init(&before);
  observer_event ev;
  /* An MLSMessage starts with version and wire_format (u16 each). For a
   * PrivateMessage the observer only checks group, epoch and type and
   * changes nothing: no copy to restore. */
  bool private_msg =
      msg.len >= 4 && msg.ptr[2] == 0 && msg.ptr[3] == MLS_WIRE_PRIVATE_MESSAGE;
  if (!private_msg) rc = observer_save(obs, &before);
  if (!rc) rc = observer_process(obs, msg, &ev);
  if (!rc && ev.content_type == MLS_CONTENT_PROPOSAL &&
      ev.proposal_type != MLS_PROPOSAL_UPDATE)
    rc = TSR_EUNSUPPORTED;
  if (!rc && ev.content_type == MLS_CONTENT_COMMIT && !same_roster(cv, obs))
    rc = TSR_EUNSUPPORTED;
  dsjob *j = rc ? NULL : job_new(w, id);
  if (!rc && !j) rc = TSR_ENOMEM;
  if (!rc) {
    j->is_commit = ev.content_type == MLS_CONTENT_COMMIT;
    j->save_observer = ev.content_type == MLS_CONTENT_PROPOSAL;
    if (j->is_commit || j->save_observer) rc = observer_save(obs, &j->observer);
  }
  if (rc) {
    observer_restore(cv, &before);
    if (j) job_free(j);
    if (rc == TSR_EUNSUPPORTED)
      refuse(w, id, rc, "unsupported", "membership changes are not accepted in send");
    else
      refuse_mls(w, id, rc, NULL, "the message was refused");
    return;
  }
  buf_free(&before);
  /* Last, so that a message refused for another reason is not remembered. */
  if (ev.wire_format == MLS_WIRE_PRIVATE_MESSAGE && seen_before(cv, ev.epoch, msg)) {
    job_free(j);
    refuse(w, id, TSR_EREPLAY, "replayed", "this message was sent before");
    return;
  }
  submit_message(j, cv, acc.ptr, dev.ptr, msg, cid, BYTES_NONE);
}

/* A transient message (docs/protocol.md, "send"): an application
 * PrivateMessage of the current epoch, pushed at once to the
 * conversation's other online devices and forgotten: no seq, nothing
 * stored, no client id. Who may send it is decided as for SEND. */
static void op_transient(wconn *w, uint32_t id, reader_t *r) {
  convreq q;
  if (!read_convreq(w, id, r, false, "TRANSIENT", &q) || !may_send(w, id, q.cv, q.me))
    return;
  bytes_t dev = q.dev, msg = q.msg;
  conv *cv = q.cv;
  mls_group *obs;
  if (conv_observer(cv, &obs)) {
    refuse(w, id, TSR_EIO, "internal", "conversation state unavailable");
    return;
  }
  /* The wire format first: the observer must not process a handshake
   * here (for a PrivateMessage it only checks group, epoch and type). */
  arena_t a;
  arena_init(&a);
  mls_message m;
  int rc = msg_decode_message(msg, &a, &m);
  bool priv = rc == 0 && m.wire_format == MLS_WIRE_PRIVATE_MESSAGE;
  arena_free(&a);
  observer_event ev;
  if (rc == 0 && !priv) rc = TSR_EUNSUPPORTED;
  if (rc == 0) rc = observer_process(obs, msg, &ev);
  if (rc) {
    refuse(w, id, rc == TSR_EUNSUPPORTED ? TSR_EDECODE : rc,
           rc == TSR_EUNSUPPORTED ? "bad_request" : mls_code(rc),
           rc == TSR_EUNSUPPORTED ? "only application PrivateMessages may be transient"
           : rc == TSR_EEPOCH     ? "not for the conversation's current epoch"
                                  : "the message was refused");
    return;
  }
  result_begin(w, id, 0, "", "");
  ipc_end(&w->ipc);
  push(cv, DSP_PUSH_TRANSIENT, 0, 0, msg, dev.ptr, NULL, 0);
}

/* ---- MEMBERS ----------------------------------------------------------------- */

#define MEMBERS_MAX 64 /* accounts added or removed in one change */
#define ADD_DEVICES_MAX 1024

static member *conv_member(conv *cv, const uint8_t *acc) {
  for (size_t i = 0; i < cv->nm; i++)
    if (memcmp(cv->m[i].account, acc, DSP_ID) == 0) return &cv->m[i];
  return NULL;
}

static bool in_ids(const uint8_t (*v)[DSP_ID], size_t n, const uint8_t *id) {
  for (size_t i = 0; i < n; i++)
    if (memcmp(v[i], id, DSP_ID) == 0) return true;
  return false;
}

typedef struct {
  uint8_t account[DSP_ID];
  uint8_t device[DSP_ID];
  uint8_t key[DSP_KEY]; /* its registered signature key */
  uint8_t reach;        /* the account's: bit (1 << app) when reachable from that app */
} authdev;

/* A commit adding and removing members or devices (docs/protocol.md,
 * "conversation.members"). The worker authorised the accounts to add
 * (profiles, blocks, reachability per source app, live devices, plus the
 * caller's own devices); here: roles, the conversation's app, and that the
 * commit does exactly what is authorised. */
static void op_members(wconn *w, uint32_t id, reader_t *r) {
  bytes_t acc, dev, gid, cid, msg, welcome;
  rd_raw(r, DSP_ID, &acc);
  rd_raw(r, DSP_ID, &dev);
  rd_raw(r, DSP_ID, &gid);
  rd_opaque(r, &cid);
  rd_opaque(r, &msg);
  rd_opaque(r, &welcome);
  reader_t av, rv;
  rd_vec(r, &av);
  rd_vec(r, &rv);
  static authdev ad[ADD_DEVICES_MAX];
  static uint8_t add_acc[MEMBERS_MAX][DSP_ID], del_acc[MEMBERS_MAX][DSP_ID];
  size_t nad = 0, n_add = 0, n_del = 0;
  while (!r->err && rd_more(&av)) {
    bytes_t a;
    uint8_t reach = 0;
    reader_t dv;
    rd_raw(&av, DSP_ID, &a);
    rd_u8(&av, &reach);
    rd_vec(&av, &dv);
    if (av.err || n_add == MEMBERS_MAX) {
      av.err = TSR_EDECODE;
      break;
    }
    memcpy(add_acc[n_add++], a.ptr, DSP_ID);
    while (rd_more(&dv) && nad < ADD_DEVICES_MAX) {
      bytes_t d, k;
      if (rd_raw(&dv, DSP_ID, &d) || rd_raw(&dv, DSP_KEY, &k)) break;
      memcpy(ad[nad].account, a.ptr, DSP_ID);
      memcpy(ad[nad].device, d.ptr, DSP_ID);
      memcpy(ad[nad].key, k.ptr, DSP_KEY);
      ad[nad++].reach = reach;
    }
    if (dv.err || rd_more(&dv)) av.err = TSR_EDECODE;
  }
  while (!r->err && !rv.err && rd_more(&rv)) {
    bytes_t a;
    if (rd_raw(&rv, DSP_ID, &a) || n_del == MEMBERS_MAX) {
      rv.err = TSR_EDECODE;
      break;
    }
    memcpy(del_acc[n_del++], a.ptr, DSP_ID);
  }
  if (r->err || av.err || rv.err || rd_done(r) || cid.len > DSP_CLIENT_ID_MAX) {
    refuse(w, id, TSR_EDECODE, "bad_request", "malformed MEMBERS");
    return;
  }
  conv *cv = idmap_get(&ds.convs, gid.ptr);
  cdev *me = cv ? conv_device(cv, dev.ptr) : NULL;
  if (!me) {
    refuse(w, id, TSR_ENOTFOUND, "not_found", "no such conversation");
    return;
  }
  if (cv->state == DSP_STATE_REQUEST) {
    refuse(w, id, TSR_ESTATE, "request_pending", "a message request takes no members");
    return;
  }
  if (answered_as_duplicate(w, id, dev.ptr, cid)) return;
  const member *caller = conv_member(cv, acc.ptr);
  bool admin = caller && caller->role == DSP_ROLE_ADMIN;
  const char *why = NULL;
  if (!caller || caller->role == DSP_ROLE_LEFT) why = "you left this conversation";
  for (size_t i = 0; i < n_add && !why; i++) {
    bool own = memcmp(add_acc[i], acc.ptr, DSP_ID) == 0;
    if (!own && conv_member(cv, add_acc[i])) why = "already a member";
    if (!own && !admin) why = "only admins add people";
  }
  for (size_t i = 0; i < nad && !why; i++)
    if (memcmp(ad[i].account, acc.ptr, DSP_ID) != 0 && !(ad[i].reach >> cv->app & 1))
      why = "not reachable from this conversation's app";
  for (size_t i = 0; i < n_del && !why; i++) {
    if (!conv_member(cv, del_acc[i])) why = "not a member";
    if (memcmp(del_acc[i], acc.ptr, DSP_ID) == 0)
      why = "leave with a Remove proposal of your own leaves, not a commit";
    else if (!admin)
      why = "only admins remove people";
  }
  if (cv->kind == DSP_KIND_DIRECT &&
      (n_del || (n_add && !(n_add == 1 && memcmp(add_acc[0], acc.ptr, DSP_ID) == 0))))
    why = "a direct conversation keeps its two people (only their devices change)";
  if (why) {
    refuse(w, id, TSR_ESENDER, "forbidden", why);
    return;
  }
  mls_group *obs;
  if (conv_observer(cv, &obs)) {
    refuse(w, id, TSR_EIO, "internal", "conversation state unavailable");
    return;
  }
  int rc = check_public_sender(obs, msg, acc.ptr, dev.ptr);
  buf_t before;
  buf_init(&before);
  observer_event ev;
  if (!rc) rc = observer_save(obs, &before);
  if (!rc) rc = observer_process(obs, msg, &ev);
  if (!rc && (ev.content_type != MLS_CONTENT_COMMIT || !group_is_active(obs))) {
    rc = TSR_EPROTOCOL;
    why = "a membership change is one commit";
  }
  /* The new roster: survivors, and new leaves that are authorised devices. */
  dsjob *j = rc ? NULL : job_new(w, id);
  if (!rc && !j) rc = TSR_ENOMEM;
  uint32_t n = rc ? 0 : group_leaf_count(obs);
  cdev *nd = rc ? NULL : calloc(n + 1, sizeof *nd);
  if (!rc && !nd) rc = TSR_ENOMEM;
  size_t nnd = 0;
  uint64_t seq = cv->next_seq;
  for (uint32_t i = 0; !rc && i < n; i++) {
    bytes_t who;
    if (group_member(obs, i, &who) != 0) continue;
    if (who.len != 2 * DSP_ID) {
      rc = TSR_EPROTOCOL;
      break;
    }
    cdev *old = conv_device(cv, who.ptr + DSP_ID);
    if (old && memcmp(old->account, who.ptr, DSP_ID) == 0) {
      nd[nnd++] = *old;
      continue;
    }
    size_t k = 0;
    while (k < nad && !(memcmp(ad[k].account, who.ptr, DSP_ID) == 0 &&
                        memcmp(ad[k].device, who.ptr + DSP_ID, DSP_ID) == 0))
      k++;
    bytes_t key;
    if (k == nad || group_member_signature_key(obs, i, &key) != 0 ||
        !bytes_eq(key, BYTES(ad[k].key, DSP_KEY))) {
      rc = TSR_EPROTOCOL;
      why = "the commit adds a device that is not authorised, or not with its registered "
            "key";
      break;
    }
    cdev *x = &nd[nnd++];
    memset(x, 0, sizeof *x);
    memcpy(x->account, ad[k].account, DSP_ID);
    memcpy(x->device, ad[k].device, DSP_ID);
    x->joined_seq = seq + 1; /* members see messages from the moment they joined */
    x->welcome = true;
  }
  /* Removed devices: of removed accounts (all of them), the caller's own
   * other devices, or stale ones (revoked, or of someone who left). */
  size_t n_gone = 0;
  for (size_t k = 0; !rc && k < cv->nd; k++) {
    bool kept = false;
    for (size_t x = 0; x < nnd && !kept; x++)
      kept = memcmp(nd[x].device, cv->d[k].device, DSP_ID) == 0;
    if (kept) continue;
    n_gone++;
    if (!cv->d[k].stale &&
        !in_ids((const uint8_t(*)[DSP_ID])del_acc, n_del, cv->d[k].account) &&
        memcmp(cv->d[k].account, acc.ptr, DSP_ID) != 0) {
      rc = TSR_EPROTOCOL;
      why = "the commit removes a device it was not asked to";
    }
  }
  for (size_t i = 0; !rc && i < n_del; i++)
    for (size_t x = 0; x < nnd; x++)
      if (memcmp(nd[x].account, del_acc[i], DSP_ID) == 0) {
        rc = TSR_EPROTOCOL;
        why = "a removed member keeps a device";
      }
  for (size_t i = 0; !rc && i < n_add; i++) {
    if (memcmp(add_acc[i], acc.ptr, DSP_ID) == 0) continue;
    bool has = false;
    for (size_t x = 0; x < nnd && !has; x++)
      has = nd[x].welcome && memcmp(nd[x].account, add_acc[i], DSP_ID) == 0;
    if (!has) {
      rc = TSR_EPROTOCOL;
      why = "every added member needs a device in the commit";
    }
  }
  size_t n_new = 0;
  for (size_t x = 0; x < nnd; x++) n_new += !conv_device(cv, nd[x].device);
  if (!rc && n_new && !welcome.len) {
    rc = TSR_EPROTOCOL;
    why = "the Welcome for the added devices is missing";
  }
  if (!rc && n_new + n_gone == 0) {
    rc = TSR_EPROTOCOL;
    why = "the commit changes no member (send it with send)";
  }
  if (!rc) rc = observer_save(obs, &j->observer);
  if (rc) {
    observer_restore(cv, &before);
    free(nd);
    if (j) job_free(j);
    refuse_mls(w, id, rc, why, "the commit was refused");
    return;
  }
  buf_free(&before);
  /* Rows for the store, then memory moves on (seq, roster). */
  j->is_commit = true;
  j->old_d = cv->d;
  j->n_old_d = cv->nd;
  j->add_d = calloc(n_new + 1, sizeof *j->add_d);
  j->del_d = calloc(n_gone + 1, sizeof *j->del_d);
  j->add_m = calloc(n_add + 1, sizeof *j->add_m);
  j->del_m = calloc(n_del + cv->nm + 1, sizeof *j->del_m);
  member *nm = calloc(cv->nm + n_add + 1, sizeof *nm);
  if (!j->add_d || !j->del_d || !j->add_m || !j->del_m || !nm) fatal_store(TSR_ENOMEM);
  for (size_t x = 0; x < nnd; x++)
    if (nd[x].welcome && !conv_device(cv, nd[x].device)) j->add_d[j->n_add_d++] = nd[x];
  for (size_t k = 0; k < cv->nd; k++) {
    bool kept = false;
    for (size_t x = 0; x < nnd && !kept; x++)
      kept = memcmp(nd[x].device, cv->d[k].device, DSP_ID) == 0;
    if (!kept) {
      memcpy(j->del_d[j->n_del_d++], cv->d[k].device, DSP_ID);
      convlist_remove(cv->d[k].device, cv);
    }
  }
  size_t nmm = 0;
  for (size_t i = 0; i < cv->nm; i++) {
    bool gone = in_ids((const uint8_t(*)[DSP_ID])del_acc, n_del, cv->m[i].account);
    if (!gone && cv->m[i].role == DSP_ROLE_LEFT) { /* left: gone with its last device */
      gone = true;
      for (size_t x = 0; x < nnd && gone; x++)
        gone = memcmp(nd[x].account, cv->m[i].account, DSP_ID) != 0;
      if (gone) memcpy(j->del_m[j->n_del_m++], cv->m[i].account, DSP_ID);
    }
    if (!gone) nm[nmm++] = cv->m[i];
  }
  for (size_t i = 0; i < n_del; i++) memcpy(j->del_m[j->n_del_m++], del_acc[i], DSP_ID);
  for (size_t i = 0; i < n_add; i++) {
    if (memcmp(add_acc[i], acc.ptr, DSP_ID) == 0) continue;
    memcpy(j->add_m[j->n_add_m].account, add_acc[i], DSP_ID);
    j->add_m[j->n_add_m].role = 0;
    nm[nmm++] = j->add_m[j->n_add_m++];
  }
  free(cv->m);
  cv->m = nm;
  cv->nm = nmm;
  cv->d = nd;
  cv->nd = nnd;
  for (size_t i = 0; i < j->n_add_d; i++)
    if (convlist_add(j->add_d[i].device, cv)) fatal_store(TSR_ENOMEM);
  submit_message(j, cv, acc.ptr, dev.ptr, msg, cid, welcome);
}

/* ---- LEAVE, ROLE, INFO, DEVICES ------------------------------------------------ */

/* Whether cv has an admin other than acc. */
static bool other_admin(const conv *cv, const uint8_t *acc) {
  for (size_t i = 0; i < cv->nm; i++)
    if (cv->m[i].role == DSP_ROLE_ADMIN && memcmp(cv->m[i].account, acc, DSP_ID) != 0)
      return true;
  return false;
}

/* A member leaves a group. MLS lets no one commit their own removal, so
 * the device sends a Remove proposal of its own leaf; the account is
 * marked left at once (it sends nothing more and is pushed nothing more)
 * and any remaining member commits the removal of all its devices — the
 * proposal by reference, the account's other devices by value
 * (op_members accepts removing stale devices from anyone). When the last
 * admin leaves, the longest-standing remaining member becomes admin. */
static void op_leave(wconn *w, uint32_t id, reader_t *r) {
  convreq q;
  if (!read_convreq(w, id, r, true, "LEAVE", &q)) return;
  bytes_t acc = q.acc, dev = q.dev, cid = q.cid, msg = q.msg;
  conv *cv = q.cv;
  cdev *me = q.me;
  if (answered_as_duplicate(w, id, dev.ptr, cid)) return;
  member *mm = conv_member(cv, acc.ptr);
  if (cv->kind == DSP_KIND_DIRECT) {
    refuse(w, id, TSR_ESENDER, "forbidden",
           "a direct conversation is not left (block the person instead)");
    return;
  }
  if (!mm || mm->role == DSP_ROLE_LEFT || me->stale) {
    refuse(w, id, TSR_ESENDER, "forbidden", "you left this conversation");
    return;
  }
  mls_group *obs;
  if (conv_observer(cv, &obs)) {
    refuse(w, id, TSR_EIO, "internal", "conversation state unavailable");
    return;
  }
  int rc = check_public_sender(obs, msg, acc.ptr, dev.ptr);
  buf_t before;
  buf_init(&before);
  observer_event ev;
  const char *why = NULL;
  if (!rc) rc = observer_save(obs, &before);
  if (!rc) rc = observer_process(obs, msg, &ev);
  if (!rc && (ev.content_type != MLS_CONTENT_PROPOSAL ||
              ev.proposal_type != MLS_PROPOSAL_REMOVE ||
              ev.sender_type != MLS_SENDER_MEMBER || ev.removed != ev.sender)) {
    rc = TSR_EPROTOCOL;
    why = "leaving takes a Remove proposal of the device's own leaf";
  }
  dsjob *j = rc ? NULL : job_new(w, id);
  if (!rc && !j) rc = TSR_ENOMEM;
  if (!rc) {
    j->save_observer = true;
    rc = observer_save(obs, &j->observer);
  }
  if (rc) {
    observer_restore(cv, &before);
    if (j) job_free(j);
    refuse_mls(w, id, rc, why, "the proposal was refused");
    return;
  }
  buf_free(&before);
  bool was_admin = mm->role == DSP_ROLE_ADMIN;
  mm->role = DSP_ROLE_LEFT;
  j->set_m[j->n_set_m++] = *mm;
  if (was_admin && !other_admin(cv, acc.ptr))
    for (size_t i = 0; i < cv->nm; i++)
      if (cv->m[i].role == DSP_ROLE_MEMBER) {
        cv->m[i].role = DSP_ROLE_ADMIN;
        j->set_m[j->n_set_m++] = cv->m[i];
        break;
      }
  for (size_t i = 0; i < cv->nd; i++)
    if (memcmp(cv->d[i].account, acc.ptr, DSP_ID) == 0) cv->d[i].stale = true;
  submit_message(j, cv, acc.ptr, dev.ptr, msg, cid, BYTES_NONE);
}

typedef struct {
  store_job job;
  int worker;
  uint32_t id;
  int64_t row;
  member m;
} rolejob;

static int run_role(store_conn *c, void *arg) {
  rolejob *rj = arg;
  store_stmt *s;
  int rc = store_conn_prepare(
      c, "UPDATE members SET role = ? WHERE conv = ? AND account = ?", &s);
  if (rc) return rc;
  store_bind_int64(s, 1, rj->m.role);
  store_bind_int64(s, 2, rj->row);
  store_bind_blob(s, 3, BYTES(rj->m.account, DSP_ID));
  return store_stmt_run(s);
}

static void done_role(store_job *job, int status) {
  rolejob *rj = job->arg;
  ds.inflight--;
  if (status) fatal_store(status);
  wconn *w = worker_by_index(rj->worker);
  if (w && !w->ipc.closed) {
    buf_t *b = result_begin(w, rj->id, 0, "", "");
    wr_u8(b, rj->m.role);
    ipc_end(&w->ipc);
  }
  free(rj);
}

/* An admin makes a member admin, or an admin a member again (a group
 * keeps at least one admin). Roles are the server's: they decide who may
 * add and remove people. */
static void op_role(wconn *w, uint32_t id, reader_t *r) {
  bytes_t acc, dev, gid, target;
  uint8_t role = 0;
  rd_raw(r, DSP_ID, &acc);
  rd_raw(r, DSP_ID, &dev);
  rd_raw(r, DSP_ID, &gid);
  rd_raw(r, DSP_ID, &target);
  rd_u8(r, &role);
  if (rd_done(r) || (role != DSP_ROLE_MEMBER && role != DSP_ROLE_ADMIN)) {
    refuse(w, id, TSR_EDECODE, "bad_request", "malformed ROLE");
    return;
  }
  conv *cv = idmap_get(&ds.convs, gid.ptr);
  cdev *me = cv ? conv_device(cv, dev.ptr) : NULL;
  if (!me || me->stale) {
    refuse(w, id, TSR_ENOTFOUND, "not_found", "no such conversation");
    return;
  }
  const member *caller = conv_member(cv, acc.ptr);
  member *t = conv_member(cv, target.ptr);
  if (cv->kind == DSP_KIND_DIRECT) {
    refuse(w, id, TSR_ESENDER, "forbidden",
           "a direct conversation has no roles to change");
    return;
  }
  if (!caller || caller->role != DSP_ROLE_ADMIN) {
    refuse(w, id, TSR_ESENDER, "forbidden", "only admins change roles");
    return;
  }
  if (!t || t->role == DSP_ROLE_LEFT) {
    refuse(w, id, TSR_ENOTFOUND, "not_found", "not a member of this conversation");
    return;
  }
  if (role == DSP_ROLE_MEMBER && t->role == DSP_ROLE_ADMIN &&
      !other_admin(cv, t->account)) {
    refuse(w, id, TSR_ESENDER, "forbidden", "a group keeps at least one admin");
    return;
  }
  rolejob *rj = calloc(1, sizeof *rj);
  if (!rj) {
    refuse(w, id, TSR_ENOMEM, "busy", "server busy; retry later");
    return;
  }
  rj->worker = w->index;
  rj->id = id;
  rj->row = cv->row;
  t->role = role;
  rj->m = *t;
  rj->job.run = run_role;
  rj->job.done = done_role;
  rj->job.arg = rj;
  if (store_submit(ds.sc, &rj->job) != 0) fatal_store(TSR_ENOMEM); /* memory moved on */
  ds.inflight++;
}

/* The state a device sees: the sender of a declined request is not told. */
static uint8_t state_for(const conv *cv, const cdev *me) {
  return cv->state == DSP_STATE_DECLINED &&
                 memcmp(me->account, cv->request_account, DSP_ID) != 0
             ? DSP_STATE_REQUEST
             : cv->state;
}

/* Who is in a conversation, with roles (for a member's device). */
static void op_info(wconn *w, uint32_t id, reader_t *r) {
  bytes_t dev, gid;
  rd_raw(r, DSP_ID, &dev);
  rd_raw(r, DSP_ID, &gid);
  if (rd_done(r)) {
    refuse(w, id, TSR_EDECODE, "bad_request", "malformed INFO");
    return;
  }
  conv *cv = idmap_get(&ds.convs, gid.ptr);
  cdev *me = cv ? conv_device(cv, dev.ptr) : NULL;
  if (!me || me->stale) {
    refuse(w, id, TSR_ENOTFOUND, "not_found", "no such conversation");
    return;
  }
  buf_t *b = result_begin(w, id, 0, "", "");
  wr_u8(b, cv->app);
  wr_u8(b, cv->kind);
  wr_u8(b, state_for(cv, me));
  size_t mark = wr_vec_begin(b);
  for (size_t i = 0; i < cv->nm; i++) {
    if (cv->m[i].role == DSP_ROLE_LEFT) continue;
    wr_raw(b, BYTES(cv->m[i].account, DSP_ID));
    wr_u8(b, cv->m[i].role);
  }
  wr_vec_end(b, mark);
  uint32_t live = 0;
  for (size_t i = 0; i < cv->nd; i++) live += !cv->d[i].stale;
  wr_u32(b, live);
  ipc_end(&w->ipc);
}

/* Pushes DEVICES to the online ones of devs. */
static void push_devices(const uint8_t (*devs)[DSP_ID], size_t n) {
  static const uint8_t none[DSP_ID];
  for (int wi = 0; wi < MAX_WORKERS; wi++) {
    wconn *w = ds.workers[wi];
    if (!w || w->ipc.closed) continue;
    buf_t *b = NULL;
    size_t mark = 0;
    for (size_t i = 0; i < n; i++) {
      const presence *p = idmap_get(&ds.online, devs[i]);
      if (!p || !(p->bits[wi / 64] >> (wi % 64) & 1)) continue;
      if (!b) {
        b = ipc_begin(&w->ipc, DSP_PUSH, 0);
        wr_u8(b, DSP_PUSH_DEVICES);
        wr_raw(b, BYTES(none, DSP_ID));
        wr_u64(b, 0);
        wr_u64(b, 0);
        wr_opaque(b, BYTES_NONE);
        mark = wr_vec_begin(b);
      }
      wr_raw(b, BYTES(devs[i], DSP_ID));
    }
    if (b) {
      wr_vec_end(b, mark);
      ipc_end(&w->ipc);
    }
  }
}

/* A public-life notification for an account's devices: pushed to the
 * online ones, as is; nothing is kept. */
static bool op_notify(reader_t *r) {
  reader_t dv;
  bytes_t body;
  rd_vec(r, &dv);
  rd_opaque(r, &body);
  if (rd_done(r)) return false;
  static const uint8_t none[DSP_ID];
  for (int wi = 0; wi < MAX_WORKERS; wi++) {
    wconn *w = ds.workers[wi];
    if (!w || w->ipc.closed) continue;
    reader_t v = dv;
    buf_t *b = NULL;
    size_t mark = 0;
    while (rd_more(&v)) {
      bytes_t d;
      if (rd_raw(&v, DSP_ID, &d)) return false;
      const presence *p = idmap_get(&ds.online, d.ptr);
      if (!p || !(p->bits[wi / 64] >> (wi % 64) & 1)) continue;
      if (!b) {
        b = ipc_begin(&w->ipc, DSP_PUSH, 0);
        wr_u8(b, DSP_PUSH_NOTIFY);
        wr_raw(b, BYTES(none, DSP_ID));
        wr_u64(b, 0);
        wr_u64(b, 0);
        wr_opaque(b, body);
        mark = wr_vec_begin(b);
      }
      wr_raw(b, d);
    }
    if (b) {
      wr_vec_end(b, mark);
      ipc_end(&w->ipc);
    }
  }
  return true;
}

#define DEVICES_MAX 256 /* live devices of one account named in DEVICES */

/* An account's devices changed (one linked or revoked). Revoked devices
 * become stale in every conversation, whose members are told (a ROSTER
 * push: one of them commits the removal); the account's live devices are
 * told (a DEVICES push: one of them adds a new device to the account's
 * conversations). */
static bool op_devices(reader_t *r) {
  bytes_t acc;
  reader_t rv, lv;
  rd_raw(r, DSP_ID, &acc);
  rd_vec(r, &rv);
  rd_vec(r, &lv);
  if (rd_done(r)) return false;
  while (rd_more(&rv)) {
    bytes_t d;
    if (rd_raw(&rv, DSP_ID, &d)) return false;
    convlist *l = idmap_get(&ds.by_device, d.ptr);
    for (size_t i = 0; l && i < l->n; i++) {
      cdev *x = conv_device(l->v[i], d.ptr);
      if (!x || x->stale || memcmp(x->account, acc.ptr, DSP_ID) != 0) continue;
      x->stale = true;
      push(l->v[i], DSP_PUSH_ROSTER, 0, 0, BYTES_NONE, NULL, NULL, 0);
    }
  }
  static uint8_t live[DEVICES_MAX][DSP_ID];
  size_t n = 0;
  while (rd_more(&lv)) {
    bytes_t d;
    if (rd_raw(&lv, DSP_ID, &d)) return false;
    if (n < DEVICES_MAX) memcpy(live[n++], d.ptr, DSP_ID);
  }
  if (rv.err || lv.err) return false;
  push_devices((const uint8_t(*)[DSP_ID])live, n);
  return true;
}

/* ---- CREATE ------------------------------------------------------------------ */

typedef struct {
  uint8_t account[DSP_ID];
  uint8_t device[DSP_ID];
  uint8_t key[DSP_KEY];
} devref;

static int run_create(store_conn *c, void *arg) {
  dsjob *j = arg;
  conv *cv = j->cv;
  store_stmt *s;
  int rc = store_conn_prepare(c,
                              "INSERT INTO conversations(gid, app, kind, state,"
                              " request_account, created_by, created_at, observer)"
                              " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                              &s);
  if (rc) return rc;
  store_bind_blob(s, 1, BYTES(cv->gid, DSP_ID));
  store_bind_int64(s, 2, cv->app);
  store_bind_int64(s, 3, cv->kind);
  store_bind_int64(s, 4, cv->state);
  if (cv->state == DSP_STATE_REQUEST)
    store_bind_blob(s, 5, BYTES(cv->request_account, DSP_ID));
  else
    store_bind_null(s, 5);
  store_bind_blob(s, 6, BYTES(j->account, DSP_ID));
  store_bind_int64(s, 7, (int64_t)j->at);
  store_bind_blob(s, 8, buf_view(&j->observer));
  rc = store_stmt_run(s);
  if (rc == TSR_ECONFLICT) return rc;
  if (rc) return rc;
  cv->row = store_conn_last_rowid(c);
  for (size_t i = 0; i < cv->nm; i++) {
    rc = store_conn_prepare(
        c, "INSERT INTO members(conv, account, role) VALUES (?, ?, ?)", &s);
    if (rc) return rc;
    store_bind_int64(s, 1, cv->row);
    store_bind_blob(s, 2, BYTES(cv->m[i].account, DSP_ID));
    store_bind_int64(s, 3, cv->m[i].role);
    if ((rc = store_stmt_run(s)) != 0) return rc;
  }
  int64_t welcome = 0;
  if (j->welcome.len) {
    rc = store_conn_prepare(c, "INSERT INTO welcomes(body) VALUES (?)", &s);
    if (rc) return rc;
    store_bind_blob(s, 1, buf_view(&j->welcome));
    if ((rc = store_stmt_run(s)) != 0) return rc;
    welcome = store_conn_last_rowid(c);
  }
  for (size_t i = 0; i < cv->nd; i++) {
    rc = store_conn_prepare(
        c,
        "INSERT INTO devices(conv, device, account, joined_seq, cursor)"
        " VALUES (?, ?, ?, ?, ?)",
        &s);
    if (rc) return rc;
    store_bind_int64(s, 1, cv->row);
    store_bind_blob(s, 2, BYTES(cv->d[i].device, DSP_ID));
    store_bind_blob(s, 3, BYTES(cv->d[i].account, DSP_ID));
    store_bind_int64(s, 4, (int64_t)cv->d[i].joined_seq);
    store_bind_int64(s, 5, (int64_t)cv->d[i].cursor);
    if ((rc = store_stmt_run(s)) != 0) return rc;
    if (!cv->d[i].welcome) continue;
    rc = store_conn_prepare(
        c, "INSERT INTO mailbox(device, conv, welcome) VALUES (?, ?, ?)", &s);
    if (rc) return rc;
    store_bind_blob(s, 1, BYTES(cv->d[i].device, DSP_ID));
    store_bind_int64(s, 2, cv->row);
    store_bind_int64(s, 3, welcome);
    if ((rc = store_stmt_run(s)) != 0) return rc;
  }
  return 0;
}

static void done_create(store_job *job, int status) {
  dsjob *j = job->arg;
  ds.inflight--;
  conv *cv = j->cv;
  wconn *w = worker_by_index(j->worker);
  if (status) {
    /* Nothing of it is stored: forget it in memory too. */
    idmap_del(&ds.convs, cv->gid);
    if (status != TSR_ECONFLICT) log_error("create: %s", tsr_errname(status));
    refuse(w, j->id, status, status == TSR_ECONFLICT ? "conflict" : "internal",
           status == TSR_ECONFLICT ? "a conversation with this group id exists"
                                   : "the conversation could not be stored");
    conv_free(cv);
    job_free(j);
    return;
  }
  for (size_t i = 0; i < cv->nd; i++)
    if (convlist_add(cv->d[i].device, cv)) fatal_store(TSR_ENOMEM);
  if (w && !w->ipc.closed) {
    buf_t *b = result_begin(w, j->id, 0, "", "");
    wr_u64(b, cv->next_seq);
    ipc_end(&w->ipc);
  }
  push(cv, DSP_PUSH_WELCOME, cv->next_seq, j->at, buf_view(&j->welcome), j->device, NULL,
       0);
  job_free(j);
}

static bool identity_is(bytes_t id, const uint8_t *acc, const uint8_t *dev) {
  return id.len == 2 * DSP_ID && memcmp(id.ptr, acc, DSP_ID) == 0 &&
         memcmp(id.ptr + DSP_ID, dev, DSP_ID) == 0;
}

static void op_create(wconn *w, uint32_t id, reader_t *r) {
  bytes_t acc, dev, gi, commit, welcome;
  uint8_t app = 0, kind = 0, request = 0;
  rd_raw(r, DSP_ID, &acc);
  rd_raw(r, DSP_ID, &dev);
  rd_u8(r, &app);
  rd_u8(r, &kind);
  rd_u8(r, &request);
  rd_opaque(r, &gi);
  rd_opaque(r, &commit);
  rd_opaque(r, &welcome);
  reader_t mv;
  rd_vec(r, &mv);
  if (r->err) {
    refuse(w, id, TSR_EDECODE, "bad_request", "malformed CREATE");
    return;
  }
  /* The authorised members and their live devices. */
  size_t na = 0, nd = 0;
  member ms[64];
  devref ds_[1024];
  while (rd_more(&mv) && !mv.err) {
    bytes_t a;
    reader_t dv;
    rd_raw(&mv, DSP_ID, &a);
    rd_vec(&mv, &dv);
    if (mv.err || na == 64) break;
    memcpy(ms[na].account, a.ptr, DSP_ID);
    ms[na].role =
        na == 0 ? DSP_ROLE_ADMIN : DSP_ROLE_MEMBER; /* the creator administers */
    while (rd_more(&dv) && !dv.err && nd < 1024) {
      bytes_t d, k;
      if (rd_raw(&dv, DSP_ID, &d) || rd_raw(&dv, DSP_KEY, &k)) break;
      memcpy(ds_[nd].account, a.ptr, DSP_ID);
      memcpy(ds_[nd].device, d.ptr, DSP_ID);
      memcpy(ds_[nd].key, k.ptr, DSP_KEY);
      nd++;
    }
    if (dv.err || rd_more(&dv)) mv.err = TSR_EDECODE;
    na++;
  }
  if (mv.err || rd_more(&mv) || rd_done(r) || na < 2 ||
      memcmp(ms[0].account, acc.ptr, DSP_ID)) {
    refuse(w, id, TSR_EDECODE, "bad_request", "malformed member list");
    return;
  }
  mls_group *obs = NULL;
  int rc = observer_new(gi, BYTES_NONE, NULL, &obs);
  const char *why = "the GroupInfo does not verify";
  bytes_t who;
  if (!rc && (group_epoch(obs) != 0 || group_leaf_count(obs) != 1 ||
              group_member(obs, 0, &who) != 0 || !identity_is(who, acc.ptr, dev.ptr))) {
    rc = TSR_EPROTOCOL;
    why = "a new conversation starts at epoch 0 with only its creator's device";
  }
  if (!rc && group_id(obs).len != DSP_ID) {
    rc = TSR_EPROTOCOL;
    why = "the MLS group id must be 16 bytes";
  }
  if (!rc && idmap_get(&ds.convs, group_id(obs).ptr)) {
    group_free(obs);
    refuse(w, id, TSR_ECONFLICT, "conflict", "a conversation with this group id exists");
    return;
  }
  observer_event ev;
  if (!rc) {
    rc = check_public_sender(obs, commit, acc.ptr, dev.ptr);
    if (!rc) rc = observer_process(obs, commit, &ev);
    if (!rc && ev.content_type != MLS_CONTENT_COMMIT) rc = TSR_EPROTOCOL;
    if (rc) why = "the first commit was refused";
  }
  /* Every leaf after the commit is an authorised device, and every
   * authorised member account has at least one. */
  conv *cv = rc ? NULL : calloc(1, sizeof *cv);
  if (!rc && !cv) rc = TSR_ENOMEM;
  uint32_t n = rc ? 0 : group_leaf_count(obs);
  if (!rc) {
    cv->d = calloc(n ? n : 1, sizeof *cv->d);
    cv->m = calloc(na, sizeof *cv->m);
    if (!cv->d || !cv->m) rc = TSR_ENOMEM;
  }
  bool covered[64] = {0};
  for (uint32_t i = 0; !rc && i < n; i++) {
    if (group_member(obs, i, &who) != 0) continue; /* blank */
    size_t k = 0;
    while (k < nd && !identity_is(who, ds_[k].account, ds_[k].device)) k++;
    bytes_t key;
    if (k == nd || group_member_signature_key(obs, i, &key) != 0 ||
        !bytes_eq(key, BYTES(ds_[k].key, DSP_KEY))) {
      rc = TSR_EPROTOCOL;
      why = "the commit adds a device that is not an authorised member's, or not with "
            "its registered key";
      break;
    }
    for (size_t x = 0; x < cv->nd; x++)
      if (memcmp(cv->d[x].device, ds_[k].device, DSP_ID) == 0) rc = TSR_EPROTOCOL;
    cdev *d = &cv->d[cv->nd++];
    memcpy(d->device, ds_[k].device, DSP_ID);
    memcpy(d->account, ds_[k].account, DSP_ID);
    d->joined_seq = 1;
    d->cursor = 0;
    d->welcome = memcmp(d->device, dev.ptr, DSP_ID) != 0;
    for (size_t x = 0; x < na; x++)
      if (memcmp(ms[x].account, ds_[k].account, DSP_ID) == 0) covered[x] = true;
  }
  for (size_t x = 0; !rc && x < na; x++)
    if (!covered[x]) {
      rc = TSR_EPROTOCOL;
      why = "every member needs at least one device in the group";
    }
  if (!rc && (kind != DSP_KIND_DIRECT && kind != DSP_KIND_GROUP)) rc = TSR_EINVAL;
  if (!rc && kind == DSP_KIND_DIRECT && na != 2) {
    rc = TSR_EPROTOCOL;
    why = "a direct conversation has exactly two people";
  }
  if (!rc && !welcome.len) {
    rc = TSR_EPROTOCOL;
    why = "the Welcome for the added devices is missing";
  }
  dsjob *j = rc ? NULL : job_new(w, id);
  if (!rc && !j) rc = TSR_ENOMEM;
  if (!rc) rc = observer_save(obs, &j->observer);
  if (!rc && buf_set(&j->welcome, welcome)) rc = TSR_ENOMEM;
  if (rc) {
    group_free(obs);
    conv_free(cv);
    if (j) job_free(j);
    refuse(w, id, rc, rc == TSR_ENOMEM ? "busy" : "bad_request", why);
    return;
  }
  memcpy(cv->gid, group_id(obs).ptr, DSP_ID);
  cv->obs = obs;
  cv->app = app;
  cv->kind = kind;
  cv->state = request ? DSP_STATE_REQUEST : DSP_STATE_ACTIVE;
  if (request) memcpy(cv->request_account, ms[1].account, DSP_ID);
  cv->next_seq = 1;
  cv->first_seq = 1;
  memcpy(cv->m, ms, na * sizeof *ms);
  cv->nm = na;
  j->cv = cv;
  memcpy(j->account, acc.ptr, DSP_ID);
  memcpy(j->device, dev.ptr, DSP_ID);
  j->at = wall_ms();
  j->job.run = run_create;
  j->job.done = done_create;
  /* Claimed at once so a second CREATE of the same id is a conflict. */
  if (idmap_put(&ds.convs, cv->gid, cv) || submit(j)) {
    idmap_del(&ds.convs, cv->gid);
    conv_free(cv);
    job_free(j);
    refuse(w, id, TSR_ENOMEM, "busy", "server busy; retry later");
  }
}

/* ---- message requests ----------------------------------------------------------- */

typedef struct {
  store_job job;
  int worker;
  uint32_t id;
  int64_t row;
  uint8_t state;
} statejob;

static int run_state(store_conn *c, void *arg) {
  statejob *sj = arg;
  store_stmt *s;
  int rc = store_conn_prepare(c, "UPDATE conversations SET state = ? WHERE id = ?", &s);
  if (rc) return rc;
  store_bind_int64(s, 1, sj->state);
  store_bind_int64(s, 2, sj->row);
  return store_stmt_run(s);
}

static void done_state(store_job *job, int status) {
  statejob *sj = job->arg;
  ds.inflight--;
  if (status) fatal_store(status);
  wconn *w = worker_by_index(sj->worker);
  if (w && !w->ipc.closed) {
    buf_t *b = result_begin(w, sj->id, 0, "", "");
    wr_u8(b, sj->state);
    ipc_end(&w->ipc);
  }
  free(sj);
}

/* The recipient of a message request accepts it (it becomes an ordinary
 * conversation) or declines it (it leaves their list and nothing more is
 * pushed to them; the sender is not told). A declined request can still be
 * accepted later. */
static void op_state(wconn *w, uint32_t id, reader_t *r) {
  bytes_t acc, dev, gid;
  uint8_t action = 0;
  rd_raw(r, DSP_ID, &acc);
  rd_raw(r, DSP_ID, &dev);
  rd_raw(r, DSP_ID, &gid);
  rd_u8(r, &action);
  if (rd_done(r) || (action != DSP_ACCEPT && action != DSP_DECLINE)) {
    refuse(w, id, TSR_EDECODE, "bad_request", "malformed STATE");
    return;
  }
  conv *cv = idmap_get(&ds.convs, gid.ptr);
  if (!cv || !conv_device(cv, dev.ptr)) {
    refuse(w, id, TSR_ENOTFOUND, "not_found", "no such conversation");
    return;
  }
  bool pending = cv->state == DSP_STATE_REQUEST || cv->state == DSP_STATE_DECLINED;
  if (!pending || memcmp(cv->request_account, acc.ptr, DSP_ID) != 0 ||
      (action == DSP_DECLINE && cv->state != DSP_STATE_REQUEST)) {
    refuse(w, id, TSR_ESTATE, "not_a_request",
           "this conversation is no request of yours");
    return;
  }
  statejob *sj = calloc(1, sizeof *sj);
  if (!sj) {
    refuse(w, id, TSR_ENOMEM, "busy", "server busy; retry later");
    return;
  }
  sj->worker = w->index;
  sj->id = id;
  sj->row = cv->row;
  sj->state = action == DSP_ACCEPT ? DSP_STATE_ACTIVE : DSP_STATE_DECLINED;
  sj->job.run = run_state;
  sj->job.done = done_state;
  sj->job.arg = sj;
  if (store_submit(ds.sc, &sj->job) != 0) {
    free(sj);
    refuse(w, id, TSR_ENOMEM, "busy", "server busy; retry later");
    return;
  }
  ds.inflight++;
  cv->state = sj->state;
}

/* ---- SYNC, ACK, LIST ------------------------------------------------------------- */

static void op_sync(wconn *w, uint32_t id, reader_t *r) {
  bytes_t dev, gid;
  uint64_t after = 0;
  uint32_t limit = 0;
  rd_raw(r, DSP_ID, &dev);
  rd_raw(r, DSP_ID, &gid);
  rd_u64(r, &after);
  rd_u32(r, &limit);
  if (rd_done(r)) {
    refuse(w, id, TSR_EDECODE, "bad_request", "malformed SYNC");
    return;
  }
  conv *cv = idmap_get(&ds.convs, gid.ptr);
  cdev *me = cv ? conv_device(cv, dev.ptr) : NULL;
  if (!me || me->stale) { /* a device that left (or was revoked) reads nothing more */
    refuse(w, id, TSR_ENOTFOUND, "not_found", "no such conversation");
    return;
  }
  if (limit == 0 || limit > DSP_SYNC_MAX) limit = DSP_SYNC_MAX;
  /* A device sees messages from the moment it joined. */
  uint64_t from = after + 1;
  if (from < me->joined_seq) from = me->joined_seq;
  if (from < cv->first_seq) from = cv->first_seq;
  /* Only what is committed: positions are recorded at completion. */
  uint64_t end = cv->first_seq + cv->npos;
  store_conn *c;
  store_stmt *s;
  if (store_reader_get(ds.st, &c) ||
      store_conn_prepare(c, "SELECT at, body FROM log WHERE pos = ?", &s)) {
    refuse(w, id, TSR_EIO, "internal", "store unavailable");
    return;
  }
  buf_t *b = result_begin(w, id, 0, "", "");
  size_t mark = wr_vec_begin(b);
  uint32_t got = 0;
  uint64_t seq = from;
  for (; seq < end && got < limit; seq++) {
    store_bind_int64(s, 1, cv->pos[seq - cv->first_seq]);
    if (store_step(s) == STORE_ROW) {
      wr_u64(b, seq);
      wr_u64(b, (uint64_t)store_col_int64(s, 0));
      wr_opaque(b, store_col_blob(s, 1));
      got++;
    }
    store_stmt_reset(s);
  }
  wr_vec_end(b, mark);
  wr_u8(b, seq < end);
  ipc_end(&w->ipc);
}

static void op_ack(wconn *w, uint32_t id, reader_t *r) {
  bytes_t dev, gid;
  uint64_t seq = 0;
  rd_raw(r, DSP_ID, &dev);
  rd_raw(r, DSP_ID, &gid);
  rd_u64(r, &seq);
  if (rd_done(r)) {
    refuse(w, id, TSR_EDECODE, "bad_request", "malformed ACK");
    return;
  }
  conv *cv = idmap_get(&ds.convs, gid.ptr);
  cdev *me = cv ? conv_device(cv, dev.ptr) : NULL;
  if (!me) {
    refuse(w, id, TSR_ENOTFOUND, "not_found", "no such conversation");
    return;
  }
  uint64_t last = cv->first_seq + cv->npos - 1;
  if (seq > last) seq = last;
  if (seq > me->cursor) {
    me->cursor = seq;
    me->dirty = true;
  }
  /* Acknowledging anything (seq 0 included) means the Welcome arrived. */
  if (me->welcome) {
    me->welcome = false;
    me->dirty = true;
  }
  buf_t *b = result_begin(w, id, 0, "", "");
  wr_u64(b, me->cursor);
  ipc_end(&w->ipc);
}

static void op_list(wconn *w, uint32_t id, reader_t *r) {
  bytes_t dev;
  rd_raw(r, DSP_ID, &dev);
  if (rd_done(r)) {
    refuse(w, id, TSR_EDECODE, "bad_request", "malformed LIST");
    return;
  }
  convlist *l = idmap_get(&ds.by_device, dev.ptr);
  store_conn *c = NULL;
  store_stmt *s = NULL;
  buf_t *b = result_begin(w, id, 0, "", "");
  size_t mark = wr_vec_begin(b);
  for (size_t i = 0; l && i < l->n; i++) {
    conv *cv = l->v[i];
    cdev *me = conv_device(cv, dev.ptr);
    if (!me || me->stale) continue; /* left, or being removed */
    wr_raw(b, BYTES(cv->gid, DSP_ID));
    wr_u8(b, cv->app);
    wr_u8(b, cv->kind);
    wr_u8(b, state_for(cv, me));
    wr_u64(b, me->joined_seq);
    wr_u64(b, cv->first_seq + cv->npos - 1);
    wr_u64(b, me->cursor);
    bytes_t welcome = BYTES_NONE;
    if (me->welcome && (c || store_reader_get(ds.st, &c) == 0) &&
        store_conn_prepare(
            c,
            "SELECT w.body FROM mailbox m JOIN welcomes w ON w.id = m.welcome"
            " WHERE m.device = ? AND m.conv = ?",
            &s) == 0) {
      store_bind_blob(s, 1, BYTES(me->device, DSP_ID));
      store_bind_int64(s, 2, cv->row);
      if (store_step(s) == STORE_ROW) welcome = store_col_blob(s, 0);
    }
    wr_opaque(b, welcome);
    if (s) store_stmt_reset(s);
    s = NULL;
    const member *mm = conv_member(cv, me->account);
    wr_u8(b, mm ? mm->role : DSP_ROLE_MEMBER);
    size_t smark = wr_vec_begin(b);
    for (size_t k = 0; k < cv->nd; k++)
      if (cv->d[k].stale) wr_raw(b, BYTES(cv->d[k].device, DSP_ID));
    wr_vec_end(b, smark);
  }
  wr_vec_end(b, mark);
  ipc_end(&w->ipc);
}

/* ---- presence ------------------------------------------------------------------ */

static void set_online(int wi, const uint8_t *dev, bool on) {
  if (wi < 0 || wi >= MAX_WORKERS) return;
  presence *p = idmap_get(&ds.online, dev);
  if (!p && on) {
    p = calloc(1, sizeof *p);
    if (!p || idmap_put(&ds.online, dev, p)) {
      free(p);
      return;
    }
  }
  if (!p) return;
  if (on)
    p->bits[wi / 64] |= 1ull << (wi % 64);
  else
    p->bits[wi / 64] &= ~(1ull << (wi % 64));
  bool any = false;
  for (size_t i = 0; i < MAX_WORKERS / 64; i++) any |= p->bits[i] != 0;
  if (!any) free(idmap_del(&ds.online, dev));
}

/* A worker went away: none of its devices is online through it. */
static void drop_worker_presence(int wi) {
  for (size_t i = 0; i < ds.online.nb; i++)
    for (idnode *x = ds.online.b[i], *nx; x; x = nx) {
      nx = x->next;
      set_online(wi, x->key, false);
    }
}

/* ---- worker connections -------------------------------------------------------- */

static void on_frame(ipc_conn *c, uint8_t type, uint32_t id, bytes_t fields) {
  wconn *w = c->owner;
  reader_t r;
  rd_init(&r, fields);
  if (type == DSP_HELLO) {
    uint32_t idx = 0;
    if (rd_u32(&r, &idx) || rd_done(&r) || idx >= MAX_WORKERS || w->index >= 0) {
      ipc_close(c);
      return;
    }
    if (ds.workers[idx] && ds.workers[idx] != w) ipc_close(&ds.workers[idx]->ipc);
    w->index = (int)idx;
    ds.workers[idx] = w;
    return;
  }
  if (w->index < 0) { /* nothing before HELLO */
    ipc_close(c);
    return;
  }
  bytes_t dev, acc;
  switch (type) {
  case DSP_ONLINE:
    if (rd_raw(&r, DSP_ID, &dev) || rd_raw(&r, DSP_ID, &acc) || rd_done(&r)) break;
    set_online(w->index, dev.ptr, true);
    return;
  case DSP_OFFLINE:
    if (rd_raw(&r, DSP_ID, &dev) || rd_done(&r)) break;
    set_online(w->index, dev.ptr, false);
    return;
  case DSP_CREATE: op_create(w, id, &r); return;
  case DSP_SEND: op_send(w, id, &r); return;
  case DSP_TRANSIENT: op_transient(w, id, &r); return;
  case DSP_SYNC: op_sync(w, id, &r); return;
  case DSP_ACK: op_ack(w, id, &r); return;
  case DSP_LIST: op_list(w, id, &r); return;
  case DSP_MEMBERS: op_members(w, id, &r); return;
  case DSP_STATE: op_state(w, id, &r); return;
  case DSP_LEAVE: op_leave(w, id, &r); return;
  case DSP_ROLE: op_role(w, id, &r); return;
  case DSP_INFO: op_info(w, id, &r); return;
  case DSP_DEVICES:
    if (!op_devices(&r)) break;
    return;
  case DSP_NOTIFY:
    if (!op_notify(&r)) break;
    return;
  default: break;
  }
  log_error("worker %d: malformed frame (type %u): disconnecting it", w->index, type);
  ipc_close(c);
}

static void on_worker_close(ipc_conn *c) {
  wconn *w = c->owner;
  if (w->index >= 0 && ds.workers[w->index] == w) {
    ds.workers[w->index] = NULL;
    drop_worker_presence(w->index);
  }
  free(w);
}

static void on_worker_io(loop_t *l, loop_handle *h, unsigned events) {
  (void)l;
  ipc_on_io((ipc_conn *)h, events);
}

static void on_accept(loop_t *l, loop_handle *h, unsigned events) {
  (void)events;
  for (;;) {
    int fd = accept(h->fd, NULL, NULL);
    if (fd < 0) return;
    if (fcntl(fd, F_SETFL, O_NONBLOCK) != 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) {
      close(fd);
      continue;
    }
    wconn *w = calloc(1, sizeof *w);
    if (!w) {
      close(fd);
      continue;
    }
    w->index = -1;
    w->ipc.on_frame = on_frame;
    w->ipc.on_close = on_worker_close;
    if (ipc_open(&w->ipc, l, fd, KIND_WORKER, w) != 0) {
      close(fd);
      free(w);
    }
  }
}

/* ---- cursors --------------------------------------------------------------------- */

typedef struct {
  store_job job;
  size_t n;
  struct {
    int64_t row;
    uint8_t device[DSP_ID];
    uint64_t cursor;
    bool drop_welcome;
  } * v;
} flushjob;

static int run_flush(store_conn *c, void *arg) {
  flushjob *f = arg;
  for (size_t i = 0; i < f->n; i++) {
    store_stmt *s;
    int rc = store_conn_prepare(
        c, "UPDATE devices SET cursor = max(cursor, ?) WHERE conv = ? AND device = ?",
        &s);
    if (rc) return rc;
    store_bind_int64(s, 1, (int64_t)f->v[i].cursor);
    store_bind_int64(s, 2, f->v[i].row);
    store_bind_blob(s, 3, BYTES(f->v[i].device, DSP_ID));
    if ((rc = store_stmt_run(s)) != 0) return rc;
    if (!f->v[i].drop_welcome) continue;
    rc = store_conn_prepare(c, "DELETE FROM mailbox WHERE device = ? AND conv = ?", &s);
    if (rc) return rc;
    store_bind_blob(s, 1, BYTES(f->v[i].device, DSP_ID));
    store_bind_int64(s, 2, f->v[i].row);
    if ((rc = store_stmt_run(s)) != 0) return rc;
  }
  return 0;
}

static void done_flush(store_job *job, int status) {
  flushjob *f = job->arg;
  ds.inflight--;
  if (status) log_error("cursors not saved: %s (kept in memory)", tsr_errname(status));
  free(f->v);
  free(f);
}

/* Writes the cursors that moved since the last flush (one job). A crash
 * loses at most FLUSH_MS of them: those messages are delivered again and
 * the client drops what it already has. */
static void flush_cursors(void) {
  flushjob *f = calloc(1, sizeof *f);
  size_t cap = 0;
  for (size_t i = 0; f && i < ds.convs.nb; i++)
    for (idnode *x = ds.convs.b[i]; x; x = x->next) {
      conv *cv = x->val;
      for (size_t k = 0; k < cv->nd; k++) {
        cdev *d = &cv->d[k];
        if (!d->dirty) continue;
        if (f->n == cap) {
          cap = cap ? 2 * cap : 64;
          void *v = realloc(f->v, cap * sizeof *f->v);
          if (!v) goto out;
          f->v = v;
        }
        f->v[f->n].row = cv->row;
        memcpy(f->v[f->n].device, d->device, DSP_ID);
        f->v[f->n].cursor = d->cursor;
        f->v[f->n].drop_welcome = !d->welcome;
        f->n++;
        d->dirty = false;
      }
    }
out:
  if (!f) return;
  if (!f->n) {
    free(f->v);
    free(f);
    return;
  }
  f->job.run = run_flush;
  f->job.done = done_flush;
  f->job.arg = f;
  if (store_submit(ds.sc, &f->job) != 0) {
    free(f->v);
    free(f);
    return;
  }
  ds.inflight++;
}

static void on_flush_timer(loop_t *l, loop_timer *t) {
  flush_cursors();
  loop_timer_start(l, t, FLUSH_MS);
}

/* ---- retention ------------------------------------------------------------------- */

/* Rows deleted per sweep job: the job shares a commit with the messages
 * being stored, so a big one would hold their acknowledgements back (50,000
 * at once held them ~100 ms; 1,000 rows of one conversation, a page each,
 * ~10 ms). When a sweep leaves rows due the next one follows after
 * SWEEP_MORE_MS, until the backlog is gone. */
#define SWEEP_MAX_ROWS 1000
#define SWEEP_MIN_SHARE 16 /* rows per conversation per job, at least */
#define SWEEP_MORE_MS 5

typedef struct {
  store_job job;
  int64_t *pos;
  size_t n;
  struct swept {
    int64_t row;        /* a conversation swept */
    uint64_t first_seq; /* ... and its first message kept from now on */
  } * convs;
  size_t n_convs, cap_convs;
} sweepjob;

/* Deletes the rows of sj->pos (sorted): one statement per run of
 * consecutive positions — the conversations' logs interleave in arrival
 * order, so what every device has is mostly one long run, and a range
 * delete costs a fraction of deleting its rows one by one (1,000 of those
 * took ~10 ms, holding the commit they shared back). */
static int run_sweep(store_conn *c, void *arg) {
  sweepjob *sj = arg;
  for (size_t i = 0; i < sj->n;) {
    size_t k = i + 1;
    while (k < sj->n && sj->pos[k] == sj->pos[k - 1] + 1) k++;
    store_stmt *s;
    int rc = store_conn_prepare(c, "DELETE FROM log WHERE pos >= ? AND pos <= ?", &s);
    if (rc) return rc;
    store_bind_int64(s, 1, sj->pos[i]);
    store_bind_int64(s, 2, sj->pos[k - 1]);
    if ((rc = store_stmt_run(s)) != 0) return rc;
    i = k;
  }
  for (size_t i = 0; i < sj->n_convs; i++) {
    store_stmt *s;
    int rc =
        store_conn_prepare(c, "UPDATE conversations SET first_seq = ? WHERE id = ?", &s);
    if (rc) return rc;
    store_bind_int64(s, 1, (int64_t)sj->convs[i].first_seq);
    store_bind_int64(s, 2, sj->convs[i].row);
    if ((rc = store_stmt_run(s)) != 0) return rc;
  }
  return 0;
}

static void done_sweep(store_job *job, int status) {
  sweepjob *sj = job->arg;
  ds.inflight--;
  /* Memory forgot them already: a failed delete is a store failure (the
   * restart reloads the rows and the next sweep deletes them). */
  if (status) fatal_store(status);
  free(sj->pos);
  free(sj->convs);
  free(sj);
}

static int cmp_pos(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* Deletes, per conversation, the oldest messages every member device has
 * acknowledged, and those older than message_retention whoever has them.
 * True when it stopped at SWEEP_MAX_ROWS (more may be due). */
/* How many of cv's oldest messages may go now (every member device has
 * them, or they are past the retention cutoff). */
static size_t sweepable(const conv *cv, uint32_t cutoff) {
  if (!cv->npos) return 0;
  uint64_t end = cv->first_seq + cv->npos; /* committed ones */
  uint64_t acked = end - 1;
  for (size_t k = 0; k < cv->nd; k++) {
    uint64_t c = cv->d[k].cursor;
    if (c + 1 < cv->d[k].joined_seq) c = cv->d[k].joined_seq - 1;
    if (c < acked) acked = c;
  }
  uint64_t bound = acked + 1 > cv->first_seq ? acked + 1 : cv->first_seq;
  if (bound > end) bound = end;
  while (bound < end && cv->at_s[bound - cv->first_seq] < cutoff) bound++;
  return (size_t)(bound - cv->first_seq);
}

static bool sweep(void) {
  uint32_t cutoff = (uint32_t)((wall_ms() - ds.cfg->message_retention_ms) / 1000);
  /* The log interleaves conversations in arrival order: deleting one
   * conversation's backlog at a time touches a page per row. So every
   * conversation gives an equal share of the job, and the rows deleted
   * together are neighbours (runs of positions, deleted by range). */
  size_t active = 0;
  for (size_t i = 0; i < ds.convs.nb; i++)
    for (idnode *x = ds.convs.b[i]; x; x = x->next)
      active += sweepable(x->val, cutoff) > 0;
  if (!active) return false;
  size_t share = SWEEP_MAX_ROWS / active;
  if (share < SWEEP_MIN_SHARE) share = SWEEP_MIN_SHARE;
  sweepjob *sj = calloc(1, sizeof *sj);
  size_t cap = 0;
  bool more = false; /* some conversation had more than it gave */
  for (size_t i = 0; sj && i < ds.convs.nb; i++)
    for (idnode *x = ds.convs.b[i]; x; x = x->next) {
      conv *cv = x->val;
      size_t can = sweepable(cv, cutoff), drop = can;
      if (drop > share) drop = share;
      if (drop > SWEEP_MAX_ROWS - sj->n) drop = SWEEP_MAX_ROWS - sj->n;
      more |= can > drop;
      if (!drop) continue;
      if (sj->n_convs == sj->cap_convs) {
        size_t nc = sj->cap_convs ? 2 * sj->cap_convs : 64;
        struct swept *v = realloc(sj->convs, nc * sizeof *v);
        if (!v) break;
        sj->convs = v;
        sj->cap_convs = nc;
      }
      if (sj->n + drop > cap) {
        size_t nc = cap ? 2 * cap : 1024;
        while (nc < sj->n + drop) nc *= 2;
        int64_t *v = realloc(sj->pos, nc * sizeof *v);
        if (!v) break;
        sj->pos = v;
        cap = nc;
      }
      memcpy(sj->pos + sj->n, cv->pos, drop * sizeof *cv->pos);
      sj->n += drop;
      for (size_t k = 0; k < drop; k++)
        if (cv->ddp[k]) dd_remove(cv->ddp[k]);
      cv->npos -= drop;
      memmove(cv->pos, cv->pos + drop, cv->npos * sizeof *cv->pos);
      memmove(cv->at_s, cv->at_s + drop, cv->npos * sizeof *cv->at_s);
      memmove(cv->ddp, cv->ddp + drop, cv->npos * sizeof *cv->ddp);
      cv->first_seq += drop;
      sj->convs[sj->n_convs++] = (struct swept){cv->row, cv->first_seq};
    }
  if (!sj) return false;
  if (!sj->n) {
    free(sj->pos);
    free(sj->convs);
    free(sj);
    return false;
  }
  qsort(sj->pos, sj->n, sizeof *sj->pos, cmp_pos);
  sj->job.run = run_sweep;
  sj->job.done = done_sweep;
  sj->job.arg = sj;
  if (store_submit(ds.sc, &sj->job) != 0) fatal_store(TSR_ELIMIT);
  ds.inflight++;
  return more;
}

static void on_sweep_timer(loop_t *l, loop_timer *t) {
  loop_timer_start(l, t, sweep() ? SWEEP_MORE_MS : sweep_interval());
}

/* ---- start, stop ------------------------------------------------------------------ */

static int store_dir(const cfg *c, char *out, size_t cap) {
  int n = snprintf(out, cap, "%s/%s", c->data_dir, DSP_DIR);
  if (n < 0 || (size_t)n >= cap) return TSR_EINVAL;
  if (mkdir(out, 0700) != 0 && errno != EEXIST) return TSR_EIO;
  return 0;
}

static int open_store(const cfg *c, store **out) {
  char dir[CFG_PATH_MAX + 8], err[256] = "";
  int rc = store_dir(c, dir, sizeof dir);
  if (rc) return rc;
  store_opts o = {.migrations = ds_schema,
                  .n_migrations = sizeof ds_schema / sizeof ds_schema[0],
                  .queue_max = 1 << 16,
                  .errbuf = err,
                  .errbuf_len = sizeof err};
  rc = store_open(dir, &o, out);
  if (rc) log_error("delivery service store %s: %s %s", dir, tsr_errname(rc), err);
  return rc;
}

int ds_prepare_store(const cfg *c) {
  store *st = NULL;
  int rc = open_store(c, &st);
  store_close(st);
  return rc;
}

/* The conversation with store row r in by_row (sorted by row), or NULL. */
static conv *find_row(conv *const *by_row, size_t n, int64_t r) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (by_row[mid]->row < r)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < n && by_row[lo]->row == r ? by_row[lo] : NULL;
}

static int cmp_row(const void *a, const void *b) {
  const conv *x = *(conv *const *)a, *y = *(conv *const *)b;
  return x->row < y->row ? -1 : x->row > y->row;
}

/* Rebuilds memory from the store: conversations, members, devices, then
 * one scan of the log for positions, next seqs and de-duplication keys. */
static int load(void) {
  store_conn *c;
  store_stmt *s;
  int rc = store_reader_get(ds.st, &c);
  if (rc) return rc;
  rc = store_conn_prepare(
      c,
      "SELECT id, gid, app, kind, state, request_account, first_seq FROM conversations",
      &s);
  while (rc >= 0 && (rc = store_step(s)) == STORE_ROW) {
    conv *cv = calloc(1, sizeof *cv);
    bytes_t gid = store_col_blob(s, 1);
    if (!cv || gid.len != DSP_ID) {
      free(cv);
      rc = cv ? TSR_EDECODE : TSR_ENOMEM;
      break;
    }
    cv->row = store_col_int64(s, 0);
    memcpy(cv->gid, gid.ptr, DSP_ID);
    cv->app = (uint8_t)store_col_int64(s, 2);
    cv->kind = (uint8_t)store_col_int64(s, 3);
    cv->state = (uint8_t)store_col_int64(s, 4);
    bytes_t ra = store_col_blob(s, 5);
    if (ra.len == DSP_ID) memcpy(cv->request_account, ra.ptr, DSP_ID);
    int64_t first = store_col_int64(s, 6);
    cv->next_seq = cv->first_seq = first > 0 ? (uint64_t)first : 1;
    rc = idmap_put(&ds.convs, cv->gid, cv);
  }
  if (s) store_stmt_reset(s);
  if (rc < 0) return rc;
  /* Rows by conversation id: a small map from row to conv. */
  size_t n = ds.convs.n;
  conv **by_row = calloc(n + 1, sizeof *by_row);
  if (!by_row) return TSR_ENOMEM;
  size_t k = 0;
  for (size_t i = 0; i < ds.convs.nb; i++)
    for (idnode *x = ds.convs.b[i]; x; x = x->next) by_row[k++] = x->val;
  qsort(by_row, n, sizeof *by_row, cmp_row);
  rc = store_conn_prepare(c, "SELECT conv, account, role FROM members", &s);
  while (rc >= 0 && (rc = store_step(s)) == STORE_ROW) {
    conv *cv = find_row(by_row, n, store_col_int64(s, 0));
    bytes_t a = store_col_blob(s, 1);
    if (!cv || a.len != DSP_ID) continue;
    member *m = realloc(cv->m, (cv->nm + 1) * sizeof *m);
    if (!m) {
      rc = TSR_ENOMEM;
      break;
    }
    cv->m = m;
    memcpy(m[cv->nm].account, a.ptr, DSP_ID);
    m[cv->nm++].role = (uint8_t)store_col_int64(s, 2);
  }
  store_stmt_reset(s);
  if (rc >= 0)
    rc = store_conn_prepare(c,
                            "SELECT d.conv, d.device, d.account, d.joined_seq, d.cursor,"
                            " EXISTS (SELECT 1 FROM mailbox m WHERE m.device = d.device"
                            " AND m.conv = d.conv) FROM devices d",
                            &s);
  while (rc >= 0 && (rc = store_step(s)) == STORE_ROW) {
    conv *cv = find_row(by_row, n, store_col_int64(s, 0));
    bytes_t d = store_col_blob(s, 1), a = store_col_blob(s, 2);
    if (!cv || d.len != DSP_ID || a.len != DSP_ID) continue;
    cdev *v = realloc(cv->d, (cv->nd + 1) * sizeof *v);
    if (!v) {
      rc = TSR_ENOMEM;
      break;
    }
    cv->d = v;
    cdev *x = &v[cv->nd++];
    memset(x, 0, sizeof *x);
    memcpy(x->device, d.ptr, DSP_ID);
    memcpy(x->account, a.ptr, DSP_ID);
    x->joined_seq = (uint64_t)store_col_int64(s, 3);
    x->cursor = (uint64_t)store_col_int64(s, 4);
    x->welcome = store_col_int64(s, 5) != 0;
    if (convlist_add(x->device, cv)) rc = TSR_ENOMEM;
  }
  store_stmt_reset(s);
  /* Devices of members who left, or revoked while the service was down. */
  for (size_t i = 0; rc >= 0 && i < n; i++) {
    conv *cv = by_row[i];
    for (size_t di = 0; di < cv->nd; di++) {
      cdev *d = &cv->d[di];
      const member *mm = conv_member(cv, d->account);
      d->stale =
          (mm && mm->role == DSP_ROLE_LEFT) || device_revoked(d->device, d->account);
    }
  }
  if (rc >= 0)
    rc = store_conn_prepare(c,
                            "SELECT pos, conv, seq, sender, client_id, at FROM log"
                            " ORDER BY pos",
                            &s);
  while (rc >= 0 && (rc = store_step(s)) == STORE_ROW) {
    conv *cv = find_row(by_row, n, store_col_int64(s, 1));
    if (!cv) continue;
    uint64_t seq = (uint64_t)store_col_int64(s, 2);
    if (cv->npos == 0) cv->first_seq = seq;
    if (seq != cv->first_seq + cv->npos) {
      log_error("conversation %lld: log has a gap at seq %llu", (long long)cv->row,
                (unsigned long long)seq);
      rc = TSR_EIO;
      break;
    }
    dedup *dd = NULL;
    if (dd_add(store_col_blob(s, 3).ptr, store_col_blob(s, 4), seq, &dd) ||
        conv_push_pos(cv, store_col_int64(s, 0), (uint64_t)store_col_int64(s, 5), dd))
      rc = TSR_ENOMEM;
    cv->next_seq = seq + 1;
  }
  store_stmt_reset(s);
  free(by_row);
  return rc < 0 ? rc : 0;
}

static int open_listener(const cfg *c) {
  int n = snprintf(ds.sock_path, sizeof ds.sock_path, "%s/%s", c->data_dir, DSP_SOCKET);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  if (n < 0 || (size_t)n >= sizeof a.sun_path) {
    log_error("delivery service socket path too long: %s", ds.sock_path);
    return -1;
  }
  memcpy(a.sun_path, ds.sock_path, (size_t)n + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  unlink(ds.sock_path); /* a previous run's */
  mode_t old = umask(077);
  int rc = bind(fd, (struct sockaddr *)&a, sizeof a);
  umask(old);
  if (rc != 0 || listen(fd, 256) != 0) {
    log_error("delivery service socket %s: %s", ds.sock_path, strerror(errno));
    close(fd);
    return -1;
  }
  return fd;
}

static void on_store(loop_t *l, loop_handle *h, unsigned events) {
  (void)l;
  (void)h;
  (void)events;
  /* A commit completes a batch of jobs: their answers and pushes go out
   * together, one write per worker. */
  for (int i = 0; i < MAX_WORKERS; i++)
    if (ds.workers[i]) ipc_cork(&ds.workers[i]->ipc);
  store_client_drain(ds.sc);
  for (int i = 0; i < MAX_WORKERS; i++)
    if (ds.workers[i]) ipc_uncork(&ds.workers[i]->ipc);
}

static void on_signal(loop_t *l, loop_handle *h, unsigned events) {
  (void)events;
  struct signalfd_siginfo si;
  while (read(h->fd, &si, sizeof si) == (ssize_t)sizeof si) {
    if (si.ssi_signo == SIGHUP) {
      log_reopen();
    } else if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
      ds.stopping = true;
      loop_stop(l);
    }
  }
}

int ds_main(const cfg *c) {
  memset(&ds, 0, sizeof ds);
  ds.cfg = c;
  crypto_shorthash_keygen(ds.seen_key);
  ds.listener.fd = ds.sig.fd = ds.store_h.fd = -1;
  int rc = loop_init(&ds.loop);
  if (rc) {
    log_error("delivery service loop: %s", strerror(-rc));
    return 2;
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  sigprocmask(SIG_BLOCK, &set, NULL);
  ds.sig.fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  ds.sig.kind = KIND_SIGNAL;
  int status = 2;
  if (ds.sig.fd < 0 || open_store(c, &ds.st) != 0 || store_client_new(ds.st, &ds.sc) != 0)
    goto out;
  if ((rc = load()) != 0) {
    log_error("delivery service: loading the store failed (%s)", tsr_errname(rc));
    goto out;
  }
  ds.listener.fd = open_listener(c);
  if (ds.listener.fd < 0) goto out;
  ds.listener.kind = KIND_LISTEN;
  ds.store_h.fd = store_client_fd(ds.sc);
  ds.store_h.kind = KIND_STORE;
  loop_set_io_cb(&ds.loop, KIND_LISTEN, on_accept);
  loop_set_io_cb(&ds.loop, KIND_WORKER, on_worker_io);
  loop_set_io_cb(&ds.loop, KIND_SIGNAL, on_signal);
  loop_set_io_cb(&ds.loop, KIND_STORE, on_store);
  loop_set_timer_cb(&ds.loop, TIMER_FLUSH, on_flush_timer);
  ds.flush_timer.kind = TIMER_FLUSH;
  loop_set_timer_cb(&ds.loop, TIMER_SWEEP, on_sweep_timer);
  ds.sweep_timer.kind = TIMER_SWEEP;
  if (loop_add(&ds.loop, &ds.listener, LOOP_IN) || loop_add(&ds.loop, &ds.sig, LOOP_IN) ||
      loop_add(&ds.loop, &ds.store_h, LOOP_IN))
    goto out;
  loop_timer_start(&ds.loop, &ds.flush_timer, FLUSH_MS);
  loop_timer_start(&ds.loop, &ds.sweep_timer, sweep_interval());
  log_info("delivery service ready: %zu conversations", ds.convs.n);
  rc = loop_run(&ds.loop);
  status = rc ? 1 : 0;
  flush_cursors();
out:
  for (int i = 0; i < MAX_WORKERS; i++)
    if (ds.workers[i]) ipc_close(&ds.workers[i]->ipc);
  if (ds.sc) store_client_free(ds.sc); /* completes what is in flight */
  store_close(ds.st);
  if (ds.listener.fd >= 0) {
    close(ds.listener.fd);
    unlink(ds.sock_path);
  }
  if (ds.sig.fd >= 0) close(ds.sig.fd);
  sqlite3_finalize(ds.block_stmt);
  sqlite3_finalize(ds.device_stmt);
  sqlite3_close(ds.accounts_db);
  idmap_free(&ds.convs, conv_free);
  idmap_free(&ds.by_device, convlist_free);
  idmap_free(&ds.online, free);
  for (size_t i = 0; i < ds.ddnb; i++)
    for (dedup *x = ds.dd[i], *nx; x; x = nx) {
      nx = x->next;
      free(x);
    }
  for (size_t i = ds.dd_mig; ds.dd_old && i < ds.dd_oldnb; i++)
    for (dedup *x = ds.dd_old[i], *nx; x; x = nx) {
      nx = x->next;
      free(x);
    }
  free(ds.dd);
  free(ds.dd_old);
  loop_deinit(&ds.loop);
  if (status == 0) log_info("delivery service stopped");
  return status;
}

/* ---- fuzzing ---------------------------------------------------------------------- */

static cfg fuzz_cfg;
static int fuzz_peer = -1; /* the "worker" end: answers are read and dropped */

static void fuzz_connect(void) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return;
  fcntl(sv[0], F_SETFL, O_NONBLOCK);
  fcntl(sv[1], F_SETFL, O_NONBLOCK);
  wconn *w = calloc(1, sizeof *w);
  if (!w) return;
  w->ipc.on_frame = on_frame;
  w->ipc.on_close = on_worker_close;
  if (ipc_open(&w->ipc, &ds.loop, sv[0], KIND_WORKER, w) != 0) {
    free(w);
    return;
  }
  w->index = 0;
  ds.workers[0] = w;
  if (fuzz_peer >= 0) close(fuzz_peer);
  fuzz_peer = sv[1];
}

int ds_fuzz_setup(const char *dir) {
  cfg_defaults(&fuzz_cfg);
  snprintf(fuzz_cfg.data_dir, sizeof fuzz_cfg.data_dir, "%s", dir);
  memset(&ds, 0, sizeof ds);
  ds.cfg = &fuzz_cfg;
  if (loop_init(&ds.loop) || ds_prepare_store(&fuzz_cfg) ||
      open_store(&fuzz_cfg, &ds.st) || store_client_new(ds.st, &ds.sc) || load())
    return -1;
  fuzz_connect();
  return ds.workers[0] ? 0 : -1;
}

void ds_fuzz_frame(const uint8_t *data, size_t n) {
  if (!ds.workers[0]) fuzz_connect(); /* a malformed frame closed the last one */
  if (!ds.workers[0] || n == 0) return;
  on_frame(&ds.workers[0]->ipc, data[0], 1, (bytes_t){data + 1, n - 1});
  while (ds.inflight) { /* let the writer commit what the frame started */
    struct pollfd p = {.fd = store_client_fd(ds.sc), .events = POLLIN};
    poll(&p, 1, 1000);
    store_client_drain(ds.sc);
  }
  char sink[65536];
  while (fuzz_peer >= 0 && read(fuzz_peer, sink, sizeof sink) > 0) {
  }
}
