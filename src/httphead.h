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

/* Parse a whole head, head[0..len). Returns 0, 400 (malformed) or 431 (too many headers). */
int pw__head_parse(pw__head *hi, const uint8_t *head, size_t len);

/* The body a parsed head announces: 0 with *body_len (0 without Content-Length), 501
 * (chunked: not supported) or 413 (over max_body). */
int pw__head_body(const pw__head *hi, size_t max_body, uint64_t *body_len);

/* Strings the request hands out NUL-terminated: path and query in one heap block. */
typedef struct pw__req_strings {
  char remote[64]; /* "" here; the connection glue writes the peer's address */
  char *path, *query; /* in `block` */
  char *block;
} pw__req_strings;

/* Fill *req from a parsed head (method, path, query, headers; remote_addr = rs->remote).
 * 0, or -1 out of memory. Free rs->block after use. */
int pw__head_request(const pw__head *hi, pw_request *req, pw__req_strings *rs);

#endif
