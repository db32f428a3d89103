/* Integration tests of attachments on the server (server/blobs.h): a real
 * tesserad (two workers, random port, temporary data dir, request limits
 * off, attachment_max_bytes 2 MiB, above max_body's 1 MiB so the streamed
 * upload path is what carries it) spoken to over raw HTTP/1.1 with binary
 * bodies. What is stored is checked in the data dir (files) and the
 * SQLite file (rows). A second server with a 1 s message_retention checks
 * the sweep. Every wait is bounded by a deadline; polling external state
 * uses tick(). */
#define _GNU_SOURCE /* memmem, strcasestr */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server_harness.h"
#include "test.h"

#define MAXB (2u << 20)

static server srv;
static user ann;

/* One request to the test server (body as application/octet-stream). */
static int req(const char *method, const char *path, const char *token, const char *hdrs,
               const uint8_t *body, size_t n, answer *a) {
  return raw_request(srv.port, method, path, token, hdrs, "application/octet-stream",
                     body, n, a);
}

static int64_t db_count(const char *sql) {
  char path[400];
  snprintf(path, sizeof path, "%s/tessera.db", srv.data);
  sqlite3 *db = NULL;
  int64_t v = -1;
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW)
      v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
  }
  sqlite3_close(db);
  return v;
}

/* Files in data/blobs, and how many end in ".tmp". */
static int count_files(const server *s, int *tmp) {
  char path[400];
  snprintf(path, sizeof path, "%s/blobs", s->data);
  DIR *d = opendir(path);
  if (!d) return -1;
  int n = 0;
  *tmp = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    n++;
    size_t l = strlen(e->d_name);
    if (l > 4 && !strcmp(e->d_name + l - 4, ".tmp")) (*tmp)++;
  }
  closedir(d);
  return n;
}

static uint8_t *data1;
static size_t size1 = (3u << 19) + 17; /* 1.5 MiB + 17: above max_body */
static char id1[32];

static void test_setup(void) {
  CHECK(make_user(&srv, &ann, "ann"));
  data1 = malloc(size1);
  CHECK(data1 != NULL);
  randombytes_buf(data1, size1);
}

static void test_upload(void) {
  answer a;
  CHECK_INT(req("POST", "/v1/blobs", ann.s.token, "", data1, size1, &a), 201);
  cJSON *j = cJSON_ParseWithLength((const char *)a.body, a.len);
  CHECK(j != NULL);
  snprintf(id1, sizeof id1, "%s", json_str(j, "blob"));
  CHECK_INT(strlen(id1), 22);
  cJSON *sz = cJSON_GetObjectItem(j, "size");
  CHECK(cJSON_IsNumber(sz) && (size_t)sz->valuedouble == size1);
  cJSON_Delete(j);
  answer_free(&a);
  char path[400];
  struct stat st;
  snprintf(path, sizeof path, "%s/blobs/%s", srv.data, id1);
  CHECK(stat(path, &st) == 0 && (size_t)st.st_size == size1);
  CHECK_INT(db_count("SELECT COUNT(*) FROM blobs"), 1);
  int tmp = -1;
  CHECK_INT(count_files(&srv, &tmp), 1);
  CHECK_INT(tmp, 0);
}

static void test_get_whole(void) {
  char path[64];
  snprintf(path, sizeof path, "/v1/blobs/%s", id1);
  answer a;
  CHECK_INT(req("GET", path, ann.s.token, "", NULL, 0, &a), 200);
  CHECK(a.len == size1 && memcmp(a.body, data1, size1) == 0);
  CHECK(has_header(&a, "Accept-Ranges: bytes"));
  char etag[64];
  snprintf(etag, sizeof etag, "ETag: \"%s\"", id1);
  CHECK(has_header(&a, etag));
  CHECK(has_header(&a, "Cache-Control: private, max-age=31536000, immutable"));
  CHECK(has_header(&a, "Content-Type: application/octet-stream"));
  answer_free(&a);
  /* HEAD: the same head, no body. */
  CHECK_INT(req("HEAD", path, ann.s.token, "", NULL, 0, &a), 200);
  char cl[64];
  snprintf(cl, sizeof cl, "Content-Length: %zu", size1);
  CHECK(has_header(&a, cl));
  CHECK_INT(a.len, 0);
  answer_free(&a);
}

static void check_range(const char *range, int status, size_t first, size_t len,
                        const char *crange) {
  char path[64], hdr[128];
  snprintf(path, sizeof path, "/v1/blobs/%s", id1);
  snprintf(hdr, sizeof hdr, "Range: %s\r\n", range);
  answer a;
  CHECK_INT(req("GET", path, ann.s.token, hdr, NULL, 0, &a), status);
  if (status != 416) {
    CHECK_INT(a.len, len);
    CHECK(a.len == len && memcmp(a.body, data1 + first, len) == 0);
  }
  if (crange) {
    char line[128];
    snprintf(line, sizeof line, "Content-Range: %s", crange);
    CHECK(has_header(&a, line));
  } else {
    CHECK(strcasestr(a.head, "Content-Range") == NULL);
  }
  answer_free(&a);
}

