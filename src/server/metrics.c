#include "server/metrics.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/mman.h>

#include "tessera/error.h"

const uint32_t metrics_lat_bounds_us[METRICS_LAT_BUCKETS] = {
    50, 100, 250, 500, 1000, 2500, 5000, 10000, 50000, 250000};

static metrics_slot *slots;
static int nslots;
static metrics_slot *mine;
static metrics_slot fallback; /* before metrics_init (unit use): process-local */

int metrics_init(int nworkers) {
  if (nworkers < 1 || nworkers > METRICS_MAX_WORKERS) return -EINVAL;
  void *p = mmap(NULL, sizeof(metrics_slot) * (size_t)nworkers, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return -errno;
  slots = p;
  nslots = nworkers;
  mine = &slots[0];
  return 0;
}

void metrics_free(void) {
  if (slots) munmap(slots, sizeof(metrics_slot) * (size_t)nslots);
  slots = NULL;
  nslots = 0;
  mine = NULL;
}

void metrics_bind(int worker) {
  if (!slots || worker < 0 || worker >= nslots) return;
  mine = &slots[worker];
  atomic_store_explicit(&mine->v[M_CONN_OPEN], 0, memory_order_relaxed);
  atomic_store_explicit(&mine->v[M_WS_OPEN], 0, memory_order_relaxed);
}

void metrics_add(enum metrics_counter c, int64_t delta) {
  metrics_slot *s = mine ? mine : &fallback;
  /* Single writer per slot: a load and a store suffice, and gauges may go
   * "negative" only transiently as unsigned wrap, which sums back. */
  atomic_fetch_add_explicit(&s->v[c], (uint64_t)delta, memory_order_relaxed);
}

void metrics_set(enum metrics_counter c, uint64_t v) {
  metrics_slot *s = mine ? mine : &fallback;
  atomic_store_explicit(&s->v[c], v, memory_order_relaxed);
}

void metrics_http_status(int status) {
  int cls = status / 100;
  if (cls < 1 || cls > 5) cls = 5;
  metrics_inc((enum metrics_counter)(M_HTTP_1XX + cls - 1));
}

void metrics_latency_us(uint64_t us) {
  metrics_inc(M_LAT_COUNT);
  metrics_add(M_LAT_SUM_US, (int64_t)us);
  for (int i = 0; i < METRICS_LAT_BUCKETS; i++)
    if (us <= metrics_lat_bounds_us[i])
      metrics_inc((enum metrics_counter)(M_LAT_BUCKET0 + i));
}

static uint64_t sum(enum metrics_counter c) {
  uint64_t t = 0;
  if (!slots) return atomic_load_explicit(&fallback.v[c], memory_order_relaxed);
  for (int i = 0; i < nslots; i++)
    t += atomic_load_explicit(&slots[i].v[c], memory_order_relaxed);
  return t;
}

static void line(buf_t *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void line(buf_t *out, const char *fmt, ...) {
  char tmp[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n > 0) buf_append(out, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static void simple(buf_t *out, const char *name, const char *type, const char *help,
                   enum metrics_counter c) {
  line(out, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name,
       (unsigned long long)sum(c));
}

int metrics_render(buf_t *out) {
  simple(out, "tessera_connections_open", "gauge", "Open TCP connections.", M_CONN_OPEN);
  simple(out, "tessera_connections_total", "counter", "Accepted TCP connections.",
         M_CONN_TOTAL);
  simple(out, "tessera_connections_rejected_total", "counter",
         "Connections refused over a connection limit.", M_CONN_REJECTED);
  simple(out, "tessera_websocket_sessions_open", "gauge", "Open WebSocket sessions.",
         M_WS_OPEN);
  simple(out, "tessera_websocket_sessions_total", "counter", "WebSocket upgrades.",
         M_WS_TOTAL);
  simple(out, "tessera_websocket_messages_received_total", "counter",
         "WebSocket data messages received.", M_WS_MSG_IN);
  simple(out, "tessera_websocket_messages_sent_total", "counter",
         "WebSocket data messages sent.", M_WS_MSG_OUT);
  simple(out, "tessera_heap_bytes", "gauge",
         "Heap bytes in use by the workers (mallinfo2, refreshed every second).",
         M_HEAP_BYTES);
  line(out, "# HELP tessera_http_responses_total HTTP responses by status class.\n"
            "# TYPE tessera_http_responses_total counter\n");
  for (int i = 0; i < 5; i++)
    line(out, "tessera_http_responses_total{class=\"%dxx\"} %llu\n", i + 1,
         (unsigned long long)sum((enum metrics_counter)(M_HTTP_1XX + i)));
  line(out, "# HELP tessera_errors_total Connections ended by an error, by kind.\n"
            "# TYPE tessera_errors_total counter\n");
  static const char *const kinds[] = {"protocol", "timeout", "slow_reader", "io", "tls"};
  for (int i = 0; i < 5; i++)
    line(out, "tessera_errors_total{kind=\"%s\"} %llu\n", kinds[i],
         (unsigned long long)sum((enum metrics_counter)(M_ERR_PROTOCOL + i)));
  line(out, "# HELP tessera_request_duration_seconds Time from a complete HTTP request "
            "or WebSocket message to its queued reply.\n"
            "# TYPE tessera_request_duration_seconds histogram\n");
  for (int i = 0; i < METRICS_LAT_BUCKETS; i++)
    line(out, "tessera_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
         metrics_lat_bounds_us[i] / 1e6,
         (unsigned long long)sum((enum metrics_counter)(M_LAT_BUCKET0 + i)));
  uint64_t n = sum(M_LAT_COUNT);
  line(out, "tessera_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
       (unsigned long long)n);
  line(out, "tessera_request_duration_seconds_sum %.6f\n", sum(M_LAT_SUM_US) / 1e6);
  line(out, "tessera_request_duration_seconds_count %llu\n", (unsigned long long)n);
  return out->err ? TSR_ENOMEM : 0;
}
