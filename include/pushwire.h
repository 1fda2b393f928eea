/* pushwire: push messages to WebSocket clients from any thread, safely and fast.
 *
 * The one public header. Everything public starts with pw_ / PW_.
 * Threading rule: connection state belongs to the server's event-loop thread. Every call
 * below states the threads it may be called from; callbacks state the thread they run on.
 * Errors: calls return 0 (or a count) on success and a negative PW_E* code on failure;
 * nothing in the library aborts or exits on bad input. */
#ifndef PUSHWIRE_H
#define PUSHWIRE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* PW_API marks every public call. The library is built with hidden visibility, so the shared
 * object exports exactly these (and a version script keeps bundled code such as llhttp out). */
#if defined(PW_BUILDING) && defined(__GNUC__)
#define PW_API __attribute__((visibility("default")))
#else
#define PW_API
#endif

#define PW_VERSION_MAJOR 0
#define PW_VERSION_MINOR 1
#define PW_VERSION_PATCH 0

/* ---- errors ---------------------------------------------------------------------------- */
/* One table; the enum, pw_strerror() and pw_err_name() are generated from it. */
#define PW_ERRNO_MAP(X)                                              \
  X(EINVAL, -1, "invalid argument")                                  \
  X(ENOMEM, -2, "out of memory")                                     \
  X(ENOCONN, -3, "no such connection (unknown, stale or closed id)") \
  X(ESTOPPED, -4, "server is stopped or stopping")                   \
  X(EAGAIN, -5, "queue full, try again later")                       \
  X(EALREADY, -6, "already running")                                 \
  X(EADDRINUSE, -7, "address already in use")                        \
  X(EBIND, -8, "cannot bind or listen on the address")               \
  X(ESTATE, -9, "call not valid in the server's current state")      \
  X(ETOOBIG, -10, "message larger than allowed")                     \
  X(EIO, -11, "input/output error")                                  \
  X(ETIMEDOUT, -12, "timed out")                                     \
  X(ETHREAD, -13, "call not allowed from this thread")               \
  X(ENOTFOUND, -14, "not found (no such task, or not subscribed to that topic)")

typedef enum pw_err {
#define PW__ERR_ENUM(name, value, text) PW_##name = (value),
  PW_ERRNO_MAP(PW__ERR_ENUM)
#undef PW__ERR_ENUM
} pw_err;

/* 1 if data[0..len) is complete, valid UTF-8 (RFC 3629: no overlongs, no surrogates, nothing
 * past U+10FFFF), else 0: what a PW_TEXT message must be. The validator the library runs on
 * every text message it receives (fuzzed). Any thread (pure). */
PW_API int pw_utf8_valid(const void *data, size_t len);

/* Human-readable text of an error code; never NULL ("unknown error" for other values). */
PW_API const char *pw_strerror(int code);
/* Symbolic name of an error code ("PW_ENOCONN"); never NULL ("PW_UNKNOWN"). */
PW_API const char *pw_err_name(int code);

/* ---- basic types ----------------------------------------------------------------------- */
typedef struct pw_server pw_server;

/* A connection id: 64-bit, never 0, never reused in the life of a server. It encodes the
 * loop, a slot and that slot's generation, so a stale id is detected, never confused with a
 * newer connection. Safe to copy to any thread. */
typedef uint64_t pw_conn_id;

enum pw_log_level { PW_LOG_ERROR = 0, PW_LOG_WARN = 1, PW_LOG_INFO = 2, PW_LOG_DEBUG = 3 };

/* Flags for messages. */
enum pw_msg_flags {
  PW_TEXT = 0,      /* a text message: the payload must be valid UTF-8 (the caller's promise) */
  PW_BINARY = 1,    /* a binary message */
  PW_BLOCK = 0x100, /* send calls from other threads: when the inbox is full, wait up to
                       options.send_timeout_ms for room (without a time bound when it is
                       negative) instead of returning PW_EAGAIN; pw_server_stop ends the
                       wait at once with PW_ESTOPPED */
};

/* What happens when a connection's send queue would pass its byte limit (a slow client). */
typedef enum pw_slow_policy {
  PW_SLOW_CLOSE = 0,       /* default: close with 1008 "slow consumer"; its queue is freed */
  PW_SLOW_DROP_NEW = 1,    /* drop the new message (counted in stats.dropped_new; PW_EAGAIN
                              on the loop thread; a send from another thread returned 0
                              before the drop, so only the counter tells it) */
  PW_SLOW_DROP_OLDEST = 2, /* drop the oldest whole messages not yet started ("latest wins") */
} pw_slow_policy;

/* RFC 6455 close codes used by the library. */
enum pw_close_code {
  PW_CLOSE_NORMAL = 1000,
  PW_CLOSE_GOING_AWAY = 1001,
  PW_CLOSE_PROTOCOL_ERROR = 1002,
  PW_CLOSE_UNSUPPORTED = 1003,
  PW_CLOSE_NO_STATUS = 1005, /* reported only: the peer's close frame had no code */
  PW_CLOSE_ABNORMAL = 1006,  /* reported only: TCP ended without a close frame */
  PW_CLOSE_INVALID_DATA = 1007,
  PW_CLOSE_POLICY = 1008,
  PW_CLOSE_TOO_BIG = 1009,
  PW_CLOSE_INTERNAL = 1011,
  PW_CLOSE_TRY_AGAIN = 1013,
};

/* ---- HTTP request, as seen by callbacks -------------------------------------------------- */
typedef struct pw_header {
  const char *name; /* not NUL-terminated: use name_len */
  size_t name_len;
  const char *value; /* not NUL-terminated: use value_len; leading/trailing blanks removed */
  size_t value_len;
} pw_header;

/* A parsed request head. Every pointer is owned by the library and valid only for the
 * duration of the callback that received it: copy what you keep. */
typedef struct pw_request {
  const char *method; /* NUL-terminated, e.g. "GET" */
  const char *path;   /* NUL-terminated, without the query, e.g. "/ws" */
  const char *query;  /* NUL-terminated, without '?', "" when absent */
  const pw_header *headers;
  size_t header_count;
  const void *body; /* plain requests only (on_http): the body, body_len bytes */
  size_t body_len;
  const char *remote_addr; /* NUL-terminated "ip:port" of the peer */
  const char *subprotocol; /* on_open only: the selected subprotocol, or NULL */
} pw_request;

