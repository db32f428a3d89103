/* Safety numbers (tsr_safety_number): the same whichever side computes
 * them, 12 groups of 5 digits, and a different key or account changes
 * them. */
#include <sodium.h>
#include <string.h>

#include "tessera/tessera.h"
#include "test.h"

static void test_symmetric_and_sensitive(void) {
  uint8_t a[16], b[16], ka[32], kb[32];
  randombytes_buf(a, sizeof a);
  randombytes_buf(b, sizeof b);
  randombytes_buf(ka, sizeof ka);
  randombytes_buf(kb, sizeof kb);
  char x[TSR_SAFETY_NUMBER_SIZE], y[TSR_SAFETY_NUMBER_SIZE], z[TSR_SAFETY_NUMBER_SIZE];
  CHECK_OK(tsr_safety_number(a, ka, b, kb, x));
  CHECK_OK(tsr_safety_number(b, kb, a, ka, y));
  CHECK(strcmp(x, y) == 0);
  CHECK_INT(strlen(x), 71);
  for (int i = 0; i < 71; i++)
    CHECK(i % 6 == 5 ? x[i] == ' ' : (x[i] >= '0' && x[i] <= '9'));
  kb[31] ^= 1; /* a swapped key shows */
  CHECK_OK(tsr_safety_number(a, ka, b, kb, z));
  CHECK(strcmp(x, z) != 0);
  kb[31] ^= 1;
  b[0] ^= 1; /* so does another account with the same key */
  CHECK_OK(tsr_safety_number(a, ka, b, kb, z));
  CHECK(strcmp(x, z) != 0);
  CHECK_ERR(tsr_safety_number(NULL, ka, b, kb, z), TSR_EINVAL);
}

int main(void) {
  if (sodium_init() < 0) return 1;
  RUN(test_symmetric_and_sensitive);
  return test_report("safety");
}
