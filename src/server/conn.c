#include "server/conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/httpd.h"
#include "server/log.h"
#include "server/metrics.h"
#include "server/worker.h"
#include "server/wsd.h"

#define IO_KEEP_CAP 4096 /* pooled conn_io keep buffers up to this size */

worker *conn_worker(const conn *c) {
  (void)c;
  return worker_self; /* one worker per process */
}

size_t conn_peer_key(const conn *c, uint8_t out[16]) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (getpeername(c->h.fd, (struct sockaddr *)&ss, &len) != 0) return 0;
  if (ss.ss_family == AF_INET) {
    memcpy(out, &((struct sockaddr_in *)&ss)->sin_addr, 4);
    return 4;
  }
  if (ss.ss_family == AF_INET6) {
    memcpy(out, &((struct sockaddr_in6 *)&ss)->sin6_addr, 8);
    return 8;
  }
  return 0;
}

static size_t input_limit(const worker *w) {
  const cfg *cf = w->cfg;
  size_t http = (size_t)cf->max_header_bytes + cf->max_body + HTTP_CHUNK_LINE_MAX;
  size_t ws = (size_t)cf->max_ws_message + WS_MAX_HEADER;
  return (http > ws ? http : ws) + WORKER_READ_SCRATCH;
}

conn_io *conn_io_get(conn *c) {
  if (c->io) return c->io;
  worker *w = conn_worker(c);
  conn_io *io = w->io_pool;
  if (io) {
    w->io_pool = io->next_free;
    w->io_pool_n--;
  } else {
    io = calloc(1, sizeof *io);
    if (!io) return NULL;
    buf_init(&io->in);
    buf_init(&io->out);
    buf_init(&io->msg);
    io->file_fd = -1;
  }
  io->next_free = NULL;
  ws_assembler_init(&io->wsa);
  c->io = io;
  return io;
}

static bool io_idle(const conn_io *io) {
  return io->in.len == 0 && io->out.len == io->out_off && io->msg.len == 0 &&
         !ws_assembler_in_message(&io->wsa) && !io->ck_active && !io->up &&
         !io->file_active;
}

static void shrink(buf_t *b) {
  if (b->cap > IO_KEEP_CAP)
    buf_free(b);
  else
    buf_reset(b);
}

static void io_release(conn *c) {
  conn_io *io = c->io;
  if (!io) return;
  c->io = NULL;
  worker *w = conn_worker(c);
  if (w->io_pool_n >= WORKER_IO_POOL) {
    buf_free(&io->in);
    buf_free(&io->out);
    buf_free(&io->msg);
    free(io);
    return;
  }
  shrink(&io->in);
  shrink(&io->out);
  shrink(&io->msg);
  io->out_off = 0;
  io->ck_active = false;
  io->ck_raw = io->ck_body = 0;
  io->continue_sent = false;
  io->up = NULL;
  io->up_ctx = NULL;
  io->file_active = false;
  io->file_fd = -1;
  io->next_free = w->io_pool;
  w->io_pool = io;
  w->io_pool_n++;
}

size_t conn_pending(const conn *c) {
  const worker *w = conn_worker(c);
  size_t n = c->io ? c->io->out.len - c->io->out_off : 0;
  if (w->out_owner == c) n += w->out.len;
  return n;
}

static void batch_touch(worker *w, conn *c) {
  for (size_t i = w->ntouched; i-- > 0 && i + 8 >= w->ntouched;)
    if (w->touched[i].c == c) return; /* recently touched: already listed */
  if (w->ntouched == w->captouched) {
    size_t cap = w->captouched ? 2 * w->captouched : 64;
    conn_ref *v = realloc(w->touched, cap * sizeof *v);
    if (!v) return; /* settled by its own next event instead */
    w->touched = v;
    w->captouched = cap;
  }
  w->touched[w->ntouched++] = conn_ref_of(c);
}

void conn_batch_begin(worker *w) {
  /* Whatever is gathered in the shared buffer goes first. */
  if (w->out_owner) conn_settle(w->out_owner);
  w->batch = true;
}

void conn_batch_end(worker *w) {
  w->batch = false;
  for (size_t i = 0; i < w->ntouched; i++) {
    conn *c = conn_ref_get(w->touched[i]);
    if (c) conn_settle(c);
  }
  w->ntouched = 0;
  if (w->captouched > 4096) {
    free(w->touched);
    w->touched = NULL;
    w->captouched = 0;
  }
}

buf_t *conn_out(conn *c) {
  worker *w = conn_worker(c);
  if (w->batch) {
    conn_io *io = conn_io_get(c);
    if (io) {
      batch_touch(w, c);
      return &io->out;
    }
  }
  if (c->io && c->io->out.len > c->io->out_off) return &c->io->out;
  if (w->out_owner && w->out_owner != c) {
    conn *prev = w->out_owner;
    conn_flush(prev);
    /* prev is settled by its own event; here only its bytes move. */
  }
  w->out_owner = c;
  return &w->out;
}

