/* Publish batches: see batch.h. Loop thread only.
 * Design notes: publishes to the same topic that follow each other in the door are fanned
 * out together: their frames are copied once into one buffer (a batch, counted as that many
 * messages) and every subscriber's queue gets that one buffer, so each socket writes one
 * contiguous run (one iovec) instead of one iovec and one queue entry per frame, as
 * bare_writev does (the kernel's per-iovec cost dominated: docs/benchmarks.md). The batch
 * ends at any other command, so every connection still sees inbox order: a send or a publish
 * to another topic drained between two publishes is never overtaken. Slow-consumer policies
 * act on whole batches (a dropped batch drops its frames, the stream stays frame-aligned),
 * which is why a batch is at most a quarter of max_queued_bytes. */
#include "batch.h"

#include <string.h>

#include "loop.h"
#include "publish.h"
#include "server.h"

/* Deliver to this loop's subscribers, then let go of the publish. */
size_t pw__batch_fan_out(pw__loop *l, pw__pub *p) {
  size_t n = pw__topic_publish(l, p->topic, p->len, p->buf, NULL, 0, p->offset);
  pw__pub_unref(p);
  return n;
}

static int same_topic(const pw__pub *a, const pw__pub *b) {
  return a->len == b->len && memcmp(a->topic, b->topic, a->len) == 0;
}

static size_t batch_cap(const pw__loop *l) {
  size_t quarter = l->srv->opt.max_queued_bytes / 4;
  return quarter < PW__BATCH_MAX_BYTES ? quarter : PW__BATCH_MAX_BYTES;
}

/* One buffer with the wire bytes of every publish of the batch, or NULL (no memory). */
static pw_buf *batch_buffer(pw__loop *l) {
  pw_buf *b = pw__buf_new_batch(NULL, l->batch.bytes, l->batch.n);
  if (!b) return NULL;
  uint8_t *out = b->data;
  for (unsigned i = 0; i < l->batch.n; i++) {
    uv_buf_t iov[2];
    int n = pw__buf_iov(l->batch.pubs[i]->buf, 0, iov);
    for (int k = 0; k < n; k++) memcpy(out, iov[k].base, iov[k].len), out += iov[k].len;
  }
  return b;
}

size_t pw__batch_flush(pw__loop *l) {
  if (l->batch.n == 0) return 0;
  size_t work = 0;
  pw__pub *first = l->batch.n ? l->batch.pubs[0] : NULL;
  pw_buf *b = NULL;
  if (l->batch.n > 1 && pw__topic_count(l, first->topic, first->len) > 0) b = batch_buffer(l);
  if (b) {
    /* The frames too: a subscriber with permessage-deflate gets them compressed, as one
     * batch buffer per distinct window shared by all no-context-takeover subscribers, or
     * its own (context takeover): a compressed variant per batch, not per message, so
     * those sockets keep the batch's single write (pmd.c). */
    pw_buf *msgs[PW__BATCH_MAX_MSGS];
    for (unsigned i = 0; i < l->batch.n; i++) msgs[i] = l->batch.pubs[i]->buf;
    work = pw__topic_publish(l, first->topic, first->len, b, msgs, l->batch.n, first->offset);
    pw_buf_unref(b);
    for (unsigned i = 0; i < l->batch.n; i++) pw__pub_unref(l->batch.pubs[i]);
  } else { /* one publish, nobody subscribed, or no memory for the copy */
    for (unsigned i = 0; i < l->batch.n; i++) work += pw__batch_fan_out(l, l->batch.pubs[i]);
  }
  l->batch.n = 0;
  l->batch.bytes = 0;
  return work;
}

size_t pw__batch_add(pw__loop *l, pw__pub *p) {
  size_t wire = pw__buf_wire_len(p->buf), work = 0;
  if (l->batch.n && (!same_topic(l->batch.pubs[0], p) || l->batch.n == PW__BATCH_MAX_MSGS ||
                     l->batch.bytes + wire > batch_cap(l)))
    work = pw__batch_flush(l);
  l->batch.pubs[l->batch.n++] = p;
  l->batch.bytes += wire;
  return work;
}
