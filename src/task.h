/* Start-once tasks: threads known by a key, at most one running per key. */
#ifndef PW_TASK_H
#define PW_TASK_H

#include <stdint.h>
#include <uv.h>

struct pw__task;

typedef struct pw__tasks {
  uv_mutex_t lock;       /* guards the list and every task's lifecycle fields */
  struct pw__task *list;
  int closed;            /* the server is stopping: no new task may start */
} pw__tasks;

void pw__tasks_init(pw__tasks *t);
/* Ask every task to stop; with `join`, wait for all of them and free them. */
void pw__tasks_stop_all(pw__tasks *t, int join);
/* Close the registry (no new starts) and ask every task to stop; returns at once. */
void pw__tasks_ask_stop(pw__tasks *t);
/* Join every task but the calling one as it returns, until none is left or uv_hrtime()
 * passes deadline_ns. Returns how many are still running (left for pw__tasks_destroy). */
unsigned pw__tasks_join_until(pw__tasks *t, uint64_t deadline_ns);
/* The server of the task running on this thread, or NULL outside a task. */
struct pw_server *pw__task_server(void);
void pw__tasks_destroy(pw__tasks *t);
/* Withdraw a stop request from a task that has not finished: 0, or -1 if there is none. */
int pw__task_revive(struct pw_server *srv, const char *key);

#endif
