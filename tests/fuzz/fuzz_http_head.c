/* fuzz_http_head: the HTTP request-head path without a socket: finding the end of a head in a
 * stream arriving in pieces, llhttp parsing (src/httphead.c), the body a head announces, the
 * pw_request handed to callbacks, and the upgrade rules (src/handshake.c).
 * Input: 4 bytes of split seed, then what a client sends (keep-alive: several requests).
 * Checked, for up to 8 requests in a row as http.c serves them:
 *  - the incremental end-of-head search finds exactly the first CRLFCRLF, whatever the split;
 *  - the byte judge (pw__head_check_bytes) gives the same answer at the same byte whole and
 *    in pieces, and the answer of a reference written from RFC 9110/9112 (a request line
 *    starting with a token character, CR only in CRLF, LF only after CR, no control
 *    characters; 0x16 first: a TLS ClientHello);
 *  - a parse answers 0, 400 or 431; on 0, llhttp stopped exactly at the end of the head we
 *    found (else a body or a next request would be read from a different place than the
 *    parser thinks: request smuggling), every header name and value lies inside the head,
 *    values carry no trailing blanks, at most 64 headers;
 *  - the body rule answers 0, 413 or 501; the request's path is the URL up to '?', the query
 *    the rest; a head that parsed has exactly one Host (or, in HTTP/1.0, none);
 *  - an upgrade is judged 101, 400 or 426; a 101 only for GET, HTTP/1.1+, a key that is the
 *    base64 of 16 bytes (decoded here independently) and version 13, each sent once; its
 *    accept value is base64(SHA-1(key + GUID)), computed here with SHA1() and our own base64;
 *  - subprotocol offers are non-empty tokens without commas or outer blanks, inside the store.
 * Checked to fail: with pw__ws_key_valid's canonical-encoding test (key[21] in "AQgw")
 * removed, the corpus replay aborted on upgrade_bad_key ("101 for a key that does not decode
 * to 16 bytes"); with judge_first's 0x16 test removed, it aborted on tls_client_hello
 * ("judged 400 at 0, the reference 1 at 0"). */
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz_common.h"
#include "handshake.h"
#include "httphead.h"

#define MAX_BODY 4096
#define MAX_REQUESTS 8

static int inside(const char *p, size_t n, const uint8_t *head, size_t head_len) {
  return n == 0 || ((const uint8_t *)p >= head && (const uint8_t *)p + n <= head + head_len);
}

static size_t ref_head_end(const uint8_t *buf, size_t len) {
  for (size_t i = 0; i + 4 <= len; i++)
    if (memcmp(buf + i, "\r\n\r\n", 4) == 0) return i + 4;
  return 0;
}

/* The search as http.c runs it: the buffer grows by a piece per read. */
static size_t incremental_head_end(const uint8_t *buf, size_t len, uint32_t *seed) {
  size_t scanned = 0, have = 0;
  while (have < len) {
    have += fuzz_chunk(seed);
    if (have > len) have = len;
    size_t end = pw__head_end(buf, have, &scanned);
    if (end) return end;
  }
  return 0;
}

/* ---- judging bytes as they arrive -------------------------------------------------------- */
static int ref_tchar(uint8_t c) {
  return c > 0x20 && c < 0x7f && !strchr("\"(),/:;<=>?@[\\]{}", c);
}

/* Where pw__head_check_bytes must stop, said another way: the first position at which one of
 * the rules breaks, or n. A bare LF is known at itself, a bare CR at the byte after it. */
static size_t ref_fault(const uint8_t *d, size_t n, size_t *line_start) {
  size_t fault = n, s = 0;
  for (size_t i = 0; i < n && i < fault; i++) {
    if (d[i] == '\n' && (i == 0 || d[i - 1] != '\r')) fault = i;
    if (d[i] == '\r' && i + 1 < n && d[i + 1] != '\n' && i + 1 < fault) fault = i + 1;
    if (((d[i] < 0x20 && d[i] != '\t' && d[i] != '\r' && d[i] != '\n') || d[i] == 0x7f) &&
        i < fault)
      fault = i;
  }
  while (s + 1 < n && d[s] == '\r' && d[s + 1] == '\n') s += 2; /* empty lines first */
  *line_start = s;
  if (s < n && d[s] != '\r') { /* the method: token characters up to a space */
    size_t j = s;
    while (j < n && ref_tchar(d[j])) j++;
    if (j == s || (j < n && d[j] != ' ')) fault = j < fault ? j : fault;
  }
  return fault;
}

/* The head's bytes judged in one piece, in the pieces http.c would see, and by the
 * reference: the same answer at the same byte. */
