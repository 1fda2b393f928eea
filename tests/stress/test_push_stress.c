/* Stress: 8 producer threads x 200,000 messages (PW_STRESS_MESSAGES per producer) pushed to 50
 * stable connections over real sockets, while a churn thread opens and closes other
 * connections at random (clean close, bare socket close, close mid-frame, server-side
 * pw_close) and producers also aim at those churn ids.
 * Checked: every message to a stable connection arrives exactly once, intact, and in
 * per-producer order; each send's result is an allowed one; the counters add up
 * (accepted = sent + dropped_closed, rejected = the PW_EAGAIN answers seen); on_close once per
 * on_open; no leak (ASan/LSan) and no data race (TSan).
 *
 * Threads: producers (pw_send from outside the loop), one client thread owning the 50 stable
 * sockets (epoll, its own parser of unmasked server frames), one churn thread, and main.
 * Only main uses check.h (its counters are not atomic); other threads count problems in
 * atomics and print the first few details to stderr. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <pushwire.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../support/harness.h"
#include "../support/wsclient.h"
#include "../support/check.h"
#include "../support/clock.h"

enum {
  NPROD = 8,         /* producer threads */
  NSTABLE = 50,      /* connections that stay open for the whole run */
  MAX_CHURN = 16384, /* churn connections opened at most */
  MIN_CHURN = 200,   /* churn connections opened at least (the run waits for them) */
  CHURN_POOL = 8,    /* churn connections open at once at most */
  MIN_LEN = 12,      /* payload lengths */
  MAX_LEN = 200,
  HDR_LEN = 11, /* [u8 producer][u64 seq LE][u16 conn LE] */
};

#define DEFAULT_MESSAGES 200000
#define DELIVERY_TIMEOUT_MS 60000

/* ---- small helpers ------------------------------------------------------------------------ */

static uint8_t pad_byte(unsigned p, uint64_t seq, size_t j) {
  return (uint8_t)(seq * 7u + p * 31u + j * 13u);
}

/* Problems found off the main thread: counted, the first few printed. */

/* ---- what the callbacks record (loop thread), read by the others ------------------------- */
static pw_server *srv;
static _Atomic pw_conn_id stable_ids[NSTABLE];
static _Atomic int stable_close_code[NSTABLE]; /* 0 while open */
static _Atomic int stable_opens, stable_closes;
static _Atomic pw_conn_id churn_ids[MAX_CHURN]; /* by churn number, 0 until open */
static _Atomic int churn_opens, churn_closes, other_opens;

static void on_open(pw_server *s, pw_conn_id id, const pw_request *req, void *user) {
  int k;
  if (sscanf(req->path, "/stable/%d", &k) == 1 && k >= 0 && k < NSTABLE) {
    atomic_store(&stable_ids[k], id);
    atomic_fetch_add(&stable_opens, 1);
  } else if (sscanf(req->path, "/churn/%d", &k) == 1 && k >= 0 && k < MAX_CHURN) {
    atomic_store(&churn_ids[k], id);
    atomic_fetch_add(&churn_opens, 1);
  } else {
    atomic_fetch_add(&other_opens, 1);
  }
}

static void on_close(pw_server *s, pw_conn_id id, int code, const char *reason, void *user) {
  for (int k = 0; k < NSTABLE; k++) {
    if (atomic_load(&stable_ids[k]) == id) {
      atomic_store(&stable_close_code[k], code);
      atomic_fetch_add(&stable_closes, 1);
      return;
    }
  }
  atomic_fetch_add(&churn_closes, 1);
}

static void on_message(pw_server *s, pw_conn_id id, const void *data, size_t len, int bin,
                       void *user) {
  /* churn clients send nothing whole; stable ones only pongs (control frames) */
}

/* ---- producers ------------------------------------------------------------------------------ */
static long messages_per_producer = DEFAULT_MESSAGES;
static _Atomic int go;

