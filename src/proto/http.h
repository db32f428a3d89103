/* HTTP/1.1 request parsing and response heads (RFC 9112, server side).
 *
 * Parsing is a pure function in the picohttpparser habit: no callbacks, no
 * allocation, no state kept between calls. The caller buffers what it has
 * read and calls http_parse_request again when more arrives; "need more
 * bytes" is the return value HTTP_INCOMPLETE. Each call costs O(len).
 *
 * Ownership: every http_str in a parsed request points into the caller's
 * input buffer (or, for a few documented cases, into static storage) and
 * is valid exactly as long as that buffer is unchanged. Nothing here frees
 * anything; http_write_response_head appends to a caller-owned buf_t.
 *
 * Threads: every function is reentrant and touches only its arguments, so
 * any number of threads may parse at once on distinct buffers. A
 * http_chunked_decoder belongs to one connection and must not be shared
 * without the caller's own locking.
 *
 * Errors: functions of the parser family return a negative enum http_error
 * identifying the status the server should answer (http_error_status) and
 * a stable name for logs (http_error_name). After any error other than
 * HTTP_INCOMPLETE the connection's framing is unknown: answer and close. */
#ifndef TSR_PROTO_HTTP_H
#define TSR_PROTO_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/bytes.h"

/* A view of characters: never owns them, never NUL-terminated. ptr is NULL
 * only for an absent optional field; a present empty field has ptr != NULL
 * and len == 0. */
typedef struct {
  const char *ptr;
  size_t len;
} http_str;

#define HTTP_STR(lit) ((http_str){(lit), sizeof(lit) - 1})
#define HTTP_STR_NONE ((http_str){NULL, 0})

/* Negative results. Values and names are stable (they appear in logs). */
enum http_error {
  HTTP_INCOMPLETE = -1,             /* need more bytes (not an error) */
  HTTP_E_METHOD = -2,               /* 400: method is not a token */
  HTTP_E_TARGET = -3,               /* 400: request-target malformed */
  HTTP_E_VERSION = -4,              /* 400: HTTP-version malformed */
  HTTP_E_BARE_CR = -5,              /* 400: CR not followed by LF */
  HTTP_E_BARE_LF = -6,              /* 400: LF not preceded by CR */
  HTTP_E_OBS_FOLD = -7,             /* 400: line folding or leading space */
  HTTP_E_HEADER_NAME = -8,          /* 400: field name empty or not a token */
  HTTP_E_HEADER_VALUE = -9,         /* 400: control character in a value */
  HTTP_E_SPACE_BEFORE_COLON = -10,  /* 400: whitespace between name and ':' */
  HTTP_E_HOST = -11,                /* 400: Host missing (1.1), repeated or bad */
  HTTP_E_DUP_HEADER = -12,          /* 400: a single-valued field repeated */
  HTTP_E_CONTENT_LENGTH = -13,      /* 400: Content-Length not 1*DIGIT or too big */
  HTTP_E_CL_CONFLICT = -14,         /* 400: Content-Length values differ */
  HTTP_E_TE_AND_CL = -15,           /* 400: both Transfer-Encoding and C-L */
  HTTP_E_TE_INVALID = -16,          /* 400: chunked not last, twice, or in 1.0 */
  HTTP_E_HEADERS_TOO_LARGE = -17,   /* 431: section > max_header_bytes */
  HTTP_E_TOO_MANY_HEADERS = -18,    /* 431: more than max_headers fields */
  HTTP_E_URI_TOO_LONG = -19,        /* 414: request-target > max_target */
  HTTP_E_VERSION_UNSUPPORTED = -20, /* 505: not HTTP/1.0 or HTTP/1.1 */
  HTTP_E_TE_UNSUPPORTED = -21,      /* 501: a transfer coding other than chunked */
  HTTP_E_EXPECTATION = -22,         /* 417: Expect other than 100-continue */
  HTTP_E_BODY_TOO_LARGE = -23,      /* 413: body > max_body */
  HTTP_E_CHUNK_SIZE = -24,          /* 400: chunk size not hex or overflows */
  HTTP_E_CHUNK_FORMAT = -25,        /* 400: bad chunk framing, ext or trailer */
  HTTP_E_ESCAPE = -26,              /* 400: invalid %-escape or %00 */
  HTTP_E_NOSPACE = -27,             /* 414: decoded value exceeds caller buffer */
  HTTP_E_INVALID_ARG = -28,         /* 500: caller passed NULL or bad arguments */
};

/* Status code to answer for an error (400, 413, 414, 417, 431, 500, 501,
 * 505), or 0 for HTTP_INCOMPLETE and non-negative values. Unknown negative
 * values give 500. */
