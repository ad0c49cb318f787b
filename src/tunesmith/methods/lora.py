"""LoRA (and its variants: rsLoRA, DoRA, PiSSA/OLoRA/LoftQ init) through ``peft.LoraConfig``."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from . import register_method


@dataclass
class LoraParams:
    lora_rank: int = 8
    lora_alpha: float | None = None  # None: 2 x rank (LLaMA-Factory's default)
    lora_dropout: float = 0.0
    lora_target: list[str] | None = None  # None or ["all"]: every linear layer but lm_head
    lora_bias: str = "none"
    use_rslora: bool = False
    use_dora: bool = False
    init_lora_weights: str = "true"
    modules_to_save: list[str] | None = None
    layers_to_transform: list[int] | None = None
    layers_pattern: str | None = None
    layer_replication: list | None = None
    rank_pattern: dict | None = None
    alpha_pattern: dict | None = None

    def check(self) -> None:
        if self.lora_rank <= 0:
            raise ConfigError(f"key 'lora_rank': must be a positive integer, got {self.lora_rank}")
        if not 0 <= self.lora_dropout < 1:
            raise ConfigError(f"key 'lora_dropout': must be in [0, 1), got {self.lora_dropout}")
        if self.lora_bias not in ("none", "all", "lora_only"):
            raise ConfigError(f"key 'lora_bias': must be none, all or lora_only, got {self.lora_bias}")


def target_modules(targets: list[str] | None):
    """peft's ``target_modules``: ``all-linear`` (excludes lm_head), names, or a regex string."""
    if not targets or targets in (["all"], ["all-linear"]):
        return "all-linear"
    if len(targets) == 1 and any(ch in targets[0] for ch in "*.^$|()["):
        return targets[0]
    return list(targets)


def _init_weights(value: str):
    lowered = str(value).lower()
    return {"true": True, "false": False}.get(lowered, lowered)


def build_lora_config(params: LoraParams, task_type: str = "CAUSAL_LM"):
    """A ``peft.LoraConfig`` from our parameters."""
    from peft import LoraConfig

    return LoraConfig(
        task_type=task_type,
        r=params.lora_rank,
        lora_alpha=params.lora_alpha if params.lora_alpha is not None else 2 * params.lora_rank,
        lora_dropout=params.lora_dropout,
        target_modules=target_modules(params.lora_target),
        bias=params.lora_bias,
        use_rslora=params.use_rslora,
        use_dora=params.use_dora,
        init_lora_weights=_init_weights(params.init_lora_weights),
        modules_to_save=params.modules_to_save,
        layers_to_transform=params.layers_to_transform,
        layers_pattern=params.layers_pattern,
        layer_replication=params.layer_replication,
        rank_pattern=params.rank_pattern or {},
        alpha_pattern=params.alpha_pattern or {},
    )


@register_method("lora", LoraParams, summary="low-rank adapters on linear layers (peft LoRA)")
def apply_lora(model, params: LoraParams, cfg):
    """Wrap ``model`` with a LoRA adapter; returns the ``PeftModel``."""
    from peft import get_peft_model

    if cfg.train.gradient_checkpointing:
        model.enable_input_require_grads()
    return get_peft_model(model, build_lora_config(params))
