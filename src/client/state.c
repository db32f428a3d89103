/* The device state file: a SQLite key-value table and the table of
 * KeyPackage private parts, with a schema version.
 *
 * Every change is its own transaction unless grouped with cstate_begin;
 * synchronous=FULL so that an acknowledged session survives a crash. The
 * file mode is forced to 0600 before SQLite opens it, and rollback
 * journals inherit it (SQLite copies the database file's permissions). */
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client/client.h"

#define STR_(x) #x
#define STR(x) STR_(x)

struct cstate {
  sqlite3 *db;
};

static int exec(sqlite3 *db, const char *sql) {
  return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : TSR_EIO;
}

static int read_version(sqlite3 *db, int *v) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
    return TSR_EDECODE; /* not a database */
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) *v = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  return rc == SQLITE_ROW ? 0 : TSR_EDECODE;
}

/* Brings the schema to CSTATE_SCHEMA_VERSION; refuses newer files. */
static int migrate(sqlite3 *db) {
  int v = 0, rc = read_version(db, &v);
  if (rc) return rc;
  if (v > CSTATE_SCHEMA_VERSION) return TSR_EUNSUPPORTED;
  if (v == CSTATE_SCHEMA_VERSION) return 0;
  if (exec(db, "BEGIN IMMEDIATE")) return TSR_EIO;
  if (v < 1 && exec(db, "CREATE TABLE kv(key TEXT PRIMARY KEY, value BLOB NOT NULL)"))
    goto fail;
  if (v < 2 && exec(db, "CREATE TABLE kp_secrets(ref BLOB PRIMARY KEY,"
                        " suite INTEGER NOT NULL, last_resort INTEGER NOT NULL,"
                        " used INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL,"
                        " not_after INTEGER NOT NULL, secret BLOB NOT NULL)"))
    goto fail;
  if (v < 3 &&
      (exec(db, "CREATE TABLE conversations(id TEXT PRIMARY KEY, app TEXT NOT NULL,"
                " kind TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'active',"
                " grp BLOB NOT NULL, last_seq INTEGER NOT NULL,"
                " created_at INTEGER NOT NULL)") ||
       exec(db, "CREATE TABLE messages(conversation TEXT NOT NULL, seq INTEGER NOT NULL,"
                " sender_account TEXT NOT NULL, sender_device TEXT NOT NULL,"
                " own INTEGER NOT NULL, text BLOB NOT NULL, at INTEGER NOT NULL,"
                " UNIQUE (conversation, seq))") ||
       exec(db, "CREATE TABLE outbox(n INTEGER PRIMARY KEY AUTOINCREMENT,"
                " conversation TEXT NOT NULL, client_id TEXT NOT NULL UNIQUE,"
                " plaintext BLOB NOT NULL, state INTEGER NOT NULL DEFAULT 0,"
                " ciphertext BLOB, epoch INTEGER, created_at INTEGER NOT NULL)")))
    goto fail;
  if (v < 4 &&
      (exec(db, "ALTER TABLE messages ADD COLUMN kind INTEGER NOT NULL DEFAULT 0") ||
       exec(db, "ALTER TABLE messages ADD COLUMN reply_to INTEGER NOT NULL DEFAULT 0") ||
       exec(db, "ALTER TABLE messages ADD COLUMN target INTEGER NOT NULL DEFAULT 0") ||
       exec(db, "ALTER TABLE messages ADD COLUMN descriptor BLOB") ||
       exec(db, "ALTER TABLE messages ADD COLUMN edited_at INTEGER NOT NULL DEFAULT 0") ||
       exec(db, "ALTER TABLE messages ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0") ||
       exec(db, "ALTER TABLE conversations ADD COLUMN title TEXT NOT NULL DEFAULT ''") ||
       exec(db, "ALTER TABLE conversations ADD COLUMN transient_run INTEGER NOT NULL"
                " DEFAULT 0") ||
       exec(db, "CREATE TABLE reactions(conversation TEXT NOT NULL,"
                " target INTEGER NOT NULL, account TEXT NOT NULL, emoji BLOB NOT NULL,"
                " seq INTEGER NOT NULL, PRIMARY KEY (conversation, target, account,"
                " emoji))") ||
       exec(db, "CREATE TABLE receipts(conversation TEXT NOT NULL,"
                " account TEXT NOT NULL, delivered_up_to INTEGER NOT NULL DEFAULT 0,"
                " read_up_to INTEGER NOT NULL DEFAULT 0,"
                " PRIMARY KEY (conversation, account))") ||
       /* Texts waiting in the outbox of a version-3 file were plain UTF-8. */
       exec(db, "UPDATE outbox SET plaintext = CAST(json_object('v', 1, 'kind', 'text',"
                " 'body', CAST(plaintext AS TEXT)) AS BLOB)")))
    goto fail;
  /* identities: each account's identity key as first seen here (trust.c);
   * notices: what people in a conversation are told by this device. */
  if (v < 5 &&
      (exec(db, "CREATE TABLE identities(account TEXT PRIMARY KEY,"
                " identity_key BLOB NOT NULL, first_seen INTEGER NOT NULL,"
                " changed_at INTEGER NOT NULL DEFAULT 0)") ||
       exec(db, "CREATE TABLE notices(n INTEGER PRIMARY KEY AUTOINCREMENT,"
                " conversation TEXT NOT NULL, after_seq INTEGER NOT NULL,"
                " at INTEGER NOT NULL, kind TEXT NOT NULL, account TEXT NOT NULL,"
                " text TEXT NOT NULL)")))
    goto fail;
  if (exec(db, "PRAGMA user_version = " STR(CSTATE_SCHEMA_VERSION))) goto fail;
  if (exec(db, "COMMIT")) goto fail;
  return 0;
fail:
  exec(db, "ROLLBACK");
  return TSR_EIO;
}

