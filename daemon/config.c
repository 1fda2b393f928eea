/* pushwired's configuration: one table of options, applied in layers (defaults < file < env <
 * flags). A scalar from a later layer replaces the earlier value; a list (--raw, --exec pairs)
 * given in a later layer replaces the whole list of the earlier ones, so a flag never mixes
 * with a file's list in surprising ways. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <pushwire.h>

#include "log.h"

enum layer { LAYER_DEFAULT, LAYER_FILE, LAYER_ENV, LAYER_FLAGS };

typedef struct parse_ctx parse_ctx;

/* How a row's value is parsed and stored; CUSTOM rows have a parser of their own. */
typedef enum option_type { T_STRING, T_INT, T_SIZE, T_BOOL, T_ENUM, T_CUSTOM } option_type;

typedef struct enum_name {
  const char *name;
  int value;
} enum_name;

/* One option: its flag, file key and PUSHWIRED_* name, where it goes and what it allows.
 * Bounds: for a field of the daemon's own, its range; for a field of pw_options (an offset
 * inside pwd_config.server) only what the daemon refuses although the library takes it: the
 * library's 0 = "default" (the daemon's defaults are explicit) and window bits 8 (= 9). The
 * range proper is pw_options_check's, which judges every such value once parsed, and its
 * sentence is the error (check_with_library). */
typedef struct option_spec {
  const char *name;
  option_type type;
  size_t offset;          /* into pwd_config: where the value goes (not CUSTOM) */
  long long min, max;     /* T_INT, T_SIZE */
  const enum_name *names; /* T_ENUM, {NULL} ended */
  int (*parse)(parse_ctx *p, const char *v); /* T_CUSTOM */
  const char *arg;                           /* shown in --help, NULL for a switch */
  const char *help;
} option_spec;

/* ---- errors -------------------------------------------------------------------------------- */
struct parse_ctx {
  pwd_config *cfg;
  enum layer layer;
  char where[300]; /* "--threads", "PUSHWIRED_THREADS" or "file:12: threads" */
  char *err;
  size_t errlen;
};

__attribute__((format(printf, 2, 3))) static int fail(parse_ctx *p, const char *fmt, ...) {
  char text[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  snprintf(p->err, p->errlen, "%s: %s", p->where, text);
  return -1;
}

/* ---- values: one parser per type ------------------------------------------------------------ */
/* Fields are reached by offset, so values are copied in and out with memcpy: one helper for
 * char * and const char * strings alike (pw_options's paths are const). */
static char *string_at(const void *field) {
  char *s;
  memcpy(&s, field, sizeof s);
  return s;
}

static int set_string(void *field, const char *value) {
  char *copy = strdup(value);
  if (!copy) return -1;
  free(string_at(field));
  memcpy(field, &copy, sizeof copy);
  return 0;
}

static int parse_whole(parse_ctx *p, const char *v, long long min, long long max, long long *out) {
  char *end;
  errno = 0;
  long long n = strtoll(v, &end, 10);
  if (errno == ERANGE || end == v || *end) return fail(p, "expected a whole number, got '%s'", v);
  if (n >= min && n <= max) return *out = n, 0;
  if (min > INT_MIN && max < INT_MAX)
    return fail(p, "expected a whole number %lld..%lld, got '%s'", min, max, v);
  return n < min ? fail(p, "expected a whole number of at least %lld, got '%s'", min, v)
                 : fail(p, "expected a whole number of at most %lld, got '%s'", max, v);
}

static int parse_int(parse_ctx *p, const option_spec *o, void *field, const char *v) {
  long long n;
  if (parse_whole(p, v, o->min, o->max, &n)) return -1;
  int value = (int)n;
  memcpy(field, &value, sizeof value);
  return 0;
}

/* "4096", "64K", "1M", "2G" (powers of 1024; an optional trailing "iB" or "B" is allowed). */
static int parse_size(parse_ctx *p, const option_spec *o, void *field, const char *v) {
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
  if (errno || end == v || *end || v[0] == '-' || shift == 99 || n < (unsigned long long)o->min ||
      n > (unsigned long long)o->max >> shift)
    return fail(p, "expected a size such as 65536, 64K or 1M, got '%s'", v);
  size_t value = (size_t)(n << shift);
  memcpy(field, &value, sizeof value);
  return 0;
}

static int parse_bool(parse_ctx *p, const option_spec *o, void *field, const char *v) {
  static const char *const yes[] = {"1", "yes", "true", "on"};
  static const char *const no[] = {"0", "no", "false", "off"};
  (void)o;
  for (int i = 0; i < 4; i++) {
    int value = strcasecmp(v, yes[i]) == 0 ? 1 : strcasecmp(v, no[i]) == 0 ? 0 : -1;
    if (value >= 0) return memcpy(field, &value, sizeof value), 0;
  }
  return fail(p, "expected yes or no, got '%s'", v);
}

/* An enum field is int-sized (pw_slow_policy is). The error lists the names: "a, b or c". */
static int parse_enum(parse_ctx *p, const option_spec *o, void *field, const char *v) {
  char expected[200] = "";
  size_t n = 0;
  for (const enum_name *e = o->names; e->name; e++) {
    if (strcasecmp(v, e->name) == 0) return memcpy(field, &e->value, sizeof e->value), 0;
    const char *sep = e == o->names ? "" : e[1].name ? ", " : " or ";
    if (n < sizeof expected)
      n += (size_t)snprintf(expected + n, sizeof expected - n, "%s%s", sep, e->name);
  }
  return fail(p, "expected %s, got '%s'", expected, v);
}

static int parse_string(parse_ctx *p, const option_spec *o, void *field, const char *v) {
  (void)o;
  if (!*v) return fail(p, "empty value");
  return set_string(field, v) ? fail(p, "out of memory") : 0;
}

/* ---- values with behaviour of their own (T_CUSTOM) ------------------------------------------- */
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
  long long n;
  if (parse_whole(p, port, 0, 65535, &n))
    return fail(p, "expected HOST:PORT (port 0..65535), got '%s'", v);
  c->server.port = (int)n;
  return set_string(&c->host, host) || set_string(&c->listen, v) ? fail(p, "out of memory") : 0;
}

