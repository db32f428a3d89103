/* JSON reader and writer; see json.h for the rules and the token layout. */
#include "proto/json.h"

#include <stdio.h>
#include <string.h>

#include "proto/base64.h"
#include "proto/utf8.h"
#include "tessera/error.h"

/* ------------------------------------------------------------- errors */

struct err_entry {
  int code;
  const char *name;
  const char *msg;
};

static const struct err_entry err_table[] = {
    {JSON_OK, "JSON_OK", "success"},
    {JSON_E_SYNTAX, "JSON_E_SYNTAX", "syntax error"},
    {JSON_E_TRUNCATED, "JSON_E_TRUNCATED", "unexpected end of input"},
    {JSON_E_TRAILING, "JSON_E_TRAILING", "trailing data after the value"},
    {JSON_E_DEPTH, "JSON_E_DEPTH", "nesting too deep"},
    {JSON_E_TOKENS, "JSON_E_TOKENS", "too many tokens"},
    {JSON_E_MEMBERS, "JSON_E_MEMBERS", "too many object members"},
    {JSON_E_UTF8, "JSON_E_UTF8", "invalid UTF-8 in string"},
    {JSON_E_ESCAPE, "JSON_E_ESCAPE", "invalid escape sequence"},
    {JSON_E_SURROGATE, "JSON_E_SURROGATE", "unpaired surrogate in \\u escape"},
    {JSON_E_CONTROL, "JSON_E_CONTROL", "unescaped control character in string"},
    {JSON_E_NUMBER, "JSON_E_NUMBER", "number out of range"},
    {JSON_E_DUPLICATE, "JSON_E_DUPLICATE", "duplicate key in object"},
    {JSON_E_BOM, "JSON_E_BOM", "byte-order mark not allowed"},
    {JSON_E_NUL, "JSON_E_NUL", "NUL character not allowed"},
    {JSON_E_TOO_LARGE, "JSON_E_TOO_LARGE", "input too large"},
    {JSON_E_INVAL, "JSON_E_INVAL", "invalid argument"},
    {JSON_E_TYPE, "JSON_E_TYPE", "value has the wrong type"},
    {JSON_E_INTEGER, "JSON_E_INTEGER", "number is not an integer"},
    {JSON_E_RANGE, "JSON_E_RANGE", "integer out of range"},
    {JSON_E_SPACE, "JSON_E_SPACE", "output buffer too small"},
    {JSON_E_ESCAPED, "JSON_E_ESCAPED", "string has escapes"},
    {JSON_E_STATE, "JSON_E_STATE", "writer call out of order"},
    {JSON_E_NOMEM, "JSON_E_NOMEM", "out of memory"},
};

static const struct err_entry *err_find(int err) {
  for (size_t i = 0; i < sizeof err_table / sizeof err_table[0]; i++)
    if (err_table[i].code == err) return &err_table[i];
  return NULL;
}

const char *json_errname(int err) {
  const struct err_entry *e = err_find(err);
  return e ? e->name : "JSON_E_UNKNOWN";
}

const char *json_strerror(int err) {
  const struct err_entry *e = err_find(err);
  return e ? e->msg : "unknown error";
}

const char *json_describe_error(int err, size_t offset, char *out, size_t cap) {
  if (!out || cap == 0) return out;
  if (offset == SIZE_MAX)
    snprintf(out, cap, "%s", json_strerror(err));
  else
    snprintf(out, cap, "%s at byte %zu", json_strerror(err), offset);
  return out;
}

int json_tsr_error(int err) {
  switch (err) {
  case JSON_OK: return TSR_OK;
  case JSON_E_DEPTH:
  case JSON_E_TOKENS:
  case JSON_E_MEMBERS:
  case JSON_E_TOO_LARGE: return TSR_ELIMIT;
  case JSON_E_INVAL:
  case JSON_E_STATE:
  case JSON_E_SPACE: return TSR_EINVAL;
  case JSON_E_NOMEM: return TSR_ENOMEM;
  default: return TSR_EDECODE;
  }
}

/* -------------------------------------------------------------- UTF-8 */

/* UTF-8 encoding of a code point (validation is proto/utf8.h). */
static size_t u8_put(uint32_t cp, uint8_t out[4]) {
  if (cp < 0x80) {
    out[0] = (uint8_t)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (uint8_t)(0xc0 | (cp >> 6));
    out[1] = (uint8_t)(0x80 | (cp & 0x3f));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (uint8_t)(0xe0 | (cp >> 12));
    out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
    out[2] = (uint8_t)(0x80 | (cp & 0x3f));
    return 3;
  }
  out[0] = (uint8_t)(0xf0 | (cp >> 18));
  out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
  out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
  out[3] = (uint8_t)(0x80 | (cp & 0x3f));
  return 4;
}

