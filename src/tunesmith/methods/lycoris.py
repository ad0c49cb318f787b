"""LoHa and LoKr (the LyCORIS family, through peft): low-rank updates built from Hadamard or
Kronecker products, which reach a higher effective rank than LoRA for the same parameters.
Mergeable."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..config_parse import check_ranges
from . import register_method, wrap_peft
from .lora import target_modules

if TYPE_CHECKING:
    from ..config import RunConfig


@dataclass
class LycorisParams:
    lycoris_rank: int = 8
    lycoris_alpha: float = 8.0
    lycoris_target: list[str] | None = None  # None or ["all"]: every linear layer but lm_head
    rank_dropout: float = 0.0
    module_dropout: float = 0.0

    def check(self) -> None:
        check_ranges(self, positive_int=("lycoris_rank",), positive=("lycoris_alpha",),
                     fraction=("rank_dropout", "module_dropout"))


def _build(config_cls, params: LycorisParams):
    return config_cls(task_type="CAUSAL_LM", r=params.lycoris_rank, alpha=params.lycoris_alpha,
                      rank_dropout=params.rank_dropout, module_dropout=params.module_dropout,
                      target_modules=target_modules(params.lycoris_target))


@register_method("loha", LycorisParams, summary="low-rank Hadamard-product updates (LyCORIS LoHa)")
def apply_loha(model, params: LycorisParams, cfg: RunConfig):
    from peft import LoHaConfig

    return wrap_peft(model, _build(LoHaConfig, params), "loha")


@register_method("lokr", LycorisParams, summary="low-rank Kronecker-product updates (LyCORIS LoKr)")
def apply_lokr(model, params: LycorisParams, cfg: RunConfig):
    from peft import LoKrConfig

    return wrap_peft(model, _build(LoKrConfig, params), "lokr")
