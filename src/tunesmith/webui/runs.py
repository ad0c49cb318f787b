"""Past and running runs under the output root: listing, logs, metrics and loss curves.

A run is a directory holding ``tunesmith_config.yaml`` (written by ``train/run.py``); its
``trainer_log.jsonl`` gives the curves and ``all_results.json`` the final metrics.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from ..config import CONFIG_FILENAME
from ..train.records import read_log

MAX_DEPTH = 3  # runs nested deeper than output_root/a/b/c are not listed


def list_runs(output_root: Path) -> list[Path]:
    """Run directories under ``output_root``, newest first."""
    found = []
    for cfg in output_root.rglob(CONFIG_FILENAME):
        rel = cfg.parent.relative_to(output_root)
        if len(rel.parts) <= MAX_DEPTH and not any(p.startswith(".") for p in rel.parts):
            found.append(cfg.parent)
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def run_name(output_root: Path, run: Path) -> str:
    return str(run.relative_to(output_root))


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def safe_log(run: Path) -> list[dict]:
    """``trainer_log.jsonl`` rows; a half-written last line (training is live) is skipped."""
    try:
        return read_log(run)
    except json.JSONDecodeError:
        rows = []
        for line in (run / "trainer_log.jsonl").read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break
        return rows


def read_config(run: Path) -> dict:
    try:
        return yaml.safe_load((run / CONFIG_FILENAME).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return {}


def summary_row(output_root: Path, run: Path) -> list:
    """One row of the runs table: name, model, method, dataset, steps, loss, runtime."""
    cfg, res = read_config(run), read_json(run / "all_results.json")
    log = [r for r in safe_log(run) if "loss" in r]
    loss = res.get("train_loss", log[-1]["loss"] if log else None)
    return [run_name(output_root, run), cfg.get("model_name_or_path", ""), cfg.get("method", ""),
            ", ".join(cfg.get("dataset") or []), log[-1]["step"] if log else 0,
            None if loss is None else round(float(loss), 4),
            res.get("train_runtime", res.get("wall_time_s"))]


RUN_COLUMNS = ["run", "model", "method", "dataset", "steps", "train_loss", "runtime_s"]


def loss_frame(runs: dict[str, Path]):
    """A long DataFrame (step, loss, run) for one LinePlot comparing several runs."""
    import pandas as pd

    rows = [(r["step"], r["loss"], name)
            for name, path in runs.items() for r in safe_log(path) if "loss" in r]
    # Typed columns even when empty: the plot's axis types are fixed from its first value.
    return pd.DataFrame({"step": pd.Series([r[0] for r in rows], dtype="int64"),
                         "loss": pd.Series([r[1] for r in rows], dtype="float64"),
                         "run": pd.Series([r[2] for r in rows], dtype="object")})


def is_adapter(path: Path) -> bool:
    return (path / "adapter_config.json").is_file()


def is_model(path: Path) -> bool:
    return (path / "config.json").is_file() and any(path.glob("*.safetensors"))


def loss_figure(runs: dict[str, Path]):
    """A matplotlib figure of the runs' loss curves (a static image: redraws never lose the line)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3))
    for name, path in runs.items():
        rows = [r for r in safe_log(path) if "loss" in r]
        ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], marker=".", label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    if runs:
        ax.legend(loc="upper right")
    fig.tight_layout()
    plt.close(fig)  # Gradio renders the figure object; pyplot need not keep it
    return fig
