/* Unit tests for the RFC 6455 frame codec: header lengths and splits, header rules, masking
 * against a naive reference, close code validity and close payload parse/build. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "../support/check.h"
#include "frame.h"
#include "utf8.h"

/* Build a header the way a client would (any length encoding, optional mask), so the parser
 * is tested on bytes the encoder under test did not produce. ext: 0, 2 or 8 length bytes. */
static size_t make_header(uint8_t *out, uint8_t b0, size_t ext, uint64_t len, const uint8_t *mask) {
  size_t n = 2;
  out[0] = b0;
  out[1] = (uint8_t)((mask ? 0x80 : 0) | (ext == 0 ? len : ext == 2 ? 126 : 127));
  for (size_t i = 0; i < ext; i++) out[n++] = (uint8_t)(len >> (8 * (ext - 1 - i)));
  if (mask) {
    memcpy(out + n, mask, 4);
    n += 4;
  }
  return n;
}

static const uint8_t key[4] = {0x37, 0xFA, 0x21, 0x3D};

/* ---- header lengths ---- */

struct len_case {
  uint64_t len;
  size_t hdr_len;
  uint8_t bytes[10];
};

static const struct len_case len_cases[] = {
    {0, 2, {0x82, 0x00}},
    {1, 2, {0x82, 0x01}},
    {125, 2, {0x82, 0x7D}},
    {126, 4, {0x82, 0x7E, 0x00, 0x7E}},
    {127, 4, {0x82, 0x7E, 0x00, 0x7F}},
    {65535, 4, {0x82, 0x7E, 0xFF, 0xFF}},
    {65536, 10, {0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00}},
    {UINT64_C(0xFFFFFFFF), 10, {0x82, 0x7F, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF}},
    {UINT64_C(1) << 32, 10, {0x82, 0x7F, 0, 0, 0, 0x01, 0, 0, 0, 0}},
    {UINT64_C(0x0102030405060708), 10, {0x82, 0x7F, 1, 2, 3, 4, 5, 6, 7, 8}},
    {INT64_MAX, 10, {0x82, 0x7F, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}},
};
#define N_LEN_CASES (sizeof len_cases / sizeof len_cases[0])

static void test_encode_lengths(void) {
  for (size_t i = 0; i < N_LEN_CASES; i++) {
    const struct len_case *c = &len_cases[i];
    uint8_t out[PW_FRAME_MAX_HEADER];
    memset(out, 0xEE, sizeof out);
    size_t n = pw__frame_encode_header(out, 1, PW_OP_BINARY, c->len);
    CHECK_EQ_SIZE(n, c->hdr_len);
    CHECK_MEM(out, c->bytes, c->hdr_len);
    CHECK_EQ_INT(out[c->hdr_len], 0xEE); /* nothing written past the header */
  }
  uint8_t out[10];
  CHECK_EQ_SIZE(pw__frame_encode_header(out, 0, PW_OP_TEXT, 5), 2);
  CHECK_EQ_INT(out[0], 0x01);
  CHECK_EQ_SIZE(pw__frame_encode_header(out, 0, PW_OP_CONT, 0), 2);
  CHECK_EQ_INT(out[0], 0x00);
  CHECK_EQ_SIZE(pw__frame_encode_header(out, 1, PW_OP_CLOSE, 2), 2);
  CHECK_EQ_INT(out[0], 0x88);
  CHECK_EQ_INT(out[1], 0x02);
  CHECK_EQ_SIZE(pw__frame_encode_header(out, 1, PW_OP_PONG, 125), 2);
  CHECK_EQ_INT(out[0], 0x8A);
}

/* Parse `n` bytes holding one full header of `hdr_len` bytes, checking every shorter split
 * says "need more" and that bytes after the header are ignored. Returns the final rc. */
