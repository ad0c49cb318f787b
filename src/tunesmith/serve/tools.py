"""Tool calling for ``/v1/chat/completions``: ``tools``/``tool_choice`` in, ``tool_calls`` out.

The request's tools ride on the conversation's first message (``data/tools.py``), so the chat
template renders them (its own tool support, or the documented ``<tool_call>`` fallback) exactly
as in training. The model's reply is parsed back into OpenAI ``tool_calls`` in the two formats
chat models are trained on:

- Qwen/Hermes: ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` blocks (text before
  them stays the message content);
- Llama 3: the whole reply is ``{"name": ..., "parameters": {...}}`` (optionally after
  ``<|python_tag|>``, several separated by ``;``).

Streaming sends the text before a call as content deltas, holds the call back until it is
complete, then sends it as one ``tool_calls`` delta; ``finish_reason`` is ``tool_calls``.
"""

from __future__ import annotations

import json
import re
import uuid

from ..data.conversation import RowError
from ..data.tools import TOOLS_KEY, parse_calls, parse_tools
from .errors import APIError

CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"
_HERMES = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)
_PYTHON_TAG = "<|python_tag|>"


def request_tools(req) -> list[dict] | None:
    """The tools to render for this request (None: none, or ``tool_choice: none``)."""
    choice = req.tool_choice
    if choice not in (None, "auto", "none"):
        raise APIError(400, "tool_choice: only 'auto' and 'none' are supported (forcing a call "
                            "is not); the model decides when to call a tool",
                       param="tool_choice", code="invalid_value")
    if not req.tools or choice == "none":
        return None
    if req.stream and getattr(req, "logprobs", None):
        raise APIError(400, "logprobs are not returned for streamed tool calls; drop logprobs "
                            "or stream", param="logprobs", code="unsupported_parameter")
    if getattr(req, "parallel_tool_calls", None) is False:
        raise APIError(400, "parallel_tool_calls: false is not supported (the model decides how "
                            "many calls to make)", param="parallel_tool_calls",
                       code="unsupported_parameter")
    try:
        return parse_tools(req.tools, "tools")
    except RowError as err:
        raise APIError(400, f"Invalid value for 'tools': {err}", param="tools",
                       code="invalid_value") from None


def with_tools(messages: list[dict], tools: list[dict] | None) -> list[dict]:
    """The conversation carrying ``tools`` on its first message (what templates read)."""
    if not tools or not messages:
        return messages
    return [{**messages[0], TOOLS_KEY: tools}, *messages[1:]]


def _openai_call(call: dict) -> dict:
    fn = call["function"]
    args = fn.get("arguments", {})
    return {"id": call.get("id") or f"call_{uuid.uuid4().hex[:24]}", "type": "function",
            "function": {"name": fn["name"], "arguments": args if isinstance(args, str)
                         else json.dumps(args, ensure_ascii=False)}}


def _calls(blob: str) -> list[dict] | None:
    try:
        return [_openai_call(c) for c in parse_calls(blob, "reply", "tool_calls")]
    except RowError:
        return None


def parse_reply(text: str) -> tuple[str | None, list[dict]]:
    """``(content, tool_calls)`` from a model reply; no call found -> ``(text, [])``."""
    if CALL_OPEN in text:
        head = text[:text.index(CALL_OPEN)]
        found = [_calls(m.group(1)) for m in _HERMES.finditer(text)]
        if found and all(found):
            return (head.strip() or None), [c for calls in found for c in calls]
        return text, []
    body = text.strip().removeprefix(_PYTHON_TAG).strip()
    if body.startswith("{") and body.endswith("}"):
        calls = [_calls(part) for part in body.split(";")] if ";" in body else [_calls(body)]
        if all(calls) and all(_named(p) for p in body.split(";")):
            return None, [c for cs in calls for c in cs]
    return text, []


def _named(blob: str) -> bool:
    """A Llama 3 call is a JSON object with a name and parameters (or arguments)."""
    try:
        obj = json.loads(blob)
    except json.JSONDecodeError:
        return False
    return isinstance(obj, dict) and "name" in obj and ("parameters" in obj or "arguments" in obj)


def shape_response(body: dict) -> dict:
    """Turn tool calls in a finished ``chat.completion`` into ``tool_calls`` (in place)."""
    for choice in body.get("choices", []):
        message = choice["message"]
        content, calls = parse_reply(message.get("content") or "")
        if calls:
            message["content"] = content
            message["tool_calls"] = calls
            choice["finish_reason"] = "tool_calls"
    return body


class ToolCallStream:
    """Per choice: stream content until a call may have begun, then hold the rest back and turn
    it into ``tool_calls`` deltas when the choice finishes."""

    def __init__(self):
        self.held: dict[int, str] = {}
        self.calling: dict[int, bool] = {}

    def text(self, index: int, piece: str) -> list[dict]:
        """Deltas to send now for a new text ``piece``."""
        buf = self.held.get(index, "") + piece
        if self.calling.get(index):
            self.held[index] = buf
            return []
        start = self._call_start(buf, first=index not in self.calling)
        if start is not None:
            self.calling[index] = True
            self.held[index] = buf[start:]
            return [{"content": buf[:start]}] if buf[:start] else []
        keep = _partial_marker(buf)
        self.held[index] = buf[len(buf) - keep:] if keep else ""
        self.calling[index] = False
        out = buf[:len(buf) - keep] if keep else buf
        return [{"content": out}] if out else []

    @staticmethod
    def _call_start(buf: str, first: bool) -> int | None:
        if CALL_OPEN in buf:
            return buf.index(CALL_OPEN)
        stripped = buf.lstrip()
        if first and stripped.startswith(("{", _PYTHON_TAG)):
            return len(buf) - len(stripped)  # a Llama 3 call is the whole reply
        return None

    def done(self, index: int, reason: str) -> tuple[list[dict], str]:
        """The remaining deltas and the finish reason when choice ``index`` ends."""
        held = self.held.pop(index, "")
        if not held:
            return [], reason
        content, calls = parse_reply(held)
        if not calls:
            return [{"content": held}], reason
        deltas = [{"content": content}] if content else []
        deltas.append({"tool_calls": [{"index": i, **c} for i, c in enumerate(calls)]})
        return deltas, "tool_calls"


def _partial_marker(buf: str) -> int:
    """How many trailing characters could start ``<tool_call>`` (held until the next piece)."""
    for n in range(min(len(CALL_OPEN) - 1, len(buf)), 0, -1):
        if CALL_OPEN.startswith(buf[-n:]):
            return n
    return 0
