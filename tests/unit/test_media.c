/* Integration tests of public media (server/media.h, imaging.h): a real
 * tesserad (two workers, random port, temporary data dir, request limits
 * off, media_max_bytes 2 MiB, image_max_bytes 1 MiB) spoken to over raw
 * HTTP/1.1 with binary bodies. Test images are made here with libvips and
 * carry metadata spliced in by hand (EXIF with GPS tags and an
 * orientation, XMP, a comment, PNG text chunks), checked present in the
 * upload (positive controls) and absent from what is served; test videos
 * are built box by box with a location in `udta` and `meta`. What is
 * stored is checked in the data dir (files) and the SQLite file (rows).
 * The sweep is tested by moving rows' created_at back in the database, so
 * the server's real 24-hour rule runs; leftovers of a crash by planting
 * old files and restarting. Two in-process checks use the modules
 * directly (media_ref/media_describe on a store, imaging_reencode's pixel
 * limit). Every wait is bounded by a deadline. */
#define _GNU_SOURCE /* memmem, strcasestr */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <vips/vips.h>

#include "common/bytes.h"
#include "proto/sniff.h"
#include "server/imaging.h"
#include "server/media.h"
#include "server/worker.h"
#include "server_harness.h"
#include "test.h"

#define MEDIA_MAX (2u << 20)
#define IMAGE_MAX (1u << 20)
#define SWEEP_WAIT_MS 20000 /* the sweep runs every 5 s */

static server srv;
static user ann;

/* ---- HTTP ---- */

/* One request to the test server. */
static int req(const char *method, const char *path, const char *token, const char *hdrs,
               const char *ctype, const uint8_t *body, size_t n, answer *a) {
  return raw_request(srv.port, method, path, token, hdrs, ctype, body, n, a);
}

/* What POST /v1/media answered. */
typedef struct {
  int status;
  char id[80], kind[16], mime[32], err[32];
  uint64_t size;
  uint32_t w, h;
} uploaded;

static uploaded upload_as(const uint8_t *p, size_t n, const char *ctype,
                          const char *hdrs) {
  uploaded u = {0};
  answer a;
  u.status = req("POST", "/v1/media", ann.s.token, hdrs, ctype, p, n, &a);
  cJSON *j = a.body ? cJSON_ParseWithLength((const char *)a.body, a.len) : NULL;
  cJSON *m = cJSON_GetObjectItem(j, "media");
  if (m) {
    snprintf(u.id, sizeof u.id, "%s", json_str(m, "id"));
    snprintf(u.kind, sizeof u.kind, "%s", json_str(m, "kind"));
    snprintf(u.mime, sizeof u.mime, "%s", json_str(m, "mime"));
    cJSON *v;
    if ((v = cJSON_GetObjectItem(m, "size")) && cJSON_IsNumber(v))
      u.size = (uint64_t)v->valuedouble;
    if ((v = cJSON_GetObjectItem(m, "width")) && cJSON_IsNumber(v))
      u.w = (uint32_t)v->valuedouble;
    if ((v = cJSON_GetObjectItem(m, "height")) && cJSON_IsNumber(v))
      u.h = (uint32_t)v->valuedouble;
  }
  cJSON *e = cJSON_GetObjectItem(j, "error");
  if (e) snprintf(u.err, sizeof u.err, "%s", json_str(e, "code"));
  cJSON_Delete(j);
  answer_free(&a);
  return u;
}

static uploaded upload(const uint8_t *p, size_t n) {
  return upload_as(p, n, "application/octet-stream", "");
}

/* The served bytes of id (caller frees), or NULL. */
static uint8_t *fetch(const char *id, size_t *n) {
  char path[128];
  snprintf(path, sizeof path, "/v1/media/%s", id);
  answer a;
  if (req("GET", path, ann.s.token, "", NULL, NULL, 0, &a) != 200) {
    answer_free(&a);
    return NULL;
  }
  *n = a.len;
  return a.body; /* taken over */
}

static bool contains(const uint8_t *p, size_t n, const char *s) {
  return memmem(p, n, s, strlen(s)) != NULL;
}

/* ---- the data dir and the database ---- */

static int64_t db_count(const char *sql) {
  char path[400];
  snprintf(path, sizeof path, "%s/tessera.db", srv.data);
  sqlite3 *db = NULL;
  int64_t v = -1;
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW)
      v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
  }
  sqlite3_close(db);
  return v;
}

/* Runs one statement on the server's database (the server keeps running:
 * SQLite's locks order it with the server's writers). */
static bool db_exec(const char *sql) {
  char path[400];
  snprintf(path, sizeof path, "%s/tessera.db", srv.data);
  sqlite3 *db = NULL;
  bool ok = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK;
  if (ok) {
    sqlite3_busy_timeout(db, 5000);
    ok = sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK;
    if (!ok) fprintf(stderr, "  sql: %s\n", sqlite3_errmsg(db));
  }
  sqlite3_close(db);
  return ok;
}

/* Regular files in data/media (not in tmp/), and in data/media/tmp. */
static int count_dir(const char *sub) {
  char path[400];
  snprintf(path, sizeof path, "%s/media%s", srv.data, sub);
  DIR *d = opendir(path);
  if (!d) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    char p[700];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", path, e->d_name);
    if (e->d_name[0] != '.' && stat(p, &st) == 0 && S_ISREG(st.st_mode)) n++;
  }
  closedir(d);
  return n;
}

static bool file_exists(const char *id) {
  char p[400];
  struct stat st;
  snprintf(p, sizeof p, "%s/media/%s", srv.data, id);
  return stat(p, &st) == 0;
}

static int64_t row_count(const char *id) {
  char sql[256];
  snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM media WHERE hex(hash) = upper('%s')",
           id);
  return db_count(sql);
}

/* Everything an upload may leave behind. */
typedef struct {
  int64_t rows, sources;
  int files, tmp;
} stored;

static stored snapshot(void) {
  return (stored){db_count("SELECT COUNT(*) FROM media"),
                  db_count("SELECT COUNT(*) FROM media_sources"), count_dir(""),
                  count_dir("/tmp")};
}

static bool same(stored a, stored b) {
  return a.rows == b.rows && a.sources == b.sources && a.files == b.files &&
         a.tmp == b.tmp;
}

/* Waits (bounded) until nothing differs from before; checks it. */
static void check_nothing_stored(stored before) {
  uint64_t deadline = now_ms() + DEADLINE_MS;
  stored now = snapshot();
  while (!same(now, before) && now_ms() < deadline) {
    tick();
    now = snapshot();
  }
  CHECK_INT(now.rows, before.rows);
  CHECK_INT(now.sources, before.sources);
  CHECK_INT(now.files, before.files);
  CHECK_INT(now.tmp, before.tmp);
}

