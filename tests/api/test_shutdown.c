/* Graceful stop (pw_server_stop with drain_timeout_ms), one defence per test, each with real
 * socket clients: what producers were told was accepted reaches a reading client before its
 * 1001; a client that never reads cannot hold the stop past drain + close timeouts, and what
 * it missed is counted; stops twice, concurrently, from every callback, beside blocked
 * producers and from tasks neither deadlock nor leak; a plain HTTP response produced before
 * the stop is still written. Every test says how it was checked to fail without its defence.
 * A call that may deadlock runs in a thread of its own with a deadline, so a regression
 * fails here with a message instead of hanging until ctest's timeout. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <pushwire.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../support/harness.h"
#include "../support/wsclient.h"
#include "../support/check.h"
#include "../support/clock.h"

/* ---- helpers ---------------------------------------------------------------------------- */
/* A call in a thread of its own, so the test can give up on it instead of hanging. */
typedef struct async_call {
  pthread_t thread;
  int (*fn)(void *arg);
  void *arg;
  int result;
  uint64_t started_ms, took_ms;
  _Atomic int done;
} async_call;

static void *async_main(void *p) {
  async_call *a = p;
  a->result = a->fn(a->arg);
  a->took_ms = now_ms() - a->started_ms;
  atomic_store(&a->done, 1);
  return NULL;
}

static void async_start(async_call *a, int (*fn)(void *), void *arg) {
  memset(a, 0, sizeof *a);
  a->fn = fn, a->arg = arg, a->started_ms = now_ms();
  pthread_create(&a->thread, NULL, async_main, a);
}

static int async_is_done(void *a) { return atomic_load(&((async_call *)a)->done); }

/* 1 if the call returned within ms (then its thread is joined), 0 if not (still running). */
static int async_wait(async_call *a, int ms) {
  if (!th_wait(async_is_done, a, ms)) return 0;
  pthread_join(a->thread, NULL);
  return 1;
}

/* Nothing after a stuck stop can run (freeing the server would hang too): end the test. */
static void die_stuck(const char *what) {
  fprintf(stderr, "FAILED: %s did not return: deadlock\n", what);
  _exit(1);
}

static int stop_call(void *srv) { return pw_server_stop(srv); }

static void noop(pw_server *srv, void *arg) {}

/* 1 once the stop has begun: on the loop thread pw_call runs noop at once while the server
 * runs and answers PW_ESTOPPED from the moment pw_server_stop was called. */
static int stop_begun(pw_server *srv) { return pw_call(srv, noop, NULL) == PW_ESTOPPED; }

/* A pw_call that holds the loop thread until the stop has begun (at most 10 s), so that
 * what producers send meanwhile is still in the inbox when the stop starts. */
static void hold_loop_until_stop(pw_server *srv, void *arg) {
  uint64_t end = now_ms() + 10000;
  while (!stop_begun(srv) && now_ms() < end) usleep(500);
}

/* A server on o (the recording harness, no on_message) and one client connected to it: the
 * server (NULL, counted, if it did not start), and in *id the client's id (0 if none). */
static pw_server *start_with_client(pw_options *o, wsc *c, pw_conn_id *id) {
  pw_server *srv = th_start(o, NULL);
  CHECK(srv != NULL);
  *id = 0;
  if (!srv) return NULL;
  CHECK_EQ_INT(wsc_connect(c, pw_server_port(srv), "/"), 0);
  *id = th_wait_open(1, 3000);
  return srv;
}

static int close_code_of(const wsc_frame *f) {
  return f->len >= 2 ? (f->payload[0] << 8 | f->payload[1]) : -1;
}

/* The next frame must be a close with `code`: answer it and wait for the server's EOF. */
static void expect_close(wsc *c, int code, const char *who) {
  wsc_frame f;
  if (wsc_recv(c, &f, 5000) != 0) {
    fprintf(stderr, "  %s: no close frame\n", who);
    CHECK(0);
    return;
  }
  CHECK_EQ_INT(f.opcode, 8);
  CHECK_EQ_INT(close_code_of(&f), code);
  wsc_send(c, 8, 1, f.payload, f.len >= 2 ? 2 : 0);
  free(f.payload);
  CHECK_EQ_INT(wsc_wait_eof(c, 5000), 0);
}

/* After a loop of data frames ended with result r and frame f: f must be a 1001 close. */
static void answer_close(wsc *c, int r, wsc_frame *f) {
  CHECK_EQ_INT(r, 0);
  if (r != 0) return;
  CHECK_EQ_INT(f->opcode, 8);
  CHECK_EQ_INT(close_code_of(f), PW_CLOSE_GOING_AWAY);
  wsc_send(c, 8, 1, f->payload, f->len >= 2 ? 2 : 0);
  free(f->payload);
  CHECK_EQ_INT(wsc_wait_eof(c, 5000), 0);
}

static pw_stats stats_of(pw_server *srv) {
  pw_stats st;
  pw_server_stats(srv, &st);
  return st;
}

/* ---- 1. the drain: everything accepted reaches a reading client, then its 1001 ---------- */
/* 20,000 messages of 1 KiB (20 MiB: far more than the socket buffers, and more than two
 * drain batches) are accepted while the loop is held, so at the stop all of them are still
 * in the inbox. The client reads slowly (~1 s in all, against a close timeout of 300 ms) and
 * must get every one, in order, then a 1001.
 * Checked to fail: with begin_stop forced onto the no-drain path (what drain_timeout_ms < 0
 * does, and about what the stop did before) the client got 0 of 20000 and a 1001 at once
 * (dropped_closed 20000); with inbox_drained giving every client its 1001 at once (queued
 * behind its data), the close timeout cut the client off after 10034 of 20000. */
