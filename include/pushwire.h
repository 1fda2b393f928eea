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

#define PW_VERSION_MAJOR 0
#define PW_VERSION_MINOR 1
#define PW_VERSION_PATCH 0

/* ---- errors ---------------------------------------------------------------------------- */
/* One table; the enum, pw_strerror() and pw_err_name() are generated from it. */
#define PW_ERRNO_MAP(X)                                                       \
  X(EINVAL,    -1, "invalid argument")                                        \
  X(ENOMEM,    -2, "out of memory")                                           \
  X(ENOCONN,   -3, "no such connection (unknown, stale or closed id)")        \
  X(ESTOPPED,  -4, "server is stopped or stopping")                           \
  X(EAGAIN,    -5, "queue full, try again later")                             \
  X(EALREADY,  -6, "already running")                                         \
  X(EADDRINUSE,-7, "address already in use")                                  \
  X(EBIND,     -8, "cannot bind or listen on the address")                    \
  X(ESTATE,    -9, "call not valid in the server's current state")            \
  X(ETOOBIG,  -10, "message larger than allowed")                             \
  X(EIO,      -11, "input/output error")                                      \
  X(ETIMEDOUT,-12, "timed out")                                               \
  X(ETHREAD,  -13, "call not allowed from this thread")

typedef enum pw_err {
#define PW__ERR_ENUM(name, value, text) PW_##name = (value),
  PW_ERRNO_MAP(PW__ERR_ENUM)
#undef PW__ERR_ENUM
} pw_err;

/* Human-readable text of an error code; never NULL ("unknown error" for other values). */
const char *pw_strerror(int code);
/* Symbolic name of an error code ("PW_ENOCONN"); never NULL ("PW_UNKNOWN"). */
const char *pw_err_name(int code);

/* ---- basic types ----------------------------------------------------------------------- */
typedef struct pw_server pw_server;

/* A connection id: 64-bit, never 0, never reused in the life of a server. It encodes the
 * loop, a slot and that slot's generation, so a stale id is detected, never confused with a
 * newer connection. Safe to copy to any thread. */
typedef uint64_t pw_conn_id;

enum pw_log_level { PW_LOG_ERROR = 0, PW_LOG_WARN = 1, PW_LOG_INFO = 2, PW_LOG_DEBUG = 3 };

/* Flags for messages. */
enum pw_msg_flags {
  PW_TEXT = 0,   /* a text message: the payload must be valid UTF-8 (the caller's promise) */
  PW_BINARY = 1, /* a binary message */
};

/* RFC 6455 close codes used by the library. */
enum pw_close_code {
  PW_CLOSE_NORMAL = 1000,
  PW_CLOSE_GOING_AWAY = 1001,
  PW_CLOSE_PROTOCOL_ERROR = 1002,
  PW_CLOSE_UNSUPPORTED = 1003,
  PW_CLOSE_NO_STATUS = 1005,  /* reported only: the peer's close frame had no code */
  PW_CLOSE_ABNORMAL = 1006,   /* reported only: TCP ended without a close frame */
  PW_CLOSE_INVALID_DATA = 1007,
  PW_CLOSE_POLICY = 1008,
  PW_CLOSE_TOO_BIG = 1009,
  PW_CLOSE_INTERNAL = 1011,
  PW_CLOSE_TRY_AGAIN = 1013,
};

/* ---- HTTP request, as seen by callbacks -------------------------------------------------- */
typedef struct pw_header {
  const char *name;  /* not NUL-terminated: use name_len */
  size_t name_len;
  const char *value; /* not NUL-terminated: use value_len; leading/trailing blanks removed */
  size_t value_len;
} pw_header;

/* A parsed request head. Every pointer is owned by the library and valid only for the
 * duration of the callback that received it: copy what you keep. */
typedef struct pw_request {
  const char *method;     /* NUL-terminated, e.g. "GET" */
  const char *path;       /* NUL-terminated, without the query, e.g. "/ws" */
  const char *query;      /* NUL-terminated, without '?', "" when absent */
  const pw_header *headers;
  size_t header_count;
  const void *body; /* plain requests only (on_http): the body, body_len bytes */
  size_t body_len;
  const char *remote_addr; /* NUL-terminated "ip:port" of the peer */
  const char *subprotocol; /* on_open only: the selected subprotocol, or NULL */
} pw_request;

/* Case-insensitive header lookup. Returns the header or NULL. Any thread (pure function). */
const pw_header *pw_request_header(const pw_request *req, const char *name);

/* The answer to a plain HTTP request, filled in by on_http. Zeroed before the call. */
typedef struct pw_response {
  int status;               /* e.g. 200; 0 = not handled: the library answers 404 */
  const char *content_type; /* NULL = "text/plain; charset=utf-8" */
  const void *body;         /* copied by the library after on_http returns */
  size_t body_len;
  const char *extra_headers; /* NULL, or full "Name: value\r\n" lines, copied */
} pw_response;

/* ---- callbacks --------------------------------------------------------------------------- */
/* All callbacks run on the server's loop thread, one at a time. They may call every pw_*
 * function; a pw_send from a callback takes the direct path (no queue hop). `user` is the
 * pointer given to pw_server_new. Any callback may be NULL. */
