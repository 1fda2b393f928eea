/* pw-bench: a load generator for any WebSocket server (the RFC 6455 client side).
 *
 *   pw-bench MODE --port P [--host 127.0.0.1] [--path /] [--conns N] [--size S]
 *            [--pipeline D] [--duration SEC] [--warmup SEC] [--threads T]
 *            [--server-pid PID] [--cpu LIST] [--batch B] [--timeout SEC] [--json]
 *
 * Modes:
 *   echo     N connections each keep D binary messages of S bytes in flight; every echo
 *            received is timed (bytes 0-7 of the payload carry the send time) and answered
 *            with the next message. Reports messages/s and round-trip p50/p99/p999/max.
 *   sub      N receive-only connections. The server side writes into each payload: bytes
 *            0-7 send time (LE u64 CLOCK_MONOTONIC ns, taken right before publishing),
 *            8-15 LE u64 sequence number per producer, byte 16 producer index. Reports
 *            delivered messages/s over all connections, latency from that timestamp, and
 *            per connection and producer the gaps, reorders and duplicates of sequence
 *            numbers (counted for the whole run, warmup included: a gap is a bug anytime).
 *            --topics T: producers spread their messages over T topics round-robin (the
 *            push-server contract), so one subscriber sees every T-th number of a producer.
 *   idle     opens N connections, reads the server's VmRSS (--server-pid) before and after
 *            all handshakes + a 1 s settle, holds them for --duration seconds and prints
 *            "bytes per idle connection: X" (the figure the former bench/idle_conns printed).
 *   connect  keeps up to N connection cycles in flight: connect, upgrade, verify, send a
 *            close frame, wait for the server to close TCP first (so TIME_WAIT lands on the
 *            server side and the client's ephemeral ports stay free), repeat. Reports
 *            handshakes/s and handshake latency (connect() to verified 101).
 *
 * Every run opens its connections first (at most --batch handshakes in flight, each reply
 * checked for "101" and the right Sec-WebSocket-Accept), then --warmup seconds that are not
 * counted, then --duration measured seconds. One summary line of key=value pairs is printed,
 * or one JSON object with --json. With --server-pid the server's CPU use over the measured
 * window is reported beside pw-bench's own, which shows which side was the limit.
 *
 * --threads T runs T client threads, each with its own epoll and N/T connections (default
 * 1: pw-bench fits on one core while the server is pinned to another). --cpu LIST pins
 * thread i to the i-th CPU of the comma-separated list (cyclically).
 *
 * Exit status: 0 when every connection was established and none was lost, 1 otherwise,
 * 2 on usage or setup errors. C11 + Linux (epoll); OpenSSL libcrypto for SHA-1 only. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------ */
/* Options                                                                              */

enum mode { M_ECHO, M_SUB, M_IDLE, M_CONNECT };
static const char *const mode_names[] = {"echo", "sub", "idle", "connect"};

#define MAX_CPUS 64

struct opts {
  enum mode mode;
  const char *host;
  long port;
  const char *path;
  long conns, size, pipeline, threads, batch, topics;
  double duration, warmup, timeout;
  long server_pid;
  int cpus[MAX_CPUS];
  int ncpus;
  bool json;
};

static struct opts O = {
    .host = "127.0.0.1",
    .port = -1,
    .path = "/",
    .conns = 100,
    .size = 64,
    .pipeline = 1,
    .threads = 1,
    .batch = 500,
    .topics = 1,
    .duration = 5,
    .warmup = 1,
    .timeout = 10,
    .server_pid = -1,
};

static void usage(FILE *f) {
  fputs("usage: pw-bench echo|sub|idle|connect --port P [--host 127.0.0.1] [--path /]\n"
        "         [--conns N (100)] [--size S (64)] [--pipeline D (1)] [--duration SEC (5)]\n"
        "         [--warmup SEC (1)] [--threads T (1)] [--server-pid PID] [--cpu LIST]\n"
        "         [--batch B handshakes in flight (500)] [--timeout SEC handshake (10)]\n"
        "         [--topics T sub: producers spread over T topics (1)] [--json]\n",
        f);
}

static bool parse_long(const char *name, const char *v, long lo, long hi, long *out) {
  char *end;
  errno = 0;
  long x = strtol(v, &end, 10);
  if (errno || *end || end == v || x < lo || x > hi) {
    fprintf(stderr, "pw-bench: %s must be an integer in [%ld, %ld]: '%s'\n", name, lo, hi, v);
    return false;
  }
  *out = x;
  return true;
}

static bool parse_double(const char *name, const char *v, double lo, double hi, double *out) {
  char *end;
  errno = 0;
  double x = strtod(v, &end);
  if (errno || *end || end == v || !(x >= lo && x <= hi)) {
    fprintf(stderr, "pw-bench: %s must be a number in [%g, %g]: '%s'\n", name, lo, hi, v);
    return false;
  }
  *out = x;
  return true;
}

static bool parse_cpus(const char *v) {
  char *copy = strdup(v), *save = NULL;
  bool ok = copy != NULL;
  for (char *t = copy ? strtok_r(copy, ",", &save) : NULL; ok && t;
       t = strtok_r(NULL, ",", &save)) {
    long c;
    ok = O.ncpus < MAX_CPUS && parse_long("--cpu", t, 0, CPU_SETSIZE - 1, &c);
    if (ok) O.cpus[O.ncpus++] = (int)c;
  }
  free(copy);
  return ok && O.ncpus > 0;
}

static bool parse_mode(const char *v) {
  for (int m = 0; m < 4; m++)
    if (!strcmp(v, mode_names[m])) {
      O.mode = (enum mode)m;
      return true;
    }
  fprintf(stderr, "pw-bench: unknown mode '%s'\n", v);
  return false;
}

/* One option and its value; false on any error. */
static bool parse_opt(const char *a, const char *v) {
  if (!strcmp(a, "--host")) O.host = v;
  else if (!strcmp(a, "--path")) O.path = v;
  else if (!strcmp(a, "--port")) return parse_long(a, v, 1, 65535, &O.port);
  else if (!strcmp(a, "--conns")) return parse_long(a, v, 1, 10000000, &O.conns);
  else if (!strcmp(a, "--size")) return parse_long(a, v, 0, 1L << 30, &O.size);
  else if (!strcmp(a, "--pipeline")) return parse_long(a, v, 1, 1000000, &O.pipeline);
  else if (!strcmp(a, "--threads")) return parse_long(a, v, 1, 1024, &O.threads);
  else if (!strcmp(a, "--batch")) return parse_long(a, v, 1, 1000000, &O.batch);
  else if (!strcmp(a, "--topics")) return parse_long(a, v, 1, 1000000, &O.topics);
  else if (!strcmp(a, "--server-pid")) return parse_long(a, v, 1, 1L << 30, &O.server_pid);
  else if (!strcmp(a, "--duration")) return parse_double(a, v, 0, 1e6, &O.duration);
  else if (!strcmp(a, "--warmup")) return parse_double(a, v, 0, 1e6, &O.warmup);
  else if (!strcmp(a, "--timeout")) return parse_double(a, v, 0.001, 1e6, &O.timeout);
  else if (!strcmp(a, "--cpu")) return parse_cpus(v);
  else {
    fprintf(stderr, "pw-bench: unknown option %s\n", a);
    return false;
  }
  return true;
}

