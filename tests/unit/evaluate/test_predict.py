"""predict: batched generation on a dataset, files in LLaMA-Factory's shape, honest errors."""

import json

import pytest
import torch

from tunesmith.cli import main
from tunesmith.config import load_config
from tunesmith.data.conversation import Conversation
from tunesmith.data.load import load_data
from tunesmith.data.tokenize import encode_conversation
from tunesmith.errors import DataError
from tunesmith.evaluate.predict import run_predict
from tunesmith.evaluate.samples import load_samples
from tunesmith.infer.hf import HFEngine

from ...conftest import write_rows
from ..infer.helpers import TAUGHT, taught_engine


@pytest.fixture(scope="module")
def random_engine(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunesmith.data.templates import get_template

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    return HFEngine(model, tokenizer, get_template("auto", tokenizer))


def _cfg(tmp_path, data, **extra):
    return load_config(None, {"dataset": str(data), "output_dir": str(tmp_path / "pred"),
                              "max_new_tokens": 40, **extra})


def _rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_predict_writes_predictions_and_metrics(tiny_model_dir, tmp_path):
    rows = [{"instruction": m[0]["content"], "input": "", "output": a} for m, a in TAUGHT]
    rows.append({"instruction": "Hi", "input": "", "output": "Something else entirely."})
    data = write_rows(tmp_path / "qa.json", rows)
    cfg = _cfg(tmp_path, data, metrics="exact_match,accuracy,bleu,rouge")
    engine = taught_engine(tiny_model_dir)
    results = run_predict(cfg, engine=engine, progress=False)
    out = tmp_path / "pred"
    preds = _rows(out / "generated_predictions.jsonl")
    assert [p["label"] for p in preds] == [r["output"] for r in rows]  # dataset order
    assert [p["predict"] for p in preds] == ["Hello there.", "I am Nova, a tiny model.", "Hello there."]
    assert preds[0]["prompt"] == engine.template.generation_prompt(engine.tokenizer, TAUGHT[0][0])
    saved = json.loads((out / "predict_results.json").read_text())
    assert saved == results
    assert results["predict_exact_match"] == pytest.approx(200 / 3, abs=1e-3)
    assert results["predict_accuracy"] == pytest.approx(200 / 3, abs=1e-3)
    assert 60 < results["predict_bleu-4"] < 100 and 60 < results["predict_rouge-l"] < 100
    assert results["predict_samples"] == 3
    assert "jieba" in results["metrics_method"] and "method3" in results["metrics_method"]


def test_batched_predict_equals_one_at_a_time(random_engine, tmp_path):
    rows = [{"instruction": "word " * n, "input": "", "output": "x"} for n in (1, 9, 3, 20, 5)]
    data = write_rows(tmp_path / "qa.json", rows)
    outputs = []
    for bs in (1, 3):
        cfg = _cfg(tmp_path, data, max_new_tokens=6, per_device_eval_batch_size=bs,
                   output_dir=str(tmp_path / f"bs{bs}"))
        run_predict(cfg, engine=random_engine, progress=False)
        outputs.append(_rows(tmp_path / f"bs{bs}" / "generated_predictions.jsonl"))
    assert outputs[0] == outputs[1]


def test_validation_split_is_the_one_training_held_out(random_engine, chat_data, tmp_path):
    cfg = _cfg(tmp_path, chat_data, val_size=0.25)
    samples, report, where = load_samples(cfg, random_engine.tokenizer, random_engine.template)
    held_out = load_data(cfg, random_engine.tokenizer, random_engine.template).eval
    assert len(samples) == len(held_out) == 6 and "validation split" in where
    for sample, example in zip(samples, held_out):
        conv = Conversation(sample.messages + [{"role": "assistant", "content": sample.label}])
        ids = encode_conversation(conv, random_engine.tokenizer, random_engine.template,
                                  train_on="all_assistant", cutoff_len=2048)[0].input_ids
        assert ids == example.input_ids


def test_dataset_without_reference_answers_is_a_clear_error(random_engine, tmp_path):
    data = write_rows(tmp_path / "q.json", [{"instruction": "Hi", "input": "", "output": ""}] * 3)
    with pytest.raises(DataError, match="no reference answers"):
        run_predict(_cfg(tmp_path, data, format="alpaca"), engine=random_engine, progress=False)


def test_prompt_longer_than_context_names_the_row(random_engine, tmp_path):
    rows = [{"instruction": "Hi", "output": "Hello"}, {"instruction": "word " * 600, "output": "x"}]
    data = write_rows(tmp_path / "long.jsonl", rows)
    with pytest.raises(DataError, match=r"long.jsonl:2: the prompt has \d+ tokens") as err:
        run_predict(_cfg(tmp_path, data), engine=random_engine, progress=False)
    assert "context length is 512" in str(err.value)


def test_train_do_predict_routes_to_predict(tiny_model_dir, chat_data, tmp_path, capsys):
    out = tmp_path / "p"
    code = main(["train", "--do_predict", "--predict_with_generate", "--model_name_or_path",
                 str(tiny_model_dir), "--dataset", str(chat_data), "--output_dir", str(out),
                 "--max_samples", "4", "--max_new_tokens", "3"])
    assert code == 0
    assert len(_rows(out / "generated_predictions.jsonl")) == 4
    assert "predict_bleu-4" in json.loads((out / "predict_results.json").read_text())
    assert "LLaMA-Factory" in capsys.readouterr().out


def test_cli_dataset_without_answers_exits_2(tiny_model_dir, tmp_path, capsys):
    data = write_rows(tmp_path / "q.jsonl", [{"instruction": "Hi", "output": ""}] * 2)
    code = main(["predict", f"model_name_or_path={tiny_model_dir}", f"dataset={data}",
                 "format=alpaca", f"output_dir={tmp_path / 'o'}"])
    err = capsys.readouterr().err
    assert code == 2 and "no reference answers" in err and "Traceback" not in err
