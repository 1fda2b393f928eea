#!/usr/bin/python3
"""Interop test: Debian's python3-websockets (asyncio client) against pw-echo.

Usage: /usr/bin/python3 tests/interop/ws_python.py --server PATH_TO_PW_ECHO [--tls]

--tls: the same cases over wss://, against pw-echo with a certificate made at run time
(tests/support/tls_certs.py), the client trusting only the test CA.

Starts the server itself on port 0 (parsing "pw-echo listening on port N"),
runs each case, prints one line per case and "N passed, M failed" at the end,
and always stops the server by its pid. Exits non-zero on any failure.
"""
import argparse
import asyncio
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
# tests/support/server_proc.py: shared with tests/examples and tests/daemon
from server_proc import RunnerBase, Server, require_websockets, start_and_announce  # noqa: E402

websockets = require_websockets()
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK  # noqa: E402

SIZES = [0, 1, 125, 126, 65535, 65536, 1024 * 1024]


def text_of_size(n):
    """A str whose UTF-8 encoding is exactly n bytes, mixing 1-4 byte characters."""
    pattern = "ab\u00e9\u20ac\U0001f600z"  # 1,1,2,3,4,1 bytes
    out = []
    size = 0
    while True:
        progressed = False
        for ch in pattern:
            w = len(ch.encode("utf-8"))
            if size + w > n:
                continue
            out.append(ch)
            size += w
            progressed = True
            if size == n:
                break
        if size == n or not progressed:
            break
    s = "".join(out)
    assert len(s.encode("utf-8")) == n, (n, len(s.encode("utf-8")))
    return s


