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
 * measure the load generator's AES instead. The server refuses the same
 * PrivateMessage twice in an epoch (a replay), so each send carries a
 * counter in the last bytes of its ciphertext (the AEAD tag, which the
 * server cannot check; receivers here do not decrypt).
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
/* One conversation: a sender and its receivers (one for a direct
 * conversation, many for the fan-out group of -g). */
typedef struct {
  bench_device snd;
  bench_device *rcv;
  int nrcv;
  char conv[23];
  char *pool[POOL];
  uint64_t first_seq; /* seq of its first message (membership commits come first) */
} pair;

#define ADD_CHUNK 63 /* members per create / conversation.members call */

/* Sends one op over fd and waits for an "ok" answer (pushes skipped). */
static int ws_op_ok(int fd, const char *req) {
  size_t n = strlen(req);
  uint8_t *f = malloc(n + 16);
  int rc = -1;
  if (f) {
    size_t fl = frame(f, req, n);
    if (write(fd, f, fl) == (ssize_t)fl) {
      char *ans;
      while ((ans = ws_read_text(fd)) && strstr(ans, "\"push\"")) free(ans);
      if (ans && strstr(ans, "\"ok\"")) rc = 0;
      if (ans && rc) fprintf(stderr, "bench_conv: %.300s\n", ans);
      free(ans);
    }
  }
  free(f);
  return rc;
}

static int make_pair(int port, pair *p) {
  group_identity *a = mls_ident(&p->snd);
  mls_group *g = NULL;
  buf_t gi, commit, welcome, m, member;
  buf_init(&gi);
  buf_init(&commit);
  buf_init(&welcome);
  buf_init(&m);
  buf_init(&member);
  uint8_t gid[16];
  randombytes_buf(gid, sizeof gid);
  bench_b64(gid, 16, p->conv, sizeof p->conv);
  p->first_seq = 1;
  int rc = a ? 0 : -1;
  if (!rc) rc = group_create(a, NULL, BYTES(gid, 16), NULL, &g);
  if (!rc) rc = group_info(g, true, &gi);
  int fd = rc ? -1 : ws_connect(port, p->snd.token, 0);
  if (fd < 0) rc = -1;
  /* Members in chunks: the first with conversation.create, the rest with
   * conversation.members (adds only: no UpdatePath, so quick). */
  for (int first = 0; !rc && first < p->nrcv; first += ADD_CHUNK) {
    int n = p->nrcv - first < ADD_CHUNK ? p->nrcv - first : ADD_CHUNK;
    buf_t kps[ADD_CHUNK];
    bytes_t kv[ADD_CHUNK];
    buf_reset(&member);
    for (int i = 0; i < n; i++) {
      buf_init(&kps[i]);
      group_identity *b = mls_ident(&p->rcv[first + i]);
      kp_secret *ks = NULL;
      if (!b || kp_create(b, 0, 0, &kps[i], &ks)) rc = -1;
      kv[i] = buf_view(&kps[i]);
      kp_secret_free(ks);
      group_identity_free(b);
      char e[96];
      snprintf(e, sizeof e, "%s{\"account\":\"%s\",\"app\":\"social\"}", i ? "," : "",
               p->rcv[first + i].account_id);
      buf_append(&member, e, strlen(e));
    }
    buf_reset(&commit);
    buf_reset(&welcome);
    group_commit_params cp = {.add_key_packages = kv, .n_adds = (size_t)n};
    if (!rc) rc = group_commit(g, &cp, &commit, &welcome);
    for (int i = 0; i < n; i++) buf_free(&kps[i]);
    char *x = rc ? NULL : b64s(buf_view(&gi)), *y = rc ? NULL : b64s(buf_view(&commit)),
         *z = rc ? NULL : b64s(buf_view(&welcome));
    if (!rc && (!x || !y || !z)) rc = -1;
    size_t cap = rc ? 0 : strlen(x) + strlen(y) + strlen(z) + member.len + 512;
    char *req = rc ? NULL : malloc(cap);
    if (req && first == 0)
      snprintf(
          req, cap,
          "{\"op\":\"conversation.create\",\"id\":1,\"app\":\"social\","
          "\"kind\":\"%s\",\"members\":[%.*s],\"group_info\":\"%s\",\"commit\":\"%s\","
          "\"welcome\":\"%s\"}",
          p->nrcv == 1 ? "direct" : "group", (int)member.len, (const char *)member.ptr, x,
          y, z);
    else if (req)
      snprintf(req, cap,
               "{\"op\":\"conversation.members\",\"id\":2,\"conversation\":\"%s\","
               "\"add\":[%.*s],\"commit\":\"%s\",\"welcome\":\"%s\"}",
               p->conv, (int)member.len, (const char *)member.ptr, y, z);
    if (!rc && (!req || ws_op_ok(fd, req))) rc = -1;
    if (!rc) rc = group_merge_pending(g);
    if (!rc && first > 0) p->first_seq++; /* conversation.members logs its commit */
    free(x);
    free(y);
    free(z);
    free(req);
  }
  for (int i = 0; !rc && i < POOL; i++) {
    char text[100];
    memset(text, 'x', sizeof text);
    buf_reset(&m);
    rc = group_protect(g, BYTES(text, sizeof text), BYTES_NONE, &m);
    if (!rc && !(p->pool[i] = b64s(buf_view(&m)))) rc = -1;
  }
  if (fd >= 0) close(fd);
  group_free(g);
  group_identity_free(a);
  buf_free(&gi);
  buf_free(&commit);
  buf_free(&welcome);
  buf_free(&m);
  buf_free(&member);
  return rc;
}

