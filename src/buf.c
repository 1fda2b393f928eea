/* pw_buf: refcounted message with its frame header encoded once (see buf.h for the layout). */
#include "buf.h"

#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "pushwire.h"

_Static_assert(offsetof(pw_buf, data) == offsetof(pw_buf, hdr_space) + 10,
               "header space must end where the payload starts");

static pw_buf *alloc_copy(size_t len) {
  pw_buf *b = malloc(sizeof *b + len);
  if (!b) return NULL;
  atomic_init(&b->refs, 1);
  b->hdr_len = 0;
  b->opcode = 0;
  b->payload = b->data;
  b->payload_len = len;
  b->free_fn = NULL;
  b->free_ctx = NULL;
  b->kind = PW__BUF_RAW;
  b->cork_cap = 0;
  b->msgs = 0;
  return b;
}

/* Encode the frame header once, right-aligned against the payload (see buf.h). */
static void set_header(pw_buf *b, int opcode, size_t len) {
  uint8_t hdr[10];
  size_t n = pw__frame_encode_header(hdr, 1, opcode, len);
  memcpy(b->hdr_space + sizeof b->hdr_space - n, hdr, n);
  b->hdr_len = (uint8_t)n;
  b->opcode = (uint8_t)opcode;
  b->kind = PW__BUF_FRAME;
}

pw_buf *pw__buf_new_frame(int opcode, const void *payload, size_t len) {
  pw_buf *b = alloc_copy(len);
  if (!b) return NULL;
  set_header(b, opcode, len);
  if (len) memcpy(b->data, payload, len);
  return b;
}

pw_buf *pw__buf_new_raw(const void *bytes, size_t len) {
  pw_buf *b = alloc_copy(len);
  if (b && bytes && len) memcpy(b->data, bytes, len);
  return b;
}

pw_buf *pw__buf_new_batch(const void *bytes, size_t len, unsigned nmsgs) {
  pw_buf *b = pw__buf_new_raw(bytes, len);
  if (b) b->kind = PW__BUF_BATCH, b->msgs = nmsgs;
  return b;
}

void pw_buf_ref(pw_buf *b) {
  if (b) atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
}

void pw_buf_unref(pw_buf *b) {
  if (!b || atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1) return;
  if (b->kind == PW__BUF_WRAPPED && b->free_fn) b->free_fn((void *)b->payload, b->free_ctx);
  free(b);
}

/* Header bytes start hdr_len bytes before the payload when copied (contiguous), else they
 * sit right-aligned in hdr_space. */
static const uint8_t *hdr_start(const pw_buf *b) {
  return b->hdr_space + sizeof b->hdr_space - b->hdr_len;
}

int pw__buf_iov(const pw_buf *b, size_t offset, uv_buf_t out[2]) {
  int n = 0;
  if (b->kind != PW__BUF_WRAPPED) { /* contiguous: one iovec */
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

/* ---- the public face ---------------------------------------------------------------------- */
static int message_opcode(int flags) {
  if (flags & ~PW_BINARY) return -1;
  return (flags & PW_BINARY) ? PW_OP_BINARY : PW_OP_TEXT;
}

pw_buf *pw_buf_new(const void *data, size_t len, int flags) {
  int opcode = message_opcode(flags);
  if (opcode < 0 || (len && !data) || len > UINT32_MAX - PW_FRAME_MAX_HEADER) return NULL;
  return pw__buf_new_frame(opcode, data, len);
}

pw_buf *pw_buf_wrap(const void *data, size_t len, void (*free_fn)(void *data, void *ctx), void *ctx,
                    int flags) {
  int opcode = message_opcode(flags);
  if (opcode < 0 || (len && !data) || len > UINT32_MAX - PW_FRAME_MAX_HEADER) return NULL;
  pw_buf *b = alloc_copy(0);
  if (!b) return NULL;
  set_header(b, opcode, len);
  b->payload = data;
  b->payload_len = len;
  b->free_fn = free_fn;
  b->free_ctx = ctx;
  b->kind = PW__BUF_WRAPPED;
  return b;
}

size_t pw_buf_len(const pw_buf *b) { return b ? b->payload_len : 0; }
const void *pw_buf_data(const pw_buf *b) { return b ? b->payload : NULL; }
