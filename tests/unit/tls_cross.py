#!/usr/bin/python3
"""Cross-check of the TLS engine (src/tls.c) with clients nobody here wrote: Python's ssl module
and `openssl s_client`, over real sockets, against `test_tls --serve DIR` (a tiny blocking echo
server built from the engine; it makes its certificates in DIR at run time).

Usage: /usr/bin/python3 tests/unit/tls_cross.py --server PATH_TO_TEST_TLS

Prints one line per case and "N passed, M failed"; always stops the server by its pid.
"""
import argparse
import os
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import warnings

warnings.filterwarnings("ignore", category=DeprecationWarning)  # TLSv1_1: we mean to offer it

TIMEOUT = 20.0


class Serve:
    """test_tls --serve DIR: first line "tls-serve listening on port N"; then one line per
    connection ("conn K version=... alpn=... resumed=... result=..."); "reload" on its stdin
    switches to the second certificate and answers "reloaded 0"."""

    def __init__(self, path, workdir):
        self.proc = subprocess.Popen([path, "--serve", workdir], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.pending = b""
        line = self.line()
        prefix = "tls-serve listening on port "
        if not line.startswith(prefix):
            raise RuntimeError("unexpected first line %r" % line)
        self.port = int(line[len(prefix):])

    def line(self, timeout=TIMEOUT):
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self.pending:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise RuntimeError("no line from the server within %.0f s" % timeout)
            chunk = os.read(fd, 4096)
            if not chunk:
                raise RuntimeError("server exited (rc=%s)" % self.proc.wait())
            self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        return line.decode()

    def conn_line(self):
        """The server's report of the connection that just ended, as a dict."""
        line = self.line()
        return dict(kv.split("=", 1) for kv in line.split()[2:])

    def command(self, text):
        self.proc.stdin.write(text.encode() + b"\n")
        self.proc.stdin.flush()
        return self.line()

    def stop(self):
        """Close its stdin (it exits), else SIGTERM, else SIGKILL, all by pid."""
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=TIMEOUT)
        except (subprocess.TimeoutExpired, BrokenPipeError):
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        err = self.proc.stderr.read().decode("utf-8", "replace")
        return self.proc.returncode, err


def client_ctx(workdir, alpn=("http/1.1",), version=None):
    ctx = ssl.create_default_context(cafile=os.path.join(workdir, "one.pem"))
    ctx.load_verify_locations(os.path.join(workdir, "two.pem"))
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    if version is not None:
        if version < ssl.TLSVersion.TLSv1_2:
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # else the client itself refuses TLS 1.1
        ctx.minimum_version = ctx.maximum_version = version
    return ctx


def connect(port, ctx, session=None):
    raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    return ctx.wrap_socket(raw, server_hostname="localhost", session=session)


def recv_exact(s, n):
    out = bytearray()
    while len(out) < n:
        chunk = s.recv(min(1 << 20, n - len(out)))
        if not chunk:
            raise RuntimeError("connection closed after %d of %d bytes" % (len(out), n))
        out += chunk
    return bytes(out)


def close_tls(s):
    """A clean TLS close: our close_notify, then the server's (unwrap waits for it)."""
    s.unwrap().close()


