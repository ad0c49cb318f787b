"""Tool calling in conversations: tool definitions, the assistant's calls, the tools' results.

One shape everywhere (data rows, the chat template, the server), OpenAI's:

- the tools: a list of ``{"type": "function", "function": {"name", "description",
  "parameters"}}``; a conversation's tools ride on its first message under the key ``tools``
  (a row's ``tools`` column; a request's ``tools`` field), so every renderer sees them;
- a call: an assistant message with ``tool_calls: [{"type": "function", "id"?, "function":
  {"name", "arguments": {...}}}]`` (arguments as an object, as chat templates expect);
- a result: a ``{"role": "tool", "content": ...}`` message after the call.

A chat template with tool support renders them itself (``apply_chat_template(tools=...)``). For
one without (SmolLM2's plain ChatML), :func:`fallback_messages` writes them the Qwen2.5/Hermes
way, as text the model can learn and the server can parse back (``serve/tools.py``): the tool
signatures in ``<tools></tools>`` in the system prompt, each call as
``<tool_call>{"name": ..., "arguments": ...}</tool_call>`` in the assistant turn, and the results
as a user turn of ``<tool_response>...</tool_response>`` blocks.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from .conversation import RowError

TOOLS_KEY = "tools"

FALLBACK_SYSTEM = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
    "{tools}\n</tools>\n\nFor each function call, return a json object with function name and "
    "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{{"name": <function-name>, "arguments": <args-json-object>}}\n</tool_call>')


def _json(value: Any, where: str, key: str) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise RowError("bad_json", f"{where}: not valid JSON ({exc.msg} at char {exc.pos})",
                       key=key) from None


def parse_tools(value: Any, key: str = "tools") -> list[dict] | None:
    """A row's or request's tools (a JSON string or a list) as OpenAI function tools."""
    if value in (None, "", []):
        return None
    tools = _json(value, f"key '{key}'", key)
    tools = [tools] if isinstance(tools, dict) else tools
    if not isinstance(tools, list):
        raise RowError("bad_type", f"key '{key}': expected a list of tools", key=key)
    out = []
    for i, tool in enumerate(tools):
        fn = tool.get("function", tool) if isinstance(tool, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise RowError("bad_type", f"key '{key}'[{i}]: expected a function with a 'name'",
                           key=key)
        out.append({"type": "function", "function": fn})
    return out


def parse_calls(value: Any, where: str, key: str) -> list[dict]:
    """Tool calls (LLaMA-Factory's ``function_call`` content, or OpenAI ``tool_calls``)."""
    calls = _json(value, where, key)
    calls = [calls] if isinstance(calls, dict) else calls
    if not isinstance(calls, list) or not calls:
        raise RowError("bad_type", f"{where}: expected a call {{name, arguments}} or a list",
                       key=key)
    return [_call(c, f"{where}[{i}]", key) for i, c in enumerate(calls)]


def _call(call: Any, where: str, key: str) -> dict:
    fn = call.get("function", call) if isinstance(call, dict) else None
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        raise RowError("bad_type", f"{where}: expected {{name, arguments}}", key=key)
    args = _json(fn.get("arguments", fn.get("parameters", {})), f"{where}.arguments", key)
    out = {"type": "function", "function": {"name": fn["name"], "arguments": args or {}}}
    if isinstance(call, dict) and call.get("id"):
        out["id"] = call["id"]
    return out


def split_tools(messages: list[dict]) -> tuple[list[dict], list[dict] | None]:
    """The messages without the ``tools`` key, and the tools it carried (first found)."""
    tools = next((m[TOOLS_KEY] for m in messages if m.get(TOOLS_KEY)), None)
    if tools is None:
        return messages, None
    return [{k: v for k, v in m.items() if k != TOOLS_KEY} for m in messages], tools


def uses_tools(messages: list[dict], tools) -> bool:
    return bool(tools) or any(m.get("tool_calls") or m["role"] == "tool" for m in messages)


_PROBE_TOOLS = [{"type": "function", "function": {
    "name": "probe_tool_zq", "description": "d", "parameters": {"type": "object", "properties": {
        "a": {"type": "integer"}}}}}]
_PROBE = [{"role": "user", "content": "x"},
          {"role": "assistant", "content": "", "tool_calls": [
              {"type": "function", "function": {"name": "probe_call_zq", "arguments": {"a": 1}}}]},
          {"role": "tool", "content": "probe_result_zq"}]


@functools.lru_cache(maxsize=64)
def _renders_tools(tokenizer, jinja: str | None) -> bool:
    try:
        text = tokenizer.apply_chat_template(_PROBE, tools=_PROBE_TOOLS, chat_template=jinja,
                                             tokenize=False)
    except Exception:  # noqa: BLE001 - a template that rejects tools simply lacks support
        return False
    return all(s in text for s in ("probe_tool_zq", "probe_call_zq", "probe_result_zq"))


def native_tool_support(tokenizer, jinja: str | None) -> bool:
    """Whether the chat template renders tools, calls and results itself."""
    return _renders_tools(tokenizer, jinja or getattr(tokenizer, "chat_template", None))


def call_text(call: dict) -> str:
    """One call in the fallback's ``<tool_call>`` JSON form."""
    fn = call["function"]
    args = fn.get("arguments", {})
    args = json.loads(args) if isinstance(args, str) and args.strip().startswith("{") else args
    return "<tool_call>\n" + json.dumps({"name": fn["name"], "arguments": args},
                                        ensure_ascii=False) + "\n</tool_call>"


def fallback_messages(messages: list[dict], tools: list[dict] | None) -> list[dict]:
    """Plain user/assistant/system messages that spell tools, calls and results out as text."""
    out: list[dict] = []
    if tools:
        listing = FALLBACK_SYSTEM.format(tools="\n".join(json.dumps(t, ensure_ascii=False)
                                                          for t in tools))
        if messages and messages[0]["role"] == "system":
            out.append({"role": "system", "content": f"{messages[0]['content']}\n\n{listing}"})
            messages = messages[1:]
        else:
            out.append({"role": "system", "content": listing})
    for m in messages:
        if m["role"] == "tool":
            block = f"<tool_response>\n{m['content']}\n</tool_response>"
            if out and out[-1].get("_tool_results"):
                out[-1]["content"] += "\n" + block
            else:
                out.append({"role": "user", "content": block, "_tool_results": True})
            continue
        content = m.get("content") or ""
        if m.get("tool_calls"):
            calls = "\n".join(call_text(c) for c in m["tool_calls"])
            content = f"{content}\n{calls}" if content.strip() else calls
        out.append({"role": m["role"], "content": content})
    return [{"role": m["role"], "content": m["content"]} for m in out]


def for_template(messages: list[dict]) -> list[dict]:
    """Messages as tool-aware templates expect them: call arguments as objects."""
    out = []
    for m in messages:
        if m.get("tool_calls"):
            m = {**m, "content": m.get("content") or "",
                 "tool_calls": [_call(c, "tool_calls", "tool_calls") for c in m["tool_calls"]]}
        out.append(m)
    return out
