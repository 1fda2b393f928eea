/* The HTTP phase of a connection: collect a request head (and a small body), parse it with
 * llhttp, then either upgrade to WebSocket or answer a plain request (keep-alive).
 * Design notes: we find the end of the head ourselves and hand llhttp the whole head at
 * once, so every header is one contiguous span of our buffer and the request handed to
 * callbacks needs no copies. The buffer lives only in this phase. Loop thread only. */
#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conn.h"
#include "events.h"
#include "handshake.h"
#include "httphead.h"
#include "loop.h"
#include "pmd.h"
#include "server.h"

typedef struct pw__http {
  uint8_t *buf;
  size_t len, cap;
  size_t scanned; /* bytes already searched for the end of the head */
} pw__http;

/* What llhttp tells us about one head (parsed by the pure code in httphead.c). */
typedef pw__head head_info;

void pw__http_free(pw__conn *c) {
  if (!c->http) return;
  free(c->http->buf);
  free(c->http);
  c->http = NULL;
}

/* ---- responses --------------------------------------------------------------------------- */
static const char *status_text(int status) {
  switch (status) {
  case 101: return "Switching Protocols";
  case 200: return "OK";
  case 201: return "Created";
  case 202: return "Accepted";
  case 204: return "No Content";
  case 301: return "Moved Permanently";
  case 302: return "Found";
  case 303: return "See Other";
  case 304: return "Not Modified";
  case 307: return "Temporary Redirect";
  case 308: return "Permanent Redirect";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 409: return "Conflict";
  case 411: return "Length Required";
  case 413: return "Payload Too Large";
  case 415: return "Unsupported Media Type";
  case 429: return "Too Many Requests";
  case 426: return "Upgrade Required";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  default: return status < 300 ? "OK" : status < 500 ? "Client Error" : "Server Error";
  }
}

/* How a response carries its body (RFC 9110 6.4.1, 8.6, 9.3.2): 204 and 304 have none and
 * 204 no Content-Length; the answer to HEAD has the headers of the GET answer, no body. */
enum body_mode { BODY_SENT, BODY_OMITTED_HEAD, BODY_NONE };

static enum body_mode body_mode(int status, const char *method) {
  if (status == 204 || status == 304) return BODY_NONE;
  return method && strcmp(method, "HEAD") == 0 ? BODY_OMITTED_HEAD : BODY_SENT;
}

/* Queue a complete response. `extra` holds full header lines ("Name: v\r\n") or is NULL. */
static void respond_as(pw__conn *c, int status, const char *type, const char *extra,
                       const void *body, size_t body_len, int keep_alive, enum body_mode mode) {
  char head[1024], length[48] = "";
  if (mode != BODY_NONE) snprintf(length, sizeof length, "Content-Length: %zu\r\n", body_len);
  int n = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n%sConnection: %s\r\n",
                   status, status_text(status), type ? type : "text/plain; charset=utf-8",
                   length, keep_alive ? "keep-alive" : "close");
  if (mode != BODY_SENT) body_len = 0;
  size_t extra_len = extra ? strlen(extra) : 0;
  size_t total = (size_t)n + extra_len + 2 + body_len;
  pw_buf *b = pw__buf_new_raw(NULL, total); /* sized once, filled here */
  if (!b) return pw__conn_destroy(c);
  uint8_t *w = b->data;
  memcpy(w, head, (size_t)n), w += n;
  if (extra_len) memcpy(w, extra, extra_len), w += extra_len;
  memcpy(w, "\r\n", 2), w += 2;
  if (body_len) memcpy(w, body, body_len);
  pw__conn_queue(c, b);
}

static void respond(pw__conn *c, int status, const char *type, const char *extra,
                    const void *body, size_t body_len, int keep_alive) {
  respond_as(c, status, type, extra, body, body_len, keep_alive, BODY_SENT);
}

/* Answer an error and end the connection after it is written. */
static void respond_error(pw__conn *c, int status, const char *extra) {
  char body[64];
  int n = snprintf(body, sizeof body, "%d %s\n", status, status_text(status));
  respond(c, status, NULL, extra, body, (size_t)n, 0);
  pw__conn_end_after_flush(c);
}

/* ---- one request --------------------------------------------------------------------------- */
/* Strings the request hands out NUL-terminated, in one scratch block. */
typedef pw__req_strings request_strings;

/* The request as the pure code builds it, plus the peer's address, which only the socket
 * knows. */
static int fill_request(pw__conn *c, head_info *hi, pw_request *req, request_strings *rs) {
  if (pw__head_request(hi, req, rs) != 0) return -1;
  struct sockaddr_storage sa;
  int salen = sizeof sa;
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&sa, &salen) == 0) {
    char ip[INET6_ADDRSTRLEN] = "";
    int port = 0;
    if (sa.ss_family == AF_INET6) {
      uv_ip6_name((struct sockaddr_in6 *)&sa, ip, sizeof ip);
      port = ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
    } else {
      uv_ip4_name((struct sockaddr_in *)&sa, ip, sizeof ip);
      port = ntohs(((struct sockaddr_in *)&sa)->sin_port);
    }
    snprintf(rs->remote, sizeof rs->remote, "%s:%d", ip, port);
  }
  return 0;
}

