/* Memory cost of an idle, authenticated WebSocket session in tesserad.
 *
 * Starts tesserad (--workers W, a free port), registers D accounts (one
 * device each; D argon2id hashes, so D stays small), opens N WebSocket
 * sessions
 * from P forked client processes (each under the 20,000 open files a
 * process may hold here, each from its own source address 127.0.0.(2+k)
 * binding source ports itself, 10000 upwards, so each has 55,000 ports),
 * authenticates each (session i uses device i % D: many sessions share a
 * device token; by default with op "auth" as the first message, with -H
 * by "Authorization: Bearer" on the upgrade request), waits for the ok,
 * leaves them idle, and reports per session:
 *   - the growth of the server's resident memory (VmRSS of the master and
 *     its workers, from /proc/<pid>/status);
 *   - the growth of its malloc'ed bytes (tessera_heap_bytes from /metrics,
 *     which every worker refreshes from mallinfo2 once a second).
 * The bar (docs/benchmarks.md): below Mosquitto's 0.72 KiB per idle session.
 *
 *   bench_idle [-n sessions] [-w workers] [-p client-procs] [-d devices] [-H]
 *              [--server path]
 *
 * Defaults: N=50000, W=4, P=4, D=8, tesserad next to this binary
 * (../tesserad).
 * Traffic stays on loopback; everything stops by itself. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_accounts.h"
#include "bench_util.h"
#include "proto/ws.h"

static const char upgrade_fmt[] =
    "GET /v1/ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: tessera.v1\r\n%s\r\n";

/* Per device: the upgrade request and the masked auth frame to send. */
typedef struct {
  char upgrade[512];
  size_t upgrade_len;
  uint8_t auth[160];
  size_t auth_len; /* 0 with -H: the upgrade carries the token */
} dev_msgs;

static dev_msgs *devs;
static int total_sessions;
static int ndevs;
static bool by_header;

static void make_msgs(dev_msgs *m, const char *token) {
  char hdr[128] = "";
  if (by_header) snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\n", token);
  m->upgrade_len = (size_t)snprintf(m->upgrade, sizeof m->upgrade, upgrade_fmt, hdr);
  m->auth_len = 0;
  if (by_header) return;
  char text[128];
  int n =
      snprintf(text, sizeof text, "{\"op\":\"auth\",\"id\":1,\"token\":\"%s\"}", token);
  uint8_t mask[4] = {0x11, 0x22, 0x33, 0x44};
  size_t hl = ws_write_frame_header(m->auth, WS_OP_TEXT, true, (size_t)n, mask);
  memcpy(m->auth + hl, text, (size_t)n);
  ws_unmask(m->auth + hl, (size_t)n, mask, 0);
  m->auth_len = hl + (size_t)n;
}

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static long rss_kib(pid_t pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  long kib = -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "VmRSS: %ld kB", &kib) == 1) break;
  fclose(f);
  return kib;
}

/* RSS of the master and its direct children (the workers). */
static long server_rss_kib(pid_t master, int *nproc) {
  char path[96];
  snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)master, (int)master);
  long total = rss_kib(master);
  *nproc = 1;
  FILE *f = fopen(path, "r");
  if (!f) return total;
  int child;
  while (fscanf(f, "%d", &child) == 1) {
    long r = rss_kib(child);
    if (r > 0) total += r, (*nproc)++;
  }
  fclose(f);
  return total;
}

/* One HTTP GET on a fresh connection; returns the body (static) or NULL. */
static const char *http_get(int port, const char *path) {
  static char buf[1 << 16];
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    return NULL;
  }
  char req[256];
  int n = snprintf(req, sizeof req,
                   "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
  if (write(fd, req, (size_t)n) != n) {
    close(fd);
    return NULL;
  }
  size_t len = 0;
  struct pollfd p = {.fd = fd, .events = POLLIN};
  while (len < sizeof buf - 1 && poll(&p, 1, 5000) > 0) {
    ssize_t k = read(fd, buf + len, sizeof buf - 1 - len);
    if (k <= 0) break;
    len += (size_t)k;
  }
  close(fd);
  buf[len] = '\0';
  char *body = strstr(buf, "\r\n\r\n");
  return body ? body + 4 : NULL;
}

static long long heap_bytes(int port) {
  const char *m = http_get(port, "/metrics");
  const char *p = m ? strstr(m, "\ntessera_heap_bytes ") : NULL;
  return p ? atoll(p + 20) : -1;
}

/* Client process k: opens count sessions from 127.0.0.(2+k), authenticates
 * them, reports on ready_fd, holds them until quit_fd closes. Returns an
 * exit status. */
