/* HTTP/1.1 request parser, chunked decoder and response heads. See http.h.
 *
 * The request parser walks the head once, front to back, and validates
 * each byte as it goes, so a bad byte is reported as soon as it arrives
 * rather than after the whole head. Field semantics are folded into a
 * local request as each line completes; the caller's struct is written
 * only once the head is complete and valid. */
#include "proto/http.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "tessera/error.h"

/* ---- errors ------------------------------------------------------------ */

int http_error_status(int err) {
  switch (err) {
  case HTTP_E_METHOD:
  case HTTP_E_TARGET:
  case HTTP_E_VERSION:
  case HTTP_E_BARE_CR:
  case HTTP_E_BARE_LF:
  case HTTP_E_OBS_FOLD:
  case HTTP_E_HEADER_NAME:
  case HTTP_E_HEADER_VALUE:
  case HTTP_E_SPACE_BEFORE_COLON:
  case HTTP_E_HOST:
  case HTTP_E_DUP_HEADER:
  case HTTP_E_CONTENT_LENGTH:
  case HTTP_E_CL_CONFLICT:
  case HTTP_E_TE_AND_CL:
  case HTTP_E_TE_INVALID:
  case HTTP_E_CHUNK_SIZE:
  case HTTP_E_CHUNK_FORMAT:
  case HTTP_E_ESCAPE: return 400;
  case HTTP_E_HEADERS_TOO_LARGE:
  case HTTP_E_TOO_MANY_HEADERS: return 431;
  case HTTP_E_URI_TOO_LONG:
  case HTTP_E_NOSPACE: return 414;
  case HTTP_E_VERSION_UNSUPPORTED: return 505;
  case HTTP_E_TE_UNSUPPORTED: return 501;
  case HTTP_E_EXPECTATION: return 417;
  case HTTP_E_BODY_TOO_LARGE: return 413;
  case HTTP_E_INVALID_ARG: return 500;
  default: return err < HTTP_INCOMPLETE ? 500 : 0;
  }
}

const char *http_error_name(int err) {
  switch (err) {
  case HTTP_INCOMPLETE: return "HTTP_INCOMPLETE";
  case HTTP_E_METHOD: return "HTTP_E_METHOD";
  case HTTP_E_TARGET: return "HTTP_E_TARGET";
  case HTTP_E_VERSION: return "HTTP_E_VERSION";
  case HTTP_E_BARE_CR: return "HTTP_E_BARE_CR";
  case HTTP_E_BARE_LF: return "HTTP_E_BARE_LF";
  case HTTP_E_OBS_FOLD: return "HTTP_E_OBS_FOLD";
  case HTTP_E_HEADER_NAME: return "HTTP_E_HEADER_NAME";
  case HTTP_E_HEADER_VALUE: return "HTTP_E_HEADER_VALUE";
  case HTTP_E_SPACE_BEFORE_COLON: return "HTTP_E_SPACE_BEFORE_COLON";
  case HTTP_E_HOST: return "HTTP_E_HOST";
  case HTTP_E_DUP_HEADER: return "HTTP_E_DUP_HEADER";
  case HTTP_E_CONTENT_LENGTH: return "HTTP_E_CONTENT_LENGTH";
  case HTTP_E_CL_CONFLICT: return "HTTP_E_CL_CONFLICT";
  case HTTP_E_TE_AND_CL: return "HTTP_E_TE_AND_CL";
  case HTTP_E_TE_INVALID: return "HTTP_E_TE_INVALID";
  case HTTP_E_HEADERS_TOO_LARGE: return "HTTP_E_HEADERS_TOO_LARGE";
  case HTTP_E_TOO_MANY_HEADERS: return "HTTP_E_TOO_MANY_HEADERS";
  case HTTP_E_URI_TOO_LONG: return "HTTP_E_URI_TOO_LONG";
  case HTTP_E_VERSION_UNSUPPORTED: return "HTTP_E_VERSION_UNSUPPORTED";
  case HTTP_E_TE_UNSUPPORTED: return "HTTP_E_TE_UNSUPPORTED";
  case HTTP_E_EXPECTATION: return "HTTP_E_EXPECTATION";
  case HTTP_E_BODY_TOO_LARGE: return "HTTP_E_BODY_TOO_LARGE";
  case HTTP_E_CHUNK_SIZE: return "HTTP_E_CHUNK_SIZE";
  case HTTP_E_CHUNK_FORMAT: return "HTTP_E_CHUNK_FORMAT";
  case HTTP_E_ESCAPE: return "HTTP_E_ESCAPE";
  case HTTP_E_NOSPACE: return "HTTP_E_NOSPACE";
  case HTTP_E_INVALID_ARG: return "HTTP_E_INVALID_ARG";
  default: return err >= 0 ? "HTTP_OK" : "HTTP_E_UNKNOWN";
  }
}

