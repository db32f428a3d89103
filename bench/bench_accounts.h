/* Helpers shared by the server benchmarks: one blocking HTTP call on a
 * fresh loopback connection, and registering an account to get a device
 * token (docs/protocol.md, "Accounts and devices"). Header-only (static
 * functions) so each bench stays a single translation unit. */
#ifndef TSR_BENCH_ACCOUNTS_H
#define TSR_BENCH_ACCOUNTS_H

#include <netinet/in.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proto/base64.h"

#define BENCH_TOKEN_LEN 43 /* 32 bytes, base64url without padding */

/* Sends req on a new connection to 127.0.0.1:port and reads until the peer
 * closes (the request must say Connection: close). Returns the status and
 * the body in buf (NUL-terminated), or -1. */
/* Source address of bench_http's connections (host order; 0: the
 * kernel's choice). Registration is limited per source address, so
 * benches registering many accounts spread them over 127.0.0.x. */
static uint32_t bench_src;

static int bench_http(int port, const char *req, char *buf, size_t cap,
                      const char **body) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  struct sockaddr_in src = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(bench_src)};
  if (fd < 0 || (bench_src && bind(fd, (struct sockaddr *)&src, sizeof src) != 0) ||
      connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    if (fd >= 0) close(fd);
    return -1;
  }
  size_t n = strlen(req);
  if (write(fd, req, n) != (ssize_t)n) {
    close(fd);
    return -1;
  }
  size_t len = 0;
  struct pollfd p = {.fd = fd, .events = POLLIN};
  while (len < cap - 1 && poll(&p, 1, 10000) > 0) {
    ssize_t k = read(fd, buf + len, cap - 1 - len);
    if (k <= 0) break;
    len += (size_t)k;
  }
  close(fd);
  buf[len] = '\0';
  char *b = strstr(buf, "\r\n\r\n");
  if (len < 12 || !b) return -1;
  if (body) *body = b + 4;
  return atoi(buf + 9);
}

static void bench_b64(const uint8_t *p, size_t n, char *out, size_t cap) {
  size_t len = 0;
  if (b64_encode(out, cap - 1, p, n, B64_MODE_URL_NOPAD, &len) != 0) len = 0;
  out[len] = '\0';
}

/* A registered device: its token, ids (base64url) and signing seed. */
typedef struct {
  char token[BENCH_TOKEN_LEN + 1];
  char account_id[23];
  char device_id[23];
  uint8_t seed[32];
} bench_device;

/* The string value of "key" in JSON text j into out (no escapes expected). */
static int bench_json_str(const char *j, const char *key, char *out, size_t cap) {
  char pat[64];
  snprintf(pat, sizeof pat, "\"%s\":\"", key);
  const char *p = strstr(j, pat);
  if (!p) return -1;
  p += strlen(pat);
  const char *e = strchr(p, '"');
  if (!e || (size_t)(e - p) >= cap) return -1;
  memcpy(out, p, (size_t)(e - p));
  out[e - p] = '\0';
  return 0;
}

static int bench_register_device(int port, const char *login, bench_device *d);

/* Registers account login with one device; its token (BENCH_TOKEN_LEN
 * characters) goes to token. Returns 0 or -1. Costs one argon2id hash on
 * the server (~90 ms). */
static inline int bench_register(int port, const char *login,
                                 char token[BENCH_TOKEN_LEN + 1]) {
  bench_device d;
  if (bench_register_device(port, login, &d) != 0) return -1;
  memcpy(token, d.token, BENCH_TOKEN_LEN + 1);
  return 0;
}

/* bench_register keeping the device's ids and signing seed (its MLS key). */
static int bench_register_device(int port, const char *login, bench_device *dv) {
  uint8_t ipk[crypto_sign_PUBLICKEYBYTES], isk[crypto_sign_SECRETKEYBYTES];
  uint8_t dpk[crypto_sign_PUBLICKEYBYTES], dsk[crypto_sign_SECRETKEYBYTES];
  crypto_sign_keypair(ipk, isk);
  randombytes_buf(dv->seed, sizeof dv->seed);
  crypto_sign_seed_keypair(dpk, dsk, dv->seed);
  uint8_t msg[55], sig[64];
  memcpy(msg, "tessera-device-cert-v1", 22); /* the certificate's context */
  msg[22] = 0;
  memcpy(msg + 23, dpk, 32);
  crypto_sign_detached(sig, NULL, msg, sizeof msg, isk);
  char ik[64], dk[64], cert[128], body[1024], req[1536];
  bench_b64(ipk, 32, ik, sizeof ik);
  bench_b64(dpk, 32, dk, sizeof dk);
  bench_b64(sig, 64, cert, sizeof cert);
  int bl = snprintf(body, sizeof body,
                    "{\"login\":\"%s\",\"password\":\"bench password 1234\","
                    "\"identity_key\":\"%s\",\"device\":{\"name\":\"bench\","
                    "\"signature_key\":\"%s\",\"certificate\":\"%s\"}}",
                    login, ik, dk, cert);
  snprintf(req, sizeof req,
           "POST /v1/accounts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
           bl, body);
  static char buf[8192];
  const char *b = NULL;
  if (bench_http(port, req, buf, sizeof buf, &b) != 201) return -1;
  const char *t = strstr(b, "\"token\":\"");
  if (!t || strlen(t + 9) < BENCH_TOKEN_LEN + 1 || t[9 + BENCH_TOKEN_LEN] != '"')
    return -1;
  memcpy(dv->token, t + 9, BENCH_TOKEN_LEN);
  dv->token[BENCH_TOKEN_LEN] = '\0';
  if (bench_json_str(b, "account_id", dv->account_id, sizeof dv->account_id) ||
      bench_json_str(b, "device_id", dv->device_id, sizeof dv->device_id))
    return -1;
  return 0;
}

#endif
