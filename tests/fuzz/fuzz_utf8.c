/* fuzz_utf8: the library's UTF-8 validator against the slow Table 3-7 reference.
 * Input: 4 bytes of split seed, then the text. Checked: pw__utf8_valid agrees with the
 * reference on the whole text; pw__utf8_feed, fed the text in pieces split where the seed
 * says, fails exactly once the first bad byte has been fed (fail fast, RFC 6455 8.1), never
 * earlier, stays failed, and reports "complete" exactly at code point boundaries.
 * Checked to fail: with S_E0's row in utf8.c accepting 80..9F too (overlong 3-byte forms),
 * the corpus replay aborted on overlong_3byte ("pw__utf8_valid=1, reference status 2"). */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "utf8.h"
#include "utf8_ref.h"

static void check_whole(const uint8_t *p, size_t n, int ref) {
  int lib = pw__utf8_valid(p, n);
  FUZZ_CHECK(lib == (ref == REF_UTF8_VALID), "pw__utf8_valid=%d, reference status %d (n=%zu)", lib,
             ref, n);
}

/* Feed p[0..n) in pieces; after each piece compare with what the reference says about the
 * prefix fed so far. */
static void check_streaming(const uint8_t *p, size_t n, int ref, size_t bad,
                            const uint8_t *boundary, uint32_t seed) {
  pw__utf8 u = {0};
  size_t fed = 0;
  while (fed < n) {
    size_t k = fuzz_chunk(&seed);
    if (k > n - fed) k = n - fed;
    if ((seed & 0xF) == 0) k = 0; /* empty pieces must change nothing */
    int r = pw__utf8_feed(&u, p + fed, k);
    fed += k;
    int invalid_so_far = ref == REF_UTF8_INVALID && bad < fed;
    FUZZ_CHECK((r != 0) == invalid_so_far,
               "feed returned %d after %zu bytes; reference: first bad byte at %zu (status %d)", r,
               fed, ref == REF_UTF8_INVALID ? bad : (size_t)-1, ref);
    int complete = !invalid_so_far && boundary[fed];
    FUZZ_CHECK(pw__utf8_complete(&u) == complete, "complete=%d after %zu bytes, expected %d",
               pw__utf8_complete(&u), fed, complete);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 4 || size > (1u << 16)) return 0;
  uint32_t seed = fuzz_load32(data);
  /* A heap copy of exactly the text: an over-read past its end is an ASan report. */
  size_t n = size - 4;
  uint8_t *p = malloc(n ? n : 1);
  uint8_t *boundary = malloc(n + 1);
  if (!p || !boundary) abort();
  memcpy(p, data + 4, n);
  size_t bad = 0;
  int ref = ref_utf8_scan(p, n, &bad, boundary);
  check_whole(p, n, ref);
  check_streaming(p, n, ref, bad, boundary, seed);
  free(p);
  free(boundary);
  return 0;
}
