"""The official `openai` client's tool-calling flow against `tunesmith serve`.

A tiny model is fine-tuned in the test (full weights, a few rows of LLaMA-Factory sharegpt
tool-calling data) until it emits the call; SmolLM2's ChatML template has no tool support, so the
tools, call and result go through the documented <tool_call> fallback, in training and serving.
"""

from __future__ import annotations

import json

import pytest

from tunesmith.serve.launch import ServerProcess

TOOL = {"name": "get_weather", "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]}}
QUESTION = "What is the weather in Paris?"
ANSWER = "It is 18 degrees in Paris."
RESULT = '{"temp_c": 18}'
ROW = {"conversations": [
    {"from": "human", "value": QUESTION},
    {"from": "function_call", "value": json.dumps({"name": "get_weather",
                                                   "arguments": {"city": "Paris"}})},
    {"from": "observation", "value": RESULT},
    {"from": "gpt", "value": ANSWER}], "tools": json.dumps([TOOL])}


@pytest.fixture(scope="module")
def tool_model(tiny_model_dir, tmp_path_factory):
    from tunesmith.config import load_config
    from tunesmith.train.run import run_training

    work = tmp_path_factory.mktemp("tool-model")
    data = work / "tools.json"
    data.write_text(json.dumps([ROW]))
    cfg = load_config(None, {"model_name_or_path": str(tiny_model_dir), "dataset": str(data),
                             "finetuning_type": "full", "output_dir": str(work / "run"),
                             "max_steps": 70, "learning_rate": 1e-2,
                             "lr_scheduler_type": "constant", "per_device_train_batch_size": 1,
                             "logging_steps": 10, "save_strategy": "no", "dtype": "fp32",
                             "cutoff_len": 512, "report_to": "none", "plot_loss": False})
    run_training(cfg)
    log = [json.loads(x) for x in (work / "run" / "trainer_log.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in log if "loss" in r][-1] < 0.1  # the row is learnt by heart
    return work / "run"


@pytest.fixture(scope="module")
def client(tool_model):
    from openai import OpenAI

    with ServerProcess({"model_name_or_path": str(tool_model), "model_name": "tools",
                        "dtype": "fp32", "max_tokens_cap": 200}) as srv:
        yield OpenAI(base_url=srv.base_url, api_key="none", max_retries=0, timeout=120)


@pytest.mark.slow
def test_openai_client_tool_calling_flow(client):
    tools = [{"type": "function", "function": TOOL}]
    messages = [{"role": "user", "content": QUESTION}]
    first = client.chat.completions.create(model="tools", messages=messages, tools=tools,
                                           max_tokens=60)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls", choice.message.content
    [call] = choice.message.tool_calls
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    messages += [choice.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": RESULT}]
    second = client.chat.completions.create(model="tools", messages=messages, tools=tools,
                                            max_tokens=30)
    assert second.choices[0].message.content == ANSWER
    assert not second.choices[0].message.tool_calls


@pytest.mark.slow
def test_streamed_tool_call(client):
    stream = client.chat.completions.create(
        model="tools", messages=[{"role": "user", "content": QUESTION}], max_tokens=60,
        tools=[{"type": "function", "function": TOOL}], stream=True)
    name, args, finish = "", "", None
    for chunk in stream:
        delta = chunk.choices[0].delta
        for call in delta.tool_calls or []:
            name += call.function.name or ""
            args += call.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls" and name == "get_weather"
    assert json.loads(args) == {"city": "Paris"}
