/* WebSocket: RFC 6455 §1.3 handshake and §5.7 frame examples, every
 * incomplete prefix, every error with its close code, fragmentation with
 * interleaved control frames, UTF-8 across fragments, and the encoder. */
#include "proto/ws.h"
#include "test.h"

static const ws_limits server_lim = {.max_frame = 1 << 20, .max_message = 1 << 22};
static const ws_limits client_lim = {
    .max_frame = 1 << 20, .max_message = 1 << 22, .client = true};

/* ---- handshake ---- */

static void test_accept_key_rfc(void) {
  char out[WS_ACCEPT_LEN + 1];
  const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
  CHECK_OK(ws_accept_key(key, strlen(key), out));
  CHECK(strcmp(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0);
}

static void test_accept_key_rejects(void) {
  static const char *bad[] = {
      "",
      "dGhlIHNhbXBsZSBub25jZQ=",    /* 23 characters */
      "dGhlIHNhbXBsZSBub25jZQ===",  /* 25 */
      "dGhlIHNhbXBsZSBub25jZQAA",   /* 24 characters but 18 bytes */
      "dGhlIHNhbXBsZSBub25jZR==",   /* non-zero unused bits */
      "dGhlIHNhbXBsZSBub25jZ===",   /* wrong padding */
      "dGhlIHNhbXBsZSBub25jZQ\r\n", /* not trimmed */
      "dGhlIHNhbXBsZSBub25-ZQ==",   /* url alphabet */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char out[WS_ACCEPT_LEN + 1] = "untouched";
    CHECK_ERR(ws_accept_key(bad[i], strlen(bad[i]), out), TSR_EDECODE);
    CHECK(strcmp(out, "untouched") == 0);
  }
  char out[WS_ACCEPT_LEN + 1];
  CHECK_ERR(ws_accept_key(NULL, 24, out), TSR_EDECODE);
}

static int find(const char *list) {
  return ws_find_subprotocol(list, strlen(list), WS_SUBPROTOCOL);
}

static void test_subprotocol(void) {
  CHECK_INT(find("tessera.v1"), 1);
  CHECK_INT(find("chat, tessera.v1"), 1);
  CHECK_INT(find("tessera.v1,chat"), 1);
  CHECK_INT(find(" \ttessera.v1\t , x"), 1);
  CHECK_INT(find(",, tessera.v1 ,,"), 1);
  CHECK_INT(find(""), 0);
  CHECK_INT(find("   "), 0);
  CHECK_INT(find(","), 0);
  CHECK_INT(find("tessera.v2"), 0);
  CHECK_INT(find("tessera.v1x"), 0);
  CHECK_INT(find("xtessera.v1"), 0);
  CHECK_INT(find("tessera.v"), 0);
  CHECK_INT(find("Tessera.V1"), 0);
  CHECK_INT(find("chat, superchat"), 0);
  CHECK_ERR(find("tessera .v1"), TSR_EDECODE);
  CHECK_ERR(find("\"tessera.v1\""), TSR_EDECODE);
  CHECK_ERR(find("tessera.v1;q=1"), TSR_EDECODE);
  CHECK_ERR(find("chat tessera.v1"), TSR_EDECODE);
  CHECK_ERR(find("tessera.v1\r\n"), TSR_EDECODE);
  /* Length, not NUL, ends the list. */
  CHECK_INT(ws_find_subprotocol("tessera.v1, x", 10, WS_SUBPROTOCOL), 1);
  CHECK_INT(ws_find_subprotocol("tessera.v1", 9, WS_SUBPROTOCOL), 0);
  CHECK_ERR(ws_find_subprotocol("tessera.v1\0", 11, WS_SUBPROTOCOL), TSR_EDECODE);
  CHECK_ERR(ws_find_subprotocol("a", 1, ""), TSR_EINVAL);
}

/* ---- RFC 6455 §5.7 examples ---- */

static const uint8_t hello_unmasked[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
static const uint8_t hello_masked[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                       0x7f, 0x9f, 0x4d, 0x51, 0x58};
static const uint8_t frag1[] = {0x01, 0x03, 0x48, 0x65, 0x6c};
static const uint8_t frag2[] = {0x80, 0x02, 0x6c, 0x6f};
static const uint8_t ping_unmasked[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
static const uint8_t pong_masked[] = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                      0x7f, 0x9f, 0x4d, 0x51, 0x58};
static const uint8_t bin256_hdr[] = {0x82, 0x7E, 0x01, 0x00};
static const uint8_t bin64k_hdr[] = {0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00};

/* Parses one whole frame out of buf (must be exactly one frame), unmasks a
 * copy of its payload into pl and feeds it to the assembler. */
static int run_frame(const uint8_t *buf, size_t len, const ws_limits *lim,
                     ws_assembler *a, ws_event *ev, uint8_t *pl) {
  ws_frame f;
  int h = ws_parse_frame(buf, len, &f, lim);
  if (h <= 0) return h;
  CHECK_INT(len - (size_t)h, f.payload_len);
  memcpy(pl, buf + h, (size_t)f.payload_len);
  if (f.masked) ws_unmask(pl, (size_t)f.payload_len, f.mask, 0);
  return ws_assembler_feed(a, &f, pl, lim, ev);
}

static void test_rfc_single_frames(void) {
  ws_frame f;
  CHECK_INT(ws_parse_frame(hello_unmasked, sizeof hello_unmasked, &f, &client_lim), 2);
  CHECK_INT(f.opcode, WS_OP_TEXT);
  CHECK(f.fin && !f.masked);
  CHECK_INT(f.payload_len, 5);
  CHECK(memcmp(hello_unmasked + 2, "Hello", 5) == 0);

  CHECK_INT(ws_parse_frame(hello_masked, sizeof hello_masked, &f, &server_lim), 6);
  CHECK(f.fin && f.masked);
  CHECK(memcmp(f.mask, "\x37\xfa\x21\x3d", 4) == 0);
  uint8_t pl[8];
  memcpy(pl, hello_masked + 6, 5);
  ws_unmask(pl, 5, f.mask, 0);
  CHECK(memcmp(pl, "Hello", 5) == 0);

  ws_assembler a;
  ws_assembler_init(&a);
  ws_event ev;
  CHECK_OK(run_frame(hello_masked, sizeof hello_masked, &server_lim, &a, &ev, pl));
  CHECK_INT(ev.opcode, WS_OP_TEXT);
  CHECK(ev.first && ev.fin);
  CHECK_INT(ev.len, 5);
  CHECK(memcmp(ev.data, "Hello", 5) == 0);
  CHECK(!ws_assembler_in_message(&a));

  /* Masking is tied to the role. */
  CHECK_INT(ws_parse_frame(hello_masked, sizeof hello_masked, &f, &client_lim),
            WS_EPROTOCOL);
  CHECK_INT(ws_parse_frame(hello_unmasked, sizeof hello_unmasked, &f, &server_lim),
            WS_EPROTOCOL);
}

static void test_rfc_fragmented_and_control(void) {
  ws_assembler a;
  ws_assembler_init(&a);
  ws_event ev;
  uint8_t pl[8];
  CHECK_OK(run_frame(frag1, sizeof frag1, &client_lim, &a, &ev, pl));
  CHECK(ev.opcode == WS_OP_TEXT && ev.first && !ev.fin);
  CHECK(ev.len == 3 && memcmp(ev.data, "Hel", 3) == 0);
  CHECK(ws_assembler_in_message(&a));
  CHECK_OK(run_frame(ping_unmasked, sizeof ping_unmasked, &client_lim, &a, &ev, pl));
  CHECK(ev.opcode == WS_OP_PING && ev.len == 5 && memcmp(ev.data, "Hello", 5) == 0);
  CHECK(ws_assembler_in_message(&a)); /* the ping did not end the message */
  CHECK_OK(run_frame(frag2, sizeof frag2, &client_lim, &a, &ev, pl));
  CHECK(ev.opcode == WS_OP_TEXT && !ev.first && ev.fin);
  CHECK(ev.len == 2 && memcmp(ev.data, "lo", 2) == 0);
  CHECK(!ws_assembler_in_message(&a));

  CHECK_OK(run_frame(pong_masked, sizeof pong_masked, &server_lim, &a, &ev, pl));
  CHECK(ev.opcode == WS_OP_PONG && ev.len == 5 && memcmp(ev.data, "Hello", 5) == 0);

  /* The encoder reproduces the examples byte for byte. */
  uint8_t out[WS_MAX_CONTROL_FRAME];
  CHECK_INT(ws_write_control(out, WS_OP_PING, (const uint8_t *)"Hello", 5, NULL),
            sizeof ping_unmasked);
  CHECK(memcmp(out, ping_unmasked, sizeof ping_unmasked) == 0);
  CHECK_INT(ws_write_pong(out, (const uint8_t *)"Hello", 5, pong_masked + 2),
            sizeof pong_masked);
  CHECK(memcmp(out, pong_masked, sizeof pong_masked) == 0);
  CHECK_INT(ws_write_frame_header(out, WS_OP_TEXT, false, 3, NULL), 2);
  CHECK(memcmp(out, frag1, 2) == 0);
  CHECK_INT(ws_write_frame_header(out, WS_OP_CONT, true, 2, NULL), 2);
  CHECK(memcmp(out, frag2, 2) == 0);
  CHECK_INT(ws_write_frame_header(out, WS_OP_TEXT, true, 5, hello_masked + 2), 6);
  CHECK(memcmp(out, hello_masked, 6) == 0);
}

static void test_rfc_long_lengths(void) {
  ws_frame f;
  CHECK_INT(ws_parse_frame(bin256_hdr, sizeof bin256_hdr, &f, &client_lim), 4);
  CHECK(f.opcode == WS_OP_BINARY && f.fin && f.payload_len == 256);
  CHECK_INT(ws_parse_frame(bin64k_hdr, sizeof bin64k_hdr, &f, &client_lim), 10);
  CHECK(f.opcode == WS_OP_BINARY && f.fin && f.payload_len == 65536);
  uint8_t out[WS_MAX_HEADER];
  CHECK_INT(ws_write_frame_header(out, WS_OP_BINARY, true, 256, NULL), 4);
  CHECK(memcmp(out, bin256_hdr, 4) == 0);
  CHECK_INT(ws_write_frame_header(out, WS_OP_BINARY, true, 65536, NULL), 10);
  CHECK(memcmp(out, bin64k_hdr, 10) == 0);
}

/* ---- incomplete prefixes ---- */

static void check_prefixes(const uint8_t *buf, size_t hdr_len, const ws_limits *lim) {
  ws_frame f;
  memset(&f, 0x5A, sizeof f);
  for (size_t k = 0; k < hdr_len; k++) {
    CHECK_INT(ws_parse_frame(buf, k, &f, lim), WS_INCOMPLETE);
    CHECK(f.opcode == 0x5A); /* untouched */
  }
  CHECK_INT(ws_parse_frame(buf, hdr_len, &f, lim), (int)hdr_len);
}

static void test_every_incomplete_prefix(void) {
  static const uint8_t m126[] = {0x82, 0xFE, 0x01, 0x00, 1, 2, 3, 4};
  static const uint8_t m127[] = {0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 9, 8, 7, 6};
  static const uint8_t close_masked[] = {0x88, 0x80, 1, 2, 3, 4};
  check_prefixes(hello_unmasked, 2, &client_lim);
  check_prefixes(hello_masked, 6, &server_lim);
  check_prefixes(frag1, 2, &client_lim);
  check_prefixes(bin256_hdr, 4, &client_lim);
  check_prefixes(bin64k_hdr, 10, &client_lim);
  check_prefixes(m126, 8, &server_lim);
  check_prefixes(m127, 14, &server_lim);
  check_prefixes(close_masked, 6, &server_lim);
  /* The header alone is enough: the payload need not be there. */
  ws_frame f;
  CHECK_INT(ws_parse_frame(m127, sizeof m127, &f, &server_lim), 14);
  CHECK(f.payload_len == 65536 && memcmp(f.mask, "\x09\x08\x07\x06", 4) == 0);
}

/* ---- errors and their close codes ---- */

typedef struct {
  const char *what;
  uint8_t bytes[14];
  size_t len;
  bool client;
  int want;
} err_case;

static void test_parse_errors(void) {
  const err_case cases[] = {
      {"RSV1", {0xC1, 0x80, 0, 0, 0, 0}, 6, false, WS_EPROTOCOL},
      {"RSV2", {0xA1, 0x80, 0, 0, 0, 0}, 6, false, WS_EPROTOCOL},
      {"RSV3", {0x91, 0x80, 0, 0, 0, 0}, 6, false, WS_EPROTOCOL},
      {"RSV on a prefix", {0xC1}, 1, false, WS_EPROTOCOL},
      {"opcode 3", {0x83, 0x80, 0, 0, 0, 0}, 6, false, WS_EPROTOCOL},
      {"opcode 7", {0x87, 0x80, 0, 0, 0, 0}, 6, false, WS_EPROTOCOL},
      {"opcode B", {0x8B, 0x80, 0, 0, 0, 0}, 6, false, WS_EPROTOCOL},
      {"opcode F", {0x8F}, 1, false, WS_EPROTOCOL},
      {"fragmented ping", {0x09, 0x80, 0, 0, 0, 0}, 6, false, WS_EPROTOCOL},
      {"fragmented close", {0x08}, 1, false, WS_EPROTOCOL},
      {"ping of 126", {0x89, 0xFE, 0x00, 0x7E}, 4, false, WS_EPROTOCOL},
      {"close of 127 (7-bit)", {0x88, 0xFF}, 2, false, WS_EPROTOCOL},
      {"pong of 65536", {0x8A, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0}, 10, true, WS_EPROTOCOL},
      {"16-bit length 125", {0x82, 0x7E, 0x00, 0x7D}, 4, true, WS_EPROTOCOL},
      {"16-bit length 0", {0x82, 0x7E, 0x00, 0x00}, 4, true, WS_EPROTOCOL},
      {"64-bit length 65535",
       {0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF},
       10,
       true,
       WS_EPROTOCOL},
      {"64-bit length 5", {0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0, 5}, 10, true, WS_EPROTOCOL},
      {"64-bit MSB", {0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0}, 10, true, WS_EPROTOCOL},
      {"64-bit all ones",
       {0x82, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF},
       10,
       false,
       WS_EPROTOCOL},
      {"server gets unmasked", {0x81, 0x00}, 2, false, WS_EPROTOCOL},
      {"client gets masked", {0x81, 0x80, 0, 0, 0, 0}, 6, true, WS_EPROTOCOL},
      {"over max_frame (7-bit)", {0x82, 0x65}, 2, true, WS_ETOOBIG},
      {"over max_frame (16-bit)", {0x82, 0xFE, 0x01, 0x00}, 4, false, WS_ETOOBIG},
      {"over max_frame (64-bit)",
       {0x82, 0x7F, 0x40, 0, 0, 0, 0, 0, 0, 0},
       10,
       true,
       WS_ETOOBIG},
  };
  const size_t n = sizeof cases / sizeof cases[0];
  for (size_t i = 0; i < n; i++) {
    ws_limits lim = {.max_frame = 100, .max_message = 1000, .client = cases[i].client};
    ws_frame f;
    memset(&f, 0x5A, sizeof f);
    int rc = ws_parse_frame(cases[i].bytes, cases[i].len, &f, &lim);
    if (rc != cases[i].want) fprintf(stderr, "  case \"%s\": %d\n", cases[i].what, rc);
    CHECK_INT(rc, cases[i].want);
    CHECK(f.opcode == 0x5A);
    /* Any longer input that starts the same way fails the same way. */
    uint8_t longer[32] = {0};
    memcpy(longer, cases[i].bytes, cases[i].len);
    CHECK_INT(ws_parse_frame(longer, sizeof longer, &f, &lim), cases[i].want);
  }
  CHECK_INT(ws_close_code_for(WS_EPROTOCOL), 1002);
  CHECK_INT(ws_close_code_for(WS_EBADDATA), 1007);
  CHECK_INT(ws_close_code_for(WS_ETOOBIG), 1009);
  CHECK_INT(ws_close_code_for(TSR_ENOMEM), 1011);
  CHECK_INT(ws_close_code_for(0), 1011);

  /* Exactly at the limit is fine; zero limits allow only empty frames. */
  ws_limits lim = {.max_frame = 100, .max_message = 100, .client = true};
  ws_frame f;
  CHECK_INT(ws_parse_frame((const uint8_t *)"\x82\x64", 2, &f, &lim), 2);
  ws_limits zero = {0};
  CHECK_INT(ws_parse_frame((const uint8_t *)"\x82\x80\0\0\0\0", 6, &f, &zero), 6);
  CHECK_INT(ws_parse_frame((const uint8_t *)"\x82\x81\0\0\0\0", 6, &f, &zero),
            WS_ETOOBIG);
}

/* ---- unmasking ---- */

static void test_unmask(void) {
  const uint8_t mask[4] = {0x12, 0x34, 0x56, 0x78};
  uint8_t buf[80], ref[80];
  for (size_t align = 0; align < 8; align++) {
    for (size_t n = 0; n <= 64; n++) {
      for (unsigned off = 0; off < 8; off++) {
        uint8_t *p = buf + align;
        for (size_t i = 0; i < n; i++) p[i] = ref[i] = (uint8_t)(i * 7 + n);
        ws_unmask(p, n, mask, off);
        bool same = true;
        for (size_t i = 0; i < n; i++)
          if (p[i] != (uint8_t)(ref[i] ^ mask[(off + i) % 4])) same = false;
        CHECK(same);
      }
    }
  }
  /* Unmasking in uneven pieces equals unmasking at once. */
  uint8_t whole[61], parts[61];
  for (size_t i = 0; i < sizeof whole; i++) whole[i] = parts[i] = (uint8_t)i;
  ws_unmask(whole, sizeof whole, mask, 0);
  const size_t cuts[] = {0, 3, 4, 13, 30, 31, 61};
  for (size_t c = 0; c + 1 < sizeof cuts / sizeof cuts[0]; c++)
    ws_unmask(parts + cuts[c], cuts[c + 1] - cuts[c], mask, cuts[c]);
  CHECK(memcmp(whole, parts, sizeof whole) == 0);
}

/* ---- assembly ---- */

static ws_frame mkframe(uint8_t op, bool fin, size_t len) {
  return (ws_frame){.payload_len = len, .opcode = op, .fin = fin};
}

static void test_fragmentation_errors(void) {
  ws_limits lim = {.max_frame = 100, .max_message = 10};
  ws_assembler a;
  ws_assembler_init(&a);
  ws_event ev;
  memset(&ev, 0x5A, sizeof ev);
  ws_frame f = mkframe(WS_OP_CONT, true, 1);
  CHECK_INT(ws_assembler_feed(&a, &f, (const uint8_t *)"x", &lim, &ev), WS_EPROTOCOL);
  CHECK(ev.opcode == 0x5A);
  f = mkframe(WS_OP_CONT, false, 1);
  CHECK_INT(ws_assembler_feed(&a, &f, (const uint8_t *)"x", &lim, &ev), WS_EPROTOCOL);

  f = mkframe(WS_OP_BINARY, false, 6);
  CHECK_OK(ws_assembler_feed(&a, &f, (const uint8_t *)"abcdef", &lim, &ev));
  ws_assembler saved = a;
  f = mkframe(WS_OP_TEXT, true, 1);
  CHECK_INT(ws_assembler_feed(&a, &f, (const uint8_t *)"x", &lim, &ev), WS_EPROTOCOL);
  f = mkframe(WS_OP_BINARY, false, 1);
  CHECK_INT(ws_assembler_feed(&a, &f, (const uint8_t *)"x", &lim, &ev), WS_EPROTOCOL);
  /* 6 + 5 > max_message 10 */
  f = mkframe(WS_OP_CONT, false, 5);
  CHECK_INT(ws_assembler_feed(&a, &f, (const uint8_t *)"ghijk", &lim, &ev), WS_ETOOBIG);
  /* errors change nothing */
  CHECK(a.msg_len == saved.msg_len && a.msg_opcode == saved.msg_opcode &&
        a.utf8 == saved.utf8);
  /* 6 + 4 == 10 fits */
  f = mkframe(WS_OP_CONT, false, 4);
  CHECK_OK(ws_assembler_feed(&a, &f, (const uint8_t *)"ghij", &lim, &ev));
  CHECK(ev.opcode == WS_OP_BINARY && !ev.first && !ev.fin);
  f = mkframe(WS_OP_CONT, true, 0);
  CHECK_OK(ws_assembler_feed(&a, &f, NULL, &lim, &ev));
  CHECK(ev.fin && ev.len == 0);
  CHECK(!ws_assembler_in_message(&a));
  /* A single frame over max_message, and reserved opcodes fed directly. */
  f = mkframe(WS_OP_TEXT, true, 11);
  CHECK_INT(ws_assembler_feed(&a, &f, (const uint8_t *)"abcdefghijk", &lim, &ev),
            WS_ETOOBIG);
  f = mkframe(WS_OP_TEXT, true, 101);
  uint8_t big[101] = {0};
  CHECK_INT(ws_assembler_feed(&a, &f, big, &lim, &ev), WS_ETOOBIG);
  f = mkframe(3, true, 0);
  CHECK_INT(ws_assembler_feed(&a, &f, NULL, &lim, &ev), WS_EPROTOCOL);
  f = mkframe(0xB, true, 0);
  CHECK_INT(ws_assembler_feed(&a, &f, NULL, &lim, &ev), WS_EPROTOCOL);
  f = mkframe(WS_OP_PING, false, 0);
  CHECK_INT(ws_assembler_feed(&a, &f, NULL, &lim, &ev), WS_EPROTOCOL);
  f = mkframe(WS_OP_PING, true, 126);
  CHECK_INT(ws_assembler_feed(&a, &f, big, &lim, &ev), WS_EPROTOCOL);
}

static void test_interleaved_controls(void) {
  ws_limits lim = {.max_frame = 100, .max_message = 100};
  ws_assembler a;
  ws_assembler_init(&a);
  ws_event ev;
  ws_frame f = mkframe(WS_OP_TEXT, false, 2);
  CHECK_OK(ws_assembler_feed(&a, &f, (const uint8_t *)"\xe2\x82", &lim, &ev));
  f = mkframe(WS_OP_PING, true, 3);
  CHECK_OK(
      ws_assembler_feed(&a, &f, (const uint8_t *)"\xff\xfe!", &lim, &ev)); /* binary ok */
  CHECK(ev.opcode == WS_OP_PING && ev.len == 3);
  f = mkframe(WS_OP_PONG, true, 0);
  CHECK_OK(ws_assembler_feed(&a, &f, NULL, &lim, &ev));
  f = mkframe(WS_OP_CLOSE, true, 2);
  CHECK_OK(ws_assembler_feed(&a, &f, (const uint8_t *)"\x03\xe8", &lim, &ev));
  CHECK(ev.opcode == WS_OP_CLOSE && ev.close_code == 1000 && ev.len == 0);
  f = mkframe(WS_OP_CONT, true, 1);
  CHECK_OK(ws_assembler_feed(&a, &f, (const uint8_t *)"\xac", &lim,
                             &ev)); /* completes U+20AC */
  CHECK(ev.opcode == WS_OP_TEXT && ev.fin);
}

/* Feeds s as a text message in two fragments split at k; returns the first
 * error, or 0. */
static int feed_split(const uint8_t *s, size_t n, size_t k) {
  ws_limits lim = {.max_frame = 1000, .max_message = 1000};
  ws_assembler a;
  ws_assembler_init(&a);
  ws_event ev;
  ws_frame f = mkframe(WS_OP_TEXT, false, k);
  int rc = ws_assembler_feed(&a, &f, s, &lim, &ev);
  if (rc) return rc;
  f = mkframe(WS_OP_CONT, true, n - k);
  return ws_assembler_feed(&a, &f, s + k, &lim, &ev);
}

static void test_utf8_split_across_fragments(void) {
  static const char good[] = "a\xc3\xa9 \xe2\x82\xac \xf0\x9d\x84\x9e \xf4\x8f\xbf\xbf z";
  static const char *bad[] = {
      "a\xc3\xa9 \xed\xa0\x80 z",     /* surrogate */
      "a\xc3\xa9 \xe0\x80\xaf z",     /* overlong */
      "a\xc3\xa9 \xf4\x90\x80\x80 z", /* above U+10FFFF */
      "a\xc3\xa9 \xf5\x80\x80\x80 z", /* F5 */
      "a\xc3\xa9 \xc2",               /* ends mid-character */
      "a\xc3\xa9 \xf0\x9d\x84",
  };
  const size_t gn = sizeof good - 1;
  for (size_t k = 0; k <= gn; k++) CHECK_OK(feed_split((const uint8_t *)good, gn, k));
  for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
    size_t n = strlen(bad[b]);
    for (size_t k = 0; k <= n; k++)
      CHECK_INT(feed_split((const uint8_t *)bad[b], n, k), WS_EBADDATA);
  }
  /* The same bytes as binary are not checked. */
  ws_limits lim = {.max_frame = 10, .max_message = 10};
  ws_assembler a;
  ws_assembler_init(&a);
  ws_event ev;
  ws_frame f = mkframe(WS_OP_BINARY, true, 2);
  CHECK_OK(ws_assembler_feed(&a, &f, (const uint8_t *)"\xff\xc2", &lim, &ev));
  /* A message ending inside a character fails on the final frame only. */
  f = mkframe(WS_OP_TEXT, false, 1);
  CHECK_OK(ws_assembler_feed(&a, &f, (const uint8_t *)"\xe2", &lim, &ev));
  f = mkframe(WS_OP_CONT, false, 1);
  CHECK_OK(ws_assembler_feed(&a, &f, (const uint8_t *)"\x82", &lim, &ev));
  f = mkframe(WS_OP_CONT, true, 0);
  CHECK_INT(ws_assembler_feed(&a, &f, NULL, &lim, &ev), WS_EBADDATA);
}

static int feed_close(const char *payload, size_t len, ws_event *ev) {
  ws_limits lim = {.max_frame = 200, .max_message = 200};
  ws_assembler a;
  ws_assembler_init(&a);
  ws_frame f = mkframe(WS_OP_CLOSE, true, len);
  return ws_assembler_feed(&a, &f, (const uint8_t *)payload, &lim, ev);
}

static void test_close_payloads(void) {
  ws_event ev;
  CHECK_OK(feed_close(NULL, 0, &ev));
  CHECK_INT(ev.close_code, WS_CLOSE_NO_STATUS);
  CHECK_INT(ev.len, 0);
  /* A 1-byte payload, even though the byte after it would make code 1000. */
  CHECK_INT(feed_close("\x03\xe8", 1, &ev), WS_EPROTOCOL);
  CHECK_OK(feed_close("\x03\xe9"
                      "bye \xe2\x82\xac",
                      9, &ev));
  CHECK_INT(ev.close_code, 1001);
  CHECK(ev.len == 7 && memcmp(ev.data, "bye \xe2\x82\xac", 7) == 0);
  CHECK_INT(feed_close("\x03\xe8"
                       "bad \xc0\xaf",
                       8, &ev),
            WS_EBADDATA);
  CHECK_INT(feed_close("\x03\xe8"
                       "cut \xe2\x82",
                       8, &ev),
            WS_EBADDATA);

  const uint16_t valid[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009,
                            1010, 1011, 3000, 3999, 4000, 4999};
  const uint16_t invalid[] = {0,    1,    999,  1004, 1005, 1006, 1012, 1013,
                              1014, 1015, 1016, 1100, 2000, 2999, 5000, 65535};
  for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++) {
    char p[2] = {(char)(valid[i] >> 8), (char)(valid[i] & 0xFF)};
    CHECK_OK(feed_close(p, 2, &ev));
    CHECK_INT(ev.close_code, valid[i]);
    CHECK(ws_close_code_valid(valid[i]));
  }
  for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
    char p[2] = {(char)(invalid[i] >> 8), (char)(invalid[i] & 0xFF)};
    CHECK_INT(feed_close(p, 2, &ev), WS_EPROTOCOL);
    CHECK(!ws_close_code_valid(invalid[i]));
  }
}

