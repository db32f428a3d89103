/* WebSocket (RFC 6455): handshake helpers, frame parser, message assembly
 * and frame encoder, shared by tesserad (server role) and libtessera
 * (client role).
 *
 * The parser is a pure function in the picohttpparser style: it reads a
 * caller buffer, allocates nothing, calls nothing back, and reports "need
 * more bytes" as the return value WS_INCOMPLETE. The caller owns every
 * buffer and every struct; views returned (ws_event.data) point into the
 * caller's payload and live as long as it. Nothing here keeps global state,
 * so all functions are safe from any thread; one ws_assembler belongs to one
 * connection and must not be used from two threads at once.
 *
 * Errors on the wire are negative close codes (WS_EPROTOCOL = -1002, ...):
 * ws_close_code_for() turns one into the code to send in the Close frame
 * before the connection is dropped. The handshake helpers use the ordinary
 * TSR_E* codes of tessera/error.h.
 *
 * Typical server loop over a connection's read buffer:
 *
 *   ws_frame f;
 *   int h = ws_parse_frame(p, n, &f, &lim);
 *   if (h == WS_INCOMPLETE) -> read more (the header is not all there)
 *   if (h < 0)              -> send close ws_close_code_for(h), drop
 *   if (n - h < f.payload_len) -> read more (the payload is not all there)
 *   ws_unmask(p + h, f.payload_len, f.mask, 0);
 *   rc = ws_assembler_feed(&conn->wsa, &f, p + h, &lim, &ev);
 *   if (rc < 0) -> send close ws_close_code_for(rc), drop
 *   data frame: append ev.data to the message; ev.fin ends it
 *   control: answer ping with pong, close with close
 *   consume h + f.payload_len bytes
 */
#ifndef TSR_PROTO_WS_H
#define TSR_PROTO_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/utf8.h"

/* Frame opcodes (RFC 6455 §5.2). Opcodes 8..15 are control frames. */
enum ws_opcode {
  WS_OP_CONT = 0x0,
  WS_OP_TEXT = 0x1,
  WS_OP_BINARY = 0x2,
  WS_OP_CLOSE = 0x8,
  WS_OP_PING = 0x9,
  WS_OP_PONG = 0xA,
};

/* Return values of ws_parse_frame and ws_assembler_feed besides success.
 * An error is the negated close code the peer has earned. */
enum ws_status {
  WS_INCOMPLETE = 0,    /* the frame header is not complete yet */
  WS_EPROTOCOL = -1002, /* protocol violation: close 1002 */
  WS_EBADDATA = -1007,  /* text or close reason not valid UTF-8: close 1007 */
  WS_ETOOBIG = -1009,   /* frame or message over the configured limit: close 1009 */
};

/* Close status codes used by tessera (RFC 6455 §7.4.1). */
enum ws_close_code {
  WS_CLOSE_NORMAL = 1000,
  WS_CLOSE_GOING_AWAY = 1001,
  WS_CLOSE_PROTOCOL = 1002,
  WS_CLOSE_UNSUPPORTED = 1003,
  WS_CLOSE_NO_STATUS = 1005, /* reported for an empty Close; never sent */
  WS_CLOSE_ABNORMAL = 1006,  /* connection lost without Close; never sent */
  WS_CLOSE_BAD_DATA = 1007,
  WS_CLOSE_POLICY = 1008,
  WS_CLOSE_TOO_BIG = 1009,
  WS_CLOSE_EXTENSION = 1010,
  WS_CLOSE_INTERNAL = 1011,
};

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_SUBPROTOCOL "tessera.v1"
#define WS_KEY_LEN 24    /* Sec-WebSocket-Key: base64 of 16 bytes */
#define WS_ACCEPT_LEN 28 /* Sec-WebSocket-Accept: base64 of a SHA-1 */

#define WS_MAX_HEADER 14 /* 2 + 8 (length) + 4 (mask) */
#define WS_MAX_CONTROL_PAYLOAD 125
#define WS_MAX_CLOSE_REASON 123 /* control payload minus the 2-byte code */
#define WS_MAX_CONTROL_FRAME (2 + 4 + WS_MAX_CONTROL_PAYLOAD) /* 131 */

