/* Accepting connections: the plain and TLS listeners of one loop, their binding (with
 * SO_REUSEPORT when several loops share a port), and what happens when the process runs out
 * of descriptors. Loop thread only, but for pw__accept_listen (before the loop runs). */
#include "accept.h"

#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loop.h"
#include "server.h"

/* Design notes (running out of descriptors, EMFILE/ENFILE):
 * - accept() takes a descriptor number before it looks at the backlog, so while the process
 *   has none free it fails with EMFILE whether or not anyone is waiting, and a loop that
 *   retries spins at 100% CPU. libuv's answer (uv__emfile_trick) closes a reserved
 *   descriptor, accepts and closes whatever is pending, and reopens it - silently; and if
 *   another thread takes the freed number meanwhile, libuv's reserve is gone: from then on
 *   its accept loop retries EMFILE without end, calling on_connection with it each time.
 * - So we act before the process is full: after each accept a probe (a descriptor opened and
 *   closed at once) checks that one is still free. If none is, this newest connection is told
 *   503 and closed at once. One number so stays free: the next accept succeeds (and is
 *   answered), an accept with nobody waiting says EAGAIN, and connected clients are not
 *   touched.
 * - If accept() fails anyway (another thread took the free number, ENFILE), our spare
 *   descriptor is given up to make room, or, if it is gone too, the connection waiting
 *   longest for its handshake. The pending connections are answered and closed, and the
 *   room is left free: libuv accepts again right after this callback, and only a free
 *   number lets it hear EAGAIN and return. The spare is taken again after the next accept.
 * - Refusals are counted and logged at most once per PW__RATELOG_MS, with the count,
 *   so a flood of connections cannot become a flood of log lines. */

static const char refusal_503[] =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    "Content-Length: 24\r\nConnection: close\r\nRetry-After: 1\r\n\r\n"
    "503 Service Unavailable\n";

static void report_refusals(pw__loop *l, uint64_t n, const char *why) {
  uint64_t count;
  if (!pw__ratelog_due(&l->accept.refusals, l->now_ms, n, &count)) return;
  pw__log(l->srv, PW_LOG_WARN,
          "%s: %llu new connection(s) refused since the last report (at most one every %d s)", why,
          (unsigned long long)count, PW__RATELOG_MS / 1000);
}

/* A descriptor that only holds a number: an eventfd needs no file system (no /dev/null in a
 * chroot), and sanitizers know it as a new descriptor (TSan does not model fcntl's dups and
 * took a reused number for a race between loops). */
static int open_spare(void) { return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }

/* Is one more descriptor available? Probed by taking one and giving it back. */
static int descriptor_left(void) {
  int probe = open_spare();
  if (probe >= 0) return close(probe), 1;
  return errno != EMFILE && errno != ENFILE;
}

/* Best effort and never blocking: a client that already sent its request may get a reset
 * instead (we close without reading it), but most clients learn why. */
