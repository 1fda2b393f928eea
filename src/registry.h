/* The server's registry of topics: one entry per topic that has a subscriber on some loop, or
 * server-level state that outlives them (an on-demand producer still running). It keeps the
 * topic's subscriber count over every loop, which any thread reads without asking the loops,
 * and the state that belongs to the server rather than to one loop (ondemand.c).
 * Design notes:
 * - Loops keep their own topic tables (topic.c) for the fan-out; each loop's topic holds a
 *   reference to its registry entry, taken at its first subscriber on that loop and given back
 *   at its last (`loops` counts them). Only those 0 <-> 1 transitions take a lock; every other
 *   subscribe and unsubscribe is one relaxed atomic add on the entry's count.
 * - Sharded by name hash: a lock per shard, so loops and readers of different topics rarely
 *   meet. A shard's lock also guards the state hung on its entries (lock order: a shard, then
 *   the on-demand patterns, then the task registry). */
#ifndef PW_REGISTRY_H
#define PW_REGISTRY_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "pushwire.h"

#define PW__REG_SHARDS 16

struct pw__od_topic;
struct pw__history;

typedef struct pw__rtopic {
  struct pw__rtopic *next; /* hash chain (shard lock) */
  uint64_t hash;
  _Atomic uint64_t subscribers;  /* over every loop; each loop adds its own changes */
  unsigned loops;                /* loops holding the entry: those with a subscriber */
  _Atomic uint32_t refs;         /* others holding it for a while: a publish in flight, a call */
  struct pw__od_topic *producer; /* on-demand producer state, or NULL (ondemand.c) */
  struct pw__history *history;   /* kept messages and position, or NULL (history.c); set under
                                    the shard lock, cleared only by the sweep */
  size_t len;
  char name[]; /* NUL-terminated */
} pw__rtopic;

typedef struct pw__reg_shard {
  uv_mutex_t lock;
  pw__rtopic **buckets;
  size_t nbuckets, count;
} pw__reg_shard;

typedef struct pw__registry {
  pw__reg_shard shards[PW__REG_SHARDS];
  _Atomic uint64_t topics;        /* entries held by at least one loop */
  _Atomic uint64_t subscriptions; /* (connection, topic) pairs over every loop */
} pw__registry;

void pw__registry_init(pw__registry *r);
void pw__registry_destroy(pw__registry *r);

/* Loop thread: this loop's topic got its first subscriber. The entry (made if need be), held
 * by one more loop until pw__registry_leave; the on-demand producer learns of it. NULL: out
 * of memory (nothing changed). */
pw__rtopic *pw__registry_join(pw_server *srv, const char *name, size_t len);
/* Loop thread: this loop's topic lost its last subscriber; the entry may go. */
void pw__registry_leave(pw_server *srv, pw__rtopic *t);
/* Loop thread: a subscriber more (+1) or fewer (-1) on a loop holding t. */
void pw__registry_count(pw__registry *r, pw__rtopic *t, int delta);
/* Any thread: the entry of `name` (made if need be when `make`), held until
 * pw__registry_release; NULL if there is none (or no memory). */
pw__rtopic *pw__registry_acquire(pw_server *srv, const char *name, size_t len, int make);
void pw__registry_release(pw_server *srv, pw__rtopic *t);
/* pw__registry_acquire for a topic that keeps history: the entry, with its history made if a
 * pattern asks for one (t->history is NULL otherwise); NULL only if the topic is not one
 * and has no entry, or out of memory. */
pw__rtopic *pw__registry_acquire_history(pw_server *srv, const char *name, size_t len);
/* Any thread: the topic's subscribers over every loop, as of each loop's last change. */
uint64_t pw__registry_subscribers(pw__registry *r, const char *name, size_t len);

/* Take the shard lock of an entry, for state hung on it (ondemand.c); unlock what it returns
 * (the entry itself may be gone by then). */
pw__reg_shard *pw__registry_lock(pw__registry *r, const pw__rtopic *t);
static inline void pw__registry_unlock(pw__reg_shard *s) { uv_mutex_unlock(&s->lock); }
/* Shard lock held: free t if no loop, no one and no state holds it. */
void pw__registry_release_locked(pw__registry *r, pw__rtopic *t);

#endif
