/* push_bench: what a message pushed from another thread costs, beside hand-overs that pay
 * one wakeup syscall per message.
 *
 *   push_bench [--mode cost|lat|both] [--impl pw,efd,pipe,cv] [--producers 1,4]
 *              [--rates 10000,100000,max] [--seconds S] [--warmup S] [--conns N] [--size B]
 *              [--block] [--max-queued BYTES] [--reps R]
 *              [--cpu-server N] [--cpu-client N] [--cpu-producers N]
 *
 * Implementations (all deliver the same 100 WebSocket connections, handshaken by the same
 * client code, over loopback TCP, with the same unmasked RFC 6455 frames):
 *   pw    pushwire: pw_send from producer threads (lock-free inbox, coalesced uv_async_t
 *         wakeup, drain, one writev per dirty connection).
 *   efd   the "one wakeup syscall per message" peer (uWebSockets' Loop::defer): the producer
 *         mallocs the framed message, appends it to a mutex-protected list, and writes an
 *         eventfd once per message; the consumer thread epolls the eventfd, takes the whole
 *         list and writes each dirty connection once.
 *   pipe  the same with a pipe write (1 byte) per message instead of an eventfd write.
 *   cv    the design note's mutex+condvar batch hand-over: the producer appends under the
 *         mutex and signals the condvar only if the consumer sleeps on it.
 * The peers' consumer corks like pushwire (one write per dirty connection per batch) and
 * bounds its queue at the pushwire inbox's default capacity (65,536 messages; full = the
 * send answers EAGAIN), so the figures differ only by the hand-over. Peer server sockets are
 * blocking: a full socket stalls the consumer (backpressure) instead of closing the client.
 *
 * Modes:
 *   cost  P producer threads (each --producers value) call send as fast as they can for
 *         --seconds, round-robin over the connections, --size byte binary payloads; EAGAIN
 *         is retried after sched_yield and counted (with --block, pw uses PW_BLOCK and the
 *         peers wait on a condvar that the consumer signals when it takes a batch).
 *         Prints producer ns per call (wall time of the loop / calls, mean over producers),
 *         CPU ns per call (thread CPU time / calls), the total call rate, the rate the client
 *         received at, the CPU time per delivered message of the consumer thread (pushwire:
 *         the loop thread, found through pw_call) and of the client thread, and the
 *         consumer's wakeups, batch size and rejections.
 *   lat   one producer sends at a fixed rate (each --rates value; "max" = no pacing), paced
 *         with clock_nanosleep every 1 ms; each payload starts with a CLOCK_MONOTONIC ns
 *         timestamp taken once before the first send attempt (EAGAIN waits count as
 *         latency). The client thread stamps each recv() and records receive - send for
 *         every message after --warmup. Prints p50/p99/p99.9/max and the achieved rate.
 * One line per configuration, then a summary of ratios against pw measured in this run.
 *
 * The client: one thread, epoll (level-triggered), non-blocking sockets, 256 KiB recv
 * buffer, a minimal streaming frame parser. Nothing is pinned unless asked: --cpu-server
 * pins the pushwire loop thread (through pw_call) or the peer's consumer, --cpu-client the
 * client thread, --cpu-producers every producer thread.
 *
 * C11 + POSIX/Linux. Exit status 0 when every configuration delivered every message. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>

#include "pushwire.h"

#define MAX_LIST 16
#define CLIENT_BUF (256 * 1024)
#define PEER_CAPACITY 65536 /* = pushwire's default inbox_capacity */

enum impl_kind { IMPL_PW, IMPL_EFD, IMPL_PIPE, IMPL_CV, IMPL_COUNT };
static const char *const impl_names[IMPL_COUNT] = {"pw", "efd", "pipe", "cv"};

/* ---- options ---------------------------------------------------------------------------- */
static struct {
  int cost, lat;
  int impls[MAX_LIST], nimpls;
  int producers[MAX_LIST], nproducers;
  long rates[MAX_LIST]; /* 0 = max */
  int nrates;
  double seconds, warmup;
  int conns, size, block, reps;
  size_t max_queued;
  int cpu_server, cpu_client, cpu_producers;
} opt = {
    .cost = 1,
    .lat = 1,
    .impls = {IMPL_PW, IMPL_EFD, IMPL_CV},
    .nimpls = 3,
    .producers = {1, 4},
    .nproducers = 2,
    .rates = {10000, 100000, 0},
    .nrates = 3,
    .seconds = 3.0,
    .warmup = 0.5,
    .conns = 100,
    .size = 64,
    .reps = 1,
    .cpu_server = -1,
    .cpu_client = -1,
    .cpu_producers = -1,
};

