/* Conversations on a worker (conv.h). */
#include "server/conv.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "mls/codec.h"
#include "proto/base64.h"
#include "proto/json.h"
#include "server/accounts.h"
#include "server/blocks.h"
#include "server/dsproto.h"
#include "server/ipc.h"
#include "server/log.h"
#include "server/profiles.h"
#include "server/reach.h"
#include "server/wsd.h"
#include "tessera/error.h"

#define RETRY_MS 100
#define MAX_MEMBERS 63 /* besides the creator, in conversation.create */
#define MAX_DEVICES 16 /* live devices of one account taken into a group */
#define PEND_BUCKETS 4096

/* A request waiting for the delivery service's answer. */
typedef struct pend {
  struct pend *next;
  uint32_t id;
  uint8_t op;
  wsd_ticket t;
} pend;

static struct {
  worker *w;
  ipc_conn ipc;
  bool up;
  loop_timer retry;
  uint32_t next_id;
  pend *tab[PEND_BUCKETS];
} dsc;

/* ---- the connection ------------------------------------------------------ */

static void say_online(const uint8_t acc[ACCOUNTS_ID_BYTES],
                       const uint8_t dev[ACCOUNTS_ID_BYTES], void *arg) {
  (void)arg;
  buf_t *b = ipc_begin(&dsc.ipc, DSP_ONLINE, 0);
  wr_raw(b, BYTES(dev, DSP_ID));
  wr_raw(b, BYTES(acc, DSP_ID));
  ipc_end(&dsc.ipc);
}

static void presence(const uint8_t acc[ACCOUNTS_ID_BYTES],
                     const uint8_t dev[ACCOUNTS_ID_BYTES], bool online) {
  if (!dsc.up) return; /* announced at the next connect */
  if (online) {
    say_online(acc, dev, NULL);
    return;
  }
  buf_t *b = ipc_begin(&dsc.ipc, DSP_OFFLINE, 0);
  wr_raw(b, BYTES(dev, DSP_ID));
  ipc_end(&dsc.ipc);
}

static void fail_pending(void) {
  for (size_t i = 0; i < PEND_BUCKETS; i++)
    while (dsc.tab[i]) {
      pend *p = dsc.tab[i];
      dsc.tab[i] = p->next;
      wsd_complete(
          &p->t, NULL, 0, "unavailable",
          "the delivery service restarted; retry (a send with the same client_id "
          "is not stored twice)");
      free(p);
    }
}

static void on_frame(ipc_conn *c, uint8_t type, uint32_t id, bytes_t fields);
static void devices_changed(const uint8_t acc[ACCOUNTS_ID_BYTES], const uint8_t *revoked);

static void on_ds_close(ipc_conn *c) {
  (void)c;
  dsc.up = false;
  fail_pending();
  if (dsc.w && !dsc.w->draining) loop_timer_start(&dsc.w->loop, &dsc.retry, RETRY_MS);
}

static void connect_ds(void) {
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  int n =
      snprintf(a.sun_path, sizeof a.sun_path, "%s/%s", dsc.w->cfg->data_dir, DSP_SOCKET);
  int fd = n > 0 && (size_t)n < sizeof a.sun_path
               ? socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)
               : -1;
  if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
      fcntl(fd, F_SETFL, O_NONBLOCK) != 0) {
    if (fd >= 0) close(fd);
    loop_timer_start(&dsc.w->loop, &dsc.retry, RETRY_MS);
    return;
  }
  dsc.ipc.on_frame = on_frame;
  dsc.ipc.on_close = on_ds_close;
  if (ipc_open(&dsc.ipc, &dsc.w->loop, fd, KIND_DS, NULL) != 0) {
    close(fd);
    loop_timer_start(&dsc.w->loop, &dsc.retry, RETRY_MS);
    return;
  }
  dsc.up = true;
  buf_t *b = ipc_begin(&dsc.ipc, DSP_HELLO, 0);
  wr_u32(b, (uint32_t)dsc.w->index);
  ipc_end(&dsc.ipc);
  accounts_each_online(say_online, NULL);
}

static void on_retry(loop_t *l, loop_timer *t) {
  (void)l;
  (void)t;
  if (!dsc.up) connect_ds();
}

static void on_ds_io(loop_t *l, loop_handle *h, unsigned events) {
  (void)l;
  (void)h;
  /* A read brings many answers and pushes: each session is written once. */
  conn_batch_begin(dsc.w);
  ipc_on_io(&dsc.ipc, events);
  conn_batch_end(dsc.w);
}

int conv_worker_start(worker *w) {
  dsc.w = w;
  dsc.retry.kind = TIMER_DS;
  loop_set_io_cb(&w->loop, KIND_DS, on_ds_io);
  loop_set_timer_cb(&w->loop, TIMER_DS, on_retry);
  accounts_set_presence_hook(presence);
  accounts_set_devices_hook(devices_changed);
  connect_ds();
  return 0;
}

void conv_worker_stop(worker *w) {
  loop_timer_stop(&w->loop, &dsc.retry);
  if (dsc.up) ipc_close(&dsc.ipc);
  fail_pending();
  dsc.w = NULL;
}

/* ---- requests ---------------------------------------------------------------- */

/* Starts a request frame of type for call (deferred); NULL when the
 * delivery service is not connected or memory is short (the call's error
 * is then set). */
