/* One connection: accept, read dispatch, the send queue and its writev, and every way a
 * connection ends. Loop thread only. See conn.h for the memory and lifetime notes. */
#include "conn.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <stdio.h>

#include "events.h"
#include "pmd.h"
#include "loop.h"
#include "ws.h"
#include "http.h"
#include "server.h"
#include "tls.h"
#include "tlsglue.h"

typedef struct pw__write_req {
  uv_write_t req;
  size_t bytes; /* wire bytes this write covers: all written when it completes */
} pw__write_req;

static void on_closed(uv_handle_t *h);
static void flush(pw__conn *c, int may_end);
static void check_high_water(pw__conn *c);

/* ---- read dispatch ---------------------------------------------------------------------- */
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  pw__conn *c = h->data;
  /* libuv calls alloc then read synchronously, one connection at a time: one shared buffer
   * per loop serves every connection, so idle connections own no read buffer. */
  *buf = uv_buf_init((char *)c->loop->rbuf, PW__READ_BUF_SIZE);
}

void pw__conn_eof(pw__conn *c) {
  if (c->close_code == 0) c->close_code = PW_CLOSE_ABNORMAL;
  pw__conn_destroy(c);
}

/* n bytes of plaintext (from the socket, or out of the TLS engine) for the current state. */
void pw__conn_deliver(pw__conn *c, uint8_t *p, size_t n) {
  pw__loop *l = c->loop;
  switch (c->state) {
  case PW__S_HTTP: return pw__http_read(c, p, n);
  case PW__S_OPEN:
    c->last_active_ms = l->now_ms;
    c->ping_sent = 0;
    pw__list_push(l, c, PW__L_OPEN); /* to the tail: the list stays ordered by activity */
    /* fall through */
  case PW__S_CLOSING: return pw__ws_read(c, p, n);
  default: /* DRAIN, LINGER: we are ending; input is discarded */ return;
  }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  pw__conn *c = s->data;
  pw__loop *l = c->loop;
  if (nread < 0) return pw__conn_eof(c);
  if (nread == 0) return;
  l->now_ms = uv_now(&l->uv);
  if (c->tls) pw__tlsglue_read(c, (uint8_t *)buf->base, (size_t)nread);
  else pw__conn_deliver(c, (uint8_t *)buf->base, (size_t)nread);
  check_high_water(c);
}

void pw__conn_read_start(pw__conn *c) { uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read); }

/* ---- pausing reads ------------------------------------------------------------------------ */
/* Design notes (reading paused for the connection's own send queue):
 * - A request/response client that pipelines (writes 100 x 64 KiB, then reads the echoes)
 *   fills its own queue with replies while it is still writing; judged by the slow-consumer
 *   limit alone it was closed with 1008. So a read that leaves the queue above the
 *   high-water mark (limit / 2) stops reading the client: its requests wait in TCP (the
 *   kernel pushes back on the writer). It is read again once the queue drains below the low
 *   mark (limit / 4), checked wherever written bytes leave the queue (q_advance). The check
 *   runs after every read callback, not once per turn: libuv reads up to 32 times (2 MiB)
 *   per wakeup before any flush, and uv_read_stop inside the callback ends that loop.
 * - The marks: one read is at most PW__READ_BUF_SIZE (64 KiB) of input, and its replies in
 *   a request/response protocol are about as big (an echo's frame header is smaller than
 *   the masked one it answers), so the queue stays below high + one read's replies: under
 *   the limit for any limit of at least ~132 KiB (the default is 1 MiB). The other half is
 *   headroom for pushes arriving meanwhile. The gap down to a quarter keeps a client from
 *   being toggled on every write (each toggle is an epoll_ctl) and still leaves the socket
 *   plenty to send while its next requests come in.
 * - Caveats: under a smaller limit one read's replies can pass it; a compressed client's
 *   replies are bounded only as far as they compress like its input; replies made on
 *   another thread (the owner answering PW_DELIVER_QUEUE events, a worker's pw_send) are
 *   bounded only in part: reading stops once they have filled the queue, but what was
 *   already read and handed over is answered all the same, and requests in the event queue
 *   (max_event_bytes) and answers in the inbox (max_inbox_bytes) then land on top of the
 *   mark in one drain. In those cases the slow-consumer policy acts as before.
 * - Pushes are unchanged: a client that does not read what is pushed to it reaches the
 *   limit and meets its slow_policy whether we read it or not.
 * - Before pausing, the queue is offered to the socket (flush with may_end 0): a client that
 *   reads promptly is not paused just because this turn's replies are not yet written.
 * - TLS: the engine is fed the whole read and every record in it is delivered; uv_read_stop
 *   then stops the socket as in plain, so the bound above holds for the plaintext.
 * - Idle time: a client paused for its queue is still pinged and idle-timed-out, and every
 *   write that drains some of its queue counts as activity (it reads, so it is alive; we
 *   only do not read it). One that neither reads nor writes for idle_timeout_ms is closed
 *   with 1001 like any silent client. A client paused for the owner's event queue is
 *   skipped by the sweep instead (loop.c): there the silence is only ours.
 * - Ending: a connection that starts closing reads again whatever paused it, to hear the
 *   peer's close or EOF (a closing connection's data messages are discarded unread), so the
 *   stop sequence and the close timeout work as for any client. */
