"""Each LoRA option end to end through peft on a tiny model: learns, trains exactly the adapter
(and what the option adds), reloads with plain peft to the same logits, merges."""

from __future__ import annotations

import json

import pytest
import torch

from tunesmith.errors import ConfigError
from tunesmith.methods import adapter_merge_refusal

from .checks import assert_method_works
from .conftest import train_method


def _lora(n: str) -> bool:
    return "lora_" in n


CASES = {
    "all_linear": ({"lora_target": "all"}, lambda n: _lora(n) and "lm_head" not in n),
    "names_modules_to_save": ({"lora_target": "q_proj,v_proj", "modules_to_save": "lm_head"},
                              lambda n: (_lora(n) and (".q_proj." in n or ".v_proj." in n))
                              or "modules_to_save" in n),
    "regex": ({"lora_target": r".*\.1\.self_attn\.(q_proj|k_proj)"},
              lambda n: _lora(n) and ".layers.1.self_attn." in n and ("q_proj" in n or "k_proj" in n)),
    "dropout_rslora_gaussian": ({"lora_dropout": 0.1, "use_rslora": True, "lora_alpha": 4,
                                 "init_lora_weights": "gaussian"}, _lora),
    "dora": ({"use_dora": True}, _lora),
    "pissa": ({"init_lora_weights": "pissa_niter_2", "lora_target": "q_proj,v_proj,down_proj"},
              _lora),
    "olora": ({"init_lora_weights": "olora", "lora_target": "q_proj,o_proj"}, _lora),
    "layers": ({"layers_to_transform": "0", "layers_pattern": "layers"},
               lambda n: _lora(n) and ".layers.0." in n),
    "layer_replication": ({"layer_replication": "[[0, 2], [1, 2]]"}, _lora),
    "patterns": ({"lora_target": "q_proj,v_proj", "rank_pattern": "{q_proj: 2}",
                  "alpha_pattern": "{v_proj: 16}"}, _lora),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_lora_option(case, tiny_overrides, tiny_model_dir):
    extra, intended = CASES[case]
    run = train_method({**tiny_overrides, **extra})
    blocker = adapter_merge_refusal(run.out)
    assert (blocker is None) == (case != "layer_replication"), blocker
    assert_method_works(run, tiny_model_dir, intended, mergeable=blocker is None)
    if case in ("pissa", "olora"):  # saved as a plain-LoRA delta (rank 2r) for the original base
        config = json.loads((run.out / "adapter_config.json").read_text())
        assert config["init_lora_weights"] is True and config["r"] == 8
        assert not (run.out / "tunesmith_init_adapter").exists()


def test_lora_option_shapes(tiny_overrides):
    """The options reach peft: rank/alpha patterns, DoRA magnitudes, replicated layers."""
    run = train_method({**tiny_overrides, "max_steps": 1, "lora_target": "q_proj,v_proj",
                        "rank_pattern": "{q_proj: 2}", "alpha_pattern": "{v_proj: 16}",
                        "use_dora": True, "layer_replication": "[[0, 2], [1, 2]]"})
    layers = run.model.base_model.model.model.layers
    assert len(layers) == 3
    q, v = layers[0].self_attn.q_proj, layers[0].self_attn.v_proj
    assert q.lora_A["default"].weight.shape[0] == 2 and v.lora_A["default"].weight.shape[0] == 4
    assert v.scaling["default"] == 16 / 4 and q.scaling["default"] == 8 / 2
    assert "default" in q.lora_magnitude_vector


def test_lora_bias_all_trains_biases(tiny_overrides, tiny_bias_dir):
    run = train_method({**tiny_overrides, "model_name_or_path": str(tiny_bias_dir),
                        "lora_bias": "all", "lora_target": "q_proj,v_proj"})
    assert_method_works(run, tiny_bias_dir, lambda n: _lora(n) or n.endswith(".bias"),
                        mergeable=True)


def test_loftq_on_cpu_is_a_clear_error(tiny_overrides):
    if torch.cuda.is_available():
        pytest.skip("LoftQ runs on CUDA; this checks the CPU message")
    with pytest.raises(ConfigError, match="loftq needs a CUDA GPU"):
        train_method({**tiny_overrides, "init_lora_weights": "loftq", "loftq_bits": 4})


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="peft's LoftQ runs on CUDA only")
def test_loftq_trains_on_gpu(tiny_overrides, tiny_model_dir):
    run = train_method({**tiny_overrides, "init_lora_weights": "loftq", "loftq_bits": 4,
                        "loftq_iter": 1, "lora_target": "q_proj,v_proj"})
    assert_method_works(run, tiny_model_dir, _lora, mergeable=True)
