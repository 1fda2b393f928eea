/* Topics with two loop threads: a publish reaches exactly the topic's subscribers on every
 * loop; unsubscribe and close stop delivery; per-producer order holds per connection; a slow
 * subscriber's policy acts without slowing the others; on-demand producers start once on the
 * first subscriber anywhere and stop when the last leaves, also by disconnecting. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "../support/harness.h"
#include "../support/wsclient.h"
#include "../support/check.h"
#include "../support/clock.h"

enum { N = 20 };

static pw_server *two_loops(pw_options *o) {
  pw_options d = {0};
  if (!o) o = &d;
  o->threads = 2;
  return th_start(o, NULL);
}

static void connect_n(pw_server *srv, wsc *c, pw_conn_id *ids, int n, int first) {
  for (int i = 0; i < n; i++) {
    CHECK_EQ_INT(wsc_connect(&c[i], pw_server_port(srv), "/"), 0);
    ids[i] = th_wait_open(first + i + 1, 3000);
  }
}

/* The next message within ms, as a string ("" if none). */
static void next_text(wsc *c, char *out, size_t cap, int ms) {
  wsc_frame f;
  out[0] = '\0';
  if (wsc_recv(c, &f, ms) != 0) return;
  snprintf(out, cap, "%.*s", (int)f.len, (char *)f.payload);
  free(f.payload);
}

static void test_reach_unsubscribe_close(void) {
  pw_server *srv = two_loops(NULL);
  wsc c[N];
  pw_conn_id ids[N];
  connect_n(srv, c, ids, N, 0);
  int loops_seen[2] = {0};
  for (int i = 0; i < N; i++) loops_seen[ids[i] >> 56 & 1]++;
  CHECK(loops_seen[0] > 0 && loops_seen[1] > 0); /* both loops have clients */
  for (int i = 0; i < N; i++) {
    if (i % 2 == 0) CHECK_EQ_INT(pw_subscribe(srv, ids[i], "a"), 0);
    if (i % 4 == 1) CHECK_EQ_INT(pw_subscribe(srv, ids[i], "b"), 0);
  }
  CHECK_EQ_INT(pw_subscribe(srv, ids[0], "a"), 0); /* twice: still one subscription */
  CHECK(th_wait_subscribers(srv, "a", N / 2, 3000));
  CHECK(th_wait_subscribers(srv, "b", N / 4, 3000));
  CHECK_EQ_INT(pw_publish(srv, "a", "to a", 4, PW_TEXT), 0);
  CHECK_EQ_INT(pw_publish(srv, "b", "to b", 4, PW_TEXT), 0);
  CHECK_EQ_INT(pw_publish(srv, "nobody", "x", 1, PW_TEXT), 0);
  char got[64];
  for (int i = 0; i < N; i++) {
    next_text(&c[i], got, sizeof got, i % 2 == 0 || i % 4 == 1 ? 3000 : 200);
    const char *want = i % 2 == 0 ? "to a" : i % 4 == 1 ? "to b" : "";
    CHECK(strcmp(got, want) == 0);
  }
  CHECK_EQ_INT(pw_unsubscribe(srv, ids[0], "a"), 0);
  wsc_close(&c[2]); /* a subscriber disconnects */
  CHECK(th_wait_closes(1, 3000));
  CHECK(th_wait_subscribers(srv, "a", N / 2 - 2, 3000));
  CHECK_EQ_INT(pw_publish(srv, "a", "again", 5, PW_TEXT), 0);
  for (int i = 4; i < N; i += 2)
    next_text(&c[i], got, sizeof got, 3000), CHECK(strcmp(got, "again") == 0);
  next_text(&c[0], got, sizeof got, 200);
  CHECK(strcmp(got, "") == 0); /* unsubscribed: nothing */
  CHECK_EQ_INT(pw_subscribe(srv, ids[2], "a"), PW_ENOCONN);
  CHECK_EQ_INT(pw_publish(srv, "", "x", 1, PW_TEXT), PW_EINVAL);
  for (int i = 0; i < N; i++)
    if (i != 2) wsc_close(&c[i]);
  pw_server_free(srv);
}

/* ---- order per producer ---- */
/* Start `n` threads running fn with {srv, index}. */
static void start_producers(pthread_t *t, void *(*args)[2], int n, pw_server *srv,
                            void *(*fn)(void *)) {
  for (int p = 0; p < n; p++)
    args[p][0] = srv, args[p][1] = (void *)(intptr_t)p, pthread_create(&t[p], NULL, fn, args[p]);
}

/* Read each client's `expect` messages ({producer, sequence} pairs) and count those out of
 * per-producer order (*bad) and those in order (*total). */
