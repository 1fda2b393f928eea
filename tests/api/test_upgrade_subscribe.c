/* pw_upgrade_subscribe: topics chosen in on_upgrade are subscribed in the loop step that
 * creates the connection, so a program that takes opens in its own thread (deliver_open =
 * PW_DELIVER_QUEUE) misses nothing published after the upgrade was accepted.
 * 1. No gap: a producer publishes numbered messages to "t" without pause, noting before each
 *    pw_publish the number it begins. on_upgrade notes U, the number begun when it ran; the
 *    owner takes the OPEN event and notes A (>= U). A message numbered above U began after
 *    on_upgrade, so it reached the inbox after the upgrade's loop step, which subscribed:
 *    the client must get a contiguous run starting at or below U + 1 (and so A + 1). The
 *    owner's A alone is a weak witness: a late pw_subscribe loses the messages published
 *    between U and A, which are below A.
 *    For contrast, tried by hand (on_upgrade not subscribing, the owner calling
 *    pw_subscribe(srv, ev.id, "t") right after taking the event), five runs: three missed
 *    messages (U 10310, A 10578, first message 10582; 9734/10035/10039; 2050/2291/2294),
 *    in two the producer sat blocked on a full inbox all through the window (U = A = first).
 *    Checked to fail: with subscribe_recorded() in src/http.c doing nothing, the client got
 *    no message at all (timeout) and the /args and /m topics had no subscriber.
 * 2. The rules: PW_EINVAL outside on_upgrade (the owner's thread, on_http, on_open with the
 *    very request on_upgrade had, a copy of the request), for a NULL, empty or 256-byte
 *    topic; 0 for a topic recorded twice; PW_EAGAIN past max_subscriptions; recorded topics
 *    dropped when on_upgrade refuses or when the upgrade fails later (503 at
 *    max_connections). Checked to fail: with the `t->req != req` test removed, the copy was
 *    accepted (0); with the max test removed, the fifth topic was recorded and the client got
 *    500 (pw__topic_subscribe refused it at the connection's creation); with the unsubscribe
 *    after a failed pw__conn_upgrade removed, "m" had 2 subscribers after the 503 (one a
 *    connection about to be freed). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../support/wsclient.h"
#include "../support/check.h"
#include <pushwire.h>

enum { MAX_SUBS = 4, RUN = 3000 };

/* ---- on_upgrade ----------------------------------------------------------------------------- */
/* Results of the calls made inside on_upgrade for /args, in this order. */
enum { R_NULL, R_EMPTY, R_LONG, R_COPY, R_MAX_LEN, R_A, R_A_AGAIN, R_B, R_C, R_FIFTH, R_COUNT };
static int args_results[R_COUNT];
static _Atomic int args_done;

static void upgrade_args(const pw_request *req) {
  char longest[257];
  memset(longest, 'x', 256);
  longest[256] = '\0';
  args_results[R_NULL] = pw_upgrade_subscribe(req, NULL);
  args_results[R_EMPTY] = pw_upgrade_subscribe(req, "");
  args_results[R_LONG] = pw_upgrade_subscribe(req, longest); /* 256 bytes */
  pw_request copy = *req;
  args_results[R_COPY] = pw_upgrade_subscribe(&copy, "f");
  args_results[R_MAX_LEN] = pw_upgrade_subscribe(req, longest + 1); /* 255 */
  args_results[R_A] = pw_upgrade_subscribe(req, "a");
  args_results[R_A_AGAIN] = pw_upgrade_subscribe(req, "a");
  args_results[R_B] = pw_upgrade_subscribe(req, "b");
  args_results[R_C] = pw_upgrade_subscribe(req, "c");
  args_results[R_FIFTH] = pw_upgrade_subscribe(req, "e"); /* over MAX_SUBS */
  atomic_store(&args_done, 1);
}

/* Part 1's upgrade: note where the producer is, then choose "t". */
static _Atomic long started; /* the highest number whose pw_publish has begun */
static _Atomic long at_upgrade;

