/* permessage-deflate glue: the send path and the fan-out share (see pmd.h). */
#include "pmd.h"

#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "loop.h"
#include "server.h"
#include "util.h"

#define RSV1_BIT 0x40 /* in a frame's first byte */

void pw__pmd_free(pw__conn *c) {
  pw__inflater_free(c->inflater);
  c->inflater = NULL;
  pw__deflater_free(c->deflater);
  c->deflater = NULL;
}

/* ---- compressing one message ---------------------------------------------------------------- */
static int is_data_frame(const pw_buf *b) { return pw__buf_is_message(b); }

/* Whether c compresses with its own context-takeover deflater. Not under
 * PW_SLOW_DROP_OLDEST: a message dropped from the queue would leave the client's window
 * without bytes the next queued messages refer to. Such a client gets every message
 * compressed on its own instead, which context takeover permits (RFC 7692 7.1.1.1: it is
 * permission, not duty). */
static int uses_own_context(const pw__conn *c) {
  return !c->pmd.server_no_context_takeover && pw__conn_policy(c) != PW_SLOW_DROP_OLDEST;
}

/* Compress one payload for c, appending to out. With the own deflater a failure has made it
 * forget its history (deflate.h), so sending that message plain is always safe. */
static int compress_payload(pw__conn *c, const struct pw_deflate_options *cfg, const pw_buf *b,
                            pw__zbuf *out) {
  if (!uses_own_context(c))
    return pw__deflate_oneshot(c->pmd.server_max_window_bits, cfg->level, cfg->mem_level,
                               b->payload, b->payload_len, out);
  if (!c->deflater) {
    int r = pw__deflater_new_server(&c->deflater, cfg, &c->pmd);
    if (r != 0) return r;
  }
  return pw__deflate_message(c->deflater, b->payload, b->payload_len, out);
}

/* A compressed payload is sent as such unless, compressed on its own, it came out no
 * smaller (then plain is better; with context takeover it must go: the history holds it). */
static int worth_sending(const pw__conn *c, const pw__zbuf *z, const pw_buf *b) {
  return uses_own_context(c) || z->len < b->payload_len;
}

static int zbuf_append(pw__zbuf *out, const void *p, size_t n) {
  if (pw__grow((void **)&out->data, &out->cap, out->len + n, 1, 256) != 0) return PW_ENOMEM;
  if (n) memcpy(out->data + out->len, p, n);
  out->len += n;
  return 0;
}

/* Append b's frame for c to out: compressed (RSV1, compressed length) when c wants it and it
 * pays, else b's plain wire bytes. Returns 0 or PW_ENOMEM. */
static int append_frame(pw__conn *c, const struct pw_deflate_options *cfg, const pw_buf *b,
                        pw__zbuf *out) {
  pw__zbuf z = {0};
  uint8_t hdr[PW_FRAME_MAX_HEADER];
  int r = -1;
  if (is_data_frame(b) && pw__deflate_wanted(cfg, b->payload_len) &&
      compress_payload(c, cfg, b, &z) == 0 && worth_sending(c, &z, b)) {
    size_t n = pw__frame_encode_header(hdr, 1, b->opcode, z.len);
    hdr[0] |= RSV1_BIT;
    r = zbuf_append(out, hdr, n);
    if (r == 0) r = zbuf_append(out, z.data, z.len);
  }
  pw__zbuf_free(&z);
  if (r == 0) return 0;
  uv_buf_t iov[2]; /* plain: b's own wire bytes */
  int k = pw__buf_iov(b, 0, iov);
  for (int i = 0; i < k; i++)
    if (zbuf_append(out, iov[i].base, iov[i].len) != 0) return PW_ENOMEM;
  return 0;
}

/* One message as c should get it: a frame with RSV1 and the compressed length (a real frame
 * buffer, so the queue may cork it like any other), or NULL: send the plain one. */
