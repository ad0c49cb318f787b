"""The METHODS registry: one module per fine-tuning method, each wrapping ``peft``.

A method declares a parameters dataclass (its config keys, validated strictly) and an
``apply(model, params, cfg)`` that returns the model ready to train. A method that needs work
inside the training loop (AdaLoRA's rank budget) declares ``callbacks(model, params, cfg)``
returning ``TrainerCallback`` objects for the Trainer.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..config_parse import build_typed
from ..errors import ConfigError
from ..model.checkpointing import checkpoint_mode
from ..model.signature import write_base_signature
from ..registry import Registry

if TYPE_CHECKING:
    from ..config import RunConfig


@dataclass(frozen=True)
class Method:
    name: str
    params_cls: type
    apply: Callable[..., Any]
    saves_adapter: bool = True  # False: a full HF model is saved (full, freeze, bitfit)
    quantize_base: bool = False  # True: the base is loaded in 4/8 bit (qlora)
    # False: merge_and_unload does not apply (prompt, prefix, ...). Export decides from the saved
    # adapter (adapter_merge_refusal); the method catalogue test checks the two agree.
    mergeable: bool = True
    gradient_checkpointing: bool = True  # False: the method cannot train with it (prefix)
    summary: str = ""
    # (model, params, cfg) -> list of TrainerCallback, for methods that act inside the loop
    callbacks: Callable[..., list] | None = None
    # (model, params, cfg, out_dir) run after the Trainer saved the adapter/model
    after_save: Callable[..., None] | None = None


METHODS: Registry[Method] = Registry("method", package=__name__)


def register_method(name: str, params_cls: type, *, summary: str = "", **flags):
    """Decorator registering ``apply`` under ``name``; a duplicate name is an error."""
    return METHODS.register(name, lambda apply: Method(name, params_cls, apply, summary=summary,
                                                       **flags))


def get_method(name: str) -> Method:
    """The registered method ``name``; unknown -> ConfigError listing the known names."""
    return METHODS.get(name)


def method_param_keys() -> dict[str, list[str]]:
    """Map each method-parameter key to the methods that accept it."""
    keys: dict[str, list[str]] = {}
    for method in METHODS.values():
        for f in dataclasses.fields(method.params_cls):
            keys.setdefault(f.name, []).append(method.name)
    return keys


def build_params(method: Method, raw: dict, source: str = "config"):
    """Instantiate the method's parameter dataclass from raw values, type-checked."""
    valid = ", ".join(f.name for f in dataclasses.fields(method.params_cls)) or "(none)"
    return build_typed(method.params_cls, raw, lambda key: (
        f"key '{key}' is not a parameter of method '{method.name}'; its keys are: {valid}"))


def drop_foreign_params(method: Method, raw: dict) -> dict:
    """``raw`` without the keys that belong to other methods only, each with a one-line note.

    LLaMA-Factory users switch ``finetuning_type`` on the command line (``method=ia3`` on a LoRA
    file): the file's ``lora_*`` keys are then ignored, not an error. A key no method knows never
    gets here (the config reports it as unknown, with the nearest valid key).
    """
    from ..notes import note_once

    own = {f.name for f in dataclasses.fields(method.params_cls)}
    owners = method_param_keys()
    for key in [k for k in raw if k not in own and k in owners]:
        raw = {k: v for k, v in raw.items() if k != key}
        note_once(f"foreign:{method.name}:{key}",
                  f"'{key}' is ignored: it is a parameter of {', '.join(owners[key])}, "
                  f"not of method '{method.name}'")
    return raw


def validate_method(cfg: RunConfig) -> None:
    """Check the method exists and its parameters belong to it and are in range.

    Builds the typed parameters once (``cfg.method.typed``; ``cfg.method.params`` keeps the keys
    as set, with typed values, for saving) and resolves a quantize-base method's default
    ``quantization_bit`` (4) before the rules below read it.
    """
    method = get_method(cfg.method.method)
    cfg.method.params = drop_foreign_params(method, cfg.method.params)
    params = cfg.method.typed = build_params(method, cfg.method.params)
    cfg.method.params = {k: getattr(params, k) for k in cfg.method.params}
    if method.quantize_base and cfg.model.quantization_bit is None:
        cfg.model.quantization_bit = 4
    if checkpoint_mode(cfg.train.gradient_checkpointing) and not method.gradient_checkpointing:
        raise ConfigError(f"method '{method.name}' does not work with gradient_checkpointing "
                          "(peft's limitation); set gradient_checkpointing: false")
    if cfg.model.quantization_bit and not method.quantize_base:
        raise ConfigError(f"quantization_bit={cfg.model.quantization_bit} needs method 'qlora' "
                          f"(a quantized base cannot be trained with '{method.name}')")


def method_params(cfg: RunConfig) -> tuple[Method, Any]:
    """The configured method and its typed parameters (built by validation, or now for a
    config that was never validated)."""
    method = get_method(cfg.method.method)
    if type(cfg.method.typed) is not method.params_cls:
        cfg.method.typed = build_params(method, cfg.method.params)
    return method, cfg.method.typed


def wrap_peft(model, peft_config, method: str):
    """``get_peft_model`` with peft's own rejections turned into a one-line ConfigError."""
    from peft import get_peft_model

    try:
        return get_peft_model(model, peft_config)
    except (ValueError, TypeError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"method '{method}': peft rejected the parameters: {first}") from exc


# peft types whose adapters are extra inputs (virtual tokens / prefixes), not a weight delta.
UNMERGEABLE_PEFT_TYPES = {"PREFIX_TUNING": "prefix", "PROMPT_TUNING": "prompt",
                          "P_TUNING": "ptuning", "ADAPTION_PROMPT": "adaption prompt"}


def adapter_merge_refusal(adapter_dir) -> str | None:
    """Why the saved adapter in ``adapter_dir`` cannot be merged into its base, or None.

    The one place that decides mergeability: export calls it before loading anything (it has the
    adapter directory, not the training config).
    """
    config = json.loads((Path(adapter_dir) / "adapter_config.json").read_text(encoding="utf-8"))
    kind = UNMERGEABLE_PEFT_TYPES.get(str(config.get("peft_type")))
    if kind:
        return (f"adapter {adapter_dir} is a {kind} adapter (virtual tokens, not a weight delta): "
                "it cannot be merged; serve or chat with it as an adapter instead")
    if config.get("layer_replication"):
        return (f"adapter {adapter_dir} uses layer_replication: replicated layers share base "
                "weights, so a merge would add every copy's delta to one tensor")
    return None


def method_callbacks(cfg: RunConfig, model) -> list:
    """The TrainerCallbacks the configured method needs (empty for most methods)."""
    method, params = method_params(cfg)
    return list(method.callbacks(model, params, cfg)) if method.callbacks else []


def finish_save(model, cfg: RunConfig, out_dir) -> None:
    """Run after ``trainer.save_model(out_dir)``: method-specific conversion, base signature."""
    method, params = method_params(cfg)
    if method.after_save:
        method.after_save(model, params, cfg, out_dir)
    write_base_signature(model, out_dir)
