/* pw-on-demand: a client asks for a job over WebSocket; the job's worker thread starts only
 * if it is not running already (requests from several clients at once start it once), streams
 * its progress to every client that asked, and ends.
 * Usage: pw-on-demand [PORT]   (0 = let the OS pick; the port is printed once listening)
 *
 * Protocol (text messages; JSON replies):
 *   "start <job>"  ->  {"job":J,"status":"started"} or {"job":J,"status":"already running,
 *                      subscribed"}, then {"job":J,"progress":P} for P = 0, 10, ... 100, then
 *                      {"job":J,"done":true,"runs":R}, R counting the runs of that job.
 *   anything else  ->  {"error":...}
 * A job name is 1-63 letters, digits, '-' or '_', so it needs no escaping inside JSON. */
#include <pthread.h>
#include <pushwire.h>

#include "example.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_JOBS 16
#define MAX_NAME 64
#define MAX_LISTENERS 1024
#define STEP_MS 50

typedef struct job {
  char name[MAX_NAME];  /* set before the job's first worker exists, never changed after */
  pthread_mutex_t lock; /* guards the fields below, shared by the loop thread and the worker */
  int active;           /* a worker has this run: new listeners will be served by it */
  unsigned runs;
  size_t nlisteners;
  pw_conn_id listeners[MAX_LISTENERS];
} job;

/* The table itself is touched only on the loop thread (on_message); a worker gets a pointer
 * to its own job, and job slots are never reused or freed while the server lives. */
static job jobs[MAX_JOBS];
static size_t njobs;

/* Send to every listener of j (j->lock held). Clients that left are dropped from the set. */
static void broadcast(pw_server *srv, job *j, const char *msg, int len) {
  for (size_t i = 0; i < j->nlisteners;) {
    if (pw_send(srv, j->listeners[i], msg, (size_t)len, PW_TEXT) == PW_ENOCONN)
      j->listeners[i] = j->listeners[--j->nlisteners];
    else i++;
  }
}

/* The worker: one run of a job, in its own thread (a pw task keyed "job:<name>"). */
static void worker(pw_server *srv, void *arg) {
  job *j = arg;
  char msg[160];
  for (int p = 0; p <= 100; p += 10) {
    /* Sleeping before each step, the first included, lets clients asking at nearly the same
     * moment subscribe before progress 0. pw_task_sleep returns 1 at once when the server
     * stops, so shutdown never waits for a job to finish. */
    if (pw_task_sleep(STEP_MS)) break;
    int n = snprintf(msg, sizeof msg, "{\"job\":\"%s\",\"progress\":%d}", j->name, p);
    pthread_mutex_lock(&j->lock);
    broadcast(srv, j, msg, n);
    pthread_mutex_unlock(&j->lock);
  }
  /* "done", forgetting the listeners and giving up the run happen under one lock: a "start"
   * either comes before (subscribed: it gets this "done") or after (it starts a new run). */
  pthread_mutex_lock(&j->lock);
  if (!pw_task_should_stop()) {
    int n =
        snprintf(msg, sizeof msg, "{\"job\":\"%s\",\"done\":true,\"runs\":%u}", j->name, j->runs);
    broadcast(srv, j, msg, n);
  }
  j->nlisteners = 0;
  j->active = 0;
  pw_task_done(); /* from here a "start" of this job starts a new worker, never PW_EALREADY */
  pthread_mutex_unlock(&j->lock);
}

static void reply(pw_server *srv, pw_conn_id id, const char *job_name, const char *status) {
  char msg[200];
  int n = job_name
              ? snprintf(msg, sizeof msg, "{\"job\":\"%s\",\"status\":\"%s\"}", job_name, status)
              : snprintf(msg, sizeof msg, "{\"error\":\"%s\"}", status);
  pw_send(srv, id, msg, (size_t)n, PW_TEXT);
}

/* Loop thread only: the job called name[0..len), created on first use; NULL if the table
 * is full. */
static job *find_job(const char *name, size_t len) {
  for (size_t i = 0; i < njobs; i++)
    if (strlen(jobs[i].name) == len && memcmp(jobs[i].name, name, len) == 0) return &jobs[i];
  if (njobs == MAX_JOBS) return NULL;
  job *j = &jobs[njobs++];
  memcpy(j->name, name, len);
  j->name[len] = '\0';
  pthread_mutex_init(&j->lock, NULL);
  return j;
}

static int valid_name(const char *s, size_t len) {
  if (len == 0 || len >= MAX_NAME) return 0;
  for (size_t i = 0; i < len; i++)
    if (!(s[i] == '-' || s[i] == '_' || (s[i] >= '0' && s[i] <= '9') ||
          ((s[i] | 0x20) >= 'a' && (s[i] | 0x20) <= 'z')))
      return 0;
  return 1;
}

static void start_job(pw_server *srv, pw_conn_id id, job *j) {
  pthread_mutex_lock(&j->lock);
  int listening = 0;
  for (size_t i = 0; i < j->nlisteners && !listening; i++) listening = j->listeners[i] == id;
  if (!listening && j->nlisteners == MAX_LISTENERS) {
    pthread_mutex_unlock(&j->lock);
    reply(srv, id, j->name, "too many listeners");
    return;
  }
  if (!listening) j->listeners[j->nlisteners++] = id;
  int starting = !j->active;
  if (starting) j->active = 1, j->runs++;
  pthread_mutex_unlock(&j->lock);
  if (!starting) {
    reply(srv, id, j->name, "already running, subscribed");
    return;
  }

  char key[8 + MAX_NAME];
  snprintf(key, sizeof key, "job:%s", j->name);
  /* The previous run's worker gave up the run (active = 0) and called pw_task_done under the
   * job's lock, so this start cannot meet it as "already running". */
  int r = pw_task_start(srv, key, worker, j);
  if (r != 0) { /* no worker (e.g. PW_ESTOPPED): undo, nobody would serve the listeners */
    pthread_mutex_lock(&j->lock);
    j->active = 0;
    j->runs--;
    j->nlisteners = 0;
    pthread_mutex_unlock(&j->lock);
  }
  reply(srv, id, j->name, r == 0 ? "started" : pw_strerror(r));
}

static void on_message(pw_server *srv, pw_conn_id id, const void *data, size_t len, int is_binary,
                       void *user) {
  const char *s = data;
  job *j = NULL;
  if (is_binary || len < 6 || memcmp(s, "start ", 6) != 0 || !valid_name(s + 6, len - 6))
    reply(srv, id, NULL, "send \\\"start <job>\\\", a job name being 1-63 letters, digits, - or _");
  else if (!(j = find_job(s + 6, len - 6))) reply(srv, id, NULL, "too many different jobs");
  else start_job(srv, id, j);
}

int main(int argc, char **argv) {
  pw_options opt = {.port = argc > 1 ? atoi(argv[1]) : 8080};
  pw_callbacks cb = {.on_message = on_message};

  sigset_t stop_signals = example_block_stop_signals();
  pw_server *srv = example_start("pw-on-demand", &opt, &cb);

  int sig;
  sigwait(&stop_signals, &sig);
  pw_server_stop(srv); /* asks every running worker to stop and joins it */
  pw_server_free(srv);
  for (size_t i = 0; i < njobs; i++) pthread_mutex_destroy(&jobs[i].lock);
  return 0;
}