void conn_send_file(conn *c, int fd, uint64_t off, uint64_t len) {
  conn_io *io = len ? conn_io_get(c) : NULL;
  if (!io || io->file_active) {
    close(fd);
    if (len) conn_kill(c);
    return;
  }
  io->file_active = true;
  io->file_fd = fd;
  io->file_off = off;
  io->file_left = len;
}

static void file_end(conn_io *io) {
  if (!io->file_active) return;
  close(io->file_fd);
  io->file_fd = -1;
  io->file_active = false;
}

/* Appends the next piece of the file region while little is pending.
 * Returns true when it appended something. */
static bool file_pump(conn *c) {
  conn_io *io = c->io;
  if (!io || !io->file_active || (conn_flags(c) & CONN_F_DEAD) ||
      conn_pending(c) >= CONN_FILE_CHUNK)
    return false;
  size_t want = io->file_left < CONN_FILE_CHUNK ? (size_t)io->file_left : CONN_FILE_CHUNK;
  buf_t *out = conn_out(c);
  uint8_t *dst = buf_extend(out, want);
  if (!dst) {
    conn_kill(c);
    return false;
  }
  ssize_t k;
  do {
    k = pread(io->file_fd, dst, want, (off_t)io->file_off);
  } while (k < 0 && errno == EINTR);
  if (k <= 0) {
    out->len -= want;
    log_warn("fd %d: file body ended early (%s)", c->h.fd,
             k < 0 ? strerror(errno) : "EOF");
    conn_kill(c);
    return false;
  }
  out->len -= want - (size_t)k;
  io->file_off += (uint64_t)k;
  io->file_left -= (uint64_t)k;
  if (io->file_left == 0) file_end(io);
  return true;
}

void conn_timer(conn *c, uint32_t ms) {
  loop_timer_start(&conn_worker(c)->loop, &c->timer, ms);
}

/* One write attempt loop: returns bytes written, or -1 (error: c killed). */
static ssize_t write_some(conn *c, const uint8_t *p, size_t n) {
  size_t done = 0;
  while (done < n) {
    ssize_t k;
    if (c->tls)
      k = tls_write(c->tls, p + done, n - done);
    else {
      k = send(c->h.fd, p + done, n - done, MSG_NOSIGNAL);
      if (k < 0) k = (errno == EAGAIN || errno == EWOULDBLOCK) ? -EAGAIN : -errno;
      if (k == -EINTR) continue;
    }
    if (k == -EAGAIN) break;
    if (k <= 0) {
      metrics_inc(M_ERR_IO);
      conn_kill(c);
      return -1;
    }
    done += (size_t)k;
  }
  return (ssize_t)done;
}

void conn_flush(conn *c) {
  worker *w = conn_worker(c);
  if (conn_flags(c) & CONN_F_DEAD) {
    if (w->out_owner == c) {
      w->out.len = 0;
      w->out_owner = NULL;
    }
    return;
  }
  if (w->out_owner == c) {
    w->out_owner = NULL;
    ssize_t k = 0;
    if (w->out.err) {
      conn_kill(c); /* out of memory building output */
    } else if (!(c->io && c->io->out.len > c->io->out_off)) {
      k = write_some(c, w->out.ptr, w->out.len);
    }
    if (k >= 0 && (size_t)k < w->out.len && !(conn_flags(c) & CONN_F_DEAD)) {
      conn_io *io = conn_io_get(c);
      if (!io || buf_append(&io->out, w->out.ptr + k, w->out.len - (size_t)k) != 0)
        conn_kill(c);
    }
    if (w->out.cap > 256 * 1024)
      buf_free(&w->out);
    else
      buf_reset(&w->out);
    if (conn_flags(c) & CONN_F_DEAD) return;
  } else if (c->io && c->io->out.len > c->io->out_off) {
    conn_io *io = c->io;
    ssize_t k = write_some(c, io->out.ptr + io->out_off, io->out.len - io->out_off);
    if (k < 0) return;
    io->out_off += (size_t)k;
  }
  conn_io *io = c->io;
  if (io && io->out_off == io->out.len) {
    io->out.len = io->out_off = 0;
  } else if (io && io->out_off > 64 * 1024 && io->out_off * 2 > io->out.len) {
    memmove(io->out.ptr, io->out.ptr + io->out_off, io->out.len - io->out_off);
    io->out.len -= io->out_off;
    io->out_off = 0;
  }
  if (conn_pending(c) > w->cfg->max_write_buffer) {
    metrics_inc(M_ERR_SLOW);
    log_debug("fd %d: slow reader dropped (%zu bytes pending)", c->h.fd, conn_pending(c));
    conn_kill(c);
  }
}

