"""The one in-memory shape every format converts to."""

from __future__ import annotations

from dataclasses import dataclass, field

ROLES = ("system", "user", "assistant", "tool")


@dataclass
class Conversation:
    """Messages as ``{"role", "content"}`` dicts (the shape ``apply_chat_template`` takes).

    ``origin`` names where the row came from (``file:line`` or ``file[row]``) for messages.
    ``text`` is set instead of messages for plain-text causal-LM rows (``stage: pt``).
    ``prompt_len``: the first messages that are context only (a preference row's shared prompt):
    their assistant turns are never labelled.
    """

    messages: list[dict] = field(default_factory=list)
    origin: str = ""
    text: str | None = None
    prompt_len: int = 0

    @property
    def assistant_indices(self) -> list[int]:
        return [i for i, m in enumerate(self.messages)
                if m["role"] == "assistant" and i >= self.prompt_len]


class RowError(ValueError):
    """A row that cannot be used; ``reason`` is a short stable code for counting."""

    def __init__(self, reason: str, message: str, key: str | None = None):
        super().__init__(message)
        self.reason = reason
        self.key = key


def check_roles(messages: list[dict]) -> None:
    """Validate role order: optional system first, then user/assistant alternating, assistant last.

    Tool results may follow an assistant turn (its tool call); the assistant speaks next. An
    assistant turn that calls tools (``tool_calls``) may have empty content.
    Raises RowError naming the problem.
    """
    if not messages:
        raise RowError("empty", "conversation has no messages")
    if messages[0]["role"] == "system" and not isinstance(messages[0]["content"], str):
        raise RowError("non_string_content", "system message: content must be a string, got "
                       f"{type(messages[0]['content']).__name__}", key="content")
    body = messages[1:] if messages[0]["role"] == "system" else messages
    expected = "user"
    for i, msg in enumerate(body):
        role, content = msg["role"], msg["content"]
        if not isinstance(content, str):
            raise RowError("non_string_content",
                           f"message {i}: content must be a string, got {type(content).__name__}",
                           key="content")
        if role == "system":
            raise RowError("bad_role_order", f"message {i}: system message must come first")
        if role == "tool":
            if i == 0 or body[i - 1]["role"] not in ("assistant", "tool"):
                raise RowError("bad_role_order", f"message {i}: a tool result must follow an "
                               "assistant turn", key="role")
            expected = "assistant"
            continue
        if role != expected:
            raise RowError("bad_role_order",
                           f"message {i}: expected a {expected} turn, got {role}", key="role")
        if role == "assistant" and not content.strip() and not msg.get("tool_calls"):
            raise RowError("empty_response", f"message {i}: assistant turn is empty", key="content")
        expected = "assistant" if role == "user" else "user"
    if not body or body[-1]["role"] != "assistant":
        raise RowError("no_response", "conversation does not end with an assistant turn")
