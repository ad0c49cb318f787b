"""The ENGINES registry: ``infer_backend`` -> a loader ``(cfg, adapter) -> Engine``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from ..registry import Registry

if TYPE_CHECKING:
    from ..config import RunConfig


ENGINES: Registry[Callable] = Registry("engine", key="infer_backend")


def register_engine(name: str):
    """Decorator registering an engine loader under ``name``; a duplicate is an error."""
    return ENGINES.register(name)


def get_engine_loader(name: str) -> Callable:
    """The loader for backend ``name``; unknown -> ConfigError listing the known names."""
    return ENGINES.get(name)


def resolve_template(cfg: RunConfig, adapter: str | None, model_path) -> tuple[str, str | None]:
    """The template to chat with: the config's, or (for ``auto``) the one the run trained with."""
    from .adapters import training_template

    name, system = cfg.model.template, cfg.model.default_system
    if name != "auto":
        return name, system
    recorded = training_template(adapter) or training_template(model_path)
    if recorded:
        return recorded[0], system if system is not None else recorded[1]
    return name, system


@register_engine("hf")
def load_hf_engine(cfg: RunConfig, adapter: str | None = None):
    """An HFEngine for the config's model (+ adapter) with the training template.

    ``model_name_or_path`` may be a bundled name, a base model dir, or the output dir of a
    ``full``/``freeze`` run (a complete model); ``adapter`` (default: the config's) a LoRA dir.
    """
    from ..data.templates import get_template
    from ..model.load import load_model, load_tokenizer, resolve_model_path
    from ..model.tokens import match_adapter_tokens
    from .adapters import attach_adapter, check_adapter_dir
    from .hf import HFEngine
    from .lean import choose as choose_lean
    from .packed import choose_packing, pack_linears

    adapter = adapter if adapter is not None else cfg.model.adapter_name_or_path
    if adapter:
        check_adapter_dir(adapter)  # fail before the (slow) model load
    path = resolve_model_path(cfg.model.model_name_or_path, model_cfg=cfg.model)
    tokenizer = load_tokenizer(cfg.model, path)
    quant = None
    if cfg.model.quantization_bit:
        from ..model.quantize import quantization_config

        quant = quantization_config(cfg.model)
    model = load_model(cfg.model, path=path, quantization_config=quant)
    if adapter:
        match_adapter_tokens(tokenizer, model, adapter)  # a run that added tokens
        model = attach_adapter(model, adapter, cfg.model.model_name_or_path)
        if not quant:
            model = merged_for_inference(model, adapter)
    name, system = resolve_template(cfg, adapter, path)
    engine = HFEngine(model, tokenizer, get_template(name, tokenizer, system))
    engine.lean, _why = choose_lean(model)  # decoding's weights never change: built once
    if engine.lean is None and choose_packing(model):
        pack_linears(model)
    return engine


def merged_for_inference(model, adapter: str):
    """The adapter merged into the (not quantized) base weights where it can be: the same
    outputs as the attached adapter (within rounding; ``export`` checks merges the same way),
    without its extra matmuls and adds in every layer at every generated token. Adapters that
    cannot merge (prompt learning, LoRA layer replication, ...) stay attached."""
    from ..methods import adapter_merge_refusal

    if adapter_merge_refusal(adapter):
        return model
    try:
        return model.merge_and_unload()
    except (AttributeError, NotImplementedError, ValueError):
        return model


@register_engine("vllm")
def load_vllm_engine(cfg: RunConfig, adapter: str | None = None):
    """A vLLM engine (GPU); vllm is imported only here."""
    from .vllm import load_vllm

    return load_vllm(cfg, adapter)


def load_engine(cfg: RunConfig, adapter: str | None = None):
    """The engine for ``cfg.infer.infer_backend`` with the config's model and adapter.

    Args:
        cfg: a RunConfig.
        adapter: an adapter dir overriding ``adapter_name_or_path`` ("" for none).
    """
    return get_engine_loader(cfg.infer.infer_backend)(cfg, adapter)