static int early_upgrade(const pw_request *req) {
  atomic_store(&at_upgrade, atomic_load(&started));
  return pw_upgrade_subscribe(req, "t") == 0 ? 0 : 500;
}

static int on_upgrade(pw_server *srv, const pw_request *req, void *user) {
  if (strcmp(req->path, "/args") == 0) upgrade_args(req);
  if (strcmp(req->path, "/refused") == 0) return pw_upgrade_subscribe(req, "r") == 0 ? 403 : 500;
  if (strcmp(req->path, "/early") == 0) return early_upgrade(req);
  if (strcmp(req->path, "/m") == 0) return pw_upgrade_subscribe(req, "m") == 0 ? 0 : 500;
  return 0;
}

/* Calls outside on_upgrade, on the loop thread. */
static _Atomic int outside_http = 1, outside_open = 1;

static void on_http(pw_server *srv, const pw_request *req, pw_response *res, void *user) {
  atomic_store(&outside_http, pw_upgrade_subscribe(req, "x"));
  res->status = 204;
}

static void on_open(pw_server *srv, pw_conn_id id, const pw_request *req, void *user) {
  atomic_store(&outside_open, pw_upgrade_subscribe(req, "x")); /* on_upgrade's req */
}

/* ---- helpers -------------------------------------------------------------------------------- */
/* Send one request; the status of the answer, or -1. */
static int status_of(int port, const char *request) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) return -1;
  int status = -1;
  char buf[512] = {0};
  struct pollfd p = {.fd = fd, .events = POLLIN};
  if (wsc_write_all(fd, request, strlen(request)) == 0 && poll(&p, 1, 3000) == 1 &&
      read(fd, buf, sizeof buf - 1) > 12)
    sscanf(buf, "HTTP/1.1 %d", &status);
  close(fd);
  return status;
}

static int upgrade_status(int port, const char *path) {
  char req[512];
  snprintf(req, sizeof req,
           "GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
           path);
  return status_of(port, req);
}

/* The next event, which must be an OPEN; its id or 0. */
static pw_conn_id take_open(pw_server *srv) {
  pw_event ev;
  if (pw_next_event(srv, &ev, 5000) != 1) return 0;
  pw_conn_id id = ev.type == PW_EV_OPEN ? ev.id : 0;
  pw_event_release(&ev);
  return id;
}

/* ---- 1. no gap ------------------------------------------------------------------------------- */
static _Atomic int producer_stop;

static void *producer(void *srv) {
  char msg[32];
  for (long k = 1; !atomic_load(&producer_stop); k++) {
    int n = snprintf(msg, sizeof msg, "%ld", k);
    atomic_store(&started, k); /* before the call: see the argument at the top */
    while (pw_publish(srv, "t", msg, (size_t)n, PW_TEXT | PW_BLOCK) == PW_EAGAIN &&
           !atomic_load(&producer_stop)) {}
  }
  return NULL;
}

/* The client's messages: RUN in a row, each one more than the last. The first, or -1. */
static long read_run(wsc *c) {
  long first = -1, prev = 0;
  for (int i = 0; i < RUN; i++) {
    wsc_frame f;
    if (wsc_recv(c, &f, 5000) != 0) return CHECK(!"a message in time"), -1;
    char text[32] = "";
    snprintf(text, sizeof text, "%.*s", (int)(f.len < 31 ? f.len : 31), (char *)f.payload);
    free(f.payload);
    long k = atol(text);
    if (i == 0) first = k;
    else if (k != prev + 1) return CHECK_EQ_INT(k, prev + 1), -1; /* a gap */
    prev = k;
  }
  return first;
}

static void test_no_gap(pw_server *srv, int port) {
  pthread_t t;
  pthread_create(&t, NULL, producer, srv);
  while (atomic_load(&started) < 1000) sched_yield(); /* publishing in full flow first */
  wsc c;
  CHECK_EQ_INT(wsc_connect(&c, port, "/early"), 0);
  CHECK(take_open(srv) != 0);
  long at_open = atomic_load(&started);
  long first = read_run(&c);
  atomic_store(&producer_stop, 1);
  pthread_join(t, NULL);
  CHECK(first >= 1 && first <= atomic_load(&at_upgrade) + 1);
  CHECK(first <= at_open + 1); /* implied: the owner's note is never below the upgrade's */
  printf("started at the upgrade %ld, at the open event %ld; first message %ld\n",
         atomic_load(&at_upgrade), at_open, first);
  wsc_close(&c);
}

