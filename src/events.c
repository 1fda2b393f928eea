/* Events for the owner's thread (pw_next_event, pw_event_fd, pw_post_event).
 * Design notes:
 * - One mutex-protected FIFO per server: producers are the loop threads and pw_post_event
 *   callers, the consumer is the owner. A mutex (not a lock-free ring) because events carry
 *   variable-size data and the consumer may block with a timeout; each push is O(1).
 * - The eventfd is written only when the queue goes from empty to non-empty, and read (reset)
 *   when the consumer takes the last event, both under the lock: the fd is readable exactly
 *   while events wait, and a burst of events costs one write. Once the server has stopped
 *   (every loop ended) it stays readable and pw_next_event answers PW_ESTOPPED when the queue
 *   is empty: an owner blocked in pw_next_event(-1) or in poll() must learn of the end.
 * - PW_EVQ_PAUSE keeps memory bounded without losing anything: the event that does not fit is
 *   queued anyway and that client's reading stops; when the owner has drained the queue to
 *   half, it sends each loop a RESUME command through the inbox. The bound is the limit plus
 *   what one read (64 KiB) and one message can add. */
#include "events.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "conn.h"
#include "loop.h"
#include "send.h"
#include "server.h"
#include "util.h"

int pw__events_init(pw__events *q) {
  memset(q, 0, sizeof *q);
  q->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (q->fd < 0) return PW_EIO;
  uv_mutex_init(&q->lock);
  uv_cond_init(&q->cond);
  return 0;
}

static void node_free(pw__event_node *n) {
  pw_buf_unref(n->ev.buf);
  free(n);
}

void pw__events_destroy(pw__events *q) {
  while (q->head) {
    pw__event_node *n = q->head;
    q->head = n->next;
    node_free(n);
  }
  close(q->fd);
  uv_mutex_destroy(&q->lock);
  uv_cond_destroy(&q->cond);
}

static void fd_set_ready(pw__events *q, int ready) {
  uint64_t v = 1;
  ssize_t r;
  do r = ready ? write(q->fd, &v, sizeof v) : read(q->fd, &v, sizeof v);
  while (r < 0 && errno == EINTR);
}

static int over(const pw__events *q, const pw_options *o, size_t add_count, size_t add_bytes) {
  return q->count + add_count > o->max_events ||
         (q->bytes > 0 && q->bytes + add_bytes > o->max_event_bytes);
}

/* Append n. With `force` it always goes in and the result says whether the queue is now
 * over its limits (1) or not (0); without, a node that does not fit is refused (-1). */
static int push(pw_server *srv, pw__event_node *n, int force) {
  pw__events *q = &srv->events;
  int r = 0;
  uv_mutex_lock(&q->lock);
  if (over(q, &srv->opt, 1, n->bytes)) {
    if (!force) {
      uv_mutex_unlock(&q->lock);
      return -1;
    }
    r = 1;
    q->paused = 1;
  }
  n->next = NULL;
  if (q->tail) {
    q->tail->next = n;
  } else {
    q->head = n;
    if (!q->stopped) fd_set_ready(q, 1); /* once stopped it is readable for good */
  }
  q->tail = n;
  q->count++;
  q->bytes += n->bytes;
  if (q->waiters) uv_cond_signal(&q->cond);
  uv_mutex_unlock(&q->lock);
  atomic_fetch_add_explicit(&q->queued, 1, memory_order_relaxed);
  return r;
}

/* A node with room for `extra` bytes of strings after it. */
static pw__event_node *node_new(int type, pw_conn_id id, size_t extra) {
  pw__event_node *n = calloc(1, sizeof *n + extra);
  if (n) n->ev.type = (pw_event_type)type, n->ev.id = id;
  return n;
}

/* Copy s (len bytes) into the string area at *w; returns the copy. */
static const char *put(char **w, const char *s, size_t len) {
  char *out = *w;
  memcpy(out, s, len);
  out[len] = '\0';
  *w += len + 1;
  return out;
}

static int wanted_header(const pw_options *o, const pw_header *h) {
  for (const char *const *name = o->event_headers; name && *name; name++)
    if (strlen(*name) == h->name_len && strncasecmp(*name, h->name, h->name_len) == 0) return 1;
  return 0;
}