static buf_t *request_begin(wsd_call *call, uint8_t type, pend **out) {
  if (!dsc.up) {
    wsd_call_error(call, "unavailable", "the delivery service is not reachable; retry");
    return NULL;
  }
  pend *p = calloc(1, sizeof *p);
  if (!p) {
    wsd_call_error(call, "busy", "server busy; retry later");
    return NULL;
  }
  if (++dsc.next_id == 0) dsc.next_id = 1;
  p->id = dsc.next_id;
  p->op = type;
  *out = p;
  return ipc_begin(&dsc.ipc, type, p->id);
}

static int request_end(wsd_call *call, pend *p) {
  if (ipc_end(&dsc.ipc) != 0) {
    free(p);
    return wsd_call_error(call, "unavailable",
                          "the delivery service is not reachable; retry");
  }
  wsd_defer(call, &p->t);
  size_t h = p->id % PEND_BUCKETS;
  p->next = dsc.tab[h];
  dsc.tab[h] = p;
  return WSD_DEFERRED;
}

static pend *pend_take(uint32_t id) {
  for (pend **pp = &dsc.tab[id % PEND_BUCKETS]; *pp; pp = &(*pp)->next)
    if ((*pp)->id == id) {
      pend *p = *pp;
      *pp = p->next;
      return p;
    }
  return NULL;
}

/* ---- answers and pushes ------------------------------------------------------- */

static const char *kind_name(uint8_t k) {
  return k == DSP_KIND_DIRECT ? "direct" : "group";
}

static const char *state_name(uint8_t s) {
  return s == DSP_STATE_REQUEST    ? "request"
         : s == DSP_STATE_DECLINED ? "declined"
                                   : "active";
}

static const char *role_name(uint8_t r) {
  return r == DSP_ROLE_ADMIN ? "admin" : "member";
}

static bool write_result(uint8_t op, reader_t *r, json_writer *jw) {
  json_write_object_begin(jw);
  uint64_t seq = 0;
  uint8_t dup = 0;
  switch (op) {
  case DSP_CREATE:
    rd_u64(r, &seq);
    json_write_key(jw, "next_seq");
    json_write_u64(jw, seq);
    break;
  case DSP_SEND:
  case DSP_MEMBERS:
  case DSP_LEAVE:
    rd_u64(r, &seq);
    rd_u8(r, &dup);
    json_write_key(jw, "seq");
    json_write_u64(jw, seq);
    json_write_key(jw, "duplicate");
    json_write_bool(jw, dup != 0);
    break;
  case DSP_ACK:
    rd_u64(r, &seq);
    json_write_key(jw, "cursor");
    json_write_u64(jw, seq);
    break;
  case DSP_STATE:
    rd_u8(r, &dup);
    json_write_key(jw, "state");
    json_write_string(jw, state_name(dup));
    break;
  case DSP_ROLE:
    rd_u8(r, &dup);
    json_write_key(jw, "role");
    json_write_string(jw, role_name(dup));
    break;
  case DSP_INFO: {
    uint8_t app = 0, kind = 0, state = 0;
    uint32_t devices = 0;
    reader_t v;
    rd_u8(r, &app);
    rd_u8(r, &kind);
    rd_u8(r, &state);
    rd_vec(r, &v);
    if (r->err || app >= APP_COUNT) return false;
    json_write_key(jw, "app");
    json_write_string(jw, app_name((app_id)app));
    json_write_key(jw, "kind");
    json_write_string(jw, kind_name(kind));
    json_write_key(jw, "state");
    json_write_string(jw, state_name(state));
    json_write_key(jw, "members");
    json_write_array_begin(jw);
    while (rd_more(&v) && !v.err) {
      bytes_t acc;
      uint8_t role = 0;
      rd_raw(&v, DSP_ID, &acc);
      rd_u8(&v, &role);
      if (v.err) break;
      json_write_object_begin(jw);
      json_write_key(jw, "account");
      json_write_base64url(jw, acc);
      json_write_key(jw, "role");
      json_write_string(jw, role_name(role));
      json_write_object_end(jw);
    }
    json_write_array_end(jw);
    rd_u32(r, &devices);
    json_write_key(jw, "devices");
    json_write_u64(jw, devices);
    if (v.err) return false;
    break;
  }
  case DSP_SYNC: {
    reader_t v;
    rd_vec(r, &v);
    json_write_key(jw, "messages");
    json_write_array_begin(jw);
    while (rd_more(&v) && !v.err) {
      uint64_t at = 0;
      bytes_t body;
      rd_u64(&v, &seq);
      rd_u64(&v, &at);
      rd_opaque(&v, &body);
      if (v.err) break;
      json_write_object_begin(jw);
      json_write_key(jw, "seq");
      json_write_u64(jw, seq);
      json_write_key(jw, "at");
      json_write_u64(jw, at);
      json_write_key(jw, "message");
      json_write_base64url(jw, body);
      json_write_object_end(jw);
    }
    json_write_array_end(jw);
    rd_u8(r, &dup);
    json_write_key(jw, "more");
    json_write_bool(jw, dup != 0);
    if (v.err) return false;
    break;
  }
  case DSP_LIST: {
    reader_t v;
    rd_vec(r, &v);
    json_write_key(jw, "conversations");
    json_write_array_begin(jw);
    while (rd_more(&v) && !v.err) {
      bytes_t gid, welcome;
      uint8_t app = 0, kind = 0, state = 0;
      uint64_t joined = 0, last = 0, cursor = 0;
      rd_raw(&v, DSP_ID, &gid);
      rd_u8(&v, &app);
      rd_u8(&v, &kind);
      rd_u8(&v, &state);
      rd_u64(&v, &joined);
      rd_u64(&v, &last);
      rd_u64(&v, &cursor);
      rd_opaque(&v, &welcome);
      uint8_t role = 0;
      reader_t stale;
      rd_u8(&v, &role);
      rd_vec(&v, &stale);
      if (v.err || app >= APP_COUNT) break;
      json_write_object_begin(jw);
      json_write_key(jw, "conversation");
      json_write_base64url(jw, gid);
      json_write_key(jw, "app");
      json_write_string(jw, app_name((app_id)app));
      json_write_key(jw, "kind");
      json_write_string(jw, kind_name(kind));
      json_write_key(jw, "state");
      json_write_string(jw, state_name(state));
      json_write_key(jw, "joined_seq");
      json_write_u64(jw, joined);
      json_write_key(jw, "last_seq");
      json_write_u64(jw, last);
      json_write_key(jw, "cursor");
      json_write_u64(jw, cursor);
      if (welcome.len) {
        json_write_key(jw, "welcome");
        json_write_base64url(jw, welcome);
      }
      json_write_key(jw, "role");
      json_write_string(jw, role_name(role));
      if (rd_more(&stale)) {
        json_write_key(jw, "remove");
        json_write_array_begin(jw);
        while (rd_more(&stale)) {
          bytes_t d;
          if (rd_raw(&stale, DSP_ID, &d)) break;
          json_write_base64url(jw, d);
        }
        json_write_array_end(jw);
        if (stale.err) v.err = stale.err;
      }
      json_write_object_end(jw);
    }
    json_write_array_end(jw);
    if (v.err) return false;
    break;
  }
  case DSP_TRANSIENT:
    json_write_key(jw, "transient");
    json_write_bool(jw, true);
    break;
  default: return false;
  }
  json_write_object_end(jw);
  return !r->err && rd_done(r) == 0 && json_writer_finish(jw) == 0;
}

