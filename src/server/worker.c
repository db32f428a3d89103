#define _GNU_SOURCE /* accept4 */
#include "server/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/httpd.h"
#include "server/log.h"
#include "server/metrics.h"
#include "server/wsd.h"
#include "tessera/error.h"

worker *worker_self;

static int (*hook_start)(worker *w);
static void (*hook_stop)(worker *w);

void worker_set_hooks(int (*on_start)(worker *w), void (*on_stop)(worker *w)) {
  hook_start = on_start;
  hook_stop = on_stop;
}

static void on_store(loop_t *l, loop_handle *h, unsigned events) {
  (void)h;
  (void)events;
  worker *w = l->data;
  store_client_drain(w->sc);
}

static int store_open_cfg(const cfg *c, store **out) {
  char err[256] = "";
  store_opts o = {.migrations = server_schema,
                  .n_migrations = server_schema_len,
                  .errbuf = err,
                  .errbuf_len = sizeof err};
  int rc = store_open(c->data_dir, &o, out);
  if (rc) log_error("store %s: %s %s", c->data_dir, tsr_errname(rc), err);
  return rc;
}

int worker_prepare_store(const cfg *c) {
  store *st = NULL;
  int rc = store_open_cfg(c, &st);
  store_close(st);
  return rc;
}

static int open_store(worker *w) {
  int rc = store_open_cfg(w->cfg, &w->store);
  if (rc) return rc;
  if ((rc = store_client_new(w->store, &w->sc)) != 0) {
    log_error("store client: %s", tsr_errname(rc));
    return rc;
  }
  w->store_h.fd = store_client_fd(w->sc);
  w->store_h.kind = KIND_STORE;
  loop_set_io_cb(&w->loop, KIND_STORE, on_store);
  if (loop_add(&w->loop, &w->store_h, LOOP_IN) != 0) {
    log_error("epoll: %s", strerror(errno));
    return TSR_EIO;
  }
  return 0;
}

conn *worker_conn_alloc(worker *w) {
  if (!w->free_conns) {
    conn_chunk *ch = calloc(1, sizeof *ch);
    if (!ch) return NULL;
    ch->next = w->chunks;
    w->chunks = ch;
    /* Thread the new conns onto the free list, lowest address first. */
    for (int i = WORKER_SLAB_CHUNK - 1; i >= 0; i--) {
      ch->conns[i].io = (conn_io *)w->free_conns;
      w->free_conns = &ch->conns[i];
    }
  }
  conn *c = w->free_conns;
  w->free_conns = (conn *)c->io;
  uint32_t gen = c->gen;
  memset(c, 0, sizeof *c);
  c->gen = gen;
  c->h.fd = -1;
  w->nconns++;
  return c;
}

void worker_conn_free(worker *w, conn *c) {
  c->gen++;
  conn_state(c) = CONN_FREE;
  conn_flags(c) = 0;
  c->h.kind = KIND_DEAD; /* a stale epoll event for it is ignored */
  c->h.fd = -1;
  c->session = NULL;
  c->tls = NULL;
  c->io = (conn_io *)w->free_conns;
  w->free_conns = c;
  w->nconns--;
}

static int open_listener(const worker_addr *a) {
  int fd = socket(a->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
      bind(fd, (const struct sockaddr *)&a->addr, a->addrlen) != 0 ||
      listen(fd, 4096) != 0) {
    int e = -errno;
    close(fd);
    return e;
  }
  return fd;
}

static void on_accept(loop_t *l, loop_handle *h, unsigned events) {
  (void)events;
  worker *w = l->data;
  for (int i = 0; i < 64; i++) {
    int fd = accept4(h->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        /* Out of descriptors: stop accepting for a moment instead of
         * spinning on a level-triggered listener. */
        metrics_inc(M_CONN_REJECTED);
        log_warn("accept: %s; pausing accepts", strerror(errno));
        loop_mod(l, h, 0);
        loop_timer_start(l, &w->accept_timer, 250);
      }
      return;
    }
    conn_accept(w, fd);
  }
}

static void on_accept_timer(loop_t *l, loop_timer *t) {
  (void)t;
  worker *w = l->data;
  if (!w->draining) loop_mod(l, &w->listener, LOOP_IN);
}

static void on_stats_timer(loop_t *l, loop_timer *t) {
  struct mallinfo2 mi = mallinfo2();
  metrics_set(M_HEAP_BYTES, (uint64_t)(mi.uordblks + mi.hblkhd));
  loop_timer_start(l, t, 1000);
}

static void on_drain_timer(loop_t *l, loop_timer *t) {
  (void)t;
  worker *w = l->data;
  log_warn("drain timeout: closing %u connections", w->nconns);
  loop_stop(l);
}

void worker_drain(worker *w) {
  if (w->draining) return;
  w->draining = true;
  log_info("draining %u connections", w->nconns);
  if (w->listener.fd >= 0) {
    loop_del(&w->loop, &w->listener);
    close(w->listener.fd);
    w->listener.fd = -1;
  }
  loop_timer_stop(&w->loop, &w->accept_timer);
  loop_timer_stop(&w->loop, &w->stats_timer);
  loop_timer_start(&w->loop, &w->drain_timer, w->cfg->drain_timeout_ms);
  for (conn_chunk *ch = w->chunks; ch; ch = ch->next) {
    for (int i = 0; i < WORKER_SLAB_CHUNK; i++) {
      conn *c = &ch->conns[i];
      switch (conn_state(c)) {
      case CONN_FREE: continue;
      case CONN_HTTP: httpd_drain(c); break;
      case CONN_WS: wsd_close(c, WS_CLOSE_GOING_AWAY, "server shutting down"); break;
      case CONN_TLS_HANDSHAKE: conn_kill(c); break;
      default: break;
      }
      conn_settle(c);
    }
  }
  if (w->nconns == 0) loop_stop(&w->loop);
}

