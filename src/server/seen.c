/* Devices' last_seen_at in batches: see seen.h. */
#include "server/seen.h"

#include <stdlib.h>
#include <string.h>

#include "server/log.h"
#include "tessera/error.h"

#define SLOTS (2 * SEEN_BATCH) /* open addressing, at most half full */

typedef struct {
  store_job job;
  int n;
  int64_t now;
  uint8_t ids[SEEN_BATCH][ACCOUNTS_ID_BYTES];
} batch;

static struct {
  worker *w;
  loop_timer timer;
  batch *cur;
  uint16_t slot[SLOTS]; /* 1 + index into cur->ids, 0 when free */
} sn;

static int run_batch(store_conn *c, void *arg) {
  batch *b = arg;
  for (int i = 0; i < b->n; i++) {
    store_stmt *s;
    int rc =
        store_conn_prepare(c, "UPDATE devices SET last_seen_at = ? WHERE id = ?", &s);
    if (rc) return rc;
    store_bind_int64(s, 1, b->now);
    store_bind_blob(s, 2, BYTES(b->ids[i], ACCOUNTS_ID_BYTES));
    if ((rc = store_stmt_run(s)) != 0) return rc;
  }
  return 0;
}

static void batch_done(store_job *job, int status) {
  if (status)
    log_warn("seen: %d devices' last_seen_at not written: %s", ((batch *)job->arg)->n,
             tsr_errname(status));
  free(job->arg);
}

/* Hands the waiting batch to the store. */
static void flush(void) {
  batch *b = sn.cur;
  sn.cur = NULL;
  memset(sn.slot, 0, sizeof sn.slot);
  if (sn.w) loop_timer_stop(&sn.w->loop, &sn.timer);
  if (!b) return;
  b->job = (store_job){.run = run_batch, .done = batch_done, .arg = b};
  if (!sn.w || store_submit(sn.w->sc, &b->job) != 0) free(b);
}

static void on_timer(loop_t *l, loop_timer *t) {
  (void)l, (void)t;
  flush();
}

void seen_note(const uint8_t device[ACCOUNTS_ID_BYTES], int64_t now) {
  if (!sn.w) return;
  if (!sn.cur && !(sn.cur = calloc(1, sizeof *sn.cur))) return; /* best effort */
  batch *b = sn.cur;
  uint64_t h;
  memcpy(&h, device, sizeof h); /* device ids are random */
  for (size_t i = (size_t)h % SLOTS;; i = (i + 1) % SLOTS) {
    if (!sn.slot[i]) {
      memcpy(b->ids[b->n], device, ACCOUNTS_ID_BYTES);
      sn.slot[i] = (uint16_t)++b->n;
      break;
    }
    if (memcmp(b->ids[sn.slot[i] - 1], device, ACCOUNTS_ID_BYTES) == 0) break;
  }
  if (now > b->now) b->now = now;
  if (b->n == SEEN_BATCH)
    flush();
  else if (!sn.timer.next)
    loop_timer_start(&sn.w->loop, &sn.timer, SEEN_FLUSH_MS);
}

int seen_worker_start(worker *w) {
  sn.w = w;
  sn.cur = NULL;
  memset(sn.slot, 0, sizeof sn.slot);
  sn.timer.kind = TIMER_SEEN;
  loop_set_timer_cb(&w->loop, TIMER_SEEN, on_timer);
  return 0;
}

void seen_worker_stop(worker *w) {
  (void)w;
  flush(); /* the store runs it before it closes */
  sn.w = NULL;
}
