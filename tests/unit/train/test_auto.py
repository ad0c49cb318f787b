"""``packing: auto`` and ``gradient_checkpointing: auto``: the defaults, how they are decided, and
that a run says which it chose (the three-way checkpointing choice: test_checkpointing.py)."""

from __future__ import annotations

import pytest

from tunesmith.config import load_config
from tunesmith.errors import ConfigError


def test_speed_keys_default_to_auto_and_still_take_true_false():
    cfg = load_config(None, {})
    assert cfg.data.packing == "auto" and cfg.train.gradient_checkpointing == "auto"
    cfg = load_config(None, {"packing": "false", "gradient_checkpointing": "true"})
    assert cfg.data.packing is False and cfg.train.gradient_checkpointing is True
    assert load_config(None, {"packing": "AUTO"}).data.packing == "auto"
    with pytest.raises(ConfigError, match="packing.*auto"):
        load_config(None, {"packing": "sometimes"})


def test_auto_packing_pads_a_dense_batch_and_packs_a_ragged_one():
    from tunesmith.data.packing import pad_or_pack

    collate = pad_or_pack("auto", pad_id=0)
    row = lambda n: {"input_ids": list(range(1, n + 1)), "labels": list(range(1, n + 1))}  # noqa: E731
    dense = collate([row(10), row(9), row(10), row(8)])
    assert "attention_mask" in dense and dense["input_ids"].shape == (4, 10)
    ragged = collate([row(40), row(5), row(30), row(8)])
    assert "position_ids" in ragged and ragged["input_ids"].numel() < 4 * 40
    assert "attention_mask" in pad_or_pack(False, 0)([row(40), row(5)])


def test_train_prints_its_automatic_choices(tiny_overrides, tmp_path, capsys):
    from tunesmith.train.run import run_training

    cfg = load_config(None, {**tiny_overrides, "output_dir": str(tmp_path / "run"),
                             "max_steps": 1, "save_strategy": "no", "plot_loss": False})
    run_training(cfg)
    err = capsys.readouterr().err
    assert "gradient_checkpointing: auto -> off: the estimated peak" in err
    assert "packing: auto" in err
    assert "cpu_allocator: auto -> default: gradient checkpointing is off (speed first)" in err
    assert cfg.train.gradient_checkpointing is False
