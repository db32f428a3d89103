/* Shared helpers for the integration tests that start a real tesserad:
 * the server process (random port, temporary data dir, own process
 * group), a small blocking HTTP/1.1 client with JSON bodies, account
 * registration and login (identities, device certificates, sessions),
 * and the transport half of a WebSocket client (masked text frames out,
 * unmasked frames in).
 *
 * Every wait is bounded by a deadline (DEADLINE_MS unless stated);
 * nothing sleeps to synchronise. Failures are reported through the return
 * values; only do_register and do_login CHECK (see test.h) that a 201
 * answer carries a well-formed session.
 *
 * State: the last HTTP answer lives in the global `resp` (one per test
 * binary, overwritten by every call). Strings returned by jstr, json_str
 * and err_code point into resp.json (or the given object) and stay valid
 * until the next call or until that object is freed. */
#ifndef TSR_SERVER_HARNESS_H
#define TSR_SERVER_HARNESS_H

#include <cjson/cJSON.h>
#include <limits.h>
#include <sodium.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifndef DEADLINE_MS
#define DEADLINE_MS 10000
#endif

/* ---- time and descriptors ---- */

/* Monotonic clock in milliseconds. */
uint64_t now_ms(void);

/* Waits until fd has one of events or the absolute deadline (now_ms
 * scale) passes; true when fd is ready. */
bool wait_fd(int fd, short events, uint64_t deadline);

/* Bounded pause (10 ms), only to poll external state without a descriptor. */
void tick(void);

/* Whole file as a NUL-terminated string, or NULL. Caller frees. */
char *read_file(const char *path);

/* Connected TCP socket to 127.0.0.1:port (TCP_NODELAY), or -1. Caller
 * closes. */
int tcp_connect(int port);

/* The source address of every later tcp_connect (and so of call, ws_open,
 * ...), host byte order, e.g. 0x7f000003 for 127.0.0.3: the server's
 * per-address limits then count it apart. 0 (the start) lets the kernel
 * choose (127.0.0.1). */
void set_source_address(uint32_t addr);

/* Sends all n bytes (no SIGPIPE); false on error. */
bool send_all(int fd, const void *p, size_t n);

/* send_all of the NUL-terminated string s. */
bool send_str(int fd, const char *s);

/* True when the peer closes (EOF or reset) within ms; the number of bytes
 * that arrived before is added to *got when got is not NULL. */
bool wait_closed(int fd, uint64_t ms, size_t *got);

/* ---- the server process ---- */

typedef struct {
  pid_t pid; /* also the process group of master and workers; 0 when gone */
  int port;
  char dir[256];  /* temporary directory, removed by server_stop */
  char data[300]; /* dir/data, the --data-dir */
  char log[300];  /* dir/tesserad.log, the --log-file */
  /* Kept for restarts (fresh == false); the strings must outlive s. */
  const char *workers;
  const char *const *extra;
} server;

/* Finds tesserad: $TSR_BUILD/tesserad, else ../tesserad next to the test
 * binary. Must succeed before server_start. */
bool find_binary(void);

/* Starts tesserad listening on a random port of 127.0.0.1 with
 * `--workers workers` and the extra arguments (NULL-terminated list, may
 * be NULL), in its own process group, and waits until it accepts
 * connections. fresh: makes a new directory /tmp/tsr-<tag>-XXXXXX;
 * otherwise restarts on s's existing data with the same workers and extra
 * arguments (tag and the other two parameters are then ignored) after
 * truncating the log. */
bool server_start(server *s, const char *tag, bool fresh, const char *workers,
                  const char *const *extra);

/* Waits up to ms for the master to exit; its wait status, or -1. */
int server_wait(server *s, uint64_t ms);

/* kill -9 of the master and every worker at once; returns when the whole
 * process group is gone (or after DEADLINE_MS). */
void server_kill9(server *s);

/* SIGTERM (SIGKILL to the group after 15 s), prints the log when the test
 * failed, and removes the directory. check_exit: counts a failure unless
 * the master exited with status 0 on SIGTERM. */
void server_stop(server *s, bool check_exit);

/* Runs sql (one or more statements) on s's database file, opened read-write
 * only when write (the server may be running: WAL, a 5 s busy timeout);
 * the first column of the last row a statement returned (0 when none
 * returned a row), or -1 on an error. */
long server_db_long(const server *s, const char *sql, bool write);

/* ---- HTTP client ---- */

/* Per-connection read-ahead (HTTP head, then WebSocket frames). Large:
 * keep instances off the stack. */
typedef struct {
  int fd;
  char buf[1 << 17];
  size_t len;
} reader;

typedef struct {
  int status;
  char head[4096];
  char body[65536];
  cJSON *json; /* parsed body, or NULL; owned by the struct */
} http_resp;

/* The answer of the last call / call_hdr. */
extern http_resp resp;

/* Reads more of r->fd into r->buf before deadline; false on EOF, error,
 * timeout or a full buffer. */
bool reader_fill(reader *r, uint64_t deadline);

/* Drops the first n buffered bytes. */
void reader_consume(reader *r, size_t n);

/* Reads one Content-Length framed response from r into out (replacing
 * out->json, which the caller eventually cJSON_Deletes); bytes after it
 * stay buffered in r. */
bool read_response(reader *r, http_resp *out);

/* Sends the n raw bytes of req (may hold NUL) on a new connection and
 * reads one answer into resp. Returns the status (0 when no answer came,
 * resp then has no status and no parsed body). */
int call_raw(int port, const char *req, size_t n);

/* One call on a new connection with a raw header line (e.g.
 * "Authorization: Basic x\r\n") or "", and a body of n bytes (may hold
 * NUL; none when body is NULL). Returns the status (0 when no answer
 * came); the answer is in resp. */