static int parse_all_splits(const uint8_t *p, size_t hdr_len, pw__frame_hdr *h) {
  for (size_t k = 0; k < hdr_len; k++) CHECK_EQ_INT(pw__frame_parse_header(p, k, h), 0);
  uint8_t more[PW_FRAME_MAX_HEADER + 8];
  memcpy(more, p, hdr_len);
  memset(more + hdr_len, 0xA5, 8);
  pw__frame_hdr h2;
  int rc2 = pw__frame_parse_header(more, hdr_len + 8, &h2);
  int rc = pw__frame_parse_header(p, hdr_len, h);
  CHECK_EQ_INT(rc2, rc);
  if (rc > 0) {
    CHECK_EQ_INT(h2.payload_len, h->payload_len);
    CHECK_EQ_INT(h2.hdr_len, h->hdr_len);
  }
  return rc;
}

static void check_hdr(const pw__frame_hdr *h, int fin, int rsv, int op, const uint8_t *mask,
                      size_t hdr_len, uint64_t len) {
  CHECK_EQ_INT(h->fin, fin);
  CHECK_EQ_INT(h->rsv, rsv);
  CHECK_EQ_INT(h->opcode, op);
  CHECK_EQ_INT(h->masked, mask != NULL);
  if (mask) CHECK_MEM(h->mask, mask, 4);
  CHECK_EQ_INT(h->hdr_len, hdr_len);
  CHECK(h->payload_len == len);
}

/* Encoder output parses back; masked client headers of every length parse at every split. */
static void test_parse_lengths(void) {
  for (size_t i = 0; i < N_LEN_CASES; i++) {
    const struct len_case *c = &len_cases[i];
    pw__frame_hdr h;
    uint8_t buf[PW_FRAME_MAX_HEADER];
    size_t n = pw__frame_encode_header(buf, 1, PW_OP_BINARY, c->len);
    CHECK_EQ_INT(parse_all_splits(buf, n, &h), (int)n);
    check_hdr(&h, 1, 0, PW_OP_BINARY, NULL, n, c->len);

    n = make_header(buf, 0x01, c->hdr_len == 2 ? 0 : c->hdr_len - 2, c->len, key);
    CHECK_EQ_SIZE(n, c->hdr_len + 4);
    CHECK_EQ_INT(parse_all_splits(buf, n, &h), (int)n);
    check_hdr(&h, 0, 0, PW_OP_TEXT, key, n, c->len);
  }
}

/* Round trip over opcodes, FIN and lengths, with a payload behind the header. */
static void test_round_trip(void) {
  static const int ops[] = {PW_OP_CONT, PW_OP_TEXT, PW_OP_BINARY};
  static const uint64_t lens[] = {0, 7, 125, 126, 300, 65535, 65536, 1u << 20};
  for (size_t o = 0; o < 3; o++)
    for (int fin = 0; fin <= 1; fin++)
      for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++) {
        uint8_t buf[PW_FRAME_MAX_HEADER + 3];
        size_t n = pw__frame_encode_header(buf, fin, ops[o], lens[l]);
        memcpy(buf + n, "xyz", 3);
        pw__frame_hdr h;
        CHECK_EQ_INT(pw__frame_parse_header(buf, n + 3, &h), (int)n);
        check_hdr(&h, fin, 0, ops[o], NULL, n, lens[l]);
      }
  static const int ctl[] = {PW_OP_CLOSE, PW_OP_PING, PW_OP_PONG};
  for (size_t o = 0; o < 3; o++)
    for (uint64_t len = 0; len <= 125; len++) {
      uint8_t buf[PW_FRAME_MAX_HEADER];
      size_t n = pw__frame_encode_header(buf, 1, ctl[o], len);
      pw__frame_hdr h;
      CHECK_EQ_INT(pw__frame_parse_header(buf, n, &h), 2);
      check_hdr(&h, 1, 0, ctl[o], NULL, 2, len);
    }
}

