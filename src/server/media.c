/* Public media. See media.h, imaging.h and docs/protocol.md. */
#include "server/media.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "proto/json.h"
#include "proto/sniff.h"
#include "server/accounts.h"
#include "server/clock.h"
#include "server/fileserve.h"
#include "server/imaging.h"
#include "server/log.h"
#include "server/profiles.h"
#include "tessera/error.h"

#define TMP_DIR "tmp"
#define NAME_BYTES 16 /* random temporary names: 32 hex digits */
#define NAME_HEX (NAME_BYTES * 2)
#define OUT_SUFFIX ".out" /* a re-encoded image, next to its upload */
#define QUEUE_MAX 16      /* uploads waiting for the media thread, per worker */
#define HASH_CHUNK ((size_t)256 * 1024)
#define SWEEP_FIRST_MS 1000
#define SWEEP_MS 5000
#define SWEEP_BATCH 500
#define ORPHAN_AGE_S 3600 /* leftovers of a crash older than this go */
/* How often the directories are scanned for leftovers. */
#define SCAN_EVERY_MS ((uint64_t)3600 * 1000)
#define DIR_BYTES (CFG_PATH_MAX + 16) /* <data_dir>/media */
#define PATH_BYTES (DIR_BYTES + NAME_HEX + 80)
#define OCTETS "application/octet-stream" /* a stored MIME type we do not know */

/* Work for the media thread: run there, then back on the loop thread.
 * From push until back runs it belongs to the queue and the thread, and
 * md.live links it (loop thread only) so that stop can drop what never
 * came back. The struct embedding it starts with it. */
typedef struct work {
  loop_task task; /* thread -> loop */
  struct work *next;
  struct work *lprev, *lnext;
  void (*run)(struct work *wk);  /* media thread */
  void (*back)(struct work *wk); /* loop thread */
  void (*drop)(struct work *wk); /* loop thread, when the worker stops first */
} work;

/* Per-process state. dir is set once at start and never changed (paths
 * are built from it on every thread). dirfd: the media directory, open
 * while the worker runs. sweeping / scanning: a sweep job / a directory
 * scan is in flight (at most one each, worker 0 only). */
