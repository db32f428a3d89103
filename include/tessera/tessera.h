/* libtessera: the tessera client library (accounts, devices, app profiles
 * and any authenticated call of the protocol, and the realtime session
 * that carries conversation ops and pushes: tsr_ws, see "Realtime
 * session" below).
 *
 * One tsr_client is one device talking to one tesserad. It owns the
 * connection (HTTP/1.1 with keep-alive, optionally TLS), a queue of
 * requests, retries with exponential backoff and jitter, and the device's
 * local state: a SQLite file holding the account's identity key (on the
 * device that registered), this device's signature key, the session token,
 * the account and device ids, and the private parts of the MLS
 * KeyPackages this device published.
 *
 * The state file is created on first use with mode 0600 and carries a
 * schema version (PRAGMA user_version); an older file is migrated when
 * opened (version 2 added the KeyPackage private parts to version 1's
 * keys and session, version 3 the conversations, messages and outbox of
 * tsr_chat), a file written by a newer libtessera is refused with
 * TSR_EUNSUPPORTED. Secret keys are stored in it unencrypted: at-rest
 * encryption of the state file is a later step, so the file must be
 * protected like an SSH private key.
 *
 * Event loop. None is imposed. The caller polls tsr_client_fd() for
 * reading, and also for writing while tsr_client_want_write() is true,
 * calls tsr_client_on_readable() / tsr_client_on_writable() when it is
 * ready, and tsr_client_on_tick() no later than tsr_client_next_timeout()
 * says (timeouts, reconnects). A host name's addresses are tried in
 * getaddrinfo's order, the next when one refuses or stays silent for
 * connect_timeout_ms. The fd changes across reconnects and is -1
 * while there is no connection: re-read it after every call.
 * tsr_client_run_until_idle() is a blocking poll(2) loop doing exactly
 * this, for scripts and the CLI. Host names are resolved with a blocking
 * getaddrinfo() when a connection starts; pass a numeric address to avoid
 * it.
 * With TLS, a write to a peer that closed may raise SIGPIPE (OpenSSL
 * writes with write(2)): processes using TLS should ignore SIGPIPE, as
 * the tessera CLI does. Plain connections use MSG_NOSIGNAL.
 *
 * Requests. Every call below is asynchronous: it validates its arguments,
 * queues the request and returns 0, or a negative TSR_E* code with nothing
 * queued (then the callback is never called). The callback is called
 * exactly once, from inside on_readable / on_writable / on_tick /
 * run_until_idle / tsr_client_free, on the thread driving the client. It
 * may queue further requests; it must not free the client. Each call also
 * has a blocking `_sync` form that queues the request and runs the client
 * until it completes.
 *
 * Threads: no global state besides tsr_client_global_init(). A client
 * belongs to one thread at a time; distinct clients are independent.
 *
 * Errors: functions return 0 or a negative TSR_E* code (tessera/error.h,
 * tsr_strerror) and change nothing observable on failure.
 *
 * Ownership: strings passed in are copied before the call returns; the
 * caller keeps ownership. A tsr_result and everything it points to is
 * valid only during the callback; a tsr_reply is owned by the caller and
 * released with tsr_reply_clear. */
#ifndef TESSERA_TESSERA_H
#define TESSERA_TESSERA_H

#include <stddef.h>
#include <stdint.h>

#include "tessera/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Sizes of text buffers filled by this API (NUL terminator included). */
#define TSR_KEY_B64_SIZE 44  /* a 32-byte key, base64url without padding */
#define TSR_CERT_B64_SIZE 87 /* a 64-byte certificate, base64url */
#define TSR_ID_B64_SIZE 23   /* a 16-byte account or device id, base64url */
#define TSR_LOGIN_SIZE 33    /* 3..32 characters */

/* The byte string a device certificate signs (docs/protocol.md):
 * TSR_DEVICE_CERT_LABEL, one 0x00 byte, then the 32-byte device key. */
#define TSR_DEVICE_CERT_LABEL "tessera-device-cert-v1"
#define TSR_DEVICE_CERT_MSG_LEN 55

/* Initialises libsodium and OpenSSL. Call once before anything else; safe
 * to call again. Returns 0 or TSR_ECRYPTO. */
int tsr_client_global_init(void);

/* --- Client --------------------------------------------------------- */

typedef struct tsr_client tsr_client;

/* Connection and state settings. Zero fields take the defaults noted.
 * Strings are copied by tsr_client_new. */
typedef struct {
  const char *host;            /* server name or address; default "127.0.0.1" */
  uint16_t port;               /* default 8080 */
  int use_tls;                 /* 1: TLS 1.2+ with certificate and host check */
  const char *ca_file;         /* PEM bundle for TLS; NULL: system store */
  const char *state_path;      /* device state file (required) */
  uint32_t connect_timeout_ms; /* TCP + TLS handshake; default 5000 */
  uint32_t request_timeout_ms; /* from send to full answer; default 15000 */
  uint32_t backoff_initial_ms; /* first reconnect delay; default 250 */
  uint32_t backoff_max_ms;     /* cap on the delay; default 30000 */
  uint32_t max_attempts;       /* tries per request (see below); default 4 */
  /* Test hooks: a monotonic clock in milliseconds and a source of random
   * 32-bit values for the jitter. NULL: CLOCK_MONOTONIC and libsodium. */
  uint64_t (*clock_ms)(void *arg);
  uint32_t (*random_u32)(void *arg);
  void *hook_arg;
} tsr_client_config;

/* Opens (creating if needed) the state file and returns a client with no
 * connection yet; connecting starts with the first request. Errors:
 * TSR_EINVAL (no state_path, bad settings), TSR_EIO (file cannot be
 * opened or made 0600), TSR_EUNSUPPORTED (state schema too new),
 * TSR_ECRYPTO (TLS context), TSR_ENOMEM. *out is set only on success. */
int tsr_client_new(const tsr_client_config *cfg, tsr_client **out);

/* Closes the connection and the state file. Requests still queued complete
 * first with TSR_ESTATE and code "cancelled". NULL is a no-op. */
void tsr_client_free(tsr_client *c);

/* --- Non-blocking driving -------------------------------------------- */

/* The socket to poll, or -1 while not connected (idle or waiting to
 * reconnect). */
int tsr_client_fd(const tsr_client *c);

/* 1 when the caller should also poll tsr_client_fd() for writing. */
int tsr_client_want_write(const tsr_client *c);

/* Call when the fd is readable / writable. Both return 0: transport
 * failures are handled inside (reconnect, retry, or completing the
 * affected requests with an error); a negative code means the client
 * itself is unusable (TSR_ENOMEM). */
int tsr_client_on_readable(tsr_client *c);
int tsr_client_on_writable(tsr_client *c);

/* Call at least when tsr_client_next_timeout() expires, with the current
 * time of the clock in use (tsr_client_now_ms). Handles connect and
 * request timeouts and starts pending (re)connects. Returns 0 or
 * TSR_ENOMEM. */
int tsr_client_on_tick(tsr_client *c, uint64_t now_ms);

/* Milliseconds until on_tick is needed (0: now), or -1 when nothing is
 * pending. */
int64_t tsr_client_next_timeout(const tsr_client *c, uint64_t now_ms);

/* The client's clock (the configured hook, else CLOCK_MONOTONIC). */
uint64_t tsr_client_now_ms(const tsr_client *c);

/* Number of requests queued or in flight. */
size_t tsr_client_pending(const tsr_client *c);

/* Runs a poll(2) loop until no request is pending (returns 0) or
 * timeout_ms has passed (returns 1; requests stay queued). timeout_ms < 0
 * waits without limit. Returns TSR_EIO if poll itself fails. */
int tsr_client_run_until_idle(tsr_client *c, int timeout_ms);

/* --- Results --------------------------------------------------------- */

/* The outcome of one request, valid only during the callback.
 *
 * err is 0 on success (HTTP 2xx) and body is the server's JSON result
 * object. On failure err is negative and `code` is the protocol's stable
 * error code or a local one:
 *
 *   server code            err
 *   bad_request            TSR_EINVAL
 *   unauthorized           TSR_EVERIFY
 *   forbidden              TSR_ESENDER
 *   not_found              TSR_ENOTFOUND
 *   conflict               TSR_ECONFLICT
 *   too_large, rate_limited, busy   TSR_ELIMIT
 *   anything else          TSR_EPROTOCOL
 *   local "network"        TSR_EIO       (no answer after max_attempts)
 *   local "timeout"        TSR_EIO       (request_timeout_ms passed)
 *   local "tls"            TSR_EVERIFY   (server certificate not trusted or
 *                                         not for host; not retried)
 *   local "bad_response"   TSR_EDECODE   (unparsable HTTP or JSON)
 *   local "state"          the state-file error (answer could not be kept)
 *   local "cancelled"      TSR_ESTATE    (client freed)
 *
 * Branch on `code`, never on `message`. body is the whole answer body
 * (on failure the error object as sent, or "" without an answer). */
typedef struct {
  int err;             /* 0 or a negative TSR_E* code */
  int status;          /* HTTP status, 0 when there was no answer */
  const char *code;    /* "" on success; never NULL */
  const char *message; /* for people; never NULL */
  const char *body;    /* JSON text, not NUL-terminated; never NULL */
  size_t body_len;
} tsr_result;

typedef void (*tsr_result_cb)(void *arg, const tsr_result *res);

/* An owned copy of a tsr_result, filled by the _sync calls. Strings are
 * NUL-terminated and malloc'ed; tsr_reply_clear frees them. */
typedef struct {
  int done; /* 1 once filled */
  int err;
  int status;
  char *code;
  char *message;
  char *body;
  size_t body_len;
} tsr_reply;

void tsr_reply_clear(tsr_reply *r);

/* --- Accounts and sessions --------------------------------------------- */

