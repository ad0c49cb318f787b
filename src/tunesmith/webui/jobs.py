"""CLI verbs run as child processes: ``python -m tunesmith.cli <verb> <config.yaml>``.

Training, prediction and export run outside the UI process so the UI stays responsive and a
crash (or an out-of-memory kill) in the job leaves the UI running. Arguments are a list, never a
shell string, so run names with ``;``, ``$(...)`` or backticks are plain characters.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import yaml

LOG_NAME = {"train": "webui_train.log", "predict": "webui_predict.log", "export": "webui_export.log"}


def write_yaml(flat: dict, path: Path) -> Path:
    """Save a flat config (the YAML users write) for the child process and for rerunning."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(flat, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def command(verb: str, yaml_path: Path) -> list[str]:
    return [sys.executable, "-m", "tunesmith.cli", verb, str(yaml_path)]


@dataclass
class Job:
    """One child process and its log file."""

    verb: str
    workdir: Path
    proc: subprocess.Popen | None = None
    log_path: Path | None = None
    stopped: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, flat: dict) -> list[str]:
        """Write ``webui_<verb>.yaml`` in ``workdir`` and start the verb on it."""
        with self._lock:
            if self.running:
                raise RuntimeError(f"a {self.verb} job is already running")
            cfg = write_yaml(flat, self.workdir / f"webui_{self.verb}.yaml")
            argv = command(self.verb, cfg)
            self.log_path = self.workdir / LOG_NAME[self.verb]
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
            with self.log_path.open("w", encoding="utf-8") as log:
                # New session: a Ctrl-C in the UI's terminal does not also hit the job.
                self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, env=env,
                                             start_new_session=True)
            self.stopped = False
            return argv

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def stop(self) -> bool:
        """SIGTERM: training finishes its step, saves a checkpoint and exits."""
        if not self.running:
            return False
        self.stopped = True
        self.proc.send_signal(signal.SIGTERM)
        return True

    def wait(self, timeout: float | None = None) -> int | None:
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def log_tail(self, lines: int = 30) -> str:
        if self.log_path is None or not self.log_path.is_file():
            return ""
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        # Progress bars redraw with \r: keep only each line's last redraw.
        shown = [line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.split("\n")]
        return "\n".join([line for line in shown if line.strip()][-lines:])

    def kill(self) -> None:
        """Used when the UI shuts down: never leave a training process behind."""
        if self.running:
            self.proc.send_signal(signal.SIGTERM)
            if self.wait(30) is None:
                self.proc.kill()


def follow(job: Job, poll_s: float = 1.0):
    """Yield the job's log tail every ``poll_s`` until it exits (Gradio streams each yield)."""
    import time

    while job.running:
        yield job.log_tail(12)
        time.sleep(poll_s)
    yield job.log_tail(12)


def verb_available(verb: str) -> bool:
    """Whether this install has ``tunesmith <verb>`` (predict and export are separate modules)."""
    import importlib.util

    return importlib.util.find_spec(f"tunesmith.commands.{verb}") is not None
