/* lws_push: the "push-server" fan-out contract (bench/peers/README.md) on Debian's
 * libwebsockets 4.1, written the way lws's coding guide (README.coding.md, "Libwebsockets is
 * singlethreaded") and its minimal-ws-server-threads example say to send from other threads:
 *
 *   producer thread: lock the ring, store the message, unlock, lws_cancel_service(context)
 *                    (with the poll() backend the only lws call allowed off the service thread)
 *   service thread:  LWS_CALLBACK_EVENT_WAIT_CANCELLED -> lws_callback_on_writable_all_protocol
 *                    LWS_CALLBACK_SERVER_WRITEABLE -> one lws_write of one message (lws allows
 *                    one write per WRITEABLE), and lws_callback_on_writable again while the
 *                    connection has more to read in the ring.
 *
 * Rings: one per topic, each message in a slot with LWS_PRE bytes of headroom (lws_write
 * writes the frame header into it). Every connection keeps its own read position (a 64-bit
 * message count, like lws_ring's per-connection tail). Producers never wait: they overwrite the
 * oldest slot; a connection whose position fell more than the ring's capacity behind the head
 * skips to the oldest message still held and counts what it skipped as dropped. That is the
 * "slow client skips" policy of lws's own ring users; lws_ring itself (as in the example)
 * instead refuses new messages while the slowest client holds the tail, and updating its
 * oldest tail walks every connection on every consume (O(clients) per write), so the ring is
 * ours. Capacity: max(16, --lag-bytes / S) messages (64 KiB of backlog per client by default,
 * like uWS's maxBackpressure and the ws peer's bufferedAmount limit).
 *
 * As in the example, the ring lock is held across lws_write so a producer cannot overwrite the
 * slot being written (and lws_write's header goes into the slot's shared headroom).
 *
 * lws-specific tuning (all else is lws's default):
 *   - wakeups are coalesced: a producer calls lws_cancel_service only when no wakeup is pending
 *     (an atomic flag the service thread clears before it asks for WRITEABLE callbacks). The
 *     example calls it after every message; that costs a pipe write per message and a walk of
 *     every connection per wakeup. `--wake each` restores the example's behaviour.
 *   - log level ERR only (lws logs every connection at NOTICE by default).
 *   - the default poll() event loop; Debian's build has LWS_MAX_SMP 1, so one service thread
 *     (--threads other than 1 is refused).
 *   - fd limit raised to the hard limit; lws sizes its fd lookup table from it.
 *   - --rate 0 is bounded by a window of messages per wakeup (door_wait below), the lws way of
 *     "don't generate data until the connection can take it".
 *
 * Usage: lws_push [contract flags] [--wake coalesce|each] [--window N]. Producers start at the
 * first client; --duration counts from startup. */
#include "push_common.h"

#include <libwebsockets.h>
#include <stdatomic.h>

#define NAME "lws-push"

typedef struct topic_ring {
  pthread_mutex_t mu;
  uint64_t head;      /* messages ever stored; slot of message n is n % ring_cap */
  unsigned char *mem; /* ring_cap slots of slot_stride bytes: LWS_PRE headroom + payload */
} topic_ring;

typedef struct pss { /* lws's per-session data: one per connection, zeroed by lws */
  uint64_t next;     /* next message to send (ring position) */
  int topic;
} pss;

static push_opts opt;
static struct lws_context *context;
static topic_ring *rings;
static size_t ring_cap, slot_stride;
static push_gate gate = PUSH_GATE_INIT;
static atomic_int stopping, wake_pending, wake_each;
static atomic_uint_fast64_t published;
static pthread_mutex_t door_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t door_cv = PTHREAD_COND_INITIALIZER;
static uint64_t door_count, window; /* --rate 0 only, default = topics; see door_wait */
/* service-thread only */
static uint64_t delivered, dropped, clients, accepted;

static void ring_store(int topic, const unsigned char *payload) {
  topic_ring *r = &rings[topic];
  pthread_mutex_lock(&r->mu);
  memcpy(r->mem + (r->head % ring_cap) * slot_stride + LWS_PRE, payload, opt.size);
  r->head++;
  pthread_mutex_unlock(&r->mu);
}

