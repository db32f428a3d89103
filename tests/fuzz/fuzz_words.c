/* libFuzzer target for the public-text parsers of src/server/public.c:
 * pub_scan_words (hashtags and @mentions in captions and comments) and
 * pub_text_ok, and the comment spam filter's analysis (spam.h) over the
 * same bytes.
 *
 * Checks: every word handed out is non-empty, NUL-terminated within its
 * bound (a tag <= 64 bytes, a name 3-30 handle characters, lower-case
 * ASCII); a tag is valid UTF-8 when the text is; the spam score is within
 * [0, 1] and the verdict one of three; the fingerprint does not depend on
 * ASCII case. Nothing may crash or read out of bounds for any input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/utf8.h"
#include "server/public.h"
#include "server/spam.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                                    \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      fprintf(stderr, "fuzz_words: %s:%d: %s\n", __FILE__, __LINE__, #cond);             \
      abort();                                                                           \
    }                                                                                    \
  } while (0)

typedef struct {
  bool valid;
  int words;
} ctx;

static bool on_word(char kind, const char *w, void *arg) {
  ctx *c = arg;
  size_t n = strlen(w);
  REQUIRE(kind == '#' || kind == '@');
  REQUIRE(n >= 1);
  if (kind == '#') {
    REQUIRE(n <= 64);
    if (c->valid) REQUIRE(utf8_valid((const uint8_t *)w, n));
  } else {
    REQUIRE(n >= 3 && n <= PROFILES_KEY_MAX);
    for (size_t i = 0; i < n; i++)
      REQUIRE((w[i] >= 'a' && w[i] <= 'z') || (w[i] >= '0' && w[i] <= '9') ||
              w[i] == '_' || w[i] == '.');
  }
  for (size_t i = 0; i < n; i++) REQUIRE(!(w[i] >= 'A' && w[i] <= 'Z'));
  return ++c->words < 1000;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 8192) return 0;
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  ctx c = {utf8_valid((const uint8_t *)text, strlen(text)), 0};
  pub_scan_words(text, on_word, &c);
  (void)pub_text_ok(text, true);
  spam_input in = {.text = text, .len = size, .account_age_s = size * 1000};
  spam_result r;
  spam_classify(&in, &r);
  REQUIRE(r.score >= 0.0 && r.score <= 1.0);
  REQUIRE(r.verdict == SPAM_HAM || r.verdict == SPAM_HELD || r.verdict == SPAM_SPAM);
  REQUIRE(memchr(r.reason, '\0', sizeof r.reason) != NULL);
  uint64_t f = spam_fingerprint(text, size);
  for (size_t i = 0; i < size; i++)
    if (text[i] >= 'a' && text[i] <= 'z') text[i] = (char)(text[i] - 32);
  REQUIRE(spam_fingerprint(text, size) == f);
  free(text);
  return 0;
}
