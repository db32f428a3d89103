/* libtessera internals shared by the files of src/client. Not installed.
 *
 *   state.c    the device state file (SQLite key-value table and
 *              KeyPackage private parts, versioned)
 *   net.c      connection, request queue, HTTP framing, retries, backoff
 *   account.c  accounts, sessions, devices, keys and certificates
 *   apps.c     generic authenticated calls, app profiles and search
 *   keys.c     the device's MLS identity, KeyPackages and their secrets
 *   ws.c       the realtime session (WebSocket): its own connection, calls
 *              matched by id, pushes
 *   conv.c     end-to-end encrypted conversations on a session: MLS groups,
 *              messages and the outbox in the state file
 *   content.c  the envelope inside MLS application messages (content.h)
 *   public.c   public life: posts, comments, feeds, stories, notifications
 *              (typed tsr_call forms) and the media upload
 *
 * A tsr_client is used by one thread at a time (tessera/tessera.h). */
#ifndef TSR_CLIENT_CLIENT_H
#define TSR_CLIENT_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/bytes.h"
#include "proto/http.h"
#include "tessera/tessera.h"

/* ---- state file -------------------------------------------------------- */

/* Schema version written to PRAGMA user_version.
 *   1: kv(key TEXT PRIMARY KEY, value BLOB NOT NULL).
 *   2: adds kp_secrets(ref BLOB PRIMARY KEY, suite INTEGER, last_resort
 *      INTEGER, used INTEGER, created_at INTEGER, not_after INTEGER,
 *      secret BLOB): the private part of each KeyPackage this device
 *      published, by KeyPackageRef; secret is kp_secret_encode's form
 *      (the KeyPackage, its init and leaf HPKE private keys). A version-1
 *      file is migrated on open (the table is added, nothing else).
 *   3: adds the conversations of conv.c (older files are migrated by
 *      adding the tables):
 *      conversations(id TEXT PRIMARY KEY, app, kind, state ('active',
 *        'request', 'declined', 'removed'), grp BLOB: group_save's form,
 *        secrets included, last_seq: the last seq processed in order,
 *        created_at);
 *      messages(conversation, seq, sender_account, sender_device (base64url
 *        ids from the MLS credential), own, text, at: server time in ms,
 *        UNIQUE (conversation, seq));
 *      outbox(n: order, conversation, client_id UNIQUE, plaintext, state
 *        (0: not encrypted yet, 1: ciphertext holds the encrypted
 *        message of epoch `epoch`), ciphertext, epoch, created_at).
 *   4: the content kinds of content.h (a version-3 file is migrated: the
 *      columns and tables are added, its messages become kind text and
 *      its outbox plaintexts are wrapped in text envelopes):
 *      messages gains kind (TSR_KIND_*), reply_to, target (edit, delete,
 *        reaction: the seq changed; receipt: up_to), descriptor, edited_at,
 *        deleted; text holds the text or caption (empty for the other
 *        kinds, and wiped when deleted);
 *      conversations gains title and transient_run (typing messages sent
 *        since the last stored one);
 *      reactions(conversation, target, account, emoji, seq), primary key
 *        (conversation, target, account, emoji);
 *      receipts(conversation, account, delivered_up_to, read_up_to),
 *        primary key (conversation, account);
 *      outbox.plaintext is the envelope (content_encode). */
#define CSTATE_SCHEMA_VERSION 5

/* Keys of the kv table. */
#define K_IDENTITY_SK "identity_sk" /* 64 bytes, libsodium Ed25519 secret key */
#define K_IDENTITY_PK "identity_pk" /* 32 bytes */
#define K_DEVICE_SK "device_sk"     /* 64 bytes */
#define K_DEVICE_PK "device_pk"     /* 32 bytes */
#define K_TOKEN "token"             /* base64url text as issued */
#define K_ACCOUNT_ID "account_id"   /* base64url text */
#define K_DEVICE_ID "device_id"     /* base64url text */
#define K_LOGIN "login"             /* text */

typedef struct cstate cstate;

/* Opens or creates path (mode 0600, enforced on every open). Errors:
 * TSR_EIO, TSR_EUNSUPPORTED (user_version newer than ours), TSR_EDECODE
 * (not a tessera state file), TSR_ENOMEM. */
int cstate_open(const char *path, cstate **out);
void cstate_close(cstate *s);
/* The SQLite handle, for the conversation tables of conv.c. */
struct sqlite3 *cstate_db(cstate *s);
/* The schema version stored in the file. */
int cstate_version(cstate *s);
/* Value of key into out (replaced). TSR_ENOTFOUND when absent. */
int cstate_get(cstate *s, const char *key, buf_t *out);
int cstate_put(cstate *s, const char *key, bytes_t v);
int cstate_del(cstate *s, const char *key);
/* Groups several puts/dels into one atomic, durable change. */
int cstate_begin(cstate *s);
int cstate_commit(cstate *s);
void cstate_rollback(cstate *s);

