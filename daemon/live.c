/* The settings SIGHUP reloads (daemon.h's pwd_live): a new copy is built outside the lock and
 * swapped in under the write lock, so readers never see a half-made list. */
#include <stdlib.h>
#include <string.h>

#include "daemon.h"

void pwd_live_free(pwd_live *live) {
  free(live->token);
  for (size_t i = 0; i < live->nraw; i++) free(live->raw[i]);
  free(live->raw);
  memset(live, 0, sizeof *live);
}

static int copy_live(pwd_live *out, const pwd_config *cfg) {
  memset(out, 0, sizeof *out);
  out->allow_publish = cfg->allow_publish;
  if (cfg->token && !(out->token = strdup(cfg->token))) return -1;
  if (cfg->nraw && !(out->raw = calloc(cfg->nraw, sizeof *out->raw))) return -1;
  for (; out->nraw < cfg->nraw; out->nraw++)
    if (!(out->raw[out->nraw] = strdup(cfg->raw[out->nraw]))) return -1;
  return 0;
}

int pwd_live_apply(pwd_daemon *d, const pwd_config *cfg) {
  pwd_live fresh;
  if (copy_live(&fresh, cfg) != 0) return pwd_live_free(&fresh), -1;
  pthread_rwlock_wrlock(&d->live_lock);
  pwd_live old = d->live;
  d->live = fresh;
  pthread_rwlock_unlock(&d->live_lock);
  pwd_live_free(&old);
  return 0;
}

int pwd_token_required(pwd_daemon *d) {
  pthread_rwlock_rdlock(&d->live_lock);
  int required = d->live.token != NULL;
  pthread_rwlock_unlock(&d->live_lock);
  return required;
}

/* Constant time in the token's content: every byte is compared whatever the first mismatch. */
static int same_secret(const char *a, size_t alen, const char *b, size_t blen) {
  unsigned char diff = alen != blen;
  for (size_t i = 0; i < blen; i++) diff |= (unsigned char)(b[i] ^ (i < alen ? a[i] : 0));
  return diff == 0;
}

int pwd_token_ok(pwd_daemon *d, const char *given, size_t given_len) {
  pthread_rwlock_rdlock(&d->live_lock);
  const char *token = d->live.token;
  int ok = !token || (given && same_secret(given, given_len, token, strlen(token)));
  pthread_rwlock_unlock(&d->live_lock);
  return ok;
}