/* The stored file is what is served, and its name is its SHA-256. */
static void check_content_address(const char *id, const uint8_t *served, size_t n) {
  uint8_t h[32];
  char hex[65];
  crypto_hash_sha256(h, served, n);
  sodium_bin2hex(hex, sizeof hex, h, sizeof h);
  CHECK(strcmp(hex, id) == 0);
  char p[400];
  snprintf(p, sizeof p, "%s/media/%s", srv.data, id);
  FILE *f = fopen(p, "rb");
  CHECK(f != NULL);
  if (!f) return;
  uint8_t *disk = malloc(n + 1);
  size_t got = disk ? fread(disk, 1, n + 1, f) : 0;
  fclose(f);
  CHECK(got == n && memcmp(disk, served, n) == 0);
  free(disk);
}

/* ---- images made here ---- */

/* A w x h RGB gradient saved by libvips as suffix (".jpg[Q=90]", ".png",
 * ...). exif, when not NULL, is attached as the image's EXIF block. */
static uint8_t *make_image(int w, int h, const char *suffix, const uint8_t *exif,
                           size_t exif_len, size_t *n) {
  VipsImage *xyz = NULL, *rem = NULL, *u8 = NULL, *rgb = NULL;
  void *buf = NULL;
  size_t len = 0;
  if (vips_xyz(&xyz, w, h, NULL) == 0 &&
      vips_remainder_const1(xyz, &rem, 256, NULL) == 0 &&
      vips_cast_uchar(rem, &u8, NULL) == 0 &&
      vips_bandjoin_const1(u8, &rgb, 128, NULL) == 0) {
    if (exif) vips_image_set_blob_copy(rgb, "exif-data", exif, exif_len);
    if (vips_image_write_to_buffer(rgb, suffix, &buf, &len, NULL) != 0) buf = NULL;
  }
  if (!buf) fprintf(stderr, "  vips: %s\n", vips_error_buffer());
  vips_error_clear();
  VipsImage *all[] = {xyz, rem, u8, rgb};
  for (size_t i = 0; i < 4; i++)
    if (all[i]) g_object_unref(all[i]);
  uint8_t *out = buf ? malloc(len) : NULL;
  if (out) memcpy(out, buf, len);
  g_free(buf);
  *n = out ? len : 0;
  return out;
}

static void be16(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

static void be32(uint8_t *p, uint32_t v) {
  be16(p, v >> 16);
  be16(p + 2, v);
}

/* One big-endian TIFF IFD entry. */
static void ifd_entry(uint8_t *p, uint16_t tag, uint16_t type, uint32_t count,
                      uint32_t value) {
  be16(p, tag);
  be16(p + 2, type);
  be32(p + 4, count);
  be32(p + 8, value);
}

#define GPS_MARKER "TESSERA-GPS-MARKER"
#define XMP_MARKER "TESSERA-XMP-MARKER"
#define COM_MARKER "TESSERA-COMMENT-MARKER"
#define TXT_MARKER "TESSERA-PNG-TEXT-MARKER"

/* An EXIF block ("Exif\0\0" + TIFF): IFD0 with Orientation = orientation
 * and a GPS IFD (version, N 48°51'29.52", E 2°17'40.2", and GPSMapDatum
 * holding GPS_MARKER, easy to search for). Returns its length. */
static size_t make_exif(uint8_t out[256], int orientation) {
  memset(out, 0, 256);
  memcpy(out, "Exif\0\0", 6);
  uint8_t *t = out + 6; /* offsets below are from the TIFF header */
  memcpy(t, "MM\x00\x2A\x00\x00\x00\x08", 8);
  be16(t + 8, 2);
  ifd_entry(t + 10, 0x0112, 3, 1,
            (uint32_t)orientation << 16); /* SHORT, left-justified */
  ifd_entry(t + 22, 0x8825, 4, 1, 38);    /* GPS IFD at 38 */
  be32(t + 34, 0);
  be16(t + 38, 6);
  ifd_entry(t + 40, 0x0000, 1, 4, 0x02020000); /* GPSVersionID */
  ifd_entry(t + 52, 0x0001, 2, 2, 0x4E000000); /* GPSLatitudeRef "N" */
  ifd_entry(t + 64, 0x0002, 5, 3, 116);        /* GPSLatitude */
  ifd_entry(t + 76, 0x0003, 2, 2, 0x45000000); /* GPSLongitudeRef "E" */
  ifd_entry(t + 88, 0x0004, 5, 3, 140);        /* GPSLongitude */
  ifd_entry(t + 100, 0x0012, 2, 19, 164);      /* GPSMapDatum */
  be32(t + 112, 0);
  static const uint32_t rat[12] = {48, 1, 51, 1, 2952, 100, 2, 1, 17, 1, 4020, 100};
  for (size_t i = 0; i < 12; i++) be32(t + 116 + 4 * i, rat[i]);
  memcpy(t + 164, GPS_MARKER, sizeof GPS_MARKER); /* 19 bytes with its NUL */
  return 6 + 164 + sizeof GPS_MARKER;
}

/* jpeg with segments inserted after SOI: APP1 EXIF, APP1 XMP, COM. */
static uint8_t *splice_jpeg(const uint8_t *jpeg, size_t n, size_t *out_n) {
  uint8_t exif[256];
  size_t el = make_exif(exif, 6);
  static const char xmp[] =
      "http://ns.adobe.com/xap/1.0/\0"
      "<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF "
      "xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'><rdf:Description "
      "xmlns:exif='http://ns.adobe.com/exif/1.0/' exif:GPSLatitude='48,51.492N' "
      "exif:GPSAreaInformation='" XMP_MARKER "'/></rdf:RDF></x:xmpmeta>";
  static const char com[] = COM_MARKER;
  size_t total = n + (4 + el) + (4 + sizeof xmp - 1) + (4 + sizeof com - 1);
  uint8_t *p = malloc(total), *w = p;
  if (!p) return NULL;
  memcpy(w, jpeg, 2);
  w += 2;
  const void *seg[3] = {exif, xmp, com};
  size_t len[3] = {el, sizeof xmp - 1, sizeof com - 1};
  uint8_t marker[3] = {0xE1, 0xE1, 0xFE};
  for (int i = 0; i < 3; i++) {
    w[0] = 0xFF;
    w[1] = marker[i];
    be16(w + 2, (uint32_t)(len[i] + 2));
    memcpy(w + 4, seg[i], len[i]);
    w += 4 + len[i];
  }
  memcpy(w, jpeg + 2, n - 2);
  *out_n = total;
  return p;
}

static uint32_t crc32_of(const uint8_t *p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0xEDB88320u : c >> 1;
  }
  return c ^ 0xFFFFFFFFu;
}

/* png with a tEXt chunk (keyword "Comment", TXT_MARKER) after IHDR. */
static uint8_t *splice_png(const uint8_t *png, size_t n, size_t *out_n) {
  static const char text[] = "Comment\0" TXT_MARKER;
  size_t tl = sizeof text - 1, cl = 12 + tl;
  uint8_t *p = malloc(n + cl);
  if (!p) return NULL;
  memcpy(p, png, 33); /* signature and IHDR */
  uint8_t *c = p + 33;
  be32(c, (uint32_t)tl);
  memcpy(c + 4, "tEXt", 4);
  memcpy(c + 8, text, tl);
  be32(c + 8 + tl, crc32_of(c + 4, 4 + tl));
  memcpy(c + cl, png + 33, n - 33);
  *out_n = n + cl;
  return p;
}

