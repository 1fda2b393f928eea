/* Topic history (pw_topic_history): the kept frames of a topic, its stream position (epoch,
 * offset), the patterns that choose which topics keep it, the global byte cap and the sweep
 * of what is too old. Any thread: each topic's history has its own lock; the list of all
 * histories (least recently published first) has one more.
 * Design notes:
 * - A history hangs on the topic's registry entry (registry.h), which it keeps alive: a topic
 *   with history exists while it has messages or its meta (epoch and offset) is still kept,
 *   whether or not anyone is subscribed. Only the sweep frees one.
 * - Order: a publish takes the next offset and pushes its command to every loop's door while
 *   holding the topic's lock, so each loop's door holds the topic's publishes in offset order
 *   (doors are FIFO). The budget for those pushes is reserved on every door before the lock is
 *   taken (PW_BLOCK may wait there), so no one ever waits while holding a topic's lock.
 * - A push that finds a door's ring full (its budget was reserved, the cells ran out) is not
 *   an error: the message has its offset and is in the ring; that loop is marked as having
 *   missed it and woken, and repairs the hole from the ring (stream.c).
 * - The ring holds the frames themselves (the pw_buf the fan-out sends), so replaying is
 *   queueing references; a loop's command carries its own reference too, so eviction never
 *   takes a frame from a loop that has its command.
 * - Lock order: a registry shard, then a topic's history, then the list of all histories. */
#ifndef PW_HISTORY_H
#define PW_HISTORY_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "buf.h"
#include "pushwire.h"

struct pw__rtopic;

typedef struct pw__hentry {
  uint64_t offset;
  uint64_t time_ms; /* when it was published (uv_hrtime in ms) */
  pw_buf *frame;    /* one reference, the ring's */
} pw__hentry;

/* One pw_topic_history pattern and its options, defaults filled in. */
typedef struct pw__hpattern {
  struct pw__hpattern *_Atomic next;
  pw_history_options opt;
  size_t len; /* of the prefix when `prefix`, else of the whole name */
  int prefix; /* the pattern ended in '*' */
  char text[];
} pw__hpattern;

/* What one loop knows of a topic's stream, written only by that loop (one cache line each,
 * since every loop writes its own on every publish of the topic). */
typedef struct pw__hloop {
  _Alignas(64) uint64_t delivered; /* the last offset this loop has fanned out (or skipped) */
  _Atomic int missed;              /* a push to this loop's door failed: repair from the ring */
} pw__hloop;

struct pw__histories;

typedef struct pw__history {
  uv_mutex_t lock; /* the fields below, but loops[].delivered (its loop's) */
  struct pw__histories *all;
  const pw__hpattern *cfg;
  struct pw__rtopic *topic; /* the registry entry it hangs on */
  char epoch[PW_EPOCH_LEN + 1];
  uint64_t top; /* the last offset given; 0 before the first publish */
  pw__hentry *ring;
  uint32_t cap, head, count;       /* the kept messages: offsets top-count+1 .. top */
  _Atomic uint32_t kept;           /* count, readable under the list's lock (the cap, sweep) */
  size_t bytes;                    /* wire bytes of the kept frames */
  _Atomic uint64_t last_ms;        /* the last publish (or when it began), to PW__LRU_SLACK_MS */
  struct pw__history *prev, *next; /* in the list of all, oldest publish first */
  unsigned nloops;
  pw__hloop *loops; /* nloops of them */
} pw__history;

/* The server's histories: patterns, the list, the cap, the counters. */
typedef struct pw__histories {
  uv_mutex_t lock;                /* the list and the patterns */
  pw__hpattern *_Atomic patterns; /* append-only: read without the lock (history.c) */
  _Atomic int any;                /* a pattern exists: otherwise no topic is even looked up */
  pw__history *oldest, *newest;
  size_t cap;             /* options.history_memory */
  _Atomic size_t bytes;   /* kept wire bytes over every topic */
  uint64_t next_sweep_ms; /* loop 0 only */
  _Atomic uint64_t topics, evictions, recovered, replayed, repaired, resets;
  _Atomic uint64_t not_recovered[PW_RECOVERY_NO_HISTORY + 1]; /* by reason */
} pw__histories;

void pw__histories_init(pw__histories *hs, size_t cap);
/* After every loop and task has ended: free every history (before the registry goes), then
 * the patterns. */
void pw__histories_free_all(pw_server *srv);
void pw__histories_destroy(pw__histories *hs);
/* The pattern that gives `name` history, or NULL. Any thread. */
const pw__hpattern *pw__history_pattern(pw__histories *hs, const char *name, size_t len);

/* Shard lock of t held: t's history, made (a new epoch, offset 0) if t has none and a pattern
 * matches; NULL if none matches (or no memory). */
pw__history *pw__history_get(pw_server *srv, struct pw__rtopic *t, int create);
/* Free h (the sweep, or the end): its frames go. Shard lock of its topic held. */
void pw__history_free(pw_server *srv, pw__history *h);

/* ---- under h->lock ----------------------------------------------------------------------- */
/* Append the frame of offset h->top + 1 (taking `frame`'s reference) and make it the top;
 * what no longer fits the topic's limits leaves. 0, or PW_ENOMEM (nothing changed). */
int pw__history_append(pw__history *h, pw_buf *frame, uint64_t now_ms);
/* Messages older than the topic's ttl leave. */
void pw__history_expire(pw__history *h, uint64_t now_ms);
/* The first offset still kept (top + 1 when none is). */
uint64_t pw__history_first(const pw__history *h);
/* Copy references of the kept frames with offsets in [from, to] into out (up to max): the
 * count. out[i] is the frame of offset max(from, first) + i. */
size_t pw__history_copy(const pw__history *h, uint64_t from, uint64_t to, pw_buf **out, size_t max);
/* The wire bytes of the kept frames with offsets in [from, to]. */
size_t pw__history_span_bytes(const pw__history *h, uint64_t from, uint64_t to);
void pw__history_position(const pw__history *h, pw_position *pos);

/* ---- the list of all, the cap, the sweep (not under any history lock) ------------------------ */
/* h was just published to (its lock not held): it becomes the newest, then the least recently
 * published topics lose messages until the cap holds again. */
void pw__histories_published(pw_server *srv, pw__history *h);
/* Loop 0's tick: messages past their ttl leave, and histories with no messages, no
 * subscriber and their meta ttl past are freed. At most once a second. */
void pw__histories_sweep(pw_server *srv, uint64_t now_ms);

/* Milliseconds on the clock history uses (monotonic). */
uint64_t pw__history_now_ms(void);

#endif