/* ---- handshake (RFC 6455 §4.2) ---- */

/* Computes Sec-WebSocket-Accept for the client's Sec-WebSocket-Key
 * key[0..key_len) (already trimmed of whitespace by the HTTP parser):
 * base64(SHA-1(key || WS_GUID)). The key must be exactly the padded
 * standard base64 of 16 bytes. Writes WS_ACCEPT_LEN characters and a NUL
 * into out. Returns 0, TSR_EDECODE (bad key; out untouched) or TSR_ECRYPTO
 * (SHA-1 unavailable in libcrypto). */
int ws_accept_key(const char *key, size_t key_len, char out[WS_ACCEPT_LEN + 1]);

/* Looks for the subprotocol want (NUL-terminated, e.g. WS_SUBPROTOCOL) in a
 * Sec-WebSocket-Protocol value list[0..len): comma-separated tokens with
 * optional spaces and tabs around them, empty elements ignored (RFC 9110
 * §5.6.1). Names compare case-sensitively. If the header appeared several
 * times, call once per line or join the lines with ','. Returns 1 when
 * offered, 0 when not, TSR_EDECODE when an element is not a token, TSR_EINVAL
 * when want is NULL or empty. */
int ws_find_subprotocol(const char *list, size_t len, const char *want);

/* ---- frames (RFC 6455 §5) ---- */

/* Limits and role for parsing and assembly. The caller owns it; it is only
 * read. A zero-filled struct means "server role, no payload allowed". */
typedef struct {
  uint64_t max_frame;   /* largest payload of one frame, else WS_ETOOBIG */
  uint64_t max_message; /* largest data message (all fragments), else WS_ETOOBIG */
  bool client;          /* we are the client: frames must be unmasked. The
                           server role (false) requires masked frames. */
} ws_limits;

/* One parsed frame header. The payload (payload_len bytes, still masked
 * when masked is set) follows the header in the caller's buffer. */
typedef struct {
  uint64_t payload_len; /* < 2^63, <= ws_limits.max_frame */
  uint8_t opcode;       /* one of enum ws_opcode */
  bool fin;             /* last frame of a message (always set on control) */
  bool masked;
  uint8_t mask[4]; /* masking key; zero when !masked */
} ws_frame;

/* Parses the frame header at buf[0..len). Returns the header length
 * (2..14) and fills *f; WS_INCOMPLETE when more bytes are needed to decide;
 * or WS_EPROTOCOL / WS_ETOOBIG. *f is written only on success. The payload
 * is not required to be in buf. Checked, with the earliest bytes that show
 * the fault (so a bad frame fails before it is complete):
 *   RSV1-3 set (no extension is supported), reserved opcode, fragmented
 *   control frame, control payload over 125, wrong masking for the role,
 *   16/64-bit length that would fit a shorter form, 64-bit length with the
 *   top bit set -> WS_EPROTOCOL; payload_len > lim->max_frame -> WS_ETOOBIG. */
int ws_parse_frame(const uint8_t *buf, size_t len, ws_frame *f, const ws_limits *lim);

/* XORs p[0..n) with the masking key in place (masking and unmasking are the
 * same operation). offset is the position of p[0] within the payload, so a
 * payload may be processed in pieces; pass 0 for a whole payload. Any
 * alignment of p is fine. */
void ws_unmask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t offset);

/* ---- message assembly (RFC 6455 §5.4, §5.5, §8.1) ---- */

/* Fragmentation state of one connection's incoming stream. Caller-owned
 * storage (embed it in the connection); initialise with ws_assembler_init.
 * It holds no payload: data is handed back frame by frame for the caller to
 * append to its own buffer. Invariant: msg_opcode is 0 between messages and
 * WS_OP_TEXT or WS_OP_BINARY inside a fragmented one; msg_len <=
 * max_message; utf8 is the validator state after the text so far. */
