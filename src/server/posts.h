/* Posts, likes, timelines and feeds (docs/protocol.md "Public life").
 *
 * A post belongs to its author and is published to one or more apps'
 * audiences (social followers; messenger friends and page followers) with
 * one visibility; it is one row with one set of counters wherever it is
 * seen, and deleting it removes it everywhere.
 *
 * Feeds: when a post is made, its id is written into the timeline of each
 * member of each audience (fan-out on write) in the post's own store job,
 * so the answer comes after every timeline has it (the rows go through a
 * small write buffer, timelines.h, which reads include). An author with more
 * than fanout_threshold followers in an app is marked in fanout_read (for
 * good) and their posts in that app are not written out; a home feed read
 * merges the reader's timeline with the posts of the marked authors the
 * reader follows and the reader's own posts, newest first, checking every
 * post's visibility again at read. Close-friends posts are always written
 * out (the list is short and need not follow). Following someone writes
 * their last POSTS_BACKFILL posts into the follower's timeline;
 * unfollowing or a block takes them out (posts_followed / _unfollowed, from
 * graphs.c and blocks.c in the same job).
 *
 * Threads: handlers and completions on a worker's loop thread (reads on
 * its store reader); run callbacks on the store writer. */
#ifndef TSR_SERVER_POSTS_H
#define TSR_SERVER_POSTS_H

#include <stdbool.h>
#include <stdint.h>

#include "proto/json.h"
#include "server/httpd.h"
#include "server/notify.h"
#include "server/profiles.h"
#include "server/public.h"
#include "store/store.h"

#define POSTS_BACKFILL 100

/* What visibility needs of a post. */
typedef struct {
  uint8_t author[ACCOUNTS_ID_BYTES];
  uint32_t apps; /* PUB_APP_BIT of each audience */
  pub_vis vis;
  app_id app; /* the app it was made in (its mentions are names there) */
} post_head;

/* Reads post id's head: 1 found, 0 not, or a store error. */
int posts_head_read(store_conn *c, int64_t id, post_head *h);
/* True when viewer may see the post through app (one of its audiences). */
bool posts_visible(store_conn *c, app_id app, const post_head *h,
                   const uint8_t viewer[ACCOUNTS_ID_BYTES]);

/* In a store job: the @names in text (a post's caption when comment is
 * 0, else that comment's text), resolved in app; each person who may see
 * the post is notified by actor (a post's are also recorded). */
int posts_mentions(store_conn *c, notify_batch *nb, app_id app, const post_head *h,
                   int64_t post, int64_t comment, const uint8_t actor[ACCOUNTS_ID_BYTES],
                   const char *text, int64_t now);

/* In a store job: follower now follows followee in app: backfill. */
int posts_followed(store_conn *c, app_id app, const uint8_t follower[ACCOUNTS_ID_BYTES],
                   const uint8_t followee[ACCOUNTS_ID_BYTES]);
/* In a store job: follower no longer follows followee in app (unless they
 * are still in its graph another way): followee's posts leave follower's
 * timeline in app. */
int posts_unfollowed(store_conn *c, app_id app, const uint8_t follower[ACCOUNTS_ID_BYTES],
                     const uint8_t followee[ACCOUNTS_ID_BYTES]);
/* In a store job: account's timeline in app is dropped (profile deleted). */
int posts_drop_timeline(store_conn *c, app_id app,
                        const uint8_t account[ACCOUNTS_ID_BYTES]);

/* Writes post id as viewer sees it through app (the post object). Returns
 * 1 written, 0 when viewer may not see it or it does not exist (nothing
 * written), or a store error. c: a reader (NULL: the worker's). */
int posts_write(json_writer *jw, store_conn *c, app_id app, int64_t id,
                const uint8_t viewer[ACCOUNTS_ID_BYTES]);

/* In a store job: deletes post id and everything hanging on it (timelines,
 * media references, tags, mentions, views, likes, comments, their
 * notifications). Returns 0, TSR_ENOTFOUND, or a store error. */
int posts_delete(store_conn *c, int64_t id);

/* GET /v1/apps/{app}/profiles/{key}/posts (called by profiles.c). */
int posts_grid(const httpd_req *r, httpd_resp *resp, app_id app, const char *key,
               const uint8_t me[ACCOUNTS_ID_BYTES]);

/* Registers the routes (before profiles_routes). */
int posts_routes(void);

#endif
