#!/usr/bin/env python3
"""Framing (Autobahn groups 1 and 2-ish): echo of text/binary payloads of many sizes, length
encodings, chopped writes, pipelining. Every reply is checked byte for byte: same opcode,
FIN=1, no RSV, unmasked, minimal length encoding, identical payload."""

import sys
sys.dont_write_bytecode = True  # keep the source tree clean

import os
import random
import struct

from wsclient import (OP_BINARY, OP_TEXT, Tests, build_frame, check, run)

T = Tests("framing")

SIZES = [0, 1, 125, 126, 127, 65535, 65536, 1048576, 4 * 1048576]


def text_payload(n, seed=0):
    rng = random.Random(seed + n)
    alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;-_"
    if n < 4096:
        return bytes(rng.choice(alphabet) for _ in range(n))
    block = bytes(rng.choice(alphabet) for _ in range(4096))
    return (block * (n // 4096 + 1))[:n]


def binary_payload(n, seed=0):
    if n < 4096:
        rng = random.Random(seed + n)
        return bytes(rng.randrange(256) for _ in range(n))
    return os.urandom(n)


def expected_len_code(n):
    return n if n <= 125 else 126 if n <= 0xFFFF else 127


def make_size_case(opcode, size):
    def fn(ctx):
        c = ctx.ws()
        data = text_payload(size) if opcode == OP_TEXT else binary_payload(size)
        c.send_frame(opcode, data)
        timeout = 3 if size < 1048576 else 15
        f = c.expect_echo(opcode, data, timeout=timeout)
        check(f.len_code == expected_len_code(size),
              f"reply length code {f.len_code}, expected {expected_len_code(size)}")
        hl = 2 + {126: 2, 127: 8}.get(f.len_code, 0)
        check(len(f.header) == hl, f"reply header is {len(f.header)} bytes, expected {hl}")
        check(f.header[0] == (0x80 | opcode),
              f"reply first byte {f.header[0]:#04x}, expected {0x80 | opcode:#04x}")
        # the connection still works afterwards
        c.echo_roundtrip(OP_TEXT, b"after")
    return fn


for _size in SIZES:
    T.add(f"text_{_size}", make_size_case(OP_TEXT, _size))
    T.add(f"binary_{_size}", make_size_case(OP_BINARY, _size))


@T.case
def test_nonminimal_16bit_length_for_5_bytes(ctx):
    c = ctx.ws()
    c.send_frame(OP_TEXT, b"Hello", length_bits=16)
    f = c.expect_echo(OP_TEXT, b"Hello")
    check(f.header == bytes([0x81, 0x05]), f"reply header {f.header.hex()}, expected 8105")


@T.case
def test_nonminimal_64bit_length_for_5_bytes(ctx):
    c = ctx.ws()
    c.send_frame(OP_BINARY, b"\x00\x01\x02\x03\x04", length_bits=64)
    f = c.expect_echo(OP_BINARY, b"\x00\x01\x02\x03\x04")
    check(f.header == bytes([0x82, 0x05]), f"reply header {f.header.hex()}, expected 8205")


@T.case
def test_nonminimal_64bit_length_for_200_bytes(ctx):
    c = ctx.ws()
    data = text_payload(200)
    c.send_frame(OP_TEXT, data, length_bits=64)
    f = c.expect_echo(OP_TEXT, data)
    check(f.header == bytes([0x81, 126]) + struct.pack(">H", 200),
          f"reply header {f.header.hex()}, expected 817e00c8")


@T.case
def test_nonminimal_16bit_length_for_0_bytes(ctx):
    c = ctx.ws()
    c.send_frame(OP_TEXT, b"", length_bits=16)
    f = c.expect_echo(OP_TEXT, b"")
    check(f.header == bytes([0x81, 0x00]), f"reply header {f.header.hex()}, expected 8100")


@T.case
def test_zero_and_fixed_masking_keys(ctx):
    c = ctx.ws()
    for key in (b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x01\x02\x03\x04"):
        data = binary_payload(37, seed=key[0])
        c.send_frame(OP_BINARY, data, key=key)
        c.expect_echo(OP_BINARY, data, what=f"mask key {key.hex()}")


def make_chopped_case(opcode, size, delay):
    def fn(ctx):
        c = ctx.ws()
        data = text_payload(size, 7) if opcode == OP_TEXT else binary_payload(size, 7)
        c.send_frame(opcode, data, chunk=1, delay=delay)
        c.expect_echo(opcode, data)
    return fn


for _size in (0, 1, 2, 125, 126, 127, 300):
    T.add(f"chopped_bytewise_text_{_size}", make_chopped_case(OP_TEXT, _size, 0.0005))
for _size in (5, 126, 200):
    T.add(f"chopped_bytewise_binary_{_size}_nodelay", make_chopped_case(OP_BINARY, _size, 0.0))


@T.case
def test_chopped_64bit_header_bytewise(ctx):
    c = ctx.ws()
    data = binary_payload(70, 3)
    c.send_frame(OP_BINARY, data, length_bits=64, chunk=1, delay=0.001)
    c.expect_echo(OP_BINARY, data)


@T.case
def test_chopped_random_chunks_70000(ctx):
    c = ctx.ws()
    data = binary_payload(70000)
    c.send(build_frame(OP_BINARY, data), random_chunks=(1, 4096), rng=random.Random(42))
    c.expect_echo(OP_BINARY, data, timeout=5)
    tdata = text_payload(70000, 9)
    c.send(build_frame(OP_TEXT, tdata), random_chunks=(1, 1500), rng=random.Random(43),
           delay=0.0002)
    c.expect_echo(OP_TEXT, tdata, timeout=5)


@T.case
def test_pipelined_small_messages_in_one_write(ctx):
    c = ctx.ws()
    rng = random.Random(5)
    msgs = []
    for i in range(200):
        op = OP_TEXT if i % 2 == 0 else OP_BINARY
        n = rng.choice([0, 1, 2, 10, 125, 126, 300])
        if op == OP_TEXT:
            data = f"{i}:".encode() + text_payload(n, i)
        else:
            data = struct.pack(">H", i) + binary_payload(n, i)
        msgs.append((op, data))
    c.send(b"".join(build_frame(op, d) for op, d in msgs))
    for i, (op, d) in enumerate(msgs):
        c.expect_echo(op, d, what=f"pipelined message #{i}")


@T.case
def test_pipelined_messages_chopped_bytewise(ctx):
    c = ctx.ws()
    msgs = [(OP_TEXT, f"message {i}".encode()) for i in range(20)]
    c.send(b"".join(build_frame(op, d) for op, d in msgs), chunk=1)
    for i, (op, d) in enumerate(msgs):
        c.expect_echo(op, d, what=f"message #{i}")


def make_pipelined_large_case(count, size):
    # A client that sends a burst of large messages in one go while reading the echoes as
    # fast as it can: every message must come back (the contract knows no other outcome).
    def fn(ctx):
        c = ctx.ws()
        msgs = [binary_payload(size) for _ in range(count)]
        th = c.send_background(b"".join(build_frame(OP_BINARY, m) for m in msgs))
        try:
            for i, m in enumerate(msgs):
                c.expect_echo(OP_BINARY, m, timeout=5,
                              what=f"pipelined {size}-byte message #{i} of {count}")
        finally:
            th.join(10)
    return fn


T.add("pipelined_2x600000_while_reading", make_pipelined_large_case(2, 600000))
T.add("pipelined_4x1MiB_while_reading", make_pipelined_large_case(4, 1048576))
T.add("pipelined_40x32KiB_while_reading", make_pipelined_large_case(40, 32768))


@T.case
def test_large_then_small_pipelined(ctx):
    c = ctx.ws()
    big = binary_payload(300000)
    c.send(build_frame(OP_BINARY, big) + build_frame(OP_TEXT, b"small")
           + build_frame(OP_BINARY, b""))
    c.expect_echo(OP_BINARY, big, timeout=5)
    c.expect_echo(OP_TEXT, b"small")
    c.expect_echo(OP_BINARY, b"")


@T.case
def test_64bit_length_with_msb_set_rejected(ctx):
    # RFC 6455 5.2: the most significant bit of a 64-bit length MUST be 0. Such a frame is
    # a protocol error (1002); a server may also see it as too big (1009).
    c = ctx.ws()
    hdr = bytes([0x82, 0x80 | 127]) + struct.pack(">Q", (1 << 63) | 5) + b"\x00\x00\x00\x00"
    c.send(hdr + b"hello")
    c.expect_close((1002, 1009), timeout=2)


if __name__ == "__main__":
    run(T)
