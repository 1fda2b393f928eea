/* The any-thread calls on connections: pw_send, pw_send_buf, pw_close, pw_call,
 * pw_set_slow_policy. Each validates, then either acts at once (on the loop thread: no queue
 * hop) or becomes a command in the loop's inbox; pw__dispatch is the loop side of the same
 * commands, so each command's two halves sit together here.
 * Design notes: a producer counts itself into loop->producers for the few instructions in
 * which it touches the inbox and the wakeup, and checks door_closed after counting in.
 * pw_server_stop closes every loop's door at once (pw__door_close) and wakes the PW_BLOCK
 * waiters, which then answer PW_ESTOPPED; the loop, when it reaches its stop, waits for
 * producers to reach zero (whoever closed the door) before it drains the inbox, so exactly
 * the commands pushed by producers that got in before the close are carried out, and no
 * wakeup can hit the async handle once it closes (a Dekker pair on seq_cst atomics: one
 * side always sees the other). */
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "loop.h"
#include "pmd.h"
#include "send.h"
#include "server.h"
#include "utf8.h"

/* ---- the producer side -------------------------------------------------------------------- */
static int door_enter(pw__loop *l) {
  atomic_fetch_add(&l->producers, 1);
  if (atomic_load(&l->door_closed)) {
    atomic_fetch_sub(&l->producers, 1);
    return PW_ESTOPPED;
  }
  return 0;
}

static void door_leave(pw__loop *l) { atomic_fetch_sub(&l->producers, 1); }

/* Close the door from any thread, and wake the loop to stop. The caller counts itself in
 * for its own wakeup: if it closed the door first, the loop's close_door sees it inside and
 * waits before closing the async handle; if the loop closed it first, nobody wakes it. */
void pw__door_close(pw__loop *l) {
  atomic_fetch_add(&l->producers, 1);
  if (!atomic_exchange(&l->door_closed, 1)) {
    atomic_store(&l->stop_requested, 1);
    uv_async_send(&l->wake);
  }
  atomic_fetch_sub(&l->producers, 1);
  pw__room_available(l); /* PW_BLOCK waiters find the door closed: PW_ESTOPPED at once */
}

/* Reserve budget for `bytes`; a message alone in an empty inbox always fits. */
static int reserve(pw__loop *l, size_t bytes) {
  size_t before = atomic_fetch_add(&l->inbox_bytes, bytes);
  if (before == 0 || before + bytes <= l->srv->opt.max_inbox_bytes) return 1;
  atomic_fetch_sub(&l->inbox_bytes, bytes);
  return 0;
}

/* One try: 0 (queued and the loop woken), PW_EAGAIN (no room) or PW_ESTOPPED. */
static int try_push(pw__loop *l, const pw__cmd *cmd, size_t bytes) {
  int r = door_enter(l);
  if (r != 0) return r;
  r = PW_EAGAIN;
  if (reserve(l, bytes)) {
    if (pw__inbox_push(&l->inbox, cmd) == 0) {
      uv_async_send(&l->wake); /* coalesced: a syscall only if no wakeup is pending */
      r = 0;
    } else {
      atomic_fetch_sub(&l->inbox_bytes, bytes);
    }
  }
  door_leave(l);
  return r;
}

/* Wait (in short slices, so a missed signal costs little) until the loop drains or time is up. */
static int wait_room(pw__loop *l, uint64_t deadline_ns) {
  uint64_t now = uv_hrtime();
  if (now >= deadline_ns) return 0;
  uint64_t slice = deadline_ns - now < 10000000 ? deadline_ns - now : 10000000;
  uv_mutex_lock(&l->room_lock);
  atomic_fetch_add(&l->room_waiters, 1);
  if (!atomic_load(&l->door_closed)) uv_cond_timedwait(&l->room_cond, &l->room_lock, slice);
  atomic_fetch_sub(&l->room_waiters, 1);
  uv_mutex_unlock(&l->room_lock);
  return 1;
}

/* When a PW_BLOCK wait gives up: send_timeout_ms from now, never when it is negative (then
 * only room or the stop ends it). */
static uint64_t block_deadline(int timeout_ms) {
  if (timeout_ms < 0) return UINT64_MAX;
  return uv_hrtime() + (uint64_t)timeout_ms * 1000000u;
}

/* Queue a command for loop l, waiting for room with PW_BLOCK. */
int pw__send_cmd(pw__loop *l, const pw__cmd *cmd, size_t bytes, int flags) {
  uint64_t deadline = 0; /* read the clock only once we must wait: not on every send */
  for (;;) {
    int r = try_push(l, cmd, bytes);
    if (r != PW_EAGAIN) return r;
    if (flags & PW_BLOCK) {
      if (!deadline) deadline = block_deadline(l->srv->opt.send_timeout_ms);
      if (wait_room(l, deadline)) continue;
    }
    pw__stat_add(&l->stats.rejected, 1);
    return PW_EAGAIN;
  }
}

