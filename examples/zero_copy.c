/* pw-zero-copy: large buffers handed over with pw_buf_wrap and freed by the library.
 * Usage: pw-zero-copy [PORT]   (0 = let the OS pick; the port is printed once listening)
 *
 * Every 100 ms a producer task allocates one 1 MiB message and sends that same memory to
 * every client: pw_buf_wrap puts a frame header in front of it without copying, each
 * pw_send_buf only takes a reference, and the library calls release() once, on whichever
 * thread drops the last reference (after the last write, a drop or a close).
 * Message layout: "ZEROCOPY", the sequence number (uint64, little-endian), then byte i of
 * the message is (uint8_t)(i + sequence).
 * A text message "stats" is answered with {"allocated":A,"freed":F}; at exit both counts are
 * printed, and the exit status is 1 if any buffer was not freed. */
#include <pthread.h>
#include <pushwire.h>

#include "example.h"
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MSG_SIZE (1u << 20)
#define HEADER_SIZE 16
#define PERIOD_MS 100
#define MAX_CLIENTS 1024

static _Atomic uint64_t allocated, freed;

/* Written by the loop thread (on_open/on_close), read by the producer task. */
static struct {
  pthread_mutex_t lock;
  size_t len;
  pw_conn_id ids[MAX_CLIENTS];
} clients = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void on_open(pw_server *srv, pw_conn_id id, const pw_request *req, void *user) {
  pthread_mutex_lock(&clients.lock);
  int full = clients.len == MAX_CLIENTS;
  if (!full) clients.ids[clients.len++] = id;
  pthread_mutex_unlock(&clients.lock);
  if (full) pw_close(srv, id, PW_CLOSE_TRY_AGAIN, "too many clients");
}

static void on_close(pw_server *srv, pw_conn_id id, int code, const char *reason, void *user) {
  pthread_mutex_lock(&clients.lock);
  for (size_t i = 0; i < clients.len; i++)
    if (clients.ids[i] == id) {
      clients.ids[i] = clients.ids[--clients.len];
      break;
    }
  pthread_mutex_unlock(&clients.lock);
}

static void on_message(pw_server *srv, pw_conn_id id, const void *data, size_t len, int is_binary,
                       void *user) {
  if (is_binary || len != 5 || memcmp(data, "stats", 5) != 0) return;
  /* freed first: a buffer is counted as allocated before it can be freed, so this order
   * never shows freed > allocated. */
  uint64_t f = atomic_load(&freed), a = atomic_load(&allocated);
  char msg[96];
  int n = snprintf(msg, sizeof msg, "{\"allocated\":%llu,\"freed\":%llu}", (unsigned long long)a,
                   (unsigned long long)f);
  pw_send(srv, id, msg, (size_t)n, PW_TEXT);
}

/* The buffer's free_fn: runs once, on the thread that dropped the last reference. */
static void release(void *data, void *ctx) {
  free(data);
  atomic_fetch_add(&freed, 1);
}

static uint8_t *make_message(uint64_t seq) {
  uint8_t *m = malloc(MSG_SIZE);
  if (!m) return NULL;
  memcpy(m, "ZEROCOPY", 8);
  for (int i = 0; i < 8; i++) m[8 + i] = (uint8_t)(seq >> (8 * i));
  for (size_t i = HEADER_SIZE; i < MSG_SIZE; i++) m[i] = (uint8_t)(i + seq);
  return m;
}

/* The producer, a pw task: pw_server_stop asks it to stop and joins it before closing the
 * connections, so no send can race the shutdown. */
static void producer(pw_server *srv, void *arg) {
  pw_conn_id ids[MAX_CLIENTS]; /* this task's own snapshot of the clients */
  uint64_t seq = 0;
  while (!pw_task_sleep(PERIOD_MS)) {
    pthread_mutex_lock(&clients.lock);
    size_t n = clients.len;
    memcpy(ids, clients.ids, n * sizeof ids[0]);
    pthread_mutex_unlock(&clients.lock);
    if (n == 0) continue;

    uint8_t *data = make_message(seq);
    if (!data) continue;
    pw_buf *buf = pw_buf_wrap(data, MSG_SIZE, release, NULL, PW_BINARY);
    if (!buf) { /* not wrapped: release will not be called, the memory is still ours */
      free(data);
      continue;
    }
    atomic_fetch_add(&allocated, 1);
    seq++;
    /* One buffer, n references. A failed send (client gone, inbox full) took no reference,
     * so there is nothing to undo. */
    for (size_t i = 0; i < n; i++) pw_send_buf(srv, ids[i], buf, 0);
    pw_buf_unref(buf); /* ours; the library frees the memory once the clients are done */
  }
}

int main(int argc, char **argv) {
  pw_options opt = {
      .port = argc > 1 ? atoi(argv[1]) : 8080,
      /* A client that cannot keep up skips to the newest messages ("latest wins") instead
       * of being disconnected; a dropped buffer is released like a delivered one. */
      .slow_policy = PW_SLOW_DROP_OLDEST,
      .max_queued_bytes = 4 * MSG_SIZE,
  };
  pw_callbacks cb = {.on_open = on_open, .on_close = on_close, .on_message = on_message};

  sigset_t stop_signals = example_block_stop_signals();
  pw_server *srv = example_start("pw-zero-copy", &opt, &cb);
  int r = pw_task_start(srv, "producer", producer, NULL);
  if (r != 0) return fprintf(stderr, "pw-zero-copy: no producer: %s\n", pw_strerror(r)), 1;

  int sig;
  sigwait(&stop_signals, &sig);
  pw_server_stop(srv);
  pw_server_free(srv); /* every connection and queued command is gone: all refs dropped */
  uint64_t a = atomic_load(&allocated), f = atomic_load(&freed);
  printf("zero-copy: allocated %llu freed %llu\n", (unsigned long long)a, (unsigned long long)f);
  return a == f ? 0 : 1;
}
