/* fuzz_ws_stream: the frame parser and message reassembly (src/wsparse.c) on arbitrary client
 * byte streams, split at arbitrary points.
 * Input: 8 bytes of options, then the stream.
 *   [0] max message size: 0..127, or 1 MiB when the top bit is set
 *   [1] max frames per message: 1..255, or 65536 for 0
 *   [2] < 8: the owner starts its close after that many messages (0: before the first one),
 *       as a pw_close from on_message does; else never
 *   [3] < 128: the owner starts its close when the stream reaches byte [3] * len / 127, as a
 *       pw_close from another thread or a timeout does between two reads; else never
 *   [4..7] seed of the split points
 * The stream is run three times: by an independent whole-buffer reference model written here
 * from RFC 6455 (sections 5.2-5.6, 7.4, 8.1), by the parser in one feed, and by the parser in
 * pieces. The three event logs (messages, pings/pongs, closes, failures) must be identical:
 * a parser whose result depends on where reads split the stream, or that strays from the RFC,
 * aborts. The callbacks also assert the invariants directly: message length <= max, text is
 * valid UTF-8 (Table 3-7 reference), frames per message <= max, control payloads <= 125,
 * close codes sendable, failure codes 1002/1007/1009 only, nothing after a failure or close.
 * The owner's side is simulated as ws.c does it: starting a close drops the message in
 * progress, a close or failure frees the parser (so a use after free is an ASan report).
 * Checked to fail: with the "frames > max_frames" test deleted from count_frame (wsparse.c),
 * the replay of corpus/fuzz_ws_stream aborted on many_fragments_limit_3 ("a message of 4
 * frames, max 3"). */
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "fuzz_common.h"
#include "utf8_ref.h"
#include "wsparse.h"

#define CONFIG_BYTES 8
#define NEVER ((size_t)-1)

typedef struct config {
  size_t max_size;
  uint32_t max_frames;
  int close_after;  /* messages before the owner closes; -1 never */
  size_t switch_at; /* stream offset where the owner closes; NEVER */
  uint32_t seed;
} config;

static config read_config(const uint8_t *d, size_t stream_len) {
  config c;
  c.max_size = d[0] & 0x80 ? (size_t)1 << 20 : d[0];
  c.max_frames = d[1] ? d[1] : 65536;
  c.close_after = d[2] < 8 ? d[2] : -1;
  c.switch_at = d[3] < 128 ? d[3] * stream_len / 127 : NEVER;
  c.seed = fuzz_load32(d + 4);
  return c;
}

/* ---- event logs ------------------------------------------------------------------------------ */
enum { EV_MESSAGE = 'M', EV_CONTROL = 'C', EV_CLOSE = 'X', EV_FAIL = 'F' };

typedef struct evlog {
  uint8_t *b;
  size_t len, cap, events;
} evlog;

static void log_bytes(evlog *l, const void *p, size_t n) {
  if (l->len + n > l->cap) {
    while (l->len + n > l->cap) l->cap = l->cap ? 2 * l->cap : 256;
    if (!(l->b = realloc(l->b, l->cap))) abort();
  }
  if (n) memcpy(l->b + l->len, p, n);
  l->len += n;
}

/* One event: type, argument (opcode or code), payload length, payload. */
static void log_event(evlog *l, int type, int arg, const uint8_t *data, size_t n) {
  uint8_t head[7] = {(uint8_t)type,      (uint8_t)(arg >> 8), (uint8_t)arg, (uint8_t)(n >> 24),
                     (uint8_t)(n >> 16), (uint8_t)(n >> 8),   (uint8_t)n};
  log_bytes(l, head, sizeof head);
  log_bytes(l, data, n);
  l->events++;
}

static void log_print(const char *name, const evlog *l) {
  fprintf(stderr, "%s (%zu events):", name, l->events);
  for (size_t i = 0; i + 7 <= l->len;) {
    size_t n = (size_t)l->b[i + 3] << 24 | l->b[i + 4] << 16 | l->b[i + 5] << 8 | l->b[i + 6];
    fprintf(stderr, " %c%d/%zu", l->b[i], l->b[i + 1] << 8 | l->b[i + 2], n);
    i += 7 + n;
  }
  fputc('\n', stderr);
}

static void logs_agree(const char *what, const evlog *a, const evlog *b) {
  if (a->len == b->len && (a->len == 0 || memcmp(a->b, b->b, a->len) == 0)) return;
  log_print("reference", a);
  log_print(what, b);
  FUZZ_CHECK(0, "the %s run differs from the reference", what);
}