static struct {
  worker *w;
  char dir[DIR_BYTES];
  int dirfd;
  loop_timer sweep;
  bool sweeping, scanning, scanned;
  uint64_t last_scan;
  pthread_t th;
  pthread_mutex_t mu; /* guards head, tail, queued, stop */
  pthread_cond_t cv;
  work *head, *tail;
  unsigned queued;
  bool stop, running;
  work live;
} md = {.dirfd = -1, .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

/* ---- ids, paths, rows ------------------------------------------------------ */

const char *media_kind_name(media_kind k) { return k == MEDIA_VIDEO ? "video" : "image"; }

bool media_id_parse(const char *hex, uint8_t out[MEDIA_HASH_BYTES]) {
  if (!hex || strlen(hex) != MEDIA_ID_HEX) return false;
  for (size_t i = 0; i < MEDIA_ID_HEX; i++) {
    char c = hex[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return sodium_hex2bin(out, MEDIA_HASH_BYTES, hex, MEDIA_ID_HEX, NULL, NULL, NULL) == 0;
}

void media_id_text(const uint8_t h[MEDIA_HASH_BYTES], char out[MEDIA_ID_HEX + 1]) {
  sodium_bin2hex(out, MEDIA_ID_HEX + 1, h, MEDIA_HASH_BYTES);
}

/* Seconds on the server's clock (clock.h: an admin may move it forward in
 * tests). */
static int64_t now_s(void) { return clock_now_ms() / 1000; }

static void media_path(const uint8_t h[MEDIA_HASH_BYTES], char p[PATH_BYTES]) {
  char id[MEDIA_ID_HEX + 1];
  media_id_text(h, id);
  snprintf(p, PATH_BYTES, "%s/%s", md.dir, id);
}

/* Columns kind, mime, size, width, height from col on -> out. */
static void row_info(store_stmt *s, int col, media_info *out) {
  size_t n = 0;
  const char *kind = store_col_text(s, col, &n);
  out->kind = n == 5 && memcmp(kind, "video", 5) == 0 ? MEDIA_VIDEO : MEDIA_IMAGE;
  const char *mime = store_col_text(s, col + 1, &n);
  out->mime = sniff_mime_static(mime, n);
  if (!out->mime) out->mime = OCTETS;
  out->size = (uint64_t)store_col_int64(s, col + 2);
  out->width = (uint32_t)store_col_int64(s, col + 3);
  out->height = (uint32_t)store_col_int64(s, col + 4);
}

int media_describe(store_conn *c, const uint8_t hash[MEDIA_HASH_BYTES], media_info *out) {
  if (!c) {
    if (!worker_self || !worker_self->store) return TSR_ESTATE;
    int rc = store_reader_get(worker_self->store, &c);
    if (rc) return rc;
  }
  store_stmt *s;
  int rc = store_conn_prepare(c,
                              "SELECT kind, mime, size, width, height FROM media"
                              " WHERE hash = ? AND refs >= 0",
                              &s);
  if (rc) return rc;
  store_bind_blob(s, 1, BYTES(hash, MEDIA_HASH_BYTES));
  rc = store_step(s);
  if (rc == STORE_ROW) row_info(s, 0, out);
  store_stmt_reset(s);
  return rc < 0 ? rc : rc == STORE_ROW ? 0 : TSR_ENOTFOUND;
}

int media_ref(store_conn *c, const uint8_t hash[MEDIA_HASH_BYTES], int delta) {
  store_stmt *s;
  int rc = store_conn_prepare(c,
                              "UPDATE media SET refs = refs + ?, created_at = CASE WHEN"
                              " refs + ? = 0 THEN ? ELSE created_at END WHERE hash = ?"
                              " AND refs >= 0 AND refs + ? >= 0",
                              &s);
  if (rc) return rc;
  store_bind_int64(s, 1, delta);
  store_bind_int64(s, 2, delta);
  store_bind_int64(s, 3, now_s()); /* unused again: a day from now */
  store_bind_blob(s, 4, BYTES(hash, MEDIA_HASH_BYTES));
  store_bind_int64(s, 5, delta);
  if ((rc = store_stmt_run(s)) != 0) return rc;
  if (store_conn_changes(c) == 1) return 0;
  media_info mi;
  rc = media_describe(c, hash, &mi);
  return rc == 0 ? TSR_ESTATE : rc; /* there, but refs would go below 0 */
}

/* ---- the media thread ------------------------------------------------------ */

static void live_link(work *wk) {
  wk->lnext = md.live.lnext;
  wk->lprev = &md.live;
  md.live.lnext->lprev = wk;
  md.live.lnext = wk;
}

static void live_unlink(work *wk) {
  wk->lprev->lnext = wk->lnext;
  wk->lnext->lprev = wk->lprev;
  wk->lprev = wk->lnext = NULL;
}

static void on_back(loop_t *l, loop_task *t) {
  (void)l;
  work *wk = (work *)t; /* task is the first member */
  live_unlink(wk);
  wk->back(wk);
}

static void *thread_main(void *arg) {
  loop_t *loop = arg;
  pthread_mutex_lock(&md.mu);
  for (;;) {
    while (!md.head && !md.stop) pthread_cond_wait(&md.cv, &md.mu);
    if (md.stop) break;
    work *wk = md.head;
    md.head = wk->next;
    if (!md.head) md.tail = NULL;
    md.queued--;
    pthread_mutex_unlock(&md.mu);
    wk->run(wk);
    loop_post(loop, &wk->task);
    pthread_mutex_lock(&md.mu);
  }
  pthread_mutex_unlock(&md.mu);
  imaging_thread_done();
  return NULL;
}

/* Hands wk to the media thread (loop thread). False, wk untouched, when
 * there is no thread or (limited) QUEUE_MAX uploads already wait. */
static bool push(work *wk, bool limited) {
  wk->next = NULL;
  wk->task.fn = on_back;
  pthread_mutex_lock(&md.mu);
  if (!md.running || md.stop || (limited && md.queued >= QUEUE_MAX)) {
    pthread_mutex_unlock(&md.mu);
    return false;
  }
  md.queued++;
  if (md.tail)
    md.tail->next = wk;
  else
    md.head = wk;
  md.tail = wk;
  live_link(wk);
  pthread_cond_signal(&md.cv);
  pthread_mutex_unlock(&md.mu);
  return true;
}

/* ---- files (media thread) -------------------------------------------------- */

/* SHA-256 of the file at path (and its size); fsyncs it first when sync.
 * Returns 0 or TSR_EIO / TSR_ENOMEM. */
static int hash_file(const char *path, bool sync, uint8_t out[MEDIA_HASH_BYTES],
                     uint64_t *size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  uint8_t *buf = malloc(HASH_CHUNK);
  int rc = fd < 0 ? TSR_EIO : buf ? 0 : TSR_ENOMEM;
  crypto_hash_sha256_state st;
  crypto_hash_sha256_init(&st);
  *size = 0;
  while (!rc) {
    ssize_t k = read(fd, buf, HASH_CHUNK);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) rc = TSR_EIO;
    if (k <= 0) break;
    crypto_hash_sha256_update(&st, buf, (unsigned long long)k);
    *size += (uint64_t)k;
  }
  if (!rc && sync && fsync(fd) != 0) rc = TSR_EIO;
  if (rc == TSR_EIO) log_error("media: reading %s: %s", path, strerror(errno));
  if (fd >= 0) close(fd);
  free(buf);
  crypto_hash_sha256_final(&st, out);
  return rc;
}

static int fsync_dir(const char *path) {
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int rc = fd >= 0 && fsync(fd) == 0 ? 0 : TSR_EIO;
  if (rc) log_error("media: cannot sync %s: %s", path, strerror(errno));
  if (fd >= 0) close(fd);
  return rc;
}

static void remove_file(const char *path) {
  if (unlink(path) != 0 && errno != ENOENT)
    log_warn("media: cannot remove %s: %s", path, strerror(errno));
}

/* ---- upload ---------------------------------------------------------------- */

/* One upload, from the accepted head to its answer. Heap; owned by httpd
 * (as the stream ctx) until end, then by the media thread (see work), then
 * by its store job until done, which answers and frees it. fd is the open
 * temporary file until end closes it. The thread writes the result fields
 * (fail_*, dedup, source, hash, info) before handing it back. */
typedef struct {
  work wk; /* first */
  store_job job;
  httpd_ticket ticket;
  int fd;
  char name[NAME_HEX + 1]; /* tmp/<name>: the upload; tmp/<name>.out: its image */
  uint64_t size, got;
  sniff_info sniff;
  bool looked_up; /* source hashed and looked up */
  bool dedup;     /* hash and info are those of a stored media */
  int fail_status;
  const char *fail_code, *fail_msg; /* static strings */
  uint8_t source[MEDIA_HASH_BYTES], hash[MEDIA_HASH_BYTES];
  media_info info;
  int64_t now;
} upload;

static void tmp_path(const upload *u, bool out, char p[PATH_BYTES]) {
  snprintf(p, PATH_BYTES, "%s/" TMP_DIR "/%s%s", md.dir, u->name, out ? OUT_SUFFIX : "");
}

/* Removes u's temporary files (before answering, so that an answered
 * upload has left nothing behind). */
static void upload_discard(upload *u) {
  char p[PATH_BYTES];
  if (u->fd >= 0) close(u->fd);
  u->fd = -1;
  tmp_path(u, false, p);
  remove_file(p);
  tmp_path(u, true, p);
  remove_file(p);
}

/* Frees u and removes its temporary files (whoever owns u). */
static void upload_free(upload *u) {
  upload_discard(u);
  free(u);
}

static void fail(upload *u, int status, const char *code, const char *msg) {
  u->fail_status = status;
  u->fail_code = code;
  u->fail_msg = msg;
}

/* media_sources -> a stored media (on the media thread's reader). Returns
 * 1 with u->hash and u->info set, 0 when unknown, or a store error. */
static int lookup_source(upload *u) {
  store_conn *rd;
  store_stmt *s;
  int rc = store_reader_get(md.w->store, &rd);
  if (rc == 0)
    rc = store_conn_prepare(rd,
                            "SELECT m.hash, m.kind, m.mime, m.size, m.width, m.height"
                            " FROM media_sources s JOIN media m ON m.hash = s.hash"
                            " WHERE s.source_hash = ? AND m.refs >= 0",
                            &s);
  if (rc) return rc;
  store_bind_blob(s, 1, BYTES(u->source, sizeof u->source));
  rc = store_step(s);
  bytes_t h = rc == STORE_ROW ? store_col_blob(s, 0) : BYTES_NONE;
  bool found = h.len == MEDIA_HASH_BYTES;
  if (found) {
    memcpy(u->hash, h.ptr, h.len);
    row_info(s, 1, &u->info);
  }
  store_stmt_reset(s);
  return rc < 0 ? rc : found;
}

/* An imaging refusal -> the answer. */
static void refuse(upload *u, int rc) {
  bool video = u->sniff.video;
  switch (rc) {
  case TSR_EDECODE:
    fail(u, 422, "bad_media",
         video ? "the video is truncated or its structure is inconsistent"
               : "the image is truncated or corrupt");
    break;
  case TSR_ELIMIT:
    fail(u, 422, "bad_media", "the image has more than 40 megapixels");
    break;
  case TSR_EUNSUPPORTED:
    fail(u, 422, "bad_media", "the video has no picture track");
    break;
  default: fail(u, 500, "internal", "internal error"); break;
  }
}

/* Cleans the upload, then stores the result under its hash: fsynced,
 * linked unless that name exists (the same bytes are there), directory
 * fsynced. The temporary names go either way. */
static void process(upload *u) {
  char src[PATH_BYTES], out[PATH_BYTES], dst[PATH_BYTES];
  tmp_path(u, false, src);
  tmp_path(u, true, out);
  imaging_info ii = {0};
  int rc = u->sniff.video ? imaging_video_scrub(src, u->sniff.type, &ii)
                          : imaging_reencode(src, u->sniff.type, out, &ii);
  const char *result = u->sniff.video ? src : out;
  uint64_t size = 0;
  if (rc) {
    refuse(u, rc);
  } else if (hash_file(result, true, u->hash, &size) != 0) {
    fail(u, 500, "internal", "internal error");
  } else {
    media_path(u->hash, dst);
    if (link(result, dst) != 0 && errno != EEXIST) {
      log_error("media: cannot store %s: %s", dst, strerror(errno));
      fail(u, 500, "internal", "internal error");
    } else if (fsync_dir(md.dir) != 0) {
      fail(u, 500, "internal", "internal error");
    }
  }
  remove_file(out);
  remove_file(src);
  u->info = (media_info){u->sniff.video ? MEDIA_VIDEO : MEDIA_IMAGE,
                         ii.mime ? ii.mime : OCTETS, size, ii.width, ii.height};
}

static void up_run(work *wk) {
  upload *u = (upload *)wk;
  if (!u->looked_up) {
    char src[PATH_BYTES];
    tmp_path(u, false, src);
    uint64_t n;
    int rc = hash_file(src, false, u->source, &n);
    if (!rc) rc = lookup_source(u);
    if (rc < 0) {
      log_warn("media: source lookup failed: %s", tsr_errname(rc));
      fail(u, 500, "internal", "internal error");
      return;
    }
    u->looked_up = true;
    if (rc == 1) {
      u->dedup = true; /* the upload stays until the row is confirmed */
      return;
    }
  }
  u->dedup = false;
  process(u);
}

static void answer_error(upload *u, int status, const char *code, const char *msg) {
  upload_discard(u);
  httpd_resp resp;
  httpd_resp_init(&resp);
  httpd_resp_error(&resp, status, code, msg);
  httpd_complete(&u->ticket, &resp);
}

static void answer_created(upload *u) {
  upload_discard(u);
  httpd_resp resp;
  httpd_resp_init(&resp);
  resp.status = 201;
  char id[MEDIA_ID_HEX + 1];
  media_id_text(u->hash, id);
  json_writer jw;
  json_writer_init(&jw, resp.body, 4);
  json_write_object_begin(&jw);
  json_write_key(&jw, "media");
  json_write_object_begin(&jw);
  json_write_key(&jw, "id");
  json_write_string(&jw, id);
  json_write_key(&jw, "kind");
  json_write_string(&jw, media_kind_name(u->info.kind));
  json_write_key(&jw, "mime");
  json_write_string(&jw, u->info.mime);
  json_write_key(&jw, "size");
  json_write_u64(&jw, u->info.size);
  json_write_key(&jw, "width");
  json_write_u64(&jw, u->info.width);
  json_write_key(&jw, "height");
  json_write_u64(&jw, u->info.height);
  json_write_object_end(&jw);
  json_write_object_end(&jw);
  if (json_writer_finish(&jw) != 0) resp.body->err = TSR_ENOMEM;
  httpd_complete(&u->ticket, &resp);
}

/* created_at := now for a live row (an upload again restarts its grace
 * period). TSR_ENOTFOUND when there is no live row. */
static int touch(store_conn *c, const upload *u) {
  store_stmt *s;
  int rc = store_conn_prepare(c,
                              "UPDATE media SET created_at = CASE WHEN created_at < ?"
                              " THEN ? ELSE created_at END WHERE hash = ? AND refs >= 0",
                              &s);
  if (rc) return rc;
  store_bind_int64(s, 1, u->now);
  store_bind_int64(s, 2, u->now);
  store_bind_blob(s, 3, BYTES(u->hash, sizeof u->hash));
  if ((rc = store_stmt_run(s)) != 0) return rc;
  return store_conn_changes(c) == 1 ? 0 : TSR_ENOTFOUND;
}

static int insert_media(store_conn *c, const upload *u) {
  store_stmt *s;
  int rc = store_conn_prepare(c,
                              "INSERT INTO media (hash, kind, mime, size, width, height,"
                              " refs, created_at) VALUES (?, ?, ?, ?, ?, ?, 0, ?)"
                              " ON CONFLICT DO NOTHING",
                              &s);
  if (rc) return rc;
  store_bind_blob(s, 1, BYTES(u->hash, sizeof u->hash));
  store_bind_str(s, 2, media_kind_name(u->info.kind));
  store_bind_str(s, 3, u->info.mime);
  store_bind_int64(s, 4, (int64_t)u->info.size);
  store_bind_int64(s, 5, u->info.width);
  store_bind_int64(s, 6, u->info.height);
  store_bind_int64(s, 7, u->now);
  return store_stmt_run(s);
}

static int insert_source(store_conn *c, const upload *u) {
  store_stmt *s;
  int rc =
      store_conn_prepare(c,
                         "INSERT INTO media_sources (source_hash, hash) VALUES (?, ?)"
                         " ON CONFLICT DO NOTHING",
                         &s);
  if (rc) return rc;
  store_bind_blob(s, 1, BYTES(u->source, sizeof u->source));
  store_bind_blob(s, 2, BYTES(u->hash, sizeof u->hash));
  return store_stmt_run(s);
}

/* The rows, on the writer. A dedup only confirms the row is still live.
 * TSR_ESTATE: the hash is being swept (tombstone), or its file went
 * between the link and this job: the client retries. */
static int commit_run(store_conn *c, void *arg) {
  upload *u = arg;
  if (u->dedup) return touch(c, u);
  int rc = insert_media(c, u);
  if (rc) return rc;
  if (store_conn_changes(c) == 0) {
    rc = touch(c, u); /* the same bytes were stored before */
    if (rc) return rc == TSR_ENOTFOUND ? TSR_ESTATE : rc;
  } else {
    char p[PATH_BYTES];
    struct stat st;
    media_path(u->hash, p);
    if (stat(p, &st) != 0) return TSR_ESTATE;
  }
  return insert_source(c, u);
}

static void up_back(work *wk);
static void up_drop(work *wk) { upload_free((upload *)wk); }

static void commit_done(store_job *job, int status) {
  upload *u = job->arg;
  if (status == TSR_ENOTFOUND && u->dedup) {
    /* Swept since the lookup: process the upload after all. */
    u->wk = (work){.run = up_run, .back = up_back, .drop = up_drop};
    if (push(&u->wk, false)) return;
    status = TSR_ESTATE;
  }
  if (status == 0) {
    answer_created(u);
  } else if (status == TSR_ESTATE || status == TSR_ELIMIT) {
    answer_error(u, 503, "busy", "server busy; retry later");
  } else {
    log_warn("media: storing an upload failed: %s", tsr_errname(status));
    answer_error(u, 500, "internal", "internal error");
  }
  upload_free(u);
}

static void up_back(work *wk) {
  upload *u = (upload *)wk;
  if (u->fail_status) {
    answer_error(u, u->fail_status, u->fail_code, u->fail_msg);
    upload_free(u);
    return;
  }
  u->now = now_s();
  u->job = (store_job){.run = commit_run, .done = commit_done, .arg = u};
  if (store_submit(md.w->sc, &u->job) != 0) {
    answer_error(u, 503, "busy", "server busy; retry later");
    upload_free(u);
  }
}

static int up_begin(const httpd_req *r, uint64_t length, httpd_resp *resp, void **ctx) {
  uint8_t acc[ACCOUNTS_ID_BYTES];
  if (fileserve_upload_admit(r, length, resp, "/v1/media", md.w->cfg->media_max_bytes,
                             "a media upload", acc))
    return 1;
  upload *u = calloc(1, sizeof *u);
  if (!u) return -1;
  uint8_t rnd[NAME_BYTES];
  randombytes_buf(rnd, sizeof rnd);
  sodium_bin2hex(u->name, sizeof u->name, rnd, sizeof rnd);
  u->size = length;
  char p[PATH_BYTES];
  tmp_path(u, false, p);
  u->fd = open(p, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (u->fd < 0) {
    log_error("media: cannot create %s: %s", p, strerror(errno));
    free(u);
    return -1;
  }
  *ctx = u;
  return 0;
}

static int up_data(void *ctx, const uint8_t *p, size_t n) {
  upload *u = ctx;
  if (fileserve_write_all(u->fd, p, n) != 0) {
    log_error("media: writing %s: %s", u->name, errno ? strerror(errno) : "no progress");
    return -1;
  }
  u->got += n;
  return 0;
}

static void up_abort(void *ctx) { upload_free(ctx); }

/* The first bytes of the upload (page cache: it was just written). */
static int read_head(upload *u, uint8_t *p, size_t cap, size_t *n) {
  *n = 0;
  while (*n < cap) {
    ssize_t k = pread(u->fd, p + *n, cap - *n, (off_t)*n);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) return TSR_EIO;
    if (k == 0) break;
    *n += (size_t)k;
  }
  return 0;
}

static int up_end(void *ctx, const httpd_req *r, httpd_resp *resp) {
  static uint8_t head[SNIFF_HEAD_BYTES]; /* loop thread only */
  upload *u = ctx;
  size_t n = 0;
  int rc = u->got == u->size ? read_head(u, head, sizeof head, &n) : TSR_EIO;
  if (close(u->fd) != 0 && !rc) rc = TSR_EIO;
  u->fd = -1;
  if (rc) {
    log_error("media: cannot keep %s: %s", u->name, strerror(errno));
    upload_free(u);
    return -1;
  }
  rc = sniff_detect(head, n, &u->sniff);
  if (rc == TSR_EUNSUPPORTED) {
    upload_free(u);
    return app_error(resp, 415, "unsupported_media",
                     "not a JPEG, PNG, WebP or GIF image, nor an MP4 or QuickTime video");
  }
  if (rc) {
    upload_free(u);
    return app_error(resp, 422, "bad_media", "the file's header is damaged or cut short");
  }
  uint64_t max = md.w->cfg->image_max_bytes;
  if (!u->sniff.video && u->size > max) {
    upload_free(u);
    char msg[96];
    snprintf(msg, sizeof msg, "an image is at most %llu bytes", (unsigned long long)max);
    return app_error(resp, 413, "too_large", msg);
  }
  u->wk = (work){.run = up_run, .back = up_back, .drop = up_drop};
  if (!push(&u->wk, true)) {
    upload_free(u);
    return app_error(resp, 503, "busy", "server busy; retry later");
  }
  /* The thread hands u back through the loop, so not before this returns. */
  httpd_defer(r, &u->ticket);
  return HTTPD_DEFERRED;
}

static const httpd_stream upload_route = {up_begin, up_data, up_end, up_abort};

/* ---- download -------------------------------------------------------------- */

static int media_get(const httpd_req *r, httpd_resp *resp) {
  uint8_t acc[ACCOUNTS_ID_BYTES], dev[ACCOUNTS_ID_BYTES];
  if (!accounts_auth_or_refuse(r, resp, acc, dev)) return 0;
  static const char prefix[] = "/v1/media/";
  http_str path = r->req->path;
  char hex[MEDIA_ID_HEX + 1];
  uint8_t h[MEDIA_HASH_BYTES];
  if (path.len != sizeof prefix - 1 + MEDIA_ID_HEX ||
      memcmp(path.ptr, prefix, sizeof prefix - 1) != 0)
    return app_error(resp, 404, "not_found", "no such media");
  memcpy(hex, path.ptr + sizeof prefix - 1, MEDIA_ID_HEX);
  hex[MEDIA_ID_HEX] = '\0';
  if (!media_id_parse(hex, h)) return app_error(resp, 404, "not_found", "no such media");
  media_info mi;
  int rc = media_describe(NULL, h, &mi);
  if (rc == TSR_ENOTFOUND) return app_error(resp, 404, "not_found", "no such media");
  if (rc) return -1;
  int fd = md.dirfd >= 0 ? openat(md.dirfd, hex, O_RDONLY | O_CLOEXEC) : -1;
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0 || (uint64_t)st.st_size != mi.size) {
    /* Swept between the read and the open, or damaged. */
    if (fd >= 0 || errno != ENOENT) log_warn("media: %s does not match its row", hex);
    if (fd >= 0) close(fd);
    return app_error(resp, 404, "not_found", "no such media");
  }
  return fileserve_answer(r, resp, fd, mi.size, hex, mi.mime);
}

/* ---- sweep (worker 0) ------------------------------------------------------ */

/* One sweep: mark (refs 0, old -> tombstone), unlink, then delete. hashes
 * holds the tombstones the mark job found. */
typedef struct {
  store_job job;
  int64_t cutoff;
  size_t n;
  uint8_t hashes[SWEEP_BATCH][MEDIA_HASH_BYTES];
} sweep_op;

static void sweep_again(uint32_t ms) {
  md.sweeping = false;
  if (md.w && !md.w->draining) loop_timer_start(&md.w->loop, &md.sweep, ms);
}

/* Marks a batch of expired media and collects every tombstone (also those
 * an earlier sweep or the orphan scan left). Their sources go at once, so
 * no upload is answered with them any more. */
static int mark_run(store_conn *c, void *arg) {
  sweep_op *o = arg;
  store_stmt *s;
  int rc = store_conn_prepare(c,
                              "UPDATE media SET refs = -1 WHERE hash IN (SELECT hash"
                              " FROM media WHERE refs = 0 AND created_at < ?"
                              " ORDER BY created_at LIMIT ?)",
                              &s);
  if (rc) return rc;
  store_bind_int64(s, 1, o->cutoff);
  store_bind_int64(s, 2, SWEEP_BATCH);
  if ((rc = store_stmt_run(s)) != 0) return rc;
  rc = store_conn_prepare(c,
                          "DELETE FROM media_sources WHERE hash IN"
                          " (SELECT hash FROM media WHERE refs = -1)",
                          &s);
  if (rc || (rc = store_stmt_run(s)) != 0) return rc;
  rc = store_conn_prepare(c, "SELECT hash FROM media WHERE refs = -1 LIMIT ?", &s);
  if (rc) return rc;
  store_bind_int64(s, 1, SWEEP_BATCH);
  o->n = 0;
  while ((rc = store_step(s)) == STORE_ROW) {
    bytes_t h = store_col_blob(s, 0);
    if (h.len == MEDIA_HASH_BYTES && o->n < SWEEP_BATCH)
      memcpy(o->hashes[o->n++], h.ptr, h.len);
  }
  store_stmt_reset(s);
  return rc < 0 ? rc : 0;
}

static int delete_run(store_conn *c, void *arg) {
  sweep_op *o = arg;
  store_stmt *s;
  int rc = store_conn_prepare(c, "DELETE FROM media WHERE hash = ? AND refs = -1", &s);
  for (size_t i = 0; !rc && i < o->n; i++) {
    store_bind_blob(s, 1, BYTES(o->hashes[i], MEDIA_HASH_BYTES));
    rc = store_stmt_run(s);
  }
  return rc;
}

static void delete_done(store_job *job, int status) {
  sweep_op *o = job->arg;
  if (status != 0) log_warn("media: sweep failed: %s", tsr_errname(status));
  if (status == 0 && o->n) log_info("media: %zu unused media deleted", o->n);
  bool more = status == 0 && o->n == SWEEP_BATCH;
  free(o);
  sweep_again(more ? 1 : SWEEP_MS);
}

/* The tombstones are committed: their files may go, then the rows. A file
 * that cannot be removed keeps its tombstone for the next sweep. */
static void mark_done(store_job *job, int status) {
  sweep_op *o = job->arg;
  if (status != 0 || !md.w || md.dirfd < 0) {
    if (status != 0) log_warn("media: sweep failed: %s", tsr_errname(status));
    free(o);
    sweep_again(SWEEP_MS);
    return;
  }
  size_t keep = 0;
  for (size_t i = 0; i < o->n; i++) {
    char id[MEDIA_ID_HEX + 1];
    media_id_text(o->hashes[i], id);
    if (unlinkat(md.dirfd, id, 0) != 0 && errno != ENOENT) {
      log_warn("media: cannot remove %s: %s", id, strerror(errno));
      continue;
    }
    if (keep != i) memcpy(o->hashes[keep], o->hashes[i], MEDIA_HASH_BYTES);
    keep++;
  }
  o->n = keep;
  if (o->n == 0) {
    free(o);
    sweep_again(SWEEP_MS);
    return;
  }
  o->job = (store_job){.run = delete_run, .done = delete_done, .arg = o};
  if (store_submit(md.w->sc, &o->job) != 0) {
    free(o);
    sweep_again(SWEEP_MS);
  }
}

/* ---- orphan scan (worker 0, on the media thread) --------------------------- */

/* One scan: temporary files an hour old are removed; media files an hour
 * old without a row are claimed with a tombstone (job), which the next
 * sweep deletes like any other. */
typedef struct {
  work wk; /* first */
  store_job job;
  int64_t now;
  unsigned tmp_removed;
  size_t n;
  uint8_t hashes[SWEEP_BATCH][MEDIA_HASH_BYTES];
} scan_op;

/* Regular files of dir older than ORPHAN_AGE_S, one call each, until fn
 * returns false. */
static void each_old_file(const char *dir,
                          bool (*fn)(scan_op *o, const char *dir, const char *name),
                          scan_op *o) {
  DIR *d = opendir(dir);
  if (!d) {
    log_warn("media: cannot scan %s: %s", dir, strerror(errno));
    return;
  }
  time_t old = time(NULL) - ORPHAN_AGE_S;
  int fd = dirfd(d);
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    struct stat st;
    if (e->d_name[0] == '.' || fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
        !S_ISREG(st.st_mode) || st.st_mtime > old)
      continue;
    if (!fn(o, dir, e->d_name)) break;
  }
  closedir(d);
}

