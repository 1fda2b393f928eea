/* push-server: the standard fan-out server every benchmark runs, on pushwire.
 * push-server [--port P] [--producers K] [--rate R] [--size S] [--duration D] [--topics T]
 *             [--threads N] [--tls-cert PEM --tls-key PEM]
 * With --tls-cert the port speaks TLS only (wss://): the fan-out cost of TLS, against plain.
 * Every client that connects is subscribed to a topic (round-robin over T topics). K producer
 * threads publish R messages/s each (0 = as fast as backpressure allows) of S bytes: bytes 0-7
 * the CLOCK_MONOTONIC ns send time taken right before the publish call (little-endian),
 * 8-15 a per-producer sequence number, 16 the producer index, the rest padding; producer k
 * sends its i-th message to topic (k + i) % T. Slow subscribers: PW_SLOW_DROP_OLDEST over 64 KiB
 * (latest wins), counted. --inbox-bytes B sets pushwire's inbox budget (see cfg). Prints "push-server listening on port N" first, and one summary
 * line at exit (after D seconds, 0 = until SIGINT/SIGTERM). */
#include <pushwire.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

typedef struct config {
  int port, producers, size, duration, topics, threads;
  long rate, inbox_bytes;
  const char *tls_cert, *tls_key; /* --tls-cert/--tls-key: the port speaks TLS (wss://) */
} config;

/* --inbox-bytes (pushwire's max_inbox_bytes, per loop) defaults to 4 MiB: about the 64
 * messages x 1,000 subscribers that bare_writev takes per batch. The library's 64 MiB default
 * trades latency for burst room: at full speed a message waits behind the whole budget of
 * deliveries (263 ms at 1,000 subscribers vs 18 ms with 4 MiB, and 4.8 vs 3.9 M msg/s). */
static config cfg = {.producers = 1, .size = 64, .topics = 1, .threads = 1, .inbox_bytes = 4 << 20};
static _Atomic unsigned long next_topic, published, clients;
static _Atomic unsigned long clients_per_loop[64]; /* connections accepted by each loop */

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void topic_name(char *out, size_t cap, unsigned long i) {
  snprintf(out, cap, "t%lu", i % (unsigned long)cfg.topics);
}

static void on_open(pw_server *srv, pw_conn_id id, const pw_request *req, void *user) {
  char topic[32];
  topic_name(topic, sizeof topic, atomic_fetch_add(&next_topic, 1));
  pw_subscribe(srv, id, topic);
  atomic_fetch_add(&clients, 1);
  atomic_fetch_add(&clients_per_loop[(id >> 56) & 63], 1); /* the id's top byte is its loop */
}

static void on_close(pw_server *srv, pw_conn_id id, int code, const char *reason, void *user) {
  atomic_fetch_sub(&clients, 1);
}

