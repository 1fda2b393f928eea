#!/usr/bin/python3
"""permessage-deflate (src/deflate.c) against implementations nobody here wrote.

- Codec both ways against Python's zlib: our deflater's payloads (+ 00 00 ff ff) inflate with
  zlib.decompressobj; zlib.compressobj's sync-flushed payloads (tail stripped) inflate with
  ours; messages of 0 B .. 1 MiB, random and JSON, under several window/level/memLevel/context
  takeover sets. Also final-block (BFINAL) messages chained with zdict, a bomb, garbage.
- Negotiation against python-websockets' own client (ClientPerMessageDeflateFactory): its offer
  goes through our negotiation, our answer must satisfy its process_response_params, and the
  PerMessageDeflate object it then builds must decode our frames and encode frames we inflate.

Our side runs as test_deflate's tool mode (see the top of tests/unit/test_deflate.c).
Usage: deflate_cross.py --tool path/to/test_deflate
"""
import argparse
import random
import struct
import subprocess
import sys
import zlib

from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.headers import build_extension, parse_extension

TAIL = b"\x00\x00\xff\xff"
PW_ETOOBIG, PW_EIO = -10, -11
LIMIT = 2 << 20
failures = []


def check(ok, what):
    if not ok:
        failures.append(what)
        print("FAILED:", what, file=sys.stderr)


def run_tool(tool, args, records):
    data = b"".join(struct.pack(">I", len(r)) + r for r in records)
    p = subprocess.run([tool] + [str(a) for a in args], input=data, capture_output=True,
                       timeout=120)
    if p.returncode != 0:
        raise RuntimeError(f"{args}: exit {p.returncode}: {p.stderr.decode()[:500]}")
    return p.stdout


def our_deflate(tool, bits, level, mem_level, nct, messages):
    out, payloads, i = run_tool(tool, ["deflate", bits, level, mem_level, nct], messages), [], 0
    while i < len(out):
        (n,) = struct.unpack_from(">I", out, i)
        payloads.append(out[i + 4:i + 4 + n])
        i += 4 + n
    return payloads


def our_inflate(tool, bits, nct, payloads, limit=LIMIT):
    out, results, i = run_tool(tool, ["inflate", bits, nct, limit], payloads), [], 0
    while i < len(out):
        status, n = struct.unpack_from(">iI", out, i)
        results.append((status, out[i + 8:i + 8 + n]))
        i += 8 + n
    return results


def json_feed(rng, n):
    parts, size = [], 0
    while size < n:
        rec = '{"sym":"%s","price":%d.%02d,"qty":%d},' % (
            rng.choice(["ACME", "INIT", "WXYZ", "QRST"]), rng.randrange(1000),
            rng.randrange(100), rng.randrange(10000))
        parts.append(rec)
        size += len(rec)
    return "".join(parts).encode()[:n]


def messages(rng):
    sizes = [0, 1, 2, 125, 126, 1000, 65535, 65536, 200000, 1 << 20, 3, 0, 5000]
    out = []
    for n in sizes:
        out.append(rng.randbytes(n))
        out.append(json_feed(rng, n))
    return out


# (window bits, level, memLevel, no context takeover); level/memLevel 0 = our defaults.
SETS = [(15, 0, 0, 0), (15, 0, 0, 1), (9, 1, 1, 0), (10, 9, 9, 1), (12, 6, 4, 0), (13, 2, 7, 1)]


def ours_to_zlib(tool, msgs):
    for bits, level, mem, nct in SETS:
        payloads = our_deflate(tool, bits, level, mem, nct, msgs)
        check(len(payloads) == len(msgs), f"deflate {bits}/{nct}: {len(payloads)} payloads")
        d = zlib.decompressobj(-bits)
        for k, (m, p) in enumerate(zip(msgs, payloads)):
            if nct:
                d = zlib.decompressobj(-bits)
            try:
                got = d.decompress(p + TAIL)
            except zlib.error as e:
                got = e
            check(got == m and not d.unused_data and not d.unconsumed_tail,
                  f"ours->zlib set {bits},{level},{mem},{nct} message {k} ({len(m)} B): "
                  f"{got if isinstance(got, zlib.error) else ''}")
    print(f"ours -> zlib: {len(SETS)} parameter sets x {len(msgs)} messages")


def zlib_to_ours(tool, msgs):
    for bits, level, mem, nct in SETS:
        c, payloads = None, []
        for m in msgs:
            if nct or c is None:
                c = zlib.compressobj(level or 6, zlib.DEFLATED, -bits, mem or 8)
            p = c.compress(m) + c.flush(zlib.Z_SYNC_FLUSH)
            check(p.endswith(TAIL), "zlib's sync flush ends with 00 00 ff ff")
            payloads.append(p[:-4])
        results = our_inflate(tool, bits, nct, payloads)
        for k, (m, (status, got)) in enumerate(zip(msgs, results)):
            check(status == 0 and got == m,
                  f"zlib->ours set {bits},{level},{mem},{nct} message {k}: status {status}")
    print(f"zlib -> ours: {len(SETS)} parameter sets x {len(msgs)} messages")


def final_blocks(tool, rng):
    """Each message a complete stream (Z_FINISH: BFINAL set), the next one compressed with the
    previous messages as zdict (context takeover across final blocks, RFC 7692 7.2.3.4);
    every other message also carries RFC 7692's extra 0x00 after its final block."""
    msgs = [json_feed(rng, n) for n in (100, 5000, 70000, 10, 0, 3000)]
    history, payloads = b"", []
    for k, m in enumerate(msgs):
        c = zlib.compressobj(6, zlib.DEFLATED, -15, 8, zdict=history[-32768:] or None) \
            if history else zlib.compressobj(6, zlib.DEFLATED, -15)
        p = c.compress(m) + c.flush(zlib.Z_FINISH)
        payloads.append(p + (b"\x00" if k % 2 else b""))
        history += m
    results = our_inflate(tool, 15, 0, payloads)
    for k, (m, (status, got)) in enumerate(zip(msgs, results)):
        check(status == 0 and got == m, f"final-block message {k}: status {status}")
    print(f"final blocks with zdict chaining: {len(msgs)} messages")