static void test_ranges(void) {
  char cr[96];
  check_range("bytes=10-19", 206, 10, 10,
              (snprintf(cr, sizeof cr, "bytes 10-19/%zu", size1), cr));
  check_range("bytes=1000000-", 206, 1000000, size1 - 1000000,
              (snprintf(cr, sizeof cr, "bytes 1000000-%zu/%zu", size1 - 1, size1), cr));
  check_range(
      "bytes=-100", 206, size1 - 100, 100,
      (snprintf(cr, sizeof cr, "bytes %zu-%zu/%zu", size1 - 100, size1 - 1, size1), cr));
  /* last-pos past the end is clamped */
  check_range("bytes=5-99999999999", 206, 5, size1 - 5,
              (snprintf(cr, sizeof cr, "bytes 5-%zu/%zu", size1 - 1, size1), cr));
  /* several ranges, or a malformed one: ignored, the whole blob */
  check_range("bytes=0-1,5-6", 200, 0, size1, NULL);
  check_range("bytes=x-", 200, 0, size1, NULL);
  check_range("bytes=9-3", 200, 0, size1, NULL);
  /* unsatisfiable */
  char un[64];
  snprintf(un, sizeof un, "bytes=%zu-", size1);
  check_range(un, 416, 0, 0, (snprintf(cr, sizeof cr, "bytes */%zu", size1), cr));
  check_range("bytes=-0", 416, 0, 0, cr);
}

/* Two pipelined requests after a file body: answered in order. */
static void test_pipelined(void) {
  int fd = tcp_connect(srv.port);
  CHECK(fd >= 0);
  char r2[512];
  snprintf(r2, sizeof r2,
           "GET /v1/blobs/%s HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n\r\n"
           "GET /v1/blobs/%s HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n"
           "Range: bytes=0-9\r\n\r\n",
           id1, ann.s.token, id1, ann.s.token);
  CHECK(send_str(fd, r2));
  static uint8_t rest[1 << 20];
  size_t rest_len = 0;
  answer a, b;
  CHECK(read_answer(fd, false, &a, rest, &rest_len));
  CHECK(read_answer(fd, false, &b, rest, &rest_len));
  CHECK_INT(a.status, 200);
  CHECK(a.len == size1 && memcmp(a.body, data1, size1) == 0);
  CHECK_INT(b.status, 206);
  CHECK(b.len == 10 && memcmp(b.body, data1, 10) == 0);
  answer_free(&a);
  answer_free(&b);
  close(fd);
}

static void test_refusals(void) {
  answer a;
  char path[64];
  snprintf(path, sizeof path, "/v1/blobs/%s", id1);
  /* 401 without a token, both ways */
  CHECK_INT(req("GET", path, NULL, "", NULL, 0, &a), 401);
  answer_free(&a);
  uint8_t small[100] = {1};
  CHECK_INT(req("POST", "/v1/blobs", NULL, "", small, sizeof small, &a), 401);
  answer_free(&a);
  CHECK_INT(req("POST", "/v1/blobs", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "",
                small, sizeof small, &a),
            401);
  answer_free(&a);
  /* unknown id, malformed id */
  uint8_t rnd[16];
  char rid[32], p2[64];
  randombytes_buf(rnd, sizeof rnd);
  b64(rnd, sizeof rnd, rid);
  snprintf(p2, sizeof p2, "/v1/blobs/%s", rid);
  CHECK_INT(req("GET", p2, ann.s.token, "", NULL, 0, &a), 404);
  answer_free(&a);
  CHECK_INT(req("GET", "/v1/blobs/not-an-id", ann.s.token, "", NULL, 0, &a), 400);
  answer_free(&a);
  CHECK_INT(req("GET", "/v1/blobs/AAAAAAAAAAAAAAAAAAAAAB", ann.s.token, "", NULL, 0, &a),
            400);
  answer_free(&a);
  /* 413 over the limit, answered from the head alone: no body is sent. */
  int fd = tcp_connect(srv.port);
  CHECK(fd >= 0);
  char head[512];
  snprintf(head, sizeof head,
           "POST /v1/blobs HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n"
           "Content-Type: application/octet-stream\r\nContent-Length: %u\r\n\r\n",
           ann.s.token, MAXB + 1);
  CHECK(send_str(fd, head));
  CHECK(read_answer(fd, false, &a, NULL, NULL));
  CHECK_INT(a.status, 413);
  CHECK(a.body && memmem(a.body, a.len, "\"too_large\"", 11) != NULL);
  answer_free(&a);
  close(fd);
  /* exactly the limit is fine */
  uint8_t *big = calloc(1, MAXB);
  CHECK(big != NULL);
  CHECK_INT(req("POST", "/v1/blobs", ann.s.token, "", big, MAXB, &a), 201);
  answer_free(&a);
  free(big);
  /* chunked: Content-Length is required */
  CHECK_INT(req("POST", "/v1/blobs", ann.s.token, "Transfer-Encoding: chunked\r\n",
                (const uint8_t *)"0\r\n\r\n", 5, &a),
            400); /* both CL and TE: a framing error */
  answer_free(&a);
  fd = tcp_connect(srv.port);
  snprintf(head, sizeof head,
           "POST /v1/blobs HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n"
           "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
           ann.s.token);
  CHECK(send_str(fd, head));
  CHECK(read_answer(fd, false, &a, NULL, NULL));
  CHECK_INT(a.status, 411);
  answer_free(&a);
  close(fd);
}

