/* Server metrics shared by every worker process, exported at GET /metrics
 * in the Prometheus text format (version 0.0.4).
 *
 * The master maps one MAP_SHARED anonymous region before it forks; each
 * worker owns one slot and is its only writer, so counters need no locks:
 * relaxed atomics keep readers (any worker serving /metrics sums all slots)
 * from seeing torn values. A restarted worker keeps its slot's counters and
 * zeroes its gauges.
 *
 * Threads: metrics_init/metrics_free on the master before/after the
 * workers; the rest from a worker's loop thread (any thread is safe). */
#ifndef TSR_SERVER_METRICS_H
#define TSR_SERVER_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "common/bytes.h"

#define METRICS_MAX_WORKERS 256
/* Request latency buckets, upper bounds in microseconds (+Inf implied). */
#define METRICS_LAT_BUCKETS 10
extern const uint32_t metrics_lat_bounds_us[METRICS_LAT_BUCKETS];

enum metrics_counter {
  M_CONN_OPEN,     /* gauge: open TCP connections */
  M_CONN_TOTAL,    /* accepted connections */
  M_CONN_REJECTED, /* over max_connections or fd limit */
  M_WS_OPEN,       /* gauge: open WebSocket sessions */
  M_WS_TOTAL,      /* upgrades */
  M_WS_MSG_IN,     /* WebSocket data messages received */
  M_WS_MSG_OUT,    /* WebSocket data messages sent */
  M_HTTP_1XX,      /* final status classes of HTTP responses (101 counted) */
  M_HTTP_2XX,
  M_HTTP_3XX,
  M_HTTP_4XX,
  M_HTTP_5XX,
  M_ERR_PROTOCOL, /* connections closed for malformed HTTP or WebSocket */
  M_ERR_TIMEOUT,  /* connections closed by a request, idle-ping or close timeout */
  M_ERR_SLOW,     /* slow readers dropped (pending output over the limit) */
  M_ERR_IO,       /* read/write errors and resets */
  M_ERR_TLS,      /* failed TLS handshakes */
  M_HEAP_BYTES,   /* gauge: malloc'ed bytes in use (mallinfo2), refreshed each second */
  M_LAT_COUNT,    /* requests in the latency histogram */
  M_LAT_SUM_US,   /* sum of their latency in microseconds */
  M_LAT_BUCKET0,  /* M_LAT_BUCKET0 + i: cumulative count <= bound i */
  M_COUNTERS = M_LAT_BUCKET0 + METRICS_LAT_BUCKETS,
};

typedef struct {
  _Atomic uint64_t v[M_COUNTERS];
} metrics_slot;

/* Maps the shared region for nworkers slots. Returns 0 or a negative errno. */
int metrics_init(int nworkers);
void metrics_free(void);

/* Selects the slot this process writes (worker index); zeroes its gauges. */
void metrics_bind(int worker);

void metrics_add(enum metrics_counter c, int64_t delta);
static inline void metrics_inc(enum metrics_counter c) { metrics_add(c, 1); }
/* Sets a gauge of this process's slot. */
void metrics_set(enum metrics_counter c, uint64_t v);
/* Counts one HTTP response by status class. */
void metrics_http_status(int status);
/* Records one request latency. */
void metrics_latency_us(uint64_t us);

/* Appends the exposition text summed over all slots. Returns 0 or TSR_ENOMEM. */
int metrics_render(buf_t *out);

#endif