static bool parse_args(int argc, char **argv) {
  if (argc < 2 || !parse_mode(argv[1])) return false;
  for (int i = 2; i < argc; i++) {
    if (!strcmp(argv[i], "--json")) {
      O.json = true;
      continue;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "pw-bench: missing value for %s\n", argv[i]);
      return false;
    }
    if (!parse_opt(argv[i], argv[i + 1])) return false;
    i++;
  }
  if (O.port < 0) {
    fprintf(stderr, "pw-bench: --port is required\n");
    return false;
  }
  if (O.mode == M_ECHO && O.size < 8) {
    fprintf(stderr, "pw-bench: echo needs --size >= 8 (the send time rides in the payload)\n");
    return false;
  }
  if (O.mode != M_IDLE && O.duration <= 0) {
    fprintf(stderr, "pw-bench: --duration must be > 0 in this mode\n");
    return false;
  }
  if (O.threads > O.conns) O.threads = O.conns;
  return true;
}

/* ------------------------------------------------------------------------------------ */
/* Clocks, bytes                                                                        */

static inline uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double cpu_self_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline uint64_t get_le64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

static inline void put_le64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t rng_next(uint64_t *s) {
  /* xorshift64*: masks and keys need to be unpredictable to no one here, only cheap. */
  uint64_t x = *s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * 0x2545F4914F6CDD1DULL;
}

/* ------------------------------------------------------------------------------------ */
/* Latency histogram: log-linear buckets (64 per power of two, so a reported value is    */
/* within 1.6% of the true one) instead of keeping and sorting millions of samples.      */

#define H_SUB 64
#define H_BUCKETS (58 * H_SUB)

struct hist {
  uint64_t n, max;
  uint64_t c[H_BUCKETS];
};

static inline unsigned h_index(uint64_t v) {
  if (v < 2 * H_SUB) return (unsigned)v;
  unsigned shift = (unsigned)(63 - __builtin_clzll(v)) - 6; /* v >> shift is 64..127 */
  return shift * H_SUB + (unsigned)(v >> shift);
}

static uint64_t h_value(unsigned idx) {
  if (idx < 2 * H_SUB) return idx;
  unsigned shift = idx / H_SUB - 1;
  uint64_t top = idx - (uint64_t)shift * H_SUB;
  return (top << shift) + (((uint64_t)1 << shift) - 1) / 2; /* middle of the bucket */
}

static inline void hist_add(struct hist *h, uint64_t v) {
  h->c[h_index(v)]++;
  h->n++;
  if (v > h->max) h->max = v;
}

static void hist_merge(struct hist *into, const struct hist *h) {
  for (unsigned i = 0; i < H_BUCKETS; i++) into->c[i] += h->c[i];
  into->n += h->n;
  if (h->max > into->max) into->max = h->max;
}

static uint64_t hist_pct(const struct hist *h, double q) {
  if (h->n == 0) return 0;
  double r = q * (double)h->n;
  uint64_t rank = (uint64_t)r, acc = 0;
  if ((double)rank < r || rank == 0) rank++;
  for (unsigned i = 0; i < H_BUCKETS; i++) {
    acc += h->c[i];
    if (acc >= rank) return h_value(i) < h->max ? h_value(i) : h->max;
  }
  return h->max;
}

/* ------------------------------------------------------------------------------------ */
/* Connections and threads                                                              */

enum phase { PH_OPEN, PH_WARMUP, PH_MEASURE, PH_STOP };
enum cstate { CS_NEW, CS_CONNECTING, CS_HS_SEND, CS_HS_READ, CS_OPEN, CS_CLOSING, CS_DONE };

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define RBUF_SIZE (256 * 1024)
#define MAXEV 512
#define PRE_MAX 24  /* bytes of each message kept: timestamp, sequence, producer */
#define SUB_HEAD 17 /* sub payload: ts(8) seq(8) producer(1) */
#define CLOSE_WAIT_NS (5 * 1000000000ull)

/* Handshake state: exists only while a connection upgrades (connect mode keeps it). */
struct hs {
  char req[512];
  uint16_t req_len, req_off, resp_len;
  char accept[32];
  char resp[2048];
};

struct thread;

struct conn {
  int fd;
  uint8_t state;
  /* streaming frame parser: server frames may be split anywhere */
  bool in_payload, fin;
  uint8_t hdr_len, op, msg_op, pre_len, ctl_len;
  uint8_t hdr[14];
  uint8_t pre[PRE_MAX];
  uint8_t ctl[125];
  uint32_t due;     /* echo: messages to send after this read */
  uint16_t nlast;   /* sub: entries in last */
  uint64_t left;    /* payload bytes left in the current frame */
  uint64_t msg_len; /* payload bytes of the current message so far */
  uint64_t t_start; /* connect() time, then (connect mode) close-frame time */
  uint64_t *last;   /* sub: per producer, last sequence + 1 (0 = none yet) */
  struct hs *hs;
  uint8_t *out; /* bytes the socket did not take yet */
  size_t out_off, out_len, out_cap;
};

struct stats {
  uint64_t msgs, bytes, hs_ok;                   /* measured window only */
  uint64_t established, hs_fail, closes, errors; /* whole run */
  uint64_t bad, gaps, reorders, dups, pings;
};

struct thread {
  int idx;
  pthread_t tid;
  int ep;
  struct conn *conns;
  long n, next, hs_inflight, hs_limit;
  long *restart; /* connect mode: slots to start again at the top of the loop */
  long nrestart;
  bool ready, kicked, measuring;
  uint64_t rng, last_scan;
  struct stats st;
  struct hist *lat;
  uint8_t *rbuf, *sbuf;
  size_t sbuf_cap;
  struct epoll_event *evs;
};

