/* TLS for pushwire as a pure engine over memory BIOs (OpenSSL 3): no sockets, no libuv, no
 * blocking. A server context (pw__tls_ctx) holds the current SSL_CTX built from PEM files and
 * swaps it on reload; a connection engine (pw__tls_conn) turns ciphertext from the socket into
 * plaintext and plaintext into ciphertext to send, and reports handshake progress and errors.
 *
 * Design notes
 * - Versions: TLS 1.2 minimum (SSL_CTX_set_min_proto_version), up to TLS 1.3. Client-initiated
 *   TLS 1.2 renegotiation is refused (a cheap way for one client to burn server CPU).
 * - ALPN: we speak only "http/1.1". A client offering it gets it. A client offering only other
 *   protocols (say "h2") gets a fatal no_application_protocol alert, as RFC 7301 section 3.2
 *   requires ("the server SHALL respond with a fatal no_application_protocol alert"): going on
 *   silently would let an h2-only client send HTTP/2 frames to an HTTP/1.1 parser. A client
 *   that sends no ALPN extension at all is served (ALPN is optional for it).
 * - Resumption: stateless session tickets (RFC 8446 4.6.1 / RFC 5077), the server-side session
 *   cache switched off. Tickets cost the server no memory per session and need no lock shared
 *   by the loops; a cache would hold every session for its lifetime (2 h by default) under one
 *   lock. Ticket keys belong to one SSL_CTX, so a reload also rotates them: clients make one
 *   full handshake after a reload (sessions made under the old certificate or CA are not
 *   resumed under the new one, which is what a key rotation wants).
 * - Reload: a new SSL_CTX is built from the files (outside any lock) while the old one
 *   serves; then, under a mutex, the holder's pointer is swapped. pw__tls_conn_new takes a
 *   reference to the current SSL_CTX under the same mutex (a pointer load and an atomic
 *   increment), so a concurrent reload cannot free it in between; the SSL then holds its own
 *   reference, so existing connections keep the context they started with and the old one is
 *   freed with the last of them. A published SSL_CTX is never modified. Any thread may
 *   reload while loops accept; a failed reload leaves the current context in place.
 * - Memory: SSL_MODE_RELEASE_BUFFERS frees OpenSSL's record buffers while a connection is
 *   idle (measured with bench/tls_bench: 49.5 KB -> 16 KB of heap per idle connection, no
 *   measurable cost per write), and a memory BIO that grew past PW__TLS_BIO_KEEP is replaced
 *   once it is empty, so one 1 MiB message does not pin 1 MiB for the connection's life.
 * - Errors: OpenSSL's error queue is per thread; every call here clears it before an SSL call
 *   and takes the first error of a failure into the connection (a code, no string), so one
 *   connection's failure never shows up in another's report. pw__tls_conn_strerror formats it.
 *
 * How the connection glue (tlsglue.c, with accept.c and conn.c) uses it:
 * - Accept: a connection on the TLS listener gets pw__tls_conn_new(server ctx); it stays in the
 *   HTTP timeout list from accept, so the handshake timeout also bounds the TLS handshake (a
 *   stalled client is closed by that timer, not here).
 * - Read path: the loop's 64 KiB read buffer holds ciphertext; pw__tls_conn_feed copies it
 *   into the engine, so the same buffer is free at once to receive plaintext:
 *   pw__tls_conn_read(c, loop_buf, 64 KiB) until it returns 0, each result handed to the
 *   HTTP/WebSocket read path exactly as plain bytes (the ws parser unmasks in place, so the
 *   buffer is writable). After every feed, what pw__tls_conn_out holds is sent too (handshake
 *   flights, session tickets, TLS 1.3 KeyUpdate answers appear without a write).
 * - Results: PW__TLS_EPLAIN -> logged (rate-limited), a plain "400 Bad Request" (the bytes
 *   are cleartext HTTP, so a plain answer is readable), closed; PW__TLS_EHANDSHAKE/EPROTO ->
 *   logged with pw__tls_conn_strerror, pw__tls_conn_out (the alert) sent, closed;
 *   PW__TLS_EOF -> the peer's close_notify: as TCP EOF.
 * - Write path: the flush passes the iovec array a plain writev would get (uv_buf_t is ABI
 *   compatible with struct iovec) to pw__tls_conn_writev, which packs the batch into full
 *   16 KiB records (one SSL_write per record, not per message: a 64 B frame costs a record
 *   header and an AEAD tag of ~22 B, and a seal per record); pw__tls_conn_out's bytes go to
 *   uv_try_write and only what the socket did not take is copied into one uv_write
 *   (pw__tls_conn_out_consume). Queued shared frames are released once encrypted: the
 *   ciphertext is per connection, the plaintext stays shared.
 * - Close: before the FIN (DRAIN), pw__tls_conn_shutdown, then pw__tls_conn_out (the
 *   close_notify) is sent; pw__tls_conn_free when the connection's memory is freed.
 * - Reload: pw_server_reload_tls() calls pw__tls_ctx_reload from any thread.
 * Threads: a pw__tls_ctx may be used from any thread; a pw__tls_conn belongs to one thread at
 * a time (its loop's), like the rest of a connection. */
