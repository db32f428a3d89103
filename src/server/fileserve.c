/* Serving an immutable file over GET/HEAD. See fileserve.h. */
#include "server/fileserve.h"

#include <errno.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "proto/range.h"

#define CACHE_FOREVER "private, max-age=31536000, immutable"

static bool is_ows(char c) { return c == ' ' || c == '\t'; }

/* Trims OWS around v[*a..*b). */
static void trim(const char *v, size_t *a, size_t *b) {
  while (*a < *b && is_ows(v[*a])) (*a)++;
  while (*b > *a && is_ows(v[*b - 1])) (*b)--;
}

/* Whether v[a..b) is exactly "etag" (quoted). */
static bool quoted_is(const char *v, size_t a, size_t b, const char *etag) {
  size_t n = strlen(etag);
  return b - a == n + 2 && v[a] == '"' && v[b - 1] == '"' &&
         memcmp(v + a + 1, etag, n) == 0;
}

bool fileserve_etag_listed(const char *v, size_t n, const char *etag) {
  if (!v || !etag) return false;
  size_t a = 0;
  while (a <= n) {
    size_t b = a;
    while (b < n && v[b] != ',') b++;
    size_t x = a, y = b;
    trim(v, &x, &y);
    if (y - x == 1 && v[x] == '*') return true;
    if (y - x >= 2 && v[x] == 'W' && v[x + 1] == '/') x += 2;
    if (quoted_is(v, x, y, etag)) return true;
    a = b + 1;
  }
  return false;
}

/* If-Range holds our strong tag (or is absent): the Range may apply. A
 * date, a weak tag or another tag means "send it all" (RFC 9110 §13.1.5). */
static bool range_allowed(const httpd_req *r, const char *etag) {
  http_str f = http_request_header(r->req, "If-Range");
  if (!f.ptr) return true;
  size_t a = 0, b = f.len;
  trim(f.ptr, &a, &b);
  return quoted_is(f.ptr, a, b, etag);
}

int fileserve_answer(const httpd_req *r, httpd_resp *resp, int fd, uint64_t size,
                     const char *etag, const char *content_type) {
  /* hdr_store holds the quoted ETag, then the Content-Range. */
  int n = snprintf(resp->hdr_store, sizeof resp->hdr_store, "\"%.*s\"",
                   FILESERVE_ETAG_MAX, etag);
  char *crange = resp->hdr_store + n + 1;
  size_t ccap = sizeof resp->hdr_store - (size_t)n - 1;
  httpd_resp_header(resp, "ETag", resp->hdr_store);
  httpd_resp_header(resp, "Accept-Ranges", "bytes");
  httpd_resp_header(resp, "X-Content-Type-Options", "nosniff");
  http_str inm = http_request_header(r->req, "If-None-Match");
  if (inm.ptr && fileserve_etag_listed(inm.ptr, inm.len, etag)) {
    close(fd);
    resp->status = 304;
    resp->content_type = NULL;
    httpd_resp_header(resp, "Cache-Control", CACHE_FOREVER);
    return 0;
  }
  uint64_t first = 0, len = size;
  int kind = RANGE_IGNORE;
  http_str range = http_request_header(r->req, "Range");
  if (range.ptr && range_allowed(r, etag))
    kind = range_parse(range.ptr, range.len, size, &first, &len);
  if (kind == RANGE_UNSATISFIABLE) {
    close(fd);
    snprintf(crange, ccap, "bytes */%llu", (unsigned long long)size);
    httpd_resp_error(resp, 416, "range_not_satisfiable", "the range is outside the file");
    httpd_resp_header(resp, "Content-Range", crange);
    return 0;
  }
  httpd_resp_header(resp, "Cache-Control", CACHE_FOREVER);
  if (kind == RANGE_OK) {
    resp->status = 206;
    snprintf(crange, ccap, "bytes %llu-%llu/%llu", (unsigned long long)first,
             (unsigned long long)(first + len - 1), (unsigned long long)size);
    httpd_resp_header(resp, "Content-Range", crange);
  }
  resp->content_type = content_type;
  resp->has_file = true;
  resp->file_fd = fd;
  resp->file_off = first;
  resp->file_len = len;
  return 0;
}

int fileserve_write_all(int fd, const uint8_t *p, size_t n) {
  while (n > 0) {
    ssize_t k = write(fd, p, n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) {
      if (k == 0) errno = 0;
      return -1;
    }
    p += k;
    n -= (size_t)k;
  }
  return 0;
}

int fileserve_upload_admit(const httpd_req *r, uint64_t length, httpd_resp *resp,
                           const char *path, uint64_t max, const char *noun,
                           uint8_t acc[ACCOUNTS_ID_BYTES]) {
  uint8_t dev[ACCOUNTS_ID_BYTES];
  char msg[96];
  if (!httpd_path_is(r, path)) {
    httpd_resp_error(resp, 404, "not_found", "no such resource");
    return 1;
  }
  if (!accounts_auth_or_refuse(r, resp, acc, dev)) return 1;
  if (length > max) {
    snprintf(msg, sizeof msg, "%s is at most %llu bytes", noun, (unsigned long long)max);
    httpd_resp_error(resp, 413, "too_large", msg);
    return 1;
  }
  if (length == 0) {
    snprintf(msg, sizeof msg, "%s is not empty", noun);
    httpd_resp_error(resp, 400, "bad_request", msg);
    return 1;
  }
  return 0;
}
