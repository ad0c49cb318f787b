"""Trainer callbacks: ``trainer_log.jsonl``, progress with loss/tokens/s/ETA, NaN guard."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

from transformers import TrainerCallback

from ..errors import TunesmithError


def peak_memory_mb() -> float:
    """Peak GPU memory if on CUDA, else the process's peak RSS, in MiB."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class NonFiniteLoss(TunesmithError):
    """Training produced NaN/inf."""


class LogCallback(TrainerCallback):
    """One JSON line per log step and a compact progress line on stderr."""

    def __init__(self, output_dir: str, tokens_per_step: float | None = None, quiet: bool = False):
        self.path = Path(output_dir) / "trainer_log.jsonl"
        self.start = None
        self.quiet = quiet

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.time()
        self.start_step = state.global_step
        if state.is_world_process_zero and state.global_step == 0:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text("", encoding="utf-8")

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        elapsed = time.time() - self.start
        done = max(state.global_step - self.start_step, 1)
        remaining = elapsed / done * (state.max_steps - state.global_step)
        record = {"step": state.global_step, "total_steps": state.max_steps,
                  "epoch": round(state.epoch or 0, 4), **logs,
                  "tokens_seen": state.num_input_tokens_seen,
                  "elapsed_s": round(elapsed, 2), "remaining_s": round(remaining, 2),
                  "peak_mem_mb": round(peak_memory_mb(), 1)}
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        if not self.quiet and "loss" in logs:
            tps = state.num_input_tokens_seen / elapsed if elapsed else 0
            print(f"step {state.global_step}/{state.max_steps}  loss {logs['loss']:.4f}  "
                  f"lr {logs.get('learning_rate', 0):.2e}  {tps:.0f} tok/s  "
                  f"eta {remaining:.0f}s", file=sys.stderr, flush=True)


class NanGuard(TrainerCallback):
    """Stop at the first non-finite logged loss (``nan_policy: stop``)."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            raise NonFiniteLoss(f"loss became {loss} at step {state.global_step}: the learning "
                                f"rate ({args.learning_rate}) is likely too high, or the data has "
                                "rows with extreme lengths; no checkpoint of this state was saved")