/* ---- character classes (RFC 9110 §5.6, RFC 3986) -------------------- */

static bool is_alpha(unsigned c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }
static bool is_digit(unsigned c) { return c >= '0' && c <= '9'; }

static int hex_val(unsigned c) {
  if (is_digit(c)) return (int)(c - '0');
  c |= 0x20;
  if (c >= 'a' && c <= 'f') return (int)(c - 'a' + 10);
  return -1;
}

static bool is_tchar(unsigned c) {
  if (is_alpha(c) || is_digit(c)) return true;
  return c != 0 && strchr("!#$%&'*+-.^_`|~", (int)c) != NULL;
}

/* Bytes allowed in a field value: VCHAR, obs-text, SP, HTAB. */
static bool is_value_char(unsigned c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

static bool is_unreserved_or_sub(unsigned c) {
  if (is_alpha(c) || is_digit(c)) return true;
  return c != 0 && strchr("-._~!$&'()*+,;=", (int)c) != NULL;
}

/* pchar plus '/', '?' and '%' (escapes are checked separately). */
static bool is_target_char(unsigned c) {
  return is_unreserved_or_sub(c) || c == ':' || c == '@' || c == '/' || c == '?' ||
         c == '%';
}

static bool is_ows(char c) { return c == ' ' || c == '\t'; }

static char lower(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c; }

static bool str_ieq(http_str s, const char *lit) {
  size_t n = strlen(lit);
  if (s.len != n) return false;
  for (size_t i = 0; i < n; i++)
    if (lower(s.ptr[i]) != lower(lit[i])) return false;
  return true;
}

/* Every '%' is followed by two hex digits. */
static bool pct_valid(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (s[i] != '%') continue;
    if (n - i < 3 || hex_val((unsigned char)s[i + 1]) < 0 ||
        hex_val((unsigned char)s[i + 2]) < 0)
      return false;
    i += 2;
  }
  return true;
}

/* ---- lists ----------------------------------------------------------- */

/* Next element of a comma-separated list, trimmed of OWS (may be empty).
 * Returns false when the list is exhausted. */
static bool list_next(http_str *rest, http_str *elem) {
  if (rest->ptr == NULL) return false;
  const char *p = rest->ptr, *end = p + rest->len;
  const char *comma = memchr(p, ',', rest->len);
  const char *e = comma ? comma : end;
  while (p < e && is_ows(*p)) p++;
  const char *q = e;
  while (q > p && is_ows(q[-1])) q--;
  *elem = (http_str){p, (size_t)(q - p)};
  if (comma)
    *rest = (http_str){comma + 1, (size_t)(end - comma - 1)};
  else
    *rest = HTTP_STR_NONE;
  return true;
}

bool http_list_has_token(http_str list, const char *token) {
  if (!token) return false;
  http_str e;
  while (list_next(&list, &e))
    if (e.len && str_ieq(e, token)) return true;
  return false;
}

/* ---- request parser ------------------------------------------------- */

static const struct {
  const char *name;
  http_method m;
} methods[] = {
    {"GET", HTTP_GET},         {"HEAD", HTTP_HEAD},   {"POST", HTTP_POST},
    {"PUT", HTTP_PUT},         {"PATCH", HTTP_PATCH}, {"DELETE", HTTP_DELETE},
    {"OPTIONS", HTTP_OPTIONS},
};

static http_method method_of(http_str s) {
  for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
    size_t n = strlen(methods[i].name);
    if (s.len == n && memcmp(s.ptr, methods[i].name, n) == 0) return methods[i].m;
  }
  return HTTP_METHOD_OTHER;
}

static const char slash[] = "/";

/* Splits the request-target into path and query and checks its form:
 * origin-form, absolute-form (http/https) or "*" for OPTIONS. */
