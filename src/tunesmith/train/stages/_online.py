"""What the online-RL stages (grpo, ppo) share: their rules, data plumbing and reference."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...errors import ConfigError

if TYPE_CHECKING:
    from ...config import RunConfig


PROMPT_LEARNING = ("prefix", "prompt", "ptuning")  # virtual tokens: not scored by the decoder


def check_online(cfg: RunConfig, stage: str) -> None:
    """Rules every online stage shares: no evaluation pass, no streaming, no prompt-learning."""
    if cfg.data.val_size or cfg.data.eval_dataset or cfg.train.eval_strategy != "no":
        raise ConfigError(f"stage: {stage} has no evaluation pass: remove val_size, "
                          "eval_dataset and eval_strategy")
    if cfg.data.streaming:
        raise ConfigError(f"stage: {stage} reads its prompts up front: remove streaming")
    if cfg.method.method in PROMPT_LEARNING:
        raise ConfigError(f"stage: {stage} does not train method '{cfg.method.method}' (virtual "
                          "tokens); use lora, qlora, full, freeze or another weight method")


def reference_model(cfg: RunConfig, model):
    """A frozen copy of the base for a policy without an adapter to switch off, else None."""
    if hasattr(model, "disable_adapter"):
        return None
    from ...model.load import resolve_model_path
    from ..model import load_for_training

    ref = load_for_training(cfg, resolve_model_path(cfg.model.model_name_or_path,
                                                    model_cfg=cfg.model))
    return ref.eval().requires_grad_(False)


def prompt_collator(cfg: RunConfig, tokenizer):
    from ..online_data import collate_prompts

    return collate_prompts


def prompt_dataset(examples, cfg: RunConfig | None = None):
    from ..online_data import PromptDataset

    return PromptDataset(examples)


# The data half of a stage on prompts: ``Stage(name=..., **PROMPT_DATA, ...)``.
PROMPT_DATA = {"data_kind": "prompts", "collator": prompt_collator, "dataset": prompt_dataset}
