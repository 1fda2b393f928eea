/* Raw TCP clients for the hardening tests: see raw.h. */
#include "raw.h"
#include "../support/clock.h"
#include "../support/wsclient.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server.h" /* white box: loop_live_conns */

const char raw_upgrade_request[] =
    "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

int raw_socket(void) { return socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0); }

int raw_connect(int fd, int port) {
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int r;
  do r = connect(fd, (struct sockaddr *)&sa, sizeof sa);
  while (r != 0 && errno == EINTR);
  return r == 0 ? 0 : -1;
}

int raw_open(int port) {
  int fd = raw_socket();
  if (fd < 0) return -1;
  if (raw_connect(fd, port) != 0) return close(fd), -1;
  return fd;
}

int raw_send(int fd, const void *p, size_t n) { return wsc_write_all(fd, p, n); }

/* Wait for input until the deadline: 1 readable, 0 timed out. */
static int wait_readable(int fd, uint64_t deadline) {
  for (;;) {
    uint64_t now = now_ms();
    if (now >= deadline) return 0;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = poll(&p, 1, (int)(deadline - now));
    if (r > 0) return 1;
    if (r < 0 && errno != EINTR) return 0;
  }
}

int raw_read_status(int fd, int timeout_ms) {
  char head[4096];
  size_t len = 0;
  uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
  while (len < sizeof head - 1) {
    if (!wait_readable(fd, deadline)) return -1;
    ssize_t r = recv(fd, head + len, sizeof head - 1 - len, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return 0;
    len += (size_t)r;
    head[len] = '\0';
    int status;
    if (strstr(head, "\r\n\r\n") && sscanf(head, "HTTP/1.1 %d", &status) == 1) return status;
  }
  return 0; /* a head this long is no answer we know */
}

int raw_wait_end(int fd, int timeout_ms) {
  uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
  char sink[4096];
  for (;;) {
    if (!wait_readable(fd, deadline)) return -1;
    ssize_t r = recv(fd, sink, sizeof sink, 0);
    if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) return 0;
  }
}

void raw_reset(int fd) {
  struct linger lg = {.l_onoff = 1, .l_linger = 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close(fd);
}

size_t raw_frame_header(uint8_t *hdr, int opcode, int fin, uint64_t len) {
  static const uint8_t zero_mask[4] = {0}; /* mask key 0: the payload goes as is */
  return wsc_frame_header(hdr, opcode, fin, len, zero_mask);
}

/* ---- the loop thread's CPU clock --------------------------------------------------------- */
typedef struct clock_ask {
  clockid_t clock;
  _Atomic int state; /* 0 asked, 1 answered, -1 failed */
} clock_ask;

static void ask_clock(pw_server *srv, void *arg) {
  clock_ask *a = arg;
  int ok = pthread_getcpuclockid(pthread_self(), &a->clock) == 0;
  atomic_store(&a->state, ok ? 1 : -1);
}

int loop_cpu_clock(pw_server *srv, clockid_t *clock) {
  clock_ask a = {.state = 0};
  if (pw_call(srv, ask_clock, &a) != 0) return -1;
  /* No deadline: `a` lives on this stack until the loop has written it (a loop that never
   * answers is caught by the test's timeout). */
  while (atomic_load(&a.state) == 0) sleep_ms(1);
  if (atomic_load(&a.state) != 1) return -1;
  *clock = a.clock;
  return 0;
}

uint64_t cpu_ns(clockid_t clock) {
  struct timespec ts;
  if (clock_gettime(clock, &ts) != 0) return 0;
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- the loop's connection count ------------------------------------------------------- */
typedef struct count_ask {
  _Atomic int done;
  uint32_t nconns;
} count_ask;

static void count_conns(pw_server *srv, void *arg) {
  count_ask *a = arg;
  a->nconns = srv->loops[0].nconns;
  atomic_store(&a->done, 1);
}

uint32_t loop_live_conns(pw_server *srv) {
  count_ask a = {.done = 0};
  if (pw_call(srv, count_conns, &a) != 0) return 0;
  while (!atomic_load(&a.done)) sleep_ms(1); /* `a` must outlive the loop's write */
  return a.nconns;
}
