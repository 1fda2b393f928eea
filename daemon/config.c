/* pushwired's configuration: one table of options, applied in layers (defaults < file < env <
 * flags). A scalar from a later layer replaces the earlier value; a list (--raw, --exec pairs)
 * given in a later layer replaces the whole list of the earlier ones, so a flag never mixes
 * with a file's list in surprising ways. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <pushwire.h>

#include "log.h"

enum layer { LAYER_DEFAULT, LAYER_FILE, LAYER_ENV, LAYER_FLAGS };

typedef enum value_kind {
  V_LISTEN, V_PATH, V_COUNT, V_BYTES, V_BOOL, V_SECRET, V_RAW, V_EXEC, V_TOPIC, V_TEXT,
  V_POLICY, V_LEVEL, V_CONFIG, V_DEFLATE_SWITCH, V_DEFLATE_NUMBER
} value_kind;

typedef struct option_spec {
  const char *name;
  value_kind kind;
  const char *arg;  /* shown in --help, NULL for a switch */
  const char *help;
} option_spec;

/* The one list of options: flags, file keys and environment names all come from it. */
static const option_spec OPTIONS[] = {
    {"listen", V_LISTEN, "HOST:PORT", "address to serve HTTP and WebSocket on [127.0.0.1:8080]; port 0 = any free port"},
    {"www", V_PATH, "DIR", "serve static files from DIR [none]"},
    {"threads", V_COUNT, "N", "event-loop threads [1]"},
    {"token", V_SECRET, "T", "publishing needs 'Authorization: Bearer T' or ?token=T [none]"},
    {"allow-publish", V_BOOL, NULL, "WebSocket clients may send {\"op\":\"publish\"} [no]"},
    {"raw", V_RAW, "PREFIX", "deliver topics starting with PREFIX raw, not as JSON (repeatable)"},
    {"unix", V_PATH, "PATH", "accept '<topic> <payload>' lines on a Unix socket at PATH [none]"},
    {"exec", V_EXEC, "CMD", "run CMD (sh -c), publish each stdout line; restarted with backoff"},
    {"topic", V_TOPIC, "T", "the topic of the --exec just before it"},
    {"stdin", V_TEXT, "T", "publish each line of standard input to topic T [none]"},
    {"demo", V_BOOL, NULL, "run the built-in demo source (topics demo.*) [no]"},
    {"max-message", V_BYTES, "BYTES", "largest message, publish body or line [1M]"},
    {"max-queued", V_BYTES, "BYTES", "per-client send queue limit [1M]"},
    {"slow-policy", V_POLICY, "P", "when a client's queue is full: close, drop-new, drop-oldest [close]"},
    {"max-connections", V_COUNT, "N", "WebSocket connections at most [100000]"},
    {"tls-cert", V_PATH, "PEM", "also serve TLS (wss://, https://) on --tls-port with this certificate chain [none]"},
    {"tls-key", V_PATH, "PEM", "the private key of --tls-cert"},
    {"tls-ca", V_PATH, "PEM", "TLS clients must present a certificate signed by these CAs [none]"},
    {"tls-port", V_COUNT, "PORT", "the TLS port on the --listen host; 0 = any free port [8443]"},
    {"deflate", V_DEFLATE_SWITCH, NULL, "accept permessage-deflate (RFC 7692) offers: compressed frames [no]"},
    {"deflate-server-no-context", V_DEFLATE_SWITCH, NULL, "compress each message alone: one frame shared by subscribers [no]"},
    {"deflate-client-no-context", V_DEFLATE_SWITCH, NULL, "ask clients to compress each message alone [no]"},
    {"deflate-server-bits", V_DEFLATE_NUMBER, "N", "our deflate window, 2^N bytes, 9..15 [15]"},
    {"deflate-client-bits", V_DEFLATE_NUMBER, "N", "clients' deflate window we accept, 9..15 [15]"},
    {"deflate-level", V_DEFLATE_NUMBER, "N", "zlib compression level 1..9 [6]"},
    {"deflate-mem-level", V_DEFLATE_NUMBER, "N", "zlib memLevel 1..9 [8]"},
    {"deflate-threshold", V_BYTES, "BYTES", "compress messages of at least BYTES [64]"},
    {"log-level", V_LEVEL, "L", "error, warn, info or debug (debug logs every message) [info]"},
    {"config", V_CONFIG, "FILE", "read 'key = value' lines (keys: the long flags) from FILE"},
};
#define NOPTIONS (sizeof OPTIONS / sizeof OPTIONS[0])

