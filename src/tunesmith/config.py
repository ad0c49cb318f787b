"""YAML + command-line overrides -> a validated ``RunConfig``.

Keys are flat (as in LLaMA-Factory): each belongs to exactly one section dataclass, or to a
method's parameter dataclass (``methods/``). Parsing is strict: an unknown key is an error that
names the nearest valid key. Cross-field rules live in :func:`config_validate.validate`, one rule
per ``if``.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from .config_parse import coerce, parse_overrides, read_yaml, suggest
from .errors import ConfigError

CONFIG_FILENAME = "tunesmith_config.yaml"
Auto = Literal["auto"]  # a speed key that tunesmith decides per run unless set (train/auto.py)


@dataclass
class ModelConfig:
    model_name_or_path: str = "smollm2-135m"
    adapter_name_or_path: str | None = None
    template: str = "auto"
    default_system: str | None = None
    trust_remote_code: bool = False
    dtype: str = "auto"
    attn_implementation: str = "auto"
    quantization_bit: int | None = None
    quantization_type: str = "nf4"
    double_quantization: bool = True
    allow_pickle: bool = False
    model_revision: str | None = None
    hf_token: str | None = None
    hub: str = "auto"
    add_tokens: list[str] | None = None
    add_special_tokens: list[str] | None = None
    resize_vocab: bool = False


@dataclass
class DataConfig:
    dataset: list[str] | None = None
    dataset_dir: str = "data"
    eval_dataset: list[str] | None = None
    subset: str | None = None
    split: str = "train"
    format: str = "auto"
    columns: dict | None = None
    placeholders: dict | None = None
    cutoff_len: int = 2048
    max_samples: int | None = None
    val_size: float = 0.0
    train_on: str = "all_assistant"
    streaming: bool = False
    buffer_size: int = 16384
    mix_strategy: str = "concat"
    interleave_probs: list[float] | None = None
    packing: bool | Auto = "auto"
    max_drop_ratio: float = 0.5
    strict: bool = False
    overwrite_cache: bool = False
    preprocessing_num_workers: int | None = None
    data_seed: int | None = None


@dataclass
class MethodConfig:
    stage: str = "sft"
    method: str = "lora"
    params: dict = field(default_factory=dict)  # the method's keys as set (typed values; saved)
    stage_params: dict = field(default_factory=dict)  # the stage's own keys (train/stages/)
    # The method's parameter dataclass, built once by validate (methods.method_params reads it).
    typed: Any = field(default=None, repr=False, compare=False)


# MethodConfig fields that hold other keys or derived values: not config keys themselves.
NOT_KEYS = ("params", "stage_params", "typed")


@dataclass
class TrainConfig:
    output_dir: str = "output"
    overwrite_output_dir: bool = False
    learning_rate: float = 1e-4
    num_train_epochs: float = 3.0
    max_steps: int = -1
    per_device_train_batch_size: int = 4
    per_device_eval_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    lr_scheduler_type: str = "cosine"
    warmup_steps: float = 0  # a value < 1 is a fraction of the total steps (transformers 5)
    warmup_ratio: float = 0.0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    optim: str = "adamw_torch"
    seed: int = 42
    bf16: bool | None = None
    fp16: bool | None = None
    gradient_checkpointing: bool | Literal["auto", "selective"] = "auto"  # model/checkpointing.py
    cpu_allocator: str = "auto"  # auto | lean | default (model/allocator.py)
    micro_batch_tokens: int | Auto = "auto"  # tokens per forward/backward pass (train/trainer.py)
    logging_steps: float = 10  # a value < 1 is a fraction of the total steps (transformers)
    eval_strategy: str = "no"
    eval_steps: int | None = None
    save_strategy: str = "steps"
    save_steps: int = 500
    save_total_limit: int | None = None
    save_only_model: bool = False
    load_best_model_at_end: bool = False
    metric_for_best_model: str | None = None
    dataloader_num_workers: int = 0
    report_to: list[str] = field(default_factory=lambda: ["none"])
    run_name: str | None = None
    tracker_project: str | None = None
    tracker_tags: list[str] = field(default_factory=list)
    resume_from_checkpoint: str | None = None
    resume_force: bool = False
    nan_policy: str = "stop"
    plot_loss: bool = True
    nproc_per_node: int = 1
    nnodes: int = 1
    node_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int | None = None
    deepspeed: str | None = None
    fsdp: str | None = None
    torch_compile: bool = False
    group_by_length: bool = False
    fast_loss: bool = True
    fused_lora: bool = True
    fused_mlp: bool = True
    trainer_args: dict = field(default_factory=dict)
    do_train: bool = False
    do_eval: bool = False
    neftune_noise_alpha: float | None = None
    early_stopping_steps: int | None = None
    do_predict: bool = False
    predict_with_generate: bool = False


@dataclass
class InferConfig:
    infer_backend: str = "hf"
    rollout_merge: bool | Auto = "auto"
    max_new_tokens: int = 512
    do_sample: bool = False
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 50
    repetition_penalty: float = 1.0
    system: str | None = None
    stop: list[str] | None = None
    metrics: list[str] = field(default_factory=lambda: ["bleu", "rouge"])
    export_dir: str | None = None
    export_size: float = 5.0
    export_device: str = "cpu"
    export_dtype: str = "auto"
    export_legacy_format: bool = False
    export_dequantize: bool = False
    export_format: str = "safetensors"
    export_quantization: list[str] = field(default_factory=list)


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    model_name: str | None = None
    max_concurrency: int = 8
    max_queue: int = 64
    max_tokens_cap: int = 4096
    max_n: int = 1
    max_body_bytes: int = 1_000_000
    shutdown_grace_s: float = 30.0
    serve_threads: int = 0


@dataclass
class SwanLabConfig:
    """SwanLab settings (LLaMA-Factory's names), read when report_to names swanlab."""

    swanlab_project: str | None = None
    swanlab_workspace: str | None = None
    swanlab_run_name: str | None = None
    swanlab_mode: str | None = None
    swanlab_api_key: str | None = None
    swanlab_logdir: str | None = None
    swanlab_lark_webhook_url: str | None = None
    swanlab_lark_secret: str | None = None


SECTIONS = {"model": ModelConfig, "data": DataConfig, "method": MethodConfig,
            "train": TrainConfig, "infer": InferConfig, "serve": ServeConfig,
            "swanlab": SwanLabConfig}

# Short names accepted for convenience; the canonical name is what gets saved.
ALIASES = {"model": "model_name_or_path", "adapter": "adapter_name_or_path",
           "finetuning_type": "method", "evaluation_strategy": "eval_strategy",
           "torch_dtype": "dtype", "infer_dtype": "export_dtype", "lr": "learning_rate",
           "hf_hub_token": "hf_token", "new_special_tokens": "add_special_tokens"}
# Keys never written to the saved config (a run dir is shared; the token stays in the env).
SECRETS = ("hf_token", "swanlab_api_key", "swanlab_lark_secret")


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    infer: InferConfig = field(default_factory=InferConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    swanlab: SwanLabConfig = field(default_factory=SwanLabConfig)

    def to_flat(self) -> dict[str, Any]:
        """All keys as one flat mapping (the YAML shape users write)."""
        flat: dict[str, Any] = {}
        for name in SECTIONS:
            section = dataclasses.asdict(getattr(self, name))
            params = section.pop("params", {})
            stage_params = section.pop("stage_params", {})
            section.pop("typed", None)
            flat.update(section)
            flat.update(params)
            flat.update(stage_params)
        return flat


def _key_owner() -> dict[str, str]:
    owner = {}
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            if f.name not in NOT_KEYS:
                owner[f.name] = section
    return owner


def _method_keys() -> dict[str, list[str]]:
    from .methods import method_param_keys

    return method_param_keys()


def _stage_keys() -> dict[str, list[str]]:
    # Stage keys are declared by the stage modules (train/stages/, a layer above config); the
    # registry package imports only dataclasses, so the key list is cheap to read from here.
    from .train.stages import stage_param_keys

    return stage_param_keys()


def valid_keys() -> list[str]:
    """Every key a config may set (sections, method and stage parameters, aliases)."""
    return sorted(set(_key_owner()) | set(_method_keys()) | set(_stage_keys()) | set(ALIASES))


def build_config(raw: dict[str, Any], source: str = "config") -> RunConfig:
    """Turn a flat mapping (YAML merged with overrides) into a validated RunConfig."""
    from .compat.llamafactory import translate

    owner, method_keys, stage_keys = _key_owner(), _method_keys(), _stage_keys()
    raw = translate(dict(raw), known=set(owner) | set(method_keys) | set(stage_keys) | set(ALIASES),
                    source=source)
    values: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    params: dict[str, Any] = {}
    stage_params: dict[str, Any] = {}
    for key, value in raw.items():
        key = ALIASES.get(key, key)
        if key in owner:
            section = owner[key]
            tp = typing.get_type_hints(SECTIONS[section])[key]
            values[section][key] = coerce(value, tp, key)
        elif key in method_keys:
            params[key] = value
        elif key in stage_keys:  # typed and checked against the chosen stage by check_stage
            stage_params[key] = value
        else:
            raise ConfigError(f"{source}: unknown key '{key}'{suggest(key, valid_keys())}")
    values["method"]["params"] = params
    values["method"]["stage_params"] = stage_params
    cfg = RunConfig(**{name: SECTIONS[name](**vals) for name, vals in values.items()})
    from .config_validate import validate

    validate(cfg)
    return cfg


def load_config(path: str | None = None, overrides: list[str] | dict | None = None) -> RunConfig:
    """Load a YAML file (optional) and apply command-line overrides (which win).

    Args:
        path: a YAML config file, or None for defaults only.
        overrides: ``key=value`` / ``--key value`` strings, or a mapping.
    Returns:
        The validated RunConfig.
    """
    raw = read_yaml(path) if path else {}
    if isinstance(overrides, dict):
        extra = overrides
    else:
        extra = parse_overrides(list(overrides or []))
    raw = {ALIASES.get(k, k): v for k, v in raw.items()}
    raw.update({ALIASES.get(k, k): v for k, v in extra.items()})
    return build_config(raw, source=str(path) if path else "command line")


def save_config(cfg: RunConfig, output_dir: str | Path) -> Path:
    """Write the resolved config to ``output_dir/tunesmith_config.yaml`` (rerunnable)."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / CONFIG_FILENAME
    flat = {k: (None if k in SECRETS else v) for k, v in cfg.to_flat().items()}
    path.write_text(yaml.safe_dump(flat, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path
