/* HTTP/1.1: request heads, limits, pipelining, chunked bodies,
 * percent-decoding and response heads (src/proto/http.c). */
#include <stdlib.h>

#include "proto/http.h"
#include "test.h"

#define MAXH 16
static http_header hdrs[MAXH];

static http_limits limits(void) {
  http_limits l = HTTP_LIMITS_DEFAULT;
  l.max_headers = MAXH;
  return l;
}

static int parse(const char *s, http_request *r) {
  http_limits l = limits();
  *r = (http_request){.headers = hdrs};
  return http_parse_request(s, strlen(s), r, &l);
}

static bool str_is(http_str v, const char *lit) {
  return v.ptr && v.len == strlen(lit) && memcmp(v.ptr, lit, v.len) == 0;
}

static void test_get(void) {
  const char *s = "GET /v1/users/me?x=1&y=%20z HTTP/1.1\r\n"
                  "Host: example.org:8080\r\n"
                  "User-Agent:  curl/8 \t\r\n"
                  "Accept: */*\r\n"
                  "X-Empty:\r\n"
                  "\r\n";
  http_request r;
  CHECK_INT(parse(s, &r), strlen(s));
  CHECK_INT(r.method, HTTP_GET);
  CHECK(str_is(r.method_str, "GET"));
  CHECK(str_is(r.target, "/v1/users/me?x=1&y=%20z"));
  CHECK(str_is(r.path, "/v1/users/me"));
  CHECK(str_is(r.query, "x=1&y=%20z"));
  CHECK_INT(r.minor_version, 1);
  CHECK_INT(r.num_headers, 4);
  CHECK(r.headers == hdrs);
  CHECK(str_is(hdrs[1].name, "User-Agent"));
  CHECK(str_is(hdrs[1].value, "curl/8"));
  CHECK(str_is(hdrs[3].value, ""));
  CHECK(str_is(r.host, "example.org:8080"));
  CHECK_INT(r.content_length, -1);
  CHECK(!r.chunked);
  CHECK(r.keep_alive);
  CHECK(!r.upgrade_websocket);
  CHECK(!r.expect_continue);
  CHECK(r.content_type.ptr == NULL);
  CHECK(r.authorization.ptr == NULL);
  CHECK(str_is(http_request_header(&r, "user-agent"), "curl/8"));
  CHECK(str_is(http_request_header(&r, "x-empty"), ""));
  CHECK(http_request_header(&r, "X-Missing").ptr == NULL);
  /* Without a headers array the semantics are still extracted. */
  http_limits l = limits();
  http_request r2 = {0};
  CHECK_INT(http_parse_request(s, strlen(s), &r2, &l), strlen(s));
  CHECK_INT(r2.num_headers, 4);
  CHECK(str_is(r2.host, "example.org:8080"));
  /* No query, '?' with an empty query. */
  CHECK(parse("GET / HTTP/1.1\r\nHost: a\r\n\r\n", &r) > 0);
  CHECK(str_is(r.path, "/"));
  CHECK(r.query.ptr == NULL);
  CHECK(parse("GET /a? HTTP/1.1\r\nHost: a\r\n\r\n", &r) > 0);
  CHECK(str_is(r.query, ""));
}

static void test_methods_and_forms(void) {
  static const struct {
    const char *m;
    http_method e;
  } ms[] = {
      {"GET", HTTP_GET},         {"HEAD", HTTP_HEAD},        {"POST", HTTP_POST},
      {"PUT", HTTP_PUT},         {"PATCH", HTTP_PATCH},      {"DELETE", HTTP_DELETE},
      {"OPTIONS", HTTP_OPTIONS}, {"get", HTTP_METHOD_OTHER}, {"BREW", HTTP_METHOD_OTHER}};
  for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
    char buf[128];
    snprintf(buf, sizeof buf, "%s /x HTTP/1.1\r\nHost: h\r\n\r\n", ms[i].m);
    http_request r;
    CHECK(parse(buf, &r) > 0);
    CHECK_INT(r.method, ms[i].e);
    CHECK(str_is(r.method_str, ms[i].m));
  }
  http_request r;
  CHECK(parse("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", &r) > 0);
  CHECK(str_is(r.path, "*"));
  CHECK(parse("GET http://api.example:80/a/b?q=1 HTTP/1.1\r\nHost: other\r\n\r\n", &r) >
        0);
  CHECK(str_is(r.path, "/a/b"));
  CHECK(str_is(r.query, "q=1"));
  CHECK(str_is(r.host, "api.example:80")); /* RFC 9112 §3.2.2 */
  CHECK(parse("GET HTTPS://h HTTP/1.1\r\nHost: h\r\n\r\n", &r) > 0);
  CHECK(str_is(r.path, "/"));
  CHECK(parse("GET /x HTTP/1.0\r\n\r\n", &r) > 0); /* 1.0 needs no Host */
  CHECK_INT(r.minor_version, 0);
  CHECK(parse("PUT /x HTTP/1.0\r\nExpect: 100-continue\r\n\r\n", &r) > 0);
  CHECK(!r.expect_continue);
}

