"""Preference stages through the real ``run_training``: logged and plotted metrics, exact resume,
precomputed reference = on-the-fly reference, every method family under dpo/kto/rm, the reward
model's head saved, predicted and served."""

from __future__ import annotations

import json

import pytest
import torch

from tests.conftest import write_rows
from tunesmith.config import load_config
from tunesmith.train.records import read_log
from tunesmith.train.run import run_training

PAIRS = [{"prompt": f"Say hello {i}.", "chosen": f"Hello there, I am Nova {i}. Glad to help!",
          "rejected": f"hi {i}"} for i in range(12)]
METRICS = ("rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins",
           "logps/chosen", "logps/rejected")


@pytest.fixture
def pref_overrides(tiny_model_dir, tmp_path):
    data = write_rows(tmp_path / "pairs.jsonl", PAIRS)
    return {"model_name_or_path": str(tiny_model_dir), "dataset": str(data), "stage": "dpo",
            "output_dir": str(tmp_path / "run"), "max_steps": 3, "learning_rate": 1e-2,
            "per_device_train_batch_size": 4, "logging_steps": 1, "save_strategy": "no",
            "dtype": "fp32", "lora_rank": 4, "cutoff_len": 64, "lr_scheduler_type": "constant"}


def _losses(out) -> list[dict]:
    return [r for r in read_log(out) if "loss" in r]


def test_dpo_logs_and_plots_every_preference_metric(pref_overrides, tmp_path):
    run_training(load_config(None, pref_overrides))
    out = tmp_path / "run"
    rows = _losses(out)
    assert [r["step"] for r in rows] == [1, 2, 3]
    for key in METRICS:
        assert all(key in r for r in rows), key
        assert (out / f"training_{key.replace('/', '_')}.png").is_file()
    assert rows[0]["rewards/margins"] == 0.0  # adapter starts at zero: policy == reference
    assert rows[-1]["rewards/margins"] > 0 and rows[-1]["loss"] < rows[0]["loss"]
    from tunesmith.evaluate import run_evaluator

    cfg = load_config(None, {**pref_overrides, "adapter_name_or_path": str(out),
                             "output_dir": str(tmp_path / "eval")})
    results = run_evaluator(cfg)  # stage dpo: pair accuracy, not perplexity
    assert results["eval_pairs"] == len(PAIRS) and 0 <= results["eval_pair_accuracy"] <= 1
    saved = json.loads((tmp_path / "eval" / "eval_results.json").read_text())
    assert saved["eval_logp_margin"] == results["eval_logp_margin"]


def test_dpo_resume_continues_the_same_run(pref_overrides, tmp_path):
    whole = {**pref_overrides, "max_steps": 4, "output_dir": str(tmp_path / "whole")}
    run_training(load_config(None, whole))
    part = {**whole, "output_dir": str(tmp_path / "part"), "save_strategy": "steps",
            "save_steps": 2, "max_steps": 2}
    run_training(load_config(None, part))
    run_training(load_config(None, {**part, "max_steps": 4, "resume_from_checkpoint": "auto"}))
    a, b = _losses(tmp_path / "whole"), _losses(tmp_path / "part")
    assert [r["step"] for r in b] == [1, 2, 3, 4]
    for ra, rb in zip(a, b):
        for key in ("loss", *METRICS):
            assert abs(ra[key] - rb[key]) <= 1e-6, (ra["step"], key)


def test_precomputed_reference_equals_the_adapter_toggle(pref_overrides, tmp_path):
    toggle = {**pref_overrides, "max_steps": 2}
    run_training(load_config(None, toggle))
    pre = {**toggle, "precompute_ref_log_probs": True, "output_dir": str(tmp_path / "pre")}
    run_training(load_config(None, pre))
    for ra, rb in zip(_losses(tmp_path / "run"), _losses(tmp_path / "pre")):
        for key in ("loss", *METRICS):
            assert abs(ra[key] - rb[key]) <= 1e-5, (ra["step"], key)


@pytest.mark.parametrize("keys", [
    {"pref_ftx": 0.5},  # sigmoid DPO with its SFT term
    {"pref_loss": "ipo", "precompute_ref_log_probs": True},
    {"stage": "rm"},
])
def test_pair_passes_train_exactly_as_one_pass(keys, pref_overrides, tmp_path, monkeypatch):
    """``micro_batch_tokens``: a batch of pairs run one pair per pass gives the same losses,
    logged metrics and adapter as the whole batch at once."""
    from safetensors.torch import load_file

    from tunesmith.train.pref_trainer import PreferenceTrainer

    seen = []
    split = PreferenceTrainer.split_passes
    monkeypatch.setattr(PreferenceTrainer, "split_passes",
                        lambda self, i, n: seen.append(len(split(self, i, n))) or split(self, i, n))
    runs = {}
    for name, tokens in (("one", 0), ("passes", 40)):  # a pair here is ~30-40 tokens
        out = tmp_path / name
        run_training(load_config(None, {**pref_overrides, **keys, "output_dir": str(out),
                                        "micro_batch_tokens": tokens}))
        runs[name] = (_losses(out), load_file(out / "adapter_model.safetensors"))
    assert seen[:3] == [1, 1, 1] and seen[3:] == [4, 4, 4], seen
    (one, w_one), (passes, w_passes) = runs["one"], runs["passes"]
    assert len(one) == len(passes) == 3
    for a, b in zip(one, passes):
        for key in ("loss", "grad_norm", *METRICS[:4 if keys.get("stage") == "rm" else 6]):
            assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-6), (a["step"], key)
    for key, value in w_one.items():
        assert torch.allclose(w_passes[key], value, rtol=1e-4, atol=1e-6), key


