/* pw-echo-example: the smallest pushwire server. Every message a client sends comes back to it
 * (text as text, binary as binary), and "/" serves a page to try it from a browser.
 * Usage: pw-echo-example [PORT]   (default 8080, 0 = let the OS pick; Ctrl-C stops it)
 *
 * The server runs in a thread of its own (pw_server_start); the callbacks run there, so they
 * only queue work: pw_send copies the message and returns. main just waits for the signal. */
#include <pushwire.h>

#include "example.h"
#include <signal.h>
#include <stdlib.h>
#include <string.h>

extern const char pw_echo_page[]; /* www/echo.html, embedded at build time */
extern const size_t pw_echo_page_len;

static void on_message(pw_server *srv, pw_conn_id id, const void *data, size_t len, int is_binary,
                       void *user) {
  pw_send(srv, id, data, len, is_binary ? PW_BINARY : PW_TEXT);
}

/* Plain HTTP: the page at "/"; anything else left unanswered, which the library makes a 404. */
static void on_http(pw_server *srv, const pw_request *req, pw_response *res, void *user) {
  if (strcmp(req->method, "GET") != 0 || strcmp(req->path, "/") != 0) return;
  res->status = 200;
  res->content_type = "text/html; charset=utf-8";
  res->body = pw_echo_page; /* copied by the library */
  res->body_len = pw_echo_page_len;
}

int main(int argc, char **argv) {
  pw_options opt = {.port = argc > 1 ? atoi(argv[1]) : 8080};
  pw_callbacks cb = {.on_message = on_message, .on_http = on_http};

  sigset_t stop_signals = example_block_stop_signals(); /* before the server's threads exist */
  pw_server *srv = example_start("pw-echo-example", &opt, &cb);
  int sig;
  sigwait(&stop_signals, &sig); /* Ctrl-C (SIGINT) or SIGTERM */
  pw_server_stop(srv);          /* every client gets its 1001 "server shutting down" */
  pw_server_free(srv);
  return 0;
}
