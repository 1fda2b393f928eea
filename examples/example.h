/* What every example's main does the same way, kept in one place so each example shows only
 * its own idea: stop signals that only main receives, and starting the server. */
#ifndef PW_EXAMPLE_H
#define PW_EXAMPLE_H

#include <pthread.h>
#include <pushwire.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

/* Block SIGINT and SIGTERM in this thread before any other exists: the server's threads
 * inherit the mask, so only main (sigwait, sigtimedwait or a signalfd) ever sees them. */
static inline sigset_t example_block_stop_signals(void) {
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, NULL);
  return stop;
}

/* Create and start a server, print "<name> listening on port N" (the line tests read), or
 * exit with a one-line error. */
static inline pw_server *example_start(const char *name, const pw_options *opt,
                                       const pw_callbacks *cb) {
  pw_server *srv = pw_server_new(opt, cb, NULL);
  if (!srv) fprintf(stderr, "%s: bad options\n", name), exit(2);
  int r = pw_server_start(srv);
  if (r != 0) {
    fprintf(stderr, "%s: cannot start on port %d: %s\n", name, opt->port, pw_strerror(r));
    pw_server_free(srv);
    exit(1);
  }
  printf("%s listening on port %d\n", name, pw_server_port(srv));
  fflush(stdout);
  return srv;
}

#endif
