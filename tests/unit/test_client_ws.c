/* libtessera's realtime session (src/client/ws.c, tsr_ws_*).
 *
 * Against a scripted peer on a loopback socket (a thread): answers given
 * in the reverse order of the calls and one of them fragmented, a push,
 * the server's ping answered with a pong, every client frame masked with
 * keys that differ, the client's keepalive ping after silence, a Close
 * answered with the same code, and an upgrade answer whose
 * Sec-WebSocket-Accept does not match the key.
 *
 * Against a real tesserad (two workers, random port, temporary data dir,
 * request limits off) with accounts registered through libtessera:
 * connect and whoami, ping, unknown_op, many calls in flight matched by
 * id, malformed fields refused locally, a call made while the server is
 * down that completes after it restarts, a call in flight when the server
 * dies ("network", with the server stopped by SIGSTOP first so that it
 * cannot answer), a call that times out, and pushes: a conversation made
 * through one account's session with MLS messages from the library, whose
 * Welcome and first message reach the other account's session through
 * on_push and open there. Every wait is bounded by a deadline. */
#include <cjson/cJSON.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client/client.h"
#include "mls/crypto.h"
#include "mls/group.h"
#include "proto/base64.h"
#include "proto/ws.h"
#include "server_harness.h"
#include "tessera/tessera.h"
#include "test.h"

static server srv;
static char tmpdir[64];
static uint16_t fixed_port; /* the server keeps it across restarts */

/* ---- recorders ------------------------------------------------------------ */

typedef struct {
  int pushes;
  char push[8][4096]; /* the first pushes, NUL-terminated */
  int connected, disconnected, state;
} events;

static void on_push(void *arg, const char *json, size_t len) {
  events *e = arg;
  if (e->pushes < 8)
    snprintf(e->push[e->pushes], sizeof e->push[0], "%.*s", (int)len, json);
  e->pushes++;
}

static void on_state(void *arg, int state) {
  events *e = arg;
  e->state = state;
  if (state == TSR_WS_CONNECTED)
    e->connected++;
  else
    e->disconnected++;
}

/* One call's outcome; calls counts the callbacks. */
typedef struct {
  int calls;
  int err, status;
  char code[64];
  char body[4096];
} outcome;

static void on_result(void *arg, const tsr_result *res) {
  outcome *o = arg;
  o->calls++;
  o->err = res->err;
  o->status = res->status;
  snprintf(o->code, sizeof o->code, "%s", res->code);
  snprintf(o->body, sizeof o->body, "%.*s", (int)res->body_len, res->body);
}

static int outcome_done(void *arg) { return ((outcome *)arg)->calls > 0; }

static tsr_client *new_client(const char *name, uint16_t port) {
  char path[128];
  snprintf(path, sizeof path, "%s/%s", tmpdir, name);
  tsr_client_config cfg = {.port = port,
                           .state_path = path,
                           .backoff_initial_ms = 20,
                           .backoff_max_ms = 100,
                           .connect_timeout_ms = 2000,
                           .request_timeout_ms = 5000};
  tsr_client *c = NULL;
  CHECK_OK(tsr_client_new(&cfg, &c));
  return c;
}

static tsr_ws *new_ws(tsr_client *c, events *e, const tsr_ws_config *over) {
  tsr_ws_config cfg = over ? *over : (tsr_ws_config){0};
  cfg.on_push = on_push;
  cfg.on_state = on_state;
  cfg.arg = e;
  tsr_ws *s = NULL;
  CHECK_OK(tsr_ws_new(c, &cfg, &s));
  return s;
}

/* ---- the scripted peer ------------------------------------------------------ */

typedef struct {
  int lfd;
  int mode; /* 0: the full script; 1: a wrong Sec-WebSocket-Accept */
  int ping_ms;
  char fail[256]; /* first failed expectation, "" when all held */
  uint8_t masks[16][4];
  int nmasks;
} peer;

static void peer_fail(peer *p, const char *what) {
  if (!p->fail[0]) snprintf(p->fail, sizeof p->fail, "%s", what);
}

