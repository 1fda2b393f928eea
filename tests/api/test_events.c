/* Events delivered to the owner's thread: the fd is readable exactly while events wait; under
 * load every message is seen once, in order per connection, between its open and its close;
 * PW_EVQ_PAUSE bounds memory with a slow owner and loses nothing; CLOSE answers 1013; DROP
 * counts; pw_post_event from 8 threads arrives complete and in per-thread order. */
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "../support/harness.h"
#include "../support/wsclient.h"
#include "../support/check.h"
#include "../support/clock.h"

static const char *const KEEP_HEADERS[] = {"Host", NULL};

static pw_server *queued_server(size_t max_bytes, size_t max_events, pw_event_policy policy) {
  pw_options o = {.deliver_open = PW_DELIVER_QUEUE,
                  .deliver_message = PW_DELIVER_QUEUE,
                  .deliver_close = PW_DELIVER_QUEUE,
                  .event_headers = KEEP_HEADERS,
                  .max_event_bytes = max_bytes,
                  .max_events = max_events,
                  .event_policy = policy};
  pw_server *srv = pw_server_new(&o, NULL, NULL);
  CHECK(srv != NULL);
  CHECK_EQ_INT(pw_server_start(srv), 0);
  return srv;
}

static int fd_readable(pw_server *srv) {
  struct pollfd p = {.fd = pw_event_fd(srv), .events = POLLIN};
  return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

static void *post_later(void *srv) {
  sleep_ms(50);
  pw_post_event(srv, 7, NULL);
  return NULL;
}

static void test_fd_readiness(void) {
  pw_server *srv = queued_server(0, 0, PW_EVQ_PAUSE);
  pw_event ev;
  CHECK(!fd_readable(srv));
  CHECK_EQ_INT(pw_next_event(srv, &ev, 0), 0);
  for (int i = 0; i < 3; i++) CHECK_EQ_INT(pw_post_event(srv, i, &ev), 0);
  CHECK(fd_readable(srv));
  for (int i = 0; i < 3; i++) {
    CHECK(fd_readable(srv)); /* readable while any waits */
    CHECK_EQ_INT(pw_next_event(srv, &ev, 0), 1);
    CHECK(ev.type == PW_EV_USER && ev.user_type == i && ev.user_data == &ev);
    pw_event_release(&ev);
    pw_event_release(&ev); /* twice is fine */
  }
  CHECK(!fd_readable(srv)); /* drained exactly when the queue is empty */
  uint64_t t0 = now_ms();
  CHECK_EQ_INT(pw_next_event(srv, &ev, 50), 0);
  CHECK(now_ms() - t0 >= 45);
  pthread_t t;
  pthread_create(&t, NULL, post_later, srv);
  CHECK_EQ_INT(pw_next_event(srv, &ev, -1), 1); /* waits for it */
  CHECK_EQ_INT(ev.user_type, 7);
  pw_event_release(&ev);
  pthread_join(t, NULL);
  CHECK(!fd_readable(srv));
  pw_server_free(srv);
}

/* ---- order and completeness under load ---- */
enum { CLIENTS = 4, MESSAGES = 50000 };

typedef struct sender {
  int port, index;
} sender;

static void *send_all(void *arg) {
  sender *s = arg;
  wsc c;
  char path[32];
  snprintf(path, sizeof path, "/c%d?x=%d", s->index, s->index);
  if (wsc_connect(&c, s->port, path) != 0) return NULL;
  char msg[32];
  for (int i = 0; i < MESSAGES; i++) {
    int n = snprintf(msg, sizeof msg, "%d:%d", s->index, i);
    if (wsc_send(&c, 1, 1, msg, (size_t)n) != 0) break;
  }
  uint8_t close_payload[2] = {0x03, 0xE8};
  wsc_send(&c, 8, 1, close_payload, 2);
  wsc_frame f;
  if (wsc_recv(&c, &f, 10000) == 0) free(f.payload);
  wsc_close(&c);
  return NULL;
}

typedef struct conn_track {
  pw_conn_id id;
  int index, next_seq, closed, bad;
} conn_track;

static conn_track *track_of(conn_track *t, int n, pw_conn_id id) {
  for (int i = 0; i < n; i++)
    if (t[i].id == id) return &t[i];
  return NULL;
}

static void check_open(conn_track *t, int *n, const pw_event *ev) {
  int k = -1, x = -1;
  sscanf(ev->path, "/c%d", &k);
  sscanf(ev->query, "x=%d", &x);
  CHECK(k >= 0 && k < CLIENTS && x == k);
  CHECK(ev->header_count == 1 && ev->headers[0].name_len == 4 &&
        memcmp(ev->headers[0].value, "127.0.0.1", 9) == 0);
  CHECK(strchr(ev->remote_addr, ':') != NULL);
  t[*n] = (conn_track){ev->id, k, 0, 0, 0};
  (*n)++;
}

static void check_message(conn_track *ct, const pw_event *ev) {
  int k = -1, seq = -1;
  char text[32] = {0};
  size_t len = pw_buf_len(ev->buf) < 31 ? pw_buf_len(ev->buf) : 31;
  memcpy(text, pw_buf_data(ev->buf), len);
  sscanf(text, "%d:%d", &k, &seq);
  if (!ct || ct->closed || k != ct->index || seq != ct->next_seq || ev->is_binary) {
    if (ct) ct->bad++;
    return;
  }
  ct->next_seq++;
}

static void test_order_under_load(void) {
  pw_server *srv = queued_server(0, 0, PW_EVQ_PAUSE);
  sender s[CLIENTS];
  pthread_t t[CLIENTS];
  for (int i = 0; i < CLIENTS; i++)
    s[i] = (sender){pw_server_port(srv), i}, pthread_create(&t[i], NULL, send_all, &s[i]);
  conn_track track[CLIENTS];
  int ntrack = 0, closes = 0, strays = 0;
  pw_event ev;
  while (closes < CLIENTS && pw_next_event(srv, &ev, 10000) == 1) {
    conn_track *ct = track_of(track, ntrack, ev.id);
    if (ev.type == PW_EV_OPEN && !ct && ntrack < CLIENTS) check_open(track, &ntrack, &ev);
    else if (ev.type == PW_EV_MESSAGE) check_message(ct, &ev);
    else if (ev.type == PW_EV_CLOSE && ct && !ct->closed)
      ct->closed = 1, closes++, CHECK_EQ_INT(ev.code, 1000);
    else strays++;
    pw_event_release(&ev);
  }
  for (int i = 0; i < CLIENTS; i++) pthread_join(t[i], NULL);
  CHECK_EQ_INT(ntrack, CLIENTS);
  CHECK_EQ_INT(closes, CLIENTS);
  CHECK_EQ_INT(strays, 0);
  for (int i = 0; i < ntrack; i++) {
    CHECK_EQ_INT(track[i].next_seq, MESSAGES); /* all, once, in order, before the close */
    CHECK_EQ_INT(track[i].bad, 0);
  }
  pw_server_free(srv);
}

/* ---- a slow owner ---- */
enum { SLOW_MSGS = 2000, SLOW_SIZE = 1024 };

static void *send_burst(void *arg) {
  wsc *c = arg;
  uint8_t msg[SLOW_SIZE];
  memset(msg, 'x', sizeof msg);
  for (int i = 0; i < SLOW_MSGS; i++) {
    memcpy(msg, &i, sizeof i);
    if (wsc_send(c, 2, 1, msg, sizeof msg) != 0) break;
  }
  return NULL;
}

static void test_pause_bounds_memory(void) {
  const size_t limit = 64 * 1024;
  pw_server *srv = queued_server(limit, 1000, PW_EVQ_PAUSE);
  wsc c;
  CHECK_EQ_INT(wsc_connect(&c, pw_server_port(srv), "/"), 0);
  pthread_t t;
  pthread_create(&t, NULL, send_burst, &c);
  int next = 0, bad = 0;
  uint64_t peak = 0;
  pw_event ev;
  while (next < SLOW_MSGS && pw_next_event(srv, &ev, 10000) == 1) {
    pw_stats st;
    pw_server_stats(srv, &st);
    if (st.event_bytes > peak) peak = st.event_bytes;
    if (ev.type == PW_EV_MESSAGE) {
      int seq;
      memcpy(&seq, pw_buf_data(ev.buf), sizeof seq);
      bad += seq != next++ || pw_buf_len(ev.buf) != SLOW_SIZE || !ev.is_binary;
      if (next % 4 == 0) sleep_ms(1); /* the owner is slow */
    }
    pw_event_release(&ev);
  }
  pthread_join(t, NULL);
  pw_stats st;
  pw_server_stats(srv, &st);
  fprintf(stderr, "  pause: peak %llu bytes waiting (limit %zu), reads paused %llu times\n",
          (unsigned long long)peak, limit, (unsigned long long)st.reads_paused);
  CHECK_EQ_INT(next, SLOW_MSGS); /* nothing lost */
  CHECK_EQ_INT(bad, 0);
  CHECK(st.reads_paused > 0);                   /* the policy acted, and reading resumed */
  CHECK(peak <= limit + 64 * 1024 + SLOW_SIZE); /* limit + one read + one message */
  wsc_close(&c);
  pw_server_free(srv);
}

static int all_seen(void *srv) {
  pw_stats st;
  pw_server_stats(srv, &st);
  return st.events_queued + st.events_dropped >= 1 + 100; /* the open + every message */
}

static void test_close_and_drop_policies(void) {
  pw_server *srv = queued_server(0, 10, PW_EVQ_CLOSE);
  wsc c;
  CHECK_EQ_INT(wsc_connect(&c, pw_server_port(srv), "/"), 0);
  for (int i = 0; i < 100; i++) wsc_send(&c, 1, 1, "hello", 5);
  wsc_frame f;
  CHECK_EQ_INT(wsc_recv(&c, &f, 3000), 0);
  CHECK(f.opcode == 8 && f.len >= 2 && (f.payload[0] << 8 | f.payload[1]) == 1013);
  free(f.payload);
  pw_stats st;
  pw_server_stats(srv, &st);
  CHECK_EQ_INT(st.events_closed, 1);
  wsc_close(&c);
  pw_server_free(srv);

  srv = queued_server(0, 10, PW_EVQ_DROP);
  CHECK_EQ_INT(wsc_connect(&c, pw_server_port(srv), "/"), 0);
  for (int i = 0; i < 100; i++) wsc_send(&c, 1, 1, "hello", 5);
  CHECK(th_wait(all_seen, srv, 5000));
  pw_server_stats(srv, &st);
  CHECK(st.events_dropped > 0);
  CHECK_EQ_INT(st.events_queued + st.events_dropped, 101);
  CHECK_EQ_INT(st.events_waiting, 10); /* the queue stayed at its limit */
  CHECK_EQ_INT(wsc_send(&c, 1, 1, "still open", 10), 0);
  wsc_close(&c);
  pw_server_free(srv);
}

/* ---- two reasons to pause: the owner's queue and the client's own send queue ---- */
enum { BIG_PUSH = 16384, MAX_PUSHES = 640 }; /* at most 10 MiB */

static int queued_over(void *srv) {
  pw_stats st;
  pw_server_stats(srv, &st);
  return st.queued_bytes > 2 * 1024 * 1024 + 256 * 1024; /* past the high mark of 4 MiB */
}

static uint64_t push_target;

static int pushes_queued(void *srv) {
  pw_stats st;
  pw_server_stats(srv, &st);
  return st.messages_queued >= push_target;
}

static int paused_for_both(void *srv) {
  pw_stats st;
  pw_server_stats(srv, &st);
  return st.reads_paused == 1 && st.reads_paused_sendq == 1;
}

/* A message event with this payload within timeout_ms? */
static int next_message(pw_server *srv, const char *want, size_t len, int timeout_ms) {
  pw_event ev;
  int got = 0;
  uint64_t end = now_ms() + (uint64_t)timeout_ms;
  while (!got && now_ms() < end && pw_next_event(srv, &ev, (int)(end - now_ms())) == 1) {
    got = ev.type == PW_EV_MESSAGE && pw_buf_len(ev.buf) == len &&
          memcmp(pw_buf_data(ev.buf), want, len) == 0;
    pw_event_release(&ev);
  }
  return got;
}

/* A client paused by the owner's full queue and by its own full send queue reads again
 * only when both have drained: the owner's drain alone must not restart it. (Checked to
 * fail with pw__conn_resume_reads starting to read while a reason is left: the third
 * message arrives before the client has read its queue.) */
static void test_pause_reasons_combine(void) {
  pw_options o = {.deliver_open = PW_DELIVER_QUEUE,
                  .deliver_message = PW_DELIVER_QUEUE,
                  .max_events = 4,
                  .max_queued_bytes = 4 * 1024 * 1024};
  pw_server *srv = pw_server_new(&o, NULL, NULL);
  CHECK_EQ_INT(pw_server_start(srv), 0);
  wsc c;
  CHECK_EQ_INT(wsc_connect_rcvbuf(&c, pw_server_port(srv), "/", 4096), 0);
  pw_event ev;
  CHECK_EQ_INT(pw_next_event(srv, &ev, 3000), 1);
  pw_conn_id id = ev.id;
  CHECK(ev.type == PW_EV_OPEN);
  pw_event_release(&ev);
  /* It does not read: push until its queue (not the kernel's buffers) holds more than the
   * high mark. */
  int pushes = 0;
  static uint8_t push[BIG_PUSH];
  while (!queued_over(srv) && pushes < MAX_PUSHES) {
    CHECK_EQ_INT(pw_send(srv, id, push, sizeof push, PW_BINARY), 0);
    push_target = ++pushes;
    CHECK(th_wait(pushes_queued, srv, 3000));
  }
  CHECK(queued_over(srv));
  /* The owner's queue is full (of user events); one message passes its limit (paused for
   * the owner), and that read ends above the send queue's high mark (paused for its own). */
  int posted = 0;
  while (pw_post_event(srv, 1, NULL) == 0) posted++;
  CHECK_EQ_INT(posted, 4);
  CHECK_EQ_INT(wsc_send(&c, 1, 1, "first", 5), 0);
  CHECK(th_wait(paused_for_both, srv, 5000));
  CHECK_EQ_INT(wsc_send(&c, 1, 1, "third", 5), 0);
  /* The owner drains its queue (a RESUME goes to the loop): still not read. */
  CHECK(next_message(srv, "first", 5, 3000));
  CHECK(!next_message(srv, "third", 5, 300));
  /* The client reads its queue: below the low mark it is read again. */
  int read = 0;
  wsc_frame f;
  while (read < pushes && wsc_recv(&c, &f, 5000) == 0) read += f.len == BIG_PUSH, free(f.payload);
  CHECK_EQ_INT(read, pushes);
  CHECK(next_message(srv, "third", 5, 5000));
  wsc_close(&c);
  pw_server_free(srv);
}

/* ---- pw_post_event from 8 threads ---- */
enum { POSTERS = 8, POSTS = 20000 };

static void *poster(void *arg) {
  pw_server *srv = ((void **)arg)[0];
  intptr_t who = (intptr_t)((void **)arg)[1];
  for (intptr_t i = 0; i < POSTS; i++)
    while (pw_post_event(srv, (int)who, (void *)i) == PW_EAGAIN) sched_yield();
  return NULL;
}

static void test_post_from_threads(void) {
  pw_server *srv = queued_server(0, 1000, PW_EVQ_PAUSE);
  pthread_t t[POSTERS];
  void *args[POSTERS][2];
  for (int i = 0; i < POSTERS; i++) {
    args[i][0] = srv, args[i][1] = (void *)(intptr_t)i;
    pthread_create(&t[i], NULL, poster, args[i]);
  }
  intptr_t next[POSTERS] = {0};
  int bad = 0, total = 0;
  pw_event ev;
  while (total < POSTERS * POSTS && pw_next_event(srv, &ev, 5000) == 1) {
    int who = ev.user_type;
    if (ev.type != PW_EV_USER || who < 0 || who >= POSTERS || (intptr_t)ev.user_data != next[who])
      bad++;
    else next[who]++;
    total++;
    pw_event_release(&ev);
  }
  for (int i = 0; i < POSTERS; i++) pthread_join(t[i], NULL);
  CHECK_EQ_INT(total, POSTERS * POSTS);
  CHECK_EQ_INT(bad, 0);
  CHECK_EQ_INT(pw_next_event(srv, &ev, 0), 0);
  pw_server_free(srv);
}

/* ---- the end of the server ---- */
/* A thread blocked in pw_next_event(-1) through pw_server_stop takes the last close event,
 * then wakes with PW_ESTOPPED once the loops have ended (not before the close: what is left
 * is taken first); the fd is readable from then on, also with an empty queue; a user event
 * posted after the stop is still taken, then PW_ESTOPPED again, for any timeout. Before
 * start an empty queue only times out, and a server stopped before it started answers
 * PW_ESTOPPED too.
 * Checked to fail: without pw__events_stopped in mark_done/wait_done the waiter was still
 * blocked 3 s after the stop returned (then released by a user event here), the fd was not
 * readable and pw_next_event(0) answered 0. */
enum { GIVE_UP = 99 };

typedef struct waiter {
  pw_server *srv;
  _Atomic int opens, closes;
  int result;
  _Atomic int done;
} waiter;

static void *take_until_not_one(void *arg) {
  waiter *w = arg;
  pw_event ev;
  while ((w->result = pw_next_event(w->srv, &ev, -1)) == 1) {
    int give_up = ev.type == PW_EV_USER && ev.user_type == GIVE_UP;
    w->opens += ev.type == PW_EV_OPEN;
    w->closes += ev.type == PW_EV_CLOSE;
    pw_event_release(&ev);
    if (give_up) break;
  }
  atomic_store(&w->done, 1);
  return NULL;
}

static int waiter_done(void *w) { return atomic_load(&((waiter *)w)->done); }
static int opened_once(void *w) { return atomic_load(&((waiter *)w)->opens) == 1; }

/* Answer the server's 1001 and end the client, so the stop need not wait. */
static void *answer_stop(void *arg) {
  wsc *c = arg;
  wsc_frame f;
  if (wsc_recv(c, &f, 5000) == 0) {
    wsc_send(c, 8, 1, f.payload, f.len >= 2 ? 2 : 0);
    free(f.payload);
    wsc_wait_eof(c, 5000);
  }
  wsc_close(c);
  return NULL;
}

static void test_next_event_after_stop(void) {
  pw_event ev;
  pw_server *srv = queued_server(0, 0, PW_EVQ_PAUSE);
  waiter w = {.srv = srv};
  pthread_t t, a;
  pthread_create(&t, NULL, take_until_not_one, &w);
  wsc c;
  CHECK_EQ_INT(wsc_connect(&c, pw_server_port(srv), "/"), 0);
  CHECK(th_wait(opened_once, &w, 3000));
  pthread_create(&a, NULL, answer_stop, &c);
  CHECK_EQ_INT(pw_server_stop(srv), 0);
  pthread_join(a, NULL);
  int woke = th_wait(waiter_done, &w, 3000);
  CHECK(woke);
  if (!woke) pw_post_event(srv, GIVE_UP, NULL); /* release it to report the rest */
  pthread_join(t, NULL);
  CHECK_EQ_INT(w.result, PW_ESTOPPED);
  CHECK_EQ_INT(atomic_load(&w.opens), 1);
  CHECK_EQ_INT(atomic_load(&w.closes), 1); /* the close of the stop came before the end */
  CHECK(fd_readable(srv));                 /* readable with an empty queue: the end is news too */
  CHECK_EQ_INT(pw_next_event(srv, &ev, 0), PW_ESTOPPED);
  uint64_t t0 = now_ms();
  CHECK_EQ_INT(pw_next_event(srv, &ev, 5000), PW_ESTOPPED);
  CHECK(now_ms() - t0 < 1000); /* at once, not after the timeout */
  CHECK_EQ_INT(pw_post_event(srv, 5, NULL), 0);
  CHECK_EQ_INT(pw_next_event(srv, &ev, -1), 1); /* what is left is taken first */
  CHECK_EQ_INT(ev.user_type, 5);
  pw_event_release(&ev);
  CHECK_EQ_INT(pw_next_event(srv, &ev, -1), PW_ESTOPPED);
  CHECK(fd_readable(srv));
  pw_server_free(srv);

  pw_options o = {.deliver_close = PW_DELIVER_QUEUE};
  srv = pw_server_new(&o, NULL, NULL); /* never started */
  t0 = now_ms();
  CHECK_EQ_INT(pw_next_event(srv, &ev, 50), 0); /* before start: waits, as always */
  CHECK(now_ms() - t0 >= 45);
  CHECK(!fd_readable(srv));
  CHECK_EQ_INT(pw_server_stop(srv), 0);
  CHECK_EQ_INT(pw_next_event(srv, &ev, -1), PW_ESTOPPED);
  CHECK(fd_readable(srv));
  pw_server_free(srv);
}

int main(void) {
  test_fd_readiness();
  test_order_under_load();
  test_pause_bounds_memory();
  test_pause_reasons_combine();
  test_close_and_drop_policies();
  test_post_from_threads();
  test_next_event_after_stop();
  return CHECK_DONE();
}