/* Case-insensitive header lookup. Returns the header or NULL. Any thread (pure function). */
PW_API const pw_header *pw_request_header(const pw_request *req, const char *name);

/* The answer to a plain HTTP request, filled in by on_http. Zeroed before the call.
 * An invalid answer is not sent: the client gets 500 instead (keep-alive as it asked) and
 * the log a PW_LOG_WARN line saying what was wrong (at most one line per loop every 10 s,
 * with the count since the last one). Invalid: a status outside 200..599 (other than 0;
 * 1xx is no final answer), body NULL with body_len > 0, a content_type with a control
 * character (CR, LF, ...), extra_headers that are not whole lines as below. */
typedef struct pw_response {
  int status;               /* 200..599; 0 = not handled: the library answers 404 */
  const char *content_type; /* NULL = "text/plain; charset=utf-8" */
  const void *body;         /* copied by the library after on_http returns */
  size_t body_len;
  const char *extra_headers; /* NULL, or whole "Name: value\r\n" lines, copied: Name an
                                RFC 9110 token, value without control characters (HTAB
                                allowed), each line ended by CRLF, no empty line, and no
                                Content-Length or Transfer-Encoding (the library writes the
                                framing) */
} pw_response;

struct pw_recovery; /* the result of a subscribe from a position: see "history" below */

/* ---- callbacks --------------------------------------------------------------------------- */
/* All callbacks run on the server's loop thread, one at a time. They may call every pw_*
 * function; a pw_send from a callback takes the direct path (no queue hop). `user` is the
 * pointer given to pw_server_new. Any callback may be NULL. */
typedef struct pw_callbacks {
  /* A WebSocket connection is open (after the 101 was queued). Attach your state to it
   * here with pw_conn_set_data. */
  void (*on_open)(pw_server *srv, pw_conn_id id, const pw_request *req, void *user);
  /* A complete message (fragments reassembled; text already validated as UTF-8). `data` is
   * valid only during the call. */
  void (*on_message)(pw_server *srv, pw_conn_id id, const void *data, size_t len, int is_binary,
                     void *user);
  /* The connection is gone; called exactly once for each on_open. `code` is the peer's close
   * code, the code the server closed with, or 1006 if TCP ended without a close handshake.
   * `reason` is NUL-terminated (possibly ""), valid only during the call. pw_conn_data
   * still returns your pointer here (free it now). */
  void (*on_close)(pw_server *srv, pw_conn_id id, int code, const char *reason, void *user);
  /* A plain (non-upgrade) HTTP request. Fill *res; leave res->status 0 for a 404. An
   * invalid answer is replaced by a 500 (see pw_response). */
  void (*on_http)(pw_server *srv, const pw_request *req, pw_response *res, void *user);
  /* Choose a subprotocol among the client's offers (Sec-WebSocket-Protocol), in the order
   * the client gave them. Return an index into offers, or -1 for none. Without this
   * callback no subprotocol is selected. */
  int (*select_subprotocol)(pw_server *srv, const pw_request *req, const char *const *offers,
                            size_t count, void *user);
  /* Access check before the upgrade, after the handshake itself was found valid and after
   * options.allowed_origins: look at req (path, query, headers such as Origin, Cookie,
   * Authorization or Sec-WebSocket-Protocol) and return 0 to accept, or an HTTP status
   * 400..599 to refuse with (e.g. 401, 403); the client gets that status and no WebSocket,
   * and no other callback runs for it. Other values are answered 500. Runs for every
   * upgrade, whatever deliver_open says; it may choose the connection's first topics with
   * pw_upgrade_subscribe. */
  int (*on_upgrade)(pw_server *srv, const pw_request *req, void *user);
  /* A pw_subscribe made from another thread (it returned 0: the command was accepted) was
   * refused when the loop carried it out: code PW_EAGAIN (the connection already had
   * options.max_subscriptions topics) or PW_ENOMEM. `topic` is valid only during the call.
   * Not called for a connection that closed first (on_close tells that), nor for a refusal
   * on the loop thread (that pw_subscribe returned the code). Each refusal is also counted in
   * stats.subscriptions_refused. Without this callback (and without deliver_refused =
   * PW_DELIVER_QUEUE) the refusal is logged at PW_LOG_WARN. */
  void (*on_subscribe_refused)(pw_server *srv, pw_conn_id id, const char *topic, int code,
                               void *user);
  /* A pw_subscribe_from made from another thread was carried out on the loop: what it did
   * (recovered or why not, the position, how many were replayed). `topic` and `r` are valid
   * only during the call. Not called for a connection that closed first. Without this
   * callback (and without deliver_recovery = PW_DELIVER_QUEUE) nobody hears the result: the
   * subscription is made all the same. */
  void (*on_recovery)(pw_server *srv, pw_conn_id id, const char *topic, const struct pw_recovery *r,
                      void *user);
} pw_callbacks;

/* Only inside on_upgrade, with the req it was given (on the loop thread): subscribe the
 * connection this upgrade creates to `topic` (1..255 bytes, copied). The subscription is
 * made in the same loop step that creates the connection, before on_open runs or the
 * PW_EV_OPEN event is queued, so the client misses no message published after its upgrade
 * was accepted; a program that takes opens in its own thread (deliver_open =
 * PW_DELIVER_QUEUE) cannot promise that with pw_subscribe after the event. Recorded topics
 * are dropped if the upgrade is refused after all (on_upgrade's status, a malformed
 * extension offer, max_connections); if one cannot be subscribed when the connection is
 * made (out of memory), the client gets 500 and no connection opens without it.
 * 0 (also for a topic already recorded), PW_EINVAL (outside on_upgrade, from another
 * thread, another req, topic NULL or not 1..255 bytes), PW_EAGAIN (more topics than
 * options.max_subscriptions), PW_ENOMEM. */
PW_API int pw_upgrade_subscribe(const pw_request *req, const char *topic);

/* How an event kind reaches the program: by callback on the loop thread (default), or queued
 * for the owner's thread, which takes it with pw_next_event (see "events" below). */
typedef enum pw_deliver { PW_DELIVER_CALLBACK = 0, PW_DELIVER_QUEUE = 1 } pw_deliver;

