#!/usr/bin/python3
"""TLS edges of pw-echo (wss://), with Python's ssl module and python3-websockets as clients.

Usage: /usr/bin/python3 tests/interop/tls_python.py --server PATH_TO_PW_ECHO

Cases (each names what breaks it; checked by removing the defence and running this file):
- plain HTTP to the TLS port: a plain "400" readable by the client, then EOF; five such
  clients give ONE log line (rate-limited). Without the EPLAIN branch in conn.c tls_failed,
  the client got EOF and no 400; without the rate limit, five lines.
- a client that stalls mid-handshake (half a ClientHello) is dropped by the handshake timeout,
  while another client completes a handshake and an echo meanwhile. With the TLS conn taken
  off the HTTP list at accept, the stalled socket was never closed (timed out here).
- close_notify: after the close handshake the server's TLS close_notify comes before its FIN
  (an ssl socket with suppress_ragged_eofs=False reads b"" instead of raising SSLEOFError).
  Removing the pw__tls_conn_shutdown call in flush_tls made this case fail with SSLEOFError.
- client certificates (--tls-ca, required): no certificate and a self-signed one are refused
  (handshake alert, logged), the CA-signed one echoes. Without tls.require_client_cert passed
  to the engine, the no-certificate client got its echo.
- reload from another thread (SIGHUP -> pw_server_reload_tls on pw-echo's main thread) while
  clients keep connecting: none fails, and every handshake after the reload shows the new
  certificate's subject. Without the reload call every client still saw pushwire-test-a.
- a client that does not read while it is sent 8 MiB (2 echoes of 4 MiB) then reads them all:
  the ciphertext the socket does not take waits in a copied uv_write and the rest of the queue
  follows when it is written; the echoes arrive whole and in order. With on_tls_written not
  flushing again, the reader stalled after the first part (timed out).
- the same with --threads 2 (two loops, both TLS listeners on one port, SO_REUSEPORT).
- the server's stderr has no sanitizer report (ASan/UBSan/TSan builds).
Prints one line per case and "N passed, M failed"; exits non-zero on any failure.
"""
import argparse
import asyncio
import base64
import os
import shutil
import signal
import socket
import ssl
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import server_proc  # noqa: E402
import tls_certs  # noqa: E402

import websockets  # noqa: E402  (Debian's python3-websockets)

HANDSHAKE_TIMEOUT_MS = 1000


class Echo(server_proc.Server):
    """pw-echo with TLS flags, started at once; stderr to a file (log lines, sanitizer reports)."""

    def __init__(self, path, args):
        self.errfile = tempfile.NamedTemporaryFile(prefix="pw-tls-err-", delete=False)
        super().__init__(path, "pw-echo", args=args, stderr=self.errfile)
        try:
            self.start()
        except BaseException:
            self.stop()
            raise

    def fail(self, msg):
        raise RuntimeError("%s (stderr: %s)" % (msg, self.stderr()))

    def stderr(self):
        with open(self.errfile.name, "r", errors="replace") as f:
            return f.read()

    def stop(self):
        rc = super().stop()
        err = self.stderr()
        if os.path.exists(self.errfile.name):
            os.unlink(self.errfile.name)
        return rc, err


