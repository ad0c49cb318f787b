"""``micro_batch_tokens``: a batch run through the model in passes of whole rows trains exactly as
the batch in one pass; ``auto`` picks the passes with the checkpointing mode (train/auto.py)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from tunesmith.config import load_config
from tunesmith.errors import ConfigError
from tunesmith.estimate.memory import MemoryEstimate
from tunesmith.train.auto import MIN_PASS_TOKENS, choose_checkpointing, pass_sizes
from tunesmith.train.trainer import TunesmithTrainer


def _train(tiny_overrides, tmp_path, monkeypatch, name, **keys):
    seen = []
    split = TunesmithTrainer.split_passes

    def spy(self, inputs, num_items_in_batch):
        parts = split(self, inputs, num_items_in_batch)
        seen.append([p["input_ids"].shape[0] for p in parts])
        return parts

    monkeypatch.setattr(TunesmithTrainer, "split_passes", spy)
    from tunesmith.train.run import run_training

    out = tmp_path / name
    cfg = load_config(None, {**tiny_overrides, "output_dir": str(out), "max_steps": 3,
                             "per_device_train_batch_size": 6, "packing": False,
                             "plot_loss": False, **keys})
    run_training(cfg)
    log = [json.loads(x) for x in (out / "trainer_log.jsonl").read_text().splitlines()]
    return ([r["loss"] for r in log if "loss" in r], load_file(out / "adapter_model.safetensors"),
            seen)


def test_passes_train_exactly_as_one_pass(tiny_overrides, tmp_path, monkeypatch):
    losses, weights, seen = _train(tiny_overrides, tmp_path, monkeypatch, "one",
                                   micro_batch_tokens=0)
    assert all(s == [6] for s in seen)
    # rows of the tiny chat data are ~25 tokens: 40 tokens allow one row per pass
    losses_p, weights_p, seen_p = _train(tiny_overrides, tmp_path, monkeypatch, "passes",
                                         micro_batch_tokens=40)
    assert seen_p and all(s == [1] * 6 for s in seen_p), seen_p
    assert losses_p == pytest.approx(losses, rel=1e-5)
    for key, value in weights.items():
        assert torch.allclose(weights_p[key], value, rtol=1e-4, atol=1e-6), key


def _trainer():
    trainer = TunesmithTrainer.__new__(TunesmithTrainer)
    trainer.pass_tokens = 100
    trainer.model_accepts_loss_kwargs = True

    class Acc:
        distributed_type = "NO"

    trainer.accelerator = Acc()
    return trainer


def test_split_keeps_whole_rows_and_steps_aside_when_it_cannot_be_exact():
    trainer = _trainer()
    batch = {"input_ids": torch.ones(5, 30, dtype=torch.long), "labels": torch.ones(5, 30),
             "position_ids": torch.zeros(5, 30)}
    parts = trainer.split_passes(batch, torch.tensor(100))
    assert [p["input_ids"].shape[0] for p in parts] == [3, 2]
    assert torch.equal(torch.cat([p["labels"] for p in parts]), batch["labels"])
    assert trainer.split_passes(batch, None)[0] is batch  # no whole-batch count to divide by
    odd = {**batch, "images": torch.ones(2, 3)}  # not one row per input row: left whole
    assert trainer.split_passes(odd, torch.tensor(9))[0] is odd
    small = {k: v[:2] for k, v in batch.items()}
    assert trainer.split_passes(small, torch.tensor(9))[0] is small  # fits in one pass
    trainer.model_accepts_loss_kwargs = False
    assert trainer.split_passes(batch, torch.tensor(9))[0] is batch


def test_pass_sizes_halve_whole_rows_down_to_the_floor():
    cfg = load_config(None, {})
    assert pass_sizes(cfg, 5 * 832, 832) == [4160, 3 * 832, 2 * 832, 832]
    assert pass_sizes(cfg, 8 * 100, 100) == [800]  # halving would go under MIN_PASS_TOKENS
    assert MIN_PASS_TOKENS == 512
    assert pass_sizes(load_config(None, {"micro_batch_tokens": 2000}), 4160, 832) == [1664]
    assert pass_sizes(load_config(None, {"micro_batch_tokens": 0}), 4160, 832) == [4160]
    explicit = load_config(None, {"gradient_checkpointing": "true"})
    assert pass_sizes(explicit, 4160, 832) == [4160]  # auto passes come with auto checkpointing


def test_pass_sizes_follow_the_stage():
    from tunesmith.train.stages import get_stage

    cfg = load_config(None, {})
    for name in ("sft", "pt", "dpo", "rm"):  # token sums over rows, or means over pairs
        assert pass_sizes(cfg, 4 * 1100, 1100, get_stage(name)) == [4400, 2200, 1100], name
    for name in ("kto", "grpo", "ppo"):  # a batch-wide KL term, or generation: one pass
        assert pass_sizes(cfg, 4 * 1100, 1100, get_stage(name)) == [4400], name


def test_bad_values_are_one_line_errors():
    with pytest.raises(ConfigError, match="micro_batch_tokens.*auto or an integer"):
        load_config(None, {"micro_batch_tokens": "some"})
    with pytest.raises(ConfigError, match="micro_batch_tokens.*must be auto, 0"):
        load_config(None, {"micro_batch_tokens": -5})


def _memory(act, off, sel_act, sel, full_act, full, load=600.0):
    return MemoryEstimate(500.0, 1.0, 2.0, act, full_act, 10.0, 500.0, off, full,
                          loading_mb=load, activations_selective_mb=sel_act, peak_off_mb=off,
                          peak_selective_mb=sel, peak_full_mb=full)


def test_auto_prefers_passes_without_checkpointing_to_checkpointing():
    cfg = load_config(None, {})
    # W2-like: activations 8,000 of a 9,000 MiB peak; fixed part 1,000
    memory = _memory(8_000, 9_000, 4_400, 5_400, 1_000, 2_000)
    sizes = pass_sizes(cfg, 8 * 1000, 1000)
    assert sizes == [8000, 4000, 2000, 1000]
    chosen, mode, why = choose_checkpointing(cfg, memory, 100_000, sizes, 8000)
    assert mode is False and chosen.pass_tokens == 1000 and chosen.peak_mb == pytest.approx(2_000)
    assert "in passes of at most 1,000 of the batch's 8,000 tokens" in why and "50%" in why
    # the same memory with one pass allowed: selective, as before
    chosen, mode, _ = choose_checkpointing(cfg, memory, 100_000, [8000], 8000)
    assert mode == "selective" and chosen.pass_tokens == 0 and chosen.peak_mb == 5_400
    # tight memory: selective in passes before full checkpointing
    chosen, mode, why = choose_checkpointing(cfg, memory, 2_200, sizes, 8000)
    assert mode == "selective" and chosen.pass_tokens == 1000
    assert chosen.peak_mb == pytest.approx(1_000 + 4_400 / 8)
    assert "does not fit in 2,200 MiB given" in why and "in passes of at most 1,000" in why


def test_train_prints_the_pass_choice(tiny_overrides, tmp_path, capsys):
    from tunesmith.train.run import run_training

    cfg = load_config(None, {**tiny_overrides, "output_dir": str(tmp_path / "run"),
                             "max_steps": 1, "plot_loss": False})
    run_training(cfg)
    err = capsys.readouterr().err
    assert "micro_batch_tokens: auto -> 0: each batch runs in one pass" in err
    assert cfg.train.micro_batch_tokens == 0


def test_on_a_cpu_auto_takes_the_smallest_passes_without_checkpointing():
    cfg = load_config(None, {})
    memory = _memory(8_000, 9_000, 4_400, 5_400, 1_000, 2_000)
    sizes = pass_sizes(cfg, 8 * 1000, 1000)
    chosen, mode, why = choose_checkpointing(cfg, memory, 100_000, sizes, 8000, cpu=True)
    assert mode is False and chosen.pass_tokens == 1000  # activations 50%: allowed either way
    memory = _memory(16_000, 17_000, 8_800, 9_800, 1_000, 2_000)  # one pass: 2,000 of 3,000
    chosen, mode, why = choose_checkpointing(cfg, memory, 100_000, sizes, 8000, cpu=True)
    assert mode is False and chosen.pass_tokens == 1000 and chosen.peak_mb == pytest.approx(3_000)
    assert "as fast as the whole batch" in why
    chosen, mode, _ = choose_checkpointing(cfg, memory, 100_000, sizes, 8000)  # a GPU: share rule
    assert mode == "selective" and chosen.pass_tokens == 0  # fits whole: the biggest products
    chosen, mode, _ = choose_checkpointing(cfg, memory, 100_000, [8000], 8000, cpu=True)
    assert mode == "selective" and chosen.pass_tokens == 0  # no passes possible: as before
