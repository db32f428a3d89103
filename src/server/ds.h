/* The delivery service: one process of tesserad (forked by the master like
 * the workers, restarted like them) that owns every conversation — its
 * ordered log, its roster, the MLS observer that follows its epochs — in
 * a store of its own (<data dir>/ds/tessera.db). Workers talk to it over
 * a Unix socket in the data directory (<data dir>/ds.sock, frames of
 * dsproto.h) and keep doing what needs the accounts store (who may reach
 * whom, blocks, live devices) before they forward a request.
 *
 * Why one process: a conversation has one order and one epoch at a time,
 * so one writer assigns sequence numbers and decides the winning commit of
 * an epoch without locks, in memory; its store commits in groups into an
 * append-only log (INTEGER PRIMARY KEY, no secondary index: the per-
 * conversation position index lives in memory and is rebuilt at start from
 * one scan), which is what makes durable throughput high on SQLite
 * (../shared/DESIGN.md §6). Online devices are pushed to through the
 * worker that holds their sessions; the rest sync when they come back.
 *
 * Acknowledged means durable: a SEND is answered, and pushed to others,
 * only after the store committed its log row.
 *
 * Membership: members have roles (admin, member, left); devices that are
 * revoked or belong to someone who left are stale (they send, list and
 * read nothing more) until a member's commit removes them. The accounts
 * store is read read-only for blocks and revocations.
 *
 * Threads: the DS loop thread, plus the store's writer and checkpoint
 * threads. */
#ifndef TSR_SERVER_DS_H
#define TSR_SERVER_DS_H

#include <stddef.h>
#include <stdint.h>

#include "server/config.h"

/* The DS process's main: returns its exit status (0 clean stop on
 * SIGTERM, 2 could not start). */
int ds_main(const cfg *c);

/* Migrates the DS store before any process opens it (master, at start).
 * Returns 0 or a TSR_E* code. */
int ds_prepare_store(const cfg *c);

/* For the fuzz target (tests/fuzz/fuzz_ds.c): the delivery service's state
 * on a store in dir, without sockets or a loop running; then one frame
 * (first byte its type, the rest its fields) handled as if from worker 0,
 * store jobs awaited, answers dropped. One process, one setup. */
int ds_fuzz_setup(const char *dir);
void ds_fuzz_frame(const uint8_t *data, size_t n);

#endif
