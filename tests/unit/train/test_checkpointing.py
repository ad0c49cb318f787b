"""Activation checkpointing, full and selective: the unchecked run's loss and gradients, what the
selective policy keeps, the ``gradient_checkpointing`` values, and ``auto``'s three-way choice."""

from __future__ import annotations

import json

import pytest
import torch

from tunesmith.config import load_config
from tunesmith.data.packing import PackingCollator
from tunesmith.errors import ConfigError
from tunesmith.estimate.memory import MemoryEstimate
from tunesmith.model import checkpointing

from ..test_packing import rows, tiny_llama
from .test_compile import loss_and_grads as _loss_and_grads


def _model(mode):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    base = tiny_llama("sdpa")
    if mode:
        checkpointing.enable_checkpointing(base, mode)
    model = get_peft_model(base, LoraConfig(r=4, target_modules="all-linear",
                                            init_lora_weights=False))
    model.train()
    return model


@pytest.mark.parametrize("mode", [checkpointing.SELECTIVE, checkpointing.FULL])
def test_checkpointing_gives_the_unchecked_loss_and_gradients(mode):
    batch = PackingCollator(0)(rows(seed=3))
    loss, grads = _loss_and_grads(_model(None), batch)
    c_loss, c_grads = _loss_and_grads(_model(mode), batch)
    torch.testing.assert_close(c_loss, loss, rtol=0, atol=1e-12)
    assert grads and grads.keys() == c_grads.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(c_grads[name], grad, rtol=1e-10, atol=1e-12, msg=name)


def test_selective_keeps_products_and_attention_and_recomputes_element_wise_work(monkeypatch):
    from torch.utils.checkpoint import CheckpointPolicy

    decisions = []

    def recording(ctx, op, *args, **kwargs):
        decision = policy(ctx, op, *args, **kwargs)
        if not ctx.is_recompute:
            shapes = [tuple(a.shape) for a in args if isinstance(a, torch.Tensor)]
            decisions.append((op.__name__, shapes, decision))
        return decision

    policy = checkpointing._policy
    monkeypatch.setattr(checkpointing, "_policy", recording)
    model = _model(checkpointing.SELECTIVE)
    _loss_and_grads(model, PackingCollator(0)(rows(seed=3)))
    kept = {(name, tuple(s[-1] for s in shapes)) for name, shapes, d in decisions
            if d == CheckpointPolicy.MUST_SAVE}
    redone = [(name, shapes) for name, shapes, d in decisions
              if d == CheckpointPolicy.PREFER_RECOMPUTE]
    # base products of a layer (hidden 32, 2 of 4 kv heads of 8, intermediate 64), LoRA's A (r 4)
    for product in [(32, 32), (32, 16), (32, 64), (64, 32), (32, 4), (64, 4)]:
        assert ("mm.default", product) in kept, product
    assert any(name.startswith("_scaled_dot_product") for name, _ in kept)
    # LoRA's B (4 -> 32/64) is redone with the element-wise work
    assert any(n == "mm.default" and shapes[0][-1] == 4 for n, shapes in redone)
    assert not any(n == "mm.default" and dims[0] == 4 for n, dims in kept)
    assert {"mul.Tensor", "rsqrt.default", "silu.default"} <= {n for n, _ in redone}


def test_gradient_checkpointing_takes_selective_and_says_what_it_expects():
    assert load_config(None, {"gradient_checkpointing": "selective"}).train.gradient_checkpointing \
        == "selective"
    assert load_config(None, {"gradient_checkpointing": "SELECTIVE"}).train.gradient_checkpointing \
        == "selective"
    with pytest.raises(ConfigError, match="auto or selective, true or false"):
        load_config(None, {"gradient_checkpointing": "some"})
    assert checkpointing.checkpoint_mode(True) == "full"
    assert checkpointing.checkpoint_mode("selective") == "selective"
    assert checkpointing.checkpoint_mode(False) is None and checkpointing.checkpoint_mode("auto") is None


def _memory(act: float, off: float, sel: float, full: float) -> MemoryEstimate:
    return MemoryEstimate(100.0, 1.0, 2.0, act, 50.0, 10.0, 500.0, off, full,
                          activations_selective_mb=act / 2, peak_off_mb=off,
                          peak_selective_mb=sel, peak_full_mb=full)


