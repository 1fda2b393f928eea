/* The WebSocket read path: frames in, messages out. Loop thread only.
 * Design notes: the parser streams. A frame header is parsed once it is whole (a partial one
 * waits in the conn's 14-byte hdr_buf); the payload is then unmasked in place in the loop's
 * read buffer, piece by piece. A whole unfragmented message found in one read is delivered
 * straight from the read buffer (no copy); otherwise pieces go to a reassembly buffer that
 * exists only while a message is in progress. Text is validated as it arrives, so invalid
 * UTF-8 fails the connection at the first bad byte (RFC 6455 8.1), not at the end. */
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "events.h"
#include "loop.h"
#include "server.h"

static int is_control(int opcode) { return opcode >= PW_OP_CLOSE; }
static int ws_reading(const pw__conn *c) {
  return c->state == PW__S_OPEN || c->state == PW__S_CLOSING;
}

void pw__ws_free_buffers(pw__conn *c) {
  free(c->msg);
  free(c->ctrl);
  c->msg = c->ctrl = NULL;
  c->msg_len = c->msg_cap = 0;
}

/* ---- judging a new frame header ----------------------------------------------------------- */
/* Returns 0 if the frame may be read, else the close code to fail with. */
static int judge_header(const pw__conn *c, const pw__frame_hdr *h) {
  size_t max = c->loop->srv->opt.max_message_size;
  if (!h->masked) return PW_CLOSE_PROTOCOL_ERROR; /* clients must mask (RFC 6455 5.1) */
  if (h->rsv) return PW_CLOSE_PROTOCOL_ERROR;     /* no extension negotiated */
  if (is_control(h->opcode)) return 0;
  if (h->opcode == PW_OP_CONT && !c->msg_opcode) return PW_CLOSE_PROTOCOL_ERROR;
  if (h->opcode != PW_OP_CONT && c->msg_opcode) return PW_CLOSE_PROTOCOL_ERROR;
  if (h->payload_len > max || c->msg_len + h->payload_len > max) return PW_CLOSE_TOO_BIG;
  return 0;
}

static void fail(pw__conn *c, int code) {
  static const char *const reasons[] = {"protocol error", "invalid UTF-8", "message too big"};
  const char *reason = code == PW_CLOSE_PROTOCOL_ERROR  ? reasons[0]
                       : code == PW_CLOSE_INVALID_DATA ? reasons[1]
                                                       : reasons[2];
  pw__conn_fail(c, code, reason);
}

/* ---- messages ----------------------------------------------------------------------------- */
static void deliver(pw__conn *c, int opcode, const uint8_t *data, size_t len) {
  pw_server *srv = c->loop->srv;
  if (c->state != PW__S_OPEN) return;
  if (srv->opt.deliver_message == PW_DELIVER_QUEUE)
    pw__events_message(c, opcode == PW_OP_BINARY, data, len);
  else if (srv->cb.on_message)
    srv->cb.on_message(srv, c->id, data, len, opcode == PW_OP_BINARY, srv->user);
}

static int msg_append(pw__conn *c, const uint8_t *p, size_t n) {
  if (n == 0) return 0;
  if (c->msg_len + n > c->msg_cap) {
    size_t cap = c->msg_cap ? c->msg_cap : 256;
    while (cap < c->msg_len + n) cap *= 2;
    uint8_t *m = realloc(c->msg, cap);
    if (!m) return -1;
    c->msg = m;
    c->msg_cap = cap;
  }
  memcpy(c->msg + c->msg_len, p, n);
  c->msg_len += n;
  return 0;
}

static void message_done(pw__conn *c, const uint8_t *direct, size_t direct_len) {
  int opcode = c->msg_opcode;
  if (opcode == PW_OP_TEXT && !pw__utf8_complete(&c->utf8)) return fail(c, PW_CLOSE_INVALID_DATA);
  c->msg_opcode = 0;
  memset(&c->utf8, 0, sizeof c->utf8);
  if (direct) return deliver(c, opcode, direct, direct_len);
  uint8_t *m = c->msg;
  size_t len = c->msg_len;
  c->msg = NULL; /* detach first: on_message may close the connection */
  c->msg_len = c->msg_cap = 0;
  deliver(c, opcode, m, len);
  free(m);
}

/* A piece of a data frame's payload (already unmasked). */
static void data_piece(pw__conn *c, const uint8_t *p, size_t n) {
  const pw__frame_hdr *h = &c->frame;
  if (h->opcode != PW_OP_CONT) c->msg_opcode = h->opcode;
  if (c->msg_opcode == PW_OP_TEXT && pw__utf8_feed(&c->utf8, p, n) != 0)
    return fail(c, PW_CLOSE_INVALID_DATA);
  int last = c->frame_done + n == h->payload_len;
  /* Zero-copy path: the whole message is this one piece. */
  if (last && h->fin && c->frame_done == 0 && c->msg_len == 0) return message_done(c, p, n);
  if (msg_append(c, p, n) != 0) return pw__conn_fail(c, PW_CLOSE_INTERNAL, "out of memory");
  if (last && h->fin) message_done(c, NULL, 0);
}

