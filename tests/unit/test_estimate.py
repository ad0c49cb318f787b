"""estimate: parameter counts on the meta device, memory terms, GPU sizes, calibration."""

from __future__ import annotations

import json

import pytest

from tunesmith.commands.estimate import parse_size_mb
from tunesmith.config import load_config
from tunesmith.errors import ConfigError
from tunesmith.estimate import estimate_run
from tunesmith.estimate.memory import MemoryEstimate


def cfg_for(overrides, **extra):
    return load_config(None, {**overrides, **extra})


def test_estimate_sane_numbers(tiny_overrides):
    est = estimate_run(cfg_for(tiny_overrides))
    p, m = est.params, est.memory
    assert 0 < p.trainable < p.total
    for value in (m.weights_mb, m.gradients_mb, m.optimizer_mb, m.activations_mb,
                  m.activations_ckpt_mb, m.logits_mb, m.peak_mb):
        assert value > 0
    assert m.activations_ckpt_mb < m.activations_mb
    assert m.optimizer_mb == pytest.approx(2 * m.gradients_mb)
    assert est.data.rows == 24 and est.data.p50 <= est.data.p90 <= est.data.p100
    assert est.steps == 6


def test_checkpointing_and_packing_lower_the_peak(tiny_overrides):
    plain = estimate_run(cfg_for(tiny_overrides)).memory
    ckpt = estimate_run(cfg_for(tiny_overrides, gradient_checkpointing=True)).memory
    assert ckpt.peak_mb < plain.peak_mb
    assert ckpt.peak_if_ckpt_toggled_mb == pytest.approx(plain.peak_mb)
    packed = estimate_run(cfg_for(tiny_overrides, packing=True))
    assert packed.data.batch_tokens <= estimate_run(cfg_for(tiny_overrides)).data.batch_tokens


def test_full_finetune_trains_everything(tiny_overrides):
    over = {k: v for k, v in tiny_overrides.items() if k != "lora_rank"}
    est = estimate_run(cfg_for(over, method="full"))
    assert est.params.trainable == est.params.total


def test_gpu_size_parsing_and_fit_note(tiny_overrides):
    assert parse_size_mb("24GB") == 24 * 1024 and parse_size_mb("512MB") == 512
    assert parse_size_mb("80GiB") == 80 * 1024
    with pytest.raises(ConfigError, match="24GB"):
        parse_size_mb("lots")
    est = estimate_run(cfg_for(tiny_overrides), gpu_mb=1.0)
    assert est.device == "gpu" and est.notes and "does not fit" in est.notes[0]


def test_cli_json_with_calibration(tiny_overrides, capsys):
    from tunesmith.cli import main

    args = ["estimate", "--json", "--calibration-steps", "2"]
    args += [f"{k}={v}" for k, v in tiny_overrides.items()]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["params"]["trainable"] < out["params"]["total"]
    assert out["timing"]["tokens_per_s"] > 0 and out["timing"]["total_s"] > 0
    assert set(out["memory"]) >= {f.name for f in MemoryEstimate.__dataclass_fields__.values()}


def test_cli_text_for_gpu(tiny_overrides, capsys):
    from tunesmith.cli import main

    args = ["estimate", "--gpu", "24GB"] + [f"{k}={v}" for k, v in tiny_overrides.items()]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "trainable" in text and "fits in 24.00 GiB" in text and "expected peak" in text
