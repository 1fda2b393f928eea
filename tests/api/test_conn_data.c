/* pw_conn_set_data / pw_conn_data: a pointer set in on_open is the one every on_message of
 * that connection sees and is still readable in its on_close (where the user frees it), for
 * a client that closes, one the server closes and one the stop closes; the library never
 * frees it. Stale ids, id 0, ids of another loop, other threads and a NULL server get the
 * documented answers. (Checked to fail with the closing_conn lookup in conn.c's user_conn
 * removed: on_close reads NULL, so no state is found or freed there.) */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "../support/harness.h"
#include "../support/wsclient.h"
#include "../support/check.h"

typedef struct state {
  pw_conn_id id;
  int messages;
} state;

/* Counted on the loop thread, checked by the test thread (CHECK itself is not thread-safe). */
static _Atomic int opened_null, set_ok, wrong_state, close_found, reset_ok, freed;
static _Atomic int close_counts[3]; /* messages seen, by the state's close order */

static void on_open(pw_server *srv, pw_conn_id id, const pw_request *req, void *user) {
  th_on_open(srv, id, req, user);
  if (pw_conn_data(srv, id) == NULL) atomic_fetch_add(&opened_null, 1); /* starts NULL */
  state *s = calloc(1, sizeof *s);
  s->id = id;
  if (pw_conn_set_data(srv, id, s) == 0) atomic_fetch_add(&set_ok, 1);
}

/* Each message is answered with the count its connection's state has reached. */
static void on_message(pw_server *srv, pw_conn_id id, const void *d, size_t n, int b, void *u) {
  (void)d, (void)n, (void)b, (void)u;
  state *s = pw_conn_data(srv, id);
  if (!s || s->id != id) {
    atomic_fetch_add(&wrong_state, 1);
    return;
  }
  char reply[16];
  int len = snprintf(reply, sizeof reply, "%d", ++s->messages);
  pw_send(srv, id, reply, (size_t)len, PW_TEXT);
}

static void on_close(pw_server *srv, pw_conn_id id, int code, const char *reason, void *user) {
  state *s = pw_conn_data(srv, id);
  if (s && s->id == id) {
    int k = atomic_fetch_add(&close_found, 1);
    if (k < 3) atomic_store(&close_counts[k], s->messages);
    if (pw_conn_set_data(srv, id, NULL) == 0) atomic_fetch_add(&reset_ok, 1); /* there too */
    free(s);
    atomic_fetch_add(&freed, 1);
  }
  th_on_close(srv, id, code, reason, user);
}

static pw_server *start(int threads) {
  pw_options o = {.threads = threads, .close_timeout_ms = 500};
  pw_callbacks cb = {.on_open = on_open, .on_message = on_message, .on_close = on_close};
  pw_server *srv = pw_server_new(&o, &cb, NULL);
  CHECK(srv != NULL);
  CHECK_EQ_INT(pw_server_start(srv), 0);
  return srv;
}

/* Send n messages; each answer must be the running count. */
static void talk(wsc *c, int n) {
  for (int i = 1; i <= n; i++) {
    CHECK_EQ_INT(wsc_send(c, 0x1, 1, "x", 1), 0);
    wsc_frame f;
    CHECK_EQ_INT(wsc_recv(c, &f, 3000), 0);
    char want[16];
    snprintf(want, sizeof want, "%d", i);
    CHECK(f.opcode == 0x1 && f.len == strlen(want) && memcmp(f.payload, want, f.len) == 0);
    free(f.payload);
  }
}

/* Run on the loop thread (loop 0) with a stale or foreign id: the answers to record. */
typedef struct probe {
  pw_conn_id id;
  _Atomic int done;
  int set_result;
  void *got;
} probe;

static void probe_on_loop(pw_server *srv, void *arg) {
  probe *p = arg;
  p->set_result = pw_conn_set_data(srv, p->id, &p->done);
  p->got = pw_conn_data(srv, p->id);
  atomic_store(&p->done, 1);
}

