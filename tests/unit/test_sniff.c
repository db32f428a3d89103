/* Media sniffing (src/proto/sniff.c): every type with its size, every
 * truncation of each header, lying headers (lengths past the buffer, zero
 * and giant sizes), and the ISO-BMFF walker on whole files, on files cut
 * at every byte, in pieces, nested to its limit and over its box count. */
#include <stdlib.h>

#include "proto/sniff.h"
#include "test.h"

/* ---- builders ---- */

static void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static void put64(uint8_t *p, uint64_t v) {
  put32(p, (uint32_t)(v >> 32));
  put32(p + 4, (uint32_t)v);
}

static void le16(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}

static void le32(uint8_t *p, uint32_t v) {
  le16(p, v);
  le16(p + 2, v >> 16);
}

/* A box of type with n payload bytes (zeros when payload is NULL) at out;
 * returns its size. */
static size_t box(uint8_t *out, const char *type, const void *payload, size_t n) {
  put32(out, (uint32_t)(8 + n));
  memcpy(out + 4, type, 4);
  if (payload)
    memcpy(out + 8, payload, n);
  else
    memset(out + 8, 0, n);
  return 8 + n;
}

/* The same with a 64-bit largesize. */
static size_t box64(uint8_t *out, const char *type, size_t n) {
  put32(out, 1);
  memcpy(out + 4, type, 4);
  put64(out + 8, 16 + (uint64_t)n);
  memset(out + 16, 0xAB, n);
  return 16 + n;
}

static size_t ftyp(uint8_t *out, const char *major, const char *compat) {
  uint8_t p[64];
  memcpy(p, major, 4);
  memset(p + 4, 0, 4);
  size_t c = strlen(compat);
  memcpy(p + 8, compat, c);
  return box(out, "ftyp", p, 8 + c);
}

static int detect(const uint8_t *p, size_t n, sniff_info *out) {
  *out = (sniff_info){.type = SNIFF_UNKNOWN};
  return sniff_detect(p, n, out);
}

/* Every strict prefix of p[0..n) at least min long must give want. */
static void check_prefixes(const uint8_t *p, size_t n, size_t min, int want) {
  sniff_info si;
  for (size_t k = min; k < n; k++) {
    int rc = detect(p, k, &si);
    if (rc != want) {
      fprintf(stderr, "  prefix %zu of %zu: %s\n", k, n, tsr_errname(rc));
      CHECK_ERR(rc, want);
      return;
    }
  }
}

/* ---- images ---- */

static size_t make_jpeg(uint8_t *p, uint32_t w, uint32_t h, size_t app1) {
  size_t n = 0;
  p[n++] = 0xFF;
  p[n++] = 0xD8;
  p[n++] = 0xFF;
  p[n++] = 0xE1; /* APP1 of app1 payload bytes */
  p[n++] = (uint8_t)((app1 + 2) >> 8);
  p[n++] = (uint8_t)(app1 + 2);
  memset(p + n, 'x', app1);
  n += app1;
  p[n++] = 0xFF;
  p[n++] = 0xFF; /* a fill byte */
  p[n++] = 0xC2; /* progressive SOF */
  p[n++] = 0;
  p[n++] = 17;
  p[n++] = 8;
  p[n++] = (uint8_t)(h >> 8);
  p[n++] = (uint8_t)h;
  p[n++] = (uint8_t)(w >> 8);
  p[n++] = (uint8_t)w;
  memset(p + n, 1, 10);
  return n + 10;
}