/* Reads one frame into m (payload unmasked); records its mask. */
static bool peer_frame(peer *p, reader *r, ws_msg *m, bool *masked) {
  uint64_t deadline = now_ms() + DEADLINE_MS;
  ws_limits lim = {.max_frame = sizeof m->data - 1, .max_message = sizeof m->data - 1};
  ws_frame f;
  int h;
  for (;;) {
    h = r->len ? ws_parse_frame((uint8_t *)r->buf, r->len, &f, &lim) : WS_INCOMPLETE;
    if (h < 0) { /* the server role refuses unmasked frames */
      *masked = false;
      return false;
    }
    if (h > 0 && r->len >= (size_t)h + f.payload_len) break;
    if (!reader_fill(r, deadline)) return false;
  }
  *masked = f.masked;
  if (f.masked && p->nmasks < 16) memcpy(p->masks[p->nmasks++], f.mask, 4);
  m->opcode = f.opcode;
  m->len = (size_t)f.payload_len;
  memcpy(m->data, r->buf + h, m->len);
  ws_unmask((uint8_t *)m->data, m->len, f.mask, 0);
  m->data[m->len] = '\0';
  m->close_code = 0;
  if (f.opcode == WS_OP_CLOSE && m->len >= 2)
    m->close_code = (uint16_t)((uint8_t)m->data[0] << 8 | (uint8_t)m->data[1]);
  reader_consume(r, (size_t)h + m->len);
  return true;
}

/* The next frame that is not a pong (pongs answer our pings). */
static bool peer_next(peer *p, reader *r, ws_msg *m) {
  bool masked = false;
  for (;;) {
    if (!peer_frame(p, r, m, &masked)) {
      peer_fail(p, masked ? "no frame" : "unmasked or bad frame");
      return false;
    }
    if (!masked) {
      peer_fail(p, "a client frame was not masked");
      return false;
    }
    if (m->opcode != WS_OP_PONG) return true;
  }
}

/* Server frames are unmasked. */
static bool peer_send(int fd, uint8_t op, bool fin, const char *s) {
  return ws_send(fd, op, fin, s, strlen(s), false);
}

static void *peer_main(void *arg) {
  peer *p = arg;
  static reader r;
  static ws_msg m;
  struct pollfd pl = {.fd = p->lfd, .events = POLLIN};
  if (poll(&pl, 1, DEADLINE_MS) != 1) {
    peer_fail(p, "no connection");
    return NULL;
  }
  r.fd = accept(p->lfd, NULL, NULL);
  r.len = 0;
  if (r.fd < 0) {
    peer_fail(p, "accept");
    return NULL;
  }
  /* The upgrade request. */
  uint64_t deadline = now_ms() + DEADLINE_MS;
  char *end = NULL;
  for (;;) {
    r.buf[r.len < sizeof r.buf ? r.len : sizeof r.buf - 1] = '\0';
    if ((end = strstr(r.buf, "\r\n\r\n")) || !reader_fill(&r, deadline)) break;
  }
  if (!end) {
    peer_fail(p, "no upgrade request");
    goto out;
  }
  end[2] = '\0'; /* keep the last field's CRLF */
  char *key = strstr(r.buf, "Sec-WebSocket-Key: ");
  char accept_b[WS_ACCEPT_LEN + 1];
  if (strncmp(r.buf, "GET /v1/ws HTTP/1.1\r\n", 21) ||
      !strstr(r.buf, "\r\nUpgrade: websocket\r\n") ||
      !strstr(r.buf, "\r\nSec-WebSocket-Version: 13\r\n") ||
      !strstr(r.buf, "\r\nSec-WebSocket-Protocol: tessera.v1\r\n") ||
      !strstr(r.buf, "\r\nAuthorization: Bearer peer-token\r\n") || !key ||
      ws_accept_key(key + 19, WS_KEY_LEN, accept_b) != 0) {
    peer_fail(p, "bad upgrade request");
    fprintf(stderr, "  request: %s\n", r.buf);
    goto out;
  }
  if (p->mode == 1) accept_b[0] = accept_b[0] == 'A' ? 'B' : 'A';
  reader_consume(&r, (size_t)(end + 4 - r.buf));
  char ans[512];
  snprintf(ans, sizeof ans,
           "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
           "Sec-WebSocket-Protocol: tessera.v1\r\n\r\n",
           accept_b);
  if (!send_str(r.fd, ans)) goto out;
  if (p->mode == 1) { /* the client must give up on this connection */
    if (!wait_closed(r.fd, DEADLINE_MS, NULL)) peer_fail(p, "bad accept kept open");
    goto out;
  }
  /* Three calls, ids 1..3, answered in reverse order; the last answer
   * (to id 1) in three fragments. */
  long ids[3];
  char ops[3][16];
  for (int i = 0; i < 3; i++) {
    if (!peer_next(p, &r, &m)) goto out;
    cJSON *j = cJSON_Parse(m.data);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
    if (m.opcode != WS_OP_TEXT || !cJSON_IsNumber(id)) {
      peer_fail(p, "a call is not a text message with an id");
      cJSON_Delete(j);
      goto out;
    }
    ids[i] = (long)id->valuedouble;
    snprintf(ops[i], sizeof ops[i], "%s", json_str(j, "op"));
    cJSON_Delete(j);
  }
  /* Our ping: the pong echoes its payload. */
  peer_send(r.fd, WS_OP_PING, true, "hb");
  bool masked = false;
  if (!peer_frame(p, &r, &m, &masked) || m.opcode != WS_OP_PONG || !masked ||
      strcmp(m.data, "hb") != 0)
    peer_fail(p, "ping not answered with a masked pong \"hb\"");
  char msg[256];
  for (int i = 2; i >= 0; i--) {
    snprintf(msg, sizeof msg, "{\"id\":%ld,\"ok\":{\"echo\":\"%s\"}}", ids[i], ops[i]);
    if (i > 0) {
      peer_send(r.fd, WS_OP_TEXT, true, msg);
    } else {
      size_t n = strlen(msg), a = n / 3, b = 2 * n / 3;
      ws_send(r.fd, WS_OP_TEXT, false, msg, a, false);
      ws_send(r.fd, WS_OP_CONT, false, msg + a, b - a, false);
      ws_send(r.fd, WS_OP_CONT, true, msg + b, n - b, false);
    }
  }
  peer_send(r.fd, WS_OP_TEXT, true,
            "{\"push\":\"message\",\"conversation\":\"c\",\"seq\":1}");
  /* Silence: the client pings within its interval. */
  uint64_t t0 = now_ms();
  if (!peer_next(p, &r, &m) || m.opcode != WS_OP_PING)
    peer_fail(p, "no keepalive ping from the client");
  else if (now_ms() - t0 < (uint64_t)p->ping_ms / 2)
    peer_fail(p, "keepalive ping too early");
  peer_send(r.fd, WS_OP_PONG, true, "");
  /* Close: answered with the same code. */
  uint8_t cl[WS_MAX_CONTROL_FRAME];
  size_t cn = ws_write_close(cl, WS_CLOSE_GOING_AWAY, "bye", 3, NULL);
  send_all(r.fd, cl, cn);
  if (!peer_next(p, &r, &m) || m.opcode != WS_OP_CLOSE ||
      m.close_code != WS_CLOSE_GOING_AWAY)
    peer_fail(p, "close not answered with 1001");
  /* Every mask differs from the others. */
  for (int i = 0; i < p->nmasks; i++)
    for (int j = i + 1; j < p->nmasks; j++)
      if (!memcmp(p->masks[i], p->masks[j], 4)) peer_fail(p, "a masking key repeats");
  if (p->nmasks < 6) peer_fail(p, "too few masked frames seen");
out:
  close(r.fd);
  return NULL;
}

