/* The any-thread calls on connections: pw_send, pw_send_buf, pw_close, pw_call,
 * pw_set_slow_policy. Each validates, then either acts at once (on the loop thread: no queue
 * hop) or becomes a command through the loop's door (inbox.h); dispatch.c carries commands
 * out on the loop. */
#include <stdlib.h>
#include <string.h>

#include "dispatch.h"
#include "loop.h"
#include "pmd.h"
#include "send.h"
#include "server.h"
#include "utf8.h"

/* ---- the producer side -------------------------------------------------------------------- */
int pw__send_cmd(pw__loop *l, const pw__cmd *cmd, int flags) {
  int r = pw__door_push(&l->door, cmd, flags, l->srv->opt.send_timeout_ms);
  if (r == PW_EAGAIN) pw__stat_add(&l->stats.rejected, 1);
  return r;
}

void pw__resume_reads(pw_server *srv) {
  pw__cmd cmd = {.kind = PW__CMD_RESUME};
  for (unsigned i = 0; i < srv->nloops; i++) {
    pw__loop *l = &srv->loops[i];
    if (pw__current_loop() == l) pw__events_resume_paused(l);
    else pw__send_cmd(l, &cmd, PW_BLOCK); /* PW_ESTOPPED: nothing left to resume */
  }
}

/* ---- validation ------------------------------------------------------------------------------ */
/* The loop of `id`, if the server runs and the id is live now. */
int pw__target(pw_server *srv, pw_conn_id id, pw__loop **out) {
  if (!srv) return PW_EINVAL;
  unsigned li = pw__id_loop(id);
  if (id == 0 || li >= srv->nloops) return PW_ENOCONN;
  if (atomic_load(&srv->state) != PW__RUNNING) return PW_ESTOPPED;
  *out = &srv->loops[li];
  if (pw__slots_alive(&(*out)->slots, id)) return 0;
  /* A stop that began since the first look may be what closed it: then that is the answer,
   * so a producer racing the stop learns PW_ESTOPPED, not a stale id. */
  return atomic_load(&srv->state) != PW__RUNNING ? PW_ESTOPPED : PW_ENOCONN;
}

/* On the loop thread: the open connection of `id`, or NULL. */
pw__conn *pw__open_conn(pw__loop *l, pw_conn_id id) {
  pw__conn *c = pw__slots_get(&l->slots, id);
  return c && c->state == PW__S_OPEN ? c : NULL;
}

/* ---- the calls ------------------------------------------------------------------------------- */
/* Queue `buf` for `id` on loop l (already validated), consuming one reference. */
static int send_owned(pw__loop *l, pw_conn_id id, pw_buf *buf, int flags) {
  if (pw__current_loop() == l) {
    pw__conn *c = pw__open_conn(l, id);
    if (!c) return pw_buf_unref(buf), PW_ENOCONN;
    return pw__conn_send(c, buf);
  }
  pw__cmd cmd = {.kind = PW__CMD_SEND, .id = id, .charge = pw__buf_wire_len(buf), .u.buf = buf};
  int r = pw__send_cmd(l, &cmd, flags);
  if (r != 0) pw_buf_unref(buf);
  return r;
}

int pw_send_buf(pw_server *srv, pw_conn_id id, pw_buf *buf, int flags) {
  pw__loop *l;
  if (!buf || (flags & ~PW_BLOCK) || (buf->opcode != PW_OP_TEXT && buf->opcode != PW_OP_BINARY))
    return PW_EINVAL;
  int r = pw__target(srv, id, &l);
  if (r != 0) return r;
  pw_buf_ref(buf); /* this reference travels with the message */
  return send_owned(l, id, buf, flags);
}

int pw_send(pw_server *srv, pw_conn_id id, const void *data, size_t len, int flags) {
  if ((flags & ~(PW_BINARY | PW_BLOCK)) || (len && !data)) return PW_EINVAL;
  if (len > PW__MSG_MAX) return PW_ETOOBIG;
  pw__loop *l;
  int r = pw__target(srv, id, &l); /* before copying: a dead id costs no allocation */
  if (r != 0) return r;
  pw_buf *b = pw_buf_new(data, len, flags & PW_BINARY);
  if (!b) return PW_ENOMEM;
  return send_owned(l, id, b, flags & PW_BLOCK); /* our only reference travels: no ref/unref */
}

/* A close reason goes on the wire as UTF-8 text (RFC 6455 5.5.1): a client fails the
 * connection on anything else, so it is refused here, where the caller can hear about it. */
static int close_reason_valid(const char *reason) {
  size_t n = reason ? strlen(reason) : 0;
  return n <= PW_CONTROL_MAX_PAYLOAD - 2 && pw__utf8_valid((const uint8_t *)reason, n);
}

int pw_close(pw_server *srv, pw_conn_id id, int code, const char *reason) {
  pw__loop *l;
  if (!pw__close_code_valid(code) || !close_reason_valid(reason)) return PW_EINVAL;
  int r = pw__target(srv, id, &l);
  if (r != 0) return r;
  if (pw__current_loop() == l) {
    pw__conn *c = pw__open_conn(l, id);
    if (!c) return PW_ENOCONN;
    pw__conn_close_ws(c, code, reason);
    return 0;
  }
  pw__cmd cmd = {.kind = PW__CMD_CLOSE, .id = id, .code = (uint32_t)code};
  if (reason && *reason && !(cmd.u.reason = strdup(reason))) return PW_ENOMEM;
  r = pw__send_cmd(l, &cmd, PW_BLOCK); /* a close must not be lost to a full inbox lightly */
  if (r != 0) free(cmd.u.reason);
  return r;
}

int pw_call(pw_server *srv, void (*fn)(pw_server *srv, void *arg), void *arg) {
  if (!srv || !fn) return PW_EINVAL;
  pw__task_note_report(); /* before the handover: a start made by fn sees it */
  if (atomic_load(&srv->state) != PW__RUNNING) return PW_ESTOPPED;
  pw__loop *l = &srv->loops[0];
  if (pw__current_loop() == l) return fn(srv, arg), 0;
  pw__cmd cmd = {.kind = PW__CMD_CALL, .u.fn = fn, .arg = arg};
  return pw__send_cmd(l, &cmd, 0);
}

int pw_set_slow_policy(pw_server *srv, pw_conn_id id, pw_slow_policy policy, size_t limit) {
  pw__loop *l;
  if (policy > PW_SLOW_DROP_OLDEST || limit > UINT32_MAX) return PW_EINVAL;
  int r = pw__target(srv, id, &l);
  if (r != 0) return r;
  pw__cmd cmd = {.kind = PW__CMD_POLICY, .id = id, .code = policy, .u.limit = limit};
  if (pw__current_loop() == l) return pw__dispatch(l, &cmd), 0;
  return pw__send_cmd(l, &cmd, 0);
}