static void die(const char *what) {
  fprintf(stderr, "push_bench: %s: %s\n", what, strerror(errno));
  exit(2);
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t clock_ns(clockid_t id) {
  struct timespec ts;
  if (clock_gettime(id, &ts) != 0) return 0;
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The 1-minute load average: the machine is shared, so every line says how busy it was. */
static double loadavg(void) {
  double l = -1;
  FILE *f = fopen("/proc/loadavg", "r");
  if (f) {
    if (fscanf(f, "%lf", &l) != 1) l = -1;
    fclose(f);
  }
  return l;
}

static uint64_t thread_cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static cpu_set_t initial_cpus; /* the affinity the program started with */

/* Pin the calling thread to cpu; -1 gives it back the initial affinity. */
static void pin_self(int cpu) {
  if (cpu < 0) {
    pthread_setaffinity_np(pthread_self(), sizeof initial_cpus, &initial_cpus);
    return;
  }
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  int r = pthread_setaffinity_np(pthread_self(), sizeof set, &set);
  if (r != 0) fprintf(stderr, "push_bench: cannot pin to cpu %d: %s\n", cpu, strerror(r));
}

/* WebSocket frame header for a server (unmasked) frame; returns its length. */
static size_t ws_header(uint8_t *h, int opcode, size_t len) {
  h[0] = (uint8_t)(0x80 | opcode);
  if (len < 126) {
    h[1] = (uint8_t)len;
    return 2;
  }
  if (len < 65536) {
    h[1] = 126;
    h[2] = (uint8_t)(len >> 8);
    h[3] = (uint8_t)len;
    return 4;
  }
  h[1] = 127;
  for (int i = 0; i < 8; i++) h[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
  return 10;
}

/* ---- the client: one thread reading every connection ------------------------------------ */
struct cconn {
  int fd, closed;
  uint8_t hdr[14], hlen, need, opcode, in_payload;
  uint64_t left;
  uint8_t ts[8], tslen;
};

struct client {
  struct cconn *c;
  int n, epfd;
  pthread_t th;
  _Atomic int stop;
  _Atomic uint64_t msgs;    /* messages received (client thread writes) */
  _Atomic uint64_t last_ns; /* time of the last recv that completed a message */
  clockid_t cpu_clock;      /* the client thread's CPU clock */
  uint64_t cpu0;
  uint64_t closes;
  /* latency recording (lat mode) */
  uint64_t *lat;
  size_t lat_n, lat_cap;
  uint64_t lat_over, record_after;
};

static void msg_done(struct client *cl, struct cconn *c, uint64_t t, uint64_t *msgs) {
  if (c->opcode == 1 || c->opcode == 2) {
    (*msgs)++;
    if (cl->lat && c->tslen == 8) {
      uint64_t ts;
      memcpy(&ts, c->ts, 8);
      if (ts >= cl->record_after) {
        if (cl->lat_n < cl->lat_cap) cl->lat[cl->lat_n++] = t > ts ? t - ts : 0;
        else cl->lat_over++;
      }
    }
  } else if (c->opcode == 8) {
    c->closed = 1;
    cl->closes++;
  }
}

/* Streaming parse of server frames: count messages, pick up the payload's first 8 bytes. */
static void parse(struct client *cl, struct cconn *c, const uint8_t *p, size_t n, uint64_t t,
                  uint64_t *msgs) {
  while (n > 0) {
    if (!c->in_payload) {
      c->hdr[c->hlen++] = *p++;
      n--;
      if (c->hlen == 2) {
        uint8_t l7 = c->hdr[1] & 127;
        c->need = (uint8_t)(2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + (c->hdr[1] & 0x80 ? 4 : 0));
      }
      if (c->hlen < 2 || c->hlen < c->need) continue;
      uint64_t len = c->hdr[1] & 127;
      if (len == 126) len = (uint64_t)c->hdr[2] << 8 | c->hdr[3];
      else if (len == 127)
        for (int i = 0; i < 8; i++) len = (i ? len << 8 : 0) | c->hdr[2 + i];
      c->opcode = c->hdr[0] & 15;
      c->hlen = 0;
      c->tslen = 0;
      if (len == 0) {
        msg_done(cl, c, t, msgs);
      } else {
        c->left = len;
        c->in_payload = 1;
      }
      continue;
    }
    size_t k = n < c->left ? n : (size_t)c->left;
    if (c->tslen < 8) {
      size_t m = (size_t)(8 - c->tslen) < k ? (size_t)(8 - c->tslen) : k;
      memcpy(c->ts + c->tslen, p, m);
      c->tslen = (uint8_t)(c->tslen + m);
    }
    p += k;
    n -= k;
    c->left -= k;
    if (c->left == 0) {
      c->in_payload = 0;
      msg_done(cl, c, t, msgs);
    }
  }
}

static void *client_main(void *arg) {
  struct client *cl = arg;
  pin_self(opt.cpu_client);
  uint8_t *buf = malloc(CLIENT_BUF);
  if (!buf) die("malloc");
  struct epoll_event ev[128];
  uint64_t msgs = 0;
  while (!atomic_load_explicit(&cl->stop, memory_order_relaxed)) {
    int ne = epoll_wait(cl->epfd, ev, 128, 20);
    for (int i = 0; i < ne; i++) {
      struct cconn *c = ev[i].data.ptr;
      for (;;) {
        ssize_t r = recv(c->fd, buf, CLIENT_BUF, 0);
        if (r > 0) {
          uint64_t t = now_ns(), before = msgs;
          parse(cl, c, buf, (size_t)r, t, &msgs);
          if (msgs != before) {
            atomic_store_explicit(&cl->msgs, msgs, memory_order_relaxed);
            atomic_store_explicit(&cl->last_ns, t, memory_order_relaxed);
          }
          if (r == CLIENT_BUF) continue;
        } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
          c->closed = 1;
          epoll_ctl(cl->epfd, EPOLL_CTL_DEL, c->fd, NULL);
        } else if (errno == EINTR) {
          continue;
        }
        break;
      }
    }
  }
  free(buf);
  return NULL;
}

static const char upgrade_req[] =
    "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

static void write_all(int fd, const void *p, size_t n) {
  const uint8_t *b = p;
  while (n > 0) {
    ssize_t r = write(fd, b, n);
    if (r < 0) {
      if (errno == EINTR) continue;
      return; /* the peer is gone: the bench reports the loss */
    }
    b += r;
    n -= (size_t)r;
  }
}

/* Read an HTTP head (blocking) into buf; returns its length including the blank line, the
 * bytes read beyond it in *extra. */
static size_t read_head(int fd, char *buf, size_t cap, size_t *got) {
  size_t n = 0;
  for (;;) {
    ssize_t r = read(fd, buf + n, cap - 1 - n);
    if (r <= 0) {
      if (r < 0 && errno == EINTR) continue;
      fprintf(stderr, "push_bench: handshake: connection closed\n");
      exit(2);
    }
    n += (size_t)r;
    buf[n] = 0;
    char *end = strstr(buf, "\r\n\r\n");
    if (end) {
      *got = n;
      return (size_t)(end + 4 - buf);
    }
    if (n == cap - 1) {
      fprintf(stderr, "push_bench: handshake: head too long\n");
      exit(2);
    }
  }
}

/* Connect n clients and send their upgrade requests (answers are read by client_finish). */
static void client_connect(struct client *cl, int n, int port) {
  memset(cl, 0, sizeof *cl);
  cl->n = n;
  cl->c = calloc((size_t)n, sizeof *cl->c);
  if (!cl->c) die("calloc");
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int i = 0; i < n; i++) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) die("connect");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    write_all(fd, upgrade_req, sizeof upgrade_req - 1);
    cl->c[i].fd = fd;
  }
}

