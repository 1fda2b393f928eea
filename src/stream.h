/* A loop's side of the topics that keep history (stream.c): delivering their publishes in
 * offset order, repairing from the history what the loop missed, and subscribing a connection
 * from a position. Loop thread only, but for the repair flag.
 * Design notes (why a subscribe from a position is race-free):
 * - Each loop records, per history topic, the last offset it has fanned out (`delivered`,
 *   history.h). A loop carries out its door's commands one at a time, and the topic's
 *   publishes reach every door in offset order (history.h), so at any moment between two
 *   commands the loop's subscribers of the topic have been given exactly the offsets up to
 *   `delivered`, and the next publish the loop fans out is delivered + 1.
 * - A subscribe from (epoch, since) runs on the connection's loop, between two commands: it
 *   queues the kept frames (since, delivered] to the connection, then makes it a subscriber.
 *   The live stream on this loop goes on at delivered + 1: no gap and no duplicate at the
 *   switch, however fast other threads publish, because nothing of the topic is fanned out on
 *   this loop between the read of `delivered` and the subscription (the same thread does
 *   both), and what is published meanwhile waits in the door with offsets above `delivered`.
 * - A client ahead of this loop (since > delivered: it saw offsets on another loop or node
 *   that this loop has not fanned out yet) gets nothing replayed and a floor: the live
 *   deliveries up to `since` are skipped for it alone, then it goes on as any subscriber.
 * - What cannot be served in full (another epoch, a message after `since` already gone, more
 *   than max_recovery messages or bytes than the connection's queue takes) is not replayed at
 *   all: the connection is subscribed live and told why. Never a partial replay.
 * - A publish whose push to this loop's door failed (the ring was full) left a hole: the next
 *   publish of the topic shows it (offset > delivered + 1) and the loop fills it from the
 *   history first; if no publish follows, the publisher's wakeup sets `repair` and the loop
 *   catches up once its door is empty. What has left the window by then cannot be filled:
 *   the topic's subscribers on this loop are told (the reset frame, or a 1013 close). */
#ifndef PW_STREAM_H
#define PW_STREAM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "pushwire.h"

struct pw__loop;
struct pw__conn;
struct pw__pub;

typedef struct pw__streams {
  _Atomic int repair; /* a publisher's push to this loop failed: look for holes */
} pw__streams;

/* The loop half of a history topic's PUBLISH: in offset order, holes filled first. */
size_t pw__stream_publish(struct pw__loop *l, struct pw__pub *p);
/* After a drain that emptied the door: fill the holes publishers reported. */
void pw__stream_repair(struct pw__loop *l);
/* Subscribe c to topic from `since` (NULL or epoch "": no position). Fills *out (may be NULL).
 * 0, or pw__topic_subscribe's error (then nothing was replayed). */
int pw__stream_subscribe(struct pw__loop *l, struct pw__conn *c, const char *topic, size_t len,
                         const pw_position *since, pw_recovery *out);

#endif