static int hexval(uint8_t c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Reads 4 hex digits at p[0..avail): the value, -1 if a non-hex byte
 * comes first, -2 if the input ends first. */
static int32_t hex4(const uint8_t *p, size_t avail) {
  int32_t v = 0;
  for (size_t k = 0; k < 4; k++) {
    if (k >= avail) return -2;
    int h = hexval(p[k]);
    if (h < 0) return -1;
    v = (v << 4) | h;
  }
  return v;
}

#define FNV_INIT 2166136261u
static inline uint32_t fnv_byte(uint32_t h, uint8_t b) { return (h ^ b) * 16777619u; }

/* ----------------------------------------------- decoded string cursor */

/* Walks the decoded bytes of a string token that json_parse validated.
 * Bounds are still checked, so a mismatched buf cannot cause a bad read. */
typedef struct {
  const uint8_t *s;
  size_t pos, end;
  uint8_t pend[4];
  uint8_t npend, ipend;
} dec_cursor;

static void dec_init(dec_cursor *c, const char *buf, const json_token *t) {
  c->s = (const uint8_t *)buf;
  c->pos = t->start;
  c->end = t->end;
  c->npend = c->ipend = 0;
}

/* Next decoded byte, or -1 at the end (or on a malformed escape). */
static int dec_next(dec_cursor *c) {
  if (c->ipend < c->npend) return c->pend[c->ipend++];
  if (c->pos >= c->end) return -1;
  uint8_t ch = c->s[c->pos];
  if (ch != '\\') {
    c->pos++;
    return ch;
  }
  if (c->end - c->pos < 2) return -1;
  uint8_t e = c->s[c->pos + 1];
  c->pos += 2;
  switch (e) {
  case '"': return '"';
  case '\\': return '\\';
  case '/': return '/';
  case 'b': return '\b';
  case 'f': return '\f';
  case 'n': return '\n';
  case 'r': return '\r';
  case 't': return '\t';
  case 'u': break;
  default: return -1;
  }
  int32_t cp = hex4(c->s + c->pos, c->end - c->pos);
  if (cp < 0) return -1;
  c->pos += 4;
  if (cp >= 0xd800 && cp <= 0xdbff) {
    if (c->end - c->pos < 6 || c->s[c->pos] != '\\' || c->s[c->pos + 1] != 'u') return -1;
    int32_t lo = hex4(c->s + c->pos + 2, 4);
    if (lo < 0xdc00 || lo > 0xdfff) return -1;
    c->pos += 6;
    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
  }
  c->npend = (uint8_t)u8_put((uint32_t)cp, c->pend);
  c->ipend = 1;
  return c->pend[0];
}

static bool tok_eq_bytes(const char *buf, const json_token *t, const char *s, size_t n) {
  if (t->size != n) return false;
  if (!(t->flags & JSON_TOKF_ESCAPED)) return n == 0 || memcmp(buf + t->start, s, n) == 0;
  dec_cursor c;
  dec_init(&c, buf, t);
  for (size_t k = 0; k < n; k++)
    if (dec_next(&c) != (uint8_t)s[k]) return false;
  return dec_next(&c) == -1;
}

static bool tok_eq_tok(const char *buf, const json_token *a, const json_token *b) {
  if (a->size != b->size || a->hash != b->hash) return false;
  if (!(a->flags & JSON_TOKF_ESCAPED))
    return tok_eq_bytes(buf, b, buf + a->start, a->size);
  if (!(b->flags & JSON_TOKF_ESCAPED))
    return tok_eq_bytes(buf, a, buf + b->start, b->size);
  dec_cursor ca, cb;
  dec_init(&ca, buf, a);
  dec_init(&cb, buf, b);
  for (;;) {
    int x = dec_next(&ca), y = dec_next(&cb);
    if (x != y) return false;
    if (x < 0) return true;
  }
}

/* ------------------------------------------------------------- numbers */

#define NUMF_INTEGER 1
#define NUMF_NEGATIVE 2

/* Compares the significant digits of a number, starting after skipping
 * `skip` leading zeros of the digit stream int[is,ie) ++ frac[fs,fe), with
 * "9007199254740992" (2^53): true when they are greater. */
static bool digits_exceed_2p53(const uint8_t *s, size_t is, size_t ie, size_t fs,
                               size_t fe, size_t skip) {
  static const char lim[] = "9007199254740992";
  size_t k = 0, nint = ie - is, total = nint + (fe - fs);
  for (size_t d = skip; d < total; d++, k++) {
    uint8_t c = d < nint ? s[is + d] : s[fs + (d - nint)];
    if (k < 16) {
      if (c != (uint8_t)lim[k]) return c > (uint8_t)lim[k];
    } else if (c != '0') {
      return true;
    }
  }
  return false; /* equal, or shorter and so padded with zeros: not greater */
}

/* Scans a number at s[pos..len). On success sets *endp and *flags. On
 * failure returns the error and sets *errp. The grammar is RFC 8259's; the
 * range rule is the one in json.h. */
static int scan_number(const uint8_t *s, size_t len, size_t pos, size_t *endp,
                       uint8_t *flags, size_t *errp) {
  size_t p = pos;
  uint8_t f = NUMF_INTEGER;
  if (s[p] == '-') {
    f |= NUMF_NEGATIVE;
    p++;
  }
  if (p >= len) return *errp = len, JSON_E_TRUNCATED;
  size_t is = p;
  if (s[p] == '0') {
    p++;
    if (p < len && s[p] >= '0' && s[p] <= '9') return *errp = p, JSON_E_SYNTAX;
  } else if (s[p] >= '1' && s[p] <= '9') {
    while (p < len && s[p] >= '0' && s[p] <= '9') p++;
  } else {
    return *errp = p, JSON_E_SYNTAX;
  }
  size_t ie = p, fs = p, fe = p;
  int64_t exp = 0;
  if (p < len && s[p] == '.') {
    f &= (uint8_t)~NUMF_INTEGER;
    p++;
    fs = p;
    if (p >= len) return *errp = len, JSON_E_TRUNCATED;
    if (s[p] < '0' || s[p] > '9') return *errp = p, JSON_E_SYNTAX;
    while (p < len && s[p] >= '0' && s[p] <= '9') p++;
    fe = p;
  }
  if (p < len && (s[p] == 'e' || s[p] == 'E')) {
    f &= (uint8_t)~NUMF_INTEGER;
    p++;
    bool eneg = false;
    if (p < len && (s[p] == '+' || s[p] == '-')) eneg = s[p++] == '-';
    if (p >= len) return *errp = len, JSON_E_TRUNCATED;
    if (s[p] < '0' || s[p] > '9') return *errp = p, JSON_E_SYNTAX;
    for (; p < len && s[p] >= '0' && s[p] <= '9'; p++)
      if (exp < 1000000000) exp = exp * 10 + (s[p] - '0'); /* saturates */
    if (eneg) exp = -exp;
  }

  if (f & NUMF_INTEGER) {
    /* Exact integer: must fit int64 (negative) or uint64. */
    uint64_t mag = 0;
    for (size_t k = is; k < ie; k++) {
      uint64_t d = (uint64_t)(s[k] - '0');
      if (mag > (UINT64_MAX - d) / 10) return *errp = pos, JSON_E_NUMBER;
      mag = mag * 10 + d;
    }
    if ((f & NUMF_NEGATIVE) && mag > (uint64_t)1 << 63) return *errp = pos, JSON_E_NUMBER;
  } else {
    /* value = 0.ddd * 10^e10 over the significant digits. */
    size_t nint = ie - is, total = nint + (fe - fs), z = 0;
    while (z < total && (z < nint ? s[is + z] : s[fs + (z - nint)]) == '0') z++;
    if (z < total) {
      int64_t e10 = (int64_t)nint - (int64_t)z + exp;
      if (e10 > 16 || e10 < -306) return *errp = pos, JSON_E_NUMBER;
      if (e10 == 16 && digits_exceed_2p53(s, is, ie, fs, fe, z))
        return *errp = pos, JSON_E_NUMBER;
    }
  }
  *endp = p;
  *flags = f;
  return 0;
}

/* -------------------------------------------------------------- parser */

typedef struct {
  const uint8_t *s;
  size_t len, pos;
  json_token *toks;
  size_t cap, n;
  uint32_t max_depth, max_members;
  size_t depth;
  size_t err_off;
  uint32_t stack[JSON_DEPTH_MAX]; /* indices of the open containers */
} parser;

static int fail(parser *p, int err, size_t off) {
  p->err_off = off;
  return err;
}

static void skip_ws(parser *p) {
  while (p->pos < p->len) {
    uint8_t c = p->s[p->pos];
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
    p->pos++;
  }
}

static int new_token(parser *p, json_type type, size_t start, size_t end) {
  if (p->n >= p->cap) return fail(p, JSON_E_TOKENS, start);
  json_token *t = &p->toks[p->n];
  *t = (json_token){.type = (uint8_t)type,
                    .start = (uint32_t)start,
                    .end = (uint32_t)end,
                    .next = (uint32_t)(p->n + 1)};
  return (int)p->n++;
}

/* Parses the string whose opening quote is at p->pos into a new token. */
static int parse_string(parser *p, bool key) {
  const uint8_t *s = p->s;
  size_t len = p->len, i = p->pos + 1;
  uint32_t h = FNV_INIT, dlen = 0;
  uint8_t flags = key ? JSON_TOKF_KEY : 0;
  for (;;) {
    if (i >= len) return fail(p, JSON_E_TRUNCATED, len);
    uint8_t c = s[i];
    if (c == '"') break;
    if (c < 0x20) return fail(p, JSON_E_CONTROL, i);
    if (c < 0x80 && c != '\\') {
      h = fnv_byte(h, c);
      dlen++;
      i++;
      continue;
    }
    if (c >= 0x80) {
      /* One multi-byte sequence, through the shared validator. */
      utf8_state st = UTF8_ACCEPT;
      size_t k = i;
      do {
        st = utf8_step(st, s + k, 1);
        h = fnv_byte(h, s[k++]);
      } while (st != UTF8_ACCEPT && st != UTF8_REJECT && k < len);
      if (st == UTF8_REJECT) return fail(p, JSON_E_UTF8, i);
      if (st != UTF8_ACCEPT) return fail(p, JSON_E_TRUNCATED, len);
      dlen += (uint32_t)(k - i);
      i = k;
      continue;
    }
    /* Escape. */
    flags |= JSON_TOKF_ESCAPED;
    size_t esc = i;
    if (i + 1 >= len) return fail(p, JSON_E_TRUNCATED, len);
    uint8_t e = s[i + 1], simple = 0;
    switch (e) {
    case '"': simple = '"'; break;
    case '\\': simple = '\\'; break;
    case '/': simple = '/'; break;
    case 'b': simple = '\b'; break;
    case 'f': simple = '\f'; break;
    case 'n': simple = '\n'; break;
    case 'r': simple = '\r'; break;
    case 't': simple = '\t'; break;
    case 'u': break;
    default: return fail(p, JSON_E_ESCAPE, esc);
    }
    if (simple) {
      h = fnv_byte(h, simple);
      dlen++;
      i += 2;
      continue;
    }
    int32_t cp = hex4(s + i + 2, len - (i + 2));
    if (cp == -2) return fail(p, JSON_E_TRUNCATED, len);
    if (cp < 0) return fail(p, JSON_E_ESCAPE, esc);
    i += 6;
    if (cp >= 0xdc00 && cp <= 0xdfff) return fail(p, JSON_E_SURROGATE, esc);
    if (cp >= 0xd800 && cp <= 0xdbff) {
      /* A high surrogate must be followed at once by \u and a low one. */
      if (i >= len || (s[i] == '\\' && i + 1 >= len))
        return fail(p, JSON_E_TRUNCATED, len);
      if (s[i] != '\\' || s[i + 1] != 'u') return fail(p, JSON_E_SURROGATE, esc);
      int32_t lo = hex4(s + i + 2, len - (i + 2));
      if (lo == -2) return fail(p, JSON_E_TRUNCATED, len);
      if (lo < 0) return fail(p, JSON_E_ESCAPE, i);
      if (lo < 0xdc00 || lo > 0xdfff) return fail(p, JSON_E_SURROGATE, esc);
      i += 6;
      cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
    }
    if (cp == 0) flags |= JSON_TOKF_NUL;
    uint8_t u[4];
    size_t n = u8_put((uint32_t)cp, u);
    for (size_t k = 0; k < n; k++) h = fnv_byte(h, u[k]);
    dlen += (uint32_t)n;
  }
  int t = new_token(p, JSON_STRING, p->pos + 1, i);
  if (t < 0) return t;
  p->toks[t].flags = flags;
  p->toks[t].size = dlen;
  p->toks[t].hash = h;
  p->pos = i + 1;
  return t;
}

/* Parses `"key" :` of the object on top of the stack; counts the member
 * and refuses a duplicate. */
static int parse_key(parser *p) {
  uint32_t obj = p->stack[p->depth - 1];
  skip_ws(p);
  if (p->pos >= p->len) return fail(p, JSON_E_TRUNCATED, p->len);
  if (p->s[p->pos] != '"') return fail(p, JSON_E_SYNTAX, p->pos);
  size_t at = p->pos;
  if (p->toks[obj].size >= p->max_members) return fail(p, JSON_E_MEMBERS, at);
  int k = parse_string(p, true);
  if (k < 0) return k;
  const json_token *kt = &p->toks[k];
  /* Earlier keys: each value before this key is complete, so its next is set. */
  for (uint32_t j = obj + 1; j < (uint32_t)k; j = p->toks[j + 1].next)
    if (tok_eq_tok((const char *)p->s, &p->toks[j], kt))
      return fail(p, JSON_E_DUPLICATE, at);
  p->toks[obj].size++;
  skip_ws(p);
  if (p->pos >= p->len) return fail(p, JSON_E_TRUNCATED, p->len);
  if (p->s[p->pos] != ':') return fail(p, JSON_E_SYNTAX, p->pos);
  p->pos++;
  return 0;
}

static int parse_literal(parser *p, const char *word, json_type type) {
  size_t n = strlen(word);
  for (size_t k = 0; k < n; k++) {
    if (p->pos + k >= p->len) return fail(p, JSON_E_TRUNCATED, p->len);
    if (p->s[p->pos + k] != (uint8_t)word[k]) return fail(p, JSON_E_SYNTAX, p->pos + k);
  }
  int t = new_token(p, type, p->pos, p->pos + n);
  if (t < 0) return t;
  p->pos += n;
  return 0;
}

/* Parses the value at p->pos. Returns 1 when it opened a non-empty
 * container (a child value comes next), 0 when the value is complete. */
static int parse_value(parser *p) {
  skip_ws(p);
  if (p->pos >= p->len) return fail(p, JSON_E_TRUNCATED, p->len);
  if (p->depth > 0) {
    json_token *parent = &p->toks[p->stack[p->depth - 1]];
    if (parent->type == JSON_ARRAY) parent->size++;
  }
  uint8_t c = p->s[p->pos];
  switch (c) {
  case '{':
  case '[': {
    bool obj = c == '{';
    if (p->depth >= p->max_depth) return fail(p, JSON_E_DEPTH, p->pos);
    int t = new_token(p, obj ? JSON_OBJECT : JSON_ARRAY, p->pos, p->pos + 1);
    if (t < 0) return t;
    p->stack[p->depth++] = (uint32_t)t;
    p->pos++;
    skip_ws(p);
    if (p->pos >= p->len) return fail(p, JSON_E_TRUNCATED, p->len);
    if (p->s[p->pos] == (obj ? '}' : ']')) {
      p->pos++;
      p->toks[t].end = (uint32_t)p->pos;
      p->toks[t].next = (uint32_t)p->n;
      p->depth--;
      return 0;
    }
    if (obj) {
      int rc = parse_key(p);
      if (rc < 0) return rc;
    }
    return 1;
  }
  case '"': {
    int t = parse_string(p, false);
    return t < 0 ? t : 0;
  }
  case 't': return parse_literal(p, "true", JSON_TRUE);
  case 'f': return parse_literal(p, "false", JSON_FALSE);
  case 'n': return parse_literal(p, "null", JSON_NULL);
  default: break;
  }
  if (c == '-' || (c >= '0' && c <= '9')) {
    size_t end;
    uint8_t nf;
    int rc = scan_number(p->s, p->len, p->pos, &end, &nf, &p->err_off);
    if (rc) return rc;
    int t = new_token(p, JSON_NUMBER, p->pos, end);
    if (t < 0) return t;
    p->toks[t].flags = (uint8_t)(((nf & NUMF_INTEGER) ? JSON_TOKF_INTEGER : 0) |
                                 ((nf & NUMF_NEGATIVE) ? JSON_TOKF_NEGATIVE : 0));
    p->pos = end;
    return 0;
  }
  return fail(p, JSON_E_SYNTAX, p->pos);
}

/* After a complete value: closes containers as their brackets come.
 * Returns 1 when another value follows (after a comma, and a key in an
 * object), 0 at the end of the document. */
static int after_value(parser *p) {
  for (;;) {
    skip_ws(p);
    if (p->depth == 0) return p->pos == p->len ? 0 : fail(p, JSON_E_TRAILING, p->pos);
    if (p->pos >= p->len) return fail(p, JSON_E_TRUNCATED, p->len);
    uint32_t top = p->stack[p->depth - 1];
    bool obj = p->toks[top].type == JSON_OBJECT;
    uint8_t c = p->s[p->pos];
    if (c == ',') {
      p->pos++;
      if (obj) {
        int rc = parse_key(p);
        if (rc < 0) return rc;
      }
      return 1;
    }
    if (c != (obj ? '}' : ']')) return fail(p, JSON_E_SYNTAX, p->pos);
    p->pos++;
    p->toks[top].end = (uint32_t)p->pos;
    p->toks[top].next = (uint32_t)p->n;
    p->depth--;
  }
}

int json_parse_ex(const char *buf, size_t len, json_token *toks, size_t cap,
                  const json_limits *lim, size_t *err_offset) {
  size_t off = 0;
  int rc = JSON_E_INVAL;
  if ((!buf && len) || (!toks && cap)) goto out;
  rc = JSON_E_TOO_LARGE;
  if (len > JSON_MAX_INPUT) goto out;
  const uint8_t *s = (const uint8_t *)buf;
  rc = JSON_E_BOM;
  if (len >= 3 && s[0] == 0xef && s[1] == 0xbb && s[2] == 0xbf) goto out;
  if (len >= 2 && ((s[0] == 0xfe && s[1] == 0xff) || (s[0] == 0xff && s[1] == 0xfe)))
    goto out;
  const void *nul = len ? memchr(s, 0, len) : NULL;
  if (nul) {
    off = (size_t)((const uint8_t *)nul - s);
    rc = JSON_E_NUL;
    goto out;
  }

  parser p;
  p.s = s;
  p.len = len;
  p.pos = 0;
  p.toks = toks;
  p.cap = cap > JSON_MAX_INPUT ? JSON_MAX_INPUT : cap;
  p.n = 0;
  p.max_depth = lim && lim->max_depth ? lim->max_depth : JSON_DEFAULT_DEPTH;
  if (p.max_depth > JSON_DEPTH_MAX) p.max_depth = JSON_DEPTH_MAX;
  p.max_members = lim && lim->max_members ? lim->max_members : JSON_DEFAULT_MEMBERS;
  p.depth = 0;
  p.err_off = 0;
  for (;;) {
    rc = parse_value(&p);
    if (rc == 1) continue;
    if (rc == 0) rc = after_value(&p);
    if (rc == 1) continue;
    break;
  }
  if (rc == 0) return (int)p.n;
  off = p.err_off;
out:
  if (err_offset) *err_offset = off;
  return rc;
}

int json_parse(const char *buf, size_t len, json_token *toks, size_t cap,
               const json_limits *lim) {
  return json_parse_ex(buf, len, toks, cap, lim, NULL);
}

/* ----------------------------------------------------------- accessors */

int json_object_getn(const char *buf, const json_token *toks, int obj, const char *key,
                     size_t keylen) {
  if (obj < 0 || toks[obj].type != JSON_OBJECT || (!key && keylen)) return -1;
  uint32_t h = FNV_INIT;
  for (size_t k = 0; k < keylen; k++) h = fnv_byte(h, (uint8_t)key[k]);
  uint32_t j = (uint32_t)obj + 1;
  for (uint32_t m = 0; m < toks[obj].size; m++, j = toks[j + 1].next) {
    const json_token *t = &toks[j];
    if (t->hash == h && tok_eq_bytes(buf, t, key, keylen)) return (int)j + 1;
  }
  return -1;
}

int json_object_get(const char *buf, const json_token *toks, int obj, const char *key) {
  if (!key) return -1;
  return json_object_getn(buf, toks, obj, key, strlen(key));
}

int json_first_child(const json_token *toks, int parent) {
  if (parent < 0) return -1;
  const json_token *t = &toks[parent];
  if ((t->type != JSON_OBJECT && t->type != JSON_ARRAY) || t->size == 0) return -1;
  return parent + 1;
}

int json_next_sibling(const json_token *toks, int parent, int i) {
  if (parent < 0 || i <= parent) return -1;
  uint32_t n = toks[i].next;
  return n < toks[parent].next ? (int)n : -1;
}

int json_get_string(const char *buf, const json_token *toks, int i, char *out, size_t cap,
                    size_t *len, unsigned flags) {
  if (i < 0 || !out) return JSON_E_INVAL;
  const json_token *t = &toks[i];
  if (t->type != JSON_STRING) return JSON_E_TYPE;
  if ((t->flags & JSON_TOKF_NUL) && !(flags & JSON_STR_ALLOW_NUL)) return JSON_E_NUL;
  if (cap <= t->size) return JSON_E_SPACE;
  if (!(t->flags & JSON_TOKF_ESCAPED)) {
    if (t->size) memcpy(out, buf + t->start, t->size);
  } else {
    dec_cursor c;
    dec_init(&c, buf, t);
    for (uint32_t k = 0; k < t->size; k++) {
      int b = dec_next(&c);
      if (b < 0) return JSON_E_INVAL; /* tokens do not belong to buf */
      out[k] = (char)b;
    }
  }
  out[t->size] = '\0';
  if (len) *len = t->size;
  return 0;
}

int json_get_string_view(const char *buf, const json_token *toks, int i, const char **p,
                         size_t *len) {
  if (i < 0 || !p || !len) return JSON_E_INVAL;
  const json_token *t = &toks[i];
  if (t->type != JSON_STRING) return JSON_E_TYPE;
  if (t->flags & JSON_TOKF_ESCAPED) return JSON_E_ESCAPED;
  *p = buf + t->start;
  *len = t->size;
  return 0;
}

bool json_string_eq(const char *buf, const json_token *toks, int i, const char *s,
                    size_t n) {
  if (i < 0 || toks[i].type != JSON_STRING || (!s && n)) return false;
  return tok_eq_bytes(buf, &toks[i], s, n);
}

/* Magnitude of an integer token; JSON_E_TYPE / JSON_E_INTEGER / JSON_E_RANGE. */
static int int_magnitude(const char *buf, const json_token *t, uint64_t *mag, bool *neg) {
  if (t->type != JSON_NUMBER) return JSON_E_TYPE;
  if (!(t->flags & JSON_TOKF_INTEGER)) return JSON_E_INTEGER;
  const uint8_t *s = (const uint8_t *)buf;
  size_t p = t->start, end = t->end;
  *neg = p < end && s[p] == '-';
  if (*neg) p++;
  if (p >= end || (s[p] == '0' && end - p > 1)) return JSON_E_INTEGER;
  uint64_t m = 0;
  for (; p < end; p++) {
    if (s[p] < '0' || s[p] > '9') return JSON_E_INTEGER;
    uint64_t d = (uint64_t)(s[p] - '0');
    if (m > (UINT64_MAX - d) / 10) return JSON_E_RANGE;
    m = m * 10 + d;
  }
  *mag = m;
  return 0;
}

int json_get_i64(const char *buf, const json_token *toks, int i, int64_t *out) {
  if (i < 0 || !out) return JSON_E_INVAL;
  uint64_t m;
  bool neg;
  int rc = int_magnitude(buf, &toks[i], &m, &neg);
  if (rc) return rc;
  if (neg) {
    if (m > (uint64_t)INT64_MAX + 1) return JSON_E_RANGE;
    *out = m == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)m;
  } else {
    if (m > (uint64_t)INT64_MAX) return JSON_E_RANGE;
    *out = (int64_t)m;
  }
  return 0;
}

