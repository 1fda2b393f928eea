/* One event loop and the thread that runs it: listener, timers, the flush of dirty
 * connections after each turn, and the stop sequence. Everything here is loop-thread-only
 * unless a field says otherwise. */
#ifndef PW_LOOP_H
#define PW_LOOP_H

#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>

#include "conn.h"
#include "inbox.h"
#include "slots.h"
#include "topic.h"

/* Counters: written on the loop thread (or, for `rejected`, by producers), read by any
 * thread through pw_server_stats. One list, so the struct and the snapshot cannot drift. */
#define PW__COUNTERS(X)                                                                    \
  X(connections_total) X(messages_queued) X(messages_sent) X(bytes_sent) X(dropped_new)    \
  X(dropped_oldest) X(dropped_closed) X(slow_closed) X(rejected) X(wakeups) X(commands)    \
  X(max_batch) X(queued_bytes) X(subscriptions_refused) X(reads_paused_sendq)

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

/* At most this many publishes (and PW__BATCH_MAX_BYTES) go into one batch (see publish.c). */
#define PW__BATCH_MAX_MSGS 64
#define PW__BATCH_MAX_BYTES (16 * 1024)

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

typedef struct pw__loop {
  struct pw_server *srv;
  unsigned index;
  uv_loop_t uv;
  uv_tcp_t listener;
  uv_tcp_t tls_listener; /* TLS connections (options.tls.cert_file); idle without TLS */
  uv_async_t wake;       /* the one door from other threads: inbox commands and stop */
  uv_timer_t tick;       /* timeouts: handshake, ping/idle, close */
  uv_check_t flusher;    /* after each turn: write every dirty connection */
  uv_timer_t drain_timer; /* stop: ends the drain after options.drain_timeout_ms */
  uint8_t *rbuf;         /* the shared read buffer */
  pw__slots slots;
  pw__list_head lists[4]; /* indexed by enum pw__list */
  pw__conn **dirty;
  size_t ndirty, dirty_cap;
  uint32_t nconns;       /* accepted and not yet freed */
  uint64_t now_ms;       /* cached uv_now */
  size_t drained_bytes;  /* inbox bytes drained, not yet taken off inbox_bytes (one atomic
                            per batch; kept off the producers' cache line) */
  int listening, stopping, handles_closed;
  int spare_fd;          /* a descriptor kept in reserve to shed connections at EMFILE */
  uint64_t refused_unreported, refused_next_log_ms; /* accept refusals, logged rate-limited */
  uint64_t tls_fail_unreported, tls_fail_next_log_ms; /* TLS handshake failures, likewise */
  uint64_t bad_http_unreported, bad_http_next_log_ms; /* invalid on_http answers (http.c) */
  int stop_phase;        /* enum pw__stop_phase: where the stop sequence is (loop.c) */
  _Atomic int stop_requested; /* any thread sets it, then wakes the loop */

  /* The door (see inbox.h). Producers count themselves in `producers` while they touch the
   * inbox and the wakeup; pw_server_stop closes the door (door_closed) and the loop, at its
   * stop, waits for that count to reach zero before it drains the inbox and, later, closes
   * the async handle, so no wakeup hits a closed handle (send.c, design notes). */
  pw__inbox inbox;
  _Atomic size_t inbox_bytes;  /* payload bytes in commands not yet drained */
  _Atomic int producers;
  _Atomic int door_closed;
  _Atomic int room_waiters;    /* PW_BLOCK senders waiting for room */
  uv_mutex_t room_lock;
  uv_cond_t room_cond;
  pw__loop_stats stats;
  pw__topics topics;
  /* Gauges of this loop's subscriptions and topics (loop writes, producers read): a publish
   * is charged to the inbox budget for the fan-out it will cause, not for one message. */
  _Atomic uint64_t nsubscriptions, ntopics;
  /* Consecutive drained publishes to one topic, fanned out together (publish.c); empty
   * outside a drain. */
  struct pw__pub *batch[PW__BATCH_MAX_MSGS];
  unsigned nbatch;
  size_t batch_bytes;
  pw_conn_id *paused;        /* clients whose reading PW_EVQ_PAUSE stopped */
  size_t npaused, paused_cap;
  pw__conn *closing_conn;    /* the connection whose on_close runs now (conn.c), or NULL */
} pw__loop;

int pw__loop_init(pw__loop *l, struct pw_server *srv, unsigned index);
/* Bind and listen (caller's thread, before the loop runs), plain or TLS; with reuseport the
 * port may be shared with the server's other loops. Returns the bound port or a negative
 * code. */
int pw__loop_listen(pw__loop *l, const char *addr, int port, int reuseport, int tls);
/* Run until stopped, then close every handle and return. */
void pw__loop_run(pw__loop *l);
void pw__loop_destroy(pw__loop *l);
/* Ask the loop to stop (any thread): closes its door at once (pw__door_close). */
void pw__loop_request_stop(pw__loop *l);

void pw__list_push(pw__loop *l, pw__conn *c, int list);
void pw__list_remove(pw__loop *l, pw__conn *c);
void pw__mark_dirty(pw__loop *l, pw__conn *c);
/* A connection's memory is gone: the loop may finish stopping. */
void pw__loop_conn_freed(pw__loop *l);
/* send.c, the loop side of the inbox: carry out one command; wake blocked producers. */
size_t pw__dispatch(pw__loop *l, const pw__cmd *cmd); /* returns its work: deliveries */
void pw__room_available(pw__loop *l);
/* Any thread: close the door (no command gets in from now on), wake the blocked producers
 * and the loop, which stops. Idempotent. */
void pw__door_close(pw__loop *l);
/* Remember a client whose reading is paused (0, or PW_ENOMEM: then it is not paused). */
int pw__loop_note_paused(pw__loop *l, pw_conn_id id);
/* Loop thread: lift PW_EVQ_PAUSE from every client it paused (another reason may remain). */
void pw__loop_resume_reads(pw__loop *l);
/* Any thread: ask every loop to resume its paused clients. */
void pw__resume_reads(struct pw_server *srv);
/* The loop this thread runs, or NULL. */
pw__loop *pw__current_loop(void);

#endif
