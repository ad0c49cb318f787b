"""``tunesmith bench estimate``: `tunesmith estimate` against the measured peak of real runs.

Each config trains the bundled model on a slice of a bench workload (sequential batches), as a
child ``tunesmith train`` whose peak resident set comes from ``os.wait4``; the estimate for the
same config file is computed first. A-E are the configs the CPU factors in
estimate/memory.py were fitted on; ``bench-W1``..``bench-W3`` are the `bench train` settings.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

from .run import OURS, measure
from .workloads import get_workload, train_overrides

# name -> (workload, extra keys, steps)
CONFIGS = {
    "A": ("W1", {"gradient_checkpointing": True, "packing": True, "fast_loss": True}, 2),
    "B": ("W1", {"gradient_checkpointing": False, "packing": False, "fast_loss": False}, 2),
    "C": ("W2", {"gradient_checkpointing": True, "packing": True, "fast_loss": True,
                 "max_samples": 8}, 1),
    "D": ("W3", {"gradient_checkpointing": False, "packing": True, "fast_loss": True,
                 "max_samples": 16, "per_device_train_batch_size": 4}, 4),
    "E": ("W2", {"gradient_checkpointing": False, "packing": False, "fast_loss": False,
                 "max_samples": 8}, 1),
    "bench-W1": ("W1", {**OURS, "packing": True, "gradient_checkpointing": True}, 0),
    "bench-W2": ("W2", {**OURS, "packing": True, "gradient_checkpointing": True,
                        "max_samples": 80}, 10),
    "bench-W3": ("W3", {**OURS, "packing": True, "gradient_checkpointing": True,
                        "max_samples": 80}, 10),
}


def _tunesmith() -> str:
    return str(Path(sys.executable).parent / "tunesmith")


def check(name: str, out: Path, timeout_s: float = 3600) -> dict:
    """Estimate, then train, one config; the measured and estimated peaks in MiB."""
    import subprocess

    from ..errors import ConfigError

    if name not in CONFIGS:
        raise ConfigError(f"--configs: '{name}' is not one of {', '.join(CONFIGS)}")
    workload, extra, steps = CONFIGS[name]
    keys = train_overrides(get_workload(workload), out / name / "output", steps)
    keys.update(extra)
    keys["trainer_args"] = {"train_sampling_strategy": "sequential"}
    config = out / f"{name}.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(yaml.safe_dump(keys, sort_keys=False), encoding="utf-8")
    done = subprocess.run([_tunesmith(), "estimate", str(config), "--no-calibrate", "--json"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        return {"config": name, "error": (done.stderr.strip().splitlines() or ["?"])[-1]}
    memory = json.loads(done.stdout)["memory"]
    run = measure([_tunesmith(), "train", str(config)], None, out / f"{name}.log", timeout_s)
    if run["returncode"] != 0:
        return {"config": name, "error": f"train exited {run['returncode']} (log: {out / name}.log)"}
    measured = run["peak_rss_mb"]
    return {"config": name, "measured_mb": round(measured), "estimate_mb": round(memory["peak_mb"]),
            "error_pct": round(100 * (memory["peak_mb"] - measured) / measured, 1)}


def format_checks(rows: list[dict]) -> str:
    lines = ["| config | measured peak RSS MiB | estimate MiB | error |", "|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['config']} | failed: {r['error']} | | |")
        else:
            lines.append(f"| {r['config']} | {r['measured_mb']:,} | {r['estimate_mb']:,} | "
                         f"{r['error_pct']:+.1f}% |")
    return "\n".join(lines)
