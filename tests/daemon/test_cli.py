"""pushwired's command line, configuration and signals, as a real process: --help, one-line
errors with exit code 2 for bad flags/values/files, exit code 1 for an address in use, the
precedence flags > environment > config file, SIGHUP reload, and --demo.

How each defence was checked to matter (the case fails without it):
- precedence: with the environment layer applied after the flags (daemon/config.c), "flag beats
  environment" published with the environment's token and failed;
- exit codes: with start_server returning EXIT_BAD_CONFIG for every failure (main.c), the
  address-in-use case saw 2 instead of 1;
- reload: with the SIGHUP branch of wait_for_stop ignoring the signal, the new token got 403;
- library ranges: with check_with_library (daemon/config.c) returning 0, each of the three
  values reached pw_server_new instead, which printed its own log line and then "invalid server
  options or TLS files" (two lines, not naming the flag, key or variable).
"""
import asyncio
import os
import signal
import socket

from harness import (Daemon, Runner, expect, finish, parse_args, recv_json, run_daemon,
                     subscribe, tempdir)


def one_line_error(stderr, *words):
    lines = [l for l in stderr.splitlines() if l.strip()]
    expect(len(lines) == 1, "expected one line, got %r" % lines)
    expect(lines[0].startswith("pushwired: "), lines[0])
    for w in words:
        expect(w in lines[0], "%r not in %r" % (w, lines[0]))


def cli_cases(r, path):
    def help_text():
        rc, out, err = run_daemon(path, ["--help"])
        expect(rc == 0 and err == "", (rc, err))
        for flag in ["--listen", "--www", "--threads", "--token", "--unix", "--exec", "--topic",
                     "--stdin", "--raw", "--allow-publish", "--config", "--demo", "PUSHWIRED_"]:
            expect(flag in out, "%s missing from --help" % flag)
    r.check("--help prints the options and exits 0", help_text)

    def bad_flags():
        for args, words in [(["--bogus"], ["--bogus", "unknown option"]),
                            (["--threads", "many"], ["--threads", "many"]),
                            (["--threads", "0"], ["--threads"]),
                            (["--listen", "1.2.3.4:99999"], ["--listen"]),
                            (["--slow-policy", "maybe"], ["--slow-policy"]),
                            (["--max-message", "12Q"], ["--max-message"]),
                            (["--www"], ["--www", "needs a value"]),
                            (["stray"], ["unexpected argument"]),
                            (["--exec", "true"], ["no topic"]),
                            (["--topic", "t"], ["must follow an exec"]),
                            (["--www", "/nonexistent/dir", "--listen", "127.0.0.1:0"], ["not a directory"])]:
            rc, out, err = run_daemon(path, args)
            expect(rc == 2, "%r: exit %d" % (args, rc))
            one_line_error(err, *words)
        rc, _, err = run_daemon(path, ["--listen", "127.0.0.1:0"], env={"PUSHWIRED_THREADS": "x"})
        expect(rc == 2, "bad env value: exit %d" % rc)
        one_line_error(err, "PUSHWIRED_THREADS")
    r.check("bad flags, values and environment: one line, exit 2", bad_flags)

    def address_in_use():
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        try:
            rc, _, err = run_daemon(path, ["--listen", "127.0.0.1:%d" % port])
        finally:
            s.close()
        expect(rc == 1, "exit %d" % rc)
        one_line_error(err, "127.0.0.1:%d" % port, "address already in use")
        rc, _, err = run_daemon(path, ["--listen", "203.0.113.7:0"])  # not an address here
        expect(rc == 1, "unassignable address: exit %d" % rc)
        one_line_error(err, "cannot listen")
    r.check("address in use / cannot listen: one line, exit 1", address_in_use)

    def config_errors():
        with tempdir() as tmp:
            conf = os.path.join(tmp, "p.conf")
            with open(conf, "w") as f:
                f.write("# comment\n\nthreads = 2\nnot-a-key = 1\n")
            rc, _, err = run_daemon(path, ["--config", conf])
            expect(rc == 2, "exit %d" % rc)
            one_line_error(err, "p.conf:4", "unknown key 'not-a-key'")
            rc, _, err = run_daemon(path, ["--config", os.path.join(tmp, "missing.conf")])
            expect(rc == 2, "missing file: exit %d" % rc)
            one_line_error(err, "missing.conf")
    r.check("config file errors name the file and line, exit 2", config_errors)

    def library_ranges():
        # A pw_options value is judged by the library's one range check (pw_options_check):
        # the daemon's one line names where the value came from, then gives its sentence.
        with tempdir() as tmp:
            conf = os.path.join(tmp, "p.conf")
            with open(conf, "w") as f:
                f.write("threads = 2\ndeflate-level = 12\n")
            for args, env, words in [
                (["--threads", "65"], {}, ["--threads: pw_options.threads = 65: must be 1..64"]),
                (["--config", conf], {}, ["p.conf:2: deflate-level: pw_options.deflate.level = 12:"
                                          " must be 0 (the default) or 1..9"]),
                ([], {"PUSHWIRED_TLS_PORT": "70000"},
                 ["PUSHWIRED_TLS_PORT: pw_options.tls.port = 70000: must be 0..65535"]),
            ]:
                rc, _, err = run_daemon(path, ["--listen", "127.0.0.1:0"] + args, env=env)
                expect(rc == 2, "%r %r: exit %d" % (args, env, rc))
                one_line_error(err, *words)
    r.check("a value outside the library's range: pw_options_check's text, one line, exit 2",
            library_ranges)


