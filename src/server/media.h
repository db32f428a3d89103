/* Public media: the images and videos of posts and stories
 * (docs/protocol.md, "Public media").
 *
 * Unlike attachments (blobs.h), public media is readable by the server:
 * it is cleaned of metadata before anyone sees it (imaging.h says exactly
 * what is and is not stripped) and stored once per content. A media item
 * is named by the SHA-256 of its stored bytes, 64 lowercase hex digits;
 * any authenticated device that knows the id may read it.
 *
 * Upload (POST /v1/media) is a streamed-body route (httpd.h): the head is
 * checked (token, Content-Length <= media_max_bytes, else 413 before any
 * body byte is read), the body goes to <data_dir>/media/tmp/<random>. At
 * its end the type is read from the first bytes (proto/sniff.h; the name
 * and Content-Type sent are ignored): none known -> 415, an image over
 * image_max_bytes -> 413. The rest runs on the worker's media thread,
 * never on the loop: SHA-256 of the original; if media_sources already
 * maps it, the answer is that media (nothing is decoded again); else the
 * image is re-encoded or the video checked and neutralised (imaging.h),
 * the result hashed, fsynced and linked to <data_dir>/media/<hex> unless
 * that file exists (same bytes, stored once), and the directory fsynced.
 * Then a store job writes the `media` row (refs 0) and the `media_sources`
 * row, and only its commit answers 201. A file that does not decode, a
 * truncated one, or one cut short by the connection leaves no row and no
 * file (422 bad_media, or no answer); the temporary files are removed.
 *
 * Download (GET/HEAD /v1/media/{hex}) serves the file (fileserve.h): its
 * MIME type, ETag "<hex>", immutable caching, If-None-Match -> 304, one
 * Range -> 206 / 416. An unknown or malformed id is 404.
 *
 * Lifetime. refs counts the posts and stories using a media item; only
 * media_ref changes it. created_at (seconds on the server's clock,
 * clock.h) is when the media last became unused: its upload, refreshed
 * when the same media is uploaded again and when its last use ends.
 * Worker 0 deletes rows with refs = 0 whose created_at is more than
 * MEDIA_UNREFERENCED_TTL old, then their files. A file
 * is only ever deleted by whoever holds its row marked refs = -1 (a
 * tombstone: the sweep marks, unlinks, then deletes the row), which every
 * reader here treats as absent; an upload that meets a tombstone answers
 * 503 (retry) instead of using a file about to go. Leftovers of a crash
 * (temporary files, files without a row) are removed once an hour old.
 *
 * Threads: handlers, upload callbacks, the sweep and job completions run
 * on the worker's loop thread; decoding, hashing and directory scans on
 * the worker's media thread; job run callbacks on the store writer.
 * media_ref and media_describe run on the thread that owns their
 * connection. */
#ifndef TSR_SERVER_MEDIA_H
#define TSR_SERVER_MEDIA_H

#include <stdbool.h>
#include <stdint.h>

#include "server/worker.h"
#include "store/store.h"

#define MEDIA_HASH_BYTES 32
#define MEDIA_ID_HEX 64
#define MEDIA_DIR "media" /* under data_dir; temporary files in tmp/ */
#define MEDIA_UNREFERENCED_TTL ((int64_t)24 * 3600) /* seconds unused media is kept */
#define TIMER_MEDIA 7 /* the sweep timer's kind (after blobs.h's) */

typedef enum { MEDIA_IMAGE, MEDIA_VIDEO } media_kind;

/* A stored media item, for posts to embed. mime is static storage. */
typedef struct {
  media_kind kind;
  const char *mime;
  uint64_t size;
  uint32_t width, height;
} media_info;

/* "image" / "video". */
const char *media_kind_name(media_kind k);

/* Exactly 64 lowercase hex digits (NUL-terminated) -> out. False for
 * anything else (out is then unspecified). */
bool media_id_parse(const char *hex, uint8_t out[MEDIA_HASH_BYTES]);
/* The id of h: 64 lowercase hex digits and a NUL. */
void media_id_text(const uint8_t h[MEDIA_HASH_BYTES], char out[MEDIA_ID_HEX + 1]);

/* In a store job: adds delta to the media's refs (a post or story starts
 * or stops using it; add the new reference before dropping an old one).
 * When refs comes back to 0 the media is kept MEDIA_UNREFERENCED_TTL from
 * now. Returns 0, TSR_ENOTFOUND (no such media, or being deleted), TSR_ESTATE
 * (refs would go below 0), or a store error. */
int media_ref(store_conn *c, const uint8_t hash[MEDIA_HASH_BYTES], int delta);

/* The stored media's description. c: a writer (in a job) or reader
 * connection of the calling thread; NULL means the calling thread's reader
 * of this worker's store. Returns 0, TSR_ENOTFOUND or a store error. */
int media_describe(store_conn *c, const uint8_t hash[MEDIA_HASH_BYTES], media_info *out);

/* Registers POST /v1/media (streamed) and GET /v1/media/{id}. Call from
 * main before the workers start. */
int media_routes(void);

/* Master, before the fork: creates <data_dir>/media and media/tmp (0700).
 * Returns 0 or a negative errno (logged). */
int media_prepare(const cfg *c);

/* Worker hooks: start libvips and the media thread, open the directories,
 * start the sweep (worker 0); stop joins the thread and drops the work it
 * did not hand back (removing its temporary files). */
int media_worker_start(worker *w);
void media_worker_stop(worker *w);

#endif
