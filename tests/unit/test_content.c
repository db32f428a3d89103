/* The envelope of MLS application messages (src/client/content.c): every
 * kind encodes and decodes back to itself, the exact bytes of one
 * envelope are pinned, and every rule of content.h refuses what it
 * should (on both sides where it applies). */
#include <stdlib.h>
#include <string.h>

#include "client/content.h"
#include "test.h"

/* Encodes c, checks the bytes when want is not NULL, decodes them and
 * returns the decoded form (caller clears). */
static content roundtrip(const content *c, const char *want) {
  buf_t b;
  buf_init(&b);
  content d = {0};
  CHECK_OK(content_encode(c, &b));
  if (want) {
    CHECK_INT(b.len, strlen(want));
    CHECK(b.len == strlen(want) && memcmp(b.ptr, want, b.len) == 0);
  }
  CHECK_OK(content_decode(buf_view(&b), &d));
  buf_free(&b);
  return d;
}

static bool same(const char *a, size_t al, const char *b, size_t bl) {
  return al == bl && (al == 0 || memcmp(a, b, al) == 0);
}

static void test_roundtrips(void) {
  content c = {
      .kind = CONTENT_TEXT, .body = "hi \"you\"\n", .body_len = 9, .reply_to = 7};
  content d = roundtrip(&c, "{\"v\":1,\"kind\":\"text\",\"body\":\"hi \\\"you\\\"\\n\","
                            "\"reply_to\":7}");
  CHECK_INT(d.kind, CONTENT_TEXT);
  CHECK(same(d.body, d.body_len, c.body, c.body_len));
  CHECK_INT(d.reply_to, 7);
  content_clear(&d);
  CHECK(d.mem_ == NULL && d.body == NULL);

  c = (content){.kind = CONTENT_EDIT, .target = 3, .body = "fixed", .body_len = 5};
  d = roundtrip(&c, "{\"v\":1,\"kind\":\"edit\",\"target\":3,\"body\":\"fixed\"}");
  CHECK(d.kind == CONTENT_EDIT && d.target == 3 && same(d.body, d.body_len, "fixed", 5));
  content_clear(&d);

  c = (content){.kind = CONTENT_DELETE, .target = 9};
  d = roundtrip(&c, "{\"v\":1,\"kind\":\"delete\",\"target\":9}");
  CHECK(d.kind == CONTENT_DELETE && d.target == 9);
  content_clear(&d);

  const char *thumbs = "\xf0\x9f\x91\x8d";
  c = (content){.kind = CONTENT_REACTION,
                .target = 4,
                .emoji = thumbs,
                .emoji_len = 4,
                .remove = true};
  d = roundtrip(&c, NULL);
  CHECK(d.kind == CONTENT_REACTION && d.target == 4 && d.remove &&
        same(d.emoji, d.emoji_len, thumbs, 4));
  content_clear(&d);
  c.remove = false;
  d = roundtrip(&c, NULL);
  CHECK(!d.remove);
  content_clear(&d);

  c = (content){.kind = CONTENT_RECEIPT, .receipt = CONTENT_READ, .target = 12};
  d = roundtrip(&c, "{\"v\":1,\"kind\":\"receipt\",\"receipt\":\"read\",\"up_to\":12}");
  CHECK(d.kind == CONTENT_RECEIPT && d.receipt == CONTENT_READ && d.target == 12);
  content_clear(&d);
  c.receipt = CONTENT_DELIVERED;
  d = roundtrip(&c, NULL);
  CHECK(d.receipt == CONTENT_DELIVERED);
  content_clear(&d);

  c = (content){.kind = CONTENT_TYPING, .on = true};
  d = roundtrip(&c, "{\"v\":1,\"kind\":\"typing\",\"on\":true}");
  CHECK(d.kind == CONTENT_TYPING && d.on);
  content_clear(&d);

  const char *desc = "{\"blob\":\"abc\",\"key\":\"k\"}";
  c = (content){.kind = CONTENT_ATTACHMENT,
                .descriptor = desc,
                .descriptor_len = strlen(desc),
                .body = "cat",
                .body_len = 3,
                .reply_to = 2};
  d = roundtrip(&c, NULL);
  CHECK(d.kind == CONTENT_ATTACHMENT && d.reply_to == 2 &&
        same(d.descriptor, d.descriptor_len, desc, strlen(desc)) &&
        same(d.body, d.body_len, "cat", 3));
  content_clear(&d);
  c.body_len = 0; /* no caption */
  d = roundtrip(&c, NULL);
  CHECK(d.body_len == 0);
  content_clear(&d);

  c = (content){.kind = CONTENT_TITLE, .body = "Trip", .body_len = 4};
  d = roundtrip(&c, "{\"v\":1,\"kind\":\"title\",\"title\":\"Trip\"}");
  CHECK(d.kind == CONTENT_TITLE && same(d.body, d.body_len, "Trip", 4));
  content_clear(&d);
  c.body_len = 0; /* a title may be cleared */
  d = roundtrip(&c, NULL);
  CHECK(d.kind == CONTENT_TITLE && d.body_len == 0);
  content_clear(&d);
}

