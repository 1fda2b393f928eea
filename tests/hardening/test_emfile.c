/* Running out of file descriptors while accepting (EMFILE), with real sockets: the process's
 * descriptor limit is lowered to LIMIT, the table is filled with /dev/null descriptors, and
 * clients connect to a server in this process. Each phase is one defence of loop.c's accept
 * path (see its design notes):
 *  1. probe and shed: after each accept one descriptor must stay free; when none is, the
 *     newest connection gets a 503 and is closed. All CLIENTS get a 503, the log says so
 *     ONCE (rate-limited, with the count), and the loop thread's CPU stays low afterwards.
 *     Checked: with the probe removed from on_connection, libuv's own reserve closes the
 *     pending connections without a word: 0 of 30 got a 503, 0 log lines, test failed; with
 *     the rate limit removed, 30 log lines, test failed.
 *  2. recovery: descriptors freed, a new client is served (handshake and echo).
 *  3. accept() itself fails with EMFILE and libuv's reserve is gone (the race its own
 *     comment warns of; simulated by closing it on the loop thread): libuv then retries
 *     accept() in a tight loop. Our spare descriptor makes room to answer and close what is
 *     pending. Checked: with shed_pending() reduced to a return, the loop thread used
 *     ~1000 ms of CPU in 1 s (spinning) and no client got an answer: test failed.
 *  4. both reserves gone (libuv's and ours): the connection that has waited longest for its
 *     handshake gives its descriptor back. Checked: with regain_spare() reduced to a return,
 *     the loop spun (~1000 ms CPU in 1 s), test failed.
 *  5. recovery again. */
#include <errno.h>
#include <fcntl.h>
#include <pushwire.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "../support/wsclient.h"
#include "../support/check.h"
#include "../support/clock.h"
#include "raw.h"
#include "server.h" /* white box: the loop's reserve descriptors, to simulate losing them */

#define LIMIT 256   /* descriptors for the whole process while the test runs */
#define CLIENTS 30  /* connections that find the table full */
#define SPIN_MS 100 /* loop CPU per second above which we call it spinning (idle: ~1 ms) */

static _Atomic int refusal_lines;

static void on_log(int level, const char *msg, void *user) {
  if (strstr(msg, "out of file descriptors")) atomic_fetch_add(&refusal_lines, 1);
  fprintf(stderr, "log: %s\n", msg); /* stderr is open already: costs no descriptor */
}

static void on_message(pw_server *srv, pw_conn_id id, const void *data, size_t len, int is_binary,
                       void *user) {
  pw_send(srv, id, data, len, is_binary ? PW_BINARY : PW_TEXT);
}

/* ---- the descriptor table ---------------------------------------------------------------- */
static int dummies[LIMIT], ndummies;

