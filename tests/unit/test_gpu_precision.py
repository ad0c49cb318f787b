"""The GPU path's dtype and attention rules, with torch.cuda's answers mocked (no GPU here).

dtype auto on CUDA: bf16 where supported, else fp16 with loss scaling; adapter methods never load
fp32 weights by default; QLoRA's compute dtype follows; full/freeze/bitfit keep fp32 master
weights; attention auto: flash_attention_2 when installed on sm_80+ with 16-bit weights, else
sdpa; `tunesmith env` and `estimate --gpu` show and use the same choice.
"""

from __future__ import annotations

import pytest
import torch

from tunesmith import hardware
from tunesmith.config import load_config
from tunesmith.methods import METHODS
from tunesmith.model import load as model_load
from tunesmith.train.arguments import precision_flags, training_dtype

GPUS = {"A100": ((8, 0), True), "T4": ((7, 5), False), "V100": ((7, 0), False),
        "RTX4090": ((8, 9), True)}


@pytest.fixture
def gpu(monkeypatch):
    """``gpu("T4")`` makes this process see that GPU (torch.cuda mocked; detect() re-run)."""

    import transformers.trainer  # noqa: F401  (imported for real before torch.cuda is mocked)

    METHODS.discover()

    def use(name: str):
        capability, bf16 = GPUS[name]
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=0: capability)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: f"NVIDIA {name}")
        hardware.detect.cache_clear()
        return hardware.detect()

    yield use
    hardware.detect.cache_clear()


def _cfg(**over):
    return load_config(None, {"lora_rank": 4, **over})


def _adapter_methods() -> list[str]:
    METHODS.discover()
    return sorted(name for name in METHODS.names() if METHODS.get(name).saves_adapter)


def test_auto_dtype_is_bf16_where_supported_else_fp16_with_loss_scaling(gpu):
    assert gpu("A100").auto_dtype == "bf16"
    assert training_dtype(_cfg()) == "bf16"
    assert precision_flags(_cfg()) == {"bf16": True, "fp16": False}
    hw = gpu("T4")
    assert hw.auto_dtype == "fp16" and "loss scaling" in hw.reason
    assert training_dtype(_cfg()) == "fp16"
    assert precision_flags(_cfg()) == {"bf16": False, "fp16": True}  # fp16 -> GradScaler


@pytest.mark.parametrize("name", ["A100", "T4"])
def test_adapter_methods_never_load_fp32_weights_by_default(gpu, name):
    from tunesmith.errors import ConfigError

    gpu(name)
    checked = []
    for method in _adapter_methods():
        over = {"quantization_bit": 4} if method == "qlora" else {}
        try:
            cfg = load_config(None, {"method": method, **over})
        except ConfigError:  # a method that refuses to run at all (the bottleneck 'adapter')
            continue
        assert training_dtype(cfg) in ("bf16", "fp16"), method
        checked.append(method)
    assert {"lora", "qlora", "ia3", "prefix", "prompt", "adalora"} <= set(checked)


def test_methods_that_train_the_base_keep_fp32_master_weights_under_autocast(gpu):
    gpu("A100")
    for method in ("full", "freeze", "bitfit"):
        cfg = load_config(None, {"method": method})
        assert training_dtype(cfg) == "fp32" and precision_flags(cfg)["bf16"], method
    assert training_dtype(load_config(None, {"method": "full", "dtype": "bf16"})) == "bf16"
    gpu("T4")
    cfg = load_config(None, {"method": "full"})
    assert training_dtype(cfg) == "fp32" and precision_flags(cfg) == {"bf16": False, "fp16": True}


def test_flags_and_dtype_key_win(gpu):
    gpu("A100")
    assert training_dtype(_cfg(fp16=True)) == "fp16"
    assert precision_flags(_cfg(fp16=True)) == {"bf16": False, "fp16": True}
    assert training_dtype(_cfg(dtype="fp32")) == "fp32"
    assert precision_flags(_cfg(dtype="fp32")) == {"bf16": False, "fp16": False}
    gpu("T4")
    assert training_dtype(_cfg(bf16=True)) == "bf16"


@pytest.mark.parametrize("name, flags, expected", [
    ("A100", {}, torch.bfloat16), ("T4", {}, torch.float16), ("A100", {"fp16": True}, torch.float16),
])
def test_qlora_compute_dtype_follows_the_training_dtype(gpu, name, flags, expected):
    import bitsandbytes  # noqa: F401  (the qlora extra is in dev: missing is a failure)
    from tunesmith.model.quantize import quantization_config

    gpu(name)
    cfg = _cfg(method="qlora", quantization_bit=4, **flags)
    quant = quantization_config(cfg.model, compute_dtype=training_dtype(cfg))
    assert quant.bnb_4bit_compute_dtype == expected


@pytest.mark.parametrize("name, installed, dtype, expected", [
    ("A100", True, "bf16", "flash_attention_2"), ("RTX4090", True, "fp16", "flash_attention_2"),
    ("A100", False, "bf16", "sdpa"), ("T4", True, "fp16", "sdpa"), ("A100", True, "fp32", "sdpa"),
])
def test_attention_auto_on_a_gpu(gpu, monkeypatch, name, installed, dtype, expected):
    gpu(name)
    monkeypatch.setattr(model_load, "flash_attention_installed", lambda: installed)
    assert model_load.attn_implementation("auto", dtype) == expected
    assert model_load.attn_implementation("eager", dtype) == "eager"


@pytest.mark.parametrize("name", ["A100", "T4"])
def test_env_shows_the_choice_training_makes(gpu, monkeypatch, capsys, name):
    from tunesmith.cli import main

    gpu(name)
    monkeypatch.setattr(model_load, "flash_attention_installed", lambda: True)
    assert main(["env"]) == 0
    out = capsys.readouterr().out
    compute = training_dtype(_cfg())
    attention = model_load.attn_implementation("auto", compute)
    assert f"auto dtype    {compute}" in out
    assert f"base weights in {compute}, adapters fp32" in out
    assert "full/freeze/bitfit: fp32 master weights" in out
    assert f"attention     {attention} for attn_implementation: auto" in out
    assert ("with loss scaling" in out) == (compute == "fp16")


def test_estimate_gpu_uses_the_gpu_rules_on_a_cpu_machine(tiny_overrides):
    from tunesmith.estimate import estimate_run

    assert hardware.detect().device == "cpu"
    est = estimate_run(load_config(None, {**tiny_overrides, "dtype": "auto"}), gpu_mb=24 * 1024)
    assert est.dtype == "bf16" and est.params.frozen_dtype == "bf16"
    assert est.precision.startswith("weights bf16, bf16 autocast, attention ")
    here = estimate_run(load_config(None, {**tiny_overrides, "dtype": "auto"}))
    assert here.dtype == hardware.detect().auto_dtype and "on CPU" in here.precision
