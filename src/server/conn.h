/* Connections: the per-socket state of tesserad, kept tiny while idle.
 *
 * A conn is 64 bytes in a per-worker slab: fd and epoll registration, the
 * state, one timer, a generation, and three pointers (busy I/O state, TLS,
 * session). Everything that only matters while bytes are in flight - the
 * unparsed input, unsent output, a fragmented WebSocket message, a chunked
 * body decoder - lives in a conn_io that is attached on demand and handed
 * back to a small per-worker pool as soon as the connection is quiet again.
 * Reads land in the worker's shared scratch buffer and are parsed there;
 * only a partial frame or request is copied into the conn's own buffer.
 * Writes are gathered in the worker's scratch and written at once; only
 * what the kernel refuses is queued on the conn (up to max_write_buffer,
 * beyond which the reader is too slow and is dropped).
 *
 * Ownership and lifetime: the worker owns every conn. Protocol code never
 * frees one: it calls conn_kill() (or sets CONN_F_DEAD) and the event
 * handler that called it closes the socket on the way out, so no code runs
 * on a freed conn. Slab memory is never returned to malloc, which makes a
 * conn_ref (pointer + generation) safe to check after the conn is gone.
 *
 * Threads: all of it runs on the owning worker's loop thread. */
#ifndef TSR_SERVER_CONN_H
#define TSR_SERVER_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/bytes.h"
#include "proto/http.h"
#include "proto/ws.h"
#include "server/loop.h"
#include "server/tls.h"

struct worker;

enum conn_state {
  CONN_FREE = 0,      /* in the slab's free list */
  CONN_TLS_HANDSHAKE, /* before any HTTP byte */
  CONN_HTTP,          /* HTTP/1.1 requests, keep-alive */
  CONN_WS,            /* WebSocket session */
  CONN_WS_CLOSING,    /* we sent Close: only the peer's Close matters now */
  CONN_LINGER,        /* output sent, write side shut: discard input until EOF */
};

enum conn_flags {
  CONN_F_DEAD = 1 << 0,        /* close on the way out of the current event */
  CONN_F_CLOSE_AFTER = 1 << 1, /* HTTP: linger once the output is flushed */
  CONN_F_PAUSED = 1 << 2,      /* HTTP: input left unparsed until output drains */
  CONN_F_REQ_TIMER = 1 << 3,   /* the timer measures a request, not idleness */
  CONN_F_PING_SENT = 1 << 4,   /* WebSocket: our Ping awaits any answer */
  CONN_F_EOF = 1 << 5,         /* the peer closed its write side */
};

/* Handle kinds in the worker's loop. */
enum { KIND_DEAD = 0, KIND_CONN = 1, KIND_LISTEN = 2, KIND_SIGNAL = 3 };
/* Timer kinds. */
enum { TIMER_CONN = 1, TIMER_DRAIN = 2, TIMER_ACCEPT = 3, TIMER_STATS = 4 };

/* Busy-time state. Invariant: attached to a conn only while one of its
 * fields is non-empty (see conn_io_idle), except within one event. */
typedef struct conn_io {
  struct conn_io *next_free;
  buf_t in;  /* unparsed input; a partial request starts at in.ptr */
  buf_t out; /* unsent output from out_off */
  size_t out_off;
  buf_t msg; /* WebSocket: fragments of the message being assembled */
  ws_assembler wsa;
  http_chunked_decoder ck;
  uint32_t ck_raw;  /* chunked: offset (from the request start) of raw input */
  uint32_t ck_body; /* chunked: decoded bytes stored right after the head */
  bool ck_active;
  bool continue_sent; /* 100 Continue already sent for this request */
  /* HTTP: a request body streamed to a route (httpd.c); up is non-NULL
   * from the accepted head until the body's last byte or the close. */
  const struct httpd_stream *up;
  void *up_ctx;
  uint64_t up_left;    /* body bytes still to come */
  http_request up_req; /* the head's framing fields; its views are cleared */
  /* Output: a file region sent after `out` (conn_send_file), read in
   * bounded pieces as the socket drains. file_fd is owned while active. */
  bool file_active;
  int file_fd;
  uint64_t file_off, file_left;
} conn_io;