static pw_buf *compressed_one(pw__conn *c, const struct pw_deflate_options *cfg, const pw_buf *b) {
  pw__zbuf z = {0};
  pw_buf *out = NULL;
  if (compress_payload(c, cfg, b, &z) == 0 && worth_sending(c, &z, b)) {
    out = pw__buf_new_frame(b->opcode, z.data, z.len);
    if (out) out->hdr_space[sizeof out->hdr_space - out->hdr_len] |= RSV1_BIT;
  }
  pw__zbuf_free(&z);
  if (!out && c->deflater && uses_own_context(c)) pw__deflater_reset(c->deflater);
  return out;
}

/* msgs[0..n) as c should get them: one compressed frame (n == 1) or the raw bytes of n
 * frames (a publish batch, counted as n messages). NULL when nothing is worth compressing
 * (queue the plain buffer) or out of memory; with the own deflater its history is then
 * forgotten, since the client will never see those bytes. */
static pw_buf *compressed_for(pw__conn *c, pw_buf *const *msgs, unsigned n) {
  const struct pw_deflate_options *cfg = &c->loop->srv->opt.deflate;
  int any = 0;
  for (unsigned i = 0; i < n && !any; i++)
    any = is_data_frame(msgs[i]) && pw__deflate_wanted(cfg, msgs[i]->payload_len);
  if (!any) return NULL;
  if (n == 1) return compressed_one(c, cfg, msgs[0]);
  pw__zbuf out = {0};
  int r = 0;
  for (unsigned i = 0; i < n && r == 0; i++) r = append_frame(c, cfg, msgs[i], &out);
  pw_buf *b = r == 0 ? pw__buf_new_batch(out.data, out.len, n) : NULL;
  pw__zbuf_free(&out);
  if (!b) {
    if (c->deflater && uses_own_context(c)) pw__deflater_reset(c->deflater);
    return NULL;
  }
  return b;
}

void pw__pmd_refused(pw__conn *c) {
  if (c->deflater) pw__deflater_reset(c->deflater);
}

pw_buf *pw__pmd_frame_for(pw__conn *c, pw_buf *b, int *own) {
  pw_buf *z = is_data_frame(b) ? compressed_for(c, &b, 1) : NULL;
  *own = z && uses_own_context(c);
  if (!z) return b;
  pw_buf_unref(b);
  return z;
}

/* ---- fan-out --------------------------------------------------------------------------------- */
void pw__pmd_share_init(pw__pmd_share *s, pw_buf *plain, pw_buf *const *msgs, unsigned nmsgs) {
  memset(s, 0, sizeof *s);
  s->plain = plain;
  s->msgs = msgs ? msgs : &s->plain;
  s->nmsgs = msgs ? nmsgs : 1;
}

void pw__pmd_share_release(pw__pmd_share *s) {
  for (unsigned i = 0; i < 16; i++) pw_buf_unref(s->by_bits[i]);
  memset(s->by_bits, 0, sizeof s->by_bits);
}

/* The shared variant for c's server window: made once per fan-out (the first subscriber
 * with those bits pays for it), a plain reference when nothing was worth compressing. */
static pw_buf *shared_for(pw__conn *c, pw__pmd_share *s) {
  unsigned bits = c->pmd.server_max_window_bits & 15;
  if (!s->by_bits[bits]) {
    pw_buf *z = compressed_for(c, s->msgs, s->nmsgs);
    if (!z) pw_buf_ref(s->plain), z = s->plain;
    s->by_bits[bits] = z;
  }
  pw_buf_ref(s->by_bits[bits]);
  return s->by_bits[bits];
}

pw_buf *pw__pmd_shared_for(pw__conn *c, pw__pmd_share *s, int *own) {
  *own = 0;
  if (!uses_own_context(c)) return shared_for(c, s);
  pw_buf *z = compressed_for(c, s->msgs, s->nmsgs);
  *own = z != NULL;
  if (!z) pw_buf_ref(s->plain), z = s->plain;
  return z;
}