/* Read every 101, then start the reader thread. */
static void client_finish(struct client *cl, size_t lat_cap, uint64_t record_after) {
  cl->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (cl->epfd < 0) die("epoll_create1");
  for (int i = 0; i < cl->n; i++) {
    struct cconn *c = &cl->c[i];
    char head[2048];
    size_t got, hl = read_head(c->fd, head, sizeof head, &got);
    if (strncmp(head, "HTTP/1.1 101", 12) != 0) {
      fprintf(stderr, "push_bench: connection %d: no 101: %.40s\n", i, head);
      exit(2);
    }
    uint64_t dummy = 0;
    if (got > hl) parse(cl, c, (uint8_t *)head + hl, got - hl, now_ns(), &dummy);
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(cl->epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0) die("epoll_ctl");
  }
  if (lat_cap) {
    cl->lat = malloc(lat_cap * sizeof *cl->lat);
    if (!cl->lat) die("malloc latencies");
    cl->lat_cap = lat_cap;
    cl->record_after = record_after;
  }
  if (pthread_create(&cl->th, NULL, client_main, cl) != 0) die("pthread_create client");
  pthread_getcpuclockid(cl->th, &cl->cpu_clock);
  cl->cpu0 = clock_ns(cl->cpu_clock);
}

static void client_close(struct client *cl) {
  atomic_store(&cl->stop, 1);
  pthread_join(cl->th, NULL);
  for (int i = 0; i < cl->n; i++) close(cl->c[i].fd);
  close(cl->epfd);
  free(cl->c); /* cl->lat stays: the caller reads the samples, then frees them */
}

/* ---- the servers under test -------------------------------------------------------------- */
struct pmsg {
  struct pmsg *next;
  uint32_t conn, len;
  uint8_t bytes[];
};

struct obuf {
  uint8_t *p;
  size_t len, cap;
};

struct server {
  int kind;
  /* pushwire */
  pw_server *pw;
  pw_conn_id *ids;
  _Atomic int opened, closed;
  pw_stats st0;
  /* peers */
  int lfd, *sfd, n;
  pthread_mutex_t mu;
  pthread_cond_t cv, room; /* room: --block producers wait for the consumer to take */
  struct pmsg *head, **tailp;
  size_t count;
  int waiting, stop, room_waiters;
  uint64_t signals; /* condvar signals (under mu) */
  int wake_r, wake_w, epfd;
  pthread_t th;
  clockid_t cpu_clock; /* the consumer thread's CPU clock (pushwire: the loop thread) */
  _Atomic int clock_ready;
  uint64_t cpu0;
  uint64_t wakeups, commands, max_batch; /* consumer thread; read after join */
  _Atomic uint64_t rejected;
  struct obuf *ob;
  int *dirty;
};

static void on_open(pw_server *srv, pw_conn_id id, const pw_request *req, void *user) {
  struct server *s = user;
  int i = atomic_load(&s->opened);
  if (i < s->n) s->ids[i] = id;
  atomic_store(&s->opened, i + 1); /* the loop thread is the only writer */
}

static void on_close(pw_server *srv, pw_conn_id id, int code, const char *reason, void *user) {
  struct server *s = user;
  atomic_fetch_add(&s->closed, 1);
}

static void pin_loop(pw_server *srv, void *arg) { pin_self(opt.cpu_server); }

/* On the loop thread: publish its CPU clock, so the bench can read the loop's CPU time. */
static void get_loop_clock(pw_server *srv, void *arg) {
  struct server *s = arg;
  clockid_t id;
  pthread_getcpuclockid(pthread_self(), &id);
  s->cpu_clock = id;
  atomic_store(&s->clock_ready, 1);
}

static int pw_start(struct server *s) {
  pw_options o = {0};
  o.max_queued_bytes = opt.max_queued;
  pw_callbacks cb = {.on_open = on_open, .on_close = on_close};
  s->ids = calloc((size_t)s->n, sizeof *s->ids);
  s->pw = pw_server_new(&o, &cb, s);
  if (!s->ids || !s->pw || pw_server_start(s->pw) != 0) {
    fprintf(stderr, "push_bench: cannot start the pushwire server\n");
    exit(2);
  }
  if (opt.cpu_server >= 0) pw_call(s->pw, pin_loop, NULL);
  pw_call(s->pw, get_loop_clock, s);
  return pw_server_port(s->pw);
}

