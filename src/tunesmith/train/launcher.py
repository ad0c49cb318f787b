"""Relaunch ``tunesmith train`` under torchrun and watch it: one machine or several.

``nproc_per_node`` processes per machine, ``nnodes`` machines (torchrun's names: ``node_rank``,
``master_addr``, ``master_port``). Every machine runs the same command with its own
``node_rank``; node 0 hosts the rendezvous at ``master_addr:master_port``.

The ranks' output streams through (torchrun's ``[defaultN]:`` prefixes removed) while the last
line of every local rank is kept. When a rank dies, torchrun stops the others; instead of its
multi-screen ChildFailedError this prints one line naming the rank that failed first, how, and its
last log line, with the checkpoint a rerun with ``resume_from_checkpoint=auto`` continues from.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

DEFAULT_PORT = 29500  # torchrun's default rendezvous port
# A rank's own exit codes that it explained itself (its "error:"/"stopped:" line streamed through):
# a user error, SIGINT and SIGTERM after saving a checkpoint.
RANK_EXPLAINED = (2, 130, 143)
_PREFIX = re.compile(r"^\[default(\d+)\]:(.*)$", re.S)
_ROOT_RANK = re.compile(r"Root Cause.*?rank\s*:\s*(\d+)\s*\(local_rank:\s*(\d+)\).*?exitcode\s*:\s*(-?\d+)",
                        re.S)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_command(t, argv: list[str]) -> list[str]:
    """The torch.distributed.run command re-running this CLI per ``t`` (a TrainConfig).

    One machine: a free port on 127.0.0.1 unless ``master_port`` is set. Several: ``master_addr``
    and ``master_port`` (default 29500) must be the same on every node.
    """
    multi = t.nnodes > 1
    addr = t.master_addr if multi or t.master_addr != "127.0.0.1" else "127.0.0.1"
    port = t.master_port or (DEFAULT_PORT if multi else _free_port())
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(t.nproc_per_node),
            "--nnodes", str(t.nnodes), "--node_rank", str(t.node_rank), "--master_addr", addr,
            "--master_port", str(port), "--tee", "3", "-m", "tunesmith.cli", "train", *argv]


class _Watch:
    """Forwards a torchrun process's output; keeps each local rank's last line and torchrun's own."""

    def __init__(self):
        self.last: dict[int, str] = {}
        self.own: list[str] = []  # torchrun's lines (its failure summary), not shown
        self.lock = threading.Lock()

    def pump(self, stream, sink) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace")
            match = _PREFIX.match(line)
            if not match:
                with self.lock:
                    self.own.append(line.rstrip("\n"))
                continue
            text = match.group(2)
            if text.strip():
                self.last[int(match.group(1))] = text.strip()
            sink.write(text)
            sink.flush()


def relaunch(t, argv: list[str]) -> int:
    """Run the distributed job and return its exit code; a failed rank is one line on stderr.

    Args:
        t: the TrainConfig (``nproc_per_node``, ``nnodes``, ``node_rank``, ``master_*``).
        argv: this command's config path and overrides, passed to every rank unchanged.
    """
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // t.nproc_per_node)))
    proc = subprocess.Popen(launch_command(t, argv), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    watch = _Watch()
    pumps = [threading.Thread(target=watch.pump, args=(proc.stdout, sys.stdout), daemon=True),
             threading.Thread(target=watch.pump, args=(proc.stderr, sys.stderr), daemon=True)]
    for p in pumps:
        p.start()
    stopped = _forward_signals(proc)
    code = _wait(proc)
    for p in pumps:
        p.join()
    explained = _explained(watch) if code else None
    if code != 0 and not stopped and explained is None:
        print(f"error: {failure_line(watch, t, code)}", file=sys.stderr, flush=True)
    return explained if explained is not None else code


def _explained(watch: _Watch) -> int | None:
    """The exit code of a failed rank that explained itself, else None.

    A rank whose last line is its own ``error:`` line stopped on a user error (code 2) even if
    it then died on the way out (a peer gone while its process group is torn down), or torchrun
    failed without naming a rank (its store, on another node, gone first).
    """
    cause = _root_cause(watch)
    if cause is not None and cause[2] in RANK_EXPLAINED:
        return cause[2]
    ranks = [cause[1]] if cause is not None else list(watch.last)
    return 2 if any(watch.last.get(r, "").startswith("error:") for r in ranks) else None


def _wait(proc) -> int:
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:  # torchrun forwards SIGINT to the ranks; wait for their save
            continue


def _forward_signals(proc) -> list:
    """SIGTERM to this process goes to torchrun (which forwards it to the ranks)."""
    stopped: list = []

    def forward(signum, frame):
        stopped.append(signum)
        proc.send_signal(signum)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, forward)
    return stopped


def _root_cause(watch: _Watch) -> tuple[int, int, int] | None:
    """(rank, local rank, exit code) of torchrun's first observed failure."""
    match = _ROOT_RANK.search("\n".join(watch.own))
    return tuple(int(g) for g in match.groups()) if match else None


def _how(exit_code: int) -> str:
    if exit_code < 0:
        try:
            return f"was killed by {signal.Signals(-exit_code).name}"
        except ValueError:
            return f"was killed by signal {-exit_code}"
    return f"exited with code {exit_code}"


def failure_line(watch: _Watch, t, code: int) -> str:
    """One line: which rank failed first, how, its last log line, and where to resume."""
    from .checkpoint import latest_checkpoint

    cause = _root_cause(watch)
    if cause is None:
        tail = next((x for x in reversed(watch.own) if x.strip()), "no output")
        return f"the distributed job failed (torchrun exit code {code}): {tail}"
    rank, local, exit_code = cause
    last = watch.last.get(local, "(no output)")
    out = Path(t.output_dir)
    ckpt = latest_checkpoint(out)
    resume = (f"; rerun with resume_from_checkpoint=auto to continue from {ckpt}" if ckpt else
              "; no complete checkpoint yet")
    return (f"rank {rank} (node {t.node_rank}, local rank {local}) {_how(exit_code)} and the job "
            f"was stopped; its last log line: {last!r}{resume}")
