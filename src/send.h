/* What the any-thread calls share (send.c, publish.c): id validation and the push of a
 * command through a loop's door. */
#ifndef PW_SEND_H
#define PW_SEND_H

#include "frame.h"
#include "loop.h"

/* The largest payload pw_send and pw_publish copy (PW_ETOOBIG past it, before copying): a
 * frame's wire length then fits in 32 bits. */
#define PW__MSG_MAX ((size_t)UINT32_MAX - PW_FRAME_MAX_HEADER)

/* Push a command (its charge set) through loop l's door, waiting for room with PW_BLOCK up
 * to send_timeout_ms; a refusal is counted in stats.rejected. 0, PW_EAGAIN, PW_ESTOPPED. */
int pw__send_cmd(pw__loop *l, const pw__cmd *cmd, int flags);
/* The loop of id, if the server runs and the id is live now: 0, PW_ENOCONN, PW_ESTOPPED. */
int pw__target(struct pw_server *srv, pw_conn_id id, pw__loop **out);
/* Loop thread: the open connection of id, or NULL. */
pw__conn *pw__open_conn(pw__loop *l, pw_conn_id id);
/* Any thread: ask every loop to resume the clients PW_EVQ_PAUSE stopped. */
void pw__resume_reads(struct pw_server *srv);

#endif