static void on_result(uint32_t id, reader_t *r) {
  pend *p = pend_take(id);
  if (!p) return; /* its session is gone and was failed already */
  uint32_t status = 0;
  bytes_t code, msg;
  rd_u32(r, &status);
  rd_opaque(r, &code);
  rd_opaque(r, &msg);
  char c[48], m[160];
  if (r->err) {
    wsd_complete(&p->t, NULL, 0, "internal",
                 "malformed answer from the delivery service");
  } else if (status) {
    snprintf(c, sizeof c, "%.*s", (int)code.len, (const char *)code.ptr);
    snprintf(m, sizeof m, "%.*s", (int)msg.len, (const char *)msg.ptr);
    wsd_complete(&p->t, NULL, 0, c[0] ? c : "internal", m[0] ? m : "refused");
  } else {
    buf_t out;
    buf_init(&out);
    json_writer jw;
    json_writer_init(&jw, &out, 8);
    if (write_result(p->op, r, &jw))
      wsd_complete(&p->t, (const char *)out.ptr, out.len, NULL, NULL);
    else
      wsd_complete(&p->t, NULL, 0, "internal",
                   "malformed answer from the delivery service");
    buf_free(&out);
  }
  free(p);
}

typedef struct {
  const char *text;
  size_t len;
} push_msg;

static void push_one(conn *c, void *arg) {
  const push_msg *m = arg;
  wsd_send_text(c, m->text, m->len);
  conn_settle(c); /* written now: nothing else is going to flush it */
}

static void on_push(reader_t *r) {
  uint8_t kind = 0;
  bytes_t gid, body;
  uint64_t seq = 0, at = 0;
  reader_t devs;
  rd_u8(r, &kind);
  rd_raw(r, DSP_ID, &gid);
  rd_u64(r, &seq);
  rd_u64(r, &at);
  rd_opaque(r, &body);
  rd_vec(r, &devs);
  if (rd_done(r)) return;
  if (kind == DSP_PUSH_NOTIFY) { /* the whole push text, made by notify.c */
    push_msg m = {(const char *)body.ptr, body.len};
    while (rd_more(&devs)) {
      bytes_t dev;
      if (rd_raw(&devs, DSP_ID, &dev)) break;
      accounts_each_session(dev.ptr, push_one, &m);
    }
    return;
  }
  buf_t out;
  buf_init(&out);
  json_writer jw;
  json_writer_init(&jw, &out, 4);
  json_write_object_begin(&jw);
  json_write_key(&jw, "push");
  if (kind == DSP_PUSH_DEVICES) {
    json_write_string(&jw, "devices");
  } else if (kind == DSP_PUSH_ROSTER) {
    json_write_string(&jw, "roster");
    json_write_key(&jw, "conversation");
    json_write_base64url(&jw, gid);
  } else if (kind == DSP_PUSH_TRANSIENT) { /* never stored: no seq, no time */
    json_write_string(&jw, "message");
    json_write_key(&jw, "conversation");
    json_write_base64url(&jw, gid);
    json_write_key(&jw, "transient");
    json_write_bool(&jw, true);
    json_write_key(&jw, "message");
    json_write_base64url(&jw, body);
  } else {
    json_write_string(&jw, kind == DSP_PUSH_WELCOME ? "welcome" : "message");
    json_write_key(&jw, "conversation");
    json_write_base64url(&jw, gid);
    json_write_key(&jw, "seq");
    json_write_u64(&jw, seq);
    json_write_key(&jw, "at");
    json_write_u64(&jw, at);
    json_write_key(&jw, kind == DSP_PUSH_WELCOME ? "welcome" : "message");
    json_write_base64url(&jw, body);
  }
  json_write_object_end(&jw);
  if (json_writer_finish(&jw) == 0) {
    push_msg m = {(const char *)out.ptr, out.len};
    while (rd_more(&devs)) {
      bytes_t dev;
      if (rd_raw(&devs, DSP_ID, &dev)) break;
      accounts_each_session(dev.ptr, push_one, &m);
    }
  }
  buf_free(&out);
}

