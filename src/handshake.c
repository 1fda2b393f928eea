/* WebSocket opening handshake (RFC 6455 section 4.2) as pure functions: see handshake.h. */
#include "handshake.h"

#include <openssl/evp.h>
#include <string.h>
#include <strings.h>

static const char WS_GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

static int is_ows(char c) { return c == ' ' || c == '\t'; }

/* Trim optional white space around [*s, *s+*n). */
static void trim(const char **s, size_t *n) {
  while (*n && is_ows(**s)) (*s)++, (*n)--;
  while (*n && is_ows((*s)[*n - 1])) (*n)--;
}

/* Visit each comma-separated element of a header value; stop when visit returns nonzero. */
typedef int (*token_visit)(const char *tok, size_t len, void *ctx);
static int each_token(const char *v, size_t len, token_visit visit, void *ctx) {
  size_t start = 0;
  for (size_t i = 0; i <= len; i++) {
    if (i < len && v[i] != ',') continue;
    const char *tok = v + start;
    size_t n = i - start;
    trim(&tok, &n);
    if (n && visit(tok, n, ctx)) return 1;
    start = i + 1;
  }
  return 0;
}

static int token_equals(const char *tok, size_t len, void *ctx) {
  const char *want = ctx;
  return strlen(want) == len && strncasecmp(tok, want, len) == 0;
}

int pw__has_token(const char *value, size_t len, const char *token) {
  return each_token(value, len, token_equals, (void *)token);
}

/* Does any header named `name` contain `token`? (A header may be repeated.) */
static int any_header_has_token(const pw_request *req, const char *name, const char *token) {
  size_t nlen = strlen(name);
  for (size_t i = 0; i < req->header_count; i++) {
    const pw_header *h = &req->headers[i];
    if (h->name_len == nlen && strncasecmp(h->name, name, nlen) == 0 &&
        pw__has_token(h->value, h->value_len, token))
      return 1;
  }
  return 0;
}

int pw__is_upgrade(const pw_request *req) {
  return any_header_has_token(req, "Upgrade", "websocket") &&
         any_header_has_token(req, "Connection", "upgrade");
}

static int b64_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/';
}

int pw__ws_key_valid(const char *key, size_t len) {
  /* 16 bytes encode to 22 significant chars + "=="; the last significant char carries only
   * 2 data bits, so its low 4 bits must be zero (canonical encoding). */
  if (len != 24 || key[22] != '=' || key[23] != '=') return 0;
  for (size_t i = 0; i < 22; i++)
    if (!b64_char(key[i])) return 0;
  return strchr("AQgw", key[21]) != NULL;
}

/* How many headers are named `name`. */
static size_t header_count(const pw_request *req, const char *name) {
  size_t nlen = strlen(name), n = 0;
  for (size_t i = 0; i < req->header_count; i++)
    n += req->headers[i].name_len == nlen && strncasecmp(req->headers[i].name, name, nlen) == 0;
  return n;
}

int pw__upgrade_status(const pw_request *req, int http_major, int http_minor) {
  if (strcmp(req->method, "GET") != 0) return 400;
  if (http_major != 1 || http_minor < 1) return 400;
  /* RFC 6455 4.1, 11.3.1, 11.3.5: one key and one version; of two, we would have to guess
   * which counts (and a proxy in front may have read the other). Host (exactly one, RFC
   * 6455 4.1 item 2) is checked with the head, for every HTTP/1.1 request (httphead.c). */
  if (header_count(req, "Sec-WebSocket-Key") > 1) return 400;
  if (header_count(req, "Sec-WebSocket-Version") > 1) return 400;
  const pw_header *key = pw_request_header(req, "Sec-WebSocket-Key");
  if (!key || !pw__ws_key_valid(key->value, key->value_len)) return 400;
  const pw_header *ver = pw_request_header(req, "Sec-WebSocket-Version");
  if (!ver || ver->value_len != 2 || memcmp(ver->value, "13", 2) != 0) return 426;
  return 101;
}

int pw__ws_accept(const char *key, size_t len, char out[PW__ACCEPT_LEN + 1]) {
  unsigned char input[64 + sizeof WS_GUID], digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  if (len > 64) return -1; /* a valid key is 24 chars */
  memcpy(input, key, len);
  memcpy(input + len, WS_GUID, sizeof WS_GUID - 1);
  if (!EVP_Digest(input, len + sizeof WS_GUID - 1, digest, &digest_len, EVP_sha1(), NULL))
    return -1;
  return EVP_EncodeBlock((unsigned char *)out, digest, (int)digest_len) == PW__ACCEPT_LEN ? 0 : -1;
}

typedef struct offers_ctx {
  char *store;
  size_t left;
  const char **offers;
  size_t count;
} offers_ctx;

static int add_offer(const char *tok, size_t len, void *vctx) {
  offers_ctx *c = vctx;
  if (c->count == PW__MAX_OFFERS || len + 1 > c->left) return 1;
  memcpy(c->store, tok, len);
  c->store[len] = '\0';
  c->offers[c->count++] = c->store;
  c->store += len + 1;
  c->left -= len + 1;
  return 0;
}

size_t pw__subprotocol_offers(const pw_request *req, char *store, size_t store_len,
                              const char *offers[PW__MAX_OFFERS]) {
  offers_ctx c = {store, store_len, offers, 0};
  for (size_t i = 0; i < req->header_count; i++) {
    const pw_header *h = &req->headers[i];
    if (h->name_len == 22 && strncasecmp(h->name, "Sec-WebSocket-Protocol", 22) == 0 &&
        each_token(h->value, h->value_len, add_offer, &c))
      break;
  }
  return c.count;
}

const pw_header *pw_request_header(const pw_request *req, const char *name) {
  if (!req || !name) return NULL;
  size_t nlen = strlen(name);
  for (size_t i = 0; i < req->header_count; i++) {
    const pw_header *h = &req->headers[i];
    if (h->name_len == nlen && strncasecmp(h->name, name, nlen) == 0) return h;
  }
  return NULL;
}
