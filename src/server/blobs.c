/* Attachments: opaque blobs. See blobs.h and docs/protocol.md. */
#include "server/blobs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "proto/base64.h"
#include "proto/json.h"
#include "proto/range.h"
#include "server/accounts.h"
#include "server/fileserve.h"
#include "server/log.h"
#include "server/profiles.h"
#include "tessera/error.h"

#define SWEEP_MAX_MS 5000     /* sweep period, or a quarter of the retention */
#define SWEEP_BATCH 1000      /* rows deleted per store job */
#define ORPHAN_AGE_S 3600     /* leftovers of a crash older than this go */
#define ORPHAN_EVERY_MS 60000 /* how often the directory is scanned for them */
#define TMP_SUFFIX ".tmp"

/* Per-process state of the module. dirfd: <data_dir>/blobs, open while the
 * worker runs. sweeping: a sweep job is in flight (at most one). */
static struct {
  worker *w;
  int dirfd;
  loop_timer sweep;
  bool sweeping;
  uint64_t last_orphan_scan;
} bl = {.dirfd = -1};

/* One upload, from the accepted head to its answer. Heap; owned by httpd
 * (as the stream ctx) until end, then by the store job until done. fd is
 * the open temporary file until end closes it. */
typedef struct {
  store_job job;
  httpd_ticket ticket;
  int fd;
  uint8_t id[BLOBS_ID_BYTES];
  char name[BLOBS_ID_B64 + 1];
  uint8_t account[ACCOUNTS_ID_BYTES];
  uint64_t size, got;
  int64_t now;
} upload;

/* One sweep: the ids deleted by the job, for the files. */
typedef struct {
  store_job job;
  int64_t cutoff;
  uint8_t (*ids)[BLOBS_ID_BYTES];
  size_t n;
} sweep_op;

static void id_text(const uint8_t id[BLOBS_ID_BYTES], char out[BLOBS_ID_B64 + 1]) {
  size_t n = 0;
  b64_encode(out, BLOBS_ID_B64 + 1, id, BLOBS_ID_BYTES, B64_MODE_URL_NOPAD, &n);
  out[n] = '\0';
}

static void tmp_name(const upload *u, char out[BLOBS_ID_B64 + sizeof TMP_SUFFIX]) {
  snprintf(out, BLOBS_ID_B64 + sizeof TMP_SUFFIX, "%s%s", u->name, TMP_SUFFIX);
}

/* ---- upload --------------------------------------------------------------- */

static void upload_discard(upload *u) {
  char tmp[BLOBS_ID_B64 + sizeof TMP_SUFFIX];
  tmp_name(u, tmp);
  if (u->fd >= 0) close(u->fd);
  if (unlinkat(bl.dirfd, tmp, 0) != 0 && errno != ENOENT)
    log_warn("blobs: cannot remove %s: %s", tmp, strerror(errno));
  free(u);
}