int json_get_u64(const char *buf, const json_token *toks, int i, uint64_t *out) {
  if (i < 0 || !out) return JSON_E_INVAL;
  uint64_t m;
  bool neg;
  int rc = int_magnitude(buf, &toks[i], &m, &neg);
  if (rc) return rc;
  if (neg) return JSON_E_RANGE;
  *out = m;
  return 0;
}

int json_get_bool(const json_token *toks, int i, bool *out) {
  if (i < 0 || !out) return JSON_E_INVAL;
  if (toks[i].type == JSON_TRUE) {
    *out = true;
  } else if (toks[i].type == JSON_FALSE) {
    *out = false;
  } else {
    return JSON_E_TYPE;
  }
  return 0;
}

bool json_is_null(const json_token *toks, int i) {
  return i >= 0 && toks[i].type == JSON_NULL;
}

/* -------------------------------------------------------------- writer */

#define LV_OBJECT 0x01 /* container is an object */
#define LV_ITEMS 0x02  /* at least one member/element written */
#define LV_KEY 0x04    /* key written, its value is due */

void json_writer_init(json_writer *w, buf_t *out, uint32_t max_depth) {
  memset(w, 0, sizeof *w);
  w->out = out;
  w->max_depth = max_depth ? max_depth : JSON_DEFAULT_DEPTH;
  if (w->max_depth > JSON_DEPTH_MAX) w->max_depth = JSON_DEPTH_MAX;
  if (!out) w->err = JSON_E_INVAL;
}

