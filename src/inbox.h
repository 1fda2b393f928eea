/* The door: the only way from other threads into a loop. A bounded lock-free multi-producer
 * single-consumer ring of fixed-size commands, a byte budget, one uv_async_t wakeup, and the
 * closing of it all at stop. Producers call pw__door_push from any thread; the loop pops,
 * refunds what it carried out and settles once per batch.
 * Design notes:
 * - The ring is Vyukov's bounded queue: each cell carries a sequence number that says whose
 *   turn it is (producer or consumer), so producers claim cells with one CAS on the tail and
 *   publish with one release store; the consumer needs no atomic read-modify-write at all.
 *   Cells are consumed in claim order, so one producer's commands keep their order.
 * - Full is an answer, not a wait: a push over the budget or into a full ring returns
 *   PW_EAGAIN unless the caller asked to block (PW_BLOCK: timed waits on a condition variable
 *   the loop signals after each drain, in 10 ms slices so a missed signal costs little).
 * - Budget: every command carries its `charge` (payload bytes, or a publish's fan-out: see
 *   publish.c); it is refunded when the loop has carried the command out, in one atomic per
 *   drain (pw__door_settle), so the counter's cache line stays with the producers. A command
 *   alone in an empty door always fits, whatever its charge.
 * - Wakeups coalesce: uv_async_send writes the eventfd only when no wakeup is pending, so a
 *   burst of pushes between two loop turns costs one syscall; the loop drains everything.
 * - Closing (any thread, at stop) is also the loop's stop request. A producer counts itself
 *   into `producers` for the few instructions in which it touches the ring and the wakeup,
 *   and checks `closed` after counting in; the loop, at its stop, waits for `producers` to
 *   reach zero (pw__door_quiesce) before it drains what is left and later closes the async
 *   handle: a Dekker pair on seq_cst atomics, one side always sees the other. So exactly the
 *   commands of producers that got in before the close are carried out, a producer blocked in
 *   PW_BLOCK learns PW_ESTOPPED at once, and no wakeup can hit a closed handle. */
#ifndef PW_INBOX_H
#define PW_INBOX_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct pw_buf;
struct pw_server;

enum pw__cmd_kind {
  PW__CMD_SEND = 1, /* id, buf: one reference moves with the command */
  PW__CMD_CLOSE,    /* id, code, reason: heap string or NULL, freed by the loop */
  PW__CMD_CALL,     /* fn(srv, arg) */
  PW__CMD_POLICY,   /* id, code: policy, limit */
  PW__CMD_RESUME,   /* the owner drained its event queue: read from paused clients again */
  PW__CMD_SUB,      /* id, topic: heap copy, freed by the loop */
  PW__CMD_UNSUB,    /* id, topic */
  PW__CMD_PUBLISH,  /* pub: shared by every loop's command, refcounted */
  PW__CMD_SUB_FROM, /* id, topic (heap), arg: a heap pw_position; both freed by the loop */
};

typedef struct pw__cmd {
  uint32_t kind;
  uint32_t code;
  uint64_t id;
  size_t charge; /* bytes counted against the door's budget until carried out */
  union {
    struct pw_buf *buf;
    char *reason;
    void (*fn)(struct pw_server *srv, void *arg);
    size_t limit;
    char *topic;
    struct pw__pub *pub;
  } u;
  void *arg;
} pw__cmd;

typedef struct pw__cell {
  _Atomic size_t seq;
  pw__cmd cmd;
} pw__cell;

typedef struct pw__door {
  pw__cell *cells;
  size_t mask;                      /* capacity - 1 (a power of two) */
  size_t budget;                    /* options.max_inbox_bytes */
  _Alignas(64) _Atomic size_t tail; /* producers: next cell to claim */
  _Atomic size_t bytes;             /* charged and not yet refunded */
  _Atomic int producers;            /* inside push or close right now */
  _Atomic int closed;
  _Atomic int waiters;      /* PW_BLOCK producers waiting for room */
  _Alignas(64) size_t head; /* consumer only: next cell to take */
  size_t refund;            /* consumer only: charges to give back at settle */
  uv_mutex_t room_lock;
  uv_cond_t room_cond;
  uv_async_t wake; /* its data: what pw__door_init was given */
} pw__door;

/* Loop thread, before the loop runs: a door of `capacity` cells (rounded up to a power of
 * two) and `budget` bytes, whose wakeup calls on_wake(&door->wake) with wake.data = data.
 * 0 or PW_ENOMEM. */
int pw__door_init(pw__door *d, uv_loop_t *uv, uv_async_cb on_wake, void *data, size_t capacity,
                  size_t budget);
/* After the async handle has closed (pw__door_close_handle and the loop run). */
void pw__door_destroy(pw__door *d);

/* Any thread: queue *cmd (its charge included) and wake the loop. With PW_BLOCK in flags,
 * wait for room up to timeout_ms (< 0: no bound). 0; PW_EAGAIN (no room); PW_ESTOPPED (the
 * door is closed: nothing was queued). */
int pw__door_push(pw__door *d, const pw__cmd *cmd, int flags, int timeout_ms);
/* Any thread: the two halves of a push, for a caller that must know a command will be taken
 * before it commits to it (a history publish reserves every loop's budget, then pushes to
 * all of them under its topic's lock: history.h). Reserve waits with PW_BLOCK up to
 * timeout_ms: 0, PW_EAGAIN, PW_ESTOPPED. push_reserved never waits: 0, PW_EAGAIN (the ring is
 * full: the reservation is still the caller's, to unreserve), PW_ESTOPPED (likewise). */
int pw__door_reserve(pw__door *d, size_t charge, int flags, int timeout_ms);
void pw__door_unreserve(pw__door *d, size_t charge);
int pw__door_push_reserved(pw__door *d, const pw__cmd *cmd);
/* Any thread: wake the loop without a command (it has something else to look at). */
void pw__door_wake(pw__door *d);
/* Any thread: close the door (no push gets in from now on), wake the loop to stop and every
 * PW_BLOCK waiter. Returns 1 for the call that closed it, 0 if it was closed already. */
int pw__door_close(pw__door *d);
static inline int pw__door_is_closed(pw__door *d) { return atomic_load(&d->closed); }
/* Any thread: bytes charged and not yet refunded (for stats). */
static inline size_t pw__door_bytes(pw__door *d) {
  return atomic_load_explicit(&d->bytes, memory_order_relaxed);
}

/* Loop thread. 1 with *cmd filled, 0 when empty (or the next cell is still being written by
 * a producer that claimed it: its own wakeup will follow). */
int pw__door_pop(pw__door *d, pw__cmd *cmd);
/* Loop thread: a command was carried out; its charge goes back at the next settle. */
static inline void pw__door_refund(pw__door *d, size_t charge) { d->refund += charge; }
/* Loop thread, after a drain: give the refunds back and let blocked producers retry. */
void pw__door_settle(pw__door *d);
/* Loop thread: come back for more after this turn (a drain stopped at its bound). */
static inline void pw__door_rewake(pw__door *d) { uv_async_send(&d->wake); }
/* Loop thread, door closed: wait for producers still inside to leave (a few instructions). */
void pw__door_quiesce(pw__door *d);
/* Loop thread, door closed and quiet: close the async handle. */
void pw__door_close_handle(pw__door *d);

#endif