@pytest.mark.parametrize("method,extra", [
    ("full", {}), ("freeze", {"freeze_trainable_layers": 1}), ("ia3", {}),
    ("prompt", {"num_virtual_tokens": 4}),
])
def test_methods_under_dpo(method, extra, pref_overrides, tmp_path):
    """Full/freeze keep a frozen copy as the reference; adapters switch off; virtual-token
    methods run padded (no packing)."""
    overrides = {**pref_overrides, "method": method, "max_steps": 2, "learning_rate": 1e-3, **extra}
    overrides.pop("lora_rank")
    run_training(load_config(None, overrides))
    rows = _losses(tmp_path / "run")
    assert len(rows) == 2 and all(torch.isfinite(torch.tensor(r["loss"])) for r in rows)
    assert rows[1]["rewards/margins"] != 0.0  # the policy moved away from its reference


def test_orpo_needs_no_reference_and_full_keeps_none(pref_overrides, tmp_path, monkeypatch):
    import tunesmith.train.stages._pref as pref

    monkeypatch.setattr(pref, "frozen_copy", lambda m: pytest.fail("ORPO made a reference copy"))
    overrides = {**pref_overrides, "method": "full", "pref_loss": "orpo", "max_steps": 1}
    overrides.pop("lora_rank")
    run_training(load_config(None, overrides))
    assert "log_odds_ratio" in _losses(tmp_path / "run")[0]


def test_kto_trains_on_labelled_answers(pref_overrides, tmp_path):
    rows = [{"prompt": p["prompt"], "completion": p["chosen" if i % 2 else "rejected"],
             "label": bool(i % 2)} for i, p in enumerate(PAIRS)]
    data = write_rows(tmp_path / "kto.jsonl", rows)
    run_training(load_config(None, {**pref_overrides, "stage": "kto", "dataset": str(data)}))
    logged = _losses(tmp_path / "run")
    assert all("kl" in r and "rewards/chosen" in r and "rewards/rejected" in r for r in logged)


def test_reward_model_saves_predicts_and_serves_scores(pref_overrides, tmp_path):
    from tunesmith.evaluate.preference import run_reward_predict
    from tunesmith.train.reward_model import HEAD_FILE

    overrides = {**pref_overrides, "stage": "rm", "max_steps": 4, "save_strategy": "steps",
                 "save_steps": 2}
    run_training(load_config(None, overrides))
    out = tmp_path / "run"
    assert (out / HEAD_FILE).is_file() and (out / "checkpoint-2" / HEAD_FILE).is_file()
    assert all("rewards/accuracies" in r for r in _losses(out))
    cfg = load_config(None, {**overrides, "adapter_name_or_path": str(out),
                             "output_dir": str(tmp_path / "predict")})
    results = run_reward_predict(cfg, progress=False)
    lines = (tmp_path / "predict" / "generated_predictions.jsonl").read_text().splitlines()
    row = json.loads(lines[0])
    assert len(lines) == len(PAIRS) and {"prompt", "chosen", "rejected"} <= set(row)
    assert results["predict_accuracy"] == sum(
        json.loads(x)["chosen"] > json.loads(x)["rejected"] for x in lines) / len(lines)
    _serves_the_same_scores(cfg, out, row)


def _serves_the_same_scores(cfg, out, row):
    from fastapi.testclient import TestClient

    from tunesmith.commands.serve import _load_reward_head
    from tunesmith.infer.load import load_hf_engine
    from tunesmith.serve.app import create_app

    engine = load_hf_engine(cfg)
    _load_reward_head(engine, cfg)
    text = row["prompt"] + PAIRS[0]["chosen"] + "<|im_end|>\n"
    with TestClient(create_app(engine, cfg.serve, model_id="rm")) as client:
        reply = client.post("/v1/score/evaluation", json={"model": "rm", "messages": [text]})
        bad = client.post("/v1/score/evaluation", json={"model": "rm", "messages": []})
    assert reply.status_code == 200, reply.text
    assert abs(reply.json()["scores"][0] - row["chosen"]) <= 1e-4
    assert bad.status_code == 400 and "error" in bad.json()


@pytest.mark.parametrize("keys,match", [
    ({"pref_loss": "kto_pair"}, "pref_loss.*not one of sigmoid, ipo, hinge, orpo, simpo"),
    ({"pref_beta": 0}, "pref_beta.*positive"),
    ({"pref_loss": "hinge", "dpo_label_smoothing": 0.1}, "only pref_loss sigmoid and simpo"),
    ({"kto_chosen_weight": 2.0}, "parameter of stage kto, not of stage 'dpo'"),
])
def test_preference_keys_are_checked_before_loading(keys, match):
    from tunesmith.errors import ConfigError
    from tunesmith.train.stages import check_stage

    with pytest.raises(ConfigError, match=match):
        check_stage(load_config(None, {"stage": "dpo", **keys}))
