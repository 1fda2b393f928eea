/* pushwired's own counters and the /metrics page (Prometheus text format 0.0.4), which joins
 * them with the library's pw_server_stats (subscription and topic counts included). */
#ifndef PUSHWIRED_METRICS_H
#define PUSHWIRED_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Where a published message came from (a label of the publish counters). */
typedef enum pwd_source {
  PWD_SRC_HTTP,
  PWD_SRC_WS,
  PWD_SRC_UNIX,
  PWD_SRC_EXEC,
  PWD_SRC_STDIN,
  PWD_SRC_DEMO,
  PWD_NSRC
} pwd_source;

typedef struct pwd_metrics {
  atomic_uint_least64_t published[PWD_NSRC];       /* messages handed to pw_publish */
  atomic_uint_least64_t published_bytes[PWD_NSRC]; /* their payload bytes, as received */
  atomic_uint_least64_t refused[PWD_NSRC];         /* bad input, no token, full inbox */
  atomic_uint_least64_t client_errors;             /* error frames sent to WebSocket clients */
  atomic_uint_least64_t exec_restarts;             /* --exec programs restarted */
  double started;                                  /* monotonic seconds at start */
} pwd_metrics;

struct pwd_daemon;

const char *pwd_source_name(pwd_source src);
void pwd_metrics_init(pwd_metrics *m);
/* One counter step; relaxed atomics (counters, not synchronisation). */
void pwd_count(atomic_uint_least64_t *counter, uint64_t n);

/* Render the page into a malloc'ed string (*len bytes); NULL if out of memory. */
char *pwd_metrics_render(struct pwd_daemon *d, size_t *len);

#endif