#define DRAIN_N 20000
#define DRAIN_MSG 1024

static void test_drain_delivers_everything_accepted(void) {
  pw_options o = {
      .max_queued_bytes = 64u << 20, .close_timeout_ms = 300, .drain_timeout_ms = 20000};
  wsc c;
  pw_conn_id id;
  pw_server *srv = start_with_client(&o, &c, &id);
  CHECK(id != 0);
  CHECK_EQ_INT(pw_call(srv, hold_loop_until_stop, NULL), 0);
  static uint8_t msg[DRAIN_MSG];
  int accepted = 0;
  for (uint32_t seq = 0; seq < DRAIN_N; seq++) {
    memcpy(msg, &seq, sizeof seq);
    accepted += pw_send(srv, id, msg, sizeof msg, PW_BINARY | PW_BLOCK) == 0;
  }
  CHECK_EQ_INT(accepted, DRAIN_N);
  async_call stop;
  async_start(&stop, stop_call, srv);
  int got = 0, in_order = 1;
  for (; got < DRAIN_N; got++) {
    wsc_frame f;
    if (wsc_recv(&c, &f, 5000) != 0) break;
    uint32_t seq = UINT32_MAX;
    if (f.opcode == 2 && f.len == DRAIN_MSG) memcpy(&seq, f.payload, sizeof seq);
    free(f.payload);
    if (seq != (uint32_t)got) {
      in_order = 0;
      break;
    }
    if (got % 20 == 0) usleep(1000); /* a reader slower than the close timeout */
  }
  CHECK_EQ_INT(got, DRAIN_N);
  CHECK(in_order);
  expect_close(&c, PW_CLOSE_GOING_AWAY, "reading client");
  wsc_close(&c); /* our EOF ends the server's linger at once */
  if (!async_wait(&stop, 10000)) die_stuck("pw_server_stop (drain)");
  CHECK_EQ_INT(stop.result, 0);
  pw_stats st = stats_of(srv);
  CHECK_EQ_INT(st.messages_sent, DRAIN_N);
  CHECK_EQ_INT(st.dropped_closed, 0);
  pw_server_free(srv);
}

/* ---- 2. a client that never reads is given up on, and what it missed is counted -------- */
/* 20 MiB accepted for a client with a 4 KiB receive buffer that never reads. The stop must
 * take about drain + close timeout (400 + 400 ms): not less (the drain waited) and not much
 * more; every accepted message is then either sent or counted in dropped_closed.
 * Checked to fail: without the drain timer (uv_timer_start removed from begin_stop) the
 * stop did not return within 2.3 s (the client's queue never empties); with the no-drain
 * path forced the stop took ~490 ms, under the lower bound. */
#define SLOW_N 320
#define SLOW_MSG (64 * 1024)

static void test_non_reader_bounded_and_counted(void) {
  enum { DRAIN = 400, CLOSE = 400, MARGIN = 1500 };
  pw_options o = {
      .max_queued_bytes = 64u << 20, .drain_timeout_ms = DRAIN, .close_timeout_ms = CLOSE};
  pw_server *srv = th_start(&o, NULL);
  CHECK(srv != NULL);
  wsc c;
  CHECK_EQ_INT(wsc_connect_rcvbuf(&c, pw_server_port(srv), "/", 4096), 0);
  pw_conn_id id = th_wait_open(1, 3000);
  static uint8_t msg[SLOW_MSG];
  int accepted = 0;
  for (int i = 0; i < SLOW_N; i++) accepted += pw_send(srv, id, msg, sizeof msg, PW_BINARY) == 0;
  CHECK_EQ_INT(accepted, SLOW_N);
  async_call stop;
  async_start(&stop, stop_call, srv);
  int returned = async_wait(&stop, DRAIN + CLOSE + MARGIN);
  CHECK(returned);
  if (!returned) { /* unblock it to report the rest: the client's EOF ends the connection */
    wsc_close(&c);
    if (!async_wait(&stop, 10000)) die_stuck("pw_server_stop (non-reader)");
  }
  fprintf(stderr, "  non-reader: stop took %llu ms (drain %d + close %d)\n",
          (unsigned long long)stop.took_ms, DRAIN, CLOSE);
  CHECK(stop.took_ms >= DRAIN + CLOSE - 50); /* it did wait for the drain, then the close */
  pw_stats st = stats_of(srv);
  CHECK(st.dropped_closed > 0);
  CHECK_EQ_INT(st.messages_sent + st.dropped_closed, accepted);
  CHECK_EQ_INT(st.queued_bytes, 0);
  wsc_close(&c);
  pw_server_free(srv);
}

/* ---- 3. twice and concurrently ---------------------------------------------------------- */
/* Three threads stop a two-loop server with four clients at once, then the main thread stops
 * it again. Each call returns 0, and only once the loops have ended (no connection left),
 * although the clients take 300 ms to answer their 1001.
 * Checked to fail: with the callers that lose the RUNNING -> STOPPING race returning at once,
 * two callers returned with connections = 4; without `threads_started = 0` in wait_done
 * (join once) a second pthread_join of the same loop thread hung: "deadlock" below. */
