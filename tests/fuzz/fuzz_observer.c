/* libFuzzer: the Delivery Service's observer (mls/observer.h). The first
 * input byte picks the parser: even, observer_load of the rest (the saved
 * form the server keeps per conversation); odd, observer_process of the
 * rest against a fresh copy of an observer following a small group (Alice
 * created it and added Bob). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mls/crypto.h"
#include "mls/group.h"
#include "mls/observer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static buf_t saved; /* the observer after Alice's commit adding Bob */

static int setup(void) {
  group_identity *a = NULL, *b = NULL;
  mls_group *ga = NULL, *o = NULL;
  kp_secret *ks = NULL;
  buf_t kp, commit, welcome, gi;
  buf_init(&kp);
  buf_init(&commit);
  buf_init(&welcome);
  buf_init(&gi);
  buf_init(&saved);
  int rc = crypto_init();
  if (!rc) rc = group_identity_new(1, BYTES("alice", 5), &a);
  if (!rc) rc = group_identity_new(1, BYTES("bob", 3), &b);
  if (!rc) rc = group_create(a, NULL, BYTES("fuzz", 4), NULL, &ga);
  if (!rc) rc = group_info(ga, true, &gi);
  if (!rc) rc = observer_new(buf_view(&gi), BYTES_NONE, NULL, &o);
  if (!rc) rc = kp_create(b, 0, 0, &kp, &ks);
  bytes_t kv = buf_view(&kp);
  group_commit_params p = {.add_key_packages = &kv, .n_adds = 1};
  if (!rc) rc = group_commit(ga, &p, &commit, &welcome);
  if (!rc) rc = observer_process(o, buf_view(&commit), NULL);
  if (!rc) rc = observer_save(o, &saved);
  group_free(ga);
  group_free(o);
  group_identity_free(a);
  group_identity_free(b);
  kp_secret_free(ks);
  buf_free(&kp);
  buf_free(&commit);
  buf_free(&welcome);
  buf_free(&gi);
  return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int ready;
  if (!ready) {
    if (setup() != 0) return 0;
    ready = 1;
  }
  if (size == 0) return 0;
  mls_group *g = NULL;
  if ((data[0] & 1) == 0) {
    if (observer_load(BYTES(data + 1, size - 1), &g) == 0) {
      buf_t again;
      buf_init(&again);
      /* What loads must save again. */
      if (observer_save(g, &again) != 0) __builtin_trap();
      buf_free(&again);
    }
  } else if (observer_load(buf_view(&saved), &g) == 0) {
    observer_event ev;
    observer_process(g, BYTES(data + 1, size - 1), &ev);
  }
  group_free(g);
  return 0;
}
