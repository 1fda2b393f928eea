/* One event loop and the thread that runs it: listener, timers, the flush of dirty
 * connections after each turn, and the stop sequence. Everything here is loop-thread-only
 * unless a field says otherwise. */
#ifndef PW_LOOP_H
#define PW_LOOP_H

#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>

#include "conn.h"
#include "slots.h"

#define PW__READ_BUF_SIZE (64 * 1024)

typedef struct pw__list_head {
  pw__conn *first, *last;
  uint32_t count;
} pw__list_head;

typedef struct pw__loop {
  struct pw_server *srv;
  unsigned index;
  uv_loop_t uv;
  uv_tcp_t listener;
  uv_async_t wake;       /* the one door from other threads (stop for now) */
  uv_timer_t tick;       /* timeouts: handshake, ping/idle, close */
  uv_check_t flusher;    /* after each turn: write every dirty connection */
  uint8_t *rbuf;         /* the shared read buffer */
  pw__slots slots;
  pw__list_head lists[4]; /* indexed by enum pw__list */
  pw__conn **dirty;
  size_t ndirty, dirty_cap;
  uint32_t nconns;       /* accepted and not yet freed */
  uint64_t now_ms;       /* cached uv_now */
  int listening, stopping, handles_closed;
  _Atomic int stop_requested; /* any thread sets it, then wakes the loop */
} pw__loop;

int pw__loop_init(pw__loop *l, struct pw_server *srv, unsigned index);
/* Bind and listen (caller's thread, before the loop runs). */
int pw__loop_listen(pw__loop *l, const char *addr, int port);
/* Run until stopped, then close every handle and return. */
void pw__loop_run(pw__loop *l);
void pw__loop_destroy(pw__loop *l);
/* Ask the loop to stop (any thread). */
void pw__loop_request_stop(pw__loop *l);

void pw__list_push(pw__loop *l, pw__conn *c, int list);
void pw__list_remove(pw__loop *l, pw__conn *c);
void pw__mark_dirty(pw__loop *l, pw__conn *c);
/* A connection's memory is gone: the loop may finish stopping. */
void pw__loop_conn_freed(pw__loop *l);
/* The loop this thread runs, or NULL. */
pw__loop *pw__current_loop(void);

#endif
