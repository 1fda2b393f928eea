/* The any-thread calls on topics: pw_subscribe, pw_unsubscribe, pw_publish(_buf),
 * pw_topic_subscribers. A publish builds one pw_buf (the frame encoded once) and hands every
 * loop a reference (a pw__pub): each loop fans it out to its own subscribers (batch.c,
 * topic.c), so N subscribers cost N queue entries, not N copies. The loop halves of the
 * commands are in dispatch.c. */
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "history.h"
#include "publish.h"
#include "registry.h"
#include "stream.h"
#include "send.h"
#include "server.h"

void pw__pub_unref(pw__pub *p) {
  if (atomic_fetch_sub(&p->refs, 1) != 1) return;
  pw_buf_unref(p->buf);
  if (p->rt) pw__registry_release(p->srv, p->rt);
  free(p);
}

static int topic_valid(const char *topic, size_t *len) {
  *len = topic ? strlen(topic) : 0;
  return *len > 0 && *len <= PW__TOPIC_MAX;
}

/* ---- subscriptions ------------------------------------------------------------------------ */
static int sub_cmd(pw_server *srv, pw_conn_id id, const char *topic, int kind) {
  pw__loop *l;
  size_t len;
  if (!topic_valid(topic, &len)) return PW_EINVAL;
  int r = pw__target(srv, id, &l);
  if (r != 0) return r;
  if (pw__current_loop() == l) {
    pw__conn *c = pw__open_conn(l, id);
    if (!c) return PW_ENOCONN;
    return kind == PW__CMD_SUB ? pw__topic_subscribe(l, c, topic, len)
                               : pw__topic_unsubscribe(l, c, topic, len);
  }
  pw__cmd cmd = {.kind = (uint32_t)kind, .id = id, .u.topic = strdup(topic)};
  if (!cmd.u.topic) return PW_ENOMEM;
  r = pw__send_cmd(l, &cmd, PW_BLOCK);
  if (r != 0) free(cmd.u.topic);
  return r;
}

int pw_subscribe(pw_server *srv, pw_conn_id id, const char *topic) {
  return sub_cmd(srv, id, topic, PW__CMD_SUB);
}

int pw_unsubscribe(pw_server *srv, pw_conn_id id, const char *topic) {
  return sub_cmd(srv, id, topic, PW__CMD_UNSUB);
}

static int position_valid(const pw_position *p) {
  return !p || memchr(p->epoch, 0, sizeof p->epoch) != NULL;
}

/* From another thread: a SUB_FROM command carrying copies of the topic and the position. */
static int sub_from_cmd(pw__loop *l, pw_conn_id id, const char *topic, const pw_position *since) {
  pw__cmd cmd = {.kind = PW__CMD_SUB_FROM, .id = id, .u.topic = strdup(topic)};
  pw_position *copy = calloc(1, sizeof *copy);
  if (copy && since) *copy = *since;
  cmd.arg = copy;
  int r = cmd.u.topic && copy ? pw__send_cmd(l, &cmd, PW_BLOCK) : PW_ENOMEM;
  if (r != 0) free(cmd.u.topic), free(copy);
  return r;
}

int pw_subscribe_from(pw_server *srv, pw_conn_id id, const char *topic, const pw_position *since,
                      pw_recovery *result) {
  pw__loop *l;
  size_t len;
  if (!topic_valid(topic, &len) || !position_valid(since)) return PW_EINVAL;
  int r = pw__target(srv, id, &l);
  if (r != 0) return r;
  if (pw__current_loop() != l) return sub_from_cmd(l, id, topic, since);
  pw__conn *c = pw__open_conn(l, id);
  if (!c) return PW_ENOCONN;
  return pw__stream_subscribe(l, c, topic, len, since, result);
}