/* Consumer side of the peers: deliver a taken list, one write per dirty connection. */
static void peer_deliver(struct server *s, struct pmsg *m, size_t count) {
  int nd = 0;
  s->wakeups++;
  s->commands += count;
  if (count > s->max_batch) s->max_batch = count;
  while (m) {
    struct pmsg *next = m->next;
    struct obuf *o = &s->ob[m->conn];
    if (o->len + m->len > o->cap) {
      size_t cap = o->cap ? o->cap * 2 : 4096;
      while (cap < o->len + m->len) cap *= 2;
      o->p = realloc(o->p, cap);
      if (!o->p) die("realloc");
      o->cap = cap;
    }
    if (o->len == 0) s->dirty[nd++] = (int)m->conn;
    memcpy(o->p + o->len, m->bytes, m->len);
    o->len += m->len;
    free(m);
    m = next;
  }
  for (int i = 0; i < nd; i++) {
    struct obuf *o = &s->ob[s->dirty[i]];
    write_all(s->sfd[s->dirty[i]], o->p, o->len);
    o->len = 0;
  }
}

static struct pmsg *peer_take(struct server *s, size_t *count) {
  struct pmsg *m = s->head;
  *count = s->count;
  s->head = NULL;
  s->tailp = &s->head;
  s->count = 0;
  if (s->room_waiters) pthread_cond_broadcast(&s->room);
  return m;
}

static void *peer_wake_main(void *arg) /* efd, pipe */
{
  struct server *s = arg;
  pin_self(opt.cpu_server);
  uint8_t sink[4096];
  for (;;) {
    struct epoll_event ev;
    int ne = epoll_wait(s->epfd, &ev, 1, -1);
    if (ne <= 0) continue;
    while (read(s->wake_r, sink, s->kind == IMPL_EFD ? 8 : sizeof sink) > 0 && s->kind == IMPL_PIPE)
      ;
    size_t count;
    pthread_mutex_lock(&s->mu);
    struct pmsg *m = peer_take(s, &count);
    int stop = s->stop;
    pthread_mutex_unlock(&s->mu);
    if (count) peer_deliver(s, m, count);
    if (stop) return NULL;
  }
}

static void *peer_cv_main(void *arg) {
  struct server *s = arg;
  pin_self(opt.cpu_server);
  for (;;) {
    size_t count;
    pthread_mutex_lock(&s->mu);
    while (!s->head && !s->stop) {
      s->waiting = 1;
      pthread_cond_wait(&s->cv, &s->mu);
      s->waiting = 0;
    }
    struct pmsg *m = peer_take(s, &count);
    int stop = s->stop;
    pthread_mutex_unlock(&s->mu);
    if (count) peer_deliver(s, m, count);
    if (stop) return NULL;
  }
}

static int peer_listen(struct server *s) {
  s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t sl = sizeof sa;
  if (s->lfd < 0 || bind(s->lfd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
      listen(s->lfd, 511) != 0 || getsockname(s->lfd, (struct sockaddr *)&sa, &sl) != 0)
    die("peer listen");
  return ntohs(sa.sin_port);
}

/* Accept the n connections the client has opened, answer their upgrade, start the consumer.
 * The 101 carries no valid Sec-WebSocket-Accept: the bench client only checks the status. */
static void peer_accept(struct server *s) {
  static const char resp[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                             "Connection: Upgrade\r\n\r\n";
  s->sfd = calloc((size_t)s->n, sizeof *s->sfd);
  s->ob = calloc((size_t)s->n, sizeof *s->ob);
  s->dirty = calloc((size_t)s->n, sizeof *s->dirty);
  if (!s->sfd || !s->ob || !s->dirty) die("calloc");
  for (int i = 0; i < s->n; i++) {
    int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) die("accept");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char head[2048];
    size_t got;
    read_head(fd, head, sizeof head, &got);
    write_all(fd, resp, sizeof resp - 1);
    s->sfd[i] = fd;
  }
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  pthread_cond_init(&s->room, NULL);
  s->tailp = &s->head;
  if (s->kind != IMPL_CV) {
    int fds[2];
    if (s->kind == IMPL_EFD) {
      fds[0] = fds[1] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
      if (fds[0] < 0) die("eventfd");
    } else if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
      die("pipe2");
    }
    s->wake_r = fds[0];
    s->wake_w = fds[1];
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN};
    if (s->epfd < 0 || epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->wake_r, &ev) != 0) die("peer epoll");
  }
  if (pthread_create(&s->th, NULL, s->kind == IMPL_CV ? peer_cv_main : peer_wake_main, s))
    die("pthread_create consumer");
  pthread_getcpuclockid(s->th, &s->cpu_clock);
}

static void peer_wake(struct server *s) {
  if (s->kind == IMPL_EFD) {
    uint64_t one = 1;
    if (write(s->wake_w, &one, 8) < 0) { /* cannot overflow in a bench run */
    }
  } else if (s->kind == IMPL_PIPE) {
    char one = 1;
    if (write(s->wake_w, &one, 1) < 0) { /* EAGAIN: the pipe is full, a wakeup is due */
    }
  }
}

