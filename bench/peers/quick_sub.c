/* quick_sub: a small subscriber load for first rough figures of the push-server peers (the real
 * figures come from bench/pw-bench). One thread, epoll, N WebSocket clients on 127.0.0.1:P.
 *
 *   quick_sub --port P [--clients N] [--warmup W] [--seconds S] [--topics T] [--pid PID]
 *             [--inflight H]
 *
 * Connects N clients (at most H handshakes in flight, default 256), waits until all are open,
 * discards W seconds (default 1), then for S seconds (default 3) counts delivered messages,
 * records latency (receive time - the payload's CLOCK_MONOTONIC send time) in a histogram and
 * counts gaps per client and producer (sequence steps larger than T). With --pid, prints the
 * server's CPU use (utime + stime from /proc/PID/stat) over the same window. One line out. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_PROD 256
#define NBUCKETS 4096

typedef struct cl {
  int fd, open;
  size_t hs_len;
  char hs[512];
  unsigned char hdr[10 + 17]; /* frame header + first 17 payload bytes */
  size_t have, need_hdr;      /* bytes in hdr, header length once known (0 = unknown) */
  uint64_t left;              /* payload bytes still to skip */
  uint64_t *last;             /* last seq + 1 per producer (0 = none yet) */
} cl;

static int port, nclients = 1000, topics = 1, inflight_max = 256, pid;
static double warmup = 1, seconds = 3;
static uint64_t hist[NBUCKETS], count, gaps, lat_max, conn_fail;
static int measuring;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Log-linear buckets: 64 per power of two above 64 ns (~1.6% wide). */
static int bucket(uint64_t ns) {
  if (ns < 64) return (int)ns;
  int e = 63 - __builtin_clzll(ns);
  int b = 64 + (e - 6) * 64 + (int)((ns >> (e - 6)) & 63);
  return b < NBUCKETS ? b : NBUCKETS - 1;
}
static uint64_t bucket_ns(int b) {
  if (b < 64) return (uint64_t)b;
  int e = (b - 64) / 64 + 6;
  return ((uint64_t)(64 + (b - 64) % 64)) << (e - 6);
}
static double pct(double p) {
  uint64_t want = (uint64_t)((double)count * p / 100.0), seen = 0;
  for (int b = 0; b < NBUCKETS; b++)
    if ((seen += hist[b]) > want) return (double)bucket_ns(b) / 1e3;
  return 0;
}

static uint64_t le64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

static void on_message(cl *c, const unsigned char *payload, uint64_t now) {
  if (!measuring) return;
  uint64_t ts = le64(payload), seq = le64(payload + 8);
  int prod = payload[16];
  uint64_t lat = now > ts ? now - ts : 0;
  count++;
  hist[bucket(lat)]++;
  if (lat > lat_max) lat_max = lat;
  if (c->last[prod] && seq > c->last[prod] - 1 + (uint64_t)topics)
    gaps += (seq - (c->last[prod] - 1)) / (uint64_t)topics - 1;
  c->last[prod] = seq + 1;
}

/* Streams frames: keep the header and the first 17 payload bytes, skip the rest. */
static void on_bytes(cl *c, const unsigned char *p, size_t n, uint64_t now) {
  while (n) {
    if (c->left && c->have >= c->need_hdr + 17) { /* skipping the payload's tail */
      size_t k = n < c->left ? n : (size_t)c->left;
      p += k, n -= k, c->left -= k;
      if (!c->left) c->have = 0, c->need_hdr = 0;
      continue;
    }
    c->hdr[c->have++] = *p++, n--;
    if (c->have == 2) {
      unsigned l = c->hdr[1] & 127;
      c->need_hdr = l < 126 ? 2 : l == 126 ? 4 : 10;
    }
    if (c->need_hdr && c->have == c->need_hdr) {
      unsigned l = c->hdr[1] & 127;
      c->left = l < 126 ? l : l == 126 ? (uint64_t)c->hdr[2] << 8 | c->hdr[3] : 0;
      if (l == 127)
        for (int i = 2; i < 10; i++) c->left = c->left << 8 | c->hdr[i];
      if ((c->hdr[0] & 0x0f) != 2 || c->left < 17) { /* not ours: skip it whole */
        c->have = c->need_hdr + 17;
        if (!c->left) c->have = 0, c->need_hdr = 0;
      }
    } else if (c->need_hdr && c->have == c->need_hdr + 17) {
      on_message(c, c->hdr + c->need_hdr, now);
      c->left -= 17;
      if (!c->left) c->have = 0, c->need_hdr = 0;
    }
  }
}

