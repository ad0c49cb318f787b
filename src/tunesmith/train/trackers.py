"""Experiment trackers (``report_to``): tensorboard, swanlab, wandb — offline when no account.

The HF Trainer's own integrations do the logging; this module only checks the package is
installed and points each tracker at the run's output directory through the environment
variables those integrations read. Without an API key, W&B runs offline and SwanLab locally,
so ``report_to: wandb`` never asks for a login.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..config import suggest
from ..errors import ConfigError, require


def _tensorboard(out: Path, cfg) -> None:
    require("tensorboard", "track", "report_to: tensorboard")
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(out / "runs")  # the run record lives in output_dir


def _wandb(out: Path, cfg) -> None:
    require("wandb", "track", "report_to: wandb")
    if not os.environ.get("WANDB_API_KEY") and os.environ.get("WANDB_MODE") not in ("disabled",):
        os.environ["WANDB_MODE"] = "offline"
    os.environ["WANDB_DIR"] = str(out)
    os.environ["WANDB_PROJECT"] = cfg.train.tracker_project or "tunesmith"
    if cfg.train.tracker_tags:
        os.environ["WANDB_TAGS"] = ",".join(cfg.train.tracker_tags)
    else:
        os.environ.pop("WANDB_TAGS", None)
    os.environ.setdefault("WANDB_SILENT", "true")


def _swanlab(out: Path, cfg) -> None:
    require("swanlab", "track", "report_to: swanlab")
    if not os.environ.get("SWANLAB_API_KEY") and os.environ.get("SWANLAB_MODE") != "disabled":
        os.environ["SWANLAB_MODE"] = "offline"
    os.environ["SWANLAB_LOG_DIR"] = str(out / "swanlog")
    os.environ["SWANLAB_PROJECT"] = cfg.train.tracker_project or "tunesmith"


TRACKERS = {"tensorboard": _tensorboard, "wandb": _wandb, "swanlab": _swanlab, "none": None}


def check_report_to(names: list[str]) -> None:
    """Unknown tracker names -> ConfigError with the nearest name."""
    for name in names:
        if name not in TRACKERS:
            raise ConfigError(f"key 'report_to': unknown tracker '{name}'{suggest(name, TRACKERS)}; "
                              f"known: {', '.join(TRACKERS)}")


def setup_trackers(cfg) -> list[str]:
    """Prepare every tracker in ``report_to``; returns the names handed to the Trainer."""
    names = [n for n in cfg.train.report_to if n != "none"]
    check_report_to(names)
    out = Path(cfg.train.output_dir).resolve()
    for name in names:
        TRACKERS[name](out, cfg)
    return names
