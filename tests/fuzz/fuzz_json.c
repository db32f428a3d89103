/* libFuzzer target for the JSON codec (src/proto/json.c).
 *
 * The input is parsed as one document. When it is accepted:
 *   - every token's offsets, sizes and subtree links must be consistent;
 *   - every token is read back through the accessors (strings both copied
 *     and, when unescaped, as views; integers; booleans; every object key
 *     found again by json_object_getn);
 *   - the document is re-serialised through json_writer, which must accept
 *     every value the reader accepted, and the output must parse to the
 *     same token structure with the same decoded values;
 *   - serialising that second parse must give identical bytes;
 *   - parsing with one token too few must fail with JSON_E_TOKENS.
 * Any mismatch aborts. Nothing may crash for any input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_DEPTH 64

#define REQUIRE(cond)                                                                    \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      fprintf(stderr, "fuzz_json: %s:%d: %s\n", __FILE__, __LINE__, #cond);              \
      abort();                                                                           \
    }                                                                                    \
  } while (0)

/* Decoded copy of the string at i (caller frees); *len its length. */
static char *string_copy(const char *buf, const json_token *t, int i, size_t *len) {
  char *s = malloc((size_t)t[i].size + 1);
  REQUIRE(s);
  REQUIRE(json_get_string(buf, t, i, s, (size_t)t[i].size + 1, len, JSON_STR_ALLOW_NUL) ==
          0);
  REQUIRE(*len == t[i].size);
  REQUIRE(memchr(s, 0, *len) ? (t[i].flags & JSON_TOKF_NUL)
                             : !(t[i].flags & JSON_TOKF_NUL));
  size_t l2;
  char small[1];
  int rc = json_get_string(buf, t, i, small, 1, &l2, JSON_STR_ALLOW_NUL);
  REQUIRE(*len == 0 ? rc == 0 : rc == JSON_E_SPACE);
  if (!(t[i].flags & JSON_TOKF_NUL))
    REQUIRE(json_get_string(buf, t, i, s, (size_t)t[i].size + 1, &l2, 0) == 0);
  else
    REQUIRE(json_get_string(buf, t, i, s, (size_t)t[i].size + 1, &l2, 0) == JSON_E_NUL);
  const char *view;
  size_t vlen;
  rc = json_get_string_view(buf, t, i, &view, &vlen);
  if (t[i].flags & JSON_TOKF_ESCAPED) {
    REQUIRE(rc == JSON_E_ESCAPED);
  } else {
    REQUIRE(rc == 0 && vlen == *len && memcmp(view, s, vlen) == 0);
  }
  REQUIRE(json_string_eq(buf, t, i, s, *len));
  return s;
}

/* Checks the structural invariants of the subtree at i; returns its end. */
static int check_tree(const json_token *t, int n, size_t len, int i, int limit) {
  REQUIRE(i < limit);
  const json_token *k = &t[i];
  REQUIRE(k->start <= k->end && k->end <= len);
  REQUIRE((int)k->next > i && (int)k->next <= limit);
  if (k->type == JSON_OBJECT || k->type == JSON_ARRAY) {
    uint32_t kids = 0;
    int c = i + 1;
    while (c < (int)k->next) {
      if (k->type == JSON_OBJECT && kids % 2 == 0)
        REQUIRE(t[c].type == JSON_STRING && (t[c].flags & JSON_TOKF_KEY));
      else
        REQUIRE(!(t[c].type == JSON_STRING && (t[c].flags & JSON_TOKF_KEY)));
      c = check_tree(t, n, len, c, (int)k->next);
      kids++;
    }
    REQUIRE(c == (int)k->next);
    REQUIRE(kids == (k->type == JSON_OBJECT ? 2 * k->size : k->size));
  } else {
    REQUIRE(k->next == (uint32_t)i + 1);
    if (k->type != JSON_STRING) REQUIRE(k->size == 0);
  }
  return (int)k->next;
}

/* Writes the subtree at i through w, using only the accessors. */
static void emit(const char *buf, const json_token *t, int i, json_writer *w) {
  const json_token *k = &t[i];
  size_t len;
  switch (k->type) {
  case JSON_OBJECT: {
    REQUIRE(json_write_object_begin(w) == 0);
    int c = json_first_child(t, i);
    REQUIRE((c < 0) == (k->size == 0));
    for (uint32_t m = 0; m < k->size; m++) {
      char *key = string_copy(buf, t, c, &len);
      REQUIRE(json_object_getn(buf, t, i, key, len) == c + 1); /* keys are unique */
      REQUIRE(json_write_key_n(w, key, len) == 0);
      free(key);
      int v = json_next_sibling(t, i, c);
      REQUIRE(v == c + 1);
      emit(buf, t, v, w);
      c = json_next_sibling(t, i, v);
    }
    REQUIRE(c == -1);
    REQUIRE(json_write_object_end(w) == 0);
    break;
  }
  case JSON_ARRAY: {
    REQUIRE(json_write_array_begin(w) == 0);
    REQUIRE(json_object_get(buf, t, i, "") == -1);
    uint32_t m = 0;
    for (int c = json_first_child(t, i); c >= 0; c = json_next_sibling(t, i, c), m++)
      emit(buf, t, c, w);
    REQUIRE(m == k->size);
    REQUIRE(json_write_array_end(w) == 0);
    break;
  }
  case JSON_STRING: {
    char *s = string_copy(buf, t, i, &len);
    REQUIRE(json_write_string_n(w, s, len) == 0);
    free(s);
    break;
  }
  case JSON_NUMBER: {
    int64_t v;
    uint64_t u;
    int ri = json_get_i64(buf, t, i, &v), ru = json_get_u64(buf, t, i, &u);
    if (k->flags & JSON_TOKF_INTEGER) {
      /* The reader admits only integers that fit one of the two. */
      REQUIRE(ri == 0 || ru == 0);
      REQUIRE(ri == 0 || ri == JSON_E_RANGE);
      REQUIRE(ru == 0 || ru == JSON_E_RANGE);
      if (ri == 0 && ru == 0) REQUIRE(v >= 0 && (uint64_t)v == u);
      REQUIRE(ri == 0 ? json_write_i64(w, v) == 0 : json_write_u64(w, u) == 0);
    } else {
      REQUIRE(ri == JSON_E_INTEGER && ru == JSON_E_INTEGER);
      REQUIRE(json_write_number(w, buf + k->start, k->end - k->start) == 0);
    }
    break;
  }
  case JSON_TRUE:
  case JSON_FALSE: {
    bool b;
    REQUIRE(json_get_bool(t, i, &b) == 0 && b == (k->type == JSON_TRUE));
    REQUIRE(json_write_bool(w, b) == 0);
    break;
  }
  case JSON_NULL:
    REQUIRE(json_is_null(t, i));
    REQUIRE(json_write_null(w) == 0);
    break;
  default: REQUIRE(0);
  }
}