typedef struct producer {
  pthread_t thread;
  unsigned index;
  uint64_t sent_ok[NSTABLE]; /* accepted (0) sends to each stable connection = next seq */
  uint64_t codes[16];        /* results of stable sends by -code (every try, EAGAIN too) */
  uint64_t churn_codes[16];  /* results of churn sends by -code */
  uint64_t churn_ok;         /* accepted churn sends */
  uint64_t eagain;           /* every PW_EAGAIN answer (stable and churn) */
} producer;

static producer producers[NPROD];

static void count_code(uint64_t *codes, int r) { codes[r <= 0 && r > -16 ? -r : 15]++; }

static void *producer_main(void *arg) {
  producer *P = arg;
  uint64_t rng = 0x9E3779B97F4A7C15ull * (P->index + 1);
  uint8_t msg[MAX_LEN];
  while (!atomic_load(&go)) sched_yield();
  for (long i = 0; i < messages_per_producer; i++) {
    unsigned c = (unsigned)(th_rand(&rng) % NSTABLE);
    size_t len = MIN_LEN + (size_t)(th_rand(&rng) % (MAX_LEN - MIN_LEN + 1));
    uint64_t seq = P->sent_ok[c];
    msg[0] = (uint8_t)P->index;
    for (int b = 0; b < 8; b++) msg[1 + b] = (uint8_t)(seq >> (8 * b));
    msg[9] = (uint8_t)c, msg[10] = (uint8_t)(c >> 8);
    for (size_t j = HDR_LEN; j < len; j++) msg[j] = pad_byte(P->index, seq, j);
    pw_conn_id id = atomic_load(&stable_ids[c]);
    int r;
    for (;;) {
      r = pw_send(srv, id, msg, len, PW_BINARY | PW_BLOCK);
      count_code(P->codes, r);
      if (r != PW_EAGAIN) break;
      P->eagain++;
    }
    if (r == 0) {
      P->sent_ok[c]++;
    } else {
      PROBLEM("producer %u: pw_send to stable %u returned %s", P->index, c, pw_err_name(r));
    }
    if (th_rand(&rng) % 50 == 0) { /* now and then, a churn id: open, closing or gone */
      int n = atomic_load(&churn_opens);
      pw_conn_id cid = n > 0 ? atomic_load(&churn_ids[th_rand(&rng) % (uint64_t)n]) : 0;
      int flags = PW_BINARY | (th_rand(&rng) & 1 ? PW_BLOCK : 0);
      r = pw_send(srv, cid, msg, len, flags);
      count_code(P->churn_codes, r);
      if (r == 0) P->churn_ok++;
      else if (r == PW_EAGAIN) P->eagain++;
      else if (r != PW_ENOCONN)
        PROBLEM("producer %u: pw_send to churn id %llx returned %s", P->index,
                (unsigned long long)cid, pw_err_name(r));
    }
  }
  return NULL;
}

/* ---- the client thread: 50 stable sockets ------------------------------------------------- */
typedef struct sconn {
  int fd;
  uint8_t *buf;
  size_t len, cap;
  uint64_t next[NPROD]; /* expected seq per producer */
  int close_seen, eof;
} sconn;

static sconn stable[NSTABLE];
static _Atomic uint64_t delivered[NSTABLE][NPROD]; /* written by the client thread only */
static _Atomic int stopping; /* main: the server is being stopped, close frames expected */
static _Atomic int client_quit;
static _Atomic int client_eofs;

/* Write a whole masked frame to a non-blocking socket (small control frames only). */
static int send_masked(int fd, int opcode, const uint8_t *payload, size_t len) {
  uint8_t f[6 + 125];
  if (len > 125) return -1;
  static const uint8_t mask[4] = {0xA1, 0xB2, 0xC3, 0xD4};
  f[0] = (uint8_t)(0x80 | opcode);
  f[1] = (uint8_t)(0x80 | len);
  memcpy(f + 2, mask, 4);
  for (size_t i = 0; i < len; i++) f[6 + i] = payload[i] ^ mask[i & 3];
  size_t off = 0, total = 6 + len;
  uint64_t deadline = now_ms() + 5000;
  while (off < total) {
    ssize_t w = send(fd, f + off, total - off, MSG_NOSIGNAL);
    if (w > 0) {
      off += (size_t)w;
    } else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (now_ms() > deadline) return -1;
      struct pollfd p = {.fd = fd, .events = POLLOUT};
      poll(&p, 1, 10);
    } else {
      return -1;
    }
  }
  return 0;
}

