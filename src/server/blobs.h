/* Attachments: opaque blobs (docs/protocol.md, "Attachments (blobs)").
 *
 * Clients encrypt an attachment with a fresh key that travels inside their
 * MLS message; the server stores only ciphertext it cannot read. A blob is
 * named by 16 random bytes (22 base64url characters), which are the
 * capability to download it: any authenticated device that knows the id
 * may read it. The server sees the uploader's account, the size and the
 * times; never the content or its key.
 *
 * Upload (POST /v1/blobs) is a streamed-body route (httpd.h): the head is
 * checked (token, Content-Length <= attachment_max_bytes, else 413 before
 * any body byte is read), then the body goes straight to
 * <data_dir>/blobs/<id>.tmp as it arrives, never whole in memory. At its
 * end: fsync, rename to <id>, fsync of the directory, then a store job
 * writes the row (id, uploader, size, created_at), and only its commit
 * answers 201 (acknowledged means durable). An upload cut short deletes
 * its temporary file and writes no row. The file I/O runs on the loop
 * thread: writes land in the page cache, the one fsync per upload is the
 * cost (a blob I/O thread is the next step if it shows).
 *
 * Download (GET/HEAD /v1/blobs/{id}) serves the file from a region
 * (conn_send_file), read in bounded pieces as the socket drains; one
 * Range (proto/range.h) gives 206, an unsatisfiable one 416, a malformed
 * or multi-range Range is ignored (200).
 *
 * Retention: worker 0 deletes blobs older than message_retention (row
 * first, then file) on a timer, and removes what a crash can leave behind:
 * temporary files, and blob files without a row, once they are an hour old.
 *
 * Threads: handlers, the upload callbacks and the sweep run on the
 * worker's loop thread; job run callbacks on the store writer. */
#ifndef TSR_SERVER_BLOBS_H
#define TSR_SERVER_BLOBS_H

#include "server/worker.h"

#define BLOBS_ID_BYTES 16
#define BLOBS_ID_B64 22
#define BLOBS_DIR "blobs" /* under data_dir */
#define TIMER_BLOBS 6     /* the sweep timer's kind (after conn.h's and conv.h's) */

/* Registers POST /v1/blobs (streamed) and GET /v1/blobs/{id}. Call from
 * main before the workers start. */
int blobs_routes(void);

/* Master, before the fork: creates <data_dir>/blobs (0700). Returns 0 or
 * a negative errno (logged). */
int blobs_prepare(const cfg *c);

/* Worker hooks: open the blob directory, start the sweep (worker 0). */
int blobs_worker_start(worker *w);
void blobs_worker_stop(worker *w);

#endif