int json_writer_finish(const json_writer *w) {
  if (w->err) return w->err;
  return w->depth == 0 && w->done ? 0 : JSON_E_STATE;
}

static int w_fail(json_writer *w, int err) { return w->err = err; }

static int w_put(json_writer *w, const void *p, size_t n) {
  if (buf_append(w->out, p, n)) return w_fail(w, JSON_E_NOMEM);
  return 0;
}

/* Checks that a value may come now, without writing. */
static int w_check_value(json_writer *w) {
  if (w->err) return w->err;
  if (w->depth == 0) return w->done ? w_fail(w, JSON_E_STATE) : 0;
  uint8_t lv = w->level[w->depth - 1];
  if ((lv & LV_OBJECT) && !(lv & LV_KEY)) return w_fail(w, JSON_E_STATE);
  return 0;
}

/* Writes the separator due before a value and updates the state. */
static int w_begin_value(json_writer *w) {
  if (w->depth == 0) return 0;
  uint8_t *lv = &w->level[w->depth - 1];
  if (*lv & LV_OBJECT) {
    *lv &= (uint8_t)~LV_KEY;
    return 0;
  }
  bool comma = *lv & LV_ITEMS;
  *lv |= LV_ITEMS;
  return comma ? w_put(w, ",", 1) : 0;
}