/* Registers an account (POST /v1/accounts). The first call on a state file
 * generates the account identity key and this device's signature key
 * (Ed25519, libsodium) and stores them; the certificate is made locally.
 * On success the state file keeps account id, device id and token before
 * the callback runs. phone and email may be NULL. Synchronous errors:
 * TSR_EINVAL (missing login/password/device_name), TSR_ESTATE (the state
 * file already holds a session), state-file errors. Result body:
 * {"account_id","device_id","token"}. */
typedef struct {
  const char *login;
  const char *password;
  const char *phone;       /* E.164, optional */
  const char *email;       /* optional */
  const char *device_name; /* shown in the device list */
} tsr_register_params;

int tsr_account_register(tsr_client *c, const tsr_register_params *p, tsr_result_cb cb,
                         void *arg);
int tsr_account_register_sync(tsr_client *c, const tsr_register_params *p,
                              tsr_reply *out);

/* Logs this device in with the password (POST /v1/sessions). A device key
 * is generated if the state file has none. The server requires a device
 * certificate: pass certificate_b64, made for this device's key
 * (tsr_device_key) by a device holding the identity key
 * (tsr_device_certify), or NULL to make it here, which needs this
 * account's identity key in the state file (TSR_ESTATE otherwise).
 * Other synchronous errors as for register; TSR_EDECODE for a malformed
 * certificate. */
int tsr_session_login(tsr_client *c, const char *login, const char *password,
                      const char *device_name, const char *certificate_b64,
                      tsr_result_cb cb, void *arg);
int tsr_session_login_sync(tsr_client *c, const char *login, const char *password,
                           const char *device_name, const char *certificate_b64,
                           tsr_reply *out);

/* Logs this device out (DELETE /v1/sessions/current). On success the token,
 * ids and device key are removed from the state file (the identity key
 * stays). TSR_ESTATE when not logged in. */
int tsr_session_logout(tsr_client *c, tsr_result_cb cb, void *arg);
int tsr_session_logout_sync(tsr_client *c, tsr_reply *out);

/* --- Devices ------------------------------------------------------------ */

/* Lists the account's devices (GET /v1/devices). Result body:
 * {"devices":[{"device_id","name","signature_key","certificate",
 * "created_at","last_seen_at","current"}]}. TSR_ESTATE when not logged in. */
int tsr_devices_list(tsr_client *c, tsr_result_cb cb, void *arg);
int tsr_devices_list_sync(tsr_client *c, tsr_reply *out);

/* Revokes a device of the account (DELETE /v1/devices/{device_id}).
 * Revoking the current device clears the session like logout. */
int tsr_device_revoke(tsr_client *c, const char *device_id, tsr_result_cb cb, void *arg);
int tsr_device_revoke_sync(tsr_client *c, const char *device_id, tsr_reply *out);

/* Linking a new device without the password:
 *
 *   1. new device:      tsr_device_key()      -> its public key K (print it)
 *   2. existing device: tsr_link_code_create(K) -> code + certificate of K
 *                       (needs the identity key, i.e. the device that
 *                       registered the account)
 *   3. new device:      tsr_device_link(code, certificate)
 *
 * CLI: `tessera device key`, `tessera device link-code --for K`,
 * `tessera device link CODE CERT`. A device that knows the password can
 * instead take only a certificate (`tessera device certify K` on the
 * existing device) and log in with `tessera login --certificate CERT`. The certificate is
 * public; the code is the secret: single use, 5 minutes; hand both over by a trusted
 * path. */

/* This device's public signature key as base64url (generated and stored if
 * the state file has none). out must hold TSR_KEY_B64_SIZE bytes. */
int tsr_device_key(tsr_client *c, char out[TSR_KEY_B64_SIZE]);

/* Signs a device certificate for device_key_b64 with the identity key.
 * out holds TSR_CERT_B64_SIZE bytes. TSR_ESTATE without an identity key,
 * TSR_EDECODE for a malformed key. */
int tsr_device_certify(tsr_client *c, const char *device_key_b64,
                       char out[TSR_CERT_B64_SIZE]);

/* Creates a link code (POST /v1/devices/link-codes) for the device whose
 * key is device_key_b64. Checks and signs locally first (errors as
 * tsr_device_certify). Result body: {"code","expires_at","certificate",
 * "signature_key"}: the server's answer plus the certificate made here. */
int tsr_link_code_create(tsr_client *c, const char *device_key_b64, tsr_result_cb cb,
                         void *arg);
int tsr_link_code_create_sync(tsr_client *c, const char *device_key_b64, tsr_reply *out);

/* Redeems a link code on the new device (POST /v1/devices/link) with the
 * certificate made by the existing device, which must certify this
 * device's key (checked here only for its size; the server verifies it).
 * On success the session is stored as for login. */
int tsr_device_link(tsr_client *c, const char *code, const char *certificate_b64,
                    const char *device_name, tsr_result_cb cb, void *arg);
int tsr_device_link_sync(tsr_client *c, const char *code, const char *certificate_b64,
                         const char *device_name, tsr_reply *out);

/* --- Generic authenticated calls ----------------------------------------- */

/* Any call of docs/protocol.md that needs the session token, for the parts
 * of the protocol without a typed helper below (graphs, blocks, phone
 * verification, ...). method is "GET", "POST", "PUT", "PATCH" or "DELETE";
 * path starts with '/' and holds no spaces or control characters (escape
 * path segments and query values with tsr_path_escape); json_body is the
 * request body as JSON text (copied; not checked, the server answers
 * bad_request to malformed JSON) or NULL for none. Synchronous errors:
 * TSR_EINVAL (bad method or path), TSR_ESTATE (not logged in),
 * TSR_ENOMEM. The result is delivered as for every call: body is the
 * server's JSON answer. The request is retried after transport failures
 * like the others, so prefer calls that are safe to repeat (all app,
 * graph and block calls are). */
int tsr_call(tsr_client *c, const char *method, const char *path, const char *json_body,
             tsr_result_cb cb, void *arg);
int tsr_call_sync(tsr_client *c, const char *method, const char *path,
                  const char *json_body, tsr_reply *out);

/* Percent-encodes in for use as one path segment or query value: every
 * byte other than A-Z a-z 0-9 - . _ ~ becomes %XX ("+15550100" ->
 * "%2B15550100"). Writes a NUL-terminated string into out (cap bytes) and
 * returns its length, or TSR_ELIMIT when it does not fit (out is then
 * ""), TSR_EINVAL for NULL arguments. Pure function; any thread. */
int tsr_path_escape(const char *in, char *out, size_t cap);

/* --- Apps: profiles and search ------------------------------------------ */

/* The apps of docs/protocol.md, "Apps: profiles": "chat", "social" and
 * "messenger". Any other app name is TSR_EINVAL in the calls below. */

/* A profile to store with tsr_profile_put. NULL strings are sent as "".
 * Which fields an app uses:
 *   chat       name (sent as display_name), about; the key is the
 *              account's verified phone number, set by the server
 *   social     key (the handle, required), name, about (sent as bio),
 *              private_account
 *   messenger  key (the username, required), name, page, and for pages
 *              category, hours, website
 * Fields an app does not use are ignored. */
typedef struct {
  const char *key;
  const char *name;
  const char *about;
  int private_account; /* social: 1 for a private account */
  int page;            /* messenger: 1 for a business page */
  const char *category;
  const char *hours;
  const char *website;
} tsr_profile;

/* Creates or replaces your profile in app (PUT /v1/apps/{app}/profile;
 * the whole profile is replaced). Synchronous errors: TSR_EINVAL (unknown
 * app, NULL p, missing key for social or messenger), TSR_ESTATE (not
 * logged in), TSR_ENOMEM; the server checks the field rules. Result
 * body: {"profile":{...}} (status 201 when created, 200 when replaced);
 * codes bad_request, conflict, phone_unverified (chat without a verified
 * phone number). */
int tsr_profile_put(tsr_client *c, const char *app, const tsr_profile *p,
                    tsr_result_cb cb, void *arg);
int tsr_profile_put_sync(tsr_client *c, const char *app, const tsr_profile *p,
                         tsr_reply *out);

/* Reads a profile: your own (GET /v1/apps/{app}/profile) when key is NULL
 * or "", else the profile named key in app (a phone number, handle or
 * username; escaped here). Result body: {"profile":{...}}; not_found also
 * when either account blocked the other. Synchronous errors as for
 * tsr_profile_put, plus TSR_ELIMIT for a key over 200 bytes. */
int tsr_profile_get(tsr_client *c, const char *app, const char *key, tsr_result_cb cb,
                    void *arg);
int tsr_profile_get_sync(tsr_client *c, const char *app, const char *key, tsr_reply *out);

/* Searches app (GET /v1/apps/{app}/search): handles or usernames starting
 * with prefix, or in chat exactly the number prefix. limit 1..50, 0 for
 * the server's default (20). Result body: {"results":[profile,...]}.
 * Synchronous errors as for tsr_profile_get, TSR_EINVAL also for an
 * empty prefix or a limit over 50. */
int tsr_search(tsr_client *c, const char *app, const char *prefix, unsigned limit,
               tsr_result_cb cb, void *arg);
int tsr_search_sync(tsr_client *c, const char *app, const char *prefix, unsigned limit,
                    tsr_reply *out);

/* --- MLS identity and KeyPackages --------------------------------------- */

/* Every device is its own MLS (RFC 9420) member (docs/protocol.md,
 * "KeyPackages"). Its MLS signature key is its device key (tsr_device_key)
 * and its credential is basic, with the 32-byte identity account_id ||
 * device_id (raw ids as the server assigned them). Cipher suites: 1
 * (X25519, AES-128-GCM, SHA-256, Ed25519) and 3 (X25519,
 * ChaCha20-Poly1305, SHA-256, Ed25519).
 *
 * Others add this device to a conversation with one of its published
 * KeyPackages; the private part of each (its init and leaf HPKE private
 * keys) stays in the state file until the Welcome made for it is opened:
 *
 *   1. tsr_keypackages_replenish() now and whenever status shows the
 *      server's stock running low;
 *   2. a Welcome arrives: tsr_keypackage_secret_take_welcome() (or, with
 *      the KeyPackageRef in hand, tsr_keypackage_secret_take()) hands
 *      out the private part and deletes it;
 *   3. the private part opens the Welcome (MLS join with this device's
 *      identity), then is freed with tsr_secret_free.
 *
 * The private parts are stored unencrypted like every key of the state
 * file. Logging out or a new session deletes them. */

