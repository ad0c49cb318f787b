"""``adapter`` (a Houlsby/Pfeiffer bottleneck adapter): not offered, on purpose.

peft 0.21 has no bottleneck adapter (down-projection, non-linearity, up-projection inserted
after a sub-layer); its "adaption_prompt" is LLaMA-Adapter, a gated prompt method. tunesmith
wraps peft and does not re-implement methods, so ``method: adapter`` is a clear error that
names the closest real options.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import ConfigError
from . import register_method

if TYPE_CHECKING:
    from ..config import RunConfig


MESSAGE = ("method 'adapter' (a bottleneck adapter) is not available: peft, which tunesmith "
           "wraps, has no bottleneck adapter. Closest real options: method: lora (a parallel "
           "low-rank bottleneck, down- then up-projection, mergeable), method: ia3 (fewest "
           "parameters), method: prefix (P-tuning v2); for Houlsby/Pfeiffer adapters use the "
           "'adapters' (AdapterHub) library")


@dataclass
class AdapterParams:
    def check(self) -> None:
        raise ConfigError(MESSAGE)


@register_method("adapter", AdapterParams, mergeable=False,
                 summary="not available (peft has no bottleneck adapter): use lora, ia3 or prefix")
def apply_adapter(model, params: AdapterParams, cfg: RunConfig):
    """Always refuses; see the module docstring."""
    raise ConfigError(MESSAGE)
