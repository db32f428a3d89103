/* libFuzzer: processing messages (commits, proposals, application data)
 * against a fixed small group: Alice created it and added Bob; each input
 * is processed by a fresh copy of Bob's state. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mls/crypto.h"
#include "mls/group.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static mls_group *bob;

static int setup(void) {
  group_identity *a = NULL, *b = NULL;
  mls_group *ga = NULL;
  kp_secret *ks = NULL;
  buf_t kp, commit, welcome;
  buf_init(&kp);
  buf_init(&commit);
  buf_init(&welcome);
  int rc = crypto_init();
  if (!rc) rc = group_identity_new(1, BYTES("alice", 5), &a);
  if (!rc) rc = group_identity_new(1, BYTES("bob", 3), &b);
  if (!rc) rc = group_create(a, NULL, BYTES("fuzz", 4), NULL, &ga);
  if (!rc) rc = kp_create(b, 0, 0, &kp, &ks);
  bytes_t kv = buf_view(&kp);
  group_commit_params p = {.add_key_packages = &kv, .n_adds = 1};
  if (!rc) rc = group_commit(ga, &p, &commit, &welcome);
  if (!rc) rc = group_merge_pending(ga);
  if (!rc)
    rc = group_join(b, NULL, &ks, 1, buf_view(&welcome), BYTES_NONE, NULL, 0, NULL, NULL,
                    &bob);
  group_free(ga);
  group_identity_free(a);
  group_identity_free(b);
  kp_secret_free(ks);
  buf_free(&kp);
  buf_free(&commit);
  buf_free(&welcome);
  return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int ready;
  if (!ready) {
    if (setup() != 0) return 0;
    ready = 1;
  }
  mls_group *g = NULL;
  if (group_clone(bob, &g) != 0) return 0;
  group_event ev;
  group_event_init(&ev);
  if (group_process(g, BYTES(data, size), &ev) == 0) group_event_clear(&ev);
  group_free(g);
  return 0;
}
