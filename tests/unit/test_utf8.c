/* Unit tests for the incremental UTF-8 validator: known texts, every invalid class, and a
 * differential test against a slow reference decoder, including the fail-fast position. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <pushwire.h>

#include "../support/check.h"
#include "utf8.h"

/* ---- reference: decode code points and check them against the definition ---- */

/* Sequence length a lead byte announces by its bit pattern alone (0: not a lead byte).
 * Deliberately permissive (C0, C1, F5..F7 pass here); the code point checks reject them. */
static int ref_seq_len(uint8_t b) {
  if (b < 0x80) return 1;
  if ((b & 0xE0) == 0xC0) return 2;
  if ((b & 0xF0) == 0xE0) return 3;
  if ((b & 0xF8) == 0xF0) return 4;
  return 0;
}

/* Can some code point in [lo, hi] be encoded in exactly len bytes? (minimal length, at most
 * U+10FFFF, not a surrogate) */
static int ref_range_ok(uint32_t lo, uint32_t hi, int len) {
  static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
  static const uint32_t max_cp[5] = {0, 0x7F, 0x7FF, 0xFFFF, 0x10FFFF};
  if (lo < min_cp[len]) lo = min_cp[len];
  if (hi > max_cp[len]) hi = max_cp[len];
  if (lo > hi) return 0;
  return !(lo >= 0xD800 && hi <= 0xDFFF);
}

/* Scan p[0..n): returns 1 if it is valid UTF-8 or a prefix of valid UTF-8 ("viable") and sets
 * *complete to whether it ends on a code point boundary. A partial last sequence is viable if
 * the code points its completions span (missing bits all 0 .. all 1) include a valid one. */
static int ref_scan(const uint8_t *p, size_t n, int *complete) {
  *complete = 1;
  size_t i = 0;
  while (i < n) {
    int len = ref_seq_len(p[i]);
    if (len == 0) return 0;
    uint32_t cp = len == 1 ? p[i] : (uint32_t)(p[i] & (0x7F >> len));
    int have = 1;
    for (; have < len && i + (size_t)have < n; have++) {
      uint8_t c = p[i + (size_t)have];
      if ((c & 0xC0) != 0x80) return 0;
      cp = (cp << 6) | (c & 0x3F);
    }
    int missing_bits = 6 * (len - have);
    uint32_t lo = cp << missing_bits, hi = lo | ((1u << missing_bits) - 1);
    if (!ref_range_ok(lo, hi, len)) return 0;
    *complete = have == len;
    i += (size_t)have;
  }
  return 1;
}

static int ref_valid(const uint8_t *p, size_t n) {
  int complete;
  return ref_scan(p, n, &complete) && complete;
}

/* Index of the first byte after which no valid continuation exists, or -1. */
static long ref_first_bad(const uint8_t *p, size_t n) {
  int complete;
  for (size_t k = 1; k <= n; k++)
    if (!ref_scan(p, k, &complete)) return (long)k - 1;
  return -1;
}

/* ---- helpers over the validator under test ---- */

