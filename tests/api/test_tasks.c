/* Start-once tasks and pw_call: 16 threads starting one key start one thread; stop joins;
 * a task that returned can start again; pw_task_sleep wakes at once when asked to stop;
 * pw_server_stop stops every task, also when a task stops the server itself; pw_call runs
 * every function exactly once, on the loop thread, in per-producer order. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "../support/harness.h"
#include "../support/wsclient.h"
#include "../support/check.h"
#include "../support/clock.h"

static _Atomic int runs, exits;

static void until_stopped(pw_server *srv, void *arg) {
  atomic_fetch_add(&runs, 1);
  while (!pw_task_should_stop()) pw_task_sleep(5);
  atomic_fetch_add(&exits, 1);
}

static void quick(pw_server *srv, void *arg) { atomic_fetch_add(&runs, 1); }

typedef struct racer {
  pw_server *srv;
  pthread_barrier_t *go;
  int result;
} racer;

static void *race_start(void *arg) {
  racer *r = arg;
  pthread_barrier_wait(r->go);
  r->result = pw_task_start(r->srv, "feed", until_stopped, NULL);
  return NULL;
}

static void test_sixteen_threads_start_one(void) {
  enum { N = 16 };
  atomic_store(&runs, 0), atomic_store(&exits, 0);
  pw_server *srv = th_start(NULL, NULL);
  pthread_barrier_t go;
  pthread_barrier_init(&go, NULL, N);
  racer r[N];
  pthread_t t[N];
  for (int i = 0; i < N; i++)
    r[i] = (racer){srv, &go, 1}, pthread_create(&t[i], NULL, race_start, &r[i]);
  int started = 0, already = 0;
  for (int i = 0; i < N; i++) {
    pthread_join(t[i], NULL);
    started += r[i].result == 0;
    already += r[i].result == PW_EALREADY;
  }
  CHECK_EQ_INT(started, 1);
  CHECK_EQ_INT(already, N - 1);
  sleep_ms(20);
  CHECK_EQ_INT(atomic_load(&runs), 1);
  CHECK_EQ_INT(pw_task_running(srv, "feed"), 1);
  CHECK_EQ_INT(pw_task_stop(srv, "feed"), 0); /* asks and joins */
  CHECK_EQ_INT(atomic_load(&exits), 1);
  CHECK_EQ_INT(pw_task_running(srv, "feed"), 0);
  CHECK_EQ_INT(pw_task_stop(srv, "feed"), PW_ENOTFOUND);
  pthread_barrier_destroy(&go);
  pw_server_free(srv);
}

static void test_restart_after_return(void) {
  atomic_store(&runs, 0);
  pw_server *srv = th_start(NULL, NULL);
  CHECK_EQ_INT(pw_task_start(srv, "job", quick, NULL), 0);
  uint64_t end = now_ms() + 3000;
  while (pw_task_running(srv, "job") && now_ms() < end) sleep_ms(1);
  CHECK_EQ_INT(pw_task_running(srv, "job"), 0);
  CHECK_EQ_INT(pw_task_start(srv, "job", quick, NULL), 0); /* returned: may start again */
  end = now_ms() + 3000;
  while (atomic_load(&runs) < 2 && now_ms() < end) sleep_ms(1);
  CHECK_EQ_INT(atomic_load(&runs), 2);
  CHECK_EQ_INT(pw_task_start(srv, NULL, quick, NULL), PW_EINVAL);
  CHECK_EQ_INT(pw_task_start(srv, "x", NULL, NULL), PW_EINVAL);
  pw_server_free(srv);
}

static void long_sleeper(pw_server *srv, void *arg) {
  if (pw_task_sleep(60000)) atomic_fetch_add(&exits, 1); /* woke early because asked */
}

static void test_sleep_wakes_on_stop(void) {
  atomic_store(&exits, 0);
  pw_server *srv = th_start(NULL, NULL);
  CHECK_EQ_INT(pw_task_start(srv, "sleepy", long_sleeper, NULL), 0);
  sleep_ms(20);
  uint64_t t0 = now_ms();
  CHECK_EQ_INT(pw_task_stop(srv, "sleepy"), 0);
  CHECK(now_ms() - t0 < 2000);
  CHECK_EQ_INT(atomic_load(&exits), 1);
  pw_server_free(srv);
}

static void test_server_stop_joins_tasks(void) {
  atomic_store(&runs, 0), atomic_store(&exits, 0);
  pw_server *srv = th_start(NULL, NULL);
  CHECK_EQ_INT(pw_task_start(srv, "a", until_stopped, NULL), 0);
  CHECK_EQ_INT(pw_task_start(srv, "b", until_stopped, NULL), 0);
  CHECK_EQ_INT(pw_task_start(srv, "c", until_stopped, NULL), 0);
  CHECK_EQ_INT(pw_server_stop(srv), 0);
  CHECK_EQ_INT(atomic_load(&exits), 3); /* all returned before stop did */
  CHECK_EQ_INT(pw_task_start(srv, "d", until_stopped, NULL), PW_ESTOPPED);
  pw_server_free(srv);
}

