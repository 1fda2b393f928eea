/* Access checks before the upgrade: options.allowed_origins and the
 * on_upgrade callback refuse by Origin, path, subprotocol offer or a token in the query or a
 * header, with the status they choose, before any 101; a refused client never opens, and
 * the accepted ones work. Checked to fail: with upgrade_allowed() in src/http.c returning 101
 * unconditionally every refusal below got "101" and an on_open. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../support/harness.h"
#include "../support/check.h"

static _Atomic int upgrade_calls;

/* Refuse: path /private (403), a missing or wrong token (401), the subprotocol "evil" (400),
 * and a callback that answers nonsense (the library turns 42 into 500). */
static int on_upgrade(pw_server *srv, const pw_request *req, void *user) {
  atomic_fetch_add(&upgrade_calls, 1);
  if (strcmp(req->path, "/private") == 0) return 403;
  if (strcmp(req->path, "/nonsense") == 0) return 42;
  const pw_header *proto = pw_request_header(req, "Sec-WebSocket-Protocol");
  if (proto && proto->value_len == 4 && memcmp(proto->value, "evil", 4) == 0) return 400;
  const pw_header *auth = pw_request_header(req, "Authorization");
  int header_ok = auth && auth->value_len == 13 && memcmp(auth->value, "Bearer secret", 13) == 0;
  int query_ok = strcmp(req->query, "token=secret") == 0;
  return header_ok || query_ok ? 0 : 401;
}

/* Send one upgrade request (WebSocket version `version`) with optional extra header lines;
 * return the status code of the answer (or -1). */
static int upgrade_status_v(int port, const char *target, const char *extra, int version) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) return -1;
  char req[1024];
  int n = snprintf(req, sizeof req,
                   "GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: %d\r\n"
                   "%s\r\n",
                   target, version, extra ? extra : "");
  if (write(fd, req, (size_t)n) != n) return close(fd), -1;
  char buf[512] = {0};
  struct pollfd p = {.fd = fd, .events = POLLIN};
  int status = -1;
  if (poll(&p, 1, 3000) == 1 && read(fd, buf, sizeof buf - 1) > 12)
    sscanf(buf, "HTTP/1.1 %d", &status);
  close(fd);
  return status;
}

static int upgrade_status(int port, const char *target, const char *extra) {
  return upgrade_status_v(port, target, extra, 13);
}

int main(void) {
  static const char *const origins[] = {"https://good.example", NULL};
  pw_options opt = {.allowed_origins = origins};
  pw_callbacks cb = {.on_open = th_on_open, .on_close = th_on_close, .on_upgrade = on_upgrade};
  pw_server *srv = pw_server_new(&opt, &cb, NULL);
  CHECK(srv != NULL);
  CHECK_EQ_INT(pw_server_start(srv), 0);
  int port = pw_server_port(srv);
  const char *bearer = "Authorization: Bearer secret\r\n";

  /* Origin list: checked before the callback, case-insensitively; no Origin passes. */
  CHECK_EQ_INT(upgrade_status(port, "/ws",
                              "Origin: https://evil.example\r\nAuthorization: Bearer secret\r\n"),
               403);
  CHECK_EQ_INT(atomic_load(&upgrade_calls), 0);
  CHECK_EQ_INT(upgrade_status(port, "/ws",
                              "Origin: https://GOOD.example\r\nAuthorization: Bearer secret\r\n"),
               101);
  CHECK_EQ_INT(upgrade_status(port, "/ws", bearer), 101);
  /* The callback: path, token (header or query), subprotocol, bad return value. */
  CHECK_EQ_INT(upgrade_status(port, "/private", bearer), 403);
  CHECK_EQ_INT(upgrade_status(port, "/ws", NULL), 401);
  CHECK_EQ_INT(upgrade_status(port, "/ws", "Authorization: Bearer wrong\r\n"), 401);
  CHECK_EQ_INT(upgrade_status(port, "/ws?token=secret", NULL), 101);
  CHECK_EQ_INT(upgrade_status(port, "/ws?token=secret", "Sec-WebSocket-Protocol: evil\r\n"), 400);
  CHECK_EQ_INT(upgrade_status(port, "/nonsense", bearer), 500);
  /* Exactly the three accepted upgrades opened (and closed when their sockets went). */
  CHECK(th_wait_closes(3, 3000));
  th_events ev = th_snapshot();
  CHECK_EQ_INT(ev.opens, 3);
  CHECK_EQ_INT(ev.closes, 3);
  /* A malformed upgrade never reaches the callback: the handshake rules come first. */
  int calls = atomic_load(&upgrade_calls);
  CHECK_EQ_INT(upgrade_status_v(port, "/ws", bearer, 8), 426);
  CHECK_EQ_INT(atomic_load(&upgrade_calls), calls);
  pw_server_free(srv);
  return CHECK_DONE();
}