/* ---- the load ---- */

typedef struct {
  int fd;
  bool sender;
  int pair;
  int rcv; /* receivers: which of the pair's */
  uint8_t *in;
  size_t in_len, in_cap;
  uint8_t *out;
  size_t out_len, out_off, out_cap;
  /* sender */
  uint64_t next_seq; /* seq the next acknowledged send gets (the conversation is ours) */
  uint64_t sent, acked;
  uint64_t *t_send; /* by seq (ring of 1<<16) */
  uint64_t next_due_us;
  /* acknowledgements, as clients send them: the last seq processed (a
   * receiver's last push, a sender's last acknowledged send) */
  uint64_t seen_seq, acked_cursor;
} lconn;

typedef struct {
  uint64_t acked;
  uint64_t pushes; /* messages pushed to receivers in the measured window */
  uint32_t n_ack, n_push;
  uint32_t ack_us[LAT_MAX];
  uint32_t push_us[LAT_MAX];
} shared_stats;

static shared_stats *stats; /* one per process, MAP_SHARED */
static pair *pairs;
static int npairs, inflight = 16;
static double rate_per_sender; /* 0: as fast as acks allow */
static volatile int phase;     /* 0 warm-up, 1 measure, 2 stop (set by a timer) */
static int group_size;         /* -g: one group with this many receivers */
static uint64_t *tsend;        /* per pair, send time by seq (ring): MAP_SHARED */
static uint64_t *seq_next;     /* per pair, the seq its next message gets: MAP_SHARED */
static int run_no; /* client ids differ between runs (the server de-duplicates) */

#define RING (1 << 16)