static size_t open_size(const pw_options *o, const pw_request *req, size_t *nheaders) {
  size_t size = strlen(req->path) + strlen(req->query) + strlen(req->remote_addr) + 3;
  if (req->subprotocol) size += strlen(req->subprotocol) + 1;
  *nheaders = 0;
  for (size_t i = 0; i < req->header_count; i++)
    if (wanted_header(o, &req->headers[i]))
      size += req->headers[i].name_len + req->headers[i].value_len + 2, (*nheaders)++;
  return size + *nheaders * sizeof(pw_header) + sizeof(pw_header); /* + alignment slack */
}

static void queue_open(pw__conn *c, const pw_request *req) {
  pw_server *srv = c->loop->srv;
  size_t nh;
  size_t extra = open_size(&srv->opt, req, &nh);
  pw__event_node *n = node_new(PW_EV_OPEN, c->id, extra);
  if (!n) return pw__conn_fail(c, PW_CLOSE_INTERNAL, "out of memory");
  pw_header *hs = (pw_header *)(((uintptr_t)(n + 1) + _Alignof(pw_header) - 1) &
                                ~(uintptr_t)(_Alignof(pw_header) - 1));
  char *w = (char *)(hs + nh);
  for (size_t i = 0, k = 0; i < req->header_count; i++) {
    const pw_header *h = &req->headers[i];
    if (!wanted_header(&srv->opt, h)) continue;
    hs[k].name = put(&w, h->name, h->name_len), hs[k].name_len = h->name_len;
    hs[k].value = put(&w, h->value, h->value_len), hs[k].value_len = h->value_len;
    k++;
  }
  n->ev.headers = hs;
  n->ev.header_count = nh;
  n->ev.path = put(&w, req->path, strlen(req->path));
  n->ev.query = put(&w, req->query, strlen(req->query));
  n->ev.remote_addr = put(&w, req->remote_addr, strlen(req->remote_addr));
  if (req->subprotocol) n->ev.subprotocol = put(&w, req->subprotocol, strlen(req->subprotocol));
  push(srv, n, 1);
}

/* The id goes in the loop's list first: without room there it could never be resumed. */
static void pause_reading(pw__conn *c) {
  pw__loop *l = c->loop;
  if ((c->read_paused & PW__PAUSE_EVENTS) || pw__events_note_paused(l, c->id) != 0) return;
  if (pw__conn_pause_reads(c, PW__PAUSE_EVENTS) != 0) return;
  atomic_fetch_add_explicit(&l->srv->events.reads_paused, 1, memory_order_relaxed);
}

static void queue_message(pw__conn *c, int is_binary, const void *data, size_t len) {
  pw_server *srv = c->loop->srv;
  pw__events *q = &srv->events;
  pw__event_node *n = node_new(PW_EV_MESSAGE, c->id, 0);
  if (n) n->ev.buf = pw_buf_new(data, len, is_binary ? PW_BINARY : PW_TEXT);
  if (!n || !n->ev.buf) {
    if (n) node_free(n);
    return pw__conn_fail(c, PW_CLOSE_INTERNAL, "out of memory");
  }
  n->ev.is_binary = is_binary;
  n->bytes = len;
  int policy = srv->opt.event_policy;
  int r = push(srv, n, policy == PW_EVQ_PAUSE);
  if (r == 1) pause_reading(c);
  if (r >= 0) return;
  node_free(n);
  if (policy == PW_EVQ_DROP) {
    atomic_fetch_add_explicit(&q->dropped, 1, memory_order_relaxed);
    return;
  }
  atomic_fetch_add_explicit(&q->closed, 1, memory_order_relaxed);
  pw__conn_close_ws(c, PW_CLOSE_TRY_AGAIN, "try again later");
}

static void queue_close(pw__conn *c, int code, const char *reason) {
  pw__event_node *n = node_new(PW_EV_CLOSE, c->id, strlen(reason) + 1);
  if (!n) return; /* nothing left to tell it with; the id is dead all the same */
  char *w = (char *)(n + 1);
  n->ev.code = code;
  n->ev.reason = put(&w, reason, strlen(reason));
  push(c->loop->srv, n, 1);
}