static void check_data_frame(int k, sconn *c, const uint8_t *p, size_t len) {
  if (len < MIN_LEN || len > MAX_LEN) {
    PROBLEM("stable %d: message of %zu bytes", k, len);
    return;
  }
  unsigned prod = p[0];
  uint64_t seq = 0;
  for (int b = 7; b >= 0; b--) seq = seq << 8 | p[1 + b];
  unsigned conn = (unsigned)p[9] | (unsigned)p[10] << 8;
  if (prod >= NPROD || conn != (unsigned)k) {
    PROBLEM("stable %d: message for producer %u, connection %u", k, prod, conn);
    return;
  }
  for (size_t j = HDR_LEN; j < len; j++) {
    if (p[j] != pad_byte(prod, seq, j)) {
      PROBLEM("stable %d: producer %u seq %llu: payload byte %zu corrupted", k, prod,
              (unsigned long long)seq, j);
      return;
    }
  }
  if (seq != c->next[prod]) {
    PROBLEM("stable %d: producer %u: got seq %llu, expected %llu (%s)", k, prod,
            (unsigned long long)seq, (unsigned long long)c->next[prod],
            seq > c->next[prod] ? "gap: lost messages" : "duplicate or reordered");
  }
  c->next[prod] = seq + 1;
  atomic_fetch_add_explicit(&delivered[k][prod], 1, memory_order_relaxed);
}

/* Parse every whole frame in the buffer; returns the bytes consumed. */
static size_t parse_frames(int k, sconn *c) {
  size_t off = 0;
  for (;;) {
    const uint8_t *b = c->buf + off;
    size_t avail = c->len - off, h = 2;
    if (avail < 2) break;
    if (b[1] & 0x80) {
      PROBLEM("stable %d: masked frame from the server", k);
      return c->len;
    }
    uint64_t len = b[1] & 0x7F;
    if (len == 126) {
      if (avail < 4) break;
      len = (uint64_t)b[2] << 8 | b[3], h = 4;
    } else if (len == 127) {
      if (avail < 10) break;
      len = 0;
      for (int i = 0; i < 8; i++) len = len << 8 | b[2 + i];
      h = 10;
    }
    if (len > c->cap) {
      PROBLEM("stable %d: frame of %llu bytes", k, (unsigned long long)len);
      return c->len;
    }
    if (avail < h + len) break;
    int fin = b[0] >> 7, opcode = b[0] & 0x0F;
    const uint8_t *pl = b + h;
    if ((b[0] & 0x70) || !fin) {
      PROBLEM("stable %d: unexpected frame header 0x%02x", k, b[0]);
    } else if (opcode == 2) {
      check_data_frame(k, c, pl, (size_t)len);
    } else if (opcode == 9) {
      if (send_masked(c->fd, 10, pl, (size_t)len) != 0) PROBLEM("stable %d: pong failed", k);
    } else if (opcode == 8) {
      int code = len >= 2 ? pl[0] << 8 | pl[1] : -1;
      if (!atomic_load(&stopping)) PROBLEM("stable %d: closed early by the server (%d)", k, code);
      if (!c->close_seen) send_masked(c->fd, 8, pl, len >= 2 ? 2 : 0); /* echo the code */
      c->close_seen = 1;
    } else if (opcode != 10) {
      PROBLEM("stable %d: unexpected opcode %d", k, opcode);
    }
    off += h + (size_t)len;
  }
  return off;
}