/* An empty token means "no token" (e.g. PUSHWIRED_TOKEN= unsets a file's). */
static int parse_token(parse_ctx *p, const char *v) {
  if (!*v) return free(p->cfg->token), p->cfg->token = NULL, 0;
  return set_string(&p->cfg->token, v) ? fail(p, "out of memory") : 0;
}

static int parse_log_level(parse_ctx *p, const char *v) {
  int level = pwd_log_level_parse(v);
  if (level < 0) return fail(p, "expected error, warn, info or debug, got '%s'", v);
  p->cfg->server.log_level = level;
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

/* ---- the table ------------------------------------------------------------------------------ */
/* Read before the layers (pwd_config_load), skipped by them. */
static int read_before_layers(parse_ctx *p, const char *v) { return (void)p, (void)v, 0; }

static const enum_name SLOW_POLICIES[] = {{"close", PW_SLOW_CLOSE},
                                          {"drop-new", PW_SLOW_DROP_NEW},
                                          {"drop-oldest", PW_SLOW_DROP_OLDEST},
                                          {NULL, 0}};
_Static_assert(sizeof(pw_slow_policy) == sizeof(int), "enum fields are stored as int");

#define CFG(field) offsetof(pwd_config, field)
#define LIB(field) offsetof(pwd_config, server.field)
#define OPT_STRING(n, f, a, h) \
  { .name = n, .type = T_STRING, .offset = f, .arg = a, .help = h }
#define OPT_INT(n, f, lo, a, h) \
  { .name = n, .type = T_INT, .offset = f, .min = lo, .max = INT_MAX, .arg = a, .help = h }
#define OPT_SIZE(n, f, h) \
  { .name = n, .type = T_SIZE, .offset = f, .min = 1, .max = 1LL << 40, .arg = "BYTES", .help = h }
#define OPT_BOOL(n, f, h) \
  { .name = n, .type = T_BOOL, .offset = f, .help = h }
#define OPT_ENUM(n, f, e, a, h) \
  { .name = n, .type = T_ENUM, .offset = f, .names = e, .arg = a, .help = h }
#define OPT_CUSTOM(n, fn, a, h) \
  { .name = n, .type = T_CUSTOM, .parse = fn, .arg = a, .help = h }

/* The one list of options: flags, file keys and environment names all come from it. Every
 * int row is a pw_options field, so its maximum is INT_MAX (the library's range decides);
 * a minimum of INT_MIN leaves the lower end to the library too. */
static const option_spec OPTIONS[] = {
    OPT_CUSTOM("listen", parse_listen, "HOST:PORT",
               "address to serve HTTP and WebSocket on [127.0.0.1:8080]; port 0 = any free port"),
    OPT_STRING("www", CFG(www), "DIR", "serve static files from DIR [none]"),
    OPT_INT("threads", LIB(threads), 1, "N", "event-loop threads [1]"),
    OPT_CUSTOM("token", parse_token, "T",
               "publishing needs 'Authorization: Bearer T' or ?token=T [none]"),
    OPT_BOOL("allow-publish", CFG(allow_publish),
             "WebSocket clients may send {\"op\":\"publish\"} [no]"),
    OPT_CUSTOM("raw", add_raw, "PREFIX",
               "deliver topics starting with PREFIX raw, not as JSON (repeatable)"),
    OPT_STRING("unix", CFG(unix_path), "PATH",
               "accept '<topic> <payload>' lines on a Unix socket at PATH [none]"),
    OPT_CUSTOM("exec", add_exec, "CMD",
               "run CMD (sh -c), publish each stdout line; restarted with backoff"),
    OPT_CUSTOM("topic", set_exec_topic, "T", "the topic of the --exec just before it"),
    OPT_STRING("stdin", CFG(stdin_topic), "T",
               "publish each line of standard input to topic T [none]"),
    OPT_BOOL("demo", CFG(demo), "run the built-in demo source (topics demo.*) [no]"),
    OPT_SIZE("max-message", CFG(max_message), "largest message, publish body or line [1M]"),
    OPT_SIZE("max-queued", LIB(max_queued_bytes), "per-client send queue limit [1M]"),
    OPT_ENUM("slow-policy", LIB(slow_policy), SLOW_POLICIES, "P",
             "when a client's queue is full: close, drop-new, drop-oldest [close]"),
    OPT_INT("max-connections", LIB(max_connections), 1, "N",
            "WebSocket connections at most [100000]"),
    OPT_STRING("tls-cert", LIB(tls.cert_file), "PEM",
               "also serve TLS (wss://, https://) on --tls-port with this certificate chain "
               "[none]"),
    OPT_STRING("tls-key", LIB(tls.key_file), "PEM", "the private key of --tls-cert"),
    OPT_STRING("tls-ca", LIB(tls.ca_file), "PEM",
               "TLS clients must present a certificate signed by these CAs [none]"),
    OPT_INT("tls-port", LIB(tls.port), INT_MIN, "PORT",
            "the TLS port on the --listen host; 0 = any free port [8443]"),
    OPT_BOOL("deflate", LIB(deflate.enable),
             "accept permessage-deflate (RFC 7692) offers: compressed frames [no]"),
    OPT_BOOL("deflate-server-no-context", LIB(deflate.server_no_context_takeover),
             "compress each message alone: one frame shared by subscribers [no]"),
    OPT_BOOL("deflate-client-no-context", LIB(deflate.client_no_context_takeover),
             "ask clients to compress each message alone [no]"),
    OPT_INT("deflate-server-bits", LIB(deflate.server_max_window_bits), 9, "N",
            "our deflate window, 2^N bytes, 9..15 [15]"),
    OPT_INT("deflate-client-bits", LIB(deflate.client_max_window_bits), 9, "N",
            "clients' deflate window we accept, 9..15 [15]"),
    OPT_INT("deflate-level", LIB(deflate.level), 1, "N", "zlib compression level 1..9 [6]"),
    OPT_INT("deflate-mem-level", LIB(deflate.mem_level), 1, "N", "zlib memLevel 1..9 [8]"),
    OPT_SIZE("deflate-threshold", LIB(deflate.threshold),
             "compress messages of at least BYTES [64]"),
    OPT_CUSTOM("log-level", parse_log_level, "L",
               "error, warn, info or debug (debug logs every message) [info]"),
    OPT_CUSTOM("config", read_before_layers, "FILE",
               "read 'key = value' lines (keys: the long flags) from FILE"),
};
#define NOPTIONS (sizeof OPTIONS / sizeof OPTIONS[0])

static int is_config(const option_spec *o) { return o->parse == read_before_layers; }

/* ---- one option ------------------------------------------------------------------------------ */
static int is_library_field(const option_spec *o) {
  size_t base = offsetof(pwd_config, server);
  return o->type != T_CUSTOM && o->offset >= base && o->offset < base + sizeof(pw_options);
}

/* A pw_options value judged by the library, the one place its range is checked: in a probe
 * that is otherwise zero (every default), so a failure is this value's alone and the
 * library's sentence names what is allowed. Strings have no range; how the TLS files go
 * together is pw_server_new's to judge. */
static int check_with_library(parse_ctx *p, const option_spec *o) {
  if (!is_library_field(o) || o->type == T_STRING) return 0;
  size_t at = o->offset - offsetof(pwd_config, server);
  size_t width = o->type == T_SIZE ? sizeof(size_t) : sizeof(int);
  pw_options probe = {0};
  char why[256];
  memcpy((char *)&probe + at, (const char *)p->cfg + o->offset, width);
  return pw_options_check(&probe, why, sizeof why) == 0 ? 0 : fail(p, "%s", why);
}

typedef int (*type_parser)(parse_ctx *p, const option_spec *o, void *field, const char *v);
static const type_parser PARSERS[] = {
    [T_STRING] = parse_string, [T_INT] = parse_int,   [T_SIZE] = parse_size,
    [T_BOOL] = parse_bool,     [T_ENUM] = parse_enum,
};

static int apply(parse_ctx *p, const option_spec *o, const char *v) {
  int r =
      o->type == T_CUSTOM ? o->parse(p, v) : PARSERS[o->type](p, o, (char *)p->cfg + o->offset, v);
  return r != 0 ? r : check_with_library(p, o);
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
    if (is_config(o)) *config = v;
    if (apply_values && apply(p, o, v)) return -1;
  }
  snprintf(p->where, sizeof p->where, "command line");
  return apply_values ? check_exec_pairs(p) : 0;
}

