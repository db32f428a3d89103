/* The server's clock: see clock.h. */
#include "server/clock.h"

#include <stdatomic.h>
#include <sys/mman.h>
#include <time.h>

#include "tessera/error.h"

static _Atomic int64_t *offset_ms; /* shared page; NULL before clock_prepare */

int clock_prepare(void) {
  if (offset_ms) return 0;
  void *p = mmap(NULL, sizeof *offset_ms, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return TSR_ENOMEM;
  offset_ms = p;
  atomic_store(offset_ms, 0);
  return 0;
}

int64_t clock_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
  return offset_ms ? now + atomic_load_explicit(offset_ms, memory_order_relaxed) : now;
}

int64_t clock_advance(int64_t ms) {
  if (!offset_ms || ms <= 0) return offset_ms ? atomic_load(offset_ms) : 0;
  return atomic_fetch_add(offset_ms, ms) + ms;
}
