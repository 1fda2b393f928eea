/* trivial_server: the least a WebSocket server can do, to show that pw-bench is not the
 * bottleneck (pw-bench must run faster against this than against pushwire).
 *
 *   trivial_server [PORT] [--push RATE] [--size S] [--batch K]
 *
 * One thread, one epoll (level-triggered), non-blocking sockets, no timers, no limits
 * beyond a 1 MiB frame. Prints "trivial_server listening on port N" (PORT 0 = any).
 *
 * Default (echo): every data frame is echoed as one unmasked frame with the same opcode
 * and FIN bit; pings get pongs; a close frame is echoed, then the server shuts its side
 * down (FIN first, so TIME_WAIT stays here as with pushwire) and closes on the client's EOF.
 *
 * --push RATE: instead of echoing, send every open connection binary frames of S bytes
 * (default 64, at least 17) in pw-bench's sub payload format: bytes 0-7 send time (LE u64
 * CLOCK_MONOTONIC ns, taken right before the batch is written), 8-15 LE u64 sequence,
 * byte 16 producer 0. RATE is messages per second per connection; 0 = as fast as possible.
 * Up to K (default 16) messages are framed once into one buffer and written to each socket
 * with one send; what a socket does not take is queued for it. No message is ever dropped:
 * while any connection has more than 1 MiB queued, no new batch is made (the pace is then
 * the slowest reader's), so pw-bench must see no gaps.
 *
 * C11 + Linux; OpenSSL libcrypto for the accept value's SHA-1. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <signal.h>
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

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define MAX_FRAME (1u << 20)
#define HEAD_MAX 8192
#define RBUF_SIZE (MAX_FRAME + 14 + 256 * 1024)
#define MAXEV 512
#define PUSH_QUEUE_MAX (1u << 20) /* push pauses while a connection has more queued */

enum state { ST_HS, ST_OPEN, ST_DRAIN };

struct conn {
  int fd;
  uint8_t state;
  bool pending; /* push mode: over PUSH_QUEUE_MAX, counted in g_pending */
  bool shut_after_flush;
  long open_idx;
  uint8_t *in; /* HTTP head, then the bytes of a frame split across reads */
  size_t in_len, in_cap;
  uint8_t *out; /* what the socket did not take yet */
  size_t out_off, out_len, out_cap;
};

static int g_ep;
static uint8_t *g_rbuf, *g_sbuf;
static size_t g_sbuf_cap;
static struct conn **g_open; /* open connections (push targets) */
static long g_nopen, g_open_cap;
static long g_pending;
static long g_push_rate = -1, g_size = 64, g_batch = 16;
static uint8_t *g_push_buf; /* g_batch frames, framed once */
static size_t g_frame_len, g_hdr_len;
static uint64_t g_seq, g_next_due;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void put_le64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static size_t frame_header(uint8_t *h, uint8_t b0, size_t n) {
  h[0] = b0;
  if (n < 126) {
    h[1] = (uint8_t)n;
    return 2;
  }
  if (n < 65536) {
    h[1] = 126;
    h[2] = (uint8_t)(n >> 8);
    h[3] = (uint8_t)n;
    return 4;
  }
  h[1] = 127;
  for (int i = 0; i < 8; i++) h[2 + i] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
  return 10;
}

/* ------------------------------------------------------------------------------------ */
/* Connections                                                                          */

static void open_add(struct conn *c) {
  if (g_nopen == g_open_cap) {
    long cap = g_open_cap ? 2 * g_open_cap : 1024;
    struct conn **a = realloc(g_open, (size_t)cap * sizeof *a);
    if (!a) abort();
    g_open = a;
    g_open_cap = cap;
  }
  c->open_idx = g_nopen;
  g_open[g_nopen++] = c;
}

static void conn_close(struct conn *c) {
  if (c->state == ST_OPEN || c->state == ST_DRAIN) {
    if (c->open_idx >= 0) {
      g_open[c->open_idx] = g_open[--g_nopen];
      g_open[c->open_idx]->open_idx = c->open_idx;
    }
  }
  if (c->pending) g_pending--;
  close(c->fd);
  free(c->in);
  free(c->out);
  free(c);
}

static int set_events(struct conn *c, uint32_t ev) {
  struct epoll_event e = {.events = ev, .data.ptr = c};
  return epoll_ctl(g_ep, EPOLL_CTL_MOD, c->fd, &e);
}

static int grow(uint8_t **buf, size_t *cap, size_t need) {
  if (need <= *cap) return 0;
  size_t n = *cap ? *cap : 4096;
  while (n < need) n *= 2;
  uint8_t *b = realloc(*buf, n);
  if (!b) return -1;
  *buf = b;
  *cap = n;
  return 0;
}