static int parse_target(http_request *r, http_str *authority) {
  const char *t = r->target.ptr;
  size_t n = r->target.len;
  if (!pct_valid(t, n)) return HTTP_E_TARGET;
  const char *end = t + n, *p = t;
  if (t[0] == '*') {
    if (n != 1 || r->method != HTTP_OPTIONS) return HTTP_E_TARGET;
    r->path = r->target;
    return 0;
  }
  if (t[0] != '/') {
    /* absolute-form: scheme "://" authority [path] */
    while (p < end && (is_alpha((unsigned char)*p) || is_digit((unsigned char)*p) ||
                       *p == '+' || *p == '-' || *p == '.'))
      p++;
    http_str scheme = {t, (size_t)(p - t)};
    if (!str_ieq(scheme, "http") && !str_ieq(scheme, "https")) return HTTP_E_TARGET;
    if (end - p < 3 || memcmp(p, "://", 3) != 0) return HTTP_E_TARGET;
    p += 3;
    const char *a = p;
    while (p < end && *p != '/' && *p != '?') {
      if (*p == '@') return HTTP_E_TARGET; /* no userinfo in http(s) URIs */
      p++;
    }
    if (p == a) return HTTP_E_TARGET;
    *authority = (http_str){a, (size_t)(p - a)};
  }
  const char *q = memchr(p, '?', (size_t)(end - p));
  const char *pe = q ? q : end;
  r->path = pe > p ? (http_str){p, (size_t)(pe - p)} : (http_str){slash, 1};
  r->query = q ? (http_str){q + 1, (size_t)(end - q - 1)} : HTTP_STR_NONE;
  return 0;
}

/* What the field lines have told us so far. */
typedef struct {
  int hosts;
  bool cl_seen, te_seen, te_chunked, te_after_chunked, te_unsupported;
  bool conn_close, conn_keep_alive, conn_upgrade, upgrade_ws;
} field_state;

/* Parses a Content-Length value: a list of identical 1*DIGIT elements. */
static int parse_content_length(http_str v, int64_t *out) {
  int64_t val = -1;
  http_str e;
  while (list_next(&v, &e)) {
    if (e.len == 0) return HTTP_E_CONTENT_LENGTH;
    int64_t x = 0;
    for (size_t i = 0; i < e.len; i++) {
      unsigned c = (unsigned char)e.ptr[i];
      if (!is_digit(c)) return HTTP_E_CONTENT_LENGTH;
      if (x > (INT64_MAX - (int64_t)(c - '0')) / 10) return HTTP_E_CONTENT_LENGTH;
      x = x * 10 + (int64_t)(c - '0');
    }
    if (val >= 0 && x != val) return HTTP_E_CL_CONFLICT;
    val = x;
  }
  *out = val;
  return 0;
}

static bool host_valid(http_str v) {
  for (size_t i = 0; i < v.len; i++) {
    unsigned c = (unsigned char)v.ptr[i];
    if (!is_unreserved_or_sub(c) && c != ':' && c != '[' && c != ']' && c != '%')
      return false;
  }
  return true;
}

static int set_once(http_str *slot, http_str v) {
  if (slot->ptr) return HTTP_E_DUP_HEADER;
  *slot = v;
  return 0;
}

/* Folds one complete field line into the request. */
static int apply_field(http_request *r, field_state *fs, http_str name, http_str v) {
  switch (name.len) {
  case 4:
    if (str_ieq(name, "host")) {
      if (++fs->hosts > 1 || !host_valid(v)) return HTTP_E_HOST;
      r->host = v;
    }
    return 0;
  case 6:
    if (str_ieq(name, "expect")) {
      http_str e;
      while (list_next(&v, &e)) {
        if (e.len == 0) continue;
        if (!str_ieq(e, "100-continue")) return HTTP_E_EXPECTATION;
        r->expect_continue = true;
      }
    }
    return 0;
  case 7:
    if (str_ieq(name, "upgrade") && http_list_has_token(v, "websocket"))
      fs->upgrade_ws = true;
    return 0;
  case 10:
    if (str_ieq(name, "connection")) {
      if (http_list_has_token(v, "close")) fs->conn_close = true;
      if (http_list_has_token(v, "keep-alive")) fs->conn_keep_alive = true;
      if (http_list_has_token(v, "upgrade")) fs->conn_upgrade = true;
    }
    return 0;
  case 12:
    if (str_ieq(name, "content-type")) return set_once(&r->content_type, v);
    return 0;
  case 13:
    if (str_ieq(name, "authorization")) return set_once(&r->authorization, v);
    return 0;
  case 14:
    if (str_ieq(name, "content-length")) {
      int64_t cl;
      int rc = parse_content_length(v, &cl);
      if (rc) return rc;
      if (cl < 0) return HTTP_E_CONTENT_LENGTH;
      if (fs->cl_seen && cl != r->content_length) return HTTP_E_CL_CONFLICT;
      fs->cl_seen = true;
      r->content_length = cl;
    }
    return 0;
  case 17:
    if (str_ieq(name, "transfer-encoding")) {
      fs->te_seen = true;
      http_str e;
      while (list_next(&v, &e)) {
        if (e.len == 0) continue;
        if (fs->te_chunked) fs->te_after_chunked = true;
        if (str_ieq(e, "chunked"))
          fs->te_chunked = true;
        else
          fs->te_unsupported = true;
      }
    } else if (str_ieq(name, "sec-websocket-key")) {
      return set_once(&r->ws_key, v);
    }
    return 0;
  case 21:
    if (str_ieq(name, "sec-websocket-version")) return set_once(&r->ws_version, v);
    return 0;
  case 22:
    if (str_ieq(name, "sec-websocket-protocol") && !r->ws_protocol.ptr)
      r->ws_protocol = v;
    return 0;
  default: return 0;
  }
}