static void on_frame(ipc_conn *c, uint8_t type, uint32_t id, bytes_t fields) {
  (void)c;
  reader_t r;
  rd_init(&r, fields);
  if (type == DSP_RESULT)
    on_result(id, &r);
  else if (type == DSP_PUSH)
    on_push(&r);
}

/* ---- op helpers ------------------------------------------------------------------ */

/* A base64url string member decoded into out (at most max bytes). */
static bool get_b64(wsd_call *call, const char *key, buf_t *out, size_t max) {
  int i = json_object_get(call->text, call->toks, 0, key);
  const char *p;
  size_t len, got;
  if (i < 0 || json_get_string_view(call->text, call->toks, i, &p, &len) != 0 ||
      b64_decoded_max(len) > max + 3)
    return false;
  uint8_t *d = buf_extend(out, b64_decoded_max(len) + 1);
  if (!d) return false;
  out->len -= b64_decoded_max(len) + 1;
  if (b64_decode(d, b64_decoded_max(len) + 1, p, len, B64_MODE_URL_NOPAD, &got) != 0 ||
      got > max)
    return false;
  out->len += got;
  return true;
}

/* A 16-byte id given as base64url. */
static bool get_id(wsd_call *call, int i, uint8_t out[DSP_ID]) {
  const char *p;
  size_t len, got;
  return i >= 0 && json_get_string_view(call->text, call->toks, i, &p, &len) == 0 &&
         len == b64_encoded_len(DSP_ID, B64_MODE_URL_NOPAD) &&
         b64_decode(out, DSP_ID, p, len, B64_MODE_URL_NOPAD, &got) == 0 && got == DSP_ID;
}

static bool get_u64(wsd_call *call, const char *key, uint64_t *out, bool required) {
  int i = json_object_get(call->text, call->toks, 0, key);
  if (i < 0) return !required;
  return json_get_u64(call->text, call->toks, i, out) == 0;
}

static int get_app(wsd_call *call, int obj, const char *key) {
  int i = json_object_get(call->text, call->toks, obj, key);
  char s[16];
  if (i < 0 || json_get_string(call->text, call->toks, i, s, sizeof s, NULL, 0) != 0)
    return -1;
  return app_parse(s);
}

/* How a member of conversation.create / conversation.members was given. */
enum { MEMBER_OK, MEMBER_BAD, MEMBER_NOT_FOUND, MEMBER_INTERNAL };

/* Member e, {"account": id, "app": app} or {"app": app, "key": number,
 * handle or username}: its app into *to_app and its account into acc (a
 * key is normalised and resolved here; an unknown profile is
 * MEMBER_NOT_FOUND, answered like a block). *by_profile (may be NULL)
 * tells which form it had. */
static int member_account(wsd_call *call, int e, int *to_app, uint8_t acc[DSP_ID],
                          bool *by_profile) {
  if (call->toks[e].type != JSON_OBJECT) return MEMBER_BAD;
  *to_app = get_app(call, e, "app");
  int ai = json_object_get(call->text, call->toks, e, "account");
  int ki = json_object_get(call->text, call->toks, e, "key");
  if (by_profile) *by_profile = ai < 0;
  if (*to_app < 0 || (ai >= 0) == (ki >= 0)) return MEMBER_BAD;
  if (ai >= 0) return get_id(call, ai, acc) ? MEMBER_OK : MEMBER_BAD;
  char key[64], norm[PROFILES_KEY_MAX + 1];
  if (json_get_string(call->text, call->toks, ki, key, sizeof key, NULL, 0) != 0 ||
      !profiles_key_normalize((app_id)*to_app, key, norm))
    return MEMBER_BAD;
  int rc = profiles_resolve(NULL, (app_id)*to_app, norm, acc);
  if (rc == TSR_ENOTFOUND) return MEMBER_NOT_FOUND;
  return rc ? MEMBER_INTERNAL : MEMBER_OK;
}

/* The live devices of account into the frame: a vector of (id, signature
 * key) — the key its MLS leaves must carry. */
static int write_devices(buf_t *b, const uint8_t acc[ACCOUNTS_ID_BYTES]) {
  store_conn *c;
  store_stmt *s;
  int rc = store_reader_get(dsc.w->store, &c);
  if (!rc)
    rc = store_conn_prepare(c,
                            "SELECT id, signature_key FROM devices WHERE account_id = ? "
                            "AND revoked = 0 LIMIT 16",
                            &s);
  if (rc) return TSR_EIO;
  store_bind_blob(s, 1, BYTES(acc, ACCOUNTS_ID_BYTES));
  size_t mark = wr_vec_begin(b);
  while ((rc = store_step(s)) == STORE_ROW) {
    bytes_t id = store_col_blob(s, 0), key = store_col_blob(s, 1);
    if (id.len != DSP_ID || key.len != DSP_KEY) continue;
    wr_raw(b, id);
    wr_raw(b, key);
  }
  store_stmt_reset(s);
  wr_vec_end(b, mark);
  return rc < 0 ? TSR_EIO : 0;
}

