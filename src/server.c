/* Server lifecycle: options and their defaults, start (own thread) / run (caller's thread),
 * stop from anywhere, free; and the loop-thread calls on connections. */
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "options.h"
#include "tls.h"

void pw__log(const pw_server *srv, int level, const char *fmt, ...) {
  if (!srv->opt.log || level > srv->opt.log_level) return;
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  srv->opt.log(level, msg, srv->user);
}

/* ---- TLS ------------------------------------------------------------------------------------ */
/* The TLS context, when a certificate is configured: 0 (none configured, or built), or
 * PW_EINVAL/PW_ENOMEM after one log line saying which file and why. */
static int tls_init(pw_server *srv) {
  char err[256];
  if (!srv->opt.tls.cert_file) return 0;
  int r = pw__tls_ctx_new(&srv->opt.tls, &srv->tls, err, sizeof err);
  if (r != 0) pw__log(srv, PW_LOG_ERROR, "TLS: %s", err);
  return r;
}

int pw_server_reload_tls(pw_server *srv) {
  char err[256];
  if (!srv) return PW_EINVAL;
  if (!srv->tls) return PW_ESTATE;
  int r = pw__tls_ctx_reload(srv->tls, NULL, err, sizeof err);
  if (r != 0) pw__log(srv, PW_LOG_ERROR, "TLS reload failed, the old certificate stays: %s", err);
  else pw__log(srv, PW_LOG_INFO, "TLS certificate reloaded");
  return r;
}

int pw_server_tls_port(const pw_server *srv) {
  if (!srv) return PW_EINVAL;
  int port = atomic_load(&((pw_server *)srv)->tls_port);
  return port < 0 ? PW_ESTATE : port;
}

/* The options are checked once, here; a bad one is named in the log (pw_options_check). */
static int options_ok(pw_server *srv) {
  char err[256];
  if (pw_options_check(&srv->opt, err, sizeof err) == 0) return 1;
  pw__log(srv, PW_LOG_ERROR, "%s", err);
  return 0;
}

/* ---- lifecycle ---------------------------------------------------------------------------- */
pw_server *pw_server_new(const pw_options *opt, const pw_callbacks *cb, void *user) {
  pw_server *srv = calloc(1, sizeof *srv);
  if (!srv) return NULL;
  if (opt) srv->opt = *opt;
  if (cb) srv->cb = *cb;
  srv->user = user;
  pw__options_fill_defaults(&srv->opt);
  atomic_init(&srv->state, PW__NEW);
  atomic_init(&srv->port, -1);
  atomic_init(&srv->tls_port, -1);
  atomic_init(&srv->ws_connections, 0);
  if (!options_ok(srv) || tls_init(srv) != 0) return free(srv), NULL;
  srv->nloops = (unsigned)srv->opt.threads;
  srv->loops = calloc(srv->nloops, sizeof *srv->loops);
  srv->threads = calloc(srv->nloops, sizeof *srv->threads);
  unsigned ready = 0;
  if (srv->loops && srv->threads && pw__events_init(&srv->events) == 0) {
    while (ready < srv->nloops && pw__loop_init(&srv->loops[ready], srv, ready) == 0) ready++;
    if (ready < srv->nloops) pw__events_destroy(&srv->events);
  }
  if (ready < srv->nloops) {
    while (ready > 0) pw__loop_destroy(&srv->loops[--ready]);
    pw__tls_ctx_free(srv->tls);
    free(srv->loops);
    free(srv->threads);
    free(srv);
    return NULL;
  }
  pw__ondemand_init(&srv->ondemand);
  pw__registry_init(&srv->registry);
  pw__histories_init(&srv->histories, srv->opt.history_memory);
  uv_mutex_init(&srv->lock);
  uv_cond_init(&srv->done_cond);
  pw__tasks_init(&srv->tasks);
  return srv;
}

/* Every loop listens on `port` (plain or TLS); loop 0 picks it if 0. 0 or a negative code. */
static int listen_all(pw_server *srv, int tls, int port, _Atomic int *bound) {
  int reuse = srv->nloops > 1;
  for (unsigned i = 0; i < srv->nloops && port >= 0; i++)
    port = pw__loop_listen(&srv->loops[i], srv->opt.bind_address, port, reuse, tls);
  if (port >= 0) atomic_store(bound, port);
  return port < 0 ? port : 0;
}

/* NEW -> RUNNING with the listeners bound; the lock serialises racing starts. */
static int begin(pw_server *srv) {
  int expected = PW__NEW;
  if (!atomic_compare_exchange_strong(&srv->state, &expected, PW__RUNNING)) return PW_ESTATE;
  int r = srv->opt.port >= 0 ? listen_all(srv, 0, srv->opt.port, &srv->port) : 0;
  if (r == 0 && srv->tls) r = listen_all(srv, 1, srv->opt.tls.port, &srv->tls_port);
  if (r < 0) atomic_store(&srv->state, PW__NEW); /* (a half-bound server is freed, not retried) */
  return r;
}