/* ---- layer: environment ---------------------------------------------------------------------- */
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
    if (!v || is_config(&OPTIONS[i])) continue;
    snprintf(p->where, sizeof p->where, "%s", name);
    if (apply(p, &OPTIONS[i], v)) return -1;
  }
  snprintf(p->where, sizeof p->where, "PUSHWIRED_EXEC");
  return check_exec_pairs(p);
}

/* ---- layer: file ----------------------------------------------------------------------------- */
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
  if (!o || is_config(o)) return fail(p, "unknown key '%s'", key);
  size_t n = strlen(p->where);
  snprintf(p->where + n, sizeof p->where - n, ": %s", o->name);
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
  c->server.port = 8080;
  c->server.threads = 1;
  c->max_message = 1 << 20;
  c->server.max_queued_bytes = 1 << 20;
  c->server.slow_policy = PW_SLOW_CLOSE;
  c->server.max_connections = 100000;
  c->server.log_level = PW_LOG_INFO;
  c->server.tls.port = 8443;
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
  for (size_t i = 0; i < NOPTIONS; i++)
    if (OPTIONS[i].type == T_STRING) free(string_at((char *)c + OPTIONS[i].offset));
  free(c->listen), free(c->host), free(c->token), free(c->config_file);
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
                              "Push messages to WebSocket clients on /ws; publish over HTTP, a "
                              "Unix socket, programs' output\n"
                              "or stdin. Clients send {\"op\":\"subscribe\",\"topic\":\"T\"} and "
                              "receive {\"topic\":\"T\",\"data\":...}.\n\n"
                              "Options (each also PUSHWIRED_<NAME> in the environment and 'name = "
                              "value' in a --config file;\n"
                              "flags override the environment, which overrides the file):\n");
  for (size_t i = 0; i < NOPTIONS && n < sizeof text; i++) {
    char flag[48];
    snprintf(flag, sizeof flag, "--%s%s%s", OPTIONS[i].name, OPTIONS[i].arg ? " " : "",
             OPTIONS[i].arg ? OPTIONS[i].arg : "");
    n += (size_t)snprintf(text + n, sizeof text - n, "  %-28s %s\n", flag, OPTIONS[i].help);
  }
  if (n < sizeof text)
    snprintf(text + n, sizeof text - n,
             "  %-28s %s\n  %-28s %s\n\nEndpoints: /ws, POST /publish/<topic>, GET /healthz, GET "
             "/metrics,\n"
             "static files from --www. Signals: SIGTERM/SIGINT drain and exit 0, SIGHUP reloads\n"
             "token, allow-publish, raw and log-level. Exit codes: 0 ok, 1 cannot listen/run,\n"
             "2 bad configuration. Details: docs/pushwired.md\n",
             "--help", "this text", "--version", "print the version");
  return text;
}