static int client(int k, int port, int count, int ready_fd, int quit_fd) {
  int ep = epoll_create1(0);
  int *fds = calloc((size_t)count, sizeof *fds);
  char(*got)[4] = calloc((size_t)count, 4); /* last bytes seen, to find "\r\n\r\n" */
  uint8_t *st = calloc((size_t)count, 1);   /* 0 upgrading, 1 awaiting the auth reply */
  int opened = 0, done = 0, inflight = 0, next_port = 10000;
  struct sockaddr_in src = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(0x7f000002u + (uint32_t)k)};
  struct sockaddr_in dst = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  /* Opening slows down as the machine fills (200,000 took 52 s here). */
  uint64_t deadline =
      now_ms() + (total_sessions > 120000 ? (uint64_t)total_sessions : 120000);
  struct epoll_event evs[256];
  while (done < count && now_ms() < deadline) {
    while (opened < count && inflight < 256) {
      int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      if (fd < 0) {
        fprintf(stderr, "client %d: socket: %s\n", k, strerror(errno));
        return 1;
      }
      /* The source port is ours to pick: this address is this process's
       * alone, so walking the ports needs no search. Left to the kernel,
       * connect() scans for a free port and gets slower the more the
       * address holds (above half its range it took long enough for the
       * server's authentication deadline to pass). SO_REUSEADDR lets a
       * port still in TIME_WAIT from an earlier run be bound again. */
      int one = 1, bound = -1;
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      while (bound != 0 && next_port <= 65535) {
        src.sin_port = htons((uint16_t)next_port++);
        bound = bind(fd, (struct sockaddr *)&src, sizeof src);
        if (bound != 0 && errno != EADDRINUSE) break;
      }
      if (bound != 0 || (connect(fd, (struct sockaddr *)&dst, sizeof dst) != 0 &&
                         errno != EINPROGRESS)) {
        fprintf(stderr, "client %d: bind/connect: %s\n", k, strerror(errno));
        return 1;
      }
      fds[opened] = fd;
      struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = (uint32_t)opened};
      epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
      opened++;
      inflight++;
    }
    int n = epoll_wait(ep, evs, 256, 1000);
    for (int i = 0; i < n; i++) {
      uint32_t id = evs[i].data.u32;
      int fd = fds[id];
      const dev_msgs *m = &devs[(id + (uint32_t)k) % (uint32_t)ndevs];
      if (evs[i].events & EPOLLOUT) {
        if (write(fd, m->upgrade, m->upgrade_len) != (ssize_t)m->upgrade_len) return 1;
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = id};
        epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
        continue;
      }
      char buf[512];
      ssize_t r = read(fd, buf, sizeof buf);
      if (r <= 0) {
        fprintf(stderr, "client %d: session %u %s\n", k, id,
                r == 0 ? "closed by the server" : strerror(errno));
        return 1;
      }
      bool finished = false;
      if (st[id] == 0) {
        static const char zero[4];
        if (memcmp(got[id], zero, 4) == 0 && r >= 12 &&
            memcmp(buf, "HTTP/1.1 101", 12) != 0) {
          fprintf(stderr, "client %d: upgrade refused: %.12s\n", k, buf);
          return 1;
        }
        ssize_t j = 0;
        while (j < r && memcmp(got[id], "\r\n\r\n", 4) != 0) {
          memmove(got[id], got[id] + 1, 3);
          got[id][3] = buf[j++];
        }
        if (memcmp(got[id], "\r\n\r\n", 4) == 0) {
          if (m->auth_len == 0) {
            finished = true;
          } else {
            if (write(fd, m->auth, m->auth_len) != (ssize_t)m->auth_len) return 1;
            st[id] = 1;
            /* the reply cannot be in this read: it answers what we just sent */
          }
        }
      } else {
        /* The auth reply: one small text frame, {"id":1,"ok":{...}}. */
        if (memmem(buf, (size_t)r, "\"error\"", 7)) {
          fprintf(stderr, "client %d: auth refused: %.*s\n", k, (int)r, buf);
          return 1;
        }
        if (memmem(buf, (size_t)r, "\"ok\"", 4)) finished = true;
      }
      if (finished) {
        epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
        done++;
        inflight--;
      }
    }
  }
  if (done != count) {
    fprintf(stderr, "client %d: %d of %d sessions by the deadline\n", k, done, count);
    return 1; /* the caller reports the failure */
  }
  if (write(ready_fd, "R", 1) != 1) return 1;
  char q;
  ssize_t r = read(quit_fd, &q, 1); /* EOF: the parent is done measuring */
  (void)r;
  return 0;
}

