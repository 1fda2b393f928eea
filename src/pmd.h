/* permessage-deflate glue: what a connection asks of the pure RFC 7692 module (deflate.h),
 * with options.deflate as its config. It makes buffers and never queues: conn.c is the only
 * way into a queue, and asks here when the connection negotiated the extension. Loop thread
 * only.
 * Design notes:
 * - Negotiated at the upgrade (http.c): the connection keeps the 5-byte agreement and a flag;
 *   its inflater and deflater are created on the first compressed message (none for a client
 *   that never sends or gets one) and freed when the connection stops reading (ws.c).
 * - Sending: a data frame of at least options.deflate.threshold payload bytes is compressed
 *   when it is QUEUED, on the loop thread, so a context-takeover deflater sees messages in
 *   queue order; producers never compress.
 * - Fan-out: a publish (or a batch of them, see publish.c) reaches subscribers that use
 *   server_no_context_takeover as ONE compressed buffer per distinct server window, made on
 *   the first such subscriber and shared by reference (uWebSockets' shared compressor).
 *   Subscribers with context takeover compress with their own deflater: never the shared
 *   bytes, so deflate.h's reset rule never arises. Clients without the extension get the
 *   plain buffer, as before. */
#ifndef PW_PMD_H
#define PW_PMD_H

#include "conn.h"
#include "deflate.h"

/* The frame c (which negotiated the extension) should get for message b, taking b's
 * reference: a compressed frame when it is big enough and pays, else b itself. *own says it
 * went through c's own context-takeover deflater (see pw__pmd_refused). */
pw_buf *pw__pmd_frame_for(pw__conn *c, pw_buf *b, int *own);
/* c's queue refused a buffer made by its own deflater (PW_SLOW_DROP_NEW): the client will
 * never inflate it, so the deflater's history must forget it too. */
void pw__pmd_refused(pw__conn *c);

/* One fan-out: the plain buffer (a frame, or a publish batch's raw bytes) and the frames it
 * is made of, plus what was compressed for the subscribers seen so far. Zero-initialise
 * through pw__pmd_share_init; pw__pmd_share_release at the end. */
typedef struct pw__pmd_share {
  pw_buf *plain;
  pw_buf *const *msgs; /* the frames of `plain` (itself when it is one frame) */
  unsigned nmsgs;
  pw_buf *by_bits[16]; /* the shared no-context-takeover variant per server window bits */
} pw__pmd_share;
void pw__pmd_share_init(pw__pmd_share *s, pw_buf *plain, pw_buf *const *msgs, unsigned nmsgs);
void pw__pmd_share_release(pw__pmd_share *s);
/* What subscriber c (which negotiated the extension) gets of a fan-out, as a reference of
 * its own: the shared compressed variant for its window, or its own compression (*own set),
 * or the plain buffer when nothing was worth compressing. */
pw_buf *pw__pmd_shared_for(pw__conn *c, pw__pmd_share *s, int *own);

/* Free c's codec state (the connection reads and compresses no more). */
void pw__pmd_free(pw__conn *c);

#endif
