#!/usr/bin/python3
"""pushwired with permessage-deflate (--deflate and the --deflate-* flags), as a real process:
a python-websockets client (compression="deflate", its default) negotiates the extension and
receives HTTP- and WebSocket-published JSON intact; a client without compression on the same
daemon gets the same messages; --deflate-server-no-context and --deflate-server-bits show in the
negotiated parameters; without --deflate nothing is negotiated; the environment and a config file
set them too; --deflate-threshold decides which frames are compressed (RSV1 seen on a raw
socket); over wss:// as well; bad values are one line naming the flag and exit 2; --help lists
the flags.

How it was checked to matter (each mutation built and this test run, then reverted): with the
`.deflate = {...}` block removed from make_server in daemon/main.c, 5 cases failed (FAIL --deflate
negotiates permessage-deflate ...: AssertionError: no extension negotiated: [], and the
no-context, bits, env/file and wss cases); with only `.threshold` left out of it, FAIL
--deflate-threshold 1M ...: RSV1 True; with the 9..15 / 1..9 range check in
parse_deflate_number (daemon/config.c) widened to -1000..1000, the bad-value cases failed (the
daemon ran on with bits 8 or level 0, or said "invalid server options or TLS files" without
naming the flag). Since the ranges are pw_options_check's (the daemon's table keeps only its
refusal of 0 and of window 8): with check_with_library returning 0, the bits 16, mem-level 10
and PUSHWIRED_DEFLATE_SERVER_BITS=99 cases failed (two lines, the flag not named); with the
table's minimum 9 for --deflate-server-bits lowered to INT_MIN, the bits 8 case ran on.
"""
import asyncio
import json
import os
import re

from harness import (Daemon, Runner, expect, finish, parse_args, recv_json, run_daemon, subscribe,
                     tempdir)
import tls_certs
import websockets

# Long enough to pass the default threshold (64 bytes) and to compress well.
BIG = {"price": 101.25, "symbol": "PWIRE", "note": "tick " * 40, "seq": list(range(30))}


def deflate_params(ws):
    """The negotiated permessage-deflate extension of a websockets client, or fail."""
    names = [type(e).__name__ for e in ws.extensions]
    expect(len(ws.extensions) == 1 and names[0] == "PerMessageDeflate",
           "no extension negotiated: %r" % names)
    return ws.extensions[0]


def response_extensions(ws):
    return ws.response_headers.get("Sec-WebSocket-Extensions", "")


async def publish_over_ws(ws, topic, data):
    """Publish from a subscribed client: the answer and the delivery may come in either order,
    so the delivery read past the answer is returned to be checked like the others'."""
    await ws.send(json.dumps({"op": "publish", "topic": topic, "data": data}))
    answer = delivered = None
    while answer is None or delivered is None:
        msg = await recv_json(ws)
        if "op" in msg:
            answer = msg
        else:
            delivered = msg
    expect(answer.get("ok") is True, answer)
    return delivered


