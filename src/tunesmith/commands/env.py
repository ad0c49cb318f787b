"""``tunesmith env``: versions, hardware and the automatic dtype, for bug reports."""

from __future__ import annotations

import importlib.metadata
import platform

PACKAGES = ("torch", "transformers", "peft", "datasets", "accelerate", "safetensors",
            "bitsandbytes", "fastapi", "uvicorn", "starlette", "gradio", "trl", "deepspeed", "vllm")


def add_arguments(parser) -> None:
    pass


def versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def run(args) -> int:
    from .. import __version__
    from ..hardware import detect

    hw = detect()
    print(f"tunesmith     {__version__}")
    print(f"python        {platform.python_version()} ({platform.platform()})")
    for name, version in versions().items():
        print(f"{name:13} {version}")
    print(f"device        {hw.device}: {hw.name}")
    print(f"cpu           capability {hw.cpu_capability}, native bf16: {hw.bf16_native}")
    print(f"auto dtype    {hw.auto_dtype} ({hw.reason})")
    cpu = hw.device == "cpu"
    print("training      " + ("bf16 weights under bf16 autocast, adapters in fp32 (not k-bit)"
                              if cpu and hw.auto_dtype == "bf16" else
                              f"{hw.auto_dtype} weights" if cpu else
                              "autocast in the GPU's dtype"))
    print("attention     " + ("hybrid (math up to 192 keys, sdpa beyond)" if cpu else "sdpa")
          + " for attn_implementation: auto")
    return 0