static int dec(const char *s) {
  content c;
  int rc = content_decode(BYTES(s, strlen(s)), &c);
  content_clear(&c);
  return rc;
}

static void test_decode_rejects(void) {
  CHECK_OK(dec("{\"v\":1,\"kind\":\"text\",\"body\":\"x\"}"));
  /* not one object, or something around it */
  CHECK_ERR(dec(""), TSR_EDECODE);
  CHECK_ERR(dec("[]"), TSR_EDECODE);
  CHECK_ERR(dec("\"text\""), TSR_EDECODE);
  CHECK_ERR(dec("{\"v\":1,\"kind\":\"text\",\"body\":\"x\"}x"), TSR_EDECODE);
  CHECK_ERR(dec("{\"v\":1,\"kind\":\"text\",\"body\":\"x\"}{}"), TSR_EDECODE);
  CHECK_ERR(dec("{\"v\":1,\"kind\":\"text\",\"body\":\"x\"} "), TSR_EDECODE);
  CHECK_ERR(dec(" {\"v\":1,\"kind\":\"text\",\"body\":\"x\"}"), TSR_EDECODE);
  CHECK_ERR(dec("{\"v\":1,\"kind\":\"text\",\"body\":\"x\""), TSR_EDECODE);
  CHECK_ERR(dec("{\"v\":1,\"kind\":\"text\",\"body\":\"x\",\"body\":\"y\"}"),
            TSR_EDECODE);
  /* invalid UTF-8, NUL */
  CHECK_ERR(dec("{\"v\":1,\"kind\":\"text\",\"body\":\"\xc3\x28\"}"), TSR_EDECODE);
  CHECK_ERR(dec("{\"v\":1,\"kind\":\"text\",\"body\":\"\xed\xa0\x80\"}"), TSR_EDECODE);
  CHECK_ERR(dec("{\"v\":1,\"kind\":\"text\",\"body\":\"a\\u0000b\"}"), TSR_EDECODE);
  const char nul[] = "{\"v\":1,\"kind\":\"text\",\"body\":\"a\0b\"}";
  content c;
  CHECK_ERR(content_decode(BYTES(nul, sizeof nul - 1), &c), TSR_EDECODE);
  /* versions */
  CHECK_ERR(dec("{\"kind\":\"text\",\"body\":\"x\"}"), TSR_EDECODE);
  CHECK_ERR(dec("{\"v\":2,\"kind\":\"text\",\"body\":\"x\"}"), TSR_EDECODE);
  CHECK_ERR(dec("{\"v\":0,\"kind\":\"text\",\"body\":\"x\"}"), TSR_EDECODE);
  CHECK_ERR(dec("{\"v\":\"1\",\"kind\":\"text\",\"body\":\"x\"}"), TSR_EDECODE);
  CHECK_ERR(dec("{\"v\":1.0,\"kind\":\"text\",\"body\":\"x\"}"), TSR_EDECODE);
  /* kind */
  CHECK_ERR(dec("{\"v\":1,\"body\":\"x\"}"), TSR_EDECODE);
  CHECK_ERR(dec("{\"v\":1,\"kind\":\"\"}"), TSR_EDECODE);
  CHECK_ERR(dec("{\"v\":1,\"kind\":7}"), TSR_EDECODE);
  CHECK_ERR(dec("{\"v\":1,\"kind\":\"a-kind-name-longer-than-32-bytes-x\"}"),
            TSR_EDECODE);
  /* members of known kinds */
  CHECK_ERR(dec("{\"v\":1,\"kind\":\"text\"}"), TSR_EDECODE);
  CHECK_ERR(dec("{\"v\":1,\"kind\":\"text\",\"body\":\"\"}"), TSR_EDECODE);
  CHECK_ERR(dec("{\"v\":1,\"kind\":\"text\",\"body\":5}"), TSR_EDECODE);
  CHECK_ERR(dec("{\"v\":1,\"kind\":\"text\",\"body\":\"x\",\"reply_to\":0}"),
            TSR_EDECODE);
  CHECK_ERR(dec("{\"v\":1,\"kind\":\"text\",\"body\":\"x\",\"reply_to\":-1}"),
            TSR_EDECODE);
  CHECK_ERR(dec("{\"v\":1,\"kind\":\"text\",\"body\":\"x\",\"reply_to\":"
                "9223372036854775808}"),
            TSR_EDECODE);
  CHECK_ERR(dec("{\"v\":1,\"kind\":\"text\",\"body\":\"x\",\"reply_to\":\"3\"}"),
            TSR_EDECODE);
  CHECK_ERR(dec("{\"v\":1,\"kind\":\"edit\",\"body\":\"x\"}"), TSR_EDECODE);
  CHECK_ERR(dec("{\"v\":1,\"kind\":\"edit\",\"target\":2}"), TSR_EDECODE);
  CHECK_ERR(dec("{\"v\":1,\"kind\":\"delete\"}"), TSR_EDECODE);
  CHECK_ERR(dec("{\"v\":1,\"kind\":\"delete\",\"target\":0}"), TSR_EDECODE);
  CHECK_ERR(dec("{\"v\":1,\"kind\":\"reaction\",\"target\":2}"), TSR_EDECODE);
  CHECK_ERR(dec("{\"v\":1,\"kind\":\"reaction\",\"target\":2,\"emoji\":\"\"}"),
            TSR_EDECODE);
  CHECK_ERR(
      dec("{\"v\":1,\"kind\":\"reaction\",\"target\":2,\"emoji\":\"x\",\"remove\":1}"),
      TSR_EDECODE);
  CHECK_ERR(dec("{\"v\":1,\"kind\":\"reaction\",\"target\":2,\"emoji\":"
                "\"01234567890123456789012345678901234567890123456789012345678901234\"}"),
            TSR_EDECODE);
  CHECK_OK(dec("{\"v\":1,\"kind\":\"reaction\",\"target\":2,\"emoji\":"
               "\"0123456789012345678901234567890123456789012345678901234567890123\"}"));
  CHECK_ERR(dec("{\"v\":1,\"kind\":\"receipt\",\"receipt\":\"seen\",\"up_to\":3}"),
            TSR_EDECODE);
  CHECK_ERR(dec("{\"v\":1,\"kind\":\"receipt\",\"receipt\":\"read\"}"), TSR_EDECODE);
  CHECK_ERR(dec("{\"v\":1,\"kind\":\"typing\"}"), TSR_EDECODE);
  CHECK_ERR(dec("{\"v\":1,\"kind\":\"typing\",\"on\":\"yes\"}"), TSR_EDECODE);
  CHECK_ERR(dec("{\"v\":1,\"kind\":\"attachment\",\"caption\":\"c\"}"), TSR_EDECODE);
  CHECK_ERR(dec("{\"v\":1,\"kind\":\"attachment\",\"descriptor\":\"\"}"), TSR_EDECODE);
  CHECK_ERR(dec("{\"v\":1,\"kind\":\"title\"}"), TSR_EDECODE);
  CHECK_ERR(dec("{\"v\":1,\"kind\":\"title\",\"title\":null}"), TSR_EDECODE);
  /* bounds: a title of 257 bytes, a descriptor of 4097 bytes */
  char big[8192];
  snprintf(big, sizeof big, "{\"v\":1,\"kind\":\"title\",\"title\":\"%0257d\"}", 0);
  CHECK_ERR(dec(big), TSR_EDECODE);
  snprintf(big, sizeof big, "{\"v\":1,\"kind\":\"title\",\"title\":\"%0256d\"}", 0);
  CHECK_OK(dec(big));
  snprintf(big, sizeof big,
           "{\"v\":1,\"kind\":\"attachment\",\"descriptor\":\"%04097d\"}", 0);
  CHECK_ERR(dec(big), TSR_EDECODE);
  /* too long as a whole */
  size_t n = CONTENT_MAX_ENCODED + 1;
  char *huge = malloc(n);
  CHECK(huge != NULL);
  if (huge) {
    memset(huge, ' ', n);
    huge[0] = '{';
    huge[n - 1] = '}';
    CHECK_ERR(content_decode(BYTES(huge, n), &c), TSR_ELIMIT);
    free(huge);
  }
}

