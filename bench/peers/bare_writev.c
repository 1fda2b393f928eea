/* bare_writev: the practical ceiling of the fan-out benchmark, serving the "push-server"
 * contract (bench/peers/README.md) with no library: one single-threaded epoll loop.
 *
 *   producers: stamp the payload, append it to the open batch under a mutex; the append that
 *              makes the batch non-empty writes the eventfd (one wakeup per batch). A full
 *              batch (--batch N messages) makes producers wait on a condvar until
 *              the loop takes it: that is the backpressure that paces --rate 0. The default is
 *              64 per topic (at most 8,192, the most pushwire drains per wakeup), so with many
 *              topics each socket still gets ~64 frames per writev.
 *   loop:      on the eventfd, swap the open batch with its spare one, build every frame ONCE
 *              (2..10-byte header + payload) into one contiguous run of frames per topic, then
 *              give each open socket its topic's run with one writev (iov[0] = the bytes left
 *              of a frame from an earlier batch, if any; iov[1] = the run).
 *   slow:      a socket that takes part of the run keeps the rest of the frame it was cut in
 *              (at most one frame: the stream stays frame-aligned) and drops the whole frames
 *              after it; a socket that would block drops the batch. Drops are counted per
 *              message per socket. Leftover bytes are flushed first next time, or on EPOLLOUT.
 * The handshake is the minimum RFC 6455 needs from a server: find Sec-WebSocket-Key, answer
 * 101 with base64(SHA-1(key + GUID)) (OpenSSL's SHA1/EVP). Client frames are ignored, except
 * that a close frame is answered and the socket closed. Sockets: non-blocking, TCP_NODELAY
 * (the batch is the cork). --threads must be 1; --lag-bytes is unused (the kernel's socket
 * buffer is the only backlog). Producers start at the first client; --duration counts from
 * startup. Usage: bare_writev [contract flags] [--batch N]. */
#include "push_common.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define NAME "bare-writev"
#define HEAD_MAX 8192

typedef struct conn {
  int fd, open, topic;
  int idx;             /* position in open_conns while open */
  size_t head_len;     /* HTTP phase: bytes of the request head so far */
  char *head;          /* HTTP phase only */
  unsigned char *pend; /* rest of a frame cut by a partial write (frame_len bytes) */
  size_t pend_off, pend_len;
} conn;

typedef struct batch {
  size_t count;
  unsigned char *payloads; /* cap * size */
  int *topics;
} batch;

static push_opts opt;
static size_t batch_cap, frame_len, hdr_len; /* batch_cap: --batch, default 64 per topic */
static int epfd, efd, lfd;
static conn **conns; /* by fd */
static size_t nfds;
static conn **open_conns;
static size_t n_open;
static push_gate gate = PUSH_GATE_INIT;
static atomic_int stopping;
static atomic_uint_fast64_t published;
static uint64_t delivered, dropped, accepted, wakeups;

static pthread_mutex_t q_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_room = PTHREAD_COND_INITIALIZER;
static batch q_open, q_spare; /* producers fill q_open; the loop swaps it with q_spare */

/* Per topic: the frames of the current batch, built once, in one arena. */
static unsigned char *arena, **runs;
static size_t *run_frames;

/* ---- producers ---------------------------------------------------------------------------- */
static void publish(int topic, const unsigned char *payload) {
  pthread_mutex_lock(&q_mu);
  while (q_open.count == batch_cap && !atomic_load(&stopping)) pthread_cond_wait(&q_room, &q_mu);
  if (q_open.count == batch_cap) { /* stopping */
    pthread_mutex_unlock(&q_mu);
    return;
  }
  size_t i = q_open.count++;
  memcpy(q_open.payloads + i * opt.size, payload, opt.size);
  q_open.topics[i] = topic;
  pthread_mutex_unlock(&q_mu);
  if (i == 0) { /* the batch became non-empty: wake the loop once for it */
    uint64_t one = 1;
    ssize_t n = write(efd, &one, sizeof one);
    (void)n;
  }
}

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
      publish((int)((idx + seq) % (uint64_t)opt.topics), payload);
      atomic_fetch_add_explicit(&published, 1, memory_order_relaxed);
    }
  }
  free(payload);
  return NULL;
}

