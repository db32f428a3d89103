/* libFuzzer target for the HTTP/1.1 parser (src/proto/http.c).
 *
 * The input is a request as it would arrive on a connection. When the head
 * parses, the harness checks the parser's promises (views inside the head,
 * never reading past it, every shorter prefix incomplete), decodes the
 * path and query, writes the parsed fields back out as a response head,
 * then runs the body helper and the chunked decoder on the remainder: all
 * at once in place and one byte at a time into a separate buffer, which
 * must agree. Nothing may crash, leak or trip a sanitizer. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/bytes.h"
#include "proto/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Small limits so that the fuzzer reaches every limit quickly. */
static const http_limits lim = {
    .max_header_bytes = 2048, .max_headers = 16, .max_target = 256, .max_body = 4096};

static bool inside(http_str v, const char *lo, size_t n) {
  if (v.ptr == NULL) return v.len == 0;
  if (v.len == 1 && v.ptr[0] == '/' && (v.ptr < lo || v.ptr >= lo + n)) return true;
  return v.ptr >= lo && v.len <= n && (size_t)(v.ptr - lo) <= n - v.len;
}

static void check(bool ok) {
  if (!ok) abort();
}

static void fuzz_uri(const http_request *r) {
  char out[512];
  size_t n;
  http_str rest = r->path, seg;
  int guard = 0;
  while (http_path_next(&rest, &seg) && guard++ < 512) {
    int rc = http_pct_decode(seg, false, out, sizeof out, &n);
    check(rc == 0 || rc == HTTP_E_ESCAPE || rc == HTTP_E_NOSPACE);
    if (rc == 0) check(n < sizeof out && out[n] == '\0' && strlen(out) == n);
  }
  static const char *names[] = {"a", "q", "name", "token"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    int rc = http_query_get(r->query, names[i], out, sizeof out, &n);
    check(rc == 0 || rc == 1 || rc == HTTP_E_ESCAPE || rc == HTTP_E_NOSPACE);
    if (rc == 1) check(n < sizeof out && strlen(out) == n);
  }
}

/* Whatever the parser accepted, the writer must accept too. */
static void fuzz_writer(const http_request *r) {
  buf_t b;
  buf_init(&b);
  int rc = http_write_response_head(&b, 200, NULL, r->headers, r->num_headers,
                                    r->content_length, r->keep_alive);
  check(rc == 0);
  /* And what the writer wrote parses as field lines of a request. */
  buf_t req;
  buf_init(&req);
  buf_append(&req, "GET / HTTP/1.1\r\nHost: h\r\n", 25);
  buf_append(&req, b.ptr + 17, b.len - 17); /* skip "HTTP/1.1 200 OK\r\n" */
  http_header h[20];
  http_request back = {.headers = h};
  http_limits big = {1 << 16, 20, 256, 4096};
  rc = http_parse_request((const char *)req.ptr, req.len, &back, &big);
  /* Only semantic field checks (Host, lengths, ...) may object. */
  check(rc == (int)req.len || http_error_status(rc) >= 400);
  check(rc != HTTP_E_HEADER_NAME && rc != HTTP_E_HEADER_VALUE && rc != HTTP_E_BARE_CR &&
        rc != HTTP_E_BARE_LF && rc != HTTP_E_OBS_FOLD && rc != HTTP_INCOMPLETE);
  buf_free(&req);
  buf_free(&b);
}

static void fuzz_chunked(const uint8_t *body, size_t len) {
  /* All at once, in place. */
  char *a = malloc(len ? len : 1);
  if (len) memcpy(a, body, len);
  http_chunked_decoder d;
  http_chunked_init(&d, &lim);
  size_t used_a, out_a;
  int rc_a = http_chunked_decode(&d, a, len, a, len, &used_a, &out_a);
  check(used_a <= len && out_a <= used_a);
  check(rc_a == HTTP_CHUNKED_DONE || rc_a == HTTP_CHUNKED_MORE || rc_a < 0);
  if (rc_a == HTTP_CHUNKED_MORE) check(used_a == len);
  if (rc_a < 0) check(http_error_status(rc_a) >= 400);

  /* One byte at a time, into a separate buffer. */
  char *b = malloc(len ? len : 1);
  http_chunked_init(&d, &lim);
  size_t used_b = 0, out_b = 0;
  int rc_b = HTTP_CHUNKED_MORE;
  while (used_b < len) {
    size_t u, o;
    rc_b = http_chunked_decode(&d, (const char *)body + used_b, 1, b + out_b, len - out_b,
                               &u, &o);
    used_b += u;
    out_b += o;
    if (rc_b != HTTP_CHUNKED_MORE) break;
    check(u == 1);
  }
  check(rc_a == rc_b);
  check(out_a == out_b);
  if (rc_a == HTTP_CHUNKED_DONE) check(used_a == used_b);
  check(out_a == 0 || memcmp(a, b, out_a) == 0);
  check(out_a <= lim.max_body);
  free(a);
  free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *buf = (const char *)data;
  http_header h[16];
  http_request r = {.headers = h};
  int n = http_parse_request(buf, size, &r, &lim);
  if (n <= 0) {
    check(n == HTTP_INCOMPLETE || http_error_status(n) >= 400);
    check(strcmp(http_error_name(n), "HTTP_E_UNKNOWN") != 0);
    return 0;
  }
  size_t hl = (size_t)n;
  check(hl <= size && hl <= lim.max_header_bytes);
  check(r.num_headers <= lim.max_headers);
  check(r.minor_version == 0 || r.minor_version == 1);
  check(inside(r.method_str, buf, hl) && inside(r.target, buf, hl));
  check(inside(r.path, buf, hl) && inside(r.query, buf, hl) && inside(r.host, buf, hl));
  check(r.target.len <= lim.max_target);
  for (size_t i = 0; i < r.num_headers; i++)
    check(inside(h[i].name, buf, hl) && inside(h[i].value, buf, hl));
  check(!(r.chunked && r.content_length >= 0));

  /* The parser never looks past the head, and every prefix is incomplete. */
  char *exact = malloc(hl);
  memcpy(exact, buf, hl);
  http_header h2[16];
  http_request r2 = {.headers = h2};
  check(http_parse_request(exact, hl, &r2, &lim) == n);
  check(http_parse_request(exact, hl - 1, &r2, &lim) == HTTP_INCOMPLETE);
  check(http_parse_request(exact, hl / 2, &r2, &lim) == HTTP_INCOMPLETE);
  free(exact);

  fuzz_uri(&r);
  fuzz_writer(&r);

  const uint8_t *rest = data + hl;
  size_t rest_len = size - hl;
  size_t body_len, missing;
  int kind = http_body_need(&r, &lim, rest_len, &body_len, &missing);
  check(kind >= 0 || kind == HTTP_E_BODY_TOO_LARGE);
  if (kind == HTTP_BODY_LENGTH) {
    check(body_len <= lim.max_body && missing <= body_len);
    check(missing == 0 ? rest_len >= body_len : rest_len + missing == body_len);
  }
  /* The decoder sees the remainder whatever the framing said: more coverage. */
  fuzz_chunked(rest, rest_len);
  return 0;
}
