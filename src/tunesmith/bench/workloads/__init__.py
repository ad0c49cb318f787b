"""The bench's workloads: data shipped here, and the settings every tool trains them with.

All workloads: the bundled SmolLM2-135M, LoRA r=8 (alpha 16, dropout 0) on every linear layer
but lm_head, batch 8, lr 5e-4 cosine, no warmup, seed 42, rows in the file's order (no shuffle:
every tool sees the same batches). ``steps`` > 0 is the partial mode: the first N optimizer steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = {"lora_rank": 8, "lora_alpha": 16, "lora_dropout": 0.0, "batch": 8,
          "learning_rate": 5e-4, "lr_scheduler_type": "cosine", "seed": 42}


@dataclass(frozen=True)
class Workload:
    name: str
    description: str
    file: str
    epochs: float
    cutoff_len: int
    placeholders: dict = field(default_factory=dict)
    stage: str = "sft"  # dpo: rows are chosen/rejected pairs (bench/prepare_pairs.py)
    batch: int = SHARED["batch"]  # rows (pairs for dpo) per step
    stage_keys: dict = field(default_factory=dict)  # e.g. pref_beta, pref_loss

    @property
    def path(self) -> Path:
        return HERE / self.file


WORKLOADS = {
    "W1": Workload("W1", "identity self-cognition chats (80 rows, 3 epochs)", "identity.json", 3.0,
                   512, {"name": "Nova", "author": "Tunesmith Labs"}),
    "W2": Workload("W2", "instructions, 500 rows, prompt+response ~20-1000 tokens (seeded)",
                   "w2.json", 1.0, 1024),
    "W3": Workload("W3", "multi-turn conversations, 200 rows of 2-5 exchanges (seeded)",
                   "w3.json", 1.0, 1024),
    "W4": Workload("W4", "sigmoid DPO (beta 0.1) on 32 preference pairs like LLaMA-Factory's "
                   "dpo_en_demo, 4 pairs per step (seeded)", "w4.json", 1.0, 1024, stage="dpo",
                   batch=4, stage_keys={"pref_beta": 0.1, "pref_loss": "sigmoid"}),
}


def get_workload(name: str) -> Workload:
    from ...errors import ConfigError

    key = name.upper()
    if key not in WORKLOADS:
        raise ConfigError(f"--workload: '{name}' is not one of {', '.join(WORKLOADS)}")
    return WORKLOADS[key]


def train_overrides(w: Workload, output_dir: Path, steps: int = 0, dtype: str = "auto") -> dict:
    """tunesmith config keys that train workload ``w`` (the same settings the peers get)."""
    keys = {"model_name_or_path": "smollm2-135m", "dataset": str(w.path),
            "cutoff_len": w.cutoff_len, "num_train_epochs": w.epochs,
            "max_steps": steps if steps > 0 else -1, "method": "lora", "stage": w.stage,
            **w.stage_keys,
            "lora_rank": SHARED["lora_rank"], "lora_alpha": SHARED["lora_alpha"],
            "lora_dropout": SHARED["lora_dropout"], "lora_target": "all",
            "per_device_train_batch_size": w.batch,
            "learning_rate": SHARED["learning_rate"],
            "lr_scheduler_type": SHARED["lr_scheduler_type"], "seed": SHARED["seed"],
            "output_dir": str(output_dir), "logging_steps": 1, "save_strategy": "no",
            "plot_loss": False, "do_train": True, "dtype": dtype}
    if w.placeholders:
        keys["placeholders"] = dict(w.placeholders)
    return keys
