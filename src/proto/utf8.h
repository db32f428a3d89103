/* UTF-8 validation (Unicode 15, §3.9, table 3-7 "well-formed UTF-8 byte
 * sequences"), incremental so that a code point may straddle buffers.
 *
 * A validator is a small state value owned by the caller: start from
 * UTF8_ACCEPT, pass each buffer through utf8_step, and the input so far is
 * valid exactly when the state is UTF8_ACCEPT at the end. UTF8_REJECT is
 * sticky. Rejected: bytes C0, C1, F5..FF, stray continuation bytes,
 * overlong forms, surrogates U+D800..U+DFFF, code points above U+10FFFF and
 * sequences cut short (a final state other than UTF8_ACCEPT).
 *
 * Pure functions: no allocation, no global state, safe from any thread. */
#ifndef TSR_PROTO_UTF8_H
#define TSR_PROTO_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Validator states. Any other value is an in-sequence state: the bytes so
 * far are a valid prefix that still needs continuation bytes. */
enum {
  UTF8_ACCEPT = 0, /* at a code point boundary, everything so far valid */
  UTF8_REJECT = 1, /* invalid; stays so whatever follows */
};

typedef uint8_t utf8_state;

/* Runs len bytes of buf through the validator and returns the new state.
 * buf may be NULL when len is 0. Returns UTF8_REJECT as soon as an invalid
 * byte is seen (the rest of buf is not read). */
utf8_state utf8_step(utf8_state state, const uint8_t *buf, size_t len);

/* True when the whole of buf[0..len) is well-formed UTF-8. */
bool utf8_valid(const uint8_t *buf, size_t len);

/* Length of the longest prefix of buf[0..len) that ends on a code point
 * boundary and is valid UTF-8 (all of it when utf8_valid). Used to cut a
 * string to a size limit without splitting a character. */
size_t utf8_valid_prefix(const uint8_t *buf, size_t len);

#endif
