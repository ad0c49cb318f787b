"""More than one process: who is a rank, the same-job check, DeepSpeed and FSDP configs.

``tunesmith train ... nproc_per_node=N [nnodes=M node_rank=R master_addr=A]`` re-runs itself
under ``torch.distributed.run`` (``launcher.py``, no shell). Started under ``torchrun`` or
``accelerate launch`` (``WORLD_SIZE`` set), it trains as one rank of that group; the HF Trainer
sets up DDP (gloo on CPU, nccl on CUDA), or FSDP / DeepSpeed when configured.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..config import RunConfig


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_launched() -> bool:
    """True inside torchrun / accelerate launch (a rank of a process group)."""
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def check_same_run(cfg: RunConfig, fingerprint: dict) -> None:
    """Every rank of the job runs the same config, data and base model (else ConfigError).

    The ranks exchange their config (all keys but ``node_rank``) and the data and model hashes
    of their run fingerprint before the model is loaded, so nodes started with different
    configs or files stop at once with the difference named, instead of training apart.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    mine = {"node": cfg.train.node_rank,
            "config": {k: v for k, v in cfg.to_flat().items() if k not in NODE_KEYS},
            "data": fingerprint["data"]["hash"], "model": fingerprint["base_model"]["hash"]}
    every: list = [None] * dist.get_world_size()
    dist.all_gather_object(every, mine)
    for rank, other in enumerate(every):
        diff = _differences(every[0], other)
        if diff:
            raise ConfigError(f"rank {rank} (node {other['node']}) is not running the same job "
                              f"as rank 0 (node {every[0]['node']}): {diff}; start every node "
                              "with the same config, data and model (only node_rank differs)")


NODE_KEYS = ("node_rank",)  # the one key that differs between the nodes of a job


def _differences(ref: dict, other: dict) -> str:
    keys = sorted(k for k in set(ref["config"]) | set(other["config"])
                  if ref["config"].get(k) != other["config"].get(k))
    parts = [f"{k}={other['config'].get(k)!r} vs {ref['config'].get(k)!r}" for k in keys[:3]]
    parts += [f"{what} files differ" for what in ("data", "model") if ref[what] != other[what]]
    return "; ".join(parts)


def parallel_kwargs(t) -> dict:
    """DeepSpeed / FSDP keywords for TrainingArguments (validated)."""
    if t.deepspeed:
        from .deepspeed import check_deepspeed

        return {"deepspeed": check_deepspeed(t.deepspeed)}
    if t.fsdp:
        from .fsdp import fsdp_kwargs

        return fsdp_kwargs(t.fsdp)
    return {}