static void test_jpeg(void) {
  uint8_t p[400];
  sniff_info si;
  size_t n = make_jpeg(p, 640, 480, 100);
  CHECK_OK(detect(p, n, &si));
  CHECK_INT(si.type, SNIFF_JPEG);
  CHECK(strcmp(si.mime, "image/jpeg") == 0);
  CHECK(!si.video);
  CHECK_INT(si.width, 640);
  CHECK_INT(si.height, 480);
  /* The SOF beyond the bytes given: a JPEG, size unknown. */
  for (size_t k = 3; k < n - 10; k++) {
    CHECK_OK(detect(p, k, &si));
    CHECK(si.type == SNIFF_JPEG && si.width == 0 && si.height == 0);
  }
  /* Lying or impossible segments. */
  p[4] = 0;
  p[5] = 1; /* length 1 < 2 */
  CHECK_ERR(detect(p, n, &si), TSR_EDECODE);
  n = make_jpeg(p, 0, 480, 0);
  CHECK_ERR(detect(p, n, &si), TSR_EDECODE); /* zero width */
  n = make_jpeg(p, 640, 480, 0);
  p[8] = 0xDA; /* a scan before any frame */
  CHECK_ERR(detect(p, n, &si), TSR_EDECODE);
  n = make_jpeg(p, 640, 480, 0);
  p[10] = 5; /* SOF shorter than its fields */
  CHECK_ERR(detect(p, n, &si), TSR_EDECODE);
  /* A segment claiming 65535 bytes: the walk stops at the buffer. */
  n = make_jpeg(p, 640, 480, 20);
  p[4] = 0xFF;
  p[5] = 0xFF;
  CHECK_OK(detect(p, n, &si));
  CHECK_INT(si.width, 0);
  /* Junk between segments: size unknown, left to the decoder. */
  n = make_jpeg(p, 640, 480, 4);
  p[10] = 0x00;
  CHECK_OK(detect(p, n, &si));
  CHECK_INT(si.width, 0);
  /* Only two bytes of the signature: unknown. */
  CHECK_ERR(detect(p, 2, &si), TSR_EUNSUPPORTED);
}

static size_t make_png(uint8_t *p, uint32_t w, uint32_t h) {
  memcpy(p, "\x89PNG\r\n\x1A\n", 8);
  put32(p + 8, 13);
  memcpy(p + 12, "IHDR", 4);
  put32(p + 16, w);
  put32(p + 20, h);
  memcpy(p + 24, "\x08\x02\x00\x00\x00", 5);
  return 33;
}

static void test_png(void) {
  uint8_t p[64];
  sniff_info si;
  size_t n = make_png(p, 1920, 1080);
  CHECK_OK(detect(p, n, &si));
  CHECK_INT(si.type, SNIFF_PNG);
  CHECK(strcmp(si.mime, "image/png") == 0);
  CHECK_INT(si.width, 1920);
  CHECK_INT(si.height, 1080);
  CHECK_OK(detect(p, 24, &si)); /* exactly the sizes */
  check_prefixes(p, 24, 8, TSR_EDECODE);
  CHECK_ERR(detect(p, 7, &si), TSR_EUNSUPPORTED);
  n = make_png(p, 0, 10);
  CHECK_ERR(detect(p, n, &si), TSR_EDECODE);
  n = make_png(p, 10, 0x80000000u);
  CHECK_ERR(detect(p, n, &si), TSR_EDECODE);
  n = make_png(p, 0xFFFFFFFFu, 10);
  CHECK_ERR(detect(p, n, &si), TSR_EDECODE);
  n = make_png(p, 10, 10);
  put32(p + 8, 14); /* IHDR of the wrong length */
  CHECK_ERR(detect(p, n, &si), TSR_EDECODE);
  n = make_png(p, 10, 10);
  memcpy(p + 12, "IDAT", 4); /* first chunk not IHDR */
  CHECK_ERR(detect(p, n, &si), TSR_EDECODE);
  n = make_png(p, 0x7FFFFFFFu, 0x7FFFFFFFu); /* the largest sizes PNG allows */
  CHECK_OK(detect(p, n, &si));
  CHECK_INT(si.width, 0x7FFFFFFF);
}

static void test_gif(void) {
  uint8_t p[16] = "GIF89a";
  sniff_info si;
  le16(p + 6, 300);
  le16(p + 8, 200);
  CHECK_OK(detect(p, sizeof p, &si));
  CHECK_INT(si.type, SNIFF_GIF);
  CHECK(strcmp(si.mime, "image/gif") == 0);
  CHECK_INT(si.width, 300);
  CHECK_INT(si.height, 200);
  memcpy(p, "GIF87a", 6);
  CHECK_OK(detect(p, 10, &si));
  check_prefixes(p, 10, 6, TSR_EDECODE);
  le16(p + 8, 0);
  CHECK_ERR(detect(p, sizeof p, &si), TSR_EDECODE);
  memcpy(p, "GIF88a", 6);
  CHECK_ERR(detect(p, sizeof p, &si), TSR_EUNSUPPORTED);
}

