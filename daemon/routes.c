/* Plain HTTP routes (routes.h). Runs on loop threads, possibly several at once: a response's
 * bytes are kept in a per-thread pwd_reply until that thread's next request, because the
 * library copies them only after on_http returns. */
#include "routes.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deliver.h"
#include "log.h"
#include "request.h"
#include "static_files.h"

/* ---- per-thread response storage ------------------------------------------------------------- */
static pthread_key_t reply_key;
static pthread_once_t reply_once = PTHREAD_ONCE_INIT;

static void free_reply(void *p) {
  pwd_reply *r = p;
  if (r) free(r->body);
  free(r);
}

static void make_reply_key(void) { pthread_key_create(&reply_key, free_reply); }

/* This thread's storage, emptied of the previous response (whose bytes are long copied). */
static pwd_reply *thread_reply(void) {
  pthread_once(&reply_once, make_reply_key);
  pwd_reply *r = pthread_getspecific(reply_key);
  if (!r && (r = calloc(1, sizeof *r)) && pthread_setspecific(reply_key, r) != 0) free(r), r = NULL;
  if (r) free(r->body), r->body = NULL, r->headers[0] = '\0';
  return r;
}

static void text_reply(pw_response *res, int status, const char *text) {
  res->status = status;
  res->body = text;
  res->body_len = strlen(text);
}

static void method_not_allowed(pw_response *res, const char *allow) {
  text_reply(res, 405, "405 Method Not Allowed\n");
  res->extra_headers = allow;
}

/* ---- /metrics -------------------------------------------------------------------------------- */
static void metrics(pwd_daemon *d, const pw_request *req, pw_response *res, pwd_reply *out) {
  if (strcmp(req->method, "GET") != 0) return method_not_allowed(res, "Allow: GET\r\n");
  size_t len;
  if (!(out->body = pwd_metrics_render(d, &len))) return text_reply(res, 500, "out of memory\n");
  res->status = 200;
  res->content_type = "text/plain; version=0.0.4; charset=utf-8";
  res->body = out->body;
  res->body_len = len;
}

/* ---- POST /publish/<topic> ------------------------------------------------------------------- */
static void json_reply(pw_response *res, pwd_reply *out, int status, const char *key,
                       const char *value, long subscribers) {
  json_t *msg = json_pack("{s:s}", key, value);
  if (msg && subscribers >= 0) json_object_set_new(msg, "subscribers", json_integer(subscribers));
  out->body = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
  json_decref(msg);
  if (!out->body) return text_reply(res, 500, "out of memory\n");
  size_t n = strlen(out->body);
  res->status = status;
  res->content_type = "application/json";
  res->body = out->body;
  res->body_len = n;
}

static int publish_status(int r) {
  switch (r) {
  case PWD_EBADTOPIC:
  case PWD_ENOTUTF8: return 400;
  case PW_ETOOBIG: return 413;
  case PW_EAGAIN:
  case PW_ESTOPPED: return 503;
  default: return 500;
  }
}

/* 0 when the request may publish; else the status: 401 (no token presented), 403 (wrong). */
static int check_token(pwd_daemon *d, const pw_request *req) {
  char token[512];
  long n = pwd_request_token(req, token, sizeof token);
  if (n < 0) return 403;
  if (n == 0) return pwd_token_required(d) ? 401 : 0;
  return pwd_token_ok(d, token, (size_t)n) ? 0 : 403;
}

static void publish(pwd_daemon *d, const pw_request *req, pw_response *res, pwd_reply *out) {
  if (strcmp(req->method, "POST") != 0) return method_not_allowed(res, "Allow: POST\r\n");
  int status = check_token(d, req);
  if (status != 0) {
    pwd_count(&d->metrics.refused[PWD_SRC_HTTP], 1);
    if (status == 401) res->extra_headers = "WWW-Authenticate: Bearer realm=\"pushwired\"\r\n";
    return json_reply(res, out, status, "error",
                      status == 401 ? "a token is required" : "wrong token", -1);
  }
  char topic[1024];
  const char *raw = req->path + strlen("/publish/");
  int r;
  if (pwd_percent_decode(raw, strlen(raw), topic, sizeof topic) < 0) {
    pwd_count(&d->metrics.refused[PWD_SRC_HTTP], 1); /* pwd_publish counts the others */
    r = PWD_EBADTOPIC;
  } else {
    r = pwd_publish(d, PWD_SRC_HTTP, topic, req->body, req->body_len, 0);
  }
  if (r != 0) return json_reply(res, out, publish_status(r), "error", pwd_publish_strerror(r), -1);
  json_reply(res, out, 202, "topic", topic, (long)pw_topic_subscribers(d->srv, topic));
}

/* ---- dispatch -------------------------------------------------------------------------------- */
void pwd_on_http(pw_server *srv, const pw_request *req, pw_response *res, void *user) {
  pwd_daemon *d = user;
  pwd_reply *out = thread_reply();
  if (!out) return text_reply(res, 500, "out of memory\n");
  if (strcmp(req->path, "/healthz") == 0) {
    if (strcmp(req->method, "GET") != 0) return method_not_allowed(res, "Allow: GET\r\n");
    return text_reply(res, 200, "ok\n");
  }
  if (strcmp(req->path, "/metrics") == 0) return metrics(d, req, res, out);
  if (strncmp(req->path, "/publish/", 9) == 0) return publish(d, req, res, out);
  if (d->www_root) return pwd_static_serve(d->www_root, req, res, out);
  /* res->status 0: the library answers 404 */
}
