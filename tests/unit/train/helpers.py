"""Helpers for training-engine tests: run the CLI in a subprocess, read logs and adapters."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from tests.conftest import CHAT_ROWS, write_rows


def base_overrides(model_dir, data, out, **extra) -> dict:
    """A small deterministic CPU fp32 LoRA run (per-step logging, a checkpoint every step)."""
    return {"model_name_or_path": str(model_dir), "dataset": str(data), "output_dir": str(out),
            "learning_rate": 1e-2, "per_device_train_batch_size": 4, "logging_steps": 1,
            "save_steps": 1, "dtype": "fp32", "lora_rank": 4, "cutoff_len": 64,
            "lr_scheduler_type": "linear", "max_steps": 8, **extra}


def write_chat(path: Path, n: int = 24) -> Path:
    return write_rows(path, CHAT_ROWS[:n])


def cli_cmd(overrides: dict) -> list[str]:
    return [sys.executable, "-m", "tunesmith.cli", "train",
            *[f"{k}={v}" for k, v in overrides.items()]]


def spawn(overrides: dict, log_path: Path, env: dict | None = None, **kwargs) -> subprocess.Popen:
    """Start ``tunesmith train`` in a subprocess; stdout+stderr go to ``log_path``."""
    fh = open(log_path, "ab")
    return subprocess.Popen(cli_cmd(overrides), stdout=fh, stderr=subprocess.STDOUT, env=env,
                            **kwargs)


def run_cli(overrides: dict, log_path: Path, env: dict | None = None, **kwargs) -> int:
    return spawn(overrides, log_path, env, **kwargs).wait(timeout=600)


def logged_steps(out: Path) -> set[int]:
    path = Path(out) / "trainer_log.jsonl"
    if not path.is_file():
        return set()
    steps = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            steps.add(json.loads(line)["step"])
        except (json.JSONDecodeError, KeyError):
            continue
    return steps


def wait_until(predicate, proc: subprocess.Popen, limit_s: float = 600) -> bool:
    """Poll until ``predicate()`` (True) or the process ended (False). ``limit_s`` is a safety net."""
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        if predicate():
            return True
        if proc.poll() is not None:
            return predicate()
        time.sleep(0.02)
    raise AssertionError("the training subprocess neither progressed nor ended")


def losses(out: Path) -> dict[int, float]:
    """Per-step training loss from trainer_log.jsonl (the last line per step wins)."""
    rows = [json.loads(x) for x in (Path(out) / "trainer_log.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def adapter(path: Path) -> dict[str, torch.Tensor]:
    return load_file(Path(path) / "adapter_model.safetensors")


def max_abs_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def all_finite(path: Path) -> bool:
    return all(torch.isfinite(t).all() for t in adapter(path).values())


class ForkedRun:
    """A training process started by the Zygote (Popen-like: pid, poll, wait, kill, send_signal)."""

    def __init__(self, zygote: "Zygote", pid: int):
        self.zygote, self.pid = zygote, pid

    def poll(self) -> int | None:
        return self.zygote.codes.get(self.pid)

    def wait(self, timeout: float = 600) -> int:
        end = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() > end:
                raise subprocess.TimeoutExpired(str(self.pid), timeout)
            time.sleep(0.02)
        return self.poll()

    def send_signal(self, sig: int) -> None:
        import os

        os.kill(self.pid, sig)

    def kill(self) -> None:
        import signal

        self.send_signal(signal.SIGKILL)


class Zygote:
    """Client of tests/unit/train/zygote.py: forks pre-imported ``tunesmith train`` processes."""

    def __init__(self, env: dict):
        import threading

        script = Path(__file__).with_name("zygote.py")
        self.proc = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=env)
        self.codes: dict[int, int] = {}
        self.pids: dict[int, int] = {}
        self.next_id = 0
        self.ready = False
        threading.Thread(target=self._read, daemon=True).start()
        self._until(lambda: self.ready, "start")

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                msg = json.loads(line)
            except ValueError:  # not a protocol line
                continue
            if "rc" in msg:
                self.codes[msg["pid"]] = msg["rc"]
            elif "ready" in msg:
                self.ready = True
            else:
                self.pids[msg["id"]] = msg["pid"]

    def spawn(self, overrides: dict, log_path: Path, env: dict | None = None) -> ForkedRun:
        self.next_id += 1
        req = {"id": self.next_id, "argv": cli_cmd(overrides)[3:], "env": env or {},
               "log": str(log_path)}
        self.proc.stdin.write((json.dumps(req) + "\n").encode())
        self.proc.stdin.flush()
        self._until(lambda: self.next_id in self.pids, "fork")
        return ForkedRun(self, self.pids[self.next_id])

    def _until(self, predicate, what: str, limit_s: float = 600) -> None:
        end = time.monotonic() + limit_s  # a safety net, not a timing assertion
        while not predicate():
            if time.monotonic() > end or self.proc.poll() is not None:
                raise AssertionError(f"the test fork server did not {what}")
            time.sleep(0.01)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)
