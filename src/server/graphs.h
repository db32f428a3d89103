/* The apps' graphs (docs/protocol.md, "Apps: graphs"), each owned by its
 * app and never merged:
 *   chat       contacts: the numbers of the owner's address book; mutual
 *              when both have each other's number;
 *   social     follows (asymmetric); following a private account makes a
 *              follow request that its owner approves or declines;
 *   messenger  friends (request, accept or decline, unfriend) and
 *              followers of business pages.
 * Edges join accounts; both ends need a profile in the edge's app, and
 * deleting a profile deletes its edges in that app. Blocks (blocks.h)
 * remove and refuse edges between two accounts.
 *
 * Threads: as profiles.h. */
#ifndef TSR_SERVER_GRAPHS_H
#define TSR_SERVER_GRAPHS_H

#include <stdbool.h>
#include <stdint.h>

#include "server/accounts.h"
#include "server/profiles.h"
#include "store/store.h"

/* True when other is in owner's graph in app: chat, owner has other's
 * (verified) number as a contact and other has a chat profile; social,
 * owner follows other; messenger, they are friends, or other follows
 * owner's page. Blocks are not considered (see blocks_between). c NULL:
 * the calling thread's reader. A read error answers false. */
bool graph_in(store_conn *c, app_id app, const uint8_t owner[ACCOUNTS_ID_BYTES],
              const uint8_t other[ACCOUNTS_ID_BYTES]);

/* In a store job: removes every edge between a and b in every app
 * (follows, follow requests, friendships, friend requests, page follows),
 * both directions. Returns 0 or a store error. */
int graphs_remove_between(store_conn *c, const uint8_t a[ACCOUNTS_ID_BYTES],
                          const uint8_t b[ACCOUNTS_ID_BYTES]);

/* In a store job: removes every edge of account in app (its profile there
 * is going away). Returns 0 or a store error. */
int graphs_remove_app(store_conn *c, app_id app,
                      const uint8_t account[ACCOUNTS_ID_BYTES]);

/* In a store job: removes the followers of account's messenger page. */
int graphs_remove_page_followers(store_conn *c, const uint8_t account[ACCOUNTS_ID_BYTES]);

/* Registers the graph routes; call before profiles_routes (whose prefix
 * /v1/apps would otherwise take them). */
int graphs_routes(void);

#endif
