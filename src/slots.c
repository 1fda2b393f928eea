/* Slot table behind connection ids: see slots.h for the id layout and the design notes. */
#include "slots.h"

#include <stdlib.h>

static uint32_t id_slot(pw_conn_id id) { return (uint32_t)(id >> 32) & (PW__SLOT_MAX - 1); }
static uint32_t id_gen(pw_conn_id id) { return (uint32_t)id; }

static pw__slot *slot_at(const pw__slots *t, uint32_t index) {
  uint32_t chunk = index / PW__SLOT_CHUNK;
  if (chunk >= atomic_load_explicit(&t->nchunks, memory_order_acquire)) return NULL;
  return &t->chunks[chunk][index % PW__SLOT_CHUNK];
}

int pw__slots_init(pw__slots *t, unsigned loop_index, uint32_t max_slots, _Atomic uint32_t *total) {
  if (max_slots == 0 || max_slots > PW__SLOT_MAX - 1) max_slots = PW__SLOT_MAX - 1;
  t->total = total;
  t->total_max = max_slots;
  t->nchunks_max = (max_slots + PW__SLOT_CHUNK - 1) / PW__SLOT_CHUNK;
  t->chunks = calloc(t->nchunks_max, sizeof *t->chunks);
  atomic_init(&t->nchunks, 0);
  t->free_head = PW__SLOT_NONE;
  atomic_init(&t->live, 0);
  t->loop_index = loop_index;
  return t->chunks ? 0 : PW_ENOMEM;
}

void pw__slots_destroy(pw__slots *t) {
  uint32_t n = atomic_load(&t->nchunks);
  for (uint32_t i = 0; i < n; i++) free(t->chunks[i]);
  free(t->chunks);
  t->chunks = NULL;
  atomic_store(&t->nchunks, 0);
}

/* Add one chunk of fresh slots to the free list. */
static int grow(pw__slots *t) {
  uint32_t n = atomic_load_explicit(&t->nchunks, memory_order_relaxed);
  if (n == t->nchunks_max) return -1;
  pw__slot *c = calloc(PW__SLOT_CHUNK, sizeof *c);
  if (!c) return -1;
  uint32_t base = n * PW__SLOT_CHUNK;
  for (uint32_t i = PW__SLOT_CHUNK; i-- > 0;) {
    atomic_init(&c[i].gen, 0);
    c[i].next_free = t->free_head;
    t->free_head = base + i;
  }
  t->chunks[n] = c;
  atomic_store_explicit(&t->nchunks, n + 1, memory_order_release); /* publish the chunk */
  return 0;
}

/* One place under the shared limit, taken atomically: two loops upgrading at once cannot
 * both take the last one. */
static int take_place(pw__slots *t) {
  if (atomic_fetch_add(t->total, 1) < t->total_max) return 1;
  atomic_fetch_sub(t->total, 1);
  return 0;
}

int pw__slots_alloc(pw__slots *t, struct pw__conn *conn, pw_conn_id *id) {
  if (!take_place(t)) return PW_EAGAIN;
  if (t->free_head == PW__SLOT_NONE && grow(t) != 0) {
    atomic_fetch_sub(t->total, 1);
    return PW_ENOMEM;
  }
  uint32_t index = t->free_head;
  pw__slot *s = slot_at(t, index);
  t->free_head = s->next_free;
  uint32_t gen = atomic_load_explicit(&s->gen, memory_order_relaxed) + 1; /* even -> odd */
  s->conn = conn;
  atomic_store_explicit(&s->gen, gen, memory_order_release);
  atomic_fetch_add_explicit(&t->live, 1, memory_order_relaxed);
  *id = ((pw_conn_id)t->loop_index << 56) | ((pw_conn_id)index << 32) | gen;
  return 0;
}

void pw__slots_retire(pw__slots *t, pw_conn_id id) {
  pw__slot *s = slot_at(t, id_slot(id));
  if (!s || atomic_load_explicit(&s->gen, memory_order_relaxed) != id_gen(id)) return;
  s->conn = NULL;
  atomic_store_explicit(&s->gen, id_gen(id) + 1, memory_order_release); /* odd -> even: dead */
  atomic_fetch_sub_explicit(&t->live, 1, memory_order_relaxed);
  atomic_fetch_sub(t->total, 1); /* its place under max_connections is free */
}

void pw__slots_release(pw__slots *t, pw_conn_id id) {
  pw__slot *s = slot_at(t, id_slot(id));
  pw__slots_retire(t, id); /* no-op if already retired */
  if (!s || atomic_load_explicit(&s->gen, memory_order_relaxed) != id_gen(id) + 1) return;
  if (id_gen(id) + 1 == UINT32_MAX - 1) return; /* retired for good: one more use would wrap */
  s->next_free = t->free_head;
  t->free_head = id_slot(id);
}

int pw__slots_alive(const pw__slots *t, pw_conn_id id) {
  if (pw__id_loop(id) != t->loop_index || (id_gen(id) & 1u) == 0) return 0;
  pw__slot *s = slot_at(t, id_slot(id));
  return s && atomic_load_explicit(&s->gen, memory_order_relaxed) == id_gen(id);
}

struct pw__conn *pw__slots_get(const pw__slots *t, pw_conn_id id) {
  if (pw__id_loop(id) != t->loop_index || (id_gen(id) & 1u) == 0) return NULL;
  pw__slot *s = slot_at(t, id_slot(id));
  if (!s || atomic_load_explicit(&s->gen, memory_order_relaxed) != id_gen(id)) return NULL;
  return s->conn;
}
