/* Unit tests of the opening-handshake rules (src/handshake.c): token lists, key validity,
 * the accept value (RFC 6455 section 1.3's example), status per defect, subprotocol offers. */
#include <string.h>

#include "../support/check.h"
#include "handshake.h"

#define H(n, v) \
  { n, sizeof(n) - 1, v, sizeof(v) - 1 }
#define GOOD_KEY "dGhlIHNhbXBsZSBub25jZQ=="

static pw_request make(const char *method, const pw_header *h, size_t n) {
  pw_request r;
  memset(&r, 0, sizeof r);
  r.method = method;
  r.path = "/";
  r.query = "";
  r.headers = h;
  r.header_count = n;
  return r;
}

static void test_tokens(void) {
  CHECK(pw__has_token("Upgrade", 7, "upgrade"));
  CHECK(pw__has_token("keep-alive, Upgrade", 19, "upgrade"));
  CHECK(pw__has_token(" keep-alive ,\tUPGRADE\t", 22, "upgrade"));
  CHECK(!pw__has_token("upgrades", 8, "upgrade"));
  CHECK(!pw__has_token("keep-alive", 10, "upgrade"));
  CHECK(!pw__has_token("", 0, "upgrade"));
  CHECK(!pw__has_token("up grade", 8, "upgrade"));
  CHECK(pw__has_token(",,websocket,,", 13, "websocket"));
}

static void test_keys(void) {
  CHECK(pw__ws_key_valid(GOOD_KEY, 24));
  CHECK(pw__ws_key_valid("AAAAAAAAAAAAAAAAAAAAAA==", 24));
  CHECK(!pw__ws_key_valid("dGhlIHNhbXBsZSBub25jZQ=", 23));   /* short */
  CHECK(!pw__ws_key_valid("dGhlIHNhbXBsZSBub25jZQ===", 25)); /* long */
  CHECK(!pw__ws_key_valid("dGhlIHNhbXBsZSBub25jZQ!=", 24));  /* 2nd pad missing */
  CHECK(!pw__ws_key_valid("dGhlIHNhbXBsZSBub25j*Q==", 24));  /* bad alphabet */
  CHECK(!pw__ws_key_valid("dGhlIHNhbXBsZSBub25jZR==", 24));  /* non-zero pad bits */
  CHECK(!pw__ws_key_valid("dGhlIHNhbXBsZSBub25jZQ", 22));
  CHECK(!pw__ws_key_valid("c2hvcnQ=AAAAAAAAAAAAAA==", 24)); /* '=' inside */
}

static void test_accept(void) {
  char out[PW__ACCEPT_LEN + 1];
  CHECK_EQ_INT(pw__ws_accept(GOOD_KEY, 24, out), 0);
  CHECK_MEM(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", PW__ACCEPT_LEN + 1);
}

static void test_status(void) {
  pw_header ok[] = {H("Host", "x"), H("Upgrade", "websocket"), H("Connection", "Upgrade"),
                    H("Sec-WebSocket-Key", GOOD_KEY), H("Sec-WebSocket-Version", "13")};
  pw_request r = make("GET", ok, 5);
  CHECK(pw__is_upgrade(&r));
  CHECK_EQ_INT(pw__upgrade_status(&r, 1, 1), 101);
  CHECK_EQ_INT(pw__upgrade_status(&r, 1, 0), 400);
  CHECK_EQ_INT(pw__upgrade_status(&r, 2, 0), 400);
  r.method = "POST";
  CHECK_EQ_INT(pw__upgrade_status(&r, 1, 1), 400);

  pw_header v8[] = {H("upgrade", "WebSocket"), H("connection", "keep-alive, upgrade"),
                    H("sec-websocket-key", GOOD_KEY), H("sec-websocket-version", "8")};
  r = make("GET", v8, 4);
  CHECK(pw__is_upgrade(&r)); /* names and values are case-insensitive */
  CHECK_EQ_INT(pw__upgrade_status(&r, 1, 1), 426);
  r.header_count = 3; /* no version at all */
  CHECK_EQ_INT(pw__upgrade_status(&r, 1, 1), 426);

  pw_header badkey[] = {H("Upgrade", "websocket"), H("Connection", "Upgrade"),
                        H("Sec-WebSocket-Key", "short"), H("Sec-WebSocket-Version", "13")};
  r = make("GET", badkey, 4);
  CHECK_EQ_INT(pw__upgrade_status(&r, 1, 1), 400);
  r = make("GET", badkey + 1, 3);
  CHECK(!pw__is_upgrade(&r)); /* no Upgrade header: a plain request */
  pw_header noconn[] = {H("Upgrade", "websocket"), H("Connection", "keep-alive")};
  r = make("GET", noconn, 2);
  CHECK(!pw__is_upgrade(&r));
}

static void test_offers(void) {
  pw_header h[] = {H("Sec-WebSocket-Protocol", "chat, echo"), H("X", "y"),
                   H("sec-websocket-protocol", " v2.json ")};
  pw_request r = make("GET", h, 3);
  char store[64];
  const char *offers[PW__MAX_OFFERS];
  size_t n = pw__subprotocol_offers(&r, store, sizeof store, offers);
  CHECK_EQ_SIZE(n, 3);
  if (n == 3) {
    CHECK(strcmp(offers[0], "chat") == 0);
    CHECK(strcmp(offers[1], "echo") == 0);
    CHECK(strcmp(offers[2], "v2.json") == 0);
  }
  CHECK_EQ_SIZE(pw__subprotocol_offers(&r, store, 6, offers), 1); /* store too small */
  const pw_header *found = pw_request_header(&r, "SEC-WEBSOCKET-PROTOCOL");
  CHECK(found == &h[0]);
  CHECK(pw_request_header(&r, "Missing") == NULL);
}

int main(void) {
  test_tokens();
  test_keys();
  test_accept();
  test_status();
  test_offers();
  return CHECK_DONE();
}