/* KeyPackage private parts (table kp_secrets). Each call is one statement:
 * group several with cstate_begin / cstate_commit. */
#define CSTATE_KP_REF_BYTES 32 /* KeyPackageRef of suites 1 and 3 (SHA-256) */

typedef struct {
  uint8_t ref[CSTATE_KP_REF_BYTES];
  uint16_t suite;
  bool last_resort;
  bool used;                     /* a last resort handed out by cstate_kp_consume */
  int64_t created_at, not_after; /* Unix seconds */
} cstate_kp;

typedef struct {
  uint64_t total, suite1, suite3;
  uint64_t last_resort;        /* last-resort rows */
  uint64_t last_resort_unused; /* of which not handed out yet */
  /* the same per suite */
  uint64_t last_resort_unused1, last_resort_unused3;
} cstate_kp_counts;

/* Stores (or replaces) the private part kp->ref; used starts at 0. */
int cstate_kp_put(cstate *s, const cstate_kp *kp, bytes_t secret);
/* The private part of ref into secret (replaced) and its row into info
 * (may be NULL). TSR_ENOTFOUND when absent. Changes nothing. */
int cstate_kp_get(cstate *s, const uint8_t ref[CSTATE_KP_REF_BYTES], buf_t *secret,
                  cstate_kp *info);
/* Marks ref as used by a joiner: deleted, or for a last resort flagged
 * used (kept: others may join with it too, until a new last resort
 * replaces it). No error when absent. */
int cstate_kp_consume(cstate *s, const uint8_t ref[CSTATE_KP_REF_BYTES]);
int cstate_kp_del(cstate *s, const uint8_t ref[CSTATE_KP_REF_BYTES]);
/* Deletes every last resort of suite but keep (one last resort per suite). */
int cstate_kp_drop_last_resort(cstate *s, uint16_t suite,
                               const uint8_t keep[CSTATE_KP_REF_BYTES]);
/* Deletes rows whose lifetime ended before `before`. */
int cstate_kp_prune(cstate *s, int64_t before);
int cstate_kp_clear(cstate *s);
int cstate_kp_count(cstate *s, cstate_kp_counts *out);

/* ---- reconnect backoff ------------------------------------------------- */

/* Exponential backoff with "equal jitter": the n-th delay (n from 0) is
 * d - h + rnd % (h + 1), so in [d - h, d], with d = min(max, initial * 2^n)
 * and h = d / 2 (rounded down). Invariant:
 * attempt counts delays handed out since the last reset. */
typedef struct {
  uint32_t initial_ms;
  uint32_t max_ms;
  uint32_t attempt;
} backoff;

void backoff_init(backoff *b, uint32_t initial_ms, uint32_t max_ms);
uint32_t backoff_next(backoff *b, uint32_t rnd);
void backoff_reset(backoff *b);

/* ---- connection settings (net.c), shared with the realtime session ---- */

struct ssl_ctx_st; /* OpenSSL's SSL_CTX */

/* What a tsr_ws borrows from its client. host and ctx belong to the
 * client and live as long as it. */
typedef struct {
  const char *host;
  uint16_t port;
  bool tls;
  struct ssl_ctx_st *ctx; /* NULL without TLS */
  uint32_t connect_timeout_ms, request_timeout_ms, max_attempts;
  uint32_t backoff_initial_ms, backoff_max_ms;
  uint64_t (*clock_ms)(void *);
  uint32_t (*random_u32)(void *);
  void *hook_arg;
} client_net_settings;

void client_net_settings_get(const tsr_client *c, client_net_settings *out);

/* The TSR_E* code for a protocol error code (the table of tessera.h:
 * bad_request -> TSR_EINVAL, ..., anything else TSR_EPROTOCOL). */
int client_error_code(const char *code);

/* Shared by the HTTP connection (net.c) and the session (ws.c). */
struct addrinfo;
typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;
/* A non-blocking TCP socket (TCP_NODELAY) connecting to the first address
 * from *next on that takes the attempt; *next moves past it. Returns the fd
 * (*done: connected already, else in progress) or -1 when none is left. */
int client_connect_next(struct addrinfo **next, bool *done);
/* An SSL on fd checking that the certificate names host (DNS name, or IP
 * for a numeric host), with SNI for names only (RFC 6066); NULL on failure. */
SSL *client_tls_new(SSL_CTX *ctx, int fd, const char *host);

/* ---- keys ---------------------------------------------------------------- */

/* The 55 signed bytes: TSR_DEVICE_CERT_LABEL, 0x00, device key. */
void device_cert_message(const uint8_t device_pk[32],
                         uint8_t out[TSR_DEVICE_CERT_MSG_LEN]);
