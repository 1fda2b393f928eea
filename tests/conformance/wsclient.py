"""Shared pieces of the pushwire conformance suite (Python 3 stdlib only).

* Server: starts pw-echo (tests/support/pw_echo.c) on port 0 with extra arguments, reads its
  "pw-echo listening on port N" line and always kills it by pid (try/finally + atexit): a
  subclass of tests/support/server_proc.py's Server.
* WS: a raw-socket WebSocket client. It builds any frame (FIN, RSV, opcode, mask,
  7/16/64-bit length encodings), sends bytes whole or chopped, reads frames with a timeout
  and checks what the server sent byte for byte.
* Tests / Ctx: a tiny runner. Each test is a function taking a Ctx; one line PASS/FAIL per
  test, then exactly "N passed, M failed"; the exit status is non-zero if any failed.
* --tls: the same tests over TLS: every server gets a certificate made at run time
  (tests/support/tls_certs.py) and every WS wraps its socket in ssl, trusting the test CA.
  A test that cannot run over TLS (it writes to a dup of the socket, say) calls skip_tls().
"""

import argparse
import atexit
import base64
import hashlib
import os
import random
import re
import signal
import socket
import struct
import sys
import threading
import time
import traceback

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import server_proc  # noqa: E402

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA
OP_NAMES = {0: "cont", 1: "text", 2: "binary", 8: "close", 9: "ping", 10: "pong"}

RSV1, RSV2, RSV3 = 4, 2, 1  # values for build_frame(rsv=...)

DEFAULT_TIMEOUT = 3.0

# Set by --tls: {"args": pw-echo's TLS flags, "ctx": the client ssl context}.
TLS = None


def enable_tls():
    global TLS
    import tls_certs
    certs = tls_certs.make_certs()
    TLS = {"args": tls_certs.server_args(certs), "ctx": tls_certs.client_context(certs)}


# ---------------------------------------------------------------------------------------------
# failures
class TestFailure(AssertionError):
    pass


class Timeout(TestFailure):
    pass


class PeerEOF(TestFailure):
    pass


class PeerReset(TestFailure):
    pass


class Skipped(Exception):
    pass


def skip_tls(why):
    """This test needs the raw TCP stream (not possible through TLS): skip it under --tls."""
    if TLS:
        raise Skipped(why)


def fail(msg):
    raise TestFailure(msg)


def check(cond, msg):
    if not cond:
        raise TestFailure(msg() if callable(msg) else msg)


def short(data, limit=48):
    """repr of bytes, truncated, with the length."""
    data = bytes(data)
    if len(data) <= limit:
        return f"{data!r}"
    return f"{data[:limit]!r}...({len(data)} bytes)"


def first_diff(a, b):
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def accept_for(key):
    if isinstance(key, str):
        key = key.encode()
    return base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()


def new_key():
    return base64.b64encode(os.urandom(16)).decode()


# ---------------------------------------------------------------------------------------------
# the server process
_SERVERS = set()
_SERVERS_LOCK = threading.Lock()


def _kill_all_servers():
    with _SERVERS_LOCK:
        servers = list(_SERVERS)
    for s in servers:
        try:
            s.stop(timeout=2)
        except Exception:
            pass


atexit.register(_kill_all_servers)


def _on_term(signum, frame):
    # make SIGTERM/SIGHUP (e.g. a CTest timeout) run the atexit handlers
    sys.exit(128 + signum)


for _sig in (signal.SIGTERM, signal.SIGHUP):
    try:
        signal.signal(_sig, _on_term)
    except (ValueError, OSError):
        pass


