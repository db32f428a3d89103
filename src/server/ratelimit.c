#include "server/ratelimit.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sodium.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tessera/error.h"

#define WAYS 4

typedef struct {
  uint64_t key; /* 0: free */
  uint64_t at_ms;
  double tokens;
} bucket;

typedef struct {
  alignas(64) _Atomic int32_t holder; /* pid inside, or 0 */
  bucket b[WAYS];
} set;

typedef struct {
  uint8_t hash_key[crypto_shorthash_KEYBYTES];
  set sets[RATELIMIT_SETS];
} table;

static table *tab;
static int32_t self_pid; /* cached: getpid() is a system call */

static void child_after_fork(void) { self_pid = (int32_t)getpid(); }

/* Defaults; main replaces the request kinds from the configuration. */
static ratelimit_policy policy[RL_KINDS] = {
    [RL_REGISTER_ADDR] = {30, 1.0 / 10},        [RL_LOGIN_ADDR] = {60, 1.0},
    [RL_LOGIN_ACCOUNT] = {10, 1.0 / 6},         [RL_LINK_ADDR] = {10, 1.0 / 6},
    [RL_LINK_CODE_ACCOUNT] = {10, 1.0 / 30},    [RL_PHONE_SEND_ACCOUNT] = {5, 1.0 / 60},
    [RL_PHONE_VERIFY_ACCOUNT] = {10, 1.0 / 30}, [RL_REQUEST_ADDR] = {1000, 500},
    [RL_REQUEST_ACCOUNT] = {200, 50},           [RL_KP_CLAIM_ACCOUNT] = {200, 2},
};

int ratelimit_init(void) {
  if (tab) return 0;
  void *p =
      mmap(NULL, sizeof *tab, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return TSR_ENOMEM;
  tab = p; /* anonymous mappings are zeroed: every set free, no holder */
  randombytes_buf(tab->hash_key, sizeof tab->hash_key);
  self_pid = (int32_t)getpid();
  static bool registered;
  if (!registered && pthread_atfork(NULL, NULL, child_after_fork) == 0) registered = true;
  return 0;
}

void ratelimit_free(void) {
  if (tab) munmap(tab, sizeof *tab);
  tab = NULL;
}

void ratelimit_set_policy(enum ratelimit_kind kind, ratelimit_policy p) {
  if ((unsigned)kind < RL_KINDS) policy[kind] = p;
}

static void lock_set(set *s, int32_t self) {
  for (unsigned spins = 1;; spins++) {
    int32_t held = 0;
    if (atomic_compare_exchange_weak_explicit(&s->holder, &held, self,
                                              memory_order_acquire, memory_order_relaxed))
      return;
    if (spins % 64 == 0) {
      /* Long enough for a live holder to be off the CPU: is it alive? */
      if (held != 0 && kill(held, 0) != 0 && errno == ESRCH &&
          atomic_compare_exchange_strong_explicit(
              &s->holder, &held, self, memory_order_acquire, memory_order_relaxed))
        return;
      sched_yield();
    }
  }
}

uint32_t ratelimit_take(enum ratelimit_kind kind, const void *id, size_t n,
                        uint64_t now_ms) {
  if (!tab || (unsigned)kind >= RL_KINDS || policy[kind].burst <= 0) return 0;
  uint8_t in[1 + 64];
  if (n > 64) n = 64;
  in[0] = (uint8_t)kind;
  if (n) memcpy(in + 1, id, n);
  uint8_t h[crypto_shorthash_BYTES];
  crypto_shorthash(h, in, n + 1, tab->hash_key);
  uint64_t key;
  memcpy(&key, h, sizeof key);
  if (key == 0) key = 1;
  double burst = policy[kind].burst, rate = policy[kind].rate;

  set *s = &tab->sets[key % RATELIMIT_SETS];
  lock_set(s, self_pid ? self_pid : (int32_t)getpid());
  bucket *b = NULL, *victim = &s->b[0];
  for (int i = 0; i < WAYS && !b; i++) {
    if (s->b[i].key == key)
      b = &s->b[i];
    else if (victim->key != 0 && (s->b[i].key == 0 || s->b[i].at_ms < victim->at_ms))
      victim = &s->b[i];
  }
  if (!b) {
    b = victim;
    *b = (bucket){key, now_ms, burst};
  }
  if (now_ms > b->at_ms) b->tokens += (double)(now_ms - b->at_ms) / 1000.0 * rate;
  if (b->tokens > burst) b->tokens = burst;
  if (now_ms > b->at_ms) b->at_ms = now_ms;
  uint32_t wait = 0;
  if (b->tokens >= 1.0)
    b->tokens -= 1.0;
  else
    wait = rate > 0 ? (uint32_t)((1.0 - b->tokens) / rate) + 1 : UINT32_MAX;
  atomic_store_explicit(&s->holder, 0, memory_order_release);
  return wait;
}
