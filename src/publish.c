/* The any-thread calls on topics: pw_subscribe, pw_unsubscribe, pw_publish(_buf),
 * pw_topic_subscribers. A publish builds one pw_buf (the frame encoded once) and hands every
 * loop a reference (a pw__pub): each loop fans it out to its own subscribers (batch.c,
 * topic.c), so N subscribers cost N queue entries, not N copies. The loop halves of the
 * commands are in dispatch.c. */
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "publish.h"
#include "send.h"
#include "server.h"

void pw__pub_unref(pw__pub *p) {
  if (atomic_fetch_sub(&p->refs, 1) != 1) return;
  pw_buf_unref(p->buf);
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
