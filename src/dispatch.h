/* The loop half of every command that comes through the door (inbox.h): what a send, close,
 * call, policy, resume, subscribe, unsubscribe or publish does once on its loop. */
#ifndef PW_DISPATCH_H
#define PW_DISPATCH_H

#include <stddef.h>

#include "inbox.h"

struct pw__loop;

/* Loop thread: carry out one command, releasing what it owns and refunding its charge to the
 * door. Returns its work (queue appends), which bounds one drain. A publish may wait in the
 * loop's batch (batch.h); any other command fans the batch out first, so inbox order is
 * kept. */
size_t pw__dispatch(struct pw__loop *l, const pw__cmd *cmd);

#endif
