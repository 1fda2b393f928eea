/* The TLS glue of a connection (tlsglue.c): a connection accepted on the TLS listener reads
 * and flushes through these instead of the socket directly. Loop thread only. */
#ifndef PW_TLSGLUE_H
#define PW_TLSGLUE_H

#include <stddef.h>
#include <stdint.h>

#include "conn.h"

/* n bytes of ciphertext from the socket (in the loop's read buffer, which then receives the
 * plaintext for the connection's read path). */
void pw__tlsglue_read(pw__conn *c, uint8_t *p, size_t n);
/* Write what is queued through the engine (conn.c's flush, same may_end rule). */
void pw__tlsglue_flush(pw__conn *c, int may_end);

#endif