static int up_begin(const httpd_req *r, uint64_t length, httpd_resp *resp, void **ctx) {
  uint8_t acc[ACCOUNTS_ID_BYTES];
  if (fileserve_upload_admit(r, length, resp, "/v1/blobs",
                             bl.w->cfg->attachment_max_bytes, "an attachment", acc))
    return 1;
  if (bl.dirfd < 0) return -1;
  upload *u = calloc(1, sizeof *u);
  if (!u) return -1;
  randombytes_buf(u->id, sizeof u->id);
  id_text(u->id, u->name);
  memcpy(u->account, acc, sizeof acc);
  u->size = length;
  char tmp[BLOBS_ID_B64 + sizeof TMP_SUFFIX];
  tmp_name(u, tmp);
  u->fd = openat(bl.dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (u->fd < 0) {
    log_error("blobs: cannot create %s: %s", tmp, strerror(errno));
    free(u);
    return -1;
  }
  *ctx = u;
  return 0;
}

static int up_data(void *ctx, const uint8_t *p, size_t n) {
  upload *u = ctx;
  if (fileserve_write_all(u->fd, p, n) != 0) {
    log_error("blobs: writing %s: %s", u->name, errno ? strerror(errno) : "no progress");
    return -1;
  }
  u->got += n;
  return 0;
}

static void up_abort(void *ctx) { upload_discard(ctx); }

static int insert_run(store_conn *c, void *arg) {
  upload *u = arg;
  store_stmt *s;
  int rc = store_conn_prepare(
      c, "INSERT INTO blobs (id, account_id, size, created_at) VALUES (?, ?, ?, ?)", &s);
  if (rc) return rc;
  store_bind_blob(s, 1, BYTES(u->id, sizeof u->id));
  store_bind_blob(s, 2, BYTES(u->account, sizeof u->account));
  store_bind_int64(s, 3, (int64_t)u->size);
  store_bind_int64(s, 4, u->now);
  return store_stmt_run(s);
}

static void insert_done(store_job *job, int status) {
  upload *u = job->arg;
  httpd_resp resp;
  httpd_resp_init(&resp);
  if (status == 0) {
    resp.status = 201;
    json_writer jw;
    json_writer_init(&jw, resp.body, 4);
    json_write_object_begin(&jw);
    json_write_key(&jw, "blob");
    json_write_string(&jw, u->name);
    json_write_key(&jw, "size");
    json_write_u64(&jw, u->size);
    json_write_object_end(&jw);
  } else {
    log_warn("blobs: storing %s failed: %s", u->name, tsr_errname(status));
    if (unlinkat(bl.dirfd, u->name, 0) != 0) log_warn("blobs: unlink %s", u->name);
    httpd_resp_error(&resp, 500, "internal", "internal error");
  }
  httpd_complete(&u->ticket, &resp);
  free(u);
}

static int up_end(void *ctx, const httpd_req *r, httpd_resp *resp) {
  upload *u = ctx;
  char tmp[BLOBS_ID_B64 + sizeof TMP_SUFFIX];
  tmp_name(u, tmp);
  int rc = u->got == u->size ? fsync(u->fd) : -1;
  if (rc != 0 || close(u->fd) != 0) {
    if (rc == 0) u->fd = -1;
    log_error("blobs: cannot make %s durable: %s", u->name, strerror(errno));
    upload_discard(u);
    return -1;
  }
  u->fd = -1;
  if (renameat(bl.dirfd, tmp, bl.dirfd, u->name) != 0 || fsync(bl.dirfd) != 0) {
    log_error("blobs: cannot publish %s: %s", u->name, strerror(errno));
    unlinkat(bl.dirfd, u->name, 0);
    upload_discard(u);
    return -1;
  }
  u->now = (int64_t)time(NULL);
  u->job = (store_job){.run = insert_run, .done = insert_done, .arg = u};
  if (store_submit(bl.w->sc, &u->job) != 0) {
    unlinkat(bl.dirfd, u->name, 0);
    free(u);
    return app_error(resp, 503, "busy", "server busy; retry later");
  }
  httpd_defer(r, &u->ticket);
  return HTTPD_DEFERRED;
}

static const httpd_stream upload_route = {up_begin, up_data, up_end, up_abort};

/* ---- download ------------------------------------------------------------- */

static int blob_get(const httpd_req *r, httpd_resp *resp) {
  uint8_t acc[ACCOUNTS_ID_BYTES], dev[ACCOUNTS_ID_BYTES];
  if (!accounts_auth_or_refuse(r, resp, acc, dev)) return 0;
  static const char prefix[] = "/v1/blobs/";
  http_str path = r->req->path;
  if (path.len <= sizeof prefix - 1 || memcmp(path.ptr, prefix, sizeof prefix - 1) != 0)
    return app_error(resp, 404, "not_found", "no such blob");
  const char *text = path.ptr + sizeof prefix - 1;
  size_t tlen = path.len - (sizeof prefix - 1);
  uint8_t id[BLOBS_ID_BYTES];
  size_t idn = 0;
  if (tlen != BLOBS_ID_B64 ||
      b64_decode(id, sizeof id, text, tlen, B64_MODE_URL_NOPAD, &idn) != 0 ||
      idn != BLOBS_ID_BYTES)
    return app_error(resp, 400, "bad_request", "a blob id is 22 base64url characters");
  char name[BLOBS_ID_B64 + 1];
  id_text(id, name);
  if (memcmp(name, text, BLOBS_ID_B64) != 0) /* non-canonical trailing bits */
    return app_error(resp, 400, "bad_request", "a blob id is 22 base64url characters");

  store_conn *rd;
  store_stmt *s;
  int rc = store_reader_get(bl.w->store, &rd);
  if (rc == 0) rc = store_conn_prepare(rd, "SELECT size FROM blobs WHERE id = ?", &s);
  if (rc) return -1;
  store_bind_blob(s, 1, BYTES(id, sizeof id));
  rc = store_step(s);
  int64_t size = rc == STORE_ROW ? store_col_int64(s, 0) : -1;
  store_stmt_reset(s);
  if (rc < 0) return -1;
  if (size < 0) return app_error(resp, 404, "not_found", "no such blob");
  int fd = openat(bl.dirfd, name, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0 || st.st_size != size) {
    /* Swept between the read and the open, or damaged. */
    if (fd >= 0) close(fd);
    if (fd >= 0 || errno != ENOENT) log_warn("blobs: %s does not match its row", name);
    return app_error(resp, 404, "not_found", "no such blob");
  }
  uint64_t first = 0, len = (uint64_t)size;
  int kind = RANGE_IGNORE;
  http_str range = http_request_header(r->req, "Range");
  if (range.ptr) kind = range_parse(range.ptr, range.len, (uint64_t)size, &first, &len);
  /* hdr_store holds the ETag, then the Content-Range. */
  int n = snprintf(resp->hdr_store, sizeof resp->hdr_store, "\"%s\"", name);
  char *crange = resp->hdr_store + n + 1;
  size_t ccap = sizeof resp->hdr_store - (size_t)n - 1;
  httpd_resp_header(resp, "ETag", resp->hdr_store);
  httpd_resp_header(resp, "Accept-Ranges", "bytes");
  if (kind == RANGE_UNSATISFIABLE) {
    close(fd);
    snprintf(crange, ccap, "bytes */%lld", (long long)size);
    app_error(resp, 416, "range_not_satisfiable", "the range is outside the blob");
    httpd_resp_header(resp, "Content-Range", crange);
    return 0;
  }
  httpd_resp_header(resp, "Cache-Control", "private, max-age=31536000, immutable");
  if (kind == RANGE_OK) {
    resp->status = 206;
    snprintf(crange, ccap, "bytes %llu-%llu/%lld", (unsigned long long)first,
             (unsigned long long)(first + len - 1), (long long)size);
    httpd_resp_header(resp, "Content-Range", crange);
  }
  resp->content_type = "application/octet-stream";
  resp->has_file = true;
  resp->file_fd = fd;
  resp->file_off = first;
  resp->file_len = len;
  return 0;
}

/* ---- retention ------------------------------------------------------------ */

static int sweep_run(store_conn *c, void *arg) {
  sweep_op *o = arg;
  o->n = 0;
  store_stmt *s;
  int rc = store_conn_prepare(c,
                              "DELETE FROM blobs WHERE id IN (SELECT id FROM blobs"
                              " WHERE created_at < ? ORDER BY created_at LIMIT ?)"
                              " RETURNING id",
                              &s);
  if (rc) return rc;
  store_bind_int64(s, 1, o->cutoff);
  store_bind_int64(s, 2, SWEEP_BATCH);
  while ((rc = store_step(s)) == STORE_ROW) {
    bytes_t id = store_col_blob(s, 0);
    if (id.len == BLOBS_ID_BYTES && o->n < SWEEP_BATCH)
      memcpy(o->ids[o->n++], id.ptr, id.len);
  }
  store_stmt_reset(s);
  return rc < 0 ? rc : 0;
}

static uint32_t sweep_period(void) {
  uint64_t q = bl.w->cfg->message_retention_ms / 4;
  return q < SWEEP_MAX_MS ? (uint32_t)(q ? q : 1) : SWEEP_MAX_MS;
}

static void sweep_done(store_job *job, int status) {
  sweep_op *o = job->arg;
  bl.sweeping = false;
  if (status != 0) log_warn("blobs: sweep failed: %s", tsr_errname(status));
  for (size_t i = 0; status == 0 && i < o->n; i++) {
    char name[BLOBS_ID_B64 + 1];
    id_text(o->ids[i], name);
    if (bl.dirfd >= 0 && unlinkat(bl.dirfd, name, 0) != 0 && errno != ENOENT)
      log_warn("blobs: cannot remove %s: %s", name, strerror(errno));
  }
  if (o->n) log_info("blobs: %zu expired blobs deleted", o->n);
  bool more = status == 0 && o->n == SWEEP_BATCH;
  free(o->ids);
  free(o);
  if (bl.w && !bl.w->draining)
    loop_timer_start(&bl.w->loop, &bl.sweep, more ? 1 : sweep_period());
}

/* Whether a row exists for the blob file called name. */
static int row_exists(const char *name) {
  uint8_t id[BLOBS_ID_BYTES];
  size_t n = 0;
  if (strlen(name) != BLOBS_ID_B64 ||
      b64_decode(id, sizeof id, name, BLOBS_ID_B64, B64_MODE_URL_NOPAD, &n) != 0)
    return 0;
  store_conn *rd;
  store_stmt *s;
  int rc = store_reader_get(bl.w->store, &rd);
  if (rc == 0) rc = store_conn_prepare(rd, "SELECT 1 FROM blobs WHERE id = ?", &s);
  if (rc) return -1;
  store_bind_blob(s, 1, BYTES(id, sizeof id));
  rc = store_step(s);
  store_stmt_reset(s);
  return rc < 0 ? -1 : rc == STORE_ROW;
}

/* Removes what a crash leaves behind: temporary files, and blob files
 * whose row was never committed (or was deleted before its file). */
static void remove_orphans(void) {
  int fd = openat(bl.dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
  if (!d) {
    if (fd >= 0) close(fd);
    return;
  }
  time_t old = time(NULL) - ORPHAN_AGE_S;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    struct stat st;
    if (fstatat(bl.dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
        !S_ISREG(st.st_mode) || st.st_mtime > old)
      continue;
    size_t len = strlen(e->d_name);
    bool tmp = len > strlen(TMP_SUFFIX) &&
               strcmp(e->d_name + len - strlen(TMP_SUFFIX), TMP_SUFFIX) == 0;
    if (tmp || row_exists(e->d_name) == 0) {
      log_info("blobs: removing leftover %s", e->d_name);
      unlinkat(bl.dirfd, e->d_name, 0);
    }
  }
  closedir(d);
}

static void on_sweep(loop_t *l, loop_timer *t) {
  (void)t;
  if (bl.sweeping || !bl.w) return;
  if (loop_now(l) - bl.last_orphan_scan >= ORPHAN_EVERY_MS || bl.last_orphan_scan == 0) {
    bl.last_orphan_scan = loop_now(l);
    remove_orphans();
  }
  sweep_op *o = calloc(1, sizeof *o);
  if (o) o->ids = calloc(SWEEP_BATCH, sizeof *o->ids);
  if (!o || !o->ids) {
    if (o) free(o);
    loop_timer_start(l, &bl.sweep, sweep_period());
    return;
  }
  o->cutoff = (int64_t)time(NULL) - (int64_t)(bl.w->cfg->message_retention_ms / 1000);
  o->job = (store_job){.run = sweep_run, .done = sweep_done, .arg = o};
  if (store_submit(bl.w->sc, &o->job) != 0) {
    free(o->ids);
    free(o);
    loop_timer_start(l, &bl.sweep, sweep_period());
    return;
  }
  bl.sweeping = true;
}

/* ---- setup ---------------------------------------------------------------- */

int blobs_routes(void) {
  int rc = httpd_route_add_stream(HTTP_POST, "/v1/blobs", &upload_route);
  if (rc == 0) rc = httpd_route_add(HTTP_GET, "/v1/blobs", blob_get);
  return rc;
}

int blobs_prepare(const cfg *c) {
  char path[CFG_PATH_MAX + 16];
  snprintf(path, sizeof path, "%s/%s", c->data_dir, BLOBS_DIR);
  if (mkdir(path, 0700) != 0 && errno != EEXIST) {
    int e = -errno;
    log_error("blobs: %s: %s", path, strerror(errno));
    return e;
  }
  return 0;
}

int blobs_worker_start(worker *w) {
  char path[CFG_PATH_MAX + 16];
  snprintf(path, sizeof path, "%s/%s", w->cfg->data_dir, BLOBS_DIR);
  bl.dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (bl.dirfd < 0) {
    log_error("blobs: %s: %s", path, strerror(errno));
    return TSR_EIO;
  }
  bl.w = w;
  bl.sweeping = false;
  bl.last_orphan_scan = 0;
  bl.sweep.kind = TIMER_BLOBS;
  loop_set_timer_cb(&w->loop, TIMER_BLOBS, on_sweep);
  if (w->index == 0) loop_timer_start(&w->loop, &bl.sweep, sweep_period());
  return 0;
}

void blobs_worker_stop(worker *w) {
  loop_timer_stop(&w->loop, &bl.sweep);
  /* An upload still open was aborted when its conn closed. */
  bl.w = NULL;
  if (bl.dirfd >= 0) close(bl.dirfd);
  bl.dirfd = -1;
}
