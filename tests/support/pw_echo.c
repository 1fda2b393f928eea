/* pw-echo: the tests' and benchmarks' echo server (the conformance fixture), with a flag for
 * every option they vary; the demo page (examples/www/echo.html) at "/". For a small echo
 * server to read, see examples/echo.c.
 * Usage: pw-echo [PORT] [--max-message BYTES] [--idle-timeout MS] [--ping-interval MS]
 *                [--handshake-timeout MS] [--close-timeout MS] [--max-head BYTES] [--threads N]
 *                [--deflate 0|1] [--deflate-server-no-context 0|1]
 *                [--deflate-client-no-context 0|1] [--deflate-server-bits 9..15]
 *                [--deflate-client-bits 9..15] [--deflate-threshold BYTES] [--pubsub 0|1|2]
 * --deflate 1 accepts permessage-deflate (RFC 7692) offers. --pubsub 1 publishes every message
 * to the topic "all", to which every client is subscribed, instead of echoing it: the echo
 * then travels the fan-out path (with one client it is still an echo). --pubsub 2 publishes
 * from a thread of its own, as a producer would: a burst then reaches the loop as publish
 * batches (consecutive publishes to one topic fanned out together, src/publish.c).
 * TLS: [--tls-cert PEM --tls-key PEM [--tls-ca PEM] [--tls-require-client-cert 1]
 *       [--plain-port PORT]]: PORT then speaks TLS (wss://, https://) and no plain listener
 * runs unless --plain-port asks for one; SIGHUP re-reads the certificate files
 * (pw_server_reload_tls, from the main thread: not the server's).
 * The server runs in its own thread (pw_server_start); the main thread only waits for
 * SIGINT/SIGTERM, then stops it. Every complete message is echoed with its type. */
#include <pushwire.h>

#include "../../examples/example.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

extern const char pw_echo_page[];
extern const size_t pw_echo_page_len;

static int pubsub;

/* --pubsub 2: messages wait here for the publisher thread, in arrival order. */
typedef struct job {
  struct job *next;
  size_t len;
  int flags;
  char data[];
} job;
static pthread_mutex_t jobs_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t jobs_cond = PTHREAD_COND_INITIALIZER;
static job *jobs_head, **jobs_tail = &jobs_head;
static int jobs_stop;

static void *publisher(void *srv) {
  for (;;) {
    pthread_mutex_lock(&jobs_lock);
    while (!jobs_head && !jobs_stop) pthread_cond_wait(&jobs_cond, &jobs_lock);
    job *j = jobs_head;
    jobs_head = NULL, jobs_tail = &jobs_head;
    pthread_mutex_unlock(&jobs_lock);
    if (!j) return NULL; /* stopping, nothing left */
    while (j) {
      job *next = j->next;
      pw_publish(srv, "all", j->data, j->len, j->flags | PW_BLOCK);
      free(j);
      j = next;
    }
  }
}

static void hand_to_publisher(const void *data, size_t len, int flags) {
  job *j = malloc(sizeof *j + len);
  if (!j) return;
  j->next = NULL, j->len = len, j->flags = flags;
  if (len) memcpy(j->data, data, len);
  pthread_mutex_lock(&jobs_lock);
  *jobs_tail = j, jobs_tail = &j->next;
  pthread_cond_signal(&jobs_cond);
  pthread_mutex_unlock(&jobs_lock);
}

static void on_message(pw_server *srv, pw_conn_id id, const void *data, size_t len, int is_binary,
                       void *user) {
  if (pubsub == 2) hand_to_publisher(data, len, is_binary ? PW_BINARY : PW_TEXT);
  else if (pubsub) pw_publish(srv, "all", data, len, is_binary ? PW_BINARY : PW_TEXT);
  else pw_send(srv, id, data, len, is_binary ? PW_BINARY : PW_TEXT);
}

static void on_open(pw_server *srv, pw_conn_id id, const pw_request *req, void *user) {
  if (pubsub) pw_subscribe(srv, id, "all");
}

static void on_http(pw_server *srv, const pw_request *req, pw_response *res, void *user) {
  if (strcmp(req->method, "GET") != 0 || strcmp(req->path, "/") != 0) return; /* 404 */
  res->status = 200;
  res->content_type = "text/html; charset=utf-8";
  res->body = pw_echo_page;
  res->body_len = pw_echo_page_len;
}

/* Select "echo" when the client offers it. */
static int select_subprotocol(pw_server *srv, const pw_request *req, const char *const *offers,
                              size_t count, void *user) {
  for (size_t i = 0; i < count; i++)
    if (strcmp(offers[i], "echo") == 0) return (int)i;
  return -1;
}

static void log_line(int level, const char *msg, void *user) {
  fprintf(stderr, "pw-echo: %s\n", msg);
}

