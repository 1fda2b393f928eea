/* Topic history: see history.h for the design notes. Any thread, under the locks named
 * there. */
#include "history.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "registry.h"
#include "server.h"
#include "util.h"

uint64_t pw__history_now_ms(void) { return uv_hrtime() / 1000000u; }

/* ---- patterns ------------------------------------------------------------------------------- */
void pw__histories_init(pw__histories *hs, size_t cap) {
  memset(hs, 0, sizeof *hs);
  uv_mutex_init(&hs->lock);
  hs->cap = cap;
}

static void fill_defaults(pw_history_options *o) {
  if (!o->max_messages) o->max_messages = 100;
  if (!o->max_bytes) o->max_bytes = 1u << 20;
  if (!o->meta_ttl_ms) o->meta_ttl_ms = 3600 * 1000;
  if (!o->max_recovery) o->max_recovery = o->max_messages;
}

int pw_topic_history(pw_server *srv, const char *pattern, const pw_history_options *opt) {
  size_t len = pattern ? strlen(pattern) : 0;
  if (!srv || len == 0 || len > 255) return PW_EINVAL;
  if (opt && (opt->ttl_ms < 0 || opt->meta_ttl_ms < 0)) return PW_EINVAL;
  pw__hpattern *p = calloc(1, sizeof *p + len + 1);
  if (!p) return PW_ENOMEM;
  if (opt) p->opt = *opt;
  fill_defaults(&p->opt);
  memcpy(p->text, pattern, len);
  p->prefix = pattern[len - 1] == '*';
  p->len = p->prefix ? len - 1 : len;
  pw__histories *hs = &srv->histories;
  uv_mutex_lock(&hs->lock); /* writers in turn; readers need no lock (see below) */
  _Atomic(pw__hpattern *) *tail = &hs->patterns; /* the first registered that matches wins */
  while (atomic_load(tail)) tail = &atomic_load(tail)->next;
  atomic_store_explicit(tail, p, memory_order_release);
  atomic_store(&hs->any, 1);
  uv_mutex_unlock(&hs->lock);
  return 0;
}

static int matches(const pw__hpattern *p, const char *name, size_t len) {
  return p->prefix ? len >= p->len && memcmp(name, p->text, p->len) == 0
                   : len == p->len && memcmp(name, p->text, len) == 0;
}

/* Every publish asks this (a daemon gives every topic history), so it takes no lock: the list
 * only grows, at its end, each node published with a release store, and nodes are freed only
 * by pw_server_free. */
const pw__hpattern *pw__history_pattern(pw__histories *hs, const char *name, size_t len) {
  if (!atomic_load_explicit(&hs->any, memory_order_acquire)) return NULL;
  const pw__hpattern *p = atomic_load_explicit(&hs->patterns, memory_order_acquire);
  while (p && !matches(p, name, len)) p = atomic_load_explicit(&p->next, memory_order_acquire);
  return p;
}

/* ---- one history: made, freed ---------------------------------------------------------------- */
/* 8 characters of [0-9A-Za-z] from the kernel's random source: 47 bits, so two streams of
 * one topic (a restart, a history that was swept) are never taken for one another. */