#define TSR_MLS_IDENTITY_SIZE 32   /* account_id || device_id */
#define TSR_KEYPACKAGE_REF_SIZE 32 /* KeyPackageRef of suites 1 and 3 */
#define TSR_KEYPACKAGES_MAX 200    /* the server's limit per device */

/* This device's MLS credential identity (account_id || device_id) into
 * out; no network. TSR_ESTATE when not logged in, TSR_EDECODE when the
 * stored ids are malformed. */
int tsr_device_mls_credential(tsr_client *c, uint8_t out[TSR_MLS_IDENTITY_SIZE]);

/* Tops up this device's KeyPackages of cipher suite `suite` (1 or 3) on
 * the server to `target` available (0: 100; at most TSR_KEYPACKAGES_MAX):
 * asks the server how many it holds (GET /v1/keypackages, per suite),
 * makes the missing ones and uploads them in calls of at most 100 (POST
 * /v1/keypackages), with a new last-resort KeyPackage of the suite when
 * the server has none of it, when this state file holds no private part
 * for it, or when it was already used to join (tsr_keypackage_secret_take*;
 * the new one replaces it on the server and its private part is deleted
 * here). Nothing is uploaded when the suite's stock is already at target.
 *
 * `target` counts the suite's KeyPackages only, and each suite has its own
 * last resort (docs/protocol.md). The server's limit of
 * TSR_KEYPACKAGES_MAX is per device, every suite together: when the other
 * suite's stock leaves less room, only what fits is uploaded (the result
 * then shows fewer than `target` available; no error).
 *
 * Private parts are stored (one transaction per upload) before each
 * upload is sent, and deleted again when the server refuses it; when no
 * answer comes (code "network" or "timeout") they stay, since the server
 * may have stored the KeyPackages. Private parts whose KeyPackage expired
 * more than 7 days ago are deleted at each call. KeyPackages live 90 days.
 *
 * Synchronous errors: TSR_EINVAL (suite, target over the maximum),
 * TSR_ESTATE (not logged in, or no device key), TSR_EDECODE (malformed
 * ids or key in the state file), TSR_ENOMEM. Result body on success:
 * {"available","last_resort","suite","uploaded","last_resort_uploaded",
 * "by_suite","local_secrets","local_suite_1","local_suite_3",
 * "local_last_resort"}: the server's count of `suite` after the last call
 * (KeyPackages besides the last resort, and whether it holds a last resort
 * of that suite), the number of KeyPackages uploaded by this call (last
 * resort not counted), and, as tsr_keypackages_status, both suites'
 * counts in "by_suite" and what the state file holds. On failure the
 * result is the failing call's (codes as for every call, plus
 * too_many_key_packages when another client of this device filled the
 * stock meanwhile) or a local one: "state" (state file), "bad_response",
 * or "local" (KeyPackages could not be made). Uploads that succeeded
 * before a failure stay. */
int tsr_keypackages_replenish(tsr_client *c, uint16_t suite, unsigned target,
                              tsr_result_cb cb, void *arg);
int tsr_keypackages_replenish_sync(tsr_client *c, uint16_t suite, unsigned target,
                                   tsr_reply *out);

/* The device's KeyPackage stock (GET /v1/keypackages) and what the state
 * file holds. Result body: {"available": KeyPackages the server holds
 * besides the last resorts, every suite together, "last_resort": whether
 * it holds one of any suite, "by_suite": {"1": {...}, "3": {...}},
 * "local_secrets": private parts in the state file (last resorts
 * included), "local_suite_1", "local_suite_3": the same per suite,
 * "local_last_resort": whether the state file holds the private part of a
 * last resort not yet used, of any suite}. Each member of "by_suite" is
 * one suite's {"available", "last_resort" (the server's, as above),
 * "local_secrets", "local_last_resort" (the state file's, as above)}.
 * The local counts include private parts of KeyPackages already claimed
 * whose Welcome has not been opened yet.
 * Synchronous errors: TSR_EINVAL, TSR_ESTATE (not logged in),
 * TSR_ENOMEM; local result codes "state" and "bad_response". */
int tsr_keypackages_status(tsr_client *c, tsr_result_cb cb, void *arg);
int tsr_keypackages_status_sync(tsr_client *c, tsr_reply *out);

/* KeyPackageRef (RFC 9420 §5.2) of a KeyPackage: an MLSMessage as the
 * server hands it out, or a bare KeyPackage. Pure function (after
 * tsr_client_global_init); any thread. TSR_EDECODE for malformed input,
 * TSR_EUNSUPPORTED for a suite other than 1 and 3. */
int tsr_keypackage_ref(const uint8_t *kp, size_t kp_len,
                       uint8_t out[TSR_KEYPACKAGE_REF_SIZE]);

/* Takes the private part of this device's KeyPackage whose KeyPackageRef
 * is ref: on success *secret (malloc'ed, *secret_len bytes; release it
 * with tsr_secret_free) holds it in the versioned form the MLS library
 * joins with (kp_secret_decode in src/mls/group.h, or the `secrets` of
 * tsr_mls_group_join in tessera/mls.h), and the state file no longer
 * holds it, in one durable transaction: a second take of the same ref is
 * TSR_ENOTFOUND. The private part of the last-resort KeyPackage is the
 * exception: it stays (others may have claimed it too) and is marked
 * used, so that the next tsr_keypackages_replenish replaces it.
 *
 * Taking is final: if the join then fails, the KeyPackage is spent (it
 * was single-use anyway). Callers that open a Welcome should take right
 * before joining and keep the result only in memory. Errors: TSR_EINVAL,
 * TSR_ENOTFOUND (no such private part: not ours, already taken, or
 * deleted by logout), TSR_EIO (state file), TSR_ENOMEM; nothing changes
 * on failure. No network. */
int tsr_keypackage_secret_take(tsr_client *c, const uint8_t ref[TSR_KEYPACKAGE_REF_SIZE],
                               uint8_t **secret, size_t *secret_len);

/* The same for a Welcome (an MLSMessage or a bare Welcome): takes the
 * private part for the first of the Welcome's new members
 * (EncryptedGroupSecrets.new_member) whose KeyPackageRef this device
 * holds. Additionally TSR_EDECODE for a Welcome that does not decode;
 * TSR_ENOTFOUND when it names none of ours. The Welcome is only parsed,
 * not verified (joining does that). */
int tsr_keypackage_secret_take_welcome(tsr_client *c, const uint8_t *welcome,
                                       size_t welcome_len, uint8_t **secret,
                                       size_t *secret_len);

/* Wipes len bytes at p and frees them (a secret handed out above). NULL
 * is a no-op. */
void tsr_secret_free(void *p, size_t len);

/* --- Realtime session (WebSocket) --------------------------------------- */

/* The conversation ops of docs/protocol.md ("Conversations":
 * conversation.create, send, sync, ack, conversations,
 * conversation.members, and whoami, ping) and the server's pushes exist
 * only on the realtime session, a WebSocket (RFC 6455) at GET /v1/ws with
 * subprotocol tessera.v1. A tsr_ws is one such session of this device.
 *
 * Why a separate object and not a second connection inside tsr_client:
 * the driving model above is one descriptor per object (tsr_client_fd,
 * want_write, on_readable, ...), which existing callers poll; a second
 * connection inside the client would need a second fd in that API. A
 * tsr_ws has exactly the same driving functions for its own fd, so a
 * program polls the two objects side by side (or only the session), and
 * a program that never opens a session pays nothing. The name is tsr_ws
 * because tsr_session_* already names login and logout.
 *
 * A tsr_ws is made from a tsr_client and borrows it: the server address,
 * TLS settings and CA, connect and request timeouts, backoff, max_attempts
 * and the clock and random hooks are the client's (a tsr_ws_config field
 * may override some), and the device token is read from the client's
 * state file at each connect. The client must outlive the session: free
 * every tsr_ws before its tsr_client. Both belong to the same thread.
 *
 * Connection. The session wants to be connected for its whole life: the
 * first on_tick (tsr_ws_next_timeout asks for it at once) connects (TCP,
 * TLS when the client uses it, the upgrade with Sec-WebSocket-Protocol
 * tessera.v1 and Authorization: Bearer <token>, a fresh random
 * Sec-WebSocket-Key whose Sec-WebSocket-Accept is checked), and after
 * every loss it reconnects with exponential backoff and jitter (the
 * client's backoff settings), each attempt bounded by connect_timeout_ms
 * (TCP + TLS + the 101 answer). on_state reports every change between
 * connected and disconnected, so that the conversation layer can sync
 * after each reconnect (pushes sent while disconnected are lost).
 *
 * Frames. Every client frame is masked with a fresh random key; text
 * messages are reassembled from fragments; server pings are answered with
 * pongs; a Close from the server is answered and the connection dropped
 * (then reconnected). When nothing has arrived for ping_interval_ms the
 * session sends a ping (this keeps NAT mappings alive), and drops the
 * connection as dead when nothing arrives pong_timeout_ms after it.
 *
 * Calls. tsr_ws_call sends {"op":OP,"id":N,FIELDS} and matches the
 * answer by id (answers may come in any order). A call made while
 * disconnected is queued and sent after the (re)connect; it completes
 * with "network" when max_attempts connection attempts in a row fail
 * while it waits, or with the server's refusal of the upgrade (e.g.
 * "unauthorized" for a revoked token). A call in flight when the
 * connection drops completes with "network": the server may or may not
 * have acted on it (resend a `send` with the same client_id). A call
 * without an answer request_timeout_ms after it was sent completes with
 * "timeout" (a later answer is ignored; the connection stays).
 * Callbacks are called exactly once, as for the HTTP calls, from inside
 * the tsr_ws driving functions, tsr_ws_run, tsr_ws_call_sync or
 * tsr_ws_free, on the thread driving the session. Callbacks (on_push,
 * on_state and result callbacks) may call tsr_ws_call and the HTTP calls
 * of the client; they must not free the session or the client.
 *
 * Results use tsr_result: err 0 and body = the answer's "ok" object as
 * JSON text; or err < 0 with code and message from its "error" object
 * (err mapped as in the table above; WebSocket-only codes such as
 * unknown_op, stale_epoch or unavailable give TSR_EPROTOCOL) and body =
 * the whole answer message. status is 101 for an answer that came over
 * the session, the HTTP status when the server refused the upgrade, and
 * 0 for local results. Local codes: "network", "timeout", "cancelled"
 * (session freed), "tls", "bad_response" (an upgrade answer that is not a
 * valid 101 for our key and subprotocol), "state" (no token in the state
 * file at connect time: TSR_ESTATE). */