void conv_notify(const uint8_t acc[ACCOUNTS_ID_BYTES], const char *text, size_t len) {
  store_conn *c;
  store_stmt *s;
  if (!dsc.up || store_reader_get(dsc.w->store, &c) != 0 ||
      store_conn_prepare(c,
                         "SELECT id FROM devices WHERE account_id = ? AND revoked = 0"
                         " LIMIT 16",
                         &s) != 0)
    return;
  store_bind_blob(s, 1, BYTES(acc, ACCOUNTS_ID_BYTES));
  buf_t *b = ipc_begin(&dsc.ipc, DSP_NOTIFY, 0);
  size_t mark = wr_vec_begin(b);
  while (store_step(s) == STORE_ROW) {
    bytes_t id = store_col_blob(s, 0);
    if (id.len == DSP_ID) wr_raw(b, id);
  }
  store_stmt_reset(s);
  wr_vec_end(b, mark);
  wr_opaque(b, BYTES((const uint8_t *)text, len));
  ipc_end(&dsc.ipc);
}

/* ---- ops ------------------------------------------------------------------------- */

static int op_create(wsd_call *call) {
  uint8_t me[DSP_ID], dev[DSP_ID];
  accounts_session_ids(call->conn, me, dev);
  int app = get_app(call, 0, "app");
  int ki = json_object_get(call->text, call->toks, 0, "kind");
  bool direct = ki >= 0 && json_string_eq(call->text, call->toks, ki, "direct", 6);
  bool group = ki >= 0 && json_string_eq(call->text, call->toks, ki, "group", 5);
  int mi = json_object_get(call->text, call->toks, 0, "members");
  if (app < 0 || (!direct && !group) || mi < 0 || call->toks[mi].type != JSON_ARRAY)
    return wsd_call_error(call, "bad_request",
                          "app, kind (direct or group) and members are required");
  int rc = profiles_exists(NULL, (app_id)app, me);
  if (rc < 0) return wsd_call_error(call, "internal", "internal error");
  if (rc == 0)
    return wsd_call_error(call, "forbidden", "you have no profile in this app");
  /* The members: each reachable from the caller's app, no block either way. */
  uint8_t acc[MAX_MEMBERS][DSP_ID];
  size_t n = 0;
  bool request = false;
  for (int e = json_first_child(call->toks, mi); e >= 0;
       e = json_next_sibling(call->toks, mi, e)) {
    if (n == MAX_MEMBERS)
      return wsd_call_error(call, "too_large", "at most %d members at creation",
                            MAX_MEMBERS);
    int to_app = -1;
    rc = member_account(call, e, &to_app, acc[n], NULL);
    if (rc == MEMBER_BAD)
      return wsd_call_error(call, "bad_request",
                            "each member is {\"account\": id, \"app\": app} or "
                            "{\"app\": app, \"key\": number, handle or username}");
    if (rc == MEMBER_INTERNAL) return wsd_call_error(call, "internal", "internal error");
    if (rc == MEMBER_NOT_FOUND)
      return wsd_call_error(call, "not_found", "no such profile");
    if (memcmp(acc[n], me, DSP_ID) == 0)
      return wsd_call_error(call, "bad_request", "you are a member already");
    rc = profiles_exists(NULL, (app_id)to_app, acc[n]);
    if (rc < 0) return wsd_call_error(call, "internal", "internal error");
    if (rc == 0 || blocks_between(NULL, me, acc[n]))
      return wsd_call_error(call, "not_found", "no such profile");
    if (!reach_allowed(NULL, (app_id)app, (app_id)to_app, me, acc[n])) {
      if (group)
        return wsd_call_error(
            call, "forbidden",
            "not reachable: a group can only take people who let you in");
      request = true; /* a direct conversation outside their rules is a request */
    }
    /* Only after the checks above: two profiles of one person are found
     * to be one account only by someone both let in (who could claim
     * their KeyPackages and read the account id anyway). */
    for (size_t k = 0; k < n; k++)
      if (memcmp(acc[k], acc[n], DSP_ID) == 0)
        return wsd_call_error(call, "bad_request", "a member is listed twice");
    n++;
  }
  if (n == 0 || (direct && n != 1))
    return wsd_call_error(call, "bad_request",
                          direct ? "a direct conversation has exactly one other member"
                                 : "a group needs members");
  buf_t gi, commit, welcome;
  buf_init(&gi);
  buf_init(&commit);
  buf_init(&welcome);
  size_t max = dsc.w->cfg->max_ws_message;
  if (!get_b64(call, "group_info", &gi, max) || !get_b64(call, "commit", &commit, max) ||
      !get_b64(call, "welcome", &welcome, max)) {
    buf_free(&gi);
    buf_free(&commit);
    buf_free(&welcome);
    return wsd_call_error(
        call, "bad_request",
        "group_info, commit and welcome must be base64url MLS messages");
  }
  pend *p = NULL;
  buf_t *b = request_begin(call, DSP_CREATE, &p);
  if (b) {
    wr_raw(b, BYTES(me, DSP_ID));
    wr_raw(b, BYTES(dev, DSP_ID));
    wr_u8(b, (uint8_t)app);
    wr_u8(b, direct ? DSP_KIND_DIRECT : DSP_KIND_GROUP);
    wr_u8(b, request ? 1 : 0);
    wr_opaque(b, buf_view(&gi));
    wr_opaque(b, buf_view(&commit));
    wr_opaque(b, buf_view(&welcome));
    size_t mark = wr_vec_begin(b);
    wr_raw(b, BYTES(me, DSP_ID));
    rc = write_devices(b, me);
    for (size_t k = 0; !rc && k < n; k++) {
      wr_raw(b, BYTES(acc[k], DSP_ID));
      rc = write_devices(b, acc[k]);
    }
    wr_vec_end(b, mark);
  }
  buf_free(&gi);
  buf_free(&commit);
  buf_free(&welcome);
  if (!b) return -1;
  if (rc) {
    ipc_abort(&dsc.ipc);
    free(p);
    return wsd_call_error(call, "internal", "internal error");
  }
  return request_end(call, p);
}