/* Non-minimal length encodings are accepted (RFC allows the reader to), data and control. */
static void test_non_minimal(void) {
  uint8_t buf[PW_FRAME_MAX_HEADER];
  pw__frame_hdr h;
  size_t n = make_header(buf, 0x82, 2, 5, NULL);
  CHECK_EQ_INT(parse_all_splits(buf, n, &h), 4);
  check_hdr(&h, 1, 0, PW_OP_BINARY, NULL, 4, 5);
  n = make_header(buf, 0x82, 8, 0, key);
  CHECK_EQ_INT(parse_all_splits(buf, n, &h), 14);
  check_hdr(&h, 1, 0, PW_OP_BINARY, key, 14, 0);
  n = make_header(buf, 0x89, 8, 125, key);
  CHECK_EQ_INT(parse_all_splits(buf, n, &h), 14);
  check_hdr(&h, 1, 0, PW_OP_PING, key, 14, 125);
  n = make_header(buf, 0x8A, 2, 3, NULL);
  CHECK_EQ_INT(parse_all_splits(buf, n, &h), 4);
  check_hdr(&h, 1, 0, PW_OP_PONG, NULL, 4, 3);
}

/* RSV bits and MASK are reported as they are, never judged. */
static void test_rsv_and_mask_reported(void) {
  for (int rsv = 0; rsv < 8; rsv++)
    for (int masked = 0; masked <= 1; masked++) {
      uint8_t buf[PW_FRAME_MAX_HEADER];
      pw__frame_hdr h;
      size_t n = make_header(buf, (uint8_t)(0x81 | rsv << 4), 0, 3, masked ? key : NULL);
      CHECK_EQ_INT(parse_all_splits(buf, n, &h), (int)n);
      check_hdr(&h, 1, rsv, PW_OP_TEXT, masked ? key : NULL, n, 3);
    }
}

/* Every opcode with FIN set and clear: reserved ones and fragmented control frames fail. */
static void test_opcodes(void) {
  for (int op = 0; op < 16; op++)
    for (int fin = 0; fin <= 1; fin++) {
      uint8_t buf[PW_FRAME_MAX_HEADER];
      pw__frame_hdr h;
      size_t n = make_header(buf, (uint8_t)(fin << 7 | op), 0, 0, key);
      int reserved = (op >= 3 && op <= 7) || op >= 0xB;
      int want = reserved || (op >= 8 && !fin) ? -1002 : (int)n;
      CHECK_EQ_INT(pw__frame_parse_header(buf, n, &h), want);
      if (want < 0) /* decided by the first byte: no need to wait for the rest */
        CHECK_EQ_INT(pw__frame_parse_header(buf, 1, &h), -1002);
      else check_hdr(&h, fin, 0, op, key, n, 0);
    }
}

/* Control frames carry at most 125 bytes, however the length is encoded. */
static void test_control_length(void) {
  static const uint8_t ctl[] = {0x88, 0x89, 0x8A};
  for (size_t i = 0; i < 3; i++) {
    uint8_t buf[PW_FRAME_MAX_HEADER];
    pw__frame_hdr h;
    size_t n = make_header(buf, ctl[i], 0, 125, NULL);
    CHECK_EQ_INT(pw__frame_parse_header(buf, n, &h), 2);
    n = make_header(buf, ctl[i], 2, 126, NULL);
    CHECK_EQ_INT(pw__frame_parse_header(buf, n, &h), -1002);
    CHECK_EQ_INT(pw__frame_parse_header(buf, n - 1, &h), 0);
    n = make_header(buf, ctl[i], 2, 65535, key);
    CHECK_EQ_INT(pw__frame_parse_header(buf, n, &h), -1002);
    n = make_header(buf, ctl[i], 8, 126, key);
    CHECK_EQ_INT(pw__frame_parse_header(buf, n, &h), -1002);
    n = make_header(buf, ctl[i], 8, UINT64_C(1) << 40, NULL);
    CHECK_EQ_INT(pw__frame_parse_header(buf, n, &h), -1002);
  }
}

