/* The /metrics page: every line is one sample "name{labels} value", each family preceded by
 * its # HELP and # TYPE lines, as Prometheus' text format wants. */
#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon.h"

static const char *const source_names[PWD_NSRC] = {"http", "ws", "unix", "exec", "stdin", "demo"};

const char *pwd_source_name(pwd_source src) {
  return src < PWD_NSRC ? source_names[src] : "unknown";
}

static double monotonic_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void pwd_metrics_init(pwd_metrics *m) {
  memset(m, 0, sizeof *m);
  m->started = monotonic_seconds();
}

void pwd_count(atomic_uint_least64_t *counter, uint64_t n) {
  atomic_fetch_add_explicit(counter, n, memory_order_relaxed);
}

static uint64_t load(atomic_uint_least64_t *counter) {
  return atomic_load_explicit(counter, memory_order_relaxed);
}

/* ---- a growing text buffer ------------------------------------------------------------------- */
typedef struct text {
  char *s;
  size_t len, cap;
  int failed;
} text;

__attribute__((format(printf, 2, 3))) static void put(text *t, const char *fmt, ...) {
  for (int attempt = 0; attempt < 2 && !t->failed; attempt++) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->s ? t->s + t->len : NULL, t->s ? t->cap - t->len : 0, fmt, ap);
    va_end(ap);
    if (n < 0) t->failed = 1;
    else if (t->s && t->len + (size_t)n < t->cap) return (void)(t->len += (size_t)n);
    else {
      size_t cap = (t->cap + (size_t)n + 1) * 2;
      char *grown = realloc(t->s, cap);
      if (!grown) t->failed = 1;
      else t->s = grown, t->cap = cap;
    }
  }
}

static void family(text *t, const char *name, const char *type, const char *help) {
  put(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample(text *t, const char *name, const char *type, const char *help, uint64_t v) {
  family(t, name, type, help);
  put(t, "%s %llu\n", name, (unsigned long long)v);
}

/* ---- the page -------------------------------------------------------------------------------- */
static void library_samples(text *t, const pw_stats *s) {
  sample(t, "pushwired_connections", "gauge", "WebSocket connections open now.", s->connections);
  sample(t, "pushwired_connections_total", "counter", "WebSocket connections accepted.",
         s->connections_total);
  sample(t, "pushwired_messages_out_total", "counter", "Messages completely written to clients.",
         s->messages_sent);
  sample(t, "pushwired_messages_queued_total", "counter",
         "Messages accepted into client send queues.", s->messages_queued);
  sample(t, "pushwired_bytes_out_total", "counter", "Bytes written to clients (frames and HTTP).",
         s->bytes_sent);
  sample(t, "pushwired_queued_bytes", "gauge",
         "Bytes waiting in client send queues now (queue depth).", s->queued_bytes);
  sample(t, "pushwired_inbox_bytes", "gauge",
         "Bytes published but not yet taken by a loop (inbox depth).", s->inbox_bytes);
  family(t, "pushwired_dropped_messages_total", "counter",
         "Messages dropped, by the policy that dropped them.");
  put(t, "pushwired_dropped_messages_total{policy=\"drop_new\"} %llu\n",
      (unsigned long long)s->dropped_new);
  put(t, "pushwired_dropped_messages_total{policy=\"drop_oldest\"} %llu\n",
      (unsigned long long)s->dropped_oldest);
  put(t, "pushwired_dropped_messages_total{policy=\"closed\"} %llu\n",
      (unsigned long long)s->dropped_closed);
  sample(t, "pushwired_slow_client_closes_total", "counter",
         "Clients closed because their queue was full.", s->slow_closed);
  sample(t, "pushwired_inbox_rejected_total", "counter",
         "Publishes refused because a loop's inbox was full.", s->rejected);
}

static void per_source(text *t, const char *name, const char *help, atomic_uint_least64_t *v) {
  family(t, name, "counter", help);
  for (int i = 0; i < PWD_NSRC; i++)
    put(t, "%s{source=\"%s\"} %llu\n", name, source_names[i], (unsigned long long)load(&v[i]));
}

static void daemon_samples(text *t, pwd_daemon *d) {
  pwd_metrics *m = &d->metrics;
  pw_stats st;
  pw_server_stats(d->srv, &st);
  sample(t, "pushwired_subscriptions", "gauge", "Subscriptions (client-topic pairs) now.",
         st.subscriptions);
  sample(t, "pushwired_topics", "gauge", "Topics with at least one subscriber now.", st.topics);
  per_source(t, "pushwired_messages_in_total", "Messages published, by where they came from.",
             m->published);
  per_source(t, "pushwired_bytes_in_total", "Payload bytes published, by where they came from.",
             m->published_bytes);
  per_source(t, "pushwired_publish_refused_total",
             "Publishes refused (bad input, token, full inbox).", m->refused);
  sample(t, "pushwired_client_errors_total", "counter", "Error frames sent to WebSocket clients.",
         load(&m->client_errors));
  sample(t, "pushwired_exec_restarts_total", "counter", "Restarts of --exec programs.",
         load(&m->exec_restarts));
  family(t, "pushwired_uptime_seconds", "gauge", "Seconds since the daemon started.");
  put(t, "pushwired_uptime_seconds %.3f\n", monotonic_seconds() - m->started);
}

char *pwd_metrics_render(pwd_daemon *d, size_t *len) {
  text t = {0};
  pw_stats s;
  if (pw_server_stats(d->srv, &s) == 0) library_samples(&t, &s);
  daemon_samples(&t, d);
  if (t.failed) return free(t.s), NULL;
  *len = t.len;
  return t.s;
}
