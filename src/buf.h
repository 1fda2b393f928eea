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

/* What a buffer holds. The send queue, the policies and the statistics ask this, never a
 * combination of other fields. */
enum pw__buf_kind {
  PW__BUF_FRAME,   /* one frame: header + a copy of the payload, contiguous (data or control) */
  PW__BUF_WRAPPED, /* one data frame over the caller's memory (pw_buf_wrap): two iovecs */
  PW__BUF_RAW,     /* wire bytes that carry no message (an HTTP response) */
  PW__BUF_CORK,    /* loop-owned: small messages copied together at a queue's tail (conn.c);
                      grows in place while it is the tail, so it is never shared */
  PW__BUF_BATCH,   /* several whole frames in one buffer, shared by many queues (a publish
                      batch, or its compressed variant: batch.c, pmd.c) */
};

/* pw_buf_ref / pw_buf_unref are the public calls (pushwire.h). */
struct pw_buf {
  _Atomic uint32_t refs;
  uint8_t hdr_len; /* frame header bytes just before payload (copied) or in hdr_space */
  uint8_t opcode;  /* PW_OP_* of a FRAME or WRAPPED buffer, 0 for the other kinds */
  uint8_t kind;    /* enum pw__buf_kind */
  const uint8_t *payload;
  size_t payload_len;
  pw__free_fn free_fn; /* NULL for copied buffers */
  void *free_ctx;
  uint32_t cork_cap;     /* CORK: bytes of data[] allocated */
  uint32_t msgs;         /* CORK, BATCH: the messages in it */
  uint8_t hdr_space[10]; /* must stay right before data[]: see the layout note */
  uint8_t data[];
};

/* A frame (opcode, FIN set) with a copy of the payload. NULL on out of memory. */
pw_buf *pw__buf_new_frame(int opcode, const void *payload, size_t len);
/* Raw bytes (HTTP responses), copied; bytes NULL = left for the caller to fill. */
pw_buf *pw__buf_new_raw(const void *bytes, size_t len);
/* len bytes holding nmsgs whole frames (copied; NULL bytes = left for the caller to fill). */
pw_buf *pw__buf_new_batch(const void *bytes, size_t len, unsigned nmsgs);
/* One frame of a text or binary message (not a control frame, a cork or a batch). */
static inline int pw__buf_is_message(const pw_buf *b) {
  return (b->kind == PW__BUF_FRAME || b->kind == PW__BUF_WRAPPED) &&
         (b->opcode == 0x1 || b->opcode == 0x2);
}
/* The messages a queued buffer carries: 1 for a message frame, all of them for a cork or a
 * batch, 0 for control frames and HTTP bytes (which no policy ever drops). */
static inline uint32_t pw__buf_messages(const pw_buf *b) {
  return b->kind == PW__BUF_CORK || b->kind == PW__BUF_BATCH ? b->msgs
                                                             : (uint32_t)pw__buf_is_message(b);
}
/* Total bytes on the wire. */
static inline size_t pw__buf_wire_len(const pw_buf *b) { return b->hdr_len + b->payload_len; }
/* Fill up to 2 uv_buf_t with the wire bytes from `offset` on; returns the count. */
int pw__buf_iov(const pw_buf *b, size_t offset, uv_buf_t out[2]);

#endif
