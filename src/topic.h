/* Topics of one loop: which of its connections subscribe to what, and the fan-out of one
 * shared buffer to all of them. Loop thread only.
 * Structure and why: a chained hash table of topics (average O(1) lookup, grows by doubling,
 * 100,000 topics cost ~100,000 small nodes); each topic holds a dense array of subscribers
 * (fan-out walks contiguous memory; append is O(1)); each connection holds a small array of
 * its subscriptions, and both sides store each other's index, so unsubscribe and close are
 * O(1) swap-removes at any size, never a scan of 100,000 subscribers. */
#ifndef PW_TOPIC_H
#define PW_TOPIC_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define PW__TOPIC_MAX 255

struct pw__conn;
struct pw__loop;
struct pw__rtopic;

typedef struct pw__topic_sub {
  struct pw__conn *conn;
  uint32_t conn_index; /* where this topic sits in conn->subs */
  uint64_t floor;      /* history topics: skip offsets up to this (a subscriber that is ahead
                          of this loop, stream.h); 0 for everyone else */
} pw__topic_sub;

typedef struct pw__topic {
  struct pw__topic *next; /* hash chain */
  uint64_t hash;
  pw__topic_sub *subs;
  uint32_t nsubs, cap;
  struct pw__rtopic *rt; /* the server's entry (registry.h), held while nsubs > 0 */
  size_t len;
  char name[]; /* NUL-terminated */
} pw__topic;

typedef struct pw__conn_sub {
  pw__topic *topic;
  uint32_t topic_index; /* where this connection sits in topic->subs */
} pw__conn_sub;

typedef struct pw__topics {
  pw__topic **buckets;
  size_t nbuckets, count;
  /* Gauges of this loop's subscriptions and topics (the loop writes, producers read): a
   * publish is charged to the door's budget for the fan-out it will cause (publish.c). */
  _Atomic uint64_t nsubscriptions, ntopics;
} pw__topics;

/* FNV-1a: short keys, no setup. The registry hashes names the same way. */
static inline uint64_t pw__topic_hash(const char *s, size_t len) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
  return h;
}

void pw__topics_destroy(pw__topics *t);
/* 0, or PW_ENOMEM / PW_EAGAIN (max_subscriptions), counted in subscriptions_refused.
 * Subscribing twice is a no-op. */
int pw__topic_subscribe(struct pw__loop *l, struct pw__conn *c, const char *name, size_t len);
/* The same, the new subscriber skipping offsets up to `floor` (history topics, stream.h). */
int pw__topic_subscribe_floor(struct pw__loop *l, struct pw__conn *c, const char *name, size_t len,
                              uint64_t floor);
/* This loop's topic of that name, or NULL. */
pw__topic *pw__topic_find(struct pw__loop *l, const char *name, size_t len);
/* 0, or PW_ENOTFOUND when c was not subscribed. */
int pw__topic_unsubscribe(struct pw__loop *l, struct pw__conn *c, const char *name, size_t len);
/* Drop every subscription of c (it is closing). */
void pw__topic_unsubscribe_all(struct pw__loop *l, struct pw__conn *c);
/* Queue buf to every open subscriber of the topic; returns how many took it. buf is one
 * frame (msgs NULL) or a publish batch made of the frames msgs[0..nmsgs): subscribers with
 * permessage-deflate get those compressed (pmd.h), the others buf itself. `offset`: a history
 * topic's offset of the first frame (the others follow it), for subscribers with a floor;
 * 0 for other topics. */
size_t pw__topic_publish(struct pw__loop *l, const char *name, size_t len, pw_buf *buf,
                         pw_buf *const *msgs, unsigned nmsgs, uint64_t offset);
/* Subscribers of a topic on this loop. */
size_t pw__topic_count(struct pw__loop *l, const char *name, size_t len);

#endif
