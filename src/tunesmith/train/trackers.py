"""Experiment trackers (``report_to``): tensorboard, swanlab, wandb — offline when no account.

The HF Trainer's own integrations do the logging; this module only checks the package is
installed and points each tracker at the run's output directory through the environment
variables those integrations read. Without an API key, W&B runs offline and SwanLab locally,
so ``report_to: wandb`` never asks for a login.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..config_parse import suggest
from ..errors import ConfigError, require

if TYPE_CHECKING:
    from ..config import RunConfig


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
    # swanlab 0.10 reads nested settings from SWANLAB_<FIELD>_<SUB>: the project name is
    # SWANLAB_PROJECT_NAME (a plain SWANLAB_PROJECT would be parsed as the whole project object).
    os.environ.pop("SWANLAB_PROJECT", None)
    os.environ["SWANLAB_PROJECT_NAME"] = cfg.train.tracker_project or "tunesmith"


TRACKERS = {"tensorboard": _tensorboard, "wandb": _wandb, "swanlab": _swanlab, "none": None}
# Trackers whose Trainer integration we add ourselves (see swanlab_callback), not via report_to.
OWN_CALLBACK = ("swanlab",)


class _SwanLabShim:
    """The swanlab module, with ``get_run()`` returning None when no run is active (swanlab
    0.10 raises RuntimeError there, which transformers' SwanLabCallback does not expect)."""

    def __init__(self, module):
        self._module = module

    def __getattr__(self, name):
        return getattr(self._module, name)

    def get_run(self):
        try:
            return self._module.get_run()
        except RuntimeError:
            return None


def swanlab_callback():
    """transformers' SwanLabCallback over the shim; finishes its run at train end so a second
    run in the same process (web UI, sweep) starts a new one."""
    from transformers.integrations import SwanLabCallback

    class Callback(SwanLabCallback):
        def __init__(self):
            super().__init__()
            self._swanlab = _SwanLabShim(self._swanlab)

        def on_train_end(self, args, state, control, **kwargs):
            super().on_train_end(args, state, control, **kwargs)
            if state.is_world_process_zero and self._swanlab.get_run() is not None:
                self._swanlab.finish()

    return Callback()


def tracker_callbacks(cfg: RunConfig) -> list:
    """Callbacks for the trackers in OWN_CALLBACK that ``report_to`` names."""
    return [swanlab_callback()] if "swanlab" in cfg.train.report_to else []


def check_report_to(names: list[str]) -> None:
    """Unknown tracker names -> ConfigError with the nearest name."""
    for name in names:
        if name not in TRACKERS:
            raise ConfigError(f"key 'report_to': unknown tracker '{name}'{suggest(name, TRACKERS)}; "
                              f"known: {', '.join(TRACKERS)}")


def setup_trackers(cfg: RunConfig) -> list[str]:
    """Prepare every tracker in ``report_to``; returns the names handed to the Trainer."""
    names = [n for n in cfg.train.report_to if n != "none"]
    check_report_to(names)
    out = Path(cfg.train.output_dir).resolve()
    for name in names:
        TRACKERS[name](out, cfg)
    return names
