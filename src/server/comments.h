/* Comments on posts, their spam verdicts and appeals (docs/protocol.md
 * "Comments").
 *
 * Every comment is classified when it is written (spam.h): ham is shown to
 * everyone who sees the post and counted in the post's `comments`; spam
 * and held are hidden from everyone but the commenter, and from the post's
 * author too unless asked (?hidden=true), and notify nobody. The
 * commenter or the post's author may appeal a hidden comment once; an
 * admin decides held and appealed comments (comments_decide).
 *
 * Threads: handlers on a worker's loop; run callbacks on the store writer. */
#ifndef TSR_SERVER_COMMENTS_H
#define TSR_SERVER_COMMENTS_H

#include <stdint.h>

#include "proto/json.h"
#include "server/httpd.h"
#include "server/notify.h"
#include "server/profiles.h"
#include "store/store.h"

/* GET / POST /v1/apps/{app}/posts/{post}/comments (called by posts.c). */
int comments_on_post(const httpd_req *r, httpd_resp *resp, app_id app, int64_t post,
                     const uint8_t me[ACCOUNTS_ID_BYTES]);

/* Writes comment id (the comment object; verdict and appeal as stored); c
 * NULL: the worker's reader.
 * 1 written, 0 no such comment, or a store error. */
int comments_write(json_writer *jw, store_conn *c, int64_t id);

/* In a store job: deletes comment id and, for a top-level one, its
 * replies; the post's counter follows; their notifications and open
 * reports go. TSR_ENOTFOUND when there is none. */
int comments_delete(store_conn *c, int64_t id);

/* In a store job: an admin's verdict ("ham" or "spam") on comment id; a
 * pending appeal becomes upheld (ham) or rejected (spam). A comment that
 * becomes ham is counted and notified then. TSR_ENOTFOUND when none. */
int comments_decide(store_conn *c, int64_t id, const char *verdict, notify_batch *nb);

/* Registers /v1/apps/{app}/comments/{id} (DELETE) and .../appeal (POST). */
int comments_routes(void);

#endif
