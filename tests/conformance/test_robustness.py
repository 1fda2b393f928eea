#!/usr/bin/env python3
"""Robustness: misbehaving clients do not block or disturb others; handshake timeout; ping
interval and idle timeout; many concurrent clients; clean exit on SIGTERM."""

import sys
sys.dont_write_bytecode = True  # keep the source tree clean

import os
import signal
import socket
import threading
import time

from wsclient import (OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, WS, PeerEOF, PeerReset,
                      Tests, Timeout, build_frame, check, check_server_frame, fail, run)

T = Tests("robustness")


def prompt_echo_clients(ctx, server, n=5, limit=1.0):
    """n new clients each do handshake + echo; each must finish within `limit` seconds."""
    for i in range(n):
        t0 = time.monotonic()
        c = ctx.ws(server)
        msg = f"prompt client {i}".encode()
        c.echo_roundtrip(OP_TEXT, msg, timeout=limit + 1)
        dt = time.monotonic() - t0
        check(dt < limit, f"client {i}: handshake+echo took {dt:.2f}s while others misbehave")


@T.case
def test_silent_client_does_not_block_others(ctx):
    srv = ctx.server()
    silent = ctx.raw(srv)  # connects, sends nothing
    prompt_echo_clients(ctx, srv)
    silent.expect_silence(0.05)