enum { CONCURRENT = 3, CLIENTS = 4 };
static _Atomic uint64_t conns_at_return[CONCURRENT];

typedef struct stopper {
  pw_server *srv;
  pthread_barrier_t *go;
  int index, result;
  _Atomic int done;
} stopper;

static void *concurrent_stop(void *arg) {
  stopper *s = arg;
  pthread_barrier_wait(s->go);
  s->result = pw_server_stop(s->srv);
  atomic_store(&conns_at_return[s->index], stats_of(s->srv).connections);
  atomic_store(&s->done, 1);
  return NULL;
}

static int stopper_done(void *s) { return atomic_load(&((stopper *)s)->done); }

static void test_double_and_concurrent_stop(void) {
  pw_options o = {.threads = 2, .close_timeout_ms = 3000};
  pw_server *srv = th_start(&o, NULL);
  CHECK(srv != NULL);
  wsc c[CLIENTS];
  for (int i = 0; i < CLIENTS; i++) CHECK_EQ_INT(wsc_connect(&c[i], pw_server_port(srv), "/"), 0);
  CHECK(th_wait_open(CLIENTS, 3000) != 0);
  pthread_barrier_t go;
  pthread_barrier_init(&go, NULL, CONCURRENT);
  pthread_t t[CONCURRENT];
  stopper s[CONCURRENT];
  for (int i = 0; i < CONCURRENT; i++) {
    s[i] = (stopper){.srv = srv, .go = &go, .index = i, .result = 1};
    atomic_store(&conns_at_return[i], 99);
    pthread_create(&t[i], NULL, concurrent_stop, &s[i]);
  }
  usleep(300 * 1000); /* the stoppers wait for the clients' answers meanwhile */
  for (int i = 0; i < CLIENTS; i++) {
    expect_close(&c[i], PW_CLOSE_GOING_AWAY, "client");
    wsc_close(&c[i]);
  }
  for (int i = 0; i < CONCURRENT; i++) {
    if (!th_wait(stopper_done, &s[i], 10000)) die_stuck("a concurrent pw_server_stop");
    pthread_join(t[i], NULL);
    CHECK_EQ_INT(s[i].result, 0);
    CHECK_EQ_INT(atomic_load(&conns_at_return[i]), 0);
  }
  CHECK_EQ_INT(pw_server_stop(srv), 0); /* once more, after the stop */
  CHECK_EQ_INT(th_snapshot().closes, CLIENTS);
  pthread_barrier_destroy(&go);
  pw_server_free(srv);
}

/* ---- 4. from inside each callback -------------------------------------------------------- */
/* on_open, on_message and on_close each stop the server twice and then try a send, which
 * must answer PW_ESTOPPED (a stop closes the door on the loop thread too). During the stop
 * on_close runs again for every client and stops again: re-entrant, still safe. The other
 * client must get its 1001; then the main thread frees the server.
 * Checked to fail: without `if (pw_on_loop_thread(srv)) return 0;` in pw_server_stop the
 * loop waited for itself inside on_open: the trigger's handshake never completed, no 1001
 * came and the test ended with "deadlock". */
enum cb_kind { IN_NONE, IN_OPEN, IN_MESSAGE, IN_CLOSE };
static _Atomic int stop_in, cb_stops, cb_bad_results, cb_opens;

static void stop_from_callback(pw_server *srv, pw_conn_id id, int kind) {
  if (atomic_load(&stop_in) != kind) return;
  int a = pw_server_stop(srv), b = pw_server_stop(srv);
  int send = pw_send(srv, id, "late", 4, PW_TEXT);
  if (a != 0 || b != 0 || (kind != IN_CLOSE && send != PW_ESTOPPED))
    atomic_fetch_add(&cb_bad_results, 1);
  atomic_fetch_add(&cb_stops, 1);
}

static void cb_open(pw_server *srv, pw_conn_id id, const pw_request *req, void *user) {
  atomic_fetch_add(&cb_opens, 1);
  stop_from_callback(srv, id, IN_OPEN);
}

static void cb_message(pw_server *srv, pw_conn_id id, const void *data, size_t len, int bin,
                       void *user) {
  stop_from_callback(srv, id, IN_MESSAGE);
}

static void cb_close(pw_server *srv, pw_conn_id id, int code, const char *reason, void *user) {
  stop_from_callback(srv, id, IN_CLOSE);
}

static int opens_at_least(void *n) { return atomic_load(&cb_opens) >= *(int *)n; }

