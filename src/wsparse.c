/* The WebSocket read-side state machine (see wsparse.h): frames in, events out.
 * Design notes: the parser streams. A frame header is parsed once it is whole (a partial one
 * waits in the 14-byte hdr_buf); the payload is then unmasked in place in the caller's buffer,
 * piece by piece. A whole unfragmented message found in one feed is reported straight from
 * that buffer (no copy); otherwise pieces go to a reassembly buffer that exists only while a
 * message is in progress. Text is validated as it arrives, so invalid UTF-8 fails at the first
 * bad byte (RFC 6455 8.1), not at the end; limits are judged at the header, before the
 * payload is read. Every callback returns the mode from then on, and the loop stops as soon
 * as it is STOP: the owner may end the connection from inside any callback. */
#include "wsparse.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

#define CLOSE_PROTOCOL_ERROR 1002
#define CLOSE_INVALID_DATA 1007
#define CLOSE_TOO_BIG 1009
#define CLOSE_INTERNAL 1011
#define RSV1 0x4 /* pw__frame_hdr.rsv: RSV1..3 as bits 2..0 */

/* One feed: the parser, the owner's view and the current mode. */
typedef struct run {
  pw__wsp *w;
  const pw__wsp_config *cfg;
  int mode;
} run;

static int is_control(int opcode) { return opcode >= PW_OP_CLOSE; }

static void fail(run *r, int code, const char *reason) {
  r->mode = PW__WSP_STOP;
  r->cfg->ops->on_fail(r->cfg->ctx, code, reason);
}

static void fail_code(run *r, int code) {
  fail(r, code,
       code == CLOSE_PROTOCOL_ERROR ? "protocol error"
       : code == CLOSE_INVALID_DATA ? "invalid UTF-8"
                                    : "message too big");
}

/* ---- judging a new frame header ----------------------------------------------------------- */
/* Fragments of one message are counted here, at the header, so a message of endless empty
 * fragments (which the size limit never sees) ends at the limit. The code is 1009, not 1008:
 * RFC 6455 7.4.1 gives 1009 to "a message that is too big for it to process", and the frame
 * count is part of how big a message is to process (each frame costs a header, whatever its
 * payload), as its byte size is; 1008 is the generic code for when "there is no other more
 * suitable status code (e.g., 1003 or 1009)". Returns 0 or a close code. */
static int count_frame(pw__wsp *w, const pw__frame_hdr *h, uint32_t max_frames) {
  uint32_t frames = h->opcode == PW_OP_CONT ? w->msg_frames + 1 : 1;
  if (frames > max_frames) return CLOSE_TOO_BIG;
  w->msg_frames = frames;
  return 0;
}

/* The compressed bytes a deflated message may take: its inflated size is what the limit is
 * about (judged while inflating), but the compressed stream needs its own bound, or empty
 * blocks could go on forever. Incompressible data grows by 5 bytes per 64 KiB stored block;
 * 1/64 more plus 64 bytes leaves room for any sane compressor. */
static size_t compressed_limit(size_t max) {
  return max > SIZE_MAX / 2 ? max : max + (max >> 6) + 64;
}

/* RSV1 is permessage-deflate's "this message is compressed": legal only when it was
 * negotiated, and then only on the first frame of a data message (RFC 7692 6.1: never on a
 * continuation or a control frame). RSV2 and RSV3 belong to no extension we know. */
static int rsv_valid(const run *r, const pw__frame_hdr *h) {
  if (h->rsv & ~RSV1) return 0;
  return !h->rsv || (r->cfg->pmd && !is_control(h->opcode) && h->opcode != PW_OP_CONT);
}

/* Returns 0 if the frame may be read, else the close code to fail with. */
static int judge_header(const run *r, const pw__frame_hdr *h) {
  const pw__wsp *w = r->w;
  size_t max = r->cfg->max_message_size;
  if (!h->masked) return CLOSE_PROTOCOL_ERROR; /* clients must mask (RFC 6455 5.1) */
  if (!rsv_valid(r, h)) return CLOSE_PROTOCOL_ERROR;
  if (is_control(h->opcode)) return 0;
  if (h->opcode == PW_OP_CONT && !w->msg_opcode) return CLOSE_PROTOCOL_ERROR;
  if (h->opcode != PW_OP_CONT && w->msg_opcode) return CLOSE_PROTOCOL_ERROR;
  int deflated = h->opcode == PW_OP_CONT ? w->msg_deflated : h->rsv != 0;
  if (deflated) max = compressed_limit(max);
  if (h->payload_len > max || w->msg_len + h->payload_len > max) return CLOSE_TOO_BIG;
  return count_frame(r->w, h, r->cfg->max_message_frames);
}

