/* Small pure helpers over HTTP requests: percent-decoding, query parameters, the token a
 * request presents. No allocation; the caller gives the output buffer. */
#ifndef PUSHWIRED_REQUEST_H
#define PUSHWIRED_REQUEST_H

#include <pushwire.h>
#include <stddef.h>

/* Decode %XX escapes of src[0..len) into out (NUL-terminated). Returns the decoded length,
 * or -1 for a malformed escape, a decoded NUL byte, or no room. '+' stays '+'. */
long pwd_percent_decode(const char *src, size_t len, char *out, size_t outcap);

/* The decoded value of `key` in a query string ("a=1&token=x"). -1 when absent or bad. */
long pwd_query_param(const char *query, const char *key, char *out, size_t outcap);

/* The token the request presents: "Authorization: Bearer T", else the query's token=T.
 * Returns its length (0 = none presented) or -1 when a Bearer token does not fit. */
long pwd_request_token(const pw_request *req, char *out, size_t outcap);

#endif