void conn_linger(conn *c) {
  worker *w = conn_worker(c);
  if (conn_state(c) == CONN_WS || conn_state(c) == CONN_WS_CLOSING) wsd_on_close(c);
  if (c->tls) tls_shutdown(c->tls);
  shutdown(c->h.fd, SHUT_WR);
  conn_state(c) = CONN_LINGER;
  conn_flags(c) &= (uint8_t) ~(CONN_F_CLOSE_AFTER | CONN_F_PAUSED);
  if (conn_flags(c) & CONN_F_EOF)
    conn_kill(c);
  else
    conn_timer(c, w->cfg->close_timeout_ms);
}

void conn_close(conn *c) {
  worker *w = conn_worker(c);
  uint8_t st = conn_state(c);
  if (st == CONN_FREE) return;
  if (st == CONN_WS || st == CONN_WS_CLOSING) wsd_on_close(c);
  loop_timer_stop(&w->loop, &c->timer);
  loop_del(&w->loop, &c->h);
  if (c->tls) tls_conn_free(c->tls);
  c->tls = NULL;
  close(c->h.fd);
  if (w->out_owner == c) {
    buf_reset(&w->out);
    w->out_owner = NULL;
  }
  if (c->io) {
    if (c->io->up) httpd_on_close(c);
    file_end(c->io);
    c->io->in.len = c->io->msg.len = 0;
    c->io->out.len = c->io->out_off = 0;
    io_release(c);
  }
  metrics_add(M_CONN_OPEN, -1);
  worker_conn_free(w, c);
  if (w->draining && w->nconns == 0) loop_stop(&w->loop);
}

/* Parses buffered input in whatever state the conn is in; an HTTP upgrade
 * hands the rest of the buffer to the WebSocket parser. Returns bytes used. */
static size_t process(conn *c, uint8_t *p, size_t n) {
  size_t off = 0;
  while (off < n && !(conn_flags(c) & (CONN_F_DEAD | CONN_F_PAUSED))) {
    uint8_t st = conn_state(c);
    size_t k;
    if (st == CONN_HTTP)
      k = httpd_input(c, p + off, n - off);
    else if (st == CONN_WS || st == CONN_WS_CLOSING)
      k = wsd_input(c, p + off, n - off);
    else
      k = n - off; /* lingering: discard */
    off += k;
    if (conn_state(c) == st) break;
  }
  return off;
}

/* Consumes the conn's own buffered input (after a pause or a new state). */
static void process_buffered(conn *c) {
  conn_io *io = c->io;
  if (!io || io->in.len == 0) return;
  size_t used = process(c, io->in.ptr, io->in.len);
  if (!c->io) return;
  memmove(io->in.ptr, io->in.ptr + used, io->in.len - used);
  io->in.len -= used;
}

static void on_eof(conn *c) {
  conn_flags(c) |= CONN_F_EOF;
  uint8_t st = conn_state(c);
  if (st == CONN_HTTP && conn_pending(c) > 0)
    conn_flags(c) |= CONN_F_CLOSE_AFTER;
  else
    conn_kill(c);
}

static void do_read(conn *c) {
  worker *w = conn_worker(c);
  if (conn_state(c) == CONN_TLS_HANDSHAKE) {
    int rc = tls_handshake(c->tls);
    if (rc < 0) {
      metrics_inc(M_ERR_TLS);
      log_debug("fd %d: TLS handshake failed", c->h.fd);
      conn_kill(c);
      return;
    }
    if (rc == 0) return;
    conn_state(c) = CONN_HTTP;
    conn_timer(c, w->cfg->http_idle_timeout_ms);
  }
  int budget = c->tls ? 1024 : 16;
  size_t limit = input_limit(w);
  while (budget-- > 0 && !(conn_flags(c) & (CONN_F_DEAD | CONN_F_PAUSED | CONN_F_EOF))) {
    conn_io *io = c->io;
    uint8_t *dst;
    size_t cap;
    bool own = io && io->in.len > 0;
    if (own) {
      if (io->in.len >= limit) {
        metrics_inc(M_ERR_PROTOCOL);
        conn_kill(c);
        return;
      }
      if (buf_reserve(&io->in, 16 * 1024) != 0) {
        conn_kill(c);
        return;
      }
      dst = io->in.ptr + io->in.len;
      cap = io->in.cap - io->in.len;
    } else {
      dst = w->rscratch;
      cap = WORKER_READ_SCRATCH;
    }
    ssize_t n;
    if (c->tls)
      n = tls_read(c->tls, dst, cap);
    else {
      n = recv(c->h.fd, dst, cap, 0);
      if (n < 0) n = (errno == EAGAIN || errno == EWOULDBLOCK) ? -EAGAIN : -errno;
    }
    if (n == -EINTR) continue;
    if (n == -EAGAIN) break;
    if (n < 0) {
      if (n != -ECONNRESET) metrics_inc(M_ERR_IO);
      conn_kill(c);
      return;
    }
    if (n == 0) {
      on_eof(c);
      return;
    }
    if (own) {
      io->in.len += (size_t)n;
      process_buffered(c);
    } else {
      size_t used = process(c, dst, (size_t)n);
      if (used < (size_t)n && !(conn_flags(c) & CONN_F_DEAD)) {
        io = conn_io_get(c);
        if (!io || buf_append(&io->in, dst + used, (size_t)n - used) != 0) conn_kill(c);
      }
    }
  }
}