static int peer_send(struct server *s, int conn, const void *data, size_t len) {
  uint8_t h[10];
  size_t hl = ws_header(h, 2, len);
  struct pmsg *m = malloc(sizeof *m + hl + len);
  if (!m) return PW_ENOMEM;
  m->next = NULL;
  m->conn = (uint32_t)conn;
  m->len = (uint32_t)(hl + len);
  memcpy(m->bytes, h, hl);
  memcpy(m->bytes + hl, data, len);
  pthread_mutex_lock(&s->mu);
  while (opt.block && s->count >= PEER_CAPACITY && !s->stop) {
    s->room_waiters++;
    pthread_cond_wait(&s->room, &s->mu);
    s->room_waiters--;
  }
  if (s->count >= PEER_CAPACITY) {
    pthread_mutex_unlock(&s->mu);
    free(m);
    atomic_fetch_add_explicit(&s->rejected, 1, memory_order_relaxed);
    return PW_EAGAIN;
  }
  *s->tailp = m;
  s->tailp = &m->next;
  s->count++;
  if (s->kind == IMPL_CV && s->waiting) {
    s->waiting = 0; /* one signal per sleep */
    s->signals++;
    pthread_cond_signal(&s->cv);
  }
  pthread_mutex_unlock(&s->mu);
  peer_wake(s);
  return 0;
}

static int srv_send(struct server *s, int conn, const void *data, size_t len) {
  if (s->kind == IMPL_PW)
    return pw_send(s->pw, s->ids[conn], data, len, PW_BINARY | (opt.block ? PW_BLOCK : 0));
  return peer_send(s, conn, data, len);
}

/* Start a server of `kind` with n connected clients and a running client thread. */
static void setup(struct server *s, struct client *cl, int kind, size_t lat_cap,
                  uint64_t record_after) {
  memset(s, 0, sizeof *s);
  s->kind = kind;
  s->n = opt.conns;
  int port = kind == IMPL_PW ? pw_start(s) : peer_listen(s);
  client_connect(cl, opt.conns, port);
  if (kind != IMPL_PW) {
    peer_accept(s);
  } else {
    uint64_t deadline = now_ns() + 10000000000u;
    while (atomic_load(&s->opened) < s->n && now_ns() < deadline) usleep(1000);
    if (atomic_load(&s->opened) < s->n) {
      fprintf(stderr, "push_bench: only %d of %d connections opened\n", atomic_load(&s->opened),
              s->n);
      exit(2);
    }
    while (!atomic_load(&s->clock_ready)) usleep(1000);
    pw_server_stats(s->pw, &s->st0);
  }
  client_finish(cl, lat_cap, record_after);
  s->cpu0 = clock_ns(s->cpu_clock);
}

/* Consumer figures since setup: wakeups, commands, max batch, rejected, wake syscalls. */
struct sstats {
  uint64_t wakeups, commands, max_batch, rejected, slow_closed;
  uint64_t srv_cpu, client_cpu; /* ns of CPU since setup: consumer (loop) thread, client */
};

static void teardown(struct server *s, struct client *cl, struct sstats *out) {
  memset(out, 0, sizeof *out);
  out->srv_cpu = clock_ns(s->cpu_clock) - s->cpu0;
  out->client_cpu = clock_ns(cl->cpu_clock) - cl->cpu0;
  if (s->kind == IMPL_PW) {
    pw_stats st;
    pw_server_stats(s->pw, &st);
    out->wakeups = st.wakeups - s->st0.wakeups;
    out->commands = st.commands - s->st0.commands;
    out->max_batch = st.max_batch;
    out->rejected = st.rejected - s->st0.rejected;
    out->slow_closed = st.slow_closed;
    client_close(cl);
    pw_server_free(s->pw);
    free(s->ids);
    return;
  }
  pthread_mutex_lock(&s->mu);
  s->stop = 1;
  pthread_cond_signal(&s->cv);
  pthread_mutex_unlock(&s->mu);
  peer_wake(s);
  pthread_join(s->th, NULL);
  out->wakeups = s->wakeups;
  out->commands = s->commands;
  out->max_batch = s->max_batch;
  out->rejected = atomic_load(&s->rejected);
  client_close(cl);
  for (int i = 0; i < s->n; i++) {
    close(s->sfd[i]);
    free(s->ob[i].p);
  }
  close(s->lfd);
  if (s->kind != IMPL_CV) {
    close(s->epfd);
    close(s->wake_r);
    if (s->wake_w != s->wake_r) close(s->wake_w);
  }
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
  pthread_cond_destroy(&s->room);
  free(s->sfd);
  free(s->ob);
  free(s->dirty);
}

/* Wait until the client has received `want` messages (or 20 s pass). */
static uint64_t wait_delivered(struct client *cl, uint64_t want) {
  uint64_t deadline = now_ns() + 20000000000u;
  while (atomic_load(&cl->msgs) < want && now_ns() < deadline) usleep(1000);
  return atomic_load(&cl->msgs);
}

/* ---- cost mode ----------------------------------------------------------------------------- */
struct producer {
  struct server *s;
  pthread_barrier_t *start;
  int index;
  pthread_t th;
  uint64_t deadline, t0, t1, cpu, calls, eagain, errors;
};

static void *producer_cost(void *arg) {
  struct producer *p = arg;
  struct server *s = p->s;
  pin_self(opt.cpu_producers);
  uint8_t payload[65536];
  memset(payload, 'x', (size_t)opt.size);
  int n = opt.conns, conn = (p->index * 7) % n;
  pthread_barrier_wait(p->start);
  uint64_t c0 = thread_cpu_ns();
  p->t0 = now_ns();
  uint64_t t;
  do {
    for (int k = 0; k < 256; k++) {
      memcpy(payload, &p->calls, 8);
      for (;;) {
        int r = srv_send(s, conn, payload, (size_t)opt.size);
        if (r == 0) break;
        if (r == PW_EAGAIN) {
          p->eagain++;
          sched_yield();
          continue;
        }
        p->errors++;
        break;
      }
      p->calls++;
      if (++conn == n) conn = 0;
    }
    t = now_ns();
  } while (t < p->deadline);
  p->t1 = t;
  p->cpu = thread_cpu_ns() - c0;
  return NULL;
}