static void on_signal(loop_t *l, loop_handle *h, unsigned events) {
  (void)events;
  worker *w = l->data;
  struct signalfd_siginfo si;
  while (read(h->fd, &si, sizeof si) == (ssize_t)sizeof si) {
    if (si.ssi_signo == SIGHUP) {
      int rc = log_reopen();
      if (rc)
        log_error("reopening the log: %s", strerror(-rc));
      else
        log_info("log reopened");
    } else if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
      worker_drain(w);
    }
  }
}

static void close_all(worker *w) {
  for (conn_chunk *ch = w->chunks; ch; ch = ch->next)
    for (int i = 0; i < WORKER_SLAB_CHUNK; i++)
      if (conn_state(&ch->conns[i]) != CONN_FREE) conn_close(&ch->conns[i]);
}

static void worker_free(worker *w) {
  close_all(w);
  if (w->hook_started && hook_stop) hook_stop(w);
  /* Waits for the jobs in flight; their completions find their conns gone. */
  if (w->sc) {
    if (w->store_h.fd >= 0) loop_del(&w->loop, &w->store_h);
    store_client_free(w->sc);
  }
  store_close(w->store);
  while (w->chunks) {
    conn_chunk *n = w->chunks->next;
    free(w->chunks);
    w->chunks = n;
  }
  while (w->io_pool) {
    conn_io *n = w->io_pool->next_free;
    buf_free(&w->io_pool->in);
    buf_free(&w->io_pool->out);
    buf_free(&w->io_pool->msg);
    free(w->io_pool);
    w->io_pool = n;
  }
  free(w->rscratch);
  free(w->toks);
  free(w->touched);
  free(w->hdrs);
  buf_free(&w->out);
  buf_free(&w->body);
  buf_free(&w->reply);
  if (w->listener.fd >= 0) close(w->listener.fd);
  if (w->sig.fd >= 0) close(w->sig.fd);
  loop_deinit(&w->loop);
}

int worker_main(const cfg *c, int index, const worker_addr *addr, SSL_CTX *tls) {
  static worker w; /* large (timer wheel); one per process */
  memset(&w, 0, sizeof w);
  worker_self = &w;
  w.cfg = c;
  w.index = index;
  w.tls = tls;
  w.listener.fd = w.sig.fd = w.store_h.fd = -1;
  w.hlim = (http_limits){c->max_header_bytes, c->max_headers, c->max_target, c->max_body};
  w.wlim = (ws_limits){c->max_ws_message, c->max_ws_message, false};
  buf_init(&w.out);
  buf_init(&w.body);
  buf_init(&w.reply);
  int rc = loop_init(&w.loop);
  if (rc) {
    log_error("event loop: %s", strerror(-rc));
    return 2;
  }
  w.loop.data = &w;
  w.rscratch = malloc(WORKER_READ_SCRATCH);
  w.toks = malloc(sizeof(json_token) * WORKER_MAX_TOKENS);
  w.hdrs = malloc(sizeof(http_header) * c->max_headers);
  if (!w.rscratch || !w.toks || !w.hdrs) {
    log_error("out of memory");
    worker_free(&w);
    return 2;
  }
  loop_set_io_cb(&w.loop, KIND_CONN, conn_on_io);
  loop_set_io_cb(&w.loop, KIND_LISTEN, on_accept);
  loop_set_io_cb(&w.loop, KIND_SIGNAL, on_signal);
  loop_set_timer_cb(&w.loop, TIMER_CONN, conn_on_timer);
  loop_set_timer_cb(&w.loop, TIMER_DRAIN, on_drain_timer);
  loop_set_timer_cb(&w.loop, TIMER_ACCEPT, on_accept_timer);
  w.drain_timer.kind = TIMER_DRAIN;
  w.accept_timer.kind = TIMER_ACCEPT;
  w.stats_timer.kind = TIMER_STATS;
  loop_set_timer_cb(&w.loop, TIMER_STATS, on_stats_timer);
  on_stats_timer(&w.loop, &w.stats_timer);

  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  sigprocmask(SIG_BLOCK, &set, NULL);
  w.sig.fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  w.sig.kind = KIND_SIGNAL;
  rc = open_listener(addr);
  if (w.sig.fd < 0 || rc < 0) {
    log_error("listen: %s", strerror(rc < 0 ? -rc : errno));
    worker_free(&w);
    return 2;
  }
  w.listener.fd = rc;
  w.listener.kind = KIND_LISTEN;
  if (loop_add(&w.loop, &w.sig, LOOP_IN) != 0 ||
      loop_add(&w.loop, &w.listener, LOOP_IN) != 0) {
    log_error("epoll: %s", strerror(errno));
    worker_free(&w);
    return 2;
  }
  if (open_store(&w) != 0 || (hook_start && hook_start(&w) != 0)) {
    worker_free(&w);
    return 2;
  }
  w.hook_started = true;
  log_debug("worker %d ready", index);
  rc = loop_run(&w.loop);
  if (rc) log_error("event loop: %s", strerror(-rc));
  worker_free(&w);
  log_info("worker %d stopped", index);
  return rc ? 1 : 0;
}
