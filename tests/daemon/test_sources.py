"""Publishing from outside HTTP on a real pushwired: the Unix socket ("<topic> <payload>"
lines), --exec programs (each stdout line published; restarted with a growing delay when they
exit; stopped with the daemon) and --stdin.

How each defence was checked to matter (the case fails without it):
- restart: with exec_task returning after the first run (daemon/sources.c), "restarted" saw
  one message and timed out;
- backoff: with the delay not doubled, the gaps stayed ~100 ms and the growth check failed;
- the child's process group killed at stop: with reap's kill(-pid, ...) turned into
  kill(pid, ...), the grandchild `sleep` survived the daemon and the case failed;
- the stale-socket cleanup: without the unlink of a socket nobody listens on, the daemon
  exited 1 ("address already in use") on a leftover socket file.
(Each was a temporary edit of daemon/sources.c, rebuilt, this test run, the edit reverted.)
"""
import asyncio
import os
import re
import socket
import time

from harness import Daemon, Runner, expect, finish, parse_args, recv_json, subscribe, tempdir


def unix_send(path, data, read_reply=False):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.sendall(data)
    reply = b""
    if read_reply:
        s.settimeout(5)
        while not reply.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
    s.close()
    return reply


async def unix_cases(r, d, path):
    async def lines():
        async with d.ws() as a:
            await subscribe(a, "u1")
            await subscribe(a, "raw.u")
            unix_send(path, b'u1 {"k": 1}\nu1 hello world\r\nraw.u x y z\n\nu1 last-without-newline')
            expect(await recv_json(a) == {"topic": "u1", "data": {"k": 1}}, "json line")
            expect(await recv_json(a) == {"topic": "u1", "data": "hello world"}, "text line")
            expect(await asyncio.wait_for(a.recv(), 10) == "x y z", "raw line")
            expect(await recv_json(a) == {"topic": "u1", "data": "last-without-newline"}, "last")
    await r.run("unix socket: '<topic> <payload>' lines are published", lines)

    async def split_writes():
        async with d.ws() as a:
            await subscribe(a, "u2")
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            for part in [b"u2 par", b"ts of ", b"one line\nu2 ", b"two\n"]:
                s.sendall(part)
                await asyncio.sleep(0.05)
            expect(await recv_json(a) == {"topic": "u2", "data": "parts of one line"}, "joined")
            expect(await recv_json(a) == {"topic": "u2", "data": "two"}, "second")
            s.close()
    await r.run("unix socket: a line split over several writes is one message", split_writes)

    async def errors():
        reply = unix_send(path, b"no-space-here\n", read_reply=True)
        expect(reply.startswith(b"error: expected '<topic> <payload>'"), reply)
        reply = unix_send(path, b"bad\x01topic payload\n", read_reply=True)
        expect(reply.startswith(b"error: bad topic"), reply)
    await r.run("unix socket: a bad line gets 'error: ...' back", errors)


async def exec_cases(r, d, marker_dir):
    async def lines_and_restart():
        async with d.ws() as a:
            await subscribe(a, "ticks")
            times, values = [], []
            while len(values) < 5:
                msg = await recv_json(a, timeout=20)
                times.append(time.monotonic())
                values.append(msg["data"])
            expect(all(v == {"run": "x"} for v in values), values)
            gaps = [b - t for t, b in zip(times, times[1:])]
            # restarts after 100, 200, 400, 800 ms: the delay doubles
            expect(gaps[3] > 2 * gaps[0] and gaps[3] > 0.5, "gaps %r" % gaps)
        status, _, body = d.http("GET", "/metrics")
        m = re.search(rb"^pushwired_exec_restarts_total (\d+)$", body, re.M)
        expect(m and int(m.group(1)) >= 4, "restarts metric %r" % (m and m.group(0)))
        d.wait_for_line(r"exec\[0\]: .* exited with status 3; restarting in 200 ms")
    await r.run("--exec: each stdout line published, restarted with a doubling delay",
                lines_and_restart)

    async def long_running():
        async with d.ws() as a:
            await subscribe(a, "long")
            got = [(await recv_json(a, timeout=20))["data"] for _ in range(3)]
            expect(got == ["tick", "tick", "tick"], got)
    await r.run("--exec: a program that keeps running streams its lines", long_running)


async def stdin_cases(r, d):
    async def lines():
        async with d.ws() as a:
            await subscribe(a, "in")
            d.proc.stdin.write(b'first\n{"second": 2}\n')
            d.proc.stdin.flush()
            expect(await recv_json(a) == {"topic": "in", "data": "first"}, "first")
            expect(await recv_json(a) == {"topic": "in", "data": {"second": 2}}, "second")
            d.proc.stdin.close()
            d.wait_for_line(r"stdin: end of input")
            status, _, body = d.http("GET", "/healthz")  # the daemon goes on without stdin
            expect(status == 200, "healthz after stdin closed: %d" % status)
    await r.run("--stdin: lines published; end of input ends only that source", lines)


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def main_async(path):
    r = Runner(None)
    with tempdir() as tmp:
        sock = os.path.join(tmp, "pub.sock")
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(sock)  # a socket file nobody listens on, as a crash leaves it
        stale.close()
        d = Daemon(path, ["--unix", sock, "--raw", "raw."])
        try:
            d.start()
        except RuntimeError as e:
            r.result("unix socket: a stale socket file is replaced", False, str(e))
            return finish(r)
        try:
            r.result("unix socket: a stale socket file is replaced", True)
            await unix_cases(r, d, sock)
        finally:
            rc = d.stop()
        r.result("unix socket removed at exit, exit 0", rc == 0 and not os.path.exists(sock),
                 "rc=%r exists=%r" % (rc, os.path.exists(sock)))

        pidfile = os.path.join(tmp, "grandchild.pid")
        d = Daemon(path, [
            "--exec", "echo '{\"run\": \"x\"}'; exit 3", "--topic", "ticks",
            "--exec", "sleep 300 & echo $! > %s; while :; do echo tick; sleep 0.1; done" % pidfile,
            "--topic", "long"]).start()
        try:
            await exec_cases(r, d, tmp)
        finally:
            rc = d.stop()
        grandchild = int(open(pidfile).read()) if os.path.exists(pidfile) else None
        deadline = time.monotonic() + 5
        while grandchild and pid_alive(grandchild) and time.monotonic() < deadline:
            time.sleep(0.05)
        r.result("--exec programs and what they started end with the daemon (exit 0)",
                 rc == 0 and grandchild and not pid_alive(grandchild),
                 "rc=%r grandchild=%r alive=%r" % (rc, grandchild, grandchild and pid_alive(grandchild)))

    d = Daemon(path, ["--stdin", "in"], stdin_pipe=True).start()
    try:
        await stdin_cases(r, d)
    finally:
        rc = d.stop()
    r.result("--stdin daemon exits 0", rc == 0, "rc=%r" % rc)
    return finish(r)


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main_async(parse_args(__doc__).daemon)))