/* Loads a served image with libvips (decoded whole) or NULL. */
static VipsImage *load_image(const uint8_t *p, size_t n) {
  VipsImage *img =
      vips_image_new_from_buffer(p, n, "", "fail_on", VIPS_FAIL_ON_ERROR, NULL);
  VipsImage *mem = img ? vips_image_copy_memory(img) : NULL;
  if (img) g_object_unref(img);
  if (!mem) fprintf(stderr, "  vips: %s\n", vips_error_buffer());
  vips_error_clear();
  return mem;
}

static bool has_field(VipsImage *img, const char *name) {
  return vips_image_get_typeof(img, name) != 0;
}

/* ---- videos made here ---- */

/* Box nesting in a buf_t: begin writes a placeholder size, end fills it. */
static size_t box_begin(buf_t *b, const char *type) {
  size_t at = b->len;
  buf_append(b, "\0\0\0\0", 4);
  buf_append(b, type, 4);
  return at;
}

static void box_end(buf_t *b, size_t at) {
  if (!b->err) be32(b->ptr + at, (uint32_t)(b->len - at));
}

static void put_be32(buf_t *b, uint32_t v) {
  uint8_t x[4];
  be32(x, v);
  buf_append(b, x, 4);
}

static void zeros(buf_t *b, size_t n) {
  for (size_t i = 0; i < n; i++) buf_append(b, "", 1);
}

#define LOCATION "+48.8584+002.2945/"
#define APPLE_KEY "com.apple.quicktime.location.ISO6709"
#define MAKE_MARKER "TESSERA-MAKE"
#define TIME_MARK 0xDEADBEEFu

/* QuickTime user data item ©xyz (or ©mak) with a string. */
static void udta_item(buf_t *b, const char *type, const char *s) {
  size_t at = box_begin(b, type);
  uint8_t h[4];
  be16(h, (uint32_t)strlen(s));
  be16(h + 2, 0x15C7);
  buf_append(b, h, 4);
  buf_append(b, s, strlen(s));
  box_end(b, at);
}

/* An MP4 (brand, e.g. "isom" or "qt  ") with one track of w x h (0 x 0:
 * audio only), a location in moov/udta, trak/udta and moov/meta (Apple
 * keys), creation times TIME_MARK, and 64 bytes of mdat. */
static void make_mp4(buf_t *b, const char *brand, uint32_t w, uint32_t h) {
  buf_init(b);
  size_t at = box_begin(b, "ftyp");
  buf_append(b, brand, 4);
  put_be32(b, 0x200);
  buf_append(b, brand, 4);
  buf_append(b, "mp41", 4);
  box_end(b, at);
  size_t moov = box_begin(b, "moov");
  at = box_begin(b, "mvhd"); /* version 0: 100 bytes */
  put_be32(b, 0);
  put_be32(b, TIME_MARK);
  put_be32(b, TIME_MARK);
  put_be32(b, 1000);
  put_be32(b, 1000);
  zeros(b, 80);
  box_end(b, at);
  size_t trak = box_begin(b, "trak");
  at = box_begin(b, "tkhd"); /* version 0: 84 bytes */
  put_be32(b, 3);
  put_be32(b, TIME_MARK);
  put_be32(b, TIME_MARK);
  put_be32(b, 1);
  zeros(b, 4 + 4 + 8 + 2 + 2 + 2 + 2 + 36);
  put_be32(b, w << 16);
  put_be32(b, h << 16);
  box_end(b, at);
  size_t mdia = box_begin(b, "mdia");
  at = box_begin(b, "mdhd");
  put_be32(b, 0);
  put_be32(b, TIME_MARK);
  put_be32(b, TIME_MARK);
  put_be32(b, 1000);
  put_be32(b, 1000);
  put_be32(b, 0);
  box_end(b, at);
  box_end(b, mdia);
  at = box_begin(b, "udta");
  udta_item(b, "\xA9xyz", LOCATION);
  box_end(b, at);
  box_end(b, trak);
  at = box_begin(b, "udta");
  udta_item(b, "\xA9xyz", LOCATION);
  udta_item(b, "\xA9mak", MAKE_MARKER);
  box_end(b, at);
  at = box_begin(b, "meta"); /* QuickTime style: keys and values */
  size_t k = box_begin(b, "keys");
  put_be32(b, 0);
  put_be32(b, 1);
  put_be32(b, (uint32_t)(8 + strlen(APPLE_KEY)));
  buf_append(b, "mdta", 4);
  buf_append(b, APPLE_KEY, strlen(APPLE_KEY));
  box_end(b, k);
  k = box_begin(b, "ilst");
  buf_append(b, "+48.8584+002.2945+035.000/", 26);
  box_end(b, k);
  box_end(b, at);
  box_end(b, moov);
  at = box_begin(b, "mdat");
  for (int i = 0; i < 64; i++) buf_append(b, "\x5A", 1);
  box_end(b, at);
}

/* ---- tests ---- */

static uint8_t *jpeg_in; /* the JPEG with metadata, kept for later tests */
static size_t jpeg_in_n;
static uploaded jpeg_up;

static void test_setup(void) { CHECK(make_user(&srv, &ann, "ann")); }