#ifndef PW_TLS_H
#define PW_TLS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "pushwire.h"

/* Results beyond pushwire.h's PW_E* (which are used for misuse, PW_EINVAL and PW_ESTATE, and
 * for PW_ENOMEM). Every failure (not misuse) is sticky: later calls on the connection return
 * it again. */
enum pw__tls_result {
  PW__TLS_EOF = -100,        /* the peer sent close_notify: a clean end of its data */
  PW__TLS_EPLAIN = -101,     /* plain HTTP sent to the TLS port (first bytes are a method) */
  PW__TLS_EHANDSHAKE = -102, /* handshake failed (bad certificate, version, ALPN, garbage) */
  PW__TLS_EPROTO = -103,     /* a TLS error after the handshake (bad record, bad MAC) */
};

#define PW__TLS_RECORD_MAX 16384     /* plaintext bytes in one TLS record */
#define PW__TLS_BIO_KEEP (64 * 1024) /* a drained memory BIO larger than this is replaced */

/* ---- server context ------------------------------------------------------------------ */

typedef struct pw__tls_ctx pw__tls_ctx;

/* The settings are pw_options.tls (pushwire.h: PEM cert_file, key_file, optional ca_file and
 * require_client_cert); port is the listener's business and unused here. */

/* Build a context from cfg (the paths are copied). 0 and *out set, or PW_EINVAL (bad
 * config, unreadable or mismatched files) / PW_ENOMEM with a sentence in err (err_cap bytes,
 * may be NULL/0), e.g. "cannot load certificate chain from x.pem: ... No such file". */
int pw__tls_ctx_new(const struct pw_tls_options *cfg, pw__tls_ctx **out, char *err, size_t err_cap);

/* Rebuild the SSL_CTX from the files (cfg NULL: the same paths as before, re-read; else the
 * new paths) and make it current for new connections; existing ones keep theirs. Any thread.
 * On failure the current context stays and err says why. 0, PW_EINVAL, PW_ENOMEM. */
int pw__tls_ctx_reload(pw__tls_ctx *ctx, const struct pw_tls_options *cfg, char *err,
                       size_t err_cap);

/* How many times the context was (re)built successfully: 1 after new, +1 per reload. */
unsigned pw__tls_ctx_generation(pw__tls_ctx *ctx);

/* Free the holder's reference; connections still alive keep their SSL_CTX until freed. */
void pw__tls_ctx_free(pw__tls_ctx *ctx);

/* ---- one connection ------------------------------------------------------------------ */

typedef struct pw__tls_conn pw__tls_conn;