class Server(server_proc.Server):
    """pw-echo started with PORT 0 and extra args (plus the TLS flags under --tls) as soon as
    it is made; .port is the port it printed. Beside server_proc.Server: a failed start is a
    TestFailure, every server still running at exit is stopped (atexit), and a test that stops
    one on purpose says so (expect_exit)."""

    def __init__(self, path, args=(), start_timeout=10.0):
        super().__init__(path, "pw-echo", args=[*args, *(TLS["args"] if TLS else [])])
        self.expect_exit = False  # set by a test that stops the server on purpose
        with _SERVERS_LOCK:
            _SERVERS.add(self)
        try:
            self.start(start_timeout)
        except BaseException:
            self.stop(timeout=1)
            raise

    def fail(self, msg):
        fail("%s: %s" % (self.describe(), msg))

    def describe(self):
        return "pw-echo " + " ".join(["0"] + self.args)

    @property
    def stdout_rest(self):
        """What pw-echo printed after its "listening" line."""
        return "".join(line + "\n" for line in self.lines).encode()

    def returncode(self):
        return self.proc.poll()

    def stop(self, sig=signal.SIGTERM, timeout=3.0):
        """Signal the server by pid, wait, then SIGKILL. Returns the exit status."""
        try:
            return super().stop(sig, timeout)
        finally:
            with _SERVERS_LOCK:
                _SERVERS.discard(self)


# ---------------------------------------------------------------------------------------------
# frames
def mask_bytes(data, key):
    n = len(data)
    if n == 0:
        return b""
    k = (bytes(key) * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(k, "little")).to_bytes(n, "little")


