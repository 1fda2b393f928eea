/* Incremental UTF-8 validator: a byte-at-a-time DFA built from the table of well-formed byte
 * sequences (Unicode Table 3-7 / RFC 3629), with an 8-bytes-at-a-time skip over ASCII runs. */
#include "utf8.h"

#include "pushwire.h" /* pw_utf8_valid, the public face of the validator */

#include <string.h>

/* Byte classes. Table 3-7 only ever splits the continuation range 80..BF at 8F/90 and 9F/A0,
 * and singles out the leads E0, ED, F0 and F4; every other byte behaves like its neighbours. */
enum {
  C_ASCII, /* 00..7F: a whole code point */
  C_80_8F, /* continuation, low quarter */
  C_90_9F, /* continuation, second quarter */
  C_A0_BF, /* continuation, upper half */
  C_BAD,   /* C0, C1 (only overlong forms), F5..FF (beyond U+10FFFF): never valid */
  C_L2,    /* C2..DF: lead of a 2-byte sequence */
  C_E0,    /* lead of 3 bytes whose 2nd byte must be A0..BF (else overlong) */
  C_L3,    /* E1..EC, EE, EF: lead of 3 bytes, any continuation */
  C_ED,    /* lead of 3 bytes whose 2nd byte must be 80..9F (else a surrogate) */
  C_F0,    /* lead of 4 bytes whose 2nd byte must be 90..BF (else overlong) */
  C_L4,    /* F1..F3: lead of 4 bytes, any continuation */
  C_F4,    /* lead of 4 bytes whose 2nd byte must be 80..8F (else > U+10FFFF) */
  N_CLASSES
};

/* States. ACCEPT and REJECT keep the public values 0 and 1; the others say what the next
 * byte must be. Any byte the state does not expect goes to REJECT at once (fail fast). */
enum {
  S_ACCEPT = PW_UTF8_ACCEPT, /* at a code point boundary */
  S_REJECT = PW_UTF8_REJECT, /* invalid; absorbing */
  S_TAIL1,                   /* one more 80..BF ends the code point */
  S_TAIL2,                   /* 80..BF, then TAIL1 */
  S_TAIL3,                   /* 80..BF, then TAIL2 */
  S_E0,                      /* after E0: A0..BF, then TAIL1 */
  S_ED,                      /* after ED: 80..9F, then TAIL1 */
  S_F0,                      /* after F0: 90..BF, then TAIL2 */
  S_F4,                      /* after F4: 80..8F, then TAIL2 */
  N_STATES
};

/* Class of every byte value, sixteen to a line. */
#define A C_ASCII
#define K C_80_8F
#define N C_90_9F
#define H C_A0_BF
#define X C_BAD
#define L2 C_L2
#define L3 C_L3
#define L4 C_L4
static const uint8_t byte_class[256] = {
    A,    A,  A,  A,  A,    A,    A,  A,
    A,    A,  A,  A,  A,    A,    A,  A, /* 00..0F */
    A,    A,  A,  A,  A,    A,    A,  A,
    A,    A,  A,  A,  A,    A,    A,  A, /* 10..1F */
    A,    A,  A,  A,  A,    A,    A,  A,
    A,    A,  A,  A,  A,    A,    A,  A, /* 20..2F */
    A,    A,  A,  A,  A,    A,    A,  A,
    A,    A,  A,  A,  A,    A,    A,  A, /* 30..3F */
    A,    A,  A,  A,  A,    A,    A,  A,
    A,    A,  A,  A,  A,    A,    A,  A, /* 40..4F */
    A,    A,  A,  A,  A,    A,    A,  A,
    A,    A,  A,  A,  A,    A,    A,  A, /* 50..5F */
    A,    A,  A,  A,  A,    A,    A,  A,
    A,    A,  A,  A,  A,    A,    A,  A, /* 60..6F */
    A,    A,  A,  A,  A,    A,    A,  A,
    A,    A,  A,  A,  A,    A,    A,  A, /* 70..7F */
    K,    K,  K,  K,  K,    K,    K,  K,
    K,    K,  K,  K,  K,    K,    K,  K, /* 80..8F */
    N,    N,  N,  N,  N,    N,    N,  N,
    N,    N,  N,  N,  N,    N,    N,  N, /* 90..9F */
    H,    H,  H,  H,  H,    H,    H,  H,
    H,    H,  H,  H,  H,    H,    H,  H, /* A0..AF */
    H,    H,  H,  H,  H,    H,    H,  H,
    H,    H,  H,  H,  H,    H,    H,  H, /* B0..BF */
    X,    X,  L2, L2, L2,   L2,   L2, L2,
    L2,   L2, L2, L2, L2,   L2,   L2, L2, /* C0..CF: C0, C1 overlong */
    L2,   L2, L2, L2, L2,   L2,   L2, L2,
    L2,   L2, L2, L2, L2,   L2,   L2, L2, /* D0..DF */
    C_E0, L3, L3, L3, L3,   L3,   L3, L3,
    L3,   L3, L3, L3, L3,   C_ED, L3, L3, /* E0..EF */
    C_F0, L4, L4, L4, C_F4, X,    X,  X,
    X,    X,  X,  X,  X,    X,    X,  X, /* F0..FF: F5+ > U+10FFFF */
};
#undef A
#undef K
#undef N
#undef H
#undef X
#undef L2
#undef L3
#undef L4