/* ---- encoder ---- */

static void test_header_encoder(void) {
  const uint64_t lens[] = {
      0, 1, 125, 126, 127, 65535, 65536, 1ull << 32, (1ull << 63) - 1};
  const size_t want[] = {2, 2, 2, 4, 4, 4, 10, 10, 10};
  const uint8_t mask[4] = {1, 2, 3, 4};
  ws_limits lim = {.max_frame = UINT64_MAX, .max_message = UINT64_MAX};
  for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
    for (int masked = 0; masked < 2; masked++) {
      uint8_t out[WS_MAX_HEADER];
      size_t n =
          ws_write_frame_header(out, WS_OP_BINARY, i % 2, lens[i], masked ? mask : NULL);
      CHECK_INT(n, want[i] + (masked ? 4 : 0));
      lim.client = !masked;
      ws_frame f;
      CHECK_INT(ws_parse_frame(out, n, &f, &lim), (int)n);
      CHECK(f.payload_len == lens[i] && f.opcode == WS_OP_BINARY && f.fin == (i % 2));
      CHECK(f.masked == masked);
    }
  }
  uint8_t out[WS_MAX_HEADER];
  CHECK_INT(ws_write_frame_header(out, WS_OP_BINARY, true, 1ull << 63, NULL), 0);
  CHECK_INT(ws_write_frame_header(out, WS_OP_PING, true, 126, NULL), 0);
  CHECK_INT(ws_write_frame_header(out, WS_OP_PING, false, 0, NULL), 0);
  CHECK_INT(ws_write_frame_header(out, 3, true, 0, NULL), 0);
  CHECK_INT(ws_write_frame_header(out, 0x10 | WS_OP_TEXT, true, 0, NULL), 0);
  uint8_t cf[WS_MAX_CONTROL_FRAME];
  uint8_t p126[126] = {0};
  CHECK_INT(ws_write_control(cf, WS_OP_TEXT, NULL, 0, NULL), 0);
  CHECK_INT(ws_write_pong(cf, p126, 126, NULL), 0);
  CHECK_INT(ws_write_pong(cf, p126, 125, mask), WS_MAX_CONTROL_FRAME);
}

