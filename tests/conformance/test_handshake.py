#!/usr/bin/env python3
"""Opening handshake (RFC 6455 section 4) and the plain HTTP side of pw-echo."""

import sys
sys.dont_write_bytecode = True  # keep the source tree clean

import base64
import os
import ssl
import time

from wsclient import (OP_BINARY, OP_PING, OP_PONG, OP_TEXT, Tests, accept_for, build_frame,
                      check, new_key, run, skip_tls)

T = Tests("handshake")

# Plain requests (no Upgrade): pw-echo serves its page at "/" and nothing else.
GET_ROOT = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
GET_NOPE = b"GET /nope HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


@T.case
def test_valid_upgrade_101(ctx):
    c = ctx.raw()
    key = new_key()
    r = c.handshake(key=key)  # checks 101, Accept, Upgrade and Connection
    check(r.header("Sec-WebSocket-Accept") == accept_for(key), "bad accept")
    check(r.header("Sec-WebSocket-Protocol") is None,
          f"no subprotocol offered, yet got Sec-WebSocket-Protocol: {r.header('Sec-WebSocket-Protocol')}")
    check(r.header("Sec-WebSocket-Extensions") is None,
          f"no extension offered, yet got {r.header('Sec-WebSocket-Extensions')!r}")
    c.expect_silence(0.1)  # nothing after the 101 head
    c.echo_roundtrip(OP_TEXT, b"hello after handshake")


