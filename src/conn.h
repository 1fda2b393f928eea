/* One connection, owned by its loop thread: states, send queue, close paths.
 * Design notes:
 * - Memory: an idle WebSocket connection holds only this struct (with its uv_tcp_t). Reads go
 *   into the loop's shared buffer; only a partial frame header (<= 14 bytes, inline), a message
 *   being reassembled, or a control frame split across reads get heap storage, freed as soon
 *   as they complete. The send queue's ring is allocated on first send.
 * - A conn is never freed inside a callback that might still use it: closing goes through
 *   uv_close, and the memory is released in its close callback (Redis freeClientAsync). */
#ifndef PW_CONN_H
#define PW_CONN_H

#include <stdint.h>
#include <uv.h>

#include "buf.h"
#include "frame.h"
#include "pushwire.h"
#include "deflate.h"
#include "wsparse.h"

struct pw__loop;
struct pw__http;
struct pw__tls_conn;

enum pw__state {
  PW__S_HTTP,    /* reading HTTP requests (plain ones, or the upgrade) */
  PW__S_OPEN,    /* WebSocket open */
  PW__S_CLOSING, /* we sent a close frame; waiting for the peer's */
  PW__S_DRAIN,   /* last bytes queued; once written, shut down the write side */
  PW__S_LINGER,  /* FIN sent; discard input until EOF or the close timeout */
  PW__S_DEAD,    /* uv_close called; memory goes in the close callback */
};

enum pw__list { PW__L_NONE, PW__L_HTTP, PW__L_OPEN, PW__L_CLOSING };

/* Why a connection's reading is stopped; it reads again only when no reason is left. */
enum pw__pause {
  PW__PAUSE_EVENTS = 1, /* PW_EVQ_PAUSE: the owner's event queue is full (events.c, loop.c) */
  PW__PAUSE_SENDQ = 2,  /* its own send queue is above the high-water mark (conn.c) */
};

/* The send queue: a ring of buffer references; `offset` bytes of the first are written. */
typedef struct pw__sendq {
  pw_buf **ring;
  uint32_t cap, head, count;
  size_t offset;
  size_t bytes;      /* wire bytes queued and not yet written */
  uint32_t inflight; /* entries covered by the pending uv_write (0 = none pending) */
} pw__sendq;

typedef struct pw__conn {
  uv_tcp_t tcp;
  struct pw__loop *loop;
  pw_conn_id id;                /* 0 until the upgrade */
  void *user_data;              /* pw_conn_set_data: the user's, never freed by the library */
  struct pw__conn *prev, *next; /* in the loop's list named by `list` */
  uint64_t last_active_ms;      /* HTTP/OPEN: last input; CLOSING..LINGER: when closing began */
  uint8_t state, list;
  uint8_t dirty : 1, ping_sent : 1;
  uint8_t read_paused : 2;       /* enum pw__pause bits: why reading is stopped (0 = reading) */
  uint8_t opened : 1;            /* on_open was called and on_close not yet */
  uint8_t tls_writing : 1;       /* TLS: a uv_write of copied ciphertext is pending */
  uint8_t tls_notified : 1;      /* TLS: our close_notify is queued (before the FIN) */
  uint8_t tls_plain : 1;         /* TLS: the client spoke plain HTTP; answered in plain */
  struct pw__tls_conn *tls;      /* the TLS engine (tls.h) on the TLS listener, else NULL */
  pw__wsp ws;                    /* the frame/message parser (ws.c drives it) */
  uint8_t pmd_on;                /* permessage-deflate negotiated (pmd.c): pmd holds the terms */
  pw__deflate_params pmd;        /* 5 bytes; the codecs below come with the first message */
  struct pw__inflater *inflater; /* client -> server, lazily (wsparse.c) */
  struct pw__deflater *deflater; /* server -> client with context takeover, lazily (pmd.c) */
  struct pw__http *http;         /* HTTP-phase state (heap, freed at the upgrade) */
  struct pw__conn_sub *subs;     /* this connection's topics (heap, only when subscribed) */
  uint32_t nsubs, subs_cap;
  pw__sendq q;
  uint8_t has_policy : 1; /* slow_policy/max_queued set for this connection */
  uint8_t slow_policy;    /* pw_slow_policy when has_policy */
  uint32_t max_queued;    /* per-connection queue limit in bytes, 0 = the server's */
  uint16_t close_code;    /* the code to report to on_close */
  char *close_reason;     /* heap copy for on_close, or NULL */
} pw__conn;