/* Checks that need the whole head. */
static int finish_fields(http_request *r, const field_state *fs) {
  if (fs->hosts == 0 && r->minor_version == 1) return HTTP_E_HOST;
  if (fs->te_seen) {
    if (fs->cl_seen) return HTTP_E_TE_AND_CL;
    /* RFC 9112 §6.1: Transfer-Encoding in 1.0 means the framing is faulty. */
    if (r->minor_version == 0) return HTTP_E_TE_INVALID;
    if (fs->te_unsupported) return HTTP_E_TE_UNSUPPORTED;
    if (!fs->te_chunked || fs->te_after_chunked) return HTTP_E_TE_INVALID;
    r->chunked = true;
  }
  if (r->minor_version == 1)
    r->keep_alive = !fs->conn_close;
  else
    r->keep_alive = fs->conn_keep_alive && !fs->conn_close;
  r->upgrade_websocket = fs->upgrade_ws && fs->conn_upgrade;
  /* RFC 9110 §10.1.1: a 1.0 client cannot take an interim response. */
  if (r->minor_version == 0) r->expect_continue = false;
  return 0;
}

/* The window ran out: a valid prefix, unless the window is the limit. */
#define NEED_MORE(err) return limited ? (err) : HTTP_INCOMPLETE

int http_parse_request(const char *buf, size_t len, http_request *req,
                       const http_limits *lim) {
  if (!req || !lim || (!buf && len)) return HTTP_E_INVALID_ARG;
  size_t max =
      lim->max_header_bytes < (size_t)INT_MAX ? lim->max_header_bytes : (size_t)INT_MAX;
  bool limited = len >= max;
  if (!buf) NEED_MORE(HTTP_E_HEADERS_TOO_LARGE); /* len == 0 */
  const char *p = buf, *end = buf + (limited ? max : len);

  http_request r = {0};
  r.headers = req->headers;
  r.content_length = -1;
  field_state fs = {0};
  http_str authority = HTTP_STR_NONE;

  /* Empty lines before the request line (RFC 9112 §2.2). */
  while (p < end && (*p == '\r' || *p == '\n')) {
    if (*p == '\n') return HTTP_E_BARE_LF;
    if (end - p < 2) NEED_MORE(HTTP_E_HEADERS_TOO_LARGE);
    if (p[1] != '\n') return HTTP_E_BARE_CR;
    p += 2;
  }

  /* method SP */
  const char *m = p;
  while (p < end && is_tchar((unsigned char)*p)) p++;
  if (p == end) NEED_MORE(HTTP_E_HEADERS_TOO_LARGE);
  if (*p != ' ' || p == m) return HTTP_E_METHOD;
  r.method_str = (http_str){m, (size_t)(p - m)};
  r.method = method_of(r.method_str);
  p++;

  /* request-target SP */
  const char *t = p;
  while (p < end && is_target_char((unsigned char)*p)) {
    if ((size_t)(p - t) >= lim->max_target) return HTTP_E_URI_TOO_LONG;
    p++;
  }
  if (p == end) NEED_MORE(HTTP_E_URI_TOO_LONG);
  if (*p != ' ' || p == t) return HTTP_E_TARGET;
  r.target = (http_str){t, (size_t)(p - t)};
  p++;

  /* HTTP-version CRLF */
  static const char proto[] = "HTTP/";
  for (size_t i = 0; i < 5; i++, p++) {
    if (p == end) NEED_MORE(HTTP_E_HEADERS_TOO_LARGE);
    if (*p != proto[i]) return HTTP_E_VERSION;
  }
  int digits[2];
  for (int i = 0; i < 2; i++) {
    if (i == 1) {
      if (p == end) NEED_MORE(HTTP_E_HEADERS_TOO_LARGE);
      if (*p++ != '.') return HTTP_E_VERSION;
    }
    if (p == end) NEED_MORE(HTTP_E_HEADERS_TOO_LARGE);
    if (!is_digit((unsigned char)*p)) return HTTP_E_VERSION;
    digits[i] = *p++ - '0';
  }
  if (p == end) NEED_MORE(HTTP_E_HEADERS_TOO_LARGE);
  if (*p == '\n') return HTTP_E_BARE_LF;
  if (*p != '\r') return HTTP_E_VERSION;
  if (end - p < 2) NEED_MORE(HTTP_E_HEADERS_TOO_LARGE);
  if (p[1] != '\n') return HTTP_E_BARE_CR;
  p += 2;
  if (digits[0] != 1 || digits[1] > 1) return HTTP_E_VERSION_UNSUPPORTED;
  r.minor_version = digits[1];
  int rc = parse_target(&r, &authority);
  if (rc) return rc;

  /* *( field-line CRLF ) CRLF */
  for (;;) {
    if (p == end) NEED_MORE(HTTP_E_HEADERS_TOO_LARGE);
    if (*p == '\r') {
      if (end - p < 2) NEED_MORE(HTTP_E_HEADERS_TOO_LARGE);
      if (p[1] != '\n') return HTTP_E_BARE_CR;
      p += 2;
      break;
    }
    if (*p == '\n') return HTTP_E_BARE_LF;
    if (is_ows(*p)) return HTTP_E_OBS_FOLD;
    const char *n = p;
    while (p < end && is_tchar((unsigned char)*p)) p++;
    if (p == end) NEED_MORE(HTTP_E_HEADERS_TOO_LARGE);
    if (*p != ':') return is_ows(*p) ? HTTP_E_SPACE_BEFORE_COLON : HTTP_E_HEADER_NAME;
    if (p == n) return HTTP_E_HEADER_NAME;
    http_str fname = {n, (size_t)(p - n)};
    p++;
    while (p < end && is_ows(*p)) p++;
    const char *v = p;
    const char *cr = p < end ? memchr(p, '\r', (size_t)(end - p)) : NULL;
    for (const char *e = cr ? cr : end; p < e; p++) {
      if (*p == '\n') return HTTP_E_BARE_LF;
      if (!is_value_char((unsigned char)*p)) return HTTP_E_HEADER_VALUE;
    }
    if (!cr || end - cr < 2) NEED_MORE(HTTP_E_HEADERS_TOO_LARGE);
    if (p[1] != '\n') return HTTP_E_BARE_CR;
    const char *ve = p;
    while (ve > v && is_ows(ve[-1])) ve--;
    p += 2;
    if (r.num_headers >= lim->max_headers) return HTTP_E_TOO_MANY_HEADERS;
    http_str fvalue = {v, (size_t)(ve - v)};
    if (r.headers) r.headers[r.num_headers] = (http_header){fname, fvalue};
    r.num_headers++;
    rc = apply_field(&r, &fs, fname, fvalue);
    if (rc) return rc;
  }

  rc = finish_fields(&r, &fs);
  if (rc) return rc;
  if (authority.ptr) r.host = authority;
  *req = r;
  return (int)(p - buf);
}