/* Serialises a parsed document; the caller frees out. */
static void serialise(const char *buf, const json_token *t, buf_t *out) {
  json_writer w;
  buf_init(out);
  json_writer_init(&w, out, JSON_DEPTH_MAX);
  emit(buf, t, 0, &w);
  REQUIRE(json_writer_finish(&w) == 0);
}

/* Same structure and decoded values. */
static void compare(const char *b1, const json_token *t1, const char *b2,
                    const json_token *t2, int n) {
  const uint8_t keep = JSON_TOKF_KEY | JSON_TOKF_NUL | JSON_TOKF_INTEGER;
  for (int i = 0; i < n; i++) {
    REQUIRE(t1[i].type == t2[i].type);
    REQUIRE(t1[i].size == t2[i].size);
    REQUIRE(t1[i].next == t2[i].next);
    REQUIRE((t1[i].flags & keep) == (t2[i].flags & keep));
    REQUIRE(t1[i].hash == t2[i].hash);
    if (t1[i].type == JSON_STRING) {
      size_t l1, l2;
      char *s1 = string_copy(b1, t1, i, &l1), *s2 = string_copy(b2, t2, i, &l2);
      REQUIRE(l1 == l2 && memcmp(s1, s2, l1) == 0);
      free(s1);
      free(s2);
    } else if (t1[i].type == JSON_NUMBER) {
      int64_t v1, v2;
      uint64_t u1, u2;
      if (json_get_i64(b1, t1, i, &v1) == 0) {
        REQUIRE(json_get_i64(b2, t2, i, &v2) == 0 && v1 == v2);
      } else if (json_get_u64(b1, t1, i, &u1) == 0) {
        REQUIRE(json_get_u64(b2, t2, i, &u2) == 0 && u1 == u2);
      } else {
        size_t l1 = t1[i].end - t1[i].start, l2 = t2[i].end - t2[i].start;
        REQUIRE(l1 == l2 && memcmp(b1 + t1[i].start, b2 + t2[i].start, l1) == 0);
      }
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *buf = (const char *)data;
  const json_limits lim = {.max_depth = FUZZ_DEPTH, .max_members = 256};
  /* Every token takes at least one input byte, so size + 1 always fits. */
  size_t cap = size + 1;
  json_token *t1 = malloc(cap * sizeof *t1);
  REQUIRE(t1);
  size_t off = SIZE_MAX;
  int n = json_parse_ex(buf, size, t1, cap, &lim, &off);
  if (n < 0) {
    REQUIRE(n != JSON_E_TOKENS && n >= JSON_E_NOMEM);
    REQUIRE(off <= size);
    REQUIRE(strcmp(json_errname(n), "JSON_E_UNKNOWN") != 0);
    char msg[80];
    json_describe_error(n, off, msg, sizeof msg);
    free(t1);
    return 0;
  }
  REQUIRE(n >= 1 && (size_t)n <= size);
  REQUIRE(check_tree(t1, n, size, 0, n) == n);

  /* One token fewer must fail on the token limit, and nothing else. */
  REQUIRE(json_parse(buf, size, t1, (size_t)n - 1, &lim) == JSON_E_TOKENS);
  REQUIRE(json_parse(buf, size, t1, (size_t)n, &lim) == n);

  buf_t out1, out2;
  serialise(buf, t1, &out1);
  json_token *t2 = malloc((size_t)n * sizeof *t2);
  REQUIRE(t2);
  const char *b1 = (const char *)out1.ptr;
  json_limits lim2 = {.max_depth = FUZZ_DEPTH, .max_members = 256};
  REQUIRE(json_parse(b1, out1.len, t2, (size_t)n, &lim2) == n);
  compare(buf, t1, b1, t2, n);

  serialise(b1, t2, &out2);
  REQUIRE(out1.len == out2.len && memcmp(out1.ptr, out2.ptr, out1.len) == 0);

  buf_free(&out1);
  buf_free(&out2);
  free(t2);
  free(t1);
  return 0;
}
