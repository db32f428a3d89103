/* UTF-8 validator: a byte-class DFA built from Unicode table 3-7.
 *
 * Each byte maps to one of 12 classes; the state after a byte depends only
 * on the state before and the class. States 2..8 are "inside a sequence"
 * and say which continuation bytes may come next, which is how overlongs
 * (E0 80..9F, F0 80..8F), surrogates (ED A0..BF) and code points above
 * U+10FFFF (F4 90..BF) are refused without decoding any value. */
#include "proto/utf8.h"

#include <string.h>

enum {
  C_ASCII, /* 00..7F */
  C_CONT1, /* 80..8F */
  C_CONT2, /* 90..9F */
  C_CONT3, /* A0..BF */
  C_BAD,   /* C0, C1, F5..FF: never valid */
  C_LEAD2, /* C2..DF: one continuation byte */
  C_E0,    /* E0: A0..BF then one (no overlong) */
  C_LEAD3, /* E1..EC, EE, EF: two continuation bytes */
  C_ED,    /* ED: 80..9F then one (no surrogate) */
  C_F0,    /* F0: 90..BF then two (no overlong) */
  C_LEAD4, /* F1..F3: three continuation bytes */
  C_F4,    /* F4: 80..8F then two (nothing above U+10FFFF) */
  N_CLASSES
};

enum {
  S_OK = UTF8_ACCEPT,
  S_BAD = UTF8_REJECT,
  S_NEED1, /* one more 80..BF */
  S_NEED2, /* two more 80..BF */
  S_NEED3, /* three more 80..BF */
  S_E0,    /* after E0: A0..BF, then S_NEED1 */
  S_ED,    /* after ED: 80..9F, then S_NEED1 */
  S_F0,    /* after F0: 90..BF, then S_NEED2 */
  S_F4,    /* after F4: 80..8F, then S_NEED2 */
  N_STATES
};

/* next[state][class]: the transition function. */
/* clang-format off */
static const uint8_t next_state[N_STATES][N_CLASSES] = {
  /*             ASCII  80..8F   90..9F   A0..BF   bad    C2..DF   E0    E1..EF   ED    F0    F1..F3   F4  */
  [S_OK]    = {S_OK,  S_BAD,   S_BAD,   S_BAD,   S_BAD, S_NEED1, S_E0,  S_NEED2, S_ED,  S_F0,  S_NEED3, S_F4},
  [S_BAD]   = {S_BAD, S_BAD,   S_BAD,   S_BAD,   S_BAD, S_BAD,   S_BAD, S_BAD,   S_BAD, S_BAD, S_BAD,   S_BAD},
  [S_NEED1] = {S_BAD, S_OK,    S_OK,    S_OK,    S_BAD, S_BAD,   S_BAD, S_BAD,   S_BAD, S_BAD, S_BAD,   S_BAD},
  [S_NEED2] = {S_BAD, S_NEED1, S_NEED1, S_NEED1, S_BAD, S_BAD,   S_BAD, S_BAD,   S_BAD, S_BAD, S_BAD,   S_BAD},
  [S_NEED3] = {S_BAD, S_NEED2, S_NEED2, S_NEED2, S_BAD, S_BAD,   S_BAD, S_BAD,   S_BAD, S_BAD, S_BAD,   S_BAD},
  [S_E0]    = {S_BAD, S_BAD,   S_BAD,   S_NEED1, S_BAD, S_BAD,   S_BAD, S_BAD,   S_BAD, S_BAD, S_BAD,   S_BAD},
  [S_ED]    = {S_BAD, S_NEED1, S_NEED1, S_BAD,   S_BAD, S_BAD,   S_BAD, S_BAD,   S_BAD, S_BAD, S_BAD,   S_BAD},
  [S_F0]    = {S_BAD, S_BAD,   S_NEED2, S_NEED2, S_BAD, S_BAD,   S_BAD, S_BAD,   S_BAD, S_BAD, S_BAD,   S_BAD},
  [S_F4]    = {S_BAD, S_NEED2, S_BAD,   S_BAD,   S_BAD, S_BAD,   S_BAD, S_BAD,   S_BAD, S_BAD, S_BAD,   S_BAD},
};