/* Feed one byte at a time; index of the byte that made feed() fail, or -1. */
static long dfa_first_bad(const uint8_t *p, size_t n, int *complete) {
  pw__utf8 u = {0};
  long bad = -1;
  for (size_t i = 0; i < n; i++) {
    int rc = pw__utf8_feed(&u, p + i, 1);
    if (rc < 0 && bad < 0) bad = (long)i;
    if (rc == 0 && bad >= 0) return -2; /* recovered after rejecting: never allowed */
  }
  *complete = pw__utf8_complete(&u);
  return bad;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15u;

static uint64_t rng(void) { /* xorshift64*: fixed seed, reproducible */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545F4914F6CDD1Du;
}

static size_t rng_below(size_t n) { return (size_t)(rng() % n); }

/* Bytes at every class boundary of the table, plus their neighbours. */
static const uint8_t interesting[] = {
    0x00, 0x41, 0x7F, 0x80, 0x81, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF,
    0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xF7, 0xF8, 0xFF,
};
#define N_INTERESTING (sizeof interesting / sizeof interesting[0])

/* Biased so that multi-byte sequences are often well formed far enough to be interesting. */
static uint8_t random_byte(void) {
  size_t r = rng_below(100);
  if (r < 45) /* continuation bytes, boundaries favoured */
    return r < 25 ? interesting[3 + rng_below(7)] : (uint8_t)(0x80 + rng_below(64));
  if (r < 70) /* leads, boundaries favoured */
    return r < 55 ? interesting[10 + rng_below(18)] : (uint8_t)(0xC0 + rng_below(64));
  if (r < 90) return (uint8_t)rng_below(0x80);
  return (uint8_t)rng_below(256);
}

/* Everything one byte string can be checked for: one-shot, byte-wise fail-fast position, and
 * fed in random pieces (the failing piece must be the one holding the first bad byte). */
static void check_against_ref(const uint8_t *p, size_t n) {
  long want_bad = ref_first_bad(p, n);
  int want_valid = ref_valid(p, n);

  CHECK_EQ_INT(pw__utf8_valid(p, n), want_valid);

  int complete;
  long bad = dfa_first_bad(p, n, &complete);
  CHECK_EQ_INT(bad, want_bad);
  if (want_bad < 0) CHECK_EQ_INT(complete, want_valid);

  pw__utf8 u = {0};
  size_t at = 0;
  long failed_piece_end = -1;
  while (at < n) {
    size_t len = 1 + rng_below(n - at);
    int rc = pw__utf8_feed(&u, p + at, len);
    if (rc < 0 && failed_piece_end < 0) {
      failed_piece_end = (long)(at + len);
      CHECK(want_bad >= (long)at && want_bad < failed_piece_end);
    }
    at += len;
  }
  if (failed_piece_end < 0) CHECK_EQ_INT(want_bad, -1);
  CHECK_EQ_INT(pw__utf8_complete(&u), want_valid);
}

/* ---- tests ---- */

struct vector {
  const char *name;
  const char *bytes;
  size_t len;
  int valid;      /* complete and valid */
  long first_bad; /* index of the byte that must make it fail, -1 if none */
};

#define V(name, s, valid, bad) \
  { name, s, sizeof(s) - 1, valid, bad }

static const struct vector vectors[] = {
    V("empty", "", 1, -1),
    V("ascii", "Hello, world! ~\x7f\x01", 1, -1),
    V("NUL", "a\0b", 1, -1),
    V("U+0080", "\xC2\x80", 1, -1),
    V("U+07FF", "\xDF\xBF", 1, -1),
    V("U+0800", "\xE0\xA0\x80", 1, -1),
    V("euro", "\xE2\x82\xAC", 1, -1),
    V("U+D7FF", "\xED\x9F\xBF", 1, -1),
    V("U+E000", "\xEE\x80\x80", 1, -1),
    V("U+FFFF", "\xEF\xBF\xBF", 1, -1),
    V("U+10000", "\xF0\x90\x80\x80", 1, -1),
    V("emoji", "\xF0\x9F\x98\x80", 1, -1),
    V("U+FFFFF", "\xF3\xBF\xBF\xBF", 1, -1),
    V("U+100000", "\xF4\x80\x80\x80", 1, -1),
    V("U+10FFFF", "\xF4\x8F\xBF\xBF", 1, -1),
    V("mixed", "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80z\xCE\xBA\xE1\xBD\xB9", 1, -1),
    /* overlong */
    V("C0 80", "\xC0\x80", 0, 0),
    V("C1 BF", "\xC1\xBF", 0, 0),
    V("E0 80 80", "\xE0\x80\x80", 0, 1),
    V("E0 9F BF", "\xE0\x9F\xBF", 0, 1),
    V("F0 80 80 80", "\xF0\x80\x80\x80", 0, 1),
    V("F0 8F BF BF", "\xF0\x8F\xBF\xBF", 0, 1),
    /* surrogates */
    V("ED A0 80", "\xED\xA0\x80", 0, 1),
    V("ED BF BF", "\xED\xBF\xBF", 0, 1),
    V("surrogate pair", "\xED\xA0\xBD\xED\xB2\xA9", 0, 1),
    /* beyond U+10FFFF */
    V("F4 90 80 80", "\xF4\x90\x80\x80", 0, 1),
    V("F4 BF BF BF", "\xF4\xBF\xBF\xBF", 0, 1),
    V("F5", "\xF5\x80\x80\x80", 0, 0),
    V("F7", "\xF7\xBF\xBF\xBF", 0, 0),
    V("F8", "\xF8\x88\x80\x80\x80", 0, 0),
    V("FC", "\xFC\x84\x80\x80\x80\x80", 0, 0),
    V("FE", "\xFE", 0, 0),
    V("FF", "\xFF", 0, 0),
    V("late F5", "abc\xF5", 0, 3),
    /* truncated: viable but incomplete */
    V("C2", "\xC2", 0, -1),
    V("E2 82", "\xE2\x82", 0, -1),
    V("E0", "\xE0", 0, -1),
    V("ED 9F", "\xED\x9F", 0, -1),
    V("F0 9F 98", "\xF0\x9F\x98", 0, -1),
    V("F4 8F BF", "\xF4\x8F\xBF", 0, -1),
    V("ascii then F1", "abc\xF1", 0, -1),
    /* bad continuation */
    V("E2 28 A1", "\xE2\x28\xA1", 0, 1),
    V("lone 80", "\x80", 0, 0),
    V("lone BF", "\xBF", 0, 0),
    V("ascii then 80", "ab\x80", 0, 2),
    V("C2 C2", "\xC2\xC2\x80", 0, 1),
    V("C2 00", "\xC2\x00", 0, 1),
    V("F0 9F 98 41", "a\xF0\x9F\x98\x41", 0, 4),
    V("valid then lone", "\xE2\x82\xAC\xAC", 0, 3),
};

static void test_vectors(void) {
  for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
    const struct vector *v = &vectors[i];
    const uint8_t *p = (const uint8_t *)v->bytes;
    int complete;
    int valid = pw__utf8_valid(p, v->len);
    long bad = dfa_first_bad(p, v->len, &complete);
    if (valid != v->valid || bad != v->first_bad) fprintf(stderr, "vector \"%s\":\n", v->name);
    CHECK_EQ_INT(valid, v->valid);
    CHECK_EQ_INT(bad, v->first_bad);
    if (v->first_bad < 0) CHECK_EQ_INT(complete, v->valid);
    /* The reference must agree too, or the differential test below proves nothing. */
    CHECK_EQ_INT(ref_valid(p, v->len), v->valid);
    CHECK_EQ_INT(ref_first_bad(p, v->len), v->first_bad);
  }
}