http_str http_request_header(const http_request *req, const char *name) {
  if (!req || !req->headers || !name) return HTTP_STR_NONE;
  for (size_t i = 0; i < req->num_headers; i++)
    if (str_ieq(req->headers[i].name, name)) return req->headers[i].value;
  return HTTP_STR_NONE;
}

/* ---- bodies ---------------------------------------------------------- */

int http_body_need(const http_request *req, const http_limits *lim, size_t avail,
                   size_t *body_len, size_t *missing) {
  if (!req || !lim || !body_len || !missing) return HTTP_E_INVALID_ARG;
  *body_len = 0;
  *missing = 0;
  if (req->chunked) return HTTP_BODY_CHUNKED;
  if (req->content_length < 0) return HTTP_BODY_NONE;
  if ((uint64_t)req->content_length > (uint64_t)lim->max_body)
    return HTTP_E_BODY_TOO_LARGE;
  size_t n = (size_t)req->content_length;
  *body_len = n;
  *missing = avail >= n ? 0 : n - avail;
  return HTTP_BODY_LENGTH;
}

/* Decoder states: where the next byte goes. */
enum {
  CK_SIZE0,    /* first hex digit of a chunk-size */
  CK_SIZE,     /* more hex digits, ';', BWS or CR */
  CK_EXT_BWS,  /* whitespace after the size: only ';' may follow */
  CK_EXT,      /* chunk extensions up to CR */
  CK_SIZE_LF,  /* LF ending the size line */
  CK_DATA,     /* chunk data */
  CK_DATA_CR,  /* CR after the data */
  CK_DATA_LF,  /* LF after the data */
  CK_TR_START, /* start of a trailer line or the final CRLF */
  CK_TR_NAME,  /* trailer field name */
  CK_TR_VALUE, /* trailer field value up to CR */
  CK_TR_LF,    /* LF ending a trailer line */
  CK_END_LF,   /* LF ending the body */
  CK_DONE,
};