int pw__conn_pause_reads(pw__conn *c, int reason) {
  if (c->state != PW__S_OPEN) return PW_ESTATE;
  if (!c->read_paused) uv_read_stop((uv_stream_t *)&c->tcp);
  c->read_paused |= (uint8_t)reason;
  return 0;
}

/* The connection shows life: a fresh idle time, at the tail of the OPEN list (its order). */
static void touch(pw__conn *c) {
  pw__loop *l = c->loop;
  l->now_ms = uv_now(&l->uv);
  c->last_active_ms = l->now_ms;
  pw__list_push(l, c, PW__L_OPEN);
}

void pw__conn_resume_reads(pw__conn *c, int reasons) {
  if (!(c->read_paused & reasons)) return;
  c->read_paused &= (uint8_t)~reasons;
  if (c->read_paused || c->state == PW__S_DEAD) return;
  if (c->state == PW__S_OPEN) touch(c);
  pw__conn_read_start(c);
}

static int above_high(const pw__conn *c) {
  return c->state == PW__S_OPEN && !(c->read_paused & PW__PAUSE_SENDQ) &&
         c->q.bytes > pw__conn_queue_limit(c) / 2;
}

/* After a read: replies piling up above the high-water mark stop the reading, unless the
 * socket takes them now. */
static void check_high_water(pw__conn *c) {
  if (!above_high(c)) return;
  if (!c->q.inflight) flush(c, 0);
  if (above_high(c) && pw__conn_pause_reads(c, PW__PAUSE_SENDQ) == 0)
    pw__stat_add(&c->loop->stats.reads_paused_sendq, 1);
}

/* Written bytes left a queue whose client we stopped reading: below the low mark read it
 * again; above, its reading what we write is its sign of life. */
static void sendq_progress(pw__conn *c) {
  if (c->q.bytes < pw__conn_queue_limit(c) / 4) return pw__conn_resume_reads(c, PW__PAUSE_SENDQ);
  if (c->state == PW__S_OPEN) touch(c);
}

pw__conn *pw__conn_accept(pw__loop *l, uv_stream_t *listener, int tls) {
  pw__conn *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  uv_tcp_init(&l->uv, &c->tcp);
  c->tcp.data = c;
  c->loop = l;
  l->nconns++;
  if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0 ||
      (tls && !(c->tls = pw__tls_conn_new(l->srv->tls)))) {
    c->state = PW__S_DEAD;
    uv_close((uv_handle_t *)&c->tcp, on_closed);
    return NULL;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  c->state = PW__S_HTTP;
  c->last_active_ms = l->now_ms;
  pw__list_push(l, c, PW__L_HTTP);
  pw__conn_read_start(c);
  return c;
}

int pw__conn_policy(const pw__conn *c) {
  return c->has_policy ? c->slow_policy : (int)c->loop->srv->opt.slow_policy;
}

size_t pw__conn_queue_limit(const pw__conn *c) {
  return c->max_queued ? c->max_queued : c->loop->srv->opt.max_queued_bytes;
}

