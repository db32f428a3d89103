/* JSON codec: strict reader, accessors, writer, round trips. */
#include <stdint.h>
#include <stdlib.h>

#include "proto/json.h"
#include "test.h"

/* expr must return exactly the json_error err. */
#define CHECK_JERR(expr, err)                                                            \
  do {                                                                                   \
    int rc_ = (expr);                                                                    \
    if (rc_ != (err)) {                                                                  \
      fprintf(stderr, "  FAIL %s:%d: %s -> %s, want %s\n", __FILE__, __LINE__, #expr,    \
              json_errname(rc_), json_errname(err));                                     \
      test_case_failed_ = 1;                                                             \
    }                                                                                    \
  } while (0)

#define NTOK 512
static json_token toks[NTOK];

/* Parses a copy of doc[0..len) in a heap block of exactly len bytes, so
 * ASan catches any read past the end. Returns json_parse's result. */
static int parse_exact(const char *doc, size_t len, json_token *t, size_t cap,
                       const json_limits *lim, size_t *off) {
  char *copy = malloc(len ? len : 1);
  if (!copy) return JSON_E_NOMEM;
  if (len) memcpy(copy, doc, len);
  int rc = json_parse_ex(len ? copy : NULL, len, t, cap, lim, off);
  free(copy);
  return rc;
}

static int parse_str(const char *doc) {
  return json_parse(doc, strlen(doc), toks, NTOK, NULL);
}

