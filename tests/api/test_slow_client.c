/* A client that never reads: the server's own accounting stays under the configured limits
 * while a producer thread keeps sending, the chosen policy acts, and a reading client beside
 * it receives every message, in order. DROP_OLDEST keeps the latest: once the slow client
 * reads, its sequence numbers only grow and it ends with the last message sent.
 * (Checked to fail: with the limit test in pw__conn_queue_msg disabled, queued_bytes grows
 * past the bound and the policy counters stay 0.) */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "../support/harness.h"
#include "../support/wsclient.h"
#include "../support/check.h"
#include "../support/clock.h"

#define MSG 16384
#define LIMIT (128 * 1024)
#define COUNT 3000 /* 48 MiB to each client */

#define WINDOW 4 /* messages the reading client may lag: well inside its limit */

typedef struct run {
  pw_server *srv;
  pw_conn_id slow, fast;
  wsc *fast_client;
  _Atomic int done;
  _Atomic int fast_got;
  _Atomic uint64_t max_queued;
  int sent_fast;
} run;

static void *producer(void *arg) {
  run *r = arg;
  uint8_t msg[MSG];
  memset(msg, 0xAB, sizeof msg);
  for (uint32_t seq = 0; seq < COUNT; seq++) {
    /* The reading client keeps up (as a normal client does); the slow one never reads. */
    uint64_t give_up = now_ms() + 10000;
    while ((int)seq - atomic_load(&r->fast_got) > WINDOW && now_ms() < give_up) sched_yield();
    memcpy(msg, &seq, sizeof seq);
    pw_send(r->srv, r->slow, msg, sizeof msg, PW_BINARY | PW_BLOCK); /* may be dropped */
    if (pw_send(r->srv, r->fast, msg, sizeof msg, PW_BINARY | PW_BLOCK) == 0) r->sent_fast++;
  }
  atomic_store(&r->done, 1);
  return NULL;
}

/* Sample the library's accounting while the producer runs. */
static void *sampler(void *arg) {
  run *r = arg;
  while (!atomic_load(&r->done)) {
    pw_stats st;
    pw_server_stats(r->srv, &st);
    uint64_t q = st.queued_bytes + st.inbox_bytes;
    if (q > atomic_load(&r->max_queued)) atomic_store(&r->max_queued, q);
    sleep_ms(1);
  }
  return NULL;
}

/* The reading client takes every message and checks the sequence. */
static void *reader(void *arg) {
  run *r = arg;
  for (int got = 0; got < COUNT; got++) {
    wsc_frame f;
    if (wsc_recv(r->fast_client, &f, 10000) != 0) break;
    uint32_t seq;
    memcpy(&seq, f.payload, sizeof seq);
    int ok = f.len == MSG && seq == (uint32_t)got;
    free(f.payload);
    if (!ok) break;
    atomic_store(&r->fast_got, got + 1);
  }
  return NULL;
}

static void check_latest_wins(wsc *slow) {
  uint32_t last = 0;
  int n = 0, ordered = 1;
  wsc_frame f;
  while (wsc_recv(slow, &f, 1000) == 0) {
    uint32_t seq;
    memcpy(&seq, f.payload, sizeof seq);
    if (n++ > 0 && seq <= last) ordered = 0;
    last = seq;
    free(f.payload);
  }
  CHECK(n > 0 && n < COUNT); /* some, not all */
  CHECK(ordered);
  CHECK_EQ_INT(last, COUNT - 1); /* the latest value always survives */
}

static void test_policy(pw_slow_policy policy) {
  pw_options o = {.max_queued_bytes = LIMIT,
                  .slow_policy = policy,
                  .max_inbox_bytes = 256 * 1024,
                  .close_timeout_ms = 300};
  run r = {0};
  r.srv = th_start(&o, NULL);
  int port = pw_server_port(r.srv);
  wsc slow, fast;
  CHECK_EQ_INT(wsc_connect_rcvbuf(&slow, port, "/", 4096), 0);
  r.slow = th_wait_open(1, 3000);
  CHECK_EQ_INT(wsc_connect(&fast, port, "/"), 0);
  r.fast = th_wait_open(2, 3000);
  r.fast_client = &fast;
  pthread_t p, s, rd;
  pthread_create(&rd, NULL, reader, &r);
  pthread_create(&p, NULL, producer, &r);
  pthread_create(&s, NULL, sampler, &r);
  pthread_join(p, NULL);
  pthread_join(s, NULL);
  pthread_join(rd, NULL);
  int got = atomic_load(&r.fast_got);
  CHECK_EQ_INT(r.sent_fast, COUNT);
  CHECK_EQ_INT(got, COUNT); /* the reading client got everything, in order */
  /* Bound: both queues at their limit plus one message each, plus the inbox budget. */
  uint64_t bound = 2 * (LIMIT + MSG + 16) + 256 * 1024 + MSG;
  fprintf(stderr, "  policy %d: max queued+inbox %llu (bound %llu)\n", policy,
          (unsigned long long)atomic_load(&r.max_queued), (unsigned long long)bound);
  CHECK(atomic_load(&r.max_queued) <= bound);
  pw_stats st;
  pw_server_stats(r.srv, &st);
  if (policy == PW_SLOW_CLOSE) {
    CHECK_EQ_INT(st.slow_closed, 1);
    CHECK(th_wait_closes(1, 3000));
    CHECK_EQ_INT(th_close_code(r.slow), 1008);
  } else if (policy == PW_SLOW_DROP_NEW) {
    CHECK(st.dropped_new > 0);
    CHECK_EQ_INT(th_snapshot().closes, 0); /* still open */
  } else {
    CHECK(st.dropped_oldest > 0);
    check_latest_wins(&slow);
  }
  wsc_close(&slow);
  wsc_close(&fast);
  pw_server_free(r.srv);
}

int main(void) {
  test_policy(PW_SLOW_DROP_OLDEST);
  test_policy(PW_SLOW_DROP_NEW);
  test_policy(PW_SLOW_CLOSE);
  return CHECK_DONE();
}
