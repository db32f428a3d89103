#include "server/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

static _Atomic int log_fd = 2;
static int log_level = LOG_INFO;
static char log_path[4096];
static char log_tag[16] = "main";

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int log_parse_level(const char *s) {
  for (int i = 0; i < 4; i++)
    if (s && strcmp(s, level_names[i]) == 0) return i;
  return -1;
}

static int open_file(const char *path) {
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  return fd < 0 ? -errno : fd;
}

int log_open(const char *path, int level) {
  if (level >= LOG_ERROR && level <= LOG_DEBUG) log_level = level;
  if (!path || !*path) {
    log_path[0] = '\0';
    int old = atomic_exchange(&log_fd, 2);
    if (old > 2) close(old);
    return 0;
  }
  if (strlen(path) >= sizeof log_path) return -ENAMETOOLONG;
  int fd = open_file(path);
  if (fd < 0) return fd;
  memcpy(log_path, path, strlen(path) + 1);
  int old = atomic_exchange(&log_fd, fd);
  if (old > 2) close(old);
  return 0;
}

int log_reopen(void) {
  if (!log_path[0]) return 0;
  int fd = open_file(log_path);
  if (fd < 0) return fd;
  int old = atomic_exchange(&log_fd, fd);
  if (old > 2) close(old);
  return 0;
}

void log_close(void) {
  int old = atomic_exchange(&log_fd, 2);
  if (old > 2) close(old);
}

void log_set_tag(const char *s) { snprintf(log_tag, sizeof log_tag, "%s", s); }

bool log_enabled(int level) { return level <= log_level; }

void log_msg(int level, const char *fmt, ...) {
  if (level > log_level) return;
  if (level < LOG_ERROR) level = LOG_ERROR;
  char line[1152];
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  int n = snprintf(line, sizeof line,
                   "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %d %s: ", tm.tm_year + 1900,
                   tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                   ts.tv_nsec / 1000000, level_names[level], (int)getpid(), log_tag);
  if (n < 0) return;
  size_t len = (size_t)n;
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(line + len, sizeof line - len - 1, fmt, ap);
  va_end(ap);
  if (m > 0) len += (size_t)m < sizeof line - len - 1 ? (size_t)m : sizeof line - len - 2;
  line[len++] = '\n';
  /* One write per line; a short write to a full disk is not retried. */
  ssize_t w = write(atomic_load(&log_fd), line, len);
  (void)w;
}
