/* pushwired's plain HTTP requests (the library's on_http; `user` is the pwd_daemon):
 *   GET /healthz            200 "ok"
 *   GET /metrics            Prometheus text
 *   POST /publish/<topic>   body = the message; 202 {"topic":T,"subscribers":N};
 *                           401/403 without the right token when one is configured
 *   anything else           a static file from --www, or 404 */
#ifndef PUSHWIRED_ROUTES_H
#define PUSHWIRED_ROUTES_H

#include <pushwire.h>

void pwd_on_http(pw_server *srv, const pw_request *req, pw_response *res, void *user);

#endif
