/* Notifications of public life (docs/protocol.md "Notifications"): likes,
 * comments, replies, mentions, follows and follow requests.
 *
 * Written in the store job of the action that causes them (notify_add), so
 * a notification exists exactly when its action committed. Nobody is
 * notified of their own action, nor of an action by someone they blocked
 * or who blocked them. After the commit, the module that made them calls
 * notify_push with what notify_add returned, and the server pushes each to
 * the recipient's online sessions (through the delivery service, which
 * knows where they are).
 *
 * Threads: notify_add on the store writer; the rest on a worker's loop. */
#ifndef TSR_SERVER_NOTIFY_H
#define TSR_SERVER_NOTIFY_H

#include <stdint.h>

#include "server/profiles.h"
#include "store/store.h"

/* Up to this many notifications of one action are pushed (a post
 * mentioning many people still notifies them all; the pull has them). */
#define NOTIFY_PUSH_MAX 32

/* Notifications one job made, to push after its commit. Plain value. */
typedef struct {
  int n;
  int64_t ids[NOTIFY_PUSH_MAX];
  uint8_t to[NOTIFY_PUSH_MAX][ACCOUNTS_ID_BYTES];
} notify_batch;

/* In a store job: notifies `to` of kind by actor (acting in app), about
 * post and/or comment (0: none), with a short text (a comment's start).
 * Skips self and blocks. Adds the new id to batch (when not NULL and not
 * full). Returns 0 or a store error. */
int notify_add(store_conn *c, notify_batch *batch, app_id app,
               const uint8_t to[ACCOUNTS_ID_BYTES], const char *kind,
               const uint8_t actor[ACCOUNTS_ID_BYTES], int64_t post, int64_t comment,
               const char *text, int64_t now_ms);

/* In a store job: deletes the notifications about post (it is gone), or
 * about comment, or actor's kind notification about post (an unlike). */
int notify_forget_post(store_conn *c, int64_t post);
int notify_forget_comment(store_conn *c, int64_t comment);
int notify_forget(store_conn *c, const char *kind, const uint8_t actor[ACCOUNTS_ID_BYTES],
                  int64_t post);

/* Loop thread, after the commit: pushes each notification of batch to its
 * recipient's online sessions. */
void notify_push(const notify_batch *batch);

/* Registers GET /v1/notifications and POST /v1/notifications/read. */
int notify_routes(void);

#endif