static _Atomic int g_phase = PH_OPEN;
static atomic_long g_ready;   /* threads whose connections are all up (or failed) */
static atomic_long g_dropped; /* open connections lost (closed by either side) */
static atomic_int g_errs_printed;
static volatile sig_atomic_t g_interrupted;
static struct sockaddr_in g_addr;
static char g_host_hdr[300];
static uint8_t *g_echo_tpl; /* one masked echo frame; the timestamp is patched in */
static size_t g_echo_len, g_echo_off;
static uint8_t g_mask[4];

static void report_error(const char *what, int err) {
  /* A failing server fails thousands of connections the same way: show the first few. */
  int k = atomic_fetch_add(&g_errs_printed, 1);
  if (k < 5) fprintf(stderr, "pw-bench: %s%s%s\n", what, err ? ": " : "", err ? strerror(err) : "");
  else if (k == 5) fprintf(stderr, "pw-bench: (further errors only counted)\n");
}

static int set_events(struct thread *th, struct conn *c, uint32_t ev) {
  struct epoll_event e = {.events = ev, .data.ptr = c};
  return epoll_ctl(th->ep, EPOLL_CTL_MOD, c->fd, &e);
}

static bool in_handshake(const struct conn *c) {
  return c->state == CS_CONNECTING || c->state == CS_HS_SEND || c->state == CS_HS_READ;
}

/* Release everything; in connect mode queue the slot to be started again. */
static void conn_close(struct thread *th, struct conn *c) {
  if (c->fd >= 0) close(c->fd); /* also leaves the epoll set: the descriptor is not shared */
  c->fd = -1;
  if (in_handshake(c)) th->hs_inflight--;
  free(c->out);
  c->out = NULL;
  c->out_off = c->out_len = c->out_cap = 0;
  if (O.mode != M_CONNECT) {
    free(c->hs);
    c->hs = NULL;
  } else {
    th->restart[th->nrestart++] = c - th->conns;
  }
  c->state = CS_DONE;
}

/* The connection failed: count it where it belongs, then close it. Returns -1. */
static int conn_fail(struct thread *th, struct conn *c, const char *what, int err) {
  if (in_handshake(c)) {
    th->st.hs_fail++;
  } else {
    th->st.errors++;
    if (c->state == CS_OPEN) atomic_fetch_add(&g_dropped, 1);
  }
  report_error(what, err);
  conn_close(th, c);
  return -1;
}

/* ------------------------------------------------------------------------------------ */
/* Output: try the socket at once; keep what it does not take until EPOLLOUT.           */

static int out_append(struct conn *c, const uint8_t *p, size_t n) {
  if (c->out_off + c->out_len + n > c->out_cap) {
    memmove(c->out, c->out + c->out_off, c->out_len);
    c->out_off = 0;
    if (c->out_len + n > c->out_cap) {
      size_t cap = c->out_cap ? c->out_cap : 4096;
      while (cap < c->out_len + n) cap *= 2;
      uint8_t *b = realloc(c->out, cap);
      if (!b) return -1;
      c->out = b;
      c->out_cap = cap;
    }
  }
  memcpy(c->out + c->out_off + c->out_len, p, n);
  c->out_len += n;
  return 0;
}

static int out_send(struct thread *th, struct conn *c, const uint8_t *p, size_t n) {
  if (c->out_len) /* keep order: behind what is already waiting */
    return out_append(c, p, n) ? conn_fail(th, c, "out of memory", 0) : 0;
  ssize_t w;
  do w = send(c->fd, p, n, MSG_NOSIGNAL);
  while (w < 0 && errno == EINTR);
  if (w == (ssize_t)n) return 0;
  if (w < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK) return conn_fail(th, c, "send", errno);
    w = 0;
  }
  if (out_append(c, p + w, n - (size_t)w)) return conn_fail(th, c, "out of memory", 0);
  if (set_events(th, c, EPOLLIN | EPOLLOUT)) return conn_fail(th, c, "epoll_ctl", errno);
  return 0;
}

static int out_flush(struct thread *th, struct conn *c) {
  while (c->out_len) {
    ssize_t w = send(c->fd, c->out + c->out_off, c->out_len, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
      return conn_fail(th, c, "send", errno);
    }
    c->out_off += (size_t)w;
    c->out_len -= (size_t)w;
  }
  c->out_off = 0;
  if (set_events(th, c, EPOLLIN)) return conn_fail(th, c, "epoll_ctl", errno);
  return 0;
}

/* A masked control frame (client frames must be masked, RFC 6455 5.3). */
static int send_control(struct thread *th, struct conn *c, uint8_t op, const uint8_t *p, size_t n) {
  uint8_t f[6 + 125];
  uint32_t m = (uint32_t)rng_next(&th->rng);
  f[0] = (uint8_t)(0x80 | op);
  f[1] = (uint8_t)(0x80 | n);
  memcpy(f + 2, &m, 4);
  for (size_t i = 0; i < n; i++) f[6 + i] = p[i] ^ f[2 + (i & 3)];
  return out_send(th, c, f, 6 + n);
}

/* Send k echo messages: copies of the template, each with the send time in bytes 0-7. */
static int echo_send(struct thread *th, struct conn *c, unsigned long k) {
  while (k) {
    size_t fit = th->sbuf_cap / g_echo_len;
    size_t b = k < fit ? k : fit;
    uint64_t ts = now_ns();
    for (size_t j = 0; j < b; j++) {
      uint8_t *f = th->sbuf + j * g_echo_len;
      memcpy(f, g_echo_tpl, g_echo_len);
      put_le64(f + g_echo_off, ts);
      for (int i = 0; i < 8; i++) /* the payload starts at mask byte 0 */
        f[g_echo_off + i] ^= g_mask[i & 3];
    }
    if (out_send(th, c, th->sbuf, b * g_echo_len)) return -1;
    k -= b;
  }
  return 0;
}

/* ------------------------------------------------------------------------------------ */
/* Messages received                                                                    */

/* Sequence check per connection and producer; the first message of a producer is the
 * baseline (a subscriber may join mid-stream). With T topics a subscriber's numbers step by T. */
static void seq_track(struct thread *th, struct conn *c, unsigned prod, uint64_t seq) {
  if (prod >= c->nlast) {
    uint64_t *l = realloc(c->last, (prod + 1) * sizeof *l);
    if (!l) return;
    memset(l + c->nlast, 0, (prod + 1 - c->nlast) * sizeof *l);
    c->last = l;
    c->nlast = (uint16_t)(prod + 1);
  }
  uint64_t step = (uint64_t)O.topics;
  uint64_t next = c->last[prod]; /* last + T, or 0 */
  if (next == 0 || seq == next) c->last[prod] = seq + step;
  else if (seq > next) {
    th->st.gaps += (seq - next + step - 1) / step;
    c->last[prod] = seq + step;
  } else if (seq + step == next) th->st.dups++;
  else th->st.reorders++;
}