@T.case
def test_rfc_example_key(ctx):
    c = ctx.raw()
    r = c.handshake(key="dGhlIHNhbXBsZSBub25jZQ==")
    check(r.header("Sec-WebSocket-Accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
          f"accept {r.header('Sec-WebSocket-Accept')!r}")


@T.case
def test_case_insensitive_names_and_values(ctx):
    c = ctx.raw()
    key = new_key()
    raw = (f"GET /chat HTTP/1.1\r\nhost: 127.0.0.1\r\nUPGRADE: WebSocket\r\n"
           f"connection: UPGRADE\r\nsec-websocket-key: {key}\r\n"
           f"SEC-WEBSOCKET-VERSION: 13\r\n\r\n").encode()
    c.handshake(key=key, raw=raw)
    c.echo_roundtrip(OP_BINARY, b"\x00\x01")


@T.case
def test_connection_token_list_keepalive_upgrade(ctx):
    c = ctx.raw()
    c.handshake(connection="keep-alive, Upgrade")
    c.echo_roundtrip(OP_TEXT, b"token list")


@T.case
def test_connection_token_list_variants(ctx):
    for conn in ("Upgrade, keep-alive", "keep-alive,upgrade", "close ,  Upgrade ,foo"):
        c = ctx.raw()
        c.handshake(connection=conn)
        c.echo_roundtrip(OP_TEXT, conn.encode())


@T.case
def test_header_values_with_surrounding_blanks(ctx):
    c = ctx.raw()
    key = new_key()
    raw = (f"GET / HTTP/1.1\r\nHost: x\r\nUpgrade:   websocket  \r\nConnection:\tUpgrade\r\n"
           f"Sec-WebSocket-Key:   {key}   \r\nSec-WebSocket-Version: 13 \r\n\r\n").encode()
    c.handshake(key=key, raw=raw)


@T.case
def test_any_path_with_query(ctx):
    c = ctx.raw()
    c.handshake(path="/some/where?room=1&x=%20")
    c.echo_roundtrip(OP_TEXT, b"path")


@T.case
def test_extra_unknown_headers_ignored(ctx):
    c = ctx.raw()
    c.handshake(extra_headers=["Origin: http://example.com", "User-Agent: conformance/1.0",
                               "Sec-WebSocket-Extensions: permessage-deflate",
                               "Cookie: a=b; c=d"])
    r = c.response
    check(r.header("Sec-WebSocket-Extensions") is None,
          f"server accepted an extension: {r.header('Sec-WebSocket-Extensions')!r}")
    c.echo_roundtrip(OP_TEXT, b"no extensions")


@T.case
def test_head_sent_bytewise(ctx):
    c = ctx.raw()
    c.handshake(chunk=1, delay=0.0005)
    c.echo_roundtrip(OP_TEXT, b"bytewise head")


@T.case
def test_missing_key_400(ctx):
    c = ctx.raw()
    c.handshake(raw=c.request_bytes(key=None), expect=400)


def make_bad_key_case(key):
    def fn(ctx):
        c = ctx.raw()
        c.handshake(key=key, expect=400)
    return fn


T.add("key_short_abc_400", make_bad_key_case("abc"))
T.add("key_15_bytes_400", make_bad_key_case(base64.b64encode(os.urandom(15)).decode()))
T.add("key_17_bytes_400", make_bad_key_case(base64.b64encode(os.urandom(17)).decode()))
T.add("key_not_base64_400", make_bad_key_case("!!!!!!!!!!!!!!!!!!!!!!=="))
T.add("key_empty_400", make_bad_key_case(""))


def make_other_version_case(version):
    def fn(ctx):
        c = ctx.raw()
        r = c.handshake(version=version, expect=426)
        check("13" in r.tokens("Sec-WebSocket-Version"),
              f"426 without 'Sec-WebSocket-Version: 13': {r}")
    return fn


T.add("version_8_426", make_other_version_case("8"))
T.add("version_14_426", make_other_version_case("14"))


@T.case
def test_version_missing_rejected(ctx):
    c = ctx.raw()
    r = c.handshake(version=None, expect=None)
    check(r.status in (400, 426), f"expected 400 or 426 for a missing version, got {r.status}")


@T.case
def test_post_with_upgrade_headers_400(ctx):
    c = ctx.raw()
    c.handshake(method="POST", expect=400,
                extra_headers=["Content-Length: 0"])


@T.case
def test_http10_upgrade_400(ctx):
    c = ctx.raw()
    c.handshake(http="HTTP/1.0", expect=400)


@T.case
def test_garbage_request_line_400_and_close(ctx):
    c = ctx.raw()
    c.expect_response(b"THIS IS NOT HTTP AT ALL\r\n\r\n", 400)
    c.expect_eof(3, allow_reset=True, discard=True)


@T.case
def test_garbage_bytes_400_and_close(ctx):
    c = ctx.raw()
    c.expect_response(b"\x00\x01\x02\xff\xfe garbage \x7f\r\nmore\r\n\r\n", 400)
    c.expect_eof(3, allow_reset=True, discard=True)


@T.case
def test_header_line_without_colon_400(ctx):
    c = ctx.raw()
    key = new_key()
    raw = (f"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           f"This line has no colon\r\nSec-WebSocket-Key: {key}\r\n"
           f"Sec-WebSocket-Version: 13\r\n\r\n").encode()
    c.handshake(raw=raw, expect=400)
    c.expect_eof(3, allow_reset=True, discard=True)


@T.case
def test_head_too_large_431(ctx):
    srv = ctx.server("--max-head", 1024)
    c = ctx.raw(srv)
    req = c.request_bytes(extra_headers=["X-Filler: " + "f" * 2000])
    check(len(req) > 2000, "test bug")
    c.expect_response(req, 431)
    c.expect_eof(3, allow_reset=True, discard=True)


@T.case
def test_head_under_max_head_ok(ctx):
    srv = ctx.server("--max-head", 1024)
    c = ctx.raw(srv)
    base = len(c.request_bytes(key=new_key()))
    filler = 900 - base - len("X-Filler: \r\n")
    c.handshake(extra_headers=["X-Filler: " + "f" * filler])
    c.echo_roundtrip(OP_TEXT, b"small head ok")


@T.case
def test_plain_get_root_200_html(ctx):
    c = ctx.raw()
    r = c.expect_response(GET_ROOT, 200)
    ct = (r.header("Content-Type") or "").lower()
    check(ct.startswith("text/html"), f"Content-Type {ct!r}, expected text/html")
    check(len(r.body) > 0 and b"<" in r.body, f"empty or non-HTML body {r.body[:80]!r}")


@T.case
def test_plain_get_unknown_404(ctx):
    c = ctx.raw()
    c.expect_response(GET_NOPE, 404)


@T.case
def test_plain_keepalive_two_requests(ctx):
    c = ctx.raw()
    r1 = c.expect_response(GET_ROOT, 200, what="first request")
    check(r1.header("Content-Length") is not None or "chunked" in r1.tokens("Transfer-Encoding"),
          "keep-alive response without Content-Length or chunked encoding")
    c.expect_response(GET_NOPE, 404, what="second request")


@T.case
def test_plain_request_then_upgrade_on_same_connection(ctx):
    c = ctx.raw()
    c.expect_response(GET_ROOT, 200, what="plain request")
    c.handshake(path="/ws")
    c.echo_roundtrip(OP_TEXT, b"upgraded after a plain request")


@T.case
def test_lowercase_method_with_upgrade_400(ctx):
    c = ctx.raw()
    c.handshake(method="get", expect=400)


@T.case
def test_upgrade_headers_wrong_token_is_plain_request(ctx):
    # Upgrade without the 'websocket' token -> a plain request -> 404 for /nope, 200 for /
    c = ctx.raw()
    c.handshake(path="/nope", upgrade="h2c", expect=404)
    c2 = ctx.raw()
    c2.handshake(path="/", connection="keep-alive", expect=200)


@T.case
def test_handshake_and_frame_in_one_send(ctx):
    c = ctx.raw()
    c.handshake(extra=build_frame(OP_TEXT, b"sent with the head"))
    c.expect_echo(OP_TEXT, b"sent with the head")


@T.case
def test_handshake_and_several_frames_in_one_send(ctx):
    c = ctx.raw()
    extra = (build_frame(OP_TEXT, b"one") + build_frame(OP_PING, b"pp")
             + build_frame(OP_BINARY, b"\x02" * 200) + build_frame(OP_TEXT, b"fr", fin=False)
             + build_frame(0, b"ag", fin=True))
    c.handshake(extra=extra)
    c.expect_echo(OP_TEXT, b"one")
    c.expect_frame(OP_PONG, b"pp")
    c.expect_echo(OP_BINARY, b"\x02" * 200)
    c.expect_echo(OP_TEXT, b"frag")


@T.case
def test_subprotocol_echo_selected(ctx):
    c = ctx.raw()
    r = c.handshake(protocols="chat, echo")
    check(r.header_all("Sec-WebSocket-Protocol") == ["echo"],
          f"expected 'Sec-WebSocket-Protocol: echo', got {r.header_all('Sec-WebSocket-Protocol')}")
    c.echo_roundtrip(OP_TEXT, b"with subprotocol")


@T.case
def test_subprotocol_only_echo(ctx):
    c = ctx.raw()
    r = c.handshake(protocols="echo")
    check(r.header_all("Sec-WebSocket-Protocol") == ["echo"],
          f"expected 'Sec-WebSocket-Protocol: echo', got {r.header_all('Sec-WebSocket-Protocol')}")


@T.case
def test_subprotocol_chat_not_selected(ctx):
    c = ctx.raw()
    r = c.handshake(protocols="chat")
    check(r.header("Sec-WebSocket-Protocol") is None,
          f"expected no Sec-WebSocket-Protocol, got {r.header('Sec-WebSocket-Protocol')!r}")
    c.echo_roundtrip(OP_TEXT, b"no subprotocol")


# ---- requests that cannot be valid: a 400 at once and a close, never an upgrade or a wait
# for the handshake timeout (here 30 s, so only a prompt answer passes). Checked to fail:
# with pw__head_check_bytes() (src/httphead.c) judging nothing, the garbage, ClientHello,
# bare-LF and bare-CR cases got no answer within 1 s (the server waited for a CRLFCRLF);
# without host_count_ok() the upgrades without Host or with two got 101 and the plain
# HTTP/1.1 GET without Host 200; without the duplicate checks in pw__upgrade_status
# (src/handshake.c) two keys or two versions got 101.
PROMPT = 1.0  # seconds: "at once", with a margin for a loaded machine
SLOW_HANDSHAKE = ("--handshake-timeout", 30000)


def expect_prompt_400(ctx, data):
    """Send data; the 400 must arrive within PROMPT seconds and TCP close right after."""
    c = ctx.raw(ctx.server(*SLOW_HANDSHAKE))
    t0 = time.monotonic()
    r = c.expect_response(data, 400, timeout=PROMPT)
    c.expect_eof(PROMPT, allow_reset=True, discard=True)
    check(time.monotonic() - t0 < 2 * PROMPT, "400 and close took too long")
    return r


def upgrade_request(host_lines=("Host: x",), extra=()):
    lines = ["GET / HTTP/1.1", *host_lines, "Upgrade: websocket", "Connection: Upgrade",
             f"Sec-WebSocket-Key: {new_key()}", "Sec-WebSocket-Version: 13", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@T.case
def test_upgrade_without_host_400(ctx):
    expect_prompt_400(ctx, upgrade_request(host_lines=()))


@T.case
def test_upgrade_with_two_hosts_400(ctx):
    expect_prompt_400(ctx, upgrade_request(host_lines=("Host: a", "Host: b")))


@T.case
def test_plain_http11_without_host_400(ctx):
    expect_prompt_400(ctx, b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n")


@T.case
def test_plain_http10_without_host_served(ctx):
    # RFC 9112 3.2 asks Host of HTTP/1.1 only: an HTTP/1.0 page request is still served.
    c = ctx.raw()
    c.expect_response(b"GET / HTTP/1.0\r\n\r\n", 200)


@T.case
def test_two_websocket_keys_400(ctx):
    extra = (f"Sec-WebSocket-Key: {new_key()}",)
    expect_prompt_400(ctx, upgrade_request(extra=extra))


@T.case
def test_two_websocket_versions_400(ctx):
    expect_prompt_400(ctx, upgrade_request(extra=("Sec-WebSocket-Version: 13",)))


@T.case
def test_binary_garbage_400_at_once(ctx):
    # No CRLFCRLF will ever come: the first byte (not a token character) decides.
    expect_prompt_400(ctx, b"\x00\x01\x02\xff\xfe garbage without any line end")


@T.case
def test_bare_lf_head_400_at_once(ctx):
    # A head of bare LF lines never holds the CRLFCRLF the server waits for: the first LF
    # without a CR decides.
    expect_prompt_400(ctx, b"GET / HTTP/1.1\nHost: x\nUpgrade: websocket\n")


@T.case
def test_bare_cr_in_head_400_at_once(ctx):
    expect_prompt_400(ctx, b"GET / HTTP/1.1\rHost: x\r")


def tls_client_hello():
    """The first flight of a real TLS client (Python's ssl over memory BIOs)."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ssl.create_default_context().wrap_bio(incoming, outgoing, server_hostname="x")
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = outgoing.read()
    check(hello[:1] == b"\x16", f"not a TLS handshake record: {hello[:8]!r}")
    return hello


@T.case
def test_tls_client_hello_on_plain_port_400(ctx):
    skip_tls("sends a ClientHello to the plain port")
    r = expect_prompt_400(ctx, tls_client_hello())
    check(b"plain HTTP" in r.body, f"the 400 does not say the port speaks plain HTTP: {r.body!r}")


@T.case
def test_empty_line_before_request_served(ctx):
    # RFC 9112 2.2: a server SHOULD ignore an empty line before the request line.
    c = ctx.raw()
    c.expect_response(b"\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404)


@T.case
def test_keepalive_gets_after_new_checks(ctx):
    # Plain GETs without Upgrade keep getting the page on one connection.
    c = ctx.raw()
    for _ in range(3):
        c.send(GET_ROOT)
        r = c.read_http_response()
        check(r.status == 200 and b"<" in r.body, f"expected the page, got {r.status}: {r}")


if __name__ == "__main__":
    run(T)
