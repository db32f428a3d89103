/* WebSocket framing (RFC 6455): see ws.h for the contract. */
#include "proto/ws.h"

#include <openssl/evp.h>
#include <string.h>

#include "proto/base64.h"
#include "tessera/error.h"

/* ---- handshake ---- */

int ws_accept_key(const char *key, size_t key_len, char out[WS_ACCEPT_LEN + 1]) {
  /* 16 random bytes in padded base64 are exactly 24 characters ending in
   * "=="; b64_decode checks the alphabet and the unused bits. */
  uint8_t raw[18];
  size_t raw_len = 0;
  if (!key || key_len != WS_KEY_LEN) return TSR_EDECODE;
  if (b64_decode(raw, sizeof raw, key, key_len, B64_MODE_STD, &raw_len) != 0 ||
      raw_len != 16)
    return TSR_EDECODE;

  char buf[WS_KEY_LEN + sizeof WS_GUID - 1];
  memcpy(buf, key, WS_KEY_LEN);
  memcpy(buf + WS_KEY_LEN, WS_GUID, sizeof WS_GUID - 1);
  uint8_t md[EVP_MAX_MD_SIZE];
  unsigned md_len = 0;
  if (EVP_Digest(buf, sizeof buf, md, &md_len, EVP_sha1(), NULL) != 1 || md_len != 20)
    return TSR_ECRYPTO;

  char enc[WS_ACCEPT_LEN];
  size_t enc_len = 0;
  if (b64_encode(enc, sizeof enc, md, md_len, B64_MODE_STD, &enc_len) != 0 ||
      enc_len != WS_ACCEPT_LEN)
    return TSR_ECRYPTO; /* cannot happen: 20 bytes are always 28 characters */
  memcpy(out, enc, WS_ACCEPT_LEN);
  out[WS_ACCEPT_LEN] = '\0';
  return 0;
}

/* RFC 9110 §5.6.2 tchar. */
static bool is_tchar(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
    return true;
  return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

int ws_find_subprotocol(const char *list, size_t len, const char *want) {
  size_t want_len = want ? strlen(want) : 0;
  if (want_len == 0) return TSR_EINVAL;
  bool found = false;
  size_t i = 0;
  while (i <= len) {
    /* One element: OWS token OWS, ended by ',' or the end of the list. */
    while (i < len && (list[i] == ' ' || list[i] == '\t')) i++;
    size_t start = i;
    while (i < len && is_tchar((unsigned char)list[i])) i++;
    size_t end = i;
    while (i < len && (list[i] == ' ' || list[i] == '\t')) i++;
    if (i < len && list[i] != ',') return TSR_EDECODE;
    if (end - start == want_len && memcmp(list + start, want, want_len) == 0)
      found = true;
    i++; /* past the ',' (or past the end, which stops the loop) */
  }
  return found ? 1 : 0;
}

/* ---- frame parser ---- */

static bool opcode_known(uint8_t op) {
  return op == WS_OP_CONT || op == WS_OP_TEXT || op == WS_OP_BINARY ||
         op == WS_OP_CLOSE || op == WS_OP_PING || op == WS_OP_PONG;
}

static bool is_control(uint8_t op) { return (op & 0x08) != 0; }

int ws_parse_frame(const uint8_t *buf, size_t len, ws_frame *f, const ws_limits *lim) {
  if (len < 1) return WS_INCOMPLETE;
  uint8_t b0 = buf[0];
  uint8_t op = b0 & 0x0F;
  bool fin = (b0 & 0x80) != 0;
  if (b0 & 0x70) return WS_EPROTOCOL; /* RSV1-3: no extension negotiated */
  if (!opcode_known(op)) return WS_EPROTOCOL;
  if (is_control(op) && !fin) return WS_EPROTOCOL;
  if (len < 2) return WS_INCOMPLETE;

  uint8_t b1 = buf[1];
  bool masked = (b1 & 0x80) != 0;
  /* Client-to-server frames are masked, server-to-client frames are not. */
  if (masked == lim->client) return WS_EPROTOCOL;
  uint64_t plen = b1 & 0x7F;
  if (is_control(op) && plen > WS_MAX_CONTROL_PAYLOAD) return WS_EPROTOCOL;
  size_t pos = 2;
  if (plen == 126) {
    if (len < 4) return WS_INCOMPLETE;
    plen = (uint64_t)buf[2] << 8 | buf[3];
    if (plen < 126) return WS_EPROTOCOL; /* fits the 7-bit form */
    pos = 4;
  } else if (plen == 127) {
    if (len < 10) return WS_INCOMPLETE;
    plen = 0;
    for (int i = 0; i < 8; i++) plen = plen << 8 | buf[2 + i];
    if (plen >> 63) return WS_EPROTOCOL;
    if (plen <= 0xFFFF) return WS_EPROTOCOL; /* fits the 16-bit form */
    pos = 10;
  }
  if (plen > lim->max_frame) return WS_ETOOBIG;

  uint8_t mask[4] = {0, 0, 0, 0};
  if (masked) {
    if (len - pos < 4) return WS_INCOMPLETE;
    memcpy(mask, buf + pos, 4);
    pos += 4;
  }
  f->payload_len = plen;
  f->opcode = op;
  f->fin = fin;
  f->masked = masked;
  memcpy(f->mask, mask, 4);
  return (int)pos;
}

void ws_unmask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t offset) {
  /* The key rotated to start at offset, twice: one 64-bit word's worth. */
  uint8_t m[8];
  for (unsigned i = 0; i < 8; i++) m[i] = mask[(offset + i) & 3];
  size_t i = 0;
  if (n >= 8) {
    uint64_t mw;
    memcpy(&mw, m, 8);
    /* memcpy in and out: unaligned access without UB, compiled to plain
     * loads and stores (and vectorised) at -O2. */
    for (; n - i >= 8; i += 8) {
      uint64_t w;
      memcpy(&w, p + i, 8);
      w ^= mw;
      memcpy(p + i, &w, 8);
    }
  }
  /* i is a multiple of 8 here, so m[i & 3] continues the same rotation. */
  for (; i < n; i++) p[i] ^= m[i & 3];
}

