/* Per-app profiles (docs/protocol.md, "Apps: profiles"), and the request
 * plumbing the app modules (profiles, graphs, blocks) share.
 *
 * An account holds at most one profile per app. A profile is addressed by
 * a key whose kind depends on the app: chat by the account's verified
 * phone number (read from accounts at every use, never copied), social by
 * its handle, messenger by its username. Handles and usernames are stored
 * lower-cased; they are unique within their app only.
 *
 * Durability: writes answer only after their store job committed
 * (app_op_start: httpd_defer, then httpd_complete from the completion).
 *
 * Privacy: no call answers with the account id behind a profile, so the
 * three apps' profiles of one person cannot be linked from the outside.
 *
 * Threads: handlers and app_op completions run on a worker's loop thread;
 * app_op run callbacks on the store writer. Functions taking a store_conn
 * run on the thread that owns it; NULL means the calling thread's reader. */
#ifndef TSR_SERVER_PROFILES_H
#define TSR_SERVER_PROFILES_H

#include <stdbool.h>
#include <stdint.h>

#include "server/accounts.h"
#include "server/httpd.h"
#include "store/store.h"

typedef enum { APP_CHAT, APP_SOCIAL, APP_MESSENGER, APP_COUNT } app_id;

#define PROFILES_KEY_MAX 30 /* handle / username characters; numbers are shorter */

/* "chat" / "social" / "messenger" -> app id, or -1. */
int app_parse(const char *s);
const char *app_name(app_id a);

/* Normalises a profile key of app into out (PROFILES_KEY_MAX + 1 bytes):
 * handles and usernames are validated and lower-cased, chat numbers must be
 * E.164. Returns false for an invalid key (out is then unspecified). */
bool profiles_key_normalize(app_id app, const char *in, char *out);

/* The account whose profile in app has key (already normalised). Returns 0,
 * TSR_ENOTFOUND or a store error. */
int profiles_resolve(store_conn *c, app_id app, const char *key,
                     uint8_t account[ACCOUNTS_ID_BYTES]);

/* 1 when account has a profile in app, 0 when not, or a store error. */
int profiles_exists(store_conn *c, app_id app, const uint8_t account[ACCOUNTS_ID_BYTES]);

/* Registers the profile routes (after graphs_routes: the first matching
 * prefix wins). Call from main before the workers start. */
int profiles_routes(void);

/* ---- plumbing shared by the app modules ------------------------------- */

#define APP_PATH_SEGS 8
#define APP_SEG_BYTES 96

/* A request path split into %-decoded segments. */
typedef struct {
  int n;
  char seg[APP_PATH_SEGS][APP_SEG_BYTES];
} app_path;

/* Splits the request path; false when it has too many or too long
 * segments or a bad escape (answer 404). */
bool app_path_split(const httpd_req *r, app_path *p);

/* Authenticates the caller or fills resp with the 401 (or 500). */
bool app_auth(const httpd_req *r, httpd_resp *resp, uint8_t me[ACCOUNTS_ID_BYTES]);

/* Fills resp with an error and returns 0 (a handler's result). */
int app_error(httpd_resp *resp, int status, const char *code, const char *msg);

/* The request body as a JSON object in the worker's token scratch. */
typedef struct {
  const char *buf;
  const json_token *t;
} app_body;
bool app_body_parse(const httpd_req *r, app_body *b);

/* A string member of obj (index 0 for the top object): 1 and out (cap
 * bytes, NUL-terminated) when present and a string that fits, 0 when
 * absent or null, -1 when of another type or too long. */
int app_body_str(const app_body *b, int obj, const char *key, char *out, size_t cap);

/* A success answer in resp: begin opens its top object (with the member
 * "state" when state is not NULL), the caller writes the other members,
 * end closes it and turns resp into a 500 when the writer failed. */
void app_answer_begin(json_writer *jw, httpd_resp *resp, const char *state);
void app_answer_end(json_writer *jw, httpd_resp *resp);

typedef struct app_op app_op;
/* Runs in the store job. Returns 0 to commit, or a TSR_E* code; a domain
 * refusal is returned through app_op_refuse. */
typedef int (*app_run_fn)(store_conn *c, app_op *o);
/* Writes the members of the success answer (inside its top object). */
typedef void (*app_write_fn)(app_op *o, json_writer *jw);

/* One deferred write. Heap (app_op_new); freed after it is answered. The
 * loop thread fills it, the run callback reads and fills it on the writer
 * thread, the completion reads it on the loop thread again. */
struct app_op {
  store_job job;
  httpd_ticket ticket;
  app_run_fn run;
  app_write_fn write_ok;
  int ok_status; /* 200 unless run sets 201 */
  app_id app;
  int64_t now;
  uint8_t me[ACCOUNTS_ID_BYTES];
  uint8_t other[ACCOUNTS_ID_BYTES];
  int fail_status; /* set by app_op_refuse */
  const char *fail_code, *fail_msg;
  char key[APP_SEG_BYTES]; /* the target's key, normalised */
  const char *state;       /* optional "state" member of the answer */
  void *data;              /* module payload; freed with free() */
};

app_op *app_op_new(app_id app);
void app_op_free(app_op *o);
/* In a run callback: records the refusal and returns the code that rolls
 * the job back. msg and code must be static strings. */
int app_op_refuse(app_op *o, int status, const char *code, const char *msg);
/* Submits o (run set) and defers the request: returns HTTPD_DEFERRED, or
 * 0 with resp set to 503 (queue full) and o freed. The job is submitted
 * before the defer, and completions only run later from the loop, so an
 * answer is never completed from inside its own handler. */
int app_op_start(const httpd_req *r, httpd_resp *resp, app_op *o);

#endif