/* What a full event queue does to the client whose message does not fit. Opens and closes
 * are always queued (they are bounded by the connections), so pairs are never broken. */
typedef enum pw_event_policy {
  PW_EVQ_PAUSE = 0, /* default: queue it, then stop reading from that client (TCP
                       backpressure) until the owner has drained the queue to half */
  PW_EVQ_CLOSE = 1, /* drop it and close the client with 1013 "try again later" */
  PW_EVQ_DROP = 2,  /* drop it and count it (stats.events_dropped) */
} pw_event_policy;

/* ---- options ----------------------------------------------------------------------------- */
/* Zero-initialise, then set what you need: every 0 means the documented default. Durations
 * in milliseconds; for the timeouts a negative value turns the feature off. */
typedef struct pw_options {
  const char *bind_address;           /* default "127.0.0.1"; "0.0.0.0" or "::" for all */
  int port;                           /* default 0: the OS picks one; see pw_server_port(); -1:
                                         no plain listener (TLS only, see tls.cert_file) */
  const char *const *ws_paths;        /* NULL-terminated list of paths that accept the upgrade;
                                         default NULL: every path accepts it */
  const char *const *allowed_origins; /* NULL-terminated list of Origin values (e.g.
                                         "https://example.com", compared case-insensitively) that
                                         may upgrade; others get 403. A request without Origin
                                         (not a browser) passes. Default NULL: no Origin check */
  size_t max_message_size;            /* default 16 MiB; larger messages are closed with 1009 */
  uint32_t max_message_frames;        /* default 65536: a message of more frames (fragments) is
                                         closed with 1009, so empty fragments cannot keep one
                                         message going forever; 65536 lets a 4 MiB message come
                                         in 64-byte fragments (Autobahn 9.3.1) */
  size_t max_head_size;               /* default 8 KiB; larger request heads get 431 */
  size_t max_body_size;               /* default 1 MiB for plain HTTP bodies; larger get 413 */
  int idle_timeout_ms;                /* default 120000: close (1001) a client silent this long */
  int ping_interval_ms;               /* default 30000: ping a client silent this long */
  int handshake_timeout_ms;           /* default 10000: drop a client whose head is not complete */
  int close_timeout_ms;               /* default 3000: wait for the peer's close frame/EOF */
  int drain_timeout_ms;               /* default 5000: at pw_server_stop, how long clients get to
                                         read what was accepted for them before their 1001; then
                                         the rest is dropped (stats.dropped_closed). 5 s lets a
                                         client reading at 200 KB/s empty a full default queue
                                         (1 MiB), and with the close timeout (8 s in all) fits well
                                         inside the usual SIGTERM-to-SIGKILL grace (systemd 90 s,
                                         Kubernetes 30 s). < 0: no drain, the 1001 goes at once */
  int max_connections;                /* default 100000: WebSocket connections open at once on the
                                         whole server (every loop together); above it new upgrades
                                         get 503 */
  int backlog;                        /* default 511 */
  size_t max_queued_bytes;            /* default 1 MiB: per-connection send queue limit (see
                                         pw_slow_policy; a single larger message is still accepted
                                         into an empty queue). A read that leaves a client's queue
                                         above half of its limit stops reading that client (TCP
                                         pushes back) until the queue drains below a quarter, so a
                                         request/response client that pipelines is not taken for a
                                         slow one (replies made in callbacks; see docs/api.md,
                                         "Backpressure"); pushes it does not read still meet the
                                         policy */
  pw_slow_policy slow_policy;         /* default PW_SLOW_CLOSE */
  size_t max_inbox_bytes;             /* default 64 MiB: payload bytes in commands not yet drained,
                                         per loop; past it, sends from other threads get PW_EAGAIN
                                         (or wait, with PW_BLOCK). A single larger message is still
                                         accepted into an empty inbox (as max_queued_bytes does), so
                                         a loop's inbox holds at most this + one message */
  size_t inbox_capacity;      /* default 65536 commands per loop (rounded up to a power of 2) */
  int send_timeout_ms;        /* default 1000: how long PW_BLOCK waits for room; < 0: no
                                 time bound (until there is room, or the stop) */
  int threads;                /* default 1: event-loop threads; connections are spread over
                                 them (SO_REUSEPORT), each with its own connections and
                                 subscriptions; publishes reach all of them */
  uint32_t max_subscriptions; /* default 1024 topics per connection */
  /* Event delivery, per kind (default: callbacks). A queued kind's callback is not called.
   * deliver_refused is for on_subscribe_refused / PW_EV_SUBSCRIBE_REFUSED, deliver_recovery
   * for on_recovery / PW_EV_RECOVERY. */
  pw_deliver deliver_open, deliver_message, deliver_close, deliver_refused, deliver_recovery;
  size_t history_memory;            /* default 64 MiB: the most wire bytes the history of every
                                       topic together keeps (pw_topic_history); past it the least
                                       recently published topics lose their oldest messages (their
                                       epoch and offset stay) */
  const char *const *event_headers; /* NULL-terminated names of request headers an open
                                       event keeps (e.g. "Origin"); default none */
  size_t max_event_bytes;           /* default 16 MiB of message payload waiting in the queue */
  size_t max_events;                /* default 65536 events waiting in the queue */
  pw_event_policy event_policy;     /* default PW_EVQ_PAUSE */
  /* TLS (wss://), off by default. With tls.cert_file set, a second listener on tls.port
   * speaks TLS (1.2 minimum, ALPN http/1.1, session tickets) beside the plain one on `port`;
   * set port to -1 for TLS only. Files are PEM, read by pw_server_new (a bad file: NULL and
   * one log line) and again by pw_server_reload_tls. The strings must stay valid until
   * pw_server_free. A TLS handshake must finish within handshake_timeout_ms too. */
  struct pw_tls_options {
    const char *cert_file;   /* the certificate, then its chain (leaf first) */
    const char *key_file;    /* its private key */
    const char *ca_file;     /* optional: CAs for client certificates (asked, verified) */
    int require_client_cert; /* 1: refuse clients without a valid one (needs ca_file) */
    int port;                /* default 0: the OS picks one; see pw_server_tls_port() */
  } tls;
  /* Log sink; default: none (silent). Runs on whichever thread logs (mostly the loop). */
  void (*log)(int level, const char *msg, void *user);
  int log_level; /* default 0 = PW_LOG_ERROR ... PW_LOG_DEBUG */
  /* permessage-deflate (RFC 7692), negotiated per client; default off. Every 0 means the
   * default. A client's message inflates to at most max_message_size (1009 past it). Memory
   * per compressing client: ~2^(window+2) + 2^(mem_level+9) bytes of deflate state (262 KiB
   * at 15/8) with context takeover, none between messages without it; inflate ~2^window +
   * 7 KiB, dropped between messages when the client uses no context takeover. */
  struct pw_deflate_options {
    int enable;                     /* 1: accept clients' permessage-deflate offers */
    int server_no_context_takeover; /* 1: compress each message on its own: lets a publish
                                       be compressed once for all such subscribers, and no
                                       deflate state stays allocated per client */
    int client_no_context_takeover; /* 1: ask clients to do the same (our inflate window is
                                       then freed between messages) */
    int server_max_window_bits;     /* 9..15 (8 means 9), default 15 */
    int client_max_window_bits;     /* 9..15 (8 means 9), default 15: offers that cannot be
                                       limited to a smaller value are declined */
    int level;                      /* zlib level 1..9, default 6 */
    int mem_level;                  /* zlib memLevel 1..9, default 8 */
    size_t threshold;               /* compress messages of at least this many bytes,
                                       default 64 (smaller JSON grows when deflated alone) */
  } deflate;
} pw_options;

