/* Logging for tesserad: one line per event, to stderr or a file.
 *
 * Every line is formatted into a stack buffer and written with a single
 * write(2) on an O_APPEND descriptor, so the lines of several worker
 * processes sharing one file never interleave mid-line.
 *
 * Privacy: callers must not log message contents, tokens, or who talks to
 * whom. Peer addresses are logged only at debug level (see conn.c).
 *
 * Threads: log_open/log_reopen/log_close are for the main thread of a
 * process (at start, on SIGHUP, at exit); log_msg may be called from any
 * thread (the fd is swapped with an atomic exchange and the old one closed
 * only after the new one is in place). */
#ifndef TSR_SERVER_LOG_H
#define TSR_SERVER_LOG_H

#include <stdbool.h>

enum log_level {
  LOG_ERROR = 0,
  LOG_WARN = 1,
  LOG_INFO = 2,
  LOG_DEBUG = 3,
};

/* Parses "error" | "warn" | "info" | "debug". Returns the level or -1. */
int log_parse_level(const char *s);

/* Sets the level and the destination: path NULL or "" means stderr.
 * Returns 0 or a negative errno (the previous destination stays). */
int log_open(const char *path, int level);

/* Reopens the file given to log_open (after rotation: SIGHUP). No-op for
 * stderr. Returns 0 or a negative errno; on failure logging continues to
 * the old descriptor. */
int log_reopen(void);

/* Closes the file (stderr is left alone). */
void log_close(void);

/* Sets the tag printed after the pid, e.g. "main" or "w3". s is copied
 * (at most 15 bytes). */
void log_set_tag(const char *s);

bool log_enabled(int level);

/* printf-style; a trailing newline is added; lines longer than 1 KiB are
 * cut. */
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                                                   \
  do {                                                                                   \
    if (log_enabled(LOG_DEBUG)) log_msg(LOG_DEBUG, __VA_ARGS__);                         \
  } while (0)

#endif
