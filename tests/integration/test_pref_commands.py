"""Seed 004's LLaMA-Factory command lines with ``--stage dpo`` / ``kto`` / ``rm`` on a registered
ranking (or kto_tag) dataset run with only the program name changed (``llamafactory-cli`` ->
``tunesmith``); the tiny model stands in for the tutorial's, the flags are the tutorial's."""

from __future__ import annotations

import json

import pytest

from tunesmith.cli import main

from ..conftest import REPO

STAGES = {"dpo": ("nova_pref", ["--pref_beta", "0.1", "--pref_loss", "sigmoid"]),
          "kto": ("nova_kto", ["--pref_beta", "0.1"]),
          "rm": ("nova_pref", [])}


@pytest.mark.slow
@pytest.mark.parametrize("stage", sorted(STAGES))
def test_llamafactory_command_runs_with_the_program_name_changed(stage, tiny_model_dir, tmp_path,
                                                                  monkeypatch):
    monkeypatch.chdir(REPO)
    dataset, extra = STAGES[stage]
    out = tmp_path / f"saves-{stage}"
    argv = ["train", "--stage", stage, "--do_train", "--model_name_or_path", str(tiny_model_dir),
            "--dataset", dataset, "--dataset_dir", "examples/data", "--template", "auto",
            "--finetuning_type", "lora", "--lora_target", "all", "--output_dir", str(out),
            "--overwrite_cache", "--overwrite_output_dir", "--cutoff_len", "1024",
            "--preprocessing_num_workers", "16", "--per_device_train_batch_size", "2",
            "--gradient_accumulation_steps", "2", "--lr_scheduler_type", "cosine",
            "--logging_steps", "1", "--warmup_ratio", "0.1", "--save_steps", "100",
            "--learning_rate", "5e-5", "--num_train_epochs", "1.0", "--max_samples", "8",
            "--plot_loss", *extra]
    assert main(argv) == 0
    assert (out / "adapter_model.safetensors").is_file() and (out / "training_loss.png").is_file()
    logged = [json.loads(x) for x in (out / "trainer_log.jsonl").read_text().splitlines()]
    assert any("rewards/chosen" in row for row in logged)
    if stage == "rm":
        assert (out / "value_head.safetensors").is_file()
