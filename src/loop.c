/* One event loop: the listener, the timeout sweep, the flush of dirty connections after each
 * turn, and the stop sequence. Loop thread only, except pw__loop_request_stop.
 * Design notes:
 * - Corking: sends made during a turn only queue buffers and mark the connection dirty; the
 *   check handle (run after I/O callbacks) writes each dirty connection once, one writev.
 * - Timeouts without a timer per connection: connections sit in lists ordered by the time
 *   that matters (last input, or when closing began), so one periodic tick looks only at
 *   list heads and at connections that are actually due. */
#include "loop.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "accept.h"
#include "dispatch.h"
#include "history.h"
#include "send.h"
#include "server.h"
#include "util.h"

static _Thread_local pw__loop *current_loop;

pw__loop *pw__current_loop(void) { return current_loop; }

/* ---- lists ----------------------------------------------------------------------------- */
void pw__list_remove(pw__loop *l, pw__conn *c) {
  if (c->list == PW__L_NONE) return;
  pw__list_head *h = &l->lists[c->list];
  if (c->prev) c->prev->next = c->next;
  else h->first = c->next;
  if (c->next) c->next->prev = c->prev;
  else h->last = c->prev;
  c->prev = c->next = NULL;
  c->list = PW__L_NONE;
  h->count--;
}

/* Append to the tail of `list` (moving it there if it is already in a list). */
void pw__list_push(pw__loop *l, pw__conn *c, int list) {
  pw__list_remove(l, c);
  pw__list_head *h = &l->lists[list];
  c->prev = h->last;
  c->next = NULL;
  if (h->last) h->last->next = c;
  else h->first = c;
  h->last = c;
  c->list = (uint8_t)list;
  h->count++;
}

/* ---- corking: flush dirty connections once per turn ------------------------------------- */
void pw__mark_dirty(pw__loop *l, pw__conn *c) {
  if (c->dirty || c->state == PW__S_DEAD) return;
  if (pw__grow((void **)&l->flush.conns, &l->flush.cap, l->flush.n + 1, sizeof *l->flush.conns,
               64) != 0)
    return pw__conn_flush(c); /* no memory to defer: write now */
  l->flush.conns[l->flush.n++] = c;
  c->dirty = 1;
}

static void on_check(uv_check_t *h) {
  pw__loop *l = h->data;
  /* Index loop: a flush may end a connection or append one (a stop's 1001 queued when a
   * queue empties, conn.c drained()); ndirty is read afresh each time. Entries are
   * flushed before any close callback of this turn can free them (libuv runs check
   * handles before closing handles). */
  for (size_t i = 0; i < l->flush.n; i++) {
    pw__conn *c = l->flush.conns[i];
    c->dirty = 0;
    pw__conn_flush(c);
  }
  l->flush.n = 0;
}

/* ---- timeouts -------------------------------------------------------------------------- */
static int due(const pw__loop *l, const pw__conn *c, int timeout_ms) {
  return timeout_ms > 0 && l->now_ms - c->last_active_ms >= (uint64_t)timeout_ms;
}

static void sweep_open(pw__loop *l) {
  const pw_options *o = &l->srv->opt;
  int first_due = o->ping_interval_ms > 0 ? o->ping_interval_ms : o->idle_timeout_ms;
  if (o->idle_timeout_ms > 0 && o->idle_timeout_ms < first_due) first_due = o->idle_timeout_ms;
  pw__conn *c = l->lists[PW__L_OPEN].first, *next;
  for (; c && due(l, c, first_due); c = next) {
    next = c->next;
    /* The owner's queue stopped its reading: its silence is ours. (One paused for its own
     * send queue is timed as usual: its reading what we write counts as life, conn.c.) */
    if (c->read_paused & PW__PAUSE_EVENTS) continue;
    if (due(l, c, o->idle_timeout_ms)) {
      pw__conn_close_ws(c, PW_CLOSE_GOING_AWAY, "idle timeout");
    } else if (!c->ping_sent && due(l, c, o->ping_interval_ms)) {
      pw__conn_send_frame(c, PW_OP_PING, NULL, 0);
      c->ping_sent = 1;
    }
  }
}

