"""Shared harness for the example tests (tests/examples/test_*.py).

Starts an example server on port 0, parsing "<name> listening on port N"; keeps draining
its stdout (kept in Server.lines); always stops it by pid (SIGTERM, then SIGKILL). The
Runner prints one line per case and "N passed, M failed" at the end.
"""
import argparse
import asyncio
import json
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
# tests/support/server_proc.py: shared with tests/interop and tests/daemon
from server_proc import RunnerBase, Server, require_websockets, start_and_announce  # noqa: E402

websockets = require_websockets()



Runner = RunnerBase  # result() and run() live in tests/support/server_proc.py


async def recv_json(ws, timeout=10):
    """The next text message, parsed as JSON (binary messages are an error here)."""
    msg = await asyncio.wait_for(ws.recv(), timeout)
    if not isinstance(msg, str):
        raise AssertionError("expected a text message, got %d binary bytes" % len(msg))
    return json.loads(msg)


def main(name, description, cases, after_stop=None, stdin_pipe=False):
    """Parse --server, start it, run `cases(runner)` (a coroutine function), stop the server
    and check that it exits 0; `after_stop(runner, server)` may add checks on its output."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--server", required=True, help="path to the %s binary" % name)
    args = ap.parse_args()

    server = Server(args.server, name, stdin_pipe)
    runner = None
    try:
        if not start_and_announce(server, args.server):
            return 1
        runner = Runner(server)
        asyncio.run(cases(runner))
    finally:
        rc = server.stop()
    runner.result("server exits 0 on SIGTERM", rc == 0, "exit status %r" % (rc,))
    if after_stop is not None:
        after_stop(runner, server)
    print("%d passed, %d failed" % (runner.passed, runner.failed))
    return 1 if runner.failed else 0
