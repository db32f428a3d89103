/* Helpers shared by the benchmarks (header-only; each bench is one file).
 *
 *  - bench_median: median of n values (sorts v in place).
 *  - bench_server_start / bench_server_stop: run a real tesserad on a free
 *    loopback port with its data and log in a fresh temporary directory,
 *    and stop it again (SIGTERM, then SIGKILL after 20 s) removing the
 *    directory. */
#ifndef TSR_BENCH_UTIL_H
#define TSR_BENCH_UTIL_H

#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static inline int bench_cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static inline double bench_median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static inline uint64_t bench_clock_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A running tesserad: its pid and temporary directory. */
typedef struct {
  pid_t pid;
  char dir[32];
} bench_server;

/* Raises the open-file limit to the hard limit, ignores SIGPIPE, starts
 * `path` with `workers` workers plus the NULL-terminated extra arguments
 * (may be NULL) and returns its port, or 0 if it did not start within 10 s
 * (then call bench_server_stop anyway). */
static inline int bench_server_start(bench_server *s, const char *path, int workers,
                                     const char *const *extra) {
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  signal(SIGPIPE, SIG_IGN);
  s->pid = 0;
  snprintf(s->dir, sizeof s->dir, "/tmp/tsr-bench-XXXXXX");
  if (!mkdtemp(s->dir)) return 0;
  char log[64], data[64], wbuf[16];
  snprintf(log, sizeof log, "%s/log", s->dir);
  snprintf(data, sizeof data, "%s/data", s->dir);
  snprintf(wbuf, sizeof wbuf, "%d", workers);
  const char *argv[32] = {path,         "--listen", "127.0.0.1:0", "--data-dir", data,
                          "--log-file", log,        "--workers",   wbuf};
  size_t n = 9;
  for (size_t i = 0; extra && extra[i] && n < 31; i++) argv[n++] = extra[i];
  argv[n] = NULL;
  s->pid = fork();
  if (s->pid == 0) {
    execv(path, (char *const *)argv);
    _exit(127);
  }
  int port = 0;
  for (uint64_t dl = bench_clock_ms() + 10000; !port && bench_clock_ms() < dl;
       poll(NULL, 0, 10)) {
    FILE *f = fopen(log, "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
      char *p = strstr(line, "listening on 127.0.0.1:");
      if (p) port = atoi(p + 23);
    }
    if (f) fclose(f);
  }
  return port;
}

/* Stops the server and removes its directory; 0, or -1 if removal failed. */
static inline int bench_server_stop(bench_server *s) {
  if (s->pid > 0) {
    kill(s->pid, SIGTERM);
    int st;
    for (uint64_t dl = bench_clock_ms() + 20000; bench_clock_ms() < dl; poll(NULL, 0, 10))
      if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
        s->pid = 0;
        break;
      }
    if (s->pid) {
      kill(s->pid, SIGKILL);
      waitpid(s->pid, NULL, 0);
    }
  }
  char cmd[64];
  snprintf(cmd, sizeof cmd, "rm -rf %s", s->dir);
  return s->dir[0] && system(cmd) != 0 ? -1 : 0;
}

#endif
