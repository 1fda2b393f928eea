/* The WebSocket read side as a pure state machine: client bytes in, messages, control frames
 * and failures out through callbacks. No I/O and no loop, so ws.c (the connection glue) and
 * the fuzz harness drive the very same code. Heap memory only while a message is being
 * reassembled or a control frame arrives split. */
#ifndef PW_WSPARSE_H
#define PW_WSPARSE_H

#include <stddef.h>
#include <stdint.h>

#include "deflate.h"
#include "frame.h"
#include "utf8.h"

/* How much of the stream the owner wants processed. A callback returns the mode from then on,
 * so a message that closes the connection stops the parsing of the bytes behind it. */
enum pw__wsp_mode {
  PW__WSP_STOP = 0,         /* nothing more: the connection is ending */
  PW__WSP_CONTROL_ONLY = 1, /* we sent a close: frames are still parsed and judged, control
                               frames reported, data payloads skipped (RFC 6455 5.5.1) */
  PW__WSP_ALL = 2,          /* open: messages are reassembled, validated and reported */
};

/* The callbacks. Payload pointers are valid only during the call. */
typedef struct pw__wsp_ops {
  /* A whole message (opcode PW_OP_TEXT: already valid UTF-8). Returns the mode. */
  int (*on_message)(void *ctx, int opcode, const uint8_t *data, size_t len);
  /* A ping or pong (payload <= 125 bytes). Returns the mode. */
  int (*on_control)(void *ctx, int opcode, const uint8_t *data, size_t len);
  /* A valid close frame: code 1005 when it had none; the reason is valid UTF-8, <= 123
   * bytes. Returns the mode. */
  int (*on_close)(void *ctx, int code, const uint8_t *reason, size_t reason_len);
  /* The peer broke the protocol: fail the connection with `code` (1002, 1007, 1009; 1011
   * when out of memory). The parser stops; it is not called again until the owner stops. */
  void (*on_fail)(void *ctx, int code, const char *reason);
} pw__wsp_ops;

/* One call's view of the owner: callbacks, their context and the limits. */
typedef struct pw__wsp_config {
  const pw__wsp_ops *ops;
  void *ctx;
  size_t max_message_size;     /* bytes of one message, fragments added up (1009 above) */
  uint32_t max_message_frames; /* frames of one message (1009 above); >= 1 */
  /* permessage-deflate (RFC 7692), or NULL: not negotiated, RSV1 is a protocol error. When
   * set, a data message may begin with RSV1: its frames are inflated through *inflater
   * (created here on the first one) to at most max_message_size bytes. */
  const pw__deflate_params *pmd;
  pw__inflater **inflater;
} pw__wsp_config;

/* Parser state; zero-initialised = before the first frame. Owns `msg` and `ctrl`. */
typedef struct pw__wsp {
  pw__frame_hdr frame; /* the frame whose payload is being read */
  uint64_t frame_done; /* payload bytes of `frame` consumed */
  uint8_t *msg;        /* reassembly buffer (heap, only while a message is in progress) */
  size_t msg_len, msg_cap;
  uint8_t *ctrl;       /* a control frame's payload split across feeds (heap) */
  pw__utf8 utf8;       /* validator state of the text message in progress */
  uint32_t msg_frames; /* data frames of the message in progress, counting its first */
  uint8_t hdr_buf[PW_FRAME_MAX_HEADER]; /* a partial frame header */
  uint8_t hdr_have;                     /* bytes in hdr_buf */
  uint8_t msg_opcode : 4;   /* PW_OP_TEXT/BINARY while a fragmented message is in progress */
  uint8_t in_frame : 1;     /* 1 while `frame`'s payload is being read (bit fields: 96 bytes) */
  uint8_t msg_deflated : 1; /* the message in progress began with RSV1 (permessage-deflate):
                               msg_len counts its compressed bytes, msg stays empty */
} pw__wsp;

/* Process p[0..n) (writable: payloads are unmasked in place), starting in `mode`. Returns the
 * mode at the end: PW__WSP_STOP after a failure or when a callback asked for it. Bytes after
 * the point where the mode became STOP are not looked at. */
int pw__wsp_feed(pw__wsp *w, const pw__wsp_config *cfg, int mode, uint8_t *p, size_t n);

/* Forget the message in progress' bytes (the owner will never want it): frees `msg`, keeps
 * the frame and control state so parsing can go on in PW__WSP_CONTROL_ONLY. */
void pw__wsp_drop_message(pw__wsp *w);

/* Free everything the parser holds. The state must not be fed again. */
void pw__wsp_free(pw__wsp *w);

#endif
