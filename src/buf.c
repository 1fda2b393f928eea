/* pw_buf: refcounted message with its frame header encoded once (see buf.h for the layout). */
#include "buf.h"

#include <stdlib.h>
#include <string.h>

#include "frame.h"

_Static_assert(offsetof(pw__buf, data) == offsetof(pw__buf, hdr_space) + 10,
               "header space must end where the payload starts");

static pw__buf *alloc_copy(size_t len) {
  pw__buf *b = malloc(sizeof *b + len);
  if (!b) return NULL;
  atomic_init(&b->refs, 1);
  b->hdr_len = 0;
  b->opcode = 0;
  b->payload = b->data;
  b->payload_len = len;
  b->free_fn = NULL;
  b->free_ctx = NULL;
  return b;
}

pw__buf *pw__buf_new_frame(int opcode, const void *payload, size_t len) {
  pw__buf *b = alloc_copy(len);
  if (!b) return NULL;
  uint8_t hdr[10];
  size_t n = pw__frame_encode_header(hdr, 1, opcode, len);
  memcpy(b->hdr_space + sizeof b->hdr_space - n, hdr, n);
  b->hdr_len = (uint8_t)n;
  b->opcode = (uint8_t)opcode;
  if (len) memcpy(b->data, payload, len);
  return b;
}

pw__buf *pw__buf_new_raw(const void *bytes, size_t len) {
  pw__buf *b = alloc_copy(len);
  if (b && bytes && len) memcpy(b->data, bytes, len);
  return b;
}

void pw__buf_ref(pw__buf *b) { atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed); }

void pw__buf_unref(pw__buf *b) {
  if (!b || atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1) return;
  if (b->free_fn) b->free_fn((void *)b->payload, b->free_ctx);
  free(b);
}

/* Header bytes start hdr_len bytes before the payload when copied (contiguous), else they
 * sit right-aligned in hdr_space. */
static const uint8_t *hdr_start(const pw__buf *b) {
  return b->hdr_space + sizeof b->hdr_space - b->hdr_len;
}

int pw__buf_iov(const pw__buf *b, size_t offset, uv_buf_t out[2]) {
  int n = 0;
  if (b->payload == b->data) { /* contiguous: one iovec */
    const uint8_t *start = hdr_start(b) + offset;
    out[n++] = uv_buf_init((char *)start, (unsigned)(pw__buf_wire_len(b) - offset));
    return n;
  }
  if (offset < b->hdr_len) {
    out[n++] = uv_buf_init((char *)hdr_start(b) + offset, (unsigned)(b->hdr_len - offset));
    offset = 0;
  } else {
    offset -= b->hdr_len;
  }
  if (b->payload_len > offset)
    out[n++] = uv_buf_init((char *)b->payload + offset, (unsigned)(b->payload_len - offset));
  return n;
}