/* A loop has returned. After the last one no loop event can come: the owner's queue learns
 * it (pw_next_event answers PW_ESTOPPED once it is empty). */
static void mark_done(pw_server *srv) {
  uv_mutex_lock(&srv->lock);
  int last = ++srv->done == srv->nloops;
  uv_cond_broadcast(&srv->done_cond);
  uv_mutex_unlock(&srv->lock);
  if (last) pw__events_stopped(&srv->events);
}

static void thread_main(void *arg) {
  pw__loop *l = arg;
  pw__loop_run(l);
  mark_done(l->srv);
}

/* Threads for loops [first, nloops) (lock held). If one cannot start, the loops already
 * running are stopped and everything is joined by the caller's wait_done. */
static int start_threads(pw_server *srv, unsigned first) {
  for (unsigned i = first; i < srv->nloops; i++) {
    if (uv_thread_create(&srv->threads[i], thread_main, &srv->loops[i]) != 0) {
      for (unsigned k = 0; k < srv->nloops; k++) pw__loop_request_stop(&srv->loops[k]);
      srv->done += srv->nloops - i; /* these never run */
      return PW_ENOMEM;
    }
    srv->threads_started = i + 1;
  }
  return 0;
}

int pw_server_start(pw_server *srv) {
  if (!srv) return PW_EINVAL;
  uv_mutex_lock(&srv->lock);
  int r = begin(srv);
  if (r == 0) r = start_threads(srv, 0);
  uv_mutex_unlock(&srv->lock);
  return r;
}

int pw_server_run(pw_server *srv) {
  if (!srv) return PW_EINVAL;
  uv_mutex_lock(&srv->lock);
  int r = begin(srv);
  if (r == 0) srv->caller_loop = 1, r = start_threads(srv, 1);
  uv_mutex_unlock(&srv->lock);
  if (r != 0 && atomic_load(&srv->state) == PW__NEW) return r;
  pw__loop_run(&srv->loops[0]);
  mark_done(srv);
  return r;
}

int pw_server_port(const pw_server *srv) {
  if (!srv) return PW_EINVAL;
  int port = atomic_load(&((pw_server *)srv)->port);
  return port < 0 ? PW_ESTATE : port;
}

int pw_on_loop_thread(const pw_server *srv) {
  pw__loop *l = pw__current_loop();
  return srv && l && l->srv == srv;
}

/* Wait for every loop to return, then join their threads once (concurrent stops are safe). */
static void wait_done(pw_server *srv) {
  uv_mutex_lock(&srv->lock);
  while (srv->done < srv->nloops) uv_cond_wait(&srv->done_cond, &srv->lock);
  unsigned first = srv->caller_loop, n = srv->threads_started;
  srv->threads_started = 0;
  uv_mutex_unlock(&srv->lock);
  for (unsigned i = first; i < n; i++) uv_thread_join(&srv->threads[i]);
  atomic_store(&srv->state, PW__STOPPED);
  pw__events_stopped(&srv->events); /* also when no loop thread ever ran (start failed) */
}

/* RUNNING -> STOPPING, once. The caller that makes the move closes every loop's door at
 * once (no producer gets in from now on, PW_BLOCK waiters answer PW_ESTOPPED without waiting
 * for a busy loop) and wakes the loops; the door makes a later wake harmless too. */
static void request_stop(pw_server *srv) {
  int st = PW__RUNNING;
  if (atomic_compare_exchange_strong(&srv->state, &st, PW__STOPPING))
    for (unsigned i = 0; i < srv->nloops; i++) pw__loop_request_stop(&srv->loops[i]);
}

/* Tasks get the drain time to return (counted from the stop call, overlapping the loops'
 * drain), none when the drain is off. One that ignores pw_task_should_stop must not hold the
 * stop forever; it still holds the server, so pw_server_free joins it, however long. */
static void join_tasks(pw_server *srv, uint64_t t0) {
  int ms = srv->opt.drain_timeout_ms;
  uint64_t deadline = t0 + (ms > 0 ? (uint64_t)ms * 1000000u : 0);
  unsigned left = pw__tasks_join_until(&srv->tasks, deadline);
  if (left)
    pw__log(srv, PW_LOG_WARN,
            "%u task(s) still running after the stop; pw_server_free "
            "waits for them",
            left);
}

/* The order matters: the state moves first, so from here every new send, publish or call
 * answers PW_ESTOPPED; then the doors close, so a call already past that check gets in only
 * if it entered before, and the loops drain exactly what was accepted (loop.c). Tasks are
 * asked at once, while the loops drain; a task waiting for room in an inbox was released
 * by the closing of the door, one waiting for an answer from a loop gets it in the drain. */