/* RIFF/WEBP with a first chunk of fourcc and the n bytes of data. */
static size_t make_webp(uint8_t *p, const char *fourcc, const uint8_t *data, size_t n) {
  memcpy(p, "RIFF", 4);
  le32(p + 4, (uint32_t)(4 + 8 + n));
  memcpy(p + 8, "WEBP", 4);
  memcpy(p + 12, fourcc, 4);
  le32(p + 16, (uint32_t)n);
  memcpy(p + 20, data, n);
  return 20 + n;
}

static void test_webp(void) {
  uint8_t p[64], d[16];
  sniff_info si;
  /* VP8: key frame tag, start code, 14-bit sizes (scale bits ignored). */
  memset(d, 0, sizeof d);
  memcpy(d + 3, "\x9D\x01\x2A", 3);
  le16(d + 6, 800 | 0x4000);
  le16(d + 8, 600);
  size_t n = make_webp(p, "VP8 ", d, 10);
  CHECK_OK(detect(p, n, &si));
  CHECK_INT(si.type, SNIFF_WEBP);
  CHECK(strcmp(si.mime, "image/webp") == 0);
  CHECK_INT(si.width, 800);
  CHECK_INT(si.height, 600);
  check_prefixes(p, n, 12, TSR_EDECODE);
  d[0] = 1; /* not a key frame */
  n = make_webp(p, "VP8 ", d, 10);
  CHECK_ERR(detect(p, n, &si), TSR_EDECODE);
  d[0] = 0;
  d[4] = 0x02; /* bad start code */
  n = make_webp(p, "VP8 ", d, 10);
  CHECK_ERR(detect(p, n, &si), TSR_EDECODE);
  /* VP8L: 14 bits each of width - 1 and height - 1. */
  d[0] = 0x2F;
  le32(d + 1, (uint32_t)(1023 | 767u << 14));
  n = make_webp(p, "VP8L", d, 5);
  CHECK_OK(detect(p, n, &si));
  CHECK_INT(si.width, 1024);
  CHECK_INT(si.height, 768);
  check_prefixes(p, n, 12, TSR_EDECODE);
  d[0] = 0x2E;
  n = make_webp(p, "VP8L", d, 5);
  CHECK_ERR(detect(p, n, &si), TSR_EDECODE);
  /* VP8X: 24-bit canvas width - 1 and height - 1, up to 2^24. */
  memset(d, 0, sizeof d);
  memset(d + 4, 0xFF, 6);
  n = make_webp(p, "VP8X", d, 10);
  CHECK_OK(detect(p, n, &si));
  CHECK_INT(si.width, 1u << 24);
  CHECK_INT(si.height, 1u << 24);
  check_prefixes(p, n, 12, TSR_EDECODE);
  /* A chunk larger than its RIFF, a RIFF too small for a chunk. */
  le32(p + 16, 1000);
  CHECK_ERR(detect(p, n, &si), TSR_EDECODE);
  n = make_webp(p, "VP8X", d, 10);
  le32(p + 4, 4);
  CHECK_ERR(detect(p, n, &si), TSR_EDECODE);
  n = make_webp(p, "VP8X", d, 10);
  le32(p + 4, 0xFFFFFFFFu); /* a giant RIFF is fine: the file is what it is */
  CHECK_OK(detect(p, n, &si));
  n = make_webp(p, "ALPH", d, 10);
  CHECK_ERR(detect(p, n, &si), TSR_EDECODE);
  /* RIFF of something else (WAVE): unknown. */
  n = make_webp(p, "fmt ", d, 10);
  memcpy(p + 8, "WAVE", 4);
  CHECK_ERR(detect(p, n, &si), TSR_EUNSUPPORTED);
}

/* ---- video ---- */

