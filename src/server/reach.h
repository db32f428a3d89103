/* Reachability and message requests (docs/protocol.md, "Reachability and
 * message requests"): who may start a conversation with whom, decided by
 * the server.
 *
 * Every profile has, per SOURCE app (the app of the sender's profile), a
 * rule: everyone, graph (the sender is in the recipient's graph in the
 * recipient's app, graph_in(to_app, recipient, sender)) or nobody. The
 * default is graph for every source app and every app (chat: contacts,
 * social: people they follow, messenger: friends and page followers).
 *
 * A sender the rule does not let in (but not nobody) gets a message
 * request instead; once the recipient accepts it, that (sender, recipient,
 * from_app, to_app) direction is allowed for good under the graph rule.
 * nobody refuses everyone, accepted requests included. Blocks either way
 * hide the target (404) whatever the rule.
 *
 * Threads: as profiles.h. */
#ifndef TSR_SERVER_REACH_H
#define TSR_SERVER_REACH_H

#include <stdbool.h>
#include <stdint.h>

#include "server/accounts.h"
#include "server/profiles.h"
#include "store/store.h"

/* New message requests a sender account may make per UTC day. */
#define REACH_DAILY_CAP 50
/* A declined request asked again within this many seconds stays declined
 * (the recipient is not notified again). */
#define REACH_DECLINE_QUIET_S (30 * 86400)

/* True when sender (through its profile in from_app) may start a
 * conversation with recipient's profile in to_app now: both profiles
 * exist, no block either way, and recipient's rule for from_app lets
 * sender in (everyone; graph with sender in recipient's to_app graph or an
 * accepted request for this direction). c NULL: the calling thread's
 * reader. Fails closed: a read error answers false. */
bool reach_allowed(store_conn *c, app_id from_app, app_id to_app,
                   const uint8_t sender[ACCOUNTS_ID_BYTES],
                   const uint8_t recipient[ACCOUNTS_ID_BYTES]);

/* In a store job: forgets account's reachability in app (its profile there
 * is going away): its rules, the requests to or from that profile and the
 * accepted directions either way. A profile made again later starts with
 * the defaults and no history. Returns 0 or a store error. */
int reach_remove_app(store_conn *c, app_id app, const uint8_t account[ACCOUNTS_ID_BYTES]);

/* Registers /v1/apps/{app}/reachability, /v1/reach and /v1/requests. Call
 * before graphs_routes and profiles_routes (whose /v1/apps prefix would
 * otherwise take the reachability calls). */
int reach_routes(void);

#endif
