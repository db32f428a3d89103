/* Public media processing with libvips. See imaging.h. */
#include "server/imaging.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vips/vips.h>

#include "server/log.h"
#include "tessera/error.h"

#define ZERO_CHUNK 65536 /* bytes written per pwrite when zeroing a payload */

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int init_rc = TSR_ESTATE;

/* libvips and glib warnings (e.g. "error in tile") go to the log. */
static void on_vips_log(const gchar *domain, GLogLevelFlags level, const gchar *msg,
                        gpointer data) {
  (void)level;
  (void)data;
  log_debug("imaging: %s: %s", domain ? domain : "glib", msg);
}

static void init_once(void) {
  if (VIPS_INIT("tesserad") != 0) {
    log_error("imaging: libvips does not start: %s", vips_error_buffer());
    vips_error_clear();
    return;
  }
  vips_concurrency_set(1);
  vips_cache_set_max(0); /* nothing kept between uploads (nor open files) */
  vips_cache_set_max_mem(0);
  vips_cache_set_max_files(0);
  vips_block_untrusted_set(TRUE); /* belt and braces: we name our loaders */
  g_log_set_handler("VIPS", G_LOG_LEVEL_MASK, on_vips_log, NULL);
  init_rc = 0;
}

int imaging_init(void) {
  pthread_once(&once, init_once);
  return init_rc;
}

void imaging_shutdown(void) {
  if (init_rc == 0) vips_shutdown();
  init_rc = TSR_ESTATE;
}

void imaging_thread_done(void) {
  if (init_rc == 0) vips_thread_shutdown();
}

/* ---- images ---------------------------------------------------------------- */

/* Logs and clears libvips' error buffer; returns rc. */
static int vips_failed(const char *what, const char *path, int rc) {
  const char *e = vips_error_buffer();
  size_t n = strlen(e);
  while (n && e[n - 1] == '\n') n--;
  log_info("imaging: %s %s: %.*s", what, path, (int)n, e);
  vips_error_clear();
  return rc;
}

/* Opens path with the loader of type t. Only the header is read here;
 * pixels are decoded when something asks for them, and then any error
 * (a truncated file included) fails the whole pipeline. */
static VipsImage *load(const char *path, sniff_type t, VipsAccess access) {
  VipsImage *img = NULL;
  int rc = -1;
  switch (t) {
  case SNIFF_JPEG:
    rc = vips_jpegload(path, &img, "access", access, "fail_on", VIPS_FAIL_ON_ERROR, NULL);
    break;
  case SNIFF_PNG:
    rc = vips_pngload(path, &img, "access", access, "fail_on", VIPS_FAIL_ON_ERROR, NULL);
    break;
  case SNIFF_WEBP:
    rc = vips_webpload(path, &img, "access", access, "fail_on", VIPS_FAIL_ON_ERROR, NULL);
    break;
  case SNIFF_GIF:
    rc = vips_gifload(path, &img, "access", access, "fail_on", VIPS_FAIL_ON_ERROR, NULL);
    break;
  default: break;
  }
  return rc == 0 ? img : NULL;
}

/* Replaces *img by next (the pipeline keeps what next needs). */
static void advance(VipsImage **img, VipsImage *next) {
  g_object_unref(*img);
  *img = next;
}

/* To sRGB when a profile or CMYK says the pixels are in another space;
 * without the profile (stripped) they would be shown wrongly. A profile
 * that does not apply is ignored: colours may then be off, nothing else. */
static int to_srgb(VipsImage **img, const char *path) {
  VipsImage *next = NULL;
  if (vips_image_get_typeof(*img, VIPS_META_ICC_NAME)) {
    if (vips_icc_transform(*img, &next, "srgb", "embedded", TRUE, NULL) == 0) {
      advance(img, next);
      return 0;
    }
    vips_failed("ignoring the colour profile of", path, 0);
  }
  if ((*img)->Type == VIPS_INTERPRETATION_CMYK) {
    if (vips_colourspace(*img, &next, VIPS_INTERPRETATION_sRGB, NULL) != 0)
      return vips_failed("cannot convert", path, TSR_EDECODE);
    advance(img, next);
  }
  return 0;
}

/* Shrinks so that the larger side is IMAGING_MAX_SIDE, to exact integer
 * sizes (scales derived from them, so rounding cannot overshoot). */