typedef struct pw_callbacks {
  /* A WebSocket connection is open (after the 101 was queued). */
  void (*on_open)(pw_server *srv, pw_conn_id id, const pw_request *req, void *user);
  /* A complete message (fragments reassembled; text already validated as UTF-8). `data` is
   * valid only during the call. */
  void (*on_message)(pw_server *srv, pw_conn_id id, const void *data, size_t len,
                     int is_binary, void *user);
  /* The connection is gone; called exactly once for each on_open. `code` is the peer's close
   * code, the code the server closed with, or 1006 if TCP ended without a close handshake.
   * `reason` is NUL-terminated (possibly ""), valid only during the call. */
  void (*on_close)(pw_server *srv, pw_conn_id id, int code, const char *reason, void *user);
  /* A plain (non-upgrade) HTTP request. Fill *res; leave res->status 0 for a 404. */
  void (*on_http)(pw_server *srv, const pw_request *req, pw_response *res, void *user);
  /* Choose a subprotocol among the client's offers (Sec-WebSocket-Protocol), in the order
   * the client gave them. Return an index into offers, or -1 for none. Without this
   * callback no subprotocol is selected. */
  int (*select_subprotocol)(pw_server *srv, const pw_request *req, const char *const *offers,
                            size_t count, void *user);
} pw_callbacks;

/* ---- options ----------------------------------------------------------------------------- */
/* Zero-initialise, then set what you need: every 0 means the documented default. Durations
 * in milliseconds; for the timeouts a negative value turns the feature off. */
typedef struct pw_options {
  const char *bind_address;    /* default "127.0.0.1"; "0.0.0.0" or "::" for all */
  int port;                    /* default 0: the OS picks one; see pw_server_port() */
  const char *const *ws_paths; /* NULL-terminated list of paths that accept the upgrade;
                                  default NULL: every path accepts it */
  size_t max_message_size;     /* default 16 MiB; larger messages are closed with 1009 */
  size_t max_head_size;        /* default 8 KiB; larger request heads get 431 */
  size_t max_body_size;        /* default 1 MiB for plain HTTP bodies; larger get 413 */
  int idle_timeout_ms;         /* default 120000: close (1001) a client silent this long */
  int ping_interval_ms;        /* default 30000: ping a client silent this long */
  int handshake_timeout_ms;    /* default 10000: drop a client whose head is not complete */
  int close_timeout_ms;        /* default 3000: wait for the peer's close frame/EOF */
  int max_connections;         /* default 100000: above it new upgrades get 503 */
  int backlog;                 /* default 511 */
  /* Log sink; default: none (silent). Runs on whichever thread logs (mostly the loop). */
  void (*log)(int level, const char *msg, void *user);
  int log_level; /* default 0 = PW_LOG_ERROR ... PW_LOG_DEBUG */
} pw_options;

/* ---- server lifecycle -------------------------------------------------------------------- */
/* Create a server. `opt` and `cb` are copied (NULL = all defaults / no callbacks); the
 * strings they point to must stay valid until pw_server_free. Returns NULL on bad options
 * or out of memory. Any thread. */
pw_server *pw_server_new(const pw_options *opt, const pw_callbacks *cb, void *user);

/* Bind, listen, then run the loop in a new thread. Returns once the server listens (0), or a
 * negative code (PW_EADDRINUSE, PW_EBIND, PW_ESTATE if already started). Any thread but the
 * loop's. */
int pw_server_start(pw_server *srv);

/* Bind, listen and run the loop in the calling thread until pw_server_stop. Returns 0 after a
 * clean stop or a negative code if it could not start. */
int pw_server_run(pw_server *srv);

/* The port the server listens on (useful with port 0), or a negative code before it
 * listens. Any thread. */
int pw_server_port(const pw_server *srv);

/* Stop: close the listener, send 1001 to every client, wait (up to close_timeout_ms) for the
 * close handshakes, then end the loop. From any thread except the loop's it also joins the
 * loop thread before returning. From a callback it only requests the stop and returns at
 * once (the loop ends after the callback). Idempotent: later calls return 0. */
int pw_server_stop(pw_server *srv);

/* Free a server. Stops it first if needed (must then not be called from the loop thread).
 * NULL is ignored. */
void pw_server_free(pw_server *srv);

/* ---- connections (loop thread for now; issue 3 adds the any-thread door) ------------------ */
/* Send one message to a connection. The data is copied: the caller may free it at once.
 * flags: PW_TEXT or PW_BINARY. Returns 0, PW_ENOCONN, PW_EINVAL, PW_ESTOPPED, or PW_ETHREAD
 * when called from a thread other than the loop's. */
int pw_send(pw_server *srv, pw_conn_id id, const void *data, size_t len, int flags);

/* Start the close handshake with `code` (1000-4999 except reserved ones) and a reason of at
 * most 123 bytes (NULL = ""). Loop thread. Returns 0, PW_ENOCONN, PW_EINVAL, PW_ETHREAD. */
int pw_close(pw_server *srv, pw_conn_id id, int code, const char *reason);

/* Is this call running on the server's loop thread? Any thread. */
int pw_on_loop_thread(const pw_server *srv);

#ifdef __cplusplus
}
#endif
#endif /* PUSHWIRE_H */
