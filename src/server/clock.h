/* The server's wall clock for public content (posts, stories, comments,
 * notifications): Unix time in milliseconds, plus an offset that an admin
 * may move forward when the server runs with test_clock (POST
 * /v1/admin/clock), so tests see stories expire without sleeping.
 *
 * The offset lives in one shared anonymous page mapped by the master
 * before it forks, so every worker process reads the same clock. It only
 * grows, and is 0 unless test_clock is on.
 *
 * Threads: any; the offset is a relaxed atomic. */
#ifndef TSR_SERVER_CLOCK_H
#define TSR_SERVER_CLOCK_H

#include <stdint.h>

/* Master, before the fork: maps the shared offset. Returns 0 or TSR_ENOMEM. */
int clock_prepare(void);

/* Now, in milliseconds since the epoch (with the offset). */
int64_t clock_now_ms(void);

/* Moves the clock forward by ms (> 0). Returns the new offset. */
int64_t clock_advance(int64_t ms);

#endif
