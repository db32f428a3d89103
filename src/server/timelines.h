/* Home timelines' write buffer and purge list (docs/architecture.md
 * "Feeds").
 *
 * A post's fan-out on write inserts one row per reader. Into `timelines`,
 * a large table keyed by reader, those rows land on as many different
 * pages as there are readers (10,000 followers: ~10,000 pages, ~40 MB of
 * WAL in the post's commit). They go into `timeline_buffer` instead, the
 * same key in a table kept small, where they share a few hundred pages; a
 * background job moves the buffer into `timelines` in key order,
 * TIMELINES_MERGE_ROWS rows a job, between other writes. Deleting a post
 * is the same in reverse: its job lists one `timeline_purge` row per
 * reader of its audience, and the background job deletes those readers'
 * rows of it from both tables, TIMELINES_MERGE_ROWS readers a job (purges
 * first, then merges).
 *
 * Invariants: a timeline row is in either table or both; reads take the
 * union (feeds dedup ids, and skip ids whose post is gone), deletes delete
 * from both (TIMELINE_TABLES). Moving a row is one job: insert into
 * timelines, delete from the buffer. A purge row outlives nothing it names:
 * its post is gone, so no fan-out or backfill can write it again. Rows a
 * stopped server left in either list stay correct (readable, or skipped)
 * and are handled by the next start's job (worker 0).
 *
 * Threads: timelines_kick and the timer on a worker's loop; the job on
 * the store writer. */
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

/* After a job that wrote into timeline_buffer or timeline_purge completed:
 * starts the background job (one at a time per worker). */
void timelines_kick(void);

/* Worker hooks: the retry timer (worker 0 also runs the job once at start). */
int timelines_worker_start(worker *w);
void timelines_worker_stop(worker *w);

#endif