/* Destroy the connections of `list` that waited `timeout_ms` (lists are in time order). */
static void sweep_expired(pw__loop *l, int list, int timeout_ms) {
  pw__conn *c;
  while ((c = l->lists[list].first) && due(l, c, timeout_ms)) pw__conn_destroy(c);
}

static void on_tick(uv_timer_t *t) {
  pw__loop *l = t->data;
  const pw_options *o = &l->srv->opt;
  l->now_ms = uv_now(&l->uv);
  sweep_expired(l, PW__L_HTTP, o->handshake_timeout_ms);
  sweep_expired(l, PW__L_CLOSING, o->close_timeout_ms);
  sweep_open(l);
  if (l->index == 0) pw__histories_sweep(l->srv, pw__history_now_ms()); /* at most 1/s */
}

/* A quarter of the shortest enabled timeout, within [10 ms, 1 s]. */
static uint64_t tick_interval(const pw_options *o) {
  int t[] = {o->handshake_timeout_ms, o->close_timeout_ms, o->ping_interval_ms, o->idle_timeout_ms};
  uint64_t best = 1000;
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
    if (t[i] > 0 && (uint64_t)t[i] / 4 < best) best = (uint64_t)t[i] / 4;
  return best < 10 ? 10 : best;
}

/* ---- stop -------------------------------------------------------------------------------- */
/* Design notes (the graceful stop; pw_server_stop in server.c starts it on every loop):
 * 0. pw_server_stop itself closes the door of every loop (inbox.h, pw__door_close), which
 *    wakes the PW_BLOCK waiters, so producers learn PW_ESTOPPED at once, even while this loop
 *    is still busy in a callback, and wakes the loop: a closed door is the stop request.
 * 1. begin_stop: close the listener; HTTP connections end after their queued response (a
 *    request not complete by now is not answered); wait until no producer is inside the door,
 *    leaving what producers had already been told was accepted in the inbox.
 * 2. PW__STOP_INBOX: the inbox drains in the usual batches, one per turn, so the sockets are
 *    written between batches exactly as while running (the slow-consumer policy still acts).
 * 3. PW__STOP_FLUSH: the inbox is empty; a client whose send queue is empty gets its 1001 now,
 *    the others right after their queue is written (conn.c, drained()).
 * 4. PW__STOP_CLOSING: everyone has the 1001, because all queues were written or the drain
 *    timer fired first (then the unsent messages are dropped and counted in dropped_closed);
 *    the close handshakes end within close_timeout_ms as usual, then the handles close. */

/* Close the door: once this returns no producer is inside or can enter. pw_server_stop has
 * normally closed it already, but a producer that got in just before may still be pushing:
 * wait for it all the same, so the drain that follows sees its command. */
static void close_door(pw__loop *l) {
  pw__door_close(&l->door);
  pw__door_quiesce(&l->door);
}

/* Carry out everything left in the inbox at once (it cannot refill: the door is closed).
 * Sends to connections no longer open are dropped and counted; calls run. */
static void drain_all(pw__loop *l) {
  pw__cmd cmd;
  while (pw__door_pop(&l->door, &cmd)) pw__dispatch(l, &cmd);
  pw__batch_flush(l);
  pw__door_settle(&l->door);
}

static void close_handles(pw__loop *l) {
  if (l->stop.handles_closed) return;
  l->stop.handles_closed = 1;
  close_door(l);
  drain_all(l);
  pw__door_close_handle(&l->door);
  uv_close((uv_handle_t *)&l->tick, NULL);
  uv_close((uv_handle_t *)&l->flush.check, NULL);
  uv_close((uv_handle_t *)&l->stop.timer, NULL);
  pw__accept_close(l);
}

static void maybe_finish(pw__loop *l) {
  if (l->stop.stopping && l->nconns == 0) close_handles(l);
}

void pw__loop_queue_drained(pw__loop *l, pw__conn *c) {
  if (l->stop.phase == PW__STOP_FLUSH) pw__conn_close_ws(c, PW_CLOSE_GOING_AWAY, PW__STOP_REASON);
}

void pw__loop_conn_freed(pw__loop *l) {
  l->nconns--;
  maybe_finish(l);
}

/* Phase 3: the inbox is drained. Connections with nothing queued get the 1001 now; the
 * flush of the others sends it when their queue is written (conn.c, drained()). */