/* A 64-bit length must have its top bit clear; the error shows as soon as that byte does. */
static void test_64bit_top_bit(void) {
  static const uint64_t bad[] = {UINT64_C(1) << 63, UINT64_MAX, (UINT64_C(1) << 63) | 5};
  for (size_t i = 0; i < 3; i++)
    for (int masked = 0; masked <= 1; masked++) {
      uint8_t buf[PW_FRAME_MAX_HEADER];
      pw__frame_hdr h;
      size_t n = make_header(buf, 0x82, 8, bad[i], masked ? key : NULL);
      CHECK_EQ_INT(pw__frame_parse_header(buf, 2, &h), 0);
      for (size_t k = 3; k <= n; k++) CHECK_EQ_INT(pw__frame_parse_header(buf, k, &h), -1002);
    }
  uint8_t buf[PW_FRAME_MAX_HEADER];
  pw__frame_hdr h;
  size_t n = make_header(buf, 0x82, 8, INT64_MAX, NULL);
  CHECK_EQ_INT(parse_all_splits(buf, n, &h), 10);
  CHECK(h.payload_len == INT64_MAX);
}

/* ---- masking ---- */

static void naive_mask(uint8_t *d, size_t n, const uint8_t m[4], uint64_t offset) {
  for (size_t i = 0; i < n; i++) d[i] ^= m[(offset + i) % 4];
}

/* Every offset residue (and large offsets), every length 0..40, every buffer alignment;
 * bytes around the range stay untouched and a second pass restores the data. */
static void test_mask(void) {
  static const uint64_t offsets[] = {
      0, 1, 2, 3, 4, 5, 6, 7, 13, UINT64_C(1) << 32, (UINT64_C(1) << 32) + 3, UINT64_MAX - 1};
  uint8_t data[64], want[64], orig[64];
  for (size_t i = 0; i < sizeof orig; i++) orig[i] = (uint8_t)(i * 37 + 11);
  for (size_t o = 0; o < sizeof offsets / sizeof offsets[0]; o++)
    for (size_t align = 0; align < 8; align++)
      for (size_t len = 0; len <= 40; len++) {
        memcpy(data, orig, sizeof data);
        memcpy(want, orig, sizeof want);
        pw__frame_mask(data + align, len, key, offsets[o]);
        naive_mask(want + align, len, key, offsets[o]);
        CHECK_MEM(data, want, sizeof data);
        pw__frame_mask(data + align, len, key, offsets[o]);
        CHECK_MEM(data, orig, sizeof data);
      }
  pw__frame_mask(NULL, 0, key, 0);
  CHECK(1); /* n == 0 touches nothing, not even a NULL pointer */
}

/* Unmasking a payload in arbitrary pieces, offset = bytes done so far, equals one call. */
static void test_mask_pieces(void) {
  uint8_t whole[300], pieces[300];
  for (size_t i = 0; i < sizeof whole; i++) whole[i] = pieces[i] = (uint8_t)(i ^ 0x5A);
  pw__frame_mask(whole, sizeof whole, key, 0);
  static const size_t cuts[] = {1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 69};
  size_t at = 0;
  for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
    pw__frame_mask(pieces + at, cuts[i], key, at);
    at += cuts[i];
  }
  CHECK_EQ_SIZE(at, sizeof pieces);
  CHECK_MEM(pieces, whole, sizeof whole);
}

/* ---- close frames ---- */

static int spec_close_valid(int c) {
  if (c >= 3000 && c <= 4999) return 1;
  switch (c) {
  case 1000:
  case 1001:
  case 1002:
  case 1003:
  case 1007:
  case 1008:
  case 1009:
  case 1010:
  case 1011:
  case 1012:
  case 1013:
  case 1014: return 1;
  default: return 0;
  }
}