/* ---- connections -------------------------------------------------------------------------- */
static void conn_close(conn *c) {
  epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  if (c->open) { /* swap-remove from the dense list */
    open_conns[c->idx] = open_conns[--n_open];
    open_conns[c->idx]->idx = c->idx;
  }
  conns[c->fd] = NULL;
  free(c->head);
  free(c->pend);
  free(c);
}

static void set_out_interest(conn *c, int on) {
  struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.fd = c->fd};
  epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void accept_all(void) {
  for (;;) {
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return; /* EAGAIN, or EMFILE: try again on the next readiness */
    if ((size_t)fd >= nfds) {
      close(fd);
      continue;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    conn *c = calloc(1, sizeof *c);
    c->fd = fd;
    c->head = malloc(HEAD_MAX);
    conns[fd] = c;
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
  }
}

/* base64(SHA-1(key + GUID)) into out (29 bytes incl. NUL). */
static void accept_key(const char *key, size_t key_len, char *out) {
  static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha1(), NULL);
  EVP_DigestUpdate(ctx, key, key_len);
  EVP_DigestUpdate(ctx, guid, sizeof guid - 1);
  EVP_DigestFinal_ex(ctx, md, &md_len);
  EVP_MD_CTX_free(ctx);
  EVP_EncodeBlock((unsigned char *)out, md, (int)md_len);
}

/* The Sec-WebSocket-Key value in a NUL-terminated head, or NULL. */
static const char *find_key(char *head, size_t *len) {
  static const char name[] = "sec-websocket-key:";
  for (char *line = strstr(head, "\r\n"); line; line = strstr(line + 2, "\r\n")) {
    if (strncasecmp(line + 2, name, sizeof name - 1)) continue;
    char *v = line + 2 + sizeof name - 1;
    while (*v == ' ' || *v == '\t') v++;
    char *e = v;
    while (*e && *e != '\r' && *e != ' ' && *e != '\t') e++;
    *len = (size_t)(e - v);
    return v;
  }
  return NULL;
}

