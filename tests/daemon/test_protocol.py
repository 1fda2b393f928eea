"""pushwired's client protocol on /ws, with a real daemon and Python's websockets client:
subscribe / unsubscribe / publish, the JSON delivery format, raw topics, and bad input that
gets an error frame while the connection stays up.

How each defence was checked to matter (the case fails without it):
- error frames: with reply_error (daemon/protocol.c) not sending its frame, "bad JSON" timed
  out waiting for the error frame;
- still connected after bad input: each bad-input case ends with a subscribe + delivery on the
  same connection; with a pw_close(1008) added to reply_error both cases failed (1008);
- JSON vs string data: with data_text always quoting (deliver.c), "data is the JSON value"
  received "data":"{\\"n\\": 1}" and failed;
- raw prefix: with topic_is_raw returning 0, the raw case received the JSON wrapper;
- publish op: with the allow_publish check removed, "publish refused when not allowed" got
  an ok instead of an error.
"""
import asyncio

from harness import Daemon, Runner, expect, finish, parse_args, recv_json, request, subscribe


async def no_message(ws, within=0.3):
    try:
        msg = await asyncio.wait_for(ws.recv(), within)
    except asyncio.TimeoutError:
        return
    raise AssertionError("unexpected message %r" % (msg,))


async def still_works(d, ws, topic):
    """The connection survived: a subscribe is answered and a publish arrives."""
    await subscribe(ws, topic)
    status, _ = d.publish(topic, b"42")
    expect(status == 202, "publish status %d" % status)
    expect(await recv_json(ws) == {"topic": topic, "data": 42}, "delivery after bad input")


async def cases(r, d):
    async def subscribe_and_deliver():
        async with d.ws() as a, d.ws() as b:
            await subscribe(a, "news")
            await subscribe(b, "news")
            await subscribe(a, "other")
            status, ans = d.publish("news", b'{"n": 1, "x": 0.1}')
            expect(status == 202 and ans == {"topic": "news", "subscribers": 2}, (status, ans))
            for ws in (a, b):
                raw = await asyncio.wait_for(ws.recv(), 10)
                # the publisher's exact JSON text is spliced in: 0.1 stays 0.1
                expect(raw == '{"topic":"news","data":{"n": 1, "x": 0.1}}', raw)
            await no_message(a)
    await r.run("subscribe, then a publish reaches every subscriber as {topic,data}", subscribe_and_deliver)

    async def text_payload():
        async with d.ws() as a:
            await subscribe(a, "t")
            d.publish("t", 'plain "text" é'.encode())
            expect(await recv_json(a) == {"topic": "t", "data": 'plain "text" é'}, "string data")
            d.publish("t", b"[1, 2,")  # almost JSON: delivered as a string
            expect(await recv_json(a) == {"topic": "t", "data": "[1, 2,"}, "broken JSON as string")
    await r.run("a payload that is not JSON is delivered as a JSON string", text_payload)

    async def id_echo():
        async with d.ws() as a:
            ans = await request(a, {"op": "subscribe", "topic": "x", "id": "req-1"})
            expect(ans == {"ok": True, "op": "subscribe", "topic": "x", "id": "req-1"}, ans)
    await r.run("a request's id is echoed in its answer", id_echo)

    async def unsubscribe():
        async with d.ws() as a:
            await subscribe(a, "u")
            ans = await request(a, {"op": "unsubscribe", "topic": "u"})
            expect(ans == {"ok": True, "op": "unsubscribe", "topic": "u"}, ans)
            status, ans = d.publish("u", b"1")
            expect(ans["subscribers"] == 0, ans)
            await no_message(a)
    await r.run("unsubscribe stops delivery", unsubscribe)

    async def bad_json():
        async with d.ws() as a:
            await a.send('{"op": "subscribe", "topic": ')
            ans = await recv_json(a)
            expect(ans["op"] is None and ans["error"].startswith("bad JSON"), ans)
            await still_works(d, a, "after-bad-json")
    await r.run("bad JSON gets an error frame and the connection stays up", bad_json)

    async def bad_requests():
        async with d.ws() as a:
            for msg, op, words in [
                ({"op": "dance"}, "dance", "unknown op"),
                ({"topic": "x"}, None, "missing \"op\""),
                ({"op": "subscribe"}, "subscribe", "must be a string"),
                ({"op": "subscribe", "topic": 5}, "subscribe", "must be a string"),
                ({"op": "subscribe", "topic": ""}, "subscribe", "bad topic"),
                ({"op": "subscribe", "topic": "a\nb"}, "subscribe", "bad topic"),
                ({"op": "subscribe", "topic": "x" * 256}, "subscribe", "bad topic"),
            ]:
                ans = await request(a, msg)
                expect(ans.get("op") == op and words in ans.get("error", ""), (msg, ans))
            await a.send("[1, 2]")
            ans = await recv_json(a)
            expect("expected a JSON object" in ans["error"], ans)
            await a.send(b"\x01\x02")
            ans = await recv_json(a)
            expect("binary" in ans["error"], ans)
            await still_works(d, a, "after-bad-requests")
    await r.run("unknown op, missing fields, bad topics, binary frames: error frames, still up",
                bad_requests)

    async def publish_refused():
        async with d.ws() as a:
            ans = await request(a, {"op": "publish", "topic": "p", "data": 1})
            expect(ans["op"] == "publish" and "off" in ans["error"], ans)
    await r.run("publish over WebSocket refused when not allowed", publish_refused)

    async def raw_topic():
        async with d.ws() as a:
            await subscribe(a, "raw.bytes")
            d.publish("raw.bytes", b'{"n":1}\n')
            msg = await asyncio.wait_for(a.recv(), 10)
            expect(msg == '{"n":1}\n', "raw text %r" % (msg,))
            d.publish("raw.bytes", b"\xff\x00\x01")
            msg = await asyncio.wait_for(a.recv(), 10)
            expect(msg == b"\xff\x00\x01", "raw binary %r" % (msg,))
    await r.run("--raw PREFIX: payload delivered as is (text if UTF-8, else binary)", raw_topic)

    async def not_utf8_json_topic():
        status, ans = d.publish("json.topic", b"\xff\xfe")
        expect(status == 400 and "UTF-8" in ans["error"], (status, ans))
    await r.run("non-UTF-8 payload to a JSON topic: 400", not_utf8_json_topic)