def build_frame(opcode, payload=b"", fin=True, rsv=0, mask=True, key=None, length_bits=None,
                declared_len=None):
    """Encode one client frame.

    rsv: 3-bit value (RSV1=4, RSV2=2, RSV3=1). length_bits: None = minimal, else 7, 16 or 64
    (non-minimal encodings are legal per RFC 6455). declared_len: lie about the length.
    key: 4-byte masking key (random by default)."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    payload = bytes(payload)
    n = len(payload) if declared_len is None else declared_len
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)
    mbit = 0x80 if mask else 0
    if length_bits is None:
        length_bits = 7 if n <= 125 else (16 if n <= 0xFFFF else 64)
    if length_bits == 7:
        if n > 125:
            raise ValueError("7-bit length > 125")
        hdr = bytes([b0, mbit | n])
    elif length_bits == 16:
        hdr = bytes([b0, mbit | 126]) + struct.pack(">H", n)
    elif length_bits == 64:
        hdr = bytes([b0, mbit | 127]) + struct.pack(">Q", n)
    else:
        raise ValueError("length_bits must be 7, 16 or 64")
    if not mask:
        return hdr + payload
    if key is None:
        key = os.urandom(4)
    return hdr + bytes(key) + mask_bytes(payload, key)


def close_payload(code=None, reason=b""):
    if code is None:
        return b""
    if isinstance(reason, str):
        reason = reason.encode("utf-8")
    return struct.pack(">H", code) + reason


def split_payload(data, n, rng=None, allow_empty=True):
    """Split data into exactly n parts (some possibly empty when allow_empty)."""
    if n <= 1:
        return [data]
    rng = rng or random.Random(len(data) * 31 + n)
    if allow_empty:
        cuts = sorted(rng.randint(0, len(data)) for _ in range(n - 1))
    else:
        if len(data) < n:
            raise ValueError("data too short for non-empty parts")
        cuts = sorted(rng.sample(range(1, len(data)), n - 1))
    parts, prev = [], 0
    for c in cuts + [len(data)]:
        parts.append(data[prev:c])
        prev = c
    return parts


def fragment_frames(opcode, parts, **kw):
    """Frames of one fragmented message: first with opcode, then continuations, FIN on last."""
    out = []
    for i, p in enumerate(parts):
        out.append(build_frame(opcode if i == 0 else OP_CONT, p, fin=(i == len(parts) - 1), **kw))
    return b"".join(out)


class Frame:
    def __init__(self, fin, rsv, opcode, masked, len_code, header, payload):
        self.fin, self.rsv, self.opcode, self.masked = fin, rsv, opcode, masked
        self.len_code, self.header, self.payload = len_code, header, payload

    def minimal_length(self):
        n = len(self.payload)
        if n <= 125:
            return self.len_code == n
        if n <= 0xFFFF:
            return self.len_code == 126
        return self.len_code == 127

    def close_code(self):
        if self.opcode != OP_CLOSE or len(self.payload) < 2:
            return None
        return struct.unpack(">H", self.payload[:2])[0]

    def __str__(self):
        name = OP_NAMES.get(self.opcode, f"op{self.opcode:#x}")
        extra = ""
        if not self.fin:
            extra += " FIN=0"
        if self.rsv:
            extra += f" RSV={self.rsv}"
        if self.masked:
            extra += " MASKED"
        if self.opcode == OP_CLOSE:
            if len(self.payload) >= 2:
                return f"close(code={self.close_code()}, reason={short(self.payload[2:])}{extra})"
            return f"close(payload={short(self.payload)}{extra})"
        return f"{name}(len={len(self.payload)}, {short(self.payload)}{extra})"


def check_server_frame(f):
    """Every server frame: unmasked, no RSV bits, minimal length encoding."""
    check(not f.masked, lambda: f"server frame is masked: {f} header {f.header.hex()}")
    check(f.rsv == 0, lambda: f"server frame has RSV bits {f.rsv}: {f}")
    check(f.minimal_length(),
          lambda: f"server frame uses non-minimal length encoding: header {f.header.hex()} "
                  f"for {len(f.payload)} payload bytes")


# ---------------------------------------------------------------------------------------------
# HTTP responses
class HttpResponse:
    def __init__(self, raw_head, version, status, reason, headers, body=b""):
        self.raw_head, self.version, self.status, self.reason = raw_head, version, status, reason
        self.headers, self.body = headers, body

    def header_all(self, name):
        name = name.lower()
        return [v for (k, v) in self.headers if k.lower() == name]

    def header(self, name):
        v = self.header_all(name)
        return v[0] if v else None

    def tokens(self, name):
        out = []
        for v in self.header_all(name):
            out += [t.strip().lower() for t in v.split(",") if t.strip()]
        return out

    def __str__(self):
        return short(self.raw_head, 300)


# ---------------------------------------------------------------------------------------------
# the client
class WS:
    """One TCP connection to the server, speaking raw bytes."""

    def __init__(self, port, host="127.0.0.1", timeout=DEFAULT_TIMEOUT, nodelay=True):
        self.port = port
        self.sock = socket.create_connection((host, port), timeout=timeout)
        if nodelay:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if TLS:
            self.sock = TLS["ctx"].wrap_socket(self.sock, server_hostname=host)
        self.buf = bytearray()
        self.send_error = None
        self.closed = False
        self.response = None

    # ---- sending
    def send(self, data, chunk=None, delay=0.0, random_chunks=None, rng=None):
        """Send bytes. chunk=k: in k-byte writes; random_chunks=(lo, hi): random-size writes;
        delay: sleep between writes. A peer reset/EPIPE is recorded (self.send_error), not
        raised: the next read will show what the server did. Returns True if all was sent."""
        data = bytes(data)
        try:
            if chunk is None and random_chunks is None:
                self.sock.settimeout(30)
                self.sock.sendall(data)
                return True
            rng = rng or random.Random(len(data))
            i = 0
            while i < len(data):
                k = chunk if chunk is not None else rng.randint(*random_chunks)
                self.sock.settimeout(30)
                self.sock.sendall(data[i:i + k])
                i += k
                if delay and i < len(data):
                    time.sleep(delay)
            return True
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError) as e:
            self.send_error = e
            return False

    def send_background(self, data):
        """Send bytes from another thread (through a dup of the socket, so timeouts do not
        interfere) while this thread reads. Returns the thread; errors land in send_error."""
        skip_tls("writes through a dup of the socket, under the TLS layer")
        s2 = socket.socket(fileno=os.dup(self.sock.fileno()))
        s2.settimeout(30)

        def run():
            try:
                s2.sendall(data)
            except OSError as e:
                self.send_error = e
            finally:
                s2.close()

        th = threading.Thread(target=run, daemon=True)
        th.start()
        return th

    def send_frame(self, opcode, payload=b"", chunk=None, delay=0.0, random_chunks=None, **kw):
        return self.send(build_frame(opcode, payload, **kw), chunk=chunk, delay=delay,
                         random_chunks=random_chunks)

    def send_text(self, text, **kw):
        return self.send_frame(OP_TEXT, text, **kw)

    def send_binary(self, data, **kw):
        return self.send_frame(OP_BINARY, data, **kw)

    def send_close(self, code=None, reason=b"", **kw):
        return self.send_frame(OP_CLOSE, close_payload(code, reason), **kw)

    # ---- receiving
    def _why(self):
        return f" (an earlier send failed: {self.send_error!r})" if self.send_error else ""

    def _fill(self, n, deadline, what):
        while len(self.buf) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Timeout(f"timeout waiting for {what}: have {len(self.buf)} of {n} bytes "
                              f"{short(self.buf)}{self._why()}")
            self.sock.settimeout(remaining)
            try:
                d = self.sock.recv(min(1 << 20, max(65536, n - len(self.buf))))
            except socket.timeout:
                continue
            except (ConnectionResetError, ConnectionAbortedError) as e:
                raise PeerReset(f"connection reset by server while waiting for {what} "
                                f"(have {short(self.buf)}){self._why()}") from e
            if not d:
                raise PeerEOF(f"server closed TCP (EOF) while waiting for {what} "
                              f"(have {short(self.buf)}){self._why()}")
            self.buf += d

    def _take(self, n):
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def recv_frame(self, timeout=DEFAULT_TIMEOUT):
        deadline = time.monotonic() + timeout
        self._fill(2, deadline, "a frame header")
        b0, b1 = self.buf[0], self.buf[1]
        code = b1 & 0x7F
        masked = bool(b1 & 0x80)
        hl = 2 + (2 if code == 126 else 8 if code == 127 else 0) + (4 if masked else 0)
        self._fill(hl, deadline, "a frame header")
        if code == 126:
            n = struct.unpack(">H", bytes(self.buf[2:4]))[0]
        elif code == 127:
            n = struct.unpack(">Q", bytes(self.buf[2:10]))[0]
            check(n < (1 << 40), f"absurd 64-bit frame length {n}")
        else:
            n = code
        self._fill(hl + n, deadline, f"a frame payload of {n} bytes")
        header = self._take(hl)
        payload = self._take(n)
        if masked:
            payload = mask_bytes(payload, header[-4:])
        return Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0xF, masked, code, header, payload)

    def expect_frame(self, opcode, payload, timeout=DEFAULT_TIMEOUT, what=""):
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        label = f" ({what})" if what else ""
        exp = f"{OP_NAMES.get(opcode, opcode)}(len={len(payload)}, {short(payload)})"
        try:
            f = self.recv_frame(timeout)
        except TestFailure as e:
            raise type(e)(f"expected {exp}{label}: {e}") from None
        check(f.opcode == opcode, lambda: f"expected {exp}{label}, got {f}")
        check(f.fin, lambda: f"expected FIN=1 on {exp}{label}, got {f}")
        check_server_frame(f)
        if f.payload != payload:
            i = first_diff(f.payload, payload)
            fail(f"payload mismatch{label}: expected {exp}, got {f}; first difference at byte {i}")
        return f

    def expect_echo(self, opcode, payload, timeout=DEFAULT_TIMEOUT, what="echo"):
        return self.expect_frame(opcode, payload, timeout, what)

    def expect_close(self, code, timeout=DEFAULT_TIMEOUT, reply=True, skip=(), eof_timeout=3.0):
        """Next frame (after any opcodes in `skip`) must be a close with `code` (None = empty
        payload; a tuple = any of these codes), then TCP must end. reply=True: answer the close first (RFC 6455 5.5.1); the
        TCP end may then be an EOF or a reset (the server may already have closed)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                f = self.recv_frame(max(0.01, deadline - time.monotonic()))
            except (PeerEOF, PeerReset, Timeout) as e:
                fail(f"expected close {code}: {e}")
            if f.opcode in skip:
                continue
            break
        check(f.opcode == OP_CLOSE, lambda: f"expected close {code}, got {f}")
        check(f.fin, lambda: f"close frame without FIN: {f}")
        check_server_frame(f)
        if code is None:
            check(f.payload == b"", lambda: f"expected a close with empty payload, got {f}")
        else:
            check(len(f.payload) >= 2, lambda: f"expected close {code}, got {f}")
            codes = code if isinstance(code, tuple) else (code,)
            check(f.close_code() in codes, lambda: f"expected close {code}, got {f}")
            try:
                f.payload[2:].decode("utf-8")
            except UnicodeDecodeError:
                fail(f"server close reason is not UTF-8: {f}")
        if reply:
            self.send_close(f.close_code() if code is not None else None)
        self.expect_eof(eof_timeout, allow_reset=reply)
        return f

    def expect_eof(self, timeout=DEFAULT_TIMEOUT, allow_reset=False, discard=False):
        """The server must close TCP: recv returns b"" (or a reset, if allow_reset)."""
        deadline = time.monotonic() + timeout
        if self.buf and not discard:
            fail(f"expected TCP EOF, but have unread bytes {short(self.buf)}")
        self.buf.clear()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Timeout(f"server did not close TCP within {timeout}s")
            self.sock.settimeout(remaining)
            try:
                d = self.sock.recv(65536)
            except socket.timeout:
                continue
            except (ConnectionResetError, ConnectionAbortedError):
                if allow_reset:
                    return "reset"
                fail("expected a clean TCP EOF, got a connection reset")
            if not d:
                return "eof"
            if not discard:
                try:
                    self.buf += d
                    f = self.recv_frame(0.5)
                    extra = str(f)
                except TestFailure:
                    extra = short(d)
                fail(f"expected TCP EOF, got more data: {extra}")

    def expect_silence(self, duration):
        """Nothing must arrive for `duration` seconds (the connection stays open)."""
        check(not self.buf, lambda: f"unexpected bytes {short(self.buf)}")
        try:
            f = self.recv_frame(duration)
        except Timeout:
            if self.buf:
                fail(f"unexpected partial data {short(self.buf)}")
            return
        except PeerEOF:
            fail("server closed TCP unexpectedly")
        except PeerReset:
            fail("server reset the connection unexpectedly")
        fail(f"expected nothing, got {f}")

    def echo_roundtrip(self, opcode, payload, timeout=DEFAULT_TIMEOUT, **kw):
        self.send_frame(opcode, payload, **kw)
        return self.expect_echo(opcode, payload if not isinstance(payload, str)
                                else payload.encode("utf-8"), timeout)

    # ---- HTTP
    def read_http_response(self, timeout=DEFAULT_TIMEOUT, read_body=True):
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf:
            check(len(self.buf) < 65536, "response head larger than 64 KiB")
            self._fill(len(self.buf) + 1, deadline, "an HTTP response head")
        end = self.buf.index(b"\r\n\r\n") + 4
        raw = self._take(end)
        lines = raw[:-4].decode("latin-1").split("\r\n")
        m = re.fullmatch(r"(HTTP/\d\.\d) (\d{3})(?: (.*))?", lines[0])
        check(m, lambda: f"bad HTTP status line {lines[0]!r}")
        headers = []
        for ln in lines[1:]:
            check(":" in ln, lambda: f"bad HTTP header line {ln!r}")
            k, v = ln.split(":", 1)
            check(k and k == k.strip(), lambda: f"bad HTTP header name in {ln!r}")
            headers.append((k, v.strip()))
        resp = HttpResponse(raw, m.group(1), int(m.group(2)), m.group(3) or "", headers)
        if read_body and resp.status not in (101, 204, 304) and resp.status >= 200:
            cl = resp.header("Content-Length")
            if cl is not None:
                check(cl.isdigit(), f"bad Content-Length {cl!r}")
                n = int(cl)
                self._fill(n, deadline, f"an HTTP body of {n} bytes")
                resp.body = self._take(n)
            elif "chunked" in resp.tokens("Transfer-Encoding"):
                body = b""
                while True:
                    while b"\r\n" not in self.buf:
                        self._fill(len(self.buf) + 1, deadline, "a chunk size")
                    i = self.buf.index(b"\r\n")
                    size = int(bytes(self.buf[:i]).split(b";")[0], 16)
                    self._take(i + 2)
                    self._fill(size + 2, deadline, "a chunk")
                    body += self._take(size)
                    self._take(2)
                    if size == 0:
                        break
                resp.body = body
        return resp

    def expect_response(self, data, status, timeout=DEFAULT_TIMEOUT, what=""):
        """Send data (a plain request, or anything the server must answer with an HTTP
        response) and read the response, which must have this status; the response."""
        self.send(data)
        r = self.read_http_response(timeout=timeout)
        check(r.status == status,
              f"{what + ': ' if what else ''}expected {status}, got {r.status}: {r}")
        return r

    def request_bytes(self, path="/", key=None, version="13", protocols=None, extra_headers=(),
                      method="GET", http="HTTP/1.1", upgrade="websocket", connection="Upgrade",
                      host=True):
        lines = [f"{method} {path} {http}"]
        if host:
            lines.append(f"Host: 127.0.0.1:{self.port}")
        if upgrade is not None:
            lines.append(f"Upgrade: {upgrade}")
        if connection is not None:
            lines.append(f"Connection: {connection}")
        if key is not None:
            lines.append(f"Sec-WebSocket-Key: {key}")
        if version is not None:
            lines.append(f"Sec-WebSocket-Version: {version}")
        if protocols is not None:
            lines.append(f"Sec-WebSocket-Protocol: {protocols}")
        lines += list(extra_headers)
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def handshake(self, path="/", key=None, raw=None, extra=b"", expect=101, chunk=None,
                  delay=0.0, timeout=DEFAULT_TIMEOUT, **kw):
        """Send an upgrade request (or `raw` bytes) plus `extra` bytes in one write; read the
        response head. With expect=101 the 101 and its headers are fully checked."""
        if key is None:
            key = new_key()
        req = raw if raw is not None else self.request_bytes(path, key=key, **kw)
        self.send(req + extra, chunk=chunk, delay=delay)
        resp = self.read_http_response(timeout, read_body=(expect != 101))
        self.response = resp
        if expect == 101:
            check(resp.status == 101, lambda: f"expected 101, got {resp.status}: {resp}")
            check(resp.version == "HTTP/1.1", lambda: f"101 with version {resp.version}")
            acc = resp.header("Sec-WebSocket-Accept")
            check(acc == accept_for(key),
                  lambda: f"Sec-WebSocket-Accept {acc!r}, expected {accept_for(key)!r}")
            check("websocket" in resp.tokens("Upgrade"),
                  lambda: f"101 without 'Upgrade: websocket': {resp}")
            check("upgrade" in resp.tokens("Connection"),
                  lambda: f"101 without 'Connection: Upgrade': {resp}")
        elif expect is not None:
            check(resp.status == expect, lambda: f"expected {expect}, got {resp.status}: {resp}")
        return resp

    # ---- ending
    def close(self):
        if not self.closed:
            self.closed = True
            try:
                self.sock.close()
            except OSError:
                pass

    def reset(self):
        """Abort with a TCP RST (SO_LINGER 0, then close)."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()


# ---------------------------------------------------------------------------------------------
# the runner
class Ctx:
    """Per-group context handed to each test: servers and connections, cleaned up for you."""

    def __init__(self, server_path):
        self.server_path = server_path
        self._shared = {}   # args tuple -> Server, kept for the whole group
        self._owned = []    # servers of the current test only
        self._conns = []

    def server(self, *args):
        """A server with these extra args, shared by every test of the group."""
        key = tuple(str(a) for a in args)
        s = self._shared.get(key)
        if s is None or not s.alive():
            s = Server(self.server_path, key)
            self._shared[key] = s
        return s

    def fresh_server(self, *args):
        """A server for this test only (stopped when the test ends)."""
        s = Server(self.server_path, args)
        self._owned.append(s)
        return s

    @property
    def port(self):
        return self.server().port

    def raw(self, server=None, **kw):
        c = WS((server or self.server()).port, **kw)
        self._conns.append(c)
        return c

    def ws(self, server=None, **kw):
        c = self.raw(server)
        c.handshake(**kw)
        return c

    def end_test(self):
        """Close the test's sockets and servers; report shared servers that died."""
        for c in self._conns:
            c.close()
        self._conns = []
        died = []
        for s in self._owned:
            if not s.alive() and not s.expect_exit:
                died.append(f"{s.describe()} exited with status {s.returncode()}")
            s.stop()
        self._owned = []
        for key, s in list(self._shared.items()):
            if not s.alive():
                died.append(f"{s.describe()} exited with status {s.returncode()}")
                s.stop()
                del self._shared[key]
        return died

    def shutdown(self):
        self.end_test()
        for s in self._shared.values():
            s.stop()
        self._shared = {}


