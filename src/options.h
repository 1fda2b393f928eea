/* Server options: defaults and range checks (pw_options_check, public). */
#ifndef PW_OPTIONS_H
#define PW_OPTIONS_H

#include "pushwire.h"

/* The largest inbox ring (commands per loop). */
#define PW__INBOX_CAPACITY_MAX (1LL << 24)

/* Replace every zero (and NULL) field by its documented default. */
void pw__options_fill_defaults(pw_options *o);

#endif