typedef struct tsr_ws tsr_ws;

/* Values of tsr_ws_state and of on_state's state. */
#define TSR_WS_DISCONNECTED 0
#define TSR_WS_CONNECTED 1

/* Session settings. Zero fields take the defaults noted; the overrides
 * of the client's settings take the client's value when zero. */
typedef struct {
  /* A server message with a "push" member (docs/protocol.md, "Pushes"):
   * json[0..len) is the whole message text (not NUL-terminated), valid
   * only during the call. NULL: pushes are dropped. */
  void (*on_push)(void *arg, const char *json, size_t len);
  /* TSR_WS_CONNECTED after each accepted upgrade; TSR_WS_DISCONNECTED
   * when a connected session is lost (after its in-flight calls
   * completed with "network"). Not called for failed attempts nor by
   * tsr_ws_free. May be NULL. */
  void (*on_state)(void *arg, int state);
  void *arg;                   /* passed to on_push and on_state */
  uint32_t ping_interval_ms;   /* silence before a ping; default 30000 */
  uint32_t pong_timeout_ms;    /* silence after a ping before the connection
                                  counts as dead; default 15000 */
  uint32_t max_message;        /* largest message either way; default 1 MiB */
  uint32_t connect_timeout_ms; /* overrides of the client's settings */
  uint32_t request_timeout_ms;
  uint32_t backoff_initial_ms;
  uint32_t backoff_max_ms;
  uint32_t max_attempts;
} tsr_ws_config;

/* Makes a session for client c (cfg may be NULL for the defaults); it
 * starts connecting at the first on_tick. Errors: TSR_EINVAL (NULL c or
 * out), TSR_ESTATE (c is not logged in), TSR_ENOMEM. *out is set only on
 * success. */
int tsr_ws_new(tsr_client *c, const tsr_ws_config *cfg, tsr_ws **out);

/* Sends a Close (best effort, without waiting) and closes the connection.
 * Calls queued or in flight complete first with TSR_ESTATE and code
 * "cancelled". on_state is not called. NULL is a no-op. Must not be
 * called from one of the session's callbacks. */
void tsr_ws_free(tsr_ws *s);

/* Driving, exactly as for tsr_client (see "Event loop" above): poll
 * tsr_ws_fd() (-1 while not connected; it changes across reconnects) for
 * reading, and for writing while tsr_ws_want_write(); call on_readable /
 * on_writable when ready and on_tick no later than tsr_ws_next_timeout()
 * (milliseconds, 0: now, -1: nothing pending; a session always has a
 * timer while connected, for its pings) with the client's clock
 * (tsr_client_now_ms). They return 0, or TSR_EINVAL for a NULL session:
 * transport failures are handled inside (reconnect, completing the
 * affected calls). */
int tsr_ws_fd(const tsr_ws *s);
int tsr_ws_want_write(const tsr_ws *s);
int tsr_ws_on_readable(tsr_ws *s);
int tsr_ws_on_writable(tsr_ws *s);
int tsr_ws_on_tick(tsr_ws *s, uint64_t now_ms);
int64_t tsr_ws_next_timeout(const tsr_ws *s, uint64_t now_ms);

/* TSR_WS_CONNECTED while the upgrade is accepted and the connection up,
 * else TSR_WS_DISCONNECTED. */
int tsr_ws_state(const tsr_ws *s);

/* Number of calls queued or in flight. */
size_t tsr_ws_pending(const tsr_ws *s);

/* Sends op (e.g. "sync") with fields: the inside of a JSON object without
 * braces (e.g. ""conversation":"...","after":4"), or NULL / "" for
 * none. The message {"op":op,"id":N,fields} must be valid JSON without
 * duplicate keys (so fields holds neither "op" nor "id"). Returns 0 with
 * the call queued, or with nothing queued (cb never called): TSR_EINVAL
 * (NULL or empty op, fields not valid inside an object), TSR_ELIMIT (the
 * message is over max_message), TSR_ENOMEM. */
int tsr_ws_call(tsr_ws *s, const char *op, const char *json_fields, tsr_result_cb cb,
                void *arg);

/* Blocking form: queues the call and runs the session (tsr_ws_run) until
 * it completes; the result goes into out (may be NULL; release it with
 * tsr_reply_clear). Returns the result's err, or tsr_ws_call's error, or
 * TSR_EIO when poll fails. Other callbacks (pushes, state, other calls)
 * run meanwhile. The HTTP connection of the client is not driven. */
int tsr_ws_call_sync(tsr_ws *s, const char *op, const char *json_fields, tsr_reply *out);

/* Runs a poll(2) loop on the session for up to timeout_ms (< 0: without
 * limit), calling callbacks as events arrive, until `until` (may be NULL)
 * returns nonzero; it is checked before each wait and whenever poll is
 * interrupted by a signal, so a signal handler may set a flag it reads.
 * Returns 0 when until stopped it, 1 when timeout_ms passed, TSR_EINVAL,
 * or TSR_EIO when poll fails. */
int tsr_ws_run(tsr_ws *s, int timeout_ms, int (*until)(void *arg), void *arg);

/* --- Conversations (end-to-end encrypted) -------------------------------- */

/* The conversations of docs/protocol.md ("Conversations") as MLS groups of
 * this device, on a realtime session. A tsr_chat owns one tsr_ws (made
 * with the client, its on_push and on_state taken over) and keeps in the
 * state file (schema version 4):
 *
 *   - per conversation its id, app, kind, state and the saved MLS group
 *     (group secrets included: the file is 0600) and the last seq
 *     processed in order;
 *   - the messages: (conversation, seq) unique, so that nothing is handed
 *     to the app twice; sender account and device from the MLS
 *     credential, kind, text, reply, attachment descriptor, server time,
 *     and the effect of later edits and deletions (a deleted message's
 *     text and descriptor are wiped from the file); reactions per
 *     (conversation, message, account, emoji); receipts per
 *     (conversation, account): delivered and read up to which seq; the
 *     conversation's title;
 *   - the outbox: a message to send stays there, with its client_id, until
 *     the server answered with its seq, so that it survives a crash and
 *     is sent again (same client_id: the server stores it once) after the
 *     next connect. The message is encrypted once and the ciphertext kept
 *     with the group state in one transaction; it is encrypted again only
 *     when the server refuses it as stale_epoch.
 *
 * Every change of a group and the message it produced (received or sent)
 * are one SQLite transaction.
 *
 * Receiving. Pushes and sync results are processed in seq order per
 * conversation: a push after a gap makes the chat sync first. The
 * plaintext of an application message is an envelope (docs/protocol.md,
 * "What is inside the MLS messages"); texts, attachments and kinds this
 * version does not know are stored and handed to on_message once (by
 * seq); edits, deletions, reactions, receipts and titles are applied and
 * handed to on_update. An edit or deletion counts only when its sender's
 * account is the target's sender account and the target is not deleted;
 * others are ignored and stored nowhere. After a batch (one push, or one
 * page of a sync) holding other accounts' texts or attachments, the chat
 * sends one delivery receipt up to the last of them, except in a message
 * request (state request or declined: the sender sees no delivery or read
 * state until it is accepted) and in conversations of more than
 * TSR_RECEIPTS_MAX_ACCOUNTS member accounts. Typing indicators travel as
 * transient messages (not stored by the server): decrypted at once,
 * handed to on_typing, never stored; one that cannot be decrypted is
 * dropped. Commits are
 * processed and stored; what cannot be processed (e.g. this device's own
 * messages, which the server does not push but sync returns, or another
 * epoch's) is skipped. After each batch the device acknowledges the last
 * seq processed (its own sent messages included). A "welcome" push makes
 * the chat list the conversations (tsr_conversations_refresh), which
 * joins every conversation whose Welcome is listed: the KeyPackage
 * private part is taken (tsr_keypackage_secret_take_welcome), the group
 * stored, seq 0 acknowledged. After every connect (on_state connected)
 * the chat refreshes the list, syncs every conversation from its last seq
 * and sends the outbox again.
 *
 * Driving: poll the client and the session together (tsr_chat_run does
 * it: the claims of tsr_conversation_create are HTTP calls). Callbacks
 * are called exactly once, on the thread driving both; they may call the
 * functions below but must not free the chat. Free the chat before its
 * client. Cipher suite 1 only. */

typedef struct tsr_chat tsr_chat;
typedef struct tsr_notice tsr_notice; /* "Notices" below */

/* A stored message; valid only during the call. Strings are
 * NUL-terminated. */
