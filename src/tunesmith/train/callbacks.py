"""Trainer callbacks: ``trainer_log.jsonl`` and a progress bar with loss, tokens/s and ETA."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

from transformers import TrainerCallback


def peak_memory_mb() -> float:
    """Peak GPU memory if on CUDA, else the process's peak RSS, in MiB."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _clean(value):
    """JSON has no NaN/inf: write them as null (the NaN guard reports them by name)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# HF's own keys -> the names trainer_log.jsonl uses.
RENAME = {"learning_rate": "lr", "num_input_tokens_seen": "tokens_seen"}


class LogCallback(TrainerCallback):
    """One JSON line per log step: step, epoch, loss, lr, grad_norm, tokens_seen, time, memory.

    On resume, lines past the checkpoint's step (logged before the crash, then redone) are
    dropped so the file reads as one uninterrupted run.
    """

    def __init__(self, output_dir: str):
        self.path = Path(output_dir) / "trainer_log.jsonl"
        self.start = time.time()
        self.start_step = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.time()
        self.start_step = state.global_step
        if state.is_world_process_zero:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._truncate(state.global_step)

    def _truncate(self, step: int) -> None:
        kept = []
        if step and self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    if json.loads(line).get("step", 0) <= step:
                        kept.append(line)
                except json.JSONDecodeError:  # a line cut by a crash
                    continue
        self.path.write_text("".join(x + "\n" for x in kept), encoding="utf-8")

    def record(self, state, logs: dict) -> dict:
        elapsed = time.time() - self.start
        done = max(state.global_step - self.start_step, 1)
        remaining = elapsed / done * max(state.max_steps - state.global_step, 0)
        body = {RENAME.get(k, k): _clean(v) for k, v in logs.items()
                if not k.startswith("train_") or k == "train_loss"}
        return {"step": state.global_step, "total_steps": state.max_steps,
                "epoch": round(state.epoch or 0, 4), **body,
                "tokens_seen": state.num_input_tokens_seen,
                "elapsed_s": round(elapsed, 2), "remaining_s": round(remaining, 2),
                "peak_mem_mb": round(peak_memory_mb(), 1)}

    def on_step_end(self, args, state, control, **kwargs):
        # The last step is always logged, whatever logging_steps is: a run's final loss and a
        # short run's curve would otherwise be missing (HF logs only multiples of the interval).
        if state.global_step >= state.max_steps:
            control.should_log = True

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(self.record(state, logs)) + "\n")
            fh.flush()


class ProgressCallback(TrainerCallback):
    """A tqdm bar on stderr: step/total, loss, tokens/s and ETA (replaces HF's dict printing)."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.bar = None
        self.loss = None
        self.start = time.time()
        self.start_tokens = 0

    def on_train_begin(self, args, state, control, **kwargs):
        if not (self.enabled and state.is_world_process_zero):
            return
        from tqdm.auto import tqdm

        self.start, self.start_tokens = time.time(), state.num_input_tokens_seen
        self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc="train",
                        unit="step", file=sys.stderr, dynamic_ncols=True, mininterval=0.5)

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is None:
            return
        elapsed = max(time.time() - self.start, 1e-9)
        tps = (state.num_input_tokens_seen - self.start_tokens) / elapsed
        post = {"tok/s": f"{tps:.0f}"}
        if self.loss is not None:
            post = {"loss": f"{self.loss:.4f}", **post}
        self.bar.set_postfix(post, refresh=False)
        self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.bar is not None and logs and "eval_loss" in logs:
            self.bar.write(f"step {state.global_step}: eval_loss {logs['eval_loss']:.4f}",
                           file=sys.stderr)
        if logs and isinstance(logs.get("loss"), float):
            self.loss = logs["loss"]

    def on_train_end(self, args, state, control, **kwargs):
        self.close()

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
