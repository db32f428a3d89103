/* Stories (docs/protocol.md "Stories"): one image or video shown to an
 * audience for 24 hours after it is posted, with the list of who viewed it
 * visible to its author only.
 *
 * Expiry is read at every use against the server's clock (clock.h), so an
 * expired story is never shown even before the sweep deletes it; worker 0
 * deletes expired stories (their views, and their media reference) every
 * minute.
 *
 * Threads: handlers and the sweep timer on a worker's loop; run callbacks
 * on the store writer. */
#ifndef TSR_SERVER_STORIES_H
#define TSR_SERVER_STORIES_H

#include "server/worker.h"

#define STORIES_TTL_MS (24 * 3600 * 1000LL)
#define TIMER_STORIES 8 /* the sweep timer's kind */

/* Registers /v1/apps/{social,messenger}/stories. */
int stories_routes(void);

/* Worker hooks: the sweep on worker 0. */
int stories_worker_start(worker *w);
void stories_worker_stop(worker *w);

#endif
