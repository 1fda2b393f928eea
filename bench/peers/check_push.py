#!/usr/bin/python3
"""check_push.py: correctness check of one "push-server" peer (bench/peers/README.md).

usage: check_push.py [--clients N] [--seconds S] [--quiet] CMD ARGS...

Starts `CMD ARGS... --port 0`, reads the first line "<name> listening on port N", connects N
clients (default 10; different paths) with Debian's python3-websockets, receives for S seconds
(default 2) and checks every message:
  - binary, exactly --size bytes (taken from ARGS, default 64), padding bytes all b'x';
  - per client and producer: sequence numbers strictly increasing and all in one residue
    class mod --topics (producer p sends its n-th message to topic (p + n) % T, so a subscriber
    of one topic sees every T-th sequence number), timestamps non-decreasing, not in the future;
  - every client received something; with T topics, clients are spread round-robin.
Then it sends SIGTERM, expects exit status 0 and the summary line, and checks that the gaps the
clients saw (missing sequence numbers) are no more than the server's `dropped` count (a peer
that reports no drops must show no gaps). Prints a report; exit status 0 when all checks pass.
Latency (receive - send, CLOCK_MONOTONIC in both processes) is printed for information; with
Python receiving, it measures this client as much as the server.
"""
import asyncio
import os
import re
import signal
import subprocess
import sys
import time

import websockets


def parse_cli(argv):
    clients, seconds, quiet = 10, 2.0, False
    i = 1
    while i < len(argv) and argv[i].startswith("--"):
        if argv[i] == "--clients":
            clients = int(argv[i + 1]); i += 2
        elif argv[i] == "--seconds":
            seconds = float(argv[i + 1]); i += 2
        elif argv[i] == "--quiet":
            quiet = True; i += 1
        else:
            break
    if i >= len(argv):
        sys.exit(__doc__)
    return clients, seconds, quiet, argv[i:]


def server_opt(cmd, name, default):
    for i, a in enumerate(cmd[:-1]):
        if a == name:
            return type(default)(cmd[i + 1])
    return default


class Client:
    def __init__(self, idx):
        self.idx = idx
        self.count = 0
        self.last = {}  # producer -> (seq, ts)
        self.residue = {}  # producer -> seq % topics
        self.gaps = 0
        self.errors = []
        self.lat = []

    def error(self, msg):
        if len(self.errors) < 5:
            self.errors.append(msg)

    def check(self, msg, size, topics):
        now = time.monotonic_ns()
        if not isinstance(msg, bytes):
            return self.error(f"text message {msg[:40]!r}")
        if len(msg) != size:
            return self.error(f"length {len(msg)} != {size}")
        ts = int.from_bytes(msg[0:8], "little")
        seq = int.from_bytes(msg[8:16], "little")
        prod = msg[16]
        if msg[17:] != b"x" * (size - 17):
            self.error("padding is not all 'x'")
        if ts > now:
            self.error(f"timestamp {ts} in the future ({now})")
        self.count += 1
        if self.count % 8 == 1:
            self.lat.append(now - ts)
        r = seq % topics
        if self.residue.setdefault(prod, r) != r:
            self.error(f"producer {prod}: seq {seq} from another topic (residue {r})")
        if prod in self.last:
            pseq, pts = self.last[prod]
            if seq <= pseq:
                self.error(f"producer {prod}: seq {seq} after {pseq}")
            elif (seq - pseq) % topics == 0:
                self.gaps += (seq - pseq) // topics - 1
            if ts < pts:
                self.error(f"producer {prod}: timestamp went back {pts} -> {ts}")
        self.last[prod] = (seq, ts)


