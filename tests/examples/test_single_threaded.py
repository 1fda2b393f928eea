#!/usr/bin/python3
"""Test of examples/single_threaded.c: client events reach main's own poll() loop through
pw_event_fd(); lines typed on stdin go to every client; client messages are printed by main.

Usage: /usr/bin/python3 tests/examples/test_single_threaded.py --server PATH
"""
import asyncio
import sys
import time

from common import main


async def wait_lines(r, prefix, count, timeout=10):
    """Wait until the server has printed `count` lines starting with prefix; return them."""
    deadline = time.monotonic() + timeout
    while True:
        found = [l for l in r.server.lines if l.startswith(prefix)]
        if len(found) >= count:
            return found
        if time.monotonic() > deadline:
            raise AssertionError("expected %d %r lines, server printed %r"
                                 % (count, prefix, r.server.lines))
        await asyncio.sleep(0.01)


def type_line(r, text):
    r.server.proc.stdin.write(text.encode() + b"\n")
    r.server.proc.stdin.flush()


async def stdin_to_clients_and_back(r):
    async with r.connect() as a, r.connect() as b:
        opens = await wait_lines(r, "open ", 2)  # main has seen both opens
        type_line(r, "hello from the keyboard")
        got = await asyncio.gather(a.recv(), b.recv())
        if got != ["hello from the keyboard"] * 2:
            raise AssertionError("clients got %r" % (got,))
        await a.send("hi from a")
        await b.send("hi from b")
        msgs = await wait_lines(r, "message ", 2)
        if not any(m.endswith(": hi from a") for m in msgs) or \
           not any(m.endswith(": hi from b") for m in msgs):
            raise AssertionError("main printed %r" % msgs)
        ids = {l.split()[1] for l in opens}
        if {m.split()[1].rstrip(":") for m in msgs} != ids:
            raise AssertionError("message ids %r are not the open ids %r" % (msgs, ids))
    closes = await wait_lines(r, "close ", 2)
    if not all(c.split()[2] == "1000" for c in closes):
        raise AssertionError("closes %r" % closes)


async def many_lines_in_order(r):
    async with r.connect() as a:
        await wait_lines(r, "open ", 3)
        for i in range(200):
            type_line(r, "line %d" % i)
        for i in range(200):
            msg = await asyncio.wait_for(a.recv(), 10)
            if msg != "line %d" % i:
                raise AssertionError("expected line %d, got %r" % (i, msg))


async def cases(r):
    await r.run("stdin lines reach every client; client messages reach main",
                lambda: stdin_to_clients_and_back(r))
    await r.run("200 typed lines arrive in order", lambda: many_lines_in_order(r))


if __name__ == "__main__":
    sys.exit(main("pw-single-threaded", __doc__, cases, stdin_pipe=True))
