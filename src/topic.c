/* Topics of one loop: see topic.h for the structure and why. Loop thread only. */
#include "topic.h"

#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "loop.h"
#include "registry.h"
#include "pmd.h"
#include "server.h"
#include "util.h"

static pw__topic **bucket(const pw__topics *t, uint64_t h) {
  return &t->buckets[h & (t->nbuckets - 1)];
}

static pw__topic *find(const pw__topics *t, const char *name, size_t len, uint64_t h) {
  if (!t->nbuckets) return NULL;
  for (pw__topic *p = *bucket(t, h); p; p = p->next)
    if (p->hash == h && p->len == len && memcmp(p->name, name, len) == 0) return p;
  return NULL;
}

/* Keep chains short: double the table when it holds more topics than buckets. */
static int grow(pw__topics *t) {
  size_t n = t->nbuckets ? t->nbuckets * 2 : 64;
  pw__topic **b = calloc(n, sizeof *b);
  if (!b) return -1;
  for (size_t i = 0; i < t->nbuckets; i++)
    for (pw__topic *p = t->buckets[i], *next; p; p = next) {
      next = p->next;
      p->next = b[p->hash & (n - 1)];
      b[p->hash & (n - 1)] = p;
    }
  free(t->buckets);
  t->buckets = b;
  t->nbuckets = n;
  return 0;
}

static pw__topic *create(pw__topics *t, const char *name, size_t len, uint64_t h) {
  if (t->count >= t->nbuckets && grow(t) != 0) return NULL;
  pw__topic *p = calloc(1, sizeof *p + len + 1);
  if (!p) return NULL;
  memcpy(p->name, name, len);
  p->len = len;
  p->hash = h;
  p->next = *bucket(t, h);
  *bucket(t, h) = p;
  t->count++;
  return p;
}

static void unlink_topic(pw__topics *t, pw__topic *p) {
  for (pw__topic **pp = bucket(t, p->hash); *pp; pp = &(*pp)->next)
    if (*pp == p) {
      *pp = p->next;
      t->count--;
      break;
    }
  free(p->subs);
  free(p);
}

void pw__topics_destroy(pw__topics *t) {
  for (size_t i = 0; i < t->nbuckets; i++)
    for (pw__topic *p = t->buckets[i], *next; p; p = next) {
      next = p->next;
      free(p->subs);
      free(p);
    }
  free(t->buckets);
  memset(t, 0, sizeof *t);
}

/* Make room for one more element in a growable array. */
static int reserve(void **arr, uint32_t n, uint32_t *cap, size_t elem) {
  return pw__grow32(arr, cap, (size_t)n + 1, elem, 4);
}

static int find_sub(const pw__conn *c, const pw__topic *p) {
  for (uint32_t i = 0; i < c->nsubs; i++)
    if (c->subs[i].topic == p) return (int)i;
  return -1;
}

/* A subscription that does not happen: counted, whichever thread asked for it. */
static int refused(pw__loop *l, int code) {
  pw__stat_add(&l->stats.subscriptions_refused, 1);
  return code;
}

int pw__topic_subscribe(pw__loop *l, pw__conn *c, const char *name, size_t len) {
  uint64_t h = pw__topic_hash(name, len);
  pw__topic *p = find(&l->topics, name, len, h);
  if (p && find_sub(c, p) >= 0) return 0;
  if (c->nsubs >= l->srv->opt.max_subscriptions) return refused(l, PW_EAGAIN);
  if (!p && !(p = create(&l->topics, name, len, h))) return refused(l, PW_ENOMEM);
  if (reserve((void **)&p->subs, p->nsubs, &p->cap, sizeof *p->subs) != 0 ||
      reserve((void **)&c->subs, c->nsubs, &c->subs_cap, sizeof *c->subs) != 0 ||
      (p->nsubs == 0 && !(p->rt = pw__registry_join(l->srv, p->name, p->len)))) {
    if (p->nsubs == 0) unlink_topic(&l->topics, p);
    return refused(l, PW_ENOMEM);
  }
  p->subs[p->nsubs] = (pw__topic_sub){c, c->nsubs, 0};
  c->subs[c->nsubs] = (pw__conn_sub){p, p->nsubs};
  p->nsubs++, c->nsubs++;
  pw__registry_count(&l->srv->registry, p->rt, 1);
  pw__gauge_add(&l->topics.nsubscriptions, 1);
  if (p->nsubs == 1) pw__gauge_add(&l->topics.ntopics, 1);
  return 0;
}

