/* push_common.h: what every C peer of the "push-server" contract shares (see README.md here):
 * the command line, the payload layout, rate pacing of producer threads, the stop signals and
 * the summary line. Header-only (static functions) so each peer stays one .c file + this.
 *
 * Payload of every published message (S >= 17 bytes):
 *   [0..7]   CLOCK_MONOTONIC ns, little-endian, taken right before the publish call
 *   [8..15]  sequence number of this producer (0, 1, 2, ... over all its topics), little-endian
 *   [16]     producer index
 *   [17..]   padding ('x')
 * Producer p sends its n-th message to topic (p + n) % T, so a subscriber of one topic sees
 * every T-th sequence number of each producer when nothing is dropped. */
#ifndef PUSH_COMMON_H
#define PUSH_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define PUSH_HDR_BYTES 17

typedef struct push_opts {
  int port;         /* --port P (0 = the kernel picks) */
  int producers;    /* --producers K (default 1) */
  double rate;      /* --rate R messages/s per producer (0 = as fast as allowed) */
  size_t size;      /* --size S payload bytes (default 64, >= 17) */
  double duration;  /* --duration D seconds from startup (0 = until SIGTERM/SIGINT) */
  int topics;       /* --topics T (default 1) */
  int threads;      /* --threads N (meaning per peer; default 1) */
  size_t lag_bytes; /* --lag-bytes B: per-client backlog before drops (peer-specific use) */
} push_opts;

static inline uint64_t push_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void push_put_le64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* Padding once, then per message only the 17 header bytes change. */
static inline void push_payload_init(unsigned char *p, size_t size, int producer) {
  memset(p, 'x', size);
  p[16] = (unsigned char)producer;
}
static inline void push_payload_stamp(unsigned char *p, uint64_t seq) {
  push_put_le64(p + 8, seq);
  push_put_le64(p, push_now_ns()); /* last: as close to the publish call as possible */
}

static inline void push_usage(const char *name, const char *extra) {
  fprintf(stderr,
          "usage: %s [--port P] [--producers K] [--rate R] [--size S] [--duration D]\n"
          "          [--topics T] [--threads N] [--lag-bytes B]%s\n",
          name, extra ? extra : "");
}

/* Parses the contract's flags. Unknown flags go to `extra` (may be NULL) which returns the
 * number of argv entries it consumed (1 or 2) or 0 for "unknown". Returns 0 or -1. */
typedef int (*push_extra_fn)(int argc, char **argv, int i, void *user);
static inline int push_parse(int argc, char **argv, push_opts *o, const char *name,
                             push_extra_fn extra, void *user, const char *extra_usage) {
  *o = (push_opts){.port = 0,
                   .producers = 1,
                   .rate = 0,
                   .size = 64,
                   .duration = 0,
                   .topics = 1,
                   .threads = 1,
                   .lag_bytes = 64 * 1024};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    int used = 0;
    if (v && !strcmp(a, "--port")) o->port = atoi(v), used = 2;
    else if (v && !strcmp(a, "--producers")) o->producers = atoi(v), used = 2;
    else if (v && !strcmp(a, "--rate")) o->rate = atof(v), used = 2;
    else if (v && !strcmp(a, "--size")) o->size = (size_t)strtoull(v, NULL, 10), used = 2;
    else if (v && !strcmp(a, "--duration")) o->duration = atof(v), used = 2;
    else if (v && !strcmp(a, "--topics")) o->topics = atoi(v), used = 2;
    else if (v && !strcmp(a, "--threads")) o->threads = atoi(v), used = 2;
    else if (v && !strcmp(a, "--lag-bytes")) o->lag_bytes = (size_t)strtoull(v, NULL, 10), used = 2;
    else if (extra) used = extra(argc, argv, i, user);
    if (!used) {
      push_usage(name, extra_usage);
      return -1;
    }
    i += used - 1;
  }
  if (o->producers < 1 || o->producers > 255 || o->topics < 1 || o->size < PUSH_HDR_BYTES ||
      o->size > (16u << 20) || o->rate < 0 || o->duration < 0 || o->threads < 1 || o->port < 0 ||
      o->port > 65535) {
    fprintf(stderr, "%s: bad option value (size >= %d, producers 1..255, topics >= 1)\n", name,
            PUSH_HDR_BYTES);
    return -1;
  }
  return 0;
}

