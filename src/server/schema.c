/* The server's schema: the ordered migration list given to store_open.
 *
 * Append only: a released migration is never edited or reordered (the
 * store refuses a database whose recorded names differ). Plain SQL that
 * PostgreSQL also runs, with explicit primary keys; BLOB columns become
 * BYTEA in a PostgreSQL backend. Times are Unix seconds. */
#include "server/worker.h"

static const char accounts_v1[] =
    /* id: 16 random bytes; login lower-cased; password_hash: libsodium's
     * argon2id string ($argon2id$v=19$m=...,t=...,p=1$salt$hash). */
    "CREATE TABLE accounts ("
    " id BLOB PRIMARY KEY,"
    " login TEXT NOT NULL UNIQUE,"
    " password_hash TEXT NOT NULL,"
    " phone TEXT,"
    " phone_verified INTEGER NOT NULL DEFAULT 0,"
    " email TEXT,"
    " identity_key BLOB NOT NULL,"
    " created_at INTEGER NOT NULL);"
    /* A number belongs to at most one account once verified. */
    "CREATE UNIQUE INDEX accounts_verified_phone ON accounts(phone)"
    " WHERE phone_verified = 1;"
    /* token_hash: SHA-256 of the device's bearer token. */
    "CREATE TABLE devices ("
    " id BLOB PRIMARY KEY,"
    " account_id BLOB NOT NULL REFERENCES accounts(id),"
    " name TEXT NOT NULL,"
    " signature_key BLOB NOT NULL,"
    " certificate BLOB NOT NULL,"
    " token_hash BLOB NOT NULL UNIQUE,"
    " created_at INTEGER NOT NULL,"
    " last_seen_at INTEGER NOT NULL,"
    " revoked INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX devices_by_account ON devices(account_id);"
    /* code_hash: SHA-256 of the 8-digit code; single use, short-lived. */
    "CREATE TABLE link_codes ("
    " code_hash BLOB PRIMARY KEY,"
    " account_id BLOB NOT NULL REFERENCES accounts(id),"
    " created_by BLOB NOT NULL,"
    " expires_at INTEGER NOT NULL,"
    " used INTEGER NOT NULL DEFAULT 0);"
    /* The last code sent for (account, phone); replaced by a new one. */
    "CREATE TABLE phone_codes ("
    " account_id BLOB NOT NULL REFERENCES accounts(id),"
    " phone TEXT NOT NULL,"
    " code_hash BLOB NOT NULL,"
    " expires_at INTEGER NOT NULL,"
    " PRIMARY KEY (account_id, phone));";

const store_migration server_schema[] = {
    {"accounts-v1", accounts_v1},
};
const size_t server_schema_len = sizeof server_schema / sizeof server_schema[0];