static void on_message(struct thread *th, struct conn *c, uint64_t now) {
  if (O.mode == M_ECHO) {
    if (c->msg_len != (uint64_t)O.size || c->pre_len < 8) {
      th->st.bad++;
    } else if (th->measuring) {
      uint64_t ts = get_le64(c->pre);
      hist_add(th->lat, now > ts ? now - ts : 0);
      th->st.msgs++;
      th->st.bytes += c->msg_len;
    }
    c->due++; /* keep the pipeline full even after a bad echo */
  } else if (O.mode == M_SUB) {
    if (c->pre_len < SUB_HEAD) {
      th->st.bad++;
      return;
    }
    uint64_t ts = get_le64(c->pre);
    seq_track(th, c, c->pre[16], get_le64(c->pre + 8));
    if (th->measuring) {
      hist_add(th->lat, now > ts ? now - ts : 0);
      th->st.msgs++;
      th->st.bytes += c->msg_len;
    }
  }
  /* idle and connect: data is not expected and is ignored */
}

/* The server closed the WebSocket: answer with its code and end the connection. */
static int on_close_frame(struct thread *th, struct conn *c) {
  th->st.closes++;
  atomic_fetch_add(&g_dropped, 1);
  send_control(th, c, 0x8, c->ctl, c->ctl_len >= 2 ? 2 : 0);
  if (c->state != CS_DONE) conn_close(th, c);
  return -1;
}

static int frame_done(struct thread *th, struct conn *c, uint64_t now) {
  switch (c->op) {
  case 0x9: th->st.pings++; return send_control(th, c, 0xA, c->ctl, c->ctl_len);
  case 0xA: return 0;
  case 0x8: return on_close_frame(th, c);
  default:
    if (c->fin) {
      on_message(th, c, now);
      c->msg_op = 0;
    }
    return 0;
  }
}

/* ------------------------------------------------------------------------------------ */
/* Frame parser for server frames: unmasked, 7/16/64-bit lengths, split anywhere.        */

static inline unsigned hdr_need(const uint8_t *h) {
  unsigned l7 = h[1] & 0x7F;
  return 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + ((h[1] & 0x80) ? 4 : 0);
}

/* Take a complete header; false on a protocol violation. */
static bool hdr_take(struct conn *c, const uint8_t *h) {
  unsigned l7 = h[1] & 0x7F;
  uint64_t len = l7;
  if ((h[0] & 0x70) || (h[1] & 0x80)) /* no extension negotiated; servers never mask */
    return false;
  if (l7 == 126) len = (uint64_t)h[2] << 8 | h[3];
  else if (l7 == 127)
    for (int k = 0; k < 8; k++) len = (k ? len << 8 : 0) | h[2 + k];
  c->op = h[0] & 0x0F;
  c->fin = (h[0] & 0x80) != 0;
  c->left = len;
  if (c->op & 0x8) {
    if (len > 125 || !c->fin || c->op > 0xA) return false;
    c->ctl_len = 0;
  } else if (c->op == 1 || c->op == 2) {
    if (c->msg_op) return false;
    c->msg_op = c->op;
    c->pre_len = 0;
    c->msg_len = len;
  } else if (c->op == 0 && c->msg_op) {
    c->msg_len += len;
  } else {
    return false;
  }
  c->in_payload = true;
  return true;
}

static void payload_take(struct conn *c, const uint8_t *p, size_t n) {
  if (c->op & 0x8) {
    memcpy(c->ctl + c->ctl_len, p, n); /* n <= left <= 125 */
    c->ctl_len = (uint8_t)(c->ctl_len + n);
  } else if (c->pre_len < PRE_MAX) {
    size_t k = n < (size_t)(PRE_MAX - c->pre_len) ? n : (size_t)(PRE_MAX - c->pre_len);
    memcpy(c->pre + c->pre_len, p, k);
    c->pre_len = (uint8_t)(c->pre_len + k);
  }
}

/* Returns -1 when the connection ended while parsing. */
static int rx_parse(struct thread *th, struct conn *c, const uint8_t *p, size_t n, uint64_t now) {
  size_t i = 0;
  while (i < n) {
    if (!c->in_payload) {
      size_t avail = n - i;
      if (c->hdr_len == 0 && avail >= 2 && avail >= hdr_need(p + i)) {
        if (!hdr_take(c, p + i)) return conn_fail(th, c, "protocol error in a server frame", 0);
        i += hdr_need(p + i);
      } else {
        c->hdr[c->hdr_len++] = p[i++];
        if (c->hdr_len < 2 || c->hdr_len < hdr_need(c->hdr)) continue;
        c->hdr_len = 0;
        if (!hdr_take(c, c->hdr)) return conn_fail(th, c, "protocol error in a server frame", 0);
      }
    } else {
      size_t take = n - i < c->left ? n - i : (size_t)c->left;
      payload_take(c, p + i, take);
      i += take;
      c->left -= take;
    }
    if (c->in_payload && c->left == 0) {
      c->in_payload = false;
      if (frame_done(th, c, now)) return -1;
    }
  }
  return 0;
}

/* ------------------------------------------------------------------------------------ */
/* Handshake                                                                            */

static void b64(const uint8_t *in, int n, char *out) {
  EVP_EncodeBlock((unsigned char *)out, in, n);
}

/* A random key per connection and the accept value the server must answer with. */
static void make_key(struct thread *th, char key[32], char accept[32]) {
  uint8_t raw[16], digest[SHA_DIGEST_LENGTH];
  char cat[96];
  for (int i = 0; i < 16; i += 8) {
    uint64_t r = rng_next(&th->rng);
    memcpy(raw + i, &r, 8);
  }
  b64(raw, 16, key);
  snprintf(cat, sizeof cat, "%s%s", key, WS_GUID);
  SHA1((const unsigned char *)cat, strlen(cat), digest);
  b64(digest, SHA_DIGEST_LENGTH, accept);
}

/* Send (the rest of) the upgrade request: 1 sent, 0 the socket would block (or is still
 * connecting), -1 the connection failed and was closed. */