/* ---- the send queue ---------------------------------------------------------------------- */
static int q_grow(pw__sendq *q) {
  uint32_t cap = q->cap ? q->cap * 2 : 8;
  pw_buf **ring = malloc(cap * sizeof *ring);
  if (!ring) return PW_ENOMEM;
  for (uint32_t i = 0; i < q->count; i++) ring[i] = q->ring[(q->head + i) & (q->cap - 1)];
  free(q->ring);
  q->ring = ring;
  q->cap = cap;
  q->head = 0;
  return 0;
}

static pw_buf *q_at(const pw__sendq *q, uint32_t i) {
  return q->ring[(q->head + i) & (q->cap - 1)];
}

/* Messages a queued buffer carries: 1 for a data frame, all of them for a cork or a publish
 * batch (publish.c), 0 for control frames and HTTP bytes (never dropped by a policy). */
static uint64_t messages_in(const pw_buf *b) { return pw__buf_messages(b); }

/* Keep the loop's gauge of queued bytes in step with this queue. */
static void q_bytes_add(pw__conn *c, size_t add, size_t sub) {
  c->q.bytes += add;
  c->q.bytes -= sub;
  pw__gauge_add(&c->loop->stats.queued_bytes, (int64_t)add - (int64_t)sub);
}

/* Corking small messages: a message of at most PW__CORK_MAX wire bytes queued behind another
 * unstarted small message is copied into a loop-owned contiguous buffer (the cork) at the
 * tail of the queue and its own buffer released at once, while its bytes are still in
 * cache. The flush then writes long contiguous runs (the kernel copies them with one
 * iovec) instead of chasing one pointer per message, and the producer's buffer goes back to
 * malloc at once. Not used under PW_SLOW_DROP_OLDEST (a cork is not dropped per message).
 * Measured by bench/push_bench (docs/benchmarks.md): loop CPU per message 546 -> 226 ns. */
#define PW__CORK_MAX 512
#define PW__CORK_CAP_MAX (64 * 1024)

static uint32_t q_locked(const pw__sendq *q);

/* Only a buffer nobody else holds: a shared one (a publish to many subscribers) stays one
 * buffer referenced by every queue, never copied per subscriber. */
static int cork_fits(const pw_buf *b) {
  return b->kind == PW__BUF_FRAME && pw__buf_is_message(b) && pw__buf_wire_len(b) <= PW__CORK_MAX &&
         atomic_load_explicit(&b->refs, memory_order_acquire) == 1;
}

/* A cork holding at least `need` bytes of data; NULL if no memory or past the cap. */
static pw_buf *cork_reserve(pw_buf *k, size_t need) {
  size_t cap = k ? k->cork_cap : 0;
  if (need <= cap) return k;
  if (need > PW__CORK_CAP_MAX) return NULL;
  size_t ncap = cap ? cap * 2 : 256; /* small first: a fan-out burst may cork 100k queues */
  while (ncap < need) ncap *= 2;
  pw_buf *n = k ? realloc(k, sizeof *k + ncap) : pw__buf_new_raw(NULL, 0);
  if (n && !k) n = realloc(n, sizeof *n + ncap);
  if (!n) return NULL;
  n->payload = n->data;
  n->kind = PW__BUF_CORK;
  n->cork_cap = (uint32_t)ncap;
  return n;
}

static int try_cork(pw__conn *c, pw_buf *b) {
  pw__sendq *q = &c->q;
  if (!cork_fits(b) || q->count == 0 || q->count - 1 < q_locked(q)) return 0;
  if (pw__conn_policy(c) == PW_SLOW_DROP_OLDEST) return 0;
  uint32_t slot = (q->head + q->count - 1) & (q->cap - 1);
  pw_buf *t = q->ring[slot], *k;
  size_t add = pw__buf_wire_len(b);
  if (t->kind == PW__BUF_CORK) { /* extend the cork */
    if (!(k = cork_reserve(t, t->payload_len + add))) return 0;
  } else if (cork_fits(t)) {
    /* start a cork with the tail message */
    size_t tl = pw__buf_wire_len(t);
    if (!(k = cork_reserve(NULL, tl + add))) return 0;
    uv_buf_t iov[2];
    pw__buf_iov(t, 0, iov);
    memcpy(k->data, iov[0].base, tl);
    k->payload_len = tl;
    k->msgs = 1;
    pw_buf_unref(t);
  } else {
    return 0;
  }
  uv_buf_t iov[2];
  pw__buf_iov(b, 0, iov);
  memcpy(k->data + k->payload_len, iov[0].base, add);
  k->payload_len += add;
  k->msgs++;
  q->ring[slot] = k;
  pw_buf_unref(b);
  q_bytes_add(c, add, 0);
  pw__mark_dirty(c->loop, c);
  return 1;
}