void http_chunked_init(http_chunked_decoder *d, const http_limits *lim) {
  *d = (http_chunked_decoder){0};
  d->max_body = lim ? lim->max_body : 0;
  d->max_trailer = lim ? lim->max_header_bytes : 0;
  d->state = CK_SIZE0;
  if (!lim) d->err = HTTP_E_INVALID_ARG;
}

/* One framing byte (not chunk data). Returns 0 or an error. */
static int chunk_step(http_chunked_decoder *d, unsigned c) {
  if (d->state <= CK_SIZE_LF && ++d->line_len > HTTP_CHUNK_LINE_MAX)
    return HTTP_E_CHUNK_FORMAT;
  if (d->state >= CK_TR_START && ++d->trailer_len > d->max_trailer)
    return HTTP_E_HEADERS_TOO_LARGE;
  int h;
  switch (d->state) {
  case CK_SIZE0:
  case CK_SIZE:
    h = hex_val(c);
    if (h >= 0) {
      if (d->chunk_left >> 60) return HTTP_E_CHUNK_SIZE;
      d->chunk_left = d->chunk_left << 4 | (uint64_t)h;
      if (d->chunk_left > d->max_body - d->total) return HTTP_E_BODY_TOO_LARGE;
      d->state = CK_SIZE;
      return 0;
    }
    if (d->state == CK_SIZE0) return HTTP_E_CHUNK_SIZE;
    if (c == ';')
      d->state = CK_EXT;
    else if (c == ' ' || c == '\t')
      d->state = CK_EXT_BWS;
    else if (c == '\r')
      d->state = CK_SIZE_LF;
    else
      return c == '\n' ? HTTP_E_CHUNK_FORMAT : HTTP_E_CHUNK_SIZE;
    return 0;
  case CK_EXT_BWS:
    if (c == ';')
      d->state = CK_EXT;
    else if (c != ' ' && c != '\t')
      return HTTP_E_CHUNK_FORMAT;
    return 0;
  case CK_EXT:
    if (c == '\r')
      d->state = CK_SIZE_LF;
    else if (!is_value_char(c))
      return HTTP_E_CHUNK_FORMAT;
    return 0;
  case CK_SIZE_LF:
    if (c != '\n') return HTTP_E_CHUNK_FORMAT;
    d->line_len = 0;
    d->state = d->chunk_left ? CK_DATA : CK_TR_START;
    return 0;
  case CK_DATA_CR:
    if (c != '\r') return HTTP_E_CHUNK_FORMAT;
    d->state = CK_DATA_LF;
    return 0;
  case CK_DATA_LF:
    if (c != '\n') return HTTP_E_CHUNK_FORMAT;
    d->state = CK_SIZE0;
    return 0;
  case CK_TR_START:
    if (c == '\r')
      d->state = CK_END_LF;
    else if (is_tchar(c))
      d->state = CK_TR_NAME;
    else
      return HTTP_E_CHUNK_FORMAT;
    return 0;
  case CK_TR_NAME:
    if (c == ':')
      d->state = CK_TR_VALUE;
    else if (!is_tchar(c))
      return HTTP_E_CHUNK_FORMAT;
    return 0;
  case CK_TR_VALUE:
    if (c == '\r')
      d->state = CK_TR_LF;
    else if (!is_value_char(c))
      return HTTP_E_CHUNK_FORMAT;
    return 0;
  case CK_TR_LF:
    if (c != '\n') return HTTP_E_CHUNK_FORMAT;
    d->state = CK_TR_START;
    return 0;
  case CK_END_LF:
    if (c != '\n') return HTTP_E_CHUNK_FORMAT;
    d->state = CK_DONE;
    return 0;
  default: return HTTP_E_INVALID_ARG;
  }
}

