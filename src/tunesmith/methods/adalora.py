"""AdaLoRA: LoRA whose ranks are re-allocated during training by importance (peft AdaLoRA).

The rank budget shrinks from ``adalora_init_r`` to ``adalora_target_r`` per layer on average
between step ``adalora_tinit`` and ``total_step - adalora_tfinal``, updating every
``adalora_delta_t`` steps. peft needs ``update_and_allocate(step)`` after every optimizer step
and before the gradients are cleared: ``_adalora_budget.AdaLoraBudget`` does it from the
Trainer's ``on_optimizer_step`` hook. ``adalora_total_step`` defaults to the run's total optimizer steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..config_parse import check_ranges
from ..errors import ConfigError
from ..model.checkpointing import checkpoint_mode
from . import register_method, wrap_peft
from .lora import target_modules

if TYPE_CHECKING:
    from ..config import RunConfig


@dataclass
class AdaLoraParams:
    adalora_init_r: int = 12
    adalora_target_r: int = 8
    adalora_tinit: int = 0
    adalora_tfinal: int = 0
    adalora_delta_t: int = 1
    adalora_total_step: int | None = None  # None: the run's total optimizer steps
    adalora_beta1: float = 0.85
    adalora_beta2: float = 0.85
    adalora_orth_reg_weight: float = 0.5
    lora_alpha: float | None = None  # None: peft's default (8)
    lora_dropout: float = 0.0
    lora_target: list[str] | None = None

    def check(self) -> None:
        check_ranges(self, at_least_one=("adalora_init_r", "adalora_target_r", "adalora_delta_t"))
        if self.adalora_target_r > self.adalora_init_r:
            raise ConfigError(f"key 'adalora_target_r': {self.adalora_target_r} exceeds "
                              f"adalora_init_r {self.adalora_init_r} (the budget only shrinks)")
        check_ranges(self,
                     non_negative=("adalora_tinit", "adalora_tfinal", "adalora_orth_reg_weight"),
                     fraction=("adalora_beta1", "adalora_beta2", "lora_dropout"))
        if self.adalora_total_step is not None:
            check_schedule(self, self.adalora_total_step)

    @property
    def alpha(self) -> float:
        """``lora_alpha``, or peft's AdaLoRA default 8 when unset."""
        return self.lora_alpha if self.lora_alpha is not None else 8


def check_schedule(params: AdaLoraParams, total: int) -> None:
    """The budgeting phase must exist: tinit < total_step - tfinal."""
    if params.adalora_tinit >= total - params.adalora_tfinal:
        raise ConfigError(f"AdaLoRA schedule: adalora_tinit ({params.adalora_tinit}) must be below "
                          f"total steps ({total}) - adalora_tfinal ({params.adalora_tfinal})")


def build_adalora_config(params: AdaLoraParams, total_step: int):
    from peft import AdaLoraConfig

    return AdaLoraConfig(
        task_type="CAUSAL_LM", init_r=params.adalora_init_r, target_r=params.adalora_target_r,
        tinit=params.adalora_tinit, tfinal=params.adalora_tfinal, deltaT=params.adalora_delta_t,
        beta1=params.adalora_beta1, beta2=params.adalora_beta2,
        orth_reg_weight=params.adalora_orth_reg_weight, total_step=total_step,
        lora_alpha=params.alpha,
        lora_dropout=params.lora_dropout, target_modules=target_modules(params.lora_target))


def adalora_callbacks(model, params: AdaLoraParams, cfg: RunConfig) -> list:
    # A private module (the registry does not import it): it loads the Trainer stack, which
    # only training needs.
    from ._adalora_budget import AdaLoraBudget

    return [AdaLoraBudget(model, params)]


@register_method("adalora", AdaLoraParams, callbacks=adalora_callbacks,
                 summary="LoRA with ranks re-allocated by importance during training (AdaLoRA)")
def apply_adalora(model, params: AdaLoraParams, cfg: RunConfig):
    """Wrap ``model`` with peft's ``AdaLoraConfig`` (the Trainer must use its callback)."""
    total = params.adalora_total_step or cfg.train.max_steps
    if total <= 0:  # provisional; AdaLoraBudget sets the real length at train begin
        total = params.adalora_tinit + params.adalora_tfinal + 1
    if checkpoint_mode(cfg.train.gradient_checkpointing):
        model.enable_input_require_grads()
    return wrap_peft(model, build_adalora_config(params, total), "adalora")
