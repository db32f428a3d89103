/* UTF-8 validator: known-good and known-bad sequences, every split point,
 * and an exhaustive comparison with a decode-based reference. */
#include "proto/utf8.h"
#include "test.h"
#include "utf8_ref.h"

typedef struct {
  const char *s;
  size_t len;
} str_t;

#define S(lit)                                                                           \
  { lit, sizeof(lit) - 1 }

static const str_t good[] = {
    S(""),
    S("hello, world"),
    S("\x00"),             /* NUL is a character */
    S("\x7f"),             /* last 1-byte */
    S("\xc2\x80"),         /* U+0080, first 2-byte */
    S("\xdf\xbf"),         /* U+07FF, last 2-byte */
    S("\xe0\xa0\x80"),     /* U+0800, first 3-byte */
    S("\xed\x9f\xbf"),     /* U+D7FF, just below the surrogates */
    S("\xee\x80\x80"),     /* U+E000, just above them */
    S("\xef\xbf\xbd"),     /* U+FFFD */
    S("\xef\xbf\xbf"),     /* U+FFFF (a noncharacter, still valid) */
    S("\xf0\x90\x80\x80"), /* U+10000, first 4-byte */
    S("\xf4\x8f\xbf\xbf"), /* U+10FFFF, the last code point */
    S("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"), /* "kosme" in Greek */
    S("caf\xc3\xa9 \xe2\x82\xac 1 \xf0\x9d\x84\x9e clef"),
};

static const str_t bad[] = {
    S("\x80"), /* lone continuation */
    S("\xbf"),
    S("\xc0\xaf"),                 /* overlong '/' */
    S("\xc1\xbf"),                 /* overlong U+007F */
    S("\xe0\x80\xaf"),             /* overlong '/' in 3 bytes */
    S("\xe0\x9f\xbf"),             /* overlong U+07FF */
    S("\xf0\x80\x80\xaf"),         /* overlong '/' in 4 bytes */
    S("\xf0\x8f\xbf\xbf"),         /* overlong U+FFFF */
    S("\xed\xa0\x80"),             /* U+D800 */
    S("\xed\xaf\xbf"),             /* U+DBFF */
    S("\xed\xb0\x80"),             /* U+DC00 */
    S("\xed\xbf\xbf"),             /* U+DFFF */
    S("\xed\xa0\xbd\xed\xb2\xa9"), /* CESU-8 surrogate pair */
    S("\xf4\x90\x80\x80"),         /* U+110000 */
    S("\xf5\x80\x80\x80"),         /* F5 lead */
    S("\xf7\xbf\xbf\xbf"),
    S("\xf8\x88\x80\x80\x80"),     /* old 5-byte form */
    S("\xfc\x84\x80\x80\x80\x80"), /* old 6-byte form */
    S("\xfe"),
    S("\xff"),
    S("\xc2"), /* truncated */
    S("\xe0\xa0"),
    S("\xf0\x90\x80"),
    S("\xe1\x41\x80"), /* ASCII inside a sequence */
    S("\xc2\xc2\x80"), /* lead where a continuation belongs */
    S("abc\xe2\x82"),  /* truncated at the end */
    S("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"
      "edited"),
};

static void test_known_cases(void) {
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    if (!utf8_valid((const uint8_t *)good[i].s, good[i].len))
      fprintf(stderr, "  good case %zu rejected\n", i);
    CHECK(utf8_valid((const uint8_t *)good[i].s, good[i].len));
  }
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    if (utf8_valid((const uint8_t *)bad[i].s, bad[i].len))
      fprintf(stderr, "  bad case %zu accepted\n", i);
    CHECK(!utf8_valid((const uint8_t *)bad[i].s, bad[i].len));
  }
}

/* Split at every position (and byte by byte): the verdict must not change. */
static void check_splits(const str_t *c, bool want) {
  const uint8_t *p = (const uint8_t *)c->s;
  for (size_t k = 0; k <= c->len; k++) {
    utf8_state st = utf8_step(UTF8_ACCEPT, p, k);
    st = utf8_step(st, p + k, c->len - k);
    CHECK((st == UTF8_ACCEPT) == want);
  }
  utf8_state st = UTF8_ACCEPT;
  for (size_t k = 0; k < c->len; k++) st = utf8_step(st, p + k, 1);
  CHECK((st == UTF8_ACCEPT) == want);
}

static void test_split_every_position(void) {
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) check_splits(&good[i], true);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) check_splits(&bad[i], false);
}

