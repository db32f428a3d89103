/* libFuzzer target for src/proto/ws.c, utf8.c and base64.c.
 *
 * The first byte picks the role and the limits:
 *   bit 0: client role (frames must be unmasked) instead of server role;
 *   bit 1: max_frame 64 instead of 1 MiB (reaches WS_ETOOBIG);
 *   bit 2: max_message 100 instead of 1 MiB;
 *   bits 3-5: where ws_unmask splits each payload (tests the offset path).
 * The rest is a byte stream parsed frame after frame, unmasked and fed to
 * an assembler, with oracles on every result: headers re-encode to the same
 * bytes (the parser only accepts minimal encodings), every shorter prefix of
 * a header is WS_INCOMPLETE, unmasking matches a bytewise reference, errors
 * leave the assembler unchanged, and every completed text message and Close
 * reason is valid UTF-8 by an independent reference validator; every Ping
 * is answered with a Pong that the peer reads back intact.
 *
 * The whole input also goes through base64 (encode -> decode must give it
 * back, in all four modes; decoding it as text must be canonical when it
 * succeeds), the UTF-8 validator (against the reference, and split at a
 * point), the close-frame encoder and the handshake helpers. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/base64.h"
#include "proto/utf8.h"
#include "proto/ws.h"
#include "tessera/error.h"

#include "../unit/utf8_ref.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ASSERT(c)                                                                        \
  do {                                                                                   \
    if (!(c)) abort();                                                                   \
  } while (0)

static bool is_ws_error(int rc) {
  return rc == WS_EPROTOCOL || rc == WS_EBADDATA || rc == WS_ETOOBIG;
}

static void fuzz_frames(uint8_t sel, uint8_t *p, size_t n) {
  ws_limits lim = {.client = (sel & 1) != 0,
                   .max_frame = (sel & 2) ? 64 : 1u << 20,
                   .max_message = (sel & 4) ? 100 : 1u << 20};
  size_t split = (sel >> 3) & 7;
  ws_assembler a;
  ws_assembler_init(&a);
  const size_t total = n; /* a message is never longer than the input */
  uint8_t *msg = malloc(total + 1);
  uint8_t *ref = malloc(total + 1);
  size_t msg_len = 0;
  ASSERT(msg && ref);

  while (n > 0) {
    ws_frame f;
    int h = ws_parse_frame(p, n, &f, &lim);
    if (h == WS_INCOMPLETE) {
      ASSERT(n < WS_MAX_HEADER);
      break;
    }
    if (h < 0) {
      ASSERT(is_ws_error(h) && h != WS_EBADDATA);
      ASSERT(ws_close_code_for(h) == (uint16_t)-h);
      break;
    }
    ASSERT(h >= 2 && h <= WS_MAX_HEADER);
    ASSERT(f.payload_len <= lim.max_frame);
    ASSERT(f.masked == !lim.client);
    ASSERT(!(f.opcode & 8) || (f.fin && f.payload_len <= WS_MAX_CONTROL_PAYLOAD));
    for (int k = 0; k < h; k++) ASSERT(ws_parse_frame(p, (size_t)k, &f, &lim) == 0);
    ASSERT(ws_parse_frame(p, n, &f, &lim) == h);
    uint8_t hdr[WS_MAX_HEADER];
    ASSERT(ws_write_frame_header(hdr, f.opcode, f.fin, f.payload_len,
                                 f.masked ? f.mask : NULL) == (size_t)h);
    ASSERT(memcmp(hdr, p, (size_t)h) == 0);

    p += h, n -= (size_t)h;
    if (f.payload_len > n) break; /* payload not all there */
    size_t plen = (size_t)f.payload_len;

    /* Unmask in two pieces and compare with a bytewise reference. */
    for (size_t i = 0; i < plen; i++) ref[i] = p[i] ^ f.mask[i % 4];
    size_t cut = split < plen ? split : plen;
    ws_unmask(p, cut, f.mask, 0);
    ws_unmask(p + cut, plen - cut, f.mask, cut);
    ASSERT(plen == 0 || memcmp(p, ref, plen) == 0);

    ws_assembler before = a;
    ws_event ev;
    int rc = ws_assembler_feed(&a, &f, p, &lim, &ev);
    if (rc != 0) {
      ASSERT(is_ws_error(rc));
      ASSERT(a.msg_len == before.msg_len && a.msg_opcode == before.msg_opcode &&
             a.utf8 == before.utf8);
      break;
    }
    if (ev.opcode & 8) {
      ASSERT(ev.opcode == f.opcode && ev.len <= WS_MAX_CONTROL_PAYLOAD);
      ASSERT(a.msg_opcode == before.msg_opcode); /* controls leave messages alone */
      if (ev.opcode == WS_OP_PING) {
        /* The answering pong, read back by a peer in the other role. */
        uint8_t pong[WS_MAX_CONTROL_FRAME];
        const uint8_t pmask[4] = {1, 2, 3, 4};
        size_t len = ws_write_pong(pong, ev.data, ev.len, lim.client ? pmask : NULL);
        ws_limits peer = {.max_frame = 125, .client = !lim.client};
        ws_frame pf;
        int ph = ws_parse_frame(pong, len, &pf, &peer);
        ASSERT(ph > 0 && pf.opcode == WS_OP_PONG && (size_t)ph + pf.payload_len == len);
        ws_unmask(pong + ph, (size_t)pf.payload_len, pf.mask, 0);
        ASSERT(pf.payload_len == ev.len &&
               (ev.len == 0 || memcmp(pong + ph, ev.data, ev.len) == 0));
      }
      if (ev.opcode == WS_OP_CLOSE) {
        ASSERT(ev.close_code == WS_CLOSE_NO_STATUS || ws_close_code_valid(ev.close_code));
        ASSERT(utf8_ref_valid(ev.data, ev.len));
      }
    } else {
      ASSERT(ev.opcode == WS_OP_TEXT || ev.opcode == WS_OP_BINARY);
      ASSERT(ev.first == (before.msg_opcode == 0));
      if (ev.first) msg_len = 0;
      ASSERT(ev.len == plen && msg_len + ev.len <= total);
      if (ev.len) memcpy(msg + msg_len, ev.data, ev.len);
      msg_len += ev.len;
      ASSERT(msg_len <= lim.max_message);
      ASSERT(ws_assembler_in_message(&a) == !ev.fin);
      if (ev.fin && ev.opcode == WS_OP_TEXT) ASSERT(utf8_ref_valid(msg, msg_len));
    }
    p += plen, n -= plen;
  }
  free(msg);
  free(ref);
}