static void inbox_drained(pw__loop *l) {
  pw__conn *c, *next;
  l->stop.phase = PW__STOP_FLUSH;
  for (c = l->lists[PW__L_OPEN].first; c; c = next) {
    next = c->next;
    if (c->q.count == 0) pw__conn_close_ws(c, PW_CLOSE_GOING_AWAY, PW__STOP_REASON);
    else pw__mark_dirty(l, c); /* normally already dirty or writing; this makes sure */
  }
}

/* Phase 4, by the drain timer (or at once when drain_timeout_ms < 0): every client still
 * open gets its 1001 now, and what was not started for it is dropped and counted. */
static void drain_expired(pw__loop *l) {
  pw__conn *c, *next;
  if (l->stop.phase == PW__STOP_CLOSING) return;
  l->stop.phase = PW__STOP_CLOSING;
  uv_timer_stop(&l->stop.timer);
  for (c = l->lists[PW__L_OPEN].first; c; c = next)
    next = c->next, pw__conn_close_dropping(c, PW_CLOSE_GOING_AWAY, PW__STOP_REASON);
  drain_all(l); /* an inbox still not drained: its sends now find no open connection */
  maybe_finish(l);
}

static void on_drain_timer(uv_timer_t *t) {
  pw__loop *l = t->data;
  l->now_ms = uv_now(&l->uv);
  drain_expired(l);
}

/* An HTTP connection ends after what is queued for it (a response produced before the stop)
 * is written; a request still arriving is not answered. */
static void end_http_connections(pw__loop *l) {
  pw__conn *c, *next;
  for (c = l->lists[PW__L_HTTP].first; c; c = next) next = c->next, pw__conn_end_after_flush(c);
}

/* Phase 1 (see the design notes above). */
static void begin_stop(pw__loop *l) {
  int drain_ms = l->srv->opt.drain_timeout_ms;
  l->stop.stopping = 1;
  l->stop.phase = PW__STOP_INBOX;
  l->now_ms = uv_now(&l->uv);
  pw__accept_close(l);
  end_http_connections(l);
  close_door(l);
  pw__events_resume_paused(l); /* paused clients must be able to answer the close */
  if (drain_ms < 0) return drain_expired(l);
  if (l->nconns == 0) return maybe_finish(l); /* nobody to drain to */
  uv_timer_start(&l->stop.timer, on_drain_timer, (uint64_t)drain_ms, 0);
  pw__door_rewake(&l->door); /* one more drain: a producer may have queued after the last */
}

/* Drain up to one batch. After the inbox runs dry, yield the CPU once and look again: a
 * producer in mid-burst refills it within microseconds, and catching that saves a sleep
 * and a wakeup syscall per few messages (../shared/DESIGN.md, "handover floor"). */
static size_t drain(pw__loop *l, int *more) {
  pw__cmd cmd;
  size_t n = 0, work = 0;
  int yielded = 0;
  *more = 0;
  while (!(*more = n >= PW__DRAIN_BATCH || work >= PW__DRAIN_WORK)) {
    if (!pw__door_pop(&l->door, &cmd)) {
      if (yielded || n == 0) break;
      yielded = 1;
      sched_yield();
      continue;
    }
    work += pw__dispatch(l, &cmd);
    n++;
  }
  pw__batch_flush(l);        /* the last publishes of the drain (batch.h) */
  pw__door_settle(&l->door); /* refunds in one atomic per drain; blocked producers retry */
  return n;
}

static void count_wakeup(pw__loop *l, size_t n) {
  pw__stat_add(&l->stats.wakeups, 1);
  pw__stat_add(&l->stats.commands, n);
  if (n > atomic_load_explicit(&l->stats.max_batch, memory_order_relaxed))
    atomic_store_explicit(&l->stats.max_batch, n, memory_order_relaxed);
}

static void on_wake(uv_async_t *a) {
  pw__loop *l = a->data;
  l->now_ms = uv_now(&l->uv);
  int more;
  size_t n = drain(l, &more);
  count_wakeup(l, n);
  /* A full batch may have left more: come back after this turn's I/O, not before. */
  if (more) pw__door_rewake(&l->door);
  /* Holes a publisher reported, once what came before them is delivered (stream.h). */
  else pw__stream_repair(l);
  if (pw__door_is_closed(&l->door) && !l->stop.stopping) begin_stop(l);
  else if (l->stop.phase == PW__STOP_INBOX && !more) inbox_drained(l);
}

