/* libFuzzer target for the RFC 9420 wire codec (src/mls/messages.c).
 *
 * The first input byte picks the structure; the rest is decoded. Anything
 * that decodes must re-encode to exactly the same bytes (the decoders are
 * strict, so the encoding is canonical), otherwise we abort. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mls/messages.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_same(const buf_t *w, bytes_t in) {
  if (w->err || w->len != in.len || (in.len && memcmp(w->ptr, in.ptr, in.len) != 0))
    abort();
}

static int roundtrip(uint8_t which, bytes_t in, arena_t *a, buf_t *w) {
  switch (which % 6) {
  case 0: {
    mls_message v;
    if (msg_decode_message(in, a, &v)) return 0;
    msg_encode_message(w, &v);
    break;
  }
  case 1: {
    mls_key_package v;
    if (msg_decode_key_package(in, a, &v)) return 0;
    msg_encode_key_package(w, &v);
    break;
  }
  case 2: {
    mls_welcome v;
    if (msg_decode_welcome(in, a, &v)) return 0;
    msg_encode_welcome(w, &v);
    break;
  }
  case 3: {
    mls_ratchet_tree v;
    if (msg_decode_ratchet_tree(in, a, &v)) return 0;
    msg_encode_ratchet_tree(w, &v);
    break;
  }
  case 4: {
    mls_commit v;
    if (msg_decode_commit(in, a, &v)) return 0;
    msg_encode_commit(w, &v);
    break;
  }
  default: {
    mls_group_secrets v;
    if (msg_decode_group_secrets(in, a, &v)) return 0;
    msg_encode_group_secrets(w, &v);
    break;
  }
  }
  return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  bytes_t in = BYTES(data + 1, size - 1);
  arena_t a;
  buf_t w;
  arena_init(&a);
  buf_init(&w);
  if (roundtrip(data[0], in, &a, &w)) check_same(&w, in);
  buf_free(&w);
  arena_free(&a);
  return 0;
}
