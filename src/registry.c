/* The server's registry of topics: see registry.h for the design notes. */
#include "registry.h"

#include <stdlib.h>
#include <string.h>

#include "history.h"
#include "ondemand.h"
#include "server.h"
#include "topic.h"

static pw__reg_shard *shard_of(pw__registry *r, uint64_t hash) {
  return &r->shards[(hash >> 32) % PW__REG_SHARDS]; /* high bits: the buckets use the low */
}

void pw__registry_init(pw__registry *r) {
  memset(r, 0, sizeof *r);
  for (int i = 0; i < PW__REG_SHARDS; i++) uv_mutex_init(&r->shards[i].lock);
}

void pw__registry_destroy(pw__registry *r) {
  for (int i = 0; i < PW__REG_SHARDS; i++) {
    pw__reg_shard *s = &r->shards[i];
    for (size_t b = 0; b < s->nbuckets; b++)
      for (pw__rtopic *t = s->buckets[b], *next; t; t = next) {
        next = t->next;
        free(t->producer); /* none left once every task has returned; to be sure */
        free(t);
      }
    free(s->buckets);
    uv_mutex_destroy(&s->lock);
  }
}

static pw__rtopic **bucket(pw__reg_shard *s, uint64_t hash) {
  return &s->buckets[hash & (s->nbuckets - 1)];
}

static pw__rtopic *find(pw__reg_shard *s, const char *name, size_t len, uint64_t hash) {
  if (!s->nbuckets) return NULL;
  for (pw__rtopic *t = *bucket(s, hash); t; t = t->next)
    if (t->hash == hash && t->len == len && memcmp(t->name, name, len) == 0) return t;
  return NULL;
}

/* Keep chains short: double the buckets when the shard holds more entries than buckets. */
static int grow(pw__reg_shard *s) {
  size_t n = s->nbuckets ? s->nbuckets * 2 : 16;
  pw__rtopic **b = calloc(n, sizeof *b);
  if (!b) return -1;
  for (size_t i = 0; i < s->nbuckets; i++)
    for (pw__rtopic *t = s->buckets[i], *next; t; t = next) {
      next = t->next;
      t->next = b[t->hash & (n - 1)];
      b[t->hash & (n - 1)] = t;
    }
  free(s->buckets);
  s->buckets = b;
  s->nbuckets = n;
  return 0;
}

static pw__rtopic *create(pw__reg_shard *s, const char *name, size_t len, uint64_t hash) {
  if (s->count >= s->nbuckets && grow(s) != 0) return NULL;
  pw__rtopic *t = calloc(1, sizeof *t + len + 1);
  if (!t) return NULL;
  memcpy(t->name, name, len);
  t->len = len;
  t->hash = hash;
  t->next = *bucket(s, hash);
  *bucket(s, hash) = t;
  s->count++;
  return t;
}

void pw__registry_release_locked(pw__registry *r, pw__rtopic *t) {
  pw__reg_shard *s = shard_of(r, t->hash);
  if (t->loops > 0 || t->producer || t->history || atomic_load(&t->refs) > 0) return;
  for (pw__rtopic **p = bucket(s, t->hash); *p; p = &(*p)->next)
    if (*p == t) {
      *p = t->next;
      s->count--;
      free(t);
      return;
    }
}

pw__rtopic *pw__registry_join(pw_server *srv, const char *name, size_t len) {
  pw__registry *r = &srv->registry;
  uint64_t hash = pw__topic_hash(name, len);
  pw__reg_shard *s = shard_of(r, hash);
  uv_mutex_lock(&s->lock);
  pw__rtopic *t = find(s, name, len, hash);
  if (!t) t = create(s, name, len, hash);
  if (t && t->loops++ == 0) atomic_fetch_add_explicit(&r->topics, 1, memory_order_relaxed);
  if (t) pw__ondemand_joined(srv, t);
  uv_mutex_unlock(&s->lock);
  return t;
}

void pw__registry_leave(pw_server *srv, pw__rtopic *t) {
  pw__registry *r = &srv->registry;
  pw__reg_shard *s = shard_of(r, t->hash);
  uv_mutex_lock(&s->lock);
  if (--t->loops == 0) atomic_fetch_sub_explicit(&r->topics, 1, memory_order_relaxed);
  pw__ondemand_left(srv, t);
  pw__registry_release_locked(r, t);
  uv_mutex_unlock(&s->lock);
}

pw__rtopic *pw__registry_acquire(pw_server *srv, const char *name, size_t len, int make) {
  uint64_t hash = pw__topic_hash(name, len);
  pw__reg_shard *s = shard_of(&srv->registry, hash);
  uv_mutex_lock(&s->lock);
  pw__rtopic *t = find(s, name, len, hash);
  if (!t && make) t = create(s, name, len, hash);
  if (t) atomic_fetch_add(&t->refs, 1);
  uv_mutex_unlock(&s->lock);
  return t;
}

pw__rtopic *pw__registry_acquire_history(pw_server *srv, const char *name, size_t len) {
  int wanted = pw__history_pattern(&srv->histories, name, len) != NULL;
  uint64_t hash = pw__topic_hash(name, len);
  pw__reg_shard *s = shard_of(&srv->registry, hash);
  uv_mutex_lock(&s->lock);
  pw__rtopic *t = find(s, name, len, hash);
  if (!t && wanted) t = create(s, name, len, hash);
  if (t) {
    atomic_fetch_add(&t->refs, 1);
    pw__history_get(srv, t, wanted);
  }
  uv_mutex_unlock(&s->lock);
  return t;
}

/* The last holder to let go frees an entry nothing else keeps; the count may reach 0 without
 * the lock, so the check is made again under it. */
void pw__registry_release(pw_server *srv, pw__rtopic *t) {
  if (atomic_fetch_sub(&t->refs, 1) != 1) return;
  pw__reg_shard *s = shard_of(&srv->registry, t->hash);
  uv_mutex_lock(&s->lock);
  pw__registry_release_locked(&srv->registry, t);
  uv_mutex_unlock(&s->lock);
}

void pw__registry_count(pw__registry *r, pw__rtopic *t, int delta) {
  atomic_fetch_add_explicit(&t->subscribers, (uint64_t)(int64_t)delta, memory_order_relaxed);
  atomic_fetch_add_explicit(&r->subscriptions, (uint64_t)(int64_t)delta, memory_order_relaxed);
}

uint64_t pw__registry_subscribers(pw__registry *r, const char *name, size_t len) {
  uint64_t hash = pw__topic_hash(name, len), n = 0;
  pw__reg_shard *s = shard_of(r, hash);
  uv_mutex_lock(&s->lock);
  pw__rtopic *t = find(s, name, len, hash);
  if (t) n = atomic_load_explicit(&t->subscribers, memory_order_relaxed);
  uv_mutex_unlock(&s->lock);
  return n;
}

pw__reg_shard *pw__registry_lock(pw__registry *r, const pw__rtopic *t) {
  pw__reg_shard *s = shard_of(r, t->hash);
  uv_mutex_lock(&s->lock);
  return s;
}