static void stop_in_callback(int kind, const char *name) {
  atomic_store(&stop_in, IN_NONE), atomic_store(&cb_stops, 0), atomic_store(&cb_opens, 0);
  atomic_store(&cb_bad_results, 0);
  pw_callbacks cb = {.on_open = cb_open, .on_message = cb_message, .on_close = cb_close};
  pw_server *srv = pw_server_new(NULL, &cb, NULL);
  CHECK(srv && pw_server_start(srv) == 0);
  wsc watcher, trigger;
  int one = 1, two = 2;
  CHECK_EQ_INT(wsc_connect(&watcher, pw_server_port(srv), "/"), 0);
  CHECK(th_wait(opens_at_least, &one, 3000));
  atomic_store(&stop_in, kind);
  CHECK_EQ_INT(wsc_connect(&trigger, pw_server_port(srv), "/"), 0); /* on_open stops */
  CHECK(th_wait(opens_at_least, &two, 3000));
  if (kind == IN_MESSAGE) wsc_send(&trigger, 1, 1, "stop", 4);
  if (kind == IN_CLOSE) wsc_close(&trigger); /* TCP ends: on_close(1006) stops */
  wsc_frame f;
  if (wsc_recv(&watcher, &f, 5000) != 0) {
    fprintf(stderr, "  stop from %s: the watcher got no 1001\n", name);
    die_stuck("pw_server_stop from a callback");
  }
  CHECK_EQ_INT(f.opcode, 8);
  CHECK_EQ_INT(close_code_of(&f), PW_CLOSE_GOING_AWAY);
  wsc_send(&watcher, 8, 1, f.payload, 2);
  free(f.payload);
  CHECK_EQ_INT(wsc_wait_eof(&watcher, 5000), 0);
  wsc_close(&watcher);
  wsc_close(&trigger);
  async_call stop; /* from here: joins the loop the callback stopped */
  async_start(&stop, stop_call, srv);
  if (!async_wait(&stop, 10000)) die_stuck("pw_server_stop after a callback's stop");
  CHECK_EQ_INT(stop.result, 0);
  CHECK(atomic_load(&cb_stops) >= 1);
  CHECK_EQ_INT(atomic_load(&cb_bad_results), 0);
  pw_server_free(srv);
}

static void test_stop_from_callbacks(void) {
  stop_in_callback(IN_OPEN, "on_open");
  stop_in_callback(IN_MESSAGE, "on_message");
  stop_in_callback(IN_CLOSE, "on_close");
}

/* ---- 5. beside producers blocked in PW_BLOCK ----------------------------------------------- */
/* The loop is held, a 4-command inbox fills, and a sender (pw_send) and a publisher
 * (pw_publish) block in PW_BLOCK with a 60 s send timeout. A third producer, which sent one
 * message before, stops the server. Both blocked producers must return promptly, the last
 * answer PW_ESTOPPED, and the client must get exactly what was accepted (per producer in
 * order), then its 1001.
 * Checked to fail: with the no-drain path forced in begin_stop the client got none of the
 * accepted messages (4 to 6 in those runs, all counted in dropped_closed). */
typedef struct producer {
  pw_server *srv;
  pw_conn_id id;
  int publish; /* 0: pw_send to id, 1: pw_publish to "t" */
  _Atomic int accepted;
  int last; /* the answer that ended it */
  uint64_t ended_ms;
} producer;

static int produce_until_refused(void *arg) {
  producer *p = arg;
  uint8_t msg[8] = {(uint8_t)p->publish};
  for (uint32_t seq = 0;; seq++) {
    memcpy(msg + 4, &seq, 4);
    int r = p->publish ? pw_publish(p->srv, "t", msg, sizeof msg, PW_BINARY | PW_BLOCK)
                       : pw_send(p->srv, p->id, msg, sizeof msg, PW_BINARY | PW_BLOCK);
    if (r != 0) {
      p->last = r;
      p->ended_ms = now_ms();
      return r;
    }
    atomic_fetch_add(&p->accepted, 1);
  }
}

typedef struct stop_after_send {
  pw_server *srv;
  pw_conn_id id;
  _Atomic int sent, go;
} stop_after_send;

/* A producer that sent one message, then (when told) stops the server. */
static int send_then_stop(void *arg) {
  stop_after_send *s = arg;
  uint8_t msg[8] = {2};
  atomic_store(&s->sent, pw_send(s->srv, s->id, msg, sizeof msg, PW_BINARY) == 0 ? 1 : -1);
  while (!atomic_load(&s->go)) usleep(1000);
  return pw_server_stop(s->srv);
}

static int has_sent(void *s) { return atomic_load(&((stop_after_send *)s)->sent) != 0; }
static int has_three(void *p) { return atomic_load(&((producer *)p)->accepted) == 3; }

static void test_stop_beside_blocked_producers(void) {
  pw_options o = {.inbox_capacity = 4, .send_timeout_ms = 60000};
  wsc c;
  pw_conn_id id;
  pw_server *srv = start_with_client(&o, &c, &id);
  CHECK_EQ_INT(pw_subscribe(srv, id, "t"), 0);
  CHECK_EQ_INT(pw_call(srv, hold_loop_until_stop, NULL), 0);
  /* One after the other, so that each gets what this test means it to: the stopper one
   * cell, the sender the 3 others (then it blocks), the publisher none (it blocks at once). */
  stop_after_send s = {.srv = srv, .id = id};
  async_call stop;
  async_start(&stop, send_then_stop, &s);
  CHECK(th_wait(has_sent, &s, 3000));
  producer p[2] = {{.srv = srv, .id = id, .publish = 0}, {.srv = srv, .id = id, .publish = 1}};
  async_call pa[2];
  async_start(&pa[0], produce_until_refused, &p[0]);
  CHECK(th_wait(has_three, &p[0], 3000));
  async_start(&pa[1], produce_until_refused, &p[1]);
  usleep(200 * 1000); /* both producers now wait for room (60 s send timeout) */
  CHECK_EQ_INT(atomic_load(&p[0].accepted), 3);
  CHECK_EQ_INT(atomic_load(&p[1].accepted), 0);
  uint64_t stop_ms = now_ms();
  atomic_store(&s.go, 1);
  for (int i = 0; i < 2; i++) {
    if (!async_wait(&pa[i], 5000)) die_stuck("a producer blocked in PW_BLOCK");
    CHECK_EQ_INT(p[i].last, PW_ESTOPPED);
    CHECK(p[i].ended_ms - stop_ms < 3000); /* not the 60 s send timeout */
  }
  int want[3] = {atomic_load(&p[0].accepted), atomic_load(&p[1].accepted), 0};
  int got[3] = {0, 0, 0}, in_order = 1, other = 0, r;
  wsc_frame f;
  while ((r = wsc_recv(&c, &f, 5000)) == 0 && f.opcode == 2) {
    uint32_t seq;
    memcpy(&seq, f.payload + 4, 4);
    int who = f.len == 8 && f.payload[0] <= 2 ? f.payload[0] : -1;
    free(f.payload);
    if (who < 0) {
      other++;
      continue;
    }
    if (who < 2 && seq != (uint32_t)got[who]) in_order = 0;
    got[who]++;
  }
  answer_close(&c, r, &f);
  wsc_close(&c);
  if (!async_wait(&stop, 10000)) die_stuck("pw_server_stop from a producer thread");
  CHECK_EQ_INT(stop.result, 0);
  want[2] = atomic_load(&s.sent) == 1;
  fprintf(stderr, "  blocked producers: accepted send %d, publish %d, stopper %d\n", want[0],
          want[1], want[2]);
  CHECK_EQ_INT(want[2], 1);
  for (int i = 0; i < 3; i++) CHECK_EQ_INT(got[i], want[i]);
  CHECK(in_order);
  CHECK_EQ_INT(other, 0);
  CHECK_EQ_INT(stats_of(srv).dropped_closed, 0);
  pw_server_free(srv);
}

