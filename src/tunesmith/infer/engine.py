"""The Engine interface, the generation parameters every backend takes, and its errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Protocol

from ..errors import TunesmithError


class ContextLengthError(TunesmithError):
    """The prompt does not fit in the model's context (the server maps this to HTTP 400)."""

    def __init__(self, prompt_tokens: int, max_tokens: int, context_length: int):
        self.prompt_tokens = prompt_tokens
        self.max_tokens = max_tokens
        self.context_length = context_length
        super().__init__(
            f"the prompt has {prompt_tokens} tokens (+ max_new_tokens {max_tokens}), but the "
            f"model's context length is {context_length} tokens: shorten the prompt or history")


def check_context(prompt_tokens: int, max_tokens: int, context_length: int, *,
                  strict: bool = False) -> int:
    """The number of new tokens that fit after the prompt.

    Args:
        prompt_tokens: tokens in the rendered prompt.
        max_tokens: requested new tokens.
        context_length: the model's context window.
        strict: also refuse when prompt + max_tokens overflows (as OpenAI servers do);
            otherwise the budget is shortened and generation ends with ``length``.
    Raises:
        ContextLengthError: the prompt alone fills the context (or, if strict, prompt + max).
    """
    if prompt_tokens >= context_length or (strict and prompt_tokens + max_tokens > context_length):
        raise ContextLengthError(prompt_tokens, max_tokens, context_length)
    return min(max_tokens, context_length - prompt_tokens)


@dataclass
class GenParams:
    max_new_tokens: int = 512
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    top_k: int = 50
    repetition_penalty: float = 1.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)

    @property
    def greedy(self) -> bool:
        return not self.temperature or self.temperature <= 0

    @classmethod
    def from_config(cls, infer_cfg, seed: int | None = None) -> "GenParams":
        """Parameters from an ``InferConfig``: greedy unless ``do_sample`` or a temperature > 0."""
        temperature = infer_cfg.temperature or 0.0
        if infer_cfg.do_sample and not temperature:
            temperature = 1.0  # do_sample with the default temperature 0 means plain sampling
        return cls(infer_cfg.max_new_tokens, temperature, infer_cfg.top_p, infer_cfg.top_k,
                   infer_cfg.repetition_penalty, seed,
                   list(getattr(infer_cfg, "stop", None) or []))


@dataclass
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" | "length"
    token_ids: list[int] | None = None  # the new tokens (end-of-turn included), where known


class Engine(Protocol):
    """A chat model that turns message lists into completions."""

    def generate(self, messages: list[dict], params: GenParams) -> Completion: ...

    def stream(self, messages: list[dict], params: GenParams) -> Iterator[str]: ...

    def batch_generate(self, conversations: list[list[dict]], params: GenParams) -> list[Completion]: ...

    def count_tokens(self, messages: list[dict]) -> int: ...

    @property
    def context_length(self) -> int: ...