/* (Re)start reading into the loop's shared buffer. */
void pw__conn_read_start(pw__conn *c);
/* Stop reading an OPEN connection for `reason` (enum pw__pause); 0, or PW_ESTATE past OPEN
 * (a closing connection must go on reading to hear the peer's answer). */
int pw__conn_pause_reads(pw__conn *c, int reason);
/* Drop `reasons`; once none is left the connection reads again, and an OPEN one starts a
 * fresh idle time (its silence was ours). */
void pw__conn_resume_reads(pw__conn *c, int reasons);
/* Accept from `listener` (the TLS one when tls): a conn in the HTTP state. NULL on failure
 * (socket closed). */
pw__conn *pw__conn_accept(struct pw__loop *loop, uv_stream_t *listener, int tls);

/* Queue a buffer (takes the caller's reference) and mark the conn for the next flush. */
void pw__conn_queue(pw__conn *c, pw_buf *b);
/* The one way a message gets into a connection's queue. Send a data message (takes the
 * caller's reference): compressed first when the connection negotiated permessage-deflate
 * (pmd.h), then queued under the slow-consumer policy. 0, PW_EAGAIN (dropped by
 * PW_SLOW_DROP_NEW) or PW_ENOCONN (the client was closed as slow). */
int pw__conn_send(pw__conn *c, pw_buf *b);
/* The same for one fan-out (a publish or a batch, shared by every subscriber: pmd.h). */
struct pw__pmd_share;
int pw__conn_send_shared(pw__conn *c, struct pw__pmd_share *s);
/* The connection's slow-consumer policy and queue limit (its own, or the server's). */
int pw__conn_policy(const pw__conn *c);
size_t pw__conn_queue_limit(const pw__conn *c);
/* Queue a data or control frame with a copy of the payload. 0 or PW_ENOMEM. */
int pw__conn_send_frame(pw__conn *c, int opcode, const void *data, size_t len);
/* Write what is queued: uv_try_write, then uv_write for the rest. */
void pw__conn_flush(pw__conn *c);

/* Start the close handshake (we speak first): send close(code, reason), wait for the peer. */
void pw__conn_close_ws(pw__conn *c, int code, const char *reason);
/* Drop the messages not yet started (counted in stats.dropped_closed), then close_ws: for a
 * client that will not read them (slow, or still behind when a stop's drain time is up). */
void pw__conn_close_dropping(pw__conn *c, int code, const char *reason);
/* Fail the WebSocket connection (RFC 6455 7.1.7): send close(code), then end TCP. */
void pw__conn_fail(pw__conn *c, int code, const char *reason);
/* After what is queued is written, shut down and close (HTTP errors, the close reply). */
void pw__conn_end_after_flush(pw__conn *c);
/* Close the socket now (abnormal end or timeout). Idempotent. */
void pw__conn_destroy(pw__conn *c);

/* Become a WebSocket: assign the id, enter the OPEN list. 0 or PW_ENOMEM/PW_EAGAIN. */
int pw__conn_upgrade(pw__conn *c);

/* For the TLS glue (tlsglue.c), which reads and writes on the connection's behalf: */
#define PW__IOV_MAX 64 /* buffers per writev: enough to batch, small enough for the stack */
/* n bytes of plaintext for the connection's current phase (HTTP or WebSocket). */
void pw__conn_deliver(pw__conn *c, uint8_t *p, size_t n);
/* The peer ended the stream (EOF, or TLS close_notify). */
void pw__conn_eof(pw__conn *c);
/* A write failed: the connection ends now (1006 unless a code was set). */
void pw__conn_write_failed(pw__conn *c);
/* Everything queued is written (the loop hears of it; an ending connection shuts down). */
void pw__conn_drained(pw__conn *c);
/* Fill iov from the queue front: the iovec count, *bytes their total, *entries the queue
 * entries they cover. */
int pw__conn_fill_iov(const pw__sendq *q, uv_buf_t *iov, size_t *bytes, uint32_t *entries);
/* `bytes` of the queue front are written: release the finished buffers. */
void pw__conn_advance(pw__conn *c, size_t bytes);
/* A burst is over: give a big, empty ring back. */
void pw__conn_shrink(pw__sendq *q);

#endif