static int path_accepts_upgrade(const pw_server *srv, const char *path) {
  const char *const *p = srv->opt.ws_paths;
  if (!p) return 1;
  for (; *p; p++)
    if (strcmp(*p, path) == 0) return 1;
  return 0;
}

/* Options.allowed_origins: an Origin header, if the client sent one, must be in the list.
 * Only browsers send Origin and they always do, so a missing one is a non-browser client,
 * which an Origin check cannot stop anyway (it could send any value): it passes. */
static int origin_allowed(const pw_server *srv, const pw_request *req) {
  const char *const *o = srv->opt.allowed_origins;
  const pw_header *h = o ? pw_request_header(req, "Origin") : NULL;
  if (!h) return 1;
  for (; *o; o++)
    if (strlen(*o) == h->value_len && strncasecmp(*o, h->value, h->value_len) == 0) return 1;
  return 0;
}

/* The access checks before the 101: Origin list, then the user's on_upgrade. Returns 101 to
 * go on, else the status to refuse with (a callback's value outside 400..599 becomes 500). */
static int upgrade_allowed(pw__conn *c, const pw_request *req) {
  pw_server *srv = c->loop->srv;
  if (!origin_allowed(srv, req)) return 403;
  int status = srv->cb.on_upgrade ? srv->cb.on_upgrade(srv, req, srv->user) : 0;
  if (status == 0) return 101;
  return status >= 400 && status <= 599 ? status : 500;
}

/* Pick the subprotocol through the user's callback; NULL for none. */
static const char *select_subprotocol(pw__conn *c, const pw_request *req, char *store,
                                      size_t store_len) {
  pw_server *srv = c->loop->srv;
  const char *offers[PW__MAX_OFFERS];
  if (!srv->cb.select_subprotocol) return NULL;
  size_t n = pw__subprotocol_offers(req, store, store_len, offers);
  if (n == 0) return NULL;
  int i = srv->cb.select_subprotocol(srv, req, offers, n, srv->user);
  return i >= 0 && (size_t)i < n ? offers[i] : NULL;
}

/* permessage-deflate (options.deflate): PW__PMD_ACCEPT fills *out, PW__PMD_NONE (disabled,
 * or no acceptable offer: the connection goes on uncompressed), PW__PMD_MALFORMED (the
 * Sec-WebSocket-Extensions value breaks RFC 6455 9.1's grammar: the caller answers 400, as
 * npm ws and python websockets do; a client that cannot write its own header is not one to
 * guess with). With the option off the header is not even parsed, as before. */
static int negotiate_deflate(pw__conn *c, const pw_request *req, pw__deflate_params *out) {
  pw__deflate_config cfg;
  pw__pmd_config(&c->loop->srv->opt, &cfg);
  if (!cfg.enable) return PW__PMD_NONE;
  int r = pw__deflate_negotiate_request(&cfg, req, out);
  return r < 0 ? PW__PMD_NONE : r;
}

static void send_101(pw__conn *c, const pw_request *req, const char *proto) {
  const pw_header *key = pw_request_header(req, "Sec-WebSocket-Key");
  char accept[PW__ACCEPT_LEN + 1], head[512], ext[PW__DEFLATE_RESPONSE_MAX] = "";
  pw__ws_accept(key->value, key->value_len, accept);
  if (c->pmd_on) pw__deflate_response(&c->pmd, ext); /* accepted parameters only */
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s%s%s%s%s%s\r\n",
                   accept, proto ? "Sec-WebSocket-Protocol: " : "", proto ? proto : "",
                   proto ? "\r\n" : "", c->pmd_on ? "Sec-WebSocket-Extensions: " : "", ext,
                   c->pmd_on ? "\r\n" : "");
  pw_buf *b = pw__buf_new_raw(head, (size_t)n);
  if (b) pw__conn_queue(c, b);
}

/* The request is an upgrade: answer it, and on success continue as a WebSocket with the
 * bytes that followed the head (a client may send frames right behind its request). */
