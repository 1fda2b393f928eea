"""POST /publish/<topic> on a real pushwired: 202 with the count of local subscribers, the
token (Bearer header or ?token=) with 401/403 refusals, the WebSocket side of the token, and
the HTTP errors for wrong methods, big bodies and bad topics.

How each defence was checked to matter (the case fails without it):
- token: with check_token (daemon/routes.c) returning 0, "no token: 401" got 202;
- the WebSocket token: with pwd_ws_on_upgrade returning 0, "wrong token on /ws: 403" opened;
- the count over several loops: answering with the loop's own count (the library's per-loop
  table, as pw_topic_subscribers did on a loop thread before the server's topic registry)
  gave fewer than 8 with --threads 2;
- 413: with both size checks gone (max_body_size left at the library's 1 MiB in main.c and
  the max_message check in deliver.c), the 2 KiB body got 202.
"""
import asyncio

import websockets

from harness import (Runner, expect, finish, parse_args, recv_json, request, subscribe,
                     with_daemon)

TOKEN = "s3cret-token"


async def token_cases(r, d):
    async def refused():
        status, ans = d.publish("t", b"1")
        expect(status == 401 and ans == {"error": "a token is required"}, (status, ans))
        s, headers, _ = d.http("POST", "/publish/t", b"1")
        expect("bearer" in headers.get("www-authenticate", "").lower(), headers)
        status, ans = d.publish("t", b"1", {"Authorization": "Bearer wrong"})
        expect(status == 403, (status, ans))
        status, ans = d.publish("t?token=wrong", b"1")
        expect(status == 403, (status, ans))
        status, ans = d.publish("t", b"1", {"Authorization": "Bearer " + TOKEN[:-1]})
        expect(status == 403, "a prefix of the token: %d" % status)
    await r.run("token configured: no token 401, wrong token 403", refused)

    async def accepted():
        async with d.ws() as a:
            await subscribe(a, "t")
            status, ans = d.publish("t", b'"bearer"', {"Authorization": "Bearer " + TOKEN})
            expect(status == 202 and ans["subscribers"] == 1, (status, ans))
            expect(await recv_json(a) == {"topic": "t", "data": "bearer"}, "bearer delivery")
            status, ans = d.publish("t?token=" + TOKEN, b'"query"')
            expect(status == 202, (status, ans))
            expect(await recv_json(a) == {"topic": "t", "data": "query"}, "query delivery")
    await r.run("token configured: Bearer header or ?token= publishes (202)", accepted)

    async def ws_token():
        async with d.ws() as reader:  # reading needs no token
            ans = await request(reader, {"op": "publish", "topic": "t", "data": 1})
            expect("token is required" in ans["error"], ans)
        async with d.ws("/ws?token=" + TOKEN) as writer, d.ws() as reader:
            await subscribe(reader, "t")
            ans = await request(writer, {"op": "publish", "topic": "t", "data": 7})
            expect(ans.get("ok") is True, ans)
            expect(await recv_json(reader) == {"topic": "t", "data": 7}, "ws publish with token")
        try:
            async with d.ws("/ws?token=wrong"):
                raise AssertionError("upgrade with a wrong token was accepted")
        except websockets.exceptions.InvalidStatusCode as e:
            expect(e.status_code == 403, "status %d" % e.status_code)
    await r.run("WebSocket: publishing needs ?token=, a wrong token on /ws: 403", ws_token)


async def plain_cases(r, d):
    async def count():
        status, ans = d.publish("nobody", b"1")
        expect(status == 202 and ans == {"topic": "nobody", "subscribers": 0}, (status, ans))
        clients = [await d.ws().__aenter__() for _ in range(8)]
        try:
            for ws in clients:
                await subscribe(ws, "many")
            status, ans = d.publish("many", b"1")
            expect(status == 202 and ans["subscribers"] == 8, (status, ans))
            for ws in clients:
                expect(await recv_json(ws) == {"topic": "many", "data": 1}, "delivery")
            await clients[0].close()
            await asyncio.sleep(0.2)
            status, ans = d.publish("many", b"2")
            expect(ans["subscribers"] == 7, "after one left: %r" % ans)
        finally:
            for ws in clients:
                await ws.close()
    await r.run("202 with the count of subscribers over every loop (--threads 2)", count)

    async def encoded_topic():
        async with d.ws() as a:
            await subscribe(a, "a/b c")
            status, ans = d.publish("a/b%20c", b"1")
            expect(status == 202 and ans == {"topic": "a/b c", "subscribers": 1}, (status, ans))
            expect(await recv_json(a) == {"topic": "a/b c", "data": 1}, "delivery")
    await r.run("the topic is the percent-decoded rest of the path", encoded_topic)

    async def errors():
        status, headers, _ = d.http("GET", "/publish/t")
        expect(status == 405 and headers.get("allow") == "POST", (status, headers))
        status, _, _ = d.http("POST", "/publish/t", b"x" * 2048)
        expect(status == 413, "2 KiB body over --max-message 1K: %d" % status)
        for bad in ["", "%00x", "a%0Ab", "%zz", "x" * 256]:
            status, ans = d.publish(bad, b"1")
            expect(status == 400 and "topic" in ans["error"], (bad, status, ans))
    await r.run("405 for GET, 413 over --max-message, 400 for bad topics", errors)


async def main_async(path):
    r = Runner(None)
    await with_daemon(r, path, ["--token", TOKEN, "--allow-publish"], token_cases, check_exit=False)
    await with_daemon(r, path, ["--threads", "2", "--max-message", "1K"], plain_cases)
    return finish(r)


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main_async(parse_args(__doc__).daemon)))
