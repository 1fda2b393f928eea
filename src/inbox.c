/* The inbox ring (Vyukov's bounded queue, used as MPSC): see inbox.h for the design notes. */
#include "inbox.h"

#include <stdlib.h>

int pw__inbox_init(pw__inbox *q, size_t capacity) {
  size_t cap = 2;
  while (cap < capacity) cap <<= 1;
  q->cells = malloc(cap * sizeof *q->cells);
  if (!q->cells) return -1;
  for (size_t i = 0; i < cap; i++) atomic_init(&q->cells[i].seq, i);
  q->mask = cap - 1;
  atomic_init(&q->tail, 0);
  q->head = 0;
  return 0;
}

void pw__inbox_destroy(pw__inbox *q) {
  free(q->cells);
  q->cells = NULL;
}

int pw__inbox_push(pw__inbox *q, const pw__cmd *cmd) {
  size_t pos = atomic_load_explicit(&q->tail, memory_order_relaxed);
  for (;;) {
    pw__cell *cell = &q->cells[pos & q->mask];
    size_t seq = atomic_load_explicit(&cell->seq, memory_order_acquire);
    intptr_t turn = (intptr_t)seq - (intptr_t)pos;
    if (turn == 0) { /* the cell is free for position pos: claim it */
      if (atomic_compare_exchange_weak_explicit(&q->tail, &pos, pos + 1, memory_order_relaxed,
                                                memory_order_relaxed)) {
        cell->cmd = *cmd;
        atomic_store_explicit(&cell->seq, pos + 1, memory_order_release); /* publish */
        return 0;
      }
      /* lost the race: pos now holds the current tail; try again */
    } else if (turn < 0) {
      return -1; /* the consumer has not freed this cell yet: full */
    } else {
      pos = atomic_load_explicit(&q->tail, memory_order_relaxed);
    }
  }
}

int pw__inbox_pop(pw__inbox *q, pw__cmd *cmd) {
  pw__cell *cell = &q->cells[q->head & q->mask];
  size_t seq = atomic_load_explicit(&cell->seq, memory_order_acquire);
  if (seq != q->head + 1) return 0;
  *cmd = cell->cmd;
  /* hand the cell back to producers, one lap later */
  atomic_store_explicit(&cell->seq, q->head + q->mask + 1, memory_order_release);
  q->head++;
  return 1;
}
