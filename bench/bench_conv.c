/* Durable conversation messages per second and their latency.
 *
 * Starts a real tesserad (W workers and its delivery service, general
 * request limits off), registers 2*S accounts with social profiles that
 * anyone may reach, and makes S direct conversations (sender i with
 * receiver i) through the real protocol: MLS groups built with the library
 * on the registered device keys, conversation.create over WebSocket.
 *
 * Then P load processes (each with its own epoll loop, on source addresses
 * 127.0.0.2, 127.0.0.3, ...) drive S/P pairs each: the sender keeps K
 * `send` ops in flight on its session (a new one as soon as one is
 * acknowledged — acknowledged means committed to the delivery service's
 * store), the receiver's session takes the pushes. Reported per run:
 * acknowledged messages per second over the measured window, and the
 * latency from writing a send to its acknowledgement and from writing it
 * to the push reaching the receiver (p50/p90/p99), from all processes.
 * With -R the senders are paced at that total rate instead (for latency
 * at a fixed load, e.g. half the maximum).
 *
 * The MLS PrivateMessages are made once per sender (a pool of 64, sent
 * round-robin, each with its own client_id): the server never decrypts,
 * it checks the group and epoch in the header, so its work per message is
 * the same as for fresh ciphertexts; making a fresh one per send would
 * measure the load generator's AES instead.
 *
 * Usage: bench_conv [-w workers] [-p procs] [-s pairs] [-k in-flight]
 *                   [-t seconds] [-r runs] [-R total msgs/s] [--server path] */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_accounts.h"
#include "bench_util.h"
#include "mls/crypto.h"
#include "mls/group.h"
#include "proto/ws.h"

#define POOL 64
#define MAX_PAIRS 512
#define LAT_MAX (1 << 20) /* latency samples kept per process and kind */

/* memmem without _GNU_SOURCE (which would clash with group_member). */
static const char *find(const char *h, size_t n, const char *needle, size_t k) {
  for (size_t i = 0; i + k <= n; i++)
    if (h[i] == needle[0] && memcmp(h + i, needle, k) == 0) return h + i;
  return NULL;
}

static uint64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ---- blocking setup helpers ---- */

static int put_json(int port, const char *token, const char *path, const char *body) {
  char req[2048];
  snprintf(req, sizeof req,
           "PUT %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
           "Content-Type: application/json\r\nContent-Length: %zu\r\nConnection: "
           "close\r\n\r\n%s",
           path, token, strlen(body), body);
  static char buf[8192];
  return bench_http(port, req, buf, sizeof buf, NULL);
}