/* Check options before pw_server_new (which runs the same check): 0, or PW_EINVAL with a
 * line in err (NUL-terminated, cut to errlen) naming the field, its value and what is allowed,
 * e.g. "pw_options.threads = 65: must be 1..64". Zero fields mean their defaults and pass.
 * NULL opt (all defaults) passes; err may be NULL. Any thread (pure). */
PW_API int pw_options_check(const pw_options *opt, char *err, size_t errlen);

/* ---- server lifecycle -------------------------------------------------------------------- */
/* Create a server. `opt` and `cb` are copied (NULL = all defaults / no callbacks); the
 * strings they point to must stay valid until pw_server_free. Returns NULL on bad options
 * (the pw_options_check line goes to opt->log at PW_LOG_ERROR), a TLS file that cannot be
 * loaded (logged likewise) or out of memory. Changes no process-wide state (no signal
 * dispositions: see docs/api.md, "Signals"). Any thread. */
PW_API pw_server *pw_server_new(const pw_options *opt, const pw_callbacks *cb, void *user);

/* Bind, listen, then run the loop in a new thread. Returns once the server listens: 0, or
 * PW_EINVAL (srv NULL, or bind_address is not an IPv4/IPv6 literal), PW_EADDRINUSE (the port
 * is taken), PW_EBIND (any other bind or listen failure, logged), PW_ESTATE (already started,
 * running or stopped; so also from its own loop thread), PW_ENOMEM (a loop thread could not be
 * created: the loops already running are stopped). After a failure, free the server; do not
 * start it again. Any thread but the loop's. */
PW_API int pw_server_start(pw_server *srv);

/* Bind, listen and run the loop in the calling thread until pw_server_stop. Returns 0 after a
 * clean stop, or one of pw_server_start's codes if it could not start. */
PW_API int pw_server_run(pw_server *srv);

/* The port the server listens on (useful with port 0), or a negative code before it
 * listens. Any thread. */
PW_API int pw_server_port(const pw_server *srv);

/* The TLS listener's port, or a negative code (PW_ESTATE before it listens or without TLS).
 * Any thread. */
PW_API int pw_server_tls_port(const pw_server *srv);

/* Re-read options.tls.cert_file/key_file/ca_file (say after a certificate renewal). New
 * connections use the new files; open ones keep theirs. Any thread, while the server runs or
 * not. 0; PW_ESTATE without TLS; PW_EINVAL if a file is bad (logged; the old ones stay). */
PW_API int pw_server_reload_tls(pw_server *srv);

/* Stop gracefully, in this order:
 * 1. At once: new sends, publishes and calls answer PW_ESTOPPED (from every thread, the
 *    loop's too), and every loop's inbox closes: a call still on its way in gets in only if
 *    it got in before (then it returns 0 and its message is delivered in the drain), and a
 *    producer blocked in PW_BLOCK returns PW_ESTOPPED at once, even while the loop is busy
 *    in a callback. The listener closes; every task is asked to stop (pw_task_should_stop).
 * 2. Drain: every message a send or publish had accepted (returned 0) is still delivered,
 *    behind those already queued, to each client that reads, and every accepted pw_call
 *    runs. A client gets its 1001 "server shutting down" as soon as its queue is written
 *    (at once if it is empty), or when drain_timeout_ms has passed: then what was not yet
 *    written to it is dropped and counted in stats.dropped_closed. Plain HTTP: a response
 *    produced before the stop is written, then the connection ends; a request not complete
 *    is not answered.
 * 3. Close handshakes: up to close_timeout_ms more for each client's answer, then the loop
 *    ends. In all, a stop takes at most about drain_timeout_ms + close_timeout_ms. Once every
 *    loop has ended, pw_next_event answers PW_ESTOPPED when the event queue is empty (its
 *    waiters wake) and pw_event_fd stays readable.
 * From a thread other than the loop's it returns when the loops have ended (their threads
 * joined) and the tasks have returned, waiting for tasks at most drain_timeout_ms from the
 * call (one still running then is logged and joined by pw_server_free). From a callback (on
 * the loop thread) it only requests the stop and returns 0 at once; the stop proceeds after
 * the callback. Safe from any thread, from callbacks, tasks and producers, twice or
 * concurrently: every call returns 0. */
PW_API int pw_server_stop(pw_server *srv);

/* Free a server. Stops it first if needed, and waits for every task to return. Not from
 * the server's loop thread nor from one of its tasks (then it logs and does nothing).
 * NULL is ignored. */
PW_API void pw_server_free(pw_server *srv);

/* ---- buffers ---------------------------------------------------------------------------- */
/* A pw_buf is an immutable, reference-counted message whose WebSocket frame header is encoded
 * once, in front of the payload, so the same bytes can be queued to many connections. Every
 * function here is safe from any thread. The last reference, dropped on whatever thread,
 * frees it. */
typedef struct pw_buf pw_buf;