/* Take every free descriptor; 1 if the table is now full (the last open said EMFILE). */
static int fill_table(void) {
  int fd;
  while (ndummies < LIMIT && (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
    dummies[ndummies++] = fd;
  return ndummies < LIMIT && errno == EMFILE;
}

static void free_table(void) {
  while (ndummies > 0) close(dummies[--ndummies]);
}

/* ---- clients ----------------------------------------------------------------------------- */
static void make_sockets(int *fds, int n) {
  for (int i = 0; i < n; i++) fds[i] = raw_socket();
}

static void close_all(int *fds, int n) {
  for (int i = 0; i < n; i++)
    if (fds[i] >= 0) close(fds[i]), fds[i] = -1;
}

/* Connect the (already made) sockets, then read what each was told, all within 3 s. The
 * clients send nothing: a server that sheds at accept time answers before any request.
 * Returns how many got a 503. */
static int connect_and_count_503(int *fds, int n, int port) {
  int got = 0;
  for (int i = 0; i < n; i++)
    if (fds[i] < 0 || raw_connect(fds[i], port) != 0) fprintf(stderr, "connect %d failed\n", i);
  uint64_t deadline = now_ms() + 3000;
  for (int i = 0; i < n; i++) {
    uint64_t now = now_ms();
    int status = raw_read_status(fds[i], now < deadline ? (int)(deadline - now) : 0);
    if (status == 503) got++;
  }
  return got;
}

/* CPU the loop thread used during `ms` of wall time, in ms. */
static uint64_t loop_cpu_ms(clockid_t clock, int ms) {
  uint64_t before = cpu_ns(clock);
  sleep_ms(ms);
  return (cpu_ns(clock) - before) / 1000000;
}

static void served_again(int port) {
  wsc c;
  CHECK_EQ_INT(wsc_connect(&c, port, "/"), 0);
  CHECK_EQ_INT(wsc_send(&c, 1, 1, "after", 5), 0);
  wsc_frame f = {0};
  CHECK_EQ_INT(wsc_recv(&c, &f, 3000), 0);
  CHECK(f.len == 5 && memcmp(f.payload, "after", 5) == 0);
  free(f.payload);
  wsc_close(&c);
}

/* ---- white box: lose the reserves, as a lost race with another thread would ------------ */
typedef struct lose {
  int ours;
  _Atomic int done;
} lose;

static void lose_reserves(pw_server *srv, void *arg) {
  lose *a = arg;
  pw__loop *l = &srv->loops[0];
  if (l->uv.emfile_fd >= 0) close(l->uv.emfile_fd);
  l->uv.emfile_fd = -1;
  if (a->ours && l->accept.spare_fd >= 0) close(l->accept.spare_fd);
  if (a->ours) l->accept.spare_fd = -1;
  atomic_store(&a->done, 1);
}

static void lose_reserves_now(pw_server *srv, int ours) {
  lose a = {.ours = ours};
  CHECK_EQ_INT(pw_call(srv, lose_reserves, &a), 0);
  while (!atomic_load(&a.done)) sleep_ms(1);
}

/* ---- phases -------------------------------------------------------------------------------- */
static void phase_probe_and_shed(pw_server *srv, clockid_t clock) {
  int fds[CLIENTS];
  make_sockets(fds, CLIENTS);
  CHECK(fill_table());
  close(dummies[--ndummies]); /* one number free: what an accept takes */
  int got = connect_and_count_503(fds, CLIENTS, pw_server_port(srv));
  uint64_t cpu = loop_cpu_ms(clock, 1000);
  printf("probe: %d of %d clients got 503; %d log line(s); loop CPU %llu ms in 1 s\n", got, CLIENTS,
         atomic_load(&refusal_lines), (unsigned long long)cpu);
  CHECK_EQ_INT(got, CLIENTS);
  CHECK_EQ_INT(atomic_load(&refusal_lines), 1);
  CHECK(cpu < SPIN_MS);
  close_all(fds, CLIENTS);
  free_table();
}

/* accept() fails; `ours` also takes our spare away, and a half-open client is there to
 * give its descriptor back. */
static void phase_accept_fails(pw_server *srv, clockid_t clock, int ours) {
  int fds[CLIENTS], half = -1;
  if (ours) {
    half = raw_open(pw_server_port(srv));
    CHECK_EQ_INT(raw_send(half, "GET / HTTP/1.1\r\n", 16), 0);
    sleep_ms(200); /* accepted and read by now */
  }
  lose_reserves_now(srv, ours);
  make_sockets(fds, CLIENTS);
  CHECK(fill_table());
  int got = connect_and_count_503(fds, CLIENTS, pw_server_port(srv));
  uint64_t cpu = loop_cpu_ms(clock, 1000);
  printf("accept fails (%s): %d of %d clients got 503; loop CPU %llu ms in 1 s\n",
         ours ? "both reserves lost" : "libuv's reserve lost", got, CLIENTS,
         (unsigned long long)cpu);
  CHECK_EQ_INT(got, CLIENTS);
  CHECK(cpu < SPIN_MS);
  if (half >= 0) CHECK_EQ_INT(raw_wait_end(half, 1000), 0); /* it gave its descriptor back */
  free_table();
  close_all(fds, CLIENTS);
  if (half >= 0) close(half);
}

int main(void) {
  struct rlimit saved, low;
  CHECK_EQ_INT(getrlimit(RLIMIT_NOFILE, &saved), 0);
  low = saved;
  low.rlim_cur = LIMIT;
  CHECK_EQ_INT(setrlimit(RLIMIT_NOFILE, &low), 0);

  pw_options o = {.log = on_log, .log_level = PW_LOG_WARN};
  pw_callbacks cb = {.on_message = on_message};
  pw_server *srv = pw_server_new(&o, &cb, NULL);
  CHECK(srv != NULL);
  if (!srv || pw_server_start(srv) != 0) return CHECK_DONE();
  clockid_t clock;
  CHECK_EQ_INT(loop_cpu_clock(srv, &clock), 0);

  phase_probe_and_shed(srv, clock);
  served_again(pw_server_port(srv));
  phase_accept_fails(srv, clock, 0);
  served_again(pw_server_port(srv));
  phase_accept_fails(srv, clock, 1);
  served_again(pw_server_port(srv));
  printf("log lines about descriptors in all: %d\n", atomic_load(&refusal_lines));

  pw_server_free(srv);
  setrlimit(RLIMIT_NOFILE, &saved);
  return CHECK_DONE();
}
