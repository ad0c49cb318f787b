"""A fork server for CLI runs in tests: import tunesmith once, fork one real process per run.

Importing torch + transformers + peft costs ~7 s of CPU per process; the fault tests start ~15
training processes. This script imports everything once (and runs no torch op, so forking is
safe), then forks a child per request that runs ``tunesmith.cli.main(argv)`` exactly as
``python -m tunesmith.cli`` does. Children are ordinary processes: ``kill -9``, SIGTERM and exit
codes behave as for the CLI.

Protocol (JSON lines): stdin ``{"id", "argv", "env", "log"}``; stdout ``{"id", "pid"}`` after the
fork and ``{"pid", "rc"}`` when the child ends (rc < 0: killed by that signal).
"""

from __future__ import annotations

import json
import os
import select
import sys

# The protocol gets its own copy of stdout; fd 1 goes to stderr, so a library printing on import
# (wandb: "[INFO] Running in WANDB offline mode") cannot corrupt it.
PROTOCOL = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)

import tunesmith.cli  # noqa: E402,F401  (the imports are the point)
import tunesmith.train.run  # noqa: E402,F401


def _child(req: dict) -> None:
    os.environ.update(req.get("env", {}))
    fd = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdin.close()
    PROTOCOL.close()
    from tunesmith.cli import main

    code = 1
    try:
        code = main(list(req["argv"]))
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _send(obj: dict) -> None:
    PROTOCOL.write(json.dumps(obj) + "\n")
    PROTOCOL.flush()


def _reap() -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _send({"pid": pid, "rc": os.waitstatus_to_exitcode(status)})


def serve() -> None:
    _send({"ready": True})
    buf = b""
    while True:
        ready, _, _ = select.select([sys.stdin.buffer], [], [], 0.05)
        _reap()
        if not ready:
            continue
        chunk = os.read(sys.stdin.fileno(), 65536)
        if not chunk:
            return
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            req = json.loads(line)
            pid = os.fork()
            if pid == 0:
                _child(req)
            _send({"id": req["id"], "pid": pid})


if __name__ == "__main__":
    serve()
