/* Tasks that start once: pw_task_start runs fn(srv, arg) in its own thread unless a task with
 * the same key is running. A task learns it should stop through an atomic flag, and sleeps on
 * a condition variable so pw_task_sleep wakes at once when asked.
 * Design notes:
 * - One mutex per server guards the registry, so among racing starts exactly one creates the
 *   thread. The list holds live tasks only: a task unlinks itself as its fn returns, so finished
 *   tasks cost a start nothing, and at most one run of a key is ever in it.
 * - Reaping: task threads are detached, so a thread's stack goes back (to glibc's cache or
 *   the OS) as soon as it exits, whatever else runs. As its fn returns a task takes the
 *   registry lock, unlinks and frees itself and wakes whoever waits for a return (stop, free,
 *   a start); after that unlock it touches nothing of the server, so pw_server_free may free
 *   it while the thread is still on its way out. The other way, a returning task joining the
 *   one that returned before it, chained every exit behind the previous one: under load,
 *   thousands of finished threads piled up waiting for their turn.
 * - The natural restart (a task posts "done", returns, and the owner starts its key again on
 *   the post): the start may come before the thread has returned. A start of a live key waits
 *   for its return, at most PW__TASK_REPORT_WAIT_MS, only if the run has reported (pw_post_event
 *   or pw_call from its own thread) since it began or since a start last waited for it in vain;
 *   otherwise it answers PW_EALREADY at once, so a long-running task costs a start nothing. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

#define PW__TASK_KEY_MAX 255
#define PW__TASK_REPORT_WAIT_MS 100 /* documented at pw_task_start */

typedef struct pw__task {
  struct pw__task *next, *prev; /* in the registry's live list */
  pw_server *srv;
  char *key;
  pw_task_fn fn;
  void *arg;
  uint64_t serial;      /* tells this run from a later run of the same key */
  _Atomic int stop;     /* asked to stop */
  _Atomic int done;     /* pw_task_done: the run is over, fn is returning */
  _Atomic int reported; /* it posted or called since it began (or since a start waited for it
                           in vain) */
  uv_mutex_t sleep_lock;
  uv_cond_t sleep_cond;
} pw__task;

static _Thread_local pw__task *current_task;

void pw__tasks_init(pw__tasks *t) {
  uv_mutex_init(&t->lock);
  uv_cond_init(&t->returned);
  t->list = NULL;
  t->live = 0;
  t->serial = 0;
  t->closed = 0;
}

static void task_free(pw__task *k) {
  uv_mutex_destroy(&k->sleep_lock);
  uv_cond_destroy(&k->sleep_cond);
  free(k->key);
  free(k);
}

static void link_live(pw__tasks *t, pw__task *k) {
  k->prev = NULL;
  k->next = t->list;
  if (t->list) t->list->prev = k;
  t->list = k;
  t->live++;
}

static void unlink_live(pw__tasks *t, pw__task *k) {
  if (k->prev) k->prev->next = k->next;
  else t->list = k->next;
  if (k->next) k->next->prev = k->prev;
  t->live--;
}

/* Detached, so nothing waits for the thread itself: the last thing it does with the server is
 * to unlock the registry, after which pw_server_free may free both. */
static void task_main(void *arg) {
  pw__task *k = arg;
  pw__tasks *t = &k->srv->tasks;
  current_task = k;
  k->fn(k->srv, k->arg);
  current_task = NULL;
  uv_mutex_lock(&t->lock);
  unlink_live(t, k);
  task_free(k); /* no one else holds it: others find a task only in the list, under the lock */
  uv_cond_broadcast(&t->returned);
  uv_mutex_unlock(&t->lock);
}

static void ask_stop(pw__task *k) {
  uv_mutex_lock(&k->sleep_lock);
  atomic_store(&k->stop, 1);
  uv_cond_broadcast(&k->sleep_cond);
  uv_mutex_unlock(&k->sleep_lock);
}

