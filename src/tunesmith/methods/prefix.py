"""Prefix tuning / P-tuning v2: trainable key/value prefixes in every layer (peft PrefixTuning).

With ``prefix_projection`` the prefixes come from an MLP (Li & Liang's reparameterisation);
without it they are trained directly (P-tuning v2). Not mergeable: the prefixes are extra
attention inputs, not a weight delta.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..config_parse import check_ranges
from ..errors import ConfigError
from . import register_method, wrap_peft

if TYPE_CHECKING:
    from ..config import RunConfig


@dataclass
class PrefixParams:
    num_virtual_tokens: int = 20
    prefix_projection: bool = False
    encoder_hidden_size: int | None = None  # MLP width with prefix_projection (default: hidden)

    def check(self) -> None:
        check_virtual_tokens(self.num_virtual_tokens)
        check_ranges(self, positive=("encoder_hidden_size",))


def check_virtual_tokens(n: int) -> None:
    if not 1 <= n <= 1024:
        raise ConfigError(f"key 'num_virtual_tokens': must be in [1, 1024], got {n}")


@register_method("prefix", PrefixParams, mergeable=False, gradient_checkpointing=False,
                 summary="trainable key/value prefixes in every layer (prefix tuning, P-tuning v2)")
def apply_prefix(model, params: PrefixParams, cfg: RunConfig):
    """Wrap ``model`` with peft's ``PrefixTuningConfig``."""
    from peft import PrefixTuningConfig

    config = PrefixTuningConfig(
        task_type="CAUSAL_LM", num_virtual_tokens=params.num_virtual_tokens,
        prefix_projection=params.prefix_projection,
        encoder_hidden_size=params.encoder_hidden_size or model.config.hidden_size)
    return wrap_peft(model, config, "prefix")
