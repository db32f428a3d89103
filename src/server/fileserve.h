/* Serving an immutable file over GET/HEAD: the validators and the single
 * byte range that file-backed routes (media, and blobs when it moves to
 * this) answer the same way.
 *
 * The representation never changes under its ETag, so: If-None-Match
 * listing it (or "*") gives 304; a Range (proto/range.h) gives 206 for one
 * satisfiable range, 416 for an unsatisfiable one, and is ignored (200)
 * when malformed, multiple, or when an If-Range names another validator.
 * Every answer but 304 and 416 carries Cache-Control "private,
 * max-age=31536000, immutable"; all carry ETag, Accept-Ranges and
 * X-Content-Type-Options: nosniff.
 *
 * Threads: a handler's, on the loop thread. */
#ifndef TSR_SERVER_FILESERVE_H
#define TSR_SERVER_FILESERVE_H

#include <stdint.h>

#include "server/accounts.h"
#include "server/httpd.h"

#define FILESERVE_ETAG_MAX 128 /* characters of an opaque tag, quotes excluded */

/* Fills resp to answer r with the size bytes of fd. etag: the opaque tag
 * without quotes (at most FILESERVE_ETAG_MAX characters of base64url or
 * hex: no quote or backslash); it is copied into resp. content_type:
 * static storage. Takes fd: handed to resp or closed, on every path.
 * Returns 0 (a handler's result). */
int fileserve_answer(const httpd_req *r, httpd_resp *resp, int fd, uint64_t size,
                     const char *etag, const char *content_type);

/* Whether the If-None-Match field value v[0..n) matches etag (weak
 * comparison, RFC 9110 §13.1.2): "*", or a list element "etag" or
 * W/"etag". Exposed for tests. */
bool fileserve_etag_listed(const char *v, size_t n, const char *etag);

/* The checks a streamed upload starts with (an httpd_stream begin hook's):
 * r's path is exactly path (else 404), the caller is authenticated (else
 * 401 or 429; acc is then the caller's account), and 1 <= length <= max
 * (else 413 "<noun> is at most <max> bytes" or 400 "<noun> is not
 * empty"). Returns 0 to go on, or 1 with resp filled. */
int fileserve_upload_admit(const httpd_req *r, uint64_t length, httpd_resp *resp,
                           const char *path, uint64_t max, const char *noun,
                           uint8_t acc[ACCOUNTS_ID_BYTES]);

/* The upload side of the same routes: writes the n bytes of p to fd,
 * retrying short writes and EINTR. Returns 0, or -1 with errno set (0 when
 * the file stopped taking bytes). */
int fileserve_write_all(int fd, const uint8_t *p, size_t n);

#endif
