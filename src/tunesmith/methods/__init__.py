"""The METHODS registry: one module per fine-tuning method, each wrapping ``peft``.

A method declares a parameters dataclass (its config keys, validated strictly) and an
``apply(model, params, cfg)`` that returns the model ready to train.
"""

from __future__ import annotations

import dataclasses
import importlib
import typing
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import ConfigError


@dataclass(frozen=True)
class Method:
    name: str
    params_cls: type
    apply: Callable[..., Any]
    saves_adapter: bool = True  # False: a full HF model is saved (full, freeze, bitfit)
    quantize_base: bool = False  # True: the base is loaded in 4/8 bit (qlora)
    mergeable: bool = True  # False: merge_and_unload does not apply (prompt, prefix, ...)
    summary: str = ""


METHODS: dict[str, Method] = {}
_MODULES = ("lora", "qlora", "full")


def register_method(name: str, params_cls: type, *, summary: str = "", **flags):
    """Decorator registering ``apply`` under ``name``; a duplicate name is an error."""

    def wrap(apply):
        if name in METHODS:
            raise ValueError(f"method '{name}' is already registered")
        METHODS[name] = Method(name, params_cls, apply, summary=summary, **flags)
        return apply

    return wrap


def _load_all() -> None:
    if not METHODS:
        for mod in _MODULES:
            importlib.import_module(f"{__name__}.{mod}")


def get_method(name: str) -> Method:
    """The registered method ``name``; unknown -> ConfigError listing the known names."""
    _load_all()
    if name not in METHODS:
        from ..config import suggest

        raise ConfigError(f"unknown method '{name}'{suggest(name, METHODS)}; "
                          f"known: {', '.join(sorted(METHODS))}")
    return METHODS[name]


def method_param_keys() -> dict[str, list[str]]:
    """Map each method-parameter key to the methods that accept it."""
    _load_all()
    keys: dict[str, list[str]] = {}
    for method in METHODS.values():
        for f in dataclasses.fields(method.params_cls):
            keys.setdefault(f.name, []).append(method.name)
    return keys


def build_params(method: Method, raw: dict, source: str = "config"):
    """Instantiate the method's parameter dataclass from raw values, type-checked."""
    from ..config import coerce

    hints = typing.get_type_hints(method.params_cls)
    valid = [f.name for f in dataclasses.fields(method.params_cls)]
    values = {}
    for key, value in raw.items():
        if key not in hints:
            raise ConfigError(f"key '{key}' is not a parameter of method '{method.name}'; "
                              f"its keys are: {', '.join(valid) or '(none)'}")
        values[key] = coerce(value, hints[key], key)
    params = method.params_cls(**values)
    check = getattr(params, "check", None)
    if check:
        check()
    return params


def validate_method(cfg) -> None:
    """Check the method exists and its parameters belong to it and are in range."""
    method = get_method(cfg.method.method)
    params = build_params(method, cfg.method.params)
    cfg.method.params = {k: getattr(params, k) for k in cfg.method.params}  # typed values
    if method.quantize_base and cfg.model.quantization_bit is None:
        cfg.model.quantization_bit = 4
    if cfg.model.quantization_bit and not method.quantize_base:
        raise ConfigError(f"quantization_bit={cfg.model.quantization_bit} needs method 'qlora' "
                          f"(a quantized base cannot be trained with '{method.name}')")


def method_params(cfg):
    """The typed parameters of the configured method."""
    method = get_method(cfg.method.method)
    return method, build_params(method, cfg.method.params)