static void w_end_value(json_writer *w) {
  if (w->depth == 0) w->done = true;
}

static int w_escaped(json_writer *w, const uint8_t *s, size_t len) {
  static const char hex[] = "0123456789abcdef";
  size_t run = 0;
  if (w_put(w, "\"", 1)) return w->err;
  for (size_t i = 0; i < len; i++) {
    uint8_t c = s[i];
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    if (i > run && w_put(w, s + run, i - run)) return w->err;
    run = i + 1;
    char e[6] = {'\\', 0, 0, 0, 0, 0};
    size_t n = 2;
    switch (c) {
    case '"': e[1] = '"'; break;
    case '\\': e[1] = '\\'; break;
    case '\b': e[1] = 'b'; break;
    case '\f': e[1] = 'f'; break;
    case '\n': e[1] = 'n'; break;
    case '\r': e[1] = 'r'; break;
    case '\t': e[1] = 't'; break;
    default:
      e[1] = 'u';
      e[2] = '0';
      e[3] = '0';
      e[4] = hex[c >> 4];
      e[5] = hex[c & 15];
      n = 6;
    }
    if (w_put(w, e, n)) return w->err;
  }
  if (len > run && w_put(w, s + run, len - run)) return w->err;
  return w_put(w, "\"", 1);
}