/* ---- publishing --------------------------------------------------------------------------- */
/* What a publish costs this loop: its bytes times the average subscribers per topic here,
 * clamped so that between PW__PUBLISH_MIN and PW__PUBLISH_MAX (one drain batch) publishes fit
 * in the budget.
 * - Charging the fan-out keeps the work queued behind the inbox budget bounded, so at full
 *   speed a message waits behind ~max_inbox_bytes of deliveries, not behind 65,536 publishes
 *   times every subscriber (seconds, measured with 1,000 subscribers).
 * - The ceiling keeps batching alive at large fan-outs: a publish to 10,000 subscribers
 *   charged in full would leave ~6 publishes per wakeup in a 4 MiB budget, one writev per
 *   socket per 6 frames (0.7 M msg/s against 8.8 M for a 64-frame batch, measured).
 * - The floor bounds the backlog when subscribers arrive after the charge was taken: 65,536
 *   publishes charged while a topic had 1 subscriber cost 65 M deliveries once it has 1,000
 *   (17 s of backlog, measured); the charge is only known at publish time. It is no higher
 *   than one drain batch's worth, so many small topics (100 x 100 subscribers) still get deep
 *   batches per socket when the budget allows. */
#define PW__PUBLISH_MIN 64
#define PW__PUBLISH_MAX PW__DRAIN_BATCH
static uint64_t fanout_charge(pw__loop *l, size_t wire_len) {
  uint64_t subs = atomic_load_explicit(&l->topics.nsubscriptions, memory_order_relaxed);
  uint64_t topics = atomic_load_explicit(&l->topics.ntopics, memory_order_relaxed);
  uint64_t fanout = topics ? (subs + topics - 1) / topics : 1;
  uint64_t charge = (uint64_t)wire_len * (fanout ? fanout : 1);
  uint64_t budget = l->srv->opt.max_inbox_bytes;
  if (charge > budget / PW__PUBLISH_MIN) charge = budget / PW__PUBLISH_MIN;
  if (charge < budget / PW__PUBLISH_MAX) charge = budget / PW__PUBLISH_MAX;
  return charge;
}

/* A publish for every loop, holding buf (a reference taken) and one reference per loop plus
 * one for the caller; rt (with its reference) for a history topic. */
static pw__pub *pub_new(pw_server *srv, const char *topic, size_t len, pw_buf *buf, pw__rtopic *rt,
                        uint64_t offset) {
  pw__pub *p = malloc(sizeof *p + len + 1);
  if (!p) return NULL;
  memcpy(p->topic, topic, len + 1);
  p->len = len;
  p->buf = buf;
  pw_buf_ref(buf);
  p->rt = rt;
  p->srv = srv;
  p->offset = offset;
  atomic_init(&p->refs, srv->nloops + 1);
  return p;
}

/* A topic without history: to every loop's door, each on its own (PW_EAGAIN from one loop
 * means its subscribers miss it). */
static int publish_plain(pw_server *srv, const char *topic, size_t len, pw_buf *buf, int flags) {
  pw__pub *p = pub_new(srv, topic, len, buf, NULL, 0);
  if (!p) return PW_ENOMEM;
  int result = 0;
  for (unsigned i = 0; i < srv->nloops; i++) {
    pw__loop *l = &srv->loops[i];
    if (pw__current_loop() == l) { /* our own loop: fan out now, after any batch */
      pw__batch_flush(l);
      pw__batch_fan_out(l, p);
      continue;
    }
    pw__cmd cmd = {
        .kind = PW__CMD_PUBLISH, .u.pub = p, .charge = fanout_charge(l, pw__buf_wire_len(buf))};
    int r = pw__send_cmd(l, &cmd, flags);
    if (r != 0) pw__pub_unref(p), result = r;
  }
  pw__pub_unref(p);
  return result;
}

/* ---- publishing to a topic with history (see history.h, "Order") ----------------------------- */
/* Reserve each loop's charge before the topic's lock is taken. The caller's own loop never
 * waits (it would wait for itself): without room there its push counts as missed, and the
 * loop repairs it from the history. 0, or the first refusal (every reservation given back). */
static int reserve_all(pw_server *srv, size_t *charges, size_t wire, int flags) {
  pw__loop *own = pw__current_loop();
  for (unsigned i = 0; i < srv->nloops; i++) {
    pw__loop *l = &srv->loops[i];
    charges[i] = fanout_charge(l, wire);
    int r = pw__door_reserve(&l->door, charges[i], l == own ? 0 : flags, srv->opt.send_timeout_ms);
    if (r == PW_EAGAIN && l == own) charges[i] = 0, r = 0;
    if (r == 0) continue;
    if (r == PW_EAGAIN) pw__stat_add(&l->stats.rejected, 1);
    while (i-- > 0) pw__door_unreserve(&srv->loops[i].door, charges[i]);
    return r;
  }
  return 0;
}