static void read_in_order(wsc *c, int nclients, int producers, int expect, int *bad, int *total) {
  *bad = *total = 0;
  for (int i = 0; i < nclients; i++) {
    uint32_t next[16] = {0};
    for (int k = 0; k < expect; k++) {
      wsc_frame f;
      if (wsc_recv(&c[i], &f, 10000) != 0) break;
      uint32_t msg[2];
      memcpy(msg, f.payload, sizeof msg);
      free(f.payload);
      if (msg[0] >= (uint32_t)producers || msg[1] != next[msg[0]]) (*bad)++;
      else next[msg[0]]++, (*total)++;
    }
  }
}
enum { PRODUCERS = 4, PUBS = 5000, SUBS = 10 };

static void *publisher(void *arg) {
  pw_server *srv = ((void **)arg)[0];
  uint32_t who = (uint32_t)(intptr_t)((void **)arg)[1];
  for (uint32_t i = 0; i < PUBS; i++) {
    uint32_t msg[2] = {who, i};
    while (pw_publish(srv, "o", msg, sizeof msg, PW_BINARY | PW_BLOCK) == PW_EAGAIN) {}
  }
  return NULL;
}

static void test_order_two_loops(void) {
  pw_options o = {.max_queued_bytes = 64u << 20};
  pw_server *srv = two_loops(&o);
  wsc c[SUBS];
  pw_conn_id ids[SUBS];
  connect_n(srv, c, ids, SUBS, 0);
  for (int i = 0; i < SUBS; i++) CHECK_EQ_INT(pw_subscribe(srv, ids[i], "o"), 0);
  CHECK(th_wait_subscribers(srv, "o", SUBS, 3000)); /* also a barrier: subscribed on both loops */
  pthread_t t[PRODUCERS];
  void *args[PRODUCERS][2];
  start_producers(t, args, PRODUCERS, srv, publisher);
  int bad, total;
  read_in_order(c, SUBS, PRODUCERS, PRODUCERS * PUBS, &bad, &total);
  for (int p = 0; p < PRODUCERS; p++) pthread_join(t[p], NULL);
  CHECK_EQ_INT(bad, 0);
  CHECK_EQ_INT(total, SUBS * PRODUCERS * PUBS);
  for (int i = 0; i < SUBS; i++) wsc_close(&c[i]);
  pw_server_free(srv);
}

/* ---- batches keep inbox order ----
 * Consecutive publishes to one topic are fanned out as one batch (publish.c). Each producer
 * here numbers everything it emits (publishes to "x" and "y", direct sends to every client)
 * with one sequence, and every client gets all of it: each must see every producer's numbers
 * in order and without a gap, and the stats must count each message of a batch. Checked to
 * fail: without the batch flush before other commands (send.c pw__dispatch) the direct sends
 * overtook the waiting publishes; with "y" joining an "x" batch the order broke as well. */
enum { MIX_PRODUCERS = 3, MIX_MSGS = 3000, MIX_SUBS = 6 };
static pw_conn_id mix_ids[MIX_SUBS];

static void *mixed_producer(void *arg) {
  pw_server *srv = ((void **)arg)[0];
  uint32_t who = (uint32_t)(intptr_t)((void **)arg)[1];
  for (uint32_t i = 0; i < MIX_MSGS; i++) {
    uint32_t msg[2] = {who, i};
    if (i % 5 == 4) {
      for (int k = 0; k < MIX_SUBS; k++)
        while (pw_send(srv, mix_ids[k], msg, sizeof msg, PW_BINARY | PW_BLOCK) == PW_EAGAIN) {}
    } else {
      const char *topic = i % 5 == 3 ? "y" : "x";
      while (pw_publish(srv, topic, msg, sizeof msg, PW_BINARY | PW_BLOCK) == PW_EAGAIN) {}
    }
  }
  return NULL;
}

static void test_batches_keep_order(void) {
  pw_options o = {.max_queued_bytes = 64u << 20};
  pw_server *srv = two_loops(&o);
  wsc c[MIX_SUBS];
  connect_n(srv, c, mix_ids, MIX_SUBS, 0);
  for (int i = 0; i < MIX_SUBS; i++)
    CHECK_EQ_INT(pw_subscribe(srv, mix_ids[i], "x"), 0),
        CHECK_EQ_INT(pw_subscribe(srv, mix_ids[i], "y"), 0);
  CHECK(th_wait_subscribers(srv, "y", MIX_SUBS, 3000)); /* a barrier on both loops */
  pw_stats before;
  pw_server_stats(srv, &before);
  pthread_t t[MIX_PRODUCERS];
  void *args[MIX_PRODUCERS][2];
  start_producers(t, args, MIX_PRODUCERS, srv, mixed_producer);
  int bad, total;
  read_in_order(c, MIX_SUBS, MIX_PRODUCERS, MIX_PRODUCERS * MIX_MSGS, &bad, &total);
  for (int p = 0; p < MIX_PRODUCERS; p++) pthread_join(t[p], NULL);
  CHECK_EQ_INT(bad, 0);
  CHECK_EQ_INT(total, MIX_SUBS * MIX_PRODUCERS * MIX_MSGS);
  pw_stats after;
  pw_server_stats(srv, &after);
  CHECK_EQ_INT((int)(after.messages_queued - before.messages_queued),
               MIX_SUBS * MIX_PRODUCERS * MIX_MSGS);
  for (int i = 0; i < MIX_SUBS; i++) wsc_close(&c[i]);
  pw_server_free(srv);
}