static void test_close_encoder(void) {
  uint8_t out[WS_MAX_CONTROL_FRAME];
  CHECK_INT(ws_write_close(out, 0, NULL, 0, NULL), 2);
  CHECK(out[0] == 0x88 && out[1] == 0x00);
  CHECK_INT(ws_write_close(out, 0, "x", 1, NULL), 0);
  CHECK_INT(ws_write_close(out, 1005, NULL, 0, NULL), 0);
  CHECK_INT(ws_write_close(out, 1015, NULL, 0, NULL), 0);
  CHECK_INT(ws_write_close(out, 1000, "\xc0\xaf", 2, NULL), 0);
  CHECK_INT(ws_write_close(out, 1000, "bye", 3, NULL), 7);
  CHECK(memcmp(out,
               "\x88\x05\x03\xe8"
               "bye",
               7) == 0);

  /* Long reason: cut at a character boundary, parsed back by a server. */
  char reason[200];
  for (size_t i = 0; i < sizeof reason; i += 2) memcpy(reason + i, "\xc3\xa9", 2);
  const uint8_t mask[4] = {0xde, 0xad, 0xbe, 0xef};
  size_t n = ws_write_close(out, 1009, reason, sizeof reason, mask);
  CHECK_INT(n, 2 + 4 + 2 + 122); /* 61 two-byte characters fit in 123 */
  ws_assembler a;
  ws_assembler_init(&a);
  ws_event ev;
  uint8_t pl[WS_MAX_CONTROL_PAYLOAD];
  CHECK_OK(run_frame(out, n, &server_lim, &a, &ev, pl));
  CHECK(ev.opcode == WS_OP_CLOSE && ev.close_code == 1009 && ev.len == 122);
  CHECK(memcmp(ev.data, reason, 122) == 0);
  /* A reason of exactly 123 bytes is kept whole. */
  memset(reason, 'r', 123);
  CHECK_INT(ws_write_close(out, 4000, reason, 123, NULL), 2 + 125);
}

