/* One event loop and the thread that runs it: listener, timers, the flush of dirty
 * connections after each turn, and the stop sequence. Everything here is loop-thread-only
 * unless a field says otherwise. */
#ifndef PW_LOOP_H
#define PW_LOOP_H

#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>

#include "accept.h"
#include "batch.h"
#include "conn.h"
#include "events.h"
#include "inbox.h"
#include "slots.h"
#include "stream.h"
#include "topic.h"
#include "util.h"

/* Counters: written on the loop thread (or, for `rejected`, by producers), read by any
 * thread through pw_server_stats. One list, so the struct and the snapshot cannot drift. */
/* clang-format off */
#define PW__COUNTERS(X) \
  X(connections_total) \
  X(messages_queued) \
  X(messages_sent) \
  X(bytes_sent) \
  X(dropped_new) \
  X(dropped_oldest) \
  X(dropped_closed) \
  X(slow_closed) \
  X(rejected) \
  X(wakeups) \
  X(commands) \
  X(max_batch) \
  X(queued_bytes) \
  X(subscriptions_refused) \
  X(reads_paused_sendq)
/* clang-format on */

typedef struct pw__loop_stats {
#define PW__COUNTER_FIELD(name) _Atomic uint64_t name;
  PW__COUNTERS(PW__COUNTER_FIELD)
#undef PW__COUNTER_FIELD
} pw__loop_stats;

static inline void pw__stat_add(_Atomic uint64_t *c, uint64_t n) {
  if (n) atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}
static inline void pw__gauge_add(_Atomic uint64_t *c, int64_t delta) {
  if (delta) atomic_fetch_add_explicit(c, (uint64_t)delta, memory_order_relaxed); /* wraps */
}

#define PW__READ_BUF_SIZE (64 * 1024)
/* Commands one wakeup may drain before the loop goes back to accepts, reads and timers: a
 * producer flood must not starve handshakes (see ../shared/DESIGN.md on uWS and ws). */
#define PW__DRAIN_BATCH 8192
/* ... and at most this much work (queue appends: a publish to 1,000 subscribers is 1,000),
 * so one turn stays bounded whatever the fan-out. The bound is also the batch each socket's
 * writev gets: at 65,536 a publish to 10,000 subscribers left ~6 frames per writev (0.8 M
 * msg/s); at 1 M (~10 ms of appends here) it is ~100 (see docs/benchmarks.md). */
#define PW__DRAIN_WORK (1 << 20)

/* The stop sequence of one loop (see loop.c, "stop"). */
enum pw__stop_phase {
  PW__STOP_NONE,    /* running */
  PW__STOP_INBOX,   /* door closed: what producers had queued is drained into send queues */
  PW__STOP_FLUSH,   /* inbox empty: each client gets its 1001 once its queue is written */
  PW__STOP_CLOSING, /* every client has its 1001 (or was dropped); close handshakes end it */
};
#define PW__STOP_REASON "server shutting down"

typedef struct pw__list_head {
  pw__conn *first, *last;
  uint32_t count;
} pw__list_head;

/* Connections marked for the flush after this turn (corking, loop.c). */
typedef struct pw__corking {
  uv_check_t check; /* after each turn's I/O callbacks: write every dirty connection */
  pw__conn **conns;
  size_t n, cap;
} pw__corking;

/* The stop sequence (loop.c, "stop"). */
typedef struct pw__stopping {
  uv_timer_t timer;   /* ends the drain after options.drain_timeout_ms */
  int phase;          /* enum pw__stop_phase */
  int stopping;       /* begin_stop ran */
  int handles_closed; /* the loop's own handles are closing: it is about to end */
} pw__stopping;

typedef struct pw__loop {
  struct pw_server *srv;
  unsigned index;
  uv_loop_t uv;
  uint64_t now_ms;        /* cached uv_now */
  uint8_t *rbuf;          /* the shared read buffer (conn.c) */
  pw__slots slots;        /* connection ids (slots.h) */
  uint32_t nconns;        /* accepted and not yet freed */
  uv_timer_t tick;        /* timeouts: handshake, ping/idle, close */
  pw__list_head lists[4]; /* indexed by enum pw__list, each in time order */
  pw__corking flush;      /* dirty connections */
  pw__stopping stop;
  pw__accept accept;   /* listeners, descriptor shedding (accept.h) */
  pw__door door;       /* the only way in from other threads, and the stop request */
  pw__batch batch;     /* publishes drained together (batch.h) */
  pw__streams streams; /* history topics: holes to repair (stream.h) */
  pw__topics topics;   /* this loop's subscriptions and fan-out gauges (topic.h) */
  pw__paused paused;   /* clients PW_EVQ_PAUSE stopped reading (events.h) */
  pw__ratelog tls_failures, bad_responses; /* logged rarely (conn.c TLS glue, http.c) */
  pw__conn *closing_conn; /* the connection whose on_close runs now (conn.c), or NULL */
  pw__loop_stats stats;
} pw__loop;

int pw__loop_init(pw__loop *l, struct pw_server *srv, unsigned index);
/* Bind and listen (accept.h), then start the loop's timers. The bound port or a code. */
int pw__loop_listen(pw__loop *l, const char *addr, int port, int reuseport, int tls);
/* Run until stopped, then close every handle and return. */
void pw__loop_run(pw__loop *l);
void pw__loop_destroy(pw__loop *l);
/* Ask the loop to stop (any thread): closes its door at once (pw__door_close). Idempotent. */
void pw__loop_request_stop(pw__loop *l);

void pw__list_push(pw__loop *l, pw__conn *c, int list);
void pw__list_remove(pw__loop *l, pw__conn *c);
void pw__mark_dirty(pw__loop *l, pw__conn *c);
/* conn.c: an open connection's queue is written. During the stop's flush phase the client
 * gets its 1001 now, behind every message it was sent. */
void pw__loop_queue_drained(pw__loop *l, pw__conn *c);
/* A connection's memory is gone: the loop may finish stopping. */
void pw__loop_conn_freed(pw__loop *l);
/* The loop this thread runs, or NULL. */
pw__loop *pw__current_loop(void);

#endif
