/* Publish batches: consecutive publishes to one topic drained from a loop's door, fanned out
 * together (batch.c). Loop thread only; empty outside a drain. */
#ifndef PW_BATCH_H
#define PW_BATCH_H

#include <stddef.h>

/* At most this many publishes (and PW__BATCH_MAX_BYTES) go into one batch. */
#define PW__BATCH_MAX_MSGS 64
#define PW__BATCH_MAX_BYTES (16 * 1024)

struct pw__loop;
struct pw__pub;

typedef struct pw__batch {
  struct pw__pub *pubs[PW__BATCH_MAX_MSGS];
  unsigned n;
  size_t bytes; /* wire bytes of the publishes in it */
} pw__batch;

/* Add a drained publish (its reference moves in); a batch it cannot join is fanned out
 * first. Returns the work done (queue appends). */
size_t pw__batch_add(struct pw__loop *l, struct pw__pub *p);
/* Fan out what waits in the batch (before any other command, and at the end of a drain, so
 * inbox order is kept); returns the work done. */
size_t pw__batch_flush(struct pw__loop *l);
/* Fan out one publish now, outside any batch (a publish made on the loop thread); its
 * reference is dropped. Returns the work done. */
size_t pw__batch_fan_out(struct pw__loop *l, struct pw__pub *p);

#endif