int call_hdr_n(int port, const char *method, const char *path, const char *hdr,
               const char *body, size_t n);

/* One call on a new connection with a raw header line (e.g.
 * "Authorization: Basic x\r\n") or "", and a JSON body or NULL. Returns
 * the status (0 when no answer came); the answer is in resp. */
int call_hdr(int port, const char *method, const char *path, const char *hdr,
             const char *body);

/* One call with a Bearer token (none when token is NULL). */
int call(int port, const char *method, const char *path, const char *token,
         const char *body);

/* o[key] as a string, or "" (never NULL). */
const char *json_str(const cJSON *o, const char *key);

/* resp.json[key] as a string, or "". */
const char *jstr(const char *key);

/* resp.json.error.code, or "". */
const char *err_code(void);

/* Whether the last answer's error code is code. */
bool err_is(const char *code);

/* Entries of array `list` of resp.json that are strings equal to value,
 * or objects whose member key equals value. */
int count_in(const char *list, const char *key, const char *value);

/* ---- binary HTTP (uploads and file downloads) ---- */

/* One raw answer: status, head text, body bytes (NUL-terminated; heap). */
typedef struct {
  int status;
  char head[4096];
  uint8_t *body;
  size_t len;
} answer;

void answer_free(answer *a);

/* Reads one Content-Length framed answer from fd (no body for HEAD or a
 * 304). pre (may be NULL): *pre_len bytes already read from fd come first;
 * bytes read past the answer are left there for the next one. */
bool read_answer(int fd, bool head_req, answer *a, uint8_t *pre, size_t *pre_len);

/* One request on a new connection to port: a Bearer token (or NULL), extra
 * header lines (or ""), a body of n bytes with Content-Type ctype (none
 * when body is NULL). The status, or 0 when no answer came. */
int raw_request(int port, const char *method, const char *path, const char *token,
                const char *hdrs, const char *ctype, const uint8_t *body, size_t n,
                answer *a);

/* Whether the answer's head has the header line `line` (case-insensitive). */
bool has_header(const answer *a, const char *line);

/* ---- identities, devices, sessions ---- */

typedef struct {
  uint8_t pk[crypto_sign_PUBLICKEYBYTES];
  uint8_t sk[crypto_sign_SECRETKEYBYTES];
} identity;

typedef struct {
  char account_id[32];
  char device_id[32];
  char token[64];
  /* The device's Ed25519 seed (its MLS signature key), kept by do_register
   * and do_login. */
  uint8_t device_seed[crypto_sign_SEEDBYTES];
} session;

/* The password every test account uses. */
extern const char *PW;

/* base64url without padding of n bytes (n <= 149) into out (>= 201
 * bytes), NUL-terminated. */
void b64(const uint8_t *p, size_t n, char *out);

/* A fresh identity key pair. */
void identity_new(identity *id);

/* A "device" JSON object named name with a fresh signature key certified
 * by signer, written into out (cap bytes; 400 is enough). */
void device_json(const identity *signer, const char *name, char *out, size_t cap);

/* device_json that also hands out the new key's seed (when seed is not
 * NULL). */
void device_json_seed(const identity *signer, const char *name, char *out, size_t cap,
                      uint8_t seed[crypto_sign_SEEDBYTES]);

/* Copies account_id, device_id and token of resp into s; false unless all
 * three have their expected lengths. */
bool take_session(session *s);

/* POST /v1/accounts with login, pw, email x@example.org, phone (omitted
 * when NULL), id and a first device "first". Returns the status; on 201
 * the session goes into out (when not NULL). */
int do_register(int port, const char *login, const char *pw, const char *phone,
                const identity *id, session *out);

/* POST /v1/sessions: a new device "another" certified by id. Returns the
 * status; on 201 the session goes into out (when not NULL). */
int do_login(int port, const char *login, const char *pw, const identity *id,
             session *out);

/* The last code the development SMS sender wrote for phone under
 * data_dir (dev-sms.log); out gets its 6 digits and a NUL. */
bool sms_code(const char *data_dir, const char *phone, char out[8]);

/* A registered account; phone verified when given. */
typedef struct {
  identity id;
  session s;
  const char *phone;
} user;

/* Registers login (password PW) on s with a new identity, then verifies
 * u->phone through the development SMS sender when it is not NULL. */
bool make_user(const server *s, user *u, const char *login);

/* ---- WebSocket client (transport) ---- */

typedef struct {
  uint8_t opcode;
  uint16_t close_code; /* of a close frame, else 0 */
  char data[1 << 17];  /* payload, NUL-terminated */
  size_t len;
} ws_msg;

/* Opens a session on GET /v1/ws over a new connection in r, offering
 * Sec-WebSocket-Protocol protocol (tessera.v1 when NULL); token (may be
 * NULL) goes into Authorization. The upgrade answer goes into out when it
 * is not NULL (the caller eventually cJSON_Deletes out->json), else it is
 * dropped. Returns the upgrade's status (101 on success), 0 when no
 * answer came. The caller closes r->fd. */
int ws_open(int port, reader *r, const char *token, const char *protocol, http_resp *out);

/* Sends one frame of opcode with n payload bytes p, FIN when fin, masked
 * (as a client must) when masked. */
bool ws_send(int fd, uint8_t opcode, bool fin, const void *p, size_t n, bool masked);

/* Sends s as one masked text frame. */
bool ws_text(int fd, const char *s);

/* Reads one frame (unmasked, unfragmented) from r into m before
 * deadline. */
bool ws_recv_until(reader *r, ws_msg *m, uint64_t deadline);

#endif