/* The live run of `key` (registry lock held), or NULL. There is at most one. */
static pw__task *find_key(pw__tasks *t, const char *key) {
  for (pw__task *k = t->list; k; k = k->next)
    if (strcmp(k->key, key) == 0) return k;
  return NULL;
}

/* Wait for a return anywhere (registry lock held); UINT64_MAX = no deadline. */
static void await_any_return(pw__tasks *t, uint64_t deadline_ns) {
  uint64_t now = uv_hrtime();
  if (deadline_ns == UINT64_MAX) uv_cond_wait(&t->returned, &t->lock);
  else if (now < deadline_ns) uv_cond_timedwait(&t->returned, &t->lock, deadline_ns - now);
}

/* A live run of a key that has reported may be about to return: wait for it, up to the bound
 * counted from the first such wait of this start. 1 to look again, 0 when the time is up (its
 * report is then spent, so later starts do not wait for it until it reports again). */
static int await_reported(pw__tasks *t, pw__task *k, uint64_t *deadline) {
  if (*deadline == 0) *deadline = uv_hrtime() + PW__TASK_REPORT_WAIT_MS * 1000000ull;
  if (uv_hrtime() >= *deadline) return atomic_store(&k->reported, 0), 0;
  await_any_return(t, *deadline);
  return 1;
}

/* Wait (registry lock held) until `key` has no live run: 0, or PW_EALREADY / PW_ESTOPPED.
 * A run that declared itself done is waited for without a bound: it promised to return
 * promptly. Each wait releases the lock, so everything is looked at again after it. */
static int await_key_free(pw__tasks *t, const char *key) {
  uint64_t deadline = 0;
  for (;;) {
    pw__task *k = find_key(t, key);
    if (t->closed) return PW_ESTOPPED;
    if (!k) return 0;
    if (k == current_task) return PW_EALREADY; /* it would wait for itself */
    if (atomic_load(&k->done)) await_any_return(t, UINT64_MAX);
    else if (!atomic_load(&k->reported) || !await_reported(t, k, &deadline)) return PW_EALREADY;
  }
}

static pw__task *task_new(pw_server *srv, const char *key, pw_task_fn fn, void *arg) {
  pw__task *k = calloc(1, sizeof *k);
  if (!k || !(k->key = strdup(key))) return free(k), NULL;
  k->srv = srv;
  k->fn = fn;
  k->arg = arg;
  uv_mutex_init(&k->sleep_lock);
  uv_cond_init(&k->sleep_cond);
  return k;
}

/* Registry lock held: the new thread cannot leave before it is linked. */
static int spawn(pw__tasks *t, pw_server *srv, const char *key, pw_task_fn fn, void *arg) {
  pw__task *k = task_new(srv, key, fn, arg);
  if (!k) return PW_ENOMEM;
  k->serial = ++t->serial;
  uv_thread_t thread;
  if (uv_thread_create(&thread, task_main, k) != 0) return task_free(k), PW_ENOMEM;
  pthread_detach(thread); /* libuv 1.44 has no detach; on Unix a uv_thread_t is a pthread_t */
  link_live(t, k);
  return 0;
}

int pw_task_start(pw_server *srv, const char *key, pw_task_fn fn, void *arg) {
  if (!srv || !key || !fn || strlen(key) > PW__TASK_KEY_MAX) return PW_EINVAL;
  pw__tasks *t = &srv->tasks;
  uv_mutex_lock(&t->lock);
  int r = await_key_free(t, key);
  if (r == 0) r = spawn(t, srv, key, fn, arg);
  uv_mutex_unlock(&t->lock);
  return r;
}

/* From the task itself or the loop thread, waiting could deadlock: only ask. */
static int may_wait(pw_server *srv, pw__task *k) {
  return current_task != k && !pw_on_loop_thread(srv);
}