/* ---- the parser, driven as ws.c drives it ---------------------------------------------------- */
typedef struct prun {
  const config *cfg;
  pw__wsp w;
  evlog log;
  int mode;
  int messages;
  int ended; /* a close or failure was reported */
} prun;

/* The owner starts its close: no message is wanted any more (ws.c: pw__ws_free_buffers in
 * CLOSING). */
static void owner_closes(prun *r) {
  if (r->mode == PW__WSP_STOP) return;
  r->mode = PW__WSP_CONTROL_ONLY;
  pw__wsp_drop_message(&r->w);
}

static int on_message(void *ctx, int opcode, const uint8_t *data, size_t len) {
  prun *r = ctx;
  FUZZ_CHECK(!r->ended, "a message after the end");
  FUZZ_CHECK(r->mode == PW__WSP_ALL, "a message in mode %d", r->mode);
  FUZZ_CHECK(opcode == PW_OP_TEXT || opcode == PW_OP_BINARY, "message opcode %d", opcode);
  FUZZ_CHECK(len <= r->cfg->max_size, "a message of %zu bytes, max %zu", len, r->cfg->max_size);
  FUZZ_CHECK(opcode != PW_OP_TEXT || ref_utf8_valid(data, len), "invalid UTF-8 delivered");
  FUZZ_CHECK(r->w.msg_frames >= 1 && r->w.msg_frames <= r->cfg->max_frames,
             "a message of %u frames, max %u", r->w.msg_frames, r->cfg->max_frames);
  log_event(&r->log, EV_MESSAGE, opcode, data, len);
  if (++r->messages == r->cfg->close_after) owner_closes(r);
  return r->mode;
}

static int on_control(void *ctx, int opcode, const uint8_t *data, size_t len) {
  prun *r = ctx;
  FUZZ_CHECK(!r->ended, "a control frame after the end");
  FUZZ_CHECK(opcode == PW_OP_PING || opcode == PW_OP_PONG, "control opcode %d", opcode);
  FUZZ_CHECK(len <= PW_CONTROL_MAX_PAYLOAD, "control payload of %zu bytes", len);
  log_event(&r->log, EV_CONTROL, opcode, data, len);
  return r->mode;
}

/* A close or a failure ends the connection: ws.c frees the parser's buffers (DRAIN). */
static void owner_ends(prun *r) {
  r->ended = 1;
  r->mode = PW__WSP_STOP;
  pw__wsp_free(&r->w);
}

static int on_close(void *ctx, int code, const uint8_t *reason, size_t reason_len) {
  prun *r = ctx;
  FUZZ_CHECK(!r->ended, "a close after the end");
  FUZZ_CHECK(code == 1005 || ref_close_code_sendable(code), "close code %d", code);
  FUZZ_CHECK(code != 1005 || reason_len == 0, "a reason without a code");
  FUZZ_CHECK(reason_len <= 123 && ref_utf8_valid(reason, reason_len), "close reason");
  log_event(&r->log, EV_CLOSE, code, reason, reason_len);
  owner_ends(r);
  return r->mode;
}

static void on_fail(void *ctx, int code, const char *reason) {
  prun *r = ctx;
  FUZZ_CHECK(!r->ended, "a failure after the end");
  FUZZ_CHECK(code == 1002 || code == 1007 || code == 1009, "failed with %d (%s)", code, reason);
  FUZZ_CHECK(reason && *reason, "failure %d without a reason", code);
  log_event(&r->log, EV_FAIL, code, NULL, 0);
  owner_ends(r);
}

static const pw__wsp_ops harness_ops = {on_message, on_control, on_close, on_fail};

/* What the parser state must look like between two feeds. */
static void check_state(const prun *r) {
  const pw__wsp *w = &r->w;
  FUZZ_CHECK(w->hdr_have < PW_FRAME_MAX_HEADER, "hdr_have %u", w->hdr_have);
  FUZZ_CHECK(w->msg_len <= r->cfg->max_size, "reassembled %zu bytes, max %zu", w->msg_len,
             r->cfg->max_size);
  FUZZ_CHECK(w->msg_len <= w->msg_cap && (w->msg != NULL) == (w->msg_cap != 0), "msg buffer");
  FUZZ_CHECK(!w->in_frame || w->frame_done <= w->frame.payload_len, "frame_done past the end");
}

/* Feed the stream whole (split = 0) or in pieces; either way cut at switch_at, where the
 * owner starts its close between two reads. */