typedef struct {
  const char *conversation;   /* id, base64url */
  uint64_t seq;               /* in the conversation's log */
  int64_t at_ms;              /* the server's time of storing; for this
                                 device's own messages, the local time of
                                 the server's answer */
  const char *sender_account; /* base64url */
  const char *sender_device;
  int own;          /* sent by this device */
  const char *text; /* UTF-8 as sent: the text of a text message, the
                       caption of an attachment, the new text of an edit,
                       the title of a title change; "" otherwise */
  size_t text_len;
  /* Fields added with the content kinds (docs/protocol.md, "What is
   * inside the MLS messages"); zero for a plain text message. */
  int kind;               /* TSR_KIND_* */
  uint64_t reply_to;      /* text, attachment: the seq answered; 0: none */
  uint64_t target;        /* edit, delete, reaction: the seq it changes;
                             receipt: up to which seq (cumulative) */
  const char *emoji;      /* reaction (UTF-8, at most 64 bytes); else "" */
  size_t emoji_len;       /*   */
  int remove;             /* reaction: taken back */
  int receipt;            /* receipt: TSR_RECEIPT_DELIVERED or _READ */
  int typing;             /* typing: 1 started, 0 stopped */
  const char *descriptor; /* attachment: the descriptor as sent
                             (tsr_attachment_encode's JSON); else "" */
  size_t descriptor_len;  /*   */
  int64_t edited_at_ms;   /* tsr_messages_local: server time of the last
                             edit applied; 0 when never edited */
  int deleted;            /* tsr_messages_local: deleted for everyone
                             (text and descriptor wiped: "") */
} tsr_message;

/* Kinds of tsr_message.kind, one per envelope kind. */
#define TSR_KIND_TEXT 0
#define TSR_KIND_EDIT 1
#define TSR_KIND_DELETE 2
#define TSR_KIND_REACTION 3
#define TSR_KIND_RECEIPT 4
#define TSR_KIND_TYPING 5
#define TSR_KIND_ATTACHMENT 6
#define TSR_KIND_TITLE 7
#define TSR_KIND_UNSUPPORTED                                                             \
  8 /* a kind of a newer client, or a plaintext that                                     \
       is no valid envelope: shown as "unsupported                                       \
       message" */
#define TSR_RECEIPT_DELIVERED 1
#define TSR_RECEIPT_READ 2
/* Receipts (delivered and read) are sent only in conversations of at
 * most this many member accounts: in larger groups they would cost every
 * member one stored message per member and batch. */
#define TSR_RECEIPTS_MAX_ACCOUNTS 32
#define TSR_TITLE_MAX 256       /* bytes of a conversation title */
#define TSR_EMOJI_MAX 64        /* bytes of a reaction */
#define TSR_DESCRIPTOR_MAX 4096 /* bytes of an attachment descriptor */
#define TSR_TYPING_MAX_RUN                                                               \
  200 /* typing messages in a row without a stored                                       \
         message in between (see tsr_send_typing) */

typedef struct {
  /* A message of another device, stored; once per (conversation, seq).
   * Kinds TSR_KIND_TEXT, TSR_KIND_ATTACHMENT and TSR_KIND_UNSUPPORTED. */
  void (*on_message)(void *arg, const tsr_message *m);
  /* This device joined a conversation from a Welcome. May be NULL. */
  void (*on_joined)(void *arg, const char *conversation, const char *app,
                    const char *kind);
  void *arg;
  /* Settings of the session (NULL: defaults); its on_push, on_state and
   * arg are not used. */
  const tsr_ws_config *ws;
  /* An edit, deletion, reaction, receipt or title change of another
   * device, applied and stored; once per (conversation, seq), in seq order
   * with on_message. What was ignored (an edit or deletion of another
   * account's message, of a deleted message or of a message not held
   * here; a reaction to such a message) is not handed over. May be NULL. */
  void (*on_update)(void *arg, const tsr_message *m);
  /* A typing indicator of another device (kind TSR_KIND_TYPING, seq 0,
   * at_ms the local time): transient, never stored; it may arrive
   * before messages sent earlier. May be NULL. */
  void (*on_typing)(void *arg, const tsr_message *m);
  /* Nonzero: send no delivery receipts automatically (a privacy setting;
   * tsr_mark_read still sends read receipts when called). */
  int no_delivery_receipts;
  /* A notice stored in a conversation (tsr_notice: a member's identity key
   * changed, a member device not certified by it). May be NULL. */
  void (*on_notice)(void *arg, const tsr_notice *n);
} tsr_chat_config;

/* Makes a chat for a logged-in client (it starts connecting at the first
 * drive). Errors as tsr_ws_new. */
int tsr_chat_new(tsr_client *c, const tsr_chat_config *cfg, tsr_chat **out);
/* Frees the session (calls in flight complete with "cancelled"; messages
 * being sent stay in the outbox). NULL is a no-op. Not from a callback. */
void tsr_chat_free(tsr_chat *h);
/* The chat's session, to poll it (tsr_ws_fd, ...). */
tsr_ws *tsr_chat_ws(tsr_chat *h);
/* Runs a poll(2) loop on the client and the session until `until` (may be
 * NULL) returns nonzero (0) or timeout_ms passed (1; < 0 without limit);
 * TSR_EIO when poll fails. `until` is checked as for tsr_ws_run. */
int tsr_chat_run(tsr_chat *h, int timeout_ms, int (*until)(void *arg), void *arg);

/* For callers that drive the client and the session with their own loop
 * (instead of tsr_chat_run): call tsr_chat_on_tick with the client's clock
 * after tsr_client_on_tick and tsr_ws_on_tick, and no later than
 * tsr_chat_next_timeout says (milliseconds; -1: nothing due). It retries,
 * with backoff, a refresh or an outbox send that met a transient failure
 * ("unavailable" while the server's delivery service restarts, "network",
 * "timeout") while the session stayed up. */
int tsr_chat_on_tick(tsr_chat *h, uint64_t now);
int64_t tsr_chat_next_timeout(const tsr_chat *h, uint64_t now);
/* Operations of the chat in progress (calls and internal chains). */
size_t tsr_chat_pending(const tsr_chat *h);

/* One member of a new conversation, named one of two ways:
 *
 *   - by profile (the usual way): account NULL, app the app of the
 *     profile and key its key as people type it: a number for chat
 *     ("+15550101"), a handle for social or a username for messenger, a
 *     leading '@' allowed ("@bob"); upper case is fine (the server
 *     normalises). The server resolves it at the claim, which answers the
 *     account id (docs/protocol.md, "KeyPackages": only people the
 *     profile lets start a conversation may claim by profile);
 *   - by account id (base64url), e.g. a member of an existing group known
 *     from its MLS credential: account set; key is then ignored (so
 *     callers written before key existed keep working).
 *
 * app is the app of the profile the member is reached at in both cases. */
typedef struct {
  const char *account;
  const char *app;
  const char *key; /* added after account and app: {account, app} still fits */
} tsr_member;

typedef struct {
  const char *app;  /* the conversation's app; the caller needs a profile */
  const char *kind; /* "direct" (one member) or "group" (1..63) */
  const tsr_member *members;
  size_t n_members;
} tsr_conversation_params;

/* Creates a conversation: claims a KeyPackage (suite 1) of every device
 * of every member (by account id, or by profile for members given by
 * key: the answer's account_id then names the member in
 * conversation.create) and of this account's other devices (POST
 * /v1/keypackages/claim), makes the MLS group with this device's identity,
 * commits the Adds and sends conversation.create with the GroupInfo,
 * commit and Welcome; on ok the commit is merged and the group stored.
 * Synchronous errors: TSR_EINVAL (app, kind, members: an invalid id or
 * app, an empty key, one's own account id, the same account id or the
 * same app and key twice), TSR_ESTATE (not logged in), TSR_ENOMEM. Result
 * body: {"conversation","app","kind","next_seq"}; failures: the failing
 * call's result (e.g. the claim's not_found for an unknown profile or a
 * block, forbidden for a profile that does not let this account reach
 * it), or local codes "no_key_packages" (a member has no device with a
 * KeyPackage: TSR_ENOTFOUND), "bad_member" (a profile key turned out to
 * be one's own or another member's: TSR_EINVAL), "local" (MLS), "state"
 * (state file), "bad_response". */
int tsr_conversation_create(tsr_chat *h, const tsr_conversation_params *p,
                            tsr_result_cb cb, void *arg);
int tsr_conversation_create_sync(tsr_chat *h, const tsr_conversation_params *p,
                                 tsr_reply *out);

/* Sends text (UTF-8, 1..60000 bytes) into a conversation of this device:
 * puts it in the outbox (durable before this returns), encrypts and sends
 * it; on ok stores it at the answered seq and removes it from the outbox.
 * stale_epoch: syncs, processes the winning commit, encrypts again and
 * resends (3 times at most). Without an answer ("network", "timeout",
 * "cancelled") the message stays in the outbox and is sent after the next
 * connect. Other refusals (forbidden, request_pending, blocked, ...)
 * remove it from the outbox. Synchronous errors: TSR_EINVAL,
 * TSR_ENOTFOUND (no such conversation here), TSR_EIO (state file),
 * TSR_ENOMEM. Result body: {"conversation","seq","client_id","duplicate"}. */
int tsr_send_text(tsr_chat *h, const char *conversation, const char *text,
                  tsr_result_cb cb, void *arg);
int tsr_send_text_sync(tsr_chat *h, const char *conversation, const char *text,
                       tsr_reply *out);

/* The sends below put one envelope of their kind in the outbox and send
 * it exactly as tsr_send_text does (same durability, retries, errors and
 * result body); once the server answered, the message is stored here at
 * its seq and its effect applied here as on the receivers. */

/* A text answering the message at seq reply_to (>= 1). */
int tsr_send_reply(tsr_chat *h, const char *conversation, const char *text,
                   uint64_t reply_to, tsr_result_cb cb, void *arg);
int tsr_send_reply_sync(tsr_chat *h, const char *conversation, const char *text,
                        uint64_t reply_to, tsr_reply *out);

