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
