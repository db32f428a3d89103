/* Rate limits shared by every worker process: token buckets keyed by
 * (kind, identifier), e.g. (login attempts, source address) or (requests,
 * account).
 *
 * The master maps one MAP_SHARED anonymous table before it forks, so a
 * client spreading its connections over the workers still meets one
 * bucket, not one per worker. The table is a fixed-size cache, 4-way set
 * associative (the bucket refilled longest ago in a set is evicted): an
 * evicted bucket comes back full, so under heavy key churn a limit errs
 * toward allowing.
 * Keys are SipHash (crypto_shorthash) of kind and identifier under a random
 * key chosen at startup, so a client cannot aim its keys at one slot.
 *
 * Each set has a lock word holding the pid of the process inside it; the
 * critical section is a few arithmetic operations. A waiter that spins for
 * long checks whether the holder still exists and takes the slot over if it
 * died (a worker killed inside the section), so a crash never wedges a
 * set.
 *
 * Threads: ratelimit_init/ratelimit_free on the master before the fork and
 * after the workers are gone; ratelimit_take from any worker's loop thread.
 * Without ratelimit_init (unit use) every take succeeds. */
#ifndef TSR_SERVER_RATELIMIT_H
#define TSR_SERVER_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

/* The kinds of bucket; each has its own policy. */
enum ratelimit_kind {
  RL_REGISTER_ADDR,        /* registrations per source address */
  RL_LOGIN_ADDR,           /* password logins per source address */
  RL_LOGIN_ACCOUNT,        /* per login name (unknown names count too) */
  RL_LINK_ADDR,            /* link-code redemptions per address */
  RL_LINK_CODE_ACCOUNT,    /* link codes issued per account */
  RL_PHONE_SEND_ACCOUNT,   /* phone codes sent per account */
  RL_PHONE_VERIFY_ACCOUNT, /* phone code attempts per account */
  RL_REQUEST_ADDR,         /* any request or op, per source address */
  RL_REQUEST_ACCOUNT,      /* any authenticated request or op, per account */
  RL_KP_CLAIM_ACCOUNT,     /* KeyPackage claims per claiming account */
  RL_KINDS
};

typedef struct {
  double burst; /* bucket size; 0 disables the kind */
  double rate;  /* tokens per second */
} ratelimit_policy;

#define RATELIMIT_SETS 16384 /* 4 buckets each, 128 bytes: 2 MiB shared */

/* Maps the shared table (zeroed) and picks the hash key. Returns 0 or
 * TSR_ENOMEM. */
int ratelimit_init(void);
void ratelimit_free(void);

/* Replaces the policy of one kind (before the fork). */
void ratelimit_set_policy(enum ratelimit_kind kind, ratelimit_policy p);

/* Takes one token from bucket (kind, id[0..n)) at time now_ms (a monotonic
 * clock, the same in every process). Returns 0, or the whole seconds until
 * a token is available (at least 1), for Retry-After. Identifiers longer
 * than 64 bytes are cut to 64. */
uint32_t ratelimit_take(enum ratelimit_kind kind, const void *id, size_t n,
                        uint64_t now_ms);

#endif