/* Under h->lock: push the publish to every loop; a loop whose push failed is marked to repair
 * it from the history. Returns the loops to wake for that (a bit each). */
static uint64_t push_all(pw_server *srv, pw__history *h, pw__pub *p, const size_t *charges) {
  uint64_t missed = 0;
  for (unsigned i = 0; i < srv->nloops; i++) {
    pw__loop *l = &srv->loops[i];
    pw__cmd cmd = {.kind = PW__CMD_PUBLISH, .u.pub = p, .charge = charges[i]};
    if (charges[i] && pw__door_push_reserved(&l->door, &cmd) == 0) continue;
    if (charges[i]) pw__door_unreserve(&l->door, charges[i]);
    pw__pub_unref(p); /* this loop's reference: never the last, the caller holds one */
    atomic_store(&h->loops[i].missed, 1);
    missed |= 1ull << i;
  }
  return missed;
}

static void wake_for_repair(pw_server *srv, uint64_t missed) {
  for (unsigned i = 0; i < srv->nloops; i++) {
    if (!(missed >> i & 1)) continue;
    atomic_store(&srv->loops[i].streams.repair, 1);
    pw__door_wake(&srv->loops[i].door);
  }
}

/* The frame subscribers get: the pattern's envelope around the payload, or the payload. */
static pw_buf *frame_for(pw__history *h, const char *topic, const pw_position *pos,
                         pw_buf *payload) {
  const pw_history_options *o = &h->cfg->opt;
  if (!o->envelope) return pw_buf_ref(payload), payload;
  return o->envelope(topic, pos, pw_buf_data(payload), pw_buf_len(payload),
                     payload->opcode == PW_OP_BINARY, o->envelope_arg);
}

/* Under h->lock: the next offset, its frame kept and pushed to every loop. */
static int append_and_push(pw_server *srv, pw__rtopic *t, pw_buf *payload, const size_t *charges,
                           pw_position *pos, uint64_t *missed) {
  pw__history *h = t->history;
  uint64_t now = pw__history_now_ms();
  pw__history_expire(h, now);
  pw_position next = {{0}, h->top + 1};
  memcpy(next.epoch, h->epoch, sizeof next.epoch);
  pw_buf *frame = frame_for(h, t->name, &next, payload);
  pw__pub *p = frame ? pub_new(srv, t->name, t->len, frame, NULL, next.offset) : NULL;
  if (!p || pw__history_append(h, frame, now) != 0) { /* the ring takes our reference */
    pw_buf_unref(frame);
    if (p) pw_buf_unref(p->buf), free(p);
    return PW_ENOMEM;
  }
  atomic_fetch_add(&t->refs, 1); /* the publish's, let go with its last reference */
  p->rt = t;
  *missed = push_all(srv, h, p, charges);
  pw__pub_unref(p);
  *pos = next;
  return 0;
}

static int publish_history(pw_server *srv, pw__rtopic *t, pw_buf *payload, int flags,
                           pw_position *pos) {
  size_t charges[PW__MAX_LOOPS];
  uint64_t missed = 0;
  int r = reserve_all(srv, charges, pw__buf_wire_len(payload) + 16, flags);
  if (r != 0) return r;
  uv_mutex_lock(&t->history->lock);
  r = append_and_push(srv, t, payload, charges, pos, &missed);
  uv_mutex_unlock(&t->history->lock);
  if (r != 0)
    for (unsigned i = 0; i < srv->nloops; i++) pw__door_unreserve(&srv->loops[i].door, charges[i]);
  wake_for_repair(srv, missed);
  if (r == 0) pw__histories_published(srv, t->history);
  return r;
}