static bool remove_tmp(scan_op *o, const char *dir, const char *name) {
  char p[PATH_BYTES];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  if (unlink(p) == 0) o->tmp_removed++;
  return true;
}

/* Whether a row (live or tombstone) exists: 1, 0, or a store error. */
static int row_exists(const uint8_t h[MEDIA_HASH_BYTES]) {
  store_conn *rd;
  store_stmt *s;
  int rc = store_reader_get(md.w->store, &rd);
  if (rc == 0) rc = store_conn_prepare(rd, "SELECT 1 FROM media WHERE hash = ?", &s);
  if (rc) return rc;
  store_bind_blob(s, 1, BYTES(h, MEDIA_HASH_BYTES));
  rc = store_step(s);
  store_stmt_reset(s);
  return rc < 0 ? rc : rc == STORE_ROW;
}

static bool note_orphan(scan_op *o, const char *dir, const char *name) {
  (void)dir;
  uint8_t h[MEDIA_HASH_BYTES];
  if (!media_id_parse(name, h) || row_exists(h) != 0) return true;
  memcpy(o->hashes[o->n++], h, sizeof h);
  return o->n < SWEEP_BATCH;
}

static void scan_run(work *wk) {
  scan_op *o = (scan_op *)wk;
  char tmp[PATH_BYTES];
  snprintf(tmp, sizeof tmp, "%s/" TMP_DIR, md.dir);
  each_old_file(tmp, remove_tmp, o);
  each_old_file(md.dir, note_orphan, o);
}

