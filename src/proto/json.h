/* JSON codec for protocol frames (RFC 8259), allocation-free on the read side.
 *
 * Reader. json_parse() is a pure function: it reads buf[0..len), writes up
 * to cap tokens into an array the caller owns, and returns the number of
 * tokens or a negative json_error. It never allocates, never calls back and
 * never keeps a pointer; tokens hold byte offsets into buf, so buf must
 * outlive every use of the tokens. On failure the contents of toks are
 * unspecified. The reader is stricter than RFC 8259 where the RFC leaves a
 * choice, so that a frame has exactly one meaning:
 *   - duplicate keys in an object, a leading byte-order mark and NUL bytes
 *     are refused;
 *   - strings must be valid UTF-8 and \u escapes must pair surrogates;
 *   - a number whose magnitude exceeds 2^53 must be written as a plain
 *     integer within [INT64_MIN, UINT64_MAX]; a nonzero number must not be
 *     smaller in magnitude than 1e-307 (it would underflow a double);
 *   - nesting, tokens and object members are bounded (json_limits).
 * Cost is linear in len, except the duplicate-key check, which costs
 * O(members^2) 32-bit hash comparisons per object (bounded by
 * json_limits.max_members) plus a byte comparison on each hash match.
 *
 * Token layout: a document is its tokens in pre-order. An object's
 * children are its keys and values alternating (key at k, its value at
 * k + 1); an array's children are its elements. Every token's subtree is
 * [i, toks[i].next), so toks[i].next is the next sibling when there is one
 * and lookups skip a whole subtree in O(1).
 *
 * Accessors take buf and tokens from one successful json_parse() of that
 * buf, and a valid token index; they allocate nothing and write their
 * outputs only on success.
 *
 * Writer. json_writer appends compact JSON to a buf_t the caller owns
 * (the only allocation, through buf_t). It tracks nesting and commas, and
 * its error is sticky: after the first failure every call is a no-op that
 * returns the same error, so a caller may check once, at json_writer_finish.
 * After an error the bytes appended to the buffer are unusable.
 *
 * Threads: no global state. Distinct parses and writers may run on any
 * threads; one json_writer or token array must not be used by two threads
 * at once. */
#ifndef TSR_PROTO_JSON_H
#define TSR_PROTO_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/bytes.h"

/* Error codes. Values and names (json_errname) are stable: they may appear
 * in logs and in protocol error replies. */
enum json_error {
  JSON_OK = 0,
  JSON_E_SYNTAX = -1,     /* unexpected byte (offset reported) */
  JSON_E_TRUNCATED = -2,  /* input ended inside a value */
  JSON_E_TRAILING = -3,   /* bytes after the top-level value */
  JSON_E_DEPTH = -4,      /* nesting deeper than the limit */
  JSON_E_TOKENS = -5,     /* token array too small */
  JSON_E_MEMBERS = -6,    /* object has more members than the limit */
  JSON_E_UTF8 = -7,       /* invalid UTF-8 in a string */
  JSON_E_ESCAPE = -8,     /* invalid escape sequence in a string */
  JSON_E_SURROGATE = -9,  /* unpaired UTF-16 surrogate in a \u escape */
  JSON_E_CONTROL = -10,   /* unescaped control character in a string */
  JSON_E_NUMBER = -11,    /* number out of the accepted range */
  JSON_E_DUPLICATE = -12, /* duplicate key in an object */
  JSON_E_BOM = -13,       /* leading byte-order mark */
  JSON_E_NUL = -14,       /* NUL byte in the input, or \u0000 not allowed here */
  JSON_E_TOO_LARGE = -15, /* input longer than JSON_MAX_INPUT */
  JSON_E_INVAL = -16,     /* bad argument from the caller */
  JSON_E_TYPE = -17,      /* token has another type than the accessor reads */
  JSON_E_INTEGER = -18,   /* number is not an integer (fraction or exponent) */
  JSON_E_RANGE = -19,     /* integer does not fit the requested type */
  JSON_E_SPACE = -20,     /* caller's output buffer too small */
  JSON_E_ESCAPED = -21,   /* string has escapes: no zero-copy view */
  JSON_E_STATE = -22,     /* writer call not valid here (key/value/end order) */
  JSON_E_NOMEM = -23,     /* output buffer could not grow */
};

