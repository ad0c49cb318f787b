"""The Engine interface, the generation parameters every backend takes, and its errors.

An engine is a tokenizer + template + a :class:`Decoder`: the continuous-batching core that
holds rows (one completion each), prefills newcomers and advances every row by a token per
``step``. Everything above it -- ``generate``/``batch_generate``/``stream`` for chat and predict,
the server's scheduler -- drives decoders through :mod:`.batching` and the interface below only,
so a backend that implements it (HF transformers, vLLM, a test's fake) serves every command.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator, Protocol

from ..errors import TunesmithError

if TYPE_CHECKING:
    from ..config import InferConfig


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
    """What to generate for one completion. The OpenAI fields beyond the classic sampling ones:
    ``frequency_penalty``/``presence_penalty`` (on the tokens generated so far, OpenAI's
    definition), ``logit_bias`` (token id -> added logit), ``logprobs`` (report each chosen
    token's log-probability, with ``top_logprobs`` alternatives), ``json_object`` (constrain
    the output to one JSON object)."""

    max_new_tokens: int = 512
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    top_k: int = 50
    repetition_penalty: float = 1.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    logit_bias: dict[int, float] = field(default_factory=dict)
    logprobs: bool = False
    top_logprobs: int = 0
    json_object: bool = False

    @property
    def greedy(self) -> bool:
        return not self.temperature or self.temperature <= 0

    @property
    def plain_greedy(self) -> bool:
        """Greedy with nothing to add to the logits or report (the fast, vectorized path)."""
        return (self.greedy and self.repetition_penalty == 1.0 and not self.frequency_penalty
                and not self.presence_penalty and not self.logit_bias and not self.logprobs
                and not self.json_object)

    @classmethod
    def from_config(cls, infer_cfg: InferConfig, seed: int | None = None) -> "GenParams":
        """Parameters from an ``InferConfig``: greedy unless ``do_sample`` or a temperature > 0."""
        temperature = infer_cfg.temperature or 0.0
        if infer_cfg.do_sample and not temperature:
            temperature = 1.0  # do_sample with the default temperature 0 means plain sampling
        return cls(infer_cfg.max_new_tokens, temperature, infer_cfg.top_p, infer_cfg.top_k,
                   infer_cfg.repetition_penalty, seed,
                   list(getattr(infer_cfg, "stop", None) or []))


@dataclass
class TokenLogprob:
    token: str
    logprob: float
    bytes: list[int]


@dataclass
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" | "length"
    token_ids: list[int] | None = None  # the new tokens (end-of-turn included), where known
    logprobs: list[dict] | None = None  # per token: {token, logprob, bytes, top_logprobs}


@dataclass
class TokenChoice:
    """One new token of one row, as a decoder chose it."""

    token: int
    logprob: float | None = None  # when the row asked for logprobs
    top: list[tuple[int, float]] | None = None  # the most likely alternatives (id, logprob)


class Decoder(Protocol):
    """The continuous-batching core of an engine: rows in, one token per row per step out.

    A row is a :class:`~tunesmith.infer.batching.Job` (``prompt_ids`` + ``params``). ``add``
    only registers rows (the prefill happens in the next ``step``); ``step`` returns the new
    tokens of every live row (a backend may return several for one row); ``drop`` frees a row's
    slot at once (finished, stopped or cancelled), so the next ``add`` can refill it.
    """

    capacity: int  # rows held at once

    def add(self, jobs: list[Any]) -> None: ...

    def step(self) -> list[tuple[Any, list[TokenChoice]]]: ...

    def drop(self, job: Any) -> None: ...

    def __len__(self) -> int: ...


class Engine(Protocol):
    """A chat model: what chat, predict, eval and serve use, and all they use."""

    tokenizer: Any  # for prompts rendered outside (predict's records); never for generation
    template: Any
    eos_ids: list[int]  # EOS and the template's end-of-turn tokens

    @property
    def context_length(self) -> int: ...

    def encode(self, messages: list[dict]) -> list[int]: ...

    def encode_text(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...

    def token_text(self, token: int) -> str: ...

    def count_tokens(self, messages: list[dict]) -> int: ...

    def decoder(self, capacity: int) -> Decoder: ...

    def generate(self, messages: list[dict], params: GenParams) -> Completion: ...

    def stream(self, messages: list[dict], params: GenParams) -> Iterator[str]: ...

    def batch_generate(self, conversations: list[list[dict]], params: GenParams, *,
                       max_batch: int | None = None,
                       on_done: Callable[[int], None] | None = None) -> list[Completion]: ...
