/* SIGPIPE never kills the host program, and the library never changes its disposition: after
 * pw_server_new and pw_server_start SIGPIPE is still SIG_DFL, and a child process the program
 * runs gets the default too (`yes | head -1` ends `yes` by SIGPIPE, exit status 141, not by
 * an EPIPE error message). Checked to fail with the old process-wide SIG_IGN in pw_server_new
 * (disposition SIG_IGN, `yes` exited 1). The host then sets SIGPIPE to SIG_DFL explicitly, and
 * its clients go away while the server writes to them. The scenario runs in a child process so
 * that a death by SIGPIPE is reported as a failure instead of ending the test run.
 *  a. EPIPE for certain: the server has stopped reading a client (the owner's event queue is
 *     full, PW_EVQ_PAUSE), so it does not see that client's FIN; the client has closed, so
 *     the server's next write is answered with an RST, and the write after that fails with
 *     EPIPE - raising SIGPIPE in the writing thread, unless it is blocked there (loop.c,
 *     block_sigpipe). The server must report 1006 and keep serving.
 *  b. The literal case: a client resets while the server writes a large queue to it.
 * Checked: with block_sigpipe() in pw__loop_run removed, the child was killed by signal 13
 * (SIGPIPE) in part a: test failed. */
#include <pushwire.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../support/wsclient.h"
#include "../support/check.h"
#include "../support/clock.h"
#include "raw.h"

static _Atomic pw_conn_id last_open;
static _Atomic int closes, last_close_code;

static void on_open(pw_server *srv, pw_conn_id id, const pw_request *req, void *user) {
  atomic_store(&last_open, id);
}

static void on_close(pw_server *srv, pw_conn_id id, int code, const char *reason, void *user) {
  atomic_store(&last_close_code, code);
  atomic_fetch_add(&closes, 1);
}

static int wait_closes(int n, int timeout_ms) {
  uint64_t end = now_ms() + (uint64_t)timeout_ms;
  while (atomic_load(&closes) < n)
    if (now_ms() > end) return 0;
    else sleep_ms(1);
  return 1;
}

static uint64_t reads_paused(pw_server *srv) {
  pw_stats st;
  return pw_server_stats(srv, &st) == 0 ? st.reads_paused : 0;
}

/* a: a client the server no longer reads closes; the server writes to it until it notices. */
static void epipe_on_paused_client(pw_server *srv) {
  wsc c;
  int before = atomic_load(&closes);
  CHECK_EQ_INT(wsc_connect(&c, pw_server_port(srv), "/"), 0);
  uint64_t end = now_ms() + 3000;
  while (atomic_load(&last_open) == 0 && now_ms() < end) sleep_ms(1);
  pw_conn_id id = atomic_load(&last_open);
  /* two messages against max_events = 1: the second pauses reading */
  CHECK_EQ_INT(wsc_send(&c, 2, 1, "one", 3), 0);
  CHECK_EQ_INT(wsc_send(&c, 2, 1, "two", 3), 0);
  while (reads_paused(srv) == 0 && now_ms() < end) sleep_ms(1);
  CHECK_EQ_INT(reads_paused(srv), 1);
  wsc_close(&c); /* a FIN the server does not read */
  static char chunk[16384];
  int sends = 0;
  while (sends < 100 && pw_send(srv, id, chunk, sizeof chunk, PW_BINARY) == 0) {
    sends++;
    sleep_ms(10); /* each write its own: the RST comes back between them */
  }
  printf("a: %d sends before the server dropped the client\n", sends);
  CHECK(sends < 100);
  CHECK(wait_closes(before + 1, 3000));
  CHECK_EQ_INT(atomic_load(&last_close_code), 1006);
}

/* b: a client with a small receive buffer resets while 2 MiB are being written to it. */
static void reset_during_write(pw_server *srv) {
  static char big[2 << 20];
  for (int i = 0; i < 5; i++) {
    int before = atomic_load(&closes);
    atomic_store(&last_open, 0);
    wsc c;
    CHECK_EQ_INT(wsc_connect_rcvbuf(&c, pw_server_port(srv), "/", 4096), 0);
    uint64_t end = now_ms() + 3000;
    while (atomic_load(&last_open) == 0 && now_ms() < end) sleep_ms(1);
    CHECK_EQ_INT(pw_send(srv, atomic_load(&last_open), big, sizeof big, PW_BINARY), 0);
    sleep_ms(20);
    raw_reset(c.fd);
    c.fd = -1;
    wsc_close(&c);
    CHECK(wait_closes(before + 1, 3000));
    /* more writes to the gone client: each must fail quietly */
    for (int k = 0; k < 3; k++) pw_send(srv, atomic_load(&last_open), big, 1024, PW_BINARY);
  }
}

/* The library left SIGPIPE alone: still the default, here and in a program we run. */
static void dispositions_untouched(void) {
  struct sigaction sa;
  CHECK_EQ_INT(sigaction(SIGPIPE, NULL, &sa), 0);
  CHECK(sa.sa_handler == SIG_DFL);
  int st = system("bash -c 'yes | head -n1 >/dev/null; exit ${PIPESTATUS[0]}' 2>/dev/null");
  CHECK(WIFEXITED(st));
  CHECK_EQ_INT(WEXITSTATUS(st), 128 + SIGPIPE); /* `yes` was ended by the default action */
}

static int child(void) {
  pw_options o = {.deliver_message = PW_DELIVER_QUEUE,
                  .max_events = 1,
                  .event_policy = PW_EVQ_PAUSE,
                  .max_queued_bytes = 8u << 20};
  pw_callbacks cb = {.on_open = on_open, .on_close = on_close};
  pw_server *srv = pw_server_new(&o, &cb, NULL);
  if (!srv || pw_server_start(srv) != 0) return 2;
  dispositions_untouched();
  signal(SIGPIPE, SIG_DFL); /* the host's worst: the default action, which kills */
  epipe_on_paused_client(srv);
  reset_during_write(srv);
  wsc c; /* and the server still serves */
  CHECK_EQ_INT(wsc_connect(&c, pw_server_port(srv), "/"), 0);
  wsc_close(&c);
  pw_server_free(srv);
  return CHECK_DONE();
}

int main(void) {
  fflush(stdout);
  pid_t pid = fork(); /* before any thread exists */
  if (pid == 0) {
    int r = child();
    fflush(stdout);
    fflush(stderr);
    _exit(r);
  }
  CHECK(pid > 0);
  int status = 0;
  CHECK_EQ_INT(waitpid(pid, &status, 0), pid);
  if (WIFSIGNALED(status))
    fprintf(stderr, "the host program was killed by signal %d (%s)\n", WTERMSIG(status),
            strsignal(WTERMSIG(status)));
  CHECK(WIFEXITED(status));
  CHECK_EQ_INT(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 0);
  return CHECK_DONE();
}
