/* The any-thread calls on topics (publish.c) and the one publish they hand every loop. */
#ifndef PW_PUBLISH_H
#define PW_PUBLISH_H

#include <stdatomic.h>
#include <stddef.h>

#include "buf.h"

struct pw__rtopic;
struct pw_server;

/* One publish, shared by the commands of every loop; the last reference frees it. */
typedef struct pw__pub {
  _Atomic unsigned refs;
  pw_buf *buf;
  struct pw__rtopic *rt; /* a history topic's registry entry (held), else NULL */
  struct pw_server *srv; /* with rt: to let it go */
  uint64_t offset;       /* with rt: the offset it was given */
  size_t len;
  char topic[]; /* NUL-terminated */
} pw__pub;

void pw__pub_unref(pw__pub *p);

#endif
