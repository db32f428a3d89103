/* HTTP request throughput and latency of tesserad.
 *
 * Starts tesserad (--workers W, a free port), registers one account (its
 * device token authenticates every /v1/devices request: all connections
 * share it), then for each target runs R measurements of T seconds after a
 * 1 s warm-up. A measurement forks P load-generator processes; each has its
 * own epoll loop and C keep-alive connections, and keeps D requests in
 * flight on each connection (D > 1 is HTTP/1.1 pipelining: the next
 * requests are written before the answers arrive). A request's latency is
 * from the write that carried it to the end of its answer, so with D > 1 it
 * includes the wait behind the requests ahead of it. Reported per target:
 * requests/s of every run and their median, and the latency percentiles
 * of the median run. Any answer other than 200 counts as an error.
 *
 *   bench_http [-w workers] [-p procs] [-c conns-per-proc] [-d depth]
 *              [-t seconds] [-r runs] [--only health|devices] [--server path]
 *
 * Defaults: W=2, P=2, C=32, D=1, T=3, R=5; tesserad next to this binary
 * (../tesserad). The load generator shares the machine's cores with the
 * server, so the figures are what the server does with part of the CPU. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_accounts.h"
#include "bench_util.h"

#define MAX_DEPTH 64
#define CONN_BUF (64 * 1024)
/* Latency histogram: 1 µs buckets below 10 ms, 100 µs buckets up to 1 s. */
#define FINE 10000
#define NBUCKETS (FINE + 9900 + 1)

typedef struct {
  uint64_t done, errors;
  uint32_t hist[NBUCKETS];
} result;

typedef struct {
  int fd;
  uint32_t inflight, head; /* ring of send times: head is the oldest */
  uint64_t sent_us[MAX_DEPTH];
  size_t len;
  char *buf;
} hconn;

static uint64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t now_ms(void) { return now_us() / 1000u; }

static size_t bucket_of(uint64_t us) {
  if (us < FINE) return (size_t)us;
  uint64_t b = FINE + (us - FINE) / 100;
  return b < NBUCKETS ? (size_t)b : NBUCKETS - 1;
}

static uint64_t bucket_us(size_t b) { return b < FINE ? b : FINE + (b - FINE) * 100; }

/* The latency (µs) below which fraction q of the samples fall. */
static uint64_t percentile(const result *r, double q) {
  uint64_t total = 0;
  for (size_t i = 0; i < NBUCKETS; i++) total += r->hist[i];
  if (!total) return 0;
  uint64_t want = (uint64_t)(q * (double)total), acc = 0;
  if (want >= total) want = total - 1;
  for (size_t i = 0; i < NBUCKETS; i++) {
    acc += r->hist[i];
    if (acc > want) return bucket_us(i);
  }
  return bucket_us(NBUCKETS - 1);
}

/* Writes n copies of req on c; stamps them. Returns false on error. */
static bool send_reqs(hconn *c, const char *req, size_t rl, uint32_t n, uint64_t t) {
  static char out[MAX_DEPTH * 512];
  for (uint32_t i = 0; i < n; i++) {
    memcpy(out + i * rl, req, rl);
    c->sent_us[(c->head + c->inflight + i) % MAX_DEPTH] = t;
  }
  size_t len = rl * n, off = 0;
  while (off < len) { /* a few hundred bytes: the socket buffer takes them */
    ssize_t k = write(c->fd, out + off, len - off);
    if (k < 0 && errno == EAGAIN) {
      struct pollfd p = {.fd = c->fd, .events = POLLOUT};
      poll(&p, 1, 100);
      continue;
    }
    if (k <= 0) return false;
    off += (size_t)k;
  }
  c->inflight += n;
  return true;
}

/* Complete answers at the start of c->buf: removes them, returns how many. */
static uint32_t take_answers(hconn *c, result *res, uint64_t t, bool count) {
  uint32_t got = 0;
  size_t off = 0;
  for (;;) {
    char *p = c->buf + off;
    size_t avail = c->len - off;
    char *end = avail >= 4 ? memmem(p, avail, "\r\n\r\n", 4) : NULL;
    if (!end) break;
    size_t hl = (size_t)(end - p) + 4, cl = 0;
    for (char *h = p; h && h < end; h = memchr(h, '\n', (size_t)(end - h))) {
      if (*h == '\n') h++;
      if (strncasecmp(h, "Content-Length:", 15) == 0) cl = (size_t)atol(h + 15);
    }
    if (avail < hl + cl) break;
    int status = atoi(p + 9);
    uint64_t lat = t - c->sent_us[c->head];
    c->head = (c->head + 1) % MAX_DEPTH;
    c->inflight--;
    if (count) {
      res->done++;
      if (status != 200) res->errors++;
      res->hist[bucket_of(lat)]++;
    }
    off += hl + cl;
    got++;
  }
  memmove(c->buf, c->buf + off, c->len - off);
  c->len -= off;
  return got;
}