/* ---- a slow subscriber ---- */
static void test_slow_subscriber(void) {
  pw_options o = {.max_queued_bytes = 128 * 1024, .slow_policy = PW_SLOW_DROP_OLDEST};
  pw_server *srv = two_loops(&o);
  wsc slow, fast;
  CHECK_EQ_INT(wsc_connect_rcvbuf(&slow, pw_server_port(srv), "/", 4096), 0);
  pw_conn_id s = th_wait_open(1, 3000);
  CHECK_EQ_INT(wsc_connect(&fast, pw_server_port(srv), "/"), 0);
  pw_conn_id f = th_wait_open(2, 3000);
  CHECK_EQ_INT(pw_set_slow_policy(srv, f, PW_SLOW_DROP_NEW, 256u << 20), 0);
  pw_subscribe(srv, s, "feed");
  pw_subscribe(srv, f, "feed");
  CHECK(th_wait_subscribers(srv, "feed", 2, 3000));
  enum { MSGS = 1000, SIZE = 16384 };
  static uint8_t msg[SIZE];
  for (uint32_t i = 0; i < MSGS; i++) {
    memcpy(msg, &i, sizeof i);
    CHECK_EQ_INT(pw_publish(srv, "feed", msg, SIZE, PW_BINARY | PW_BLOCK), 0);
  }
  int got = 0;
  for (uint32_t i = 0; i < MSGS; i++) {
    wsc_frame fr;
    if (wsc_recv(&fast, &fr, 10000) != 0) break;
    uint32_t seq;
    memcpy(&seq, fr.payload, sizeof seq);
    free(fr.payload);
    got += seq == i;
  }
  CHECK_EQ_INT(got, MSGS); /* the fast one got everything, in order */
  pw_stats st;
  pw_server_stats(srv, &st);
  CHECK(st.dropped_oldest > 0); /* the slow one's policy acted */
  wsc_close(&slow);
  wsc_close(&fast);
  pw_server_free(srv);
}

/* ---- on-demand producers ---- */
static _Atomic int starts, running, max_running;

static void ticker(pw_server *srv, const char *topic, void *arg) {
  atomic_fetch_add(&starts, 1);
  int now = atomic_fetch_add(&running, 1) + 1;
  if (now > atomic_load(&max_running)) atomic_store(&max_running, now);
  for (int n = 0; !pw_task_sleep(5); n++) {
    char msg[64];
    int len = snprintf(msg, sizeof msg, "%s %d", topic, n);
    pw_publish(srv, topic, msg, (size_t)len, PW_TEXT);
  }
  atomic_fetch_sub(&running, 1);
}

static int none_running(void *arg) { return atomic_load(&running) == 0; }
static int one_running(void *arg) { return atomic_load(&running) == 1; }

typedef struct subber {
  pw_server *srv;
  pw_conn_id id;
  pthread_barrier_t *go;
} subber;

static void *subscribe_at_once(void *arg) {
  subber *s = arg;
  pthread_barrier_wait(s->go);
  pw_subscribe(s->srv, s->id, "tick:x");
  return NULL;
}