/* Push pauses while any connection holds more than PUSH_QUEUE_MAX bytes. */
static void update_pending(struct conn *c) {
  bool over = c->out_len > PUSH_QUEUE_MAX;
  if (over != c->pending) {
    c->pending = over;
    g_pending += over ? 1 : -1;
  }
}

/* Write now; queue the rest for EPOLLOUT. -1 = the connection was closed. */
static int out_send(struct conn *c, const uint8_t *p, size_t n) {
  ssize_t w = 0;
  if (!c->out_len) {
    w = send(c->fd, p, n, MSG_NOSIGNAL);
    if (w == (ssize_t)n) return 0;
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      conn_close(c);
      return -1;
    }
    if (w < 0) w = 0;
    if (set_events(c, EPOLLIN | EPOLLOUT)) {
      conn_close(c);
      return -1;
    }
  }
  size_t add = n - (size_t)w;
  if (c->out_off + c->out_len + add > c->out_cap) { /* compact only when it does not fit */
    memmove(c->out, c->out + c->out_off, c->out_len);
    c->out_off = 0;
  }
  if (grow(&c->out, &c->out_cap, c->out_len + add)) {
    conn_close(c);
    return -1;
  }
  memcpy(c->out + c->out_off + c->out_len, p + w, add);
  c->out_len += add;
  update_pending(c);
  return 0;
}

static int out_flush(struct conn *c) {
  while (c->out_len) {
    ssize_t w = send(c->fd, c->out + c->out_off, c->out_len, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
      conn_close(c);
      return -1;
    }
    c->out_off += (size_t)w;
    c->out_len -= (size_t)w;
    update_pending(c);
  }
  c->out_off = 0;
  if (set_events(c, EPOLLIN)) {
    conn_close(c);
    return -1;
  }
  if (c->shut_after_flush) shutdown(c->fd, SHUT_WR);
  return 0;
}

/* ------------------------------------------------------------------------------------ */
/* Handshake                                                                            */

/* The value of header `name` in a NUL-terminated head, trimmed; NULL if absent. */
static const char *find_header(char *head, const char *name, size_t *len) {
  size_t nl = strlen(name);
  for (char *l = strstr(head, "\r\n"); l && l[2] != '\r'; l = strstr(l + 2, "\r\n")) {
    char *s = l + 2, *eol = strstr(s, "\r\n");
    if (!eol || strncasecmp(s, name, nl) || s[nl] != ':') continue;
    char *v = s + nl + 1;
    while (*v == ' ' || *v == '\t') v++;
    while (eol > v && (eol[-1] == ' ' || eol[-1] == '\t')) eol--;
    *len = (size_t)(eol - v);
    return v;
  }
  return NULL;
}

static int send_101(struct conn *c, const char *key, size_t klen) {
  char cat[128], resp[256];
  unsigned char digest[SHA_DIGEST_LENGTH], accept[32];
  if (klen > 60) { /* not a real key */
    conn_close(c);
    return -1;
  }
  int n = snprintf(cat, sizeof cat, "%.*s%s", (int)klen, key, WS_GUID);
  SHA1((const unsigned char *)cat, (size_t)n, digest);
  EVP_EncodeBlock(accept, digest, SHA_DIGEST_LENGTH);
  n = snprintf(resp, sizeof resp,
               "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Accept: %s\r\n\r\n",
               accept);
  return out_send(c, (const uint8_t *)resp, (size_t)n);
}

static void process_frames(struct conn *c, uint8_t *p, size_t n);

/* Collect the head; answer 101 (or 400 and close); keep bytes after the head. */
static void hs_readable(struct conn *c) {
  if (grow(&c->in, &c->in_cap, HEAD_MAX + 1)) {
    conn_close(c);
    return;
  }
  ssize_t n = recv(c->fd, c->in + c->in_len, HEAD_MAX - c->in_len, 0);
  if (n <= 0) {
    if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) conn_close(c);
    return;
  }
  c->in_len += (size_t)n;
  c->in[c->in_len] = '\0';
  char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
  if (!end) {
    if (c->in_len >= HEAD_MAX) conn_close(c);
    return;
  }
  size_t klen, head = (size_t)(end + 4 - (char *)c->in);
  const char *key = find_header((char *)c->in, "Sec-WebSocket-Key", &klen);
  if (!key || send_101(c, key, klen)) {
    if (!key) {
      static const char bad[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
      send(c->fd, bad, sizeof bad - 1, MSG_NOSIGNAL);
      conn_close(c);
    }
    return;
  }
  c->state = ST_OPEN;
  open_add(c);
  c->in_len -= head;
  memmove(c->in, c->in + head, c->in_len);
  if (c->in_len) { /* the client did not wait for the 101 */
    size_t k = c->in_len;
    memcpy(g_rbuf, c->in, k);
    c->in_len = 0;
    process_frames(c, g_rbuf, k);
  }
}