/* Registry lock held. By serial, not by pointer: a task frees itself as it returns. */
static void await_return(pw__tasks *t, const char *key, uint64_t serial) {
  for (pw__task *k; (k = find_key(t, key)) && k->serial == serial;) await_any_return(t, UINT64_MAX);
}

int pw_task_stop(pw_server *srv, const char *key) {
  if (!srv || !key) return PW_EINVAL;
  pw__tasks *t = &srv->tasks;
  uv_mutex_lock(&t->lock);
  pw__task *k = find_key(t, key);
  if (k) ask_stop(k);
  if (k && may_wait(srv, k)) await_return(t, key, k->serial);
  uv_mutex_unlock(&t->lock);
  return k ? 0 : PW_ENOTFOUND;
}

int pw__task_revive(pw_server *srv, const char *key) {
  uv_mutex_lock(&srv->tasks.lock);
  pw__task *k = find_key(&srv->tasks, key);
  int alive = k && !atomic_load(&k->done);
  if (alive) atomic_store(&k->stop, 0);
  uv_mutex_unlock(&srv->tasks.lock);
  return alive ? 0 : -1;
}

int pw_task_running(pw_server *srv, const char *key) {
  if (!srv || !key) return 0;
  uv_mutex_lock(&srv->tasks.lock);
  pw__task *k = find_key(&srv->tasks, key);
  int running = k && !atomic_load(&k->done);
  uv_mutex_unlock(&srv->tasks.lock);
  return running;
}

int pw_task_done(void) {
  if (!current_task) return PW_ESTATE;
  atomic_store(&current_task->done, 1);
  return 0;
}

/* Before the report is handed over, so the owner that acts on it finds the mark. */
void pw__task_note_report(void) {
  if (current_task) atomic_store(&current_task->reported, 1);
}

int pw_task_should_stop(void) { return current_task && atomic_load(&current_task->stop); }

int pw_task_sleep(int ms) {
  pw__task *k = current_task;
  if (ms < 0) ms = 0;
  if (!k) {
    uv_sleep((unsigned)ms);
    return 0;
  }
  uint64_t deadline = uv_hrtime() + (uint64_t)ms * 1000000u;
  uv_mutex_lock(&k->sleep_lock);
  for (uint64_t now; !atomic_load(&k->stop) && (now = uv_hrtime()) < deadline;)
    uv_cond_timedwait(&k->sleep_cond, &k->sleep_lock, deadline - now);
  uv_mutex_unlock(&k->sleep_lock);
  return pw_task_should_stop();
}

/* Also wakes the starts waiting for a return: they see `closed` and give up. */
void pw__tasks_ask_stop(pw__tasks *t) {
  uv_mutex_lock(&t->lock);
  t->closed = 1; /* under the lock: a racing start either got in before (and is asked
                    here) or sees this and gets PW_ESTOPPED */
  for (pw__task *k = t->list; k; k = k->next) ask_stop(k);
  uv_cond_broadcast(&t->returned);
  uv_mutex_unlock(&t->lock);
}

/* Live tasks (registry lock held), not counting the calling one, which cannot wait for itself. */
static unsigned others_live(const pw__tasks *t) {
  return t->live - (current_task && &current_task->srv->tasks == t);
}

unsigned pw__tasks_join_until(pw__tasks *t, uint64_t deadline_ns) {
  unsigned left;
  uv_mutex_lock(&t->lock);
  while ((left = others_live(t)) > 0 && uv_hrtime() < deadline_ns) await_any_return(t, deadline_ns);
  uv_mutex_unlock(&t->lock);
  return left;
}

struct pw_server *pw__task_server(void) {
  return current_task ? current_task->srv : NULL;
}

void pw__tasks_destroy(pw__tasks *t) {
  pw__tasks_ask_stop(t);
  pw__tasks_join_until(t, UINT64_MAX);
  uv_cond_destroy(&t->returned);
  uv_mutex_destroy(&t->lock);
}