static void settle_timer(conn *c) {
  if (conn_state(c) == CONN_HTTP) httpd_arm_timer(c);
}

void conn_settle(conn *c) {
  if (conn_state(c) == CONN_FREE) return;
  worker *w = conn_worker(c);
  if (w->batch) {
    batch_touch(w, c);
    return;
  }
  for (int round = 0; round < 4; round++) {
    conn_flush(c);
    if (file_pump(c)) continue; /* a file body: the next piece, then flush it */
    /* Output drained far enough: parse the input held back. */
    if (!(conn_flags(c) & CONN_F_DEAD) && (conn_flags(c) & CONN_F_PAUSED) &&
        conn_pending(c) <= w->cfg->max_write_buffer / 4) {
      conn_flags(c) &= (uint8_t)~CONN_F_PAUSED;
      process_buffered(c);
      if (c->tls && !(conn_flags(c) & CONN_F_PAUSED))
        do_read(c); /* SSL may hold records */
      continue;
    }
    break;
  }
  uint8_t f = conn_flags(c);
  if (!(f & CONN_F_DEAD) && (f & CONN_F_CLOSE_AFTER) && conn_pending(c) == 0 &&
      !conn_sending_file(c))
    conn_linger(c);
  if (conn_flags(c) & CONN_F_DEAD) {
    conn_close(c);
    return;
  }
  settle_timer(c);
  if (c->io && io_idle(c->io)) io_release(c);
  unsigned ev = 0;
  if (!(conn_flags(c) & (CONN_F_PAUSED | CONN_F_EOF))) ev |= LOOP_IN;
  if (conn_pending(c) > 0 || conn_sending_file(c)) ev |= LOOP_OUT;
  if (loop_mod(&w->loop, &c->h, ev) != 0) conn_close(c);
}

void conn_on_io(loop_t *l, loop_handle *h, unsigned events) {
  (void)l;
  conn *c = (conn *)h;
  if (events & LOOP_OUT) conn_flush(c);
  if (events & (LOOP_IN | LOOP_ERR)) do_read(c);
  conn_settle(c);
}

void conn_on_timer(loop_t *l, loop_timer *t) {
  (void)l;
  conn *c = (conn *)((char *)t - offsetof(conn, timer));
  switch (conn_state(c)) {
  case CONN_HTTP: httpd_on_timeout(c); break;
  case CONN_WS: wsd_on_timeout(c); break;
  case CONN_TLS_HANDSHAKE:
  case CONN_WS_CLOSING:
    metrics_inc(M_ERR_TIMEOUT);
    conn_kill(c);
    break;
  default: conn_kill(c); break;
  }
  conn_settle(c);
}

int conn_accept(worker *w, int fd) {
  if (w->nconns >= w->cfg->max_connections || w->draining) {
    metrics_inc(M_CONN_REJECTED);
    close(fd);
    return -EMFILE;
  }
  conn *c = worker_conn_alloc(w);
  if (!c) {
    close(fd);
    return -ENOMEM;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  c->h.fd = fd;
  c->h.kind = KIND_CONN;
  c->timer.kind = TIMER_CONN;
  if (w->tls) {
    c->tls = tls_conn_new(w->tls, fd);
    if (!c->tls) {
      worker_conn_free(w, c);
      close(fd);
      return -ENOMEM;
    }
    conn_state(c) = CONN_TLS_HANDSHAKE;
  } else {
    conn_state(c) = CONN_HTTP;
  }
  if (loop_add(&w->loop, &c->h, LOOP_IN) != 0) {
    int e = -errno;
    if (c->tls) tls_conn_free(c->tls);
    c->tls = NULL;
    worker_conn_free(w, c);
    close(fd);
    return e;
  }
  metrics_inc(M_CONN_OPEN);
  metrics_inc(M_CONN_TOTAL);
  conn_timer(c, w->tls ? w->cfg->request_timeout_ms : w->cfg->http_idle_timeout_ms);
  return 0;
}
