"""DeepSpeed ZeRO through accelerate and the HF Trainer (``deepspeed:``, examples/deepspeed/).

``pip install 'tunesmith[deepspeed]'`` installs it. On GPUs the Trainer runs it as is. On CPU
(DeepSpeed's own CPU accelerator, gloo) accelerate 1.15 does not: ``PartialState`` finds no
accelerator backend and counts one process even though DeepSpeed's ``init_distributed`` joined all
of them (and with ``use_cpu`` it skips DeepSpeed altogether), so the Trainer would fill the
config's ``"auto"`` batch size for one process and shard no data. :func:`cpu_state` corrects the
shared state to the real process group, after which ZeRO-2/3 (with CPU offload) run on CPU.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import ConfigError


def check_deepspeed(path: str) -> str:
    """The DeepSpeed JSON exists and parses, and deepspeed is installed (else one line)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"key 'deepspeed': config file '{path}' not found "
                          "(ready ones: examples/deepspeed/ds_z2_config.json, ds_z3_offload_config.json)")
    try:
        json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} line {exc.lineno}: invalid JSON: {exc.msg}") from None
    try:
        import deepspeed  # noqa: F401
    except ImportError:
        raise ConfigError("key 'deepspeed' needs the DeepSpeed package: pip install "
                          "'tunesmith[deepspeed]'; or remove 'deepspeed' to train with DDP") from None
    return str(p)


def cpu_state(args) -> None:
    """Make accelerate's shared state match DeepSpeed's CPU process group (see the module doc).

    Args:
        args: the run's TrainingArguments (their device setup initialises both).
    """
    import torch.distributed as dist
    from accelerate.state import PartialState
    from accelerate.utils import DistributedType

    _ = args.device  # sets up PartialState (and, under torchrun, DeepSpeed's process group)
    state = PartialState()
    if not dist.is_initialized() or state.num_processes == dist.get_world_size():
        return
    import os

    state.num_processes = dist.get_world_size()
    state.process_index = dist.get_rank()
    state.local_process_index = int(os.environ.get("LOCAL_RANK", "0"))
    state.backend = dist.get_backend()
    state.distributed_type = DistributedType.DEEPSPEED
    # the config's "auto" values were filled for one process in TrainingArguments.__post_init__
    from accelerate.utils import DeepSpeedPlugin
    from transformers.integrations.deepspeed import HfTrainerDeepSpeedConfig

    args.hf_deepspeed_config = HfTrainerDeepSpeedConfig(args.deepspeed)
    args.hf_deepspeed_config.trainer_config_process(args)
    args.deepspeed_plugin = DeepSpeedPlugin(hf_ds_config=args.hf_deepspeed_config)
