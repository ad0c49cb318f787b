"""The training engine in-process: grad-accumulation equivalence, NaN stop/skip, optimizers,
checkpoint picking and the resume fingerprint."""

from __future__ import annotations

import json

import pytest
import torch

from tunesmith.cli import main
from tunesmith.config import load_config
from tunesmith.errors import ConfigError, ModelError
from tunesmith.train import checkpoint as ckpt
from tunesmith.train.run import run_training
from tunesmith.train.trainer import NonFiniteLoss

from .helpers import adapter, all_finite, losses, max_abs_diff


def _run(overrides, **extra):
    return run_training(load_config(None, {**overrides, **extra}))


def test_grad_accumulation_is_loss_normalized(tiny_overrides, tmp_path):
    base = {**tiny_overrides, "max_steps": 3, "lr_scheduler_type": "constant"}
    _run(base, per_device_train_batch_size=8, gradient_accumulation_steps=1,
         output_dir=str(tmp_path / "b8"))
    _run(base, per_device_train_batch_size=2, gradient_accumulation_steps=4,
         output_dir=str(tmp_path / "b2x4"))
    one, acc = losses(tmp_path / "b8"), losses(tmp_path / "b2x4")
    assert one.keys() == acc.keys() == {1, 2, 3}
    for step in one:
        assert acc[step] == pytest.approx(one[step], abs=1e-5)
    assert max_abs_diff(adapter(tmp_path / "b8"), adapter(tmp_path / "b2x4")) < 1e-5


def test_nan_at_step_stops_before_update_and_saves_nothing_bad(tiny_overrides, tmp_path,
                                                              monkeypatch):
    monkeypatch.setenv("TUNESMITH_TEST_NAN_AT_STEP", "3")
    with pytest.raises(NonFiniteLoss, match="at step 3") as err:
        _run(tiny_overrides, save_strategy="steps", save_steps=1, max_steps=5)
    assert "learning rate" in str(err.value) and "\n" not in str(err.value)
    out = tmp_path / "run"
    done = ckpt.complete_checkpoints(out)
    assert [p.name for p in done] == ["checkpoint-1", "checkpoint-2"]
    assert all(all_finite(p) for p in done)
    assert not (out / "adapter_model.safetensors").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(ckpt.STAGING_PREFIX)]


def test_nan_policy_skip_counts_and_stays_finite(tiny_overrides, tmp_path, monkeypatch):
    monkeypatch.setenv("TUNESMITH_TEST_NAN_AT_STEP", "2")
    metrics = _run(tiny_overrides, nan_policy="skip", max_steps=4)
    assert metrics["skipped_steps"] == 1
    assert all_finite(tmp_path / "run")
    rows = [json.loads(x) for x in (tmp_path / "run" / "trainer_log.jsonl").read_text().splitlines()]
    assert [r["skipped_steps"] for r in rows if "loss" in r] == [0, 1, 1, 1]


def test_huge_learning_rate_stops_with_the_message(tiny_overrides, tmp_path, capsys):
    # sdpa: its backward turns this divergence into NaN gradients; the CPU default's math path
    # (hybrid attention, short rows) saturates softmax to exact zero gradients instead
    args = ["train", *[f"{k}={v}" for k, v in tiny_overrides.items()], "learning_rate=1e6",
            "max_grad_norm=0", "max_steps=20", "save_strategy=steps", "save_steps=1",
            "attn_implementation=sdpa"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: non-finite") and "learning rate 1e+06 too high" in err
    assert all(all_finite(p) for p in ckpt.complete_checkpoints(tmp_path / "run"))
    assert not (tmp_path / "run" / "adapter_model.safetensors").exists()


@pytest.mark.parametrize("optim", ["adamw_torch", "sgd", "adafactor", "adamw_8bit",
                                   "paged_adamw_8bit", "rmsprop"])
def test_optimizers_build_and_step_on_cpu(tiny_overrides, tmp_path, optim):
    metrics = _run(tiny_overrides, optim=optim, max_steps=2)
    assert metrics["train_loss"] > 0
    weights = adapter(tmp_path / "run")
    assert any(torch.count_nonzero(v) for k, v in weights.items() if "lora_B" in k)


def test_checkpoint_picking_and_cleanup(tmp_path):
    for step, marked in ((1, True), (2, True), (3, False)):
        d = tmp_path / f"checkpoint-{step}"
        d.mkdir()
        (d / "x").write_text("x")
        if marked:
            ckpt.write_marker(d, step, None)
    (tmp_path / f"{ckpt.STAGING_PREFIX}checkpoint-4").mkdir()
    assert ckpt.latest_checkpoint(tmp_path).name == "checkpoint-2"
    assert ckpt.resolve_resume("auto", tmp_path).name == "checkpoint-2"
    with pytest.raises(ModelError, match="incomplete checkpoint.*checkpoint-2"):
        ckpt.resolve_resume(str(tmp_path / "checkpoint-3"), tmp_path)
    removed = ckpt.clean_stale(tmp_path)
    assert [p.name for p in removed] == [f"{ckpt.STAGING_PREFIX}checkpoint-4"]
    assert (tmp_path / "checkpoint-3").is_dir()  # not ours: ignored, never deleted
    assert ckpt.resolve_resume(None, tmp_path) is None


def test_resume_refused_on_other_base_or_data(tiny_overrides, tmp_path, tiny_model_dir):
    from transformers import AutoTokenizer

    from tests.conftest import CHAT_ROWS, _tiny_llama, write_rows

    other = tmp_path / "other-base"
    _tiny_llama(AutoTokenizer.from_pretrained(str(tiny_model_dir)), seed=1).save_pretrained(other)
    AutoTokenizer.from_pretrained(str(tiny_model_dir)).save_pretrained(other)
    other_data = write_rows(tmp_path / "other.jsonl", CHAT_ROWS[::-1])
    base = {**tiny_overrides, "max_steps": 2, "save_strategy": "steps", "save_steps": 2}
    _run(base)
    resume = {**base, "max_steps": 3, "resume_from_checkpoint": "auto"}
    with pytest.raises(ConfigError, match="base model") as err:
        _run(resume, model_name_or_path=str(other))
    msg = str(err.value)
    assert msg.count("base ") >= 2 and "resume_force" in msg and msg.count("#") >= 6
    with pytest.raises(ConfigError, match=r"\(data differ"):
        _run(resume, dataset=str(other_data))
    with pytest.raises(ConfigError, match="per_device_train_batch_size"):
        _run(resume, per_device_train_batch_size=2)
    metrics = _run(resume, dataset=str(other_data), resume_force=True)
    assert metrics["train_loss"] > 0