/* Stable symbolic name ("JSON_E_SYNTAX") and a short human message of a
 * code. Never NULL; static storage. */
const char *json_errname(int err);
const char *json_strerror(int err);
/* Formats "<message> at byte <offset>" (or just the message when offset is
 * SIZE_MAX) into out, always NUL-terminated when cap > 0. Returns out. */
const char *json_describe_error(int err, size_t offset, char *out, size_t cap);
/* Maps a json_error to the closest TSR_E* code of tessera/error.h. */
int json_tsr_error(int err);

/* ---------------------------------------------------------------- reader */

typedef enum {
  JSON_OBJECT = 1,
  JSON_ARRAY = 2,
  JSON_STRING = 3,
  JSON_NUMBER = 4,
  JSON_TRUE = 5,
  JSON_FALSE = 6,
  JSON_NULL = 7,
} json_type;

/* Token flags. */
#define JSON_TOKF_KEY 0x01      /* string is an object key */
#define JSON_TOKF_ESCAPED 0x02  /* string contains at least one escape */
#define JSON_TOKF_NUL 0x04      /* string decodes to bytes containing NUL */
#define JSON_TOKF_INTEGER 0x08  /* number has no fraction and no exponent */
#define JSON_TOKF_NEGATIVE 0x10 /* number starts with '-' */

/* One parsed value. Offsets index the parsed buffer. Invariants:
 * start <= end <= len; i < next <= token count; for a string, [start, end)
 * is the content between the quotes (escapes not decoded). */
typedef struct {
  uint8_t type;   /* json_type */
  uint8_t flags;  /* JSON_TOKF_* */
  uint32_t start; /* first byte (strings: after the opening quote) */
  uint32_t end;   /* one past the last byte (strings: the closing quote) */
  uint32_t size;  /* object: members; array: elements; string: decoded
                     length in bytes; otherwise 0 */
  uint32_t next;  /* index of the first token after this subtree */
  uint32_t hash;  /* string: hash of the decoded bytes; otherwise 0 */
} json_token;

#define JSON_DEPTH_MAX 256         /* hard cap on nesting (reader and writer) */
#define JSON_DEFAULT_DEPTH 32      /* when json_limits.max_depth is 0 */
#define JSON_DEFAULT_MEMBERS 256   /* when json_limits.max_members is 0 */
#define JSON_MAX_INPUT 0x7fffffffu /* longest accepted input */

/* Parser limits; a zero field (or a NULL pointer) takes the default. */
typedef struct {
  uint32_t max_depth;   /* open arrays/objects at once; capped at JSON_DEPTH_MAX */
  uint32_t max_members; /* members of one object */
} json_limits;

/* Parses one JSON value (surrounded by optional whitespace) from
 * buf[0..len) into toks[0..cap). Returns the number of tokens written
 * (>= 1) or a negative json_error. buf need not be NUL-terminated. */
int json_parse(const char *buf, size_t len, json_token *toks, size_t cap,
               const json_limits *lim);
/* As json_parse; on failure also stores in *err_offset (if not NULL) the
 * byte offset where the error was found (len for JSON_E_TRUNCATED). */
int json_parse_ex(const char *buf, size_t len, json_token *toks, size_t cap,
                  const json_limits *lim, size_t *err_offset);

/* Index of the value of member key (NUL-terminated) of the object at obj,
 * or -1 when obj is not an object or has no such key. Keys are compared
 * after unescaping ("\u0061" matches "a"), without allocating. */
int json_object_get(const char *buf, const json_token *toks, int obj, const char *key);
/* As json_object_get for a key of keylen bytes (may contain NUL). */
int json_object_getn(const char *buf, const json_token *toks, int obj, const char *key,
                     size_t keylen);

/* Iteration over the children of a container at parent: first child or -1
 * when empty (or not a container); the sibling after child i, or -1 after
 * the last. For an object, children alternate key, value. */