def ws_request(host_port):
    key = base64.b64encode(os.urandom(16)).decode()
    return ("GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (host_port, key)).encode()


def read_until(sock, marker, limit=1 << 16):
    buf = b""
    while marker not in buf and len(buf) < limit:
        d = sock.recv(4096)
        if not d:
            break
        buf += d
    return buf


async def echo_once(port, ctx, msg="hi"):
    async with websockets.connect("wss://127.0.0.1:%d/" % port, ssl=ctx, open_timeout=10,
                                  close_timeout=5, ping_interval=None) as ws:
        await ws.send(msg)
        got = await ws.recv()
        assert got == msg, "echo %r came back as %r" % (msg, got)


def peer_subject(port, ctx):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            subject = dict(x[0] for x in s.getpeercert()["subject"])
            return subject["commonName"]


class Cases:
    def __init__(self, server_path, certs):
        self.path = server_path
        self.certs = certs
        self.ctx = tls_certs.client_context(certs)
        self.passed = self.failed = 0
        self.sanitizer_reports = []

    def run(self, name, fn):
        t0 = time.monotonic()
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - report anything
            self.failed += 1
            print("FAIL %s: %s: %s" % (name, type(e).__name__, e), flush=True)
            return
        self.passed += 1
        print("PASS %s (%.2f s)" % (name, time.monotonic() - t0), flush=True)

    def with_server(self, args, body):
        srv = Echo(self.path, args)
        try:
            body(srv)
        finally:  # the server is stopped whatever happened; a body's failure is reported first
            rc, err = srv.stop()
            if "Sanitizer" in err or "runtime error:" in err:
                self.sanitizer_reports.append(err)
        assert rc == 0, "server exit status %r; stderr:\n%s" % (rc, err[-2000:])
        return err

    # ---- cases ----
    def plain_http(self):
        def body(srv):
            for _ in range(5):
                with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
                    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                    got = read_until(s, b"wss://")
                    assert got.startswith(b"HTTP/1.1 400 "), "got %r" % got[:80]
                    assert b"wss://" in got, "no explanation in %r" % got
                    s.settimeout(10)
                    assert s.recv(100) == b"", "the connection stayed open"
            asyncio.run(echo_once(srv.port, self.ctx))  # others are served as before
        err = self.with_server(tls_certs.server_args(self.certs), body)
        lines = [l for l in err.splitlines() if "plain HTTP" in l]
        assert len(lines) == 1, "expected one rate-limited log line, got %d:\n%s" % (
            len(lines), err)

    def stalled_handshake(self):
        args = tls_certs.server_args(self.certs) + [
            "--handshake-timeout", str(HANDSHAKE_TIMEOUT_MS)]

        def body(srv):
            # The first bytes of a TLS record carrying a ClientHello, then nothing.
            stalled = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
            stalled.sendall(bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc]))
            t0 = time.monotonic()
            asyncio.run(echo_once(srv.port, self.ctx))  # not blocked by the stalled one
            served = time.monotonic() - t0
            assert served < HANDSHAKE_TIMEOUT_MS / 1000.0, "the other client waited %.2f s" % served
            try:
                got = stalled.recv(100)
            except ConnectionResetError:
                got = b""
            waited = time.monotonic() - t0
            stalled.close()
            assert got == b"", "stalled client got %r" % got
            assert waited < HANDSHAKE_TIMEOUT_MS / 1000.0 + 3, "dropped after %.1f s" % waited
        self.with_server(args, body)

    def close_notify(self):
        def body(srv):
            ctx = tls_certs.client_context(self.certs)
            # Python sets OP_IGNORE_UNEXPECTED_EOF by default: clear it, or a FIN without
            # close_notify also reads as b"".
            ctx.options &= ~ssl.OP_IGNORE_UNEXPECTED_EOF
            with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as raw:
                s = ctx.wrap_socket(raw, server_hostname="127.0.0.1", suppress_ragged_eofs=False)
                s.sendall(ws_request("127.0.0.1:%d" % srv.port))
                head = read_until(s, b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 101"), head[:60]
                # a masked close frame, code 1000
                s.sendall(bytes([0x88, 0x82, 1, 2, 3, 4, 0x03 ^ 1, 0xE8 ^ 2]))
                got = b""
                while True:
                    d = s.recv(100)  # SSLEOFError if the FIN comes without close_notify
                    if not d:
                        break
                    got += d
                assert got[:4] == bytes([0x88, 0x02, 0x03, 0xE8]), "close reply %r" % got
        self.with_server(tls_certs.server_args(self.certs), body)

    def late_reader(self):
        def body(srv):
            with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as raw:
                s = self.ctx.wrap_socket(raw, server_hostname="127.0.0.1")
                s.sendall(ws_request("127.0.0.1:%d" % srv.port))
                head = read_until(s, b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 101"), head[:60]
                rest = head.split(b"\r\n\r\n", 1)[1]
                # Two 4 MiB echoes: more than the socket takes at once, and within pw-echo's
                # 1 MiB queue limit (one message into an empty queue always fits).
                n, size = 2, 4 << 20
                msgs = [bytes([i]) * size for i in range(n)]
                for m in msgs:  # masked binary frames, 64-bit length, zero mask key
                    s.sendall(bytes([0x82, 0xFF]) + size.to_bytes(8, "big") + bytes(4) + m)
                time.sleep(0.5)  # not reading: the server's writes back up
                want = n * (10 + size)
                buf = bytearray(rest)
                s.settimeout(20)
                while len(buf) < want:
                    d = s.recv(1 << 20)
                    assert d, "EOF after %d of %d bytes" % (len(buf), want)
                    buf += d
                for i in range(n):
                    frame = bytes(buf[i * (10 + size):(i + 1) * (10 + size)])
                    assert frame[:2] == bytes([0x82, 0x7F]), "frame %d header %r" % (i, frame[:10])
                    assert frame[10:] == msgs[i], "echo %d differs" % i
        return body

    def client_certificates(self):
        c = self.certs
        args = tls_certs.server_args(c) + ["--tls-ca", c.ca, "--tls-require-client-cert", "1"]

        def refused(port, ctx):
            try:
                asyncio.run(echo_once(port, ctx))
            except (ssl.SSLError, ConnectionError, websockets.exceptions.WebSocketException,
                    asyncio.TimeoutError, OSError):
                return
            raise AssertionError("a client without a valid certificate got its echo")

        def body(srv):
            refused(srv.port, tls_certs.client_context(c))
            refused(srv.port, tls_certs.client_context(c, c.rogue_cert, c.rogue_key))
            asyncio.run(echo_once(srv.port, tls_certs.client_context(c, c.client_cert,
                                                                     c.client_key)))
        err = self.with_server(args, body)
        assert "certificate" in err, "no log line about the certificate:\n%s" % err

    def reload(self):
        d = tempfile.mkdtemp(prefix="pw-tls-reload-")
        cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        shutil.copy(self.certs.server_cert, cert)
        shutil.copy(self.certs.server_key, key)
        seen, errors, stop = [], [], threading.Event()

        def client_loop(port):
            while not stop.is_set():
                try:
                    seen.append((time.monotonic(), peer_subject(port, self.ctx)))
                except Exception as e:  # noqa: BLE001
                    errors.append(repr(e))

        def body(srv):
            threads = [threading.Thread(target=client_loop, args=(srv.port,)) for _ in range(4)]
            for t in threads:
                t.start()
            time.sleep(0.3)
            # New files by rename (a reader never sees half a file), then SIGHUP.
            shutil.copy(self.certs.server_b_key, key + ".new")
            shutil.copy(self.certs.server_b_cert, cert + ".new")
            os.rename(key + ".new", key)
            os.rename(cert + ".new", cert)
            os.kill(srv.proc.pid, signal.SIGHUP)
            deadline = time.monotonic() + 10
            while "pw-echo reload: ok" not in srv.lines and time.monotonic() < deadline:
                time.sleep(0.01)
            reloaded_at = time.monotonic()
            time.sleep(0.3)
            stop.set()
            for t in threads:
                t.join()
            assert "pw-echo reload: ok" in srv.lines, "reload lines: %r" % srv.lines
            assert not errors, "%d handshakes failed, e.g. %s" % (len(errors), errors[0])
            before = {s for t, s in seen if t < reloaded_at - 0.3}
            after = [s for t, s in seen if t > reloaded_at + 0.05]
            assert before == {"pushwire-test-a"}, "before the reload: %r" % before
            assert after and set(after) == {"pushwire-test-b"}, "after: %r" % set(after)
            assert peer_subject(srv.port, self.ctx) == "pushwire-test-b"
        try:
            self.with_server(["--tls-cert", cert, "--tls-key", key], body)
        finally:
            shutil.rmtree(d, True)

    def all(self):
        self.run("plain HTTP to the TLS port: 400, closed, logged once", self.plain_http)
        self.run("stalled handshake dropped by the handshake timeout, others served",
                 self.stalled_handshake)
        self.run("close_notify before the FIN", self.close_notify)
        self.run("a late reader gets 8 MiB of echoes whole and in order",
                 lambda: self.with_server(tls_certs.server_args(self.certs), self.late_reader()))
        self.run("the same with two loop threads (SO_REUSEPORT)",
                 lambda: self.with_server(tls_certs.server_args(self.certs) + ["--threads", "2"],
                                          self.late_reader()))
        self.run("client certificates required: none/rogue refused, CA-signed served",
                 self.client_certificates)
        self.run("reload from another thread while clients connect", self.reload)
        if self.sanitizer_reports:
            self.failed += 1
            print("FAIL sanitizer report in the server's stderr:\n%s"
                  % self.sanitizer_reports[0][-4000:], flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", required=True, help="path to the pw-echo binary")
    args = ap.parse_args()
    cases = Cases(args.server, tls_certs.make_certs())
    cases.all()
    print("%d passed, %d failed" % (cases.passed, cases.failed))
    return 1 if cases.failed else 0


if __name__ == "__main__":
    sys.exit(main())
