/* libFuzzer: KeyPackage decoding and validation (§10.1). */
#include <stddef.h>
#include <stdint.h>

#include "mls/crypto.h"
#include "mls/group.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int ready;
  if (!ready) {
    if (crypto_init() != 0) return 0;
    ready = 1;
  }
  arena_t a;
  arena_init(&a);
  mls_key_package kp;
  (void)kp_decode_validate(mls_suite_get(1), BYTES(data, size), &a, UINT64_MAX, &kp);
  arena_free(&a);
  kp_secret *ks = NULL;
  if (size > 64 && kp_secret_from_parts(BYTES(data + 64, size - 64), BYTES(data, 32),
                                        BYTES(data + 32, 32), &ks) == 0)
    kp_secret_free(ks);
  if (kp_secret_decode(BYTES(data, size), &ks) == 0) kp_secret_free(ks);
  return 0;
}