/* ---- 6. from a task, and a task that will not stop ----------------------------------------- */
/* A task publishes 1,000 messages and then stops the server itself; another task sleeps
 * until asked to stop. The stopping task's call returns 0 well before the drain timeout (it
 * does not wait for itself), the sleeper was asked and joined by then, and the client gets
 * every accepted publish and its 1001; pw_server_free then joins the first task.
 * Checked to fail: with the `k == current_task` skip removed from take_finished (task.c) the
 * task's stop waited for itself for the whole 5 s drain timeout; with the no-drain path
 * forced the client got 802 of the 1000 publishes. */
static _Atomic int task_published, task_stop_result = 99, sleeper_asked;
static _Atomic uint64_t task_stop_ms;

static void publish_then_stop(pw_server *srv, void *arg) {
  for (int i = 0; i < 1000; i++)
    if (pw_publish(srv, "t", "m", 1, PW_TEXT | PW_BLOCK) == 0) atomic_fetch_add(&task_published, 1);
  uint64_t t0 = now_ms();
  atomic_store(&task_stop_result, pw_server_stop(srv));
  atomic_store(&task_stop_ms, now_ms() - t0);
}

static void sleeper(pw_server *srv, void *arg) {
  while (!pw_task_sleep(60000)) {}
  atomic_store(&sleeper_asked, 1);
}

static int task_stop_returned(void *arg) { return atomic_load(&task_stop_result) != 99; }

static void test_stop_from_a_task(void) {
  wsc c;
  pw_conn_id id;
  pw_server *srv = start_with_client(NULL, &c, &id);
  CHECK_EQ_INT(pw_subscribe(srv, id, "t"), 0);
  CHECK_EQ_INT(pw_task_start(srv, "sleeper", sleeper, NULL), 0);
  CHECK_EQ_INT(pw_task_start(srv, "publisher", publish_then_stop, NULL), 0);
  int got = 0, r;
  wsc_frame f;
  while ((r = wsc_recv(&c, &f, 5000)) == 0 && f.opcode == 1) free(f.payload), got++;
  answer_close(&c, r, &f);
  wsc_close(&c);
  if (!th_wait(task_stop_returned, NULL, 10000)) die_stuck("pw_server_stop from a task");
  CHECK_EQ_INT(atomic_load(&task_stop_result), 0);
  fprintf(stderr, "  task: stop from a task took %llu ms\n",
          (unsigned long long)atomic_load(&task_stop_ms));
  CHECK(atomic_load(&task_stop_ms) < 3000);
  CHECK_EQ_INT(got, atomic_load(&task_published));
  CHECK_EQ_INT(atomic_load(&sleeper_asked), 1);
  CHECK_EQ_INT(pw_task_running(srv, "sleeper"), 0); /* joined by the task's stop */
  pw_server_free(srv);                              /* joins the publisher */
}

/* A task that ignores pw_task_should_stop must not hold the stop past the drain timeout
 * (300 ms here); pw_server_free joins it once it returns.
 * Checked to fail: with pw_server_stop joining tasks without a deadline (the old
 * pw__tasks_stop_all(t, 1)) the stop did not return within 3 s. */
static _Atomic int stubborn_release;

static void stubborn(pw_server *srv, void *arg) {
  while (!atomic_load(&stubborn_release)) usleep(1000);
}

static void test_stubborn_task_does_not_hold_the_stop(void) {
  pw_options o = {.drain_timeout_ms = 300};
  pw_server *srv = th_start(&o, NULL);
  CHECK(srv != NULL);
  CHECK_EQ_INT(pw_task_start(srv, "stubborn", stubborn, NULL), 0);
  async_call stop;
  async_start(&stop, stop_call, srv);
  int returned = async_wait(&stop, 3000);
  CHECK(returned);
  CHECK_EQ_INT(pw_task_running(srv, "stubborn"), 1);
  atomic_store(&stubborn_release, 1);
  if (!returned && !async_wait(&stop, 10000)) die_stuck("pw_server_stop with a stubborn task");
  CHECK(stop.took_ms >= 250); /* it gave the task its time */
  pw_server_free(srv);        /* joins the task */
}