def test_auto_is_off_when_activations_are_a_small_share_selective_when_most_full_when_needed():
    from tunesmith.train.auto import choose_checkpointing

    cfg = load_config(None, {})
    memory, mode, why = choose_checkpointing(cfg, _memory(500, 2_000, 1_700, 1_550), 10_000)
    assert mode is False and memory.peak_mb == 2_000 and why.startswith("off: ")
    assert "25%" in why
    memory, mode, why = choose_checkpointing(cfg, _memory(5_000, 6_500, 4_000, 1_600), 10_000)
    assert mode == "selective" and memory.checkpointing == "selective"
    assert memory.peak_mb == 4_000 and why.startswith("selective: activations are 77%")
    memory, mode, why = choose_checkpointing(cfg, _memory(15_000, 16_500, 8_000, 1_600), 10_000)
    assert mode == "selective" and "does not fit in 10,000 MiB given" in why
    memory, mode, why = choose_checkpointing(cfg, _memory(25_000, 26_500, 13_000, 1_600), 10_000)
    assert mode is True and memory.peak_mb == 1_600 and why.startswith("full: ")
    prefix = load_config(None, {"method": "prefix"})
    assert choose_checkpointing(prefix, _memory(25_000, 26_500, 13_000, 1_600), 10_000)[1] is False


def test_estimate_orders_the_three_modes_and_reports_them(tiny_overrides):
    from tunesmith.estimate import estimate_run
    from tunesmith.estimate.report import format_estimate

    est = estimate_run(load_config(None, {**tiny_overrides, "gradient_checkpointing": "selective"}))
    m = est.memory
    assert m.checkpointing == "selective" and m.peak_mb == m.peak_selective_mb
    assert m.peak_full_mb < m.peak_selective_mb < m.peak_off_mb
    assert m.activations_ckpt_mb < m.activations_selective_mb < m.activations_mb
    text = format_estimate(est)
    assert "(gradient checkpointing selective; the whole batch in one pass: off " in text
    assert " selective / " in text


def test_a_selective_run_trains_the_losses_of_an_unchecked_one(tiny_overrides, tmp_path,
                                                               monkeypatch):
    from tunesmith.train.run import run_training

    asked = []
    policy = checkpointing._policy
    monkeypatch.setattr(checkpointing, "_policy", lambda *a, **k: asked.append(1) or policy(*a, **k))
    losses, calls = {}, {}
    for mode in (False, "selective"):
        out = tmp_path / f"run-{mode}"
        cfg = load_config(None, {**tiny_overrides, "output_dir": str(out), "max_steps": 3,
                                 "gradient_checkpointing": mode, "plot_loss": False})
        run_training(cfg)
        log = [json.loads(line) for line in (out / "trainer_log.jsonl").read_text().splitlines()]
        losses[mode], calls[mode] = [r["loss"] for r in log if "loss" in r], len(asked)
    assert len(losses[False]) == 3
    assert calls[False] == 0 and calls["selective"] > 0  # the policy ran the selective layers
    assert losses["selective"] == pytest.approx(losses[False], rel=1e-5)


@pytest.mark.slow
def test_selective_checkpointing_trains_a_4bit_base_like_an_unchecked_run(tiny_overrides,
                                                                         bundled_dir, tmp_path):
    from tunesmith.train.run import run_training

    losses = {}
    for mode in (False, "selective"):
        out = tmp_path / f"q-{mode}"
        cfg = load_config(None, {**tiny_overrides, "model_name_or_path": str(bundled_dir),
                                 "method": "qlora", "quantization_bit": 4, "max_steps": 2,
                                 "per_device_train_batch_size": 2, "cutoff_len": 96,
                                 "lora_target": "q_proj,v_proj", "output_dir": str(out),
                                 "gradient_checkpointing": mode, "plot_loss": False})
        run_training(cfg)
        log = [json.loads(line) for line in (out / "trainer_log.jsonl").read_text().splitlines()]
        losses[mode] = [r["loss"] for r in log if "loss" in r]
    assert len(losses[False]) == 2
    assert losses["selective"] == pytest.approx(losses[False], rel=1e-4)
