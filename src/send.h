/* The producer side of the inbox, shared by the calls on connections (send.c) and on topics
 * (publish.c). */
#ifndef PW_SEND_H
#define PW_SEND_H

#include "frame.h"
#include "loop.h"

/* The largest payload pw_send and pw_publish copy (PW_ETOOBIG past it, before copying): a
 * frame's wire length then fits in 32 bits. */
#define PW__MSG_MAX ((size_t)UINT32_MAX - PW_FRAME_MAX_HEADER)

/* Queue a command for loop l (waking it), waiting for room with PW_BLOCK. `bytes` counts
 * against max_inbox_bytes. 0, PW_EAGAIN, PW_ESTOPPED. */
int pw__send_cmd(pw__loop *l, const pw__cmd *cmd, size_t bytes, int flags);
/* The loop of id, if the server runs and the id is live now: 0, PW_ENOCONN, PW_ESTOPPED. */
int pw__target(struct pw_server *srv, pw_conn_id id, pw__loop **out);
/* Loop thread: the open connection of id, or NULL. */
pw__conn *pw__open_conn(pw__loop *l, pw_conn_id id);
/* publish.c: the loop side of SUB, UNSUB, PUBLISH and COUNT commands. */
size_t pw__dispatch_topic(pw__loop *l, const pw__cmd *cmd); /* returns its work */
/* publish.c: fan out the publishes waiting in the loop's batch; returns the work. */
size_t pw__batch_flush(pw__loop *l);

#endif