/* Bounded by the max_events limit like a user event (nothing else bounds the subscribe
 * calls a program makes): one that does not fit is dropped and counted in events_dropped. */
static void queue_refused(pw__loop *l, pw_conn_id id, const char *topic, int code) {
  pw__events *q = &l->srv->events;
  size_t len = strlen(topic);
  pw__event_node *n = node_new(PW_EV_SUBSCRIBE_REFUSED, id, len + 1);
  if (n) {
    char *w = (char *)(n + 1);
    n->ev.code = code;
    n->ev.topic = put(&w, topic, len);
    if (push(l->srv, n, 0) == 0) return;
    free(n);
  }
  atomic_fetch_add_explicit(&q->dropped, 1, memory_order_relaxed);
}

/* Bounded as a refusal is (max_events): one that does not fit is dropped and counted. */
static void queue_recovery(pw__loop *l, pw_conn_id id, const char *topic, const pw_recovery *r) {
  pw__events *q = &l->srv->events;
  size_t len = strlen(topic);
  pw__event_node *n = node_new(PW_EV_RECOVERY, id, len + 1);
  if (n) {
    char *w = (char *)(n + 1);
    n->ev.recovery = *r;
    n->ev.topic = put(&w, topic, len);
    if (push(l->srv, n, 0) == 0) return;
    free(n);
  }
  atomic_fetch_add_explicit(&q->dropped, 1, memory_order_relaxed);
}

/* ---- telling the program: the one place that knows PW_DELIVER_QUEUE ------------------------ */
void pw__notify_open(pw__conn *c, const pw_request *req) {
  pw_server *srv = c->loop->srv;
  if (srv->opt.deliver_open == PW_DELIVER_QUEUE) return queue_open(c, req);
  if (srv->cb.on_open) srv->cb.on_open(srv, c->id, req, srv->user);
}

void pw__notify_message(pw__conn *c, int is_binary, const void *data, size_t len) {
  pw_server *srv = c->loop->srv;
  if (srv->opt.deliver_message == PW_DELIVER_QUEUE) return queue_message(c, is_binary, data, len);
  if (srv->cb.on_message) srv->cb.on_message(srv, c->id, data, len, is_binary, srv->user);
}

void pw__notify_close(pw__conn *c, int code, const char *reason) {
  pw__loop *l = c->loop;
  pw_server *srv = l->srv;
  if (srv->opt.deliver_close == PW_DELIVER_QUEUE) return queue_close(c, code, reason);
  if (!srv->cb.on_close) return;
  pw__conn *outer = l->closing_conn; /* an on_close that ends another connection nests */
  l->closing_conn = c;               /* so pw_conn_data still finds it (conn.c) */
  srv->cb.on_close(srv, c->id, code, reason, srv->user);
  l->closing_conn = outer;
}

/* The caller of a pw_subscribe from another thread got 0 long ago: tell the program the way
 * it chose (the queue or the callback), else the log. */
void pw__notify_subscribe_refused(pw__loop *l, pw_conn_id id, const char *topic, int code) {
  pw_server *srv = l->srv;
  if (srv->opt.deliver_refused == PW_DELIVER_QUEUE) return queue_refused(l, id, topic, code);
  if (srv->cb.on_subscribe_refused)
    return srv->cb.on_subscribe_refused(srv, id, topic, code, srv->user);
  pw__log(srv, PW_LOG_WARN, "subscription to %s refused: %s", topic, pw_strerror(code));
}

void pw__notify_recovery(pw__loop *l, pw_conn_id id, const char *topic, const pw_recovery *r) {
  pw_server *srv = l->srv;
  if (srv->opt.deliver_recovery == PW_DELIVER_QUEUE) return queue_recovery(l, id, topic, r);
  if (srv->cb.on_recovery) srv->cb.on_recovery(srv, id, topic, r, srv->user);
}

/* Every loop has ended, so no event but pw_post_event's will come: wake every waiter and
 * leave the fd readable for good, so the owner's poll loop learns it too. */