/* Forwards {conversation, client_id (unless transient), field: an MLS
 * message} as a frame of type: account, device, conversation, client id,
 * message (SEND, LEAVE; TRANSIENT without the client id). */
static int forward_message(wsd_call *call, uint8_t type, const char *field) {
  uint8_t me[DSP_ID], dev[DSP_ID], gid[DSP_ID];
  accounts_session_ids(call->conn, me, dev);
  if (!get_id(call, json_object_get(call->text, call->toks, 0, "conversation"), gid))
    return wsd_call_error(call, "bad_request", "conversation must be a 16-byte id");
  char cid[DSP_CLIENT_ID_MAX + 1] = "";
  size_t cid_len = 0;
  int ci = json_object_get(call->text, call->toks, 0, "client_id");
  if (ci >= 0 &&
      json_get_string(call->text, call->toks, ci, cid, sizeof cid, &cid_len, 0) != 0)
    return wsd_call_error(call, "bad_request",
                          "client_id is a string of at most %d bytes", DSP_CLIENT_ID_MAX);
  buf_t msg;
  buf_init(&msg);
  if (!get_b64(call, field, &msg, dsc.w->cfg->max_ws_message) || msg.len == 0) {
    buf_free(&msg);
    return wsd_call_error(call, "bad_request", "%s must be a base64url MLS message",
                          field);
  }
  pend *p = NULL;
  buf_t *b = request_begin(call, type, &p);
  if (b) {
    wr_raw(b, BYTES(me, DSP_ID));
    wr_raw(b, BYTES(dev, DSP_ID));
    wr_raw(b, BYTES(gid, DSP_ID));
    if (type != DSP_TRANSIENT) wr_opaque(b, BYTES(cid, cid_len));
    wr_opaque(b, buf_view(&msg));
  }
  buf_free(&msg);
  return b ? request_end(call, p) : -1;
}

static int op_send(wsd_call *call) {
  /* "transient": pushed to the others online, never stored (no seq). */
  bool transient = false;
  int ti = json_object_get(call->text, call->toks, 0, "transient");
  if (ti >= 0 && json_get_bool(call->toks, ti, &transient) != 0)
    return wsd_call_error(call, "bad_request", "transient is true or false");
  return forward_message(call, transient ? DSP_TRANSIENT : DSP_SEND, "message");
}

static int op_sync(wsd_call *call) {
  uint8_t me[DSP_ID], dev[DSP_ID], gid[DSP_ID];
  accounts_session_ids(call->conn, me, dev);
  uint64_t after = 0, limit = 100;
  if (!get_id(call, json_object_get(call->text, call->toks, 0, "conversation"), gid) ||
      !get_u64(call, "after", &after, false) || !get_u64(call, "limit", &limit, false) ||
      limit == 0 || limit > DSP_SYNC_MAX)
    return wsd_call_error(call, "bad_request",
                          "conversation, after (a seq) and limit (1..%d) are expected",
                          DSP_SYNC_MAX);
  pend *p = NULL;
  buf_t *b = request_begin(call, DSP_SYNC, &p);
  if (!b) return -1;
  wr_raw(b, BYTES(dev, DSP_ID));
  wr_raw(b, BYTES(gid, DSP_ID));
  wr_u64(b, after);
  wr_u32(b, (uint32_t)limit);
  return request_end(call, p);
}

static int op_ack(wsd_call *call) {
  uint8_t me[DSP_ID], dev[DSP_ID], gid[DSP_ID];
  accounts_session_ids(call->conn, me, dev);
  uint64_t seq = 0;
  if (!get_id(call, json_object_get(call->text, call->toks, 0, "conversation"), gid) ||
      !get_u64(call, "seq", &seq, true))
    return wsd_call_error(call, "bad_request", "conversation and seq are required");
  pend *p = NULL;
  buf_t *b = request_begin(call, DSP_ACK, &p);
  if (!b) return -1;
  wr_raw(b, BYTES(dev, DSP_ID));
  wr_raw(b, BYTES(gid, DSP_ID));
  wr_u64(b, seq);
  return request_end(call, p);
}