static void put_le64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* Sleep until the i-th message of a producer is due (absolute schedule: no drift). */
static void pace(uint64_t start, uint64_t i) {
  if (cfg.rate <= 0) return;
  uint64_t due = start + i * 1000000000u / (uint64_t)cfg.rate;
  struct timespec ts = {(time_t)(due / 1000000000u), (long)(due % 1000000000u)};
  if (due > now_ns()) clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

static void producer(pw_server *srv, void *arg) {
  uint8_t index = (uint8_t)(uintptr_t)arg;
  uint8_t *msg = calloc(1, (size_t)cfg.size);
  char topic[32];
  uint64_t start = now_ns();
  for (uint64_t seq = 0; msg && !pw_task_should_stop(); seq++) {
    pace(start, seq);
    topic_name(topic, sizeof topic, index + seq); /* as the peers: topic (k + i) % T */
    put_le64(msg + 8, seq);
    msg[16] = index;
    put_le64(msg, now_ns());
    if (pw_publish(srv, topic, msg, (size_t)cfg.size, PW_BINARY | PW_BLOCK) == 0)
      atomic_fetch_add_explicit(&published, 1, memory_order_relaxed);
    else seq--; /* not published (inbox full past the timeout): the sequence stays gapless */
  }
  free(msg);
}

/* Until SIGINT/SIGTERM or --duration; with PUSH_SERVER_STATS=1 in the environment, one line of
 * queue gauges per second on stderr (where a message waits: inbox or send queues). */
static void wait_for_stop(pw_server *srv, const sigset_t *stop) {
  int verbose = getenv("PUSH_SERVER_STATS") != NULL;
  struct timespec second = {1, 0};
  for (int t = 0; cfg.duration <= 0 || t < cfg.duration; t++) {
    if (sigtimedwait(stop, NULL, &second) > 0) return;
    if (!verbose) continue;
    pw_stats st;
    pw_server_stats(srv, &st);
    fprintf(stderr,
            "push-server: t=%ds inbox_bytes=%llu queued_bytes=%llu sent=%llu "
            "dropped_oldest=%llu batch_avg=%.0f\n",
            t + 1, (unsigned long long)st.inbox_bytes, (unsigned long long)st.queued_bytes,
            (unsigned long long)st.messages_sent, (unsigned long long)st.dropped_oldest,
            st.wakeups ? (double)st.commands / (double)st.wakeups : 0.0);
  }
}

static int parse(int argc, char **argv) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *a = argv[i];
    long v = strtol(argv[i + 1], NULL, 10);
    if (!strcmp(a, "--tls-cert")) cfg.tls_cert = argv[i + 1];
    else if (!strcmp(a, "--tls-key")) cfg.tls_key = argv[i + 1];
    else if (!strcmp(a, "--port")) cfg.port = (int)v;
    else if (!strcmp(a, "--producers")) cfg.producers = (int)v;
    else if (!strcmp(a, "--rate")) cfg.rate = v;
    else if (!strcmp(a, "--size")) cfg.size = (int)v;
    else if (!strcmp(a, "--duration")) cfg.duration = (int)v;
    else if (!strcmp(a, "--topics")) cfg.topics = (int)v;
    else if (!strcmp(a, "--threads")) cfg.threads = (int)v;
    else if (!strcmp(a, "--inbox-bytes")) cfg.inbox_bytes = v;
    else return fprintf(stderr, "push-server: unknown option %s\n", a), -1;
  }
  if (argc % 2 == 0) return fprintf(stderr, "push-server: %s needs a value\n", argv[argc - 1]), -1;
  if (cfg.size < 17 || cfg.producers < 1 || cfg.producers > 255 || cfg.topics < 1)
    return fprintf(stderr, "push-server: size >= 17, 1 <= producers <= 255, topics >= 1\n"), -1;
  return 0;
}

static void raise_fd_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) rl.rlim_cur = rl.rlim_max, setrlimit(RLIMIT_NOFILE, &rl);
}

int main(int argc, char **argv) {
  if (parse(argc, argv) != 0) return 2;
  raise_fd_limit();
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, NULL);
  /* 64 KiB per subscriber, as the peers' --lag-bytes default: latest wins past it. */
  pw_options opt = {.port = cfg.port,
                    .threads = cfg.threads,
                    .max_connections = 200000,
                    .slow_policy = PW_SLOW_DROP_OLDEST,
                    .max_queued_bytes = 64 * 1024,
                    .backlog = 4096,
                    .max_inbox_bytes = (size_t)cfg.inbox_bytes,
                    .tls = {.cert_file = cfg.tls_cert, .key_file = cfg.tls_key}};
  if (cfg.tls_cert) opt.tls.port = cfg.port, opt.port = -1; /* TLS only, on --port */
  pw_callbacks cb = {.on_open = on_open, .on_close = on_close};
  pw_server *srv = pw_server_new(&opt, &cb, NULL);
  if (!srv || pw_server_start(srv) != 0) return fprintf(stderr, "push-server: cannot start\n"), 1;
  printf("push-server listening on port %d\n",
         cfg.tls_cert ? pw_server_tls_port(srv) : pw_server_port(srv));
  fflush(stdout);
  for (int k = 0; k < cfg.producers; k++) {
    char key[32];
    snprintf(key, sizeof key, "producer-%d", k);
    pw_task_start(srv, key, producer, (void *)(uintptr_t)k);
  }
  wait_for_stop(srv, &stop);
  pw_stats st;
  pw_server_stats(srv, &st);
  unsigned long n = atomic_load(&clients);
  pw_server_stop(srv);
  printf("push-server: published %lu, dropped %llu (oldest %llu, new %llu, closed %llu), "
         "clients %lu, sent %llu\n",
         atomic_load(&published),
         (unsigned long long)(st.dropped_oldest + st.dropped_new + st.dropped_closed),
         (unsigned long long)st.dropped_oldest, (unsigned long long)st.dropped_new,
         (unsigned long long)st.dropped_closed, n, (unsigned long long)st.messages_sent);
  for (int i = 0; i < cfg.threads && i < 64; i++)
    printf("%sloop %d: %lu", i ? ", " : "push-server: accepted per ", i,
           atomic_load(&clients_per_loop[i]));
  printf("\n");
  pw_server_free(srv);
  return 0;
}