/* ---- 7. plain HTTP in flight ----------------------------------------------------------------- */
/* A keep-alive client whose 16 MiB response is produced but not yet read when the stop comes
 * (most of it still in the server's queue) receives all of it, then the server's EOF; a
 * client whose request head is not complete gets no answer, only the EOF, and does not hold
 * the stop for the handshake timeout (60 s here).
 * Checked to fail: with end_http_connections destroying HTTP connections at once (the old
 * behaviour) the keep-alive client got 3.9 MB of the 16 MiB body; with HTTP connections left
 * alone the half-request client got no EOF and the stop did not return within 3 s. */
#define BIG (16u << 20)
static uint8_t big_body[BIG];
static _Atomic int http_served;

static void on_http(pw_server *srv, const pw_request *req, pw_response *res, void *user) {
  res->status = 200;
  res->body = big_body;
  res->body_len = BIG;
  atomic_store(&http_served, 1);
}

static int tcp_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) return close(fd), -1;
  return fd;
}

/* Read until EOF (or 5 s): the byte count, -1 on timeout. */
static long read_to_eof(int fd, char *head, size_t head_cap) {
  long total = 0;
  uint64_t end = now_ms() + 5000;
  char buf[65536];
  while (now_ms() < end) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 100) <= 0) continue;
    ssize_t r = recv(fd, buf, sizeof buf, 0);
    if (r <= 0) return total;
    if ((size_t)total < head_cap) {
      size_t n = head_cap - (size_t)total < (size_t)r ? head_cap - (size_t)total : (size_t)r;
      memcpy(head + total, buf, n);
    }
    total += r;
  }
  return -1;
}

static int served(void *arg) { return atomic_load(&http_served); }

static void test_http_in_flight(void) {
  pw_options o = {.handshake_timeout_ms = 60000};
  pw_callbacks cb = {.on_http = on_http};
  pw_server *srv = pw_server_new(&o, &cb, NULL);
  CHECK(srv && pw_server_start(srv) == 0);
  int port = pw_server_port(srv);
  int big = tcp_connect(port), partial = tcp_connect(port);
  CHECK(big >= 0 && partial >= 0);
  static const char get[] = "GET /big HTTP/1.1\r\nHost: x\r\n\r\n";
  static const char half[] = "GET /half HTTP/1.1\r\nHost: x\r\n";
  CHECK(send(big, get, sizeof get - 1, 0) == (ssize_t)(sizeof get - 1));
  CHECK(send(partial, half, sizeof half - 1, 0) == (ssize_t)(sizeof half - 1));
  CHECK(th_wait(served, NULL, 3000));
  usleep(100 * 1000); /* the partial head has arrived too */
  async_call stop;
  async_start(&stop, stop_call, srv);
  usleep(100 * 1000); /* the stop has begun before the client reads */
  char head[512] = {0};
  long n = read_to_eof(big, head, sizeof head - 1);
  char *end = strstr(head, "\r\n\r\n");
  CHECK(end != NULL && strstr(head, "Content-Length: 16777216") != NULL);
  if (end) CHECK_EQ_INT(n - (end + 4 - head), BIG); /* the whole body, then EOF */
  CHECK_EQ_INT(read_to_eof(partial, head, 0), 0);   /* no answer: EOF */
  close(big), close(partial);
  int returned = async_wait(&stop, 3000);
  CHECK(returned);
  if (!returned && !async_wait(&stop, 70000)) die_stuck("pw_server_stop with HTTP clients");
  fprintf(stderr, "  http: stop took %llu ms\n", (unsigned long long)stop.took_ms);
  pw_server_free(srv);
}

/* ---- 8. a producer blocked in PW_BLOCK is released by the stop itself ------------------- */
/* The loop is held by a pw_call (until released, at most 3 s), a 4-command inbox is full and
 * a producer blocks in PW_BLOCK with a 10 s send timeout. The main thread stops the server:
 * the producer must return PW_ESTOPPED within 200 ms of the stop call, while the loop is
 * still held (its stop cannot have begun), and the 4 messages accepted before are delivered.
 * Checked to fail: with pw__door_close only waking the loop (door_closed left to the loop's
 * begin_stop, as before) the producer was still blocked 1 s after the stop, and returned 0
 * once the hold ended: a message admitted after new sends were already refused. */
/* Hold the loop thread until th_release_loop (or 3 s). */
static void hold_loop(pw_server *srv) { CHECK(th_hold_loop(srv)); }

typedef struct blocked_sender {
  pw_server *srv;
  pw_conn_id id;
  _Atomic int filled;
  int result;
  uint64_t started_ms, returned_ms;
} blocked_sender;

/* Fill the 4-cell inbox, then block in the fifth send (until room, the timeout or the stop). */
static int fill_then_block(void *arg) {
  blocked_sender *b = arg;
  for (int i = 0; i < 4; i++)
    if (pw_send(b->srv, b->id, "accepted", 8, PW_TEXT | PW_BLOCK) != 0) return b->result = -100;
  b->started_ms = now_ms();
  atomic_store(&b->filled, 1);
  b->result = pw_send(b->srv, b->id, "blocked", 7, PW_TEXT | PW_BLOCK);
  b->returned_ms = now_ms();
  return b->result;
}

