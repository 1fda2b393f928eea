/* pw-single-threaded: the owner's thread keeps all the state, and no mutex appears here.
 * The server's loop runs in its own thread, but every client event (open, message, close)
 * comes to main through pw_event_fd(), which sits in main's own poll() beside stdin and a
 * signalfd. Lines typed on stdin are broadcast to every client (one shared buffer, no copy per
 * client); client messages are printed by main.
 * Usage: pw-single-threaded [PORT]   (0 = any; prints "pw-single-threaded listening on port N") */
#include <poll.h>
#include <pushwire.h>

#include "example.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define MAX_CLIENTS 1024

/* main's own state: touched by main only, so it needs no lock */
static pw_conn_id clients[MAX_CLIENTS];
static size_t nclients;

static void forget(pw_conn_id id) {
  for (size_t i = 0; i < nclients; i++)
    if (clients[i] == id) clients[i] = clients[--nclients];
}

static void broadcast(pw_server *srv, const char *line, size_t len) {
  pw_buf *b = pw_buf_new(line, len, PW_TEXT); /* one frame, shared by every client */
  for (size_t i = 0; b && i < nclients; i++) pw_send_buf(srv, clients[i], b, 0);
  pw_buf_unref(b);
}

static void handle(pw_server *srv, const pw_event *ev) {
  switch (ev->type) {
  case PW_EV_OPEN:
    if (nclients < MAX_CLIENTS) clients[nclients++] = ev->id;
    printf("open %llx %s from %s\n", (unsigned long long)ev->id, ev->path, ev->remote_addr);
    break;
  case PW_EV_MESSAGE:
    printf("message %llx: %.*s\n", (unsigned long long)ev->id, (int)pw_buf_len(ev->buf),
           ev->is_binary ? "(binary)" : (const char *)pw_buf_data(ev->buf));
    break;
  case PW_EV_CLOSE:
    forget(ev->id);
    printf("close %llx %d %s\n", (unsigned long long)ev->id, ev->code, ev->reason);
    break;
  default: break;
  }
  fflush(stdout);
}

/* Take every waiting event; the fd stops being readable when the queue is empty. */
static void drain_events(pw_server *srv) {
  pw_event ev;
  while (pw_next_event(srv, &ev, 0) == 1) {
    handle(srv, &ev);
    pw_event_release(&ev);
  }
}

/* Broadcast each complete line read from stdin. Returns 0 at end of input. */
static int read_stdin(pw_server *srv, char *buf, size_t *have, size_t cap) {
  ssize_t n = read(0, buf + *have, cap - *have);
  if (n <= 0) return 0;
  *have += (size_t)n;
  char *nl;
  while ((nl = memchr(buf, '\n', *have))) {
    broadcast(srv, buf, (size_t)(nl - buf));
    *have -= (size_t)(nl + 1 - buf);
    memmove(buf, nl + 1, *have);
  }
  if (*have == cap) broadcast(srv, buf, cap), *have = 0; /* an over-long line goes as is */
  return 1;
}

int main(int argc, char **argv) {
  pw_options opt = {.port = argc > 1 ? atoi(argv[1]) : 8080,
                    .deliver_open = PW_DELIVER_QUEUE,
                    .deliver_message = PW_DELIVER_QUEUE,
                    .deliver_close = PW_DELIVER_QUEUE};
  sigset_t stop = example_block_stop_signals(); /* read through a signalfd, in the poll */
  int sigfd = signalfd(-1, &stop, SFD_CLOEXEC);
  pw_server *srv = example_start("pw-single-threaded", &opt, NULL);

  struct pollfd fds[3] = {{.fd = pw_event_fd(srv), .events = POLLIN},
                          {.fd = 0, .events = POLLIN},
                          {.fd = sigfd, .events = POLLIN}};
  char line[4096];
  size_t have = 0;
  for (int running = 1; running;) {
    if (poll(fds, 3, -1) < 0) continue;
    if (fds[0].revents) drain_events(srv);
    if (fds[1].revents && !read_stdin(srv, line, &have, sizeof line)) fds[1].fd = -1; /* EOF */
    if (fds[2].revents) running = 0;
  }
  pw_server_stop(srv);
  drain_events(srv); /* the closes of the stop */
  pw_server_free(srv);
  return 0;
}
