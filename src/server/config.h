/* tesserad configuration: defaults, a key = value file, command-line flags.
 *
 * Precedence: built-in defaults < the file named by --config < flags. Every
 * key of the file is also a flag: key "max_body" is "--max-body N" or
 * "--max-body=N". etc/tesserad.conf.example documents every key.
 *
 * Values: sizes accept a k/m suffix (KiB/MiB); durations are seconds with an
 * optional fraction ("0.5") or a "ms" suffix; booleans are on/off, true/false,
 * yes/no or 1/0. Every number is range-checked.
 *
 * Ownership: a cfg is a plain value owned by the caller; strings are fixed
 * arrays inside it, so it can be copied and survives fork. Not thread-safe;
 * filled once on the main thread before workers start, then read-only. */
#ifndef TSR_SERVER_CONFIG_H
#define TSR_SERVER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CFG_PATH_MAX 1024

typedef struct {
  char config_path[CFG_PATH_MAX];
  char data_dir[CFG_PATH_MAX];
  char listen[256];            /* host:port, [v6]:port; port 0 picks a free one */
  int workers;                 /* worker processes; 0 means one per core */
  int log_level;               /* enum log_level */
  char log_file[CFG_PATH_MAX]; /* "" means stderr */
  char tls_cert[CFG_PATH_MAX]; /* PEM chain; TLS is on when cert and key are set */
  char tls_key[CFG_PATH_MAX];
  uint32_t max_connections; /* per worker process */
  uint32_t max_header_bytes;
  uint32_t max_headers;
  uint32_t max_target;
  uint64_t max_body;
  uint64_t max_ws_message;
  uint64_t max_write_buffer; /* pending output per connection before disconnect */
  uint32_t http_idle_timeout_ms;
  uint32_t request_timeout_ms;
  uint32_t ws_ping_interval_ms;
  uint32_t ws_pong_timeout_ms;
  uint32_t ws_auth_timeout_ms; /* a session must authenticate within this (close 1008) */
  uint32_t close_timeout_ms;
  uint32_t drain_timeout_ms;
  /* Conversation messages are deleted once every member device acknowledged
   * them, or at the latest this long after they were stored. */
  uint64_t message_retention_ms;
  /* Largest attachment upload (POST /v1/blobs), streamed to disk: it is
   * not bounded by max_body. Blobs are deleted message_retention after
   * their upload. */
  uint64_t attachment_max_bytes;
  /* General request limits (ratelimit.h), token buckets shared by the
   * workers: requests and WebSocket messages per second and burst, per
   * source address and per authenticated account. Rate 0 turns one off. */
  uint32_t rate_per_address;
  uint32_t burst_per_address;
  uint32_t rate_per_account;
  uint32_t burst_per_account;
  /* Public media (media.h): largest upload (POST /v1/media, streamed to
   * disk, 413 beyond), and the largest image among them. */
  uint64_t media_max_bytes;
  uint64_t image_max_bytes;
  /* Feeds: an author with more followers than this in an app is merged
   * into followers' home feeds when they read (fan-out on read) instead of
   * being written into each follower's timeline when posting. */
  uint32_t fanout_threshold;
  /* Logins of the accounts that may use the admin API (reports, comment
   * review), comma-separated. */
  char admins[1024];
  /* Lets an admin move the server's clock forward (POST /v1/admin/clock):
   * tests of expiry without sleeping. Never in production. */
  bool test_clock;
  bool debug_routes; /* POST /debug/echo, for tests only */
} cfg;

/* Fills c with the defaults. */
void cfg_defaults(cfg *c);

/* Sets one key from its text value. Returns 0, or -1 with a message in
 * err[0..errcap) (unknown key, bad value, out of range). */
int cfg_set(cfg *c, const char *key, const char *value, char *err, size_t errcap);

/* Reads key = value lines ('#' starts a comment; blank lines ignored).
 * Returns 0 or -1 with "path:line: message" in err. */
int cfg_load_file(cfg *c, const char *path, char *err, size_t errcap);

/* Applies defaults, then --config (if given), then every other flag, in
 * that order whatever their position on the line. Returns 0, 1 when --help
 * was printed (caller exits 0), or -1 with a message in err. */
int cfg_from_args(cfg *c, int argc, char **argv, char *err, size_t errcap);

/* Prints the usage text to stdout. */
void cfg_usage(const char *argv0);

#endif
