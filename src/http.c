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
#include "ws.h"
#include "http.h"
#include "pmd.h"
#include "server.h"
#include "topic.h"
#include "util.h"

typedef struct pw__http {
  uint8_t *buf;
  size_t len, cap;
  size_t scanned;       /* bytes already searched for the end of the head */
  pw__head_check check; /* how far the head's bytes were judged (httphead.h) */
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
  default: /* the class names of RFC 9110 15 */
    return status < 300   ? "OK"
           : status < 400 ? "Redirection"
           : status < 500 ? "Client Error"
                          : "Server Error";
  }
}

/* How a response carries its body (RFC 9110 6.4.1, 8.6, 9.3.2): 204 and 304 have none and
 * 204 no Content-Length; the answer to HEAD has the headers of the GET answer, no body. */
enum body_mode { BODY_SENT, BODY_OMITTED_HEAD, BODY_NONE };

static enum body_mode body_mode(int status, const char *method) {
  if (status == 204 || status == 304) return BODY_NONE;
  return method && strcmp(method, "HEAD") == 0 ? BODY_OMITTED_HEAD : BODY_SENT;
}

/* Queue a complete response. `extra` holds full header lines ("Name: v\r\n") or is NULL.
 * The head is sized before it is written: a long content type cannot overrun anything. */
static void respond_as(pw__conn *c, int status, const char *type, const char *extra,
                       const void *body, size_t body_len, int keep_alive, enum body_mode mode) {
  static const char fmt[] = "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n%sConnection: %s\r\n";
  char length[48] = "";
  if (mode != BODY_NONE) snprintf(length, sizeof length, "Content-Length: %zu\r\n", body_len);
  if (mode != BODY_SENT) body_len = 0;
  const char *text = status_text(status), *conn = keep_alive ? "keep-alive" : "close";
  if (!type) type = "text/plain; charset=utf-8";
  int n = snprintf(NULL, 0, fmt, status, text, type, length, conn);
  size_t extra_len = extra ? strlen(extra) : 0;
  pw_buf *b = n < 0 ? NULL : pw__buf_new_raw(NULL, (size_t)n + extra_len + 2 + body_len);
  if (!b) return pw__conn_destroy(c);
  char *w = (char *)b->data;
  snprintf(w, (size_t)n + 1, fmt, status, text, type, length, conn); /* its NUL: overwritten */
  w += n;
  if (extra_len) memcpy(w, extra, extra_len), w += extra_len;
  memcpy(w, "\r\n", 2), w += 2;
  if (body_len) memcpy(w, body, body_len);
  pw__conn_queue(c, b);
}

