"""Formats: one registered converter per data shape, raw row -> Conversation and nothing more.

Each format names its logical keys and their default column names (``keys``); a ``columns:``
mapping (config key or ``dataset_info.json``) renames any of them, so every format reads any
file whose columns differ. ``detect(row, columns)`` serves ``format: auto``. A row that cannot be
converted raises RowError naming the key and what was expected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import DataError
from ..registry import Registry
from .conversation import Conversation, RowError, check_roles
from .tools import TOOLS_KEY, parse_calls, parse_tools


@dataclass(frozen=True)
class Format:
    name: str
    convert: Callable[[dict, dict], Conversation]
    summary: str
    keys: dict = field(default_factory=dict)  # logical key -> default column name
    required: tuple = ()  # logical keys whose columns identify the format
    check: Callable[[dict, dict], bool] | None = None  # extra detection test on the row
    family: str = ""  # formats of one family differ only in default column names

    def resolved(self, columns: dict) -> tuple:
        """What this format does with ``columns``: equal for interchangeable formats."""
        return (self.family or self.name, tuple(sorted((k, self.col(k, columns)) for k in self.keys)))

    def col(self, key: str, columns: dict) -> str:
        return columns.get(key, self.keys[key])

    def detect(self, row: dict, columns: dict | None = None) -> bool:
        columns = columns or {}
        if not all(self.col(k, columns) in row for k in self.required):
            return False
        return self.check is None or self.check(row, {k: self.col(k, columns) for k in self.keys})


FORMATS: Registry[Format] = Registry("format", extra=("auto",))


def register_format(name: str, summary: str, keys: dict, required: tuple, check=None, family=""):
    """Decorator: register ``convert`` as format ``name`` (duplicate -> error)."""
    return FORMATS.register(name, lambda convert: Format(name, convert, summary, keys, required,
                                                         check, family))


def get_format(name: str) -> Format:
    """The registered format ``name``; unknown -> ConfigError listing the known names."""
    return FORMATS.get(name)


# With an explicit ``columns:`` mapping and ``format: auto``, the mapped logical keys decide
# (first rule that fits wins), so `columns: {prompt: Question, response: Response}` means
# prompt/completion on any file.
_COLUMN_RULES = (("text", "text"), ("cot", "reasoning"), ("query", "alpaca"),
                 ("history", "alpaca"), ("response", "prompt_completion"))


def format_from_columns(columns: dict) -> Format | None:
    """The format an explicit column mapping implies, or None (then rows decide)."""
    if not columns or "messages" in columns:
        return None
    for key, name in _COLUMN_RULES:
        if key in columns:
            return FORMATS.get(name)
    return None


def detect_format(rows: list, source: str, columns: dict | None = None) -> Format:
    """The single format whose detector accepts the first rows; ambiguity is an error."""
    implied = format_from_columns(columns or {})
    if implied is not None:
        return implied
    sample = [r for r in rows[:20] if isinstance(r, dict)]
    if not sample:
        raise DataError(f"{source}: no readable rows to detect the format from")
    # the formats that fit the most sample rows (a few bad rows are then dropped, not fatal)
    counts = {f.name: sum(f.detect(r, columns) for r in sample) for f in FORMATS.values()}
    best = max(counts.values())
    matches = [FORMATS.get(n) for n, c in counts.items() if c == best and c > 0]
    # formats that would read these columns identically are one match, not an ambiguity
    matches = list({f.resolved(columns or {}): f for f in reversed(matches)}.values())[::-1]
    if len(matches) == 1:
        return matches[0]
    keys = sorted(sample[0])
    if not matches:
        raise DataError(f"{source}: cannot tell the data format from keys {keys}; set format: "
                        f"(one of {', '.join(FORMATS)}) or columns:")
    raise DataError(f"{source}: keys {keys} fit several formats "
                    f"({', '.join(f.name for f in matches)}); set format:")


def _text(row: dict, key: str, *, required: bool = True, allow_empty: bool = False) -> str:
    if key not in row or row[key] is None:
        if required:
            raise RowError("missing_key", f"missing key '{key}' (expected a string)", key=key)
        return ""
    value = row[key]
    if not isinstance(value, str):
        raise RowError("non_string_content",
                       f"key '{key}': expected a string, got {type(value).__name__}", key=key)
    if required and not allow_empty and not value.strip():
        raise RowError("empty_field", f"key '{key}' is empty (expected non-empty text)", key=key)
    return value


def _list(row: dict, key: str) -> list:
    value = row.get(key)
    if value is None:
        raise RowError("missing_key", f"missing key '{key}' (expected a list)", key=key)
    if not isinstance(value, list):
        raise RowError("bad_type", f"key '{key}': expected a list, got {type(value).__name__}", key=key)
    return value


def _obj(turn: Any, where: str, key: str) -> dict:
    if not isinstance(turn, dict):
        raise RowError("bad_type", f"{where}: expected an object, got {type(turn).__name__}", key=key)
    return turn


def _keys(fmt_name: str, opts: dict) -> dict:
    return {**FORMATS.get(fmt_name).keys, **(opts.get("columns") or {})}


def _system(row: dict, key: str) -> list[dict]:
    system = _text(row, key, required=False)
    return [_msg("system", system)] if system.strip() else []


def finish(messages: list[dict]) -> Conversation:
    check_roles(messages)
    return Conversation(messages)


def _msg(role: str, content: Any) -> dict:
    return {"role": role, "content": content}


@register_format("alpaca", "instruction, input, output (+ system, history)",
                 {"prompt": "instruction", "query": "input", "response": "output",
                  "system": "system", "history": "history"}, ("prompt", "response"))
def convert_alpaca(row: dict, opts: dict) -> Conversation:
    k = _keys("alpaca", opts)
    messages = _system(row, k["system"])
    for pair in row.get(k["history"]) or []:
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2):
            raise RowError("bad_type", f"key '{k['history']}': expected [prompt, response] pairs",
                           key=k["history"])
        messages += [_msg("user", pair[0]), _msg("assistant", pair[1])]
    prompt = _text(row, k["prompt"])
    query = _text(row, k["query"], required=False)
    messages.append(_msg("user", f"{prompt}\n{query}" if query.strip() else prompt))
    messages.append(_msg("assistant", _text(row, k["response"], allow_empty=True)))
    return finish(messages)


# LLaMA-Factory's sharegpt tags and their defaults; ``function_tag`` turns are the assistant's
# tool calls, ``observation_tag`` turns the tool results.
SHAREGPT_TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human",
                 "assistant_tag": "gpt", "observation_tag": "observation",
                 "function_tag": "function_call", "system_tag": "system"}
OPENAI_TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user",
               "assistant_tag": "assistant", "observation_tag": "tool",
               "function_tag": "function_call", "system_tag": "system"}
_TAG_ROLES = {"user_tag": "user", "assistant_tag": "assistant", "observation_tag": "tool",
              "function_tag": "assistant", "system_tag": "system"}
# Common aliases accepted besides the configured tags.
_ROLE_ALIASES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                 "system": "system", "tool": "tool", "function": "tool", "observation": "tool",
                 "function_call": "assistant"}


def _role_map(tags: dict) -> dict:
    roles = dict(_ROLE_ALIASES)
    roles.update({tags[t]: role for t, role in _TAG_ROLES.items() if t in tags})
    return roles


def _messages_with_tags(row: dict, key: str, tags: dict) -> list[dict]:
    roles, role_tag, content_tag = _role_map(tags), tags["role_tag"], tags["content_tag"]
    messages = []
    for i, turn in enumerate(_list(row, key)):
        turn = _obj(turn, f"{key}[{i}]", key)
        role = roles.get(turn.get(role_tag)) if isinstance(turn.get(role_tag), str) else None
        if role is None:
            raise RowError("bad_role", f"{key}[{i}].{role_tag}: unknown role {turn.get(role_tag)!r} "
                           f"(expected one of {', '.join(sorted(set(roles)))})", key=role_tag)
        messages.append(_tool_turn(turn, role, tags, f"{key}[{i}]")
                        or _msg(role, turn.get(content_tag)))
    return messages


def _tool_turn(turn: dict, role: str, tags: dict, where: str) -> dict | None:
    """An assistant tool call (LLaMA-Factory's ``function_call`` turn, whose content is the call
    as JSON, or an OpenAI message with ``tool_calls``), else None."""
    content = turn.get(tags["content_tag"])
    if turn.get(tags["role_tag"]) == tags["function_tag"] and tags["function_tag"] != "assistant":
        return {"role": "assistant", "content": "",
                "tool_calls": parse_calls(content, f"{where}.{tags['content_tag']}",
                                          tags["content_tag"])}
    if role == "assistant" and turn.get("tool_calls"):
        return {"role": "assistant", "content": content or "",
                "tool_calls": parse_calls(turn["tool_calls"], f"{where}.tool_calls", "tool_calls")}
    return None


def _first_turn_has(tag_key: str, default_tags: dict):
    def check(row: dict, cols: dict) -> bool:
        turns = row.get(cols["messages"])
        return isinstance(turns, list) and bool(turns) and isinstance(turns[0], dict) and \
            default_tags[tag_key] in turns[0]
    return check


def _tagged(fmt: str, defaults: dict):
    def convert(row: dict, opts: dict) -> Conversation:
        k, tags = _keys(fmt, opts), {**defaults, **(opts.get("tags") or {})}
        messages = _system(row, k["system"]) + _messages_with_tags(row, k["messages"], tags)
        tools = parse_tools(row.get(k["tools"]), k["tools"])
        if tools and messages:  # the conversation's tools ride on its first message
            messages[0] = {**messages[0], TOOLS_KEY: tools}
        return finish(messages)
    return convert


register_format("sharegpt", "conversations: [{from, value}] (human/gpt/system/function_call/"
                "observation, + tools)",
                {"messages": "conversations", "system": "system", "tools": "tools"}, ("messages",),
                _first_turn_has("role_tag", SHAREGPT_TAGS))(_tagged("sharegpt", SHAREGPT_TAGS))
register_format("openai", "messages: [{role, content, tool_calls?}] (OpenAI chat, + tools)",
                {"messages": "messages", "system": "system", "tools": "tools"}, ("messages",),
                _first_turn_has("role_tag", OPENAI_TAGS))(_tagged("openai", OPENAI_TAGS))


def _pairs_check(inner: str):
    def check(row: dict, cols: dict) -> bool:
        turns = row.get(cols["messages"])
        return isinstance(turns, list) and bool(turns) and isinstance(turns[0], dict) and \
            cols[inner] in turns[0]
    return check


def _convert_pairs(fmt: str, row: dict, opts: dict) -> Conversation:
    """Turn lists ``[{system?, prompt, response}, ...]`` (seed 000 and 002 shapes)."""
    k = _keys(fmt, opts)
    messages = _system(row, k["system"])
    for i, turn in enumerate(_list(row, k["messages"])):
        turn = _obj(turn, f"{k['messages']}[{i}]", k["messages"])
        if not messages:  # a system prompt is taken from the first turn only
            messages += _system(turn, k["system"])
        messages += [_msg("user", _text(turn, k["prompt"])),
                     _msg("assistant", _text(turn, k["response"], allow_empty=True))]
    return finish(messages)


_PAIR_KEYS = {"messages": "conversation", "system": "system"}

register_format("human_assistant", "conversation: [{human, assistant}] (seed 000 emotional support)",
                {**_PAIR_KEYS, "prompt": "human", "response": "assistant"}, ("messages",),
                _pairs_check("prompt"), "pairs")(lambda row, opts: _convert_pairs("human_assistant", row, opts))
register_format("input_output", "conversation: [{system, input, output}] (seed 002 multi-turn)",
                {**_PAIR_KEYS, "prompt": "input", "response": "output"}, ("messages",),
                _pairs_check("prompt"), "pairs")(lambda row, opts: _convert_pairs("input_output", row, opts))


def _has_completion(row: dict, cols: dict) -> bool:
    return cols["response"] in row or "response" in row


@register_format("prompt_completion", "prompt, completion (or response)",
                 {"prompt": "prompt", "response": "completion", "system": "system"}, ("prompt",),
                 _has_completion)
def convert_prompt_completion(row: dict, opts: dict) -> Conversation:
    k = _keys("prompt_completion", opts)
    response = k["response"]
    if response not in row and "response" not in (opts.get("columns") or {}) and "response" in row:
        response = "response"
    return finish(_system(row, k["system"]) + [
        _msg("user", _text(row, k["prompt"])),
        _msg("assistant", _text(row, response, allow_empty=True))])


@register_format("reasoning", "Question, Complex_CoT, Response (seed 001 medical reasoning)",
                 {"prompt": "Question", "cot": "Complex_CoT", "response": "Response",
                  "system": "system"}, ("prompt", "response"))
def convert_reasoning(row: dict, opts: dict) -> Conversation:
    """The chain of thought goes inside the template's thinking markers, before the answer."""
    k = _keys("reasoning", opts)
    think_open, think_close = opts.get("think") or ("<think>", "</think>")
    cot = _text(row, k["cot"], required=False).strip()
    answer = _text(row, k["response"])
    body = f"{think_open}\n{cot}\n{think_close}\n\n{answer}" if cot else answer
    return finish(_system(row, k["system"]) + [_msg("user", _text(row, k["prompt"])),
                                                 _msg("assistant", body)])


def _only_text(row: dict, cols: dict) -> bool:
    return cols["text"] != "text" or set(row) <= {"text", "label", "id"}


@register_format("text", "text (plain causal-LM training, stage: pt)", {"text": "text"},
                 ("text",), _only_text)
def convert_text(row: dict, opts: dict) -> Conversation:
    return Conversation(text=_text(row, _keys("text", opts)["text"]))


def convert_row(fmt: Format, row: Any, opts: dict) -> Conversation:
    """Convert one raw row; a non-object row is a RowError."""
    if not isinstance(row, dict):
        raise RowError("bad_type", f"expected a JSON object per row, got {type(row).__name__}")
    return fmt.convert(row, opts)
