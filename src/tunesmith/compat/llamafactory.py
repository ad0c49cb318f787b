"""LLaMA-Factory train/export YAML keys and flags -> tunesmith's keys.

LLaMA-Factory's names are mostly ours already (model_name_or_path, lora_rank, cutoff_len, ...).
This module handles the keys whose meaning differs, and flags accepted for compatibility that
have no effect in tunesmith (each listed with the reason).
"""

from __future__ import annotations

from typing import Any

# Accepted and deliberately without effect here, with the reason (shown by `--help`).
NO_EFFECT = {
    "overwrite_cache": "tokenized data is cached by content hash, so a stale cache cannot be served",
    "export_legacy_format": "exports are always safetensors",
    "ddp_timeout": "distributed timeouts use torch defaults",
    "flash_attn": "use attn_implementation",
    "report_to_swanlab": None,
    "include_num_input_tokens_seen": "tokens seen are always logged",
    "enable_liger_kernel": None,
    "use_unsloth": None,
    "upcast_layernorm": None,
}

_TRUTHY = ("true", "1", "yes", "on")


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in _TRUTHY)


def translate(raw: dict[str, Any]) -> dict[str, Any]:
    """Rewrite LLaMA-Factory keys in a flat config mapping into tunesmith keys."""
    if "lora_target" in raw and raw["lora_target"] in ("all", ["all"]):
        raw["lora_target"] = "all"
    if _truthy(raw.pop("mask_history", False)):
        raw["train_on"] = "last_turn"
    if _truthy(raw.pop("train_on_prompt", False)):
        raw["train_on"] = "everything"
    if "additional_target" in raw:
        raw["modules_to_save"] = raw.pop("additional_target")
    if "quantization_method" in raw and raw.pop("quantization_method") not in ("bitsandbytes", "bnb"):
        from ..errors import ConfigError

        raise ConfigError("quantization_method: only bitsandbytes is supported")
    if "flash_attn" in raw:
        value = str(raw.pop("flash_attn"))
        raw.setdefault("attn_implementation", {"fa2": "flash_attention_2", "sdpa": "sdpa",
                                               "disabled": "eager"}.get(value, "auto"))
    method = str(raw.get("method", raw.get("finetuning_type", "lora")))
    if raw.get("quantization_bit") not in (None, "None", "none") and method == "lora":
        raw["method"] = "qlora"
    for key in ("export_legacy_format", "ddp_timeout",
                "include_num_input_tokens_seen"):
        raw.pop(key, None)
    return raw
