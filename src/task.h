/* Start-once tasks: threads known by a key, at most one running per key. */
#ifndef PW_TASK_H
#define PW_TASK_H

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
void pw__tasks_destroy(pw__tasks *t);
/* Withdraw a stop request from a task that has not finished: 0, or -1 if there is none. */
int pw__task_revive(struct pw_server *srv, const char *key);

#endif
