/* libFuzzer target for media sniffing and the ISO-BMFF walker
 * (src/proto/sniff.c).
 *
 * The input is a file as uploaded. The harness copies it to a buffer of
 * exactly its size (so ASan sees any read past it) and checks:
 * sniff_detect returns one of its codes, and on success a type, the MIME
 * string from static storage that belongs to it, sizes only for images;
 * sniff_detect on every prefix never crashes and never finds another type;
 * sniff_mp4_check is 0 or TSR_EDECODE and agrees with the walker fed one
 * header at a time from copies of exactly the bytes it asked for, whose
 * boxes tile the file in order; a recursive walk into every box stays
 * inside its parent, within the depth limit. Nothing may crash, hang or
 * trip a sanitizer. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/sniff.h"
#include "tessera/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                                    \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      fprintf(stderr, "fuzz_sniff: %s:%d: %s\n", __FILE__, __LINE__, #cond);             \
      abort();                                                                           \
    }                                                                                    \
  } while (0)

static const char *mime_of(sniff_type t) {
  switch (t) {
  case SNIFF_JPEG: return "image/jpeg";
  case SNIFF_PNG: return "image/png";
  case SNIFF_WEBP: return "image/webp";
  case SNIFF_GIF: return "image/gif";
  case SNIFF_MP4: return "video/mp4";
  case SNIFF_MOV: return "video/quicktime";
  default: return NULL;
  }
}

static void check_detect(const uint8_t *p, size_t n) {
  sniff_info si = {.type = SNIFF_UNKNOWN};
  int rc = sniff_detect(p, n, &si);
  REQUIRE(rc == 0 || rc == TSR_EUNSUPPORTED || rc == TSR_EDECODE);
  if (rc != 0) {
    REQUIRE(si.type == SNIFF_UNKNOWN); /* untouched */
    return;
  }
  const char *want = mime_of(si.type);
  REQUIRE(want && si.mime && strcmp(si.mime, want) == 0);
  REQUIRE(sniff_mime_static(si.mime, strlen(si.mime)) == si.mime);
  REQUIRE(si.video == (si.type == SNIFF_MP4 || si.type == SNIFF_MOV));
  if (si.video) REQUIRE(si.width == 0 && si.height == 0);
  REQUIRE((si.width == 0) == (si.height == 0));
  /* A prefix names the same type or none. */
  for (size_t k = 0; k < n && k < 64; k++) {
    sniff_info sp = {.type = SNIFF_UNKNOWN};
    if (sniff_detect(p, k, &sp) == 0) REQUIRE(sp.type == si.type);
  }
}

/* The walker fed from exact-size copies of what it asks for. */
static int walk_pieces(const uint8_t *p, size_t n) {
  sniff_mp4 m;
  sniff_mp4_init(&m, n);
  uint64_t expect = 0;
  for (;;) {
    uint64_t off;
    size_t k = sniff_mp4_want(&m, &off);
    REQUIRE(k <= SNIFF_BOX_HEADER_MAX && off <= n && k <= n - off);
    uint8_t *h = malloc(k ? k : 1);
    REQUIRE(h != NULL);
    memcpy(h, p + off, k);
    sniff_box b;
    int rc = sniff_mp4_next(&m, h, k, &b);
    free(h);
    if (rc < 0) return rc;
    if (rc == 0) return sniff_mp4_finish(&m);
    REQUIRE(b.offset == expect && b.header <= b.size && b.size <= n - b.offset);
    expect = b.offset + b.size;
  }
}

/* Every box and, inside it, whatever parses as boxes, recursively. */
static void walk_deep(const uint8_t *p, sniff_boxes *it) {
  REQUIRE(it->depth <= SNIFF_BOX_DEPTH_MAX);
  uint64_t begin = it->pos, end = it->end;
  for (;;) {
    uint64_t off;
    size_t k = sniff_boxes_want(it, &off);
    sniff_box b;
    int rc = sniff_boxes_next(it, p + off, k, &b);
    REQUIRE(rc == 0 || rc == 1 || rc == TSR_EDECODE);
    if (rc <= 0) return;
    REQUIRE(b.offset >= begin && b.size <= end - b.offset);
    sniff_boxes child;
    uint32_t skip = b.type == SNIFF_FOURCC('m', 'e', 't', 'a') ? 4 : 0;
    if (sniff_boxes_enter(it, &b, skip, &child) == 0) walk_deep(p, &child);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > (1u << 20)) return 0;
  uint8_t *p = malloc(size ? size : 1);
  if (!p) return 0;
  memcpy(p, data, size);
  check_detect(p, size);
  int whole = sniff_mp4_check(p, size);
  REQUIRE(whole == 0 || whole == TSR_EDECODE);
  REQUIRE(walk_pieces(p, size) == whole);
  sniff_boxes it;
  sniff_boxes_init(&it, size);
  walk_deep(p, &it);
  free(p);
  return 0;
}