static void test_close_code_valid(void) {
  for (int c = -2; c <= 70000; c++) CHECK_EQ_INT(pw__close_code_valid(c), spec_close_valid(c));
  static const int named_bad[] = {0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535};
  for (size_t i = 0; i < sizeof named_bad / sizeof named_bad[0]; i++)
    CHECK(!pw__close_code_valid(named_bad[i]));
  static const int named_ok[] = {1000, 1001, 1002, 1003, 1007, 1011, 1012, 1014, 3000, 4999};
  for (size_t i = 0; i < sizeof named_ok / sizeof named_ok[0]; i++)
    CHECK(pw__close_code_valid(named_ok[i]));
}

/* Parse p[0..n) and check rc; on success also code and reason. */
static void check_close_parse(const char *p, size_t n, int want_rc, int want_code) {
  int code = -1;
  const uint8_t *reason = NULL;
  size_t reason_len = 999;
  int rc = pw__close_parse((const uint8_t *)p, n, &code, &reason, &reason_len);
  CHECK_EQ_INT(rc, want_rc);
  if (rc != 0) return;
  CHECK_EQ_INT(code, want_code);
  CHECK_EQ_SIZE(reason_len, n >= 2 ? n - 2 : 0);
  if (n > 2) CHECK(reason == (const uint8_t *)p + 2);
}

#define CLOSE_PARSE(s, rc, code) check_close_parse(s, sizeof(s) - 1, rc, code)

static void test_close_parse(void) {
  CLOSE_PARSE("", 0, 1005);
  CLOSE_PARSE("\x03", -1002, 0);
  CLOSE_PARSE("\x03\xE8", 0, 1000);
  CLOSE_PARSE("\x03\xE8"
              "bye",
              0, 1000);
  CLOSE_PARSE("\x03\xE9"
              "caf\xC3\xA9",
              0, 1001);
  CLOSE_PARSE("\x03\xF6", 0, 1014);
  CLOSE_PARSE("\x0B\xB8", 0, 3000);
  CLOSE_PARSE("\x13\x87"
              "x",
              0, 4999);
  /* invalid codes */
  CLOSE_PARSE("\x00\x00", -1002, 0);
  CLOSE_PARSE("\x03\xE7", -1002, 0); /* 999 */
  CLOSE_PARSE("\x03\xEC", -1002, 0); /* 1004 */
  CLOSE_PARSE("\x03\xED", -1002, 0); /* 1005 */
  CLOSE_PARSE("\x03\xEE", -1002, 0); /* 1006 */
  CLOSE_PARSE("\x03\xF7", -1002, 0); /* 1015 */
  CLOSE_PARSE("\x03\xF8", -1002, 0); /* 1016 */
  CLOSE_PARSE("\x0B\xB7", -1002, 0); /* 2999 */
  CLOSE_PARSE("\x13\x88", -1002, 0); /* 5000 */
  CLOSE_PARSE("\xFF\xFF", -1002, 0); /* 65535 */
  CLOSE_PARSE("\x03\xEC"
              "\xFF",
              -1002, 0); /* the code is judged first */
  /* reasons that are not UTF-8 */
  CLOSE_PARSE("\x03\xE8"
              "\xFF",
              -1007, 0);
  CLOSE_PARSE("\x03\xE8"
              "ok\xC3",
              -1007, 0); /* truncated sequence */
  CLOSE_PARSE("\x03\xE8"
              "\xED\xA0\x80",
              -1007, 0); /* surrogate */
  CLOSE_PARSE("\x03\xE8"
              "\xC0\x80",
              -1007, 0); /* overlong */
}

/* Build, then parse back: the code round-trips and the reason is valid UTF-8. */
static size_t build_and_parse(uint8_t *out, int code, const char *reason) {
  memset(out, 0xEE, PW_CONTROL_MAX_PAYLOAD + 1);
  size_t n = pw__close_build(out, code, reason);
  CHECK(n <= PW_CONTROL_MAX_PAYLOAD);
  CHECK_EQ_INT(out[PW_CONTROL_MAX_PAYLOAD], 0xEE);
  int parsed;
  const uint8_t *r;
  size_t rl;
  CHECK_EQ_INT(pw__close_parse(out, n, &parsed, &r, &rl), 0);
  CHECK_EQ_INT(parsed, code);
  return n;
}