/* Paces one producer at `rate` messages/s against absolute time: when the thread falls
 * behind (scheduling, lock waits) it publishes back to back until it has caught up. */
typedef struct push_pacer {
  double rate;
  uint64_t start, n;
} push_pacer;

static inline void push_pacer_init(push_pacer *p, double rate) {
  p->rate = rate, p->start = push_now_ns(), p->n = 0;
}
static inline void push_pacer_wait(push_pacer *p) {
  if (p->rate <= 0) return;
  uint64_t due = p->start + (uint64_t)((double)p->n++ * 1e9 / p->rate);
  if (push_now_ns() >= due) return;
  struct timespec ts = {.tv_sec = (time_t)(due / 1000000000u),
                        .tv_nsec = (long)(due % 1000000000u)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {}
}

/* One descriptor per client: take the hard limit (10,000 subscribers need > 1,024). */
static inline void push_raise_fd_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

/* Call first in main, before any thread exists: SIGINT/SIGTERM are then only ever taken by
 * push_wait_stop, and SIGPIPE is ignored (writes to a gone client fail with EPIPE). */
static inline void push_block_signals(sigset_t *set) {
  signal(SIGPIPE, SIG_IGN);
  sigemptyset(set);
  sigaddset(set, SIGINT);
  sigaddset(set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, set, NULL);
}

/* Blocks until SIGINT/SIGTERM or until `duration` seconds after `start_ns` (0 = no limit). */
static inline void push_wait_stop(const sigset_t *set, double duration, uint64_t start_ns) {
  for (;;) {
    struct timespec ts = {.tv_sec = 1, .tv_nsec = 0};
    if (duration > 0) {
      uint64_t end = start_ns + (uint64_t)(duration * 1e9), now = push_now_ns();
      if (now >= end) return;
      uint64_t left = end - now;
      if (left < 1000000000u) ts.tv_sec = 0, ts.tv_nsec = (long)left;
    }
    int sig = sigtimedwait(set, NULL, &ts);
    if (sig == SIGINT || sig == SIGTERM) return;
  }
}

/* Producers start when the first client connects (publishing into an empty server would only
 * fill rings and skew the first subscriber's latency); the gate also releases them at stop. */
typedef struct push_gate {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int open, stop;
} push_gate;
#define PUSH_GATE_INIT \
  { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0 }

static inline void push_gate_set(push_gate *g, int open, int stop) {
  pthread_mutex_lock(&g->mu);
  g->open |= open, g->stop |= stop;
  pthread_cond_broadcast(&g->cv);
  pthread_mutex_unlock(&g->mu);
}
/* Returns 1 once open, 0 if stopped first. */
static inline int push_gate_wait(push_gate *g) {
  pthread_mutex_lock(&g->mu);
  while (!g->open && !g->stop) pthread_cond_wait(&g->cv, &g->mu);
  int go = !g->stop;
  pthread_mutex_unlock(&g->mu);
  return go;
}

/* The contract's one summary line; `delivered` = frames the server handed to sockets. */
static inline void push_summary(const char *name, uint64_t published, uint64_t dropped,
                                uint64_t clients, uint64_t accepted, uint64_t delivered,
                                double seconds) {
  printf("%s summary: published=%" PRIu64 " dropped=%" PRIu64 " clients=%" PRIu64
         " accepted=%" PRIu64 " delivered=%" PRIu64 " seconds=%.2f\n",
         name, published, dropped, clients, accepted, delivered, seconds);
  fflush(stdout);
}

#endif