static void test_ftyp(void) {
  uint8_t p[256];
  sniff_info si;
  size_t n = ftyp(p, "isom", "isomiso2avc1mp41");
  CHECK_OK(detect(p, n, &si));
  CHECK_INT(si.type, SNIFF_MP4);
  CHECK(si.video && strcmp(si.mime, "video/mp4") == 0);
  CHECK(si.width == 0 && si.height == 0);
  check_prefixes(p, n, 8, TSR_EDECODE);
  n = ftyp(p, "qt  ", "qt  ");
  CHECK_OK(detect(p, n, &si));
  CHECK_INT(si.type, SNIFF_MOV);
  CHECK(strcmp(si.mime, "video/quicktime") == 0);
  n = ftyp(p, "XAVC", "XAVCmp42iso2"); /* unknown major, known compatible */
  CHECK_OK(detect(p, n, &si));
  CHECK_INT(si.type, SNIFF_MP4);
  n = ftyp(p, "heic", "mif1heicmp42"); /* a still image, whatever it lists */
  CHECK_ERR(detect(p, n, &si), TSR_EUNSUPPORTED);
  n = ftyp(p, "avif", "avifmif1miaf");
  CHECK_ERR(detect(p, n, &si), TSR_EUNSUPPORTED);
  n = ftyp(p, "M4A ", "M4A mp42isom"); /* audio */
  CHECK_ERR(detect(p, n, &si), TSR_EUNSUPPORTED);
  n = ftyp(p, "abcd", "efgh");
  CHECK_ERR(detect(p, n, &si), TSR_EUNSUPPORTED);
  /* Lying sizes. */
  n = ftyp(p, "isom", "");
  put32(p, 12);
  CHECK_ERR(detect(p, n, &si), TSR_EDECODE);
  put32(p, 18); /* not a whole number of brands */
  CHECK_ERR(detect(p, sizeof p, &si), TSR_EDECODE);
  put32(p, 8000); /* too large for a list of brands */
  CHECK_ERR(detect(p, sizeof p, &si), TSR_EDECODE);
  put32(p, 0xFFFFFFFFu);
  CHECK_ERR(detect(p, sizeof p, &si), TSR_EDECODE);
  put32(p, 1); /* largesize ftyp */
  CHECK_ERR(detect(p, sizeof p, &si), TSR_EDECODE);
}

static void test_unknown(void) {
  sniff_info si;
  static const char text[] = "hello, this is text/plain labelled image/jpeg";
  CHECK_ERR(detect((const uint8_t *)text, sizeof text - 1, &si), TSR_EUNSUPPORTED);
  CHECK_ERR(detect((const uint8_t *)"", 0, &si), TSR_EUNSUPPORTED);
  CHECK_ERR(sniff_detect(NULL, 4, &si), TSR_EINVAL);
  CHECK_ERR(sniff_detect((const uint8_t *)"x", 1, NULL), TSR_EINVAL);
  /* A BMP, a TIFF, a PDF, an SVG: not accepted. */
  CHECK_ERR(detect((const uint8_t *)"BM\x36\x00\x00\x00\x00\x00", 8, &si),
            TSR_EUNSUPPORTED);
  CHECK_ERR(detect((const uint8_t *)"II*\x00\x08\x00\x00\x00", 8, &si), TSR_EUNSUPPORTED);
  CHECK_ERR(detect((const uint8_t *)"%PDF-1.7", 8, &si), TSR_EUNSUPPORTED);
  CHECK_ERR(detect((const uint8_t *)"<svg xmlns=", 11, &si), TSR_EUNSUPPORTED);
  /* mime_static: exactly the six, from static storage. */
  const char *m = sniff_mime_static("image/png", 9);
  CHECK(m && strcmp(m, "image/png") == 0);
  CHECK(sniff_mime_static("video/quicktime", 15) != NULL);
  CHECK(sniff_mime_static("image/pn", 8) == NULL);
  CHECK(sniff_mime_static("image/png ", 10) == NULL);
  CHECK(sniff_mime_static("text/html", 9) == NULL);
  CHECK(sniff_mime_static(NULL, 0) == NULL);
}

