/* Stress: recovery under full-speed publishing on 2 loops. 2 producer threads publish to 4
 * history topics as fast as they can (PW_BLOCK) while 16 client threads each follow one topic,
 * read a random number of messages, drop their connection, reconnect (on whichever loop the
 * kernel gives them) and subscribe again from the last offset they have, from their own thread.
 * Checked: every client sees every offset from its first one to the topic's last exactly
 * once, in order, across all its connections; every subscribe from a position says recovered
 * (the history holds everything); the counters agree (recoveries = resubscribes).
 * Checked to fail (2 runs of 3) with the replay taken up to the history's top instead of the
 * loop's `delivered` (stream.c): a client got an offset again right after the switch.
 * PW_RECOVERY_MESSAGES sets the messages per producer and topic. */
#include <pthread.h>
#include <pushwire.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/check.h"
#include "../support/clock.h"
#include "../support/wsclient.h"

enum { NPROD = 2, NTOPICS = 4, NCLIENTS = 16 };

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define DEFAULT_MESSAGES 5000
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define DEFAULT_MESSAGES 5000
#endif
#endif
#ifndef DEFAULT_MESSAGES
#define DEFAULT_MESSAGES 20000
#endif

static pw_server *srv;
static int messages;
static _Atomic int producers_done;

static pw_buf *envelope(const char *topic, const pw_position *pos, const void *data, size_t len,
                        int is_binary, void *arg) {
  char text[32];
  int n = snprintf(text, sizeof text, "%llu", (unsigned long long)pos->offset);
  return pw_buf_new(text, (size_t)n, PW_TEXT);
}

/* ---- which connection is whose: each client upgrades on /c<index> ------------------------- */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pw_conn_id conn_of[NCLIENTS];
static pw_recovery result_of[NCLIENTS];
static int results_of[NCLIENTS];
static pw_conn_id id_to_client_id[NCLIENTS];

static void on_open(pw_server *s, pw_conn_id id, const pw_request *req, void *user) {
  int i = atoi(req->path + 2);
  pthread_mutex_lock(&lock);
  if (i >= 0 && i < NCLIENTS) conn_of[i] = id, id_to_client_id[i] = id;
  pthread_mutex_unlock(&lock);
}

static void on_recovery(pw_server *s, pw_conn_id id, const char *topic, const pw_recovery *r,
                        void *user) {
  pthread_mutex_lock(&lock);
  for (int i = 0; i < NCLIENTS; i++)
    if (id_to_client_id[i] == id) result_of[i] = *r, results_of[i]++;
  pthread_mutex_unlock(&lock);
}

static pw_conn_id wait_conn(int i, pw_conn_id old) {
  uint64_t end = now_ms() + 5000;
  for (;;) {
    pthread_mutex_lock(&lock);
    pw_conn_id id = conn_of[i];
    pthread_mutex_unlock(&lock);
    if (id && id != old) return id;
    if (now_ms() > end) return 0;
    sleep_ms(1);
  }
}

static int wait_result(int i, int n, pw_recovery *out) {
  uint64_t end = now_ms() + 5000;
  for (;;) {
    pthread_mutex_lock(&lock);
    int got = results_of[i];
    *out = result_of[i];
    pthread_mutex_unlock(&lock);
    if (got >= n) return 1;
    if (now_ms() > end) return 0;
    sleep_ms(1);
  }
}

/* PROBLEM (check.h) as a function: it counts, prints the first few, and returns 0. */
static int problem(const char *fmt, ...) {
  va_list ap;
  if (atomic_fetch_add(&check_problems_, 1) >= CHECK_MAX_REPORTS) return 0;
  va_start(ap, fmt);
  fprintf(stderr, "PROBLEM: ");
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  return 0;
}

/* ---- producers ------------------------------------------------------------------------------- */
static void *producer(void *arg) {
  char topic[8];
  for (int k = 0; k < messages; k++)
    for (int t = 0; t < NTOPICS; t++) {
      snprintf(topic, sizeof topic, "r/%d", t);
      if (pw_publish_ex(srv, topic, "x", 1, PW_BLOCK, NULL) != 0)
        problem("publish %d to %s refused", k, topic);
    }
  atomic_fetch_add(&producers_done, 1);
  return NULL;
}

/* ---- clients --------------------------------------------------------------------------------- */
typedef struct client {
  int index, topic;
  uint64_t first, last, received, reconnects, not_recovered;
  uint64_t state;
} client;

static uint64_t topic_top(int t) {
  char topic[8];
  pw_position pos = {{0}, 0};
  snprintf(topic, sizeof topic, "r/%d", t);
  pw_topic_position(srv, topic, &pos);
  return pos.offset;
}