typedef struct conn {
  loop_handle h; /* fd, kind, interest; h.spare[0] = state, spare[1] = flags */
  uint32_t gen;  /* bumped at every close: conn_ref validity */
  uint32_t spare;
  loop_timer timer;
  conn_io *io;   /* NULL while idle */
  SSL *tls;      /* NULL for plain TCP */
  void *session; /* the WebSocket session's owner data (accounts, later) */
} conn;

#define conn_state(c) ((c)->h.spare[0])
#define conn_flags(c) ((c)->h.spare[1])

/* A weak reference for replies that complete later (store completions). */
typedef struct {
  conn *c;
  uint32_t gen;
} conn_ref;

static inline conn_ref conn_ref_of(conn *c) { return (conn_ref){c, c->gen}; }
/* The conn if it is still the same open connection, else NULL. */
static inline conn *conn_ref_get(conn_ref r) {
  return r.c && r.c->gen == r.gen && conn_state(r.c) != CONN_FREE ? r.c : NULL;
}

/* Sets up an accepted socket (non-blocking already). Returns 0, or a
 * negative errno after closing fd. */
int conn_accept(struct worker *w, int fd);

/* The loop callbacks for KIND_CONN handles and TIMER_CONN timers. */
void conn_on_io(loop_t *l, loop_handle *h, unsigned events);
void conn_on_timer(loop_t *l, loop_timer *t);

/* The buffer to append c's next output to (bytes appear on the wire in
 * append order). Never NULL; check ->err after appending. */
buf_t *conn_out(conn *c);
/* Bytes queued on c and not yet accepted by the kernel. */
size_t conn_pending(const conn *c);
/* Writes what it can now and updates epoll interest. Marks c dead when the
 * pending output exceeds max_write_buffer (slow reader) or on error. */
void conn_flush(conn *c);
/* Runs after protocol code on the way out of any entry point: flushes,
 * starts lingering or closes, and detaches conn_io when quiet. */
void conn_settle(conn *c);
/* Marks c to be closed by conn_settle. */
static inline void conn_kill(conn *c) { conn_flags(c) |= CONN_F_DEAD; }
/* Batching of output not caused by the conn's own input (answers and
 * pushes from the delivery service): between begin and end, output for a
 * conn is queued in its own buffer instead of being written at once, and
 * end writes each touched conn once (one system call for many messages).
 * conn_settle during a batch only records the conn. Not nested. */
void conn_batch_begin(struct worker *w);
void conn_batch_end(struct worker *w);

/* Queues len bytes of fd from offset off after everything already queued
 * on c (a response body). Takes fd (closed when sent, on error and on
 * close). The bytes are read in pieces of CONN_FILE_CHUNK only while less
 * than that is pending, so memory stays bounded whatever len is. A file
 * that turns out shorter kills c (its Content-Length cannot be kept).
 * HTTP input stays unparsed until the region is sent. */
#define CONN_FILE_CHUNK (64 * 1024)
void conn_send_file(conn *c, int fd, uint64_t off, uint64_t len);
/* True while a file region of c is still being sent. */
static inline bool conn_sending_file(const conn *c) {
  return c->io && c->io->file_active;
}

/* Gets (attaching if needed) the busy state; NULL on ENOMEM. */
conn_io *conn_io_get(conn *c);
/* Shuts the write side after the queued output and waits for EOF. */
void conn_linger(conn *c);
/* Closes now: fd, TLS, timer, session hooks, back to the slab. */
void conn_close(conn *c);

/* Arms c's timer for ms. */
void conn_timer(conn *c, uint32_t ms);

struct worker *conn_worker(const conn *c);

/* The peer's address as a rate-limit key: IPv4 whole (4 bytes), IPv6 by its
 * /64 (8 bytes; one subscriber's prefix). Returns the length, 0 if unknown. */
size_t conn_peer_key(const conn *c, uint8_t out[16]);

#endif
