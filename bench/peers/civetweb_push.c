/* civetweb_push: the "push-server" fan-out contract (bench/peers/README.md) on Debian's
 * CivetWeb 1.15, written the way CivetWeb's docs and its embedded_c example push from other
 * threads:
 *   - websocket handlers set with mg_set_websocket_handler on "/" (a prefix: every path);
 *   - the ready handler adds the connection to a list, the close handler removes it, both under
 *     mg_lock_context (as the example's ws_clients table);
 *   - a producer thread, holding mg_lock_context as the example's InformWebsockets does, calls
 *     mg_websocket_write for every connection of the topic. mg_websocket_write takes
 *     mg_lock_connection / mg_unlock_connection itself (its documentation says so), so it is
 *     not wrapped again.
 * CivetWeb runs a worker thread per connection (it sits in the websocket read loop for the
 * connection's life), so num_threads must exceed the subscribers: --max-clients M (default
 * 10,100) sets it; --threads has no meaning here and is ignored.
 * Backpressure: CivetWeb has no send queue; mg_websocket_write blocks on a full socket (up to
 * request_timeout_ms, default 30 s), so a slow client slows the producer and every other
 * client of the topic. A write that fails (returns <= 0) is counted as dropped.
 * Tuning (all else is CivetWeb's default): tcp_nodelay 1 (every other server here disables
 * Nagle; CivetWeb's default keeps it), listen_backlog 4096 (10,000 clients connect at once).
 * Producers start at the first client; --duration counts from startup.
 * Usage: civetweb_push [contract flags] [--max-clients M]. */
#include "push_common.h"

#include <civetweb.h>
#include <stdatomic.h>

#define NAME "civetweb-push"

typedef struct sub {
  struct mg_connection *conn;
  int topic, idx;
} sub;

typedef struct topic_list {
  sub **subs;
  size_t n, cap;
} topic_list;

static push_opts opt;
static int max_clients = 10100;
static struct mg_context *ctx;
static topic_list *topics; /* under mg_lock_context */
static uint64_t accepted;  /* under mg_lock_context */
static push_gate gate = PUSH_GATE_INIT;
static atomic_int stopping;
static atomic_uint_fast64_t published, delivered, dropped, clients;

static void *producer(void *arg) {
  int idx = (int)(intptr_t)arg;
  unsigned char *payload = malloc(opt.size);
  push_payload_init(payload, opt.size, idx);
  if (push_gate_wait(&gate)) {
    push_pacer pacer;
    push_pacer_init(&pacer, opt.rate);
    for (uint64_t seq = 0; !atomic_load_explicit(&stopping, memory_order_relaxed); seq++) {
      push_pacer_wait(&pacer);
      push_payload_stamp(payload, seq);
      topic_list *t = &topics[(idx + seq) % (uint64_t)opt.topics];
      uint64_t ok = 0, bad = 0;
      mg_lock_context(ctx);
      for (size_t i = 0; i < t->n; i++) {
        int r = mg_websocket_write(t->subs[i]->conn, MG_WEBSOCKET_OPCODE_BINARY,
                                   (const char *)payload, opt.size);
        if (r > 0) ok++;
        else bad++;
      }
      mg_unlock_context(ctx);
      atomic_fetch_add_explicit(&published, 1, memory_order_relaxed);
      atomic_fetch_add_explicit(&delivered, ok, memory_order_relaxed);
      if (bad) atomic_fetch_add_explicit(&dropped, bad, memory_order_relaxed);
    }
  }
  free(payload);
  return NULL;
}

static int on_connect(const struct mg_connection *conn, void *cbdata) {
  (void)conn, (void)cbdata;
  return 0; /* accept every upgrade */
}

static void on_ready(struct mg_connection *conn, void *cbdata) {
  (void)cbdata;
  sub *s = calloc(1, sizeof *s);
  s->conn = conn;
  mg_lock_context(ctx);
  s->topic = (int)(accepted++ % (uint64_t)opt.topics);
  topic_list *t = &topics[s->topic];
  if (t->n == t->cap) {
    t->cap = t->cap ? 2 * t->cap : 64;
    t->subs = realloc(t->subs, t->cap * sizeof *t->subs);
  }
  s->idx = (int)t->n;
  t->subs[t->n++] = s;
  mg_unlock_context(ctx);
  mg_set_user_connection_data(conn, s);
  atomic_fetch_add(&clients, 1);
  push_gate_set(&gate, 1, 0);
}

static int on_data(struct mg_connection *conn, int bits, char *data, size_t len, void *cbdata) {
  (void)conn, (void)data, (void)len, (void)cbdata;
  return (bits & 0x0f) != MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE; /* 0 = close */
}

static void on_close(const struct mg_connection *conn, void *cbdata) {
  (void)cbdata;
  sub *s = mg_get_user_connection_data(conn);
  if (!s) return;
  mg_lock_context(ctx); /* no producer is writing to it once we hold this */
  topic_list *t = &topics[s->topic];
  t->subs[s->idx] = t->subs[--t->n];
  t->subs[s->idx]->idx = s->idx;
  mg_unlock_context(ctx);
  mg_set_user_connection_data(conn, NULL);
  free(s);
  atomic_fetch_sub(&clients, 1);
}

static int extra_flag(int argc, char **argv, int i, void *user) {
  (void)user;
  if (i + 1 < argc && !strcmp(argv[i], "--max-clients") && atoi(argv[i + 1]) > 0) {
    max_clients = atoi(argv[i + 1]);
    return 2;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (push_parse(argc, argv, &opt, NAME, extra_flag, NULL, " [--max-clients M]")) return 2;
  sigset_t stop_set;
  push_block_signals(&stop_set);
  push_raise_fd_limit();
  topics = calloc((size_t)opt.topics, sizeof *topics);
  if (!mg_check_feature(16)) {
    fprintf(stderr, NAME ": this CivetWeb was built without websockets\n");
    return 1;
  }
  mg_init_library(0);

  char ports[32], threads[16];
  snprintf(ports, sizeof ports, "127.0.0.1:%d", opt.port);
  snprintf(threads, sizeof threads, "%d", max_clients + 8);
  const char *options[] = {"listening_ports", ports,  "num_threads", threads, "tcp_nodelay", "1",
                           "listen_backlog",  "4096", NULL};
  struct mg_callbacks cb;
  memset(&cb, 0, sizeof cb);
  ctx = mg_start(&cb, NULL, options);
  if (!ctx) {
    fprintf(stderr, NAME ": mg_start failed\n");
    return 1;
  }
  mg_set_websocket_handler(ctx, "/", on_connect, on_ready, on_data, on_close, NULL);
  struct mg_server_port sp[4];
  memset(sp, 0, sizeof sp);
  if (mg_get_server_ports(ctx, 4, sp) < 1) return 1;
  uint64_t t0 = push_now_ns();
  printf(NAME " listening on port %d\n", sp[0].port);
  fflush(stdout);

  pthread_t prod[256];
  for (int i = 0; i < opt.producers; i++)
    pthread_create(&prod[i], NULL, producer, (void *)(intptr_t)i);
  push_wait_stop(&stop_set, opt.duration, t0);

  double secs = (double)(push_now_ns() - t0) / 1e9;
  atomic_store(&stopping, 1);
  push_gate_set(&gate, 0, 1);
  for (int i = 0; i < opt.producers; i++) pthread_join(prod[i], NULL);
  push_summary(NAME, atomic_load(&published), atomic_load(&dropped), atomic_load(&clients),
               accepted, atomic_load(&delivered), secs);
  mg_stop(ctx);
  return 0;
}
