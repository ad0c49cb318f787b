"""Formats: one registered converter per data shape, raw row -> Conversation and nothing more.

Each format has ``detect(row) -> bool`` (for ``format: auto``) and ``convert(row, opts)``.
A row that cannot be converted raises RowError naming the key and what was expected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..errors import ConfigError, DataError
from .conversation import Conversation, RowError, check_roles


@dataclass(frozen=True)
class Format:
    name: str
    detect: Callable[[dict], bool]
    convert: Callable[[dict, dict], Conversation]
    summary: str


FORMATS: dict[str, Format] = {}


def register_format(name: str, detect: Callable[[dict], bool], summary: str):
    """Decorator: register ``convert`` as format ``name`` (duplicate -> error)."""

    def wrap(convert):
        if name in FORMATS:
            raise ValueError(f"format '{name}' is already registered")
        FORMATS[name] = Format(name, detect, convert, summary)
        return convert

    return wrap


def get_format(name: str) -> Format:
    if name not in FORMATS:
        from ..config import suggest

        raise ConfigError(f"unknown format '{name}'{suggest(name, FORMATS)}; "
                          f"known: auto, {', '.join(FORMATS)}")
    return FORMATS[name]


def detect_format(rows: list[dict], source: str) -> Format:
    """The single format whose detector accepts the first rows; ambiguity is an error."""
    sample = [r for r in rows[:20] if isinstance(r, dict)]
    if not sample:
        raise DataError(f"{source}: no rows to detect the format from")
    matches = [f for f in FORMATS.values() if all(f.detect(r) for r in sample[:5])]
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
            raise RowError("missing_key", f"missing key '{key}'", key=key)
        return ""
    value = row[key]
    if not isinstance(value, str):
        raise RowError("non_string_content",
                       f"key '{key}': expected a string, got {type(value).__name__}", key=key)
    if required and not allow_empty and not value.strip():
        raise RowError("empty_field", f"key '{key}' is empty", key=key)
    return value


def _list(row: dict, key: str) -> list:
    value = row.get(key)
    if value is None:
        raise RowError("missing_key", f"missing key '{key}'", key=key)
    if not isinstance(value, list):
        raise RowError("bad_type", f"key '{key}': expected a list, got {type(value).__name__}", key=key)
    return value


def finish(messages: list[dict]) -> Conversation:
    check_roles(messages)
    return Conversation(messages)


def _msg(role: str, content: str) -> dict:
    return {"role": role, "content": content}


@register_format("alpaca", lambda r: "instruction" in r and "output" in r,
                 "instruction, input, output (+ system, history)")
def convert_alpaca(row: dict, opts: dict) -> Conversation:
    k = {"prompt": "instruction", "query": "input", "response": "output", "system": "system",
         "history": "history", **opts.get("columns", {})}
    messages = []
    system = _text(row, k["system"], required=False)
    if system:
        messages.append(_msg("system", system))
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


_SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                   "system": "system", "function_call": "assistant", "observation": "tool",
                   "function": "tool", "tool": "tool"}


@register_format("sharegpt", lambda r: isinstance(r.get("conversations"), list),
                 "conversations: [{from, value}] (human/gpt/system/function)")
def convert_sharegpt(row: dict, opts: dict) -> Conversation:
    tags = {"messages": "conversations", "role_tag": "from", "content_tag": "value",
            "system": "system", **opts.get("columns", {}), **opts.get("tags", {})}
    role_map = dict(_SHAREGPT_ROLES)
    for ours, theirs in (("user", "user_tag"), ("assistant", "assistant_tag"),
                         ("system", "system_tag"), ("tool", "observation_tag")):
        if theirs in tags:
            role_map[tags[theirs]] = ours
    messages = []
    system = row.get(tags["system"])
    if isinstance(system, str) and system.strip():
        messages.append(_msg("system", system))
    for i, turn in enumerate(_list(row, tags["messages"])):
        if not isinstance(turn, dict):
            raise RowError("bad_type", f"{tags['messages']}[{i}]: expected an object", key=tags["messages"])
        role = role_map.get(turn.get(tags["role_tag"]))
        if role is None:
            raise RowError("bad_role", f"{tags['messages']}[{i}]: unknown role "
                           f"{turn.get(tags['role_tag'])!r}", key=tags["role_tag"])
        messages.append(_msg(role, turn.get(tags["content_tag"])))
    return finish(messages)


@register_format("openai", lambda r: isinstance(r.get("messages"), list),
                 "messages: [{role, content}] (OpenAI chat)")
def convert_openai(row: dict, opts: dict) -> Conversation:
    key = opts.get("columns", {}).get("messages", "messages")
    messages = []
    for i, turn in enumerate(_list(row, key)):
        if not isinstance(turn, dict) or "role" not in turn:
            raise RowError("bad_type", f"{key}[{i}]: expected {{role, content}}", key=key)
        role = {"human": "user", "gpt": "assistant"}.get(turn["role"], turn["role"])
        if role not in ("system", "user", "assistant", "tool"):
            raise RowError("bad_role", f"{key}[{i}]: unknown role {turn['role']!r}", key="role")
        messages.append(_msg(role, turn.get("content")))
    return finish(messages)


def _is_pairs(row: dict, keys: tuple[str, ...]) -> bool:
    conv = row.get("conversation")
    return isinstance(conv, list) and bool(conv) and isinstance(conv[0], dict) and \
        any(k in conv[0] for k in keys)


@register_format("human_assistant", lambda r: _is_pairs(r, ("human", "assistant")),
                 "conversation: [{human, assistant}] (seed 000 emotional support)")
def convert_human_assistant(row: dict, opts: dict) -> Conversation:
    messages = []
    for i, turn in enumerate(_list(row, "conversation")):
        if not isinstance(turn, dict):
            raise RowError("bad_type", f"conversation[{i}]: expected an object", key="conversation")
        if turn.get("system"):
            messages.append(_msg("system", _text(turn, "system")))
        messages += [_msg("user", _text(turn, "human")),
                     _msg("assistant", _text(turn, "assistant", allow_empty=True))]
    return finish(messages)


@register_format("input_output", lambda r: _is_pairs(r, ("input", "output")),
                 "conversation: [{system, input, output}] (seed 002 multi-turn)")
def convert_input_output(row: dict, opts: dict) -> Conversation:
    messages = []
    for i, turn in enumerate(_list(row, "conversation")):
        if not isinstance(turn, dict):
            raise RowError("bad_type", f"conversation[{i}]: expected an object", key="conversation")
        system = turn.get("system")
        if isinstance(system, str) and system.strip() and not messages:
            messages.append(_msg("system", system))
        messages += [_msg("user", _text(turn, "input")),
                     _msg("assistant", _text(turn, "output", allow_empty=True))]
    return finish(messages)


@register_format("prompt_completion", lambda r: "prompt" in r and ("completion" in r or "response" in r),
                 "prompt, completion (or response)")
def convert_prompt_completion(row: dict, opts: dict) -> Conversation:
    response_key = "completion" if "completion" in row else "response"
    messages = []
    if isinstance(row.get("system"), str) and row["system"].strip():
        messages.append(_msg("system", row["system"]))
    messages += [_msg("user", _text(row, "prompt")),
                 _msg("assistant", _text(row, response_key, allow_empty=True))]
    return finish(messages)


@register_format("reasoning", lambda r: "Question" in r and "Response" in r,
                 "Question, Complex_CoT, Response (seed 001 medical reasoning)")
def convert_reasoning(row: dict, opts: dict) -> Conversation:
    k = {"prompt": "Question", "cot": "Complex_CoT", "response": "Response", **opts.get("columns", {})}
    think_open, think_close = opts.get("think", ("<think>", "</think>"))
    cot = _text(row, k["cot"], required=False).strip()
    answer = _text(row, k["response"])
    body = f"{think_open}\n{cot}\n{think_close}\n\n{answer}" if cot else answer
    return finish([_msg("user", _text(row, k["prompt"])), _msg("assistant", body)])


@register_format("text", lambda r: set(r) <= {"text", "label", "id"} and "text" in r,
                 "text (plain causal-LM training, stage: pt)")
def convert_text(row: dict, opts: dict) -> Conversation:
    key = opts.get("columns", {}).get("text", "text")
    return Conversation(text=_text(row, key))


def convert_row(fmt: Format, row: Any, opts: dict) -> Conversation:
    """Convert one raw row; a non-object row is a RowError."""
    if not isinstance(row, dict):
        raise RowError("bad_type", f"expected a JSON object per row, got {type(row).__name__}")
    return fmt.convert(row, opts)