static void test_jpeg_exif_gps(void) {
  size_t n = 0, m = 0;
  uint8_t *plain = make_image(64, 32, ".jpg[Q=90]", NULL, 0, &n);
  CHECK(plain != NULL);
  if (!plain) return;
  jpeg_in = splice_jpeg(plain, n, &jpeg_in_n);
  free(plain);
  CHECK(jpeg_in != NULL);
  if (!jpeg_in) return;
  /* Positive control: the metadata is really in the upload. */
  CHECK(contains(jpeg_in, jpeg_in_n, "Exif\0\0") &&
        contains(jpeg_in, jpeg_in_n, GPS_MARKER));
  CHECK(contains(jpeg_in, jpeg_in_n, XMP_MARKER) &&
        contains(jpeg_in, jpeg_in_n, COM_MARKER));
  VipsImage *in = load_image(jpeg_in, jpeg_in_n);
  CHECK(in != NULL);
  if (in) {
    CHECK(has_field(in, "exif-data"));
    CHECK(has_field(in, "exif-ifd3-GPSLatitude"));
    CHECK(has_field(in, "exif-ifd3-GPSLongitude"));
    CHECK(has_field(in, "xmp-data"));
    CHECK_INT(vips_image_get_orientation(in), 6);
    CHECK(in->Xsize == 64 && in->Ysize == 32);
    g_object_unref(in);
  }
  stored before = snapshot();
  jpeg_up = upload_as(jpeg_in, jpeg_in_n, "image/jpeg", "");
  CHECK_INT(jpeg_up.status, 201);
  CHECK_INT(strlen(jpeg_up.id), 64);
  CHECK(strcmp(jpeg_up.kind, "image") == 0 && strcmp(jpeg_up.mime, "image/jpeg") == 0);
  CHECK(jpeg_up.w == 32 && jpeg_up.h == 64); /* turned upright by orientation 6 */
  uint8_t *out = fetch(jpeg_up.id, &m);
  CHECK(out != NULL);
  if (!out) return;
  CHECK_INT(m, jpeg_up.size);
  CHECK(!contains(out, m, "Exif"));
  CHECK(!contains(out, m, GPS_MARKER) && !contains(out, m, XMP_MARKER));
  CHECK(!contains(out, m, COM_MARKER) && !contains(out, m, "http://ns.adobe.com"));
  VipsImage *img = load_image(out, m);
  CHECK(img != NULL);
  if (img) {
    CHECK(!has_field(img, "exif-data"));
    CHECK(!has_field(img, "exif-ifd3-GPSLatitude"));
    CHECK(!has_field(img, "xmp-data"));
    CHECK(!has_field(img, "icc-profile-data"));
    CHECK_INT(vips_image_get_orientation(img), 1);
    CHECK(img->Xsize == 32 && img->Ysize == 64);
    g_object_unref(img);
  }
  sniff_info si;
  CHECK(sniff_detect(out, m, &si) == 0 && si.type == SNIFF_JPEG);
  check_content_address(jpeg_up.id, out, m);
  free(out);
  stored after = snapshot();
  CHECK_INT(after.rows, before.rows + 1);
  CHECK_INT(after.sources, before.sources + 1);
  CHECK_INT(after.files, before.files + 1);
  CHECK_INT(after.tmp, 0);
  char sql[256];
  snprintf(sql, sizeof sql,
           "SELECT COUNT(*) FROM media WHERE hex(hash) = upper('%s') AND kind = 'image'"
           " AND mime = 'image/jpeg' AND width = 32 AND height = 64 AND refs = 0",
           jpeg_up.id);
  CHECK_INT(db_count(sql), 1);
}

static uploaded png_up;
static uint8_t *png_out;
static size_t png_out_n;

/* A PNG named .jpg and labelled image/jpeg is stored as the PNG it is. */
static void test_png_named_jpg(void) {
  size_t n = 0, m = 0;
  uint8_t *plain = make_image(300, 200, ".png", NULL, 0, &n);
  CHECK(plain != NULL);
  if (!plain) return;
  uint8_t *png = splice_png(plain, n, &m);
  free(plain);
  CHECK(png && contains(png, m, TXT_MARKER)); /* positive control */
  VipsImage *in = png ? load_image(png, m) : NULL;
  CHECK(in != NULL); /* the spliced chunk is valid */
  if (in) g_object_unref(in);
  png_up = upload_as(png, m, "image/jpeg",
                     "Content-Disposition: attachment; filename=\"photo.jpg\"\r\n");
  free(png);
  CHECK_INT(png_up.status, 201);
  CHECK(strcmp(png_up.mime, "image/png") == 0);
  CHECK(png_up.w == 300 && png_up.h == 200);
  png_out = fetch(png_up.id, &png_out_n);
  CHECK(png_out != NULL);
  if (!png_out) return;
  CHECK(!contains(png_out, png_out_n, TXT_MARKER) &&
        !contains(png_out, png_out_n, "tEXt"));
  sniff_info si;
  CHECK(sniff_detect(png_out, png_out_n, &si) == 0 && si.type == SNIFF_PNG);
  CHECK(si.width == 300 && si.height == 200);
  check_content_address(png_up.id, png_out, png_out_n);
}

/* The same original twice: the same media, one file, no new row. The
 * served PNG uploaded as a new original re-encodes to the same bytes: one
 * file and one media row, a second source. */
static void test_dedup(void) {
  if (!jpeg_in || !png_out) TEST_SKIP("needs the earlier uploads");
  stored before = snapshot();
  uploaded again = upload(jpeg_in, jpeg_in_n);
  CHECK_INT(again.status, 201);
  CHECK(strcmp(again.id, jpeg_up.id) == 0);
  CHECK(again.size == jpeg_up.size && again.w == jpeg_up.w && again.h == jpeg_up.h);
  stored after = snapshot();
  CHECK(same(after, before));
  uploaded re = upload(png_out, png_out_n);
  CHECK_INT(re.status, 201);
  CHECK(strcmp(re.id, png_up.id) == 0);
  after = snapshot();
  CHECK_INT(after.rows, before.rows);
  CHECK_INT(after.files, before.files);
  CHECK_INT(after.sources, before.sources + 1);
}

static void test_other_images(void) {
  size_t n = 0;
  /* WebP with an EXIF chunk holding the GPS tags. */
  uint8_t exif[256];
  size_t el = make_exif(exif, 1);
  uint8_t *webp = make_image(120, 80, ".webp[Q=90]", exif, el, &n);
  CHECK(webp && contains(webp, n, GPS_MARKER)); /* positive control */
  if (webp) {
    uploaded u = upload(webp, n);
    CHECK_INT(u.status, 201);
    CHECK(strcmp(u.mime, "image/webp") == 0 && u.w == 120 && u.h == 80);
    size_t m = 0;
    uint8_t *out = fetch(u.id, &m);
    CHECK(out && !contains(out, m, GPS_MARKER) && !contains(out, m, "EXIF"));
    CHECK(out && !contains(out, m, "Exif") && !contains(out, m, "XMP "));
    VipsImage *img = out ? load_image(out, m) : NULL;
    CHECK(img && !has_field(img, "exif-data") && img->Xsize == 120);
    if (img) g_object_unref(img);
    free(out);
  }
  free(webp);
  /* GIF: its first frame, as PNG. */
  uint8_t *gif = make_image(40, 30, ".gif", NULL, 0, &n);
  CHECK(gif != NULL);
  if (gif) {
    uploaded u = upload(gif, n);
    CHECK_INT(u.status, 201);
    CHECK(strcmp(u.mime, "image/png") == 0 && u.w == 40 && u.h == 30);
  }
  free(gif);
  /* Larger than 4096: shrunk, proportions kept. */
  uint8_t *wide = make_image(5000, 100, ".png", NULL, 0, &n);
  CHECK(wide && n < IMAGE_MAX);
  if (wide) {
    uploaded u = upload(wide, n);
    CHECK_INT(u.status, 201);
    CHECK_INT(u.w, 4096);
    CHECK_INT(u.h, 82);
  }
  free(wide);
}

/* A PNG header announcing 10000 x 5000 over a few bytes of data: refused
 * for its size, before decoding (which would fail differently). */
