/* Server options: the documented defaults, and the one check of every range, which names the
 * field and what it allows (pw_options_check; pw_server_new logs the same line).
 * Design note: the ranges are a table of (field, offset, bounds), so a new option is one row
 * and the message can never disagree with the check. Zero always means "the default", so the
 * check runs on a copy with the defaults filled in; a field whose default is resolved later
 * (deflate's window bits, level, mem level) lists 0 among its allowed values. */
#include "options.h"

#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "server.h"

void pw__options_fill_defaults(pw_options *o) {
  if (!o->bind_address) o->bind_address = "127.0.0.1";
  if (!o->max_message_size) o->max_message_size = 16u << 20;
  if (!o->max_message_frames) o->max_message_frames = 65536;
  if (!o->max_head_size) o->max_head_size = 8192;
  if (!o->max_body_size) o->max_body_size = 1u << 20;
  if (!o->idle_timeout_ms) o->idle_timeout_ms = 120000;
  if (!o->ping_interval_ms) o->ping_interval_ms = 30000;
  if (!o->handshake_timeout_ms) o->handshake_timeout_ms = 10000;
  if (!o->close_timeout_ms) o->close_timeout_ms = 3000;
  if (!o->drain_timeout_ms) o->drain_timeout_ms = 5000; /* why 5 s: see pushwire.h */
  if (!o->max_connections) o->max_connections = 100000;
  if (!o->backlog) o->backlog = 511;
  if (!o->max_queued_bytes) o->max_queued_bytes = 1u << 20;
  if (!o->max_inbox_bytes) o->max_inbox_bytes = 64u << 20;
  if (!o->inbox_capacity) o->inbox_capacity = 65536;
  if (!o->send_timeout_ms) o->send_timeout_ms = 1000;
  if (!o->threads) o->threads = 1;
  if (!o->max_subscriptions) o->max_subscriptions = 1024;
  if (!o->max_event_bytes) o->max_event_bytes = 16u << 20;
  if (!o->max_events) o->max_events = 65536;
  if (!o->history_memory) o->history_memory = 64u << 20;
}

/* An int-sized field (int or enum) and its allowed range. `zero_ok`: 0 (the default,
 * resolved later) is allowed besides [min, max]. */
typedef struct int_rule {
  const char *name;
  size_t offset;
  long long min, max;
  int zero_ok;
} int_rule;

#define RULE(field, lo, hi, zero) \
  { #field, offsetof(pw_options, field), lo, hi, zero }
static const int_rule int_rules[] = {
    RULE(port, -1, 65535, 0),
    RULE(tls.port, 0, 65535, 0),
    RULE(max_connections, 1, INT_MAX, 0),
    RULE(backlog, 1, INT_MAX, 0),
    RULE(threads, 1, PW__MAX_LOOPS, 0),
    RULE(log_level, PW_LOG_ERROR, PW_LOG_DEBUG, 0),
    RULE(slow_policy, PW_SLOW_CLOSE, PW_SLOW_DROP_OLDEST, 0),
    RULE(event_policy, PW_EVQ_PAUSE, PW_EVQ_DROP, 0),
    RULE(deliver_open, PW_DELIVER_CALLBACK, PW_DELIVER_QUEUE, 0),
    RULE(deliver_message, PW_DELIVER_CALLBACK, PW_DELIVER_QUEUE, 0),
    RULE(deliver_close, PW_DELIVER_CALLBACK, PW_DELIVER_QUEUE, 0),
    RULE(deliver_refused, PW_DELIVER_CALLBACK, PW_DELIVER_QUEUE, 0),
    RULE(deliver_recovery, PW_DELIVER_CALLBACK, PW_DELIVER_QUEUE, 0),
    RULE(tls.require_client_cert, 0, 1, 0),
    RULE(deflate.enable, 0, 1, 0),
    RULE(deflate.server_no_context_takeover, 0, 1, 0),
    RULE(deflate.client_no_context_takeover, 0, 1, 0),
    RULE(deflate.server_max_window_bits, 8, 15, 1),
    RULE(deflate.client_max_window_bits, 8, 15, 1),
    RULE(deflate.level, 1, 9, 1),
    RULE(deflate.mem_level, 1, 9, 1),
};
#undef RULE

/* Every int_rules field is an int or an enum (int-sized, read as a signed int so that a
 * negative value stored in an unsigned enum still shows as negative). */
_Static_assert(sizeof(pw_slow_policy) == sizeof(int) && sizeof(pw_deliver) == sizeof(int) &&
                   sizeof(pw_event_policy) == sizeof(int),
               "enum options are read as int");

static int field_value(const pw_options *o, const int_rule *r) {
  int v;
  memcpy(&v, (const char *)o + r->offset, sizeof v);
  return v;
}

static int fail(char *err, size_t errlen, const char *fmt, const char *name, long long value,
                long long min, long long max) {
  if (err && errlen) snprintf(err, errlen, fmt, name, value, min, max);
  return PW_EINVAL;
}

static int check_ranges(const pw_options *o, char *err, size_t errlen) {
  for (size_t i = 0; i < sizeof int_rules / sizeof int_rules[0]; i++) {
    const int_rule *r = &int_rules[i];
    long long v = field_value(o, r);
    if ((v >= r->min && v <= r->max) || (r->zero_ok && v == 0)) continue;
    return fail(err, errlen,
                r->zero_ok ? "pw_options.%s = %lld: must be 0 (the default) or %lld..%lld"
                           : "pw_options.%s = %lld: must be %lld..%lld",
                r->name, v, r->min, r->max);
  }
  if (o->inbox_capacity > PW__INBOX_CAPACITY_MAX)
    return fail(err, errlen, "pw_options.%s = %lld: must be 1..%lld (0: the default)",
                "inbox_capacity", (long long)o->inbox_capacity, 1, PW__INBOX_CAPACITY_MAX);
  return 0;
}

static int say(char *err, size_t errlen, const char *text) {
  if (err && errlen) snprintf(err, errlen, "%s", text);
  return PW_EINVAL;
}

/* Options that only make sense together. */
static int check_combinations(const pw_options *o, char *err, size_t errlen) {
  if (o->port == -1 && !o->tls.cert_file)
    return say(err, errlen, "pw_options.port = -1 (no plain listener) needs tls.cert_file");
  if (o->tls.cert_file && !o->tls.key_file)
    return say(err, errlen, "pw_options.tls.cert_file is set but tls.key_file is not");
  if (o->tls.require_client_cert && !o->tls.ca_file)
    return say(err, errlen, "pw_options.tls.require_client_cert needs tls.ca_file");
  return 0;
}

int pw_options_check(const pw_options *opt, char *err, size_t errlen) {
  pw_options o;
  if (err && errlen) err[0] = 0;
  if (!opt) return 0; /* NULL: every default */
  o = *opt;
  pw__options_fill_defaults(&o);
  int r = check_ranges(&o, err, errlen);
  return r != 0 ? r : check_combinations(&o, err, errlen);
}
