/* Tasks that start once: pw_task_start runs fn(srv, arg) in its own thread unless a task with
 * the same key is running. One mutex per server guards the registry, so among any number of
 * racing starts exactly one creates the thread; the rest see it and get PW_EALREADY.
 * A task learns it should stop through an atomic flag, and sleeps on a condition variable so
 * pw_task_sleep wakes at once when asked. A thread whose fn returned is joined lazily: by the
 * next start of its key, by pw_task_stop, or when the server stops. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

#define PW__TASK_KEY_MAX 255

typedef struct pw__task {
  struct pw__task *next;
  pw_server *srv;
  char *key;
  pw_task_fn fn;
  void *arg;
  uv_thread_t thread;
  _Atomic int stop;     /* asked to stop */
  _Atomic int finished; /* fn returned */
  int joined;           /* under the registry lock */
  uv_mutex_t sleep_lock;
  uv_cond_t sleep_cond;
} pw__task;

static _Thread_local pw__task *current_task;

void pw__tasks_init(pw__tasks *t) {
  uv_mutex_init(&t->lock);
  t->list = NULL;
  t->closed = 0;
}

static void task_free(pw__task *k) {
  uv_mutex_destroy(&k->sleep_lock);
  uv_cond_destroy(&k->sleep_cond);
  free(k->key);
  free(k);
}

static void task_main(void *arg) {
  pw__task *k = arg;
  current_task = k;
  k->fn(k->srv, k->arg);
  current_task = NULL;
  atomic_store(&k->finished, 1);
}

static void ask_stop(pw__task *k) {
  uv_mutex_lock(&k->sleep_lock);
  atomic_store(&k->stop, 1);
  uv_cond_broadcast(&k->sleep_cond);
  uv_mutex_unlock(&k->sleep_lock);
}

/* Unlink and return the task of `key` (registry lock held), or NULL. */
static pw__task *unlink_key(pw__tasks *t, const char *key) {
  for (pw__task **p = &t->list; *p; p = &(*p)->next) {
    if (strcmp((*p)->key, key) != 0) continue;
    pw__task *k = *p;
    *p = k->next;
    return k;
  }
  return NULL;
}

