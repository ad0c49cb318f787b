"""P-tuning: soft prompts produced by a small prompt encoder (MLP or LSTM; peft PromptEncoder).

Not mergeable: the virtual tokens are extra inputs, not a weight delta.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..config_parse import check_ranges
from ..errors import ConfigError
from . import register_method, wrap_peft
from .prefix import check_virtual_tokens

if TYPE_CHECKING:
    from ..config import RunConfig


@dataclass
class PTuningParams:
    num_virtual_tokens: int = 20
    encoder_reparameterization_type: str = "MLP"
    encoder_hidden_size: int | None = None  # default: the model's hidden size
    encoder_num_layers: int = 2
    encoder_dropout: float = 0.0

    def check(self) -> None:
        check_virtual_tokens(self.num_virtual_tokens)
        self.encoder_reparameterization_type = self.encoder_reparameterization_type.upper()
        if self.encoder_reparameterization_type not in ("MLP", "LSTM"):
            raise ConfigError(f"key 'encoder_reparameterization_type': must be MLP or LSTM, got "
                              f"{self.encoder_reparameterization_type}")
        check_ranges(self, positive=("encoder_hidden_size",), at_least_one=("encoder_num_layers",),
                     fraction=("encoder_dropout",))


@register_method("ptuning", PTuningParams, mergeable=False,
                 summary="soft prompts from a small MLP/LSTM prompt encoder (P-tuning)")
def apply_ptuning(model, params: PTuningParams, cfg: RunConfig):
    """Wrap ``model`` with peft's ``PromptEncoderConfig``."""
    from peft import PromptEncoderConfig

    config = PromptEncoderConfig(
        task_type="CAUSAL_LM", num_virtual_tokens=params.num_virtual_tokens,
        encoder_reparameterization_type=params.encoder_reparameterization_type,
        encoder_hidden_size=params.encoder_hidden_size or model.config.hidden_size,
        encoder_num_layers=params.encoder_num_layers, encoder_dropout=params.encoder_dropout)
    return wrap_peft(model, config, "ptuning")
