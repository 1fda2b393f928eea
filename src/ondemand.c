/* Topic producers on demand (pw_topic_on_demand).
 * Design notes: each loop reports only its own 0 -> 1 and 1 -> 0 subscriber transitions to the
 * server's registry (registry.h), which counts the loops that have subscribers under the
 * entry's shard lock and calls here, so the producer starts on the first subscriber anywhere
 * and stops on the last one everywhere, never twice. A producer
 * asked to stop may still be running when a new subscriber arrives: then it is revived (its
 * stop flag cleared) instead of started again, and the wrapper that runs the user's function
 * decides "run again or end" under the same lock, so no subscriber is ever left without a
 * producer and no topic ever gets two. */
#include "ondemand.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

typedef struct pw__od_pattern {
  struct pw__od_pattern *next;
  pw_topic_fn fn;
  void *arg;
  size_t len; /* of the prefix when `prefix`, else of the whole name */
  int prefix; /* the pattern ended in '*' */
  char text[];
} pw__od_pattern;

/* A topic's producer, hung on its registry entry (which it keeps alive); shard lock. */
typedef struct pw__od_topic {
  pw__rtopic *topic;
  const pw__od_pattern *pattern;
  int running; /* the producer task exists (it may be finishing) */
  int revived; /* asked to stop, then wanted again before it returned */
  char key[8 + 256];
} pw__od_topic;

void pw__ondemand_init(pw__ondemand *od) {
  uv_mutex_init(&od->lock);
  od->patterns = NULL;
  atomic_init(&od->failed, 0);
}

void pw__ondemand_destroy(pw__ondemand *od) {
  while (od->patterns) {
    pw__od_pattern *p = od->patterns;
    od->patterns = p->next;
    free(p);
  }
  uv_mutex_destroy(&od->lock);
}

int pw_topic_on_demand(pw_server *srv, const char *pattern, pw_topic_fn fn, void *arg) {
  size_t len = pattern ? strlen(pattern) : 0;
  if (!srv || !fn || len == 0 || len > PW__TOPIC_MAX) return PW_EINVAL;
  pw__od_pattern *p = calloc(1, sizeof *p + len + 1);
  if (!p) return PW_ENOMEM;
  memcpy(p->text, pattern, len);
  p->prefix = pattern[len - 1] == '*';
  p->len = p->prefix ? len - 1 : len;
  p->fn = fn;
  p->arg = arg;
  uv_mutex_lock(&srv->ondemand.lock);
  p->next = srv->ondemand.patterns;
  srv->ondemand.patterns = p;
  uv_mutex_unlock(&srv->ondemand.lock);
  return 0;
}

static const pw__od_pattern *match(pw__ondemand *od, const char *name, size_t len) {
  const pw__od_pattern *p;
  uv_mutex_lock(&od->lock);
  for (p = od->patterns; p; p = p->next)
    if (p->prefix ? len >= p->len && memcmp(name, p->text, p->len) == 0
                  : len == p->len && memcmp(name, p->text, len) == 0)
      break;
  uv_mutex_unlock(&od->lock);
  return p; /* patterns are never removed before pw_server_free */
}

/* Shard lock held: the topic wants no producer any more and has none running. The entry is
 * the caller's to release (it may then go). */
static pw__rtopic *forget(pw__od_topic *p) {
  pw__rtopic *t = p->topic;
  t->producer = NULL;
  free(p);
  return t;
}

/* The task: run the user's producer until no subscriber wants it any more. */
static void producer_main(pw_server *srv, void *arg) {
  pw__od_topic *p = arg;
  for (;;) {
    p->pattern->fn(srv, p->topic->name, p->pattern->arg);
    pw__reg_shard *s = pw__registry_lock(&srv->registry, p->topic);
    int again = p->topic->loops > 0 && p->revived; /* a subscriber came back as it stopped */
    p->revived = 0;
    if (again) {
      pw__registry_unlock(s);
      continue;
    }
    p->running = 0;
    pw_task_done();
    if (p->topic->loops == 0) /* nobody wants it */
      pw__registry_release_locked(&srv->registry, forget(p));
    pw__registry_unlock(s);
    return;
  }
}

static void count_failure(pw_server *srv, const char *name, size_t len, int r) {
  atomic_fetch_add_explicit(&srv->ondemand.failed, 1, memory_order_relaxed);
  pw__log(srv, PW_LOG_ERROR,
          "on-demand producer for %.*s not started: %s (tried again at its "
          "next first subscriber on a loop)",
          (int)len, name, pw_strerror(r));
}

/* A producer that cannot start (no thread, or its key taken by another task) is counted and
 * logged once per attempt; the topic keeps its subscribers and is tried again at its next
 * first subscriber on any loop. At a stop no producer should start: not a failure. */
static void start_or_revive(pw_server *srv, pw__od_topic *p) {
  if (p->running && pw__task_revive(srv, p->key) == 0) {
    p->revived = 1;
    return;
  }
  int r = pw_task_start(srv, p->key, producer_main, p);
  p->running = r == 0;
  if (r != 0 && r != PW_ESTOPPED) count_failure(srv, p->topic->name, p->topic->len, r);
}

static pw__od_topic *producer_new(pw_server *srv, const pw__od_pattern *pat, pw__rtopic *t) {
  pw__od_topic *p = calloc(1, sizeof *p);
  if (!p) return count_failure(srv, t->name, t->len, PW_ENOMEM), NULL;
  snprintf(p->key, sizeof p->key, "topic:%s", t->name);
  p->pattern = pat;
  p->topic = t;
  t->producer = p;
  return p;
}

void pw__ondemand_joined(pw_server *srv, pw__rtopic *t) {
  pw__od_topic *p = t->producer;
  if (!p) {
    const pw__od_pattern *pat = match(&srv->ondemand, t->name, t->len);
    if (!pat || !(p = producer_new(srv, pat, t))) return;
  }
  /* its first loop, or a producer missing though subscribers are there (it failed to start) */
  if (t->loops == 1 || !p->running) start_or_revive(srv, p);
}

void pw__ondemand_left(pw_server *srv, pw__rtopic *t) {
  pw__od_topic *p = t->producer;
  if (!p || t->loops > 0) return;
  if (p->running) pw_task_stop(srv, p->key); /* from the loop thread this only asks */
  else forget(p); /* its producer never started, or has ended (registry.c releases t) */
}
