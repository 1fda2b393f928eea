/* Plain HTTP answers through on_http (what pushwired's endpoints rely on): the status line
 * names the status (202 Accepted, 304 Not Modified, 405 Method Not Allowed), 204 and 304 carry
 * no body and 204 no Content-Length, and the answer to HEAD has the GET answer's headers and
 * no body (RFC 9110 6.4.1, 8.6, 9.3.2), with keep-alive intact after it. Checked to fail: with
 * the old respond() (a body and Content-Length always, "Client Error" for 405/304, "OK" for
 * 202) the status texts differed and the HEAD answer carried the body, so the next response
 * on the connection was misread. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../unit/check.h"
#include <pushwire.h>

static void on_http(pw_server *srv, const pw_request *req, pw_response *res, void *user) {
  static const char body[] = "hello body\n";
  res->body = body;
  res->body_len = sizeof body - 1;
  if (strcmp(req->path, "/accepted") == 0) res->status = 202;
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

int main(void) {
  pw_callbacks cb = {.on_http = on_http};
  pw_server *srv = pw_server_new(NULL, &cb, NULL);
  CHECK(srv != NULL);
  CHECK_EQ_INT(pw_server_start(srv), 0);
  int port = pw_server_port(srv);
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
  if (r204 && r405 && r405 > r204) snprintf(between, sizeof between, "%.*s", (int)(r405 - r204), r204);
  CHECK(strstr(between, "Content-Length") == NULL); /* none on a 204 */
  const char *head = strstr(out, "HTTP/1.1 200");
  CHECK(head && strstr(head, "Content-Length: 11\r\n") != NULL); /* HEAD: the GET's length */
  CHECK(head && strncmp(strstr(head, "\r\n\r\n") + 4, "HTTP/1.1 200", 12) == 0); /* no body */
  pw_server_free(srv);
  return CHECK_DONE();
}