/* ---- control frames ------------------------------------------------------------------------ */
static void on_close_frame(pw__conn *c, const uint8_t *p, size_t n) {
  int code;
  const uint8_t *reason;
  size_t reason_len;
  int r = pw__close_parse(p, n, &code, &reason, &reason_len);
  if (r < 0) return fail(c, -r);
  char text[PW_CONTROL_MAX_PAYLOAD + 1];
  if (reason_len) memcpy(text, reason, reason_len);
  text[reason_len] = '\0';
  if (c->state == PW__S_OPEN) {
    /* Echo the peer's code (RFC 6455 5.5.1); an empty close is answered with an empty one. */
    uint8_t reply[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    pw__conn_send_frame(c, PW_OP_CLOSE, reply, code == PW_CLOSE_NO_STATUS ? 0 : 2);
    c->close_code = (uint16_t)code;
    c->close_reason = reason_len ? strdup(text) : NULL;
  }
  pw__conn_end_after_flush(c); /* CLOSING: this was the answer to our close */
}

static void control_frame(pw__conn *c, int opcode, const uint8_t *p, size_t n) {
  if (opcode == PW_OP_CLOSE) return on_close_frame(c, p, n);
  if (opcode == PW_OP_PING && c->state == PW__S_OPEN) pw__conn_send_frame(c, PW_OP_PONG, p, n);
  /* PONG: proof of life, already counted as activity by the read. */
}

/* A piece of a control frame's payload: handled at once when whole, else collected. */
static void control_piece(pw__conn *c, const uint8_t *p, size_t n) {
  const pw__frame_hdr *h = &c->frame;
  int last = c->frame_done + n == h->payload_len;
  if (last && c->frame_done == 0) return control_frame(c, h->opcode, p, n);
  if (!c->ctrl && !(c->ctrl = malloc(PW_CONTROL_MAX_PAYLOAD)))
    return pw__conn_fail(c, PW_CLOSE_INTERNAL, "out of memory");
  memcpy(c->ctrl + c->frame_done, p, n);
  if (!last) return;
  uint8_t copy[PW_CONTROL_MAX_PAYLOAD];
  memcpy(copy, c->ctrl, h->payload_len);
  free(c->ctrl);
  c->ctrl = NULL;
  control_frame(c, h->opcode, copy, (size_t)h->payload_len);
}

/* ---- the byte stream ----------------------------------------------------------------------- */
static void frame_payload(pw__conn *c, uint8_t *p, size_t n) {
  if (c->frame.masked) pw__frame_mask(p, n, c->frame.mask, c->frame_done);
  if (is_control(c->frame.opcode))
    control_piece(c, p, n);
  else if (c->state == PW__S_OPEN)
    data_piece(c, p, n);
  c->frame_done += n; /* harmless if the connection ended meanwhile: ws_reading stops us */
}

/* Parse a header from hdr_buf + p. Returns bytes of p consumed; sets c->in_frame when whole. */
static size_t read_header(pw__conn *c, const uint8_t *p, size_t n) {
  size_t take = PW_FRAME_MAX_HEADER - c->hdr_have;
  if (take > n) take = n;
  memcpy(c->hdr_buf + c->hdr_have, p, take);
  int r = pw__frame_parse_header(c->hdr_buf, c->hdr_have + take, &c->frame);
  if (r == 0) {
    c->hdr_have += (uint8_t)take;
    return take;
  }
  size_t used = r > 0 ? (size_t)r - c->hdr_have : take;
  c->hdr_have = 0;
  int code = r < 0 ? -r : judge_header(c, &c->frame);
  if (code) {
    fail(c, code);
    return n;
  }
  c->in_frame = 1;
  c->frame_done = 0;
  return used;
}

void pw__ws_read(pw__conn *c, uint8_t *p, size_t n) {
  while (ws_reading(c)) {
    if (!c->in_frame) {
      if (n == 0) return;
      size_t used = read_header(c, p, n);
      p += used, n -= used;
      if (!c->in_frame) continue;
    }
    uint64_t left = c->frame.payload_len - c->frame_done;
    size_t take = left < n ? (size_t)left : n;
    if (take == 0 && left > 0) return; /* need more bytes */
    frame_payload(c, p, take);
    p += take, n -= take;
    if (c->frame_done == c->frame.payload_len) c->in_frame = 0;
  }
}
