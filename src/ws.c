/* The WebSocket read path of a connection: the glue between a conn and the pure frame/message
 * state machine in wsparse.c. It maps the conn's state to the parser's mode and the parser's
 * events to the user's callbacks, pongs and close replies. Loop thread only. */
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "ws.h"
#include "events.h"
#include "loop.h"
#include "pmd.h"
#include "server.h"

/* OPEN: everything; CLOSING (we sent a close): only the peer's control frames matter. */
static int read_mode(const pw__conn *c) {
  return c->state == PW__S_OPEN      ? PW__WSP_ALL
         : c->state == PW__S_CLOSING ? PW__WSP_CONTROL_ONLY
                                     : PW__WSP_STOP;
}

void pw__ws_free_buffers(pw__conn *c) {
  /* Entering CLOSING the parser goes on reading control frames: a close frame split across
   * reads keeps its first part. Any other time the connection reads no more. */
  if (c->state == PW__S_CLOSING) pw__wsp_drop_message(&c->ws);
  else pw__wsp_free(&c->ws);
  /* Past OPEN no data message is read or queued: the codecs (up to ~300 KiB) go now. */
  pw__pmd_free(c);
}

static int on_message(void *ctx, int opcode, const uint8_t *data, size_t len) {
  pw__conn *c = ctx;
  if (c->state == PW__S_OPEN) pw__notify_message(c, opcode == PW_OP_BINARY, data, len);
  return read_mode(c);
}

static int on_control(void *ctx, int opcode, const uint8_t *data, size_t len) {
  pw__conn *c = ctx;
  if (opcode == PW_OP_PING && c->state == PW__S_OPEN) pw__conn_send_frame(c, PW_OP_PONG, data, len);
  /* PONG: proof of life, already counted as activity by the read. */
  return read_mode(c);
}

static int on_close(void *ctx, int code, const uint8_t *reason, size_t reason_len) {
  pw__conn *c = ctx;
  if (c->state == PW__S_OPEN) {
    /* Echo the peer's code (RFC 6455 5.5.1); an empty close is answered with an empty one. */
    uint8_t reply[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    pw__conn_send_frame(c, PW_OP_CLOSE, reply, code == PW_CLOSE_NO_STATUS ? 0 : 2);
    c->close_code = (uint16_t)code;
    c->close_reason = reason_len ? strndup((const char *)reason, reason_len) : NULL;
  }
  pw__conn_end_after_flush(c); /* CLOSING: this was the answer to our close */
  return read_mode(c);
}

static void on_fail(void *ctx, int code, const char *reason) { pw__conn_fail(ctx, code, reason); }

static const pw__wsp_ops ws_ops = {on_message, on_control, on_close, on_fail};

void pw__ws_read(pw__conn *c, uint8_t *p, size_t n) {
  const pw_options *o = &c->loop->srv->opt;
  pw__wsp_config cfg = {
      &ws_ops,     c, o->max_message_size, o->max_message_frames, c->pmd_on ? &c->pmd : NULL,
      &c->inflater};
  pw__wsp_feed(&c->ws, &cfg, read_mode(c), p, n);
}