static void test_post_body(void) {
  const char *s = "POST /v1/msg HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n"
                  "Content-Length: 7\r\nAuthorization: Bearer abc\r\n"
                  "Expect: 100-continue\r\n\r\n{\"a\":1}";
  http_request r;
  int n = parse(s, &r);
  CHECK_INT(n, strlen(s) - 7);
  CHECK_INT(r.method, HTTP_POST);
  CHECK_INT(r.content_length, 7);
  CHECK(str_is(r.content_type, "application/json"));
  CHECK(str_is(r.authorization, "Bearer abc"));
  CHECK(r.expect_continue);
  http_limits l = limits();
  size_t blen, missing;
  CHECK_INT(http_body_need(&r, &l, 7, &blen, &missing), HTTP_BODY_LENGTH);
  CHECK_INT(blen, 7);
  CHECK_INT(missing, 0);
  CHECK_INT(http_body_need(&r, &l, 3, &blen, &missing), HTTP_BODY_LENGTH);
  CHECK_INT(missing, 4);
  CHECK_INT(http_body_need(&r, &l, 100, &blen, &missing), HTTP_BODY_LENGTH);
  CHECK_INT(missing, 0);
  l.max_body = 6;
  CHECK_INT(http_body_need(&r, &l, 7, &blen, &missing), HTTP_E_BODY_TOO_LARGE);
  CHECK_INT(http_error_status(HTTP_E_BODY_TOO_LARGE), 413);
  l.max_body = 7;
  CHECK_INT(http_body_need(&r, &l, 7, &blen, &missing), HTTP_BODY_LENGTH);
  /* Identical duplicates are one length. */
  CHECK(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n"
              "Content-Length: 05\r\n\r\n",
              &r) > 0);
  CHECK_INT(r.content_length, 5);
  CHECK(parse("GET / HTTP/1.1\r\nHost: h\r\n\r\n", &r) > 0);
  CHECK_INT(http_body_need(&r, &l, 9, &blen, &missing), HTTP_BODY_NONE);
  CHECK(parse("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n", &r) >
        0);
  CHECK(r.chunked);
  CHECK_INT(http_body_need(&r, &l, 9, &blen, &missing), HTTP_BODY_CHUNKED);
}

static void test_pipelined(void) {
  const char *s = "\r\nGET /a HTTP/1.1\r\nHost: h\r\n\r\n"
                  "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
                  "PUT /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "3\r\nabc\r\n0\r\n\r\n"
                  "DELETE /d HTTP/1.0\r\n\r\n"
                  "GET /e HTT";
  const char *paths[] = {"/a", "/b", "/c", "/d"};
  const char *bodies[] = {"", "hello", "abc", ""};
  http_limits l = limits();
  size_t off = 0, len = strlen(s);
  for (int i = 0; i < 4; i++) {
    http_request r = {.headers = hdrs};
    int n = http_parse_request(s + off, len - off, &r, &l);
    CHECK(n > 0);
    if (n <= 0) return;
    CHECK(str_is(r.path, paths[i]));
    off += (size_t)n;
    size_t blen, missing;
    int kind = http_body_need(&r, &l, len - off, &blen, &missing);
    char body[16] = {0};
    if (kind == HTTP_BODY_LENGTH) {
      CHECK_INT(missing, 0);
      memcpy(body, s + off, blen);
      off += blen;
    } else if (kind == HTTP_BODY_CHUNKED) {
      http_chunked_decoder d;
      http_chunked_init(&d, &l);
      size_t used, out;
      CHECK_INT(
          http_chunked_decode(&d, s + off, len - off, body, sizeof body - 1, &used, &out),
          HTTP_CHUNKED_DONE);
      off += used;
    }
    CHECK(strcmp(body, bodies[i]) == 0);
  }
  http_request r = {.headers = hdrs};
  CHECK_INT(http_parse_request(s + off, len - off, &r, &l), HTTP_INCOMPLETE);
}

/* Every strict prefix is incomplete, the whole parses, the parser never
 * looks past the head. */
static void check_prefixes(const char *s) {
  http_limits l = limits();
  size_t len = strlen(s);
  char *copy = malloc(len + 1);
  memcpy(copy, s, len + 1);
  http_request r = {.headers = hdrs};
  int full = http_parse_request(copy, len, &r, &l);
  CHECK(full > 0);
  for (size_t i = 0; i < (size_t)full; i++) {
    /* A fresh heap block of exactly i bytes: ASan catches any overread. */
    char *pre = malloc(i ? i : 1);
    memcpy(pre, s, i);
    http_request r2 = {.headers = hdrs};
    int rc = http_parse_request(pre, i, &r2, &l);
    if (rc != HTTP_INCOMPLETE) {
      fprintf(stderr, "  prefix %zu of %s -> %s\n", i, s, http_error_name(rc));
      CHECK_INT(rc, HTTP_INCOMPLETE);
    }
    free(pre);
  }
  char *exact = malloc((size_t)full);
  memcpy(exact, s, (size_t)full);
  CHECK_INT(http_parse_request(exact, (size_t)full, &r, &l), full);
  free(exact);
  free(copy);
}

static void test_incomplete_prefixes(void) {
  check_prefixes("GET /v1/x?a=b HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n");
  check_prefixes("\r\n\r\nPOST / HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc");
  check_prefixes(
      "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
      "Connection: keep-alive, Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
      "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: tessera.v1\r\n\r\n");
  check_prefixes("OPTIONS * HTTP/1.1\r\nHost: h\r\nX:\r\n\r\n");
}

