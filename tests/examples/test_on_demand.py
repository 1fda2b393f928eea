#!/usr/bin/python3
"""Test of examples/on_demand.c: a job's worker starts once however many clients ask, streams
progress to the clients that asked, and ends; a later request runs it again.

Usage: /usr/bin/python3 tests/examples/test_on_demand.py --server PATH_TO_PW_ON_DEMAND
"""
import asyncio
import random
import sys
import time

from common import main, recv_json

FULL = list(range(0, 101, 10))
STARTED = "started"
SUBSCRIBED = "already running, subscribed"


async def follow(ws, job, timeout=20):
    """Messages about `job` until its "done": (statuses, progress list, done message,
    time of the first progress, time of done)."""
    statuses, progress, first = [], [], None
    deadline = time.monotonic() + timeout
    while True:
        msg = await recv_json(ws, timeout=max(0.1, deadline - time.monotonic()))
        if msg.get("job") != job:
            raise AssertionError("message about another job while following %r: %r" % (job, msg))
        if "status" in msg:
            statuses.append(msg["status"])
        elif "progress" in msg:
            progress.append(msg["progress"])
            first = first or time.monotonic()
        elif msg.get("done") is True:
            return statuses, progress, msg, first, time.monotonic()
        else:
            raise AssertionError("unexpected message %r" % (msg,))


async def start_and_follow(ws, job):
    await ws.send("start " + job)
    return await follow(ws, job)


async def five_at_once(r):
    conns = [await r.connect() for _ in range(5)]
    try:
        # All five requests leave together; the worker starts once.
        await asyncio.gather(*(c.send("start report") for c in conns))
        results = await asyncio.gather(*(follow(c, "report") for c in conns))
    finally:
        await asyncio.gather(*(c.close() for c in conns))
    statuses = sorted(s for st, _, _, _, _ in results for s in st)
    if statuses != sorted([STARTED] + [SUBSCRIBED] * 4):
        raise AssertionError("replies %r: expected one %r and four %r"
                             % (statuses, STARTED, SUBSCRIBED))
    for i, (_, progress, done, _, _) in enumerate(results):
        if progress != FULL:
            raise AssertionError("client %d got progress %r" % (i, progress))
        if done["runs"] != 1:
            raise AssertionError("client %d: done says runs=%r, expected 1" % (i, done["runs"]))


async def again_after_done(r):
    async with r.connect() as ws:
        statuses, progress, done, _, _ = await start_and_follow(ws, "report")
    if statuses != [STARTED] or progress != FULL or done["runs"] != 2:
        raise AssertionError("second run: statuses %r progress %r done %r"
                             % (statuses, progress, done))


async def two_jobs_in_parallel(r):
    async with r.connect() as a, r.connect() as b:
        t0 = time.monotonic()
        (sa, pa, da, fa, ea), (sb, pb, db, fb, eb) = await asyncio.gather(
            start_and_follow(a, "alpha"), start_and_follow(b, "beta"))
        elapsed = time.monotonic() - t0
    for job, st, p, d in (("alpha", sa, pa, da), ("beta", sb, pb, db)):
        if st != [STARTED] or p != FULL or d["runs"] != 1:
            raise AssertionError("%s: statuses %r progress %r done %r" % (job, st, p, d))
    if not (fa < eb and fb < ea):
        raise AssertionError("the jobs did not overlap: alpha %.3f..%.3f, beta %.3f..%.3f"
                             % (fa - t0, ea - t0, fb - t0, eb - t0))
    if elapsed > 1.5 * max(ea - t0, eb - t0) + 0.5:
        raise AssertionError("two jobs took %.2f s" % elapsed)


async def same_client_twice(r):
    async with r.connect() as ws:
        await ws.send("start gamma")
        await ws.send("start gamma")
        statuses, progress, done, _, _ = await follow(ws, "gamma")
        while len(statuses) < 2:  # the second reply may come after "done" in theory: not here
            statuses.append((await recv_json(ws))["status"])
    if statuses != [STARTED, SUBSCRIBED] or progress != FULL or done["runs"] != 1:
        raise AssertionError("statuses %r progress %r done %r (no duplicate progress expected)"
                             % (statuses, progress, done))


