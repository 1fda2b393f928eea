/* The door between threads and a loop: see inbox.h for the design notes. */
#include "inbox.h"

#include <sched.h>
#include <stdlib.h>

#include "pushwire.h"

/* ---- the ring (Vyukov's bounded queue, used as MPSC) ------------------------------------ */
static int ring_init(pw__door *d, size_t capacity) {
  size_t cap = 2;
  while (cap < capacity) cap <<= 1;
  d->cells = malloc(cap * sizeof *d->cells);
  if (!d->cells) return -1;
  for (size_t i = 0; i < cap; i++) atomic_init(&d->cells[i].seq, i);
  d->mask = cap - 1;
  atomic_init(&d->tail, 0);
  d->head = 0;
  return 0;
}

static int ring_push(pw__door *d, const pw__cmd *cmd) {
  size_t pos = atomic_load_explicit(&d->tail, memory_order_relaxed);
  for (;;) {
    pw__cell *cell = &d->cells[pos & d->mask];
    size_t seq = atomic_load_explicit(&cell->seq, memory_order_acquire);
    intptr_t turn = (intptr_t)seq - (intptr_t)pos;
    if (turn == 0) { /* the cell is free for position pos: claim it */
      if (atomic_compare_exchange_weak_explicit(&d->tail, &pos, pos + 1, memory_order_relaxed,
                                                memory_order_relaxed)) {
        cell->cmd = *cmd;
        atomic_store_explicit(&cell->seq, pos + 1, memory_order_release); /* publish */
        return 0;
      }
      /* lost the race: pos now holds the current tail; try again */
    } else if (turn < 0) {
      return -1; /* the consumer has not freed this cell yet: full */
    } else {
      pos = atomic_load_explicit(&d->tail, memory_order_relaxed);
    }
  }
}

int pw__door_pop(pw__door *d, pw__cmd *cmd) {
  pw__cell *cell = &d->cells[d->head & d->mask];
  size_t seq = atomic_load_explicit(&cell->seq, memory_order_acquire);
  if (seq != d->head + 1) return 0;
  *cmd = cell->cmd;
  /* hand the cell back to producers, one lap later */
  atomic_store_explicit(&cell->seq, d->head + d->mask + 1, memory_order_release);
  d->head++;
  return 1;
}

/* ---- lifecycle ----------------------------------------------------------------------------- */
int pw__door_init(pw__door *d, uv_loop_t *uv, uv_async_cb on_wake, void *data, size_t capacity,
                  size_t budget) {
  if (ring_init(d, capacity) != 0) return PW_ENOMEM;
  d->budget = budget;
  d->refund = 0;
  atomic_init(&d->bytes, 0);
  atomic_init(&d->producers, 0);
  atomic_init(&d->closed, 0);
  atomic_init(&d->waiters, 0);
  uv_mutex_init(&d->room_lock);
  uv_cond_init(&d->room_cond);
  uv_async_init(uv, &d->wake, on_wake);
  d->wake.data = data;
  return 0;
}

void pw__door_destroy(pw__door *d) {
  free(d->cells);
  d->cells = NULL;
  uv_mutex_destroy(&d->room_lock);
  uv_cond_destroy(&d->room_cond);
}

/* ---- the producer side -------------------------------------------------------------------- */
static int enter(pw__door *d) {
  atomic_fetch_add(&d->producers, 1);
  if (atomic_load(&d->closed)) {
    atomic_fetch_sub(&d->producers, 1);
    return PW_ESTOPPED;
  }
  return 0;
}

static void leave(pw__door *d) { atomic_fetch_sub(&d->producers, 1); }

/* Take `charge` from the budget; a command alone in an empty door always fits. */
static int reserve(pw__door *d, size_t charge) {
  size_t before = atomic_fetch_add(&d->bytes, charge);
  if (before == 0 || before + charge <= d->budget) return 1;
  atomic_fetch_sub(&d->bytes, charge);
  return 0;
}

