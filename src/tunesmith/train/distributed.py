"""More than one process: ``nproc_per_node`` relaunch, DeepSpeed and FSDP config pass-through.

``tunesmith train ... nproc_per_node=N`` re-runs itself as ``python -m torch.distributed.run
--nproc_per_node N -m tunesmith.cli train ...`` (no shell). Started under ``torchrun`` or
``accelerate launch`` (``WORLD_SIZE`` set), it trains as one rank of that group; the HF Trainer
sets up DDP (gloo on CPU, nccl on CUDA).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from ..errors import ConfigError


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_launched() -> bool:
    """True inside torchrun / accelerate launch (a rank of a process group)."""
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_command(nproc: int, argv: list[str]) -> list[str]:
    """The torch.distributed.run command re-running this CLI in ``nproc`` processes."""
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
            "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
            "-m", "tunesmith.cli", "train", *argv]


def relaunch(nproc: int, argv: list[str]) -> int:
    """Run the distributed job and return its exit code (the ranks' own output streams through)."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    proc = subprocess.Popen(launch_command(nproc, argv), env=env)
    try:
        return proc.wait()
    except KeyboardInterrupt:  # torchrun forwards the signal to the ranks; wait for their save
        return proc.wait()


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
        raise ConfigError("key 'deepspeed' needs the DeepSpeed package: pip install deepspeed "
                          "(Linux + a CUDA toolkit); or remove 'deepspeed' to train with DDP") from None
    return str(p)


def fsdp_kwargs(value: str) -> dict:
    """``fsdp: path.json`` (an FSDP config, examples/fsdp/) or an options string
    (``full_shard auto_wrap``) -> TrainingArguments keywords."""
    if value.endswith((".json", ".yaml", ".yml")):
        p = Path(value).expanduser()
        if not p.is_file():
            raise ConfigError(f"key 'fsdp': config file '{value}' not found")
        try:
            config = json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{value} line {exc.lineno}: invalid JSON: {exc.msg}") from None
        options = config.pop("fsdp", "full_shard auto_wrap")
        return {"fsdp": options, "fsdp_config": config}
    return {"fsdp": value}


def parallel_kwargs(t) -> dict:
    """DeepSpeed / FSDP keywords for TrainingArguments (validated)."""
    if t.deepspeed:
        return {"deepspeed": check_deepspeed(t.deepspeed)}
    if t.fsdp:
        return fsdp_kwargs(t.fsdp)
    return {}