static int w_begin(json_writer *w, bool obj) {
  int rc = w_check_value(w);
  if (rc) return rc;
  if (w->depth >= w->max_depth) return w_fail(w, JSON_E_DEPTH);
  if ((rc = w_begin_value(w))) return rc;
  w->level[w->depth++] = obj ? LV_OBJECT : 0;
  return w_put(w, obj ? "{" : "[", 1);
}

static int w_end(json_writer *w, bool obj) {
  if (w->err) return w->err;
  if (w->depth == 0) return w_fail(w, JSON_E_STATE);
  uint8_t lv = w->level[w->depth - 1];
  if (((lv & LV_OBJECT) != 0) != obj || (lv & LV_KEY)) return w_fail(w, JSON_E_STATE);
  w->depth--;
  if (w_put(w, obj ? "}" : "]", 1)) return w->err;
  w_end_value(w);
  return 0;
}

int json_write_object_begin(json_writer *w) { return w_begin(w, true); }
int json_write_object_end(json_writer *w) { return w_end(w, true); }
int json_write_array_begin(json_writer *w) { return w_begin(w, false); }
int json_write_array_end(json_writer *w) { return w_end(w, false); }

int json_write_key_n(json_writer *w, const char *key, size_t len) {
  if (w->err) return w->err;
  if (!key && len) return w_fail(w, JSON_E_INVAL);
  if (w->depth == 0) return w_fail(w, JSON_E_STATE);
  uint8_t *lv = &w->level[w->depth - 1];
  if (!(*lv & LV_OBJECT) || (*lv & LV_KEY)) return w_fail(w, JSON_E_STATE);
  if (!utf8_valid((const uint8_t *)key, len)) return w_fail(w, JSON_E_UTF8);
  bool comma = *lv & LV_ITEMS;
  *lv |= LV_ITEMS | LV_KEY;
  if (comma && w_put(w, ",", 1)) return w->err;
  if (w_escaped(w, (const uint8_t *)key, len)) return w->err;
  return w_put(w, ":", 1);
}

