#!/usr/bin/env python3
"""Close handling (Autobahn group 7): the server answers a client close with the same code
(empty payload for an empty close), then closes TCP; invalid codes and 1-byte payloads ->
1002; nothing is processed after a close."""

import sys
sys.dont_write_bytecode = True  # keep the source tree clean

import socket
import struct

from wsclient import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_TEXT, PeerEOF, PeerReset,
                      Tests, build_frame, check, check_server_frame, run, skip_tls)

T = Tests("close")


@T.case
def test_close_1000_with_reason(ctx):
    c = ctx.ws()
    c.send_close(1000, "normal closure, thanks")
    f = c.expect_close(1000, reply=False)  # reply=False: the TCP end must be a clean EOF
    check(len(f.payload) <= 125, "close payload > 125")


@T.case
def test_close_empty_payload(ctx):
    c = ctx.ws()
    c.send_close()
    f = c.expect_close(None, reply=False)
    check(f.header == b"\x88\x00", f"server close header {f.header.hex()}, expected 8800")


@T.case
def test_close_then_tcp_eof_recv_returns_empty(ctx):
    c = ctx.ws()
    c.echo_roundtrip(OP_TEXT, b"before close")
    c.send_close(1000)
    f = c.recv_frame()
    check(f.opcode == OP_CLOSE and f.close_code() == 1000, f"expected close 1000, got {f}")
    c.sock.settimeout(3)
    try:
        d = c.sock.recv(100)
    except socket.timeout:
        check(False, "server did not close TCP within 3 s after the close handshake")
    except ConnectionResetError:
        check(False, "server reset TCP instead of closing it after the close handshake")
    check(d == b"", f"expected recv() == b'' after the close handshake, got {d!r}")


def make_valid_code_case(code):
    def fn(ctx):
        c = ctx.ws()
        c.send_close(code, f"code {code}")
        c.expect_close(code, reply=False)
    return fn


for _code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
              3000, 3999, 4000, 4999):
    T.add(f"valid_code_{_code}_echoed", make_valid_code_case(_code))


def make_invalid_code_case(code):
    def fn(ctx):
        c = ctx.ws()
        c.send_frame(OP_CLOSE, struct.pack(">H", code) + b"bad")
        c.expect_close(1002)
    return fn


for _code in (0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535):
    T.add(f"invalid_code_{_code}_1002", make_invalid_code_case(_code))


@T.case
def test_one_byte_payload_1002(ctx):
    c = ctx.ws()
    c.send_frame(OP_CLOSE, b"\x03")
    c.expect_close(1002)


@T.case
def test_close_max_reason_123_bytes(ctx):
    c = ctx.ws()
    c.send_close(1000, "r" * 123)
    c.expect_close(1000, reply=False)


@T.case
def test_close_chopped_bytewise(ctx):
    c = ctx.ws()
    c.send_frame(OP_CLOSE, b"\x03\xe8bye", chunk=1, delay=0.001)
    c.expect_close(1000, reply=False)


@T.case
def test_nothing_processed_after_close(ctx):
    c = ctx.ws()
    c.send(build_frame(OP_CLOSE, b"\x03\xe8") + build_frame(OP_TEXT, b"after close")
           + build_frame(OP_PING, b"after close"))
    c.expect_close(1000, reply=False)  # no echo, no pong before or after


@T.case
def test_echo_before_close_then_close(ctx):
    c = ctx.ws()
    c.send(build_frame(OP_TEXT, b"one") + build_frame(OP_BINARY, b"two")
           + build_frame(OP_CLOSE, b"\x0f\xa0"))  # 4000
    c.expect_echo(OP_TEXT, b"one")
    c.expect_echo(OP_BINARY, b"two")
    c.expect_close(4000, reply=False)


@T.case
def test_close_while_fragmented_message_in_progress(ctx):
    c = ctx.ws()
    c.send(build_frame(OP_TEXT, b"unfinished ", fin=False)
           + build_frame(OP_CONT, b"message", fin=False)
           + build_frame(OP_CLOSE, b"\x03\xe8"))
    c.expect_close(1000, reply=False)  # the incomplete message is not echoed


@T.case
def test_close_then_client_half_close(ctx):
    skip_tls("Python's SSLSocket.shutdown drops the TLS layer: the reply would be read raw")
    c = ctx.ws()
    c.send_close(1001, "going away")
    c.sock.shutdown(socket.SHUT_WR)
    c.expect_close(1001, reply=False)


@T.case
def test_tcp_fin_without_close_frame(ctx):
    c = ctx.ws()
    c.echo_roundtrip(OP_TEXT, b"hi")
    c.sock.shutdown(socket.SHUT_WR)
    c.expect_eof(3)
    # and the server still serves others
    ctx.ws().echo_roundtrip(OP_TEXT, b"others fine")


@T.case
def test_tcp_fin_mid_frame(ctx):
    c = ctx.ws()
    c.send(build_frame(OP_BINARY, b"x" * 100)[:20])
    c.sock.shutdown(socket.SHUT_WR)
    # the server must close TCP; a close frame before the EOF is acceptable too
    try:
        f = c.recv_frame(3)
    except (PeerEOF, PeerReset):
        pass
    else:
        check(f.opcode == OP_CLOSE, f"expected EOF (or a close frame), got {f}")
        check_server_frame(f)
        c.expect_eof(3, allow_reset=True)
    ctx.ws().echo_roundtrip(OP_TEXT, b"others fine")


if __name__ == "__main__":
    run(T)
