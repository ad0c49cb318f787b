"""Freeze tuning: train only some decoder layers (and chosen modules); a full model is saved.

LLaMA-Factory's keys and meaning: ``freeze_trainable_layers`` N > 0 trains the last N layers,
N < 0 the first |N|; ``freeze_trainable_modules`` is ``all`` or module names inside a layer
(``mlp``, ``self_attn``, ``mlp.down_proj``); ``freeze_extra_modules`` trains modules outside the
layers too (``embed_tokens``, ``lm_head``, ``norm``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..model.checkpointing import checkpoint_mode
from . import register_method

if TYPE_CHECKING:
    from ..config import RunConfig


@dataclass
class FreezeParams:
    freeze_trainable_layers: int = 2
    freeze_trainable_modules: list[str] | None = None  # None or ["all"]: the whole layer
    freeze_extra_modules: list[str] | None = None

    def check(self) -> None:
        if self.freeze_trainable_layers == 0:
            raise ConfigError("key 'freeze_trainable_layers': must be non-zero (N > 0: the last N "
                              "layers, N < 0: the first |N| layers)")


def decoder_layers(model):
    """``(prefix, n)``: the qualified name of the decoder layer list and its length."""
    import torch

    n = getattr(model.config, "num_hidden_layers", None)
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == n:
            return name, n
    raise ConfigError(f"method 'freeze': cannot find the {n} decoder layers of this "
                      f"{type(model).__name__}")


def _layer_ids(count: int, n_layers: int) -> list[int]:
    if abs(count) > n_layers:
        raise ConfigError(f"key 'freeze_trainable_layers': {count} but the model has only "
                          f"{n_layers} layers")
    return list(range(n_layers - count, n_layers)) if count > 0 else list(range(-count))


def _check_names(wanted, available, key: str) -> None:
    missing = [w for w in wanted if w not in available]
    if missing:
        raise ConfigError(f"key '{key}': no module named {', '.join(missing)}; this model has: "
                          f"{', '.join(sorted(available))}")


def trainable_prefixes(model, params: FreezeParams) -> list[str]:
    """Parameter-name prefixes that train (layer modules and extra top-level modules)."""
    prefix, n = decoder_layers(model)
    layers = model.get_submodule(prefix)
    modules = params.freeze_trainable_modules
    inner = {name for name, _ in layers[0].named_modules() if name}
    if modules and modules != ["all"]:
        _check_names(modules, inner, "freeze_trainable_modules")
    parts = [""] if not modules or modules == ["all"] else [f"{m}." for m in modules]
    out = [f"{prefix}.{i}.{p}" for i in _layer_ids(params.freeze_trainable_layers, n) for p in parts]
    extras = params.freeze_extra_modules or []
    names = {name.rsplit(".", 1)[-1]: name for name, _ in model.named_modules()
             if name and not name.startswith(f"{prefix}.")}
    _check_names(extras, names, "freeze_extra_modules")
    return out + [f"{names[e]}." for e in extras]


@register_method("freeze", FreezeParams, saves_adapter=False, mergeable=False,
                 summary="train only the last (or first) N layers and chosen modules; full model saved")
def apply_freeze(model, params: FreezeParams, cfg: RunConfig):
    """Set ``requires_grad`` on the chosen layers/modules only."""
    prefixes = trainable_prefixes(model, params)
    for name, p in model.named_parameters():
        p.requires_grad_(any(name.startswith(pre) for pre in prefixes))
    if checkpoint_mode(cfg.train.gradient_checkpointing):
        model.enable_input_require_grads()
    return model
