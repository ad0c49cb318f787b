"""Reading config values: safe YAML, ``key=value`` / ``--key value`` overrides, typed coercion.

Split from config.py (which holds the sections and the rules) so each file stays one concern.
"""

from __future__ import annotations

import difflib
import os
import re
import typing
from pathlib import Path
from typing import Any, Callable

import yaml

from .errors import ConfigError

DTYPE_CHOICES = ("auto", "fp32", "bf16", "fp16")  # what ``dtype``/``export_dtype`` accept


def suggest(key: str, choices) -> str:
    """`` (did you mean 'x'?)`` for the nearest choice, or an empty string."""
    close = difflib.get_close_matches(key, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _origin(tp):
    return typing.get_origin(tp), typing.get_args(tp)


def coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert a YAML or command-line value to the annotated type, or raise ConfigError."""
    origin, args = _origin(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        words = [w for a in args if typing.get_origin(a) is typing.Literal for w in typing.get_args(a)]
        if isinstance(value, str) and value.lower() in words:  # e.g. ``auto`` of ``bool | "auto"``
            return value.lower()
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            return None
        inner = [a for a in args if a is not type(None) and typing.get_origin(a) is not typing.Literal][0]
        try:
            return coerce(value, inner, key)
        except ConfigError:
            if not words:
                raise
            kind = (", true or false" if inner is bool else
                    f" or {'an integer' if inner is int else 'a ' + getattr(inner, '__name__', 'value')}")
            raise ConfigError(f"key '{key}': expected {' or '.join(words)}{kind}, "
                              f"got {value!r}") from None
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"key '{key}': expected true or false, got {value!r}")
    if tp in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"key '{key}': expected a number, got {value!r}")
        try:
            number = float(value) if tp is float else _to_int(value)
        except (TypeError, ValueError):
            kind = "an integer" if tp is int else "a number"
            raise ConfigError(f"key '{key}': expected {kind}, got {value!r}") from None
        return number
    if tp is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"key '{key}': expected a string, got {type(value).__name__}")
        return str(value)
    if origin is list:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            items = [items]
        inner = args[0] if args else str
        return [coerce(v.strip() if isinstance(v, str) else v, inner, key) for v in items]
    if tp is dict or origin is dict:
        if isinstance(value, str):
            value = _parse_yaml_text(value, key)
        if not isinstance(value, dict):
            raise ConfigError(f"key '{key}': expected a mapping, got {value!r}")
        return value
    return value


def _to_int(value: Any) -> int:
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(value)
    if isinstance(value, str):
        return int(float(value)) if "e" in value.lower() else int(value)
    return int(value)


def _parse_yaml_text(text: str, where: str):
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        loc = f" line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}{loc}: invalid YAML: {problem}") from None


def read_yaml(path: str | Path) -> dict:
    """Read a YAML config with safe loading (``!!python/object`` is refused)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file '{path}' not found")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    data = _parse_yaml_text(text, str(path))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of key: value, got {type(data).__name__}")
    return data


_KEY_VALUE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*=")  # `key=value`: never a flag's value


def parse_overrides(args: list[str]) -> dict[str, Any]:
    """Parse ``key=value``, ``--key value`` and ``--flag`` (true) into a mapping of strings."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("--"):
            body = arg[2:]
            if "=" in body:
                key, value = body.split("=", 1)
            elif i + 1 < len(args) and not args[i + 1].startswith("--") \
                    and not _KEY_VALUE.match(args[i + 1]):
                key, value = body, args[i + 1]
                i += 1
            else:
                key, value = body, "true"
        elif "=" in arg:
            key, value = arg.split("=", 1)
        else:
            raise ConfigError(f"argument '{arg}': expected key=value or --key value")
        out[key.replace("-", "_")] = value
        i += 1
    return out


# Range rules for parameter dataclasses: rule -> (test, what the one-line error says).
_RANGES = {"positive_int": (lambda v: v > 0, "must be a positive integer"),
           "positive": (lambda v: v > 0, "must be positive"),
           "at_least_one": (lambda v: v >= 1, "must be >= 1"),
           "non_negative": (lambda v: v >= 0, "must be >= 0"),
           "fraction": (lambda v: 0 <= v < 1, "must be in [0, 1)")}


def check_ranges(params, **rules: tuple[str, ...]) -> None:
    """Check the named fields of ``params`` against range rules (unset, None, values pass).

    Args:
        params: a parameters dataclass instance.
        rules: rule name (``positive_int``, ``positive``, ``at_least_one``, ``non_negative``,
            ``fraction``) -> the field names it applies to, checked in the order given.
    Raises:
        ConfigError: ``key 'x': must be ..., got v`` for the first value out of range.
    """
    for rule, keys in rules.items():
        test, expected = _RANGES[rule]
        for key in keys:
            value = getattr(params, key)
            if value is not None and not test(value):
                raise ConfigError(f"key '{key}': {expected}, got {value}")


def build_typed(cls: type, raw: dict, unknown: Callable[[str], str]):
    """``cls(**raw)`` with every value coerced to its annotation and the dataclass's ``check()``
    run: a method's or a stage's parameters.

    Args:
        cls: the parameters dataclass.
        raw: key -> value as read from YAML or the command line.
        unknown: key -> the one-line message for a key ``cls`` does not have.
    Raises:
        ConfigError: an unknown key, a value of the wrong type, or a failed ``check()``.
    """
    hints = typing.get_type_hints(cls)
    values = {}
    for key, value in raw.items():
        if key not in hints:
            raise ConfigError(unknown(key))
        values[key] = coerce(value, hints[key], key)
    params = cls(**values)
    check = getattr(params, "check", None)
    if check:
        check()
    return params


def split_config_and_overrides(extras: list[str]) -> tuple[str | None, list[str]]:
    """The first ``*.yaml``/``*.yml`` argument is the config file; the rest are overrides."""
    for i, arg in enumerate(extras):
        # a sweep's run paths contain '=' (lr=1e-4,...): an existing file is still the config
        is_file = arg.endswith((".yaml", ".yml")) and ("=" not in arg or os.path.isfile(arg))
        if is_file and not arg.startswith("-"):
            if i == 0 or not extras[i - 1].startswith("--") or "=" in extras[i - 1]:
                return arg, extras[:i] + extras[i + 1:]
    return None, extras