/* Transitions, one row per state and one column per class: Table 3-7 read left to right. */
#define OK S_ACCEPT
#define R S_REJECT
#define T1 S_TAIL1
#define T2 S_TAIL2
#define T3 S_TAIL3
static const uint8_t next_state[N_STATES][N_CLASSES] = {
    /*          ASCII 80-8F 90-9F A0-BF bad L2  E0    L3  ED    F0    L4  F4 */
    [S_ACCEPT] = {OK, R, R, R, R, T1, S_E0, T2, S_ED, S_F0, T3, S_F4},
    [S_REJECT] = {R, R, R, R, R, R, R, R, R, R, R, R},
    [S_TAIL1] = {R, OK, OK, OK, R, R, R, R, R, R, R, R},
    [S_TAIL2] = {R, T1, T1, T1, R, R, R, R, R, R, R, R},
    [S_TAIL3] = {R, T2, T2, T2, R, R, R, R, R, R, R, R},
    [S_E0] = {R, R, R, T1, R, R, R, R, R, R, R, R},
    [S_ED] = {R, T1, T1, R, R, R, R, R, R, R, R, R},
    [S_F0] = {R, R, T2, T2, R, R, R, R, R, R, R, R},
    [S_F4] = {R, T2, R, R, R, R, R, R, R, R, R, R},
};
#undef OK
#undef R
#undef T1
#undef T2
#undef T3

/* Advance the DFA over one byte. */
static uint32_t step(uint32_t state, uint8_t byte) { return next_state[state][byte_class[byte]]; }

/* Length of the ASCII run at the start of p[0..n). Text is mostly ASCII, so test eight bytes
 * with one AND (memcpy: no alignment or aliasing assumptions), then finish byte by byte. */
static size_t ascii_run(const uint8_t *p, size_t n) {
  size_t i = 0;
  while (n - i >= 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    if (w & UINT64_C(0x8080808080808080)) break;
    i += 8;
  }
  while (i < n && p[i] < 0x80) i++;
  return i;
}

int pw__utf8_feed(pw__utf8 *u, const uint8_t *p, size_t n) {
  uint32_t s = u->state;
  size_t i = 0;
  while (i < n && s != S_REJECT) {
    /* ASCII is only a whole code point at a boundary; mid-sequence it must go to the DFA.
     * Looking at the byte first keeps non-ASCII text from paying for a failed word test. */
    if (s == S_ACCEPT && p[i] < 0x80) {
      i += ascii_run(p + i, n - i);
      if (i == n) break;
    }
    s = step(s, p[i++]);
  }
  u->state = s;
  return s == S_REJECT ? -1 : 0;
}

int pw__utf8_complete(const pw__utf8 *u) { return u->state == S_ACCEPT; }

int pw__utf8_valid(const uint8_t *p, size_t n) {
  pw__utf8 u = {0};
  return pw__utf8_feed(&u, p, n) == 0 && pw__utf8_complete(&u);
}

int pw_utf8_valid(const void *data, size_t len) {
  return (data || !len) && pw__utf8_valid(data, len);
}
