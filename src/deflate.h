/* permessage-deflate (RFC 7692) as a pure module: negotiation of a client's
 * Sec-WebSocket-Extensions offers, and the zlib codec (per-connection inflate and deflate, plus
 * a stateless "shared" deflate for fan-out). No I/O and no connection state; the glue is
 * http.c (negotiation), wsparse.c (receiving) and pmd.c (sending and fan-out).
 *
 * Design notes: how the glue uses it
 * - Handshake (http.c): pw__deflate_negotiate_request() on the upgrade request.
 *   PW__PMD_ACCEPT: "Sec-WebSocket-Extensions: " + pw__deflate_response() in the 101, and the
 *   pw__deflate_params kept in the connection (5 bytes). PW__PMD_NONE: no header, no
 *   compression. PW__PMD_MALFORMED: the header breaks RFC 6455 9.1's grammar: 400, as npm ws
 *   and python websockets answer it.
 * - Receiving (wsparse.c): RSV1 is legal only if deflate was negotiated (else 1002), and only
 *   on the FIRST frame of a data message (RFC 7692 6.1): on a continuation or a control frame
 *   it is 1002. Every frame of a message that began with RSV1 goes, unmasked, through
 *   pw__inflate_push(), then pw__inflate_finish() at FIN. Text is UTF-8-checked on the inflated
 *   bytes, never on the compressed ones. Errors map through pw__inflate_close_code():
 *   PW_ETOOBIG -> 1009 (the limit is the max message size, applied to the INFLATED size),
 *   PW_EIO -> 1007, PW_ENOMEM -> 1011. The inflater is made on the first compressed message.
 * - Sending (pmd.c): a data message of at least the threshold (pw__deflate_wanted) is
 *   compressed on the loop thread when it is queued, RSV1 set on its frame (server frames are
 *   single frames), never on control frames, the header encoding the COMPRESSED length. A
 *   connection's own deflater with context takeover sees its messages in queue order.
 * - Fan-out (pmd.c): a subscriber whose server side uses no context takeover gets a copy that
 *   does not depend on the connection: pw__deflate_oneshot() compresses a publish ONCE per
 *   distinct server_max_window_bits into one RSV1 frame shared by every such subscriber, next
 *   to the plain frame for the others (uWebSockets' shared compressor). Context takeover is
 *   permission, not duty (RFC 7692 7.1.1.1): a subscriber that allows it could get the shared
 *   frame too, BUT its own deflater must then forget its history (pw__deflater_reset) before
 *   its next private message, because its peer's window now holds bytes the deflater never
 *   saw (test_shared_interleave shows the corruption otherwise); pmd.c gives such subscribers
 *   their own compression instead. Without context takeover a compressed message that came
 *   out larger than the plain one may be sent plain; with it, it may not (the deflater's
 *   history already holds the message).
 * - Memory (measured with counting zalloc hooks, see pw__deflater_mem): deflate state is
 *   2^(windowBits+2) + 2^(memLevel+9) bytes + ~5.8 KiB (windowBits 15, memLevel 8: ~262 KiB);
 *   inflate state is 2^windowBits + ~7 KiB (15: ~39 KiB). Both are allocated lazily, on the
 *   first message, and can be dropped between messages when context takeover is off
 *   (pw__deflater_release, pw__inflater_release): a push server that never compresses
 *   per connection pays nothing but the negotiated params.
 * - Window bits 8 (RFC 7692 7.1.2.1: "A server declines an extension negotiation offer with
 *   this parameter if the server doesn't support it"): zlib 1.2.9+ refuses a raw deflate
 *   stream with windowBits 8 (deflateInit2 returns Z_STREAM_ERROR; with the zlib wrapper it
 *   silently uses 9), node's zlib silently raises it to 9, Python's zlib raises an error. So
 *   this server never agrees to server_max_window_bits=8 (such an offer is declined and the
 *   client's next offer is tried), never ASKS a client for client_max_window_bits=8 (a
 *   configured 8 means 9: a Python client told 8 would fail, a node one would use 9), and
 *   inflates with at least 9 bits even when a client promised 8, for clients that, like
 *   node, quietly use 9 (zlib's own window-9 streams reach back at most 250 bytes, another
 *   compressor may use all 512; test_window8_client). Config value 8 is accepted, means 9.
 * - Case: the extension name and parameter names compare case-insensitively (RFC 9110 5.6.6:
 *   "Parameter names are case-insensitive"; RFC 6455 9.1 inherits HTTP's token rules); values
 *   are digits, compared exactly. The response always uses the RFC's lower-case spelling. */
