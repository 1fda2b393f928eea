/* The client protocol on /ws (docs/pushwired.md): JSON text frames
 *   {"op":"subscribe","topic":T}  {"op":"unsubscribe","topic":T}
 *   {"op":"publish","topic":T,"data":D}
 * answered by {"ok":true,"op":OP,"topic":T} or {"error":TEXT,"op":OP}; an "id" member of a
 * request is echoed in its answer. A bad frame never closes the connection. These are the
 * library's callbacks; `user` is the pwd_daemon. */
#ifndef PUSHWIRED_PROTOCOL_H
#define PUSHWIRED_PROTOCOL_H

#include <pushwire.h>

/* Most topics one connection may subscribe to (also the library's max_subscriptions). */
#define PWD_MAX_SUBSCRIPTIONS 1024

int pwd_ws_on_upgrade(pw_server *srv, const pw_request *req, void *user);
void pwd_ws_on_open(pw_server *srv, pw_conn_id id, const pw_request *req, void *user);
void pwd_ws_on_message(pw_server *srv, pw_conn_id id, const void *data, size_t len, int is_binary,
                       void *user);
void pwd_ws_on_close(pw_server *srv, pw_conn_id id, int code, const char *reason, void *user);

#endif
