/* The event loop: epoll, a hashed timer wheel and an eventfd for work posted
 * from other threads. One loop per worker process (see worker.h).
 *
 * Like Mosquitto's mux, the poller hides behind five calls - loop_add,
 * loop_mod, loop_del, loop_run, loop_stop - and like libuv the caller owns
 * the handles: a loop_handle and a loop_timer are embedded in the caller's
 * own struct (a connection), so registering allocates nothing. Dispatch is
 * by a small integer kind chosen by the caller (loop_set_io_cb and
 * loop_set_timer_cb), so a handle costs 8 bytes instead of a function
 * pointer and a context.
 *
 * Ownership: the loop never frees handles or timers. A handle must be
 * loop_del'ed before its fd is closed or its memory reused; a timer must be
 * stopped before its memory is reused (loop_timer_stop is idempotent).
 *
 * Threads: everything except loop_post runs on the loop's thread only.
 * loop_post may be called from any thread (it is how store completions will
 * reach the loop). */
#ifndef TSR_SERVER_LOOP_H
#define TSR_SERVER_LOOP_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define LOOP_KINDS 16         /* handle and timer kinds per loop */
#define LOOP_TICK_MS 50       /* timer resolution */
#define LOOP_WHEEL_SLOTS 1024 /* 51.2 s per revolution; longer timers wait rounds */

/* LOOP_IN/OUT map to EPOLLIN/EPOLLOUT; callbacks also see LOOP_ERR for
 * EPOLLERR|EPOLLHUP (treat as readable: read() reports the error). */
enum { LOOP_IN = 1, LOOP_OUT = 4, LOOP_ERR = 8 };

/* Registration of one fd. fd and kind are set by the caller before
 * loop_add; events is the loop's record of the current interest. */
typedef struct {
  int fd;
  uint8_t kind;
  uint8_t events;
  uint8_t spare[2]; /* free for the embedding struct */
} loop_handle;

/* An intrusive timer (24 bytes). Invariant: next == NULL iff not armed. */
typedef struct loop_timer {
  struct loop_timer *next, *prev;
  uint32_t expires; /* in ticks */
  uint8_t kind;
  uint8_t spare[3]; /* free for the embedding struct */
} loop_timer;

typedef struct loop loop_t;

/* Work handed to the loop from any thread. Caller-owned; it must stay valid
 * until fn runs (on the loop thread), which may free it. */
typedef struct loop_task {
  struct loop_task *next;
  void (*fn)(loop_t *l, struct loop_task *t);
} loop_task;

typedef void (*loop_io_cb)(loop_t *l, loop_handle *h, unsigned events);
typedef void (*loop_timer_cb)(loop_t *l, loop_timer *t);

struct loop {
  int epfd;
  int evfd; /* eventfd for loop_post */
  loop_handle wake;
  bool stop;
  uint64_t now_ms;  /* CLOCK_MONOTONIC at the start of this iteration */
  uint32_t tick;    /* last processed tick */
  uint32_t ntimers; /* armed timers */
  void *data;       /* the owner's context (the worker) */
  loop_io_cb io_cbs[LOOP_KINDS];
  loop_timer_cb timer_cbs[LOOP_KINDS];
  pthread_mutex_t post_mu;
  loop_task *posted;                  /* LIFO under post_mu; reversed when run */
  loop_timer wheel[LOOP_WHEEL_SLOTS]; /* sentinels of circular lists */
};

/* Initialises caller storage. Returns 0 or a negative errno. */
int loop_init(loop_t *l);
/* Releases the epoll and eventfd descriptors. Handles still registered are
 * simply forgotten (their fds are the caller's). */
void loop_deinit(loop_t *l);

void loop_set_io_cb(loop_t *l, uint8_t kind, loop_io_cb cb);
void loop_set_timer_cb(loop_t *l, uint8_t kind, loop_timer_cb cb);

/* The five poller calls. events is a mask of LOOP_IN/LOOP_OUT. Return 0 or
 * a negative errno. */
int loop_add(loop_t *l, loop_handle *h, unsigned events);
int loop_mod(loop_t *l, loop_handle *h, unsigned events); /* no-op if unchanged */
int loop_del(loop_t *l, loop_handle *h);
/* Runs until loop_stop; returns 0, or a negative errno if epoll fails. */
int loop_run(loop_t *l);
void loop_stop(loop_t *l);

/* Milliseconds of CLOCK_MONOTONIC, cached per iteration. */
static inline uint64_t loop_now(const loop_t *l) { return l->now_ms; }
/* Refreshes the cached time (after long work). */
void loop_update_time(loop_t *l);

/* Arms (or re-arms) t to fire once after ms milliseconds (rounded up to a
 * tick; at least one tick). t->kind selects the callback. O(1). */
void loop_timer_start(loop_t *l, loop_timer *t, uint32_t ms);
/* Disarms t if armed. O(1). */
void loop_timer_stop(loop_t *l, loop_timer *t);
static inline bool loop_timer_active(const loop_timer *t) { return t->next != NULL; }

/* Thread-safe: queues t and wakes the loop. */
void loop_post(loop_t *l, loop_task *t);

#endif
