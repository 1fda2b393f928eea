/* Minimal assertions for the C tests: each CHECK counts a pass or a failure and, on failure,
 * prints file:line and both sides; main() ends with `return CHECK_DONE();`. */
#ifndef PW_CHECK_H
#define PW_CHECK_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>

/* Past this many failures only the count goes on, so a broken loop cannot flood the log. */
#define CHECK_MAX_REPORTS 50

static unsigned long check_passed_, check_failed_;

/* Count one result; return 1 if its details should be printed. */
static inline int check_count_(int ok, const char *file, int line, const char *what) {
  if (ok) {
    check_passed_++;
    return 0;
  }
  if (++check_failed_ > CHECK_MAX_REPORTS) return 0;
  fprintf(stderr, "%s:%d: FAILED: %s\n", file, line, what);
  return 1;
}

static inline void check_int_(long long a, long long b, const char *file, int line,
                              const char *what) {
  if (check_count_(a == b, file, line, what))
    fprintf(stderr, "  left:  %lld\n  right: %lld\n", a, b);
}

static inline void check_size_(size_t a, size_t b, const char *file, int line, const char *what) {
  if (check_count_(a == b, file, line, what)) fprintf(stderr, "  left:  %zu\n  right: %zu\n", a, b);
}

static inline void check_hex_(const char *label, const unsigned char *p, size_t n) {
  fprintf(stderr, "  %s:", label);
  for (size_t i = 0; i < n && i < 32; i++) fprintf(stderr, " %02x", p[i]);
  fprintf(stderr, n > 32 ? " ...\n" : "\n");
}

/* On a mismatch, show both buffers from the first differing byte. */
static inline void check_mem_(const void *a, const void *b, size_t n, const char *file, int line,
                              const char *what) {
  const unsigned char *x = a, *y = b;
  size_t i = 0;
  while (i < n && x[i] == y[i]) i++;
  if (!check_count_(i == n, file, line, what)) return;
  fprintf(stderr, "  first difference at byte %zu of %zu\n", i, n);
  check_hex_("left ", x + i, n - i);
  check_hex_("right", y + i, n - i);
}

static inline int check_done_(void) {
  if (check_failed_ > CHECK_MAX_REPORTS)
    fprintf(stderr, "(%lu failures not shown)\n", check_failed_ - CHECK_MAX_REPORTS);
  printf("%lu passed, %lu failed\n", check_passed_, check_failed_);
  return check_failed_ ? 1 : 0;
}

#define CHECK(cond) ((void)check_count_((cond) != 0, __FILE__, __LINE__, #cond))
#define CHECK_EQ_INT(a, b) \
  check_int_((long long)(a), (long long)(b), __FILE__, __LINE__, #a " == " #b)
#define CHECK_EQ_SIZE(a, b) check_size_((size_t)(a), (size_t)(b), __FILE__, __LINE__, #a " == " #b)
#define CHECK_MEM(a, b, n) \
  check_mem_((a), (b), (n), __FILE__, __LINE__, "memcmp(" #a ", " #b ", " #n ") == 0")
#define CHECK_DONE() check_done_()

/* From any thread (CHECK's counters are for the main thread only): count a problem
 * atomically and print the first CHECK_MAX_REPORTS; the main thread asserts
 * CHECK_EQ_INT(check_problems(), 0). */
static _Atomic unsigned long check_problems_;
static inline unsigned long check_problems(void) { return atomic_load(&check_problems_); }
#define PROBLEM(...)                                                 \
  do {                                                               \
    if (atomic_fetch_add(&check_problems_, 1) < CHECK_MAX_REPORTS) { \
      fprintf(stderr, "PROBLEM: " __VA_ARGS__);                      \
      fputc('\n', stderr);                                           \
    }                                                                \
  } while (0)

#endif
