"""QLoRA on the bundled SmolLM2-135M on CPU: 4-bit NF4 (double quant) and 8-bit bases train
through bitsandbytes' CPU kernels; only the adapter changes; the adapter reloads on a freshly
quantized base to the same logits, and merges onto a full-precision base."""

from __future__ import annotations

import pytest

from tunesmith.model.quantize import is_quantized, quantization_config

from .checks import assert_learns, assert_merges, assert_reloads, assert_trains_exactly, reload
from .conftest import train_method


@pytest.fixture
def qlora_overrides(tiny_overrides, bundled_dir):
    return {**tiny_overrides, "model_name_or_path": str(bundled_dir), "method": "qlora",
            "max_steps": 3, "per_device_train_batch_size": 2, "cutoff_len": 96,
            "learning_rate": 5e-3, "lora_target": "q_proj,v_proj"}


def _lora(name: str) -> bool:
    return "lora_" in name


@pytest.mark.slow
@pytest.mark.parametrize("bits, extra", [
    (4, {"quantization_type": "nf4", "double_quantization": True}),
    (8, {}),
])
def test_qlora_trains_on_cpu(bits, extra, qlora_overrides, bundled_dir):
    run = train_method({**qlora_overrides, "quantization_bit": bits, **extra})
    base = run.model.get_base_model()
    assert is_quantized(run.model)
    assert getattr(base, f"is_loaded_in_{bits}bit")
    assert_learns(run)
    assert_trains_exactly(run, _lora)
    if bits == 4:  # one reload/merge suffices for the method; each 4-bit load re-quantizes
        assert_reloads(run, bundled_dir, atol=1e-4,
                       quantization_config=quantization_config(run.cfg.model))
        assert_merges(reload(run, bundled_dir), atol=1e-3)  # on a full-precision base


def test_4bit_config_carries_type_double_quant_and_compute_dtype():
    import torch

    from tunesmith.config import load_config

    cfg = load_config(None, {"method": "qlora", "quantization_type": "fp4",
                             "double_quantization": False, "dtype": "fp32"})
    q = quantization_config(cfg.model)
    assert q.load_in_4bit and q.bnb_4bit_quant_type == "fp4" and not q.bnb_4bit_use_double_quant
    assert q.bnb_4bit_compute_dtype == torch.float32
    assert quantization_config(load_config(None, {"method": "qlora", "quantization_bit": 8}).model).load_in_8bit