static int probe_done(void *arg) { return atomic_load(&((probe *)arg)->done); }

static probe run_probe(pw_server *srv, pw_conn_id id) {
  probe p = {.id = id};
  CHECK_EQ_INT(pw_call(srv, probe_on_loop, &p), 0);
  CHECK(th_wait(probe_done, &p, 3000));
  return p;
}

static void test_lifetime(void) {
  pw_server *srv = start(1);
  int port = pw_server_port(srv);
  wsc a, b, c;
  CHECK_EQ_INT(wsc_connect(&a, port, "/"), 0);
  pw_conn_id ida = th_wait_open(1, 3000);
  CHECK_EQ_INT(wsc_connect(&b, port, "/"), 0);
  pw_conn_id idb = th_wait_open(2, 3000);
  CHECK_EQ_INT(wsc_connect(&c, port, "/"), 0);
  pw_conn_id idc = th_wait_open(3, 3000);
  talk(&a, 3);
  talk(&b, 1);
  talk(&c, 2);
  /* Another thread: refused, and the pointer is not handed out. */
  CHECK_EQ_INT(pw_conn_set_data(srv, ida, &a), PW_ETHREAD);
  CHECK(pw_conn_data(srv, ida) == NULL);
  CHECK_EQ_INT(pw_conn_set_data(NULL, ida, &a), PW_EINVAL);
  CHECK(pw_conn_data(NULL, ida) == NULL);
  /* a closes itself; b is closed by the server; c by the stop. */
  CHECK_EQ_INT(wsc_send(&a, 0x8, 1, "\x03\xe8", 2), 0);
  CHECK(th_wait_closes(1, 3000));
  CHECK_EQ_INT(pw_close(srv, idb, 4000, "bye"), 0);
  CHECK(th_wait_closes(2, 3000));
  CHECK_EQ_INT(atomic_load(&close_counts[0]), 3);
  CHECK_EQ_INT(atomic_load(&close_counts[1]), 1);
  /* The loop thread, but a closed id (and id 0): no connection. */
  probe p = run_probe(srv, ida);
  CHECK_EQ_INT(p.set_result, PW_ENOCONN);
  CHECK(p.got == NULL);
  p = run_probe(srv, 0);
  CHECK_EQ_INT(p.set_result, PW_ENOCONN);
  CHECK(p.got == NULL);
  CHECK(pw_conn_data(srv, idc) == NULL); /* still open, but this is not its thread */
  pw_server_stop(srv);
  CHECK_EQ_INT(atomic_load(&close_counts[2]), 2);
  CHECK_EQ_INT(atomic_load(&opened_null), 3);
  CHECK_EQ_INT(atomic_load(&set_ok), 3);
  CHECK_EQ_INT(atomic_load(&wrong_state), 0);
  CHECK_EQ_INT(atomic_load(&close_found), 3);
  CHECK_EQ_INT(atomic_load(&reset_ok), 3);
  CHECK_EQ_INT(atomic_load(&freed), 3); /* every state freed by its on_close */
  wsc_close(&a);
  wsc_close(&b);
  wsc_close(&c);
  pw_server_free(srv);
}

/* With two loops, loop 0 (where pw_call runs) may not touch loop 1's connections: that is
 * another thread's state. A loop index past the last is no connection at all. */
static void test_other_loop(void) {
  pw_server *srv = start(2);
  pw_conn_id other = ((pw_conn_id)1 << 56) | ((pw_conn_id)3 << 32) | 1u;
  probe p = run_probe(srv, other);
  CHECK_EQ_INT(p.set_result, PW_ETHREAD);
  CHECK(p.got == NULL);
  p = run_probe(srv, ((pw_conn_id)9 << 56) | 1u);
  CHECK_EQ_INT(p.set_result, PW_ENOCONN);
  CHECK(p.got == NULL);
  pw_server_free(srv);
}

int main(void) {
  test_lifetime();
  test_other_loop();
  return CHECK_DONE();
}