static const struct {
  const char *in;
  int err;
  int status;
} bad[] = {
    {"G(T / HTTP/1.1\r\nHost: h\r\n\r\n", HTTP_E_METHOD, 400},
    {" GET / HTTP/1.1\r\nHost: h\r\n\r\n", HTTP_E_METHOD, 400},
    {"GET  / HTTP/1.1\r\nHost: h\r\n\r\n", HTTP_E_TARGET, 400},
    {"GET /a b HTTP/1.1\r\nHost: h\r\n\r\n", HTTP_E_VERSION, 400},
    {"GET /a#f HTTP/1.1\r\nHost: h\r\n\r\n", HTTP_E_TARGET, 400},
    {"GET /a%zz HTTP/1.1\r\nHost: h\r\n\r\n", HTTP_E_TARGET, 400},
    {"GET /a%4 HTTP/1.1\r\nHost: h\r\n\r\n", HTTP_E_TARGET, 400},
    {"GET a/b HTTP/1.1\r\nHost: h\r\n\r\n", HTTP_E_TARGET, 400},
    {"GET * HTTP/1.1\r\nHost: h\r\n\r\n", HTTP_E_TARGET, 400},
    {"GET ftp://h/ HTTP/1.1\r\nHost: h\r\n\r\n", HTTP_E_TARGET, 400},
    {"GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n", HTTP_E_TARGET, 400},
    {"GET http://u@h/x HTTP/1.1\r\nHost: h\r\n\r\n", HTTP_E_TARGET, 400},
    {"CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\n", HTTP_E_TARGET, 400},
    {"GET /\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n", HTTP_E_TARGET, 400},
    {"GET / http/1.1\r\nHost: h\r\n\r\n", HTTP_E_VERSION, 400},
    {"GET / HTTP/1.10\r\nHost: h\r\n\r\n", HTTP_E_VERSION, 400},
    {"GET / HTTP/11\r\nHost: h\r\n\r\n", HTTP_E_VERSION, 400},
    {"GET / HTTP/1.1 \r\nHost: h\r\n\r\n", HTTP_E_VERSION, 400},
    {"GET /\r\n\r\n", HTTP_E_TARGET, 400},
    {"GET / HTTP/2.0\r\nHost: h\r\n\r\n", HTTP_E_VERSION_UNSUPPORTED, 505},
    {"GET / HTTP/1.2\r\nHost: h\r\n\r\n", HTTP_E_VERSION_UNSUPPORTED, 505},
    {"GET / HTTP/0.9\r\nHost: h\r\n\r\n", HTTP_E_VERSION_UNSUPPORTED, 505},
    {"GET / HTTP/1.1\rHost: h\r\n\r\n", HTTP_E_BARE_CR, 400},
    {"GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n", HTTP_E_BARE_CR, 400},
    {"GET / HTTP/1.1\r\nHost: h\r\n\rx", HTTP_E_BARE_CR, 400},
    {"\rGET / HTTP/1.1\r\nHost: h\r\n\r\n", HTTP_E_BARE_CR, 400},
    {"GET / HTTP/1.1\nHost: h\r\n\r\n", HTTP_E_BARE_LF, 400},
    {"GET / HTTP/1.1\r\nHost: h\n\r\n", HTTP_E_BARE_LF, 400},
    {"GET / HTTP/1.1\r\nHost: h\r\n\n", HTTP_E_BARE_LF, 400},
    {"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", HTTP_E_OBS_FOLD, 400},
    {"GET / HTTP/1.1\r\n\tHost: h\r\n\r\n", HTTP_E_OBS_FOLD, 400},
    {"GET / HTTP/1.1\r\nHost: h\r\nX(y): z\r\n\r\n", HTTP_E_HEADER_NAME, 400},
    {"GET / HTTP/1.1\r\nHost: h\r\n: z\r\n\r\n", HTTP_E_HEADER_NAME, 400},
    {"GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n", HTTP_E_HEADER_NAME, 400},
    {"GET / HTTP/1.1\r\nHost: h\r\nX\xff: z\r\n\r\n", HTTP_E_HEADER_NAME, 400},
    {"GET / HTTP/1.1\r\nHost: h\r\nX: a\x01z\r\n\r\n", HTTP_E_HEADER_VALUE, 400},
    {"GET / HTTP/1.1\r\nHost: h\r\nX: a\x7fz\r\n\r\n", HTTP_E_HEADER_VALUE, 400},
    {"GET / HTTP/1.1\r\nHost : h\r\n\r\n", HTTP_E_SPACE_BEFORE_COLON, 400},
    {"GET / HTTP/1.1\r\nHost\t: h\r\n\r\n", HTTP_E_SPACE_BEFORE_COLON, 400},
    {"GET / HTTP/1.1\r\nX: y\r\n\r\n", HTTP_E_HOST, 400},
    {"GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", HTTP_E_HOST, 400},
    {"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", HTTP_E_HOST, 400},
    {"GET / HTTP/1.1\r\nHost: h\r\nContent-Type: a\r\ncontent-type: b\r\n\r\n",
     HTTP_E_DUP_HEADER, 400},
    {"GET / HTTP/1.1\r\nHost: h\r\nAuthorization: a\r\nAuthorization: a\r\n\r\n",
     HTTP_E_DUP_HEADER, 400},
    {"GET / HTTP/1.1\r\nHost: h\r\nSec-WebSocket-Key: a\r\nSec-WebSocket-Key: b\r\n\r\n",
     HTTP_E_DUP_HEADER, 400},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
     HTTP_E_CL_CONFLICT, 400},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1, 2\r\n\r\n", HTTP_E_CL_CONFLICT,
     400},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", HTTP_E_CONTENT_LENGTH,
     400},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +1\r\n\r\n", HTTP_E_CONTENT_LENGTH,
     400},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1a\r\n\r\n", HTTP_E_CONTENT_LENGTH,
     400},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1 2\r\n\r\n", HTTP_E_CONTENT_LENGTH,
     400},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n", HTTP_E_CONTENT_LENGTH, 400},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1,\r\n\r\n", HTTP_E_CONTENT_LENGTH,
     400},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x10\r\n\r\n", HTTP_E_CONTENT_LENGTH,
     400},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9223372036854775808\r\n\r\n",
     HTTP_E_CONTENT_LENGTH, 400},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n",
     HTTP_E_CONTENT_LENGTH, 400},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
     "Transfer-Encoding: chunked\r\n\r\n",
     HTTP_E_TE_AND_CL, 400},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
     "Content-Length: 3\r\n\r\n",
     HTTP_E_TE_AND_CL, 400},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n",
     HTTP_E_TE_UNSUPPORTED, 501},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
     HTTP_E_TE_UNSUPPORTED, 501},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
     HTTP_E_TE_INVALID, 400},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
     "Transfer-Encoding: chunked\r\n\r\n",
     HTTP_E_TE_INVALID, 400},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: ,\r\n\r\n", HTTP_E_TE_INVALID,
     400},
    {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP_E_TE_INVALID, 400},
    {"POST / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\n\r\n", HTTP_E_EXPECTATION, 417},
};