/* ---- messages ----------------------------------------------------------------------------- */
static void deliver(run *r, int opcode, const uint8_t *data, size_t len) {
  r->mode = r->cfg->ops->on_message(r->cfg->ctx, opcode, data, len);
}

static int msg_append(pw__wsp *w, const uint8_t *p, size_t n) {
  if (n == 0) return 0;
  if (pw__grow((void **)&w->msg, &w->msg_cap, w->msg_len + n, 1, 256) != 0) return -1;
  memcpy(w->msg + w->msg_len, p, n);
  w->msg_len += n;
  return 0;
}

static void message_done(run *r, const uint8_t *direct, size_t direct_len) {
  pw__wsp *w = r->w;
  int opcode = w->msg_opcode;
  if (opcode == PW_OP_TEXT && !pw__utf8_complete(&w->utf8)) return fail_code(r, CLOSE_INVALID_DATA);
  w->msg_opcode = 0;
  memset(&w->utf8, 0, sizeof w->utf8);
  if (direct) return deliver(r, opcode, direct, direct_len);
  uint8_t *m = w->msg;
  size_t len = w->msg_len;
  w->msg = NULL; /* detach first: the callback may drop or free the parser's buffers */
  w->msg_len = w->msg_cap = 0;
  deliver(r, opcode, m, len);
  free(m);
}

/* ---- compressed messages (permessage-deflate) ----------------------------------------------- */
static void inflate_fail(run *r, int err) {
  int code = pw__inflate_close_code(err);
  fail(r, code,
       code == CLOSE_TOO_BIG        ? "message too big"
       : code == CLOSE_INVALID_DATA ? "invalid compressed data"
                                    : "out of memory");
}

/* The connection's inflater, made on the first compressed message (most clients of a push
 * server never send one: they pay nothing). */
static pw__inflater *inflater_for(run *r) {
  pw__inflater **in = r->cfg->inflater;
  if (!*in && pw__inflater_new_server(in, r->cfg->pmd, r->cfg->max_message_size) != 0) return NULL;
  return *in;
}

/* FIN of a compressed message: inflate the tail, check text as inflated (never the
 * compressed bytes), deliver. The buffer is taken from the inflater first, because the
 * callback may end the connection, which frees the inflater. */
static void deflated_done(run *r) {
  pw__wsp *w = r->w;
  pw__inflater *in = *r->cfg->inflater;
  const uint8_t *out;
  size_t len;
  int err = pw__inflate_finish(in, &out, &len);
  if (err) return inflate_fail(r, err);
  int opcode = w->msg_opcode;
  w->msg_opcode = 0;
  w->msg_deflated = 0;
  w->msg_len = 0;
  uint8_t *m = pw__inflate_take(in, &len);
  if (r->cfg->pmd->client_no_context_takeover) pw__inflater_release(in); /* window unused */
  if (opcode == PW_OP_TEXT && !pw__utf8_valid(m, len)) {
    free(m);
    return fail_code(r, CLOSE_INVALID_DATA);
  }
  deliver(r, opcode, m ? m : (const uint8_t *)"", len);
  free(m);
}

static void deflated_piece(run *r, const uint8_t *p, size_t n) {
  pw__wsp *w = r->w;
  const pw__frame_hdr *h = &w->frame;
  pw__inflater *in = inflater_for(r);
  if (!in) return fail(r, CLOSE_INTERNAL, "out of memory");
  int err = pw__inflate_push(in, p, n);
  if (err) return inflate_fail(r, err);
  w->msg_len += n; /* compressed bytes: judged against compressed_limit at each header */
  if (w->frame_done + n == h->payload_len && h->fin) deflated_done(r);
}

/* A piece of a data frame's payload (already unmasked). */
static void data_piece(run *r, const uint8_t *p, size_t n) {
  pw__wsp *w = r->w;
  const pw__frame_hdr *h = &w->frame;
  if (h->opcode != PW_OP_CONT) w->msg_opcode = h->opcode;
  if (w->msg_deflated) return deflated_piece(r, p, n);
  if (w->msg_opcode == PW_OP_TEXT && pw__utf8_feed(&w->utf8, p, n) != 0)
    return fail_code(r, CLOSE_INVALID_DATA);
  int last = w->frame_done + n == h->payload_len;
  /* Zero-copy path: the whole message is this one piece. */
  if (last && h->fin && w->frame_done == 0 && w->msg_len == 0) return message_done(r, p, n);
  if (msg_append(w, p, n) != 0) return fail(r, CLOSE_INTERNAL, "out of memory");
  if (last && h->fin) message_done(r, NULL, 0);
}

