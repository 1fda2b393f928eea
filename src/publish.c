/* The any-thread calls on topics: pw_subscribe, pw_unsubscribe, pw_publish(_buf),
 * pw_topic_subscribers, and their loop side. A publish builds one pw_buf (the frame encoded
 * once) and hands every loop a reference: each loop fans it out to its own subscribers with
 * pw__topic_publish, so N subscribers cost N queue entries, not N copies. */
#include <stdlib.h>
#include <string.h>

#include "send.h"
#include "server.h"

/* One publish, shared by the commands of every loop; the last loop to finish frees it. */
typedef struct pw__pub {
  _Atomic unsigned refs;
  pw_buf *buf;
  size_t len;
  char topic[];
} pw__pub;

static void pub_unref(pw__pub *p) {
  if (atomic_fetch_sub(&p->refs, 1) != 1) return;
  pw_buf_unref(p->buf);
  free(p);
}

static int topic_valid(const char *topic, size_t *len) {
  *len = topic ? strlen(topic) : 0;
  return *len > 0 && *len <= PW__TOPIC_MAX;
}

/* Loop thread: deliver to this loop's subscribers, then let go of the publish. */
static size_t fan_out(pw__loop *l, pw__pub *p) {
  size_t n = pw__topic_publish(l, p->topic, p->len, p->buf, NULL, 0);
  pub_unref(p);
  return n;
}

/* ---- batches: consecutive publishes to one topic ----------------------------------------- */
/* Publishes to the same topic that follow each other in the inbox are fanned out together:
 * their frames are copied once into one buffer (a batch, counted as that many messages) and
 * every subscriber's queue gets that one buffer, so each socket writes one contiguous run
 * (one iovec) instead of one iovec and one queue entry per frame, as bare_writev does (the
 * kernel's per-iovec cost dominated: docs/benchmarks.md). The batch ends at any other
 * command, so every connection still sees inbox order: a send or a publish to another topic
 * drained between two publishes is never overtaken. Slow-consumer policies act on whole
 * batches (a dropped batch drops its frames, the stream stays frame-aligned), which is why a
 * batch is at most a quarter of max_queued_bytes. Outside a drain the batch is empty. */
static int same_topic(const pw__pub *a, const pw__pub *b) {
  return a->len == b->len && memcmp(a->topic, b->topic, a->len) == 0;
}

static size_t batch_cap(const pw__loop *l) {
  size_t quarter = l->srv->opt.max_queued_bytes / 4;
  return quarter < PW__BATCH_MAX_BYTES ? quarter : PW__BATCH_MAX_BYTES;
}

/* One buffer with the wire bytes of every publish of the batch, or NULL (no memory). */
static pw_buf *batch_buffer(pw__loop *l) {
  pw_buf *b = pw__buf_new_raw(NULL, l->batch_bytes);
  if (!b) return NULL;
  uint8_t *out = b->data;
  for (unsigned i = 0; i < l->nbatch; i++) {
    uv_buf_t iov[2];
    int n = pw__buf_iov(l->batch[i]->buf, 0, iov);
    for (int k = 0; k < n; k++) memcpy(out, iov[k].base, iov[k].len), out += iov[k].len;
  }
  b->cork_msgs = l->nbatch;
  return b;
}

size_t pw__batch_flush(pw__loop *l) {
  if (l->nbatch == 0) return 0;
  size_t work = 0;
  pw__pub *first = l->nbatch ? l->batch[0] : NULL;
  pw_buf *b = NULL;
  if (l->nbatch > 1 && pw__topic_count(l, first->topic, first->len) > 0)
    b = batch_buffer(l);
  if (b) {
    /* The frames too: a subscriber with permessage-deflate gets them compressed, as one
     * batch buffer per distinct window shared by all no-context-takeover subscribers, or
     * its own (context takeover): a compressed variant per batch, not per message, so
     * those sockets keep the batch's single write (pmd.c). */
    pw_buf *msgs[PW__BATCH_MAX_MSGS];
    for (unsigned i = 0; i < l->nbatch; i++) msgs[i] = l->batch[i]->buf;
    work = pw__topic_publish(l, first->topic, first->len, b, msgs, l->nbatch);
    pw_buf_unref(b);
    for (unsigned i = 0; i < l->nbatch; i++) pub_unref(l->batch[i]);
  } else { /* one publish, nobody subscribed, or no memory for the copy */
    for (unsigned i = 0; i < l->nbatch; i++) work += fan_out(l, l->batch[i]);
  }
  l->nbatch = 0;
  l->batch_bytes = 0;
  return work;
}

static size_t batch_add(pw__loop *l, pw__pub *p) {
  size_t wire = pw__buf_wire_len(p->buf), work = 0;
  if (l->nbatch && (!same_topic(l->batch[0], p) || l->nbatch == PW__BATCH_MAX_MSGS ||
                    l->batch_bytes + wire > batch_cap(l)))
    work = pw__batch_flush(l);
  l->batch[l->nbatch++] = p;
  l->batch_bytes += wire;
  return work;
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
  r = pw__send_cmd(l, &cmd, 0, PW_BLOCK);
  if (r != 0) free(cmd.u.topic);
  return r;
}