static void run_parser(const config *cfg, const uint8_t *stream, size_t n, int split, evlog *out) {
  uint8_t *buf = malloc(n ? n : 1); /* masked in place: a copy per run */
  if (!buf) abort();
  memcpy(buf, stream, n);
  prun r = {.cfg = cfg, .mode = PW__WSP_ALL};
  if (cfg->close_after == 0 || cfg->switch_at == 0) owner_closes(&r);
  pw__wsp_config wc = {&harness_ops, &r, cfg->max_size, cfg->max_frames, NULL, NULL};
  uint32_t seed = cfg->seed;
  for (size_t pos = 0; pos < n && r.mode != PW__WSP_STOP;) {
    size_t end = split ? pos + fuzz_chunk(&seed) : n;
    if (end > n) end = n;
    if (pos < cfg->switch_at && end > cfg->switch_at) end = cfg->switch_at;
    int mode = pw__wsp_feed(&r.w, &wc, r.mode, buf + pos, end - pos);
    FUZZ_CHECK(mode == r.mode, "feed returned mode %d, the last callback said %d", mode, r.mode);
    if (mode != PW__WSP_STOP) check_state(&r);
    pos = end;
    if (pos == cfg->switch_at) owner_closes(&r);
  }
  pw__wsp_free(&r.w);
  free(buf);
  *out = r.log;
}

/* ---- the reference: whole buffer, one frame at a time, straight from RFC 6455 ---------------- */
typedef struct ref {
  const config *cfg;
  const uint8_t *s;
  size_t n;
  evlog log;
  int mode, switched, messages;
  int msg_opcode;      /* opcode of the message in progress, 0 if none */
  uint32_t msg_frames; /* its frames so far */
  uint8_t *msg;        /* its payload so far (only what was read while open) */
  size_t msg_len, msg_cap;
} ref;

typedef struct ref_hdr {
  int fin, rsv, opcode, masked;
  uint8_t mask[4];
  uint64_t len;
} ref_hdr;

static void ref_fail(ref *r, int code) {
  log_event(&r->log, EV_FAIL, code, NULL, 0);
  r->mode = PW__WSP_STOP;
}

static void ref_owner_closes(ref *r) {
  if (r->mode == PW__WSP_STOP) return;
  r->mode = PW__WSP_CONTROL_ONLY;
  r->msg_len = 0;
}

/* Section 5.2. Returns the header length, 0 if the stream ends first, or -1002. A header is
 * refused as soon as the bytes that show the fault have arrived (opcode, FIN of a control
 * frame, top bit of a 64-bit length). */
static int ref_header(const uint8_t *p, size_t avail, ref_hdr *h) {
  if (avail < 1) return 0;
  h->fin = p[0] >> 7;
  h->rsv = (p[0] >> 4) & 7;
  h->opcode = p[0] & 0xF;
  int control = h->opcode >= 8;
  if ((h->opcode >= 3 && h->opcode <= 7) || h->opcode >= 0xB) return -1002; /* reserved */
  if (control && !h->fin) return -1002; /* 5.5: control frames are not fragmented */
  if (avail < 2) return 0;
  h->masked = p[1] >> 7;
  size_t ext = (p[1] & 0x7F) == 126 ? 2 : (p[1] & 0x7F) == 127 ? 8 : 0;
  if (ext == 8 && avail >= 3 && (p[2] & 0x80)) return -1002; /* MSB of a 64-bit length */
  size_t need = 2 + ext + (h->masked ? 4 : 0);
  if (avail < need) return 0;
  h->len = p[1] & 0x7F;
  if (ext) h->len = 0;
  for (size_t i = 0; i < ext; i++) h->len = h->len << 8 | p[2 + i];
  if (control && h->len > 125) return -1002; /* 5.5 */
  for (int i = 0; i < 4; i++) h->mask[i] = h->masked ? p[2 + ext + i] : 0;
  return (int)need;
}

/* Sections 5.1-5.4 and 10.4 (our limits): 0 or the code to fail with. */
static int ref_judge(ref *r, const ref_hdr *h) {
  if (!h->masked || h->rsv) return 1002; /* 5.1: clients mask; 5.2: no extension */
  if (h->opcode >= 8) return 0;
  if (h->opcode == 0 && !r->msg_opcode) return 1002; /* 5.4: nothing to continue */
  if (h->opcode != 0 && r->msg_opcode) return 1002;  /* 5.4: no interleaving */
  if (h->len > r->cfg->max_size || r->msg_len + h->len > r->cfg->max_size) return 1009;
  uint32_t frames = h->opcode == 0 ? r->msg_frames + 1 : 1;
  if (frames > r->cfg->max_frames) return 1009;
  r->msg_frames = frames;
  return 0;
}

