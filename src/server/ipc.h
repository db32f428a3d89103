/* Framed messages between tesserad's processes (a worker and the delivery
 * service, ds.h) over a Unix stream socket.
 *
 * A frame is a 4-byte big-endian length n (1 <= n <= IPC_MAX_FRAME), then
 * n bytes: a 1-byte type, a 4-byte big-endian request id, and the type's
 * fields written with the TLS presentation codec (mls/codec.h). Requests
 * carry a nonzero id that their answer repeats; pushes use id 0.
 *
 * An ipc_conn is embedded in its owner's struct: the owner sets fd, kind
 * and the callbacks, registers the handle with its loop (LOOP_IN), and
 * calls ipc_on_io from its io callback. Output is queued in `out` and
 * written as the socket takes it; a peer that lets more than
 * IPC_MAX_PENDING bytes pile up is a broken peer: the connection is
 * closed (the owner's on_close runs). A malformed frame (length 0 or too
 * large) also closes it.
 *
 * Ownership: the conn owns its buffers; the payload view given to on_frame
 * lives until on_frame returns. Threads: the owner's loop thread only. */
#ifndef TSR_SERVER_IPC_H
#define TSR_SERVER_IPC_H

#include <stdbool.h>
#include <stdint.h>

#include "common/bytes.h"
#include "server/loop.h"

#define IPC_MAX_FRAME (4u << 20) /* a message plus its envelope */
#define IPC_MAX_PENDING                                                                  \
  (256u << 20) /* unsent output before the peer counts as broken                         \
                */

typedef struct ipc_conn ipc_conn;

struct ipc_conn {
  loop_handle h; /* fd and kind set by the owner; the loop registration */
  loop_t *loop;
  buf_t in;
  buf_t out;
  size_t out_off;     /* bytes of out already written */
  size_t frame_start; /* offset in out of the frame being written */
  bool corked;        /* ipc_end queues without writing until ipc_uncork */
  bool closed;
  void *owner;
  /* One complete frame: type, request id and the fields after them. */
  void (*on_frame)(ipc_conn *c, uint8_t type, uint32_t id, bytes_t fields);
  /* The connection ended (EOF, error, malformed frame, too much pending
   * output); the fd is already closed and the handle removed. */
  void (*on_close)(ipc_conn *c);
};

/* Sets up c around a connected non-blocking fd and registers it. Returns
 * 0 or a negative errno. */
int ipc_open(ipc_conn *c, loop_t *l, int fd, uint8_t kind, void *owner);

/* Starts a frame of type/id in c->out; write the fields into the returned
 * buffer with the codec, then ipc_end. Frames are never interleaved. */
buf_t *ipc_begin(ipc_conn *c, uint8_t type, uint32_t id);
/* Finishes the frame begun last and tries to write. Returns 0, or
 * TSR_ELIMIT / TSR_ENOMEM (the connection is then closed). */
int ipc_end(ipc_conn *c);

/* Cork: frames ended meanwhile are queued and written together by
 * ipc_uncork (one system call for a batch of answers instead of one each). */
static inline void ipc_cork(ipc_conn *c) { c->corked = true; }
void ipc_uncork(ipc_conn *c);

/* Drops the frame begun last (nothing of it is sent). */
void ipc_abort(ipc_conn *c);

/* The io callback's body for c. */
void ipc_on_io(ipc_conn *c, unsigned events);

/* Closes c (idempotent); on_close runs once. */
void ipc_close(ipc_conn *c);

#endif