/* ---- errors -------------------------------------------------------------------------------- */
typedef struct parse_ctx {
  pwd_config *cfg;
  enum layer layer;
  char where[300]; /* "--threads", "PUSHWIRED_THREADS" or "file:12: threads" */
  char *err;
  size_t errlen;
} parse_ctx;

__attribute__((format(printf, 2, 3))) static int fail(parse_ctx *p, const char *fmt, ...) {
  char text[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  snprintf(p->err, p->errlen, "%s: %s", p->where, text);
  return -1;
}

/* ---- values -------------------------------------------------------------------------------- */
static int set_string(char **field, const char *value) {
  char *copy = strdup(value);
  if (!copy) return -1;
  free(*field);
  *field = copy;
  return 0;
}

static int parse_count(parse_ctx *p, const char *v, long min, long max, long *out) {
  char *end;
  errno = 0;
  long n = strtol(v, &end, 10);
  if (errno || end == v || *end || n < min || n > max)
    return fail(p, "expected a whole number %ld..%ld, got '%s'", min, max, v);
  *out = n;
  return 0;
}

/* "4096", "64K", "1M", "2G" (powers of 1024; an optional trailing "iB" or "B" is allowed). */
static int parse_bytes(parse_ctx *p, const char *v, size_t *out) {
  char *end;
  errno = 0;
  unsigned long long n = strtoull(v, &end, 10);
  unsigned shift = 0;
  if (end != v && *end) {
    switch (toupper((unsigned char)*end)) {
    case 'K': shift = 10; break;
    case 'M': shift = 20; break;
    case 'G': shift = 30; break;
    default: shift = 99;
    }
    end++;
    if (strcasecmp(end, "iB") == 0 || strcasecmp(end, "B") == 0) end += strlen(end);
  }
  if (errno || end == v || *end || v[0] == '-' || shift == 99 || n == 0 ||
      n > (1ULL << 40) >> shift)
    return fail(p, "expected a size such as 65536, 64K or 1M, got '%s'", v);
  *out = (size_t)(n << shift);
  return 0;
}

static int parse_bool(parse_ctx *p, const char *v, int *out) {
  static const char *const yes[] = {"1", "yes", "true", "on"}, *const no[] = {"0", "no", "false", "off"};
  for (int i = 0; i < 4; i++) {
    if (strcasecmp(v, yes[i]) == 0) return *out = 1, 0;
    if (strcasecmp(v, no[i]) == 0) return *out = 0, 0;
  }
  return fail(p, "expected yes or no, got '%s'", v);
}

/* "HOST:PORT", "[V6]:PORT", ":PORT" or "PORT". */
static int parse_listen(parse_ctx *p, const char *v) {
  pwd_config *c = p->cfg;
  const char *colon = strrchr(v, ':');
  char host[256] = "127.0.0.1";
  const char *port = colon ? colon + 1 : v;
  if (colon && colon > v) {
    const char *h = v;
    size_t hl = (size_t)(colon - v);
    if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') h++, hl -= 2; /* [::1]:80 */
    if (hl == 0 || hl >= sizeof host) return fail(p, "bad host in '%s'", v);
    memcpy(host, h, hl);
    host[hl] = '\0';
  }
  long n;
  if (parse_count(p, port, 0, 65535, &n)) return fail(p, "expected HOST:PORT (port 0..65535), got '%s'", v);
  c->port = (int)n;
  return set_string(&c->host, host) || set_string(&c->listen, v);
}

static int parse_policy(parse_ctx *p, const char *v) {
  static const char *const names[] = {"close", "drop-new", "drop-oldest"};
  static const int values[] = {PW_SLOW_CLOSE, PW_SLOW_DROP_NEW, PW_SLOW_DROP_OLDEST};
  for (int i = 0; i < 3; i++)
    if (strcasecmp(v, names[i]) == 0) return p->cfg->slow_policy = values[i], 0;
  return fail(p, "expected close, drop-new or drop-oldest, got '%s'", v);
}

/* The deflate settings pass straight to pw_options.deflate (docs/api.md, Compression); they
 * are checked here so a bad value is one line naming the flag, not pw_server_new failing. */
static int *deflate_switch_field(pwd_config *c, const char *name) {
  return strcmp(name, "deflate") == 0                     ? &c->deflate.enable
         : strcmp(name, "deflate-server-no-context") == 0 ? &c->deflate.server_no_context_takeover
                                                          : &c->deflate.client_no_context_takeover;
}

static int parse_deflate_number(parse_ctx *p, const char *name, const char *v) {
  pwd_config *c = p->cfg;
  int is_bits = strcmp(name, "deflate-server-bits") == 0 || strcmp(name, "deflate-client-bits") == 0;
  long n;
  if (parse_count(p, v, is_bits ? 9 : 1, is_bits ? 15 : 9, &n)) return -1;
  int *field = strcmp(name, "deflate-server-bits") == 0   ? &c->deflate.server_max_window_bits
               : strcmp(name, "deflate-client-bits") == 0 ? &c->deflate.client_max_window_bits
               : strcmp(name, "deflate-level") == 0       ? &c->deflate.level
                                                          : &c->deflate.mem_level;
  *field = (int)n;
  return 0;
}

/* ---- lists ----------------------------------------------------------------------------------- */
static void free_raw(pwd_config *c) {
  for (size_t i = 0; i < c->nraw; i++) free(c->raw[i]);
  free(c->raw);
  c->raw = NULL, c->nraw = 0;
}

static void free_execs(pwd_config *c) {
  for (size_t i = 0; i < c->nexec; i++) free(c->execs[i].command), free(c->execs[i].topic);
  free(c->execs);
  c->execs = NULL, c->nexec = 0;
}

static int add_raw(parse_ctx *p, const char *v) {
  pwd_config *c = p->cfg;
  if (c->raw_layer != (int)p->layer) free_raw(c), c->raw_layer = (int)p->layer;
  char **grown = realloc(c->raw, (c->nraw + 1) * sizeof *grown);
  if (!grown) return fail(p, "out of memory");
  c->raw = grown;
  if (!(c->raw[c->nraw] = strdup(v))) return fail(p, "out of memory");
  c->nraw++;
  return 0;
}

static int add_exec(parse_ctx *p, const char *v) {
  pwd_config *c = p->cfg;
  if (!*v) return fail(p, "empty command");
  if (c->exec_layer != (int)p->layer) free_execs(c), c->exec_layer = (int)p->layer;
  pwd_exec *grown = realloc(c->execs, (c->nexec + 1) * sizeof *grown);
  if (!grown) return fail(p, "out of memory");
  c->execs = grown;
  c->execs[c->nexec] = (pwd_exec){.command = strdup(v)};
  if (!c->execs[c->nexec].command) return fail(p, "out of memory");
  c->nexec++;
  return 0;
}

/* A topic pairs with the --exec just before it (in the same layer). */
static int set_exec_topic(parse_ctx *p, const char *v) {
  pwd_config *c = p->cfg;
  if (c->exec_layer != (int)p->layer || c->nexec == 0 || c->execs[c->nexec - 1].topic)
    return fail(p, "a topic must follow an exec command (--exec CMD --topic T)");
  if (!*v) return fail(p, "empty topic");
  return set_string(&c->execs[c->nexec - 1].topic, v) ? fail(p, "out of memory") : 0;
}

/* Every --exec of the layer just read has its --topic. */
static int check_exec_pairs(parse_ctx *p) {
  pwd_config *c = p->cfg;
  if (c->exec_layer != (int)p->layer) return 0;
  for (size_t i = 0; i < c->nexec; i++)
    if (!c->execs[i].topic)
      return fail(p, "exec '%s' has no topic (--exec CMD --topic T)", c->execs[i].command);
  return 0;
}

/* ---- one option ------------------------------------------------------------------------------ */
static int apply(parse_ctx *p, const option_spec *o, const char *v) {
  pwd_config *c = p->cfg;
  long n;
  int r = 0;
  switch (o->kind) {
  case V_LISTEN: return parse_listen(p, v);
  case V_PATH:
  case V_TEXT:
    if (!*v) return fail(p, "empty value");
    r = set_string(strcmp(o->name, "www") == 0        ? &c->www
                   : strcmp(o->name, "unix") == 0     ? &c->unix_path
                   : strcmp(o->name, "tls-cert") == 0 ? &c->tls_cert
                   : strcmp(o->name, "tls-key") == 0  ? &c->tls_key
                   : strcmp(o->name, "tls-ca") == 0   ? &c->tls_ca
                                                      : &c->stdin_topic, v);
    break;
  case V_SECRET: /* an empty token means "no token" (e.g. PUSHWIRED_TOKEN= unsets a file's) */
    if (!*v) return free(c->token), c->token = NULL, 0;
    r = set_string(&c->token, v);
    break;
  case V_COUNT:
    if (strcmp(o->name, "threads") == 0) {
      if (parse_count(p, v, 1, 64, &n)) return -1;
      c->threads = (int)n;
    } else if (strcmp(o->name, "tls-port") == 0) {
      if (parse_count(p, v, 0, 65535, &n)) return -1;
      c->tls_port = (int)n;
    } else {
      if (parse_count(p, v, 1, 10000000, &n)) return -1;
      c->max_connections = (int)n;
    }
    return 0;
  case V_BYTES: return parse_bytes(p, v, strcmp(o->name, "max-message") == 0   ? &c->max_message
                                      : strcmp(o->name, "max-queued") == 0 ? &c->max_queued
                                                                           : &c->deflate.threshold);
  case V_BOOL: return parse_bool(p, v, strcmp(o->name, "demo") == 0 ? &c->demo : &c->allow_publish);
  case V_RAW: return add_raw(p, v);
  case V_EXEC: return add_exec(p, v);
  case V_TOPIC: return set_exec_topic(p, v);
  case V_POLICY: return parse_policy(p, v);
  case V_LEVEL:
    if ((c->log_level = pwd_log_level_parse(v)) < 0)
      return fail(p, "expected error, warn, info or debug, got '%s'", v);
    return 0;
  case V_DEFLATE_SWITCH: return parse_bool(p, v, deflate_switch_field(c, o->name));
  case V_DEFLATE_NUMBER: return parse_deflate_number(p, o->name, v);
  case V_CONFIG: return 0; /* read before the layers (find_config_file) */
  }
  return r ? fail(p, "out of memory") : 0;
}

static const option_spec *find_option(const char *name, size_t len) {
  for (size_t i = 0; i < NOPTIONS; i++)
    if (strlen(OPTIONS[i].name) == len && strncmp(OPTIONS[i].name, name, len) == 0)
      return &OPTIONS[i];
  return NULL;
}

/* ---- layer: flags ---------------------------------------------------------------------------- */
/* One pass over argv. With apply_values 0 it only validates names and finds --config/--help;
 * with 1 it applies every value (the flags layer, last). */
static int parse_flags(parse_ctx *p, int argc, char **argv, int apply_values, const char **config) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) return PWD_CONFIG_HELP;
    if (strcmp(a, "--version") == 0) return PWD_CONFIG_VERSION;
    snprintf(p->where, sizeof p->where, "%s", a);
    if (strncmp(a, "--", 2) != 0) return fail(p, "unexpected argument (options start with --)");
    const char *eq = strchr(a, '=');
    size_t len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
    const option_spec *o = find_option(a + 2, len);
    if (!o) return fail(p, "unknown option (see --help)");
    snprintf(p->where, sizeof p->where, "--%s", o->name);
    const char *v = eq ? eq + 1 : NULL;
    if (!v && !o->arg) v = "yes"; /* a switch */
    if (!v && i + 1 >= argc) return fail(p, "needs a value (%s)", o->arg);
    if (!v) v = argv[++i];
    if (o->kind == V_CONFIG) *config = v;
    if (apply_values && apply(p, o, v)) return -1;
  }
  snprintf(p->where, sizeof p->where, "command line");
  return apply_values ? check_exec_pairs(p) : 0;
}

