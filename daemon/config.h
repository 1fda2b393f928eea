/* pushwired's configuration: defaults, then a config file, then PUSHWIRED_* environment
 * variables, then command-line flags (each layer overrides the one before). The file format is
 * one "key = value" per line, keys being the long flag names (docs/pushwired.md). */
#ifndef PUSHWIRED_CONFIG_H
#define PUSHWIRED_CONFIG_H

#include <stddef.h>

#include <pushwire.h>

typedef struct pwd_exec {
  char *command; /* run by /bin/sh -c */
  char *topic;   /* each stdout line is published here */
} pwd_exec;

/* Every string is owned by the config (freed by pwd_config_free). */
typedef struct pwd_config {
  /* What pw_server_new gets, as the options set it: port (from listen), threads,
   * max_queued_bytes, slow_policy, max_connections, log_level (the daemon's own too), tls
   * (cert_file, key_file, ca_file, port; the strings owned here) and deflate (0 fields: the
   * library's defaults, which matter only with enable). main.c adds the rest (bind_address
   * from host, the message limits from max_message, callbacks, paths, log sink,
   * tls.require_client_cert with a ca_file). */
  pw_options server;
  char *listen;      /* as given: "127.0.0.1:8080" */
  char *host;        /* parsed from listen */
  char *www;         /* static files root, or NULL */
  char *token;       /* publishing token, or NULL: publishing needs none */
  int allow_publish; /* WebSocket clients may publish */
  char **raw;        /* topic prefixes delivered raw (not wrapped in JSON) */
  size_t nraw;
  char *unix_path; /* Unix-domain socket for "<topic> <payload>" lines, or NULL */
  pwd_exec *execs; /* --exec/--topic pairs */
  size_t nexec;
  char *stdin_topic;         /* publish stdin lines here, or NULL */
  int demo;                  /* run the built-in demo source */
  size_t max_message;        /* bytes: largest message in or out (also the sources' lines) */
  char *config_file;         /* the file read, or NULL */
  int raw_layer, exec_layer; /* which layer last replaced each list (see config.c) */
} pwd_config;

enum {
  PWD_CONFIG_OK = 0,
  PWD_CONFIG_HELP = 1,    /* --help: print pwd_config_help() and exit 0 */
  PWD_CONFIG_VERSION = 2, /* --version */
  PWD_CONFIG_ERROR = -1,  /* err holds a one-line message; exit 2 */
};

/* Build the configuration from argv, the environment and the config file (--config FILE or
 * PUSHWIRED_CONFIG). On error, err gets one line naming the culprit. cfg must be freed with
 * pwd_config_free in every case. */
int pwd_config_load(pwd_config *cfg, int argc, char **argv, char *err, size_t errlen);
void pwd_config_free(pwd_config *cfg);
const char *pwd_config_help(void);

#endif
