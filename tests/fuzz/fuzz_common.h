/* What every harness shares: an invariant check that aborts (a finding for libFuzzer, a failed
 * test for the replay driver) and a small deterministic generator for split points. */
#ifndef PW_FUZZ_COMMON_H
#define PW_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant the code under test must keep. Harness code, not library code: abort is how a
 * fuzzer learns of a finding. */
#define FUZZ_CHECK(cond, ...)                                                        \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      fprintf(stderr, "%s:%d: invariant failed: %s\n  ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                                  \
      fputc('\n', stderr);                                                           \
      abort();                                                                       \
    }                                                                                \
  } while (0)

/* xorshift32: the input chooses the seed, so a split pattern is reproducible from the input. */
static inline uint32_t fuzz_rand(uint32_t *s) {
  uint32_t x = *s ? *s : 0x9E3779B9u;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return *s = x;
}

static inline uint32_t fuzz_load32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Chunk lengths for splitting a stream: the seed picks a typical size (1 byte at a time up to
 * large pieces) and the generator varies around it. Always >= 1. */
static inline size_t fuzz_chunk(uint32_t *s) {
  static const size_t typical[] = {1, 2, 3, 5, 8, 14, 64, 1000};
  uint32_t r = fuzz_rand(s);
  size_t t = typical[(*s >> 29) & 7];
  return 1 + r % (2 * t);
}

/* Close codes a peer may send, from RFC 6455 7.4.1 and the IANA "WebSocket Close Code Number
 * Registry": 1004 is reserved, 1005/1006/1015 are never sent, 1016-2999 are unassigned,
 * 3000-3999 are registered for libraries, 4000-4999 are for private use. */
static inline int ref_close_code_sendable(int code) {
  static const int defined[] = {1000, 1001, 1002, 1003, 1007, 1008,
                                1009, 1010, 1011, 1012, 1013, 1014};
  for (size_t i = 0; i < sizeof defined / sizeof defined[0]; i++)
    if (code == defined[i]) return 1;
  return code >= 3000 && code <= 4999;
}

#endif