/* ---- boxes ---- */

static void test_box_parse(void) {
  uint8_t p[32];
  sniff_box b;
  box(p, "moov", NULL, 8);
  CHECK_OK(sniff_box_parse(p, 16, 100, 116, false, &b));
  CHECK(b.type == SNIFF_FOURCC('m', 'o', 'o', 'v') && b.offset == 100 && b.size == 16 &&
        b.header == 8);
  CHECK_ERR(sniff_box_parse(p, 16, 100, 115, false, &b), TSR_EDECODE); /* past end */
  CHECK_ERR(sniff_box_parse(p, 7, 100, 116, false, &b), TSR_EDECODE);  /* cut header */
  CHECK_ERR(sniff_box_parse(p, 16, 110, 116, false, &b), TSR_EDECODE); /* room < 8 */
  CHECK_ERR(sniff_box_parse(p, 16, 117, 116, false, &b), TSR_EDECODE); /* offset > end */
  put32(p, 7); /* smaller than its header */
  CHECK_ERR(sniff_box_parse(p, 16, 0, 16, false, &b), TSR_EDECODE);
  put32(p, 0); /* to the end: top level only */
  CHECK_ERR(sniff_box_parse(p, 16, 0, 1000, false, &b), TSR_EDECODE);
  CHECK_OK(sniff_box_parse(p, 16, 0, 1000, true, &b));
  CHECK(b.size == 1000 && b.header == 8);
  /* largesize */
  box64(p, "mdat", 8);
  CHECK_OK(sniff_box_parse(p, 24, 0, 24, false, &b));
  CHECK(b.size == 24 && b.header == 16);
  CHECK_ERR(sniff_box_parse(p, 15, 0, 24, false, &b), TSR_EDECODE); /* cut largesize */
  CHECK_ERR(sniff_box_parse(p, 24, 0, 12, false, &b), TSR_EDECODE); /* container ends */
  put64(p + 8, 15); /* less than its own header */
  CHECK_ERR(sniff_box_parse(p, 24, 0, 24, false, &b), TSR_EDECODE);
  put64(p + 8, 0);
  CHECK_ERR(sniff_box_parse(p, 24, 0, 24, true, &b), TSR_EDECODE);
  put64(p + 8, UINT64_MAX); /* giant: far past any file */
  CHECK_ERR(sniff_box_parse(p, 24, 0, UINT64_MAX - 1, false, &b), TSR_EDECODE);
  put64(p + 8, UINT64_MAX - 10);
  CHECK_ERR(sniff_box_parse(p, 24, 100, UINT64_MAX, false, &b), TSR_EDECODE);
  CHECK_OK(sniff_box_parse(p, 24, 10, UINT64_MAX, false, &b));
  CHECK(b.size == UINT64_MAX - 10);
  put32(p, 0xFFFFFFFFu); /* a 32-bit size past the container */
  CHECK_ERR(sniff_box_parse(p, 24, 0, 1 << 20, false, &b), TSR_EDECODE);
}

/* ftyp, free, moov{mvhd, trak{tkhd}}, mdat with largesize. */
static size_t make_mp4(uint8_t *p) {
  uint8_t inner[128], trak[64];
  size_t n = ftyp(p, "isom", "isommp42");
  n += box(p + n, "free", NULL, 4);
  size_t t = box(trak, "tkhd", NULL, 20);
  size_t m = box(inner, "mvhd", NULL, 24);
  m += box(inner + m, "trak", trak, t);
  n += box(p + n, "moov", inner, m);
  n += box64(p + n, "mdat", 40);
  return n;
}

