"""Methods through the real ``run_training``: the method's callbacks reach the Trainer (AdaLoRA's
budget), ``finish_save`` writes the base signature, full-model methods save a loadable model."""

from __future__ import annotations

import json

import torch

from tunesmith.config import load_config
from tunesmith.train.run import run_training


def test_adalora_budget_runs_inside_run_training(tiny_overrides, tmp_path):
    overrides = {**tiny_overrides, "method": "adalora", "adalora_init_r": 4, "adalora_target_r": 2,
                 "adalora_tinit": 1, "adalora_tfinal": 1, "max_steps": 4}
    overrides.pop("lora_rank")
    run_training(load_config(None, overrides))
    out = tmp_path / "run"
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["peft_type"] == "ADALORA" and config["total_step"] == 4
    assert config["rank_pattern"], "update_and_allocate never ran: no rank pattern saved"
    assert json.loads((out / "tunesmith_base.json").read_text())["num_hidden_layers"] == 2


def test_freeze_run_saves_a_complete_model(tiny_overrides, tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    overrides = {**tiny_overrides, "method": "freeze", "freeze_trainable_layers": 1, "max_steps": 2}
    overrides.pop("lora_rank")
    run_training(load_config(None, overrides))
    out = tmp_path / "run"
    assert (out / "model.safetensors").is_file() and not (out / "adapter_config.json").exists()
    tuned = AutoModelForCausalLM.from_pretrained(str(out))
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    tuned_sd, base_sd = tuned.state_dict(), base.state_dict()
    changed = {k for k in base_sd if not torch.equal(base_sd[k], tuned_sd[k])}
    assert changed and all(k.startswith("model.layers.1.") for k in changed)