def binary_of_size(n):
    return bytes((i * 31 + 7) & 0xFF for i in range(n)) if n < 70000 else (
        bytes(range(256)) * (n // 256 + 1))[:n]


def describe(v):
    kind = "text" if isinstance(v, str) else "binary"
    length = len(v.encode("utf-8")) if isinstance(v, str) else len(v)
    return "%s(%d bytes)" % (kind, length)


class Runner(RunnerBase):
    # run() and result(): RunnerBase (tests/support/server_proc.py)

    # ---- cases ----

    async def echo_one(self, msg):
        async with self.connect() as ws:
            await ws.send(msg)
            got = await ws.recv()
            if type(got) is not type(msg):
                raise AssertionError("sent %s, got back %s" % (describe(msg), describe(got)))
            if got != msg:
                raise AssertionError("sent %s, got back different %s" % (describe(msg), describe(got)))

    async def fragmented(self, fragments):
        async with self.connect() as ws:
            await ws.send(fragments)
            whole = fragments[0][:0].join(fragments)
            got = await ws.recv()
            if type(got) is not type(whole) or got != whole:
                raise AssertionError("sent %d fragments of %s, got back %s"
                                     % (len(fragments), describe(whole), describe(got)))
            # The connection must still be usable afterwards.
            await ws.send("after")
            got = await ws.recv()
            if got != "after":
                raise AssertionError("message after the fragmented one came back as %r" % (got,))

    async def ping_interleaved(self):
        """Ping sent between two fragments: the pong must come before the message ends."""
        async with self.connect() as ws:
            state = {}

            async def frags():
                yield "first half, "
                waiter = await ws.ping(b"mid-message")
                await asyncio.wait_for(waiter, 10)
                state["pong_before_end"] = True
                yield "second half"

            await ws.send(frags())
            got = await ws.recv()
            if not state.get("pong_before_end"):
                raise AssertionError("no pong while the message was in progress")
            if got != "first half, second half":
                raise AssertionError("got %r" % (got,))

    async def ping(self, payload):
        async with self.connect() as ws:
            waiter = await ws.ping(payload)
            try:
                await asyncio.wait_for(waiter, 10)
            except asyncio.TimeoutError:
                raise AssertionError("no pong for ping payload %r within 10 s" % (payload,))
            # Still echoing afterwards.
            await ws.send(b"x")
            if await ws.recv() != b"x":
                raise AssertionError("echo after ping failed")

    async def clean_close(self, code, reason):
        ws = await self.connect()
        await ws.send("hello")
        await ws.recv()
        t0 = time.monotonic()
        await ws.close(code, reason)
        elapsed = time.monotonic() - t0
        if ws.close_code != code:
            raise AssertionError("client closed with %d %r; server close frame carried code %r "
                                 "reason %r" % (code, reason, ws.close_code, ws.close_reason))
        if elapsed > 5:
            raise AssertionError("closing handshake took %.1f s" % elapsed)
        try:
            await ws.recv()
        except ConnectionClosedOK:
            pass
        except ConnectionClosed as e:
            # websockets calls only 1000/1001 "OK"; for other codes the code check above suffices.
            if code in (1000, 1001):
                raise AssertionError("connection ended as %s (%s), not a clean close"
                                     % (type(e).__name__, e))
        else:
            raise AssertionError("recv() after close returned a message")

    async def subprotocol(self, offer, expected):
        async with self.connect(subprotocols=offer) as ws:
            if ws.subprotocol != expected:
                raise AssertionError("offered %r, server selected %r, expected %r"
                                     % (offer, ws.subprotocol, expected))
            await ws.send("p")
            if await ws.recv() != "p":
                raise AssertionError("echo failed after subprotocol negotiation")

    async def no_extension(self):
        """websockets offers permessage-deflate by default; pw-echo must not accept it."""
        async with self.connect() as ws:
            if ws.extensions:
                raise AssertionError("server accepted extensions %r" % (ws.extensions,))
            big = "compressible " * 1000
            await ws.send(big)
            if await ws.recv() != big:
                raise AssertionError("echo mismatch")

    async def concurrent(self, clients, per_client):
        async def one(i):
            async with self.connect() as ws:
                for j in range(per_client):
                    msg = ("client %d message %d " % (i, j)) * (1 + j % 7)
                    if j % 2:
                        msg = msg.encode()
                    await ws.send(msg)
                    got = await ws.recv()
                    if got != msg:
                        raise AssertionError("client %d message %d: sent %s got %s"
                                             % (i, j, describe(msg), describe(got)))
            return per_client

        results = await asyncio.gather(*(one(i) for i in range(clients)), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise AssertionError("%d of %d clients failed; first: %s: %s"
                                 % (len(errors), clients, type(errors[0]).__name__, errors[0]))
        total = sum(results)
        if total != clients * per_client:
            raise AssertionError("only %d echoes" % total)

    async def all(self):
        for n in SIZES:
            await self.run("text echo %d bytes" % n, lambda n=n: self.echo_one(text_of_size(n)))
        for n in SIZES:
            await self.run("binary echo %d bytes" % n, lambda n=n: self.echo_one(binary_of_size(n)))
        await self.run("fragmented text (3 fragments)",
                       lambda: self.fragmented(["Hello, ", "fragmented ", "w\u00f6rld \u20ac"]))
        await self.run("fragmented binary (4 fragments, 200 KiB)",
                       lambda: self.fragmented([binary_of_size(50 * 1024)] * 4))
        await self.run("fragmented text with empty fragments",
                       lambda: self.fragmented(["", "abc", "", "def", ""]))
        await self.run("ping between fragments answered at once", self.ping_interleaved)
        await self.run("ping with payload -> pong", lambda: self.ping(b"ping-payload-123"))
        await self.run("ping with empty payload -> pong", lambda: self.ping(b""))
        await self.run("ping with 125-byte payload -> pong", lambda: self.ping(bytes(range(125))))
        await self.run("clean close 1000 with reason", lambda: self.clean_close(1000, "bye now"))
        await self.run("clean close 4000 echoed", lambda: self.clean_close(4000, "app code"))
        await self.run("subprotocol offer [chat, echo] selects echo",
                       lambda: self.subprotocol(["chat", "echo"], "echo"))
        await self.run("subprotocol offer [chat] selects none",
                       lambda: self.subprotocol(["chat"], None))
        await self.run("permessage-deflate offer declined", self.no_extension)
        await self.run("20 concurrent clients x 50 echoes", lambda: self.concurrent(20, 50))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", required=True, help="path to the pw-echo binary")
    ap.add_argument("--tls", action="store_true", help="run every case over wss://")
    args = ap.parse_args()

    ssl_context, extra = None, []
    if args.tls:
        import tls_certs
        certs = tls_certs.make_certs()
        ssl_context, extra = tls_certs.client_context(certs), tls_certs.server_args(certs)
    server = Server(args.server, "pw-echo", args=extra)
    runner = None
    rc = None
    try:
        if not start_and_announce(server, args.server):
            return 1
        runner = Runner(server, ssl_context)
        asyncio.run(runner.all())
    finally:
        rc = server.stop()
    if runner is not None:
        if rc == 0:
            runner.passed += 1
            print("PASS server exits 0 on SIGTERM", flush=True)
        else:
            runner.failed += 1
            print("FAIL server exits 0 on SIGTERM: exit status %r" % (rc,), flush=True)
        print("%d passed, %d failed" % (runner.passed, runner.failed))
        return 1 if runner.failed else 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
