/* Conversations on a worker: the WebSocket ops of end-to-end encrypted
 * conversations (docs/protocol.md, "Conversations"), checked here against
 * the accounts store (profiles, blocks, reachability, live devices) and
 * forwarded to the delivery service (ds.h) over its socket; and the pushes
 * the delivery service sends back, written to the sessions of the devices
 * they are for.
 *
 * Members are named by account id or by profile (app and key): a profile
 * is resolved here (profiles_resolve), so the delivery service only ever
 * sees accounts. An unknown profile answers like a block (not_found); the
 * same account named twice is reported only after each naming passed the
 * block and reachability checks (so that it tells no one outside a
 * person's rules that two of their profiles are one account).
 *
 * The worker keeps one connection to the delivery service, made at start
 * and remade (every 100 ms) whenever it drops; ops that arrive meanwhile
 * answer error "unavailable", and requests in flight when it drops answer
 * the same (a send may then have been stored: the client retries with the
 * same client_id, which the delivery service de-duplicates).
 *
 * Threads: the worker's loop thread. */
#ifndef TSR_SERVER_CONV_H
#define TSR_SERVER_CONV_H

#include "server/accounts.h"
#include "server/worker.h"

#define KIND_DS 5  /* loop handle kind of the delivery service socket */
#define TIMER_DS 5 /* reconnect timer */

/* Pushes text (a whole push message) to the online sessions of acc's
 * live devices, on every worker, through the delivery service; dropped
 * while it is unreachable (the client's pull has it). */
void conv_notify(const uint8_t acc[ACCOUNTS_ID_BYTES], const char *text, size_t len);

/* Registers the ops (before the workers start). */
int conv_ops(void);

/* Worker hooks: connect to the delivery service; drop the connection. */
int conv_worker_start(worker *w);
void conv_worker_stop(worker *w);

#endif
