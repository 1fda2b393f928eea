/* Topic producers on demand (pw_topic_on_demand).
 * Design notes: each loop reports only its own 0 -> 1 and 1 -> 0 subscriber transitions; the
 * registry counts the loops that have subscribers, under one mutex, so the producer starts on
 * the first subscriber anywhere and stops on the last one everywhere, never twice. A producer
 * asked to stop may still be running when a new subscriber arrives: then it is revived (its
 * stop flag cleared) instead of started again, and the wrapper that runs the user's function
 * decides "run again or end" under the same mutex, so no subscriber is ever left without a
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
  size_t len;      /* of the prefix when `prefix`, else of the whole name */
  int prefix;      /* the pattern ended in '*' */
  char text[];
} pw__od_pattern;

typedef struct pw__od_topic {
  struct pw__od_topic *next;
  pw_server *srv;
  const pw__od_pattern *pattern;
  unsigned loops;  /* loops with at least one subscriber */
  int running;     /* the producer task exists (it may be finishing) */
  int revived;     /* asked to stop, then wanted again before it returned */
  char key[8 + 256];
  char name[256];
} pw__od_topic;

void pw__ondemand_init(pw__ondemand *od) {
  uv_mutex_init(&od->lock);
  od->patterns = NULL;
  od->topics = NULL;
  atomic_init(&od->failed, 0);
}

void pw__ondemand_destroy(pw__ondemand *od) {
  while (od->patterns) {
    pw__od_pattern *p = od->patterns;
    od->patterns = p->next;
    free(p);
  }
  while (od->topics) { /* the tasks were joined before this */
    pw__od_topic *t = od->topics;
    od->topics = t->next;
    free(t);
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

static const pw__od_pattern *match(const pw__ondemand *od, const char *name, size_t len) {
  for (const pw__od_pattern *p = od->patterns; p; p = p->next)
    if (p->prefix ? len >= p->len && memcmp(name, p->text, p->len) == 0
                  : len == p->len && memcmp(name, p->text, len) == 0)
      return p;
  return NULL;
}

static pw__od_topic **find(pw__ondemand *od, const char *name, size_t len) {
  pw__od_topic **t = &od->topics;
  while (*t && (strlen((*t)->name) != len || memcmp((*t)->name, name, len) != 0)) t = &(*t)->next;
  return t;
}

static void forget(pw__ondemand *od, pw__od_topic *t) {
  pw__od_topic **pt = find(od, t->name, strlen(t->name));
  *pt = t->next;
  free(t);
}

/* The task: run the user's producer until no subscriber wants it any more. */
static void producer_main(pw_server *srv, void *arg) {
  pw__od_topic *t = arg;
  pw__ondemand *od = &srv->ondemand;
  for (;;) {
    t->pattern->fn(srv, t->name, t->pattern->arg);
    uv_mutex_lock(&od->lock);
    int again = t->loops > 0 && t->revived; /* a subscriber came back as it was stopping */
    t->revived = 0;
    if (again) {
      uv_mutex_unlock(&od->lock);
      continue;
    }
    t->running = 0;
    pw_task_done();
    if (t->loops == 0) forget(od, t); /* nobody wants it */
    uv_mutex_unlock(&od->lock);
    return;
  }
}

static void count_failure(pw_server *srv, const char *name, size_t len, int r) {
  atomic_fetch_add_explicit(&srv->ondemand.failed, 1, memory_order_relaxed);
  pw__log(srv, PW_LOG_ERROR, "on-demand producer for %.*s not started: %s (tried again at its "
          "next first subscriber on a loop)", (int)len, name, pw_strerror(r));
}

/* A producer that cannot start (no thread, or its key taken by another task) is counted and
 * logged once per attempt; the topic keeps its subscribers and is tried again at its next
 * first subscriber on any loop. At a stop no producer should start: not a failure. */
static void start_or_revive(pw_server *srv, pw__od_topic *t) {
  if (t->running && pw__task_revive(srv, t->key) == 0) {
    t->revived = 1;
    return;
  }
  int r = pw_task_start(srv, t->key, producer_main, t);
  t->running = r == 0;
  if (r != 0 && r != PW_ESTOPPED) count_failure(srv, t->name, strlen(t->name), r);
}

static pw__od_topic *topic_new(pw_server *srv, const pw__od_pattern *p, const char *name,
                              size_t len) {
  pw__od_topic *t = calloc(1, sizeof *t);
  if (!t) return count_failure(srv, name, len, PW_ENOMEM), NULL;
  memcpy(t->name, name, len);
  snprintf(t->key, sizeof t->key, "topic:%s", t->name);
  t->pattern = p;
  t->srv = srv;
  return t;
}

void pw__ondemand_first(pw_server *srv, const char *name, size_t len) {
  pw__ondemand *od = &srv->ondemand;
  uv_mutex_lock(&od->lock);
  const pw__od_pattern *p = match(od, name, len);
  pw__od_topic **pt = p ? find(od, name, len) : NULL;
  if (pt && !*pt) *pt = topic_new(srv, p, name, len);
  /* 0 -> 1 loops, or a producer missing though subscribers are there (it failed to start) */
  if (pt && *pt && ((*pt)->loops++ == 0 || !(*pt)->running)) start_or_revive(srv, *pt);
  uv_mutex_unlock(&od->lock);
}

void pw__ondemand_last(pw_server *srv, const char *name, size_t len) {
  pw__ondemand *od = &srv->ondemand;
  uv_mutex_lock(&od->lock);
  pw__od_topic *t = match(od, name, len) ? *find(od, name, len) : NULL;
  if (t && t->loops > 0 && --t->loops == 0) {
    if (t->running) pw_task_stop(srv, t->key); /* from the loop thread this only asks */
    else forget(od, t); /* its producer never started, or has ended */
  }
  uv_mutex_unlock(&od->lock);
}
