/* pw-ticker: the main program stays single-threaded and in control; the server runs in its
 * own thread, and every 100 ms the main loop pushes {"tick":N,"clients":K,"uptime_ms":T} to
 * every connected client.
 * Usage: pw-ticker [PORT]   (0 = let the OS pick; the port is printed once listening)
 *
 * on_open/on_close run on the server's loop thread, but the list of clients belongs to the
 * main loop. So the callbacks touch nothing but a mutex-protected list of events, and the
 * main loop takes that whole list once per tick and applies it to its own list: one lock,
 * held only for an append or a swap, and no state shared beyond it. */
#include <pthread.h>
#include <pushwire.h>

#include "example.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define TICK_MS 100

typedef struct event {
  pw_conn_id id;
  int open; /* 1: on_open, 0: on_close */
} event;

/* Appended to by the loop thread, taken by the main thread. */
static struct {
  pthread_mutex_t lock;
  event *items;
  size_t len, cap;
} events = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* The main thread's own list of connected clients. */
static struct {
  pw_conn_id *ids;
  size_t len, cap;
} clients;

static void push_event(pw_server *srv, pw_conn_id id, int open) {
  pthread_mutex_lock(&events.lock);
  if (events.len == events.cap) {
    size_t cap = events.cap ? events.cap * 2 : 16;
    event *items = realloc(events.items, cap * sizeof *items);
    if (!items) {
      pthread_mutex_unlock(&events.lock);
      /* A lost open would leave a client that never ticks: better to turn it away. A lost
       * close costs nothing: sends to a closed id just answer PW_ENOCONN. */
      if (open) pw_close(srv, id, PW_CLOSE_INTERNAL, "out of memory");
      return;
    }
    events.items = items;
    events.cap = cap;
  }
  events.items[events.len++] = (event){id, open};
  pthread_mutex_unlock(&events.lock);
}

static void on_open(pw_server *srv, pw_conn_id id, const pw_request *req, void *user) {
  push_event(srv, id, 1);
}

static void on_close(pw_server *srv, pw_conn_id id, int code, const char *reason, void *user) {
  push_event(srv, id, 0);
}

/* Main thread: take the events gathered since the last tick and update the client list. */
static void apply_events(pw_server *srv) {
  pthread_mutex_lock(&events.lock);
  event *items = events.items;
  size_t len = events.len;
  events.items = NULL;
  events.len = events.cap = 0;
  pthread_mutex_unlock(&events.lock);

  for (size_t i = 0; i < len; i++) {
    pw_conn_id id = items[i].id;
    if (!items[i].open) {
      for (size_t j = 0; j < clients.len; j++)
        if (clients.ids[j] == id) {
          clients.ids[j] = clients.ids[--clients.len];
          break;
        }
      continue;
    }
    if (clients.len == clients.cap) {
      size_t cap = clients.cap ? clients.cap * 2 : 16;
      pw_conn_id *ids = realloc(clients.ids, cap * sizeof *ids);
      if (!ids) {
        pw_close(srv, id, PW_CLOSE_INTERNAL, "out of memory");
        continue;
      }
      clients.ids = ids;
      clients.cap = cap;
    }
    clients.ids[clients.len++] = id;
  }
  free(items);
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int main(int argc, char **argv) {
  pw_options opt = {.port = argc > 1 ? atoi(argv[1]) : 8080};
  pw_callbacks cb = {.on_open = on_open, .on_close = on_close};

  sigset_t stop_signals = example_block_stop_signals(); /* only sigtimedwait sees them */
  pw_server *srv = example_start("pw-ticker", &opt, &cb);

  int64_t start = now_ms(), next = start + TICK_MS;
  for (uint64_t tick = 1;;) {
    /* Waiting for the signals themselves, with the time left to the next tick as timeout,
     * notices SIGTERM within a tick, and aiming at absolute tick times keeps the rate at
     * 10 Hz however long a round of sends takes. */
    int64_t left = next - now_ms();
    if (left < 0) left = 0;
    struct timespec timeout = {(time_t)(left / 1000), (long)(left % 1000) * 1000000L};
    if (sigtimedwait(&stop_signals, NULL, &timeout) > 0) break;
    if (now_ms() < next) continue; /* interrupted early: wait the rest */

    apply_events(srv);
    int64_t now = now_ms();
    char msg[128];
    int n = snprintf(msg, sizeof msg, "{\"tick\":%llu,\"clients\":%zu,\"uptime_ms\":%lld}",
                     (unsigned long long)tick++, clients.len, (long long)(now - start));
    /* A client that just left answers PW_ENOCONN; its close event removes it next tick. */
    for (size_t i = 0; i < clients.len; i++) pw_send(srv, clients.ids[i], msg, (size_t)n, PW_TEXT);
    /* After a long stall (a stopped process, say), carry on from now instead of bursting. */
    next = now - next > TICK_MS ? now + TICK_MS : next + TICK_MS;
  }

  pw_server_stop(srv);
  pw_server_free(srv); /* the loop thread is gone: the event list is ours alone now */
  free(events.items);
  free(clients.ids);
  return 0;
}
