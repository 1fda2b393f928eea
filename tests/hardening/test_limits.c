/* Limits answered correctly, with real sockets:
 *  - max_connections: with MAXC WebSockets open, the next upgrade gets 503 and the
 *    connection ends; no on_open for it; once one closes, a new upgrade is accepted.
 *    Checked: with the check removed from conn.c's pw__conn_upgrade, the extra client got
 *    101: test failed.
 *  - max_subscriptions: on the loop thread the subscription past the limit returns
 *    PW_EAGAIN; from another thread it is refused on the loop and logged, and a publish to
 *    that topic does not reach the client; unsubscribing frees a place.
 *    Checked: with the check removed from topic.c's pw__topic_subscribe, the fourth
 *    subscription returned 0 and its publish arrived: test failed.
 * (max_head_size -> 431, max_message_size -> 1009, the handshake timeout, the ping interval
 * and idle timeout are proven against pw-echo in tests/conformance: test_handshake.py,
 * test_fragmentation.py, test_robustness.py; max_queued_bytes in tests/api/test_slow_client.c.) */
#include <pushwire.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../support/harness.h"
#include "../support/wsclient.h"
#include "../support/check.h"
#include "../support/clock.h"
#include "raw.h"

#define MAXC 3

static void max_connections(void) {
  pw_options o = {.max_connections = MAXC};
  pw_server *srv = th_start(&o, NULL);
  CHECK(srv != NULL);
  if (!srv) return;
  int port = pw_server_port(srv);
  wsc c[MAXC];
  for (int i = 0; i < MAXC; i++) CHECK_EQ_INT(wsc_connect(&c[i], port, "/"), 0);
  CHECK(th_wait_open(MAXC, 3000) != 0);

  int fd = raw_open(port);
  CHECK_EQ_INT(raw_send(fd, raw_upgrade_request, strlen(raw_upgrade_request)), 0);
  CHECK_EQ_INT(raw_read_status(fd, 3000), 503);
  CHECK_EQ_INT(raw_wait_end(fd, 3000), 0); /* and the server ends the connection */
  close(fd);
  CHECK_EQ_INT(th_snapshot().opens, MAXC); /* the refused one never opened */

  wsc_close(&c[0]); /* a place frees up... */
  CHECK(th_wait_closes(1, 3000));
  wsc again; /* ...and the next upgrade gets it */
  CHECK_EQ_INT(wsc_connect(&again, port, "/"), 0);
  CHECK(th_wait_open(MAXC + 1, 3000) != 0);
  wsc_close(&again);
  for (int i = 1; i < MAXC; i++) wsc_close(&c[i]);
  pw_server_free(srv);
}

/* ---- max_subscriptions ---------------------------------------------------------------------- */
#define MAXS 3
static _Atomic int sub_results[MAXS + 1];
static _Atomic pw_conn_id sub_conn;
static _Atomic int refusals_logged;

/* On the loop thread: one subscription more than allowed. */
static void subscribe_on_open(pw_server *srv, pw_conn_id id, const pw_request *req, void *user) {
  char topic[8];
  for (int i = 0; i <= MAXS; i++) {
    snprintf(topic, sizeof topic, "t%d", i);
    atomic_store(&sub_results[i], pw_subscribe(srv, id, topic));
  }
  atomic_store(&sub_conn, id);
}

static void on_log(int level, const char *msg, void *user) {
  if (strstr(msg, "subscription to t4 refused")) atomic_fetch_add(&refusals_logged, 1);
}

static int wait_subscribers(pw_server *srv, const char *topic, int n) {
  uint64_t end = now_ms() + 3000;
  int got;
  while ((got = pw_topic_subscribers(srv, topic)) != n && now_ms() < end) sleep_ms(5);
  return got;
}

static void max_subscriptions(void) {
  pw_options o = {.max_subscriptions = MAXS, .log = on_log, .log_level = PW_LOG_WARN};
  pw_callbacks cb = {.on_open = subscribe_on_open};
  pw_server *srv = pw_server_new(&o, &cb, NULL);
  CHECK(srv != NULL);
  if (!srv || pw_server_start(srv) != 0) return;
  wsc c;
  CHECK_EQ_INT(wsc_connect(&c, pw_server_port(srv), "/"), 0);
  uint64_t end = now_ms() + 3000;
  while (!atomic_load(&sub_conn) && now_ms() < end) sleep_ms(1);
  pw_conn_id id = atomic_load(&sub_conn);
  for (int i = 0; i < MAXS; i++) CHECK_EQ_INT(atomic_load(&sub_results[i]), 0);
  CHECK_EQ_INT(atomic_load(&sub_results[MAXS]), PW_EAGAIN);

  /* From this thread the refusal happens later, on the loop: logged, and nothing arrives. */
  CHECK_EQ_INT(pw_subscribe(srv, id, "t4"), 0);
  CHECK_EQ_INT(wait_subscribers(srv, "t4", 0), 0);
  end = now_ms() + 3000;
  while (!atomic_load(&refusals_logged) && now_ms() < end) sleep_ms(1);
  CHECK_EQ_INT(atomic_load(&refusals_logged), 1);
  CHECK_EQ_INT(pw_publish(srv, "t3", "to t3", 5, PW_TEXT), 0);
  CHECK_EQ_INT(pw_publish(srv, "t4", "to t4", 5, PW_TEXT), 0);
  CHECK_EQ_INT(pw_publish(srv, "t0", "to t0", 5, PW_TEXT), 0);
  wsc_frame f = {0};
  CHECK_EQ_INT(wsc_recv(&c, &f, 3000), 0); /* in publish order: t3 and t4 would come first */
  CHECK(f.len == 5 && memcmp(f.payload, "to t0", 5) == 0);
  free(f.payload);

  /* the limit counts current subscriptions: one given up makes room for another */
  CHECK_EQ_INT(pw_unsubscribe(srv, id, "t0"), 0);
  CHECK_EQ_INT(pw_subscribe(srv, id, "t5"), 0);
  CHECK_EQ_INT(wait_subscribers(srv, "t5", 1), 1);
  wsc_close(&c);
  pw_server_free(srv);
}

int main(void) {
  max_connections();
  max_subscriptions();
  return CHECK_DONE();
}