int pw_subscribe(pw_server *srv, pw_conn_id id, const char *topic) {
  return sub_cmd(srv, id, topic, PW__CMD_SUB);
}

int pw_unsubscribe(pw_server *srv, pw_conn_id id, const char *topic) {
  return sub_cmd(srv, id, topic, PW__CMD_UNSUB);
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
  uint64_t subs = atomic_load_explicit(&l->nsubscriptions, memory_order_relaxed);
  uint64_t topics = atomic_load_explicit(&l->ntopics, memory_order_relaxed);
  uint64_t fanout = topics ? (subs + topics - 1) / topics : 1;
  uint64_t charge = (uint64_t)wire_len * (fanout ? fanout : 1);
  uint64_t budget = l->srv->opt.max_inbox_bytes;
  if (charge > budget / PW__PUBLISH_MIN) charge = budget / PW__PUBLISH_MIN;
  if (charge < budget / PW__PUBLISH_MAX) charge = budget / PW__PUBLISH_MAX;
  return charge;
}

int pw_publish_buf(pw_server *srv, const char *topic, pw_buf *buf, int flags) {
  size_t len;
  if (!srv || !buf || !topic_valid(topic, &len) || (flags & ~PW_BLOCK)) return PW_EINVAL;
  if (atomic_load(&srv->state) != PW__RUNNING) return PW_ESTOPPED;
  pw__pub *p = malloc(sizeof *p + len + 1);
  if (!p) return PW_ENOMEM;
  memcpy(p->topic, topic, len + 1);
  p->len = len;
  p->buf = buf;
  pw_buf_ref(buf);
  atomic_init(&p->refs, srv->nloops + 1); /* one per loop, one for this call */
  int result = 0;
  for (unsigned i = 0; i < srv->nloops; i++) {
    pw__loop *l = &srv->loops[i];
    pw__cmd cmd = {.kind = PW__CMD_PUBLISH, .u.pub = p};
    if (pw__current_loop() == l) { /* our own loop: fan out now, after any batch */
      pw__batch_flush(l);
      fan_out(l, p);
      continue;
    }
    cmd.id = fanout_charge(l, pw__buf_wire_len(buf)); /* refunded at dispatch */
    int r = pw__send_cmd(l, &cmd, (size_t)cmd.id, flags);
    if (r != 0) pub_unref(p), result = r;
  }
  pub_unref(p);
  return result;
}

int pw_publish(pw_server *srv, const char *topic, const void *data, size_t len, int flags) {
  if ((flags & ~(PW_BINARY | PW_BLOCK)) || (len && !data)) return PW_EINVAL;
  if (len > PW__MSG_MAX) return PW_ETOOBIG; /* before copying, as pw_send */
  pw_buf *b = pw_buf_new(data, len, flags & PW_BINARY);
  if (!b) return PW_ENOMEM;
  int r = pw_publish_buf(srv, topic, b, flags & PW_BLOCK);
  pw_buf_unref(b);
  return r;
}

/* ---- counting ------------------------------------------------------------------------------ */
/* The server's registry keeps every topic's count over all loops: no loop is asked. */
int pw_topic_subscribers(pw_server *srv, const char *topic) {
  size_t len;
  if (!srv || !topic_valid(topic, &len)) return PW_EINVAL;
  uint64_t n = pw__registry_subscribers(&srv->registry, topic, len);
  return n > INT32_MAX ? INT32_MAX : (int)n;
}

/* ---- the loop side ------------------------------------------------------------------------- */
/* The caller of a pw_subscribe from another thread got 0 long ago: tell the program the way
 * it chose (the queue or the callback), else the log. The counter was raised in topic.c. */
static void report_refused(pw__loop *l, pw_conn_id id, const char *topic, int code) {
  pw_server *srv = l->srv;
  if (srv->opt.deliver_refused == PW_DELIVER_QUEUE) return pw__events_refused(l, id, topic, code);
  if (srv->cb.on_subscribe_refused)
    return srv->cb.on_subscribe_refused(srv, id, topic, code, srv->user);
  pw__log(srv, PW_LOG_WARN, "subscription to %s refused: %s", topic, pw_strerror(code));
}

static void subscribe_cmd(pw__loop *l, const pw__cmd *cmd) {
  pw__conn *c = pw__open_conn(l, cmd->id);
  int r = c ? pw__topic_subscribe(l, c, cmd->u.topic, strlen(cmd->u.topic)) : 0;
  if (r != 0) report_refused(l, cmd->id, cmd->u.topic, r);
}

size_t pw__dispatch_topic(pw__loop *l, const pw__cmd *cmd) {
  pw__conn *c;
  switch (cmd->kind) {
  case PW__CMD_SUB:
    subscribe_cmd(l, cmd);
    break;
  case PW__CMD_UNSUB:
    if ((c = pw__open_conn(l, cmd->id))) pw__topic_unsubscribe(l, c, cmd->u.topic, strlen(cmd->u.topic));
    break;
  case PW__CMD_PUBLISH:
    atomic_fetch_sub(&l->inbox_bytes, (size_t)cmd->id); /* its charge */
    return 1 + batch_add(l, cmd->u.pub);
  }
  free(cmd->u.topic);
  return 1;
}
