/* A user's program, built against an installed pushwire (tests/install/check_install.sh builds
 * it as C and as C++, with pkg-config shared and static and with find_package). It starts a
 * server on a free port, upgrades one raw TCP connection and reads a published message back,
 * so every way of linking is checked to work, not only to link. Plain C that is also C++. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem, usleep; g++ defines it already */
#endif
#include <pushwire.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static volatile int opened;

static void on_open(pw_server *srv, pw_conn_id id, const pw_request *req, void *user) {
  (void)req, (void)user;
  if (pw_subscribe(srv, id, "news") == 0) opened = 1;
}

static int connect_to(int port) {
  struct sockaddr_in sa;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((unsigned short)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) return -1;
  return fd;
}

/* Read until `want` appears in what came (or 2 s pass); 1 if it did. */
static int read_until(int fd, const char *want) {
  char got[4096];
  size_t n = 0;
  struct timeval tv = {2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  while (n < sizeof got - 1) {
    ssize_t r = read(fd, got + n, sizeof got - 1 - n);
    if (r <= 0) return 0;
    n += (size_t)r;
    got[n] = 0;
    if (memmem(got, n, want, strlen(want))) return 1;
  }
  return 0;
}

int main(void) {
  static const char upgrade[] =
      "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
  pw_options opt;
  pw_callbacks cb;
  memset(&opt, 0, sizeof opt);
  memset(&cb, 0, sizeof cb);
  cb.on_open = on_open;
  pw_server *srv = pw_server_new(&opt, &cb, NULL);
  if (!srv || pw_server_start(srv) != 0) return fprintf(stderr, "cannot start\n"), 1;
  int fd = connect_to(pw_server_port(srv));
  int ok = fd >= 0 && write(fd, upgrade, sizeof upgrade - 1) == (ssize_t)(sizeof upgrade - 1) &&
           read_until(fd, "101 Switching Protocols");
  for (int i = 0; ok && !opened && i < 200; i++) usleep(10000);
  ok = ok && opened && pw_publish(srv, "news", "hello", 5, PW_TEXT) == 0 && read_until(fd, "hello");
  if (fd >= 0) close(fd);
  pw_server_stop(srv);
  pw_server_free(srv);
  printf("%s (pushwire %d.%d.%d, %s)\n", ok ? "ok" : "FAILED", PW_VERSION_MAJOR, PW_VERSION_MINOR,
         PW_VERSION_PATCH, pw_err_name(PW_ENOCONN));
  return ok ? 0 : 1;
}
