"""Every example config validates, documents itself, and trains on the bundled model.

The smoke run keeps each example's own method, template, data and label strategy and only
shrinks it: one optimizer step on a few rows of at most 256 tokens, nothing saved mid-run.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tunesmith.config import load_config

from ..conftest import REPO

EXAMPLES = sorted((REPO / "examples").glob("*.yaml")) + \
    sorted((REPO / "examples" / "peft_catalogue").glob("*.yaml"))
IDS = [str(p.relative_to(REPO / "examples")) for p in EXAMPLES]
SMOKE = {"max_steps": 1, "max_samples": 8, "cutoff_len": 256, "save_strategy": "no",
         "per_device_train_batch_size": 2, "per_device_eval_batch_size": 2,
         "gradient_accumulation_steps": 1, "logging_steps": 1, "report_to": "none"}
# Examples whose method needs something the bundled SmolLM2 lacks: BitFit needs bias terms.
NEEDS_BIASES = {"peft_catalogue/bitfit.yaml"}


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch):
    monkeypatch.chdir(REPO)  # examples name dataset_dir: examples/data, relative to the repo


def test_examples_exist_for_every_seed():
    names = {p.name for p in EXAMPLES}
    assert {"emotional_support.yaml", "emotional_support_qlora.yaml", "multi_turn.yaml",
            "medical_reasoning.yaml", "identity.yaml", "pretrain_text.yaml"} <= names
    assert len(list((REPO / "examples" / "peft_catalogue").glob("*.yaml"))) >= 10


@pytest.mark.parametrize("path", EXAMPLES, ids=IDS)
def test_example_validates_and_says_what_it_reproduces(path: Path):
    cfg = load_config(str(path))
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# Seed 00"), "the header names the seed it reproduces"
    assert f"tunesmith train examples/{path.relative_to(REPO / 'examples')}" in text
    for name in cfg.data.dataset:
        info = json.loads((REPO / cfg.data.dataset_dir / "dataset_info.json").read_text())
        assert name in info, f"dataset '{name}' is not registered"
        assert (REPO / cfg.data.dataset_dir / info[name]["file_name"]).is_file()


def test_example_readme_has_a_section_per_example():
    readme = (REPO / "examples" / "README.md").read_text(encoding="utf-8")
    for path in EXAMPLES:
        assert path.name in readme, path.name


@pytest.fixture(scope="module")
def biased_model_dir(tmp_path_factory, bundled_dir) -> Path:
    """A 2-layer Llama with attention/MLP biases and the bundled tokenizer (for BitFit)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    out = tmp_path_factory.mktemp("tiny-biased")
    tokenizer = AutoTokenizer.from_pretrained(str(bundled_dir))
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         attention_bias=True, mlp_bias=True, tie_word_embeddings=False,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _saved_weights(out: Path) -> bool:
    return (out / "adapter_model.safetensors").is_file() or any(out.glob("model*.safetensors"))


@pytest.mark.slow
@pytest.mark.parametrize("path", EXAMPLES, ids=IDS)
def test_example_smoke_trains_on_the_bundled_model(path: Path, bundled_dir, biased_model_dir,
                                                   tmp_path):
    from tunesmith.train.run import run_training

    rel = str(path.relative_to(REPO / "examples"))
    overrides = {**SMOKE, "output_dir": str(tmp_path / "run")}
    overrides["model_name_or_path"] = str(biased_model_dir) if rel in NEEDS_BIASES else "smollm2-135m"
    cfg = load_config(str(path), overrides)
    metrics = run_training(cfg)
    out = tmp_path / "run"
    losses = [r["loss"] for r in map(json.loads, (out / "trainer_log.jsonl").read_text().splitlines())
              if "loss" in r]
    assert losses and all(math.isfinite(x) for x in losses), losses
    assert math.isfinite(metrics["train_loss"])
    for name in ("tunesmith_config.yaml", "all_results.json", "trainer_state.json",
                 "data_report.json", "README.md"):
        assert (out / name).is_file(), name
    assert _saved_weights(out), sorted(p.name for p in out.iterdir())
    if cfg.train.plot_loss:
        assert (out / "training_loss.png").is_file()
    if cfg.data.val_size or cfg.data.eval_dataset:
        assert math.isfinite(metrics["eval_loss"])