/* ---- control frames ------------------------------------------------------------------------ */
static void control_frame(run *r, int opcode, const uint8_t *p, size_t n) {
  const pw__wsp_ops *ops = r->cfg->ops;
  if (opcode != PW_OP_CLOSE) {
    r->mode = ops->on_control(r->cfg->ctx, opcode, p, n);
    return;
  }
  int code;
  const uint8_t *reason;
  size_t reason_len;
  int rc = pw__close_parse(p, n, &code, &reason, &reason_len);
  if (rc < 0) return fail_code(r, -rc);
  r->mode = ops->on_close(r->cfg->ctx, code, reason, reason_len);
}

/* A piece of a control frame's payload: handled at once when whole, else collected. */
static void control_piece(run *r, const uint8_t *p, size_t n) {
  pw__wsp *w = r->w;
  const pw__frame_hdr *h = &w->frame;
  int last = w->frame_done + n == h->payload_len;
  if (last && w->frame_done == 0) return control_frame(r, h->opcode, p, n);
  if (!w->ctrl && !(w->ctrl = malloc(PW_CONTROL_MAX_PAYLOAD)))
    return fail(r, CLOSE_INTERNAL, "out of memory");
  memcpy(w->ctrl + w->frame_done, p, n);
  if (!last) return;
  uint8_t copy[PW_CONTROL_MAX_PAYLOAD];
  memcpy(copy, w->ctrl, h->payload_len);
  free(w->ctrl);
  w->ctrl = NULL;
  control_frame(r, h->opcode, copy, (size_t)h->payload_len);
}

/* ---- the byte stream ----------------------------------------------------------------------- */
static void frame_payload(run *r, uint8_t *p, size_t n) {
  pw__wsp *w = r->w;
  if (w->frame.masked) pw__frame_mask(p, n, w->frame.mask, w->frame_done);
  if (is_control(w->frame.opcode)) control_piece(r, p, n);
  else if (r->mode == PW__WSP_ALL) data_piece(r, p, n);
  w->frame_done += n; /* harmless if a callback stopped us: the feed loop ends */
}

/* Parse a header from hdr_buf + p. Returns bytes of p consumed; sets in_frame when whole. */
static size_t read_header(run *r, const uint8_t *p, size_t n) {
  pw__wsp *w = r->w;
  size_t take = PW_FRAME_MAX_HEADER - w->hdr_have;
  if (take > n) take = n;
  memcpy(w->hdr_buf + w->hdr_have, p, take);
  int rc = pw__frame_parse_header(w->hdr_buf, w->hdr_have + take, &w->frame);
  if (rc == 0) {
    w->hdr_have += (uint8_t)take;
    return take;
  }
  size_t used = rc > 0 ? (size_t)rc - w->hdr_have : take;
  w->hdr_have = 0;
  int code = rc < 0 ? -rc : judge_header(r, &w->frame);
  if (code) {
    fail_code(r, code);
    return n;
  }
  w->in_frame = 1;
  w->frame_done = 0;
  if (!is_control(w->frame.opcode) && w->frame.opcode != PW_OP_CONT)
    w->msg_deflated = w->frame.rsv != 0; /* judged: RSV1 here means compressed */
  return used;
}

int pw__wsp_feed(pw__wsp *w, const pw__wsp_config *cfg, int mode, uint8_t *p, size_t n) {
  run r = {w, cfg, mode};
  while (r.mode != PW__WSP_STOP) {
    if (!w->in_frame) {
      if (n == 0) break;
      size_t used = read_header(&r, p, n);
      p += used, n -= used;
      if (!w->in_frame) continue;
    }
    uint64_t left = w->frame.payload_len - w->frame_done;
    size_t take = left < n ? (size_t)left : n;
    if (take == 0 && left > 0) break; /* need more bytes */
    frame_payload(&r, p, take);
    p += take, n -= take;
    if (w->frame_done == w->frame.payload_len) w->in_frame = 0;
  }
  return r.mode;
}

void pw__wsp_drop_message(pw__wsp *w) {
  free(w->msg);
  w->msg = NULL;
  w->msg_len = w->msg_cap = 0;
}

void pw__wsp_free(pw__wsp *w) {
  pw__wsp_drop_message(w);
  free(w->ctrl);
  w->ctrl = NULL;
}