static void ref_append(ref *r, const uint8_t *p, size_t n, const uint8_t mask[4]) {
  if (r->msg_len + n > r->msg_cap) {
    r->msg_cap = r->msg_len + n;
    if (!(r->msg = realloc(r->msg, r->msg_cap))) abort();
  }
  for (size_t i = 0; i < n; i++) r->msg[r->msg_len + i] = p[i] ^ mask[i & 3];
  r->msg_len += n;
}

static void ref_message_done(ref *r) {
  if (r->msg_opcode == PW_OP_TEXT && !ref_utf8_valid(r->msg, r->msg_len))
    return ref_fail(r, 1007); /* 8.1: ends inside a code point */
  log_event(&r->log, EV_MESSAGE, r->msg_opcode, r->msg, r->msg_len);
  r->msg_opcode = 0;
  r->msg_len = 0;
  if (++r->messages == r->cfg->close_after) ref_owner_closes(r);
}

/* A data frame's payload at [a, b) of the stream, read while open up to `until` (the end of
 * the stream, or where the owner starts its close). */
static void ref_data(ref *r, const ref_hdr *h, size_t a, uint64_t b, size_t until) {
  size_t e = b < until ? (size_t)b : until;
  if (h->len > 0 && e <= a) return; /* nothing of it read while open */
  if (h->opcode != 0) r->msg_opcode = h->opcode;
  ref_append(r, r->s + a, e - a, h->mask);
  size_t bad;
  if (r->msg_opcode == PW_OP_TEXT &&
      ref_utf8_scan(r->msg, r->msg_len, &bad, NULL) == REF_UTF8_INVALID)
    return ref_fail(r, 1007); /* 8.1: fail fast, before the rest arrives */
  if (e == b && h->fin) ref_message_done(r);
}

/* Section 5.5: ping, pong, close (5.5.1 and 7.4: code and UTF-8 reason). */
static void ref_control(ref *r, const ref_hdr *h, size_t a) {
  uint8_t p[125];
  size_t n = (size_t)h->len;
  for (size_t i = 0; i < n; i++) p[i] = r->s[a + i] ^ h->mask[i & 3];
  if (h->opcode != PW_OP_CLOSE) return log_event(&r->log, EV_CONTROL, h->opcode, p, n);
  int code = n >= 2 ? p[0] << 8 | p[1] : 1005;
  if (n == 1 || (n >= 2 && !ref_close_code_sendable(code))) return ref_fail(r, 1002);
  if (n > 2 && !ref_utf8_valid(p + 2, n - 2)) return ref_fail(r, 1007);
  log_event(&r->log, EV_CLOSE, code, p + 2 * (n >= 2), n >= 2 ? n - 2 : 0);
  r->mode = PW__WSP_STOP;
}

static void run_reference(const config *cfg, const uint8_t *s, size_t n, evlog *out) {
  ref r = {.cfg = cfg, .s = s, .n = n, .mode = PW__WSP_ALL};
  if (cfg->close_after == 0 || cfg->switch_at == 0) ref_owner_closes(&r);
  size_t pos = 0;
  while (r.mode != PW__WSP_STOP && pos < n) {
    ref_hdr h;
    int hl = ref_header(s + pos, n - pos, &h);
    if (hl < 0) ref_fail(&r, -hl);
    if (hl <= 0) break;
    size_t a = pos + (size_t)hl;
    if (!r.switched && cfg->switch_at < a) { /* the header completes after the owner's close */
      r.switched = 1;
      ref_owner_closes(&r);
    }
    int code = ref_judge(&r, &h);
    if (code) {
      ref_fail(&r, code);
      break;
    }
    uint64_t b = a + h.len;
    if (h.opcode >= 8 && b <= n) ref_control(&r, &h, a);
    if (h.opcode < 8 && r.mode == PW__WSP_ALL)
      ref_data(&r, &h, a, b, r.switched || cfg->switch_at > n ? n : cfg->switch_at);
    if (b > n) break;
    pos = (size_t)b;
  }
  free(r.msg);
  *out = r.log;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < CONFIG_BYTES || size > (1u << 16)) return 0;
  const uint8_t *stream = data + CONFIG_BYTES;
  size_t n = size - CONFIG_BYTES;
  config cfg = read_config(data, n);
  evlog want, whole, pieces;
  run_reference(&cfg, stream, n, &want);
  run_parser(&cfg, stream, n, 0, &whole);
  run_parser(&cfg, stream, n, 1, &pieces);
  if (getenv("PW_FUZZ_VERBOSE")) log_print("events", &want); /* to see what an input does */
  logs_agree("one-feed", &want, &whole);
  logs_agree("split", &want, &pieces);
  free(want.b);
  free(whole.b);
  free(pieces.b);
  return 0;
}