struct cost_result {
  double ns_call, cpu_ns_call, mcalls, delivered_ms, batch, srv_cpu;
  int ok;
};

static struct cost_result run_cost(int kind, int nprod) {
  struct server s;
  struct client cl;
  setup(&s, &cl, kind, 0, 0);
  struct producer p[MAX_LIST * 4];
  pthread_barrier_t start;
  pthread_barrier_init(&start, NULL, (unsigned)nprod + 1);
  uint64_t m0 = atomic_load(&cl.msgs);
  for (int i = 0; i < nprod; i++) {
    p[i] = (struct producer){.s = &s, .start = &start, .index = i};
    if (pthread_create(&p[i].th, NULL, producer_cost, &p[i]) != 0) die("pthread_create producer");
  }
  uint64_t t0 = now_ns();
  for (int i = 0; i < nprod; i++) p[i].deadline = t0 + (uint64_t)(opt.seconds * 1e9);
  pthread_barrier_wait(&start);
  uint64_t calls = 0, eagain = 0, errors = 0, tmin = UINT64_MAX, tmax = 0;
  double ns_call = 0, cpu_call = 0;
  for (int i = 0; i < nprod; i++) {
    pthread_join(p[i].th, NULL);
    calls += p[i].calls;
    eagain += p[i].eagain;
    errors += p[i].errors;
    ns_call += (double)(p[i].t1 - p[i].t0) / (double)p[i].calls / nprod;
    cpu_call += (double)p[i].cpu / (double)p[i].calls / nprod;
    if (p[i].t0 < tmin) tmin = p[i].t0;
    if (p[i].t1 > tmax) tmax = p[i].t1;
  }
  pthread_barrier_destroy(&start);
  uint64_t sent = calls - errors;
  uint64_t got = wait_delivered(&cl, m0 + sent) - m0;
  uint64_t last = atomic_load(&cl.last_ns);
  struct sstats st;
  teardown(&s, &cl, &st);
  struct cost_result r = {
      .ns_call = ns_call,
      .cpu_ns_call = cpu_call,
      .mcalls = (double)calls / ((double)(tmax - tmin) / 1e9) / 1e6,
      .delivered_ms = last > tmin ? (double)got / ((double)(last - tmin) / 1e9) / 1e6 : 0,
      .batch = st.wakeups ? (double)st.commands / (double)st.wakeups : 0,
      .srv_cpu = got ? (double)st.srv_cpu / (double)got : 0,
      .ok = got == sent && errors == 0,
  };
  printf("cost impl=%-4s P=%d conns=%d size=%d secs=%.1f calls=%" PRIu64
         " ns/call=%.0f cpu_ns/call=%.0f Mcalls/s=%.3f eagain=%" PRIu64 " errors=%" PRIu64
         " delivered=%" PRIu64 " lost=%" PRIu64 " delivered_M/s=%.3f srv_cpu_ns/msg=%.0f"
         " client_cpu_ns/msg=%.0f wakeups=%" PRIu64 " batch=%.1f max_batch=%" PRIu64
         " rejected=%" PRIu64 " slow_closed=%" PRIu64 " load=%.2f\n",
         impl_names[kind], nprod, opt.conns, opt.size, opt.seconds, calls, r.ns_call, r.cpu_ns_call,
         r.mcalls, eagain, errors, got, sent - got, r.delivered_ms, r.srv_cpu,
         got ? (double)st.client_cpu / (double)got : 0, st.wakeups, r.batch, st.max_batch,
         st.rejected, st.slow_closed, loadavg());
  fflush(stdout);
  return r;
}

/* ---- latency mode --------------------------------------------------------------------------- */
struct lat_result {
  double achieved, p50, p99, p999, max, batch;
  int ok;
};

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static uint64_t pct(const uint64_t *v, size_t n, double q) {
  if (n == 0) return 0;
  size_t i = (size_t)(q * (double)(n - 1) + 0.5);
  return v[i < n ? i : n - 1];
}

