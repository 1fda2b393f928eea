"""Start a test server binary on port 0 and stop it by pid: shared by the Python tests.

Server(path, name, args=...) runs `path 0 ARGS`, reads its first line "<name> listening on
port N", keeps draining its stdout (lines kept in .lines) so it can never block on a full pipe,
and stop() sends SIGTERM by pid (SIGKILL if it does not go) and returns the exit status. The
conformance suite's Server (tests/conformance/wsclient.py) and pushwired's Daemon
(tests/daemon/harness.py) are subclasses.
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
    """A server process on port 0. Subclasses change what differs: command() (the argv),
    popen_kwargs() (streams, environment), port_stream() (where the port line comes) and
    find_port() (how it reads), fail() (the exception a failed start raises)."""

    def __init__(self, path, name, stdin_pipe=False, args=(), stderr=None):
        self.path = path
        self.name = name
        self.args = [str(a) for a in args]  # after the port "0" (e.g. TLS flags)
        self.stdin_pipe = stdin_pipe
        self.stderr_to = stderr  # None: the test's own stderr
        self.proc = None
        self.port = None
        self.lines = []  # output lines after the port line
        self._drainer = None

    def command(self):
        return [self.path, "0", *self.args]

    def popen_kwargs(self):
        return {"stdout": subprocess.PIPE, "stderr": self.stderr_to,
                "stdin": subprocess.PIPE if self.stdin_pipe else subprocess.DEVNULL}

    def port_stream(self):
        return self.proc.stdout

    def find_port(self, buf):
        """(port, the bytes left for .lines) once buf holds the port line, else None."""
        if b"\n" not in buf:
            return None
        line, rest = buf.split(b"\n", 1)
        line = line.decode("utf-8", "replace").strip()
        prefix = "%s listening on port " % self.name
        if not line.startswith(prefix):
            self.fail("unexpected first line from %s: %r" % (self.name, line))
        return int(line[len(prefix):]), rest

    def fail(self, msg):
        raise RuntimeError(msg)

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout=20.0):
        self.proc = subprocess.Popen(self.command(), **self.popen_kwargs())
        deadline = time.monotonic() + timeout
        buf = b""
        fd = self.port_stream().fileno()
        while (found := self.find_port(buf)) is None:
            left = deadline - time.monotonic()
            if left <= 0:
                self.fail("%s printed no port line within %.0f s (got %r)"
                          % (self.name, timeout, buf))
            r, _, _ = select.select([fd], [], [], left)
            if r:
                chunk = os.read(fd, 4096)
                if not chunk:
                    self.fail("%s exited before printing its port (rc=%s, got %r)"
                              % (self.name, self.proc.wait(), buf))
                buf += chunk
        self.port, rest = found
        # Keep draining the stream so the server can never block on a full pipe.
        self._drainer = threading.Thread(target=self._drain, args=(fd, rest), daemon=True)
        self._drainer.start()
        return self

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

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """sig (SIGTERM) by pid, wait; SIGKILL if it does not go. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.kill(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait()
        if self._drainer is not None:
            self._drainer.join(timeout=5)
            if not self._drainer.is_alive():
                self.port_stream().close()  # read to its end: its descriptor can go
        return self.proc.returncode


def start_and_announce(server, path):
    """Start server and print where it runs: True; or a FAIL line and "0 passed, 1 failed",
    and False (the caller still stops it: the process may have started)."""
    try:
        server.start()
    except Exception as e:  # noqa: BLE001
        print("FAIL start server: %s" % e, flush=True)
        print("0 passed, 1 failed")
        return False
    print("server %s on port %d (pid %d)" % (path, server.port, server.pid), flush=True)
    return True


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
