#!/usr/bin/python3
"""Test of examples/ticker.c: the main loop pushes a status message to every client every 100 ms.

Usage: /usr/bin/python3 tests/examples/test_ticker.py --server PATH_TO_PW_TICKER
"""
import asyncio
import statistics
import sys
import time

from common import main, recv_json


async def ticks(ws, count):
    """The next `count` ticks as (arrival time, message)."""
    out = []
    for _ in range(count):
        msg = await recv_json(ws, timeout=5)
        if set(msg) != {"tick", "clients", "uptime_ms"}:
            raise AssertionError("unexpected status message %r" % (msg,))
        out.append((time.monotonic(), msg))
    return out


def check_series(who, series):
    """Ticks increase by one (no loss, no duplicates), uptime grows, spacing ~100 ms."""
    for (_, a), (_, b) in zip(series, series[1:]):
        if b["tick"] != a["tick"] + 1:
            raise AssertionError("%s: tick %d followed by %d" % (who, a["tick"], b["tick"]))
        if b["uptime_ms"] <= a["uptime_ms"]:
            raise AssertionError("%s: uptime went from %d to %d"
                                 % (who, a["uptime_ms"], b["uptime_ms"]))
    gaps = [(t2 - t1) * 1000 for (t1, _), (t2, _) in zip(series, series[1:])]
    median = statistics.median(gaps)
    if not 50 <= median <= 200:
        raise AssertionError("%s: median gap between ticks %.0f ms, expected ~100" % (who, median))
    ups = [m["uptime_ms"] for _, m in series]
    per_tick = (ups[-1] - ups[0]) / (len(ups) - 1)
    if not 80 <= per_tick <= 150:
        raise AssertionError("%s: uptime advances %.0f ms per tick, expected ~100"
                             % (who, per_tick))


async def two_clients(r):
    async with r.connect() as c1:
        first = await ticks(c1, 3)
        if first[0][1]["clients"] != 1:
            raise AssertionError("alone, client 1 saw clients=%r" % (first[0][1]["clients"],))
        async with r.connect() as c2:
            s1, s2 = await asyncio.gather(ticks(c1, 10), ticks(c2, 10))
        check_series("client 1", first + s1)
        check_series("client 2", s2)
        seen1 = [m["clients"] for _, m in first + s1]
        if 2 not in seen1 or seen1.index(2) == 0 or sorted(seen1) != seen1:
            raise AssertionError("client 1 saw the client count go %r, expected 1..1,2..2" % seen1)
        if s2[-1][1]["clients"] != 2 or s1[-1][1]["clients"] != 2:
            raise AssertionError("with two clients the last ticks said %d and %d"
                                 % (s1[-1][1]["clients"], s2[-1][1]["clients"]))
        # Both get the same ticks: every tick goes to every client.
        common = {m["tick"] for _, m in s1} & {m["tick"] for _, m in s2}
        if len(common) < 5:
            raise AssertionError("the two clients share only %d tick numbers" % len(common))


async def count_falls(r):
    async with r.connect() as c1:
        async with r.connect() as c2:
            for _ in range(20):
                if (await recv_json(c2))["clients"] == 2:
                    break
            else:
                raise AssertionError("never saw clients=2")
        for _ in range(20):  # c2 is gone: within 2 s the count must fall back to 1
            msg = await recv_json(c1)
            if msg["clients"] == 1:
                return
        raise AssertionError("client count still %d 2 s after a client left" % msg["clients"])


async def many_clients(r):
    n = 20
    conns = [await r.connect() for _ in range(n)]
    try:
        results = await asyncio.gather(*(ticks(c, 8) for c in conns))
        for i, series in enumerate(results):
            check_series("client %d" % i, series)
        last = max(m["clients"] for s in results for _, m in s)
        if last != n:
            raise AssertionError("largest client count seen %d, expected %d" % (last, n))
    finally:
        await asyncio.gather(*(c.close() for c in conns))


async def cases(r):
    await r.run("two clients: ticks every ~100 ms, N +1 each, client count rises 1 -> 2",
                lambda: two_clients(r))
    await r.run("client count falls back when a client leaves", lambda: count_falls(r))
    await r.run("20 clients all tick", lambda: many_clients(r))


if __name__ == "__main__":
    sys.exit(main("pw-ticker", __doc__.splitlines()[0], cases))
