#!/usr/bin/env python3
"""Limits of the HTTP phase, answered at once with the right status and the connection ended
(against pw-echo): a request head that never ends (431 as soon as it passes --max-head, not
when it ends), too many header lines (431), a body announced over max_body_size (413 before
the body is sent). How each was checked to fail without its defence is written at the test.
The other limits are proven elsewhere: a complete head over --max-head (test_handshake.py),
--max-message / 1009 (test_fragmentation.py), the handshake timeout, ping interval and idle
timeout (test_robustness.py), max_connections, max_subscriptions, running out of descriptors
and slowloris clients (tests/hardening/*.c)."""

import sys
sys.dont_write_bytecode = True  # keep the source tree clean

import time

from wsclient import Tests, check, run

T = Tests("limits")
MAX_HEAD = 1024


@T.case
def test_endless_head_431_before_it_ends(ctx):
    # A head that grows without end must be cut at max_head_size, not buffered until a
    # "\r\n\r\n" that never comes. Checked: with http.c's `!head_len && len > max_head_size`
    # test removed, no answer came within 2 s (the server waited for the end): failed.
    srv = ctx.server("--max-head", MAX_HEAD)
    c = ctx.raw(srv)
    c.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    for i in range(12):  # 12 x 100 bytes, never the blank line that ends a head
        c.send(b"X-Endless-%02d: " % i + b"e" * 84 + b"\r\n")
        time.sleep(0.005)
    t0 = time.monotonic()
    r = c.read_http_response(timeout=2)
    check(r.status == 431, f"expected 431, got {r.status}: {r}")
    check(time.monotonic() - t0 < 1.5, "431 came late")
    check("close" in r.tokens("Connection"), f"431 without 'Connection: close': {r}")
    c.expect_eof(3, allow_reset=True, discard=True)


@T.case
def test_too_many_header_lines_431(ctx):
    # 65 short header lines (the head itself is small): 431. Checked: with the count test in
    # httphead.c's on_field removed, the ASan build of pw-echo wrote past its 64-entry array
    # and died: failed.
    c = ctx.raw()
    extra = [f"X-H{i}: v" for i in range(65)]
    req = c.request_bytes(extra_headers=extra, key="dGhlIHNhbXBsZSBub25jZQ==")
    check(len(req) < 8192, "test bug: the head must stay under the default max_head_size")
    c.send(req)
    r = c.read_http_response()
    check(r.status == 431, f"expected 431, got {r.status}: {r}")
    c.expect_eof(3, allow_reset=True, discard=True)


@T.case
def test_64_header_lines_accepted(ctx):
    # the boundary: 64 lines in all are fine
    c = ctx.raw()
    base = len(c.request_bytes(key="dGhlIHNhbXBsZSBub25jZQ==").split(b"\r\n")) - 3
    extra = [f"X-H{i}: v" for i in range(64 - base)]
    c.handshake(extra_headers=extra)


@T.case
def test_body_over_max_413_before_it_is_sent(ctx):
    # A plain request announcing a body over max_body_size (1 MiB by default) is answered
    # 413 from its head alone. Checked: with the `*body_len > max_body` test in httphead.c
    # (pw__head_body) removed, the server waited for the 2 MB body: no answer in 2 s, failed.
    c = ctx.raw()
    c.send(b"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2000000\r\n\r\n")
    r = c.read_http_response(timeout=2)
    check(r.status == 413, f"expected 413, got {r.status}: {r}")
    c.expect_eof(3, allow_reset=True, discard=True)


if __name__ == "__main__":
    run(T)
