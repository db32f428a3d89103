/* Plumbing shared by the public-life modules (posts.c, comments.c,
 * stories.c, notify.c, reports.c; docs/protocol.md "Public life").
 *
 * Ids: posts, comments, stories, notifications and reports are named by
 * 64-bit numbers increasing with time, (ms << 22) + n, made in the store
 * job that inserts the row (pub_next_id: above the table's largest id,
 * read under the job's write lock), so ids order rows by creation. On the wire they are
 * decimal strings (JavaScript numbers stop at 2^53).
 *
 * Audiences: a post or story has a bit (1 << app) per app whose audience
 * it is published to (social, messenger) and a visibility (public,
 * followers, close_friends); pub_can_see decides who sees it through an
 * app. Blocks hold everywhere.
 *
 * Threads: functions taking a store_conn run on the thread that owns it
 * (NULL: the calling worker's reader); pub_next_id in a store job. */
#ifndef TSR_SERVER_PUBLIC_H
#define TSR_SERVER_PUBLIC_H

#include <stdbool.h>
#include <stdint.h>

#include "proto/json.h"
#include "server/profiles.h"
#include "store/store.h"

#define PUB_APP_BIT(a) (1u << (a))
#define PUB_APPS (PUB_APP_BIT(APP_SOCIAL) | PUB_APP_BIT(APP_MESSENGER))
#define PUB_ID_TEXT 21 /* decimal digits of an int64, and the NUL */

typedef enum { VIS_PUBLIC, VIS_FOLLOWERS, VIS_CLOSE_FRIENDS } pub_vis;

/* "public" / "followers" / "close_friends" <-> pub_vis; parse gives -1. */
int pub_vis_parse(const char *s);
const char *pub_vis_name(pub_vis v);

/* In a store job: the next id of table (posts, comments, stories,
 * notifications, reports): larger than every id in it, and >= now_ms <<
 * 22. Returns 0 or a store error. */
int pub_next_id(store_conn *c, const char *table, int64_t now_ms, int64_t *out);

/* Parses a decimal id (1-19 digits, > 0). */
bool pub_id_parse(const char *s, int64_t *out);
void pub_write_id(json_writer *jw, int64_t id);
void pub_write_id_or_null(json_writer *jw, int64_t id);

/* Writes a media id (media.h: the stored bytes' SHA-256) as its 64 hex
 * digits, or null when h is not one. */
void pub_write_hash(json_writer *jw, bytes_t h);

/* c, or when NULL the calling worker's store reader (NULL on failure). */
store_conn *pub_reader(store_conn *c);

/* Writes "key": the text of column col of s's row (null when the column
 * is NULL and nullable). */
void pub_write_col(json_writer *jw, const char *key, store_stmt *s, int col,
                   bool nullable);

/* Writes account's profile in app as {"app", "handle"|"username", "name"}
 * (null when it has none there). Returns 0 or a store error. */
int pub_write_profile(json_writer *jw, store_conn *c, app_id app,
                      const uint8_t account[ACCOUNTS_ID_BYTES]);

/* What visibility needs to know of an item. */
typedef struct {
  const uint8_t *author; /* ACCOUNTS_ID_BYTES */
  uint32_t apps;         /* PUB_APP_BIT set */
  pub_vis vis;
} pub_audience;

/* True when viewer may see the item through app: the author always;
 * nobody blocked either way; app must be one of the item's audiences;
 * public: anyone (social: unless the author's social profile is private,
 * then as followers); followers: social followers / messenger friends and
 * page followers of the author; close_friends: the author's list. A read
 * error answers false. */
bool pub_can_see(store_conn *c, app_id app, const pub_audience *a,
                 const uint8_t viewer[ACCOUNTS_ID_BYTES]);

/* 1 when account's social profile is private, 0 when not, or an error. */
int pub_private(store_conn *c, const uint8_t account[ACCOUNTS_ID_BYTES]);

/* True when the caller's login is in the server's admins list. */
bool pub_is_admin(store_conn *c, const uint8_t me[ACCOUNTS_ID_BYTES]);

/* Scans text for '#tag' (kind '#') and '@name' (kind '@') words: tags are
 * letters (any script), digits and '_' (lower-cased ASCII, at most 64
 * bytes), names are handle characters (lower-cased, 3-30). Calls fn for
 * each, with its normalised text; stops when fn returns false. */
typedef bool (*pub_word_fn)(char kind, const char *word, void *arg);
void pub_scan_words(const char *text, pub_word_fn fn, void *arg);

/* Valid UTF-8 without control characters ('\n' allowed when multiline). */
bool pub_text_ok(const char *s, bool multiline);

/* Reads ?name= as a limit (default def, 1..max) and ?before= / ?after= as
 * an id (0 when absent). Return false on a malformed value. */
bool pub_query_limit(const httpd_req *r, int def, int max, int *out);
bool pub_query_id(const httpd_req *r, const char *name, int64_t *out);

/* Reads "apps": ["social", "messenger"] of the body into *apps (default:
 * app alone). NULL or the 400 message. */
const char *pub_parse_apps(const app_body *b, app_id app, uint32_t *apps);

/* The start of every /v1/apps/{app}/... public handler: authenticates the
 * caller into me, splits the path (at least min segments), reads {app}
 * (social or messenger) and checks the caller has a profile there. False
 * with resp filled (401, 404, 403 no_profile, 500) otherwise. */
bool pub_begin(const httpd_req *r, httpd_resp *resp, int min, app_path *p, app_id *app,
               uint8_t me[ACCOUNTS_ID_BYTES]);

/* 0 when me has a profile in app, else resp is the 403 no_profile (or a
 * 500) and the handler's result is returned. */
int pub_need_profile(httpd_resp *resp, app_id app, const uint8_t me[ACCOUNTS_ID_BYTES]);

/* Starts a deferred write for me acting in app with the module's payload
 * data (heap; freed with the op, or here when the op cannot start). */
int pub_op_start(const httpd_req *r, httpd_resp *resp, app_id app,
                 const uint8_t me[ACCOUNTS_ID_BYTES], void *data, app_run_fn run,
                 app_write_fn write);

/* Registers fn for /v1/apps/social/<name> and /v1/apps/messenger/<name>
 * with each of the n methods. Before the workers start. */
int pub_routes_add(const char *name, const http_method *methods, size_t n,
                   httpd_handler fn);

/* The app of a public path segment: social or messenger; -1 otherwise. */
int pub_app_parse(const char *seg);

#endif