static struct lat_result run_lat(int kind, long rate) {
  struct server s;
  struct client cl;
  double total = opt.warmup + opt.seconds;
  size_t cap = (size_t)((rate ? (double)rate : 4e6) * total * 1.1) + 100000;
  uint64_t t0 = now_ns() + 200000000u; /* setup takes well under 200 ms */
  uint64_t record_after = t0 + (uint64_t)(opt.warmup * 1e9);
  setup(&s, &cl, kind, cap, record_after);
  pin_self(opt.cpu_producers);
  uint64_t m0 = atomic_load(&cl.msgs);
  uint8_t payload[65536];
  memset(payload, 'x', (size_t)opt.size);
  struct timespec ts = {.tv_sec = (time_t)(t0 / 1000000000u), .tv_nsec = (long)(t0 % 1000000000u)};
  clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
  uint64_t end = t0 + (uint64_t)(total * 1e9), sent = 0, eagain = 0, errors = 0, sent_rec = 0;
  uint64_t tick = t0, t = t0, trec = 0;
  int conn = 0;
  while (t < end) {
    uint64_t due = rate ? (uint64_t)((double)(t - t0) * (double)rate / 1e9) + 1 : sent + 256;
    while (sent < due) {
      uint64_t stamp = now_ns();
      memcpy(payload, &stamp, 8);
      for (;;) {
        int r = srv_send(&s, conn, payload, (size_t)opt.size);
        if (r == PW_EAGAIN) {
          eagain++;
          sched_yield();
          continue;
        }
        if (r != 0) errors++;
        break;
      }
      if (stamp >= record_after) {
        if (!trec) trec = stamp;
        sent_rec++;
      }
      sent++;
      if (++conn == opt.conns) conn = 0;
    }
    if (rate) {
      tick += 1000000; /* 1 ms */
      ts.tv_sec = (time_t)(tick / 1000000000u);
      ts.tv_nsec = (long)(tick % 1000000000u);
      clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
    }
    t = now_ns();
  }
  uint64_t tend = now_ns();
  uint64_t got = wait_delivered(&cl, m0 + sent - errors) - m0;
  struct sstats st;
  teardown(&s, &cl, &st); /* joins the client thread: the samples are final */
  uint64_t *lat = cl.lat;
  size_t n = cl.lat_n;
  uint64_t over = cl.lat_over;
  qsort(lat, n, sizeof *lat, cmp_u64);
  struct lat_result r = {
      .achieved = trec && tend > trec ? (double)sent_rec / ((double)(tend - trec) / 1e9) : 0,
      .p50 = (double)pct(lat, n, 0.50) / 1e3,
      .p99 = (double)pct(lat, n, 0.99) / 1e3,
      .p999 = (double)pct(lat, n, 0.999) / 1e3,
      .max = n ? (double)lat[n - 1] / 1e3 : 0,
      .batch = st.wakeups ? (double)st.commands / (double)st.wakeups : 0,
      .ok = got == sent - errors && errors == 0 && over == 0,
  };
  char rname[32];
  if (rate) snprintf(rname, sizeof rname, "%ld", rate);
  else snprintf(rname, sizeof rname, "max");
  printf("lat  impl=%-4s rate=%-6s conns=%d size=%d secs=%.1f achieved/s=%.0f sent=%" PRIu64
         " delivered=%" PRIu64 " samples=%zu p50_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f"
         " eagain=%" PRIu64 " wakeups=%" PRIu64 " batch=%.1f max_batch=%" PRIu64
         " rejected=%" PRIu64 " load=%.2f\n",
         impl_names[kind], rname, opt.conns, opt.size, opt.seconds, r.achieved, sent, got, n, r.p50,
         r.p99, r.p999, r.max, eagain, st.wakeups, r.batch, st.max_batch, st.rejected, loadavg());
  fflush(stdout);
  free(lat);
  pin_self(-1);
  return r;
}

/* ---- command line --------------------------------------------------------------------------- */
static void usage(FILE *f) {
  fprintf(f, "usage: push_bench [--mode cost|lat|both] [--impl pw,efd,pipe,cv] [--producers 1,4]\n"
             "                  [--rates 10000,100000,max] [--seconds S] [--warmup S] [--conns N]\n"
             "                  [--size B] [--block] [--max-queued BYTES] [--reps R]\n"
             "                  [--cpu-server N] [--cpu-client N] [--cpu-producers N]\n"
             "defaults: --mode both --impl pw,efd,cv --producers 1,4 --rates 10000,100000,max\n"
             "          --seconds 3 --warmup 0.5 --conns 100 --size 64 --reps 1, nothing pinned\n");
}

static long num(const char *name, const char *s, long min, long max) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || !*s || *end || v < min || v > max) {
    fprintf(stderr, "push_bench: bad value for %s: '%s'\n", name, s);
    exit(2);
  }
  return v;
}

/* Split a comma list; each item through fn. Returns the count. */
static int list(const char *name, const char *arg, long *out,
                long (*fn)(const char *, const char *)) {
  char tmp[256];
  snprintf(tmp, sizeof tmp, "%s", arg);
  int n = 0;
  for (char *save, *tok = strtok_r(tmp, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    if (n == MAX_LIST) {
      fprintf(stderr, "push_bench: too many values for %s\n", name);
      exit(2);
    }
    out[n++] = fn(name, tok);
  }
  if (n == 0) {
    fprintf(stderr, "push_bench: empty list for %s\n", name);
    exit(2);
  }
  return n;
}

static long impl_item(const char *name, const char *s) {
  for (int i = 0; i < IMPL_COUNT; i++)
    if (strcmp(s, impl_names[i]) == 0) return i;
  fprintf(stderr, "push_bench: unknown implementation '%s'\n", s);
  exit(2);
}
static long prod_item(const char *name, const char *s) { return num(name, s, 1, 64); }
static long rate_item(const char *name, const char *s) {
  return strcmp(s, "max") == 0 ? 0 : num(name, s, 1, 100000000);
}

static void parse_args(int argc, char **argv) {
  long tmp[MAX_LIST];
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    int takes = 1;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      exit(0);
    } else if (strcmp(a, "--block") == 0) {
      opt.block = 1;
      takes = 0;
    } else if (!v) {
      usage(stderr);
      exit(2);
    } else if (strcmp(a, "--mode") == 0) {
      opt.cost = strcmp(v, "cost") == 0 || strcmp(v, "both") == 0;
      opt.lat = strcmp(v, "lat") == 0 || strcmp(v, "both") == 0;
      if (!opt.cost && !opt.lat) {
        usage(stderr);
        exit(2);
      }
    } else if (strcmp(a, "--impl") == 0) {
      opt.nimpls = list(a, v, tmp, impl_item);
      for (int k = 0; k < opt.nimpls; k++) opt.impls[k] = (int)tmp[k];
    } else if (strcmp(a, "--producers") == 0) {
      opt.nproducers = list(a, v, tmp, prod_item);
      for (int k = 0; k < opt.nproducers; k++) opt.producers[k] = (int)tmp[k];
    } else if (strcmp(a, "--rates") == 0) {
      opt.nrates = list(a, v, opt.rates, rate_item);
    } else if (strcmp(a, "--seconds") == 0) {
      opt.seconds = atof(v);
    } else if (strcmp(a, "--warmup") == 0) {
      opt.warmup = atof(v);
    } else if (strcmp(a, "--conns") == 0) {
      opt.conns = (int)num(a, v, 1, 10000);
    } else if (strcmp(a, "--size") == 0) {
      opt.size = (int)num(a, v, 8, 65536);
    } else if (strcmp(a, "--max-queued") == 0) {
      opt.max_queued = (size_t)num(a, v, 0, 1L << 40);
    } else if (strcmp(a, "--reps") == 0) {
      opt.reps = (int)num(a, v, 1, 100);
    } else if (strcmp(a, "--cpu-server") == 0) {
      opt.cpu_server = (int)num(a, v, 0, 4095);
    } else if (strcmp(a, "--cpu-client") == 0) {
      opt.cpu_client = (int)num(a, v, 0, 4095);
    } else if (strcmp(a, "--cpu-producers") == 0) {
      opt.cpu_producers = (int)num(a, v, 0, 4095);
    } else {
      usage(stderr);
      exit(2);
    }
    i += takes;
  }
  if (opt.seconds <= 0 || opt.warmup < 0) {
    fprintf(stderr, "push_bench: --seconds must be > 0, --warmup >= 0\n");
    exit(2);
  }
}

