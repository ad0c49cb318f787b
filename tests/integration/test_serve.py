"""`tunesmith serve` end to end: a real uvicorn process, the official `openai` client, httpx, curl."""

from __future__ import annotations

import json
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tunesmith.serve.launch import ServerProcess

KEY = "sk-test-key"
MODEL = "tiny-chat"
ERROR_KEYS = {"message", "type", "param", "code"}


@pytest.fixture(scope="module")
def adapter_dir(tiny_model_dir, tmp_path_factory):
    """A LoRA adapter with non-zero weights, so base + adapter answers differ from the base."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    lora = LoraConfig(r=4, target_modules=["q_proj", "v_proj", "down_proj"],
                      init_lora_weights=False)
    out = tmp_path_factory.mktemp("tiny-adapter")
    get_peft_model(base, lora).save_pretrained(str(out))
    return out


@pytest.fixture(scope="module")
def server(tiny_model_dir, adapter_dir):
    overrides = {"model_name_or_path": str(tiny_model_dir), "dtype": "fp32", "api_key": KEY,
                 "adapter_name_or_path": str(adapter_dir),
                 "model_name": MODEL, "max_n": 2, "max_tokens_cap": 300, "max_body_bytes": 20000,
                 "max_concurrency": 8, "max_queue": 64}
    with ServerProcess(overrides) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server):
    from openai import OpenAI

    return OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0, timeout=60)


def headers(key: str | None = KEY, ctype: str | None = "application/json") -> dict:
    h = {}
    if key is not None:
        h["Authorization"] = f"Bearer {key}"
    if ctype is not None:
        h["Content-Type"] = ctype
    return h


def chat_body(**extra) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": "Hello there"}],
            "max_tokens": 6, **extra}


def assert_openai_error(resp: httpx.Response, status: int, code: str | None = None) -> dict:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and set(body["error"]) == ERROR_KEYS, body
    assert "detail" not in resp.text and "Traceback" not in resp.text
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]


def test_models_list(client):
    assert [m.id for m in client.models.list().data] == [MODEL]
    assert client.models.retrieve(MODEL).id == MODEL


def test_chat_non_streaming(client):
    out = client.chat.completions.create(model=MODEL, max_tokens=5,
                                         messages=[{"role": "user", "content": "Hi!"}])
    choice = out.choices[0]
    assert out.object == "chat.completion" and choice.message.role == "assistant"
    assert choice.message.content and choice.finish_reason == "length"
    assert out.usage.completion_tokens == 5 and out.usage.prompt_tokens > 0
    assert out.usage.total_tokens == out.usage.prompt_tokens + 5


def test_chat_streaming_matches_non_streaming_with_usage(client):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    whole = client.chat.completions.create(model=MODEL, max_tokens=8, messages=messages)
    chunks = list(client.chat.completions.create(model=MODEL, max_tokens=8, messages=messages,
                                                 stream=True,
                                                 stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 8


def test_completions_endpoint(client):
    out = client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=4)
    assert out.object == "text_completion" and out.choices[0].text
    assert out.usage.completion_tokens == 4
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model=MODEL, prompt="Once upon a time", max_tokens=4, stream=True) if c.choices)
    assert streamed == out.choices[0].text


def test_n_seed_and_stop(client):
    kwargs = dict(model=MODEL, messages=[{"role": "user", "content": "Tell a story"}],
                  max_tokens=6, temperature=1.0, seed=7)
    first, again = (client.chat.completions.create(**kwargs) for _ in range(2))
    assert first.choices[0].message.content == again.choices[0].message.content
    two = client.chat.completions.create(**{**kwargs, "n": 2})
    assert [c.index for c in two.choices] == [0, 1]
    assert two.choices[0].message.content == first.choices[0].message.content
    assert two.choices[1].message.content != two.choices[0].message.content
    greedy = client.chat.completions.create(model=MODEL, max_tokens=8, messages=kwargs["messages"])
    text = greedy.choices[0].message.content
    assert len(text) >= 4
    stop = text[len(text) // 2: len(text) // 2 + 2]  # a stop string that greedy decoding reaches
    stopped = client.chat.completions.create(model=MODEL, max_tokens=8, stop=[stop],
                                             messages=kwargs["messages"])
    assert stopped.choices[0].finish_reason == "stop"
    assert stopped.choices[0].message.content == text[: text.index(stop)]


def test_serves_base_plus_adapter(server, client, tiny_model_dir, adapter_dir):
    from tunesmith.config import load_config
    from tunesmith.infer.engine import GenParams
    from tunesmith.infer.load import load_engine

    messages = [{"role": "user", "content": "Which adapter is this?"}]
    cfg = {"model_name_or_path": str(tiny_model_dir), "dtype": "fp32"}
    tuned = load_engine(load_config(None, {**cfg, "adapter_name_or_path": str(adapter_dir)}))
    base = load_engine(load_config(None, cfg))
    expected = tuned.generate(messages, GenParams(max_new_tokens=6)).text
    assert expected != base.generate(messages, GenParams(max_new_tokens=6)).text
    served = client.chat.completions.create(model=MODEL, max_tokens=6, messages=messages)
    assert served.choices[0].message.content == expected


def test_system_field_extension(server):
    url = f"{server.base_url}/chat/completions"
    via_field = httpx.post(url, json=chat_body(system="You are terse."), headers=headers())
    system = [{"role": "system", "content": "You are terse."}]
    via_message = httpx.post(url, headers=headers(), json=chat_body(
        messages=system + chat_body()["messages"]))
    assert via_field.status_code == 200
    assert via_field.json()["usage"] == via_message.json()["usage"]
    assert via_field.json()["choices"] == via_message.json()["choices"]


ERROR_CASES = {
    "malformed_json": (dict(content=b'{"model": "x", "messages": [}'), 400, "invalid_json"),
    "not_an_object": (dict(content=b"[1, 2]"), 400, "invalid_json"),
    "empty_body": (dict(content=b""), 400, "invalid_json"),
    "wrong_content_type": (dict(content=json.dumps(chat_body()).encode(),
                                ctype="text/plain"), 400, "invalid_content_type"),
    "wrong_type": (dict(json=chat_body(max_tokens="5")), 400, "invalid_value"),
    "bad_role": (dict(json=chat_body(messages=[{"role": "wizard", "content": "x"}])), 400,
                 "invalid_value"),
    "unknown_field": (dict(json=chat_body(max_token=5)), 400, "unknown_parameter"),
    "temperature_range": (dict(json=chat_body(temperature=5)), 400, "invalid_value"),
    "missing_key": (dict(json=chat_body(), key=None), 401, "missing_api_key"),
    "wrong_key": (dict(json=chat_body(), key="sk-wrong"), 401, "invalid_api_key"),
    "unknown_model": (dict(json=chat_body(model="gpt-4o")), 404, "model_not_found"),
    "max_tokens_cap": (dict(json=chat_body(max_tokens=301)), 400, "invalid_value"),
    "n_cap": (dict(json=chat_body(n=3)), 400, "invalid_value"),
    "body_too_large": (dict(json=chat_body(messages=[{"role": "user", "content": "x" * 30000}])),
                       413, "request_too_large"),
}


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_errors_have_openai_shape_and_status(server, case):
    kwargs, status, code = ERROR_CASES[case]
    kwargs = dict(kwargs)
    hdrs = headers(kwargs.pop("key", KEY), kwargs.pop("ctype", "application/json"))
    resp = httpx.post(f"{server.base_url}/chat/completions", headers=hdrs, **kwargs)
    error = assert_openai_error(resp, status, code)
    if case == "unknown_model":
        assert error["param"] == "model"
    if case in ("max_tokens_cap", "n_cap"):
        assert error["param"] in ("max_tokens", "n")


def test_openai_client_sees_typed_errors(client):
    import openai

    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    assert err.value.body["code"] == "model_not_found"


def test_context_overflow_names_both_numbers(server):
    long = "word " * 600  # the tiny model's context is 512 tokens
    resp = httpx.post(f"{server.base_url}/chat/completions", headers=headers(),
                      json=chat_body(messages=[{"role": "user", "content": long}], max_tokens=10))
    error = assert_openai_error(resp, 400, "context_length_exceeded")
    assert "512" in error["message"] and "10 for the completion" in error["message"]
    near = httpx.post(f"{server.base_url}/chat/completions", headers=headers(), json=chat_body(
        messages=[{"role": "user", "content": "word " * 300}], max_tokens=250))
    assert_openai_error(near, 400, "context_length_exceeded")
    fits = httpx.post(f"{server.base_url}/chat/completions", headers=headers(), json=chat_body(
        messages=[{"role": "user", "content": "word " * 300}], max_tokens=2))
    assert fits.status_code == 200


def test_streamed_body_over_limit_is_413(server):
    def body():  # chunked: no Content-Length, so the server must count the bytes itself
        for _ in range(30):
            yield b"x" * 1000

    resp = httpx.post(f"{server.base_url}/chat/completions", headers=headers(), content=body())
    assert_openai_error(resp, 413, "request_too_large")


def test_unknown_route_and_method(server):
    assert_openai_error(httpx.get(f"{server.url}/v1/nothing", headers=headers()), 404)
    assert_openai_error(httpx.delete(f"{server.base_url}/models", headers=headers()), 405)
    assert_openai_error(httpx.get(f"{server.base_url}/models/gpt-4", headers=headers()), 404,
                        "model_not_found")


def test_health_is_public_and_reports_slots(server):
    body = httpx.get(f"{server.url}/health").json()
    assert body["status"] == "ok" and body["model"] == MODEL
    assert {"active", "queued", "max_concurrency", "max_queue"} <= set(body)


def stream_raw(server, max_tokens: int = 12, **extra) -> list[str]:
    """One streaming chat over raw SSE; the `data:` payloads in order."""
    with httpx.stream("POST", f"{server.base_url}/chat/completions", headers=headers(),
                      json=chat_body(max_tokens=max_tokens, stream=True, **extra),
                      timeout=120) as resp:
        assert resp.status_code == 200, resp.read()
        assert resp.headers["content-type"].startswith("text/event-stream")
        return [line[len("data: "):] for line in resp.iter_lines() if line.startswith("data: ")]


def test_32_concurrent_streaming_clients(server):
    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(lambda i: stream_raw(server, 12), range(32)))
    assert len(results) == 32
    for events in results:
        assert events[-1] == "[DONE]"
        chunks = [json.loads(e) for e in events[:-1]]
        assert all("error" not in c for c in chunks)
        assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert httpx.get(f"{server.url}/health").json()["active"] == 0


def test_disconnect_mid_stream_frees_the_slot(server):
    import time

    before = httpx.get(f"{server.url}/health").json()
    with httpx.stream("POST", f"{server.base_url}/chat/completions", headers=headers(),
                      json=chat_body(max_tokens=290, stream=True), timeout=60) as resp:
        lines = resp.iter_lines()
        while not next(lines).startswith("data: {"):
            pass
        assert httpx.get(f"{server.url}/health").json()["active"] == 1
    deadline = time.monotonic() + 20  # a hang guard, not a timing claim
    while time.monotonic() < deadline:
        health = httpx.get(f"{server.url}/health").json()
        if health["active"] == 0 and health["cancelled"] > before["cancelled"]:
            break
        time.sleep(0.05)
    assert health["active"] == 0 and health["cancelled"] == before["cancelled"] + 1
    assert health["cancel_latency_max_s"] <= 1.0


def test_curl_as_in_seed_004(server):
    curl = shutil.which("curl")
    assert curl, "curl is needed for this test"
    body = json.dumps({"model": MODEL, "max_tokens": 5, "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "你是谁？"}]}, ensure_ascii=False)
    out = subprocess.run([curl, "-sS", f"{server.base_url}/chat/completions", "-H",
                          "Content-Type: application/json", "-H", f"Authorization: Bearer {KEY}",
                          "-d", body], capture_output=True, text=True, timeout=60, check=True)
    reply = json.loads(out.stdout)
    assert reply["object"] == "chat.completion" and reply["model"] == MODEL
    assert reply["usage"]["completion_tokens"] == 5


def test_serve_bench_function_against_running_server(server):
    from tunesmith.bench.serve import format_serve_bench, run_serve_bench

    result = run_serve_bench(server.url, (1, 2), requests_per_client=1, max_tokens=3,
                             api_key=KEY)
    assert [lv["concurrency"] for lv in result["levels"]] == [1, 2]
    for level in result["levels"]:
        assert level["errors"] == 0 and level["req_per_s"] > 0 and level["ttft_p50_s"] > 0
    assert "req/s" in format_serve_bench(result)


@pytest.mark.slow
def test_bundled_model_realistic_chat(bundled_dir):
    from openai import OpenAI

    with ServerProcess({"model_name_or_path": str(bundled_dir), "dtype": "fp32"}) as srv:
        client = OpenAI(base_url=srv.base_url, api_key="unused", max_retries=0, timeout=120)
        model = client.models.list().data[0].id
        out = client.chat.completions.create(model=model, max_tokens=24, messages=[
            {"role": "user", "content": "What is the capital of France?"}])
        assert "Paris" in out.choices[0].message.content
        assert out.choices[0].finish_reason in ("stop", "length")