void pw__loop_request_stop(pw__loop *l) { pw__door_close(&l->door); }

/* ---- lifecycle ---------------------------------------------------------------------------- */
int pw__loop_init(pw__loop *l, pw_server *srv, unsigned index) {
  memset(l, 0, sizeof *l);
  l->srv = srv;
  l->index = index;
  l->rbuf = malloc(PW__READ_BUF_SIZE);
  if (!l->rbuf || uv_loop_init(&l->uv) != 0) return free(l->rbuf), PW_ENOMEM;
  if (pw__slots_init(&l->slots, index, (uint32_t)srv->opt.max_connections, &srv->ws_connections) !=
          0 ||
      pw__door_init(&l->door, &l->uv, on_wake, l, srv->opt.inbox_capacity,
                    srv->opt.max_inbox_bytes) != 0) {
    pw__slots_destroy(&l->slots);
    uv_loop_close(&l->uv);
    free(l->rbuf);
    return PW_ENOMEM;
  }
  uv_timer_init(&l->uv, &l->tick);
  uv_check_init(&l->uv, &l->flush.check);
  uv_timer_init(&l->uv, &l->stop.timer);
  pw__accept_init(l);
  l->tick.data = l->flush.check.data = l->stop.timer.data = l;
  return 0;
}

int pw__loop_listen(pw__loop *l, const char *addr, int port, int reuseport, int tls) {
  int r = pw__accept_listen(l, addr, port, reuseport, tls);
  if (r >= 0 && !uv_is_active((uv_handle_t *)&l->flush.check)) { /* once, either listener */
    uint64_t every = tick_interval(&l->srv->opt);
    uv_timer_start(&l->tick, on_tick, every, every);
    uv_check_start(&l->flush.check, on_check);
  }
  return r;
}

/* SIGPIPE: a write to a peer that has gone raises it, and its default action kills the whole
 * program. The library must not change a process-wide disposition (child processes inherit
 * it: `yes | head -1` would then fail with EPIPE), and libuv writes with writev, which has no
 * MSG_NOSIGNAL. So the loop thread blocks SIGPIPE while it runs: the kernel sends a write's
 * SIGPIPE to the thread that wrote, where, blocked, it stays pending and harmless; the write
 * fails with EPIPE, handled like any write error. This covers every write path (uv_try_write,
 * uv_write, shutdown). */
static void block_sigpipe(sigset_t *saved) {
  sigset_t pipe_set;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, saved);
}

/* Give the thread its mask back (it matters in pw_server_run's caller). A SIGPIPE our writes
 * left pending is taken first, or unblocking it would deliver it now. */
static void restore_sigpipe(const sigset_t *saved) {
  sigset_t pipe_set;
  struct timespec no_wait = {0, 0};
  if (sigismember(saved, SIGPIPE)) return; /* the caller had it blocked: nothing changed */
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  while (sigtimedwait(&pipe_set, NULL, &no_wait) == SIGPIPE) {}
  pthread_sigmask(SIG_SETMASK, saved, NULL);
}

void pw__loop_run(pw__loop *l) {
  sigset_t saved;
  block_sigpipe(&saved);
  current_loop = l;
  l->now_ms = uv_now(&l->uv);
  uv_run(&l->uv, UV_RUN_DEFAULT);
  current_loop = NULL;
  restore_sigpipe(&saved);
}

void pw__loop_destroy(pw__loop *l) {
  if (!l->rbuf) return;
  close_handles(l);
  uv_run(&l->uv, UV_RUN_DEFAULT); /* let the close callbacks run */
  uv_loop_close(&l->uv);
  pw__slots_destroy(&l->slots);
  pw__topics_destroy(&l->topics);
  pw__door_destroy(&l->door);
  free(l->flush.conns);
  pw__paused_free(&l->paused);
  free(l->rbuf);
  l->rbuf = NULL;
  pw__accept_destroy(l);
}