static void upgrade(pw__conn *c, head_info *hi, pw_request *req, size_t head_len) {
  pw_server *srv = c->loop->srv;
  int status = pw__upgrade_status(req, hi->parser.http_major, hi->parser.http_minor);
  if (status == 101 && !path_accepts_upgrade(srv, req->path)) status = 404;
  if (status == 101) status = upgrade_allowed(c, req);
  if (status == 426) return respond_error(c, 426, "Sec-WebSocket-Version: 13\r\n");
  if (status != 101) return respond_error(c, status, NULL);
  pw__deflate_params pmd;
  int pmd_result = negotiate_deflate(c, req, &pmd);
  if (pmd_result == PW__PMD_MALFORMED) return respond_error(c, 400, NULL);
  int r = pw__conn_upgrade(c);
  if (r != 0) return respond_error(c, r == PW_EAGAIN ? 503 : 500, NULL);
  if (pmd_result == PW__PMD_ACCEPT) c->pmd_on = 1, c->pmd = pmd;
  char store[512];
  const char *proto = select_subprotocol(c, req, store, sizeof store);
  send_101(c, req, proto);
  pw__http *h = c->http;
  c->http = NULL; /* detached: its bytes stay valid through on_open and the first frames */
  c->opened = 1;
  req->subprotocol = proto;
  if (srv->opt.deliver_open == PW_DELIVER_QUEUE) pw__events_open(c, req);
  else if (srv->cb.on_open) srv->cb.on_open(srv, c->id, req, srv->user);
  if (h->len > head_len) pw__ws_read(c, h->buf + head_len, h->len - head_len);
  free(h->buf);
  free(h);
}

/* A plain request: the user's on_http answers it, or 404. */
static void serve_plain(pw__conn *c, pw_request *req, int keep_alive) {
  pw_server *srv = c->loop->srv;
  pw_response res;
  memset(&res, 0, sizeof res);
  if (srv->cb.on_http) srv->cb.on_http(srv, req, &res, srv->user);
  if (res.status == 0) {
    static const char body[] = "404 Not Found\n";
    return respond_as(c, 404, NULL, NULL, body, sizeof body - 1, keep_alive,
                      body_mode(404, req->method));
  }
  respond_as(c, res.status, res.content_type, res.extra_headers, res.body, res.body_len,
             keep_alive, body_mode(res.status, req->method));
}

/* ---- the byte stream ----------------------------------------------------------------------- */
static size_t find_head_end(pw__http *h) { return pw__head_end(h->buf, h->len, &h->scanned); }

static void consume(pw__http *h, size_t n) {
  memmove(h->buf, h->buf + n, h->len - n);
  h->len -= n;
  h->scanned = 0;
}

/* Handle one complete head at the front of the buffer. Returns 1 to go on with the next
 * request (keep-alive), 0 to wait for more bytes or stop. */
static int handle_request(pw__conn *c, size_t head_len) {
  const pw_options *o = &c->loop->srv->opt;
  pw__http *h = c->http;
  head_info hi;
  uint64_t body_len = 0;
  int err = pw__head_parse(&hi, h->buf, head_len);
  if (!err) err = pw__head_body(&hi, o->max_body_size, &body_len);
  if (err) return respond_error(c, err, NULL), 0;
  if (h->len < head_len + body_len) return 0; /* the body is still coming */
  pw_request req;
  request_strings rs;
  if (fill_request(c, &hi, &req, &rs) != 0) return respond_error(c, 500, NULL), 0;
  if (pw__is_upgrade(&req)) {
    upgrade(c, &hi, &req, head_len);
    free(rs.block);
    return 0;
  }
  int keep_alive = llhttp_should_keep_alive(&hi.parser);
  req.body = h->buf + head_len;
  req.body_len = (size_t)body_len;
  serve_plain(c, &req, keep_alive);
  free(rs.block);
  if (!keep_alive) return pw__conn_end_after_flush(c), 0;
  consume(c->http, head_len + (size_t)body_len);
  c->last_active_ms = c->loop->now_ms; /* a new request gets a full handshake timeout */
  pw__list_push(c->loop, c, PW__L_HTTP);
  return 1;
}

static int append(pw__http *h, const uint8_t *p, size_t n) {
  if (h->len + n > h->cap) {
    size_t cap = h->cap ? h->cap : 1024;
    while (cap < h->len + n) cap *= 2;
    uint8_t *b = realloc(h->buf, cap);
    if (!b) return -1;
    h->buf = b;
    h->cap = cap;
  }
  memcpy(h->buf + h->len, p, n);
  h->len += n;
  return 0;
}

void pw__http_read(pw__conn *c, const uint8_t *p, size_t n) {
  const pw_options *o = &c->loop->srv->opt;
  if (!c->http && !(c->http = calloc(1, sizeof *c->http))) return pw__conn_destroy(c);
  if (c->http->len + n > o->max_head_size + o->max_body_size)
    return respond_error(c, c->http->len < o->max_head_size ? 413 : 431, NULL);
  if (append(c->http, p, n) != 0) return respond_error(c, 500, NULL);
  while (c->state == PW__S_HTTP && c->http && c->http->len > 0) {
    size_t head_len = find_head_end(c->http);
    if (head_len > o->max_head_size || (!head_len && c->http->len > o->max_head_size))
      return respond_error(c, 431, NULL);
    if (!head_len || !handle_request(c, head_len)) return;
  }
}
