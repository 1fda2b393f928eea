/* The state pushwired's parts share: the server, the startup configuration, the settings a
 * SIGHUP may change and the counters behind /metrics (who is subscribed to what is the
 * library's to know: pw_topic_subscribers, pw_server_stats). One instance,
 * made by main and passed as the library's `user` pointer and to every source. */
#ifndef PUSHWIRED_DAEMON_H
#define PUSHWIRED_DAEMON_H

#include <pthread.h>
#include <pushwire.h>
#include <stdatomic.h>
#include <stdint.h>

#include "config.h"
#include "metrics.h"

/* Settings that SIGHUP reloads. Read by loop threads and sources under `live_lock` (read
 * side), replaced whole by main (write side). */
typedef struct pwd_live {
  char *token;       /* NULL: publishing needs no token */
  int allow_publish; /* WebSocket clients may publish */
  char **raw;        /* topic prefixes delivered raw */
  size_t nraw;
} pwd_live;

typedef struct pwd_daemon {
  pw_server *srv;
  const pwd_config *cfg; /* startup configuration: fixed while the server runs */
  pthread_rwlock_t live_lock;
  pwd_live live;
  pwd_metrics metrics;
  char *www_root;              /* realpath of --www without a trailing '/' ("" for "/"), or NULL */
  struct pwd_sources *sources; /* the Unix socket, --exec and --stdin producers (sources.c) */
} pwd_daemon;

/* Copy the reloadable part of cfg into d->live (under the write lock). 0 or -1 (no memory:
 * the old settings stay). */
int pwd_live_apply(pwd_daemon *d, const pwd_config *cfg);
void pwd_live_free(pwd_live *live);

/* Does `given` match the configured token? 1 also when no token is configured. Any thread.
 * Compared in constant time so the token cannot be guessed byte by byte from timings. */
int pwd_token_ok(pwd_daemon *d, const char *given, size_t given_len);
int pwd_token_required(pwd_daemon *d);

/* Topic rules shared by every way in: 1..255 bytes of valid UTF-8 with no control
 * characters (a topic must fit a JSON string and a "<topic> <payload>" line). */
int pwd_topic_valid(const char *topic, size_t len);

#endif