static pw__task *find_key(pw__tasks *t, const char *key) {
  for (pw__task *k = t->list; k; k = k->next)
    if (strcmp(k->key, key) == 0) return k;
  return NULL;
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

int pw_task_start(pw_server *srv, const char *key, pw_task_fn fn, void *arg) {
  if (!srv || !key || !fn || strlen(key) > PW__TASK_KEY_MAX) return PW_EINVAL;
  pw__tasks *t = &srv->tasks;
  uv_mutex_lock(&t->lock);
  pw__task *old = find_key(t, key);
  if (t->closed) return uv_mutex_unlock(&t->lock), PW_ESTOPPED;
  if (old && !atomic_load(&old->finished)) return uv_mutex_unlock(&t->lock), PW_EALREADY;
  if (old) { /* it returned by itself: reap it, then start afresh */
    unlink_key(t, key);
    uv_thread_join(&old->thread);
    task_free(old);
  }
  pw__task *k = task_new(srv, key, fn, arg);
  int r = k && uv_thread_create(&k->thread, task_main, k) == 0 ? 0 : PW_ENOMEM;
  if (r == 0) k->next = t->list, t->list = k;
  else if (k) task_free(k);
  uv_mutex_unlock(&t->lock);
  return r;
}

/* From the task itself or the loop thread, joining could deadlock: only ask. */
static int may_join(pw_server *srv, pw__task *k) {
  return current_task != k && !pw_on_loop_thread(srv);
}

int pw_task_stop(pw_server *srv, const char *key) {
  if (!srv || !key) return PW_EINVAL;
  pw__tasks *t = &srv->tasks;
  uv_mutex_lock(&t->lock);
  pw__task *k = find_key(t, key);
  if (!k) return uv_mutex_unlock(&t->lock), PW_ENOTFOUND;
  ask_stop(k);
  if (!may_join(srv, k)) return uv_mutex_unlock(&t->lock), 0;
  unlink_key(t, key);
  uv_mutex_unlock(&t->lock);
  uv_thread_join(&k->thread); /* outside the lock: the task may start or stop others */
  task_free(k);
  return 0;
}

int pw__task_revive(pw_server *srv, const char *key) {
  uv_mutex_lock(&srv->tasks.lock);
  pw__task *k = find_key(&srv->tasks, key);
  int alive = k && !atomic_load(&k->finished);
  if (alive) atomic_store(&k->stop, 0);
  uv_mutex_unlock(&srv->tasks.lock);
  return alive ? 0 : -1;
}

int pw_task_running(pw_server *srv, const char *key) {
  if (!srv || !key) return 0;
  uv_mutex_lock(&srv->tasks.lock);
  pw__task *k = find_key(&srv->tasks, key);
  int running = k && !atomic_load(&k->finished);
  uv_mutex_unlock(&srv->tasks.lock);
  return running;
}

int pw_task_done(void) {
  if (!current_task) return PW_ESTATE;
  atomic_store(&current_task->finished, 1);
  return 0;
}

int pw_task_should_stop(void) {
  return current_task && atomic_load(&current_task->stop);
}

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

void pw__tasks_ask_stop(pw__tasks *t) {
  uv_mutex_lock(&t->lock);
  t->closed = 1; /* under the lock: a racing start either got in before (and is asked
                    here) or sees this and gets PW_ESTOPPED */
  for (pw__task *k = t->list; k; k = k->next) ask_stop(k);
  uv_mutex_unlock(&t->lock);
}

/* Unlink the tasks that have returned, except the calling one (registry lock held). */
static pw__task *take_finished(pw__tasks *t, unsigned *left) {
  pw__task *done = NULL, **p = &t->list;
  *left = 0;
  while (*p) {
    pw__task *k = *p;
    if (k == current_task || !atomic_load(&k->finished)) {
      *left += k != current_task;
      p = &k->next;
      continue;
    }
    *p = k->next;
    k->next = done;
    done = k;
  }
  return done;
}

/* Polled in 1 ms steps rather than signalled: a task's thread cannot take the registry lock
 * to signal as it ends (pw_task_start may hold it while joining that very thread), and a
 * stop is rare. */
unsigned pw__tasks_join_until(pw__tasks *t, uint64_t deadline_ns) {
  for (;;) {
    unsigned left;
    uv_mutex_lock(&t->lock);
    pw__task *done = take_finished(t, &left);
    uv_mutex_unlock(&t->lock);
    while (done) {
      pw__task *k = done;
      done = k->next;
      uv_thread_join(&k->thread); /* it returned (or is returning: pw_task_done) */
      task_free(k);
    }
    if (left == 0 || uv_hrtime() >= deadline_ns) return left;
    uv_sleep(1);
  }
}

struct pw_server *pw__task_server(void) { return current_task ? current_task->srv : NULL; }

void pw__tasks_stop_all(pw__tasks *t, int join) {
  pw__task *all = NULL, **keep = &t->list;
  pw__tasks_ask_stop(t);
  uv_mutex_lock(&t->lock);
  while (join && *keep) { /* take every task but the calling one, which cannot join itself */
    pw__task *k = *keep;
    if (k == current_task) {
      keep = &k->next;
      continue;
    }
    *keep = k->next;
    k->next = all;
    all = k;
  }
  uv_mutex_unlock(&t->lock);
  while (all) {
    pw__task *k = all;
    all = k->next;
    uv_thread_join(&k->thread);
    task_free(k);
  }
}

void pw__tasks_destroy(pw__tasks *t) {
  pw__tasks_stop_all(t, 1);
  uv_mutex_destroy(&t->lock);
}
