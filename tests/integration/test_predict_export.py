"""Seed 004 after training, on the bundled SmolLM2: predict with BLEU/ROUGE, export merged
shards, and the merged model answers exactly like base + adapter."""

import json

import pytest

from tunesmith.cli import main

from ..conftest import REPO, random_lora


def _rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def identity_adapter(bundled_dir, tmp_path_factory):
    """A LoRA adapter for the bundled model with non-zero weights: it changes the answers."""
    return random_lora(bundled_dir, tmp_path_factory.mktemp("identity-adapter"), r=8, alpha=16,
                       targets=["q_proj", "v_proj"], std=0.01, seed=4)


@pytest.mark.slow
def test_identity_predict_export_merged_equals_adapter(identity_adapter, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    adapter, export = identity_adapter, tmp_path / "export"
    predict = ["examples/identity.yaml", "do_train=false", "dtype=fp32", "--max_samples", "8",
               "--max_new_tokens", "24", "--per_device_eval_batch_size", "8"]
    assert main(["train", *predict, "--adapter_name_or_path", str(adapter), "--output_dir",
                 str(tmp_path / "p1"), "--do_predict", "--predict_with_generate"]) == 0
    results = json.loads((tmp_path / "p1" / "predict_results.json").read_text())
    assert {"predict_bleu-4", "predict_rouge-1", "predict_rouge-2", "predict_rouge-l"} <= set(results)
    assert results["predict_samples"] == 8
    tuned = _rows(tmp_path / "p1" / "generated_predictions.jsonl")
    assert len(tuned) == 8 and all(r["label"] and "Nova" in r["label"] for r in tuned)

    assert main(["export", "--model_name_or_path", "smollm2-135m", "--adapter_name_or_path",
                 str(adapter), "--template", "auto", "--finetuning_type", "lora", "--export_dir",
                 str(export), "--export_size", "0.2", "--export_device", "cpu",
                 "--export_legacy_format", "False"]) == 0
    check = json.loads((export / "export_check.json").read_text())
    assert check["passed"] and check["merge"]["top1_agreement"] == 1.0
    index = json.loads((export / "model.safetensors.index.json").read_text())["weight_map"]
    assert len(set(index.values())) >= 2  # ~540 MB in 0.2 GB shards

    assert main(["predict", *predict, "--model_name_or_path", str(export),
                 "--output_dir", str(tmp_path / "p2")]) == 0
    merged = _rows(tmp_path / "p2" / "generated_predictions.jsonl")
    assert [r["predict"] for r in merged] == [r["predict"] for r in tuned]
