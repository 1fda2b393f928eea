"""Start a test server binary on port 0 and stop it by pid: shared by the Python tests.

Server(path, name) runs `path 0`, reads its first line "<name> listening on port N", keeps
draining its stdout (lines kept in .lines) so it can never block on a full pipe, and stop()
sends SIGTERM by pid (SIGKILL if it does not go) and returns the exit status.
"""
import asyncio
import os
import select
import signal
import subprocess
import sys
import threading
import time

STOP_TIMEOUT = 20.0  # sanitizer builds stop slowly; the server's close timeout is 3 s
CASE_TIMEOUT = 60.0  # one test case, end to end


def require_websockets():
    """Debian's python3-websockets, or one clear line and a failed run (never a silent skip)."""
    try:
        import websockets  # noqa: F401
        import websockets.exceptions  # noqa: F401
        return websockets
    except ImportError:  # pragma: no cover
        print("python3-websockets is missing (Debian package python3-websockets)", file=sys.stderr)
        print("0 passed, 1 failed")
        sys.exit(1)


class Server:
    def __init__(self, path, name, stdin_pipe=False, args=()):
        self.path = path
        self.name = name
        self.args = [str(a) for a in args]  # after the port "0" (e.g. TLS flags)
        self.stdin_pipe = stdin_pipe
        self.proc = None
        self.port = None
        self.lines = []  # stdout lines after the port line
        self._drainer = None

    def start(self):
        self.proc = subprocess.Popen([self.path, "0", *self.args], stdout=subprocess.PIPE,
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


class RunnerBase:
    """What every Python test runner needs: the server it tests and a websockets client for it."""

    def __init__(self, server, ssl_context=None):
        self.server = server
        self.ssl_context = ssl_context  # wss:// when set (a context trusting the test CA)
        self.passed = 0
        self.failed = 0

    @property
    def uri(self):
        scheme = "wss" if self.ssl_context else "ws"
        return "%s://127.0.0.1:%d/" % (scheme, self.server.port)

    def connect(self, **kw):
        import websockets  # Debian's python3-websockets; imported here so the module loads without it
        if self.ssl_context:
            kw.setdefault("ssl", self.ssl_context)
        kw.setdefault("max_size", None)
        kw.setdefault("ping_interval", None)
        kw.setdefault("open_timeout", 10)
        kw.setdefault("close_timeout", 10)
        return websockets.connect(self.uri, **kw)

    def result(self, name, ok, detail="", t0=None):
        """Count and print one case: PASS (with its time when t0 is given) or FAIL: detail."""
        if ok:
            self.passed += 1
            took = " (%.2f s)" % (time.monotonic() - t0) if t0 is not None else ""
            print("PASS %s%s" % (name, took), flush=True)
        else:
            self.failed += 1
            print("FAIL %s: %s" % (name, detail), flush=True)

    async def run(self, name, coro_fn, timeout=CASE_TIMEOUT):
        """One asynchronous case with a deadline; any exception fails it with its message."""
        t0 = time.monotonic()
        try:
            await asyncio.wait_for(coro_fn(), timeout)
        except asyncio.TimeoutError:
            self.result(name, False, "timed out after %.0f s" % timeout)
        except Exception as e:  # noqa: BLE001 - report anything
            self.result(name, False, "%s: %s" % (type(e).__name__, e))
        else:
            self.result(name, True, t0=t0)