static void check_head_bytes(const uint8_t *d, size_t n, uint32_t *seed) {
  pw__head_check whole = {0}, pieces = {0};
  int r_whole = pw__head_check_bytes(d, n, &whole), r_pieces = 0;
  for (size_t have = 0; have < n && !r_pieces;) {
    have += fuzz_chunk(seed);
    r_pieces = pw__head_check_bytes(d, have < n ? have : n, &pieces);
  }
  FUZZ_CHECK(r_whole == r_pieces && whole.pos == pieces.pos, "whole %d at %zu, pieces %d at %zu",
             r_whole, whole.pos, r_pieces, pieces.pos);
  size_t s, fault = ref_fault(d, n, &s);
  int want = fault == n ? 0 : fault == s && d[s] == 0x16 ? PW__HEAD_TLS : 400;
  FUZZ_CHECK(r_whole == want && (want == 0 || whole.pos == fault),
             "judged %d at %zu, the reference %d at %zu", r_whole, whole.pos, want, fault);
}

/* ---- an independent key and accept check -------------------------------------------------- */
static int b64_value(char c) {
  const char *alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const char *at = c ? strchr(alphabet, c) : NULL;
  return at ? (int)(at - alphabet) : -1;
}

/* Does key decode (RFC 4648, canonical, padded) to exactly 16 bytes? */
static int ref_key_is_16_bytes(const char *key, size_t len) {
  if (len != 24 || key[22] != '=' || key[23] != '=') return 0;
  for (size_t i = 0; i < 22; i++)
    if (b64_value(key[i]) < 0) return 0;
  return (b64_value(key[21]) & 0xF) == 0; /* 16 bytes = 128 bits: the last 4 bits unused */
}

static void ref_base64(const uint8_t *in, size_t n, char *out) {
  const char *alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v =
        (uint32_t)in[i] << 16 | (i + 1 < n ? in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
    out[o++] = alphabet[v >> 18 & 63];
    out[o++] = alphabet[v >> 12 & 63];
    out[o++] = i + 1 < n ? alphabet[v >> 6 & 63] : '=';
    out[o++] = i + 2 < n ? alphabet[v & 63] : '=';
  }
  out[o] = '\0';
}

