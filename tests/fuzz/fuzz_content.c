/* libFuzzer target for the envelope of MLS application messages
 * (src/client/content.c).
 *
 * The input is decoded as one plaintext. When it is accepted as a kind
 * this version knows:
 *   - the decoded fields must pass content_check (what the decoder lets
 *     through can be sent back);
 *   - encoding them must succeed and decode to the same fields;
 *   - encoding that second decode must give identical bytes (one canonical
 *     form per message).
 * Any mismatch aborts. Nothing may crash or leak for any input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/content.h"
#include "tessera/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                                    \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      fprintf(stderr, "fuzz_content: %s:%d: %s\n", __FILE__, __LINE__, #cond);           \
      abort();                                                                           \
    }                                                                                    \
  } while (0)

static int same_str(const char *a, size_t al, const char *b, size_t bl) {
  return al == bl && (al == 0 || memcmp(a, b, al) == 0);
}

static int same(const content *a, const content *b) {
  return a->kind == b->kind && a->reply_to == b->reply_to && a->target == b->target &&
         a->remove == b->remove && a->receipt == b->receipt && a->on == b->on &&
         same_str(a->body, a->body_len, b->body, b->body_len) &&
         same_str(a->emoji, a->emoji_len, b->emoji, b->emoji_len) &&
         same_str(a->descriptor, a->descriptor_len, b->descriptor, b->descriptor_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  content c;
  int rc = content_decode(BYTES(data, size), &c);
  REQUIRE(rc == 0 || rc == TSR_EDECODE || rc == TSR_ELIMIT || rc == TSR_ENOMEM);
  if (rc) return 0;
  if (c.kind == CONTENT_UNSUPPORTED) {
    REQUIRE(c.body == NULL && c.mem_ == NULL);
    content_clear(&c);
    return 0;
  }
  REQUIRE(content_check(&c) == 0);
  buf_t a, b;
  buf_init(&a);
  buf_init(&b);
  REQUIRE(content_encode(&c, &a) == 0);
  content d;
  REQUIRE(content_decode(buf_view(&a), &d) == 0);
  REQUIRE(same(&c, &d));
  REQUIRE(content_encode(&d, &b) == 0);
  REQUIRE(a.len == b.len && memcmp(a.ptr, b.ptr, a.len) == 0);
  content_clear(&c);
  content_clear(&d);
  buf_free(&a);
  buf_free(&b);
  return 0;
}
