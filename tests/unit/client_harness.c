/* Shared setup of the libtessera tests (client_harness.h). */
#include "client_harness.h"

#include <stdio.h>

#include "test.h"

tsr_client *test_client_open(uint16_t port, const char *path,
                             uint32_t request_timeout_ms) {
  tsr_client_config cfg = {.port = port,
                           .state_path = path,
                           .backoff_initial_ms = 20,
                           .backoff_max_ms = 200,
                           .connect_timeout_ms = 2000,
                           .request_timeout_ms = request_timeout_ms};
  tsr_client *c = NULL;
  CHECK_OK(tsr_client_new(&cfg, &c));
  return c;
}

bool test_social_person(tsr_client *c, const char *login, bool open, int n_keys,
                        tsr_session_info *info) {
  if (!c) return false;
  tsr_register_params rp = {
      .login = login, .password = TEST_PASSWORD, .device_name = "dev"};
  tsr_reply r = {0};
  CHECK_OK(tsr_account_register_sync(c, &rp, &r));
  tsr_reply_clear(&r);
  char body[128];
  snprintf(body, sizeof body, "{\"handle\":\"%s\"}", login);
  CHECK_OK(tsr_call_sync(c, "PUT", "/v1/apps/social/profile", body, &r));
  tsr_reply_clear(&r);
  if (open) {
    CHECK_OK(tsr_call_sync(c, "PUT", "/v1/apps/social/reachability",
                           "{\"from\":{\"social\":\"everyone\"}}", &r));
    tsr_reply_clear(&r);
  }
  CHECK_OK(tsr_keypackages_replenish_sync(c, 1, n_keys, &r));
  tsr_reply_clear(&r);
  CHECK_OK(tsr_client_session(c, info));
  return !test_failing();
}