int http_chunked_decode(http_chunked_decoder *d, const char *in, size_t in_len, char *out,
                        size_t out_cap, size_t *in_used, size_t *out_len) {
  if (!in_used || !out_len) return HTTP_E_INVALID_ARG;
  *in_used = 0;
  *out_len = 0;
  if (!d || (!in && in_len) || (!out && out_cap)) return HTTP_E_INVALID_ARG;
  if (d->err) return d->err;
  size_t i = 0, o = 0;
  while (d->state != CK_DONE && i < in_len) {
    if (d->state == CK_DATA) {
      size_t n = in_len - i;
      if (n > out_cap - o) n = out_cap - o;
      if (n > d->chunk_left) n = (size_t)d->chunk_left;
      if (n == 0) break; /* out is full */
      memmove(out + o, in + i, n);
      i += n;
      o += n;
      d->chunk_left -= n;
      d->total += n;
      if (d->chunk_left == 0) d->state = CK_DATA_CR;
      continue;
    }
    int rc = chunk_step(d, (unsigned char)in[i]);
    if (rc) {
      d->err = rc;
      *in_used = i;
      *out_len = o;
      return rc;
    }
    i++;
  }
  *in_used = i;
  *out_len = o;
  return d->state == CK_DONE ? HTTP_CHUNKED_DONE : HTTP_CHUNKED_MORE;
}

/* ---- percent-decoding --------------------------------------------------- */

/* Decodes the byte at s[*i] (advancing *i); -1 on a bad escape or %00. */
static int pct_byte(http_str s, size_t *i, bool plus_is_space) {
  unsigned c = (unsigned char)s.ptr[*i];
  if (c == '%') {
    if (s.len - *i < 3) return -1;
    int hi = hex_val((unsigned char)s.ptr[*i + 1]),
        lo = hex_val((unsigned char)s.ptr[*i + 2]);
    if (hi < 0 || lo < 0 || (hi | lo) == 0) return -1;
    *i += 3;
    return hi << 4 | lo;
  }
  (*i)++;
  if (c == 0) return -1;
  return (plus_is_space && c == '+') ? ' ' : (int)c;
}

int http_pct_decode(http_str src, bool plus_is_space, char *out, size_t cap,
                    size_t *out_len) {
  if (!out || !out_len || (!src.ptr && src.len)) return HTTP_E_INVALID_ARG;
  size_t i = 0, o = 0;
  while (i < src.len) {
    int b = pct_byte(src, &i, plus_is_space);
    if (b < 0) return HTTP_E_ESCAPE;
    if (o + 1 >= cap) return HTTP_E_NOSPACE;
    out[o++] = (char)b;
  }
  if (cap == 0) return HTTP_E_NOSPACE;
  out[o] = '\0';
  *out_len = o;
  return 0;
}

bool http_path_next(http_str *rest, http_str *seg) {
  if (!rest || !seg || !rest->ptr || rest->len == 0) return false;
  const char *p = rest->ptr, *end = p + rest->len;
  if (*p == '/') p++;
  const char *s = memchr(p, '/', (size_t)(end - p));
  const char *e = s ? s : end;
  *seg = (http_str){p, (size_t)(e - p)};
  *rest = (http_str){e, (size_t)(end - e)};
  return true;
}

/* 1 if the encoded key equals name, 0 if not, or HTTP_E_ESCAPE. */
static int key_equals(http_str key, const char *name) {
  size_t i = 0, j = 0;
  bool eq = true;
  while (i < key.len) {
    int b = pct_byte(key, &i, true);
    if (b < 0) return HTTP_E_ESCAPE;
    if (eq && (name[j] == '\0' || (unsigned char)name[j] != (unsigned)b)) eq = false;
    if (eq) j++;
  }
  return eq && name[j] == '\0';
}