static void test_states(void) {
  /* Mid-sequence is neither accept nor reject; reject is sticky. */
  utf8_state st = utf8_step(UTF8_ACCEPT, (const uint8_t *)"\xe2\x82", 2);
  CHECK(st != UTF8_ACCEPT && st != UTF8_REJECT);
  CHECK_INT(utf8_step(st, (const uint8_t *)"\xac", 1), UTF8_ACCEPT);
  st = utf8_step(UTF8_ACCEPT, (const uint8_t *)"\xff", 1);
  CHECK_INT(st, UTF8_REJECT);
  CHECK_INT(utf8_step(st, (const uint8_t *)"abc", 3), UTF8_REJECT);
  CHECK_INT(utf8_step(200, (const uint8_t *)"a", 1), UTF8_REJECT); /* garbage state */
  CHECK_INT(utf8_step(UTF8_ACCEPT, NULL, 0), UTF8_ACCEPT);
}

/* The 8-byte ASCII fast path: a bad byte at every offset of a long ASCII
 * run, from every alignment, must be found. */
static void test_ascii_fast_path(void) {
  uint8_t buf[80];
  for (size_t align = 0; align < 8; align++) {
    for (size_t bad_at = 0; bad_at < 64; bad_at++) {
      memset(buf, 'a', sizeof buf);
      uint8_t *p = buf + align;
      CHECK(utf8_valid(p, 64));
      p[bad_at] = 0x80;
      CHECK(!utf8_valid(p, 64));
      p[bad_at] = 0xc3; /* a lead byte followed by ASCII */
      CHECK(!utf8_valid(p, 64));
      if (bad_at < 63) {
        p[bad_at + 1] = 0xa9; /* now a valid U+00E9 */
        CHECK(utf8_valid(p, 64));
      }
    }
  }
}

static void test_exhaustive_short(void) {
  uint8_t b[3];
  long mismatches = 0, valid2 = 0;
  for (unsigned x = 0; x < 256; x++) {
    b[0] = (uint8_t)x;
    if (utf8_valid(b, 1) != utf8_ref_valid(b, 1)) mismatches++;
    for (unsigned y = 0; y < 256; y++) {
      b[1] = (uint8_t)y;
      bool v = utf8_valid(b, 2);
      if (v != utf8_ref_valid(b, 2)) mismatches++;
      if (v && x >= 0x80) valid2++;
    }
  }
  CHECK_INT(valid2, 0x800 - 0x80); /* every 2-byte code point, once */
  /* Three bytes with a lead at or above C0 (below it the first byte is
   * ASCII or invalid and the 1- and 2-byte checks cover the rest). */
  for (unsigned x = 0xC0; x < 256; x++)
    for (unsigned y = 0; y < 256; y++)
      for (unsigned z = 0; z < 256; z++) {
        b[0] = (uint8_t)x, b[1] = (uint8_t)y, b[2] = (uint8_t)z;
        if (utf8_valid(b, 3) != utf8_ref_valid(b, 3)) mismatches++;
      }
  CHECK_INT(mismatches, 0);
}

/* Every code point encoded by hand: valid exactly when not a surrogate. */
static void test_every_code_point(void) {
  long wrong = 0;
  for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
    uint8_t b[4];
    size_t n;
    if (cp < 0x80) {
      b[0] = (uint8_t)cp, n = 1;
    } else if (cp < 0x800) {
      b[0] = (uint8_t)(0xC0 | cp >> 6), b[1] = (uint8_t)(0x80 | (cp & 0x3F)), n = 2;
    } else if (cp < 0x10000) {
      b[0] = (uint8_t)(0xE0 | cp >> 12), b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
      b[2] = (uint8_t)(0x80 | (cp & 0x3F)), n = 3;
    } else {
      b[0] = (uint8_t)(0xF0 | cp >> 18), b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
      b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F)), b[3] = (uint8_t)(0x80 | (cp & 0x3F));
      n = 4;
    }
    bool want = !(cp >= 0xD800 && cp <= 0xDFFF);
    if (utf8_valid(b, n) != want) wrong++;
  }
  CHECK_INT(wrong, 0);
}

static void test_valid_prefix(void) {
  const uint8_t *s = (const uint8_t *)"ab\xe2\x82\xac"
                                      "c";
  CHECK_INT(utf8_valid_prefix(s, 6), 6);
  CHECK_INT(utf8_valid_prefix(s, 5), 5);
  CHECK_INT(utf8_valid_prefix(s, 4), 2); /* inside the euro sign */
  CHECK_INT(utf8_valid_prefix(s, 3), 2);
  CHECK_INT(utf8_valid_prefix(s, 2), 2);
  CHECK_INT(utf8_valid_prefix((const uint8_t *)"a\xff"
                                               "b",
                              3),
            1);
  CHECK_INT(utf8_valid_prefix(NULL, 0), 0);
}

int main(void) {
  RUN(test_known_cases);
  RUN(test_split_every_position);
  RUN(test_states);
  RUN(test_ascii_fast_path);
  RUN(test_exhaustive_short);
  RUN(test_every_code_point);
  RUN(test_valid_prefix);
  return test_report("utf8");
}
