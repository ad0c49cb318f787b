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
    training, attention = precision_lines(hw)
    print(f"training      {training}")
    print(f"attention     {attention} for attn_implementation: auto")
    return 0


def precision_lines(hw) -> tuple[str, str]:
    """What training will choose on this machine (the same functions train and estimate use)."""
    from ..config import load_config
    from ..model.load import gpu_attention
    from ..train.arguments import gpu_compute_dtype, gpu_weights_dtype

    if hw.device == "cpu":
        training = ("bf16 weights under bf16 autocast, adapters in fp32 (not k-bit)"
                    if hw.auto_dtype == "bf16" else f"{hw.auto_dtype} weights")
        return training, "hybrid (math up to 192 keys, sdpa beyond)"
    cfg = load_config(None, {"method": "lora"})
    compute = gpu_compute_dtype(cfg)
    full = gpu_weights_dtype(load_config(None, {"method": "full"}), compute)
    scaling = " with loss scaling" if compute == "fp16" else ""
    training = (f"{compute} autocast{scaling}; adapter methods (lora, qlora compute, ...): base "
                f"weights in {gpu_weights_dtype(cfg, compute)}, adapters fp32; full/freeze/"
                f"bitfit: {full} master weights")
    return training, gpu_attention(compute)
