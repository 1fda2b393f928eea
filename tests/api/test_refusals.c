/* Calls from other threads that return 0 but are refused later, on the loop: the caller can
 * learn it. A subscription over max_subscriptions is counted (stats.subscriptions_refused)
 * and reported to on_subscribe_refused, or as a PW_EV_SUBSCRIBE_REFUSED event with
 * deliver_refused = PW_DELIVER_QUEUE (bounded by max_events: past it dropped and counted); a
 * message dropped by PW_SLOW_DROP_NEW is counted in stats.dropped_new, from any thread; one
 * message larger than max_inbox_bytes is accepted into an empty inbox (and only there). */
#include <pthread.h>
#include <pushwire.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "../support/harness.h"
#include "../support/wsclient.h"
#include "../support/check.h"
#include "../support/clock.h"

/* ---- what the callbacks saw (loop thread), read by the test under the lock ---------------- */
enum { MAX_SEEN = 16 };
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic pw_conn_id last_open;
static int nrefused;
static pw_conn_id refused_id[MAX_SEEN];
static char refused_topic[MAX_SEEN][32];
static int refused_code[MAX_SEEN];

static void on_open(pw_server *srv, pw_conn_id id, const pw_request *req, void *user) {
  atomic_store(&last_open, id);
}

static void on_refused(pw_server *srv, pw_conn_id id, const char *topic, int code, void *user) {
  pthread_mutex_lock(&lock);
  if (nrefused < MAX_SEEN) {
    refused_id[nrefused] = id, refused_code[nrefused] = code;
    snprintf(refused_topic[nrefused], sizeof refused_topic[0], "%s", topic);
  }
  nrefused++;
  pthread_mutex_unlock(&lock);
}

static int refusals_seen(void) {
  pthread_mutex_lock(&lock);
  int n = nrefused;
  pthread_mutex_unlock(&lock);
  return n;
}

static pw_server *start(pw_options *o) {
  pw_callbacks cb = {.on_open = on_open, .on_subscribe_refused = on_refused};
  atomic_store(&last_open, 0);
  pw_server *srv = pw_server_new(o, &cb, NULL);
  CHECK(srv != NULL && pw_server_start(srv) == 0);
  return srv;
}

static int has_open(void *arg) { return atomic_load(&last_open) != 0; }

static pw_conn_id connect_one(pw_server *srv, wsc *c, int rcvbuf) {
  CHECK_EQ_INT(wsc_connect_rcvbuf(c, pw_server_port(srv), "/", rcvbuf), 0);
  CHECK(th_wait(has_open, NULL, 3000));
  return atomic_load(&last_open);
}

static pw_stats stats_of(pw_server *srv) {
  pw_stats st;
  pw_server_stats(srv, &st);
  return st;
}

static int two_callbacks(void *arg) { return refusals_seen() >= 2; }

typedef struct want_refused {
  pw_server *srv;
  uint64_t n;
} want_refused;

static int counted(void *arg) {
  want_refused *w = arg;
  return stats_of(w->srv).subscriptions_refused >= w->n;
}

/* ---- 1. the callback and the counter -------------------------------------------------------- */
/* max_subscriptions 2; four subscribes from this thread all return 0; the last two are
 * refused on the loop: on_subscribe_refused tells which (id, topic, PW_EAGAIN) and the
 * counter says 2. A refusal on the loop thread (pw_subscribe inside a pw_call) returns
 * PW_EAGAIN to its caller: counted, no callback.
 * Checked to fail: with report_refused only logging and topic.c not counting (as before), no
 * callback came (0 of 2) and subscriptions_refused stayed 0. */
static pw_conn_id loop_call_id;
static _Atomic int loop_call_result = 1;

static void subscribe_on_loop(pw_server *srv, void *arg) {
  atomic_store(&loop_call_result, pw_subscribe(srv, loop_call_id, "on-loop"));
}

static int loop_call_done(void *arg) { return atomic_load(&loop_call_result) != 1; }

