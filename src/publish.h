/* The any-thread calls on topics (publish.c) and the one publish they hand every loop. */
#ifndef PW_PUBLISH_H
#define PW_PUBLISH_H

#include <stdatomic.h>
#include <stddef.h>

#include "buf.h"

/* One publish, shared by the commands of every loop; the last reference frees it. */
typedef struct pw__pub {
  _Atomic unsigned refs;
  pw_buf *buf;
  size_t len;
  char topic[]; /* NUL-terminated */
} pw__pub;

void pw__pub_unref(pw__pub *p);

#endif
