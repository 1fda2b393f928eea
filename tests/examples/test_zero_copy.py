#!/usr/bin/python3
"""Test of examples/zero_copy.c: 1 MiB buffers wrapped without copying, shared by every client,
freed by the library (allocated == freed at exit).

Usage: /usr/bin/python3 tests/examples/test_zero_copy.py --server PATH_TO_PW_ZERO_COPY
"""
import asyncio
import json
import re
import struct
import sys
import time

from common import main

SIZE = 1 << 20
HEADER = 16
PATTERN = bytes(range(256)) * (SIZE // 256 + 2)


def check_message(msg):
    """The sequence number of a well-formed message; raises on any defect."""
    if not isinstance(msg, bytes):
        raise AssertionError("expected a binary message, got text %r" % msg[:80])
    if len(msg) != SIZE:
        raise AssertionError("message of %d bytes, expected %d" % (len(msg), SIZE))
    if msg[:8] != b"ZEROCOPY":
        raise AssertionError("bad magic %r" % msg[:8])
    seq = struct.unpack("<Q", msg[8:16])[0]
    # Byte i of the message is (i + seq) & 0xff.
    start = (HEADER + seq) % 256
    if msg[HEADER:] != PATTERN[start:start + SIZE - HEADER]:
        raise AssertionError("message %d: pattern mismatch" % seq)
    return seq


async def receive(ws, count):
    seqs = []
    while len(seqs) < count:
        msg = await asyncio.wait_for(ws.recv(), 10)
        if isinstance(msg, str):
            continue  # a stats answer for somebody's earlier question
        seqs.append(check_message(msg))
    for a, b in zip(seqs, seqs[1:]):
        if b <= a:
            raise AssertionError("sequence %d followed by %d" % (a, b))
    return seqs


async def stats(ws):
    """Ask for the counters, skipping the binary messages still arriving."""
    await ws.send("stats")
    while True:
        msg = await asyncio.wait_for(ws.recv(), 10)
        if isinstance(msg, str):
            s = json.loads(msg)
            if set(s) != {"allocated", "freed"}:
                raise AssertionError("stats answer %r" % (s,))
            if s["freed"] > s["allocated"]:
                raise AssertionError("more freed than allocated: %r" % (s,))
            return s


async def three_clients(r):
    conns = [await r.connect() for _ in range(3)]
    try:
        results = await asyncio.gather(*(receive(c, 6) for c in conns))
    finally:
        await asyncio.gather(*(c.close() for c in conns))
    # One buffer is sent to every client, so they see the same sequence numbers.
    shared = set(results[0]) & set(results[1]) & set(results[2])
    if len(shared) < 3:
        raise AssertionError("clients share only %d of their sequence numbers: %r"
                             % (len(shared), results))


async def freed_catches_up(r):
    async with r.connect() as ws:
        await receive(ws, 2)
        first = await stats(ws)
        if first["allocated"] < 2:
            raise AssertionError("stats %r after receiving two messages" % (first,))
        # Every buffer allocated by then must be freed soon after it was delivered.
        deadline = time.monotonic() + 10
        while True:
            now = await stats(ws)
            if now["freed"] >= first["allocated"]:
                return
            if time.monotonic() > deadline:
                raise AssertionError("after 10 s freed=%d, allocated earlier=%d"
                                     % (now["freed"], first["allocated"]))
            await asyncio.sleep(0.1)


async def stalled_client(r):
    """A client that stops reading holds at most a few buffers (latest wins): the rest are
    dropped and freed while a reading client goes on receiving."""
    reader, stalled = await r.connect(), await r.connect(max_queue=1)
    try:
        await receive(stalled, 1)  # then it never reads again
        await receive(reader, 1)
        before = await stats(reader)
        await receive(reader, 20)
        after = await stats(reader)
    finally:
        # A client that does not read cannot finish a close handshake either: just drop it.
        stalled.transport.abort()
        await reader.close()
    grown = after["allocated"] - before["allocated"]
    held = after["allocated"] - after["freed"]
    if grown < 15:
        raise AssertionError("only %d buffers allocated in 20 messages' time" % grown)
    if held > 12:
        raise AssertionError("%d buffers still held with one stalled client (%r)" % (held, after))


async def stop_with_clients(r):
    """SIGTERM with clients connected, one of them not reading: the buffers queued to them
    are released by the shutdown itself (the exit line checks allocated == freed)."""
    reader, stalled = await r.connect(), await r.connect(max_queue=1)
    try:
        await receive(stalled, 1)
        await receive(reader, 3)
        t0 = time.monotonic()
        rc = await asyncio.get_running_loop().run_in_executor(None, r.server.stop)
        took = time.monotonic() - t0
    finally:
        stalled.transport.abort()
        await reader.close()
    if rc != 0:
        raise AssertionError("exit status %r" % (rc,))
    if took > 15:  # the stalled client costs the server's close timeout (3 s), no more
        raise AssertionError("stopping took %.1f s" % took)


async def cases(r):
    await r.run("3 clients receive 1 MiB messages, right pattern, increasing sequence",
                lambda: three_clients(r))
    await r.run("stats: freed catches up with allocated", lambda: freed_catches_up(r))
    await r.run("a stalled client holds few buffers; dropped ones are freed",
                lambda: stalled_client(r))
    await r.run("SIGTERM with clients connected: exits 0", lambda: stop_with_clients(r))


def after_stop(r, server):
    line = next((l for l in server.lines if l.startswith("zero-copy: ")), None)
    m = re.fullmatch(r"zero-copy: allocated (\d+) freed (\d+)", line or "")
    ok = bool(m) and m.group(1) == m.group(2) and int(m.group(1)) > 0
    r.result("at exit allocated == freed", ok, "exit line %r" % (line,))


if __name__ == "__main__":
    sys.exit(main("pw-zero-copy", __doc__.splitlines()[0], cases, after_stop))
