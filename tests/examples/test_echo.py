#!/usr/bin/python3
"""Test of examples/echo.c: every message comes back to its sender with its type, "/" serves
the page, and Ctrl-C (SIGINT) stops the server cleanly.

Usage: /usr/bin/python3 tests/examples/test_echo.py --server PATH_TO_PW_ECHO_EXAMPLE
Checked to fail: with the pw_send in on_message removed, every echo case timed out; with
on_http removed, "/" answered 404.
"""
import asyncio
import http.client
import signal
import sys

from common import Server, main

SIZES = [0, 1, 125, 126, 65536, 200 * 1024]


async def echoes(r):
    async with r.connect() as ws:
        for n in SIZES:
            for msg in ("t" * n, bytes(i % 251 for i in range(n))):
                await ws.send(msg)
                got = await asyncio.wait_for(ws.recv(), 10)
                if got != msg:
                    raise AssertionError("sent %s of %d, got %r"
                                         % (type(msg).__name__, n, got[:40]))


async def each_client_its_own(r):
    async with r.connect() as a, r.connect() as b:
        await a.send("from a")
        await b.send("from b")
        got = await asyncio.gather(asyncio.wait_for(a.recv(), 10), asyncio.wait_for(b.recv(), 10))
        if got != ["from a", "from b"]:
            raise AssertionError("a and b got %r" % (got,))


def get(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", path)
        res = c.getresponse()
        return res.status, res.getheader("Content-Type") or "", res.read()
    finally:
        c.close()


async def page(r):
    status, ctype, body = await asyncio.to_thread(get, r.server.port, "/")
    if status != 200 or not ctype.startswith("text/html") or b"<html" not in body:
        raise AssertionError("GET / answered %d %r %r" % (status, ctype, body[:60]))
    status, _, _ = await asyncio.to_thread(get, r.server.port, "/nope")
    if status != 404:
        raise AssertionError("GET /nope answered %d" % status)


async def ctrl_c_stops(r):
    other = Server(r.server.path, "pw-echo-example")
    try:
        other.start()
    finally:
        rc = other.stop(sig=signal.SIGINT)
    if rc != 0:
        raise AssertionError("exit status %r after SIGINT" % (rc,))


async def cases(r):
    await r.run("text and binary echoes, 0 B..200 KiB", lambda: echoes(r))
    await r.run("two clients, each gets its own echo", lambda: each_client_its_own(r))
    await r.run("GET / is the page, other paths 404", lambda: page(r))
    await r.run("SIGINT (Ctrl-C) stops it with exit status 0", lambda: ctrl_c_stops(r))


if __name__ == "__main__":
    sys.exit(main("pw-echo-example", __doc__.splitlines()[0], cases))