static void test_state(void) {
  pw__utf8 u = {0};
  CHECK(pw__utf8_complete(&u));
  CHECK_EQ_INT(pw__utf8_feed(&u, NULL, 0), 0);
  CHECK(pw__utf8_complete(&u));
  CHECK_EQ_INT(pw__utf8_valid(NULL, 0), 1);

  /* Split inside a sequence: incomplete in between, complete after. */
  CHECK_EQ_INT(pw__utf8_feed(&u, (const uint8_t *)"\xF0\x9F", 2), 0);
  CHECK(!pw__utf8_complete(&u));
  CHECK_EQ_INT(pw__utf8_feed(&u, (const uint8_t *)"\x98", 1), 0);
  CHECK(!pw__utf8_complete(&u));
  CHECK_EQ_INT(pw__utf8_feed(&u, (const uint8_t *)"\x80", 1), 0);
  CHECK(pw__utf8_complete(&u));

  /* Once rejected, always rejected. */
  CHECK_EQ_INT(pw__utf8_feed(&u, (const uint8_t *)"\xFF", 1), -1);
  CHECK_EQ_INT(u.state, PW_UTF8_REJECT);
  CHECK_EQ_INT(pw__utf8_feed(&u, (const uint8_t *)"abc", 3), -1);
  CHECK_EQ_INT(pw__utf8_feed(&u, NULL, 0), -1);
  CHECK(!pw__utf8_complete(&u));
}

/* Every 1- and 2-byte string, and every 3- and 4-byte string over the boundary bytes. */
static void test_exhaustive(void) {
  uint8_t b[4];
  for (unsigned x = 0; x < 256 * 256 + 256; x++) {
    size_t n = x < 256 ? 1 : 2;
    b[0] = (uint8_t)(x < 256 ? x : (x - 256) >> 8);
    b[1] = (uint8_t)x;
    check_against_ref(b, n);
  }
  size_t k = N_INTERESTING;
  for (size_t x = 0; x < k * k * k * (k + 1); x++) {
    size_t y = x;
    for (int i = 0; i < 3; i++, y /= k) b[i] = interesting[y % k];
    size_t n = y == k ? 3 : 4; /* the extra "digit" k means: stop at 3 bytes */
    if (n == 4) b[3] = interesting[y];
    check_against_ref(b, n);
  }
}

