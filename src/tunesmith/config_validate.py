"""The rules a parsed ``RunConfig`` must meet: allowed values of the choice keys, and the
cross-field and range rules, one per ``if``, each failing with one actionable line."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .config_parse import suggest
from .errors import ConfigError
from .model import allocator

if TYPE_CHECKING:
    from .config import DataConfig, RunConfig, TrainConfig


CHOICES = {
    "train_on": ("all_assistant", "last_turn", "split_turns", "everything"),
    "nan_policy": ("stop", "skip"),
    "cpu_allocator": allocator.CHOICES,
    "eval_strategy": ("no", "steps", "epoch"),
    "save_strategy": ("no", "steps", "epoch", "best"),
    "infer_backend": ("hf", "vllm"),
    "mix_strategy": ("concat", "interleave_under", "interleave_over"),
    "hub": ("auto", "huggingface", "hf", "modelscope", "ms"),
}


def _check_choice(key: str, value: str) -> None:
    if value not in CHOICES[key]:
        raise ConfigError(f"key '{key}': '{value}' is not one of {', '.join(CHOICES[key])}"
                          f"{suggest(value, CHOICES[key])}")


def validate(cfg: RunConfig) -> None:
    """Cross-field and range rules, one per ``if``; raises ConfigError with one actionable line."""
    from .compat.llamafactory import validate_features
    from .methods import validate_method

    d, t, m = cfg.data, cfg.train, cfg.model
    for key, section in (("train_on", d), ("nan_policy", t), ("cpu_allocator", t), ("mix_strategy", d),
                         ("eval_strategy", t), ("save_strategy", t), ("infer_backend", cfg.infer),
                         ("hub", m)):
        _check_choice(key, getattr(section, key))
    if d.cutoff_len <= 0:
        raise ConfigError(f"key 'cutoff_len': must be a positive number of tokens, got {d.cutoff_len}")
    if not 0 <= d.val_size < 1 and not d.val_size >= 1:
        raise ConfigError(f"key 'val_size': must be a fraction in [0, 1) or a row count, got {d.val_size}")
    if not 0 <= d.max_drop_ratio <= 1:
        raise ConfigError(f"key 'max_drop_ratio': must be in [0, 1], got {d.max_drop_ratio}")
    if d.max_samples is not None and d.max_samples <= 0:
        raise ConfigError(f"key 'max_samples': must be positive, got {d.max_samples}")
    if t.learning_rate <= 0:
        raise ConfigError(f"key 'learning_rate': must be positive, got {t.learning_rate}")
    for key in ("per_device_train_batch_size", "per_device_eval_batch_size",
                "gradient_accumulation_steps", "nproc_per_node"):
        if getattr(t, key) <= 0:
            raise ConfigError(f"key '{key}': must be a positive integer, got {getattr(t, key)}")
    if t.num_train_epochs <= 0 and t.max_steps <= 0:
        raise ConfigError("set num_train_epochs > 0 or max_steps > 0: nothing to train")
    if not 0 <= t.warmup_ratio < 1:
        raise ConfigError(f"key 'warmup_ratio': must be in [0, 1), got {t.warmup_ratio}")
    if t.bf16 and t.fp16:
        raise ConfigError("bf16 and fp16 are both true: choose one (or leave both unset for auto)")
    _validate_train(t)
    _validate_scale(d, t)
    if m.quantization_bit not in (None, 4, 8):
        raise ConfigError(f"key 'quantization_bit': must be 4 or 8, got {m.quantization_bit}")
    if m.quantization_type not in ("nf4", "fp4"):
        raise ConfigError(f"key 'quantization_type': must be nf4 or fp4, got {m.quantization_type}")
    if t.eval_strategy != "no" and not (d.val_size or d.eval_dataset):
        raise ConfigError(f"eval_strategy '{t.eval_strategy}' needs val_size > 0 or eval_dataset")
    validate_features(cfg)
    validate_method(cfg)


def _validate_train(t: TrainConfig) -> None:
    """TrainConfig range rules (the training engine's; optimizer/scheduler names are checked
    against transformers in train/arguments.py, still before any model is loaded)."""
    if t.logging_steps <= 0 or (t.logging_steps > 1 and t.logging_steps != int(t.logging_steps)):
        raise ConfigError(f"key 'logging_steps': must be a positive whole number of steps or a "
                          f"fraction of the run below 1, got {t.logging_steps}")
    if t.logging_steps >= 1:
        t.logging_steps = int(t.logging_steps)
    if t.warmup_steps < 0:
        raise ConfigError(f"key 'warmup_steps': must be >= 0, got {t.warmup_steps}")
    for key in ("weight_decay", "max_grad_norm", "dataloader_num_workers"):
        if getattr(t, key) < 0:
            raise ConfigError(f"key '{key}': must be >= 0, got {getattr(t, key)}")
    if t.micro_batch_tokens != "auto" and t.micro_batch_tokens < 0:
        raise ConfigError("key 'micro_batch_tokens': must be auto, 0 (one pass) or a positive "
                          f"number of tokens per pass, got {t.micro_batch_tokens}")
    if t.save_strategy == "steps" and t.save_steps <= 0:
        raise ConfigError(f"key 'save_steps': must be a positive integer, got {t.save_steps}")
    if t.eval_steps is not None and t.eval_steps <= 0:
        raise ConfigError(f"key 'eval_steps': must be a positive integer, got {t.eval_steps}")
    if t.save_total_limit is not None and t.save_total_limit <= 0:
        raise ConfigError(f"key 'save_total_limit': must be positive, got {t.save_total_limit}")
    if t.load_best_model_at_end and t.eval_strategy == "no":
        raise ConfigError("load_best_model_at_end needs evaluation: set eval_strategy: steps "
                          "(or epoch) and val_size or eval_dataset")
    if t.deepspeed and t.fsdp:
        raise ConfigError("deepspeed and fsdp are both set: choose one")
    if "none" in t.report_to and len(t.report_to) > 1:
        raise ConfigError("report_to: 'none' cannot be combined with other trackers")


def _validate_scale(d: DataConfig, t: TrainConfig) -> None:
    """Streaming, dataset mixing and multi-node rules (data/stream.py, train/distributed.py)."""
    if d.buffer_size <= 0:
        raise ConfigError(f"key 'buffer_size': must be a positive number of rows, got {d.buffer_size}")
    if d.preprocessing_num_workers is not None and d.preprocessing_num_workers <= 0:
        raise ConfigError("key 'preprocessing_num_workers': must be a positive integer, got "
                          f"{d.preprocessing_num_workers}")
    if d.interleave_probs is not None:
        _validate_probs(d)
    if t.nnodes <= 0:
        raise ConfigError(f"key 'nnodes': must be a positive integer, got {t.nnodes}")
    if not 0 <= t.node_rank < t.nnodes:
        raise ConfigError(f"key 'node_rank': must be in [0, nnodes={t.nnodes}), got {t.node_rank}")
    if t.master_port is not None and not 0 < t.master_port < 65536:
        raise ConfigError(f"key 'master_port': must be a TCP port (1-65535), got {t.master_port}")


def _validate_probs(d: DataConfig) -> None:
    probs, names = d.interleave_probs, d.dataset or []
    if d.mix_strategy == "concat":
        raise ConfigError("key 'interleave_probs' needs mix_strategy: interleave_under or "
                          "interleave_over (concat reads the datasets one after another)")
    if len(probs) != len(names):
        raise ConfigError(f"key 'interleave_probs': {len(probs)} values for {len(names)} datasets "
                          f"({', '.join(names) or 'none'}); give one per dataset")
    if any(p < 0 for p in probs) or abs(sum(probs) - 1) > 1e-6:
        raise ConfigError(f"key 'interleave_probs': must be >= 0 and sum to 1, got {probs}")