static void new_epoch(char out[PW_EPOCH_LEN + 1]) {
  static const char digits[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  uint8_t r[PW_EPOCH_LEN];
  uint64_t fallback = uv_hrtime() ^ (uint64_t)(uintptr_t)out;
  if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
    for (size_t i = 0; i < sizeof r; i++) r[i] = (uint8_t)(fallback >> (8 * i) ^ i * 131u);
  for (size_t i = 0; i < PW_EPOCH_LEN; i++) out[i] = digits[r[i] % 62];
  out[PW_EPOCH_LEN] = 0;
}

/* Link h as the newest of the list (its lock taken here). */
static void link_newest(pw__histories *hs, pw__history *h) {
  h->next = NULL;
  h->prev = hs->newest;
  if (hs->newest) hs->newest->next = h;
  else hs->oldest = h;
  hs->newest = h;
}

static void unlink_from_list(pw__histories *hs, pw__history *h) {
  if (h->prev) h->prev->next = h->next;
  else hs->oldest = h->next;
  if (h->next) h->next->prev = h->prev;
  else hs->newest = h->prev;
  h->prev = h->next = NULL;
}

static pw__history *history_new(pw_server *srv, const pw__hpattern *cfg, pw__rtopic *t) {
  pw__history *h = calloc(1, sizeof *h);
  if (h) h->loops = aligned_alloc(_Alignof(pw__hloop), srv->nloops * sizeof *h->loops);
  if (!h || !h->loops) return h ? free(h) : (void)0, NULL;
  memset(h->loops, 0, srv->nloops * sizeof *h->loops);
  uv_mutex_init(&h->lock);
  h->all = &srv->histories;
  h->cfg = cfg;
  h->topic = t;
  h->nloops = srv->nloops;
  atomic_init(&h->last_ms, pw__history_now_ms());
  new_epoch(h->epoch);
  return h;
}

pw__history *pw__history_get(pw_server *srv, pw__rtopic *t, int create) {
  if (t->history || !create) return t->history;
  const pw__hpattern *cfg = pw__history_pattern(&srv->histories, t->name, t->len);
  if (!cfg || !(t->history = history_new(srv, cfg, t))) return NULL;
  pw__histories *hs = &srv->histories;
  uv_mutex_lock(&hs->lock);
  link_newest(hs, t->history);
  uv_mutex_unlock(&hs->lock);
  atomic_fetch_add_explicit(&hs->topics, 1, memory_order_relaxed);
  return t->history;
}

static void drop_all(pw__history *h);

void pw__history_free(pw_server *srv, pw__history *h) {
  pw__histories *hs = &srv->histories;
  uv_mutex_lock(&h->lock);
  drop_all(h);
  uv_mutex_unlock(&h->lock);
  uv_mutex_lock(&hs->lock);
  unlink_from_list(hs, h);
  uv_mutex_unlock(&hs->lock);
  atomic_fetch_sub_explicit(&hs->topics, 1, memory_order_relaxed);
  h->topic->history = NULL;
  uv_mutex_destroy(&h->lock);
  free(h->ring);
  free(h->loops);
  free(h);
}

void pw__histories_free_all(pw_server *srv) {
  pw__histories *hs = &srv->histories;
  while (hs->oldest) pw__history_free(srv, hs->oldest); /* nothing runs any more: no locks */
}

void pw__histories_destroy(pw__histories *hs) {
  for (pw__hpattern *p = atomic_load(&hs->patterns), *next; p; p = next) {
    next = atomic_load(&p->next);
    free(p);
  }
  uv_mutex_destroy(&hs->lock); /* the histories went with their registry entries */
}

/* ---- the ring (h->lock held) ----------------------------------------------------------------- */
static pw__hentry *at(const pw__history *h, uint32_t i) { return &h->ring[(h->head + i) % h->cap]; }

uint64_t pw__history_first(const pw__history *h) { return h->top - h->count + 1; }

/* The oldest message leaves. */
static void drop_oldest(pw__history *h) {
  pw__hentry *e = at(h, 0);
  size_t n = pw__buf_wire_len(e->frame);
  h->bytes -= n;
  atomic_fetch_sub_explicit(&h->all->bytes, n, memory_order_relaxed);
  pw_buf_unref(e->frame);
  e->frame = NULL;
  h->head = (h->head + 1) % h->cap;
  h->count--;
  atomic_store_explicit(&h->kept, h->count, memory_order_relaxed);
}

static void drop_all(pw__history *h) {
  while (h->count) drop_oldest(h);
}

/* Room for one more entry: the ring grows by doubling up to max_messages (a topic with a
 * few messages does not pay for a hundred slots). The kept entries move to the front. */
static int ring_room(pw__history *h) {
  uint32_t max = h->cfg->opt.max_messages;
  if (h->count < h->cap) return 0;
  if (h->cap >= max) return drop_oldest(h), 0;
  uint32_t cap = h->cap ? h->cap * 2 : 4;
  if (cap > max) cap = max;
  pw__hentry *ring = malloc(cap * sizeof *ring);
  if (!ring) return PW_ENOMEM;
  for (uint32_t i = 0; i < h->count; i++) ring[i] = *at(h, i);
  free(h->ring);
  h->ring = ring;
  h->cap = cap;
  h->head = 0;
  return 0;
}

int pw__history_append(pw__history *h, pw_buf *frame, uint64_t now_ms) {
  size_t n = pw__buf_wire_len(frame);
  /* the byte limit: older messages leave first; the newest one is always kept */
  while (h->count && h->bytes + n > h->cfg->opt.max_bytes) {
    drop_oldest(h);
    atomic_fetch_add_explicit(&h->all->evictions, 1, memory_order_relaxed);
  }
  if (ring_room(h) != 0) return PW_ENOMEM;
  pw__hentry *e = at(h, h->count);
  e->offset = h->top + 1;
  e->time_ms = now_ms;
  e->frame = frame;
  h->count++;
  atomic_store_explicit(&h->kept, h->count, memory_order_relaxed);
  h->top++;
  h->bytes += n;
  atomic_fetch_add_explicit(&h->all->bytes, n, memory_order_relaxed);
  return 0;
}

void pw__history_expire(pw__history *h, uint64_t now_ms) {
  int ttl = h->cfg->opt.ttl_ms;
  while (ttl > 0 && h->count && now_ms - at(h, 0)->time_ms >= (uint64_t)ttl) drop_oldest(h);
}

size_t pw__history_copy(const pw__history *h, uint64_t from, uint64_t to, pw_buf **out,
                        size_t max) {
  uint64_t first = pw__history_first(h);
  if (from < first) from = first;
  size_t n = 0;
  for (uint64_t o = from; o <= to && o <= h->top && n < max; o++, n++) {
    out[n] = at(h, (uint32_t)(o - first))->frame;
    pw_buf_ref(out[n]);
  }
  return n;
}

size_t pw__history_span_bytes(const pw__history *h, uint64_t from, uint64_t to) {
  uint64_t first = pw__history_first(h);
  size_t bytes = 0;
  for (uint64_t o = from < first ? first : from; o <= to && o <= h->top; o++)
    bytes += pw__buf_wire_len(at(h, (uint32_t)(o - first))->frame);
  return bytes;
}

void pw__history_position(const pw__history *h, pw_position *pos) {
  memcpy(pos->epoch, h->epoch, sizeof pos->epoch);
  pos->offset = h->top;
}

/* ---- the list of all: the cap and the sweep -------------------------------------------------- */
/* The least recently published history with messages other than `keep` (or `keep` itself
 * when it has more than one and no other has any), with a reference on its topic so that it
 * cannot go; NULL if none. */
static pw__rtopic *pick_victim(pw__histories *hs, const pw__history *keep) {
  pw__rtopic *t = NULL;
  uv_mutex_lock(&hs->lock);
  for (pw__history *h = hs->oldest; h && !t; h = h->next)
    if (h != keep && atomic_load_explicit(&h->kept, memory_order_relaxed)) t = h->topic;
  if (!t && atomic_load_explicit(&keep->kept, memory_order_relaxed) > 1) t = keep->topic;
  if (t) atomic_fetch_add(&t->refs, 1);
  uv_mutex_unlock(&hs->lock);
  return t;
}

/* Take h's messages, oldest first, while the cap is exceeded and more than `keep` are left.
 * 1 if any left. */
static int shed(pw__histories *hs, pw__history *h, uint32_t keep) {
  int any = 0;
  uv_mutex_lock(&h->lock);
  while (h->count > keep && atomic_load(&hs->bytes) > hs->cap) {
    drop_oldest(h);
    atomic_fetch_add_explicit(&hs->evictions, 1, memory_order_relaxed);
    any = 1;
  }
  uv_mutex_unlock(&h->lock);
  return any;
}

/* The list's order needs no precision finer than PW__LRU_SLACK_MS: a topic published again
 * within it is not moved (one lock per publish on every topic would be a global mutex). */
#define PW__LRU_SLACK_MS 10

void pw__histories_published(pw_server *srv, pw__history *h) {
  pw__histories *hs = &srv->histories;
  uint64_t now = pw__history_now_ms();
  int over = atomic_load(&hs->bytes) > hs->cap;
  if (!over && now - atomic_load_explicit(&h->last_ms, memory_order_relaxed) < PW__LRU_SLACK_MS)
    return;
  uv_mutex_lock(&hs->lock);
  atomic_store_explicit(&h->last_ms, now, memory_order_relaxed);
  unlink_from_list(hs, h);
  link_newest(hs, h);
  uv_mutex_unlock(&hs->lock);
  while (atomic_load(&hs->bytes) > hs->cap) {
    pw__rtopic *t = pick_victim(hs, h);
    if (!t) break;
    int any = shed(hs, t->history, t->history == h ? 1 : 0); /* h keeps its newest */
    pw__registry_release(srv, t);
    if (!any) break;
  }
}

/* Histories to look at now, each with a reference on its topic: those with a ttl and
 * messages, and those whose meta ttl has passed since their last publish. */
static size_t sweep_candidates(pw__histories *hs, uint64_t now_ms, pw__rtopic ***out) {
  size_t n = 0, cap = 0;
  *out = NULL;
  uv_mutex_lock(&hs->lock);
  for (pw__history *h = hs->oldest; h; h = h->next) {
    const pw_history_options *o = &h->cfg->opt;
    int aging = o->ttl_ms > 0 && atomic_load_explicit(&h->kept, memory_order_relaxed);
    uint64_t last = atomic_load_explicit(&h->last_ms, memory_order_relaxed);
    if (!aging && now_ms - last < (uint64_t)o->meta_ttl_ms) continue;
    if (pw__grow((void **)out, &cap, n + 1, sizeof **out, 16) != 0) break;
    atomic_fetch_add(&h->topic->refs, 1);
    (*out)[n++] = h->topic;
  }
  uv_mutex_unlock(&hs->lock);
  return n;
}

/* One candidate: its old messages leave; a history left with none, no subscriber, nobody
 * else holding the topic and its meta ttl past is freed. */
static void sweep_one(pw_server *srv, pw__rtopic *t, uint64_t now_ms) {
  pw__reg_shard *s = pw__registry_lock(&srv->registry, t);
  pw__history *h = t->history;
  if (h) {
    uv_mutex_lock(&h->lock);
    pw__history_expire(h, now_ms);
    int empty = h->count == 0;
    uv_mutex_unlock(&h->lock);
    pw__histories *hs = &srv->histories;
    uv_mutex_lock(&hs->lock);
    uint64_t last = atomic_load_explicit(&h->last_ms, memory_order_relaxed);
    int gone = empty && now_ms - last >= (uint64_t)h->cfg->opt.meta_ttl_ms;
    uv_mutex_unlock(&hs->lock);
    if (gone && t->loops == 0 && atomic_load(&t->refs) == 1) pw__history_free(srv, h);
  }
  pw__registry_unlock(s);
  pw__registry_release(srv, t);
}

void pw__histories_sweep(pw_server *srv, uint64_t now_ms) {
  pw__histories *hs = &srv->histories;
  if (!atomic_load_explicit(&hs->any, memory_order_acquire) || now_ms < hs->next_sweep_ms) return;
  hs->next_sweep_ms = now_ms + 1000;
  pw__rtopic **list;
  size_t n = sweep_candidates(hs, now_ms, &list);
  for (size_t i = 0; i < n; i++) sweep_one(srv, list[i], now_ms);
  free(list);
}