static void test_valid_documents(void) {
  static const struct {
    const char *doc;
    int ntok;
  } cases[] = {
      {"{}", 1},
      {"[]", 1},
      {" \t\r\n[ ] \n", 1},
      {"0", 1},
      {"-0", 1},
      {"\"\"", 1},
      {"true", 1},
      {"false", 1},
      {"null", 1},
      {"[[[]]]", 3},
      {"{\"a\":{}}", 3},
      {"[1,-2,3.5,-0.25e-3,1E+2,6.02e-23,1e-307]", 8},
      {"{\"op\":\"send\",\"id\":42,\"body\":{\"to\":[\"x\",\"y\"],\"n\":null}}", 13},
      {"[\"\\u00e9\\ud83d\\ude00\\\"\\\\\\/\\b\\f\\n\\r\\t\"]", 2},
      {"\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"", 1},
      {"[9223372036854775807,-9223372036854775808,18446744073709551615]", 4},
      {"[9007199254740992.0,9.007199254740992e15,0e999999999999,-0.0e-99999]", 5},
      {"{\"a\":1,\"b\":2,\"A\":3,\"ab\":4,\"\":5}", 11},
      {"[{},[],{\"x\":[]},\"\"]", 7},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    size_t off = 0;
    int n = parse_exact(cases[i].doc, strlen(cases[i].doc), toks, NTOK, NULL, &off);
    if (n != cases[i].ntok)
      fprintf(stderr, "  case %zu: %s -> %d (%s at %zu)\n", i, cases[i].doc, n,
              json_errname(n), off);
    CHECK_INT(n, cases[i].ntok);
  }
}

static void test_token_layout(void) {
  const char *doc = " {\"a\": [1, true, {\"b\": null}], \"c\": \"xy\"} ";
  CHECK_INT(parse_str(doc), 10);
  /* 0:{ 1:"a" 2:[ 3:1 4:true 5:{ 6:"b" 7:null 8:"c" 9:"xy" */
  static const uint8_t types[] = {JSON_OBJECT, JSON_STRING, JSON_ARRAY,  JSON_NUMBER,
                                  JSON_TRUE,   JSON_OBJECT, JSON_STRING, JSON_NULL,
                                  JSON_STRING, JSON_STRING};
  static const uint32_t sizes[] = {2, 1, 3, 0, 0, 1, 1, 0, 1, 2};
  static const uint32_t next[] = {10, 2, 8, 4, 5, 8, 7, 8, 9, 10};
  for (int i = 0; i < 10; i++) {
    CHECK_INT(toks[i].type, types[i]);
    CHECK_INT(toks[i].size, sizes[i]);
    CHECK_INT(toks[i].next, next[i]);
  }
  CHECK_INT(toks[0].start, 1);
  CHECK_INT(toks[0].end, strlen(doc) - 1);
  CHECK_INT(toks[1].start, 3); /* string content, without quotes */
  CHECK_INT(toks[1].end, 4);
  CHECK(toks[1].flags & JSON_TOKF_KEY);
  CHECK(!(toks[9].flags & JSON_TOKF_KEY));
  CHECK(toks[3].flags & JSON_TOKF_INTEGER);
  CHECK_INT(toks[2].start, 7);
  CHECK_INT(doc[toks[2].end - 1], ']');
}

static void test_strings(void) {
  const char *doc = "[\"plain\", \"a\\u00e9\\ud83d\\ude00\\\"\\\\\\/\\b\\f\\n\\r\\t\","
                    " \"\xe2\x82\xac\", \"\\u0000x\"]";
  CHECK_INT(parse_str(doc), 5);
  char out[64];
  size_t len = 0;
  const char *view;

  CHECK_OK(json_get_string(doc, toks, 1, out, sizeof out, &len, 0));
  CHECK_INT(len, 5);
  CHECK(strcmp(out, "plain") == 0);
  CHECK_OK(json_get_string_view(doc, toks, 1, &view, &len));
  CHECK_INT(len, 5);
  CHECK(memcmp(view, "plain", 5) == 0);
  CHECK(view == doc + 2); /* zero copy */

  const char want[] = "a\xc3\xa9\xf0\x9f\x98\x80\"\\/\b\f\n\r\t";
  CHECK_OK(json_get_string(doc, toks, 2, out, sizeof out, &len, 0));
  CHECK_INT(len, sizeof want - 1);
  CHECK_INT(toks[2].size, sizeof want - 1);
  CHECK(memcmp(out, want, sizeof want) == 0);
  CHECK_JERR(json_get_string_view(doc, toks, 2, &view, &len), JSON_E_ESCAPED);
  CHECK(json_string_eq(doc, toks, 2, want, sizeof want - 1));
  CHECK(!json_string_eq(doc, toks, 2, want, sizeof want - 2));

  CHECK_OK(json_get_string(doc, toks, 3, out, sizeof out, &len, 0));
  CHECK_INT(len, 3);
  CHECK(strcmp(out, "\xe2\x82\xac") == 0);

  /* \u0000 parses, but only comes out with JSON_STR_ALLOW_NUL. */
  CHECK(toks[4].flags & JSON_TOKF_NUL);
  CHECK_JERR(json_get_string(doc, toks, 4, out, sizeof out, &len, 0), JSON_E_NUL);
  CHECK_OK(json_get_string(doc, toks, 4, out, sizeof out, &len, JSON_STR_ALLOW_NUL));
  CHECK_INT(len, 2);
  CHECK(out[0] == '\0' && out[1] == 'x');

  /* Needs room for the terminator; nothing written on failure. */
  memset(out, '#', sizeof out);
  CHECK_JERR(json_get_string(doc, toks, 1, out, 5, &len, 0), JSON_E_SPACE);
  CHECK(out[0] == '#');
  CHECK_OK(json_get_string(doc, toks, 1, out, 6, &len, 0));
  CHECK_JERR(json_get_string(doc, toks, 0, out, sizeof out, &len, 0), JSON_E_TYPE);
  CHECK_JERR(json_get_string_view(doc, toks, 0, &view, &len), JSON_E_TYPE);
}

static void test_invalid_documents(void) {
  static const struct {
    const char *doc;
    int err;
    size_t off;
  } cases[] = {
      {"", JSON_E_TRUNCATED, 0},
      {"  \n", JSON_E_TRUNCATED, 3},
      {"[1,]", JSON_E_SYNTAX, 3},
      {"[1,2,,3]", JSON_E_SYNTAX, 5},
      {"{\"a\":1,}", JSON_E_SYNTAX, 7},
      {"[,1]", JSON_E_SYNTAX, 1},
      {"{,}", JSON_E_SYNTAX, 1},
      {"['a']", JSON_E_SYNTAX, 1},
      {"{'a':1}", JSON_E_SYNTAX, 1},
      {"{a:1}", JSON_E_SYNTAX, 1},
      {"{1:2}", JSON_E_SYNTAX, 1},
      {"{\"a\" 1}", JSON_E_SYNTAX, 5},
      {"{\"a\":}", JSON_E_SYNTAX, 5},
      {"[1 2]", JSON_E_SYNTAX, 3},
      {"[1}", JSON_E_SYNTAX, 2},
      {"{\"a\":1]", JSON_E_SYNTAX, 6},
      {"01", JSON_E_SYNTAX, 1},
      {"[00]", JSON_E_SYNTAX, 2},
      {"-01", JSON_E_SYNTAX, 2},
      {"+1", JSON_E_SYNTAX, 0},
      {".5", JSON_E_SYNTAX, 0},
      {"1.e5", JSON_E_SYNTAX, 2},
      {"1.5e+x", JSON_E_SYNTAX, 5},
      {"-a", JSON_E_SYNTAX, 1},
      {"NaN", JSON_E_SYNTAX, 0},
      {"Infinity", JSON_E_SYNTAX, 0},
      {"-Infinity", JSON_E_SYNTAX, 1},
      {"[nan]", JSON_E_SYNTAX, 2},
      {"tRue", JSON_E_SYNTAX, 1},
      {"nul", JSON_E_TRUNCATED, 3},
      {"0x10", JSON_E_TRAILING, 1},
      {"[1]x", JSON_E_TRAILING, 3},
      {"{} {}", JSON_E_TRAILING, 3},
      {"truefalse", JSON_E_TRAILING, 4},
      {"1 2", JSON_E_TRAILING, 2},
      {"\"a\tb\"", JSON_E_CONTROL, 2},
      {"\"a\nb\"", JSON_E_CONTROL, 2},
      {"\"\x1f\"", JSON_E_CONTROL, 1},
      {"\"\\x\"", JSON_E_ESCAPE, 1},
      {"\"\\'\"", JSON_E_ESCAPE, 1},
      {"\"\\u12G4\"", JSON_E_ESCAPE, 1},
      {"\"\\U0041\"", JSON_E_ESCAPE, 1},
      {"\"\\ud800\"", JSON_E_SURROGATE, 1},
      {"\"\\udc00\"", JSON_E_SURROGATE, 1},
      {"\"\\ud800\\u0041\"", JSON_E_SURROGATE, 1},
      {"\"\\ud800\\ud800\"", JSON_E_SURROGATE, 1},
      {"\"\\ud800\\n\"", JSON_E_SURROGATE, 1},
      {"\"\\ude00\\ud83d\"", JSON_E_SURROGATE, 1},
      {"\"x\xc0\x80\"", JSON_E_UTF8, 2},        /* overlong NUL */
      {"\"\xe0\x80\xaf\"", JSON_E_UTF8, 1},     /* overlong '/' */
      {"\"\xed\xa0\x80\"", JSON_E_UTF8, 1},     /* encoded surrogate */
      {"\"\xf4\x90\x80\x80\"", JSON_E_UTF8, 1}, /* > U+10FFFF */
      {"\"\xff\"", JSON_E_UTF8, 1},
      {"\"\x80\"", JSON_E_UTF8, 1}, /* stray continuation */
      {"\"\xc3\x28\"", JSON_E_UTF8, 1},
      {"\xc3\xa9", JSON_E_SYNTAX, 0}, /* UTF-8 outside a string */
      {"\xef\xbb\xbf{}", JSON_E_BOM, 0},
      {"\xfe\xff", JSON_E_BOM, 0},
      {"[\"abc", JSON_E_TRUNCATED, 5},
      {"\"\\u00", JSON_E_TRUNCATED, 5},
      {"[1e", JSON_E_TRUNCATED, 3},
      {"-", JSON_E_TRUNCATED, 1},
      {"[\v]", JSON_E_SYNTAX, 1}, /* not JSON whitespace */
      {"[\f]", JSON_E_SYNTAX, 1},
      {"18446744073709551616", JSON_E_NUMBER, 0},   /* 2^64 */
      {"[-9223372036854775809]", JSON_E_NUMBER, 1}, /* -2^63 - 1 */
      {"99999999999999999999999", JSON_E_NUMBER, 0},
      {"1e16", JSON_E_NUMBER, 0}, /* > 2^53, not an exact integer */
      {"9007199254740993.0", JSON_E_NUMBER, 0},
      {"9007199254740992.5", JSON_E_NUMBER, 0},
      {"1.5e308", JSON_E_NUMBER, 0},
      {"-1e999999999999999999999", JSON_E_NUMBER, 0},
      {"1e-308", JSON_E_NUMBER, 0}, /* would underflow */
      {"0.0001e-304", JSON_E_NUMBER, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    size_t off = SIZE_MAX;
    int rc = parse_exact(cases[i].doc, strlen(cases[i].doc), toks, NTOK, NULL, &off);
    if (rc != cases[i].err || off != cases[i].off)
      fprintf(stderr, "  case %zu: %s -> %s at %zu, want %s at %zu\n", i, cases[i].doc,
              json_errname(rc), off, json_errname(cases[i].err), cases[i].off);
    CHECK_JERR(rc, cases[i].err);
    CHECK_INT(off, cases[i].off);
  }
}

static void test_number_edges(void) {
  /* Accepted: inside the double range, and exact integers of 64 bits. */
  const char *ok[] = {"9007199254740992.0",
                      "9007199254740992e0",
                      "900719925474099.2e1",
                      "-9007199254740992.000",
                      "1e15",
                      "1e-307",
                      "0.1e-306",
                      "0e-99999",
                      "-0.0",
                      "123456789012345678",
                      "18446744073709551615",
                      "-9223372036854775808",
                      "0.00000000000000000000000000000001"};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    int rc = parse_str(ok[i]);
    if (rc != 1) fprintf(stderr, "  %s -> %s\n", ok[i], json_errname(rc));
    CHECK_INT(rc, 1);
  }
}

static void test_nul_bytes(void) {
  const char doc[] = "[\"a\0b\"]";
  size_t off = 0;
  CHECK_JERR(parse_exact(doc, sizeof doc - 1, toks, NTOK, NULL, &off), JSON_E_NUL);
  CHECK_INT(off, 3);
  const char doc2[] = "[1]\0";
  CHECK_JERR(parse_exact(doc2, sizeof doc2 - 1, toks, NTOK, NULL, &off), JSON_E_NUL);
  CHECK_INT(off, 3);
  /* Arguments. */
  CHECK_JERR(json_parse(NULL, 1, toks, NTOK, NULL), JSON_E_INVAL);
  CHECK_JERR(json_parse("[]", 2, NULL, 4, NULL), JSON_E_INVAL);
  CHECK_JERR(json_parse("[]", 2, NULL, 0, NULL), JSON_E_TOKENS);
}

/* Every proper prefix of these documents is incomplete: each must fail
 * (without reading past the end: the copy is exact-size for ASan). */
static void test_truncated_prefixes(void) {
  const char *docs[] = {
      "{\"op\":\"send\",\"id\":42,\"to\":[\"a\",\"b\"],\"x\":{\"y\":[true,false,null]}}",
      "[\"\\ud83d\\ude00\",\"caf\xc3\xa9\xf0\x9f\x98\x80\",-1.5e-7,0,{}]",
      "{\"\\u0061\\n\":[[[-0.0e+1]]]}",
  };
  for (size_t d = 0; d < sizeof docs / sizeof docs[0]; d++) {
    size_t len = strlen(docs[d]);
    CHECK(parse_exact(docs[d], len, toks, NTOK, NULL, NULL) > 0);
    for (size_t n = 0; n < len; n++) {
      size_t off = SIZE_MAX;
      int rc = parse_exact(docs[d], n, toks, NTOK, NULL, &off);
      if (rc >= 0) fprintf(stderr, "  doc %zu prefix %zu accepted\n", d, n);
      CHECK(rc < 0);
      CHECK(off <= n);
    }
  }
}

static void test_depth(void) {
  static char bomb[100001];
  memset(bomb, '[', sizeof bomb - 1);
  size_t off = 0;
  CHECK_JERR(json_parse_ex(bomb, sizeof bomb - 1, toks, NTOK, NULL, &off), JSON_E_DEPTH);
  CHECK_INT(off, JSON_DEFAULT_DEPTH);

  /* Exactly at the limit parses; one deeper fails. */
  char doc[2 * 11];
  json_limits lim = {.max_depth = 10};
  for (int depth = 9; depth <= 11; depth++) {
    memset(doc, '[', (size_t)depth);
    memset(doc + depth, ']', (size_t)depth);
    int rc = json_parse(doc, 2 * (size_t)depth, toks, NTOK, &lim);
    if (depth <= 10)
      CHECK_INT(rc, depth);
    else
      CHECK_JERR(rc, JSON_E_DEPTH);
  }
  /* The limit is capped at JSON_DEPTH_MAX. */
  lim.max_depth = 1000000;
  json_token *big = malloc(sizeof *big * 1000);
  CHECK_JERR(json_parse(bomb, 1000, big, 1000, &lim), JSON_E_DEPTH);
  free(big);
  /* Objects count too. */
  lim.max_depth = 2;
  CHECK_INT(json_parse("{\"a\":[]}", 8, toks, NTOK, &lim), 3);
  CHECK_JERR(json_parse("{\"a\":[{}]}", 10, toks, NTOK, &lim), JSON_E_DEPTH);
}

static void test_token_cap(void) {
  const char *doc = "{\"a\":[1,2,3],\"b\":null}";
  CHECK_INT(json_parse(doc, strlen(doc), toks, NTOK, NULL), 8);
  CHECK_INT(json_parse(doc, strlen(doc), toks, 8, NULL), 8);
  size_t off = 0;
  CHECK_JERR(json_parse_ex(doc, strlen(doc), toks, 7, NULL, &off), JSON_E_TOKENS);
  CHECK_INT(off, 17); /* the token that did not fit: null */
  CHECK_JERR(json_parse(doc, strlen(doc), toks, 1, NULL), JSON_E_TOKENS);
}

static void test_duplicates(void) {
  size_t off = 0;
  const char *d1 = "{\"a\":1,\"b\":2,\"a\":3}";
  CHECK_JERR(json_parse_ex(d1, strlen(d1), toks, NTOK, NULL, &off), JSON_E_DUPLICATE);
  CHECK_INT(off, 13);
  /* Compared after unescaping. */
  CHECK_JERR(parse_str("{\"ab\":1,\"\\u0061b\":2}"), JSON_E_DUPLICATE);
  CHECK_JERR(parse_str("{\"\\u00e9\":1,\"\xc3\xa9\":2}"), JSON_E_DUPLICATE);
  CHECK_JERR(parse_str("{\"\\ud83d\\ude00\":1,\"\\uD83D\\uDE00\":2}"), JSON_E_DUPLICATE);
  CHECK_JERR(parse_str("{\"\":1,\"\":2}"), JSON_E_DUPLICATE);
  CHECK_JERR(parse_str("{\"x\":{\"a\":[1,{}],\"b\":{},\"a\":0}}"), JSON_E_DUPLICATE);
  /* Same key in different objects, or as a value, is fine. */
  CHECK_INT(parse_str("{\"a\":{\"a\":\"a\"},\"b\":[{\"a\":1},{\"a\":2}]}"), 13);
  CHECK_INT(parse_str("{\"a\":1,\"a \":2,\"A\":3,\"\\u0000\":4,\"\":5}"), 11);

  /* Member limit. */
  json_limits lim = {.max_members = 2};
  CHECK_INT(json_parse("{\"a\":1,\"b\":2}", 13, toks, NTOK, &lim), 5);
  CHECK_JERR(json_parse("{\"a\":1,\"b\":2,\"c\":3}", 19, toks, NTOK, &lim),
             JSON_E_MEMBERS);
}

static void test_lookup(void) {
  const char *doc = "{\"op\":\"send\",\"big\":{\"op\":1,\"x\":[1,2,{\"id\":3}]},"
                    "\"\\u0069d\":7,\"k\\\"q\":true,\"n\\u0000\":null,\"\":false}";
  CHECK(parse_str(doc) > 0);
  int v = json_object_get(doc, toks, 0, "op");
  CHECK(v > 0 && json_string_eq(doc, toks, v, "send", 4));
  int id = json_object_get(doc, toks, 0, "id"); /* escaped key, skips "big" */
  int64_t i64 = 0;
  CHECK(id > 0);
  CHECK_OK(json_get_i64(doc, toks, id, &i64));
  CHECK_INT(i64, 7);
  int kq = json_object_get(doc, toks, 0, "k\"q");
  bool b = false;
  CHECK(kq > 0);
  CHECK_OK(json_get_bool(toks, kq, &b));
  CHECK(b);
  CHECK(json_is_null(toks, json_object_getn(doc, toks, 0, "n\0", 2)));
  CHECK_INT(json_object_get(doc, toks, 0, "n"), -1);
  int e = json_object_get(doc, toks, 0, "");
  CHECK_OK(json_get_bool(toks, e, &b));
  CHECK(!b);
  CHECK_INT(json_object_get(doc, toks, 0, "x"), -1); /* nested, not a member */
  CHECK_INT(json_object_get(doc, toks, 0, "opp"), -1);
  CHECK_INT(json_object_get(doc, toks, 0, "o"), -1);
  int big = json_object_get(doc, toks, 0, "big");
  CHECK(big > 0);
  CHECK_INT(json_object_get(doc, toks, big, "op"), big + 2);
  CHECK_INT(json_object_get(doc, toks, v, "op"), -1); /* not an object */
  CHECK_INT(json_object_get(doc, toks, -1, "op"), -1);
  CHECK(!json_is_null(toks, -1));
}

static void test_iteration(void) {
  const char *doc = "[1,[2,[3]],{\"a\":4},\"s\",[]]";
  CHECK(parse_str(doc) > 0);
  int n = 0, kids[8] = {-1, -1, -1, -1, -1, -1, -1, -1};
  for (int c = json_first_child(toks, 0); c >= 0 && n < 8;
       c = json_next_sibling(toks, 0, c))
    kids[n++] = c;
  if (n != 5) {
    CHECK_INT(n, 5);
    return;
  }
  CHECK_INT(toks[0].size, 5);
  static const uint8_t types[] = {JSON_NUMBER, JSON_ARRAY, JSON_OBJECT, JSON_STRING,
                                  JSON_ARRAY};
  for (int k = 0; k < 5; k++) CHECK_INT(toks[kids[k]].type, types[k]);
  CHECK_INT(json_first_child(toks, kids[4]), -1); /* empty */
  CHECK_INT(json_first_child(toks, kids[0]), -1); /* scalar */
  /* Object children alternate key, value. */
  int k = json_first_child(toks, kids[2]);
  CHECK(k > 0 && (toks[k].flags & JSON_TOKF_KEY));
  int val = json_next_sibling(toks, kids[2], k);
  CHECK_INT(val, k + 1);
  CHECK_INT(json_next_sibling(toks, kids[2], val), -1);
  /* Nested array: last child of the inner array has no sibling. */
  int inner = json_first_child(toks, kids[1]);
  int inner2 = json_next_sibling(toks, kids[1], inner);
  CHECK_INT(toks[inner2].type, JSON_ARRAY);
  CHECK_INT(json_next_sibling(toks, kids[1], inner2), -1);
}

static void test_integers(void) {
  const char *doc = "[9223372036854775807,-9223372036854775808,18446744073709551615,"
                    "0,-0,1.0,1e2,-1,9223372036854775808,\"1\",true]";
  CHECK_INT(parse_str(doc), 12);
  int64_t i = 0;
  uint64_t u = 0;
  CHECK_OK(json_get_i64(doc, toks, 1, &i));
  CHECK(i == INT64_MAX);
  CHECK_OK(json_get_u64(doc, toks, 1, &u));
  CHECK(u == (uint64_t)INT64_MAX);
  CHECK_OK(json_get_i64(doc, toks, 2, &i));
  CHECK(i == INT64_MIN);
  CHECK_JERR(json_get_u64(doc, toks, 2, &u), JSON_E_RANGE);
  CHECK_OK(json_get_u64(doc, toks, 3, &u));
  CHECK(u == UINT64_MAX);
  i = 5;
  CHECK_JERR(json_get_i64(doc, toks, 3, &i), JSON_E_RANGE);
  CHECK_INT(i, 5); /* unchanged on failure */
  CHECK_OK(json_get_i64(doc, toks, 4, &i));
  CHECK_INT(i, 0);
  CHECK_OK(json_get_i64(doc, toks, 5, &i));
  CHECK_INT(i, 0);
  CHECK_JERR(json_get_u64(doc, toks, 5, &u), JSON_E_RANGE); /* "-0" */
  CHECK_JERR(json_get_i64(doc, toks, 6, &i), JSON_E_INTEGER);
  CHECK_JERR(json_get_i64(doc, toks, 7, &i), JSON_E_INTEGER);
  CHECK_JERR(json_get_u64(doc, toks, 7, &u), JSON_E_INTEGER);
  CHECK_OK(json_get_i64(doc, toks, 8, &i));
  CHECK_INT(i, -1);
  CHECK_JERR(json_get_u64(doc, toks, 8, &u), JSON_E_RANGE);
  CHECK_JERR(json_get_i64(doc, toks, 9, &i), JSON_E_RANGE); /* INT64_MAX + 1 */
  CHECK_OK(json_get_u64(doc, toks, 9, &u));
  CHECK(u == (uint64_t)INT64_MAX + 1);
  CHECK_JERR(json_get_i64(doc, toks, 10, &i), JSON_E_TYPE);
  bool b;
  CHECK_JERR(json_get_bool(toks, 10, &b), JSON_E_TYPE);
  CHECK_JERR(json_get_u64(doc, toks, 11, &u), JSON_E_TYPE);
}

/* Writes every kind of value, re-parses, reads the values back. */
static void test_writer_roundtrip(void) {
  buf_t b;
  buf_init(&b);
  json_writer w;
  json_writer_init(&w, &b, 0);
  const char weird[] = "q\"b\\s/\x01\x1f\n\t\x7f caf\xc3\xa9 \xf0\x9f\x98\x80";
  const uint8_t blob[] = {0xfb, 0xff, 0x00, 0x10, 0x83};
  CHECK_OK(json_write_object_begin(&w));
  CHECK_OK(json_write_key(&w, "op"));
  CHECK_OK(json_write_string(&w, "send"));
  CHECK_OK(json_write_key(&w, "id"));
  CHECK_OK(json_write_u64(&w, UINT64_MAX));
  CHECK_OK(json_write_key(&w, "min"));
  CHECK_OK(json_write_i64(&w, INT64_MIN));
  CHECK_OK(json_write_key(&w, "max"));
  CHECK_OK(json_write_i64(&w, INT64_MAX));
  CHECK_OK(json_write_key_n(&w, "k\0\"", 3));
  CHECK_OK(json_write_string_n(&w, weird, sizeof weird - 1));
  CHECK_OK(json_write_key(&w, "list"));
  CHECK_OK(json_write_array_begin(&w));
  CHECK_OK(json_write_bool(&w, true));
  CHECK_OK(json_write_bool(&w, false));
  CHECK_OK(json_write_null(&w));
  CHECK_OK(json_write_array_begin(&w));
  CHECK_OK(json_write_array_end(&w));
  CHECK_OK(json_write_object_begin(&w));
  CHECK_OK(json_write_object_end(&w));
  CHECK_OK(json_write_number(&w, "-1.5e-3", 7));
  CHECK_OK(json_write_i64(&w, 0));
  CHECK_OK(json_write_array_end(&w));
  CHECK_OK(json_write_key(&w, "blob"));
  CHECK_OK(json_write_base64url(&w, BYTES(blob, sizeof blob)));
  CHECK_OK(json_write_key(&w, "empty"));
  CHECK_OK(json_write_string_n(&w, NULL, 0));
  CHECK_OK(json_write_object_end(&w));
  CHECK_OK(json_writer_finish(&w));

  const char *doc = (const char *)b.ptr;
  size_t len = b.len;
  int n = json_parse(doc, len, toks, NTOK, NULL);
  CHECK_INT(n, 24);
  if (n < 0) {
    fprintf(stderr, "  output: %.*s\n", (int)len, doc);
    buf_free(&b);
    return;
  }
  char s[128];
  size_t sl;
  uint64_t u;
  int64_t i;
  bool bv;
  CHECK(json_string_eq(doc, toks, json_object_get(doc, toks, 0, "op"), "send", 4));
  CHECK_OK(json_get_u64(doc, toks, json_object_get(doc, toks, 0, "id"), &u));
  CHECK(u == UINT64_MAX);
  CHECK_OK(json_get_i64(doc, toks, json_object_get(doc, toks, 0, "min"), &i));
  CHECK(i == INT64_MIN);
  CHECK_OK(json_get_i64(doc, toks, json_object_get(doc, toks, 0, "max"), &i));
  CHECK(i == INT64_MAX);
  int wk = json_object_getn(doc, toks, 0, "k\0\"", 3);
  CHECK_OK(json_get_string(doc, toks, wk, s, sizeof s, &sl, 0));
  CHECK_INT(sl, sizeof weird - 1);
  CHECK(memcmp(s, weird, sizeof weird) == 0);
  int list = json_object_get(doc, toks, 0, "list");
  CHECK_INT(toks[list].size, 7);
  int c = json_first_child(toks, list);
  CHECK_OK(json_get_bool(toks, c, &bv));
  CHECK(bv);
  c = json_next_sibling(toks, list, c);
  CHECK_OK(json_get_bool(toks, c, &bv));
  CHECK(!bv);
  c = json_next_sibling(toks, list, c);
  CHECK(json_is_null(toks, c));
  c = json_next_sibling(toks, list, c);
  CHECK(toks[c].type == JSON_ARRAY && toks[c].size == 0);
  c = json_next_sibling(toks, list, c);
  CHECK(toks[c].type == JSON_OBJECT && toks[c].size == 0);
  c = json_next_sibling(toks, list, c);
  CHECK(toks[c].type == JSON_NUMBER && toks[c].end - toks[c].start == 7);
  CHECK_JERR(json_get_i64(doc, toks, c, &i), JSON_E_INTEGER);
  c = json_next_sibling(toks, list, c);
  CHECK_OK(json_get_i64(doc, toks, c, &i));
  CHECK_INT(i, 0);
  CHECK_INT(json_next_sibling(toks, list, c), -1);
  CHECK(json_string_eq(doc, toks, json_object_get(doc, toks, 0, "blob"), "-_8AEIM", 7));
  CHECK(json_string_eq(doc, toks, json_object_get(doc, toks, 0, "empty"), "", 0));
  buf_free(&b);
}

static void test_writer_escaping(void) {
  buf_t b;
  buf_init(&b);
  json_writer w;
  json_writer_init(&w, &b, 0);
  CHECK_OK(json_write_array_begin(&w));
  CHECK_OK(json_write_string_n(&w, "a\"b\\c/\b\f\n\r\t\x01\x1f\x7f\0\xc3\xa9", 17));
  CHECK_OK(json_write_i64(&w, -42));
  CHECK_OK(json_write_u64(&w, 0));
  CHECK_OK(json_write_array_end(&w));
  CHECK_OK(json_writer_finish(&w));
  const char want[] =
      "[\"a\\\"b\\\\c/\\b\\f\\n\\r\\t\\u0001\\u001f\x7f\\u0000\xc3\xa9\",-42,0]";
  CHECK_INT(b.len, sizeof want - 1);
  CHECK(b.len == sizeof want - 1 && memcmp(b.ptr, want, b.len) == 0);
  buf_free(&b);
}

static void test_base64url(void) {
  static const struct {
    const char *in, *out;
  } v[] = {{"", ""},
           {"f", "Zg"},
           {"fo", "Zm8"},
           {"foo", "Zm9v"},
           {"foob", "Zm9vYg"},
           {"fooba", "Zm9vYmE"},
           {"foobar", "Zm9vYmFy"},
           {"\xfb\xff\xbf", "-_-_"}};
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    buf_t b;
    buf_init(&b);
    json_writer w;
    json_writer_init(&w, &b, 0);
    CHECK_OK(json_write_base64url(&w, BYTES(v[i].in, strlen(v[i].in))));
    CHECK_OK(json_writer_finish(&w));
    size_t ol = strlen(v[i].out);
    CHECK_INT(b.len, ol + 2);
    CHECK(b.len == ol + 2 && b.ptr[0] == '"' && memcmp(b.ptr + 1, v[i].out, ol) == 0 &&
          b.ptr[ol + 1] == '"');
    buf_free(&b);
  }
}