/* ------------------------------------------------------------------------------------ */
/* Frames                                                                               */

static void unmask(uint8_t *p, size_t n, const uint8_t m[4]) {
  uint32_t m32;
  memcpy(&m32, m, 4);
  uint64_t m64 = (uint64_t)m32 << 32 | m32;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v;
    memcpy(&v, p + i, 8);
    v ^= m64;
    memcpy(p + i, &v, 8);
  }
  for (; i < n; i++) p[i] ^= m[i & 3];
}

/* Stage one unmasked frame in the shared send buffer. */
static int stage(size_t *len, uint8_t b0, const uint8_t *payload, size_t n) {
  if (grow(&g_sbuf, &g_sbuf_cap, *len + 10 + n)) return -1;
  *len += frame_header(g_sbuf + *len, b0, n);
  memcpy(g_sbuf + *len, payload, n);
  *len += n;
  return 0;
}

/* Whole frames in p[0..n): answer them all with one send; keep a partial frame's bytes. */
static void process_frames(struct conn *c, uint8_t *p, size_t n) {
  size_t i = 0, out = 0;
  bool closing = false;
  while (!closing && n - i >= 2) {
    uint8_t b0 = p[i], b1 = p[i + 1];
    size_t l7 = b1 & 0x7F, hl = 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + 4;
    if (!(b1 & 0x80)) { /* client frames must be masked */
      conn_close(c);
      return;
    }
    if (n - i < hl) break;
    uint64_t len = l7;
    if (l7 == 126) len = (uint64_t)p[i + 2] << 8 | p[i + 3];
    else if (l7 == 127)
      for (int k = 0; k < 8; k++) len = (k ? len << 8 : 0) | p[i + 2 + k];
    if (len > MAX_FRAME) {
      conn_close(c);
      return;
    }
    if (n - i - hl < len) break;
    uint8_t *pl = p + i + hl, op = b0 & 0x0F;
    unmask(pl, (size_t)len, pl - 4);
    int r = 0;
    if (op == 0x8) {
      r = stage(&out, 0x88, pl, len >= 2 ? 2 : 0);
      closing = true;
    } else if (op == 0x9) {
      r = stage(&out, 0x8A, pl, (size_t)len);
    } else if (op < 0x3 && g_push_rate < 0) {
      r = stage(&out, b0, pl, (size_t)len);
    }
    if (r) {
      conn_close(c);
      return;
    }
    i += hl + (size_t)len;
  }
  if (closing) {
    c->state = ST_DRAIN;
    c->shut_after_flush = true;
    i = n; /* whatever follows a close is ignored */
  }
  if (i < n) { /* a partial frame: keep it for the next read */
    if (grow(&c->in, &c->in_cap, n - i)) {
      conn_close(c);
      return;
    }
    memcpy(c->in, p + i, n - i);
    c->in_len = n - i;
  }
  if (out && out_send(c, g_sbuf, out)) return;
  if (closing && !c->out_len) shutdown(c->fd, SHUT_WR);
}

static void open_readable(struct conn *c) {
  size_t carry = c->in_len;
  if (carry) memcpy(g_rbuf, c->in, carry);
  c->in_len = 0;
  ssize_t n = recv(c->fd, g_rbuf + carry, RBUF_SIZE - carry, 0);
  if (n <= 0) {
    if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      conn_close(c);
      return;
    }
    c->in_len = carry; /* nothing new: g_rbuf still holds the carry, c->in too */
    return;
  }
  process_frames(c, g_rbuf, carry + (size_t)n);
}

/* After our close: read and drop until the client's EOF. */
static void drain_readable(struct conn *c) {
  ssize_t n = recv(c->fd, g_rbuf, RBUF_SIZE, 0);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) conn_close(c);
}

/* ------------------------------------------------------------------------------------ */
/* Push mode                                                                            */

static bool push_init(void) {
  uint8_t h[10];
  g_hdr_len = frame_header(h, 0x82, (size_t)g_size);
  g_frame_len = g_hdr_len + (size_t)g_size;
  g_push_buf = calloc((size_t)g_batch, g_frame_len);
  if (!g_push_buf) return false;
  for (long j = 0; j < g_batch; j++) memcpy(g_push_buf + (size_t)j * g_frame_len, h, g_hdr_len);
  g_next_due = now_ns();
  return true;
}