static int listen_any(uint16_t *port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof a;
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 4) != 0 ||
      getsockname(fd, (struct sockaddr *)&a, &al) != 0) {
    if (fd >= 0) close(fd);
    return -1;
  }
  *port = ntohs(a.sin_port);
  return fd;
}

/* A client whose state file holds a token the peer expects. */
static tsr_client *peer_client(uint16_t port, const char *name) {
  tsr_client *c = new_client(name, port);
  if (c) CHECK_OK(cstate_put(client_state(c), K_TOKEN, BYTES("peer-token", 10)));
  return c;
}

typedef struct {
  outcome *o;
  int n;
  events *e;
  int pushes, disconnects;
} until_all;

static int all_done(void *arg) {
  until_all *u = arg;
  for (int i = 0; i < u->n; i++)
    if (u->o[i].calls == 0) return 0;
  return u->e->pushes >= u->pushes && u->e->disconnected >= u->disconnects;
}

static void test_scripted_peer(void) {
  uint16_t port = 0;
  int lfd = listen_any(&port);
  CHECK(lfd >= 0);
  if (lfd < 0) return;
  peer p = {.lfd = lfd, .mode = 0, .ping_ms = 300};
  pthread_t th;
  CHECK_INT(pthread_create(&th, NULL, peer_main, &p), 0);
  tsr_client *c = peer_client(port, "peer.db");
  events e = {0};
  tsr_ws_config cfg = {.ping_interval_ms = 300, .pong_timeout_ms = 5000};
  tsr_ws *s = c ? new_ws(c, &e, &cfg) : NULL;
  outcome o[3] = {0};
  const char *ops[3] = {"alpha", "beta", "gamma"};
  for (int i = 0; s && i < 3; i++)
    CHECK_OK(tsr_ws_call(s, ops[i], NULL, on_result, &o[i]));
  CHECK_INT(tsr_ws_pending(s), 3);
  until_all u = {o, 3, &e, 1, 1};
  if (s) CHECK_INT(tsr_ws_run(s, DEADLINE_MS, all_done, &u), 0);
  for (int i = 0; i < 3; i++) {
    char want[64];
    snprintf(want, sizeof want, "{\"echo\":\"%s\"}", ops[i]);
    CHECK_INT(o[i].calls, 1);
    CHECK_INT(o[i].err, 0);
    CHECK_INT(o[i].status, 101);
    if (strcmp(o[i].body, want)) fprintf(stderr, "  call %d got %s\n", i, o[i].body);
    CHECK(strcmp(o[i].body, want) == 0);
  }
  CHECK_INT(e.pushes, 1);
  CHECK(strstr(e.push[0], "\"push\":\"message\"") != NULL);
  CHECK_INT(e.connected, 1);
  CHECK_INT(e.disconnected, 1);
  CHECK_INT(tsr_ws_pending(s), 0);
  pthread_join(th, NULL);
  if (p.fail[0]) fprintf(stderr, "  peer: %s\n", p.fail);
  CHECK(p.fail[0] == '\0');
  tsr_ws_free(s);
  tsr_client_free(c);
  close(lfd);
}

