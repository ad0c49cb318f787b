"""LLaMA-Factory train/export YAML keys and flags -> tunesmith's keys.

LLaMA-Factory's names are mostly ours already (model_name_or_path, lora_rank, cutoff_len, ...).
This module rewrites the keys whose spelling or meaning differs (:data:`REWRITES`), hands
``TrainingArguments`` fields given at the top level (as LLaMA-Factory accepts them) to the
Trainer through ``trainer_args``, and applies the tables in ``llamafactory_keys.py``: keys
accepted without effect (a note once per run) and keys refused with what to use instead.
"""

from __future__ import annotations

import functools
import typing
from typing import TYPE_CHECKING, Any, Callable

from ..errors import ConfigError
from ..notes import note_once
from .llamafactory_keys import NO_EFFECT, REFUSED, is_harmless

if TYPE_CHECKING:
    from ..config import RunConfig


_TRUTHY = ("true", "1", "yes", "on")


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in _TRUTHY)


# --- rewrites: LLaMA-Factory key (and value) -> tunesmith keys -------------------------------

def _mask_history(raw: dict, value) -> None:
    if _truthy(value):
        raw["train_on"] = "last_turn"


def _train_on_prompt(raw: dict, value) -> None:
    if _truthy(value):
        raw["train_on"] = "everything"


def _quantization_method(raw: dict, value) -> None:
    if str(value) not in ("bitsandbytes", "bnb"):
        raise ConfigError(f"key 'quantization_method': '{value}' is not supported; only "
                          "bitsandbytes (bnb) quantizes here")


def _flash_attn(raw: dict, value) -> None:
    choice = {"fa2": "flash_attention_2", "sdpa": "sdpa", "disabled": "eager"}.get(str(value), "auto")
    raw.setdefault("attn_implementation", choice)


def _disable_gradient_checkpointing(raw: dict, value) -> None:
    # LLaMA-Factory checkpoints by default; a file that says `false` asks for checkpointing.
    raw.setdefault("gradient_checkpointing", not _truthy(value))


def _neat_packing(raw: dict, value) -> None:
    if _truthy(value):  # our packing is already padding-free without cross-attention
        raw["packing"] = True


def _pissa_init(raw: dict, value) -> None:
    if _truthy(value):
        iters = int(raw.pop("pissa_iter", 16))
        raw["init_lora_weights"] = "pissa" if iters < 0 else f"pissa_niter_{iters}"


def _pissa_iter(raw: dict, value) -> None:
    return None  # read by pissa_init; alone it changes nothing (as in LLaMA-Factory)


def _disable_shuffling(raw: dict, value) -> None:
    if _truthy(value):
        _trainer_args(raw)["train_sampling_strategy"] = "sequential"


def _pure_bf16(raw: dict, value) -> None:
    if _truthy(value):  # bf16 weights and optimizer states, no mixed precision
        raw.setdefault("dtype", "bf16")


def _use_swanlab(raw: dict, value) -> None:
    if _truthy(value):
        report = raw.get("report_to") or []
        report = [r.strip() for r in report.split(",")] if isinstance(report, str) else list(report)
        raw["report_to"] = [r for r in report if r != "none"] + ["swanlab"]


# GaLore's settings (LLaMA-Factory's names and defaults) -> transformers' optim_args names.
GALORE_ARGS = {"galore_rank": ("rank", 16), "galore_update_interval": ("update_proj_gap", 200),
               "galore_scale": ("scale", 2.0), "galore_proj_type": ("proj_type", "std")}
# galore_target: all = every linear layer but the output layer (a regex on module names;
# transformers keeps only the nn.Linear modules among those that match).
ALL_BUT_LM_HEAD = r"^(?!(.*\.)?lm_head$).+"


def _use_galore(raw: dict, value) -> None:
    """GaLore through transformers' ``optim: galore_adamw`` (the galore-torch package)."""
    layerwise = _truthy(raw.pop("galore_layerwise", False))
    target = raw.pop("galore_target", "all")
    settings = {name: raw.pop(key, default) for key, (name, default) in GALORE_ARGS.items()}
    if not _truthy(value):
        return
    raw["optim"] = "galore_adamw_layerwise" if layerwise else "galore_adamw"
    targets = [t.strip() for t in target.split(",")] if isinstance(target, str) else list(target)
    extra = _trainer_args(raw)
    extra["optim_target_modules"] = ALL_BUT_LM_HEAD if targets in (["all"], []) else targets
    extra["optim_args"] = ",".join(f"{name}={v}" for name, v in settings.items())


def _galore_setting(raw: dict, value) -> None:
    return None  # read by use_galore; alone it changes nothing (as in LLaMA-Factory)


def _additional_target(raw: dict, value) -> None:
    raw["modules_to_save"] = value


REWRITES: dict[str, Callable[[dict, Any], None]] = {
    "mask_history": _mask_history, "train_on_prompt": _train_on_prompt,
    "quantization_method": _quantization_method, "flash_attn": _flash_attn,
    "disable_gradient_checkpointing": _disable_gradient_checkpointing,
    "neat_packing": _neat_packing, "pissa_init": _pissa_init, "pissa_iter": _pissa_iter,
    "disable_shuffling": _disable_shuffling, "pure_bf16": _pure_bf16,
    "use_swanlab": _use_swanlab, "additional_target": _additional_target,
    "use_galore": _use_galore, **{k: _galore_setting for k in (*GALORE_ARGS, "galore_target",
                                                               "galore_layerwise")},
}


