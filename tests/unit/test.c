#include "test.h"

#include <stdlib.h>

int test_passed_, test_failed_, test_skipped_;
int test_case_failed_, test_case_skipped_;

void test_run_(const char *name, void (*fn)(void)) {
  test_case_failed_ = 0;
  test_case_skipped_ = 0;
  fn();
  if (test_case_failed_) {
    test_failed_++;
    fprintf(stderr, "FAIL %s\n", name);
  } else if (test_case_skipped_) {
    test_skipped_++;
    fprintf(stderr, "skip %s\n", name);
  } else {
    test_passed_++;
  }
}

int test_report(const char *module) {
  printf("%s: %d passed, %d failed, %d skipped\n", module, test_passed_, test_failed_,
         test_skipped_);
  return test_failed_ ? EXIT_FAILURE : EXIT_SUCCESS;
}
