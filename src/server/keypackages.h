/* The MLS KeyPackage directory (docs/protocol.md, "KeyPackages").
 *
 * Every device of an account is its own MLS member: its leaf signs with
 * the device's registered Ed25519 key (devices.signature_key) and carries
 * a basic credential whose identity is account_id || device_id (32 raw
 * bytes). A device uploads KeyPackages in batches; another device claims
 * one per device of an account to add them to a group. Each KeyPackage is
 * handed out once (deleted in the transaction that hands it out), except
 * the device's "last resort" KeyPackage of each suite (one per suite: a
 * new one replaces only its suite's), handed out again and again when the
 * device has no other of the claimed suite (RFC 9420 §16.8). Counts are
 * per suite (GET /v1/keypackages?suite=N) and for all suites together;
 * the per-device limit is on all suites together.
 *
 * Validation: an upload is all or nothing. Every KeyPackage must be an
 * MLSMessage(KeyPackage) that decodes strictly and passes RFC 9420 §10.1
 * (kp_validate: signatures, lifetime, capabilities; suites 1 and 3 only),
 * signed by the caller's device key with the caller's credential. The
 * checks (two Ed25519 verifications each, at most KP_MAX_PER_CALL + 1 per
 * call) run on the loop thread before the store job: inside the job they
 * would hold SQLite's write lock.
 *
 * Durability: uploads and claims answer only after their store job
 * committed (httpd_defer / httpd_complete), so a KeyPackage handed out is
 * durably gone and an acknowledged upload survives kill -9.
 *
 * Claims name the account by id, or by a profile (app and key, resolved
 * with profiles_resolve in the job). Either answer carries the account id
 * (each KeyPackage's credential holds it anyway), so a claim by profile
 * links that profile to its account: it needs the claimer to be allowed
 * to start a conversation with the profile (reach_allowed from at least
 * one of the claimer's apps), except for one's own profile. Unknown
 * profiles and blocks either way answer the same 404.
 *
 * Expiry: a KeyPackage past its leaf lifetime's not_after is never
 * counted or handed out; a device's expired rows are deleted when it
 * uploads or is claimed from.
 *
 * Threads: handlers and completions on a worker's loop thread; job run
 * callbacks on the store writer. keypackages_remove_device runs inside a
 * store job on the writer connection. */
#ifndef TSR_SERVER_KEYPACKAGES_H
#define TSR_SERVER_KEYPACKAGES_H

#include <stdint.h>

#include "server/accounts.h"
#include "store/store.h"

#define KP_MAX_PER_CALL 100   /* key_packages entries per upload */
#define KP_MAX_PER_DEVICE 200 /* stored, not last resort, not expired; all suites */
#define KP_MAX_BYTES 8192     /* one MLSMessage(KeyPackage) */
#define KP_REF_BYTES 32       /* KeyPackageRef of suites 1 and 3 (SHA-256) */

/* In a store job: deletes every KeyPackage of device (it is being
 * revoked). Returns 0 or a store error. */
int keypackages_remove_device(store_conn *c, const uint8_t device_id[ACCOUNTS_ID_BYTES]);

/* Registers GET /v1/keypackages and POST /v1/keypackages[/claim]. Call from
 * main before the workers start. No other route's prefix covers them. */
int keypackages_routes(void);

#endif