static void test_mp4_check(void) {
  uint8_t p[512];
  size_t n = make_mp4(p);
  CHECK_OK(sniff_mp4_check(p, n));
  /* Cut anywhere: refused (the truncated upload). */
  for (size_t k = 0; k < n; k++) {
    int rc = sniff_mp4_check(p, k);
    if (rc != TSR_EDECODE) {
      fprintf(stderr, "  cut at %zu: %s\n", k, tsr_errname(rc));
      CHECK_ERR(rc, TSR_EDECODE);
      break;
    }
  }
  /* Trailing bytes that are not a box, or that are a box: */
  memset(p + n, 0, 16);
  CHECK_ERR(sniff_mp4_check(p, n + 3), TSR_EDECODE);
  CHECK_OK(sniff_mp4_check(p, n + 8)); /* size 0 at the top: a box to the end */
  box(p + n, "free", NULL, 0);
  CHECK_OK(sniff_mp4_check(p, n + 8));
  CHECK_ERR(sniff_mp4_check(p, n + 9), TSR_EDECODE); /* and one byte more */
  /* The last mdat with size 0 runs to the end of the file. */
  size_t k = ftyp(p, "mp42", "");
  k += box(p + k, "moov", NULL, 0);
  size_t mdat = k;
  k += box(p + k, "mdat", NULL, 100);
  put32(p + mdat, 0);
  CHECK_OK(sniff_mp4_check(p, k));
  CHECK_OK(sniff_mp4_check(p, k - 50)); /* what size 0 cannot know */
  /* Missing pieces, wrong order, duplicates. */
  k = ftyp(p, "mp42", "");
  k += box(p + k, "mdat", NULL, 4);
  CHECK_ERR(sniff_mp4_check(p, k), TSR_EDECODE); /* no moov */
  k = ftyp(p, "mp42", "");
  k += box(p + k, "moov", NULL, 4);
  CHECK_ERR(sniff_mp4_check(p, k), TSR_EDECODE); /* no mdat */
  k = box(p, "moov", NULL, 4);
  k += ftyp(p + k, "mp42", "");
  k += box(p + k, "mdat", NULL, 4);
  CHECK_ERR(sniff_mp4_check(p, k), TSR_EDECODE); /* ftyp not first */
  k = ftyp(p, "mp42", "");
  k += box(p + k, "moov", NULL, 4);
  k += box(p + k, "moov", NULL, 4);
  k += box(p + k, "mdat", NULL, 4);
  CHECK_ERR(sniff_mp4_check(p, k), TSR_EDECODE); /* two moov */
  k = ftyp(p, "mp42", "");
  k += ftyp(p + k, "mp42", "");
  k += box(p + k, "moov", NULL, 4);
  k += box(p + k, "mdat", NULL, 4);
  CHECK_ERR(sniff_mp4_check(p, k), TSR_EDECODE); /* two ftyp */
  k = ftyp(p, "mp42", "");
  k += box(p + k, "moov", NULL, 4);
  k += box(p + k, "mdat", NULL, 4);
  k += box(p + k, "mdat", NULL, 4);
  CHECK_OK(sniff_mp4_check(p, k)); /* several mdat are fine */
  /* A size that lies by one either way. */
  n = make_mp4(p);
  put32(p + 24, 12 + 1); /* free: 13 instead of 12 */
  CHECK_ERR(sniff_mp4_check(p, n), TSR_EDECODE);
  CHECK_ERR(sniff_mp4_check(NULL, 0), TSR_EDECODE);
  CHECK_ERR(sniff_mp4_check(NULL, 10), TSR_EDECODE);
}

/* The walker fed one header at a time, as from a file, agrees with the
 * buffer check, and reports every box in order. */
static void test_mp4_pieces(void) {
  uint8_t p[512];
  size_t n = make_mp4(p);
  sniff_mp4 m;
  sniff_mp4_init(&m, n);
  static const char *const want[] = {"ftyp", "free", "moov", "mdat"};
  size_t i = 0;
  for (;;) {
    uint64_t off;
    size_t k = sniff_mp4_want(&m, &off);
    CHECK(k <= SNIFF_BOX_HEADER_MAX);
    uint8_t h[SNIFF_BOX_HEADER_MAX];
    memcpy(h, p + off, k);
    sniff_box b;
    int rc = sniff_mp4_next(&m, h, k, &b);
    CHECK(rc >= 0);
    if (rc <= 0) break;
    CHECK(i < 4 &&
          b.type == SNIFF_FOURCC(want[i][0], want[i][1], want[i][2], want[i][3]));
    CHECK_INT(b.offset, off);
    i++;
  }
  CHECK_INT(i, 4);
  CHECK_OK(sniff_mp4_finish(&m));
  /* A short read (the file ended early) is a truncation. */
  sniff_mp4_init(&m, n);
  sniff_box b;
  CHECK_ERR(sniff_mp4_next(&m, p, 5, &b), TSR_EDECODE);
}