static int publish_at(pw_server *srv, const char *topic, size_t len, pw_buf *buf, int flags,
                      pw_position *pos) {
  if (atomic_load(&srv->state) != PW__RUNNING) return PW_ESTOPPED;
  pw__rtopic *t = NULL;
  if (pw__history_pattern(&srv->histories, topic, len))
    t = pw__registry_acquire_history(srv, topic, len);
  if (!t || !t->history) {
    if (t) pw__registry_release(srv, t);
    if (pos) memset(pos, 0, sizeof *pos);
    return publish_plain(srv, topic, len, buf, flags);
  }
  pw_position at;
  int r = publish_history(srv, t, buf, flags, &at);
  if (r == 0 && pos) *pos = at;
  pw__registry_release(srv, t);
  return r;
}

int pw_publish_buf(pw_server *srv, const char *topic, pw_buf *buf, int flags) {
  size_t len;
  if (!srv || !buf || !topic_valid(topic, &len) || (flags & ~PW_BLOCK)) return PW_EINVAL;
  return publish_at(srv, topic, len, buf, flags, NULL);
}

int pw_publish_ex(pw_server *srv, const char *topic, const void *data, size_t len, int flags,
                  pw_position *pos) {
  size_t tlen;
  if (!srv || !topic_valid(topic, &tlen)) return PW_EINVAL;
  if ((flags & ~(PW_BINARY | PW_BLOCK)) || (len && !data)) return PW_EINVAL;
  if (len > PW__MSG_MAX) return PW_ETOOBIG;
  pw_buf *b = pw_buf_new(data, len, flags & PW_BINARY);
  if (!b) return PW_ENOMEM;
  int r = publish_at(srv, topic, tlen, b, flags & PW_BLOCK, pos);
  pw_buf_unref(b);
  return r;
}

int pw_publish(pw_server *srv, const char *topic, const void *data, size_t len, int flags) {
  return pw_publish_ex(srv, topic, data, len, flags, NULL);
}

/* ---- reading the history ---------------------------------------------------------------- */
/* The topic's history, locked, with its registry entry held: NULL if it keeps none now. */
static pw__history *history_locked(pw_server *srv, const char *topic, pw__rtopic **t) {
  size_t len;
  *t = topic_valid(topic, &len) ? pw__registry_acquire(srv, topic, len, 0) : NULL;
  if (*t && (*t)->history) return uv_mutex_lock(&(*t)->history->lock), (*t)->history;
  if (*t) pw__registry_release(srv, *t);
  return NULL;
}

static void history_unlock(pw_server *srv, pw__rtopic *t) {
  uv_mutex_unlock(&t->history->lock);
  pw__registry_release(srv, t);
}

int pw_topic_position(pw_server *srv, const char *topic, pw_position *pos) {
  pw__rtopic *t;
  if (!srv || !pos || !topic) return PW_EINVAL;
  pw__history *h = history_locked(srv, topic, &t);
  if (!h) return PW_ENOTFOUND;
  pw__history_position(h, pos);
  history_unlock(srv, t);
  return 0;
}

int pw_history_read(pw_server *srv, const char *topic, uint64_t since, pw_history_entry *out,
                    size_t max, pw_position *pos) {
  pw__rtopic *t;
  if (!srv || !topic || (max && !out) || since == UINT64_MAX) return PW_EINVAL;
  pw__history *h = history_locked(srv, topic, &t);
  if (!h) return PW_ENOTFOUND;
  pw__history_expire(h, pw__history_now_ms());
  uint64_t from = since + 1, first = pw__history_first(h);
  if (from < first) from = first;
  size_t n = 0;
  for (; n < max && from + n <= h->top; n++) {
    out[n].offset = from + n;
    pw__history_copy(h, from + n, from + n, &out[n].buf, 1);
  }
  if (pos) pw__history_position(h, pos);
  history_unlock(srv, t);
  return n > INT32_MAX ? INT32_MAX : (int)n;
}

/* ---- counting ------------------------------------------------------------------------------ */
/* The server's registry keeps every topic's count over all loops: no loop is asked. */
int pw_topic_subscribers(pw_server *srv, const char *topic) {
  size_t len;
  if (!srv || !topic_valid(topic, &len)) return PW_EINVAL;
  uint64_t n = pw__registry_subscribers(&srv->registry, topic, len);
  return n > INT32_MAX ? INT32_MAX : (int)n;
}