/* A message with a copy of data[0..len). flags: PW_TEXT or PW_BINARY. Returns a buffer
 * holding one reference (yours), or NULL (out of memory, bad flags). */
PW_API pw_buf *pw_buf_new(const void *data, size_t len, int flags);

/* A message over the caller's memory, without copying. The memory must stay valid and
 * unchanged until free_fn(data, ctx) is called; free_fn is called exactly once, on the thread
 * that drops the last reference, after every connection has finished writing or dropped it
 * (delivered, dropped by a policy, connection closed, server stopped). free_fn may be NULL
 * for static memory. If pw_buf_wrap fails (NULL), free_fn is NOT called: the memory is
 * still yours. */
PW_API pw_buf *pw_buf_wrap(const void *data, size_t len, void (*free_fn)(void *data, void *ctx),
                           void *ctx, int flags);

PW_API void pw_buf_ref(pw_buf *buf);               /* take one more reference */
PW_API void pw_buf_unref(pw_buf *buf);             /* drop one; NULL is ignored */
PW_API size_t pw_buf_len(const pw_buf *buf);       /* payload bytes */
PW_API const void *pw_buf_data(const pw_buf *buf); /* payload */

/* ---- connections: safe from any thread ----------------------------------------------------- */
/* From the loop thread (callbacks) these act at once. From any other thread they go through
 * the loop's inbox (a lock-free queue + one coalesced wakeup) and act on the loop thread;
 * per producer thread, messages to one connection are delivered in the order sent.
 * Common results: 0; PW_ENOCONN (id unknown, stale or closed at call time; a connection that
 * closes before delivery drops the message, releases its buffer and counts it in
 * stats.dropped_closed); PW_ESTOPPED (also for a connection the stop has closed); PW_EINVAL;
 * PW_EAGAIN (another thread: the inbox is full or over options.max_inbox_bytes, and with
 * PW_BLOCK still so after send_timeout_ms; the loop thread: dropped by PW_SLOW_DROP_NEW).
 * From another thread, 0 means the loop accepted the command; what the loop refuses later is
 * counted (stats.dropped_closed, dropped_new, subscriptions_refused) and, for a subscription,
 * reported (on_subscribe_refused). */

/* Send one message; the data is copied, so the caller may free it as soon as this returns.
 * flags: PW_TEXT or PW_BINARY, optionally | PW_BLOCK. Besides the common results:
 * PW_ETOOBIG when len > UINT32_MAX - 14 (4 GiB - 15 bytes, so that a frame's wire length
 * fits in 32 bits), checked before copying; PW_ENOMEM (no memory for the copy). No other size
 * limit refuses a send: max_message_size is for messages from clients, and max_queued_bytes
 * and max_inbox_bytes take one larger message when empty. */
PW_API int pw_send(pw_server *srv, pw_conn_id id, const void *data, size_t len, int flags);

/* Send a shared buffer without copying. The call takes its own reference: the caller keeps
 * (and must eventually drop) theirs. flags: 0 or PW_BLOCK. The common results. */
PW_API int pw_send_buf(pw_server *srv, pw_conn_id id, pw_buf *buf, int flags);

/* Start the close handshake with `code` (1000-1003, 1007-1014, 3000-4999) and a reason of at
 * most 123 bytes (NULL = ""). */
PW_API int pw_close(pw_server *srv, pw_conn_id id, int code, const char *reason);

/* Run fn(srv, arg) on the loop thread: the general door for anything connection-related.
 * Every call that returns 0 runs exactly once, also when the server is stopping (then pw_*
 * calls inside it answer PW_ESTOPPED/PW_ENOCONN). On the loop thread fn runs at once. */
PW_API int pw_call(pw_server *srv, void (*fn)(pw_server *srv, void *arg), void *arg);

/* Choose the slow-consumer policy and byte limit of one connection (limit 0 = the server's
 * options.max_queued_bytes). 0, PW_ENOCONN, PW_ESTOPPED, PW_EINVAL (srv NULL, policy not a
 * pw_slow_policy, limit > UINT32_MAX), PW_EAGAIN (another thread: the inbox is full; this
 * call does not wait). From another thread it applies when the loop drains it (to nothing if
 * the connection closed by then). */
PW_API int pw_set_slow_policy(pw_server *srv, pw_conn_id id, pw_slow_policy policy, size_t limit);

/* Is this call running on the server's loop thread? Any thread. */
PW_API int pw_on_loop_thread(const pw_server *srv);

/* ---- a pointer of yours per connection: loop thread only ------------------------------------ */
/* Attach your own state to a connection instead of keeping a map by id. Only on the loop
 * thread of that connection (its callbacks, or a pw_call function when it is on loop 0): the
 * pointer is loop-thread state, never locked. Valid from on_open (set it there) through
 * on_close (still readable there, so you can free it); the library never reads, frees or
 * copies what it points to, and forgets the pointer after on_close. It starts NULL.
 * With deliver_close = PW_DELIVER_QUEUE no on_close runs on the loop and the close event is
 * taken on another thread, where this pointer cannot be read: keep such state there. */

/* 0; PW_EINVAL (srv NULL); PW_ETHREAD (not this connection's loop thread); PW_ENOCONN (id
 * never issued, or its connection already past on_close). Setting again replaces it. */
PW_API int pw_conn_set_data(pw_server *srv, pw_conn_id id, void *data);
/* The pointer last set for id, or NULL (never set, or any case where set would fail). */
PW_API void *pw_conn_data(pw_server *srv, pw_conn_id id);

/* ---- topics: publish once, deliver to every subscriber --------------------------------------- */
/* A topic is a name of 1..255 bytes (any bytes but NUL). A published message is one pw_buf,
 * its frame header encoded once, referenced by every subscriber's send queue on every loop:
 * no per-subscriber copy. All calls are safe from any thread; from another thread they act on
 * the loops in the order the calling thread made them. Subscriptions end when the connection
 * closes. */

/* 0 (also if already subscribed), PW_ENOCONN, PW_EINVAL, PW_ESTOPPED, PW_EAGAIN, PW_ENOMEM.
 * Over options.max_subscriptions the subscription is refused: PW_EAGAIN on the loop thread;
 * from other threads (which wait for room in the inbox, as with PW_BLOCK) the call returns 0
 * and the loop refuses it later: counted in stats.subscriptions_refused and reported to
 * on_subscribe_refused, or as a PW_EV_SUBSCRIBE_REFUSED event (options.deliver_refused), or
 * else logged. */
