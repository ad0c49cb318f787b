"""The run record: every file present and parseable; eval during training; best checkpoint;
tokens_seen counts real (non-padding) tokens; trackers write their run files offline."""

from __future__ import annotations

import json
import os

import pytest
import yaml

from tunesmith.config import load_config
from tunesmith.train.checkpoint import MARKER, complete_checkpoints
from tunesmith.train.run import run_training

PNG = b"\x89PNG\r\n\x1a\n"


def test_records_eval_and_best_checkpoint(tiny_overrides, tmp_path):
    cfg = load_config(None, {**tiny_overrides, "max_steps": 6, "val_size": 4,
                             "eval_strategy": "steps", "eval_steps": 2, "save_strategy": "steps",
                             "save_steps": 2, "load_best_model_at_end": True,
                             "save_total_limit": 2, "run_name": "rec"})
    metrics = run_training(cfg)
    out = tmp_path / "run"
    for name in ("trainer_state.json", "all_results.json", "train_results.json",
                 "eval_results.json", "data_report.json", "tunesmith_base.json",
                 "adapter_config.json"):
        json.loads((out / name).read_text())
    assert yaml.safe_load((out / "tunesmith_config.yaml").read_text())["eval_steps"] == 2
    for png in ("training_loss.png", "training_eval_loss.png"):
        data = (out / png).read_bytes()
        assert data.startswith(PNG) and len(data) > 1000
    card = (out / "README.md").read_text()
    assert str(tiny_overrides["model_name_or_path"]) in card and "eval_loss" in card
    rows = [json.loads(x) for x in (out / "trainer_log.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if "loss" in r]
    assert [r["step"] for r in train_rows] == [1, 2, 3, 4, 5, 6]
    for r in train_rows:
        assert {"epoch", "lr", "grad_norm", "tokens_seen", "elapsed_s", "remaining_s",
                "peak_mem_mb"} <= r.keys()
    assert sorted({r["step"] for r in rows if "eval_loss" in r}) == [2, 4, 6]  # + a final eval
    results = json.loads((out / "all_results.json").read_text())
    assert results["eval_loss"] > 0 and results["peak_mem_mb"] > 0 and "train_loss" in results
    state = json.loads((out / "trainer_state.json").read_text())
    best = state["best_model_checkpoint"]
    assert best and os.path.isdir(best) and (tmp_path / "run" / os.path.basename(best) / MARKER).is_file()
    assert state["best_metric"] == min(r["eval_loss"] for r in rows if "eval_loss" in r)
    assert len(complete_checkpoints(out)) <= 2 + 1  # save_total_limit (+ the kept best)
    assert metrics["eval_loss"] == pytest.approx(state["best_metric"], rel=1e-5)


def test_tokens_seen_counts_non_padding(tiny_overrides, tmp_path):
    from tunesmith.data.load import load_data
    from tunesmith.data.templates import get_template
    from tunesmith.model.load import load_tokenizer

    cfg = load_config(None, {**tiny_overrides, "max_steps": -1, "num_train_epochs": 1,
                             "per_device_train_batch_size": 5})  # 24 rows: 5 batches, padded
    run_training(cfg)
    tok = load_tokenizer(cfg.model)
    data = load_data(cfg, tok, get_template(cfg.model.template, tok, None))
    rows = [json.loads(x) for x in (tmp_path / "run" / "trainer_log.jsonl").read_text().splitlines()]
    assert rows[-1]["tokens_seen"] == sum(len(e.input_ids) for e in data.train)


def test_trackers_write_offline_run_files(tiny_overrides, tmp_path, monkeypatch):
    for key in ("WANDB_API_KEY", "SWANLAB_API_KEY", "WANDB_MODE", "SWANLAB_MODE"):
        monkeypatch.delenv(key, raising=False)
    for key in ("TENSORBOARD_LOGGING_DIR", "WANDB_DIR", "WANDB_PROJECT", "WANDB_TAGS",
                "SWANLAB_LOG_DIR", "SWANLAB_PROJECT_NAME"):
        monkeypatch.setenv(key, "unset")  # restored after the test; setup_trackers overwrites
    cfg = load_config(None, {**tiny_overrides, "max_steps": 3,
                             "report_to": "tensorboard,wandb,swanlab", "run_name": "trk",
                             "tracker_tags": "tiny,test"})
    run_training(cfg)
    out = tmp_path / "run"
    assert list((out / "runs").rglob("events.out.tfevents.*"))
    offline = list((out / "wandb").glob("offline-run-*"))
    assert offline and list(offline[0].glob("*.wandb"))
    assert os.environ["WANDB_MODE"] == "offline" and os.environ["WANDB_TAGS"] == "tiny,test"
    assert list((out / "swanlog").glob("run-*/run-*.swanlab"))
