/* The WebSocket opening handshake as pure functions over a parsed request: is it an upgrade,
 * is it a valid one (and which HTTP status if not), the Sec-WebSocket-Accept value, and the
 * subprotocol offers. No I/O, no allocation. */
#ifndef PW_HANDSHAKE_H
#define PW_HANDSHAKE_H

#include <stddef.h>
#include "pushwire.h"

#define PW__ACCEPT_LEN 28 /* base64 of a 20-byte SHA-1 */
#define PW__MAX_OFFERS 16

/* 1 if the comma-separated header value contains `token` (case-insensitive, OWS trimmed). */
int pw__has_token(const char *value, size_t len, const char *token);

/* 1 if the request asks for a WebSocket upgrade (Upgrade has "websocket" and Connection has
 * "upgrade"): from then on it is judged as a handshake, not served as a plain request. */
int pw__is_upgrade(const pw_request *req);

/* Judge an upgrade request. http_minor is the HTTP/1.x minor version (llhttp's).
 * Returns 101 if valid, else the status to answer: 400 (bad method, HTTP version, key; more
 * than one Sec-WebSocket-Key or Sec-WebSocket-Version; Host is pw__head_parse's check),
 * 426 (unsupported Sec-WebSocket-Version: answer with "Sec-WebSocket-Version: 13"). */
int pw__upgrade_status(const pw_request *req, int http_major, int http_minor);

/* 1 if `key` base64-decodes to exactly 16 bytes. */
int pw__ws_key_valid(const char *key, size_t len);

/* Sec-WebSocket-Accept for a key: writes PW__ACCEPT_LEN chars + NUL into out. 0 or -1. */
int pw__ws_accept(const char *key, size_t len, char out[PW__ACCEPT_LEN + 1]);

/* Split every Sec-WebSocket-Protocol header of req into tokens. Each offer is copied,
 * NUL-terminated, into `store` (store_len bytes); up to PW__MAX_OFFERS. Returns the count. */
size_t pw__subprotocol_offers(const pw_request *req, char *store, size_t store_len,
                              const char *offers[PW__MAX_OFFERS]);

#endif
