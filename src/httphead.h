/* An HTTP/1.1 request head as pure functions over a caller buffer: find its end, parse it
 * with llhttp into header spans, judge the body it announces and build the pw_request that
 * callbacks see. No sockets and no loop, so http.c (the connection glue) and the fuzz harness
 * run the very same code. */
#ifndef PW_HTTPHEAD_H
#define PW_HTTPHEAD_H

#include <llhttp.h>
#include <stddef.h>
#include <stdint.h>

#include "pushwire.h"

#define PW__MAX_HEADERS 64

/* What llhttp tells us about one head. Every pointer points into the parsed buffer. */
typedef struct pw__head {
  pw_header headers[PW__MAX_HEADERS];
  size_t count;
  int too_many, in_value, done;
  const char *url;
  size_t url_len;
  llhttp_t parser; /* method, http_major/minor, flags, content_length after the parse */
} pw__head;

/* Length of the head at the front of buf[0..len) (up to and including the blank line), or 0
 * while it is incomplete. *scanned (0 at first) remembers how far the search got, so a head
 * arriving in many pieces is searched once. */
size_t pw__head_end(const uint8_t *buf, size_t len, size_t *scanned);

/* Judge the bytes of a head while it arrives, before its end is there, so that what cannot
 * start a valid request is answered at once rather than at the handshake timeout: the first
 * byte of the request line must be a token character (RFC 9112 3: the method), CR only in
 * CRLF, LF only after CR (a bare CR or LF is known when it arrives), no other control
 * character (RFC 9110 5.5). Empty lines before the request line pass (RFC 9112 2.2).
 * Call with buf[0..len) the bytes of this head so far (never past its end) and *st zeroed
 * at its start; each byte is judged once. Returns 0 (it may still become a valid head), 400,
 * or PW__HEAD_TLS: the first byte is 0x16, a TLS handshake record (a ClientHello sent to a
 * plain port), which is 400 as well but worth saying so. */
#define PW__HEAD_TLS 1
typedef struct pw__head_check {
  size_t pos;    /* bytes judged so far */
  uint8_t phase; /* before the request line, in its method, after the method */
} pw__head_check;
int pw__head_check_bytes(const uint8_t *buf, size_t len, pw__head_check *st);

/* RFC 9110 5.6.2 tchar: a character allowed in a token (methods, header names). */
int pw__http_tchar(int c);

/* Parse a whole head, head[0..len). Returns 0, 400 (malformed; also an HTTP/1.1 request
 * without a Host header, and any request with more than one: RFC 9112 3.2) or 431 (too many
 * headers). */
int pw__head_parse(pw__head *hi, const uint8_t *head, size_t len);

/* The body a parsed head announces: 0 with *body_len (0 without Content-Length), 501
 * (chunked: not supported) or 413 (over max_body). */
int pw__head_body(const pw__head *hi, size_t max_body, uint64_t *body_len);

/* Strings the request hands out NUL-terminated: path and query in one heap block. */
typedef struct pw__req_strings {
  char remote[64];    /* "" here; the connection glue writes the peer's address */
  char *path, *query; /* in `block` */
  char *block;
} pw__req_strings;

/* Fill *req from a parsed head (method, path, query, headers; remote_addr = rs->remote).
 * 0, or -1 out of memory. Free rs->block after use. */
int pw__head_request(const pw__head *hi, pw_request *req, pw__req_strings *rs);

#endif
