/* Small helpers every room uses: growing an array, and rate-limited reports. Pure: no I/O,
 * no libuv, so the pure engines may use them too. */
#ifndef PW_UTIL_H
#define PW_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Make room for `need` elements of `elem` bytes in *arr, whose capacity is *cap, doubling it
 * (from `first` when empty). 0, or -1 (out of memory or overflow: *arr and *cap unchanged). */
int pw__grow(void **arr, size_t *cap, size_t need, size_t elem, size_t first);
/* The same for a 32-bit capacity (kept small in structs there are many of). */
int pw__grow32(void **arr, uint32_t *cap, size_t need, size_t elem, size_t first);

/* Something that may happen often (refused connections, TLS failures, bad handler answers)
 * is logged at most once per PW__RATELOG_MS, with how many happened since the last line, so a
 * flood of them cannot become a flood of log lines. */
#define PW__RATELOG_MS 10000
typedef struct pw__ratelog {
  uint64_t unreported; /* events since the last line */
  uint64_t next_ms;    /* no line before this time */
} pw__ratelog;
/* Count n events at now_ms. 1 when a line is due: *count is then the number to report (and
 * is reset, the next line not due for PW__RATELOG_MS); 0 when it is not. */
int pw__ratelog_due(pw__ratelog *r, uint64_t now_ms, uint64_t n, uint64_t *count);

#endif
