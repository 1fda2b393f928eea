/* Time for the C tests, in one place: a monotonic clock for deadlines and durations, the wall
 * clock for comparing with timestamps a program under test writes, and a sleep that a signal
 * does not cut short. */
#ifndef PW_TEST_CLOCK_H
#define PW_TEST_CLOCK_H

#include <errno.h>
#include <stdint.h>
#include <time.h>

/* Milliseconds on a monotonic clock. */
static inline uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Milliseconds since the epoch (CLOCK_REALTIME): it jumps, so never for a deadline. */
static inline uint64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Sleep ms milliseconds (the rest again after an EINTR). */
static inline void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

#endif
