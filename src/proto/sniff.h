/* Media sniffing: what an uploaded file is, from its bytes alone.
 *
 * Pure parsers in the habit of proto/http.h: no I/O, no allocation, no
 * callbacks, no state outside the caller's structs; reentrant. Every length
 * read from the input is checked against the buffer given, so nothing reads
 * past it, whatever the bytes claim.
 *
 * sniff_detect names the type from the leading bytes (a file's name or
 * declared Content-Type never counts): JPEG, PNG, WebP, GIF, and ISO-BMFF
 * video (MP4, QuickTime) recognised by an `ftyp` box with a known brand.
 * It also reads the pixel size when the header carries it.
 *
 * The box walker checks the top-level structure of an ISO-BMFF file
 * (ISO/IEC 14496-12 §4.2) without holding the file: the caller reads at
 * most SNIFF_BOX_HEADER_MAX bytes at the offset the walker asks for and
 * hands them back, so a file of any size is checked with a few small
 * reads (or a buffer is checked whole with sniff_mp4_check). Box sizes
 * must be consistent and add up exactly to the file size, which catches a
 * truncated upload (except when its last box has size 0, "to the end of
 * the file", which by definition cannot be cut short). Nesting is bounded
 * (SNIFF_BOX_DEPTH_MAX), and so is the number of boxes per container. */
#ifndef TSR_PROTO_SNIFF_H
#define TSR_PROTO_SNIFF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
  SNIFF_UNKNOWN = 0,
  SNIFF_JPEG,
  SNIFF_PNG,
  SNIFF_WEBP,
  SNIFF_GIF,
  SNIFF_MP4, /* ISO base media: video/mp4 */
  SNIFF_MOV, /* QuickTime (major brand "qt  "): video/quicktime */
} sniff_type;

/* What sniff_detect found. mime is static storage. width and height are 0
 * when the bytes given do not carry them (always for video: its size is in
 * the `moov` box, often at the end of the file; and for a JPEG whose SOF
 * marker lies beyond the bytes given). */
typedef struct {
  sniff_type type;
  const char *mime;
  bool video;
  uint32_t width, height;
} sniff_info;

/* How many leading bytes to give sniff_detect: every header it reads fits,
 * except a JPEG SOF behind more than that of metadata segments. */
#define SNIFF_HEAD_BYTES 65536

/* Identifies p[0..n) (the first bytes of a file, or all of it). Returns 0
 * with *out filled, TSR_EUNSUPPORTED when no known signature is there,
 * TSR_EDECODE when a known signature's header is cut short or impossible
 * (a PNG without IHDR, a zero width, an `ftyp` with a bad size), or
 * TSR_EINVAL for NULL arguments. *out is written only on success. */
int sniff_detect(const uint8_t *p, size_t n, sniff_info *out);

/* The static MIME string sniff_detect uses for s[0..n), or NULL when s is
 * none of them. Lets a stored MIME be served from static storage. */
const char *sniff_mime_static(const char *s, size_t n);

/* ---- ISO-BMFF boxes ------------------------------------------------------ */

#define SNIFF_FOURCC(a, b, c, d)                                                         \
  ((uint32_t)(uint8_t)(a) << 24 | (uint32_t)(uint8_t)(b) << 16 |                         \
   (uint32_t)(uint8_t)(c) << 8 | (uint32_t)(uint8_t)(d))

#define SNIFF_BOX_HEADER_MAX 16 /* size, type, largesize */
#define SNIFF_BOX_DEPTH_MAX 8   /* containers inside the file: moov/trak/mdia/... */
#define SNIFF_BOXES_MAX 100000  /* boxes per container */

/* One box. offset is where its header starts, size covers header and
 * payload (after a size 0 it is the rest of the container), header is 8,
 * or 16 with a 64-bit largesize. Invariant: header <= size and
 * offset + size <= the container's end. */
typedef struct {
  uint32_t type;
  uint64_t offset;
  uint64_t size;
  uint32_t header;
} sniff_box;

/* Parses the box header at p[0..n) for a box that starts at offset inside
 * a container ending at end. to_end_ok allows size 0 (the box runs to
 * end; only meaningful at the top level of a file). Returns 0, or
 * TSR_EDECODE when the header is cut short (n too small for it, or the
 * container ends inside it), declares less than its own header, or runs
 * past end. */
int sniff_box_parse(const uint8_t *p, size_t n, uint64_t offset, uint64_t end,
                    bool to_end_ok, sniff_box *out);

/* Iterator over the boxes of one container (or the top level of a file).
 * Plain value; the caller owns it. Invariant: pos <= end. */
typedef struct {
  uint64_t pos, end;
  uint32_t count; /* boxes returned so far */
  uint8_t depth;  /* 0: the top level of a file */
} sniff_boxes;

/* The top level of a file of file_size bytes. */
void sniff_boxes_init(sniff_boxes *it, uint64_t file_size);

/* The children of box (returned by parent), which start skip bytes after
 * its header (4 for a FullBox such as ISO `meta`). Returns 0, or
 * TSR_EDECODE when skip does not fit in the box or nesting would exceed
 * SNIFF_BOX_DEPTH_MAX. */
int sniff_boxes_enter(const sniff_boxes *parent, const sniff_box *box, uint32_t skip,
                      sniff_boxes *child);

/* Where to read the next header: sets *off and returns how many bytes to
 * read there (at most SNIFF_BOX_HEADER_MAX), or 0 at the container's end. */
size_t sniff_boxes_want(const sniff_boxes *it, uint64_t *off);

/* Hands over the bytes read at the offset sniff_boxes_want gave (n may be
 * less when the file ended early). Returns 1 with *out and the iterator
 * moved past that box, 0 at the end (the boxes exactly filled the
 * container), or TSR_EDECODE (inconsistent sizes, leftover bytes that are
 * not a box, more than SNIFF_BOXES_MAX boxes). */
int sniff_boxes_next(sniff_boxes *it, const uint8_t *p, size_t n, sniff_box *out);

/* Top-level check of an MP4/QuickTime file: `ftyp` first (once), exactly
 * one `moov`, at least one `mdat`, sizes adding up to the file size.
 * Plain value; the caller owns it. */
typedef struct {
  sniff_boxes it;
  uint32_t ftyp, moov, mdat; /* how many of each were seen */
} sniff_mp4;

void sniff_mp4_init(sniff_mp4 *m, uint64_t file_size);

/* Like sniff_boxes_next for the top level (read at sniff_mp4_want), with
 * the ordering rules: TSR_EDECODE for a first box that is not `ftyp`, a
 * second `ftyp` or a second `moov`. */
size_t sniff_mp4_want(const sniff_mp4 *m, uint64_t *off);
int sniff_mp4_next(sniff_mp4 *m, const uint8_t *p, size_t n, sniff_box *out);

/* After sniff_mp4_next returned 0: 0 when `ftyp`, `moov` and `mdat` were
 * all seen, else TSR_EDECODE. */
int sniff_mp4_finish(const sniff_mp4 *m);

/* The whole check over a file held in p[0..n). Returns 0 or TSR_EDECODE. */
int sniff_mp4_check(const uint8_t *p, size_t n);

#endif