int cstate_open(const char *path, cstate **out) {
  if (!path || !*path || !out) return TSR_EINVAL;
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return TSR_EIO;
  int rc = fchmod(fd, 0600) == 0 ? 0 : TSR_EIO;
  close(fd);
  if (rc) return rc;
  cstate *s = calloc(1, sizeof *s);
  if (!s) return TSR_ENOMEM;
  if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX,
                      NULL) != SQLITE_OK) {
    rc = TSR_EIO;
    goto fail;
  }
  sqlite3_busy_timeout(s->db, 5000);
  if (exec(s->db, "PRAGMA synchronous = FULL") ||
      exec(s->db, "PRAGMA secure_delete = ON")) {
    rc = TSR_EDECODE;
    goto fail;
  }
  if ((rc = migrate(s->db))) goto fail;
  *out = s;
  return 0;
fail:
  sqlite3_close(s->db);
  free(s);
  return rc;
}

void cstate_close(cstate *s) {
  if (!s) return;
  sqlite3_close(s->db);
  free(s);
}

struct sqlite3 *cstate_db(cstate *s) {
  return s->db;
}

int cstate_version(cstate *s) {
  int v = 0;
  return read_version(s->db, &v) ? -1 : v;
}

int cstate_get(cstate *s, const char *key, buf_t *out) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s->db, "SELECT value FROM kv WHERE key = ?", -1, &st, NULL) !=
      SQLITE_OK)
    return TSR_EIO;
  sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    const void *p = sqlite3_column_blob(st, 0);
    size_t n = (size_t)sqlite3_column_bytes(st, 0);
    buf_t tmp;
    buf_init(&tmp);
    rc = buf_append(&tmp, p, n) == 0 ? 0 : TSR_ENOMEM;
    if (rc == 0) {
      buf_free_secret(out);
      *out = tmp;
    }
  } else {
    rc = rc == SQLITE_DONE ? TSR_ENOTFOUND : TSR_EIO;
  }
  sqlite3_finalize(st);
  return rc;
}

int cstate_put(cstate *s, const char *key, bytes_t v) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO kv(key, value) VALUES(?, ?)", -1,
                         &st, NULL) != SQLITE_OK)
    return TSR_EIO;
  sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
  sqlite3_bind_blob(st, 2, v.ptr ? (const void *)v.ptr : "", (int)v.len, SQLITE_STATIC);
  int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : TSR_EIO;
  sqlite3_finalize(st);
  return rc;
}

int cstate_del(cstate *s, const char *key) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s->db, "DELETE FROM kv WHERE key = ?", -1, &st, NULL) !=
      SQLITE_OK)
    return TSR_EIO;
  sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : TSR_EIO;
  sqlite3_finalize(st);
  return rc;
}

int cstate_begin(cstate *s) { return exec(s->db, "BEGIN IMMEDIATE"); }
int cstate_commit(cstate *s) { return exec(s->db, "COMMIT"); }
void cstate_rollback(cstate *s) { exec(s->db, "ROLLBACK"); }

/* ---- KeyPackage private parts ------------------------------------------ */

/* Prepares sql, binds ref (when not NULL) as parameter 1. */
static int prep_ref(cstate *s, const char *sql, const uint8_t *ref, sqlite3_stmt **st) {
  if (sqlite3_prepare_v2(s->db, sql, -1, st, NULL) != SQLITE_OK) return TSR_EIO;
  if (ref) sqlite3_bind_blob(*st, 1, ref, CSTATE_KP_REF_BYTES, SQLITE_STATIC);
  return 0;
}

/* Steps a statement that returns no row, then finalizes it. */
static int run_done(sqlite3_stmt *st) {
  int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : TSR_EIO;
  sqlite3_finalize(st);
  return rc;
}

int cstate_kp_put(cstate *s, const cstate_kp *kp, bytes_t secret) {
  sqlite3_stmt *st;
  int rc = prep_ref(s,
                    "INSERT OR REPLACE INTO kp_secrets(ref, suite, last_resort, used,"
                    " created_at, not_after, secret) VALUES(?, ?, ?, 0, ?, ?, ?)",
                    kp->ref, &st);
  if (rc) return rc;
  sqlite3_bind_int(st, 2, kp->suite);
  sqlite3_bind_int(st, 3, kp->last_resort ? 1 : 0);
  sqlite3_bind_int64(st, 4, kp->created_at);
  sqlite3_bind_int64(st, 5, kp->not_after);
  sqlite3_bind_blob(st, 6, secret.ptr ? (const void *)secret.ptr : "", (int)secret.len,
                    SQLITE_STATIC);
  return run_done(st);
}