static int claim_run(store_conn *c, void *arg) {
  scan_op *o = arg;
  store_stmt *s;
  int rc = store_conn_prepare(c,
                              "INSERT INTO media (hash, kind, mime, size, width, height,"
                              " refs, created_at) VALUES (?, 'image', '" OCTETS
                              "', 0, 0, 0, -1, ?) ON CONFLICT DO NOTHING",
                              &s);
  for (size_t i = 0; !rc && i < o->n; i++) {
    store_bind_blob(s, 1, BYTES(o->hashes[i], MEDIA_HASH_BYTES));
    store_bind_int64(s, 2, o->now);
    rc = store_stmt_run(s);
  }
  return rc;
}

static void claim_done(store_job *job, int status) {
  scan_op *o = job->arg;
  if (status != 0) log_warn("media: orphan claim failed: %s", tsr_errname(status));
  free(o);
}

static void scan_back(work *wk) {
  scan_op *o = (scan_op *)wk;
  md.scanning = false;
  if (o->tmp_removed)
    log_info("media: %u leftover temporary files removed", o->tmp_removed);
  if (o->n == 0) {
    free(o);
    return;
  }
  log_info("media: %zu files without a row will be removed", o->n);
  o->now = now_s();
  o->job = (store_job){.run = claim_run, .done = claim_done, .arg = o};
  if (store_submit(md.w->sc, &o->job) != 0) free(o);
}