static void test_forward_compat(void) {
  content c;
  /* a newer client's kind: no error, nothing else read */
  const char *poll = "{\"v\":1,\"kind\":\"poll\",\"q\":[1,2]}";
  CHECK_OK(content_decode(BYTES(poll, strlen(poll)), &c));
  CHECK_INT(c.kind, CONTENT_UNSUPPORTED);
  content_clear(&c);
  /* a member this version does not know is ignored */
  const char *s = "{\"v\":1,\"kind\":\"text\",\"body\":\"x\",\"mentions\":[\"a\"]}";
  CHECK_OK(content_decode(BYTES(s, strlen(s)), &c));
  CHECK(c.kind == CONTENT_TEXT && c.body_len == 1);
  content_clear(&c);
  CHECK(strcmp(content_kind_name(CONTENT_UNSUPPORTED), "unsupported") == 0);
  CHECK(strcmp(content_kind_name(CONTENT_ATTACHMENT), "attachment") == 0);
}

static void test_encode_rejects(void) {
  buf_t b;
  buf_init(&b);
  content c = {.kind = CONTENT_TEXT, .body = "", .body_len = 0};
  CHECK_ERR(content_encode(&c, &b), TSR_EINVAL);
  c = (content){.kind = CONTENT_TEXT, .body = "\xff", .body_len = 1};
  CHECK_ERR(content_encode(&c, &b), TSR_EINVAL);
  c = (content){.kind = CONTENT_TEXT, .body = "a\0b", .body_len = 3};
  CHECK_ERR(content_encode(&c, &b), TSR_EINVAL);
  c = (content){.kind = CONTENT_EDIT, .body = "x", .body_len = 1};
  CHECK_ERR(content_encode(&c, &b), TSR_EINVAL); /* no target */
  c = (content){.kind = CONTENT_DELETE, .target = (uint64_t)INT64_MAX + 1};
  CHECK_ERR(content_encode(&c, &b), TSR_EINVAL);
  c = (content){.kind = CONTENT_RECEIPT, .receipt = 3, .target = 1};
  CHECK_ERR(content_encode(&c, &b), TSR_EINVAL);
  c = (content){.kind = CONTENT_UNSUPPORTED};
  CHECK_ERR(content_encode(&c, &b), TSR_EINVAL);
  c = (content){.kind = (content_kind)42};
  CHECK_ERR(content_encode(&c, &b), TSR_EINVAL);
  char emoji[66];
  memset(emoji, 'e', sizeof emoji);
  c = (content){.kind = CONTENT_REACTION, .target = 1, .emoji = emoji, .emoji_len = 65};
  CHECK_ERR(content_encode(&c, &b), TSR_EINVAL);
  CHECK_INT(b.len, 0); /* nothing appended by a refusal */
  /* the largest text fits the decoder even with every byte escaped */
  char *body = malloc(CONTENT_MAX_BODY);
  CHECK(body != NULL);
  if (body) {
    memset(body, 0x01, CONTENT_MAX_BODY);
    c = (content){.kind = CONTENT_TEXT, .body = body, .body_len = CONTENT_MAX_BODY};
    CHECK_OK(content_encode(&c, &b));
    content d;
    CHECK_OK(content_decode(buf_view(&b), &d));
    CHECK(d.body_len == CONTENT_MAX_BODY);
    content_clear(&d);
    c.body_len = CONTENT_MAX_BODY + 1;
    CHECK_ERR(content_encode(&c, &b), TSR_EINVAL);
    free(body);
  }
  buf_free(&b);
}

int main(void) {
  RUN(test_roundtrips);
  RUN(test_decode_rejects);
  RUN(test_forward_compat);
  RUN(test_encode_rejects);
  return test_report("content");
}