def _trainer_args(raw: dict) -> dict:
    extra = raw.get("trainer_args")
    if isinstance(extra, str):
        import yaml

        extra = yaml.safe_load(extra) or {}
    raw["trainer_args"] = dict(extra or {})
    return raw["trainer_args"]


@functools.lru_cache(maxsize=1)
def trainer_fields() -> dict[str, Any]:
    """``TrainingArguments`` field name -> annotated type (imported only when needed)."""
    from transformers import TrainingArguments

    hints = typing.get_type_hints(TrainingArguments)
    return {f: hints.get(f, Any) for f in TrainingArguments.__dataclass_fields__
            if TrainingArguments.__dataclass_fields__[f].init}


def _trainer_value(key: str, value):
    """A top-level TrainingArguments value typed as the field (command-line values are text)."""
    from ..config_parse import coerce

    tp = trainer_fields()[key]
    simple = (bool, int, float, str)
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if tp in simple or (len(args) == 1 and args[0] in simple):
        return coerce(value, tp, key)
    return value


def _apply_tables(raw: dict, known: set[str], source: str) -> None:
    """No-effect keys -> a note; refused keys -> an error (or a note for a harmless value);
    other TrainingArguments fields -> ``trainer_args``."""
    for key in [k for k in raw if k not in known]:
        value = raw[key]
        if key in NO_EFFECT:
            raw.pop(key)
            note_once(key, f"'{key}' has no effect in tunesmith: {NO_EFFECT[key]}")
        elif key in REFUSED:
            refusal = REFUSED[key]
            if not is_harmless(refusal, value):
                raise ConfigError(f"{source}: key '{key}' is not supported: {refusal.instead}")
            raw.pop(key)
            note_once(key, f"'{key}: {value}' has no effect in tunesmith ({refusal.instead})")
        elif key in trainer_fields():
            _trainer_args(raw)[key] = _trainer_value(key, raw.pop(key))


def translate(raw: dict[str, Any], known: set[str] | None = None,
              source: str = "config") -> dict[str, Any]:
    """Rewrite LLaMA-Factory keys in a flat config mapping into tunesmith keys.

    Args:
        raw: the flat mapping (YAML merged with command-line overrides).
        known: tunesmith's own keys (they win over the tables); None skips the tables.
        source: the file or "command line", for error messages.
    Returns:
        The rewritten mapping; keys still unknown are left for the caller to report.
    """
    if "lora_target" in raw and raw["lora_target"] in ("all", ["all"]):
        raw["lora_target"] = "all"
    for key, rewrite in REWRITES.items():
        if key in raw and (known is None or key not in known):
            rewrite(raw, raw.pop(key))
    method = str(raw.get("method", raw.get("finetuning_type", "lora")))
    if raw.get("quantization_bit") not in (None, "None", "none") and method == "lora":
        raw["method"] = "qlora"
    if known is not None:
        _apply_tables(raw, known, source)
    return raw


SWANLAB_MODES = ("cloud", "online", "local", "offline", "disabled")  # cloud: LF's word for online


def validate_features(cfg: RunConfig) -> None:
    """Rules for the LLaMA-Factory feature keys, one per ``if`` (LLaMA-Factory's own rules)."""
    m, d, t = cfg.model, cfg.data, cfg.train
    if t.do_eval and not (d.val_size or d.eval_dataset):
        raise ConfigError("do_eval needs an evaluation set: set val_size (a fraction or a row "
                          "count) or eval_dataset")
    if t.neftune_noise_alpha is not None and t.neftune_noise_alpha <= 0:
        raise ConfigError(f"key 'neftune_noise_alpha': must be positive, got {t.neftune_noise_alpha}")
    if t.neftune_noise_alpha and d.packing is True:
        raise ConfigError("neftune_noise_alpha scales its noise by the padded sequence length; "
                          "packing: true would shrink it by the number of packed rows: set "
                          "packing: false")
    if t.neftune_noise_alpha and d.packing == "auto":
        d.packing = False  # NEFTune's noise scale is defined on padded rows (the paper, HF, LF)
        note_once("neftune-packing", "packing: off, because NEFTune scales its noise by the "
                  "padded sequence length")
    if (m.add_tokens or m.add_special_tokens or m.resize_vocab) and m.quantization_bit:
        raise ConfigError("new tokens need a resized embedding, which a quantized base cannot "
                          "have: remove quantization_bit (use method: lora) or the new tokens")
    if t.early_stopping_steps is not None and not t.load_best_model_at_end:
        raise ConfigError("early_stopping_steps watches the evaluation metric: set "
                          "load_best_model_at_end: true with eval_strategy and val_size")
    if str(t.optim).startswith("galore_") and cfg.method.method not in ("full", "freeze"):
        raise ConfigError(f"use_galore (optim: {t.optim}) trains full weights with low-rank "
                          f"gradients; use finetuning_type: full or freeze, not "
                          f"'{cfg.method.method}'")
    mode = cfg.swanlab.swanlab_mode
    if mode is not None and mode not in SWANLAB_MODES:
        raise ConfigError(f"key 'swanlab_mode': '{mode}' is not one of {', '.join(SWANLAB_MODES)}")
