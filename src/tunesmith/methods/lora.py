"""LoRA (and its variants: rsLoRA, DoRA, PiSSA/OLoRA/LoftQ init) through ``peft.LoraConfig``."""

from __future__ import annotations

import dataclasses
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..config_parse import check_ranges
from ..errors import ConfigError
from ..model.checkpointing import checkpoint_mode
from . import register_method, wrap_peft

if TYPE_CHECKING:
    from ..config import RunConfig


INIT_CHOICES = ("true", "false", "gaussian", "pissa", "pissa_niter_K", "olora", "loftq")
# Inits that change the base weights (residual); their adapters are converted to plain LoRA
# on save so that they load on the original base (peft's weight conversion).
MUTATING_INITS = ("pissa", "olora")
INIT_ADAPTER_DIR = "tunesmith_init_adapter"  # peft names the adapter after it: no dots


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
    loftq_bits: int = 4
    loftq_iter: int = 1
    modules_to_save: list[str] | None = None
    layers_to_transform: list[int] | None = None
    layers_pattern: str | None = None
    layer_replication: list | None = None  # [[start, end), ...] layer ranges stacked in order
    rank_pattern: dict | None = None
    alpha_pattern: dict | None = None
    trainable_token_indices: list[int] | None = None  # embedding rows trained in full (new tokens)
    loraplus_lr_ratio: float | None = None  # LoRA+: B matrices learn this many times faster
    loraplus_lr_embedding: float = 1e-6  # LoRA+: learning rate of LoRA on embedding layers

    def check(self) -> None:
        check_ranges(self, positive_int=("lora_rank",), positive=("lora_alpha",),
                     fraction=("lora_dropout",))
        if self.lora_bias not in ("none", "all", "lora_only"):
            raise ConfigError(f"key 'lora_bias': must be none, all or lora_only, got {self.lora_bias}")
        init = str(self.init_lora_weights).lower()
        if init not in INIT_CHOICES and not re.fullmatch(r"pissa_niter_\d+", init):
            raise ConfigError(f"key 'init_lora_weights': '{self.init_lora_weights}' is not one of "
                              f"{', '.join(INIT_CHOICES)} (K a number of iterations)")
        if self.loftq_bits not in (4, 8):
            raise ConfigError(f"key 'loftq_bits': must be 4 or 8, got {self.loftq_bits}")
        check_ranges(self, at_least_one=("loftq_iter",))
        if self.layers_pattern and not self.layers_to_transform:
            raise ConfigError("key 'layers_pattern' needs 'layers_to_transform' (the layer indices)")
        check_ranges(self, positive=("loraplus_lr_ratio",))
        self.layer_replication = _layer_ranges(self.layer_replication)

    @property
    def alpha(self) -> float:
        """``lora_alpha``, or LLaMA-Factory's default 2 x rank when unset."""
        return self.lora_alpha if self.lora_alpha is not None else 2 * self.lora_rank


def _layer_ranges(value):
    """``layer_replication`` as a list of [start, end) pairs (a YAML string is parsed)."""
    if value is None:
        return None
    if isinstance(value, str):
        import yaml

        value = yaml.safe_load(value)
    ok = isinstance(value, list) and all(
        isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(i, int) for i in p)
        and 0 <= p[0] < p[1] for p in value)
    if not ok:
        raise ConfigError(f"key 'layer_replication': expected [[start, end], ...] layer ranges "
                          f"with start < end, got {value!r}")
    return [list(p) for p in value]


def linear_module_names(model) -> list[str]:
    """Leaf names of the linear layers, without the output layer (what ``all-linear`` means)."""
    import torch

    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    names = {name.rsplit(".", 1)[-1] for name, mod in model.named_modules()
             if isinstance(mod, torch.nn.Linear) and mod is not output}
    return sorted(names)