static int shrink(VipsImage **img, const char *path) {
  int w = (*img)->Xsize, h = (*img)->Ysize;
  if (w <= IMAGING_MAX_SIDE && h <= IMAGING_MAX_SIDE) return 0;
  int tw, th;
  if (w >= h) {
    tw = IMAGING_MAX_SIDE;
    th = (int)(((int64_t)h * IMAGING_MAX_SIDE + w / 2) / w);
  } else {
    th = IMAGING_MAX_SIDE;
    tw = (int)(((int64_t)w * IMAGING_MAX_SIDE + h / 2) / h);
  }
  if (tw < 1) tw = 1;
  if (th < 1) th = 1;
  VipsImage *next = NULL;
  if (vips_resize(*img, &next, (double)tw / w, "vscale", (double)th / h, NULL) != 0)
    return vips_failed("cannot shrink", path, TSR_EDECODE);
  advance(img, next);
  if ((*img)->Xsize > tw || (*img)->Ysize > th) { /* never seen; cheap insurance */
    if (vips_crop(*img, &next, 0, 0, VIPS_MIN((*img)->Xsize, tw),
                  VIPS_MIN((*img)->Ysize, th), NULL) != 0)
      return vips_failed("cannot crop", path, TSR_EDECODE);
    advance(img, next);
  }
  return 0;
}

static const char *out_mime(sniff_type t) {
  switch (t) {
  case SNIFF_JPEG: return sniff_mime_static("image/jpeg", 10);
  case SNIFF_WEBP: return sniff_mime_static("image/webp", 10);
  default: return sniff_mime_static("image/png", 9); /* PNG, and GIF's first frame */
  }
}

static int write_at(int fd, const void *p, size_t n, uint64_t off);

static uint32_t le32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

/* Drops the EXIF, XMP and ICCP chunks of the RIFF/WEBP file p[0..*n) in
 * place, clears their flags in VP8X and fixes the RIFF size. libvips 8.14
 * writes an EXIF chunk of its own (orientation, resolution) even with
 * strip; this removes it. Returns 0, or TSR_EDECODE when p is not the
 * RIFF it should be. */
static int webp_drop_metadata(uint8_t *p, size_t *n) {
  if (*n < 12 || memcmp(p, "RIFF", 4) != 0 || memcmp(p + 8, "WEBP", 4) != 0)
    return TSR_EDECODE;
  size_t r = 12, w = 12;
  while (r < *n) {
    if (*n - r < 8) return TSR_EDECODE;
    uint32_t len = le32(p + r + 4);
    uint64_t whole = 8 + (uint64_t)len + (len & 1); /* chunks are padded to even */
    if (whole > *n - r) return TSR_EDECODE;
    bool drop = memcmp(p + r, "EXIF", 4) == 0 || memcmp(p + r, "XMP ", 4) == 0 ||
                memcmp(p + r, "ICCP", 4) == 0;
    if (!drop) {
      memmove(p + w, p + r, (size_t)whole);
      if (memcmp(p + w, "VP8X", 4) == 0 && len >= 1)
        p[w + 8] &= (uint8_t) ~(0x20 | 0x08 | 0x04); /* ICC, EXIF, XMP */
      w += (size_t)whole;
    }
    r += (size_t)whole;
  }
  uint32_t riff = (uint32_t)(w - 8);
  for (int i = 0; i < 4; i++) p[4 + i] = (uint8_t)(riff >> (8 * i));
  *n = w;
  return 0;
}

static int write_file(const char *path, const void *p, size_t n) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return TSR_EIO;
  int rc = write_at(fd, p, n, 0);
  if (close(fd) != 0) rc = TSR_EIO;
  return rc;
}

static int save_webp(VipsImage *img, const char *out_path) {
  void *buf = NULL;
  size_t len = 0;
  if (vips_webpsave_buffer(img, &buf, &len, "Q", IMAGING_JPEG_QUALITY, "strip", TRUE,
                           NULL))
    return vips_failed("cannot encode", out_path, TSR_EIO);
  int rc = webp_drop_metadata(buf, &len);
  if (rc) log_error("imaging: libvips wrote an unexpected WebP for %s", out_path);
  if (!rc) rc = write_file(out_path, buf, len);
  g_free(buf);
  return rc ? TSR_EIO : 0;
}

