/* Plain HTTP answers through on_http (what pushwired's endpoints rely on).
 * 1. Status texts and bodies: the status line names the status (202 Accepted, 304 Not
 *    Modified, 405 Method Not Allowed), 204 and 304 carry no body and 204 no Content-Length,
 *    and the answer to HEAD has the GET answer's headers and no body (RFC 9110 6.4.1, 8.6,
 *    9.3.2), with keep-alive intact after it. Checked to fail: with the old respond() (a body
 *    and Content-Length always, "Client Error" for 405/304, "OK" for 202) the status texts
 *    differed and the HEAD answer carried the body, so the next response was misread.
 * 2. Invalid answers from on_http are never sent: each gets 500 (keep-alive kept), one
 *    PW_LOG_WARN line per 10 s per loop with the count, and the server goes on serving.
 *    Checked to fail: with response_fault() in src/http.c returning NULL, the NULL body
 *    crashed the server (SIGSEGV in memcpy), "HTTP/1.1 -5 Server Error" and "HTTP/1.1
 *    1000000" went out, the CRLF in content_type put a Set-Cookie header in the answer and
 *    the empty line in extra_headers a second response; with the fixed 1 KiB head buffer of
 *    the old respond_as(), the 3,000-byte content type was copied out of that buffer with
 *    snprintf's would-be length (a read past it) and arrived garbled; with
 *    report_bad_response() logging every time, the burst gave 13 lines instead of 1. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../support/wsclient.h"
#include "../support/check.h"
#include "../support/clock.h"
#include <pushwire.h>

static char long_type[3001]; /* "text/x-" and 'a's: longer than any fixed head buffer */

/* The invalid answers of part 2, by path; 1 if the path was one of them. */
static int invalid_answer(const char *path, pw_response *res) {
  static const struct {
    const char *path;
    int status;
    const char *type, *extra;
  } bad[] = {
      {"/status-negative", -5, NULL, NULL},
      {"/status-huge", 1000000, NULL, NULL},
      {"/status-101", 101, NULL, NULL},
      {"/status-199", 199, NULL, NULL},
      {"/status-600", 600, NULL, NULL},
      {"/type-crlf", 200, "text/html\r\nSet-Cookie: stolen=1", NULL},
      {"/extra-bare-lf", 200, NULL, "X-A: 1\nX-B: 2\r\n"},
      {"/extra-bare-cr", 200, NULL, "X-A: 1\rX-B: 2\r\n"},
      {"/extra-empty-line", 200, NULL, "X-A: 1\r\n\r\nHTTP/1.1 200 OK\r\n"},
      {"/extra-unended", 200, NULL, "X-A: 1"},
      {"/extra-bad-name", 200, NULL, "X A: 1\r\n"},
      {"/extra-length", 200, NULL, "Content-Length: 0\r\n"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    if (strcmp(path, bad[i].path) != 0) continue;
    res->status = bad[i].status;
    res->content_type = bad[i].type;
    res->extra_headers = bad[i].extra;
    return 1;
  }
  if (strcmp(path, "/null-body") != 0) return 0;
  res->status = 200;
  res->body = NULL; /* and body_len > 0 */
  return 1;
}

static void on_http(pw_server *srv, const pw_request *req, pw_response *res, void *user) {
  static const char body[] = "hello body\n";
  res->body = body;
  res->body_len = sizeof body - 1;
  if (invalid_answer(req->path, res)) return;
  if (strcmp(req->path, "/extra-ok") == 0) {
    res->status = 200;
    res->extra_headers = "X-A: 1\r\nX-Tab: two\tparts \xc3\xa9\r\n";
  } else if (strcmp(req->path, "/long-type") == 0) {
    res->status = 200;
    res->content_type = long_type;
  } else if (strcmp(req->path, "/accepted") == 0) res->status = 202;
  else if (strcmp(req->path, "/same") == 0) res->status = 304;
  else if (strcmp(req->path, "/empty") == 0) res->status = 204;
  else if (strcmp(req->path, "/post-only") == 0) res->status = 405;
  else res->status = 200;
}

/* Everything the server sends on one keep-alive connection for these requests, read until the
 * server has been quiet for 300 ms. */
static size_t exchange(int port, const char *requests, char *out, size_t cap) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) return 0;
  size_t len = strlen(requests), got = 0;
  if (write(fd, requests, len) != (ssize_t)len) return close(fd), 0;
  struct pollfd p = {.fd = fd, .events = POLLIN};
  while (got + 1 < cap && poll(&p, 1, 300) == 1) {
    ssize_t n = read(fd, out + got, cap - 1 - got);
    if (n <= 0) break;
    got += (size_t)n;
  }
  out[got] = '\0';
  close(fd);
  return got;
}

static int count(const char *hay, const char *needle) {
  int n = 0;
  for (const char *p = hay; (p = strstr(p, needle)); p++) n++;
  return n;
}

