/* A loop's side of history topics: see stream.h for the design notes. Loop thread only. */
#include "stream.h"

#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "conn.h"
#include "events.h"
#include "history.h"
#include "loop.h"
#include "publish.h"
#include "registry.h"
#include "server.h"
#include "topic.h"

static pw__hloop *mine(pw__loop *l, pw__history *h) { return &h->loops[l->index]; }

/* ---- a hole that cannot be filled ------------------------------------------------------------ */
/* Tell this loop's subscribers of t that their stream broke before `pos` (which goes on from
 * there): the pattern's reset frame, or, without one, a 1013 close so a client reconnects and
 * learns the rest from a subscribe with its position. */
static void reset_subscribers(pw__loop *l, pw__rtopic *t, const pw__hpattern *cfg,
                              const pw_position *pos) {
  pw__topic *p = pw__topic_find(l, t->name, t->len);
  pw_buf *frame = cfg->opt.reset ? cfg->opt.reset(t->name, pos, cfg->opt.reset_arg) : NULL;
  for (uint32_t i = p ? p->nsubs : 0; i-- > 0;) { /* backwards: a close removes the entry */
    pw__conn *c = p->subs[i].conn;
    if (c->state != PW__S_OPEN) continue;
    atomic_fetch_add_explicit(&l->srv->histories.resets, 1, memory_order_relaxed);
    if (frame) pw_buf_ref(frame), pw__conn_send(c, frame);
    else pw__conn_close_ws(c, PW_CLOSE_TRY_AGAIN, "history gap");
  }
  pw_buf_unref(frame);
}

/* ---- catching up from the history ------------------------------------------------------------ */
/* Fan out, from the history, what this loop has not delivered of t up to `upto` (the top when
 * UINT64_MAX). Returns the work done. */
static size_t catch_up(pw__loop *l, pw__rtopic *t, uint64_t upto) {
  pw__history *h = t->history;
  pw__hloop *me = mine(l, h);
  pw__batch_flush(l); /* what waits there is older: it goes first */
  uv_mutex_lock(&h->lock);
  if (upto > h->top) upto = h->top;
  uint64_t from = me->delivered + 1, first = pw__history_first(h);
  size_t want = upto >= from ? (size_t)(upto - from + 1) : 0, n = 0;
  pw_buf **frames = want ? malloc(want * sizeof *frames) : NULL;
  if (frames) n = pw__history_copy(h, from, upto, frames, want);
  pw_position gap = {{0}, first > from ? first - 1 : 0};
  if (gap.offset) memcpy(gap.epoch, h->epoch, sizeof gap.epoch);
  const pw__hpattern *cfg = h->cfg;
  uv_mutex_unlock(&h->lock);
  if (want && !frames) return 0; /* no memory: the next publish or wakeup tries again */
  if (gap.offset) reset_subscribers(l, t, cfg, &gap);
  uint64_t off = upto - n + 1;
  size_t work = 0;
  for (size_t i = 0; i < n; i++, off++) {
    work += pw__topic_publish(l, t->name, t->len, frames[i], NULL, 0, off);
    pw_buf_unref(frames[i]);
  }
  free(frames);
  if (upto >= from) me->delivered = upto;
  atomic_fetch_add_explicit(&l->srv->histories.repaired, n, memory_order_relaxed);
  return work;
}

size_t pw__stream_publish(pw__loop *l, pw__pub *p) {
  pw__hloop *me = mine(l, p->rt->history);
  if (p->offset <= me->delivered) return pw__pub_unref(p), 1; /* a repair delivered it */
  size_t work = p->offset > me->delivered + 1 ? catch_up(l, p->rt, p->offset - 1) : 0;
  me->delivered = p->offset;
  return work + pw__batch_add(l, p);
}

/* The topics whose pushes to this loop failed, each with a reference. */
static size_t holes(pw__loop *l, pw__rtopic ***out) {
  pw__histories *hs = &l->srv->histories;
  size_t n = 0, cap = 0;
  *out = NULL;
  uv_mutex_lock(&hs->lock);
  for (pw__history *h = hs->oldest; h; h = h->next) {
    if (!atomic_load(&mine(l, h)->missed)) continue;
    if (pw__grow((void **)out, &cap, n + 1, sizeof **out, 8) != 0) break;
    atomic_fetch_add(&h->topic->refs, 1);
    (*out)[n++] = h->topic;
  }
  uv_mutex_unlock(&hs->lock);
  return n;
}

