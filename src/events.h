/* The owner's event queue: events the loops (and pw_post_event) hand to the program's own
 * thread, with an eventfd that is readable while events wait (and for good once stopped). */
#ifndef PW_EVENTS_H
#define PW_EVENTS_H

#include <stdatomic.h>
#include <stddef.h>
#include <uv.h>

#include "pushwire.h"

struct pw__conn;
struct pw__loop;

typedef struct pw__event_node {
  struct pw__event_node *next;
  size_t bytes; /* message payload counted against max_event_bytes */
  pw_event ev;  /* its strings point into this node's tail */
} pw__event_node;

typedef struct pw__events {
  uv_mutex_t lock; /* guards everything but the counters */
  uv_cond_t cond;
  int waiters;
  pw__event_node *head, *tail;
  size_t count, bytes;
  int fd;      /* eventfd: readable while the queue is not empty, and once stopped */
  int stopped; /* every loop has ended (or the server never ran): see pw__events_stopped */
  int paused;  /* some client's reading is paused until the queue drains to half */
  _Atomic uint64_t queued, dropped, closed, reads_paused;
} pw__events;

int pw__events_init(pw__events *q);
void pw__events_destroy(pw__events *q);

/* Loop thread: tell the program of an open, a message, a close or a refused subscription,
 * by callback or through the owner's queue as options.deliver_* say (the one place that
 * knows). A queued message that does not fit acts by options.event_policy. */
void pw__notify_open(struct pw__conn *c, const pw_request *req);
void pw__notify_message(struct pw__conn *c, int is_binary, const void *data, size_t len);
void pw__notify_close(struct pw__conn *c, int code, const char *reason);
void pw__notify_subscribe_refused(struct pw__loop *l, pw_conn_id id, const char *topic, int code);
void pw__notify_recovery(struct pw__loop *l, pw_conn_id id, const char *topic,
                         const pw_recovery *r);
/* The server has stopped (its loops have ended): an empty queue now answers PW_ESTOPPED and
 * the fd stays readable; blocked waiters wake. Any thread, idempotent. */
void pw__events_stopped(pw__events *q);

/* The clients of one loop whose reading PW_EVQ_PAUSE stopped, by id (a client may close
 * while paused). Loop thread only. */
typedef struct pw__paused {
  pw_conn_id *ids;
  size_t n, cap;
} pw__paused;
/* Remember a paused client: 0, or PW_ENOMEM (then it is not paused). */
int pw__events_note_paused(struct pw__loop *l, pw_conn_id id);
/* Lift PW_EVQ_PAUSE from every client this loop paused (another reason may remain). */
void pw__events_resume_paused(struct pw__loop *l);
void pw__paused_free(pw__paused *p);

#endif
