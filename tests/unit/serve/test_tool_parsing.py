"""Model replies -> OpenAI tool_calls (Qwen/Hermes <tool_call> JSON and Llama 3 JSON), streamed too."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from tunesmith.serve.errors import APIError
from tunesmith.serve.tools import ToolCallStream, parse_reply, request_tools, shape_response

HERMES = 'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


def _args(call) -> dict:
    return json.loads(call["function"]["arguments"])


def test_hermes_calls_are_parsed_and_text_before_them_stays_content():
    content, calls = parse_reply(HERMES)
    assert content == "Let me check."
    assert [c["function"]["name"] for c in calls] == ["get_weather"]
    assert _args(calls[0]) == {"city": "Paris"} and calls[0]["id"].startswith("call_")
    two = parse_reply(HERMES + '\n<tool_call>{"name": "t2", "arguments": {}}</tool_call>')[1]
    assert [c["function"]["name"] for c in two] == ["get_weather", "t2"]


def test_llama3_json_calls_are_parsed():
    content, calls = parse_reply('<|python_tag|>{"name": "get_weather", "parameters": {"city": "Oslo"}}')
    assert content is None and _args(calls[0]) == {"city": "Oslo"}
    _, calls = parse_reply('{"name": "a", "parameters": {}}; {"name": "b", "parameters": {"x": 1}}')
    assert [c["function"]["name"] for c in calls] == ["a", "b"]


@pytest.mark.parametrize("text", ["It is sunny.", '{"answer": 42}', "<tool_call>not json</tool_call>"])
def test_plain_replies_stay_content(text):
    assert parse_reply(text) == (text, [])


def test_shape_response_sets_tool_calls_and_finish_reason():
    body = {"choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": HERMES}}]}
    choice = shape_response(body)["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] == "Let me check."
    assert choice["message"]["tool_calls"][0]["function"]["name"] == "get_weather"


@pytest.mark.parametrize("size", [1, 3, 7, 1000])
def test_stream_holds_the_call_and_sends_it_once_complete(size):
    stream, deltas = ToolCallStream(), []
    for i in range(0, len(HERMES), size):
        deltas += stream.text(0, HERMES[i:i + size])
    assert all("tool_calls" not in d for d in deltas)
    assert "".join(d["content"] for d in deltas).strip() == "Let me check."
    tail, reason = stream.done(0, "stop")
    assert reason == "tool_calls"
    [call] = tail[-1]["tool_calls"]
    assert call["index"] == 0 and _args(call) == {"city": "Paris"}


def test_stream_of_plain_text_passes_through():
    stream = ToolCallStream()
    out = stream.text(0, "Hello <tool") + stream.text(0, " friend")
    tail, reason = stream.done(0, "stop")
    assert "".join(d["content"] for d in out + tail) == "Hello <tool friend" and reason == "stop"


def _req(**fields):
    return SimpleNamespace(**{"tools": [TOOL], "tool_choice": None, "stream": False,
                              "logprobs": None, "parallel_tool_calls": None, **fields})


def test_tool_choice_none_drops_tools_and_forcing_is_refused():
    assert request_tools(_req(tool_choice="none")) is None
    assert request_tools(_req(tool_choice="auto")) == [TOOL]
    with pytest.raises(APIError, match="tool_choice"):
        request_tools(_req(tool_choice="required"))
    with pytest.raises(APIError, match="tools"):
        request_tools(_req(tools=[{"function": {}}]))
    with pytest.raises(APIError, match="parallel_tool_calls"):
        request_tools(_req(parallel_tool_calls=False))
