/* A slow reference UTF-8 validator, written straight from the Unicode Standard, Table 3-7
 * "Well-Formed UTF-8 Byte Sequences": a sequence is well formed iff it matches one row, each
 * byte within that row's column range. Nothing is shared with src/utf8.c (no classes, no DFA):
 * it is the oracle the library's validator is compared against. */
#ifndef PW_UTF8_REF_H
#define PW_UTF8_REF_H

#include <stddef.h>
#include <stdint.h>

typedef struct ref_utf8_row {
  uint8_t lo[4], hi[4];
  size_t len;
} ref_utf8_row;

/* Table 3-7, row by row (code points in the comments). */
static const ref_utf8_row REF_UTF8_TABLE[] = {
    {{0x00}, {0x7F}, 1},                                     /* U+0000..U+007F */
    {{0xC2, 0x80}, {0xDF, 0xBF}, 2},                         /* U+0080..U+07FF */
    {{0xE0, 0xA0, 0x80}, {0xE0, 0xBF, 0xBF}, 3},             /* U+0800..U+0FFF */
    {{0xE1, 0x80, 0x80}, {0xEC, 0xBF, 0xBF}, 3},             /* U+1000..U+CFFF */
    {{0xED, 0x80, 0x80}, {0xED, 0x9F, 0xBF}, 3},             /* U+D000..U+D7FF */
    {{0xEE, 0x80, 0x80}, {0xEF, 0xBF, 0xBF}, 3},             /* U+E000..U+FFFF */
    {{0xF0, 0x90, 0x80, 0x80}, {0xF0, 0xBF, 0xBF, 0xBF}, 4}, /* U+10000..U+3FFFF */
    {{0xF1, 0x80, 0x80, 0x80}, {0xF3, 0xBF, 0xBF, 0xBF}, 4}, /* U+40000..U+FFFFF */
    {{0xF4, 0x80, 0x80, 0x80}, {0xF4, 0x8F, 0xBF, 0xBF}, 4}, /* U+100000..U+10FFFF */
};

enum { REF_UTF8_VALID, REF_UTF8_INCOMPLETE, REF_UTF8_INVALID };

/* How many leading bytes of p[0..avail) match the row (at most row->len). */
static inline size_t ref_utf8_row_match(const ref_utf8_row *row, const uint8_t *p, size_t avail) {
  size_t k = 0;
  while (k < row->len && k < avail && p[k] >= row->lo[k] && p[k] <= row->hi[k]) k++;
  return k;
}

/* Scan p[0..n). Returns REF_UTF8_VALID (complete), REF_UTF8_INCOMPLETE (every byte fits, but
 * the text ends inside a sequence) or REF_UTF8_INVALID with *bad = the index of the first byte
 * that no row allows (where a streaming validator must fail). If `boundary` is given (n + 1
 * bytes), boundary[k] is set to 1 for every k up to the first bad byte where a whole sequence
 * ends (k = 0 included), else 0. */
static inline int ref_utf8_scan(const uint8_t *p, size_t n, size_t *bad, uint8_t *boundary) {
  size_t i = 0;
  if (boundary)
    for (size_t k = 0; k <= n; k++) boundary[k] = 0;
  if (boundary) boundary[0] = 1;
  while (i < n) {
    size_t best = 0, best_len = 0;
    for (size_t r = 0; r < sizeof REF_UTF8_TABLE / sizeof REF_UTF8_TABLE[0]; r++) {
      size_t k = ref_utf8_row_match(&REF_UTF8_TABLE[r], p + i, n - i);
      if (k > best) best = k, best_len = REF_UTF8_TABLE[r].len;
    }
    if (best > 0 && best == best_len) { /* one whole row matched */
      i += best;
      if (boundary) boundary[i] = 1;
      continue;
    }
    if (best > 0 && i + best == n) return REF_UTF8_INCOMPLETE; /* cut short by the end */
    if (bad) *bad = i + best; /* the first byte no row allows at this place */
    return REF_UTF8_INVALID;
  }
  return REF_UTF8_VALID;
}

static inline int ref_utf8_valid(const uint8_t *p, size_t n) {
  return ref_utf8_scan(p, n, NULL, NULL) == REF_UTF8_VALID;
}

#endif