#ifndef PW_DEFLATE_H
#define PW_DEFLATE_H

#include <stddef.h>
#include <stdint.h>

#include "pushwire.h"

/* ---- configuration -------------------------------------------------------------------------- */

/* The settings are pw_options.deflate (pushwire.h), taken as they are: a zero field means its
 * default, resolved here (and only here): window bits 15, level 6, mem level 8, threshold 64.
 * Their ranges are checked once, by pw_options_check (options.c), before a server exists; the
 * functions below trust them: a value outside those ranges gives a useless agreement or a
 * PW_EINVAL from the codec constructors, never a memory error. A configured window of 8 means
 * 9 (see the notes above). */

/* The default threshold: JSON of 64 B deflates to ~0.80 of its size with a fresh window, 32 B
 * grows (~1.06); with context takeover even 16 B shrinks to ~0.3 (zlib level 6, measured). */
#define PW__DEFLATE_DEFAULT_THRESHOLD 64
#define PW__DEFLATE_DEFAULT_LEVEL 6
#define PW__DEFLATE_DEFAULT_MEM_LEVEL 8

/* 1 if a message of len bytes should be compressed under cfg (its threshold), else 0. */
int pw__deflate_wanted(const struct pw_deflate_options *cfg, size_t len);

/* ---- negotiation (RFC 7692 section 5 and 7.1) ------------------------------------------------ */

/* What was agreed with one client: 5 bytes the connection keeps. */
typedef struct pw__deflate_params {
  uint8_t server_no_context_takeover; /* our deflater resets after every message */
  uint8_t client_no_context_takeover; /* the client resets: our inflater may too */
  uint8_t server_max_window_bits;     /* our deflater's window bits, 9..15 */
  uint8_t client_max_window_bits;     /* the client's window bits, 8..15 (inflate with >= 9) */
  uint8_t server_bits_offered;        /* the offer had server_max_window_bits: accepting it
                                         means answering it, even 15 (RFC 7692 7.1.2.1) */
} pw__deflate_params;

enum {
  PW__PMD_NONE = 0,      /* no acceptable permessage-deflate offer (or none at all) */
  PW__PMD_ACCEPT = 1,    /* *out holds the first acceptable offer's agreement */
  PW__PMD_MALFORMED = 2, /* the header value breaks RFC 6455 9.1's grammar: nothing accepted */
};

/* Longest response value pw__deflate_response writes, NUL included. */
#define PW__DEFLATE_RESPONSE_MAX 160

/* Judge one Sec-WebSocket-Extensions value (value_len bytes, need not be NUL-terminated):
 * pick the first permessage-deflate offer acceptable under cfg. Other extensions are skipped;
 * a permessage-deflate offer with an unknown, duplicate or invalid parameter, or one asking
 * for what the server cannot do, is declined (the next offer gets its turn). The whole value
 * is checked for syntax first. Returns PW__PMD_*, or PW_EINVAL (a NULL argument). */
int pw__deflate_negotiate(const struct pw_deflate_options *cfg, const char *value, size_t value_len,
                          pw__deflate_params *out);

/* The same over every Sec-WebSocket-Extensions header of a request, in order, as if they were
 * one comma-separated value (RFC 6455 9.1: the header may be split across lines). */
int pw__deflate_negotiate_request(const struct pw_deflate_options *cfg, const pw_request *req,
                                  pw__deflate_params *out);

/* The response header value for an agreement: accepted parameters only. Writes a NUL-terminated
 * string of at most PW__DEFLATE_RESPONSE_MAX bytes; returns its length (without the NUL). */
size_t pw__deflate_response(const pw__deflate_params *p, char out[PW__DEFLATE_RESPONSE_MAX]);

/* ---- codec ----------------------------------------------------------------------------------- */

/* A growable byte buffer. Owner: whoever holds the struct; pw__zbuf_free releases data. */
typedef struct pw__zbuf {
  uint8_t *data;
  size_t len, cap;
} pw__zbuf;
void pw__zbuf_free(pw__zbuf *b);

/* Compressor of one direction of one connection, or a shared one (no_context_takeover). One
 * thread at a time. Owner: the creator, pw__deflater_free. zlib state is allocated on the
 * first message. window_bits 8..15 (8 means 9), level 1..9 (0 = 6), mem_level 1..9 (0 = 8).
 * Returns 0 and *out, PW_EINVAL or PW_ENOMEM. */
