/* Topic producers on demand: a producer task per topic that starts when the topic gets its
 * first subscriber on any loop and is asked to stop when the last one leaves. */
#ifndef PW_ONDEMAND_H
#define PW_ONDEMAND_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "pushwire.h"

struct pw__od_pattern;
struct pw__od_topic;

typedef struct pw__ondemand {
  uv_mutex_t lock; /* order: this lock, then the task registry's */
  struct pw__od_pattern *patterns;
  struct pw__od_topic *topics; /* topics with a producer wanted or still running */
  _Atomic uint64_t failed;     /* producers that could not start (stats.producers_failed) */
} pw__ondemand;

void pw__ondemand_init(pw__ondemand *od);
void pw__ondemand_destroy(pw__ondemand *od);
/* A loop's topic got its first subscriber / lost its last one (loop thread). */
void pw__ondemand_first(pw_server *srv, const char *name, size_t len);
void pw__ondemand_last(pw_server *srv, const char *name, size_t len);

#endif