static void test_bad_accept(void) {
  uint16_t port = 0;
  int lfd = listen_any(&port);
  CHECK(lfd >= 0);
  if (lfd < 0) return;
  peer p = {.lfd = lfd, .mode = 1};
  pthread_t th;
  CHECK_INT(pthread_create(&th, NULL, peer_main, &p), 0);
  tsr_client *c = peer_client(port, "peer2.db");
  events e = {0};
  tsr_ws *s = c ? new_ws(c, &e, NULL) : NULL;
  outcome o = {0};
  if (s) CHECK_OK(tsr_ws_call(s, "ping", NULL, on_result, &o));
  if (s) CHECK_INT(tsr_ws_run(s, DEADLINE_MS, outcome_done, &o), 0);
  CHECK_INT(o.calls, 1);
  CHECK_INT(o.err, TSR_EDECODE);
  CHECK(strcmp(o.code, "bad_response") == 0);
  CHECK_INT(e.connected, 0);
  CHECK_INT(tsr_ws_state(s), TSR_WS_DISCONNECTED);
  pthread_join(th, NULL);
  if (p.fail[0]) fprintf(stderr, "  peer: %s\n", p.fail);
  CHECK(p.fail[0] == '\0');
  tsr_ws_free(s);
  tsr_client_free(c);
  close(lfd);
}

/* ---- against tesserad --------------------------------------------------------- */

static tsr_client *ann, *ben;
static tsr_session_info ann_info, ben_info;
static events ann_ev, ben_ev;
static tsr_ws *ann_ws, *ben_ws;

static tsr_client *register_user(const char *login) {
  tsr_client *c = new_client(login, fixed_port);
  if (!c) return NULL;
  tsr_register_params p = {.login = login, .password = PW, .device_name = "dev"};
  tsr_reply r = {0};
  CHECK_OK(tsr_account_register_sync(c, &p, &r));
  tsr_reply_clear(&r);
  char body[128];
  snprintf(body, sizeof body, "{\"handle\":\"%s\"}", login);
  CHECK_OK(tsr_call_sync(c, "PUT", "/v1/apps/social/profile", body, &r));
  tsr_reply_clear(&r);
  CHECK_OK(tsr_call_sync(c, "PUT", "/v1/apps/social/reachability",
                         "{\"from\":{\"social\":\"everyone\"}}", &r));
  tsr_reply_clear(&r);
  return c;
}

static const char *str_of(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsString(v) ? v->valuestring : "";
}

static void test_setup(void) {
  ann = register_user("ann");
  ben = register_user("ben");
  CHECK(ann && ben);
  if (!ann || !ben) return;
  CHECK_OK(tsr_client_session(ann, &ann_info));
  CHECK_OK(tsr_client_session(ben, &ben_info));
  /* No session without a login. */
  tsr_client *nobody = new_client("nobody", fixed_port);
  tsr_ws *s = NULL;
  CHECK_ERR(tsr_ws_new(nobody, NULL, &s), TSR_ESTATE);
  CHECK(s == NULL);
  tsr_client_free(nobody);
  tsr_ws_config cfg = {.max_attempts = 1000};
  ann_ws = new_ws(ann, &ann_ev, &cfg);
  ben_ws = new_ws(ben, &ben_ev, &cfg);
}