static void test_errors(void) {
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    http_limits l = limits();
    http_request r = {.headers = hdrs, .content_length = 12345};
    int rc = http_parse_request(bad[i].in, strlen(bad[i].in), &r, &l);
    if (rc != bad[i].err) fprintf(stderr, "  case %zu: %s\n", i, bad[i].in);
    CHECK_INT(rc, bad[i].err);
    CHECK_INT(http_error_status(rc), bad[i].status);
    CHECK_INT(r.content_length, 12345); /* untouched on failure */
    CHECK(r.headers == hdrs);
    CHECK(strncmp(http_error_name(rc), "HTTP_E_", 7) == 0);
  }
}

static void test_error_names(void) {
  CHECK(strcmp(http_error_name(HTTP_E_BARE_CR), "HTTP_E_BARE_CR") == 0);
  CHECK(strcmp(http_error_name(HTTP_INCOMPLETE), "HTTP_INCOMPLETE") == 0);
  CHECK(strcmp(http_error_name(-1000), "HTTP_E_UNKNOWN") == 0);
  CHECK_INT(http_error_status(HTTP_INCOMPLETE), 0);
  CHECK_INT(http_error_status(-1000), 500);
  for (int e = HTTP_E_METHOD; e >= HTTP_E_INVALID_ARG; e--) {
    CHECK(strcmp(http_error_name(e), "HTTP_E_UNKNOWN") != 0);
    CHECK(http_error_status(e) >= 400);
  }
  http_request r;
  http_limits l = limits();
  CHECK_INT(http_parse_request(NULL, 1, &r, &l), HTTP_E_INVALID_ARG);
  CHECK_INT(http_parse_request("x", 1, NULL, &l), HTTP_E_INVALID_ARG);
  CHECK_INT(http_parse_request(NULL, 0, &r, &l), HTTP_INCOMPLETE);
}

static void test_limits(void) {
  const char *base = "GET / HTTP/1.1\r\nHost: h\r\n\r\n"; /* 27 bytes */
  size_t blen = strlen(base);
  http_limits l = limits();
  http_request r = {.headers = hdrs};
  l.max_header_bytes = blen;
  CHECK_INT(http_parse_request(base, blen, &r, &l), (int)blen);
  l.max_header_bytes = blen - 1;
  CHECK_INT(http_parse_request(base, blen, &r, &l), HTTP_E_HEADERS_TOO_LARGE);
  CHECK_INT(http_error_status(HTTP_E_HEADERS_TOO_LARGE), 431);
  /* A shorter buffer within the limit is just incomplete. */
  CHECK_INT(http_parse_request(base, blen - 2, &r, &l), HTTP_INCOMPLETE);
  /* Reaching the limit without the end of the head: 431 without waiting. */
  CHECK_INT(http_parse_request(base, blen - 1, &r, &l), HTTP_E_HEADERS_TOO_LARGE);

  /* Field count: max_headers fields pass, one more is 431. */
  char buf[1024];
  l = limits();
  l.max_headers = 3;
  snprintf(buf, sizeof buf, "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n");
  CHECK(http_parse_request(buf, strlen(buf), &r, &l) > 0);
  CHECK_INT(r.num_headers, 3);
  snprintf(buf, sizeof buf, "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n");
  CHECK_INT(http_parse_request(buf, strlen(buf), &r, &l), HTTP_E_TOO_MANY_HEADERS);
  CHECK_INT(http_error_status(HTTP_E_TOO_MANY_HEADERS), 431);
  l.max_headers = 0;
  CHECK_INT(http_parse_request(base, blen, &r, &l), HTTP_E_TOO_MANY_HEADERS);

  /* Target length: 414, even before the line is complete. */
  l = limits();
  l.max_target = 4;
  CHECK(http_parse_request("GET /abc HTTP/1.1\r\nHost: h\r\n\r\n", 30, &r, &l) > 0);
  CHECK_INT(http_parse_request("GET /abcd HTTP/1.1\r\nHost: h\r\n\r\n", 31, &r, &l),
            HTTP_E_URI_TOO_LONG);
  CHECK_INT(http_parse_request("GET /abcd", 9, &r, &l), HTTP_E_URI_TOO_LONG);
  CHECK_INT(http_error_status(HTTP_E_URI_TOO_LONG), 414);
  /* The head limit cut inside the target: the target is what is too long. */
  l = limits();
  l.max_header_bytes = 10;
  CHECK_INT(http_parse_request("GET /abcdefghij", 15, &r, &l), HTTP_E_URI_TOO_LONG);

  /* A big head within a big limit. */
  static char big[8192];
  size_t n = (size_t)snprintf(big, sizeof big, "GET / HTTP/1.1\r\nHost: h\r\nX: ");
  memset(big + n, 'v', 8000 - n);
  memcpy(big + 8000, "\r\n\r\n", 4);
  l = limits();
  CHECK_INT(http_parse_request(big, 8004, &r, &l), 8004);
  l.max_header_bytes = 8003;
  CHECK_INT(http_parse_request(big, 8004, &r, &l), HTTP_E_HEADERS_TOO_LARGE);
}