int http_error_status(int err);
/* Stable symbolic name, e.g. "HTTP_E_BARE_CR". Never NULL; static storage. */
const char *http_error_name(int err);

/* Limits, usually one const instance per server. Every size is bounded by
 * one of these; a zero limit rejects everything it bounds. */
typedef struct {
  size_t max_header_bytes; /* request line + fields + final CRLF (431); also
                              the bound on a chunked trailer section */
  size_t max_headers;      /* field lines; capacity of req->headers (431) */
  size_t max_target;       /* request-target bytes (414) */
  size_t max_body;         /* Content-Length or decoded chunked total (413) */
} http_limits;

#define HTTP_LIMITS_DEFAULT ((http_limits){8192, 64, 4096, 1024 * 1024})

typedef enum {
  HTTP_METHOD_OTHER = 0, /* any other token: see req->method_str (501) */
  HTTP_GET,
  HTTP_HEAD,
  HTTP_POST,
  HTTP_PUT,
  HTTP_PATCH,
  HTTP_DELETE,
  HTTP_OPTIONS,
} http_method;

typedef struct {
  http_str name;  /* a token, original case */
  http_str value; /* leading and trailing OWS removed */
} http_header;

#define HTTP_HEADER(n, v) ((http_header){HTTP_STR(n), HTTP_STR(v)})

/* A parsed request head. Written by http_parse_request only on success;
 * except for `headers` (set by the caller), every field is an output.
 * Views point into the parsed buffer unless said otherwise. */
typedef struct {
  http_method method;
  http_str method_str; /* the raw token, case-sensitive (RFC 9110 §9.1) */
  http_str target;     /* request-target as received */
  http_str path;       /* still %-encoded; "*" for OPTIONS *; for absolute-form
                          the path after the authority, or a static "/" */
  http_str query;      /* after the first '?', still encoded; ptr NULL if none */
  int minor_version;   /* 0 or 1 */

  /* Caller-provided array of lim->max_headers entries, or NULL to validate
   * and extract semantics without keeping the field list. */
  http_header *headers;
  size_t num_headers;

  /* Semantics extracted from the fields. */
  int64_t content_length; /* -1 when absent */
  bool chunked;           /* Transfer-Encoding: chunked */
  bool keep_alive;        /* 1.1: unless "close"; 1.0: only with "keep-alive" */
  bool upgrade_websocket; /* Upgrade has "websocket" and Connection "upgrade";
                             GET, version and key are the WebSocket module's */
  bool expect_continue;   /* Expect: 100-continue (ignored in 1.0) */
  http_str host;          /* Host value, or the authority of absolute-form */
  http_str content_type;  /* ptr NULL when absent (same for the views below) */
  http_str authorization;
  http_str ws_key;      /* Sec-WebSocket-Key */
  http_str ws_version;  /* Sec-WebSocket-Version */
  http_str ws_protocol; /* first Sec-WebSocket-Protocol line */
} http_request;

/* Parses one request head at the start of buf.
 *
 * Before the call set req->headers (or leave it NULL). Returns the length
 * of the head including the final CRLF CRLF (> 0): the body, if any, and
 * then the next pipelined request start at buf + result. Bytes past the
 * head are never read. Returns HTTP_INCOMPLETE when buf is a valid prefix
 * shorter than lim->max_header_bytes, or a negative http_error as soon as
 * the bytes seen are invalid. Empty lines before the request line are
 * skipped (RFC 9112 §2.2) and counted in the result and the limit. CRLF is required
 * everywhere; bare CR and bare LF are rejected. req is changed only on success, but the
 * array req->headers may be overwritten by any call. */
int http_parse_request(const char *buf, size_t len, http_request *req,
                       const http_limits *lim);

/* The first field with this name (ASCII case-insensitive), or HTTP_STR_NONE.
 * Needs req->headers. */
http_str http_request_header(const http_request *req, const char *name);

/* True if the comma-separated list contains the token (ASCII case-
 * insensitive, OWS around elements ignored, empty elements skipped). */
bool http_list_has_token(http_str list, const char *token);

/* Body framing (RFC 9112 §6.3 for requests). */
enum {
  HTTP_BODY_NONE = 0,    /* no body: the next request starts right away */
  HTTP_BODY_LENGTH = 1,  /* Content-Length bytes follow */
  HTTP_BODY_CHUNKED = 2, /* run an http_chunked_decoder */
};

