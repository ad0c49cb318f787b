"""RELIABILITY 10: bf16 where the CPU lacks it is one actionable message; fp16 on CPU says so."""

import pytest

from tunesmith.config import load_config
from tunesmith.errors import ConfigError
from tunesmith.hardware import Hardware
from tunesmith.train import arguments

AVX2 = Hardware("cpu", "AMD EPYC", "AVX2", False, False, "fp32", "no AMX")
AMX = Hardware("cpu", "Intel Xeon", "AVX512", True, False, "bf16", "AMX")


def test_bf16_on_cpu_without_native_bf16_is_refused(monkeypatch):
    monkeypatch.setattr(arguments, "detect", lambda: AVX2)
    with pytest.raises(ConfigError, match="no native bf16"):
        arguments.training_dtype(load_config(None, ["bf16=true"]))


def test_bf16_on_amx_cpu_is_used(monkeypatch):
    monkeypatch.setattr(arguments, "detect", lambda: AMX)
    assert arguments.training_dtype(load_config(None, ["bf16=true"])) == "bf16"


def test_fp16_on_cpu_trains_fp32_and_says_so(monkeypatch, capsys):
    monkeypatch.setattr(arguments, "detect", lambda: AVX2)
    assert arguments.training_dtype(load_config(None, ["--fp16"])) == "fp32"
    assert "fp16 needs a GPU" in capsys.readouterr().err
