/* Clients that vanish at the worst moment, with real sockets: a reset (RST: SO_LINGER 0,
 * then close) in the middle of a frame, in the middle of the handshake and while the server
 * is writing a large queue to the client, and a FIN in the middle of a fragmented message.
 * Each time: on_close runs exactly once, with 1006 (no close frame came), what the
 * connection held is released, and a bystander is served throughout. ASan (leaks, use after
 * free) and TSan runs of this test cover the memory side.
 * Checked: with the read error ignored in conn.c's on_read (`if (nread < 0) return;`), no
 * on_close came for the mid-frame and FIN cases and the mid-handshake connections stayed
 * (the loop's connection count did not fall): test failed; the mid-write case still passed,
 * as the failing write ends that connection. With the write errors in flush and on_written
 * ignored as well, the mid-write case failed too (no on_close, queue never released). */
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

static void on_message(pw_server *srv, pw_conn_id id, const void *data, size_t len, int is_binary,
                       void *user) {
  pw_send(srv, id, data, len, is_binary ? PW_BINARY : PW_TEXT);
}

/* How many times on_close reported this id (must end at exactly 1). */
static int closes_of(pw_conn_id id) {
  th_events e = th_snapshot();
  int n = 0;
  for (int i = 0; i < e.closes && i < TH_MAX; i++) n += e.closed[i] == id;
  return n;
}

/* Wait for id's on_close, give a second one time to show up, return the reported code. */
static int close_code_once(pw_conn_id id) {
  uint64_t end = now_ms() + 3000;
  while (closes_of(id) == 0 && now_ms() < end) sleep_ms(1);
  sleep_ms(100);
  CHECK_EQ_INT(closes_of(id), 1);
  return th_close_code(id);
}

static void bystander_echo(wsc *b, const char *msg) {
  CHECK_EQ_INT(wsc_send(b, 1, 1, msg, strlen(msg)), 0);
  wsc_frame f = {0};
  CHECK_EQ_INT(wsc_recv(b, &f, 3000), 0);
  CHECK(f.len == strlen(msg) && memcmp(f.payload, msg, f.len) == 0);
  free(f.payload);
}

static pw_conn_id open_client(pw_server *srv, wsc *c, int rcvbuf) {
  int n = th_snapshot().opens;
  if (wsc_connect_rcvbuf(c, pw_server_port(srv), "/", rcvbuf) != 0) return 0;
  return th_wait_open(n + 1, 3000);
}

static void reset_mid_frame(pw_server *srv, wsc *bystander) {
  wsc c;
  pw_conn_id id = open_client(srv, &c, 0);
  CHECK(id != 0);
  uint8_t frame[14 + 2000] = {0};
  size_t h = raw_frame_header(frame, 2, 1, 2000);
  CHECK_EQ_INT(raw_send(c.fd, frame, h + 700), 0); /* the header and 700 of 2000 bytes */
  sleep_ms(20);
  raw_reset(c.fd);
  c.fd = -1;
  wsc_close(&c);
  CHECK_EQ_INT(close_code_once(id), 1006);
  bystander_echo(bystander, "after a reset mid-frame");
}

static void reset_mid_handshake(pw_server *srv, wsc *bystander) {
  uint32_t before = loop_live_conns(srv);
  int opens = th_snapshot().opens, closes = th_snapshot().closes;
  for (int i = 0; i < 3; i++) {
    int fd = raw_open(pw_server_port(srv));
    CHECK(fd >= 0);
    CHECK_EQ_INT(raw_send(fd, raw_upgrade_request, 40), 0); /* 40 bytes of the head */
    sleep_ms(20);
    raw_reset(fd);
  }
  uint64_t end = now_ms() + 2000; /* well before the 10 s handshake timeout */
  while (loop_live_conns(srv) > before && now_ms() < end) sleep_ms(5);
  CHECK_EQ_INT(loop_live_conns(srv), before);
  CHECK_EQ_INT(th_snapshot().opens, opens); /* never opened, so no on_close either */
  CHECK_EQ_INT(th_snapshot().closes, closes);
  bystander_echo(bystander, "after resets mid-handshake");
}

static uint64_t queued_bytes(pw_server *srv) {
  pw_stats st;
  return pw_server_stats(srv, &st) == 0 ? st.queued_bytes : 0;
}

static void reset_mid_write(pw_server *srv, wsc *bystander) {
  wsc c;
  pw_conn_id id = open_client(srv, &c, 4096); /* a small window: the server must wait */
  CHECK(id != 0);
  static char chunk[64 * 1024];
  for (int i = 0; i < 64; i++) CHECK_EQ_INT(pw_send(srv, id, chunk, sizeof chunk, PW_BINARY), 0);
  uint64_t end = now_ms() + 3000;
  while (queued_bytes(srv) < (1u << 20) && now_ms() < end) sleep_ms(1);
  CHECK(queued_bytes(srv) >= (1u << 20)); /* megabytes still waiting for the socket */
  raw_reset(c.fd);
  c.fd = -1;
  wsc_close(&c);
  CHECK_EQ_INT(close_code_once(id), 1006);
  end = now_ms() + 3000;
  while (queued_bytes(srv) > 0 && now_ms() < end) sleep_ms(1);
  CHECK_EQ_INT(queued_bytes(srv), 0); /* the queue was released */
  pw_stats st;
  CHECK_EQ_INT(pw_server_stats(srv, &st), 0);
  CHECK(st.dropped_closed > 0);
  bystander_echo(bystander, "after a reset mid-write");
}

static void fin_mid_message(pw_server *srv, wsc *bystander) {
  wsc c;
  pw_conn_id id = open_client(srv, &c, 0);
  CHECK(id != 0);
  CHECK_EQ_INT(wsc_send(&c, 1, 0, "first half, ", 12), 0); /* a message left unfinished */
  sleep_ms(20);
  wsc_close(&c); /* FIN, no close frame */
  CHECK_EQ_INT(close_code_once(id), 1006);
  bystander_echo(bystander, "after a FIN mid-message");
}

int main(void) {
  pw_options o = {.max_queued_bytes = 32u << 20};
  pw_server *srv = th_start(&o, on_message);
  CHECK(srv != NULL);
  if (!srv) return CHECK_DONE();
  /* Two bystanders: one echoes between the cases, one has a message in progress throughout
   * (a data frame may not interleave with a fragmented message, so they cannot be one). */
  wsc bystander, pending;
  CHECK(open_client(srv, &bystander, 0) != 0);
  CHECK(open_client(srv, &pending, 0) != 0);
  CHECK_EQ_INT(wsc_send(&pending, 1, 0, "in progress", 11), 0);

  reset_mid_frame(srv, &bystander);
  reset_mid_handshake(srv, &bystander);
  reset_mid_write(srv, &bystander);
  fin_mid_message(srv, &bystander);

  /* the message begun before all this still completes */
  CHECK_EQ_INT(wsc_send(&pending, 0, 1, " and done", 9), 0);
  wsc_frame f = {0};
  CHECK_EQ_INT(wsc_recv(&pending, &f, 3000), 0);
  CHECK(f.len == 20 && memcmp(f.payload, "in progress and done", 20) == 0);
  free(f.payload);
  wsc_close(&pending);
  wsc_close(&bystander);
  pw_server_free(srv);
  return CHECK_DONE();
}
