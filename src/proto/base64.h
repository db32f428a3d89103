/* Base64 (RFC 4648 §4) and base64url (§5), with or without padding.
 *
 * Used for MLS blobs inside JSON frames (base64url, no padding) and for the
 * WebSocket handshake (standard alphabet, padded). Decoding is strict, so
 * every byte string has exactly one accepted encoding per mode: characters
 * outside the chosen alphabet (including whitespace and the other
 * alphabet's two symbols), padding in the wrong place or of the wrong
 * amount, padding missing in padded mode or present in unpadded mode, a
 * length that no encoding has, and non-zero unused bits in the last
 * character are all rejected with TSR_EDECODE.
 *
 * Pure functions on caller buffers: no allocation, no global state, safe
 * from any thread. Encoded text is not NUL-terminated. */
#ifndef TSR_PROTO_BASE64_H
#define TSR_PROTO_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* Mode flags; combine one alphabet with one padding choice. */
enum {
  B64_STD = 0,   /* alphabet A-Z a-z 0-9 + / */
  B64_URL = 1,   /* alphabet A-Z a-z 0-9 - _ */
  B64_PAD = 0,   /* '=' padding to a multiple of four characters */
  B64_NOPAD = 2, /* no padding */
};

/* Handy combinations: the handshake and the JSON frames. */
#define B64_MODE_STD (B64_STD | B64_PAD)
#define B64_MODE_URL_NOPAD (B64_URL | B64_NOPAD)

/* Characters needed to encode n bytes in this mode, or 0 when n is so large
 * that the result does not fit a size_t (n == 0 also gives 0). */
size_t b64_encoded_len(size_t n, unsigned mode);

/* Upper bound on the bytes a text of len characters decodes to (exact for
 * valid unpadded text; padded text may decode to up to 2 bytes less). */
size_t b64_decoded_max(size_t len);

/* Encodes in[0..in_len) into out, which must hold b64_encoded_len(in_len,
 * mode) characters; *out_len receives that count. Returns 0, or TSR_EINVAL
 * (out too small or the length overflows; nothing written). in and out
 * must not overlap. */
int b64_encode(char *out, size_t out_cap, const uint8_t *in, size_t in_len, unsigned mode,
               size_t *out_len);

/* Strictly decodes in[0..in_len) into out (capacity out_cap); *out_len
 * receives the byte count. Returns 0, TSR_EDECODE (malformed text; the
 * bytes of out written so far are zeroed, *out_len untouched) or
 * TSR_EINVAL (out_cap smaller than the decoded size, which is at most
 * b64_decoded_max(in_len); nothing written). Decoding in place is allowed:
 * out may equal (uint8_t *)in, since output never overtakes input; no other
 * overlap is. */
int b64_decode(uint8_t *out, size_t out_cap, const char *in, size_t in_len, unsigned mode,
               size_t *out_len);

#endif
