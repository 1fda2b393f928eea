/* The /ws client protocol (protocol.h). Requests are parsed with jansson; answers are built
 * with it too, so every string a client sends back to itself is escaped correctly. All of this
 * runs on the connection's loop thread: pw_send and pw_subscribe act at once. */
#include "protocol.h"

#include <stdlib.h>
#include <string.h>

#include "deliver.h"
#include "log.h"
#include "request.h"

/* ---- answers ------------------------------------------------------------------------------- */
static void send_json(pwd_daemon *d, pw_conn_id id, json_t *msg) {
  char *text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
  if (text) pw_send(d->srv, id, text, strlen(text), PW_TEXT);
  free(text);
  json_decref(msg);
}

/* {"error":TEXT,"op":OP or null[,"id":ID]} */
static void reply_error(pwd_daemon *d, pw_conn_id id, json_t *req, const char *op,
                        const char *text) {
  json_t *msg = json_object();
  json_object_set_new(msg, "error", json_string(text));
  json_object_set_new(msg, "op", op ? json_string(op) : json_null());
  json_t *rid = req ? json_object_get(req, "id") : NULL;
  if (rid) json_object_set(msg, "id", rid);
  pwd_count(&d->metrics.client_errors, 1);
  send_json(d, id, msg);
}

/* {"ok":true,"op":OP,"topic":T[,"id":ID]}; `extra` (may be NULL) is merged in. */
static void reply_ok(pwd_daemon *d, pw_conn_id id, json_t *req, const char *op, const char *topic,
                     json_t *extra) {
  json_t *msg = json_pack("{s:b,s:s,s:s}", "ok", 1, "op", op, "topic", topic);
  json_t *rid = json_object_get(req, "id");
  if (msg && rid) json_object_set(msg, "id", rid);
  if (msg && extra) json_object_update(msg, extra);
  json_decref(extra);
  send_json(d, id, msg);
}

/* A connection that may publish carries this mark as its user pointer (pw_conn_data). */
static char may_publish;

/* ---- ops ------------------------------------------------------------------------------------- */
/* The request's "topic", or NULL after answering the error. */
static const char *request_topic(pwd_daemon *d, pw_conn_id id, json_t *req, const char *op) {
  json_t *t = json_object_get(req, "topic");
  if (!json_is_string(t)) return reply_error(d, id, req, op, "\"topic\" must be a string"), NULL;
  const char *topic = json_string_value(t);
  if (strlen(topic) != json_string_length(t) || !pwd_topic_valid(topic, strlen(topic)))
    return reply_error(d, id, req, op, pwd_publish_strerror(PWD_EBADTOPIC)), NULL;
  return topic;
}

static void op_subscribe(pwd_daemon *d, pw_conn_id id, json_t *req) {
  const char *topic = request_topic(d, id, req, "subscribe");
  if (!topic) return;
  int e = pw_subscribe(d->srv, id, topic); /* on the loop thread: it acts and answers now */
  if (e == PW_EAGAIN)
    return reply_error(d, id, req, "subscribe",
                       "too many subscriptions on this connection (1024 at most)");
  if (e != 0) return reply_error(d, id, req, "subscribe", pw_strerror(e));
  reply_ok(d, id, req, "subscribe", topic, NULL);
}

static void op_unsubscribe(pwd_daemon *d, pw_conn_id id, json_t *req) {
  const char *topic = request_topic(d, id, req, "unsubscribe");
  if (!topic) return;
  pw_unsubscribe(d->srv, id, topic); /* PW_ENOTFOUND (was not subscribed): still ok */
  reply_ok(d, id, req, "unsubscribe", topic, NULL);
}

static int ws_publish_allowed(pwd_daemon *d) {
  pthread_rwlock_rdlock(&d->live_lock);
  int allowed = d->live.allow_publish;
  pthread_rwlock_unlock(&d->live_lock);
  return allowed;
}

static void op_publish(pwd_daemon *d, pw_conn_id id, json_t *req) {
  if (!ws_publish_allowed(d))
    return reply_error(d, id, req, "publish",
                       "publishing over WebSocket is off (pushwired --allow-publish)");
  if (pw_conn_data(d->srv, id) != &may_publish)
    return reply_error(d, id, req, "publish",
                       "forbidden: a token is required (connect to /ws?token=T)");
  const char *topic = request_topic(d, id, req, "publish");
  if (!topic) return;
  json_t *data = json_object_get(req, "data");
  if (!data) return reply_error(d, id, req, "publish", "missing \"data\"");
  int r = pwd_publish_value(d, PWD_SRC_WS, topic, data);
  if (r != 0) return reply_error(d, id, req, "publish", pwd_publish_strerror(r));
  reply_ok(d, id, req, "publish", topic,
           json_pack("{s:I}", "subscribers", (json_int_t)pw_topic_subscribers(d->srv, topic)));
}

/* ---- callbacks ------------------------------------------------------------------------------- */
void pwd_ws_on_message(pw_server *srv, pw_conn_id id, const void *data, size_t len, int is_binary,
                       void *user) {
  pwd_daemon *d = user;
  if (is_binary)
    return reply_error(d, id, NULL, NULL,
                       "binary frames are not part of the protocol: send JSON text");
  json_error_t err;
  json_t *req = json_loadb(data, len, 0, &err);
  if (!req) {
    char text[300];
    snprintf(text, sizeof text, "bad JSON: %s (column %d)", err.text, err.column);
    return reply_error(d, id, NULL, NULL, text);
  }
  json_t *op = json_object_get(req, "op");
  const char *name = json_string_value(op);
  if (!json_is_object(req)) reply_error(d, id, NULL, NULL, "expected a JSON object");
  else if (!name)
    reply_error(d, id, req, NULL, "missing \"op\" (subscribe, unsubscribe or publish)");
  else if (strcmp(name, "subscribe") == 0) op_subscribe(d, id, req);
  else if (strcmp(name, "unsubscribe") == 0) op_unsubscribe(d, id, req);
  else if (strcmp(name, "publish") == 0) op_publish(d, id, req);
  else reply_error(d, id, req, name, "unknown op (subscribe, unsubscribe or publish)");
  json_decref(req);
}

/* A token presented but wrong is refused at the door (403); none at all still lets the client
 * read: only publishing needs it. */
int pwd_ws_on_upgrade(pw_server *srv, const pw_request *req, void *user) {
  pwd_daemon *d = user;
  char token[512];
  long n = pwd_request_token(req, token, sizeof token);
  if (n < 0 || (n > 0 && !pwd_token_ok(d, token, (size_t)n))) return 403;
  return 0;
}

void pwd_ws_on_open(pw_server *srv, pw_conn_id id, const pw_request *req, void *user) {
  pwd_daemon *d = user;
  char token[512];
  long n = pwd_request_token(req, token, sizeof token);
  int can_publish = n > 0 ? pwd_token_ok(d, token, (size_t)n) : !pwd_token_required(d);
  if (can_publish) pw_conn_set_data(srv, id, &may_publish);
  if (pwd_log_enabled(PW_LOG_DEBUG))
    pwd_log(PW_LOG_DEBUG, "client %s connected (id %llx)", req->remote_addr,
            (unsigned long long)id);
}

void pwd_ws_on_close(pw_server *srv, pw_conn_id id, int code, const char *reason, void *user) {
  if (pwd_log_enabled(PW_LOG_DEBUG))
    pwd_log(PW_LOG_DEBUG, "client id %llx gone (%d %s)", (unsigned long long)id, code, reason);
}
