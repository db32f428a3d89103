/* Public media processing (server/media.h): images are decoded and
 * re-encoded by libvips without their metadata; videos are checked and
 * their metadata boxes neutralised in place, never re-encoded.
 *
 * Images (JPEG, PNG, WebP, GIF), imaging_reencode:
 *   - The loader is chosen from the sniffed type (proto/sniff.h), never
 *     from the file name, and only that loader runs (no fallback to
 *     another decoder).
 *   - Decompression bombs: the header is read first and an image of more
 *     than IMAGING_MAX_PIXELS is refused before any pixel is decoded.
 *   - The whole image is then decoded with fail-on-error, so a truncated
 *     or corrupt file is refused instead of stored half-grey.
 *   - It is turned upright by its EXIF orientation, converted to sRGB
 *     when it carries an ICC profile (or is CMYK), and shrunk so that its
 *     larger side is at most IMAGING_MAX_SIDE.
 *   - Its pixels are copied into a fresh image that carries no metadata
 *     at all, which is written again in its own format (GIF: its first
 *     frame as PNG; animated WebP: its first frame), also with the savers'
 *     strip option; from WebP files the EXIF, XMP and ICCP chunks are
 *     then cut out (libvips 8.14's WebP saver writes an EXIF chunk of its
 *     own despite strip). So: no
 *     EXIF (camera, serial numbers, GPS position, times), no XMP, no IPTC,
 *     no ICC profile, no comments or text chunks, no thumbnails. JPEG at
 *     quality IMAGING_JPEG_QUALITY, WebP lossy at the same quality, PNG
 *     lossless.
 *   Not stripped: what the pixels show (faces, places, documents), and
 *   whatever steganography survives a re-encode.
 *
 * Videos (MP4, QuickTime), imaging_video_scrub:
 *   - The top-level boxes must add up exactly to the file size (a
 *     truncated upload is refused), with `ftyp` first, one `moov` and an
 *     `mdat`; the `moov`, `trak` and `mdia` boxes must add up too. A video
 *     needs a track with a picture size (tkhd), else it is refused.
 *   - Neutralised in place (type renamed to `free`, payload zeroed, size
 *     kept, so every chunk offset stays valid and players skip them):
 *     `udta` and `meta` at the top level, in `moov` and in every `trak`
 *     (QuickTime ©xyz and Apple com.apple.quicktime.location.ISO6709
 *     positions, make, model, software, dates, titles), and XMP `uuid`
 *     boxes at those levels.
 *   - Zeroed: the creation and modification times of `mvhd`, each `tkhd`
 *     and each `mdhd`.
 *   Not stripped: the audio and picture themselves, encoder names inside
 *   sample descriptions (`stsd`), metadata carried inside the codec
 *   bitstream (e.g. H.264 SEI user data), timed-metadata tracks (e.g. GPS
 *   tracks from action cameras) and boxes of fragmented files (`moof`).
 *
 * Threads: call imaging_init once per process before anything else (after
 * any fork: libvips starts threads). The other calls block for up to
 * seconds, so never from an event loop; they are thread-safe. A thread
 * that used them calls imaging_thread_done before it exits. */
#ifndef TSR_SERVER_IMAGING_H
#define TSR_SERVER_IMAGING_H

#include <stdbool.h>
#include <stdint.h>

#include "proto/sniff.h"

#define IMAGING_MAX_PIXELS 40000000u /* width x height before decoding */
#define IMAGING_MAX_SIDE 4096        /* the larger side after shrinking */
#define IMAGING_JPEG_QUALITY 85

/* What was stored. mime is static storage. */
typedef struct {
  const char *mime;
  bool video;
  uint32_t width, height;
} imaging_info;

/* Starts libvips (one worker thread per pipeline, operation cache off)
 * and routes its warnings to the server log. Returns 0, or TSR_ESTATE when
 * libvips cannot start. Later calls return the first result. */
int imaging_init(void);

/* Shuts libvips down at process end (after every thread using it was
 * joined). */
void imaging_shutdown(void);

/* Releases libvips' per-thread buffers; call on a thread that used
 * imaging_reencode before it exits. */
void imaging_thread_done(void);

/* Decodes the image at in_path (of the sniffed image type) and writes the
 * cleaned image to out_path (created or truncated, 0600). On success
 * fills *info. Returns 0, TSR_ELIMIT (more than IMAGING_MAX_PIXELS),
 * TSR_EDECODE (truncated, corrupt, or not of that type), TSR_EINVAL (a
 * video type), TSR_EIO (out_path cannot be written), TSR_ESTATE (no
 * imaging_init). On failure out_path does not exist and *info is
 * untouched. in_path is never modified. */
int imaging_reencode(const char *in_path, sniff_type type, const char *out_path,
                     imaging_info *info);

/* Checks the MP4/QuickTime file (type SNIFF_MP4 or SNIFF_MOV) at path and
 * neutralises its metadata in
 * place (see above); the caller fsyncs it. On success fills *info (size of
 * the first track with a picture). Returns 0, TSR_EDECODE (inconsistent
 * or truncated structure), TSR_EUNSUPPORTED (no video track), TSR_EIO,
 * TSR_EINVAL (another type).
 * On TSR_EDECODE or TSR_EUNSUPPORTED the file may be partly neutralised:
 * the caller discards it. */
int imaging_video_scrub(const char *path, sniff_type type, imaging_info *info);

#endif