static void test_whoami(void) {
  if (!ann_ws) TEST_SKIP("no session");
  CHECK_INT(tsr_ws_state(ann_ws), TSR_WS_DISCONNECTED);
  tsr_reply r = {0};
  CHECK_OK(tsr_ws_call_sync(ann_ws, "whoami", NULL, &r));
  CHECK_INT(r.status, 101);
  cJSON *j = r.body ? cJSON_ParseWithLength(r.body, r.body_len) : NULL;
  CHECK(j != NULL);
  CHECK(strcmp(str_of(j, "account_id"), ann_info.account_id) == 0);
  CHECK(strcmp(str_of(j, "device_id"), ann_info.device_id) == 0);
  cJSON_Delete(j);
  tsr_reply_clear(&r);
  CHECK_INT(tsr_ws_state(ann_ws), TSR_WS_CONNECTED);
  CHECK_INT(ann_ev.connected, 1);
  CHECK_INT(ann_ev.disconnected, 0);
  CHECK(tsr_ws_fd(ann_ws) >= 0);
  /* Connected, nothing to do: the next timer is the keepalive ping. */
  int64_t t = tsr_ws_next_timeout(ann_ws, tsr_client_now_ms(ann));
  CHECK(t > 20000 && t <= 30000);
}

static void test_ping_and_errors(void) {
  if (!ann_ws) TEST_SKIP("no session");
  tsr_reply r = {0};
  CHECK_OK(tsr_ws_call_sync(ann_ws, "ping", NULL, &r));
  CHECK(r.body_len == 2 && memcmp(r.body, "{}", 2) == 0);
  tsr_reply_clear(&r);
  CHECK_ERR(tsr_ws_call_sync(ann_ws, "no.such.op", NULL, &r), TSR_EPROTOCOL);
  CHECK(r.code && strcmp(r.code, "unknown_op") == 0);
  CHECK(r.body && strstr(r.body, "\"error\"") != NULL);
  tsr_reply_clear(&r);
  /* A known op with bad fields: the server's code. */
  CHECK_ERR(
      tsr_ws_call_sync(ann_ws, "sync", "\"conversation\":\"AAAAAAAAAAAAAAAAAAAAAA\"", &r),
      TSR_ENOTFOUND);
  CHECK(r.code && strcmp(r.code, "not_found") == 0);
  tsr_reply_clear(&r);
  /* Refused locally, nothing queued. */
  outcome o = {0};
  CHECK_ERR(tsr_ws_call(ann_ws, NULL, NULL, on_result, &o), TSR_EINVAL);
  CHECK_ERR(tsr_ws_call(ann_ws, "", NULL, on_result, &o), TSR_EINVAL);
  CHECK_ERR(tsr_ws_call(ann_ws, "ping", "\"id\":7", on_result, &o), TSR_EINVAL);
  CHECK_ERR(tsr_ws_call(ann_ws, "ping", "\"a\":1}{\"b\":2", on_result, &o), TSR_EINVAL);
  CHECK_ERR(tsr_ws_call(ann_ws, "ping", "\"a\":", on_result, &o), TSR_EINVAL);
  char *big = malloc(1100000);
  if (big) {
    memset(big, 'x', 1099990);
    memcpy(big, "\"a\":\"", 5);
    strcpy(big + 1099990, "\"");
    CHECK_ERR(tsr_ws_call(ann_ws, "ping", big, on_result, &o), TSR_ELIMIT);
    free(big);
  }
  CHECK_INT(tsr_ws_pending(ann_ws), 0);
  CHECK_INT(o.calls, 0);
  /* Fields reach the server: an unknown field is ignored, ok. */
  CHECK_OK(tsr_ws_call_sync(ann_ws, "ping", "\"x\":[1,{\"y\":null}]", NULL));
}

/* Many calls in flight at once, of kinds whose answers differ (ops that
 * the delivery service answers and ops the worker answers): each callback
 * gets its own answer exactly once. */
static void test_many_in_flight(void) {
  if (!ann_ws) TEST_SKIP("no session");
  enum { N = 90 };
  static outcome o[N];
  memset(o, 0, sizeof o);
  static const char *ops[3] = {"conversations", "whoami", "nope"};
  for (int i = 0; i < N; i++)
    CHECK_OK(tsr_ws_call(ann_ws, ops[i % 3], NULL, on_result, &o[i]));
  CHECK_INT(tsr_ws_pending(ann_ws), N);
  until_all u = {o, N, &ann_ev, 0, 0};
  CHECK_INT(tsr_ws_run(ann_ws, DEADLINE_MS, all_done, &u), 0);
  for (int i = 0; i < N; i++) {
    CHECK_INT(o[i].calls, 1);
    switch (i % 3) {
    case 0:
      CHECK(o[i].err == 0 && strstr(o[i].body, "\"conversations\":[") != NULL);
      break;
    case 1: CHECK(o[i].err == 0 && strstr(o[i].body, ann_info.device_id) != NULL); break;
    default: CHECK(strcmp(o[i].code, "unknown_op") == 0);
    }
  }
  CHECK_INT(tsr_ws_pending(ann_ws), 0);
}