typedef struct {
  uint64_t msg_len;
  uint8_t msg_opcode;
  utf8_state utf8;
} ws_assembler;

/* What one frame means for the application. */
typedef struct {
  uint8_t opcode;      /* WS_OP_TEXT / WS_OP_BINARY for data (continuations carry
                          the message's opcode), or the control opcode */
  bool first;          /* data: first fragment of a message (true for control) */
  bool fin;            /* data: message complete after this frame (true for control) */
  uint16_t close_code; /* Close only: the peer's code, WS_CLOSE_NO_STATUS if none */
  const uint8_t *data; /* data/ping/pong: the payload; Close: the reason */
  size_t len;
} ws_event;

void ws_assembler_init(ws_assembler *a);

/* True while a fragmented data message is open. */
bool ws_assembler_in_message(const ws_assembler *a);

/* Feeds one complete frame: its parsed header f and its unmasked payload
 * (f->payload_len bytes; NULL if 0). On success returns 0 and describes the
 * frame in *ev, whose views point into payload. Control frames may arrive
 * between the fragments of a message and do not disturb it. Errors, which
 * leave *a and *ev unchanged:
 *   WS_EPROTOCOL: continuation with no message open, new text/binary frame
 *     while one is open, reserved opcode, malformed control frame, Close
 *     payload of 1 byte or with a code that may not be sent (valid:
 *     1000-1003, 1007-1011, 3000-4999);
 *   WS_ETOOBIG: frame over max_frame or message over max_message;
 *   WS_EBADDATA: text not valid UTF-8 (checked across fragments, so a
 *     character may straddle frames; a message ending inside a character
 *     fails on its last frame), or a Close reason not valid UTF-8.
 * The assembler does not track the closing handshake: after a Close the
 * caller stops feeding. */
int ws_assembler_feed(ws_assembler *a, const ws_frame *f, const uint8_t *payload,
                      const ws_limits *lim, ws_event *ev);

/* The close code to send for an error from ws_parse_frame or
 * ws_assembler_feed (1002, 1007, 1009); WS_CLOSE_INTERNAL for anything else. */
uint16_t ws_close_code_for(int err);

/* True when code may appear in a Close frame on the wire: 1000-1003,
 * 1007-1011 and 3000-4999 (1004-1006, 1012-2999 and 1015 may not). */
bool ws_close_code_valid(uint16_t code);

/* ---- encoder ---- */

/* Writes a frame header into out and returns its length (2..14): minimal
 * length encoding, RSV bits clear, masking key appended when mask is not
 * NULL (a client must pass 4 fresh random bytes per frame and mask the
 * payload itself with ws_unmask). Returns 0, writing nothing, for a
 * reserved opcode, a control frame with !fin or payload_len > 125, or
 * payload_len >= 2^63. */
size_t ws_write_frame_header(uint8_t out[WS_MAX_HEADER], uint8_t opcode, bool fin,
                             uint64_t payload_len, const uint8_t *mask);

/* Writes a whole control frame (header + payload, masked when mask is not
 * NULL) and returns its length, or 0 for a non-control opcode or len > 125.
 * payload may be NULL when len is 0; it must not overlap out. */
size_t ws_write_control(uint8_t out[WS_MAX_CONTROL_FRAME], uint8_t opcode,
                        const uint8_t *payload, size_t len, const uint8_t *mask);

/* Pong answering a Ping: echoes its payload (at most 125 bytes). */
size_t ws_write_pong(uint8_t out[WS_MAX_CONTROL_FRAME], const uint8_t *payload,
                     size_t len, const uint8_t *mask);

/* Close frame. code 0 sends an empty payload (then reason must be empty);
 * otherwise code must satisfy ws_close_code_valid and reason (may be NULL
 * when reason_len is 0) must be valid UTF-8; a reason longer than 123 bytes
 * is cut at the last character boundary that fits. Returns the frame
 * length, or 0 for an invalid code or reason. */
size_t ws_write_close(uint8_t out[WS_MAX_CONTROL_FRAME], uint16_t code,
                      const char *reason, size_t reason_len, const uint8_t *mask);

#endif