static size_t make_bomb(uint8_t *p) {
  static const uint8_t sig[] = "\x89PNG\r\n\x1A\n";
  memcpy(p, sig, 8);
  be32(p + 8, 13);
  memcpy(p + 12, "IHDR", 4);
  be32(p + 16, 10000);
  be32(p + 20, 5000);
  memcpy(p + 24, "\x08\x02\x00\x00\x00", 5);
  be32(p + 29, crc32_of(p + 12, 17));
  static const uint8_t idat[] = {0x78, 0x9C, 0x63, 0x60, 0x00,
                                 0x00, 0x00, 0x02, 0x00, 0x01};
  be32(p + 33, sizeof idat);
  memcpy(p + 37, "IDAT", 4);
  memcpy(p + 41, idat, sizeof idat);
  be32(p + 41 + sizeof idat, crc32_of(p + 37, 4 + sizeof idat));
  size_t n = 45 + sizeof idat;
  be32(p + n, 0);
  memcpy(p + n + 4, "IEND", 4);
  be32(p + n + 8, crc32_of(p + n + 4, 4));
  return n + 12;
}

static void test_refusals(void) {
  stored before = snapshot();
  /* Text labelled image/jpeg: 415. */
  static const char text[] = "certainly a JPEG, trust me\n";
  uploaded u = upload_as((const uint8_t *)text, sizeof text - 1, "image/jpeg", "");
  CHECK_INT(u.status, 415);
  CHECK(strcmp(u.err, "unsupported_media") == 0);
  check_nothing_stored(before);
  /* A truncated JPEG: 422. */
  if (jpeg_in) {
    u = upload(jpeg_in, jpeg_in_n - 200);
    CHECK_INT(u.status, 422);
    CHECK(strcmp(u.err, "bad_media") == 0);
    check_nothing_stored(before);
  }
  /* A decompression bomb: 422, nothing decoded or stored. */
  uint8_t bomb[128];
  size_t bn = make_bomb(bomb);
  u = upload(bomb, bn);
  CHECK_INT(u.status, 422);
  CHECK(strcmp(u.err, "bad_media") == 0);
  check_nothing_stored(before);
  /* An empty body, no token, a bad token, another path. */
  answer a;
  CHECK_INT(
      req("POST", "/v1/media", ann.s.token, "", "image/png", (const uint8_t *)"", 0, &a),
      400);
  answer_free(&a);
  CHECK_INT(req("POST", "/v1/media", NULL, "", "image/png", bomb, bn, &a), 401);
  answer_free(&a);
  CHECK_INT(req("POST", "/v1/media/x", ann.s.token, "", "image/png", bomb, bn, &a), 404);
  answer_free(&a);
  check_nothing_stored(before);
}

static void test_oversized(void) {
  stored before = snapshot();
  /* Over media_max_bytes: 413 from the head alone; no body is sent. */
  int fd = tcp_connect(srv.port);
  CHECK(fd >= 0);
  char head[512];
  snprintf(head, sizeof head,
           "POST /v1/media HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n"
           "Content-Type: image/jpeg\r\nContent-Length: %u\r\n\r\n",
           ann.s.token, MEDIA_MAX + 1);
  answer a = {0};
  CHECK(send_str(fd, head));
  CHECK(read_answer(fd, false, &a, NULL, NULL));
  CHECK_INT(a.status, 413);
  CHECK(a.body && memmem(a.body, a.len, "\"too_large\"", 11) != NULL);
  answer_free(&a);
  close(fd);
  check_nothing_stored(before);
  /* An image over image_max_bytes (a PNG with a long tail): 413 after the
   * body, nothing kept. */
  size_t n = 0;
  uint8_t *png = make_image(20, 20, ".png", NULL, 0, &n);
  CHECK(png != NULL);
  if (!png) return;
  size_t big = IMAGE_MAX + 4096;
  uint8_t *p = calloc(1, big);
  CHECK(p != NULL);
  if (p) {
    memcpy(p, png, n);
    uploaded u = upload(p, big);
    CHECK_INT(u.status, 413);
    CHECK(strcmp(u.err, "too_large") == 0);
    check_nothing_stored(before);
  }
  free(p);
  free(png);
}

static void test_video(void) {
  buf_t v;
  make_mp4(&v, "isom", 320, 240);
  CHECK(!v.err);
  CHECK_OK(sniff_mp4_check(v.ptr, v.len)); /* the test file is well formed */
  CHECK(contains(v.ptr, v.len, LOCATION) && contains(v.ptr, v.len, APPLE_KEY));
  uint8_t mark[4];
  be32(mark, TIME_MARK);
  CHECK(memmem(v.ptr, v.len, mark, 4) != NULL);
  stored before = snapshot();
  uploaded u = upload_as(v.ptr, v.len, "video/mp4", "");
  CHECK_INT(u.status, 201);
  CHECK(strcmp(u.kind, "video") == 0 && strcmp(u.mime, "video/mp4") == 0);
  CHECK(u.w == 320 && u.h == 240);
  CHECK_INT(u.size, v.len); /* nothing moved */
  size_t m = 0;
  uint8_t *out = fetch(u.id, &m);
  CHECK(out != NULL && m == v.len);
  if (out && m == v.len) {
    CHECK(!contains(out, m, LOCATION) && !contains(out, m, "+48.8584"));
    CHECK(!contains(out, m, APPLE_KEY) && !contains(out, m, MAKE_MARKER));
    CHECK(!contains(out, m, "udta") && !contains(out, m, "meta"));
    CHECK(memmem(out, m, mark, 4) == NULL);                   /* creation times zeroed */
    CHECK_OK(sniff_mp4_check(out, m));                        /* still a valid file */
    CHECK(memcmp(out + m - 64, v.ptr + v.len - 64, 64) == 0); /* mdat untouched */
    check_content_address(u.id, out, m);
  }
  free(out);
  stored after = snapshot();
  CHECK_INT(after.rows, before.rows + 1);
  CHECK_INT(after.files, before.files + 1);
  CHECK_INT(after.tmp, 0);
  /* The same as QuickTime. */
  buf_free(&v);
  make_mp4(&v, "qt  ", 640, 360);
  u = upload(v.ptr, v.len);
  CHECK_INT(u.status, 201);
  CHECK(strcmp(u.mime, "video/quicktime") == 0 && u.w == 640 && u.h == 360);
  /* Truncated: 422, nothing stored. */
  before = snapshot();
  u = upload(v.ptr, v.len - 10);
  CHECK_INT(u.status, 422);
  CHECK(strcmp(u.err, "bad_media") == 0);
  check_nothing_stored(before);
  /* No picture track: 422. */
  buf_free(&v);
  make_mp4(&v, "isom", 0, 0);
  u = upload(v.ptr, v.len);
  CHECK_INT(u.status, 422);
  check_nothing_stored(before);
  buf_free(&v);
}

/* A connection cut mid-body: the temporary file goes, nothing is stored. */
static void test_cut(void) {
  stored before = snapshot();
  int fd = tcp_connect(srv.port);
  CHECK(fd >= 0);
  char head[512];
  snprintf(head, sizeof head,
           "POST /v1/media HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n"
           "Content-Type: image/jpeg\r\nContent-Length: 1000000\r\n\r\n",
           ann.s.token);
  CHECK(send_str(fd, head));
  uint8_t *junk = calloc(1, 300000);
  CHECK(junk && send_all(fd, jpeg_in ? jpeg_in : junk, jpeg_in ? jpeg_in_n : 1000));
  CHECK(send_all(fd, junk, 300000));
  free(junk);
  uint64_t deadline = now_ms() + DEADLINE_MS;
  while (count_dir("/tmp") == 0 && now_ms() < deadline) tick();
  CHECK_INT(count_dir("/tmp"), 1); /* it was there... */
  close(fd);
  check_nothing_stored(before); /* ...and is gone */
}