static void scan_drop(work *wk) { free(wk); }

static void start_scan(loop_t *l) {
  scan_op *o = calloc(1, sizeof *o);
  if (!o) return;
  o->wk = (work){.run = scan_run, .back = scan_back, .drop = scan_drop};
  if (!push(&o->wk, false)) {
    free(o);
    return;
  }
  md.scanning = md.scanned = true;
  md.last_scan = loop_now(l);
}

static void on_sweep(loop_t *l, loop_timer *t) {
  (void)t;
  if (!md.w || md.sweeping) return;
  if (!md.scanning && (!md.scanned || loop_now(l) - md.last_scan >= SCAN_EVERY_MS))
    start_scan(l);
  sweep_op *o = malloc(sizeof *o);
  if (!o) {
    loop_timer_start(l, &md.sweep, SWEEP_MS);
    return;
  }
  o->n = 0;
  o->cutoff = now_s() - MEDIA_UNREFERENCED_TTL;
  o->job = (store_job){.run = mark_run, .done = mark_done, .arg = o};
  if (store_submit(md.w->sc, &o->job) != 0) {
    free(o);
    loop_timer_start(l, &md.sweep, SWEEP_MS);
    return;
  }
  md.sweeping = true;
}

/* ---- setup ----------------------------------------------------------------- */

