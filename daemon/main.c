/* pushwired: a push daemon on libpushwire. main reads the configuration, starts the server and
 * the sources, then waits for signals in this thread only (they are blocked in every other):
 * SIGTERM/SIGINT drain and exit 0, SIGHUP reloads the cheap settings.
 * Exit codes: 0 after a clean stop, 1 cannot listen or start, 2 bad configuration. */
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <pushwire.h>

#include "config.h"
#include "daemon.h"
#include "deliver.h"
#include "log.h"
#include "protocol.h"
#include "routes.h"
#include "sources.h"
#if PWD_HAVE_DEMO
#include "demo.h"
#endif

enum { EXIT_CANNOT_RUN = 1, EXIT_BAD_CONFIG = 2 };

#if PWD_HAVE_DEMO
static int demo_running; /* main thread only: demo_start succeeded, demo_stop not yet called */
#endif

/* Block the signals main waits for before any thread exists: threads inherit the mask. */
static sigset_t block_signals(void) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  /* A program's choice, which the library leaves to it: a log line written to a stderr pipe
   * whose reader has gone must fail with EPIPE, not kill the daemon. Children get the
   * default back (sources.c, spawn). */
  signal(SIGPIPE, SIG_IGN);
  return set;
}

/* ---- the daemon's state ---------------------------------------------------------------------- */
/* --www as an absolute path without symlinks: the static-file check compares against it. */
static int resolve_www(pwd_daemon *d, const char *www, char *err, size_t errlen) {
  char path[PATH_MAX];
  struct stat st;
  if (!realpath(www, path) || stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
    snprintf(err, errlen, "--www %s: not a directory", www);
    return -1;
  }
  if (strcmp(path, "/") == 0) path[0] = '\0'; /* every resolved path starts with "" + "/" */
  d->www_root = strdup(path);
  return d->www_root ? 0 : -1;
}

static int daemon_init(pwd_daemon *d, const pwd_config *cfg, char *err, size_t errlen) {
  memset(d, 0, sizeof *d);
  d->cfg = cfg;
  pthread_rwlock_init(&d->live_lock, NULL);
  pwd_metrics_init(&d->metrics);
  if (pwd_live_apply(d, cfg) != 0) return snprintf(err, errlen, "out of memory"), -1;
  if (cfg->www && resolve_www(d, cfg->www, err, errlen) != 0) return -1;
#if !PWD_HAVE_DEMO
  if (cfg->demo)
    return snprintf(err, errlen,
                    "--demo: this build has no demo source (daemon/demo.c is missing)"),
           -1;
#endif
  return 0;
}

static void daemon_free(pwd_daemon *d) {
  pw_server_free(d->srv);
  pwd_sources_cleanup(d);
  pwd_live_free(&d->live);
  pthread_rwlock_destroy(&d->live_lock);
  free(d->www_root);
}

/* ---- the server ------------------------------------------------------------------------------ */
static pw_server *make_server(pwd_daemon *d) {
  static const char *const ws_paths[] = {"/ws", NULL};
  const pwd_config *c = d->cfg;
  pw_options opt = c->server; /* what the options set; then what the daemon itself adds */
  opt.bind_address = c->host;
  opt.ws_paths = ws_paths;
  opt.max_message_size = opt.max_body_size = c->max_message;
  opt.max_subscriptions = PWD_MAX_SUBSCRIPTIONS;
  opt.log = pwd_log_sink;
  opt.tls.require_client_cert = opt.tls.ca_file != NULL; /* --tls-ca: a certificate is a must */
  pw_callbacks cb = {
      .on_open = pwd_ws_on_open,
      .on_message = pwd_ws_on_message,
      .on_close = pwd_ws_on_close,
      .on_http = pwd_on_http,
      .on_upgrade = pwd_ws_on_upgrade,
  };
  return pw_server_new(&opt, &cb, d);
}

/* Listen and serve; on failure a one-line message and the exit code. */
static int start_server(pwd_daemon *d, char *err, size_t errlen) {
  if (!(d->srv = make_server(d)))
    return snprintf(err, errlen, "invalid server options or TLS files"), EXIT_BAD_CONFIG;
  pwd_log_mute_library(1);
  int r = pw_server_start(d->srv);
  pwd_log_mute_library(0);
  if (r != 0) {
    snprintf(err, errlen, "cannot listen on %s: %s", d->cfg->listen,
             r == PW_EADDRINUSE ? "address already in use" : pw_strerror(r));
    return EXIT_CANNOT_RUN;
  }
  int port = pw_server_port(d->srv);
  const char *host = d->cfg->host;
  const char *br = strchr(host, ':') ? "[" : "", *ket = *br ? "]" : "";
  /* The line tests and scripts read for the port (--listen HOST:0 picks a free one). */
  pwd_log(PW_LOG_INFO, "pushwired listening on port %d: http://%s%s%s:%d/ (WebSocket: /ws)", port,
          br, host, ket, port);
  if (d->cfg->server.tls.cert_file) {
    int tls_port = pw_server_tls_port(d->srv);
    pwd_log(PW_LOG_INFO, "pushwired TLS on port %d: https://%s%s%s:%d/ (WebSocket: wss://.../ws)",
            tls_port, br, host, ket, tls_port);
  }
  return 0;
}

