"""Shared harness of the pushwired tests (tests/daemon/test_*.py).

Daemon(path, args) starts the real daemon as a process with `--listen 127.0.0.1:0` plus args,
reads the port from its log line "... pushwired listening on port N ..." on stderr, keeps
draining stderr (lines kept in .lines) and stops it by pid (SIGTERM, then SIGKILL: see
tests/support/server_proc.py, whose Server it extends). Runner prints one line per case and
"N passed, M failed"; every test exits non-zero when a case failed.
"""
import argparse
import asyncio
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from server_proc import RunnerBase, Server, require_websockets  # noqa: E402

websockets = require_websockets()

PORT_LINE = re.compile(r"pushwired listening on port (\d+)")
# Reports of the sanitizer builds (ASan, UBSan, LSan, TSan) in a daemon's stderr: each one
# fails the test (finish), even when the daemon still exited 0.
SANITIZER = re.compile(r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|WARNING: ThreadSanitizer"
                       r"|runtime error:|ThreadSanitizer: reported")
sanitizer_reports = []


def note_sanitizer_reports(text, who):
    hits = [l for l in text.splitlines() if SANITIZER.search(l)]
    if hits:
        sanitizer_reports.append("%s: %s" % (who, hits[0]))


class Daemon(Server):
    """pushwired as a real process on a free port."""

    def __init__(self, path, args=(), env=None, stdin_pipe=False, listen="127.0.0.1:0"):
        super().__init__(path, "pushwired", stdin_pipe)
        self.args = list(args)
        self.env = env
        self.listen = listen

    def command(self):
        return [self.path, "--listen", self.listen] + self.args

    def popen_kwargs(self):
        env = dict(os.environ)
        for k in list(env):
            if k.startswith("PUSHWIRED_"):
                del env[k]  # the tests choose every PUSHWIRED_* themselves
        env.update(self.env or {})
        return {"env": env, "stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE,
                "stdin": subprocess.PIPE if self.stdin_pipe else subprocess.DEVNULL}

    def port_stream(self):
        return self.proc.stderr  # the port is in a log line

    def find_port(self, buf):
        """The port once a log line names it; every line read so far goes to .lines."""
        m = PORT_LINE.search(buf.decode("utf-8", "replace"))
        return (int(m.group(1)), buf) if m else None

    def stop(self):
        rc = super().stop()
        note_sanitizer_reports("\n".join(self.lines), "pushwired %s" % " ".join(self.args))
        return rc

    def wait_for_line(self, pattern, timeout=10.0):
        """The first stderr line matching pattern (a regex), waiting up to timeout."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if rx.search(line):
                    return line
            time.sleep(0.02)
        raise AssertionError("no log line matching %r within %.0f s; log: %s"
                             % (pattern, timeout, self.lines[-10:]))

    # ---- clients ------------------------------------------------------------------------
    def ws(self, path="/ws", **kw):
        kw.setdefault("max_size", None)
        kw.setdefault("ping_interval", None)
        kw.setdefault("open_timeout", 10)
        kw.setdefault("close_timeout", 10)
        return websockets.connect("ws://127.0.0.1:%d%s" % (self.port, path), **kw)

    def http(self, method, path, body=None, headers=None):
        """(status, headers dict with lower-case names, body bytes); the path is sent as is."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()

    def publish(self, topic_path, body, headers=None):
        """POST /publish/<topic_path>: (status, parsed JSON body)."""
        status, _, data = self.http("POST", "/publish/" + topic_path, body, headers)
        return status, json.loads(data) if data else None


class Runner(RunnerBase):
    def check(self, name, fn):
        """A synchronous case."""
        try:
            fn()
        except Exception as e:  # noqa: BLE001
            self.result(name, False, "%s: %s" % (type(e).__name__, e))
        else:
            self.result(name, True)


async def recv_json(ws, timeout=10):
    msg = await asyncio.wait_for(ws.recv(), timeout)
    if not isinstance(msg, str):
        raise AssertionError("expected a text message, got %d binary bytes" % len(msg))
    return json.loads(msg)


async def request(ws, msg, timeout=10):
    """Send one protocol request (a dict) and return the parsed answer."""
    await ws.send(json.dumps(msg))
    return await recv_json(ws, timeout)


async def subscribe(ws, topic):
    ans = await request(ws, {"op": "subscribe", "topic": topic})
    assert ans == {"ok": True, "op": "subscribe", "topic": topic}, ans
    return ans


async def with_daemon(r, path, args, cases, check_exit=True):
    """Start pushwired with args, run `await cases(r, d)`, stop it by pid; with check_exit, one
    more case: it exited 0 on SIGTERM. Returns the exit status."""
    d = Daemon(path, args).start()
    try:
        await cases(r, d)
    finally:
        rc = d.stop()
    if check_exit:
        r.result("daemon exits 0 on SIGTERM", rc == 0, "rc=%r" % rc)
    return rc


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


def parse_args(description):
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--daemon", required=True, help="path to the pushwired binary")
    return ap.parse_args()


def run_daemon(path, args=(), env=None, timeout=10):
    """Run pushwired to completion (for exit-code checks): (rc, stdout, stderr)."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("PUSHWIRED_")}
    e.update(env or {})
    p = subprocess.run([path] + list(args), env=e, capture_output=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    note_sanitizer_reports(p.stderr.decode(), "pushwired %s" % " ".join(args))
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def finish(runner):
    for report in sanitizer_reports:
        runner.result("no sanitizer report", False, report)
    print("%d passed, %d failed" % (runner.passed, runner.failed), flush=True)
    return 1 if runner.failed else 0


def tempdir():
    return tempfile.TemporaryDirectory(prefix="pushwired-test-")
