"""``tunesmith bench train``: tunesmith and the peers on one workload, one run at a time."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from .prepare import prepare
from .report import aggregate, format_report, ratios
from .run import OURS, interleaved, ours_command, run_tool, say
from .workloads import get_workload


def machine(peak_seconds: float = 1.0) -> dict:
    from ..hardware import detect
    from .peak import measure_peaks

    hw = detect()
    peaks = measure_peaks(peak_seconds)
    return {"name": hw.name, "device": hw.device, "capability": hw.cpu_capability,
            "reason": hw.reason, "auto_dtype": hw.auto_dtype, "cores": os.cpu_count(),
            "peak_fp32": peaks["fp32"], "peak_bf16": peaks["bf16"]}


def flops_per_token(model_path: str) -> float:
    from transformers import AutoConfig

    from .peak import model_flops_per_token

    return model_flops_per_token(AutoConfig.from_pretrained(model_path))


def tool_commands(peers: list[str], out: Path, modes: list[str] | None = None) -> dict:
    """variant name -> callable(spec, run_dir, result) giving (cmd, env); installs peers first.

    Each of ``modes`` (``defaults``, ``best``: bench/variants.py) adds tunesmith and every peer
    as they come, or each with its own padding-free mode and checkpointing on."""
    from .peers import command, get_peer, install
    from .variants import settings, variants_for

    pythons = {name: (get_peer(name), install(get_peer(name), out, say)) for name in peers}
    table = {}
    for v in variants_for(peers, list(modes or ["defaults", "best"])):
        if v.tool == "tunesmith":
            table[v.name] = (lambda var: lambda spec, d, r: ours_command(
                spec, d, r, {**OURS, **settings(var, spec)}))(v)
        else:
            peer, python = pythons[v.tool]
            table[v.name] = (lambda var, p, py: lambda spec, d, r: command(
                p, py, run_spec({**spec, **settings(var, spec)}, d, r)))(v, peer, python)
    return table


def run_spec(spec: dict, run_dir: Path, result: Path) -> Path:
    """The workload spec plus this run's output dir and result path, for a peer's child."""
    path = run_dir / "spec.json"
    path.write_text(json.dumps({**spec, "output_dir": str(run_dir / "output"),
                                "result": str(result)}, indent=1), encoding="utf-8")
    return path


def equal_work(w, base: Path, tools: dict, fpt: float, timeout_s: float,
               grad_ckpt: bool | None) -> dict:
    """Each tool's loss on the first batch, one step in fp32: equal within 1e-3 proves the same
    token sequences and label masks (in bf16 the tools' mixed-precision choices differ by more
    than that, so the timed runs cannot show it themselves)."""
    check_dir = base / "equal-work"
    spec = prepare(w, check_dir, 1, grad_ckpt, "fp32")
    losses = {}
    for name, make in tools.items():
        run_dir = check_dir / name
        run_dir.mkdir(parents=True, exist_ok=True)
        result = run_dir / "timing.json"
        result.unlink(missing_ok=True)
        cmd, env = make(spec, run_dir, result)
        say(f"[{time.strftime('%H:%M:%S')}] {name}: equal-work check (1 step, fp32) ...")
        losses[name] = run_tool(name, cmd, env, spec, run_dir, result, fpt, timeout_s).get(
            "first_loss")
    return losses


def bench_train(workload: str = "W1", peers: list[str] | None = None, steps: int = 0,
                repeats: int = 1, out: Path = Path("bench_runs"), timeout_s: float = 3600,
                peak_seconds: float = 1.0, tools: dict | None = None,
                grad_ckpt: bool | None = None, dtype: str = "auto", check: bool = True,
                modes: list[str] | None = None) -> dict:
    """Prepare, install, run every variant ``repeats`` times (interleaved), write result + report.

    Args:
        grad_ckpt: checkpointing for every run (True/False), or None: each variant's own
            (bench/variants.py: the tools' defaults, on for all in ``best``).
        modes: ``defaults`` and/or ``best`` (both by default).
    """
    w = get_workload(workload)
    suffix = {None: "", True: "-ckpt", False: "-no-ckpt"}[grad_ckpt] + (
        "" if dtype == "auto" else f"-{dtype}")
    base = Path(out) / f"{w.name}{suffix}"
    spec = prepare(w, base, steps, grad_ckpt, dtype)
    say(f"{w.name}: {spec['n_rows']} rows, {spec['steps']} steps, {spec['tokens']:,} tokens")
    hw = machine(peak_seconds)
    tools = tools or tool_commands(peers or [], Path(out), modes)
    fpt = flops_per_token(spec["model"])
    checked = (equal_work(w, base, tools, fpt, timeout_s, grad_ckpt)
               if check and spec["dtype"] != "fp32" else None)
    runs = interleaved(
        {name: (lambda make: lambda d, r: make(spec, d, r))(make) for name, make in tools.items()},
        base, repeats, lambda name, cmd, env, d, r: run_tool(name, cmd, env, spec, d, r, fpt,
                                                             timeout_s))
    aggregated = aggregate(runs)
    result = {"dir": str(base), "spec": spec, "hardware": hw, "repeats": repeats, "runs": runs,
              "tools": aggregated, "equal_work": checked, "ratios": ratios(aggregated, checked)}
    (base / "result.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    report = format_report(result)
    (base / "report.md").write_text(report, encoding="utf-8")
    return result
