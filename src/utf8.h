/* Incremental UTF-8 validator (RFC 3629): feed bytes in any split, learn of an error as soon
 * as the first byte that makes the sequence invalid arrives (fail fast, RFC 6455 8.1). */
#ifndef PW_UTF8_H
#define PW_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Zero-initialised state = start of text. */
typedef struct pw__utf8 {
  uint32_t state; /* 0 = accept (at a code point boundary); internal otherwise */
} pw__utf8;

#define PW_UTF8_ACCEPT 0u
#define PW_UTF8_REJECT 1u

/* Feed n bytes. Returns 0 if everything so far can still be (or is) valid UTF-8, -1 once
 * invalid (the state then stays rejected). */
int pw__utf8_feed(pw__utf8 *u, const uint8_t *p, size_t n);

/* 1 if the text fed so far ends at a code point boundary (a complete, valid text). */
int pw__utf8_complete(const pw__utf8 *u);

/* One-shot: 1 if p[0..n) is complete valid UTF-8. */
int pw__utf8_valid(const uint8_t *p, size_t n);

#endif