/* ---- layer: environment ----------------------------------------------------------------------- */
/* PUSHWIRED_<NAME>, the long name upper-cased with '-' as '_'. */
static void env_name(const option_spec *o, char *out, size_t outlen) {
  int n = snprintf(out, outlen, "PUSHWIRED_%s", o->name);
  for (int i = 10; i < n && (size_t)i < outlen; i++)
    out[i] = out[i] == '-' ? '_' : (char)toupper((unsigned char)out[i]);
}

static int parse_env(parse_ctx *p) {
  for (size_t i = 0; i < NOPTIONS; i++) {
    char name[64];
    env_name(&OPTIONS[i], name, sizeof name);
    const char *v = getenv(name);
    if (!v || OPTIONS[i].kind == V_CONFIG) continue;
    snprintf(p->where, sizeof p->where, "%s", name);
    if (apply(p, &OPTIONS[i], v)) return -1;
  }
  snprintf(p->where, sizeof p->where, "PUSHWIRED_EXEC");
  return check_exec_pairs(p);
}

/* ---- layer: file ------------------------------------------------------------------------------ */
static char *trim(char *s) {
  while (isspace((unsigned char)*s)) s++;
  size_t n = strlen(s);
  while (n > 0 && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
  return s;
}

static int parse_file_line(parse_ctx *p, char *line) {
  char *s = trim(line);
  if (!*s || *s == '#') return 0;
  char *eq = strchr(s, '=');
  if (!eq) return fail(p, "expected 'key = value'");
  *eq = '\0';
  char *key = trim(s), *value = trim(eq + 1);
  const option_spec *o = find_option(key, strlen(key));
  if (!o || o->kind == V_CONFIG) return fail(p, "unknown key '%s'", key);
  return apply(p, o, value);
}

static int parse_file(parse_ctx *p, const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) {
    snprintf(p->where, sizeof p->where, "config file %s", path);
    return fail(p, "%s", strerror(errno));
  }
  char line[8192];
  int r = 0;
  for (int lineno = 1; r == 0 && fgets(line, sizeof line, f); lineno++) {
    snprintf(p->where, sizeof p->where, "%s:%d", path, lineno);
    if (!strchr(line, '\n') && !feof(f)) r = fail(p, "line longer than %zu bytes", sizeof line);
    else r = parse_file_line(p, line);
  }
  fclose(f);
  snprintf(p->where, sizeof p->where, "%s", path);
  return r ? r : check_exec_pairs(p);
}

