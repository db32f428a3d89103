#include "server/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/log.h"

enum kind { K_STR, K_INT, K_SIZE32, K_SIZE64, K_MS, K_MS64, K_BOOL, K_LEVEL };

/* One table drives the file, the flags and the usage text. */
typedef struct {
  const char *key;
  enum kind kind;
  size_t off;
  size_t cap; /* K_STR: array size */
  uint64_t min, max;
  const char *help;
} cfg_key;

#define F(field) offsetof(cfg, field), sizeof(((cfg *)0)->field)
static const cfg_key keys[] = {
    {"config", K_STR, F(config_path), 0, 0, "configuration file (key = value lines)"},
    {"data_dir", K_STR, F(data_dir), 0, 0, "directory for the server's data"},
    {"listen", K_STR, F(listen), 0, 0, "address to listen on, host:port"},
    {"workers", K_INT, F(workers), 0, 256, "worker processes (0: one per core)"},
    {"log_level", K_LEVEL, F(log_level), 0, 0, "error | warn | info | debug"},
    {"log_file", K_STR, F(log_file), 0, 0, "log file (empty: stderr); SIGHUP reopens"},
    {"tls_cert", K_STR, F(tls_cert), 0, 0, "PEM certificate chain (enables TLS 1.3)"},
    {"tls_key", K_STR, F(tls_key), 0, 0, "PEM private key"},
    {"max_connections", K_INT, F(max_connections), 1, 10000000,
     "open connections per worker"},
    {"max_header_bytes", K_SIZE32, F(max_header_bytes), 256, 1 << 20,
     "request line + header fields (431)"},
    {"max_headers", K_INT, F(max_headers), 4, 1024, "header fields per request (431)"},
    {"max_target", K_SIZE32, F(max_target), 16, 1 << 20, "request-target bytes (414)"},
    {"max_body", K_SIZE64, F(max_body), 0, 1u << 30, "request body bytes (413)"},
    {"max_ws_message", K_SIZE64, F(max_ws_message), 126, 1u << 30,
     "WebSocket message bytes (close 1009)"},
    {"max_write_buffer", K_SIZE64, F(max_write_buffer), 4096, 1u << 30,
     "pending output per connection before a slow reader is dropped"},
    {"http_idle_timeout", K_MS, F(http_idle_timeout_ms), 10, 86400000,
     "idle keep-alive connection lifetime"},
    {"request_timeout", K_MS, F(request_timeout_ms), 10, 86400000,
     "time to receive one whole request (408), and the TLS handshake"},
    {"ws_ping_interval", K_MS, F(ws_ping_interval_ms), 10, 86400000,
     "server pings a WebSocket silent for this long"},
    {"ws_pong_timeout", K_MS, F(ws_pong_timeout_ms), 10, 86400000,
     "then drops it if nothing arrives within this"},
    {"ws_auth_timeout", K_MS, F(ws_auth_timeout_ms), 10, 86400000,
     "a WebSocket session must authenticate within this (else close 1008)"},
    {"close_timeout", K_MS, F(close_timeout_ms), 10, 600000,
     "wait for the peer's half of a closing handshake"},
    {"message_retention", K_MS64, F(message_retention_ms), 1000, 10ull * 365 * 86400000,
     "keep a conversation message at most this long (deleted sooner once every member "
     "device acknowledged it)"},
    {"attachment_max_bytes", K_SIZE64, F(attachment_max_bytes), 1, 1ull << 32,
     "largest attachment upload, POST /v1/blobs (413 beyond; not bounded by max_body)"},
    {"drain_timeout", K_MS, F(drain_timeout_ms), 10, 600000,
     "SIGTERM: longest wait for in-flight work before exit"},
    {"rate_per_address", K_INT, F(rate_per_address), 0, 10000000,
     "requests + WebSocket messages per second per source address (0: no limit)"},
    {"burst_per_address", K_INT, F(burst_per_address), 1, 10000000,
     "... and how many may come at once"},
    {"rate_per_account", K_INT, F(rate_per_account), 0, 10000000,
     "requests + WebSocket messages per second per account (0: no limit)"},
    {"burst_per_account", K_INT, F(burst_per_account), 1, 10000000,
     "... and how many may come at once"},
    {"media_max_bytes", K_SIZE64, F(media_max_bytes), 1, 1ull << 32,
     "largest public media upload, POST /v1/media (413 beyond)"},
    {"image_max_bytes", K_SIZE64, F(image_max_bytes), 1, 1ull << 32,
     "largest image among them (checked from the bytes)"},
    {"fanout_threshold", K_INT, F(fanout_threshold), 0, 100000000,
     "followers above which an author's posts are merged into feeds at read time"},
    {"admins", K_STR, F(admins), 0, 0, "logins allowed the admin API, comma-separated"},
    {"test_clock", K_BOOL, F(test_clock), 0, 0,
     "let admins move the clock forward (POST /v1/admin/clock; tests only)"},
    {"debug_routes", K_BOOL, F(debug_routes), 0, 0, "enable POST /debug/echo (tests)"},
};
#undef F