/* Reason of `ascii` 'a's followed by `tail`. */
static void make_reason(char *out, size_t ascii, const char *tail) {
  memset(out, 'a', ascii);
  strcpy(out + ascii, tail);
}

static void test_close_build(void) {
  uint8_t out[PW_CONTROL_MAX_PAYLOAD + 1];
  char reason[300];

  CHECK_EQ_SIZE(build_and_parse(out, 1000, NULL), 2);
  CHECK_MEM(out, "\x03\xE8", 2);
  CHECK_EQ_SIZE(build_and_parse(out, 4999, ""), 2);
  CHECK_MEM(out, "\x13\x87", 2);
  CHECK_EQ_SIZE(build_and_parse(out, 1001, "going away"), 12);
  CHECK_MEM(out, "\x03\xE9going away", 12);
  /* 1005 ("no status") is never sent: it builds an empty payload. */
  CHECK_EQ_SIZE(pw__close_build(out, 1005, "ignored"), 0);

  /* Truncation to 123 bytes, never inside a sequence. {ascii run, tail, kept reason bytes} */
  static const struct {
    size_t ascii;
    const char *tail;
    size_t kept;
  } cases[] = {
      {123, "", 123},
      {124, "", 123},
      {200, "", 123},
      {121, "\xC3\xA9", 123},         /* 2-byte char ends at 123: kept */
      {122, "\xC3\xA9", 122},         /* would end at 124: dropped whole */
      {120, "\xE2\x82\xAC", 123},     /* 3-byte char ends at 123 */
      {121, "\xE2\x82\xAC", 121},     /* split after 2 of 3 bytes */
      {122, "\xE2\x82\xAC", 122},     /* split after 1 of 3 bytes */
      {119, "\xF0\x9F\x98\x80", 123}, /* 4-byte char ends at 123 */
      {120, "\xF0\x9F\x98\x80", 120},
      {121, "\xF0\x9F\x98\x80", 121},
      {122, "\xF0\x9F\x98\x80", 122},
      {123, "\xF0\x9F\x98\x80", 123}, /* starts exactly at the cut */
      {0,
       "\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC"
       "\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC"
       "\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC"
       "\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC"
       "\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC"
       "\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC",
       123}, /* 42 euro signs: 41 fit exactly */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    make_reason(reason, cases[i].ascii, cases[i].tail);
    size_t n = build_and_parse(out, 3000, reason);
    if (n != 2 + cases[i].kept) fprintf(stderr, "close_build case %zu:\n", i);
    CHECK_EQ_SIZE(n, 2 + cases[i].kept);
    CHECK_MEM(out + 2, reason, cases[i].kept);
  }

  /* Every ascii prefix length with every multi-byte char: always a valid, maximal cut. */
  static const char *chars[] = {"\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80"};
  for (size_t c = 0; c < 3; c++)
    for (size_t ascii = 100; ascii <= 130; ascii++) {
      make_reason(reason, ascii, chars[c]);
      strcat(reason, chars[c]);
      size_t len = strlen(chars[c]), n = build_and_parse(out, 1000, reason);
      /* The longest prefix of at most 123 bytes that ends on a boundary: inside the ASCII
       * run, or after the first or second character. */
      size_t want = ascii < 123 ? ascii : 123;
      if (ascii + len <= 123) want = ascii + len;
      if (ascii + 2 * len <= 123) want = ascii + 2 * len;
      CHECK_EQ_SIZE(n - 2, want);
      CHECK(pw__utf8_valid(out + 2, n - 2));
    }
}

int main(void) {
  test_encode_lengths();
  test_parse_lengths();
  test_round_trip();
  test_non_minimal();
  test_rsv_and_mask_reported();
  test_opcodes();
  test_control_length();
  test_64bit_top_bit();
  test_mask();
  test_mask_pieces();
  test_close_code_valid();
  test_close_parse();
  test_close_build();
  return CHECK_DONE();
}
