/* Connection ids: a table of slots, each with a generation, so ids are never reused and a
 * stale id is recognised. Id layout: [63..56] loop index, [55..32] slot, [31..0] generation.
 * Design notes: the table is chunked (chunks never move once allocated) and each slot's
 * generation is atomic, so a later any-thread door can test an id without a lock. A slot
 * whose generation would wrap is retired instead of reused: ids are never reused, period.
 * Only the owning loop thread allocates and frees slots. */
#ifndef PW_SLOTS_H
#define PW_SLOTS_H

#include <stdatomic.h>
#include <stdint.h>
#include "pushwire.h"

#define PW__SLOT_CHUNK 1024u
#define PW__SLOT_MAX (1u << 24)
#define PW__SLOT_NONE UINT32_MAX

struct pw__conn;

typedef struct pw__slot {
  _Atomic uint32_t gen;  /* odd = live; the id's generation while live */
  uint32_t next_free;    /* free-list link; loop thread only */
  struct pw__conn *conn; /* loop thread only */
} pw__slot;

typedef struct pw__slots {
  pw__slot **chunks; /* nchunks_max pointers, allocated at init, never moved */
  uint32_t nchunks_max;
  _Atomic uint32_t nchunks; /* chunks allocated so far (release: chunk pointer is set) */
  uint32_t free_head;       /* PW__SLOT_NONE when empty */
  _Atomic uint32_t live;    /* written by the loop thread, read by stats */
  unsigned loop_index;
  /* Live ids of every loop of the server, against max_connections (server-wide): shared by
   * the loops' tables, reserved by alloc, given back by retire. */
  _Atomic uint32_t *total;
  uint32_t total_max;
} pw__slots;

/* A table of at most max_slots slots; its live ids count in *total, which may not pass
 * max_slots (the limit is shared by every table given the same counter). */
int pw__slots_init(pw__slots *t, unsigned loop_index, uint32_t max_slots, _Atomic uint32_t *total);
void pw__slots_destroy(pw__slots *t);
/* Allocate a slot for conn and store its new id in *id: 0, PW_EAGAIN (the shared count is at
 * its limit), PW_ENOMEM (no memory, or this table has no slot left). */
int pw__slots_alloc(pw__slots *t, struct pw__conn *conn, pw_conn_id *id);
/* End a live id: from now on it is dead to every thread, but its slot is not reused until
 * pw__slots_release (the connection's memory may outlive its WebSocket). Loop thread. */
void pw__slots_retire(pw__slots *t, pw_conn_id id);
/* Give the slot of a retired (or still live) id back to the free list. Loop thread. */
void pw__slots_release(pw__slots *t, pw_conn_id id);
/* 1 if the id is live right now. Any thread: a hint that can only be stale in the safe
 * direction (the connection may close right after; the loop re-checks on delivery). */
int pw__slots_alive(const pw__slots *t, pw_conn_id id);
/* The connection of a live id, or NULL (loop thread). */
struct pw__conn *pw__slots_get(const pw__slots *t, pw_conn_id id);

static inline unsigned pw__id_loop(pw_conn_id id) { return (unsigned)(id >> 56); }

#endif
