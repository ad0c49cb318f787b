"""Every non-LoRA method on a tiny model: learns, trains exactly its parameters, saves and
reloads to the same logits, and merges where the method allows it."""

from __future__ import annotations

import json

import pytest

from tunesmith.methods import adapter_merge_refusal, get_method

from .checks import assert_method_works
from .conftest import train_method

# method -> (extra overrides, which parameters train)
CASES = {
    "full": ({}, lambda n: True),
    "freeze": ({}, lambda n: n.startswith("model.layers.")),  # default 2 = both tiny layers
    "freeze_last1_mlp": (
        {"method": "freeze", "freeze_trainable_layers": 1, "freeze_trainable_modules": "mlp",
         "freeze_extra_modules": "lm_head"},
        lambda n: n.startswith("model.layers.1.mlp.") or n.startswith("lm_head.")),
    "prefix": ({"num_virtual_tokens": 4, "prefix_projection": True, "encoder_hidden_size": 16},
               lambda n: "prompt_encoder" in n),
    "prompt": ({"num_virtual_tokens": 4, "prompt_tuning_init_text": "Answer the sum.",
                "learning_rate": 3e-2}, lambda n: "prompt_encoder" in n),
    "ptuning": ({"num_virtual_tokens": 4, "encoder_hidden_size": 16},
                lambda n: "prompt_encoder" in n),
    "ia3": ({"ia3_target": "q_proj,up_proj,down_proj", "ia3_feedforward": "down_proj"},
            lambda n: "ia3_l" in n and any(f".{m}." in n for m in ("q_proj", "up_proj", "down_proj"))),
    "loha": ({"lycoris_rank": 4, "lycoris_target": "q_proj,v_proj"}, lambda n: "hada_" in n),
    "lokr": ({"lycoris_rank": 4, "lycoris_target": "q_proj,v_proj"}, lambda n: "lokr_" in n),
    "vera": ({"vera_rank": 16, "vera_target": "q_proj,v_proj"}, lambda n: "vera_lambda" in n),
    "oft": ({"oft_block_size": 8, "oft_target": "q_proj,v_proj"}, lambda n: "oft_R" in n),
    "adalora": ({"adalora_init_r": 6, "adalora_target_r": 2, "adalora_tinit": 1,
                 "adalora_tfinal": 1}, lambda n: "lora_" in n),
}


def _overrides(case: str, base: dict) -> dict:
    extra, _ = CASES[case]
    return {**base, "method": case, **extra}


@pytest.mark.parametrize("case", sorted(CASES))
def test_method_trains_saves_and_merges(case, method_overrides, tiny_model_dir):
    run = train_method(_overrides(case, method_overrides))
    method = get_method(run.cfg.method.method)
    pruned = (lambda n, t: "lora_E" in n and not t.any()) if case == "adalora" else None
    assert_method_works(run, tiny_model_dir, CASES[case][1], method.mergeable, pruned)
    adapter = (run.out / "adapter_config.json").is_file()
    assert adapter == method.saves_adapter
    assert (run.out / ("adapter_model.safetensors" if adapter else "model.safetensors")).is_file()
    if adapter:  # export reads the same answer from the saved adapter
        assert (adapter_merge_refusal(run.out) is None) == method.mergeable
    signature = json.loads((run.out / "tunesmith_base.json").read_text())
    assert signature["num_hidden_layers"] == 2 and signature["hidden_size"] == 32
    if case == "adalora":
        assert_budget_reallocated(run)


def assert_budget_reallocated(run) -> None:
    """The budget callback ran: after the final phase ranks are masked to the target on average."""
    config = run.model.peft_config["default"]
    assert config.total_step == run.cfg.train.max_steps and config.rank_pattern
    kept = sum(sum(bool(x) for x in mask) for mask in config.rank_pattern.values())
    assert kept == 2 * len(config.rank_pattern)  # adalora_target_r per matrix on average


def test_bitfit_trains_only_biases(method_overrides, tiny_bias_dir):
    run = train_method({**method_overrides, "method": "bitfit", "model_name_or_path": str(tiny_bias_dir),
                        "learning_rate": 5e-2})
    assert_method_works(run, tiny_bias_dir, lambda n: n.endswith(".bias"), mergeable=False)