@T.case
def test_half_handshake_client_does_not_block_others(ctx):
    srv = ctx.server()
    half = ctx.raw(srv)
    half.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConn")
    prompt_echo_clients(ctx, srv)
    # the half client can still finish its handshake afterwards
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    half.send(f"ection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
              "Sec-WebSocket-Version: 13\r\n\r\n".encode())
    r = half.read_http_response()
    check(r.status == 101, f"late-finishing handshake: expected 101, got {r.status}")
    check(r.header("Sec-WebSocket-Accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "bad accept")
    half.echo_roundtrip(OP_TEXT, b"finally")


@T.case
def test_half_frame_client_does_not_block_others(ctx):
    srv = ctx.server()
    half = ctx.ws(srv)
    wire = build_frame(OP_BINARY, b"q" * 5000)
    half.send(wire[:3])  # not even a full header
    half2 = ctx.ws(srv)
    half2.send(wire[:2500])  # half the payload
    prompt_echo_clients(ctx, srv)
    half.send(wire[3:])
    half2.send(wire[2500:])
    half.expect_echo(OP_BINARY, b"q" * 5000)
    half2.expect_echo(OP_BINARY, b"q" * 5000)


@T.case
def test_reset_mid_frame_does_not_disturb_others(ctx):
    srv = ctx.server()
    bystander = ctx.ws(srv)
    bystander.send_frame(OP_TEXT, b"in progress", fin=False)
    for _ in range(5):
        c = ctx.ws(srv)
        c.send(build_frame(OP_BINARY, os.urandom(2000))[:700])
        time.sleep(0.01)
        c.reset()
    for _ in range(3):
        c = ctx.raw(srv)
        c.send(b"GET / HTTP/1.1\r\nUpgr")
        time.sleep(0.01)
        c.reset()
    time.sleep(0.1)
    check(srv.alive(), f"server died (status {srv.returncode()})")
    bystander.send_frame(0, b" and finished", fin=True)
    bystander.expect_echo(OP_TEXT, b"in progress and finished")
    prompt_echo_clients(ctx, srv)


@T.case
def test_reset_while_server_writes_echo(ctx):
    # the server is writing a large echo to a client that resets: it must survive (EPIPE,
    # ECONNRESET, no SIGPIPE death) and keep serving others
    srv = ctx.server()
    for _ in range(3):
        c = ctx.ws(srv)
        c.send_frame(OP_BINARY, os.urandom(2 * 1048576))
        time.sleep(0.05)
        c.reset()
    time.sleep(0.2)
    check(srv.alive(), f"server died (status {srv.returncode()})")
    prompt_echo_clients(ctx, srv, n=3)


@T.case
def test_non_reading_client_does_not_block_others(ctx):
    srv = ctx.server()
    hog = ctx.ws(srv)
    hog.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    msg = build_frame(OP_BINARY, b"h" * 1048576)
    errors = []

    def flood():
        try:
            for _ in range(16):
                hog.sock.settimeout(20)
                hog.sock.sendall(msg)
        except OSError as e:
            errors.append(e)

    th = threading.Thread(target=flood, daemon=True)
    th.start()
    time.sleep(0.3)
    try:
        prompt_echo_clients(ctx, srv, n=3, limit=1.5)
    finally:
        try:
            hog.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        hog.reset()
        th.join(5)
    time.sleep(0.1)
    check(srv.alive(), f"server died (status {srv.returncode()})")
    prompt_echo_clients(ctx, srv, n=1)


@T.case
def test_many_connect_disconnect(ctx):
    srv = ctx.server()
    for i in range(100):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=3)
        if i % 3 == 1:
            s.sendall(b"GET / HTTP/1.1\r\n")
        s.close()
    check(srv.alive(), f"server died (status {srv.returncode()})")
    prompt_echo_clients(ctx, srv, n=2)


# ---- handshake timeout
@T.case
def test_handshake_timeout_half_head(ctx):
    srv = ctx.server("--handshake-timeout", 500)
    c = ctx.raw(srv)
    t0 = time.monotonic()
    c.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")
    c.expect_eof(3, allow_reset=True, discard=True)
    dt = time.monotonic() - t0
    check(dt >= 0.3, f"dropped after {dt:.2f}s, before the 0.5 s handshake timeout")


@T.case
def test_handshake_timeout_silent_connection(ctx):
    srv = ctx.server("--handshake-timeout", 500)
    c = ctx.raw(srv)
    t0 = time.monotonic()
    c.expect_eof(3, allow_reset=True, discard=True)
    dt = time.monotonic() - t0
    check(dt >= 0.3, f"dropped after {dt:.2f}s, before the 0.5 s handshake timeout")


@T.case
def test_handshake_timeout_not_applied_after_upgrade(ctx):
    srv = ctx.server("--handshake-timeout", 500)
    c = ctx.ws(srv)
    c.expect_silence(1.0)
    c.echo_roundtrip(OP_TEXT, b"still here after 1 s")


@T.case
def test_handshake_timeout_slow_but_complete_head(ctx):
    # a head that trickles in but completes before the timeout is accepted
    srv = ctx.server("--handshake-timeout", 500)
    c = ctx.raw(srv)
    req = c.request_bytes(key="dGhlIHNhbXBsZSBub25jZQ==")
    c.send(req[:40])
    time.sleep(0.2)
    c.handshake(raw=req[40:], key="dGhlIHNhbXBsZSBub25jZQ==")
    c.echo_roundtrip(OP_TEXT, b"ok")


# ---- close timeout
@T.case
def test_close_timeout_client_never_answers(ctx):
    # the server starts the close (protocol error); the client never answers nor closes:
    # the server must end TCP by itself after --close-timeout
    srv = ctx.server("--close-timeout", 500)
    c = ctx.ws(srv)
    c.send_frame(OP_TEXT, b"x", rsv=4)
    t0 = time.monotonic()
    c.expect_close(1002, reply=False, eof_timeout=3)
    dt = time.monotonic() - t0
    check(dt < 2.5, f"TCP ended {dt:.2f}s after the close frame (close timeout 0.5 s)")
    prompt_echo_clients(ctx, srv, n=1)


# ---- ping interval and idle timeout
PING_ARGS = ("--ping-interval", 300, "--idle-timeout", 1500)


@T.case
def test_silent_client_gets_ping_then_close_1001(ctx):
    srv = ctx.server(*PING_ARGS)
    c = ctx.ws(srv)
    t0 = time.monotonic()
    f = c.recv_frame(timeout=1.5)
    t_ping = time.monotonic() - t0
    check(f.opcode == OP_PING, f"expected a ping from the server, got {f}")
    check(f.fin, "ping without FIN")
    check_server_frame(f)
    check(len(f.payload) <= 125, "ping payload > 125")
    check(t_ping >= 0.15, f"ping after {t_ping:.2f}s, before the 0.3 s ping interval")
    # never answer: close 1001 at the idle timeout (more pings may come first)
    c.expect_close(1001, timeout=3.5, skip=(OP_PING,))
    dt = time.monotonic() - t0
    check(dt >= 1.0, f"closed for idleness after {dt:.2f}s, before the 1.5 s idle timeout")


@T.case
def test_pong_answering_client_stays_open(ctx):
    srv = ctx.server(*PING_ARGS)
    c = ctx.ws(srv)
    pings = 0
    end = time.monotonic() + 3.2
    while True:
        remaining = end - time.monotonic()
        if remaining <= 0:
            break
        try:
            f = c.recv_frame(timeout=remaining)
        except Timeout:
            break
        except (PeerEOF, PeerReset) as e:
            fail(f"connection ended after {pings} pings answered: {e}")
        if f.opcode == OP_CLOSE:
            fail(f"server closed a client that answers pings (after {pings} pings): {f}")
        check(f.opcode == OP_PING, f"unexpected {f}")
        pings += 1
        c.send_frame(OP_PONG, f.payload)
    check(pings >= 2, f"only {pings} pings in 3.2 s with a 0.3 s ping interval")
    c.send_frame(OP_TEXT, b"alive past the idle timeout")
    while True:
        f = c.recv_frame(timeout=2)
        if f.opcode == OP_PING:
            c.send_frame(OP_PONG, f.payload)
            continue
        break
    check(f.opcode == OP_TEXT and f.payload == b"alive past the idle timeout",
          f"expected the echo, got {f}")


@T.case
def test_data_sending_client_stays_open(ctx):
    srv = ctx.server(*PING_ARGS)
    c = ctx.ws(srv)
    end = time.monotonic() + 3.2
    i = 0
    while time.monotonic() < end:
        msg = f"keepalive {i}".encode()
        c.send_frame(OP_TEXT, msg)
        while True:  # pings may come; data alone must keep us open, so do not answer them
            f = c.recv_frame(timeout=2)
            if f.opcode == OP_PING:
                continue
            break
        check(f.opcode == OP_TEXT and f.payload == msg,
              f"message {i} after {time.monotonic() - end + 3.2:.1f}s: expected echo, got {f}")
        i += 1
        time.sleep(0.25)
    check(i >= 8, f"only {i} round trips")


# ---- load
@T.case
def test_50_concurrent_clients_20_messages_each(ctx):
    srv = ctx.server()
    n_clients, n_msgs = 50, 20
    errors = []
    done = []
    barrier = threading.Barrier(n_clients, timeout=10)

    def client(k):
        try:
            c = WS(srv.port)
            try:
                c.handshake(timeout=5)
                barrier.wait()
                for j in range(n_msgs):
                    op = OP_TEXT if j % 2 == 0 else OP_BINARY
                    data = f"client {k} message {j} ".encode() * (1 + (k + j) % 7)
                    c.send_frame(op, data)
                    c.expect_echo(op, data, timeout=5)
                c.send_close(1000)
                c.expect_close(1000, reply=False)
                done.append(k)
            finally:
                c.close()
        except Exception as e:  # collected and reported below
            errors.append(f"client {k}: {type(e).__name__}: {e}")
            try:
                barrier.abort()
            except Exception:
                pass

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(n_clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.1, 30 - (time.monotonic() - t0)))
    real = [e for e in errors if "BrokenBarrierError" not in e] or errors
    check(not errors, lambda: f"{len(errors)} clients failed; first: {real[0]}")
    check(len(done) == n_clients, f"only {len(done)} of {n_clients} clients finished")