/* Writes img to out_path (0600); nothing there on failure. */
static int save(VipsImage *img, sniff_type t, const char *out_path) {
  int rc = 0;
  if (t == SNIFF_WEBP) {
    rc = save_webp(img, out_path);
  } else if (t == SNIFF_JPEG) {
    if (vips_jpegsave(img, out_path, "Q", IMAGING_JPEG_QUALITY, "strip", TRUE,
                      "optimize_coding", TRUE, NULL) != 0)
      rc = vips_failed("cannot write", out_path, TSR_EIO);
  } else if (vips_pngsave(img, out_path, "strip", TRUE, NULL) != 0) {
    rc = vips_failed("cannot write", out_path, TSR_EIO);
  }
  if (!rc && chmod(out_path, 0600) != 0) rc = TSR_EIO;
  if (rc) unlink(out_path);
  return rc;
}

/* Reads the header only: size limit and orientation, before any pixel. */
static int check_header(const char *path, sniff_type t, bool *upright) {
  VipsImage *img = load(path, t, VIPS_ACCESS_SEQUENTIAL);
  if (!img) return vips_failed("cannot open", path, TSR_EDECODE);
  uint64_t px = (uint64_t)img->Xsize * (uint64_t)img->Ysize;
  *upright = vips_image_get_orientation(img) == 1;
  g_object_unref(img);
  if (px > IMAGING_MAX_PIXELS) {
    log_info("imaging: %s has %llu pixels: refused", path, (unsigned long long)px);
    return TSR_ELIMIT;
  }
  return 0;
}

/* Decodes, straightens, converts and shrinks into memory: every decoding
 * error shows here, before anything is written. Returns the image or
 * NULL with *rc set. */
static VipsImage *decode(const char *path, sniff_type t, bool upright, int *rc) {
  /* Rotating needs random access; otherwise pixels stream through. */
  VipsImage *img = load(path, t, upright ? VIPS_ACCESS_SEQUENTIAL : VIPS_ACCESS_RANDOM);
  if (!img) {
    *rc = vips_failed("cannot open", path, TSR_EDECODE);
    return NULL;
  }
  VipsImage *next = NULL;
  if (!upright) {
    if (vips_autorot(img, &next, NULL) != 0) {
      g_object_unref(img);
      *rc = vips_failed("cannot rotate", path, TSR_EDECODE);
      return NULL;
    }
    advance(&img, next);
  }
  if ((*rc = to_srgb(&img, path)) != 0 || (*rc = shrink(&img, path)) != 0) {
    g_object_unref(img);
    return NULL;
  }
  next = vips_image_copy_memory(img);
  g_object_unref(img);
  if (!next) *rc = vips_failed("cannot decode", path, TSR_EDECODE);
  return next;
}

/* A new image over img's pixels with no metadata at all: what a saver
 * cannot write because it is not there. (The savers' strip option alone
 * is not enough: libvips 8.14's WebP saver writes EXIF regardless.) The
 * pixels stay img's, so img must outlive the result. */
static VipsImage *bare_copy(VipsImage *img) {
  VipsImage *bare =
      vips_image_new_from_memory(VIPS_IMAGE_ADDR(img, 0, 0), VIPS_IMAGE_SIZEOF_IMAGE(img),
                                 img->Xsize, img->Ysize, img->Bands, img->BandFmt);
  VipsImage *out = NULL;
  if (bare && vips_copy(bare, &out, "interpretation", img->Type, NULL) != 0) out = NULL;
  if (bare) g_object_unref(bare);
  return out;
}

int imaging_reencode(const char *in_path, sniff_type type, const char *out_path,
                     imaging_info *info) {
  if (!in_path || !out_path || !info) return TSR_EINVAL;
  if (type != SNIFF_JPEG && type != SNIFF_PNG && type != SNIFF_WEBP && type != SNIFF_GIF)
    return TSR_EINVAL;
  if (init_rc != 0) return TSR_ESTATE;
  bool upright = true;
  int rc = check_header(in_path, type, &upright);
  if (rc) return rc;
  VipsImage *img = decode(in_path, type, upright, &rc);
  if (!img) return rc;
  VipsImage *bare = bare_copy(img);
  if (!bare) {
    g_object_unref(img);
    return vips_failed("cannot copy", in_path, TSR_ENOMEM);
  }
  /* Only writing is left: a failure here is the disk's, not the image's. */
  if ((rc = save(bare, type, out_path)) == 0) {
    *info =
        (imaging_info){out_mime(type), false, (uint32_t)img->Xsize, (uint32_t)img->Ysize};
  }
  g_object_unref(bare);
  g_object_unref(img);
  return rc;
}