/* Runs s until cond or DEADLINE_MS. */
static int until_connected(void *arg) {
  return ((events *)arg)->state == TSR_WS_CONNECTED;
}
static int until_disconnected(void *arg) {
  return ((events *)arg)->state == TSR_WS_DISCONNECTED;
}

/* The server dies; a call made meanwhile waits and completes once the
 * server is back. */
static void test_queued_while_down(void) {
  if (!ann_ws) TEST_SKIP("no session");
  int disc = ann_ev.disconnected, conn = ann_ev.connected;
  server_kill9(&srv);
  CHECK_INT(tsr_ws_run(ann_ws, DEADLINE_MS, until_disconnected, &ann_ev), 0);
  CHECK_INT(ann_ev.disconnected, disc + 1);
  outcome o = {0};
  CHECK_OK(tsr_ws_call(ann_ws, "whoami", NULL, on_result, &o));
  /* Several reconnects fail meanwhile (backoff 20..100 ms). */
  CHECK_INT(tsr_ws_run(ann_ws, 400, outcome_done, &o), 1);
  CHECK_INT(o.calls, 0);
  CHECK_INT(tsr_ws_pending(ann_ws), 1);
  CHECK(server_start(&srv, NULL, false, NULL, NULL));
  CHECK_INT(tsr_ws_run(ann_ws, DEADLINE_MS, outcome_done, &o), 0);
  CHECK_INT(o.calls, 1);
  CHECK_INT(o.err, 0);
  CHECK(strstr(o.body, ann_info.account_id) != NULL);
  CHECK_INT(ann_ev.connected, conn + 1);
}

/* A call in flight when the server dies completes with "network": the
 * server is stopped first (SIGSTOP), so the call is written and cannot be
 * answered. */
static void test_in_flight_drop(void) {
  if (!ann_ws) TEST_SKIP("no session");
  CHECK_INT(tsr_ws_run(ann_ws, DEADLINE_MS, until_connected, &ann_ev), 0);
  kill(-srv.pid, SIGSTOP);
  outcome o = {0};
  CHECK_OK(tsr_ws_call(ann_ws, "whoami", NULL, on_result, &o));
  CHECK_INT(tsr_ws_run(ann_ws, 200, outcome_done, &o), 1); /* written, unanswered */
  CHECK_INT(o.calls, 0);
  server_kill9(&srv);
  CHECK_INT(tsr_ws_run(ann_ws, DEADLINE_MS, outcome_done, &o), 0);
  CHECK_INT(o.calls, 1);
  CHECK_INT(o.err, TSR_EIO);
  CHECK(strcmp(o.code, "network") == 0);
  CHECK_INT(ann_ev.state, TSR_WS_DISCONNECTED);
  CHECK(server_start(&srv, NULL, false, NULL, NULL));
  CHECK_INT(tsr_ws_run(ann_ws, DEADLINE_MS, until_connected, &ann_ev), 0);
  CHECK_OK(tsr_ws_call_sync(ann_ws, "ping", NULL, NULL));
}

/* No answer within request_timeout_ms: "timeout", and the session stays. */
static void test_timeout(void) {
  if (!ann) TEST_SKIP("no client");
  events e = {0};
  tsr_ws_config cfg = {.request_timeout_ms = 300};
  tsr_ws *s = new_ws(ann, &e, &cfg);
  if (!s) return;
  CHECK_OK(tsr_ws_call_sync(s, "ping", NULL, NULL));
  kill(-srv.pid, SIGSTOP);
  outcome o = {0};
  CHECK_OK(tsr_ws_call(s, "ping", NULL, on_result, &o));
  CHECK_INT(tsr_ws_run(s, DEADLINE_MS, outcome_done, &o), 0);
  kill(-srv.pid, SIGCONT);
  CHECK_INT(o.err, TSR_EIO);
  CHECK(strcmp(o.code, "timeout") == 0);
  CHECK_INT(e.disconnected, 0);
  CHECK_OK(tsr_ws_call_sync(s, "ping", NULL, NULL));
  /* Freeing completes what is left with "cancelled". */
  outcome q = {0};
  CHECK_OK(tsr_ws_call(s, "ping", NULL, on_result, &q));
  tsr_ws_free(s);
  CHECK_INT(q.calls, 1);
  CHECK(strcmp(q.code, "cancelled") == 0);
  CHECK_INT(q.err, TSR_ESTATE);
}

