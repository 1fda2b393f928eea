#!/usr/bin/env python3
"""permessage-deflate (RFC 7692) on the wire, with raw frames and Python's zlib as the peer:
negotiation answers (accepted parameters only, declines, 400 for a malformed header),
messages of 0 B to 1 MiB compressed both ways under each parameter set, over the echo (pw_send)
and the fan-out (pw_publish, batched) paths, the window and context-takeover rules, and the
errors: a compressed control frame or RSV1 on a continuation (1002), RSV1 without the
extension (1002), an inflate bomb (1009), bad DEFLATE data and bad UTF-8 after inflating (1007).

How each was checked to fail without its defence (run by hand while writing this file):
- with the negotiation removed from http.c (no Sec-WebSocket-Extensions answered) every
  `*_roundtrip` and `answer_*` case fails at the response header check;
- with RSV1 not set by pmd.c (frames sent compressed but flagged plain) every roundtrip
  fails ("expected RSV1" or a payload mismatch); with it not set only in publish batches
  (append_frame) the `*_pubsub2` streams and `fanout_mixed_subscribers_batched` fail;
- with the shared frame keyed by nothing instead of the window bits (shared_for), the 9-bit
  subscriber of `fanout_mixed_subscribers` fails ("invalid distance too far back");
- with rsv_valid() in wsparse.c accepting RSV1 anywhere, `rsv1_on_continuation_1002` and
  `compressed_ping_1002` got an echo / pong instead of 1002;
- with the inflater's limit set to SIZE_MAX, `inflate_bomb_1009` got its 16 MiB echo;
- with the UTF-8 check on inflated text removed, `inflated_bad_utf8_1007` got an echo.
"""
import random
import zlib

from wsclient import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, RSV1, Tests,
                      build_frame, check, check_server_frame, fail, run)

T = Tests("compression")
PMD = "permessage-deflate"
TAIL = b"\x00\x00\xff\xff"
SIZES = [0, 1, 125, 126, 1000, 65535, 65536, 1 << 20]
BASE = ("--deflate", "1", "--deflate-threshold", "1")  # compress everything of >= 1 byte


def offer(*params):
    return "Sec-WebSocket-Extensions: " + "; ".join((PMD,) + params)


def ext_params(resp):
    """The answered permessage-deflate parameters as a dict (None if not accepted)."""
    v = resp.header("Sec-WebSocket-Extensions")
    if v is None:
        return None
    parts = [p.strip() for p in v.split(";")]
    check(parts[0] == PMD, lambda: f"answered extension {v!r}")
    out = {}
    for p in parts[1:]:
        k, _, val = p.partition("=")
        check(k not in out, lambda: f"duplicate parameter in {v!r}")
        out[k] = val or True
    return out


class Peer:
    """The client's side of an agreement: its own deflater and an inflater for the server."""

    def __init__(self, params, client_bits=15, client_no_context=False):
        self.params = params
        sb = int(params.get("server_max_window_bits", 15))
        self.server_bits = sb
        self.inflate = zlib.decompressobj(-sb)
        cb = params.get("client_max_window_bits")
        self.client_bits = min(client_bits, int(cb)) if cb not in (None, True) else client_bits
        self.client_no_context = client_no_context or "client_no_context_takeover" in params
        self.deflate = self._new_deflater()

    def _new_deflater(self):
        return zlib.compressobj(6, zlib.DEFLATED, -max(self.client_bits, 9))

    def compress(self, data):
        if self.client_no_context:
            self.deflate = self._new_deflater()
        out = self.deflate.compress(data) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
        check(out.endswith(TAIL), "zlib sync flush without its tail")
        return out[:-4] or b"\x00"

    def decompress(self, payload):
        if "server_no_context_takeover" in self.params:
            # The server promised to forget: a fresh inflater per message must work.
            self.inflate = zlib.decompressobj(-self.server_bits)
        # In small steps: zlib checks a distance against the window only for bytes it wrote
        # in earlier calls, so this makes the negotiated window size really bind.
        out, rest = [], payload + TAIL
        while rest:
            out.append(self.inflate.decompress(rest, 256))
            rest = self.inflate.unconsumed_tail
        return b"".join(out)