static double proc_cpu(void) {
  if (!pid) return 0;
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *s = strrchr(buf, ')');
  unsigned long ut = 0, st = 0;
  if (s) sscanf(s + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st);
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static int start_connect(int ep, cl *c) {
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) && errno != EINPROGRESS) return -1;
  struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.ptr = c};
  return epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
}

int main(int argc, char **argv) {
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--clients")) nclients = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--warmup")) warmup = atof(argv[i + 1]);
    else if (!strcmp(argv[i], "--seconds")) seconds = atof(argv[i + 1]);
    else if (!strcmp(argv[i], "--topics")) topics = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--pid")) pid = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--inflight")) inflight_max = atoi(argv[i + 1]);
    else return fprintf(stderr, "quick_sub: unknown %s\n", argv[i]), 2;
  }
  if (!port) return fprintf(stderr, "usage: quick_sub --port P [--clients N] ...\n"), 2;
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);

  int ep = epoll_create1(0);
  cl *cs = calloc((size_t)nclients, sizeof *cs);
  int started = 0, opened = 0, inflight = 0;
  static unsigned char buf[256 * 1024];
  static const char req[] = "GET /feed HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                            "Sec-WebSocket-Version: 13\r\n\r\n";
  uint64_t t_conn = now_ns(), t_begin = 0, t_end = 0;
  double cpu0 = 0;
  struct epoll_event evs[512];
  for (;;) {
    while (started < nclients && inflight < inflight_max) {
      cl *c = &cs[started++];
      c->last = calloc(MAX_PROD, sizeof *c->last);
      if (start_connect(ep, c)) conn_fail++;
      else inflight++;
    }
    uint64_t now = now_ns();
    if (!t_begin && (opened + (int)conn_fail == nclients || now - t_conn > 60000000000ull)) {
      t_begin = now + (uint64_t)(warmup * 1e9);
      t_end = t_begin + (uint64_t)(seconds * 1e9);
    }
    if (t_begin && !measuring && now >= t_begin) measuring = 1, cpu0 = proc_cpu();
    if (t_end && now >= t_end) break;
    int n = epoll_wait(ep, evs, 512, 10);
    now = now_ns();
    for (int i = 0; i < n; i++) {
      cl *c = evs[i].data.ptr;
      if (!c->open && (evs[i].events & EPOLLOUT) && c->hs_len == 0) {
        if (write(c->fd, req, sizeof req - 1) != (ssize_t)sizeof req - 1) goto fail;
        c->hs_len = 1; /* sent; collecting the response from 1 */
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        continue;
      }
      if (!(evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) continue;
      ssize_t r = read(c->fd, buf, c->open ? sizeof buf : 1); /* byte-wise through the head */
      if (r <= 0) {
        if (r < 0 && errno == EAGAIN) continue;
        goto fail;
      }
      if (c->open) {
        on_bytes(c, buf, (size_t)r, now);
        continue;
      }
      if (c->hs_len < sizeof c->hs - 1) c->hs[c->hs_len++ - 1] = (char)buf[0];
      c->hs[c->hs_len - 1] = 0;
      if (c->hs_len > 4 && !memcmp(c->hs + c->hs_len - 5, "\r\n\r\n", 4)) {
        if (strncmp(c->hs, "HTTP/1.1 101", 12)) goto fail;
        c->open = 1, opened++, inflight--;
      }
      continue;
    fail:
      if (!c->open) inflight--, conn_fail++;
      epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
      close(c->fd);
      c->fd = -1;
      if (c->open) c->open = 0, opened--;
    }
  }
  double cpu = proc_cpu() - cpu0, span = (double)(t_end - t_begin) / 1e9;
  printf("quick-sub: %d/%d clients open, %.1f s: %.0f msg/s delivered, gaps %" PRIu64
         ", latency p50 %.0f us p99 %.0f us max %.0f us",
         opened, nclients, span, (double)count / span, gaps, pct(50), pct(99),
         (double)lat_max / 1e3);
  if (pid) printf(", server CPU %.0f%%", 100.0 * cpu / span);
  printf("\n");
  return conn_fail ? 1 : 0;
}
