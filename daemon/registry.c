/* The subscription registry (registry.h): two chained hash tables under one mutex, one of
 * connections (each with the small array of its topics) and one of topics (each with its
 * subscriber count). A topic's node exists only while it has subscribers. */
#include "registry.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---- a minimal chained hash table: nodes embed `hnode` first ---------------------------------- */
typedef struct hnode {
  struct hnode *next;
  uint64_t hash;
} hnode;

typedef struct table {
  hnode **buckets;
  size_t nbuckets; /* a power of two */
  size_t count;
} table;

typedef int (*match_fn)(const hnode *n, const void *key);

static hnode **table_slot(table *t, uint64_t hash, match_fn match, const void *key) {
  if (!t->buckets) return NULL;
  hnode **p = &t->buckets[hash & (t->nbuckets - 1)];
  for (; *p; p = &(*p)->next)
    if ((*p)->hash == hash && match(*p, key)) return p;
  return NULL;
}

/* Doubles the buckets when they are fewer than the nodes: chains stay short. */
static int table_grow(table *t) {
  size_t nb = t->nbuckets ? t->nbuckets * 2 : 64;
  hnode **b = calloc(nb, sizeof *b);
  if (!b) return -1;
  for (size_t i = 0; i < t->nbuckets; i++)
    for (hnode *n = t->buckets[i], *next; n; n = next) {
      next = n->next;
      n->next = b[n->hash & (nb - 1)];
      b[n->hash & (nb - 1)] = n;
    }
  free(t->buckets);
  t->buckets = b, t->nbuckets = nb;
  return 0;
}

static int table_insert(table *t, hnode *n) {
  if (t->count >= t->nbuckets && table_grow(t) != 0 && !t->buckets) return -1;
  hnode **head = &t->buckets[n->hash & (t->nbuckets - 1)];
  n->next = *head;
  *head = n;
  t->count++;
  return 0;
}

static hnode *table_unlink(table *t, hnode **slot) {
  hnode *n = *slot;
  *slot = n->next;
  t->count--;
  return n;
}

static uint64_t hash_bytes(const void *data, size_t len) { /* FNV-1a */
  const unsigned char *p = data;
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < len; i++) h = (h ^ p[i]) * 1099511628211ULL;
  return h;
}

static uint64_t hash_id(pw_conn_id id) { return hash_bytes(&id, sizeof id); }

/* ---- nodes ----------------------------------------------------------------------------------- */
typedef struct topic_node {
  hnode h;
  size_t subscribers;
  char name[];
} topic_node;

typedef struct conn_node {
  hnode h;
  pw_conn_id id;
  int can_publish;
  char **topics; /* each an owned copy */
  size_t ntopics, cap;
} conn_node;

static int topic_matches(const hnode *n, const void *key) {
  return strcmp(((const topic_node *)n)->name, key) == 0;
}

static int conn_matches(const hnode *n, const void *key) {
  return ((const conn_node *)n)->id == *(const pw_conn_id *)key;
}

struct pwd_registry {
  pthread_mutex_t lock;
  table topics, conns;
  uint64_t subscriptions;
};

pwd_registry *pwd_registry_new(void) {
  pwd_registry *reg = calloc(1, sizeof *reg);
  if (reg) pthread_mutex_init(&reg->lock, NULL);
  return reg;
}

static void free_conn(conn_node *c) {
  for (size_t i = 0; i < c->ntopics; i++) free(c->topics[i]);
  free(c->topics);
  free(c);
}

void pwd_registry_free(pwd_registry *reg) {
  if (!reg) return;
  for (size_t i = 0; i < reg->conns.nbuckets; i++)
    for (hnode *n = reg->conns.buckets[i], *next; n; n = next) next = n->next, free_conn((conn_node *)n);
  for (size_t i = 0; i < reg->topics.nbuckets; i++)
    for (hnode *n = reg->topics.buckets[i], *next; n; n = next) next = n->next, free(n);
  free(reg->conns.buckets);
  free(reg->topics.buckets);
  pthread_mutex_destroy(&reg->lock);
  free(reg);
}

/* ---- topic counts (lock held) ------------------------------------------------------------------ */
static int topic_add(pwd_registry *reg, const char *topic) {
  uint64_t h = hash_bytes(topic, strlen(topic));
  hnode **slot = table_slot(&reg->topics, h, topic_matches, topic);
  if (slot) return ((topic_node *)*slot)->subscribers++, 0;
  topic_node *t = malloc(sizeof *t + strlen(topic) + 1);
  if (!t) return -1;
  t->h.hash = h;
  t->subscribers = 1;
  strcpy(t->name, topic);
  if (table_insert(&reg->topics, &t->h) == 0) return 0;
  free(t);
  return -1;
}

