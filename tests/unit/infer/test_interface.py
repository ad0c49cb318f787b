"""Chat, predict and serve through engines that implement only the Engine interface: a scripted
fake, and the vLLM backend over a stand-in for vLLM's engine (streamed token by token)."""

from __future__ import annotations

import json

import pytest

from tunesmith.config import load_config
from tunesmith.infer.engine import GenParams

from ...conftest import write_rows
from .fake_engine import ANSWER, FakeEngine, FakeLLMEngine, install_fake_vllm


@pytest.fixture(scope="module")
def parts(tiny_model_dir):
    from transformers import AutoTokenizer

    from tunesmith.data.templates import get_template

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    return tokenizer, get_template("auto", tokenizer)


def test_chat_streams_from_any_engine(parts, capsys):
    from tunesmith.commands.chat import Session

    engine = FakeEngine(*parts)
    Session(engine, GenParams(max_new_tokens=50), system=None).handle("Hi")
    assert ANSWER in capsys.readouterr().out
    stream = engine.stream([{"role": "user", "content": "Hi"}], GenParams(max_new_tokens=50))
    pieces = [next(stream), next(stream)]
    stream.close()  # a reader that leaves frees the row
    assert len(pieces) == 2 and engine.decoders[-1].dropped and not engine.decoders[-1].rows


def test_predict_through_any_engine(parts, tmp_path):
    from tunesmith.evaluate.predict import run_predict

    rows = [{"instruction": f"Question {i}", "input": "", "output": ANSWER} for i in range(7)]
    cfg = load_config(None, {"dataset": str(write_rows(tmp_path / "qa.json", rows)),
                             "output_dir": str(tmp_path / "pred"), "max_new_tokens": 40,
                             "per_device_eval_batch_size": 3, "metrics": "exact_match"})
    engine = FakeEngine(*parts)
    results = run_predict(cfg, engine=engine, progress=False)
    preds = [json.loads(x) for x in (tmp_path / "pred" / "generated_predictions.jsonl").read_text().splitlines()]
    assert [p["predict"] for p in preds] == [ANSWER] * 7
    assert results["predict_exact_match"] == 100
    assert max(d.capacity for d in engine.decoders) == 3


@pytest.fixture
def client(parts):
    from fastapi.testclient import TestClient

    from tunesmith.serve.app import create_app

    settings = load_config(None, {"max_n": 2, "model_name": "fake"}).serve
    with TestClient(create_app(FakeEngine(*parts), settings)) as c:
        yield c


def test_serve_through_any_engine(client):
    body = {"model": "fake", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 50}
    whole = client.post("/v1/chat/completions", json=body).json()
    assert whole["choices"][0]["message"]["content"] == ANSWER
    assert whole["choices"][0]["finish_reason"] == "stop"
    with client.stream("POST", "/v1/chat/completions", json={**body, "stream": True, "n": 2}) as r:
        events = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    texts = {0: "", 1: ""}
    for e in events[:-1]:
        choice = json.loads(e)["choices"][0]
        texts[choice["index"]] += choice["delta"].get("content") or ""
    assert texts == {0: ANSWER, 1: ANSWER} and len(events) > 6  # token by token
    text = client.post("/v1/completions", json={"model": "fake", "prompt": "Once", "max_tokens": 3})
    assert text.json()["choices"][0]["finish_reason"] == "length"


def _vllm_engine(parts, monkeypatch):
    from types import SimpleNamespace

    from tunesmith.infer.vllm import VLLMEngine

    install_fake_vllm(monkeypatch)
    tokenizer, template = parts
    engine = VLLMEngine(SimpleNamespace(llm_engine=None), tokenizer, template)
    answer = tokenizer(ANSWER, add_special_tokens=False)["input_ids"]
    engine.llm.llm_engine = FakeLLMEngine(answer, tokenizer.convert_tokens_to_ids("<|im_end|>"))
    return engine


def test_vllm_engine_streams_token_by_token(parts, monkeypatch):
    engine = _vllm_engine(parts, monkeypatch)
    messages = [{"role": "user", "content": "Hi"}]
    pieces = list(engine.stream(messages, GenParams(max_new_tokens=50)))
    assert "".join(pieces) == ANSWER and len(pieces) > 3
    outs = engine.batch_generate([messages] * 3, GenParams(max_new_tokens=50, logprobs=True,
                                                           top_logprobs=2))
    assert [o.text for o in outs] == [ANSWER] * 3 and outs[0].finish_reason == "stop"
    assert outs[0].logprobs[0]["logprob"] == -0.5 and len(outs[0].logprobs[0]["top_logprobs"]) == 2
    short = engine.generate(messages, GenParams(max_new_tokens=2))
    assert short.finish_reason == "length" and short.completion_tokens == 2
    stream = engine.stream(messages, GenParams(max_new_tokens=50))
    next(stream)
    stream.close()
    assert engine.llm.llm_engine.aborted and not engine.llm.llm_engine.requests