int pw_server_stop(pw_server *srv) {
  if (!srv) return PW_EINVAL;
  uint64_t t0 = uv_hrtime();
  int st = PW__NEW;
  int never_ran = atomic_compare_exchange_strong(&srv->state, &st, PW__STOPPED);
  if (!never_ran && st == PW__STOPPED) return 0;
  if (never_ran) pw__events_stopped(&srv->events);
  request_stop(srv);
  pw__tasks_ask_stop(&srv->tasks);
  if (pw_on_loop_thread(srv)) return 0; /* the loop ends after this callback returns */
  if (!never_ran) wait_done(srv);
  join_tasks(srv, t0);
  return 0;
}

/* Freeing needs every thread that may touch the server gone: not from its loop (it would
 * join itself) nor from one of its tasks (it would free the task that runs it). */
void pw_server_free(pw_server *srv) {
  if (!srv) return;
  if (pw_on_loop_thread(srv) || pw__task_server() == srv) {
    pw__log(srv, PW_LOG_ERROR, "pw_server_free called on the loop thread or in a task: ignored");
    return;
  }
  pw_server_stop(srv);
  pw__tasks_destroy(&srv->tasks);
  for (unsigned i = 0; i < srv->nloops; i++) pw__loop_destroy(&srv->loops[i]);
  pw__events_destroy(&srv->events);
  pw__histories_free_all(srv);          /* after the loops: their publishes held entries */
  pw__registry_destroy(&srv->registry); /* after the loops: their topics hold entries */
  pw__histories_destroy(&srv->histories);
  pw__ondemand_destroy(&srv->ondemand);
  pw__tls_ctx_free(srv->tls); /* connections are gone: their SSL_CTX references with them */
  uv_cond_destroy(&srv->done_cond);
  uv_mutex_destroy(&srv->lock);
  free(srv->loops);
  free(srv->threads);
  free(srv);
}

/* ---- statistics ------------------------------------------------------------------------------ */
static uint64_t relaxed(_Atomic uint64_t *v) {
  return atomic_load_explicit(v, memory_order_relaxed);
}

static void history_stats(pw__histories *hs, pw_stats *out) {
  out->history_topics = relaxed(&hs->topics);
  out->history_bytes = atomic_load_explicit(&hs->bytes, memory_order_relaxed);
  out->history_evictions = relaxed(&hs->evictions);
  out->recoveries = relaxed(&hs->recovered);
  out->recoveries_epoch = relaxed(&hs->not_recovered[PW_RECOVERY_EPOCH]);
  out->recoveries_too_old = relaxed(&hs->not_recovered[PW_RECOVERY_TOO_OLD]);
  out->recoveries_too_many = relaxed(&hs->not_recovered[PW_RECOVERY_TOO_MANY]);
  out->replayed = relaxed(&hs->replayed);
  out->gaps_repaired = relaxed(&hs->repaired);
  out->stream_resets = relaxed(&hs->resets);
}

int pw_server_stats(const pw_server *srv, pw_stats *out) {
  if (!srv || !out) return PW_EINVAL;
  memset(out, 0, sizeof *out);
  for (unsigned i = 0; i < srv->nloops; i++) {
    pw__loop *l = &srv->loops[i];
#define PW__SUM(name) out->name += atomic_load_explicit(&l->stats.name, memory_order_relaxed);
    PW__COUNTERS(PW__SUM)
#undef PW__SUM
    out->connections += atomic_load_explicit(&l->slots.live, memory_order_relaxed);
    out->inbox_bytes += pw__door_bytes(&l->door);
  }
  pw__events *q = (pw__events *)&srv->events;
  out->events_queued = atomic_load_explicit(&q->queued, memory_order_relaxed);
  out->events_dropped = atomic_load_explicit(&q->dropped, memory_order_relaxed);
  out->events_closed = atomic_load_explicit(&q->closed, memory_order_relaxed);
  out->reads_paused = atomic_load_explicit(&q->reads_paused, memory_order_relaxed);
  out->producers_failed = atomic_load_explicit(&srv->ondemand.failed, memory_order_relaxed);
  out->subscriptions = atomic_load_explicit(&srv->registry.subscriptions, memory_order_relaxed);
  out->topics = atomic_load_explicit(&srv->registry.topics, memory_order_relaxed);
  history_stats((pw__histories *)&srv->histories, out); /* atomics: read only */
  uv_mutex_lock(&q->lock);
  out->event_bytes = q->bytes;
  out->events_waiting = q->count;
  uv_mutex_unlock(&q->lock);
  return 0;
}