static void read_stable(int ep, int k) {
  sconn *c = &stable[k];
  for (int rounds = 0; rounds < 8 && !c->eof; rounds++) {
    ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && errno == EAGAIN) return;
    if (r <= 0) { /* EOF or reset */
      if (!c->close_seen)
        PROBLEM("stable %d: connection lost (%s)", k, r ? strerror(errno) : "EOF");
      c->eof = 1;
      epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
      close(c->fd); /* the server lingers until our EOF */
      c->fd = -1;
      atomic_fetch_add(&client_eofs, 1);
      return;
    }
    c->len += (size_t)r;
    size_t used = parse_frames(k, c);
    memmove(c->buf, c->buf + used, c->len - used);
    c->len -= used;
  }
}

static void *client_main(void *arg) {
  int ep = epoll_create1(0);
  for (int k = 0; k < NSTABLE; k++) {
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)k};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, stable[k].fd, &ev) != 0)
      PROBLEM("epoll_ctl: %s", strerror(errno));
    /* bytes that arrived with the handshake */
    size_t used = parse_frames(k, &stable[k]);
    memmove(stable[k].buf, stable[k].buf + used, stable[k].len - used);
    stable[k].len -= used;
  }
  while (!atomic_load(&client_quit) && atomic_load(&client_eofs) < NSTABLE) {
    struct epoll_event evs[64];
    int n = epoll_wait(ep, evs, 64, 50);
    for (int i = 0; i < n; i++) read_stable(ep, (int)evs[i].data.u32);
  }
  close(ep);
  return NULL;
}

/* ---- the churn thread ------------------------------------------------------------------------ */
static _Atomic int producers_done;
static _Atomic int churn_next; /* churn numbers handed out */
static uint64_t churn_close_codes[16], churn_close_ok, churn_eagain;
static unsigned long churn_endings[6], churn_connect_failures;

typedef struct cconn {
  wsc w;
  int n;
} cconn;

/* Read frames until the server's close frame (answering it if `answer`), then wait for EOF. */
static void finish_close(cconn *c, int answer) {
  uint64_t deadline = now_ms() + 4000;
  for (;;) {
    uint64_t now = now_ms();
    if (now >= deadline) break;
    wsc_frame f;
    if (wsc_recv(&c->w, &f, (int)(deadline - now)) != 0) break;
    int op = f.opcode;
    if (op == 8 && answer) wsc_send(&c->w, 8, 1, f.payload, f.len >= 2 ? 2 : 0);
    free(f.payload);
    if (op == 8) {
      wsc_wait_eof(&c->w, 2000);
      break;
    }
  }
  wsc_close(&c->w);
}

static void end_churn(cconn *c, uint64_t *rng) {
  int how = (int)(th_rand(rng) % 6);
  churn_endings[how]++;
  switch (how) {
  case 0: /* the socket just goes (unread data: an RST) */ wsc_close(&c->w); break;
  case 1: { /* a clean close from the client */
    uint8_t code[2] = {0x03, 0xE8};
    wsc_send(&c->w, 8, 1, code, 2);
    finish_close(c, 0);
    break;
  }
  case 2: { /* the client goes in the middle of sending a frame */
    uint8_t part[6] = {0x82, 0x80 | 100, 1, 2, 3, 4};
    if (send(c->w.fd, part, 2 + th_rand(rng) % 5, MSG_NOSIGNAL) < 0) { /* gone already */
    }
    wsc_close(&c->w);
    break;
  }
  case 3: { /* the client goes in the middle of receiving a frame */
    uint8_t tmp[7];
    struct pollfd p = {.fd = c->w.fd, .events = POLLIN};
    if (poll(&p, 1, 20) > 0 && recv(c->w.fd, tmp, 1 + th_rand(rng) % 7, 0) < 0) { /* gone */
    }
    wsc_close(&c->w);
    break;
  }
  case 4:
  case 5: { /* the server closes (pw_close from this thread); answered or not */
    pw_conn_id id = atomic_load(&churn_ids[c->n]);
    int r = pw_close(srv, id, 4000 + (int)(th_rand(rng) % 100), "churn");
    count_code(churn_close_codes, r);
    if (r == PW_EAGAIN) churn_eagain++;
    if (r != 0 && r != PW_ENOCONN && r != PW_EAGAIN)
      PROBLEM("churn: pw_close of own connection returned %s", pw_err_name(r));
    if (how == 4) finish_close(c, 1);
    else wsc_close(&c->w);
    break;
  }
  }
}

