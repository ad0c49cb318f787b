"""The automatic CPU dtype: bf16 where the CPU has bf16 dot-product instructions."""

from __future__ import annotations

import pytest

from tunesmith import hardware


@pytest.mark.parametrize("amx,flags,onednn,want", [
    (True, {"avx512f", "amx_bf16"}, True, "bf16"),  # Sapphire Rapids
    (False, {"avx512f", "avx512_bf16"}, True, "bf16"),  # Zen 4, Cooper Lake
    (False, {"avx512f", "avx512bw"}, True, "fp32"),  # Skylake: oneDNN emulates bf16, slowly
    (False, {"avx2", "fma"}, False, "fp32"),  # AVX2 only
    (False, {"fp", "asimd", "bf16"}, True, "bf16"),  # Arm with BF16
])
def test_cpu_dtype_follows_bf16_instructions(monkeypatch, amx, flags, onednn, want):
    monkeypatch.setattr(hardware.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(hardware, "_cpu_amx", lambda: amx)
    monkeypatch.setattr(hardware, "_cpu_flags", lambda: flags)
    monkeypatch.setattr(hardware, "_cpu_bf16_native", lambda: onednn)
    hardware.detect.cache_clear()
    try:
        hw = hardware.detect()
        assert hw.auto_dtype == want and hw.bf16_native == (want == "bf16")
        assert ("bf16 weights are faster" in hw.reason) == (want == "bf16")
    finally:
        hardware.detect.cache_clear()