static void refuse(int fd) {
  (void)!send(fd, refusal_503, sizeof refusal_503 - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* Free one descriptor number: the spare, else the connection that has waited longest for
 * its handshake (uv_close closes its socket at once). 0 if there was nothing to give. */
static int make_room(pw__loop *l) {
  if (l->accept.spare_fd >= 0) {
    close(l->accept.spare_fd);
    l->accept.spare_fd = -1;
    return 1;
  }
  if (!l->lists[PW__L_HTTP].first) return 0;
  pw__conn_destroy(l->lists[PW__L_HTTP].first);
  return 1;
}

/* accept() failed for want of a descriptor: make room, answer and close every pending
 * connection, and leave the room free (see the design notes). */
static void shed_pending(pw__loop *l, uv_stream_t *listener) {
  int lfd, fd;
  uint64_t n = 0;
  if (uv_fileno((uv_handle_t *)listener, &lfd) != 0 || !make_room(l))
    return report_refusals(l, 1, "out of file descriptors, none to free");
  while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0 || errno == EINTR ||
         errno == ECONNABORTED) {
    if (fd >= 0) refuse(fd), close(fd), n++;
  }
  report_refusals(l, n, "out of file descriptors");
}

static void on_connection(uv_stream_t *server, int status) {
  pw__loop *l = server->data;
  l->now_ms = uv_now(&l->uv);
  if (status == UV_EMFILE || status == UV_ENFILE) return shed_pending(l, server);
  if (status < 0) return report_refusals(l, 1, uv_strerror(status));
  pw__conn *c = pw__conn_accept(l, server, server == (uv_stream_t *)&l->accept.tls_listener);
  if (!c) return report_refusals(l, 1, "could not set up a connection");
  int fd;
  if (uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0) return;
  if (l->accept.spare_fd < 0)
    l->accept.spare_fd = open_spare(); /* given up by shed_pending: take it back */
  if (descriptor_left()) return;
  refuse(fd); /* the newest goes, so that one number stays free for the next accept */
  pw__conn_destroy(c);
  report_refusals(l, 1, "out of file descriptors");
}

static int parse_addr(const char *addr, int port, struct sockaddr_storage *sa) {
  if (strchr(addr, ':'))
    return uv_ip6_addr(addr, port, (struct sockaddr_in6 *)sa) == 0 ? 0 : PW_EINVAL;
  return uv_ip4_addr(addr, port, (struct sockaddr_in *)sa) == 0 ? 0 : PW_EINVAL;
}

static int bound_port(uv_tcp_t *listener) {
  struct sockaddr_storage sa;
  int len = sizeof sa;
  if (uv_tcp_getsockname(listener, (struct sockaddr *)&sa, &len) != 0) return -1;
  return ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&sa)->sin6_port
                                        : ((struct sockaddr_in *)&sa)->sin_port);
}

/* Several loops share the port through SO_REUSEPORT: the kernel spreads new connections over
 * their listening sockets, and no loop hands sockets to another. libuv 1.44 has no flag for
 * it, so the socket is made here and given to libuv with uv_tcp_open. */
static int open_reuseport(uv_tcp_t *listener, int family) {
  int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
  if (fd < 0) return -1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
      uv_tcp_open(listener, fd) != 0) {
    close(fd);
    return -1;
  }
  return 0;
}

int pw__accept_listen(pw__loop *l, const char *addr, int port, int reuseport, int tls) {
  struct sockaddr_storage sa;
  const pw_options *o = &l->srv->opt;
  uv_tcp_t *listener = tls ? &l->accept.tls_listener : &l->accept.listener;
  if (parse_addr(addr, port, &sa) != 0) return PW_EINVAL;
  if (reuseport && open_reuseport(listener, sa.ss_family) != 0) return PW_EBIND;
  int r = uv_tcp_bind(listener, (struct sockaddr *)&sa, 0);
  if (r == 0) r = uv_listen((uv_stream_t *)listener, o->backlog, on_connection);
  if (r != 0) {
    pw__log(l->srv, PW_LOG_ERROR, "cannot listen on %s:%d%s: %s", addr, port, tls ? " (TLS)" : "",
            uv_strerror(r));
    return r == UV_EADDRINUSE ? PW_EADDRINUSE : PW_EBIND;
  }
  if (l->accept.spare_fd < 0) l->accept.spare_fd = open_spare(); /* once, either listener */
  return bound_port(listener);
}

void pw__accept_init(pw__loop *l) {
  pw__accept *a = &l->accept;
  a->spare_fd = -1; /* opened once listening (see the design notes) */
  uv_tcp_init(&l->uv, &a->listener);
  uv_tcp_init(&l->uv, &a->tls_listener);
  a->listener.data = a->tls_listener.data = l;
}

void pw__accept_close(pw__loop *l) {
  pw__accept *a = &l->accept;
  if (!uv_is_closing((uv_handle_t *)&a->listener)) uv_close((uv_handle_t *)&a->listener, NULL);
  if (!uv_is_closing((uv_handle_t *)&a->tls_listener))
    uv_close((uv_handle_t *)&a->tls_listener, NULL);
}

void pw__accept_destroy(pw__loop *l) {
  if (l->accept.spare_fd >= 0) close(l->accept.spare_fd);
  l->accept.spare_fd = -1;
}
