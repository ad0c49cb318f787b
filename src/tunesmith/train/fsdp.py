"""FSDP through accelerate and the HF Trainer: the ``fsdp:`` key, CPU runs and full saves.

``fsdp:`` takes a JSON/YAML file (examples/fsdp/: FSDP2 settings as transformers'
``fsdp_config`` names them) or LLaMA-Factory's options string (``full_shard auto_wrap
[offload]``), which is translated into the same settings (transformers 5 deprecates the string).

On CPU (gloo) FSDP runs for real, to check a setup before renting GPUs: accelerate would drop the
plugin there (:func:`fsdp_on_cpu`). Checkpoints keep the configured ``state_dict_type`` (sharded:
one file set per rank, resumable with the same number of ranks) plus, for adapters, the gathered
adapter; the final save always gathers the full state dict, so the run folder holds a normal
adapter (or model) for chat and export.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

from ..errors import ConfigError

# LLaMA-Factory / transformers 4 option words -> fsdp_config settings (FSDP2)
OPTIONS = {"full_shard": {"reshard_after_forward": True},
           "shard_grad_op": {"reshard_after_forward": False},
           "hybrid_shard": {"reshard_after_forward": True},
           "offload": {"cpu_offload": True},
           "auto_wrap": {"auto_wrap_policy": "TRANSFORMER_BASED_WRAP"}}
DEFAULTS = {"version": 2, "auto_wrap_policy": "TRANSFORMER_BASED_WRAP", "reshard_after_forward": True}


def options_config(words: str, where: str = "key 'fsdp'") -> dict:
    """``full_shard auto_wrap offload`` -> fsdp_config settings (unknown word: ConfigError)."""
    config: dict = {}
    for word in words.replace(",", " ").split():
        if word not in OPTIONS:
            raise ConfigError(f"{where}: unknown FSDP option '{word}' (known: {', '.join(OPTIONS)}; "
                              "or a config file such as examples/fsdp/fsdp_config.json)")
        config.update(OPTIONS[word])
    return config


def _read(value: str) -> dict:
    p = Path(value).expanduser()
    if not p.is_file():
        raise ConfigError(f"key 'fsdp': config file '{value}' not found "
                          "(ready ones: examples/fsdp/fsdp_config.json, fsdp_offload_config.json)")
    text = p.read_text(encoding="utf-8")
    if p.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{value} line {exc.lineno}: invalid JSON: {exc.msg}") from None
    else:
        from ..config_parse import _parse_yaml_text

        data = _parse_yaml_text(text, value)
    if not isinstance(data, dict):
        raise ConfigError(f"{value}: expected a mapping of FSDP settings")
    return data


def fsdp_kwargs(value: str) -> dict:
    """``fsdp:`` -> TrainingArguments keywords (``fsdp=True`` and a full ``fsdp_config``)."""
    if value.endswith((".json", ".yaml", ".yml")):
        config = _read(value)
        words = config.pop("fsdp", "")
        config = {k[5:] if k.startswith("fsdp_") else k: v for k, v in config.items()}
        config = {**options_config(words, value), **config}
    else:
        config = options_config(value)
    config = {**DEFAULTS, **config}
    if config.get("cpu_offload") and _on_cpu():
        # torch's FSDP2 pins offloaded shards (tensor.pin_memory), which needs an accelerator;
        # on a CPU run the parameters are in CPU memory already
        config["cpu_offload"] = False
        _note_once("note: fsdp cpu_offload has nothing to move on a CPU run: training without it")
    return {"fsdp": True, "fsdp_config": config}


_NOTED: set = set()


def _note_once(line: str) -> None:
    from .distributed import is_main_process

    if is_main_process() and line not in _NOTED:
        _NOTED.add(line)
        print(line, file=sys.stderr, flush=True)


def _on_cpu() -> bool:
    from ..hardware import detect

    return detect().device == "cpu"


@contextlib.contextmanager
def fsdp_on_cpu():
    """While the Trainer builds its Accelerator: keep the FSDP plugin on CPU.

    accelerate 1.15 ``AcceleratorState.__init__`` sets ``DistributedType.FSDP`` only when the
    distributed type is a multi-accelerator one (MULTI_GPU, MULTI_XPU, ...); with ``use_cpu`` it
    stays MULTI_CPU and drops the plugin, so the Trainer would silently run DDP. torch's FSDP2
    (``fully_shard``) runs on CPU with gloo, so the Accelerator the Trainer creates is switched
    to FSDP with the plugin it was given, before the Trainer reads its flags.
    """
    import transformers.trainer as hf_trainer
    from accelerate.utils import DistributedType

    real = hf_trainer.Accelerator

    def accelerator(**kwargs):
        acc = real(**kwargs)
        if acc.state.distributed_type == DistributedType.MULTI_CPU and kwargs.get("fsdp_plugin"):
            acc.state.distributed_type = DistributedType.FSDP
            acc.state.fsdp_plugin = kwargs["fsdp_plugin"]
        return acc

    hf_trainer.Accelerator = accelerator
    try:
        yield
    finally:
        hf_trainer.Accelerator = real


def save_full(trainer, output_dir: str) -> bool:
    """Save the gathered full state dict of an FSDP2 model (every rank must call this).

    torch's ``get_model_state_dict(full_state_dict=True)`` gathers the shards onto rank 0's CPU;
    accelerate's ``get_state_dict`` left DTensors there on CPU runs, which PEFT cannot save.

    Returns:
        False when the model is not an FSDP2 one (the Trainer's own save applies).
    """
    plugin = getattr(trainer.accelerator.state, "fsdp_plugin", None)
    if not trainer.is_fsdp_enabled or plugin is None or plugin.fsdp_version != 2:
        return False
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    state_dict = get_model_state_dict(trainer.model, options=options)
    if trainer.args.should_save:
        trainer._save(output_dir, state_dict=state_dict)
    return True