int main(int argc, char **argv) {
  parse_args(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  sched_getaffinity(0, sizeof initial_cpus, &initial_cpus);
  {
    time_t now = time(NULL);
    char date[64];
    strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S UTC", gmtime(&now));
    printf("# push_bench %s, %ld cpus, load %.2f:", date, sysconf(_SC_NPROCESSORS_ONLN), loadavg());
    for (int i = 1; i < argc; i++) printf(" %s", argv[i]);
    printf("\n");
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  int ok = 1;
  /* Means over --reps, for the ratio summary. */
  static struct cost_result cost[MAX_LIST][IMPL_COUNT];
  static struct lat_result lat[MAX_LIST][IMPL_COUNT];
  for (int rep = 0; rep < opt.reps; rep++) {
    if (opt.cost)
      for (int pi = 0; pi < opt.nproducers; pi++)
        for (int k = 0; k < opt.nimpls; k++) {
          struct cost_result r = run_cost(opt.impls[k], opt.producers[pi]);
          struct cost_result *m = &cost[pi][opt.impls[k]];
          ok &= r.ok;
          m->ns_call += r.ns_call / opt.reps;
          m->cpu_ns_call += r.cpu_ns_call / opt.reps;
          m->srv_cpu += r.srv_cpu / opt.reps;
          m->mcalls += r.mcalls / opt.reps;
          m->ok = 1;
        }
    if (opt.lat)
      for (int ri = 0; ri < opt.nrates; ri++)
        for (int k = 0; k < opt.nimpls; k++) {
          struct lat_result r = run_lat(opt.impls[k], opt.rates[ri]);
          struct lat_result *m = &lat[ri][opt.impls[k]];
          ok &= r.ok;
          m->p50 += r.p50 / opt.reps;
          m->p99 += r.p99 / opt.reps;
          m->achieved += r.achieved / opt.reps;
          m->ok = 1;
        }
  }
  /* Ratios against pushwire in this run (>1: the peer is slower / costlier). */
  if (cost[0][IMPL_PW].ok || lat[0][IMPL_PW].ok) printf("summary (peer / pw, same run):\n");
  for (int pi = 0; opt.cost && pi < opt.nproducers; pi++) {
    const struct cost_result *pw = &cost[pi][IMPL_PW];
    for (int k = 0; pw->ok && k < opt.nimpls; k++) {
      const struct cost_result *c = &cost[pi][opt.impls[k]];
      if (opt.impls[k] == IMPL_PW) continue;
      printf("  cost P=%d %-4s ns/call %.0f vs %.0f = %.2fx, producer cpu_ns/call %.0f vs %.0f"
             " = %.2fx, consumer cpu_ns/msg %.0f vs %.0f = %.2fx, Mcalls/s %.3f vs %.3f\n",
             opt.producers[pi], impl_names[opt.impls[k]], c->ns_call, pw->ns_call,
             c->ns_call / pw->ns_call, c->cpu_ns_call, pw->cpu_ns_call,
             c->cpu_ns_call / pw->cpu_ns_call, c->srv_cpu, pw->srv_cpu, c->srv_cpu / pw->srv_cpu,
             c->mcalls, pw->mcalls);
    }
  }
  for (int ri = 0; opt.lat && ri < opt.nrates; ri++) {
    const struct lat_result *pw = &lat[ri][IMPL_PW];
    for (int k = 0; pw->ok && k < opt.nimpls; k++) {
      const struct lat_result *c = &lat[ri][opt.impls[k]];
      if (opt.impls[k] == IMPL_PW) continue;
      char rname[32];
      if (opt.rates[ri]) snprintf(rname, sizeof rname, "%ld", opt.rates[ri]);
      else snprintf(rname, sizeof rname, "max");
      printf("  lat rate=%-6s %-4s p50 %.1f vs %.1f us = %.2fx, p99 %.1f vs %.1f us = %.2fx,"
             " achieved %.0f vs %.0f /s\n",
             rname, impl_names[opt.impls[k]], c->p50, pw->p50, c->p50 / pw->p50, c->p99, pw->p99,
             c->p99 / pw->p99, c->achieved, pw->achieved);
    }
  }
  return ok ? 0 : 1;
}
