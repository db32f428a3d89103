/* Media sniffing and ISO-BMFF box walking. See sniff.h. */
#include "proto/sniff.h"

#include <string.h>

#include "tessera/error.h"

#define FTYP_MIN 16   /* size, type, major brand, minor version */
#define FTYP_MAX 4096 /* a real ftyp lists a handful of brands */

static const char MIME_JPEG[] = "image/jpeg";
static const char MIME_PNG[] = "image/png";
static const char MIME_WEBP[] = "image/webp";
static const char MIME_GIF[] = "image/gif";
static const char MIME_MP4[] = "video/mp4";
static const char MIME_MOV[] = "video/quicktime";

static uint32_t be16(const uint8_t *p) { return (uint32_t)p[0] << 8 | p[1]; }
static uint32_t le16(const uint8_t *p) { return (uint32_t)p[1] << 8 | p[0]; }
static uint32_t le24(const uint8_t *p) { return le16(p) | (uint32_t)p[2] << 16; }
static uint32_t be32(const uint8_t *p) { return be16(p) << 16 | be16(p + 2); }
static uint32_t le32(const uint8_t *p) { return le16(p) | le16(p + 2) << 16; }
static uint64_t be64(const uint8_t *p) { return (uint64_t)be32(p) << 32 | be32(p + 4); }

static void set(sniff_info *out, sniff_type t, const char *mime, uint32_t w, uint32_t h) {
  *out = (sniff_info){t, mime, t == SNIFF_MP4 || t == SNIFF_MOV, w, h};
}

/* ---- JPEG ------------------------------------------------------------------ */

/* SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC). */
static bool is_sof(uint8_t m) {
  return m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
}

/* Walks the marker segments after SOI up to the first SOF. Returns 1 with
 * the size, 0 when it is not within p[0..n) (or junk stops the walk: the
 * decoder will judge), TSR_EDECODE for an impossible segment. */
static int jpeg_size(const uint8_t *p, size_t n, uint32_t *w, uint32_t *h) {
  size_t i = 2;
  for (;;) {
    if (i >= n || p[i] != 0xFF) return 0;
    while (i < n && p[i] == 0xFF) i++; /* fill bytes */
    if (i >= n) return 0;
    uint8_t m = p[i++];
    if ((m >= 0xD0 && m <= 0xD7) || m == 0x01) continue; /* no length */
    if (m == 0xD8 || m == 0xD9 || m == 0xDA || m == 0x00)
      return TSR_EDECODE; /* SOI again, EOI or a scan before any frame */
    if (n - i < 2) return 0;
    size_t len = be16(p + i);
    if (len < 2) return TSR_EDECODE;
    if (is_sof(m)) {
      if (len < 8) return TSR_EDECODE;
      if (n - i < 7) return 0;
      *h = be16(p + i + 3);
      *w = be16(p + i + 5);
      return *w && *h ? 1 : TSR_EDECODE; /* height 0 (DNL) is not supported */
    }
    if (n - i < len) return 0;
    i += len;
  }
}

static int sniff_jpeg(const uint8_t *p, size_t n, sniff_info *out) {
  uint32_t w = 0, h = 0;
  int rc = jpeg_size(p, n, &w, &h);
  if (rc < 0) return rc;
  set(out, SNIFF_JPEG, MIME_JPEG, w, h);
  return 0;
}

/* ---- PNG, GIF -------------------------------------------------------------- */

static int sniff_png(const uint8_t *p, size_t n, sniff_info *out) {
  /* signature (8), IHDR length (4) = 13, "IHDR", width, height */
  if (n < 24 || be32(p + 8) != 13 || memcmp(p + 12, "IHDR", 4) != 0) return TSR_EDECODE;
  uint32_t w = be32(p + 16), h = be32(p + 20);
  if (w == 0 || h == 0 || w > 0x7FFFFFFFu || h > 0x7FFFFFFFu) return TSR_EDECODE;
  set(out, SNIFF_PNG, MIME_PNG, w, h);
  return 0;
}

static int sniff_gif(const uint8_t *p, size_t n, sniff_info *out) {
  if (n < 10) return TSR_EDECODE; /* logical screen descriptor */
  uint32_t w = le16(p + 6), h = le16(p + 8);
  if (w == 0 || h == 0) return TSR_EDECODE;
  set(out, SNIFF_GIF, MIME_GIF, w, h);
  return 0;
}

/* ---- WebP ------------------------------------------------------------------ */

/* The first chunk of a RIFF/WEBP file decides its size: VP8 (lossy), VP8L
 * (lossless) or VP8X (extended, with the canvas size). */
