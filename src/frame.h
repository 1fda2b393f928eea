/* RFC 6455 frame codec: pure functions over caller buffers. No I/O, no allocation.
 * The parser is incremental at header granularity: it says "need more" until a whole frame
 * header (2..14 bytes) is present; the payload is then consumed by the caller in pieces. */
#ifndef PW_FRAME_H
#define PW_FRAME_H

#include <stddef.h>
#include <stdint.h>

enum pw__opcode {
  PW_OP_CONT = 0x0,
  PW_OP_TEXT = 0x1,
  PW_OP_BINARY = 0x2,
  PW_OP_CLOSE = 0x8,
  PW_OP_PING = 0x9,
  PW_OP_PONG = 0xA,
};

#define PW_FRAME_MAX_HEADER 14 /* 2 + 8 (64-bit length) + 4 (mask) */
#define PW_CONTROL_MAX_PAYLOAD 125

typedef struct pw__frame_hdr {
  uint8_t fin;     /* 1 if FIN is set */
  uint8_t rsv;     /* RSV1..3 as bits 2..0 (0x4 = RSV1) */
  uint8_t opcode;  /* PW_OP_* (raw 4-bit value) */
  uint8_t masked;  /* 1 if the MASK bit is set */
  uint8_t mask[4]; /* masking key when masked */
  uint8_t hdr_len; /* bytes of header consumed: 2..14 */
  uint64_t payload_len;
} pw__frame_hdr;

/* Parse a frame header from p[0..n).
 * Returns: > 0 the header length (hdr filled in), 0 if more bytes are needed, or a negative
 * close code (-1002 for a malformed header: reserved opcode, fragmented or oversized control
 * frame, non-minimal length encoding is NOT an error per RFC, 64-bit length with the top bit
 * set). RSV bits and the mask bit are reported, not judged: the caller decides (it knows the
 * negotiated extensions and which side it is). */
int pw__frame_parse_header(const uint8_t *p, size_t n, pw__frame_hdr *hdr);

/* Encode an unmasked (server-to-client) frame header into out (>= 10 bytes).
 * Returns the header length (2, 4 or 10). */
size_t pw__frame_encode_header(uint8_t *out, int fin, int opcode, uint64_t payload_len);

/* XOR data[0..n) with the masking key, starting at key offset `offset` (the count of payload
 * bytes of this frame already unmasked). In place; the same call masks and unmasks. */
void pw__frame_mask(uint8_t *data, size_t n, const uint8_t mask[4], uint64_t offset);

/* Is `code` a close code a peer may send on the wire (RFC 6455 7.4)? 1000-1003, 1007-1011,
 * 1012-1014 (IANA registered), 3000-4999. 1004/1005/1006/1015 and others are not. */
int pw__close_code_valid(int code);

/* Parse a close frame payload. Returns 0 with *code (1005 when the payload is empty) and the
 * reason span, or -1002 (1-byte payload, invalid code) or -1007 (reason not UTF-8). */
int pw__close_parse(const uint8_t *payload, size_t len, int *code, const uint8_t **reason,
                    size_t *reason_len);

/* Build a close payload (2-byte code + reason, reason truncated to 123 bytes at a UTF-8
 * boundary). Returns the payload length (<= 125). */
size_t pw__close_build(uint8_t *out, int code, const char *reason);

#endif