void cfg_defaults(cfg *c) {
  memset(c, 0, sizeof *c);
  snprintf(c->data_dir, sizeof c->data_dir, "./data");
  snprintf(c->listen, sizeof c->listen, "127.0.0.1:8443");
  c->workers = 0;
  c->log_level = LOG_INFO;
  c->max_connections = 19000;
  c->max_header_bytes = 8192;
  c->max_headers = 64;
  c->max_target = 4096;
  c->max_body = 1 << 20;
  c->max_ws_message = 1 << 20;
  c->max_write_buffer = 1 << 20;
  c->http_idle_timeout_ms = 60000;
  c->request_timeout_ms = 30000;
  c->ws_ping_interval_ms = 60000;
  c->ws_pong_timeout_ms = 30000;
  c->ws_auth_timeout_ms = 10000;
  c->close_timeout_ms = 5000;
  c->drain_timeout_ms = 10000;
  c->message_retention_ms = 30ull * 86400000; /* 30 days */
  c->attachment_max_bytes = 16u << 20;
  c->media_max_bytes = 64u << 20;
  c->image_max_bytes = 20u << 20;
  c->fanout_threshold = 10000;
  c->rate_per_address = 500;
  c->burst_per_address = 1000;
  c->rate_per_account = 50;
  c->burst_per_account = 200;
}

static int parse_u64(const char *s, uint64_t *out) {
  if (!isdigit((unsigned char)*s)) return -1;
  errno = 0;
  char *end;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s) return -1;
  uint64_t mul = 1;
  if (*end == 'k' || *end == 'K')
    mul = 1024, end++;
  else if (*end == 'm' || *end == 'M')
    mul = 1024 * 1024, end++;
  if (*end) return -1;
  if (v > UINT64_MAX / mul) return -1;
  *out = (uint64_t)v * mul;
  return 0;
}

static int parse_ms(const char *s, uint64_t *out) {
  if (!isdigit((unsigned char)*s)) return -1;
  size_t n = strlen(s);
  errno = 0;
  char *end;
  if (n > 2 && strcmp(s + n - 2, "ms") == 0) {
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end != s + n - 2) return -1;
    *out = v;
    return 0;
  }
  double d = strtod(s, &end);
  if (errno || *end || d < 0 || d > 1e9) return -1;
  *out = (uint64_t)(d * 1000.0 + 0.5);
  return 0;
}

static const cfg_key *find_key(const char *key) {
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
    if (strcmp(keys[i].key, key) == 0) return &keys[i];
  return NULL;
}

int cfg_set(cfg *c, const char *key, const char *value, char *err, size_t errcap) {
  const cfg_key *k = find_key(key);
  if (!k) {
    snprintf(err, errcap, "unknown key '%s'", key);
    return -1;
  }
  char *field = (char *)c + k->off;
  uint64_t v = 0;
  switch (k->kind) {
  case K_STR:
    if (strlen(value) >= k->cap) {
      snprintf(err, errcap, "%s: value too long", key);
      return -1;
    }
    memcpy(field, value, strlen(value) + 1);
    return 0;
  case K_LEVEL: {
    int lv = log_parse_level(value);
    if (lv < 0) {
      snprintf(err, errcap, "%s: want error, warn, info or debug", key);
      return -1;
    }
    *(int *)field = lv;
    return 0;
  }
  case K_BOOL:
    if (!strcmp(value, "on") || !strcmp(value, "true") || !strcmp(value, "yes") ||
        !strcmp(value, "1"))
      *(bool *)field = true;
    else if (!strcmp(value, "off") || !strcmp(value, "false") || !strcmp(value, "no") ||
             !strcmp(value, "0"))
      *(bool *)field = false;
    else {
      snprintf(err, errcap, "%s: want on or off", key);
      return -1;
    }
    return 0;
  case K_MS:
  case K_MS64:
    if (parse_ms(value, &v) != 0) {
      snprintf(err, errcap, "%s: want seconds (e.g. 30, 0.5) or milliseconds (250ms)",
               key);
      return -1;
    }
    break;
  default:
    if (parse_u64(value, &v) != 0 ||
        (k->kind == K_INT && !isdigit((unsigned char)value[strlen(value) - 1]))) {
      snprintf(err, errcap, "%s: want a non-negative integer", key);
      return -1;
    }
    break;
  }
  if (v < k->min || v > k->max) {
    snprintf(err, errcap, "%s: %llu is outside %llu..%llu", key, (unsigned long long)v,
             (unsigned long long)k->min, (unsigned long long)k->max);
    return -1;
  }
  switch (k->kind) {
  case K_INT:
    if (k->cap == sizeof(int))
      *(int *)field = (int)v;
    else
      *(uint32_t *)field = (uint32_t)v;
    break;
  case K_SIZE32:
  case K_MS: *(uint32_t *)field = (uint32_t)v; break;
  case K_SIZE64:
  case K_MS64: *(uint64_t *)field = v; break;
  default: break;
  }
  return 0;
}

