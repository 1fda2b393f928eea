#!/usr/bin/python3
"""Fan-out over TLS against plain: the server CPU each delivered message costs.

Usage: bench/tls_fanout.py [--server PATH_TO_PUSH_SERVER] [--clients N] [--rate R] [--size S]
                           [--seconds D]
(--server defaults to $BUILD/bench/push-server, BUILD the benchmarks' build directory, default
build-bench, a Release build: bench/README.md)

Runs bench/push-server twice, plain and with --tls-cert/--tls-key (a certificate made now with
`openssl req`, removed at exit), each with N subscribers (Python sockets, ssl-wrapped for TLS,
reading and discarding) and one producer publishing R messages/s of S bytes to all of them. The
figure is the server's CPU time (user + system, /proc/PID/stat) over the D-second window divided
by the messages it sent, so the clients' own cost (on the same machine) does not enter it. The
rate must be one both runs sustain (check that "sent" is about N x R x D in both lines).
"""
import argparse
import base64
import os
import selectors
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def subscriber(port, ctx):
    s = socket.create_connection(("127.0.0.1", port))
    if ctx:
        s = ctx.wrap_socket(s, server_hostname="127.0.0.1")
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % key).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(4096)
    assert head.startswith(b"HTTP/1.1 101"), head[:40]
    s.setblocking(False)
    return s


def run(args, tls_args, ctx):
    cmd = [args.server, "--port", "0", "--producers", "1", "--rate", str(args.rate), "--size",
           str(args.size), "--duration", str(args.seconds + 3), *tls_args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline().split()[-1])
        sel = selectors.DefaultSelector()
        for _ in range(args.clients):
            sel.register(subscriber(port, ctx), selectors.EVENT_READ)
        time.sleep(1)  # warm up
        c0, t0 = cpu_seconds(proc.pid), time.monotonic()
        got = 0
        while time.monotonic() - t0 < args.seconds:
            for key, _ in sel.select(0.1):
                try:
                    while True:
                        d = key.fileobj.recv(1 << 16)
                        if not d:
                            break
                        got += len(d)
                except (ssl.SSLWantReadError, BlockingIOError):
                    pass
        c1 = cpu_seconds(proc.pid)
        out = proc.communicate(timeout=30)[0]
        for key in list(sel.get_map().values()):
            key.fileobj.close()
        return c1 - c0, got, out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    build = os.environ.get("BUILD", "build-bench")
    ap.add_argument("--server", default=os.path.join(build, "bench/push-server"))
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--seconds", type=int, default=5)
    args = ap.parse_args()
    d = tempfile.mkdtemp(prefix="pw-tls-bench-")
    try:
        cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "1", "-subj", "/CN=bench", "-addext",
                        "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
        ctx = ssl.create_default_context(cafile=cert)
        for name, tls_args, c in [("plain", [], None),
                                  ("tls", ["--tls-cert", cert, "--tls-key", key], ctx)]:
            cpu, got, out = run(args, tls_args, c)
            expected = args.clients * args.rate * args.seconds
            frame = args.size + (2 if args.size < 126 else 4 if args.size < 65536 else 10)
            delivered = got // frame  # plaintext bytes read (ssl returns plaintext)
            print("%-5s clients=%d rate=%d/s size=%d: server CPU %.2f s in %d s, %d of %d "
                  "deliveries read; %.2f us server CPU per delivered message"
                  % (name, args.clients, args.rate, args.size, cpu, args.seconds, delivered,
                     expected, cpu / max(delivered, 1) * 1e6), flush=True)
            print("      " + " | ".join(out.strip().splitlines()), flush=True)
    finally:
        shutil.rmtree(d, True)


if __name__ == "__main__":
    sys.exit(main())