static void *churn_main(void *arg) {
  uint64_t rng = 0xD1B54A32D192ED03ull;
  cconn pool[CHURN_POOL];
  int npool = 0, port = pw_server_port(srv);
  while (!atomic_load(&go)) sched_yield();
  for (;;) {
    int opened = atomic_load(&churn_next);
    if (atomic_load(&producers_done) && opened >= MIN_CHURN) break;
    uint64_t act = th_rand(&rng) % 10;
    if (opened < MAX_CHURN && npool < CHURN_POOL && (act < 5 || npool == 0)) {
      int n = atomic_fetch_add(&churn_next, 1);
      char path[32];
      snprintf(path, sizeof path, "/churn/%d", n);
      if (wsc_connect(&pool[npool].w, port, path) == 0) {
        pool[npool++].n = n;
      } else {
        churn_connect_failures++;
        PROBLEM("churn: connect %d failed", n);
      }
    } else if (act < 9 && npool > 0) {
      int i = (int)(th_rand(&rng) % (uint64_t)npool);
      end_churn(&pool[i], &rng);
      pool[i] = pool[--npool];
    } else { /* pw_close on any churn id: open, closing or long gone */
      int n = atomic_load(&churn_opens);
      if (n > 0) {
        pw_conn_id id = atomic_load(&churn_ids[th_rand(&rng) % (uint64_t)n]);
        int r = pw_close(srv, id, PW_CLOSE_NORMAL, NULL);
        count_code(churn_close_codes, r);
        if (r == 0) churn_close_ok++;
        if (r == PW_EAGAIN) churn_eagain++;
        if (r != 0 && r != PW_ENOCONN && r != PW_EAGAIN)
          PROBLEM("churn: pw_close returned %s", pw_err_name(r));
      }
    }
    sleep_ms(1 + (int)(th_rand(&rng) % 8));
  }
  while (npool > 0) end_churn(&pool[--npool], &rng);
  return NULL;
}

/* ---- main ---------------------------------------------------------------------------------- */
static int all_delivered(uint64_t *got, uint64_t *want) {
  *got = *want = 0;
  int done = 1;
  for (int k = 0; k < NSTABLE; k++) {
    for (int p = 0; p < NPROD; p++) {
      uint64_t d = atomic_load_explicit(&delivered[k][p], memory_order_relaxed);
      *got += d;
      *want += producers[p].sent_ok[k];
      if (d != producers[p].sent_ok[k]) done = 0;
    }
  }
  return done;
}

static double secs_since(uint64_t t0) { return (double)(now_ms() - t0) / 1000.0; }