/* One try: 0 (queued and the loop woken), PW_EAGAIN (no room) or PW_ESTOPPED. */
static int try_push(pw__door *d, const pw__cmd *cmd) {
  int r = enter(d);
  if (r != 0) return r;
  r = PW_EAGAIN;
  if (reserve(d, cmd->charge)) {
    if (ring_push(d, cmd) == 0) {
      uv_async_send(&d->wake); /* coalesced: a syscall only if no wakeup is pending */
      r = 0;
    } else {
      atomic_fetch_sub(&d->bytes, cmd->charge);
    }
  }
  leave(d);
  return r;
}

int pw__door_push_reserved(pw__door *d, const pw__cmd *cmd) {
  int r = enter(d);
  if (r != 0) return r;
  r = ring_push(d, cmd) == 0 ? 0 : PW_EAGAIN;
  if (r == 0) uv_async_send(&d->wake);
  leave(d);
  return r;
}

void pw__door_unreserve(pw__door *d, size_t charge) { atomic_fetch_sub(&d->bytes, charge); }

void pw__door_wake(pw__door *d) {
  if (enter(d) != 0) return; /* closed: the loop is stopping and drains what it has */
  uv_async_send(&d->wake);
  leave(d);
}

/* Wait (in short slices, so a missed signal costs little) until the loop drains or time is
 * up: 1 to try again, 0 when the time is up. */
static int wait_room(pw__door *d, uint64_t deadline_ns) {
  uint64_t now = uv_hrtime();
  if (now >= deadline_ns) return 0;
  uint64_t slice = deadline_ns - now < 10000000 ? deadline_ns - now : 10000000;
  uv_mutex_lock(&d->room_lock);
  atomic_fetch_add(&d->waiters, 1);
  if (!atomic_load(&d->closed)) uv_cond_timedwait(&d->room_cond, &d->room_lock, slice);
  atomic_fetch_sub(&d->waiters, 1);
  uv_mutex_unlock(&d->room_lock);
  return 1;
}

/* When a PW_BLOCK wait gives up: timeout_ms from now, never when it is negative. */
static uint64_t block_deadline(int timeout_ms) {
  if (timeout_ms < 0) return UINT64_MAX;
  return uv_hrtime() + (uint64_t)timeout_ms * 1000000u;
}

int pw__door_reserve(pw__door *d, size_t charge, int flags, int timeout_ms) {
  uint64_t deadline = 0;
  for (;;) {
    if (atomic_load(&d->closed)) return PW_ESTOPPED;
    if (reserve(d, charge)) return 0;
    if (!(flags & PW_BLOCK)) return PW_EAGAIN;
    if (!deadline) deadline = block_deadline(timeout_ms);
    if (!wait_room(d, deadline)) return PW_EAGAIN;
  }
}

int pw__door_push(pw__door *d, const pw__cmd *cmd, int flags, int timeout_ms) {
  uint64_t deadline = 0; /* read the clock only once we must wait: not on every push */
  for (;;) {
    int r = try_push(d, cmd);
    if (r != PW_EAGAIN || !(flags & PW_BLOCK)) return r;
    if (!deadline) deadline = block_deadline(timeout_ms);
    if (!wait_room(d, deadline)) return PW_EAGAIN;
  }
}

static void room_available(pw__door *d) {
  if (atomic_load(&d->waiters) == 0) return;
  uv_mutex_lock(&d->room_lock);
  uv_cond_broadcast(&d->room_cond);
  uv_mutex_unlock(&d->room_lock);
}

/* The closer counts itself in for its own wakeup: if it closed the door first, the loop's
 * quiesce sees it inside and waits before the async handle closes. */
int pw__door_close(pw__door *d) {
  atomic_fetch_add(&d->producers, 1);
  int first = !atomic_exchange(&d->closed, 1);
  if (first) uv_async_send(&d->wake);
  atomic_fetch_sub(&d->producers, 1);
  room_available(d); /* PW_BLOCK waiters find the door closed: PW_ESTOPPED at once */
  return first;
}

/* ---- the loop side ------------------------------------------------------------------------ */
void pw__door_settle(pw__door *d) {
  if (d->refund) atomic_fetch_sub(&d->bytes, d->refund);
  d->refund = 0;
  room_available(d);
}

void pw__door_quiesce(pw__door *d) {
  while (atomic_load(&d->producers) > 0) sched_yield(); /* a few instructions away */
}

void pw__door_close_handle(pw__door *d) { uv_close((uv_handle_t *)&d->wake, NULL); }
