/* One log line per event on stderr; see log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static atomic_int log_level = PW_LOG_INFO;
static atomic_int library_muted;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void pwd_log_set_level(int level) { atomic_store(&log_level, level); }
int pwd_log_level(void) { return atomic_load(&log_level); }
int pwd_log_enabled(int level) { return level <= atomic_load(&log_level); }

int pwd_log_level_parse(const char *name) {
  for (int i = 0; i < 4; i++)
    if (strcasecmp(name, level_names[i]) == 0) return i;
  return -1;
}

const char *pwd_log_level_name(int level) {
  return level >= 0 && level < 4 ? level_names[level] : "?";
}

/* Write "<time> <LEVEL> <prefix><text>\n" in one write(): a line is never split between
 * threads. Text past the line buffer is cut (a log line is not the place for payloads). */
static void write_line(int level, const char *prefix, const char *text) {
  char line[1024];
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  static const char *const upper[] = {"ERROR", "WARN", "INFO", "DEBUG"};
  int n =
      snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s%s", tm.tm_year + 1900,
               tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
               upper[level < 0   ? 0
                     : level > 3 ? 3
                                 : level],
               prefix, text);
  size_t len = n < 0 ? 0 : (size_t)n < sizeof line - 1 ? (size_t)n : sizeof line - 2;
  for (size_t i = 0; i < len; i++) /* one event, one line: no newline from a message */
    if (line[i] == '\n' || line[i] == '\r') line[i] = ' ';
  line[len++] = '\n';
  ssize_t w = write(STDERR_FILENO, line, len);
  (void)w; /* nowhere to report a failing stderr */
}

void pwd_log(int level, const char *fmt, ...) {
  if (!pwd_log_enabled(level)) return;
  char text[900];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  write_line(level, "", text);
}

void pwd_log_sink(int level, const char *msg, void *user) {
  if (pwd_log_enabled(level) && !atomic_load(&library_muted)) write_line(level, "pushwire: ", msg);
}

void pwd_log_mute_library(int muted) { atomic_store(&library_muted, muted); }