int cstate_kp_get(cstate *s, const uint8_t ref[CSTATE_KP_REF_BYTES], buf_t *secret,
                  cstate_kp *info) {
  sqlite3_stmt *st;
  int rc = prep_ref(s,
                    "SELECT suite, last_resort, used, created_at, not_after, secret"
                    " FROM kp_secrets WHERE ref = ?",
                    ref, &st);
  if (rc) return rc;
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    buf_t tmp;
    buf_init(&tmp);
    rc = buf_append(&tmp, sqlite3_column_blob(st, 5), (size_t)sqlite3_column_bytes(st, 5))
             ? TSR_ENOMEM
             : 0;
    if (rc == 0) {
      buf_free_secret(secret);
      *secret = tmp;
      if (info) {
        memcpy(info->ref, ref, CSTATE_KP_REF_BYTES);
        info->suite = (uint16_t)sqlite3_column_int(st, 0);
        info->last_resort = sqlite3_column_int(st, 1) != 0;
        info->used = sqlite3_column_int(st, 2) != 0;
        info->created_at = sqlite3_column_int64(st, 3);
        info->not_after = sqlite3_column_int64(st, 4);
      }
    }
  } else {
    rc = rc == SQLITE_DONE ? TSR_ENOTFOUND : TSR_EIO;
  }
  sqlite3_finalize(st);
  return rc;
}

int cstate_kp_consume(cstate *s, const uint8_t ref[CSTATE_KP_REF_BYTES]) {
  sqlite3_stmt *st;
  int rc =
      prep_ref(s, "DELETE FROM kp_secrets WHERE ref = ? AND last_resort = 0", ref, &st);
  if (rc == 0) rc = run_done(st);
  if (rc == 0)
    rc = prep_ref(s, "UPDATE kp_secrets SET used = 1 WHERE ref = ? AND last_resort = 1",
                  ref, &st);
  if (rc == 0) rc = run_done(st);
  return rc;
}

int cstate_kp_del(cstate *s, const uint8_t ref[CSTATE_KP_REF_BYTES]) {
  sqlite3_stmt *st;
  int rc = prep_ref(s, "DELETE FROM kp_secrets WHERE ref = ?", ref, &st);
  return rc ? rc : run_done(st);
}

int cstate_kp_drop_last_resort(cstate *s, uint16_t suite,
                               const uint8_t keep[CSTATE_KP_REF_BYTES]) {
  sqlite3_stmt *st;
  int rc = prep_ref(
      s, "DELETE FROM kp_secrets WHERE last_resort = 1 AND ref <> ? AND suite = ?", keep,
      &st);
  if (rc) return rc;
  sqlite3_bind_int(st, 2, suite);
  return run_done(st);
}

int cstate_kp_prune(cstate *s, int64_t before) {
  sqlite3_stmt *st;
  int rc = prep_ref(s, "DELETE FROM kp_secrets WHERE not_after < ?", NULL, &st);
  if (rc) return rc;
  sqlite3_bind_int64(st, 1, before);
  return run_done(st);
}

int cstate_kp_clear(cstate *s) { return exec(s->db, "DELETE FROM kp_secrets"); }

int cstate_kp_count(cstate *s, cstate_kp_counts *out) {
  sqlite3_stmt *st;
  int rc =
      prep_ref(s,
               "SELECT COUNT(*), COALESCE(SUM(suite = 1), 0), COALESCE(SUM(suite = 3),"
               " 0), COALESCE(SUM(last_resort), 0), COALESCE(SUM(last_resort = 1 AND"
               " used = 0), 0), COALESCE(SUM(last_resort = 1 AND used = 0 AND"
               " suite = 1), 0), COALESCE(SUM(last_resort = 1 AND used = 0 AND"
               " suite = 3), 0) FROM kp_secrets",
               NULL, &st);
  if (rc) return rc;
  rc = sqlite3_step(st) == SQLITE_ROW ? 0 : TSR_EIO;
  if (rc == 0) {
    out->total = (uint64_t)sqlite3_column_int64(st, 0);
    out->suite1 = (uint64_t)sqlite3_column_int64(st, 1);
    out->suite3 = (uint64_t)sqlite3_column_int64(st, 2);
    out->last_resort = (uint64_t)sqlite3_column_int64(st, 3);
    out->last_resort_unused = (uint64_t)sqlite3_column_int64(st, 4);
    out->last_resort_unused1 = (uint64_t)sqlite3_column_int64(st, 5);
    out->last_resort_unused3 = (uint64_t)sqlite3_column_int64(st, 6);
  }
  sqlite3_finalize(st);
  return rc;
}
