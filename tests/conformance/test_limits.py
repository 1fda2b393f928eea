#!/usr/bin/env python3
"""Limits of the HTTP phase, answered at once with the right status and the connection ended
(against pw-echo): a request head that never ends (431 as soon as it passes --max-head, not
when it ends), too many header lines (431), a body announced over max_body_size (413 before
the body is sent); and one limit of the WebSocket phase: a client that pipelines 64 KiB
messages and reads its echoes slowly is never taken for a slow consumer (1008), also over
TLS and with permessage-deflate. How each was checked to fail without its defence is
written at the test.
The other limits are proven elsewhere: a complete head over --max-head (test_handshake.py),
--max-message / 1009 (test_fragmentation.py), the handshake timeout, ping interval and idle
timeout (test_robustness.py), max_connections, max_subscriptions, running out of descriptors
and slowloris clients (tests/hardening/*.c)."""

import sys
sys.dont_write_bytecode = True  # keep the source tree clean

import time

import base64
import os
import select
import ssl
import zlib

from wsclient import OP_BINARY, OP_CLOSE, RSV1, Tests, build_frame, check, run

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
    c.expect_response(req, 431)
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
    c.expect_response(b"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2000000\r\n\r\n",
                      413, timeout=2)
    c.expect_eof(3, allow_reset=True, discard=True)


# A pipelining client that reads its echoes slowly: 25.6 MB of requests written as fast as
# the socket takes them, echoes read at most one per millisecond. More than the kernel's
# buffers and the 1 MiB queue limit together would pile up, so only the pause keeps it
# alive. One thread, non-blocking, so it runs over TLS as well. (No small SO_RCVBUF: set
# after connect, on loopback's 64 KiB segments, it stalls TCP on persist timers.)
PIPE_MSG, PIPE_COUNT, PIPE_REPS = 64 * 1024, 100, 4


def pipe_frames(buf):
    """Parse whole server frames at the front of buf: [(byte 0, payload)], bytes used."""
    out, i = [], 0
    while len(buf) - i >= 2:
        code = buf[i + 1] & 0x7F
        hl = 2 + (2 if code == 126 else 8 if code == 127 else 0)
        if len(buf) - i < hl:
            break
        n = code if code < 126 else int.from_bytes(buf[i + 2:i + hl], "big")
        if len(buf) - i < hl + n:
            break
        out.append((buf[i], bytes(buf[i + hl:i + hl + n])))
        i += hl + n
    return out, i


def pipe_step_write(sock, wire, sent):
    try:
        return sent + sock.send(wire[sent:sent + (1 << 20)])
    except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
        return sent


def pipe_step_read(sock, buf):
    try:
        d = sock.recv(65536)
    except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
        return True
    buf += d
    return bool(d)


def pipeline_slow_reader(c, wire, decode, expected, pace=0.001):
    """Write all of wire while reading echoes at most one per `pace` seconds; each echo,
    through decode(rsv1, payload), must equal expected[k % len(expected)]."""
    wire = memoryview(wire)
    c.sock.setblocking(False)
    buf, sent, got = bytearray(c.buf), 0, 0
    total = PIPE_COUNT * PIPE_REPS
    t0 = time.monotonic()
    while got < total:
        check(time.monotonic() < t0 + 60, f"only {got} echoes in 60 s ({sent} bytes sent)")
        may_read = time.monotonic() - t0 >= got * pace
        r, w, _ = select.select([c.sock] if may_read else [],
                                [c.sock] if sent < len(wire) else [], [], 0.001)
        if w:
            sent = pipe_step_write(c.sock, wire, sent)
        tls_pending = isinstance(c.sock, ssl.SSLSocket) and c.sock.pending()
        if r or (may_read and tls_pending):
            check(pipe_step_read(c.sock, buf), f"EOF after {got} echoes")
        frames, used = pipe_frames(buf)
        del buf[:used]
        for b0, payload in frames:
            op = b0 & 0x0F
            check(op != OP_CLOSE, f"closed after {got} echoes: {payload[:2].hex()} {payload[2:]!r}")
            check(op == OP_BINARY and decode(b0 & 0x40, payload) == expected[got % len(expected)],
                  f"echo {got}: not the message sent (opcode {op}, {len(payload)} bytes)")
            got += 1
    check(sent == len(wire), "every request written")


@T.case
def test_pipelining_slow_reader_never_slow_consumer(ctx):
    # Checked: with the pause in conn.c's check_high_water disabled, closed with 1008 "slow
    # consumer" after 72-145 of the 400 echoes, plain and TLS: failed. (tests/api/
    # test_pipelining.c has the 50 runs of "write 100 x 64 KiB, then read" and the rest.)
    payloads = [os.urandom(PIPE_MSG) for _ in range(PIPE_COUNT)]
    wire = b"".join(build_frame(OP_BINARY, p) for p in payloads) * PIPE_REPS
    pipeline_slow_reader(ctx.ws(), wire, lambda rsv1, p: p, payloads)


@T.case
def test_pipelining_compressed_slow_reader(ctx):
    # The same with permessage-deflate both ways (context takeover): the queue holds the
    # compressed echoes of compressed requests. Base64 text compresses to ~3/4, so the wire
    # still carries more than the kernel and the queue hold. The server's deflate is slower
    # than a reader at 64 KiB/ms (its queue never filled), so this one reads every 5 ms. With
    # the pause disabled as above it was closed with 1008 after 162-218 echoes, plain and
    # TLS: failed.
    payloads = [base64.b64encode(os.urandom(PIPE_MSG * 3 // 4)) for _ in range(PIPE_COUNT)]
    deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
    frames = []
    for _ in range(PIPE_REPS):
        for p in payloads:
            z = deflate.compress(p) + deflate.flush(zlib.Z_SYNC_FLUSH)
            frames.append(build_frame(OP_BINARY, z[:-4], rsv=RSV1))
    inflate = zlib.decompressobj(-15)

    def decode(rsv1, payload):
        return inflate.decompress(payload + b"\x00\x00\xff\xff") if rsv1 else payload

    srv = ctx.server("--deflate", 1)
    c = ctx.raw(srv)
    resp = c.handshake(extra_headers=["Sec-WebSocket-Extensions: permessage-deflate"])
    check("permessage-deflate" in (resp.header("Sec-WebSocket-Extensions") or ""),
          f"compression not agreed: {resp}")
    pipeline_slow_reader(c, b"".join(frames), decode, payloads, pace=0.005)


if __name__ == "__main__":
    run(T)