/* Given a parsed request and the number of bytes already buffered after
 * its head (avail), returns the framing kind (above) or
 * HTTP_E_BODY_TOO_LARGE when Content-Length exceeds lim->max_body. For
 * HTTP_BODY_LENGTH, *body_len is the body length and *missing how many more
 * bytes must be read before the body is complete (0: the body is the first
 * *body_len of the avail bytes). For the other kinds both are 0. */
int http_body_need(const http_request *req, const http_limits *lim, size_t avail,
                   size_t *body_len, size_t *missing);

/* Longest chunk-size line (size, extensions, CRLF) accepted. */
#define HTTP_CHUNK_LINE_MAX 1024

/* Incremental decoder for the chunked transfer coding (RFC 9112 §7.1).
 * Caller-owned (embed it in the connection); http_chunked_init before the
 * first byte of each body. Invariant: total <= max_body. Fields are
 * private to http.c. */
typedef struct {
  uint64_t chunk_left; /* data bytes left in the current chunk */
  uint64_t total;      /* decoded body bytes so far */
  uint64_t max_body;
  size_t line_len;    /* bytes of the current chunk-size line */
  size_t trailer_len; /* bytes of the trailer section so far */
  size_t max_trailer;
  int state;
  int err; /* sticky: once failed, every call returns the same error */
} http_chunked_decoder;

/* Decoding results. */
enum {
  HTTP_CHUNKED_MORE = 0, /* need more input, or out is full */
  HTTP_CHUNKED_DONE = 1, /* last chunk and trailers consumed */
};

void http_chunked_init(http_chunked_decoder *d, const http_limits *lim);

/* Decodes from in[0..in_len) and writes body bytes to out[0..out_cap).
 * out may equal in (decoding in place: output never overtakes input) or
 * not overlap it at all. Sets *in_used and *out_len. Returns
 * HTTP_CHUNKED_DONE when the body and its trailers are complete (bytes
 * after *in_used belong to the next request), HTTP_CHUNKED_MORE when all
 * input was used or out is full (*in_used < in_len), or HTTP_E_CHUNK_SIZE,
 * HTTP_E_CHUNK_FORMAT, HTTP_E_BODY_TOO_LARGE, HTTP_E_HEADERS_TOO_LARGE
 * (trailers). Trailer fields are validated and dropped. The result does
 * not depend on how the input is split across calls. */
int http_chunked_decode(http_chunked_decoder *d, const char *in, size_t in_len, char *out,
                        size_t out_cap, size_t *in_used, size_t *out_len);

/* Percent-decodes src into out, NUL-terminated (needs cap >= decoded + 1).
 * With plus_is_space '+' decodes to ' ' (query strings). Returns 0 and sets
 * *out_len, HTTP_E_ESCAPE for '%' not followed by two hex digits or for
 * %00, HTTP_E_NOSPACE when out is too small. */
int http_pct_decode(http_str src, bool plus_is_space, char *out, size_t cap,
                    size_t *out_len);

/* Iterates over the raw segments of a path: *rest starts as req->path;
 * each call strips one leading '/' and stores the text up to the next '/'
 * in *seg (possibly empty). Returns false when *rest is empty. Decode each
 * segment with http_pct_decode(seg, false, ...) so that %2F stays inside
 * its segment. */
bool http_path_next(http_str *rest, http_str *seg);

/* Looks up the first parameter called name in a query string ("a=1&b=2",
 * keys and values %-decoded, '+' as space). Returns 1 and stores the
 * NUL-terminated value in out (a parameter without '=' has an empty value),
 * 0 when absent, or HTTP_E_ESCAPE / HTTP_E_NOSPACE / HTTP_E_INVALID_ARG. */
int http_query_get(http_str query, const char *name, char *out, size_t cap,
                   size_t *out_len);

/* Standard reason phrase ("Not Found"), or "" for an unknown code. Never
 * NULL; static storage. */
const char *http_status_reason(int status);

/* Appends "HTTP/1.1 <status> <reason>\r\n", the given fields, then
 * "Content-Length: n" (omitted when content_length < 0), "Connection:
 * close" when !keep_alive, and the final CRLF. reason NULL means the
 * standard phrase. A keep-alive HTTP/1.0 client needs an explicit
 * "Connection: keep-alive" field from the caller. Returns 0, TSR_EINVAL
 * (status outside 100..999, a name not a token, CR/LF/NUL in a value or
 * reason, a Content-Length on 1xx/204) or TSR_ENOMEM; on failure out->len
 * is restored. */
int http_write_response_head(buf_t *out, int status, const char *reason,
                             const http_header *headers, size_t n_headers,
                             int64_t content_length, bool keep_alive);

#endif
