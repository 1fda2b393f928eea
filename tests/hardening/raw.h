/* Raw TCP clients for the hardening tests: sockets that do exactly what a test says (half a
 * request head, one byte a second, a reset, nothing at all), plus a look at the loop
 * thread's CPU clock. Test code: every call returns -1 on failure, nothing aborts. */
#ifndef PW_TEST_RAW_H
#define PW_TEST_RAW_H

#include <pushwire.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* A complete, valid upgrade request for "/". */
extern const char raw_upgrade_request[];

/* A TCP socket, not connected yet (so a test can take its descriptor before filling the
 * process's table). fd or -1. */
int raw_socket(void);
/* Connect fd to 127.0.0.1:port (blocking). 0 or -1. */
int raw_connect(int fd, int port);
/* raw_socket + raw_connect: fd or -1. */
int raw_open(int port);
/* Send all n bytes (MSG_NOSIGNAL: a server that hung up must not kill the test). 0 or -1. */
int raw_send(int fd, const void *p, size_t n);
/* Read an HTTP response head within timeout_ms and return its status code; 0 if the
 * connection ended (EOF or reset) before a whole head, -1 on timeout. */
int raw_read_status(int fd, int timeout_ms);
/* Wait for the server to end the connection: 0 on EOF or reset, -1 if still open after
 * timeout_ms. What arrives meanwhile is discarded. */
int raw_wait_end(int fd, int timeout_ms);
/* Close with SO_LINGER {1, 0}: the peer gets an RST instead of a FIN. */
void raw_reset(int fd);
/* A masked client frame header for a payload of len bytes (mask key 0): returns its size. */
size_t raw_frame_header(uint8_t *hdr, int opcode, int fin, uint64_t len);

/* White box: connections loop 0 holds (accepted and not yet freed), asked on the loop. */
uint32_t loop_live_conns(pw_server *srv);

/* The loop thread's CPU-time clock, asked for on the loop thread through pw_call. 0 or -1. */
int loop_cpu_clock(pw_server *srv, clockid_t *clock);
/* Nanoseconds of CPU time on that clock. */
uint64_t cpu_ns(clockid_t clock);

#endif
