/* Static files (static_files.h). Runs on a loop thread and reads the file whole with plain
 * read(): meant for a demo page and its assets, not for large downloads (PWD_STATIC_MAX_FILE).
 *
 * Staying inside the root, in layers: the URL path is percent-decoded first, so "%2e%2e" is
 * ".." like any other; a ".." segment is refused outright (403) rather than normalised; the
 * path that remains is resolved with realpath(), which follows every symlink, and the result
 * must still start with the root. Caveat: a symlink swapped between realpath() and open() could
 * race this check; the final open() uses O_NOFOLLOW so at least the last component cannot. */
#include "static_files.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "request.h"

static const struct {
  const char *ext, *type;
} MIME_TYPES[] = {
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"json", "application/json"},
    {"map", "application/json"},
    {"txt", "text/plain; charset=utf-8"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"ico", "image/x-icon"},
    {"wasm", "application/wasm"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"xml", "application/xml"},
    {"pdf", "application/pdf"},
};

const char *pwd_content_type(const char *name) {
  const char *dot = strrchr(name, '.'), *slash = strrchr(name, '/');
  if (dot && (!slash || dot > slash))
    for (size_t i = 0; i < sizeof MIME_TYPES / sizeof MIME_TYPES[0]; i++)
      if (strcasecmp(dot + 1, MIME_TYPES[i].ext) == 0) return MIME_TYPES[i].type;
  return "application/octet-stream";
}

/* ---- answers --------------------------------------------------------------------------------- */
static void status_only(pw_response *res, int status) {
  static const char t400[] = "400 Bad Request\n", t403[] = "403 Forbidden\n",
                    t404[] = "404 Not Found\n", t405[] = "405 Method Not Allowed\n",
                    t500[] = "500 Internal Server Error\n";
  const char *text = status == 400   ? t400
                     : status == 403 ? t403
                     : status == 405 ? t405
                     : status == 500 ? t500
                                     : t404;
  res->status = status == 400 || status == 403 || status == 405 || status == 500 ? status : 404;
  res->body = text;
  res->body_len = strlen(text);
}

/* A directory asked without its trailing '/': send the browser there, so relative links in
 * its index.html resolve inside the directory. */
static void redirect_to_dir(const pw_request *req, pw_response *res, pwd_reply *out) {
  int n = snprintf(out->headers, sizeof out->headers, "Location: %s/\r\n", req->path);
  if (n < 0 || (size_t)n >= sizeof out->headers) return status_only(res, 404);
  res->status = 301;
  res->extra_headers = out->headers;
}

/* ---- the path -------------------------------------------------------------------------------- */
/* The URL path, decoded, as a root-relative path: 0, or the status to refuse with. */
static int relative_path(const char *url, char *rel, size_t cap) {
  char decoded[PATH_MAX];
  if (pwd_percent_decode(url, strlen(url), decoded, sizeof decoded) < 0) return 400;
  size_t len = 0;
  rel[0] = '\0';
  char *save = NULL;
  for (char *seg = strtok_r(decoded, "/", &save); seg; seg = strtok_r(NULL, "/", &save)) {
    if (strcmp(seg, ".") == 0) continue;
    if (strcmp(seg, "..") == 0) return 403; /* traversal: refused, never normalised */
    if (seg[0] == '.') return 404;          /* hidden files (.git, .env) are not served */
    int w = snprintf(rel + len, cap - len, "%s%s", len ? "/" : "", seg);
    if (w < 0 || (size_t)w >= cap - len) return 404;
    len += (size_t)w;
  }
  return 0;
}

/* realpath(candidate) into resolved, if it lies inside root: 0; else 403 (outside, e.g. by a
 * symlink) or 404 (missing). */
static int resolve_inside(const char *root, const char *candidate, char *resolved) {
  if (!realpath(candidate, resolved)) return errno == EACCES ? 403 : 404;
  size_t n = strlen(root);
  if (strncmp(resolved, root, n) != 0 || (resolved[n] != '/' && resolved[n] != '\0')) {
    pwd_log(PW_LOG_WARN, "static: refused %s: resolves outside the --www root", candidate);
    return 403;
  }
  return 0;
}