static int hs_send_request(struct thread *th, struct conn *c) {
  struct hs *h = c->hs;
  while (h->req_off < h->req_len) {
    ssize_t w = send(c->fd, h->req + h->req_off, h->req_len - h->req_off, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
      return conn_fail(th, c, "connect/send upgrade request", errno);
    }
    h->req_off = (uint16_t)(h->req_off + w);
  }
  c->state = CS_HS_READ;
  return 1;
}

static int conn_start(struct thread *th, struct conn *c, uint64_t now) {
  c->in_payload = false; /* a fresh parser: connect mode reuses slots */
  c->hdr_len = c->msg_op = 0;
  c->due = 0;
  c->t_start = now;
  if (!c->hs && !(c->hs = malloc(sizeof *c->hs))) {
    report_error("out of memory", 0);
    return -1;
  }
  char key[32];
  make_key(th, key, c->hs->accept);
  int len = snprintf(c->hs->req, sizeof c->hs->req,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
                     O.path, g_host_hdr, key);
  c->hs->req_len = (uint16_t)len;
  c->hs->req_off = c->hs->resp_len = 0;
  c->state = CS_CONNECTING;
  th->hs_inflight++;
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) return conn_fail(th, c, "socket", errno);
  int one = 1; /* small frames, possibly several in flight: no Nagle delay (connect mode
                  * writes only after the peer's answer, when Nagle never waits) */
  if (O.mode != M_CONNECT) setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(c->fd, (struct sockaddr *)&g_addr, sizeof g_addr) != 0 && errno != EINPROGRESS)
    return conn_fail(th, c, "connect", errno);
  /* On loopback the handshake has usually completed inside connect(): send the request now
     * and skip a wakeup, a getsockopt and an epoll_ctl per connection. */
  int sent = hs_send_request(th, c);
  if (sent < 0) return -1;
  struct epoll_event e = {.events = sent ? EPOLLIN : EPOLLOUT, .data.ptr = c};
  if (epoll_ctl(th->ep, EPOLL_CTL_ADD, c->fd, &e)) return conn_fail(th, c, "epoll_ctl", errno);
  return 0;
}

/* Connect finished (EPOLLOUT/ERR) or the request did not fit: send (the rest of) it. */
static void hs_writable(struct thread *th, struct conn *c) {
  if (c->state == CS_CONNECTING) {
    int err = 0;
    socklen_t l = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l) || err) {
      conn_fail(th, c, "connect", err ? err : errno);
      return;
    }
    c->state = CS_HS_SEND;
  }
  if (hs_send_request(th, c) == 1 && set_events(th, c, EPOLLIN))
    conn_fail(th, c, "epoll_ctl", errno);
}

/* NULL if the head is a valid 101 for our key, else what is wrong. */
static const char *hs_verify(const char *head, const char *end, const char *accept) {
  if (strncmp(head, "HTTP/1.1 101", 12) || (head[12] != ' ' && head[12] != '\r'))
    return "handshake refused (status is not 101)";
  for (const char *l = strstr(head, "\r\n") + 2; l < end; l = strstr(l, "\r\n") + 2) {
    const char *eol = strstr(l, "\r\n");
    const char *colon = memchr(l, ':', (size_t)(eol - l));
    if (!colon || colon - l != 20 || strncasecmp(l, "Sec-WebSocket-Accept", 20)) continue;
    const char *v = colon + 1, *ve = eol;
    while (v < ve && (*v == ' ' || *v == '\t')) v++;
    while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
    size_t al = strlen(accept);
    return (size_t)(ve - v) == al && !memcmp(v, accept, al) ? NULL : "wrong Sec-WebSocket-Accept";
  }
  return "no Sec-WebSocket-Accept in the 101 response";
}

static void conn_opened(struct thread *th, struct conn *c, uint64_t now) {
  th->hs_inflight--;
  th->st.established++;
  c->state = CS_OPEN;
  if (O.mode != M_CONNECT) {
    free(c->hs);
    c->hs = NULL;
    if (O.mode == M_ECHO && th->kicked) echo_send(th, c, (unsigned long)O.pipeline);
    return;
  }
  if (th->measuring) {
    th->st.hs_ok++;
    hist_add(th->lat, now - c->t_start);
  }
  /* End the cycle the polite way: close frame, then wait for the server's FIN. */
  static const uint8_t code[2] = {0x03, 0xE8}; /* 1000 */
  if (send_control(th, c, 0x8, code, 2) == 0) {
    c->state = CS_CLOSING;
    c->t_start = now;
  }
}

static void hs_readable(struct thread *th, struct conn *c) {
  struct hs *h = c->hs;
  ssize_t n = recv(c->fd, h->resp + h->resp_len, sizeof h->resp - 1 - h->resp_len, 0);
  if (n <= 0) {
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    conn_fail(th, c, n ? "recv handshake" : "server closed during the handshake", n ? errno : 0);
    return;
  }
  h->resp_len = (uint16_t)(h->resp_len + n);
  h->resp[h->resp_len] = '\0';
  char *end = memmem(h->resp, h->resp_len, "\r\n\r\n", 4);
  if (!end) {
    if (h->resp_len >= sizeof h->resp - 1) conn_fail(th, c, "handshake response head too large", 0);
    return;
  }
  size_t head = (size_t)(end + 4 - h->resp), extra = h->resp_len - head;
  const char *bad = hs_verify(h->resp, end + 2, h->accept);
  if (bad) {
    conn_fail(th, c, bad, 0);
    return;
  }
  uint64_t now = now_ns();
  memcpy(th->rbuf, h->resp + head, extra); /* frames that came with the 101 */
  conn_opened(th, c, now);
  if (extra && c->state == CS_OPEN) rx_parse(th, c, th->rbuf, extra, now);
}

/* ------------------------------------------------------------------------------------ */
/* Event handling                                                                       */