PW_API int pw_subscribe(pw_server *srv, pw_conn_id id, const char *topic);
/* 0, PW_ENOCONN, PW_EINVAL, PW_ESTOPPED (and PW_ENOTFOUND on the loop thread when the
 * connection was not subscribed). */
PW_API int pw_unsubscribe(pw_server *srv, pw_conn_id id, const char *topic);
/* Publish a copy of data to every subscriber of topic on every loop. flags: PW_TEXT or
 * PW_BINARY, | PW_BLOCK. Returns 0, PW_EINVAL, PW_ESTOPPED, PW_EAGAIN (some loop's inbox was
 * full: that loop's subscribers miss it), PW_ETOOBIG (len as for pw_send), PW_ENOMEM. */
PW_API int pw_publish(pw_server *srv, const char *topic, const void *data, size_t len, int flags);
/* Publish a shared buffer (the call takes its own references). flags: 0 or PW_BLOCK. */
PW_API int pw_publish_buf(pw_server *srv, const char *topic, pw_buf *buf, int flags);
/* Subscribers of topic over every loop, as of each loop's last subscribe or unsubscribe
 * (a snapshot; a subscribe still in an inbox is not counted yet). Any thread, never waits
 * for a loop: one lookup under a short lock. The count or PW_EINVAL. */
PW_API int pw_topic_subscribers(pw_server *srv, const char *topic);

/* A producer of one topic, run in a task of its own: fn(srv, topic, arg) publishes until
 * pw_task_should_stop() (or pw_task_sleep) says stop. */
typedef void (*pw_topic_fn)(pw_server *srv, const char *topic, void *arg);
/* Run fn as the producer of every topic matching `pattern` (an exact name, or a prefix ending
 * in '*'): it starts when the topic gets its first subscriber on any loop and is asked to stop
 * when the last one leaves (unsubscribe or disconnect), never twice at once, also under
 * concurrent subscribes. A producer that cannot start is counted (stats.producers_failed),
 * logged with its topic, and tried again at the topic's next first subscriber on any loop.
 * Register before clients subscribe. Any thread. 0, PW_EINVAL, PW_ENOMEM. */
PW_API int pw_topic_on_demand(pw_server *srv, const char *pattern, pw_topic_fn fn, void *arg);

/* ---- history: positions, replay and recovery --------------------------------------------- */
/* A topic may keep history (pw_topic_history): its stream position is an epoch, a short
 * random string made when the stream starts (so a restart or a lost history is never taken
 * for continuity), and an offset, +1 per publish. Every publish to it gets the next offset
 * under the topic's lock, so every subscriber on every loop sees its messages in one order,
 * whatever thread published them. The last messages are kept as the very frames the fan-out
 * sends, within count, byte and age limits and one global byte cap (options.history_memory,
 * least recently published topics first). A subscriber can start from a position: it gets
 * exactly the messages after it, then the live ones, with no gap and no duplicate at the
 * switch, or nothing replayed and an answer that says why. Topics without history cost
 * nothing more than before. */
#define PW_EPOCH_LEN 8

/* A position in a topic's stream. offset 0 with an epoch: before its first message. */
typedef struct pw_position {
  char epoch[PW_EPOCH_LEN + 1]; /* NUL-terminated; "" = none (no history) */
  uint64_t offset;
} pw_position;

typedef enum pw_recovery_reason {
  PW_RECOVERED = 0,           /* every message after `since` is queued, then live ones */
  PW_RECOVERY_EPOCH = 1,      /* another stream (a restart, a history lost or never seen, an
                                 offset it never handed out): nothing replayed */
  PW_RECOVERY_TOO_OLD = 2,    /* some message after `since` has left the window */
  PW_RECOVERY_TOO_MANY = 3,   /* more than max_recovery messages, or more bytes than the
                                 connection's queue takes */
  PW_RECOVERY_NO_HISTORY = 4, /* the topic keeps no history */
} pw_recovery_reason;

/* What a subscribe from a position did. Subscribed in every case but an error code. */
typedef struct pw_recovery {
  int recovered;             /* 1 only if exactly every message after `since` reaches the
                                connection, in order, before and then with the live ones */
  pw_recovery_reason reason; /* PW_RECOVERED when recovered */
  pw_position position;      /* the topic's position when the subscription began */
  uint64_t replayed;         /* messages queued from the history */
} pw_recovery;

/* The frame a history publish sends to every subscriber, built once with its position (for
 * example the payload wrapped in {"topic","offset","data"}), under the topic's lock on the
 * publishing thread: keep it quick and call no pw_* function on the same topic. Return a
 * buffer holding one reference (pw_buf_new), or NULL: the publish fails with PW_ENOMEM. */
typedef pw_buf *(*pw_envelope_fn)(const char *topic, const pw_position *pos, const void *data,
                                  size_t len, int is_binary, void *arg);
/* The frame that tells a subscriber its stream broke where it cannot be repaired (a loop so
 * far behind that what it missed has left the window): pos is where the stream goes on from.
 * NULL return (or no reset_fn): such subscribers are closed with 1013 instead, so a gap is
 * never silent. Runs on the loop thread. */
typedef pw_buf *(*pw_reset_fn)(const char *topic, const pw_position *pos, void *arg);

typedef struct pw_history_options {
  uint32_t max_messages;   /* default 100: messages kept per topic */
  size_t max_bytes;        /* default 1 MiB: wire bytes kept per topic */
  int ttl_ms;              /* default 0: no age limit; > 0: older messages leave the window */
  int meta_ttl_ms;         /* default 3600000: how long a topic whose messages have all gone (and
                              that has no subscriber) keeps its epoch and offset, so a client
                              behind it hears "too old", not "another stream" */
  uint32_t max_recovery;   /* default max_messages: the most one recovery replays */
  pw_envelope_fn envelope; /* NULL: subscribers get the payload as published */
  void *envelope_arg;
  pw_reset_fn reset;
  void *reset_arg;
} pw_history_options;

/* Keep history for every topic matching pattern (an exact name, or a prefix ending in '*';
 * the first registered pattern that matches wins) with these limits (NULL: the defaults).
 * The options are copied. Any thread, before the topics are used. 0, PW_EINVAL, PW_ENOMEM. */
