/* The WebSocket read path of a connection (ws.c): the glue between a conn and the pure
 * frame/message state machine (wsparse.c). Loop thread only. */
#ifndef PW_WS_H
#define PW_WS_H

#include <stddef.h>
#include <stdint.h>

#include "conn.h"

/* Process n bytes of frames (p is writable: unmasked in place). */
void pw__ws_read(pw__conn *c, uint8_t *p, size_t n);
/* Release the reassembly/control buffers (and the codecs, past OPEN). */
void pw__ws_free_buffers(pw__conn *c);

#endif