static void test_get(void) {
  if (!png_out) TEST_SKIP("needs the PNG upload");
  char path[128], etag[100], hdr[200];
  snprintf(path, sizeof path, "/v1/media/%s", png_up.id);
  snprintf(etag, sizeof etag, "ETag: \"%s\"", png_up.id);
  answer a;
  CHECK_INT(req("GET", path, ann.s.token, "", NULL, NULL, 0, &a), 200);
  CHECK(a.len == png_out_n && memcmp(a.body, png_out, a.len) == 0);
  CHECK(has_header(&a, "Content-Type: image/png"));
  CHECK(has_header(&a, etag));
  CHECK(has_header(&a, "Cache-Control: private, max-age=31536000, immutable"));
  CHECK(has_header(&a, "Accept-Ranges: bytes"));
  CHECK(has_header(&a, "X-Content-Type-Options: nosniff"));
  answer_free(&a);
  CHECK_INT(req("HEAD", path, ann.s.token, "", NULL, NULL, 0, &a), 200);
  CHECK_INT(a.len, 0);
  answer_free(&a);
  /* Range */
  CHECK_INT(req("GET", path, ann.s.token, "Range: bytes=10-19\r\n", NULL, NULL, 0, &a),
            206);
  CHECK(a.len == 10 && memcmp(a.body, png_out + 10, 10) == 0);
  snprintf(hdr, sizeof hdr, "Content-Range: bytes 10-19/%zu", png_out_n);
  CHECK(has_header(&a, hdr));
  answer_free(&a);
  CHECK_INT(req("GET", path, ann.s.token, "Range: bytes=-5\r\n", NULL, NULL, 0, &a), 206);
  CHECK(a.len == 5 && memcmp(a.body, png_out + png_out_n - 5, 5) == 0);
  answer_free(&a);
  snprintf(hdr, sizeof hdr, "Range: bytes=%zu-\r\n", png_out_n);
  CHECK_INT(req("GET", path, ann.s.token, hdr, NULL, NULL, 0, &a), 416);
  snprintf(hdr, sizeof hdr, "Content-Range: bytes */%zu", png_out_n);
  CHECK(has_header(&a, hdr));
  answer_free(&a);
  CHECK_INT(req("GET", path, ann.s.token, "Range: bytes=0-1,4-5\r\n", NULL, NULL, 0, &a),
            200);
  CHECK_INT(a.len, png_out_n);
  answer_free(&a);
  /* If-Range with another validator: the whole file. */
  CHECK_INT(req("GET", path, ann.s.token, "Range: bytes=0-0\r\nIf-Range: \"other\"\r\n",
                NULL, NULL, 0, &a),
            200);
  answer_free(&a);
  snprintf(hdr, sizeof hdr, "Range: bytes=0-0\r\nIf-Range: \"%s\"\r\n", png_up.id);
  CHECK_INT(req("GET", path, ann.s.token, hdr, NULL, NULL, 0, &a), 206);
  answer_free(&a);
  /* If-None-Match: 304 with the validators, no body; also W/ and "*". */
  snprintf(hdr, sizeof hdr, "If-None-Match: \"x\", \"%s\"\r\n", png_up.id);
  CHECK_INT(req("GET", path, ann.s.token, hdr, NULL, NULL, 0, &a), 304);
  CHECK(has_header(&a, etag));
  CHECK_INT(a.len, 0);
  CHECK(strcasestr(a.head, "Content-Type:") == NULL);
  answer_free(&a);
  snprintf(hdr, sizeof hdr, "If-None-Match: W/\"%s\"\r\nRange: bytes=0-3\r\n", png_up.id);
  CHECK_INT(req("GET", path, ann.s.token, hdr, NULL, NULL, 0, &a), 304);
  answer_free(&a);
  CHECK_INT(req("HEAD", path, ann.s.token, "If-None-Match: *\r\n", NULL, NULL, 0, &a),
            304);
  answer_free(&a);
  CHECK_INT(
      req("GET", path, ann.s.token, "If-None-Match: \"nope\"\r\n", NULL, NULL, 0, &a),
      200);
  answer_free(&a);
  /* Refusals: no token, unknown, malformed. */
  CHECK_INT(req("GET", path, NULL, "", NULL, NULL, 0, &a), 401);
  answer_free(&a);
  char other[80];
  snprintf(other, sizeof other, "%s", png_up.id);
  other[0] = other[0] == 'a' ? 'b' : 'a';
  static const char *const bad[] = {"",       "/",       "/abc",    "/%s0",
                                    "/%.63s", "/%.63sG", "/%.63sA", "/../tessera.db"};
  snprintf(path, sizeof path, "/v1/media/%s", other);
  CHECK_INT(req("GET", path, ann.s.token, "", NULL, NULL, 0, &a), 404);
  answer_free(&a);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char tail[100];
    snprintf(tail, sizeof tail, bad[i], png_up.id);
    snprintf(path, sizeof path, "/v1/media%s", tail);
    CHECK_INT(req("GET", path, ann.s.token, "", NULL, NULL, 0, &a), 404);
    answer_free(&a);
  }
}

/* Unreferenced media older than a day go (row, sources, file); referenced
 * ones stay however old. created_at is moved back in the database. */
static void test_sweep(void) {
  if (!png_out || !jpeg_in) TEST_SKIP("needs the earlier uploads");
  char sql[400];
  snprintf(sql, sizeof sql,
           "UPDATE media SET refs = 1, created_at = created_at - 90000"
           " WHERE hex(hash) = upper('%s')",
           jpeg_up.id);
  CHECK(db_exec(sql));
  snprintf(
      sql, sizeof sql,
      "UPDATE media SET created_at = created_at - 90000 WHERE hex(hash) = upper('%s')",
      png_up.id);
  CHECK(db_exec(sql));
  uint64_t deadline = now_ms() + SWEEP_WAIT_MS;
  while ((row_count(png_up.id) != 0 || file_exists(png_up.id)) && now_ms() < deadline)
    tick();
  CHECK_INT(row_count(png_up.id), 0);
  CHECK(!file_exists(png_up.id));
  snprintf(sql, sizeof sql,
           "SELECT COUNT(*) FROM media_sources WHERE hex(hash) = upper('%s')", png_up.id);
  CHECK_INT(db_count(sql), 0);
  CHECK_INT(db_count("SELECT COUNT(*) FROM media WHERE refs < 0"), 0);
  char path[128];
  snprintf(path, sizeof path, "/v1/media/%s", png_up.id);
  answer a;
  CHECK_INT(req("GET", path, ann.s.token, "", NULL, NULL, 0, &a), 404);
  answer_free(&a);
  /* The referenced one is still there and served. */
  CHECK_INT(row_count(jpeg_up.id), 1);
  CHECK(file_exists(jpeg_up.id));
  size_t m = 0;
  uint8_t *out = fetch(jpeg_up.id, &m);
  CHECK(out != NULL);
  free(out);
  /* Uploading the swept original again stores it again. */
  uploaded u = upload(png_out, png_out_n);
  CHECK_INT(u.status, 201);
  CHECK(strcmp(u.id, png_up.id) == 0 && file_exists(u.id));
}

