"""VeRA: one pair of frozen random projections shared by all layers, with small trained
scaling vectors per layer (far fewer parameters than LoRA). Mergeable."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..config_parse import check_ranges
from . import register_method, wrap_peft
from .lora import target_modules

if TYPE_CHECKING:
    from ..config import RunConfig


@dataclass
class VeraParams:
    vera_rank: int = 256
    vera_target: list[str] | None = None  # None or ["all"]: every linear layer but lm_head
    vera_dropout: float = 0.0
    vera_d_initial: float = 0.1

    def check(self) -> None:
        check_ranges(self, positive_int=("vera_rank",), fraction=("vera_dropout",),
                     positive=("vera_d_initial",))


@register_method("vera", VeraParams, summary="shared random projections + per-layer scaling (VeRA)")
def apply_vera(model, params: VeraParams, cfg: RunConfig):
    from peft import VeraConfig

    config = VeraConfig(task_type="CAUSAL_LM", r=params.vera_rank,
                        target_modules=target_modules(params.vera_target),
                        vera_dropout=params.vera_dropout, d_initial=params.vera_d_initial,
                        save_projection=True)  # the adapter file is self-contained
    return wrap_peft(model, config, "vera")
