"""What the machine can do: CPU capability, accelerator, and the dtype to train in.

bf16 is only chosen on a CPU when oneDNN reports native bf16 support (AMX/AVX512-BF16);
on AVX2-only CPUs bf16 matmul is 30-180x slower than fp32, so fp32 is used there.
"""

from __future__ import annotations

import functools
import platform
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Hardware:
    device: str  # "cuda" | "mps" | "cpu"
    name: str
    cpu_capability: str
    bf16_native: bool
    fp16_native: bool
    auto_dtype: str  # "bf16" | "fp16" | "fp32"
    reason: str


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _cpu_bf16_native() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _cpu_amx() -> bool:
    # torch >= 2.6 dropped _is_amx_tile_supported; _init_amx asks the kernel for AMX tile state
    # (True only when the CPU has AMX and the OS enabled it), then /proc/cpuinfo as last resort.
    for probe in ("_is_amx_tile_supported", "_init_amx"):
        fn = getattr(torch._C._cpu, probe, None)
        if fn is not None:
            try:
                return bool(fn())
            except RuntimeError:
                return False
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            return " amx_bf16" in fh.read()
    except OSError:
        return False


@functools.lru_cache(maxsize=1)
def detect() -> Hardware:
    """Detect the accelerator or CPU features and pick the automatic training dtype."""
    capability = torch.backends.cpu.get_cpu_capability()
    if torch.cuda.is_available():
        major, _ = torch.cuda.get_device_capability(0)
        bf16 = torch.cuda.is_bf16_supported()
        dtype = "bf16" if bf16 else "fp16"
        return Hardware("cuda", torch.cuda.get_device_name(0), capability, bf16, major >= 6,
                        dtype, f"CUDA sm_{major}x: {'bf16' if bf16 else 'fp16'} supported")
    bf16 = _cpu_bf16_native() and _cpu_amx()
    reason = ("CPU has AMX-BF16: bf16 weights are faster" if bf16
              else f"CPU capability {capability} lacks AMX-BF16: bf16 would be much slower, using fp32")
    return Hardware("cpu", _cpu_name(), capability, bf16, False, "bf16" if bf16 else "fp32", reason)


DTYPES = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16,
          "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16}


def resolve_dtype(name: str | None) -> str:
    """Map a user dtype name (``auto`` included) to one of ``fp32``, ``bf16``, ``fp16``."""
    if name in (None, "auto"):
        return detect().auto_dtype
    canonical = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}.get(name, name)
    if canonical not in ("fp32", "bf16", "fp16"):
        from .errors import ConfigError

        raise ConfigError(f"dtype '{name}' is not one of auto, fp32, bf16, fp16")
    return canonical


def torch_dtype(name: str | None) -> torch.dtype:
    """The torch dtype for a user dtype name."""
    return DTYPES[resolve_dtype(name)]