def text_of(n, seed=1):
    rng = random.Random(seed + n)
    words = ["price", "\"id\":", "{\"sym\":\"ABC\",", "\u20ac", "caf\u00e9", "0.25", "\U0001f600"]
    out, size = [], 0
    while size < n:
        w = rng.choice(words)
        b = w.encode()
        if size + len(b) > n:
            w, b = "x" * (n - size), b"x" * (n - size)
        out.append(w)
        size += len(b)
    return "".join(out).encode()


def binary_of(n, seed=2):
    rng = random.Random(seed + n)
    half = bytes(rng.getrandbits(8) for _ in range(min(n, 4096)))  # some incompressible bytes
    return (half + bytes(n))[:n]


def connect(ctx, server_args, *params, expect_accept=True):
    srv = ctx.server(*server_args)
    c = ctx.raw(srv)
    resp = c.handshake(extra_headers=[offer(*params)] if params is not None else [])
    p = ext_params(resp)
    if expect_accept:
        check(p is not None, lambda: f"offer {params} was not accepted: {resp}")
    return c, p


def recv_message(c, peer, opcode, data, compressed, what):
    f = c.recv_frame()
    check(f.opcode == opcode, lambda: f"{what}: expected opcode {opcode}, got {f}")
    check(f.fin, lambda: f"{what}: server frame without FIN: {f}")
    check(not f.masked, lambda: f"{what}: masked server frame")
    if compressed is None:  # either: no context takeover may send what does not shrink plain
        compressed = f.rsv == RSV1
    if compressed:
        check(f.rsv == RSV1, lambda: f"{what}: expected RSV1 (compressed), got {f}")
        try:
            got = peer.decompress(f.payload)
        except zlib.error as e:
            fail(f"{what}: server's compressed payload does not inflate: {e}")
    else:
        check(f.rsv == 0, lambda: f"{what}: expected an uncompressed frame, got {f}")
        got = f.payload
    if got != data:
        fail(f"{what}: {len(data)} bytes sent, {len(got)} bytes back (different)")


def expect_compressed(peer, n):
    """With context takeover everything of >= 1 byte (the threshold) goes compressed; without
    it a message that would not shrink goes plain (pmd.c), so small ones may go either way."""
    if "server_no_context_takeover" not in peer.params:
        return n >= 1
    return True if n >= 5000 else None


def roundtrip(c, peer, sizes, client_compresses=True):
    for opcode, gen in ((OP_TEXT, text_of), (OP_BINARY, binary_of)):
        for n in sizes:
            data = gen(n)
            if client_compresses:
                c.send(build_frame(opcode, peer.compress(data), rsv=RSV1))
            else:
                c.send(build_frame(opcode, data))
            recv_message(c, peer, opcode, data, expect_compressed(peer, n), f"op {opcode} {n} B")


# ---- negotiation ------------------------------------------------------------------------------
@T.case
def test_answer_plain_offer(ctx):
    """A bare offer is accepted with no parameters (the server's defaults are the RFC's)."""
    _, p = connect(ctx, BASE)
    check(p == {}, lambda: f"answered parameters {p}, expected none")


@T.case
def test_answer_all_parameters(ctx):
    _, p = connect(ctx, BASE, "server_no_context_takeover", "client_no_context_takeover",
                   "server_max_window_bits=10", "client_max_window_bits=9")
    want = {"server_no_context_takeover": True, "client_no_context_takeover": True,
            "server_max_window_bits": "10", "client_max_window_bits": "9"}
    check(p == want, lambda: f"answered {p}, expected {want}")


@T.case
def test_answer_server_policy(ctx):
    """The server's own settings appear in the answer even when the client did not ask."""
    args = BASE + ("--deflate-server-no-context", "1", "--deflate-client-no-context", "1",
                   "--deflate-client-bits", "12")
    _, p = connect(ctx, args, "client_max_window_bits")
    want = {"server_no_context_takeover": True, "client_no_context_takeover": True,
            "client_max_window_bits": "12"}
    check(p == want, lambda: f"answered {p}, expected {want}")


@T.case
def test_unacceptable_offer_declined_next_taken(ctx):
    """An offer with an unknown parameter is declined; the client's next offer is taken."""
    srv = ctx.server(*BASE)
    c = ctx.raw(srv)
    resp = c.handshake(extra_headers=[f"Sec-WebSocket-Extensions: {PMD}; x_foo=1, "
                                      f"{PMD}; server_no_context_takeover"])
    p = ext_params(resp)
    check(p == {"server_no_context_takeover": True}, lambda: f"answered {p}")