/* Class of every byte value, with short aliases so a row fits a line. */
enum {
  A = C_ASCII, K1 = C_CONT1, K2 = C_CONT2, K3 = C_CONT3, X = C_BAD, L2 = C_LEAD2,
  E0 = C_E0, L3 = C_LEAD3, ED = C_ED, F0 = C_F0, L4 = C_LEAD4, F4 = C_F4
};
static const uint8_t class_of[256] = {
    /* 0_ */ A,  A,  A,  A,  A,  A,  A,  A,  A,  A,  A,  A,  A,  A,  A,  A,
    /* 1_ */ A,  A,  A,  A,  A,  A,  A,  A,  A,  A,  A,  A,  A,  A,  A,  A,
    /* 2_ */ A,  A,  A,  A,  A,  A,  A,  A,  A,  A,  A,  A,  A,  A,  A,  A,
    /* 3_ */ A,  A,  A,  A,  A,  A,  A,  A,  A,  A,  A,  A,  A,  A,  A,  A,
    /* 4_ */ A,  A,  A,  A,  A,  A,  A,  A,  A,  A,  A,  A,  A,  A,  A,  A,
    /* 5_ */ A,  A,  A,  A,  A,  A,  A,  A,  A,  A,  A,  A,  A,  A,  A,  A,
    /* 6_ */ A,  A,  A,  A,  A,  A,  A,  A,  A,  A,  A,  A,  A,  A,  A,  A,
    /* 7_ */ A,  A,  A,  A,  A,  A,  A,  A,  A,  A,  A,  A,  A,  A,  A,  A,
    /* 8_ */ K1, K1, K1, K1, K1, K1, K1, K1, K1, K1, K1, K1, K1, K1, K1, K1,
    /* 9_ */ K2, K2, K2, K2, K2, K2, K2, K2, K2, K2, K2, K2, K2, K2, K2, K2,
    /* A_ */ K3, K3, K3, K3, K3, K3, K3, K3, K3, K3, K3, K3, K3, K3, K3, K3,
    /* B_ */ K3, K3, K3, K3, K3, K3, K3, K3, K3, K3, K3, K3, K3, K3, K3, K3,
    /* C_ */ X,  X,  L2, L2, L2, L2, L2, L2, L2, L2, L2, L2, L2, L2, L2, L2,
    /* D_ */ L2, L2, L2, L2, L2, L2, L2, L2, L2, L2, L2, L2, L2, L2, L2, L2,
    /* E_ */ E0, L3, L3, L3, L3, L3, L3, L3, L3, L3, L3, L3, L3, ED, L3, L3,
    /* F_ */ F0, L4, L4, L4, F4, X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,
};
/* clang-format on */

#define HIGH_BITS 0x8080808080808080ull

utf8_state utf8_step(utf8_state state, const uint8_t *buf, size_t len) {
  if (state >= N_STATES) return UTF8_REJECT;
  size_t i = 0;
  while (i < len) {
    if (state == S_OK) {
      /* ASCII runs eight bytes at a time; memcpy keeps it alignment-safe. */
      while (len - i >= 8) {
        uint64_t w;
        memcpy(&w, buf + i, 8);
        if (w & HIGH_BITS) break;
        i += 8;
      }
      if (i == len) break;
    }
    state = next_state[state][class_of[buf[i]]];
    if (state == S_BAD) return UTF8_REJECT;
    i++;
  }
  return state;
}

bool utf8_valid(const uint8_t *buf, size_t len) {
  return utf8_step(UTF8_ACCEPT, buf, len) == UTF8_ACCEPT;
}

size_t utf8_valid_prefix(const uint8_t *buf, size_t len) {
  utf8_state st = UTF8_ACCEPT;
  size_t boundary = 0;
  for (size_t i = 0; i < len; i++) {
    st = utf8_step(st, buf + i, 1);
    if (st == UTF8_REJECT) break;
    if (st == UTF8_ACCEPT) boundary = i + 1;
  }
  return boundary;
}