/* ---- pushes ----------------------------------------------------------------------- */

static char *b64dup(bytes_t v) {
  size_t cap = b64_encoded_len(v.len, B64_MODE_URL_NOPAD) + 1, n = 0;
  char *s = malloc(cap);
  if (s && b64_encode(s, cap, v.ptr, v.len, B64_MODE_URL_NOPAD, &n) == 0) {
    s[n] = '\0';
    return s;
  }
  free(s);
  return NULL;
}

static bool unb64(const char *s, buf_t *out) {
  size_t len = strlen(s), got = 0;
  buf_reset(out);
  uint8_t *p = buf_extend(out, b64_decoded_max(len) + 1);
  if (!p || b64_decode(p, b64_decoded_max(len) + 1, s, len, B64_MODE_URL_NOPAD, &got))
    return false;
  out->len = got;
  return true;
}

static int until_pushes(void *arg) { return ((events *)arg)->pushes > 0; }

static void test_pushes(void) {
  if (!ann_ws || !ben_ws) TEST_SKIP("no sessions");
  /* Ben's session is up (it connects at its first tick). */
  CHECK_INT(tsr_ws_run(ben_ws, DEADLINE_MS, until_connected, &ben_ev), 0);
  CHECK_INT(tsr_ws_run(ann_ws, DEADLINE_MS, until_connected, &ann_ev), 0);
  group_identity *aid = NULL, *bid = NULL;
  mls_group *ga = NULL, *gb = NULL;
  kp_secret *sb = NULL;
  buf_t gi, kpb, commit, welcome, wb, m;
  buf_init(&gi);
  buf_init(&kpb);
  buf_init(&commit);
  buf_init(&welcome);
  buf_init(&wb);
  buf_init(&m);
  uint8_t gid[16];
  char conv[32];
  randombytes_buf(gid, sizeof gid);
  b64(gid, 16, conv);
  CHECK_OK(client_mls_identity(ann, 1, &aid));
  CHECK_OK(client_mls_identity(ben, 1, &bid));
  if (test_failing()) goto out;
  CHECK_OK(group_create(aid, NULL, BYTES(gid, 16), NULL, &ga));
  CHECK_OK(group_info(ga, true, &gi));
  CHECK_OK(kp_create(bid, 0, 0, &kpb, &sb));
  bytes_t kps[1] = {buf_view(&kpb)};
  group_commit_params p = {.add_key_packages = kps, .n_adds = 1};
  CHECK_OK(group_commit(ga, &p, &commit, &welcome));
  if (test_failing()) goto out;
  char *g = b64dup(buf_view(&gi)), *c = b64dup(buf_view(&commit)),
       *w = b64dup(buf_view(&welcome));
  size_t cap = strlen(g) + strlen(c) + strlen(w) + 512;
  char *fields = malloc(cap);
  snprintf(
      fields, cap,
      "\"app\":\"social\",\"kind\":\"direct\",\"members\":[{\"account\":\"%s\","
      "\"app\":\"social\"}],\"group_info\":\"%s\",\"commit\":\"%s\",\"welcome\":\"%s\"",
      ben_info.account_id, g, c, w);
  free(g);
  free(c);
  free(w);
  /* The delivery service may still be starting after the restarts
   * above: "unavailable" means try again (docs/protocol.md). */
  tsr_reply r = {0};
  uint64_t deadline = now_ms() + DEADLINE_MS;
  while (tsr_ws_call_sync(ann_ws, "conversation.create", fields, &r) != 0 && r.code &&
         strcmp(r.code, "unavailable") == 0 && now_ms() < deadline) {
    tsr_reply_clear(&r);
    tick();
  }
  CHECK_INT(r.err, 0);
  if (r.err) fprintf(stderr, "  create: %s %s\n", r.code, r.message);
  CHECK(r.body && strstr(r.body, "\"next_seq\":1") != NULL);
  tsr_reply_clear(&r);
  free(fields);
  CHECK_OK(group_merge_pending(ga));
  /* The Welcome reaches Ben's session through on_push, and opens. */
  CHECK_INT(tsr_ws_run(ben_ws, DEADLINE_MS, until_pushes, &ben_ev), 0);
  CHECK_INT(ben_ev.pushes, 1);
  cJSON *j = cJSON_Parse(ben_ev.push[0]);
  CHECK(strcmp(str_of(j, "push"), "welcome") == 0);
  CHECK(strcmp(str_of(j, "conversation"), conv) == 0);
  if (unb64(str_of(j, "welcome"), &wb))
    CHECK_OK(group_join(bid, NULL, &sb, 1, buf_view(&wb), BYTES_NONE, NULL, 0, NULL, NULL,
                        &gb));
  cJSON_Delete(j);
  CHECK(gb != NULL);
  /* A message from Ann arrives as a "message" push. */
  ben_ev.pushes = 0;
  const char *text = "hello ben";
  CHECK_OK(group_protect(ga, BYTES(text, strlen(text)), BYTES_NONE, &m));
  char *mb = b64dup(buf_view(&m));
  size_t mcap = strlen(mb) + 128;
  char *sf = malloc(mcap);
  snprintf(sf, mcap, "\"conversation\":\"%s\",\"client_id\":\"m-1\",\"message\":\"%s\"",
           conv, mb);
  CHECK_OK(tsr_ws_call_sync(ann_ws, "send", sf, &r));
  if (!r.body || !strstr(r.body, "\"seq\":1")) fprintf(stderr, "  send: %s\n", r.body);
  CHECK(r.body && strstr(r.body, "\"seq\":1") != NULL);
  tsr_reply_clear(&r);
  free(sf);
  free(mb);
  CHECK_INT(tsr_ws_run(ben_ws, DEADLINE_MS, until_pushes, &ben_ev), 0);
  CHECK_INT(ben_ev.pushes, 1);
  j = cJSON_Parse(ben_ev.push[0]);
  CHECK(strcmp(str_of(j, "push"), "message") == 0);
  const cJSON *seq = cJSON_GetObjectItemCaseSensitive(j, "seq");
  CHECK(cJSON_IsNumber(seq) && seq->valuedouble == 1);
  cJSON_Delete(j);
  /* Ann's own session got no push; answers never go to on_push. */
  CHECK_INT(ann_ev.pushes, 0);
  /* Ben lists the conversation. */
  CHECK_OK(tsr_ws_call_sync(ben_ws, "conversations", NULL, &r));
  CHECK(r.body && strstr(r.body, conv) != NULL);
  tsr_reply_clear(&r);
out:
  kp_secret_free(sb);
  group_free(ga);
  group_free(gb);
  group_identity_free(aid);
  group_identity_free(bid);
  buf_free(&gi);
  buf_free(&kpb);
  buf_free(&commit);
  buf_free(&welcome);
  buf_free(&wb);
  buf_free(&m);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  snprintf(tmpdir, sizeof tmpdir, "/tmp/tsr-cws-XXXXXX");
  if (!mkdtemp(tmpdir) || tsr_client_global_init() != 0 || !find_binary()) {
    fprintf(stderr, "no temporary directory, crypto or tesserad (set TSR_BUILD)\n");
    printf("client_ws: 0 passed, 1 failed, 0 skipped\n");
    return 1;
  }
  RUN(test_scripted_peer);
  RUN(test_bad_accept);
  /* A port of our own, kept across restarts. */
  int pfd = listen_any(&fixed_port);
  if (pfd >= 0) close(pfd);
  static char listen_arg[32];
  snprintf(listen_arg, sizeof listen_arg, "127.0.0.1:%u", (unsigned)fixed_port);
  static const char *extra[] = {
      "--rate-per-account", "0", "--rate-per-address", "0", "--listen", listen_arg, NULL};
  if (pfd < 0 || !server_start(&srv, "cws", true, "2", extra) || srv.port != fixed_port) {
    fprintf(stderr, "tesserad did not start on port %u; log %s\n", fixed_port, srv.log);
    printf("client_ws: 0 passed, 1 failed, 0 skipped\n");
    return 1;
  }
  RUN(test_setup);
  RUN(test_whoami);
  RUN(test_ping_and_errors);
  RUN(test_many_in_flight);
  RUN(test_queued_while_down);
  RUN(test_in_flight_drop);
  RUN(test_timeout);
  RUN(test_pushes);
  tsr_ws_free(ann_ws);
  tsr_ws_free(ben_ws);
  tsr_client_free(ann);
  tsr_client_free(ben);
  cJSON_Delete(resp.json);
  resp.json = NULL;
  server_stop(&srv, true);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", tmpdir);
  return test_report("client_ws");
}