static void respond(pw__conn *c, int status, const char *type, const char *extra, const void *body,
                    size_t body_len, int keep_alive) {
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

/* ---- subscriptions chosen at the upgrade ------------------------------------------------- */
/* Topics pw_upgrade_subscribe recorded during one on_upgrade. They become subscriptions in
 * the loop step that creates the connection, before on_open runs or its event is queued, so
 * no publish drained after the upgrade was accepted can miss it. Owned by upgrade(). */
typedef struct upgrade_topics {
  const pw_request *req; /* the request on_upgrade was given: a call must name it */
  uint32_t max;          /* options.max_subscriptions */
  uint32_t count, cap;
  char **names; /* heap copies, NUL-terminated */
} upgrade_topics;

/* The upgrade whose on_upgrade runs now on this thread, else NULL. A call from anywhere else
 * (another thread or callback, or after on_upgrade returned) finds nothing and gets
 * PW_EINVAL; the request pointer is only compared, so a stale one is never read. */
static _Thread_local upgrade_topics *recording;

static void topics_free(upgrade_topics *t) {
  for (uint32_t i = 0; i < t->count; i++) free(t->names[i]);
  free(t->names);
  memset(t, 0, sizeof *t);
}

static int topics_have(const upgrade_topics *t, const char *topic) {
  for (uint32_t i = 0; i < t->count; i++)
    if (strcmp(t->names[i], topic) == 0) return 1;
  return 0;
}

static int topics_add(upgrade_topics *t, const char *topic) {
  if (pw__grow32((void **)&t->names, &t->cap, t->count + 1, sizeof *t->names, 4) != 0)
    return PW_ENOMEM;
  if (!(t->names[t->count] = strdup(topic))) return PW_ENOMEM;
  t->count++;
  return 0;
}

int pw_upgrade_subscribe(const pw_request *req, const char *topic) {
  upgrade_topics *t = recording;
  size_t len = topic ? strlen(topic) : 0;
  if (!t || !req || t->req != req || len == 0 || len > PW__TOPIC_MAX) return PW_EINVAL;
  if (topics_have(t, topic)) return 0;
  if (t->count >= t->max) return PW_EAGAIN; /* the connection could not hold them all */
  return topics_add(t, topic);
}

/* Subscribe the connection, still in the HTTP state (so nothing is queued to it before its
 * 101), to every recorded topic. 0, or the first failure's code with none left behind. */
static int subscribe_recorded(pw__conn *c, const upgrade_topics *t) {
  for (uint32_t i = 0; i < t->count; i++) {
    int r = pw__topic_subscribe(c->loop, c, t->names[i], strlen(t->names[i]));
    if (r != 0) return pw__topic_unsubscribe_all(c->loop, c), r;
  }
  return 0;
}

/* on_upgrade, with pw_upgrade_subscribe recording into *t while it runs. */
static int call_on_upgrade(pw_server *srv, const pw_request *req, upgrade_topics *t) {
  upgrade_topics *outer = recording; /* none: callbacks do not nest; kept to be sure */
  t->req = req;
  t->max = srv->opt.max_subscriptions;
  recording = t;
  int status = srv->cb.on_upgrade(srv, req, srv->user);
  recording = outer;
  return status;
}

/* The access checks before the 101: Origin list, then the user's on_upgrade. Returns 101 to
 * go on, else the status to refuse with (a callback's value outside 400..599 becomes 500). */
static int upgrade_allowed(pw__conn *c, const pw_request *req, upgrade_topics *t) {
  pw_server *srv = c->loop->srv;
  if (!origin_allowed(srv, req)) return 403;
  int status = srv->cb.on_upgrade ? call_on_upgrade(srv, req, t) : 0;
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
  const struct pw_deflate_options *cfg = &c->loop->srv->opt.deflate;
  if (!cfg->enable) return PW__PMD_NONE;
  int r = pw__deflate_negotiate_request(cfg, req, out);
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

/* Everything that may still refuse the upgrade, in order: the handshake rules, the path, the
 * access checks, the extension offer, the recorded subscriptions, a place for the
 * connection. 101 once c is an open WebSocket (subscribed), else the status to answer. */
static int accept_upgrade(pw__conn *c, head_info *hi, const pw_request *req, upgrade_topics *t) {
  int status = pw__upgrade_status(req, hi->parser.http_major, hi->parser.http_minor);
  if (status == 101 && !path_accepts_upgrade(c->loop->srv, req->path)) status = 404;
  if (status == 101) status = upgrade_allowed(c, req, t);
  if (status != 101) return status;
  pw__deflate_params pmd;
  int pmd_result = negotiate_deflate(c, req, &pmd);
  if (pmd_result == PW__PMD_MALFORMED) return 400;
  if (subscribe_recorded(c, t) != 0) return 500; /* not a connection that lacks one */
  int r = pw__conn_upgrade(c);
  if (r != 0) return pw__topic_unsubscribe_all(c->loop, c), r == PW_EAGAIN ? 503 : 500;
  if (pmd_result == PW__PMD_ACCEPT) c->pmd_on = 1, c->pmd = pmd;
  return 101;
}

/* The request is an upgrade: answer it, and on success continue as a WebSocket with the
 * bytes that followed the head (a client may send frames right behind its request). */
static void upgrade(pw__conn *c, head_info *hi, pw_request *req, size_t head_len) {
  upgrade_topics topics = {0};
  int status = accept_upgrade(c, hi, req, &topics);
  topics_free(&topics);
  if (status == 426) return respond_error(c, 426, "Sec-WebSocket-Version: 13\r\n");
  if (status != 101) return respond_error(c, status, NULL);
  char store[512];
  const char *proto = select_subprotocol(c, req, store, sizeof store);
  send_101(c, req, proto);
  pw__http *h = c->http;
  c->http = NULL; /* detached: its bytes stay valid through on_open and the first frames */
  c->opened = 1;
  req->subprotocol = proto;
  pw__notify_open(c, req);
  if (h->len > head_len) pw__ws_read(c, h->buf + head_len, h->len - head_len);
  free(h->buf);
  free(h);
}

/* ---- what on_http answered ------------------------------------------------------------------ */
/* A character of a header value (RFC 9110 5.5: VCHAR, obs-text, SP, HTAB): no CR, LF or
 * other control character, so a value cannot end its line and start another. */
static int field_char(unsigned char ch) { return ch == '\t' || (ch >= 0x20 && ch != 0x7f); }

static int all_field_chars(const char *s) {
  while (field_char((unsigned char)*s)) s++;
  return *s == '\0';
}

/* The framing headers the library writes itself: a second Content-Length or a
 * Transfer-Encoding would make the client read the body (and the next response on the
 * connection) differently from what was sent. */
static int framing_header(const char *name, size_t len) {
  return (len == 14 && strncasecmp(name, "Content-Length", 14) == 0) ||
         (len == 17 && strncasecmp(name, "Transfer-Encoding", 17) == 0);
}

/* extra_headers: whole "Name: value\r\n" lines, a token name, field characters, CRLF; no
 * empty line (it would end the head early and turn the rest into body). NULL if fine. */
static const char *extra_headers_fault(const char *s) {
  while (*s) {
    const char *name = s;
    while (pw__http_tchar((unsigned char)*s)) s++;
    if (s == name || *s != ':') return "an extra_headers line without a token name and ':'";
    if (framing_header(name, (size_t)(s - name)))
      return "extra_headers sets Content-Length or Transfer-Encoding (the library's own)";
    for (s++; field_char((unsigned char)*s); s++) {}
    if (s[0] != '\r' || s[1] != '\n')
      return "an extra_headers line with a control character or not ended by CRLF";
    s += 2;
  }
  return NULL;
}

/* Why this answer cannot be sent as it is (and 500 goes instead), or NULL. 1xx is no final
 * answer (and 101 would claim a protocol switch). */
static const char *response_fault(const pw_response *res) {
  if (res->status < 200 || res->status > 599) return "status outside 200..599";
  if (res->body_len && !res->body) return "body NULL with body_len > 0";
  if (res->content_type && !all_field_chars(res->content_type))
    return "content_type holds a control character (CR, LF, ...)";
  return res->extra_headers ? extra_headers_fault(res->extra_headers) : NULL;
}

/* A buggy handler must not flood the log: one line per loop every PW__RATELOG_MS, with
 * the count since the last line (as loop.c reports refused connections). The count of the
 * last period shows up with the next bad answer after it. */
static void report_bad_response(pw__loop *l, const pw_request *req, const pw_response *res,
                                const char *why) {
  uint64_t count;
  if (!pw__ratelog_due(&l->bad_responses, l->now_ms, 1, &count)) return;
  pw__log(l->srv, PW_LOG_WARN,
          "on_http gave an invalid response to %s %s (%s; status %d): answered 500; %llu "
          "invalid response(s) since the last report (at most one line every %d s)",
          req->method, req->path, why, res->status, (unsigned long long)count,
          PW__RATELOG_MS / 1000);
}

/* A plain request: the user's on_http answers it, or 404; an invalid answer becomes 500
 * (the request itself was fine, so keep-alive stays as the client asked). */
static void serve_plain(pw__conn *c, pw_request *req, int keep_alive) {
  pw_server *srv = c->loop->srv;
  pw_response res;
  memset(&res, 0, sizeof res);
  if (srv->cb.on_http) srv->cb.on_http(srv, req, &res, srv->user);
  const char *why = res.status ? response_fault(&res) : NULL;
  if (why) report_bad_response(c->loop, req, &res, why);
  if (res.status == 0 || why) {
    int status = why ? 500 : 404;
    char body[64];
    int n = snprintf(body, sizeof body, "%d %s\n", status, status_text(status));
    return respond_as(c, status, NULL, NULL, body, (size_t)n, keep_alive,
                      body_mode(status, req->method));
  }
  respond_as(c, res.status, res.content_type, res.extra_headers, res.body, res.body_len, keep_alive,
             body_mode(res.status, req->method));
}

/* ---- the byte stream ----------------------------------------------------------------------- */
static size_t find_head_end(pw__http *h) { return pw__head_end(h->buf, h->len, &h->scanned); }

static void consume(pw__http *h, size_t n) {
  memmove(h->buf, h->buf + n, h->len - n);
  h->len -= n;
  h->scanned = 0;
  memset(&h->check, 0, sizeof h->check);
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

/* The bytes so far cannot start a valid request (pw__head_check_bytes): 400 at once, and
 * to a TLS ClientHello on the plain port a body that says why its handshake fails. */
static void refuse_head(pw__conn *c, int bad) {
  static const char tls_body[] =
      "400 Bad Request: this port speaks plain HTTP (http://, ws://), not TLS\n";
  if (bad != PW__HEAD_TLS || c->tls) return respond_error(c, 400, NULL);
  respond(c, 400, NULL, NULL, tls_body, sizeof tls_body - 1, 0);
  pw__conn_end_after_flush(c);
}

static int append(pw__http *h, const uint8_t *p, size_t n) {
  if (pw__grow((void **)&h->buf, &h->cap, h->len + n, 1, 1024) != 0) return -1;
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
    int bad =
        pw__head_check_bytes(c->http->buf, head_len ? head_len : c->http->len, &c->http->check);
    if (bad) return refuse_head(c, bad);
    if (head_len > o->max_head_size || (!head_len && c->http->len > o->max_head_size))
      return respond_error(c, 431, NULL);
    if (!head_len || !handle_request(c, head_len)) return;
  }
}
