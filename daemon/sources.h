/* Ways to publish from outside that are not HTTP: a Unix-domain socket taking
 * "<topic> <payload>\n" lines, programs whose stdout lines are published (--exec CMD --topic T,
 * restarted with exponential backoff when they exit) and standard input (--stdin T). Each runs
 * as a pw task; pwd_sources_stop stops them before the server stops, so whatever a source had
 * received before the stop is published and delivered. */
#ifndef PUSHWIRED_SOURCES_H
#define PUSHWIRED_SOURCES_H

#include <stddef.h>

#include "daemon.h"

typedef struct pwd_sources pwd_sources;

/* What can fail at startup, done before serving: bind the Unix socket (so a bad path or a
 * socket in use is a clean exit 1). 0, or -1 with a one-line message in err. */
int pwd_sources_prepare(pwd_daemon *d, char *err, size_t errlen);
/* Start the tasks (after pw_server_start). 0, or -1 with err. */
int pwd_sources_start(pwd_daemon *d, char *err, size_t errlen);
/* Stop every source and wait for it: each first publishes what it had already received (lines
 * waiting in the socket or pipe). Called before pw_server_stop, which refuses publishes from
 * the moment it starts. Main thread. */
void pwd_sources_stop(pwd_daemon *d);
/* After pw_server_stop (tasks joined): close and remove the socket, free the state. */
void pwd_sources_cleanup(pwd_daemon *d);

#endif