/* ---- assembly ---- */

void ws_assembler_init(ws_assembler *a) {
  a->msg_len = 0;
  a->msg_opcode = 0;
  a->utf8 = UTF8_ACCEPT;
}

bool ws_assembler_in_message(const ws_assembler *a) { return a->msg_opcode != 0; }

bool ws_close_code_valid(uint16_t code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
         (code >= 3000 && code <= 4999);
}

uint16_t ws_close_code_for(int err) {
  switch (err) {
  case WS_EPROTOCOL: return WS_CLOSE_PROTOCOL;
  case WS_EBADDATA: return WS_CLOSE_BAD_DATA;
  case WS_ETOOBIG: return WS_CLOSE_TOO_BIG;
  default: return WS_CLOSE_INTERNAL;
  }
}

static int feed_control(const ws_frame *f, const uint8_t *payload, ws_event *ev) {
  size_t len = (size_t)f->payload_len; /* <= 125, checked by the caller */
  ws_event e = {
      .opcode = f->opcode, .first = true, .fin = true, .data = payload, .len = len};
  if (f->opcode == WS_OP_CLOSE) {
    if (len == 0) {
      e.close_code = WS_CLOSE_NO_STATUS;
    } else {
      if (len == 1) return WS_EPROTOCOL;
      uint16_t code = (uint16_t)(payload[0] << 8 | payload[1]);
      if (!ws_close_code_valid(code)) return WS_EPROTOCOL;
      if (!utf8_valid(payload + 2, len - 2)) return WS_EBADDATA;
      e.close_code = code;
      e.data = payload + 2;
      e.len = len - 2;
    }
  }
  *ev = e;
  return 0;
}