/* A stream of frames parsed back to back, as the server loop does. */
static void test_stream(void) {
  uint8_t stream[256];
  size_t n = 0;
  memcpy(stream + n, hello_masked, sizeof hello_masked), n += sizeof hello_masked;
  const uint8_t mask[4] = {9, 8, 7, 6};
  n += ws_write_frame_header(stream + n, WS_OP_BINARY, false, 3, mask);
  memcpy(stream + n, "\x01\x02\x03", 3);
  ws_unmask(stream + n, 3, mask, 0), n += 3;
  n += ws_write_control(stream + n, WS_OP_PING, (const uint8_t *)"p", 1, mask);
  n += ws_write_frame_header(stream + n, WS_OP_CONT, true, 0, mask);
  n += ws_write_close(stream + n, 1000, "done", 4, mask);

  const uint8_t want_ops[] = {WS_OP_TEXT, WS_OP_BINARY, WS_OP_PING, WS_OP_BINARY,
                              WS_OP_CLOSE};
  ws_assembler a;
  ws_assembler_init(&a);
  size_t pos = 0, count = 0;
  while (pos < n) {
    ws_frame f;
    int h = ws_parse_frame(stream + pos, n - pos, &f, &server_lim);
    CHECK(h > 0);
    if (h <= 0 || n - pos - (size_t)h < f.payload_len) break;
    uint8_t *p = stream + pos + h;
    ws_unmask(p, (size_t)f.payload_len, f.mask, 0);
    ws_event ev;
    CHECK_OK(ws_assembler_feed(&a, &f, p, &server_lim, &ev));
    if (count < sizeof want_ops) CHECK_INT(ev.opcode, want_ops[count]);
    if (ev.opcode == WS_OP_CLOSE)
      CHECK(ev.close_code == 1000 && ev.len == 4 && memcmp(ev.data, "done", 4) == 0);
    count++;
    pos += (size_t)h + (size_t)f.payload_len;
  }
  CHECK_INT(count, 5);
  CHECK_INT(pos, n);
}

int main(void) {
  RUN(test_accept_key_rfc);
  RUN(test_accept_key_rejects);
  RUN(test_subprotocol);
  RUN(test_rfc_single_frames);
  RUN(test_rfc_fragmented_and_control);
  RUN(test_rfc_long_lengths);
  RUN(test_every_incomplete_prefix);
  RUN(test_parse_errors);
  RUN(test_unmask);
  RUN(test_fragmentation_errors);
  RUN(test_interleaved_controls);
  RUN(test_utf8_split_across_fragments);
  RUN(test_close_payloads);
  RUN(test_header_encoder);
  RUN(test_close_encoder);
  RUN(test_stream);
  return test_report("ws");
}
