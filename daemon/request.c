/* Request helpers (request.h). */
#include "request.h"

#include <string.h>
#include <strings.h>

static int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

long pwd_percent_decode(const char *src, size_t len, char *out, size_t outcap) {
  size_t n = 0;
  for (size_t i = 0; i < len; i++) {
    char c = src[i];
    if (c == '%') {
      if (i + 2 >= len) return -1; /* needs two hex digits */
      int hi = hex_value(src[i + 1]), lo = hex_value(src[i + 2]);
      if (hi < 0 || lo < 0) return -1;
      c = (char)(hi * 16 + lo);
      i += 2;
    }
    if (c == '\0' || n + 1 >= outcap) return -1;
    out[n++] = c;
  }
  if (outcap == 0) return -1;
  out[n] = '\0';
  return (long)n;
}

long pwd_query_param(const char *query, const char *key, char *out, size_t outcap) {
  size_t klen = strlen(key);
  for (const char *p = query; p && *p;) {
    const char *end = strchr(p, '&');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (len > klen && strncmp(p, key, klen) == 0 && p[klen] == '=')
      return pwd_percent_decode(p + klen + 1, len - klen - 1, out, outcap);
    p = end ? end + 1 : NULL;
  }
  return -1;
}

long pwd_request_token(const pw_request *req, char *out, size_t outcap) {
  const pw_header *h = pw_request_header(req, "Authorization");
  if (h && h->value_len > 7 && strncasecmp(h->value, "Bearer ", 7) == 0) {
    size_t len = h->value_len - 7;
    if (len + 1 > outcap) return -1;
    memcpy(out, h->value + 7, len);
    out[len] = '\0';
    return (long)len;
  }
  long n = pwd_query_param(req->query, "token", out, outcap);
  return n < 0 ? 0 : n; /* a malformed ?token= counts as none: the answer is then 401 */
}