static void topic_drop(pwd_registry *reg, const char *topic) {
  hnode **slot = table_slot(&reg->topics, hash_bytes(topic, strlen(topic)), topic_matches, topic);
  if (slot && --((topic_node *)*slot)->subscribers == 0) free(table_unlink(&reg->topics, slot));
}

/* ---- connections ------------------------------------------------------------------------------ */
static conn_node *find_conn(pwd_registry *reg, pw_conn_id id) {
  hnode **slot = table_slot(&reg->conns, hash_id(id), conn_matches, &id);
  return slot ? (conn_node *)*slot : NULL;
}

int pwd_registry_open(pwd_registry *reg, pw_conn_id id, int can_publish) {
  conn_node *c = calloc(1, sizeof *c);
  if (!c) return -1;
  c->h.hash = hash_id(id);
  c->id = id;
  c->can_publish = can_publish;
  pthread_mutex_lock(&reg->lock);
  int r = table_insert(&reg->conns, &c->h);
  pthread_mutex_unlock(&reg->lock);
  if (r != 0) free(c);
  return r;
}

void pwd_registry_close(pwd_registry *reg, pw_conn_id id) {
  pthread_mutex_lock(&reg->lock);
  hnode **slot = table_slot(&reg->conns, hash_id(id), conn_matches, &id);
  conn_node *c = slot ? (conn_node *)table_unlink(&reg->conns, slot) : NULL;
  for (size_t i = 0; c && i < c->ntopics; i++) topic_drop(reg, c->topics[i]);
  if (c) reg->subscriptions -= c->ntopics;
  pthread_mutex_unlock(&reg->lock);
  if (c) free_conn(c);
}

int pwd_registry_can_publish(pwd_registry *reg, pw_conn_id id) {
  pthread_mutex_lock(&reg->lock);
  conn_node *c = find_conn(reg, id);
  int can = c && c->can_publish;
  pthread_mutex_unlock(&reg->lock);
  return can;
}

static long topic_index(const conn_node *c, const char *topic) {
  for (size_t i = 0; i < c->ntopics; i++)
    if (strcmp(c->topics[i], topic) == 0) return (long)i;
  return -1;
}

/* Lock held: remember topic for c and count it. */
static int add_subscription(pwd_registry *reg, conn_node *c, const char *topic) {
  if (c->ntopics == c->cap) {
    size_t cap = c->cap ? c->cap * 2 : 4;
    char **grown = realloc(c->topics, cap * sizeof *grown);
    if (!grown) return -1;
    c->topics = grown, c->cap = cap;
  }
  char *copy = strdup(topic);
  if (!copy || topic_add(reg, topic) != 0) return free(copy), -1;
  c->topics[c->ntopics++] = copy;
  reg->subscriptions++;
  return 1;
}

int pwd_registry_subscribe(pwd_registry *reg, pw_conn_id id, const char *topic, size_t max) {
  pthread_mutex_lock(&reg->lock);
  conn_node *c = find_conn(reg, id);
  int r = !c ? -1 : topic_index(c, topic) >= 0 ? 0 : c->ntopics >= max ? -2
                                                     : add_subscription(reg, c, topic);
  pthread_mutex_unlock(&reg->lock);
  return r;
}

int pwd_registry_unsubscribe(pwd_registry *reg, pw_conn_id id, const char *topic) {
  pthread_mutex_lock(&reg->lock);
  conn_node *c = find_conn(reg, id);
  long i = c ? topic_index(c, topic) : -1;
  if (i >= 0) {
    free(c->topics[i]);
    c->topics[i] = c->topics[--c->ntopics];
    topic_drop(reg, topic);
    reg->subscriptions--;
  }
  pthread_mutex_unlock(&reg->lock);
  return i >= 0;
}

size_t pwd_registry_count(pwd_registry *reg, const char *topic) {
  pthread_mutex_lock(&reg->lock);
  hnode **slot = table_slot(&reg->topics, hash_bytes(topic, strlen(topic)), topic_matches, topic);
  size_t n = slot ? ((topic_node *)*slot)->subscribers : 0;
  pthread_mutex_unlock(&reg->lock);
  return n;
}

void pwd_registry_totals(pwd_registry *reg, uint64_t *subscriptions, uint64_t *topics) {
  pthread_mutex_lock(&reg->lock);
  *subscriptions = reg->subscriptions;
  *topics = reg->topics.count;
  pthread_mutex_unlock(&reg->lock);
}