/* ---- videos ---------------------------------------------------------------- */

#define FOURCC SNIFF_FOURCC

/* One scrub: the file and what was found. */
typedef struct {
  int fd;
  uint32_t width, height; /* of the first track with a picture */
  unsigned neutralised;
} scrub;

/* pread of up to n bytes at off; returns the count (short at the end of
 * the file) or -1. */
static ssize_t read_at(int fd, void *p, size_t n, uint64_t off) {
  size_t got = 0;
  while (got < n) {
    ssize_t k = pread(fd, (uint8_t *)p + got, n - got, (off_t)(off + got));
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) return -1;
    if (k == 0) break;
    got += (size_t)k;
  }
  return (ssize_t)got;
}

static int write_at(int fd, const void *p, size_t n, uint64_t off) {
  size_t done = 0;
  while (done < n) {
    ssize_t k = pwrite(fd, (const uint8_t *)p + done, n - done, (off_t)(off + done));
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return TSR_EIO;
    done += (size_t)k;
  }
  return 0;
}

/* Renames box to `free` and zeroes its payload; the size stays, so the
 * layout and every offset into the file stay as they were. */
static int neutralise(scrub *s, const sniff_box *b) {
  static const uint8_t zeros[ZERO_CHUNK];
  int rc = write_at(s->fd, "free", 4, b->offset + 4);
  for (uint64_t at = b->offset + b->header, end = b->offset + b->size; !rc && at < end;) {
    size_t n = end - at < ZERO_CHUNK ? (size_t)(end - at) : ZERO_CHUNK;
    rc = write_at(s->fd, zeros, n, at);
    at += n;
  }
  if (!rc) s->neutralised++;
  return rc;
}

/* XMP packets in `uuid` boxes (Adobe's usertype). */
static int is_xmp_uuid(scrub *s, const sniff_box *b) {
  static const uint8_t xmp[16] = {0xBE, 0x7A, 0xCF, 0xCB, 0x97, 0xA9, 0x42, 0xE8,
                                  0x9C, 0x71, 0x99, 0x94, 0x91, 0xE3, 0xAF, 0xAC};
  uint8_t u[16];
  if (b->size - b->header < sizeof u) return 0;
  ssize_t k = read_at(s->fd, u, sizeof u, b->offset + b->header);
  if (k < 0) return TSR_EIO;
  return k == (ssize_t)sizeof u && memcmp(u, xmp, sizeof u) == 0;
}

/* Neutralises b when it is a metadata box. Returns 1 when it was, 0
 * when b is no metadata box, or an error. */
static int strip_if_metadata(scrub *s, const sniff_box *b) {
  int meta =
      b->type == FOURCC('u', 'd', 't', 'a') || b->type == FOURCC('m', 'e', 't', 'a');
  if (!meta && b->type == FOURCC('u', 'u', 'i', 'd')) meta = is_xmp_uuid(s, b);
  if (meta <= 0) return meta;
  int rc = neutralise(s, b);
  return rc ? rc : 1;
}

/* mvhd, tkhd, mdhd: FullBox (version, flags), then creation and
 * modification times (32-bit in version 0, 64-bit in version 1). Zeroed.
 * A tkhd's picture size is also read (16.16 fixed point at its end). */
static int clear_times(scrub *s, const sniff_box *b) {
  uint8_t p[96]; /* the largest tkhd (version 1) */
  uint64_t len = b->size - b->header;
  ssize_t k =
      read_at(s->fd, p, len < sizeof p ? (size_t)len : sizeof p, b->offset + b->header);
  if (k < 0) return TSR_EIO;
  if (k < 4 || p[0] > 1) return TSR_EDECODE;
  size_t times = p[0] == 1 ? 16 : 8;
  if ((size_t)k < 4 + times) return TSR_EDECODE;
  static const uint8_t zeros[16];
  int rc = write_at(s->fd, zeros, times, b->offset + b->header + 4);
  if (rc || b->type != FOURCC('t', 'k', 'h', 'd')) return rc;
  size_t at = p[0] == 1 ? 88 : 76; /* width; height follows */
  if ((size_t)k < at + 8) return TSR_EDECODE;
  uint32_t w = (uint32_t)p[at] << 8 | p[at + 1];
  uint32_t h = (uint32_t)p[at + 4] << 8 | p[at + 5];
  if (w && h && !s->width) {
    s->width = w;
    s->height = h;
  }
  return 0;
}