void pw__stream_repair(pw__loop *l) {
  if (!atomic_exchange(&l->streams.repair, 0)) return;
  pw__rtopic **list;
  size_t n = holes(l, &list);
  for (size_t i = 0; i < n; i++) {
    atomic_store(&mine(l, list[i]->history)->missed, 0); /* before: a new miss sets it again */
    catch_up(l, list[i], UINT64_MAX);
    pw__registry_release(l->srv, list[i]);
  }
  free(list);
}

/* ---- subscribing from a position ------------------------------------------------------------- */
/* What to do for a client at `since` (h->lock held): the reason, and, when recovered, the
 * range to replay (*from..*to, empty when from > to) or the floor to skip up to. */
static pw_recovery_reason decide(const pw__history *h, uint64_t delivered, const pw__conn *c,
                                 const pw_position *since, uint64_t *from, uint64_t *to,
                                 uint64_t *floor) {
  *from = 1, *to = 0, *floor = 0;
  if (strcmp(since->epoch, h->epoch) != 0 || since->offset > h->top) return PW_RECOVERY_EPOCH;
  if (since->offset >= delivered) return *floor = since->offset, PW_RECOVERED;
  if (since->offset + 1 < pw__history_first(h)) return PW_RECOVERY_TOO_OLD;
  if (delivered - since->offset > h->cfg->opt.max_recovery) return PW_RECOVERY_TOO_MANY;
  size_t room = pw__conn_queue_limit(c), queued = c->q.bytes;
  size_t bytes = pw__history_span_bytes(h, since->offset + 1, delivered);
  if (bytes > (room > queued ? room - queued : 0)) return PW_RECOVERY_TOO_MANY;
  *from = since->offset + 1, *to = delivered;
  return PW_RECOVERED;
}

static void count_result(pw__histories *hs, const pw_recovery *r) {
  if (r->recovered) {
    atomic_fetch_add_explicit(&hs->recovered, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&hs->replayed, r->replayed, memory_order_relaxed);
  } else if (r->reason <= PW_RECOVERY_NO_HISTORY) {
    atomic_fetch_add_explicit(&hs->not_recovered[r->reason], 1, memory_order_relaxed);
  }
}

/* A history topic: decide and copy under its lock, subscribe, then queue the replay. */
static int subscribe_history(pw__loop *l, pw__conn *c, pw__rtopic *t, const pw_position *since,
                             pw_recovery *res) {
  pw__history *h = t->history;
  uint64_t from, to, floor = 0;
  pw_buf **frames = NULL;
  size_t n = 0;
  uv_mutex_lock(&h->lock);
  pw__history_expire(h, pw__history_now_ms());
  uint64_t delivered = mine(l, h)->delivered;
  pw__history_position(h, &res->position);
  if (since && since->epoch[0]) {
    res->reason = decide(h, delivered, c, since, &from, &to, &floor);
    if (from <= to && (frames = malloc((size_t)(to - from + 1) * sizeof *frames)))
      n = pw__history_copy(h, from, to, frames, (size_t)(to - from + 1));
    if (from <= to && n != to - from + 1) res->reason = PW_RECOVERY_TOO_MANY; /* no memory */
  }
  uv_mutex_unlock(&h->lock);
  int r = pw__topic_subscribe_floor(l, c, t->name, t->len, res->reason ? 0 : floor);
  res->recovered = since && since->epoch[0] && res->reason == PW_RECOVERED && r == 0;
  for (size_t i = 0; i < n; i++) {
    if (res->recovered) pw__conn_send(c, frames[i]), res->replayed++;
    else pw_buf_unref(frames[i]);
  }
  free(frames);
  return r;
}

int pw__stream_subscribe(pw__loop *l, pw__conn *c, const char *topic, size_t len,
                         const pw_position *since, pw_recovery *out) {
  pw_recovery res = {0};
  pw__rtopic *t = pw__registry_acquire_history(l->srv, topic, len);
  int r;
  pw__batch_flush(l); /* `delivered` must mean fanned out (empty outside a drain anyway) */
  if (t && t->history) {
    pw__topic_unsubscribe(l, c, topic, len); /* a new start replaces a subscription */
    r = subscribe_history(l, c, t, since, &res);
  } else {
    r = pw__topic_subscribe(l, c, topic, len);
    res.reason = PW_RECOVERY_NO_HISTORY;
  }
  if (t) pw__registry_release(l->srv, t);
  if (r == 0 && since && since->epoch[0]) count_result(&l->srv->histories, &res);
  if (out) *out = res;
  return r;
}