int http_query_get(http_str query, const char *name, char *out, size_t cap,
                   size_t *out_len) {
  if (!name || !name[0] || !out || !out_len || (!query.ptr && query.len))
    return HTTP_E_INVALID_ARG;
  if (!query.ptr) return 0;
  const char *p = query.ptr, *end = p + query.len;
  while (p < end) {
    const char *amp = memchr(p, '&', (size_t)(end - p));
    const char *pe = amp ? amp : end;
    const char *eq = memchr(p, '=', (size_t)(pe - p));
    http_str key = {p, (size_t)((eq ? eq : pe) - p)};
    int rc = key_equals(key, name);
    if (rc < 0) return rc;
    if (rc == 1) {
      http_str val = eq ? (http_str){eq + 1, (size_t)(pe - eq - 1)} : (http_str){pe, 0};
      rc = http_pct_decode(val, true, out, cap, out_len);
      return rc ? rc : 1;
    }
    p = amp ? amp + 1 : end;
  }
  return 0;
}

/* ---- responses ----------------------------------------------------------- */

const char *http_status_reason(int status) {
  switch (status) {
  case 100: return "Continue";
  case 101: return "Switching Protocols";
  case 200: return "OK";
  case 201: return "Created";
  case 202: return "Accepted";
  case 204: return "No Content";
  case 206: return "Partial Content";
  case 301: return "Moved Permanently";
  case 302: return "Found";
  case 303: return "See Other";
  case 304: return "Not Modified";
  case 307: return "Temporary Redirect";
  case 308: return "Permanent Redirect";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 406: return "Not Acceptable";
  case 408: return "Request Timeout";
  case 409: return "Conflict";
  case 410: return "Gone";
  case 411: return "Length Required";
  case 412: return "Precondition Failed";
  case 413: return "Content Too Large";
  case 414: return "URI Too Long";
  case 415: return "Unsupported Media Type";
  case 416: return "Range Not Satisfiable";
  case 417: return "Expectation Failed";
  case 422: return "Unprocessable Content";
  case 426: return "Upgrade Required";
  case 428: return "Precondition Required";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  case 505: return "HTTP Version Not Supported";
  default: return "";
  }
}

/* reason-phrase and field values: HTAB, SP, VCHAR, obs-text. */
static bool text_valid(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!is_value_char((unsigned char)s[i])) return false;
  return true;
}

static bool token_valid(http_str s) {
  if (!s.ptr || s.len == 0) return false;
  for (size_t i = 0; i < s.len; i++)
    if (!is_tchar((unsigned char)s.ptr[i])) return false;
  return true;
}

int http_write_response_head(buf_t *out, int status, const char *reason,
                             const http_header *headers, size_t n_headers,
                             int64_t content_length, bool keep_alive) {
  if (!out || status < 100 || status > 999 || (!headers && n_headers)) return TSR_EINVAL;
  if (out->err) return out->err;
  if (content_length >= 0 && (status < 200 || status == 204)) return TSR_EINVAL;
  if (!reason) reason = http_status_reason(status);
  if (!text_valid(reason, strlen(reason))) return TSR_EINVAL;
  for (size_t i = 0; i < n_headers; i++) {
    const http_header *h = &headers[i];
    if (!token_valid(h->name) || (!h->value.ptr && h->value.len) ||
        !text_valid(h->value.ptr, h->value.len))
      return TSR_EINVAL;
  }
  size_t mark = out->len;
  char line[64];
  int n = snprintf(line, sizeof line, "HTTP/1.1 %03d ", status);
  buf_append(out, line, (size_t)n);
  buf_append(out, reason, strlen(reason));
  buf_append(out, "\r\n", 2);
  for (size_t i = 0; i < n_headers; i++) {
    buf_append(out, headers[i].name.ptr, headers[i].name.len);
    buf_append(out, ": ", 2);
    if (headers[i].value.len) buf_append(out, headers[i].value.ptr, headers[i].value.len);
    buf_append(out, "\r\n", 2);
  }
  if (content_length >= 0) {
    n = snprintf(line, sizeof line, "Content-Length: %lld\r\n",
                 (long long)content_length);
    buf_append(out, line, (size_t)n);
  }
  if (!keep_alive) buf_append(out, "Connection: close\r\n", 19);
  buf_append(out, "\r\n", 2);
  if (out->err) {
    int err = out->err;
    out->len = mark < out->len ? mark : out->len;
    out->err = 0;
    return err;
  }
  return 0;
}