static char *trim(char *s) {
  while (*s == ' ' || *s == '\t') s++;
  size_t n = strlen(s);
  while (n &&
         (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
    s[--n] = '\0';
  return s;
}

int cfg_load_file(cfg *c, const char *path, char *err, size_t errcap) {
  FILE *f = fopen(path, "r");
  if (!f) {
    snprintf(err, errcap, "%s: %s", path, strerror(errno));
    return -1;
  }
  char line[4096], msg[256];
  int lineno = 0, rc = 0;
  while (fgets(line, sizeof line, f)) {
    lineno++;
    if (!strchr(line, '\n') && !feof(f)) {
      snprintf(err, errcap, "%s:%d: line too long", path, lineno);
      rc = -1;
      break;
    }
    char *s = trim(line);
    if (!*s || *s == '#') continue;
    char *eq = strchr(s, '=');
    if (!eq) {
      snprintf(err, errcap, "%s:%d: expected key = value", path, lineno);
      rc = -1;
      break;
    }
    *eq = '\0';
    char *key = trim(s), *val = trim(eq + 1);
    if (strcmp(key, "config") == 0 || cfg_set(c, key, val, msg, sizeof msg) != 0) {
      if (strcmp(key, "config") == 0) snprintf(msg, sizeof msg, "config may not nest");
      snprintf(err, errcap, "%s:%d: %s", path, lineno, msg);
      rc = -1;
      break;
    }
  }
  fclose(f);
  return rc;
}

/* "--max-body" -> "max_body" into out; NULL if not a long flag. */
static const char *flag_key(const char *arg, char *out, size_t cap,
                            const char **inline_val) {
  *inline_val = NULL;
  if (strncmp(arg, "--", 2) != 0 || !arg[2]) return NULL;
  size_t i = 0;
  for (arg += 2; *arg && *arg != '=' && i + 1 < cap; arg++)
    out[i++] = *arg == '-' ? '_' : *arg;
  out[i] = '\0';
  if (*arg == '=') *inline_val = arg + 1;
  return out;
}

int cfg_from_args(cfg *c, int argc, char **argv, char *err, size_t errcap) {
  cfg_defaults(c);
  char key[64], msg[256];
  const char *iv;
  /* Two passes so that flags override the file whatever the order. */
  for (int pass = 0; pass < 2; pass++) {
    for (int i = 1; i < argc; i++) {
      if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
        cfg_usage(argv[0]);
        return 1;
      }
      if (!flag_key(argv[i], key, sizeof key, &iv)) {
        snprintf(err, errcap, "unexpected argument '%s' (see --help)", argv[i]);
        return -1;
      }
      const char *val = iv;
      if (!val) {
        if (i + 1 >= argc) {
          snprintf(err, errcap, "--%s needs a value", argv[i] + 2);
          return -1;
        }
        val = argv[++i];
      }
      bool is_config = strcmp(key, "config") == 0;
      if (pass == 0 && is_config) {
        if (cfg_set(c, key, val, msg, sizeof msg) != 0 ||
            cfg_load_file(c, val, msg, sizeof msg) != 0) {
          snprintf(err, errcap, "%s", msg);
          return -1;
        }
      } else if (pass == 1 && !is_config && cfg_set(c, key, val, msg, sizeof msg) != 0) {
        snprintf(err, errcap, "%s", msg);
        return -1;
      }
    }
  }
  if (!c->tls_cert[0] != !c->tls_key[0]) {
    snprintf(err, errcap, "tls_cert and tls_key must be set together");
    return -1;
  }
  return 0;
}

void cfg_usage(const char *argv0) {
  printf(
      "usage: %s [--config FILE] [--key value ...]\n\n"
      "Every configuration key is also a flag (--max-body 1m overrides max_body).\n"
      "Sizes take k/m suffixes; durations are seconds (0.5) or milliseconds (250ms).\n\n",
      argv0);
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
    char flag[64];
    size_t j = 0;
    for (const char *p = keys[i].key; *p && j + 1 < sizeof flag; p++)
      flag[j++] = *p == '_' ? '-' : *p;
    flag[j] = '\0';
    printf("  --%-20s %s\n", flag, keys[i].help);
  }
}