static void open_readable(struct thread *th, struct conn *c) {
  /* Level-triggered: one recv per wakeup unless it filled the buffer (saves the EAGAIN
     * recv); a few rounds at most, so one busy connection cannot starve the others. */
  for (int round = 0; round < 4; round++) {
    ssize_t n = recv(c->fd, th->rbuf, RBUF_SIZE, 0);
    if (n > 0) {
      if (rx_parse(th, c, th->rbuf, (size_t)n, now_ns())) return;
      if (n < RBUF_SIZE) break;
      continue;
    }
    if (n == 0) {
      conn_fail(th, c, "server closed the connection without a close frame", 0);
      return;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    conn_fail(th, c, "recv", errno);
    return;
  }
  if (c->due) {
    unsigned long k = c->due;
    c->due = 0;
    if (atomic_load_explicit(&g_phase, memory_order_relaxed) != PH_STOP) echo_send(th, c, k);
  }
}

/* connect mode: after our close frame, read and drop until the server's FIN. */
static void closing_readable(struct thread *th, struct conn *c) {
  for (;;) {
    ssize_t n = recv(c->fd, th->rbuf, RBUF_SIZE, 0);
    if (n > 0) continue;
    if (n == 0) {
      conn_close(th, c);
      return;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) conn_fail(th, c, "recv while closing", errno);
    return;
  }
}

static void handle_event(struct thread *th, struct conn *c, uint32_t ev) {
  switch (c->state) {
  case CS_CONNECTING:
  case CS_HS_SEND: hs_writable(th, c); break;
  case CS_HS_READ: hs_readable(th, c); break;
  case CS_OPEN:
    if ((ev & EPOLLOUT) && out_flush(th, c)) return;
    if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) open_readable(th, c);
    break;
  case CS_CLOSING:
    if ((ev & EPOLLOUT) && out_flush(th, c)) return;
    closing_readable(th, c);
    break;
  default: break; /* a stale event for a connection closed earlier in this batch */
  }
}

static void check_timeouts(struct thread *th, uint64_t now) {
  uint64_t hs_ns = (uint64_t)(O.timeout * 1e9);
  long upto = O.mode == M_CONNECT ? th->n : th->next;
  for (long i = 0; i < upto; i++) {
    struct conn *c = &th->conns[i];
    if (in_handshake(c) && now - c->t_start > hs_ns) conn_fail(th, c, "handshake timed out", 0);
    else if (c->state == CS_CLOSING && now - c->t_start > CLOSE_WAIT_NS)
      conn_fail(th, c, "server did not close after our close frame", 0);
  }
}

/* Open phase: keep up to hs_limit handshakes in flight until every connection started. */
static void open_more(struct thread *th) {
  uint64_t now = now_ns();
  while (th->next < th->n && th->hs_inflight < th->hs_limit)
    conn_start(th, &th->conns[th->next++], now);
  if (!th->ready && th->next == th->n && th->hs_inflight == 0) {
    th->ready = true;
    atomic_fetch_add(&g_ready, 1);
  }
}

/* connect mode: start again the slots whose cycle ended (not recursively from the close,
 * and only those queued before this pass, so an instant refusal cannot spin here). */
static void restart_slots(struct thread *th) {
  long k = th->nrestart;
  uint64_t now = now_ns();
  th->nrestart = 0;
  long *todo = th->restart + th->n; /* second half: a snapshot */
  memcpy(todo, th->restart, (size_t)k * sizeof *todo);
  for (long i = 0; i < k; i++) conn_start(th, &th->conns[todo[i]], now);
}

static void kick_echo(struct thread *th) {
  th->kicked = true;
  for (long i = 0; i < th->n; i++)
    if (th->conns[i].state == CS_OPEN) echo_send(th, &th->conns[i], (unsigned long)O.pipeline);
}

static void pin_thread(struct thread *th) {
  if (O.ncpus == 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(O.cpus[th->idx % O.ncpus], &set);
  if (pthread_setaffinity_np(pthread_self(), sizeof set, &set))
    fprintf(stderr, "pw-bench: cannot pin thread %d to CPU %d\n", th->idx,
            O.cpus[th->idx % O.ncpus]);
}

static void *thread_main(void *arg) {
  struct thread *th = arg;
  struct epoll_event *evs = th->evs;
  pin_thread(th);
  if (O.mode == M_CONNECT) {
    th->next = th->n;
    uint64_t now = now_ns();
    for (long i = 0; i < th->n; i++) conn_start(th, &th->conns[i], now);
    th->ready = true;
    atomic_fetch_add(&g_ready, 1);
  }
  for (;;) {
    int ph = atomic_load_explicit(&g_phase, memory_order_acquire);
    if (ph == PH_STOP) break;
    th->measuring = ph == PH_MEASURE;
    if (O.mode == M_CONNECT) restart_slots(th);
    else if (!th->ready) open_more(th);
    if (O.mode == M_ECHO && ph >= PH_WARMUP && !th->kicked) kick_echo(th);
    int n = epoll_wait(th->ep, evs, MAXEV, 10);
    for (int i = 0; i < n; i++) handle_event(th, evs[i].data.ptr, evs[i].events);
    uint64_t now = now_ns();
    if (now - th->last_scan > 100000000u) {
      th->last_scan = now;
      check_timeouts(th, now);
    }
  }
  return NULL;
}

/* ------------------------------------------------------------------------------------ */
/* Setup                                                                                */

static void raise_nofile(long want) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl)) return;
  if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < (rlim_t)want) {
    struct rlimit up = {(rlim_t)want, (rlim_t)want}; /* works when privileged */
    if (setrlimit(RLIMIT_NOFILE, &up) == 0) return;
  }
  if (rl.rlim_cur < (rlim_t)want) {
    rl.rlim_cur =
        rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= (rlim_t)want ? (rlim_t)want : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)want)
    fprintf(stderr, "pw-bench: descriptor limit %llu < %ld needed: expect failures\n",
            (unsigned long long)rl.rlim_cur, want);
}

/* One masked binary frame of O.size bytes; the payload is zeros (so the masked payload is
 * the mask repeated) except the send time, patched in per message. */
static bool build_echo_template(void) {
  size_t n = (size_t)O.size, h = n < 126 ? 2 : n < 65536 ? 4 : 10;
  g_echo_off = h + 4;
  g_echo_len = g_echo_off + n;
  g_echo_tpl = malloc(g_echo_len);
  if (!g_echo_tpl) return false;
  uint64_t s = now_ns() | 1;
  uint64_t r = rng_next(&s);
  memcpy(g_mask, &r, 4);
  g_echo_tpl[0] = 0x82;
  if (h == 2) {
    g_echo_tpl[1] = (uint8_t)(0x80 | n);
  } else if (h == 4) {
    g_echo_tpl[1] = 0x80 | 126;
    g_echo_tpl[2] = (uint8_t)(n >> 8);
    g_echo_tpl[3] = (uint8_t)n;
  } else {
    g_echo_tpl[1] = 0x80 | 127;
    for (int i = 0; i < 8; i++) g_echo_tpl[2 + i] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
  }
  memcpy(g_echo_tpl + h, g_mask, 4);
  for (size_t i = 0; i < n; i++) g_echo_tpl[g_echo_off + i] = g_mask[i & 3];
  return true;
}