/* The TLS flags: they take a path, not a number. 1 if `a` was one of them. */
static int parse_tls_arg(const char *a, const char *v, pw_options *o, int *plain_port) {
  if (!strcmp(a, "--tls-cert")) o->tls.cert_file = v;
  else if (!strcmp(a, "--tls-key")) o->tls.key_file = v;
  else if (!strcmp(a, "--tls-ca")) o->tls.ca_file = v;
  else if (!strcmp(a, "--tls-require-client-cert")) o->tls.require_client_cert = atoi(v);
  else if (!strcmp(a, "--plain-port")) *plain_port = atoi(v);
  else return 0;
  return 1;
}

/* With TLS, PORT is the TLS port and the plain listener is off unless --plain-port. */
static int parse_args(int argc, char **argv, pw_options *o) {
  int plain_port = -1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (a[0] != '-') {
      o->port = atoi(a);
      continue;
    }
    if (i + 1 >= argc) return fprintf(stderr, "pw-echo: %s needs a value\n", a), -1;
    if (parse_tls_arg(a, argv[i + 1], o, &plain_port)) {
      i++;
      continue;
    }
    long v = strtol(argv[++i], NULL, 10);
    if (!strcmp(a, "--max-message")) o->max_message_size = (size_t)v;
    else if (!strcmp(a, "--idle-timeout")) o->idle_timeout_ms = (int)v;
    else if (!strcmp(a, "--ping-interval")) o->ping_interval_ms = (int)v;
    else if (!strcmp(a, "--handshake-timeout")) o->handshake_timeout_ms = (int)v;
    else if (!strcmp(a, "--close-timeout")) o->close_timeout_ms = (int)v;
    else if (!strcmp(a, "--max-head")) o->max_head_size = (size_t)v;
    else if (!strcmp(a, "--threads")) o->threads = (int)v;
    else if (!strcmp(a, "--deflate")) o->deflate.enable = (int)v;
    else if (!strcmp(a, "--deflate-server-no-context"))
      o->deflate.server_no_context_takeover = (int)v;
    else if (!strcmp(a, "--deflate-client-no-context"))
      o->deflate.client_no_context_takeover = (int)v;
    else if (!strcmp(a, "--deflate-server-bits")) o->deflate.server_max_window_bits = (int)v;
    else if (!strcmp(a, "--deflate-client-bits")) o->deflate.client_max_window_bits = (int)v;
    else if (!strcmp(a, "--deflate-threshold")) o->deflate.threshold = (size_t)v;
    else if (!strcmp(a, "--pubsub")) pubsub = (int)v;
    else return fprintf(stderr, "pw-echo: unknown option %s\n", a), -1;
  }
  if (o->tls.cert_file) o->tls.port = o->port, o->port = plain_port;
  return 0;
}

/* Start; print "pw-echo listening on port N" (the line tests read: the TLS port with TLS),
 * then "pw-echo plain on port N" when both listen. Exits with a one-line error. */
static pw_server *start(const pw_options *opt, const pw_callbacks *cb) {
  if (!opt->tls.cert_file) return example_start("pw-echo", opt, cb);
  pw_server *srv = pw_server_new(opt, cb, NULL);
  if (!srv) fprintf(stderr, "pw-echo: bad options or TLS files\n"), exit(2);
  int r = pw_server_start(srv);
  if (r != 0) {
    fprintf(stderr, "pw-echo: cannot start: %s\n", pw_strerror(r));
    pw_server_free(srv);
    exit(1);
  }
  printf("pw-echo listening on port %d\n", pw_server_tls_port(srv));
  if (opt->port >= 0) printf("pw-echo plain on port %d\n", pw_server_port(srv));
  fflush(stdout);
  return srv;
}

/* One descriptor per client: take the hard limit, so the default soft 1,024 is no ceiling. */
static void raise_fd_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

int main(int argc, char **argv) {
  pw_options opt = {.port = 8080, .log = log_line, .log_level = PW_LOG_WARN};
  pw_callbacks cb = {.on_message = on_message,
                     .on_open = on_open,
                     .on_http = on_http,
                     .select_subprotocol = select_subprotocol};
  if (parse_args(argc, argv, &opt) != 0) return 2;
  raise_fd_limit();

  sigset_t stop_signals = example_block_stop_signals();
  sigaddset(&stop_signals, SIGHUP); /* the reload, on this thread: not the server's */
  pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
  pw_server *srv = start(&opt, &cb);
  pthread_t pub;
  if (pubsub == 2 && pthread_create(&pub, NULL, publisher, srv) != 0) return 1;

  int sig;
  while (sigwait(&stop_signals, &sig) == 0 && sig == SIGHUP) {
    int r = pw_server_reload_tls(srv);
    printf("pw-echo reload: %s\n", r == 0 ? "ok" : pw_strerror(r));
    fflush(stdout);
  }
  if (pubsub == 2) { /* the publisher finishes what it holds, then the server stops */
    pthread_mutex_lock(&jobs_lock);
    jobs_stop = 1;
    pthread_cond_signal(&jobs_cond);
    pthread_mutex_unlock(&jobs_lock);
    pthread_join(pub, NULL);
  }
  pw_server_stop(srv);
  pw_server_free(srv);
  return 0;
}