/* ---- ETag ------------------------------------------------------------------------------------ */
static void make_etag(const struct stat *st, char *etag, size_t cap) {
  long long mtime_ns = (long long)st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec;
  snprintf(etag, cap, "\"%llx-%llx-%llx\"", (unsigned long long)st->st_ino,
           (unsigned long long)st->st_size, (unsigned long long)mtime_ns);
}

/* Does If-None-Match list this ETag (or "*")? Weak comparison, as RFC 9110 asks for GET. */
static int etag_matches(const pw_request *req, const char *etag) {
  const pw_header *h = pw_request_header(req, "If-None-Match");
  if (!h) return 0;
  size_t elen = strlen(etag);
  const char *p = h->value, *end = p + h->value_len;
  while (p < end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == ',')) p++;
    const char *tok = p;
    while (p < end && *p != ',') p++;
    size_t tlen = (size_t)(p - tok);
    while (tlen > 0 && (tok[tlen - 1] == ' ' || tok[tlen - 1] == '\t')) tlen--;
    if (tlen == 1 && tok[0] == '*') return 1;
    if (tlen > 2 && tok[0] == 'W' && tok[1] == '/') tok += 2, tlen -= 2;
    if (tlen == elen && memcmp(tok, etag, elen) == 0) return 1;
  }
  return 0;
}

/* ---- the file -------------------------------------------------------------------------------- */
static int read_all(int fd, char *buf, size_t size) {
  for (size_t got = 0; got < size;) {
    ssize_t n = read(fd, buf + got, size - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    got += (size_t)n;
  }
  return 0;
}

static void send_file(const char *path, const pw_request *req, pw_response *res, pwd_reply *out) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return status_only(res, errno == EACCES ? 403 : 404);
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return close(fd), status_only(res, 404);
  if ((unsigned long long)st.st_size > PWD_STATIC_MAX_FILE) {
    pwd_log(PW_LOG_ERROR, "static: %s is larger than %u bytes: not served", path,
            PWD_STATIC_MAX_FILE);
    return close(fd), status_only(res, 500);
  }
  char etag[80];
  make_etag(&st, etag, sizeof etag);
  snprintf(out->headers, sizeof out->headers,
           "ETag: %s\r\nCache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\n", etag);
  res->extra_headers = out->headers;
  res->content_type = pwd_content_type(path);
  if (etag_matches(req, etag)) return close(fd), (void)(res->status = 304);
  size_t size = (size_t)st.st_size;
  out->body = malloc(size ? size : 1);
  if (!out->body || read_all(fd, out->body, size) != 0) {
    close(fd);
    res->extra_headers = NULL;
    return status_only(res, 500);
  }
  close(fd);
  res->status = 200;
  res->body = out->body;
  res->body_len = size;
}

void pwd_static_serve(const char *root, const pw_request *req, pw_response *res, pwd_reply *out) {
  /* HEAD gets the GET answer's headers; the library leaves the body out (RFC 9110 9.3.2). */
  if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
    status_only(res, 405);
    res->extra_headers = "Allow: GET, HEAD\r\n";
    return;
  }
  char rel[PATH_MAX], candidate[PATH_MAX + 16], resolved[PATH_MAX];
  int status = relative_path(req->path, rel, sizeof rel);
  if (status == 0) {
    snprintf(candidate, sizeof candidate, "%s/%s", root, rel);
    status = resolve_inside(root, candidate, resolved);
  }
  struct stat st;
  if (status == 0 && stat(resolved, &st) != 0) status = 404;
  if (status == 0 && S_ISDIR(st.st_mode)) {
    size_t plen = strlen(req->path);
    if (plen == 0 || req->path[plen - 1] != '/') return redirect_to_dir(req, res, out);
    snprintf(candidate, sizeof candidate, "%s/index.html", resolved);
    status = resolve_inside(root, candidate, resolved);
  }
  if (status != 0) return status_only(res, status);
  send_file(resolved, req, res, out);
}
