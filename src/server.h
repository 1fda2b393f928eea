/* The server object: options, callbacks, the loops, lifecycle state. */
#ifndef PW_SERVER_H
#define PW_SERVER_H

#include <stdarg.h>
#include <stdatomic.h>
#include <uv.h>

#include "events.h"
#include "history.h"
#include "loop.h"
#include "ondemand.h"
#include "registry.h"
#include "task.h"
#include "pushwire.h"

enum pw__srv_state { PW__NEW, PW__RUNNING, PW__STOPPING, PW__STOPPED };

#define PW__MAX_LOOPS 64 /* ids keep 8 bits for the loop */

struct pw_server {
  pw_options opt; /* defaults filled in */
  pw_callbacks cb;
  void *user;
  pw__loop *loops;
  unsigned nloops;
  _Atomic int state;
  _Atomic int port;                /* -1 until listening */
  _Atomic int tls_port;            /* -1 until the TLS listener listens (or without TLS) */
  _Atomic uint32_t ws_connections; /* open WebSockets on every loop (max_connections) */
  struct pw__tls_ctx *tls;  /* the TLS context when options.tls.cert_file is set, else NULL */
  uv_thread_t *threads;     /* one per loop; in run mode loop 0 runs in the caller's */
  unsigned threads_started; /* guarded by lock */
  unsigned caller_loop;     /* 1 when loop 0 runs in pw_server_run's caller */
  uv_mutex_t lock;          /* lifecycle transitions */
  uv_cond_t done_cond;
  unsigned done; /* loops that have returned (guarded by lock) */
  pw__tasks tasks;
  pw__events events;
  pw__ondemand ondemand;
  pw__registry registry;   /* every topic's count over all loops, on-demand state */
  pw__histories histories; /* topics that keep history (history.h) */
};

void pw__log(const struct pw_server *srv, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