/* Replaces the text (or an attachment's caption) of one's own message at
 * target. Checked here first: TSR_ENOTFOUND (no text or attachment at
 * target here), TSR_ESENDER (another account's message), TSR_ESTATE
 * (deleted). Receivers apply it only when it comes from the target's
 * sender account. */
int tsr_send_edit(tsr_chat *h, const char *conversation, uint64_t target,
                  const char *text, tsr_result_cb cb, void *arg);
int tsr_send_edit_sync(tsr_chat *h, const char *conversation, uint64_t target,
                       const char *text, tsr_reply *out);

/* Deletes one's own message at target for everyone: every member device
 * wipes its text, descriptor and reactions. Checked as tsr_send_edit. */
int tsr_send_delete(tsr_chat *h, const char *conversation, uint64_t target,
                    tsr_result_cb cb, void *arg);
int tsr_send_delete_sync(tsr_chat *h, const char *conversation, uint64_t target,
                         tsr_reply *out);

/* Adds (remove 0) or takes back (remove 1) a reaction emoji (UTF-8, 1 ..
 * TSR_EMOJI_MAX bytes) to the message at target. TSR_ENOTFOUND when no
 * text or attachment not deleted is at target here. */
int tsr_send_reaction(tsr_chat *h, const char *conversation, uint64_t target,
                      const char *emoji, int remove, tsr_result_cb cb, void *arg);
int tsr_send_reaction_sync(tsr_chat *h, const char *conversation, uint64_t target,
                           const char *emoji, int remove, tsr_reply *out);

/* An attachment: descriptor is the JSON text tsr_attachment_encode made
 * (1 .. TSR_DESCRIPTOR_MAX bytes, stored and handed back as is); caption
 * may be NULL or ""; reply_to 0 for none. */
int tsr_send_attachment(tsr_chat *h, const char *conversation, const char *descriptor,
                        const char *caption, uint64_t reply_to, tsr_result_cb cb,
                        void *arg);
int tsr_send_attachment_sync(tsr_chat *h, const char *conversation,
                             const char *descriptor, const char *caption,
                             uint64_t reply_to, tsr_reply *out);

/* Renames the conversation for its members: the title (UTF-8, 0 ..
 * TSR_TITLE_MAX bytes, "" for none) travels only inside MLS; the server
 * never sees it. */
int tsr_conversation_rename(tsr_chat *h, const char *conversation, const char *title,
                            tsr_result_cb cb, void *arg);
int tsr_conversation_rename_sync(tsr_chat *h, const char *conversation, const char *title,
                                 tsr_reply *out);

/* Sends a read receipt: everything up to up_to (capped at the last seq
 * processed here) was read. Returns 1 without sending (cb not called)
 * when no receipt is due: the conversation is a message request not
 * accepted or declined, it has more than TSR_RECEIPTS_MAX_ACCOUNTS member
 * accounts, or this account already marked up_to read. */
int tsr_mark_read(tsr_chat *h, const char *conversation, uint64_t up_to, tsr_result_cb cb,
                  void *arg);
int tsr_mark_read_sync(tsr_chat *h, const char *conversation, uint64_t up_to,
                       tsr_reply *out);

/* Tells the conversation's other online devices that this person started
 * (on 1) or stopped (on 0) typing: a transient message (docs/protocol.md,
 * "send"), not stored by the server nor here, no outbox, no retry.
 * Result body: the server's {"transient": true}. Returns 1 without
 * sending in a message request not accepted or declined; TSR_ELIMIT
 * after TSR_TYPING_MAX_RUN typing messages without a stored message in
 * between (each takes a generation of the sender's MLS ratchet, and
 * receivers that missed them must skip over them: send a message
 * first). Other errors as tsr_send_text. */
int tsr_send_typing(tsr_chat *h, const char *conversation, int on, tsr_result_cb cb,
                    void *arg);
int tsr_send_typing_sync(tsr_chat *h, const char *conversation, int on, tsr_reply *out);

/* Lists the device's conversations on the server (`conversations`), joins
 * those with a Welcome not yet joined, updates the states (request,
 * declined, active) and syncs every conversation known here. Result body:
 * the server's answer. Errors as tsr_ws_call. */
int tsr_conversations_refresh(tsr_chat *h, tsr_result_cb cb, void *arg);
int tsr_conversations_refresh_sync(tsr_chat *h, tsr_reply *out);

/* Syncs one conversation from its last seq until the server has no more,
 * processing each message, then acknowledges. Result body:
 * {"conversation","last_seq"}. TSR_ENOTFOUND when not known here. */
int tsr_conversation_sync(tsr_chat *h, const char *conversation, tsr_result_cb cb,
                          void *arg);
int tsr_conversation_sync_sync(tsr_chat *h, const char *conversation, tsr_reply *out);

/* Answers a message request (conversation.accept / decline); the state is
 * stored on ok. Result body: the server's {"state"}. */
int tsr_conversation_answer(tsr_chat *h, const char *conversation, int accept,
                            tsr_result_cb cb, void *arg);
int tsr_conversation_answer_sync(tsr_chat *h, const char *conversation, int accept,
                                 tsr_reply *out);

/* Sends every outbox message not in flight again (done at each connect).
 * Returns how many were started, or TSR_EIO. */
int tsr_outbox_flush(tsr_chat *h);

/* --- Conversations: groups ---------------------------------------------------- */

/* Adds people to a group (admins only; docs/protocol.md,
 * "conversation.members"): syncs, claims a KeyPackage of each of their
 * devices (members named as in tsr_conversation_create, 1..63), commits
 * the Adds and sends the commit and the Welcome. The commit is stored
 * with the group as pending and merged when the sync after the answer
 * reaches it; stale_epoch (another member's commit won): the winner is
 * processed and the commit built again (3 rounds). Synchronous errors:
 * TSR_EINVAL (a bad member, one's own account, a conversation not active
 * here). Result body: the server's {"seq","duplicate"}; failures: the
 * failing call's result (forbidden, not_found, no_key_packages, ...). */
int tsr_conversation_add(tsr_chat *h, const char *conversation, const tsr_member *members,
                         size_t n, tsr_result_cb cb, void *arg);
/* Removes people (account ids, 1..63; admins only): every device of each
 * leaves the MLS group in one commit. As tsr_conversation_add otherwise. */
int tsr_conversation_remove(tsr_chat *h, const char *conversation,
                            const char *const *accounts, size_t n, tsr_result_cb cb,
                            void *arg);
/* Leaves a group: sends an MLS Remove proposal of this device's own leaf
 * (conversation.leave); the server marks the account as gone at once and a
 * remaining member commits the removal of all its devices. On ok the
 * conversation's state here becomes "left" (nothing more is received).
 * TSR_ESTATE when already left or removed. */
int tsr_conversation_leave(tsr_chat *h, const char *conversation, tsr_result_cb cb,
                           void *arg);
/* Makes a member admin (admin 1) or a plain member again (admin 0);
 * admins only, a group keeps one admin. Result body: {"role"}. */
int tsr_conversation_set_role(tsr_chat *h, const char *conversation, const char *account,
                              int admin, tsr_result_cb cb, void *arg);
/* The server's view of a conversation (conversation.info): {"app","kind",
 * "state","members":[{"account","role"}],"devices"}. */
int tsr_conversation_details(tsr_chat *h, const char *conversation, tsr_result_cb cb,
                             void *arg);
/* Devices are kept in step by the chat itself: after each list of the
 * conversations (at connect, and when the server pushes "devices" or
 * "roster") it compares this account's live devices (GET /v1/devices)
 * with every active conversation and adds the missing ones (a new device
 * sees messages from the moment it joined), and removes devices waiting
 * for removal (revoked, or of someone who left) when one of them is this
 * account's or this device's account administers the group. */

/* --- Conversations: what the state file holds (no network) --- */

typedef struct {
  char id[TSR_ID_B64_SIZE];
  char app[16];
  char kind[8];
  char state[16];                /* active, request, declined, removed */
  uint64_t last_seq;             /* processed in order */
  uint64_t members;              /* MLS leaves (devices) */
  uint64_t outbox;               /* messages waiting to be sent */
  char title[TSR_TITLE_MAX + 1]; /* the last title change ("" none) */
} tsr_conversation_info;

/* The conversations stored here, oldest first: *out (malloc'ed, free())
 * holds *n entries. TSR_EIO, TSR_ENOMEM. */
int tsr_conversations_local(tsr_client *c, tsr_conversation_info **out, size_t *n);

/* Calls each for every stored text, attachment and unsupported message of
 * conversation with seq > after, in seq order, as it is now: edited text
 * and edited_at_ms, deleted with text "". (Edits, deletions, reactions,
 * receipts and titles are stored too, under their seqs, but shown through
 * their effect.) TSR_EINVAL, TSR_ENOTFOUND (no such conversation),
 * TSR_EIO. */
int tsr_messages_local(tsr_client *c, const char *conversation, uint64_t after,
                       void (*each)(void *arg, const tsr_message *m), void *arg);

/* One account's reaction to a message; valid only during the call. */
typedef struct {
  const char *conversation;
  uint64_t target;     /* the message's seq */
  const char *account; /* who reacted (base64url) */
  const char *emoji;   /* UTF-8, NUL-terminated */
  uint64_t seq;        /* of the reaction message */
} tsr_reaction;

/* Calls each for every current reaction of conversation, by target, then
 * in the order they were made. Errors as tsr_messages_local. */
int tsr_reactions_local(tsr_client *c, const char *conversation,
                        void (*each)(void *arg, const tsr_reaction *r), void *arg);

/* How far one account (this one included) has received and read a
 * conversation, from its receipts; never moves back. */
typedef struct {
  const char *conversation;
  const char *account;
  uint64_t delivered_up_to; /* a read receipt counts as delivered too */
  uint64_t read_up_to;
} tsr_receipt_state;

/* Calls each for every account with a receipt in conversation. Errors as
 * tsr_messages_local. */
int tsr_receipts_local(tsr_client *c, const char *conversation,
                       void (*each)(void *arg, const tsr_receipt_state *r), void *arg);