/* An upload cut short leaves no row, no file, no temporary file. */
static void test_truncated(void) {
  int64_t rows = db_count("SELECT COUNT(*) FROM blobs");
  int tmp = 0;
  int files = count_files(&srv, &tmp);
  int fd = tcp_connect(srv.port);
  CHECK(fd >= 0);
  char head[512];
  snprintf(head, sizeof head,
           "POST /v1/blobs HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n"
           "Content-Length: 1000000\r\n\r\n",
           ann.s.token);
  CHECK(send_str(fd, head));
  CHECK(send_all(fd, data1, 300000));
  /* The temporary file appears while the body arrives... */
  uint64_t deadline = now_ms() + DEADLINE_MS;
  while (count_files(&srv, &tmp) >= 0 && tmp == 0 && now_ms() < deadline) tick();
  CHECK_INT(tmp, 1);
  close(fd);
  /* ...and goes when the client gives up. */
  deadline = now_ms() + DEADLINE_MS;
  while (count_files(&srv, &tmp) >= 0 && tmp != 0 && now_ms() < deadline) tick();
  CHECK_INT(tmp, 0);
  CHECK_INT(count_files(&srv, &tmp), files);
  CHECK_INT(db_count("SELECT COUNT(*) FROM blobs"), rows);
  /* The server still serves. */
  answer a;
  char path[64];
  snprintf(path, sizeof path, "/v1/blobs/%s", id1);
  CHECK_INT(req("GET", path, ann.s.token, "Range: bytes=0-0\r\n", NULL, 0, &a), 206);
  answer_free(&a);
}

/* Blobs older than message_retention are deleted, row and file. */
static void test_retention(void) {
  server s2;
  static const char *const extra[] = {"--rate-per-account",
                                      "0",
                                      "--rate-per-address",
                                      "0",
                                      "--message-retention",
                                      "1",
                                      NULL};
  CHECK(server_start(&s2, "blobs-ret", true, "1", extra));
  if (test_failing()) return;
  server keep = srv;
  srv = s2;
  user u = {0};
  CHECK(make_user(&srv, &u, "ret"));
  answer a;
  CHECK_INT(req("POST", "/v1/blobs", u.s.token, "", data1, 1000, &a), 201);
  cJSON *j = cJSON_ParseWithLength((const char *)a.body, a.len);
  char path[64];
  snprintf(path, sizeof path, "/v1/blobs/%s", json_str(j, "blob"));
  cJSON_Delete(j);
  answer_free(&a);
  int tmp = 0;
  CHECK_INT(count_files(&srv, &tmp), 1);
  uint64_t deadline = now_ms() + DEADLINE_MS;
  int st = 200;
  while (st == 200 && now_ms() < deadline) {
    st = req("GET", path, u.s.token, "", NULL, 0, &a);
    answer_free(&a);
    if (st == 200) tick();
  }
  CHECK_INT(st, 404);
  deadline = now_ms() + DEADLINE_MS;
  while (count_files(&srv, &tmp) != 0 && now_ms() < deadline) tick();
  CHECK_INT(count_files(&srv, &tmp), 0);
  CHECK_INT(db_count("SELECT COUNT(*) FROM blobs"), 0);
  srv = keep;
  server_stop(&s2, true);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  if (sodium_init() < 0 || !find_binary()) {
    fprintf(stderr, "tesserad not found (set TSR_BUILD)\n");
    printf("blobs: 0 passed, 1 failed, 0 skipped\n");
    return 1;
  }
  static const char *const extra[] = {"--rate-per-account",
                                      "0",
                                      "--rate-per-address",
                                      "0",
                                      "--attachment-max-bytes",
                                      "2m",
                                      NULL};
  if (!server_start(&srv, "blobs", true, "2", extra)) {
    fprintf(stderr, "tesserad did not start; log %s\n", srv.log);
    printf("blobs: 0 passed, 1 failed, 0 skipped\n");
    return 1;
  }
  RUN(test_setup);
  RUN(test_upload);
  RUN(test_get_whole);
  RUN(test_ranges);
  RUN(test_pipelined);
  RUN(test_refusals);
  RUN(test_truncated);
  RUN(test_retention);
  free(data1);
  cJSON_Delete(resp.json);
  resp.json = NULL;
  server_stop(&srv, true);
  return test_report("blobs");
}