static void touch_old(const char *path) {
  struct timeval tv[2];
  gettimeofday(&tv[0], NULL);
  tv[0].tv_sec -= 2 * 3600;
  tv[1] = tv[0];
  CHECK(utimes(path, tv) == 0);
}

static bool write_file(const char *path, const char *s) {
  FILE *f = fopen(path, "wb");
  if (!f) return false;
  bool ok = fputs(s, f) >= 0;
  return fclose(f) == 0 && ok;
}

/* Leftovers of a crash, found when worker 0 starts: an old temporary file
 * and an old file without a row go; a fresh one of each, and an old file
 * with a row, stay. */
static void test_leftovers(void) {
  kill(srv.pid, SIGTERM);
  CHECK(server_wait(&srv, 15000) == 0);
  char p[5][500];
  static const char *const names[5] = {
      "tmp/00112233445566778899aabbccddeeff", "tmp/ffeeddccbbaa99887766554433221100",
      "1111111111111111111111111111111111111111111111111111111111111111",
      "2222222222222222222222222222222222222222222222222222222222222222", "README"};
  for (int i = 0; i < 5; i++) {
    snprintf(p[i], sizeof p[i], "%s/media/%s", srv.data, names[i]);
    CHECK(write_file(p[i], "leftover"));
  }
  touch_old(p[0]);
  touch_old(p[2]);
  touch_old(p[4]);
  char kept[500];
  snprintf(kept, sizeof kept, "%s/media/%s", srv.data, jpeg_up.id);
  touch_old(kept);
  CHECK(server_start(&srv, NULL, false, NULL, NULL));
  uint64_t deadline = now_ms() + SWEEP_WAIT_MS;
  struct stat st;
  while ((stat(p[0], &st) == 0 || stat(p[2], &st) == 0) && now_ms() < deadline) tick();
  CHECK(stat(p[0], &st) != 0);         /* old temporary file */
  CHECK(stat(p[2], &st) != 0);         /* old file without a row */
  CHECK(stat(p[1], &st) == 0);         /* fresh */
  CHECK(stat(p[3], &st) == 0);         /* fresh */
  CHECK(stat(p[4], &st) == 0);         /* not a media name */
  CHECK(stat(kept, &st) == 0);         /* old, but its row is there */
  deadline = now_ms() + SWEEP_WAIT_MS; /* the claim (a tombstone row) goes too */
  while (db_count("SELECT COUNT(*) FROM media WHERE refs < 0") != 0 &&
         now_ms() < deadline)
    tick();
  CHECK_INT(db_count("SELECT COUNT(*) FROM media WHERE refs < 0"), 0);
  CHECK_INT(row_count(names[2]), 0);
  size_t m = 0;
  uint8_t *out = fetch(jpeg_up.id, &m);
  CHECK(out != NULL);
  free(out);
}

/* ---- in-process ---- */

static int run_sql(store_conn *c, void *arg) { return store_conn_exec(c, arg); }

typedef struct {
  uint8_t hash[32];
  int delta, rc;
  media_info info;
} ref_call;

static int run_ref(store_conn *c, void *arg) {
  ref_call *r = arg;
  r->rc = media_ref(c, r->hash, r->delta);
  return 0;
}

static int64_t created_at;

static int run_created(store_conn *c, void *arg) {
  (void)arg;
  store_stmt *s;
  int rc = store_conn_prepare(c, "SELECT created_at FROM media", &s);
  if (rc) return rc;
  created_at = store_step(s) == STORE_ROW ? store_col_int64(s, 0) : -1;
  store_stmt_reset(s);
  return 0;
}

static int run_describe(store_conn *c, void *arg) {
  ref_call *r = arg;
  r->rc = media_describe(c, r->hash, &r->info);
  return 0;
}

/* media_ref / media_describe and the ids, on a store of their own. */
static void test_ref_describe(void) {
  char dir[] = "/tmp/tsr-media-store-XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  store *st = NULL;
  store_opts o = {.migrations = server_schema, .n_migrations = server_schema_len};
  CHECK_OK(store_open(dir, &o, &st));
  if (!st) return;
  ref_call r = {.delta = 1};
  char id[MEDIA_ID_HEX + 1];
  memset(r.hash, 0xAB, sizeof r.hash);
  media_id_text(r.hash, id);
  CHECK(strcmp(id, "abababababababababababababababababababababababababababababababab") ==
        0);
  uint8_t back[32];
  CHECK(media_id_parse(id, back) && memcmp(back, r.hash, 32) == 0);
  CHECK(!media_id_parse(
      "ABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABAB", back));
  CHECK(!media_id_parse("abab", back) && !media_id_parse(NULL, back));
  id[63] = 'g';
  CHECK(!media_id_parse(id, back));
  CHECK_OK(store_exec_sync(st, run_ref, &r));
  CHECK_ERR(r.rc, TSR_ENOTFOUND);
  CHECK_OK(store_exec_sync(st, run_describe, &r));
  CHECK_ERR(r.rc, TSR_ENOTFOUND);
  char sql[300];
  snprintf(sql, sizeof sql,
           "INSERT INTO media VALUES (x'%s', 'video', 'video/quicktime', 1234, 640, 360, "
           "0, 1)",
           "abababababababababababababababababababababababababababababababab");
  CHECK_OK(store_exec_sync(st, run_sql, sql));
  CHECK_OK(store_exec_sync(st, run_ref, &r));
  CHECK_OK(r.rc);
  CHECK_OK(store_exec_sync(st, run_describe, &r));
  CHECK_OK(r.rc);
  CHECK(r.info.kind == MEDIA_VIDEO && strcmp(r.info.mime, "video/quicktime") == 0);
  CHECK(r.info.size == 1234 && r.info.width == 640 && r.info.height == 360);
  r.delta = -2; /* below 0: refused, nothing changed */
  CHECK_OK(store_exec_sync(st, run_ref, &r));
  CHECK_ERR(r.rc, TSR_ESTATE);
  CHECK_OK(store_exec_sync(st, run_created, NULL));
  CHECK_INT(created_at, 1); /* still in use: untouched */
  r.delta = -1;
  CHECK_OK(store_exec_sync(st, run_ref, &r));
  CHECK_OK(r.rc);
  CHECK_OK(store_exec_sync(st, run_created, NULL));
  CHECK(created_at >= (int64_t)time(NULL) - 5); /* unused from now: a day of grace */
  CHECK_OK(store_exec_sync(st, run_ref, &r));
  CHECK_ERR(r.rc, TSR_ESTATE);
  CHECK_OK(
      store_exec_sync(st, run_sql, "UPDATE media SET refs = -1")); /* being deleted */
  r.delta = 1;
  CHECK_OK(store_exec_sync(st, run_ref, &r));
  CHECK_ERR(r.rc, TSR_ENOTFOUND);
  CHECK_OK(store_exec_sync(st, run_describe, &r));
  CHECK_ERR(r.rc, TSR_ENOTFOUND);
  CHECK_ERR(media_describe(NULL, r.hash, &r.info), TSR_ESTATE); /* no worker here */
  store_close(st);
  char cmd[100];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  CHECK(system(cmd) == 0);
}