PW_API int pw_topic_history(pw_server *srv, const char *pattern, const pw_history_options *opt);

/* pw_publish, telling where the message went: *pos (may be NULL) gets the topic's epoch and
 * the offset given to this message (epoch "" and offset 0 for a topic without history). On a
 * history topic a publish is accepted into every loop's door or refused as a whole:
 * PW_EAGAIN (with PW_BLOCK: after send_timeout_ms) means no offset was given and nobody gets
 * it. From a loop thread a history publish is delivered after the current callback (through
 * the loop's own door), like one from another thread. Results as pw_publish. */
PW_API int pw_publish_ex(pw_server *srv, const char *topic, const void *data, size_t len, int flags,
                         pw_position *pos);

/* Subscribe from a position (since: the last message the client has; NULL or epoch "" = no
 * position: a plain subscribe that reports the current position). On the connection's loop
 * thread it acts at once and fills *result (may be NULL) and returns 0; the replayed
 * messages are queued before anything live. From another thread it returns 0 once queued,
 * and the result comes later, on the loop thread, to on_recovery (or as PW_EV_RECOVERY with
 * deliver_recovery = PW_DELIVER_QUEUE); *result is not touched. Never a partial replay:
 * what cannot be served in full is not replayed at all and the result says why (the
 * subscription is made all the same). Errors as pw_subscribe. */
PW_API int pw_subscribe_from(pw_server *srv, pw_conn_id id, const char *topic,
                             const pw_position *since, pw_recovery *result);

/* The topic's current position (its epoch and the last offset given). Any thread. 0;
 * PW_ENOTFOUND (no history kept for it now); PW_EINVAL. */
PW_API int pw_topic_position(pw_server *srv, const char *topic, pw_position *pos);

/* One message of a topic's history. */
typedef struct pw_history_entry {
  uint64_t offset;
  pw_buf *buf; /* the frame subscribers got: one reference, yours (pw_buf_unref it) */
} pw_history_entry;

/* Copy up to max entries after offset `since` (in order) into out, and the position into
 * *pos (may be NULL). Any thread. Returns the count (0..max), or PW_ENOTFOUND (no history),
 * PW_EINVAL. Entries before the window are simply not there: compare out[0].offset with
 * since + 1 to see whether the read is complete. */
PW_API int pw_history_read(pw_server *srv, const char *topic, uint64_t since, pw_history_entry *out,
                           size_t max, pw_position *pos);

/* ---- tasks that start once ------------------------------------------------------------------ */
/* A task is a thread running fn(srv, arg), known by a key. Starting a key that is running
 * returns PW_EALREADY: among any number of threads starting the same key at once, exactly one
 * starts it, and two runs of one key never overlap. A task polls pw_task_should_stop() (or
 * sleeps in pw_task_sleep) and returns when asked. Its thread is detached: as fn returns, the
 * thread and its stack are given back, with nothing left to join. pw_server_stop asks every
 * task to stop at its start and waits for those that return within drain_timeout_ms;
 * pw_server_free waits for the rest. Any thread. */
typedef void (*pw_task_fn)(pw_server *srv, void *arg);

/* Run fn(srv, arg) in a new thread as the run of `key` (copied). If a run of key is live:
 * - it has reported to the owner (called pw_post_event or pw_call from its own thread) since
 *   it began: the start waits up to 100 ms for it to return, then starts the next run (0). So
 *   "post done, then return", with the owner starting the key again on that event, works every
 *   time. Still running after 100 ms: PW_EALREADY, and later starts answer PW_EALREADY at once
 *   until the run reports again. On the loop thread this wait holds the loop up to 100 ms;
 * - it has not reported: PW_EALREADY at once (a long-running task costs a start nothing);
 * - it called pw_task_done: the start waits for its return (promised to be prompt), then starts;
 * - it is the calling task itself: PW_EALREADY.
 * 0, PW_EALREADY, PW_ESTOPPED, PW_EINVAL (NULL key/fn, key over 255 bytes), PW_ENOMEM. */
PW_API int pw_task_start(pw_server *srv, const char *key, pw_task_fn fn, void *arg);
/* Ask the run of key to stop and wait until it has returned: 0; PW_ENOTFOUND when no run of key
 * is live (never started, or already returned). Called from the task itself or from the loop
 * thread it only asks (0), since waiting there could deadlock. */
PW_API int pw_task_stop(pw_server *srv, const char *key);
/* 1 while a run of this key is live: started, not returned, not declared done. */
PW_API int pw_task_running(pw_server *srv, const char *key);
/* In a task's thread: declare the run over before fn returns (it must then return promptly):
 * pw_task_running says 0 from now on, and a pw_task_start of the key waits for this thread's
 * return, then starts a new run, instead of answering PW_EALREADY. Lets a task hand over "no
 * run is active" under its own lock. 0, or PW_ESTATE outside a task. */
PW_API int pw_task_done(void);
/* In a task's thread: 1 once it has been asked to stop. Elsewhere: 0. */
PW_API int pw_task_should_stop(void);
/* In a task's thread: sleep up to ms, waking early when asked to stop; returns
 * pw_task_should_stop(). Elsewhere: sleeps and returns 0. */
PW_API int pw_task_sleep(int ms);

/* ---- events for the owner's thread ----------------------------------------------------------- */
/* A program whose main thread owns its state takes client events in that thread, without
 * locks and without busy polling: add pw_event_fd() to its own poll/epoll/libuv/GLib loop, and
 * when it is readable take events with pw_next_event until it returns 0. Per connection the
 * order is kept: open, then messages in arrival order, then close. */
typedef enum pw_event_type {
  PW_EV_NONE = 0,
  PW_EV_OPEN = 1,              /* id, path, query, subprotocol, remote_addr, headers */
  PW_EV_MESSAGE = 2,           /* id, is_binary, buf (payload: pw_buf_data / pw_buf_len) */
  PW_EV_CLOSE = 3,             /* id, code, reason */
  PW_EV_USER = 4,              /* user_type, user_data, from pw_post_event */
  PW_EV_SUBSCRIBE_REFUSED = 5, /* id, topic, code: see on_subscribe_refused (with
                                  options.deliver_refused = PW_DELIVER_QUEUE) */
  PW_EV_RECOVERY = 6,          /* id, topic, recovery: see on_recovery (with
                                  options.deliver_recovery = PW_DELIVER_QUEUE) */
} pw_event_type;