int json_first_child(const json_token *toks, int parent);
int json_next_sibling(const json_token *toks, int parent, int i);

/* Flags for json_get_string. */
#define JSON_STR_ALLOW_NUL 0x01 /* accept \u0000 (output then not a C string) */

/* Unescapes the string (or key) at i into out[0..cap) and NUL-terminates
 * it; *len (if not NULL) receives the length without the terminator. Needs
 * cap > toks[i].size. Errors: JSON_E_TYPE, JSON_E_SPACE, JSON_E_NUL (the
 * string contains \u0000 and flags lacks JSON_STR_ALLOW_NUL). */
int json_get_string(const char *buf, const json_token *toks, int i, char *out, size_t cap,
                    size_t *len, unsigned flags);
/* Zero-copy view of a string without escapes: *p points into buf (not
 * NUL-terminated), *len bytes. JSON_E_ESCAPED when the string has escapes
 * (use json_get_string), JSON_E_TYPE when it is not a string. */
int json_get_string_view(const char *buf, const json_token *toks, int i, const char **p,
                         size_t *len);
/* True when the string at i decodes to exactly s[0..n). */
bool json_string_eq(const char *buf, const json_token *toks, int i, const char *s,
                    size_t n);

/* Integers: the number must be written without fraction or exponent and
 * fit the type. Errors: JSON_E_TYPE (not a number), JSON_E_INTEGER,
 * JSON_E_RANGE (overflow; any '-' for u64). */
int json_get_i64(const char *buf, const json_token *toks, int i, int64_t *out);
int json_get_u64(const char *buf, const json_token *toks, int i, uint64_t *out);
/* JSON_E_TYPE unless the token is true or false. */
int json_get_bool(const json_token *toks, int i, bool *out);
bool json_is_null(const json_token *toks, int i);

/* ---------------------------------------------------------------- writer */

/* Writer state; treat as opaque. Invariant: depth <= max_depth <=
 * JSON_DEPTH_MAX; level[0..depth) describes the open containers. */
typedef struct {
  buf_t *out;
  int err;        /* sticky json_error, 0 while healthy */
  uint32_t depth; /* open containers */
  uint32_t max_depth;
  bool done; /* the top-level value is complete */
  uint8_t level[JSON_DEPTH_MAX];
} json_writer;

/* Starts a document appended to out (not reset). max_depth 0 means
 * JSON_DEFAULT_DEPTH; larger than JSON_DEPTH_MAX is capped. The writer
 * borrows out; it owns no memory and needs no deinit. */
void json_writer_init(json_writer *w, buf_t *out, uint32_t max_depth);
/* 0 when exactly one complete value was written, else the sticky error or
 * JSON_E_STATE (containers still open, or nothing written). */
int json_writer_finish(const json_writer *w);

/* Each returns 0 or the (now sticky) error. A failed call checks before
 * writing, so it appends nothing unless the buffer itself fails. Keys and
 * strings must be valid UTF-8 (else JSON_E_UTF8); they are written with
 * quotes, backslashes and control characters escaped. The caller must not
 * write the same key twice in one object (readers refuse it). */
int json_write_object_begin(json_writer *w);
int json_write_object_end(json_writer *w);
int json_write_array_begin(json_writer *w);
int json_write_array_end(json_writer *w);
int json_write_key(json_writer *w, const char *key); /* NUL-terminated */
int json_write_key_n(json_writer *w, const char *key, size_t len);
int json_write_string(json_writer *w, const char *s); /* NUL-terminated */
int json_write_string_n(json_writer *w, const char *s, size_t len);
int json_write_i64(json_writer *w, int64_t v);
int json_write_u64(json_writer *w, uint64_t v);
int json_write_bool(json_writer *w, bool v);
int json_write_null(json_writer *w);
/* A number given as text (e.g. formatted elsewhere); it must be a valid
 * JSON number that json_parse accepts (else JSON_E_SYNTAX/JSON_E_NUMBER). */
int json_write_number(json_writer *w, const char *text, size_t len);
/* A string holding the base64url encoding (RFC 4648 §5, no padding) of data. */
int json_write_base64url(json_writer *w, bytes_t data);

#endif
