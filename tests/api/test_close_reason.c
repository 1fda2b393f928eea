/* pw_close refuses a reason that is not valid UTF-8 (RFC 6455 5.5.1: a client fails the
 * connection on one) with PW_EINVAL and leaves the connection open; a valid multi-byte reason
 * of the largest size (123 bytes) reaches the client byte for byte; 124 bytes are refused.
 * Both from the test's thread (the inbox path) and from a callback (the loop's direct path).
 * Checked to fail before the UTF-8 check: pw_close returned 0 and the client got the bytes. */
#include <pushwire.h>
#include <stdlib.h>
#include <string.h>

#include "../support/harness.h"
#include "../support/wsclient.h"
#include "../support/check.h"

static const char *bad_reasons[] = {
    "\xff",                     /* never valid */
    "caf\xc3",                  /* truncated 2-byte sequence */
    "\xed\xa0\x80",             /* a UTF-16 surrogate */
    "\xc0\xaf",                 /* overlong '/' */
    "ok then \xf4\x90\x80\x80", /* past U+10FFFF */
};

static int loop_results[5];

/* On the loop thread (a message from the client asks for it): the direct path. */
static void on_message(pw_server *srv, pw_conn_id id, const void *data, size_t len, int bin,
                       void *user) {
  (void)data, (void)len, (void)bin, (void)user;
  for (int i = 0; i < 5; i++) loop_results[i] = pw_close(srv, id, 4000, bad_reasons[i]);
  pw_send(srv, id, "still open", 10, PW_TEXT);
}

static int recv_text(wsc *c, const char *want) {
  wsc_frame f;
  if (wsc_recv(c, &f, 3000) != 0) return 0;
  int ok = f.opcode == 1 && f.len == strlen(want) && memcmp(f.payload, want, f.len) == 0;
  free(f.payload);
  return ok;
}

int main(void) {
  pw_server *srv = th_start(NULL, on_message);
  wsc c;
  CHECK_EQ_INT(wsc_connect(&c, pw_server_port(srv), "/"), 0);
  pw_conn_id id = th_wait_open(1, 3000);
  CHECK(id != 0);

  for (int i = 0; i < 5; i++) CHECK_EQ_INT(pw_close(srv, id, 4000, bad_reasons[i]), PW_EINVAL);
  CHECK_EQ_INT(wsc_send(&c, 1, 1, "go", 2), 0);
  CHECK(recv_text(&c, "still open"));
  for (int i = 0; i < 5; i++) CHECK_EQ_INT(loop_results[i], PW_EINVAL);

  /* 41 three-byte characters: 123 bytes, the most a close frame can carry after its code */
  char reason[124 + 3] = "";
  for (int i = 0; i < 41; i++) strcat(reason, "\xe2\x82\xac"); /* EURO SIGN */
  strcat(reason, "x");                                         /* 124 bytes: one too many */
  CHECK_EQ_INT(pw_close(srv, id, 4000, reason), PW_EINVAL);
  reason[123] = 0;
  CHECK_EQ_INT(pw_close(srv, id, 4001, reason), 0);
  wsc_frame f;
  CHECK_EQ_INT(wsc_recv(&c, &f, 3000), 0);
  CHECK_EQ_INT(f.opcode, 8);
  CHECK_EQ_SIZE(f.len, 2 + 123);
  CHECK_EQ_INT(f.len >= 2 ? (f.payload[0] << 8 | f.payload[1]) : 0, 4001);
  if (f.len == 125) CHECK_MEM(f.payload + 2, reason, 123);
  free(f.payload);
  wsc_close(&c);
  pw_server_free(srv);
  return CHECK_DONE();
}