/* --rate 0: lws's rule is to generate data only when the peer can take it, so unpaced
 * producers may publish at most `window` messages (--window N, default one per topic) per
 * wakeup of the service thread: past that they wait until it has handled the wakeup
 * (EVENT_WAIT_CANCELLED, which comes once per service-loop turn). Without a bound producers
 * spin on the ring lock, take the service thread's core and make every client skip (measured
 * at 1,000 clients: 60k delivered/s unbounded vs 100-170k/s bounded). Measured on this machine,
 * window 1..1,024 gives about the same delivered rate; larger windows only add drops. */
/* A cancel_service issued while the service thread is inside EVENT_WAIT_CANCELLED can be
 * absorbed by lws (it drains its pipe after the callback): with 1-2 clients the producer then
 * waited forever (0 delivered, measured). So the wait is sliced: every 1 ms we wake lws again. */
static void door_wait(void) {
  pthread_mutex_lock(&door_mu);
  if (++door_count >= window)
    while (door_count >= window && !atomic_load(&stopping)) {
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      ts.tv_nsec += 1000000;
      if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
      if (pthread_cond_timedwait(&door_cv, &door_mu, &ts) != 0) lws_cancel_service(context);
    }
  pthread_mutex_unlock(&door_mu);
}

static void door_open(void) {
  pthread_mutex_lock(&door_mu);
  door_count = 0;
  pthread_cond_broadcast(&door_cv);
  pthread_mutex_unlock(&door_mu);
}

static void *producer(void *arg) {
  int idx = (int)(intptr_t)arg;
  unsigned char *payload = malloc(opt.size);
  push_payload_init(payload, opt.size, idx);
  if (!push_gate_wait(&gate)) goto out;
  push_pacer pacer;
  push_pacer_init(&pacer, opt.rate);
  for (uint64_t seq = 0; !atomic_load_explicit(&stopping, memory_order_relaxed); seq++) {
    push_pacer_wait(&pacer);
    push_payload_stamp(payload, seq);
    ring_store((int)((idx + seq) % (uint64_t)opt.topics), payload);
    atomic_fetch_add_explicit(&published, 1, memory_order_relaxed);
    if (atomic_load(&wake_each) || !atomic_exchange(&wake_pending, 1)) lws_cancel_service(context);
    if (opt.rate <= 0) door_wait();
  }
out:
  free(payload);
  return NULL;
}

/* One message per WRITEABLE; the ring lock is held across lws_write as in lws's example. */
static int write_one(struct lws *wsi, pss *s) {
  topic_ring *r = &rings[s->topic];
  pthread_mutex_lock(&r->mu);
  uint64_t head = r->head;
  if (head - s->next > ring_cap) { /* fell behind the oldest slot: skip, count */
    dropped += head - ring_cap - s->next;
    s->next = head - ring_cap;
  }
  if (s->next == head) {
    pthread_mutex_unlock(&r->mu);
    return 0;
  }
  unsigned char *slot = r->mem + (s->next % ring_cap) * slot_stride;
  int n = lws_write(wsi, slot + LWS_PRE, opt.size, LWS_WRITE_BINARY);
  int more = ++s->next != head;
  pthread_mutex_unlock(&r->mu);
  if (n < (int)opt.size) return -1; /* lws: a failed write closes the connection */
  delivered++;
  if (more) lws_callback_on_writable(wsi);
  return 0;
}

static int callback_push(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                         size_t len) {
  pss *s = user;
  switch (reason) {
  case LWS_CALLBACK_ESTABLISHED: {
    s->topic = (int)(accepted++ % (uint64_t)opt.topics);
    clients++;
    topic_ring *r = &rings[s->topic];
    pthread_mutex_lock(&r->mu);
    s->next = r->head; /* a new subscriber gets messages published from now on */
    pthread_mutex_unlock(&r->mu);
    push_gate_set(&gate, 1, 0);
    return 0;
  }
  case LWS_CALLBACK_CLOSED: clients--; return 0;
  case LWS_CALLBACK_RECEIVE: /* subscribers have nothing to say; ignore */ return 0;
  case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
    atomic_store(&wake_pending, 0); /* before the walk: a later publish wakes us again */
    if (opt.rate <= 0) door_open();
    lws_callback_on_writable_all_protocol(lws_get_context(wsi), lws_get_protocol(wsi));
    return 0;
  case LWS_CALLBACK_SERVER_WRITEABLE: return write_one(wsi, s);
  default: return lws_callback_http_dummy(wsi, reason, user, in, len);
  }
}

