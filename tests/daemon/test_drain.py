"""SIGTERM drains a real pushwired: readers connected when the signal comes receive every
message published before it (HTTP publishes answered 202, lines written into the Unix socket),
in order, then a 1001 close; the daemon exits 0. Run with --threads 2 so the readers sit on
both loops.

How it was checked to matter: without the final read of what clients had sent (removed from
unix_task in daemon/sources.c), readers got 3332 of the 5000 lines written before the
signal; with main calling exit(0) on SIGTERM instead of stopping, readers saw 1006. Before
pwd_sources_stop existed (sources were left to pw_server_stop, which now refuses publishes
from its first instant), about half of the Unix lines were lost: this test found that.
"""
import asyncio
import json
import os
import signal
import socket
import time

import websockets

from harness import Daemon, Runner, expect, finish, parse_args, subscribe, tempdir

READERS = 4
HTTP_MESSAGES = 200
UNIX_MESSAGES = 5000


async def read_all(ws):
    """Every message until the server closes; returns (messages, close code)."""
    got = []
    try:
        while True:
            got.append(json.loads(await asyncio.wait_for(ws.recv(), 30)))
    except websockets.exceptions.ConnectionClosed as e:
        return got, e.code


def check_reader(got, code):
    expect(code == 1001, "close code %r" % code)
    garbled = [m for m in got if not isinstance(m.get("data"), dict)]
    expect(not garbled, "%d messages are not whole lines, e.g. %r" % (len(garbled), garbled[:1]))
    http = [m["data"]["n"] for m in got if m["data"]["src"] == "http"]
    unix = [m["data"]["n"] for m in got if m["data"]["src"] == "unix"]
    expect(http == list(range(HTTP_MESSAGES)), "http: %d of %d" % (len(http), HTTP_MESSAGES))
    expect(unix == list(range(UNIX_MESSAGES)), "unix: %d of %d (first missing %r)"
           % (len(unix), UNIX_MESSAGES, next((i for i, n in enumerate(unix) if n != i), None)))


async def drain_case(r, d, sock):
    async def drain():
        readers = [await websockets.connect("ws://127.0.0.1:%d/ws" % d.port, max_size=None,
                                            ping_interval=None, close_timeout=10)
                   for _ in range(READERS)]
        for ws in readers:
            await subscribe(ws, "drain")
        tasks = [asyncio.ensure_future(read_all(ws)) for ws in readers]
        for n in range(HTTP_MESSAGES):
            status, _ = await asyncio.to_thread(
                d.publish, "drain", json.dumps({"src": "http", "n": n}).encode())
            expect(status == 202, "publish %d: %d" % (n, status))
        lines = b"".join(b'drain {"src":"unix","n":%d,"pad":"%s"}\n' % (n, b"p" * 40)
                         for n in range(UNIX_MESSAGES))
        u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        u.connect(sock)
        await asyncio.to_thread(u.sendall, lines)  # all written: published before the signal
        os.kill(d.proc.pid, signal.SIGTERM)
        t0 = time.monotonic()
        results = await asyncio.gather(*tasks)
        u.close()
        for got, code in results:
            check_reader(got, code)
        rc = await asyncio.to_thread(d.proc.wait, 30)
        expect(rc == 0, "exit status %r" % rc)
        print("  drained %d readers x %d messages in %.2f s after SIGTERM"
              % (READERS, HTTP_MESSAGES + UNIX_MESSAGES, time.monotonic() - t0), flush=True)
    await r.run("SIGTERM: every message published before it reaches every reader, then 1001",
                drain, timeout=90)


async def main_async(path):
    r = Runner(None)
    with tempdir() as tmp:
        sock = os.path.join(tmp, "pub.sock")
        d = Daemon(path, ["--threads", "2", "--unix", sock]).start()
        try:
            await drain_case(r, d, sock)
        finally:
            d.stop()
        if r.failed:
            print("\n".join(d.lines[-20:]))
        d.wait_for_line(r"SIGTERM: stopping, draining")
        d.wait_for_line(r"INFO stopped")
    return finish(r)


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main_async(parse_args(__doc__).daemon)))
