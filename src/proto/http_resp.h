/* HTTP/1.1 response heads, client side (RFC 9112 §4, §6.3).
 *
 * The counterpart of http_parse_request for libtessera: a pure function
 * in the same habit (no callbacks, no allocation, no state between calls,
 * "need more bytes" is HTTP_INCOMPLETE). Views point into the caller's
 * buffer and live as long as it is unchanged. Error codes are the
 * enum http_error values of proto/http.h; after any error other than
 * HTTP_INCOMPLETE the connection's framing is unknown and it must be
 * closed. Reentrant; safe from any thread on distinct buffers.
 *
 * Bodies: http_response_body_kind gives the framing; a chunked body is
 * decoded with the http_chunked_decoder of proto/http.h. */
#ifndef TSR_PROTO_HTTP_RESP_H
#define TSR_PROTO_HTTP_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/http.h"

/* A parsed response head. Written by http_parse_response only on success;
 * `headers` is set by the caller (capacity lim->max_headers, or NULL). */
typedef struct {
  int status;        /* 100..999 */
  int minor_version; /* 0 or 1 */
  http_str reason;   /* possibly empty */

  http_header *headers;
  size_t num_headers;

  int64_t content_length; /* -1 when absent */
  bool chunked;           /* Transfer-Encoding ends with chunked */
  bool keep_alive;        /* 1.1: unless "close"; 1.0: only with "keep-alive" */
  http_str content_type;  /* ptr NULL when absent */
  int64_t retry_after;    /* delay-seconds form of Retry-After, else -1 */
} http_response;

/* Parses one response head at the start of buf. Returns the head length
 * including the final CRLF CRLF (> 0), HTTP_INCOMPLETE for a valid prefix
 * shorter than lim->max_header_bytes, or a negative http_error:
 * HTTP_E_VERSION (not "HTTP/1.x"), HTTP_E_VERSION_UNSUPPORTED (major
 * version not 1), HTTP_E_TARGET (status not three digits), HTTP_E_BARE_CR,
 * HTTP_E_BARE_LF, HTTP_E_OBS_FOLD, HTTP_E_HEADER_NAME,
 * HTTP_E_HEADER_VALUE, HTTP_E_SPACE_BEFORE_COLON, HTTP_E_CONTENT_LENGTH,
 * HTTP_E_CL_CONFLICT, HTTP_E_TE_AND_CL, HTTP_E_TE_UNSUPPORTED (a transfer
 * coding other than a final chunked), HTTP_E_HEADERS_TOO_LARGE,
 * HTTP_E_TOO_MANY_HEADERS, HTTP_E_INVALID_ARG. resp is changed only on
 * success (its headers array may be overwritten by any call). */
int http_parse_response(const char *buf, size_t len, http_response *resp,
                        const http_limits *lim);

/* The first field with this name (ASCII case-insensitive), or
 * HTTP_STR_NONE. Needs resp->headers. */
http_str http_response_header(const http_response *resp, const char *name);

/* Body framing of a response (RFC 9112 §6.3): one of HTTP_BODY_NONE (1xx,
 * 204, 304, or an answer to HEAD), HTTP_BODY_CHUNKED, HTTP_BODY_LENGTH
 * (resp->content_length bytes) or HTTP_BODY_UNTIL_CLOSE (the body ends
 * when the server closes the connection). */
enum { HTTP_BODY_UNTIL_CLOSE = 3 };
int http_response_body_kind(const http_response *resp, bool head_request);

#endif
