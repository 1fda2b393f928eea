/* The HTTP phase of a connection (http.c): requests, plain answers and the upgrade. Loop
 * thread only. */
#ifndef PW_HTTP_H
#define PW_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "conn.h"

/* Process n bytes of request data. */
void pw__http_read(pw__conn *c, const uint8_t *p, size_t n);
/* Free the HTTP-phase state (the head buffer). */
void pw__http_free(pw__conn *c);

#endif
