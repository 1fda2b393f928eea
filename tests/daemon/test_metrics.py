"""GET /metrics on a real pushwired, parsed as Prometheus text (format 0.0.4): every line is a
# HELP / # TYPE comment or a sample "name{labels} value"; every sample's family has a TYPE;
and the values follow what the test did (connections, subscriptions, messages in by source,
messages and bytes out, refusals, error frames, slow-client closes and drops).

How it was checked to matter: with the registry's subscription count not decremented on close
(pwd_registry_close in daemon/registry.c), "values follow activity" read 3 subscriptions
after the clients left and failed; with PW_SLOW_DROP_NEW mapped to close in config.c, the
drop counter stayed 0.
"""
import asyncio
import re
import socket

from harness import (Runner, expect, finish, parse_args, recv_json, subscribe,
                     with_daemon)

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*"'
                    r'(,[a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*")*)?\})? (-?[0-9.eE+]+|NaN|[+-]Inf)$')


def parse(text):
    """{(name, labels-string): float}; raises on any line that is not valid text format."""
    types, samples = {}, {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            expect(kind in ("counter", "gauge"), line)
            types[name] = kind
            continue
        m = SAMPLE.match(line)
        expect(m, "not a sample line: %r" % line)
        name = m.group(1)
        expect(name in types, "sample without # TYPE: %r" % line)
        samples[(name, m.group(3) or "")] = float(m.group(5))
    return types, samples


def fetch(d):
    status, headers, body = d.http("GET", "/metrics")
    expect(status == 200, "status %d" % status)
    expect(headers["content-type"].startswith("text/plain; version=0.0.4"), headers)
    return parse(body.decode())


async def cases(r, d):
    def well_formed():
        types, samples = fetch(d)
        for name in ["pushwired_connections", "pushwired_subscriptions", "pushwired_messages_in_total",
                     "pushwired_messages_out_total", "pushwired_bytes_out_total",
                     "pushwired_bytes_in_total", "pushwired_queued_bytes", "pushwired_inbox_bytes",
                     "pushwired_dropped_messages_total", "pushwired_slow_client_closes_total",
                     "pushwired_publish_refused_total", "pushwired_client_errors_total"]:
            expect(name in types, "%s missing" % name)
        for policy in ["drop_new", "drop_oldest", "closed"]:
            expect(("pushwired_dropped_messages_total", 'policy="%s"' % policy) in samples, policy)
    r.check("the page parses as Prometheus text with the documented families", well_formed)

    async def follows_activity():
        async with d.ws() as a, d.ws() as b:
            await subscribe(a, "m1")
            await subscribe(a, "m2")
            await subscribe(b, "m1")
            for i in range(5):
                d.publish("m1", b"%d" % i)
            for _ in range(5):
                await recv_json(a)
                await recv_json(b)
            await a.send("not json")
            await recv_json(a)
            d.publish("bad%01topic", b"1")
            _, s = fetch(d)
            expect(s[("pushwired_connections", "")] == 2, s[("pushwired_connections", "")])
            expect(s[("pushwired_subscriptions", "")] == 3, s[("pushwired_subscriptions", "")])
            expect(s[("pushwired_topics", "")] == 2, s[("pushwired_topics", "")])
            expect(s[("pushwired_messages_in_total", 'source="http"')] == 5, "in")
            expect(s[("pushwired_bytes_in_total", 'source="http"')] == 5, "bytes in")
            expect(s[("pushwired_publish_refused_total", 'source="http"')] == 1, "refused")
            expect(s[("pushwired_client_errors_total", "")] == 1, "errors")
            expect(s[("pushwired_messages_out_total", "")] >= 10, "out")
            expect(s[("pushwired_bytes_out_total", "")] > 0, "bytes out")
        await asyncio.sleep(0.3)
        _, s = fetch(d)
        expect(s[("pushwired_connections", "")] == 0, "connections after close")
        expect(s[("pushwired_subscriptions", "")] == 0, "subscriptions after close")
    await r.run("values follow activity: connections, subscriptions, messages, errors", follows_activity)


async def slow_cases(r, d):
    async def drops():
        # A client that subscribes and then never reads: its queue (--max-queued 64K) fills
        # once the kernel buffers are full, and drop-new starts dropping (and counting).
        s = socket.create_connection(("127.0.0.1", d.port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        frame = b'{"op":"subscribe","topic":"flood"}'
        mask = b"\x01\x02\x03\x04"
        s.sendall(bytes([0x81, 0x80 | len(frame)]) + mask +
                  bytes(c ^ mask[i % 4] for i, c in enumerate(frame)))
        await asyncio.sleep(0.3)
        body = b"x" * 60000
        for _ in range(200):
            d.publish("flood", body)
            _, m = fetch(d)
            if m[("pushwired_dropped_messages_total", 'policy="drop_new"')] > 0:
                break
        s.close()
        expect(m[("pushwired_dropped_messages_total", 'policy="drop_new"')] > 0, "no drops counted")
    await r.run("--slow-policy drop-new: drops of a client that does not read are counted", drops)


async def main_async(path):
    r = Runner(None)
    await with_daemon(r, path, [], cases, check_exit=False)
    await with_daemon(r, path, ["--slow-policy", "drop-new", "--max-queued", "64K"], slow_cases)
    return finish(r)


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main_async(parse_args(__doc__).daemon)))
