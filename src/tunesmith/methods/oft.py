"""OFT: orthogonal fine-tuning, a learned block-diagonal rotation of each weight (peft OFT).
It preserves the angles between neurons; mergeable."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..config_parse import check_ranges
from . import register_method, wrap_peft
from .lora import target_modules

if TYPE_CHECKING:
    from ..config import RunConfig


@dataclass
class OftParams:
    oft_block_size: int = 32  # must divide the targeted layers' input size
    oft_target: list[str] | None = None  # None or ["all"]: every linear layer but lm_head
    oft_module_dropout: float = 0.0
    oft_coft: bool = False  # constrained OFT

    def check(self) -> None:
        check_ranges(self, positive_int=("oft_block_size",), fraction=("oft_module_dropout",))


@register_method("oft", OftParams, summary="learned block-diagonal rotations of the weights (OFT)")
def apply_oft(model, params: OftParams, cfg: RunConfig):
    from peft import OFTConfig

    config = OFTConfig(task_type="CAUSAL_LM", r=0, oft_block_size=params.oft_block_size,
                       target_modules=target_modules(params.oft_target),
                       module_dropout=params.oft_module_dropout, coft=params.oft_coft)
    return wrap_peft(model, config, "oft")