static int sniff_webp(const uint8_t *p, size_t n, sniff_info *out) {
  if (n < 20) return TSR_EDECODE;
  uint32_t riff = le32(p + 4), csize = le32(p + 16);
  if (riff < 12 || csize > riff - 12) return TSR_EDECODE; /* chunk outside the RIFF */
  const uint8_t *c = p + 20;
  size_t have = n - 20;
  uint32_t w, h;
  if (memcmp(p + 12, "VP8 ", 4) == 0) {
    /* frame tag (3 bytes, bit 0 clear on a key frame), start code, sizes */
    if (csize < 10 || have < 10) return TSR_EDECODE;
    if ((c[0] & 1) != 0 || c[3] != 0x9D || c[4] != 0x01 || c[5] != 0x2A)
      return TSR_EDECODE;
    w = le16(c + 6) & 0x3FFF;
    h = le16(c + 8) & 0x3FFF;
  } else if (memcmp(p + 12, "VP8L", 4) == 0) {
    /* signature 0x2F, then 14 bits width - 1 and 14 bits height - 1 */
    if (csize < 5 || have < 5 || c[0] != 0x2F) return TSR_EDECODE;
    uint32_t v = le32(c + 1);
    w = (v & 0x3FFF) + 1;
    h = (v >> 14 & 0x3FFF) + 1;
  } else if (memcmp(p + 12, "VP8X", 4) == 0) {
    /* flags, 3 reserved bytes, canvas width - 1, canvas height - 1 (24 bits) */
    if (csize < 10 || have < 10) return TSR_EDECODE;
    w = le24(c + 4) + 1;
    h = le24(c + 7) + 1;
  } else {
    return TSR_EDECODE;
  }
  if (w == 0 || h == 0) return TSR_EDECODE;
  set(out, SNIFF_WEBP, MIME_WEBP, w, h);
  return 0;
}

/* ---- ISO-BMFF `ftyp` ------------------------------------------------------- */

static bool brand_in(uint32_t b, const char *const *list) {
  for (; *list; list++)
    if (b == SNIFF_FOURCC((*list)[0], (*list)[1], (*list)[2], (*list)[3])) return true;
  return false;
}

/* Brands of video files. */
static const char *const video_brands[] = {
    "isom", "iso2", "iso3", "iso4", "iso5", "iso6", "iso7", "iso8", "iso9", "mp41",
    "mp42", "avc1", "M4V ", "M4VH", "M4VP", "mmp4", "MSNV", "dash", "qt  ", NULL};
/* Major brands of ISO-BMFF files that are not video, whatever they list as
 * compatible: HEIF/AVIF still images, MPEG-4 audio. */
static const char *const other_brands[] = {"heic", "heix", "hevc", "hevx", "heim", "heis",
                                           "mif1", "msf1", "avif", "avis", "M4A ", "M4B ",
                                           "M4P ", "F4A ", "F4B ", NULL};

static int sniff_ftyp(const uint8_t *p, size_t n, sniff_info *out) {
  uint32_t size = be32(p);
  if (size < FTYP_MIN || size > FTYP_MAX || size % 4 != 0 || n < size) return TSR_EDECODE;
  uint32_t major = be32(p + 8);
  if (brand_in(major, other_brands)) return TSR_EUNSUPPORTED;
  bool video = brand_in(major, video_brands);
  for (uint32_t i = 16; i < size && !video; i += 4)
    video = brand_in(be32(p + i), video_brands);
  if (!video) return TSR_EUNSUPPORTED;
  if (major == SNIFF_FOURCC('q', 't', ' ', ' '))
    set(out, SNIFF_MOV, MIME_MOV, 0, 0);
  else
    set(out, SNIFF_MP4, MIME_MP4, 0, 0);
  return 0;
}

/* ---- detection ------------------------------------------------------------- */

static bool starts(const uint8_t *p, size_t n, const char *sig, size_t len) {
  return n >= len && memcmp(p, sig, len) == 0;
}

int sniff_detect(const uint8_t *p, size_t n, sniff_info *out) {
  if (!p || !out) return TSR_EINVAL;
  if (starts(p, n, "\xFF\xD8\xFF", 3)) return sniff_jpeg(p, n, out);
  if (starts(p, n, "\x89PNG\r\n\x1A\n", 8)) return sniff_png(p, n, out);
  if (starts(p, n, "GIF87a", 6) || starts(p, n, "GIF89a", 6)) return sniff_gif(p, n, out);
  if (starts(p, n, "RIFF", 4) && n >= 12 && memcmp(p + 8, "WEBP", 4) == 0)
    return sniff_webp(p, n, out);
  if (n >= 8 && memcmp(p + 4, "ftyp", 4) == 0) return sniff_ftyp(p, n, out);
  return TSR_EUNSUPPORTED;
}

