/* RFC 6455 frame codec: header parse/encode, payload masking and close payloads, as pure
 * functions over caller buffers (no I/O, no allocation). */
#include "frame.h"

#include <string.h>

#include "utf8.h"

#define PW_ERR_PROTOCOL (-1002)
#define PW_ERR_INVALID_DATA (-1007)
#define PW_CLOSE_NO_STATUS 1005
#define PW_CLOSE_MAX_REASON (PW_CONTROL_MAX_PAYLOAD - 2)

/* Opcodes 3-7 and 0xB-0xF are reserved for future use (RFC 6455 5.2). */
static int opcode_reserved(unsigned op) { return (op >= 0x3 && op <= 0x7) || op >= 0xB; }

static uint64_t load_be(const uint8_t *p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) v = (v << 8) | p[i];
  return v;
}

static void store_be(uint8_t *p, uint64_t v, size_t n) {
  for (size_t i = n; i-- > 0; v >>= 8) p[i] = (uint8_t)v;
}

/* Header checks that the first byte alone decides, so a bad frame fails before its length
 * arrives. Control frames (opcode >= 8) must not be fragmented (RFC 6455 5.5). */
static int check_first_byte(uint8_t b0) {
  unsigned op = b0 & 0x0F;
  if (opcode_reserved(op)) return PW_ERR_PROTOCOL;
  if ((op & 0x8) && !(b0 & 0x80)) return PW_ERR_PROTOCOL;
  return 0;
}

int pw__frame_parse_header(const uint8_t *p, size_t n, pw__frame_hdr *hdr) {
  if (n < 1) return 0;
  int rc = check_first_byte(p[0]);
  if (rc < 0) return rc;
  if (n < 2) return 0;

  unsigned len7 = p[1] & 0x7F;
  size_t ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
  int masked = (p[1] & 0x80) != 0;
  size_t need = 2 + ext + (masked ? 4 : 0);
  /* A 64-bit length must have its most significant bit clear (RFC 6455 5.2). */
  if (ext == 8 && n >= 3 && (p[2] & 0x80)) return PW_ERR_PROTOCOL;
  if (n < need) return 0;

  uint64_t len = ext ? load_be(p + 2, ext) : len7;
  /* Judged on the decoded length: a non-minimal encoding of a small length is still legal. */
  if ((p[0] & 0x08) && len > PW_CONTROL_MAX_PAYLOAD) return PW_ERR_PROTOCOL;

  hdr->fin = (uint8_t)(p[0] >> 7);
  hdr->rsv = (uint8_t)((p[0] >> 4) & 0x7);
  hdr->opcode = (uint8_t)(p[0] & 0x0F);
  hdr->masked = (uint8_t)masked;
  if (masked) memcpy(hdr->mask, p + 2 + ext, 4);
  else memset(hdr->mask, 0, 4);
  hdr->hdr_len = (uint8_t)need;
  hdr->payload_len = len;
  return (int)need;
}

/* Servers never mask (RFC 6455 5.1) and must use the minimal length encoding (5.2).
 * payload_len must be below 2^63. */
size_t pw__frame_encode_header(uint8_t *out, int fin, int opcode, uint64_t payload_len) {
  out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0F));
  if (payload_len <= 125) {
    out[1] = (uint8_t)payload_len;
    return 2;
  }
  if (payload_len <= 0xFFFF) {
    out[1] = 126;
    store_be(out + 2, payload_len, 2);
    return 4;
  }
  out[1] = 127;
  store_be(out + 2, payload_len, 8);
  return 10;
}

/* XOR byte by byte; the reference behaviour, used for the short head and tail. */
static void mask_bytes(uint8_t *data, size_t n, const uint8_t mask[4], uint64_t offset) {
  for (size_t i = 0; i < n; i++) data[i] ^= mask[(offset + i) & 3];
}

void pw__frame_mask(uint8_t *data, size_t n, const uint8_t mask[4], uint64_t offset) {
  /* The key repeats every 4 bytes, so an 8-byte word of it, rotated to the current offset,
   * serves every 8-byte step. Built byte-wise and copied with memcpy, it is right for either
   * endianness, and memcpy makes the unaligned loads and stores well defined. */
  uint8_t key_bytes[8];
  for (size_t i = 0; i < 8; i++) key_bytes[i] = mask[(offset + i) & 3];
  uint64_t key;
  memcpy(&key, key_bytes, 8);

  size_t i = 0;
  for (; n - i >= 8; i += 8) {
    uint64_t w;
    memcpy(&w, data + i, 8);
    w ^= key;
    memcpy(data + i, &w, 8);
  }
  if (i < n) mask_bytes(data + i, n - i, mask, offset + i);
}

/* RFC 6455 7.4.1 defines 1000-1003 and 1007-1011; IANA registered 1012-1014 since. 1004 is
 * reserved, 1005/1006/1015 are for reporting only and never sent; 1016-2999 are unassigned
 * and 3000-4999 belong to libraries, frameworks and applications. */
int pw__close_code_valid(int code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}

int pw__close_parse(const uint8_t *payload, size_t len, int *code, const uint8_t **reason,
                    size_t *reason_len) {
  if (len == 0) {
    *code = PW_CLOSE_NO_STATUS;
    *reason = NULL;
    *reason_len = 0;
    return 0;
  }
  if (len == 1) return PW_ERR_PROTOCOL;
  int c = (int)load_be(payload, 2);
  if (!pw__close_code_valid(c)) return PW_ERR_PROTOCOL;
  if (!pw__utf8_valid(payload + 2, len - 2)) return PW_ERR_INVALID_DATA;
  *code = c;
  *reason = payload + 2;
  *reason_len = len - 2;
  return 0;
}

/* Length of the reason to send: at most PW_CLOSE_MAX_REASON bytes, cut before a UTF-8
 * sequence that would not fit whole. Reads no further than one byte past the limit. */
static size_t reason_fit(const char *reason) {
  size_t n = 0;
  while (n <= PW_CLOSE_MAX_REASON && reason[n]) n++;
  if (n <= PW_CLOSE_MAX_REASON) return n;
  /* reason[0..123] are all text and reason[123] is the first byte dropped: back up while
   * the first dropped byte continues the sequence before it. */
  n = PW_CLOSE_MAX_REASON;
  while (n > 0 && ((uint8_t)reason[n] & 0xC0) == 0x80) n--;
  return n;
}

/* `out` must hold PW_CONTROL_MAX_PAYLOAD bytes; `reason` (may be NULL) must be UTF-8.
 * Code 1005 means "no status": the payload is then empty, as 1005 may not be sent. */
size_t pw__close_build(uint8_t *out, int code, const char *reason) {
  if (code == PW_CLOSE_NO_STATUS) return 0;
  store_be(out, (uint64_t)(unsigned)code, 2);
  size_t n = 0;
  if (reason) {
    n = reason_fit(reason);
    memcpy(out + 2, reason, n);
  }
  return 2 + n;
}
