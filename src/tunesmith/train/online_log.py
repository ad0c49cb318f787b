"""What online RL records: per-step metrics, sampled completions, the reward curves.

Metrics gathered during a step (rewards per function, KL, clip ratios, completion lengths) are
averaged over the steps since the last log line and added to it, so ``trainer_log.jsonl`` holds
them beside the loss. Every ``log_completions_steps`` steps the step's completions, with their
rewards and advantages, go to ``completions.jsonl``; ``training_rewards.png`` plots each reward
function's mean (with its std band) and the weighted total.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

from .records import read_log


class StepMetrics:
    """Values gathered since the last log line, averaged when read."""

    def __init__(self):
        self.values: dict[str, list[float]] = defaultdict(list)

    def add(self, **metrics: float) -> None:
        for key, value in metrics.items():
            self.values[key].append(float(value))

    def pop_means(self) -> dict[str, float]:
        means = {k: round(sum(v) / len(v), 6) for k, v in self.values.items() if v}
        self.values.clear()
        return means


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and Bessel-corrected std (0 for a single value)."""
    n = len(values)
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    return mean, math.sqrt(var)


class CompletionLog:
    """``completions.jsonl``: one line per sampled completion every ``every`` steps."""

    def __init__(self, output_dir: str | Path, every: int):
        self.path = Path(output_dir) / "completions.jsonl"
        self.every = every

    def due(self, step: int) -> bool:
        return self.every > 0 and (step == 1 or step % self.every == 0)

    def write(self, step: int, rows: list[dict]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps({"step": step, **row}, ensure_ascii=False) + "\n")


def plot_rewards(output_dir: str | Path, names: list[str]) -> Path | None:
    """``training_rewards.png``: each function's mean reward (std band) and the total."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in read_log(output_dir) if "reward" in r]
    if not rows:
        return None
    steps = [r["step"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    for name in names:
        mean = [r.get(f"rewards/{name}/mean", math.nan) for r in rows]
        std = [r.get(f"rewards/{name}/std", 0.0) for r in rows]
        ax.plot(steps, mean, label=name)
        ax.fill_between(steps, [m - s for m, s in zip(mean, std)],
                        [m + s for m, s in zip(mean, std)], alpha=0.15)
    if len(names) > 1:
        ax.plot(steps, [r["reward"] for r in rows], label="total (weighted)", color="black")
    ax.set_xlabel("step")
    ax.set_ylabel("reward")
    ax.set_title(f"rewards of {Path(output_dir).name}")
    ax.grid(alpha=0.3)
    ax.legend()
    path = Path(output_dir) / "training_rewards.png"
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
