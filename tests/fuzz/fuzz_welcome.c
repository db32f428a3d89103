/* libFuzzer: joining from a Welcome with a fixed key-package secret
 * (the identity comes from a fixed seed; the key package is made once
 * per process). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mls/crypto.h"
#include "mls/group.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static group_identity *id;
static kp_secret *ks;

static int setup(void) {
  uint8_t seed[MLS_SIG_SEED];
  memset(seed, 0x42, sizeof seed);
  buf_t cred, kp;
  buf_init(&cred);
  buf_init(&kp);
  mls_credential c = {.credential_type = MLS_CREDENTIAL_BASIC,
                      .identity = BYTES("fuzz", 4)};
  msg_encode_credential(&cred, &c);
  int rc = crypto_init();
  if (!rc)
    rc = group_identity_from_seed(1, BYTES(seed, sizeof seed), buf_view(&cred), &id);
  if (!rc) rc = kp_create(id, 0, 0, &kp, &ks);
  buf_free(&cred);
  buf_free(&kp);
  return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int ready;
  if (!ready) {
    if (setup() != 0) return 0;
    ready = 1;
  }
  /* Input: Welcome, optionally followed by a tree after a 0xff 0xff mark. */
  size_t wl = size;
  for (size_t i = 0; i + 1 < size; i++)
    if (data[i] == 0xff && data[i + 1] == 0xff) {
      wl = i;
      break;
    }
  bytes_t tree = wl + 2 <= size ? BYTES(data + wl + 2, size - wl - 2) : BYTES_NONE;
  mls_group *g = NULL;
  group_psk psk = {.id = BYTES("psk", 3), .secret = BYTES("secret", 6)};
  if (group_join(id, NULL, &ks, 1, BYTES(data, wl), tree, &psk, 1, NULL, NULL, &g) == 0)
    group_free(g);
  /* The GroupInfo path of external joins parses similar input. */
  buf_t c;
  buf_init(&c);
  if (group_external_join(id, NULL, BYTES(data, wl), tree, UINT32_MAX, NULL, 0, &c, &g) ==
      0)
    group_free(g);
  buf_free(&c);
  return 0;
}