typedef enum pw__tls_state {
  PW__TLS_HANDSHAKING = 0, /* waiting for the client; writes are refused (PW_ESTATE) */
  PW__TLS_OPEN = 1,        /* handshake done: data both ways */
  PW__TLS_CLOSED = 2,      /* close_notify received (read says PW__TLS_EOF) or sent */
  PW__TLS_FAILED = 3,      /* a failure was reported; only out/strerror/free are useful */
} pw__tls_state;

/* A server-side engine using ctx's current SSL_CTX. NULL if out of memory. */
pw__tls_conn *pw__tls_conn_new(pw__tls_ctx *ctx);
void pw__tls_conn_free(pw__tls_conn *c); /* NULL is fine */

/* Ciphertext from the socket, any chunking. Copies it and advances the handshake.
 * 0, PW__TLS_EPLAIN, PW__TLS_EHANDSHAKE, PW__TLS_EPROTO, PW_ENOMEM, PW_EINVAL.
 * Then call pw__tls_conn_read until it returns 0, and send pw__tls_conn_out. */
int pw__tls_conn_feed(pw__tls_conn *c, const void *cipher, size_t n);

/* Plaintext into buf (up to cap bytes, across records): > 0 bytes, 0 if none is ready,
 * PW__TLS_EOF once the peer's close_notify is read (after all data before it), or a failure
 * (PW__TLS_EPROTO). Nothing is lost by a small cap: the rest waits for the next call. */
long pw__tls_conn_read(pw__tls_conn *c, uint8_t *buf, size_t cap);

/* Encrypt plaintext into the output. 0; PW_ESTATE (handshake not done, or our close_notify
 * sent); an earlier failure again; PW__TLS_EPROTO if OpenSSL fails (with memory BIOs: out of
 * memory). A write of 0 bytes is a no-op. */
int pw__tls_conn_write(pw__tls_conn *c, const void *plain, size_t n);

/* Encrypt a batch as full records (see the glue note): the pieces are packed into records of
 * PW__TLS_RECORD_MAX bytes; a piece that starts a record and is at least that long is
 * encrypted in place. Results as pw__tls_conn_write. */
int pw__tls_conn_writev(pw__tls_conn *c, const struct iovec *iov, size_t iovcnt);

/* Ciphertext waiting to be sent: *p points at it (valid until the next call on c). */
size_t pw__tls_conn_out(pw__tls_conn *c, const uint8_t **p);
/* n bytes of the output were sent (or copied away); n <= pw__tls_conn_out's length. */
void pw__tls_conn_out_consume(pw__tls_conn *c, size_t n);

/* Queue our close_notify (once; does not wait for the peer's). After the handshake: 0; during
 * it or after a failure there is nothing to say: 0 and the state becomes CLOSED/stays FAILED. */
int pw__tls_conn_shutdown(pw__tls_conn *c);

pw__tls_state pw__tls_conn_state(const pw__tls_conn *c);
/* The protocol ALPN selected ("http/1.1"), or NULL if the client offered none. */
const char *pw__tls_conn_alpn(const pw__tls_conn *c);
/* 1 if the handshake resumed a session (no certificate, no key exchange signature). */
int pw__tls_conn_resumed(const pw__tls_conn *c);
/* "TLSv1.3" etc., once the handshake is done; "" before. */
const char *pw__tls_conn_version(const pw__tls_conn *c);
/* The verified client certificate's subject in one line ("CN=alice,O=x") into buf; returns
 * the length, or 0 if there is none. */
size_t pw__tls_conn_peer_subject(const pw__tls_conn *c, char *buf, size_t cap);
/* The last failure as a sentence for the log, into buf (always NUL-terminated); returns buf.
 * E.g. "TLS handshake failed: certificate verify failed (unable to get local issuer
 * certificate)" or "plain HTTP request on the TLS port". "no error" if there was none. */
const char *pw__tls_conn_strerror(const pw__tls_conn *c, char *buf, size_t cap);

#endif
