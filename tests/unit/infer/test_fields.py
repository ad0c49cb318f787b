"""OpenAI request fields: each implemented one changes what is generated, the others get a 400
naming the field; the JSON-object constraint and the sampling rules on their own."""

from __future__ import annotations

import json

import pytest
import torch

from tunesmith.config import load_config
from tunesmith.infer.engine import GenParams
from tunesmith.infer.json_mode import JsonObjectConstraint, JsonPrefix
from tunesmith.infer.sampling import RowSampler


@pytest.fixture(scope="module")
def client(tiny_model_dir):
    from fastapi.testclient import TestClient
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunesmith.data.templates import get_template
    from tunesmith.infer.hf import HFEngine
    from tunesmith.serve.app import create_app

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    engine = HFEngine(model, tokenizer, get_template("auto", tokenizer))
    settings = load_config(None, {"model_name": "tiny", "max_n": 2}).serve
    with TestClient(create_app(engine, settings)) as c:
        c.engine = engine
        yield c


def chat(client, **extra):
    body = {"model": "tiny", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 6,
            **extra}
    return client.post("/v1/chat/completions", json=body)


def test_chat_logprobs_whole_and_streamed(client):
    out = chat(client, logprobs=True, top_logprobs=3).json()["choices"][0]
    entries = out["logprobs"]["content"]
    assert len(entries) == 6 and all(len(e["top_logprobs"]) == 3 for e in entries)
    assert all(e["logprob"] <= 0 and e["logprob"] == e["top_logprobs"][0]["logprob"]
               for e in entries)  # greedy: the chosen token is the most likely one
    assert "".join(e["token"] for e in entries) == out["message"]["content"]
    with client.stream("POST", "/v1/chat/completions", json={
            "model": "tiny", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 6,
            "stream": True, "logprobs": True}) as resp:
        chunks = [json.loads(x[6:]) for x in resp.iter_lines() if x.startswith("data: {")]
    streamed = [e for c in chunks for e in ((c["choices"][0]["logprobs"] or {}).get("content") or [])]
    assert [e["token"] for e in streamed] == [e["token"] for e in entries]
    assert chat(client).json()["choices"][0]["logprobs"] is None


def test_completions_logprobs_and_echo(client):
    body = {"model": "tiny", "prompt": "Once upon", "max_tokens": 4}
    out = client.post("/v1/completions", json={**body, "logprobs": 2}).json()["choices"][0]
    lp = out["logprobs"]
    assert len(lp["tokens"]) == 4 and all(len(t) == 2 for t in lp["top_logprobs"])
    assert lp["text_offset"][0] == 0 and "".join(lp["tokens"]) == out["text"]
    echoed = client.post("/v1/completions", json={**body, "echo": True}).json()["choices"][0]
    assert echoed["text"] == "Once upon" + out["text"]


def test_logit_bias_and_penalties_change_the_output(client):
    plain = chat(client).json()["choices"][0]["message"]["content"]
    token = client.engine.encode_text(" banana")[-1]
    forced = chat(client, logit_bias={str(token): 100}).json()["choices"][0]["message"]["content"]
    assert forced == client.engine.decode([token] * 6) != plain
    sampler = RowSampler(GenParams(frequency_penalty=2.0), [])
    logits = torch.tensor([0.0, 3.0, 2.5, 0.0])
    assert sampler.choose(logits, [1, 1]).token == 2  # 3 - 2*2 < 2.5
    presence = RowSampler(GenParams(presence_penalty=1.0), [])
    assert presence.choose(logits, [1]).token == 2 and presence.choose(logits, [2]).token == 1


def test_refused_fields_name_themselves(client):
    cases = [({"response_format": {"type": "json_schema", "json_schema": {}}}, "response_format"),
             ({"store": True}, "store"), ({"top_logprobs": 2}, "top_logprobs"),
             ({"logit_bias": {"x": 1}}, "logit_bias"), ({"logit_bias": {"5": 500}}, "logit_bias"),
             ({"frequency_penalty": 3}, "frequency_penalty")]
    for extra, field in cases:
        resp = chat(client, **extra)
        assert resp.status_code == 400 and resp.json()["error"]["param"] == field, (extra, resp.text)
    body = {"model": "tiny", "prompt": "x", "max_tokens": 2}
    for extra, field in (({"suffix": "y"}, "suffix"), ({"best_of": 3}, "best_of"),
                         ({"echo": True, "logprobs": 1}, "echo")):
        resp = client.post("/v1/completions", json={**body, **extra})
        assert resp.status_code == 400 and resp.json()["error"]["param"] == field


def test_json_object_response_is_json(client):
    out = chat(client, max_tokens=40, response_format={"type": "json_object"}).json()["choices"][0]
    text = out["message"]["content"]
    assert JsonPrefix().feed(text)  # never anything but a JSON object, however far it got
    if out["finish_reason"] == "stop":
        assert isinstance(json.loads(text), dict)


def test_json_prefix_accepts_json_objects_only():
    for good in ['{}', '{"a": [1, -2.5e3, true, null, {"b": "x\\u00e9\\n"}]}', ' { "k" : 0 } ']:
        state = JsonPrefix()
        assert state.feed(good) and state.complete, good
    for bad in ['[1]', '{"a" 1}', '{"a": 01}', '{"a": tru}x', '{,}', '{"a": 1,}', '"x"', '{} {}']:
        state = JsonPrefix()
        assert not (state.feed(bad) and state.complete), bad
    assert JsonPrefix().feed('{"a": [1, 2') and not JsonPrefix().feed('{"a": ]')


def test_json_constraint_steers_to_a_closed_object():
    vocab = ["hello", "{", "}", '"', "a", ":", "1", "<end>"]
    constraint = JsonObjectConstraint(lambda t: vocab[t] if t < 7 else "", end_ids=[7])
    prefers = [0, 7, 4, 1, 2, 3, 5, 6]  # the model would rather say "hello", then stop
    out = []
    for _ in range(12):
        logits = torch.tensor([-float(prefers.index(t)) for t in range(8)])
        token = constraint.pick(logits, lambda x: int(torch.argmax(x)))
        out.append(token)
        if token == 7:
            break
    text = "".join(vocab[t] for t in out[:-1])
    assert out[-1] == 7 and json.loads(text) == {}