static bool thread_init(struct thread *th, int idx, long n) {
  th->idx = idx;
  th->n = n;
  th->hs_limit = O.batch / O.threads > 0 ? O.batch / O.threads : 1;
  th->rng = (now_ns() ^ (uint64_t)getpid() << 32) + (uint64_t)idx * 0x9E3779B97F4A7C15ULL;
  th->rng |= 1;
  th->ep = epoll_create1(EPOLL_CLOEXEC);
  th->conns = calloc((size_t)n, sizeof *th->conns);
  th->lat = calloc(1, sizeof *th->lat);
  th->rbuf = malloc(RBUF_SIZE);
  th->evs = malloc(MAXEV * sizeof *th->evs);
  th->sbuf_cap = g_echo_len > RBUF_SIZE ? g_echo_len : RBUF_SIZE;
  th->sbuf = malloc(th->sbuf_cap);
  th->restart = O.mode == M_CONNECT ? malloc(2 * (size_t)n * sizeof *th->restart) : NULL;
  if (th->ep < 0 || !th->conns || !th->lat || !th->rbuf || !th->sbuf || !th->evs ||
      (O.mode == M_CONNECT && !th->restart))
    return false;
  for (long i = 0; i < n; i++) th->conns[i].fd = -1;
  return true;
}

static void thread_free(struct thread *th) {
  for (long i = 0; i < th->n; i++) {
    struct conn *c = &th->conns[i];
    if (c->fd >= 0) close(c->fd);
    free(c->out);
    free(c->hs);
    free(c->last);
  }
  free(th->conns);
  free(th->lat);
  free(th->rbuf);
  free(th->sbuf);
  free(th->restart);
  free(th->evs);
  close(th->ep);
}

static long read_vmrss_kib(long pid) {
  char path[64], line[256];
  long kib = -1;
  snprintf(path, sizeof path, "/proc/%ld/status", pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, "VmRSS:", 6)) {
      kib = strtol(line + 6, NULL, 10);
      break;
    }
  fclose(f);
  return kib;
}

/* utime + stime of a process, seconds; -1 if unreadable. */
static double read_cpu_pid_s(long pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  char *p = strrchr(buf, ')'); /* the command name may contain spaces */
  unsigned long ut = 0, stt = 0;
  if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &stt) != 2)
    return -1;
  return (double)(ut + stt) / (double)sysconf(_SC_CLK_TCK);
}

static void on_signal(int sig) {
  (void)sig;
  g_interrupted = 1;
}

/* Sleep up to `s` seconds; false if interrupted. */
static bool sleep_for(double s) {
  uint64_t end = now_ns() + (uint64_t)(s * 1e9);
  while (!g_interrupted) {
    uint64_t t = now_ns();
    if (t >= end) return true;
    uint64_t step = end - t < 20000000u ? end - t : 20000000u;
    struct timespec ts = {0, (long)step};
    nanosleep(&ts, NULL);
  }
  return false;
}

/* ------------------------------------------------------------------------------------ */
/* Reporting: the same key/value pairs as "k=v" words or as one JSON object.             */

static void kv_begin(void) {
  if (O.json) printf("{\"mode\":\"%s\"", mode_names[O.mode]);
  else printf("pw-bench %s:", mode_names[O.mode]);
}

static void kv_num(const char *k, double v, int prec) {
  printf(O.json ? ",\"%s\":%.*f" : " %s=%.*f", k, prec, v);
}

static void kv_str(const char *k, const char *v) {
  printf(O.json ? ",\"%s\":\"%s\"" : " %s=%s", k, v);
}

static void kv_lat(const char *prefix, const struct hist *h) {
  static const struct {
    const char *name;
    double q;
  } qs[] = {{"p50", 0.50}, {"p99", 0.99}, {"p999", 0.999}};
  char k[64];
  for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
    snprintf(k, sizeof k, "%s_%s_us", prefix, qs[i].name);
    kv_num(k, (double)hist_pct(h, qs[i].q) / 1e3, 1);
  }
  snprintf(k, sizeof k, "%s_max_us", prefix);
  kv_num(k, (double)h->max / 1e3, 1);
}

static void kv_end(const char *human_tail) {
  if (O.json) printf("}\n");
  else printf("%s\n", human_tail ? human_tail : "");
  fflush(stdout);
}

struct run {
  struct stats st;
  struct hist *lat;
  double open_s, window_s, cpu_self, cpu_server;
  long rss_before, rss_after, rss_end, dropped_at_rss;
};

static void report_common(const struct run *r) {
  kv_str("host", O.host);
  kv_num("port", (double)O.port, 0);
  kv_num("conns", (double)O.conns, 0);
  kv_num("established", (double)r->st.established, 0);
  kv_num("threads", (double)O.threads, 0);
}

/* CPU of both sides over the window; the server's CPU per message (or handshake) does not
 * depend on whether pw-bench or the server was the limit. */
static void report_cpu(const struct run *r, uint64_t ops) {
  kv_num("cpu_pwbench_pct", r->window_s > 0 ? 100 * r->cpu_self / r->window_s : 0, 0);
  if (r->cpu_server < 0) return;
  kv_num("cpu_server_pct", r->window_s > 0 ? 100 * r->cpu_server / r->window_s : 0, 0);
  kv_num("server_cpu_us_per_op", ops ? r->cpu_server * 1e6 / (double)ops : 0, 2);
}

