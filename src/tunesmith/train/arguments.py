"""Build ``transformers.TrainingArguments`` in one function from our fields + ``trainer_args``.

Every bad value turns into a one-line ConfigError here, before any model is loaded: an unknown
``trainer_args`` key (with "did you mean"), an unknown optimizer or scheduler, and anything
``TrainingArguments.__post_init__`` itself rejects (e.g. load_best_model_at_end with mismatched
save/eval strategies).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import sys
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..hardware import detect, resolve_dtype
from .distributed import parallel_kwargs
from .trackers import OWN_CALLBACK

if TYPE_CHECKING:
    from ..config import RunConfig


# Our TrainConfig fields passed to TrainingArguments under the same name.
PASS_THROUGH = (
    "output_dir", "learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size",
    "per_device_eval_batch_size", "gradient_accumulation_steps", "lr_scheduler_type",
    "weight_decay", "max_grad_norm", "optim", "seed", "gradient_checkpointing",
    "logging_steps", "eval_strategy", "save_strategy", "save_steps", "save_total_limit",
    "save_only_model", "load_best_model_at_end", "metric_for_best_model",
    "dataloader_num_workers", "run_name", "neftune_noise_alpha",
)  # torch_compile is ours (train/compile.py: decoder layers), not the Trainer's whole-model one
# Keys tunesmith sets itself; overriding them through trainer_args would break the run record.
RESERVED = ("remove_unused_columns", "disable_tqdm", "include_num_input_tokens_seen")
# Optimizers backed by an optional package: (name prefix or name) -> (module, pip name).
OPTIM_PACKAGES = (
    ("galore_", "galore_torch", "galore-torch"), ("apollo_", "apollo_torch", "apollo-torch"),
    ("schedule_free_", "schedulefree", "schedulefree"), ("adamw_torch_8bit", "torchao", "torchao"),
    ("adamw_torch_4bit", "torchao", "torchao"), ("adamw_anyprecision", "torchdistx", "torchdistx"),
    ("lomo", "lomo_optim", "lomo-optim"), ("adalomo", "lomo_optim", "lomo-optim"),
    ("grokadamw", "grokadamw", "grokadamw"), ("stable_adamw", "optimi", "torch-optimi"),
    ("paged_", "bitsandbytes", "bitsandbytes"), ("rmsprop_bnb", "bitsandbytes", "bitsandbytes"),
    ("adamw_bnb_8bit", "bitsandbytes", "bitsandbytes"), ("adamw_8bit", "bitsandbytes", "bitsandbytes"),
    ("ademamix_8bit", "bitsandbytes", "bitsandbytes"), ("lion_", "bitsandbytes", "bitsandbytes"),
)


def cpu_autocast(cfg: RunConfig) -> bool:
    """bf16 autocast on a CPU whose weights are bf16 (not k-bit): adapters keep fp32 weights and
    optimizer states, but their matmuls run in bf16 on the bf16 activations, as mixed precision
    does on a GPU. Without it PEFT copies every adapter input to fp32 and the result back
    (W1 on an AMX CPU: 12% of the step; see docs/performance.md)."""
    if cfg.train.fp16 or cfg.model.quantization_bit or detect().device != "cpu":
        return False  # (fp16 on a CPU trains fp32; training_dtype says so once)
    return training_dtype(cfg) == "bf16"


def precision_flags(cfg: RunConfig) -> dict:
    """Mixed precision flags: autocast in the GPU's compute dtype on CUDA (fp16 with loss
    scaling), and bf16 autocast on CPU (:func:`cpu_autocast`); otherwise the weights' dtype is
    the choice."""
    if detect().device == "cuda":
        compute = gpu_compute_dtype(cfg)
        return {"bf16": compute == "bf16", "fp16": compute == "fp16"}
    return {"bf16": cpu_autocast(cfg), "fp16": False}


def gpu_compute_dtype(cfg: RunConfig, bf16_supported: bool | None = None) -> str:
    """The dtype a CUDA run computes in: the ``bf16``/``fp16`` flags, else ``dtype`` (``auto``:
    bf16 where the GPU supports it, else fp16 with loss scaling; ``fp32`` only when asked for).

    Args:
        bf16_supported: for a GPU other than this machine's (``estimate --gpu``); default: ask
            the GPU (``torch.cuda.is_bf16_supported``).
    """
    t = cfg.train
    if t.bf16 or t.fp16:
        return "bf16" if t.bf16 else "fp16"
    if cfg.model.dtype in (None, "auto"):
        supported = detect().bf16_native if bf16_supported is None else bf16_supported
        return "bf16" if supported else "fp16"
    return resolve_dtype(cfg.model.dtype)


def gpu_weights_dtype(cfg: RunConfig, compute: str) -> str:
    """The weights' dtype on CUDA. Adapter methods (LoRA, QLoRA's compute dtype, IA3, prefix,
    ...) load the base in the 16-bit compute dtype: never fp32 weights by default (PEFT keeps the
    small adapter weights in fp32). Methods that train the base's own weights (full, freeze,
    bitfit) keep fp32 master weights under autocast, LLaMA-Factory's "full, 32-bit" default:
    fp16 gradients cannot be unscaled and pure bf16 AdamW loses small updates; ``dtype: bf16``
    asks for pure bf16 weights."""
    from ..methods import get_method

    if compute == "fp32" or get_method(cfg.method.method).saves_adapter:
        return compute
    pure_bf16 = cfg.model.dtype not in (None, "auto") and resolve_dtype(cfg.model.dtype) == "bf16"
    return "bf16" if pure_bf16 else "fp32"


def training_dtype(cfg: RunConfig, device: str | None = None) -> str:
    """The dtype the model weights are loaded in for training.

    Args:
        device: ``cuda`` applies the GPU rules on any machine (``estimate --gpu``; bf16
            assumed supported there); default: this machine's device.
    Raises:
        ConfigError: bf16 asked for on a CPU without native bf16 (it would run 30-180x slower).
    """
    hw = detect()
    if (device or hw.device) == "cuda":
        supported = None if hw.device == "cuda" else True
        return gpu_weights_dtype(cfg, gpu_compute_dtype(cfg, supported))
    t = cfg.train
    if t.bf16 and hw.device == "cpu" and not hw.bf16_native:
        raise ConfigError(f"bf16: true, but this CPU ({hw.cpu_capability}, no AMX/AVX512-BF16) has "
                          "no native bf16 and would train many times slower; remove bf16 "
                          "(the automatic choice is fp32 here)")
    if t.bf16:
        return "bf16"
    if t.fp16:
        print("note: fp16 needs a GPU; training in fp32 on this CPU", file=sys.stderr, flush=True)
        return "fp32"
    return resolve_dtype(cfg.model.dtype)


@functools.lru_cache(maxsize=1)
def _field_names() -> tuple[str, ...]:
    from transformers import TrainingArguments

    return tuple(f.name for f in dataclasses.fields(TrainingArguments) if f.init)


def check_trainer_args(extra: dict) -> None:
    """Unknown or reserved ``trainer_args`` keys -> ConfigError naming the nearest valid key."""
    from ..config_parse import suggest

    names = _field_names()
    for key in extra:
        if key in RESERVED:
            raise ConfigError(f"trainer_args: '{key}' is set by tunesmith and cannot be overridden")
        if key not in names:
            raise ConfigError(f"trainer_args: unknown TrainingArguments key '{key}'"
                              f"{suggest(key, names)}")


def check_optim(name: str) -> None:
    """Unknown optimizer -> ConfigError; a bitsandbytes optimizer without bitsandbytes -> hint."""
    from transformers.training_args import OptimizerNames

    from ..config_parse import suggest

    known = [o.value for o in OptimizerNames]
    if name not in known:
        raise ConfigError(f"key 'optim': unknown optimizer '{name}'{suggest(name, known)}; "
                          "common: adamw_torch, adamw_8bit, paged_adamw_8bit, sgd, adafactor")
    for prefix, module, pip_name in OPTIM_PACKAGES:
        if name.startswith(prefix) and importlib.util.find_spec(module) is None:
            raise ConfigError(f"key 'optim': '{name}' needs the '{pip_name}' package: "
                              f"pip install {pip_name} (or use adamw_torch)")


def scheduler_names() -> list[str]:
    """Every ``lr_scheduler_type`` transformers accepts."""
    from transformers.trainer_utils import SchedulerType

    return [s.value for s in SchedulerType]


def check_scheduler(name: str) -> None:
    from ..config_parse import suggest

    known = scheduler_names()
    if name not in known:
        raise ConfigError(f"key 'lr_scheduler_type': unknown scheduler '{name}'"
                          f"{suggest(name, known)}; known: {', '.join(known)}")


def warmup(t) -> float | int:
    """transformers 5 dropped ``warmup_ratio``: a float ``warmup_steps`` < 1 is a ratio."""
    if t.warmup_steps:
        return float(t.warmup_steps) if t.warmup_steps < 1 else int(t.warmup_steps)
    return float(t.warmup_ratio) if t.warmup_ratio else 0


def _base_kwargs(cfg) -> dict:
    t = cfg.train
    kwargs = {name: getattr(t, name) for name in PASS_THROUGH}
    kwargs.update(precision_flags(cfg))
    kwargs["warmup_steps"] = warmup(t)
    if t.eval_steps:
        kwargs["eval_steps"] = t.eval_steps
    if t.load_best_model_at_end and not t.metric_for_best_model:
        kwargs["metric_for_best_model"] = "eval_loss"
    # full checkpointing through the Trainer; selective is enabled on the model at load time
    # (train/model.py): its policy is a function, which TrainingArguments cannot serialize
    kwargs["gradient_checkpointing"] = t.gradient_checkpointing is True  # auto: train/auto.py
    if t.gradient_checkpointing is True:
        kwargs["gradient_checkpointing_kwargs"] = {"use_reentrant": False}
    if "activation_checkpointing" in _field_names():  # the transformers >= 5.2x name
        kwargs["activation_checkpointing"] = kwargs.pop("gradient_checkpointing")
        if "gradient_checkpointing_kwargs" in kwargs and "activation_checkpointing_kwargs" in _field_names():
            kwargs["activation_checkpointing_kwargs"] = kwargs.pop("gradient_checkpointing_kwargs")
    kwargs["dataloader_pin_memory"] = detect().device == "cuda"
    if detect().device == "cpu" and not t.deepspeed:  # also makes accelerate pick MULTI_CPU + gloo
        kwargs["use_cpu"] = True  # under torchrun (DeepSpeed: accelerate refuses it with use_cpu)
    report = [r for r in t.report_to if r != "none" and r not in OWN_CALLBACK]
    kwargs["report_to"] = report or "none"
    if t.group_by_length:
        kwargs["train_sampling_strategy"] = "group_by_length"
    kwargs.update(parallel_kwargs(t))
    if cfg.data.streaming:  # the stream skips trained rows itself (train/stream_dataset.py)
        kwargs["ignore_data_skip"] = True
        kwargs["accelerator_config"] = {"dispatch_batches": False}
    return kwargs


def build_training_args(cfg: RunConfig, **overrides):
    """TrainingArguments from the config; ``trainer_args`` passes anything else through."""
    from transformers import TrainingArguments

    t = cfg.train
    check_trainer_args(t.trainer_args)
    check_optim(t.trainer_args.get("optim", t.optim))
    check_scheduler(t.trainer_args.get("lr_scheduler_type", t.lr_scheduler_type))
    kwargs = _base_kwargs(cfg)
    kwargs.update(remove_unused_columns=False, disable_tqdm=True, logging_first_step=True,
                  include_num_input_tokens_seen="non_padding")
    kwargs.update(t.trainer_args)
    kwargs.update(overrides)
    if kwargs.get("save_strategy") == "no":
        kwargs.pop("save_total_limit", None)
    try:
        args = TrainingArguments(**kwargs)
    except (ValueError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"training arguments rejected: {first}") from None
    if t.deepspeed and detect().device == "cpu":
        from .deepspeed import cpu_state

        cpu_state(args)
    return args
