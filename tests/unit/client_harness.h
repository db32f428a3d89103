/* What the libtessera tests against a real tesserad share: a client with
 * short test timeouts, and a person registered with a social profile. */
#ifndef TSR_TEST_CLIENT_HARNESS_H
#define TSR_TEST_CLIENT_HARNESS_H

#include <stdbool.h>
#include <stdint.h>

#include "tessera/tessera.h"

#define TEST_PASSWORD "correct horse battery"

/* A client of the server on port with its state file at path (backoff
 * 20..200 ms, connect 2 s, requests request_timeout_ms); NULL after a
 * failed CHECK. */
tsr_client *test_client_open(uint16_t port, const char *path,
                             uint32_t request_timeout_ms);

/* Registers login on c (password TEST_PASSWORD), gives it the social
 * profile @login — reachable from social by everyone when open, else under
 * the default rule — and n_keys KeyPackages of suite 1; info gets the
 * session. False after a failed CHECK. */
bool test_social_person(tsr_client *c, const char *login, bool open, int n_keys,
                        tsr_session_info *info);

#endif