/* One load generator: runs until t_end (µs), counts from t_start. */
static int generator(int k, int port, int nconns, uint32_t depth, const char *req,
                     uint64_t t_start, uint64_t t_end, int out_fd) {
  size_t rl = strlen(req);
  result *res = calloc(1, sizeof *res);
  hconn *cs = calloc((size_t)nconns, sizeof *cs);
  int ep = epoll_create1(0);
  if (!res || !cs || ep < 0) return 1;
  struct sockaddr_in src = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(0x7f000002u + (uint32_t)k)};
  struct sockaddr_in dst = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  for (int i = 0; i < nconns; i++) {
    hconn *c = &cs[i];
    c->buf = malloc(CONN_BUF);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (!c->buf || c->fd < 0 || bind(c->fd, (struct sockaddr *)&src, sizeof src) != 0 ||
        connect(c->fd, (struct sockaddr *)&dst, sizeof dst) != 0) {
      fprintf(stderr, "generator %d: connect: %s\n", k, strerror(errno));
      return 1;
    }
    fcntl(c->fd, F_SETFL, O_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    if (!send_reqs(c, req, rl, depth, now_us())) return 1;
  }
  struct epoll_event evs[256];
  for (;;) {
    uint64_t t = now_us();
    if (t >= t_end) break;
    int n = epoll_wait(ep, evs, 256, 100);
    t = now_us();
    for (int i = 0; i < n; i++) {
      hconn *c = &cs[evs[i].data.u32];
      ssize_t r = read(c->fd, c->buf + c->len, CONN_BUF - c->len);
      if (r < 0 && errno == EAGAIN) continue;
      if (r <= 0) {
        fprintf(stderr, "generator %d: connection lost\n", k);
        return 1;
      }
      c->len += (size_t)r;
      uint32_t got = take_answers(c, res, t, t >= t_start && t < t_end);
      if (c->len == CONN_BUF) return 1; /* an answer larger than the buffer */
      if (got && t < t_end && !send_reqs(c, req, rl, got, t)) return 1;
    }
  }
  for (int i = 0; i < nconns; i++) close(cs[i].fd);
  const char *p = (const char *)res;
  size_t left = sizeof *res;
  while (left) {
    ssize_t w = write(out_fd, p, left);
    if (w <= 0) return 1;
    p += w;
    left -= (size_t)w;
  }
  return 0;
}

/* One measurement: P generators for secs after a 1 s warm-up. Returns
 * requests/s (counted answers / secs), with the merged histogram in *all;
 * -1 on failure. */
static double measure(int port, int procs, int nconns, uint32_t depth, const char *req,
                      int secs, result *all) {
  memset(all, 0, sizeof *all);
  uint64_t t_start = now_us() + 1000000u, t_end = t_start + (uint64_t)secs * 1000000u;
  int fds[64];
  pid_t kids[64];
  for (int k = 0; k < procs; k++) {
    int pp[2];
    if (pipe(pp) != 0) return -1;
    kids[k] = fork();
    if (kids[k] == 0) {
      close(pp[0]);
      _exit(generator(k, port, nconns, depth, req, t_start, t_end, pp[1]));
    }
    close(pp[1]);
    fds[k] = pp[0];
  }
  result *one = malloc(sizeof *one);
  bool ok = one != NULL;
  for (int k = 0; k < procs; k++) {
    size_t got = 0;
    while (ok && got < sizeof *one) {
      ssize_t r = read(fds[k], (char *)one + got, sizeof *one - got);
      if (r <= 0) {
        ok = false;
        break;
      }
      got += (size_t)r;
    }
    if (ok) {
      all->done += one->done;
      all->errors += one->errors;
      for (size_t i = 0; i < NBUCKETS; i++) all->hist[i] += one->hist[i];
    }
    close(fds[k]);
  }
  free(one);
  for (int k = 0; k < procs; k++) {
    int st;
    waitpid(kids[k], &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) ok = false;
  }
  return ok ? (double)all->done / secs : -1;
}