class Tests:
    def __init__(self, group):
        self.group = group
        self.cases = []

    def add(self, name, fn):
        if any(n == name for n, _ in self.cases):
            raise ValueError(f"duplicate test name {name}")
        self.cases.append((name, fn))

    def case(self, fn):
        self.add(fn.__name__.removeprefix("test_"), fn)
        return fn

    def main(self, argv=None):
        ap = argparse.ArgumentParser(description=f"pushwire conformance: {self.group}")
        ap.add_argument("--server", required=True, help="path to the pw-echo binary")
        ap.add_argument("-k", "--filter", action="append", default=[],
                        help="run only tests whose name contains this (repeatable)")
        ap.add_argument("--list", action="store_true", help="list the tests and exit")
        ap.add_argument("--tls", action="store_true", help="run every test over TLS")
        args = ap.parse_args(argv)
        if args.tls:
            enable_tls()
        cases = [(n, f) for (n, f) in self.cases
                 if not args.filter or any(s in n for s in args.filter)]
        if args.list:
            for n, _ in cases:
                print(n)
            return 0
        if not (os.path.isfile(args.server) and os.access(args.server, os.X_OK)):
            print(f"FAIL setup: server binary {args.server!r} is not an executable file")
            print("0 passed, 1 failed")
            return 1
        ctx = Ctx(args.server)
        passed = failed = skipped = 0
        t_group = time.monotonic()
        try:
            for name, fn in cases:
                t0 = time.monotonic()
                reason = None
                try:
                    fn(ctx)
                except Skipped as e:
                    ctx.end_test()
                    skipped += 1
                    print(f"SKIP {self.group}.{name}: {e}", flush=True)
                    continue
                except TestFailure as e:
                    reason = str(e)
                except Exception as e:  # a bug in the test or an unexpected socket error
                    tb = traceback.extract_tb(e.__traceback__)
                    where = f" at {os.path.basename(tb[-1].filename)}:{tb[-1].lineno}" if tb else ""
                    reason = f"{type(e).__name__}: {e}{where}"
                died = ctx.end_test()
                if died and reason is None:
                    reason = "; ".join(died)
                elif died:
                    reason += " [" + "; ".join(died) + "]"
                dt = time.monotonic() - t0
                if reason is None:
                    passed += 1
                    print(f"PASS {self.group}.{name} ({dt:.2f}s)", flush=True)
                else:
                    failed += 1
                    reason = reason.replace("\n", " | ")
                    print(f"FAIL {self.group}.{name} ({dt:.2f}s): {reason}", flush=True)
        finally:
            ctx.shutdown()
            _kill_all_servers()
        print(f"# group {self.group}: {time.monotonic() - t_group:.1f}s"
              + (f", {skipped} skipped (raw TCP only)" if skipped else ""), flush=True)
        print(f"{passed} passed, {failed} failed", flush=True)
        return 1 if failed else 0


def run(tests):
    try:
        rc = tests.main()
    finally:
        _kill_all_servers()
    sys.exit(rc)
