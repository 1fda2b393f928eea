/* An HTTP request head, pure (see httphead.h).
 * Design notes: the caller finds the end of the head and hands llhttp the whole head at once,
 * so every header is one contiguous span of the caller's buffer and the request needs no
 * copies of names or values; llhttp pauses right after the head, leaving the body to us. */
#include "httphead.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

size_t pw__head_end(const uint8_t *buf, size_t len, size_t *scanned) {
  size_t from = *scanned > 3 ? *scanned - 3 : 0; /* a CRLFCRLF may straddle the old end */
  for (size_t i = from; i + 4 <= len; i++)
    if (memcmp(buf + i, "\r\n\r\n", 4) == 0) return i + 4;
  *scanned = len;
  return 0;
}

/* ---- judging the bytes as they arrive ------------------------------------------------------ */
int pw__http_tchar(int c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c > 0 && c < 0x80 && strchr("!#$%&'*+-.^_`|~", c));
}

enum { BEFORE_REQUEST_LINE, IN_METHOD, AFTER_METHOD };

/* The first byte of a request: a method's first character, or the CR of an empty line. */
static int judge_first(uint8_t b, uint8_t *phase) {
  if (b == '\r') return 0;
  if (b == 0x16) return PW__HEAD_TLS;
  if (!pw__http_tchar(b)) return 400;
  *phase = IN_METHOD;
  return 0;
}

/* One byte, i, with what came before it: 0 or the answer (see httphead.h). */
static int judge_byte(const uint8_t *buf, size_t i, uint8_t *phase) {
  uint8_t b = buf[i], prev = i ? buf[i - 1] : 0;
  if (prev == '\r' || b == '\n') return prev == '\r' && b == '\n' ? 0 : 400; /* only CRLF */
  if (*phase == BEFORE_REQUEST_LINE) return judge_first(b, phase);
  if (*phase == IN_METHOD) {
    if (b == ' ') *phase = AFTER_METHOD;
    return b == ' ' || pw__http_tchar(b) ? 0 : 400; /* a CR here: a line without a target */
  }
  return (b < 0x20 && b != '\t' && b != '\r') || b == 0x7f ? 400 : 0;
}

int pw__head_check_bytes(const uint8_t *buf, size_t len, pw__head_check *st) {
  for (; st->pos < len; st->pos++) {
    int r = judge_byte(buf, st->pos, &st->phase);
    if (r) return r;
  }
  return 0;
}

/* ---- parsing the head with llhttp ---------------------------------------------------------- */
/* Extend the span [*s, *s+*n) with [p, p+len): callbacks may split one span in pieces. */
static void span_add(const char **s, size_t *n, const char *p, size_t len) {
  if (!*s) *s = p;
  *n = (size_t)(p + len - *s);
}

static int on_url(llhttp_t *p, const char *at, size_t len) {
  pw__head *hi = p->data;
  span_add(&hi->url, &hi->url_len, at, len);
  return 0;
}

static int on_field(llhttp_t *p, const char *at, size_t len) {
  pw__head *hi = p->data;
  if (hi->in_value || hi->count == 0 || hi->headers[hi->count - 1].value) {
    if (hi->count == PW__MAX_HEADERS) return hi->too_many = 1, -1;
    memset(&hi->headers[hi->count++], 0, sizeof(pw_header));
    hi->in_value = 0;
  }
  pw_header *h = &hi->headers[hi->count - 1];
  span_add(&h->name, &h->name_len, at, len);
  return 0;
}

static int on_value(llhttp_t *p, const char *at, size_t len) {
  pw__head *hi = p->data;
  pw_header *h = &hi->headers[hi->count - 1];
  hi->in_value = 1;
  span_add(&h->value, &h->value_len, at, len);
  return 0;
}

static int on_value_done(llhttp_t *p) {
  pw__head *hi = p->data;
  pw_header *h = &hi->headers[hi->count - 1];
  if (!h->value) h->value = ""; /* an empty value still closes this header */
  while (h->value_len && (h->value[h->value_len - 1] == ' ' || h->value[h->value_len - 1] == '\t'))
    h->value_len--;
  hi->in_value = 0;
  return 0;
}

static int on_head_done(llhttp_t *p) {
  ((pw__head *)p->data)->done = 1;
  return HPE_PAUSED; /* stop right after the head: the body, if any, is ours to read */
}

static const llhttp_settings_t head_settings = {
    .on_url = on_url,
    .on_header_field = on_field,
    .on_header_value = on_value,
    .on_header_value_complete = on_value_done,
    .on_headers_complete = on_head_done,
};

/* RFC 9112 3.2: an HTTP/1.1 request has exactly one Host header, any request at most one. */
static int host_count_ok(const pw__head *hi) {
  size_t hosts = 0;
  for (size_t i = 0; i < hi->count; i++)
    hosts += hi->headers[i].name_len == 4 && strncasecmp(hi->headers[i].name, "Host", 4) == 0;
  const llhttp_t *p = &hi->parser;
  int http11 = p->http_major > 1 || (p->http_major == 1 && p->http_minor >= 1);
  return hosts == 1 || (hosts == 0 && !http11);
}

int pw__head_parse(pw__head *hi, const uint8_t *head, size_t len) {
  memset(hi, 0, offsetof(pw__head, parser));
  llhttp_init(&hi->parser, HTTP_REQUEST, &head_settings);
  hi->parser.data = hi;
  llhttp_errno_t e = llhttp_execute(&hi->parser, (const char *)head, len);
  if (hi->too_many) return 431;
  if (!hi->done || (e != HPE_PAUSED && e != HPE_PAUSED_UPGRADE)) return 400;
  /* llhttp must end the head exactly where we found the blank line. llhttp 8.1 also ends
   * lines at a bare LF or CR ("GET /\n\r\n", "\r\n\rX": found by fuzz_http_head, cf.
   * CVE-2023-30589): what lies between its end and ours would be neither a header nor the
   * body, and a proxy in front may read these bytes differently (request smuggling). */
  if (llhttp_get_error_pos(&hi->parser) != (const char *)head + len) return 400;
  return hi->url && host_count_ok(hi) ? 0 : 400;
}

int pw__head_body(const pw__head *hi, size_t max_body, uint64_t *body_len) {
  *body_len = (hi->parser.flags & F_CONTENT_LENGTH) ? hi->parser.content_length : 0;
  if (hi->parser.flags & F_CHUNKED) return 501;
  if (*body_len > max_body) return 413;
  return 0;
}

/* ---- the request --------------------------------------------------------------------------- */
int pw__head_request(const pw__head *hi, pw_request *req, pw__req_strings *rs) {
  memset(req, 0, sizeof *req);
  rs->remote[0] = '\0';
  rs->block = malloc(hi->url_len + 2);
  if (!rs->block) return -1;
  memcpy(rs->block, hi->url, hi->url_len);
  rs->block[hi->url_len] = '\0';
  char *q = strchr(rs->block, '?');
  rs->path = rs->block;
  rs->query = q ? (*q = '\0', q + 1) : rs->block + hi->url_len + 1;
  rs->block[hi->url_len + 1] = '\0';
  req->method = llhttp_method_name((llhttp_method_t)hi->parser.method);
  req->path = rs->path;
  req->query = rs->query;
  req->headers = hi->headers;
  req->header_count = hi->count;
  req->remote_addr = rs->remote;
  return 0;
}