/* Walks every container it meets, recursively; returns the deepest level
 * reached or a negative error. */
static int walk_all(const uint8_t *p, sniff_boxes *it) {
  int deepest = it->depth;
  for (;;) {
    uint64_t off;
    size_t k = sniff_boxes_want(it, &off);
    sniff_box b;
    int rc = sniff_boxes_next(it, p + off, k, &b);
    if (rc <= 0) return rc < 0 ? rc : deepest;
    if (b.size - b.header < 8) continue;
    sniff_boxes child;
    if ((rc = sniff_boxes_enter(it, &b, 0, &child)) != 0) return rc;
    if ((rc = walk_all(p, &child)) < 0) return rc;
    if (rc > deepest) deepest = rc;
  }
}

static void test_nesting(void) {
  /* levels boxes, each the only child of the one before. */
  enum { MAXLV = SNIFF_BOX_DEPTH_MAX + 3 };
  uint8_t p[8 * MAXLV + 8];
  for (int levels = 1; levels <= MAXLV; levels++) {
    size_t n = 8 * (size_t)levels + 4;
    for (int i = 0; i < levels; i++) {
      put32(p + 8 * i, (uint32_t)(n - 8 * (size_t)i));
      memcpy(p + 8 * i + 4, "cont", 4);
    }
    memset(p + 8 * levels, 0, 4);
    sniff_boxes it;
    sniff_boxes_init(&it, n);
    int rc = walk_all(p, &it);
    if (levels <= SNIFF_BOX_DEPTH_MAX + 1) /* the top level, then that many inside */
      CHECK_INT(rc, levels - 1);
    else
      CHECK_ERR(rc, TSR_EDECODE);
  }
  /* enter: skip past the payload */
  sniff_boxes top, child;
  sniff_boxes_init(&top, 100);
  sniff_box b = {SNIFF_FOURCC('m', 'e', 't', 'a'), 0, 12, 8};
  CHECK_OK(sniff_boxes_enter(&top, &b, 4, &child));
  CHECK(child.pos == 12 && child.end == 12 && child.depth == 1);
  CHECK_ERR(sniff_boxes_enter(&top, &b, 5, &child), TSR_EDECODE);
  /* A nested size 0 is not "to the end". */
  uint8_t q[24];
  box(q, "moov", NULL, 16);
  memset(q + 8, 0, 8);
  memcpy(q + 12, "udta", 4);
  sniff_boxes_init(&top, 24);
  sniff_box mv;
  CHECK_INT(sniff_boxes_next(&top, q, 16, &mv), 1);
  CHECK_OK(sniff_boxes_enter(&top, &mv, 0, &child));
  CHECK_ERR(sniff_boxes_next(&child, q + 8, 16, &b), TSR_EDECODE);
}

static void test_box_count(void) {
  size_t n = 8 * (size_t)(SNIFF_BOXES_MAX + 1);
  uint8_t *p = calloc(1, n);
  CHECK(p != NULL);
  if (!p) return;
  for (size_t i = 0; i < n; i += 8) box(p + i, "free", NULL, 0);
  sniff_boxes it;
  sniff_boxes_init(&it, n - 8);
  CHECK_INT(walk_all(p, &it), 0); /* exactly the limit */
  sniff_boxes_init(&it, n);
  CHECK_ERR(walk_all(p, &it), TSR_EDECODE);
  free(p);
}

int main(void) {
  RUN(test_jpeg);
  RUN(test_png);
  RUN(test_gif);
  RUN(test_webp);
  RUN(test_ftyp);
  RUN(test_unknown);
  RUN(test_box_parse);
  RUN(test_mp4_check);
  RUN(test_mp4_pieces);
  RUN(test_nesting);
  RUN(test_box_count);
  return test_report("sniff");
}