/* The pixel limit comes before decoding: the bomb's data would not
 * decode, yet the answer is the limit. The same image at a size within the
 * limit is refused for its data. */
static void test_imaging_direct(void) {
  CHECK_OK(imaging_init());
  char dir[] = "/tmp/tsr-media-img-XXXXXX", in[100], out[100];
  CHECK(mkdtemp(dir) != NULL);
  snprintf(in, sizeof in, "%s/in", dir);
  snprintf(out, sizeof out, "%s/out", dir);
  uint8_t bomb[128];
  size_t n = make_bomb(bomb);
  FILE *f = fopen(in, "wb");
  CHECK(f && fwrite(bomb, 1, n, f) == n);
  if (f) fclose(f);
  imaging_info info = {0};
  CHECK_ERR(imaging_reencode(in, SNIFF_PNG, out, &info), TSR_ELIMIT);
  struct stat st;
  CHECK(stat(out, &st) != 0);
  be32(bomb + 16, 1000); /* 1000 x 5000: within the limit, data short */
  be32(bomb + 29, crc32_of(bomb + 12, 17));
  f = fopen(in, "wb");
  CHECK(f && fwrite(bomb, 1, n, f) == n);
  if (f) fclose(f);
  CHECK_ERR(imaging_reencode(in, SNIFF_PNG, out, &info), TSR_EDECODE);
  CHECK(stat(out, &st) != 0);
  CHECK(info.mime == NULL); /* untouched on failure */
  CHECK_ERR(imaging_reencode(in, SNIFF_MP4, out, &info), TSR_EINVAL);
  CHECK_ERR(imaging_video_scrub(in, SNIFF_PNG, &info), TSR_EINVAL);
  char cmd[100];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  CHECK(system(cmd) == 0);
}

/* Boxes named udta or meta at the top level, in moov or in a trak of the
 * file p[0..n) (what the scrubber promises to leave none of). */
static int metadata_boxes(const uint8_t *p, size_t n, sniff_boxes *it) {
  int found = 0;
  for (;;) {
    uint64_t off;
    size_t k = sniff_boxes_want(it, &off);
    sniff_box b;
    if (sniff_boxes_next(it, p + off, k, &b) != 1) return found;
    if (b.type == SNIFF_FOURCC('u', 'd', 't', 'a') ||
        b.type == SNIFF_FOURCC('m', 'e', 't', 'a'))
      found++;
    sniff_boxes child;
    if ((b.type == SNIFF_FOURCC('m', 'o', 'o', 'v') ||
         b.type == SNIFF_FOURCC('t', 'r', 'a', 'k')) &&
        sniff_boxes_enter(it, &b, 0, &child) == 0)
      found += metadata_boxes(p, n, &child);
  }
}

/* The scrubber on every cut and every one-byte corruption of a video:
 * refusals, never a crash; success only for the whole file (cuts), or
 * with no metadata box left (corruptions it survives: a renamed box is
 * no metadata box, for players too). */
static void test_scrub_robust(void) {
  char dir[] = "/tmp/tsr-media-scrub-XXXXXX", path[100];
  CHECK(mkdtemp(dir) != NULL);
  snprintf(path, sizeof path, "%s/v", dir);
  buf_t v;
  make_mp4(&v, "isom", 320, 240);
  imaging_info info;
  int ok_cuts = 0, ok_flips = 0;
  uint8_t *w = malloc(v.len);
  CHECK(w != NULL && !v.err);
  for (size_t i = 0; w && i <= 2 * v.len; i++) {
    bool cut = i <= v.len;
    size_t n = cut ? i : v.len;
    memcpy(w, v.ptr, v.len);
    if (!cut) w[i - v.len - 1] ^= 0xFF;
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(w, 1, n, f) == n);
    if (f) fclose(f);
    int rc = imaging_video_scrub(path, SNIFF_MP4, &info);
    CHECK(rc == 0 || rc == TSR_EDECODE || rc == TSR_EUNSUPPORTED);
    if (rc == 0 && cut) ok_cuts++;
    if (rc == 0 && !cut) {
      ok_flips++;
      FILE *g = fopen(path, "rb");
      CHECK(g && fread(w, 1, n, g) == n);
      if (g) fclose(g);
      sniff_boxes top;
      sniff_boxes_init(&top, n);
      CHECK_INT(metadata_boxes(w, n, &top), 0);
    }
  }
  CHECK_INT(ok_cuts, 1); /* only the whole file */
  CHECK(ok_flips > 0);   /* bytes inside payloads do not matter */
  free(w);
  buf_free(&v);
  char cmd[100];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  CHECK(system(cmd) == 0);
}

int main(int argc, char **argv) {
  (void)argc;
  signal(SIGPIPE, SIG_IGN);
  if (sodium_init() < 0 || VIPS_INIT(argv[0]) != 0 || !find_binary()) {
    fprintf(stderr, "tesserad or libvips not found (set TSR_BUILD)\n");
    printf("media: 0 passed, 1 failed, 0 skipped\n");
    return 1;
  }
  static const char *const extra[] = {"--rate-per-account",
                                      "0",
                                      "--rate-per-address",
                                      "0",
                                      "--media-max-bytes",
                                      "2m",
                                      "--image-max-bytes",
                                      "1m",
                                      NULL};
  if (!server_start(&srv, "media", true, "2", extra)) {
    fprintf(stderr, "tesserad did not start; log %s\n", srv.log);
    printf("media: 0 passed, 1 failed, 0 skipped\n");
    return 1;
  }
  RUN(test_setup);
  RUN(test_jpeg_exif_gps);
  RUN(test_png_named_jpg);
  RUN(test_dedup);
  RUN(test_other_images);
  RUN(test_refusals);
  RUN(test_oversized);
  RUN(test_video);
  RUN(test_cut);
  RUN(test_get);
  RUN(test_sweep);
  RUN(test_leftovers);
  RUN(test_ref_describe);
  RUN(test_imaging_direct);
  RUN(test_scrub_robust);
  free(jpeg_in);
  free(png_out);
  cJSON_Delete(resp.json);
  resp.json = NULL;
  server_stop(&srv, true);
  vips_shutdown(); /* libvips frees what it can */
  return test_report("media");
}
