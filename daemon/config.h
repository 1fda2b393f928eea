/* pushwired's configuration: defaults, then a config file, then PUSHWIRED_* environment
 * variables, then command-line flags (each layer overrides the one before). The file format is
 * one "key = value" per line, keys being the long flag names (docs/pushwired.md). */
#ifndef PUSHWIRED_CONFIG_H
#define PUSHWIRED_CONFIG_H

#include <stddef.h>

typedef struct pwd_exec {
  char *command; /* run by /bin/sh -c */
  char *topic;   /* each stdout line is published here */
} pwd_exec;

/* Every string is owned by the config (freed by pwd_config_free). */
typedef struct pwd_config {
  char *listen;         /* as given: "127.0.0.1:8080" */
  char *host;           /* parsed from listen */
  int port;             /* 0: the OS picks one (logged) */
  char *www;            /* static files root, or NULL */
  int threads;          /* event-loop threads */
  char *token;          /* publishing token, or NULL: publishing needs none */
  int allow_publish;    /* WebSocket clients may publish */
  char **raw;           /* topic prefixes delivered raw (not wrapped in JSON) */
  size_t nraw;
  char *unix_path;      /* Unix-domain socket for "<topic> <payload>" lines, or NULL */
  pwd_exec *execs;      /* --exec/--topic pairs */
  size_t nexec;
  char *stdin_topic;    /* publish stdin lines here, or NULL */
  int demo;             /* run the built-in demo source */
  size_t max_message;   /* bytes: largest message in or out */
  size_t max_queued;    /* bytes: per-client send queue limit */
  int slow_policy;      /* pw_slow_policy */
  int max_connections;
  int log_level;        /* PW_LOG_ERROR .. PW_LOG_DEBUG */
  char *tls_cert;       /* PEM certificate chain: also serve TLS (wss://) on tls_port; or NULL */
  char *tls_key;        /* PEM private key of tls_cert */
  char *tls_ca;         /* PEM CAs: ask clients for certificates and require one; or NULL */
  int tls_port;         /* the TLS port on the listen host (0: the OS picks one) */
  /* permessage-deflate, copied into pw_options.deflate; 0 = the library's default. The
   * other fields matter only with enable. */
  struct {
    int enable, server_no_context_takeover, client_no_context_takeover;
    int server_max_window_bits, client_max_window_bits, level, mem_level;
    size_t threshold;
  } deflate;
  char *config_file;    /* the file read, or NULL */
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