/* ---- 2. the rules ---------------------------------------------------------------------------- */
static void test_args(pw_server *srv, int port) {
  wsc c;
  CHECK_EQ_INT(wsc_connect(&c, port, "/args"), 0);
  CHECK(take_open(srv) != 0);
  CHECK(atomic_load(&args_done));
  const int want[R_COUNT] = {PW_EINVAL, PW_EINVAL, PW_EINVAL, PW_EINVAL, 0, 0, 0, 0, 0, PW_EAGAIN};
  for (int i = 0; i < R_COUNT; i++) CHECK_EQ_INT(args_results[i], want[i]);
  char longest[256];
  memset(longest, 'x', 255);
  longest[255] = '\0';
  CHECK_EQ_INT(pw_topic_subscribers(srv, longest), 1);
  CHECK_EQ_INT(pw_topic_subscribers(srv, "a"), 1);
  CHECK_EQ_INT(pw_topic_subscribers(srv, "c"), 1);
  CHECK_EQ_INT(pw_topic_subscribers(srv, "e"), 0);
  CHECK_EQ_INT(pw_topic_subscribers(srv, "f"), 0);
  wsc_close(&c);
  /* Refused by on_upgrade: the recorded topic goes with it. */
  CHECK_EQ_INT(upgrade_status(port, "/refused"), 403);
  CHECK_EQ_INT(pw_topic_subscribers(srv, "r"), 0);
  /* The owner's thread, with a request of its own. */
  pw_request fake = {.method = "GET", .path = "/", .query = "", .remote_addr = ""};
  CHECK_EQ_INT(pw_upgrade_subscribe(&fake, "t"), PW_EINVAL);
  CHECK_EQ_INT(pw_upgrade_subscribe(NULL, "t"), PW_EINVAL);
}

/* A callback server at max_connections 1: on_open and on_http cannot record, and a 503 after
 * on_upgrade leaves no subscription behind. */
static void test_outside_and_503(void) {
  pw_options o = {.max_connections = 1};
  pw_callbacks cb = {.on_upgrade = on_upgrade, .on_open = on_open, .on_http = on_http};
  pw_server *srv = pw_server_new(&o, &cb, NULL);
  CHECK(srv != NULL);
  CHECK_EQ_INT(pw_server_start(srv), 0);
  int port = pw_server_port(srv);
  wsc c;
  CHECK_EQ_INT(wsc_connect(&c, port, "/m"), 0);
  CHECK_EQ_INT(pw_topic_subscribers(srv, "m"), 1);
  CHECK_EQ_INT(atomic_load(&outside_open), PW_EINVAL);
  CHECK_EQ_INT(upgrade_status(port, "/m"), 503);
  CHECK_EQ_INT(pw_topic_subscribers(srv, "m"), 1);
  CHECK_EQ_INT(status_of(port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 204);
  CHECK_EQ_INT(atomic_load(&outside_http), PW_EINVAL);
  wsc_close(&c);
  pw_server_free(srv);
}

int main(void) {
  pw_options o = {.deliver_open = PW_DELIVER_QUEUE,
                  .max_subscriptions = MAX_SUBS,
                  .max_queued_bytes = 256u << 20};
  pw_callbacks cb = {.on_upgrade = on_upgrade};
  pw_server *srv = pw_server_new(&o, &cb, NULL);
  CHECK(srv != NULL);
  CHECK_EQ_INT(pw_server_start(srv), 0);
  int port = pw_server_port(srv);
  test_args(srv, port);
  test_no_gap(srv, port);
  pw_server_free(srv);
  test_outside_and_503();
  return CHECK_DONE();
}