static int start_producers(pwd_daemon *d, char *err, size_t errlen) {
  if (pwd_sources_start(d, err, errlen) != 0) return -1;
#if PWD_HAVE_DEMO
  if (d->cfg->demo) {
    if (demo_start(pwd_demo_publish, d) != 0)
      return snprintf(err, errlen, "--demo: the demo source did not start"), -1;
    demo_running = 1;
    pwd_log(PW_LOG_INFO, "demo source running (topics demo.*)");
  }
#endif
  return 0;
}

/* ---- signals --------------------------------------------------------------------------------- */
/* SIGHUP: read the configuration again (file, environment, the same flags) and apply what can
 * change while running. A broken file keeps the old settings. */
static void reload(pwd_daemon *d, int argc, char **argv) {
  pwd_config fresh;
  char err[512];
  if (pwd_config_load(&fresh, argc, argv, err, sizeof err) != PWD_CONFIG_OK) {
    pwd_log(PW_LOG_ERROR, "reload failed, settings unchanged: %s", err);
  } else if (pwd_live_apply(d, &fresh) != 0) {
    pwd_log(PW_LOG_ERROR, "reload failed, settings unchanged: out of memory");
  } else {
    if (d->cfg->server.tls.cert_file &&
        pw_server_reload_tls(d->srv) == 0) /* the same paths, re-read */
      pwd_log(PW_LOG_INFO, "reloaded the TLS certificate files");
    pwd_log_set_level(fresh.server.log_level);
    pwd_log(PW_LOG_INFO,
            "reloaded token, allow-publish, raw and log-level (%s); other settings need a restart",
            pwd_log_level_name(fresh.server.log_level));
  }
  pwd_config_free(&fresh);
}

/* Wait for SIGTERM or SIGINT, handling SIGHUPs meanwhile; returns the stop signal. */
static int wait_for_stop(pwd_daemon *d, const sigset_t *signals, int argc, char **argv) {
  for (;;) {
    int sig = 0;
    if (sigwait(signals, &sig) != 0) continue;
    if (sig != SIGHUP) return sig;
    reload(d, argc, argv);
  }
}

/* Producers first: each publishes what it had already received, then ends (from the moment
 * pw_server_stop starts, publishes are refused). Then pw_server_stop lets the loops write
 * everything accepted and closes every client with 1001. */
static void stop(pwd_daemon *d, int sig) {
  pwd_log(PW_LOG_INFO, "%s: stopping, draining clients", sig == SIGINT ? "SIGINT" : "SIGTERM");
#if PWD_HAVE_DEMO
  if (demo_running) demo_stop();
  demo_running = 0;
#endif
  pwd_sources_stop(d);
  pw_server_stop(d->srv);
  pwd_log(PW_LOG_INFO, "stopped");
}

/* ---- main ------------------------------------------------------------------------------------ */
static int run(const pwd_config *cfg, int argc, char **argv) {
  pwd_daemon d;
  char err[512] = "";
  sigset_t signals = block_signals();
  int code = 0;
  if (daemon_init(&d, cfg, err, sizeof err) != 0) code = EXIT_BAD_CONFIG;
  else if (pwd_sources_prepare(&d, err, sizeof err) != 0) code = EXIT_CANNOT_RUN;
  else if ((code = start_server(&d, err, sizeof err)) == 0 &&
           start_producers(&d, err, sizeof err) != 0)
    code = EXIT_CANNOT_RUN;
  if (code == 0) stop(&d, wait_for_stop(&d, &signals, argc, argv));
  else fprintf(stderr, "pushwired: %s\n", err);
#if PWD_HAVE_DEMO
  if (demo_running) demo_stop(); /* a later start step failed */
#endif
  daemon_free(&d);
  return code;
}

int main(int argc, char **argv) {
  pwd_config cfg;
  char err[512];
  int r = pwd_config_load(&cfg, argc, argv, err, sizeof err);
  int code = 0;
  if (r == PWD_CONFIG_HELP) fputs(pwd_config_help(), stdout);
  else if (r == PWD_CONFIG_VERSION)
    printf("pushwired %d.%d.%d\n", PW_VERSION_MAJOR, PW_VERSION_MINOR, PW_VERSION_PATCH);
  else if (r != PWD_CONFIG_OK) fprintf(stderr, "pushwired: %s\n", err), code = EXIT_BAD_CONFIG;
  else pwd_log_set_level(cfg.server.log_level), code = run(&cfg, argc, argv);
  pwd_config_free(&cfg);
  return code;
}
