/* Blocks (docs/protocol.md, "Blocks"): an account blocks the ACCOUNT behind
 * a profile, and the block holds in every app and in both directions.
 *
 * At block time, in the same store job, every follow, follow request,
 * friendship, friend request and page follow between the two accounts is
 * removed, in every app. Afterwards profiles, lookups and searches hide
 * them from each other (404 / absent) and new edges are refused (403).
 * Chat address books are the owner's data and are kept, but a blocked
 * account never shows in them.
 *
 * Threads: as profiles.h. */
#ifndef TSR_SERVER_BLOCKS_H
#define TSR_SERVER_BLOCKS_H

#include <stdbool.h>
#include <stdint.h>

#include "server/accounts.h"
#include "store/store.h"

/* True when a blocked b or b blocked a. c NULL: the calling thread's store
 * reader. Fails closed: a read error counts as blocked. */
bool blocks_between(store_conn *c, const uint8_t a[ACCOUNTS_ID_BYTES],
                    const uint8_t b[ACCOUNTS_ID_BYTES]);

/* Inside a store job on the writer connection c: blocker blocks the
 * account `blocked` (named by `target` in `app`, kept so an unblock by
 * that name finds it) and every graph edge between the two accounts is
 * removed. Blocking twice is not an error. */
int blocks_add(store_conn *c, const uint8_t blocker[ACCOUNTS_ID_BYTES],
               const uint8_t blocked[ACCOUNTS_ID_BYTES], const char *app,
               const char *target, int64_t now);

/* Registers POST/GET/DELETE /v1/blocks. Call from main before the workers
 * start. */
int blocks_routes(void);

#endif