@T.case
def test_50_clients_pipelined_bursts(ctx):
    srv = ctx.server()
    clients = [ctx.ws(srv) for _ in range(50)]
    for k, c in enumerate(clients):
        c.send(b"".join(build_frame(OP_BINARY, bytes([k, j]) * 50) for j in range(20)))
    for k, c in enumerate(clients):
        for j in range(20):
            c.expect_echo(OP_BINARY, bytes([k, j]) * 50, what=f"client {k} msg {j}")


# ---- shutdown
@T.case
def test_stdout_is_exactly_one_line(ctx):
    # contract: once listening, pw-echo prints exactly one line to stdout
    srv = ctx.fresh_server()
    c = ctx.ws(srv)
    c.echo_roundtrip(OP_TEXT, b"x")
    c.close()
    time.sleep(0.05)
    srv.expect_exit = True
    rc = srv.stop()
    time.sleep(0.1)
    check(srv.stdout_rest == b"",
          f"stdout has more than the 'listening' line: {srv.stdout_rest!r}")
    check(rc == 0, f"exit status {rc} on SIGTERM")


@T.case
def test_sigterm_exits_0(ctx):
    srv = ctx.fresh_server()
    c = ctx.ws(srv)
    c.echo_roundtrip(OP_TEXT, b"before SIGTERM")
    srv.expect_exit = True
    os.kill(srv.pid, signal.SIGTERM)
    # the client may get a close (1001 going away) before the TCP end; answer it
    try:
        f = c.recv_frame(timeout=5)
    except (PeerEOF, PeerReset):
        f = None
    if f is not None:
        check(f.opcode == OP_CLOSE, f"expected close or EOF after SIGTERM, got {f}")
        check(f.close_code() == 1001, f"expected close 1001 on shutdown, got {f}")
        c.send_close(1001)
        c.expect_eof(5, allow_reset=True)
    c.close()  # the server may wait for our FIN before it lets the connection go
    try:
        rc = srv.proc.wait(timeout=5)
    except Exception:
        fail("server did not exit within 5 s of SIGTERM")
    check(rc == 0, f"server exited with status {rc} on SIGTERM, expected 0")


if __name__ == "__main__":
    run(T)