/* Ed25519 signature of the message with the identity secret key. */
int device_cert_sign(const uint8_t identity_sk[64], const uint8_t device_pk[32],
                     uint8_t sig[64]);

/* ---- MLS identity (keys.c) ----------------------------------------------- */

struct group_identity; /* mls/group.h */

/* This device's MLS identity for suite (1 or 3): its signature key is the
 * stored device key (K_DEVICE_SK), its credential basic with identity
 * account_id || device_id (32 raw bytes). Caller frees with
 * group_identity_free. Errors: TSR_EINVAL (suite), TSR_ESTATE (no session
 * ids or no device key), TSR_EDECODE (stored values malformed, or the
 * stored public key does not match the secret key), TSR_ENOMEM. */
int client_mls_identity(tsr_client *c, uint16_t suite, struct group_identity **out);

/* ---- HTTP requests ----------------------------------------------------- */

/* Appends one HTTP/1.1 request: request line, Host, (Authorization: Bearer
 * token when token is not NULL), Content-Type and Content-Length when body
 * is not NULL, then the body. Returns 0, TSR_EINVAL (CR, LF or NUL in a
 * field, path not starting with '/'), TSR_ENOMEM. */
int client_encode_request(buf_t *out, const char *method, const char *host, uint16_t port,
                          bool tls, const char *path, const char *token, bytes_t *body);
/* The same with the body's content type (NULL: application/json) and one
 * extra header line without CRLF (NULL or "": none). */
int client_encode_request_ex(buf_t *out, const char *method, const char *host,
                             uint16_t port, bool tls, const char *path, const char *token,
                             bytes_t *body, const char *content_type, const char *extra);

/* What the account layer does with an answer before the user's callback. */
enum req_kind {
  REQ_PLAIN = 0,
  REQ_SESSION, /* stores account_id, device_id, token (register/login/link) */
  REQ_LOGOUT,  /* clears the session */
  REQ_REVOKE,  /* clears the session when aux is our device id */
  REQ_LINKCODE /* adds certificate + signature_key to the body */
};

/* One queued request. Owned by the client from client_submit until its
 * callback has returned. */
typedef struct creq {
  struct creq *next;
  char method[8];
  char *path;
  buf_t body; /* JSON, empty for none */
  bool has_body;
  bool auth;      /* send the stored token */
  int kind;       /* enum req_kind */
  char aux[128];  /* REQ_REVOKE: device id; REQ_LINKCODE: key */
  char aux2[128]; /* REQ_SESSION: login; REQ_LINKCODE: certificate */
  tsr_result_cb cb;
  void *cb_arg;
  uint32_t attempts; /* sends started */
  /* Binary calls (blobs.c): the body's Content-Type (static string; NULL
   * means application/json), one more header line without CRLF (e.g.
   * "Range: bytes=0-9"; "" for none), and raw_answer: a 2xx body is
   * handed over as it came (bytes), not checked to be JSON. */
  const char *content_type;
  char extra_header[96];
  bool raw_answer;
  /* A body streamed from a file instead of `body`: body_fd >= 0 (owned:
   * closed with the request), body_len bytes from offset 0, read in
   * pieces as the socket drains (a retry reads it again from the start).
   * Set has_body too. The file must not change while it is sent. */
  int body_fd;
  uint64_t body_len;
} creq;

/* Queues r (taking ownership, also on failure). */
int client_submit(tsr_client *c, creq *r);
creq *client_req_new(const char *method, const char *path);
void client_req_free(creq *r);
cstate *client_state(tsr_client *c);
/* Completes a request: account hooks, then the callback. Defined in
 * account.c, called by net.c. */
void account_complete(tsr_client *c, creq *r, tsr_result *res);

/* Runs the client until *done becomes nonzero (used by the _sync calls). */
int client_wait(tsr_client *c, const int *done);

/* ---- blocking forms (account.c) ---------------------------------------- */

/* Callback filling the tsr_reply at arg (owned copies of the result). */
void client_reply_cb(void *arg, const tsr_result *res);
/* r was zeroed and handed with client_reply_cb to a call that returned
 * rc: runs the client until the reply is filled and returns its err (or
 * rc). discard: clear r afterwards (the caller passed no reply). */
int client_sync_wait(tsr_client *c, int rc, tsr_reply *r, bool discard);

/* Body of a _sync function whose reply parameter is `out`: `call` is the
 * asynchronous call with client_reply_cb and r_. */
#define SYNC(call)                                                                       \
  tsr_reply local_;                                                                      \
  tsr_reply *r_ = out ? out : &local_;                                                   \
  memset(r_, 0, sizeof *r_);                                                             \
  return client_sync_wait(c, (call), r_, out == NULL)

#endif
