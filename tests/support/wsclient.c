/* Blocking WebSocket test client: see wsclient.h. */
#include "wsclient.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"

int wsc_write_all(int fd, const void *p, size_t n) {
  const uint8_t *b = p;
  while (n > 0) {
    ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    b += w, n -= (size_t)w;
  }
  return 0;
}

/* Read more bytes into the buffer, waiting until the deadline. */
static int fill(wsc *c, uint64_t deadline) {
  if (c->len == c->cap) {
    size_t cap = c->cap ? c->cap * 2 : 65536;
    uint8_t *b = realloc(c->buf, cap);
    if (!b) return -1;
    c->buf = b, c->cap = cap;
  }
  uint64_t now = now_ms();
  if (now >= deadline) return -1;
  struct pollfd p = {.fd = c->fd, .events = POLLIN};
  if (poll(&p, 1, (int)(deadline - now)) <= 0) return -1;
  ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
  if (r <= 0) return -1;
  c->len += (size_t)r;
  return 0;
}

static void consume(wsc *c, size_t n) {
  memmove(c->buf, c->buf + n, c->len - n);
  c->len -= n;
}

int wsc_connect(wsc *c, int port, const char *path) { return wsc_connect_rcvbuf(c, port, path, 0); }

int wsc_connect_rcvbuf(wsc *c, int port, const char *path, int rcvbuf) {
  memset(c, 0, sizeof *c);
  c->fd = socket(AF_INET, SOCK_STREAM, 0);
  if (rcvbuf > 0) setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0) goto fail;
  char req[512];
  int n = snprintf(req, sizeof req,
                   "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n",
                   path);
  if (wsc_write_all(c->fd, req, (size_t)n) != 0) goto fail;
  uint64_t deadline = now_ms() + 5000;
  for (;;) {
    uint8_t *end = c->len >= 4 ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL;
    if (end) {
      int ok = c->len > 12 && memcmp(c->buf, "HTTP/1.1 101", 12) == 0;
      consume(c, (size_t)(end + 4 - c->buf));
      if (!ok) goto fail;
      return 0;
    }
    if (fill(c, deadline) != 0) goto fail;
  }
fail:
  wsc_close(c);
  return -1;
}

size_t wsc_frame_header(uint8_t hdr[14], int opcode, int fin, uint64_t len, const uint8_t mask[4]) {
  size_t h = 0;
  hdr[h++] = (uint8_t)((fin ? 0x80 : 0) | opcode);
  if (len < 126) {
    hdr[h++] = (uint8_t)(0x80 | len);
  } else if (len <= 0xFFFF) {
    hdr[h++] = 0x80 | 126;
    hdr[h++] = (uint8_t)(len >> 8), hdr[h++] = (uint8_t)len;
  } else {
    hdr[h++] = 0x80 | 127;
    for (int i = 7; i >= 0; i--) hdr[h++] = (uint8_t)(len >> (8 * i));
  }
  memcpy(hdr + h, mask, 4);
  return h + 4;
}

int wsc_send(wsc *c, int opcode, int fin, const void *data, size_t len) {
  uint8_t hdr[14];
  static const uint8_t mask[4] = {0x12, 0x34, 0x56, 0x78};
  size_t h = wsc_frame_header(hdr, opcode, fin, len, mask);
  uint8_t *frame = malloc(h + len);
  if (!frame) return -1;
  memcpy(frame, hdr, h);
  for (size_t i = 0; i < len; i++) frame[h + i] = ((const uint8_t *)data)[i] ^ mask[i & 3];
  int r = wsc_write_all(c->fd, frame, h + len);
  free(frame);
  return r;
}

/* Parse a server (unmasked) frame at the buffer front: header length, or 0 if incomplete. */
static size_t parse(const wsc *c, wsc_frame *f, uint64_t *plen) {
  if (c->len < 2) return 0;
  const uint8_t *b = c->buf;
  size_t h = 2;
  uint64_t len = b[1] & 0x7F;
  if (len == 126) {
    if (c->len < 4) return 0;
    len = (uint64_t)b[2] << 8 | b[3], h = 4;
  } else if (len == 127) {
    if (c->len < 10) return 0;
    len = 0;
    for (int i = 0; i < 8; i++) len = len << 8 | b[2 + i];
    h = 10;
  }
  if (c->len < h + len) return 0;
  f->fin = b[0] >> 7;
  f->opcode = b[0] & 0x0F;
  *plen = len;
  return h;
}

int wsc_recv(wsc *c, wsc_frame *f, int timeout_ms) {
  uint64_t deadline = now_ms() + (uint64_t)timeout_ms, len;
  size_t h;
  while ((h = parse(c, f, &len)) == 0)
    if (fill(c, deadline) != 0) return -1;
  f->len = (size_t)len;
  f->payload = malloc(f->len + 1);
  if (!f->payload) return -1;
  memcpy(f->payload, c->buf + h, f->len);
  f->payload[f->len] = 0;
  consume(c, h + f->len);
  return 0;
}

int wsc_wait_eof(wsc *c, int timeout_ms) {
  uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
  for (;;) {
    uint64_t now = now_ms();
    if (now >= deadline) return -1;
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    if (poll(&p, 1, (int)(deadline - now)) <= 0) return -1;
    uint8_t tmp[4096];
    ssize_t r = recv(c->fd, tmp, sizeof tmp, 0);
    if (r == 0) return 0;
    if (r < 0 && errno != EINTR) return errno == ECONNRESET ? 0 : -1;
  }
}

void wsc_close(wsc *c) {
  if (c->fd >= 0) close(c->fd);
  c->fd = -1;
  free(c->buf);
  c->buf = NULL;
  c->len = c->cap = 0;
}
