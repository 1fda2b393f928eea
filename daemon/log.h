/* pushwired's log: one line per event on stderr, "<UTC time> <LEVEL> <message>", written with
 * one write() so lines from several threads never interleave. Messages are logged per event
 * (start, stop, errors, a source restarting), never per published message below DEBUG. */
#ifndef PUSHWIRED_LOG_H
#define PUSHWIRED_LOG_H

#include <pushwire.h> /* PW_LOG_ERROR .. PW_LOG_DEBUG */

/* Lines above this level are dropped. Any thread (an atomic). */
void pwd_log_set_level(int level);
int pwd_log_level(void);
/* Is a line of this level kept? Lets callers skip formatting costly DEBUG lines. */
int pwd_log_enabled(int level);

void pwd_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The library's log sink (pw_options.log): same format, prefixed "pushwire: ". */
void pwd_log_sink(int level, const char *msg, void *user);
/* While muted the sink drops the library's lines: main mutes it around pw_server_start,
 * whose failure it reports itself in one line (no second line saying the same). */
void pwd_log_mute_library(int muted);

/* "error", "warn", "info", "debug" -> level; -1 for anything else. */
int pwd_log_level_parse(const char *name);
const char *pwd_log_level_name(int level);

#endif