static void handshake(conn *c) {
  ssize_t n = read(c->fd, c->head + c->head_len, HEAD_MAX - 1 - c->head_len);
  if (n <= 0) {
    if (n < 0 && errno == EAGAIN) return;
    conn_close(c);
    return;
  }
  c->head_len += (size_t)n;
  c->head[c->head_len] = 0;
  if (!strstr(c->head, "\r\n\r\n")) {
    if (c->head_len >= HEAD_MAX - 1) conn_close(c);
    return;
  }
  size_t key_len = 0;
  const char *key = find_key(c->head, &key_len);
  if (!key || key_len == 0 || key_len > 64) {
    static const char bad[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
    ssize_t w = write(c->fd, bad, sizeof bad - 1);
    (void)w;
    conn_close(c);
    return;
  }
  char acc[32], resp[256];
  accept_key(key, key_len, acc);
  int len = snprintf(resp, sizeof resp,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                     acc);
  if (write(c->fd, resp, (size_t)len) != len) { /* a fresh socket takes 129 bytes */
    conn_close(c);
    return;
  }
  free(c->head);
  c->head = NULL;
  c->open = 1;
  c->topic = (int)(accepted++ % (uint64_t)opt.topics);
  c->idx = (int)n_open;
  open_conns[n_open++] = c;
  push_gate_set(&gate, 1, 0);
}

/* Subscribers only talk to close: answer a close frame (opcode 8) and hang up; drop the rest. */
static void client_input(conn *c) {
  unsigned char buf[4096];
  ssize_t n = read(c->fd, buf, sizeof buf);
  if (n == 0 || (n < 0 && errno != EAGAIN)) {
    conn_close(c);
  } else if (n > 0 && (buf[0] & 0x0f) == 8) {
    static const unsigned char bye[] = {0x88, 0x02, 0x03, 0xe8};
    ssize_t w = write(c->fd, bye, sizeof bye);
    (void)w;
    conn_close(c);
  }
}

/* ---- the fan-out -------------------------------------------------------------------------- */
static size_t frame_header(unsigned char *h, size_t len) {
  h[0] = 0x82; /* FIN + binary */
  if (len < 126) {
    h[1] = (unsigned char)len;
    return 2;
  }
  if (len < 65536) {
    h[1] = 126, h[2] = (unsigned char)(len >> 8), h[3] = (unsigned char)len;
    return 4;
  }
  h[1] = 127;
  for (int i = 0; i < 8; i++) h[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
  return 10;
}

/* Counting sort by topic: each topic's frames end up contiguous in one arena. */
static void build_runs(const batch *b) {
  memset(run_frames, 0, (size_t)opt.topics * sizeof *run_frames);
  for (size_t i = 0; i < b->count; i++) run_frames[b->topics[i]]++;
  size_t off = 0;
  for (int t = 0; t < opt.topics; t++) {
    runs[t] = arena + off * frame_len;
    off += run_frames[t];
    run_frames[t] = 0;
  }
  for (size_t i = 0; i < b->count; i++) {
    int t = b->topics[i];
    unsigned char *f = runs[t] + run_frames[t]++ * frame_len;
    frame_header(f, opt.size);
    memcpy(f + hdr_len, b->payloads + i * opt.size, opt.size);
  }
}

/* Write what is left of a cut frame; returns 1 when nothing is left. */
static int flush_pending(conn *c) {
  while (c->pend_off < c->pend_len) {
    ssize_t n = write(c->fd, c->pend + c->pend_off, c->pend_len - c->pend_off);
    if (n < 0) return errno == EAGAIN ? 0 : -1;
    c->pend_off += (size_t)n;
  }
  c->pend_off = c->pend_len = 0;
  return 1;
}

static void send_run(conn *c) {
  size_t frames = run_frames[c->topic], run_len = frames * frame_len;
  if (!frames) return;
  size_t pend = c->pend_len - c->pend_off;
  struct iovec iov[2] = {{c->pend + c->pend_off, pend}, {runs[c->topic], run_len}};
  int first = pend ? 0 : 1;
  ssize_t n = writev(c->fd, iov + first, 2 - first);
  if (n < 0) {
    if (errno != EAGAIN) {
      conn_close(c);
      return;
    }
    n = 0;
  }
  if ((size_t)n < pend) { /* still inside the old frame: this whole batch is dropped */
    c->pend_off += (size_t)n;
    dropped += frames;
    return;
  }
  size_t into = (size_t)n - pend, whole = into / frame_len, cut = into % frame_len;
  c->pend_off = c->pend_len = 0;
  delivered += whole;
  if (cut) { /* keep the rest of the cut frame; the frames after it are dropped */
    if (!c->pend) c->pend = malloc(frame_len);
    memcpy(c->pend, runs[c->topic] + whole * frame_len + cut, frame_len - cut);
    c->pend_len = frame_len - cut;
    delivered++;
    whole++;
  }
  dropped += frames - whole;
  if (c->pend_len) set_out_interest(c, 1);
}

static void fan_out(void) {
  uint64_t v;
  ssize_t r = read(efd, &v, sizeof v);
  (void)r;
  wakeups++;
  pthread_mutex_lock(&q_mu);
  batch b = q_open;
  q_open = q_spare;
  q_open.count = 0;
  pthread_cond_broadcast(&q_room);
  pthread_mutex_unlock(&q_mu);
  if (b.count) {
    build_runs(&b);
    for (size_t i = n_open; i-- > 0;) send_run(open_conns[i]); /* backwards: close swaps */
  }
  q_spare = b;
}

static void on_event(struct epoll_event *ev) {
  int fd = ev->data.fd;
  conn *c = fd == efd || fd == lfd ? NULL : conns[fd];
  if (fd == efd) {
    fan_out();
  } else if (fd == lfd) {
    accept_all();
  } else if (c && !c->open) {
    handshake(c);
  } else if (c) {
    int r = ev->events & EPOLLOUT ? flush_pending(c) : 0;
    if (r < 0) {
      conn_close(c);
      return;
    }
    if (r > 0) set_out_interest(c, 0);
    if (ev->events & (EPOLLIN | EPOLLHUP | EPOLLERR)) client_input(c);
  }
}

/* ---- setup -------------------------------------------------------------------------------- */
static int listen_on(int port) {
  lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t sl = sizeof sa;
  if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) || listen(lfd, 4096) ||
      getsockname(lfd, (struct sockaddr *)&sa, &sl))
    return -1;
  return ntohs(sa.sin_port);
}