async def run_client(c, port, size, topics, stop_at, connected):
    uri = f"ws://127.0.0.1:{port}/" + ("" if c.idx % 2 == 0 else f"feed/{c.idx}")
    try:
        ws = await websockets.connect(uri, max_size=None, compression=None,
                                      ping_interval=None, max_queue=1024)
    except Exception as e:  # noqa: BLE001 - report any connect failure
        c.error(f"connect failed: {e!r}")
        connected.append(False)
        return
    connected.append(True)
    try:
        while True:
            left = stop_at() - time.monotonic()
            if left <= 0:
                break
            try:
                msg = await asyncio.wait_for(ws.recv(), timeout=left)
            except asyncio.TimeoutError:
                break
            c.check(msg, size, topics)
    except websockets.ConnectionClosed as e:
        c.error(f"connection closed early: {e!r}")
    finally:
        ws.transport.abort()


async def run_clients(n, port, size, topics, seconds):
    clients = [Client(i) for i in range(n)]
    connected = []
    end = [None]

    def stop_at():
        return end[0] if end[0] is not None else time.monotonic() + 3600

    tasks = []
    for c in clients:  # connect one by one, so round-robin topics are predictable
        tasks.append(asyncio.ensure_future(run_client(c, port, size, topics, stop_at, connected)))
        while len(connected) < len(tasks):
            await asyncio.sleep(0.001)
    end[0] = time.monotonic() + seconds
    t0 = time.monotonic()
    await asyncio.gather(*tasks)
    return clients, time.monotonic() - t0


def pct(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))]


def main():
    nclients, seconds, quiet, cmd = parse_cli(sys.argv)
    size = server_opt(cmd, "--size", 64)
    topics = server_opt(cmd, "--topics", 1)
    proc = subprocess.Popen(cmd + ["--port", "0"], stdout=subprocess.PIPE, text=True)
    failures = []
    try:
        first = proc.stdout.readline().rstrip("\n")
        m = re.fullmatch(r"(\S+) listening on port (\d+)", first)
        if not m:
            print(f"FAIL first line {first!r}")
            return 1
        name, port = m.group(1), int(m.group(2))
        clients, elapsed = asyncio.run(run_clients(nclients, port, size, topics, seconds))
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            rest, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            rest, _ = proc.communicate()
            failures.append("server did not exit within 15 s of SIGTERM")
    if proc.returncode != 0:
        failures.append(f"server exit status {proc.returncode}")
    summary = [l for l in rest.splitlines() if " summary: " in l]
    fields = {}
    if len(summary) != 1:
        failures.append(f"expected one summary line, got {rest!r}")
    else:
        fields = dict(kv.split("=", 1) for kv in summary[0].split(" summary: ", 1)[1].split())
        for k in ("published", "dropped", "clients"):
            if k not in fields:
                failures.append(f"summary has no {k}=")
    total = sum(c.count for c in clients)
    gaps = sum(c.gaps for c in clients)
    for c in clients:
        for e in c.errors:
            failures.append(f"client {c.idx}: {e}")
        if c.count == 0:
            failures.append(f"client {c.idx}: received nothing")
    if topics > 1:  # round-robin: client i subscribed to topic i % T (when it connected i-th)
        seen = {}
        for c in clients:
            for p, r in c.residue.items():
                seen.setdefault((p, r), []).append(c.idx % topics)
        for (p, r), owners in seen.items():
            if len(set(owners)) != 1:
                failures.append(f"clients of different round-robin slots share a topic: {owners}")
    dropped = int(fields.get("dropped", "0"))
    if gaps > dropped:
        failures.append(f"clients saw {gaps} missing messages but the server reports "
                        f"dropped={dropped}")
    lat = [x for c in clients for x in c.lat]
    rate = total / elapsed if elapsed > 0 else 0
    print(f"{name}: {nclients} clients, {elapsed:.2f} s: received {total} "
          f"({rate:,.0f}/s), gaps {gaps}, latency p50 {pct(lat, 50) / 1e3:,.0f} us "
          f"p99 {pct(lat, 99) / 1e3:,.0f} us; server: {summary[0] if summary else '-'}")
    for f in failures[:20]:
        print("FAIL", f)
    print("PASS" if not failures else f"FAIL ({len(failures)} problems)")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