typedef struct pw__deflater pw__deflater;
int pw__deflater_new(pw__deflater **out, int window_bits, int level, int mem_level,
                     int no_context_takeover);
/* The server side of an agreement under cfg. */
int pw__deflater_new_server(pw__deflater **out, const struct pw_deflate_options *cfg,
                            const pw__deflate_params *p);
void pw__deflater_free(pw__deflater *d);

/* Compress one whole message (RFC 7692 7.2.1: deflate, flush to a byte boundary with an
 * empty stored block, drop its 0x00 0x00 0xff 0xff) and APPEND the payload to out. An empty
 * message gives the single byte 0x00. With no_context_takeover the deflater then forgets the
 * message. 0, PW_EINVAL, PW_ENOMEM or PW_EIO (zlib failed): then out is as it was and the
 * deflater has forgotten its history, so it stays usable (send that message plain). */
int pw__deflate_message(pw__deflater *d, const void *data, size_t len, pw__zbuf *out);

/* Forget the history: the next message is compressed as if it were the first. Always legal
 * for a sender (the peer keeps its window, we just stop referring to it). */
void pw__deflater_reset(pw__deflater *d);

/* Free zlib's state now (it comes back on the next message, with an empty history). Legal at
 * any time, like a reset; costs compression ratio and a re-allocation. */
void pw__deflater_release(pw__deflater *d);

/* Bytes this deflater holds: the struct plus what zlib allocated (0 zlib bytes before the
 * first message or after a release). */
size_t pw__deflater_mem(const pw__deflater *d);

/* Stateless: compress one message with a fresh stream (window_bits, level, mem_level as for
 * pw__deflater_new) and append it to out. Any thread. Same bytes as a no_context_takeover
 * deflater with the same settings, which is cheaper when called often (no re-allocation). */
int pw__deflate_oneshot(int window_bits, int level, int mem_level, const void *data, size_t len,
                        pw__zbuf *out);

/* Decompressor of one connection's incoming messages. One thread at a time. Owner: the
 * creator, pw__inflater_free. window_bits 8..15 (zlib uses at least 9, see the notes),
 * max_message the largest inflated message accepted (1 .. SIZE_MAX - 1). zlib state is
 * allocated on the first message. 0 and *out, PW_EINVAL or PW_ENOMEM. */
typedef struct pw__inflater pw__inflater;
int pw__inflater_new(pw__inflater **out, int window_bits, int no_context_takeover,
                     size_t max_message);
/* The client side of an agreement (its window, its context takeover). */
int pw__inflater_new_server(pw__inflater **out, const pw__deflate_params *p, size_t max_message);
void pw__inflater_free(pw__inflater *in);

/* Feed the next piece of a compressed message's payload (any split, empty pieces allowed).
 * The first push of a message drops the previous message's output if it was not taken.
 * Inflating stops as soon as the output passes max_message: at most max_message + 1 bytes are
 * ever produced. 0, or PW_ETOOBIG (over the limit), PW_EIO (not valid DEFLATE data), PW_ENOMEM,
 * PW_EINVAL. After an error the inflater answers that error until freed: close the
 * connection (pw__inflate_close_code). */
int pw__inflate_push(pw__inflater *in, const void *data, size_t n);

/* End of the message (its FIN frame was pushed): append 0x00 0x00 0xff 0xff (RFC 7692 7.2.2),
 * check the data ended on a block boundary, and reset the window if the client uses no
 * context takeover. A message of zero compressed bytes is an empty message. Final blocks
 * (BFINAL, RFC 7692 7.2.3.4) are accepted, with or without more blocks after them in the same
 * message; the window is kept across them. 0 and (*msg, *len) the inflated message, valid
 * until the next push, take or free; or an error as for push. */
int pw__inflate_finish(pw__inflater *in, const uint8_t **msg, size_t *len);

/* Hand the last finished message's buffer to the caller, who free()s it; NULL (and *len 0)
 * for an empty message. Saves a copy when the glue wraps it into a pw_buf. */
uint8_t *pw__inflate_take(pw__inflater *in, size_t *len);

/* Free zlib's state between messages. Only legal when the client uses no context takeover
 * (its window would be lost): 0, or PW_ESTATE (context takeover, or inside a message). */
int pw__inflater_release(pw__inflater *in);

/* Bytes this inflater holds: the struct, zlib's state, and the output buffer. */
size_t pw__inflater_mem(const pw__inflater *in);

/* The close code for a codec error: 1009 (PW_ETOOBIG), 1007 (PW_EIO), 1011 (others). */
int pw__inflate_close_code(int err);

#endif