static int op_members(wsd_call *call) {
  uint8_t me[DSP_ID], dev[DSP_ID], gid[DSP_ID];
  accounts_session_ids(call->conn, me, dev);
  int ai = json_object_get(call->text, call->toks, 0, "add");
  int ri = json_object_get(call->text, call->toks, 0, "remove");
  if (!get_id(call, json_object_get(call->text, call->toks, 0, "conversation"), gid) ||
      (ai >= 0 && call->toks[ai].type != JSON_ARRAY) ||
      (ri >= 0 && call->toks[ri].type != JSON_ARRAY))
    return wsd_call_error(call, "bad_request",
                          "conversation, and add / remove as arrays, are expected");
  uint8_t add[MAX_MEMBERS][DSP_ID], del[MAX_MEMBERS][DSP_ID], reach[MAX_MEMBERS];
  size_t na = 0, nr = 0;
  for (int e = ai >= 0 ? json_first_child(call->toks, ai) : -1; e >= 0;
       e = json_next_sibling(call->toks, ai, e)) {
    if (na == MAX_MEMBERS)
      return wsd_call_error(call, "too_large", "at most %d members at once", MAX_MEMBERS);
    int to_app = -1;
    bool by_profile = false;
    int rc = member_account(call, e, &to_app, add[na], &by_profile);
    if (rc == MEMBER_BAD)
      return wsd_call_error(call, "bad_request",
                            "each added member is {\"account\": id, \"app\": app} or "
                            "{\"app\": app, \"key\": number, handle or username}");
    if (rc == MEMBER_INTERNAL) return wsd_call_error(call, "internal", "internal error");
    if (rc == MEMBER_NOT_FOUND)
      return wsd_call_error(call, "not_found", "no such profile");
    rc = profiles_exists(NULL, (app_id)to_app, add[na]);
    if (rc < 0) return wsd_call_error(call, "internal", "internal error");
    if (rc == 0 || blocks_between(NULL, me, add[na]))
      return wsd_call_error(call, "not_found", "no such profile");
    /* Which source app may reach them: the delivery service knows the
     * conversation's. */
    reach[na] = 0;
    for (int from = 0; from < APP_COUNT; from++)
      if (reach_allowed(NULL, (app_id)from, (app_id)to_app, me, add[na]))
        reach[na] |= (uint8_t)(1u << from);
    /* Someone reachable from none of the caller's apps is refused here
     * whatever the conversation's app (the delivery service would refuse
     * them too), before anything can tell which account their profile
     * belongs to (below: the same account given twice). */
    if (by_profile && reach[na] == 0)
      return wsd_call_error(call, "forbidden", "not reachable from any of your apps");
    for (size_t k = 0; by_profile && k < na; k++)
      if (memcmp(add[k], add[na], DSP_ID) == 0)
        return wsd_call_error(call, "bad_request", "a member is listed twice");
    na++;
  }
  for (int e = ri >= 0 ? json_first_child(call->toks, ri) : -1; e >= 0;
       e = json_next_sibling(call->toks, ri, e)) {
    if (nr == MAX_MEMBERS)
      return wsd_call_error(call, "too_large", "at most %d members at once", MAX_MEMBERS);
    if (!get_id(call, e, del[nr++]))
      return wsd_call_error(call, "bad_request", "remove lists account ids");
  }
  char cid[DSP_CLIENT_ID_MAX + 1] = "";
  size_t cid_len = 0;
  int ci = json_object_get(call->text, call->toks, 0, "client_id");
  if (ci >= 0 &&
      json_get_string(call->text, call->toks, ci, cid, sizeof cid, &cid_len, 0) != 0)
    return wsd_call_error(call, "bad_request",
                          "client_id is a string of at most %d bytes", DSP_CLIENT_ID_MAX);
  buf_t commit, welcome;
  buf_init(&commit);
  buf_init(&welcome);
  size_t max = dsc.w->cfg->max_ws_message;
  bool has_welcome = json_object_get(call->text, call->toks, 0, "welcome") >= 0;
  if (!get_b64(call, "commit", &commit, max) ||
      (has_welcome && !get_b64(call, "welcome", &welcome, max))) {
    buf_free(&commit);
    buf_free(&welcome);
    return wsd_call_error(call, "bad_request",
                          "commit (and welcome) must be base64url MLS");
  }
  pend *p = NULL;
  buf_t *b = request_begin(call, DSP_MEMBERS, &p);
  int rc = 0;
  if (b) {
    wr_raw(b, BYTES(me, DSP_ID));
    wr_raw(b, BYTES(dev, DSP_ID));
    wr_raw(b, BYTES(gid, DSP_ID));
    wr_opaque(b, BYTES(cid, cid_len));
    wr_opaque(b, buf_view(&commit));
    wr_opaque(b, buf_view(&welcome));
    size_t mark = wr_vec_begin(b);
    wr_raw(b, BYTES(me, DSP_ID)); /* one's own new devices may always join */
    wr_u8(b, (1u << APP_COUNT) - 1);
    rc = write_devices(b, me);
    for (size_t k = 0; !rc && k < na; k++) {
      wr_raw(b, BYTES(add[k], DSP_ID));
      wr_u8(b, reach[k]);
      rc = write_devices(b, add[k]);
    }
    wr_vec_end(b, mark);
    mark = wr_vec_begin(b);
    for (size_t k = 0; k < nr; k++) wr_raw(b, BYTES(del[k], DSP_ID));
    wr_vec_end(b, mark);
  }
  buf_free(&commit);
  buf_free(&welcome);
  if (!b) return -1;
  if (rc) {
    ipc_abort(&dsc.ipc);
    free(p);
    return wsd_call_error(call, "internal", "internal error");
  }
  return request_end(call, p);
}

static int request_answer(wsd_call *call, uint8_t action) {
  uint8_t me[DSP_ID], dev[DSP_ID], gid[DSP_ID];
  accounts_session_ids(call->conn, me, dev);
  if (!get_id(call, json_object_get(call->text, call->toks, 0, "conversation"), gid))
    return wsd_call_error(call, "bad_request", "conversation must be a 16-byte id");
  pend *p = NULL;
  buf_t *b = request_begin(call, DSP_STATE, &p);
  if (!b) return -1;
  wr_raw(b, BYTES(me, DSP_ID));
  wr_raw(b, BYTES(dev, DSP_ID));
  wr_raw(b, BYTES(gid, DSP_ID));
  wr_u8(b, action);
  return request_end(call, p);
}

