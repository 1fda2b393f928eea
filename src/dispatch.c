/* The loop half of every command: see dispatch.h. Loop thread only. */
#include "dispatch.h"

#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "loop.h"
#include "pmd.h"
#include "publish.h"
#include "send.h"
#include "server.h"
#include "stream.h"

static void apply_policy(pw__conn *c, const pw__cmd *cmd) {
  c->has_policy = 1;
  c->slow_policy = (uint8_t)cmd->code;
  c->max_queued = (uint32_t)cmd->u.limit;
}

static void send_cmd(pw__loop *l, const pw__cmd *cmd) {
  pw__conn *c = pw__open_conn(l, cmd->id);
  if (c) return (void)pw__conn_send(c, cmd->u.buf);
  pw_buf_unref(cmd->u.buf);
  pw__stat_add(&l->stats.dropped_closed, 1);
}

static void subscribe_cmd(pw__loop *l, const pw__cmd *cmd) {
  pw__conn *c = pw__open_conn(l, cmd->id);
  int r = c ? pw__topic_subscribe(l, c, cmd->u.topic, strlen(cmd->u.topic)) : 0;
  if (r != 0) pw__notify_subscribe_refused(l, cmd->id, cmd->u.topic, r);
  free(cmd->u.topic);
}

static void unsubscribe_cmd(pw__loop *l, const pw__cmd *cmd) {
  pw__conn *c = pw__open_conn(l, cmd->id);
  if (c) pw__topic_unsubscribe(l, c, cmd->u.topic, strlen(cmd->u.topic));
  free(cmd->u.topic);
}

static void subscribe_from_cmd(pw__loop *l, const pw__cmd *cmd) {
  pw__conn *c = pw__open_conn(l, cmd->id);
  pw_recovery res;
  int r = c ? pw__stream_subscribe(l, c, cmd->u.topic, strlen(cmd->u.topic), cmd->arg, &res) : 0;
  if (r != 0) pw__notify_subscribe_refused(l, cmd->id, cmd->u.topic, r);
  else if (c) pw__notify_recovery(l, cmd->id, cmd->u.topic, &res);
  free(cmd->u.topic);
  free(cmd->arg);
}

static size_t publish_cmd(pw__loop *l, pw__pub *p) {
  return p->rt ? pw__stream_publish(l, p) : pw__batch_add(l, p);
}

static size_t dispatch_one(pw__loop *l, const pw__cmd *cmd) {
  pw__conn *c;
  switch (cmd->kind) {
  case PW__CMD_SEND: return send_cmd(l, cmd), 1;
  case PW__CMD_CLOSE:
    if ((c = pw__open_conn(l, cmd->id))) pw__conn_close_ws(c, (int)cmd->code, cmd->u.reason);
    free(cmd->u.reason);
    return 1;
  case PW__CMD_CALL: return cmd->u.fn(l->srv, cmd->arg), 1;
  case PW__CMD_POLICY:
    if ((c = pw__open_conn(l, cmd->id))) apply_policy(c, cmd);
    return 1;
  case PW__CMD_RESUME: return pw__events_resume_paused(l), 1;
  case PW__CMD_SUB: return subscribe_cmd(l, cmd), 1;
  case PW__CMD_UNSUB: return unsubscribe_cmd(l, cmd), 1;
  case PW__CMD_PUBLISH: return 1 + publish_cmd(l, cmd->u.pub);
  case PW__CMD_SUB_FROM: return subscribe_from_cmd(l, cmd), 1;
  default: return 1;
  }
}

size_t pw__dispatch(pw__loop *l, const pw__cmd *cmd) {
  size_t work = cmd->kind != PW__CMD_PUBLISH ? pw__batch_flush(l) : 0;
  pw__door_refund(&l->door, cmd->charge);
  return work + dispatch_one(l, cmd);
}
