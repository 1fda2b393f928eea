"""Shared harness for the example tests (tests/examples/test_*.py).

Starts an example server on port 0, parsing "<name> listening on port N"; keeps draining
its stdout (kept in Server.lines); always stops it by pid (SIGTERM, then SIGKILL). The
Runner prints one line per case and "N passed, M failed" at the end.
"""
import argparse
import asyncio
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time

try:
    import websockets
except ImportError:  # pragma: no cover
    print("python3-websockets is missing (Debian package python3-websockets)", file=sys.stderr)
    print("0 passed, 1 failed")
    sys.exit(1)

CASE_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0  # sanitizer builds stop slowly; the server's close timeout is 3 s


class Server:
    def __init__(self, path, name, stdin_pipe=False):
        self.path = path
        self.name = name
        self.stdin_pipe = stdin_pipe
        self.proc = None
        self.port = None
        self.lines = []  # stdout lines after the port line
        self._drainer = None

    def start(self):
        self.proc = subprocess.Popen([self.path, "0"], stdout=subprocess.PIPE,
                                     stdin=subprocess.PIPE if self.stdin_pipe
                                     else subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        buf = b""
        fd = self.proc.stdout.fileno()
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError("server printed no port line within 20 s (got %r)" % buf)
            r, _, _ = select.select([fd], [], [], left)
            if r:
                chunk = os.read(fd, 4096)
                if not chunk:
                    raise RuntimeError("server exited before printing its port (rc=%s, got %r)"
                                       % (self.proc.wait(), buf))
                buf += chunk
        line, rest = buf.split(b"\n", 1)
        line = line.decode("utf-8", "replace").strip()
        prefix = "%s listening on port " % self.name
        if not line.startswith(prefix):
            raise RuntimeError("unexpected first line from server: %r" % line)
        self.port = int(line[len(prefix):])
        # Keep draining stdout so the server can never block on a full pipe.
        self._drainer = threading.Thread(target=self._drain, args=(fd, rest), daemon=True)
        self._drainer.start()

    def _drain(self, fd, pending):
        try:
            while True:
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    self.lines.append(line.decode("utf-8", "replace"))
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                pending += chunk
        except OSError:
            pass
        if pending:
            self.lines.append(pending.decode("utf-8", "replace"))

    def stop(self):
        """SIGTERM by pid, wait; SIGKILL if it does not go. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self._drainer is not None:
            self._drainer.join(timeout=5)
        return self.proc.returncode


class Runner:
    def __init__(self, server):
        self.server = server
        self.passed = 0
        self.failed = 0

    @property
    def uri(self):
        return "ws://127.0.0.1:%d/" % self.server.port

    def connect(self, **kw):
        kw.setdefault("max_size", None)
        kw.setdefault("ping_interval", None)
        kw.setdefault("open_timeout", 10)
        kw.setdefault("close_timeout", 10)
        return websockets.connect(self.uri, **kw)

    def result(self, name, ok, detail="", t0=None):
        if ok:
            self.passed += 1
            took = " (%.2f s)" % (time.monotonic() - t0) if t0 is not None else ""
            print("PASS %s%s" % (name, took), flush=True)
        else:
            self.failed += 1
            print("FAIL %s: %s" % (name, detail), flush=True)

    async def run(self, name, coro_fn, timeout=CASE_TIMEOUT):
        t0 = time.monotonic()
        try:
            await asyncio.wait_for(coro_fn(), timeout)
        except asyncio.TimeoutError:
            self.result(name, False, "timed out after %.0f s" % timeout)
        except Exception as e:  # noqa: BLE001 - report anything
            self.result(name, False, "%s: %s" % (type(e).__name__, e))
        else:
            self.result(name, True, t0=t0)


async def recv_json(ws, timeout=10):
    """The next text message, parsed as JSON (binary messages are an error here)."""
    msg = await asyncio.wait_for(ws.recv(), timeout)
    if not isinstance(msg, str):
        raise AssertionError("expected a text message, got %d binary bytes" % len(msg))
    return json.loads(msg)


def main(name, description, cases, after_stop=None, stdin_pipe=False):
    """Parse --server, start it, run `cases(runner)` (a coroutine function), stop the server
    and check that it exits 0; `after_stop(runner, server)` may add checks on its output."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--server", required=True, help="path to the %s binary" % name)
    args = ap.parse_args()

    server = Server(args.server, name, stdin_pipe)
    runner = None
    try:
        try:
            server.start()
        except Exception as e:  # noqa: BLE001
            print("FAIL start server: %s" % e, flush=True)
            print("0 passed, 1 failed")
            return 1
        print("server %s on port %d (pid %d)" % (args.server, server.port, server.proc.pid),
              flush=True)
        runner = Runner(server)
        asyncio.run(cases(runner))
    finally:
        rc = server.stop()
    runner.result("server exits 0 on SIGTERM", rc == 0, "exit status %r" % (rc,))
    if after_stop is not None:
        after_stop(runner, server)
    print("%d passed, %d failed" % (runner.passed, runner.failed))
    return 1 if runner.failed else 0
