/* The server object: options, callbacks, the loops, lifecycle state. */
#ifndef PW_SERVER_H
#define PW_SERVER_H

#include <stdarg.h>
#include <stdatomic.h>
#include <uv.h>

#include "events.h"
#include "loop.h"
#include "task.h"
#include "pushwire.h"

enum pw__srv_state { PW__NEW, PW__RUNNING, PW__STOPPING, PW__STOPPED };

struct pw_server {
  pw_options opt;         /* defaults filled in */
  pw_callbacks cb;
  void *user;
  pw__loop *loops;
  unsigned nloops;
  _Atomic int state;
  _Atomic int port;       /* -1 until listening */
  uv_thread_t thread;
  int thread_started;     /* guarded by lock */
  uv_mutex_t lock;        /* lifecycle transitions */
  uv_cond_t done_cond;
  int done;               /* the loop has returned (guarded by lock) */
  pw__tasks tasks;
  pw__events events;
};

void pw__log(const struct pw_server *srv, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