static void test_random_short(void) {
  uint8_t b[12];
  size_t valid = 0;
  for (int iter = 0; iter < 200000; iter++) {
    size_t n = rng_below(13);
    for (size_t i = 0; i < n; i++) b[i] = random_byte();
    valid += (size_t)ref_valid(b, n);
    check_against_ref(b, n);
  }
  /* Guard against a generator that makes only garbage: the valid side must be exercised. */
  CHECK(valid > 20000);
}

/* Append the UTF-8 encoding of cp (a valid scalar value); returns its length. */
static size_t encode(uint8_t *out, uint32_t cp) {
  if (cp < 0x80) {
    out[0] = (uint8_t)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (uint8_t)(0xC0 | cp >> 6);
    out[1] = (uint8_t)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (uint8_t)(0xE0 | cp >> 12);
    out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (uint8_t)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (uint8_t)(0xF0 | cp >> 18);
  out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
  out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
  out[3] = (uint8_t)(0x80 | (cp & 0x3F));
  return 4;
}

static uint32_t random_scalar(void) {
  static const uint32_t edges[] = {0x7F,   0x80,   0x7FF,   0x800,   0xD7FF,
                                   0xE000, 0xFFFF, 0x10000, 0x10FFFF};
  size_t r = rng_below(10);
  if (r < 5) /* ASCII runs, for the word-at-a-time path */
    return (uint32_t)rng_below(0x80);
  if (r < 6) return edges[rng_below(sizeof edges / sizeof edges[0])];
  uint32_t cp = (uint32_t)rng_below(0x110000);
  return cp >= 0xD800 && cp <= 0xDFFF ? cp - 0x800 : cp;
}

/* Longer texts: valid ones must pass whole and in pieces; one corrupted byte must be caught
 * exactly where the reference says. Texts start at every alignment. */
static void test_random_long(void) {
  uint8_t buf[8 + 4 * 64];
  for (int iter = 0; iter < 20000; iter++) {
    size_t shift = rng_below(8), n = 0, cps = rng_below(65);
    uint8_t *p = buf + shift;
    for (size_t i = 0; i < cps; i++) n += encode(p + n, random_scalar());
    CHECK(ref_valid(p, n));
    check_against_ref(p, n);
    if (n > 0) {
      size_t at = rng_below(n); /* separate statements: a fixed order of rng() calls */
      p[at] = random_byte();
      check_against_ref(p, n);
    }
  }
}

/* ASCII runs of every length around the 8-byte word, at every alignment, with one non-ASCII
 * byte or sequence at every position: the fast path must hand over at the right byte. */
static void test_ascii_fast_path(void) {
  static const char *inserts[] = {
      "\x80", "\xC2\x80", "\xF0\x9F\x98\x80", "\xED\xA0", "\xFF", "\xE2",
  };
  uint8_t buf[64];
  for (size_t shift = 0; shift < 8; shift++) {
    uint8_t *p = buf + shift;
    for (size_t n = 0; n <= 40; n++) {
      memset(p, 'a' + (int)(n % 26), n);
      check_against_ref(p, n);
      for (size_t k = 0; k < sizeof inserts / sizeof inserts[0]; k++) {
        size_t len = strlen(inserts[k]);
        for (size_t pos = 0; pos + len <= n; pos++) {
          memset(p, 'x', n);
          memcpy(p + pos, inserts[k], len);
          check_against_ref(p, n);
        }
      }
    }
  }
}

/* The public face (pw_utf8_valid) is the same validator: it agrees with the reference on
 * random input, and refuses NULL with a length instead of reading it. */
static void test_public_call(void) {
  uint8_t b[12];
  for (int iter = 0; iter < 100000; iter++) {
    size_t n = rng_below(13);
    for (size_t i = 0; i < n; i++) b[i] = random_byte();
    CHECK_EQ_INT(pw_utf8_valid(b, n), ref_valid(b, n));
  }
  CHECK_EQ_INT(pw_utf8_valid(NULL, 0), 1);
  CHECK_EQ_INT(pw_utf8_valid(NULL, 3), 0);
  CHECK_EQ_INT(pw_utf8_valid("caf\xc3\xa9", 5), 1);
  CHECK_EQ_INT(pw_utf8_valid("caf\xc3", 4), 0);
}

int main(void) {
  test_public_call();
  test_vectors();
  test_state();
  test_exhaustive();
  test_random_short();
  test_random_long();
  test_ascii_fast_path();
  return CHECK_DONE();
}
