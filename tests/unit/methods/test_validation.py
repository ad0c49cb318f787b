"""Per-method parameter checks, refusals with a reason, and the adapter's base signature."""

from __future__ import annotations

import pytest

from tunesmith.config import load_config
from tunesmith.errors import ConfigError, ModelError
from tunesmith.methods import METHODS, get_method, method_param_keys
from tunesmith.model.signature import write_base_signature
from tunesmith.methods.freeze import _layer_ids


def test_every_method_params_have_a_check():
    method_param_keys()  # loads the registry
    for method in METHODS.values():
        assert callable(getattr(method.params_cls, "check", None)), method.name


@pytest.mark.parametrize("method, key, value", [
    ("ia3", "lora_rank", 8), ("prefix", "lora_target", "q_proj"), ("full", "num_virtual_tokens", 4),
    ("lora", "ia3_target", "k_proj"), ("freeze", "adalora_init_r", 4), ("prompt", "lora_rank", 4),
])
def test_key_of_another_method_is_ignored_with_a_note(method, key, value, capsys):
    from tunesmith import notes

    notes._NOTED.clear()
    cfg = load_config(None, {"method": method, key: value})
    err = capsys.readouterr().err
    assert key not in cfg.method.params
    assert f"note: '{key}' is ignored" in err and f"not of method '{method}'" in err
    for owner in method_param_keys()[key]:
        assert owner in err


@pytest.mark.parametrize("overrides, key", [
    ({"lora_rank": 0}, "lora_rank"), ({"lora_dropout": 1.0}, "lora_dropout"),
    ({"lora_alpha": -1}, "lora_alpha"), ({"lora_bias": "some"}, "lora_bias"),
    ({"init_lora_weights": "pisa"}, "init_lora_weights"), ({"loftq_bits": 3}, "loftq_bits"),
    ({"layers_pattern": "layers"}, "layers_pattern"),
    ({"layer_replication": "[[2, 1]]"}, "layer_replication"),
    ({"method": "qlora", "init_lora_weights": "loftq"}, "loftq"),
    ({"method": "freeze", "freeze_trainable_layers": 0}, "freeze_trainable_layers"),
    ({"method": "prefix", "num_virtual_tokens": 0}, "num_virtual_tokens"),
    ({"method": "prompt", "prompt_tuning_init_text": " "}, "prompt_tuning_init_text"),
    ({"method": "ptuning", "encoder_reparameterization_type": "GRU"}, "encoder_reparameterization_type"),
    ({"method": "ptuning", "encoder_dropout": 2}, "encoder_dropout"),
    ({"method": "ia3", "ia3_target": "k_proj", "ia3_feedforward": "down_proj"}, "ia3_feedforward"),
    ({"method": "adalora", "adalora_target_r": 16}, "adalora_target_r"),
    ({"method": "adalora", "adalora_beta1": 1.5}, "adalora_beta1"),
    ({"method": "adalora", "adalora_tinit": 5, "adalora_total_step": 5}, "adalora_tinit"),
    ({"method": "prefix", "gradient_checkpointing": True}, "gradient_checkpointing"),
    ({"method": "lycoris_typo"}, "unknown method"),
    ({"method": "loha", "lycoris_rank": 0}, "lycoris_rank"),
    ({"method": "vera", "vera_dropout": 1}, "vera_dropout"),
    ({"method": "oft", "oft_block_size": 0}, "oft_block_size"),
])
def test_out_of_range_values_name_the_key(overrides, key):
    with pytest.raises(ConfigError, match=key):
        load_config(None, overrides)


def test_adapter_is_refused_with_the_closest_real_options():
    with pytest.raises(ConfigError) as err:
        load_config(None, {"method": "adapter"})
    msg = str(err.value)
    assert "no bottleneck adapter" in msg and "lora" in msg and "ia3" in msg
    assert get_method("adapter").summary.startswith("not available")


def test_qlora_sets_4bit_and_other_methods_refuse_a_quantized_base():
    assert load_config(None, {"method": "qlora"}).model.quantization_bit == 4
    with pytest.raises(ConfigError, match="qlora"):
        load_config(None, {"method": "full", "quantization_bit": 8})


def test_freeze_layer_selection_follows_llama_factory():
    assert _layer_ids(2, 6) == [4, 5] and _layer_ids(-2, 6) == [0, 1]
    with pytest.raises(ConfigError, match="only 6 layers"):
        _layer_ids(7, 6)


def test_freeze_unknown_module_lists_the_real_ones(method_overrides):
    from .conftest import train_method

    with pytest.raises(ConfigError, match="no module named ffn.*mlp"):
        train_method({**method_overrides, "method": "freeze", "freeze_trainable_modules": "ffn"})


def test_bitfit_on_a_model_without_biases_says_so(method_overrides):
    from .conftest import train_method

    with pytest.raises(ConfigError, match="no bias parameters"):
        train_method({**method_overrides, "method": "bitfit"})


def test_adapter_on_the_wrong_base_is_a_clear_error(tmp_path, tiny_model_dir):
    from transformers import AutoConfig, AutoModelForCausalLM

    from tunesmith.infer.adapters import check_adapter_base

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    write_base_signature(model, tmp_path)
    check_adapter_base(tmp_path, model)  # same base: accepted
    config = AutoConfig.from_pretrained(str(tiny_model_dir))
    config.num_hidden_layers = 3
    other = AutoModelForCausalLM.from_config(config)
    with pytest.raises(ModelError, match="different base model.*num_hidden_layers: adapter 2 vs model 3"):
        check_adapter_base(tmp_path, other)


def test_every_method_key_has_help():
    from tunesmith.config_help import KEY_HELP

    assert [k for k in method_param_keys() if k not in KEY_HELP] == []


@pytest.mark.parametrize("init", ["pissa", "olora"])
def test_data_dependent_inits_count_on_the_meta_device(init, tmp_path, tiny_model_dir):
    """``tunesmith estimate`` applies methods to a meta-device model: same shapes, no files."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = load_config(None, {"init_lora_weights": init, "output_dir": str(tmp_path / "out")})
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(str(tiny_model_dir)))
    method = get_method("lora")
    from tunesmith.methods import build_params

    peft_model = method.apply(model, build_params(method, cfg.method.params), cfg)
    assert sum(p.numel() for p in peft_model.parameters() if p.requires_grad) > 0
    assert not (tmp_path / "out").exists()