async def publish_cases(r, d):
    async def ws_publish():
        async with d.ws() as pub, d.ws() as sub:
            await subscribe(sub, "chat")
            ans = await request(pub, {"op": "publish", "topic": "chat",
                                      "data": {"who": "a", "n": [1, 2.5, None]}})
            expect(ans == {"ok": True, "op": "publish", "topic": "chat", "subscribers": 1}, ans)
            got = await recv_json(sub)
            expect(got == {"topic": "chat", "data": {"who": "a", "n": [1, 2.5, None]}}, got)
            ans = await request(pub, {"op": "publish", "topic": "chat"})
            expect("missing \"data\"" in ans["error"], ans)
            await request(pub, {"op": "publish", "topic": "raw.s", "data": "as is"})
            await subscribe(sub, "raw.s")
            await request(pub, {"op": "publish", "topic": "raw.s", "data": "as is"})
            expect(await asyncio.wait_for(sub.recv(), 10) == "as is", "raw string data")
    await r.run("--allow-publish: {op:publish} reaches subscribers", ws_publish)


async def main_async(path):
    r = Runner(None)
    d = Daemon(path, ["--raw", "raw."]).start()
    try:
        await cases(r, d)
        quiet = [l for l in d.lines if "publish" in l or "DEBUG" in l]
        r.result("no per-message log lines by default", not quiet, quiet[:3])
    finally:
        rc = d.stop()
    r.result("daemon exits 0 on SIGTERM", rc == 0, "rc=%r" % rc)
    d = Daemon(path, ["--allow-publish", "--raw", "raw."]).start()
    try:
        await publish_cases(r, d)
    finally:
        d.stop()
    return finish(r)


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main_async(parse_args(__doc__).daemon)))