void pw__events_stopped(pw__events *q) {
  uv_mutex_lock(&q->lock);
  if (!q->stopped && !q->head) fd_set_ready(q, 1);
  q->stopped = 1;
  uv_cond_broadcast(&q->cond);
  uv_mutex_unlock(&q->lock);
}

/* ---- the owner's side ---------------------------------------------------------------------- */
int pw_event_fd(pw_server *srv) { return srv ? srv->events.fd : PW_EINVAL; }

int pw_post_event(pw_server *srv, int user_type, void *user_data) {
  if (!srv) return PW_EINVAL;
  pw__task_note_report(); /* before the push: a start made on this event sees it */
  pw__event_node *n = node_new(PW_EV_USER, 0, 0);
  if (!n) return PW_ENOMEM;
  n->ev.user_type = user_type;
  n->ev.user_data = user_data;
  if (push(srv, n, 0) < 0) return free(n), PW_EAGAIN;
  return 0;
}

/* Wait (lock held) until an event is there or the timeout passes. */
static void wait_for_event(pw__events *q, int timeout_ms) {
  uint64_t deadline = uv_hrtime() + (uint64_t)timeout_ms * 1000000u;
  q->waiters++;
  while (!q->head && !q->stopped) {
    if (timeout_ms < 0) {
      uv_cond_wait(&q->cond, &q->lock);
      continue;
    }
    uint64_t now = uv_hrtime();
    if (now >= deadline || uv_cond_timedwait(&q->cond, &q->lock, deadline - now) != 0) break;
  }
  q->waiters--;
}

/* Take the head (lock held); says whether paused readers may resume now. */
static pw__event_node *take(pw_server *srv, int *resume) {
  pw__events *q = &srv->events;
  pw__event_node *n = q->head;
  q->head = n->next;
  if (!q->head) {
    q->tail = NULL;
    if (!q->stopped) fd_set_ready(q, 0);
  }
  q->count--;
  q->bytes -= n->bytes;
  *resume =
      q->paused && q->count <= srv->opt.max_events / 2 && q->bytes <= srv->opt.max_event_bytes / 2;
  if (*resume) q->paused = 0;
  return n;
}

int pw_next_event(pw_server *srv, pw_event *ev, int timeout_ms) {
  if (!srv || !ev) return PW_EINVAL;
  pw__events *q = &srv->events;
  int resume = 0;
  memset(ev, 0, sizeof *ev);
  uv_mutex_lock(&q->lock);
  if (!q->head && timeout_ms != 0) wait_for_event(q, timeout_ms);
  pw__event_node *n = q->head ? take(srv, &resume) : NULL;
  int stopped = q->stopped;
  uv_mutex_unlock(&q->lock);
  if (resume) pw__resume_reads(srv);
  if (!n) return stopped ? PW_ESTOPPED : 0;
  *ev = n->ev;
  ev->internal_ = n; /* the strings live in the node: freed by pw_event_release */
  return 1;
}

void pw_event_release(pw_event *ev) {
  if (!ev) return;
  pw_buf_unref(ev->buf);
  free(ev->internal_);
  memset(ev, 0, sizeof *ev);
}

/* ---- clients whose reading PW_EVQ_PAUSE stopped (per loop) ------------------------------ */
int pw__events_note_paused(pw__loop *l, pw_conn_id id) {
  pw__paused *p = &l->paused;
  if (pw__grow((void **)&p->ids, &p->cap, p->n + 1, sizeof *p->ids, 16)) return PW_ENOMEM;
  p->ids[p->n++] = id;
  return 0;
}

/* Ids, not pointers: a paused client may have closed meanwhile. A client also paused for
 * its own send queue stays paused until that drains (conn.c). */
void pw__events_resume_paused(pw__loop *l) {
  pw__paused *p = &l->paused;
  l->now_ms = uv_now(&l->uv);
  for (size_t i = 0; i < p->n; i++) {
    pw__conn *c = pw__slots_get(&l->slots, p->ids[i]);
    if (c) pw__conn_resume_reads(c, PW__PAUSE_EVENTS);
  }
  p->n = 0;
}

void pw__paused_free(pw__paused *p) {
  free(p->ids);
  memset(p, 0, sizeof *p);
}