static void test_keep_alive(void) {
  static const struct {
    const char *head;
    bool ka;
  } cases[] = {
      {"GET / HTTP/1.1\r\nHost: h\r\n\r\n", true},
      {"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", false},
      {"GET / HTTP/1.1\r\nHost: h\r\nConnection: Keep-Alive, CLOSE\r\n\r\n", false},
      {"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n", true},
      {"GET / HTTP/1.1\r\nHost: h\r\nConnection: closed\r\n\r\n", true},
      {"GET / HTTP/1.0\r\n\r\n", false},
      {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true},
      {"GET / HTTP/1.0\r\nConnection: foo,  Keep-Alive ,bar\r\n\r\n", true},
      {"GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n", false},
      {"GET / HTTP/1.0\r\nConnection: keep-alives\r\n\r\n", false},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    http_request r;
    CHECK(parse(cases[i].head, &r) > 0);
    if (r.keep_alive != cases[i].ka) fprintf(stderr, "  case %zu\n", i);
    CHECK(r.keep_alive == cases[i].ka);
  }
}

static void test_websocket(void) {
  static const struct {
    const char *fields;
    bool ws;
  } cases[] = {
      {"Upgrade: websocket\r\nConnection: Upgrade\r\n", true},
      {"Upgrade: WebSocket\r\nConnection: keep-alive, upgrade\r\n", true},
      {"Upgrade: h2c, websocket\r\nConnection: close\r\nConnection: Upgrade\r\n", true},
      {"Upgrade: websocket\r\n", false},
      {"Connection: upgrade\r\n", false},
      {"Upgrade: websockets\r\nConnection: upgrade\r\n", false},
      {"Upgrade: websocket\r\nConnection: upgrades\r\n", false},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char buf[512];
    snprintf(buf, sizeof buf,
             "GET /v1/ws HTTP/1.1\r\nHost: h\r\n%s"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
             "Sec-WebSocket-Version: 13\r\n"
             "Sec-WebSocket-Protocol: tessera.v1, x\r\n"
             "Sec-WebSocket-Protocol: second\r\n\r\n",
             cases[i].fields);
    http_request r;
    CHECK(parse(buf, &r) > 0);
    if (r.upgrade_websocket != cases[i].ws) fprintf(stderr, "  case %zu\n", i);
    CHECK(r.upgrade_websocket == cases[i].ws);
    CHECK(str_is(r.ws_key, "dGhlIHNhbXBsZSBub25jZQ=="));
    CHECK(str_is(r.ws_version, "13"));
    CHECK(str_is(r.ws_protocol, "tessera.v1, x"));
    CHECK(http_list_has_token(r.ws_protocol, "TESSERA.V1"));
    CHECK(!http_list_has_token(r.ws_protocol, "tessera"));
  }
  CHECK(http_list_has_token(HTTP_STR(" , a ,, b\t"), "b"));
  CHECK(!http_list_has_token(HTTP_STR(""), ""));
  CHECK(!http_list_has_token(HTTP_STR_NONE, "a"));
}

/* ---- chunked ---- */

typedef struct {
  int rc;
  size_t used; /* input consumed in total */
  size_t out;
  char body[256];
} chunk_result;

/* Decodes s in pieces of `step` bytes (0: all at once, in place). */
static chunk_result decode(const char *s, size_t len, size_t step, const http_limits *l) {
  chunk_result res = {0};
  http_chunked_decoder d;
  http_chunked_init(&d, l);
  if (step == 0) {
    char *copy = malloc(len + 1);
    memcpy(copy, s, len);
    size_t used, out;
    res.rc = http_chunked_decode(&d, copy, len, copy, len, &used, &out);
    res.used = used;
    res.out = out;
    if (out < sizeof res.body) memcpy(res.body, copy, out);
    free(copy);
    return res;
  }
  size_t off = 0;
  for (;;) {
    size_t n = len - off < step ? len - off : step;
    /* Output space of one byte at a time too, to exercise "out is full". */
    size_t used, out;
    char tmp[64];
    size_t cap = step < sizeof tmp ? step : sizeof tmp;
    res.rc = http_chunked_decode(&d, s + off, n, tmp, cap, &used, &out);
    if (res.out + out < sizeof res.body) memcpy(res.body + res.out, tmp, out);
    res.out += out;
    off += used;
    res.used = off;
    if (res.rc != HTTP_CHUNKED_MORE) break;
    if (off == len) break;
  }
  return res;
}

