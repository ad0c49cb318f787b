"""eval: token-weighted loss and perplexity with the training template and masks."""

import json
import math

import pytest
import torch

from tunesmith.cli import main
from tunesmith.config import load_config
from tunesmith.data.load import load_data
from tunesmith.evaluate.loss import run_eval
from tunesmith.infer.load import load_hf_engine


def test_eval_loss_is_the_mean_over_label_tokens(tiny_model_dir, chat_data, tmp_path):
    over = {"model_name_or_path": str(tiny_model_dir), "dataset": str(chat_data), "dtype": "fp32",
            "output_dir": str(tmp_path / "e"), "max_samples": 5}
    engine = load_hf_engine(load_config(None, over))
    by_batch = [run_eval(load_config(None, {**over, "per_device_eval_batch_size": bs}), engine)
                for bs in (1, 4)]
    assert by_batch[0]["eval_loss"] == pytest.approx(by_batch[1]["eval_loss"], abs=1e-5)
    # Independent: HF's own per-example mean loss, weighted by each example's label tokens.
    cfg = load_config(None, over)
    examples = load_data(cfg, engine.tokenizer, engine.template).train
    total = count = 0
    with torch.no_grad():
        for e in examples:
            n = sum(1 for x in e.labels[1:] if x != -100)
            out = engine.model(input_ids=torch.tensor([e.input_ids]), labels=torch.tensor([e.labels]))
            total, count = total + out.loss.item() * n, count + n
    result = by_batch[1]
    assert result["eval_loss"] == pytest.approx(total / count, rel=1e-5)
    assert result["eval_perplexity"] == pytest.approx(math.exp(total / count), rel=1e-4)
    assert result["eval_label_tokens"] == count and result["eval_samples"] == 5
    assert json.loads((tmp_path / "e" / "eval_results.json").read_text())["eval_loss"] == result["eval_loss"]


def test_eval_command_on_validation_split(tiny_model_dir, chat_data, tmp_path, capsys):
    out = tmp_path / "ev"
    code = main(["eval", f"model_name_or_path={tiny_model_dir}", f"dataset={chat_data}",
                 "val_size=0.25", f"output_dir={out}"])
    assert code == 0
    saved = json.loads((out / "eval_results.json").read_text())
    assert saved["eval_samples"] == 6 and "validation" in saved["eval_split"]
    assert "eval_perplexity" in capsys.readouterr().out