/* How many messages are due now (at most one batch). */
static long push_due(uint64_t now) {
  if (g_push_rate == 0) return g_batch;
  uint64_t interval = 1000000000u / (uint64_t)g_push_rate;
  if (interval == 0) interval = 1;
  if (now < g_next_due) return 0;
  uint64_t k = 1 + (now - g_next_due) / interval;
  if (k > (uint64_t)g_batch) k = (uint64_t)g_batch;
  g_next_due += k * interval;
  if (now > g_next_due + 100000000u) /* fell far behind: do not build a backlog */
    g_next_due = now;
  return (long)k;
}

/* Frame k messages once, then one send per open connection. */
static void push_round(long k) {
  uint64_t ts = now_ns();
  for (long j = 0; j < k; j++) {
    uint8_t *pl = g_push_buf + (size_t)j * g_frame_len + g_hdr_len;
    put_le64(pl, ts);
    put_le64(pl + 8, g_seq + (uint64_t)j);
    pl[16] = 0;
  }
  g_seq += (uint64_t)k;
  /* Backwards: closing swaps the last connection into this index, already visited. */
  for (long i = g_nopen - 1; i >= 0; i--) {
    struct conn *c = g_open[i];
    if (c->state != ST_OPEN) continue;
    out_send(c, g_push_buf, (size_t)k * g_frame_len);
  }
}

static int push_timeout_ms(uint64_t now) {
  if (g_push_rate < 0 || g_nopen == 0 || g_pending) return -1;
  if (g_push_rate == 0 || now >= g_next_due) return 0;
  return (int)((g_next_due - now) / 1000000u);
}

/* ------------------------------------------------------------------------------------ */
/* Main                                                                                 */

static void accept_all(int lfd) {
  for (;;) {
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return; /* EAGAIN, or out of descriptors: the next wakeup retries */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct conn *c = calloc(1, sizeof *c);
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
    if (!c || epoll_ctl(g_ep, EPOLL_CTL_ADD, fd, &e)) {
      close(fd);
      free(c);
      continue;
    }
    c->fd = fd;
    c->open_idx = -1;
  }
}

static void handle_event(struct conn *c, uint32_t ev) {
  if ((ev & EPOLLOUT) && out_flush(c)) return;
  if (!(ev & (EPOLLIN | EPOLLHUP | EPOLLERR))) return;
  if (c->state == ST_HS) hs_readable(c);
  else if (c->state == ST_OPEN) open_readable(c);
  else drain_readable(c);
}

static int listen_on(long port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_ANY);
  socklen_t sl = sizeof sa;
  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
      bind(fd, (struct sockaddr *)&sa, sizeof sa) || listen(fd, 4096) ||
      getsockname(fd, (struct sockaddr *)&sa, &sl)) {
    perror("trivial_server: listen");
    exit(1);
  }
  printf("trivial_server listening on port %d\n", ntohs(sa.sin_port));
  fflush(stdout);
  return fd;
}

static bool parse_args(int argc, char **argv, long *port) {
  for (int i = 1; i < argc; i++) {
    char *end;
    if (argv[i][0] != '-') {
      *port = strtol(argv[i], &end, 10);
      if (*end || *port < 0 || *port > 65535) return false;
      continue;
    }
    if (i + 1 >= argc) return false;
    long v = strtol(argv[i + 1], &end, 10);
    if (*end || v < 0) return false;
    if (!strcmp(argv[i], "--push")) g_push_rate = v;
    else if (!strcmp(argv[i], "--size") && v >= 17 && v <= MAX_FRAME) g_size = v;
    else if (!strcmp(argv[i], "--batch") && v >= 1 && v <= 4096) g_batch = v;
    else return false;
    i++;
  }
  return true;
}

int main(int argc, char **argv) {
  long port = 8080;
  if (!parse_args(argc, argv, &port)) {
    fprintf(stderr, "usage: trivial_server [PORT] [--push RATE] [--size S>=17] [--batch K]\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  struct rlimit rl; /* one descriptor per client: take the hard limit */
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  g_rbuf = malloc(RBUF_SIZE);
  g_ep = epoll_create1(EPOLL_CLOEXEC);
  if (!g_rbuf || g_ep < 0 || (g_push_rate >= 0 && !push_init())) return 1;
  int lfd = listen_on(port);
  struct epoll_event e = {.events = EPOLLIN, .data.ptr = NULL}, evs[MAXEV];
  epoll_ctl(g_ep, EPOLL_CTL_ADD, lfd, &e);
  for (;;) {
    int n = epoll_wait(g_ep, evs, MAXEV, push_timeout_ms(now_ns()));
    for (int i = 0; i < n; i++) {
      if (!evs[i].data.ptr) accept_all(lfd);
      else handle_event(evs[i].data.ptr, evs[i].events);
    }
    if (g_push_rate >= 0 && g_nopen && !g_pending) {
      long k = push_due(now_ns());
      if (k) push_round(k);
    }
  }
}
