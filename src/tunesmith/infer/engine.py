"""The Engine interface and the generation parameters every backend takes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Protocol


@dataclass
class GenParams:
    max_new_tokens: int = 512
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    top_k: int = 50
    repetition_penalty: float = 1.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)

    @classmethod
    def from_config(cls, infer_cfg) -> "GenParams":
        temperature = infer_cfg.temperature if infer_cfg.do_sample or infer_cfg.temperature else 0.0
        return cls(infer_cfg.max_new_tokens, temperature, infer_cfg.top_p, infer_cfg.top_k,
                   infer_cfg.repetition_penalty)


@dataclass
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" | "length"


class Engine(Protocol):
    """A chat model that turns message lists into completions."""

    def generate(self, messages: list[dict], params: GenParams) -> Completion: ...

    def stream(self, messages: list[dict], params: GenParams) -> Iterator[str]: ...

    def batch_generate(self, conversations: list[list[dict]], params: GenParams) -> list[Completion]: ...

    def count_tokens(self, messages: list[dict]) -> int: ...

    @property
    def context_length(self) -> int: ...
