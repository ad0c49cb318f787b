"""LLaMA-Factory keys with real effect: NEFTune, LoRA+, new tokens, SwanLab, do_eval, GaLore."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from tunesmith.config import load_config
from tunesmith.errors import ConfigError
from tunesmith.train.run import run_training


def _first_loss(out) -> float:
    rows = [json.loads(x) for x in (out / "trainer_log.jsonl").read_text().splitlines()]
    return next(r["loss"] for r in rows if "loss" in r)


def test_neftune_adds_noise_through_the_fast_loss_with_lora(tiny_overrides, tmp_path):
    base = {**tiny_overrides, "max_steps": 1, "packing": False}
    run_training(load_config(None, {**base, "output_dir": str(tmp_path / "plain")}))
    cfg = load_config(None, {**base, "output_dir": str(tmp_path / "neft"),
                             "neftune_noise_alpha": 50})
    assert cfg.train.fast_loss
    run_training(cfg)
    # Same seed, data and init: only the embedding noise differs, so the first loss does.
    assert _first_loss(tmp_path / "neft") != pytest.approx(_first_loss(tmp_path / "plain"), abs=1e-6)


def test_neftune_turns_auto_packing_off_and_refuses_explicit_packing(tiny_overrides):
    assert load_config(None, {**tiny_overrides, "neftune_noise_alpha": 5}).data.packing is False
    with pytest.raises(ConfigError, match="packing: false"):
        load_config(None, {**tiny_overrides, "neftune_noise_alpha": 5, "packing": True})


def test_loraplus_gives_b_matrices_ratio_times_the_learning_rate(tiny_overrides):
    from tunesmith.data.load import load_data
    from tunesmith.data.templates import get_template
    from tunesmith.methods import method_params
    from tunesmith.model.load import load_tokenizer
    from tunesmith.train.model import load_for_training
    from tunesmith.train.run import build_trainer

    cfg = load_config(None, {**tiny_overrides, "loraplus_lr_ratio": 16, "learning_rate": 1e-3})
    tok = load_tokenizer(cfg.model)
    data = load_data(cfg, tok, get_template("auto", tok))
    method, params = method_params(cfg)
    model = method.apply(load_for_training(cfg, Path(tiny_overrides["model_name_or_path"])), params, cfg)
    trainer = build_trainer(cfg, model, tok, data)
    optimizer = trainer.create_optimizer()
    lrs = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    for name, p in model.named_parameters():
        if "lora_A" in name:
            assert lrs[id(p)] == pytest.approx(1e-3)
        if "lora_B" in name:
            assert lrs[id(p)] == pytest.approx(16e-3)
    assert any("lora_B" in n for n, _ in model.named_parameters())


def test_new_special_tokens_train_their_rows_and_reload_for_chat(tiny_overrides, tmp_path):
    from tunesmith.infer.load import load_hf_engine

    out = tmp_path / "run"
    cfg = load_config(None, {**tiny_overrides, "new_special_tokens": "<tool_x>,<tool_y>",
                             "max_steps": 2})
    run_training(cfg)
    saved = json.loads((out / "tunesmith_tokens.json").read_text())
    assert saved["add_special_tokens"] == ["<tool_x>", "<tool_y>"] and saved["vocab_rows"] % 64 == 0
    engine = load_hf_engine(load_config(None, {"model_name_or_path": tiny_overrides[
        "model_name_or_path"], "adapter_name_or_path": str(out)}))
    tok = engine.tokenizer
    ids = tok.convert_tokens_to_ids(["<tool_x>", "<tool_y>"])
    assert ids == [len(tok) - 2, len(tok) - 1]
    embed = engine.model.get_input_embeddings()
    rows = embed(torch.tensor([ids]))[0]
    from safetensors.torch import load_file

    trained = [v for k, v in load_file(out / "adapter_model.safetensors").items()
               if "trainable_tokens_delta" in k]
    assert trained and torch.allclose(rows, trained[0][:2].to(rows.dtype), atol=1e-6)


def test_new_tokens_on_a_quantized_base_are_refused(tiny_overrides):
    with pytest.raises(ConfigError, match="quantized base"):
        load_config(None, {**tiny_overrides, "add_tokens": "<a>", "quantization_bit": 4})


def test_swanlab_keeps_swanlab_project_from_the_environment(tiny_overrides, tmp_path, monkeypatch):
    for key in ("SWANLAB_API_KEY", "SWANLAB_MODE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("SWANLAB_PROJECT", "from-env")
    cfg = load_config(None, {**tiny_overrides, "max_steps": 1, "use_swanlab": True,
                             "swanlab_run_name": "exp1", "swanlab_logdir": str(tmp_path / "sw")})
    from tunesmith.train.trackers import swanlab_init_args

    args = swanlab_init_args(cfg, tmp_path)
    assert args["project"] == "from-env" and args["experiment_name"] == "exp1"
    assert args["mode"] == "offline"
    run_training(cfg)
    assert os.environ["SWANLAB_PROJECT"] == "from-env"  # still there for the user
    assert list((tmp_path / "sw").rglob("*.swanlab"))
    cfg = load_config(None, {**tiny_overrides, "swanlab_project": "mine", "swanlab_mode": "cloud"})
    assert swanlab_init_args(cfg, tmp_path)["project"] == "mine"
    assert swanlab_init_args(cfg, tmp_path)["mode"] == "online"


def test_swanlab_api_key_is_never_saved(tiny_overrides, tmp_path):
    from tunesmith.config import save_config

    cfg = load_config(None, {**tiny_overrides, "swanlab_api_key": "sk-secret"})
    assert "sk-secret" not in save_config(cfg, tmp_path).read_text()


def test_do_eval_needs_an_eval_set_and_alone_only_evaluates(tiny_overrides, tmp_path, capsys):
    from types import SimpleNamespace

    from tunesmith.commands import train

    with pytest.raises(ConfigError, match="do_eval needs an evaluation set"):
        load_config(None, {**tiny_overrides, "do_eval": True})
    args = SimpleNamespace(config=None, smoke=False, overrides=[
        f"{k}={v}" for k, v in {**tiny_overrides, "do_eval": True, "val_size": 0.25}.items()])
    assert train.run(args) == 0
    out = tmp_path / "run"
    assert json.loads((out / "eval_results.json").read_text())["eval_loss"] > 0
    assert not (out / "adapter_model.safetensors").exists()  # nothing trained


def test_galore_trains_full_weights_with_low_rank_gradients(tiny_overrides, tmp_path):
    cfg = load_config(None, {**tiny_overrides, "finetuning_type": "full", "use_galore": True,
                             "galore_rank": 4, "galore_update_interval": 1, "max_steps": 2,
                             "learning_rate": 1e-3})
    assert cfg.train.optim == "galore_adamw"
    assert cfg.train.trainer_args["optim_args"] == "rank=4,update_proj_gap=1,scale=2.0,proj_type=std"
    metrics = run_training(cfg)
    assert torch.isfinite(torch.tensor(metrics["train_loss"]))
    with pytest.raises(ConfigError, match="finetuning_type: full or freeze"):
        load_config(None, {**tiny_overrides, "use_galore": True})


def test_early_stopping_needs_the_best_model_metric(tiny_overrides):
    with pytest.raises(ConfigError, match="load_best_model_at_end"):
        load_config(None, {**tiny_overrides, "early_stopping_steps": 2})
