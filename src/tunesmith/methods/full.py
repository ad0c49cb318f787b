"""Full fine-tuning: every parameter trains; a complete HF model is saved."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import register_method

if TYPE_CHECKING:
    from ..config import RunConfig


@dataclass
class FullParams:
    def check(self) -> None:
        """No parameters: everything trains."""


@register_method("full", FullParams, saves_adapter=False, mergeable=False,
                 summary="all parameters train (needs the most memory)")
def apply_full(model, params: FullParams, cfg: RunConfig):
    """Make every parameter trainable."""
    for p in model.parameters():
        p.requires_grad_(True)
    return model