int main(int argc, char **argv) {
  int workers = 2, procs = 2, nconns = 32, depth = 1, secs = 3, runs = 5;
  const char *only = NULL;
  char server[PATH_MAX] = "";
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-w") && i + 1 < argc)
      workers = atoi(argv[++i]);
    else if (!strcmp(argv[i], "-p") && i + 1 < argc)
      procs = atoi(argv[++i]);
    else if (!strcmp(argv[i], "-c") && i + 1 < argc)
      nconns = atoi(argv[++i]);
    else if (!strcmp(argv[i], "-d") && i + 1 < argc)
      depth = atoi(argv[++i]);
    else if (!strcmp(argv[i], "-t") && i + 1 < argc)
      secs = atoi(argv[++i]);
    else if (!strcmp(argv[i], "-r") && i + 1 < argc)
      runs = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--only") && i + 1 < argc)
      only = argv[++i];
    else if (!strcmp(argv[i], "--server") && i + 1 < argc)
      snprintf(server, sizeof server, "%s", argv[++i]);
    else {
      fprintf(stderr,
              "usage: %s [-w workers] [-p procs] [-c conns-per-proc] [-d depth] "
              "[-t seconds] [-r runs] [--only health|devices] [--server path]\n",
              argv[0]);
      return 2;
    }
  }
  if (workers < 1 || procs < 1 || procs > 64 || nconns < 1 || nconns > 19000 ||
      depth < 1 || depth > MAX_DEPTH || secs < 1 || runs < 1 || runs > 99) {
    fprintf(stderr, "bench_http: bad arguments\n");
    return 2;
  }
  if (!server[0]) {
    char self[PATH_MAX - 32];
    ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
    if (k <= 0) return 2;
    self[k] = '\0';
    *strrchr(self, '/') = '\0';
    snprintf(server, sizeof server, "%s/../tesserad", self);
  }
  if (access(server, X_OK) != 0) {
    printf("bench_http: skipped (no tesserad at %s)\n", server);
    return 0;
  }
  if (sodium_init() < 0) return 1;
  bench_server srv_h;
  /* The server's capacity, not its abuse limits, is measured here. */
  static const char *const no_limits[] = {"--rate-per-address", "0", "--rate-per-account",
                                          "0", NULL};
  int port = bench_server_start(&srv_h, server, workers, no_limits);
  int rc = 1;
  char token[BENCH_TOKEN_LEN + 1];
  if (!port) {
    fprintf(stderr, "bench_http: tesserad did not start\n");
    goto out;
  }
  static char buf[4096];
  for (uint64_t dl = now_ms() + 5000;
       now_ms() < dl && bench_http(port,
                                   "GET /health HTTP/1.1\r\nHost: x\r\n"
                                   "Connection: close\r\n\r\n",
                                   buf, sizeof buf, NULL) != 200;)
    poll(NULL, 0, 10);
  if (bench_register(port, "benchhttp", token) != 0) {
    fprintf(stderr, "bench_http: registering failed\n");
    goto out;
  }
  char req_devices[256];
  snprintf(req_devices, sizeof req_devices,
           "GET /v1/devices HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n",
           token);
  const struct {
    const char *name, *req;
  } targets[] = {
      {"health", "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"},
      {"devices", req_devices},
  };
  printf("bench_http: %d workers, %d generator processes x %d keep-alive connections, "
         "pipelining depth %d, %d runs of %d s\n",
         workers, procs, nconns, depth, runs, secs);
  result *res = malloc(sizeof *res * (size_t)runs);
  if (!res) goto out;
  rc = 0;
  for (size_t t = 0; t < sizeof targets / sizeof targets[0]; t++) {
    if (only && strcmp(only, targets[t].name) != 0) continue;
    double rps[99], sorted[99];
    for (int r = 0; r < runs; r++) {
      rps[r] =
          measure(port, procs, nconns, (uint32_t)depth, targets[t].req, secs, &res[r]);
      if (rps[r] < 0 || res[r].errors) {
        fprintf(stderr, "bench_http: %s run %d failed (%llu errors)\n", targets[t].name,
                r, (unsigned long long)res[r].errors);
        rc = 1;
        goto done;
      }
    }
    memcpy(sorted, rps, sizeof(double) * (size_t)runs);
    qsort(sorted, (size_t)runs, sizeof(double), bench_cmp_double);
    double med = sorted[runs / 2];
    int mi = 0;
    for (int r = 0; r < runs; r++)
      if (rps[r] == med) mi = r;
    printf("  GET /%s%s: runs", t == 0 ? "health" : "v1/devices",
           t == 0 ? "" : " (Bearer)");
    for (int r = 0; r < runs; r++) printf(" %.0f", rps[r]);
    printf("\n    median %.0f requests/s; latency of that run p50 %llu us, p90 %llu us, "
           "p99 %llu us, p99.9 %llu us\n",
           med, (unsigned long long)percentile(&res[mi], 0.50),
           (unsigned long long)percentile(&res[mi], 0.90),
           (unsigned long long)percentile(&res[mi], 0.99),
           (unsigned long long)percentile(&res[mi], 0.999));
  }
done:
  free(res);
out:
  if (bench_server_stop(&srv_h)) rc = 1;
  return rc;
}