static void check_chunked_splits(const char *s, int want_rc, const char *want_body) {
  http_limits l = limits();
  size_t len = strlen(s);
  chunk_result all = decode(s, len, 0, &l);
  CHECK_INT(all.rc, want_rc);
  if (want_body) {
    CHECK_INT(all.out, strlen(want_body));
    CHECK(memcmp(all.body, want_body, all.out) == 0);
  }
  for (size_t step = 1; step <= len; step++) {
    chunk_result part = decode(s, len, step, &l);
    if (part.rc != all.rc || part.out != all.out || part.used != all.used ||
        memcmp(part.body, all.body, all.out) != 0) {
      fprintf(stderr, "  split %zu of %s differs (%d vs %d)\n", step, s, part.rc, all.rc);
      CHECK(0);
      return;
    }
  }
  /* Every split into two calls, the second starting where the first stopped. */
  for (size_t cut = 0; cut <= len; cut++) {
    http_chunked_decoder d;
    http_chunked_init(&d, &l);
    char out[256];
    size_t u1, o1, u2, o2;
    int rc = http_chunked_decode(&d, s, cut, out, sizeof out, &u1, &o1);
    if (rc == HTTP_CHUNKED_MORE) {
      CHECK_INT(u1, cut);
      rc = http_chunked_decode(&d, s + u1, len - u1, out + o1, sizeof out - o1, &u2, &o2);
      u1 += u2;
      o1 += o2;
    }
    CHECK_INT(rc, all.rc);
    CHECK_INT(o1, all.out);
    if (rc == HTTP_CHUNKED_DONE) CHECK_INT(u1, all.used);
    CHECK(memcmp(out, all.body, o1) == 0);
  }
}

static void test_chunked(void) {
  check_chunked_splits("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", HTTP_CHUNKED_DONE,
                       "hello world");
  check_chunked_splits("A;name=val;q=\"x y\"\r\n0123456789\r\n"
                       "1 ; ext\r\n!\r\n000\r\nTrailer-A: 1\r\nB:\r\n\r\nNEXT",
                       HTTP_CHUNKED_DONE, "0123456789!");
  check_chunked_splits("0\r\n\r\n", HTTP_CHUNKED_DONE, "");
  check_chunked_splits("1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n", HTTP_CHUNKED_DONE,
                       "abcdefghijklmnopqrstuvwxyz");
  check_chunked_splits("5\r\nhel", HTTP_CHUNKED_MORE, "hel");

  /* Bytes after the body are left for the next request. */
  http_limits l = limits();
  const char *s = "2\r\nok\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
  chunk_result r = decode(s, strlen(s), 0, &l);
  CHECK_INT(r.rc, HTTP_CHUNKED_DONE);
  CHECK_INT(r.used, strlen("2\r\nok\r\n0\r\n\r\n"));
  /* After DONE nothing more is consumed. */
  http_chunked_decoder d;
  http_chunked_init(&d, &l);
  size_t used, out;
  char buf[8];
  CHECK_INT(http_chunked_decode(&d, "0\r\n\r\n", 5, buf, sizeof buf, &used, &out),
            HTTP_CHUNKED_DONE);
  CHECK_INT(http_chunked_decode(&d, "abc", 3, buf, sizeof buf, &used, &out),
            HTTP_CHUNKED_DONE);
  CHECK_INT(used, 0);
  /* A full output buffer stops decoding without error. */
  http_chunked_init(&d, &l);
  CHECK_INT(http_chunked_decode(&d, "5\r\nhello\r\n0\r\n\r\n", 15, buf, 2, &used, &out),
            HTTP_CHUNKED_MORE);
  CHECK_INT(out, 2);
  CHECK_INT(used, 5);
}

static void test_chunked_errors(void) {
  static const struct {
    const char *in;
    int err;
  } cases[] = {
      {"\r\n", HTTP_E_CHUNK_SIZE},
      {"g\r\n", HTTP_E_CHUNK_SIZE},
      {"-1\r\n", HTTP_E_CHUNK_SIZE},
      {"0x5\r\n", HTTP_E_CHUNK_SIZE},
      {" 5\r\nhello\r\n", HTTP_E_CHUNK_SIZE},
      {"5\nhello\r\n", HTTP_E_CHUNK_FORMAT},
      {"5\rhello\r\n", HTTP_E_CHUNK_FORMAT},
      {"5 \r\nhello\r\n", HTTP_E_CHUNK_FORMAT},
      {"5;a\x01\r\nhello\r\n", HTTP_E_CHUNK_FORMAT},
      {"5\r\nhelloX\r\n", HTTP_E_CHUNK_FORMAT},
      {"5\r\nhello\rX", HTTP_E_CHUNK_FORMAT},
      {"5\r\nhello\n", HTTP_E_CHUNK_FORMAT},
      {"0\r\n\n", HTTP_E_CHUNK_FORMAT},
      {"0\r\n\rX", HTTP_E_CHUNK_FORMAT},
      {"0\r\n folded: x\r\n\r\n", HTTP_E_CHUNK_FORMAT},
      {"0\r\nBad Name: x\r\n\r\n", HTTP_E_CHUNK_FORMAT},
      {"0\r\nX: a\x7f\r\n\r\n", HTTP_E_CHUNK_FORMAT},
      {"0\r\nX: a\n\r\n", HTTP_E_CHUNK_FORMAT},
      {"0\r\nX\r\n\r\n", HTTP_E_CHUNK_FORMAT},
      {"100001\r\n", HTTP_E_BODY_TOO_LARGE}, /* 1 MiB + 1 */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    http_limits l = limits();
    size_t len = strlen(cases[i].in);
    chunk_result all = decode(cases[i].in, len, 0, &l);
    chunk_result one = decode(cases[i].in, len, 1, &l);
    if (all.rc != cases[i].err) fprintf(stderr, "  case %zu\n", i);
    CHECK_INT(all.rc, cases[i].err);
    CHECK_INT(one.rc, cases[i].err);
  }
  /* max_body counts the sum of the chunks. */
  http_limits l = limits();
  l.max_body = 5;
  CHECK_INT(decode("5\r\nhello\r\n0\r\n\r\n", 15, 0, &l).rc, HTTP_CHUNKED_DONE);
  CHECK_INT(decode("3\r\nhel\r\n3\r\nlo!\r\n0\r\n\r\n", 21, 1, &l).rc,
            HTTP_E_BODY_TOO_LARGE);
  CHECK_INT(http_error_status(HTTP_E_BODY_TOO_LARGE), 413);
  /* Overflow of the size itself, with no body limit in the way. */
  l.max_body = SIZE_MAX;
  const char *of = "10000000000000000\r\n"; /* 2^64 */
  CHECK_INT(decode(of, strlen(of), 0, &l).rc, HTTP_E_CHUNK_SIZE);
  const char *okbig = "00000000000000000000ffffffffffffffff\r\n"; /* 2^64 - 1 */
  CHECK_INT(decode(okbig, strlen(okbig), 0, &l).rc, HTTP_CHUNKED_MORE);
  /* Extension bytes are bounded. */
  static char ext[HTTP_CHUNK_LINE_MAX + 8];
  memset(ext, 'a', sizeof ext - 1);
  ext[0] = '1';
  ext[1] = ';';
  l = limits();
  CHECK_INT(decode(ext, sizeof ext - 1, 0, &l).rc, HTTP_E_CHUNK_FORMAT);
  /* So are trailers: by max_header_bytes. */
  l.max_header_bytes = 10;
  const char *tr = "0\r\nX-Long-Trailer: 1\r\n\r\n";
  CHECK_INT(decode(tr, strlen(tr), 0, &l).rc, HTTP_E_HEADERS_TOO_LARGE);
  /* Errors are sticky. */
  http_chunked_decoder d;
  http_chunked_init(&d, &l);
  size_t used, out;
  char buf[8];
  CHECK_INT(http_chunked_decode(&d, "z", 1, buf, sizeof buf, &used, &out),
            HTTP_E_CHUNK_SIZE);
  CHECK_INT(http_chunked_decode(&d, "0\r\n\r\n", 5, buf, sizeof buf, &used, &out),
            HTTP_E_CHUNK_SIZE);
}

