/* Topic producers on demand: a producer task per topic that starts when the topic gets its
 * first subscriber on any loop and is asked to stop when the last one leaves. */
#ifndef PW_ONDEMAND_H
#define PW_ONDEMAND_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "pushwire.h"

#include "registry.h"

struct pw__od_pattern;

/* A topic's producer state hangs on its registry entry (registry.h), under the entry's shard
 * lock: lock order a shard, then `lock` (the patterns), then the task registry's. */
typedef struct pw__ondemand {
  uv_mutex_t lock; /* the pattern list */
  struct pw__od_pattern *patterns;
  _Atomic uint64_t failed; /* producers that could not start (stats.producers_failed) */
} pw__ondemand;

void pw__ondemand_init(pw__ondemand *od);
void pw__ondemand_destroy(pw__ondemand *od);
/* Shard lock held (registry.c): a loop joined the topic (t->loops counts it already) / left
 * it (t->loops no longer counts it). */
void pw__ondemand_joined(pw_server *srv, pw__rtopic *t);
void pw__ondemand_left(pw_server *srv, pw__rtopic *t);

#endif