void pw__conn_queue(pw__conn *c, pw_buf *b) {
  pw__sendq *q = &c->q;
  if (c->state < PW__S_LINGER && try_cork(c, b)) return;
  if (c->state >= PW__S_LINGER || (q->count == q->cap && q_grow(q) != 0)) {
    pw_buf_unref(b); /* nobody will write it: the connection is ending (or no memory) */
    return;
  }
  q->ring[(q->head + q->count) & (q->cap - 1)] = b;
  q->count++;
  q_bytes_add(c, pw__buf_wire_len(b), 0);
  pw__mark_dirty(c->loop, c);
}

/* Entries that must stay: covered by the pending write, or already partly written. */
static uint32_t q_locked(const pw__sendq *q) {
  uint32_t locked = q->inflight;
  if (locked == 0 && q->offset > 0) locked = 1;
  return locked < q->count ? locked : q->count;
}

/* Drop whole messages not yet started, oldest first, until `need` bytes are freed (or all
 * of them if need is SIZE_MAX). Control frames and HTTP bytes are kept. Returns the count. */
static uint64_t q_drop_unstarted(pw__conn *c, size_t need) {
  pw__sendq *q = &c->q;
  uint32_t keep = q_locked(q), n = q->count;
  size_t freed = 0;
  uint64_t dropped = 0;
  for (uint32_t i = keep; i < n; i++) {
    pw_buf *b = q_at(q, i);
    if (freed < need && messages_in(b)) {
      freed += pw__buf_wire_len(b);
      dropped += messages_in(b);
      pw_buf_unref(b);
    } else {
      q->ring[(q->head + keep++) & (q->cap - 1)] = b;
    }
  }
  q->count = keep;
  q_bytes_add(c, 0, freed);
  return dropped;
}

/* Free the queue of a client that will not read it (a slow one, or one a stop's drain
 * timeout gave up on), counting its messages in dropped_closed, then start the close
 * handshake. The close frame may never be read; the close timeout ends the connection then. */
void pw__conn_close_dropping(pw__conn *c, int code, const char *reason) {
  pw__stat_add(&c->loop->stats.dropped_closed, q_drop_unstarted(c, SIZE_MAX));
  pw__conn_close_ws(c, code, reason);
}

/* A slow client under PW_SLOW_CLOSE. */
static void close_slow(pw__conn *c) {
  pw__stat_add(&c->loop->stats.slow_closed, 1);
  pw__conn_close_dropping(c, PW_CLOSE_POLICY, "slow consumer");
}

/* Queue a message under the slow-consumer policy (takes the caller's reference): 0,
 * PW_EAGAIN (dropped by PW_SLOW_DROP_NEW) or PW_ENOCONN (the client was closed as slow). */
static int queue_msg(pw__conn *c, pw_buf *b) {
  pw__loop_stats *st = &c->loop->stats;
  size_t limit = pw__conn_queue_limit(c);
  size_t len = pw__buf_wire_len(b);
  int policy = pw__conn_policy(c);
  if (c->q.bytes > 0 && c->q.bytes + len > limit && !c->q.inflight) {
    /* Over the limit only because this turn's messages are not written yet (a burst of
     * echoes, say)? Offer the socket what it can take before judging the client slow. */
    flush(c, 0);
  }
  uint64_t msgs = messages_in(b);
  if (c->q.bytes > 0 && c->q.bytes + len > limit) {
    if (policy == PW_SLOW_DROP_NEW) {
      pw_buf_unref(b);
      pw__stat_add(&st->dropped_new, msgs);
      return PW_EAGAIN;
    }
    if (policy != PW_SLOW_DROP_OLDEST) {
      pw_buf_unref(b);
      pw__stat_add(&st->dropped_closed, msgs);
      close_slow(c);
      return PW_ENOCONN;
    }
    pw__stat_add(&st->dropped_oldest, q_drop_unstarted(c, c->q.bytes + len - limit));
  }
  pw__conn_queue(c, b);
  pw__stat_add(&st->messages_queued, msgs);
  return 0;
}

