/* Who is subscribed to what, as pushwired sees it: per connection its topics and whether it
 * may publish, per topic its subscriber count over every loop. The library keeps its own
 * per-loop tables; this one exists because a loop thread cannot ask the other loops for a
 * count (POST /publish answers with one), and /metrics wants totals. One mutex: touched once
 * per subscribe, unsubscribe, open, close and HTTP publish, never per delivered message. */
#ifndef PUSHWIRED_REGISTRY_H
#define PUSHWIRED_REGISTRY_H

#include <pushwire.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pwd_registry pwd_registry;

pwd_registry *pwd_registry_new(void);
void pwd_registry_free(pwd_registry *reg);

/* A connection opened / closed. Closing forgets its subscriptions. 0 or -1 (no memory). */
int pwd_registry_open(pwd_registry *reg, pw_conn_id id, int can_publish);
void pwd_registry_close(pwd_registry *reg, pw_conn_id id);
int pwd_registry_can_publish(pwd_registry *reg, pw_conn_id id);

/* 1 newly subscribed, 0 already was, -1 no memory or unknown connection, -2 over `max`
 * topics for this connection. */
int pwd_registry_subscribe(pwd_registry *reg, pw_conn_id id, const char *topic, size_t max);
/* 1 removed, 0 was not subscribed. */
int pwd_registry_unsubscribe(pwd_registry *reg, pw_conn_id id, const char *topic);

size_t pwd_registry_count(pwd_registry *reg, const char *topic);
/* Totals: subscriptions (pairs connection-topic) and topics with at least one subscriber. */
void pwd_registry_totals(pwd_registry *reg, uint64_t *subscriptions, uint64_t *topics);

#endif