static void test_writer_refuses(void) {
  static const struct {
    const char *s;
    size_t len;
  } bad[] = {
      {"\xc0\x80", 2}, {"\xed\xa0\x80", 3}, {"\xf4\x90\x80\x80", 4}, {"ok\xc3", 3},
      {"\xff", 1},     {"\x80", 1},         {"\xe0\x80\xaf", 3},     {"a\xf0\x9f\x98", 4},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    buf_t b;
    buf_init(&b);
    json_writer w;
    json_writer_init(&w, &b, 0);
    CHECK_OK(json_write_array_begin(&w));
    size_t before = b.len;
    CHECK_JERR(json_write_string_n(&w, bad[i].s, bad[i].len), JSON_E_UTF8);
    CHECK_INT(b.len, before); /* nothing appended */
    /* Sticky. */
    CHECK_JERR(json_write_null(&w), JSON_E_UTF8);
    CHECK_JERR(json_write_array_end(&w), JSON_E_UTF8);
    CHECK_JERR(json_writer_finish(&w), JSON_E_UTF8);
    buf_free(&b);

    buf_init(&b);
    json_writer_init(&w, &b, 0);
    CHECK_OK(json_write_object_begin(&w));
    CHECK_JERR(json_write_key_n(&w, bad[i].s, bad[i].len), JSON_E_UTF8);
    buf_free(&b);
  }

  /* Order errors. */
  buf_t b;
  buf_init(&b);
  json_writer w;
  json_writer_init(&w, &b, 0);
  CHECK_JERR(json_writer_finish(&w), JSON_E_STATE); /* nothing written */
  CHECK_OK(json_write_object_begin(&w));
  CHECK_JERR(json_writer_finish(&w), JSON_E_STATE); /* still open */
  CHECK_JERR(json_write_null(&w), JSON_E_STATE);    /* value without key */
  buf_reset(&b);

  json_writer_init(&w, &b, 0);
  CHECK_OK(json_write_array_begin(&w));
  CHECK_JERR(json_write_key(&w, "a"), JSON_E_STATE); /* key in array */
  buf_reset(&b);

  json_writer_init(&w, &b, 0);
  CHECK_OK(json_write_object_begin(&w));
  CHECK_OK(json_write_key(&w, "a"));
  CHECK_JERR(json_write_object_end(&w), JSON_E_STATE); /* key without value */
  buf_reset(&b);

  json_writer_init(&w, &b, 0);
  CHECK_OK(json_write_object_begin(&w));
  CHECK_OK(json_write_key(&w, "a"));
  CHECK_JERR(json_write_key(&w, "b"), JSON_E_STATE); /* two keys */
  buf_reset(&b);

  json_writer_init(&w, &b, 0);
  CHECK_OK(json_write_array_begin(&w));
  CHECK_JERR(json_write_object_end(&w), JSON_E_STATE); /* mismatched */
  buf_reset(&b);

  json_writer_init(&w, &b, 0);
  CHECK_JERR(json_write_array_end(&w), JSON_E_STATE); /* nothing open */
  buf_reset(&b);

  json_writer_init(&w, &b, 0);
  CHECK_OK(json_write_null(&w));
  CHECK_OK(json_writer_finish(&w));
  CHECK_JERR(json_write_null(&w), JSON_E_STATE); /* second top-level value */
  buf_reset(&b);

  json_writer_init(&w, &b, 0);
  CHECK_JERR(json_write_number(&w, "01", 2), JSON_E_SYNTAX);
  json_writer_init(&w, &b, 0);
  CHECK_JERR(json_write_number(&w, "1 ", 2), JSON_E_SYNTAX);
  json_writer_init(&w, &b, 0);
  CHECK_JERR(json_write_number(&w, "NaN", 3), JSON_E_SYNTAX);
  json_writer_init(&w, &b, 0);
  CHECK_JERR(json_write_number(&w, "1e400", 5), JSON_E_NUMBER);
  json_writer_init(&w, &b, 0);
  CHECK_JERR(json_write_number(&w, "", 0), JSON_E_SYNTAX);

  /* Depth limit. */
  json_writer_init(&w, &b, 3);
  CHECK_OK(json_write_array_begin(&w));
  CHECK_OK(json_write_array_begin(&w));
  CHECK_OK(json_write_object_begin(&w));
  CHECK_JERR(json_write_key(&w, "a"), 0);
  CHECK_JERR(json_write_array_begin(&w), JSON_E_DEPTH);
  CHECK_JERR(json_writer_finish(&w), JSON_E_DEPTH);
  buf_free(&b);
}

