/* Accounts and devices (docs/protocol.md, "Accounts and devices"):
 * registration, password login of a new device, logout, device list and
 * revocation, link codes, phone verification, and the bearer-token check
 * every authenticated route uses; and WebSocket session authentication
 * (op "auth" or a Bearer token on the upgrade, op "whoami", closing a
 * revoked device's sessions), see docs/protocol.md "Realtime session".
 *
 * Durability: every call that writes answers only after its store job
 * committed (httpd_defer / httpd_complete), so an acknowledged account or
 * device survives kill -9.
 *
 * Password hashing (argon2id, ~90 ms each here) runs on one hashing thread
 * per worker process, never on the event loop and never on the store writer
 * (whose transaction would then hold SQLite's write lock for the whole
 * hash). Hashes of one worker therefore queue behind each other: with W
 * workers at most W hash at once, which also caps the memory argon2id uses
 * (64 MiB each). Results come back to the loop through loop_post.
 *
 * Secrets: tokens are 32 random bytes, stored only as SHA-256; link and
 * phone codes are stored as SHA-256 too and compared in constant time.
 *
 * Rate limits: token buckets per source address and per account (or login
 * name), shared by all workers (ratelimit.h). accounts_auth_or_refuse and
 * the WebSocket authorize hook also take one token of the account's general
 * request bucket (RL_REQUEST_ACCOUNT); httpd takes the address's.
 *
 * Threads: everything here runs on a worker's loop thread, except the
 * hashing thread's internals. */
#ifndef TSR_SERVER_ACCOUNTS_H
#define TSR_SERVER_ACCOUNTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/httpd.h"
#include "server/worker.h"

#define ACCOUNTS_ID_BYTES 16
#define ACCOUNTS_TOKEN_BYTES 32
#define ACCOUNTS_LINK_CODE_TTL 300  /* seconds */
#define ACCOUNTS_PHONE_CODE_TTL 600 /* seconds */
/* WebSocket sessions re-read their device row (revoked by another worker?)
 * before an op when the last check of the device on this worker is older. */
#define ACCOUNTS_WS_RECHECK_MS 1000

/* Registers the account routes. Call from main before the workers start. */
int accounts_routes(void);

/* Worker hooks (worker_set_hooks): start the hashing thread, stop it. */
int accounts_worker_start(worker *w);
void accounts_worker_stop(worker *w);

/* Checks "Authorization: Bearer <token>" against the live devices (read on
 * this thread's store reader, so a revocation committed by any worker is
 * seen at once). Returns 0 and fills the ids, TSR_ENOTFOUND for a missing,
 * malformed, unknown or revoked token (answer 401), or TSR_EIO. */
int accounts_authenticate(const httpd_req *req, uint8_t account_id[ACCOUNTS_ID_BYTES],
                          uint8_t device_id[ACCOUNTS_ID_BYTES]);

/* accounts_authenticate for a handler: true with the ids filled, or false
 * with resp set to the 401 (with WWW-Authenticate) or the 500. */
bool accounts_auth_or_refuse(const httpd_req *req, httpd_resp *resp,
                             uint8_t account_id[ACCOUNTS_ID_BYTES],
                             uint8_t device_id[ACCOUNTS_ID_BYTES]);

/* The same check for a raw base64url token (no "Bearer "), e.g. the
 * WebSocket op "auth". Same results. */
int accounts_authenticate_token(const char *b64, size_t len,
                                uint8_t account_id[ACCOUNTS_ID_BYTES],
                                uint8_t device_id[ACCOUNTS_ID_BYTES]);

/* Delivery of phone verification codes. send runs on the loop thread and
 * must not block for long; returns 0 or a negative TSR_E* code. */
typedef struct {
  int (*send)(void *ctx, const char *phone, const char *code);
  void *ctx;
} accounts_sms_sender;

/* ---- WebSocket sessions, for the conversation ops (conv.c) ----

 * The account and device of an authenticated session (c->session set). */
void accounts_session_ids(const conn *c, uint8_t acc[ACCOUNTS_ID_BYTES],
                          uint8_t dev[ACCOUNTS_ID_BYTES]);
/* Calls fn for every open session of device dev on this worker (fn may
 * close one). */
void accounts_each_session(const uint8_t dev[ACCOUNTS_ID_BYTES],
                           void (*fn)(conn *c, void *arg), void *arg);
/* fn runs when a device gets its first session on this worker (online)
 * and when its last one ends or it is revoked (offline). One hook; set
 * before the workers start. */
void accounts_set_presence_hook(void (*fn)(const uint8_t acc[ACCOUNTS_ID_BYTES],
                                           const uint8_t dev[ACCOUNTS_ID_BYTES],
                                           bool online));
/* fn runs when an account's devices changed: one was revoked (revoked is
 * its id) or published KeyPackages, so that it can be added to the
 * account's conversations (revoked NULL). One hook; set before the
 * workers start. accounts_devices_changed calls it (keypackages.c). */
void accounts_set_devices_hook(void (*fn)(const uint8_t acc[ACCOUNTS_ID_BYTES],
                                          const uint8_t *revoked));
void accounts_devices_changed(const uint8_t acc[ACCOUNTS_ID_BYTES],
                              const uint8_t *revoked);
/* Calls fn for every device with sessions on this worker. */
void accounts_each_online(void (*fn)(const uint8_t acc[ACCOUNTS_ID_BYTES],
                                     const uint8_t dev[ACCOUNTS_ID_BYTES], void *arg),
                          void *arg);

/* Replaces the sender (before the workers start). The default development
 * sender appends "<phone> <code>\n" to <data-dir>/dev-sms.log. */
void accounts_set_sms_sender(const accounts_sms_sender *s);

#endif