static void test_on_demand(void) {
  atomic_store(&starts, 0), atomic_store(&running, 0), atomic_store(&max_running, 0);
  pw_server *srv = two_loops(NULL);
  CHECK_EQ_INT(pw_topic_on_demand(srv, "tick:*", ticker, NULL), 0);
  CHECK_EQ_INT(pw_topic_on_demand(srv, NULL, ticker, NULL), PW_EINVAL);
  enum { M = 8 };
  wsc c[M];
  pw_conn_id ids[M];
  connect_n(srv, c, ids, M, 0);
  pthread_barrier_t go;
  pthread_barrier_init(&go, NULL, M);
  pthread_t t[M];
  subber sb[M];
  for (int i = 0; i < M; i++)
    sb[i] = (subber){srv, ids[i], &go}, pthread_create(&t[i], NULL, subscribe_at_once, &sb[i]);
  for (int i = 0; i < M; i++) pthread_join(t[i], NULL);
  pthread_barrier_destroy(&go);
  CHECK(th_wait(one_running, NULL, 3000));
  char got[64];
  next_text(&c[M - 1], got, sizeof got, 3000);
  CHECK(strncmp(got, "tick:x ", 7) == 0); /* the producer feeds the subscribers */
  CHECK_EQ_INT(atomic_load(&starts), 1);  /* eight concurrent first subscribers, one start */
  for (int i = 0; i < M - 1; i++) pw_unsubscribe(srv, ids[i], "tick:x");
  CHECK(th_wait_subscribers(srv, "tick:x", 1, 3000));
  sleep_ms(50);
  CHECK_EQ_INT(atomic_load(&running), 1); /* one subscriber left: still running */
  wsc_close(&c[M - 1]);                   /* the last one disconnects */
  CHECK(th_wait(none_running, NULL, 3000));
  for (int round = 0; round < 30; round++) { /* churn: never two producers at once */
    pw_subscribe(srv, ids[round % (M - 1)], "tick:x");
    if (round % 3 == 0) sleep_ms(2);
    pw_unsubscribe(srv, ids[round % (M - 1)], "tick:x");
  }
  CHECK(th_wait(none_running, NULL, 3000));
  CHECK_EQ_INT(atomic_load(&max_running), 1);
  pw_subscribe(srv, ids[0], "tick:x");
  CHECK(th_wait(one_running, NULL, 3000)); /* starts again for a new first subscriber */
  pw_server_free(srv);                     /* and stops with the server */
  CHECK_EQ_INT(atomic_load(&running), 0);
  for (int i = 0; i < M - 1; i++) wsc_close(&c[i]);
}

/* The registry's counts: from the loop thread (a pw_call on loop 0) the count includes the
 * other loop's subscribers; stats count subscriptions and topics over both loops. Checked to
 * fail with the old per-loop count on the loop thread (loop 0's share only). */
static _Atomic int counted_on_loop = -1;

static void count_on_loop(pw_server *srv, void *arg) {
  atomic_store(&counted_on_loop, pw_topic_subscribers(srv, "everywhere"));
}

static int counted(void *arg) { return atomic_load(&counted_on_loop) >= 0; }

static int topics_are(void *srv, uint64_t n) {
  pw_stats st;
  return pw_server_stats(srv, &st) == 0 && st.topics == n;
}
static int topics_are_1(void *srv) { return topics_are(srv, 1); }
static int topics_are_0(void *srv) { return topics_are(srv, 0); }

static void test_counts_over_loops(void) {
  pw_server *srv = two_loops(NULL);
  wsc c[N];
  pw_conn_id ids[N];
  connect_n(srv, c, ids, N, 0);
  for (int i = 0; i < N; i++) CHECK_EQ_INT(pw_subscribe(srv, ids[i], "everywhere"), 0);
  for (int i = 0; i < 3; i++) CHECK_EQ_INT(pw_subscribe(srv, ids[i], "few"), 0);
  CHECK(th_wait_subscribers(srv, "everywhere", N, 3000));
  CHECK(th_wait_subscribers(srv, "few", 3, 3000));
  CHECK_EQ_INT(pw_call(srv, count_on_loop, NULL), 0);
  CHECK(th_wait(counted, NULL, 3000));
  CHECK_EQ_INT(atomic_load(&counted_on_loop), N);
  pw_stats st;
  CHECK_EQ_INT(pw_server_stats(srv, &st), 0);
  CHECK_EQ_INT(st.subscriptions, N + 3);
  CHECK_EQ_INT(st.topics, 2);
  for (int i = 0; i < 3; i++) CHECK_EQ_INT(pw_unsubscribe(srv, ids[i], "few"), 0);
  CHECK(th_wait_subscribers(srv, "few", 0, 3000));
  CHECK(th_wait(topics_are_1, srv, 3000)); /* the topic count follows the last leave */
  CHECK_EQ_INT(pw_server_stats(srv, &st), 0);
  CHECK_EQ_INT(st.subscriptions, N);
  CHECK_EQ_INT(st.topics, 1);
  for (int i = 0; i < N; i++) wsc_close(&c[i]);
  CHECK(th_wait_subscribers(srv, "everywhere", 0, 3000));
  CHECK(th_wait(topics_are_0, srv, 3000));
  CHECK_EQ_INT(pw_server_stats(srv, &st), 0);
  CHECK_EQ_INT(st.subscriptions, 0);
  CHECK_EQ_INT(st.topics, 0);
  pw_server_free(srv);
}

int main(void) {
  test_counts_over_loops();
  test_reach_unsubscribe_close();
  test_order_two_loops();
  test_batches_keep_order();
  test_slow_subscriber();
  test_on_demand();
  return CHECK_DONE();
}
