/* Shared pieces of the C API tests: see harness.h. */
#include "harness.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "clock.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static th_events ev;

void th_on_open(pw_server *srv, pw_conn_id id, const pw_request *req, void *user) {
  pthread_mutex_lock(&lock);
  if (ev.opens < TH_MAX) ev.opened[ev.opens] = id;
  ev.opens++;
  pthread_mutex_unlock(&lock);
}

void th_on_close(pw_server *srv, pw_conn_id id, int code, const char *reason, void *user) {
  pthread_mutex_lock(&lock);
  if (ev.closes < TH_MAX) ev.closed[ev.closes] = id, ev.close_codes[ev.closes] = code;
  ev.closes++;
  pthread_mutex_unlock(&lock);
}

pw_server *th_start(pw_options *opt, void (*on_message)(pw_server *, pw_conn_id, const void *,
                                                        size_t, int, void *)) {
  pthread_mutex_lock(&lock);
  memset(&ev, 0, sizeof ev);
  pthread_mutex_unlock(&lock);
  pw_callbacks cb = {.on_open = th_on_open, .on_close = th_on_close, .on_message = on_message};
  pw_server *srv = pw_server_new(opt, &cb, NULL);
  if (srv && pw_server_start(srv) != 0) {
    pw_server_free(srv);
    return NULL;
  }
  return srv;
}

void th_reset(void) {
  pthread_mutex_lock(&lock);
  memset(&ev, 0, sizeof ev);
  pthread_mutex_unlock(&lock);
}

th_events th_snapshot(void) {
  pthread_mutex_lock(&lock);
  th_events copy = ev;
  pthread_mutex_unlock(&lock);
  return copy;
}

static _Atomic int hold_release, holding;

static void hold_until_released(pw_server *srv, void *arg) {
  uint64_t end = now_ms() + 3000;
  atomic_store(&holding, 1);
  while (!atomic_load(&hold_release) && now_ms() < end) sleep_ms(1);
  atomic_store(&holding, 0);
}

static int is_holding(void *arg) { return atomic_load(&holding); }

int th_hold_loop(pw_server *srv) {
  atomic_store(&hold_release, 0);
  if (pw_call(srv, hold_until_released, NULL) != 0) return 0;
  return th_wait(is_holding, NULL, 3000);
}

int th_loop_held(void) { return atomic_load(&holding); }

void th_release_loop(void) { atomic_store(&hold_release, 1); }

uint64_t th_rand(uint64_t *state) {
  uint64_t x = *state;
  x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
  *state = x;
  return x * 0x2545F4914F6CDD1Dull;
}

int th_wait(int (*cond)(void *arg), void *arg, int timeout_ms) {
  uint64_t end = now_ms() + (uint64_t)timeout_ms;
  while (!cond(arg)) {
    if (now_ms() >= end) return 0;
    sleep_ms(1);
  }
  return 1;
}

static int opens_reached(void *n) { return th_snapshot().opens >= *(int *)n; }
static int closes_reached(void *n) { return th_snapshot().closes >= *(int *)n; }

pw_conn_id th_wait_open(int n, int timeout_ms) {
  if (n < 1 || n > TH_MAX || !th_wait(opens_reached, &n, timeout_ms)) return 0;
  return th_snapshot().opened[n - 1];
}

int th_wait_closes(int n, int timeout_ms) { return th_wait(closes_reached, &n, timeout_ms); }

int th_close_code(pw_conn_id id) {
  th_events e = th_snapshot();
  for (int i = 0; i < e.closes && i < TH_MAX; i++)
    if (e.closed[i] == id) return e.close_codes[i];
  return -1;
}

int th_wait_subscribers(pw_server *srv, const char *topic, int n, int timeout_ms) {
  uint64_t end = now_ms() + (uint64_t)timeout_ms;
  for (;;) {
    if (pw_topic_subscribers(srv, topic) == n) return 1;
    if (now_ms() >= end) return 0;
    sleep_ms(1);
  }
}