int main(int argc, char **argv) {
  int n = 50000, workers = 4, procs = 4;
  ndevs = 8;
  char server[PATH_MAX] = "";
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-n") && i + 1 < argc)
      n = atoi(argv[++i]);
    else if (!strcmp(argv[i], "-w") && i + 1 < argc)
      workers = atoi(argv[++i]);
    else if (!strcmp(argv[i], "-p") && i + 1 < argc)
      procs = atoi(argv[++i]);
    else if (!strcmp(argv[i], "-d") && i + 1 < argc)
      ndevs = atoi(argv[++i]);
    else if (!strcmp(argv[i], "-H"))
      by_header = true;
    else if (!strcmp(argv[i], "--server") && i + 1 < argc)
      snprintf(server, sizeof server, "%s", argv[++i]);
    else {
      fprintf(stderr,
              "usage: %s [-n sessions] [-w workers] [-p procs] [-d devices] [-H] "
              "[--server path]\n",
              argv[0]);
      return 2;
    }
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
    printf("bench_idle: skipped (no tesserad at %s)\n", server);
    return 0;
  }
  if (ndevs < 1 || ndevs > 100 || sodium_init() < 0) {
    fprintf(stderr, "bench_idle: need 1 <= devices <= 100 (registration is rate-limited "
                    "per address)\n");
    return 2;
  }
  if (procs < 1 || n / procs > 19000 || n / workers > 19000) {
    fprintf(stderr, "bench_idle: need n/procs and n/workers <= 19000\n");
    return 2;
  }
  /* A million sessions come from 56 addresses within a minute: past the
   * default per-address request limit, which is not what is measured. */
  static const char *const idle_extra[] = {"--ws-ping-interval", "3600",
                                           "--rate-per-address", "0", NULL};
  bench_server srv_h;
  int port = bench_server_start(&srv_h, server, workers, idle_extra);
  int rc = 1;
  if (!port) {
    fprintf(stderr, "bench_idle: tesserad did not start\n");
    goto out;
  }
  /* Let every worker listen and publish its heap gauge once. */
  for (uint64_t dl = now_ms() + 5000; now_ms() < dl && !http_get(port, "/health");)
    poll(NULL, 0, 10);
  /* Accounts first: their argon2id hashes and store pages are not part of
   * the per-session cost. */
  devs = calloc((size_t)ndevs, sizeof *devs);
  for (int d = 0; d < ndevs; d++) {
    char login[32], token[BENCH_TOKEN_LEN + 1];
    snprintf(login, sizeof login, "bench%d", d);
    if (!devs || bench_register(port, login, token) != 0) {
      fprintf(stderr, "bench_idle: registering %s failed\n", login);
      goto out;
    }
    make_msgs(&devs[d], token);
  }
  poll(NULL, 0, 1500);
  int np;
  long rss0 = server_rss_kib(srv_h.pid, &np);
  long long heap0 = heap_bytes(port);

  total_sessions = n;
  int ready[2], quit[2];
  if (pipe(ready) != 0 || pipe(quit) != 0) goto out;
  uint64_t t0 = now_ms();
  pid_t *kids = calloc((size_t)procs, sizeof *kids);
  for (int k = 0; k < procs; k++) {
    int count = n / procs + (k < n % procs);
    kids[k] = fork();
    if (kids[k] == 0) {
      close(ready[0]);
      close(quit[1]);
      int crc = client(k, port, count, ready[1], quit[0]);
      /* Every failure is reported, so the parent never waits on a
       * sibling that still holds the pipe open. */
      if (crc != 0 && write(ready[1], "F", 1) != 1) crc = 1;
      _exit(crc);
    }
  }
  close(ready[1]);
  close(quit[0]);
  int ok = 0;
  for (int k = 0; k < procs; k++) {
    char c;
    if (read(ready[0], &c, 1) == 1 && c == 'R') ok++;
  }
  uint64_t t1 = now_ms();
  if (ok == procs) {
    poll(NULL, 0, 1500); /* a fresh heap gauge from every worker */
    long rss1 = server_rss_kib(srv_h.pid, &np);
    long long heap1 = heap_bytes(port);
    printf(
        "bench_idle: %d idle authenticated WebSocket sessions (%d devices, auth by %s), "
        "%d workers (%d server processes), opened in %.1f s\n",
        n, ndevs, by_header ? "header" : "op", workers, np, (t1 - t0) / 1000.0);
    printf("  server RSS   %8ld KiB -> %8ld KiB: %.3f KiB per session\n", rss0, rss1,
           (double)(rss1 - rss0) / n);
    if (heap0 >= 0 && heap1 >= 0)
      printf("  server heap  %8lld B -> %10lld B: %.0f bytes per session (malloc'ed)\n",
             heap0, heap1, (double)(heap1 - heap0) / n);
    printf("  bar: below 0.72 KiB per idle session (Mosquitto 2.0)\n");
    rc = 0;
  } else {
    fprintf(stderr, "bench_idle: only %d of %d client processes got all sessions\n", ok,
            procs);
  }
  close(quit[1]);
  for (int k = 0; k < procs; k++) waitpid(kids[k], NULL, 0);
  free(kids);
out:
  if (bench_server_stop(&srv_h)) rc = 1;
  return rc;
}
