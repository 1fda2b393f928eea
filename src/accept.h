/* Accepting connections for one loop: its listeners, the binding of them, and descriptor
 * shedding at EMFILE (accept.c). */
#ifndef PW_ACCEPT_H
#define PW_ACCEPT_H

#include <uv.h>

#include "util.h"

struct pw__loop;

typedef struct pw__accept {
  uv_tcp_t listener;     /* plain connections */
  uv_tcp_t tls_listener; /* TLS connections (options.tls.cert_file); idle without TLS */
  int spare_fd;          /* a descriptor kept in reserve to shed connections at EMFILE */
  pw__ratelog refusals;  /* connections refused, logged at most once per 10 s */
} pw__accept;

/* Loop thread, at loop init: the two listener handles (not bound). */
void pw__accept_init(struct pw__loop *l);
/* Bind and listen (caller's thread, before the loop runs), plain or TLS; with reuseport the
 * port may be shared with the server's other loops. Returns the bound port or a negative
 * code (PW_EINVAL bad address, PW_EADDRINUSE, PW_EBIND: logged). */
int pw__accept_listen(struct pw__loop *l, const char *addr, int port, int reuseport, int tls);
/* Loop thread: close both listeners (at the stop; idempotent). */
void pw__accept_close(struct pw__loop *l);
/* After the loop has run its last: give the spare descriptor back. */
void pw__accept_destroy(struct pw__loop *l);

#endif
