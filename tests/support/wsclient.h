/* A small blocking WebSocket client for C tests: connect + handshake, masked frames out,
 * frames in (with a timeout). Test code only: aborts nothing, returns -1 on any failure. */
#ifndef PW_TEST_WSCLIENT_H
#define PW_TEST_WSCLIENT_H

#include <stddef.h>
#include <stdint.h>

typedef struct wsc {
  int fd;
  uint8_t *buf; /* received bytes not yet returned */
  size_t len, cap;
} wsc;

typedef struct wsc_frame {
  int fin, opcode;
  uint8_t *payload; /* heap, owned by the caller: free() it */
  size_t len;
} wsc_frame;

/* Connect to 127.0.0.1:port and upgrade on `path`. 0 or -1. */
int wsc_connect(wsc *c, int port, const char *path);
/* The same with SO_RCVBUF set before connecting (a small one makes a slow reader). */
int wsc_connect_rcvbuf(wsc *c, int port, const char *path, int rcvbuf);
/* Write all n bytes to fd (MSG_NOSIGNAL, retrying EINTR). 0 or -1. */
int wsc_write_all(int fd, const void *p, size_t n);
/* Encode a client frame header (MASK bit set, then the 4-byte key) into hdr; its length. */
size_t wsc_frame_header(uint8_t hdr[14], int opcode, int fin, uint64_t len, const uint8_t mask[4]);
/* Send one masked frame. 0 or -1. */
int wsc_send(wsc *c, int opcode, int fin, const void *data, size_t len);
/* Read one frame within timeout_ms. 0, or -1 on timeout / EOF / error. */
int wsc_recv(wsc *c, wsc_frame *f, int timeout_ms);
/* Read until EOF within timeout_ms: 0 if the server closed TCP, -1 otherwise. */
int wsc_wait_eof(wsc *c, int timeout_ms);
void wsc_close(wsc *c);

#endif