void pw__resume_reads(pw_server *srv) {
  pw__cmd cmd = {.kind = PW__CMD_RESUME};
  for (unsigned i = 0; i < srv->nloops; i++) {
    pw__loop *l = &srv->loops[i];
    if (pw__current_loop() == l) pw__loop_resume_reads(l);
    else pw__send_cmd(l, &cmd, 0, PW_BLOCK); /* PW_ESTOPPED: nothing left to resume */
  }
}

/* Called by the loop after draining: let blocked producers retry. */
void pw__room_available(pw__loop *l) {
  if (atomic_load(&l->room_waiters) == 0) return;
  uv_mutex_lock(&l->room_lock);
  uv_cond_broadcast(&l->room_cond);
  uv_mutex_unlock(&l->room_lock);
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

/* ---- the calls -------------------------------------------------------------------------------- */
/* Queue `buf` for `id` on loop l (already validated), consuming one reference. */
static int send_owned(pw__loop *l, pw_conn_id id, pw_buf *buf, int flags) {
  if (pw__current_loop() == l) {
    pw__conn *c = pw__open_conn(l, id);
    if (!c) return pw_buf_unref(buf), PW_ENOCONN;
    return pw__pmd_queue_msg(c, buf); /* compressed here, on the loop, if negotiated */
  }
  pw__cmd cmd = {.kind = PW__CMD_SEND, .id = id, .u.buf = buf};
  int r = pw__send_cmd(l, &cmd, pw__buf_wire_len(buf), flags);
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
  r = pw__send_cmd(l, &cmd, 0, PW_BLOCK); /* a close must not be lost to a full inbox lightly */
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
  return pw__send_cmd(l, &cmd, 0, 0);
}

int pw_set_slow_policy(pw_server *srv, pw_conn_id id, pw_slow_policy policy, size_t limit) {
  pw__loop *l;
  if (policy > PW_SLOW_DROP_OLDEST || limit > UINT32_MAX) return PW_EINVAL;
  int r = pw__target(srv, id, &l);
  if (r != 0) return r;
  pw__cmd cmd = {.kind = PW__CMD_POLICY, .id = id, .code = policy, .u.limit = limit};
  if (pw__current_loop() == l) return pw__dispatch(l, &cmd), 0;
  return pw__send_cmd(l, &cmd, 0, 0);
}

/* ---- the loop side ------------------------------------------------------------------------------ */
static void apply_policy(pw__conn *c, const pw__cmd *cmd) {
  c->has_policy = 1;
  c->slow_policy = (uint8_t)cmd->code;
  c->max_queued = (uint32_t)cmd->u.limit;
}

static size_t dispatch_one(pw__loop *l, const pw__cmd *cmd) {
  pw__conn *c;
  switch (cmd->kind) {
  case PW__CMD_SEND:
    l->drained_bytes += pw__buf_wire_len(cmd->u.buf); /* returned to inbox_bytes per batch */
    if ((c = pw__open_conn(l, cmd->id))) {
      pw__pmd_queue_msg(c, cmd->u.buf);
    } else {
      pw_buf_unref(cmd->u.buf);
      pw__stat_add(&l->stats.dropped_closed, 1);
    }
    return 1;
  case PW__CMD_CLOSE:
    if ((c = pw__open_conn(l, cmd->id))) pw__conn_close_ws(c, (int)cmd->code, cmd->u.reason);
    free(cmd->u.reason);
    return 1;
  case PW__CMD_CALL:
    cmd->u.fn(l->srv, cmd->arg);
    return 1;
  case PW__CMD_POLICY:
    if ((c = pw__open_conn(l, cmd->id))) apply_policy(c, cmd);
    return 1;
  case PW__CMD_RESUME:
    pw__loop_resume_reads(l);
    return 1;
  default:
    return pw__dispatch_topic(l, cmd);
  }
}

/* Carry out one command on the loop thread; releases what the command owns. Returns its
 * work (queue appends), which bounds one drain. A publish may wait in the loop's batch
 * (publish.c); any other command fans the batch out first, so inbox order is kept. */
size_t pw__dispatch(pw__loop *l, const pw__cmd *cmd) {
  size_t work = cmd->kind != PW__CMD_PUBLISH ? pw__batch_flush(l) : 0;
  return work + dispatch_one(l, cmd);
}