static void queue_send(lconn *c, const pair *p) {
  const char *m = p->pool[c->sent % POOL];
  char js[1400];
  int n = snprintf(
      js, sizeof js,
      "{\"op\":\"send\",\"id\":%llu,\"conversation\":\"%s\",\"client_id\":\"r%d-%llu\","
      "\"message\":\"%s\"}",
      (unsigned long long)c->sent, p->conv, run_no, (unsigned long long)c->sent, m);
  if (c->out_cap - c->out_len < (size_t)n + 16) {
    c->out_cap = 2 * c->out_cap + (size_t)n + 16;
    c->out = realloc(c->out, c->out_cap);
  }
  /* Unique bytes per send: 10 base64url digits (60 bits) of run and count,
   * just before the message's last character (which may carry padding
   * bits), inside the tag. */
  static const char digits[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  uint64_t tag = (uint64_t)run_no << 40 ^ (uint64_t)c->sent;
  for (int k = 0; k < 10; k++) js[n - 4 - k] = digits[(tag >> (6 * k)) & 63];
  c->out_len += frame(c->out + c->out_len, js, (size_t)n);
  c->t_send[(c->next_seq + (c->sent - c->acked)) % RING] = now_us();
  c->sent++;
}

/* Acknowledges what c has seen once it is ACK_EVERY past the last ack, so
 * the server deletes what every device has (as clients do, per batch). */
#define ACK_EVERY 64
static void maybe_ack(lconn *c, const pair *p) {
  if (c->seen_seq < c->acked_cursor + ACK_EVERY) return;
  char js[200];
  int n = snprintf(js, sizeof js,
                   "{\"op\":\"ack\",\"id\":%llu,\"conversation\":\"%s\",\"seq\":%llu}",
                   (unsigned long long)(1ull << 50) + c->seen_seq, p->conv,
                   (unsigned long long)c->seen_seq);
  if (c->out_cap - c->out_len < (size_t)n + 16) {
    c->out_cap = 2 * c->out_cap + (size_t)n + 16;
    c->out = realloc(c->out, c->out_cap);
  }
  c->out_len += frame(c->out + c->out_len, js, (size_t)n);
  c->acked_cursor = c->seen_seq;
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
static bool on_input(lconn *c, shared_stats *st) {
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
        if (sq) {
          uint64_t seq = strtoull(sq + 6, NULL, 10);
          if (seq > c->seen_seq) c->seen_seq = seq;
        }
        if (sq && phase == 1) {
          uint64_t seq = strtoull(sq + 6, NULL, 10);
          record(st->push_us, &st->n_push,
                 now_us() - tsend[(size_t)c->pair * RING + seq % RING]);
          st->pushes++;
        }
      } else if (find(t, n, "\"cursor\"", 8)) {
        /* the answer to an ack */
      } else if (find(t, n, "\"duplicate\":true", 16)) {
        fprintf(stderr, "bench_conv: a send was answered as a duplicate\n");
        return false;
      } else if (find(t, n, "\"ok\"", 4)) {
        uint64_t now = now_us();
        if (phase == 1) {
          record(st->ack_us, &st->n_ack, now - c->t_send[c->next_seq % RING]);
          st->acked++;
        }
        c->seen_seq = c->next_seq;
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

static int open_conn(lconn *c, int ep, int port, const char *token, uint32_t src) {
  c->fd = ws_connect(port, token, src);
  if (c->fd < 0) return -1;
  fcntl(c->fd, F_SETFL, O_NONBLOCK);
  c->in_cap = 1 << 20;
  c->in = malloc(c->in_cap);
  c->out_cap = 1 << 16;
  c->out = malloc(c->out_cap);
  c->next_seq = 1;
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
  epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
  return 0;
}

/* Process k drives the senders of pairs [first, first + count) and their
 * receivers; with -g (one pair, many receivers) it drives the receivers
 * r with r % procs == k, and process 0 the sender. */
static int load(int k, int procs, int port, int first, int count, int seconds,
                int ready_fd, int go_fd) {
  shared_stats *st = &stats[k];
  size_t max = (size_t)npairs + (size_t)(group_size ? group_size : npairs);
  lconn *conns = calloc(max, sizeof *conns);
  lconn **senders = calloc((size_t)npairs, sizeof *senders);
  int ep = epoll_create1(0), nc = 0;
  uint32_t src = 0x7f000002u + (uint32_t)k;
  for (int i = first; i < first + count; i++) {
    lconn *c = &conns[nc++];
    c->sender = true;
    c->pair = i;
    c->t_send = tsend + (size_t)i * RING;
    senders[i] = c;
    if (open_conn(c, ep, port, pairs[i].snd.token, src)) goto fail;
    c->next_seq = seq_next[i]; /* runs go on where the last one stopped */
    for (int r = 0; r < pairs[i].nrcv; r++) {
      if (group_size && r % procs != k) continue;
      lconn *d = &conns[nc++];
      d->pair = i;
      d->rcv = r;
      if (open_conn(d, ep, port, pairs[i].rcv[r].token, src)) goto fail;
    }
  }
  for (int r = 0; group_size && count == 0 && r < pairs[0].nrcv; r++) {
    if (r % procs != k) continue;
    lconn *d = &conns[nc++];
    d->rcv = r;
    if (open_conn(d, ep, port, pairs[0].rcv[r].token, src)) goto fail;
  }
  goto ready;
fail:
  fprintf(stderr, "bench_conv: load %d: a session failed to open\n", k);
  return 1;
ready:;
  char x = 'R';
  if (write(ready_fd, &x, 1) != 1) return 1;
  if (read(go_fd, &x, 1) < 0) return 1; /* EOF is the start signal */
  uint64_t t0 = now_us(), warm = t0 + 1000000, end = warm + (uint64_t)seconds * 1000000;
  double gap = rate_per_sender > 0 ? 1e6 / rate_per_sender : 0;
  for (int i = first; i < first + count; i++) {
    lconn *c = senders[i];
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
        lconn *c = senders[i];
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
      if (!on_input(c, st)) return 1;
      if (c->sender && !gap)
        for (uint64_t j = before; j < c->acked; j++) queue_send(c, &pairs[c->pair]);
      maybe_ack(c, &pairs[c->pair]);
      flush(c);
    }
  }
  /* Sent and not yet acknowledged will still be stored: the next run's
   * messages come after them. */
  for (int i = first; i < first + count; i++) {
    lconn *c = senders[i];
    fcntl(c->fd, F_SETFL, 0); /* what is queued goes out, so the count is exact */
    flush(c);
    seq_next[i] = c->next_seq + (c->sent - c->acked);
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
    else if (!strcmp(argv[i], "-g") && i + 1 < argc)
      group_size = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--server") && i + 1 < argc)
      snprintf(server, sizeof server, "%s", argv[++i]);
    else {
      fprintf(stderr,
              "usage: %s [-w workers] [-p procs] [-s pairs] [-k in-flight] [-t seconds] "
              "[-r runs] [-R total msgs/s] [-g group size] [--server path]\n",
              argv[0]);
      return 2;
    }
  }
  if (group_size) npairs = 1; /* one group: one sender, group_size receivers */
  if ((!group_size && npairs < procs) || npairs > MAX_PAIRS || procs < 1 ||
      inflight < 1 || inflight > 1000 || group_size < 0 || group_size > 5000) {
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
  int accounts = 0;   /* registrations so far: 20 per source address */
  for (int i = 0; i < npairs; i++) {
    char l[32], body[128];
    pairs[i].nrcv = group_size ? group_size : 1;
    pairs[i].rcv = calloc((size_t)pairs[i].nrcv, sizeof *pairs[i].rcv);
    for (int r = -1; r < pairs[i].nrcv; r++) {
      bench_device *d = r < 0 ? &pairs[i].snd : &pairs[i].rcv[r];
      snprintf(l, sizeof l, r < 0 ? "snd%d" : "rcv%d_%d", i, r);
      bench_src = 0x7f000064u + (uint32_t)(accounts++ / 20);
      int rc1 = !pairs[i].rcv || bench_register_device(port, l, d);
      snprintf(body, sizeof body, "{\"handle\":\"%s\"}", l);
      bench_src = 0;
      int a = rc1 ? 0 : put_json(port, d->token, "/v1/apps/social/profile", body);
      int c = r < 0 || a != 201 ? 200
                                : put_json(port, d->token, "/v1/apps/social/reachability",
                                           "{\"from\":{\"social\":\"everyone\"}}");
      if (rc1 || a != 201 || c != 200) {
        fprintf(stderr, "bench_conv: setting %s up failed (%d %d)\n", l, a, c);
        goto out;
      }
    }
    if (make_pair(port, &pairs[i]) != 0) {
      fprintf(stderr, "bench_conv: the conversation of %d could not be made\n", i);
      goto out;
    }
  }
  tsend = mmap(NULL, (size_t)npairs * RING * sizeof *tsend, PROT_READ | PROT_WRITE,
               MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  seq_next = mmap(NULL, (size_t)npairs * sizeof *seq_next, PROT_READ | PROT_WRITE,
                  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (tsend == MAP_FAILED || seq_next == MAP_FAILED) goto out;
  for (int i = 0; i < npairs; i++) seq_next[i] = pairs[i].first_seq;
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
    run_no = run;
    memset(stats, 0, sizeof *stats * (size_t)procs);
    int ready[2], go[2];
    if (pipe(ready) || pipe(go)) return 1;
    pid_t *kids = calloc((size_t)procs, sizeof *kids);
    int per = npairs / procs;
    for (int k = 0; k < procs; k++) {
      int first = k * per, count = k == procs - 1 ? npairs - first : per;
      if (group_size) first = 0, count = k == 0; /* process 0 sends */
      kids[k] = fork();
      if (kids[k] == 0) {
        close(ready[0]);
        close(go[1]);
        _exit(load(k, procs, port, first, count, seconds, ready[1], go[0]));
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
    uint64_t acked = 0, pushes = 0;
    size_t na = 0, np = 0;
    for (int k = 0; k < procs; k++) {
      acked += stats[k].acked;
      pushes += stats[k].pushes;
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
    rates[run] = group_size ? (double)pushes / seconds : (double)acked / seconds;
    if (group_size)
      printf(
          "  run %d: %.0f deliveries/s to a %d-member group (%.0f msgs/s acknowledged)\n",
          run + 1, rates[run], group_size + 1, (double)acked / seconds);
    if (!group_size) printf("  run %d: %.0f acknowledged msgs/s;", run + 1, rates[run]);
    printf("%s send->ack p50 %.2f p90 %.2f p99 %.2f ms; send->push p50 %.2f p90 %.2f "
           "p99 %.2f ms\n",
           group_size ? "        " : "", pct(a, na, .5), pct(a, na, .9), pct(a, na, .99),
           pct(p, np, .5), pct(p, np, .9), pct(p, np, .99));
    free(a);
    free(p);
  }
  if (rc == 0)
    printf("  median: %.0f %s\n", bench_median(rates, runs),
           group_size ? "deliveries/s" : "acknowledged msgs/s");
  free(rates);
out:
  if (bench_server_stop(&srv)) rc = 1;
  return rc;
}