static int op_accept(wsd_call *call) { return request_answer(call, DSP_ACCEPT); }
static int op_decline(wsd_call *call) { return request_answer(call, DSP_DECLINE); }

/* conversation.leave: the device's Remove proposal of its own leaf. */
static int op_leave(wsd_call *call) {
  return forward_message(call, DSP_LEAVE, "proposal");
}

/* conversation.role: an admin sets a member's role. */
static int op_role(wsd_call *call) {
  uint8_t me[DSP_ID], dev[DSP_ID], gid[DSP_ID], target[DSP_ID];
  accounts_session_ids(call->conn, me, dev);
  char role[8] = "";
  int ri = json_object_get(call->text, call->toks, 0, "role");
  if (!get_id(call, json_object_get(call->text, call->toks, 0, "conversation"), gid) ||
      !get_id(call, json_object_get(call->text, call->toks, 0, "account"), target) ||
      ri < 0 ||
      json_get_string(call->text, call->toks, ri, role, sizeof role, NULL, 0) != 0 ||
      (strcmp(role, "admin") != 0 && strcmp(role, "member") != 0))
    return wsd_call_error(call, "bad_request",
                          "conversation, account (16-byte ids) and role (\"admin\" or "
                          "\"member\") are required");
  pend *p = NULL;
  buf_t *b = request_begin(call, DSP_ROLE, &p);
  if (!b) return -1;
  wr_raw(b, BYTES(me, DSP_ID));
  wr_raw(b, BYTES(dev, DSP_ID));
  wr_raw(b, BYTES(gid, DSP_ID));
  wr_raw(b, BYTES(target, DSP_ID));
  wr_u8(b, role[0] == 'a' ? DSP_ROLE_ADMIN : DSP_ROLE_MEMBER);
  return request_end(call, p);
}

/* conversation.info: members with roles, for a member's device. */
static int op_info(wsd_call *call) {
  uint8_t me[DSP_ID], dev[DSP_ID], gid[DSP_ID];
  accounts_session_ids(call->conn, me, dev);
  if (!get_id(call, json_object_get(call->text, call->toks, 0, "conversation"), gid))
    return wsd_call_error(call, "bad_request", "conversation must be a 16-byte id");
  pend *p = NULL;
  buf_t *b = request_begin(call, DSP_INFO, &p);
  if (!b) return -1;
  wr_raw(b, BYTES(dev, DSP_ID));
  wr_raw(b, BYTES(gid, DSP_ID));
  return request_end(call, p);
}

/* An account's devices changed (accounts_devices_changed): the delivery
 * service marks a revoked device for removal in its conversations and
 * tells the account's live devices. Lost while it is unreachable: the
 * delivery service reads revocations from the store when it starts, and
 * clients check their devices at every connect. */
static void devices_changed(const uint8_t acc[ACCOUNTS_ID_BYTES],
                            const uint8_t *revoked) {
  if (!dsc.up) return;
  buf_t *b = ipc_begin(&dsc.ipc, DSP_DEVICES, 0);
  wr_raw(b, BYTES(acc, DSP_ID));
  size_t mark = wr_vec_begin(b);
  if (revoked) wr_raw(b, BYTES(revoked, DSP_ID));
  wr_vec_end(b, mark);
  /* The live devices: ids only (write_devices' pairs are re-read as ids). */
  buf_t tmp;
  buf_init(&tmp);
  reader_t v;
  /* A revocation concerns the conversations (a roster push), not the
   * account's other devices: they are told only of a device to add. */
  int rc = revoked ? TSR_ENOTFOUND : write_devices(&tmp, acc);
  mark = wr_vec_begin(b);
  if (!rc) {
    reader_t r;
    rd_init(&r, buf_view(&tmp));
    rd_vec(&r, &v);
    while (!v.err && rd_more(&v)) {
      bytes_t id, key;
      if (rd_raw(&v, DSP_ID, &id) || rd_raw(&v, DSP_KEY, &key)) break;
      wr_raw(b, id);
    }
  }
  wr_vec_end(b, mark);
  buf_free(&tmp);
  ipc_end(&dsc.ipc);
}

static int op_list(wsd_call *call) {
  uint8_t me[DSP_ID], dev[DSP_ID];
  accounts_session_ids(call->conn, me, dev);
  pend *p = NULL;
  buf_t *b = request_begin(call, DSP_LIST, &p);
  if (!b) return -1;
  wr_raw(b, BYTES(dev, DSP_ID));
  return request_end(call, p);
}

int conv_ops(void) {
  int rc = wsd_op_add("conversation.create", op_create);
  if (!rc) rc = wsd_op_add("send", op_send);
  if (!rc) rc = wsd_op_add("sync", op_sync);
  if (!rc) rc = wsd_op_add("ack", op_ack);
  if (!rc) rc = wsd_op_add("conversations", op_list);
  if (!rc) rc = wsd_op_add("conversation.members", op_members);
  if (!rc) rc = wsd_op_add("conversation.accept", op_accept);
  if (!rc) rc = wsd_op_add("conversation.decline", op_decline);
  if (!rc) rc = wsd_op_add("conversation.leave", op_leave);
  if (!rc) rc = wsd_op_add("conversation.role", op_role);
  if (!rc) rc = wsd_op_add("conversation.info", op_info);
  return rc;
}