static void report(const struct run *r) {
  const struct stats *s = &r->st;
  double w = r->window_s > 0 ? r->window_s : 1;
  char tail[128] = "";
  kv_begin();
  report_common(r);
  switch (O.mode) {
  case M_ECHO:
    kv_num("size", (double)O.size, 0);
    kv_num("pipeline", (double)O.pipeline, 0);
    kv_num("duration_s", r->window_s, 2);
    kv_num("msgs", (double)s->msgs, 0);
    kv_num("msgs_per_s", (double)s->msgs / w, 0);
    kv_num("mbytes_per_s", (double)s->bytes / w / 1e6, 1);
    kv_lat("rtt", r->lat);
    kv_num("bad", (double)s->bad, 0);
    break;
  case M_SUB:
    kv_num("duration_s", r->window_s, 2);
    kv_num("msgs", (double)s->msgs, 0);
    kv_num("msgs_per_s", (double)s->msgs / w, 0);
    kv_num("mbytes_per_s", (double)s->bytes / w / 1e6, 1);
    kv_lat("lat", r->lat);
    kv_num("gaps", (double)s->gaps, 0);
    kv_num("reorders", (double)s->reorders, 0);
    kv_num("dups", (double)s->dups, 0);
    kv_num("bad", (double)s->bad, 0);
    break;
  case M_IDLE:
    kv_num("open_s", r->open_s, 2);
    kv_num("handshakes_per_s", r->open_s > 0 ? (double)s->established / r->open_s : 0, 0);
    kv_num("hold_s", O.duration, 1);
    if (r->rss_before >= 0) {
      long open_at_rss = (long)s->established - r->dropped_at_rss;
      kv_num("rss_before_kib", (double)r->rss_before, 0);
      kv_num("rss_after_kib", (double)r->rss_after, 0);
      kv_num("rss_end_kib", (double)r->rss_end, 0);
      kv_num("open_at_rss", (double)open_at_rss, 0);
      if (open_at_rss > 0 && r->rss_after >= 0) {
        double per = (double)(r->rss_after - r->rss_before) * 1024.0 / (double)open_at_rss;
        kv_num("bytes_per_idle_conn", per, 0);
        snprintf(tail, sizeof tail, " bytes per idle connection: %.0f", per);
      } else {
        snprintf(tail, sizeof tail, " bytes per idle connection: n/a (none open)");
      }
    } else {
      snprintf(tail, sizeof tail, " bytes per idle connection: n/a (no --server-pid)");
    }
    kv_num("pings", (double)s->pings, 0);
    break;
  case M_CONNECT:
    kv_num("duration_s", r->window_s, 2);
    kv_num("handshakes", (double)s->hs_ok, 0);
    kv_num("handshakes_per_s", (double)s->hs_ok / w, 0);
    kv_lat("hs", r->lat);
    break;
  }
  kv_num("hs_failed", (double)s->hs_fail, 0);
  kv_num("closes", (double)s->closes, 0);
  kv_num("errors", (double)s->errors, 0);
  if (O.mode != M_IDLE) report_cpu(r, O.mode == M_CONNECT ? s->hs_ok : s->msgs);
  if (g_interrupted) kv_str("interrupted", "yes");
  kv_end(tail);
}

/* ------------------------------------------------------------------------------------ */
/* Main: open, warm up, measure, stop, report.                                          */

static bool wait_ready(void) {
  while (atomic_load(&g_ready) < O.threads)
    if (!sleep_for(0.01)) return false;
  return true;
}

/* idle: RSS after all handshakes + 1 s settle, then hold. */
static void run_idle(struct run *r) {
  sleep_for(1.0);
  if (O.server_pid > 0) {
    r->rss_after = read_vmrss_kib(O.server_pid);
    r->dropped_at_rss = atomic_load(&g_dropped);
  }
  sleep_for(O.duration);
  if (O.server_pid > 0) r->rss_end = read_vmrss_kib(O.server_pid);
}

static void run_measured(struct run *r) {
  atomic_store(&g_phase, PH_WARMUP);
  sleep_for(O.warmup);
  double c0 = cpu_self_s(), s0 = O.server_pid > 0 ? read_cpu_pid_s(O.server_pid) : -1;
  uint64_t t0 = now_ns();
  atomic_store(&g_phase, PH_MEASURE);
  sleep_for(O.duration);
  atomic_store(&g_phase, PH_STOP);
  r->window_s = (double)(now_ns() - t0) / 1e9;
  r->cpu_self = cpu_self_s() - c0;
  double s1 = s0 >= 0 ? read_cpu_pid_s(O.server_pid) : -1;
  r->cpu_server = s0 >= 0 && s1 >= 0 ? s1 - s0 : -1;
}

static bool setup_addr(void) {
  memset(&g_addr, 0, sizeof g_addr);
  g_addr.sin_family = AF_INET;
  g_addr.sin_port = htons((uint16_t)O.port);
  if (inet_pton(AF_INET, O.host, &g_addr.sin_addr) != 1) {
    fprintf(stderr, "pw-bench: --host must be an IPv4 address: '%s'\n", O.host);
    return false;
  }
  snprintf(g_host_hdr, sizeof g_host_hdr, "%s:%ld", O.host, O.port);
  return true;
}

static void setup_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
}

int main(int argc, char **argv) {
  if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
    usage(stdout);
    return 0;
  }
  if (!parse_args(argc, argv)) {
    usage(stderr);
    return 2;
  }
  if (!setup_addr() || !build_echo_template()) return 2;
  setup_signals();
  raise_nofile(O.conns + 64);

  struct thread *ths = calloc((size_t)O.threads, sizeof *ths);
  struct run r = {.rss_before = -1, .rss_after = -1, .rss_end = -1, .cpu_server = -1};
  r.lat = calloc(1, sizeof *r.lat);
  if (!ths || !r.lat) return 2;
  for (long i = 0; i < O.threads; i++)
    if (!thread_init(&ths[i], (int)i, O.conns / O.threads + (i < O.conns % O.threads))) {
      fprintf(stderr, "pw-bench: out of memory or descriptors\n");
      return 2;
    }
  if (O.mode == M_IDLE && O.server_pid > 0 && (r.rss_before = read_vmrss_kib(O.server_pid)) < 0) {
    fprintf(stderr, "pw-bench: cannot read VmRSS of pid %ld\n", O.server_pid);
    return 2;
  }

  uint64_t t_open = now_ns();
  for (long i = 0; i < O.threads; i++)
    if (pthread_create(&ths[i].tid, NULL, thread_main, &ths[i])) {
      fprintf(stderr, "pw-bench: cannot create thread\n");
      return 2;
    }
  if (wait_ready()) {
    r.open_s = (double)(now_ns() - t_open) / 1e9;
    if (O.mode == M_IDLE) run_idle(&r);
    else run_measured(&r);
  }
  atomic_store(&g_phase, PH_STOP);
  for (long i = 0; i < O.threads; i++) {
    pthread_join(ths[i].tid, NULL);
    struct stats *a = &r.st, *b = &ths[i].st;
    a->msgs += b->msgs, a->bytes += b->bytes, a->hs_ok += b->hs_ok;
    a->established += b->established, a->hs_fail += b->hs_fail;
    a->closes += b->closes, a->errors += b->errors, a->bad += b->bad;
    a->gaps += b->gaps, a->reorders += b->reorders, a->dups += b->dups, a->pings += b->pings;
    hist_merge(r.lat, ths[i].lat);
    thread_free(&ths[i]);
  }
  report(&r);
  bool ok = !g_interrupted && r.st.errors == 0 && r.st.closes == 0 && r.st.bad == 0 &&
            (O.mode == M_CONNECT ? r.st.hs_ok > 0 : r.st.established >= (uint64_t)O.conns);
  free(ths);
  free(r.lat);
  free(g_echo_tpl);
  return ok ? 0 : 1;
}