/* Read up to `budget` frames (or, at the end, until the topic's last offset), checking order. */
static int read_some(client *cl, wsc *c, uint64_t budget, int to_the_end) {
  while (budget-- > 0 || to_the_end) {
    if (to_the_end && atomic_load(&producers_done) == NPROD && cl->last == topic_top(cl->topic))
      return 1;
    wsc_frame f;
    if (wsc_recv(c, &f, 5000) != 0) return problem("client %d: nothing for 5 s", cl->index);
    uint64_t o = strtoull((char *)f.payload, NULL, 10);
    free(f.payload);
    if (!cl->first) cl->first = o, cl->last = o - 1;
    if (o != cl->last + 1)
      return problem("client %d topic %d: got %llu after %llu", cl->index, cl->topic,
                     (unsigned long long)o, (unsigned long long)cl->last),
             0;
    cl->last = o, cl->received++;
  }
  return 1;
}

static int connect_and_subscribe(client *cl, wsc *c, pw_conn_id *id, const char *epoch) {
  char path[16], topic[8];
  snprintf(path, sizeof path, "/c%d", cl->index);
  snprintf(topic, sizeof topic, "r/%d", cl->topic);
  pw_conn_id old = *id;
  if (wsc_connect(c, pw_server_port(srv), path) != 0) return problem("connect");
  if (!(*id = wait_conn(cl->index, old))) return problem("no open");
  pw_position since = {{0}, cl->last};
  snprintf(since.epoch, sizeof since.epoch, "%s", epoch);
  pthread_mutex_lock(&lock);
  int n = results_of[cl->index] + 1;
  pthread_mutex_unlock(&lock);
  if (pw_subscribe_from(srv, *id, topic, cl->first ? &since : NULL, NULL) != 0)
    return problem("subscribe");
  pw_recovery r;
  if (!wait_result(cl->index, n, &r)) return problem("no recovery result");
  if (cl->first && !r.recovered) cl->not_recovered++;
  return 1;
}

static void *client_main(void *arg) {
  client *cl = arg;
  char topic[8], epoch[PW_EPOCH_LEN + 1] = "";
  snprintf(topic, sizeof topic, "r/%d", cl->topic);
  pw_conn_id id = 0;
  wsc c;
  for (;;) {
    if (!connect_and_subscribe(cl, &c, &id, epoch)) return NULL;
    pw_position pos;
    if (!epoch[0] && pw_topic_position(srv, topic, &pos) == 0)
      memcpy(epoch, pos.epoch, sizeof epoch);
    int last_round = atomic_load(&producers_done) == NPROD;
    uint64_t budget = 50 + cl->state++ * 7919 % 450;
    int ok = read_some(cl, &c, budget, last_round);
    wsc_close(&c);
    if (!ok || last_round) return NULL;
    cl->reconnects++;
  }
}

int main(void) {
  const char *env = getenv("PW_RECOVERY_MESSAGES");
  messages = env ? atoi(env) : DEFAULT_MESSAGES;
  pw_options o = {.threads = 2};
  pw_callbacks cb = {.on_open = on_open, .on_recovery = on_recovery};
  srv = pw_server_new(&o, &cb, NULL);
  pw_history_options h = {.max_messages = 1000000, .max_bytes = 64u << 20, .envelope = envelope};
  CHECK_EQ_INT(pw_topic_history(srv, "r/*", &h), 0);
  CHECK_EQ_INT(pw_server_start(srv), 0);
  client cl[NCLIENTS];
  pthread_t ct[NCLIENTS], pt[NPROD];
  for (int i = 0; i < NCLIENTS; i++) {
    cl[i] = (client){.index = i, .topic = i % NTOPICS, .state = (uint64_t)i};
    pthread_create(&ct[i], NULL, client_main, &cl[i]);
  }
  sleep_ms(50);
  uint64_t t0 = now_ms();
  for (int i = 0; i < NPROD; i++) pthread_create(&pt[i], NULL, producer, NULL);
  for (int i = 0; i < NPROD; i++) pthread_join(pt[i], NULL);
  for (int i = 0; i < NCLIENTS; i++) pthread_join(ct[i], NULL);
  uint64_t reconnects = 0, not_recovered = 0, received = 0;
  for (int i = 0; i < NCLIENTS; i++) {
    CHECK_EQ_INT(cl[i].last, topic_top(cl[i].topic)); /* it reached the end */
    CHECK(cl[i].first > 0);
    reconnects += cl[i].reconnects, not_recovered += cl[i].not_recovered;
    received += cl[i].received;
  }
  CHECK_EQ_INT(not_recovered, 0);
  CHECK(reconnects >= NCLIENTS); /* every client dropped and came back at least once */
  pw_stats st;
  pw_server_stats(srv, &st);
  CHECK_EQ_INT(st.recoveries, reconnects);
  CHECK_EQ_INT(st.recoveries_epoch + st.recoveries_too_old + st.recoveries_too_many, 0);
  printf("%d x %d topics x %d producers published in %llu ms; %d clients received %llu, "
         "reconnected %llu times, all recovered (%llu replayed)\n",
         messages, NTOPICS, NPROD, (unsigned long long)(now_ms() - t0), NCLIENTS,
         (unsigned long long)received, (unsigned long long)reconnects,
         (unsigned long long)st.replayed);
  CHECK_EQ_INT(check_problems(), 0);
  pw_server_free(srv);
  return CHECK_DONE();
}
