/* permessage-deflate (RFC 7692): offer parsing and negotiation, then the zlib codec. The notes
 * on how the connection code uses it, and on the choices made (window bits 8, case, memory),
 * are at the top of deflate.h. */
#include "deflate.h"

#include "util.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* ---- configuration -------------------------------------------------------------------------- */
/* Each default has one home: the window bits here (resolve), the level and mem level in
 * pw__deflater_new, the threshold in pw__deflate_wanted. */

/* The window bits of a config with their defaults applied and 8 raised to 9 (see deflate.h). */
typedef struct resolved {
  int server_bits, client_bits;
} resolved;

static int bits_or_default(int bits) { return bits == 0 ? 15 : bits < 9 ? 9 : bits; }

static resolved resolve(const struct pw_deflate_options *cfg) {
  resolved r;
  r.server_bits = bits_or_default(cfg->server_max_window_bits);
  r.client_bits = bits_or_default(cfg->client_max_window_bits);
  return r;
}

int pw__deflate_wanted(const struct pw_deflate_options *cfg, size_t len) {
  size_t threshold = cfg->threshold ? cfg->threshold : PW__DEFLATE_DEFAULT_THRESHOLD;
  return cfg->enable && len >= threshold;
}

/* ---- the Sec-WebSocket-Extensions grammar (RFC 6455 9.1) -------------------------------------
 *   extension-list = 1#extension       (empty list elements are skipped, as #rule allows)
 *   extension = extension-token *( ";" extension-param )
 *   extension-param = token [ "=" (token | quoted-string) ]
 *   "When using the quoted-string syntax variant, the value after quoted-string unescaping
 *    MUST conform to the 'token' ABNF."
 * Optional whitespace (SP, HTAB) is allowed around the separators ',', ';' and '=' (RFC 2616's
 * implied LWS, which RFC 6455 uses). */

typedef struct cursor {
  const char *p, *end;
} cursor;

typedef struct span {
  const char *p;
  size_t n;
} span;

/* A parameter value after unescaping; only its first bytes are kept (valid values are 1 or
 * 2 digits), len is the full length. */
typedef struct param_value {
  int present;
  size_t len;
  char text[4];
} param_value;