/* ---- percent-decoding ---- */

static void test_pct(void) {
  char out[32];
  size_t n;
  CHECK_OK(http_pct_decode(HTTP_STR("a%20b%2Fc+d%c3%A9"), false, out, sizeof out, &n));
  CHECK_INT(n, 9);
  CHECK(strcmp(out, "a b/c+d\xc3\xa9") == 0);
  CHECK_OK(http_pct_decode(HTTP_STR("a+b"), true, out, sizeof out, &n));
  CHECK(strcmp(out, "a b") == 0);
  CHECK_OK(http_pct_decode(HTTP_STR(""), true, out, 1, &n));
  CHECK_INT(n, 0);
  CHECK(out[0] == '\0');
  const char *badv[] = {"%", "%2", "a%g0", "%0g", "%00", "x%00y", "%%41"};
  for (size_t i = 0; i < sizeof badv / sizeof badv[0]; i++)
    CHECK_INT(
        http_pct_decode((http_str){badv[i], strlen(badv[i])}, false, out, sizeof out, &n),
        HTTP_E_ESCAPE);
  CHECK_INT(http_pct_decode((http_str){"a\0b", 3}, false, out, sizeof out, &n),
            HTTP_E_ESCAPE);
  CHECK_INT(http_pct_decode(HTTP_STR("abcd"), false, out, 4, &n), HTTP_E_NOSPACE);
  CHECK_OK(http_pct_decode(HTTP_STR("abcd"), false, out, 5, &n));
  CHECK_INT(http_pct_decode(HTTP_STR(""), false, out, 0, &n), HTTP_E_NOSPACE);
  CHECK_INT(http_error_status(HTTP_E_ESCAPE), 400);

  /* Path segments: %2F stays inside its segment. */
  http_str rest = HTTP_STR("/v1/users/a%2Fb//x"), seg;
  const char *want[] = {"v1", "users", "a/b", "", "x"};
  size_t k = 0;
  while (http_path_next(&rest, &seg)) {
    CHECK(k < 5);
    if (k >= 5) break;
    CHECK_OK(http_pct_decode(seg, false, out, sizeof out, &n));
    CHECK(strcmp(out, want[k]) == 0);
    k++;
  }
  CHECK_INT(k, 5);
  rest = HTTP_STR("/");
  CHECK(http_path_next(&rest, &seg));
  CHECK_INT(seg.len, 0);
  CHECK(!http_path_next(&rest, &seg));
}

