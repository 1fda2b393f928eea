#!/usr/bin/python3
"""pushwired over TLS (--tls-cert/--tls-key/--tls-port/--tls-ca), as a real process: a wss://
subscriber gets what is published over plain HTTP, https:// answers, a CA makes client
certificates required, SIGHUP re-reads the certificate files, a bad file is one line and exit 2.
Certificates are made at run time (tests/support/tls_certs.py).

How each was checked to matter: without tls.cert_file passed to pw_options in main.c
make_server, no "TLS on port" line came (FAIL the TLS listener logs its port); without the
pw_server_reload_tls call in reload(), the subject after SIGHUP stayed pushwire-test-a.
"""
import asyncio
import os
import shutil
import signal
import socket
import ssl

from harness import Daemon, Runner, expect, finish, parse_args, recv_json, run_daemon, subscribe
import tls_certs

TLS_LINE = r"pushwired TLS on port (\d+)"


def tls_port(d):
    import re
    return int(re.search(TLS_LINE, d.wait_for_line(TLS_LINE)).group(1))


def peer_subject(port, ctx):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            return dict(x[0] for x in s.getpeercert()["subject"])["commonName"]


def main():
    args = parse_args(__doc__.splitlines()[0])
    certs = tls_certs.make_certs()
    r = Runner(None)
    ctx = tls_certs.client_context(certs)
    base = ["--tls-port", "0", "--tls-cert", certs.server_cert, "--tls-key", certs.server_key]

    d = Daemon(args.daemon, base).start()
    try:
        try:
            port = tls_port(d)
        except AssertionError as e:
            r.result("the TLS listener logs its port", False, str(e))
            return finish(r)

        async def wss_subscriber():
            async with __import__("websockets").connect(
                    "wss://127.0.0.1:%d/ws" % port, ssl=ctx, open_timeout=10) as ws:
                await subscribe(ws, "news")
                status, _ = d.publish("news", b"over tls")  # plain HTTP publish
                expect(status in (200, 202), status)
                msg = await recv_json(ws)
                expect(msg.get("data") == "over tls" or "over tls" in str(msg), msg)
        asyncio.run(r.run("wss:// subscriber receives a plain-HTTP publish", wss_subscriber))

        def https_metrics():
            import http.client
            c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
            c.request("GET", "/metrics")
            resp = c.getresponse()
            expect(resp.status == 200, resp.status)
            c.close()
        r.check("https:// /metrics answers 200", https_metrics)
    finally:
        d.stop()

    def reload_on_sighup():
        with __import__("tempfile").TemporaryDirectory(prefix="pushwired-tls-") as t:
            cert, key = os.path.join(t, "c.pem"), os.path.join(t, "k.pem")
            shutil.copy(certs.server_cert, cert)
            shutil.copy(certs.server_key, key)
            d2 = Daemon(args.daemon, ["--tls-port", "0", "--tls-cert", cert, "--tls-key", key])
            d2.start()
            try:
                p = tls_port(d2)
                expect(peer_subject(p, ctx) == "pushwire-test-a", "before")
                shutil.copy(certs.server_b_key, key + ".n")
                shutil.copy(certs.server_b_cert, cert + ".n")
                os.rename(key + ".n", key)
                os.rename(cert + ".n", cert)
                os.kill(d2.proc.pid, signal.SIGHUP)
                d2.wait_for_line("reloaded the TLS certificate files")
                expect(peer_subject(p, ctx) == "pushwire-test-b", "after SIGHUP")
            finally:
                d2.stop()
    r.check("SIGHUP re-reads the certificate files", reload_on_sighup)

    def client_ca():
        d3 = Daemon(args.daemon, base + ["--tls-ca", certs.ca]).start()
        try:
            p = tls_port(d3)
            try:
                with socket.create_connection(("127.0.0.1", p), timeout=10) as raw:
                    with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                        got = s.recv(100)
                refused = got == b""
            except (ssl.SSLError, OSError):
                refused = True
            expect(refused, "a client without a certificate was served")
            good = tls_certs.client_context(certs, certs.client_cert, certs.client_key)
            expect(peer_subject(p, good) == "pushwire-test-a", "client with a certificate")
        finally:
            d3.stop()
    r.check("--tls-ca: clients need a certificate the CA signed", client_ca)

    def bad_file():
        rc, _, err = run_daemon(args.daemon, ["--listen", "127.0.0.1:0", "--tls-cert",
                                              "/nonexistent/cert.pem", "--tls-key", certs.server_key])
        expect(rc == 2, "exit status %r" % rc)
        expect("/nonexistent/cert.pem" in err, err)
    r.check("a missing certificate file: exit 2, the file named", bad_file)
    return finish(r)


if __name__ == "__main__":
    raise SystemExit(main())