static void test_refused_subscription_callback(void) {
  pw_options o = {.max_subscriptions = 2};
  pw_server *srv = start(&o);
  wsc c;
  pw_conn_id id = connect_one(srv, &c, 0);
  const char *topics[] = {"a", "b", "c", "d"};
  for (int i = 0; i < 4; i++) CHECK_EQ_INT(pw_subscribe(srv, id, topics[i]), 0);
  CHECK(th_wait(two_callbacks, NULL, 3000));
  CHECK_EQ_INT(refusals_seen(), 2);
  pthread_mutex_lock(&lock);
  for (int i = 0; i < 2 && i < nrefused; i++) {
    CHECK(refused_id[i] == id);
    CHECK(strcmp(refused_topic[i], topics[2 + i]) == 0); /* in the order asked */
    CHECK_EQ_INT(refused_code[i], PW_EAGAIN);
  }
  pthread_mutex_unlock(&lock);
  CHECK_EQ_INT(stats_of(srv).subscriptions_refused, 2);
  CHECK_EQ_INT(pw_topic_subscribers(srv, "b"), 1);
  CHECK_EQ_INT(pw_topic_subscribers(srv, "c"), 0);
  loop_call_id = id;
  CHECK_EQ_INT(pw_call(srv, subscribe_on_loop, NULL), 0);
  CHECK(th_wait(loop_call_done, NULL, 3000));
  CHECK_EQ_INT(atomic_load(&loop_call_result), PW_EAGAIN); /* told directly ... */
  CHECK_EQ_INT(stats_of(srv).subscriptions_refused, 3);    /* ... counted ... */
  CHECK_EQ_INT(refusals_seen(), 2);                        /* ... and no callback */
  wsc_close(&c);
  pw_server_free(srv);
}

/* ---- 2. the owner's queue, bounded -------------------------------------------------------- */
/* With deliver_refused = PW_DELIVER_QUEUE the refusal is a PW_EV_SUBSCRIBE_REFUSED event
 * (id, topic, code) and the callback is not called. max_events 1: of two refusals the second
 * does not fit, is dropped and counted in events_dropped, while both count as refused.
 * Checked to fail: with pw__events_refused not called (the callback path taken), no event
 * came and the callback ran twice. */
static void test_refused_subscription_event(void) {
  pw_options o = {.max_subscriptions = 1, .deliver_refused = PW_DELIVER_QUEUE, .max_events = 1};
  int seen_before = refusals_seen();
  pw_server *srv = start(&o);
  wsc c;
  pw_conn_id id = connect_one(srv, &c, 0);
  CHECK_EQ_INT(pw_subscribe(srv, id, "x"), 0);
  CHECK_EQ_INT(pw_subscribe(srv, id, "y"), 0);
  CHECK_EQ_INT(pw_subscribe(srv, id, "z"), 0);
  want_refused w = {srv, 2};
  CHECK(th_wait(counted, &w, 3000));
  pw_event ev;
  CHECK_EQ_INT(pw_next_event(srv, &ev, 1000), 1);
  CHECK_EQ_INT(ev.type, PW_EV_SUBSCRIBE_REFUSED);
  CHECK(ev.id == id);
  CHECK(ev.topic && strcmp(ev.topic, "y") == 0);
  CHECK_EQ_INT(ev.code, PW_EAGAIN);
  pw_event_release(&ev);
  CHECK_EQ_INT(pw_next_event(srv, &ev, 0), 0); /* "z" did not fit */
  pw_stats st = stats_of(srv);
  CHECK_EQ_INT(st.events_dropped, 1);
  CHECK_EQ_INT(st.subscriptions_refused, 2);
  CHECK_EQ_INT(refusals_seen(), seen_before); /* a queued kind's callback is not called */
  wsc_close(&c);
  pw_server_free(srv);
}

/* ---- 3. PW_SLOW_DROP_NEW counts drops of sends from other threads ---------------------------- */
/* A client that never reads, under PW_SLOW_DROP_NEW with a 64 KiB limit; 1,000 sends of
 * 16 KiB from this thread all return 0. Every one of them ends up either in a send queue
 * (messages_queued) or dropped by the policy (dropped_new), and some were dropped: the
 * counter tells the producer what its 0 could not.
 * (No fix behind this one: the loop already counted these; the test pins it.) */