def delivery_rsv1(d, topic):
    """Over a raw socket offering permessage-deflate: subscribe, have BIG published over HTTP,
    and return whether the delivery frame had RSV1 (compressed) set. A websockets client
    inflates transparently, so only the raw frame shows what the server chose."""
    import base64
    import socket
    import struct
    with socket.create_connection(("127.0.0.1", d.port), timeout=10) as s:
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall(("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
                   "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n" % key).encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(4096)
            expect(chunk, "closed during the handshake: %r" % buf)
            buf += chunk
        head, _, buf = buf.partition(b"\r\n\r\n")
        expect(b"permessage-deflate" in head, head)

        def read(n):
            nonlocal buf
            while len(buf) < n:
                chunk = s.recv(65536)
                expect(chunk, "connection closed")
                buf += chunk
            out, buf = buf[:n], buf[n:]
            return out

        def frame():
            b0, b1 = read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", read(8))[0]
            read(n)
            return b0

        body = json.dumps({"op": "subscribe", "topic": topic}).encode()
        mask = os.urandom(4)
        s.sendall(bytes([0x81, 0x80 | len(body)]) + mask +
                  bytes(c ^ mask[i % 4] for i, c in enumerate(body)))
        frame()  # the subscribe answer (below the threshold: plain either way)
        d.publish(topic, json.dumps(BIG).encode(), {"Content-Type": "application/json"})
        return bool(frame() & 0x40)


def main():
    args = parse_args(__doc__.splitlines()[0])
    r = Runner(None)

    d = Daemon(args.daemon, ["--deflate", "--allow-publish"]).start()
    try:
        async def negotiates_and_receives():
            async with d.ws() as zws, d.ws(compression=None) as plain:
                ext = deflate_params(zws)
                header = response_extensions(zws)
                expect(header.startswith("permessage-deflate"), header)
                expect(not ext.local_no_context_takeover, "no-context without the flag: %s" % header)
                expect(plain.extensions == [] and response_extensions(plain) == "",
                       "an uncompressed client got %r" % response_extensions(plain))
                await subscribe(zws, "ticks")
                await subscribe(plain, "ticks")
                status, _ = d.publish("ticks", json.dumps(BIG).encode(),
                                      {"Content-Type": "application/json"})
                expect(status in (200, 202), status)
                for ws in (zws, plain):
                    msg = await recv_json(ws)
                    expect(msg == {"topic": "ticks", "data": BIG}, msg)
                # A second message uses the context of the first (takeover): still intact.
                got = [await publish_over_ws(plain, "ticks", BIG), await recv_json(zws)]
                expect(got == [{"topic": "ticks", "data": BIG}] * 2, got)
                # The compressed client publishes (its frames come in compressed).
                got = [await publish_over_ws(zws, "ticks", {"small": 1}), await recv_json(plain)]
                expect(got == [{"topic": "ticks", "data": {"small": 1}}] * 2, got)
        asyncio.run(r.run("--deflate negotiates permessage-deflate; HTTP and WebSocket publishes "
                          "reach a compressed and a plain client", negotiates_and_receives))
    finally:
        d.stop()

    def negotiated_with(daemon_args, env=None, config_lines=None):
        """The Sec-WebSocket-Extensions answer and the extension of one client."""
        async def go(d):
            async with d.ws() as ws:
                await subscribe(ws, "t")
                d.publish("t", json.dumps(BIG).encode(), {"Content-Type": "application/json"})
                msg = await recv_json(ws)
                expect(msg == {"topic": "t", "data": BIG}, msg)
                return response_extensions(ws), ws.extensions
        with tempdir() as t:
            extra = []
            if config_lines:
                path = os.path.join(t, "pushwired.conf")
                with open(path, "w") as f:
                    f.write("\n".join(config_lines) + "\n")
                extra = ["--config", path]
            d = Daemon(args.daemon, list(daemon_args) + extra, env=env).start()
            try:
                return asyncio.run(asyncio.wait_for(go(d), 30))
            finally:
                d.stop()

    def server_no_context():
        header, exts = negotiated_with(["--deflate", "--deflate-server-no-context"])
        expect("server_no_context_takeover" in header, header)
        expect(exts and exts[0].remote_no_context_takeover, header)
    r.check("--deflate-server-no-context: the answer says server_no_context_takeover",
            server_no_context)

    def client_no_context_and_bits():
        # websockets offers client_max_window_bits (no value), so the server may cap it.
        header, exts = negotiated_with(["--deflate", "--deflate-client-no-context",
                                        "--deflate-server-bits", "10", "--deflate-client-bits", "11"])
        expect("client_no_context_takeover" in header, header)
        expect(re.search(r"server_max_window_bits=10\b", header), header)
        expect(re.search(r"client_max_window_bits=11\b", header), header)
        expect(exts and exts[0].local_no_context_takeover, header)
    r.check("--deflate-client-no-context, --deflate-server-bits 10, --deflate-client-bits 11 "
            "are answered", client_no_context_and_bits)

    def threshold():
        for flags, want in (([], True), (["--deflate-threshold", "1M"], False)):
            d = Daemon(args.daemon, ["--deflate"] + flags).start()
            try:
                got = delivery_rsv1(d, "t")
            finally:
                d.stop()
            expect(got == want, "%s: RSV1 %s" % (flags or "default threshold", got))
    r.check("--deflate-threshold 1M sends a %d-byte message plain (compressed by default)"
            % len(json.dumps({"topic": "t", "data": BIG})), threshold)

    def off_by_default():
        header, exts = negotiated_with([])
        expect(header == "" and exts == [], "negotiated without --deflate: %r" % header)
    r.check("without --deflate no extension is negotiated", off_by_default)

    def env_and_file():
        header, _ = negotiated_with([], env={"PUSHWIRED_DEFLATE": "yes",
                                             "PUSHWIRED_DEFLATE_SERVER_NO_CONTEXT": "1"})
        expect("server_no_context_takeover" in header, "env: %r" % header)
        header, _ = negotiated_with([], config_lines=["deflate = on", "deflate-server-bits = 12",
                                                      "deflate-threshold = 1K", "deflate-level = 1"])
        expect(re.search(r"server_max_window_bits=12\b", header), "file: %r" % header)
    r.check("PUSHWIRED_DEFLATE* and config-file keys work", env_and_file)

    def wss():
        certs = tls_certs.make_certs()
        ctx = tls_certs.client_context(certs)
        d = Daemon(args.daemon, ["--deflate", "--deflate-server-no-context", "--tls-port", "0",
                                 "--tls-cert", certs.server_cert, "--tls-key", certs.server_key])
        d.start()
        try:
            line = d.wait_for_line(r"pushwired TLS on port (\d+)")
            port = int(re.search(r"TLS on port (\d+)", line).group(1))

            async def go():
                async with websockets.connect("wss://127.0.0.1:%d/ws" % port, ssl=ctx,
                                              open_timeout=10, max_size=None) as ws:
                    deflate_params(ws)
                    expect("server_no_context_takeover" in response_extensions(ws),
                           response_extensions(ws))
                    await subscribe(ws, "t")
                    d.publish("t", json.dumps(BIG).encode(), {"Content-Type": "application/json"})
                    msg = await recv_json(ws)
                    expect(msg == {"topic": "t", "data": BIG}, msg)
            asyncio.run(asyncio.wait_for(go(), 30))
        finally:
            d.stop()
    r.check("wss:// with --deflate: negotiated, a publish arrives intact", wss)

    bad = [
        (["--deflate-server-bits", "8"], "--deflate-server-bits"),
        (["--deflate-client-bits", "16"], "--deflate-client-bits"),
        (["--deflate-level", "0"], "--deflate-level"),
        (["--deflate-mem-level", "10"], "--deflate-mem-level"),
        (["--deflate-threshold", "lots"], "--deflate-threshold"),
        (["--deflate=maybe"], "--deflate"),
    ]
    for flags, name in bad:
        def bad_value(flags=flags, name=name):
            rc, _, err = run_daemon(args.daemon, ["--listen", "127.0.0.1:0"] + flags)
            expect(rc == 2, "exit status %r, stderr %r" % (rc, err))
            lines = err.strip().splitlines()
            expect(len(lines) == 1 and lines[0].startswith("pushwired: " + name + ":"), err)
        r.check("%s: one line naming the flag, exit 2" % " ".join(flags), bad_value)

    def help_lists_flags():
        rc, out, _ = run_daemon(args.daemon, ["--help"])
        expect(rc == 0, rc)
        for flag in ("--deflate ", "--deflate-server-no-context", "--deflate-client-no-context",
                     "--deflate-server-bits N", "--deflate-client-bits N", "--deflate-level N",
                     "--deflate-mem-level N", "--deflate-threshold BYTES"):
            expect(flag in out, "%s missing from --help" % flag)
    r.check("--help lists the --deflate flags", help_lists_flags)

    def bad_env():
        rc, _, err = run_daemon(args.daemon, ["--listen", "127.0.0.1:0"],
                                env={"PUSHWIRED_DEFLATE_SERVER_BITS": "99"})
        expect(rc == 2 and "PUSHWIRED_DEFLATE_SERVER_BITS" in err, (rc, err))
    r.check("PUSHWIRED_DEFLATE_SERVER_BITS=99: exit 2, the variable named", bad_env)
    return finish(r)


if __name__ == "__main__":
    raise SystemExit(main())
