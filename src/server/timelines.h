/* Home timelines' write buffer (docs/architecture.md "Feeds").
 *
 * A post's fan-out on write inserts one row per reader. Into `timelines`,
 * a large table keyed by reader, those rows land on as many different
 * pages as there are readers (10,000 followers: ~10,000 pages, ~40 MB of
 * WAL in the post's commit). They go into `timeline_buffer` instead, the
 * same key in a table kept small, where they share a few hundred pages; a
 * background job moves the buffer into `timelines` in key order,
 * TIMELINES_MERGE_ROWS rows a job, between other writes.
 *
 * Invariants: a timeline row is in either table or both; reads take the
 * union (feeds dedup ids), deletes delete from both (TIMELINE_TABLES).
 * Moving a row is one job: insert into timelines, delete from the buffer.
 * Rows left in the buffer by a stopped server stay readable and are moved
 * by the next start's merge (worker 0).
 *
 * Threads: timelines_kick and the merge timer on a worker's loop; the
 * merge job on the store writer. */
#ifndef TSR_SERVER_TIMELINES_H
#define TSR_SERVER_TIMELINES_H

#include "server/worker.h"

#define TIMER_TIMELINES 9 /* the merge timer's kind (after stories.h's) */
#define TIMELINES_MERGE_ROWS 512

/* The tables a timeline row may be in, for statements that must cover
 * both: TIMELINE_TABLES(M) is M("timelines"), M("timeline_buffer"), M a
 * macro making a statement from a table name. */
#define TIMELINE_TABLES(M) M("timelines"), M("timeline_buffer")
#define TIMELINE_TABLES_N 2

/* After a job that wrote into timeline_buffer committed: moves it soon. */
void timelines_kick(void);

/* Worker hooks: the merge timer (worker 0 also merges once at start). */
int timelines_worker_start(worker *w);
void timelines_worker_stop(worker *w);

#endif