/* A buffer made by the connection's own deflater and then refused must be forgotten by it. */
static int queue_msg_tracked(pw__conn *c, pw_buf *b, int own_deflater) {
  int r = queue_msg(c, b);
  if (r == PW_EAGAIN && own_deflater) pw__pmd_refused(c);
  return r;
}

int pw__conn_send(pw__conn *c, pw_buf *b) {
  int own = 0;
  if (c->pmd_on) b = pw__pmd_frame_for(c, b, &own); /* compressed here, on the loop */
  return queue_msg_tracked(c, b, own);
}

int pw__conn_send_shared(pw__conn *c, pw__pmd_share *s) {
  int own = 0;
  pw_buf *b = c->pmd_on ? pw__pmd_shared_for(c, s, &own) : (pw_buf_ref(s->plain), s->plain);
  return queue_msg_tracked(c, b, own);
}

int pw__conn_send_frame(pw__conn *c, int opcode, const void *data, size_t len) {
  pw_buf *b = pw__buf_new_frame(opcode, data, len);
  if (!b) return PW_ENOMEM;
  pw__conn_queue(c, b);
  return 0;
}

/* Drop `bytes` written bytes from the front of the queue, releasing finished buffers. */
void pw__conn_advance(pw__conn *c, size_t bytes) {
  pw__sendq *q = &c->q;
  pw__loop_stats *st = &c->loop->stats;
  q_bytes_add(c, 0, bytes);
  pw__stat_add(&st->bytes_sent, bytes);
  while (bytes > 0) {
    pw_buf *b = q_at(q, 0);
    size_t left = pw__buf_wire_len(b) - q->offset;
    if (bytes < left) {
      q->offset += bytes;
      break;
    }
    bytes -= left;
    q->offset = 0;
    q->head = (q->head + 1) & (q->cap - 1);
    q->count--;
    pw__stat_add(&st->messages_sent, messages_in(b));
    pw_buf_unref(b);
  }
  if (c->read_paused & PW__PAUSE_SENDQ) sendq_progress(c);
}

static void q_release_all(pw__conn *c) {
  pw__sendq *q = &c->q;
  uint64_t messages = 0;
  for (uint32_t i = 0; i < q->count; i++) {
    messages += messages_in(q_at(q, i));
    pw_buf_unref(q_at(q, i));
  }
  pw__stat_add(&c->loop->stats.dropped_closed, messages);
  q_bytes_add(c, 0, q->bytes);
  free(q->ring);
  memset(q, 0, sizeof *q);
}

/* Fill iov from the queue front; returns the iovec count, *bytes the total and *entries
 * the queue entries covered. */
int pw__conn_fill_iov(const pw__sendq *q, uv_buf_t *iov, size_t *bytes, uint32_t *entries) {
  int n = 0;
  size_t offset = q->offset;
  uint32_t i = 0;
  *bytes = 0;
  for (; i < q->count && n + 2 <= PW__IOV_MAX; i++) {
    int k = pw__buf_iov(q_at(q, i), offset, iov + n);
    for (int j = 0; j < k; j++) *bytes += iov[n + j].len;
    n += k;
    offset = 0;
  }
  *entries = i;
  return n;
}

void pw__conn_write_failed(pw__conn *c) {
  if (c->close_code == 0) c->close_code = PW_CLOSE_ABNORMAL;
  pw__conn_destroy(c);
}

/* Everything queued is written: a connection that was ending can now shut down. */
static void on_shutdown(uv_shutdown_t *req, int status) {
  pw__conn *c = req->handle->data;
  free(req);
  if (status < 0 && c->state != PW__S_DEAD) pw__conn_destroy(c);
}

/* The queue is written: the loop hears of it (a stopping server then sends an open client
 * its 1001, loop.c), and a connection that was ending shuts down. */
