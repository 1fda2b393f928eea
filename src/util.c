/* Small helpers: see util.h. */
#include "util.h"

#include <stdlib.h>

int pw__grow(void **arr, size_t *cap, size_t need, size_t elem, size_t first) {
  if (need <= *cap) return 0;
  size_t n = *cap ? *cap : first;
  while (n < need) {
    if (n > SIZE_MAX / 2) return -1;
    n *= 2;
  }
  if (n > SIZE_MAX / elem) return -1;
  void *a = realloc(*arr, n * elem);
  if (!a) return -1;
  *arr = a;
  *cap = n;
  return 0;
}

int pw__grow32(void **arr, uint32_t *cap, size_t need, size_t elem, size_t first) {
  size_t c = *cap;
  if (need > UINT32_MAX || pw__grow(arr, &c, need, elem, first) != 0) return -1;
  *cap = c > UINT32_MAX ? UINT32_MAX : (uint32_t)c;
  return 0;
}

int pw__ratelog_due(pw__ratelog *r, uint64_t now_ms, uint64_t n, uint64_t *count) {
  r->unreported += n;
  if (r->unreported == 0 || now_ms < r->next_ms) return 0;
  *count = r->unreported;
  r->unreported = 0;
  r->next_ms = now_ms + PW__RATELOG_MS;
  return 1;
}
