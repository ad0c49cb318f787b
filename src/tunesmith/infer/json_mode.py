"""``response_format: {"type": "json_object"}``: the output is one JSON object, by construction.

Decoding is constrained token by token: a candidate token is taken only if its text keeps the
output a prefix of a valid JSON object (:class:`JsonPrefix`, a pushdown recognizer of RFC 8259
fed one character at a time), the end-of-turn token only once the object is closed, and nothing
after it. The row's own rule picks the candidate first (greedy: the most likely; sampling: a
draw), and only if that token would break the JSON are the next candidates tried, most likely
first -- so a model that writes JSON anyway is not changed at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

NUMBER_PREFIX = re.compile(r"-?(?:(?:0|[1-9]\d*)(?:\.\d*)?(?:(?<=\d)[eE][+-]?\d*)?)?")
NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
WHITESPACE = " \t\n\r"
DRAWS = 8  # draws of the row's own rule before scanning candidates in order
SCAN = 4096  # most likely candidates scanned at most


@dataclass
class JsonPrefix:
    """Whether the characters fed so far start a JSON object (and whether it is closed)."""

    stack: list[str] = field(default_factory=list)  # "o" object, "a" array
    expect: str = "start"
    string: str | None = None  # "key" or "value" while inside a string
    escape: int = 0  # 1 after a backslash; 2..5: hex digits of \\uXXXX still to come
    number: str | None = None
    literal: str = ""

    @property
    def complete(self) -> bool:
        return self.expect == "done"

    def copy(self) -> "JsonPrefix":
        return JsonPrefix(list(self.stack), self.expect, self.string, self.escape, self.number,
                          self.literal)

    def feed(self, text: str) -> bool:
        """Feed ``text``; False (state undefined) as soon as it cannot continue a JSON object."""
        return all(self._char(ch) for ch in text)

    def _char(self, ch: str) -> bool:
        if self.string is not None:
            return self._in_string(ch)
        if self.literal:
            if ch != self.literal[0]:
                return False
            self.literal = self.literal[1:]
            if not self.literal:
                self._value_done()
            return True
        if self.number is not None:
            if NUMBER_PREFIX.fullmatch(self.number + ch):
                self.number += ch
                return True
            if not NUMBER.fullmatch(self.number):
                return False
            self.number = None
            self._value_done()
        if ch in WHITESPACE:
            return True
        return self._token(ch)

    def _in_string(self, ch: str) -> bool:
        if self.escape == 1:
            if ch == "u":
                self.escape = 5
                return True
            self.escape = 0
            return ch in '"\\/bfnrt'
        if self.escape > 1:
            self.escape = self.escape - 1 if self.escape > 2 else 0
            return ch in "0123456789abcdefABCDEF"
        if ch == "\\":
            self.escape = 1
        elif ch == '"':
            kind, self.string = self.string, None
            if kind == "key":
                self.expect = "colon"
            else:
                self._value_done()
        elif ord(ch) < 0x20:
            return False
        return True

    def _token(self, ch: str) -> bool:
        e = self.expect
        if e == "start":
            return self._open(ch) if ch == "{" else False
        if e in ("value", "value_or_end"):
            if ch == "]" and e == "value_or_end":
                return self._close("a")
            return self._value(ch)
        if e in ("key", "key_or_end"):
            if ch == "}" and e == "key_or_end":
                return self._close("o")
            if ch == '"':
                self.string = "key"
                return True
            return False
        if e == "colon":
            if ch == ":":
                self.expect = "value"
                return True
            return False
        if e == "comma_or_end":
            return self._after_value(ch)
        return False  # done: nothing but whitespace after the object

    def _value(self, ch: str) -> bool:
        if ch in "{[":
            return self._open(ch)
        if ch == '"':
            self.string = "value"
        elif ch == "-" or ch.isdigit() and ch.isascii():
            self.number = ch
        elif ch in "tfn":
            self.literal = {"t": "rue", "f": "alse", "n": "ull"}[ch]
        else:
            return False
        return True

    def _after_value(self, ch: str) -> bool:
        top = self.stack[-1]
        if ch == ",":
            self.expect = "key" if top == "o" else "value"
            return True
        if (ch, top) in (("}", "o"), ("]", "a")):
            return self._close(top)
        return False

    def _open(self, ch: str) -> bool:
        self.stack.append("o" if ch == "{" else "a")
        self.expect = "key_or_end" if ch == "{" else "value_or_end"
        return True

    def _close(self, kind: str) -> bool:
        if not self.stack or self.stack[-1] != kind:
            return False
        self.stack.pop()
        self._value_done()
        return True

    def _value_done(self) -> None:
        self.expect = "comma_or_end" if self.stack else "done"


class JsonObjectConstraint:
    """One row's constraint: picks the token to emit and tracks the JSON written so far.

    Args:
        token_text: ``token id -> its text``.
        end_ids: end-of-turn ids; the first is emitted once the object is closed.
    """

    def __init__(self, token_text, end_ids: list[int]):
        self.token_text, self.end_ids = token_text, list(end_ids)
        self.state = JsonPrefix()

    def _try(self, token: int) -> JsonPrefix | None:
        if token in self.end_ids:
            return self.state if self.state.complete else None
        text = self.token_text(token)
        if not text or self.state.complete:
            return None
        state = self.state.copy()
        return state if state.feed(text) else None

    def pick(self, logits, draw) -> int:
        """The token to emit: ``draw(logits)`` if it keeps the JSON valid, else the most likely
        candidate that does (the end-of-turn token once the object is closed)."""
        import torch

        if self.state.complete:
            return self.end_ids[0]
        logits = logits.clone()
        for _ in range(DRAWS):
            token = draw(logits)
            if (state := self._try(token)) is not None:
                self.state = state
                return token
            logits[token] = float("-inf")
        for token in torch.argsort(logits, descending=True)[:SCAN].tolist():
            if (state := self._try(token)) is not None:
                self.state = state
                return token
        return self.end_ids[0]


def constraint_factory(engine):
    """``(params) -> JsonObjectConstraint | None`` for an engine's decoder."""
    ends = list(engine.eos_ids)

    def build(params):
        return JsonObjectConstraint(engine.token_text, ends) if params.json_object else None

    return build
