/* The one way pushwired publishes: every source (HTTP, WebSocket, Unix socket, --exec,
 * --stdin, the demo) ends here, so the delivery format, the size limit, the counters and the
 * DEBUG line are the same for all. Delivery formats, chosen by topic:
 *   JSON (default): {"topic":"T","data":D}, D being the payload itself when it is a JSON value,
 *                   else the payload as a JSON string (then it must be UTF-8);
 *   raw (--raw PREFIX): the payload's bytes as they are, a text frame if UTF-8, else binary. */
#ifndef PUSHWIRED_DELIVER_H
#define PUSHWIRED_DELIVER_H

#include <jansson.h>
#include <stddef.h>

#include "daemon.h"

/* Errors beyond the library's PW_E* codes. */
#define PWD_EBADTOPIC (-100) /* not 1..255 bytes of UTF-8 without control characters */
#define PWD_ENOTUTF8 (-101)  /* a JSON topic's payload is neither JSON nor UTF-8 text */

/* Publish payload[0..len) to topic. payload_is_json: the caller vouches that the payload is
 * one complete JSON value (skips the check). Any thread; from other threads than the loops'
 * it waits for room in a full inbox (PW_BLOCK) rather than dropping. Returns 0 or a negative
 * code (PWD_E*, PW_ETOOBIG, PW_EAGAIN, PW_ESTOPPED, PW_ENOMEM). */
int pwd_publish(pwd_daemon *d, pwd_source src, const char *topic, const void *payload, size_t len,
                int payload_is_json);

/* Publish a parsed JSON value (a WebSocket client's "data"): in JSON topics as the value, in
 * raw topics a string's bytes or else the compact JSON text. */
int pwd_publish_value(pwd_daemon *d, pwd_source src, const char *topic, json_t *data);

/* Text for any code pwd_publish returns. */
const char *pwd_publish_strerror(int code);

/* The demo source's callback (demo.h's demo_publish_fn); ctx is the pwd_daemon. */
int pwd_demo_publish(void *ctx, const char *topic, const char *json, size_t len);

#endif
