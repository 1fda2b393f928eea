#!/usr/bin/python3
"""Interop test: python3-websockets with permessage-deflate against pw-echo --deflate 1.

Usage: /usr/bin/python3 tests/interop/ws_python_deflate.py --server PATH_TO_PW_ECHO

Every case of ws_python.py (echo 0 B..1 MiB text and binary, fragmented, pings, closes,
subprotocols, 20 concurrent clients) runs again with compression on, under several
parameter sets (the client's offer x the server's flags), over the echo (pw_send) and the
fan-out (--pubsub: pw_publish) paths; websockets inflates and checks every frame itself.
The "declined" case of ws_python.py becomes: the extension is accepted with exactly the
expected parameters. Checked to fail without the feature: with negotiate_deflate() in
http.c returning PW__PMD_NONE every set fails at "no extension accepted"; with RSV1 not set
on compressed frames (pmd.c) websockets fails the echoes ("invalid UTF-8" / mismatches).
"""
import argparse
import asyncio
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ws_python  # noqa: E402  (its cases, reused)

from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory  # noqa: E402

# (name, server flags, client offer parameters, parameters the answer must carry)
SETS = [
    ("default", ["--deflate", "1"], {"client_max_window_bits": True}, {}),
    ("threshold_1", ["--deflate", "1", "--deflate-threshold", "1"], {}, {}),
    ("client_asks_everything", ["--deflate", "1", "--deflate-threshold", "1"],
     {"server_no_context_takeover": True, "client_no_context_takeover": True,
      "server_max_window_bits": 10, "client_max_window_bits": 9},
     {"server_no_context_takeover": True, "client_no_context_takeover": True,
      "server_max_window_bits": 10, "client_max_window_bits": 9}),
    ("server_policy", ["--deflate", "1", "--deflate-threshold", "1",
                       "--deflate-server-no-context", "1", "--deflate-client-no-context", "1",
                       "--deflate-client-bits", "11"],
     {"client_max_window_bits": True},
     {"server_no_context_takeover": True, "client_no_context_takeover": True,
      "client_max_window_bits": 11}),
]


def agreed(ws):
    exts = [e for e in ws.extensions if e.name == "permessage-deflate"]
    if not exts:
        raise AssertionError("no extension accepted (offered permessage-deflate)")
    e = exts[0]
    out = {}
    if e.remote_no_context_takeover:
        out["server_no_context_takeover"] = True
    if e.local_no_context_takeover:
        out["client_no_context_takeover"] = True
    if e.remote_max_window_bits != 15:
        out["server_max_window_bits"] = e.remote_max_window_bits
    if e.local_max_window_bits != 15:
        out["client_max_window_bits"] = e.local_max_window_bits
    return out


def make_runner(server, name, offer, expect):
    class DeflateRunner(ws_python.Runner):
        def connect(self, **kw):
            kw.setdefault("extensions", [ClientPerMessageDeflateFactory(**offer)])
            kw.setdefault("compression", None)
            return super().connect(**kw)

        async def run(self, case, fn):
            await super().run("[%s] %s" % (name, case), fn)

        async def no_extension(self):  # here: the extension with exactly these terms
            async with self.connect() as ws:
                got = agreed(ws)
                if got != expect:
                    raise AssertionError("agreed %r, expected %r" % (got, expect))
                big = '{"sym":"ABC","price":1.25} ' * 5000
                for _ in range(3):  # context takeover: later copies refer to earlier ones
                    await ws.send(big)
                    if await ws.recv() != big:
                        raise AssertionError("echo mismatch")
    return DeflateRunner(server)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", required=True, help="path to the pw-echo binary")
    args = ap.parse_args()
    passed = failed = 0
    for name, flags, offer, expect in SETS:
        for pubsub in (False, True):
            label = name + (" pubsub" if pubsub else "")
            server = ws_python.Server(args.server, "pw-echo",
                                      args=flags + (["--pubsub", "1"] if pubsub else []))
            try:
                server.start()
                runner = make_runner(server, label, offer, expect)
                if pubsub:  # one client at a time: every publish comes back to its sender
                    async def cases(r=runner):
                        for n in ws_python.SIZES:
                            await r.run("text %d B" % n,
                                        lambda n=n: r.echo_one(ws_python.text_of_size(n)))
                            await r.run("binary %d B" % n,
                                        lambda n=n: r.echo_one(ws_python.binary_of_size(n)))
                        await r.run("fragmented binary 200 KiB", lambda: r.fragmented(
                            [ws_python.binary_of_size(50 * 1024)] * 4))
                        await r.run("agreement", r.no_extension)
                    asyncio.run(cases())
                else:
                    asyncio.run(runner.all())
            finally:
                rc = server.stop()
            passed += runner.passed
            failed += runner.failed
            if rc != 0:
                failed += 1
                print("FAIL [%s] server exit status %r" % (label, rc), flush=True)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
