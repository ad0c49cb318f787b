"""A LoRA run on a tiny model: finite falling loss, only adapter weights change, full record."""

import json
import math

import torch
from safetensors.torch import load_file

from tunesmith.config import load_config
from tunesmith.train.run import run_training


def test_lora_run_learns_and_records(tiny_overrides, tmp_path):
    cfg = load_config(None, {**tiny_overrides, "max_steps": 12})
    metrics = run_training(cfg)
    out = tmp_path / "run"
    log = [json.loads(line) for line in (out / "trainer_log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if "loss" in r]
    assert all(math.isfinite(x) for x in losses)
    assert losses[-1] < losses[0]
    for name in ("adapter_model.safetensors", "adapter_config.json", "tunesmith_config.yaml",
                 "data_report.json", "training_loss.png", "README.md", "all_results.json",
                 "trainer_state.json", "tokenizer_config.json"):
        assert (out / name).is_file(), name
    weights = load_file(out / "adapter_model.safetensors")
    assert weights and all("lora_" in k for k in weights)
    assert any(torch.count_nonzero(v) for k, v in weights.items() if "lora_B" in k)
    report = json.loads((out / "data_report.json").read_text())
    assert report["kept"] + report["dropped"] == report["total"] == 24
    assert metrics["train_loss"] > 0