int pw__topic_subscribe_floor(pw__loop *l, pw__conn *c, const char *name, size_t len,
                              uint64_t floor) {
  int r = pw__topic_subscribe(l, c, name, len);
  if (r != 0 || !floor) return r;
  pw__topic *p = pw__topic_find(l, name, len);
  int i = find_sub(c, p);
  if (i >= 0) p->subs[c->subs[i].topic_index].floor = floor;
  return 0;
}

/* Remove subscription i of c from both sides (swap-remove, fixing the moved entries). */
static void remove_sub(pw__loop *l, pw__conn *c, uint32_t i) {
  pw__topic *p = c->subs[i].topic;
  uint32_t ti = c->subs[i].topic_index;
  p->subs[ti] = p->subs[--p->nsubs];
  if (ti < p->nsubs) p->subs[ti].conn->subs[p->subs[ti].conn_index].topic_index = ti;
  c->subs[i] = c->subs[--c->nsubs];
  if (i < c->nsubs) c->subs[i].topic->subs[c->subs[i].topic_index].conn_index = i;
  pw__gauge_add(&l->topics.nsubscriptions, -1);
  pw__registry_count(&l->srv->registry, p->rt, -1);
  if (p->nsubs == 0) {
    pw__gauge_add(&l->topics.ntopics, -1);
    pw__registry_leave(l->srv, p->rt);
    unlink_topic(&l->topics, p);
  }
}

int pw__topic_unsubscribe(pw__loop *l, pw__conn *c, const char *name, size_t len) {
  pw__topic *p = find(&l->topics, name, len, pw__topic_hash(name, len));
  int i = p ? find_sub(c, p) : -1;
  if (i < 0) return PW_ENOTFOUND;
  remove_sub(l, c, (uint32_t)i);
  return 0;
}

void pw__topic_unsubscribe_all(pw__loop *l, pw__conn *c) {
  while (c->nsubs > 0) remove_sub(l, c, c->nsubs - 1);
  free(c->subs);
  c->subs = NULL;
  c->subs_cap = 0;
}

pw__topic *pw__topic_find(pw__loop *l, const char *name, size_t len) {
  return find(&l->topics, name, len, pw__topic_hash(name, len));
}

/* A subscriber with a floor (it is ahead of this loop): the frames past it, one by one, and
 * from then on it is like the others. 1 if it took any. */
static int send_past_floor(pw__topic_sub *s, pw__pmd_share *share, uint64_t offset) {
  uint64_t last = offset + share->nmsgs - 1;
  if (last <= s->floor) return 0;
  if (offset > s->floor) return s->floor = 0, pw__conn_send_shared(s->conn, share) == 0;
  int took = 0;
  for (uint64_t o = s->floor + 1; o <= last; o++) {
    pw_buf *b = share->msgs[o - offset];
    pw_buf_ref(b);
    took |= pw__conn_send(s->conn, b) == 0;
  }
  s->floor = 0;
  return took;
}

size_t pw__topic_publish(pw__loop *l, const char *name, size_t len, pw_buf *buf,
                         pw_buf *const *msgs, unsigned nmsgs, uint64_t offset) {
  pw__topic *p = find(&l->topics, name, len, pw__topic_hash(name, len));
  size_t n = 0;
  pw__pmd_share share; /* compressed variants, made by the first subscriber that needs one */
  pw__pmd_share_init(&share, buf, msgs, nmsgs);
  /* Queuing never unsubscribes (that waits for on_close), so the array is stable here. */
  for (uint32_t i = 0; p && i < p->nsubs; i++) {
    pw__topic_sub *s = &p->subs[i];
    if (s->conn->state != PW__S_OPEN) continue;
    if (s->floor && offset) n += send_past_floor(s, &share, offset);
    else n += pw__conn_send_shared(s->conn, &share) == 0;
  }
  pw__pmd_share_release(&share);
  return n;
}

size_t pw__topic_count(pw__loop *l, const char *name, size_t len) {
  pw__topic *p = find(&l->topics, name, len, pw__topic_hash(name, len));
  return p ? p->nsubs : 0;
}
