"""Run one tool on a prepared workload in a child process and measure it from the outside.

Wall time runs from launch to exit; time to first step from launch to the end of the first
optimizer step; training time from ``on_train_begin`` to the end of training. Peak RSS is the
child's own maximum resident set, from ``os.wait4`` (so runs never share a number). Tokens per
CPU-second (training loop's process time) is reported beside tokens/s: on a shared machine wall
time swings with other load, CPU time much less.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

from .workloads import get_workload, train_overrides

# tunesmith's settings beyond the workload's shared keys: none. Packing, the fused loss and the
# checkpointing choice are its defaults (bench/variants.py), so the bench measures what users get.
OURS: dict = {}


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def interleaved(tools: dict, base: Path, repeats: int, run) -> list[dict]:
    """Every tool ``repeats`` times, interleaved (A, B, A, B: drift on a shared machine hits every
    tool alike), each run in ``base/<tool>/run<N>`` with its timing record ``timing.json``.

    Args:
        tools: name -> ``(run_dir, result_path) -> (argument list, environment)``.
        run: ``(name, cmd, env, run_dir, result_path) -> metrics`` (runs and measures one).
    Returns:
        The metrics of every run, in the order run.
    """
    runs = []
    for rep in range(repeats):
        for name, make in tools.items():
            run_dir = base / name / f"run{rep + 1}"
            run_dir.mkdir(parents=True, exist_ok=True)
            result = run_dir / "timing.json"
            result.unlink(missing_ok=True)
            cmd, env = make(run_dir, result)
            say(f"[{time.strftime('%H:%M:%S')}] {name} run {rep + 1}/{repeats} ...")
            runs.append(run(name, cmd, env, run_dir, result))
            say(f"  -> {json.dumps(runs[-1])}")
    return runs


def ours_command(spec: dict, run_dir: Path, result: Path, extra: dict) -> tuple[list[str], dict]:
    """Write the run's tunesmith config (the shared keys + ``extra``) and return the command."""
    w = get_workload(spec["workload"])
    keys = train_overrides(w, run_dir / "output", spec["max_steps"], spec["dtype"])
    keys.update({"trainer_args": {"train_sampling_strategy": "sequential"}, **extra})
    config = run_dir / "tunesmith.yaml"
    config.write_text(yaml.safe_dump(keys, sort_keys=False), encoding="utf-8")
    run = run_dir / "run.json"
    run.write_text(json.dumps({"config": str(config), "result": str(result)}), encoding="utf-8")
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
    return [sys.executable, "-m", "tunesmith.bench.child_ours", str(run)], env


def measure(cmd: list[str], env: dict, log: Path, timeout_s: float) -> dict:
    """Run ``cmd``; return launch/exit times, exit code and the child's peak RSS (MiB)."""
    with log.open("w", encoding="utf-8") as fh:
        start = time.time()
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
        fired: list[bool] = []
        timer = threading.Timer(timeout_s, lambda: (fired.append(True), proc.kill()))
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
    return {"t_launch": start, "t_exit": time.time(), "returncode": proc.returncode,
            "timed_out": bool(fired),
            "peak_rss_mb": usage.ru_maxrss / 1024, "cpu_s": usage.ru_utime + usage.ru_stime}


def failure(outer: dict, timeout_s: float, log: Path) -> str:
    """Why a run ended without its result, in one line: a timeout, a kill (on Linux without a
    timeout: the out-of-memory killer, at the peak it had reached), or the exit code and the
    log's last line."""
    peak = outer["peak_rss_mb"]
    if outer.get("timed_out"):
        return f"timed out after {timeout_s:.0f} s (log: {log})"
    if outer["returncode"] == -9:
        from ..hardware import meminfo_mb

        total = meminfo_mb("MemTotal")
        return (f"killed (SIGKILL) at {peak:,.0f} MiB peak RSS: out of memory"
                f"{f' on this {total:,.0f} MiB machine' if total else ''} (log: {log})")
    tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-1:] or [""]
    return f"exit {outer['returncode']}: {tail[0][:200]} (log: {log})"


def summarize(tool: str, spec: dict, outer: dict, inner: dict, flops_per_token: float) -> dict:
    """One run's metrics from the outside measurement and the child's timing record."""
    losses = {int(k): v for k, v in inner.get("losses", {}).items()}
    train_s = inner["t_end"] - inner["t_begin"]
    train_cpu_s = inner.get("cpu_end", 0) - inner.get("cpu_begin", 0)
    tokens = inner.get("tokens") or spec["tokens"]  # LLaMA-Factory's packed steps hold more rows
    return {"tool": tool, "steps": inner.get("steps"), "tokens": tokens,
            "train_s": round(train_s, 2), "tokens_per_s": round(tokens / train_s, 2),
            "tokens_per_cpu_s": round(tokens / train_cpu_s, 2) if train_cpu_s > 0 else None,
            "wall_s": round(outer["t_exit"] - outer["t_launch"], 2),
            "cpu_s": round(outer.get("cpu_s", 0), 2),
            "first_step_s": round(inner["t_first_step"] - outer["t_launch"], 2),
            "peak_rss_mb": round(outer["peak_rss_mb"], 1),
            "peak_gpu_mb": inner.get("peak_gpu_mb"),
            "first_loss": losses.get(min(losses)) if losses else None,
            "first_grad_norm": _first(inner.get("grad_norms", {})),
            "final_loss": losses.get(max(losses)) if losses else None,
            "achieved_flops": flops_per_token * tokens / train_s}


def _first(by_step: dict):
    return by_step[min(by_step, key=int)] if by_step else None


def run_tool(tool: str, cmd: list[str], env: dict, spec: dict, run_dir: Path, result: Path,
             flops_per_token: float, timeout_s: float) -> dict:
    """Run and summarize; a failed run returns ``{"tool", "error"}`` naming its log."""
    log = run_dir / "log.txt"
    outer = measure(cmd, env, log, timeout_s)
    if outer["returncode"] != 0 or not result.is_file():
        return {"tool": tool, "error": failure(outer, timeout_s, log),
                "peak_rss_mb": round(outer["peak_rss_mb"], 1)}
    return summarize(tool, spec, outer, json.loads(result.read_text(encoding="utf-8")),
                     flops_per_token)
