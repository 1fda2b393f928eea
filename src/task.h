/* Start-once tasks: threads known by a key, at most one running per key. */
#ifndef PW_TASK_H
#define PW_TASK_H

#include <stdint.h>
#include <uv.h>

struct pw__task;

typedef struct pw__tasks {
  uv_mutex_t lock;       /* guards everything here and every task's lifecycle fields */
  uv_cond_t returned;    /* broadcast when a task returns and when the registry closes */
  struct pw__task *list; /* live tasks only (fn not yet returned), newest first; each frees
                            itself as it returns (the threads are detached) */
  unsigned live;         /* tasks in the list */
  uint64_t serial;       /* the last serial number given to a task */
  int closed;            /* the server is stopping: no new task may start */
} pw__tasks;

void pw__tasks_init(pw__tasks *t);
/* Close the registry (no new starts) and ask every task to stop; returns at once. */
void pw__tasks_ask_stop(pw__tasks *t);
/* Wait until every task but the calling one has returned or uv_hrtime() passes deadline_ns
 * (UINT64_MAX: no deadline). Returns how many are still running (left for pw__tasks_destroy). */
unsigned pw__tasks_join_until(pw__tasks *t, uint64_t deadline_ns);
/* The server of the task running on this thread, or NULL outside a task. */
struct pw_server *pw__task_server(void);
/* Close, ask every task to stop, wait for all of them (not from a task) and free. */
void pw__tasks_destroy(pw__tasks *t);
/* Withdraw a stop request from a task that has not finished: 0, or -1 if there is none. */
int pw__task_revive(struct pw_server *srv, const char *key);
/* The calling thread reports to the owner (pw_post_event, pw_call): if it is a task, a start
 * of its key may now wait briefly for it to return (see pw_task_start). Any thread. */
void pw__task_note_report(void);

#endif
