"""Form values <-> flat config dicts (the YAML keys), with no Gradio in this module.

Method parameter controls are generated from each method's parameter dataclass
(``methods.METHODS``), so a new method or parameter shows up in the UI without UI code.
"""

from __future__ import annotations

import dataclasses
import shlex
import typing
from dataclasses import dataclass
from typing import Any

import yaml

from ..config import SECTIONS, build_config
from ..config_parse import DTYPE_CHOICES
from ..config_validate import CHOICES
from ..methods import METHODS, get_method


@dataclass(frozen=True)
class ParamField:
    key: str
    kind: str  # "bool" | "int" | "float" | "text"
    optional: bool


def _kind(tp) -> tuple[str, bool]:
    args = typing.get_args(tp)
    optional = type(None) in args
    inner = [a for a in args if a is not type(None)]
    base = inner[0] if optional and len(inner) == 1 else tp
    if base is bool:
        return "bool", optional
    if base in (int, float):
        return base.__name__, optional
    return "text", optional


def config_default(key: str) -> Any:
    """The config's default for a section key: what the CLI uses when the key is not set."""
    for cls in SECTIONS.values():
        for f in dataclasses.fields(cls):
            if f.name == key:
                return f.default if f.default is not dataclasses.MISSING else f.default_factory()
    raise KeyError(key)


def config_kind(key: str) -> str:
    """The control kind (bool, int, float, text) of a section key, from its annotation."""
    for cls in SECTIONS.values():
        hints = typing.get_type_hints(cls)
        if key in hints:
            return _kind(hints[key])[0]
    raise KeyError(key)


# The web UI's shortlist of schedulers (the Train tab's "more keys" box takes any other name
# transformers accepts; train/arguments.py checks it before training). Listing transformers'
# own would load torch when the UI starts.
SCHEDULERS = ("cosine", "linear", "constant", "constant_with_warmup")
# Choice keys checked outside config_validate.CHOICES: where their values come from.
_CHOICE_SOURCES = {"dtype": DTYPE_CHOICES, "export_dtype": DTYPE_CHOICES,
                   "lr_scheduler_type": SCHEDULERS}


def config_choices(key: str) -> list[str]:
    """The values a choice key accepts, as the config checks them."""
    return list(CHOICES[key] if key in CHOICES else _CHOICE_SOURCES[key])


def method_names() -> list[str]:
    """Every registered method (the registry imports its modules on first use)."""
    return sorted(METHODS)


def method_fields() -> dict[str, ParamField]:
    """Every method parameter key (union over methods) with the control kind it needs."""
    out: dict[str, ParamField] = {}
    for method in METHODS.values():
        hints = typing.get_type_hints(method.params_cls)
        for f in dataclasses.fields(method.params_cls):
            kind, optional = _kind(hints[f.name])
            out.setdefault(f.name, ParamField(f.name, kind, optional))
    return out


def _defaults(params_cls) -> dict[str, Any]:
    if params_cls is None:
        return {}
    return {f.name: getattr(params_cls(), f.name) for f in dataclasses.fields(params_cls)}


def method_defaults(name: str) -> dict[str, Any]:
    """The method's parameter defaults, shown in its controls."""
    return _defaults(get_method(name).params_cls)


def stage_names() -> list[str]:
    """Every registered stage (``train/stages``), in registration order."""
    from ..train.stages import STAGES

    return STAGES.names()


def stage_fields() -> dict[str, ParamField]:
    """Every stage parameter key (union over stages) with the control kind it needs."""
    from ..train.stages import STAGES

    out: dict[str, ParamField] = {}
    for stage in STAGES.values():
        if stage.params is None:
            continue
        hints = typing.get_type_hints(stage.params)
        for f in dataclasses.fields(stage.params):
            out.setdefault(f.name, ParamField(f.name, *_kind(hints[f.name])))
    return out


def stage_defaults(name: str) -> dict[str, Any]:
    """The stage's parameter defaults (dpo's pref_beta, ...); empty for sft/pt."""
    from ..train.stages import get_stage

    return _defaults(get_stage(name).params)


def stage_params_from_controls(stage: str, values: dict[str, Any]) -> dict[str, Any]:
    """Only the stage's own keys whose value differs from its default."""
    return _changed(stage_fields(), stage_defaults(stage), values)


def to_control(value: Any, field: ParamField) -> Any:
    """A parameter value as its control shows it (lists and mappings as text)."""
    if field.kind != "text":
        return value
    if value is None:
        return ""
    if isinstance(value, list):
        return ",".join(str(v) for v in value) if all(not isinstance(v, (list, dict))
                                                    for v in value) else yaml.safe_dump(value).strip()
    if isinstance(value, dict):
        return yaml.safe_dump(value, default_flow_style=True).strip()
    return str(value)


def method_params_from_controls(method: str, values: dict[str, Any]) -> dict[str, Any]:
    """Only the method's own keys whose value differs from its default (a tidy YAML)."""
    return _changed(method_fields(), method_defaults(method), values)


def _changed(fields: dict, defaults: dict, values: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, default in defaults.items():
        value = values.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if fields[key].kind == "int" and isinstance(value, float) and value.is_integer():
            value = int(value)
        if to_control(default, fields[key]) != value and value != default:
            out[key] = value
    return out


def drop_empty(flat: dict[str, Any]) -> dict[str, Any]:
    """Remove unset form values so the config's defaults apply."""
    out = {}
    for key, value in flat.items():
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if key in ZERO_IS_UNSET and not value:
            continue
        if isinstance(value, float) and value.is_integer() and key not in FLOAT_KEYS:
            value = int(value)
        out[key] = value
    return out


ZERO_IS_UNSET = {"max_samples"}  # a Number control shows "no value" as 0
FLOAT_KEYS = {"learning_rate", "num_train_epochs", "warmup_ratio", "val_size", "weight_decay",
              "max_grad_norm", "temperature", "top_p", "repetition_penalty", "export_size",
              "lora_alpha", "lora_dropout"}


def parse_extra(text: str) -> dict[str, Any]:
    """The free-form "more keys" box: YAML mapping (safe loading)."""
    from ..config_parse import _parse_yaml_text
    from ..errors import ConfigError

    data = _parse_yaml_text(text, "extra keys") if text and text.strip() else {}
    if data and not isinstance(data, dict):
        raise ConfigError("extra keys: expected YAML lines of key: value")
    return data or {}


def validated(flat: dict[str, Any]) -> dict[str, Any]:
    """Check the flat config exactly as the CLI will (raises ConfigError) and return it."""
    build_config(dict(flat), source="web UI")
    return flat


def to_yaml(flat: dict[str, Any]) -> str:
    return yaml.safe_dump(flat, sort_keys=False, allow_unicode=True)


def cli_command(verb: str, flat: dict[str, Any], yaml_path: str | None = None) -> str:
    """The equivalent command lines: from the saved YAML, and with key=value overrides."""
    pairs = " ".join(shlex.quote(f"{k}={_cli_value(v)}") for k, v in flat.items())
    lines = [f"tunesmith {verb} {pairs}"]
    if yaml_path:
        lines.insert(0, f"tunesmith {verb} {shlex.quote(yaml_path)}")
    return "\n".join(lines)


def _cli_value(value: Any) -> str:
    if isinstance(value, list) and all(not isinstance(v, (list, dict)) for v in value):
        return ",".join(str(v) for v in value)
    if isinstance(value, (list, dict)):
        return yaml.safe_dump(value, default_flow_style=True).strip()
    return str(value).lower() if isinstance(value, bool) else str(value)
