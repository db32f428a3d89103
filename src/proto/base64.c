/* Base64 and base64url: table-driven encoder and strict decoder.
 *
 * Decoding ORs the four sextets of each quantum together and tests one bit,
 * so the common path has a single branch per four characters. */
#include "proto/base64.h"

#include <string.h>

#include "tessera/error.h"

static const char enc_std[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char enc_url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Sextet value of each character, X (high bit set) when not in the
 * alphabet. '=' is X in both: padding is handled before the table. */
enum { X = 0xFF };
/* clang-format off */
static const uint8_t dec_std[256] = {
      X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,
      X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,
      X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,  62,   X,   X,   X,  63,
     52,  53,  54,  55,  56,  57,  58,  59,  60,  61,   X,   X,   X,   X,   X,   X,
      X,   0,   1,   2,   3,   4,   5,   6,   7,   8,   9,  10,  11,  12,  13,  14,
     15,  16,  17,  18,  19,  20,  21,  22,  23,  24,  25,   X,   X,   X,   X,   X,
      X,  26,  27,  28,  29,  30,  31,  32,  33,  34,  35,  36,  37,  38,  39,  40,
     41,  42,  43,  44,  45,  46,  47,  48,  49,  50,  51,   X,   X,   X,   X,   X,
      X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,
      X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,
      X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,
      X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,
      X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,
      X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,
      X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,
      X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,
};
static const uint8_t dec_url[256] = {
      X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,
      X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,
      X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,  62,   X,   X,
     52,  53,  54,  55,  56,  57,  58,  59,  60,  61,   X,   X,   X,   X,   X,   X,
      X,   0,   1,   2,   3,   4,   5,   6,   7,   8,   9,  10,  11,  12,  13,  14,
     15,  16,  17,  18,  19,  20,  21,  22,  23,  24,  25,   X,   X,   X,   X,  63,
      X,  26,  27,  28,  29,  30,  31,  32,  33,  34,  35,  36,  37,  38,  39,  40,
     41,  42,  43,  44,  45,  46,  47,  48,  49,  50,  51,   X,   X,   X,   X,   X,
      X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,
      X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,
      X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,
      X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,
      X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,
      X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,
      X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,
      X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,
};
/* clang-format on */

size_t b64_encoded_len(size_t n, unsigned mode) {
  size_t groups = n / 3, rem = n % 3;
  if (groups > SIZE_MAX / 4) return 0;
  size_t full = groups * 4;
  size_t extra = rem == 0 ? 0 : (mode & B64_NOPAD) ? rem + 1 : 4;
  if (extra > SIZE_MAX - full) return 0;
  return full + extra;
}

size_t b64_decoded_max(size_t len) { return len / 4 * 3 + (len % 4 * 3) / 4; }

int b64_encode(char *out, size_t out_cap, const uint8_t *in, size_t in_len, unsigned mode,
               size_t *out_len) {
  size_t need = b64_encoded_len(in_len, mode);
  if ((need == 0 && in_len != 0) || out_cap < need) return TSR_EINVAL;
  const char *alpha = (mode & B64_URL) ? enc_url : enc_std;
  size_t i = 0, o = 0;
  for (; in_len - i >= 3; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    out[o++] = alpha[v >> 18];
    out[o++] = alpha[(v >> 12) & 63];
    out[o++] = alpha[(v >> 6) & 63];
    out[o++] = alpha[v & 63];
  }
  if (in_len - i == 1) {
    uint32_t v = (uint32_t)in[i] << 16;
    out[o++] = alpha[v >> 18];
    out[o++] = alpha[(v >> 12) & 63];
    if (!(mode & B64_NOPAD)) {
      out[o++] = '=';
      out[o++] = '=';
    }
  } else if (in_len - i == 2) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
    out[o++] = alpha[v >> 18];
    out[o++] = alpha[(v >> 12) & 63];
    out[o++] = alpha[(v >> 6) & 63];
    if (!(mode & B64_NOPAD)) out[o++] = '=';
  }
  *out_len = o;
  return 0;
}

int b64_decode(uint8_t *out, size_t out_cap, const char *in, size_t in_len, unsigned mode,
               size_t *out_len) {
  const uint8_t *dec = (mode & B64_URL) ? dec_url : dec_std;
  const uint8_t *s = (const uint8_t *)in;
  size_t quads = in_len / 4, tail = in_len % 4; /* tail: characters after the quads */
  if (mode & B64_NOPAD) {
    if (tail == 1) return TSR_EDECODE;
  } else {
    if (tail != 0) return TSR_EDECODE;
    if (in_len > 0 && s[in_len - 1] == '=') {
      /* The last quantum carries 1 or 2 bytes; decode it as a tail. */
      quads--;
      tail = s[in_len - 2] == '=' ? 2 : 3;
    }
  }
  size_t n = quads * 3 + (tail ? tail - 1 : 0);
  if (out_cap < n) return TSR_EINVAL;

  size_t o = 0;
  for (size_t q = 0; q < quads; q++, s += 4) {
    uint32_t a = dec[s[0]], b = dec[s[1]], c = dec[s[2]], d = dec[s[3]];
    if ((a | b | c | d) & 0x80) goto bad;
    uint32_t v = a << 18 | b << 12 | c << 6 | d;
    /* All four input characters are read before out[o..o+3) is written,
     * and o + 3 <= 4 * q + 3, so decoding in place is safe. */
    out[o++] = (uint8_t)(v >> 16);
    out[o++] = (uint8_t)(v >> 8);
    out[o++] = (uint8_t)v;
  }
  if (tail == 2) {
    uint32_t a = dec[s[0]], b = dec[s[1]];
    if (((a | b) & 0x80) || (b & 0x0F)) goto bad;
    out[o++] = (uint8_t)(a << 2 | b >> 4);
  } else if (tail == 3) {
    uint32_t a = dec[s[0]], b = dec[s[1]], c = dec[s[2]];
    if (((a | b | c) & 0x80) || (c & 0x03)) goto bad;
    uint32_t v = a << 10 | b << 4 | c >> 2;
    out[o++] = (uint8_t)(v >> 8);
    out[o++] = (uint8_t)v;
  }
  *out_len = n;
  return 0;

bad:
  memset(out, 0, o);
  return TSR_EDECODE;
}