static void stops_server(pw_server *srv, void *arg) {
  pw_task_stop(srv, "self");                              /* asking itself: no join, no deadlock */
  atomic_store(&runs, pw_server_stop(srv) == 0 ? 1 : -1); /* from a task thread */
}

static void test_task_stops_server(void) {
  atomic_store(&runs, 0);
  pw_server *srv = th_start(NULL, NULL);
  CHECK_EQ_INT(pw_task_start(srv, "self", stops_server, NULL), 0);
  uint64_t end = now_ms() + 5000;
  while (atomic_load(&runs) == 0 && now_ms() < end) sleep_ms(1);
  CHECK_EQ_INT(atomic_load(&runs), 1);
  pw_server_free(srv); /* joins the task */
}

static _Atomic int done_called, done_result = 1;

static void done_early(pw_server *srv, void *arg) {
  atomic_fetch_add(&runs, 1);
  atomic_store(&done_result,
               pw_task_done()); /* checked by the main thread: CHECK is not thread-safe */
  atomic_store(&done_called, 1);
  sleep_ms(100); /* still returning: a new start must wait for it, not refuse */
}

static int done_was_called(void *arg) { return atomic_load(&done_called); }

static void test_done_frees_the_key(void) {
  atomic_store(&runs, 0), atomic_store(&done_called, 0);
  pw_server *srv = th_start(NULL, NULL);
  CHECK_EQ_INT(pw_task_done(), PW_ESTATE); /* not a task */
  CHECK_EQ_INT(pw_task_start(srv, "d", done_early, NULL), 0);
  CHECK(th_wait(done_was_called, NULL, 3000));
  CHECK_EQ_INT(atomic_load(&done_result), 0);
  CHECK_EQ_INT(pw_task_running(srv, "d"), 0);
  CHECK_EQ_INT(pw_task_start(srv, "d", quick, NULL), 0); /* not PW_EALREADY */
  pw_server_free(srv);
  CHECK_EQ_INT(atomic_load(&runs), 2);
}

static _Atomic int late_start = 1;

static void starts_when_stopping(pw_server *srv, void *arg) {
  while (!pw_task_should_stop()) pw_task_sleep(5);
  atomic_store(&late_start, pw_task_start(srv, "late", until_stopped, NULL));
}

static void test_no_start_during_stop(void) {
  pw_server *srv = th_start(NULL, NULL);
  CHECK_EQ_INT(pw_task_start(srv, "a", starts_when_stopping, NULL), 0);
  pw_server_stop(srv);
  CHECK_EQ_INT(atomic_load(&late_start), PW_ESTOPPED); /* no task outlives the stop */
  CHECK_EQ_INT(pw_task_running(srv, "late"), 0);
  pw_server_free(srv);
}

/* ---- pw_call ---- */
enum { CALLERS = 4, CALLS = 2000 };
static int last_seq[CALLERS]; /* loop thread only */
static _Atomic int calls_run, calls_wrong_thread, calls_out_of_order;

typedef struct call_arg {
  pw_server *srv;
  int producer, seq;
} call_arg;

static void on_loop(pw_server *srv, void *arg) {
  call_arg *a = arg;
  if (!pw_on_loop_thread(srv)) atomic_fetch_add(&calls_wrong_thread, 1);
  if (a->seq != last_seq[a->producer] + 1) atomic_fetch_add(&calls_out_of_order, 1);
  last_seq[a->producer] = a->seq;
  atomic_fetch_add(&calls_run, 1);
  free(a);
}

static void *caller(void *arg) {
  call_arg *proto = arg;
  for (int i = 0; i < CALLS; i++) {
    call_arg *a = malloc(sizeof *a);
    *a = (call_arg){proto->srv, proto->producer, i};
    while (pw_call(proto->srv, on_loop, a) == PW_EAGAIN) sched_yield();
  }
  return NULL;
}

static int all_calls_ran(void *arg) { return atomic_load(&calls_run) == CALLERS * CALLS; }

static void test_call(void) {
  pw_server *srv = th_start(NULL, NULL);
  for (int i = 0; i < CALLERS; i++) last_seq[i] = -1;
  pthread_t t[CALLERS];
  call_arg protos[CALLERS];
  for (int i = 0; i < CALLERS; i++)
    protos[i] = (call_arg){srv, i, 0}, pthread_create(&t[i], NULL, caller, &protos[i]);
  for (int i = 0; i < CALLERS; i++) pthread_join(t[i], NULL);
  CHECK(th_wait(all_calls_ran, NULL, 5000));
  CHECK_EQ_INT(atomic_load(&calls_wrong_thread), 0);
  CHECK_EQ_INT(atomic_load(&calls_out_of_order), 0);
  CHECK_EQ_INT(pw_call(srv, NULL, NULL), PW_EINVAL);
  pw_server_free(srv);
}

int main(void) {
  test_sixteen_threads_start_one();
  test_restart_after_return();
  test_sleep_wakes_on_stop();
  test_server_stop_joins_tasks();
  test_task_stops_server();
  test_done_frees_the_key();
  test_no_start_during_stop();
  test_call();
  return CHECK_DONE();
}