/* ---- all layers ----------------------------------------------------------------------------- */
static int set_defaults(pwd_config *c) {
  memset(c, 0, sizeof *c);
  c->port = 8080;
  c->threads = 1;
  c->max_message = 1 << 20;
  c->max_queued = 1 << 20;
  c->slow_policy = PW_SLOW_CLOSE;
  c->max_connections = 100000;
  c->log_level = PW_LOG_INFO;
  c->tls_port = 8443;
  return set_string(&c->host, "127.0.0.1") || set_string(&c->listen, "127.0.0.1:8080");
}

int pwd_config_load(pwd_config *cfg, int argc, char **argv, char *err, size_t errlen) {
  parse_ctx p = {.cfg = cfg, .err = err, .errlen = errlen, .where = "pushwired"};
  err[0] = '\0';
  if (set_defaults(cfg)) return fail(&p, "out of memory");
  const char *config = getenv("PUSHWIRED_CONFIG");
  int r = parse_flags(&p, argc, argv, 0, &config); /* names checked, --config found */
  if (r != 0) return r;
  if (config && *config) {
    if (set_string(&cfg->config_file, config)) return fail(&p, "out of memory");
    p.layer = LAYER_FILE;
    if (parse_file(&p, config)) return -1;
  }
  p.layer = LAYER_ENV;
  if (parse_env(&p)) return -1;
  p.layer = LAYER_FLAGS;
  return parse_flags(&p, argc, argv, 1, &config);
}