static int has_filled(void *b) { return atomic_load(&((blocked_sender *)b)->filled); }

/* Read text frames until the close (answered); their count, or -1 without a 1001. */
static int count_until_close(wsc *c) {
  int n = 0, r;
  wsc_frame f;
  while ((r = wsc_recv(c, &f, 5000)) == 0 && f.opcode == 1) free(f.payload), n++;
  answer_close(c, r, &f);
  return r == 0 ? n : -1;
}

static void test_blocked_producer_released_at_stop(void) {
  pw_options o = {.inbox_capacity = 4, .send_timeout_ms = 10000};
  wsc c;
  pw_conn_id id;
  pw_server *srv = start_with_client(&o, &c, &id);
  hold_loop(srv);
  blocked_sender b = {.srv = srv, .id = id};
  async_call sender, stop;
  async_start(&sender, fill_then_block, &b);
  CHECK(th_wait(has_filled, &b, 3000));
  usleep(50 * 1000); /* let it reach the wait (the outcome is the same either way) */
  uint64_t stop_ms = now_ms();
  async_start(&stop, stop_call, srv);
  int returned = async_wait(&sender, 1000);
  CHECK(returned);
  CHECK(th_loop_held()); /* the loop never got to its stop meanwhile */
  th_release_loop();
  if (!returned && !async_wait(&sender, 10000)) die_stuck("a producer blocked in PW_BLOCK");
  fprintf(stderr, "  blocked producer: %s %llu ms after the stop call\n", pw_err_name(b.result),
          (unsigned long long)(b.returned_ms - stop_ms));
  CHECK_EQ_INT(b.result, PW_ESTOPPED);
  CHECK(b.returned_ms - stop_ms < 200);
  CHECK_EQ_INT(count_until_close(&c), 4); /* what got in before the door closed */
  wsc_close(&c);
  if (!async_wait(&stop, 10000)) die_stuck("pw_server_stop beside a blocked producer");
  pw_server_free(srv);
}

/* ---- 9. send_timeout_ms < 0: PW_BLOCK waits for room without a time bound ------------------ */
/* The fifth send into a full 4-cell inbox is still waiting 1.2 s later (past the default 1 s
 * timeout), and gets in (0) once the loop drains.
 * Checked to fail: before, pw_server_new refused send_timeout_ms = -1 (NULL). */
static void test_negative_send_timeout_waits(void) {
  pw_options o = {.inbox_capacity = 4, .send_timeout_ms = -1};
  wsc c;
  pw_conn_id id;
  pw_server *srv = start_with_client(&o, &c, &id);
  if (!srv) return;
  hold_loop(srv);
  blocked_sender b = {.srv = srv, .id = id};
  async_call sender;
  async_start(&sender, fill_then_block, &b);
  CHECK(th_wait(has_filled, &b, 3000));
  CHECK(!async_wait(&sender, 1200)); /* still waiting, past the default timeout */
  th_release_loop();
  if (!async_wait(&sender, 5000)) die_stuck("a PW_BLOCK send without a timeout");
  CHECK_EQ_INT(b.result, 0);
  CHECK(b.returned_ms - b.started_ms >= 1200);
  async_call stop;
  async_start(&stop, stop_call, srv);
  CHECK_EQ_INT(count_until_close(&c), 5);
  wsc_close(&c);
  if (!async_wait(&stop, 10000)) die_stuck("pw_server_stop");
  pw_server_free(srv);
}

/* ---- 10. stress: PW_BLOCK producers through a stop ------------------------------------------- */
/* Two loops, two reading clients, four producers sending {producer, seq} with PW_BLOCK and no
 * send timeout into 64-cell inboxes (so they block all the time), five rounds, each stopped
 * after a random moment. Per producer: once a call returned PW_ESTOPPED no later call returns
 * 0 (each producer tries 100 more), every call ends (the stop releases the waits), and what
 * returned 0 is exactly what its client read, in order, and what the stats account for
 * (messages_sent + dropped_closed). A guard for the door as a whole, not for one line: the
 * race the loop's own wait in close_door closes (a push still in flight when the loop begins
 * its stop, which the drain would then miss) is too narrow to hit from here; with that wait
 * removed this still passed, and so it did with pw_server_stop not closing the doors (test 8
 * is the one that fails then). What it would catch: a 0 after PW_ESTOPPED, a wait the stop
 * does not end (no send timeout here), a message accepted but lost or duplicated. It did
 * catch one thing: a producer that read the state before the stop and the id after the stop
 * had closed its connection ended with PW_ENOCONN (1 run in 4 under TSan), so pw__target now
 * looks at the state again before it answers PW_ENOCONN. */
enum { STRESS_PRODUCERS = 4, STRESS_CLIENTS = 2, STRESS_ROUNDS = 5, STRESS_AFTER = 100 };

typedef struct stress_producer {
  pw_server *srv;
  pw_conn_id id;
  int index;
  _Atomic int accepted;
  int ended_with, zero_after_refusal;
} stress_producer;

static int stress_produce(void *arg) {
  stress_producer *p = arg;
  uint8_t msg[8] = {(uint8_t)p->index};
  uint32_t seq = 0;
  int r;
  while (memcpy(msg + 4, &seq, 4), (r = pw_send(p->srv, p->id, msg, 8, PW_BINARY | PW_BLOCK)) == 0)
    atomic_store(&p->accepted, (int)++seq);
  p->ended_with = r;
  for (int i = 0; i < STRESS_AFTER; i++)
    p->zero_after_refusal += pw_send(p->srv, p->id, msg, 8, PW_BINARY | PW_BLOCK) == 0;
  return r;
}

