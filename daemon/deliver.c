/* The publish path shared by every source (deliver.h). A JSON-topic message is assembled as
 * {"topic":<escaped topic>,"data":<payload>} in one allocation handed to the library without
 * another copy (pw_buf_wrap): the payload's own text is spliced in after jansson has checked
 * it, so numbers keep the exact digits the publisher wrote. */
#include "deliver.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

/* ---- input rules ---------------------------------------------------------------------------- */
int pwd_topic_valid(const char *topic, size_t len) {
  if (len == 0 || len > 255) return 0;
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)topic[i] < 0x20 || topic[i] == 0x7F) return 0;
  return pw_utf8_valid(topic, len);
}

const char *pwd_publish_strerror(int code) {
  switch (code) {
  case PWD_EBADTOPIC: return "bad topic (1..255 bytes of UTF-8, no control characters)";
  case PWD_ENOTUTF8: return "payload is neither JSON nor UTF-8 text (publish it to a --raw topic)";
  default: return pw_strerror(code);
  }
}

/* ---- formats --------------------------------------------------------------------------------- */
/* Is the topic delivered raw? Reads the reloadable prefix list. */
static int topic_is_raw(pwd_daemon *d, const char *topic) {
  int raw = 0;
  pthread_rwlock_rdlock(&d->live_lock);
  for (size_t i = 0; i < d->live.nraw && !raw; i++)
    raw = strncmp(topic, d->live.raw[i], strlen(d->live.raw[i])) == 0;
  pthread_rwlock_unlock(&d->live_lock);
  return raw;
}

/* The payload as JSON text to splice after "data": itself (trimmed) when it parses as a JSON
 * value, else a new quoted string (*owned, to free). NULL: not UTF-8, or out of memory. */
static const char *data_text(const char *p, size_t *len, int is_json, char **owned) {
  *owned = NULL;
  while (*len > 0 &&
         (p[*len - 1] == ' ' || p[*len - 1] == '\n' || p[*len - 1] == '\r' || p[*len - 1] == '\t'))
    (*len)--;
  while (*len > 0 && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) p++, (*len)--;
  json_error_t err;
  json_t *v =
      is_json || *len == 0 ? NULL : json_loadb(p, *len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
  if (is_json || v) return json_decref(v), p;
  json_t *s = json_stringn(p, *len); /* NULL for invalid UTF-8 */
  *owned = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
  json_decref(s);
  if (*owned) *len = strlen(*owned);
  return *owned;
}

static void free_message(void *data, void *ctx) { free(data); }

/* {"topic":T,"data":D} in one malloc'ed buffer, handed to every loop without a copy. */
static int publish_wrapped(pwd_daemon *d, const char *topic, const void *payload, size_t len,
                           int is_json, int flags) {
  char *owned, *topic_json = NULL;
  const char *data = data_text(payload, &len, is_json, &owned);
  if (!data) return PWD_ENOTUTF8;
  json_t *t = json_string(topic);
  topic_json = t ? json_dumps(t, JSON_ENCODE_ANY) : NULL;
  json_decref(t);
  size_t tlen = topic_json ? strlen(topic_json) : 0, total = tlen + len + 20;
  char *msg = topic_json ? malloc(total) : NULL;
  int r = PW_ENOMEM;
  if (msg) {
    size_t n = 0;
    memcpy(msg + n, "{\"topic\":", 9), n += 9;
    memcpy(msg + n, topic_json, tlen), n += tlen;
    memcpy(msg + n, ",\"data\":", 8), n += 8;
    memcpy(msg + n, data, len), n += len;
    msg[n++] = '}';
    pw_buf *b = pw_buf_wrap(msg, n, free_message, NULL, PW_TEXT);
    if (!b) free(msg);
    r = b ? pw_publish_buf(d->srv, topic, b, flags) : PW_ENOMEM;
    pw_buf_unref(b);
  }
  free(topic_json);
  free(owned);
  return r;
}

int pwd_publish(pwd_daemon *d, pwd_source src, const char *topic, const void *payload, size_t len,
                int payload_is_json) {
  int r;
  /* Producers off the loops feel backpressure (wait for room); a loop never waits on another. */
  int flags = pw_on_loop_thread(d->srv) ? 0 : PW_BLOCK;
  if (!payload) payload = ""; /* an empty HTTP body */
  if (!topic || !pwd_topic_valid(topic, strlen(topic))) r = PWD_EBADTOPIC;
  else if (len > d->cfg->max_message) r = PW_ETOOBIG;
  else if (topic_is_raw(d, topic))
    r = pw_publish(d->srv, topic, payload, len,
                   flags | (pw_utf8_valid(payload, len) ? PW_TEXT : PW_BINARY));
  else r = publish_wrapped(d, topic, payload, len, payload_is_json, flags);
  if (r == 0) {
    pwd_count(&d->metrics.published[src], 1);
    pwd_count(&d->metrics.published_bytes[src], len);
  } else {
    pwd_count(&d->metrics.refused[src], 1);
  }
  if (pwd_log_enabled(PW_LOG_DEBUG))
    pwd_log(PW_LOG_DEBUG, "publish from %s to '%s': %zu bytes: %s", pwd_source_name(src),
            topic ? topic : "", len, r == 0 ? "ok" : pwd_publish_strerror(r));
  return r;
}

int pwd_publish_value(pwd_daemon *d, pwd_source src, const char *topic, json_t *data) {
  if (topic && topic_is_raw(d, topic) && json_is_string(data))
    return pwd_publish(d, src, topic, json_string_value(data), json_string_length(data), 0);
  char *text = json_dumps(data, JSON_ENCODE_ANY | JSON_COMPACT);
  if (!text) return PW_ENOMEM;
  int r = pwd_publish(d, src, topic, text, strlen(text), 1);
  free(text);
  return r;
}

int pwd_demo_publish(void *ctx, const char *topic, const char *json, size_t len) {
  return pwd_publish(ctx, PWD_SRC_DEMO, topic, json, len, 1);
}