void pwd_config_free(pwd_config *c) {
  free(c->listen), free(c->host), free(c->www), free(c->token), free(c->unix_path);
  free(c->tls_cert), free(c->tls_key), free(c->tls_ca);
  free(c->stdin_topic), free(c->config_file);
  free_raw(c);
  free_execs(c);
  memset(c, 0, sizeof *c);
}

/* ---- help ----------------------------------------------------------------------------------- */
const char *pwd_config_help(void) {
  static char text[6000];
  if (text[0]) return text;
  size_t n = (size_t)snprintf(text, sizeof text,
      "Usage: pushwired [OPTIONS]\n"
      "Push messages to WebSocket clients on /ws; publish over HTTP, a Unix socket, programs' output\n"
      "or stdin. Clients send {\"op\":\"subscribe\",\"topic\":\"T\"} and receive {\"topic\":\"T\",\"data\":...}.\n\n"
      "Options (each also PUSHWIRED_<NAME> in the environment and 'name = value' in a --config file;\n"
      "flags override the environment, which overrides the file):\n");
  for (size_t i = 0; i < NOPTIONS && n < sizeof text; i++) {
    char flag[48];
    snprintf(flag, sizeof flag, "--%s%s%s", OPTIONS[i].name, OPTIONS[i].arg ? " " : "",
             OPTIONS[i].arg ? OPTIONS[i].arg : "");
    n += (size_t)snprintf(text + n, sizeof text - n, "  %-28s %s\n", flag, OPTIONS[i].help);
  }
  if (n < sizeof text)
    snprintf(text + n, sizeof text - n,
             "  %-28s %s\n  %-28s %s\n\nEndpoints: /ws, POST /publish/<topic>, GET /healthz, GET /metrics,\n"
             "static files from --www. Signals: SIGTERM/SIGINT drain and exit 0, SIGHUP reloads\n"
             "token, allow-publish, raw and log-level. Exit codes: 0 ok, 1 cannot listen/run,\n"
             "2 bad configuration. Details: docs/pushwired.md\n",
             "--help", "this text", "--version", "print the version");
  return text;
}
