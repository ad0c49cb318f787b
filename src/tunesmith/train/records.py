"""The run's record: loss plots, results JSON, and a README model card."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import RunConfig


def read_log(output_dir: str | Path) -> list[dict]:
    path = Path(output_dir) / "trainer_log.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def plot_loss(output_dir: str | Path, key: str = "loss") -> Path | None:
    """``training_loss.png`` (or ``training_eval_loss.png``) from trainer_log.jsonl."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in read_log(output_dir) if key in r]
    if not rows:
        return None
    name = "training_loss.png" if key == "loss" else f"training_{key.replace('/', '_')}.png"
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([r["step"] for r in rows], [r[key] for r in rows], marker="." if len(rows) < 50 else None)
    ax.set_xlabel("step")
    ax.set_ylabel(key)
    ax.set_title(f"{key} of {Path(output_dir).name}")
    ax.grid(alpha=0.3)
    path = Path(output_dir) / name
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_model_card(output_dir: str | Path, cfg: RunConfig, metrics: dict) -> Path:
    """A README.md naming base model, data, method, hyperparameters and final metrics."""
    t, m = cfg.train, cfg.method
    lines = [
        f"# {Path(output_dir).name}", "",
        f"Fine-tuned with tunesmith from `{cfg.model.model_name_or_path}`.", "",
        "| | |", "|---|---|",
        f"| base model | `{cfg.model.model_name_or_path}` |",
        f"| data | {', '.join(cfg.data.dataset or [])} (train_on: {cfg.data.train_on}, "
        f"cutoff_len: {cfg.data.cutoff_len}) |",
        f"| method | {m.method} {json.dumps(m.params) if m.params else ''} |",
        f"| stage | {m.stage} {json.dumps(m.stage_params) if m.stage_params else ''} |",
        f"| learning rate | {t.learning_rate} ({t.lr_scheduler_type}) |",
        f"| epochs / max steps | {t.num_train_epochs} / {t.max_steps} |",
        f"| batch | {t.per_device_train_batch_size} x accumulation {t.gradient_accumulation_steps} |",
        f"| warmup | {t.warmup_steps or t.warmup_ratio} |",
        f"| optimizer | {t.optim} (weight decay {t.weight_decay}, max grad norm {t.max_grad_norm}) |",
        f"| seed | {t.seed} |",
        f"| precision | {'bf16' if t.bf16 else 'fp16' if t.fp16 else cfg.model.dtype} |",
        "", "## Final metrics", "",
    ]
    lines += [f"- {k}: {v}" for k, v in sorted(metrics.items())]
    lines += ["", "Config: `tunesmith_config.yaml` (rerun with `tunesmith train tunesmith_config.yaml`)."]
    path = Path(output_dir) / "README.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