static void check_accept(const pw_header *key) {
  char got[PW__ACCEPT_LEN + 1], want[PW__ACCEPT_LEN + 1];
  FUZZ_CHECK(pw__ws_accept(key->value, key->value_len, got) == 0, "pw__ws_accept failed");
  char input[24 + 36];
  memcpy(input, key->value, 24);
  memcpy(input + 24, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11", 36);
  uint8_t digest[SHA_DIGEST_LENGTH];
  SHA1((const uint8_t *)input, sizeof input, digest);
  ref_base64(digest, sizeof digest, want);
  FUZZ_CHECK(strcmp(got, want) == 0, "accept %s, expected %s", got, want);
}

/* ---- one request ---------------------------------------------------------------------------- */
static void check_headers(const pw__head *hi, const uint8_t *head, size_t head_len) {
  FUZZ_CHECK(hi->count <= PW__MAX_HEADERS, "%zu headers", hi->count);
  FUZZ_CHECK(inside(hi->url, hi->url_len, head, head_len), "URL outside the head");
  for (size_t i = 0; i < hi->count; i++) {
    const pw_header *h = &hi->headers[i];
    FUZZ_CHECK(h->name && inside(h->name, h->name_len, head, head_len), "header %zu name", i);
    FUZZ_CHECK(h->value && inside(h->value, h->value_len, head, head_len), "header %zu value", i);
    FUZZ_CHECK(h->value_len == 0 ||
                   (h->value[h->value_len - 1] != ' ' && h->value[h->value_len - 1] != '\t'),
               "header %zu value ends in a blank", i);
  }
}

static void check_request(const pw__head *hi, const pw_request *req) {
  FUZZ_CHECK(req->method && *req->method, "no method");
  size_t path_len = strlen(req->path);
  FUZZ_CHECK(path_len <= hi->url_len && memcmp(req->path, hi->url, path_len) == 0 &&
                 !strchr(req->path, '?'),
             "path is not the URL's prefix up to '?'");
  const char *q = memchr(hi->url, '?', hi->url_len);
  if (q && !memchr(hi->url, '\0', hi->url_len)) /* a NUL would end the C strings first */
    FUZZ_CHECK(strlen(req->query) == hi->url_len - (size_t)(q - hi->url) - 1, "query length");
  FUZZ_CHECK(req->header_count == hi->count && req->headers == hi->headers, "headers");
}

static void check_offers(const pw_request *req) {
  char store[512];
  const char *offers[PW__MAX_OFFERS];
  size_t n = pw__subprotocol_offers(req, store, sizeof store, offers);
  FUZZ_CHECK(n <= PW__MAX_OFFERS, "%zu offers", n);
  for (size_t i = 0; i < n; i++) {
    size_t len = strlen(offers[i]);
    FUZZ_CHECK(offers[i] >= store && offers[i] + len < store + sizeof store, "offer %zu", i);
    FUZZ_CHECK(len > 0 && !strchr(offers[i], ','), "offer %zu: '%s'", i, offers[i]);
    FUZZ_CHECK(offers[i][0] != ' ' && offers[i][0] != '\t' && offers[i][len - 1] != ' ' &&
                   offers[i][len - 1] != '\t',
               "offer %zu has outer blanks", i);
  }
}

static size_t count_named(const pw_request *req, const char *name) {
  size_t n = 0;
  for (size_t i = 0; i < req->header_count; i++)
    n += req->headers[i].name_len == strlen(name) &&
         strncasecmp(req->headers[i].name, name, strlen(name)) == 0;
  return n;
}

/* RFC 9112 3.2: a head that parsed has one Host, or none in HTTP/1.0. */
static void check_hosts(const pw__head *hi, const pw_request *req) {
  size_t hosts = count_named(req, "Host");
  int http11 = hi->parser.http_major > 1 || (hi->parser.http_major == 1 && hi->parser.http_minor);
  FUZZ_CHECK(hosts == 1 || (hosts == 0 && !http11), "%zu Host headers in HTTP/%d.%d", hosts,
             hi->parser.http_major, hi->parser.http_minor);
}

static void check_upgrade(const pw__head *hi, const pw_request *req) {
  check_offers(req);
  if (!pw__is_upgrade(req)) return;
  int status = pw__upgrade_status(req, hi->parser.http_major, hi->parser.http_minor);
  FUZZ_CHECK(status == 101 || status == 400 || status == 426, "upgrade status %d", status);
  if (status != 101) return;
  FUZZ_CHECK(strcmp(req->method, "GET") == 0, "101 for %s", req->method);
  FUZZ_CHECK(hi->parser.http_major == 1 && hi->parser.http_minor >= 1, "101 for HTTP/%d.%d",
             hi->parser.http_major, hi->parser.http_minor);
  const pw_header *key = pw_request_header(req, "Sec-WebSocket-Key");
  FUZZ_CHECK(key && ref_key_is_16_bytes(key->value, key->value_len),
             "101 for a key that does not decode to 16 bytes");
  const pw_header *ver = pw_request_header(req, "Sec-WebSocket-Version");
  FUZZ_CHECK(ver && ver->value_len == 2 && memcmp(ver->value, "13", 2) == 0, "101 without 13");
  FUZZ_CHECK(count_named(req, "Sec-WebSocket-Key") == 1 &&
                 count_named(req, "Sec-WebSocket-Version") == 1,
             "101 with two keys or two versions");
  check_accept(key);
}

/* Parse the head at buf[0..head_len) and check it; returns the bytes this request takes
 * (head and body), or 0 when the connection would end here (error, or the body is not all
 * there). */
static size_t one_request(const uint8_t *buf, size_t head_len, size_t avail) {
  pw__head hi;
  int st = pw__head_parse(&hi, buf, head_len);
  FUZZ_CHECK(st == 0 || st == 400 || st == 431, "parse answered %d", st);
  if (st) return 0;
  const char *stop = llhttp_get_error_pos(&hi.parser);
  FUZZ_CHECK(stop == (const char *)buf + head_len, "llhttp ended the head at %td, we at %zu",
             stop - (const char *)buf, head_len);
  check_headers(&hi, buf, head_len);
  uint64_t body_len = 0;
  st = pw__head_body(&hi, MAX_BODY, &body_len);
  FUZZ_CHECK(st == 0 || st == 413 || st == 501, "body rule answered %d", st);
  if (st) return 0;
  FUZZ_CHECK(body_len <= MAX_BODY, "a body of %llu bytes passed", (unsigned long long)body_len);
  pw_request req;
  pw__req_strings rs;
  if (pw__head_request(&hi, &req, &rs) != 0) abort();
  check_request(&hi, &req);
  check_hosts(&hi, &req);
  check_upgrade(&hi, &req);
  free(rs.block);
  if (pw__is_upgrade(&req) || avail < head_len + body_len) return 0;
  return head_len + (size_t)body_len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 4 || size > (1u << 16)) return 0;
  uint32_t seed = fuzz_load32(data);
  size_t n = size - 4;
  uint8_t *buf = malloc(n ? n : 1); /* exactly the bytes: over-reads are reported */
  if (!buf) abort();
  memcpy(buf, data + 4, n);
  size_t pos = 0;
  for (int i = 0; i < MAX_REQUESTS && pos < n; i++) {
    size_t end = incremental_head_end(buf + pos, n - pos, &seed);
    FUZZ_CHECK(end == ref_head_end(buf + pos, n - pos), "head end %zu, expected %zu", end,
               ref_head_end(buf + pos, n - pos));
    check_head_bytes(buf + pos, end ? end : n - pos, &seed);
    size_t used = end ? one_request(buf + pos, end, n - pos) : 0;
    if (!used) break;
    pos += used;
  }
  free(buf);
  return 0;
}
