/* The device state file: a SQLite key-value table with a schema version.
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
  if (exec(db, "PRAGMA user_version = 1")) goto fail;
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
