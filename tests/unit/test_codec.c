/* Codec: integers, minimal variable-length headers, vectors, bounds. */
#include "mls/codec.h"
#include "test.h"
#include "vectors.h"

static void test_varint_minimal(void) {
  buf_t w;
  buf_init(&w);
  const uint32_t vals[] = {
      0, 37, 63, 64, 15293, 16383, 16384, 494878333, CODEC_VARINT_MAX};
  const size_t sizes[] = {1, 1, 1, 2, 2, 2, 4, 4, 4};
  for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
    buf_reset(&w);
    wr_varint(&w, vals[i]);
    CHECK_INT(w.len, sizes[i]);
    reader_t r;
    rd_init(&r, buf_view(&w));
    uint32_t v = 0;
    CHECK_OK(rd_varint(&r, &v));
    CHECK_INT(v, vals[i]);
    CHECK_OK(rd_done(&r));
  }
  buf_free(&w);
}

static void test_varint_rejects(void) {
  const uint8_t nonmin[] = {0x40, 0x25};              /* 37 in two bytes */
  const uint8_t nonmin4[] = {0x80, 0x00, 0x00, 0x3f}; /* 63 in four bytes */
  const uint8_t reserved[] = {0xc0, 0, 0, 0, 0, 0, 0, 1};
  const uint8_t truncated[] = {0x80, 0x01};
  const uint8_t *cases[] = {nonmin, nonmin4, reserved, truncated};
  const size_t lens[] = {2, 4, 8, 2};
  for (int i = 0; i < 4; i++) {
    reader_t r;
    rd_init(&r, BYTES(cases[i], lens[i]));
    uint32_t v;
    CHECK_ERR(rd_varint(&r, &v), TSR_EDECODE);
    CHECK(r.err);
  }
}

static void test_nested_vectors(void) {
  buf_t w;
  buf_init(&w);
  size_t outer = wr_vec_begin(&w);
  for (int i = 0; i < 100; i++) wr_opaque(&w, BYTES("abc", 3));
  wr_vec_end(&w, outer);
  wr_u16(&w, 0xbeef);
  CHECK_INT(w.len, 2 + 400 + 2);
  reader_t r, sub;
  rd_init(&r, buf_view(&w));
  CHECK_OK(rd_vec(&r, &sub));
  int n = 0;
  while (rd_more(&sub)) {
    bytes_t s;
    CHECK_OK(rd_opaque(&sub, &s));
    CHECK_BYTES(s, BYTES("abc", 3));
    n++;
  }
  CHECK_INT(n, 100);
  uint16_t tail;
  CHECK_OK(rd_u16(&r, &tail));
  CHECK_INT(tail, 0xbeef);
  CHECK_OK(rd_done(&r));
  buf_free(&w);
}

static void test_opaque_overrun(void) {
  const uint8_t in[] = {0x05, 'a', 'b'};
  reader_t r;
  rd_init(&r, BYTES(in, sizeof in));
  bytes_t v;
  CHECK_ERR(rd_opaque(&r, &v), TSR_EDECODE);
  uint8_t b;
  CHECK_ERR(rd_u8(&r, &b), TSR_EDECODE); /* sticky */
}

static void test_optional(void) {
  const uint8_t in[] = {0x02};
  reader_t r;
  rd_init(&r, BYTES(in, 1));
  bool present;
  CHECK_ERR(rd_optional(&r, &present), TSR_EDECODE);
}

/* deserialization.json: vlbytes_header must decode to length. */
static void test_vectors_deserialization(void) {
  const char *why = NULL;
  cJSON *j = vec_load("mls/deserialization.json", &why);
  if (!j) TEST_SKIP("%s", why);
  int count = 0;
  buf_t hdr;
  buf_init(&hdr);
  const cJSON *e;
  cJSON_ArrayForEach(e, j) {
    CHECK_OK(vec_hex(e, "vlbytes_header", &hdr));
    reader_t r;
    rd_init(&r, buf_view(&hdr));
    uint32_t v = 0;
    CHECK_OK(rd_varint(&r, &v));
    CHECK_OK(rd_done(&r));
    CHECK_INT(v, vec_int(e, "length"));
    buf_t w;
    buf_init(&w);
    wr_varint(&w, v);
    CHECK_BYTES(buf_view(&w), buf_view(&hdr));
    buf_free(&w);
    count++;
  }
  vec_report("deserialization.json", 0, count);
  CHECK(count > 0);
  buf_free(&hdr);
  cJSON_Delete(j);
}

int main(void) {
  RUN(test_varint_minimal);
  RUN(test_varint_rejects);
  RUN(test_nested_vectors);
  RUN(test_opaque_overrun);
  RUN(test_optional);
  RUN(test_vectors_deserialization);
  return test_report("codec");
}
