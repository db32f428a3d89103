#include "server/loop.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define KIND_WAKE (LOOP_KINDS) /* internal: not a user kind */

static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void loop_update_time(loop_t *l) { l->now_ms = mono_ms(); }

int loop_init(loop_t *l) {
  memset(l, 0, sizeof *l);
  l->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (l->epfd < 0) return -errno;
  l->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (l->evfd < 0) {
    int e = -errno;
    close(l->epfd);
    return e;
  }
  pthread_mutex_init(&l->post_mu, NULL);
  for (int i = 0; i < LOOP_WHEEL_SLOTS; i++)
    l->wheel[i].next = l->wheel[i].prev = &l->wheel[i];
  loop_update_time(l);
  l->tick = (uint32_t)(l->now_ms / LOOP_TICK_MS);
  l->wake.fd = l->evfd;
  l->wake.kind = KIND_WAKE;
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &l->wake};
  if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->evfd, &ev) != 0) {
    int e = -errno;
    loop_deinit(l);
    return e;
  }
  return 0;
}

void loop_deinit(loop_t *l) {
  if (l->epfd >= 0) close(l->epfd);
  if (l->evfd >= 0) close(l->evfd);
  l->epfd = l->evfd = -1;
  pthread_mutex_destroy(&l->post_mu);
}

void loop_set_io_cb(loop_t *l, uint8_t kind, loop_io_cb cb) {
  if (kind < LOOP_KINDS) l->io_cbs[kind] = cb;
}
void loop_set_timer_cb(loop_t *l, uint8_t kind, loop_timer_cb cb) {
  if (kind < LOOP_KINDS) l->timer_cbs[kind] = cb;
}

static uint32_t to_epoll(unsigned events) {
  return (events & LOOP_IN ? EPOLLIN : 0) | (events & LOOP_OUT ? EPOLLOUT : 0);
}

int loop_add(loop_t *l, loop_handle *h, unsigned events) {
  struct epoll_event ev = {.events = to_epoll(events), .data.ptr = h};
  if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, h->fd, &ev) != 0) return -errno;
  h->events = (uint8_t)events;
  return 0;
}

int loop_mod(loop_t *l, loop_handle *h, unsigned events) {
  if (h->events == events) return 0;
  struct epoll_event ev = {.events = to_epoll(events), .data.ptr = h};
  if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, h->fd, &ev) != 0) return -errno;
  h->events = (uint8_t)events;
  return 0;
}

int loop_del(loop_t *l, loop_handle *h) {
  if (epoll_ctl(l->epfd, EPOLL_CTL_DEL, h->fd, NULL) != 0) return -errno;
  h->events = 0;
  return 0;
}

void loop_stop(loop_t *l) { l->stop = true; }

static void unlink_timer(loop_timer *t) {
  t->prev->next = t->next;
  t->next->prev = t->prev;
  t->next = t->prev = NULL;
}

static void link_timer(loop_timer *head, loop_timer *t) {
  t->prev = head->prev;
  t->next = head;
  head->prev->next = t;
  head->prev = t;
}

void loop_timer_start(loop_t *l, loop_timer *t, uint32_t ms) {
  if (t->next)
    unlink_timer(t);
  else
    l->ntimers++;
  /* Ticks are counted from the last processed tick, so a timer never fires
   * early even when the loop is behind. */
  uint32_t now_tick = (uint32_t)(l->now_ms / LOOP_TICK_MS);
  uint32_t ticks = (ms + LOOP_TICK_MS - 1) / LOOP_TICK_MS + 1;
  t->expires = now_tick + ticks;
  link_timer(&l->wheel[t->expires % LOOP_WHEEL_SLOTS], t);
}

void loop_timer_stop(loop_t *l, loop_timer *t) {
  if (!t->next) return;
  unlink_timer(t);
  l->ntimers--;
}

/* Fires every timer due up to now. A slot is detached onto a local list
 * first, so callbacks may start or stop any timer, including others in it. */
static void run_timers(loop_t *l) {
  uint32_t now_tick = (uint32_t)(l->now_ms / LOOP_TICK_MS);
  uint32_t steps = now_tick - l->tick;
  if (steps > LOOP_WHEEL_SLOTS) steps = LOOP_WHEEL_SLOTS;
  if (l->ntimers == 0) {
    l->tick = now_tick;
    return;
  }
  for (uint32_t s = 0; s < steps; s++) {
    uint32_t slot = (now_tick - steps + 1 + s) % LOOP_WHEEL_SLOTS;
    loop_timer *head = &l->wheel[slot];
    if (head->next == head) continue;
    loop_timer local = {0};
    local.next = head->next;
    local.prev = head->prev;
    local.next->prev = &local;
    local.prev->next = &local;
    head->next = head->prev = head;
    while (local.next != &local) {
      loop_timer *t = local.next;
      unlink_timer(t);
      if ((int32_t)(t->expires - now_tick) > 0) {
        link_timer(head, t); /* a later round */
        continue;
      }
      l->ntimers--;
      loop_timer_cb cb = t->kind < LOOP_KINDS ? l->timer_cbs[t->kind] : NULL;
      if (cb) cb(l, t);
    }
  }
  l->tick = now_tick;
}

void loop_post(loop_t *l, loop_task *t) {
  pthread_mutex_lock(&l->post_mu);
  t->next = l->posted;
  l->posted = t;
  pthread_mutex_unlock(&l->post_mu);
  uint64_t one = 1;
  ssize_t w = write(l->evfd, &one, sizeof one);
  (void)w; /* EAGAIN means the counter is already non-zero: a wakeup is pending */
}

static void run_posted(loop_t *l) {
  uint64_t n;
  ssize_t r = read(l->evfd, &n, sizeof n);
  (void)r;
  pthread_mutex_lock(&l->post_mu);
  loop_task *t = l->posted;
  l->posted = NULL;
  pthread_mutex_unlock(&l->post_mu);
  loop_task *rev = NULL; /* restore posting order */
  while (t) {
    loop_task *nx = t->next;
    t->next = rev;
    rev = t;
    t = nx;
  }
  while (rev) {
    loop_task *nx = rev->next;
    rev->fn(l, rev);
    rev = nx;
  }
}

int loop_run(loop_t *l) {
  enum { MAX_EVENTS = 256 };
  struct epoll_event evs[MAX_EVENTS];
  l->stop = false;
  while (!l->stop) {
    int timeout = -1;
    if (l->ntimers) {
      uint64_t next = ((l->now_ms / LOOP_TICK_MS) + 1) * LOOP_TICK_MS;
      loop_update_time(l);
      timeout = next > l->now_ms ? (int)(next - l->now_ms) : 0;
    }
    int n = epoll_wait(l->epfd, evs, MAX_EVENTS, timeout);
    if (n < 0 && errno != EINTR) return -errno;
    loop_update_time(l);
    for (int i = 0; i < n && !l->stop; i++) {
      loop_handle *h = evs[i].data.ptr;
      unsigned e = (evs[i].events & EPOLLIN ? LOOP_IN : 0) |
                   (evs[i].events & EPOLLOUT ? LOOP_OUT : 0) |
                   (evs[i].events & (EPOLLERR | EPOLLHUP) ? LOOP_ERR : 0);
      if (h->kind == KIND_WAKE) {
        run_posted(l);
        continue;
      }
      loop_io_cb cb = h->kind < LOOP_KINDS ? l->io_cbs[h->kind] : NULL;
      if (cb) cb(l, h, e);
    }
    run_timers(l);
  }
  return 0;
}
