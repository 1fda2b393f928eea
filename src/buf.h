/* pw_buf: an immutable, reference-counted message whose bytes on the wire (frame header +
 * payload, or raw HTTP bytes) are built once, so the same buffer can be queued to many
 * connections. Owner: whoever holds a reference; the last pw_buf_unref frees, on any thread.
 * Layout of a copied buffer: [struct][header right-aligned in hdr_space][payload]: header and
 * payload are contiguous, one iovec. A wrapped buffer points at caller memory (two iovecs). */
#ifndef PW_BUF_H
#define PW_BUF_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "pushwire.h"

typedef void (*pw__free_fn)(void *data, void *ctx);

/* pw_buf_ref / pw_buf_unref are the public calls (pushwire.h). */
struct pw_buf {
  _Atomic uint32_t refs;
  uint8_t hdr_len;      /* frame header bytes just before payload (copied) or in hdr_space */
  uint8_t opcode;       /* PW_OP_* of the frame, 0 for raw bytes */
  uint8_t wrapped;      /* payload is caller memory (pw_buf_wrap), not data[] */
  const uint8_t *payload;
  size_t payload_len;
  pw__free_fn free_fn;  /* NULL for copied buffers */
  void *free_ctx;
  uint32_t cork_cap;    /* a cork (raw, loop-owned): bytes of data[] allocated; else 0 */
  uint32_t cork_msgs;   /* messages copied into a cork, or into a publish batch (raw bytes
                           shared by many queues, cork_cap 0: never extended); else 0 */
  uint8_t hdr_space[10]; /* must stay right before data[]: see the layout note */
  uint8_t data[];
};

/* A frame (opcode, FIN set) with a copy of the payload. NULL on out of memory. */
pw_buf *pw__buf_new_frame(int opcode, const void *payload, size_t len);
/* Raw bytes (HTTP responses), copied; bytes NULL = left for the caller to fill. */
pw_buf *pw__buf_new_raw(const void *bytes, size_t len);
/* Total bytes on the wire. */
static inline size_t pw__buf_wire_len(const pw_buf *b) { return b->hdr_len + b->payload_len; }
/* Fill up to 2 uv_buf_t with the wire bytes from `offset` on; returns the count. */
int pw__buf_iov(const pw_buf *b, size_t offset, uv_buf_t out[2]);

#endif