/* --- Notices ------------------------------------------------------------------ */

/* What this device tells the people in a conversation that no member sent:
 *
 *   - "identity_changed": an account's identity key is not the one this
 *     device first saw for it (compare the safety number again);
 *   - "unverified_device": a member device's MLS signature key has no valid
 *     certificate of its account's identity key.
 *
 * The chat checks, after each list of the conversations and after each
 * commit, every member device of another account against
 * GET /v1/accounts/{id}/keys, and remembers each identity key when first
 * seen (trust on first use). Kept in the state file, each notice once. */
struct tsr_notice {
  const char *conversation;
  uint64_t after_seq; /* the conversation's last seq processed when noticed */
  int64_t at_ms;
  const char *kind;    /* "identity_changed" or "unverified_device" */
  const char *account; /* whom it is about */
  const char *text;    /* one sentence for people */
};

/* Calls each for every notice of conversation, oldest first. TSR_EINVAL,
 * TSR_EIO. */
int tsr_notices_local(tsr_client *c, const char *conversation,
                      void (*each)(void *arg, const tsr_notice *n), void *arg);

/* --- Attachments ------------------------------------------------------------ */

/* An attachment (image, file) is encrypted on this device with a fresh
 * random key (libsodium crypto_secretstream_xchacha20poly1305, chunks of
 * TSR_ATTACHMENT_CHUNK plaintext bytes, the last tagged FINAL) and
 * uploaded as an opaque blob (POST /v1/blobs); the server stores
 * ciphertext only. The tsr_attachment describes it, key included: it is
 * what goes inside an MLS application message (tsr_attachment_encode),
 * so only the conversation's members can read the file. Treat it as a
 * secret. The blob id is the capability to download it; the server
 * deletes blobs after its message_retention (30 days by default). */

#define TSR_ATTACHMENT_CHUNK 65536      /* plaintext bytes per chunk */
#define TSR_ATTACHMENT_MAX (4ull << 30) /* local cap on a file's size */
#define TSR_ATTACHMENT_JSON_SIZE 320    /* enough for tsr_attachment_encode */

typedef struct {
  char blob[TSR_ID_B64_SIZE]; /* the server's blob id, base64url, NUL-terminated */
  uint8_t key[32];            /* secretstream key, fresh per file (secret) */
  uint8_t header[24];         /* secretstream header (the stream's nonce) */
  uint64_t size;              /* plaintext bytes */
  uint64_t cipher_size;       /* bytes of the blob: size + 17 per chunk */
  uint8_t sha256[32];         /* SHA-256 of the whole blob (the ciphertext) */
} tsr_attachment;

/* Encrypts the regular file at path and uploads it in one request. Memory:
 * the ciphertext is held whole while it is sent, twice (the request body
 * and its encoded copy), so about 2 x the file's size; the server's
 * attachment_max_bytes (16 MiB by default) bounds it in practice. The
 * request timeout covers the whole upload. On success fills *out.
 * reply (may be NULL) gets the server's answer. Errors: TSR_EINVAL,
 * TSR_ESTATE (not logged in), TSR_EIO (file unreadable, or the network),
 * TSR_ELIMIT (over TSR_ATTACHMENT_MAX locally, or the server's
 * attachment_max_bytes: code "too_large"), TSR_EDECODE (odd answer), the
 * server's errors. Key material is wiped from every temporary. */
int tsr_attachment_upload_sync(tsr_client *c, const char *path, tsr_attachment *out,
                               tsr_reply *reply);

/* Downloads a's blob with Range requests of at most 1 MiB, checks every
 * chunk's tag, the FINAL tag at the end and the SHA-256 of the whole
 * blob, and writes the plaintext to out_path (a temporary file renamed
 * only once everything verified; out_path is replaced). An altered or
 * truncated blob gives TSR_EVERIFY (reply code "tampered") and writes
 * nothing. Other errors as for the upload; TSR_ENOTFOUND when the server
 * has no such blob (expired). */
int tsr_attachment_download_sync(tsr_client *c, const tsr_attachment *a,
                                 const char *out_path, tsr_reply *reply);

/* The descriptor as compact JSON: {"v":1,"blob","key","header","size",
 * "cipher_size","sha256"} (binary fields base64url without padding),
 * NUL-terminated in out (TSR_ATTACHMENT_JSON_SIZE is enough). Returns its
 * length, or TSR_ELIMIT when cap is too small, TSR_EINVAL. */
int tsr_attachment_encode(const tsr_attachment *a, char *out, size_t cap);
/* Parses s[0..n) strictly (every field present and well-formed, sizes
 * consistent). Returns 0 or TSR_EDECODE; *out is set only on success. */
int tsr_attachment_decode(const char *s, size_t n, tsr_attachment *out);

/* --- Public life: posts, stories, feeds ----------------------------------- */

/* The public content of docs/public-section.md in "social" and "messenger"
 * (chat has none: app "chat" is TSR_EINVAL here). It is not end-to-end
 * encrypted: the server stores and serves it, strips media of metadata and
 * applies blocks and private accounts to every read. `app` is the app the
 * caller acts in and shows up as (code no_profile without a profile there).
 *
 * Every call except the media upload is a typed form of tsr_call: it checks
 * its arguments, builds the path and JSON body, and hands the server's
 * answer on unchanged as the result body (its shape is noted per call; the
 * objects are those of docs/public-section.md). Synchronous errors:
 * TSR_EINVAL (NULL client, an app other than social and messenger, an id
 * that is not 1..20 decimal digits, a limit over the call's maximum, a
 * missing required text, a visibility or audience app not listed below),
 * TSR_ELIMIT (a handle, username or tag over 200 bytes), TSR_ESTATE (not
 * logged in), TSR_ENOMEM; nothing is queued then. Text lengths are the
 * server's to check (bad_request). A handle or username may be given with
 * a leading '@' and a tag with a leading '#' (dropped here). Ids of posts,
 * comments, stories and notifications are decimal strings; a cursor
 * (`before`, `after`) is such an id, NULL or "" for the first page; limit 0
 * takes the server's default. Strings are copied before the call returns;
 * threads as for every call. */

#define TSR_MEDIA_ID_SIZE 65          /* a media id: 64 hex digits and NUL */
#define TSR_POST_MEDIA_MAX 10         /* images of one post (or one video) */
#define TSR_MEDIA_MAX (1024ull << 20) /* local cap on an uploaded file */

/* A media item as the server stored it (POST /v1/media's answer). */
typedef struct {
  char id[TSR_MEDIA_ID_SIZE]; /* SHA-256 of the stored bytes, lowercase hex */
  char kind[8];               /* "image" or "video" */
  char mime[64];              /* e.g. "image/png" */
  uint64_t size;              /* bytes stored (after cleaning) */
  uint32_t width, height;
} tsr_media;

/* Uploads the regular file at path as public media (POST /v1/media; the
 * server reads the type from the bytes, re-encodes images without their
 * metadata, and answers 201 {"media": {"id","kind","mime","size","width",
 * "height"}}). The file is opened here and streamed from disk as the
 * connection drains, 64 KiB at a time (never whole in memory); it must not
 * change until the result (a file that shrinks fails the request with
 * "network"). Synchronous errors: TSR_EIO (not a readable regular file),
 * TSR_ELIMIT (larger than TSR_MEDIA_MAX), and those above. Result codes besides the
 * usual: too_large (413: over media_max_bytes or image_max_bytes), unsupported_media
 * (415: neither an image nor a video the server knows), bad_media (422: it does not
 * decode). The blocking form also fills *out (may be NULL) from the answer; TSR_EDECODE
 * (code "bad_response") when the answer is not that object. */
int tsr_media_upload(tsr_client *c, const char *path, tsr_result_cb cb, void *arg);
int tsr_media_upload_sync(tsr_client *c, const char *path, tsr_media *out,
                          tsr_reply *reply);

/* One media item of a post: the id of an upload and its alt text (NULL or
 * "" for none). */
typedef struct {
  const char *id;
  const char *alt;
} tsr_post_media;

/* A new post. Visibility is NULL (public), "public", "followers" or
 * "close_friends"; apps lists the audiences ("social", "messenger"; none:
 * only the app posted in). Up to TSR_POST_MEDIA_MAX images or one video;
 * a caption or media is needed (the server checks which is which). */
typedef struct {
  const char *caption;  /* NULL or "" for none */
  const char *location; /* NULL or "" for none */
  const char *visibility;
  const char *const *apps;
  size_t n_apps; /* 0..2 */
  const tsr_post_media *media;
  size_t n_media; /* 0..TSR_POST_MEDIA_MAX */
} tsr_post_params;

/* Publishes a post (POST /v1/apps/{app}/posts): 201 {"post": post}. Codes:
 * bad_request, unknown_media (a media id not uploaded), no_profile. */
int tsr_post_create(tsr_client *c, const char *app, const tsr_post_params *p,
                    tsr_result_cb cb, void *arg);
int tsr_post_create_sync(tsr_client *c, const char *app, const tsr_post_params *p,
                         tsr_reply *out);

/* Reads a post ({"post": post}; counts the caller as a viewer once), edits
 * its caption ({"post": post}; author only: forbidden otherwise) or
 * deletes it everywhere ({}; author only). not_found also for a post the
 * caller may not see. */
int tsr_post_get(tsr_client *c, const char *app, const char *id, tsr_result_cb cb,
                 void *arg);
int tsr_post_get_sync(tsr_client *c, const char *app, const char *id, tsr_reply *out);
int tsr_post_edit(tsr_client *c, const char *app, const char *id, const char *caption,
                  tsr_result_cb cb, void *arg);
int tsr_post_edit_sync(tsr_client *c, const char *app, const char *id,
                       const char *caption, tsr_reply *out);
int tsr_post_delete(tsr_client *c, const char *app, const char *id, tsr_result_cb cb,
                    void *arg);