async def listener_leaves(r):
    async with r.connect() as stay:
        quitter = await r.connect()
        await quitter.send("start delta")
        await recv_json(quitter)  # "started"
        await stay.send("start delta")
        for _ in range(3):
            await recv_json(quitter)
        await quitter.close()
        statuses, progress, done, _, _ = await follow(stay, "delta")
    if statuses != [SUBSCRIBED] or progress != FULL or done["runs"] != 1:
        raise AssertionError("statuses %r progress %r done %r" % (statuses, progress, done))


async def requests_at_random_moments(r):
    """Requests racing the end of a run are never lost: 5 clients keep asking for the same
    job at random moments over several runs; after its last reply each still gets a "done"
    (the reply to a request is always queued before that run's "done")."""
    rng = random.Random(1234)

    async def one(ws, gaps):
        replies, last_reply_at, dones = 0, None, []

        async def reader():
            nonlocal replies, last_reply_at
            while True:
                msg = await recv_json(ws)
                if "status" in msg:
                    if msg["status"] not in (STARTED, SUBSCRIBED):
                        raise AssertionError("reply %r" % (msg,))
                    replies += 1
                    last_reply_at = len(dones)
                elif msg.get("done"):
                    dones.append(msg["runs"])
                    if replies == len(gaps) and len(dones) > last_reply_at:
                        return

        task = asyncio.ensure_future(reader())
        for gap in gaps:
            await ws.send("start eta")
            await asyncio.sleep(gap)
        await asyncio.wait_for(task, 10)
        return dones

    conns = [await r.connect() for _ in range(5)]
    try:
        plans = [[rng.uniform(0, 0.08) for _ in range(25)] for _ in conns]
        results = await asyncio.gather(*(one(c, p) for c, p in zip(conns, plans)))
    finally:
        await asyncio.gather(*(c.close() for c in conns))
    runs = sorted({n for dones in results for n in dones})
    if runs != list(range(1, len(runs) + 1)) or len(runs) < 2:
        raise AssertionError("runs seen %r: expected 1..R, R >= 2" % runs)


async def back_to_back(r):
    async with r.connect() as ws:
        for expected in (1, 2, 3):
            statuses, progress, done, _, _ = await start_and_follow(ws, "zeta")
            if statuses != [STARTED] or progress != FULL or done["runs"] != expected:
                raise AssertionError("run %d: statuses %r progress %r done %r"
                                     % (expected, statuses, progress, done))


async def bad_request(r):
    async with r.connect() as ws:
        for bad in ("hello", "start ", "start no spaces", "start " + "x" * 64, b"start bin"):
            await ws.send(bad)
            msg = await recv_json(ws)
            if "error" not in msg:
                raise AssertionError("request %r answered %r" % (bad, msg))


async def stop_during_job(r):
    """SIGTERM while a job runs: the worker is stopped at once and the server exits 0."""
    async with r.connect() as ws:
        await ws.send("start final")
        while "progress" not in await recv_json(ws):
            pass
        t0 = time.monotonic()
        rc = await asyncio.get_running_loop().run_in_executor(None, r.server.stop)
        took = time.monotonic() - t0
    if rc != 0:
        raise AssertionError("exit status %r" % (rc,))
    if took > 10:
        raise AssertionError("stopping took %.1f s" % took)


async def cases(r):
    await r.run("5 clients start 'report' at once: it runs once, all get 0..100 and runs=1",
                lambda: five_at_once(r))
    await r.run("'report' again after done: runs=2", lambda: again_after_done(r))
    await r.run("two different jobs run in parallel", lambda: two_jobs_in_parallel(r))
    await r.run("the same client asking twice is subscribed once", lambda: same_client_twice(r))
    await r.run("a listener leaving mid-job does not disturb the others",
                lambda: listener_leaves(r))
    await r.run("requests at random moments over several runs are never lost",
                lambda: requests_at_random_moments(r))
    await r.run("three runs back to back: runs 1, 2, 3", lambda: back_to_back(r))
    await r.run("malformed requests get an error", lambda: bad_request(r))
    await r.run("SIGTERM during a job: exits 0 promptly", lambda: stop_during_job(r))


if __name__ == "__main__":
    sys.exit(main("pw-on-demand", __doc__.splitlines()[0], cases))
