/* Base64 / base64url: RFC 4648 §10 vectors in every mode, strictness, and
 * counts proving that each byte string has exactly one accepted text. */
#include "proto/base64.h"
#include "test.h"

static const unsigned modes[] = {B64_STD | B64_PAD, B64_STD | B64_NOPAD,
                                 B64_URL | B64_PAD, B64_URL | B64_NOPAD};

/* Encodes in, compares with want, decodes back. */
static void check_vector(const char *in, const char *want, unsigned mode) {
  size_t in_len = strlen(in), want_len = strlen(want);
  char enc[64];
  size_t enc_len = 99;
  CHECK_INT(b64_encoded_len(in_len, mode), want_len);
  CHECK_OK(b64_encode(enc, sizeof enc, (const uint8_t *)in, in_len, mode, &enc_len));
  CHECK_INT(enc_len, want_len);
  CHECK(memcmp(enc, want, want_len) == 0);
  uint8_t dec[64];
  size_t dec_len = 99;
  CHECK_OK(b64_decode(dec, sizeof dec, want, want_len, mode, &dec_len));
  CHECK_INT(dec_len, in_len);
  CHECK(memcmp(dec, in, in_len) == 0);
  CHECK(b64_decoded_max(want_len) >= in_len);
}

static void test_rfc4648_vectors(void) {
  static const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
  static const char *padded[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
                                 "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
  static const char *unpadded[] = {"",       "Zg",      "Zm8",     "Zm9v",
                                   "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
  for (size_t i = 0; i < 7; i++) {
    check_vector(plain[i], padded[i], B64_STD | B64_PAD);
    check_vector(plain[i], padded[i], B64_URL | B64_PAD);
    check_vector(plain[i], unpadded[i], B64_STD | B64_NOPAD);
    check_vector(plain[i], unpadded[i], B64_URL | B64_NOPAD);
  }
}

/* The two alphabets differ only in values 62 and 63. */
static void test_alphabets(void) {
  check_vector("\xfb\xff\xbf", "+/+/", B64_MODE_STD);
  check_vector("\xfb\xff\xbf", "-_-_", B64_URL | B64_PAD);
  check_vector("\xfb\xff", "+/8=", B64_MODE_STD);
  check_vector("\xfb\xff", "-_8", B64_MODE_URL_NOPAD);
  uint8_t out[8];
  size_t n;
  CHECK_ERR(b64_decode(out, sizeof out, "-_-_", 4, B64_MODE_STD, &n), TSR_EDECODE);
  CHECK_ERR(b64_decode(out, sizeof out, "+/+/", 4, B64_MODE_URL_NOPAD, &n), TSR_EDECODE);
}

static void test_all_bytes_roundtrip(void) {
  uint8_t in[256], dec[256];
  char enc[400];
  for (int i = 0; i < 256; i++) in[i] = (uint8_t)i;
  for (size_t m = 0; m < 4; m++) {
    for (size_t len = 0; len <= 256; len++) {
      size_t enc_len, dec_len;
      CHECK_OK(b64_encode(enc, sizeof enc, in, len, modes[m], &enc_len));
      CHECK_OK(b64_decode(dec, sizeof dec, enc, enc_len, modes[m], &dec_len));
      CHECK_INT(dec_len, len);
      CHECK(memcmp(dec, in, len) == 0);
      if (modes[m] & B64_NOPAD) CHECK_INT(b64_decoded_max(enc_len), len);
    }
  }
}

static void check_reject(const char *text, unsigned mode) {
  uint8_t out[32];
  memset(out, 0xAA, sizeof out);
  size_t n = 12345;
  int rc = b64_decode(out, sizeof out, text, strlen(text), mode, &n);
  if (rc != TSR_EDECODE) fprintf(stderr, "  accepted \"%s\" in mode %u\n", text, mode);
  CHECK_ERR(rc, TSR_EDECODE);
  CHECK_INT(n, 12345);
  /* Whatever was decoded before the fault is wiped, the rest untouched. */
  for (size_t i = 0; i < sizeof out; i++) CHECK(out[i] == 0 || out[i] == 0xAA);
}

static void test_strict_rejects(void) {
  const unsigned P = B64_STD | B64_PAD, N = B64_STD | B64_NOPAD;
  const unsigned UP = B64_URL | B64_PAD, UN = B64_URL | B64_NOPAD;
  /* Characters outside the alphabet. */
  check_reject("Zm9v YmFy", N);
  check_reject("Zm9v\nYmFy", P);
  check_reject("Zm9*", P);
  check_reject("Zm9-", P);
  check_reject("Zm9_", N);
  check_reject("Zm9+", UP);
  check_reject("Zm9/", UN);
  check_reject("Zm9\x80", N);
  check_reject("Zm9\xff", UN);
  check_reject("Zm9v\x01YmFy", P);
  /* Padding: missing, extra, misplaced or forbidden. */
  check_reject("Zg", P);
  check_reject("Zg=", P);
  check_reject("Zm8", P);
  check_reject("Zg===", P);
  check_reject("Z===", P);
  check_reject("====", P);
  check_reject("Zg==Zg==", P);
  check_reject("Zm=v", P);
  check_reject("=Zm9", P);
  check_reject("Zg==", N);
  check_reject("Zm8=", UN);
  check_reject("Zm9v=", N);
  /* Lengths no encoding has. */
  check_reject("Z", N);
  check_reject("Zm9vY", UN);
  check_reject("Zm9vY", P);
  /* Non-zero unused bits in the last character. */
  check_reject("Zh==", P);
  check_reject("Zh", N);
  check_reject("Zm9=", P);
  check_reject("Zm9", UN);
  check_reject("Zm9vYh", N);
  /* An early quantum decodes before a later fault: the output is wiped. */
  check_reject("Zm9vZm9vZm9v!!!!", P);
  /* "Zg==" with NUL embedded: length counts, not strlen. */
  uint8_t out[8];
  size_t n;
  CHECK_ERR(b64_decode(out, sizeof out, "Zg=\0", 4, P, &n), TSR_EDECODE);
}

/* Strictness as a count: over the alphabet plus '=', exactly one text per
 * byte string must be accepted, and it must re-encode to itself. */
static void test_canonical_counts(void) {
  static const char set[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_= ";
  const size_t ns = sizeof set - 1;
  for (size_t m = 0; m < 4; m++) {
    long ok2 = 0, ok3 = 0, ok4 = 0, noncanon = 0;
    char t[4];
    uint8_t out[3];
    char back[8];
    size_t n, bn;
    for (size_t a = 0; a < ns; a++)
      for (size_t b = 0; b < ns; b++) {
        t[0] = set[a], t[1] = set[b];
        if (b64_decode(out, sizeof out, t, 2, modes[m], &n) == 0) {
          ok2++;
          CHECK_OK(b64_encode(back, sizeof back, out, n, modes[m], &bn));
          if (bn != 2 || memcmp(back, t, 2) != 0) noncanon++;
        }
        for (size_t c = 0; c < ns; c++) {
          t[2] = set[c];
          if (b64_decode(out, sizeof out, t, 3, modes[m], &n) == 0) {
            ok3++;
            CHECK_OK(b64_encode(back, sizeof back, out, n, modes[m], &bn));
            if (bn != 3 || memcmp(back, t, 3) != 0) noncanon++;
          }
          /* Four characters: the last two varied, first two fixed. */
          t[0] = 'Q', t[1] = set[a], t[2] = set[b], t[3] = set[c];
          if (b64_decode(out, sizeof out, t, 4, modes[m], &n) == 0) {
            ok4++;
            CHECK_OK(b64_encode(back, sizeof back, out, n, modes[m], &bn));
            if (bn != 4 || memcmp(back, t, 4) != 0) noncanon++;
          }
          t[0] = set[a], t[1] = set[b];
        }
      }
    CHECK_INT(noncanon, 0);
    if (modes[m] & B64_NOPAD) {
      CHECK_INT(ok2, 256);          /* every 1-byte string */
      CHECK_INT(ok3, 65536);        /* every 2-byte string */
      CHECK_INT(ok4, 64 * 64 * 64); /* "Q" + 3 free sextets */
    } else {
      CHECK_INT(ok2, 0);
      CHECK_INT(ok3, 0);
      /* "Q" + 3 sextets, "Qx" + 1 sextet + "=", "Qx==" with x 4-bit aligned */
      CHECK_INT(ok4, 64 * 64 * 64 + 64 * 16 + 4);
    }
  }
}

static void test_capacity_and_lengths(void) {
  char enc[8];
  size_t n = 77;
  memset(enc, '#', sizeof enc);
  CHECK_ERR(b64_encode(enc, 3, (const uint8_t *)"foo", 3, B64_MODE_STD, &n), TSR_EINVAL);
  CHECK_INT(n, 77);
  CHECK(enc[0] == '#');
  uint8_t out[8];
  memset(out, '#', sizeof out);
  CHECK_ERR(b64_decode(out, 2, "Zm9v", 4, B64_MODE_STD, &n), TSR_EINVAL);
  CHECK(out[0] == '#');
  CHECK_OK(b64_decode(out, 2, "Zm8=", 4, B64_MODE_STD, &n)); /* exact fit */
  CHECK_INT(n, 2);
  CHECK_OK(b64_decode(NULL, 0, "", 0, B64_MODE_STD, &n));
  CHECK_INT(n, 0);

  CHECK_INT(b64_encoded_len(0, B64_MODE_STD), 0);
  CHECK_INT(b64_encoded_len(1, B64_MODE_STD), 4);
  CHECK_INT(b64_encoded_len(1, B64_MODE_URL_NOPAD), 2);
  CHECK_INT(b64_encoded_len(2, B64_MODE_URL_NOPAD), 3);
  CHECK_INT(b64_encoded_len(32, B64_MODE_URL_NOPAD), 43);
  CHECK_INT(b64_encoded_len(SIZE_MAX, B64_MODE_STD), 0); /* overflow */
  CHECK_INT(b64_encoded_len(SIZE_MAX / 4 * 3, B64_MODE_STD), SIZE_MAX / 4 * 4);
  CHECK_INT(b64_encoded_len(SIZE_MAX / 4 * 3 + 1, B64_MODE_STD), 0);
  CHECK_INT(b64_encoded_len(SIZE_MAX / 4 * 3 + 1, B64_MODE_URL_NOPAD),
            SIZE_MAX / 4 * 4 + 2);
  CHECK_ERR(b64_encode(enc, sizeof enc, (const uint8_t *)"x", SIZE_MAX, B64_MODE_STD, &n),
            TSR_EINVAL);
  CHECK_INT(b64_decoded_max(0), 0);
  CHECK_INT(b64_decoded_max(1), 0);
  CHECK_INT(b64_decoded_max(2), 1);
  CHECK_INT(b64_decoded_max(3), 2);
  CHECK_INT(b64_decoded_max(4), 3);
  CHECK_INT(b64_decoded_max(43), 32);
}

static void test_in_place(void) {
  char text[] = "Zm9vYmFyZm9vYg==";
  size_t n;
  CHECK_OK(b64_decode((uint8_t *)text, sizeof text, text, 16, B64_MODE_STD, &n));
  CHECK_INT(n, 10);
  CHECK(memcmp(text, "foobarfoob", 10) == 0);
  char text2[] = "Zm9vYmFyZm9vYg";
  CHECK_OK(b64_decode((uint8_t *)text2, sizeof text2, text2, 14, B64_MODE_URL_NOPAD, &n));
  CHECK_INT(n, 10);
  CHECK(memcmp(text2, "foobarfoob", 10) == 0);
}

int main(void) {
  RUN(test_rfc4648_vectors);
  RUN(test_alphabets);
  RUN(test_all_bytes_roundtrip);
  RUN(test_strict_rejects);
  RUN(test_canonical_counts);
  RUN(test_capacity_and_lengths);
  RUN(test_in_place);
  return test_report("base64");
}
