#!/usr/bin/env python3
"""Control frames (Autobahn group 2): ping -> pong with the same payload, limits on control
frames (payload <= 125, FIN=1) -> 1002, unsolicited pongs ignored."""

import sys
sys.dont_write_bytecode = True  # keep the source tree clean

import os
import time

from wsclient import (OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, Tests, build_frame,
                      check, run)

T = Tests("control")


@T.case
def test_ping_empty(ctx):
    c = ctx.ws()
    c.send_frame(OP_PING, b"")
    f = c.expect_frame(OP_PONG, b"")
    check(f.header == b"\x8a\x00", f"pong header {f.header.hex()}, expected 8a00")


@T.case
def test_ping_125_bytes(ctx):
    c = ctx.ws()
    data = os.urandom(125)
    c.send_frame(OP_PING, data)
    f = c.expect_frame(OP_PONG, data)
    check(f.header == b"\x8a\x7d", f"pong header {f.header.hex()}, expected 8a7d")


@T.case
def test_ping_text_payload(ctx):
    c = ctx.ws()
    c.send_frame(OP_PING, b"Hello, world!")
    c.expect_frame(OP_PONG, b"Hello, world!")


@T.case
def test_ping_binary_payload_all_byte_values(ctx):
    c = ctx.ws()
    data = bytes([0x00, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0x00, 0xff])
    c.send_frame(OP_PING, data)
    c.expect_frame(OP_PONG, data)


@T.case
def test_ping_125_bytes_16bit_length_encoding(ctx):
    # 125 bytes carried with a (legal, non-minimal) 16-bit length: payload is still <= 125
    c = ctx.ws()
    data = b"p" * 125
    c.send_frame(OP_PING, data, length_bits=16)
    c.expect_frame(OP_PONG, data)


@T.case
def test_ping_bytewise(ctx):
    c = ctx.ws()
    c.send_frame(OP_PING, b"chopped ping", chunk=1, delay=0.001)
    c.expect_frame(OP_PONG, b"chopped ping")


@T.case
def test_ping_126_bytes_1002(ctx):
    c = ctx.ws()
    c.send_frame(OP_PING, b"x" * 126)
    c.expect_close(1002)


@T.case
def test_ping_64bit_length_300_bytes_1002(ctx):
    c = ctx.ws()
    c.send_frame(OP_PING, b"x" * 300, length_bits=64)
    c.expect_close(1002)


@T.case
def test_pong_126_bytes_1002(ctx):
    c = ctx.ws()
    c.send_frame(OP_PONG, b"y" * 126)
    c.expect_close(1002)


@T.case
def test_close_126_bytes_1002(ctx):
    c = ctx.ws()
    c.send_frame(OP_CLOSE, b"\x03\xe8" + b"r" * 124)
    c.expect_close(1002)


@T.case
def test_fragmented_ping_1002(ctx):
    c = ctx.ws()
    c.send_frame(OP_PING, b"frag", fin=False)
    c.expect_close(1002)


@T.case
def test_fragmented_ping_with_continuation_1002(ctx):
    c = ctx.ws()
    c.send(build_frame(OP_PING, b"fr", fin=False) + build_frame(0x0, b"ag", fin=True))
    c.expect_close(1002)


@T.case
def test_fragmented_pong_1002(ctx):
    c = ctx.ws()
    c.send_frame(OP_PONG, b"frag", fin=False)
    c.expect_close(1002)


@T.case
def test_fragmented_close_1002(ctx):
    c = ctx.ws()
    c.send_frame(OP_CLOSE, b"\x03\xe8", fin=False)
    c.expect_close(1002)


@T.case
def test_unsolicited_pong_ignored(ctx):
    c = ctx.ws()
    c.send_frame(OP_PONG, b"")
    c.send_frame(OP_PONG, b"unsolicited pong payload")
    c.expect_silence(0.2)
    c.echo_roundtrip(OP_TEXT, b"still alive")


@T.case
def test_unsolicited_pong_then_ping(ctx):
    c = ctx.ws()
    c.send(build_frame(OP_PONG, b"unsolicited") + build_frame(OP_PING, b"solicited"))
    c.expect_frame(OP_PONG, b"solicited")
    c.echo_roundtrip(OP_BINARY, b"\x01\x02")


@T.case
def test_10_pings_in_a_row(ctx):
    c = ctx.ws()
    payloads = [f"ping #{i}".encode() for i in range(10)]
    c.send(b"".join(build_frame(OP_PING, p) for p in payloads))
    for i, p in enumerate(payloads):
        c.expect_frame(OP_PONG, p, what=f"pong #{i}")


@T.case
def test_10_pings_in_a_row_bytewise(ctx):
    c = ctx.ws()
    payloads = [bytes([i]) * i for i in range(10)]
    c.send(b"".join(build_frame(OP_PING, p) for p in payloads), chunk=1)
    for i, p in enumerate(payloads):
        c.expect_frame(OP_PONG, p, what=f"pong #{i}")


@T.case
def test_ping_and_messages_keep_order(ctx):
    c = ctx.ws()
    c.send(build_frame(OP_TEXT, b"one") + build_frame(OP_PING, b"p")
           + build_frame(OP_BINARY, b"two"))
    c.expect_echo(OP_TEXT, b"one")
    c.expect_frame(OP_PONG, b"p")
    c.expect_echo(OP_BINARY, b"two")


@T.case
def test_pings_behind_a_large_echo_not_interleaved(ctx):
    # a 4 MiB message then 5 pings, read only after a pause: the server's send queue is busy
    # with the big echo; pongs may come before or after it, never inside it
    c = ctx.ws()
    big = os.urandom(4 * 1048576)
    pings = [f"behind {i}".encode() for i in range(5)]
    th = c.send_background(build_frame(OP_BINARY, big)
                           + b"".join(build_frame(OP_PING, p) for p in pings))
    time.sleep(0.3)
    pongs, echoed = [], 0
    for _ in range(6):
        f = c.recv_frame(timeout=10)
        check(f.fin and not f.masked and f.rsv == 0, f"bad frame {f}")
        if f.opcode == OP_PONG:
            pongs.append(f.payload)
        else:
            check(f.opcode == OP_BINARY and f.payload == big,
                  f"expected the 4 MiB echo intact, got {f}")
            echoed += 1
    th.join(10)
    check(echoed == 1, f"echo received {echoed} times")
    check(pongs == pings, f"pongs {pongs}, expected {pings}")


@T.case
def test_echo_then_oversized_ping_then_nothing(ctx):
    # Autobahn 2.x style: the echo of a message sent before the bad frame still arrives,
    # then the close 1002; the ping sent after the bad frame is not answered.
    c = ctx.ws()
    c.send(build_frame(OP_TEXT, b"before") + build_frame(OP_PING, b"z" * 126)
           + build_frame(OP_PING, b"after"))
    c.expect_echo(OP_TEXT, b"before")
    c.expect_close(1002)


if __name__ == "__main__":
    run(T)