void pw__conn_drained(pw__conn *c) {
  if (c->state == PW__S_OPEN) return pw__loop_queue_drained(c->loop, c);
  if (c->state != PW__S_DRAIN) return;
  uv_shutdown_t *req = malloc(sizeof *req);
  if (!req || uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
    free(req);
    pw__conn_destroy(c);
    return;
  }
  /* Keep reading after our FIN: closing with unread input would send an RST, which can
   * destroy the close frame we just sent before the peer reads it. */
  c->state = PW__S_LINGER;
}

static void on_written(uv_write_t *req, int status) {
  pw__write_req *w = (pw__write_req *)req;
  pw__conn *c = req->handle->data;
  size_t bytes = w->bytes;
  free(w);
  if (c->state == PW__S_DEAD) return; /* queue already released */
  c->q.inflight = 0;
  if (status < 0) return pw__conn_write_failed(c);
  pw__conn_advance(c, bytes);
  pw__conn_flush(c);
}

/* Hand the rest to uv_write: it waits for writability; the buffers stay referenced by the
 * queue until on_written advances past them. */
static void write_async(pw__conn *c) {
  uv_buf_t iov[PW__IOV_MAX];
  pw__write_req *w = malloc(sizeof *w);
  if (!w) return pw__conn_write_failed(c);
  uint32_t entries;
  int n = pw__conn_fill_iov(&c->q, iov, &w->bytes, &entries);
  if (uv_write(&w->req, (uv_stream_t *)&c->tcp, iov, (unsigned)n, on_written) != 0) {
    free(w);
    return pw__conn_write_failed(c);
  }
  c->q.inflight = entries;
}

/* A burst is over: give the big ring back. */
void pw__conn_shrink(pw__sendq *q) {
  if (q->count == 0 && q->cap > 8) {
    free(q->ring);
    q->ring = NULL;
    q->cap = 0;
  }
}

/* Write what the socket takes now; hand the rest to uv_write. With `may_end` 0 a write
 * error is left for the next flush to find, so no on_close can run inside the caller's
 * callback (see queue_msg). A TLS connection goes through the engine (flush_tls). */
static void flush(pw__conn *c, int may_end) {
  pw__sendq *q = &c->q;
  if (c->tls && !c->tls_plain) return pw__tlsglue_flush(c, may_end);
  if (q->inflight || c->state == PW__S_DEAD) return;
  while (q->count > 0) {
    uv_buf_t iov[PW__IOV_MAX];
    size_t bytes;
    uint32_t entries;
    int n = pw__conn_fill_iov(q, iov, &bytes, &entries);
    int r = uv_try_write((uv_stream_t *)&c->tcp, iov, (unsigned)n);
    if (r == UV_EAGAIN) r = 0;
    if (r < 0) return may_end ? pw__conn_write_failed(c) : (void)0;
    pw__conn_advance(c, (size_t)r);
    if ((size_t)r < bytes) return may_end ? write_async(c) : (void)0;
  }
  pw__conn_shrink(q);
  if (may_end) pw__conn_drained(c);
}

void pw__conn_flush(pw__conn *c) { flush(c, 1); }

/* ---- ending ------------------------------------------------------------------------------ */
static void set_close(pw__conn *c, int code, const char *reason) {
  if (c->close_code) return; /* the first reason a connection ends is the one reported */
  c->close_code = (uint16_t)code;
  free(c->close_reason);
  c->close_reason = reason && *reason ? strdup(reason) : NULL;
}

/* The WebSocket is over (handshake done, failed, or TCP gone): tell the user once. The id
 * stays allocated until the memory goes, so it cannot be reused meanwhile. */
static void notify_closed(pw__conn *c) {
  pw__loop *l = c->loop;
  if (!c->opened) return;
  c->opened = 0;
  pw__slots_retire(&l->slots, c->id); /* dead to every thread from this moment */
  pw__topic_unsubscribe_all(l, c);
  int code = c->close_code ? c->close_code : PW_CLOSE_ABNORMAL;
  pw__notify_close(c, code, c->close_reason ? c->close_reason : "");
}