static int is_tchar(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return 1;
  return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static void skip_ows(cursor *c) {
  while (c->p < c->end && (*c->p == ' ' || *c->p == '\t')) c->p++;
}

static int at(const cursor *c, char ch) { return c->p < c->end && *c->p == ch; }

static int parse_token(cursor *c, span *s) {
  s->p = c->p;
  while (c->p < c->end && is_tchar((unsigned char)*c->p)) c->p++;
  s->n = (size_t)(c->p - s->p);
  return s->n > 0;
}

static void value_add(param_value *v, char ch) {
  if (v->len < sizeof v->text) v->text[v->len] = ch;
  v->len++;
}

/* quoted-string = DQUOTE *( qdtext | quoted-pair ) DQUOTE, whose unescaped text must be a token:
 * so every character, escaped or not, must be a tchar, and there must be at least one. */
static int parse_quoted(cursor *c, param_value *v) {
  c->p++; /* the opening DQUOTE */
  while (c->p < c->end && *c->p != '"') {
    unsigned char ch = (unsigned char)*c->p++;
    if (ch == '\\') {
      if (c->p == c->end) return 0;
      ch = (unsigned char)*c->p++;
    }
    if (!is_tchar(ch)) return 0;
    value_add(v, (char)ch);
  }
  if (c->p == c->end) return 0; /* unterminated */
  c->p++;
  return v->len > 0;
}

static int parse_value(cursor *c, param_value *v) {
  v->present = 1;
  if (at(c, '"')) return parse_quoted(c, v);
  span s;
  if (!parse_token(c, &s)) return 0;
  for (size_t i = 0; i < s.n; i++) value_add(v, s.p[i]);
  return 1;
}

static int span_is(span s, const char *lower) {
  size_t n = strlen(lower);
  if (s.n != n) return 0;
  for (size_t i = 0; i < n; i++) {
    char ch = s.p[i];
    if (ch >= 'A' && ch <= 'Z') ch = (char)(ch - 'A' + 'a');
    if (ch != lower[i]) return 0;
  }
  return 1;
}

/* ---- one permessage-deflate offer (RFC 7692 section 7.1) ------------------------------------ */

enum { P_SERVER_NCT, P_CLIENT_NCT, P_SERVER_BITS, P_CLIENT_BITS, P_COUNT };
static const char *const param_names[P_COUNT] = {
    "server_no_context_takeover", "client_no_context_takeover", "server_max_window_bits",
    "client_max_window_bits"};

typedef struct offer {
  int is_pmd;   /* the extension is permessage-deflate */
  int declined; /* RFC 7692 5: unknown, duplicate or invalid parameter */
  unsigned seen;
  int server_nct, client_nct;
  int server_bits; /* 0: absent, else 8..15 */
  int client_bits; /* 0: absent, -1: present without a value, else 8..15 */
} offer;

/* RFC 7692 7.1.2.1/7.1.2.2: "a decimal integer value without leading zeroes between 8 to 15,
 * inclusive". Returns the value, or 0 if the text is not one. */
static int window_bits_value(const param_value *v) {
  if (!v->present || v->len == 0 || v->len > 2 || v->text[0] == '0') return 0;
  int n = 0;
  for (size_t i = 0; i < v->len; i++) {
    if (v->text[i] < '0' || v->text[i] > '9') return 0;
    n = n * 10 + (v->text[i] - '0');
  }
  return n >= 8 && n <= 15 ? n : 0;
}

static int param_id(span name) {
  for (int i = 0; i < P_COUNT; i++)
    if (span_is(name, param_names[i])) return i;
  return -1;
}

/* Record one parameter of a permessage-deflate offer; anything RFC 7692 section 5 lists as a
 * reason to decline marks the offer declined. */
static void offer_param(offer *o, span name, const param_value *v) {
  int id = param_id(name);
  if (id < 0 || (o->seen & (1u << id))) {
    o->declined = 1; /* "not defined for use in an offer", or "multiple ... same name" */
    return;
  }
  o->seen |= 1u << id;
  int bits = window_bits_value(v);
  switch (id) {
  case P_SERVER_NCT: /* "This extension parameter has no value." */
  case P_CLIENT_NCT:
    if (v->present) o->declined = 1;
    else if (id == P_SERVER_NCT) o->server_nct = 1;
    else o->client_nct = 1;
    break;
  case P_SERVER_BITS: /* a value is required */
    o->server_bits = bits;
    o->declined |= bits == 0;
    break;
  default: /* P_CLIENT_BITS: "no value or a decimal integer value ..." */
    o->client_bits = v->present ? bits : -1;
    o->declined |= v->present && bits == 0;
    break;
  }
}

/* extension = token *( OWS ";" OWS token [ OWS "=" OWS value ] ), ending at ',' or the end.
 * Returns 1, or 0 if malformed. */
static int parse_extension(cursor *c, offer *o) {
  span name;
  memset(o, 0, sizeof *o);
  if (!parse_token(c, &name)) return 0;
  o->is_pmd = span_is(name, "permessage-deflate");
  for (;;) {
    skip_ows(c);
    if (c->p == c->end || at(c, ',')) return 1;
    if (!at(c, ';')) return 0;
    c->p++;
    skip_ows(c);
    span pname;
    param_value v = {0};
    if (!parse_token(c, &pname)) return 0;
    skip_ows(c);
    if (at(c, '=')) {
      c->p++;
      skip_ows(c);
      if (!parse_value(c, &v)) return 0;
    }
    if (o->is_pmd) offer_param(o, pname, &v);
  }
}

/* The next list element: 1 (in *o), 0 at the end, -1 if malformed. Empty elements skipped. */
static int next_extension(cursor *c, offer *o) {
  for (;;) {
    skip_ows(c);
    if (c->p == c->end) return 0;
    if (!at(c, ',')) break;
    c->p++;
  }
  if (!parse_extension(c, o)) return -1;
  if (c->p < c->end) c->p++; /* the ',' */
  return 1;
}

static int value_well_formed(const char *value, size_t len) {
  cursor c = {value, value + len};
  offer o;
  int rc;
  while ((rc = next_extension(&c, &o)) == 1)
    ;
  return rc == 0;
}

/* server_max_window_bits (7.1.2.1): an offered value N is accepted with min(N, ours), and
 * declined if that would be 8 (zlib cannot compress raw DEFLATE with a 256-byte window). Not
 * offered: we may still announce a smaller window ("A server MAY include ... even if the
 * extension negotiation offer being accepted ... didn't include" it), which lets the client
 * allocate less. Returns 0 to decline. */
static int agree_server_bits(const resolved *r, const offer *o, int *bits) {
  if (o->server_bits == 0) {
    *bits = r->server_bits;
    return 1;
  }
  if (o->server_bits < 9) return 0;
  *bits = o->server_bits < r->server_bits ? o->server_bits : r->server_bits;
  return 1;
}

/* client_max_window_bits (7.1.2.2): the server may answer min(offered, ours) only if the
 * client offered the parameter ("If a received extension negotiation offer doesn't have the
 * client_max_window_bits extension parameter, the corresponding extension negotiation response
 * to the offer MUST NOT include" it). A client that cannot be limited while we want a limit
 * is declined ("The server doesn't support the offered configuration"): the limit is our
 * inflater's memory bound. Returns 0 to decline. */
static int agree_client_bits(const resolved *r, const offer *o, int *bits) {
  if (o->client_bits == 0) {
    *bits = 15;
    return r->client_bits == 15;
  }
  int offered = o->client_bits < 0 ? 15 : o->client_bits;
  *bits = offered < r->client_bits ? offered : r->client_bits;
  return 1;
}

static int agree(const struct pw_deflate_options *cfg, const offer *o, pw__deflate_params *out) {
  resolved r = resolve(cfg);
  int server_bits, client_bits;
  if (!o->is_pmd || o->declined || !agree_server_bits(&r, o, &server_bits) ||
      !agree_client_bits(&r, o, &client_bits))
    return 0;
  /* 7.1.1.1: an offered server_no_context_takeover must be accepted (we always can); 7.1.1.2:
   * an offered client_no_context_takeover is the client's promise, so we echo it. */
  out->server_no_context_takeover = (uint8_t)(o->server_nct || cfg->server_no_context_takeover);
  out->client_no_context_takeover = (uint8_t)(o->client_nct || cfg->client_no_context_takeover);
  out->server_max_window_bits = (uint8_t)server_bits;
  out->client_max_window_bits = (uint8_t)client_bits;
  out->server_bits_offered = (uint8_t)(o->server_bits != 0);
  return 1;
}

/* The first acceptable offer of a well-formed value, or 0. */
static int first_acceptable(const struct pw_deflate_options *cfg, const char *value, size_t len,
                            pw__deflate_params *out) {
  cursor c = {value, value + len};
  offer o;
  while (next_extension(&c, &o) == 1)
    if (agree(cfg, &o, out)) return 1;
  return 0;
}

int pw__deflate_negotiate(const struct pw_deflate_options *cfg, const char *value, size_t value_len,
                          pw__deflate_params *out) {
  if (!cfg || !out || (!value && value_len)) return PW_EINVAL;
  if (!value)
    value = ""; /* no header: an empty list (NULL + 0 would be pointer arithmetic on NULL) */
  memset(out, 0, sizeof *out);
  if (!value_well_formed(value, value_len)) return PW__PMD_MALFORMED;
  if (!cfg->enable) return PW__PMD_NONE;
  return first_acceptable(cfg, value, value_len, out) ? PW__PMD_ACCEPT : PW__PMD_NONE;
}

static int is_extensions_header(const pw_header *h) {
  span name = {h->name, h->name_len};
  return h->name && span_is(name, "sec-websocket-extensions");
}

int pw__deflate_negotiate_request(const struct pw_deflate_options *cfg, const pw_request *req,
                                  pw__deflate_params *out) {
  if (!cfg || !req || !out || (!req->headers && req->header_count)) return PW_EINVAL;
  memset(out, 0, sizeof *out);
  for (size_t i = 0; i < req->header_count; i++)
    if (is_extensions_header(&req->headers[i]) &&
        !value_well_formed(req->headers[i].value, req->headers[i].value_len))
      return PW__PMD_MALFORMED;
  for (size_t i = 0; cfg->enable && i < req->header_count; i++)
    if (is_extensions_header(&req->headers[i]) &&
        first_acceptable(cfg, req->headers[i].value, req->headers[i].value_len, out))
      return PW__PMD_ACCEPT;
  return PW__PMD_NONE;
}

/* server_max_window_bits is said when the offer had it (accepting it means answering it) or
 * when ours is below the default 15; client_max_window_bits only below 15 (agree_client_bits
 * never sets that unless the client offered the parameter). */
size_t pw__deflate_response(const pw__deflate_params *p, char out[PW__DEFLATE_RESPONSE_MAX]) {
  int n = snprintf(out, PW__DEFLATE_RESPONSE_MAX, "permessage-deflate%s%s",
                   p->server_no_context_takeover ? "; server_no_context_takeover" : "",
                   p->client_no_context_takeover ? "; client_no_context_takeover" : "");
  if (p->server_bits_offered || (p->server_max_window_bits && p->server_max_window_bits < 15))
    n += snprintf(out + n, (size_t)(PW__DEFLATE_RESPONSE_MAX - n), "; server_max_window_bits=%d",
                  p->server_max_window_bits);
  if (p->client_max_window_bits && p->client_max_window_bits < 15)
    n += snprintf(out + n, (size_t)(PW__DEFLATE_RESPONSE_MAX - n), "; client_max_window_bits=%d",
                  p->client_max_window_bits);
  return (size_t)n;
}

/* ---- codec: shared pieces -------------------------------------------------------------------- */

/* RFC 7692 7.2.1: what Z_SYNC_FLUSH ends with (an empty stored block), dropped by the sender
 * and appended again by the receiver (7.2.2). */
static const uint8_t sync_tail[4] = {0x00, 0x00, 0xff, 0xff};

/* zlib counts its lengths in uInt: feed it at most this much at a time. */
#define ZCHUNK ((size_t)1 << 30)

void pw__zbuf_free(pw__zbuf *b) {
  if (!b) return;
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

/* Room for at least `more` bytes after len (doubling, to keep appends amortised). */
static int zbuf_reserve(pw__zbuf *b, size_t more) {
  if (more > SIZE_MAX - b->len || pw__grow((void **)&b->data, &b->cap, b->len + more, 1, 256) != 0)
    return PW_ENOMEM;
  return 0;
}

static uInt clamp_uint(size_t n) { return n > ZCHUNK ? (uInt)ZCHUNK : (uInt)n; }

/* zlib allocates through these so each stream knows its own footprint (opaque points at the
 * owner's byte counter). A max_align_t header keeps zlib's pointers aligned. */
static voidpf counted_alloc(voidpf opaque, uInt items, uInt size) {
  size_t n = (size_t)items * size;
  max_align_t *p = malloc(sizeof(max_align_t) + n);
  if (!p) return Z_NULL;
  *(size_t *)(void *)p = n;
  *(size_t *)opaque += n;
  return p + 1;
}

static void counted_free(voidpf opaque, voidpf ptr) {
  max_align_t *p = (max_align_t *)ptr - 1;
  *(size_t *)opaque -= *(size_t *)(void *)p;
  free(p);
}

static void zstream_hooks(z_stream *zs, size_t *counter) {
  memset(zs, 0, sizeof *zs);
  zs->zalloc = counted_alloc;
  zs->zfree = counted_free;
  zs->opaque = counter;
}

int pw__inflate_close_code(int err) {
  return err == PW_ETOOBIG ? 1009 : err == PW_EIO ? 1007 : 1011;
}

/* ---- deflate --------------------------------------------------------------------------------- */

struct pw__deflater {
  z_stream zs;
  size_t zlib_bytes; /* what zlib holds now (counted_alloc) */
  uint8_t ready;     /* deflateInit2 done */
  uint8_t window_bits, mem_level, level, no_context_takeover;
};

int pw__deflater_new(pw__deflater **out, int window_bits, int level, int mem_level,
                     int no_context_takeover) {
  if (!out || window_bits < 8 || window_bits > 15 || level < 0 || level > 9 || mem_level < 0 ||
      mem_level > 9)
    return PW_EINVAL;
  pw__deflater *d = calloc(1, sizeof *d);
  if (!d) return PW_ENOMEM;
  d->window_bits = (uint8_t)(window_bits < 9 ? 9 : window_bits);
  d->level = (uint8_t)(level ? level : PW__DEFLATE_DEFAULT_LEVEL);
  d->mem_level = (uint8_t)(mem_level ? mem_level : PW__DEFLATE_DEFAULT_MEM_LEVEL);
  d->no_context_takeover = no_context_takeover != 0;
  *out = d;
  return 0;
}

int pw__deflater_new_server(pw__deflater **out, const struct pw_deflate_options *cfg,
                            const pw__deflate_params *p) {
  if (!cfg || !p) return PW_EINVAL;
  return pw__deflater_new(out, p->server_max_window_bits, cfg->level, cfg->mem_level,
                          p->server_no_context_takeover);
}

void pw__deflater_release(pw__deflater *d) {
  if (d && d->ready) deflateEnd(&d->zs);
  if (d) d->ready = 0;
}

void pw__deflater_free(pw__deflater *d) {
  pw__deflater_release(d);
  free(d);
}

void pw__deflater_reset(pw__deflater *d) {
  if (d && d->ready) deflateReset(&d->zs);
}

size_t pw__deflater_mem(const pw__deflater *d) { return d ? sizeof *d + d->zlib_bytes : 0; }

/* Negative window bits: raw DEFLATE, no zlib header or checksum (RFC 7692 uses bare DEFLATE). */
static int deflater_ready(pw__deflater *d) {
  if (d->ready) return 0;
  zstream_hooks(&d->zs, &d->zlib_bytes);
  int zr = deflateInit2(&d->zs, d->level, Z_DEFLATED, -(int)d->window_bits, d->mem_level,
                        Z_DEFAULT_STRATEGY);
  if (zr != Z_OK) return zr == Z_MEM_ERROR ? PW_ENOMEM : PW_EIO;
  d->ready = 1;
  return 0;
}

/* Run deflate over the current input until it is consumed and, for Z_SYNC_FLUSH, flushed:
 * zlib asks to be called again as long as it filled all the output space it was given. It
 * always gets more than 6 bytes of room: zlib.h warns that less can repeat the flush marker. */
static int deflate_pump(pw__deflater *d, pw__zbuf *out, int flush) {
  do {
    if (out->cap - out->len < 8 && zbuf_reserve(out, out->cap > 256 ? out->cap : 256))
      return PW_ENOMEM;
    d->zs.next_out = out->data + out->len;
    d->zs.avail_out = clamp_uint(out->cap - out->len);
    int zr = deflate(&d->zs, flush);
    out->len = (size_t)(d->zs.next_out - out->data);
    if (zr != Z_OK && zr != Z_BUF_ERROR) return PW_EIO;
  } while (d->zs.avail_out == 0 || d->zs.avail_in > 0);
  return 0;
}

/* Feed the message in uInt-sized chunks; the last one is flushed to a byte boundary. */
static int deflate_all(pw__deflater *d, const uint8_t *p, size_t len, pw__zbuf *out) {
  for (;;) {
    size_t chunk = len > ZCHUNK ? ZCHUNK : len;
    d->zs.next_in = (Bytef *)(uintptr_t)p; /* zlib's API is not const-correct */
    d->zs.avail_in = (uInt)chunk;
    int last = chunk == len;
    int rc = deflate_pump(d, out, last ? Z_SYNC_FLUSH : Z_NO_FLUSH);
    if (rc || last) return rc;
    p += chunk;
    len -= chunk;
  }
}

/* Strip the sync flush's 00 00 ff ff, which Z_SYNC_FLUSH always writes last. */
static int drop_sync_tail(pw__zbuf *out, size_t start) {
  if (out->len - start < sizeof sync_tail ||
      memcmp(out->data + out->len - sizeof sync_tail, sync_tail, sizeof sync_tail) != 0)
    return PW_EIO;
  out->len -= sizeof sync_tail;
  return 0;
}

/* A failure mid-message leaves zlib's history holding bytes the peer will never see. A reset
 * repairs that (forgetting is always legal for a sender), so the deflater stays usable. */
static int deflate_failed(pw__deflater *d, pw__zbuf *out, size_t start, int rc) {
  out->len = start;
  if (d->ready) deflateReset(&d->zs);
  return rc;
}

/* An empty message is one byte, 0x00: with the receiver's tail it is an empty stored block.
 * zlib is left alone: between messages it is always at a byte boundary (each message ends
 * with a sync flush), so the block changes neither its window nor its bit position, and zlib
 * would refuse a second sync flush with no input in between (Z_BUF_ERROR, no marker). */
static int empty_message(pw__zbuf *out) {
  if (zbuf_reserve(out, 1)) return PW_ENOMEM;
  out->data[out->len++] = 0x00;
  return 0;
}

int pw__deflate_message(pw__deflater *d, const void *data, size_t len, pw__zbuf *out) {
  if (!d || !out || (!data && len) || out->len > out->cap) return PW_EINVAL;
  if (len == 0) return empty_message(out);
  size_t start = out->len;
  int rc = deflater_ready(d);
  if (rc) return rc;
  /* deflateBound assumes Z_FINISH; a sync flush adds at most a few bytes (an empty stored
   * block and alignment), so this is one allocation in the common case. */
  rc = zbuf_reserve(out, deflateBound(&d->zs, (uLong)(len > ZCHUNK ? ZCHUNK : len)) + 16);
  if (!rc) rc = deflate_all(d, data, len, out);
  if (!rc) rc = drop_sync_tail(out, start);
  if (rc) return deflate_failed(d, out, start, rc);
  if (d->no_context_takeover) deflateReset(&d->zs);
  return 0;
}

int pw__deflate_oneshot(int window_bits, int level, int mem_level, const void *data, size_t len,
                        pw__zbuf *out) {
  pw__deflater *d;
  int rc = pw__deflater_new(&d, window_bits, level, mem_level, 1);
  if (rc) return rc;
  rc = pw__deflate_message(d, data, len, out);
  pw__deflater_free(d);
  return rc;
}

/* ---- inflate --------------------------------------------------------------------------------- */

struct pw__inflater {
  z_stream zs;
  pw__zbuf out;      /* the message being inflated, or the last finished one */
  size_t limit;      /* largest inflated message accepted */
  size_t zlib_bytes; /* what zlib holds now (counted_alloc) */
  int error;         /* sticky: the first error, returned by every later call */
  uint8_t ready;     /* inflateInit2 done */
  uint8_t window_bits, no_context_takeover;
  uint8_t in_message; /* a push came since the last finish */
  uint8_t had_input;  /* this message has compressed bytes */
  uint8_t ended;      /* the stream's final block (BFINAL) is done */
};

int pw__inflater_new(pw__inflater **out, int window_bits, int no_context_takeover,
                     size_t max_message) {
  if (!out || window_bits < 8 || window_bits > 15 || max_message == 0 || max_message == SIZE_MAX)
    return PW_EINVAL;
  pw__inflater *in = calloc(1, sizeof *in);
  if (!in) return PW_ENOMEM;
  in->window_bits = (uint8_t)(window_bits < 9 ? 9 : window_bits);
  in->no_context_takeover = no_context_takeover != 0;
  in->limit = max_message;
  *out = in;
  return 0;
}

int pw__inflater_new_server(pw__inflater **out, const pw__deflate_params *p, size_t max_message) {
  if (!p) return PW_EINVAL;
  return pw__inflater_new(out, p->client_max_window_bits, p->client_no_context_takeover,
                          max_message);
}

void pw__inflater_free(pw__inflater *in) {
  if (!in) return;
  if (in->ready) inflateEnd(&in->zs);
  pw__zbuf_free(&in->out);
  free(in);
}

int pw__inflater_release(pw__inflater *in) {
  if (!in) return PW_EINVAL;
  if (!in->no_context_takeover || in->in_message) return PW_ESTATE;
  if (in->ready) inflateEnd(&in->zs);
  in->ready = 0;
  return 0;
}

size_t pw__inflater_mem(const pw__inflater *in) {
  return in ? sizeof *in + in->zlib_bytes + in->out.cap : 0;
}

static int inflater_ready(pw__inflater *in) {
  if (in->ready) return 0;
  zstream_hooks(&in->zs, &in->zlib_bytes);
  int zr = inflateInit2(&in->zs, -(int)in->window_bits);
  if (zr != Z_OK) return zr == Z_MEM_ERROR ? PW_ENOMEM : PW_EIO;
  in->ready = 1;
  in->ended = 0;
  return 0;
}

static int inflate_fail(pw__inflater *in, int rc) {
  in->error = rc;
  return rc;
}

/* Output room, never past limit + 1 bytes in all: one byte over the limit proves the message
 * too big (inflate_piece checks after every call), so a bomb is cut off after limit + 1
 * inflated bytes. */
static int inflate_room(pw__inflater *in) {
  pw__zbuf *b = &in->out;
  if (b->len < b->cap) return 0;
  size_t cap = b->cap ? b->cap * 2 : 4096;
  if (cap > in->limit + 1 || cap < b->cap) cap = in->limit + 1;
  uint8_t *p = realloc(b->data, cap);
  if (!p) return PW_ENOMEM;
  b->data = p;
  b->cap = cap;
  return 0;
}

static int inflate_restart(pw__inflater *in);

/* Inflate one piece. zlib is called again while it has input, or while it filled the output
 * (it may hold more). Message data after a final block (BFINAL) starts a new stream with the
 * same window: RFC 7692 7.2.3.4's example itself follows its final block with a 0x00 that,
 * with the appended tail, is an empty stored block. Our tail right after a final block is
 * not needed and is left unread. */
static int inflate_piece(pw__inflater *in, const uint8_t *p, size_t n, int is_tail) {
  in->zs.next_in = (Bytef *)(uintptr_t)p;
  in->zs.avail_in = (uInt)n;
  for (;;) {
    if (in->ended && (in->zs.avail_in == 0 || is_tail)) return 0;
    int rc = in->ended ? inflate_restart(in) : 0;
    if (!rc) rc = inflate_room(in);
    if (rc) return rc;
    in->zs.next_out = in->out.data + in->out.len;
    in->zs.avail_out = clamp_uint(in->out.cap - in->out.len);
    int zr = inflate(&in->zs, Z_NO_FLUSH);
    in->out.len = (size_t)(in->zs.next_out - in->out.data);
    if (zr == Z_STREAM_END) in->ended = 1;
    else if (zr == Z_MEM_ERROR) return PW_ENOMEM;
    else if (zr != Z_OK && zr != Z_BUF_ERROR)
      return PW_EIO; /* Z_DATA_ERROR, Z_NEED_DICT, Z_STREAM_ERROR */
    if (in->out.len > in->limit) return PW_ETOOBIG;
    if (in->zs.avail_in == 0 && in->zs.avail_out > 0) return 0;
  }
}

/* The start of a message drops the previous one's output unless it was taken. */
static void inflate_begin(pw__inflater *in) {
  if (in->in_message) return;
  pw__zbuf_free(&in->out);
  in->in_message = 1;
  in->had_input = 0;
}

int pw__inflate_push(pw__inflater *in, const void *data, size_t n) {
  if (!in || (!data && n)) return PW_EINVAL;
  if (in->error) return in->error;
  inflate_begin(in);
  if (n == 0) return 0;
  int rc = inflater_ready(in);
  in->had_input = 1;
  const uint8_t *p = data;
  while (!rc && n > 0) {
    size_t chunk = n > ZCHUNK ? ZCHUNK : n;
    rc = inflate_piece(in, p, chunk, 0);
    p += chunk;
    n -= chunk;
  }
  return rc ? inflate_fail(in, rc) : 0;
}

/* After a final block zlib's stream is over; with context takeover the next message may still
 * refer to this one, so the window is carried into the fresh stream as a dictionary. */
static int inflate_restart(pw__inflater *in) {
  in->ended = 0;
  if (in->no_context_takeover) return inflateReset(&in->zs) == Z_OK ? 0 : PW_EIO;
  uInt n = 0;
  uint8_t *dict = malloc((size_t)1 << in->window_bits);
  if (!dict) return PW_ENOMEM;
  int zr = inflateGetDictionary(&in->zs, dict, &n);
  if (zr == Z_OK) zr = inflateReset(&in->zs);
  if (zr == Z_OK && n > 0) zr = inflateSetDictionary(&in->zs, dict, n);
  free(dict);
  return zr == Z_OK ? 0 : PW_EIO;
}

/* Once the tail is in, the message must end exactly after the tail's empty stored block: zlib
 * is between blocks (bit 128 of data_type) with no bits left over (its low 6 bits), or the
 * stream ended. A message cut short leaves zlib inside a block, or off a byte boundary. */
static int inflate_end_message(pw__inflater *in) {
  int rc = inflate_piece(in, sync_tail, sizeof sync_tail, 1);
  if (rc) return rc;
  if (in->ended) return inflate_restart(in);
  if (!(in->zs.data_type & 128) || (in->zs.data_type & 63) != 0)
    return PW_EIO; /* truncated: the tail was read as part of an unfinished block */
  if (in->no_context_takeover && inflateReset(&in->zs) != Z_OK) return PW_EIO;
  return 0;
}

int pw__inflate_finish(pw__inflater *in, const uint8_t **msg, size_t *len) {
  if (!in || !msg || !len) return PW_EINVAL;
  if (in->error) return in->error;
  inflate_begin(in);
  /* Zero compressed bytes: an empty message, and the stream does not move (nothing was sent
   * by the peer's compressor either). */
  int rc = in->had_input ? inflate_end_message(in) : 0;
  if (rc) return inflate_fail(in, rc);
  in->in_message = 0;
  *msg = in->out.data;
  *len = in->out.len;
  return 0;
}

uint8_t *pw__inflate_take(pw__inflater *in, size_t *len) {
  if (!in || in->in_message) {
    if (len) *len = 0;
    return NULL;
  }
  uint8_t *p = in->out.len ? in->out.data : NULL;
  if (len) *len = in->out.len;
  if (!p) free(in->out.data);
  in->out.data = NULL;
  in->out.len = in->out.cap = 0;
  return p;
}
