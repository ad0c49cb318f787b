"""Hyperparameters by their familiar names -> TrainingArguments, and every bad value -> one line."""

from __future__ import annotations

import json

import pytest

from tunesmith.config import load_config
from tunesmith.errors import ConfigError
from tunesmith.train.arguments import build_training_args


def _args(tmp_path, **over):
    base = {"model_name_or_path": "x", "dataset": "x", "output_dir": str(tmp_path / "o")}
    return build_training_args(load_config(None, {**base, **over}))


@pytest.mark.parametrize("sched", ["linear", "cosine", "constant", "constant_with_warmup",
                                   "polynomial", "cosine_with_restarts", "inverse_sqrt"])
def test_schedulers_by_name(tmp_path, sched):
    assert _args(tmp_path, lr_scheduler_type=sched).lr_scheduler_type.value == sched


def test_familiar_names_reach_training_arguments(tmp_path):
    args = _args(tmp_path, learning_rate=3e-4, num_train_epochs=2, per_device_train_batch_size=2,
                 gradient_accumulation_steps=4, weight_decay=0.01, max_grad_norm=0.5,
                 optim="sgd", seed=7, logging_steps=3, save_steps=5, save_total_limit=2,
                 save_only_model=True, dataloader_num_workers=0, gradient_checkpointing=True,
                 trainer_args={"adam_beta2": 0.95, "ddp_find_unused_parameters": False})
    assert (args.learning_rate, args.num_train_epochs, args.per_device_train_batch_size) == (3e-4, 2, 2)
    assert (args.gradient_accumulation_steps, args.weight_decay, args.max_grad_norm) == (4, 0.01, 0.5)
    assert (args.optim.value, args.seed, args.logging_steps, args.save_steps) == ("sgd", 7, 3, 5)
    assert args.save_total_limit == 2 and args.save_only_model and args.adam_beta2 == 0.95
    assert args.activation_checkpointing and args.ddp_find_unused_parameters is False
    assert args.include_num_input_tokens_seen == "non_padding"


@pytest.mark.parametrize("over,steps", [({"warmup_steps": 0.1}, 10), ({"warmup_ratio": 0.25}, 25),
                                        ({"warmup_steps": 7}, 7), ({}, 0)])
def test_warmup_ratio_or_steps(tmp_path, over, steps):
    assert _args(tmp_path, **over).get_warmup_steps(100) == steps


@pytest.mark.parametrize("over,needle", [
    ({"trainer_args": {"adam_beta3": 0.9}}, "did you mean 'adam_beta2'"),
    ({"trainer_args": {"disable_tqdm": False}}, "set by tunesmith"),
    ({"optim": "adamw_torh"}, "did you mean 'adamw_torch'"),
    ({"lr_scheduler_type": "cosin"}, "did you mean 'cosine'"),
    ({"optim": "adamw_torch_4bit"}, "pip install torchao"),
    ({"report_to": "tensorbord"}, None),
])
def test_bad_values_are_one_line(tmp_path, over, needle):
    with pytest.raises(ConfigError) as err:
        if "report_to" in over:
            from tunesmith.train.trackers import setup_trackers

            setup_trackers(load_config(None, {"output_dir": str(tmp_path), **over}))
        else:
            _args(tmp_path, **over)
    assert "\n" not in str(err.value)
    assert needle is None or needle in str(err.value)


def test_training_arguments_own_rejection_is_config_error(tmp_path):
    # load_best_model_at_end needs matching save/eval strategies: transformers says so; we relay
    with pytest.raises(ConfigError, match="training arguments rejected"):
        _args(tmp_path, val_size=0.2, eval_strategy="steps", eval_steps=2, save_strategy="epoch",
              load_best_model_at_end=True)


@pytest.mark.parametrize("over,needle", [
    ({"save_total_limit": 0}, "save_total_limit"), ({"warmup_steps": -1}, "warmup_steps"),
    ({"load_best_model_at_end": True}, "needs evaluation"), ({"report_to": "none,wandb"}, "none"),
    ({"deepspeed": "a.json", "fsdp": "full_shard"}, "choose one"),
])
def test_config_rules(over, needle):
    with pytest.raises(ConfigError, match=needle):
        load_config(None, over)


def test_deepspeed_configs_shipped_and_checked(tmp_path, monkeypatch):
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[3] / "examples"
    ds = sorted((root / "deepspeed").glob("*.json"))
    assert {p.name for p in ds} >= {"ds_z2_config.json", "ds_z3_config.json",
                                    "ds_z2_offload_config.json", "ds_z3_offload_config.json"}
    for p in ds + sorted((root / "fsdp").glob("*.json")):
        json.loads(p.read_text())
    monkeypatch.setitem(sys.modules, "deepspeed", None)  # as where it is not installed
    with pytest.raises(ConfigError, match=r"needs the DeepSpeed package: pip install 'tunesmith\[deepspeed\]'"):
        _args(tmp_path, deepspeed=str(ds[0]))
    with pytest.raises(ConfigError, match="not found"):
        _args(tmp_path, deepspeed=str(tmp_path / "nope.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{ 'zero': 2 }")
    with pytest.raises(ConfigError, match="line 1: invalid JSON"):
        _args(tmp_path, deepspeed=str(bad))


def test_fsdp_config_passes_through(tmp_path):
    from pathlib import Path

    cfg = Path(__file__).resolve().parents[3] / "examples" / "fsdp" / "fsdp_config.json"
    args = _args(tmp_path, fsdp=str(cfg))
    assert args.fsdp and args.fsdp_config.get("auto_wrap_policy") == "TRANSFORMER_BASED_WRAP"


def test_fsdp_options_and_files_become_fsdp2_settings(tmp_path, monkeypatch, capsys):
    from tunesmith.errors import ConfigError
    from tunesmith.train import fsdp
    from tunesmith.train.fsdp import fsdp_kwargs

    monkeypatch.setattr(fsdp, "_on_cpu", lambda: True)  # offload is dropped on a CPU run
    assert fsdp_kwargs("full_shard offload")["fsdp_config"]["cpu_offload"] is False
    assert "cpu_offload has nothing to move" in capsys.readouterr().err
    monkeypatch.setattr(fsdp, "_on_cpu", lambda: False)  # as on a GPU machine

    assert fsdp_kwargs("full_shard auto_wrap offload") == {"fsdp": True, "fsdp_config": {
        "version": 2, "auto_wrap_policy": "TRANSFORMER_BASED_WRAP", "reshard_after_forward": True,
        "cpu_offload": True}}
    assert fsdp_kwargs("shard_grad_op")["fsdp_config"]["reshard_after_forward"] is False
    legacy = tmp_path / "f.json"
    legacy.write_text('{"fsdp": "full_shard offload", "fsdp_state_dict_type": "FULL_STATE_DICT"}')
    config = fsdp_kwargs(str(legacy))["fsdp_config"]
    assert config["cpu_offload"] is True and config["state_dict_type"] == "FULL_STATE_DICT"
    with pytest.raises(ConfigError, match="unknown FSDP option 'ful_shard'"):
        fsdp_kwargs("ful_shard")
