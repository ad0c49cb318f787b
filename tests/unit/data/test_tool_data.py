"""Tool-calling data: LLaMA-Factory sharegpt (function_call/observation + tools) and OpenAI
tool_calls/tool messages, rendered by the chat template's own tool support or the documented
<tool_call> fallback; labels on the assistant's calls and answers, never on tool results."""

from __future__ import annotations

import copy
import json

import pytest

from tunesmith.data.conversation import RowError
from tunesmith.data.formats import convert_row, get_format
from tunesmith.data.templates import get_template
from tunesmith.data.tokenize import IGNORE, encode_conversation

TOOLS = [{"name": "get_weather", "description": "Current weather",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]
CALL = {"name": "get_weather", "arguments": {"city": "Paris"}}
SHAREGPT = {"conversations": [
    {"from": "human", "value": "Weather in Paris?"},
    {"from": "function_call", "value": json.dumps(CALL)},
    {"from": "observation", "value": '{"temp_c": 18}'},
    {"from": "gpt", "value": "It is 18 degrees."}], "tools": json.dumps(TOOLS)}
OPENAI = {"messages": [
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "get_weather",
                                                      "arguments": '{"city": "Paris"}'}}]},
    {"role": "tool", "tool_call_id": "c1", "content": '{"temp_c": 18}'},
    {"role": "assistant", "content": "It is 18 degrees."}], "tools": [
        {"type": "function", "function": TOOLS[0]}]}
# A small tool-aware template (the shape Qwen2.5/Hermes templates have), to check that a template
# with tool support renders the tools itself.
TOOL_TEMPLATE = (
    "{% if tools %}<|im_start|>system\nTOOLS:{% for t in tools %} {{ t.function.name }}"
    "{% endfor %}<|im_end|>\n{% endif %}"
    "{% for m in messages %}{% if m.role == 'assistant' and m.tool_calls %}<|im_start|>assistant\n"
    "{% for c in m.tool_calls %}CALL {{ c.function.name }} {{ c.function.arguments | tojson }}"
    "{% endfor %}<|im_end|>\n{% elif m.role == 'tool' %}<|im_start|>tool\n{{ m.content }}"
    "<|im_end|>\n{% else %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def _conv(row, fmt):
    return convert_row(get_format(fmt), row, {})


def _labels(tok, example) -> str:
    return tok.decode([t for t in example.labels if t != IGNORE])


def test_sharegpt_function_call_and_observation_become_a_call_and_a_result():
    conv = _conv(SHAREGPT, "sharegpt")
    roles = [m["role"] for m in conv.messages]
    assert roles == ["user", "assistant", "tool", "assistant"]
    assert conv.messages[1]["tool_calls"][0]["function"] == CALL
    assert conv.messages[0]["tools"][0]["function"]["name"] == "get_weather"


def test_fallback_rendering_labels_calls_and_answers_not_results(chatml_tok):
    template = get_template("auto", chatml_tok)
    assert not template.renders_tools(chatml_tok)  # SmolLM2's ChatML has no tool support
    [ex] = encode_conversation(_conv(SHAREGPT, "sharegpt"), chatml_tok, template,
                               train_on="all_assistant", cutoff_len=1024)
    text, labels = chatml_tok.decode(ex.input_ids), _labels(chatml_tok, ex)
    assert "<tools>" in text and '"name": "get_weather"' in text
    assert '<tool_response>\n{"temp_c": 18}\n</tool_response>' in text
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>' in labels
    assert "It is 18 degrees." in labels and "temp_c" not in labels and "<tools>" not in labels


def test_openai_tool_messages_render_like_the_sharegpt_row(chatml_tok):
    template = get_template("auto", chatml_tok)
    a = encode_conversation(_conv(SHAREGPT, "sharegpt"), chatml_tok, template,
                            train_on="all_assistant", cutoff_len=1024)
    b = encode_conversation(_conv(OPENAI, "openai"), chatml_tok, template,
                            train_on="all_assistant", cutoff_len=1024)
    assert a[0].input_ids == b[0].input_ids and a[0].labels == b[0].labels


def test_a_template_with_tool_support_renders_them_itself(chatml_tok):
    tok = copy.deepcopy(chatml_tok)
    tok.chat_template = TOOL_TEMPLATE
    template = get_template("auto", tok)
    assert template.renders_tools(tok)
    conv = _conv(SHAREGPT, "sharegpt")
    messages = [{k: v for k, v in m.items() if k != "tools"} for m in conv.messages]
    expected = tok.apply_chat_template(messages, tools=conv.messages[0]["tools"], tokenize=False)
    assert template.render(tok, conv.messages) == expected
    [ex] = encode_conversation(conv, tok, template, train_on="all_assistant", cutoff_len=1024)
    labels = _labels(tok, ex)
    assert 'CALL get_weather {"city": "Paris"}' in labels and "temp_c" not in labels


@pytest.mark.parametrize("value", ["{not json", "[]", '{"arguments": {}}'])
def test_a_bad_function_call_is_a_counted_row_error(value):
    row = copy.deepcopy(SHAREGPT)
    row["conversations"][1]["value"] = value
    with pytest.raises(RowError) as err:
        _conv(row, "sharegpt")
    assert err.value.reason in ("bad_json", "bad_type")


def test_preview_says_how_tools_are_rendered(tmp_path, chatml_tok):
    from tunesmith.config import load_config
    from tunesmith.data.preview import preview

    path = tmp_path / "tools.json"
    path.write_text(json.dumps([SHAREGPT]))
    cfg = load_config(None, {"dataset": str(path), "cutoff_len": 1024})
    text, _ = preview(cfg, chatml_tok, get_template("auto", chatml_tok), n=1)
    assert text.startswith("tools: this chat template has no tool support")
    assert "<tool_call>" in text
