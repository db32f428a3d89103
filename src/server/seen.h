/* Devices' last_seen_at (docs/protocol.md "Devices"), written in batches.
 *
 * Authentication reads a device's last_seen_at and, when it is a minute
 * old, notes the device here instead of writing it: each worker collects
 * the devices it saw and writes them in one store job once a second (or
 * as soon as SEEN_BATCH are waiting). Under load that is one job a second
 * instead of one a request (uniform readers over 100,000 accounts at
 * 1,000 requests/s meant ~1,000 write jobs a second, each with its own
 * place in a commit). A device noted twice before the write is written
 * once. Best effort: a batch that cannot be written is dropped; the one
 * waiting at stop is written by the store before it closes.
 *
 * Threads: everything on the worker's loop thread; the job on the store
 * writer. */
#ifndef TSR_SERVER_SEEN_H
#define TSR_SERVER_SEEN_H

#include <stdint.h>

#include "server/accounts.h"
#include "server/worker.h"

#define TIMER_SEEN 10      /* the flush timer's kind (after timelines.h's) */
#define SEEN_BATCH 512     /* devices a job writes at most (~5 ms of the writer) */
#define SEEN_FLUSH_MS 1000 /* how long a noted device waits at most */

/* Device was seen at now (Unix seconds): last_seen_at = now soon. */
void seen_note(const uint8_t device[ACCOUNTS_ID_BYTES], int64_t now);

int seen_worker_start(worker *w);
void seen_worker_stop(worker *w);

#endif