/* protocols[0] also takes upgrades that name no subprotocol, i.e. every client. */
static const struct lws_protocols protocols[] = {
    {"push", callback_push, sizeof(pss), 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0}, /* terminator (4.1 has no LWS_PROTOCOL_LIST_TERM) */
};

static int extra_flag(int argc, char **argv, int i, void *user) {
  (void)user;
  if (i + 1 < argc && !strcmp(argv[i], "--wake")) {
    if (strcmp(argv[i + 1], "each") && strcmp(argv[i + 1], "coalesce")) return 0;
    atomic_store(&wake_each, !strcmp(argv[i + 1], "each"));
    return 2;
  }
  if (i + 1 < argc && !strcmp(argv[i], "--window") && atoi(argv[i + 1]) > 0) {
    window = (uint64_t)atoi(argv[i + 1]);
    return 2;
  }
  return 0;
}

static void *stop_waiter(void *arg) {
  sigset_t *set = arg;
  push_wait_stop(set, opt.duration, push_now_ns());
  atomic_store(&stopping, 1);
  lws_cancel_service(context);
  return NULL;
}

static int setup_rings(void) {
  ring_cap = opt.lag_bytes / opt.size;
  if (ring_cap < 16) ring_cap = 16;
  slot_stride = (LWS_PRE + opt.size + 15) & ~(size_t)15;
  rings = calloc((size_t)opt.topics, sizeof *rings);
  if (!rings) return -1;
  for (int t = 0; t < opt.topics; t++) {
    pthread_mutex_init(&rings[t].mu, NULL);
    rings[t].mem = calloc(ring_cap, slot_stride);
    if (!rings[t].mem) return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (push_parse(argc, argv, &opt, NAME, extra_flag, NULL, " [--wake coalesce|each] [--window N]"))
    return 2;
  if (!window) window = (uint64_t)opt.topics;
  if (opt.threads != 1) {
    fprintf(stderr, NAME ": Debian's libwebsockets has LWS_MAX_SMP=%d: --threads 1 only\n",
            LWS_MAX_SMP);
    return 2;
  }
  sigset_t stop_set;
  push_block_signals(&stop_set);
  push_raise_fd_limit();
  if (setup_rings()) return 1;
  lws_set_log_level(LLL_ERR, NULL);

  struct lws_context_creation_info info;
  memset(&info, 0, sizeof info);
  info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS | LWS_SERVER_OPTION_DISABLE_IPV6;
  info.port = opt.port; /* 0: the kernel picks, lws_get_vhost_listen_port tells */
  info.iface = "127.0.0.1";
  info.protocols = protocols;
  context = lws_create_context(&info);
  if (!context) return 1;
  struct lws_vhost *vh = lws_create_vhost(context, &info);
  if (!vh) return 1;
  uint64_t t0 = push_now_ns();
  printf(NAME " listening on port %d\n", lws_get_vhost_listen_port(vh));
  fflush(stdout);

  pthread_t prod[256], waiter;
  for (int i = 0; i < opt.producers; i++)
    pthread_create(&prod[i], NULL, producer, (void *)(intptr_t)i);
  pthread_create(&waiter, NULL, stop_waiter, &stop_set);

  while (!atomic_load(&stopping))
    if (lws_service(context, 0) < 0) break;

  double secs = (double)(push_now_ns() - t0) / 1e9;
  atomic_store(&stopping, 1);
  push_gate_set(&gate, 0, 1);
  door_open();
  for (int i = 0; i < opt.producers; i++) pthread_join(prod[i], NULL);
  pthread_kill(waiter, SIGTERM); /* blocked everywhere: wakes its sigtimedwait if still there */
  pthread_join(waiter, NULL);
  push_summary(NAME, atomic_load(&published), dropped, clients, accepted, delivered, secs);
  lws_context_destroy(context);
  return 0;
}
