/* ctest.h: the smallest test harness that does the job. Each CHECK counts; main() ends with
 * CTEST_END, which prints "NAME: N passed, N failed" and exits non-zero on failure. */
#ifndef CTEST_H
#define CTEST_H

#include <stdio.h>
#include <string.h>

static int ctest_pass, ctest_fail;

#define CHECK(cond) do { \
  if (cond) ctest_pass++; \
  else { ctest_fail++; fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); } \
} while (0)

#define CHECK_STR(got, want) do { \
  const char *g_ = (got), *w_ = (want); \
  if (g_ && w_ && strcmp(g_, w_) == 0) ctest_pass++; \
  else { ctest_fail++; fprintf(stderr, "%s:%d: got  %s\n%*s want %s\n", __FILE__, __LINE__, \
                               g_ ? g_ : "(null)", (int)strlen(__FILE__) + 6, "", w_ ? w_ : "(null)"); } \
} while (0)

#define CTEST_END(name) do { \
  printf("%s: %d passed, %d failed\n", name, ctest_pass, ctest_fail); \
  return ctest_fail ? 1 : 0; \
} while (0)

#endif