int ws_assembler_feed(ws_assembler *a, const ws_frame *f, const uint8_t *payload,
                      const ws_limits *lim, ws_event *ev) {
  uint64_t plen = f->payload_len;
  /* Same order as the parser: structure (1002) before size (1009). */
  bool control = is_control(f->opcode);
  if (control && (!opcode_known(f->opcode) || !f->fin || plen > WS_MAX_CONTROL_PAYLOAD))
    return WS_EPROTOCOL;
  if (plen > lim->max_frame) return WS_ETOOBIG;
#if SIZE_MAX < UINT64_MAX
  if (plen > SIZE_MAX) return WS_ETOOBIG;
#endif
  if (control) return feed_control(f, payload, ev);

  bool first;
  uint8_t msg_op;
  if (f->opcode == WS_OP_CONT) {
    if (a->msg_opcode == 0) return WS_EPROTOCOL; /* nothing to continue */
    first = false;
    msg_op = a->msg_opcode;
  } else if (f->opcode == WS_OP_TEXT || f->opcode == WS_OP_BINARY) {
    if (a->msg_opcode != 0) return WS_EPROTOCOL; /* previous message unfinished */
    first = true;
    msg_op = f->opcode;
  } else {
    return WS_EPROTOCOL;
  }

  uint64_t before = first ? 0 : a->msg_len;
  if (plen > lim->max_message || before > lim->max_message - plen) return WS_ETOOBIG;
  utf8_state st = first ? UTF8_ACCEPT : a->utf8;
  if (msg_op == WS_OP_TEXT) {
    st = utf8_step(st, payload, (size_t)plen);
    if (st == UTF8_REJECT || (f->fin && st != UTF8_ACCEPT)) return WS_EBADDATA;
  }

  if (f->fin) {
    ws_assembler_init(a);
  } else {
    a->msg_len = before + plen;
    a->msg_opcode = msg_op;
    a->utf8 = st;
  }
  *ev = (ws_event){.opcode = msg_op,
                   .first = first,
                   .fin = f->fin,
                   .data = payload,
                   .len = (size_t)plen};
  return 0;
}

/* ---- encoder ---- */

size_t ws_write_frame_header(uint8_t out[WS_MAX_HEADER], uint8_t opcode, bool fin,
                             uint64_t payload_len, const uint8_t *mask) {
  if (!opcode_known(opcode) || payload_len >> 63) return 0;
  if (is_control(opcode) && (!fin || payload_len > WS_MAX_CONTROL_PAYLOAD)) return 0;
  size_t n = 0;
  out[n++] = (uint8_t)((fin ? 0x80 : 0) | opcode);
  uint8_t mbit = mask ? 0x80 : 0;
  if (payload_len < 126) {
    out[n++] = (uint8_t)(mbit | payload_len);
  } else if (payload_len <= 0xFFFF) {
    out[n++] = mbit | 126;
    out[n++] = (uint8_t)(payload_len >> 8);
    out[n++] = (uint8_t)payload_len;
  } else {
    out[n++] = mbit | 127;
    for (int shift = 56; shift >= 0; shift -= 8)
      out[n++] = (uint8_t)(payload_len >> shift);
  }
  if (mask) {
    memcpy(out + n, mask, 4);
    n += 4;
  }
  return n;
}

size_t ws_write_control(uint8_t out[WS_MAX_CONTROL_FRAME], uint8_t opcode,
                        const uint8_t *payload, size_t len, const uint8_t *mask) {
  if (!is_control(opcode) || len > WS_MAX_CONTROL_PAYLOAD) return 0;
  size_t h = ws_write_frame_header(out, opcode, true, len, mask);
  if (h == 0) return 0;
  if (len) {
    memcpy(out + h, payload, len);
    if (mask) ws_unmask(out + h, len, mask, 0);
  }
  return h + len;
}

size_t ws_write_pong(uint8_t out[WS_MAX_CONTROL_FRAME], const uint8_t *payload,
                     size_t len, const uint8_t *mask) {
  return ws_write_control(out, WS_OP_PONG, payload, len, mask);
}

size_t ws_write_close(uint8_t out[WS_MAX_CONTROL_FRAME], uint16_t code,
                      const char *reason, size_t reason_len, const uint8_t *mask) {
  if (code == 0) {
    if (reason_len != 0) return 0;
    return ws_write_control(out, WS_OP_CLOSE, NULL, 0, mask);
  }
  if (!ws_close_code_valid(code)) return 0;
  const uint8_t *r = (const uint8_t *)reason;
  if (reason_len && !utf8_valid(r, reason_len)) return 0;
  size_t keep = reason_len;
  if (keep > WS_MAX_CLOSE_REASON) keep = utf8_valid_prefix(r, WS_MAX_CLOSE_REASON);
  uint8_t payload[WS_MAX_CONTROL_PAYLOAD];
  payload[0] = (uint8_t)(code >> 8);
  payload[1] = (uint8_t)code;
  if (keep) memcpy(payload + 2, r, keep);
  return ws_write_control(out, WS_OP_CLOSE, payload, 2 + keep, mask);
}
