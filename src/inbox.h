/* The inbox: the only door between other threads and a loop. A bounded lock-free
 * multi-producer single-consumer ring of fixed-size commands plus one uv_async_t wakeup.
 * Design notes:
 * - The ring is Vyukov's bounded queue: each cell carries a sequence number that says whose
 *   turn it is (producer or consumer), so producers claim cells with one CAS on the tail and
 *   publish with one release store; the consumer needs no atomic read-modify-write at all.
 * - Full is an answer, not a wait: push returns -1 and the caller decides (PW_EAGAIN or block).
 * - Wakeups coalesce: uv_async_send writes the eventfd only when no wakeup is pending, so a
 *   burst of sends between two loop turns costs one syscall; the loop drains everything.
 * - Order: cells are consumed in claim order, so one producer's commands keep their order. */
#ifndef PW_INBOX_H
#define PW_INBOX_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

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
};

typedef struct pw__cmd {
  uint32_t kind;
  uint32_t code;
  uint64_t id;
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

typedef struct pw__inbox {
  pw__cell *cells;
  size_t mask;                               /* capacity - 1 (a power of two) */
  _Alignas(64) _Atomic size_t tail;          /* producers: next cell to claim */
  _Alignas(64) size_t head;                  /* consumer only */
} pw__inbox;

int pw__inbox_init(pw__inbox *q, size_t capacity);
void pw__inbox_destroy(pw__inbox *q);
/* Any thread. 0, or -1 when the ring is full. */
int pw__inbox_push(pw__inbox *q, const pw__cmd *cmd);
/* Consumer thread only. 1 with *cmd filled, 0 when empty (or the next cell is still being
 * written by a producer that claimed it: its own wakeup will follow). */
int pw__inbox_pop(pw__inbox *q, pw__cmd *cmd);

#endif