enum { DROP_N = 1000, DROP_SIZE = 16 * 1024 };

static int all_accounted(void *srv) {
  pw_stats st = stats_of(srv);
  return st.messages_queued + st.dropped_new >= DROP_N;
}

static void test_drop_new_counted_for_other_threads(void) {
  pw_options o = {.slow_policy = PW_SLOW_DROP_NEW, .max_queued_bytes = 64 * 1024};
  pw_server *srv = start(&o);
  wsc c;
  pw_conn_id id = connect_one(srv, &c, 4096);
  static uint8_t msg[DROP_SIZE];
  int accepted = 0;
  for (int i = 0; i < DROP_N; i++) accepted += pw_send(srv, id, msg, sizeof msg, PW_BINARY) == 0;
  CHECK_EQ_INT(accepted, DROP_N);
  CHECK(th_wait(all_accounted, srv, 5000));
  pw_stats st = stats_of(srv);
  fprintf(stderr, "  drop new: %llu queued, %llu dropped of %d\n",
          (unsigned long long)st.messages_queued, (unsigned long long)st.dropped_new, DROP_N);
  CHECK_EQ_INT(st.messages_queued + st.dropped_new, DROP_N);
  CHECK(st.dropped_new > 0);
  CHECK_EQ_INT(st.connections, 1); /* the client stayed */
  wsc_close(&c);
  pw_server_free(srv);
}

/* ---- 4. one message larger than max_inbox_bytes goes into an empty inbox ------------------ */
/* max_inbox_bytes 4 KiB, the loop held: a 16 KiB send gets in (the inbox was empty), the
 * next small one gets PW_EAGAIN (counted in rejected), and a PW_BLOCK send waits until the
 * loop has drained, then gets in; the client receives both, in order.
 * (No fix behind this one: documented behaviour, pinned here.) */
typedef struct blocked_send {
  pw_server *srv;
  pw_conn_id id;
  _Atomic int result;
} blocked_send;

static void *send_blocking(void *arg) {
  blocked_send *b = arg;
  atomic_store(&b->result, pw_send(b->srv, b->id, "small", 5, PW_TEXT | PW_BLOCK));
  return NULL;
}

static int send_returned(void *b) { return atomic_load(&((blocked_send *)b)->result) != 1; }

static void test_big_message_into_empty_inbox(void) {
  pw_options o = {.max_inbox_bytes = 4096, .send_timeout_ms = 5000};
  pw_server *srv = start(&o);
  wsc c;
  pw_conn_id id = connect_one(srv, &c, 0);
  CHECK(th_hold_loop(srv));
  static uint8_t big[16 * 1024];
  CHECK_EQ_INT(pw_send(srv, id, big, sizeof big, PW_BINARY), 0);  /* alone: it fits */
  CHECK_EQ_INT(pw_send(srv, id, "small", 5, PW_TEXT), PW_EAGAIN); /* beside it: no */
  CHECK_EQ_INT(stats_of(srv).rejected, 1);
  blocked_send b = {.srv = srv, .id = id, .result = 1};
  pthread_t t;
  pthread_create(&t, NULL, send_blocking, &b);
  CHECK(!th_wait(send_returned, &b, 100)); /* waits for the drain */
  th_release_loop();
  CHECK(th_wait(send_returned, &b, 3000));
  pthread_join(t, NULL);
  CHECK_EQ_INT(atomic_load(&b.result), 0);
  wsc_frame f;
  CHECK_EQ_INT(wsc_recv(&c, &f, 3000), 0);
  CHECK(f.opcode == 2 && f.len == sizeof big);
  free(f.payload);
  CHECK_EQ_INT(wsc_recv(&c, &f, 3000), 0);
  CHECK(f.opcode == 1 && f.len == 5);
  free(f.payload);
  wsc_close(&c);
  pw_server_free(srv);
}

int main(void) {
  test_refused_subscription_callback();
  test_refused_subscription_event();
  test_drop_new_counted_for_other_threads();
  test_big_message_into_empty_inbox();
  return CHECK_DONE();
}
