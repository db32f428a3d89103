/* HTTP/1.1 response head parser. See http_resp.h.
 *
 * Lines are found first (CRLF required, bare CR or LF refused), then each
 * is validated. A head is small (bounded by max_header_bytes), so finding
 * the end before validating costs one extra pass over at most 8 KiB. */
#include "proto/http_resp.h"

#include <string.h>

static bool is_tchar(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
    return true;
  return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_vchar_or_ws(unsigned char c) {
  return c == ' ' || c == '\t' || (c >= 0x21 && c != 0x7f);
}

static bool str_ieq(http_str s, const char *lit) {
  size_t n = strlen(lit);
  if (s.len != n) return false;
  for (size_t i = 0; i < n; i++) {
    unsigned char a = (unsigned char)s.ptr[i], b = (unsigned char)lit[i];
    if (a >= 'A' && a <= 'Z') a = (unsigned char)(a - 'A' + 'a');
    if (a != b) return false;
  }
  return true;
}

/* Parses 1*DIGIT into *out; false on anything else or above INT64_MAX/10. */
static bool parse_digits(http_str v, int64_t *out) {
  if (v.len == 0 || v.len > 18) return false;
  int64_t n = 0;
  for (size_t i = 0; i < v.len; i++) {
    if (v.ptr[i] < '0' || v.ptr[i] > '9') return false;
    n = n * 10 + (v.ptr[i] - '0');
  }
  *out = n;
  return true;
}

/* Finds the end of the head: returns its length, HTTP_INCOMPLETE, or a
 * framing error. */
static int find_head_end(const char *buf, size_t len, size_t max) {
  size_t lim = len < max ? len : max;
  size_t line_start = 0;
  for (size_t i = 0; i < lim; i++) {
    if (buf[i] == '\r') {
      if (i + 1 >= len) return HTTP_INCOMPLETE;
      if (buf[i + 1] != '\n') return HTTP_E_BARE_CR;
      if (i + 2 > max) break;
      if (i == line_start && line_start > 0) return (int)(i + 2);
      i++;
      line_start = i + 1;
    } else if (buf[i] == '\n') {
      return HTTP_E_BARE_LF;
    }
  }
  return len >= max ? HTTP_E_HEADERS_TOO_LARGE : HTTP_INCOMPLETE;
}

int http_parse_response(const char *buf, size_t len, http_response *resp,
                        const http_limits *lim) {
  if (!buf || !resp || !lim) return HTTP_E_INVALID_ARG;
  if (lim->max_header_bytes > (size_t)INT32_MAX) return HTTP_E_INVALID_ARG;
  int head = find_head_end(buf, len, lim->max_header_bytes);
  if (head < 0) return head;

  /* Status line: HTTP/1.x SP 3DIGIT SP reason CRLF (reason may be empty,
   * and a missing SP before an empty reason is tolerated). */
  const char *p = buf, *end = buf + head;
  const char *eol = memchr(p, '\r', (size_t)(end - p));
  if ((size_t)(eol - p) < 12 || memcmp(p, "HTTP/", 5) != 0) return HTTP_E_VERSION;
  if (p[5] < '0' || p[5] > '9' || p[6] != '.' || p[7] < '0' || p[7] > '9' || p[8] != ' ')
    return HTTP_E_VERSION;
  if (p[5] != '1') return HTTP_E_VERSION_UNSUPPORTED;
  http_response r = {0};
  r.minor_version = p[7] - '0';
  for (int i = 9; i < 12; i++)
    if (p[i] < '0' || p[i] > '9') return HTTP_E_TARGET;
  r.status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
  if (r.status < 100) return HTTP_E_TARGET;
  if (eol - p > 12 && p[12] != ' ') return HTTP_E_TARGET;
  r.reason =
      eol - p > 12 ? (http_str){p + 13, (size_t)(eol - p - 13)} : (http_str){eol, 0};
  for (size_t i = 0; i < r.reason.len; i++)
    if (!is_vchar_or_ws((unsigned char)r.reason.ptr[i])) return HTTP_E_HEADER_VALUE;
  r.content_length = -1;
  r.retry_after = -1;
  r.headers = resp->headers;

  bool conn_close = false, conn_keep_alive = false, have_te = false;
  p = eol + 2;
  while (p < end - 2) {
    eol = memchr(p, '\r', (size_t)(end - p));
    if (*p == ' ' || *p == '\t') return HTTP_E_OBS_FOLD;
    const char *colon = memchr(p, ':', (size_t)(eol - p));
    if (!colon || colon == p) return HTTP_E_HEADER_NAME;
    http_str name = {p, (size_t)(colon - p)};
    for (size_t i = 0; i < name.len; i++) {
      unsigned char c = (unsigned char)name.ptr[i];
      if (c == ' ' || c == '\t') return HTTP_E_SPACE_BEFORE_COLON;
      if (!is_tchar(c)) return HTTP_E_HEADER_NAME;
    }
    const char *vs = colon + 1, *ve = eol;
    while (vs < ve && (*vs == ' ' || *vs == '\t')) vs++;
    while (ve > vs && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
    http_str value = {vs, (size_t)(ve - vs)};
    for (size_t i = 0; i < value.len; i++)
      if (!is_vchar_or_ws((unsigned char)value.ptr[i])) return HTTP_E_HEADER_VALUE;
    if (r.num_headers >= lim->max_headers) return HTTP_E_TOO_MANY_HEADERS;
    if (r.headers) r.headers[r.num_headers] = (http_header){name, value};
    r.num_headers++;

    if (str_ieq(name, "content-length")) {
      int64_t n;
      if (!parse_digits(value, &n)) return HTTP_E_CONTENT_LENGTH;
      if (r.content_length >= 0 && r.content_length != n) return HTTP_E_CL_CONFLICT;
      r.content_length = n;
    } else if (str_ieq(name, "transfer-encoding")) {
      /* Only "chunked" as the final (here: only) coding is supported. */
      if (have_te || !str_ieq(value, "chunked")) return HTTP_E_TE_UNSUPPORTED;
      have_te = true;
      r.chunked = true;
    } else if (str_ieq(name, "connection")) {
      if (http_list_has_token(value, "close")) conn_close = true;
      if (http_list_has_token(value, "keep-alive")) conn_keep_alive = true;
    } else if (str_ieq(name, "content-type")) {
      r.content_type = value;
    } else if (str_ieq(name, "retry-after")) {
      int64_t n;
      if (parse_digits(value, &n)) r.retry_after = n;
    }
    p = eol + 2;
  }
  if (r.chunked && r.content_length >= 0) return HTTP_E_TE_AND_CL;
  r.keep_alive = r.minor_version >= 1 ? !conn_close : (conn_keep_alive && !conn_close);
  *resp = r;
  return head;
}

http_str http_response_header(const http_response *resp, const char *name) {
  if (!resp || !resp->headers || !name) return HTTP_STR_NONE;
  for (size_t i = 0; i < resp->num_headers; i++)
    if (str_ieq(resp->headers[i].name, name)) return resp->headers[i].value;
  return HTTP_STR_NONE;
}

int http_response_body_kind(const http_response *resp, bool head_request) {
  if (head_request || resp->status < 200 || resp->status == 204 || resp->status == 304)
    return HTTP_BODY_NONE;
  if (resp->chunked) return HTTP_BODY_CHUNKED;
  if (resp->content_length >= 0) return HTTP_BODY_LENGTH;
  return HTTP_BODY_UNTIL_CLOSE;
}