const char *sniff_mime_static(const char *s, size_t n) {
  static const char *const all[] = {MIME_JPEG, MIME_PNG, MIME_WEBP,
                                    MIME_GIF,  MIME_MP4, MIME_MOV};
  if (!s) return NULL;
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    if (strlen(all[i]) == n && memcmp(all[i], s, n) == 0) return all[i];
  return NULL;
}

/* ---- boxes ----------------------------------------------------------------- */

int sniff_box_parse(const uint8_t *p, size_t n, uint64_t offset, uint64_t end,
                    bool to_end_ok, sniff_box *out) {
  if (!p || !out || offset > end) return TSR_EDECODE;
  uint64_t room = end - offset;
  if (n < 8 || room < 8) return TSR_EDECODE;
  uint32_t size32 = be32(p);
  uint32_t header = 8;
  uint64_t size;
  if (size32 == 1) { /* 64-bit largesize follows the type */
    if (n < 16 || room < 16) return TSR_EDECODE;
    size = be64(p + 8);
    header = 16;
  } else if (size32 == 0) { /* to the end of the file */
    if (!to_end_ok) return TSR_EDECODE;
    size = room;
  } else {
    size = size32;
  }
  if (size < header || size > room) return TSR_EDECODE;
  *out = (sniff_box){be32(p + 4), offset, size, header};
  return 0;
}

void sniff_boxes_init(sniff_boxes *it, uint64_t file_size) {
  *it = (sniff_boxes){0, file_size, 0, 0};
}

int sniff_boxes_enter(const sniff_boxes *parent, const sniff_box *box, uint32_t skip,
                      sniff_boxes *child) {
  if (parent->depth >= SNIFF_BOX_DEPTH_MAX || box->size - box->header < skip)
    return TSR_EDECODE;
  *child = (sniff_boxes){box->offset + box->header + skip, box->offset + box->size, 0,
                         (uint8_t)(parent->depth + 1)};
  return 0;
}

size_t sniff_boxes_want(const sniff_boxes *it, uint64_t *off) {
  uint64_t left = it->end - it->pos;
  *off = it->pos;
  return left < SNIFF_BOX_HEADER_MAX ? (size_t)left : SNIFF_BOX_HEADER_MAX;
}

int sniff_boxes_next(sniff_boxes *it, const uint8_t *p, size_t n, sniff_box *out) {
  if (it->pos == it->end) return 0;
  if (it->count >= SNIFF_BOXES_MAX) return TSR_EDECODE;
  sniff_box b;
  int rc = sniff_box_parse(p, n, it->pos, it->end, it->depth == 0, &b);
  if (rc) return rc;
  it->pos += b.size;
  it->count++;
  *out = b;
  return 1;
}

void sniff_mp4_init(sniff_mp4 *m, uint64_t file_size) {
  *m = (sniff_mp4){.ftyp = 0};
  sniff_boxes_init(&m->it, file_size);
}

size_t sniff_mp4_want(const sniff_mp4 *m, uint64_t *off) {
  return sniff_boxes_want(&m->it, off);
}

int sniff_mp4_next(sniff_mp4 *m, const uint8_t *p, size_t n, sniff_box *out) {
  sniff_box b;
  int rc = sniff_boxes_next(&m->it, p, n, &b);
  if (rc <= 0) return rc;
  if (m->it.count == 1 && b.type != SNIFF_FOURCC('f', 't', 'y', 'p')) return TSR_EDECODE;
  switch (b.type) {
  case SNIFF_FOURCC('f', 't', 'y', 'p'):
    if (++m->ftyp > 1) return TSR_EDECODE;
    break;
  case SNIFF_FOURCC('m', 'o', 'o', 'v'):
    if (++m->moov > 1) return TSR_EDECODE;
    break;
  case SNIFF_FOURCC('m', 'd', 'a', 't'): m->mdat++; break;
  default: break;
  }
  *out = b;
  return 1;
}

int sniff_mp4_finish(const sniff_mp4 *m) {
  bool ok = m->it.pos == m->it.end && m->ftyp == 1 && m->moov == 1 && m->mdat >= 1;
  return ok ? 0 : TSR_EDECODE;
}

int sniff_mp4_check(const uint8_t *p, size_t n) {
  if (!p && n) return TSR_EDECODE;
  sniff_mp4 m;
  sniff_mp4_init(&m, n);
  for (;;) {
    uint64_t off;
    size_t k = sniff_mp4_want(&m, &off);
    sniff_box b;
    int rc = sniff_mp4_next(&m, k ? p + off : p, k, &b);
    if (rc < 0) return rc;
    if (rc == 0) return sniff_mp4_finish(&m);
  }
}