int tsr_post_delete_sync(tsr_client *c, const char *app, const char *id, tsr_reply *out);

/* Likes (like 1) or takes the like back (like 0): {"liked", "likes"};
 * idempotent. */
int tsr_post_like(tsr_client *c, const char *app, const char *id, int like,
                  tsr_result_cb cb, void *arg);
int tsr_post_like_sync(tsr_client *c, const char *app, const char *id, int like,
                       tsr_reply *out);
/* Who liked a post, newest first (limit 0..50): {"likes": [{"profile",
 * "at", "cursor"}], "more"}; pass the last cursor as before. */
int tsr_post_likes(tsr_client *c, const char *app, const char *id, const char *before,
                   unsigned limit, tsr_result_cb cb, void *arg);
int tsr_post_likes_sync(tsr_client *c, const char *app, const char *id,
                        const char *before, unsigned limit, tsr_reply *out);

/* Comments on a post: text (required), reply_to a comment of the same post
 * (NULL or "" for a top-level one): 201 {"comment": comment}, with the
 * spam filter's verdict ("ham", "spam" or "held"). */
int tsr_comment_create(tsr_client *c, const char *app, const char *post, const char *text,
                       const char *reply_to, tsr_result_cb cb, void *arg);
int tsr_comment_create_sync(tsr_client *c, const char *app, const char *post,
                            const char *text, const char *reply_to, tsr_reply *out);
/* A post's comments, oldest first, after the comment `after` (limit
 * 0..100): {"comments": [comment], "next": id | null}. hidden 1: the spam
 * and held ones instead (the post's author only). */
int tsr_comments_list(tsr_client *c, const char *app, const char *post, const char *after,
                      unsigned limit, int hidden, tsr_result_cb cb, void *arg);
int tsr_comments_list_sync(tsr_client *c, const char *app, const char *post,
                           const char *after, unsigned limit, int hidden, tsr_reply *out);
/* Deletes a comment (its author or the post's author): {}. */
int tsr_comment_delete(tsr_client *c, const char *app, const char *id, tsr_result_cb cb,
                       void *arg);
int tsr_comment_delete_sync(tsr_client *c, const char *app, const char *id,
                            tsr_reply *out);
/* Appeals a spam or held comment once, with a note (NULL or ""): {"comment":
 * comment} with "appeal": "pending". */
int tsr_comment_appeal(tsr_client *c, const char *app, const char *id, const char *note,
                       tsr_result_cb cb, void *arg);
int tsr_comment_appeal_sync(tsr_client *c, const char *app, const char *id,
                            const char *note, tsr_reply *out);

/* Pages of posts, newest first, before the post `before` (limit 0..50):
 * {"posts": [post], "next": id | null}; pass next as before for the next
 * page. The home feed (the people and pages followed in app, and one's
 * own), a profile's grid (key: a handle or username, escaped here) and a
 * hashtag page (tag without '#'; public posts of public accounts). */
int tsr_feed_home(tsr_client *c, const char *app, const char *before, unsigned limit,
                  tsr_result_cb cb, void *arg);
int tsr_feed_home_sync(tsr_client *c, const char *app, const char *before, unsigned limit,
                       tsr_reply *out);
int tsr_feed_profile(tsr_client *c, const char *app, const char *key, const char *before,
                     unsigned limit, tsr_result_cb cb, void *arg);
int tsr_feed_profile_sync(tsr_client *c, const char *app, const char *key,
                          const char *before, unsigned limit, tsr_reply *out);
int tsr_feed_tag(tsr_client *c, const char *app, const char *tag, const char *before,
                 unsigned limit, tsr_result_cb cb, void *arg);
int tsr_feed_tag_sync(tsr_client *c, const char *app, const char *tag, const char *before,
                      unsigned limit, tsr_reply *out);

/* A new story: one uploaded image or video, shown for 24 hours. caption,
 * alt NULL or "" for none; visibility and apps as for posts. */
typedef struct {
  const char *media; /* media id (required) */
  const char *alt;
  const char *caption;
  const char *visibility;
  const char *const *apps;
  size_t n_apps;
} tsr_story_params;

/* Posts a story: 201 {"story": story}. */
int tsr_story_post(tsr_client *c, const char *app, const tsr_story_params *p,
                   tsr_result_cb cb, void *arg);
int tsr_story_post_sync(tsr_client *c, const char *app, const tsr_story_params *p,
                        tsr_reply *out);
/* The tray: live stories of the people followed and one's own, {"authors":
 * [{"profile", "stories": [story]}]}, an author with a newer story first. */
int tsr_stories_tray(tsr_client *c, const char *app, tsr_result_cb cb, void *arg);
int tsr_stories_tray_sync(tsr_client *c, const char *app, tsr_reply *out);
/* Records that the caller saw a story. */
int tsr_story_view(tsr_client *c, const char *app, const char *id, tsr_result_cb cb,
                   void *arg);
int tsr_story_view_sync(tsr_client *c, const char *app, const char *id, tsr_reply *out);
/* Who saw one's own story: {"viewers": [{"profile", "at"}]} (the author
 * only). */
int tsr_story_viewers(tsr_client *c, const char *app, const char *id, tsr_result_cb cb,
                      void *arg);
int tsr_story_viewers_sync(tsr_client *c, const char *app, const char *id,
                           tsr_reply *out);
int tsr_story_delete(tsr_client *c, const char *app, const char *id, tsr_result_cb cb,
                     void *arg);
int tsr_story_delete_sync(tsr_client *c, const char *app, const char *id, tsr_reply *out);

/* Close friends (social only): puts a handle on the list (add 1) or takes
 * it off (add 0); the list is {"close_friends": [profile]}. */
int tsr_close_friend_set(tsr_client *c, const char *handle, int add, tsr_result_cb cb,
                         void *arg);
int tsr_close_friend_set_sync(tsr_client *c, const char *handle, int add, tsr_reply *out);
int tsr_close_friends_list(tsr_client *c, tsr_result_cb cb, void *arg);
int tsr_close_friends_list_sync(tsr_client *c, tsr_reply *out);

/* Notifications of one app (NULL: every app), newest first, before the
 * notification `before` (limit 0..100): {"notifications": [{"id","kind",
 * "app","actor","post","comment","text","at","read"}], "next", "unread"}.
 * tsr_notifications_read marks those up to up_to (an id) read. */
int tsr_notifications_list(tsr_client *c, const char *app, const char *before,
                           unsigned limit, tsr_result_cb cb, void *arg);
int tsr_notifications_list_sync(tsr_client *c, const char *app, const char *before,
                                unsigned limit, tsr_reply *out);
int tsr_notifications_read(tsr_client *c, const char *up_to, tsr_result_cb cb, void *arg);
int tsr_notifications_read_sync(tsr_client *c, const char *up_to, tsr_reply *out);

/* Reports a post or a comment (exactly one of post and comment, the other
 * NULL) for reason "spam", "harassment", "nudity", "violence", "hate" or
 * "other", with a note (NULL or ""): 201 {"report": {"id", "state"}}. */
int tsr_report(tsr_client *c, const char *app, const char *post, const char *comment,
               const char *reason, const char *note, tsr_result_cb cb, void *arg);
int tsr_report_sync(tsr_client *c, const char *app, const char *post, const char *comment,
                    const char *reason, const char *note, tsr_reply *out);

/* Follows (follow 1) or unfollows (0) key in app: a social handle
 * (/v1/apps/social/follows/{handle}: {"state"}, "requested" for a private
 * account), or a messenger business page by username
 * (/v1/apps/messenger/pages/{username}/follow). */
int tsr_follow(tsr_client *c, const char *app, const char *key, int follow,
               tsr_result_cb cb, void *arg);
int tsr_follow_sync(tsr_client *c, const char *app, const char *key, int follow,
                    tsr_reply *out);

/* --- Local session state ------------------------------------------------ */

/* What the state file says about this device; no network. Empty strings
 * for what is absent. */
typedef struct {
  int logged_in;        /* a token is stored */
  int has_identity_key; /* this device can certify other devices */
  char login[TSR_LOGIN_SIZE];
  char account_id[TSR_ID_B64_SIZE];
  char device_id[TSR_ID_B64_SIZE];
  char device_key[TSR_KEY_B64_SIZE];
  char identity_key[TSR_KEY_B64_SIZE];
} tsr_session_info;

int tsr_client_session(tsr_client *c, tsr_session_info *out);

/* --- Safety numbers ------------------------------------------------------ */

/* Two people compare one number, read aloud or side by side, to check that
 * the identity keys their apps use for each other are the real ones (a
 * server that swapped a key would show them different numbers). 60 digits
 * in 12 groups of 5 separated by spaces, the same for both people: each
 * person's 30 digits come from SHA-256 of a fixed label, the account id and
 * the identity key, and the two halves are put in ascending order. */
#define TSR_SAFETY_NUMBER_SIZE 72 /* 60 digits, 11 spaces, NUL */

/* The safety number of two (account id, identity key) pairs; order does
 * not matter. Pure: no network, no state. 0 or TSR_EINVAL. */
int tsr_safety_number(const uint8_t account_a[16], const uint8_t identity_key_a[32],
                      const uint8_t account_b[16], const uint8_t identity_key_b[32],
                      char out[TSR_SAFETY_NUMBER_SIZE]);

/* The safety number of this device's account and account_id (base64url),
 * with both identity keys fetched from the server (GET
 * /v1/accounts/{id}/keys; this account's own key is taken from the state
 * file when the device holds it). Blocking. Errors: TSR_EINVAL (a malformed
 * id), TSR_ESTATE (not logged in), the call's error (TSR_ENOTFOUND: no such
 * account, or a block), TSR_EDECODE (a malformed answer). */
int tsr_safety_number_sync(tsr_client *c, const char *account_id,
                           char out[TSR_SAFETY_NUMBER_SIZE]);

#ifdef __cplusplus
}
#endif
#endif