def bad_input(tool):
    c = zlib.compressobj(9, zlib.DEFLATED, -15, 9)
    bomb = c.compress(bytes(64 << 20)) + c.flush(zlib.Z_SYNC_FLUSH)
    (status, got), = our_inflate(tool, 15, 0, [bomb[:-4]], limit=1 << 20)
    check(status == PW_ETOOBIG and got == b"", f"bomb ({len(bomb)} B -> 64 MiB): status {status}")
    (status, _), = our_inflate(tool, 15, 0, [b"\xff\xff\xff\xff"])
    check(status == PW_EIO, f"garbage: status {status}")
    print(f"bomb of {len(bomb)} B refused (PW_ETOOBIG), garbage refused (PW_EIO)")


# Client offers (python-websockets' factory options) x our server configurations.
CLIENTS = [
    {},
    {"server_no_context_takeover": True},
    {"client_no_context_takeover": True},
    {"server_max_window_bits": 10},
    {"server_max_window_bits": 15},  # accepting it means answering it, even 15
    {"client_max_window_bits": 12},
    {"server_max_window_bits": 9, "client_max_window_bits": 9,
     "server_no_context_takeover": True, "client_no_context_takeover": True},
    {"client_max_window_bits": None},  # a bare "permessage-deflate", as some browsers send
]
SERVERS = ["-", "snct,cnct", "sbits=10", "cbits=10", "sbits=9,cbits=12", "sbits=8,cbits=8"]


def negotiate(tool, cfg, header):
    p = subprocess.run([tool, "negotiate", cfg, header], capture_output=True, text=True,
                       timeout=30, check=True)
    rc, resp, params = p.stdout.rstrip("\n").split("\t")
    snct, cnct, sbits, cbits = (int(x) for x in params.split())
    return int(rc), resp, (snct, cnct, sbits, cbits)


def negotiation_and_codec(tool, rng):
    accepted = declined = 0
    msgs = [json_feed(rng, n) for n in (0, 10, 300, 5000, 70000)] + [rng.randbytes(2000)]
    for opts in CLIENTS:
        for cfg in SERVERS:
            factory = ClientPerMessageDeflateFactory(**opts)
            offer = build_extension([(factory.name, factory.get_request_params())])
            rc, resp, (snct, cnct, sbits, cbits) = negotiate(tool, cfg, offer)
            # The only decline: we limit the client's window and it cannot be told so.
            limits_client = any(t.startswith("cbits=") for t in cfg.split(","))
            must_decline = limits_client and opts.get("client_max_window_bits", True) is None
            where = f"offer '{offer}' config {cfg}"
            check(rc == (0 if must_decline else 1), f"{where}: rc {rc}")
            if rc != 1:
                declined += 1
                continue
            accepted += 1
            [(name, params)] = parse_extension(resp)
            try:
                ext = factory.process_response_params(params, [])
            except Exception as e:  # websockets refuses our answer
                check(False, f"{where}: websockets refused '{resp}': {e!r}")
                continue
            # The client now compresses within our bound (a configured 8 means 9).
            bound = min([max(9, int(t[6:])) for t in cfg.split(",") if t.startswith("cbits=")]
                        or [15])
            check(ext.local_max_window_bits <= bound and cbits <= bound,
                  f"{where}: client window {ext.local_max_window_bits}, ours {cbits} > {bound}")
            # Server -> client: our frames decode with websockets' PerMessageDeflate.
            for k, (m, p) in enumerate(zip(msgs, our_deflate(tool, sbits, 0, 0, snct, msgs))):
                got = ext.decode(Frame(Opcode.BINARY, p, rsv1=True)).data
                check(got == m, f"{where}: server->client message {k}")
            # Client -> server: its frames inflate with ours, under the agreed parameters.
            frames = [ext.encode(Frame(Opcode.BINARY, m)) for m in msgs]
            check(all(f.rsv1 for f in frames), f"{where}: websockets compressed")
            results = our_inflate(tool, cbits, cnct, [f.data for f in frames])
            for k, (m, (status, got)) in enumerate(zip(msgs, results)):
                check(status == 0 and got == m, f"{where}: client->server message {k}")
    print(f"negotiation with python-websockets: {accepted} agreements exercised both ways, "
          f"{declined} declined as expected")


def feed_figures(tool, rng):
    """Bytes on the wire for a JSON feed: 1000 messages of ~200 B."""
    msgs = [json_feed(rng, 150 + rng.randrange(100)) for _ in range(1000)]
    plain = sum(len(m) for m in msgs)
    take = sum(len(p) for p in our_deflate(tool, 15, 0, 0, 0, msgs))
    nct = sum(len(p) for p in our_deflate(tool, 15, 0, 0, 1, msgs))
    print(f"JSON feed, 1000 msgs: payload {plain} B; deflate with context takeover {take} B "
          f"({plain / take:.1f}x); without {nct} B ({plain / nct:.1f}x)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", required=True)
    tool = ap.parse_args().tool
    rng = random.Random(7692)
    msgs = messages(rng)
    ours_to_zlib(tool, msgs)
    zlib_to_ours(tool, msgs)
    final_blocks(tool, rng)
    bad_input(tool)
    negotiation_and_codec(tool, rng)
    feed_figures(tool, rng)
    print(f"{len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