static void enter_ending(pw__conn *c, int state) {
  if (state == PW__S_DRAIN) notify_closed(c);
  c->state = (uint8_t)state;
  c->last_active_ms = c->loop->now_ms;
  pw__list_push(c->loop, c, PW__L_CLOSING);
  pw__ws_free_buffers(c);
  /* Hear the peer's close (or its EOF, before LINGER closes) whatever paused the reading. */
  pw__conn_resume_reads(c, PW__PAUSE_EVENTS | PW__PAUSE_SENDQ);
}

static void send_close_frame(pw__conn *c, int code, const char *reason) {
  uint8_t payload[PW_CONTROL_MAX_PAYLOAD];
  size_t n = pw__close_build(payload, code, reason);
  pw__conn_send_frame(c, PW_OP_CLOSE, payload, n);
}

void pw__conn_close_ws(pw__conn *c, int code, const char *reason) {
  if (c->state != PW__S_OPEN) return;
  send_close_frame(c, code, reason);
  set_close(c, code, reason);
  enter_ending(c, PW__S_CLOSING);
}

void pw__conn_fail(pw__conn *c, int code, const char *reason) {
  if (c->state == PW__S_OPEN) send_close_frame(c, code, reason);
  set_close(c, code, reason);
  pw__conn_end_after_flush(c);
}

void pw__conn_end_after_flush(pw__conn *c) {
  if (c->state >= PW__S_DRAIN) return;
  enter_ending(c, PW__S_DRAIN);
  pw__mark_dirty(c->loop, c); /* the flush notices the drained queue and shuts down */
}

void pw__conn_destroy(pw__conn *c) {
  if (c->state == PW__S_DEAD) return;
  c->state = PW__S_DEAD;
  if (c->opened && c->close_code == 0) c->close_code = PW_CLOSE_ABNORMAL;
  notify_closed(c);
  pw__list_remove(c->loop, c);
  uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void on_closed(uv_handle_t *h) {
  pw__conn *c = h->data;
  pw__loop *l = c->loop;
  if (c->id) pw__slots_release(&l->slots, c->id);
  q_release_all(c);
  pw__http_free(c);
  pw__ws_free_buffers(c);
  pw__tls_conn_free(c->tls);
  free(c->close_reason);
  free(c);
  pw__loop_conn_freed(l);
}

int pw__conn_upgrade(pw__conn *c) {
  pw__loop *l = c->loop;
  int r = pw__slots_alloc(&l->slots, c, &c->id); /* PW_EAGAIN: max_connections, server-wide */
  if (r != 0) return r;
  pw__stat_add(&l->stats.connections_total, 1);
  c->state = PW__S_OPEN;
  c->last_active_ms = l->now_ms;
  pw__list_push(l, c, PW__L_OPEN);
  return 0;
}

/* ---- the user's pointer --------------------------------------------------------------------- */
/* The connection of `id` for pw_conn_set_data / pw_conn_data: open (from on_open on), or
 * the one whose on_close runs now (its id is already retired, so the slot no longer has it).
 * Only on the connection's own loop thread: the pointer is loop-thread state. */
static int user_conn(pw_server *srv, pw_conn_id id, pw__conn **out) {
  if (!srv) return PW_EINVAL;
  pw__loop *l = pw__current_loop();
  if (!l || l->srv != srv) return PW_ETHREAD;
  if (pw__id_loop(id) != l->index)
    return id != 0 && pw__id_loop(id) < srv->nloops ? PW_ETHREAD : PW_ENOCONN;
  pw__conn *c = pw__slots_get(&l->slots, id);
  if (c && !c->opened) c = NULL; /* upgraded, but on_open never came */
  if (!c && l->closing_conn && l->closing_conn->id == id) c = l->closing_conn;
  if (!c) return PW_ENOCONN;
  *out = c;
  return 0;
}

int pw_conn_set_data(pw_server *srv, pw_conn_id id, void *data) {
  pw__conn *c;
  int r = user_conn(srv, id, &c);
  if (r == 0) c->user_data = data;
  return r;
}

void *pw_conn_data(pw_server *srv, pw_conn_id id) {
  pw__conn *c;
  return user_conn(srv, id, &c) == 0 ? c->user_data : NULL;
}