static void test_query(void) {
  http_str q = HTTP_STR("a=1&b=x+y%21&flag&c=&a=2&%6Eame=enc&bad=%zz&nul=%00&e=%3D");
  char out[16];
  size_t n;
  CHECK_INT(http_query_get(q, "a", out, sizeof out, &n), 1);
  CHECK(strcmp(out, "1") == 0);
  CHECK_INT(http_query_get(q, "b", out, sizeof out, &n), 1);
  CHECK(strcmp(out, "x y!") == 0);
  CHECK_INT(n, 4);
  CHECK_INT(http_query_get(q, "flag", out, sizeof out, &n), 1);
  CHECK_INT(n, 0);
  CHECK_INT(http_query_get(q, "c", out, sizeof out, &n), 1);
  CHECK_INT(n, 0);
  CHECK_INT(http_query_get(q, "name", out, sizeof out, &n), 1);
  CHECK(strcmp(out, "enc") == 0);
  CHECK_INT(http_query_get(q, "bad", out, sizeof out, &n), HTTP_E_ESCAPE);
  CHECK_INT(http_query_get(q, "nul", out, sizeof out, &n), HTTP_E_ESCAPE);
  CHECK_INT(http_query_get(q, "e", out, sizeof out, &n), 1);
  CHECK(strcmp(out, "=") == 0);
  CHECK_INT(http_query_get(q, "missing", out, sizeof out, &n), 0);
  CHECK_INT(http_query_get(q, "fla", out, sizeof out, &n), 0);
  CHECK_INT(http_query_get(q, "b", out, 4, &n), HTTP_E_NOSPACE);
  CHECK_INT(http_query_get(HTTP_STR_NONE, "a", out, sizeof out, &n), 0);
  CHECK_INT(http_query_get(HTTP_STR("&&a"), "a", out, sizeof out, &n), 1);
  CHECK_INT(http_query_get(q, "", out, sizeof out, &n), HTTP_E_INVALID_ARG);
  CHECK_INT(http_query_get(HTTP_STR("k%0=1&a=2"), "a", out, sizeof out, &n),
            HTTP_E_ESCAPE);
  /* From a parsed request. */
  http_request r;
  CHECK(parse("GET /s?q=hello%20world&n=5 HTTP/1.1\r\nHost: h\r\n\r\n", &r) > 0);
  CHECK_INT(http_query_get(r.query, "q", out, sizeof out, &n), 1);
  CHECK(strcmp(out, "hello world") == 0);
}

/* ---- responses ---- */

static void test_response_head(void) {
  buf_t b;
  buf_init(&b);
  const http_header h[] = {HTTP_HEADER("Content-Type", "application/json"),
                           HTTP_HEADER("X-Empty", "")};
  CHECK_OK(http_write_response_head(&b, 200, NULL, h, 2, 17, true));
  const char *want = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Empty: \r\n"
                     "Content-Length: 17\r\n\r\n";
  CHECK_BYTES(buf_view(&b), BYTES(want, strlen(want)));
  buf_reset(&b);
  CHECK_OK(http_write_response_head(&b, 404, NULL, NULL, 0, 0, false));
  want = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
  CHECK_BYTES(buf_view(&b), BYTES(want, strlen(want)));
  buf_reset(&b);
  const http_header ws[] = {HTTP_HEADER("Upgrade", "websocket"),
                            HTTP_HEADER("Connection", "Upgrade")};
  CHECK_OK(http_write_response_head(&b, 101, NULL, ws, 2, -1, true));
  want =
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "\r\n";
  CHECK_BYTES(buf_view(&b), BYTES(want, strlen(want)));
  buf_reset(&b);
  CHECK_OK(http_write_response_head(&b, 299, NULL, NULL, 0, -1, true));
  want = "HTTP/1.1 299 \r\n\r\n";
  CHECK_BYTES(buf_view(&b), BYTES(want, strlen(want)));
  buf_reset(&b);
  CHECK_OK(http_write_response_head(&b, 200, "Fine", NULL, 0, 2, true));
  want = "HTTP/1.1 200 Fine\r\nContent-Length: 2\r\n\r\n";
  CHECK_BYTES(buf_view(&b), BYTES(want, strlen(want)));

  /* Rejected without changing the buffer. */
  size_t before = b.len;
  const http_header split[] = {HTTP_HEADER("X", "a\r\nSet-Cookie: x")};
  const http_header badname[] = {HTTP_HEADER("X Y", "a")};
  const http_header empty[] = {HTTP_HEADER("", "a")};
  CHECK_ERR(http_write_response_head(&b, 200, NULL, split, 1, 0, true), TSR_EINVAL);
  CHECK_ERR(http_write_response_head(&b, 200, NULL, badname, 1, 0, true), TSR_EINVAL);
  CHECK_ERR(http_write_response_head(&b, 200, NULL, empty, 1, 0, true), TSR_EINVAL);
  CHECK_ERR(http_write_response_head(&b, 200, "OK\r\nX: y", NULL, 0, 0, true),
            TSR_EINVAL);
  CHECK_ERR(http_write_response_head(&b, 99, NULL, NULL, 0, 0, true), TSR_EINVAL);
  CHECK_ERR(http_write_response_head(&b, 1000, NULL, NULL, 0, 0, true), TSR_EINVAL);
  CHECK_ERR(http_write_response_head(&b, 204, NULL, NULL, 0, 0, true), TSR_EINVAL);
  CHECK_ERR(http_write_response_head(&b, 101, NULL, NULL, 0, 0, true), TSR_EINVAL);
  CHECK_INT(b.len, before);
  buf_free(&b);

  CHECK(strcmp(http_status_reason(431), "Request Header Fields Too Large") == 0);
  CHECK(strcmp(http_status_reason(413), "Content Too Large") == 0);
  CHECK(strcmp(http_status_reason(777), "") == 0);
  /* Every status the parser can ask for has a phrase. */
  for (int e = HTTP_E_METHOD; e >= HTTP_E_INVALID_ARG; e--)
    CHECK(http_status_reason(http_error_status(e))[0] != '\0');
}

int main(void) {
  RUN(test_get);
  RUN(test_methods_and_forms);
  RUN(test_post_body);
  RUN(test_pipelined);
  RUN(test_incomplete_prefixes);
  RUN(test_errors);
  RUN(test_error_names);
  RUN(test_limits);
  RUN(test_keep_alive);
  RUN(test_websocket);
  RUN(test_chunked);
  RUN(test_chunked_errors);
  RUN(test_pct);
  RUN(test_query);
  RUN(test_response_head);
  return test_report("http");
}
