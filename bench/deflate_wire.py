#!/usr/bin/python3
"""permessage-deflate figures against pw-echo --pubsub 1 (every message is published to all
clients): bytes on the wire for a JSON feed, server RSS per connection, and fan-out time.

Usage: /usr/bin/python3 bench/deflate_wire.py [PATH_TO_PW_ECHO] [--clients 200] [--messages 2000]
(default $BUILD/tests/support/pw-echo, BUILD the benchmarks' build directory, default
build-bench, a Release build: bench/README.md)

For each mode (no extension; deflate with context takeover; deflate with
server_no_context_takeover, the shared-frame path) it connects --clients raw clients, one
publishes --messages JSON ticks (~120 B each, like a price feed), and every client reads them
all. Reported: wire bytes one client received (headers included), the server's VmRSS growth
per connection after the feed (the codecs stay allocated with context takeover), and the time
for the whole fan-out (clients x messages deliveries; the clients are Python: a floor, not the
server's ceiling). Numbers are from a shared, noisy 2-core machine: compare modes, not runs.
"""
import argparse
import base64
import json
import os
import random
import socket
import struct
import subprocess
import threading
import time
import zlib

MODES = [
    ("plain", [], None),
    ("deflate (context takeover)", ["--deflate", "1"], "permessage-deflate"),
    ("deflate (server_no_context_takeover, shared frame)", ["--deflate", "1"],
     "permessage-deflate; server_no_context_takeover"),
]


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def handshake(port, ext):
    s = socket.create_connection(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    req = ("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n" % key)
    if ext:
        req += "Sec-WebSocket-Extensions: %s\r\n" % ext
    s.sendall((req + "\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(4096)
    head, rest = buf.split(b"\r\n\r\n", 1)
    assert b" 101 " in head.split(b"\r\n")[0], head
    if ext:
        assert b"permessage-deflate" in head, head
    return s, rest


def frame(payload):
    mask = os.urandom(4)
    n = len(payload)
    hdr = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack(">H", n))
    return hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def reader(sock, rest, count, out, idx):
    """Read `count` frames; record the wire bytes and check they inflate."""
    buf, got, wire = bytearray(rest), 0, len(rest)
    inflate = zlib.decompressobj(-15)
    while got < count:
        while True:
            if len(buf) >= 2:
                n = buf[1] & 0x7F
                hl = 2 + (2 if n == 126 else 8 if n == 127 else 0)
                if len(buf) >= hl:
                    if n == 126:
                        n = struct.unpack(">H", bytes(buf[2:4]))[0]
                    elif n == 127:
                        n = struct.unpack(">Q", bytes(buf[2:10]))[0]
                    if len(buf) >= hl + n:
                        break
            chunk = sock.recv(1 << 16)
            if not chunk:
                raise RuntimeError("server closed")
            wire += len(chunk)
            buf += chunk
        payload = bytes(buf[hl:hl + n])
        if buf[0] & 0x40:
            payload = inflate.decompress(payload + b"\x00\x00\xff\xff")
        json.loads(payload)
        del buf[:hl + n]
        got += 1
    out[idx] = wire


def tick(i, rng):
    return json.dumps({"seq": i, "sym": rng.choice(["AAPL", "MSFT", "GOOG", "AMZN"]),
                       "bid": round(100 + rng.random() * 5, 2), "ask": round(105 + rng.random(), 2),
                       "size": rng.randint(1, 5000), "ts": 1700000000000 + i * 37,
                       "venue": rng.choice(["XNAS", "XNYS", "BATS"])}).encode()


def run_mode(echo, name, flags, ext, clients, messages):
    proc = subprocess.Popen([echo, "0", "--pubsub", "1", *flags], stdout=subprocess.PIPE)
    port = int(proc.stdout.readline().split()[-1])
    try:
        base = rss_kb(proc.pid)
        conns = [handshake(port, ext) for _ in range(clients)]
        time.sleep(0.5)  # subscriptions land in on_open
        rng = random.Random(1)
        msgs = [tick(i, rng) for i in range(messages)]
        out = [0] * clients
        threads = [threading.Thread(target=reader, args=(s, r, messages, out, i))
                   for i, (s, r) in enumerate(conns)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        conns[0][0].sendall(b"".join(frame(m) for m in msgs))
        for t in threads:
            t.join()
        dt = time.monotonic() - t0
        after = rss_kb(proc.pid)
        raw = sum(len(m) for m in msgs)
        print("%-52s wire/client %8d B (payload %d B: %.2fx)  RSS +%.1f KiB/conn  "
              "%d deliveries in %.2f s (%.0f msg/s)"
              % (name, out[1 % clients], raw, out[1 % clients] / raw,
                 (after - base) / clients, clients * messages, dt, clients * messages / dt),
              flush=True)
        for s, _ in conns:
            s.close()
    finally:
        proc.terminate()
        proc.wait()


def main():
    ap = argparse.ArgumentParser()
    build = os.environ.get("BUILD", "build-bench")
    ap.add_argument("echo", nargs="?", default=os.path.join(build, "tests/support/pw-echo"))
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--messages", type=int, default=2000)
    a = ap.parse_args()
    for name, flags, ext in MODES:
        run_mode(a.echo, name, flags, ext, a.clients, a.messages)


if __name__ == "__main__":
    main()
