/* Minimal test harness: one binary per module.
 *
 *   static void test_roundtrip(void) { CHECK(x == 1); CHECK_OK(f()); }
 *   int main(void) { RUN(test_roundtrip); return test_report("codec"); }
 *
 * A test case passes when none of its checks failed, is skipped when it
 * called TEST_SKIP, and fails otherwise. test_report prints
 * "<module>: N passed, N failed, N skipped" and returns the exit status. */
#ifndef TSR_TEST_H
#define TSR_TEST_H

#include <stdio.h>
#include <string.h>

#include "common/bytes.h"
#include "tessera/error.h"

extern int test_passed_, test_failed_, test_skipped_;
extern int test_case_failed_, test_case_skipped_;

#define CHECK(cond)                                                                      \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      fprintf(stderr, "  FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);                  \
      test_case_failed_ = 1;                                                             \
    }                                                                                    \
  } while (0)

#define CHECK_INT(a, b)                                                                  \
  do {                                                                                   \
    long long va_ = (long long)(a), vb_ = (long long)(b);                                \
    if (va_ != vb_) {                                                                    \
      fprintf(stderr, "  FAIL %s:%d: %s == %s (%lld != %lld)\n", __FILE__, __LINE__, #a, \
              #b, va_, vb_);                                                             \
      test_case_failed_ = 1;                                                             \
    }                                                                                    \
  } while (0)

/* expr must return 0; prints the error name otherwise. */
#define CHECK_OK(expr)                                                                   \
  do {                                                                                   \
    int rc_ = (expr);                                                                    \
    if (rc_ != 0) {                                                                      \
      fprintf(stderr, "  FAIL %s:%d: %s -> %s\n", __FILE__, __LINE__, #expr,             \
              tsr_errname(rc_));                                                         \
      test_case_failed_ = 1;                                                             \
    }                                                                                    \
  } while (0)

/* expr must return exactly the error code err. */
#define CHECK_ERR(expr, err)                                                             \
  do {                                                                                   \
    int rc_ = (expr);                                                                    \
    if (rc_ != (err)) {                                                                  \
      fprintf(stderr, "  FAIL %s:%d: %s -> %s, want %s\n", __FILE__, __LINE__, #expr,    \
              tsr_errname(rc_), tsr_errname(err));                                       \
      test_case_failed_ = 1;                                                             \
    }                                                                                    \
  } while (0)

/* Two bytes_t views must be equal. */
#define CHECK_BYTES(a, b)                                                                \
  do {                                                                                   \
    bytes_t ba_ = (a), bb_ = (b);                                                        \
    if (!bytes_eq(ba_, bb_)) {                                                           \
      fprintf(stderr, "  FAIL %s:%d: %s == %s (lengths %zu, %zu)\n", __FILE__, __LINE__, \
              #a, #b, ba_.len, bb_.len);                                                 \
      test_case_failed_ = 1;                                                             \
    }                                                                                    \
  } while (0)

#define TEST_SKIP(...)                                                                   \
  do {                                                                                   \
    fprintf(stderr, "  SKIP ");                                                          \
    fprintf(stderr, __VA_ARGS__);                                                        \
    fprintf(stderr, "\n");                                                               \
    test_case_skipped_ = 1;                                                              \
    return;                                                                              \
  } while (0)

#define RUN(fn) test_run_(#fn, fn)

void test_run_(const char *name, void (*fn)(void));
int test_report(const char *module);
/* True once any check in the current case has failed. */
static inline int test_failing(void) { return test_case_failed_; }

#endif
