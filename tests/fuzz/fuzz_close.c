/* fuzz_close: the close-frame payload parser and builder.
 * Input: a close payload. Checked: pw__close_parse answers exactly what RFC 6455 5.5.1/7.4
 * and the IANA registry say (empty -> 1005; 1 byte -> 1002; a code that may not be sent ->
 * 1002; a reason that is not UTF-8 -> 1007 (Table 3-7 reference); else the code and the
 * reason span); and pw__close_build, given the input's code and its text as a reason, writes
 * a payload of at most 125 bytes that parses back to the same code and a reason that is a
 * prefix of the given one, cut only at a code point boundary, at most 3 bytes short of 123.
 * Checked to fail: with 1004 allowed in pw__close_code_valid, the corpus replay aborted on
 * reserved_1004 ("rc=0, expected -1002 (n=2, code 1004)"). */
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "fuzz_common.h"
#include "utf8_ref.h"

static void check_parse(const uint8_t *p, size_t n) {
  int code = -1;
  const uint8_t *reason = NULL;
  size_t reason_len = 99999;
  int rc = pw__close_parse(p, n, &code, &reason, &reason_len);
  if (n == 0) {
    FUZZ_CHECK(rc == 0 && code == 1005 && reason_len == 0, "empty: rc=%d code=%d", rc, code);
    return;
  }
  int want_code = n >= 2 ? p[0] << 8 | p[1] : -1;
  int want = n == 1 || !ref_close_code_sendable(want_code) ? -1002
             : !ref_utf8_valid(p + 2, n - 2)               ? -1007
                                                           : 0;
  FUZZ_CHECK(rc == want, "rc=%d, expected %d (n=%zu, code %d)", rc, want, n, want_code);
  if (rc != 0) return;
  FUZZ_CHECK(code == want_code && reason == p + 2 && reason_len == n - 2,
             "code %d (want %d), reason at +%td, %zu bytes", code, want_code, reason - p,
             reason_len);
}

/* Build from (code, text) and parse back. text must be NUL-terminated valid UTF-8. */
static void check_build(int code, const char *text) {
  uint8_t out[PW_CONTROL_MAX_PAYLOAD];
  size_t n = pw__close_build(out, code, text);
  FUZZ_CHECK(n <= PW_CONTROL_MAX_PAYLOAD, "built %zu bytes", n);
  int got;
  const uint8_t *reason;
  size_t reason_len;
  FUZZ_CHECK(pw__close_parse(out, n, &got, &reason, &reason_len) == 0,
             "a built payload (%zu bytes, code %d) does not parse", n, code);
  FUZZ_CHECK(got == code, "parsed code %d, built %d", got, code);
  size_t text_len = strlen(text);
  size_t want_min = text_len <= 123 ? text_len : 120; /* a cut loses at most 3 bytes */
  FUZZ_CHECK(reason_len <= 123 && reason_len >= want_min && reason_len <= text_len &&
                 memcmp(reason, text, reason_len) == 0,
             "reason of %zu bytes from a text of %zu", reason_len, text_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 4096) return 0;
  uint8_t *p = malloc(size ? size : 1); /* exactly the payload: over-reads are reported */
  if (!p) abort();
  memcpy(p, data, size);
  check_parse(p, size);
  free(p);
  if (size < 2 || !ref_close_code_sendable(data[0] << 8 | data[1])) return 0;
  char *text = malloc(size - 1);
  if (!text) abort();
  memcpy(text, data + 2, size - 2);
  text[size - 2] = '\0';
  if (ref_utf8_valid((const uint8_t *)text, strlen(text))) /* the builder's promise */
    check_build(data[0] << 8 | data[1], text);
  free(text);
  return 0;
}