static void test_errors(void) {
  CHECK(strcmp(json_errname(JSON_E_SYNTAX), "JSON_E_SYNTAX") == 0);
  CHECK(strcmp(json_errname(JSON_E_DUPLICATE), "JSON_E_DUPLICATE") == 0);
  CHECK(strcmp(json_errname(12345), "JSON_E_UNKNOWN") == 0);
  for (int e = JSON_OK; e >= JSON_E_NOMEM; e--) {
    CHECK(strncmp(json_errname(e), "JSON_", 5) == 0);
    CHECK(strcmp(json_strerror(e), "unknown error") != 0);
  }
  char msg[64];
  size_t off = 0;
  CHECK_JERR(json_parse_ex("[1,]", 4, toks, NTOK, NULL, &off), JSON_E_SYNTAX);
  CHECK(strcmp(json_describe_error(JSON_E_SYNTAX, off, msg, sizeof msg),
               "syntax error at byte 3") == 0);
  CHECK(strcmp(json_describe_error(JSON_E_DEPTH, SIZE_MAX, msg, sizeof msg),
               "nesting too deep") == 0);
  CHECK_INT(json_tsr_error(JSON_E_SYNTAX), TSR_EDECODE);
  CHECK_INT(json_tsr_error(JSON_E_TOKENS), TSR_ELIMIT);
  CHECK_INT(json_tsr_error(JSON_E_NOMEM), TSR_ENOMEM);
  CHECK_INT(json_tsr_error(JSON_OK), TSR_OK);
}

int main(void) {
  RUN(test_valid_documents);
  RUN(test_token_layout);
  RUN(test_strings);
  RUN(test_invalid_documents);
  RUN(test_number_edges);
  RUN(test_nul_bytes);
  RUN(test_truncated_prefixes);
  RUN(test_depth);
  RUN(test_token_cap);
  RUN(test_duplicates);
  RUN(test_lookup);
  RUN(test_iteration);
  RUN(test_integers);
  RUN(test_writer_roundtrip);
  RUN(test_writer_escaping);
  RUN(test_base64url);
  RUN(test_writer_refuses);
  RUN(test_errors);
  return test_report("json");
}