static void alloc_state(void) {
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  nfds = rl.rlim_cur > 1u << 20 ? 1u << 20 : (size_t)rl.rlim_cur;
  conns = calloc(nfds, sizeof *conns);
  open_conns = calloc(nfds, sizeof *open_conns);
  unsigned char h[10];
  hdr_len = frame_header(h, opt.size);
  frame_len = hdr_len + opt.size;
  batch *bs[2] = {&q_open, &q_spare};
  for (int i = 0; i < 2; i++) {
    bs[i]->payloads = malloc(batch_cap * opt.size);
    bs[i]->topics = malloc(batch_cap * sizeof(int));
  }
  arena = malloc(batch_cap * frame_len);
  runs = calloc((size_t)opt.topics, sizeof *runs);
  run_frames = calloc((size_t)opt.topics, sizeof *run_frames);
}

static int extra_flag(int argc, char **argv, int i, void *user) {
  (void)user;
  if (i + 1 < argc && !strcmp(argv[i], "--batch") && atoi(argv[i + 1]) > 0) {
    batch_cap = (size_t)atoi(argv[i + 1]);
    return 2;
  }
  return 0;
}

static void *stop_waiter(void *arg) {
  push_wait_stop(arg, opt.duration, push_now_ns());
  atomic_store(&stopping, 1);
  uint64_t one = 1;
  ssize_t n = write(efd, &one, sizeof one);
  (void)n;
  return NULL;
}

int main(int argc, char **argv) {
  if (push_parse(argc, argv, &opt, NAME, extra_flag, NULL, " [--batch N]")) return 2;
  if (!batch_cap) batch_cap = opt.topics > 128 ? 8192 : 64 * (size_t)opt.topics;
  if (opt.threads != 1) {
    fprintf(stderr, NAME ": one loop thread by design: --threads 1 only\n");
    return 2;
  }
  sigset_t stop_set;
  push_block_signals(&stop_set);
  push_raise_fd_limit();
  alloc_state();
  epfd = epoll_create1(EPOLL_CLOEXEC);
  efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  int port = listen_on(opt.port);
  if (port < 0) {
    perror(NAME ": listen");
    return 1;
  }
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
  epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev);
  ev.data.fd = efd;
  epoll_ctl(epfd, EPOLL_CTL_ADD, efd, &ev);
  uint64_t t0 = push_now_ns();
  printf(NAME " listening on port %d\n", port);
  fflush(stdout);

  pthread_t prod[256], waiter;
  for (int i = 0; i < opt.producers; i++)
    pthread_create(&prod[i], NULL, producer, (void *)(intptr_t)i);
  pthread_create(&waiter, NULL, stop_waiter, &stop_set);

  struct epoll_event evs[256];
  while (!atomic_load(&stopping)) {
    int n = epoll_wait(epfd, evs, 256, -1);
    for (int i = 0; i < n; i++) on_event(&evs[i]);
  }

  double secs = (double)(push_now_ns() - t0) / 1e9;
  push_gate_set(&gate, 0, 1);
  pthread_mutex_lock(&q_mu);
  pthread_cond_broadcast(&q_room); /* producers waiting for room see `stopping` */
  pthread_mutex_unlock(&q_mu);
  for (int i = 0; i < opt.producers; i++) pthread_join(prod[i], NULL);
  pthread_kill(waiter, SIGTERM);
  pthread_join(waiter, NULL);
  push_summary(NAME, atomic_load(&published), dropped, n_open, accepted, delivered, secs);
  fprintf(stderr, NAME ": %" PRIu64 " wakeups, %.1f messages per batch\n", wakeups,
          wakeups ? (double)atomic_load(&published) / (double)wakeups : 0.0);
  return 0;
}