static int tcp_to(int port, uint32_t src) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  struct sockaddr_in s = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(src)};
  struct sockaddr_in d = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if ((src && bind(fd, (struct sockaddr *)&s, sizeof s) != 0) ||
      connect(fd, (struct sockaddr *)&d, sizeof d) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* A WebSocket session authenticated by header; the fd after the 101. */
static int ws_connect(int port, const char *token, uint32_t src) {
  int fd = tcp_to(port, src);
  if (fd < 0) return -1;
  char req[512];
  int n =
      snprintf(req, sizeof req,
               "GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: tessera.v1\r\n"
               "Authorization: Bearer %s\r\n\r\n",
               token);
  if (write(fd, req, (size_t)n) != n) goto fail;
  char buf[1024];
  size_t len = 0;
  while (len < sizeof buf - 1) {
    ssize_t k = read(fd, buf + len, 1); /* byte by byte: nothing after the head */
    if (k <= 0) goto fail;
    len++;
    if (len >= 4 && memcmp(buf + len - 4, "\r\n\r\n", 4) == 0) break;
  }
  if (len < 12 || memcmp(buf, "HTTP/1.1 101", 12) != 0) goto fail;
  return fd;
fail:
  close(fd);
  return -1;
}

/* Appends a masked text frame of s[0..n) to out. */
static size_t frame(uint8_t *out, const char *s, size_t n) {
  uint8_t mask[4];
  randombytes_buf(mask, 4);
  size_t h = ws_write_frame_header(out, WS_OP_TEXT, true, n, mask);
  memcpy(out + h, s, n);
  ws_unmask(out + h, n, mask, 0);
  return h + n;
}

/* Reads one server frame's text (blocking) into a malloc'ed string. */
static char *ws_read_text(int fd) {
  uint8_t h[10];
  if (read(fd, h, 2) != 2) return NULL;
  uint64_t n = h[1] & 0x7f;
  if (n == 126) {
    if (read(fd, h + 2, 2) != 2) return NULL;
    n = (uint64_t)h[2] << 8 | h[3];
  } else if (n == 127) {
    if (read(fd, h + 2, 8) != 8) return NULL;
    n = 0;
    for (int i = 0; i < 8; i++) n = n << 8 | h[2 + i];
  }
  char *s = malloc(n + 1);
  size_t got = 0;
  while (s && got < n) {
    ssize_t k = read(fd, s + got, n - got);
    if (k <= 0) {
      free(s);
      return NULL;
    }
    got += (size_t)k;
  }
  if (s) s[n] = '\0';
  return s;
}

static char *b64s(bytes_t v) {
  size_t cap = v.len * 4 / 3 + 8, n = 0;
  char *s = malloc(cap);
  if (s && b64_encode(s, cap, v.ptr, v.len, B64_MODE_URL_NOPAD, &n) == 0) {
    s[n] = '\0';
    return s;
  }
  free(s);
  return NULL;
}

static group_identity *mls_ident(const bench_device *d) {
  uint8_t id[32];
  size_t g1 = 0, g2 = 0;
  if (b64_decode(id, 16, d->account_id, strlen(d->account_id), B64_MODE_URL_NOPAD, &g1) ||
      b64_decode(id + 16, 16, d->device_id, strlen(d->device_id), B64_MODE_URL_NOPAD,
                 &g2))
    return NULL;
  mls_credential cred = {.credential_type = MLS_CREDENTIAL_BASIC,
                         .identity = BYTES(id, 32)};
  buf_t cb;
  buf_init(&cb);
  msg_encode_credential(&cb, &cred);
  group_identity *gi = NULL;
  if (group_identity_from_seed(1, BYTES(d->seed, 32), buf_view(&cb), &gi) != 0) gi = NULL;
  buf_free(&cb);
  return gi;
}

/* One pair's setup: the conversation and the sender's message pool
 * (pre-encoded base64url). */
typedef struct {
  bench_device snd, rcv;
  char conv[23];
  char *pool[POOL];
} pair;

static int make_pair(int port, pair *p) {
  group_identity *a = mls_ident(&p->snd), *b = mls_ident(&p->rcv);
  mls_group *g = NULL;
  kp_secret *ks = NULL;
  buf_t gi, kp, commit, welcome, m;
  buf_init(&gi);
  buf_init(&kp);
  buf_init(&commit);
  buf_init(&welcome);
  buf_init(&m);
  uint8_t gid[16];
  randombytes_buf(gid, sizeof gid);
  bench_b64(gid, 16, p->conv, sizeof p->conv);
  int rc = a && b ? 0 : -1;
  if (!rc) rc = group_create(a, NULL, BYTES(gid, 16), NULL, &g);
  if (!rc) rc = group_info(g, true, &gi);
  if (!rc) rc = kp_create(b, 0, 0, &kp, &ks);
  bytes_t kv = buf_view(&kp);
  group_commit_params cp = {.add_key_packages = &kv, .n_adds = 1};
  if (!rc) rc = group_commit(g, &cp, &commit, &welcome);
  char *x = NULL, *y = NULL, *z = NULL, *req = NULL, *ans = NULL;
  int fd = -1;
  if (!rc) {
    x = b64s(buf_view(&gi));
    y = b64s(buf_view(&commit));
    z = b64s(buf_view(&welcome));
    size_t cap = strlen(x) + strlen(y) + strlen(z) + 512;
    req = malloc(cap);
    int n = snprintf(
        req, cap,
        "{\"op\":\"conversation.create\",\"id\":1,\"app\":\"social\","
        "\"kind\":\"direct\",\"members\":[{\"account\":\"%s\",\"app\":\"social\"}],"
        "\"group_info\":\"%s\",\"commit\":\"%s\",\"welcome\":\"%s\"}",
        p->rcv.account_id, x, y, z);
    uint8_t *f = malloc((size_t)n + 16);
    fd = ws_connect(port, p->snd.token, 0);
    size_t fl = f ? frame(f, req, (size_t)n) : 0;
    if (fd < 0 || !f || write(fd, f, fl) != (ssize_t)fl || !(ans = ws_read_text(fd)) ||
        !strstr(ans, "\"ok\""))
      rc = -1;
    if (rc && ans) fprintf(stderr, "bench_conv: create: %s\n", ans);
    free(f);
  }
  if (!rc) rc = group_merge_pending(g);
  for (int i = 0; !rc && i < POOL; i++) {
    char text[100];
    memset(text, 'x', sizeof text);
    buf_reset(&m);
    rc = group_protect(g, BYTES(text, sizeof text), BYTES_NONE, &m);
    if (!rc && !(p->pool[i] = b64s(buf_view(&m)))) rc = -1;
  }
  if (fd >= 0) close(fd);
  free(x);
  free(y);
  free(z);
  free(req);
  free(ans);
  kp_secret_free(ks);
  group_free(g);
  group_identity_free(a);
  group_identity_free(b);
  buf_free(&gi);
  buf_free(&kp);
  buf_free(&commit);
  buf_free(&welcome);
  buf_free(&m);
  return rc;
}

/* ---- the load ---- */

typedef struct {
  int fd;
  bool sender;
  int pair;
  uint8_t *in;
  size_t in_len, in_cap;
  uint8_t *out;
  size_t out_len, out_off, out_cap;
  /* sender */
  uint64_t next_seq; /* seq the next acknowledged send gets (the conversation is ours) */
  uint64_t sent, acked;
  uint64_t *t_send; /* by seq (ring of 1<<16) */
  uint64_t next_due_us;
} lconn;

typedef struct {
  uint64_t acked;
  uint32_t n_ack, n_push;
  uint32_t ack_us[LAT_MAX];
  uint32_t push_us[LAT_MAX];
} shared_stats;

static shared_stats *stats; /* one per process, MAP_SHARED */
static pair *pairs;
static int npairs, inflight = 16;
static double rate_per_sender; /* 0: as fast as acks allow */
static volatile int phase;     /* 0 warm-up, 1 measure, 2 stop (set by a timer) */

#define RING (1 << 16)

static void queue_send(lconn *c, const pair *p) {
  const char *m = p->pool[c->sent % POOL];
  char js[1400];
  int n = snprintf(
      js, sizeof js,
      "{\"op\":\"send\",\"id\":%llu,\"conversation\":\"%s\",\"client_id\":\"c%llu\","
      "\"message\":\"%s\"}",
      (unsigned long long)c->sent, p->conv, (unsigned long long)c->sent, m);
  if (c->out_cap - c->out_len < (size_t)n + 16) {
    c->out_cap = 2 * c->out_cap + (size_t)n + 16;
    c->out = realloc(c->out, c->out_cap);
  }
  c->out_len += frame(c->out + c->out_len, js, (size_t)n);
  c->t_send[(c->next_seq + (c->sent - c->acked)) % RING] = now_us();
  c->sent++;
}

static void flush(lconn *c) {
  while (c->out_off < c->out_len) {
    ssize_t k = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
    if (k <= 0) break;
    c->out_off += (size_t)k;
  }
  if (c->out_off == c->out_len) c->out_off = c->out_len = 0;
}

static void record(uint32_t *v, uint32_t *n, uint64_t us) {
  if (*n < LAT_MAX) v[(*n)++] = (uint32_t)(us > UINT32_MAX ? UINT32_MAX : us);
}

/* Parses whole frames in c->in; returns false on an error answer. */
static bool on_input(lconn *c, lconn *conns, shared_stats *st) {
  size_t off = 0;
  while (c->in_len - off >= 2) {
    uint8_t *h = c->in + off;
    uint64_t n = h[1] & 0x7f;
    size_t hl = 2;
    if (n == 126) {
      if (c->in_len - off < 4) break;
      n = (uint64_t)h[2] << 8 | h[3];
      hl = 4;
    } else if (n == 127) {
      if (c->in_len - off < 10) break;
      n = 0;
      for (int i = 0; i < 8; i++) n = n << 8 | h[2 + i];
      hl = 10;
    }
    if (c->in_len - off < hl + n) break;
    const char *t = (const char *)h + hl;
    if ((h[0] & 0x0f) == WS_OP_TEXT) {
      if (find(t, n, "\"push\"", 6)) {
        /* Receiver: the send time of this seq is known to its sender. */
        const char *sq = find(t, n, "\"seq\":", 6);
        lconn *s = &conns[2 * c->pair];
        if (sq && phase == 1) {
          uint64_t seq = strtoull(sq + 6, NULL, 10);
          record(st->push_us, &st->n_push, now_us() - s->t_send[seq % RING]);
        }
      } else if (find(t, n, "\"ok\"", 4)) {
        uint64_t now = now_us();
        if (phase == 1) {
          record(st->ack_us, &st->n_ack, now - c->t_send[c->next_seq % RING]);
          st->acked++;
        }
        c->next_seq++;
        c->acked++;
      } else {
        fprintf(stderr, "bench_conv: error answer: %.*s\n", (int)(n > 300 ? 300 : n), t);
        return false;
      }
    }
    off += hl + n;
  }
  memmove(c->in, c->in + off, c->in_len - off);
  c->in_len -= off;
  return true;
}

static int load(int k, int port, int first, int count, int seconds, int ready_fd,
                int go_fd) {
  shared_stats *st = &stats[k];
  lconn *conns = calloc((size_t)npairs * 2, sizeof *conns);
  int ep = epoll_create1(0);
  uint32_t src = 0x7f000002u + (uint32_t)k;
  for (int i = first; i < first + count; i++) {
    for (int r = 0; r < 2; r++) {
      lconn *c = &conns[2 * i + r];
      c->sender = r == 0;
      c->pair = i;
      c->fd = ws_connect(port, r == 0 ? pairs[i].snd.token : pairs[i].rcv.token, src);
      if (c->fd < 0) {
        fprintf(stderr, "bench_conv: load %d: session for pair %d failed\n", k, i);
        return 1;
      }
      fcntl(c->fd, F_SETFL, O_NONBLOCK);
      c->in_cap = 1 << 20;
      c->in = malloc(c->in_cap);
      c->out_cap = 1 << 16;
      c->out = malloc(c->out_cap);
      c->t_send = calloc(RING, sizeof *c->t_send);
      c->next_seq = 1;
      struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
      epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    }
  }
  char x = 'R';
  if (write(ready_fd, &x, 1) != 1) return 1;
  if (read(go_fd, &x, 1) < 0) return 1; /* EOF is the start signal */
  uint64_t t0 = now_us(), warm = t0 + 1000000, end = warm + (uint64_t)seconds * 1000000;
  double gap = rate_per_sender > 0 ? 1e6 / rate_per_sender : 0;
  for (int i = first; i < first + count; i++) {
    lconn *c = &conns[2 * i];
    c->next_due_us = t0;
    if (!gap)
      for (int j = 0; j < inflight; j++) queue_send(c, &pairs[i]);
    flush(c);
  }
  struct epoll_event evs[256];
  while (now_us() < end) {
    uint64_t now = now_us();
    phase = now < warm ? 0 : 1;
    if (gap) /* paced: send what is due, at most `inflight` outstanding */
      for (int i = first; i < first + count; i++) {
        lconn *c = &conns[2 * i];
        while (c->next_due_us <= now && c->sent - c->acked < (uint64_t)inflight) {
          queue_send(c, &pairs[i]);
          c->next_due_us += (uint64_t)gap;
        }
        flush(c);
      }
    int n = epoll_wait(ep, evs, 256, gap ? 1 : 100);
    for (int e = 0; e < n; e++) {
      lconn *c = evs[e].data.ptr;
      for (;;) {
        if (c->in_cap - c->in_len < 65536) {
          c->in_cap *= 2;
          c->in = realloc(c->in, c->in_cap);
        }
        ssize_t r = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);
        if (r <= 0) break;
        c->in_len += (size_t)r;
      }
      uint64_t before = c->acked;
      if (!on_input(c, conns, st)) return 1;
      if (c->sender && !gap) {
        for (uint64_t j = before; j < c->acked; j++) queue_send(c, &pairs[c->pair]);
        flush(c);
      }
    }
  }
  return 0;
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

static double pct(uint32_t *v, size_t n, double p) {
  if (!n) return 0;
  size_t i = (size_t)(p * (double)(n - 1));
  return v[i] / 1000.0;
}

int main(int argc, char **argv) {
  int workers = 2, procs = 2, seconds = 3, runs = 3;
  double total_rate = 0;
  npairs = 32;
  char server[PATH_MAX] = "";
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-w") && i + 1 < argc)
      workers = atoi(argv[++i]);
    else if (!strcmp(argv[i], "-p") && i + 1 < argc)
      procs = atoi(argv[++i]);
    else if (!strcmp(argv[i], "-s") && i + 1 < argc)
      npairs = atoi(argv[++i]);
    else if (!strcmp(argv[i], "-k") && i + 1 < argc)
      inflight = atoi(argv[++i]);
    else if (!strcmp(argv[i], "-t") && i + 1 < argc)
      seconds = atoi(argv[++i]);
    else if (!strcmp(argv[i], "-r") && i + 1 < argc)
      runs = atoi(argv[++i]);
    else if (!strcmp(argv[i], "-R") && i + 1 < argc)
      total_rate = atof(argv[++i]);
    else if (!strcmp(argv[i], "--server") && i + 1 < argc)
      snprintf(server, sizeof server, "%s", argv[++i]);
    else {
      fprintf(stderr,
              "usage: %s [-w workers] [-p procs] [-s pairs] [-k in-flight] [-t seconds] "
              "[-r runs] [-R total msgs/s] [--server path]\n",
              argv[0]);
      return 2;
    }
  }
  if (npairs < procs || npairs > MAX_PAIRS || procs < 1 || inflight < 1 ||
      inflight > 1000) {
    fprintf(stderr, "bench_conv: need procs <= pairs <= %d, 1 <= in-flight <= 1000\n",
            MAX_PAIRS);
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
    printf("bench_conv: skipped (no tesserad at %s)\n", server);
    return 0;
  }
  if (sodium_init() < 0 || crypto_init() != 0) return 2;
  rate_per_sender = total_rate > 0 ? total_rate / npairs : 0;
  static const char *const extra[] = {"--rate-per-address", "0", "--rate-per-account",
                                      "0", NULL};
  int rc = 1;
  bench_server srv;
  int port = bench_server_start(&srv, server, workers, extra);
  pairs = calloc((size_t)npairs, sizeof *pairs);
  if (!port || !pairs) goto out;
  for (uint64_t dl = bench_clock_ms() + 5000; bench_clock_ms() < dl; poll(NULL, 0, 20)) {
    static char b[256];
    if (bench_http(port, "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                   b, sizeof b, NULL) == 200)
      break;
  }
  poll(NULL, 0, 300); /* workers connect to the delivery service */
  for (int i = 0; i < npairs; i++) {
    char l1[32], l2[32], body[128];
    snprintf(l1, sizeof l1, "snd%d", i);
    snprintf(l2, sizeof l2, "rcv%d", i);
    bench_src = 0x7f000064u + (uint32_t)(i / 10); /* 20 registrations per address */
    if (bench_register_device(port, l1, &pairs[i].snd) ||
        bench_register_device(port, l2, &pairs[i].rcv)) {
      fprintf(stderr, "bench_conv: registering failed\n");
      goto out;
    }
    snprintf(body, sizeof body, "{\"handle\":\"%s\"}", l1);
    int a = put_json(port, pairs[i].snd.token, "/v1/apps/social/profile", body);
    snprintf(body, sizeof body, "{\"handle\":\"%s\"}", l2);
    int b = put_json(port, pairs[i].rcv.token, "/v1/apps/social/profile", body);
    int c = put_json(port, pairs[i].rcv.token, "/v1/apps/social/reachability",
                     "{\"from\":{\"social\":\"everyone\"}}");
    bench_src = 0;
    if (a != 201 || b != 201 || c != 200 || make_pair(port, &pairs[i]) != 0) {
      fprintf(stderr, "bench_conv: setting pair %d up failed (%d %d %d)\n", i, a, b, c);
      goto out;
    }
  }
  stats = mmap(NULL, sizeof *stats * (size_t)procs, PROT_READ | PROT_WRITE,
               MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (stats == MAP_FAILED) goto out;
  printf("bench_conv: %d workers, %d load processes, %d conversations (one sender each), "
         "%d sends in flight per sender%s, %d runs of %d s after 1 s warm-up\n",
         workers, procs, npairs, inflight, total_rate > 0 ? " (paced)" : "", runs,
         seconds);
  double *rates = calloc((size_t)runs, sizeof *rates);
  rc = 0;
  for (int run = 0; run < runs && rc == 0; run++) {
    memset(stats, 0, sizeof *stats * (size_t)procs);
    int ready[2], go[2];
    if (pipe(ready) || pipe(go)) return 1;
    pid_t *kids = calloc((size_t)procs, sizeof *kids);
    int per = npairs / procs;
    for (int k = 0; k < procs; k++) {
      int first = k * per, count = k == procs - 1 ? npairs - first : per;
      kids[k] = fork();
      if (kids[k] == 0) {
        close(ready[0]);
        close(go[1]);
        _exit(load(k, port, first, count, seconds, ready[1], go[0]));
      }
    }
    close(ready[1]);
    close(go[0]);
    for (int k = 0; k < procs; k++) {
      char c;
      if (read(ready[0], &c, 1) != 1) rc = 1;
    }
    close(go[1]); /* EOF: every process starts */
    for (int k = 0; k < procs; k++) {
      int st;
      waitpid(kids[k], &st, 0);
      if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) rc = 1;
    }
    close(ready[0]);
    free(kids);
    uint64_t acked = 0;
    size_t na = 0, np = 0;
    for (int k = 0; k < procs; k++) {
      acked += stats[k].acked;
      na += stats[k].n_ack;
      np += stats[k].n_push;
    }
    uint32_t *a = malloc((na + 1) * sizeof *a), *p = malloc((np + 1) * sizeof *p);
    size_t ia = 0, ip = 0;
    for (int k = 0; k < procs; k++) {
      memcpy(a + ia, stats[k].ack_us, stats[k].n_ack * sizeof *a);
      ia += stats[k].n_ack;
      memcpy(p + ip, stats[k].push_us, stats[k].n_push * sizeof *p);
      ip += stats[k].n_push;
    }
    qsort(a, na, sizeof *a, cmp_u32);
    qsort(p, np, sizeof *p, cmp_u32);
    rates[run] = (double)acked / seconds;
    printf("  run %d: %.0f acknowledged msgs/s; send->ack p50 %.2f p90 %.2f p99 %.2f ms; "
           "send->push p50 %.2f p90 %.2f p99 %.2f ms\n",
           run + 1, rates[run], pct(a, na, .5), pct(a, na, .9), pct(a, na, .99),
           pct(p, np, .5), pct(p, np, .9), pct(p, np, .99));
    free(a);
    free(p);
  }
  if (rc == 0) printf("  median: %.0f acknowledged msgs/s\n", bench_median(rates, runs));
  free(rates);
out:
  if (bench_server_stop(&srv)) rc = 1;
  return rc;
}