@T.case
def test_window_8_declined(ctx):
    """server_max_window_bits=8 cannot be honoured with zlib (deflate.h): no extension."""
    _, p = connect(ctx, BASE, "server_max_window_bits=8", expect_accept=False)
    check(p is None, lambda: f"accepted {p}")


@T.case
def test_disabled_server_ignores_offer(ctx):
    _, p = connect(ctx, (), "client_max_window_bits", expect_accept=False)
    check(p is None, lambda: f"a server without --deflate accepted {p}")


for _i, _bad in enumerate([f"{PMD};", f"{PMD}; server_max_window_bits=", f"{PMD}; =10",
                           f"; {PMD}", f"{PMD} x"]):
    def _malformed(ctx, bad=_bad):
        srv = ctx.server(*BASE)
        c = ctx.raw(srv)
        c.handshake(extra_headers=[f"Sec-WebSocket-Extensions: {bad}"], expect=400)
    T.add(f"malformed_offer_{_i}_400", _malformed)


# ---- messages both ways -------------------------------------------------------------------------
PARAM_SETS = {
    "default": ((), ("client_max_window_bits",)),
    "no_context_both": ((), ("server_no_context_takeover", "client_no_context_takeover")),
    "small_windows": ((), ("server_max_window_bits=9", "client_max_window_bits=10")),
    "server_policy": (("--deflate-server-no-context", "1", "--deflate-client-no-context", "1",
                       "--deflate-server-bits", "11"), ("client_max_window_bits",)),
}

for _name, (_extra, _params) in PARAM_SETS.items():
    for _path, _mode in (("echo", "0"), ("pubsub", "1"), ("batch", "2")):
        def _rt(ctx, extra=_extra, params=_params, path=_path, mode=_mode):
            args = BASE + extra + ("--pubsub", mode)
            c, p = connect(ctx, args, *params)
            peer = Peer(p)
            roundtrip(c, peer, SIZES)
            roundtrip(c, peer, [10, 300, 5000], client_compresses=False)  # plain in, deflated out
            c.send(build_frame(OP_TEXT, peer.compress(b"")[:1], rsv=RSV1))  # empty compressed
            recv_message(c, peer, OP_TEXT, b"", compressed=False, what="empty")
            c.send_close(1000)
            c.expect_close(1000, reply=False)
        T.add(f"{_name}_{_path}_roundtrip", _rt)