int media_routes(void) {
  int rc = httpd_route_add_stream(HTTP_POST, "/v1/media", &upload_route);
  if (rc == 0) rc = httpd_route_add(HTTP_GET, "/v1/media", media_get);
  return rc;
}

static int make_dir(const char *path) {
  if (mkdir(path, 0700) != 0 && errno != EEXIST) {
    int e = -errno;
    log_error("media: %s: %s", path, strerror(errno));
    return e;
  }
  return 0;
}

int media_prepare(const cfg *c) {
  char path[DIR_BYTES + 8];
  snprintf(path, sizeof path, "%s/%s", c->data_dir, MEDIA_DIR);
  int rc = make_dir(path);
  if (rc) return rc;
  snprintf(path, sizeof path, "%s/%s/%s", c->data_dir, MEDIA_DIR, TMP_DIR);
  return make_dir(path);
}

int media_worker_start(worker *w) {
  snprintf(md.dir, sizeof md.dir, "%s/%s", w->cfg->data_dir, MEDIA_DIR);
  md.dirfd = open(md.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (md.dirfd < 0) {
    log_error("media: %s: %s", md.dir, strerror(errno));
    return TSR_EIO;
  }
  int rc = imaging_init();
  if (rc) {
    close(md.dirfd);
    md.dirfd = -1;
    return rc;
  }
  md.w = w;
  md.live.lprev = md.live.lnext = &md.live;
  md.stop = false;
  md.sweeping = md.scanning = md.scanned = false;
  if (pthread_create(&md.th, NULL, thread_main, &w->loop) != 0) {
    md.w = NULL;
    close(md.dirfd);
    md.dirfd = -1;
    return TSR_ENOMEM;
  }
  md.running = true;
  md.sweep.kind = TIMER_MEDIA;
  loop_set_timer_cb(&w->loop, TIMER_MEDIA, on_sweep);
  if (w->index == 0) loop_timer_start(&w->loop, &md.sweep, SWEEP_FIRST_MS);
  return 0;
}

void media_worker_stop(worker *w) {
  loop_timer_stop(&w->loop, &md.sweep);
  if (md.running) {
    pthread_mutex_lock(&md.mu);
    md.stop = true;
    pthread_cond_broadcast(&md.cv);
    pthread_mutex_unlock(&md.mu);
    pthread_join(md.th, NULL);
    md.running = false;
  }
  /* Work still queued, or posted to a loop that no longer runs: an
   * upload's connection is closed by now, so it is only cleaned up. */
  while (md.live.lnext && md.live.lnext != &md.live) {
    work *wk = md.live.lnext;
    live_unlink(wk);
    wk->drop(wk);
  }
  md.head = md.tail = NULL;
  md.queued = 0;
  md.w = NULL;
  if (md.dirfd >= 0) close(md.dirfd);
  md.dirfd = -1;
  imaging_shutdown();
}