int main(void) {
  const char *env = getenv("PW_STRESS_MESSAGES");
  if (env && atol(env) > 0) messages_per_producer = atol(env);
  printf("stress: %d producers x %ld messages to %d connections\n", NPROD, messages_per_producer,
         NSTABLE);
  uint64_t t_start = now_ms();

  pw_options o = {.port = 0, .max_queued_bytes = 256u << 20};
  pw_callbacks cb = {.on_open = on_open, .on_close = on_close, .on_message = on_message};
  srv = pw_server_new(&o, &cb, NULL);
  CHECK(srv != NULL);
  if (!srv) return CHECK_DONE();
  CHECK_EQ_INT(pw_server_start(srv), 0);
  int port = pw_server_port(srv);

  /* The stable connections: handshakes with wsc, then the raw socket goes to the client. */
  for (int k = 0; k < NSTABLE; k++) {
    char path[32];
    wsc w;
    snprintf(path, sizeof path, "/stable/%d", k);
    int r = wsc_connect(&w, port, path);
    CHECK_EQ_INT(r, 0);
    if (r != 0) return CHECK_DONE();
    sconn *c = &stable[k];
    c->fd = w.fd;
    c->cap = 1 << 17;
    c->buf = malloc(c->cap);
    memcpy(c->buf, w.buf, w.len); /* anything that came right after the 101 */
    c->len = w.len;
    free(w.buf);
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
  }
  uint64_t end = now_ms() + 5000;
  while (atomic_load(&stable_opens) < NSTABLE && now_ms() < end) sleep_ms(1);
  CHECK_EQ_INT(atomic_load(&stable_opens), NSTABLE);
  for (int k = 0; k < NSTABLE; k++) CHECK(atomic_load(&stable_ids[k]) != 0);

  pthread_t client, churn;
  pthread_create(&client, NULL, client_main, NULL);
  pthread_create(&churn, NULL, churn_main, NULL);
  for (unsigned p = 0; p < NPROD; p++) {
    producers[p].index = p;
    pthread_create(&producers[p].thread, NULL, producer_main, &producers[p]);
  }
  uint64_t t_go = now_ms();
  atomic_store(&go, 1);
  for (int p = 0; p < NPROD; p++) pthread_join(producers[p].thread, NULL);
  double t_produce = secs_since(t_go);
  atomic_store(&producers_done, 1);

  /* Every accepted message to a stable connection must arrive (churn may still be going). */
  uint64_t got = 0, want = 0, t_wait = now_ms();
  int complete = 0;
  while (!(complete = all_delivered(&got, &want)) && now_ms() - t_wait < DELIVERY_TIMEOUT_MS &&
         check_problems() == 0)
    sleep_ms(5);
  double t_deliver = secs_since(t_go);
  pthread_join(churn, NULL);
  CHECK(complete);
  if (!complete) {
    fprintf(stderr, "delivered %llu of %llu messages\n", (unsigned long long)got,
            (unsigned long long)want);
    int shown = 0;
    for (int k = 0; k < NSTABLE; k++)
      for (int p = 0; p < NPROD; p++) {
        uint64_t d = atomic_load(&delivered[k][p]);
        if (d != producers[p].sent_ok[k] && shown++ < 10)
          fprintf(stderr, "  stable %d producer %d: delivered %llu, sent %llu\n", k, p,
                  (unsigned long long)d, (unsigned long long)producers[p].sent_ok[k]);
      }
  }
  pw_stats before_stop;
  pw_server_stats(srv, &before_stop);

  /* Stop: the server sends 1001 to every stable connection; the client echoes, sees EOF. */
  atomic_store(&stopping, 1);
  CHECK_EQ_INT(pw_server_stop(srv), 0);
  end = now_ms() + 5000;
  while (atomic_load(&client_eofs) < NSTABLE && now_ms() < end) sleep_ms(2);
  CHECK_EQ_INT(atomic_load(&client_eofs), NSTABLE);
  atomic_store(&client_quit, 1);
  pthread_join(client, NULL);
  /* After the stop every delivery is final: nothing more may have arrived. */
  CHECK(all_delivered(&got, &want));

  /* Results and counters. */
  uint64_t codes[16] = {0}, churn_codes[16] = {0}, accepted = 0, eagain = churn_eagain;
  for (int p = 0; p < NPROD; p++) {
    for (int i = 0; i < 16; i++)
      codes[i] += producers[p].codes[i], churn_codes[i] += producers[p].churn_codes[i];
    accepted += producers[p].churn_ok;
    eagain += producers[p].eagain;
  }
  accepted += want;
  for (int i = 1; i < 16; i++)
    if (i != -PW_EAGAIN) CHECK_EQ_INT(codes[i], 0); /* stable sends: only 0, or EAGAIN retried */
  CHECK_EQ_INT(codes[0], (uint64_t)NPROD * (uint64_t)messages_per_producer);
  CHECK_EQ_INT(want, (uint64_t)NPROD * (uint64_t)messages_per_producer);
  for (int i = 1; i < 16; i++)
    if (i != -PW_ENOCONN && i != -PW_EAGAIN) CHECK_EQ_INT(churn_codes[i], 0);

  pw_stats st;
  CHECK_EQ_INT(pw_server_stats(srv, &st), 0);
  CHECK(st.messages_sent >= got);
  CHECK_EQ_INT(st.messages_sent + st.dropped_closed + st.dropped_new + st.dropped_oldest, accepted);
  CHECK_EQ_INT(st.dropped_new, 0);
  CHECK_EQ_INT(st.dropped_oldest, 0);
  CHECK_EQ_INT(st.slow_closed, 0);
  CHECK_EQ_INT(st.rejected, eagain);
  CHECK_EQ_INT(st.connections, 0);
  CHECK_EQ_INT(st.queued_bytes, 0);
  CHECK_EQ_INT(st.inbox_bytes, 0);
  CHECK_EQ_INT(st.connections_total, NSTABLE + atomic_load(&churn_opens));
  CHECK_EQ_INT(atomic_load(&other_opens), 0);
  CHECK_EQ_INT(atomic_load(&churn_opens), atomic_load(&churn_next) - (int)churn_connect_failures);
  CHECK_EQ_INT(atomic_load(&churn_closes), atomic_load(&churn_opens)); /* once per open */
  CHECK_EQ_INT(atomic_load(&stable_closes), NSTABLE);
  for (int k = 0; k < NSTABLE; k++) CHECK_EQ_INT(atomic_load(&stable_close_code[k]), 1001);
  CHECK(atomic_load(&churn_opens) >= MIN_CHURN);
  CHECK_EQ_INT(check_problems(), 0);

  printf("delivered %llu messages to %d stable connections in %.2f s (producers done in %.2f s): "
         "%.0f msg/s\n",
         (unsigned long long)got, NSTABLE, t_deliver, t_produce, (double)got / t_deliver);
  printf("stable sends: %llu accepted, %llu PW_EAGAIN retries; churn sends: %llu accepted, "
         "%llu PW_ENOCONN, %llu PW_EAGAIN\n",
         (unsigned long long)codes[0], (unsigned long long)codes[-PW_EAGAIN],
         (unsigned long long)churn_codes[0], (unsigned long long)churn_codes[-PW_ENOCONN],
         (unsigned long long)churn_codes[-PW_EAGAIN]);
  printf("churn: %d connections (endings: rst %lu, clean %lu, mid-send %lu, mid-recv %lu, "
         "pw_close answered %lu, pw_close unanswered %lu); pw_close on random churn ids: "
         "%llu accepted, %llu PW_ENOCONN\n",
         atomic_load(&churn_opens), churn_endings[0], churn_endings[1], churn_endings[2],
         churn_endings[3], churn_endings[4], churn_endings[5], (unsigned long long)churn_close_ok,
         (unsigned long long)churn_close_codes[-PW_ENOCONN]);
  printf("stats: messages_queued %llu, messages_sent %llu, dropped_closed %llu, rejected %llu, "
         "bytes_sent %llu\n",
         (unsigned long long)st.messages_queued, (unsigned long long)st.messages_sent,
         (unsigned long long)st.dropped_closed, (unsigned long long)st.rejected,
         (unsigned long long)st.bytes_sent);
  printf("stats: wakeups %llu, commands %llu, batch size %.1f (max %llu); before stop: "
         "queued_bytes %llu, inbox_bytes %llu\n",
         (unsigned long long)st.wakeups, (unsigned long long)st.commands,
         st.wakeups ? (double)st.commands / (double)st.wakeups : 0.0,
         (unsigned long long)st.max_batch, (unsigned long long)before_stop.queued_bytes,
         (unsigned long long)before_stop.inbox_bytes);

  pw_server_free(srv);
  for (int k = 0; k < NSTABLE; k++) {
    if (stable[k].fd >= 0) close(stable[k].fd);
    free(stable[k].buf);
  }
  printf("total %.2f s\n", secs_since(t_start));
  return CHECK_DONE();
}