def target_modules(targets: list[str] | None, model=None, explicit: bool = False):
    """peft's ``target_modules``: ``all-linear`` (excludes lm_head), names, or a regex string.

    ``explicit``: spell ``all`` out as names (peft refuses a string with layers_to_transform).
    """
    if not targets or targets in (["all"], ["all-linear"]):
        return linear_module_names(model) if explicit and model is not None else "all-linear"
    if len(targets) == 1 and any(ch in targets[0] for ch in "*.^$|()[\\"):
        return targets[0]
    return list(targets)


def _init_weights(value: str):
    lowered = str(value).lower()
    return {"true": True, "false": False}.get(lowered, lowered)


def _loftq_config(params: LoraParams):
    if str(params.init_lora_weights).lower() != "loftq":
        return {}
    import torch
    from peft import LoftQConfig

    if not torch.cuda.is_available():
        # peft 0.21's loftq_init quantizes on "cuda"/"xpu" unconditionally.
        raise ConfigError("init_lora_weights: loftq needs a CUDA GPU (peft computes LoftQ there); "
                          "on CPU use pissa, olora or gaussian")
    return LoftQConfig(loftq_bits=params.loftq_bits, loftq_iter=params.loftq_iter)


def build_lora_config(params: LoraParams, model=None, task_type: str = "CAUSAL_LM"):
    """A ``peft.LoraConfig`` from our parameters (``model`` resolves ``all`` when needed)."""
    from peft import LoraConfig

    return LoraConfig(
        task_type=task_type,
        r=params.lora_rank,
        lora_alpha=params.alpha,
        lora_dropout=params.lora_dropout,
        target_modules=target_modules(params.lora_target, model,
                                      explicit=bool(params.layers_to_transform)),
        bias=params.lora_bias,
        use_rslora=params.use_rslora,
        use_dora=params.use_dora,
        init_lora_weights=_init_weights(params.init_lora_weights),
        loftq_config=_loftq_config(params),
        modules_to_save=params.modules_to_save,
        trainable_token_indices=params.trainable_token_indices,
        layers_to_transform=params.layers_to_transform,
        layers_pattern=params.layers_pattern,
        layer_replication=params.layer_replication,
        rank_pattern=params.rank_pattern or {},
        alpha_pattern=params.alpha_pattern or {},
    )


def mutates_base(params: LoraParams) -> bool:
    """PiSSA/OLoRA replace the base weights by a residual at init."""
    return str(params.init_lora_weights).lower().split("_niter_")[0] in MUTATING_INITS


def save_init_adapter(model, params: LoraParams, cfg: RunConfig) -> None:
    """Keep the adapter as initialised, for the conversion to plain LoRA at save time."""
    if mutates_base(params):
        model.save_pretrained(str(Path(cfg.train.output_dir) / INIT_ADAPTER_DIR))


def convert_saved_adapter(model, params: LoraParams, cfg: RunConfig, out_dir) -> None:
    """Re-save a PiSSA/OLoRA adapter as a plain LoRA delta that loads on the original base."""
    init_dir = Path(cfg.train.output_dir) / INIT_ADAPTER_DIR
    if not (mutates_base(params) and init_dir.is_dir()):
        return
    model.save_pretrained(str(out_dir), path_initial_model_for_weight_conversion=str(init_dir))
    shutil.rmtree(init_dir, ignore_errors=True)


def for_device(model, params: LoraParams) -> LoraParams:
    """On the meta device (``tunesmith estimate`` counts parameters there) the data-dependent
    inits (PiSSA/OLoRA SVD, LoftQ) cannot run; the default init has the same shapes."""
    on_meta = any(p.is_meta for p in model.parameters())
    return dataclasses.replace(params, init_lora_weights="true") if on_meta else params


@register_method("lora", LoraParams, after_save=convert_saved_adapter,
                 summary="low-rank adapters on linear layers (peft LoRA)")
def apply_lora(model, params: LoraParams, cfg: RunConfig):
    """Wrap ``model`` with a LoRA adapter; returns the ``PeftModel``."""
    params = for_device(model, params)
    if checkpoint_mode(cfg.train.gradient_checkpointing):
        model.enable_input_require_grads()
    model = wrap_peft(model, build_lora_config(params, model), "lora")
    save_init_adapter(model, params, cfg)
    return model