int json_write_key(json_writer *w, const char *key) {
  if (w->err) return w->err;
  if (!key) return w_fail(w, JSON_E_INVAL);
  return json_write_key_n(w, key, strlen(key));
}

int json_write_string_n(json_writer *w, const char *s, size_t len) {
  int rc = w_check_value(w);
  if (rc) return rc;
  if (!s && len) return w_fail(w, JSON_E_INVAL);
  if (!utf8_valid((const uint8_t *)s, len)) return w_fail(w, JSON_E_UTF8);
  if ((rc = w_begin_value(w)) || (rc = w_escaped(w, (const uint8_t *)s, len))) return rc;
  w_end_value(w);
  return 0;
}

int json_write_string(json_writer *w, const char *s) {
  if (w->err) return w->err;
  if (!s) return w_fail(w, JSON_E_INVAL);
  return json_write_string_n(w, s, strlen(s));
}

/* Writes a bare (unquoted) scalar that the caller has validated. */
static int w_scalar(json_writer *w, const char *text, size_t len) {
  int rc = w_check_value(w);
  if (rc) return rc;
  if ((rc = w_begin_value(w)) || (rc = w_put(w, text, len))) return rc;
  w_end_value(w);
  return 0;
}

int json_write_u64(json_writer *w, uint64_t v) {
  char tmp[24];
  size_t n = sizeof tmp;
  do {
    tmp[--n] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  return w_scalar(w, tmp + n, sizeof tmp - n);
}

int json_write_i64(json_writer *w, int64_t v) {
  char tmp[24];
  size_t n = sizeof tmp;
  /* Magnitude in unsigned arithmetic: -INT64_MIN does not fit int64. */
  uint64_t m = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  do {
    tmp[--n] = (char)('0' + m % 10);
    m /= 10;
  } while (m);
  if (v < 0) tmp[--n] = '-';
  return w_scalar(w, tmp + n, sizeof tmp - n);
}

int json_write_bool(json_writer *w, bool v) {
  return v ? w_scalar(w, "true", 4) : w_scalar(w, "false", 5);
}

int json_write_null(json_writer *w) { return w_scalar(w, "null", 4); }

int json_write_number(json_writer *w, const char *text, size_t len) {
  if (w->err) return w->err;
  if (!text || len == 0 || len > JSON_MAX_INPUT) return w_fail(w, JSON_E_SYNTAX);
  size_t end, errp;
  uint8_t nf;
  int rc = scan_number((const uint8_t *)text, len, 0, &end, &nf, &errp);
  if (rc) return w_fail(w, rc == JSON_E_NUMBER ? rc : JSON_E_SYNTAX);
  if (end != len) return w_fail(w, JSON_E_SYNTAX);
  return w_scalar(w, text, len);
}

int json_write_base64url(json_writer *w, bytes_t data) {
  int rc = w_check_value(w);
  if (rc) return rc;
  if (!data.ptr && data.len) return w_fail(w, JSON_E_INVAL);
  size_t need = b64_encoded_len(data.len, B64_MODE_URL_NOPAD), n;
  if (need == 0 && data.len) return w_fail(w, JSON_E_NOMEM); /* size_t overflow */
  if ((rc = w_begin_value(w)) || (rc = w_put(w, "\"", 1))) return rc;
  char *dst = (char *)buf_extend(w->out, need);
  if (!dst) return w_fail(w, JSON_E_NOMEM);
  if (b64_encode(dst, need, data.ptr, data.len, B64_MODE_URL_NOPAD, &n) || n != need)
    return w_fail(w, JSON_E_INVAL);
  if (w_put(w, "\"", 1)) return w->err;
  w_end_value(w);
  return 0;
}