static void fuzz_base64(const uint8_t *data, size_t size) {
  static const unsigned modes[] = {B64_STD | B64_PAD, B64_STD | B64_NOPAD,
                                   B64_URL | B64_PAD, B64_URL | B64_NOPAD};
  size_t cap = b64_encoded_len(size, B64_STD | B64_PAD) + 1;
  char *enc = malloc(cap);
  uint8_t *dec = malloc(size + 1);
  ASSERT(enc && dec);
  for (size_t m = 0; m < 4; m++) {
    size_t enc_len = 0, dec_len = 0;
    ASSERT(b64_encode(enc, cap, data, size, modes[m], &enc_len) == 0);
    ASSERT(enc_len == b64_encoded_len(size, modes[m]));
    ASSERT(b64_decode(dec, size + 1, enc, enc_len, modes[m], &dec_len) == 0);
    ASSERT(dec_len == size && (size == 0 || memcmp(dec, data, size) == 0));

    /* The input read as base64 text: a success must be the one encoding. */
    int rc = b64_decode(dec, size + 1, (const char *)data, size, modes[m], &dec_len);
    ASSERT(rc == 0 || rc == TSR_EDECODE);
    if (rc == 0) {
      ASSERT(dec_len <= b64_decoded_max(size));
      ASSERT(b64_encode(enc, cap, dec, dec_len, modes[m], &enc_len) == 0);
      ASSERT(enc_len == size && (size == 0 || memcmp(enc, data, size) == 0));
    }
  }
  free(enc);
  free(dec);
}

static void fuzz_misc(const uint8_t *data, size_t size) {
  /* UTF-8: the DFA agrees with the reference, whole and split. */
  bool v = utf8_valid(data, size);
  ASSERT(v == utf8_ref_valid(data, size));
  size_t k = size ? data[0] % (size + 1) : 0;
  utf8_state st = utf8_step(UTF8_ACCEPT, data, k);
  ASSERT((utf8_step(st, data + k, size - k) == UTF8_ACCEPT) == v);
  size_t pre = utf8_valid_prefix(data, size);
  ASSERT(pre <= size && utf8_valid(data, pre));
  ASSERT(!v || pre == size);

  /* Handshake helpers take arbitrary header values. */
  char accept[WS_ACCEPT_LEN + 1];
  if (ws_accept_key((const char *)data, size, accept) == 0)
    ASSERT(size == WS_KEY_LEN && strlen(accept) == WS_ACCEPT_LEN);
  int found = ws_find_subprotocol((const char *)data, size, WS_SUBPROTOCOL);
  ASSERT(found == 0 || found == 1 || found == TSR_EDECODE);

  /* Close encoder: code from two bytes, reason from the rest; whatever it
   * writes, a peer in the other role must accept with the same content. */
  if (size >= 2) {
    uint16_t code = (uint16_t)(data[0] << 8 | data[1]);
    const char *reason = (const char *)data + 2;
    size_t rlen = size - 2;
    uint8_t out[WS_MAX_CONTROL_FRAME];
    const uint8_t mask[4] = {data[0], data[1], 0x5a, 0xa5};
    bool client_sends = data[1] & 1;
    size_t len = ws_write_close(out, code, reason, rlen, client_sends ? mask : NULL);
    if (len) {
      ws_limits lim = {.max_frame = 125, .max_message = 0, .client = !client_sends};
      ws_frame f;
      int h = ws_parse_frame(out, len, &f, &lim);
      ASSERT(h > 0 && (size_t)h + f.payload_len == len);
      ws_unmask(out + h, (size_t)f.payload_len, f.mask, 0);
      ws_assembler a;
      ws_assembler_init(&a);
      ws_event ev;
      ASSERT(ws_assembler_feed(&a, &f, out + h, &lim, &ev) == 0);
      ASSERT(ev.opcode == WS_OP_CLOSE);
      ASSERT(ev.close_code == (code ? code : WS_CLOSE_NO_STATUS));
      ASSERT(ev.len <= rlen && (ev.len == 0 || memcmp(ev.data, reason, ev.len) == 0));
      ASSERT(ev.len == rlen || rlen > WS_MAX_CLOSE_REASON);
    } else {
      ASSERT(!(code == 0 && rlen == 0));
      ASSERT(code == 0 || !ws_close_code_valid(code) || !utf8_valid(data + 2, rlen));
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  uint8_t *copy = malloc(size); /* frames are unmasked in place */
  ASSERT(copy);
  memcpy(copy, data, size);
  fuzz_frames(data[0], copy + 1, size - 1);
  free(copy);
  fuzz_base64(data, size);
  fuzz_misc(data, size);
  return 0;
}