typedef int (*visit_fn)(scrub *s, const sniff_boxes *it, const sniff_box *b);

/* Visits the boxes of one container; they must fill it exactly. */
static int walk(scrub *s, sniff_boxes *it, visit_fn fn) {
  for (;;) {
    uint8_t h[SNIFF_BOX_HEADER_MAX];
    uint64_t off;
    size_t want = sniff_boxes_want(it, &off);
    ssize_t k = want ? read_at(s->fd, h, want, off) : 0;
    if (k < 0) return TSR_EIO;
    sniff_box b;
    int rc = sniff_boxes_next(it, h, (size_t)k, &b);
    if (rc <= 0) return rc;
    if ((rc = fn(s, it, &b)) != 0) return rc;
  }
}

static int visit_mdia(scrub *s, const sniff_boxes *it, const sniff_box *b) {
  (void)it;
  return b->type == FOURCC('m', 'd', 'h', 'd') ? clear_times(s, b) : 0;
}

static int visit_trak(scrub *s, const sniff_boxes *it, const sniff_box *b) {
  int rc = strip_if_metadata(s, b);
  if (rc) return rc < 0 ? rc : 0;
  if (b->type == FOURCC('t', 'k', 'h', 'd')) return clear_times(s, b);
  if (b->type != FOURCC('m', 'd', 'i', 'a')) return 0;
  sniff_boxes child;
  rc = sniff_boxes_enter(it, b, 0, &child);
  return rc ? rc : walk(s, &child, visit_mdia);
}

static int visit_moov(scrub *s, const sniff_boxes *it, const sniff_box *b) {
  int rc = strip_if_metadata(s, b);
  if (rc) return rc < 0 ? rc : 0;
  if (b->type == FOURCC('m', 'v', 'h', 'd')) return clear_times(s, b);
  if (b->type != FOURCC('t', 'r', 'a', 'k')) return 0;
  sniff_boxes child;
  rc = sniff_boxes_enter(it, b, 0, &child);
  return rc ? rc : walk(s, &child, visit_trak);
}

/* The top level: structure rules from sniff_mp4, moov walked, metadata
 * boxes at this level neutralised too. */
static int scrub_file(scrub *s, uint64_t size) {
  sniff_mp4 m;
  sniff_mp4_init(&m, size);
  for (;;) {
    uint8_t h[SNIFF_BOX_HEADER_MAX];
    uint64_t off;
    size_t want = sniff_mp4_want(&m, &off);
    ssize_t k = want ? read_at(s->fd, h, want, off) : 0;
    if (k < 0) return TSR_EIO;
    sniff_box b;
    int rc = sniff_mp4_next(&m, h, (size_t)k, &b);
    if (rc < 0) return rc;
    if (rc == 0) return sniff_mp4_finish(&m);
    rc = strip_if_metadata(s, &b);
    if (rc < 0) return rc;
    if (rc == 0 && b.type == FOURCC('m', 'o', 'o', 'v')) {
      sniff_boxes child;
      rc = sniff_boxes_enter(&m.it, &b, 0, &child);
      if (!rc) rc = walk(s, &child, visit_moov);
      if (rc) return rc;
    }
  }
}

int imaging_video_scrub(const char *path, sniff_type type, imaging_info *info) {
  if (!path || !info || (type != SNIFF_MP4 && type != SNIFF_MOV)) return TSR_EINVAL;
  scrub s = {.fd = open(path, O_RDWR | O_CLOEXEC)};
  struct stat st;
  if (s.fd < 0 || fstat(s.fd, &st) != 0) {
    log_warn("imaging: %s: %s", path, strerror(errno));
    if (s.fd >= 0) close(s.fd);
    return TSR_EIO;
  }
  int rc = scrub_file(&s, (uint64_t)st.st_size);
  if (close(s.fd) != 0 && !rc) rc = TSR_EIO;
  if (!rc && !s.width) rc = TSR_EUNSUPPORTED;
  if (rc) {
    log_info("imaging: video %s refused: %s", path, tsr_errname(rc));
    return rc;
  }
  log_debug("imaging: video %s: %u metadata boxes neutralised", path, s.neutralised);
  const char *mime = type == SNIFF_MOV ? sniff_mime_static("video/quicktime", 15)
                                       : sniff_mime_static("video/mp4", 9);
  *info = (imaging_info){mime, true, s.width, s.height};
  return 0;
}