class Runner:
    def __init__(self, server, workdir):
        self.server = server
        self.workdir = workdir
        self.passed = self.failed = 0

    def case(self, name, fn):
        try:
            fn()
            self.passed += 1
            print("ok   %s" % name)
        except Exception as e:  # one line per failure; the run goes on
            self.failed += 1
            print("FAIL %s: %s: %s" % (name, type(e).__name__, e))
        sys.stdout.flush()

    def expect(self, cond, what):
        if not cond:
            raise AssertionError(what)

    def refused(self, ctx):
        """Connect expecting the server to refuse the handshake (result -102, EHANDSHAKE);
        returns the client's error text."""
        try:
            s = connect(self.server.port, ctx)
            s.close()
            error = None
        except ssl.SSLError as e:
            error = str(e)
        info = self.server.conn_line()  # read first: keeps the server's lines in step
        self.expect(error is not None, "handshake succeeded")
        self.expect(info["result"] == "-102", "server result %r" % info)
        return error

    # ---- cases ----

    def echo_sizes(self):
        """Echo 0 B..1 MiB over TLS 1.3, sent in odd pieces; ALPN and a verified chain."""
        s = connect(self.server.port, client_ctx(self.workdir))
        alpn = s.selected_alpn_protocol()
        self.expect(alpn == "http/1.1", "ALPN %r" % alpn)
        self.expect(s.version() == "TLSv1.3", "version %r" % s.version())
        for n in (1, 2, 100, 16383, 16384, 16385, 65536 + 7, 1 << 20):
            data = os.urandom(n)
            for i in range(0, n, 7777):
                s.sendall(data[i:i + 7777])
            self.expect(recv_exact(s, n) == data, "echo of %d bytes differs" % n)
        close_tls(s)
        info = self.server.conn_line()
        # -100 is PW__TLS_EOF: the client's close_notify, a clean end.
        self.expect(info["alpn"] == "http/1.1" and info["result"] == "-100", "server saw %r" % info)

    def tls12(self):
        s = connect(self.server.port, client_ctx(self.workdir, version=ssl.TLSVersion.TLSv1_2))
        self.expect(s.version() == "TLSv1.2", "version %r" % s.version())
        s.sendall(b"x" * 5000)
        self.expect(recv_exact(s, 5000) == b"x" * 5000, "echo differs")
        close_tls(s)
        self.server.conn_line()

    def resumption(self):
        for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
            ctx = client_ctx(self.workdir, version=version)
            s = connect(self.server.port, ctx)
            s.sendall(b"ping")  # a round trip, so the TLS 1.3 tickets have arrived
            recv_exact(s, 4)
            session = s.session
            close_tls(s)
            self.server.conn_line()
            s = connect(self.server.port, ctx, session=session)
            self.expect(s.session_reused, "%s: session not reused" % version.name)
            s.sendall(b"pong")
            recv_exact(s, 4)
            close_tls(s)
            info = self.server.conn_line()
            self.expect(info["resumed"] == "1", "%s: server says %r" % (version.name, info))

    def alpn_h2_only(self):
        """RFC 7301 3.2: a client offering only protocols we lack gets no_application_protocol."""
        error = self.refused(client_ctx(self.workdir, alpn=("h2",)))
        self.expect("no application protocol" in error.lower(), "error %s" % error)

    def no_alpn(self):
        s = connect(self.server.port, client_ctx(self.workdir, alpn=None))
        self.expect(s.selected_alpn_protocol() is None, "ALPN %r" % s.selected_alpn_protocol())
        close_tls(s)
        self.expect(self.server.conn_line()["alpn"] == "-", "server selected a protocol")

    def tls11_refused(self):
        error = self.refused(client_ctx(self.workdir, version=ssl.TLSVersion.TLSv1_1))
        # The server's alert, not a local refusal: our client did offer TLS 1.1.
        self.expect("alert protocol version" in error.lower(), "not the server's alert: %s" % error)

    def plain_http(self):
        """Plain HTTP to the TLS port: detected, answered with a readable 400, logged once.
        (Checked by disabling looks_like_http in src/tls.c: the answer was empty, this failed.)"""
        raw = socket.create_connection(("127.0.0.1", self.server.port), timeout=TIMEOUT)
        raw.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        answer = b""
        while True:
            chunk = raw.recv(4096)
            if not chunk:
                break
            answer += chunk
        raw.close()
        info = self.server.conn_line()
        self.expect(answer.startswith(b"HTTP/1.1 400 Bad Request\r\n"), "answer %r" % answer[:60])
        self.expect(info["result"] == "-101", "server did not say EPLAIN: %r" % info)

    def openssl_s_client(self):
        """A second independent client: openssl s_client verifies the chain and ALPN."""
        cmd = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % self.server.port,
               "-servername", "localhost", "-verify_hostname", "localhost",
               "-CAfile", os.path.join(self.workdir, "one.pem"), "-verify_return_error",
               "-alpn", "http/1.1"]
        r = subprocess.run(cmd, input=b"", capture_output=True, timeout=TIMEOUT)
        self.server.conn_line()
        out = r.stdout.decode("utf-8", "replace")
        for want in ("New, TLSv1.3", "ALPN protocol: http/1.1", "Verify return code: 0 (ok)",
                     "CN = pushwire-cross-one"):
            self.expect(want in out, "s_client said no %r:\n%s" % (want, out))

    def reload(self):
        """After a reload, a new connection sees the second certificate."""
        self.expect(self.server.command("reload") == "reloaded 0", "reload failed")
        s = connect(self.server.port, client_ctx(self.workdir))
        cn = dict(x[0] for x in s.getpeercert()["subject"])["commonName"]
        self.expect(cn == "pushwire-cross-two", "certificate %r after the reload" % cn)
        close_tls(s)
        self.server.conn_line()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True, help="path to the test_tls binary")
    args = ap.parse_args()
    workdir = tempfile.mkdtemp(prefix="pw-tls-cross-")
    server = None
    runner = None
    try:
        server = Serve(args.server, workdir)
        runner = Runner(server, workdir)
        for name in ("echo_sizes", "tls12", "resumption", "alpn_h2_only", "no_alpn",
                     "tls11_refused", "plain_http", "openssl_s_client", "reload"):
            runner.case(name, getattr(runner, name))
    finally:
        if server is not None:
            rc, err = server.stop()
            if runner is not None:
                # Errors are logged once per failed connection: exactly the three refused ones.
                logged = [l for l in err.splitlines() if l.startswith("tls-serve: connection")]
                if rc != 0 or len(logged) != 3:
                    runner.failed += 1
                    print("FAIL server: rc=%s, %d error lines (want 3):\n%s"
                          % (rc, len(logged), err))
                else:
                    runner.passed += 1
                    print("ok   server log: " + " | ".join(l.split(": ", 1)[1] for l in logged))
        shutil.rmtree(workdir, ignore_errors=True)
    print("%d passed, %d failed" % (runner.passed if runner else 0, runner.failed if runner else 1))
    return 1 if runner is None or runner.failed else 0


if __name__ == "__main__":
    sys.exit(main())
