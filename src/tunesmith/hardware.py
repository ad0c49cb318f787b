"""What the machine can do: CPU capability, accelerator, and the dtype to train in.

bf16 is chosen on a CPU that has bf16 dot-product instructions -- AMX-BF16 (Intel Sapphire
Rapids and later), AVX512-BF16 (AMD Zen 4 and later, Intel Cooper Lake), Arm's BF16 -- and that
oneDNN can use. Measured per training step on the bench workloads: 1.4x faster than fp32 on an
AMX Xeon, 2.1x on a Zen 4 EPYC with AVX512-BF16 (docs/performance.md). oneDNN also reports
"bf16 support" on AVX512 CPUs without those instructions (Skylake: emulated, slow), and on
AVX2-only CPUs bf16 matmul is 30-180x slower than fp32: fp32 is used there.
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
    cuda_capability: tuple[int, int] | None = None  # (major, minor) of GPU 0


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


def _cpu_flags() -> set[str]:
    """The CPU feature flags (x86 ``flags``, Arm ``Features``) from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith(("flags", "Features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_bf16_instructions() -> str | None:
    """The CPU's bf16 dot-product instructions (``AMX-BF16``, ``AVX512-BF16``, ``BF16``), or None."""
    if _cpu_amx():
        return "AMX-BF16"
    flags = _cpu_flags()
    if "avx512_bf16" in flags:
        return "AVX512-BF16"
    if "bf16" in flags:  # Arm (Graviton 3, Neoverse V1/V2 and later)
        return "BF16"
    return None


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
        major, minor = torch.cuda.get_device_capability(0)
        bf16 = torch.cuda.is_bf16_supported()
        dtype = "bf16" if bf16 else "fp16"
        reason = (f"CUDA sm_{major}{minor}: bf16 supported" if bf16 else
                  f"CUDA sm_{major}{minor}: no bf16, fp16 with loss scaling")
        return Hardware("cuda", torch.cuda.get_device_name(0), capability, bf16, major >= 6,
                        dtype, reason, (major, minor))
    instructions = cpu_bf16_instructions()
    bf16 = _cpu_bf16_native() and instructions is not None
    reason = (f"CPU has {instructions}: bf16 weights are faster" if bf16 else
              f"CPU capability {capability} has no bf16 dot-product instructions (AMX-BF16, "
              "AVX512-BF16): bf16 would be much slower, using fp32")
    return Hardware("cpu", _cpu_name(), capability, bf16, False, "bf16" if bf16 else "fp32", reason)


DTYPES = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16,
          "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16}


def resolve_dtype(name: str | None) -> str:
    """Map a user dtype name (``auto`` included) to one of ``fp32``, ``bf16``, ``fp16``."""
    if name in (None, "auto"):
        return detect().auto_dtype
    canonical = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}.get(name, name)
    if canonical not in ("fp32", "bf16", "fp16"):
        from .config_parse import DTYPE_CHOICES
        from .errors import ConfigError

        raise ConfigError(f"dtype '{name}' is not one of {', '.join(DTYPE_CHOICES)}")
    return canonical


def torch_dtype(name: str | None) -> torch.dtype:
    """The torch dtype for a user dtype name."""
    return DTYPES[resolve_dtype(name)]


def _cgroup_limit_mb() -> float | None:
    """The container's memory limit (cgroup v2 ``memory.max``, v1 ``limit_in_bytes``), if any."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path, encoding="utf-8") as fh:
                value = fh.read().strip()
        except OSError:
            continue
        if value.isdigit() and int(value) < 2**60:
            return int(value) / 2**20
    return None


def meminfo_mb(field: str) -> float | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


COPY_SHARE = 0.25  # a weight copy made only for speed may take at most this share of free memory


def copy_fits(tensors) -> tuple[bool, float]:
    """Whether one more copy of ``tensors`` fits in ``COPY_SHARE`` of the free memory, and its MiB
    (merged rollouts and prepacked decoding weights make such copies)."""
    need = sum(t.numel() * t.element_size() for t in tensors) / 2**20
    free = available_memory_mb()
    return free is not None and need <= COPY_SHARE * free, need


def available_memory_mb() -> float | None:
    """Memory a training run on this machine can plan with, in MiB: free GPU memory on CUDA;
    on a CPU the kernel's ``MemAvailable`` plus what this process holds already (the estimate
    counts the process itself), capped by a container limit. None where it cannot be read."""
    if detect().device == "cuda":
        free, _total = torch.cuda.mem_get_info(0)
        return (free + torch.cuda.memory_reserved(0)) / 2**20
    avail = meminfo_mb("MemAvailable")
    if avail is None:
        return None
    try:
        import resource

        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    except (ImportError, OSError):
        own = 0.0
    limit = _cgroup_limit_mb()
    return min(avail + own, limit) if limit else avail + own
