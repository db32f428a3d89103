#include "server/ipc.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tessera/error.h"

#define IPC_HEAD 9 /* length(4) type(1) id(4) */

int ipc_open(ipc_conn *c, loop_t *l, int fd, uint8_t kind, void *owner) {
  void (*on_frame)(ipc_conn *, uint8_t, uint32_t, bytes_t) = c->on_frame;
  void (*on_close)(ipc_conn *) = c->on_close;
  memset(c, 0, sizeof *c);
  c->on_frame = on_frame;
  c->on_close = on_close;
  c->h.fd = fd;
  c->h.kind = kind;
  c->loop = l;
  c->owner = owner;
  buf_init(&c->in);
  buf_init(&c->out);
  return loop_add(l, &c->h, LOOP_IN);
}

void ipc_close(ipc_conn *c) {
  if (c->closed) return;
  c->closed = true;
  loop_del(c->loop, &c->h);
  close(c->h.fd);
  c->h.fd = -1;
  buf_free(&c->in);
  buf_free(&c->out);
  c->out_off = 0;
  if (c->on_close) c->on_close(c);
}

static void put_be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

buf_t *ipc_begin(ipc_conn *c, uint8_t type, uint32_t id) {
  c->frame_start = c->out.len;
  uint8_t *p = buf_extend(&c->out, IPC_HEAD);
  if (p) {
    p[4] = type;
    put_be32(p + 5, id);
  }
  return &c->out;
}

/* Writes what the socket takes; false when the connection failed. */
static bool flush(ipc_conn *c) {
  while (c->out_off < c->out.len) {
    ssize_t k = send(c->h.fd, c->out.ptr + c->out_off, c->out.len - c->out_off,
                     MSG_NOSIGNAL | MSG_DONTWAIT);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (k <= 0) return false;
    c->out_off += (size_t)k;
  }
  if (c->out_off == c->out.len) {
    buf_reset(&c->out);
    c->out_off = 0;
  } else if (c->out_off > (1u << 20) && c->out_off > c->out.len / 2) {
    /* Drop what was written so the buffer does not only grow. */
    memmove(c->out.ptr, c->out.ptr + c->out_off, c->out.len - c->out_off);
    c->out.len -= c->out_off;
    c->out_off = 0;
  }
  loop_mod(c->loop, &c->h, c->out.len > c->out_off ? LOOP_IN | LOOP_OUT : LOOP_IN);
  return true;
}

void ipc_uncork(ipc_conn *c) {
  c->corked = false;
  if (!c->closed && c->out.len > c->out_off && !flush(c)) ipc_close(c);
}

void ipc_abort(ipc_conn *c) {
  if (c->closed) return;
  c->out.len = c->frame_start;
  c->out.err = 0;
}

int ipc_end(ipc_conn *c) {
  if (c->closed) return TSR_ESTATE;
  if (c->out.err) {
    ipc_close(c);
    return TSR_ENOMEM;
  }
  size_t n = c->out.len - c->frame_start - 4;
  if (n > IPC_MAX_FRAME || c->out.len - c->out_off > IPC_MAX_PENDING) {
    ipc_close(c);
    return TSR_ELIMIT;
  }
  put_be32(c->out.ptr + c->frame_start, (uint32_t)n);
  if (c->corked) return 0;
  if (!flush(c)) {
    ipc_close(c);
    return TSR_EIO;
  }
  return 0;
}

/* Hands every complete frame in `in` to on_frame; false on a malformed
 * one. The callback may close c. */
static bool deliver(ipc_conn *c) {
  size_t off = 0;
  while (!c->closed && c->in.len - off >= 4) {
    uint32_t n = get_be32(c->in.ptr + off);
    if (n < IPC_HEAD - 4 || n > IPC_MAX_FRAME) return false;
    if (c->in.len - off - 4 < n) break;
    const uint8_t *f = c->in.ptr + off + 4;
    off += 4 + n;
    c->on_frame(c, f[0], get_be32(f + 1), (bytes_t){f + 5, n - 5});
  }
  if (c->closed) return true;
  if (off) {
    memmove(c->in.ptr, c->in.ptr + off, c->in.len - off);
    c->in.len -= off;
  }
  return true;
}

void ipc_on_io(ipc_conn *c, unsigned events) {
  if (c->closed) return;
  if ((events & LOOP_OUT) && !flush(c)) {
    ipc_close(c);
    return;
  }
  if (!(events & (LOOP_IN | LOOP_ERR))) return;
  for (int rounds = 0; rounds < 16 && !c->closed; rounds++) {
    uint8_t *p = buf_extend(&c->in, 64 * 1024);
    if (!p) {
      ipc_close(c);
      return;
    }
    c->in.len -= 64 * 1024;
    ssize_t k = recv(c->h.fd, p, 64 * 1024, MSG_DONTWAIT);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (k <= 0) {
      ipc_close(c);
      return;
    }
    c->in.len += (size_t)k;
    if (!deliver(c)) {
      ipc_close(c);
      return;
    }
    if ((size_t)k < 64 * 1024) break;
  }
}