static void test_status_texts(int port) {
  char out[8192];
  exchange(port,
           "GET /accepted HTTP/1.1\r\nHost: x\r\n\r\n"
           "GET /same HTTP/1.1\r\nHost: x\r\n\r\n"
           "GET /empty HTTP/1.1\r\nHost: x\r\n\r\n"
           "GET /post-only HTTP/1.1\r\nHost: x\r\n\r\n"
           "HEAD /page HTTP/1.1\r\nHost: x\r\n\r\n"
           "GET /page HTTP/1.1\r\nHost: x\r\n\r\n",
           out, sizeof out);
  CHECK(strstr(out, "HTTP/1.1 202 Accepted\r\n") != NULL);
  CHECK(strstr(out, "HTTP/1.1 304 Not Modified\r\n") != NULL);
  CHECK(strstr(out, "HTTP/1.1 204 No Content\r\n") != NULL);
  CHECK(strstr(out, "HTTP/1.1 405 Method Not Allowed\r\n") != NULL);
  /* Bodies: 202, 405 and the GET have one; 304, 204 and HEAD none. Six answers, in order. */
  CHECK_EQ_INT(count(out, "HTTP/1.1 "), 6);
  CHECK_EQ_INT(count(out, "hello body\n"), 3);
  const char *r204 = strstr(out, "HTTP/1.1 204");
  const char *r405 = strstr(out, "HTTP/1.1 405");
  CHECK(r204 && r405 && r204 < r405);
  char between[512] = "";
  if (r204 && r405 && r405 > r204)
    snprintf(between, sizeof between, "%.*s", (int)(r405 - r204), r204);
  CHECK(strstr(between, "Content-Length") == NULL); /* none on a 204 */
  const char *head = strstr(out, "HTTP/1.1 200");
  CHECK(head && strstr(head, "Content-Length: 11\r\n") != NULL); /* HEAD: the GET's length */
  CHECK(head && strncmp(strstr(head, "\r\n\r\n") + 4, "HTTP/1.1 200", 12) == 0); /* no body */
}

/* ---- part 2: invalid answers ------------------------------------------------------------- */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static int warn_lines;
static char last_warn[512];

static void on_log(int level, const char *msg, void *user) {
  if (level != PW_LOG_WARN || !strstr(msg, "on_http")) return;
  pthread_mutex_lock(&log_lock);
  warn_lines++;
  snprintf(last_warn, sizeof last_warn, "%s", msg);
  pthread_mutex_unlock(&log_lock);
}

static int warns(char *copy, size_t cap) {
  pthread_mutex_lock(&log_lock);
  int n = warn_lines;
  if (copy) snprintf(copy, cap, "%s", last_warn);
  pthread_mutex_unlock(&log_lock);
  return n;
}

static const char *const bad_paths[] = {
    "/null-body",     "/status-negative", "/status-huge",   "/status-101",    "/status-199",
    "/status-600",    "/type-crlf",       "/extra-bare-lf", "/extra-bare-cr", "/extra-empty-line",
    "/extra-unended", "/extra-bad-name",  "/extra-length",
};
#define NBAD (sizeof bad_paths / sizeof bad_paths[0])

static void test_invalid_answers(int port) {
  static char requests[4096], out[32768];
  size_t len = 0;
  for (size_t i = 0; i < NBAD; i++)
    len += (size_t)snprintf(requests + len, sizeof requests - len,
                            "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", bad_paths[i]);
  snprintf(requests + len, sizeof requests - len, "GET /extra-ok HTTP/1.1\r\nHost: x\r\n\r\n");
  exchange(port, requests, out, sizeof out);
  /* One keep-alive connection: every bad answer became a 500, then the good one came. */
  CHECK_EQ_INT(count(out, "HTTP/1.1 500 Internal Server Error\r\n"), (int)NBAD);
  CHECK_EQ_INT(count(out, "HTTP/1.1 "), (int)NBAD + 1);
  CHECK_EQ_INT(count(out, "Connection: keep-alive\r\n"), (int)NBAD + 1);
  CHECK(strstr(out, "Set-Cookie") == NULL && strstr(out, "X-B") == NULL);
  CHECK(strstr(out, "-5") == NULL && strstr(out, "1000000") == NULL);
  CHECK(strstr(out, "HTTP/1.1 200 OK\r\n") != NULL);
  CHECK(strstr(out, "\r\nX-A: 1\r\nX-Tab: two\tparts \xc3\xa9\r\n") != NULL);
  /* A long content type arrives whole. */
  exchange(port, "GET /long-type HTTP/1.1\r\nHost: x\r\n\r\n", out, sizeof out);
  char want[3100];
  snprintf(want, sizeof want, "\r\nContent-Type: %s\r\n", long_type);
  CHECK(strstr(out, want) != NULL);
  /* The log: one line for the whole burst, naming the first fault. */
  char line[512];
  CHECK_EQ_INT(warns(line, sizeof line), 1);
  CHECK(strstr(line, "GET /null-body") && strstr(line, "body NULL") && strstr(line, " 1 invalid"));
}

/* After 10 s the next bad answer logs again, with every one since the first line counted. */
static void test_log_count(int port) {
  char out[4096], line[512], want[64];
  int sent = 0;
  uint64_t deadline = now_ms() + 15000;
  while (warns(NULL, 0) < 2 && now_ms() < deadline) {
    exchange(port, "GET /status-600 HTTP/1.1\r\nHost: x\r\n\r\n", out, sizeof out);
    sent++;
  }
  CHECK_EQ_INT(warns(line, sizeof line), 2);
  snprintf(want, sizeof want, " %d invalid response(s)", (int)NBAD - 1 + sent);
  CHECK(strstr(line, "GET /status-600") && strstr(line, "status 600") && strstr(line, want));
}

int main(void) {
  memcpy(long_type, "text/x-", 7);
  memset(long_type + 7, 'a', sizeof long_type - 8);
  pw_options opt = {.log = on_log, .log_level = PW_LOG_WARN};
  pw_callbacks cb = {.on_http = on_http};
  pw_server *srv = pw_server_new(&opt, &cb, NULL);
  CHECK(srv != NULL);
  CHECK_EQ_INT(pw_server_start(srv), 0);
  int port = pw_server_port(srv);
  test_status_texts(port);
  test_invalid_answers(port);
  test_log_count(port);
  pw_server_free(srv);
  return CHECK_DONE();
}