@T.case
def test_server_compresses(ctx):
    """A JSON-like 10 KB text comes back much smaller on the wire, flagged RSV1."""
    c, p = connect(ctx, BASE)
    peer = Peer(p)
    data = b'{"sym":"ABC","price":101.25,"size":300}' * 256
    c.send_text(data)
    f = c.recv_frame()
    check(f.rsv == RSV1, lambda: f"not compressed: {f}")
    check(len(f.payload) < len(data) // 5, lambda: f"{len(data)} B -> {len(f.payload)} B")
    check(peer.decompress(f.payload) == data, "inflated bytes differ")


@T.case
def test_threshold_leaves_small_plain(ctx):
    c, p = connect(ctx, ("--deflate", "1", "--deflate-threshold", "100"))
    c.send_text(b"x" * 99)
    f = c.recv_frame()
    check(f.rsv == 0 and f.payload == b"x" * 99, lambda: f"99 B under a 100 B threshold: {f}")
    c.send_text(b"x" * 100)
    f = c.recv_frame()
    check(f.rsv == RSV1, lambda: f"100 B at a 100 B threshold not compressed: {f}")


def context_takeover_stream(ctx, pubsub, *params):
    """200 similar messages back to back: with context takeover each refers to the ones
    before; every one must inflate in order. With --pubsub 2 they are published from another
    thread, so the loop fans them out as publish batches (one compressed buffer per batch)."""
    c, p = connect(ctx, BASE + ("--pubsub", pubsub), *params)
    peer = Peer(p)
    note = b',"note":"' + b"the same words again and again " * 4 + b'"'  # shrinks alone too
    msgs = [b'{"seq":%d,"sym":"ABC","price":%d.25%s}' % (i, 100 + i % 7, note if i % 2 else b"")
            for i in range(200)]
    c.send(b"".join(build_frame(OP_TEXT, peer.compress(m), rsv=RSV1) for m in msgs))
    takeover = "server_no_context_takeover" not in p
    sizes = compressed = 0
    for i, m in enumerate(msgs):
        f = c.recv_frame()
        check(f.rsv == RSV1 or not takeover, lambda: f"message {i} not compressed: {f}")
        sizes += len(f.payload)
        compressed += f.rsv == RSV1
        got = peer.decompress(f.payload) if f.rsv else f.payload
        check(got == m, lambda: f"message {i}: {got!r} != {m!r}")
    check(compressed >= 100, lambda: f"only {compressed} of 200 messages compressed")
    if "server_no_context_takeover" not in p:
        # With takeover the repeats shrink to a few bytes each: far below a fresh window's.
        check(sizes < 200 * 20, lambda: f"{sizes} compressed bytes for 200 messages")


for _ps in ("0", "1", "2"):
    T.add(f"context_takeover_stream_pubsub{_ps}",
          lambda ctx, ps=_ps: context_takeover_stream(ctx, ps))
    T.add(f"no_context_stream_pubsub{_ps}", lambda ctx, ps=_ps: context_takeover_stream(
        ctx, ps, "server_no_context_takeover", "server_max_window_bits=10"))


@T.case
def test_fragmented_compressed_message(ctx):
    c, p = connect(ctx, BASE)
    peer = Peer(p)
    data = text_of(100000)
    z = peer.compress(data)
    parts = [z[:10], z[10:5000], b"", z[5000:]]
    wire = build_frame(OP_TEXT, parts[0], fin=False, rsv=RSV1)
    wire += build_frame(OP_CONT, parts[1], fin=False)
    wire += build_frame(OP_PING, b"mid")  # a control frame inside stays plain
    wire += build_frame(OP_CONT, parts[2], fin=False)
    wire += build_frame(OP_CONT, parts[3], fin=True)
    c.send(wire, chunk=777)
    f = c.recv_frame()
    check(f.opcode == OP_PONG and f.payload == b"mid", lambda: f"expected the pong, got {f}")
    recv_message(c, peer, OP_TEXT, data, True, "fragmented")


# ---- errors -------------------------------------------------------------------------------------
@T.case
def test_rsv1_on_continuation_1002(ctx):
    c, p = connect(ctx, BASE)
    peer = Peer(p)
    z = peer.compress(b"hello hello hello")
    c.send(build_frame(OP_TEXT, z[:3], fin=False, rsv=RSV1) +
           build_frame(OP_CONT, z[3:], fin=True, rsv=RSV1))
    c.expect_close(1002)


@T.case
def test_rsv1_on_plain_message_continuation_1002(ctx):
    c, p = connect(ctx, BASE)
    c.send(build_frame(OP_TEXT, b"abc", fin=False) + build_frame(OP_CONT, b"def", rsv=RSV1))
    c.expect_close(1002)


@T.case
def test_compressed_ping_1002(ctx):
    c, p = connect(ctx, BASE)
    c.send(build_frame(OP_PING, Peer(p).compress(b"ping"), rsv=RSV1))
    c.expect_close(1002)


@T.case
def test_compressed_close_1002(ctx):
    c, p = connect(ctx, BASE)
    c.send(build_frame(OP_CLOSE, b"\x03\xe8", rsv=RSV1))
    c.expect_close(1002)


@T.case
def test_rsv1_without_negotiation_1002(ctx):
    """The server has deflate on, but this client offered nothing: RSV1 stays illegal."""
    srv = ctx.server(*BASE)
    c = ctx.raw(srv)
    c.handshake()
    c.send(build_frame(OP_TEXT, zlib.compress(b"x")[2:-4], rsv=RSV1))
    c.expect_close(1002)


@T.case
def test_inflate_bomb_1009(ctx):
    """16 MiB of zeros deflate to ~16 KB; the limit is on the inflated size (64 KiB here)."""
    c, p = connect(ctx, BASE + ("--max-message", "65536"))
    z = Peer(p).compress(bytes(16 << 20))
    check(len(z) < 65536, "the bomb must pass the compressed-size check")
    c.send(build_frame(OP_BINARY, z, rsv=RSV1))
    c.expect_close(1009)


@T.case
def test_inflate_at_limit_ok(ctx):
    c, p = connect(ctx, BASE + ("--max-message", "65536"))
    peer = Peer(p)
    c.send(build_frame(OP_BINARY, peer.compress(bytes(65536)), rsv=RSV1))
    recv_message(c, peer, OP_BINARY, bytes(65536), True, "64 KiB at a 64 KiB limit")


@T.case
def test_bad_deflate_data_1007(ctx):
    c, p = connect(ctx, BASE)
    c.send(build_frame(OP_BINARY, b"\xff\xff\xff\xff\xff", rsv=RSV1))  # reserved block type
    c.expect_close(1007)


@T.case
def test_inflated_bad_utf8_1007(ctx):
    c, p = connect(ctx, BASE)
    c.send(build_frame(OP_TEXT, Peer(p).compress(b"ok \xc3\x28 not"), rsv=RSV1))
    c.expect_close(1007)


# ---- fan-out to different agreements -----------------------------------------------------------
def fanout_mixed_subscribers(ctx, pubsub):
    """One publisher, subscribers with no extension, with server_no_context_takeover at two
    window sizes (two of them at 10 bits: one shared frame), and with context takeover: each
    gets every message, compressed as its own agreement says. Checked: with the shared frame
    keyed by nothing (one for all windows, pmd.c shared_for) the 9-bit subscriber failed to
    inflate the 10-bit frame of `far` ("invalid distance too far back")."""
    srv = ctx.fresh_server(*BASE + ("--pubsub", pubsub))
    offers = {  # the 10-bit ones first: their shared frame must not reach the 9-bit one
        "plain": None,
        "noctx10a": ("server_no_context_takeover", "server_max_window_bits=10"),
        "noctx9": ("server_no_context_takeover", "server_max_window_bits=9"),
        "noctx10b": ("server_no_context_takeover", "server_max_window_bits=10"),
        "takeover": ("client_max_window_bits",),
    }
    subs = {}
    for name, params in offers.items():
        c = ctx.raw(srv)
        resp = c.handshake(extra_headers=[offer(*params)] if params else [])
        p = ext_params(resp)
        check((p is None) == (params is None), lambda: f"{name}: answered {p}")
        subs[name] = (c, Peer(p) if p is not None else None)
    import time
    time.sleep(0.3)  # the subscriptions are made in on_open: let them land
    pub = subs["plain"][0]
    rng = random.Random(7)
    block = bytes(rng.choice(b"abcdefghijklmnop") for _ in range(600))
    far = block + block  # a repeat 600 bytes back: zlib at 10 bits uses it (up to 762), 9 cannot
    msgs = [text_of(50 + 97 * i, seed=i) for i in range(40)] + [far, binary_of(70000)]
    for m in msgs:
        pub.send_text(m) if m is not msgs[-1] else pub.send_binary(m)
    frames = {}
    for name, (c, peer) in subs.items():
        frames[name] = []
        for i, m in enumerate(msgs):
            op = OP_BINARY if m is msgs[-1] else OP_TEXT
            f = c.recv_frame()
            frames[name].append(f)
            check(f.opcode == op, lambda: f"{name} message {i}: {f}")
            if peer is None:
                check(f.rsv == 0 and f.payload == m, lambda: f"{name} message {i}: {f}")
                continue
            check(f.rsv == RSV1 or "server_no_context_takeover" in peer.params,
                  lambda: f"{name} message {i} not compressed: {f}")
            got = peer.decompress(f.payload) if f.rsv else f.payload
            check(got == m, lambda: f"{name} message {i}: inflated bytes differ")
    check([f.payload for f in frames["noctx10a"]] == [f.payload for f in frames["noctx10b"]],
          "two subscribers with the same agreement got different bytes")
    for name in ("noctx9", "noctx10a", "takeover"):
        check(any(f.rsv for f in frames[name]), lambda: f"{name} got nothing compressed")


T.add("fanout_mixed_subscribers", lambda ctx: fanout_mixed_subscribers(ctx, "1"))
T.add("fanout_mixed_subscribers_batched", lambda ctx: fanout_mixed_subscribers(ctx, "2"))


if __name__ == "__main__":
    run(T)
