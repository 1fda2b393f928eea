/* The TLS glue of a connection: its reads through the pure TLS engine (tls.c) into the
 * connection's read path, and its flushes of plaintext into records for the socket. What
 * tls.h's "what the connection glue must do" asks. Loop thread only.
 * Design notes:
 * - Reads: the loop's buffer holds ciphertext; the engine copies it, so the same buffer then
 *   receives the plaintext, handed to the HTTP/WebSocket read path exactly as plain bytes.
 * - Writes: the send queue keeps plaintext (shared frames stay shared); a flush packs one
 *   batch of it (the iovec a plain writev would get) into full records, releases those
 *   buffers, and offers the ciphertext to the socket. Only what the socket did not take is
 *   copied, into one uv_write; no more is encrypted until it is written, so the ciphertext
 *   waiting per connection is at most one batch and the queue's byte limit (slow clients)
 *   keeps acting on the plaintext behind it.
 * - Failures (plain HTTP, bad certificate, garbage): logged at most once per
 *   PW__RATELOG_MS with a count, so a scan cannot flood the log; then the alert (or a
 *   plain 400 to plain HTTP) is written and the connection ends like an HTTP error. A client
 *   that stalls mid-handshake sits in the HTTP list from accept: the handshake timeout ends it.
 * - Close: our close_notify goes right before the FIN (state DRAIN). */
#include "tlsglue.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "loop.h"
#include "server.h"
#include "tls.h"

_Static_assert(sizeof(uv_buf_t) == sizeof(struct iovec) &&
                   offsetof(uv_buf_t, base) == offsetof(struct iovec, iov_base) &&
                   offsetof(uv_buf_t, len) == offsetof(struct iovec, iov_len),
               "uv_buf_t is passed to the TLS engine as struct iovec");

static const char plain_on_tls_port[] =
    "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
    "Content-Length: 45\r\nConnection: close\r\n\r\n"
    "This port speaks TLS: use https:// or wss://\n";

typedef struct pw__tls_write {
  uv_write_t req;
  uint8_t data[]; /* the ciphertext the socket did not take at once */
} pw__tls_write;

static void report_tls_failure(pw__conn *c) {
  pw__loop *l = c->loop;
  char why[256], peer[64] = "?";
  struct sockaddr_storage sa;
  int len = sizeof sa;
  uint64_t count;
  if (!pw__ratelog_due(&l->tls_failures, l->now_ms, 1, &count)) return;
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&sa, &len) == 0)
    uv_ip_name((struct sockaddr *)&sa, peer, sizeof peer);
  pw__log(l->srv, PW_LOG_WARN,
          "TLS connection from %s closed: %s (%llu TLS failure(s) since "
          "the last report, at most one report every %d s)",
          peer, pw__tls_conn_strerror(c->tls, why, sizeof why), (unsigned long long)count,
          PW__RATELOG_MS / 1000);
}

/* The engine said no: log, answer (the alert it queued, or a plain 400 to plain HTTP: those
 * bytes were cleartext, so a cleartext answer is readable), end after the flush. */
static void tls_failed(pw__conn *c, int r) {
  report_tls_failure(c);
  if (r == PW__TLS_EPLAIN) {
    pw_buf *b = pw__buf_new_raw(plain_on_tls_port, sizeof plain_on_tls_port - 1);
    c->tls_plain = 1;
    if (b) pw__conn_queue(c, b);
  }
  pw__conn_end_after_flush(c);
}

void pw__tlsglue_read(pw__conn *c, uint8_t *p, size_t n) {
  const uint8_t *out;
  long got = 0;
  if (c->state >= PW__S_DRAIN) return; /* ending: input is discarded, as in plain */
  int r = pw__tls_conn_feed(c->tls, p, n);
  while (r == 0 && c->state < PW__S_DRAIN &&
         (got = pw__tls_conn_read(c->tls, p, PW__READ_BUF_SIZE)) > 0)
    pw__conn_deliver(c, p, (size_t)got);
  if (r == 0 && got < 0) r = (int)got;
  if (r == PW__TLS_EOF) return pw__conn_eof(c); /* the peer's close_notify: as TCP EOF */
  if (r != 0) return c->state < PW__S_DRAIN ? tls_failed(c, r) : (void)0;
  if (pw__tls_conn_out(c->tls, &out) > 0) pw__mark_dirty(c->loop, c); /* flights, tickets */
}

static void on_tls_written(uv_write_t *req, int status) {
  pw__conn *c = req->handle->data;
  free(req);
  if (c->state == PW__S_DEAD) return;
  c->tls_writing = 0;
  if (status < 0) return pw__conn_write_failed(c);
  pw__conn_flush(c);
}

/* Copy n bytes of ciphertext (the engine's output from p on, all of it) into a uv_write. */
static void write_cipher_async(pw__conn *c, const uint8_t *p, size_t n) {
  pw__tls_write *w = malloc(sizeof *w + n);
  if (!w) return pw__conn_write_failed(c);
  memcpy(w->data, p, n);
  pw__tls_conn_out_consume(c->tls, pw__tls_conn_out(c->tls, &p));
  uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)n);
  if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_tls_written) != 0) {
    free(w);
    return pw__conn_write_failed(c);
  }
  c->tls_writing = 1;
}

/* Offer the engine's ciphertext to the socket: 1 if all of it went. Else 0: the rest is in a
 * uv_write (may_end), or stays in the engine for the next flush, or the write failed. */
static int send_cipher(pw__conn *c, int may_end) {
  const uint8_t *p;
  size_t n = pw__tls_conn_out(c->tls, &p);
  if (n == 0) return 1;
  uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
  int r = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
  if (r == UV_EAGAIN) r = 0;
  if (r < 0) return may_end ? (pw__conn_write_failed(c), 0) : 0;
  if ((size_t)r == n) return pw__tls_conn_out_consume(c->tls, n), 1;
  if (may_end) write_cipher_async(c, p + r, n - (size_t)r);
  else pw__tls_conn_out_consume(c->tls, (size_t)r);
  return 0;
}

/* Encrypt one batch of the queue (packed into records) and release its buffers. */
static int encrypt_batch(pw__conn *c) {
  uv_buf_t iov[PW__IOV_MAX];
  size_t bytes;
  uint32_t entries;
  int n = pw__conn_fill_iov(&c->q, iov, &bytes, &entries);
  int r = pw__tls_conn_writev(c->tls, (const struct iovec *)iov, (size_t)n);
  if (r == 0) pw__conn_advance(c, bytes);
  return r;
}

/* The TLS flush: as conn.c's flush (same may_end rule), through the engine. */
void pw__tlsglue_flush(pw__conn *c, int may_end) {
  pw__sendq *q = &c->q;
  if (c->tls_writing || c->state == PW__S_DEAD) return;
  while (send_cipher(c, may_end)) {
    if (q->count > 0 && !c->tls_notified && pw__tls_conn_state(c->tls) == PW__TLS_OPEN) {
      if (encrypt_batch(c) != 0) return may_end ? pw__conn_write_failed(c) : (void)0;
      continue;
    }
    if (!may_end) return;
    if (c->state == PW__S_DRAIN && !c->tls_notified) { /* close_notify, then the FIN */
      c->tls_notified = 1;
      pw__tls_conn_shutdown(c->tls);
      continue;
    }
    pw__conn_shrink(q);
    return pw__conn_drained(c);
  }
}