async def layered(r, path):
    async def precedence():
        with tempdir() as tmp:
            conf = os.path.join(tmp, "p.conf")
            with open(conf, "w") as f:
                f.write("token = from-file\nallow-publish = yes\nraw = file.\n")
            env = {"PUSHWIRED_CONFIG": conf}
            for args, extra_env, good in [
                ([], {}, "from-file"),
                ([], {"PUSHWIRED_TOKEN": "from-env"}, "from-env"),
                (["--token", "from-flag"], {"PUSHWIRED_TOKEN": "from-env"}, "from-flag"),
            ]:
                d = Daemon(path, args, env=dict(env, **extra_env)).start()
                try:
                    for token in ["from-file", "from-env", "from-flag"]:
                        status, _ = d.publish("t", b"1", {"Authorization": "Bearer " + token})
                        want = 202 if token == good else 403
                        expect(status == want, "%s with token %s: %d (want %d)"
                               % (good, token, status, want))
                    async with d.ws("/ws?token=" + good) as a:  # the file's other keys apply
                        await subscribe(a, "file.x")
                        await a.send('{"op":"publish","topic":"file.x","data":"raw"}')
                        expect(await asyncio.wait_for(a.recv(), 10) == "raw", "raw from file")
                finally:
                    d.stop()
    await r.run("precedence: flags > PUSHWIRED_* > config file", precedence)

    async def reload():
        with tempdir() as tmp:
            conf = os.path.join(tmp, "p.conf")
            with open(conf, "w") as f:
                f.write("token = old\n")
            d = Daemon(path, ["--config", conf]).start()
            try:
                expect(d.publish("t", b"1", {"Authorization": "Bearer old"})[0] == 202, "old")
                with open(conf, "w") as f:
                    f.write("token = new\n")
                os.kill(d.proc.pid, signal.SIGHUP)
                d.wait_for_line(r"reloaded token")
                expect(d.publish("t", b"1", {"Authorization": "Bearer new"})[0] == 202, "new")
                expect(d.publish("t", b"1", {"Authorization": "Bearer old"})[0] == 403, "old")
                with open(conf, "w") as f:
                    f.write("token = \nbroken line\n")
                os.kill(d.proc.pid, signal.SIGHUP)
                d.wait_for_line(r"reload failed, settings unchanged: .*p.conf:2")
                expect(d.publish("t", b"1", {"Authorization": "Bearer new"})[0] == 202, "kept")
            finally:
                rc = d.stop()
            expect(rc == 0, "exit %r" % rc)
    await r.run("SIGHUP reloads the token; a broken file keeps the old settings", reload)

    async def demo():
        d = Daemon(path, ["--demo"]).start()
        try:
            d.wait_for_line(r"demo source running")
            async with d.ws() as a:
                await subscribe(a, "demo.counter")
                msg = await recv_json(a, timeout=10)
                expect(msg["topic"] == "demo.counter" and "data" in msg, msg)
        finally:
            rc = d.stop()
        expect(rc == 0, "exit %r" % rc)
    await r.run("--demo publishes demo.* topics", demo)


def main(path):
    r = Runner(None)
    cli_cases(r, path)
    asyncio.run(layered(r, path))
    return finish(r)


if __name__ == "__main__":
    raise SystemExit(main(parse_args(__doc__).daemon))