typedef struct stress_reader {
  wsc c;
  int got[STRESS_PRODUCERS], out_of_order, closed;
} stress_reader;

static int stress_read(void *arg) {
  stress_reader *rd = arg;
  wsc_frame f;
  int r;
  while ((r = wsc_recv(&rd->c, &f, 10000)) == 0 && f.opcode == 2) {
    int who = f.len == 8 && f.payload[0] < STRESS_PRODUCERS ? f.payload[0] : -1;
    uint32_t seq = UINT32_MAX;
    if (who >= 0) memcpy(&seq, f.payload + 4, 4);
    free(f.payload);
    if (who < 0 || seq != (uint32_t)rd->got[who]) rd->out_of_order++;
    else rd->got[who]++;
  }
  rd->closed = r == 0 && f.opcode == 8;
  if (r == 0) {
    wsc_send(&rd->c, 8, 1, f.payload, f.len >= 2 ? 2 : 0);
    free(f.payload);
    wsc_wait_eof(&rd->c, 5000);
  }
  return 0;
}

static int total_accepted(void *p) {
  int n = 0;
  for (int i = 0; i < STRESS_PRODUCERS; i++) n += atomic_load(&((stress_producer *)p)[i].accepted);
  return n >= 2000;
}

static void stress_round(uint64_t *rng) {
  /* A queue limit far above what a round sends: a reader slowed by a sanitizer must not be
   * closed as a slow consumer (its producers would then see PW_ENOCONN). */
  pw_options o = {
      .threads = 2, .inbox_capacity = 64, .send_timeout_ms = -1, .max_queued_bytes = 256u << 20};
  pw_server *srv = th_start(&o, NULL);
  CHECK(srv != NULL);
  if (!srv) return;
  stress_reader rd[STRESS_CLIENTS];
  pw_conn_id ids[STRESS_CLIENTS];
  memset(rd, 0, sizeof rd);
  for (int i = 0; i < STRESS_CLIENTS; i++) {
    CHECK_EQ_INT(wsc_connect(&rd[i].c, pw_server_port(srv), "/"), 0);
    ids[i] = th_wait_open(i + 1, 3000);
  }
  async_call readers[STRESS_CLIENTS], producers[STRESS_PRODUCERS];
  stress_producer p[STRESS_PRODUCERS];
  for (int i = 0; i < STRESS_CLIENTS; i++) async_start(&readers[i], stress_read, &rd[i]);
  for (int i = 0; i < STRESS_PRODUCERS; i++) {
    p[i] = (stress_producer){.srv = srv, .id = ids[i % STRESS_CLIENTS], .index = i};
    async_start(&producers[i], stress_produce, &p[i]);
  }
  CHECK(th_wait(total_accepted, p, 5000));
  usleep((useconds_t)(th_rand(rng) % 20000)); /* stop at a random moment of the flow */
  CHECK_EQ_INT(pw_server_stop(srv), 0);
  for (int i = 0; i < STRESS_PRODUCERS; i++)
    if (!async_wait(&producers[i], 5000)) die_stuck("a PW_BLOCK producer through the stop");
  for (int i = 0; i < STRESS_CLIENTS; i++)
    if (!async_wait(&readers[i], 15000)) die_stuck("a reading client");
  uint64_t accepted = 0, read = 0;
  for (int i = 0; i < STRESS_PRODUCERS; i++) {
    stress_reader *r = &rd[i % STRESS_CLIENTS];
    CHECK_EQ_INT(p[i].ended_with, PW_ESTOPPED); /* not PW_ENOCONN: see pw__target */
    CHECK_EQ_INT(p[i].zero_after_refusal, 0);
    CHECK_EQ_INT(r->got[i], atomic_load(&p[i].accepted));
    accepted += (uint64_t)atomic_load(&p[i].accepted);
    read += (uint64_t)r->got[i];
  }
  for (int i = 0; i < STRESS_CLIENTS; i++) {
    CHECK_EQ_INT(rd[i].out_of_order, 0);
    CHECK(rd[i].closed);
    wsc_close(&rd[i].c);
  }
  pw_stats st = stats_of(srv);
  CHECK_EQ_INT(st.messages_sent + st.dropped_closed, accepted);
  fprintf(stderr, "  stress round: %llu accepted, %llu read, dropped_closed %llu\n",
          (unsigned long long)accepted, (unsigned long long)read,
          (unsigned long long)st.dropped_closed);
  pw_server_free(srv);
}

static void test_block_stress_through_stop(void) {
  uint64_t rng = 0x9E3779B97F4A7C15ull;
  for (int i = 0; i < STRESS_ROUNDS; i++) stress_round(&rng);
}

int main(void) {
  test_drain_delivers_everything_accepted();
  test_non_reader_bounded_and_counted();
  test_double_and_concurrent_stop();
  test_stop_from_callbacks();
  test_stop_beside_blocked_producers();
  test_stop_from_a_task();
  test_stubborn_task_does_not_hold_the_stop();
  test_http_in_flight();
  test_blocked_producer_released_at_stop();
  test_negative_send_timeout_waits();
  test_block_stress_through_stop();
  return CHECK_DONE();
}