typedef struct pw_event {
  pw_event_type type;
  pw_conn_id id;
  int is_binary;
  /* MESSAGE: one reference, owned by the event (pw_event_release drops it). Take your own
   * with pw_buf_ref to keep it longer, or pass it on with pw_send_buf: no copy. */
  pw_buf *buf;
  int code;                                             /* CLOSE */
  const char *reason;                                   /* CLOSE, NUL-terminated */
  const char *path, *query, *subprotocol, *remote_addr; /* OPEN (subprotocol may be NULL) */
  const pw_header *headers; /* OPEN: the options.event_headers present in the request */
  size_t header_count;
  int user_type;        /* USER */
  void *user_data;      /* USER: whatever the poster passed; the library does not free it */
  const char *topic;    /* SUBSCRIBE_REFUSED (code: PW_EAGAIN/PW_ENOMEM), RECOVERY */
  pw_recovery recovery; /* RECOVERY */
  void *internal_;      /* storage of the strings above; freed by pw_event_release */
} pw_event;

/* A descriptor that is readable while events wait, and for good once the server has
 * stopped (every loop ended: then pw_next_event says PW_ESTOPPED once the queue is empty):
 * an eventfd, for poll/select/epoll in the owner's loop. Do not read or close it. Any
 * thread; the value never changes. */
PW_API int pw_event_fd(pw_server *srv);

/* Take the next event: timeout_ms 0 = do not wait, -1 = wait for one. Returns 1 with *ev
 * filled (release it with pw_event_release), 0 when none came in time, PW_ESTOPPED when the
 * queue is empty and the server has stopped (all its loops have ended, so every close event
 * is queued; or it was stopped before it started): at once whatever the timeout, and a
 * waiting caller wakes with it at that moment. PW_EINVAL. Meant for one consumer thread
 * (safe from several). Before start it waits as usual; after the stop what is left (and
 * what pw_post_event adds) is still taken first. Not during or after pw_server_free. */
PW_API int pw_next_event(pw_server *srv, pw_event *ev, int timeout_ms);

/* Free what an event holds (its buffer reference and strings). Safe on a zeroed event and
 * twice on the same event. */
PW_API void pw_event_release(pw_event *ev);

/* Post a user event to the owner's queue, from any thread (a worker reporting back), also
 * before start and after the stop. 0, PW_EAGAIN (queue at max_events), PW_EINVAL (srv NULL),
 * PW_ENOMEM. user_data is not freed by the library. */
PW_API int pw_post_event(pw_server *srv, int user_type, void *user_data);

/* ---- statistics ------------------------------------------------------------------------------ */
typedef struct pw_stats {
  uint64_t connections;           /* WebSocket connections open now */
  uint64_t connections_total;     /* upgrades accepted since start */
  uint64_t messages_queued;       /* messages accepted into send queues */
  uint64_t messages_sent;         /* messages completely written to sockets */
  uint64_t bytes_sent;            /* wire bytes written (frames and HTTP) */
  uint64_t queued_bytes;          /* bytes waiting in send queues now */
  uint64_t inbox_bytes;           /* bytes in commands not yet drained now */
  uint64_t dropped_new;           /* messages dropped by PW_SLOW_DROP_NEW (also those sent
                                     from other threads, whose call had returned 0) */
  uint64_t dropped_oldest;        /* messages dropped by PW_SLOW_DROP_OLDEST */
  uint64_t dropped_closed;        /* messages for connections that closed before delivery,
                                     including the queue of a slow client closed by policy */
  uint64_t slow_closed;           /* connections closed by PW_SLOW_CLOSE */
  uint64_t rejected;              /* calls from other threads answered PW_EAGAIN */
  uint64_t wakeups;               /* inbox wakeups handled */
  uint64_t commands;              /* commands drained (commands / wakeups = batch size) */
  uint64_t max_batch;             /* most commands drained in one wakeup */
  uint64_t events_queued;         /* events put in the owner's queue */
  uint64_t events_dropped;        /* messages dropped by PW_EVQ_DROP, and
                                     PW_EV_SUBSCRIBE_REFUSED events that found the queue full */
  uint64_t events_closed;         /* clients closed with 1013 by PW_EVQ_CLOSE */
  uint64_t reads_paused;          /* times a client's reading was paused by PW_EVQ_PAUSE */
  uint64_t event_bytes;           /* message payload bytes waiting in the queue now */
  uint64_t events_waiting;        /* events waiting in the queue now */
  uint64_t producers_failed;      /* on-demand producers that could not start (each logged with
                                     its topic; retried at its next first subscriber on a loop) */
  uint64_t subscriptions_refused; /* pw_subscribe refused (over max_subscriptions, or out of
                                     memory), from any thread; from another thread the call
                                     returned 0 (see on_subscribe_refused) */
  uint64_t reads_paused_sendq;    /* times a client's reading was paused because its own send
                                     queue passed the high-water mark (see max_queued_bytes) */
  uint64_t subscriptions;         /* (connection, topic) subscriptions now, over every loop */
  uint64_t topics;                /* topics with at least one subscriber now */
  /* History (pw_topic_history) */
  uint64_t history_topics;    /* topics keeping history (or its meta) now */
  uint64_t history_bytes;     /* wire bytes kept now, over every topic */
  uint64_t history_evictions; /* messages that left a window before their time (the
                                 topic's byte limit or options.history_memory) */
  uint64_t recoveries;        /* subscribes from a position that recovered */
  uint64_t recoveries_epoch, recoveries_too_old, recoveries_too_many; /* ...that did not */
  uint64_t replayed;      /* messages queued by recoveries */
  uint64_t gaps_repaired; /* messages a loop had missed (its door was full), delivered
                             from the history in their place */
  uint64_t stream_resets; /* subscribers told their stream broke (a gap the history
                             could no longer fill) */
} pw_stats;

/* A snapshot of the counters (each read atomically; together they are not one instant).
 * Any thread. 0 or PW_EINVAL. */
PW_API int pw_server_stats(const pw_server *srv, pw_stats *out);

#ifdef __cplusplus
}
#endif
#endif /* PUSHWIRE_H */
